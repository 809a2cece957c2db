/* PLACEHOLDER: this family is not written yet; every op here reports unsupported. */
#include "ops.h"

const gc_opdef gc_def_Pad = {.name = "Pad"};
const gc_opdef gc_def_Resize = {.name = "Resize"};
const gc_opdef gc_def_Upsample = {.name = "Upsample"};

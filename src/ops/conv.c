/* PLACEHOLDER: this family is not written yet; every op here reports unsupported. */
#include "ops.h"

const gc_opdef gc_def_Conv = {.name = "Conv"};
const gc_opdef gc_def_ConvTranspose = {.name = "ConvTranspose"};

/* PLACEHOLDER: this family is not written yet; every op here reports unsupported. */
#include "ops.h"

const gc_opdef gc_def_MaxPool = {.name = "MaxPool"};
const gc_opdef gc_def_AveragePool = {.name = "AveragePool"};
const gc_opdef gc_def_GlobalAveragePool = {.name = "GlobalAveragePool"};
const gc_opdef gc_def_GlobalMaxPool = {.name = "GlobalMaxPool"};

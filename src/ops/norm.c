/* PLACEHOLDER: this family is not written yet; every op here reports unsupported. */
#include "ops.h"

const gc_opdef gc_def_BatchNormalization = {.name = "BatchNormalization"};
const gc_opdef gc_def_InstanceNormalization = {.name = "InstanceNormalization"};
const gc_opdef gc_def_LayerNormalization = {.name = "LayerNormalization"};
const gc_opdef gc_def_LRN = {.name = "LRN"};
const gc_opdef gc_def_Softmax = {.name = "Softmax"};
const gc_opdef gc_def_LogSoftmax = {.name = "LogSoftmax"};

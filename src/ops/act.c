/* PLACEHOLDER: this family is not written yet; every op here reports unsupported. */
#include "ops.h"

const gc_opdef gc_def_Relu = {.name = "Relu"};
const gc_opdef gc_def_LeakyRelu = {.name = "LeakyRelu"};
const gc_opdef gc_def_PRelu = {.name = "PRelu"};
const gc_opdef gc_def_Elu = {.name = "Elu"};
const gc_opdef gc_def_Selu = {.name = "Selu"};
const gc_opdef gc_def_Clip = {.name = "Clip"};
const gc_opdef gc_def_Sigmoid = {.name = "Sigmoid"};
const gc_opdef gc_def_HardSigmoid = {.name = "HardSigmoid"};
const gc_opdef gc_def_HardSwish = {.name = "HardSwish"};
const gc_opdef gc_def_Tanh = {.name = "Tanh"};
const gc_opdef gc_def_Erf = {.name = "Erf"};
const gc_opdef gc_def_Softplus = {.name = "Softplus"};
const gc_opdef gc_def_Sqrt = {.name = "Sqrt"};
const gc_opdef gc_def_Exp = {.name = "Exp"};
const gc_opdef gc_def_Log = {.name = "Log"};
const gc_opdef gc_def_Neg = {.name = "Neg"};
const gc_opdef gc_def_Abs = {.name = "Abs"};
const gc_opdef gc_def_Reciprocal = {.name = "Reciprocal"};
const gc_opdef gc_def_Identity = {.name = "Identity"};
const gc_opdef gc_def_Dropout = {.name = "Dropout"};
const gc_opdef gc_def_Floor = {.name = "Floor"};
const gc_opdef gc_def_Ceil = {.name = "Ceil"};
const gc_opdef gc_def_Not = {.name = "Not"};
const gc_opdef gc_def_Softsign = {.name = "Softsign"};
const gc_opdef gc_def_Sin = {.name = "Sin"};
const gc_opdef gc_def_Cos = {.name = "Cos"};
const gc_opdef gc_def_Celu = {.name = "Celu"};
const gc_opdef gc_def_ThresholdedRelu = {.name = "ThresholdedRelu"};

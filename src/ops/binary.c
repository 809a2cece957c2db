/* PLACEHOLDER: this family is not written yet; every op here reports unsupported. */
#include "ops.h"

const gc_opdef gc_def_Add = {.name = "Add"};
const gc_opdef gc_def_Sub = {.name = "Sub"};
const gc_opdef gc_def_Mul = {.name = "Mul"};
const gc_opdef gc_def_Div = {.name = "Div"};
const gc_opdef gc_def_Pow = {.name = "Pow"};
const gc_opdef gc_def_Min = {.name = "Min"};
const gc_opdef gc_def_Max = {.name = "Max"};
const gc_opdef gc_def_Sum = {.name = "Sum"};
const gc_opdef gc_def_Mean = {.name = "Mean"};
const gc_opdef gc_def_Where = {.name = "Where"};
const gc_opdef gc_def_Equal = {.name = "Equal"};
const gc_opdef gc_def_Less = {.name = "Less"};
const gc_opdef gc_def_Greater = {.name = "Greater"};
const gc_opdef gc_def_LessOrEqual = {.name = "LessOrEqual"};
const gc_opdef gc_def_GreaterOrEqual = {.name = "GreaterOrEqual"};
const gc_opdef gc_def_And = {.name = "And"};
const gc_opdef gc_def_Or = {.name = "Or"};
const gc_opdef gc_def_Mod = {.name = "Mod"};

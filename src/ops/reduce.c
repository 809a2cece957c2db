/* PLACEHOLDER: this family is not written yet; every op here reports unsupported. */
#include "ops.h"

const gc_opdef gc_def_ReduceMean = {.name = "ReduceMean"};
const gc_opdef gc_def_ReduceSum = {.name = "ReduceSum"};
const gc_opdef gc_def_ReduceMax = {.name = "ReduceMax"};
const gc_opdef gc_def_ReduceMin = {.name = "ReduceMin"};
const gc_opdef gc_def_ReduceL2 = {.name = "ReduceL2"};
const gc_opdef gc_def_ReduceProd = {.name = "ReduceProd"};
const gc_opdef gc_def_ReduceSumSquare = {.name = "ReduceSumSquare"};
const gc_opdef gc_def_ArgMax = {.name = "ArgMax"};
const gc_opdef gc_def_ArgMin = {.name = "ArgMin"};

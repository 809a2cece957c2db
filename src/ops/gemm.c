/* PLACEHOLDER: this family is not written yet; every op here reports unsupported. */
#include "ops.h"

const gc_opdef gc_def_Gemm = {.name = "Gemm"};
const gc_opdef gc_def_MatMul = {.name = "MatMul"};

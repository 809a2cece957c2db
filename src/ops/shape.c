/* PLACEHOLDER: this family is not written yet; every op here reports unsupported. */
#include "ops.h"

const gc_opdef gc_def_Concat = {.name = "Concat"};
const gc_opdef gc_def_Split = {.name = "Split"};
const gc_opdef gc_def_Flatten = {.name = "Flatten"};
const gc_opdef gc_def_Reshape = {.name = "Reshape"};
const gc_opdef gc_def_Transpose = {.name = "Transpose"};
const gc_opdef gc_def_Squeeze = {.name = "Squeeze"};
const gc_opdef gc_def_Unsqueeze = {.name = "Unsqueeze"};
const gc_opdef gc_def_Slice = {.name = "Slice"};
const gc_opdef gc_def_Gather = {.name = "Gather"};
const gc_opdef gc_def_Expand = {.name = "Expand"};
const gc_opdef gc_def_Tile = {.name = "Tile"};
const gc_opdef gc_def_Shape = {.name = "Shape"};
const gc_opdef gc_def_Cast = {.name = "Cast"};
const gc_opdef gc_def_Constant = {.name = "Constant"};
const gc_opdef gc_def_ConstantOfShape = {.name = "ConstantOfShape"};
const gc_opdef gc_def_Range = {.name = "Range"};
const gc_opdef gc_def_Size = {.name = "Size"};

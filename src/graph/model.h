/* Building and finishing a gc_model: the value table, topological order, op binding, folding. */
#ifndef GC_MODEL_H
#define GC_MODEL_H

#include "../ir/ir.h"

/* The public handle is the model itself. */
struct gcam_model {
    gc_model m;
};
static inline const gc_model *gc_model_of(const gcam_model *p) { return &p->m; }

/* Adds a value; returns its index, -2 if the name exists already, -1 on allocation failure. */
int gc_model_add_value(gc_model *m, const char *name);
/* After gc_onnx_load: sorts nodes topologically (error on cycles), binds ops (collecting every
 * unsupported one), parses attributes and folds nodes whose inputs are all constant. */
gcam_status gc_model_finish(gc_model *m, int allow_unsupported);
void gc_model_destroy(gc_model *m);
/* Hands a mapping (mmap) to the model, unmapped with it; -1 on allocation failure (the caller
 * still owns it then). file: a read-only mapping of a file (PROT_READ, MAP_PRIVATE). */
int gc_model_add_region(gc_model *m, void *base, size_t size, int file);
/* The region that starts at base: its entry (NULL if none), to shrink or drop it. */
gc_region *gc_model_region(gc_model *m, const void *base);
/* Unmaps the region that starts at base and forgets it. */
void gc_model_drop_region(gc_model *m, const void *base);

/* Runs one node on given tensors: infers output shapes, allocates outputs (malloc) and runs the
 * forward kernel. ins[i] NULL for omitted inputs; ins[i]->data may be NULL only for inputs whose
 * values the op does not read (Shape). Used for folding at load and at planning. The outputs and
 * scratch must fit in *budget bytes (checked after infer, before anything is allocated: a tiny
 * constant expanded by ConstantOfShape/Expand/Tile would otherwise be allocated whatever its
 * size); *budget is then reduced by the outputs kept. cap (the budget's start) and when ("at
 * load") word the GCAM_E_LIMIT message. */
gcam_status gc_eval_node(const gc_node *n, gc_tensor *const *ins, gc_tensor *outs, gc_err *err, size_t *budget,
                         size_t cap, const char *when);

#endif

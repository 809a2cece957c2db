/* The engine as the layers above it (the explainer) see a context: its values and gradients by
 * value index, its steps, re-running part of its forward, and moving values between two contexts
 * planned from the same model (gcam_explain_many's batched tail). The context's fields stay
 * private to src/graph/ (plan.h). */
#ifndef GC_ENGINE_H
#define GC_ENGINE_H

#include "../ops/ops.h"

/* The value's tensor in this context: dtype, shape, and data (NULL where it has no buffer). */
gc_tensor *gc_ctx_value(const gcam_ctx *c, int v);
/* Its gradient buffer; NULL when no backward writes one for v. */
const gc_tensor *gc_ctx_gradient(const gcam_ctx *c, int v);
/* 1 when v is computed by the forward (an activation or graph input), not a constant. */
int gc_ctx_is_activation(const gcam_ctx *c, int v);
/* 1 when v stays readable after a run (kept, an output). */
int gc_ctx_is_kept(const gcam_ctx *c, int v);
/* 1 when planning failed: every call on the context fails. */
int gc_ctx_failed(const gcam_ctx *c);

/* Forward steps: how many, and the node each runs. */
int gc_ctx_num_steps(const gcam_ctx *c);
int gc_ctx_step_node(const gcam_ctx *c, int s);
/* Index of the first step after the producer of value v (0 for inputs). */
int gc_ctx_first_step_after(const gcam_ctx *c, int v);
/* Re-runs the forward from step `first` on: the caller guarantees that every value those steps
 * read from earlier steps is still intact (gc_ctx_crossing_values, gc_ctx_is_kept). */
gcam_status gc_ctx_forward_from(gcam_ctx *c, int first);
/* want: value indices (n_want of them) whose gradients must be complete; *n_run counts steps. */
gcam_status gc_ctx_backward(gcam_ctx *c, const float *seed_grad, gc_rule rule, const int *want, int n_want,
                            int *n_run);

/* The activations that steps first.. read and earlier steps (or the graph's inputs) computed, each
 * once, in the order the steps read them: *out (allocated, n of them). */
gcam_status gc_ctx_crossing_values(const gcam_ctx *c, int first, int **out, int *n);
/* Bytes of float constants (weights) that the backward steps of forward steps first.. read. */
size_t gc_ctx_backward_weight_bytes(const gcam_ctx *c, int first);
/* 1 when both contexts run the same steps in the same order. */
int gc_ctx_same_steps(const gcam_ctx *a, const gcam_ctx *b);

/* Replaying t's backward of the steps first.. on values copied from src's forward: 1 when src
 * differentiates every one of those steps too and none keeps state from t's own forward (an aux
 * such as MaxPool's argmax), with *out (allocated, n) the forward values that backward reads;
 * 0 (nothing allocated) when it cannot. -1 when out of memory. same_or_batched(a, b, user) tells
 * whether src's tensor a can fill t's b. */
int gc_ctx_backward_reads(const gcam_ctx *t, const gcam_ctx *src, int first,
                          int (*same_or_batched)(const gc_tensor *a, const gc_tensor *b, void *user), void *user,
                          int **out, int *n);
/* Copies values v[0..n-1] of src into dst: a tensor dst holds `copies` times (a batch of copies)
 * gets src's that many times, one of the same shape once. */
void gc_ctx_copy_values(gcam_ctx *dst, const gcam_ctx *src, const int *v, int n, int64_t copies);
/* Declares dst's forward done (its values were copied in, not computed). */
void gc_ctx_mark_forward_done(gcam_ctx *c);

#endif

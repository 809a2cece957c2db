/* Execution contexts: shapes bound, shape sub-graphs folded, memory planned once (one arena),
 * then forward (and backward) runs that only call kernels. */
#ifndef GC_PLAN_H
#define GC_PLAN_H

#include "engine.h"

typedef enum gc_vkind {
    GC_V_NONE = 0,   /* not computed in this context (unused, or after an unsupported op) */
    GC_V_CONST,      /* model constant (weights), owned by the model */
    GC_V_FOLDED,     /* computed at planning from shapes/constants, owned by the context */
    GC_V_RUNTIME     /* an activation: lives in the arena */
} gc_vkind;

typedef struct gc_step {
    int node;
    int fused;       /* a Relu computed by its producer (k.fuse.relu): skipped in the forward */
    gc_kctx k;
} gc_step;

/* A backward step: the node's VJP, with gradient buffers in the arena. */
typedef struct gc_bstep {
    int node;
    int fstep;       /* index of the node's forward step (for its saved tensors and aux) */
    int fused;       /* a Relu whose VJP its producer's backward applies (.fuse_relu_bw): skipped */
    gc_kctx k;
    int n_zero;      /* gradient buffers first written at this step and not assigned by it
                        (k.gin_fresh): zeroed just before it */
    int *zero;       /* value indices */
} gc_bstep;

/* Called before each forward step that runs (skipped fused steps excepted), with its index: a
 * test-only hook (tests/test_grad_parity.c sets values at ReLU/MaxPool kinks as PyTorch has them). */
typedef void (*gc_step_hook)(gcam_ctx *c, int step, void *user);

struct gcam_ctx {
    gc_err err;
    const gc_model *m;
    int nthreads;
    size_t max_memory;
    gc_tensor *vals;     /* per model value: dtype, shape, data */
    uint8_t *vkind;      /* gc_vkind per value */
    uint8_t *kept;       /* readable after a run */
    int n_steps;
    gc_step *steps;
    uint8_t *arena;
    size_t arena_size;
    int has_run;
    int broken;          /* planning failed: every call fails */
    int const_int_inputs;
    /* backward plan (empty when no gradients were requested) */
    int seed;            /* value index of the seed tensor, -1 if none */
    int n_req;
    int *req;            /* requested value indices */
    gc_tensor *grads;    /* per value: gradient buffer (data NULL if none) */
    int n_bsteps;
    gc_bstep *bsteps;
    int has_backward;    /* a backward pass has completed since the last forward */
    uint8_t *grad_valid; /* per requested index: complete after the last backward */
    int last_bw_nodes;
    gc_rule rule;
    char **folded_owned; /* buffers of GC_V_FOLDED values */
    int n_folded_owned;
    gc_step_hook step_hook; /* NULL but in tests */
    gcam_abort_fn abort_fn; /* gcam_ctx_set_abort: asked before each step, NULL: none */
    void *abort_user;
    void *step_hook_user;
    gc_tuning tune;         /* read once at creation (src/tuning.h); kernels see it through k.tune */
    struct gc_prof_row *prof; /* (GC_OP_COUNT) with tune.profile: time per op type, printed at free */
    double *prof_fw, *prof_bw; /* (n_steps), (n_bsteps) with tune.profile_steps: time per step */
};

gcam_status gc_ctx_plan(gcam_ctx *c, const gcam_feed *shapes, int n_shapes, const gcam_ctx_options *o);
gcam_status gc_ctx_forward(gcam_ctx *c);
void gc_ctx_destroy(gcam_ctx *c);

#endif

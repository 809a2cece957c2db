/* Internal state of an explainer and the numeric helpers the methods share. */
#ifndef GC_EXPLAIN_H
#define GC_EXPLAIN_H

#include "../graph/engine.h"
#include "../graph/model.h"

/* How a target layer's tensor is read as maps (N, K, h, w). */
typedef enum gc_lv_kind {
    GC_LV_NCHW = 0,             /* as it is */
    GC_LV_NHWC,                 /* (N, h, w, K): channel-last (Swin) */
    GC_LV_TOKENS                /* (N, skip + h * w, K): the special tokens dropped (ViT) */
} gc_lv_kind;

typedef struct gc_layer_view {
    gc_lv_kind kind;
    int64_t N, K, h, w;
    int64_t skip;               /* TOKENS: leading special tokens (class, distillation) */
} gc_layer_view;

/* The native index of map element (b, k, p) (p = y * w + x) in the layer's tensor. */
static inline int64_t gc_lv_index(const gc_layer_view *v, int64_t b, int64_t k, int64_t p) {
    int64_t hw = v->h * v->w;
    switch (v->kind) {
    case GC_LV_NHWC: return (b * hw + p) * v->K + k;
    case GC_LV_TOKENS: return (b * (v->skip + hw) + v->skip + p) * v->K + k;
    default: return (b * v->K + k) * hw + p;
    }
}

struct gcam_explainer {
    gc_err err;
    const gc_model *m;
    gcam_explain_options o;
    gc_tuning tune;             /* read once at creation (src/tuning.h) */
    /* forward + the backward to the layers; with ctx_full also to the input (pixel methods). Made
     * full on the first pixel method: the input gradient's plan keeps every activation the whole
     * backward reads (densenet121 at batch 8: 4.9x the memory, and a Grad-CAM forward ~10% slower
     * on 2 threads than one that reuses buffers) */
    gcam_ctx *ctx;
    int ctx_full;
    float *score_copy;          /* the last forward's scores: what gcam_explainer_scores views */
    gcam_ctx *mask_ctx;         /* Score-CAM: inference on batches of masked inputs */
    int64_t mask_batch;
    int input;                  /* value index of the explained input (graph input 0) */
    int output, score;          /* explained output; the score tensor (before a final softmax) */
    int prob_op;                /* op of the final Softmax/LogSoftmax/Sigmoid, or -1 */
    int n_layers;
    int *layers;                /* value indices of the target layers */
    gc_layer_view *views;       /* (n_layers) how each is read as maps */
    /* attention rollout: the global attention Softmax outputs on the way to the score, step order,
     * (N * heads, T, T) or (N, heads, T, T), kept and differentiated in the full plan */
    int n_attn;
    int *attn;
    gc_layer_view attn_grid;    /* T tokens read as a grid (TOKENS kind; K = 1) */
    /* Ablation-CAM: values the steps after a layer read from before it (a transformer block's
     * residual stream), kept intact by the full plan so that only those steps re-run */
    int n_cross;
    int *cross;
    int nhwc;                   /* input laid out (N, H, W, C) */
    int64_t N, C, H, W;
    size_t x_numel;
    /* the last forward's feeds, kept to re-run after perturbed forwards (SmoothGrad, IG) */
    int n_feeds, input_feed;
    gcam_feed *feeds;           /* (m->n_inputs) as fed, dims pointing into feed_dims */
    int64_t (*feed_dims)[GCAM_MAX_DIMS];
    void **feed_data;           /* (m->n_inputs) copies of the fed data */
    gcam_feed *feed_work;       /* (m->n_inputs) scratch: the feeds of a re-run (gc_explainer_feeds) */
    int64_t (*feed_work_dims)[GCAM_MAX_DIMS];
    int forwarded;
    float *seed;                /* seed buffer, the score's shape */
    /* a PRODUCT target (build_seed): its elements, flat in the score, all in sample prod_sample;
     * the perturbation methods (Score-CAM, Ablation-CAM) score the product, not seed . score */
    int prod_n;
    int64_t prod_el[GCAM_MAX_TARGET_ELEMENTS], prod_sample;
    float *baseline;            /* Integrated Gradients baseline copy, or NULL (zeros) */
    float *saved_act;           /* Ablation-CAM: a copy of the layer's activations */
    /* gcam_explain_many's batched tail (methods.c): the steps after the layers at batch N * tail_k,
     * target j in rows j*N .. j*N+N-1 of every batched tensor */
    gcam_ctx *tail_ctx;
    int64_t tail_k;             /* targets per tail run (copies of the batch) */
    int tail_state;             /* 0: not decided yet; 1: the tail pays; -1: loop over gcam_explain */
    int tail_checked;           /* the tail's score was compared with the explainer's once */
    int tail_first;             /* first step of the tail (same step list in both contexts) */
    int n_tail_cross;
    int *tail_cross;            /* runtime values the tail reads that are computed before it */
    float *tail_seed;           /* (N * tail_k, ...) seed of the tail's backward */
    int tail_fwd;               /* the tail's forward runs every time (else only once, as a check) */
    int n_tail_saved;
    int *tail_saved;            /* without tail_fwd: the values the tail's backward reads */
    long tail_runs;             /* batched backward passes run so far (tests check the path) */
    gcam_abort_fn abort_fn;     /* gcam_explainer_set_abort: given to every context it runs */
    void *abort_user;
};

/* The last forward's feeds in e->feed_work: input 0's data replaced by x (NULL: as fed), every
 * data pointer NULL when shapes_only, and a leading dimension equal to the explained batch N
 * replaced by batch (0: kept). */
const gcam_feed *gc_explainer_feeds(gcam_explainer *e, const float *x, int shapes_only, int64_t batch);
/* Makes e->ctx plan the input gradient too (re-planned, and the forward re-run, once). */
gcam_status gc_explainer_need_input_grad(gcam_explainer *e);
/* Re-runs the forward with the explained input replaced by x (NULL: the input as fed). */
gcam_status gc_explainer_forward_input(gcam_explainer *e, const float *x);

/* dst (h2, w2) <- src (h1, w1), bilinear with half-pixel centres. */
void gc_resize_bilinear(float *dst, int64_t h2, int64_t w2, const float *src, int64_t h1, int64_t w1);
/* Standard normals (splitmix64 + Box-Muller, docs/methods.md): one stream, continued across calls. */
typedef struct gc_normal_stream {
    uint64_t state; /* splitmix64 state, starts at the seed */
    float spare;    /* the second normal of a pair not yet handed out */
    int has_spare;
} gc_normal_stream;
void gc_normal_fill(float *out, size_t n, gc_normal_stream *g);

#endif

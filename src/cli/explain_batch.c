/* gradcam explain --batch: a window of inputs loaded, those of one shape run through one forward
 * and one backward per (method, item) with a class per sample, their maps split per input and
 * written by the same code as one by one. The records, files and maps are those of a run one by
 * one up to float rounding: the engine's convolutions block a batch's images together (Winograd
 * tile blocks across images, 1x1 convolutions on small maps as one GEMM), so sums round
 * differently in the last bits (tests/test_cli.py, test_batching, states the tolerances). A
 * failure of the batch's forward or maps sends its inputs back one by one, so that only an input
 * at fault fails. */
#include "explain.h"
#include "explain/method_table.h"

/* Methods whose map of a sample depends on that sample alone, computed the same way at any batch
 * size: the gradient CAMs (per-sample channel weights) and the gradient pixel maps. Left out: CAM
 * and the Eigen-CAMs (not checked per sample), Score-CAM and Ablation-CAM (perturbed batches of
 * their own), SmoothGrad (noise drawn over the whole batch), Integrated Gradients (an input-sized
 * baseline), the rollouts. */
static int per_sample_method(gcam_method m) {
    switch (m) {
    case GCAM_GRADCAM:
    case GCAM_GRADCAM_COUNTER:
    case GCAM_GRADCAMPP:
    case GCAM_XGRADCAM:
    case GCAM_HIRESCAM:
    case GCAM_LAYERCAM:
    case GCAM_GUIDED_BACKPROP:
    case GCAM_DECONVNET:
    case GCAM_GUIDED_GRADCAM:
    case GCAM_GRADIENT:
    case GCAM_GRAD_X_INPUT: return 1;
    default: return 0;
    }
}

/* Why the inputs run one by one, or NULL when they may be batched. */
static const char *no_batch_reason(const ex_run *R) {
    const ex_opts *o = R->o;
    if (R->in0.ndim < 1 || R->in0.dims[0] >= 0) return "the model's batch axis is fixed";
    if (o->base.task != CLI_TASK_CLASSIFY) return "only --task classify is batched";
    if (R->n_feeds) return "--feed inputs are not batched";
    if (o->n_targets) return "--target is not batched";
    for (int i = 0; i < o->n_methods; i++)
        if (!per_sample_method(o->methods[i])) return "a method asked for is not computed per sample";
    return NULL;
}

int ex_batch_size(const ex_run *R, const ex_inputs *list) {
    const ex_opts *o = R->o;
    int b = o->batch ? o->batch : 1; /* one by one unless asked: the tool, the server and the Python
                                        package explain one input at a time, and batched convolutions
                                        round differently in the last bits */
    if (b < 2 || list->n < 2) return 1;
    const char *why = no_batch_reason(R);
    if (why) {
        if (o->batch > 1 && !o->base.quiet && !cli_capturing())
            fprintf(stderr, "%s: note: --batch %d: inputs run one by one (%s)\n", g_prog, o->batch, why);
        return 1;
    }
    return b < list->n ? b : list->n;
}

typedef struct ex_slot {
    ex_one *s;
    int r;        /* the load's or the prediction's result */
    int member;   /* in the batch (loaded, the first loaded input's shape) */
    gc_err err;
} ex_slot;

typedef struct ex_window {
    ex_slot *v;
    int w;
    int *mem;     /* (m) slots in the batch */
    int m;
    char **layers; /* the maps' layer names, copied: the explainer may be re-planned before they are written */
    int n_layers, cap_layers;
} ex_window;

static const char *keep_layer(ex_window *W, const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < W->n_layers; i++)
        if (strcmp(W->layers[i], name) == 0) return W->layers[i];
    if (W->n_layers == W->cap_layers) {
        int cap = W->cap_layers ? 2 * W->cap_layers : 4;
        char **v = realloc(W->layers, sizeof *v * (size_t)cap);
        if (!v) return NULL;
        W->layers = v;
        W->cap_layers = cap;
    }
    char *c = gc_strdup(name);
    if (c) W->layers[W->n_layers++] = c;
    return c;
}

/* Sample b of a batched map, as a map of one sample (buffers of its own). */
static int map_sample(gcam_map *dst, const gcam_map *src, int64_t b, const char *layer) {
    size_t rn = (size_t)(src->c * src->h * src->w), un = (size_t)(src->c * src->H * src->W); /* (c, h, w), (c, H, W) */
    *dst = *src;
    dst->n = 1;
    dst->layer = layer;
    dst->raw = gc_malloc2(rn ? rn : 1, sizeof(float));
    dst->upsampled = gc_malloc2(un ? un : 1, sizeof(float));
    dst->normalized = gc_malloc2(un ? un : 1, sizeof(float));
    if (!dst->raw || !dst->upsampled || !dst->normalized) {
        gcam_map_free(dst);
        return -1;
    }
    memcpy(dst->raw, src->raw + (size_t)b * rn, rn * sizeof(float));
    memcpy(dst->upsampled, src->upsampled + (size_t)b * un, un * sizeof(float));
    memcpy(dst->normalized, src->normalized + (size_t)b * un, un * sizeof(float));
    return 0;
}

/* One method's maps of every item over the batch, split into the members' s->pre. The calls are
 * those one_maps makes for one input (gcam_explain_many for several items of a method it
 * batches, else gcam_explain per item), with each sample's own class. */
static int batch_method(ex_run *R, ex_window *W, int mi, const gcam_target *t, int n_items) {
    const gcam_method meth = R->o->methods[mi];
    gcam_map outs[EX_MAX_LIST];
    memset(outs, 0, sizeof outs);
    gcam_status rc = GCAM_OK;
    if (n_items > 1 && gc_method_info_of(meth)->batchable) {
        rc = gcam_explain_many(R->e, meth, t, n_items, outs);
    } else {
        for (int it = 0; it < n_items && !rc; it++) rc = gcam_explain(R->e, meth, &t[it], &outs[it]);
    }
    int bad = rc != GCAM_OK;
    for (int it = 0; it < n_items && !bad; it++) {
        bad = outs[it].n != W->m;
        const char *layer = bad ? NULL : keep_layer(W, outs[it].layer);
        if (outs[it].layer && !layer) bad = 1;
        for (int k = 0; k < W->m && !bad; k++) {
            ex_one *s = W->v[W->mem[k]].s;
            bad = map_sample(&s->pre[(size_t)mi * (size_t)n_items + (size_t)it], &outs[it], k, layer) != 0;
        }
    }
    for (int it = 0; it < n_items; it++) gcam_map_free(&outs[it]);
    if (bad) return -1;
    for (int k = 0; k < W->m; k++) W->v[W->mem[k]].s->pre_have[mi] = 1;
    return 0;
}

/* The members' items as batched targets (each sample its own class) and every method's maps. */
static int batch_maps(ex_run *R, ex_window *W) {
    const ex_opts *o = R->o;
    const ex_one *s0 = W->v[W->mem[0]].s;
    int n_items = s0->n_items;
    for (int k = 1; k < W->m; k++)
        if (W->v[W->mem[k]].s->n_items != n_items) return -1;
    int64_t *cls = gc_malloc2((size_t)(n_items ? n_items : 1), (size_t)W->m * sizeof(int64_t)); /* (n_items, m) */
    if (!cls) return -1;
    gcam_target t[EX_MAX_LIST];
    for (int it = 0; it < n_items; it++) {
        if (s0->items[it].t.kind != GCAM_TARGET_CLASS) {
            free(cls);
            return -1;
        }
        for (int k = 0; k < W->m; k++) cls[(size_t)it * (size_t)W->m + (size_t)k] = W->v[W->mem[k]].s->items[it].cls;
        t[it] = s0->items[it].t;
        t[it].classes = cls + (size_t)it * (size_t)W->m;
    }
    int rc = 0;
    for (int k = 0; k < W->m && !rc; k++) {
        ex_one *s = W->v[W->mem[k]].s;
        s->pre = gc_calloc2((size_t)o->n_methods * (size_t)(n_items ? n_items : 1), sizeof *s->pre);
        if (!s->pre) rc = -1;
    }
    for (int mi = 0; mi < o->n_methods && !rc; mi++) rc = batch_method(R, W, mi, t, n_items);
    free(cls);
    return rc;
}

/* The members' model inputs as one batch: planned, one forward, each member's predictions from
 * its sample of the scores. -1: the batch did not run (the members go one by one). */
static int batch_forward(ex_run *R, ex_window *W) {
    ex_one *s0 = W->v[W->mem[0]].s;
    int64_t dims[GCAM_MAX_DIMS];
    memcpy(dims, s0->dims, sizeof dims);
    int64_t per = 1; /* elements of one sample (dims[0] is 1) */
    for (int d = 1; d < s0->ndim; d++) per *= s0->dims[d];
    dims[0] = W->m;
    float *x = gc_malloc2((size_t)W->m, (size_t)per * sizeof(float)); /* (m, ...) */
    if (!x) return -1;
    for (int k = 0; k < W->m; k++) memcpy(x + (size_t)k * (size_t)per, W->v[W->mem[k]].s->x, (size_t)per * sizeof(float));
    gcam_feed feed = {.name = R->in0.name, .dtype = GCAM_FLOAT32, .ndim = s0->ndim, .dims = dims, .data = x};
    gc_err perr = {0};
    gcam_tensor_view sv;
    int r = ex_plan(R, &feed, 1, dims, s0->ndim, 0, 1, &perr);
    if (r) {
        if (perr.code == GCAM_E_LIMIT || perr.code == GCAM_E_NOMEM) R->batch = W->m / 2 > 1 ? W->m / 2 : 1;
    } else if (gcam_explainer_forward(R->e, &feed, 1) || gcam_explainer_scores(R->e, &sv) || sv.ndim < 2 ||
               sv.dims[0] != W->m) {
        r = -1;
    }
    free(x);
    if (r) return -1;
    int64_t per_score = 1; /* (1, K, ...) */
    for (int d = 1; d < sv.ndim; d++) per_score *= sv.dims[d];
    for (int k = 0; k < W->m; k++) {
        ex_slot *sl = &W->v[W->mem[k]];
        gcam_tensor_view vb = sv; /* sample k's scores */
        vb.dims[0] = 1;
        vb.data = (const float *)sv.data + (size_t)k * (size_t)per_score;
        sl->r = ex_predict_view(R, sl->s, &vb, &sl->err);
        if (sl->r == 0) ex_one_items(R, sl->s);
        else sl->member = 0; /* its failure (or a stop) is its result */
    }
    return 0;
}

/* Members again, after predictions that did not go on to maps: left as loaded. */
static void drop_members(ex_window *W, const ex_opts *o) {
    for (int k = 0; k < W->m; k++) {
        ex_slot *sl = &W->v[W->mem[k]];
        if (sl->member) ex_one_unpredict(o, sl->s);
        sl->member = 0;
    }
}

static void window_free(ex_window *W, const ex_opts *o) {
    for (int q = 0; q < W->w; q++)
        if (W->v[q].s) {
            ex_one_free(o, W->v[q].s);
            free(W->v[q].s);
        }
    for (int i = 0; i < W->n_layers; i++) free(W->layers[i]);
    free(W->layers);
    free(W->v);
    free(W->mem);
}

/* Loads the window's inputs and picks the members: loaded, of the first loaded input's shape. */
static int window_load(ex_run *R, ex_input *ins, ex_window *W) {
    const ex_one *ref = NULL;
    for (int q = 0; q < W->w; q++) {
        ex_slot *sl = &W->v[q];
        if (!(sl->s = calloc(1, sizeof *sl->s))) return -1; /* large: not on the stack */
        sl->s->in = &ins[q];
        if ((sl->r = ex_one_load(R, sl->s, &sl->err))) continue;
        if (!ref) ref = sl->s;
        sl->member = sl->s->ndim == ref->ndim && sl->s->dims[0] == 1 &&
                     memcmp(sl->s->dims, ref->dims, sizeof(int64_t) * (size_t)ref->ndim) == 0;
        if (sl->member) W->mem[W->m++] = q;
    }
    return 0;
}

int ex_explain_batch(ex_run *R, ex_input *ins, int w, gc_err *err, int *stopped) {
    const ex_opts *o = R->o;
    ex_window W = {.w = w};
    W.v = calloc((size_t)w, sizeof *W.v);
    W.mem = calloc((size_t)w, sizeof *W.mem);
    if (!W.v || !W.mem || window_load(R, ins, &W)) {
        window_free(&W, o);
        *stopped = 1;
        return cli_fail(1, "out of memory");
    }
    if (W.m < 2 || batch_forward(R, &W)) {
        for (int k = 0; k < W.m; k++) W.v[W.mem[k]].member = 0;
    } else {
        /* members whose prediction failed are out; the maps of the others, or all back one by one */
        int m = 0;
        for (int k = 0; k < W.m; k++)
            if (W.v[W.mem[k]].member) W.mem[m++] = W.mem[k];
        W.m = m;
        if (m && batch_maps(R, &W)) drop_members(&W, o);
    }
    int exit_code = 0;
    for (int q = 0; q < w && !*stopped; q++) {
        ex_slot *sl = &W.v[q];
        cli_progress_bar(&R->prog, sl->s->in->path);
        gc_err_clear(err);
        int r = sl->r;
        if (r) *err = sl->err;
        else r = sl->member ? ex_one_finish(R, sl->s, err) : ex_one_explain(R, sl->s, err);
        exit_code = ex_conclude(R, sl->s->in, r, err, stopped);
        ex_one_free(o, sl->s); /* as soon as done: a window of pictures holds only what waits */
        free(sl->s);
        sl->s = NULL;
    }
    window_free(&W, o);
    return exit_code;
}

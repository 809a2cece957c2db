/* ScatterND (opset 11; reduction 'add' and 'mul' from opset 16, 'max' and 'min' from 18), forward
 * and backward.
 *
 * data (r dims), indices (q dims, int64, last dim k <= r), updates (indices.shape[:-1] +
 * data.shape[k:]). Each index tuple picks one slot of data's first k dims; the slot is a slice of
 * S = prod(data.shape[k:]) elements. Y = data, then every update slice j, in order, is written into
 * (or reduced with) its slot. Duplicate tuples: the spec leaves 'none' undefined; here they apply
 * in order (the last wins) and the backward agrees (only the last writer gets a gradient). The
 * reductions apply in order too, as the spec's reference loop does.
 *
 * Forward is dtype-agnostic for 'none' (float32, int64, bool: Swin's attention mask is built with
 * it while planning); reductions take float32 and int64; gradients are float32, to data and
 * updates. Negative indices count from the end, as ONNX Runtime reads them. */
#include "kutil.h"

typedef enum { SR_NONE, SR_ADD, SR_MUL, SR_MAX, SR_MIN } scatter_red;

typedef struct scatter_params {
    scatter_red red;
} scatter_params;

static gcam_status scatter_parse(gc_node *n, gc_err *err) {
    static const struct { const char *name; scatter_red red; int opset; } tab[] = {
        {"none", SR_NONE, 11}, {"add", SR_ADD, 16}, {"mul", SR_MUL, 16}, {"max", SR_MAX, 18}, {"min", SR_MIN, 18}};
    const char *s = gc_attr_str(n, "reduction", "none");
    int found = -1;
    for (int i = 0; i < (int)GC_ARRAY_LEN(tab); i++)
        if (strcmp(s, tab[i].name) == 0) found = i;
    if (found < 0)
        return gc_node_fail(n, err, GCAM_E_FORMAT, "reduction '%s' is not one of none, add, mul, max, min", s);
    if (n->opset < tab[found].opset)
        return gc_node_fail(n, err, GCAM_E_FORMAT, "reduction '%s' needs opset %d (the model imports %d)", s,
                            tab[found].opset, n->opset);
    scatter_params *p = calloc(1, sizeof *p);
    if (!p) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
    p->red = tab[found].red;
    free(n->params);
    n->params = p;
    return GCAM_OK;
}

typedef struct scatter_geom {
    int kk;                   /* index tuple length k */
    int64_t nj;               /* index tuples (prod indices.shape[:-1]) */
    int64_t slice;            /* S: elements per slot */
    int64_t nslots;           /* prod data.shape[:k] */
    int64_t dim[GC_MAX_DIMS]; /* data.shape[:k] */
    int64_t st[GC_MAX_DIMS];  /* slot strides of those dims */
} scatter_geom;

/* Checks dtypes and shapes (everything forward relies on) and derives the geometry. */
static gcam_status scatter_setup(gc_kctx *k, scatter_geom *g) {
    const scatter_params *p = k->params;
    const gc_tensor *x = k->in[0], *ind = k->in[1], *u = k->in[2];
    memset(g, 0, sizeof *g);
    if (!p) return gc_kfail(k, GCAM_E_INTERNAL, "attributes not parsed");
    if (!x || !ind || !u) return gc_kfail(k, GCAM_E_FORMAT, "data, indices and updates are required");
    if (x->dtype != GC_F32 && x->dtype != GC_I64 && x->dtype != GC_BOOL)
        return gc_kfail(k, GCAM_E_UNSUPPORTED, "data must be float32, int64 or bool, got %s", gc_dtype_name(x->dtype));
    if (p->red != SR_NONE && x->dtype == GC_BOOL)
        return gc_kfail(k, GCAM_E_UNSUPPORTED, "reductions take float32 or int64 data, not bool");
    if (u->dtype != x->dtype) return gc_kfail(k, GCAM_E_FORMAT, "updates must have data's dtype");
    if (ind->dtype != GC_I64) return gc_kfail(k, GCAM_E_FORMAT, "indices must be int64");
    const int r = x->shape.ndim, q = ind->shape.ndim;
    if (r < 1 || q < 1) return gc_kfail(k, GCAM_E_SHAPE, "data and indices must have rank >= 1");
    if (gc_shape_numel(&x->shape) < 0 || gc_shape_numel(&ind->shape) < 0 || gc_shape_numel(&u->shape) < 0)
        return gc_kfail(k, GCAM_E_SHAPE, "unknown shape");
    const int64_t kk = ind->shape.d[q - 1];
    if (kk > r) return gc_kfail(k, GCAM_E_SHAPE, "index tuples of length %lld exceed data's rank %d", (long long)kk, r);
    g->kk = (int)kk;
    /* updates (q-1 + r-k dims) = indices.shape[:-1] + data.shape[k:] */
    char b1[128], b2[128];
    int ur = q - 1 + r - g->kk, bad = u->shape.ndim != ur;
    for (int d = 0; d < q - 1 && !bad; d++) bad = u->shape.d[d] != ind->shape.d[d];
    for (int d = g->kk; d < r && !bad; d++) bad = u->shape.d[q - 1 + d - g->kk] != x->shape.d[d];
    if (bad)
        return gc_kfail(k, GCAM_E_SHAPE, "updates %s do not match indices %s and data (indices.shape[:-1] + "
                        "data.shape[k:])", gc_shape_str(&u->shape, b1, sizeof b1), gc_shape_str(&ind->shape, b2, sizeof b2));
    g->nj = 1;
    for (int d = 0; d < q - 1; d++) g->nj *= ind->shape.d[d]; /* bounded by numel(indices) */
    g->slice = 1;
    for (int d = g->kk; d < r; d++) g->slice *= x->shape.d[d]; /* bounded by numel(data) */
    g->nslots = 1;
    for (int d = g->kk - 1; d >= 0; d--) {
        g->dim[d] = x->shape.d[d];
        g->st[d] = g->nslots;
        g->nslots *= x->shape.d[d];
    }
    return GCAM_OK;
}

/* Slot of tuple j (k int64 values), or -1 when an index is out of [-dim, dim). */
static int64_t slot_of(const scatter_geom *g, const int64_t *tuple) {
    int64_t s = 0;
    for (int d = 0; d < g->kk; d++) {
        int64_t i = tuple[d];
        if (i < -g->dim[d] || i >= g->dim[d]) return -1;
        s += (i < 0 ? i + g->dim[d] : i) * g->st[d];
    }
    return s;
}

static gcam_status check_indices(gc_kctx *k, const scatter_geom *g, const int64_t *iv) {
    for (int64_t j = 0; j < g->nj; j++)
        if (slot_of(g, iv + j * g->kk) < 0) {
            char b[128];
            return gc_kfail(k, GCAM_E_SHAPE, "index tuple %lld is out of range for data %s", (long long)j,
                            gc_shape_str(&k->in[0]->shape, b, sizeof b));
        }
    return GCAM_OK;
}

static gcam_status scatter_infer(gc_kctx *k) {
    scatter_geom g;
    gcam_status st = scatter_setup(k, &g);
    if (st) return st;
    if (k->in[1]->data && (st = check_indices(k, &g, k->in[1]->data))) return st; /* known: report now */
    k->out[0]->dtype = k->in[0]->dtype;
    k->out[0]->shape = k->in[0]->shape;
    return GCAM_OK;
}

/* y (S) op= u (S) for one update slice; T is float or int64_t. */
#define SC_REDUCE(T, red, y, u, S)                                                                 \
    do {                                                                                           \
        T *y_ = (T *)(y);                                                                          \
        const T *u_ = (const T *)(u);                                                              \
        switch (red) {                                                                             \
        case SR_ADD: for (int64_t e = 0; e < (S); e++) y_[e] += u_[e]; break;                      \
        case SR_MUL: for (int64_t e = 0; e < (S); e++) y_[e] *= u_[e]; break;                      \
        case SR_MAX: for (int64_t e = 0; e < (S); e++) if (u_[e] > y_[e]) y_[e] = u_[e]; break;     \
        case SR_MIN: for (int64_t e = 0; e < (S); e++) if (u_[e] < y_[e]) y_[e] = u_[e]; break;     \
        default: break;                                                                            \
        }                                                                                          \
    } while (0)

static gcam_status scatter_forward(gc_kctx *k) {
    const scatter_params *p = k->params;
    scatter_geom g;
    gcam_status st = scatter_setup(k, &g);
    if (st) return st;
    const int64_t *iv = k->in[1]->data; /* (nj, k) */
    if ((st = check_indices(k, &g, iv))) return st;
    const size_t es = gc_dtype_size(k->in[0]->dtype), sb = (size_t)g.slice * es;
    char *y = k->out[0]->data;                   /* (nslots, S), data's shape */
    const char *u = k->in[2]->data;              /* (nj, S) */
    if (y != k->in[0]->data && g.nslots * g.slice > 0) memcpy(y, k->in[0]->data, (size_t)(g.nslots * g.slice) * es);
    for (int64_t j = 0; j < g.nj; j++) { /* in order: duplicates resolve as the spec's loop does */
        char *ys = y + (size_t)slot_of(&g, iv + j * g.kk) * sb;
        const char *us = u + (size_t)j * sb;
        if (p->red == SR_NONE) memcpy(ys, us, sb);
        else if (k->in[0]->dtype == GC_F32) SC_REDUCE(float, p->red, ys, us, g.slice);
        else SC_REDUCE(int64_t, p->red, ys, us, g.slice);
    }
    return GCAM_OK;
}

/* Backward workspace: none: one written-flag per slot; mul: the running products (data's size
 * twice) and each update's prefix (updates' size); max/min: the running extreme (float) and its
 * winner (int64) per data element. */
static size_t scatter_bscratch(const gc_kctx *k) {
    const scatter_params *p = k->params;
    scatter_geom g;
    if (!p || scatter_setup((gc_kctx *)k, &g)) return 0;
    size_t nd = (size_t)(g.nslots * g.slice), nu = (size_t)(g.nj * g.slice), a = 0, b = 0, t;
    switch (p->red) {
    case SR_NONE: return (size_t)g.nslots;
    case SR_MUL:
        if (gc_mul_sz(&a, nd, 2 * sizeof(float)) || gc_mul_sz(&b, nu, sizeof(float))) return SIZE_MAX;
        break;
    case SR_MAX: case SR_MIN:
        if (gc_mul_sz(&a, nd, sizeof(float) + sizeof(int64_t))) return SIZE_MAX;
        break;
    default: return 0;
    }
    return gc_add_sz(&t, gc_align64(a), gc_align64(b)) ? SIZE_MAX : t;
}

/* 'none': the last writer of each slot takes its gradient; slots written by nobody pass to data. */
static void bw_none(gc_kctx *k, const scatter_geom *g, const int64_t *iv, const float *gy) {
    unsigned char *seen = k->scratch;
    memset(seen, 0, (size_t)g->nslots);
    float *gu = k->gin[2] ? k->gin[2]->data : NULL, *gx = k->gin[0] ? k->gin[0]->data : NULL;
    const int64_t S = g->slice;
    for (int64_t j = g->nj - 1; j >= 0; j--) {
        int64_t s = slot_of(g, iv + j * g->kk);
        if (seen[s]) continue;
        seen[s] = 1;
        if (gu)
            for (int64_t e = 0; e < S; e++) gu[j * S + e] += gy[s * S + e];
    }
    if (gx)
        for (int64_t s = 0; s < g->nslots; s++)
            if (!seen[s])
                for (int64_t e = 0; e < S; e++) gx[s * S + e] += gy[s * S + e];
}

/* 'mul': y = x * u_1 * ... * u_m per slot, differentiated without dividing (zeros allowed): a
 * forward pass keeps each update's prefix product, a backward pass the suffix. */
static void bw_mul(gc_kctx *k, const scatter_geom *g, const int64_t *iv, const float *gy) {
    const int64_t S = g->slice, nd = g->nslots * S;
    float *run = k->scratch, *suf = run + nd, *pre = (float *)((char *)k->scratch + gc_align64((size_t)nd * 2 * sizeof(float)));
    const float *x = k->in[0]->data, *u = k->in[2]->data;
    float *gu = k->gin[2] ? k->gin[2]->data : NULL, *gx = k->gin[0] ? k->gin[0]->data : NULL;
    memcpy(run, x, (size_t)nd * sizeof(float));
    for (int64_t e = 0; e < nd; e++) suf[e] = 1.0f;
    for (int64_t j = 0; j < g->nj; j++) { /* pre_j = x * u_1..u_{j-1} at j's slot */
        int64_t o = slot_of(g, iv + j * g->kk) * S;
        for (int64_t e = 0; e < S; e++) {
            pre[j * S + e] = run[o + e];
            run[o + e] *= u[j * S + e];
        }
    }
    for (int64_t j = g->nj - 1; j >= 0; j--) { /* suf = u_{j+1}..u_m at j's slot */
        int64_t o = slot_of(g, iv + j * g->kk) * S;
        for (int64_t e = 0; e < S; e++) {
            if (gu) gu[j * S + e] += gy[o + e] * pre[j * S + e] * suf[o + e];
            suf[o + e] *= u[j * S + e];
        }
    }
    if (gx)
        for (int64_t e = 0; e < nd; e++) gx[e] += gy[e] * suf[e];
}

/* 'max'/'min': replays the forward's comparisons; the gradient goes to the value that won (data,
 * or the first update that reached the extreme). */
static void bw_extreme(gc_kctx *k, const scatter_geom *g, const int64_t *iv, const float *gy, int is_max) {
    const int64_t S = g->slice, nd = g->nslots * S;
    float *cur = k->scratch;
    int64_t *win = (int64_t *)((char *)k->scratch + gc_align64((size_t)nd * sizeof(float)));
    const float *x = k->in[0]->data, *u = k->in[2]->data;
    float *gu = k->gin[2] ? k->gin[2]->data : NULL, *gx = k->gin[0] ? k->gin[0]->data : NULL;
    memcpy(cur, x, (size_t)nd * sizeof(float));
    for (int64_t e = 0; e < nd; e++) win[e] = -1;
    for (int64_t j = 0; j < g->nj; j++) {
        int64_t o = slot_of(g, iv + j * g->kk) * S;
        for (int64_t e = 0; e < S; e++) {
            float v = u[j * S + e];
            if (is_max ? v > cur[o + e] : v < cur[o + e]) cur[o + e] = v, win[o + e] = j;
        }
    }
    if (gx)
        for (int64_t e = 0; e < nd; e++)
            if (win[e] < 0) gx[e] += gy[e];
    if (gu)
        for (int64_t j = 0; j < g->nj; j++) {
            int64_t o = slot_of(g, iv + j * g->kk) * S;
            for (int64_t e = 0; e < S; e++)
                if (win[o + e] == j) gu[j * S + e] += gy[o + e];
        }
}

static gcam_status scatter_backward(gc_kctx *k) {
    const scatter_params *p = k->params;
    scatter_geom g;
    gcam_status st = scatter_setup(k, &g);
    if (st) return st;
    if (!k->gout[0] || (!k->gin[0] && !k->gin[2])) return GCAM_OK;
    if (k->in[0]->dtype != GC_F32) return GCAM_OK; /* no gradient through integers */
    const int64_t *iv = k->in[1]->data;
    if ((st = check_indices(k, &g, iv))) return st;
    const float *gy = k->gout[0]->data; /* data's shape */
    if (g.nslots * g.slice == 0) return GCAM_OK;
    switch (p->red) {
    case SR_NONE: bw_none(k, &g, iv, gy); break;
    case SR_ADD: {
        float *gx = k->gin[0] ? k->gin[0]->data : NULL, *gu = k->gin[2] ? k->gin[2]->data : NULL;
        const int64_t S = g.slice, nd = g.nslots * S;
        if (gx)
            for (int64_t e = 0; e < nd; e++) gx[e] += gy[e];
        if (gu)
            for (int64_t j = 0; j < g.nj; j++) {
                const float *ys = gy + slot_of(&g, iv + j * g.kk) * S;
                for (int64_t e = 0; e < S; e++) gu[j * S + e] += ys[e];
            }
        break;
    }
    case SR_MUL: bw_mul(k, &g, iv, gy); break;
    case SR_MAX: case SR_MIN: bw_extreme(k, &g, iv, gy, p->red == SR_MAX); break;
    }
    return GCAM_OK;
}

/* Backward reads the indices always, data and updates for mul/max/min (the mask is per op, so all). */
const gc_opdef gc_def_ScatterND = {.name = "ScatterND", .min_opset = 11, .parse = scatter_parse,
                                   .infer = scatter_infer, .forward = scatter_forward,
                                   .bscratch_bytes = scatter_bscratch, .backward = scatter_backward,
                                   .bw_in = 0x7u, .diff_in = (1u << 0) | (1u << 2)};

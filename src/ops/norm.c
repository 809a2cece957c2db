/* Normalisations: BatchNormalization (inference), InstanceNormalization, LayerNormalization,
 * LRN, Softmax and LogSoftmax. Statistics are accumulated in double (two passes: mean, then
 * squared deviations) so forward and backward agree closely with finite differences. */
#include "kutil.h"
#include "isa.h"

#include <math.h>

/* One malloc block for node->params. */
static gcam_status set_params(gc_node *n, gc_err *err, const void *p, size_t size) {
    void *q = malloc(size);
    if (!q) return gc_node_fail(n, err, GCAM_E_NOMEM, "out of memory");
    memcpy(q, p, size);
    free(n->params);
    n->params = q;
    return GCAM_OK;
}

/* A float32 input that must be present with a known shape. */
static gcam_status need_f32(gc_kctx *k, int i, const char *what) {
    const gc_tensor *t = i < k->n_in ? k->in[i] : NULL;
    if (!t) return gc_kfail(k, GCAM_E_FORMAT, "input %d (%s) missing", i, what);
    if (t->dtype != GC_F32) return gc_kfail(k, GCAM_E_UNSUPPORTED, "input %d (%s) must be float32", i, what);
    if (gc_numel(t) < 0) return gc_kfail(k, GCAM_E_SHAPE, "input %d (%s) has an unknown shape", i, what);
    return GCAM_OK;
}

/* Statistics sums use 8 float lanes (vectorisable) flushed to double every RUN_BLK elements:
 * the rounding of short float sums, a fixed order, and no drift over long runs. */
#define RUN_BLK 2048

/* Mean and 1/sqrt(var + eps) of a contiguous run, var the population variance (two passes). */
static void run_stats(const float *x, int64_t n, float eps, float *mean, float *rstd) {
    double s = 0, ss = 0;
    for (int64_t i0 = 0; i0 < n; i0 += RUN_BLK) {
        int64_t e = GC_MIN(n, i0 + RUN_BLK), i = i0;
        float acc[8] = {0};
        for (; i + 8 <= e; i += 8)
            for (int l = 0; l < 8; l++) acc[l] += x[i + l];
        for (; i < e; i++) acc[0] += x[i];
        for (int l = 0; l < 8; l++) s += acc[l];
    }
    float mu = n ? (float)(s / (double)n) : 0.0f;
    for (int64_t i0 = 0; i0 < n; i0 += RUN_BLK) {
        int64_t e = GC_MIN(n, i0 + RUN_BLK), i = i0;
        float acc[8] = {0};
        for (; i + 8 <= e; i += 8)
            for (int l = 0; l < 8; l++) acc[l] += (x[i + l] - mu) * (x[i + l] - mu);
        for (; i < e; i++) acc[0] += (x[i] - mu) * (x[i] - mu);
        for (int l = 0; l < 8; l++) ss += acc[l];
    }
    double var = n ? ss / (double)n : 0;
    *mean = mu;
    *rstd = (float)(1.0 / sqrt(var + (double)eps));
}

/* Gradient of y = (x - mean) * rstd * w for one run, w per element (w != NULL) or the scalar w0:
 * gx += rstd * (dh - mean(dh) - h * mean(dh * h)), dh = gy * w, h = (x - mean) * rstd. */
static void run_norm_bw(float *restrict gx, const float *restrict gy, const float *restrict x, const float *w, float w0,
                        int64_t n, float mean, float rstd) {
    double sdh = 0, sdhh = 0;
    for (int64_t i0 = 0; i0 < n; i0 += RUN_BLK) {
        int64_t e = GC_MIN(n, i0 + RUN_BLK), i = i0;
        float a1[8] = {0}, a2[8] = {0};
        for (; i + 8 <= e; i += 8)
            for (int l = 0; l < 8; l++) {
                float dh = gy[i + l] * (w ? w[i + l] : w0);
                a1[l] += dh;
                a2[l] += dh * ((x[i + l] - mean) * rstd);
            }
        for (; i < e; i++) {
            float dh = gy[i] * (w ? w[i] : w0);
            a1[0] += dh;
            a2[0] += dh * ((x[i] - mean) * rstd);
        }
        for (int l = 0; l < 8; l++) {
            sdh += a1[l];
            sdhh += a2[l];
        }
    }
    float a = (float)(sdh / (double)n), b = (float)(sdhh / (double)n);
    for (int64_t i = 0; i < n; i++) {
        float h = (x[i] - mean) * rstd;
        gx[i] += rstd * (gy[i] * (w ? w[i] : w0) - a - h * b);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* BatchNormalization (inference): y = (x - mean) * scale / sqrt(var + eps) + B per channel     */

typedef struct bn_params { float eps; } bn_params;

static gcam_status bn_parse(gc_node *n, gc_err *err) {
    bn_params p = {gc_attr_float(n, "epsilon", 1e-5f)};
    if (!(p.eps >= 0)) return gc_node_fail(n, err, GCAM_E_FORMAT, "epsilon must be >= 0");
    if (n->opset <= 8 && gc_attr_int(n, "spatial", 1) != 1)
        return gc_node_fail(n, err, GCAM_E_UNSUPPORTED, "spatial=0 (per-activation statistics) not supported");
    if (gc_attr_int(n, "training_mode", 0) != 0)
        return gc_node_fail(n, err, GCAM_E_UNSUPPORTED, "training_mode=1 not supported (inference only)");
    return set_params(n, err, &p, sizeof p);
}

static gcam_status bn_infer(gc_kctx *k) {
    static const char *names[5] = {"X", "scale", "B", "mean", "var"};
    if (k->n_in < 5) return gc_kfail(k, GCAM_E_FORMAT, "needs 5 inputs, got %d", k->n_in);
    for (int i = 0; i < 5; i++) {
        gcam_status st = need_f32(k, i, names[i]);
        if (st) return st;
    }
    const gc_tensor *x = k->in[0];
    if (x->shape.ndim < 2) return gc_kfail(k, GCAM_E_SHAPE, "X rank %d < 2", x->shape.ndim);
    for (int i = 1; i < 5; i++)
        if (gc_numel(k->in[i]) != x->shape.d[1] || k->in[i]->shape.ndim != 1)
            return gc_kfail(k, GCAM_E_SHAPE, "%s must have shape (C) = (%lld)", names[i], (long long)x->shape.d[1]);
    for (int j = 1; j < k->n_out; j++)
        if (k->out[j])
            return gc_kfail(k, GCAM_E_UNSUPPORTED, "output %d (running/saved statistics) exists only in training mode", j);
    if (!k->out[0]) return gc_kfail(k, GCAM_E_FORMAT, "output Y missing");
    k->out[0]->dtype = GC_F32;
    k->out[0]->shape = x->shape;
    return GCAM_OK;
}

/* (N, C, S) layout: planes of S contiguous values per (n, c). */
static void nc_dims(const gc_shape *s, int64_t *N, int64_t *C, int64_t *S) {
    *N = s->d[0];
    *C = s->ndim > 1 ? s->d[1] : 1;
    *S = 1;
    for (int i = 2; i < s->ndim; i++) *S *= s->d[i];
}

static inline float bn_a(const bn_params *p, const float *scale, const float *var, int64_t c) {
    return scale[c] / sqrtf(var[c] + p->eps);
}

/* The fused Concat's input holding channel c: off[lo] <= c < off[lo + 1] (off ascending). */
static int cat_of(const int64_t *off, int ncat, int64_t c) {
    int lo = 0, hi = ncat;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (off[mid] <= c) lo = mid;
        else hi = mid;
    }
    return lo;
}

static gcam_status bn_forward(gc_kctx *k) {
    const bn_params *p = k->params;
    int64_t N, C, S;
    nc_dims(&k->in[0]->shape, &N, &C, &S);
    const float *x = k->in[0]->data;      /* (N, C, S); NULL with cat_in */
    const float *sc = k->in[1]->data, *b = k->in[2]->data, *m = k->in[3]->data, *v = k->in[4]->data; /* (C) */
    float *y = k->out[0]->data;           /* (N, C, S) */
    /* A Concat fused in (DenseNet: every layer normalises the concatenation of all earlier
     * features): channel c of X is channel c - off[i] of cat_in[i] (N, C_i, S), read in place
     * instead of copied first. */
    int64_t off[GC_MAX_IO + 1];
    const int ncat = k->fuse.cat_in ? k->fuse.n_cat : 0;
    off[0] = 0;
    for (int i = 0; i < ncat; i++) off[i + 1] = off[i] + k->fuse.cat_in[i]->shape.d[1];
    if (ncat && off[ncat] != C) return gc_kfail(k, GCAM_E_INTERNAL, "fused Concat: %lld channels, X has %lld",
                                                (long long)off[ncat], (long long)C);
    int nt = gc_kthreads(k);
#pragma omp parallel for num_threads(nt) schedule(static) if (N * C * S > 65536)
    for (int64_t pl = 0; pl < N * C; pl++) {
        int64_t c = pl % C;
        float a = bn_a(p, sc, v, c), o = b[c] - m[c] * a;
        const float *xs;
        if (!ncat) {
            xs = x + pl * S;
        } else { /* the input holding channel c */
            const int lo = cat_of(off, ncat, c);
            const int64_t ci = off[lo + 1] - off[lo];
            xs = (const float *)k->fuse.cat_in[lo]->data + ((pl / C) * ci + (c - off[lo])) * S;
        }
        float *ys = y + pl * S;
        if (k->fuse.relu)
            for (int64_t i = 0; i < S; i++) {
                float t = xs[i] * a + o;
                ys[i] = t < 0.0f ? 0.0f : t; /* as Relu: NaN propagates */
            }
        else
            for (int64_t i = 0; i < S; i++) ys[i] = xs[i] * a + o;
    }
    return GCAM_OK;
}

static gcam_status bn_backward(gc_kctx *k) {
    const int ncat = k->fuse.gcat_in ? k->fuse.n_cat : 0; /* the gradient goes into the Concat's inputs' */
    if ((!k->gin[0] && !ncat) || !k->gout[0]) return GCAM_OK;
    const bn_params *p = k->params;
    int64_t N, C, S;
    nc_dims(&k->in[0]->shape, &N, &C, &S);
    const float *sc = k->in[1]->data, *v = k->in[4]->data; /* (C) */
    const float *gy = k->gout[0]->data;                     /* (N, C, S) */
    float *gx = ncat ? NULL : k->gin[0]->data;              /* (N, C, S) */
    /* a fused Relu: gy is its output's gradient and y its output (== ours, shared buffer) */
    const float *y = k->fuse.relu ? k->out[0]->data : NULL; /* (N, C, S) */
    const gc_rule rule = k->rule;
    int64_t off[GC_MAX_IO + 1];
    off[0] = 0;
    if (ncat && (!k->fuse.cat_in || k->fuse.n_cat != ncat)) return gc_kfail(k, GCAM_E_INTERNAL, "fused Concat backward");
    for (int i = 0; i < ncat; i++) off[i + 1] = off[i] + k->fuse.cat_in[i]->shape.d[1];
    if (ncat && off[ncat] != C)
        return gc_kfail(k, GCAM_E_INTERNAL, "fused Concat backward: %lld channels, X has %lld",
                        (long long)off[ncat], (long long)C);
    int nt = gc_kthreads(k);
#pragma omp parallel for num_threads(nt) schedule(static) if (N * C * S > 65536)
    for (int64_t pl = 0; pl < N * C; pl++) {
        const int64_t c = pl % C;
        float a = bn_a(p, sc, v, c);
        const float *g = gy + pl * S;
        float *d;
        int fresh = (int)(k->gin_fresh & 1); /* gx first written here: assign */
        if (!ncat) {
            d = gx + pl * S;
        } else { /* channel c - off[i] of the gradient (N, C_i, S) of Concat input i */
            const int i = cat_of(off, ncat, c);
            if (!k->fuse.gcat_in[i]) continue; /* not wanted */
            d = (float *)k->fuse.gcat_in[i]->data + ((pl / C) * (off[i + 1] - off[i]) + (c - off[i])) * S;
            fresh = (int)((k->fuse.gcat_fresh >> i) & 1);
        }
        if (y) {
            gc_relu_vjp_axpy(d, g, y + pl * S, S, a, rule, fresh);
        } else if (fresh) {
            for (int64_t i = 0; i < S; i++) d[i] = g[i] * a;
        } else {
            for (int64_t i = 0; i < S; i++) d[i] += g[i] * a;
        }
    }
    return GCAM_OK;
}

const gc_opdef gc_def_BatchNormalization = {
    .name = "BatchNormalization", .min_opset = 6, .parse = bn_parse, .infer = bn_infer,
    .forward = bn_forward, .backward = bn_backward, .bw_in = (1u << 1) | (1u << 4), .bw_out = 0,
    .diff_in = 1, .fuse_relu = 1, .fuse_concat = 1, .fuse_relu_bw = 1, .bw_assign = 1};

/* ------------------------------------------------------------------------------------------ */
/* InstanceNormalization: statistics per (n, c) plane, then scale/B per channel                 */

typedef struct eps_params { float eps; } eps_params;

static gcam_status in_parse(gc_node *n, gc_err *err) {
    eps_params p = {gc_attr_float(n, "epsilon", 1e-5f)};
    if (!(p.eps >= 0)) return gc_node_fail(n, err, GCAM_E_FORMAT, "epsilon must be >= 0");
    return set_params(n, err, &p, sizeof p);
}

static gcam_status in_infer(gc_kctx *k) {
    static const char *names[3] = {"input", "scale", "B"};
    if (k->n_in < 3) return gc_kfail(k, GCAM_E_FORMAT, "needs 3 inputs, got %d", k->n_in);
    for (int i = 0; i < 3; i++) {
        gcam_status st = need_f32(k, i, names[i]);
        if (st) return st;
    }
    const gc_tensor *x = k->in[0];
    if (x->shape.ndim < 3) return gc_kfail(k, GCAM_E_SHAPE, "input rank %d < 3", x->shape.ndim);
    for (int i = 1; i < 3; i++)
        if (gc_numel(k->in[i]) != x->shape.d[1] || k->in[i]->shape.ndim != 1)
            return gc_kfail(k, GCAM_E_SHAPE, "%s must have shape (C) = (%lld)", names[i], (long long)x->shape.d[1]);
    if (!k->out[0]) return gc_kfail(k, GCAM_E_FORMAT, "output missing");
    k->out[0]->dtype = GC_F32;
    k->out[0]->shape = x->shape;
    return GCAM_OK;
}

static gcam_status in_forward(gc_kctx *k) {
    const eps_params *p = k->params;
    int64_t N, C, S;
    nc_dims(&k->in[0]->shape, &N, &C, &S);
    const float *x = k->in[0]->data;                     /* (N, C, S) */
    const float *sc = k->in[1]->data, *b = k->in[2]->data; /* (C) */
    float *y = k->out[0]->data;                          /* (N, C, S) */
    int nt = gc_kthreads(k);
#pragma omp parallel for num_threads(nt) schedule(static) if (N * C * S > 32768)
    for (int64_t pl = 0; pl < N * C; pl++) {
        int64_t c = pl % C;
        float mu, r;
        run_stats(x + pl * S, S, p->eps, &mu, &r);
        float a = r * sc[c], o = b[c] - mu * a;
        const float *xs = x + pl * S;
        float *ys = y + pl * S;
        for (int64_t i = 0; i < S; i++) ys[i] = xs[i] * a + o;
    }
    return GCAM_OK;
}

static gcam_status in_backward(gc_kctx *k) {
    if (!k->gin[0] || !k->gout[0]) return GCAM_OK;
    const eps_params *p = k->params;
    int64_t N, C, S;
    nc_dims(&k->in[0]->shape, &N, &C, &S);
    const float *x = k->in[0]->data, *sc = k->in[1]->data; /* (N, C, S), (C) */
    const float *gy = k->gout[0]->data;                    /* (N, C, S) */
    float *gx = k->gin[0]->data;                           /* (N, C, S) */
    int nt = gc_kthreads(k);
#pragma omp parallel for num_threads(nt) schedule(static) if (N * C * S > 32768)
    for (int64_t pl = 0; pl < N * C; pl++) {
        float mu, r;
        run_stats(x + pl * S, S, p->eps, &mu, &r);
        run_norm_bw(gx + pl * S, gy + pl * S, x + pl * S, NULL, sc[pl % C], S, mu, r);
    }
    return GCAM_OK;
}

const gc_opdef gc_def_InstanceNormalization = {
    .name = "InstanceNormalization", .min_opset = 6, .parse = in_parse, .infer = in_infer,
    .forward = in_forward, .backward = in_backward, .bw_in = (1u << 0) | (1u << 1), .bw_out = 0,
    .diff_in = 1};

/* ------------------------------------------------------------------------------------------ */
/* LayerNormalization (opset 17): rows = X.shape[:axis], normalised over X.shape[axis:]         */

typedef struct ln_params { int64_t axis; float eps; } ln_params;

static gcam_status ln_parse(gc_node *n, gc_err *err) {
    ln_params p = {gc_attr_int(n, "axis", -1), gc_attr_float(n, "epsilon", 1e-5f)};
    if (!(p.eps >= 0)) return gc_node_fail(n, err, GCAM_E_FORMAT, "epsilon must be >= 0");
    return set_params(n, err, &p, sizeof p);
}

/* Rows O and row length M. */
static void ln_dims(const gc_shape *s, int axis, int64_t *O, int64_t *M) {
    *O = *M = 1;
    for (int i = 0; i < s->ndim; i++) *(i < axis ? O : M) *= s->d[i];
}

static gcam_status ln_infer(gc_kctx *k) {
    const ln_params *p = k->params;
    gcam_status st = need_f32(k, 0, "X");
    if (!st) st = need_f32(k, 1, "Scale");
    if (!st && k->n_in > 2 && k->in[2]) st = need_f32(k, 2, "B");
    if (st) return st;
    const gc_tensor *x = k->in[0];
    int r = x->shape.ndim;
    int axis = gc_norm_axis(p->axis, r);
    if (axis < 0) return gc_kfail(k, GCAM_E_FORMAT, "axis %lld out of range for rank %d", (long long)p->axis, r);
    int64_t O, M;
    ln_dims(&x->shape, axis, &O, &M);
    for (int i = 1; i < 3 && i < k->n_in; i++) {
        const gc_tensor *t = k->in[i];
        if (!t) continue;
        int64_t n = gc_numel(t);
        /* Scale/B must broadcast to X.shape[axis:]: a full match (leading 1s allowed) or a scalar. */
        int ok = n == 1;
        if (!ok && n == M && t->shape.ndim <= r) {
            ok = 1;
            for (int j = 0; j < t->shape.ndim; j++) {
                int xj = r - t->shape.ndim + j;
                if (xj < axis ? t->shape.d[j] != 1 : t->shape.d[j] != x->shape.d[xj]) ok = 0;
            }
        }
        if (!ok) return gc_kfail(k, GCAM_E_UNSUPPORTED, "%s must have the normalised shape X.shape[axis:] or one element",
                                 i == 1 ? "Scale" : "B");
    }
    if (!k->out[0]) return gc_kfail(k, GCAM_E_FORMAT, "output Y missing");
    k->out[0]->dtype = GC_F32;
    k->out[0]->shape = x->shape;
    for (int j = 1; j < 3 && j < k->n_out; j++) {
        if (!k->out[j]) continue;
        k->out[j]->dtype = GC_F32;
        k->out[j]->shape = x->shape;
        for (int i = axis; i < r; i++) k->out[j]->shape.d[i] = 1;
    }
    return GCAM_OK;
}

static gcam_status ln_forward(gc_kctx *k) {
    const ln_params *p = k->params;
    const gc_tensor *xt = k->in[0];
    int axis = gc_norm_axis(p->axis, xt->shape.ndim);
    int64_t O, M;
    ln_dims(&xt->shape, axis, &O, &M);
    const float *x = xt->data;                     /* (O, M) */
    const float *w = k->in[1]->data;               /* (M) or (1) */
    const float *b = k->n_in > 2 && k->in[2] ? k->in[2]->data : NULL;
    int64_t ws = gc_numel(k->in[1]) == 1 ? 0 : 1, bs = b && gc_numel(k->in[2]) == 1 ? 0 : 1;
    float *y = k->out[0]->data;                    /* (O, M) */
    float *mo = k->n_out > 1 && k->out[1] ? k->out[1]->data : NULL; /* (O) */
    float *ro = k->n_out > 2 && k->out[2] ? k->out[2]->data : NULL; /* (O) */
    int nt = gc_kthreads(k);
#pragma omp parallel for num_threads(nt) schedule(static) if (O * M > 32768)
    for (int64_t o = 0; o < O; o++) {
        float mu, r;
        run_stats(x + o * M, M, p->eps, &mu, &r);
        const float *xs = x + o * M;
        float *ys = y + o * M;
        float w0 = w[0], b0 = b ? b[0] : 0.0f;
        const float *wv = ws ? w : NULL, *bv = b && bs ? b : NULL; /* NULL: one value for the row */
        for (int64_t i = 0; i < M; i++) ys[i] = (xs[i] - mu) * r * (wv ? wv[i] : w0) + (bv ? bv[i] : b0);
        if (mo) mo[o] = mu;
        if (ro) ro[o] = r;
    }
    return GCAM_OK;
}

/* Through Y (scale included), and through the Mean / InvStdDev outputs when they get gradients. */
static gcam_status ln_backward(gc_kctx *k) {
    if (!k->gin[0]) return GCAM_OK;
    const ln_params *p = k->params;
    const gc_tensor *xt = k->in[0];
    int axis = gc_norm_axis(p->axis, xt->shape.ndim);
    int64_t O, M;
    ln_dims(&xt->shape, axis, &O, &M);
    const float *x = xt->data, *w = k->in[1]->data;  /* (O, M), (M) or (1) */
    int64_t ws = gc_numel(k->in[1]) == 1 ? 0 : 1;
    const float *gy = k->gout[0] ? k->gout[0]->data : NULL;                      /* (O, M) */
    const float *gm = k->n_out > 1 && k->gout[1] ? k->gout[1]->data : NULL;      /* (O) */
    const float *gr = k->n_out > 2 && k->gout[2] ? k->gout[2]->data : NULL;      /* (O) */
    if (!gy && !gm && !gr) return GCAM_OK;
    float *gx = k->gin[0]->data;                                                  /* (O, M) */
    int nt = gc_kthreads(k);
#pragma omp parallel for num_threads(nt) schedule(static) if (O * M > 32768)
    for (int64_t o = 0; o < O; o++) {
        float mu, r;
        const float *xs = x + o * M;
        float *d = gx + o * M;
        run_stats(xs, M, p->eps, &mu, &r);
        if (gy) run_norm_bw(d, gy + o * M, xs, ws ? w : NULL, w[0], M, mu, r);
        /* d mean / dx = 1/M; d rstd / dx = -rstd^3 (x - mean) / M */
        float cm = gm ? gm[o] / (float)M : 0.0f, cr = gr ? -gr[o] * r * r * r / (float)M : 0.0f;
        if (gm || gr)
            for (int64_t i = 0; i < M; i++) d[i] += cm + cr * (xs[i] - mu);
    }
    return GCAM_OK;
}

const gc_opdef gc_def_LayerNormalization = {
    .name = "LayerNormalization", .min_opset = 17, .parse = ln_parse, .infer = ln_infer,
    .forward = ln_forward, .backward = ln_backward, .bw_in = (1u << 0) | (1u << 1), .bw_out = 0,
    .diff_in = 1};

/* ------------------------------------------------------------------------------------------ */
/* LRN: y = x / (bias + alpha/size * sum_{c' in win(c)} x[c']^2)^beta, win(c) = [c - floor((size-1)/2),
 * c + ceil((size-1)/2)] clipped to the channels                                                 */

typedef struct lrn_params { int64_t size; float alpha, beta, bias; } lrn_params;

static gcam_status lrn_parse(gc_node *n, gc_err *err) {
    lrn_params p = {gc_attr_int(n, "size", 0), gc_attr_float(n, "alpha", 1e-4f), gc_attr_float(n, "beta", 0.75f),
                    gc_attr_float(n, "bias", 1.0f)};
    if (p.size < 1 || p.size > INT32_MAX)
        return gc_node_fail(n, err, GCAM_E_FORMAT, "size must be a positive integer (required), got %lld", (long long)p.size);
    if (!isfinite(p.alpha) || !isfinite(p.beta) || !isfinite(p.bias))
        return gc_node_fail(n, err, GCAM_E_FORMAT, "alpha, beta and bias must be finite");
    return set_params(n, err, &p, sizeof p);
}

static gcam_status lrn_infer(gc_kctx *k) {
    gcam_status st = need_f32(k, 0, "X");
    if (st) return st;
    const gc_tensor *x = k->in[0];
    if (x->shape.ndim < 2) return gc_kfail(k, GCAM_E_SHAPE, "X rank %d < 2", x->shape.ndim);
    if (!k->out[0]) return gc_kfail(k, GCAM_E_FORMAT, "output Y missing");
    k->out[0]->dtype = GC_F32;
    k->out[0]->shape = x->shape;
    return GCAM_OK;
}

/* s (S) = bias + alpha/size * sum of squares of channels [lo, hi] in x_n (C, S). */
static void lrn_denominator(float *s, const float *xn, int64_t c, int64_t C, int64_t S, const lrn_params *p) {
    int64_t lo = GC_MAX(0, c - (p->size - 1) / 2), hi = GC_MIN(C - 1, c + p->size / 2);
    for (int64_t i = 0; i < S; i++) s[i] = 0;
    for (int64_t cc = lo; cc <= hi; cc++) {
        const float *xc = xn + cc * S;
        for (int64_t i = 0; i < S; i++) s[i] += xc[i] * xc[i];
    }
    float f = p->alpha / (float)p->size;
    for (int64_t i = 0; i < S; i++) s[i] = p->bias + f * s[i];
}

static gcam_status lrn_forward(gc_kctx *k) {
    const lrn_params *p = k->params;
    int64_t N, C, S;
    nc_dims(&k->in[0]->shape, &N, &C, &S);
    const float *x = k->in[0]->data; /* (N, C, S) */
    float *y = k->out[0]->data;      /* (N, C, S) */
    int nt = gc_kthreads(k);
#pragma omp parallel for num_threads(nt) schedule(static) if (N * C * S > 16384)
    for (int64_t pl = 0; pl < N * C; pl++) {
        int64_t n = pl / C, c = pl % C;
        float *ys = y + pl * S;
        const float *xs = x + pl * S;
        lrn_denominator(ys, x + n * C * S, c, C, S, p);
        for (int64_t i = 0; i < S; i++) ys[i] = xs[i] * powf(ys[i], -p->beta);
    }
    return GCAM_OK;
}

static size_t lrn_bscratch(const gc_kctx *k) {
    size_t b;
    if (gc_mul_sz(&b, (size_t)gc_numel(k->in[0]), sizeof(float))) return 0;
    return b;
}

/* gx_j += gy_j s_j^-beta - 2 alpha beta / size * x_j * sum_{c: j in win(c)} gy_c x_c s_c^(-beta-1) */
static gcam_status lrn_backward(gc_kctx *k) {
    if (!k->gin[0] || !k->gout[0]) return GCAM_OK;
    const lrn_params *p = k->params;
    int64_t N, C, S;
    nc_dims(&k->in[0]->shape, &N, &C, &S);
    if (!k->scratch || k->scratch_size < (size_t)(N * C * S) * sizeof(float))
        return gc_kfail(k, GCAM_E_INTERNAL, "LRN backward scratch missing");
    const float *x = k->in[0]->data, *gy = k->gout[0]->data; /* (N, C, S) */
    float *gx = k->gin[0]->data;                             /* (N, C, S) */
    float *t = k->scratch;                                   /* (N, C, S): gy x s^(-beta-1) */
    float f = -2.0f * p->alpha * p->beta / (float)p->size;
    int nt = gc_kthreads(k);
#pragma omp parallel for num_threads(nt) schedule(static) if (N * C * S > 16384)
    for (int64_t pl = 0; pl < N * C; pl++) {
        int64_t n = pl / C, c = pl % C;
        float *ts = t + pl * S, *d = gx + pl * S;
        const float *xs = x + pl * S, *g = gy + pl * S;
        lrn_denominator(ts, x + n * C * S, c, C, S, p);
        for (int64_t i = 0; i < S; i++) {
            float sb = powf(ts[i], -p->beta);
            d[i] += g[i] * sb;
            ts[i] = g[i] * xs[i] * sb / ts[i];
        }
    }
#pragma omp parallel for num_threads(nt) schedule(static) if (N * C * S > 16384)
    for (int64_t pl = 0; pl < N * C; pl++) {
        int64_t n = pl / C, j = pl % C;
        int64_t lo = GC_MAX(0, j - p->size / 2), hi = GC_MIN(C - 1, j + (p->size - 1) / 2);
        float *d = gx + pl * S;
        const float *xs = x + pl * S;
        for (int64_t c = lo; c <= hi; c++) {
            const float *tc = t + (n * C + c) * S;
            for (int64_t i = 0; i < S; i++) d[i] += f * xs[i] * tc[i];
        }
    }
    return GCAM_OK;
}

const gc_opdef gc_def_LRN = {
    .name = "LRN", .min_opset = 1, .parse = lrn_parse, .infer = lrn_infer, .forward = lrn_forward,
    .bscratch_bytes = lrn_bscratch, .backward = lrn_backward, .bw_in = 1, .bw_out = 0, .diff_in = 1};

/* ------------------------------------------------------------------------------------------ */
/* Softmax, LogSoftmax. Opset < 13: input coerced to 2-D at axis (default 1), the op runs over
 * the flattened dims [axis:]. Opset >= 13: over the one axis (default -1).                    */

typedef struct sm_params { int64_t axis; int coerce; } sm_params;

static gcam_status sm_parse(gc_node *n, gc_err *err) {
    sm_params p = {.coerce = n->opset < 13};
    p.axis = gc_attr_int(n, "axis", p.coerce ? 1 : -1);
    return set_params(n, err, &p, sizeof p);
}

/* Layout (O, A, I): the op runs over A, elements of one group at stride I. */
static void sm_dims(const sm_params *p, const gc_shape *s, int64_t *O, int64_t *A, int64_t *I) {
    int axis = gc_norm_axis(p->axis, s->ndim);
    *O = *A = *I = 1;
    for (int i = 0; i < s->ndim; i++) {
        if (i < axis) *O *= s->d[i];
        else if (i == axis || p->coerce) *A *= s->d[i];
        else *I *= s->d[i];
    }
}

static gcam_status sm_infer(gc_kctx *k) {
    const sm_params *p = k->params;
    gcam_status st = need_f32(k, 0, "input");
    if (st) return st;
    const gc_tensor *x = k->in[0];
    if (x->shape.ndim < 1) return gc_kfail(k, GCAM_E_SHAPE, "input must have rank >= 1");
    if (gc_norm_axis(p->axis, x->shape.ndim) < 0)
        return gc_kfail(k, GCAM_E_FORMAT, "axis %lld out of range for rank %d", (long long)p->axis, x->shape.ndim);
    if (!k->out[0]) return gc_kfail(k, GCAM_E_FORMAT, "output missing");
    k->out[0]->dtype = GC_F32;
    k->out[0]->shape = x->shape;
    return GCAM_OK;
}

#define SM_BLK 64 /* strided groups are processed SM_BLK at a time (vectorised over I) */

/* e^x for x <= 0 (softmax arguments x - max, log-softmax outputs): Cody-Waite reduction by
 * ln 2 and a degree-7 Taylor polynomial (~1e-7 relative), branch-free and clamped through the
 * integer bits so that loops over it vectorise (libm's expf does not). Results below ~1e-38
 * flush to 0; exp(-inf) = 0; NaN stays NaN. */
GC_INLINE float exp_neg(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u = u < 0xC2C80000u ? u : 0xC2C80000u; /* x < -100 (as sign-magnitude bits) -> -100 */
    memcpy(&x, &u, sizeof u);
    float k = x * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23: round(x / ln 2) lands in the low bits */
    uint32_t kb;
    memcpy(&kb, &k, sizeof kb);
    float n = k - 12582912.0f;
    float f = x - n * 0.693145751953125f;            /* ln 2, high part: n * hi is exact */
    f = f - n * 1.42860682030941723212e-6f;          /* ln 2, low part */
    float p = 1.0f / 5040;
    p = p * f + 1.0f / 720;
    p = p * f + 1.0f / 120;
    p = p * f + 1.0f / 24;
    p = p * f + 1.0f / 6;
    p = p * f + 0.5f;
    p = p * f + 1.0f;
    p = p * f + 1.0f;
    int32_t e = (int32_t)(kb - 0x4B400000u) + 127; /* biased exponent of 2^n, kept in [0, 254] */
    e = e > 0 ? e : 0;
    e = e < 254 ? e : 254;
    uint32_t sb = (uint32_t)e << 23;
    float sc;
    memcpy(&sc, &sb, sizeof sc);
    return p * sc;
}

/* NaN-propagating max step, written with integer masks so loops over it vectorise. */
static inline float max_step(float b, float v) {
    int c = (b == b) & ((v > b) | (v != v));
    return c ? v : b;
}

/* Contiguous group: y (A) from x (A); y holds the exponentials in between. Max, then exponentials
 * and their sum in one pass, in 16 float lanes (a fixed order whatever the vector width: every
 * instruction-set path gives the same bits), combined in double. A NaN anywhere makes the row NaN. */
GC_INLINE void sm_row_body(float *restrict y, const float *restrict x, int64_t A, int is_log) {
    float acc[16];
    for (int l = 0; l < 16; l++) acc[l] = 0.0f;
    gc_f4 m0 = GC_F4_SET(-INFINITY), m1 = m0, v0, v1;
    gc_i4 nan = {0};
    int64_t a = 0;
    for (; a + 8 <= A; a += 8) { /* (vector types: GCC leaves this loop scalar otherwise) */
        GC_F4_LOAD(v0, x + a);
        GC_F4_LOAD(v1, x + a + 4);
        m0 = GC_F4_SEL(v0 > m0, v0, m0);
        m1 = GC_F4_SEL(v1 > m1, v1, m1);
        nan |= (v0 != v0) | (v1 != v1);
    }
    float m = -INFINITY;
    int bad = 0;
    for (; a < A; a++) {
        m = x[a] > m ? x[a] : m;
        bad |= x[a] != x[a];
    }
    for (int l = 0; l < 4; l++) {
        m = m0[l] > m ? m0[l] : m;
        m = m1[l] > m ? m1[l] : m;
        bad |= nan[l] != 0;
    }
    if (bad) m = NAN;
    for (a = 0; a + 16 <= A; a += 16)
        for (int l = 0; l < 16; l++) {
            const float e = exp_neg(x[a + l] - m);
            y[a + l] = e;
            acc[l] += e;
        }
    double s = 0;
    for (; a < A; a++) {
        y[a] = exp_neg(x[a] - m);
        s += y[a];
    }
    for (int l = 0; l < 16; l++) s += acc[l];
    if (is_log) {
        float ls = (float)log(s); /* (x - m) - log s: adding m to log s first would round at large m */
        for (a = 0; a < A; a++) y[a] = (x[a] - m) - ls;
    } else {
        float inv = (float)(1.0 / s);
        for (a = 0; a < A; a++) y[a] *= inv;
    }
}
GC_ISA_FN(sm_row_isa, sm_row_body, (float *restrict y, const float *restrict x, int64_t A, int is_log),
          (y, x, A, is_log))

/* nb <= SM_BLK strided groups: y, x point at (o, 0, i0); element a of group j at a * I + j. */
static void sm_block(float *restrict y, const float *restrict x, int64_t A, int64_t I, int nb, int is_log) {
    float m[SM_BLK], s[SM_BLK];
    for (int j = 0; j < nb; j++) { m[j] = -INFINITY; s[j] = 0; }
    for (int64_t a = 0; a < A; a++)
        for (int j = 0; j < nb; j++) m[j] = max_step(m[j], x[a * I + j]);
    for (int64_t a = 0; a < A; a++)
        for (int j = 0; j < nb; j++) {
            float e = exp_neg(x[a * I + j] - m[j]);
            s[j] += e;
            y[a * I + j] = e;
        }
    if (is_log) {
        for (int j = 0; j < nb; j++) s[j] = logf(s[j]);
        for (int64_t a = 0; a < A; a++)
            for (int j = 0; j < nb; j++) y[a * I + j] = (x[a * I + j] - m[j]) - s[j];
    } else {
        for (int j = 0; j < nb; j++) s[j] = 1.0f / s[j];
        for (int64_t a = 0; a < A; a++)
            for (int j = 0; j < nb; j++) y[a * I + j] *= s[j];
    }
}

static gcam_status sm_run(gc_kctx *k, int is_log) {
    int64_t O, A, I;
    sm_dims(k->params, &k->in[0]->shape, &O, &A, &I);
    const float *x = k->in[0]->data; /* (O, A, I) */
    float *y = k->out[0]->data;      /* (O, A, I) */
    int nt = gc_kthreads(k);
    if (O * A * I == 0) return GCAM_OK;
    if (I == 1) {
        void (*row)(float *restrict, const float *restrict, int64_t, int) = sm_row_isa_tab[gc_kisa(k)];
#pragma omp parallel for num_threads(nt) schedule(static) if (O * A > 16384)
        for (int64_t o = 0; o < O; o++) row(y + o * A, x + o * A, A, is_log);
    } else {
        int64_t nblk = (I + SM_BLK - 1) / SM_BLK;
#pragma omp parallel for num_threads(nt) schedule(static) if (O * A * I > 16384)
        for (int64_t t = 0; t < O * nblk; t++) {
            int64_t o = t / nblk, i0 = (t % nblk) * SM_BLK;
            int64_t off = o * A * I + i0;
            sm_block(y + off, x + off, A, I, (int)GC_MIN(SM_BLK, I - i0), is_log);
        }
    }
    return GCAM_OK;
}
static gcam_status softmax_forward(gc_kctx *k) { return sm_run(k, 0); }
static gcam_status logsoftmax_forward(gc_kctx *k) { return sm_run(k, 1); }

/* From the output: softmax gx += y (g - sum g y); log-softmax gx += g - exp(y) sum g. */
static void sm_row_bw(float *gx, const float *gy, const float *y, int64_t A, int is_log) {
    double s = 0;
    if (is_log) {
        for (int64_t a = 0; a < A; a++) s += gy[a];
        float sf = (float)s;
        for (int64_t a = 0; a < A; a++) gx[a] += gy[a] - exp_neg(y[a]) * sf;
    } else {
        for (int64_t a = 0; a < A; a++) s += (double)gy[a] * y[a];
        float sf = (float)s;
        for (int64_t a = 0; a < A; a++) gx[a] += y[a] * (gy[a] - sf);
    }
}

static void sm_block_bw(float *gx, const float *gy, const float *y, int64_t A, int64_t I, int nb, int is_log) {
    float s[SM_BLK];
    for (int j = 0; j < nb; j++) s[j] = 0;
    for (int64_t a = 0; a < A; a++)
        for (int j = 0; j < nb; j++) s[j] += is_log ? gy[a * I + j] : gy[a * I + j] * y[a * I + j];
    for (int64_t a = 0; a < A; a++)
        for (int j = 0; j < nb; j++) {
            int64_t e = a * I + j;
            gx[e] += is_log ? gy[e] - exp_neg(y[e]) * s[j] : y[e] * (gy[e] - s[j]);
        }
}

static gcam_status sm_back(gc_kctx *k, int is_log) {
    if (!k->gin[0] || !k->gout[0]) return GCAM_OK;
    int64_t O, A, I;
    sm_dims(k->params, &k->out[0]->shape, &O, &A, &I);
    const float *y = k->out[0]->data, *gy = k->gout[0]->data; /* (O, A, I) */
    float *gx = k->gin[0]->data;                              /* (O, A, I) */
    int nt = gc_kthreads(k);
    if (O * A * I == 0) return GCAM_OK;
    if (I == 1) {
#pragma omp parallel for num_threads(nt) schedule(static) if (O * A > 16384)
        for (int64_t o = 0; o < O; o++) sm_row_bw(gx + o * A, gy + o * A, y + o * A, A, is_log);
    } else {
        int64_t nblk = (I + SM_BLK - 1) / SM_BLK;
#pragma omp parallel for num_threads(nt) schedule(static) if (O * A * I > 16384)
        for (int64_t t = 0; t < O * nblk; t++) {
            int64_t o = t / nblk, i0 = (t % nblk) * SM_BLK;
            int64_t off = o * A * I + i0;
            sm_block_bw(gx + off, gy + off, y + off, A, I, (int)GC_MIN(SM_BLK, I - i0), is_log);
        }
    }
    return GCAM_OK;
}
static gcam_status softmax_backward(gc_kctx *k) { return sm_back(k, 0); }
static gcam_status logsoftmax_backward(gc_kctx *k) { return sm_back(k, 1); }

const gc_opdef gc_def_Softmax = {
    .name = "Softmax", .min_opset = 1, .parse = sm_parse, .infer = sm_infer, .forward = softmax_forward,
    .backward = softmax_backward, .bw_in = 0, .bw_out = 1, .diff_in = 1};
const gc_opdef gc_def_LogSoftmax = {
    .name = "LogSoftmax", .min_opset = 1, .parse = sm_parse, .infer = sm_infer, .forward = logsoftmax_forward,
    .backward = logsoftmax_backward, .bw_in = 0, .bw_out = 1, .diff_in = 1};

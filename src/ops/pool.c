/* Pooling: MaxPool and AveragePool over 1-D/2-D/3-D spatial extents, GlobalAveragePool and
 * GlobalMaxPool over any spatial rank.
 *
 * Windowed pools run on (planes, D, H, W) with planes = N * C; lower spatial ranks get leading
 * unit extents (kernel 1, stride 1, no padding), so one kernel serves every rank. Each plane is
 * independent, which is what the threads split: backward scatters stay deterministic. */
#include "isa.h"
#include "kutil.h"

#include <math.h>
#include <omp.h>

#define POOL_SP 3 /* spatial ranks handled by the windowed pools */

enum { PAD_NOTSET, PAD_SAME_UPPER, PAD_SAME_LOWER, PAD_VALID };

/* ------------------------------------------------------------------------------------------ */
/* Windowed pools: attributes and geometry                                                     */

typedef struct pool_params {
    int nsp;                   /* spatial rank from kernel_shape, 1..3 */
    int auto_pad, ceil_mode, count_include_pad, storage_order;
    int64_t k[POOL_SP], s[POOL_SP], d[POOL_SP], pb[POOL_SP], pe[POOL_SP];
} pool_params;

/* Resolved against one input shape, always 3-D (leading unit extents). */
typedef struct pool_geom {
    int64_t planes;            /* N * C */
    int64_t in[POOL_SP], out[POOL_SP], k[POOL_SP], s[POOL_SP], d[POOL_SP], pb[POOL_SP], pe[POOL_SP];
    int64_t in_sz, out_sz;     /* elements per plane */
} pool_geom;

static gcam_status pool_parse(gc_node *n, gc_err *err, int is_max) {
    pool_params p = {0};
    const int64_t *ks, *st, *dl, *pd;
    size_t nk = gc_attr_ints(n, "kernel_shape", &ks);
    if (nk < 1 || nk > POOL_SP)
        return gc_node_fail(n, err, nk ? GCAM_E_UNSUPPORTED : GCAM_E_FORMAT,
                     "kernel_shape: %zu spatial dims (1 to 3 supported, attribute required)", nk);
    p.nsp = (int)nk;
    size_t ns = gc_attr_ints(n, "strides", &st), nd = gc_attr_ints(n, "dilations", &dl);
    size_t np = gc_attr_ints(n, "pads", &pd);
    if (ns && ns != nk) return gc_node_fail(n, err, GCAM_E_FORMAT, "strides: %zu values for %zu spatial dims", ns, nk);
    if (nd && nd != nk) return gc_node_fail(n, err, GCAM_E_FORMAT, "dilations: %zu values for %zu spatial dims", nd, nk);
    if (np && np != 2 * nk) return gc_node_fail(n, err, GCAM_E_FORMAT, "pads: %zu values for %zu spatial dims", np, nk);
    for (size_t i = 0; i < nk; i++) {
        p.k[i] = ks[i];
        p.s[i] = ns ? st[i] : 1;
        p.d[i] = nd ? dl[i] : 1;
        p.pb[i] = np ? pd[i] : 0;
        p.pe[i] = np ? pd[i + nk] : 0;
        if (p.k[i] < 1 || p.k[i] > INT32_MAX)
            return gc_node_fail(n, err, GCAM_E_FORMAT, "kernel_shape[%zu] = %lld is not positive", i, (long long)p.k[i]);
        if (p.s[i] < 1 || p.s[i] > INT32_MAX)
            return gc_node_fail(n, err, GCAM_E_FORMAT, "strides[%zu] = %lld is not positive", i, (long long)p.s[i]);
        if (p.d[i] < 1 || p.d[i] > INT32_MAX)
            return gc_node_fail(n, err, GCAM_E_FORMAT, "dilations[%zu] = %lld is not positive", i, (long long)p.d[i]);
        if (p.pb[i] < 0 || p.pe[i] < 0 || p.pb[i] > INT32_MAX || p.pe[i] > INT32_MAX)
            return gc_node_fail(n, err, GCAM_E_FORMAT, "pads for spatial dim %zu are negative or huge", i);
    }
    const char *ap = gc_attr_str(n, "auto_pad", "NOTSET");
    if (strcmp(ap, "NOTSET") == 0 || ap[0] == 0) p.auto_pad = PAD_NOTSET;
    else if (strcmp(ap, "SAME_UPPER") == 0) p.auto_pad = PAD_SAME_UPPER;
    else if (strcmp(ap, "SAME_LOWER") == 0) p.auto_pad = PAD_SAME_LOWER;
    else if (strcmp(ap, "VALID") == 0) p.auto_pad = PAD_VALID;
    else return gc_node_fail(n, err, GCAM_E_FORMAT, "auto_pad: unknown value '%s'", ap);
    int64_t cm = gc_attr_int(n, "ceil_mode", 0);
    if (cm != 0 && cm != 1) return gc_node_fail(n, err, GCAM_E_FORMAT, "ceil_mode must be 0 or 1, not %lld", (long long)cm);
    p.ceil_mode = (int)cm;
    int64_t cip = is_max ? 0 : gc_attr_int(n, "count_include_pad", 0);
    if (cip != 0 && cip != 1)
        return gc_node_fail(n, err, GCAM_E_FORMAT, "count_include_pad must be 0 or 1, not %lld", (long long)cip);
    p.count_include_pad = (int)cip;
    int64_t so = is_max ? gc_attr_int(n, "storage_order", 0) : 0;
    if (so != 0 && so != 1) return gc_node_fail(n, err, GCAM_E_FORMAT, "storage_order must be 0 or 1, not %lld", (long long)so);
    p.storage_order = (int)so;
    pool_params *q = malloc(sizeof *q);
    if (!q) return gc_node_fail(n, err, GCAM_E_NOMEM, "out of memory");
    *q = p;
    free(n->params);
    n->params = q;
    return GCAM_OK;
}
static gcam_status maxpool_parse(gc_node *n, gc_err *err) { return pool_parse(n, err, 1); }
static gcam_status avgpool_parse(gc_node *n, gc_err *err) { return pool_parse(n, err, 0); }

/* Output extents and pads, the ceil_mode rule included. k may be NULL (trusted shapes). */
static gcam_status pool_geom_make(gc_kctx *k, const pool_params *p, const gc_shape *x, pool_geom *g) {
    int off = POOL_SP - p->nsp;
    g->planes = x->d[0] * x->d[1];
    g->in_sz = g->out_sz = 1;
    for (int i = 0; i < POOL_SP; i++) {
        int j = i - off;
        if (j < 0) {
            g->in[i] = g->out[i] = g->k[i] = g->s[i] = g->d[i] = 1;
            g->pb[i] = g->pe[i] = 0;
            continue;
        }
        int64_t L = x->d[2 + j], K = p->k[j], s = p->s[j], dl = p->d[j];
        int64_t ext, pb = p->pb[j], pe = p->pe[j], out, span;
        if (gc_mul_i64(&ext, K - 1, dl) || gc_add_i64(&ext, ext, 1))
            return k ? gc_kfail(k, GCAM_E_SHAPE, "kernel extent overflows") : GCAM_E_SHAPE;
        if (L < 1) return k ? gc_kfail(k, GCAM_E_SHAPE, "spatial dim %d is empty", j) : GCAM_E_SHAPE;
        if (p->auto_pad == PAD_SAME_UPPER || p->auto_pad == PAD_SAME_LOWER) {
            out = (L - 1) / s + 1; /* ceil(L / s) */
            int64_t total = (out - 1) * s + ext - L;
            if (total < 0) total = 0;
            pb = p->auto_pad == PAD_SAME_UPPER ? total / 2 : total - total / 2;
            pe = total - pb;
        } else {
            if (p->auto_pad == PAD_VALID) pb = pe = 0;
            if (gc_add_i64(&span, L, pb) || gc_add_i64(&span, span, pe))
                return k ? gc_kfail(k, GCAM_E_SHAPE, "pads overflow") : GCAM_E_SHAPE;
            span -= ext;
            if (span < 0)
                return k ? gc_kfail(k, GCAM_E_SHAPE,
                                    "kernel extent %lld exceeds padded input %lld in spatial dim %d",
                                    (long long)ext, (long long)(span + ext), j)
                         : GCAM_E_SHAPE;
            if (p->ceil_mode && p->auto_pad == PAD_NOTSET) {
                out = (span + s - 1) / s + 1;
                /* the last window must start inside the input or the left padding */
                if ((out - 1) * s >= L + pb) out--;
            } else {
                out = span / s + 1;
            }
        }
        /* Every window then overlaps the input: no empty max, no zero count. */
        if (pb >= ext || pe >= ext)
            return k ? gc_kfail(k, GCAM_E_UNSUPPORTED,
                                "pads (%lld, %lld) not smaller than the kernel extent %lld in spatial dim %d",
                                (long long)pb, (long long)pe, (long long)ext, j)
                     : GCAM_E_UNSUPPORTED;
        g->in[i] = L; g->out[i] = out; g->k[i] = K; g->s[i] = s; g->d[i] = dl; g->pb[i] = pb; g->pe[i] = pe;
        if (gc_mul_i64(&g->in_sz, g->in_sz, L) || gc_mul_i64(&g->out_sz, g->out_sz, out))
            return k ? gc_kfail(k, GCAM_E_SHAPE, "spatial size overflows") : GCAM_E_SHAPE;
    }
    return GCAM_OK;
}

/* Taps [k0, k1) of window o that land inside the input; kin1: taps before the end padding
 * (the count_include_pad divisor; taps before the begin padding cannot occur). */
typedef struct tap_range { int64_t start, k0, k1, kin1; } tap_range;
static inline tap_range taps(const pool_geom *g, int i, int64_t o) {
    tap_range t;
    int64_t K = g->k[i], d = g->d[i], L = g->in[i];
    t.start = o * g->s[i] - g->pb[i];
    t.k0 = t.start < 0 ? (-t.start + d - 1) / d : 0;
    int64_t last = t.start + (K - 1) * d;
    t.k1 = last < L ? K : (L - 1 - t.start) / d + 1;
    t.kin1 = last < L + g->pe[i] ? K : (L + g->pe[i] - 1 - t.start) / d + 1;
    return t;
}

static gcam_status pool_infer(gc_kctx *k, int is_max) {
    const pool_params *p = k->params;
    const gc_tensor *x = k->in[0];
    if (!x) return gc_kfail(k, GCAM_E_FORMAT, "input X missing");
    int okdt = x->dtype == GC_F32 || (is_max && x->dtype == GC_I64);
    if (!okdt) return gc_kfail(k, GCAM_E_UNSUPPORTED, "input must be float32%s", is_max ? " or integer" : "");
    if (x->shape.ndim != p->nsp + 2)
        return gc_kfail(k, GCAM_E_SHAPE, "input rank %d does not match kernel_shape (%d spatial dims)",
                        x->shape.ndim, p->nsp);
    if (gc_numel(x) < 0) return gc_kfail(k, GCAM_E_SHAPE, "input shape unknown");
    pool_geom g;
    gcam_status st = pool_geom_make(k, p, &x->shape, &g);
    if (st) return st;
    if (g.in_sz > INT32_MAX) return gc_kfail(k, GCAM_E_LIMIT, "spatial plane too large");
    gc_tensor *y = k->out[0];
    if (!y) return gc_kfail(k, GCAM_E_FORMAT, "output Y missing");
    y->dtype = x->dtype;
    y->shape = x->shape;
    for (int j = 0; j < p->nsp; j++) y->shape.d[2 + j] = g.out[POOL_SP - p->nsp + j];
    int64_t ny;
    if (gc_mul_i64(&ny, g.planes, g.out_sz)) return gc_kfail(k, GCAM_E_SHAPE, "output size overflows");
    if (k->n_out > 1 && k->out[1]) {
        if (!is_max) return gc_kfail(k, GCAM_E_FORMAT, "AveragePool has one output");
        if (p->storage_order != 0)
            return gc_kfail(k, GCAM_E_UNSUPPORTED, "Indices with storage_order=1 (column-major) not supported");
        if (x->dtype != GC_F32) return gc_kfail(k, GCAM_E_UNSUPPORTED, "Indices output for integer input not supported");
        k->out[1]->dtype = GC_I64;
        k->out[1]->shape = y->shape;
    }
    return GCAM_OK;
}
static gcam_status maxpool_infer(gc_kctx *k) { return pool_infer(k, 1); }
static gcam_status avgpool_infer(gc_kctx *k) { return pool_infer(k, 0); }

/* ------------------------------------------------------------------------------------------ */
/* MaxPool                                                                                     */

/* Outputs [lo, hi) along W whose windows lie entirely inside the input row: these take the
 * row-vectorised paths below; the few border outputs take the per-output paths. */
static void w_interior(const pool_geom *g, int64_t *lo, int64_t *hi) {
    int64_t s = g->s[2], pb = g->pb[2], ext = (g->k[2] - 1) * g->d[2] + 1, L = g->in[2], n = g->out[2];
    *lo = GC_MIN((pb + s - 1) / s, n);
    *hi = L - ext + pb >= 0 ? GC_MIN((L - ext + pb) / s + 1, n) : 0;
    if (*hi < *lo) *hi = *lo;
}

/* Max over the window of output (td, th, ow); *arg gets its offset in the plane. Ties: the first
 * in window order; NaN: the first NaN wins (PyTorch propagates NaN). */
static float max_one(const float *x, const pool_geom *g, const tap_range *td, const tap_range *th, int64_t ow,
                     int32_t *arg) {
    int64_t H = g->in[1], W = g->in[2];
    tap_range tw = taps(g, 2, ow);
    int64_t best_i = ((td->start + td->k0 * g->d[0]) * H + th->start + th->k0 * g->d[1]) * W + tw.start + tw.k0 * g->d[2];
    float best = -INFINITY;
    for (int64_t kd = td->k0; kd < td->k1; kd++) {
        int64_t id = td->start + kd * g->d[0];
        for (int64_t kh = th->k0; kh < th->k1; kh++) {
            int64_t row = (id * H + th->start + kh * g->d[1]) * W + tw.start;
            for (int64_t kw = tw.k0; kw < tw.k1; kw++) {
                int64_t idx = row + kw * g->d[2];
                float v = x[idx];
                if (v > best || v != v) {
                    best = v;
                    best_i = idx;
                    if (v != v) goto found;
                }
            }
        }
    }
found:
    *arg = (int32_t)best_i;
    return best;
}

/* NaN-propagating max step (the first NaN stays), with integer masks so loops vectorise. */
static inline float max_step(float b, float v) {
    int c = (b == b) & ((v > b) | (v != v));
    return c ? v : b;
}

/* y[j] = max(y[j], x[j * s]) over a row of n outputs, same NaN rule; arg tracks offsets
 * (base + j * s) when non-NULL. Written branch-free so it vectorises. */
static void max_row(float *restrict y, int32_t *restrict arg, const float *restrict x, int64_t n, int64_t s,
                    int32_t base) {
    if (arg) {
        for (int64_t j = 0; j < n; j++) {
            float v = x[j * s], b = y[j];
            int c = (b == b) & ((v > b) | (v != v));
            y[j] = c ? v : b;
            arg[j] = c ? base + (int32_t)(j * s) : arg[j];
        }
    } else if (s == 1) {
        for (int64_t j = 0; j < n; j++) y[j] = max_step(y[j], x[j]);
    } else {
        for (int64_t j = 0; j < n; j++) y[j] = max_step(y[j], x[j * s]);
    }
}

/* One plane. y: (D', H', W'); arg: (D', H', W') offsets into the plane or NULL; x: (D, H, W). */
static void maxpool_plane_f32(float *restrict y, int32_t *restrict arg, const float *restrict x, const pool_geom *g) {
    int64_t H = g->in[1], W = g->in[2], OW = g->out[2], s = g->s[2], lo, hi;
    int32_t dummy;
    w_interior(g, &lo, &hi);
    for (int64_t od = 0; od < g->out[0]; od++) {
        tap_range td = taps(g, 0, od);
        for (int64_t oh = 0; oh < g->out[1]; oh++) {
            tap_range th = taps(g, 1, oh);
            int64_t r = (od * g->out[1] + oh) * OW;
            float *yr = y + r;
            int32_t *ar = arg ? arg + r : NULL;
            for (int64_t ow = 0; ow < lo; ow++) yr[ow] = max_one(x, g, &td, &th, ow, ar ? &ar[ow] : &dummy);
            for (int64_t ow = hi; ow < OW; ow++) yr[ow] = max_one(x, g, &td, &th, ow, ar ? &ar[ow] : &dummy);
            if (lo == hi) continue;
            int64_t n = hi - lo;
            for (int64_t j = 0; j < n; j++) yr[lo + j] = -INFINITY;
            int64_t first = ((td.start + td.k0 * g->d[0]) * H + th.start + th.k0 * g->d[1]) * W + lo * s - g->pb[2];
            if (ar)
                for (int64_t j = 0; j < n; j++) ar[lo + j] = (int32_t)(first + j * s);
            for (int64_t kd = td.k0; kd < td.k1; kd++)
                for (int64_t kh = th.k0; kh < th.k1; kh++) {
                    int64_t row = ((td.start + kd * g->d[0]) * H + th.start + kh * g->d[1]) * W + lo * s - g->pb[2];
                    for (int64_t kw = 0; kw < g->k[2]; kw++) {
                        int64_t b = row + kw * g->d[2];
                        max_row(yr + lo, ar ? ar + lo : NULL, x + b, n, s, (int32_t)b);
                    }
                }
        }
    }
}

/* The separable path for 2-D windows of width 2 or 3, stride 1 or 2, no dilation (ResNet's and
 * DenseNet's 3x3/2 stem pool). Per output row, each input row's maxima over the windows' columns,
 * from the row copied between -inf borders, a pass per column tap over a multiple of 16 output
 * columns (border columns included: no scalar remainders, which took most of the time of the
 * per-tap row passes below on a 56-wide output), then folded into the output row. Folding the
 * rows' results gives the window's fold in row-major order: the first NaN if there is one, else
 * the maximum at its first occurrence (ties go to the earlier row, then column); the -inf borders
 * never win, and a window of -inf keeps its first element as its argmax, as max_one's. */
#define MP_MAXW 1024 /* output columns a row at most on this path (stack buffers) */
static int maxpool_separable(const pool_geom *g) {
    return g->in[0] == 1 && g->out[0] == 1 && g->d[1] == 1 && g->d[2] == 1 && (g->s[2] == 1 || g->s[2] == 2) &&
           (g->k[2] == 2 || g->k[2] == 3) && g->out[2] <= MP_MAXW;
}

/* b (and its argmax a) folded with v at column index i, over n lanes: one tap's pass */
GC_INLINE void mp_fold(float *restrict b, int32_t *restrict a, const float *restrict v, const int64_t s,
                       const int32_t *restrict iv, int32_t i0, int64_t n, const int with_arg) {
    for (int64_t j = 0; j < n; j++) {
        const float x = v[j * s], y = b[j];
        const int c = (y == y) & ((x > y) | (x != x));
        b[j] = c ? x : y;
        if (with_arg) a[j] = c ? (iv ? iv[j] : i0 + (int32_t)(j * s)) : a[j];
    }
}

GC_INLINE void mp_plane_sep(float *restrict y, int32_t *restrict arg, const float *restrict x, const pool_geom *g,
                            const int64_t s, const int64_t kw, const int with_arg) {
    const int64_t W = g->in[2], OW = g->out[2], pb = g->pb[2], OWp = (OW + 15) / 16 * 16, Wp = (OWp - 1) * s + kw;
    float P[2 * MP_MAXW + 8], hm[MP_MAXW], acc[MP_MAXW]; /* (Wp), (OWp), (OWp) */
    int32_t ha[MP_MAXW], aa[MP_MAXW];
    const int64_t c0 = GC_MIN(pb, Wp), c1 = GC_MIN(pb + W, Wp); /* P's columns that hold the row */
    for (int64_t oh = 0; oh < g->out[1]; oh++) {
        const tap_range th = taps(g, 1, oh);
        for (int64_t j = 0; j < OWp; j++) acc[j] = -INFINITY;
        if (with_arg) /* the window's first element inside the input */
            for (int64_t j = 0; j < OWp; j++)
                aa[j] = (int32_t)((th.start + th.k0) * W + GC_MAX(0, j * s - pb));
        for (int64_t kh = th.k0; kh < th.k1; kh++) {
            const int64_t r = th.start + kh;
            for (int64_t c = 0; c < c0; c++) P[c] = -INFINITY;
            memcpy(P + c0, x + r * W + (c0 - pb), (size_t)(c1 - c0) * sizeof(float));
            for (int64_t c = c1; c < Wp; c++) P[c] = -INFINITY;
            for (int64_t j = 0; j < OWp; j++) hm[j] = -INFINITY;
            for (int64_t t = 0; t < kw; t++) /* the row's fold over the windows' columns */
                mp_fold(hm, ha, P + t, s, NULL, (int32_t)(r * W + t - pb), OWp, with_arg);
            mp_fold(acc, aa, hm, 1, ha, 0, OWp, with_arg); /* into the rows above */
        }
        memcpy(y + oh * OW, acc, (size_t)OW * sizeof(float));
        if (with_arg) memcpy(arg + oh * OW, aa, (size_t)OW * sizeof(int32_t));
    }
}

GC_INLINE void mp_sep_body(float *restrict y, int32_t *restrict arg, const float *restrict x, const pool_geom *g) {
    const int two = g->s[2] == 2, k3 = g->k[2] == 3;
    if (arg) {
        if (two) k3 ? mp_plane_sep(y, arg, x, g, 2, 3, 1) : mp_plane_sep(y, arg, x, g, 2, 2, 1);
        else k3 ? mp_plane_sep(y, arg, x, g, 1, 3, 1) : mp_plane_sep(y, arg, x, g, 1, 2, 1);
    } else {
        if (two) k3 ? mp_plane_sep(y, NULL, x, g, 2, 3, 0) : mp_plane_sep(y, NULL, x, g, 2, 2, 0);
        else k3 ? mp_plane_sep(y, NULL, x, g, 1, 3, 0) : mp_plane_sep(y, NULL, x, g, 1, 2, 0);
    }
}
GC_ISA_FN(mp_sep_isa, mp_sep_body,
          (float *restrict y, int32_t *restrict arg, const float *restrict x, const pool_geom *g), (y, arg, x, g))

/* Integer inputs (uint8 models widened to int64): forward only. */
static void maxpool_plane_i64(int64_t *y, const int64_t *x, const pool_geom *g) {
    int64_t H = g->in[1], W = g->in[2], o = 0;
    for (int64_t od = 0; od < g->out[0]; od++) {
        tap_range td = taps(g, 0, od);
        for (int64_t oh = 0; oh < g->out[1]; oh++) {
            tap_range th = taps(g, 1, oh);
            for (int64_t ow = 0; ow < g->out[2]; ow++, o++) {
                tap_range tw = taps(g, 2, ow);
                int64_t best = INT64_MIN;
                for (int64_t kd = td.k0; kd < td.k1; kd++)
                    for (int64_t kh = th.k0; kh < th.k1; kh++) {
                        int64_t row = ((td.start + kd * g->d[0]) * H + th.start + kh * g->d[1]) * W + tw.start;
                        for (int64_t kw = tw.k0; kw < tw.k1; kw++) best = GC_MAX(best, x[row + kw * g->d[2]]);
                    }
                y[o] = best;
            }
        }
    }
}

static size_t maxpool_aux(const gc_kctx *k) {
    const gc_tensor *x = k->in[0];
    if (!x || x->dtype != GC_F32) return 0;
    size_t b;
    if (gc_mul_sz(&b, (size_t)gc_numel(k->out[0]), sizeof(int32_t))) return 0;
    return b;
}

/* Indices need the argmax even when no backward is planned (k->aux NULL): one int32 per output.
 * The size does not depend on aux, which is not assigned yet when this is asked. */
static size_t maxpool_scratch(const gc_kctx *k) {
    if (k->n_out < 2 || !k->out[1]) return 0;
    size_t b;
    if (gc_mul_sz(&b, (size_t)gc_numel(k->out[0]), sizeof(int32_t))) return 0;
    return b;
}

static gcam_status maxpool_forward(gc_kctx *k) {
    const pool_params *p = k->params;
    const gc_tensor *x = k->in[0];
    pool_geom g;
    if (pool_geom_make(NULL, p, &x->shape, &g)) return gc_kfail(k, GCAM_E_INTERNAL, "geometry changed after infer");
    int nt = gc_kthreads(k);
    int64_t work = g.planes * g.out_sz;
    if (x->dtype == GC_I64) {
        const int64_t *xd = x->data;
        int64_t *yd = k->out[0]->data;
        for (int64_t pl = 0; pl < g.planes; pl++) maxpool_plane_i64(yd + pl * g.out_sz, xd + pl * g.in_sz, &g);
        return GCAM_OK;
    }
    int want_idx = k->n_out > 1 && k->out[1];
    int32_t *arg = k->aux;
    if (!arg && want_idx) {
        if (!k->scratch || k->scratch_size < (size_t)(g.planes * g.out_sz) * sizeof(int32_t))
            return gc_kfail(k, GCAM_E_INTERNAL, "scratch missing for Indices");
        arg = k->scratch;
    }
    const float *xd = x->data;
    float *yd = k->out[0]->data;
    void (*const sep)(float *restrict, int32_t *restrict, const float *restrict, const pool_geom *) =
        maxpool_separable(&g) && !gc_ktune(k)->no_pool_separable ? mp_sep_isa_tab[gc_kisa(k)] : NULL;
#pragma omp parallel for num_threads(nt) schedule(static) if (work > 65536)
    for (int64_t pl = 0; pl < g.planes; pl++) {
        float *yp = yd + pl * g.out_sz;
        int32_t *ap = arg ? arg + pl * g.out_sz : NULL;
        if (sep) sep(yp, ap, xd + pl * g.in_sz, &g);
        else maxpool_plane_f32(yp, ap, xd + pl * g.in_sz, &g);
    }
    if (want_idx) {
        /* Indices: flat row-major positions over (N, C, D, H, W) */
        int64_t *id = k->out[1]->data;
        for (int64_t pl = 0; pl < g.planes; pl++)
            for (int64_t o = 0; o < g.out_sz; o++) id[pl * g.out_sz + o] = pl * g.in_sz + arg[pl * g.out_sz + o];
    }
    return GCAM_OK;
}

/* gin[plane, arg[o]] += gout[o]; planes are independent so threads never share a target. */
static gcam_status maxpool_backward(gc_kctx *k) {
    if (!k->gin[0] || !k->gout[0]) return GCAM_OK;
    if (!k->aux) return gc_kfail(k, GCAM_E_INTERNAL, "MaxPool backward without the saved argmax (aux)");
    const int32_t *arg = k->aux;
    int64_t in_sz = gc_numel(k->gin[0]), out_sz = gc_numel(k->gout[0]);
    int64_t planes = k->gin[0]->shape.d[0] * k->gin[0]->shape.d[1];
    if (planes <= 0) return GCAM_OK;
    in_sz /= planes;
    out_sz /= planes;
    const float *go = k->gout[0]->data;
    float *gi = k->gin[0]->data;
    int nt = gc_kthreads(k);
#pragma omp parallel for num_threads(nt) schedule(static) if (planes * out_sz > 65536)
    for (int64_t pl = 0; pl < planes; pl++) {
        const int32_t *a = arg + pl * out_sz;
        const float *g = go + pl * out_sz;
        float *d = gi + pl * in_sz;
        for (int64_t o = 0; o < out_sz; o++) d[a[o]] += g[o];
    }
    return GCAM_OK;
}

const gc_opdef gc_def_MaxPool = {
    .name = "MaxPool", .min_opset = 1, .parse = maxpool_parse, .infer = maxpool_infer,
    .scratch_bytes = maxpool_scratch, .forward = maxpool_forward, .backward = maxpool_backward,
    .aux_bytes = maxpool_aux, .bw_in = 0, .bw_out = 0, .diff_in = 1};

/* ------------------------------------------------------------------------------------------ */
/* AveragePool                                                                                 */

static inline float avg_count(const pool_geom *g, int incl, const tap_range *t) {
    int64_t c = 1;
    for (int i = 0; i < POOL_SP; i++) c *= incl ? t[i].kin1 : t[i].k1 - t[i].k0;
    return (float)c;
}

/* Average of the window of output (t[0], t[1], ow), t[2] filled here. */
static float avg_one(const float *x, const pool_geom *g, int incl, tap_range *t, int64_t ow) {
    int64_t H = g->in[1], W = g->in[2];
    t[2] = taps(g, 2, ow);
    float acc = 0;
    for (int64_t kd = t[0].k0; kd < t[0].k1; kd++)
        for (int64_t kh = t[1].k0; kh < t[1].k1; kh++) {
            const float *row = x + ((t[0].start + kd * g->d[0]) * H + t[1].start + kh * g->d[1]) * W + t[2].start;
            for (int64_t kw = t[2].k0; kw < t[2].k1; kw++) acc += row[kw * g->d[2]];
        }
    return acc / avg_count(g, incl, t);
}

/* The divisor of interior outputs along W (all K taps inside): D and H parts times K. */
static float avg_count_interior(const pool_geom *g, int incl, tap_range *t) {
    t[2].k0 = 0;
    t[2].k1 = t[2].kin1 = g->k[2];
    return avg_count(g, incl, t);
}

/* One plane. y: (D', H', W'); x: (D, H, W). Interior outputs accumulate whole rows in the same
 * tap order as avg_one, so results do not depend on the path. */
static void avgpool_plane(float *restrict y, const float *restrict x, const pool_geom *g, int incl) {
    int64_t H = g->in[1], W = g->in[2], OW = g->out[2], s = g->s[2], lo, hi;
    tap_range t[POOL_SP];
    w_interior(g, &lo, &hi);
    for (int64_t od = 0; od < g->out[0]; od++) {
        t[0] = taps(g, 0, od);
        for (int64_t oh = 0; oh < g->out[1]; oh++) {
            t[1] = taps(g, 1, oh);
            float *yr = y + (od * g->out[1] + oh) * OW;
            for (int64_t ow = 0; ow < lo; ow++) yr[ow] = avg_one(x, g, incl, t, ow);
            for (int64_t ow = hi; ow < OW; ow++) yr[ow] = avg_one(x, g, incl, t, ow);
            if (lo == hi) continue;
            int64_t n = hi - lo;
            float *yv = yr + lo;
            for (int64_t j = 0; j < n; j++) yv[j] = 0;
            for (int64_t kd = t[0].k0; kd < t[0].k1; kd++)
                for (int64_t kh = t[1].k0; kh < t[1].k1; kh++) {
                    int64_t row = ((t[0].start + kd * g->d[0]) * H + t[1].start + kh * g->d[1]) * W + lo * s - g->pb[2];
                    for (int64_t kw = 0; kw < g->k[2]; kw++) {
                        const float *xr = x + row + kw * g->d[2];
                        if (s == 1)
                            for (int64_t j = 0; j < n; j++) yv[j] += xr[j];
                        else
                            for (int64_t j = 0; j < n; j++) yv[j] += xr[j * s];
                    }
                }
            float cnt = avg_count_interior(g, incl, t);
            for (int64_t j = 0; j < n; j++) yv[j] /= cnt;
        }
    }
}

/* Spreads gy / count of output (t[0], t[1], ow) over its window in gx; t[2] filled here. */
static void avg_one_bw(float *gx, float gy, const pool_geom *g, int incl, tap_range *t, int64_t ow) {
    int64_t H = g->in[1], W = g->in[2];
    t[2] = taps(g, 2, ow);
    float v = gy / avg_count(g, incl, t);
    for (int64_t kd = t[0].k0; kd < t[0].k1; kd++)
        for (int64_t kh = t[1].k0; kh < t[1].k1; kh++) {
            float *row = gx + ((t[0].start + kd * g->d[0]) * H + t[1].start + kh * g->d[1]) * W + t[2].start;
            for (int64_t kw = t[2].k0; kw < t[2].k1; kw++) row[kw * g->d[2]] += v;
        }
}

/* One plane: gx (D, H, W) += spread of gy (D', H', W') / count. */
static void avgpool_plane_bw(float *restrict gx, const float *restrict gy, const pool_geom *g, int incl) {
    int64_t H = g->in[1], W = g->in[2], OW = g->out[2], s = g->s[2], lo, hi;
    tap_range t[POOL_SP];
    w_interior(g, &lo, &hi);
    for (int64_t od = 0; od < g->out[0]; od++) {
        t[0] = taps(g, 0, od);
        for (int64_t oh = 0; oh < g->out[1]; oh++) {
            t[1] = taps(g, 1, oh);
            const float *gr = gy + (od * g->out[1] + oh) * OW;
            for (int64_t ow = 0; ow < lo; ow++) avg_one_bw(gx, gr[ow], g, incl, t, ow);
            for (int64_t ow = hi; ow < OW; ow++) avg_one_bw(gx, gr[ow], g, incl, t, ow);
            if (lo == hi) continue;
            int64_t n = hi - lo;
            float inv = 1.0f / avg_count_interior(g, incl, t);
            const float *gv = gr + lo;
            for (int64_t kd = t[0].k0; kd < t[0].k1; kd++)
                for (int64_t kh = t[1].k0; kh < t[1].k1; kh++) {
                    int64_t row = ((t[0].start + kd * g->d[0]) * H + t[1].start + kh * g->d[1]) * W + lo * s - g->pb[2];
                    for (int64_t kw = 0; kw < g->k[2]; kw++) {
                        float *xr = gx + row + kw * g->d[2];
                        if (s == 1)
                            for (int64_t j = 0; j < n; j++) xr[j] += gv[j] * inv;
                        else
                            for (int64_t j = 0; j < n; j++) xr[j * s] += gv[j] * inv;
                    }
                }
        }
    }
}

static gcam_status avgpool_forward(gc_kctx *k) {
    const pool_params *p = k->params;
    pool_geom g;
    if (pool_geom_make(NULL, p, &k->in[0]->shape, &g))
        return gc_kfail(k, GCAM_E_INTERNAL, "geometry changed after infer");
    const float *x = k->in[0]->data;
    float *y = k->out[0]->data;
    int nt = gc_kthreads(k);
    int64_t work = g.planes * g.out_sz;
#pragma omp parallel for num_threads(nt) schedule(static) if (work > 65536)
    for (int64_t pl = 0; pl < g.planes; pl++)
        avgpool_plane(y + pl * g.out_sz, x + pl * g.in_sz, &g, p->count_include_pad);
    return GCAM_OK;
}

static gcam_status avgpool_backward(gc_kctx *k) {
    if (!k->gin[0] || !k->gout[0]) return GCAM_OK;
    const pool_params *p = k->params;
    pool_geom g;
    if (pool_geom_make(NULL, p, &k->in[0]->shape, &g))
        return gc_kfail(k, GCAM_E_INTERNAL, "geometry changed after infer");
    const float *gy = k->gout[0]->data;
    float *gx = k->gin[0]->data;
    int nt = gc_kthreads(k);
    int64_t work = g.planes * g.out_sz;
#pragma omp parallel for num_threads(nt) schedule(static) if (work > 65536)
    for (int64_t pl = 0; pl < g.planes; pl++)
        avgpool_plane_bw(gx + pl * g.in_sz, gy + pl * g.out_sz, &g, p->count_include_pad);
    return GCAM_OK;
}

const gc_opdef gc_def_AveragePool = {
    .name = "AveragePool", .min_opset = 1, .parse = avgpool_parse, .infer = avgpool_infer,
    .forward = avgpool_forward, .backward = avgpool_backward, .bw_in = 0, .bw_out = 0, .diff_in = 1};

/* ------------------------------------------------------------------------------------------ */
/* GlobalAveragePool, GlobalMaxPool: (N, C, ...) -> (N, C, 1, ...)                             */

static gcam_status global_infer(gc_kctx *k) {
    const gc_tensor *x = k->in[0];
    if (!x || !k->out[0]) return gc_kfail(k, GCAM_E_FORMAT, "input X or output Y missing");
    if (x->dtype != GC_F32) return gc_kfail(k, GCAM_E_UNSUPPORTED, "input must be float32");
    if (x->shape.ndim < 2) return gc_kfail(k, GCAM_E_SHAPE, "input rank %d < 2", x->shape.ndim);
    if (gc_numel(x) < 0) return gc_kfail(k, GCAM_E_SHAPE, "input shape unknown");
    int64_t plane = 1;
    for (int i = 2; i < x->shape.ndim; i++) plane *= x->shape.d[i];
    if (plane > INT32_MAX) return gc_kfail(k, GCAM_E_LIMIT, "spatial plane too large");
    if (plane == 0) return gc_kfail(k, GCAM_E_SHAPE, "empty spatial extent");
    gc_tensor *y = k->out[0];
    y->dtype = GC_F32;
    y->shape = x->shape;
    for (int i = 2; i < x->shape.ndim; i++) y->shape.d[i] = 1;
    return GCAM_OK;
}

/* planes, plane size from the input shape */
static void global_dims(const gc_shape *s, int64_t *planes, int64_t *plane) {
    *planes = s->d[0] * s->d[1];
    *plane = 1;
    for (int i = 2; i < s->ndim; i++) *plane *= s->d[i];
}

/* The mean of each of np planes x (np, plane) into y (np), per instruction set. The sums, the same
 * on every path (bit-identical), per block of 4096 floats: 32 lanes (lane l adds x[i + l]: enough
 * chains to hide the adds' latency), folded into 8 as t[l] = (a[l] + a[l+16]) + (a[l+8] + a[l+24]),
 * which take the tail (8 at a time, then one each) and are summed in double (long planes keep
 * their precision). The portable path in GCC vectors of 4, the others in intrinsics: written as
 * arrays, GCC scalarised the fold, which dominates EfficientNet's 7x7 planes. */
GC_INLINE double gap_tail(const float *restrict x, int64_t i, int64_t m, float *t) {
    for (; i + 8 <= m; i += 8)
        for (int l = 0; l < 8; l++) t[l] += x[i + l];
    for (int l = 0; l < m - i; l++) t[l] += x[i + l];
    return ((double)t[0] + t[1]) + ((double)t[2] + t[3]) + ((double)t[4] + t[5]) + ((double)t[6] + t[7]);
}
static void gap_rows_c(float *restrict y, const float *restrict x, int64_t np, int64_t plane) {
    for (int64_t p = 0; p < np; p++, x += plane) {
        double total = 0;
        for (int64_t b0 = 0; b0 < plane; b0 += 4096) {
            const int64_t m = GC_MIN(4096, plane - b0);
            const float *xb = x + b0;
            gc_f4 a0 = {0}, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, v0, v1, lo, hi;
            int64_t i = 0;
            /* two loads at a time: with all eight first, GCC ran out of registers and spilled an accumulator */
            for (; i + 32 <= m; i += 32) {
                GC_F4_LOAD(v0, xb + i);
                GC_F4_LOAD(v1, xb + i + 4);
                a0 += v0;
                a1 += v1;
                GC_F4_LOAD(v0, xb + i + 8);
                GC_F4_LOAD(v1, xb + i + 12);
                a2 += v0;
                a3 += v1;
                GC_F4_LOAD(v0, xb + i + 16);
                GC_F4_LOAD(v1, xb + i + 20);
                a4 += v0;
                a5 += v1;
                GC_F4_LOAD(v0, xb + i + 24);
                GC_F4_LOAD(v1, xb + i + 28);
                a6 += v0;
                a7 += v1;
            }
            float t[8];
            lo = (a0 + a4) + (a2 + a6);
            hi = (a1 + a5) + (a3 + a7);
            memcpy(t, &lo, sizeof lo);
            memcpy(t + 4, &hi, sizeof hi);
            total += gap_tail(xb, i, m, t);
        }
        y[p] = (float)(total / (double)plane);
    }
}
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
GC_ISA_T2 static void gap_rows_avx2(float *restrict y, const float *restrict x, int64_t np, int64_t plane) {
    for (int64_t p = 0; p < np; p++, x += plane) {
        double total = 0;
        for (int64_t b0 = 0; b0 < plane; b0 += 4096) {
            const int64_t m = GC_MIN(4096, plane - b0);
            const float *xb = x + b0;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            int64_t i = 0;
            for (; i + 32 <= m; i += 32) {
                a0 = _mm256_add_ps(a0, _mm256_loadu_ps(xb + i));
                a1 = _mm256_add_ps(a1, _mm256_loadu_ps(xb + i + 8));
                a2 = _mm256_add_ps(a2, _mm256_loadu_ps(xb + i + 16));
                a3 = _mm256_add_ps(a3, _mm256_loadu_ps(xb + i + 24));
            }
            float t[8];
            _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3)));
            total += gap_tail(xb, i, m, t);
        }
        y[p] = (float)(total / (double)plane);
    }
}
/* AVX-512 takes the AVX2 loop: measured faster (99 vs 117 us over EfficientNet's SE shapes) */
static void (*const gap_rows_tab[3])(float *restrict, const float *restrict, int64_t, int64_t) = {
    gap_rows_c, gap_rows_avx2, gap_rows_avx2};
#else
static void (*const gap_rows_tab[3])(float *restrict, const float *restrict, int64_t, int64_t) = {
    gap_rows_c, gap_rows_c, gap_rows_c};
#endif

static gcam_status gap_forward(gc_kctx *k) {
    int64_t planes, plane;
    global_dims(&k->in[0]->shape, &planes, &plane);
    const float *x = k->in[0]->data; /* (planes, plane) */
    float *y = k->out[0]->data;      /* (planes) */
    const int nt = planes * plane > 65536 ? (int)GC_MIN(gc_kthreads(k), planes) : 1, isa = gc_kisa(k);
    /* contiguous ranges of planes per thread, one call each */
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
        const int64_t p0 = planes * t / T, p1 = planes * (t + 1) / T;
        gap_rows_tab[isa](y + p0, x + p0 * plane, p1 - p0, plane);
    }
    return GCAM_OK;
}

/* d (n) += v: 16 lanes on AVX-512 (per instruction set; the same sums on every path) */
GC_INLINE void gap_bw_row(float *restrict d, float v, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] += v;
}
GC_ISA_FN(gap_bw_isa, gap_bw_row, (float *restrict d, float v, int64_t n), (d, v, n))

static gcam_status gap_backward(gc_kctx *k) {
    if (!k->gin[0] || !k->gout[0]) return GCAM_OK;
    int64_t planes, plane;
    global_dims(&k->gin[0]->shape, &planes, &plane);
    const float *gy = k->gout[0]->data; /* (planes) */
    float *gx = k->gin[0]->data;        /* (planes, plane) */
    int nt = gc_kthreads(k);
    const int isa = gc_kisa(k);
#pragma omp parallel for num_threads(nt) schedule(static) if (planes * plane > 65536)
    for (int64_t pl = 0; pl < planes; pl++) gap_bw_isa_tab[isa](gx + pl * plane, gy[pl] / (float)plane, plane);
    return GCAM_OK;
}

const gc_opdef gc_def_GlobalAveragePool = {
    .name = "GlobalAveragePool", .min_opset = 1, .infer = global_infer, .forward = gap_forward,
    .backward = gap_backward, .bw_in = 0, .bw_out = 0, .diff_in = 1};

static size_t gmp_aux(const gc_kctx *k) {
    int64_t planes, plane;
    global_dims(&k->in[0]->shape, &planes, &plane);
    return (size_t)planes * sizeof(int32_t);
}

static gcam_status gmp_forward(gc_kctx *k) {
    int64_t planes, plane;
    global_dims(&k->in[0]->shape, &planes, &plane);
    const float *x = k->in[0]->data; /* (planes, plane) */
    float *y = k->out[0]->data;      /* (planes) */
    int32_t *arg = k->aux;           /* (planes) or NULL */
    int nt = gc_kthreads(k);
#pragma omp parallel for num_threads(nt) schedule(static) if (planes * plane > 65536)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *s = x + pl * plane;
        float m[8], best = -INFINITY;
        for (int l = 0; l < 8; l++) m[l] = -INFINITY;
        int64_t i = 0;
        for (; i + 8 <= plane; i += 8)
            for (int l = 0; l < 8; l++) m[l] = max_step(m[l], s[i + l]);
        for (int l = 0; l < 8; l++) best = max_step(best, m[l]);
        for (; i < plane; i++) best = max_step(best, s[i]);
        y[pl] = best;
        if (arg) { /* the first maximum (or the first NaN), as a sequential scan would pick */
            int64_t bi = 0;
            if (best == best)
                while (s[bi] != best) bi++;
            else
                while (s[bi] == s[bi]) bi++;
            arg[pl] = (int32_t)bi;
        }
    }
    return GCAM_OK;
}

static gcam_status gmp_backward(gc_kctx *k) {
    if (!k->gin[0] || !k->gout[0]) return GCAM_OK;
    if (!k->aux) return gc_kfail(k, GCAM_E_INTERNAL, "GlobalMaxPool backward without the saved argmax (aux)");
    int64_t planes, plane;
    global_dims(&k->gin[0]->shape, &planes, &plane);
    const int32_t *arg = k->aux;
    const float *gy = k->gout[0]->data;
    float *gx = k->gin[0]->data;
    for (int64_t pl = 0; pl < planes; pl++) gx[pl * plane + arg[pl]] += gy[pl];
    return GCAM_OK;
}

const gc_opdef gc_def_GlobalMaxPool = {
    .name = "GlobalMaxPool", .min_opset = 1, .infer = global_infer, .forward = gmp_forward,
    .backward = gmp_backward, .aux_bytes = gmp_aux, .bw_in = 0, .bw_out = 0, .diff_in = 1};

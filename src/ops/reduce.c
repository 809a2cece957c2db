/* Reductions: ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceL2, ReduceProd,
 * ReduceSumSquare, ArgMax, ArgMin.
 *
 * After dropping unit extents and merging neighbouring dims, a reduction over one block of
 * axes is the layout (O, R, I): element (o, r, i) at (o * R + r) * I + i reduces to (o, i).
 * That covers the common cases (H, W of NCHW: I = 1; channels: I = H * W) without copies.
 * Axes that form several blocks are first transposed to (kept..., reduced...) = (Q, R, 1).
 *
 * Max/Min backward follows PyTorch's amax/amin: the gradient is split evenly among tied
 * maxima (minima). Prod backward handles zeros exactly (the product of the other elements). */
#include "kutil.h"

#include <math.h>

typedef enum red_kind { R_SUM, R_MEAN, R_MAX, R_MIN, R_L2, R_PROD, R_SUMSQ } red_kind;

typedef struct red_params {
    red_kind kind;
    int keepdims, noop_empty;
    int has_axes_attr, n_axes;
    int64_t axes[GC_MAX_DIMS];
} red_params;

static gcam_status red_parse(gc_node *n, gc_err *err, red_kind kind) {
    red_params p = {.kind = kind};
    int64_t kd = gc_attr_int(n, "keepdims", 1), ne = gc_attr_int(n, "noop_with_empty_axes", 0);
    if (kd != 0 && kd != 1) return gc_node_fail(n, err, GCAM_E_FORMAT, "keepdims must be 0 or 1, not %lld", (long long)kd);
    if (ne != 0 && ne != 1)
        return gc_node_fail(n, err, GCAM_E_FORMAT, "noop_with_empty_axes must be 0 or 1, not %lld", (long long)ne);
    p.keepdims = (int)kd;
    p.noop_empty = (int)ne;
    const int64_t *ax;
    size_t na = gc_attr_ints(n, "axes", &ax);
    if (na > GC_MAX_DIMS) return gc_node_fail(n, err, GCAM_E_FORMAT, "axes: %zu values, more than any supported rank", na);
    if (gc_attr_find(n, "axes")) {
        p.has_axes_attr = 1;
        p.n_axes = (int)na;
        for (size_t i = 0; i < na; i++) p.axes[i] = ax[i];
    }
    red_params *q = malloc(sizeof *q);
    if (!q) return gc_node_fail(n, err, GCAM_E_NOMEM, "out of memory");
    *q = p;
    free(n->params);
    n->params = q;
    return GCAM_OK;
}

/* Bit i set: axis i is reduced. Axes from the attribute, else from the constant input 1. */
static gcam_status red_mask(gc_kctx *k, const red_params *p, int ndim, uint32_t *mask) {
    int64_t axes[GC_MAX_DIMS];
    int64_t na = 0;
    if (p->has_axes_attr) {
        na = p->n_axes;
        memcpy(axes, p->axes, sizeof(int64_t) * (size_t)na);
    } else if (k->n_in > 1 && k->in[1]) {
        if (!k->in[1]->data) return gc_kfail(k, GCAM_E_UNSUPPORTED, "axes input must be a constant");
        na = gc_tensor_ints(k->in[1], axes, GC_MAX_DIMS);
        if (na < 0) return gc_kfail(k, GCAM_E_FORMAT, "axes input must be an int64 vector of at most %d values", GC_MAX_DIMS);
    }
    *mask = 0;
    if (na == 0) {
        if (!p->noop_empty) *mask = ndim > 0 ? (uint32_t)((1u << ndim) - 1) : 0;
        return GCAM_OK;
    }
    for (int64_t i = 0; i < na; i++) {
        int a = gc_norm_axis(axes[i], ndim);
        if (a < 0) return gc_kfail(k, GCAM_E_FORMAT, "axis %lld out of range for rank %d", (long long)axes[i], ndim);
        if (*mask & (1u << a)) return gc_kfail(k, GCAM_E_FORMAT, "axis %lld repeated", (long long)axes[i]);
        *mask |= 1u << a;
    }
    return GCAM_OK;
}

/* Merged layout. generic: several reduced blocks, nd merged dims with red[] flags. */
typedef struct red_geom {
    int generic, nd;
    int64_t O, R, I;
    int64_t ext[GC_MAX_DIMS];
    int red[GC_MAX_DIMS];
} red_geom;

static void red_geom_make(const gc_shape *s, uint32_t mask, red_geom *g) {
    g->nd = 0;
    for (int i = 0; i < s->ndim; i++) {
        if (s->d[i] == 1) continue;
        int r = (mask >> i) & 1;
        if (g->nd > 0 && g->red[g->nd - 1] == r) {
            g->ext[g->nd - 1] *= s->d[i];
        } else {
            g->ext[g->nd] = s->d[i];
            g->red[g->nd++] = r;
        }
    }
    int blocks = 0;
    for (int i = 0; i < g->nd; i++) blocks += g->red[i];
    g->generic = blocks > 1;
    g->O = g->R = g->I = 1;
    int seen = 0;
    for (int i = 0; i < g->nd; i++) {
        if (g->red[i]) { g->R *= g->ext[i]; seen = 1; }
        else if (g->generic || !seen) g->O *= g->ext[i];
        else g->I *= g->ext[i];
    }
}

/* Geometry of this node's reduction (trusted after infer). */
static gcam_status red_setup(gc_kctx *k, const gc_shape *x, red_geom *g) {
    uint32_t mask;
    gcam_status st = red_mask(k, k->params, x->ndim, &mask);
    if (st) return st;
    red_geom_make(x, mask, g);
    return GCAM_OK;
}

static gcam_status red_infer(gc_kctx *k) {
    const red_params *p = k->params;
    const gc_tensor *x = k->in[0];
    if (!x || !k->out[0]) return gc_kfail(k, GCAM_E_FORMAT, "input data or output missing");
    int int_ok = p->kind == R_SUM || p->kind == R_MAX || p->kind == R_MIN || p->kind == R_PROD;
    if (x->dtype != GC_F32 && !(x->dtype == GC_I64 && int_ok))
        return gc_kfail(k, GCAM_E_UNSUPPORTED, "input must be float32%s", int_ok ? " or int64" : "");
    if (gc_numel(x) < 0) return gc_kfail(k, GCAM_E_SHAPE, "input shape unknown");
    uint32_t mask;
    gcam_status st = red_mask(k, p, x->shape.ndim, &mask);
    if (st) return st;
    gc_tensor *y = k->out[0];
    y->dtype = x->dtype;
    y->shape.ndim = 0;
    int64_t R = 1;
    for (int i = 0; i < x->shape.ndim; i++) {
        if (mask & (1u << i)) {
            R *= x->shape.d[i];
            if (p->keepdims) y->shape.d[y->shape.ndim++] = 1;
        } else {
            y->shape.d[y->shape.ndim++] = x->shape.d[i];
        }
    }
    if (R == 0 && gc_numel(y) > 0 && (p->kind == R_MAX || p->kind == R_MIN))
        return gc_kfail(k, GCAM_E_SHAPE, "max/min over an empty set of elements");
    return GCAM_OK;
}

/* ---- layout changes for the generic case ---- */

/* Source strides and the transposed order (kept dims, then reduced ones) of the merged dims. */
static void red_perm(const red_geom *g, int *perm, int64_t *stride) {
    int64_t acc = 1;
    for (int i = g->nd - 1; i >= 0; i--) {
        stride[i] = acc;
        acc *= g->ext[i];
    }
    int n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < g->nd; i++)
            if (g->red[i] == pass) perm[n++] = i;
}

/* Walks dst in row-major order of the permuted dims. mode 0: dst = src (elements of es bytes);
 * mode 1: src(float) += dst(float), the inverse scatter used by backward. */
static void red_transpose(void *dst, void *src, size_t es, const red_geom *g, int mode) {
    int perm[GC_MAX_DIMS] = {0};
    int64_t stride[GC_MAX_DIMS] = {0}, idx[GC_MAX_DIMS] = {0};
    red_perm(g, perm, stride);
    int nd = g->nd;
    if (nd < 1) return; /* generic layouts have at least three merged dims */
    int64_t inner = g->ext[perm[nd - 1]], istr = stride[perm[nd - 1]];
    int64_t total = 1, off = 0, j = 0;
    for (int i = 0; i < nd; i++) total *= g->ext[i];
    while (j < total) {
        if (mode == 1) {
            float *s = src;
            const float *d = dst;
            for (int64_t t = 0; t < inner; t++) s[off + t * istr] += d[j + t];
        } else if (es == 4) {
            const float *s = src;
            float *d = dst;
            for (int64_t t = 0; t < inner; t++) d[j + t] = s[off + t * istr];
        } else {
            const int64_t *s = src;
            int64_t *d = dst;
            for (int64_t t = 0; t < inner; t++) d[j + t] = s[off + t * istr];
        }
        j += inner;
        /* odometer over the outer permuted dims */
        for (int a = nd - 2; a >= 0; a--) {
            int dd = perm[a];
            off += stride[dd];
            if (++idx[a] < g->ext[dd]) break;
            off -= stride[dd] * g->ext[dd];
            idx[a] = 0;
        }
    }
}

/* ---- forward kernels on (O, R, I) ---- */

/* Sum (sq = 0) or sum of squares (sq = 1) of a contiguous run: 8 float lanes, flushed to
 * double every block. Fixed order: deterministic. */
static double sum_run(const float *x, int64_t n, int sq) {
    double total = 0;
    int64_t i = 0;
    while (i < n) {
        int64_t end = GC_MIN(n, i + 4096);
        float acc[8] = {0};
        if (sq) {
            for (; i + 8 <= end; i += 8)
                for (int l = 0; l < 8; l++) acc[l] += x[i + l] * x[i + l];
            for (; i < end; i++) acc[0] += x[i] * x[i];
        } else {
            for (; i + 8 <= end; i += 8)
                for (int l = 0; l < 8; l++) acc[l] += x[i + l];
            for (; i < end; i++) acc[0] += x[i];
        }
        for (int l = 0; l < 8; l++) total += acc[l];
    }
    return total;
}

/* NaN-propagating max step, written with integer masks so loops over it vectorise. */
static inline float max_step(float b, float v) {
    int c = (b == b) & ((v > b) | (v != v));
    return c ? v : b;
}

/* One contiguous group of R values. */
static float red_run(const float *x, int64_t R, red_kind kind) {
    switch (kind) {
    case R_SUM: return (float)sum_run(x, R, 0);
    case R_MEAN: return (float)(sum_run(x, R, 0) / (double)R);
    case R_SUMSQ: return (float)sum_run(x, R, 1);
    case R_L2: return (float)sqrt(sum_run(x, R, 1));
    case R_PROD: {
        double p = 1;
        for (int64_t r = 0; r < R; r++) p *= x[r];
        return (float)p;
    }
    case R_MAX:
    case R_MIN: {
        float neg = kind == R_MAX ? 1.0f : -1.0f; /* min(x) = -max(-x) */
        float m[8];
        for (int l = 0; l < 8; l++) m[l] = -INFINITY;
        int64_t r = 0;
        for (; r + 8 <= R; r += 8)
            for (int l = 0; l < 8; l++) m[l] = max_step(m[l], neg * x[r + l]);
        float b = -INFINITY;
        for (int l = 0; l < 8; l++) b = max_step(b, m[l]);
        for (; r < R; r++) b = max_step(b, neg * x[r]);
        return neg * b;
    }
    }
    return 0;
}

#define RED_BLK 1024 /* (o, i) columns handled per task when I > 1 */

/* nb columns: y (nb) from x (R, I) starting at column i0 (pointers already offset). */
static void red_cols(float *y, const float *x, int64_t R, int64_t I, int64_t nb, red_kind kind) {
    float init = kind == R_PROD ? 1.0f : kind == R_MAX ? -INFINITY : kind == R_MIN ? INFINITY : 0.0f;
    for (int64_t j = 0; j < nb; j++) y[j] = init;
    for (int64_t r = 0; r < R; r++) {
        const float *row = x + r * I;
        switch (kind) {
        case R_SUM:
        case R_MEAN:
            for (int64_t j = 0; j < nb; j++) y[j] += row[j];
            break;
        case R_SUMSQ:
        case R_L2:
            for (int64_t j = 0; j < nb; j++) y[j] += row[j] * row[j];
            break;
        case R_PROD:
            for (int64_t j = 0; j < nb; j++) y[j] *= row[j];
            break;
        case R_MAX:
            for (int64_t j = 0; j < nb; j++) y[j] = max_step(y[j], row[j]);
            break;
        case R_MIN:
            for (int64_t j = 0; j < nb; j++) y[j] = -max_step(-y[j], -row[j]);
            break;
        }
    }
    if (kind == R_MEAN) {
        float inv = 1.0f / (float)R;
        for (int64_t j = 0; j < nb; j++) y[j] *= inv;
    } else if (kind == R_L2) {
        for (int64_t j = 0; j < nb; j++) y[j] = sqrtf(y[j]);
    }
}

/* y (O, I) from x (O, R, I). */
static void red_f32(float *y, const float *x, int64_t O, int64_t R, int64_t I, red_kind kind, int nt) {
    if (R == 0) { /* empty groups: the identity of the reduction (mean: 0/0) */
        float v = kind == R_PROD ? 1.0f : kind == R_MEAN ? NAN : 0.0f;
        for (int64_t q = 0; q < O * I; q++) y[q] = v;
        return;
    }
    if (I == 1) {
#pragma omp parallel for num_threads(nt) schedule(static) if (O * R > 32768)
        for (int64_t o = 0; o < O; o++) y[o] = red_run(x + o * R, R, kind);
        return;
    }
    int64_t nblk = (I + RED_BLK - 1) / RED_BLK;
#pragma omp parallel for num_threads(nt) schedule(static) if (O * R * I > 32768)
    for (int64_t t = 0; t < O * nblk; t++) {
        int64_t o = t / nblk, i0 = (t % nblk) * RED_BLK;
        red_cols(y + o * I + i0, x + o * R * I + i0, R, I, GC_MIN(RED_BLK, I - i0), kind);
    }
}

/* Integer reductions (shape computations): small, serial. y (O, I) from x (O, R, I). */
static void red_i64(int64_t *y, const int64_t *x, int64_t O, int64_t R, int64_t I, red_kind kind) {
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++) {
            const int64_t *s = x + o * R * I + i;
            int64_t acc = kind == R_PROD ? 1 : kind == R_MAX ? INT64_MIN : kind == R_MIN ? INT64_MAX : 0;
            for (int64_t r = 0; r < R; r++) {
                int64_t v = s[r * I];
                /* wrap-around like the int64 arithmetic of other runtimes, without UB */
                if (kind == R_SUM) acc = (int64_t)((uint64_t)acc + (uint64_t)v);
                else if (kind == R_PROD) acc = (int64_t)((uint64_t)acc * (uint64_t)v);
                else if (kind == R_MAX) acc = GC_MAX(acc, v);
                else acc = GC_MIN(acc, v);
            }
            y[o * I + i] = acc;
        }
}

static size_t red_scratch(const gc_kctx *k) {
    red_geom g;
    if (red_setup((gc_kctx *)k, &k->in[0]->shape, &g) || !g.generic) return 0;
    return (size_t)gc_numel(k->in[0]) * gc_dtype_size(k->in[0]->dtype);
}

static gcam_status red_forward(gc_kctx *k) {
    const red_params *p = k->params;
    const gc_tensor *x = k->in[0];
    red_geom g;
    gcam_status st = red_setup(k, &x->shape, &g);
    if (st) return st;
    if (gc_numel(k->out[0]) == 0) return GCAM_OK;
    const void *src = x->data;
    if (g.generic) {
        size_t need = (size_t)gc_numel(x) * gc_dtype_size(x->dtype);
        if (!k->scratch || k->scratch_size < need) return gc_kfail(k, GCAM_E_INTERNAL, "reduce scratch missing");
        red_transpose(k->scratch, x->data, gc_dtype_size(x->dtype), &g, 0);
        src = k->scratch;
    }
    if (x->dtype == GC_I64) red_i64(k->out[0]->data, src, g.O, g.R, g.I, p->kind);
    else red_f32(k->out[0]->data, src, g.O, g.R, g.I, p->kind, gc_kthreads(k));
    return GCAM_OK;
}

/* ---- backward on (O, R, I) ---- */

/* One contiguous group (I = 1): gx (R) += VJP of y = reduce(x (R)), g the incoming gradient. */
static void red_bw_run(float *restrict gx, float g, const float *restrict x, float y, int64_t R, red_kind kind) {
    switch (kind) {
    case R_SUM:
    case R_MEAN: {
        float v = kind == R_MEAN ? g * (1.0f / (float)R) : g;
        for (int64_t r = 0; r < R; r++) gx[r] += v;
        break;
    }
    case R_SUMSQ:
        for (int64_t r = 0; r < R; r++) gx[r] += 2.0f * x[r] * g;
        break;
    case R_L2: {
        float c = y > 0 ? g / y : 0.0f;
        for (int64_t r = 0; r < R; r++) gx[r] += x[r] * c;
        break;
    }
    case R_MAX:
    case R_MIN: {
        int64_t cnt = 0;
        for (int64_t r = 0; r < R; r++) cnt += x[r] == y;
        float c = cnt ? g / (float)cnt : 0.0f;
        for (int64_t r = 0; r < R; r++) gx[r] += x[r] == y ? c : 0.0f;
        break;
    }
    case R_PROD: {
        double pd = 1;
        int64_t z = 0;
        for (int64_t r = 0; r < R; r++) {
            if (x[r] == 0) z++;
            else pd *= x[r];
        }
        for (int64_t r = 0; r < R; r++) {
            double d = z == 0 ? pd / x[r] : (z == 1 && x[r] == 0 ? pd : 0.0);
            gx[r] += (float)(d * g);
        }
        break;
    }
    }
}

/* gx (O, R, I) += VJP; x (O, R, I) and y (O, I) only for the kinds that need them. */
static void red_bw_f32(float *gx, const float *gy, const float *x, const float *y, int64_t O, int64_t R, int64_t I,
                       red_kind kind, int nt) {
    if (I == 1) {
#pragma omp parallel for num_threads(nt) schedule(static) if (O * R > 32768)
        for (int64_t o = 0; o < O; o++)
            red_bw_run(gx + o * R, gy[o], x ? x + o * R : NULL, y ? y[o] : 0.0f, R, kind);
        return;
    }
    int64_t nblk = (I + RED_BLK - 1) / RED_BLK;
#pragma omp parallel for num_threads(nt) schedule(static) if (O * R * I > 32768)
    for (int64_t t = 0; t < O * nblk; t++) {
        int64_t o = t / nblk, i0 = (t % nblk) * RED_BLK, nb = GC_MIN(RED_BLK, I - i0);
        int64_t base = o * R * I + i0;
        const float *g = gy + o * I + i0, *yy = y ? y + o * I + i0 : NULL;
        float c[RED_BLK];   /* per column: a factor (ties count, product of non-zeros...) */
        int32_t z[RED_BLK]; /* per column: number of zeros (Prod) */
        switch (kind) {
        case R_SUM:
        case R_MEAN: {
            float f = kind == R_MEAN ? 1.0f / (float)R : 1.0f;
            for (int64_t r = 0; r < R; r++)
                for (int64_t j = 0; j < nb; j++) gx[base + r * I + j] += g[j] * f;
            break;
        }
        case R_SUMSQ:
            for (int64_t r = 0; r < R; r++)
                for (int64_t j = 0; j < nb; j++) gx[base + r * I + j] += 2.0f * x[base + r * I + j] * g[j];
            break;
        case R_L2:
            for (int64_t j = 0; j < nb; j++) c[j] = yy[j] > 0 ? g[j] / yy[j] : 0.0f; /* 0 at y = 0, like PyTorch */
            for (int64_t r = 0; r < R; r++)
                for (int64_t j = 0; j < nb; j++) gx[base + r * I + j] += x[base + r * I + j] * c[j];
            break;
        case R_MAX:
        case R_MIN:
            for (int64_t j = 0; j < nb; j++) c[j] = 0;
            for (int64_t r = 0; r < R; r++)
                for (int64_t j = 0; j < nb; j++) c[j] += x[base + r * I + j] == yy[j] ? 1.0f : 0.0f;
            for (int64_t j = 0; j < nb; j++) c[j] = c[j] > 0 ? g[j] / c[j] : 0.0f;
            for (int64_t r = 0; r < R; r++)
                for (int64_t j = 0; j < nb; j++)
                    if (x[base + r * I + j] == yy[j]) gx[base + r * I + j] += c[j];
            break;
        case R_PROD: {
            double pd[RED_BLK]; /* product of the non-zero elements */
            for (int64_t j = 0; j < nb; j++) { pd[j] = 1; z[j] = 0; }
            for (int64_t r = 0; r < R; r++)
                for (int64_t j = 0; j < nb; j++) {
                    float v = x[base + r * I + j];
                    if (v == 0) z[j]++;
                    else pd[j] *= v;
                }
            for (int64_t r = 0; r < R; r++)
                for (int64_t j = 0; j < nb; j++) {
                    float v = x[base + r * I + j];
                    double d = z[j] == 0 ? pd[j] / v : (z[j] == 1 && v == 0 ? pd[j] : 0.0);
                    gx[base + r * I + j] += (float)(d * g[j]);
                }
            break;
        }
        }
    }
}

static int red_needs_x(red_kind kind) { return kind != R_SUM && kind != R_MEAN; }

static size_t red_bscratch(const gc_kctx *k) {
    red_geom g;
    if (red_setup((gc_kctx *)k, &k->in[0]->shape, &g) || !g.generic) return 0;
    const red_params *p = k->params;
    return (size_t)gc_numel(k->in[0]) * sizeof(float) * (red_needs_x(p->kind) ? 2 : 1);
}

static gcam_status red_backward(gc_kctx *k) {
    const red_params *p = k->params;
    if (!k->gin[0] || !k->gout[0] || k->in[0]->dtype != GC_F32) return GCAM_OK;
    red_geom g;
    gcam_status st = red_setup(k, &k->in[0]->shape, &g);
    if (st) return st;
    int64_t n = gc_numel(k->in[0]);
    if (n == 0) return GCAM_OK;
    int need_x = red_needs_x(p->kind);
    const float *x = need_x ? k->in[0]->data : NULL;
    const float *y = p->kind == R_MAX || p->kind == R_MIN || p->kind == R_L2 ? k->out[0]->data : NULL;
    const float *gy = k->gout[0]->data;
    int nt = gc_kthreads(k);
    if (!g.generic) {
        red_bw_f32(k->gin[0]->data, gy, x, y, g.O, g.R, g.I, p->kind, nt);
        return GCAM_OK;
    }
    size_t need = (size_t)n * sizeof(float) * (need_x ? 2 : 1);
    if (!k->scratch || k->scratch_size < need) return gc_kfail(k, GCAM_E_INTERNAL, "reduce backward scratch missing");
    float *gt = k->scratch;      /* (Q, R): gradient in the transposed layout */
    float *xt = gt + n;          /* (Q, R): transposed input */
    memset(gt, 0, (size_t)n * sizeof(float));
    if (need_x) red_transpose(xt, (void *)x, sizeof(float), &g, 0);
    red_bw_f32(gt, gy, need_x ? xt : NULL, y, g.O, g.R, g.I, p->kind, nt);
    red_transpose(gt, k->gin[0]->data, sizeof(float), &g, 1);
    return GCAM_OK;
}

#define RED_OP(Name, KIND, BWIN, BWOUT)                                                              \
    static gcam_status parse_##Name(gc_node *n, gc_err *err) { return red_parse(n, err, KIND); }    \
    const gc_opdef gc_def_##Name = {                                                                \
        .name = #Name, .min_opset = 1, .parse = parse_##Name, .infer = red_infer,                  \
        .scratch_bytes = red_scratch, .forward = red_forward, .bscratch_bytes = red_bscratch,      \
        .backward = red_backward, .bw_in = (BWIN), .bw_out = (BWOUT), .diff_in = 1};

/* bw_in bit 1: the constant axes input, read again to rebuild the geometry. */
RED_OP(ReduceMean, R_MEAN, 2u, 0u)
RED_OP(ReduceSum, R_SUM, 2u, 0u)
RED_OP(ReduceMax, R_MAX, 3u, 1u)
RED_OP(ReduceMin, R_MIN, 3u, 1u)
RED_OP(ReduceL2, R_L2, 3u, 1u)
RED_OP(ReduceProd, R_PROD, 3u, 0u)
RED_OP(ReduceSumSquare, R_SUMSQ, 3u, 0u)

/* ------------------------------------------------------------------------------------------ */
/* ArgMax, ArgMin: int64 indices along one axis                                                */

typedef struct arg_params { int64_t axis; int keepdims, last; } arg_params;

static gcam_status arg_parse(gc_node *n, gc_err *err) {
    arg_params p = {gc_attr_int(n, "axis", 0), (int)gc_attr_int(n, "keepdims", 1),
                    (int)gc_attr_int(n, "select_last_index", 0)};
    if (p.keepdims != 0 && p.keepdims != 1) return gc_node_fail(n, err, GCAM_E_FORMAT, "keepdims must be 0 or 1");
    if (p.last != 0 && p.last != 1) return gc_node_fail(n, err, GCAM_E_FORMAT, "select_last_index must be 0 or 1");
    arg_params *q = malloc(sizeof *q);
    if (!q) return gc_node_fail(n, err, GCAM_E_NOMEM, "out of memory");
    *q = p;
    free(n->params);
    n->params = q;
    return GCAM_OK;
}

static gcam_status arg_infer(gc_kctx *k) {
    const arg_params *p = k->params;
    const gc_tensor *x = k->in[0];
    if (!x || !k->out[0]) return gc_kfail(k, GCAM_E_FORMAT, "input data or output missing");
    if (x->dtype != GC_F32 && x->dtype != GC_I64) return gc_kfail(k, GCAM_E_UNSUPPORTED, "input must be float32 or int64");
    if (gc_numel(x) < 0) return gc_kfail(k, GCAM_E_SHAPE, "input shape unknown");
    int a = gc_norm_axis(p->axis, x->shape.ndim);
    if (a < 0) return gc_kfail(k, GCAM_E_FORMAT, "axis %lld out of range for rank %d", (long long)p->axis, x->shape.ndim);
    gc_tensor *y = k->out[0];
    y->dtype = GC_I64;
    y->shape.ndim = 0;
    for (int i = 0; i < x->shape.ndim; i++)
        if (i != a || p->keepdims) y->shape.d[y->shape.ndim++] = i == a ? 1 : x->shape.d[i];
    if (x->shape.d[a] == 0 && gc_numel(y) > 0) return gc_kfail(k, GCAM_E_SHAPE, "arg max/min over an empty axis");
    return GCAM_OK;
}

/* better(v, b): v replaces the current best b. NaN counts as the extreme, like numpy. */
static inline int arg_better_f(float v, float b, int is_max, int last) {
    if (v != v) return b == b || last;
    if (b != b) return 0;
    return is_max ? (last ? v >= b : v > b) : (last ? v <= b : v < b);
}

static gcam_status arg_run(gc_kctx *k, int is_max) {
    const arg_params *p = k->params;
    const gc_tensor *x = k->in[0];
    int a = gc_norm_axis(p->axis, x->shape.ndim);
    int64_t O = 1, R = x->shape.d[a], I = 1;
    for (int i = 0; i < x->shape.ndim; i++) {
        if (i < a) O *= x->shape.d[i];
        if (i > a) I *= x->shape.d[i];
    }
    int64_t *y = k->out[0]->data; /* (O, I) */
    if (O * I == 0) return GCAM_OK;
    int nt = gc_kthreads(k);
    int last = p->last;
#pragma omp parallel for num_threads(nt) schedule(static) if (O * R * I > 32768)
    for (int64_t o = 0; o < O; o++) {
        int64_t *yo = y + o * I;
        for (int64_t i = 0; i < I; i++) yo[i] = 0;
        if (x->dtype == GC_F32) {
            const float *xo = (const float *)x->data + o * R * I; /* (R, I) */
            for (int64_t r = 1; r < R; r++)
                for (int64_t i = 0; i < I; i++)
                    if (arg_better_f(xo[r * I + i], xo[yo[i] * I + i], is_max, last)) yo[i] = r;
        } else {
            const int64_t *xo = (const int64_t *)x->data + o * R * I;
            for (int64_t r = 1; r < R; r++)
                for (int64_t i = 0; i < I; i++) {
                    int64_t v = xo[r * I + i], b = xo[yo[i] * I + i];
                    if (is_max ? (last ? v >= b : v > b) : (last ? v <= b : v < b)) yo[i] = r;
                }
        }
    }
    return GCAM_OK;
}
static gcam_status argmax_forward(gc_kctx *k) { return arg_run(k, 1); }
static gcam_status argmin_forward(gc_kctx *k) { return arg_run(k, 0); }

const gc_opdef gc_def_ArgMax = {.name = "ArgMax", .min_opset = 1, .parse = arg_parse, .infer = arg_infer,
                                .forward = argmax_forward};
const gc_opdef gc_def_ArgMin = {.name = "ArgMin", .min_opset = 1, .parse = arg_parse, .infer = arg_infer,
                                .forward = argmin_forward};

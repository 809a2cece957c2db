/* Shape and data-movement ops: Concat, Split, Flatten, Reshape, Transpose, Squeeze, Unsqueeze,
 * Slice, Gather, Expand, Tile, Shape, Cast, Constant, ConstantOfShape, Range, Size.
 *
 * Every data-moving kernel is dtype-agnostic (element size 1, 4 or 8 bytes) because the
 * exporter's Shape -> Gather -> Concat -> Reshape chains run through them at planning time on
 * int64 tensors. Backward passes exist for float data only. Most movement goes through one
 * strided-copy engine (sv_run) that coalesces axes, tiles transposes and parallelises over
 * independent output blocks. */
#include "ops.h"

#include <math.h>

/* ------------------------------------------------------------------------------------------ */
/* Shared helpers                                                                               */

static int dtype_ok(gc_dtype t) { return t == GC_F32 || t == GC_I64 || t == GC_BOOL; }

static const char *shape_s(const gc_shape *s, char *buf, size_t n) { return gc_shape_str(s, buf, n); }

/* Sets output j (if present) after checking its byte size does not overflow. */
static gcam_status set_out(gc_kctx *k, int j, gc_dtype t, const gc_shape *s) {
    if (j >= k->n_out || !k->out[j]) return GCAM_OK;
    int ok = 0;
    (void)gc_tensor_bytes(t, s, &ok);
    if (!ok) {
        char b[128];
        return gc_kfail(k, GCAM_E_SHAPE, "output %d: shape %s is invalid or too large", j,
                        shape_s(s, b, sizeof b));
    }
    k->out[j]->dtype = t;
    k->out[j]->shape = *s;
    return GCAM_OK;
}

/* Input i must be present with a supported dtype and a known shape. */
static gcam_status need_in(gc_kctx *k, int i) {
    if (i >= k->n_in || !k->in[i]) return gc_kfail(k, GCAM_E_FORMAT, "input %d is missing", i);
    const gc_tensor *t = k->in[i];
    if (!dtype_ok(t->dtype)) return gc_kfail(k, GCAM_E_UNSUPPORTED, "input %d: unsupported dtype", i);
    if (gc_shape_numel(&t->shape) < 0) return gc_kfail(k, GCAM_E_SHAPE, "input %d: unknown shape", i);
    return GCAM_OK;
}

static const gc_tensor *opt_in(const gc_kctx *k, int i) {
    return i < k->n_in && k->in[i] ? k->in[i] : NULL;
}

/* Reads a constant int input (int64/bool) of at most max values; fails naming it otherwise. */
static gcam_status const_ints(gc_kctx *k, int i, const char *what, int64_t *v, int64_t max, int64_t *n) {
    const gc_tensor *t = opt_in(k, i);
    *n = 0;
    if (!t) return gc_kfail(k, GCAM_E_FORMAT, "input '%s' is missing", what);
    if (t->dtype != GC_I64 && t->dtype != GC_BOOL)
        return gc_kfail(k, GCAM_E_FORMAT, "input '%s' must be an integer tensor", what);
    if (!t->data)
        return gc_kfail(k, GCAM_E_UNSUPPORTED, "input '%s' must be constant (known when planning)", what);
    if (t->shape.ndim > 1) return gc_kfail(k, GCAM_E_SHAPE, "input '%s' must be 1-D", what);
    *n = gc_tensor_ints(t, v, max);
    if (*n < 0) return gc_kfail(k, GCAM_E_SHAPE, "input '%s' has more than %lld values", what, (long long)max);
    return GCAM_OK;
}

static void add_f32(float *d, const float *s, int64_t n, int nthreads) {
#pragma omp parallel for num_threads(nthreads) schedule(static) if (n > (1 << 17))
    for (int64_t i = 0; i < n; i++) d[i] += s[i];
}

static void copy_bytes(void *d, const void *s, size_t n) {
    if (d != s && n) memcpy(d, s, n);
}

/* Backward of ops that only reinterpret the shape: gin[0] += gout[0]. */
static gcam_status bw_view(gc_kctx *k) {
    if (!k->gin[0] || !k->gout[0] || k->gin[0]->dtype != GC_F32) return GCAM_OK;
    add_f32(k->gin[0]->data, k->gout[0]->data, gc_numel(k->gin[0]), k->nthreads);
    return GCAM_OK;
}

/* Forward of the same ops: a byte copy. */
static gcam_status fw_view(gc_kctx *k) {
    const gc_tensor *x = k->in[0];
    copy_bytes(k->out[0]->data, x->data, (size_t)gc_numel(x) * gc_dtype_size(x->dtype));
    return GCAM_OK;
}

/* ---- strided-copy engine ---------------------------------------------------------------- */

#define SV_MAX (2 * GC_MAX_DIMS)
enum { SV_COPY = 0, SV_ADD = 1 }; /* SV_ADD: float dst += src (ds may be 0: a reduction) */

/* dst[sum idx*ds] (op)= src[sum idx*ss] over the index space n (strides in elements). */
typedef struct sview {
    int nd;
    int64_t n[SV_MAX], ds[SV_MAX], ss[SV_MAX];
} sview;

/* Drops unit axes and merges neighbours that are contiguous in both views. Returns the count. */
static int64_t sv_simplify(sview *v) {
    int m = 0;
    int64_t total = 1;
    for (int i = 0; i < v->nd; i++) {
        if (v->n[i] == 0) return 0;
        if (v->n[i] == 1) continue;
        total *= v->n[i];
        if (m > 0 && v->ds[m - 1] == v->ds[i] * v->n[i] && v->ss[m - 1] == v->ss[i] * v->n[i]) {
            v->n[m - 1] *= v->n[i];
            v->ds[m - 1] = v->ds[i];
            v->ss[m - 1] = v->ss[i];
            continue;
        }
        v->n[m] = v->n[i];
        v->ds[m] = v->ds[i];
        v->ss[m] = v->ss[i];
        m++;
    }
    if (m == 0) {
        m = 1;
        v->n[0] = 1;
        v->ds[0] = v->ss[0] = 0;
    }
    v->nd = m;
    return total;
}

#define SV_LINE(T)                                                                                 \
    do {                                                                                           \
        T *d_ = (T *)d;                                                                            \
        const T *s_ = (const T *)s;                                                                \
        for (int64_t i = 0; i < n; i++) d_[i * ds] = s_[i * ss];                                   \
    } while (0)

/* One line of n elements. */
static void sv_line(char *d, const char *s, int64_t n, int64_t ds, int64_t ss, size_t es, int mode) {
    if (mode == SV_ADD) {
        float *df = (float *)d;
        const float *sf = (const float *)s;
        if (ds == 1 && ss == 1) {
            for (int64_t i = 0; i < n; i++) df[i] += sf[i];
        } else if (ds == 0) {
            float acc = 0;
            for (int64_t i = 0; i < n; i++) acc += sf[i * ss];
            df[0] += acc;
        } else {
            for (int64_t i = 0; i < n; i++) df[i * ds] += sf[i * ss];
        }
        return;
    }
    if (ds == 1 && ss == 1) {
        memcpy(d, s, (size_t)n * es);
        return;
    }
    switch (es) {
    case 1: SV_LINE(uint8_t); break;
    case 4: SV_LINE(uint32_t); break;
    default: SV_LINE(uint64_t); break;
    }
}

#define SV_TILE(T, OP)                                                                             \
    do {                                                                                           \
        T *d_ = (T *)d;                                                                            \
        const T *s_ = (const T *)s;                                                                \
        for (int64_t i0 = 0; i0 < n0; i0 += 32)                                                    \
            for (int64_t j0 = 0; j0 < n1; j0 += 32) {                                              \
                int64_t i1 = GC_MIN(i0 + 32, n0), j1 = GC_MIN(j0 + 32, n1);                        \
                for (int64_t i = i0; i < i1; i++)                                                  \
                    for (int64_t j = j0; j < j1; j++) d_[i * d0 + j] OP s_[i + j * s1];            \
            }                                                                                      \
    } while (0)

/* A 2-D transpose block: d[i*d0 + j] (op)= s[i + j*s1], in 32x32 tiles for the caches. */
static void sv_tile(char *d, const char *s, int64_t n0, int64_t d0, int64_t n1, int64_t s1, size_t es,
                    int mode) {
    if (mode == SV_ADD) SV_TILE(float, +=);
    else if (es == 1) SV_TILE(uint8_t, =);
    else if (es == 4) SV_TILE(uint32_t, =);
    else SV_TILE(uint64_t, =);
}

static void sv_run(void *dst, const void *src, sview *v, size_t es, int mode, int nthreads) {
    int64_t total = sv_simplify(v);
    if (total == 0) return;
    int nd = v->nd, tiled = 0;
    /* Transposes read the source with a large stride: tile with an axis the source walks
     * contiguously. */
    if (nd >= 2 && v->ds[nd - 1] == 1 && v->ss[nd - 1] != 1 && v->n[nd - 1] >= 4) {
        for (int p = nd - 2; p >= 0; p--) {
            if (v->ss[p] == 1 && v->ds[p] != 0 && v->n[p] >= 4) {
                int q = nd - 2;
                int64_t t;
                t = v->n[p], v->n[p] = v->n[q], v->n[q] = t;
                t = v->ds[p], v->ds[p] = v->ds[q], v->ds[q] = t;
                t = v->ss[p], v->ss[p] = v->ss[q], v->ss[q] = t;
                tiled = 1;
                break;
            }
        }
    }
    int nout = nd - (tiled ? 2 : 1);
    /* Blocks over the leading axes that write distinct destinations run in parallel. */
    int npar = 0;
    while (npar < nout && v->ds[npar] != 0) npar++;
    int64_t nblk = 1;
    for (int i = 0; i < npar; i++) nblk *= v->n[i];
    const sview *cv = v;
#pragma omp parallel for num_threads(nthreads) schedule(static) if (total > (1 << 16) && nblk > 1)
    for (int64_t b = 0; b < nblk; b++) {
        int64_t doff = 0, soff = 0, rem = b;
        for (int i = npar - 1; i >= 0; i--) {
            int64_t c = rem % cv->n[i];
            rem /= cv->n[i];
            doff += c * cv->ds[i];
            soff += c * cv->ss[i];
        }
        int64_t idx[SV_MAX] = {0};
        for (;;) {
            char *d = (char *)dst + doff * (int64_t)es;
            const char *s = (const char *)src + soff * (int64_t)es;
            if (tiled)
                sv_tile(d, s, cv->n[nd - 2], cv->ds[nd - 2], cv->n[nd - 1], cv->ss[nd - 1], es, mode);
            else
                sv_line(d, s, cv->n[nd - 1], cv->ds[nd - 1], cv->ss[nd - 1], es, mode);
            int i = nout - 1;
            for (; i >= npar; i--) {
                idx[i]++;
                doff += cv->ds[i];
                soff += cv->ss[i];
                if (idx[i] < cv->n[i]) break;
                doff -= cv->ds[i] * cv->n[i];
                soff -= cv->ss[i] * cv->n[i];
                idx[i] = 0;
            }
            if (i < npar) break;
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Concat                                                                                       */

static gcam_status concat_parse(gc_node *n, gc_err *err) {
    const gc_attr *a = gc_attr_find(n, "axis");
    if (n->opset >= 4 && (!a || a->type != GC_ATTR_INT))
        return gc_fail(err, GCAM_E_FORMAT, "node '%s' (Concat): attribute 'axis' is required", n->name);
    if (n->n_in < 1) return gc_fail(err, GCAM_E_FORMAT, "node '%s' (Concat): no inputs", n->name);
    return GCAM_OK;
}

static int concat_axis(const gc_kctx *k) { return gc_norm_axis(gc_attr_int(k->node, "axis", 1), k->in[0]->shape.ndim); }

static gcam_status concat_infer(gc_kctx *k) {
    for (int i = 0; i < k->n_in; i++) {
        gcam_status st = need_in(k, i);
        if (st) return st;
    }
    const gc_tensor *x0 = k->in[0];
    int axis = concat_axis(k);
    if (axis < 0) return gc_kfail(k, GCAM_E_SHAPE, "axis %lld out of range for rank %d",
                                  (long long)gc_attr_int(k->node, "axis", 1), x0->shape.ndim);
    gc_shape s = x0->shape;
    for (int i = 1; i < k->n_in; i++) {
        const gc_tensor *x = k->in[i];
        if (x->dtype != x0->dtype) return gc_kfail(k, GCAM_E_FORMAT, "input %d: dtype differs from input 0", i);
        if (x->shape.ndim != s.ndim) return gc_kfail(k, GCAM_E_SHAPE, "input %d: rank differs from input 0", i);
        for (int d = 0; d < s.ndim; d++) {
            if (d == axis) continue;
            if (x->shape.d[d] != s.d[d])
                return gc_kfail(k, GCAM_E_SHAPE, "input %d: extent of axis %d is %lld, expected %lld", i, d,
                                (long long)x->shape.d[d], (long long)s.d[d]);
        }
        if (gc_add_i64(&s.d[axis], s.d[axis], x->shape.d[axis]))
            return gc_kfail(k, GCAM_E_SHAPE, "concatenated extent overflows");
    }
    return set_out(k, 0, x0->dtype, &s);
}

/* outer: product of dims before the axis; inner: after it (elements). */
static void axis_split(const gc_shape *s, int axis, int64_t *outer, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < axis; d++) *outer *= s->d[d];
    for (int d = axis + 1; d < s->ndim; d++) *inner *= s->d[d];
}

static gcam_status concat_forward(gc_kctx *k) {
    gc_tensor *y = k->out[0];
    int axis = concat_axis(k);
    size_t es = gc_dtype_size(y->dtype);
    int64_t outer, inner;
    axis_split(&y->shape, axis, &outer, &inner);
    int64_t orow = y->shape.d[axis] * inner, off = 0; /* y: (outer, orow) */
    for (int i = 0; i < k->n_in; i++) {
        const gc_tensor *x = k->in[i];
        int64_t row = x->shape.d[axis] * inner; /* x: (outer, row) */
        sview v = {.nd = 2, .n = {outer, row}, .ds = {orow, 1}, .ss = {row, 1}};
        sv_run((char *)y->data + (size_t)off * es, x->data, &v, es, SV_COPY, k->nthreads);
        off += row;
    }
    return GCAM_OK;
}

static gcam_status concat_backward(gc_kctx *k) {
    const gc_tensor *gy = k->gout[0];
    if (!gy) return GCAM_OK;
    int axis = concat_axis(k);
    int64_t outer, inner;
    axis_split(&gy->shape, axis, &outer, &inner);
    int64_t orow = gy->shape.d[axis] * inner, off = 0;
    for (int i = 0; i < k->n_in; i++) {
        int64_t row = k->in[i]->shape.d[axis] * inner;
        if (k->gin[i] && k->gin[i]->dtype == GC_F32) {
            sview v = {.nd = 2, .n = {outer, row}, .ds = {row, 1}, .ss = {orow, 1}};
            /* a fresh gradient (first written here) is assigned, not added to */
            int mode = i < 64 && (k->gin_fresh >> i & 1) ? SV_COPY : SV_ADD;
            sv_run(k->gin[i]->data, (const float *)gy->data + off, &v, 4, mode, k->nthreads);
        }
        off += row;
    }
    return GCAM_OK;
}

const gc_opdef gc_def_Concat = {.name = "Concat", .min_opset = 1, .parse = concat_parse, .infer = concat_infer,
                                .forward = concat_forward, .backward = concat_backward, .diff_in = GC_ALL_INPUTS,
                                .bw_assign = 1};

/* ------------------------------------------------------------------------------------------ */
/* Split                                                                                        */

static gcam_status split_parse(gc_node *n, gc_err *err) {
    const int64_t *sp;
    size_t ns = gc_attr_ints(n, "split", &sp);
    for (size_t i = 0; i < ns; i++)
        if (sp[i] < 0) return gc_fail(err, GCAM_E_FORMAT, "node '%s' (Split): attribute 'split' has a negative size", n->name);
    if (ns && (int)ns != n->n_out)
        return gc_fail(err, GCAM_E_FORMAT, "node '%s' (Split): attribute 'split' has %zu sizes for %d outputs",
                       n->name, ns, n->n_out);
    if (n->n_out < 1 || n->n_out > GC_MAX_IO)
        return gc_fail(err, GCAM_E_FORMAT, "node '%s' (Split): bad output count %d", n->name, n->n_out);
    return GCAM_OK;
}

/* Sizes along the axis for every output. */
static gcam_status split_sizes(gc_kctx *k, int *axis_out, int64_t *sizes) {
    const gc_tensor *x = k->in[0];
    int axis = gc_norm_axis(gc_attr_int(k->node, "axis", 0), x->shape.ndim);
    if (axis < 0) return gc_kfail(k, GCAM_E_SHAPE, "axis out of range for rank %d", x->shape.ndim);
    int64_t d = x->shape.d[axis], n = k->n_out, cnt = 0;
    const int64_t *sp;
    size_t ns = gc_attr_ints(k->node, "split", &sp);
    if (ns) {
        memcpy(sizes, sp, ns * sizeof(int64_t));
        cnt = (int64_t)ns;
    } else if (k->node->opset >= 13 && opt_in(k, 1) && gc_numel(k->in[1]) > 0) {
        gcam_status st = const_ints(k, 1, "split", sizes, GC_MAX_IO, &cnt);
        if (st) return st;
    } else {
        /* Equal parts; opset 18 allows a smaller last part. */
        int64_t c = d / n;
        if (d % n) {
            if (k->node->opset < 18)
                return gc_kfail(k, GCAM_E_SHAPE, "extent %lld does not split into %lld equal parts", (long long)d,
                                (long long)n);
            c = d / n + 1;
        }
        int64_t left = d;
        for (int64_t j = 0; j < n; j++) {
            sizes[j] = GC_MIN(c, left);
            left -= sizes[j];
        }
        cnt = n;
    }
    if (cnt != n) return gc_kfail(k, GCAM_E_SHAPE, "%lld split sizes for %lld outputs", (long long)cnt, (long long)n);
    int64_t sum = 0;
    for (int64_t j = 0; j < n; j++) {
        if (sizes[j] < 0 || gc_add_i64(&sum, sum, sizes[j])) return gc_kfail(k, GCAM_E_SHAPE, "bad split size");
    }
    if (sum != d) return gc_kfail(k, GCAM_E_SHAPE, "split sizes sum to %lld, axis extent is %lld", (long long)sum, (long long)d);
    *axis_out = axis;
    return GCAM_OK;
}

static gcam_status split_infer(gc_kctx *k) {
    gcam_status st = need_in(k, 0);
    if (st) return st;
    int axis;
    int64_t sizes[GC_MAX_IO];
    if ((st = split_sizes(k, &axis, sizes))) return st;
    for (int j = 0; j < k->n_out; j++) {
        gc_shape s = k->in[0]->shape;
        s.d[axis] = sizes[j];
        if ((st = set_out(k, j, k->in[0]->dtype, &s))) return st;
    }
    return GCAM_OK;
}

static gcam_status split_forward(gc_kctx *k) {
    const gc_tensor *x = k->in[0];
    int axis;
    int64_t sizes[GC_MAX_IO], outer, inner, off = 0;
    gcam_status st = split_sizes(k, &axis, sizes);
    if (st) return st;
    size_t es = gc_dtype_size(x->dtype);
    axis_split(&x->shape, axis, &outer, &inner);
    int64_t irow = x->shape.d[axis] * inner; /* x: (outer, irow) */
    for (int j = 0; j < k->n_out; j++) {
        int64_t row = sizes[j] * inner;
        if (k->out[j]) {
            sview v = {.nd = 2, .n = {outer, row}, .ds = {row, 1}, .ss = {irow, 1}};
            sv_run(k->out[j]->data, (const char *)x->data + (size_t)off * es, &v, es, SV_COPY, k->nthreads);
        }
        off += row;
    }
    return GCAM_OK;
}

static gcam_status split_backward(gc_kctx *k) {
    gc_tensor *gx = k->gin[0];
    if (!gx || gx->dtype != GC_F32) return GCAM_OK;
    int axis;
    int64_t sizes[GC_MAX_IO], outer, inner, off = 0;
    gcam_status st = split_sizes(k, &axis, sizes);
    if (st) return st;
    axis_split(&gx->shape, axis, &outer, &inner);
    int64_t irow = gx->shape.d[axis] * inner;
    for (int j = 0; j < k->n_out; j++) {
        int64_t row = sizes[j] * inner;
        if (k->gout[j]) {
            sview v = {.nd = 2, .n = {outer, row}, .ds = {irow, 1}, .ss = {row, 1}};
            sv_run((float *)gx->data + off, k->gout[j]->data, &v, 4, SV_ADD, k->nthreads);
        }
        off += row;
    }
    return GCAM_OK;
}

const gc_opdef gc_def_Split = {.name = "Split", .min_opset = 1, .parse = split_parse, .infer = split_infer,
                               .forward = split_forward, .backward = split_backward, .bw_in = 0x2u, .diff_in = 0x1u};

/* ------------------------------------------------------------------------------------------ */
/* Flatten                                                                                      */

static gcam_status flatten_infer(gc_kctx *k) {
    gcam_status st = need_in(k, 0);
    if (st) return st;
    const gc_shape *xs = &k->in[0]->shape;
    int64_t axis = gc_attr_int(k->node, "axis", 1);
    if (axis < -xs->ndim || axis > xs->ndim)
        return gc_kfail(k, GCAM_E_SHAPE, "axis %lld out of range for rank %d", (long long)axis, xs->ndim);
    if (axis < 0) axis += xs->ndim;
    gc_shape s = {.ndim = 2, .d = {1, 1}};
    for (int d = 0; d < xs->ndim; d++) s.d[d < axis ? 0 : 1] *= xs->d[d]; /* numel fits: checked */
    return set_out(k, 0, k->in[0]->dtype, &s);
}

const gc_opdef gc_def_Flatten = {.name = "Flatten", .min_opset = 1, .infer = flatten_infer, .forward = fw_view,
                                 .backward = bw_view, .diff_in = 0x1u};

/* ------------------------------------------------------------------------------------------ */
/* Reshape                                                                                      */

static gcam_status reshape_infer(gc_kctx *k) {
    gcam_status st = need_in(k, 0);
    if (st) return st;
    const gc_tensor *x = k->in[0];
    int64_t v[GC_MAX_DIMS], n;
    const int64_t *av;
    size_t na = gc_attr_ints(k->node, "shape", &av);
    if (k->node->opset < 5 && na) {
        if (na > GC_MAX_DIMS) return gc_kfail(k, GCAM_E_UNSUPPORTED, "shape has more than %d dims", GC_MAX_DIMS);
        memcpy(v, av, na * sizeof *v);
        n = (int64_t)na;
    } else if ((st = const_ints(k, 1, "shape", v, GC_MAX_DIMS, &n))) {
        return st;
    }
    int allowzero = k->node->opset >= 14 && gc_attr_int(k->node, "allowzero", 0) != 0;
    gc_shape s = {.ndim = (int)n};
    int infer_at = -1;
    int64_t known = 1, total = gc_numel(x);
    for (int i = 0; i < (int)n; i++) {
        int64_t d = v[i];
        if (d == -1) {
            if (infer_at >= 0) return gc_kfail(k, GCAM_E_SHAPE, "shape has more than one -1");
            infer_at = i;
            continue;
        }
        if (d == 0 && !allowzero) {
            if (i >= x->shape.ndim)
                return gc_kfail(k, GCAM_E_SHAPE, "shape[%d] = 0 copies a dim the input (rank %d) lacks", i, x->shape.ndim);
            d = x->shape.d[i];
        } else if (d < 0) {
            return gc_kfail(k, GCAM_E_SHAPE, "shape[%d] = %lld is invalid", i, (long long)d);
        }
        s.d[i] = d;
        if (gc_mul_i64(&known, known, d)) return gc_kfail(k, GCAM_E_SHAPE, "shape element count overflows");
    }
    if (infer_at >= 0) {
        if (known == 0) return gc_kfail(k, GCAM_E_SHAPE, "cannot infer the -1 dim next to a zero dim");
        if (total % known) return gc_kfail(k, GCAM_E_SHAPE, "cannot reshape %lld elements with the -1 dim",
                                           (long long)total);
        s.d[infer_at] = total / known;
    } else if (known != total) {
        char b1[128], b2[128];
        return gc_kfail(k, GCAM_E_SHAPE, "cannot reshape %s (%lld elements) to %s", shape_s(&x->shape, b1, sizeof b1),
                        (long long)total, shape_s(&s, b2, sizeof b2));
    }
    return set_out(k, 0, x->dtype, &s);
}

const gc_opdef gc_def_Reshape = {.name = "Reshape", .min_opset = 1, .infer = reshape_infer, .forward = fw_view,
                                 .backward = bw_view, .diff_in = 0x1u};

/* ------------------------------------------------------------------------------------------ */
/* Transpose                                                                                    */

/* perm (default: reversed axes), validated as a permutation of the input rank. */
static gcam_status transpose_perm(gc_kctx *k, int *perm) {
    int nd = k->in[0]->shape.ndim;
    const int64_t *p;
    size_t np = gc_attr_ints(k->node, "perm", &p);
    if (!np) {
        for (int i = 0; i < nd; i++) perm[i] = nd - 1 - i;
        return GCAM_OK;
    }
    if ((int)np != nd) return gc_kfail(k, GCAM_E_SHAPE, "perm has %zu entries for rank %d", np, nd);
    int seen[GC_MAX_DIMS] = {0};
    for (int i = 0; i < nd; i++) {
        int a = gc_norm_axis(p[i], nd);
        if (a < 0 || seen[a]) return gc_kfail(k, GCAM_E_SHAPE, "perm is not a permutation of 0..%d", nd - 1);
        seen[a] = 1;
        perm[i] = a;
    }
    return GCAM_OK;
}

static gcam_status transpose_infer(gc_kctx *k) {
    gcam_status st = need_in(k, 0);
    if (st) return st;
    int perm[GC_MAX_DIMS];
    if ((st = transpose_perm(k, perm))) return st;
    const gc_shape *xs = &k->in[0]->shape;
    gc_shape s = {.ndim = xs->ndim};
    for (int i = 0; i < xs->ndim; i++) s.d[i] = xs->d[perm[i]];
    return set_out(k, 0, k->in[0]->dtype, &s);
}

/* y[j] = x[i] with i[perm[a]] = j[a]. */
static gcam_status transpose_forward(gc_kctx *k) {
    const gc_tensor *x = k->in[0];
    gc_tensor *y = k->out[0];
    int perm[GC_MAX_DIMS];
    gcam_status st = transpose_perm(k, perm);
    if (st) return st;
    int64_t xst[GC_MAX_DIMS], yst[GC_MAX_DIMS];
    gc_shape_strides(xst, &x->shape);
    gc_shape_strides(yst, &y->shape);
    sview v = {.nd = y->shape.ndim};
    for (int a = 0; a < v.nd; a++) {
        v.n[a] = y->shape.d[a];
        v.ds[a] = yst[a];
        v.ss[a] = xst[perm[a]];
    }
    sv_run(y->data, x->data, &v, gc_dtype_size(x->dtype), SV_COPY, k->nthreads);
    return GCAM_OK;
}

/* gx[i] += gy[j]: walk gx contiguously, read gy through the inverse permutation. */
static gcam_status transpose_backward(gc_kctx *k) {
    gc_tensor *gx = k->gin[0];
    const gc_tensor *gy = k->gout[0];
    if (!gx || !gy || gx->dtype != GC_F32) return GCAM_OK;
    int perm[GC_MAX_DIMS];
    gcam_status st = transpose_perm(k, perm);
    if (st) return st;
    int64_t xst[GC_MAX_DIMS], yst[GC_MAX_DIMS];
    gc_shape_strides(xst, &gx->shape);
    gc_shape_strides(yst, &gy->shape);
    sview v = {.nd = gx->shape.ndim};
    for (int a = 0; a < v.nd; a++) {
        v.n[perm[a]] = gy->shape.d[a];
        v.ds[perm[a]] = xst[perm[a]];
        v.ss[perm[a]] = yst[a];
    }
    sv_run(gx->data, gy->data, &v, 4, SV_ADD, k->nthreads);
    return GCAM_OK;
}

const gc_opdef gc_def_Transpose = {.name = "Transpose", .min_opset = 1, .infer = transpose_infer,
                                   .forward = transpose_forward, .backward = transpose_backward, .diff_in = 0x1u};

/* ------------------------------------------------------------------------------------------ */
/* Squeeze / Unsqueeze                                                                          */

/* axes from the attribute (opset < 13) or input 1 (opset >= 13). Returns the count, -1 if none. */
static gcam_status axes_of(gc_kctx *k, int64_t *axes, int64_t *n) {
    *n = -1;
    if (k->node->opset < 13) {
        const int64_t *a;
        size_t na = gc_attr_ints(k->node, "axes", &a);
        if (!gc_attr_find(k->node, "axes")) return GCAM_OK;
        if (na > GC_MAX_DIMS) return gc_kfail(k, GCAM_E_SHAPE, "too many axes");
        memcpy(axes, a, na * sizeof *a);
        *n = (int64_t)na;
        return GCAM_OK;
    }
    if (!opt_in(k, 1)) return GCAM_OK;
    return const_ints(k, 1, "axes", axes, GC_MAX_DIMS, n);
}

static gcam_status squeeze_infer(gc_kctx *k) {
    gcam_status st = need_in(k, 0);
    if (st) return st;
    const gc_shape *xs = &k->in[0]->shape;
    int64_t axes[GC_MAX_DIMS], n;
    if ((st = axes_of(k, axes, &n))) return st;
    int drop[GC_MAX_DIMS] = {0};
    if (n <= 0) { /* absent or empty: every unit dim */
        for (int d = 0; d < xs->ndim; d++) drop[d] = xs->d[d] == 1;
    } else {
        for (int64_t i = 0; i < n; i++) {
            int a = gc_norm_axis(axes[i], xs->ndim);
            if (a < 0) return gc_kfail(k, GCAM_E_SHAPE, "axis %lld out of range for rank %d", (long long)axes[i], xs->ndim);
            if (xs->d[a] != 1)
                return gc_kfail(k, GCAM_E_SHAPE, "cannot squeeze axis %d of extent %lld", a, (long long)xs->d[a]);
            drop[a] = 1;
        }
    }
    gc_shape s = {.ndim = 0};
    for (int d = 0; d < xs->ndim; d++)
        if (!drop[d]) s.d[s.ndim++] = xs->d[d];
    return set_out(k, 0, k->in[0]->dtype, &s);
}

const gc_opdef gc_def_Squeeze = {.name = "Squeeze", .min_opset = 1, .infer = squeeze_infer, .forward = fw_view,
                                 .backward = bw_view, .diff_in = 0x1u};

static gcam_status unsqueeze_infer(gc_kctx *k) {
    gcam_status st = need_in(k, 0);
    if (st) return st;
    const gc_shape *xs = &k->in[0]->shape;
    int64_t axes[GC_MAX_DIMS], n;
    if ((st = axes_of(k, axes, &n))) return st;
    if (n < 0) return gc_kfail(k, GCAM_E_FORMAT, "axes are required");
    int64_t r = xs->ndim + n;
    if (r > GC_MAX_DIMS) return gc_kfail(k, GCAM_E_UNSUPPORTED, "output rank %lld exceeds %d", (long long)r, GC_MAX_DIMS);
    int ins[GC_MAX_DIMS] = {0};
    for (int64_t i = 0; i < n; i++) {
        int a = gc_norm_axis(axes[i], (int)r);
        if (a < 0) return gc_kfail(k, GCAM_E_SHAPE, "axis %lld out of range for output rank %lld", (long long)axes[i], (long long)r);
        if (ins[a]) return gc_kfail(k, GCAM_E_SHAPE, "axis %d repeated", a);
        ins[a] = 1;
    }
    gc_shape s = {.ndim = (int)r};
    for (int d = 0, j = 0; d < (int)r; d++) s.d[d] = ins[d] ? 1 : xs->d[j++];
    return set_out(k, 0, k->in[0]->dtype, &s);
}

const gc_opdef gc_def_Unsqueeze = {.name = "Unsqueeze", .min_opset = 1, .infer = unsqueeze_infer, .forward = fw_view,
                                   .backward = bw_view, .diff_in = 0x1u};

/* ------------------------------------------------------------------------------------------ */
/* Slice                                                                                        */

typedef struct slice_plan {
    int64_t start[GC_MAX_DIMS], step[GC_MAX_DIMS], len[GC_MAX_DIMS];
} slice_plan;

/* Resolves starts/ends/axes/steps (attributes before opset 10, inputs after) per the ONNX rules:
 * negative values count from the end, then clamp to [0, d] (step > 0) or [-1, d-1] (step < 0). */
static gcam_status slice_plan_get(gc_kctx *k, slice_plan *p) {
    const gc_shape *xs = &k->in[0]->shape;
    int nd = xs->ndim;
    int64_t st[GC_MAX_DIMS], en[GC_MAX_DIMS], ax[GC_MAX_DIMS], sp[GC_MAX_DIMS];
    int64_t ns, ne, na = -1, nsp = -1;
    gcam_status s;
    if (k->node->opset < 10) {
        const int64_t *a;
        ns = (int64_t)gc_attr_ints(k->node, "starts", &a);
        if (ns > nd) return gc_kfail(k, GCAM_E_SHAPE, "more starts than dims");
        if (ns) memcpy(st, a, (size_t)ns * sizeof *a);
        ne = (int64_t)gc_attr_ints(k->node, "ends", &a);
        if (ne > nd) return gc_kfail(k, GCAM_E_SHAPE, "more ends than dims");
        if (ne) memcpy(en, a, (size_t)ne * sizeof *a);
        if (gc_attr_find(k->node, "axes")) {
            na = (int64_t)gc_attr_ints(k->node, "axes", &a);
            if (na > nd) return gc_kfail(k, GCAM_E_SHAPE, "more axes than dims");
            if (na) memcpy(ax, a, (size_t)na * sizeof *a);
        }
    } else {
        if ((s = const_ints(k, 1, "starts", st, nd, &ns))) return s;
        if ((s = const_ints(k, 2, "ends", en, nd, &ne))) return s;
        if (opt_in(k, 3) && (s = const_ints(k, 3, "axes", ax, nd, &na))) return s;
        if (opt_in(k, 4) && (s = const_ints(k, 4, "steps", sp, nd, &nsp))) return s;
    }
    if (ns != ne) return gc_kfail(k, GCAM_E_SHAPE, "%lld starts but %lld ends", (long long)ns, (long long)ne);
    if (na >= 0 && na != ns) return gc_kfail(k, GCAM_E_SHAPE, "%lld axes for %lld starts", (long long)na, (long long)ns);
    if (nsp >= 0 && nsp != ns) return gc_kfail(k, GCAM_E_SHAPE, "%lld steps for %lld starts", (long long)nsp, (long long)ns);
    for (int d = 0; d < nd; d++) {
        p->start[d] = 0;
        p->step[d] = 1;
        p->len[d] = xs->d[d];
    }
    int seen[GC_MAX_DIMS] = {0};
    for (int64_t i = 0; i < ns; i++) {
        int a = na >= 0 ? gc_norm_axis(ax[i], nd) : (int)i;
        if (a < 0) return gc_kfail(k, GCAM_E_SHAPE, "axis %lld out of range for rank %d", (long long)ax[i], nd);
        if (seen[a]) return gc_kfail(k, GCAM_E_SHAPE, "axis %d repeated", a);
        seen[a] = 1;
        int64_t d = xs->d[a], t = nsp >= 0 ? sp[i] : 1, b = st[i], e = en[i];
        if (t == 0) return gc_kfail(k, GCAM_E_SHAPE, "step 0 on axis %d", a);
        if (b < 0) b += d; /* no overflow: d >= 0 */
        if (e < 0) e += d;
        int64_t len;
        if (t > 0) {
            b = GC_MAX(0, GC_MIN(b, d));
            e = GC_MAX(0, GC_MIN(e, d));
            len = e > b ? (e - b - 1) / t + 1 : 0;
        } else {
            b = GC_MAX(0, GC_MIN(b, d - 1));
            e = GC_MAX(-1, GC_MIN(e, d - 1));
            len = b > e ? (b - e - 1) / (t == INT64_MIN ? INT64_MAX : -t) + 1 : 0;
        }
        p->start[a] = len ? b : 0;
        p->step[a] = len > 1 ? t : 1; /* a huge unused step must not overflow a stride */
        p->len[a] = len;
    }
    return GCAM_OK;
}

static gcam_status slice_infer(gc_kctx *k) {
    gcam_status st = need_in(k, 0);
    if (st) return st;
    slice_plan p;
    if ((st = slice_plan_get(k, &p))) return st;
    gc_shape s = {.ndim = k->in[0]->shape.ndim};
    for (int d = 0; d < s.ndim; d++) s.d[d] = p.len[d];
    return set_out(k, 0, k->in[0]->dtype, &s);
}

/* The view of x the slice reads: base offset and per-axis strides (elements). */
static int64_t slice_view(const slice_plan *p, const gc_shape *xs, sview *v, int dst_is_x) {
    int64_t xst[GC_MAX_DIMS], yst[GC_MAX_DIMS], off = 0;
    gc_shape ys = {.ndim = xs->ndim};
    for (int d = 0; d < xs->ndim; d++) ys.d[d] = p->len[d];
    gc_shape_strides(xst, xs);
    gc_shape_strides(yst, &ys);
    v->nd = xs->ndim;
    for (int d = 0; d < xs->ndim; d++) {
        v->n[d] = p->len[d];
        int64_t xs_d = xst[d] * p->step[d];
        v->ds[d] = dst_is_x ? xs_d : yst[d];
        v->ss[d] = dst_is_x ? yst[d] : xs_d;
        off += p->start[d] * xst[d];
    }
    return off;
}

static gcam_status slice_forward(gc_kctx *k) {
    const gc_tensor *x = k->in[0];
    slice_plan p;
    gcam_status st = slice_plan_get(k, &p);
    if (st) return st;
    sview v;
    int64_t off = slice_view(&p, &x->shape, &v, 0);
    size_t es = gc_dtype_size(x->dtype);
    sv_run(k->out[0]->data, (const char *)x->data + off * (int64_t)es, &v, es, SV_COPY, k->nthreads);
    return GCAM_OK;
}

static gcam_status slice_backward(gc_kctx *k) {
    gc_tensor *gx = k->gin[0];
    if (!gx || !k->gout[0] || gx->dtype != GC_F32) return GCAM_OK;
    slice_plan p;
    gcam_status st = slice_plan_get(k, &p);
    if (st) return st;
    sview v;
    int64_t off = slice_view(&p, &gx->shape, &v, 1);
    sv_run((float *)gx->data + off, k->gout[0]->data, &v, 4, SV_ADD, k->nthreads);
    return GCAM_OK;
}

const gc_opdef gc_def_Slice = {.name = "Slice", .min_opset = 1, .infer = slice_infer, .forward = slice_forward,
                               .backward = slice_backward, .bw_in = 0x1Eu, .diff_in = 0x1u};

/* ------------------------------------------------------------------------------------------ */
/* Gather                                                                                       */

static gcam_status gather_infer(gc_kctx *k) {
    gcam_status st;
    if ((st = need_in(k, 0)) || (st = need_in(k, 1))) return st;
    const gc_tensor *x = k->in[0], *ind = k->in[1];
    if (ind->dtype != GC_I64) return gc_kfail(k, GCAM_E_FORMAT, "indices must be integers");
    int axis = gc_norm_axis(gc_attr_int(k->node, "axis", 0), x->shape.ndim);
    if (axis < 0) return gc_kfail(k, GCAM_E_SHAPE, "axis out of range for rank %d", x->shape.ndim);
    int r = x->shape.ndim - 1 + ind->shape.ndim;
    if (r > GC_MAX_DIMS) return gc_kfail(k, GCAM_E_UNSUPPORTED, "output rank %d exceeds %d", r, GC_MAX_DIMS);
    gc_shape s = {.ndim = 0};
    for (int d = 0; d < axis; d++) s.d[s.ndim++] = x->shape.d[d];
    for (int d = 0; d < ind->shape.ndim; d++) s.d[s.ndim++] = ind->shape.d[d];
    for (int d = axis + 1; d < x->shape.ndim; d++) s.d[s.ndim++] = x->shape.d[d];
    if (ind->data) { /* known indices: report a bad one now */
        const int64_t *iv = ind->data;
        int64_t dim = x->shape.d[axis];
        for (int64_t j = 0; j < gc_numel(ind); j++)
            if (iv[j] < -dim || iv[j] >= dim)
                return gc_kfail(k, GCAM_E_SHAPE, "index %lld out of range for extent %lld", (long long)iv[j], (long long)dim);
    }
    return set_out(k, 0, x->dtype, &s);
}

static gcam_status gather_check(gc_kctx *k, int64_t dim, const int64_t *iv, int64_t nj) {
    for (int64_t j = 0; j < nj; j++)
        if (iv[j] < -dim || iv[j] >= dim)
            return gc_kfail(k, GCAM_E_SHAPE, "index %lld out of range for extent %lld", (long long)iv[j], (long long)dim);
    return GCAM_OK;
}

static gcam_status gather_forward(gc_kctx *k) {
    const gc_tensor *x = k->in[0], *ind = k->in[1];
    int axis = gc_norm_axis(gc_attr_int(k->node, "axis", 0), x->shape.ndim);
    int64_t outer, inner, dim = x->shape.d[axis], nj = gc_numel(ind);
    const int64_t *iv = ind->data;
    gcam_status st = gather_check(k, dim, iv, nj);
    if (st) return st;
    axis_split(&x->shape, axis, &outer, &inner);
    size_t es = gc_dtype_size(x->dtype), rb = (size_t)inner * es;
    const char *xd = x->data; /* (outer, dim, inner) */
    char *yd = k->out[0]->data; /* (outer, nj, inner) */
    int64_t rows = outer * nj;
#pragma omp parallel for num_threads(k->nthreads) schedule(static) if (rows * inner > (1 << 16))
    for (int64_t r = 0; r < rows; r++) {
        int64_t o = r / nj, j = r % nj, i = iv[j] < 0 ? iv[j] + dim : iv[j];
        memcpy(yd + (size_t)r * rb, xd + ((size_t)(o * dim + i)) * rb, rb);
    }
    return GCAM_OK;
}

/* Scatter-add: gx[o, idx[j], :] += gy[o, j, :]. Threads own disjoint (outer, inner-chunk)
 * blocks and walk j in order, so repeated indices accumulate deterministically. */
static gcam_status gather_backward(gc_kctx *k) {
    gc_tensor *gx = k->gin[0];
    const gc_tensor *gy = k->gout[0], *ind = k->in[1];
    if (!gx || !gy || gx->dtype != GC_F32) return GCAM_OK;
    int axis = gc_norm_axis(gc_attr_int(k->node, "axis", 0), gx->shape.ndim);
    int64_t outer, inner, dim = gx->shape.d[axis], nj = gc_numel(ind);
    const int64_t *iv = ind->data;
    gcam_status st = gather_check(k, dim, iv, nj);
    if (st) return st;
    axis_split(&gx->shape, axis, &outer, &inner);
    int64_t nchunk = (outer >= k->nthreads || inner < 512) ? 1 : k->nthreads;
    int64_t csz = (inner + nchunk - 1) / nchunk, tasks = outer * nchunk;
    float *g = gx->data;
    const float *y = gy->data;
#pragma omp parallel for num_threads(k->nthreads) schedule(static) if (outer * nj * inner > (1 << 15) && tasks > 1)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t o = t / nchunk, c0 = (t % nchunk) * csz, c1 = GC_MIN(inner, c0 + csz);
        for (int64_t j = 0; j < nj; j++) {
            int64_t i = iv[j] < 0 ? iv[j] + dim : iv[j];
            float *gr = g + (o * dim + i) * inner;
            const float *yr = y + (o * nj + j) * inner;
            for (int64_t c = c0; c < c1; c++) gr[c] += yr[c];
        }
    }
    return GCAM_OK;
}

const gc_opdef gc_def_Gather = {.name = "Gather", .min_opset = 1, .infer = gather_infer, .forward = gather_forward,
                                .backward = gather_backward, .bw_in = 0x2u, .diff_in = 0x1u};

/* ------------------------------------------------------------------------------------------ */
/* Expand                                                                                       */

static gcam_status expand_shape(gc_kctx *k, gc_shape *out) {
    int64_t v[GC_MAX_DIMS], n;
    gcam_status st = const_ints(k, 1, "shape", v, GC_MAX_DIMS, &n);
    if (st) return st;
    gc_shape t = {.ndim = (int)n};
    for (int i = 0; i < (int)n; i++) {
        if (v[i] < 0) return gc_kfail(k, GCAM_E_SHAPE, "shape[%d] = %lld is negative", i, (long long)v[i]);
        t.d[i] = v[i];
    }
    if (gc_broadcast_shape(out, &k->in[0]->shape, &t)) {
        char b1[128], b2[128];
        return gc_kfail(k, GCAM_E_SHAPE, "cannot broadcast %s to %s", shape_s(&k->in[0]->shape, b1, sizeof b1),
                        shape_s(&t, b2, sizeof b2));
    }
    return GCAM_OK;
}

static gcam_status expand_infer(gc_kctx *k) {
    gcam_status st = need_in(k, 0);
    if (st) return st;
    gc_shape s;
    if ((st = expand_shape(k, &s))) return st;
    return set_out(k, 0, k->in[0]->dtype, &s);
}

/* The broadcast view: iterate over y, read x with 0 strides on broadcast axes. */
static void expand_view(sview *v, const gc_shape *xs, const gc_shape *ys, int dst_is_x) {
    int64_t xst[GC_MAX_DIMS], yst[GC_MAX_DIMS];
    gc_broadcast_strides(xst, xs, ys);
    gc_shape_strides(yst, ys);
    v->nd = ys->ndim;
    for (int d = 0; d < ys->ndim; d++) {
        v->n[d] = ys->d[d];
        v->ds[d] = dst_is_x ? xst[d] : yst[d];
        v->ss[d] = dst_is_x ? yst[d] : xst[d];
    }
}

static gcam_status expand_forward(gc_kctx *k) {
    const gc_tensor *x = k->in[0];
    sview v;
    expand_view(&v, &x->shape, &k->out[0]->shape, 0);
    sv_run(k->out[0]->data, x->data, &v, gc_dtype_size(x->dtype), SV_COPY, k->nthreads);
    return GCAM_OK;
}

/* gx += sum of gy over the broadcast axes. */
static gcam_status expand_backward(gc_kctx *k) {
    gc_tensor *gx = k->gin[0];
    const gc_tensor *gy = k->gout[0];
    if (!gx || !gy || gx->dtype != GC_F32) return GCAM_OK;
    sview v;
    expand_view(&v, &gx->shape, &gy->shape, 1);
    sv_run(gx->data, gy->data, &v, 4, SV_ADD, k->nthreads);
    return GCAM_OK;
}

const gc_opdef gc_def_Expand = {.name = "Expand", .min_opset = 8, .infer = expand_infer, .forward = expand_forward,
                                .backward = expand_backward, .bw_in = 0x2u, .diff_in = 0x1u};

/* ------------------------------------------------------------------------------------------ */
/* Tile                                                                                         */

static gcam_status tile_reps(gc_kctx *k, int64_t *r) {
    int64_t n = 0;
    int nd = k->in[0]->shape.ndim;
    gcam_status st = const_ints(k, 1, "repeats", r, GC_MAX_DIMS, &n);
    if (st) return st;
    if (n != nd) return gc_kfail(k, GCAM_E_SHAPE, "%lld repeats for rank %d", (long long)n, nd);
    for (int i = 0; i < nd; i++)
        if (r[i] < 0) return gc_kfail(k, GCAM_E_SHAPE, "repeats[%d] = %lld is negative", i, (long long)r[i]);
    return GCAM_OK;
}

static gcam_status tile_infer(gc_kctx *k) {
    gcam_status st = need_in(k, 0);
    if (st) return st;
    int64_t r[GC_MAX_DIMS];
    if ((st = tile_reps(k, r))) return st;
    gc_shape s = k->in[0]->shape;
    for (int d = 0; d < s.ndim; d++)
        if (gc_mul_i64(&s.d[d], s.d[d], r[d])) return gc_kfail(k, GCAM_E_SHAPE, "tiled extent overflows");
    return set_out(k, 0, k->in[0]->dtype, &s);
}

/* y viewed as (r0, d0, r1, d1, ...): x strides are 0 on the repeat axes. */
static void tile_view(sview *v, const gc_shape *xs, const int64_t *r, int dst_is_x) {
    int64_t xst[GC_MAX_DIMS], yst[GC_MAX_DIMS];
    gc_shape ys = *xs;
    for (int d = 0; d < xs->ndim; d++) ys.d[d] *= r[d];
    gc_shape_strides(xst, xs);
    gc_shape_strides(yst, &ys);
    v->nd = 2 * xs->ndim;
    for (int d = 0; d < xs->ndim; d++) {
        int64_t yr = yst[d] * xs->d[d]; /* y stride of one whole tile */
        v->n[2 * d] = r[d];
        v->n[2 * d + 1] = xs->d[d];
        v->ds[2 * d] = dst_is_x ? 0 : yr;
        v->ss[2 * d] = dst_is_x ? yr : 0;
        v->ds[2 * d + 1] = dst_is_x ? xst[d] : yst[d];
        v->ss[2 * d + 1] = dst_is_x ? yst[d] : xst[d];
    }
}

static gcam_status tile_forward(gc_kctx *k) {
    const gc_tensor *x = k->in[0];
    int64_t r[GC_MAX_DIMS];
    gcam_status st = tile_reps(k, r);
    if (st) return st;
    sview v;
    tile_view(&v, &x->shape, r, 0);
    sv_run(k->out[0]->data, x->data, &v, gc_dtype_size(x->dtype), SV_COPY, k->nthreads);
    return GCAM_OK;
}

static gcam_status tile_backward(gc_kctx *k) {
    gc_tensor *gx = k->gin[0];
    if (!gx || !k->gout[0] || gx->dtype != GC_F32) return GCAM_OK;
    int64_t r[GC_MAX_DIMS];
    gcam_status st = tile_reps(k, r);
    if (st) return st;
    sview v;
    tile_view(&v, &gx->shape, r, 1);
    sv_run(gx->data, k->gout[0]->data, &v, 4, SV_ADD, k->nthreads);
    return GCAM_OK;
}

const gc_opdef gc_def_Tile = {.name = "Tile", .min_opset = 6, .infer = tile_infer, .forward = tile_forward,
                              .backward = tile_backward, .bw_in = 0x2u, .diff_in = 0x1u};

/* ------------------------------------------------------------------------------------------ */
/* Shape / Size: values from the input's shape only (never its data)                           */

static void shape_range(const gc_kctx *k, int64_t *b, int64_t *e) {
    int64_t r = k->in[0]->shape.ndim;
    *b = 0;
    *e = r;
    if (k->node->opset >= 15) {
        *b = gc_attr_int(k->node, "start", 0);
        *e = gc_attr_int(k->node, "end", r);
    }
    if (*b < 0) *b += r;
    if (*e < 0) *e += r;
    *b = GC_MAX(0, GC_MIN(*b, r));
    *e = GC_MAX(*b, GC_MIN(*e, r));
}

static gcam_status shape_infer(gc_kctx *k) {
    if (!k->in[0] || k->in[0]->shape.ndim < 0) return gc_kfail(k, GCAM_E_SHAPE, "input rank unknown");
    int64_t b, e;
    shape_range(k, &b, &e);
    gc_shape s = {.ndim = 1, .d = {e - b}};
    return set_out(k, 0, GC_I64, &s);
}

static gcam_status shape_forward(gc_kctx *k) {
    int64_t b, e, *y = k->out[0]->data;
    shape_range(k, &b, &e);
    for (int64_t i = b; i < e; i++) y[i - b] = k->in[0]->shape.d[i];
    return GCAM_OK;
}

const gc_opdef gc_def_Shape = {.name = "Shape", .min_opset = 1, .infer = shape_infer, .forward = shape_forward};

static gcam_status size_infer(gc_kctx *k) {
    if (!k->in[0] || gc_shape_numel(&k->in[0]->shape) < 0) return gc_kfail(k, GCAM_E_SHAPE, "input shape unknown");
    gc_shape s = {.ndim = 0};
    return set_out(k, 0, GC_I64, &s);
}

static gcam_status size_forward(gc_kctx *k) {
    *(int64_t *)k->out[0]->data = gc_shape_numel(&k->in[0]->shape);
    return GCAM_OK;
}

const gc_opdef gc_def_Size = {.name = "Size", .min_opset = 1, .infer = size_infer, .forward = size_forward};

/* ------------------------------------------------------------------------------------------ */
/* Cast                                                                                         */

/* ONNX TensorProto.DataType -> our dtype; GCAM_UNDEFINED when unsupported. */
static gc_dtype onnx_dtype(int64_t code) {
    switch (code) {
    case 1: case 10: case 11: case 16: return GC_F32;           /* float, float16, double, bfloat16 */
    case 2: case 3: case 4: case 5: case 6: case 7: case 12: case 13: return GC_I64;
    case 9: return GC_BOOL;
    default: return GCAM_UNDEFINED;
    }
}

static gcam_status cast_parse(gc_node *n, gc_err *err) {
    const gc_attr *a = gc_attr_find(n, "to");
    if (!a || a->type != GC_ATTR_INT)
        return gc_fail(err, GCAM_E_FORMAT, "node '%s' (Cast): attribute 'to' is required", n->name);
    if (onnx_dtype(a->i) == GCAM_UNDEFINED)
        return gc_fail(err, GCAM_E_UNSUPPORTED, "node '%s' (Cast): attribute 'to' = %lld (data type) is not supported",
                       n->name, (long long)a->i);
    return GCAM_OK;
}

static gcam_status cast_infer(gc_kctx *k) {
    gcam_status st = need_in(k, 0);
    if (st) return st;
    gc_dtype t = onnx_dtype(gc_attr_int(k->node, "to", 0));
    if (t == GCAM_UNDEFINED) return gc_kfail(k, GCAM_E_UNSUPPORTED, "unsupported target type");
    return set_out(k, 0, t, &k->in[0]->shape);
}

/* float -> int64 truncates toward zero; NaN gives 0 and out-of-range values saturate. */
static int64_t f2i(float f) {
    if (f != f) return 0;
    if (f >= 9.2233720368547758e18f) return INT64_MAX;
    if (f <= -9.2233720368547758e18f) return INT64_MIN;
    return (int64_t)f;
}

/* Float values rounded (to nearest even) to float16 / bfloat16 precision, kept as float: a Cast
 * to those types then gives the values the model expects. */
static float round_f16(float f) {
    float a = fabsf(f);
    if (!isfinite(f)) return f;
    if (a >= 65520.0f) return copysignf(INFINITY, f);
    if (a < 6.103515625e-05f) return copysignf(rintf(a * 16777216.0f) / 16777216.0f, f); /* subnormal */
    int e;
    (void)frexpf(a, &e);
    float q = ldexpf(1.0f, e - 11);
    return copysignf(rintf(a / q) * q, f);
}

static float round_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7F800000u) == 0x7F800000u) return f; /* inf, NaN */
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    memcpy(&f, &u, 4);
    return f;
}

static gcam_status cast_forward(gc_kctx *k) {
    const gc_tensor *x = k->in[0];
    gc_tensor *y = k->out[0];
    int64_t n = gc_numel(x);
    const float *xf = x->data;
    const int64_t *xi = x->data;
    const uint8_t *xb = x->data;
    float *yf = y->data;
    int64_t *yi = y->data;
    uint8_t *yb = y->data;
    if (x->dtype == y->dtype) fw_view(k);
    else
        for (int64_t i = 0; i < n; i++) {
            if (x->dtype == GC_F32 && y->dtype == GC_I64) yi[i] = f2i(xf[i]);
            else if (x->dtype == GC_F32) yb[i] = xf[i] != 0.0f;
            else if (x->dtype == GC_I64 && y->dtype == GC_F32) yf[i] = (float)xi[i];
            else if (x->dtype == GC_I64) yb[i] = xi[i] != 0;
            else if (y->dtype == GC_F32) yf[i] = xb[i] ? 1.0f : 0.0f;
            else yi[i] = xb[i] ? 1 : 0;
        }
    int64_t to = gc_attr_int(k->node, "to", 1);
    if (to == 10)
        for (int64_t i = 0; i < n; i++) yf[i] = round_f16(yf[i]);
    else if (to == 16)
        for (int64_t i = 0; i < n; i++) yf[i] = round_bf16(yf[i]);
    return GCAM_OK;
}

static gcam_status cast_backward(gc_kctx *k) {
    if (!k->gout[0] || k->gout[0]->dtype != GC_F32) return GCAM_OK;
    return bw_view(k);
}

const gc_opdef gc_def_Cast = {.name = "Cast", .min_opset = 1, .parse = cast_parse, .infer = cast_infer,
                              .forward = cast_forward, .backward = cast_backward, .diff_in = 0x1u};

/* ------------------------------------------------------------------------------------------ */
/* Constant                                                                                     */

static const char *const k_const_attrs[] = {"value", "value_float", "value_floats", "value_int", "value_ints",
                                            "sparse_value", "value_string", "value_strings"};

static const gc_attr *constant_attr(const gc_node *n) {
    for (size_t i = 0; i < GC_ARRAY_LEN(k_const_attrs); i++) {
        const gc_attr *a = gc_attr_find(n, k_const_attrs[i]);
        if (a) return a;
    }
    return NULL;
}

static gcam_status constant_parse(gc_node *n, gc_err *err) {
    int count = 0;
    for (size_t i = 0; i < GC_ARRAY_LEN(k_const_attrs); i++) count += gc_attr_find(n, k_const_attrs[i]) != NULL;
    if (count != 1)
        return gc_fail(err, GCAM_E_FORMAT, "node '%s' (Constant): exactly one value attribute is required, found %d",
                       n->name, count);
    const gc_attr *a = constant_attr(n);
    gc_attr_type want = GC_ATTR_TENSOR;
    if (!strcmp(a->name, "value_float")) want = GC_ATTR_FLOAT;
    else if (!strcmp(a->name, "value_floats")) want = GC_ATTR_FLOATS;
    else if (!strcmp(a->name, "value_int")) want = GC_ATTR_INT;
    else if (!strcmp(a->name, "value_ints")) want = GC_ATTR_INTS;
    else if (strcmp(a->name, "value"))
        return gc_fail(err, GCAM_E_UNSUPPORTED, "node '%s' (Constant): attribute '%s' is not supported", n->name, a->name);
    if (a->type != want)
        return gc_fail(err, GCAM_E_FORMAT, "node '%s' (Constant): attribute '%s' has the wrong type", n->name, a->name);
    if (want == GC_ATTR_TENSOR && (!dtype_ok(a->t.dtype) || gc_shape_numel(&a->t.shape) < 0 ||
                                   (gc_shape_numel(&a->t.shape) > 0 && !a->t.data)))
        return gc_fail(err, GCAM_E_UNSUPPORTED, "node '%s' (Constant): attribute 'value' has an unsupported type",
                       n->name);
    return GCAM_OK;
}

static gcam_status constant_infer(gc_kctx *k) {
    const gc_attr *a = constant_attr(k->node);
    if (!a) return gc_kfail(k, GCAM_E_FORMAT, "no value attribute");
    gc_shape s = {.ndim = 0};
    gc_dtype t = GC_F32;
    switch (a->type) {
    case GC_ATTR_TENSOR: s = a->t.shape; t = a->t.dtype; break;
    case GC_ATTR_FLOAT: break;
    case GC_ATTR_INT: t = GC_I64; break;
    case GC_ATTR_FLOATS: s.ndim = 1; s.d[0] = (int64_t)a->n; break;
    case GC_ATTR_INTS: s.ndim = 1; s.d[0] = (int64_t)a->n; t = GC_I64; break;
    default: return gc_kfail(k, GCAM_E_UNSUPPORTED, "attribute '%s' is not supported", a->name);
    }
    if (!dtype_ok(t)) return gc_kfail(k, GCAM_E_UNSUPPORTED, "unsupported value type");
    return set_out(k, 0, t, &s);
}

static gcam_status constant_forward(gc_kctx *k) {
    const gc_attr *a = constant_attr(k->node);
    gc_tensor *y = k->out[0];
    size_t n = (size_t)gc_numel(y);
    switch (a->type) {
    case GC_ATTR_TENSOR: copy_bytes(y->data, a->t.data, n * gc_dtype_size(y->dtype)); break;
    case GC_ATTR_FLOAT: *(float *)y->data = a->f; break;
    case GC_ATTR_INT: *(int64_t *)y->data = a->i; break;
    case GC_ATTR_FLOATS: copy_bytes(y->data, a->floats, n * sizeof(float)); break;
    case GC_ATTR_INTS: copy_bytes(y->data, a->ints, n * sizeof(int64_t)); break;
    default: return gc_kfail(k, GCAM_E_UNSUPPORTED, "attribute '%s' is not supported", a->name);
    }
    return GCAM_OK;
}

const gc_opdef gc_def_Constant = {.name = "Constant", .min_opset = 1, .parse = constant_parse,
                                  .infer = constant_infer, .forward = constant_forward};

/* ------------------------------------------------------------------------------------------ */
/* ConstantOfShape                                                                              */

static gcam_status cos_parse(gc_node *n, gc_err *err) {
    const gc_attr *a = gc_attr_find(n, "value");
    if (!a) return GCAM_OK;
    if (a->type != GC_ATTR_TENSOR || !dtype_ok(a->t.dtype) || gc_shape_numel(&a->t.shape) != 1 || !a->t.data)
        return gc_fail(err, GCAM_E_FORMAT, "node '%s' (ConstantOfShape): attribute 'value' must be a one-element "
                       "float, integer or bool tensor", n->name);
    return GCAM_OK;
}

static gcam_status cos_infer(gc_kctx *k) {
    int64_t v[GC_MAX_DIMS], n = 0;
    const gc_tensor *t = opt_in(k, 0);
    if (t && t->data && gc_numel(t) > GC_MAX_DIMS)
        return gc_kfail(k, GCAM_E_UNSUPPORTED, "output rank exceeds %d", GC_MAX_DIMS);
    gcam_status st = const_ints(k, 0, "input", v, GC_MAX_DIMS, &n);
    if (st) return st;
    gc_shape s = {.ndim = (int)n};
    for (int i = 0; i < (int)n; i++) {
        if (v[i] < 0) return gc_kfail(k, GCAM_E_SHAPE, "dim %d = %lld is negative", i, (long long)v[i]);
        s.d[i] = v[i];
    }
    const gc_attr *a = gc_attr_find(k->node, "value");
    return set_out(k, 0, a ? a->t.dtype : GC_F32, &s);
}

static gcam_status cos_forward(gc_kctx *k) {
    const gc_attr *a = gc_attr_find(k->node, "value");
    gc_tensor *y = k->out[0];
    int64_t n = gc_numel(y);
    if (!a || y->dtype == GC_F32) {
        float v = a ? *(const float *)a->t.data : 0.0f, *p = y->data;
        for (int64_t i = 0; i < n; i++) p[i] = v;
    } else if (y->dtype == GC_I64) {
        int64_t v = *(const int64_t *)a->t.data, *p = y->data;
        for (int64_t i = 0; i < n; i++) p[i] = v;
    } else {
        memset(y->data, *(const uint8_t *)a->t.data, (size_t)n);
    }
    return GCAM_OK;
}

const gc_opdef gc_def_ConstantOfShape = {.name = "ConstantOfShape", .min_opset = 9, .parse = cos_parse,
                                         .infer = cos_infer, .forward = cos_forward};

/* ------------------------------------------------------------------------------------------ */
/* Range                                                                                        */

/* Reads the three scalars as doubles (and exactly as int64 for integer ranges). */
static gcam_status range_args(gc_kctx *k, double *f, int64_t *iv, int64_t *count) {
    static const char *const names[3] = {"start", "limit", "delta"};
    *count = 0;
    gc_dtype t = GCAM_UNDEFINED;
    for (int i = 0; i < 3; i++) {
        const gc_tensor *x = opt_in(k, i);
        if (!x) return gc_kfail(k, GCAM_E_FORMAT, "input '%s' is missing", names[i]);
        if (x->dtype != GC_F32 && x->dtype != GC_I64)
            return gc_kfail(k, GCAM_E_UNSUPPORTED, "input '%s' must be float or integer", names[i]);
        if (i && x->dtype != t) return gc_kfail(k, GCAM_E_FORMAT, "inputs have different types");
        t = x->dtype;
        if (gc_shape_numel(&x->shape) != 1) return gc_kfail(k, GCAM_E_SHAPE, "input '%s' must be a scalar", names[i]);
        if (!x->data) return gc_kfail(k, GCAM_E_UNSUPPORTED, "input '%s' must be constant (known when planning)", names[i]);
        iv[i] = t == GC_I64 ? *(const int64_t *)x->data : 0;
        f[i] = t == GC_I64 ? (double)iv[i] : (double)*(const float *)x->data;
    }
    if (f[2] == 0 || !isfinite(f[0]) || !isfinite(f[1]) || !isfinite(f[2]))
        return gc_kfail(k, GCAM_E_NUMERIC, "delta must be non-zero and all values finite");
    double n = ceil((f[1] - f[0]) / f[2]);
    if (n > 9007199254740992.0) return gc_kfail(k, GCAM_E_LIMIT, "range has too many elements");
    if (n < 0) n = 0;
    if (t == GC_I64) {
        int64_t diff;
        if (__builtin_sub_overflow(iv[1], iv[0], &diff)) return gc_kfail(k, GCAM_E_LIMIT, "range overflows");
        int64_t q = diff / iv[2];
        *count = (diff % iv[2] != 0 && (diff < 0) == (iv[2] < 0)) ? q + 1 : q;
        if (*count < 0) *count = 0;
    } else {
        *count = (int64_t)n;
    }
    return GCAM_OK;
}

static gcam_status range_infer(gc_kctx *k) {
    double f[3];
    int64_t iv[3], n = 0;
    gcam_status st = range_args(k, f, iv, &n);
    if (st) return st;
    gc_shape s = {.ndim = 1, .d = {n}};
    return set_out(k, 0, k->in[0]->dtype, &s);
}

static gcam_status range_forward(gc_kctx *k) {
    double f[3];
    int64_t iv[3], n = 0;
    gcam_status st = range_args(k, f, iv, &n);
    if (st) return st;
    if (k->out[0]->dtype == GC_I64) {
        int64_t *y = k->out[0]->data;
        for (int64_t i = 0; i < n; i++) y[i] = iv[0] + i * iv[2]; /* stays within [start, limit) */
    } else {
        float *y = k->out[0]->data;
        for (int64_t i = 0; i < n; i++) y[i] = (float)(f[0] + (double)i * f[2]);
    }
    return GCAM_OK;
}

const gc_opdef gc_def_Range = {.name = "Range", .min_opset = 11, .infer = range_infer, .forward = range_forward};

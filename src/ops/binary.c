/* Broadcasting element-wise ops (numpy rules; only the opset >= 7 semantics, the old
 * broadcast/axis attributes are not supported): arithmetic, comparisons, logic, the variadic
 * Sum/Mean/Min/Max, and Where.
 *
 * Every op runs through one iteration scheme (bc_*): the output index space is collapsed to as
 * few axes as possible (size-1 axes dropped, neighbouring axes merged when every operand is
 * contiguous or broadcast over both), then walked row by row where a row is the last collapsed
 * axis. Along a row every operand has stride 0 (broadcast) or 1, so the row kernels are plain
 * loops with four stride variants: same-shape tensors become one long row, a scalar is a
 * stride-0 operand, and a per-channel (C,1,1) bias on (N,C,H,W) becomes (N,C,H*W) rows with a
 * constant bias per row. No per-element index arithmetic on those paths.
 *
 * Backward reduces the gradient over broadcast axes with the same walker; threads split an axis
 * along which the reduced gradient is not broadcast, so each gradient element is accumulated by
 * exactly one thread in a fixed order (bit-identical whatever the thread count).
 *
 * Choices where ONNX is silent: int64 Div truncates toward zero (C, like ONNX Runtime) and a
 * zero divisor is an error; int64 overflow wraps; Min/Max give the gradient to the first input
 * holding the selected value on ties; Pow's gradient to the exponent is 0 where the base <= 0.
 */
#include "ops.h"
#include "kutil.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#define BC_MAXOP (GC_MAX_IO + 3)
#define BC_PAR_MIN 32768 /* elements below which one thread is faster than waking others */

/* ------------------------------------------------------------------------------------------ */
/* Broadcast iteration                                                                          */

typedef struct bc_plan {
    int nd, nop;
    int64_t d[GC_MAX_DIMS];             /* collapsed extents */
    int64_t st[BC_MAXOP][GC_MAX_DIMS];  /* byte strides of each operand, 0 on broadcast axes */
} bc_plan;

/* One row: p[j] points at operand j's first element, in[j] is its byte stride along the row
 * (0 or the element size), n the row length. Operand 0 is the one written. */
typedef void (*bc_rowfn)(const void *ctx, char *const *p, const int64_t *in, int64_t n);

/* Operand j has shape shp[j] (broadcastable to out) and element size esz[j]. */
static void bc_init(bc_plan *b, const gc_shape *out, int nop, const gc_shape *const *shp,
                    const size_t *esz) {
    int64_t s[BC_MAXOP][GC_MAX_DIMS];
    for (int j = 0; j < nop; j++) {
        gc_broadcast_strides(s[j], shp[j], out);
        for (int i = 0; i < out->ndim; i++) s[j][i] *= (int64_t)esz[j];
    }
    b->nop = nop;
    b->nd = 0;
    for (int i = 0; i < out->ndim; i++) {
        if (out->d[i] == 1) continue;
        int merge = b->nd > 0;
        for (int j = 0; j < nop && merge; j++)
            if (b->st[j][b->nd - 1] != s[j][i] * out->d[i]) merge = 0;
        if (merge) {
            b->d[b->nd - 1] *= out->d[i];
            for (int j = 0; j < nop; j++) b->st[j][b->nd - 1] = s[j][i];
        } else {
            b->d[b->nd] = out->d[i];
            for (int j = 0; j < nop; j++) b->st[j][b->nd] = s[j][i];
            b->nd++;
        }
    }
    if (b->nd == 0) { /* a single element */
        b->nd = 1;
        b->d[0] = 1;
        for (int j = 0; j < nop; j++) b->st[j][0] = 0;
    }
}

/* Walks all rows with axis pd restricted to [lo, hi) (pd may be the row axis itself). */
static void bc_walk(const bc_plan *b, bc_rowfn fn, const void *ctx, char *const *base, int pd,
                    int64_t lo, int64_t hi) {
    int last = b->nd - 1, nop = b->nop;
    int64_t idx[GC_MAX_DIMS], start[GC_MAX_DIMS], end[GC_MAX_DIMS], inner[BC_MAXOP];
    char *p[BC_MAXOP];
    if (lo >= hi) return;
    for (int i = 0; i < b->nd; i++) {
        start[i] = i == pd ? lo : 0;
        end[i] = i == pd ? hi : b->d[i];
        idx[i] = start[i];
    }
    for (int j = 0; j < nop; j++) {
        p[j] = base[j] + lo * b->st[j][pd];
        inner[j] = b->st[j][last];
    }
    int64_t n = end[last] - start[last];
    for (;;) {
        fn(ctx, p, inner, n);
        int i = last - 1;
        for (; i >= 0; i--) {
            idx[i]++;
            for (int j = 0; j < nop; j++) p[j] += b->st[j][i];
            if (idx[i] < end[i]) break;
            for (int j = 0; j < nop; j++) p[j] -= (idx[i] - start[i]) * b->st[j][i];
            idx[i] = start[i];
        }
        if (i < 0) break;
    }
}

/* Runs fn over the whole plan. With reduce set, operand 0 is a gradient accumulated over its
 * broadcast axes: threads then only split an axis where operand 0 is not broadcast. */
static void bc_exec(const bc_plan *b, bc_rowfn fn, const void *ctx, char *const *base, int reduce,
                    int nthreads) {
    int64_t total = 1;
    for (int i = 0; i < b->nd; i++) total *= b->d[i];
    if (total == 0) return;
    int nt = total >= BC_PAR_MIN ? GC_MAX(nthreads, 1) : 1;
    /* Split the outermost axis long enough for every thread, else the longest one. */
    int pd = -1, best = -1;
    for (int i = 0; i < b->nd; i++) {
        if (reduce && b->st[0][i] == 0) continue;
        if (pd < 0 && b->d[i] >= 4 * (int64_t)nt) pd = i;
        if (best < 0 || b->d[i] > b->d[best]) best = i;
    }
    if (pd < 0) pd = best;
    if (pd < 0) { /* operand 0 is a single reduced element */
        pd = 0;
        nt = 1;
    }
    if (nt > b->d[pd]) nt = (int)b->d[pd];
    if (nt <= 1) {
        bc_walk(b, fn, ctx, base, pd, 0, b->d[pd]);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
        bc_walk(b, fn, ctx, base, pd, b->d[pd] * t / T, b->d[pd] * (t + 1) / T);
    }
}

/* Runs a row kernel over out = f(ops...) with ops broadcast to out. */
static void bc_run(gc_kctx *k, bc_rowfn fn, const void *ctx, gc_tensor *out, int n,
                   const gc_tensor *const *ops) {
    const gc_shape *shp[BC_MAXOP];
    size_t esz[BC_MAXOP];
    char *base[BC_MAXOP];
    bc_plan b;
    shp[0] = &out->shape;
    esz[0] = gc_dtype_size(out->dtype);
    base[0] = out->data;
    for (int j = 0; j < n; j++) {
        shp[j + 1] = &ops[j]->shape;
        esz[j + 1] = gc_dtype_size(ops[j]->dtype);
        base[j + 1] = ops[j]->data;
    }
    bc_init(&b, &out->shape, n + 1, shp, esz);
    bc_exec(&b, fn, ctx, base, 0, k->nthreads);
}

/* ------------------------------------------------------------------------------------------ */
/* Shape inference helpers                                                                      */

/* numpy broadcasting; an unknown extent (-1) broadcasts with anything not contradicting it. */
static gcam_status bshape(gc_kctx *k, gc_shape *out, const gc_shape *a, const gc_shape *b) {
    char sa[128], sb[128];
    int nd = GC_MAX(a->ndim, b->ndim);
    if (a->ndim < 0 || b->ndim < 0) return gc_kfail(k, GCAM_E_SHAPE, "input rank unknown");
    if (nd > GC_MAX_DIMS) return gc_kfail(k, GCAM_E_SHAPE, "rank %d above %d", nd, GC_MAX_DIMS);
    out->ndim = nd;
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
        if (da == db || db == 1) out->d[i] = da;
        else if (da == 1) out->d[i] = db;
        else if (da < 0) out->d[i] = db;
        else if (db < 0) out->d[i] = da;
        else
            return gc_kfail(k, GCAM_E_SHAPE, "shapes %s and %s do not broadcast",
                            gc_shape_str(a, sa, sizeof sa), gc_shape_str(b, sb, sizeof sb));
    }
    return GCAM_OK;
}

/* The output's byte size must fit (only checked once every extent is known). */
static gcam_status check_size(gc_kctx *k, const gc_tensor *t) {
    int ok;
    for (int i = 0; i < t->shape.ndim; i++)
        if (t->shape.d[i] < 0) return GCAM_OK;
    gc_tensor_bytes(t->dtype, &t->shape, &ok);
    return ok ? GCAM_OK : gc_kfail(k, GCAM_E_LIMIT, "output size overflows");
}

static const char *dtype_name(gc_dtype t) {
    return t == GC_F32 ? "float32" : t == GC_I64 ? "int64" : t == GC_BOOL ? "bool" : "undefined";
}

/* Row kernels per input dtype (index: gc_dtype); NULL where a dtype is not supported. */
typedef struct bin_rows {
    bc_rowfn f[4];
    int out_bool; /* comparisons: the output is BOOL */
} bin_rows;

/* Two inputs of one dtype the table supports, broadcast together. */
static gcam_status bin_infer(gc_kctx *k, const bin_rows *r) {
    if (k->n_in != 2 || !k->in[0] || !k->in[1]) return gc_kfail(k, GCAM_E_FORMAT, "needs 2 inputs");
    gc_dtype t = k->in[0]->dtype;
    if (k->in[1]->dtype != t)
        return gc_kfail(k, GCAM_E_FORMAT, "inputs have different types (%s, %s)", dtype_name(t),
                        dtype_name(k->in[1]->dtype));
    if (t < 1 || t > 3 || !r->f[t])
        return gc_kfail(k, GCAM_E_UNSUPPORTED, "input type %s not supported", dtype_name(t));
    gcam_status st = bshape(k, &k->out[0]->shape, &k->in[0]->shape, &k->in[1]->shape);
    if (st) return st;
    k->out[0]->dtype = r->out_bool ? GC_BOOL : t;
    return check_size(k, k->out[0]);
}

static gcam_status bin_forward(gc_kctx *k, const bin_rows *r) {
    const gc_tensor *ops[2] = {k->in[0], k->in[1]};
    bc_run(k, r->f[k->in[0]->dtype], NULL, k->out[0], 2, ops);
    return GCAM_OK;
}

/* Integer Div/Mod: a zero divisor would trap; report it instead. */
static gcam_status check_int_divisor(gc_kctx *k, const gc_tensor *b) {
    if (b->dtype != GC_I64) return GCAM_OK;
    const int64_t *v = b->data;
    int64_t n = gc_numel(b);
    for (int64_t i = 0; i < n; i++)
        if (v[i] == 0) return gc_kfail(k, GCAM_E_ARG, "integer division by zero");
    return GCAM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Forward row kernels                                                                          */

/* o = EXPR(a, b) with a, b each contiguous or broadcast along the row. o may alias a (the
 * variadic ops accumulate in place); it never aliases b. */
#define BIN_ROW(fname, TO, TA, TB, EXPR)                                                           \
    static void fname(const void *ctx, char *const *p, const int64_t *in, int64_t n) {            \
        (void)ctx;                                                                                 \
        TO *o = (TO *)p[0];                                                                        \
        const TA *pa = (const TA *)p[1];                                                           \
        const TB *pb = (const TB *)p[2];                                                           \
        if (in[1] && in[2]) {                                                                      \
            for (int64_t i = 0; i < n; i++) {                                                      \
                TA a = pa[i];                                                                      \
                TB b = pb[i];                                                                      \
                o[i] = (TO)(EXPR);                                                                 \
            }                                                                                      \
        } else if (in[1]) {                                                                        \
            const TB b = pb[0];                                                                    \
            for (int64_t i = 0; i < n; i++) {                                                      \
                TA a = pa[i];                                                                      \
                o[i] = (TO)(EXPR);                                                                 \
            }                                                                                      \
        } else if (in[2]) {                                                                        \
            const TA a = pa[0];                                                                    \
            for (int64_t i = 0; i < n; i++) {                                                      \
                TB b = pb[i];                                                                      \
                o[i] = (TO)(EXPR);                                                                 \
            }                                                                                      \
        } else {                                                                                   \
            const TA a = pa[0];                                                                    \
            const TB b = pb[0];                                                                    \
            const TO v = (TO)(EXPR);                                                               \
            for (int64_t i = 0; i < n; i++) o[i] = v;                                              \
        }                                                                                          \
    }

/* int64 arithmetic wraps (two's complement) instead of overflowing into undefined behaviour. */
#define IADD(a, b) ((int64_t)((uint64_t)(a) + (uint64_t)(b)))
#define ISUB(a, b) ((int64_t)((uint64_t)(a) - (uint64_t)(b)))
#define IMUL(a, b) ((int64_t)((uint64_t)(a) * (uint64_t)(b)))
/* C division (truncates toward zero, like ONNX Runtime); b == 0 is rejected before, and
 * INT64_MIN / -1 wraps. */
#define IDIV(a, b) ((b) == -1 ? ISUB(0, a) : (b) == 0 ? 0 : (a) / (b))
/* NaN propagates (as in numpy.maximum / torch.maximum). */
#define FMAX(a, b) (((a) > (b) || (a) != (a)) ? (a) : (b))
#define FMIN(a, b) (((a) < (b) || (a) != (a)) ? (a) : (b))

BIN_ROW(add_f32, float, float, float, a + b)
/* Add with a following Relu fused in (k->fuse.relu, ResNet's residual sums); NaN propagates */
BIN_ROW(add_relu_f32, float, float, float, (a + b) < 0.0f ? 0.0f : (a + b))
BIN_ROW(add_i64, int64_t, int64_t, int64_t, IADD(a, b))
BIN_ROW(sub_f32, float, float, float, a - b)
BIN_ROW(sub_i64, int64_t, int64_t, int64_t, ISUB(a, b))
BIN_ROW(mul_f32, float, float, float, a * b)
BIN_ROW(mul_i64, int64_t, int64_t, int64_t, IMUL(a, b))
BIN_ROW(div_f32, float, float, float, a / b)
BIN_ROW(div_i64, int64_t, int64_t, int64_t, IDIV(a, b))
BIN_ROW(max_f32, float, float, float, FMAX(a, b))
BIN_ROW(max_i64, int64_t, int64_t, int64_t, a > b ? a : b)
BIN_ROW(min_f32, float, float, float, FMIN(a, b))
BIN_ROW(min_i64, int64_t, int64_t, int64_t, a < b ? a : b)
BIN_ROW(eq_f32, uint8_t, float, float, a == b)
BIN_ROW(eq_i64, uint8_t, int64_t, int64_t, a == b)
BIN_ROW(eq_b8, uint8_t, uint8_t, uint8_t, (a != 0) == (b != 0))
BIN_ROW(lt_f32, uint8_t, float, float, a < b)
BIN_ROW(lt_i64, uint8_t, int64_t, int64_t, a < b)
BIN_ROW(gt_f32, uint8_t, float, float, a > b)
BIN_ROW(gt_i64, uint8_t, int64_t, int64_t, a > b)
BIN_ROW(le_f32, uint8_t, float, float, a <= b)
BIN_ROW(le_i64, uint8_t, int64_t, int64_t, a <= b)
BIN_ROW(ge_f32, uint8_t, float, float, a >= b)
BIN_ROW(ge_i64, uint8_t, int64_t, int64_t, a >= b)
BIN_ROW(and_b8, uint8_t, uint8_t, uint8_t, (a != 0) & (b != 0))
BIN_ROW(or_b8, uint8_t, uint8_t, uint8_t, (a != 0) | (b != 0))

/* ------------------------------------------------------------------------------------------ */
/* Backward machinery                                                                           */

/* Sum of n floats: 8 float lanes per block of 4096, blocks added in double (vectorisable,
 * accurate, and the order is fixed). */
static double sum_f32(const float *x, int64_t n) {
    double s = 0;
    for (int64_t b0 = 0; b0 < n; b0 += 4096) {
        int64_t m = GC_MIN(4096, n - b0), i = 0;
        const float *xb = x + b0;
        float acc[8] = {0};
        for (; i + 8 <= m; i += 8)
            for (int l = 0; l < 8; l++) acc[l] += xb[i + l];
        for (; i < m; i++) acc[0] += xb[i];
        for (int l = 0; l < 8; l++) s += acc[l];
    }
    return s;
}

/* gin += c * g reduced to gin's shape. Operands: gin, g. */
static void acc_row(const void *ctx, char *const *p, const int64_t *in, int64_t n) {
    const float c = *(const float *)ctx;
    float *o = (float *)p[0];
    const float *g = (const float *)p[1];
    if (!in[0]) {
        o[0] += (float)(c * sum_f32(g, n));
    } else if (c == 1.0f) {
        for (int64_t i = 0; i < n; i++) o[i] += g[i];
    } else {
        for (int64_t i = 0; i < n; i++) o[i] += c * g[i];
    }
}

/* A VJP value kernel: v[0..m) from operands q (q[0] = g; strides in[] as for rows). */
typedef void (*vjp_valfn)(float *v, char *const *q, const int64_t *in, int64_t m, const void *arg);
typedef struct vjp_ctx {
    vjp_valfn val;
    const void *arg;
    int nop;
} vjp_ctx;

#define VJP_CHUNK 256
/* gin += val(...) reduced to gin's shape, a chunk at a time through a small stack buffer.
 * Operands: gin, g, then whatever val reads. */
static void vjp_row(const void *ctx, char *const *p, const int64_t *in, int64_t n) {
    const vjp_ctx *c = ctx;
    float *o = (float *)p[0];
    float v[VJP_CHUNK];
    char *q[BC_MAXOP];
    double total = 0;
    for (int64_t off = 0; off < n; off += VJP_CHUNK) {
        int64_t m = GC_MIN(VJP_CHUNK, n - off);
        for (int j = 1; j < c->nop; j++) q[j - 1] = p[j] + off * in[j];
        c->val(v, q, in + 1, m, c->arg);
        if (in[0]) {
            float *oo = o + off;
            for (int64_t i = 0; i < m; i++) oo[i] += v[i];
        } else {
            total += sum_f32(v, m);
        }
    }
    if (!in[0]) o[0] += (float)total;
}

/* Adds c * gout, reduced over the broadcast axes, into gin[i]. */
static void grad_scaled(gc_kctx *k, int i, float c) {
    const gc_shape *shp[2] = {&k->in[i]->shape, &k->out[0]->shape};
    const size_t esz[2] = {4, 4};
    char *base[2] = {k->gin[i]->data, (char *)k->gout[0]->data};
    bc_plan b;
    bc_init(&b, &k->out[0]->shape, 2, shp, esz);
    bc_exec(&b, acc_row, &c, base, 1, k->nthreads);
}

/* Adds val(gout, ops...), reduced over the broadcast axes, into gin[i]. */
static void grad_val(gc_kctx *k, int i, vjp_valfn val, const void *arg, int n,
                     const gc_tensor *const *ops) {
    const gc_shape *shp[BC_MAXOP];
    size_t esz[BC_MAXOP];
    char *base[BC_MAXOP];
    bc_plan b;
    shp[0] = &k->in[i]->shape;
    shp[1] = &k->out[0]->shape;
    esz[0] = esz[1] = 4;
    base[0] = k->gin[i]->data;
    base[1] = (char *)k->gout[0]->data;
    for (int j = 0; j < n; j++) {
        shp[j + 2] = &ops[j]->shape;
        esz[j + 2] = gc_dtype_size(ops[j]->dtype);
        base[j + 2] = ops[j]->data;
    }
    vjp_ctx c = {val, arg, n + 2};
    bc_init(&b, &k->out[0]->shape, n + 2, shp, esz);
    bc_exec(&b, vjp_row, &c, base, 1, k->nthreads);
}

/* Gradient wanted for float input i? */
static int want(const gc_kctx *k, int i) {
    return i < k->n_in && k->gin[i] && k->in[i] && k->in[i]->dtype == GC_F32;
}

/* v = g * x / v = g / x (x is q[1]). */
static void val_mul(float *v, char *const *q, const int64_t *in, int64_t m, const void *arg) {
    const float *g = (const float *)q[0], *x = (const float *)q[1];
    if (in[1]) {
        for (int64_t i = 0; i < m; i++) v[i] = g[i] * x[i];
    } else {
        const float s = x[0];
        for (int64_t i = 0; i < m; i++) v[i] = g[i] * s;
    }
}
static void val_div(float *v, char *const *q, const int64_t *in, int64_t m, const void *arg) {
    const float *g = (const float *)q[0], *x = (const float *)q[1];
    if (in[1]) {
        for (int64_t i = 0; i < m; i++) v[i] = g[i] / x[i];
    } else {
        const float s = x[0];
        for (int64_t i = 0; i < m; i++) v[i] = g[i] / s;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Add, Sub: d/da = 1, d/db = +-1                                                               */

static const bin_rows add_rows = {{NULL, add_f32, add_i64, NULL}, 0};
static const bin_rows add_relu_rows = {{NULL, add_relu_f32, add_i64, NULL}, 0};
static gcam_status add_infer(gc_kctx *k) { return bin_infer(k, &add_rows); }
static gcam_status add_forward(gc_kctx *k) { return bin_forward(k, k->fuse.relu ? &add_relu_rows : &add_rows); }
#define ADD_CHUNK 16384 /* elements per parallel work item of the same-shape paths */
static gcam_status add_backward(gc_kctx *k) {
    if (!k->gout[0]) return GCAM_OK;
    const gc_shape *ys = &k->out[0]->shape;
    float *g[2] = {NULL, NULL}; /* inputs of the output's shape: the fast paths below */
    int fresh[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        if (!want(k, i)) continue;
        fresh[i] = (int)(k->gin_fresh >> i & 1);
        if (gc_shape_eq(&k->in[i]->shape, ys)) {
            g[i] = k->gin[i]->data;
            continue;
        }
        if (k->fuse.relu) return gc_kfail(k, GCAM_E_INTERNAL, "fused Relu backward with a broadcast input");
        if (fresh[i]) memset(k->gin[i]->data, 0, (size_t)gc_numel(k->in[i]) * sizeof(float));
        grad_scaled(k, i, 1.0f); /* reduced over the broadcast axes */
    }
    if (!g[0] && !g[1]) return GCAM_OK;
    /* (n) each: gy the output's gradient (with a fused Relu: that Relu's output gradient, and y
     * its output, the shared buffer); gin = or += gy, or the Relu's VJP of it. An input's gradient
     * may be gy's very buffer (the planner's fuse_add_grads): gy then becomes the VJP in place
     * first (with a fused Relu; else it already is the gradient), and the other input copies it. */
    float *gy = k->gout[0]->data;
    const float *y = k->fuse.relu ? k->out[0]->data : NULL;
    const int shared = g[0] == gy || g[1] == gy;
    for (int i = 0; i < 2; i++)
        if (g[i] == gy) g[i] = NULL;
    if (!y && !g[0] && !g[1]) return GCAM_OK; /* both share it: nothing to do */
    const int64_t n = gc_numel(k->out[0]), nch = (n + ADD_CHUNK - 1) / ADD_CHUNK;
    const gc_rule rule = k->rule;
    const int nt = n > 65536 ? gc_kthreads(k) : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t c = 0; c < nch; c++) {
        const int64_t lo = c * ADD_CHUNK, len = GC_MIN(ADD_CHUNK, n - lo);
        const float *s = gy + lo, *yc = y ? y + lo : NULL;
        if (shared && yc) { /* the same select as below, written once: the same values */
            gc_relu_vjp_inplace(gy + lo, yc, len, rule);
            yc = NULL;
        }
        for (int i = 0; i < 2; i++) {
            if (!g[i]) continue;
            float *d = g[i] + lo;
            if (yc) gc_relu_vjp_axpy(d, s, yc, len, 1.0f, rule, fresh[i]);
            else if (fresh[i]) memcpy(d, s, (size_t)len * sizeof(float));
            else
                for (int64_t j = 0; j < len; j++) d[j] += s[j];
        }
    }
    return GCAM_OK;
}
const gc_opdef gc_def_Add = {.name = "Add", .min_opset = 7, .infer = add_infer, .forward = add_forward,
                             .backward = add_backward, .diff_in = 3, .fuse_relu = 1, .fuse_relu_bw = 1,
                             .bw_assign = 1};

static const bin_rows sub_rows = {{NULL, sub_f32, sub_i64, NULL}, 0};
static gcam_status sub_infer(gc_kctx *k) { return bin_infer(k, &sub_rows); }
static gcam_status sub_forward(gc_kctx *k) { return bin_forward(k, &sub_rows); }
static gcam_status sub_backward(gc_kctx *k) {
    if (!k->gout[0]) return GCAM_OK;
    if (want(k, 0)) grad_scaled(k, 0, 1.0f);
    if (want(k, 1)) grad_scaled(k, 1, -1.0f);
    return GCAM_OK;
}
const gc_opdef gc_def_Sub = {.name = "Sub", .min_opset = 7, .infer = sub_infer,
                             .forward = sub_forward, .backward = sub_backward, .diff_in = 3};

/* ------------------------------------------------------------------------------------------ */
/* Mul: d/da = b, d/db = a                                                                      */

static const bin_rows mul_rows = {{NULL, mul_f32, mul_i64, NULL}, 0};
static gcam_status mul_infer(gc_kctx *k) { return bin_infer(k, &mul_rows); }
static gcam_status mul_forward(gc_kctx *k) { return bin_forward(k, &mul_rows); }
static gcam_status mul_backward(gc_kctx *k) {
    if (!k->gout[0]) return GCAM_OK;
    if (want(k, 0)) grad_val(k, 0, val_mul, NULL, 1, (const gc_tensor *const[]){k->in[1]});
    if (want(k, 1)) grad_val(k, 1, val_mul, NULL, 1, (const gc_tensor *const[]){k->in[0]});
    return GCAM_OK;
}
const gc_opdef gc_def_Mul = {.name = "Mul", .min_opset = 7, .infer = mul_infer,
                             .forward = mul_forward, .backward = mul_backward,
                             .bw_in = 3, .diff_in = 3};

/* ------------------------------------------------------------------------------------------ */
/* Div: d/da = 1/b, d/db = -a/b^2. int64 division truncates toward zero (C semantics).         */

/* v = -g * a / b / b; q = g, a, b */
static void val_div_b(float *v, char *const *q, const int64_t *in, int64_t m, const void *arg) {
    const float *g = (const float *)q[0], *a = (const float *)q[1], *b = (const float *)q[2];
    const int64_t sa = in[1] != 0, sb = in[2] != 0;
    for (int64_t i = 0; i < m; i++) {
        float bi = b[i * sb];
        v[i] = -g[i] * (a[i * sa] / bi) / bi;
    }
}

static const bin_rows div_rows = {{NULL, div_f32, div_i64, NULL}, 0};
static gcam_status div_infer(gc_kctx *k) { return bin_infer(k, &div_rows); }
static gcam_status div_forward(gc_kctx *k) {
    gcam_status st = check_int_divisor(k, k->in[1]);
    return st ? st : bin_forward(k, &div_rows);
}
static gcam_status div_backward(gc_kctx *k) {
    if (!k->gout[0]) return GCAM_OK;
    if (want(k, 0)) grad_val(k, 0, val_div, NULL, 1, (const gc_tensor *const[]){k->in[1]});
    if (want(k, 1)) grad_val(k, 1, val_div_b, NULL, 2, (const gc_tensor *const[]){k->in[0], k->in[1]});
    return GCAM_OK;
}
const gc_opdef gc_def_Div = {.name = "Div", .min_opset = 7, .infer = div_infer,
                             .forward = div_forward, .backward = div_backward,
                             .bw_in = 3, .diff_in = 3};

/* ------------------------------------------------------------------------------------------ */
/* Pow: z = x^y; x float32 or int64, y float32 or int64 (opset 12+), z has x's type.
 * dz/dx = y x^(y-1); dz/dy = x^y ln x, taken as 0 where x <= 0.                                */

/* Saturating double -> int64 (a plain cast of an out-of-range value is undefined). */
static int64_t sat_i64(double v) {
    if (v != v) return 0;
    if (v >= 9223372036854775807.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}

static int64_t ipow(int64_t a, int64_t e) {
    if (e < 0) return a == 1 ? 1 : a == -1 ? ((e & 1) ? -1 : 1) : 0;
    uint64_t r = 1, x = (uint64_t)a;
    while (e) {
        if (e & 1) r *= x;
        x *= x;
        e >>= 1;
    }
    return (int64_t)r;
}

static void pow_ff(const void *ctx, char *const *p, const int64_t *in, int64_t n) {
    (void)ctx;
    float *o = (float *)p[0];
    const float *a = (const float *)p[1], *b = (const float *)p[2];
    if (in[1] && !in[2]) { /* the usual case: a constant exponent */
        const float e = b[0];
        if (e == 2.0f) {
            for (int64_t i = 0; i < n; i++) o[i] = a[i] * a[i];
        } else if (e == 1.0f) {
            for (int64_t i = 0; i < n; i++) o[i] = a[i];
        } else {
            for (int64_t i = 0; i < n; i++) o[i] = powf(a[i], e);
        }
        return;
    }
    const int64_t sa = in[1] != 0, sb = in[2] != 0;
    for (int64_t i = 0; i < n; i++) o[i] = powf(a[i * sa], b[i * sb]);
}
BIN_ROW(pow_fi, float, float, int64_t, powf(a, (float)b))
BIN_ROW(pow_ii, int64_t, int64_t, int64_t, ipow(a, b))
BIN_ROW(pow_if, int64_t, int64_t, float, sat_i64(pow((double)a, (double)b)))

/* v = g * y * x^(y-1); q = g, x, y (y float32 or int64 as *arg says) */
static void val_pow_x(float *v, char *const *q, const int64_t *in, int64_t m, const void *arg) {
    const float *g = (const float *)q[0], *x = (const float *)q[1];
    const int64_t sx = in[1] != 0, sy = in[2] != 0;
    if (*(const gc_dtype *)arg == GC_I64) {
        const int64_t *y = (const int64_t *)q[2];
        for (int64_t i = 0; i < m; i++) {
            float e = (float)y[i * sy];
            v[i] = e == 0.0f ? 0.0f : g[i] * e * powf(x[i * sx], e - 1.0f);
        }
    } else {
        const float *y = (const float *)q[2];
        for (int64_t i = 0; i < m; i++) {
            float e = y[i * sy];
            v[i] = e == 0.0f ? 0.0f : g[i] * e * powf(x[i * sx], e - 1.0f);
        }
    }
}
/* v = g * x^y * ln x for x > 0; q = g, x, y (float32) */
static void val_pow_y(float *v, char *const *q, const int64_t *in, int64_t m, const void *arg) {
    const float *g = (const float *)q[0], *x = (const float *)q[1], *y = (const float *)q[2];
    const int64_t sx = in[1] != 0, sy = in[2] != 0;
    for (int64_t i = 0; i < m; i++) {
        float xi = x[i * sx];
        v[i] = xi > 0.0f ? g[i] * powf(xi, y[i * sy]) * logf(xi) : 0.0f;
    }
}

static gcam_status pow_infer(gc_kctx *k) {
    if (k->n_in != 2 || !k->in[0] || !k->in[1]) return gc_kfail(k, GCAM_E_FORMAT, "needs 2 inputs");
    gc_dtype tx = k->in[0]->dtype, ty = k->in[1]->dtype;
    if ((tx != GC_F32 && tx != GC_I64) || (ty != GC_F32 && ty != GC_I64))
        return gc_kfail(k, GCAM_E_UNSUPPORTED, "types %s ^ %s not supported", dtype_name(tx),
                        dtype_name(ty));
    gcam_status st = bshape(k, &k->out[0]->shape, &k->in[0]->shape, &k->in[1]->shape);
    if (st) return st;
    k->out[0]->dtype = tx;
    return check_size(k, k->out[0]);
}
static gcam_status pow_forward(gc_kctx *k) {
    gc_dtype tx = k->in[0]->dtype, ty = k->in[1]->dtype;
    bc_rowfn f = tx == GC_F32 ? (ty == GC_F32 ? pow_ff : pow_fi) : (ty == GC_F32 ? pow_if : pow_ii);
    bc_run(k, f, NULL, k->out[0], 2, (const gc_tensor *const[]){k->in[0], k->in[1]});
    return GCAM_OK;
}
static gcam_status pow_backward(gc_kctx *k) {
    if (!k->gout[0]) return GCAM_OK;
    const gc_tensor *const ops[2] = {k->in[0], k->in[1]};
    gc_dtype ty = k->in[1]->dtype;
    if (want(k, 0)) grad_val(k, 0, val_pow_x, &ty, 2, ops);
    if (want(k, 1) && k->in[0]->dtype == GC_F32) grad_val(k, 1, val_pow_y, NULL, 2, ops);
    return GCAM_OK;
}
const gc_opdef gc_def_Pow = {.name = "Pow", .min_opset = 7, .infer = pow_infer,
                             .forward = pow_forward, .backward = pow_backward,
                             .bw_in = 3, .diff_in = 3};

/* ------------------------------------------------------------------------------------------ */
/* Variadic Min, Max, Sum, Mean (1..N inputs, all broadcast together)                          */

static gcam_status var_infer(gc_kctx *k, const bin_rows *r, int float_only) {
    if (k->n_in < 1) return gc_kfail(k, GCAM_E_FORMAT, "needs at least one input");
    for (int i = 0; i < k->n_in; i++)
        if (!k->in[i]) return gc_kfail(k, GCAM_E_FORMAT, "input %d is missing", i);
    gc_dtype t = k->in[0]->dtype;
    gc_shape s = k->in[0]->shape;
    if (t < 1 || t > 3 || !r->f[t] || (float_only && t != GC_F32))
        return gc_kfail(k, GCAM_E_UNSUPPORTED, "input type %s not supported", dtype_name(t));
    for (int i = 1; i < k->n_in; i++) {
        if (k->in[i]->dtype != t)
            return gc_kfail(k, GCAM_E_FORMAT, "input %d has type %s, input 0 has %s", i,
                            dtype_name(k->in[i]->dtype), dtype_name(t));
        gc_shape prev = s;
        gcam_status st = bshape(k, &s, &prev, &k->in[i]->shape);
        if (st) return st;
    }
    k->out[0]->dtype = t;
    k->out[0]->shape = s;
    return check_size(k, k->out[0]);
}

/* out = in0 op in1 op ... accumulated in place in out. */
static gcam_status var_forward(gc_kctx *k, const bin_rows *r) {
    gc_tensor *out = k->out[0];
    bc_rowfn f = r->f[out->dtype];
    if (k->n_in == 1) { /* the output has the input's shape */
        memcpy(out->data, k->in[0]->data, (size_t)gc_numel(out) * gc_dtype_size(out->dtype));
        return GCAM_OK;
    }
    bc_run(k, f, NULL, out, 2, (const gc_tensor *const[]){k->in[0], k->in[1]});
    for (int i = 2; i < k->n_in; i++)
        bc_run(k, f, NULL, out, 2, (const gc_tensor *const[]){out, k->in[i]});
    return GCAM_OK;
}

/* Min/Max backward: the gradient goes to the input holding the selected value; on ties to the
 * first such input only (like an argmax), so the total gradient is conserved.
 * q = g, out, in_0 .. in_i; *arg = i */
static void val_select(float *v, char *const *q, const int64_t *in, int64_t m, const void *arg) {
    const int sel = *(const int *)arg;
    const float *g = (const float *)q[0], *y = (const float *)q[1];
    const int64_t sy = in[1] != 0;
    const float *xi = (const float *)q[2 + sel];
    const int64_t si = in[2 + sel] != 0;
    for (int64_t e = 0; e < m; e++) {
        float ye = y[e * sy];
        int hit = xi[e * si] == ye;
        for (int j = 0; j < sel && hit; j++)
            if (((const float *)q[2 + j])[e * (in[2 + j] != 0)] == ye) hit = 0;
        v[e] = hit ? g[e] : 0.0f;
    }
}

static gcam_status minmax_backward(gc_kctx *k) {
    if (!k->gout[0]) return GCAM_OK;
    const gc_tensor *ops[GC_MAX_IO + 1];
    ops[0] = k->out[0];
    for (int i = 0; i < k->n_in; i++) ops[i + 1] = k->in[i];
    for (int i = 0; i < k->n_in; i++) {
        if (!want(k, i)) continue;
        if (k->n_in == 1) grad_scaled(k, 0, 1.0f);
        else grad_val(k, i, val_select, &i, i + 2, ops);
    }
    return GCAM_OK;
}

static const bin_rows max_rows = {{NULL, max_f32, max_i64, NULL}, 0};
static gcam_status max_infer(gc_kctx *k) { return var_infer(k, &max_rows, 0); }
static gcam_status max_forward(gc_kctx *k) { return var_forward(k, &max_rows); }
const gc_opdef gc_def_Max = {.name = "Max", .min_opset = 1, .infer = max_infer,
                             .forward = max_forward, .backward = minmax_backward,
                             .bw_in = GC_ALL_INPUTS, .bw_out = 1, .diff_in = GC_ALL_INPUTS};

static const bin_rows min_rows = {{NULL, min_f32, min_i64, NULL}, 0};
static gcam_status min_infer(gc_kctx *k) { return var_infer(k, &min_rows, 0); }
static gcam_status min_forward(gc_kctx *k) { return var_forward(k, &min_rows); }
const gc_opdef gc_def_Min = {.name = "Min", .min_opset = 1, .infer = min_infer,
                             .forward = min_forward, .backward = minmax_backward,
                             .bw_in = GC_ALL_INPUTS, .bw_out = 1, .diff_in = GC_ALL_INPUTS};

static const bin_rows sum_rows = {{NULL, add_f32, add_i64, NULL}, 0};
static gcam_status sum_infer(gc_kctx *k) { return var_infer(k, &sum_rows, 0); }
static gcam_status sum_forward(gc_kctx *k) { return var_forward(k, &sum_rows); }
static gcam_status sum_backward(gc_kctx *k) {
    if (!k->gout[0]) return GCAM_OK;
    for (int i = 0; i < k->n_in; i++)
        if (want(k, i)) grad_scaled(k, i, 1.0f);
    return GCAM_OK;
}
const gc_opdef gc_def_Sum = {.name = "Sum", .min_opset = 1, .infer = sum_infer,
                             .forward = sum_forward, .backward = sum_backward, .diff_in = GC_ALL_INPUTS};

static gcam_status mean_infer(gc_kctx *k) { return var_infer(k, &sum_rows, 1); }
static gcam_status mean_forward(gc_kctx *k) {
    gcam_status st = var_forward(k, &sum_rows);
    if (st || k->n_in == 1) return st;
    float *y = k->out[0]->data;
    const float s = 1.0f / (float)k->n_in;
    int64_t n = gc_numel(k->out[0]);
#pragma omp parallel for num_threads(GC_MAX(k->nthreads, 1)) schedule(static) if (n >= BC_PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] *= s;
    return GCAM_OK;
}
static gcam_status mean_backward(gc_kctx *k) {
    if (!k->gout[0]) return GCAM_OK;
    for (int i = 0; i < k->n_in; i++)
        if (want(k, i)) grad_scaled(k, i, 1.0f / (float)k->n_in);
    return GCAM_OK;
}
const gc_opdef gc_def_Mean = {.name = "Mean", .min_opset = 1, .infer = mean_infer,
                              .forward = mean_forward, .backward = mean_backward,
                              .diff_in = GC_ALL_INPUTS};

/* ------------------------------------------------------------------------------------------ */
/* Where(cond, X, Y): X where cond else Y; gradient to X where cond, to Y elsewhere.           */

#define WHERE_ROW(fname, T)                                                                        \
    static void fname(const void *ctx, char *const *p, const int64_t *in, int64_t n) {            \
        (void)ctx;                                                                                 \
        T *o = (T *)p[0];                                                                          \
        const uint8_t *c = (const uint8_t *)p[1];                                                  \
        const T *x = (const T *)p[2], *y = (const T *)p[3];                                        \
        if (in[1] && in[2] && in[3]) {                                                             \
            for (int64_t i = 0; i < n; i++) o[i] = c[i] ? x[i] : y[i];                             \
        } else {                                                                                   \
            const int64_t sc = in[1] != 0, sx = in[2] != 0, sy = in[3] != 0;                       \
            for (int64_t i = 0; i < n; i++) o[i] = c[i * sc] ? x[i * sx] : y[i * sy];              \
        }                                                                                          \
    }
WHERE_ROW(where_32, uint32_t)
WHERE_ROW(where_64, uint64_t)
WHERE_ROW(where_8, uint8_t)

/* v = g where cond == *arg; q = g, cond */
static void val_where(float *v, char *const *q, const int64_t *in, int64_t m, const void *arg) {
    const uint8_t want_c = *(const uint8_t *)arg;
    const float *g = (const float *)q[0];
    const uint8_t *c = (const uint8_t *)q[1];
    const int64_t sc = in[1] != 0;
    for (int64_t i = 0; i < m; i++) {
        const float gi = g[i]; /* unconditional load: the select vectorises */
        v[i] = (c[i * sc] != 0) == want_c ? gi : 0.0f;
    }
}

static gcam_status where_infer(gc_kctx *k) {
    if (k->n_in != 3 || !k->in[0] || !k->in[1] || !k->in[2])
        return gc_kfail(k, GCAM_E_FORMAT, "needs 3 inputs");
    if (k->in[0]->dtype != GC_BOOL)
        return gc_kfail(k, GCAM_E_FORMAT, "condition must be bool, not %s", dtype_name(k->in[0]->dtype));
    gc_dtype t = k->in[1]->dtype;
    if (t != GC_F32 && t != GC_I64 && t != GC_BOOL)
        return gc_kfail(k, GCAM_E_UNSUPPORTED, "type %s not supported", dtype_name(t));
    if (k->in[2]->dtype != t)
        return gc_kfail(k, GCAM_E_FORMAT, "X and Y have different types (%s, %s)", dtype_name(t),
                        dtype_name(k->in[2]->dtype));
    gc_shape s;
    gcam_status st = bshape(k, &s, &k->in[0]->shape, &k->in[1]->shape);
    if (!st) st = bshape(k, &k->out[0]->shape, &s, &k->in[2]->shape);
    if (st) return st;
    k->out[0]->dtype = t;
    return check_size(k, k->out[0]);
}
static gcam_status where_forward(gc_kctx *k) {
    gc_dtype t = k->out[0]->dtype;
    bc_rowfn f = t == GC_F32 ? where_32 : t == GC_I64 ? where_64 : where_8;
    bc_run(k, f, NULL, k->out[0], 3, (const gc_tensor *const[]){k->in[0], k->in[1], k->in[2]});
    return GCAM_OK;
}
static gcam_status where_backward(gc_kctx *k) {
    static const uint8_t yes = 1, no = 0;
    if (!k->gout[0]) return GCAM_OK;
    const gc_tensor *const ops[1] = {k->in[0]};
    if (want(k, 1)) grad_val(k, 1, val_where, &yes, 1, ops);
    if (want(k, 2)) grad_val(k, 2, val_where, &no, 1, ops);
    return GCAM_OK;
}
const gc_opdef gc_def_Where = {.name = "Where", .min_opset = 9, .infer = where_infer,
                               .forward = where_forward, .backward = where_backward,
                               .bw_in = 1, .diff_in = 6};

/* ------------------------------------------------------------------------------------------ */
/* Comparisons (BOOL output) and logic (BOOL inputs). Not differentiable.                      */

static const bin_rows eq_rows = {{NULL, eq_f32, eq_i64, eq_b8}, 1};
static gcam_status eq_infer(gc_kctx *k) { return bin_infer(k, &eq_rows); }
static gcam_status eq_forward(gc_kctx *k) { return bin_forward(k, &eq_rows); }
const gc_opdef gc_def_Equal = {.name = "Equal", .min_opset = 7, .infer = eq_infer,
                               .forward = eq_forward};

static const bin_rows lt_rows = {{NULL, lt_f32, lt_i64, NULL}, 1};
static gcam_status lt_infer(gc_kctx *k) { return bin_infer(k, &lt_rows); }
static gcam_status lt_forward(gc_kctx *k) { return bin_forward(k, &lt_rows); }
const gc_opdef gc_def_Less = {.name = "Less", .min_opset = 7, .infer = lt_infer,
                              .forward = lt_forward};

static const bin_rows gt_rows = {{NULL, gt_f32, gt_i64, NULL}, 1};
static gcam_status gt_infer(gc_kctx *k) { return bin_infer(k, &gt_rows); }
static gcam_status gt_forward(gc_kctx *k) { return bin_forward(k, &gt_rows); }
const gc_opdef gc_def_Greater = {.name = "Greater", .min_opset = 7, .infer = gt_infer,
                                 .forward = gt_forward};

static const bin_rows le_rows = {{NULL, le_f32, le_i64, NULL}, 1};
static gcam_status le_infer(gc_kctx *k) { return bin_infer(k, &le_rows); }
static gcam_status le_forward(gc_kctx *k) { return bin_forward(k, &le_rows); }
const gc_opdef gc_def_LessOrEqual = {.name = "LessOrEqual", .min_opset = 12, .infer = le_infer,
                                     .forward = le_forward};

static const bin_rows ge_rows = {{NULL, ge_f32, ge_i64, NULL}, 1};
static gcam_status ge_infer(gc_kctx *k) { return bin_infer(k, &ge_rows); }
static gcam_status ge_forward(gc_kctx *k) { return bin_forward(k, &ge_rows); }
const gc_opdef gc_def_GreaterOrEqual = {.name = "GreaterOrEqual", .min_opset = 12,
                                        .infer = ge_infer, .forward = ge_forward};

static const bin_rows and_rows = {{NULL, NULL, NULL, and_b8}, 1};
static gcam_status and_infer(gc_kctx *k) { return bin_infer(k, &and_rows); }
static gcam_status and_forward(gc_kctx *k) { return bin_forward(k, &and_rows); }
const gc_opdef gc_def_And = {.name = "And", .min_opset = 7, .infer = and_infer,
                             .forward = and_forward};

static const bin_rows or_rows = {{NULL, NULL, NULL, or_b8}, 1};
static gcam_status or_infer(gc_kctx *k) { return bin_infer(k, &or_rows); }
static gcam_status or_forward(gc_kctx *k) { return bin_forward(k, &or_rows); }
const gc_opdef gc_def_Or = {.name = "Or", .min_opset = 7, .infer = or_infer,
                            .forward = or_forward};

/* ------------------------------------------------------------------------------------------ */
/* Mod: fmod = 0 takes the divisor's sign (Python %), fmod = 1 the dividend's (C fmod). ONNX
 * demands fmod = 1 for floats; fmod = 0 on floats is accepted with the Python meaning.         */

typedef struct mod_params {
    int fmod;
} mod_params;

static inline int64_t imod_py(int64_t a, int64_t b) {
    if (b == 0 || b == -1) return 0;
    int64_t r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
static inline int64_t imod_c(int64_t a, int64_t b) { return (b == 0 || b == -1) ? 0 : a % b; }
static inline float fmod_py(float a, float b) {
    float r = fmodf(a, b);
    return (r != 0.0f && ((r < 0.0f) != (b < 0.0f))) ? r + b : r;
}
BIN_ROW(mod_py_i64, int64_t, int64_t, int64_t, imod_py(a, b))
BIN_ROW(mod_c_i64, int64_t, int64_t, int64_t, imod_c(a, b))
BIN_ROW(mod_py_f32, float, float, float, fmod_py(a, b))
BIN_ROW(mod_c_f32, float, float, float, fmodf(a, b))

static gcam_status mod_parse(gc_node *n, gc_err *err) {
    int64_t f = gc_attr_int(n, "fmod", 0);
    if (f != 0 && f != 1) return gc_fail(err, GCAM_E_FORMAT, "Mod: attribute fmod must be 0 or 1, not %lld", (long long)f);
    mod_params *p = malloc(sizeof *p);
    if (!p) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
    p->fmod = (int)f;
    free(n->params);
    n->params = p;
    return GCAM_OK;
}
static const bin_rows mod_rows = {{NULL, mod_c_f32, mod_c_i64, NULL}, 0};
static gcam_status mod_infer(gc_kctx *k) { return bin_infer(k, &mod_rows); }
static gcam_status mod_forward(gc_kctx *k) {
    const mod_params *p = k->params;
    int c = p && p->fmod;
    gcam_status st = check_int_divisor(k, k->in[1]);
    if (st) return st;
    bc_rowfn f = k->in[0]->dtype == GC_F32 ? (c ? mod_c_f32 : mod_py_f32) : (c ? mod_c_i64 : mod_py_i64);
    bc_run(k, f, NULL, k->out[0], 2, (const gc_tensor *const[]){k->in[0], k->in[1]});
    return GCAM_OK;
}
const gc_opdef gc_def_Mod = {.name = "Mod", .min_opset = 10, .parse = mod_parse,
                             .infer = mod_infer, .forward = mod_forward};

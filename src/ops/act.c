/* Unary element-wise ops: activations and math functions.
 *
 * Each op is a forward kernel y = f(x) and a backward kernel gx += gy * f'(.) over contiguous
 * float arrays; the shared drivers below split long arrays into chunks for OpenMP. Backward reads
 * the output instead of the input where that is enough (Relu, Clip, Sigmoid, Tanh, ...), so the
 * input can be freed after forward.
 *
 * Relu and Clip with min == 0 (ReLU6) honour k->rule (see gc_rule in ops.h):
 *   STANDARD  gx = gy * [0 < y < max]
 *   GUIDED    gx = gy * [0 < y < max] * [gy > 0]      (Springenberg et al., guided backprop)
 *   DECONV    gx = gy * [gy > 0]                      (Zeiler & Fergus: the deconvnet rule ignores
 *                                                      the forward input, so the max clip too)
 */
#include "kutil.h"
#include "isa.h"
#include "kmath.h"

#include <math.h>

#define ACT_PAR_MIN 32768 /* elements below which one thread is faster */
#define ACT_CHUNK 16384   /* elements per parallel work item (64 KiB of floats) */

/* Attributes parsed once per node (unused fields keep their defaults). */
typedef struct act_params {
    float alpha, beta, gamma;
    float lo, hi;       /* Clip attributes (opset < 11), or +-inf */
    int has_lo, has_hi; /* Clip: the attribute was given */
} act_params;

/* What a kernel sees: the parameters plus the resolved Clip bounds and the backward rule. */
typedef struct act_args {
    float alpha, beta, gamma, lo, hi;
    gc_rule rule;
    int assign; /* backward into a fresh gx: '=' (only bw functions of unary_def.bw_assigns) */
    int isa;    /* GC_ISA_*: the instruction set the kernel may use (isa.h) */
} act_args;

typedef void (*fw_f32)(float *y, const float *x, int64_t n, const act_args *a);
typedef void (*fw_i64)(int64_t *y, const int64_t *x, int64_t n, const act_args *a);
/* v is the forward input or output, as the op's unary_def says. */
typedef void (*bw_f32)(float *gx, const float *gy, const float *v, int64_t n, const act_args *a);

enum { FROM_IN, FROM_OUT, FROM_NONE };

typedef struct unary_def {
    fw_f32 f32;
    fw_i64 i64; /* NULL: float32 only */
    bw_f32 bw;
    int from;   /* what bw reads: FROM_IN, FROM_OUT or FROM_NONE */
    /* Sigmoid only: y = f(x) and m = x * y in one pass (a following Mul fused in: SiLU); y is
     * NULL when only m is kept (k.fuse.silu), and then silu_bw applies the pair's whole VJP */
    void (*f32_mul)(float *y, float *m, const float *x, int64_t n, int isa);
    void (*silu_bw)(float *gx, const float *gm, const float *x, int64_t n, int assign, int isa);
    int bw_assigns; /* bw honours act_args.assign; else a fresh gx is zeroed chunk by chunk first */
} unary_def;

/* ------------------------------------------------------------------------------------------ */
/* Drivers                                                                                      */

static act_args args_of(const gc_kctx *k) {
    const act_params *p = k->params;
    act_args a = {1.0f, 0.0f, 1.0f, -INFINITY, INFINITY, k->rule, 0, gc_kisa(k)};
    if (p) {
        a.alpha = p->alpha;
        a.beta = p->beta;
        a.gamma = p->gamma;
        a.lo = p->lo;
        a.hi = p->hi;
    }
    return a;
}

static const char *dtype_name(gc_dtype t) {
    return t == GC_F32 ? "float32" : t == GC_I64 ? "int64" : t == GC_BOOL ? "bool" : "undefined";
}

/* Same shape and dtype as input 0; the dtype must be one the op handles. */
static gcam_status same_infer(gc_kctx *k, int f32, int i64, int b8) {
    if (k->n_in < 1 || !k->in[0]) return gc_kfail(k, GCAM_E_FORMAT, "input 0 is missing");
    if (k->n_out < 1 || !k->out[0]) return gc_kfail(k, GCAM_E_FORMAT, "output 0 is missing");
    gc_dtype t = k->in[0]->dtype;
    if (!((t == GC_F32 && f32) || (t == GC_I64 && i64) || (t == GC_BOOL && b8)))
        return gc_kfail(k, GCAM_E_UNSUPPORTED, "input type %s not supported", dtype_name(t));
    k->out[0]->dtype = t;
    k->out[0]->shape = k->in[0]->shape;
    return GCAM_OK;
}

static gcam_status unary_infer(gc_kctx *k, const unary_def *d) {
    return same_infer(k, 1, d->i64 != 0, 0);
}

static gcam_status gelu_forward(gc_kctx *k, int nt);

static gcam_status unary_forward(gc_kctx *k, const unary_def *d) {
    const act_args a = args_of(k);
    const int64_t n = gc_numel(k->in[0]), nchunks = (n + ACT_CHUNK - 1) / ACT_CHUNK;
    const int nt = n >= ACT_PAR_MIN ? GC_MAX(k->nthreads, 1) : 1;
    if (k->in[0]->dtype == GC_I64) {
        int64_t *y = k->out[0]->data;
        const int64_t *x = k->in[0]->data;
        d->i64(y, x, n, &a); /* int64 tensors are small shape computations */
        return GCAM_OK;
    }
    if (k->fuse.gelu_x) return gelu_forward(k, nt);
    float *y = k->out[0]->data;
    const float *x = k->in[0]->data;
    if (k->fuse.mul) { /* SiLU: the Mul x * f(x) fused in (plan.c); the Mul's output is fuse.mul */
        if (!d->f32_mul || k->fuse.mul->dtype != GC_F32 || gc_numel(k->fuse.mul) != n)
            return gc_kfail(k, GCAM_E_INTERNAL, "fused Mul not supported here");
        float *m = k->fuse.mul->data;
        if (k->fuse.silu) y = NULL; /* the sigmoid has no buffer */
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int64_t c = 0; c < nchunks; c++) {
            int64_t lo = c * ACT_CHUNK;
            d->f32_mul(y ? y + lo : NULL, m + lo, x + lo, GC_MIN(ACT_CHUNK, n - lo), a.isa);
        }
        return GCAM_OK;
    }
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t lo = c * ACT_CHUNK;
        d->f32(y + lo, x + lo, GC_MIN(ACT_CHUNK, n - lo), &a);
    }
    return GCAM_OK;
}

static gcam_status unary_backward(gc_kctx *k, const unary_def *d) {
    if (!k->gout[0] || !k->gin[0]) return GCAM_OK;
    act_args a = args_of(k);
    const int64_t n = gc_numel(k->in[0]), nchunks = (n + ACT_CHUNK - 1) / ACT_CHUNK;
    const int nt = n >= ACT_PAR_MIN ? GC_MAX(k->nthreads, 1) : 1;
    float *gx = k->gin[0]->data;
    const float *gy = k->gout[0]->data;
    const float *v = d->from == FROM_IN ? k->in[0]->data : d->from == FROM_OUT ? k->out[0]->data : NULL;
    const int fresh = (int)(k->gin_fresh & 1);
    if (k->fuse.silu) { /* gy is the fused Mul's output gradient; the sigmoid is recomputed from x */
        if (!d->silu_bw) return gc_kfail(k, GCAM_E_INTERNAL, "fused SiLU not supported here");
        const float *x = k->in[0]->data;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int64_t c = 0; c < nchunks; c++) {
            int64_t lo = c * ACT_CHUNK;
            d->silu_bw(gx + lo, gy + lo, x + lo, GC_MIN(ACT_CHUNK, n - lo), fresh, a.isa);
        }
        return GCAM_OK;
    }
    a.assign = fresh && d->bw_assigns;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t lo = c * ACT_CHUNK, len = GC_MIN(ACT_CHUNK, n - lo);
        if (fresh && !d->bw_assigns) memset(gx + lo, 0, (size_t)len * sizeof(float)); /* while in cache */
        d->bw(gx + lo, gy + lo, v ? v + lo : NULL, len, &a);
    }
    return GCAM_OK;
}

/* gx += gy */
static void pass_bw(float *gx, const float *gy, const float *v, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) gx[i] += gy[i];
}

/* The select on bit patterns and e^x live in kmath.h, shared with the activations fused into
 * Conv's writes (sgemm.c's epilogue, conv.c), which must give these kernels' bits. */
GC_INLINE float bsel(int c, float a, float b) { return gc_bsel(c, a, b); }
GC_INLINE float exp_fast(float x) { return gc_exp_fast(x); }

/* tanh: the Cephes odd polynomial below |x| = 0.625, 1 - 2 / (e^2|x| + 1) above (<= 2.2 ulp). */
GC_INLINE float tanh_fast(float x) {
    float ax = fabsf(x), z = x * x;
    float ps = -5.70498872745e-3f;
    ps = ps * z + 2.06390887954e-2f;
    ps = ps * z - 5.37397155531e-2f;
    ps = ps * z + 1.33314422036e-1f;
    ps = ps * z - 3.33332819422e-1f;
    ps = ps * z * x + x;
    float pl = 1.0f - 2.0f / (exp_fast(2.0f * ax) + 1.0f);
    pl = bsel(x < 0.0f, -pl, pl);
    return bsel(ax < 0.625f, ps, pl);
}

/* Attribute parsing: float attributes must be finite. */
static gcam_status parse_floats(gc_node *n, gc_err *err, const char *name1, float def1,
                                const char *name2, float def2, const char *name3, float def3) {
    act_params *p = malloc(sizeof *p);
    if (!p) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
    *p = (act_params){1.0f, 0.0f, 1.0f, -INFINITY, INFINITY, 0, 0};
    const char *names[3] = {name1, name2, name3};
    const float defs[3] = {def1, def2, def3};
    float *dst[3] = {&p->alpha, &p->beta, &p->gamma};
    for (int i = 0; i < 3; i++) {
        if (!names[i]) continue;
        const gc_attr *at = gc_attr_find(n, names[i]);
        if (at && at->type != GC_ATTR_FLOAT && at->type != GC_ATTR_INT) {
            free(p);
            return gc_fail(err, GCAM_E_FORMAT, "%s: attribute %s must be a float", n->op_type, names[i]);
        }
        *dst[i] = gc_attr_float(n, names[i], defs[i]);
        if (!isfinite(*dst[i])) {
            free(p);
            return gc_fail(err, GCAM_E_FORMAT, "%s: attribute %s is not finite", n->op_type, names[i]);
        }
    }
    free(n->params);
    n->params = p;
    return GCAM_OK;
}

/* Defines <Name>_infer/forward/backward and gc_def_<Name> around kernels lname_fw / lname_bw. */
#define UNARY_OP(Name, lname, min_op, parse_fn, fw64, from_) UNARY_OP_A(Name, lname, min_op, parse_fn, fw64, from_, 0)
/* assigns: lname##_bw honours act_args.assign */
#define UNARY_OP_A(Name, lname, min_op, parse_fn, fw64, from_, assigns)                            \
    static const unary_def lname##_def = {lname##_fw, fw64, lname##_bw, from_, NULL, NULL, assigns}; \
    static gcam_status Name##_infer(gc_kctx *k) { return unary_infer(k, &lname##_def); }          \
    static gcam_status Name##_forward(gc_kctx *k) { return unary_forward(k, &lname##_def); }      \
    static gcam_status Name##_backward(gc_kctx *k) { return unary_backward(k, &lname##_def); }    \
    const gc_opdef gc_def_##Name = {.name = #Name, .min_opset = min_op, .parse = parse_fn,         \
                                    .infer = Name##_infer, .forward = Name##_forward,              \
                                    .backward = Name##_backward, .bw_in = (from_) == FROM_IN,      \
                                    .bw_out = (from_) == FROM_OUT, .diff_in = 1, .bw_assign = 1};

/* ------------------------------------------------------------------------------------------ */
/* Relu: y = max(x, 0). Backward from the output (y > 0 <=> x > 0), honouring k->rule.        */

static void relu_fw(float *y, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i]; /* NaN propagates */
}
static void relu_bw(float *gx, const float *gy, const float *y, int64_t n, const act_args *a) {
    gc_relu_vjp_axpy(gx, gy, y, n, 1.0f, a->rule, a->assign);
}
UNARY_OP_A(Relu, relu, 1, NULL, NULL, FROM_OUT, 1)

/* ------------------------------------------------------------------------------------------ */
/* LeakyRelu: y = x >= 0 ? x : alpha x (alpha 0.01)                                             */

static gcam_status leakyrelu_parse(gc_node *n, gc_err *e) {
    return parse_floats(n, e, "alpha", 0.01f, NULL, 0, NULL, 0);
}
static void leakyrelu_fw(float *y, const float *x, int64_t n, const act_args *a) {
    const float s = a->alpha;
    for (int64_t i = 0; i < n; i++) y[i] = bsel(x[i] < 0.0f, s * x[i], x[i]);
}
static void leakyrelu_bw(float *gx, const float *gy, const float *x, int64_t n, const act_args *a) {
    const float s = a->alpha;
    for (int64_t i = 0; i < n; i++) {
        const float g = gy[i];
        gx[i] += bsel(x[i] > 0.0f, g, s * g);
    }
}
UNARY_OP(LeakyRelu, leakyrelu, 1, leakyrelu_parse, NULL, FROM_IN)

/* ------------------------------------------------------------------------------------------ */
/* Elu: y = x > 0 ? x : alpha (e^x - 1) (alpha 1)                                               */

static gcam_status elu_parse(gc_node *n, gc_err *e) {
    return parse_floats(n, e, "alpha", 1.0f, NULL, 0, NULL, 0);
}
static void elu_fw(float *y, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : a->alpha * expm1f(x[i]);
}
static void elu_bw(float *gx, const float *gy, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) {
        const float g = gy[i];
        gx[i] += x[i] > 0.0f ? g : g * a->alpha * exp_fast(x[i]);
    }
}
UNARY_OP(Elu, elu, 1, elu_parse, NULL, FROM_IN)

/* ------------------------------------------------------------------------------------------ */
/* Selu: y = gamma (x > 0 ? x : alpha (e^x - 1))                                               */

static gcam_status selu_parse(gc_node *n, gc_err *e) {
    return parse_floats(n, e, "alpha", 1.67326319217681884765625f, NULL, 0, "gamma",
                        1.05070102214813232421875f);
}
static void selu_fw(float *y, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++)
        y[i] = a->gamma * (x[i] > 0.0f ? x[i] : a->alpha * expm1f(x[i]));
}
static void selu_bw(float *gx, const float *gy, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++)
        gx[i] += gy[i] * a->gamma * (x[i] > 0.0f ? 1.0f : a->alpha * exp_fast(x[i]));
}
UNARY_OP(Selu, selu, 1, selu_parse, NULL, FROM_IN)

/* ------------------------------------------------------------------------------------------ */
/* Celu: y = max(0, x) + min(0, alpha (e^(x/alpha) - 1)) (alpha 1, nonzero)                    */

static gcam_status celu_parse(gc_node *n, gc_err *e) {
    gcam_status st = parse_floats(n, e, "alpha", 1.0f, NULL, 0, NULL, 0);
    if (!st && ((act_params *)n->params)->alpha == 0.0f)
        return gc_fail(e, GCAM_E_FORMAT, "Celu: attribute alpha must not be 0");
    return st;
}
static void celu_fw(float *y, const float *x, int64_t n, const act_args *a) {
    const float al = a->alpha, inv = 1.0f / a->alpha;
    for (int64_t i = 0; i < n; i++) {
        const float e = al * expm1f(x[i] * inv);
        y[i] = (x[i] > 0.0f ? x[i] : 0.0f) + (e < 0.0f ? e : 0.0f);
    }
}
static void celu_bw(float *gx, const float *gy, const float *x, int64_t n, const act_args *a) {
    const float al = a->alpha, inv = 1.0f / a->alpha;
    for (int64_t i = 0; i < n; i++) {
        float d = x[i] > 0.0f ? 1.0f : 0.0f;
        if (al * expm1f(x[i] * inv) < 0.0f) d += exp_fast(x[i] * inv);
        gx[i] += gy[i] * d;
    }
}
UNARY_OP(Celu, celu, 12, celu_parse, NULL, FROM_IN)

/* ------------------------------------------------------------------------------------------ */
/* ThresholdedRelu: y = x > alpha ? x : 0 (alpha 1)                                            */

static gcam_status thresholdedrelu_parse(gc_node *n, gc_err *e) {
    return parse_floats(n, e, "alpha", 1.0f, NULL, 0, NULL, 0);
}
static void thresholdedrelu_fw(float *y, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > a->alpha ? x[i] : 0.0f;
}
static void thresholdedrelu_bw(float *gx, const float *gy, const float *x, int64_t n,
                               const act_args *a) {
    for (int64_t i = 0; i < n; i++) {
        const float g = gy[i];
        gx[i] += x[i] > a->alpha ? g : 0.0f;
    }
}
UNARY_OP(ThresholdedRelu, thresholdedrelu, 10, thresholdedrelu_parse, NULL, FROM_IN)

/* ------------------------------------------------------------------------------------------ */
/* Sigmoid: y = 1 / (1 + e^-x); dy/dx = y (1 - y)                                              */

/* The loops below are built per instruction set (GC_ISA_FN, act_args.isa): exp_fast is compute
 * bound, so 16 lanes on AVX-512 (EfficientNet's SiLU and SE gates; Guided Backprop contexts keep
 * them unfused). The same operations on every path: bit-identical. */
GC_INLINE float sigmoid1(float x) {
    float e = exp_fast(-fabsf(x)), r = 1.0f / (1.0f + e); /* no overflow for large |x| */
    return bsel(x >= 0.0f, r, e * r);
}
GC_INLINE void sigmoid_rows(float *restrict y, const float *restrict x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = sigmoid1(x[i]);
}
GC_ISA_FN(sigmoid_isa, sigmoid_rows, (float *restrict y, const float *restrict x, int64_t n), (y, x, n))
static void sigmoid_fw(float *y, const float *x, int64_t n, const act_args *a) { sigmoid_isa_tab[a->isa](y, x, n); }
GC_INLINE void sigmoid_bw_rows(float *restrict gx, const float *restrict gy, const float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) gx[i] += gy[i] * y[i] * (1.0f - y[i]);
}
GC_ISA_FN(sigmoid_bw_isa, sigmoid_bw_rows, (float *restrict gx, const float *restrict gy, const float *restrict y,
                                            int64_t n), (gx, gy, y, n))
static void sigmoid_bw(float *gx, const float *gy, const float *y, int64_t n, const act_args *a) {
    sigmoid_bw_isa_tab[a->isa](gx, gy, y, n);
}
/* SiLU (EfficientNet): y = sigmoid(x) and m = x * y, bit-identical to Sigmoid then Mul; y NULL:
 * m only (two loops, so each vectorises without a test per element) */
GC_INLINE void sigmoid_mul_rows(float *restrict y, float *restrict m, const float *restrict x, int64_t n) {
    if (!y) {
        for (int64_t i = 0; i < n; i++) m[i] = x[i] * sigmoid1(x[i]);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        const float s = sigmoid1(x[i]);
        y[i] = s;
        m[i] = x[i] * s;
    }
}
GC_ISA_FN(sigmoid_mul_isa, sigmoid_mul_rows, (float *restrict y, float *restrict m, const float *restrict x, int64_t n),
          (y, m, x, n))
static void sigmoid_mul_fw(float *y, float *m, const float *x, int64_t n, int isa) {
    sigmoid_mul_isa_tab[isa](y, m, x, n);
}
/* d(x s(x))/dx = s + x s (1 - s) = s (1 + x (1 - s)): one pass over gm and x instead of the
 * Mul's VJP (gx += gm s, gs = gm x) and the Sigmoid's (gx += gs s (1 - s)) over three tensors */
GC_INLINE void silu_bw_rows(float *restrict gx, const float *restrict gm, const float *restrict x, int64_t n,
                            int assign) {
    if (assign) {
        for (int64_t i = 0; i < n; i++) {
            const float s = sigmoid1(x[i]);
            gx[i] = gm[i] * (s * (1.0f + x[i] * (1.0f - s)));
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        const float s = sigmoid1(x[i]);
        gx[i] += gm[i] * (s * (1.0f + x[i] * (1.0f - s)));
    }
}
GC_ISA_FN(silu_bw_isa, silu_bw_rows, (float *restrict gx, const float *restrict gm, const float *restrict x, int64_t n,
                                      int assign), (gx, gm, x, n, assign))
static void silu_bw(float *gx, const float *gm, const float *x, int64_t n, int assign, int isa) {
    silu_bw_isa_tab[isa](gx, gm, x, n, assign);
}
static const unary_def sigmoid_def = {sigmoid_fw, NULL, sigmoid_bw, FROM_OUT, sigmoid_mul_fw, silu_bw, 0};
static gcam_status Sigmoid_infer(gc_kctx *k) { return unary_infer(k, &sigmoid_def); }
static gcam_status Sigmoid_forward(gc_kctx *k) { return unary_forward(k, &sigmoid_def); }
static gcam_status Sigmoid_backward(gc_kctx *k) { return unary_backward(k, &sigmoid_def); }
const gc_opdef gc_def_Sigmoid = {.name = "Sigmoid", .min_opset = 1, .infer = Sigmoid_infer,
                                 .forward = Sigmoid_forward, .backward = Sigmoid_backward, .bw_out = 1,
                                 .diff_in = 1, .bw_assign = 1};

/* ------------------------------------------------------------------------------------------ */
/* HardSigmoid: y = clamp(alpha x + beta, 0, 1) (alpha 0.2, beta 0.5); dy/dx = alpha inside    */

static gcam_status hardsigmoid_parse(gc_node *n, gc_err *e) {
    return parse_floats(n, e, "alpha", 0.2f, "beta", 0.5f, NULL, 0);
}
static void hardsigmoid_fw(float *y, const float *x, int64_t n, const act_args *a) {
    /* ternaries, not fminf/fmaxf: those are libm calls unless -ffinite-math-only */
    const float al = a->alpha, be = a->beta;
    for (int64_t i = 0; i < n; i++) {
        float v = al * x[i] + be;
        v = bsel(v < 1.0f, v, 1.0f);
        y[i] = bsel(v > 0.0f, v, 0.0f);
    }
}
static void hardsigmoid_bw(float *gx, const float *gy, const float *y, int64_t n, const act_args *a) {
    const float al = a->alpha;
    for (int64_t i = 0; i < n; i++) {
        const float g = gy[i];
        gx[i] += bsel((y[i] > 0.0f) & (y[i] < 1.0f), al * g, 0.0f);
    }
}
UNARY_OP(HardSigmoid, hardsigmoid, 1, hardsigmoid_parse, NULL, FROM_OUT)

/* ------------------------------------------------------------------------------------------ */
/* HardSwish: y = x clamp(x/6 + 1/2, 0, 1); dy/dx = 0 below -3, 1 above 3, x/3 + 1/2 between */

static void hardswish_fw(float *y, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] * (1.0f / 6.0f) + 0.5f;
        v = bsel(v < 1.0f, v, 1.0f);
        y[i] = x[i] * bsel(v > 0.0f, v, 0.0f);
    }
}
static void hardswish_bw(float *gx, const float *gy, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) {
        const float xi = x[i];
        float d = bsel(xi > 3.0f, 1.0f, xi * (1.0f / 3.0f) + 0.5f);
        gx[i] += gy[i] * bsel(xi < -3.0f, 0.0f, d);
    }
}
UNARY_OP(HardSwish, hardswish, 14, NULL, NULL, FROM_IN)

/* ------------------------------------------------------------------------------------------ */
/* Tanh: dy/dx = 1 - y^2                                                                        */

GC_INLINE void tanh_rows(float *restrict y, const float *restrict x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = tanh_fast(x[i]);
}
GC_ISA_FN(tanh_isa, tanh_rows, (float *restrict y, const float *restrict x, int64_t n), (y, x, n))
static void tanh_fw(float *y, const float *x, int64_t n, const act_args *a) { tanh_isa_tab[a->isa](y, x, n); }
static void tanh_bw(float *gx, const float *gy, const float *y, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) gx[i] += gy[i] * (1.0f - y[i] * y[i]);
}
UNARY_OP(Tanh, tanh, 1, NULL, NULL, FROM_OUT)

/* ------------------------------------------------------------------------------------------ */
/* Erf: dy/dx = 2/sqrt(pi) e^(-x^2)                                                              */

/* erf(x) without a libm call, so loops over it vectorise: below |x| = 0.921875, x + x S(x^2)
 * (S = erf(x)/x - 1, degree 5: the final add rounds once, near x); above, 1 - e^Q(|x|) with Q a
 * degree-8 fit of log erfc on [0.921875, 4] (|x| clamped to 4, where erf rounds to 1). The
 * coefficients are weighted least-squares (Lawson) fits in double; against erf in double the
 * result is within 1.5 ulp over every float (test_ops_elem checks a sweep). erf(-0) = -0,
 * +-inf gives +-1, NaN stays NaN. */
GC_INLINE float erf_fast(float x) {
    const float a = fabsf(x), t = x * x;
    float s = -5.990851787e-04f;
    s = s * t + 4.993179813e-03f;
    s = s * t - 2.676661685e-02f;
    s = s * t + 1.128181592e-01f;
    s = s * t - 3.761249483e-01f;
    s = s * t + 1.283791512e-01f;
    const float small = x + x * s;
    const float c = bsel(a > 4.0f, 4.0f, a); /* NaN stays NaN */
    float q = -4.377796756e-07f;
    q = q * c - 1.547503052e-05f;
    q = q * c + 4.035897146e-04f;
    q = q * c - 4.076232202e-03f;
    q = q * c + 2.494118735e-02f;
    q = q * c - 1.080700383e-01f;
    q = q * c - 6.334986091e-01f;
    q = q * c - 1.129453540e+00f;
    q = q * c + 1.640031551e-04f;
    const float big = 1.0f - exp_fast(q);
    return bsel(a < 0.921875f, small, bsel(x < 0.0f, -big, big));
}

GC_INLINE void erf_rows(float *restrict y, const float *restrict x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = erf_fast(x[i]);
}
GC_ISA_FN(erf_rows_isa, erf_rows, (float *restrict y, const float *restrict x, int64_t n), (y, x, n))

GC_INLINE void erf_bw_rows(float *restrict gx, const float *restrict gy, const float *restrict x, int64_t n,
                           int assign) {
    const float c = 1.12837916709551257f; /* 2 / sqrt(pi) */
    if (assign)
        for (int64_t i = 0; i < n; i++) gx[i] = gy[i] * c * exp_fast(-x[i] * x[i]);
    else
        for (int64_t i = 0; i < n; i++) gx[i] += gy[i] * c * exp_fast(-x[i] * x[i]);
}
GC_ISA_FN(erf_bw_isa, erf_bw_rows, (float *restrict gx, const float *restrict gy, const float *restrict x, int64_t n,
                                    int assign), (gx, gy, x, n, assign))

static void erf_fw(float *y, const float *x, int64_t n, const act_args *a) { erf_rows_isa_tab[a->isa](y, x, n); }
static void erf_bw(float *gx, const float *gy, const float *x, int64_t n, const act_args *a) {
    erf_bw_isa_tab[a->isa](gx, gy, x, n, a->assign);
}

/* GELU as exported (x / c0, Erf, + c1, times x, times c2): the same float operations in the same
 * order as the five unfused steps, so the result is bit-identical to theirs. */
GC_INLINE void gelu_rows(float *restrict y, const float *restrict x, int64_t n, float c0, float c1, float c2) {
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] * (erf_fast(x[i] / c0) + c1)) * c2;
}
GC_ISA_FN(gelu_rows_isa, gelu_rows, (float *restrict y, const float *restrict x, int64_t n, float c0, float c1,
                                     float c2), (y, x, n, c0, c1, c2))

/* The same after x = (Linear's output) + b, b (C) along rows of C: the unfused Add's rounding. */
GC_INLINE void gelu_bias_rows(float *restrict y, const float *restrict x, const float *restrict b, int64_t rows,
                              int64_t C, float c0, float c1, float c2) {
    for (int64_t r = 0; r < rows; r++, x += C, y += C)
        for (int64_t j = 0; j < C; j++) {
            const float v = x[j] + b[j];
            y[j] = (v * (erf_fast(v / c0) + c1)) * c2;
        }
}
GC_ISA_FN(gelu_bias_isa, gelu_bias_rows, (float *restrict y, const float *restrict x, const float *restrict b,
                                          int64_t rows, int64_t C, float c0, float c1, float c2),
          (y, x, b, rows, C, c0, c1, c2))

static gcam_status gelu_forward(gc_kctx *k, int nt) {
    const gc_tensor *xt = k->fuse.gelu_x;
    gc_tensor *yt = k->fuse.gelu_y;
    const int64_t n = gc_numel(xt), nchunks = (n + ACT_CHUNK - 1) / ACT_CHUNK;
    if (!yt || xt->dtype != GC_F32 || yt->dtype != GC_F32 || gc_numel(yt) != n)
        return gc_kfail(k, GCAM_E_INTERNAL, "fused GELU not supported here");
    const float *x = xt->data; /* (n) */
    float *y = yt->data;       /* (n) */
    const float *c = k->fuse.gelu_c;
    const int isa = gc_kisa(k);
    if (k->fuse.gelu_b) { /* rows of C, a row's share of the work split as above */
        const gc_tensor *bt = k->fuse.gelu_b;
        const int64_t C = gc_numel(bt), rows = C > 0 ? n / C : 0, per = GC_MAX(1, ACT_CHUNK / GC_MAX(C, 1));
        if (bt->dtype != GC_F32 || C <= 0 || rows * C != n) return gc_kfail(k, GCAM_E_INTERNAL, "fused bias not supported here");
        const float *b = bt->data; /* (C) */
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int64_t r = 0; r < rows; r += per)
            gelu_bias_isa_tab[isa](y + r * C, x + r * C, b, GC_MIN(per, rows - r), C, c[0], c[1], c[2]);
        return GCAM_OK;
    }
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t ch = 0; ch < nchunks; ch++) {
        int64_t lo = ch * ACT_CHUNK;
        gelu_rows_isa_tab[isa](y + lo, x + lo, GC_MIN(ACT_CHUNK, n - lo), c[0], c[1], c[2]);
    }
    return GCAM_OK;
}
UNARY_OP_A(Erf, erf, 9, NULL, NULL, FROM_IN, 1)

/* ------------------------------------------------------------------------------------------ */
/* Softplus: y = ln(1 + e^x); dy/dx = sigmoid(x) = 1 - e^-y, so backward reads the output     */

static void softplus_fw(float *y, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] > 0.0f ? x[i] : 0.0f) + log1pf(expf(-fabsf(x[i])));
}
static void softplus_bw(float *gx, const float *gy, const float *y, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) gx[i] += gy[i] * -expm1f(-y[i]);
}
UNARY_OP(Softplus, softplus, 1, NULL, NULL, FROM_OUT)

/* ------------------------------------------------------------------------------------------ */
/* Softsign: y = x / (1 + |x|); dy/dx = 1 / (1 + |x|)^2                                         */

static void softsign_fw(float *y, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + fabsf(x[i]));
}
static void softsign_bw(float *gx, const float *gy, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) {
        float d = 1.0f + fabsf(x[i]);
        gx[i] += gy[i] / (d * d);
    }
}
UNARY_OP(Softsign, softsign, 1, NULL, NULL, FROM_IN)

/* ------------------------------------------------------------------------------------------ */
/* Sqrt (dy/dx = 1 / 2y), Exp (dy/dx = y), Log (1/x), Reciprocal (-y^2)                       */

static void sqrt_fw(float *y, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) y[i] = sqrtf(x[i]);
}
static void sqrt_bw(float *gx, const float *gy, const float *y, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) gx[i] += 0.5f * gy[i] / y[i];
}
UNARY_OP(Sqrt, sqrt, 1, NULL, NULL, FROM_OUT)

static void exp_fw(float *y, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) y[i] = exp_fast(x[i]);
}
static void exp_bw(float *gx, const float *gy, const float *y, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) gx[i] += gy[i] * y[i];
}
UNARY_OP(Exp, exp, 1, NULL, NULL, FROM_OUT)

static void log_fw(float *y, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) y[i] = logf(x[i]);
}
static void log_bw(float *gx, const float *gy, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) gx[i] += gy[i] / x[i];
}
UNARY_OP(Log, log, 1, NULL, NULL, FROM_IN)

static void reciprocal_fw(float *y, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) y[i] = 1.0f / x[i];
}
static void reciprocal_bw(float *gx, const float *gy, const float *y, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) gx[i] -= gy[i] * y[i] * y[i];
}
UNARY_OP(Reciprocal, reciprocal, 1, NULL, NULL, FROM_OUT)

/* ------------------------------------------------------------------------------------------ */
/* Sin, Cos                                                                                      */

static void sin_fw(float *y, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) y[i] = sinf(x[i]);
}
static void sin_bw(float *gx, const float *gy, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) gx[i] += gy[i] * cosf(x[i]);
}
UNARY_OP(Sin, sin, 7, NULL, NULL, FROM_IN)

static void cos_fw(float *y, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) y[i] = cosf(x[i]);
}
static void cos_bw(float *gx, const float *gy, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) gx[i] -= gy[i] * sinf(x[i]);
}
UNARY_OP(Cos, cos, 7, NULL, NULL, FROM_IN)

/* ------------------------------------------------------------------------------------------ */
/* Neg, Abs (also int64, for shape arithmetic)                                                  */

static void neg_fw(float *y, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) y[i] = -x[i];
}
static void neg_i64(int64_t *y, const int64_t *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) y[i] = (int64_t)(0 - (uint64_t)x[i]); /* wraps, no UB */
}
static void neg_bw(float *gx, const float *gy, const float *v, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) gx[i] -= gy[i];
}
UNARY_OP(Neg, neg, 1, NULL, neg_i64, FROM_NONE)

static void abs_fw(float *y, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) y[i] = fabsf(x[i]);
}
static void abs_i64(int64_t *y, const int64_t *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] < 0 ? (int64_t)(0 - (uint64_t)x[i]) : x[i];
}
static void abs_bw(float *gx, const float *gy, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) {
        const float g = gy[i];
        gx[i] += x[i] > 0.0f ? g : x[i] < 0.0f ? -g : 0.0f;
    }
}
UNARY_OP(Abs, abs, 1, NULL, abs_i64, FROM_IN)

/* ------------------------------------------------------------------------------------------ */
/* Floor, Ceil: float32, no gradient (zero almost everywhere; the op is not differentiable)   */

static void floor_fw(float *y, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) y[i] = floorf(x[i]);
}
static const unary_def floor_def = {floor_fw, NULL, NULL, FROM_NONE, NULL, NULL, 0};
static gcam_status Floor_infer(gc_kctx *k) { return unary_infer(k, &floor_def); }
static gcam_status Floor_forward(gc_kctx *k) { return unary_forward(k, &floor_def); }
const gc_opdef gc_def_Floor = {.name = "Floor", .min_opset = 1, .infer = Floor_infer,
                               .forward = Floor_forward};

static void ceil_fw(float *y, const float *x, int64_t n, const act_args *a) {
    for (int64_t i = 0; i < n; i++) y[i] = ceilf(x[i]);
}
static const unary_def ceil_def = {ceil_fw, NULL, NULL, FROM_NONE, NULL, NULL, 0};
static gcam_status Ceil_infer(gc_kctx *k) { return unary_infer(k, &ceil_def); }
static gcam_status Ceil_forward(gc_kctx *k) { return unary_forward(k, &ceil_def); }
const gc_opdef gc_def_Ceil = {.name = "Ceil", .min_opset = 1, .infer = Ceil_infer,
                              .forward = Ceil_forward};

/* ------------------------------------------------------------------------------------------ */
/* Not (BOOL)                                                                                   */

static gcam_status Not_infer(gc_kctx *k) { return same_infer(k, 0, 0, 1); }
static gcam_status Not_forward(gc_kctx *k) {
    uint8_t *y = k->out[0]->data;
    const uint8_t *x = k->in[0]->data;
    int64_t n = gc_numel(k->in[0]);
    for (int64_t i = 0; i < n; i++) y[i] = !x[i];
    return GCAM_OK;
}
const gc_opdef gc_def_Not = {.name = "Not", .min_opset = 1, .infer = Not_infer,
                             .forward = Not_forward};

/* ------------------------------------------------------------------------------------------ */
/* Identity: any dtype; gradient passes through                                                */

static gcam_status Identity_infer(gc_kctx *k) { return same_infer(k, 1, 1, 1); }
static gcam_status Identity_forward(gc_kctx *k) {
    memcpy(k->out[0]->data, k->in[0]->data, (size_t)gc_numel(k->in[0]) * gc_dtype_size(k->in[0]->dtype));
    return GCAM_OK;
}
static const unary_def pass_def = {NULL, NULL, pass_bw, FROM_NONE, NULL, NULL, 0};
static gcam_status Identity_backward(gc_kctx *k) {
    if (k->in[0]->dtype != GC_F32) return GCAM_OK;
    return unary_backward(k, &pass_def);
}
const gc_opdef gc_def_Identity = {.name = "Identity", .min_opset = 1, .infer = Identity_infer,
                                  .forward = Identity_forward, .backward = Identity_backward,
                                  .diff_in = 1};

/* ------------------------------------------------------------------------------------------ */
/* Dropout, inference only: y = x; the optional mask is all true (BOOL from opset 10, the
 * input's type before). Opset 12+ inputs: ratio (ignored), training_mode (absent or constant
 * false, or constant true with a constant ratio of 0; real training would need random masks,
 * which a gradient explanation has no use for).                                               */

static gcam_status Dropout_infer(gc_kctx *k) {
    gcam_status st = same_infer(k, 1, 0, 0);
    if (st) return st;
    if (k->n_in > 2 && k->in[2]) {
        const gc_tensor *t = k->in[2];
        if (t->dtype != GC_BOOL || gc_numel(t) != 1)
            return gc_kfail(k, GCAM_E_FORMAT, "training_mode must be a bool scalar");
        if (!t->data)
            return gc_kfail(k, GCAM_E_UNSUPPORTED, "training_mode must be a constant");
        const gc_tensor *r = k->in[1]; /* training with ratio 0 is still the identity */
        int zero_ratio = r && r->data && r->dtype == GC_F32 && gc_numel(r) == 1 &&
                         *(const float *)r->data == 0.0f;
        if (((const uint8_t *)t->data)[0] && !zero_ratio)
            return gc_kfail(k, GCAM_E_UNSUPPORTED, "training mode (random dropout) is not supported");
    }
    if (k->n_out > 1 && k->out[1]) {
        k->out[1]->dtype = k->node->opset >= 10 ? GC_BOOL : k->in[0]->dtype;
        k->out[1]->shape = k->in[0]->shape;
    }
    return GCAM_OK;
}
static gcam_status Dropout_forward(gc_kctx *k) {
    int64_t n = gc_numel(k->in[0]);
    memcpy(k->out[0]->data, k->in[0]->data, (size_t)n * sizeof(float));
    if (k->n_out > 1 && k->out[1]) {
        if (k->out[1]->dtype == GC_BOOL) {
            memset(k->out[1]->data, 1, (size_t)n);
        } else {
            float *m = k->out[1]->data;
            for (int64_t i = 0; i < n; i++) m[i] = 1.0f;
        }
    }
    return GCAM_OK;
}
static gcam_status Dropout_backward(gc_kctx *k) { return unary_backward(k, &pass_def); }
const gc_opdef gc_def_Dropout = {.name = "Dropout", .min_opset = 1, .infer = Dropout_infer,
                                 .forward = Dropout_forward, .backward = Dropout_backward,
                                 .diff_in = 1};

/* ------------------------------------------------------------------------------------------ */
/* Clip: y = min(max(x, min), max). Bounds: attributes (opset < 11) or optional scalar inputs 1
 * and 2 (opset 11+; usually constants, but runtime scalars work too and get no gradient).
 * With min > max every output is max (as the spec). float32 and int64. Backward reads the
 * output (lo < y < hi <=> lo < x < hi) and the bounds.                                       */

static gcam_status clip_parse(gc_node *n, gc_err *e) {
    act_params *p;
    gcam_status st = parse_floats(n, e, NULL, 0, NULL, 0, NULL, 0);
    if (st) return st;
    p = n->params;
    const char *names[2] = {"min", "max"};
    float *dst[2] = {&p->lo, &p->hi};
    int *has[2] = {&p->has_lo, &p->has_hi};
    for (int i = 0; i < 2; i++) {
        const gc_attr *at = gc_attr_find(n, names[i]);
        if (!at) continue;
        if (at->type != GC_ATTR_FLOAT && at->type != GC_ATTR_INT)
            return gc_fail(e, GCAM_E_FORMAT, "Clip: attribute %s must be a float", names[i]);
        *dst[i] = gc_attr_float(n, names[i], 0.0f);
        *has[i] = 1;
        if (isnan(*dst[i])) return gc_fail(e, GCAM_E_FORMAT, "Clip: attribute %s is NaN", names[i]);
    }
    return GCAM_OK;
}

static gcam_status Clip_infer(gc_kctx *k) {
    gcam_status st = same_infer(k, 1, 1, 0);
    if (st) return st;
    const act_params *p = k->params;
    for (int i = 1; i < 3 && i < k->n_in; i++) {
        const gc_tensor *t = k->in[i];
        if (!t) continue;
        if (p && (i == 1 ? p->has_lo : p->has_hi))
            return gc_kfail(k, GCAM_E_FORMAT, "%s given both as attribute and input", i == 1 ? "min" : "max");
        if (t->dtype != k->in[0]->dtype)
            return gc_kfail(k, GCAM_E_FORMAT, "input %d has type %s, the data %s", i,
                            dtype_name(t->dtype), dtype_name(k->in[0]->dtype));
        if (gc_shape_numel(&t->shape) != 1)
            return gc_kfail(k, GCAM_E_SHAPE, "%s must be a scalar", i == 1 ? "min" : "max");
        if (t->data && t->dtype == GC_F32 && isnan(*(const float *)t->data))
            return gc_kfail(k, GCAM_E_ARG, "%s is NaN", i == 1 ? "min" : "max");
    }
    if (k->in[0]->dtype == GC_I64 && p && (p->has_lo || p->has_hi))
        return gc_kfail(k, GCAM_E_UNSUPPORTED, "min/max attributes on int64 data");
    return GCAM_OK;
}

/* Float bounds: attribute, else input, else unbounded. */
static act_args clip_args(const gc_kctx *k) {
    act_args a = args_of(k);
    if (k->n_in > 1 && k->in[1]) a.lo = *(const float *)k->in[1]->data;
    if (k->n_in > 2 && k->in[2]) a.hi = *(const float *)k->in[2]->data;
    return a;
}

/* Per instruction set (GC_ISA_FN): memory bound once the data leave L1, but MobileNet's
 * ReLU6 maps (56x56x144: 1.8 MB) fit in L2, where 16 lanes read faster than 4. */
GC_INLINE void clip_rows(float *restrict y, const float *restrict x, int64_t n, float lo, float hi) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] < lo ? lo : x[i]; /* NaN propagates */
        y[i] = v > hi ? hi : v;
    }
}
GC_ISA_FN(clip_isa, clip_rows, (float *restrict y, const float *restrict x, int64_t n, float lo, float hi),
          (y, x, n, lo, hi))
static void clip_fw(float *y, const float *x, int64_t n, const act_args *a) {
    clip_isa_tab[a->isa](y, x, n, a->lo, a->hi);
}
/* & not &&, as gc_relu_vjp_axpy: selects GCC if-converts and vectorises */
GC_INLINE void clip_bw_rows(float *restrict gx, const float *restrict gy, const float *restrict y, int64_t n,
                            float lo, float hi, gc_rule rule) {
    switch (rule) {
    case GC_RULE_GUIDED:
        for (int64_t i = 0; i < n; i++) {
            const float g = gy[i];
            gx[i] += ((y[i] > lo) & (y[i] < hi) & (g > 0.0f)) ? g : 0.0f;
        }
        break;
    case GC_RULE_DECONV: /* ignores the forward entirely, max clip included */
        for (int64_t i = 0; i < n; i++) {
            const float g = gy[i];
            gx[i] += g > 0.0f ? g : 0.0f;
        }
        break;
    default:
        for (int64_t i = 0; i < n; i++) {
            const float g = gy[i];
            gx[i] += ((y[i] > lo) & (y[i] < hi)) ? g : 0.0f;
        }
        break;
    }
}
GC_ISA_FN(clip_bw_isa, clip_bw_rows, (float *restrict gx, const float *restrict gy, const float *restrict y, int64_t n,
                                      float lo, float hi, gc_rule rule), (gx, gy, y, n, lo, hi, rule))
static void clip_bw(float *gx, const float *gy, const float *y, int64_t n, const act_args *a) {
    const gc_rule rule = a->lo == 0.0f ? a->rule : GC_RULE_STANDARD; /* the rules apply to ReLU6-style */
    clip_bw_isa_tab[a->isa](gx, gy, y, n, a->lo, a->hi, rule);
}

static gcam_status Clip_forward(gc_kctx *k) {
    const int64_t n = gc_numel(k->in[0]), nchunks = (n + ACT_CHUNK - 1) / ACT_CHUNK;
    if (k->in[0]->dtype == GC_I64) {
        int64_t lo = INT64_MIN, hi = INT64_MAX;
        if (k->n_in > 1 && k->in[1]) lo = *(const int64_t *)k->in[1]->data;
        if (k->n_in > 2 && k->in[2]) hi = *(const int64_t *)k->in[2]->data;
        int64_t *y = k->out[0]->data;
        const int64_t *x = k->in[0]->data;
        for (int64_t i = 0; i < n; i++) {
            int64_t v = x[i] < lo ? lo : x[i];
            y[i] = v > hi ? hi : v;
        }
        return GCAM_OK;
    }
    const act_args a = clip_args(k);
    const int nt = n >= ACT_PAR_MIN ? GC_MAX(k->nthreads, 1) : 1;
    float *y = k->out[0]->data;
    const float *x = k->in[0]->data;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t lo = c * ACT_CHUNK;
        clip_fw(y + lo, x + lo, GC_MIN(ACT_CHUNK, n - lo), &a);
    }
    return GCAM_OK;
}
static gcam_status Clip_backward(gc_kctx *k) {
    if (!k->gout[0] || !k->gin[0] || k->in[0]->dtype != GC_F32) return GCAM_OK;
    const act_args a = clip_args(k);
    const int64_t n = gc_numel(k->in[0]), nchunks = (n + ACT_CHUNK - 1) / ACT_CHUNK;
    const int nt = n >= ACT_PAR_MIN ? GC_MAX(k->nthreads, 1) : 1;
    float *gx = k->gin[0]->data;
    const float *gy = k->gout[0]->data, *y = k->out[0]->data;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t lo = c * ACT_CHUNK;
        clip_bw(gx + lo, gy + lo, y + lo, GC_MIN(ACT_CHUNK, n - lo), &a);
    }
    return GCAM_OK;
}
const gc_opdef gc_def_Clip = {.name = "Clip", .min_opset = 6, .parse = clip_parse,
                              .infer = Clip_infer, .forward = Clip_forward,
                              .backward = Clip_backward, .bw_in = 6, .bw_out = 1, .diff_in = 1};

/* ------------------------------------------------------------------------------------------ */
/* PRelu: y = x < 0 ? slope x : x, slope unidirectionally broadcast to X. Gradient to X only
 * (the slope is a weight). The usual per-channel slope (C,1,1) on (N,C,H,W) runs as
 * (outer, C, inner) loops; a slope varying along axes separated by broadcast axes is first
 * expanded to X's shape in scratch.                                                          */

/* x viewed as (outer, C, inner) with the slope varying along C only; 0 if impossible. */
static int prelu_layout(const gc_shape *x, const gc_shape *s, int64_t *outer, int64_t *c,
                        int64_t *inner) {
    int off = x->ndim - s->ndim, first = -1, last = -1, gap = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (x->d[i] == 1) continue;
        int64_t sd = i - off >= 0 ? s->d[i - off] : 1;
        if (sd != 1) {
            if (first >= 0 && gap) return 0;
            if (first < 0) first = i;
            last = i;
        } else if (first >= 0) {
            gap = 1;
        }
    }
    *outer = 1;
    *c = 1;
    *inner = 1;
    for (int i = 0; i < x->ndim; i++) {
        if (first < 0 || i > last) *inner *= x->d[i];
        else if (i < first) *outer *= x->d[i];
        else *c *= x->d[i];
    }
    return 1;
}

/* The slope's effective shape: before opset 7 a 1-D slope of X's channel count is per channel
 * (legacy PyTorch exports), not broadcast against X's last axis. */
static gc_shape prelu_slope_shape(const gc_kctx *k) {
    gc_shape s = k->in[1]->shape;
    const gc_shape *x = &k->in[0]->shape;
    if (k->node->opset < 7 && s.ndim == 1 && x->ndim > 2 && s.d[0] == x->d[1] && s.d[0] != x->d[x->ndim - 1]) {
        s.ndim = x->ndim - 1;
        for (int i = 1; i < s.ndim; i++) s.d[i] = 1;
    }
    return s;
}

static size_t prelu_scratch(const gc_kctx *k) {
    int64_t o, c, in;
    gc_shape ss = prelu_slope_shape(k);
    if (prelu_layout(&k->in[0]->shape, &ss, &o, &c, &in)) return 0;
    return (size_t)gc_numel(k->in[0]) * sizeof(float);
}

static gcam_status prelu_infer(gc_kctx *k) {
    gcam_status st = same_infer(k, 1, 0, 0);
    if (st) return st;
    char sx[128], ss[128];
    const gc_shape *x = &k->in[0]->shape, *s;
    if (k->n_in < 2 || !k->in[1]) return gc_kfail(k, GCAM_E_FORMAT, "slope is missing");
    s = &k->in[1]->shape;
    if (k->in[1]->dtype != GC_F32) return gc_kfail(k, GCAM_E_FORMAT, "slope must be float32");
    gc_shape eff = prelu_slope_shape(k);
    s = &eff;
    int ok = s->ndim >= 0 && s->ndim <= x->ndim;
    for (int i = 0; ok && i < s->ndim; i++) {
        int64_t sd = s->d[i], xd = x->d[i + x->ndim - s->ndim];
        if (sd != 1 && sd != xd) ok = 0;
    }
    if (!ok)
        return gc_kfail(k, GCAM_E_SHAPE, "slope %s does not broadcast to X %s",
                        gc_shape_str(s, ss, sizeof ss), gc_shape_str(x, sx, sizeof sx));
    return GCAM_OK;
}

/* Resolves the slope layout: (outer, C, inner) and a slope pointer of C elements. */
static const float *prelu_view(gc_kctx *k, int64_t *outer, int64_t *c, int64_t *inner) {
    const gc_tensor *x = k->in[0], *s = k->in[1];
    gc_shape ss = prelu_slope_shape(k);
    if (prelu_layout(&x->shape, &ss, outer, c, inner)) return s->data;
    /* Rare: expand the slope over X's index space. */
    float *e = k->scratch; /* X's shape */
    const float *sv = s->data;
    int64_t st[GC_MAX_DIMS], idx[GC_MAX_DIMS] = {0}, n = gc_numel(x), off = 0;
    int nd = x->shape.ndim;
    gc_broadcast_strides(st, &ss, &x->shape);
    for (int64_t i = 0; i < n; i++) {
        e[i] = sv[off];
        for (int d = nd - 1; d >= 0; d--) {
            off += st[d];
            if (++idx[d] < x->shape.d[d]) break;
            off -= idx[d] * st[d];
            idx[d] = 0;
        }
    }
    *outer = 1;
    *c = n;
    *inner = 1;
    return e;
}

static gcam_status prelu_forward(gc_kctx *k) {
    int64_t outer, C, inner;
    const float *s = prelu_view(k, &outer, &C, &inner); /* (C) */
    const float *x = k->in[0]->data;                    /* (outer, C, inner) */
    float *y = k->out[0]->data;                         /* (outer, C, inner) */
    const int64_t n = outer * C * inner;
    const int nt = n >= ACT_PAR_MIN ? GC_MAX(k->nthreads, 1) : 1;
    if (inner == 1) { /* slope varies along the rows: (outer, C) */
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int64_t o = 0; o < outer; o++) {
            const float *xr = x + o * C;
            float *yr = y + o * C;
            for (int64_t j = 0; j < C; j++) yr[j] = bsel(xr[j] < 0.0f, s[j] * xr[j], xr[j]);
        }
        return GCAM_OK;
    }
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t r = 0; r < outer * C; r++) { /* one row of inner elements per slope value */
        const float a = s[r % C], *xr = x + r * inner;
        float *yr = y + r * inner;
        for (int64_t j = 0; j < inner; j++) yr[j] = bsel(xr[j] < 0.0f, a * xr[j], xr[j]);
    }
    return GCAM_OK;
}
static gcam_status prelu_backward(gc_kctx *k) {
    if (!k->gout[0] || !k->gin[0]) return GCAM_OK;
    int64_t outer, C, inner;
    const float *s = prelu_view(k, &outer, &C, &inner);          /* (C) */
    const float *x = k->in[0]->data, *gy = k->gout[0]->data;     /* (outer, C, inner) */
    float *gx = k->gin[0]->data;                                 /* (outer, C, inner) */
    const int64_t n = outer * C * inner;
    const int nt = n >= ACT_PAR_MIN ? GC_MAX(k->nthreads, 1) : 1;
    if (inner == 1) {
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int64_t o = 0; o < outer; o++) {
            const float *xr = x + o * C, *gr = gy + o * C;
            float *gxr = gx + o * C;
            for (int64_t j = 0; j < C; j++) {
                const float g = gr[j];
                gxr[j] += bsel(xr[j] > 0.0f, g, s[j] * g);
            }
        }
        return GCAM_OK;
    }
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t r = 0; r < outer * C; r++) {
        const float a = s[r % C], *xr = x + r * inner, *gr = gy + r * inner;
        float *gxr = gx + r * inner;
        for (int64_t j = 0; j < inner; j++) {
            const float g = gr[j];
            gxr[j] += bsel(xr[j] > 0.0f, g, a * g);
        }
    }
    return GCAM_OK;
}
const gc_opdef gc_def_PRelu = {.name = "PRelu", .min_opset = 1, .infer = prelu_infer,
                               .scratch_bytes = prelu_scratch, .forward = prelu_forward,
                               .bscratch_bytes = prelu_scratch, .backward = prelu_backward,
                               .bw_in = 3, .diff_in = 1};

/* Conv / ConvTranspose and Gemm / MatMul: forward against naive references written here (in
 * double), backward against the naive vector-Jacobian product and against finite differences.
 *
 * The ONNX node tests test_conv* / test_basic_conv* / test_convtranspose* map onto the cases
 * marked "node:" below (same attributes and shapes, random data); the lead's conformance test
 * runs their exact data. */
#include "opcheck.h"
#include "ops/isa.h"

#include <cblas.h>
#include <math.h>

/* ---------------------------------------------------------------- naive convolution */

typedef struct cv_case {
    const char *label;
    int transpose, nsp, opset;
    int64_t N, C, M, G;         /* X has C channels, Y has M */
    int64_t in[3], k[3];        /* spatial dims of X and of the kernel */
    int64_t s[3], d[3];         /* strides / dilations; 0: attribute omitted */
    int64_t pads[6];
    int has_pads;
    const char *auto_pad;       /* NULL: attribute omitted */
    int64_t outpad[3], outshape[3];
    int has_outpad, has_outshape, kernel_attr, bias;
    int64_t want[3];            /* expected output spatial dims (hand-computed; 0: not given) */
} cv_case;

static int64_t prod(const int64_t *v, int n) {
    int64_t p = 1;
    for (int i = 0; i < n; i++) p *= v[i];
    return p;
}
static void unravel(int64_t *idx, int64_t lin, const int64_t *dims, int n) {
    for (int a = n - 1; a >= 0; a--) {
        idx[a] = lin % dims[a];
        lin /= dims[a];
    }
}
static int64_t fdiv(int64_t a, int64_t b) { return (a - ((a % b + b) % b)) / b; }

/* Begin pads and output spatial dims, straight from the ONNX spec formulas. (auto_pad is decoded
 * once, before the loop: gcc 12.2 -O2 miscompiled repeated strcmp calls inside this loop.) */
static void ref_geom(const cv_case *c, int64_t *pb, int64_t *out) {
    const char *ap = c->auto_pad ? c->auto_pad : "NOTSET";
    const int upper = !strcmp(ap, "SAME_UPPER"), same = upper || !strcmp(ap, "SAME_LOWER");
    const int valid = !strcmp(ap, "VALID");
    for (int i = 0; i < c->nsp; i++) {
        int64_t s = c->s[i] ? c->s[i] : 1, d = c->d[i] ? c->d[i] : 1, isz = c->in[i];
        int64_t dk = (c->k[i] - 1) * d + 1;
        int64_t b = c->has_pads && !valid ? c->pads[i] : 0, e = c->has_pads && !valid ? c->pads[c->nsp + i] : 0;
        if (!c->transpose) {
            if (same) {
                out[i] = (isz + s - 1) / s;
                int64_t tot = (out[i] - 1) * s + dk - isz;
                if (tot < 0) tot = 0;
                pb[i] = upper ? tot / 2 : tot - tot / 2;
            } else {
                out[i] = fdiv(isz + b + e - dk, s) + 1;
                pb[i] = b;
            }
        } else {
            int64_t op = c->has_outpad ? c->outpad[i] : 0, full = s * (isz - 1) + op + dk;
            if (c->has_outshape || same) {
                out[i] = c->has_outshape ? c->outshape[i] : isz * s;
                int64_t tot = full - out[i];
                pb[i] = upper ? fdiv(tot, 2) : tot - fdiv(tot, 2);
            } else {
                out[i] = full - b - e;
                pb[i] = b;
            }
        }
    }
}

/* Every (x, w, y) index triple of the bilinear map y += x * w. mode 0: y += x*w (forward);
 * mode 1: dx += gy*w (the data VJP). */
static void ref_run(const cv_case *c, const int64_t *pb, const int64_t *out, int mode, const float *x,
                    const float *w, double *y, const float *gy, double *dx) {
    const int ns = c->nsp;
    const int64_t Cg = c->C / c->G, Mg = c->M / c->G, xsz = prod(c->in, ns), ysz = prod(out, ns);
    const int64_t ksz = prod(c->k, ns);
    int64_t a[3], t[3], b[3];
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t ch = 0; ch < (c->transpose ? c->C : c->M); ch++) {
            int64_t g = ch / (c->transpose ? Cg : Mg);
            for (int64_t p = 0; p < (c->transpose ? xsz : ysz); p++) {
                unravel(a, p, c->transpose ? c->in : out, ns);
                for (int64_t j = 0; j < (c->transpose ? Mg : Cg); j++)
                    for (int64_t tk = 0; tk < ksz; tk++) {
                        unravel(t, tk, c->k, ns);
                        int ok = 1;
                        int64_t lin = 0;
                        for (int i = 0; i < ns; i++) {
                            int64_t dd = c->d[i] ? c->d[i] : 1, ss = c->s[i] ? c->s[i] : 1;
                            b[i] = a[i] * ss + t[i] * dd - pb[i];
                            int64_t lim = c->transpose ? out[i] : c->in[i];
                            if (b[i] < 0 || b[i] >= lim) ok = 0;
                            lin = lin * lim + b[i];
                        }
                        if (!ok) continue;
                        int64_t xi, wi, yi;
                        if (!c->transpose) { /* ch = m, a = output pos, b = input pos, j = ci */
                            xi = (n * c->C + g * Cg + j) * xsz + lin;
                            wi = (ch * Cg + j) * ksz + tk;
                            yi = (n * c->M + ch) * ysz + p;
                        } else { /* ch = c, a = input pos, b = output pos, j = mj */
                            xi = (n * c->C + ch) * xsz + p;
                            wi = (ch * Mg + j) * ksz + tk;
                            yi = (n * c->M + g * Mg + j) * ysz + lin;
                        }
                        if (mode == 0) y[yi] += (double)x[xi] * w[wi];
                        else dx[xi] += (double)gy[yi] * w[wi];
                    }
            }
        }
}

static gc_node *cv_node(const cv_case *c) {
    gc_node *n = oc_node(c->transpose ? "ConvTranspose" : "Conv", c->opset ? c->opset : 13, c->bias ? 3 : 2, 1);
    if (c->kernel_attr) oc_attr_ints(n, "kernel_shape", c->nsp, c->k);
    if (c->s[0]) oc_attr_ints(n, "strides", c->nsp, c->s);
    if (c->d[0]) oc_attr_ints(n, "dilations", c->nsp, c->d);
    if (c->has_pads) oc_attr_ints(n, "pads", 2 * c->nsp, c->pads);
    if (c->auto_pad) oc_attr_s(n, "auto_pad", c->auto_pad);
    if (c->G != 1) oc_attr_i(n, "group", c->G);
    if (c->has_outpad) oc_attr_ints(n, "output_padding", c->nsp, c->outpad);
    if (c->has_outshape) oc_attr_ints(n, "output_shape", c->nsp, c->outshape);
    return n;
}

/* Forward or backward through the op table, as the planner runs them (backward sees only W's
 * data), with the scratch the op asks for or none at all (the depthwise loops then fall back
 * to their bounds-checked form). y must hold infer's shape (and data for forward). */
static gcam_status run_op_opts(gc_node *n, gc_tensor *in, int n_in, gc_tensor *y, const gc_tensor *gy, gc_tensor *gx,
                               int backward, int no_scratch, uint64_t const_in, int nthreads, int relu, gc_err *err);
static gcam_status run_op(gc_node *n, gc_tensor *in, int n_in, gc_tensor *y, const gc_tensor *gy, gc_tensor *gx,
                          int backward, int no_scratch, uint64_t const_in, gc_err *err) {
    return run_op_opts(n, in, n_in, y, gy, gx, backward, no_scratch, const_in, 2, 0, err);
}
/* run_op with a thread count and a fused Relu (forward: k.fuse.relu, as the planner sets it). */
static const gc_tensor *fused_res; /* forward: k.fuse.res (a following Add fused in), NULL: none */
static uint64_t bw_fresh;          /* backward: k.gin_fresh (dX written first: assigned, not added) */
static int fw_exact;               /* forward: k.exact (a backward passes through: no F(4x4), F(2x2) shared) */
static int bw_relu_dx;             /* backward: k.fuse.relu_dx (X is a Relu's output: its VJP applied) */
static int fused_act;              /* forward: k.fuse.act (a following Clip or SiLU fused in), and its bounds */
static float fused_lo, fused_hi;
static gcam_status run_op_opts(gc_node *n, gc_tensor *in, int n_in, gc_tensor *y, const gc_tensor *gy, gc_tensor *gx,
                               int backward, int no_scratch, uint64_t const_in, int nthreads, int relu, gc_err *err) {
    const gc_opdef *d = gc_op_get(n->op);
    gc_kctx k;
    gc_tensor sh[GC_MAX_IO], yy = *y;
    memset(&k, 0, sizeof k);
    k.node = n;
    k.params = n->params;
    k.n_in = n_in;
    k.n_out = 1;
    k.err = err;
    k.nthreads = nthreads;
    gc_tuning tune; /* as a context takes it at creation (set_no_winograd4) */
    gc_tuning_get(&tune);
    k.tune = &tune;
    k.fuse.relu = relu;
    k.fuse.res = backward ? NULL : fused_res;
    k.gin_fresh = backward ? bw_fresh : 0;
    k.exact = backward ? 0 : fw_exact;
    k.fuse.relu_dx = backward ? bw_relu_dx : 0;
    k.fuse.dx_lo = fused_lo; /* relu_dx 2: the Clip's bounds */
    k.fuse.dx_hi = fused_hi;
    k.fuse.act = backward ? 0 : fused_act;
    k.fuse.act_lo = fused_lo;
    k.fuse.act_hi = fused_hi;
    k.const_in = const_in;
    for (int i = 0; i < n_in; i++) {
        sh[i] = in[i];
        if (backward && !(d->bw_in & (1u << i)) && !(i == 0 && bw_relu_dx)) sh[i].data = NULL;
        k.in[i] = in[i].dtype ? &sh[i] : NULL;
    }
    if (backward) yy.data = NULL;
    k.out[0] = &yy;
    k.gout[0] = gy;
    k.gin[0] = gx;
    size_t (*sz)(const gc_kctx *) = backward ? d->bscratch_bytes : d->scratch_bytes;
    size_t sb = sz ? sz(&k) : 0;
    if (no_scratch) sb = 0;
    k.scratch = sb ? aligned_alloc(64, gc_align64(sb)) : NULL;
    k.scratch_size = sb;
    gcam_status st = backward ? d->backward(&k) : d->forward(&k);
    free(k.scratch);
    return st;
}

static double max_abs_d(const double *v, int64_t n) {
    double m = 1.0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}

/* Forward vs naive (W constant, and W/B dynamic), backward vs naive VJP, then finite differences. */
static void check_conv(const cv_case *c, int gradcheck) {
    char label[256];
    const int ns = c->nsp;
    int64_t pb[3], out[3], xd[5], wd[5], bd[1] = {c->M}, yd[5];
    ref_geom(c, pb, out);
    xd[0] = c->N;
    xd[1] = c->C;
    wd[0] = c->transpose ? c->C : c->M;
    wd[1] = c->transpose ? c->M / c->G : c->C / c->G;
    yd[0] = c->N;
    yd[1] = c->M;
    for (int i = 0; i < ns; i++) {
        xd[2 + i] = c->in[i];
        wd[2 + i] = c->k[i];
        yd[2 + i] = out[i];
        if (c->want[i]) oc_check(out[i] == c->want[i], "%s: reference output dim %d = %lld, expected %lld", c->label,
                                 i, (long long)out[i], (long long)c->want[i]);
    }
    gc_tensor in[3];
    memset(in, 0, sizeof in);
    in[0] = oc_rand(ns + 2, xd, -1, 1);
    in[1] = oc_rand(ns + 2, wd, -1, 1);
    if (c->bias) in[2] = oc_rand(1, bd, -1, 1);
    const int n_in = c->bias ? 3 : 2;
    const int direct = c->C / c->G == 1 && c->M / c->G <= 8; /* depthwise or pointwise: no GEMM scratch */
    const int64_t ny = prod(yd, ns + 2), nx = prod(xd, ns + 2);

    double *ry = calloc((size_t)ny, sizeof(double)), *rdx = calloc((size_t)nx, sizeof(double));
    float *ryf = malloc((size_t)ny * sizeof(float)), *rdxf = malloc((size_t)nx * sizeof(float));
    const int64_t per_ch = ny / (c->N * c->M);
    if (c->bias)
        for (int64_t i = 0; i < ny; i++) ry[i] = ((float *)in[2].data)[(i / per_ch) % c->M];
    ref_run(c, pb, out, 0, in[0].data, in[1].data, ry, NULL, NULL);
    for (int64_t i = 0; i < ny; i++) ryf[i] = (float)ry[i];
    const double yscale = max_abs_d(ry, ny);

    for (int pass = 0; pass < 2; pass++) { /* pass 0: W, B constant; pass 1: dynamic */
        gc_node *n = cv_node(c);
        gc_tensor y;
        gc_err err = {0};
        gcam_status st = oc_forward(n, in, n_in, pass ? 0u : 6u, &y, 1, &err);
        snprintf(label, sizeof label, "%s: forward (%s W)", c->label, pass ? "dynamic" : "constant");
        if (oc_check(st == GCAM_OK, "%s: %s", label, err.msg)) {
            int shape_ok = y.shape.ndim == ns + 2;
            for (int i = 0; shape_ok && i < ns + 2; i++) shape_ok = y.shape.d[i] == yd[i];
            char s1[96];
            if (oc_check(shape_ok, "%s: output shape %s", label, gc_shape_str(&y.shape, s1, sizeof s1)))
                oc_close(label, y.data, ryf, ny, 1e-5 * yscale, 1e-5);
        }
        if (pass == 0 && st == GCAM_OK) {
            /* backward vs naive VJP, on top of a random prefill (it must accumulate) */
            gc_tensor gy = oc_rand(ns + 2, yd, -1, 1), gx = oc_rand(ns + 2, xd, -1, 1);
            gc_tensor gx2 = oc_tensor(GC_F32, ns + 2, xd);
            for (int64_t i = 0; i < nx; i++) rdx[i] = ((float *)gx.data)[i];
            ref_run(c, pb, out, 1, NULL, in[1].data, NULL, gy.data, rdx);
            for (int64_t i = 0; i < nx; i++) rdxf[i] = (float)rdx[i];
            memcpy(gx2.data, gx.data, (size_t)nx * sizeof(float));
            st = run_op(n, in, n_in, &y, &gy, &gx, 1, 0, 6u, &err);
            snprintf(label, sizeof label, "%s: backward vs naive", c->label);
            if (oc_check(st == GCAM_OK, "%s: %s", label, err.msg))
                oc_close(label, gx.data, rdxf, nx, 1e-5 * max_abs_d(rdx, nx), 1e-5);
            /* written first (gin_fresh): assigned over garbage, every path */
            double *rdx0 = calloc((size_t)nx, sizeof(double));
            gc_tensor gx3 = oc_tensor(GC_F32, ns + 2, xd);
            ref_run(c, pb, out, 1, NULL, in[1].data, NULL, gy.data, rdx0);
            for (int64_t i = 0; i < nx; i++) rdxf[i] = (float)rdx0[i], ((float *)gx3.data)[i] = NAN;
            bw_fresh = 1;
            st = run_op(n, in, n_in, &y, &gy, &gx3, 1, 0, 6u, &err);
            bw_fresh = 0;
            snprintf(label, sizeof label, "%s: backward written first", c->label);
            if (oc_check(st == GCAM_OK, "%s: %s", label, err.msg))
                oc_close(label, gx3.data, rdxf, nx, 1e-5 * max_abs_d(rdx0, nx), 1e-5);
            /* with the op before it fused in (X as its output): a Clip [-0.5, 0.5] (relu_dx 2; lo != 0:
             * the standard rule), then the Relu (1): dX where that op passes X, else 0, against the
             * largest of the Clip's unmasked and of the Relu's masked reference */
            static const struct {
                int dx;
                float lo, hi;
                const char *what;
            } pre[2] = {{2, -0.5f, 0.5f, "a Clip's"}, {1, 0.0f, INFINITY, "the Relu's"}};
            for (int v = 0; v < 2 && !c->transpose; v++) {
                double scale = 1.0; /* as max_abs_d */
                for (int64_t i = 0; i < nx; i++) {
                    const float xv = ((float *)in[0].data)[i];
                    const int kept = xv > pre[v].lo && xv < pre[v].hi;
                    rdxf[i] = kept ? (float)rdx0[i] : 0.0f;
                    ((float *)gx3.data)[i] = NAN;
                    if (kept || pre[v].dx == 2) scale = fmax(scale, fabs(rdx0[i]));
                }
                bw_fresh = 1;
                bw_relu_dx = pre[v].dx;
                fused_lo = pre[v].lo, fused_hi = pre[v].hi;
                st = run_op(n, in, n_in, &y, &gy, &gx3, 1, 0, 6u, &err);
                bw_fresh = 0;
                bw_relu_dx = 0;
                snprintf(label, sizeof label, "%s: backward with %s VJP", c->label, pre[v].what);
                if (oc_check(st == GCAM_OK, "%s: %s", label, err.msg))
                    oc_close(label, gx3.data, rdxf, nx, 1e-5 * scale, 1e-5);
            }
            free(rdx0);
            oc_tensor_free(&gx3);
            for (int64_t i = 0; i < nx; i++) rdxf[i] = (float)rdx[i];
            if (direct) { /* the same without scratch: the bounds-checked depthwise loops */
                st = run_op(n, in, n_in, &y, NULL, NULL, 0, 1, 6u, &err);
                snprintf(label, sizeof label, "%s: forward without scratch", c->label);
                if (oc_check(st == GCAM_OK, "%s: %s", label, err.msg))
                    oc_close(label, y.data, ryf, ny, 1e-5 * yscale, 1e-5);
                st = run_op(n, in, n_in, &y, &gy, &gx2, 1, 1, 6u, &err);
                snprintf(label, sizeof label, "%s: backward without scratch", c->label);
                if (oc_check(st == GCAM_OK, "%s: %s", label, err.msg))
                    oc_close(label, gx2.data, rdxf, nx, 1e-5 * max_abs_d(rdx, nx), 1e-5);
            }
            oc_tensor_free(&gy);
            oc_tensor_free(&gx);
            oc_tensor_free(&gx2);
        }
        oc_tensor_free(&y);
        oc_node_free(n);
    }
    if (gradcheck) {
        /* linear in X: central differences are exact up to float rounding of the outputs */
        gc_node *n = cv_node(c);
        snprintf(label, sizeof label, "%s: gradcheck", c->label);
        oc_gradcheck(label, n, in, n_in, 6u, 1, 1u, 1e-2, 1e-3, 48);
        oc_node_free(n);
    }
    free(ry);
    free(rdx);
    free(ryf);
    free(rdxf);
    for (int i = 0; i < 3; i++) oc_tensor_free(&in[i]);
}

static void test_conv_variants(void) {
    const cv_case cases[] = {
        /* node: test_basic_conv_with_padding / _without_padding */
        {.label = "basic pad1", .nsp = 2, .N = 1, .C = 1, .M = 1, .G = 1, .in = {5, 5}, .k = {3, 3},
         .pads = {1, 1, 1, 1}, .has_pads = 1, .kernel_attr = 1, .want = {5, 5}},
        {.label = "basic pad0", .nsp = 2, .N = 1, .C = 1, .M = 1, .G = 1, .in = {5, 5}, .k = {3, 3},
         .pads = {0, 0, 0, 0}, .has_pads = 1, .kernel_attr = 1, .want = {3, 3}},
        /* node: test_conv_with_autopad_same (SAME_LOWER, stride 2) */
        {.label = "autopad same_lower s2", .nsp = 2, .N = 1, .C = 1, .M = 1, .G = 1, .in = {5, 5}, .k = {3, 3},
         .s = {2, 2}, .auto_pad = "SAME_LOWER", .kernel_attr = 1, .want = {3, 3}},
        /* node: test_conv_with_strides_and_asymmetric_padding / _no_padding / _padding */
        {.label = "strides asym pads", .nsp = 2, .N = 1, .C = 1, .M = 1, .G = 1, .in = {7, 5}, .k = {3, 3},
         .s = {2, 2}, .pads = {1, 0, 1, 0}, .has_pads = 1, .kernel_attr = 1, .want = {4, 2}},
        {.label = "strides no pad", .nsp = 2, .N = 1, .C = 1, .M = 1, .G = 1, .in = {7, 5}, .k = {3, 3},
         .s = {2, 2}, .pads = {0, 0, 0, 0}, .has_pads = 1, .want = {3, 2}},
        {.label = "strides pad", .nsp = 2, .N = 1, .C = 1, .M = 1, .G = 1, .in = {7, 5}, .k = {3, 3}, .s = {2, 2},
         .pads = {1, 1, 1, 1}, .has_pads = 1, .want = {4, 3}},
        /* general GEMM path */
        {.label = "gemm 3x3 bias", .nsp = 2, .N = 2, .C = 3, .M = 4, .G = 1, .in = {6, 7}, .k = {3, 3},
         .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1, .want = {6, 7}},
        {.label = "gemm asym pads s2", .nsp = 2, .N = 1, .C = 3, .M = 5, .G = 1, .in = {9, 8}, .k = {3, 2},
         .s = {2, 3}, .pads = {2, 0, 1, 1}, .has_pads = 1, .bias = 1, .want = {5, 3}},
        {.label = "gemm dilation 2x3", .nsp = 2, .N = 1, .C = 2, .M = 3, .G = 1, .in = {9, 10}, .k = {3, 2},
         .d = {2, 3}, .pads = {1, 2, 2, 1}, .has_pads = 1, .bias = 1, .want = {8, 10}},
        {.label = "gemm groups 2", .nsp = 2, .N = 2, .C = 4, .M = 6, .G = 2, .in = {5, 6}, .k = {3, 3},
         .pads = {1, 0, 0, 1}, .has_pads = 1, .bias = 1, .want = {4, 5}},
        {.label = "gemm groups 3 s2 d2", .nsp = 2, .N = 1, .C = 6, .M = 3, .G = 3, .in = {9, 9}, .k = {2, 3},
         .s = {2, 1}, .d = {2, 2}, .pads = {1, 1, 1, 1}, .has_pads = 1, .want = {5, 7}},
        {.label = "same_upper s2", .nsp = 2, .N = 1, .C = 2, .M = 3, .G = 1, .in = {6, 7}, .k = {3, 4},
         .s = {2, 2}, .auto_pad = "SAME_UPPER", .bias = 1, .want = {3, 4}},
        {.label = "same_lower s1 even k", .nsp = 2, .N = 1, .C = 2, .M = 3, .G = 1, .in = {5, 6}, .k = {2, 4},
         .auto_pad = "SAME_LOWER", .want = {5, 6}},
        {.label = "same_upper s1 even k", .nsp = 2, .N = 1, .C = 2, .M = 3, .G = 1, .in = {5, 6}, .k = {2, 4},
         .auto_pad = "SAME_UPPER", .want = {5, 6}},
        {.label = "valid s2", .nsp = 2, .N = 1, .C = 2, .M = 3, .G = 1, .in = {8, 7}, .k = {3, 3}, .s = {2, 2},
         .auto_pad = "VALID", .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1, .want = {3, 3}},
        {.label = "7x7 s2 stem", .nsp = 2, .N = 1, .C = 3, .M = 8, .G = 1, .in = {20, 18}, .k = {7, 7},
         .s = {2, 2}, .pads = {3, 3, 3, 3}, .has_pads = 1, .bias = 1, .want = {10, 9}},
        /* pointwise (plain GEMM) and its strided variant (im2col) */
        {.label = "1x1", .nsp = 2, .N = 2, .C = 5, .M = 7, .G = 1, .in = {4, 6}, .k = {1, 1}, .bias = 1,
         .want = {4, 6}},
        {.label = "1x1 groups", .nsp = 2, .N = 1, .C = 6, .M = 4, .G = 2, .in = {3, 5}, .k = {1, 1}, .bias = 1,
         .want = {3, 5}},
        {.label = "1x1 s2", .nsp = 2, .N = 1, .C = 5, .M = 3, .G = 1, .in = {7, 6}, .k = {1, 1}, .s = {2, 2},
         .want = {4, 3}},
        {.label = "1x1 pad1", .nsp = 2, .N = 1, .C = 2, .M = 3, .G = 1, .in = {3, 4}, .k = {1, 1},
         .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1, .want = {5, 6}},
        /* depthwise, multiplier 1 and 3, strides, dilation, padding */
        {.label = "depthwise 3x3", .nsp = 2, .N = 2, .C = 4, .M = 4, .G = 4, .in = {7, 6}, .k = {3, 3},
         .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1, .want = {7, 6}},
        {.label = "depthwise s2 asym", .nsp = 2, .N = 1, .C = 3, .M = 3, .G = 3, .in = {9, 8}, .k = {3, 3},
         .s = {2, 2}, .pads = {0, 1, 1, 0}, .has_pads = 1, .bias = 1, .want = {4, 4}},
        {.label = "depthwise mult3 d2", .nsp = 2, .N = 1, .C = 2, .M = 6, .G = 2, .in = {8, 9}, .k = {3, 2},
         .d = {2, 2}, .pads = {2, 1, 2, 1}, .has_pads = 1, .bias = 1, .want = {8, 9}},
        {.label = "depthwise 5x5 same_upper s2", .nsp = 2, .N = 1, .C = 3, .M = 3, .G = 3, .in = {9, 10},
         .k = {5, 5}, .s = {2, 2}, .auto_pad = "SAME_UPPER", .want = {5, 5}},
        {.label = "depthwise 3x7 s(1,2) d(1,2)", .nsp = 2, .N = 1, .C = 3, .M = 3, .G = 3, .in = {6, 30},
         .k = {3, 7}, .s = {1, 2}, .d = {1, 2}, .pads = {1, 6, 1, 5}, .has_pads = 1, .bias = 1, .want = {6, 15}},
        {.label = "depthwise no interior", .nsp = 2, .N = 1, .C = 2, .M = 4, .G = 2, .in = {3, 2}, .k = {3, 3},
         .pads = {2, 2, 2, 2}, .has_pads = 1, .bias = 1, .want = {5, 4}},
        /* stride 1: the data gradient is a gather from dY inside a zero border (EfficientNet's 5x5) */
        {.label = "depthwise 5x5 s1 p2 n2", .nsp = 2, .N = 2, .C = 8, .M = 8, .G = 8, .in = {28, 27}, .k = {5, 5},
         .pads = {2, 2, 2, 2}, .has_pads = 1, .bias = 1, .want = {28, 27}},
        {.label = "depthwise 3x3 s1 asymmetric pads", .nsp = 2, .N = 1, .C = 3, .M = 3, .G = 3, .in = {10, 12},
         .k = {3, 3}, .pads = {0, 2, 1, 0}, .has_pads = 1, .want = {9, 12}},
        {.label = "depthwise 3x3 s1 mult2 d(2,1)", .nsp = 2, .N = 1, .C = 2, .M = 4, .G = 2, .in = {9, 11},
         .k = {3, 3}, .d = {2, 1}, .pads = {2, 1, 2, 1}, .has_pads = 1, .bias = 1, .want = {9, 11}},
        {.label = "single channel mult 12 (gemm)", .nsp = 2, .N = 1, .C = 1, .M = 12, .G = 1, .in = {6, 6},
         .k = {3, 3}, .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1, .want = {6, 6}},
        /* 1-D and 3-D */
        {.label = "1d s2 d2 pads", .nsp = 1, .N = 2, .C = 3, .M = 4, .G = 1, .in = {17}, .k = {3}, .s = {2},
         .d = {2}, .pads = {2, 1}, .has_pads = 1, .bias = 1, .want = {8}},
        {.label = "1d depthwise", .nsp = 1, .N = 1, .C = 4, .M = 8, .G = 4, .in = {11}, .k = {4}, .pads = {1, 2},
         .has_pads = 1, .bias = 1, .want = {11}},
        {.label = "1d pointwise", .nsp = 1, .N = 1, .C = 4, .M = 3, .G = 1, .in = {9}, .k = {1}, .want = {9}},
        {.label = "3d", .nsp = 3, .N = 1, .C = 2, .M = 3, .G = 1, .in = {4, 5, 6}, .k = {2, 3, 3}, .s = {1, 2, 1},
         .pads = {0, 1, 1, 1, 1, 0}, .has_pads = 1, .bias = 1, .want = {4, 3, 5}},
        {.label = "3d groups dilation", .nsp = 3, .N = 1, .C = 4, .M = 4, .G = 2, .in = {5, 5, 5},
         .k = {2, 2, 2}, .d = {2, 1, 2}, .s = {1, 2, 2}, .want = {3, 2, 2}},
        {.label = "3d depthwise same_lower", .nsp = 3, .N = 1, .C = 2, .M = 2, .G = 2, .in = {4, 5, 3},
         .k = {3, 3, 2}, .auto_pad = "SAME_LOWER", .bias = 1, .want = {4, 5, 3}},
    };
    for (size_t i = 0; i < GC_ARRAY_LEN(cases); i++) check_conv(&cases[i], 1);
}

/* The per-instruction-set paths a test can force on this CPU: cap 0 = the best, 1 = AVX2 at most,
 * 2 = portable only (isa.h); returns 0 when cap asks for more than the CPU has (not run). The
 * environment's other knobs stay (GCAM_ISA in the sgemm.cmake variants caps the best further). */
static int set_isa_cap(int cap) {
    gc_tuning t;
    gc_tuning_set_default(NULL);
    gc_tuning_get(&t);
    if (cap >= 1) t.isa = cap >= 2 ? 1 : 2; /* GCAM_ISA: generic, avx2 */
    gc_tuning_set_default(&t);
    return cap == 0 || (cap == 1 && gc_cpu_isa() >= GC_KISA_AVX2) || cap == 2;
}

/* One depthwise case on every instruction-set path (cap 0..2) the CPU has: forward against the
 * double reference, and forward and backward bit-identical to the portable path's (same products
 * and sums in the same order, no FMA); 1 thread for one path, 2 for the others. */
static void check_dw_paths(const cv_case *c, int *ran) {
    char label[256];
    int64_t pb[2], out[2], xd[4] = {c->N, c->C, c->in[0], c->in[1]}, wd[4] = {c->M, 1, c->k[0], c->k[1]};
    int64_t bd[1] = {c->M}, yd[4];
    ref_geom(c, pb, out);
    yd[0] = c->N;
    yd[1] = c->M;
    yd[2] = out[0];
    yd[3] = out[1];
    gc_tensor in[3];
    memset(in, 0, sizeof in);
    in[0] = oc_rand(4, xd, -1, 1);
    in[1] = oc_rand(4, wd, -1, 1);
    if (c->bias) in[2] = oc_rand(1, bd, -1, 1);
    const int n_in = c->bias ? 3 : 2;
    const int64_t ny = prod(yd, 4), nx = prod(xd, 4), per_ch = ny / (c->N * c->M);
    double *ry = calloc((size_t)ny, sizeof(double));
    float *ryf = malloc((size_t)ny * sizeof(float)), *y2 = malloc((size_t)ny * sizeof(float));
    float *gx2 = malloc((size_t)nx * sizeof(float));
    if (c->bias)
        for (int64_t i = 0; i < ny; i++) ry[i] = ((float *)in[2].data)[(i / per_ch) % c->M];
    ref_run(c, pb, out, 0, in[0].data, in[1].data, ry, NULL, NULL);
    for (int64_t i = 0; i < ny; i++) ryf[i] = (float)ry[i];
    const double yscale = max_abs_d(ry, ny);
    gc_node *n = cv_node(c);
    gc_tensor y = oc_tensor(GC_F32, 4, yd), gy = oc_rand(4, yd, -1, 1), gx = oc_tensor(GC_F32, 4, xd);
    gc_err err = {0};
    /* infer first (the node's parameters), with W constant as a planner sees it */
    gc_tensor tmp;
    if (oc_check(oc_forward(n, in, n_in, 6u, &tmp, 1, &err) == GCAM_OK, "%s: infer: %s", c->label, err.msg)) {
        oc_tensor_free(&tmp);
        for (int cap = 2; cap >= 0; cap--) {
            if (!set_isa_cap(cap)) continue;
            ran[cap]++;
            const int nt = cap == 1 ? 1 : 2;
            snprintf(label, sizeof label, "%s (isa cap %d, %d threads)", c->label, cap, nt);
            gcam_status st = run_op_opts(n, in, n_in, &y, NULL, NULL, 0, 0, 6u, nt, 0, &err);
            if (!oc_check(st == GCAM_OK, "%s: forward: %s", label, err.msg)) continue;
            oc_close(label, y.data, ryf, ny, 1e-5 * yscale, 1e-5);
            memset(gx.data, 0, (size_t)nx * sizeof(float));
            st = run_op_opts(n, in, n_in, &y, &gy, &gx, 1, 0, 6u, nt, 0, &err);
            if (!oc_check(st == GCAM_OK, "%s: backward: %s", label, err.msg)) continue;
            if (cap == 2) { /* the portable path: the others must match it bit for bit */
                memcpy(y2, y.data, (size_t)ny * sizeof(float));
                memcpy(gx2, gx.data, (size_t)nx * sizeof(float));
                continue;
            }
            oc_check(!memcmp(y.data, y2, (size_t)ny * sizeof(float)), "%s: forward bit-identical to the portable path",
                     label);
            oc_check(!memcmp(gx.data, gx2, (size_t)nx * sizeof(float)),
                     "%s: backward bit-identical to the portable path", label);
        }
        /* written first (gin_fresh, over NaNs; stride 1 with one output per group takes dwconv.c's
         * kernels on dY): bit-identical to the portable path's onto zeros */
        for (int cap = 2; cap >= 0; cap--) {
            if (!set_isa_cap(cap)) continue;
            snprintf(label, sizeof label, "%s (isa cap %d, 2 threads)", c->label, cap);
            for (int64_t i = 0; i < nx; i++) ((float *)gx.data)[i] = NAN;
            bw_fresh = 1;
            gcam_status st = run_op_opts(n, in, n_in, &y, &gy, &gx, 1, 0, 6u, 2, 0, &err);
            bw_fresh = 0;
            if (!oc_check(st == GCAM_OK, "%s: backward written first: %s", label, err.msg)) continue;
            oc_check(!memcmp(gx.data, gx2, (size_t)nx * sizeof(float)),
                     "%s: backward written first bit-identical to the portable path's onto zeros", label);
        }
    }
    set_isa_cap(0);
    oc_tensor_free(&y);
    oc_tensor_free(&gy);
    oc_tensor_free(&gx);
    oc_node_free(n);
    free(ry);
    free(ryf);
    free(y2);
    free(gx2);
    for (int i = 0; i < 3; i++) oc_tensor_free(&in[i]);
}

/* dwconv.c's direct kernels (K x K, K = 3, 5, 7, strides 1 and 2) and the plane loops beside them:
 * paddings from none to past the kernel, asymmetric, maps 1 wide or tall, widths around the vector
 * lengths (8, 16) and their multiples, more row blocks than one (4 rows each) and leftovers,
 * multiplier 2, bias or not; a dilated case (the plane loops) to compare with. The full check
 * (backward against the naive VJP, without scratch, finite differences) runs on a few of them. */
static void test_conv_depthwise_paths(void) {
    static const int64_t sizes[][2] = {{1, 1}, {1, 9}, {9, 1},  {2, 3},   {5, 7},  {7, 7},  {8, 8},
                                       {14, 14}, {9, 16}, {17, 17}, {12, 33}, {6, 40}, {3, 112}};
    int ran[3] = {0, 0, 0}, count = 0;
    for (int64_t K = 3; K <= 7; K += 2)
        for (int64_t S = 1; S <= 2; S++)
            for (int pv = 0; pv < 4; pv++)
                for (size_t si = 0; si < GC_ARRAY_LEN(sizes); si++) {
                    const int64_t h = K / 2;
                    /* same, none, asymmetric (top/left short by one), past the kernel */
                    const int64_t pads[4][4] = {{h, h, h, h}, {0, 0, 0, 0}, {h - 1, h, h, h - 1}, {K, 1, 0, K + 1}};
                    cv_case c = {.nsp = 2, .N = 1 + (int)(si % 2), .C = 3, .M = 3 * (1 + (int)(si % 3 == 2)), .G = 3,
                                 .in = {sizes[si][0], sizes[si][1]}, .k = {K, K}, .s = {S, S}, .has_pads = 1,
                                 .bias = (int)((si + pv) % 2)};
                    memcpy(c.pads, pads[pv], sizeof pads[pv]);
                    if (c.in[0] + c.pads[0] + c.pads[2] < K || c.in[1] + c.pads[1] + c.pads[3] < K) continue;
                    char label[96];
                    snprintf(label, sizeof label, "depthwise %lldx%lld s%lld pads %d on %lldx%lld", (long long)K,
                             (long long)K, (long long)S, pv, (long long)c.in[0], (long long)c.in[1]);
                    c.label = label;
                    check_dw_paths(&c, ran);
                    if (count++ % 17 == 0) check_conv(&c, 0);
                }
    const cv_case dil = {.label = "depthwise 3x3 d2 (plane loops)", .nsp = 2, .N = 1, .C = 4, .M = 4, .G = 4,
                         .in = {13, 19}, .k = {3, 3}, .d = {2, 2}, .pads = {2, 2, 2, 2}, .has_pads = 1, .bias = 1};
    check_dw_paths(&dil, ran);
    printf("depthwise paths: %d cases on the best path, %d on AVX2, %d portable%s\n", ran[0], ran[1], ran[2],
           gc_cpu_isa() >= GC_KISA_AVX2 ? "" : " (no AVX2 on this CPU: its path not run)");
}

static void test_convtranspose_variants(void) {
    const cv_case cases[] = {
        /* node: test_convtranspose, _1d, _3d */
        {.label = "T basic", .transpose = 1, .nsp = 2, .N = 1, .C = 1, .M = 2, .G = 1, .in = {3, 3},
         .k = {3, 3}, .want = {5, 5}},
        {.label = "T 1d", .transpose = 1, .nsp = 1, .N = 1, .C = 1, .M = 2, .G = 1, .in = {3}, .k = {3},
         .want = {5}},
        {.label = "T 3d", .transpose = 1, .nsp = 3, .N = 1, .C = 1, .M = 2, .G = 1, .in = {3, 4, 5},
         .k = {3, 3, 3}, .want = {5, 6, 7}},
        /* node: test_convtranspose_autopad_same (SAME_UPPER, stride 2) */
        {.label = "T autopad same_upper", .transpose = 1, .nsp = 2, .N = 1, .C = 1, .M = 2, .G = 1, .in = {3, 3},
         .k = {3, 3}, .s = {2, 2}, .auto_pad = "SAME_UPPER", .want = {6, 6}},
        {.label = "T same_lower", .transpose = 1, .nsp = 2, .N = 1, .C = 2, .M = 3, .G = 1, .in = {3, 4},
         .k = {3, 3}, .s = {2, 2}, .auto_pad = "SAME_LOWER", .bias = 1, .want = {6, 8}},
        /* node: test_convtranspose_dilations */
        {.label = "T dilations", .transpose = 1, .nsp = 2, .N = 1, .C = 1, .M = 1, .G = 1, .in = {3, 3},
         .k = {2, 2}, .d = {2, 2}, .want = {5, 5}},
        /* node: test_convtranspose_kernel_shape / _with_kernel (opset 8) / _output_shape */
        {.label = "T kernel_shape outpad outshape", .transpose = 1, .nsp = 2, .N = 1, .C = 1, .M = 2, .G = 1,
         .in = {3, 3}, .k = {3, 3}, .s = {3, 2}, .outpad = {1, 1}, .has_outpad = 1, .outshape = {10, 8},
         .has_outshape = 1, .kernel_attr = 1, .want = {10, 8}},
        {.label = "T with_kernel opset8", .transpose = 1, .nsp = 2, .opset = 8, .N = 1, .C = 1, .M = 2, .G = 1,
         .in = {3, 3}, .k = {3, 3}, .s = {3, 2}, .outpad = {1, 1}, .has_outpad = 1, .outshape = {10, 8},
         .has_outshape = 1, .kernel_attr = 1, .want = {10, 8}},
        {.label = "T output_shape", .transpose = 1, .nsp = 2, .N = 1, .C = 1, .M = 2, .G = 1, .in = {3, 3},
         .k = {3, 3}, .s = {3, 2}, .outshape = {10, 8}, .has_outshape = 1, .want = {10, 8}},
        {.label = "T output_shape odd crop", .transpose = 1, .nsp = 2, .N = 1, .C = 2, .M = 2, .G = 1,
         .in = {3, 4}, .k = {3, 3}, .s = {2, 2}, .outshape = {6, 7}, .has_outshape = 1, .bias = 1,
         .want = {6, 7}},
        /* node: test_convtranspose_pad (output_padding) and _pads */
        {.label = "T output_padding", .transpose = 1, .nsp = 2, .N = 1, .C = 1, .M = 2, .G = 1, .in = {3, 3},
         .k = {3, 3}, .s = {3, 2}, .outpad = {1, 1}, .has_outpad = 1, .want = {10, 8}},
        {.label = "T pads", .transpose = 1, .nsp = 2, .N = 1, .C = 1, .M = 2, .G = 1, .in = {3, 3}, .k = {3, 3},
         .s = {3, 2}, .pads = {1, 2, 1, 2}, .has_pads = 1, .want = {7, 3}},
        /* general */
        {.label = "T s2 pads bias batch", .transpose = 1, .nsp = 2, .N = 2, .C = 3, .M = 4, .G = 1,
         .in = {4, 5}, .k = {4, 3}, .s = {2, 2}, .pads = {1, 0, 2, 1}, .has_pads = 1, .bias = 1,
         .want = {7, 10}},
        {.label = "T groups 2 dil outpad", .transpose = 1, .nsp = 2, .N = 1, .C = 4, .M = 6, .G = 2, .in = {4, 3},
         .k = {3, 2}, .s = {2, 3}, .d = {2, 1}, .pads = {1, 1, 0, 1}, .has_pads = 1, .outpad = {1, 2},
         .has_outpad = 1, .bias = 1, .want = {11, 8}},
        {.label = "T valid", .transpose = 1, .nsp = 2, .N = 1, .C = 2, .M = 2, .G = 1, .in = {3, 3}, .k = {2, 3},
         .s = {2, 1}, .auto_pad = "VALID", .want = {6, 5}},
        {.label = "T pointwise", .transpose = 1, .nsp = 2, .N = 2, .C = 5, .M = 3, .G = 1, .in = {4, 3},
         .k = {1, 1}, .bias = 1, .want = {4, 3}},
        {.label = "T pointwise groups", .transpose = 1, .nsp = 2, .N = 1, .C = 4, .M = 6, .G = 2, .in = {3, 3},
         .k = {1, 1}, .want = {3, 3}},
        {.label = "T depthwise s2", .transpose = 1, .nsp = 2, .N = 2, .C = 3, .M = 3, .G = 3, .in = {4, 5},
         .k = {3, 3}, .s = {2, 2}, .pads = {1, 1, 0, 0}, .has_pads = 1, .bias = 1, .want = {8, 10}},
        {.label = "T depthwise mult2 d2", .transpose = 1, .nsp = 2, .N = 1, .C = 2, .M = 4, .G = 2, .in = {4, 4},
         .k = {2, 3}, .d = {2, 2}, .s = {1, 2}, .want = {6, 11}},
        {.label = "T depthwise output_shape grows", .transpose = 1, .nsp = 2, .N = 1, .C = 2, .M = 2, .G = 2,
         .in = {3, 3}, .k = {3, 3}, .s = {2, 2}, .outshape = {9, 8}, .has_outshape = 1, .bias = 1, .want = {9, 8}},
        {.label = "T output_shape grows", .transpose = 1, .nsp = 2, .N = 1, .C = 2, .M = 3, .G = 1, .in = {3, 3},
         .k = {3, 3}, .s = {2, 2}, .outshape = {9, 8}, .has_outshape = 1, .bias = 1, .want = {9, 8}},
        {.label = "T 1d s3 groups", .transpose = 1, .nsp = 1, .N = 2, .C = 4, .M = 6, .G = 2, .in = {5},
         .k = {4}, .s = {3}, .pads = {1, 2}, .has_pads = 1, .bias = 1, .want = {13}},
        {.label = "T 3d s2 pads", .transpose = 1, .nsp = 3, .N = 1, .C = 2, .M = 3, .G = 1, .in = {2, 3, 3},
         .k = {2, 3, 2}, .s = {2, 1, 2}, .pads = {0, 1, 1, 1, 0, 0}, .has_pads = 1, .bias = 1, .want = {3, 4, 5}},
    };
    for (size_t i = 0; i < GC_ARRAY_LEN(cases); i++) check_conv(&cases[i], 1);
}

/* Cases large enough for several im2col tiles (scratch budget) and the OpenMP paths; no finite
 * differences (too slow), only the naive forward and VJP. */
static void test_conv_tiled(int n_cases) {
    const cv_case cases[] = {
        {.label = "tiled conv 3x3 c64", .nsp = 2, .N = 1, .C = 64, .M = 4, .G = 1, .in = {100, 100},
         .k = {3, 3}, .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1, .want = {100, 100}},
        {.label = "tiled convT 3x3 m64", .transpose = 1, .nsp = 2, .N = 1, .C = 4, .M = 64, .G = 1,
         .in = {80, 80}, .k = {3, 3}, .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1, .want = {80, 80}},
        {.label = "tiled conv 3d", .nsp = 3, .N = 1, .C = 16, .M = 4, .G = 1, .in = {20, 20, 20},
         .k = {3, 3, 3}, .pads = {1, 0, 1, 1, 0, 1}, .has_pads = 1, .bias = 1, .want = {20, 18, 20}},
        {.label = "big depthwise s2", .nsp = 2, .N = 1, .C = 16, .M = 16, .G = 16, .in = {64, 64}, .k = {3, 3},
         .s = {2, 2}, .pads = {0, 0, 1, 1}, .has_pads = 1, .bias = 1, .want = {32, 32}},
        {.label = "big pointwise", .nsp = 2, .N = 1, .C = 32, .M = 24, .G = 1, .in = {40, 40}, .k = {1, 1},
         .bias = 1, .want = {40, 40}},
    };
    for (size_t i = 0; i < GC_ARRAY_LEN(cases) && (int)i < n_cases; i++) check_conv(&cases[i], 0);
}

/* Winograd F(2x2, 3x3) (3x3, stride 1, one group, constant W, at least 16 channels each way and
 * enough 2x2 tiles for two threads): forward vs the naive sum in double (bias or not), backward
 * (the rotated-weight correlation, accumulating) vs the naive VJP, at 1e-5 like every other
 * path; odd sizes (partial tiles), pads 0/1/2/3 and asymmetric, several images per block. Maps
 * of 12 tiles a row or more take the row-wise transforms (shorter ones, tile by tile): with
 * two threads their blocks end inside tile rows, and the rows split at the 64-tile sub-blocks.
 * Pass 1 of check_conv (W not constant) runs im2col on the same case: both paths meet the same
 * truth. */
static void test_conv_winograd(void) {
    const cv_case cases[] = {
        {.label = "winograd 3x3 p1 c16 m24 odd", .nsp = 2, .N = 1, .C = 16, .M = 24, .G = 1, .in = {17, 19},
         .k = {3, 3}, .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1, .want = {17, 19}},
        {.label = "winograd 3x3 p0 n3 no bias", .nsp = 2, .N = 3, .C = 20, .M = 16, .G = 1, .in = {14, 15},
         .k = {3, 3}, .want = {12, 13}},
        {.label = "winograd 3x3 asymmetric pads", .nsp = 2, .N = 2, .C = 16, .M = 16, .G = 1, .in = {13, 12},
         .k = {3, 3}, .pads = {0, 2, 1, 1}, .has_pads = 1, .bias = 1, .want = {12, 13}},
        {.label = "winograd 3x3 p2", .nsp = 2, .N = 1, .C = 32, .M = 16, .G = 1, .in = {12, 12}, .k = {3, 3},
         .pads = {2, 2, 2, 2}, .has_pads = 1, .bias = 1, .want = {14, 14}},
        {.label = "winograd 3x3 same_upper 7x7 n8", .nsp = 2, .N = 8, .C = 64, .M = 32, .G = 1, .in = {7, 7},
         .k = {3, 3}, .auto_pad = "SAME_UPPER", .bias = 1, .want = {7, 7}},
        {.label = "winograd 3x3 big map", .nsp = 2, .N = 1, .C = 16, .M = 16, .G = 1, .in = {70, 66}, .k = {3, 3},
         .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1, .want = {70, 66}},
        {.label = "winograd 3x3 rows p2 n2", .nsp = 2, .N = 2, .C = 16, .M = 16, .G = 1, .in = {25, 26},
         .k = {3, 3}, .pads = {2, 2, 2, 2}, .has_pads = 1, .bias = 1, .want = {27, 28}},
        {.label = "winograd 3x3 rows p0 odd", .nsp = 2, .N = 2, .C = 16, .M = 24, .G = 1, .in = {29, 27},
         .k = {3, 3}, .want = {27, 25}},
        {.label = "winograd 3x3 rows asymmetric pads", .nsp = 2, .N = 1, .C = 16, .M = 16, .G = 1, .in = {9, 44},
         .k = {3, 3}, .pads = {2, 0, 1, 2}, .has_pads = 1, .bias = 1, .want = {10, 44}},
        {.label = "winograd 3x3 rows p3", .nsp = 2, .N = 1, .C = 16, .M = 16, .G = 1, .in = {10, 30}, .k = {3, 3},
         .pads = {3, 3, 3, 3}, .has_pads = 1, .want = {14, 34}},
    };
    for (size_t i = 0; i < GC_ARRAY_LEN(cases); i++) check_conv(&cases[i], i < 2);
}

/* Winograd F(4x4, 3x3): the forward of the Winograd-eligible convolutions with C M <= 16384 and
 * enough 4x4 tiles (32 with two threads, 16 with one). check_conv: forward vs the naive sum in
 * double at the same 1e-5 as every path (F(4x4)'s largest error measured on these cases: 0.9-2.0e-6
 * of max |y| with 16-64 input channels, 3.8e-6 with 128; F(2x2) 4e-7), the backward
 * (F(2x2)) vs the naive VJP, im2col on pass 1. check_w4 adds 1 and 2 threads, a fused Relu, and
 * the path taken: with GCAM_NO_WINOGRAD4=1 (F(2x2)) the results must differ in rounding from
 * the default exactly when F(4x4) applies (f4), else be bit-identical. Geometries: output sizes
 * 0..3 mod 4 (partial tiles right and bottom), pads 0..3 and asymmetric, several images, blocks
 * ending inside tile rows (with two threads), rows split at the 32-tile sub-blocks, row-wise
 * (6 tiles a row or more) and tile-wise transforms, and C M just at, below and above 16384. */
/* GCAM_NO_WINOGRAD4 for the contexts (and harness runs) created from now on. */
static void set_no_winograd4(int on) {
    gc_tuning t;
    gc_tuning_set_default(NULL);
    gc_tuning_get(&t); /* the environment's other knobs (GCAM_ISA in the sgemm.cmake variants) */
    t.no_winograd4 = on;
    gc_tuning_set_default(on ? &t : NULL);
}

static void check_w4(const cv_case *c, int f4) {
    char label[256];
    int64_t pb[2], out[2], xd[4] = {c->N, c->C, c->in[0], c->in[1]}, wd[4] = {c->M, c->C, 3, 3}, bd[1] = {c->M};
    ref_geom(c, pb, out);
    const int64_t yd[4] = {c->N, c->M, out[0], out[1]}, ny = c->N * c->M * out[0] * out[1];
    gc_tensor in[3];
    memset(in, 0, sizeof in);
    in[0] = oc_rand(4, xd, -1, 1);
    in[1] = oc_rand(4, wd, -1, 1);
    if (c->bias) in[2] = oc_rand(1, bd, -1, 1);
    const int n_in = c->bias ? 3 : 2;
    double *ry = calloc((size_t)ny, sizeof(double));
    float *ryf = malloc((size_t)ny * sizeof(float)), *rrf = malloc((size_t)ny * sizeof(float));
    float *def = malloc((size_t)ny * sizeof(float));
    const int64_t per_ch = out[0] * out[1];
    if (c->bias)
        for (int64_t i = 0; i < ny; i++) ry[i] = ((float *)in[2].data)[(i / per_ch) % c->M];
    ref_run(c, pb, out, 0, in[0].data, in[1].data, ry, NULL, NULL);
    for (int64_t i = 0; i < ny; i++) {
        ryf[i] = (float)ry[i];
        rrf[i] = ry[i] < 0 ? 0.0f : (float)ry[i];
    }
    const double yscale = max_abs_d(ry, ny);
    gc_node *n = cv_node(c);
    gc_tensor y = oc_tensor(GC_F32, 4, yd);
    gc_err err = {0};
    oc_check(gc_op_get(n->op)->parse(n, &err) == GCAM_OK, "%s: parse: %s", c->label, err.msg);
    for (int nth = 1; nth <= 2; nth++)
        for (int relu = 0; relu < 2; relu++) {
            gcam_status st = run_op_opts(n, in, n_in, &y, NULL, NULL, 0, 0, 6u, nth, relu, &err);
            snprintf(label, sizeof label, "%s: forward, %d thread(s)%s", c->label, nth, relu ? ", fused Relu" : "");
            if (oc_check(st == GCAM_OK, "%s: %s", label, err.msg))
                oc_close(label, y.data, relu ? rrf : ryf, ny, 1e-5 * yscale, 1e-5);
            if (nth == 2 && !relu) memcpy(def, y.data, (size_t)ny * sizeof(float));
        }
    set_no_winograd4(1);
    gcam_status st = run_op_opts(n, in, n_in, &y, NULL, NULL, 0, 0, 6u, 2, 0, &err);
    set_no_winograd4(0);
    snprintf(label, sizeof label, "%s: no_winograd4", c->label);
    if (oc_check(st == GCAM_OK, "%s: %s", label, err.msg)) {
        oc_close(label, y.data, ryf, ny, 1e-5 * yscale, 1e-5);
        const int same = !memcmp(def, y.data, (size_t)ny * sizeof(float));
        oc_check(same != f4, "%s: F(4x4) %s, but the results are %s", label, f4 ? "expected" : "not expected",
                 same ? "bit-identical" : "different");
    }
    oc_tensor_free(&y);
    oc_node_free(n);
    free(ry);
    free(ryf);
    free(rrf);
    free(def);
    for (int i = 0; i < 3; i++) oc_tensor_free(&in[i]);
}

/* Winograd with few tiles at two threads (wg_shared: one block of every tile, its input channels,
 * GEMMs and output channels shared out between the threads; F(2x2) took im2col there before, and
 * still does in a forward no backward passes through): check_conv (forward and backward against
 * the naive sums, at 2 threads), and, as in an explainer's context (k.exact), forward and backward
 * bit-identical to one thread's, which runs the same block whole (each element is summed by the
 * same operations in the same order; a channel lost or written twice by the split would show).
 * Tile-wise and row-wise transforms, several images per block; without k.exact, F(4x4) forwards
 * on 32-63 tiles (shared out too). */
static void check_wg_threads(const cv_case *c) {
    char label[256];
    int64_t pb[2], out[2], xd[4] = {c->N, c->C, c->in[0], c->in[1]}, wd[4] = {c->M, c->C, 3, 3}, bd[1] = {c->M};
    ref_geom(c, pb, out);
    const int64_t yd[4] = {c->N, c->M, out[0], out[1]}, ny = c->N * c->M * out[0] * out[1], nx = prod(xd, 4);
    gc_tensor in[3];
    memset(in, 0, sizeof in);
    in[0] = oc_rand(4, xd, -1, 1);
    in[1] = oc_rand(4, wd, -1, 1);
    in[2] = oc_rand(1, bd, -1, 1);
    gc_node *n = cv_node(c);
    gc_tensor y = oc_tensor(GC_F32, 4, yd), gy = oc_rand(4, yd, -1, 1), gx = oc_tensor(GC_F32, 4, xd);
    float *y1 = malloc((size_t)ny * sizeof(float)), *gx1 = malloc((size_t)nx * sizeof(float));
    gc_err err = {0};
    gc_tensor tmp;
    fw_exact = 1;
    if (oc_check(oc_forward(n, in, 3, 6u, &tmp, 1, &err) == GCAM_OK, "%s: infer: %s", c->label, err.msg)) {
        oc_tensor_free(&tmp);
        for (int nth = 1; nth <= 2; nth++) {
            snprintf(label, sizeof label, "%s (%d thread%s)", c->label, nth, nth > 1 ? "s" : "");
            gcam_status st = run_op_opts(n, in, 3, &y, NULL, NULL, 0, 0, 6u, nth, 0, &err);
            if (!oc_check(st == GCAM_OK, "%s: forward: %s", label, err.msg)) continue;
            memset(gx.data, 0, (size_t)nx * sizeof(float));
            st = run_op_opts(n, in, 3, &y, &gy, &gx, 1, 0, 6u, nth, 0, &err);
            if (!oc_check(st == GCAM_OK, "%s: backward: %s", label, err.msg)) continue;
            if (nth == 1) {
                memcpy(y1, y.data, (size_t)ny * sizeof(float));
                memcpy(gx1, gx.data, (size_t)nx * sizeof(float));
                continue;
            }
            oc_check(!memcmp(y.data, y1, (size_t)ny * sizeof(float)), "%s: forward bit-identical to 1 thread's", label);
            oc_check(!memcmp(gx.data, gx1, (size_t)nx * sizeof(float)), "%s: backward bit-identical to 1 thread's",
                     label);
        }
    }
    fw_exact = 0;
    oc_tensor_free(&y);
    oc_tensor_free(&gy);
    oc_tensor_free(&gx);
    oc_node_free(n);
    free(y1);
    free(gx1);
    for (int i = 0; i < 3; i++) oc_tensor_free(&in[i]);
}

static void test_conv_winograd_shared(void) {
    const cv_case cases[] = {
        /* 14x14: F(4x4) forward (16 tiles), F(2x2) data gradient (49 tiles), tile-wise */
        {.label = "winograd shared 14x14 c32 m48", .nsp = 2, .N = 1, .C = 32, .M = 48, .G = 1, .in = {14, 14},
         .k = {3, 3}, .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1, .want = {14, 14}},
        /* C M > 16384: F(2x2) forward too */
        {.label = "winograd shared 14x14 c129 m129 (F2x2)", .nsp = 2, .N = 1, .C = 129, .M = 129, .G = 1,
         .in = {14, 14}, .k = {3, 3}, .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1, .want = {14, 14}},
        /* 12 tiles a row, 48 tiles: F(2x2) row-wise; F(4x4) 18 tiles, 6 a row: row-wise */
        {.label = "winograd shared rows 8x24", .nsp = 2, .N = 1, .C = 16, .M = 24, .G = 1, .in = {8, 24}, .k = {3, 3},
         .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1, .want = {8, 24}},
        {.label = "winograd shared rows 8x24 c129 m130 (F2x2)", .nsp = 2, .N = 1, .C = 129, .M = 130, .G = 1,
         .in = {8, 24}, .k = {3, 3}, .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1, .want = {8, 24}},
        /* F(4x4) on 49 tiles (check_conv, no k.exact): one block shared out, 32 + 17 before */
        {.label = "winograd shared F4 28x28 c24 m40", .nsp = 2, .N = 1, .C = 24, .M = 40, .G = 1, .in = {28, 28},
         .k = {3, 3}, .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1, .want = {28, 28}},
        /* two images in the block, odd sizes, asymmetric pads */
        {.label = "winograd shared n2 odd", .nsp = 2, .N = 2, .C = 24, .M = 16, .G = 1, .in = {11, 9}, .k = {3, 3},
         .pads = {0, 2, 1, 1}, .has_pads = 1, .bias = 1, .want = {10, 10}},
    };
    for (size_t i = 0; i < GC_ARRAY_LEN(cases); i++) {
        check_conv(&cases[i], 0);
        /* F(2x2) on its 196 tiles in an explainer's forward is two blocks at 2 threads, one at 1:
         * the same sums with sgemm.c, not with every BLAS (test_ops_conv_blas) */
        if (strstr(cases[i].label, "F4 28x28") == NULL) check_wg_threads(&cases[i]);
    }
}

static void test_conv_winograd4(void) {
    const cv_case cases[] = {
        /* 23x21 out (3, 1 mod 4), 6 tiles a row: row-wise, blocks of 24 */
        {.label = "winograd4 p1 c16 m24 odd", .nsp = 2, .N = 1, .C = 16, .M = 24, .G = 1, .in = {23, 21},
         .k = {3, 3}, .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1, .want = {23, 21}},
        /* 16x17 out (0, 1 mod 4), 5 tiles a row: tile-wise, blocks of 32 across images */
        {.label = "winograd4 p0 n3 no bias", .nsp = 2, .N = 3, .C = 20, .M = 16, .G = 1, .in = {18, 19},
         .k = {3, 3}, .want = {16, 17}},
        {.label = "winograd4 asymmetric pads", .nsp = 2, .N = 2, .C = 16, .M = 16, .G = 1, .in = {13, 30},
         .k = {3, 3}, .pads = {0, 2, 1, 1}, .has_pads = 1, .bias = 1, .want = {12, 31}},
        /* 28x28 out, 7 tiles a row, blocks of 32 end inside tile rows */
        {.label = "winograd4 p2", .nsp = 2, .N = 1, .C = 32, .M = 16, .G = 1, .in = {26, 26}, .k = {3, 3},
         .pads = {2, 2, 2, 2}, .has_pads = 1, .bias = 1, .want = {28, 28}},
        /* 14x50 out (2 mod 4), 13 tiles a row: runs split at the sub-blocks */
        {.label = "winograd4 rows p3", .nsp = 2, .N = 1, .C = 16, .M = 16, .G = 1, .in = {10, 46}, .k = {3, 3},
         .pads = {3, 3, 3, 3}, .has_pads = 1, .want = {14, 50}},
        {.label = "winograd4 same_upper 7x7 n8", .nsp = 2, .N = 8, .C = 64, .M = 32, .G = 1, .in = {7, 7},
         .k = {3, 3}, .auto_pad = "SAME_UPPER", .bias = 1, .want = {7, 7}},
        {.label = "winograd4 n2 p1 15x27", .nsp = 2, .N = 2, .C = 24, .M = 16, .G = 1, .in = {15, 27},
         .k = {3, 3}, .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1, .want = {15, 27}},
        /* C M = 16384 and 16383: F(4x4); 16512: F(2x2) */
        {.label = "winograd4 c128 m128", .nsp = 2, .N = 4, .C = 128, .M = 128, .G = 1, .in = {11, 10},
         .k = {3, 3}, .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1, .want = {11, 10}},
        {.label = "winograd4 c127 m129", .nsp = 2, .N = 4, .C = 127, .M = 129, .G = 1, .in = {11, 10},
         .k = {3, 3}, .pads = {1, 1, 1, 1}, .has_pads = 1, .want = {11, 10}},
        {.label = "winograd4 c128 m129 (F2x2)", .nsp = 2, .N = 4, .C = 128, .M = 129, .G = 1, .in = {11, 10},
         .k = {3, 3}, .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1, .want = {11, 10}},
    };
    for (size_t i = 0; i < GC_ARRAY_LEN(cases); i++) {
        check_conv(&cases[i], 0);
        check_w4(&cases[i], cases[i].C * cases[i].M <= 16384);
    }
    /* the F(2x2) cases again with F(4x4) off: their forward stays covered */
    set_no_winograd4(1);
    test_conv_winograd();
    set_no_winograd4(0);
}

/* Pointwise convolutions of a batch on small maps: one GEMM over all the images' columns
 * (gathered, then scattered back with the bias), forward and data gradient vs naive. */
static void test_conv_pointwise_batched(void) {
    const cv_case cases[] = {
        {.label = "pointwise batched 7x7 n3", .nsp = 2, .N = 3, .C = 32, .M = 24, .G = 1, .in = {7, 7},
         .k = {1, 1}, .bias = 1, .want = {7, 7}},
        {.label = "pointwise batched 5x3 n2 no bias", .nsp = 2, .N = 2, .C = 12, .M = 40, .G = 1, .in = {5, 3},
         .k = {1, 1}, .want = {5, 3}},
        {.label = "pointwise batched 1-d n4", .nsp = 1, .N = 4, .C = 16, .M = 16, .G = 1, .in = {9}, .k = {1},
         .bias = 1, .want = {9}},
    };
    for (size_t i = 0; i < GC_ARRAY_LEN(cases); i++) check_conv(&cases[i], i == 0);
}

/* A following Add fused in (k.fuse.res, set by plan.c where no backward passes): y = conv(x) + b + res,
 * then the fused Relu when there is one, on every forward path: pointwise per image (threads
 * taking whole images) and per image with a threaded GEMM, pointwise batched (7x7), im2col,
 * grouped, F(2x2) and F(4x4) Winograd, depthwise. 1 and 2 threads, against the naive sum in
 * double at the 1e-5 every path meets. */
static void check_fused_add(const cv_case *c) {
    char label[256];
    const int ns = c->nsp;
    int64_t pb[3], out[3], xd[5] = {c->N, c->C}, wd[5] = {c->M, c->C / c->G}, bd[1] = {c->M}, yd[5] = {c->N, c->M};
    ref_geom(c, pb, out);
    for (int i = 0; i < ns; i++) {
        xd[2 + i] = c->in[i];
        wd[2 + i] = c->k[i];
        yd[2 + i] = out[i];
    }
    const int64_t ny = prod(yd, ns + 2);
    gc_tensor in[3];
    memset(in, 0, sizeof in);
    in[0] = oc_rand(ns + 2, xd, -1, 1);
    in[1] = oc_rand(ns + 2, wd, -1, 1);
    if (c->bias) in[2] = oc_rand(1, bd, -1, 1);
    gc_tensor res = oc_rand(ns + 2, yd, -2, 2);
    const int n_in = c->bias ? 3 : 2;
    double *ry = calloc((size_t)ny, sizeof(double));
    float *ryf = malloc((size_t)ny * sizeof(float)), *rrf = malloc((size_t)ny * sizeof(float));
    const int64_t per_ch = ny / (c->N * c->M);
    for (int64_t i = 0; i < ny; i++)
        ry[i] = (double)((float *)res.data)[i] + (c->bias ? ((float *)in[2].data)[(i / per_ch) % c->M] : 0.0);
    ref_run(c, pb, out, 0, in[0].data, in[1].data, ry, NULL, NULL);
    for (int64_t i = 0; i < ny; i++) {
        ryf[i] = (float)ry[i];
        rrf[i] = ry[i] < 0 ? 0.0f : (float)ry[i];
    }
    const double yscale = max_abs_d(ry, ny);
    gc_node *n = cv_node(c);
    gc_tensor y = oc_tensor(GC_F32, ns + 2, yd);
    gc_err err = {0};
    oc_check(gc_op_get(n->op)->parse(n, &err) == GCAM_OK, "%s: parse: %s", c->label, err.msg);
    for (int nth = 1; nth <= 2; nth++)
        for (int relu = 0; relu < 2; relu++) {
            fused_res = &res;
            gcam_status st = run_op_opts(n, in, n_in, &y, NULL, NULL, 0, 0, 6u, nth, relu, &err);
            fused_res = NULL;
            snprintf(label, sizeof label, "%s: fused Add, %d thread(s)%s", c->label, nth, relu ? ", fused Relu" : "");
            if (oc_check(st == GCAM_OK, "%s: %s", label, err.msg))
                oc_close(label, y.data, relu ? rrf : ryf, ny, 1e-5 * yscale, 1e-5);
        }
    oc_tensor_free(&y);
    oc_tensor_free(&res);
    oc_node_free(n);
    free(ry);
    free(ryf);
    free(rrf);
    for (int i = 0; i < 3; i++) oc_tensor_free(&in[i]);
}

/* The fused activations (k.fuse.relu, k.fuse.act: a Clip's clamp, a SiLU) with and without a fused
 * Add, on every forward path (the cases of test_conv_fused_add): the output must be, bit for bit,
 * kmath.h's gc_act1 (the standalone Clip / Sigmoid + Mul kernels' function) of the same path's
 * output without the activation, which itself meets the naive sum (+ bias + res) at 1e-5. */
static void check_fused_act(const cv_case *c) {
    static const struct {
        int relu, act;
        float lo, hi;
        const char *name;
    } acts[] = {{1, 0, 0.0f, INFINITY, "Relu"}, {0, GC_ACT_CLAMP, 0.0f, 6.0f, "Clip [0, 6]"},
                {0, GC_ACT_CLAMP, -0.5f, 0.75f, "Clip [-0.5, 0.75]"}, {0, GC_ACT_CLAMP, 0.25f, 0.25f, "Clip [0.25, 0.25]"},
                {0, GC_ACT_SILU, 0.0f, 0.0f, "SiLU"}};
    char label[256];
    const int ns = c->nsp;
    int64_t pb[3], out[3], xd[5] = {c->N, c->C}, wd[5] = {c->M, c->C / c->G}, bd[1] = {c->M}, yd[5] = {c->N, c->M};
    ref_geom(c, pb, out);
    for (int i = 0; i < ns; i++) {
        xd[2 + i] = c->in[i];
        wd[2 + i] = c->k[i];
        yd[2 + i] = out[i];
    }
    const int64_t ny = prod(yd, ns + 2), per_ch = ny / (c->N * c->M);
    gc_tensor in[3];
    memset(in, 0, sizeof in);
    in[0] = oc_rand(ns + 2, xd, -1, 1);
    in[1] = oc_rand(ns + 2, wd, -1, 1);
    if (c->bias) in[2] = oc_rand(1, bd, -1, 1);
    gc_tensor res = oc_rand(ns + 2, yd, -2, 2);
    const int n_in = c->bias ? 3 : 2;
    gc_node *n = cv_node(c);
    gc_tensor y = oc_tensor(GC_F32, ns + 2, yd), plain = oc_tensor(GC_F32, ns + 2, yd);
    gc_err err = {0};
    oc_check(gc_op_get(n->op)->parse(n, &err) == GCAM_OK, "%s: parse: %s", c->label, err.msg);
    double *ry = calloc((size_t)ny, sizeof(double));
    float *ryf = malloc((size_t)ny * sizeof(float));
    for (int with_res = 0; with_res < 2; with_res++) {
        for (int64_t i = 0; i < ny; i++)
            ry[i] = (with_res ? (double)((float *)res.data)[i] : 0.0) +
                    (c->bias ? ((float *)in[2].data)[(i / per_ch) % c->M] : 0.0);
        ref_run(c, pb, out, 0, in[0].data, in[1].data, ry, NULL, NULL);
        for (int64_t i = 0; i < ny; i++) ryf[i] = (float)ry[i];
        const double yscale = max_abs_d(ry, ny);
        for (int nth = 1; nth <= 2; nth++) {
            fused_res = with_res ? &res : NULL;
            gcam_status st = run_op_opts(n, in, n_in, &plain, NULL, NULL, 0, 0, 6u, nth, 0, &err);
            snprintf(label, sizeof label, "%s: %s%d thread(s), no activation", c->label, with_res ? "fused Add, " : "",
                     nth);
            if (oc_check(st == GCAM_OK, "%s: %s", label, err.msg))
                oc_close(label, plain.data, ryf, ny, 1e-5 * yscale, 1e-5);
            for (size_t a = 0; a < GC_ARRAY_LEN(acts); a++) {
                fused_act = acts[a].act, fused_lo = acts[a].lo, fused_hi = acts[a].hi;
                st = run_op_opts(n, in, n_in, &y, NULL, NULL, 0, 0, 6u, nth, acts[a].relu, &err);
                fused_act = 0;
                int bad = 0;
                const float *py = y.data, *pp = plain.data;
                for (int64_t i = 0; i < ny && st == GCAM_OK; i++) {
                    const float want = gc_act1(pp[i], acts[a].relu ? GC_ACT_CLAMP : acts[a].act, acts[a].lo, acts[a].hi);
                    bad += memcmp(&py[i], &want, sizeof want) != 0;
                }
                oc_check(st == GCAM_OK && bad == 0, "%s: %s%d thread(s), fused %s: %d elements not the standalone "
                         "activation's bits (%s)", c->label, with_res ? "fused Add, " : "", nth, acts[a].name, bad,
                         err.msg);
            }
            fused_res = NULL;
        }
    }
    oc_tensor_free(&y);
    oc_tensor_free(&plain);
    oc_tensor_free(&res);
    oc_node_free(n);
    free(ry);
    free(ryf);
    for (int i = 0; i < 3; i++) oc_tensor_free(&in[i]);
}

static void test_conv_fused_add(void) {
    const cv_case cases[] = {
        {.label = "fused add pointwise by image 20x20 n4", .nsp = 2, .N = 4, .C = 32, .M = 48, .G = 1,
         .in = {20, 20}, .k = {1, 1}, .bias = 1},
        {.label = "fused add pointwise n1 no bias", .nsp = 2, .N = 1, .C = 24, .M = 40, .G = 1, .in = {11, 13},
         .k = {1, 1}},
        {.label = "fused add pointwise batched 7x7 n3", .nsp = 2, .N = 3, .C = 32, .M = 24, .G = 1, .in = {7, 7},
         .k = {1, 1}, .bias = 1},
        {.label = "fused add im2col 3x3 s2", .nsp = 2, .N = 2, .C = 8, .M = 16, .G = 1, .in = {15, 16},
         .k = {3, 3}, .s = {2, 2}, .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1},
        {.label = "fused add grouped 3x3", .nsp = 2, .N = 2, .C = 8, .M = 12, .G = 2, .in = {9, 9}, .k = {3, 3},
         .pads = {1, 1, 1, 1}, .has_pads = 1},
        {.label = "fused add winograd F2 c128 m129", .nsp = 2, .N = 2, .C = 128, .M = 129, .G = 1, .in = {11, 10},
         .k = {3, 3}, .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1},
        {.label = "fused add winograd F4 c16 m24", .nsp = 2, .N = 1, .C = 16, .M = 24, .G = 1, .in = {23, 21},
         .k = {3, 3}, .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1},
        {.label = "fused add depthwise 3x3 n2", .nsp = 2, .N = 2, .C = 16, .M = 16, .G = 16, .in = {12, 12},
         .k = {3, 3}, .pads = {1, 1, 1, 1}, .has_pads = 1, .bias = 1},
    };
    for (size_t i = 0; i < GC_ARRAY_LEN(cases); i++) check_fused_add(&cases[i]);
    for (size_t i = 0; i < GC_ARRAY_LEN(cases); i++) check_fused_act(&cases[i]);
}

/* Bias given as an omitted third input; attribute and shape errors are reported, not crashed on. */
static void test_conv_errors(void) {
    gc_err err = {0};
    int64_t xd[4] = {1, 4, 5, 5}, wd[4] = {6, 2, 3, 3};
    gc_tensor in[3], y;
    memset(in, 0, sizeof in);
    in[0] = oc_rand(4, xd, -1, 1);
    in[1] = oc_rand(4, wd, -1, 1);
    {
        gc_node *n = oc_node("Conv", 13, 3, 1);
        oc_attr_i(n, "group", 2);
        gcam_status st = oc_forward(n, in, 3, 6u, &y, 1, &err);
        oc_check(st == GCAM_OK && y.shape.d[1] == 6 && y.shape.d[2] == 3, "omitted bias input: %s", err.msg);
        oc_tensor_free(&y);
        oc_node_free(n);
    }
    struct {
        const char *what, *attr;
        int count;
        int64_t v[4];
        gcam_status want;
    } bad[] = {
        {"group 3 does not divide C", "group", -1, {3}, GCAM_E_SHAPE},
        {"W channels do not fit group 1", "group", -1, {1}, GCAM_E_SHAPE},
        {"zero stride", "strides", 2, {0, 1}, GCAM_E_FORMAT},
        {"negative pad", "pads", 4, {0, -1, 0, 0}, GCAM_E_FORMAT},
        {"pads count", "pads", 2, {1, 1}, GCAM_E_FORMAT},
        {"kernel_shape mismatch", "kernel_shape", 2, {3, 2}, GCAM_E_SHAPE},
        {"zero dilation", "dilations", 2, {1, 0}, GCAM_E_FORMAT},
        {"output too small", "dilations", 2, {3, 3}, GCAM_E_SHAPE},
    };
    for (size_t i = 0; i < GC_ARRAY_LEN(bad); i++) {
        gc_node *n = oc_node("Conv", 13, 2, 1);
        if (bad[i].count < 0) oc_attr_i(n, bad[i].attr, bad[i].v[0]);
        else oc_attr_ints(n, bad[i].attr, bad[i].count, bad[i].v);
        if (strcmp(bad[i].attr, "group")) oc_attr_i(n, "group", 2);
        memset(&err, 0, sizeof err);
        gcam_status st = oc_forward(n, in, 2, 6u, &y, 1, &err);
        oc_check(st == bad[i].want && err.msg[0], "error case '%s': status %d (want %d), message '%s'", bad[i].what,
                 (int)st, (int)bad[i].want, err.msg);
        oc_tensor_free(&y);
        oc_node_free(n);
    }
    {
        gc_node *n = oc_node("Conv", 13, 2, 1);
        oc_attr_s(n, "auto_pad", "SAME");
        memset(&err, 0, sizeof err);
        gcam_status st = oc_forward(n, in, 2, 6u, &y, 1, &err);
        oc_check(st == GCAM_E_FORMAT && strstr(err.msg, "auto_pad"), "bad auto_pad: '%s'", err.msg);
        oc_tensor_free(&y);
        oc_node_free(n);
    }
    {
        int64_t bd[1] = {5};
        in[2] = oc_rand(1, bd, -1, 1);
        gc_node *n = oc_node("Conv", 13, 3, 1);
        oc_attr_i(n, "group", 2);
        memset(&err, 0, sizeof err);
        gcam_status st = oc_forward(n, in, 3, 6u, &y, 1, &err);
        oc_check(st == GCAM_E_SHAPE, "bias of the wrong length: '%s'", err.msg);
        oc_tensor_free(&y);
        oc_node_free(n);
    }
    for (int i = 0; i < 3; i++) oc_tensor_free(&in[i]);
}

/* ---------------------------------------------------------------- Gemm */

static void check_gemm(int64_t M, int64_t N, int64_t K, int ta, int tb, int cr, const int64_t *cdims, int opset,
                       int max_elems) {
    char label[160];
    snprintf(label, sizeof label, "Gemm %lldx%lldx%lld transA=%d transB=%d C rank %d (%lld,%lld)", (long long)M,
             (long long)N, (long long)K, ta, tb, cr, (long long)(cr > 0 ? cdims[0] : 0),
             (long long)(cr > 1 ? cdims[1] : 0));
    int64_t ad[2] = {ta ? K : M, ta ? M : K}, bd[2] = {tb ? N : K, tb ? K : N};
    gc_tensor in[3];
    memset(in, 0, sizeof in);
    in[0] = oc_rand(2, ad, -1, 1);
    in[1] = oc_rand(2, bd, -1, 1);
    int n_in = cr < 0 ? 2 : 3;
    if (cr >= 0) in[2] = oc_rand(cr, cdims, -1, 1);
    const float alpha = 0.75f, beta = 1.5f;
    gc_node *n = oc_node("Gemm", opset, n_in, 1);
    oc_attr_f(n, "alpha", alpha);
    oc_attr_f(n, "beta", beta);
    if (ta) oc_attr_i(n, "transA", 1);
    if (tb) oc_attr_i(n, "transB", 1);
    if (opset < 7) oc_attr_i(n, "broadcast", 1); /* opset 6 form: ignored */
    float *ref = malloc((size_t)(M * N) * sizeof(float));
    const float *a = in[0].data, *b = in[1].data, *c = in[2].data;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0;
            for (int64_t kk = 0; kk < K; kk++)
                acc += (double)a[ta ? kk * M + i : i * K + kk] * b[tb ? j * K + kk : kk * N + j];
            double cv = 0;
            if (cr == 0 || (cr == 1 && cdims[0] == 1)) cv = c[0];
            else if (cr == 1) cv = c[j];
            else if (cr == 2) cv = c[(cdims[0] == 1 ? 0 : i) * cdims[1] + (cdims[1] == 1 ? 0 : j)];
            ref[i * N + j] = (float)(alpha * acc + beta * cv);
        }
    gc_tensor y;
    gc_err err = {0};
    gcam_status st = oc_forward(n, in, n_in, 0u, &y, 1, &err);
    if (oc_check(st == GCAM_OK && y.shape.ndim == 2 && y.shape.d[0] == M && y.shape.d[1] == N, "%s: forward: %s",
                 label, err.msg))
        oc_close(label, y.data, ref, M * N, 1e-5 * sqrt((double)K), 1e-5);
    oc_tensor_free(&y);
    /* A, B and C all dynamic; bilinear, so h=1e-2 is exact up to rounding */
    oc_gradcheck(label, n, in, n_in, 0u, 1, n_in == 3 ? 7u : 3u, 1e-2, 1e-3, max_elems);
    oc_node_free(n);
    free(ref);
    for (int i = 0; i < 3; i++) oc_tensor_free(&in[i]);
}

static void test_gemm(void) {
    const int64_t M = 3, N = 4, K = 5;
    /* C shapes: none, scalar, (1), (N), (1, N), (M, 1), (M, N) */
    const int cr[] = {-1, 0, 1, 1, 2, 2, 2};
    const int64_t cdims[][2] = {{0, 0}, {0, 0}, {1, 0}, {N, 0}, {1, N}, {M, 1}, {M, N}};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (size_t ci = 0; ci < GC_ARRAY_LEN(cr); ci++)
                check_gemm(M, N, K, ta, tb, cr[ci], cdims[ci], ci == 1 ? 6 : 13, 64);
    /* a mostly-zero dY (a class target's): dA by one row of B' per nonzero instead of the GEMM */
    oc_set_gout_density(0.05);
    const int64_t bias40[1] = {40};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) check_gemm(4, 40, 7, ta, tb, 1, bias40, 13, 64);
    oc_set_gout_density(1.0);
    /* C broadcast errors */
    {
        int64_t ad[2] = {M, K}, bd[2] = {K, N}, cd[2] = {2, N};
        gc_tensor in[3] = {oc_rand(2, ad, -1, 1), oc_rand(2, bd, -1, 1), oc_rand(2, cd, -1, 1)}, y;
        gc_err err = {0};
        gc_node *n = oc_node("Gemm", 13, 3, 1);
        oc_check(oc_forward(n, in, 3, 0u, &y, 1, &err) == GCAM_E_SHAPE, "Gemm C (2, N) must not broadcast to (3, N)");
        oc_tensor_free(&y);
        oc_node_free(n);
        n = oc_node("Gemm", 13, 2, 1);
        oc_attr_i(n, "transA", 1);
        memset(&err, 0, sizeof err);
        oc_check(oc_forward(n, in, 2, 0u, &y, 1, &err) == GCAM_E_SHAPE, "Gemm inner dims differ: %s", err.msg);
        oc_tensor_free(&y);
        oc_node_free(n);
        for (int i = 0; i < 3; i++) oc_tensor_free(&in[i]);
    }
}

/* ---------------------------------------------------------------- MatMul */

static void check_matmul(const char *label, int ra, const int64_t *ad, int rb, const int64_t *bd, int ry,
                         const int64_t *yd, int max_elems) {
    gc_tensor in[2] = {oc_rand(ra, ad, -1, 1), oc_rand(rb, bd, -1, 1)}, y;
    gc_node *n = oc_node("MatMul", 13, 2, 1);
    gc_err err = {0};
    gcam_status st = oc_forward(n, in, 2, 0u, &y, 1, &err);
    int ok = oc_check(st == GCAM_OK && y.shape.ndim == ry, "%s: forward: %s (rank %d)", label, err.msg,
                      st == GCAM_OK ? y.shape.ndim : -1);
    for (int i = 0; ok && i < ry; i++) ok = oc_check(y.shape.d[i] == yd[i], "%s: output dim %d", label, i);
    if (ok) {
        /* naive numpy semantics: promote 1-D, broadcast the batch dims */
        int64_t M = ra == 1 ? 1 : ad[ra - 2], K = ad[ra - 1], N = rb == 1 ? 1 : bd[rb - 1];
        int nbd = ry - (ra > 1) - (rb > 1), nba = ra > 2 ? ra - 2 : 0, nbb = rb > 2 ? rb - 2 : 0;
        int64_t nb = prod(yd, nbd), total = gc_numel(&y);
        float *ref = malloc((size_t)total * sizeof(float));
        const float *a = in[0].data, *b = in[1].data;
        for (int64_t bi = 0; bi < nb; bi++) {
            int64_t idx[8], oa = 0, ob = 0;
            unravel(idx, bi, yd, nbd);
            for (int i = 0; i < nba; i++) oa = oa * ad[i] + (ad[i] == 1 ? 0 : idx[nbd - nba + i]);
            for (int i = 0; i < nbb; i++) ob = ob * bd[i] + (bd[i] == 1 ? 0 : idx[nbd - nbb + i]);
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) {
                    double acc = 0;
                    for (int64_t kk = 0; kk < K; kk++)
                        acc += (double)a[oa * M * K + i * K + kk] * b[ob * K * N + kk * N + j];
                    ref[bi * M * N + i * N + j] = (float)acc;
                }
        }
        oc_close(label, y.data, ref, total, 1e-5, 1e-5);
        free(ref);
    }
    oc_tensor_free(&y);
    oc_gradcheck(label, n, in, 2, 0u, 1, 3u, 1e-2, 1e-3, max_elems); /* bilinear: tight tolerance */
    oc_node_free(n);
    oc_tensor_free(&in[0]);
    oc_tensor_free(&in[1]);
}

static void test_matmul(void) {
    {
        int64_t a[] = {4}, b[] = {4, 3}, y[] = {3};
        check_matmul("MatMul 1-D x 2-D", 1, a, 2, b, 1, y, 64);
    }
    {
        int64_t a[] = {3, 4}, b[] = {4}, y[] = {3};
        check_matmul("MatMul 2-D x 1-D", 2, a, 1, b, 1, y, 64);
    }
    {
        int64_t a[] = {5}, b[] = {5}, y[] = {0};
        check_matmul("MatMul 1-D x 1-D", 1, a, 1, b, 0, y, 64);
    }
    {
        int64_t a[] = {3, 4}, b[] = {4, 3}, y[] = {3, 3}; /* node: test_matmul_2d */
        check_matmul("MatMul 2-D", 2, a, 2, b, 2, y, 64);
    }
    {
        int64_t a[] = {2, 3, 4}, b[] = {2, 4, 3}, y[] = {2, 3, 3}; /* node: test_matmul_3d */
        check_matmul("MatMul 3-D", 3, a, 3, b, 3, y, 64);
    }
    {
        int64_t a[] = {1, 2, 3, 4}, b[] = {1, 2, 4, 3}, y[] = {1, 2, 3, 3}; /* node: test_matmul_4d */
        check_matmul("MatMul 4-D", 4, a, 4, b, 4, y, 64);
    }
    {
        int64_t a[] = {2, 1, 3, 4}, b[] = {5, 4, 2}, y[] = {2, 5, 3, 2};
        check_matmul("MatMul (2,1,3,4)x(5,4,2)", 4, a, 3, b, 4, y, 64);
    }
    {
        int64_t a[] = {2, 3, 4}, b[] = {4, 5}, y[] = {2, 3, 5};
        check_matmul("MatMul folded (2,3,4)x(4,5)", 3, a, 2, b, 3, y, 64);
    }
    {
        int64_t a[] = {2, 3, 3, 4}, b[] = {1, 1, 4, 5}, y[] = {2, 3, 3, 5};
        check_matmul("MatMul folded (2,3,3,4)x(1,1,4,5)", 4, a, 4, b, 4, y, 64);
    }
    {
        int64_t a[] = {3, 4}, b[] = {2, 4, 5}, y[] = {2, 3, 5};
        check_matmul("MatMul A broadcast (3,4)x(2,4,5)", 2, a, 3, b, 3, y, 64);
    }
    {
        int64_t a[] = {2, 3, 4}, b[] = {4}, y[] = {2, 3};
        check_matmul("MatMul (2,3,4)x(4)", 3, a, 1, b, 2, y, 64);
    }
    {
        int64_t a[] = {4}, b[] = {2, 4, 5}, y[] = {2, 5};
        check_matmul("MatMul (4)x(2,4,5)", 1, a, 3, b, 2, y, 64);
    }
    {
        int64_t a[] = {3, 1, 2, 4}, b[] = {1, 2, 4, 3}, y[] = {3, 2, 2, 3};
        check_matmul("MatMul both broadcast (3,1,2,4)x(1,2,4,3)", 4, a, 4, b, 4, y, 64);
    }
    oc_set_gout_density(0.05); /* mostly-zero dY: the sparse dA path, folded and per batch */
    {
        int64_t a[] = {2, 3, 4}, b[] = {4, 40}, y[] = {2, 3, 40};
        check_matmul("MatMul sparse dY folded (2,3,4)x(4,40)", 3, a, 2, b, 3, y, 64);
    }
    {
        int64_t a[] = {2, 3, 4}, b[] = {2, 4, 40}, y[] = {2, 3, 40};
        check_matmul("MatMul sparse dY batched (2,3,4)x(2,4,40)", 3, a, 3, b, 3, y, 64);
    }
    oc_set_gout_density(1.0);
    {
        int64_t ad[] = {2, 3, 4}, bd[] = {3, 5, 2};
        gc_tensor in[2] = {oc_rand(3, ad, -1, 1), oc_rand(3, bd, -1, 1)}, y;
        gc_err err = {0};
        gc_node *n = oc_node("MatMul", 13, 2, 1);
        oc_check(oc_forward(n, in, 2, 0u, &y, 1, &err) == GCAM_E_SHAPE, "MatMul inner dims differ");
        oc_tensor_free(&y);
        oc_node_free(n);
        oc_tensor_free(&in[0]);
        oc_tensor_free(&in[1]);
    }
}

/* Sizes above the threshold where the GEMMs split over OpenMP threads (run once with OpenBLAS
 * threading, once single-threaded OpenBLAS: the context's one-pool mode), and determinism. */
static void test_big_gemms(int max_elems) {
    const int64_t c1[1] = {80}, c2[2] = {96, 1};
    check_gemm(96, 80, 160, 1, 1, 1, c1, 13, max_elems);
    check_gemm(96, 80, 160, 0, 1, 2, c2, 13, max_elems);
    check_gemm(40, 300, 100, 1, 0, -1, c1, 13, max_elems);
    int64_t a[] = {2, 64, 128}, b[] = {128, 96}, y[] = {2, 64, 96};
    check_matmul("MatMul big folded", 3, a, 2, b, 3, y, max_elems);
    int64_t a2[] = {2, 64, 128}, b2[] = {2, 128, 96};
    check_matmul("MatMul big batched", 3, a2, 3, b2, 3, y, max_elems);
    /* bit-identical reruns of a tiled conv */
    int64_t xd[4] = {1, 32, 40, 40}, wd[4] = {48, 32, 3, 3}, pads[4] = {1, 1, 1, 1};
    gc_tensor in[2] = {oc_rand(4, xd, -1, 1), oc_rand(4, wd, -1, 1)}, y1, y2;
    gc_node *n = oc_node("Conv", 13, 2, 1);
    oc_attr_ints(n, "pads", 4, pads);
    gc_err err = {0};
    gcam_status s1 = oc_forward(n, in, 2, 2u, &y1, 1, &err), s2 = oc_forward(n, in, 2, 2u, &y2, 1, &err);
    if (oc_check(s1 == GCAM_OK && s2 == GCAM_OK, "conv determinism: %s", err.msg))
        oc_check(!memcmp(y1.data, y2.data, (size_t)gc_numel(&y1) * sizeof(float)), "conv reruns are bit-identical");
    oc_tensor_free(&y1);
    oc_tensor_free(&y2);
    oc_tensor_free(&in[0]);
    oc_tensor_free(&in[1]);
    oc_node_free(n);
}

int main(void) {
    oc_seed(12345);
    test_conv_variants();
    test_conv_depthwise_paths();
    test_convtranspose_variants();
    test_conv_tiled(99);
    test_conv_pointwise_batched();
    test_conv_errors();
    test_gemm();
    test_matmul();
    test_big_gemms(24);
    openblas_set_num_threads(1); /* now every GEMM above the threshold is split over OpenMP */
    test_conv_tiled(2);
    test_conv_winograd();
    test_conv_winograd4();
    test_conv_winograd_shared();
    test_conv_pointwise_batched();
    test_conv_fused_add();
    test_big_gemms(4);
    printf("%d passed, %d failed\n", oc_checks - oc_failures, oc_failures);
    return oc_failures != 0;
}

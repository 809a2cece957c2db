/* Pooling (pool.c), normalisations (norm.c) and reductions (reduce.c): forward against naive
 * references written here in double (and a few values from PyTorch), backward against finite
 * differences. Max-like ops are checked on inputs without ties (distinct values with gaps much
 * larger than the step h). */
#include "opcheck.h"

#include <math.h>

#define I64(...) ((const int64_t[]){__VA_ARGS__})

static int64_t prod(const int64_t *v, int n) {
    int64_t p = 1;
    for (int i = 0; i < n; i++) p *= v[i];
    return p;
}

static gc_tensor none(void) {
    gc_tensor t;
    memset(&t, 0, sizeof t);
    return t;
}

/* x[i] = ((37 i) mod 101) / 10 - 5: exact in float, the inputs of the PyTorch-derived cases. */
static gc_tensor pattern(int nd, const int64_t *d) {
    gc_tensor t = oc_tensor(GC_F32, nd, d);
    float *p = t.data;
    for (int64_t i = 0; i < gc_numel(&t); i++) p[i] = (float)((i * 37) % 101) / 10.0f - 5.0f;
    return t;
}

/* A random permutation of (i - n/2) * gap: no ties, neighbours gap apart. */
static gc_tensor distinct(int nd, const int64_t *d, float gap) {
    gc_tensor t = oc_tensor(GC_F32, nd, d);
    float *p = t.data;
    int64_t n = gc_numel(&t);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(i - n / 2) * gap;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(oc_urand() * (double)(i + 1));
        float tmp = p[i];
        p[i] = p[j];
        p[j] = tmp;
    }
    return t;
}

static int shape_is(const gc_tensor *t, int nd, const int64_t *d) {
    if (t->shape.ndim != nd) return 0;
    for (int i = 0; i < nd; i++)
        if (t->shape.d[i] != d[i]) return 0;
    return 1;
}

/* Infer, forward and optionally backward by hand: lets a test leave aux unallocated and read
 * gradients at chosen points. outs are allocated here; gins (data or NULL) accumulate. */
static gcam_status run_manual(gc_node *n, gc_tensor *in, int n_in, gc_tensor *outs, int n_out,
                              gc_tensor *gouts, gc_tensor *gins, int want_aux, gc_err *err) {
    const gc_opdef *d = gc_op_get(n->op);
    gcam_status st = GCAM_OK;
    for (int j = 0; j < n_out; j++) memset(&outs[j], 0, sizeof outs[j]);
    if (!d) return GCAM_E_UNSUPPORTED;
    if (d->parse && !n->params && (st = d->parse(n, err))) return st;
    gc_kctx k;
    memset(&k, 0, sizeof k);
    k.node = n;
    k.params = n->params;
    k.n_in = n_in;
    k.n_out = n_out;
    k.err = err;
    k.nthreads = 2;
    gc_tuning tune; /* as a context takes it: gc_tuning_set_default's, else the environment's */
    gc_tuning_get(&tune);
    k.tune = &tune;
    for (int i = 0; i < n_in; i++) k.in[i] = in[i].dtype ? &in[i] : NULL;
    for (int j = 0; j < n_out; j++) {
        memset(&outs[j], 0, sizeof outs[j]);
        k.out[j] = &outs[j];
    }
    if ((st = d->infer(&k))) return st;
    for (int j = 0; j < n_out; j++) {
        int ok = 0;
        size_t b = gc_tensor_bytes(outs[j].dtype, &outs[j].shape, &ok);
        outs[j].data = calloc(b ? b : 1, 1);
    }
    size_t sb = d->scratch_bytes ? d->scratch_bytes(&k) : 0, bsb = d->bscratch_bytes ? d->bscratch_bytes(&k) : 0;
    k.scratch_size = GC_MAX(sb, bsb);
    k.scratch = k.scratch_size ? aligned_alloc(64, gc_align64(k.scratch_size)) : NULL;
    size_t ab = want_aux && d->aux_bytes ? d->aux_bytes(&k) : 0;
    k.aux = ab ? calloc(ab, 1) : NULL;
    st = d->forward(&k);
    if (!st && gouts) {
        for (int j = 0; j < n_out; j++) k.gout[j] = gouts[j].data ? &gouts[j] : NULL;
        for (int i = 0; i < n_in; i++) k.gin[i] = gins[i].data ? &gins[i] : NULL;
        st = d->backward ? d->backward(&k) : GCAM_E_UNSUPPORTED;
    }
    free(k.scratch);
    free(k.aux);
    return st;
}

/* =========================================================================================== */
/* Pools                                                                                       */

typedef struct pl_case {
    const char *label;
    int is_max, opset, nsp;
    int64_t N, C, in[3], k[3];
    int64_t s[3], d[3];     /* 0: attribute omitted */
    int64_t pads[6];
    int has_pads;
    const char *auto_pad;   /* NULL: omitted */
    int ceil, cip;          /* cip -1: omitted */
    int64_t want[3];        /* expected output spatial dims (PyTorch / hand); 0: not given */
} pl_case;

/* Output dims and begin/end pads from the spec formulas, with PyTorch's ceil_mode rule. */
static void pl_ref_geom(const pl_case *c, int64_t *out, int64_t *pb, int64_t *pe) {
    for (int i = 0; i < c->nsp; i++) {
        int64_t s = c->s[i] ? c->s[i] : 1, d = c->d[i] ? c->d[i] : 1, L = c->in[i];
        int64_t ext = (c->k[i] - 1) * d + 1;
        int64_t b = c->has_pads ? c->pads[i] : 0, e = c->has_pads ? c->pads[c->nsp + i] : 0;
        const char *ap = c->auto_pad ? c->auto_pad : "NOTSET";
        if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
            out[i] = (int64_t)ceil((double)L / (double)s);
            int64_t tot = GC_MAX(0, (out[i] - 1) * s + ext - L);
            b = !strcmp(ap, "SAME_UPPER") ? tot / 2 : (tot + 1) / 2;
            e = tot - b;
        } else {
            if (!strcmp(ap, "VALID")) b = e = 0;
            double q = (double)(L + b + e - ext) / (double)s;
            out[i] = (int64_t)(c->ceil ? ceil(q) : floor(q)) + 1;
            if (c->ceil && (out[i] - 1) * s >= L + b) out[i]--;
        }
        pb[i] = b;
        pe[i] = e;
    }
}

/* Naive pool over every tap: y (N, C, out...) in double. */
static void pl_ref(const pl_case *c, const float *x, double *y) {
    int64_t out[3], pb[3], pe[3], o[3], t[3];
    pl_ref_geom(c, out, pb, pe);
    int ns = c->nsp;
    int64_t isz = prod(c->in, ns), osz = prod(out, ns), ksz = prod(c->k, ns);
    for (int64_t pl = 0; pl < c->N * c->C; pl++)
        for (int64_t oi = 0; oi < osz; oi++) {
            int64_t r = oi;
            for (int a = ns - 1; a >= 0; a--) { o[a] = r % out[a]; r /= out[a]; }
            double acc = c->is_max ? -INFINITY : 0;
            int64_t cnt = 0, cnt_pad = 0;
            for (int64_t ki = 0; ki < ksz; ki++) {
                int64_t rr = ki, off = 0;
                int inside = 1, in_pad = 1;
                for (int a = ns - 1; a >= 0; a--) { t[a] = rr % c->k[a]; rr /= c->k[a]; }
                for (int a = 0; a < ns; a++) {
                    int64_t pos = o[a] * (c->s[a] ? c->s[a] : 1) - pb[a] + t[a] * (c->d[a] ? c->d[a] : 1);
                    if (pos < 0 || pos >= c->in[a]) inside = 0;
                    if (pos < -pb[a] || pos >= c->in[a] + pe[a]) in_pad = 0;
                    off = off * c->in[a] + pos;
                }
                cnt_pad += in_pad;
                if (!inside) continue;
                cnt++;
                double v = x[pl * isz + off];
                acc = c->is_max ? fmax(acc, v) : acc + v;
            }
            y[pl * osz + oi] = c->is_max ? acc : acc / (double)(c->cip == 1 ? cnt_pad : cnt);
        }
}

static gc_node *pl_node(const pl_case *c) {
    gc_node *n = oc_node(c->is_max ? "MaxPool" : "AveragePool", c->opset ? c->opset : 12, 1, 1);
    oc_attr_ints(n, "kernel_shape", c->nsp, c->k);
    if (c->s[0]) oc_attr_ints(n, "strides", c->nsp, c->s);
    if (c->d[0]) oc_attr_ints(n, "dilations", c->nsp, c->d);
    if (c->has_pads) oc_attr_ints(n, "pads", 2 * c->nsp, c->pads);
    if (c->auto_pad) oc_attr_s(n, "auto_pad", c->auto_pad);
    if (c->ceil) oc_attr_i(n, "ceil_mode", 1);
    if (c->cip >= 0) oc_attr_i(n, "count_include_pad", c->cip);
    return n;
}

static void pl_run_case(const pl_case *c) {
    int64_t dims[5] = {c->N, c->C, c->in[0], c->in[1], c->in[2]};
    int nd = c->nsp + 2;
    int64_t out[3], pb[3], pe[3];
    pl_ref_geom(c, out, pb, pe);
    for (int i = 0; i < c->nsp; i++)
        if (c->want[i]) oc_check(out[i] == c->want[i], "%s: reference geometry dim %d = %lld, want %lld", c->label, i,
                                 (long long)out[i], (long long)c->want[i]);
    gc_tensor x = c->is_max ? distinct(nd, dims, 0.02f) : oc_rand(nd, dims, -1, 1);
    gc_node *n = pl_node(c);
    gc_tensor y;
    gc_err err = {0};
    if (oc_check(oc_forward(n, &x, 1, 0, &y, 1, &err) == GCAM_OK, "%s: forward: %s", c->label, err.msg)) {
        int64_t want[5] = {c->N, c->C, out[0], out[1], out[2]};
        if (oc_check(shape_is(&y, nd, want), "%s: output shape", c->label)) {
            int64_t ny = gc_numel(&y);
            double *ref = calloc((size_t)ny, sizeof(double));
            float *reff = calloc((size_t)ny, sizeof(float));
            pl_ref(c, x.data, ref);
            for (int64_t i = 0; i < ny; i++) reff[i] = (float)ref[i];
            oc_close(c->label, y.data, reff, ny, 1e-6, 1e-5);
            free(ref);
            free(reff);
            if (c->is_max) { /* no backward planned: no aux, the argmax-free path */
                gc_tensor y2;
                if (oc_check(run_manual(n, &x, 1, &y2, 1, NULL, NULL, 0, &err) == GCAM_OK, "%s: no aux: %s", c->label,
                             err.msg))
                    oc_close("maxpool without aux", y2.data, y.data, ny, 0, 0);
                oc_tensor_free(&y2);
            }
        }
        oc_tensor_free(&y);
    }
    /* max: exact derivative (0/1), no ties within h; average: linear */
    oc_gradcheck(c->label, n, &x, 1, 0, 1, 1, 1e-3, 1e-3, 300);
    oc_node_free(n);
    oc_tensor_free(&x);
}

static const pl_case pl_cases[] = {
    /* MaxPool */
    {"maxpool 2d k3 s2 p1", 1, 12, 2, 2, 3, {9, 8}, {3, 3}, {2, 2}, {0}, {1, 1, 1, 1}, 1, NULL, 0, -1, {5, 4}},
    {"maxpool 2d k2 s2 ceil", 1, 12, 2, 2, 2, {7, 9}, {2, 2}, {2, 2}, {0}, {0}, 0, NULL, 1, -1, {4, 5}},
    {"maxpool 2d k3 s2 p1 ceil", 1, 12, 2, 1, 2, {8, 6}, {3, 3}, {2, 2}, {0}, {1, 1, 1, 1}, 1, NULL, 1, -1, {5, 4}},
    {"maxpool 2d ceil last window dropped", 1, 12, 2, 1, 2, {5, 5}, {2, 2}, {2, 2}, {0}, {1, 1, 1, 1}, 1, NULL, 1, -1, {3, 3}},
    {"maxpool 2d dilation asym pads", 1, 12, 2, 1, 3, {9, 10}, {3, 2}, {1, 2}, {2, 2}, {1, 1, 2, 0}, 1, NULL, 0, -1, {0}},
    {"maxpool 2d dilation ceil", 1, 12, 2, 1, 2, {9, 8}, {2, 2}, {3, 2}, {3, 2}, {1, 1, 1, 1}, 1, NULL, 1, -1, {4, 5}},
    {"maxpool 1d k3 s2 p1", 1, 12, 1, 2, 3, {11}, {3}, {2}, {0}, {1, 1}, 1, NULL, 0, -1, {6}},
    {"maxpool 1d k2 s3 ceil", 1, 12, 1, 1, 2, {10}, {2}, {3}, {0}, {0}, 0, NULL, 1, -1, {4}},
    {"maxpool 1d default", 1, 8, 1, 1, 3, {7}, {2}, {0}, {0}, {0}, 0, NULL, 0, -1, {6}},
    {"maxpool 3d pads", 1, 12, 3, 1, 2, {5, 6, 5}, {2, 3, 2}, {1, 2, 2}, {0}, {1, 0, 1, 0, 1, 1}, 1, NULL, 0, -1, {0}},
    {"maxpool 3d ceil dilation", 1, 12, 3, 1, 1, {3, 4, 5}, {2, 3, 2}, {2, 1, 2}, {1, 1, 2}, {1, 1, 0, 1, 1, 0}, 1,
     NULL, 1, -1, {2, 4, 2}},
    {"maxpool SAME_UPPER k3 s2", 1, 12, 2, 2, 2, {7, 8}, {3, 3}, {2, 2}, {0}, {0}, 0, "SAME_UPPER", 0, -1, {4, 4}},
    {"maxpool SAME_UPPER k4 s3", 1, 12, 2, 1, 2, {7, 8}, {4, 4}, {3, 3}, {0}, {0}, 0, "SAME_UPPER", 0, -1, {3, 3}},
    {"maxpool SAME_LOWER k2 s1", 1, 12, 2, 1, 2, {5, 6}, {2, 2}, {0}, {0}, {0}, 0, "SAME_LOWER", 0, -1, {5, 6}},
    {"maxpool SAME_LOWER k4 s3", 1, 12, 2, 1, 2, {7, 8}, {4, 4}, {3, 3}, {0}, {0}, 0, "SAME_LOWER", 0, -1, {3, 3}},
    {"maxpool VALID k3 s2", 1, 12, 2, 1, 2, {8, 7}, {3, 3}, {2, 2}, {0}, {0}, 0, "VALID", 0, -1, {3, 3}},
    /* AveragePool */
    {"avgpool 2d k3 s2 p1 exclude pad", 0, 11, 2, 2, 3, {9, 8}, {3, 3}, {2, 2}, {0}, {1, 1, 1, 1}, 1, NULL, 0, 0, {5, 4}},
    {"avgpool 2d k3 s2 p1 include pad", 0, 11, 2, 2, 3, {9, 8}, {3, 3}, {2, 2}, {0}, {1, 1, 1, 1}, 1, NULL, 0, 1, {5, 4}},
    {"avgpool 2d ceil exclude pad", 0, 11, 2, 1, 2, {8, 6}, {3, 3}, {2, 2}, {0}, {1, 1, 1, 1}, 1, NULL, 1, 0, {5, 4}},
    {"avgpool 2d ceil include pad", 0, 11, 2, 1, 2, {8, 6}, {3, 3}, {2, 2}, {0}, {1, 1, 1, 1}, 1, NULL, 1, 1, {5, 4}},
    {"avgpool 2d ceil no pads", 0, 11, 2, 2, 2, {7, 9}, {2, 3}, {2, 2}, {0}, {0}, 0, NULL, 1, -1, {4, 4}},
    {"avgpool 1d k3 s2 p1 ceil include pad", 0, 11, 1, 2, 2, {10}, {3}, {2}, {0}, {1, 1}, 1, NULL, 1, 1, {6}},
    {"avgpool 1d default", 0, 7, 1, 1, 3, {6}, {2}, {0}, {0}, {0}, 0, NULL, 0, -1, {5}},
    {"avgpool 3d include pad ceil", 0, 11, 3, 1, 2, {5, 6, 5}, {2, 3, 2}, {2, 1, 2}, {0}, {1, 1, 0, 1, 1, 0}, 1, NULL,
     1, 1, {3, 6, 3}},
    {"avgpool SAME_UPPER exclude pad", 0, 11, 2, 1, 2, {7, 8}, {3, 3}, {2, 2}, {0}, {0}, 0, "SAME_UPPER", 0, 0, {4, 4}},
    {"avgpool SAME_LOWER include pad", 0, 11, 2, 1, 2, {7, 8}, {3, 3}, {2, 2}, {0}, {0}, 0, "SAME_LOWER", 0, 1, {4, 4}},
    {"avgpool dilations (opset 19 attribute)", 0, 11, 2, 1, 2, {7, 7}, {2, 2}, {1, 1}, {2, 2}, {1, 1, 1, 1}, 1, NULL, 1,
     0, {0}},
};

/* Output sizes with ceil_mode against PyTorch's max_pool1d (L, k, s, p -> ceil, floor). */
static void test_ceil_shapes(void) {
    static const int64_t cases[][6] = {{4, 3, 2, 0, 2, 1}, {5, 2, 2, 1, 3, 3}, {6, 3, 2, 1, 4, 3}, {7, 2, 2, 0, 4, 3},
                                       {8, 3, 3, 1, 3, 3}, {10, 3, 4, 1, 3, 3}, {5, 3, 2, 1, 3, 3}, {9, 2, 3, 1, 4, 4}};
    for (size_t i = 0; i < GC_ARRAY_LEN(cases); i++)
        for (int cm = 0; cm < 2; cm++) {
            gc_node *n = oc_node("MaxPool", 12, 1, 1);
            oc_attr_ints(n, "kernel_shape", 1, &cases[i][1]);
            oc_attr_ints(n, "strides", 1, &cases[i][2]);
            oc_attr_ints(n, "pads", 2, I64(cases[i][3], cases[i][3]));
            oc_attr_i(n, "ceil_mode", cm);
            gc_tensor x = oc_rand(3, I64(1, 1, cases[i][0]), -1, 1), y;
            gc_err err = {0};
            if (oc_check(oc_forward(n, &x, 1, 0, &y, 1, &err) == GCAM_OK, "ceil shape case %zu: %s", i, err.msg)) {
                oc_check(y.shape.d[2] == cases[i][cm ? 4 : 5], "ceil shape L=%lld k=%lld s=%lld p=%lld ceil=%d: got %lld",
                         (long long)cases[i][0], (long long)cases[i][1], (long long)cases[i][2], (long long)cases[i][3],
                         cm, (long long)y.shape.d[2]);
                oc_tensor_free(&y);
            }
            oc_tensor_free(&x);
            oc_node_free(n);
        }
    /* dilated (PyTorch): L=8 k3 s2 p1 d2 -> 4; L=9 k2 s3 p1 d3 -> 4 */
    static const int64_t dil[][6] = {{8, 3, 2, 1, 2, 4}, {9, 2, 3, 1, 3, 4}};
    for (size_t i = 0; i < GC_ARRAY_LEN(dil); i++) {
        gc_node *n = oc_node("MaxPool", 12, 1, 1);
        oc_attr_ints(n, "kernel_shape", 1, &dil[i][1]);
        oc_attr_ints(n, "strides", 1, &dil[i][2]);
        oc_attr_ints(n, "pads", 2, I64(dil[i][3], dil[i][3]));
        oc_attr_ints(n, "dilations", 1, &dil[i][4]);
        oc_attr_i(n, "ceil_mode", 1);
        gc_tensor x = oc_rand(3, I64(1, 1, dil[i][0]), -1, 1), y;
        gc_err err = {0};
        if (oc_check(oc_forward(n, &x, 1, 0, &y, 1, &err) == GCAM_OK, "dilated ceil %zu: %s", i, err.msg)) {
            oc_check(y.shape.d[2] == dil[i][5], "dilated ceil case %zu: got %lld", i, (long long)y.shape.d[2]);
            oc_tensor_free(&y);
        }
        oc_tensor_free(&x);
        oc_node_free(n);
    }
}

/* Values from PyTorch on the pattern() input, plus the ONNX node test examples. */
static void test_pool_values(void) {
    gc_err err = {0};
    gc_tensor y[2];
    { /* node: test_maxpool_2d_ceil / test_averagepool_2d_ceil (1..16, k3 s2 ceil) */
        gc_tensor x = oc_tensor(GC_F32, 4, I64(1, 1, 4, 4));
        for (int i = 0; i < 16; i++) ((float *)x.data)[i] = (float)(i + 1);
        for (int m = 0; m < 2; m++) {
            gc_node *n = oc_node(m ? "MaxPool" : "AveragePool", 12, 1, 1);
            oc_attr_ints(n, "kernel_shape", 2, I64(3, 3));
            oc_attr_ints(n, "strides", 2, I64(2, 2));
            oc_attr_i(n, "ceil_mode", 1);
            static const float want_avg[4] = {6, 7.5f, 12, 13.5f}, want_max[4] = {11, 12, 15, 16};
            if (oc_check(oc_forward(n, &x, 1, 0, y, 1, &err) == GCAM_OK, "onnx ceil example: %s", err.msg)) {
                oc_check(shape_is(&y[0], 4, I64(1, 1, 2, 2)), "onnx ceil example shape");
                oc_close(m ? "onnx maxpool_2d_ceil" : "onnx averagepool_2d_ceil", y[0].data, m ? want_max : want_avg, 4,
                         1e-6, 1e-6);
                oc_tensor_free(&y[0]);
            }
            oc_node_free(n);
        }
        oc_tensor_free(&x);
    }
    gc_tensor x = pattern(4, I64(1, 2, 5, 6));
    { /* PyTorch max_pool2d(3, 2, 1, ceil_mode=True, return_indices=True) */
        static const float want[] = {0.7f, 4.4f, 3.4f, 3.4f, 4.7f, 4.7f, 3.7f, -0.7f, 4.7f, 4.7f, 4.0f, 1.3f,
                                     5.0f, 4.3f, 3.3f, 3.3f, 4.6f, 4.6f, 3.6f, -0.8f, 4.6f, 4.6f, 3.9f, 1.2f};
        static const int64_t widx[] = {7, 8, 5, 5, 19, 19, 16, 23, 19, 19, 27, 29,
                                       0, 8, 5, 5, 19, 19, 16, 23, 19, 19, 27, 29};
        gc_node *n = oc_node("MaxPool", 12, 1, 2);
        oc_attr_ints(n, "kernel_shape", 2, I64(3, 3));
        oc_attr_ints(n, "strides", 2, I64(2, 2));
        oc_attr_ints(n, "pads", 4, I64(1, 1, 1, 1));
        oc_attr_i(n, "ceil_mode", 1);
        for (int aux = 0; aux < 2; aux++) {
            /* aux = 0: no backward planned, the argmax for Indices comes from scratch */
            gcam_status st = aux ? oc_forward(n, &x, 1, 0, y, 2, &err) : run_manual(n, &x, 1, y, 2, NULL, NULL, 0, &err);
            if (!oc_check(st == GCAM_OK, "maxpool indices: %s", err.msg)) continue;
            oc_check(shape_is(&y[0], 4, I64(1, 2, 3, 4)) && shape_is(&y[1], 4, I64(1, 2, 3, 4)) && y[1].dtype == GC_I64,
                     "maxpool indices shapes");
            oc_close("maxpool k3 s2 p1 ceil (PyTorch)", y[0].data, want, 24, 1e-6, 1e-6);
            int bad = 0;
            /* ONNX indices count over (N, C, H, W): PyTorch's per-plane index + c * H * W */
            for (int i = 0; i < 24; i++) bad += ((int64_t *)y[1].data)[i] != widx[i] + (i / 12) * 30;
            oc_check(!bad, "maxpool Indices (aux=%d): %d wrong", aux, bad);
            oc_tensor_free(&y[0]);
            oc_tensor_free(&y[1]);
        }
        oc_node_free(n);
    }
    { /* PyTorch avg_pool2d(3, 2, 1, ceil_mode=True, count_include_pad=True / False) */
        static const float want[2][24] = {
            {-2.15f, 0.03333338f, -0.9833333f, -0.6499999f, 0.85f, 0.7888889f, -0.7888889f, -2.7f,
             1.325f, 0.9833333f, -0.03333338f, 0.3f, 0.275f, -0.0666666f, -1.083333f, -0.7500001f,
             0.75f, 0.6888889f, -0.8888889f, -2.8f, 1.225f, 0.8833334f, -0.1333333f, 0.2f},
            {-0.9555556f, 0.02222225f, -0.6555555f, -0.2166666f, 0.5666667f, 0.7888889f, -0.7888889f, -1.35f,
             0.5888889f, 0.6555555f, -0.02222225f, 0.09999999f, 0.1222222f, -0.0444444f, -0.7222222f, -0.25f,
             0.5f, 0.6888889f, -0.8888889f, -1.4f, 0.5444444f, 0.5888889f, -0.08888885f, 0.06666667f}};
        for (int cip = 0; cip < 2; cip++) {
            gc_node *n = oc_node("AveragePool", 11, 1, 1);
            oc_attr_ints(n, "kernel_shape", 2, I64(3, 3));
            oc_attr_ints(n, "strides", 2, I64(2, 2));
            oc_attr_ints(n, "pads", 4, I64(1, 1, 1, 1));
            oc_attr_i(n, "ceil_mode", 1);
            oc_attr_i(n, "count_include_pad", cip);
            if (oc_check(oc_forward(n, &x, 1, 0, y, 1, &err) == GCAM_OK, "avgpool torch: %s", err.msg)) {
                oc_close(cip ? "avgpool ceil include pad (PyTorch)" : "avgpool ceil exclude pad (PyTorch)", y[0].data,
                         want[cip], 24, 1e-6, 1e-5);
                oc_tensor_free(&y[0]);
            }
            oc_node_free(n);
        }
    }
    oc_tensor_free(&x);
    { /* PyTorch avg_pool1d(3, 2, 1, ceil) on L=6: the last window hangs past the end padding */
        static const float want[2][4] = {{-3.15f, -0.9666666f, -0.3f, 3.4f}, {-2.1f, -0.9666666f, -0.3f, 1.7f}};
        gc_tensor x1 = pattern(3, I64(1, 1, 6));
        for (int cip = 0; cip < 2; cip++) {
            gc_node *n = oc_node("AveragePool", 11, 1, 1);
            oc_attr_ints(n, "kernel_shape", 1, I64(3));
            oc_attr_ints(n, "strides", 1, I64(2));
            oc_attr_ints(n, "pads", 2, I64(1, 1));
            oc_attr_i(n, "ceil_mode", 1);
            oc_attr_i(n, "count_include_pad", cip);
            if (oc_check(oc_forward(n, &x1, 1, 0, y, 1, &err) == GCAM_OK, "avgpool1d torch: %s", err.msg)) {
                oc_close(cip ? "avgpool1d ceil include pad (PyTorch)" : "avgpool1d ceil exclude pad (PyTorch)",
                         y[0].data, want[cip], 4, 1e-6, 1e-5);
                oc_tensor_free(&y[0]);
            }
            oc_node_free(n);
        }
        oc_tensor_free(&x1);
    }
    { /* PyTorch 3-D: max with dilation (1,1,2), avg include pad; k (2,3,2) s (2,1,2) p (1,1,0) ceil */
        static const float wmax[] = {3.4f, 2.4f, 3.4f, 2.4f, 3.4f, 4.7f, 1.7f, 4.7f,
                                     4.0f, 4.6f, 5.0f, 4.6f, 5.0f, 4.6f, 5.0f, 3.9f};
        static const float wavg[] = {-0.4916667f, 0.2916667f, -0.3833333f, -0.7416666f, 0.4333334f, -1.0f,
                                     0.0916667f, 0.425f, -0.1666667f, 0.05833336f, 0.0f, 0.1666666f,
                                     -0.2083334f, -0.325f, 0.8500001f, 0.09999997f, -0.9166667f, 1.266667f,
                                     0.08333331f, -0.09166664f, 1.25f, 0.04999997f, -0.06666663f, 0.2666667f};
        gc_tensor x3 = pattern(5, I64(1, 1, 3, 4, 5));
        for (int m = 0; m < 2; m++) {
            gc_node *n = oc_node(m ? "MaxPool" : "AveragePool", 12, 1, 1);
            oc_attr_ints(n, "kernel_shape", 3, I64(2, 3, 2));
            oc_attr_ints(n, "strides", 3, I64(2, 1, 2));
            oc_attr_ints(n, "pads", 6, I64(1, 1, 0, 1, 1, 0));
            if (m) oc_attr_ints(n, "dilations", 3, I64(1, 1, 2));
            else oc_attr_i(n, "count_include_pad", 1);
            oc_attr_i(n, "ceil_mode", 1);
            if (oc_check(oc_forward(n, &x3, 1, 0, y, 1, &err) == GCAM_OK, "pool3d torch: %s", err.msg)) {
                oc_check(shape_is(&y[0], 5, m ? I64(1, 1, 2, 4, 2) : I64(1, 1, 2, 4, 3)), "pool3d torch shape");
                oc_close(m ? "maxpool3d dilated ceil (PyTorch)" : "avgpool3d include pad ceil (PyTorch)", y[0].data,
                         m ? wmax : wavg, m ? 16 : 24, 1e-6, 1e-5);
                oc_tensor_free(&y[0]);
            }
            oc_node_free(n);
        }
        oc_tensor_free(&x3);
    }
    { /* integer MaxPool (uint8 models are widened to int64) */
        gc_tensor xi = oc_tensor(GC_I64, 4, I64(1, 1, 3, 3));
        static const int64_t v[9] = {5, 1, 9, 2, 250, 3, 7, 0, 4};
        memcpy(xi.data, v, sizeof v);
        gc_node *n = oc_node("MaxPool", 12, 1, 1);
        oc_attr_ints(n, "kernel_shape", 2, I64(2, 2));
        if (oc_check(oc_forward(n, &xi, 1, 0, y, 1, &err) == GCAM_OK, "int maxpool: %s", err.msg)) {
            const int64_t *o = y[0].data;
            oc_check(y[0].dtype == GC_I64 && o[0] == 250 && o[1] == 250 && o[2] == 250 && o[3] == 250,
                     "int maxpool values");
            oc_tensor_free(&y[0]);
        }
        oc_node_free(n);
        oc_tensor_free(&xi);
    }
}

/* NaN propagates through every max-like path (border and interior windows, lanes, columns). */
static void test_nan(void) {
    gc_err err = {0};
    gc_tensor x = oc_rand(4, I64(1, 2, 6, 20), -1, 1), y;
    float *p = x.data;
    p[0] = NAN;            /* plane 0: border window */
    p[120 + 2 * 20 + 9] = NAN; /* plane 1: interior window */
    gc_node *n = oc_node("MaxPool", 12, 1, 1);
    oc_attr_ints(n, "kernel_shape", 2, I64(3, 3));
    oc_attr_ints(n, "pads", 4, I64(1, 1, 1, 1));
    for (int aux = 0; aux < 2; aux++)
        if (oc_check(run_manual(n, &x, 1, &y, 1, NULL, NULL, aux, &err) == GCAM_OK, "nan maxpool: %s", err.msg)) {
            const float *o = y.data;
            int bad = 0;
            for (int64_t i = 0; i < 240; i++) {
                int64_t c = i / 120, h = i % 120 / 20, w = i % 20;
                int want_nan = c == 0 ? (h <= 1 && w <= 1) : (h >= 1 && h <= 3 && w >= 8 && w <= 10);
                bad += want_nan != (o[i] != o[i]);
            }
            oc_check(!bad, "MaxPool NaN propagation (aux %d): %d wrong", aux, bad);
            oc_tensor_free(&y);
        }
    oc_node_free(n);
    n = oc_node("GlobalMaxPool", 12, 1, 1);
    if (oc_check(oc_forward(n, &x, 1, 0, &y, 1, &err) == GCAM_OK, "nan gmp: %s", err.msg)) {
        const float *o = y.data;
        oc_check(o[0] != o[0] && o[1] != o[1], "GlobalMaxPool NaN propagation");
        oc_tensor_free(&y);
    }
    oc_node_free(n);
    for (int m = 0; m < 2; m++)
        for (int ax = 1; ax < 4; ax += 2) {
            n = oc_node(m ? "ReduceMin" : "ReduceMax", 11, 1, 1);
            oc_attr_ints(n, "axes", 1, I64(ax));
            if (oc_check(oc_forward(n, &x, 1, 0, &y, 1, &err) == GCAM_OK, "nan reduce: %s", err.msg)) {
                const float *o = y.data;
                int64_t nn = 0;
                for (int64_t i = 0; i < gc_numel(&y); i++) nn += o[i] != o[i];
                oc_check(nn == 2, "%s axis %d: %lld NaN outputs, want 2", m ? "ReduceMin" : "ReduceMax", ax, (long long)nn);
                oc_tensor_free(&y);
            }
            oc_node_free(n);
        }
    oc_tensor_free(&x);
}

/* MaxPool's separable path (2-D, windows 2 or 3 wide, strides 1 and 2: pool.c mp_plane_sep) against
 * the tap-by-tap path (GCAM_NO_POOL_SEPARABLE), bit for bit: the outputs, and the argmax through
 * the backward (dX = dY scattered to each window's argmax), on inputs of few distinct values (ties
 * everywhere), -inf runs (windows of -inf only) and NaNs, with and without aux, on every
 * instruction-set path. Widths around the 16-column blocks, pads, ceil_mode, kernels 1..4 tall. */
static void test_maxpool_separable(void) {
    static const int64_t widths[] = {1, 2, 15, 16, 17, 31, 33, 112};
    int ran = 0;
    for (int64_t kw = 2; kw <= 3; kw++)
        for (int64_t sw = 1; sw <= 2; sw++)
            for (size_t wi = 0; wi < GC_ARRAY_LEN(widths); wi++)
                for (int var = 0; var < 3; var++) {
                    const int64_t W = widths[wi] * sw + kw, H = 5 + var * 4, kh = 1 + (var + (int)wi) % 4;
                    const int64_t pw = var == 1 ? 0 : kw - 1 > 1 ? 1 : kw - 1, ph = var == 1 ? 0 : kh / 2;
                    const int ceil_mode = var == 2;
                    gc_tensor x = oc_rand(4, I64(2, 3, H, W), -1, 1);
                    float *p = x.data;
                    for (int64_t i = 0; i < 2 * 3 * H * W; i++) {
                        p[i] = (float)((int)((p[i] + 1) * 2)); /* 0..3: ties */
                        if (i % 97 == 5) p[i] = NAN;
                        if ((i / W) % 4 == 1 && i % W < W / 2) p[i] = -INFINITY; /* -inf runs */
                    }
                    char label[128];
                    snprintf(label, sizeof label, "maxpool separable k%lldx%lld s%lld W%lld H%lld var %d", (long long)kh,
                             (long long)kw, (long long)sw, (long long)W, (long long)H, var);
                    gc_node *n = oc_node("MaxPool", 12, 1, 1);
                    oc_attr_ints(n, "kernel_shape", 2, I64(kh, kw));
                    oc_attr_ints(n, "strides", 2, I64(1, sw));
                    oc_attr_ints(n, "pads", 4, I64(ph, pw, ph, pw));
                    if (ceil_mode) oc_attr_i(n, "ceil_mode", 1);
                    float *ref_y = NULL, *ref_gx = NULL;
                    int64_t ny = 0;
                    for (int cap = -1; cap < 3; cap++) { /* -1: tap by tap (the reference) */
                        gc_tuning t;
                        gc_tuning_defaults(&t);
                        t.no_pool_separable = cap < 0;
                        t.isa = cap >= 2 ? 1 : cap >= 1 ? 2 : 0; /* GCAM_ISA: generic, avx2 */
                        gc_tuning_set_default(&t);
                        for (int aux = 0; aux < 2; aux++) {
                            gc_err err = {0};
                            gc_tensor y, gy, gx = oc_tensor(GC_F32, 4, I64(2, 3, H, W));
                            gcam_status st = run_manual(n, &x, 1, &y, 1, NULL, NULL, aux, &err);
                            if (!oc_check(st == GCAM_OK, "%s: forward: %s", label, err.msg)) {
                                oc_tensor_free(&gx);
                                continue;
                            }
                            ny = gc_numel(&y);
                            gy = oc_tensor(GC_F32, 4, y.shape.d);
                            for (int64_t i = 0; i < ny; i++) ((float *)gy.data)[i] = (float)(i + 1);
                            gc_tensor y2;
                            if (aux) st = run_manual(n, &x, 1, &y2, 1, &gy, &gx, 1, &err);
                            if (aux && oc_check(st == GCAM_OK, "%s: backward: %s", label, err.msg)) oc_tensor_free(&y2);
                            if (cap < 0 && !aux) ref_y = memcpy(malloc((size_t)ny * 4), y.data, (size_t)ny * 4);
                            else if (cap < 0) ref_gx = memcpy(malloc((size_t)(6 * H * W) * 4), gx.data, (size_t)(6 * H * W) * 4);
                            else {
                                oc_check(ref_y && !memcmp(y.data, ref_y, (size_t)ny * 4),
                                         "%s (isa cap %d, aux %d): outputs not the tap-by-tap path's bits", label, cap, aux);
                                if (aux)
                                    oc_check(ref_gx && !memcmp(gx.data, ref_gx, (size_t)(6 * H * W) * 4),
                                             "%s (isa cap %d): argmax not the tap-by-tap path's", label, cap);
                                ran += cap == 0 && aux;
                            }
                            oc_tensor_free(&y);
                            oc_tensor_free(&gy);
                            oc_tensor_free(&gx);
                        }
                    }
                    gc_tuning_set_default(NULL);
                    free(ref_y);
                    free(ref_gx);
                    oc_node_free(n);
                    oc_tensor_free(&x);
                }
    oc_check(ran == 2 * 2 * (int)GC_ARRAY_LEN(widths) * 3, "maxpool separable: %d cases compared", ran);
}

/* MaxPool backward needs the argmax saved in aux; GlobalMaxPool too. */
static void test_pool_aux(void) {
    gc_tensor x = distinct(4, I64(1, 2, 4, 4), 0.1f);
    gc_tensor y, gy = oc_rand(4, I64(1, 2, 2, 2), -1, 1), gx = oc_tensor(GC_F32, 4, I64(1, 2, 4, 4));
    gc_err err = {0};
    gc_node *n = oc_node("MaxPool", 12, 1, 1);
    oc_attr_ints(n, "kernel_shape", 2, I64(2, 2));
    oc_attr_ints(n, "strides", 2, I64(2, 2));
    gcam_status st = run_manual(n, &x, 1, &y, 1, &gy, &gx, 0, &err);
    oc_check(st == GCAM_E_INTERNAL, "maxpool backward without aux must be an internal error (got %d)", st);
    oc_tensor_free(&y);
    oc_node_free(n);
    n = oc_node("GlobalMaxPool", 12, 1, 1);
    gc_tensor gy1 = oc_rand(4, I64(1, 2, 1, 1), -1, 1);
    memset(&err, 0, sizeof err);
    st = run_manual(n, &x, 1, &y, 1, &gy1, &gx, 0, &err);
    oc_check(st == GCAM_E_INTERNAL, "globalmaxpool backward without aux must be an internal error (got %d)", st);
    oc_tensor_free(&y);
    oc_node_free(n);
    oc_tensor_free(&x);
    oc_tensor_free(&gy);
    oc_tensor_free(&gy1);
    oc_tensor_free(&gx);
}

static void expect_fail(const char *label, gc_node *n, gc_tensor *in, int n_in, uint32_t cmask, int n_out) {
    gc_tensor outs[4];
    gc_err err = {0};
    gcam_status st = oc_forward(n, in, n_in, cmask, outs, n_out, &err);
    oc_check(st != GCAM_OK && err.msg[0], "%s: should fail", label);
    if (st == GCAM_OK)
        for (int j = 0; j < n_out; j++) oc_tensor_free(&outs[j]);
    oc_node_free(n);
}

static void test_pool_errors(void) {
    gc_tensor x = oc_rand(4, I64(1, 2, 5, 5), -1, 1);
    gc_node *n;
    n = oc_node("MaxPool", 12, 1, 1);
    expect_fail("maxpool without kernel_shape", n, &x, 1, 0, 1);
    n = oc_node("MaxPool", 12, 1, 1);
    oc_attr_ints(n, "kernel_shape", 2, I64(0, 2));
    expect_fail("maxpool kernel 0", n, &x, 1, 0, 1);
    n = oc_node("MaxPool", 12, 1, 1);
    oc_attr_ints(n, "kernel_shape", 2, I64(2, 2));
    oc_attr_ints(n, "strides", 2, I64(0, 1));
    expect_fail("maxpool stride 0", n, &x, 1, 0, 1);
    n = oc_node("AveragePool", 12, 1, 1);
    oc_attr_ints(n, "kernel_shape", 2, I64(2, 2));
    oc_attr_ints(n, "pads", 2, I64(1, 1));
    expect_fail("avgpool pads count", n, &x, 1, 0, 1);
    n = oc_node("AveragePool", 12, 1, 1);
    oc_attr_ints(n, "kernel_shape", 2, I64(2, 2));
    oc_attr_ints(n, "pads", 4, I64(1, -1, 1, 1));
    expect_fail("avgpool negative pad", n, &x, 1, 0, 1);
    n = oc_node("AveragePool", 12, 1, 1);
    oc_attr_ints(n, "kernel_shape", 2, I64(2, 2));
    oc_attr_s(n, "auto_pad", "SAME");
    expect_fail("avgpool bad auto_pad", n, &x, 1, 0, 1);
    n = oc_node("MaxPool", 12, 1, 1);
    oc_attr_ints(n, "kernel_shape", 1, I64(2));
    expect_fail("maxpool rank mismatch", n, &x, 1, 0, 1);
    n = oc_node("MaxPool", 12, 1, 1);
    oc_attr_ints(n, "kernel_shape", 2, I64(6, 2));
    expect_fail("maxpool kernel larger than input", n, &x, 1, 0, 1);
    n = oc_node("MaxPool", 12, 1, 1);
    oc_attr_ints(n, "kernel_shape", 2, I64(2, 2));
    oc_attr_ints(n, "pads", 4, I64(2, 0, 0, 0));
    expect_fail("maxpool window entirely in padding", n, &x, 1, 0, 1);
    n = oc_node("MaxPool", 12, 1, 2);
    oc_attr_ints(n, "kernel_shape", 2, I64(2, 2));
    oc_attr_i(n, "storage_order", 1);
    expect_fail("maxpool Indices with storage_order 1", n, &x, 1, 0, 2);
    n = oc_node("MaxPool", 12, 1, 1);
    oc_attr_ints(n, "kernel_shape", 2, I64(2, 2));
    oc_attr_i(n, "ceil_mode", 2);
    expect_fail("maxpool ceil_mode 2", n, &x, 1, 0, 1);
    n = oc_node("GlobalAveragePool", 12, 1, 1);
    gc_tensor x1 = oc_rand(1, I64(4), -1, 1);
    expect_fail("globalaveragepool rank 1", n, &x1, 1, 0, 1);
    oc_tensor_free(&x1);
    oc_tensor_free(&x);
}

static void test_global_pools(void) {
    static const int64_t shapes[][6] = {{4, 2, 3, 5, 4}, {5, 2, 3, 3, 4, 2}, {3, 2, 4, 7}};
    for (size_t s = 0; s < GC_ARRAY_LEN(shapes); s++) {
        int nd = (int)shapes[s][0];
        const int64_t *d = &shapes[s][1];
        int64_t planes = d[0] * d[1], plane = prod(d + 2, nd - 2);
        for (int m = 0; m < 2; m++) {
            char label[96];
            snprintf(label, sizeof label, "%s rank %d", m ? "GlobalMaxPool" : "GlobalAveragePool", nd);
            gc_node *n = oc_node(m ? "GlobalMaxPool" : "GlobalAveragePool", 12, 1, 1);
            gc_tensor x = m ? distinct(nd, d, 0.02f) : oc_rand(nd, d, -1, 1), y;
            gc_err err = {0};
            if (oc_check(oc_forward(n, &x, 1, 0, &y, 1, &err) == GCAM_OK, "%s: %s", label, err.msg)) {
                int okshape = y.shape.ndim == nd && y.shape.d[0] == d[0] && y.shape.d[1] == d[1];
                for (int i = 2; i < nd; i++) okshape &= y.shape.d[i] == 1;
                oc_check(okshape, "%s: shape", label);
                float *want = calloc((size_t)planes, sizeof(float));
                const float *xs = x.data;
                for (int64_t p = 0; p < planes; p++) {
                    double acc = m ? -INFINITY : 0;
                    for (int64_t i = 0; i < plane; i++) acc = m ? fmax(acc, xs[p * plane + i]) : acc + xs[p * plane + i];
                    want[p] = (float)(m ? acc : acc / (double)plane);
                }
                oc_close(label, y.data, want, planes, 1e-6, 1e-5);
                free(want);
                oc_tensor_free(&y);
            }
            oc_gradcheck(label, n, &x, 1, 0, 1, 1, 1e-3, 1e-3, 300); /* linear / exact selection */
            oc_tensor_free(&x);
            oc_node_free(n);
        }
    }
}

/* GlobalAveragePool's per-instruction-set sums (pool.c): planes around the 8- and 32-lane blocks
 * and past a 4096 block, on every path the CPU has (a path it lacks runs as the best it has):
 * against double, bit-identical across the paths, 1 and 2 threads alike; the backward too. */
static void test_gap_paths(void) {
    static const int64_t planes_hw[][2] = {{1, 1},   {1, 7},   {7, 7},   {4, 8},   {5, 7},
                                           {1, 33},  {14, 14}, {65, 65}, {112, 112}};
    for (size_t s = 0; s < GC_ARRAY_LEN(planes_hw); s++) {
        const int64_t d[4] = {2, 37, planes_hw[s][0], planes_hw[s][1]}, np = 74, plane = d[2] * d[3];
        gc_tensor x = oc_rand(4, d, -1, 1), gy = oc_rand(4, (int64_t[]){2, 37, 1, 1}, -1, 1);
        const float *xs = x.data;
        float *want = calloc((size_t)np, sizeof(float)), *first = calloc((size_t)np, sizeof(float));
        float *gfirst = calloc((size_t)(np * plane), sizeof(float));
        for (int64_t p = 0; p < np; p++) {
            double acc = 0;
            for (int64_t i = 0; i < plane; i++) acc += xs[p * plane + i];
            want[p] = (float)(acc / (double)plane);
        }
        for (int cap = 0; cap < 3; cap++) {
            gc_tuning t;
            gc_tuning_defaults(&t);
            t.isa = cap >= 2 ? 1 : cap >= 1 ? 2 : 0; /* GCAM_ISA: generic, avx2 */
            gc_tuning_set_default(&t);
            char label[96];
            snprintf(label, sizeof label, "GlobalAveragePool %lldx%lld (isa cap %d)", (long long)d[2], (long long)d[3],
                     cap);
            gc_node *n = oc_node("GlobalAveragePool", 12, 1, 1);
            gc_tensor y;
            gc_err err = {0};
            if (oc_check(oc_forward(n, &x, 1, 0, &y, 1, &err) == GCAM_OK, "%s: %s", label, err.msg)) {
                oc_close(label, y.data, want, np, 1e-6, 1e-5);
                if (cap == 0) memcpy(first, y.data, (size_t)np * sizeof(float));
                else oc_check(!memcmp(first, y.data, (size_t)np * sizeof(float)), "%s: bit-identical to the best path",
                              label);
                /* the backward: dX = dY / plane spread over each plane, added */
                const gc_opdef *od = gc_op_get(n->op);
                gc_tensor gx = oc_tensor(GC_F32, 4, d);
                gc_kctx k;
                memset(&k, 0, sizeof k);
                k.node = n;
                k.n_in = k.n_out = 1;
                k.in[0] = &x;
                k.out[0] = &y;
                k.gout[0] = &gy;
                k.gin[0] = &gx;
                k.nthreads = 2;
                k.tune = &t;
                k.err = &err;
                if (oc_check(od->backward(&k) == GCAM_OK, "%s: backward", label)) {
                    const float *g = gx.data, *gv = gy.data;
                    int ok = 1;
                    for (int64_t i = 0; i < np * plane && ok; i++) ok = g[i] == gv[i / plane] / (float)plane;
                    oc_check(ok, "%s: backward exact", label);
                    if (cap == 0) memcpy(gfirst, g, (size_t)(np * plane) * sizeof(float));
                    else oc_check(!memcmp(gfirst, g, (size_t)(np * plane) * sizeof(float)),
                                  "%s: backward bit-identical to the best path", label);
                }
                oc_tensor_free(&gx);
                oc_tensor_free(&y);
            }
            oc_node_free(n);
        }
        gc_tuning_set_default(NULL);
        free(want);
        free(first);
        free(gfirst);
        oc_tensor_free(&x);
        oc_tensor_free(&gy);
    }
}

/* =========================================================================================== */
/* Normalisations                                                                              */

static void test_batchnorm(void) {
    const int64_t C = 3;
    gc_tensor in[5];
    in[1] = oc_rand(1, &C, 0.5f, 1.5f); /* scale */
    in[2] = oc_rand(1, &C, -1, 1);      /* B */
    in[3] = oc_rand(1, &C, -1, 1);      /* mean */
    in[4] = oc_rand(1, &C, 0.2f, 2.0f); /* var */
    static const int64_t shapes[][5] = {{4, 2, 3, 4, 5}, {2, 4, 3, 0, 0}, {3, 2, 3, 6, 0}};
    static const int opsets[] = {15, 9, 7};
    for (size_t s = 0; s < GC_ARRAY_LEN(shapes); s++) {
        int nd = (int)shapes[s][0];
        char label[64];
        snprintf(label, sizeof label, "BatchNormalization rank %d opset %d", nd, opsets[s]);
        in[0] = oc_rand(nd, &shapes[s][1], -2, 2);
        gc_node *n = oc_node("BatchNormalization", opsets[s], 5, 1);
        oc_attr_f(n, "epsilon", 1e-3f);
        if (opsets[s] < 9) oc_attr_i(n, "spatial", 1);
        if (opsets[s] >= 14) oc_attr_i(n, "training_mode", 0);
        gc_tensor y;
        gc_err err = {0};
        if (oc_check(oc_forward(n, in, 5, 0x1e, &y, 1, &err) == GCAM_OK, "%s: %s", label, err.msg)) {
            int64_t N = in[0].shape.d[0], S = gc_numel(&in[0]) / (N * C);
            float *want = calloc((size_t)gc_numel(&y), sizeof(float));
            const float *x = in[0].data, *sc = in[1].data, *b = in[2].data, *m = in[3].data, *v = in[4].data;
            for (int64_t i = 0; i < gc_numel(&y); i++) {
                int64_t c = (i / S) % C;
                want[i] = (float)((x[i] - m[c]) * sc[c] / sqrt((double)v[c] + 1e-3) + b[c]);
            }
            oc_close(label, y.data, want, gc_numel(&y), 1e-5, 1e-5);
            free(want);
            oc_tensor_free(&y);
        }
        oc_gradcheck(label, n, in, 5, 0x1e, 1, 1, 1e-2, 1e-3, 300); /* affine in X */
        oc_node_free(n);
        oc_tensor_free(&in[0]);
    }
    in[0] = oc_rand(4, I64(2, 3, 4, 5), -2, 2);
    gc_node *n = oc_node("BatchNormalization", 15, 5, 1);
    oc_attr_i(n, "training_mode", 1);
    expect_fail("BatchNormalization training_mode=1", n, in, 5, 0x1e, 1);
    n = oc_node("BatchNormalization", 15, 5, 3);
    expect_fail("BatchNormalization with running-stat outputs", n, in, 5, 0x1e, 3);
    n = oc_node("BatchNormalization", 7, 5, 1);
    oc_attr_i(n, "spatial", 0);
    expect_fail("BatchNormalization spatial=0", n, in, 5, 0x1e, 1);
    n = oc_node("BatchNormalization", 15, 5, 1);
    gc_tensor bad = in[3];
    in[3] = oc_rand(1, I64(4), -1, 1);
    expect_fail("BatchNormalization mean of wrong size", n, in, 5, 0x1e, 1);
    oc_tensor_free(&in[3]);
    in[3] = bad;
    for (int i = 0; i < 5; i++) oc_tensor_free(&in[i]);
}

/* Reference for LayerNorm/InstanceNorm: rows of M, y = (x - mean) / sqrt(var + eps) * w + b. */
static void ref_norm_rows(double *y, double *mean, double *rstd, const float *x, int64_t rows, int64_t M,
                          const float *w, int64_t (*widx)(int64_t row, int64_t j, int64_t M), const float *b,
                          double eps) {
    for (int64_t r = 0; r < rows; r++) {
        double s = 0, ss = 0;
        for (int64_t j = 0; j < M; j++) s += x[r * M + j];
        double mu = s / (double)M;
        for (int64_t j = 0; j < M; j++) ss += (x[r * M + j] - mu) * (x[r * M + j] - mu);
        double rs = 1.0 / sqrt(ss / (double)M + eps);
        for (int64_t j = 0; j < M; j++) {
            int64_t wi = widx(r, j, M);
            y[r * M + j] = (x[r * M + j] - mu) * rs * (w ? w[wi] : 1.0) + (b ? b[wi] : 0.0);
        }
        if (mean) mean[r] = mu;
        if (rstd) rstd[r] = rs;
    }
}
static int64_t g_inorm_C;
static int64_t widx_inorm(int64_t row, int64_t j, int64_t M) { return row % g_inorm_C; }
static int64_t widx_ln(int64_t row, int64_t j, int64_t M) { return j; }

static void close_d(const char *label, const float *got, const double *want, int64_t n, double atol, double rtol) {
    float *w = calloc((size_t)n, sizeof(float));
    for (int64_t i = 0; i < n; i++) w[i] = (float)want[i];
    oc_close(label, got, w, n, atol, rtol);
    free(w);
}

static void test_instancenorm(void) {
    static const int64_t shapes[][6] = {{4, 2, 3, 4, 5}, {3, 2, 3, 6}, {5, 1, 2, 3, 2, 2}};
    for (size_t s = 0; s < GC_ARRAY_LEN(shapes); s++) {
        int nd = (int)shapes[s][0];
        const int64_t *d = &shapes[s][1];
        int64_t C = d[1];
        gc_tensor in[3] = {oc_rand(nd, d, -2, 2), oc_rand(1, &C, 0.5f, 1.5f), oc_rand(1, &C, -1, 1)};
        char label[64];
        snprintf(label, sizeof label, "InstanceNormalization rank %d", nd);
        gc_node *n = oc_node("InstanceNormalization", 6, 3, 1);
        oc_attr_f(n, "epsilon", 1e-4f);
        gc_tensor y;
        gc_err err = {0};
        if (oc_check(oc_forward(n, in, 3, 6, &y, 1, &err) == GCAM_OK, "%s: %s", label, err.msg)) {
            int64_t ny = gc_numel(&y), rows = d[0] * C;
            double *ref = calloc((size_t)ny, sizeof(double));
            g_inorm_C = C;
            ref_norm_rows(ref, NULL, NULL, in[0].data, rows, ny / rows, in[1].data, widx_inorm, in[2].data, 1e-4);
            close_d(label, y.data, ref, ny, 1e-5, 1e-4);
            free(ref);
            oc_tensor_free(&y);
        }
        oc_gradcheck(label, n, in, 3, 6, 1, 1, 1e-2, 1e-2, 300);
        oc_node_free(n);
        for (int i = 0; i < 3; i++) oc_tensor_free(&in[i]);
    }
}

static void test_layernorm(void) {
    typedef struct { int nd; int64_t d[4]; int64_t axis; int has_axis, has_b, n_out, scalar_w; } ln_case;
    static const ln_case cases[] = {
        {4, {2, 3, 4, 5}, -1, 0, 1, 1, 0},  /* default axis */
        {4, {2, 3, 4, 5}, -1, 1, 1, 3, 0},  /* with Mean and InvStdDev */
        {4, {2, 3, 4, 5}, 1, 1, 0, 1, 0},   /* axis 1, no B */
        {4, {2, 3, 4, 5}, 1, 1, 1, 3, 0},
        {3, {3, 4, 6}, -2, 1, 1, 3, 0},
        {2, {4, 6}, 0, 1, 1, 3, 1},         /* whole tensor, scalar Scale */
    };
    for (size_t ci = 0; ci < GC_ARRAY_LEN(cases); ci++) {
        const ln_case *c = &cases[ci];
        int axis = (int)(c->axis < 0 ? c->axis + c->nd : c->axis);
        int64_t rows = prod(c->d, axis), M = prod(c->d + axis, c->nd - axis);
        gc_tensor in[3];
        in[0] = oc_rand(c->nd, c->d, -2, 2);
        in[1] = c->scalar_w ? oc_rand(1, I64(1), 0.5f, 1.5f) : oc_rand(c->nd - axis, c->d + axis, 0.5f, 1.5f);
        in[2] = c->has_b ? oc_rand(c->nd - axis, c->d + axis, -1, 1) : none();
        char label[96];
        snprintf(label, sizeof label, "LayerNormalization axis %lld rank %d outputs %d", (long long)c->axis, c->nd,
                 c->n_out);
        gc_node *n = oc_node("LayerNormalization", 17, c->has_b ? 3 : 2, c->n_out);
        if (c->has_axis) oc_attr_i(n, "axis", c->axis);
        oc_attr_f(n, "epsilon", 1e-3f);
        gc_tensor y[3];
        gc_err err = {0};
        int n_in = c->has_b ? 3 : 2;
        if (oc_check(oc_forward(n, in, n_in, 6, y, c->n_out, &err) == GCAM_OK, "%s: %s", label, err.msg)) {
            double *ref = calloc((size_t)(rows * M), sizeof(double)), *mu = calloc((size_t)rows, sizeof(double)),
                   *rs = calloc((size_t)rows, sizeof(double));
            float wscal[1];
            const float *w = in[1].data;
            float *wfull = NULL;
            if (c->scalar_w) {
                wscal[0] = w[0];
                wfull = calloc((size_t)M, sizeof(float));
                for (int64_t j = 0; j < M; j++) wfull[j] = wscal[0];
                w = wfull;
            }
            ref_norm_rows(ref, mu, rs, in[0].data, rows, M, w, widx_ln, c->has_b ? in[2].data : NULL, 1e-3);
            close_d(label, y[0].data, ref, rows * M, 1e-5, 1e-4);
            if (c->n_out == 3) {
                int64_t want_sh[4];
                for (int i = 0; i < c->nd; i++) want_sh[i] = i < axis ? c->d[i] : 1;
                oc_check(shape_is(&y[1], c->nd, want_sh) && shape_is(&y[2], c->nd, want_sh), "%s: stat shapes", label);
                close_d("LayerNormalization Mean", y[1].data, mu, rows, 1e-6, 1e-5);
                close_d("LayerNormalization InvStdDev", y[2].data, rs, rows, 1e-6, 1e-5);
            }
            for (int j = 0; j < c->n_out; j++) oc_tensor_free(&y[j]);
            free(ref);
            free(mu);
            free(rs);
            free(wfull);
        }
        oc_gradcheck(label, n, in, n_in, 6, c->n_out, 1, 1e-2, 1e-2, 300);
        oc_node_free(n);
        for (int i = 0; i < 3; i++) oc_tensor_free(&in[i]);
    }
    gc_tensor in[2] = {oc_rand(2, I64(3, 4), -1, 1), oc_rand(1, I64(3), 0.5f, 1.5f)};
    gc_node *n = oc_node("LayerNormalization", 17, 2, 1);
    expect_fail("LayerNormalization Scale of the wrong shape", n, in, 2, 2, 1);
    n = oc_node("LayerNormalization", 17, 2, 1);
    oc_attr_i(n, "axis", 2);
    expect_fail("LayerNormalization axis out of range", n, in, 2, 2, 1);
    oc_tensor_free(&in[0]);
    oc_tensor_free(&in[1]);
}

/* ONNX LRN: channels [c - floor((size-1)/2), c + ceil((size-1)/2)], divided by size. */
static void ref_lrn(double *y, const float *x, const int64_t *d, int64_t size, double alpha, double beta, double bias) {
    int64_t N = d[0], C = d[1], S = d[2] * d[3];
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < S; i++) {
                double sq = 0;
                for (int64_t cc = c - (size - 1) / 2; cc <= c + size / 2; cc++)
                    if (cc >= 0 && cc < C) sq += (double)x[(n * C + cc) * S + i] * x[(n * C + cc) * S + i];
                int64_t e = (n * C + c) * S + i;
                y[e] = x[e] / pow(bias + alpha / (double)size * sq, beta);
            }
}

static void test_lrn(void) {
    { /* PyTorch local_response_norm(size 3, alpha .5, beta .75, k 2) on pattern (2,3,4,5) (odd size: same window) */
        static const float want[] = {
            -1.207634f, -0.5777779f, 0.611813f, -1.243524f, -0.1168631f, 0.9034965f, -1.168631f, 0.2176167f,
            1.121657f, -0.8888891f, 0.4105957f, -1.224707f, -0.4334641f, 0.7028244f, -1.237285f, 0.0f};
        gc_tensor x = pattern(4, I64(2, 3, 4, 5)), y;
        gc_node *n = oc_node("LRN", 13, 1, 1);
        oc_attr_i(n, "size", 3);
        oc_attr_f(n, "alpha", 0.5f);
        oc_attr_f(n, "beta", 0.75f);
        oc_attr_f(n, "bias", 2.0f);
        gc_err err = {0};
        if (oc_check(oc_forward(n, &x, 1, 0, &y, 1, &err) == GCAM_OK, "lrn torch: %s", err.msg)) {
            oc_close("LRN size 3 (PyTorch)", y.data, want, 16, 1e-6, 1e-5);
            oc_tensor_free(&y);
        }
        oc_node_free(n);
        oc_tensor_free(&x);
    }
    static const int64_t sizes[] = {3, 5, 4, 1};
    for (size_t s = 0; s < GC_ARRAY_LEN(sizes); s++) {
        const int64_t d[4] = {2, 7, 3, 3};
        gc_tensor x = oc_rand(4, d, -2, 2), y;
        char label[48];
        snprintf(label, sizeof label, "LRN size %lld", (long long)sizes[s]);
        gc_node *n = oc_node("LRN", 13, 1, 1);
        oc_attr_i(n, "size", sizes[s]);
        oc_attr_f(n, "alpha", 0.6f);
        oc_attr_f(n, "beta", 0.75f);
        oc_attr_f(n, "bias", 1.5f);
        gc_err err = {0};
        if (oc_check(oc_forward(n, &x, 1, 0, &y, 1, &err) == GCAM_OK, "%s: %s", label, err.msg)) {
            double *ref = calloc((size_t)gc_numel(&x), sizeof(double));
            ref_lrn(ref, x.data, d, sizes[s], 0.6f, 0.75f, 1.5f);
            close_d(label, y.data, ref, gc_numel(&x), 1e-6, 1e-5);
            free(ref);
            oc_tensor_free(&y);
        }
        oc_gradcheck(label, n, &x, 1, 0, 1, 1, 1e-2, 1e-2, 300);
        oc_node_free(n);
        oc_tensor_free(&x);
    }
    gc_tensor x = oc_rand(4, I64(1, 3, 2, 2), -1, 1);
    gc_node *n = oc_node("LRN", 13, 1, 1);
    expect_fail("LRN without size", n, &x, 1, 0, 1);
    oc_tensor_free(&x);
}

/* (O, A, I) groups; coerce: opset < 13 flattening of [axis:]. */
static void ref_softmax(double *y, const float *x, const int64_t *d, int nd, int axis, int coerce, int is_log) {
    int64_t O = prod(d, axis), A = coerce ? prod(d + axis, nd - axis) : d[axis];
    int64_t I = coerce ? 1 : prod(d + axis + 1, nd - axis - 1);
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++) {
            double m = -INFINITY, s = 0;
            for (int64_t a = 0; a < A; a++) m = fmax(m, x[(o * A + a) * I + i]);
            for (int64_t a = 0; a < A; a++) s += exp(x[(o * A + a) * I + i] - m);
            for (int64_t a = 0; a < A; a++) {
                double v = x[(o * A + a) * I + i] - m;
                y[(o * A + a) * I + i] = is_log ? v - log(s) : exp(v) / s;
            }
        }
}

static void test_softmax(void) {
    typedef struct { int opset; int64_t axis; int has_axis, nd; int64_t d[4]; } sm_case;
    static const sm_case cases[] = {
        {11, 1, 1, 4, {2, 3, 4, 5}},  /* coerced: over (3, 4, 5) flattened */
        {11, 0, 0, 4, {2, 3, 4, 5}},  /* opset 11 default axis 1 */
        {11, -2, 1, 3, {3, 4, 5}},
        {13, 1, 1, 4, {2, 3, 4, 5}},  /* over channels only */
        {13, 0, 0, 4, {2, 3, 4, 5}},  /* opset 13 default axis -1 */
        {13, 0, 1, 3, {3, 4, 70}},    /* several SM_BLK blocks along I */
        {13, -1, 1, 2, {3, 10}},
    };
    for (int is_log = 0; is_log < 2; is_log++)
        for (size_t ci = 0; ci < GC_ARRAY_LEN(cases); ci++) {
            const sm_case *c = &cases[ci];
            int64_t ax = c->has_axis ? c->axis : (c->opset < 13 ? 1 : -1);
            int axis = (int)(ax < 0 ? ax + c->nd : ax);
            char label[96];
            snprintf(label, sizeof label, "%s opset %d axis %lld%s rank %d", is_log ? "LogSoftmax" : "Softmax", c->opset,
                     (long long)ax, c->has_axis ? "" : " (default)", c->nd);
            gc_node *n = oc_node(is_log ? "LogSoftmax" : "Softmax", c->opset, 1, 1);
            if (c->has_axis) oc_attr_i(n, "axis", c->axis);
            gc_tensor x = oc_rand(c->nd, c->d, -3, 3), y;
            gc_err err = {0};
            if (oc_check(oc_forward(n, &x, 1, 0, &y, 1, &err) == GCAM_OK, "%s: %s", label, err.msg)) {
                double *ref = calloc((size_t)gc_numel(&x), sizeof(double));
                ref_softmax(ref, x.data, c->d, c->nd, axis, c->opset < 13, is_log);
                close_d(label, y.data, ref, gc_numel(&x), 1e-6, 1e-5);
                free(ref);
                oc_tensor_free(&y);
            }
            oc_gradcheck(label, n, &x, 1, 0, 1, 1, 1e-2, 1e-2, 300);
            oc_node_free(n);
            oc_tensor_free(&x);
        }
    gc_tensor x = oc_rand(2, I64(3, 4), -1, 1);
    gc_node *n = oc_node("Softmax", 13, 1, 1);
    oc_attr_i(n, "axis", 2);
    expect_fail("Softmax axis out of range", n, &x, 1, 0, 1);
    oc_tensor_free(&x);
}

/* Contiguous rows (attention's Softmax over the last axis) on every instruction-set path the CPU
 * has (isa.h): lengths around the 8- and 16-lane blocks, rows holding -inf (a 0 there), NaN (a NaN
 * row) and +inf (NaN, as inf - inf), against double; the paths bit-identical. */
static void test_softmax_rows(void) {
    static const int64_t lens[] = {1, 5, 7, 8, 9, 16, 17, 31, 64, 197};
    for (int is_log = 0; is_log < 2; is_log++)
        for (size_t li = 0; li < GC_ARRAY_LEN(lens); li++) {
            const int64_t R = 6, A = lens[li], n = R * A;
            gc_tensor x = oc_rand(2, I64(R, A), -30, 30);
            float *xv = x.data, *first = malloc((size_t)n * sizeof(float));
            xv[1 * A + A / 2] = -INFINITY;        /* row 1: a masked entry */
            xv[2 * A + (A - 1)] = NAN;            /* row 2: NaN */
            xv[3 * A + A / 3] = INFINITY;         /* row 3: +inf */
            double *ref = calloc((size_t)n, sizeof(double));
            ref_softmax(ref, xv, (int64_t[]){R, A}, 2, 1, 0, is_log);
            for (int cap = 0; cap < 3 && first && ref; cap++) {
                gc_tuning t;
                gc_tuning_defaults(&t);
                t.isa = cap >= 2 ? 1 : cap >= 1 ? 2 : 0; /* GCAM_ISA: generic, avx2 */
                gc_tuning_set_default(&t);
                char label[96];
                snprintf(label, sizeof label, "%s rows of %lld (isa cap %d)", is_log ? "LogSoftmax" : "Softmax",
                         (long long)A, cap);
                gc_node *nd = oc_node(is_log ? "LogSoftmax" : "Softmax", 13, 1, 1);
                gc_tensor y;
                gc_err err = {0};
                if (oc_check(oc_forward(nd, &x, 1, 0, &y, 1, &err) == GCAM_OK, "%s: %s", label, err.msg)) {
                    float *yv = y.data;
                    if (cap == 0) memcpy(first, yv, (size_t)n * sizeof(float));
                    else oc_check(memcmp(first, yv, (size_t)n * sizeof(float)) == 0, "%s: bit-identical to the best path", label);
                    int special = 1;
                    for (int64_t a = 0; a < A; a++) {
                        special &= isnan(yv[2 * A + a]) && isnan(yv[3 * A + a]);
                        if (a == A / 2 && A > 1) special &= is_log ? yv[A + a] == -INFINITY : yv[A + a] == 0.0f;
                    }
                    oc_check(special, "%s: NaN rows, +inf rows, -inf entries", label);
                    yv[A + A / 2] = 0.0f; /* checked above */
                    ref[A + A / 2] = 0.0;
                    close_d(label, yv, ref, A, 1e-6, 1e-5);                    /* row 0 */
                    if (A > 1) close_d(label, yv + A, ref + A, A, 1e-6, 1e-5); /* row 1 */
                    close_d(label, yv + 4 * A, ref + 4 * A, 2 * A, 1e-6, 1e-5); /* rows 4, 5 */
                    oc_tensor_free(&y);
                }
                oc_node_free(nd);
            }
            gc_tuning_set_default(NULL);
            free(ref);
            free(first);
            oc_tensor_free(&x);
        }
}

/* =========================================================================================== */
/* Reductions                                                                                  */

enum { K_SUM, K_MEAN, K_MAX, K_MIN, K_L2, K_PROD, K_SUMSQ };
static const char *red_names[] = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceProd",
                                  "ReduceSumSquare"};

/* Naive: walk the input, drop reduced axes to find the output element. */
static void ref_reduce(double *y, const float *x, const int64_t *d, int nd, uint32_t mask, int kind) {
    int64_t n = prod(d, nd), ny = 1, R = 1;
    for (int a = 0; a < nd; a++) {
        if (mask & (1u << a)) R *= d[a];
        else ny *= d[a];
    }
    for (int64_t q = 0; q < ny; q++)
        y[q] = kind == K_PROD ? 1 : kind == K_MAX ? -INFINITY : kind == K_MIN ? INFINITY : 0;
    for (int64_t e = 0; e < n; e++) {
        int64_t r = e, q = 0, mul = 1;
        for (int a = nd - 1; a >= 0; a--) {
            int64_t i = r % d[a];
            r /= d[a];
            if (!(mask & (1u << a))) { q += i * mul; mul *= d[a]; }
        }
        double v = x[e];
        switch (kind) {
        case K_SUM: case K_MEAN: y[q] += v; break;
        case K_L2: case K_SUMSQ: y[q] += v * v; break;
        case K_PROD: y[q] *= v; break;
        case K_MAX: y[q] = fmax(y[q], v); break;
        case K_MIN: y[q] = fmin(y[q], v); break;
        }
    }
    for (int64_t q = 0; q < ny; q++) {
        if (kind == K_MEAN) y[q] /= (double)R;
        if (kind == K_L2) y[q] = sqrt(y[q]);
    }
}

typedef struct rd_case { int n_axes; int64_t axes[4]; int keepdims; } rd_case;

static void test_reduce_grid(void) {
    static const rd_case cases[] = {
        {0, {0}, 1},          /* all axes */
        {0, {0}, 0},
        {1, {1}, 0},          /* channels: (O, R, I) with I = H*W */
        {2, {2, 3}, 1},       /* H, W: contiguous groups */
        {2, {0, 2}, 1},       /* two blocks: transposed path */
        {1, {-1}, 0},
        {3, {0, 1, 3}, 0},    /* two blocks */
        {2, {-3, 2}, 1},      /* middle block */
        {2, {0, 1}, 1},       /* leading block */
    };
    const int64_t d[4] = {2, 3, 4, 5};
    for (int kind = 0; kind < 7; kind++)
        for (size_t ci = 0; ci < GC_ARRAY_LEN(cases); ci++) {
            const rd_case *c = &cases[ci];
            uint32_t mask = 0;
            for (int i = 0; i < c->n_axes; i++) mask |= 1u << (c->axes[i] < 0 ? c->axes[i] + 4 : c->axes[i]);
            if (!c->n_axes) mask = 15;
            char label[96];
            int len = snprintf(label, sizeof label, "%s axes {", red_names[kind]);
            for (int i = 0; i < c->n_axes; i++)
                len += snprintf(label + len, sizeof label - (size_t)len, "%s%lld", i ? "," : "", (long long)c->axes[i]);
            snprintf(label + len, sizeof label - (size_t)len, "} keepdims %d", c->keepdims);
            gc_tensor x;
            if (kind == K_MAX || kind == K_MIN) x = distinct(4, d, 0.02f);
            else if (kind == K_PROD) {
                x = oc_rand(4, d, 0.7f, 1.3f);
                for (int64_t i = 0; i < 120; i += 7) ((float *)x.data)[i] *= -1; /* some signs */
            } else x = oc_rand(4, d, -1, 1);
            gc_node *n = oc_node(red_names[kind], 11, 1, 1);
            if (c->n_axes) oc_attr_ints(n, "axes", c->n_axes, c->axes);
            if (c->keepdims == 0 || ci % 2) oc_attr_i(n, "keepdims", c->keepdims);
            gc_tensor y;
            gc_err err = {0};
            if (oc_check(oc_forward(n, &x, 1, 0, &y, 1, &err) == GCAM_OK, "%s: %s", label, err.msg)) {
                int64_t want_sh[4];
                int wn = 0;
                for (int a = 0; a < 4; a++)
                    if (!(mask & (1u << a))) want_sh[wn++] = d[a];
                    else if (c->keepdims) want_sh[wn++] = 1;
                oc_check(shape_is(&y, wn, want_sh), "%s: output shape", label);
                double *ref = calloc(120, sizeof(double));
                ref_reduce(ref, x.data, d, 4, mask, kind);
                close_d(label, y.data, ref, gc_numel(&y), 1e-5, 1e-5);
                free(ref);
                oc_tensor_free(&y);
            }
            /* Sum/Mean linear, SumSquare quadratic, Prod multilinear: central differences exact up
             * to rounding; L2 curved; Max/Min exact selection (gap 0.02 >> h) */
            double h = (kind == K_MAX || kind == K_MIN) ? 1e-3 : 1e-2;
            oc_gradcheck(label, n, &x, 1, 0, 1, 1, h, kind == K_L2 ? 1e-2 : 2e-3, 400);
            oc_node_free(n);
            oc_tensor_free(&x);
        }
}

static void test_reduce_special(void) {
    gc_err err = {0};
    gc_tensor y;
    const int64_t d[4] = {2, 3, 4, 5};
    { /* ReduceSum opset 13: axes as a constant input */
        gc_tensor in[2] = {oc_rand(4, d, -1, 1), oc_ints(2, I64(1, 3))};
        gc_node *n = oc_node("ReduceSum", 13, 2, 1);
        oc_attr_i(n, "keepdims", 0);
        if (oc_check(oc_forward(n, in, 2, 2, &y, 1, &err) == GCAM_OK, "ReduceSum axes input: %s", err.msg)) {
            oc_check(shape_is(&y, 2, I64(2, 4)), "ReduceSum axes input shape");
            double ref[8];
            ref_reduce(ref, in[0].data, d, 4, 0xa, K_SUM);
            close_d("ReduceSum axes input", y.data, ref, 8, 1e-5, 1e-5);
            oc_tensor_free(&y);
        }
        oc_gradcheck("ReduceSum opset 13 axes input", n, in, 2, 2, 1, 1, 1e-2, 1e-3, 120);
        oc_node_free(n);
        n = oc_node("ReduceSum", 13, 2, 1);
        expect_fail("ReduceSum axes input not constant", n, in, 2, 0, 1);
        oc_tensor_free(&in[1]);
        int64_t zero = 0;
        in[1] = oc_tensor(GC_I64, 1, &zero); /* empty axes */
        for (int noop = 0; noop < 2; noop++) {
            n = oc_node("ReduceSum", 13, 2, 1);
            oc_attr_i(n, "noop_with_empty_axes", noop);
            if (oc_check(oc_forward(n, in, 2, 2, &y, 1, &err) == GCAM_OK, "ReduceSum empty axes: %s", err.msg)) {
                if (noop) {
                    oc_check(shape_is(&y, 4, d), "ReduceSum noop shape");
                    oc_close("ReduceSum noop_with_empty_axes=1 is the identity", y.data, in[0].data, 120, 0, 0);
                } else {
                    double ref[1];
                    ref_reduce(ref, in[0].data, d, 4, 15, K_SUM);
                    oc_check(shape_is(&y, 4, I64(1, 1, 1, 1)), "ReduceSum empty axes shape");
                    close_d("ReduceSum empty axes reduces all", y.data, ref, 1, 1e-5, 1e-5);
                }
                oc_tensor_free(&y);
            }
            oc_gradcheck(noop ? "ReduceSum noop" : "ReduceSum empty axes", n, in, 2, 2, 1, 1, 1e-2, 1e-3, 120);
            oc_node_free(n);
        }
        /* opset 18 style for the others: ReduceSumSquare with noop acts as Square */
        n = oc_node("ReduceSumSquare", 18, 2, 1);
        oc_attr_i(n, "noop_with_empty_axes", 1);
        if (oc_check(oc_forward(n, in, 2, 2, &y, 1, &err) == GCAM_OK, "ReduceSumSquare noop: %s", err.msg)) {
            double ref[120];
            for (int i = 0; i < 120; i++) ref[i] = (double)((float *)in[0].data)[i] * ((float *)in[0].data)[i];
            close_d("ReduceSumSquare noop is Square", y.data, ref, 120, 1e-6, 1e-6);
            oc_tensor_free(&y);
        }
        oc_node_free(n);
        oc_tensor_free(&in[1]);
        in[1] = oc_ints(1, I64(-2));
        n = oc_node("ReduceMean", 18, 2, 1);
        if (oc_check(oc_forward(n, in, 2, 2, &y, 1, &err) == GCAM_OK, "ReduceMean opset 18: %s", err.msg)) {
            double ref[30];
            ref_reduce(ref, in[0].data, d, 4, 4, K_MEAN);
            oc_check(shape_is(&y, 4, I64(2, 3, 1, 5)), "ReduceMean opset 18 shape");
            close_d("ReduceMean opset 18 axes input", y.data, ref, 30, 1e-6, 1e-5);
            oc_tensor_free(&y);
        }
        oc_gradcheck("ReduceMean opset 18 axes input", n, in, 2, 2, 1, 1, 1e-2, 1e-3, 120);
        oc_node_free(n);
        oc_tensor_free(&in[1]);
        n = oc_node("ReduceSum", 13, 1, 1); /* no axes input: all */
        if (oc_check(oc_forward(n, in, 1, 0, &y, 1, &err) == GCAM_OK, "ReduceSum no axes: %s", err.msg)) {
            oc_check(shape_is(&y, 4, I64(1, 1, 1, 1)), "ReduceSum opset 13 without axes");
            oc_tensor_free(&y);
        }
        oc_node_free(n);
        oc_tensor_free(&in[0]);
    }
    { /* Prod with zeros: the gradient is the product of the others (exact: multilinear) */
        gc_tensor x = oc_rand(2, I64(3, 4), 0.5f, 1.5f);
        float *p = x.data;
        p[1] = 0;           /* row 0: one zero */
        p[5] = p[6] = 0;    /* row 1: two zeros */
        gc_node *n = oc_node("ReduceProd", 11, 1, 1);
        oc_attr_ints(n, "axes", 1, I64(1));
        oc_gradcheck("ReduceProd with zeros", n, &x, 1, 0, 1, 1, 1e-2, 1e-3, 100);
        oc_node_free(n);
        oc_tensor_free(&x);
    }
    { /* Max/Min ties: the gradient is split evenly (PyTorch amax/amin) */
        static const float xv[8] = {1, 3, 3, 2, 0, -1, 5, -1};
        gc_tensor x = oc_tensor(GC_F32, 2, I64(2, 4));
        memcpy(x.data, xv, sizeof xv);
        for (int m = 0; m < 2; m++) {
            gc_node *n = oc_node(m ? "ReduceMin" : "ReduceMax", 11, 1, 1);
            oc_attr_ints(n, "axes", 1, I64(1));
            gc_tensor go = oc_tensor(GC_F32, 2, I64(2, 1)), gi = oc_tensor(GC_F32, 2, I64(2, 4));
            ((float *)go.data)[0] = 1;
            ((float *)go.data)[1] = 2;
            if (oc_check(run_manual(n, &x, 1, &y, 1, &go, &gi, 1, &err) == GCAM_OK, "ties: %s", err.msg)) {
                static const float wmax[8] = {0, 0.5f, 0.5f, 0, 0, 0, 2, 0}, wmin[8] = {1, 0, 0, 0, 0, 1, 0, 1};
                oc_close(m ? "ReduceMin ties split evenly" : "ReduceMax ties split evenly", gi.data, m ? wmin : wmax, 8,
                         1e-7, 0);
            }
            oc_tensor_free(&y);
            oc_tensor_free(&go);
            oc_tensor_free(&gi);
            oc_node_free(n);
        }
        /* the same along a strided axis: x^T (4, 2) over axis 0 */
        gc_tensor xt = oc_tensor(GC_F32, 2, I64(4, 2));
        for (int i = 0; i < 8; i++) ((float *)xt.data)[i] = xv[(i % 2) * 4 + i / 2];
        for (int m = 0; m < 2; m++) {
            gc_node *n = oc_node(m ? "ReduceMin" : "ReduceMax", 11, 1, 1);
            oc_attr_ints(n, "axes", 1, I64(0));
            gc_tensor go = oc_tensor(GC_F32, 2, I64(1, 2)), gi = oc_tensor(GC_F32, 2, I64(4, 2));
            ((float *)go.data)[0] = 1;
            ((float *)go.data)[1] = 2;
            if (oc_check(run_manual(n, &xt, 1, &y, 1, &go, &gi, 1, &err) == GCAM_OK, "ties: %s", err.msg)) {
                static const float wmax[8] = {0, 0, 0.5f, 0, 0.5f, 2, 0, 0}, wmin[8] = {1, 0, 0, 1, 0, 0, 0, 1};
                oc_close(m ? "ReduceMin ties split evenly (strided)" : "ReduceMax ties split evenly (strided)", gi.data,
                         m ? wmin : wmax, 8, 1e-7, 0);
            }
            oc_tensor_free(&y);
            oc_tensor_free(&go);
            oc_tensor_free(&gi);
            oc_node_free(n);
        }
        oc_tensor_free(&xt);
        oc_tensor_free(&x);
    }
    { /* int64 (shape computations) */
        static const int64_t v[6] = {2, 3, 4, -1, 5, 7};
        gc_tensor x = oc_tensor(GC_I64, 2, I64(2, 3));
        memcpy(x.data, v, sizeof v);
        static const int64_t want[4][3] = {{9, 11, 0}, {24, -35, 0}, {4, 7, 0}, {2, -1, 0}};
        static const int64_t want_all[4] = {20, -840, 7, -1};
        for (int op = 0; op < 4; op++) {
            static const char *names[4] = {"ReduceSum", "ReduceProd", "ReduceMax", "ReduceMin"};
            gc_node *n = oc_node(names[op], 11, 1, 1);
            oc_attr_ints(n, "axes", 1, I64(1));
            oc_attr_i(n, "keepdims", 0);
            if (oc_check(oc_forward(n, &x, 1, 0, &y, 1, &err) == GCAM_OK, "%s int64: %s", names[op], err.msg)) {
                const int64_t *o = y.data;
                oc_check(y.dtype == GC_I64 && shape_is(&y, 1, I64(2)) && o[0] == want[op][0] && o[1] == want[op][1],
                         "%s int64 axis 1", names[op]);
                oc_tensor_free(&y);
            }
            oc_node_free(n);
            n = oc_node(names[op], 11, 1, 1);
            if (oc_check(oc_forward(n, &x, 1, 0, &y, 1, &err) == GCAM_OK, "%s int64 all: %s", names[op], err.msg)) {
                oc_check(((int64_t *)y.data)[0] == want_all[op], "%s int64 all axes", names[op]);
                oc_tensor_free(&y);
            }
            oc_node_free(n);
        }
        gc_node *n = oc_node("ReduceMean", 11, 1, 1);
        expect_fail("ReduceMean int64", n, &x, 1, 0, 1);
        oc_tensor_free(&x);
    }
    { /* errors */
        gc_tensor x = oc_rand(3, I64(2, 3, 4), -1, 1);
        gc_node *n = oc_node("ReduceMax", 11, 1, 1);
        oc_attr_ints(n, "axes", 1, I64(3));
        expect_fail("ReduceMax axis out of range", n, &x, 1, 0, 1);
        n = oc_node("ReduceMax", 11, 1, 1);
        oc_attr_ints(n, "axes", 2, I64(1, -2));
        expect_fail("ReduceMax repeated axis", n, &x, 1, 0, 1);
        n = oc_node("ReduceL2", 11, 1, 1);
        oc_attr_i(n, "keepdims", 2);
        expect_fail("ReduceL2 keepdims 2", n, &x, 1, 0, 1);
        oc_tensor_free(&x);
    }
}

static void test_argmax(void) {
    gc_err err = {0};
    gc_tensor y;
    { /* ties: first index by default, last with select_last_index */
        static const float xv[8] = {1, 5, 5, 2, 7, 7, 0, 0};
        gc_tensor x = oc_tensor(GC_F32, 2, I64(2, 4));
        memcpy(x.data, xv, sizeof xv);
        typedef struct { const char *op; int64_t axis; int keep, last; int64_t want[4]; int nw; } ac;
        static const ac cases[] = {
            {"ArgMax", 1, 1, 0, {1, 0}, 2}, {"ArgMax", 1, 1, 1, {2, 1}, 2}, {"ArgMin", 1, 0, 0, {0, 2}, 2},
            {"ArgMin", -1, 0, 1, {0, 3}, 2}, {"ArgMax", 0, 0, 0, {1, 1, 0, 0}, 4}, {"ArgMin", 0, 1, 1, {0, 0, 1, 1}, 4},
        };
        for (size_t i = 0; i < GC_ARRAY_LEN(cases); i++) {
            const ac *c = &cases[i];
            gc_node *n = oc_node(c->op, 13, 1, 1);
            oc_attr_i(n, "axis", c->axis);
            oc_attr_i(n, "keepdims", c->keep);
            if (c->last) oc_attr_i(n, "select_last_index", 1);
            if (oc_check(oc_forward(n, &x, 1, 0, &y, 1, &err) == GCAM_OK, "%s: %s", c->op, err.msg)) {
                int ax = (int)(c->axis < 0 ? c->axis + 2 : c->axis);
                int64_t sh[2] = {ax == 0 ? 1 : 2, ax == 1 ? 1 : 4};
                int ok = c->keep ? shape_is(&y, 2, sh) : shape_is(&y, 1, &sh[ax == 0 ? 1 : 0]);
                for (int j = 0; j < c->nw; j++) ok &= ((int64_t *)y.data)[j] == c->want[j];
                oc_check(ok && y.dtype == GC_I64, "%s case %zu (axis %lld keepdims %d last %d)", c->op, i,
                         (long long)c->axis, c->keep, c->last);
                oc_tensor_free(&y);
            }
            oc_node_free(n);
        }
        oc_tensor_free(&x);
    }
    /* random 3-D, every axis, against a naive scan */
    const int64_t d[3] = {3, 4, 5};
    gc_tensor x = distinct(3, d, 0.1f);
    for (int m = 0; m < 2; m++)
        for (int ax = 0; ax < 3; ax++) {
            gc_node *n = oc_node(m ? "ArgMin" : "ArgMax", 11, 1, 1);
            oc_attr_i(n, "axis", ax);
            if (!oc_check(oc_forward(n, &x, 1, 0, &y, 1, &err) == GCAM_OK, "arg random: %s", err.msg)) {
                oc_node_free(n);
                continue;
            }
            int64_t O = prod(d, ax), R = d[ax], I = prod(d + ax + 1, 2 - ax);
            int bad = 0;
            const float *xs = x.data;
            for (int64_t o = 0; o < O; o++)
                for (int64_t i = 0; i < I; i++) {
                    int64_t best = 0;
                    for (int64_t r = 1; r < R; r++) {
                        float v = xs[(o * R + r) * I + i], b = xs[(o * R + best) * I + i];
                        if (m ? v < b : v > b) best = r;
                    }
                    bad += ((int64_t *)y.data)[o * I + i] != best;
                }
            oc_check(!bad, "%s axis %d: %d wrong", m ? "ArgMin" : "ArgMax", ax, bad);
            oc_tensor_free(&y);
            oc_node_free(n);
        }
    oc_tensor_free(&x);
    { /* int64 input */
        static const int64_t v[6] = {4, -2, 9, 9, 0, -7};
        gc_tensor xi = oc_tensor(GC_I64, 2, I64(3, 2));
        memcpy(xi.data, v, sizeof v);
        gc_node *n = oc_node("ArgMax", 13, 1, 1);
        if (oc_check(oc_forward(n, &xi, 1, 0, &y, 1, &err) == GCAM_OK, "ArgMax int64: %s", err.msg)) {
            const int64_t *o = y.data;
            oc_check(shape_is(&y, 2, I64(1, 2)) && o[0] == 1 && o[1] == 1, "ArgMax int64 values");
            oc_tensor_free(&y);
        }
        oc_node_free(n);
        n = oc_node("ArgMax", 13, 1, 1);
        oc_attr_i(n, "axis", 2);
        expect_fail("ArgMax axis out of range", n, &xi, 1, 0, 1);
        oc_tensor_free(&xi);
    }
}

int main(void) {
    oc_seed(12345);
    for (size_t i = 0; i < GC_ARRAY_LEN(pl_cases); i++) pl_run_case(&pl_cases[i]);
    test_ceil_shapes();
    test_pool_values();
    test_pool_aux();
    test_maxpool_separable();
    test_nan();
    test_pool_errors();
    test_global_pools();
    test_gap_paths();
    test_batchnorm();
    test_instancenorm();
    test_layernorm();
    test_lrn();
    test_softmax();
    test_softmax_rows();
    test_reduce_grid();
    test_reduce_special();
    test_argmax();
    printf("%d passed, %d failed\n", oc_checks - oc_failures, oc_failures);
    return oc_failures != 0;
}

/* Tests of the element-wise families: act.c (unary) and binary.c (broadcasting). */
#include "opcheck.h"
#include "graph/plan.h"
#include "ops/isa.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------------------------- */

static gc_tensor ft(int nd, const int64_t *d, const float *v) {
    gc_tensor t = oc_tensor(GC_F32, nd, d);
    memcpy(t.data, v, (size_t)gc_numel(&t) * sizeof(float));
    return t;
}
static gc_tensor it(int nd, const int64_t *d, const int64_t *v) {
    gc_tensor t = oc_tensor(GC_I64, nd, d);
    memcpy(t.data, v, (size_t)gc_numel(&t) * sizeof(int64_t));
    return t;
}
static gc_tensor bt(int nd, const int64_t *d, const uint8_t *v) {
    gc_tensor t = oc_tensor(GC_BOOL, nd, d);
    memcpy(t.data, v, (size_t)gc_numel(&t));
    return t;
}
static gc_tensor fscalar(float v) { return ft(0, NULL, &v); }
static gc_tensor none(void) { return (gc_tensor){0}; }
static void free_all(gc_tensor *t, int n) {
    for (int i = 0; i < n; i++) oc_tensor_free(&t[i]);
}

/* Forward with every input constant; one output. Returns the status. */
static gcam_status fwd(gc_node *n, gc_tensor *in, int n_in, gc_tensor *out, int n_out) {
    gc_err err = {0};
    uint32_t all = 0;
    for (int i = 0; i < n_in; i++) all |= 1u << i;
    return oc_forward(n, in, n_in, all, out, n_out, &err);
}

static void check_f32(const char *label, const gc_tensor *t, const float *want, int64_t n) {
    if (!oc_check(t->dtype == GC_F32 && gc_numel(t) == n, "%s: dtype/size", label)) return;
    oc_close(label, t->data, want, n, 1e-6, 1e-5);
}
static void check_i64(const char *label, const gc_tensor *t, const int64_t *want, int64_t n) {
    if (!oc_check(t->dtype == GC_I64 && gc_numel(t) == n, "%s: dtype/size", label)) return;
    const int64_t *v = t->data;
    for (int64_t i = 0; i < n; i++)
        if (!oc_check(v[i] == want[i], "%s: element %lld: got %lld want %lld", label, (long long)i,
                      (long long)v[i], (long long)want[i]))
            return;
}
static void check_b8(const char *label, const gc_tensor *t, const uint8_t *want, int64_t n) {
    if (!oc_check(t->dtype == GC_BOOL && gc_numel(t) == n, "%s: dtype/size", label)) return;
    const uint8_t *v = t->data;
    for (int64_t i = 0; i < n; i++)
        if (!oc_check(v[i] == want[i], "%s: element %lld: got %d want %d", label, (long long)i, v[i],
                      want[i]))
            return;
}

/* Offset in `in` of the element at linear index e of `out` (numpy broadcasting, naive). */
static int64_t ref_off(const gc_shape *in, const gc_shape *out, int64_t e) {
    int64_t off = 0, mul = 1;
    for (int i = out->ndim - 1; i >= 0; i--) {
        int64_t c = e % out->d[i];
        e /= out->d[i];
        int j = i - (out->ndim - in->ndim);
        if (j >= 0) {
            if (in->d[j] != 1) off += c * mul;
            mul *= in->d[j];
        }
    }
    return off;
}

static gc_shape mkshape(int nd, const int64_t *d) {
    gc_shape s = {.ndim = nd};
    for (int i = 0; i < nd; i++) s.d[i] = d[i];
    return s;
}

/* Parse/infer/forward/backward run by hand, to choose the rule and thread count. gouts[j] may
 * have NULL data (no gradient); gins[i] with data receive the gradient (added to their content). */
static gcam_status run_direct(gc_node *n, gc_tensor *in, int n_in, uint32_t const_mask, gc_tensor *outs,
                              int n_out, gc_tensor *gouts, gc_tensor *gins, gc_rule rule, int nthreads) {
    gc_err err = {0};
    const gc_opdef *d = gc_op_get(n->op);
    gc_tensor shadow[GC_MAX_IO];
    gc_kctx k;
    memset(&k, 0, sizeof k);
    if (d->parse && !n->params && d->parse(n, &err)) return err.code;
    k.node = n;
    k.params = n->params;
    k.n_in = n_in;
    k.n_out = n_out;
    k.err = &err;
    k.nthreads = nthreads;
    k.rule = rule;
    for (int i = 0; i < n_in; i++) {
        if (!in[i].data && in[i].dtype == 0) continue;
        shadow[i] = in[i];
        if (!(const_mask & (1u << i))) shadow[i].data = NULL;
        k.in[i] = &shadow[i];
    }
    for (int j = 0; j < n_out; j++) {
        memset(&outs[j], 0, sizeof outs[j]);
        k.out[j] = &outs[j];
    }
    gcam_status st = d->infer(&k);
    if (st) return st;
    for (int i = 0; i < n_in; i++)
        if (k.in[i]) shadow[i].data = in[i].data;
    for (int j = 0; j < n_out; j++) {
        gc_tensor t = oc_tensor(outs[j].dtype, outs[j].shape.ndim, outs[j].shape.d);
        outs[j].data = t.data;
    }
    size_t sb = d->scratch_bytes ? d->scratch_bytes(&k) : 0;
    size_t bsb = d->bscratch_bytes ? d->bscratch_bytes(&k) : 0;
    k.scratch_size = GC_MAX(sb, bsb);
    k.scratch = k.scratch_size ? aligned_alloc(64, gc_align64(k.scratch_size)) : NULL;
    st = d->forward(&k);
    if (!st && gouts && gins && d->backward) {
        void *keep[GC_MAX_IO];
        for (int j = 0; j < n_out; j++) k.gout[j] = gouts[j].data ? &gouts[j] : NULL;
        for (int i = 0; i < n_in; i++) k.gin[i] = gins[i].data ? &gins[i] : NULL;
        /* as the harness: backward sees only what it declared */
        for (int i = 0; i < n_in; i++)
            if (k.in[i] && !(d->bw_in & (1u << i)) && !(const_mask & (1u << i))) shadow[i].data = NULL;
        for (int j = 0; j < n_out; j++) {
            keep[j] = outs[j].data;
            if (!(d->bw_out & (1u << j))) outs[j].data = NULL;
        }
        st = d->backward(&k);
        for (int j = 0; j < n_out; j++) outs[j].data = keep[j];
    }
    free(k.scratch);
    if (st) fprintf(stderr, "run_direct: %s\n", err.msg);
    return st;
}

/* ---- binary: forward -------------------------------------------------------------------- */

static void test_binary_forward_small(void) {
    gc_tensor out[2], in[3];
    gc_node *n;
    {   /* (2,3) + (3) */
        int64_t da[] = {2, 3}, db[] = {3};
        float a[] = {1, 2, 3, 4, 5, 6}, b[] = {10, 20, 30}, want[] = {11, 22, 33, 14, 25, 36};
        in[0] = ft(2, da, a);
        in[1] = ft(1, db, b);
        n = oc_node("Add", 13, 2, 1);
        if (oc_check(fwd(n, in, 2, out, 1) == GCAM_OK, "Add small")) {
            oc_check(out[0].shape.ndim == 2 && out[0].shape.d[0] == 2 && out[0].shape.d[1] == 3, "Add shape");
            check_f32("Add (2,3)+(3)", &out[0], want, 6);
        }
        oc_tensor_free(&out[0]);
        oc_node_free(n);
        free_all(in, 2);
    }
    {   /* int64 arithmetic; Div truncates toward zero */
        int64_t d4[] = {4};
        int64_t a[] = {7, -7, 7, -7}, b[] = {2, 2, -2, -2};
        const char *ops[] = {"Add", "Sub", "Mul", "Div"};
        int64_t want[4][4] = {{9, -5, 5, -9}, {5, -9, 9, -5}, {14, -14, -14, 14}, {3, -3, -3, 3}};
        for (int o = 0; o < 4; o++) {
            in[0] = it(1, d4, a);
            in[1] = it(1, d4, b);
            n = oc_node(ops[o], 14, 2, 1);
            if (oc_check(fwd(n, in, 2, out, 1) == GCAM_OK, "%s int64", ops[o])) check_i64(ops[o], &out[0], want[o], 4);
            oc_tensor_free(&out[0]);
            oc_node_free(n);
            free_all(in, 2);
        }
        int64_t z[] = {1, 0, 1, 1};
        in[0] = it(1, d4, a);
        in[1] = it(1, d4, z);
        n = oc_node("Div", 14, 2, 1);
        gc_err err = {0};
        oc_check(oc_forward(n, in, 2, 3, out, 1, &err) == GCAM_E_ARG, "int64 Div by zero reports an error");
        oc_tensor_free(&out[0]);
        oc_node_free(n);
        free_all(in, 2);
    }
    {   /* Mod, both fmod modes */
        int64_t d6[] = {6};
        int64_t a[] = {-4, 7, 5, 4, -7, 8}, b[] = {2, -3, 8, -2, 3, 5};
        int64_t want_py[] = {0, -2, 5, 0, 2, 3}, want_c[] = {0, 1, 5, 0, -1, 3};
        for (int f = 0; f < 2; f++) {
            in[0] = it(1, d6, a);
            in[1] = it(1, d6, b);
            n = oc_node("Mod", 13, 2, 1);
            oc_attr_i(n, "fmod", f);
            if (oc_check(fwd(n, in, 2, out, 1) == GCAM_OK, "Mod int64")) check_i64(f ? "Mod fmod=1" : "Mod fmod=0", &out[0], f ? want_c : want_py, 6);
            oc_tensor_free(&out[0]);
            oc_node_free(n);
            free_all(in, 2);
        }
        float fa[] = {-4.3f, 7.2f, 5.0f, 4.5f, -7.5f, 8.25f}, fb[] = {2, -3, 8, -2, 3, 5};
        float want_f[6], want_fp[6];
        for (int i = 0; i < 6; i++) {
            want_f[i] = fmodf(fa[i], fb[i]);
            want_fp[i] = want_f[i] != 0 && ((want_f[i] < 0) != (fb[i] < 0)) ? want_f[i] + fb[i] : want_f[i];
        }
        for (int f = 0; f < 2; f++) {
            in[0] = ft(1, d6, fa);
            in[1] = ft(1, d6, fb);
            n = oc_node("Mod", 13, 2, 1);
            oc_attr_i(n, "fmod", f);
            if (oc_check(fwd(n, in, 2, out, 1) == GCAM_OK, "Mod float")) check_f32("Mod float", &out[0], f ? want_f : want_fp, 6);
            oc_tensor_free(&out[0]);
            oc_node_free(n);
            free_all(in, 2);
        }
        n = oc_node("Mod", 13, 2, 1);
        oc_attr_i(n, "fmod", 2);
        in[0] = ft(1, d6, fa);
        in[1] = ft(1, d6, fb);
        gc_err err = {0};
        oc_check(oc_forward(n, in, 2, 3, out, 1, &err) == GCAM_E_FORMAT, "Mod fmod=2 rejected");
        oc_node_free(n);
        free_all(in, 2);
    }
    {   /* Pow with every type pairing */
        int64_t d3[] = {3}, d1[] = {1};
        float xf[] = {1, 2, 3}, yf[] = {4, 5, 6}, wf[] = {1, 32, 729};
        int64_t xi[] = {2, 3, -2}, yi[] = {3, 2, 3}, wi[] = {8, 9, -8};
        in[0] = ft(1, d3, xf);
        in[1] = ft(1, d3, yf);
        n = oc_node("Pow", 15, 2, 1);
        if (oc_check(fwd(n, in, 2, out, 1) == GCAM_OK, "Pow ff")) check_f32("Pow ff", &out[0], wf, 3);
        oc_tensor_free(&out[0]);
        oc_node_free(n);
        free_all(in, 2);
        in[0] = ft(1, d3, xf);
        in[1] = it(1, d3, yi);
        float wfi[] = {1, 4, 27};
        n = oc_node("Pow", 15, 2, 1);
        if (oc_check(fwd(n, in, 2, out, 1) == GCAM_OK, "Pow fi")) check_f32("Pow fi", &out[0], wfi, 3);
        oc_tensor_free(&out[0]);
        oc_node_free(n);
        free_all(in, 2);
        in[0] = it(1, d3, xi);
        in[1] = it(1, d3, yi);
        n = oc_node("Pow", 15, 2, 1);
        if (oc_check(fwd(n, in, 2, out, 1) == GCAM_OK, "Pow ii")) check_i64("Pow ii", &out[0], wi, 3);
        oc_tensor_free(&out[0]);
        oc_node_free(n);
        free_all(in, 2);
        float yhalf[] = {2.5f};
        int64_t wif[] = {5, 15, 0}; /* 2^2.5 = 5.66, 3^2.5 = 15.6, (-2)^2.5 = NaN -> 0 */
        in[0] = it(1, d3, xi);
        in[1] = ft(1, d1, yhalf);
        n = oc_node("Pow", 15, 2, 1);
        if (oc_check(fwd(n, in, 2, out, 1) == GCAM_OK, "Pow if")) check_i64("Pow if", &out[0], wif, 3);
        oc_tensor_free(&out[0]);
        oc_node_free(n);
        free_all(in, 2);
        float two[] = {2}, sq[] = {1, 4, 9};
        in[0] = ft(1, d3, xf);
        in[1] = ft(1, d1, two);
        n = oc_node("Pow", 7, 2, 1);
        if (oc_check(fwd(n, in, 2, out, 1) == GCAM_OK, "Pow x^2")) check_f32("Pow x^2", &out[0], sq, 3);
        oc_tensor_free(&out[0]);
        oc_node_free(n);
        free_all(in, 2);
    }
    {   /* comparisons with broadcasting, (2,3) vs (3) */
        int64_t da[] = {2, 3}, db[] = {3};
        float a[] = {1, 2, 3, 4, 5, 6}, b[] = {2, 2, 7};
        const char *ops[] = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"};
        uint8_t want[5][6] = {{0, 1, 0, 0, 0, 0}, {1, 0, 1, 0, 0, 1}, {0, 0, 0, 1, 1, 0},
                              {1, 1, 1, 0, 0, 1}, {0, 1, 0, 1, 1, 0}};
        for (int o = 0; o < 5; o++) {
            for (int t = 0; t < 2; t++) {
                if (t == 0) {
                    in[0] = ft(2, da, a);
                    in[1] = ft(1, db, b);
                } else {
                    int64_t ai[6], bi[3];
                    for (int i = 0; i < 6; i++) ai[i] = (int64_t)a[i];
                    for (int i = 0; i < 3; i++) bi[i] = (int64_t)b[i];
                    in[0] = it(2, da, ai);
                    in[1] = it(1, db, bi);
                }
                n = oc_node(ops[o], 13, 2, 1);
                if (oc_check(fwd(n, in, 2, out, 1) == GCAM_OK, "%s", ops[o])) check_b8(ops[o], &out[0], want[o], 6);
                oc_tensor_free(&out[0]);
                oc_node_free(n);
                free_all(in, 2);
            }
        }
        uint8_t x[] = {0, 1, 1, 0, 1, 0}, y[] = {1, 1, 0};
        uint8_t w_and[] = {0, 1, 0, 0, 1, 0}, w_or[] = {1, 1, 1, 1, 1, 0}, w_eq[] = {0, 1, 0, 0, 1, 1};
        const char *lops[] = {"And", "Or", "Equal"};
        const uint8_t *lw[] = {w_and, w_or, w_eq};
        for (int o = 0; o < 3; o++) {
            in[0] = bt(2, da, x);
            in[1] = bt(1, db, y);
            n = oc_node(lops[o], 13, 2, 1);
            if (oc_check(fwd(n, in, 2, out, 1) == GCAM_OK, "%s bool", lops[o])) check_b8(lops[o], &out[0], lw[o], 6);
            oc_tensor_free(&out[0]);
            oc_node_free(n);
            free_all(in, 2);
        }
        in[0] = ft(2, da, a);
        in[1] = it(1, db, (int64_t[]){1, 2, 3});
        n = oc_node("Add", 13, 2, 1);
        gc_err err = {0};
        oc_check(oc_forward(n, in, 2, 3, out, 1, &err) == GCAM_E_FORMAT, "Add float + int64 rejected");
        oc_node_free(n);
        free_all(in, 2);
        int64_t dc[] = {4};
        in[0] = ft(2, da, a);
        in[1] = ft(1, dc, (float[]){1, 2, 3, 4});
        n = oc_node("Mul", 13, 2, 1);
        gc_err_clear(&err);
        oc_check(oc_forward(n, in, 2, 3, out, 1, &err) == GCAM_E_SHAPE, "Mul (2,3)*(4) rejected");
        oc_node_free(n);
        free_all(in, 2);
    }
    {   /* Where: cond (2,1), X (1,3), Y scalar; float and int64 */
        int64_t dc[] = {2, 1}, dx[] = {1, 3};
        uint8_t c[] = {1, 0};
        float x[] = {1, 2, 3};
        float want[] = {1, 2, 3, -1, -1, -1};
        in[0] = bt(2, dc, c);
        in[1] = ft(2, dx, x);
        in[2] = fscalar(-1);
        n = oc_node("Where", 16, 3, 1);
        if (oc_check(fwd(n, in, 3, out, 1) == GCAM_OK, "Where")) check_f32("Where f32", &out[0], want, 6);
        oc_tensor_free(&out[0]);
        oc_node_free(n);
        free_all(in, 3);
        int64_t xi[] = {1, 2, 3}, yi = -1, wi[] = {1, 2, 3, -1, -1, -1};
        in[0] = bt(2, dc, c);
        in[1] = it(2, dx, xi);
        in[2] = it(0, NULL, &yi);
        n = oc_node("Where", 16, 3, 1);
        if (oc_check(fwd(n, in, 3, out, 1) == GCAM_OK, "Where int64")) check_i64("Where i64", &out[0], wi, 6);
        oc_tensor_free(&out[0]);
        oc_node_free(n);
        free_all(in, 3);
    }
    {   /* variadic: Max/Min/Sum/Mean of (2,3), (3), (2,1); one input copies */
        int64_t d0[] = {2, 3}, d1[] = {3}, d2[] = {2, 1};
        float a[] = {1, 5, 3, 4, 2, 6}, b[] = {2, 2, 2}, c[] = {0, 5};
        float wmax[] = {2, 5, 3, 5, 5, 6}, wmin[] = {0, 0, 0, 2, 2, 2};
        float wsum[6], wmean[6];
        for (int i = 0; i < 6; i++) {
            wsum[i] = a[i] + b[i % 3] + c[i / 3];
            wmean[i] = wsum[i] / 3;
        }
        const char *ops[] = {"Max", "Min", "Sum", "Mean"};
        const float *w[] = {wmax, wmin, wsum, wmean};
        for (int o = 0; o < 4; o++) {
            in[0] = ft(2, d0, a);
            in[1] = ft(1, d1, b);
            in[2] = ft(2, d2, c);
            n = oc_node(ops[o], 13, 3, 1);
            if (oc_check(fwd(n, in, 3, out, 1) == GCAM_OK, "%s variadic", ops[o])) check_f32(ops[o], &out[0], w[o], 6);
            oc_tensor_free(&out[0]);
            oc_node_free(n);
            free_all(in, 3);
            in[0] = ft(2, d0, a);
            n = oc_node(ops[o], 13, 1, 1);
            if (oc_check(fwd(n, in, 1, out, 1) == GCAM_OK, "%s one input", ops[o])) check_f32(ops[o], &out[0], a, 6);
            oc_tensor_free(&out[0]);
            oc_node_free(n);
            free_all(in, 1);
        }
        int64_t ai[] = {1, 5, 3, 4, 2, 6}, bi[] = {2, 2, 2}, wi[] = {2, 5, 3, 4, 2, 6};
        in[0] = it(2, d0, ai);
        in[1] = it(1, d1, bi);
        n = oc_node("Max", 13, 2, 1);
        if (oc_check(fwd(n, in, 2, out, 1) == GCAM_OK, "Max int64")) check_i64("Max int64", &out[0], wi, 6);
        oc_tensor_free(&out[0]);
        oc_node_free(n);
        free_all(in, 2);
    }
}

/* Random shapes pairs: forward of Add/Sub/Mul/Div/Max against a naive broadcast, including
 * sizes large enough for several threads. */
typedef struct shape_pair {
    int na, nb;
    int64_t a[6], b[6];
} shape_pair;

static const shape_pair g_pairs[] = {
    {4, 3, {2, 3, 4, 5}, {3, 1, 1}},
    {3, 4, {3, 1, 1}, {2, 3, 4, 5}},
    {2, 2, {1, 5}, {4, 1}},
    {0, 3, {0}, {2, 3, 4}},
    {3, 1, {2, 3, 4}, {1}},
    {3, 3, {3, 1, 5}, {1, 4, 1}},
    {4, 4, {4, 1, 3, 1}, {1, 5, 1, 6}},
    {2, 1, {6, 7}, {7}},
    {3, 3, {2, 3, 4}, {2, 3, 4}},
    {1, 1, {1}, {1}},
};
static const shape_pair g_big_pairs[] = {
    {4, 3, {2, 64, 32, 32}, {64, 1, 1}},
    {4, 4, {2, 64, 32, 32}, {2, 64, 1, 1}},
    {4, 4, {1, 16, 48, 48}, {1, 16, 48, 48}},
    {4, 1, {1, 8, 64, 64}, {64}},
    {0, 4, {0}, {2, 16, 32, 33}},
    {3, 3, {300, 1, 130}, {1, 7, 130}},
    {2, 2, {1, 70001}, {3, 1}},
};

static float ref_bin(int op, float a, float b) {
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    default: return a > b ? a : b;
    }
}

static void test_binary_forward_random(void) {
    const char *ops[] = {"Add", "Sub", "Mul", "Div", "Max"};
    for (int big = 0; big < 2; big++) {
        const shape_pair *P = big ? g_big_pairs : g_pairs;
        int np = big ? (int)GC_ARRAY_LEN(g_big_pairs) : (int)GC_ARRAY_LEN(g_pairs);
        for (int p = 0; p < np; p++) {
            for (int o = 0; o < 5; o++) {
                gc_tensor in[2], out[1];
                in[0] = oc_rand(P[p].na, P[p].a, 0.5f, 2.0f);
                in[1] = oc_rand(P[p].nb, P[p].b, 0.5f, 2.0f);
                gc_node *n = oc_node(ops[o], 13, 2, 1);
                char label[128];
                snprintf(label, sizeof label, "%s forward, %s pair %d", ops[o], big ? "big" : "small", p);
                if (oc_check(fwd(n, in, 2, out, 1) == GCAM_OK, "%s", label)) {
                    int64_t N = gc_numel(&out[0]);
                    float *want = malloc((size_t)N * sizeof(float));
                    const float *a = in[0].data, *b = in[1].data;
                    for (int64_t e = 0; e < N; e++)
                        want[e] = ref_bin(o, a[ref_off(&in[0].shape, &out[0].shape, e)],
                                          b[ref_off(&in[1].shape, &out[0].shape, e)]);
                    oc_close(label, out[0].data, want, N, 0, 0); /* bit-exact */
                    free(want);
                }
                oc_tensor_free(&out[0]);
                oc_node_free(n);
                free_all(in, 2);
            }
        }
    }
}

/* ---- binary: backward ------------------------------------------------------------------- */

static void test_binary_gradcheck(void) {
    const char *ops[] = {"Add", "Sub", "Mul", "Div", "Pow"};
    for (size_t p = 0; p < GC_ARRAY_LEN(g_pairs); p++) {
        for (int o = 0; o < 5; o++) {
            gc_tensor in[2];
            /* Div: divisor in [0.5, 2]; Pow: base in [0.5, 2] (ln x defined), exponent in [-1.5, 2.5]. */
            in[0] = oc_rand(g_pairs[p].na, g_pairs[p].a, o == 4 ? 0.5f : -1.0f, 2.0f);
            in[1] = oc_rand(g_pairs[p].nb, g_pairs[p].b, o >= 3 ? (o == 4 ? -1.5f : 0.5f) : -1.0f,
                            o == 4 ? 2.5f : 2.0f);
            gc_node *n = oc_node(ops[o], 13, 2, 1);
            char label[128];
            snprintf(label, sizeof label, "%s gradcheck, pair %zu", ops[o], p);
            oc_gradcheck(label, n, in, 2, 0, 1, 3, 1e-3, 5e-3, 64); /* smooth: h 1e-3, tol 5e-3 */
            oc_node_free(n);
            free_all(in, 2);
        }
    }
    /* Pow with an int64 exponent: gradient to the base only (the exponent is constant). */
    {
        int64_t dx[] = {3, 4}, dy[] = {4};
        gc_tensor in[2] = {oc_rand(2, dx, -2.0f, 2.0f), it(1, dy, (int64_t[]){0, 1, 2, 3})};
        gc_node *n = oc_node("Pow", 15, 2, 1);
        oc_gradcheck("Pow x^int64", n, in, 2, 2, 1, 1, 1e-3, 5e-3, 64);
        oc_node_free(n);
        free_all(in, 2);
    }
    /* Big broadcasting reductions (several threads): Mul (2,64,32,32) * (2,64,1,1), probing a
     * subset of elements. */
    for (size_t p = 0; p < 2; p++) {
        gc_tensor in[2] = {oc_rand(g_big_pairs[p].na, g_big_pairs[p].a, -1, 1),
                           oc_rand(g_big_pairs[p].nb, g_big_pairs[p].b, -1, 1)};
        gc_node *n = oc_node("Mul", 13, 2, 1);
        char label[64];
        snprintf(label, sizeof label, "Mul gradcheck, big pair %zu", p);
        oc_gradcheck(label, n, in, 2, 0, 1, 3, 1e-2, 5e-3, 24); /* linear: larger h is exact */
        oc_node_free(n);
        free_all(in, 2);
    }
}

/* Variadic Sum/Mean/Max/Min with 3 broadcast inputs. Max/Min values are on a 0.1 grid with a
 * distinct offset per input, so no two candidates are within 2h of each other. */
static void test_variadic_gradcheck(void) {
    const char *ops[] = {"Sum", "Mean", "Max", "Min"};
    int64_t d0[] = {2, 3, 4}, d1[] = {3, 1}, d2[] = {1, 4};
    for (int o = 0; o < 4; o++) {
        gc_tensor in[3] = {oc_rand(3, d0, -1, 1), oc_rand(2, d1, -1, 1), oc_rand(2, d2, -1, 1)};
        for (int i = 0; i < 3; i++) {
            float *v = in[i].data;
            for (int64_t e = 0; e < gc_numel(&in[i]); e++) v[e] = roundf(v[e] * 10) / 10 + 0.013f * (float)i;
        }
        gc_node *n = oc_node(ops[o], 13, 3, 1);
        char label[64];
        snprintf(label, sizeof label, "%s gradcheck, 3 inputs", ops[o]);
        oc_gradcheck(label, n, in, 3, 0, 1, 7, 1e-3, 5e-3, 64);
        oc_node_free(n);
        free_all(in, 3);
    }
    /* Max ties: the first input holding the maximum gets the whole gradient. */
    {
        int64_t d[] = {3};
        gc_tensor in[2] = {ft(1, d, (float[]){1, 2, 3}), ft(1, d, (float[]){1, 5, 0})};
        gc_tensor out[1], gout[1] = {ft(1, d, (float[]){1, 1, 1})};
        gc_tensor gin[2] = {oc_tensor(GC_F32, 1, d), oc_tensor(GC_F32, 1, d)};
        gc_node *n = oc_node("Max", 13, 2, 1);
        if (oc_check(run_direct(n, in, 2, 0, out, 1, gout, gin, GC_RULE_STANDARD, 1) == GCAM_OK, "Max ties")) {
            check_f32("Max ties: input 0", &gin[0], (float[]){1, 0, 1}, 3);
            check_f32("Max ties: input 1", &gin[1], (float[]){0, 1, 0}, 3);
        }
        oc_node_free(n);
        free_all(in, 2);
        free_all(out, 1);
        free_all(gout, 1);
        free_all(gin, 2);
    }
}

static void test_where_gradcheck(void) {
    int64_t dc[] = {2, 1, 4}, dx[] = {3, 1}, dy[] = {2, 3, 4};
    gc_tensor in[3];
    in[0] = oc_tensor(GC_BOOL, 3, dc);
    for (int i = 0; i < 8; i++) ((uint8_t *)in[0].data)[i] = (uint8_t)(oc_urand() < 0.5);
    in[1] = oc_rand(2, dx, -1, 1);
    in[2] = oc_rand(3, dy, -1, 1);
    gc_node *n = oc_node("Where", 16, 3, 1);
    oc_gradcheck("Where gradcheck", n, in, 3, 1, 1, 6, 1e-3, 5e-3, 64);
    oc_node_free(n);
    free_all(in, 3);
}

/* The broadcast reductions must give bit-identical results with 1 and 2 threads, and match a
 * naive double-precision reduction. */
static void test_reduction_determinism(void) {
    for (size_t p = 0; p < GC_ARRAY_LEN(g_big_pairs); p++) {
        const shape_pair *P = &g_big_pairs[p];
        gc_tensor in[2] = {oc_rand(P->na, P->a, -1, 1), oc_rand(P->nb, P->b, -1, 1)};
        gc_tensor out[2][1], gout[1], gin[2][2];
        gc_shape so;
        gc_node *n = oc_node("Mul", 13, 2, 1);
        for (int t = 0; t < 2; t++) {
            for (int i = 0; i < 2; i++) gin[t][i] = oc_tensor(GC_F32, in[i].shape.ndim, in[i].shape.d);
            if (t == 0) {
                /* output shape = broadcast of the two */
                gc_tensor tmp[1];
                fwd(n, in, 2, tmp, 1);
                so = tmp[0].shape;
                oc_tensor_free(&tmp[0]);
                gout[0] = oc_rand(so.ndim, so.d, -1, 1);
            }
            run_direct(n, in, 2, 0, out[t], 1, gout, gin[t], GC_RULE_STANDARD, t + 1);
        }
        for (int i = 0; i < 2; i++) {
            int64_t N = gc_numel(&in[i]);
            oc_check(memcmp(gin[0][i].data, gin[1][i].data, (size_t)N * sizeof(float)) == 0,
                     "Mul backward big pair %zu input %d: 1 vs 2 threads bit-identical", p, i);
            double *acc = calloc((size_t)N, sizeof(double));
            float *want = malloc((size_t)N * sizeof(float));
            const float *g = gout[0].data, *other = in[1 - i].data;
            for (int64_t e = 0; e < gc_numel(&gout[0]); e++)
                acc[ref_off(&in[i].shape, &so, e)] += (double)g[e] * other[ref_off(&in[1 - i].shape, &so, e)];
            for (int64_t e = 0; e < N; e++) want[e] = (float)acc[e];
            char label[96];
            snprintf(label, sizeof label, "Mul backward big pair %zu input %d vs naive", p, i);
            oc_close(label, gin[1][i].data, want, N, 1e-4, 1e-4);
            free(acc);
            free(want);
        }
        oc_node_free(n);
        free_all(in, 2);
        free_all(out[0], 1);
        free_all(out[1], 1);
        free_all(gout, 1);
        free_all(gin[0], 2);
        free_all(gin[1], 2);
    }
}

/* ---- unary ------------------------------------------------------------------------------ */

/* Random (2,3,4,5) input in [lo, hi] with |x - k| >= gap for every kink k. */
static gc_tensor rand_away(float lo, float hi, const float *kinks, int nk, float gap) {
    int64_t d[] = {2, 3, 4, 5};
    gc_tensor t = oc_rand(4, d, lo, hi);
    float *v = t.data;
    for (int64_t i = 0; i < 120; i++) {
        for (int j = 0; j < nk; j++) {
            if (fabsf(v[i] - kinks[j]) < gap) v[i] = kinks[j] + (v[i] < kinks[j] ? -gap : gap);
        }
    }
    return t;
}

typedef struct unary_case {
    const char *op;
    int opset;
    const char *attr1;
    float v1;
    const char *attr2;
    float v2;
    float lo, hi;
    float kinks[2];
    int nk;
    double h, tol;
} unary_case;

static void test_unary_gradcheck(void) {
    static const unary_case cases[] = {
        /* smooth ops: h 1e-3, tol 5e-3; piecewise ops keep inputs 0.05 away from the kinks */
        {"Relu", 14, NULL, 0, NULL, 0, -2, 2, {0}, 1, 1e-3, 5e-3},
        {"LeakyRelu", 16, NULL, 0, NULL, 0, -2, 2, {0}, 1, 1e-3, 5e-3},
        {"LeakyRelu", 16, "alpha", 0.3f, NULL, 0, -2, 2, {0}, 1, 1e-3, 5e-3},
        {"Elu", 6, NULL, 0, NULL, 0, -2, 2, {0}, 1, 1e-3, 5e-3},
        {"Elu", 6, "alpha", 0.5f, NULL, 0, -2, 2, {0}, 1, 1e-3, 5e-3},
        {"Selu", 6, NULL, 0, NULL, 0, -2, 2, {0}, 1, 1e-3, 5e-3},
        {"Selu", 6, "alpha", 2.0f, "gamma", 3.0f, -2, 2, {0}, 1, 1e-3, 5e-3},
        {"Celu", 12, NULL, 0, NULL, 0, -2, 2, {0}, 1, 1e-3, 5e-3},
        {"Celu", 12, "alpha", 2.0f, NULL, 0, -2, 2, {0}, 1, 1e-3, 5e-3},
        {"ThresholdedRelu", 10, NULL, 0, NULL, 0, -2, 3, {1}, 1, 1e-3, 5e-3},
        {"ThresholdedRelu", 10, "alpha", 0.3f, NULL, 0, -2, 2, {0.3f}, 1, 1e-3, 5e-3},
        {"Sigmoid", 13, NULL, 0, NULL, 0, -6, 6, {0}, 0, 1e-3, 5e-3},
        {"HardSigmoid", 6, NULL, 0, NULL, 0, -4, 4, {-2.5f, 2.5f}, 2, 1e-3, 5e-3},
        {"HardSigmoid", 6, "alpha", 0.5f, "beta", 0.4f, -2, 2, {-0.8f, 1.2f}, 2, 1e-3, 5e-3},
        {"HardSwish", 14, NULL, 0, NULL, 0, -5, 5, {-3, 3}, 2, 1e-3, 5e-3},
        {"Tanh", 13, NULL, 0, NULL, 0, -3, 3, {0}, 0, 1e-3, 5e-3},
        {"Erf", 13, NULL, 0, NULL, 0, -2, 2, {0}, 0, 1e-3, 5e-3},
        {"Softplus", 1, NULL, 0, NULL, 0, -5, 5, {0}, 0, 1e-3, 5e-3},
        {"Softsign", 1, NULL, 0, NULL, 0, -3, 3, {0}, 0, 1e-3, 5e-3},
        {"Sqrt", 13, NULL, 0, NULL, 0, 0.3f, 3, {0}, 0, 1e-3, 5e-3},
        {"Exp", 13, NULL, 0, NULL, 0, -2, 2, {0}, 0, 1e-3, 5e-3},
        {"Log", 13, NULL, 0, NULL, 0, 0.3f, 3, {0}, 0, 1e-3, 5e-3},
        {"Neg", 13, NULL, 0, NULL, 0, -2, 2, {0}, 0, 1e-3, 5e-3},
        {"Abs", 13, NULL, 0, NULL, 0, -2, 2, {0}, 1, 1e-3, 5e-3},
        {"Reciprocal", 13, NULL, 0, NULL, 0, -2, 2, {0}, 1, 1e-4, 5e-3}, /* |x| >= 0.3 below */
        {"Identity", 13, NULL, 0, NULL, 0, -2, 2, {0}, 0, 1e-3, 5e-3},
        {"Sin", 7, NULL, 0, NULL, 0, -3, 3, {0}, 0, 1e-3, 5e-3},
        {"Cos", 7, NULL, 0, NULL, 0, -3, 3, {0}, 0, 1e-3, 5e-3},
        {"Clip", 6, "min", -0.5f, "max", 0.7f, -2, 2, {-0.5f, 0.7f}, 2, 1e-3, 5e-3},
        {"Clip", 6, "min", 0.0f, "max", 6.0f, -3, 8, {0, 6}, 2, 1e-3, 5e-3},
        {"Clip", 6, NULL, 0, NULL, 0, -2, 2, {0}, 0, 1e-3, 5e-3},
        {"Dropout", 7, "ratio", 0.3f, NULL, 0, -2, 2, {0}, 0, 1e-3, 5e-3},
    };
    for (size_t c = 0; c < GC_ARRAY_LEN(cases); c++) {
        const unary_case *u = &cases[c];
        gc_tensor in[1] = {rand_away(u->lo, u->hi, u->kinks, u->nk, strcmp(u->op, "Reciprocal") ? 0.05f : 0.3f)};
        gc_node *n = oc_node(u->op, u->opset, 1, 1);
        if (u->attr1) oc_attr_f(n, u->attr1, u->v1);
        if (u->attr2) oc_attr_f(n, u->attr2, u->v2);
        char label[128];
        snprintf(label, sizeof label, "%s gradcheck (opset %d%s%s)", u->op, u->opset, u->attr1 ? ", " : "",
                 u->attr1 ? u->attr1 : "");
        oc_gradcheck(label, n, in, 1, 0, 1, 1, u->h, u->tol, 120);
        oc_node_free(n);
        free_all(in, 1);
    }
}

/* Clip opset 11+: bounds as optional constant inputs, each present or omitted. */
static void test_clip_inputs(void) {
    for (int form = 0; form < 4; form++) {
        float kinks[2] = {-0.5f, 0.7f};
        gc_tensor in[3] = {rand_away(-2, 2, kinks, 2, 0.05f), (form & 1) ? fscalar(-0.5f) : none(),
                           (form & 2) ? fscalar(0.7f) : none()};
        gc_node *n = oc_node("Clip", 13, 3, 1);
        char label[64];
        snprintf(label, sizeof label, "Clip opset 13 gradcheck, min %s max %s", (form & 1) ? "given" : "omitted",
                 (form & 2) ? "given" : "omitted");
        oc_gradcheck(label, n, in, 3, 6, 1, 1, 1e-3, 5e-3, 120);
        gc_tensor out[1];
        if (oc_check(fwd(n, in, 3, out, 1) == GCAM_OK, "%s forward", label)) {
            const float *x = in[0].data, *y = out[0].data;
            int ok = 1;
            for (int i = 0; i < 120; i++) {
                float w = x[i];
                if ((form & 1) && w < -0.5f) w = -0.5f;
                if ((form & 2) && w > 0.7f) w = 0.7f;
                if (y[i] != w) ok = 0;
            }
            oc_check(ok, "%s forward values", label);
        }
        free_all(out, 1);
        oc_node_free(n);
        free_all(in, 3);
    }
    /* two-input form with only min given (opset 12, 2 inputs) */
    {
        int64_t d[] = {4};
        gc_tensor in[2] = {ft(1, d, (float[]){-1, 0.5f, 2, 7}), fscalar(0.0f)}, out[1];
        gc_node *n = oc_node("Clip", 12, 2, 1);
        if (oc_check(fwd(n, in, 2, out, 1) == GCAM_OK, "Clip 2 inputs")) check_f32("Clip min only", &out[0], (float[]){0, 0.5f, 2, 7}, 4);
        free_all(out, 1);
        oc_node_free(n);
        free_all(in, 2);
    }
    /* min > max: every output is max */
    {
        int64_t d[] = {3};
        gc_tensor in[3] = {ft(1, d, (float[]){-1, 0.5f, 2}), fscalar(1.0f), fscalar(0.0f)}, out[1];
        gc_node *n = oc_node("Clip", 13, 3, 1);
        if (oc_check(fwd(n, in, 3, out, 1) == GCAM_OK, "Clip min > max")) check_f32("Clip min > max", &out[0], (float[]){0, 0, 0}, 3);
        free_all(out, 1);
        oc_node_free(n);
        free_all(in, 3);
    }
    /* int64 Clip with int64 bounds */
    {
        int64_t d[] = {5}, lo = -2, hi = 3;
        gc_tensor in[3] = {it(1, d, (int64_t[]){-5, -2, 0, 3, 9}), it(0, NULL, &lo), it(0, NULL, &hi)}, out[1];
        gc_node *n = oc_node("Clip", 13, 3, 1);
        if (oc_check(fwd(n, in, 3, out, 1) == GCAM_OK, "Clip int64")) check_i64("Clip int64", &out[0], (int64_t[]){-2, -2, 0, 3, 3}, 5);
        free_all(out, 1);
        oc_node_free(n);
        free_all(in, 3);
    }
    /* runtime (non-constant) bounds: read at forward, and by backward */
    {
        float kinks[2] = {-0.5f, 0.7f};
        gc_tensor in[3] = {rand_away(-2, 2, kinks, 2, 0.05f), fscalar(-0.5f), fscalar(0.7f)};
        gc_node *n = oc_node("Clip", 13, 3, 1);
        oc_gradcheck("Clip runtime bounds gradcheck", n, in, 3, 0, 1, 1, 1e-3, 5e-3, 120);
        oc_node_free(n);
        free_all(in, 3);
    }
    /* a bound that is not a scalar is refused */
    {
        int64_t d[] = {3};
        gc_tensor in[2] = {ft(1, d, (float[]){-1, 0.5f, 2}), ft(1, d, (float[]){0, 0, 0})}, out[1];
        gc_node *n = oc_node("Clip", 13, 2, 1);
        gc_err err = {0};
        oc_check(oc_forward(n, in, 2, 3, out, 1, &err) == GCAM_E_SHAPE, "Clip min of 3 elements refused");
        oc_node_free(n);
        free_all(in, 2);
    }
}

/* The Relu / ReLU6 backward rules, checked mask by mask. */
static int set_isa_cap(int cap);

/* The rules over 8 values tiled 37 times (vector bodies and tails), on the path set_isa_cap chose. */
enum { RN = 8 * 37 };
static void test_rules_on(int cap) {
    const int64_t d[] = {RN};
    const float x8[] = {-1.0f, -0.5f, 0.5f, 2.0f, 3.0f, 7.0f, 0.25f, -3.0f};
    const float g8[] = {1.0f, -1.0f, 1.0f, -1.0f, 2.0f, 3.0f, -2.0f, -4.0f};
    float x[RN], g[RN];
    for (int i = 0; i < RN; i++) x[i] = x8[i % 8], g[i] = g8[(i + i / 8) % 8];
    for (int op = 0; op < 3; op++) { /* Relu, Clip(0, 6) opset 6, Clip(0, 6) opset 13 */
        for (int r = 0; r < 3; r++) {
            gc_tensor in[3], out[1], gout[1] = {ft(1, d, g)}, gin[3];
            int n_in = op == 2 ? 3 : 1;
            in[0] = ft(1, d, x);
            if (op == 2) {
                in[1] = fscalar(0.0f);
                in[2] = fscalar(6.0f);
            }
            gc_node *n = oc_node(op == 0 ? "Relu" : "Clip", op == 2 ? 13 : op == 1 ? 6 : 14, n_in, 1);
            if (op == 1) {
                oc_attr_f(n, "min", 0.0f);
                oc_attr_f(n, "max", 6.0f);
            }
            memset(gin, 0, sizeof gin);
            gin[0] = oc_tensor(GC_F32, 1, d);
            float want[RN];
            for (int i = 0; i < RN; i++) {
                int pos = x[i] > 0 && (op == 0 || x[i] < 6);
                want[i] = r == GC_RULE_STANDARD ? (pos ? g[i] : 0)
                        : r == GC_RULE_GUIDED ? (pos && g[i] > 0 ? g[i] : 0)
                                              : (g[i] > 0 ? g[i] : 0);
            }
            /* the input is non-constant, so run_direct hides it from backward (reads the output) */
            if (oc_check(run_direct(n, in, n_in, op == 2 ? 6 : 0, out, 1, gout, gin, (gc_rule)r, 1) == GCAM_OK,
                         "rule run")) {
                char label[64];
                const char *name = op == 0 ? "Relu" : op == 1 ? "Clip-6" : "Clip-13";
                snprintf(label, sizeof label, "%s rule %d (isa cap %d)", name, r, cap);
                check_f32(label, &gin[0], want, RN);
            }
            oc_node_free(n);
            free_all(in, n_in);
            free_all(out, 1);
            free_all(gout, 1);
            free_all(gin, 1);
        }
    }
    /* A Clip whose min is not 0 ignores the rule: GUIDED gives the standard gradient. */
    {
        gc_tensor in[1] = {ft(1, d, x)}, out[1], gout[1] = {ft(1, d, g)}, gin[1] = {oc_tensor(GC_F32, 1, d)};
        gc_node *n = oc_node("Clip", 6, 1, 1);
        oc_attr_f(n, "min", -2.0f);
        oc_attr_f(n, "max", 2.5f);
        float want[RN], wy[RN];
        for (int i = 0; i < RN; i++) want[i] = (x[i] > -2 && x[i] < 2.5f) ? g[i] : 0;
        for (int i = 0; i < RN; i++) wy[i] = x[i] < -2.0f ? -2.0f : x[i] > 2.5f ? 2.5f : x[i];
        if (oc_check(run_direct(n, in, 1, 0, out, 1, gout, gin, GC_RULE_GUIDED, 1) == GCAM_OK, "Clip(-2,2.5) guided")) {
            check_f32("Clip(-2, 2.5) GUIDED = STANDARD", &gin[0], want, RN);
            oc_check(!memcmp(out[0].data, wy, sizeof wy), "Clip(-2, 2.5) forward exact (isa cap %d)", cap);
        }
        oc_node_free(n);
        free_all(in, 1);
        free_all(out, 1);
        free_all(gout, 1);
        free_all(gin, 1);
    }
    /* gout NULL: nothing is added */
    {
        gc_tensor in[1] = {ft(1, d, x)}, out[1], gout[1] = {none()}, gin[1] = {oc_tensor(GC_F32, 1, d)};
        gc_node *n = oc_node("Relu", 14, 1, 1);
        float zero[RN] = {0};
        if (oc_check(run_direct(n, in, 1, 0, out, 1, gout, gin, GC_RULE_STANDARD, 1) == GCAM_OK, "Relu no gout"))
            check_f32("Relu with gout NULL adds nothing", &gin[0], zero, RN);
        oc_node_free(n);
        free_all(in, 1);
        free_all(out, 1);
        free_all(gin, 1);
    }
}
/* On every instruction-set path the CPU has (Clip's kernels are built per path). */
static void test_rules(void) {
    for (int cap = 0; cap < 3; cap++)
        if (set_isa_cap(cap)) test_rules_on(cap);
    gc_tuning_set_default(NULL);
}

static void test_prelu(void) {
    int64_t dx[] = {2, 3, 4, 5};
    struct {
        int nd;
        int64_t d[4];
    } slopes[] = {{3, {3, 1, 1}}, {1, {1}}, {1, {5}}, {4, {2, 3, 4, 5}}, {3, {3, 1, 5}}, {2, {4, 5}}, {0, {0}}};
    for (size_t s = 0; s < GC_ARRAY_LEN(slopes); s++) {
        float kink = 0;
        gc_tensor in[2] = {rand_away(-2, 2, &kink, 1, 0.05f), oc_rand(slopes[s].nd, slopes[s].d, -0.5f, 0.5f)};
        gc_node *n = oc_node("PRelu", 16, 2, 1);
        char label[64];
        snprintf(label, sizeof label, "PRelu slope case %zu", s);
        oc_gradcheck(label, n, in, 2, 2, 1, 1, 1e-3, 5e-3, 120);
        gc_tensor out[1];
        gc_shape sx = mkshape(4, dx);
        if (oc_check(fwd(n, in, 2, out, 1) == GCAM_OK, "%s forward", label)) {
            float want[120];
            const float *x = in[0].data, *sl = in[1].data;
            for (int e = 0; e < 120; e++) {
                float a = sl[ref_off(&in[1].shape, &sx, e)];
                want[e] = x[e] < 0 ? a * x[e] : x[e];
            }
            oc_close(label, out[0].data, want, 120, 0, 0);
        }
        free_all(out, 1);
        oc_node_free(n);
        free_all(in, 2);
    }
    /* a slope that does not broadcast */
    {
        int64_t ds[] = {4};
        gc_tensor in[2] = {oc_rand(4, dx, -1, 1), oc_rand(1, ds, 0, 1)}, out[1];
        gc_node *n = oc_node("PRelu", 16, 2, 1);
        gc_err err = {0};
        oc_check(oc_forward(n, in, 2, 3, out, 1, &err) == GCAM_E_SHAPE, "PRelu slope (4) on (2,3,4,5) refused");
        oc_node_free(n);
        free_all(in, 2);
    }
}

static void test_unary_forward(void) {
    int64_t d[] = {5};
    const float x[] = {-2.0f, -0.5f, 0.0f, 0.5f, 3.0f};
    struct {
        const char *op;
        float want[5];
    } cases[] = {
        {"Relu", {0, 0, 0, 0.5f, 3}},
        {"LeakyRelu", {-0.02f, -0.005f, 0, 0.5f, 3}},
        {"Sigmoid", {0.11920292f, 0.37754067f, 0.5f, 0.62245933f, 0.95257413f}},
        {"HardSigmoid", {0.1f, 0.4f, 0.5f, 0.6f, 1.0f}},
        {"HardSwish", {-0.33333334f, -0.20833333f, 0, 0.29166666f, 3}},
        {"Tanh", {-0.96402758f, -0.46211716f, 0, 0.46211716f, 0.99505475f}},
        {"Softplus", {0.12692801f, 0.47407698f, 0.69314718f, 0.97407698f, 3.04858735f}},
        {"Softsign", {-0.6666667f, -0.3333333f, 0, 0.3333333f, 0.75f}},
        {"Elu", {-0.86466472f, -0.39346934f, 0, 0.5f, 3}},
        {"Selu", {-1.52016652f, -0.69175231f, 0, 0.52535051f, 3.15210307f}},
        {"Celu", {-0.86466472f, -0.39346934f, 0, 0.5f, 3}},
        {"ThresholdedRelu", {0, 0, 0, 0, 3}},
        {"Neg", {2, 0.5f, 0, -0.5f, -3}},
        {"Abs", {2, 0.5f, 0, 0.5f, 3}},
        {"Floor", {-2, -1, 0, 0, 3}},
        {"Ceil", {-2, 0, 0, 1, 3}},
        {"Erf", {-0.99532227f, -0.52049988f, 0, 0.52049988f, 0.99997791f}},
        {"Identity", {-2.0f, -0.5f, 0.0f, 0.5f, 3.0f}},
    };
    for (size_t c = 0; c < GC_ARRAY_LEN(cases); c++) {
        gc_tensor in[1] = {ft(1, d, x)}, out[1];
        gc_node *n = oc_node(cases[c].op, 14, 1, 1);
        if (oc_check(fwd(n, in, 1, out, 1) == GCAM_OK, "%s forward", cases[c].op))
            check_f32(cases[c].op, &out[0], cases[c].want, 5);
        free_all(out, 1);
        oc_node_free(n);
        free_all(in, 1);
    }
    /* int64 Neg / Abs / Identity, bool Not / Identity */
    {
        int64_t v[] = {-3, 0, 4, INT64_MAX};
        int64_t d4[] = {4};
        const char *ops[] = {"Neg", "Abs", "Identity"};
        int64_t want[3][4] = {{3, 0, -4, -INT64_MAX}, {3, 0, 4, INT64_MAX}, {-3, 0, 4, INT64_MAX}};
        for (int o = 0; o < 3; o++) {
            gc_tensor in[1] = {it(1, d4, v)}, out[1];
            gc_node *n = oc_node(ops[o], 13, 1, 1);
            if (oc_check(fwd(n, in, 1, out, 1) == GCAM_OK, "%s int64", ops[o])) check_i64(ops[o], &out[0], want[o], 4);
            free_all(out, 1);
            oc_node_free(n);
            free_all(in, 1);
        }
        uint8_t b[] = {0, 1, 1, 0}, nb[] = {1, 0, 0, 1};
        gc_tensor in[1] = {bt(1, d4, b)}, out[1];
        gc_node *n = oc_node("Not", 1, 1, 1);
        if (oc_check(fwd(n, in, 1, out, 1) == GCAM_OK, "Not")) check_b8("Not", &out[0], nb, 4);
        free_all(out, 1);
        oc_node_free(n);
        n = oc_node("Identity", 16, 1, 1);
        if (oc_check(fwd(n, in, 1, out, 1) == GCAM_OK, "Identity bool")) check_b8("Identity bool", &out[0], b, 4);
        free_all(out, 1);
        oc_node_free(n);
        n = oc_node("Sigmoid", 13, 1, 1);
        gc_err err = {0};
        oc_check(oc_forward(n, in, 1, 1, out, 1, &err) == GCAM_E_UNSUPPORTED, "Sigmoid on bool refused");
        oc_node_free(n);
        free_all(in, 1);
    }
    /* extreme inputs stay finite where the function is */
    {
        int64_t d3[] = {3};
        gc_tensor in[1] = {ft(1, d3, (float[]){-200, 0, 200})}, out[1];
        const char *ops[] = {"Sigmoid", "Softplus"};
        const float want[2][3] = {{0, 0.5f, 1}, {0, 0.69314718f, 200}};
        for (int o = 0; o < 2; o++) {
            gc_node *n = oc_node(ops[o], 13, 1, 1);
            if (oc_check(fwd(n, in, 1, out, 1) == GCAM_OK, "%s extreme", ops[o])) check_f32(ops[o], &out[0], want[o], 3);
            free_all(out, 1);
            oc_node_free(n);
        }
        free_all(in, 1);
    }
    /* attribute validation */
    {
        gc_tensor in[1] = {ft(1, d, x)}, out[1];
        gc_node *n = oc_node("Celu", 12, 1, 1);
        oc_attr_f(n, "alpha", 0.0f);
        gc_err err = {0};
        oc_check(oc_forward(n, in, 1, 1, out, 1, &err) == GCAM_E_FORMAT, "Celu alpha 0 refused");
        oc_node_free(n);
        n = oc_node("LeakyRelu", 16, 1, 1);
        oc_attr_f(n, "alpha", NAN);
        gc_err_clear(&err);
        oc_check(oc_forward(n, in, 1, 1, out, 1, &err) == GCAM_E_FORMAT, "LeakyRelu alpha NaN refused");
        oc_node_free(n);
        free_all(in, 1);
    }
    /* large input: several threads, against a serial reference */
    {
        int64_t dl[] = {3, 100000};
        gc_tensor in[1] = {oc_rand(2, dl, -4, 4)}, out[1];
        gc_node *n = oc_node("Sigmoid", 13, 1, 1);
        if (oc_check(fwd(n, in, 1, out, 1) == GCAM_OK, "Sigmoid large")) {
            float *want = malloc(300000 * sizeof(float));
            const float *v = in[0].data;
            for (int i = 0; i < 300000; i++) want[i] = (float)(1.0 / (1.0 + exp(-(double)v[i])));
            oc_close("Sigmoid large", out[0].data, want, 300000, 1e-7, 1e-6);
            free(want);
        }
        free_all(out, 1);
        oc_node_free(n);
        free_all(in, 1);
    }
}

/* Exp, Sigmoid and Tanh use their own vectorisable exp: sweep the whole float range against
 * double precision (relative 3-4e-7 = a few ulp; absolute 1e-44 for denormal results). */
static void test_transcendental_accuracy_on(int cap, float **first) {
    static const struct {
        const char *op;
        float lo, hi;
        double rtol;
    } c[] = {{"Exp", -110.0f, 88.7f, 3e-7}, {"Sigmoid", -110.0f, 110.0f, 4e-7}, {"Tanh", -20.0f, 20.0f, 3e-7}};
    const int64_t N = 400000;
    for (size_t k = 0; k < GC_ARRAY_LEN(c); k++) {
        gc_tensor in[1] = {oc_tensor(GC_F32, 1, &N)}, out[1];
        float *x = in[0].data, *want = malloc((size_t)N * sizeof(float));
        for (int64_t i = 0; i < N; i++) {
            x[i] = c[k].lo + (c[k].hi - c[k].lo) * (float)i / (float)N;
            double v = x[i];
            want[i] = (float)(k == 0 ? exp(v) : k == 1 ? 1.0 / (1.0 + exp(-v)) : tanh(v));
        }
        x[0] = -INFINITY;
        want[0] = k == 2 ? -1.0f : 0.0f;
        x[1] = INFINITY;
        want[1] = k == 0 ? INFINITY : 1.0f;
        x[2] = 1e-20f; /* tiny: tanh(x) = x, sigmoid = 0.5 */
        want[2] = k == 0 ? 1.0f : k == 1 ? 0.5f : 1e-20f;
        gc_node *n = oc_node(c[k].op, 13, 1, 1);
        if (oc_check(fwd(n, in, 1, out, 1) == GCAM_OK, "%s sweep", c[k].op)) {
            float *y = out[0].data;
            oc_check(y[0] == want[0] && y[1] == want[1], "%s at -inf/inf: %g %g", c[k].op, y[0], y[1]);
            y[0] = y[1] = want[0] = want[1] = 0.0f; /* checked: inf - inf would poison oc_close */
            char label[64];
            snprintf(label, sizeof label, "%s accuracy sweep (isa cap %d)", c[k].op, cap);
            oc_close(label, y, want, N, 1e-44, c[k].rtol);
            /* the paths bit-identical (exp_fast's operations in one order everywhere) */
            const size_t bytes = (size_t)N * sizeof(float);
            if (!first[k] && (first[k] = malloc(bytes))) memcpy(first[k], y, bytes);
            else if (first[k])
                oc_check(!memcmp(first[k], y, bytes), "%s bit-identical on every path (isa cap %d)",
                         c[k].op, cap);
            float nan_in = NAN;
            gc_tensor tn[1] = {ft(1, (int64_t[]){1}, &nan_in)}, on[1];
            if (fwd(n, tn, 1, on, 1) == GCAM_OK) oc_check(isnan(((float *)on[0].data)[0]), "%s(NaN) is NaN", c[k].op);
            free_all(on, 1);
            free_all(tn, 1);
        }
        free(want);
        free_all(out, 1);
        oc_node_free(n);
        free_all(in, 1);
    }
}

/* The per-instruction-set paths a test can force on this CPU: cap 0 = the best, 1 = AVX2 at most,
 * 2 = portable only (isa.h); returns 0 when cap asks for more than the CPU has. */
static int set_isa_cap(int cap) {
    gc_tuning t;
    gc_tuning_defaults(&t);
    t.isa = cap >= 2 ? 1 : cap >= 1 ? 2 : 0; /* GCAM_ISA: generic, avx2 */
    gc_tuning_set_default(&t);
    return cap == 0 || (cap == 1 && gc_cpu_isa() >= GC_KISA_AVX2) || cap == 2;
}

/* Exp, Sigmoid and Tanh on every instruction-set path the CPU has (built per path in act.c). */
static void test_transcendental_accuracy(void) {
    float *first[3] = {NULL, NULL, NULL};
    for (int cap = 0; cap < 3; cap++)
        if (set_isa_cap(cap)) test_transcendental_accuracy_on(cap, first);
    gc_tuning_set_default(NULL);
    for (int k = 0; k < 3; k++) free(first[k]);
}

/* Sigmoid with its Mul fused (SiLU: k.fuse.mul, and k.fuse.silu when only the product is kept) on
 * every instruction-set path: the product bit-identical to Sigmoid then Mul, the fused VJP
 * (assigned into a fresh gradient, or added) against double, and the paths bit-identical. */
static void test_silu_paths(void) {
    enum { SN = 1001 }; /* vector bodies and a tail on every path */
    const int64_t d[] = {SN};
    gc_tensor x = oc_rand(1, d, -12.0f, 12.0f), sg = oc_tensor(GC_F32, 1, d), m = oc_tensor(GC_F32, 1, d);
    gc_tensor gm = oc_rand(1, d, -1.0f, 1.0f), gx = oc_tensor(GC_F32, 1, d);
    float *fx = x.data, *fs = sg.data, *fm = m.data, *fgm = gm.data, *fgx = gx.data;
    static float ref_m[SN], first_gx[2][SN], want[SN];
    for (int i = 0; i < SN; i++) {
        const double xv = fx[i], sv = 1.0 / (1.0 + exp(-xv));
        want[i] = (float)(fgm[i] * (sv + xv * sv * (1.0 - sv)));
    }
    gc_node *n = oc_node("Sigmoid", 13, 1, 1);
    int have_ref = 0;
    for (int cap = 2; cap >= 0; cap--) {
        if (!set_isa_cap(cap)) continue;
        gc_tuning t;
        gc_tuning_get(&t);
        gc_err err = {0};
        gc_kctx k;
        memset(&k, 0, sizeof k);
        k.node = n;
        k.n_in = k.n_out = 1;
        k.in[0] = &x;
        k.out[0] = &sg;
        k.nthreads = 2;
        k.tune = &t;
        k.err = &err;
        if (!have_ref) { /* Sigmoid alone (portable path), then the Mul as its own step would */
            if (!oc_check(gc_def_Sigmoid.forward(&k) == GCAM_OK, "Sigmoid forward")) break;
            for (int i = 0; i < SN; i++) ref_m[i] = fx[i] * fs[i];
            have_ref = 1;
        }
        k.fuse.mul = &m;
        for (int silu = 0; silu < 2; silu++) {
            k.fuse.silu = silu;
            memset(fm, 0, sizeof ref_m);
            if (oc_check(gc_def_Sigmoid.forward(&k) == GCAM_OK, "SiLU forward (isa cap %d)", cap))
                oc_check(!memcmp(fm, ref_m, sizeof ref_m), "SiLU product (silu %d) bit-identical to Sigmoid then Mul "
                         "(isa cap %d)", silu, cap);
        }
        k.fuse.silu = 1;
        k.gout[0] = &gm;
        k.gin[0] = &gx;
        for (int fresh = 1; fresh >= 0; fresh--) {
            k.gin_fresh = (uint64_t)fresh;
            for (int i = 0; i < SN; i++) fgx[i] = fresh ? NAN : 0.0f; /* fresh: garbage, assigned over */
            char label[64];
            snprintf(label, sizeof label, "SiLU backward (fresh %d, isa cap %d)", fresh, cap);
            if (!oc_check(gc_def_Sigmoid.backward(&k) == GCAM_OK, "%s", label)) continue;
            oc_close(label, fgx, want, SN, 1e-6, 1e-5);
            if (cap == 2) memcpy(first_gx[fresh], fgx, sizeof want);
            else oc_check(!memcmp(first_gx[fresh], fgx, sizeof want), "%s: bit-identical to the portable path", label);
        }
    }
    gc_tuning_set_default(NULL);
    oc_node_free(n);
    oc_tensor_free(&x);
    oc_tensor_free(&sg);
    oc_tensor_free(&m);
    oc_tensor_free(&gm);
    oc_tensor_free(&gx);
}

/* |got - want| in units of the float spacing at want (want rounded to float). */
static double ulp_err(float got, double want) {
    float wf = (float)want;
    double sp = (double)nextafterf(fabsf(wf), INFINITY) - (double)fabsf(wf);
    return fabs((double)got - want) / sp;
}

/* Erf's polynomial (act.c) against erf in double over a sweep of every float from 0 to 4.5 (every
 * 61st bit pattern, both signs: denormals, the branch at 0.921875, the clamp at 4), on every
 * instruction-set path the CPU has: within 1.5 ulp, and the paths bit-identical. Then +-0, +-inf,
 * NaN. (A stride-1 sweep, run once by hand, gave the same maximum.) */
static void test_erf_accuracy(void) {
    const float top = 4.5f;
    uint32_t ub;
    memcpy(&ub, &top, 4);
    const int64_t N = 2 * (int64_t)((ub + 60) / 61) + 6;
    gc_tensor in[1] = {oc_tensor(GC_F32, 1, &N)};
    float *x = in[0].data, *first = malloc((size_t)N * sizeof(float));
    int64_t m = 0;
    for (uint32_t u = 0; u < ub; u += 61) {
        float v;
        memcpy(&v, &u, 4);
        x[m++] = v;
        x[m++] = -v;
    }
    const float sp[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 0.921875f};
    for (int i = 0; i < 6; i++) x[m++] = sp[i];
    for (int cap = 0; cap < 3 && first; cap++) {
        if (!set_isa_cap(cap)) continue;
        gc_node *n = oc_node("Erf", 13, 1, 1);
        gc_tensor out[1];
        if (oc_check(fwd(n, in, 1, out, 1) == GCAM_OK, "Erf sweep (isa cap %d)", cap)) {
            const float *y = out[0].data;
            double worst = 0;
            int64_t at = 0;
            for (int64_t i = 0; i < N - 6; i++) {
                double e = ulp_err(y[i], erf((double)x[i]));
                if (e > worst) worst = e, at = i;
            }
            oc_check(worst <= 1.5, "Erf within 1.5 ulp of erf in double (isa cap %d): %.2f ulp at %.9g", cap, worst,
                     (double)x[at]);
            const float *z = y + N - 6;
            oc_check(z[0] == 0.0f && !signbit(z[0]) && z[1] == 0.0f && signbit(z[1]) && z[2] == 1.0f && z[3] == -1.0f &&
                         isnan(z[4]) && fabs(z[5] - erf(0.921875)) < 1e-7,
                     "Erf at +-0, +-inf, NaN, the branch point (isa cap %d): %g %g %g %g %g %g", cap, z[0], z[1], z[2],
                     z[3], z[4], z[5]);
            if (cap == 0) memcpy(first, y, (size_t)N * sizeof(float));
            else oc_check(memcmp(first, y, (size_t)(N - 6) * sizeof(float)) == 0,
                          "Erf bit-identical on every instruction-set path (isa cap %d)", cap);
        }
        free_all(out, 1);
        oc_node_free(n);
        gc_tensor g[1] = {oc_rand(1, (int64_t[]){300}, -3.0f, 3.0f)}; /* the backward's path too */
        n = oc_node("Erf", 13, 1, 1);
        char label[64];
        snprintf(label, sizeof label, "Erf gradcheck (isa cap %d)", cap);
        oc_gradcheck(label, n, g, 1, 0, 1, 1, 1e-3, 5e-3, 300);
        oc_node_free(n);
        free_all(g, 1);
    }
    gc_tuning_set_default(NULL);
    free(first);
    free_all(in, 1);
}

static void test_dropout(void) {
    int64_t d[] = {2, 3};
    const float x[] = {1, -2, 3, -4, 5, -6};
    const uint8_t ones[6] = {1, 1, 1, 1, 1, 1};
    /* opset 7: mask has the data type (float ones) */
    {
        gc_tensor in[1] = {ft(2, d, x)}, out[2];
        gc_node *n = oc_node("Dropout", 7, 1, 2);
        oc_attr_f(n, "ratio", 0.5f);
        if (oc_check(fwd(n, in, 1, out, 2) == GCAM_OK, "Dropout-7")) {
            check_f32("Dropout-7 output", &out[0], x, 6);
            check_f32("Dropout-7 mask", &out[1], (float[]){1, 1, 1, 1, 1, 1}, 6);
        }
        free_all(out, 2);
        oc_node_free(n);
        free_all(in, 1);
    }
    /* opset 10: BOOL mask */
    {
        gc_tensor in[1] = {ft(2, d, x)}, out[2];
        gc_node *n = oc_node("Dropout", 10, 1, 2);
        if (oc_check(fwd(n, in, 1, out, 2) == GCAM_OK, "Dropout-10")) {
            check_f32("Dropout-10 output", &out[0], x, 6);
            check_b8("Dropout-10 mask", &out[1], ones, 6);
        }
        free_all(out, 2);
        oc_node_free(n);
        free_all(in, 1);
    }
    /* opset 13: ratio and training_mode inputs */
    for (int tm = 0; tm < 4; tm++) { /* absent, const false, const true, non-constant */
        uint8_t v = tm == 2;
        gc_tensor in[3] = {ft(2, d, x), fscalar(0.2f), tm ? bt(0, NULL, &v) : none()}, out[2];
        gc_node *n = oc_node("Dropout", 13, 3, 2);
        gc_err err = {0};
        uint32_t cm = tm == 3 ? 3 : 7;
        gcam_status st = oc_forward(n, in, 3, cm, out, 2, &err);
        if (tm < 2) {
            if (oc_check(st == GCAM_OK, "Dropout-13 training_mode case %d", tm)) {
                check_f32("Dropout-13 output", &out[0], x, 6);
                check_b8("Dropout-13 mask", &out[1], ones, 6);
            }
            free_all(out, 2);
            oc_gradcheck("Dropout-13 gradcheck", n, in, 3, cm, 2, 1, 1e-3, 5e-3, 6);
        } else {
            oc_check(st == GCAM_E_UNSUPPORTED, "Dropout-13 training_mode case %d refused", tm);
        }
        oc_node_free(n);
        free_all(in, 3);
    }
    /* training_mode true with ratio 0 is the identity */
    {
        uint8_t v = 1;
        gc_tensor in[3] = {ft(2, d, x), fscalar(0.0f), bt(0, NULL, &v)}, out[2];
        gc_node *n = oc_node("Dropout", 13, 3, 2);
        if (oc_check(fwd(n, in, 3, out, 2) == GCAM_OK, "Dropout-13 training with ratio 0")) {
            check_f32("Dropout-13 ratio 0 output", &out[0], x, 6);
            check_b8("Dropout-13 ratio 0 mask", &out[1], ones, 6);
        }
        free_all(out, 2);
        oc_node_free(n);
        free_all(in, 3);
    }
}

/* Backward only declares what it reads: the harness poisons the rest, so a passing gradcheck
 * covers that. Here: the declared masks themselves. */
static void test_masks(void) {
    static const struct {
        const char *op;
        uint32_t bw_in, bw_out;
    } m[] = {{"Relu", 0, 1}, {"Sigmoid", 0, 1}, {"Tanh", 0, 1}, {"Clip", 6, 1}, {"Add", 0, 0},
             {"Sub", 0, 0}, {"Sum", 0, 0}, {"Exp", 0, 1}, {"Neg", 0, 0}, {"Identity", 0, 0}};
    for (size_t i = 0; i < GC_ARRAY_LEN(m); i++) {
        const gc_opdef *d = gc_op_get(gc_op_find(m[i].op));
        oc_check(d && d->bw_in == m[i].bw_in && d->bw_out == m[i].bw_out, "%s bw masks", m[i].op);
    }
    oc_check(gc_op_get(gc_op_find("Floor"))->backward == NULL, "Floor has no backward");
    oc_check(gc_op_get(gc_op_find("Equal"))->backward == NULL, "Equal has no backward");
}

/* ---- Add's gradient sharing (src/graph/fuse.c, fuse_add_grads) ------------------------------ */

/* Small ONNX models written here (protobuf wire format by hand: varints and length-delimited
 * fields), planned and run through the API, so that the planner's decisions are exercised. */
typedef struct pbuf {
    uint8_t *b;
    size_t n, cap;
} pbuf;
static void pb_put(pbuf *p, const void *d, size_t n) {
    if (p->n + n > p->cap) {
        p->cap = (p->n + n) * 2 + 64;
        p->b = realloc(p->b, p->cap);
    }
    memcpy(p->b + p->n, d, n);
    p->n += n;
}
static void pb_varint(pbuf *p, uint64_t v) {
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_put(p, t, n);
}
static void pb_int(pbuf *p, int field, uint64_t v) {
    pb_varint(p, (uint64_t)field << 3);
    pb_varint(p, v);
}
static void pb_bytes(pbuf *p, int field, const void *d, size_t n) {
    pb_varint(p, (uint64_t)field << 3 | 2);
    pb_varint(p, n);
    pb_put(p, d, n);
}
static void pb_str(pbuf *p, int field, const char *s) { pb_bytes(p, field, s, strlen(s)); }
static void pb_msg(pbuf *p, int field, pbuf *m) { /* appends m and frees it */
    pb_bytes(p, field, m->b, m->n);
    free(m->b);
    *m = (pbuf){0};
}

/* NodeProto: op, inputs and outputs ("a,b"), an optional int attribute list "pads" of 4 */
static void gs_node(pbuf *g, const char *op, const char *ins, const char *outs, int pads) {
    pbuf n = {0};
    char buf[256];
    for (int io = 0; io < 2; io++) {
        snprintf(buf, sizeof buf, "%s", io ? outs : ins);
        for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) pb_str(&n, io ? 2 : 1, t);
    }
    snprintf(buf, sizeof buf, "%s_%s", op, outs);
    pb_str(&n, 3, buf);
    pb_str(&n, 4, op);
    if (pads) {
        pbuf a = {0};
        pb_str(&a, 1, "pads");
        for (int i = 0; i < 4; i++) pb_int(&a, 8, (uint64_t)pads);
        pb_int(&a, 20, 7); /* INTS */
        pb_msg(&n, 5, &a);
    }
    pb_msg(g, 1, &n);
}
/* TensorProto initialiser: float32 random in [-1, 1) */
static void gs_init(pbuf *g, const char *name, int nd, const int64_t *d) {
    pbuf t = {0};
    int64_t n = 1;
    for (int i = 0; i < nd; i++) pb_int(&t, 1, (uint64_t)d[i]), n *= d[i];
    pb_int(&t, 2, 1);
    pb_str(&t, 8, name);
    float *v = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) v[i] = (float)(oc_urand() * 2 - 1);
    pb_bytes(&t, 9, v, (size_t)n * sizeof(float));
    free(v);
    pb_msg(g, 5, &t);
}
/* ValueInfoProto of a float32 tensor (field 11: graph input, 12: output) */
static void gs_io(pbuf *g, int field, const char *name, int nd, const int64_t *d) {
    pbuf shape = {0}, tt = {0}, ty = {0}, vi = {0};
    for (int i = 0; i < nd; i++) {
        pbuf dim = {0};
        pb_int(&dim, 1, (uint64_t)d[i]);
        pb_msg(&shape, 1, &dim);
    }
    pb_int(&tt, 1, 1);
    pb_msg(&tt, 2, &shape);
    pb_msg(&ty, 1, &tt);
    pb_str(&vi, 1, name);
    pb_msg(&vi, 2, &ty);
    pb_msg(g, field, &vi);
}

/* The models: x (1, 4, 6, 6) in, y (1, 4, 1, 1) out (a GlobalAveragePool), 4-channel Convs. */
enum { GS_RESNET, GS_SELF, GS_BROADCAST, GS_INPUT, GS_CHAIN, GS_NMODELS };
static const char *const gs_names[GS_NMODELS] = {"residual chain", "Add(a, a)", "broadcast Add", "input in Add",
                                                 "Add of an Add"};
static gcam_model *gs_model(int which) {
    static const int64_t xd[4] = {1, 4, 6, 6}, yd[4] = {1, 4, 1, 1}, w3[4] = {4, 4, 3, 3}, w1[4] = {4, 4, 1, 1},
                         bd[1] = {4};
    pbuf g = {0}, m = {0}, op = {0};
    gs_init(&g, "W1", 4, w3);
    gs_init(&g, "B1", 1, bd);
    gs_init(&g, "W2", 4, w1);
    gs_init(&g, "B2", 1, bd);
    gs_init(&g, "W3", 4, w3);
    switch (which) {
    case GS_RESNET: /* a bottleneck-like block (its input also read by its first Conv), then a join whose
                       operand's other reader is the joined Conv itself (only one operand may share) */
        gs_node(&g, "Conv", "x,W1,B1", "c0", 1);
        gs_node(&g, "Relu", "c0", "r0", 0);
        gs_node(&g, "Conv", "r0,W2,B2", "c1", 0);
        gs_node(&g, "Relu", "c1", "r1", 0);
        gs_node(&g, "Conv", "r1,W3", "c2", 1);
        gs_node(&g, "Add", "c2,r0", "a1", 0);
        gs_node(&g, "Relu", "a1", "r2", 0);
        gs_node(&g, "Conv", "r2,W2,B2", "c3", 0);
        gs_node(&g, "Add", "r2,c3", "a2", 0);
        gs_node(&g, "Relu", "a2", "r3", 0);
        gs_node(&g, "GlobalAveragePool", "r3", "y", 0);
        break;
    case GS_SELF:
        gs_node(&g, "Conv", "x,W1,B1", "c1", 1);
        gs_node(&g, "Add", "c1,c1", "a1", 0);
        gs_node(&g, "Relu", "a1", "r1", 0);
        gs_node(&g, "GlobalAveragePool", "r1", "y", 0);
        break;
    case GS_BROADCAST: /* (1,4,6,6) + (1,4,1,1): only the full-shape operand may share */
        gs_node(&g, "Conv", "x,W1,B1", "c1", 1);
        gs_node(&g, "GlobalAveragePool", "c1", "p1", 0);
        gs_node(&g, "Add", "c1,p1", "a1", 0);
        gs_node(&g, "Relu", "a1", "r1", 0);
        gs_node(&g, "GlobalAveragePool", "r1", "y", 0);
        break;
    case GS_CHAIN: /* (a + q) + d: both of the outer Add's operands share; d is still in use (its other
                      reader q comes later in the backward) when the inner Add runs, so its operands must not */
        gs_node(&g, "Conv", "x,W1,B1", "d", 1);
        gs_node(&g, "Conv", "d,W2,B2", "q", 0);
        gs_node(&g, "Conv", "x,W3", "a", 1);
        gs_node(&g, "Add", "a,q", "c", 0);
        gs_node(&g, "Add", "c,d", "e", 0);
        gs_node(&g, "GlobalAveragePool", "e", "y", 0);
        break;
    default: /* the graph input itself joins, its gradient wanted */
        gs_node(&g, "Conv", "x,W1,B1", "c1", 1);
        gs_node(&g, "Add", "x,c1", "a1", 0);
        gs_node(&g, "Relu", "a1", "r1", 0);
        gs_node(&g, "Conv", "r1,W2,B2", "c2", 0);
        gs_node(&g, "Add", "c2,r1", "a2", 0);
        gs_node(&g, "GlobalAveragePool", "a2", "y", 0);
        break;
    }
    pb_str(&g, 2, "g");
    gs_io(&g, 11, "x", 4, xd);
    gs_io(&g, 12, "y", 4, yd);
    pb_int(&m, 1, 7);
    pb_str(&op, 1, "");
    pb_int(&op, 2, 13);
    pb_msg(&m, 8, &op);
    pb_msg(&m, 7, &g);
    gcam_model *model = NULL;
    if (gcam_model_load_memory(&model, m.b, m.n, NULL, NULL) != GCAM_OK) {
        oc_check(0, "gradient sharing: model %s does not load: %s", gs_names[which], gcam_model_error(model));
        gcam_model_free(model);
        model = NULL;
    }
    free(m.b);
    return model;
}

/* Gradients of x and of the listed activations, two backward passes after one forward, under
 * the knobs given; returns the context (caller frees) with the second pass's gradients. */
static gcam_ctx *gs_run(gcam_model *m, const gc_tuning *tune, int nth, gcam_rule rule, const char *const *want,
                        int nw, const float *x, const float *seed) {
    static const int64_t xd[4] = {1, 4, 6, 6};
    gcam_feed f = {.name = "x", .dtype = GCAM_FLOAT32, .ndim = 4, .dims = xd, .data = x};
    gcam_ctx_options o = {.n_threads = nth, .seed = "y", .grad_of = want, .n_grad_of = nw};
    gcam_ctx *c = NULL;
    gc_tuning_set_default(tune);
    gcam_status st = gcam_ctx_create(&c, m, &f, 1, &o);
    gc_tuning_set_default(NULL);
    for (int pass = 0; pass < 2 && st == GCAM_OK; pass++) {
        st = gcam_ctx_run(c, &f, 1);
        if (!st) st = gcam_ctx_backward(c, seed, rule, want, nw);
    }
    if (!oc_check(st == GCAM_OK, "gradient sharing: run: %s", gcam_ctx_error(c))) {
        gcam_ctx_free(c);
        return NULL;
    }
    return c;
}

/* Whether the gradients of values a and b are one buffer in context c. */
static int gs_shared(const gcam_ctx *c, const char *a, const char *b) {
    int va = gc_model_find_value(c->m, a), vb = gc_model_find_value(c->m, b);
    return va >= 0 && vb >= 0 && c->grads && c->grads[va].data && c->grads[va].data == c->grads[vb].data;
}

static void test_add_grad_sharing(void) {
    /* only the input's gradient: a wanted tensor is kept, and kept tensors are not fused */
    static const char *const want[GS_NMODELS][2] = {{"x", NULL}, {"x", NULL}, {"x", NULL}, {"x", NULL}, {"x", NULL}};
    static const int nwant[GS_NMODELS] = {1, 1, 1, 1, 1};
    float x[144], seed[4];
    for (int i = 0; i < 144; i++) x[i] = (float)(oc_urand() * 2 - 1);
    for (int i = 0; i < 4; i++) seed[i] = (float)(oc_urand() * 2 - 1);
    gc_tuning on, off;
    gc_tuning_defaults(&on);
    gc_tuning_defaults(&off);
    off.no_fusion = 1;
    for (int which = 0; which < GS_NMODELS; which++) {
        gcam_model *m = gs_model(which);
        if (!m) continue;
        for (int r = 0; r < 3; r++)
            for (int nth = 1; nth <= 2; nth++) {
                gcam_ctx *a = gs_run(m, &on, nth, (gcam_rule)r, want[which], nwant[which], x, seed);
                gcam_ctx *b = gs_run(m, &off, nth, (gcam_rule)r, want[which], nwant[which], x, seed);
                for (int w = 0; a && b && w < nwant[which]; w++) {
                    gcam_tensor_view ga, gb;
                    if (!oc_check(!gcam_ctx_grad(a, want[which][w], &ga) && !gcam_ctx_grad(b, want[which][w], &gb),
                                  "gradient sharing: %s: no gradient of %s", gs_names[which], want[which][w]))
                        continue;
                    /* the same VJPs; the forward may round the fused Add differently (a kink flip is
                     * out of reach at these sizes: the backward would then differ by O(1)) */
                    char label[128];
                    snprintf(label, sizeof label, "gradient sharing: %s, rule %d, %d threads, grad of %s",
                             gs_names[which], r, nth, want[which][w]);
                    oc_close(label, ga.data, gb.data, (int64_t)ga.numel, 1e-6, 1e-5);
                }
                if (a && r == 0 && nth == 1) { /* what the planner shared */
                    switch (which) {
                    case GS_RESNET:
                        oc_check(gs_shared(a, "c2", "r3") && gs_shared(a, "r0", "r3") && gs_shared(a, "r2", "r3"),
                                 "residual: the block's join shares both operands' gradients");
                        oc_check(gs_shared(a, "c3", "r3") != gs_shared(a, "r2", "r3"),
                                 "residual: the second join shares one operand's");
                        oc_check(!a->grads[gc_model_find_value(a->m, "r1")].data,
                                 "residual: Relu -> Conv: the Conv's backward writes the Relu's input gradient");
                        break;
                    case GS_SELF: oc_check(!gs_shared(a, "c1", "r1"), "Add(a, a) does not share"); break;
                    case GS_CHAIN:
                        oc_check(gs_shared(a, "c", "e") && gs_shared(a, "d", "e") && !gs_shared(a, "a", "e") &&
                                     !gs_shared(a, "q", "e") && !gs_shared(a, "a", "q"),
                                 "Add of an Add: the outer shares, the inner not while d is in use");
                        break;
                    case GS_BROADCAST:
                        oc_check(gs_shared(a, "c1", "a1") && !gs_shared(a, "p1", "a1"),
                                 "broadcast Add: the full operand only shares");
                        break;
                    default:
                        oc_check(gs_shared(a, "c2", "a2") && !gs_shared(a, "r1", "a2"), "input Add: inner join");
                        oc_check(gs_shared(a, "x", "r1") && !gs_shared(a, "c1", "r1"),
                                 "input Add: the input's gradient shares");
                        break;
                    }
                }
                gcam_ctx_free(a);
                gcam_ctx_free(b);
            }
        gcam_model_free(m);
    }
}

int main(void) {
    oc_seed(12345);
    test_binary_forward_small();
    test_binary_forward_random();
    test_binary_gradcheck();
    test_variadic_gradcheck();
    test_where_gradcheck();
    test_reduction_determinism();
    test_unary_forward();
    test_unary_gradcheck();
    test_transcendental_accuracy();
    test_silu_paths();
    test_erf_accuracy();
    test_clip_inputs();
    test_rules();
    test_prelu();
    test_dropout();
    test_masks();
    test_add_grad_sharing();
    printf("%d passed, %d failed\n", oc_checks - oc_failures, oc_failures);
    return oc_failures != 0;
}

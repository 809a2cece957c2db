/* Tests of scatter.c (ScatterND): the spec's examples by hand, every reduction (none, add, mul, max,
 * min) with duplicate index tuples, negative indices, tuple lengths 0..rank, int64 and bool data,
 * against a naive reference written from the spec's loop; gradients to data and updates against
 * central finite differences (max/min on values spaced far wider than the step, so no comparison
 * flips); and the errors (indices out of range, shapes, reductions the opset does not have). */
#include "opcheck.h"

#include <math.h>

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})

static gc_tensor tf(int nd, const int64_t *d, const float *v) {
    gc_tensor t = oc_tensor(GC_F32, nd, d);
    memcpy(t.data, v, (size_t)gc_numel(&t) * sizeof(float));
    return t;
}
static gc_tensor ti(int nd, const int64_t *d, const int64_t *v) {
    gc_tensor t = oc_tensor(GC_I64, nd, d);
    memcpy(t.data, v, (size_t)gc_numel(&t) * sizeof(int64_t));
    return t;
}

static gc_node *scatter_node(int opset, const char *red) {
    gc_node *n = oc_node("ScatterND", opset, 3, 1);
    if (red) oc_attr_s(n, "reduction", red);
    return n;
}

/* The reference: the spec's loop, element by element, in double (float data). */
static void ref_scatter(const gc_tensor *x, const gc_tensor *ind, const gc_tensor *u, const char *red, double *y) {
    const int r = x->shape.ndim, q = ind->shape.ndim, kk = (int)ind->shape.d[q - 1];
    const int64_t nd = gc_numel(x), nj = gc_numel(ind) / (kk ? kk : 1);
    int64_t S = 1, nt = 1;
    for (int d = kk; d < r; d++) S *= x->shape.d[d];
    for (int d = 0; d < q - 1; d++) nt *= ind->shape.d[d];
    (void)nj;
    const float *xv = x->data, *uv = u->data;
    const int64_t *iv = ind->data;
    for (int64_t e = 0; e < nd; e++) y[e] = xv[e];
    for (int64_t j = 0; j < nt; j++) {
        int64_t off = 0;
        for (int d = 0; d < kk; d++) {
            int64_t i = iv[j * kk + d], dim = x->shape.d[d];
            off = off * dim + (i < 0 ? i + dim : i);
        }
        for (int d = kk; d < r; d++) off *= x->shape.d[d];
        for (int64_t e = 0; e < S; e++) {
            double v = uv[j * S + e], *t = &y[off + e];
            if (!red || !strcmp(red, "none")) *t = v;
            else if (!strcmp(red, "add")) *t += v;
            else if (!strcmp(red, "mul")) *t *= v;
            else if (!strcmp(red, "max")) *t = fmax(*t, v);
            else *t = fmin(*t, v);
        }
    }
}

static int run_check(const char *label, gc_node *n, gc_tensor *in, const double *want) {
    gc_tensor out;
    gc_err err = {0};
    gcam_status st = oc_forward(n, in, 3, 0x2, &out, 1, &err);
    if (!oc_check(st == GCAM_OK, "%s: forward failed: %s", label, err.msg)) return 0;
    int64_t m = gc_numel(&out);
    float *w = malloc((size_t)m * sizeof(float) + 1);
    for (int64_t e = 0; e < m; e++) w[e] = (float)want[e];
    int ok = oc_close(label, out.data, w, m, 1e-6, 1e-5);
    free(w);
    oc_tensor_free(&out);
    return ok;
}

/* The spec's two examples, and duplicates under each reduction, by hand. */
static void test_examples(void) {
    gc_tensor in[3];
    float x8[] = {1, 2, 3, 4, 5, 6, 7, 8};
    in[0] = tf(1, DIMS(8), x8);
    in[1] = ti(2, DIMS(4, 1), (const int64_t[]){4, 3, 1, 7});
    in[2] = tf(1, DIMS(4), (const float[]){9, 10, 11, 12});
    gc_node *n = scatter_node(11, NULL);
    run_check("spec example 1", n, in, (const double[]){1, 11, 3, 10, 9, 6, 7, 12});
    oc_node_free(n);
    for (int i = 0; i < 3; i++) oc_tensor_free(&in[i]);

    /* example 2: data (4, 4, 4), indices [[0], [2]], updates (2, 4, 4) */
    gc_tensor x = oc_tensor(GC_F32, 3, DIMS(4, 4, 4)), u = oc_tensor(GC_F32, 3, DIMS(2, 4, 4));
    static const float base[4][4] = {{1, 2, 3, 4}, {5, 6, 7, 8}, {8, 7, 6, 5}, {4, 3, 2, 1}};
    static const float ubase[2][4] = {{5, 5, 5, 5}, {1, 1, 1, 1}};
    float *xv = x.data, *uv = u.data;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 4; c++) xv[(a * 4 + b) * 4 + c] = base[a < 2 ? b : (b + 2) % 4][c];
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 4; c++) uv[(a * 4 + b) * 4 + c] = ubase[a][c] + (float)b;
    double want[64];
    for (int e = 0; e < 64; e++) want[e] = xv[e];
    for (int e = 0; e < 16; e++) want[e] = uv[e], want[32 + e] = uv[16 + e];
    in[0] = x, in[1] = ti(2, DIMS(2, 1), (const int64_t[]){0, 2}), in[2] = u;
    n = scatter_node(18, "none");
    run_check("spec example 2", n, in, want);
    oc_node_free(n);
    for (int i = 0; i < 3; i++) oc_tensor_free(&in[i]);

    /* duplicates [[0], [0], [-1]] under each reduction (the last one negative: element 7) */
    static const char *reds[] = {"none", "add", "mul", "max", "min"};
    static const double first[] = {6, 1 + 5 + 6, 1 * 5 * 6, 6, 1}, last[] = {2, 8 + 2, 8 * 2, 8, 2};
    for (int r = 0; r < 5; r++) {
        in[0] = tf(1, DIMS(8), x8);
        in[1] = ti(2, DIMS(3, 1), (const int64_t[]){0, 0, -1});
        in[2] = tf(1, DIMS(3), (const float[]){5, 6, 2});
        n = scatter_node(18, reds[r]);
        double w[8] = {first[r], 2, 3, 4, 5, 6, 7, last[r]};
        char label[64];
        snprintf(label, sizeof label, "duplicates, reduction %s", reds[r]);
        run_check(label, n, in, w);
        oc_node_free(n);
        for (int i = 0; i < 3; i++) oc_tensor_free(&in[i]);
    }
}

/* int64 and bool data (Swin's mask is built while planning, on whatever dtype the exporter chose). */
static void test_dtypes(void) {
    gc_tensor in[3], out;
    gc_err err = {0};
    in[0] = ti(2, DIMS(2, 3), (const int64_t[]){1, 2, 3, 4, 5, 6});
    in[1] = ti(2, DIMS(1, 2), (const int64_t[]){1, 2});
    in[2] = ti(1, DIMS(1), (const int64_t[]){-9});
    gc_node *n = scatter_node(16, "add");
    if (oc_check(oc_forward(n, in, 3, 0x2, &out, 1, &err) == GCAM_OK, "int64 add: %s", err.msg)) {
        const int64_t *y = out.data;
        oc_check(y[5] == -3 && y[4] == 5 && out.dtype == GC_I64, "int64 add: got %lld", (long long)y[5]);
        oc_tensor_free(&out);
    }
    oc_node_free(n);
    oc_tensor_free(&in[0]);
    oc_tensor_free(&in[2]);
    in[0] = oc_tensor(GC_BOOL, 2, DIMS(2, 3));
    in[2] = oc_tensor(GC_BOOL, 1, DIMS(1));
    ((uint8_t *)in[2].data)[0] = 1;
    n = scatter_node(13, NULL);
    if (oc_check(oc_forward(n, in, 3, 0x2, &out, 1, &err) == GCAM_OK, "bool none: %s", err.msg)) {
        const uint8_t *y = out.data;
        int ones = 0;
        for (int e = 0; e < 6; e++) ones += y[e];
        oc_check(y[5] == 1 && ones == 1, "bool none: wrong element set");
        oc_tensor_free(&out);
    }
    oc_node_free(n);
    n = scatter_node(16, "mul"); /* reductions on bool are refused */
    oc_check(oc_forward(n, in, 3, 0x2, &out, 1, &err) != GCAM_OK, "bool mul: expected an error");
    oc_node_free(n);
    for (int i = 0; i < 3; i++) oc_tensor_free(&in[i]);
}

/* Random cases: data (3, 4, 5), tuples of length 0..3, index batch (2, 3), against the reference;
 * then the gradients. Values are distinct multiples of 1/16 (max/min never within 2h of a tie). */
static void test_random(void) {
    static const char *reds[] = {"none", "add", "mul", "max", "min"};
    for (int kk = 0; kk <= 3; kk++)
        for (int r = 0; r < 5; r++) {
            const int64_t xd[3] = {3, 4, 5};
            int64_t ud[5] = {2, 3}, S = 1, ns = 1;
            for (int d = kk; d < 3; d++) ud[2 + d - kk] = xd[d], S *= xd[d];
            for (int d = 0; d < kk; d++) ns *= xd[d];
            gc_tensor in[3];
            in[0] = oc_tensor(GC_F32, 3, xd);
            in[1] = oc_tensor(GC_I64, 3, DIMS(2, 3, kk));
            in[2] = oc_tensor(GC_F32, 2 + 3 - kk, ud);
            float *xv = in[0].data, *uv = in[2].data;
            int64_t *iv = in[1].data, nx = 60, nu = 6 * S;
            /* distinct values: a shuffled ramp of multiples of 1/16, signs mixed */
            float vals[60 + 6 * 60];
            const int64_t nv = nx + nu;
            for (int64_t e = 0; e < nv; e++) vals[e] = (float)(e - nv / 2) / 16.0f;
            for (int64_t e = nv - 1; e > 0; e--) {
                int64_t w = (int64_t)(oc_urand() * (double)(e + 1));
                float t = vals[e];
                vals[e] = vals[w];
                vals[w] = t;
            }
            memcpy(xv, vals, (size_t)nx * sizeof(float));
            memcpy(uv, vals + nx, (size_t)nu * sizeof(float));
            if (r == 2)
                for (int64_t e = 0; e < nx + nu; e++) { /* mul: factors in [0.5, 1.5) */
                    float *pe = e < nx ? &xv[e] : &uv[e - nx];
                    *pe = 1.0f + *pe / (float)(nx + nu) * 16.0f;
                }
            for (int64_t j = 0; j < 6; j++) { /* tuples; duplicates happen (slots may be few) */
                int64_t slot = (int64_t)(oc_urand() * (double)ns);
                for (int d = kk - 1; d >= 0; d--) {
                    int64_t i = slot % xd[d];
                    slot /= xd[d];
                    iv[j * kk + d] = (j % 2) ? i - xd[d] : i; /* negative forms too */
                }
            }
            double want[60];
            ref_scatter(&in[0], &in[1], &in[2], reds[r], want);
            char label[96];
            snprintf(label, sizeof label, "random k=%d reduction %s", kk, reds[r]);
            gc_node *n = scatter_node(18, reds[r]);
            if (run_check(label, n, in, want))
                oc_gradcheck(label, n, in, 3, 0x2, 1, 0x5, 1e-3, 2e-3, 200);
            oc_node_free(n);
            for (int i = 0; i < 3; i++) oc_tensor_free(&in[i]);
        }
}

static void expect_fail(const char *label, gc_node *n, gc_tensor *in) {
    gc_tensor out;
    gc_err err = {0};
    memset(&out, 0, sizeof out);
    gcam_status st = oc_forward(n, in, 3, 0x2, &out, 1, &err);
    oc_check(st != GCAM_OK && err.msg[0], "%s: expected an error", label);
    if (!st) oc_tensor_free(&out);
}

static void test_errors(void) {
    gc_tensor in[3];
    in[0] = oc_rand(2, DIMS(3, 4), -1, 1);
    in[1] = ti(2, DIMS(2, 1), (const int64_t[]){1, 3});
    in[2] = oc_rand(2, DIMS(2, 4), -1, 1);
    gc_node *n = scatter_node(11, NULL);
    expect_fail("index out of range", n, in);
    ((int64_t *)in[1].data)[1] = -4;
    expect_fail("negative index out of range", n, in);
    ((int64_t *)in[1].data)[1] = -3;
    gc_tensor out;
    gc_err err = {0};
    if (oc_check(oc_forward(n, in, 3, 0x2, &out, 1, &err) == GCAM_OK, "index -3: %s", err.msg)) oc_tensor_free(&out);
    oc_tensor_free(&in[2]);
    in[2] = oc_rand(2, DIMS(2, 3), -1, 1);
    expect_fail("updates of the wrong shape", n, in);
    oc_tensor_free(&in[1]);
    in[1] = ti(2, DIMS(1, 3), (const int64_t[]){0, 0, 0});
    expect_fail("tuples longer than data's rank", n, in);
    oc_node_free(n);
    gc_err perr = {0};
    n = scatter_node(13, "add");
    oc_check(gc_op_get(gc_op_find("ScatterND"))->parse(n, &perr) != GCAM_OK && perr.msg[0],
             "reduction add at opset 13: expected an error");
    oc_node_free(n);
    memset(&perr, 0, sizeof perr);
    n = scatter_node(16, "max");
    oc_check(gc_op_get(gc_op_find("ScatterND"))->parse(n, &perr) != GCAM_OK, "reduction max at opset 16: expected an error");
    oc_node_free(n);
    memset(&perr, 0, sizeof perr);
    n = scatter_node(18, "sum");
    oc_check(gc_op_get(gc_op_find("ScatterND"))->parse(n, &perr) != GCAM_OK, "reduction 'sum': expected an error");
    oc_node_free(n);
    for (int i = 0; i < 3; i++) oc_tensor_free(&in[i]);
}

int main(void) {
    oc_seed(2024);
    test_examples();
    test_dtypes();
    test_random();
    test_errors();
    printf("%d passed, %d failed\n", oc_checks - oc_failures, oc_failures);
    return oc_failures != 0;
}

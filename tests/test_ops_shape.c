/* Tests for the shape family (shape.c) and the re-sampling family (resize.c): hand-computed
 * forward cases (float, int64 and bool paths, every opset form), error cases, gradient checks
 * of every differentiable op, and Resize/Upsample/Pad against independent naive references
 * written from the ONNX reference semantics (plus values from PyTorch and the ONNX test data). */
#include "opcheck.h"

#include <math.h>

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})
#define FV(...) ((const float[]){__VA_ARGS__})
#define IV(...) ((const int64_t[]){__VA_ARGS__})

/* ---- helpers ---------------------------------------------------------------------------- */

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
static gc_tensor ti1(int n, const int64_t *v) { return oc_ints(n, v); }
static gc_tensor tscalar_f(float v) { return tf(0, NULL, &v); }
static gc_tensor tscalar_i(int64_t v) { return ti(0, NULL, &v); }
static gc_tensor none(void) {
    gc_tensor t;
    memset(&t, 0, sizeof t);
    return t;
}
/* 0, 1, 2, ... as float or int64. */
static gc_tensor ramp(gc_dtype dt, int nd, const int64_t *d) {
    gc_tensor t = oc_tensor(dt, nd, d);
    for (int64_t i = 0; i < gc_numel(&t); i++) {
        if (dt == GC_F32) ((float *)t.data)[i] = (float)i;
        else if (dt == GC_I64) ((int64_t *)t.data)[i] = i;
        else ((uint8_t *)t.data)[i] = (uint8_t)(i % 3 == 0);
    }
    return t;
}
static void free_all(gc_tensor *t, int n) {
    for (int i = 0; i < n; i++) oc_tensor_free(&t[i]);
}
/* A TENSOR attribute (the harness has no helper for it); freed by node_free. */
static void attr_tensor(gc_node *n, const char *name, gc_tensor t) {
    gc_attr *a = &n->attrs[n->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = gc_strdup(name);
    a->type = GC_ATTR_TENSOR;
    a->t = t;
}
static void node_free(gc_node *n) {
    for (int i = 0; i < n->n_attrs; i++)
        if (n->attrs[i].type == GC_ATTR_TENSOR) oc_tensor_free(&n->attrs[i].t);
    oc_node_free(n);
}

static int shape_is(const gc_tensor *t, int nd, const int64_t *d) {
    gc_shape s = {.ndim = nd};
    for (int i = 0; i < nd; i++) s.d[i] = d[i];
    return gc_shape_eq(&t->shape, &s);
}

/* Runs forward (output j of n_out) and compares shape and values. */
static void expect_out(const char *label, gc_node *n, gc_tensor *in, int n_in, uint32_t cmask, int n_out, int j,
                       gc_dtype dt, int nd, const int64_t *d, const void *want) {
    gc_tensor outs[GC_MAX_IO];
    gc_err err = {0};
    gcam_status st = oc_forward(n, in, n_in, cmask, outs, n_out, &err);
    if (!oc_check(st == GCAM_OK, "%s: forward failed: %s", label, err.msg)) return;
    char b[128];
    if (oc_check(outs[j].dtype == dt && shape_is(&outs[j], nd, d), "%s: got dtype %d shape %s", label,
                 (int)outs[j].dtype, gc_shape_str(&outs[j].shape, b, sizeof b))) {
        int64_t m = gc_numel(&outs[j]);
        if (dt == GC_F32) {
            oc_close(label, outs[j].data, want, m, 1e-6, 1e-5);
        } else {
            size_t es = gc_dtype_size(dt);
            int same = m == 0 || memcmp(outs[j].data, want, (size_t)m * es) == 0;
            int64_t bad = -1;
            for (int64_t e = 0; !same && e < m && bad < 0; e++)
                if (memcmp((char *)outs[j].data + e * (int64_t)es, (const char *)want + e * (int64_t)es, es)) bad = e;
            oc_check(same, "%s: element %lld differs", label, (long long)bad);
        }
    }
    free_all(outs, n_out);
}
static void expect_f(const char *label, gc_node *n, gc_tensor *in, int n_in, uint32_t cmask, int nd, const int64_t *d,
                     const float *want) {
    expect_out(label, n, in, n_in, cmask, 1, 0, GC_F32, nd, d, want);
}
static void expect_i(const char *label, gc_node *n, gc_tensor *in, int n_in, uint32_t cmask, int nd, const int64_t *d,
                     const int64_t *want) {
    expect_out(label, n, in, n_in, cmask, 1, 0, GC_I64, nd, d, want);
}
static void expect_fail(const char *label, gc_node *n, gc_tensor *in, int n_in, uint32_t cmask, int n_out) {
    gc_tensor outs[GC_MAX_IO];
    gc_err err = {0};
    memset(outs, 0, sizeof outs);
    gcam_status st = oc_forward(n, in, n_in, cmask, outs, n_out, &err);
    oc_check(st != GCAM_OK && err.msg[0], "%s: expected an error", label);
    free_all(outs, n_out); /* a run-time failure happens after the outputs exist */
}

/* ---- Concat / Split ------------------------------------------------------------------------ */

static void test_concat(void) {
    for (int axis = 0; axis < 4; axis++) {
        int64_t d0[4] = {2, 3, 2, 3}, d1[4] = {2, 3, 2, 3}, d2[4] = {2, 3, 2, 3};
        d1[axis] = 1;
        d2[axis] = 4;
        gc_tensor in[3] = {oc_rand(4, d0, -1, 1), oc_rand(4, d1, -1, 1), oc_rand(4, d2, -1, 1)};
        gc_node *n = oc_node("Concat", 13, 3, 1);
        oc_attr_i(n, "axis", axis - (axis == 3 ? 4 : 0)); /* also a negative axis */
        char label[64];
        snprintf(label, sizeof label, "Concat grad axis %d", axis);
        oc_gradcheck(label, n, in, 3, 0, 1, 0x7, 1e-2, 1e-3, 60); /* linear: exact up to rounding */
        node_free(n);
        free_all(in, 3);
    }
    { /* int64 shape assembly, as the exporter does it */
        gc_tensor in[3] = {ti1(2, IV(1, 2)), ti1(1, IV(3)), ti1(0, IV(0))};
        gc_node *n = oc_node("Concat", 13, 3, 1);
        oc_attr_i(n, "axis", 0);
        expect_i("Concat int64", n, in, 3, 0x7, 1, DIMS(3), IV(1, 2, 3));
        node_free(n);
        free_all(in, 3);
    }
    { /* float values */
        gc_tensor in[2] = {tf(2, DIMS(2, 1), FV(1, 2)), tf(2, DIMS(2, 2), FV(3, 4, 5, 6))};
        gc_node *n = oc_node("Concat", 11, 2, 1);
        oc_attr_i(n, "axis", 1);
        expect_f("Concat axis 1", n, in, 2, 0, 2, DIMS(2, 3), FV(1, 3, 4, 2, 5, 6));
        node_free(n);
        free_all(in, 2);
    }
    { /* mismatched extents */
        gc_tensor in[2] = {oc_rand(2, DIMS(2, 3), 0, 1), oc_rand(2, DIMS(3, 3), 0, 1)};
        gc_node *n = oc_node("Concat", 13, 2, 1);
        oc_attr_i(n, "axis", 1);
        expect_fail("Concat mismatch", n, in, 2, 0, 1);
        node_free(n);
        free_all(in, 2);
    }
}

static void test_split(void) {
    { /* explicit sizes, attribute form (opset 11) */
        gc_tensor x = ramp(GC_F32, 2, DIMS(6, 2));
        gc_node *n = oc_node("Split", 11, 1, 2);
        oc_attr_i(n, "axis", 0);
        oc_attr_ints(n, "split", 2, IV(2, 4));
        expect_out("Split attr out 0", n, &x, 1, 0, 2, 0, GC_F32, 2, DIMS(2, 2), FV(0, 1, 2, 3));
        expect_out("Split attr out 1", n, &x, 1, 0, 2, 1, GC_F32, 2, DIMS(4, 2), FV(4, 5, 6, 7, 8, 9, 10, 11));
        oc_tensor_free(&x);
        node_free(n);
    }
    { /* explicit sizes, input form (opset 13), along axis 1, gradient */
        gc_tensor in[2] = {oc_rand(3, DIMS(2, 5, 3), -1, 1), ti1(3, IV(1, 3, 1))};
        gc_node *n = oc_node("Split", 13, 2, 3);
        oc_attr_i(n, "axis", -2);
        oc_gradcheck("Split grad explicit", n, in, 2, 0x2, 3, 0x1, 1e-2, 1e-3, 60);
        node_free(n);
        free_all(in, 2);
    }
    { /* equal parts */
        gc_tensor x = oc_rand(3, DIMS(2, 3, 6), -1, 1);
        gc_node *n = oc_node("Split", 13, 1, 3);
        oc_attr_i(n, "axis", 2);
        oc_gradcheck("Split grad equal", n, &x, 1, 0, 3, 0x1, 1e-2, 1e-3, 60);
        node_free(n);
        oc_tensor_free(&x);
    }
    { /* uneven without opset 18: error; opset 18: the last part is smaller */
        gc_tensor x = ramp(GC_I64, 1, DIMS(7));
        gc_node *n = oc_node("Split", 13, 1, 3);
        expect_fail("Split uneven opset 13", n, &x, 1, 0x1, 3);
        node_free(n);
        n = oc_node("Split", 18, 1, 3);
        oc_attr_i(n, "num_outputs", 3);
        expect_out("Split opset 18 last", n, &x, 1, 0x1, 3, 2, GC_I64, 1, DIMS(1), IV(6));
        expect_out("Split opset 18 first", n, &x, 1, 0x1, 3, 0, GC_I64, 1, DIMS(3), IV(0, 1, 2));
        node_free(n);
        oc_tensor_free(&x);
    }
}

/* ---- views: Flatten, Reshape, Squeeze, Unsqueeze ------------------------------------------ */

static void test_views(void) {
    gc_tensor x = ramp(GC_F32, 3, DIMS(2, 3, 4));
    { /* Reshape: 0 copies, -1 inferred */
        gc_tensor in[2] = {x, ti1(2, IV(0, -1))};
        gc_node *n = oc_node("Reshape", 13, 2, 1);
        expect_f("Reshape 0,-1", n, in, 2, 0x2, 2, DIMS(2, 12), x.data);
        oc_tensor_free(&in[1]);
        in[1] = ti1(3, IV(4, 0, -1));
        expect_f("Reshape 4,0,-1", n, in, 2, 0x2, 3, DIMS(4, 3, 2), x.data);
        oc_tensor_free(&in[1]);
        in[1] = ti1(1, IV(-1));
        expect_f("Reshape -1", n, in, 2, 0x2, 1, DIMS(24), x.data);
        oc_tensor_free(&in[1]);
        in[1] = ti1(2, IV(5, -1));
        expect_fail("Reshape indivisible", n, in, 2, 0x2, 1);
        oc_tensor_free(&in[1]);
        in[1] = ti1(2, IV(-1, -1));
        expect_fail("Reshape two -1", n, in, 2, 0x2, 1);
        oc_tensor_free(&in[1]);
        in[1] = ti1(2, IV(5, 5));
        expect_fail("Reshape count", n, in, 2, 0x2, 1);
        expect_fail("Reshape non-constant shape", n, in, 2, 0x0, 1);
        oc_tensor_free(&in[1]);
        in[1] = ti1(3, IV(2, 3, 4));
        oc_gradcheck("Reshape grad", n, in, 2, 0x2, 1, 0x1, 1e-2, 1e-3, 30);
        oc_tensor_free(&in[1]);
        node_free(n);
    }
    { /* allowzero (opset 14): 0 is a literal zero */
        gc_tensor e = oc_tensor(GC_F32, 2, DIMS(0, 3));
        gc_tensor in[2] = {e, ti1(2, IV(3, 0))};
        gc_node *n = oc_node("Reshape", 14, 2, 1);
        oc_attr_i(n, "allowzero", 1);
        expect_f("Reshape allowzero", n, in, 2, 0x2, 2, DIMS(3, 0), FV(0));
        node_free(n);
        n = oc_node("Reshape", 14, 2, 1); /* allowzero=0: the 0 copies dim 1 (3) -> 9 != 0 */
        expect_fail("Reshape zero copies", n, in, 2, 0x2, 1);
        node_free(n);
        oc_tensor_free(&in[1]);
        in[0] = x;
        in[1] = ti1(3, IV(2, 0, -1));
        n = oc_node("Reshape", 14, 2, 1);
        oc_attr_i(n, "allowzero", 1);
        expect_fail("Reshape allowzero with -1", n, in, 2, 0x2, 1);
        node_free(n);
        oc_tensor_free(&in[1]);
        oc_tensor_free(&e);
    }
    { /* Reshape on int64 (shape tensors) */
        gc_tensor in[2] = {ramp(GC_I64, 1, DIMS(6)), ti1(2, IV(3, 2))};
        gc_node *n = oc_node("Reshape", 13, 2, 1);
        expect_i("Reshape int64", n, in, 2, 0x3, 2, DIMS(3, 2), IV(0, 1, 2, 3, 4, 5));
        node_free(n);
        free_all(in, 2);
    }
    { /* Flatten */
        static const int64_t ax[] = {0, 1, 2, 3, -1};
        static const int64_t want[][2] = {{1, 24}, {2, 12}, {6, 4}, {24, 1}, {6, 4}};
        for (int i = 0; i < 5; i++) {
            gc_node *n = oc_node("Flatten", 13, 1, 1);
            oc_attr_i(n, "axis", ax[i]);
            expect_f("Flatten", n, &x, 1, 0, 2, want[i], x.data);
            node_free(n);
        }
        gc_node *n = oc_node("Flatten", 13, 1, 1);
        oc_attr_i(n, "axis", 4);
        expect_fail("Flatten axis", n, &x, 1, 0, 1);
        node_free(n);
        n = oc_node("Flatten", 13, 1, 1);
        oc_gradcheck("Flatten grad", n, &x, 1, 0, 1, 0x1, 1e-2, 1e-3, 30);
        node_free(n);
    }
    gc_tensor y = ramp(GC_F32, 4, DIMS(2, 1, 3, 1));
    { /* Squeeze: attribute form, input form, all unit dims */
        gc_node *n = oc_node("Squeeze", 11, 1, 1);
        oc_attr_ints(n, "axes", 2, IV(1, -1));
        expect_f("Squeeze attr", n, &y, 1, 0, 2, DIMS(2, 3), y.data);
        node_free(n);
        gc_tensor in[2] = {y, ti1(1, IV(-1))};
        n = oc_node("Squeeze", 13, 2, 1);
        expect_f("Squeeze input", n, in, 2, 0x2, 3, DIMS(2, 1, 3), y.data);
        oc_gradcheck("Squeeze grad", n, in, 2, 0x2, 1, 0x1, 1e-2, 1e-3, 30);
        oc_tensor_free(&in[1]);
        in[1] = ti1(1, IV(0));
        expect_fail("Squeeze non-unit", n, in, 2, 0x2, 1);
        oc_tensor_free(&in[1]);
        node_free(n);
        n = oc_node("Squeeze", 13, 1, 1);
        expect_f("Squeeze all", n, &y, 1, 0, 2, DIMS(2, 3), y.data);
        node_free(n);
        in[1] = oc_tensor(GC_I64, 1, DIMS(0));
        n = oc_node("Squeeze", 13, 2, 1);
        expect_f("Squeeze empty axes", n, in, 2, 0x2, 2, DIMS(2, 3), y.data);
        oc_tensor_free(&in[1]);
        node_free(n);
    }
    { /* Unsqueeze: axes relative to the output rank, unsorted, both opset forms */
        gc_tensor z = ramp(GC_F32, 2, DIMS(2, 3));
        gc_node *n = oc_node("Unsqueeze", 11, 1, 1);
        oc_attr_ints(n, "axes", 2, IV(0, -1));
        expect_f("Unsqueeze attr", n, &z, 1, 0, 4, DIMS(1, 2, 3, 1), z.data);
        node_free(n);
        gc_tensor in[2] = {z, ti1(2, IV(3, 1))};
        n = oc_node("Unsqueeze", 13, 2, 1);
        expect_f("Unsqueeze input", n, in, 2, 0x2, 4, DIMS(2, 1, 3, 1), z.data);
        oc_gradcheck("Unsqueeze grad", n, in, 2, 0x2, 1, 0x1, 1e-2, 1e-3, 30);
        oc_tensor_free(&in[1]);
        in[1] = ti1(2, IV(1, -3));
        expect_fail("Unsqueeze repeated", n, in, 2, 0x2, 1);
        oc_tensor_free(&in[1]);
        in[0] = ti1(2, IV(7, 9)); /* int64, scalar-to-vector style */
        in[1] = ti1(1, IV(0));
        expect_i("Unsqueeze int64", n, in, 2, 0x3, 2, DIMS(1, 2), IV(7, 9));
        free_all(in, 2);
        node_free(n);
        n = oc_node("Unsqueeze", 13, 1, 1);
        expect_fail("Unsqueeze no axes", n, &z, 1, 0, 1);
        node_free(n);
        oc_tensor_free(&z);
    }
    oc_tensor_free(&y);
    oc_tensor_free(&x);
}

/* ---- Transpose ---------------------------------------------------------------------------- */

/* Naive transpose of any dtype for comparison. */
static void naive_transpose(void *y, const void *x, const gc_shape *xs, const int *perm, size_t es) {
    int nd = xs->ndim;
    int64_t xst[GC_MAX_DIMS], yd[GC_MAX_DIMS], idx[GC_MAX_DIMS] = {0}, n = gc_shape_numel(xs);
    gc_shape_strides(xst, xs);
    for (int a = 0; a < nd; a++) yd[a] = xs->d[perm[a]];
    for (int64_t e = 0; e < n; e++) {
        int64_t off = 0, r = e;
        for (int a = nd - 1; a >= 0; a--) {
            idx[a] = r % yd[a];
            r /= yd[a];
        }
        for (int a = 0; a < nd; a++) off += idx[a] * xst[perm[a]];
        memcpy((char *)y + e * (int64_t)es, (const char *)x + off * (int64_t)es, es);
    }
}

static void test_transpose(void) {
    static const int64_t perms[][4] = {{0, 2, 3, 1}, {0, 3, 1, 2}, {3, 2, 1, 0}, {1, 0, 2, 3}, {0, 1, 3, 2}, {2, 0, 3, 1}};
    for (size_t p = 0; p < GC_ARRAY_LEN(perms); p++) {
        int perm[4];
        for (int a = 0; a < 4; a++) perm[a] = (int)perms[p][a];
        /* Big enough for the tiled and parallel paths, with ragged tile edges. */
        static const gc_dtype dts[] = {GC_F32, GC_I64, GC_BOOL};
        for (int t = 0; t < 3; t++) {
            gc_tensor x = ramp(dts[t], 4, DIMS(2, 37, 45, 35));
            gc_node *n = oc_node("Transpose", 13, 1, 1);
            oc_attr_ints(n, "perm", 4, perms[p]);
            int64_t yd[4];
            for (int a = 0; a < 4; a++) yd[a] = x.shape.d[perm[a]];
            void *want = malloc((size_t)gc_numel(&x) * gc_dtype_size(dts[t]));
            naive_transpose(want, x.data, &x.shape, perm, gc_dtype_size(dts[t]));
            char label[64];
            snprintf(label, sizeof label, "Transpose perm %zu dtype %d", p, (int)dts[t]);
            expect_out(label, n, &x, 1, 0, 1, 0, dts[t], 4, yd, want);
            free(want);
            node_free(n);
            oc_tensor_free(&x);
        }
        gc_tensor x = oc_rand(4, DIMS(2, 5, 6, 4), -1, 1);
        gc_node *n = oc_node("Transpose", 13, 1, 1);
        oc_attr_ints(n, "perm", 4, perms[p]);
        char label[64];
        snprintf(label, sizeof label, "Transpose grad perm %zu", p);
        oc_gradcheck(label, n, &x, 1, 0, 1, 0x1, 1e-2, 1e-3, 60);
        node_free(n);
        oc_tensor_free(&x);
    }
    { /* default: reversed axes */
        gc_tensor x = ramp(GC_F32, 3, DIMS(2, 3, 2));
        gc_node *n = oc_node("Transpose", 13, 1, 1);
        expect_f("Transpose default", n, &x, 1, 0, 3, DIMS(2, 3, 2), FV(0, 6, 2, 8, 4, 10, 1, 7, 3, 9, 5, 11));
        oc_gradcheck("Transpose grad default", n, &x, 1, 0, 1, 0x1, 1e-2, 1e-3, 30);
        node_free(n);
        n = oc_node("Transpose", 13, 1, 1);
        oc_attr_ints(n, "perm", 3, IV(0, 0, 1));
        expect_fail("Transpose bad perm", n, &x, 1, 0, 1);
        node_free(n);
        oc_tensor_free(&x);
    }
}

/* ---- Slice -------------------------------------------------------------------------------- */

static void test_slice(void) {
    gc_tensor x = ramp(GC_F32, 2, DIMS(4, 5));
    gc_tensor xi = ramp(GC_I64, 2, DIMS(4, 5));
    {
        gc_tensor in[3] = {x, ti1(2, IV(1, 0)), ti1(2, IV(INT64_MAX, -1))};
        gc_node *n = oc_node("Slice", 13, 3, 1);
        expect_f("Slice INT64_MAX end", n, in, 3, 0x6, 2, DIMS(3, 4), FV(5, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18));
        in[0] = xi;
        expect_i("Slice int64", n, in, 3, 0x7, 2, DIMS(3, 4), IV(5, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18));
        free_all(in + 1, 2);
        node_free(n);
    }
    { /* negative step from the end to INT64_MIN, on axis -1 */
        gc_tensor in[5] = {x, ti1(1, IV(-1)), ti1(1, IV(INT64_MIN)), ti1(1, IV(-1)), ti1(1, IV(-2))};
        gc_node *n = oc_node("Slice", 13, 5, 1);
        expect_f("Slice negative step", n, in, 5, 0x1E, 2, DIMS(4, 3), FV(4, 2, 0, 9, 7, 5, 14, 12, 10, 19, 17, 15));
        free_all(in + 1, 4);
        /* clamping: start far past the end with a negative step, end far before the start */
        in[1] = ti1(1, IV(100));
        in[2] = ti1(1, IV(-100));
        in[3] = ti1(1, IV(0));
        in[4] = ti1(1, IV(-3));
        expect_f("Slice negative step clamp", n, in, 5, 0x1E, 2, DIMS(2, 5), FV(15, 16, 17, 18, 19, 0, 1, 2, 3, 4));
        free_all(in + 1, 4);
        /* start out of range with a positive step: empty */
        in[1] = ti1(1, IV(10));
        in[2] = ti1(1, IV(20));
        in[3] = ti1(1, IV(0));
        in[4] = ti1(1, IV(1));
        expect_f("Slice empty", n, in, 5, 0x1E, 2, DIMS(0, 5), FV(0));
        free_all(in + 1, 4);
        in[1] = ti1(1, IV(-100));
        in[2] = ti1(1, IV(2));
        in[3] = ti1(1, IV(1));
        in[4] = ti1(1, IV(1));
        expect_f("Slice start clamp", n, in, 5, 0x1E, 2, DIMS(4, 2), FV(0, 1, 5, 6, 10, 11, 15, 16));
        free_all(in + 1, 4);
        in[1] = ti1(1, IV(0));
        in[2] = ti1(1, IV(2));
        in[3] = ti1(1, IV(1));
        in[4] = ti1(1, IV(0));
        expect_fail("Slice step 0", n, in, 5, 0x1E, 1);
        free_all(in + 1, 4);
        in[1] = ti1(2, IV(0, 1));
        in[2] = ti1(2, IV(2, 3));
        in[3] = ti1(2, IV(1, -1));
        in[4] = ti1(2, IV(1, 1));
        expect_fail("Slice repeated axis", n, in, 5, 0x1E, 1);
        free_all(in + 1, 4);
        node_free(n);
    }
    { /* opset 9: attributes */
        gc_node *n = oc_node("Slice", 9, 1, 1);
        oc_attr_ints(n, "starts", 1, IV(1));
        oc_attr_ints(n, "ends", 1, IV(1000));
        oc_attr_ints(n, "axes", 1, IV(1));
        expect_f("Slice opset 9", n, &x, 1, 0, 2, DIMS(4, 4),
                 FV(1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14, 16, 17, 18, 19));
        node_free(n);
    }
    { /* gradients: negative steps and negative axes, several axes at once */
        gc_tensor in[5] = {oc_rand(4, DIMS(3, 5, 4, 6), -1, 1), ti1(3, IV(-1, 1, 4)), ti1(3, IV(-6, 4, 0)),
                           ti1(3, IV(-1, 1, -2)), ti1(3, IV(-2, 2, -1))};
        gc_node *n = oc_node("Slice", 13, 5, 1);
        oc_gradcheck("Slice grad negative steps", n, in, 5, 0x1E, 1, 0x1, 1e-2, 1e-3, 80);
        free_all(in, 5);
        /* steps omitted: 1 */
        in[0] = ramp(GC_F32, 3, DIMS(4, 3, 5));
        in[1] = ti1(2, IV(1, 1));
        in[2] = ti1(2, IV(INT64_MAX, -1));
        in[3] = ti1(2, IV(0, 2));
        float want[27];
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
                for (int k = 0; k < 3; k++) want[(i * 3 + j) * 3 + k] = (float)((i + 1) * 15 + j * 5 + k + 1);
        expect_f("Slice default steps", n, in, 4, 0xE, 3, DIMS(3, 3, 3), want);
        free_all(in, 4);
        node_free(n);
    }
    oc_tensor_free(&x);
    oc_tensor_free(&xi);
}

/* ---- Gather ------------------------------------------------------------------------------- */

static void test_gather(void) {
    { /* int64 data, negative indices (the shape-tensor path) */
        gc_tensor in[2] = {ti1(4, IV(10, 20, 30, 40)), ti1(3, IV(2, -1, 0))};
        gc_node *n = oc_node("Gather", 13, 2, 1);
        expect_i("Gather int64", n, in, 2, 0x3, 1, DIMS(3), IV(30, 40, 10));
        free_all(in, 2);
        in[0] = ti1(4, IV(10, 20, 30, 40));
        in[1] = tscalar_i(-2);
        expect_i("Gather scalar index", n, in, 2, 0x3, 0, NULL, IV(30));
        free_all(in, 2);
        node_free(n);
    }
    { /* axis 1, 2-D indices */
        gc_tensor in[2] = {ramp(GC_F32, 2, DIMS(2, 3)), ti(2, DIMS(2, 2), IV(2, 0, 1, 2))};
        gc_node *n = oc_node("Gather", 13, 2, 1);
        oc_attr_i(n, "axis", 1);
        expect_f("Gather axis 1", n, in, 2, 0x2, 3, DIMS(2, 2, 2), FV(2, 0, 1, 2, 5, 3, 4, 5));
        free_all(in, 2);
        node_free(n);
    }
    { /* out of range: an error (at planning with known indices, else at run time), never a crash */
        gc_tensor in[2] = {ramp(GC_F32, 2, DIMS(2, 3)), ti1(2, IV(1, 2))};
        gc_node *n = oc_node("Gather", 13, 2, 1);
        expect_fail("Gather out of range (constant)", n, in, 2, 0x2, 1);
        expect_fail("Gather out of range (runtime)", n, in, 2, 0x0, 1);
        oc_tensor_free(&in[1]);
        in[1] = ti1(1, IV(-3));
        expect_fail("Gather negative out of range", n, in, 2, 0x0, 1);
        free_all(in, 2);
        node_free(n);
    }
    { /* gradients: repeated indices scatter-add */
        gc_tensor in[2] = {oc_rand(2, DIMS(5, 4), -1, 1), ti(2, DIMS(2, 3), IV(0, 2, 0, 4, -1, 2))};
        gc_node *n = oc_node("Gather", 13, 2, 1);
        oc_gradcheck("Gather grad axis 0", n, in, 2, 0x2, 1, 0x1, 1e-2, 1e-3, 40);
        node_free(n);
        free_all(in, 2);
        in[0] = oc_rand(3, DIMS(3, 6, 2), -1, 1);
        in[1] = ti1(5, IV(5, 1, 5, 0, -1));
        n = oc_node("Gather", 13, 2, 1);
        oc_attr_i(n, "axis", 1);
        oc_gradcheck("Gather grad axis 1", n, in, 2, 0x0, 1, 0x1, 1e-2, 1e-3, 40);
        node_free(n);
        free_all(in, 2);
        /* embedding lookup: wide rows take the chunked parallel path */
        in[0] = oc_rand(2, DIMS(6, 2048), -1, 1);
        in[1] = ti(2, DIMS(2, 4), IV(3, 1, 3, 3, 0, 5, 1, 3));
        n = oc_node("Gather", 13, 2, 1);
        oc_gradcheck("Gather grad embedding", n, in, 2, 0x2, 1, 0x1, 1e-2, 1e-3, 60);
        node_free(n);
        free_all(in, 2);
    }
}

/* ---- Expand / Tile ------------------------------------------------------------------------ */

static void test_expand_tile(void) {
    {
        gc_tensor in[2] = {tf(2, DIMS(3, 1), FV(1, 2, 3)), ti1(3, IV(2, 1, 2))};
        gc_node *n = oc_node("Expand", 13, 2, 1);
        expect_f("Expand up", n, in, 2, 0x2, 3, DIMS(2, 3, 2), FV(1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3));
        free_all(in, 2);
        /* the shape may be smaller than the input: bidirectional */
        in[0] = ramp(GC_I64, 2, DIMS(2, 3));
        in[1] = ti1(1, IV(1));
        expect_i("Expand smaller shape", n, in, 2, 0x3, 2, DIMS(2, 3), IV(0, 1, 2, 3, 4, 5));
        free_all(in, 2);
        in[0] = ramp(GC_F32, 2, DIMS(2, 3));
        in[1] = ti1(2, IV(4, 3));
        expect_fail("Expand incompatible", n, in, 2, 0x2, 1);
        free_all(in, 2);
        node_free(n);
    }
    static const int64_t xs[][4] = {{3, 1, 1, 1}, {1, 4, 1, 2}, {4, 1, 1, 1}, {2, 1, 3, 1}};
    static const int64_t ss[][4] = {{2, 1, 4, 1}, {3, 1, 5, 1}, {1, 1, 4, 3}, {5, 1, 1, 1}};
    static const int xr[] = {2, 4, 2, 3}, sr[] = {3, 4, 4, 2};
    for (int c = 0; c < 4; c++) {
        gc_tensor in[2] = {oc_rand(xr[c], xs[c], -1, 1), ti1(sr[c], ss[c])};
        gc_node *n = oc_node("Expand", 13, 2, 1);
        char label[64];
        snprintf(label, sizeof label, "Expand grad %d", c);
        oc_gradcheck(label, n, in, 2, 0x2, 1, 0x1, 1e-2, 1e-3, 40);
        node_free(n);
        free_all(in, 2);
    }
    { /* large reduction: parallel blocks with an inner reduction */
        gc_tensor in[2] = {oc_rand(4, DIMS(1, 8, 1, 1), -1, 1), ti1(4, IV(4, 8, 64, 64))};
        gc_node *n = oc_node("Expand", 13, 2, 1);
        oc_gradcheck("Expand grad large", n, in, 2, 0x2, 1, 0x1, 1e-2, 1e-3, 8);
        node_free(n);
        free_all(in, 2);
    }
    {
        gc_tensor in[2] = {tf(2, DIMS(2, 2), FV(1, 2, 3, 4)), ti1(2, IV(2, 3))};
        gc_node *n = oc_node("Tile", 13, 2, 1);
        expect_f("Tile", n, in, 2, 0x2, 2, DIMS(4, 6),
                 FV(1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4, 1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4));
        free_all(in, 2);
        in[0] = ti1(2, IV(5, 6));
        in[1] = ti1(1, IV(2));
        expect_i("Tile int64", n, in, 2, 0x3, 1, DIMS(4), IV(5, 6, 5, 6));
        free_all(in, 2);
        in[0] = oc_rand(3, DIMS(2, 3, 1), -1, 1);
        in[1] = ti1(3, IV(2, 1, 3));
        oc_gradcheck("Tile grad", n, in, 2, 0x2, 1, 0x1, 1e-2, 1e-3, 40);
        free_all(in, 2);
        in[0] = oc_rand(4, DIMS(1, 2, 3, 2), -1, 1);
        in[1] = ti1(4, IV(3, 2, 1, 2));
        oc_gradcheck("Tile grad 4-D", n, in, 2, 0x2, 1, 0x1, 1e-2, 1e-3, 40);
        oc_tensor_free(&in[1]);
        in[1] = ti1(3, IV(1, 1, 1));
        expect_fail("Tile repeats count", n, in, 2, 0x2, 1);
        free_all(in, 2);
        node_free(n);
    }
}

/* ---- Shape, Size, Cast, Constant, ConstantOfShape, Range ---------------------------------- */

static void test_small_ops(void) {
    /* Shape and Size read only the shape: the data pointer stays NULL. */
    gc_tensor x = {.dtype = GC_F32, .shape = {.ndim = 4, .d = {2, 3, 4, 5}}, .data = NULL};
    {
        gc_node *n = oc_node("Shape", 13, 1, 1);
        expect_i("Shape", n, &x, 1, 0, 1, DIMS(4), IV(2, 3, 4, 5));
        node_free(n);
        n = oc_node("Shape", 15, 1, 1);
        oc_attr_i(n, "start", 1);
        expect_i("Shape start", n, &x, 1, 0, 1, DIMS(3), IV(3, 4, 5));
        node_free(n);
        n = oc_node("Shape", 15, 1, 1);
        oc_attr_i(n, "end", -1);
        expect_i("Shape end -1", n, &x, 1, 0, 1, DIMS(3), IV(2, 3, 4));
        node_free(n);
        n = oc_node("Shape", 15, 1, 1);
        oc_attr_i(n, "start", -10);
        oc_attr_i(n, "end", 10);
        expect_i("Shape clipped", n, &x, 1, 0, 1, DIMS(4), IV(2, 3, 4, 5));
        node_free(n);
        n = oc_node("Shape", 15, 1, 1);
        oc_attr_i(n, "start", 3);
        oc_attr_i(n, "end", 1);
        expect_i("Shape empty", n, &x, 1, 0, 1, DIMS(0), IV(0));
        node_free(n);
        n = oc_node("Size", 13, 1, 1);
        expect_i("Size", n, &x, 1, 0, 0, NULL, IV(120));
        node_free(n);
    }
    { /* Cast */
        gc_tensor f = tf(1, DIMS(5), FV(-1.7f, 2.9f, 0.5f, -0.2f, 0.0f));
        gc_node *n = oc_node("Cast", 13, 1, 1);
        oc_attr_i(n, "to", 7);
        expect_i("Cast float->int64 truncates", n, &f, 1, 0, 1, DIMS(5), IV(-1, 2, 0, 0, 0));
        node_free(n);
        n = oc_node("Cast", 13, 1, 1);
        oc_attr_i(n, "to", 6); /* INT32 widens to int64 */
        expect_i("Cast float->int32", n, &f, 1, 0, 1, DIMS(5), IV(-1, 2, 0, 0, 0));
        node_free(n);
        n = oc_node("Cast", 13, 1, 1);
        oc_attr_i(n, "to", 9);
        expect_out("Cast float->bool", n, &f, 1, 0, 1, 0, GC_BOOL, 1, DIMS(5), (const uint8_t[]){1, 1, 1, 1, 0});
        node_free(n);
        n = oc_node("Cast", 13, 1, 1);
        oc_attr_i(n, "to", 10); /* FLOAT16: values rounded to half precision */
        gc_tensor h = tf(1, DIMS(4), FV(0.1f, 1.0f, 65519.0f, 1e-7f));
        expect_f("Cast float->float16", n, &h, 1, 0, 1, DIMS(4), FV(0.0999755859375f, 1.0f, 65504.0f, 1.1920929e-7f));
        oc_tensor_free(&h);
        node_free(n);
        n = oc_node("Cast", 13, 1, 1);
        oc_attr_i(n, "to", 11); /* DOUBLE: float */
        expect_f("Cast float->double", n, &f, 1, 0, 1, DIMS(5), f.data);
        oc_gradcheck("Cast grad", n, &f, 1, 0, 1, 0x1, 1e-2, 1e-3, 10);
        node_free(n);
        gc_tensor i = ti1(3, IV(-3, 0, 5));
        n = oc_node("Cast", 13, 1, 1);
        oc_attr_i(n, "to", 1);
        expect_f("Cast int64->float", n, &i, 1, 0, 1, DIMS(3), FV(-3, 0, 5));
        node_free(n);
        n = oc_node("Cast", 13, 1, 1);
        oc_attr_i(n, "to", 9);
        expect_out("Cast int64->bool", n, &i, 1, 0, 1, 0, GC_BOOL, 1, DIMS(3), (const uint8_t[]){1, 0, 1});
        node_free(n);
        gc_tensor b = oc_tensor(GC_BOOL, 1, DIMS(3));
        ((uint8_t *)b.data)[1] = 1;
        n = oc_node("Cast", 13, 1, 1);
        oc_attr_i(n, "to", 7);
        expect_i("Cast bool->int64", n, &b, 1, 0, 1, DIMS(3), IV(0, 1, 0));
        node_free(n);
        n = oc_node("Cast", 13, 1, 1);
        oc_attr_i(n, "to", 8);
        expect_fail("Cast to STRING", n, &f, 1, 0, 1);
        node_free(n);
        oc_tensor_free(&b);
        oc_tensor_free(&i);
        oc_tensor_free(&f);
    }
    { /* Constant: every attribute form */
        gc_tensor dummy = none();
        gc_node *n = oc_node("Constant", 13, 0, 1);
        attr_tensor(n, "value", tf(2, DIMS(1, 2), FV(1.5f, -2)));
        expect_f("Constant value", n, &dummy, 0, 0, 2, DIMS(1, 2), FV(1.5f, -2));
        node_free(n);
        n = oc_node("Constant", 13, 0, 1);
        attr_tensor(n, "value", ti1(3, IV(4, 5, 6)));
        expect_i("Constant value int64", n, &dummy, 0, 0, 1, DIMS(3), IV(4, 5, 6));
        node_free(n);
        n = oc_node("Constant", 13, 0, 1);
        oc_attr_f(n, "value_float", 2.5f);
        expect_f("Constant value_float", n, &dummy, 0, 0, 0, NULL, FV(2.5f));
        node_free(n);
        n = oc_node("Constant", 13, 0, 1);
        oc_attr_floats(n, "value_floats", 3, FV(1, 2, 3));
        expect_f("Constant value_floats", n, &dummy, 0, 0, 1, DIMS(3), FV(1, 2, 3));
        node_free(n);
        n = oc_node("Constant", 13, 0, 1);
        oc_attr_i(n, "value_int", -7);
        expect_i("Constant value_int", n, &dummy, 0, 0, 0, NULL, IV(-7));
        node_free(n);
        n = oc_node("Constant", 13, 0, 1);
        oc_attr_ints(n, "value_ints", 2, IV(8, 9));
        expect_i("Constant value_ints", n, &dummy, 0, 0, 1, DIMS(2), IV(8, 9));
        node_free(n);
        n = oc_node("Constant", 13, 0, 1);
        attr_tensor(n, "sparse_value", tf(1, DIMS(1), FV(1)));
        expect_fail("Constant sparse_value", n, &dummy, 0, 0, 1);
        node_free(n);
        n = oc_node("Constant", 13, 0, 1);
        oc_attr_s(n, "value_string", "abc");
        expect_fail("Constant value_string", n, &dummy, 0, 0, 1);
        node_free(n);
        n = oc_node("Constant", 13, 0, 1);
        expect_fail("Constant no value", n, &dummy, 0, 0, 1);
        node_free(n);
    }
    { /* ConstantOfShape */
        gc_tensor s = ti1(2, IV(2, 3));
        gc_node *n = oc_node("ConstantOfShape", 13, 1, 1);
        expect_f("ConstantOfShape default", n, &s, 1, 0x1, 2, DIMS(2, 3), FV(0, 0, 0, 0, 0, 0));
        node_free(n);
        n = oc_node("ConstantOfShape", 13, 1, 1);
        attr_tensor(n, "value", ti1(1, IV(7)));
        expect_i("ConstantOfShape int64", n, &s, 1, 0x1, 2, DIMS(2, 3), IV(7, 7, 7, 7, 7, 7));
        node_free(n);
        n = oc_node("ConstantOfShape", 13, 1, 1);
        attr_tensor(n, "value", tf(1, DIMS(1), FV(1.5f)));
        gc_tensor e = ti1(0, IV(0));
        expect_f("ConstantOfShape scalar", n, &e, 1, 0x1, 0, NULL, FV(1.5f));
        expect_fail("ConstantOfShape non-constant", n, &s, 1, 0x0, 1);
        node_free(n);
        oc_tensor_free(&e);
        oc_tensor_free(&s);
        s = ti1(2, IV(2, -1));
        n = oc_node("ConstantOfShape", 13, 1, 1);
        expect_fail("ConstantOfShape negative", n, &s, 1, 0x1, 1);
        node_free(n);
        oc_tensor_free(&s);
    }
    { /* Range */
        gc_tensor in[3] = {tscalar_f(1), tscalar_f(5), tscalar_f(2)};
        gc_node *n = oc_node("Range", 13, 3, 1);
        expect_f("Range float", n, in, 3, 0x7, 1, DIMS(2), FV(1, 3));
        free_all(in, 3);
        in[0] = tscalar_f(0), in[1] = tscalar_f(1), in[2] = tscalar_f(0.3f);
        expect_f("Range float fraction", n, in, 3, 0x7, 1, DIMS(4), FV(0, 0.3f, 0.6f, 0.9f));
        free_all(in, 3);
        in[0] = tscalar_i(10), in[1] = tscalar_i(4), in[2] = tscalar_i(-3);
        expect_i("Range int64 negative delta", n, in, 3, 0x7, 1, DIMS(2), IV(10, 7));
        free_all(in, 3);
        in[0] = tscalar_i(0), in[1] = tscalar_i(4), in[2] = tscalar_i(-1);
        expect_i("Range empty", n, in, 3, 0x7, 1, DIMS(0), IV(0));
        free_all(in, 3);
        in[0] = tscalar_i(0), in[1] = tscalar_i(4), in[2] = tscalar_i(0);
        expect_fail("Range delta 0", n, in, 3, 0x7, 1);
        free_all(in, 3);
        node_free(n);
    }
}

/* ---- Pad ---------------------------------------------------------------------------------- */

/* Independent reference: crop by the negative pads, then numpy-style padding. */
static int64_t ref_pad_src(int mode, int64_t j, int64_t pb, int64_t pe, int64_t in) {
    int64_t start = pb < 0 ? -pb : 0, len = in - start - (pe < 0 ? -pe : 0);
    int64_t r = j - (pb > 0 ? pb : 0);
    if (r >= 0 && r < len) return start + r;
    if (mode == 0) return -1;
    if (mode == 2) return start + (r < 0 ? 0 : len - 1);
    if (len == 1) return start;
    while (r < 0 || r >= len) r = r < 0 ? -r : 2 * (len - 1) - r; /* mirror until inside */
    return start + r;
}

static void ref_pad(float *y, const float *x, const gc_shape *xs, const int64_t *pads, int mode, float cv) {
    int nd = xs->ndim;
    int64_t yd[GC_MAX_DIMS], xst[GC_MAX_DIMS], n = 1;
    gc_shape_strides(xst, xs);
    for (int a = 0; a < nd; a++) n *= (yd[a] = xs->d[a] + pads[a] + pads[a + nd]);
    for (int64_t e = 0; e < n; e++) {
        int64_t r = e, off = 0;
        int outside = 0;
        for (int a = nd - 1; a >= 0; a--) {
            int64_t s = ref_pad_src(mode, r % yd[a], pads[a], pads[a + nd], xs->d[a]);
            r /= yd[a];
            if (s < 0) outside = 1;
            else off += s * xst[a];
        }
        y[e] = outside ? cv : x[off];
    }
}

static void test_pad(void) {
    static const char *const modes[] = {"constant", "reflect", "edge"};
    static const int64_t pads_list[][8] = {
        {0, 0, 1, 2, 0, 0, 2, 1},    /* spatial only (NCHW) */
        {0, 1, -1, 3, 1, 0, 2, -2},  /* negative pads crop */
        {1, 0, 4, 0, 0, 2, 0, 5},    /* wider than the extent: repeated reflection */
        {0, 0, -2, -1, 0, 0, -1, 0}, /* crop only */
    };
    for (int m = 0; m < 3; m++) {
        for (size_t p = 0; p < GC_ARRAY_LEN(pads_list); p++) {
            gc_tensor in[3] = {oc_rand(4, DIMS(2, 3, 4, 5), -1, 1), ti1(8, pads_list[p]), tscalar_f(0.5f)};
            gc_node *n = oc_node("Pad", 13, 3, 1);
            oc_attr_s(n, "mode", modes[m]);
            int64_t yd[4], ny = 1;
            for (int a = 0; a < 4; a++) ny *= (yd[a] = in[0].shape.d[a] + pads_list[p][a] + pads_list[p][a + 4]);
            float *want = malloc((size_t)ny * sizeof(float));
            ref_pad(want, in[0].data, &in[0].shape, pads_list[p], m, 0.5f);
            char label[96];
            snprintf(label, sizeof label, "Pad %s pads %zu", modes[m], p);
            expect_f(label, n, in, 3, 0x6, 4, yd, want);
            snprintf(label, sizeof label, "Pad grad %s pads %zu", modes[m], p);
            oc_gradcheck(label, n, in, 3, 0x6, 1, 0x1, 1e-2, 1e-3, 120);
            free(want);
            node_free(n);
            free_all(in, 3);
        }
    }
    { /* opset 2 attribute form, with value */
        gc_tensor x = tf(2, DIMS(2, 2), FV(1, 2, 3, 4));
        gc_node *n = oc_node("Pad", 2, 1, 1);
        oc_attr_ints(n, "pads", 4, IV(1, 0, 0, 1));
        oc_attr_f(n, "value", 9);
        expect_f("Pad opset 2", n, &x, 1, 0, 2, DIMS(3, 3), FV(9, 9, 9, 1, 2, 9, 3, 4, 9));
        node_free(n);
        n = oc_node("Pad", 2, 1, 1);
        oc_attr_ints(n, "pads", 4, IV(0, 2, 0, 0));
        oc_attr_s(n, "mode", "reflect");
        expect_f("Pad opset 2 reflect", n, &x, 1, 0, 2, DIMS(2, 4), FV(1, 2, 1, 2, 3, 4, 3, 4));
        node_free(n);
        oc_tensor_free(&x);
    }
    { /* opset 18 axes input; int64 data; default constant */
        gc_tensor in[4] = {ti(2, DIMS(2, 2), IV(1, 2, 3, 4)), ti1(2, IV(1, 1)), none(), ti1(1, IV(-1))};
        gc_node *n = oc_node("Pad", 18, 4, 1);
        expect_i("Pad axes int64", n, in, 4, 0xB, 2, DIMS(2, 4), IV(0, 1, 2, 0, 0, 3, 4, 0));
        free_all(in, 4);
        node_free(n);
    }
    { /* errors */
        gc_tensor in[2] = {oc_rand(2, DIMS(2, 3), 0, 1), ti1(4, IV(0, -4, 0, 0))};
        gc_node *n = oc_node("Pad", 13, 2, 1);
        expect_fail("Pad crops too much", n, in, 2, 0x2, 1);
        oc_tensor_free(&in[1]);
        in[1] = ti1(3, IV(0, 1, 0));
        expect_fail("Pad count", n, in, 2, 0x2, 1);
        expect_fail("Pad non-constant pads", n, in, 2, 0x0, 1);
        free_all(in, 2);
        node_free(n);
        n = oc_node("Pad", 13, 1, 1);
        oc_attr_s(n, "mode", "wrap");
        in[0] = oc_rand(1, DIMS(3), 0, 1);
        expect_fail("Pad mode wrap", n, in, 1, 0, 1);
        oc_tensor_free(&in[0]);
        node_free(n);
    }
}

/* ---- Resize / Upsample -------------------------------------------------------------------- */

/* Independent reference, transcribed from the ONNX reference implementation: nested 1-D
 * interpolation, coefficients from the ratio in (0, 1], neighbours by distance, edge padding. */
typedef struct rref {
    int mode;           /* 0 nearest, 1 linear, 2 cubic */
    int ctm;            /* as in resize.c: half_pixel, pytorch_half_pixel, align_corners, asymmetric,
                         * tf_half_pixel_for_nn, tf_crop_and_resize */
    int nm;             /* round_prefer_floor, round_prefer_ceil, floor, ceil, 4: legacy (opset <= 10) */
    double a;
    int excl;
    double extra;
    const double *scale, *len, *roi; /* per axis; roi: starts then ends */
    int nd;
    const int64_t *in, *out, *xst;
    const float *x;
} rref;

static double ref_axis(const rref *r, int ax, int64_t base, const int64_t *oidx) {
    double xo = (double)oidx[ax], s = r->scale[ax], L = r->len[ax], in = (double)r->in[ax], xi;
    switch (r->ctm) {
    case 0: xi = (xo + 0.5) / s - 0.5; break;
    case 1: xi = L == 1 ? 0 : (xo + 0.5) / s - 0.5; break;
    case 2: xi = L == 1 ? 0 : xo * (in - 1) / (L - 1); break;
    case 4: xi = (xo + 0.5) / s; break;
    case 5: {
        double r0 = r->roi[ax], r1 = r->roi[ax + r->nd];
        xi = L == 1 ? (r1 - r0) * (in - 1) / 2 : xo * (r1 - r0) * (in - 1) / (L - 1);
        xi += r0 * (in - 1);
        if (xi < 0 || xi > in - 1) return r->extra;
        break;
    }
    default: xi = xo / s;
    }
    double c[4], fl = floor(xi), t = xi == fl ? 1.0 : xi - fl;
    int n;
    int64_t first;
    if (r->mode == 0 && r->nm == 4) { /* legacy: truncate, or ceil when shrinking */
        n = 1;
        c[0] = 1;
        first = s < 1 ? (int64_t)ceil(xi) : (int64_t)xi;
    } else {
        if (r->mode == 0) {
            n = 2;
            int hi = xi == fl ? 1 : r->nm == 0 ? t > 0.5 : r->nm == 1 ? t >= 0.5 : r->nm == 3;
            c[0] = !hi, c[1] = hi;
        } else if (r->mode == 1) {
            n = 2;
            c[0] = 1 - t, c[1] = t;
        } else {
            double A = r->a, u = t + 1, v = 1 - t, w = 2 - t;
            n = 4;
            c[0] = ((A * u - 5 * A) * u + 8 * A) * u - 4 * A;
            c[1] = ((A + 2) * t - (A + 3)) * t * t + 1;
            c[2] = ((A + 2) * v - (A + 3)) * v * v + 1;
            c[3] = ((A * w - 5 * A) * w + 8 * A) * w - 4 * A;
        }
        /* the n nearest integers to xi, smaller ones first on ties */
        first = xi == fl ? (int64_t)xi - n / 2 : (int64_t)fl - n / 2 + 1;
        if (r->excl) {
            double sum = 0;
            for (int j = 0; j < n; j++) {
                if (first + j < 0 || first + j >= r->in[ax]) c[j] = 0;
                sum += c[j];
            }
            for (int j = 0; j < n; j++) c[j] /= sum;
        }
    }
    double v = 0;
    for (int j = 0; j < n; j++) {
        int64_t i = GC_MAX(0, GC_MIN(first + j, r->in[ax] - 1));
        int64_t off = base + i * r->xst[ax];
        v += c[j] * (ax + 1 == r->nd ? (double)r->x[off] : ref_axis(r, ax + 1, off, oidx));
    }
    return v;
}

static void ref_resize(float *y, rref *r) {
    int64_t n = 1, idx[GC_MAX_DIMS];
    for (int a = 0; a < r->nd; a++) n *= r->out[a];
    for (int64_t e = 0; e < n; e++) {
        int64_t q = e;
        for (int a = r->nd - 1; a >= 0; a--) {
            idx[a] = q % r->out[a];
            q /= r->out[a];
        }
        y[e] = (float)ref_axis(r, 0, 0, idx);
    }
}

static const char *const k_ctm[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                                    "tf_half_pixel_for_nn", "tf_crop_and_resize"};
static const char *const k_nm[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};

typedef struct rs_case {
    int nd;
    int64_t in[5];
    int use_sizes;
    float scales[5];
    int64_t sizes[5];
} rs_case;

/* One Resize configuration: forward against the reference, then the gradient. */
static void resize_case(const rs_case *c, int mode, int ctm, int nm, float a, int excl, int grad) {
    int nd = c->nd;
    gc_tensor in[4];
    in[0] = oc_rand(nd, c->in, -1, 1);
    float roi[10];
    for (int d = 0; d < nd; d++) { /* a crop inside, a box reaching outside (extrapolation) */
        roi[d] = d == nd - 1 ? -0.2f : d == nd - 2 ? 0.1f : 0.0f;
        roi[d + nd] = d == nd - 1 ? 1.3f : d == nd - 2 ? 0.8f : 1.0f;
    }
    in[1] = ctm == 5 ? tf(1, DIMS(2 * nd), roi) : none();
    in[2] = c->use_sizes ? none() : tf(1, DIMS(nd), c->scales);
    in[3] = c->use_sizes ? ti1(nd, c->sizes) : none();
    gc_node *n = oc_node("Resize", 13, 4, 1);
    oc_attr_s(n, "mode", mode == 0 ? "nearest" : mode == 1 ? "linear" : "cubic");
    oc_attr_s(n, "coordinate_transformation_mode", k_ctm[ctm]);
    oc_attr_s(n, "nearest_mode", k_nm[nm]);
    oc_attr_f(n, "cubic_coeff_a", a);
    oc_attr_i(n, "exclude_outside", excl);
    oc_attr_f(n, "extrapolation_value", 0.25f);
    double scale[5], len[5], droi[10];
    int64_t out[5], xst[5], ny = 1;
    gc_shape_strides(xst, &in[0].shape);
    for (int d = 0; d < nd; d++) {
        if (c->use_sizes) {
            out[d] = c->sizes[d];
            scale[d] = (double)out[d] / (double)c->in[d];
            len[d] = (double)out[d];
        } else {
            scale[d] = c->scales[d];
            out[d] = (int64_t)floor(scale[d] * (double)c->in[d]);
            len[d] = scale[d] * (double)c->in[d];
        }
        droi[d] = roi[d];
        droi[d + nd] = roi[d + nd];
        ny *= out[d];
    }
    rref r = {.mode = mode, .ctm = ctm, .nm = nm, .a = a, .excl = excl, .extra = 0.25, .scale = scale, .len = len,
              .roi = droi, .nd = nd, .in = c->in, .out = out, .xst = xst, .x = in[0].data};
    float *want = malloc((size_t)ny * sizeof(float));
    ref_resize(want, &r);
    char label[160];
    snprintf(label, sizeof label, "Resize %s %s %s%s rank %d %s", mode == 0 ? "nearest" : mode == 1 ? "linear" : "cubic",
             k_ctm[ctm], mode == 0 ? k_nm[nm] : "", excl ? " exclude_outside" : "", nd, c->use_sizes ? "sizes" : "scales");
    expect_f(label, n, in, 4, 0xE, nd, out, want);
    if (grad) {
        char gl[180];
        snprintf(gl, sizeof gl, "%s grad", label);
        oc_gradcheck(gl, n, in, 4, 0xE, 1, 0x1, 1e-2, 1e-3, 48); /* linear in X: exact up to rounding */
    }
    free(want);
    node_free(n);
    free_all(in, 4);
}

static void test_resize_reference(void) {
    static const rs_case cases[] = {
        {4, {2, 3, 5, 7}, 1, {0}, {2, 3, 8, 4}},               /* fused 2-D path: up H, down W */
        {4, {1, 2, 4, 6}, 0, {1, 1, 1.7f, 0.6f}, {0}},          /* non-integer scales */
        {4, {1, 1, 3, 4}, 0, {1, 1, 2, 3}, {0}},                /* integer upscale */
        {3, {2, 5, 6}, 0, {1, 2.5f, 0.5f}, {0}},                /* rank 3, fused */
        {5, {1, 2, 3, 4, 3}, 0, {1, 1, 1.5f, 0.75f, 2}, {0}},   /* rank 5: per-axis passes */
        {4, {3, 2, 3, 4}, 1, {0}, {2, 3, 2, 5}},                /* N and C resized too: passes */
        {1, {6}, 1, {0}, {4}},                                  /* rank 1 */
    };
    for (size_t ci = 0; ci < GC_ARRAY_LEN(cases); ci++) {
        int grad = ci != 2; /* every other shape also gets a gradient check */
        for (int ctm = 0; ctm < 6; ctm++) {
            for (int nm = 0; nm < 4; nm++) resize_case(&cases[ci], 0, ctm, nm, -0.75f, 0, grad);
            resize_case(&cases[ci], 1, ctm, 0, -0.75f, 0, grad);
            resize_case(&cases[ci], 2, ctm, 0, -0.75f, 0, grad);
            resize_case(&cases[ci], 2, ctm, 0, -0.5f, 1, grad);
        }
    }
}

/* Values from torch.nn.functional.interpolate on x[i] = sin(0.37 i + 0.1), (1, 2, 3, 5) -> (7, 4). */
static const float k_torch_bilinear_hp[56] = {0.143965f, 0.5622951f, 0.8640012f, 0.9919149f, 0.2525941f, 0.5707235f, 0.7712279f, 0.816115f, 0.5784814f, 0.596009f, 0.4929082f, 0.2887151f, 0.9043687f, 0.6212943f, 0.2145885f, -0.2386847f, 0.2414526f, -0.03272061f, -0.2983544f, -0.5051156f, -0.4214634f, -0.6867355f, -0.8112972f, -0.7715463f, -0.6424354f, -0.9047404f, -0.9822781f, -0.8603566f, -0.5502708f, -0.122619f, 0.3268241f, 0.7128965f, -0.3365558f, 0.03380163f, 0.3947262f, 0.6778287f, 0.3045891f, 0.5030637f, 0.5984327f, 0.5726253f, 0.9457339f, 0.9723257f, 0.8021391f, 0.4674219f, 0.5528482f, 0.3784827f, 0.1288162f, -0.1488434f, 0.1599626f, -0.2153602f, -0.5445066f, -0.7651086f, 0.02900072f, -0.4133079f, -0.7689475f, -0.9705304f};
static const float k_torch_bilinear_ac[56] = {0.09983341f, 0.5501386f, 0.8719584f, 0.9999576f, 0.3762089f, 0.5779659f, 0.6479059f, 0.5718298f, 0.6525843f, 0.6057933f, 0.4238535f, 0.143702f, 0.9289597f, 0.6336206f, 0.1998011f, -0.2844257f, 0.4153538f, 0.122621f, -0.1941609f, -0.4706797f, -0.09825214f, -0.3883785f, -0.588123f, -0.6569337f, -0.6118579f, -0.8993779f, -0.9820848f, -0.8431877f, -0.5917156f, -0.1379011f, 0.3415049f, 0.7491744f, -0.08181037f, 0.2331947f, 0.4922879f, 0.6428687f, 0.4280948f, 0.6042905f, 0.643071f, 0.5365631f, 0.938f, 0.9753863f, 0.793854f, 0.4302574f, 0.650236f, 0.5170199f, 0.2695487f, -0.04193636f, 0.3624721f, 0.05865344f, -0.2547566f, -0.5141302f, 0.07470829f, -0.3997128f, -0.7790617f, -0.9863239f};
static const float k_torch_bicubic_hp[56] = {0.04870732f, 0.5794986f, 0.9499025f, 1.13131f, 0.248131f, 0.6098781f, 0.8166677f, 0.8525277f, 0.7473605f, 0.7727403f, 0.6322157f, 0.3366404f, 0.9114365f, 0.6274086f, 0.2300912f, -0.2498282f, 0.3433673f, -0.02191239f, -0.3568628f, -0.6356132f, -0.4386575f, -0.7410314f, -0.8647656f, -0.8003035f, -0.8052905f, -1.10031f, -1.140901f, -0.9239278f, -0.7254865f, -0.2359385f, 0.2693096f, 0.751234f, -0.3667343f, 0.0379873f, 0.4061931f, 0.7094439f, 0.4079657f, 0.6777675f, 0.7846556f, 0.7203743f, 0.9452183f, 0.9933063f, 0.8270484f, 0.4592857f, 0.7231893f, 0.5109349f, 0.2050837f, -0.1707413f, 0.1691459f, -0.2456279f, -0.579079f, -0.8054527f, -0.05913866f, -0.5886046f, -0.9558421f, -1.132487f};
static const float k_torch_bicubic_ac[56] = {0.09983341f, 0.5733539f, 0.8845546f, 0.9999577f, 0.4464559f, 0.6801211f, 0.7424225f, 0.6266572f, 0.8391405f, 0.7904215f, 0.563229f, 0.1820022f, 0.9289597f, 0.6369568f, 0.2174526f, -0.2844256f, 0.5360128f, 0.1524755f, -0.2413302f, -0.6030414f, -0.08072319f, -0.4293502f, -0.6568108f, -0.7386357f, -0.611858f, -0.9244322f, -1.00441f, -0.843188f, -0.5917156f, -0.1274278f, 0.3361587f, 0.7491744f, -0.06217768f, 0.3044625f, 0.5774693f, 0.7274738f, 0.552344f, 0.7986911f, 0.845611f, 0.6880555f, 0.938f, 0.9946677f, 0.8191261f, 0.4302576f, 0.8361912f, 0.6737306f, 0.3669538f, -0.05113832f, 0.4314693f, 0.08713936f, -0.2549782f, -0.5580806f, 0.0747083f, -0.4208137f, -0.7876451f, -0.986324f};
static const float k_torch_nearest[56] = {0.09983341f, 0.4528863f, 0.7446431f, 0.935616f, 0.09983341f, 0.4528863f, 0.7446431f, 0.935616f, 0.09983341f, 0.4528863f, 0.7446431f, 0.935616f, 0.9289597f, 0.7322314f, 0.4363991f, 0.08150215f, 0.9289597f, 0.7322314f, 0.4363991f, 0.08150215f, -0.6118579f, -0.856478f, -0.9851778f, -0.9805384f, -0.6118579f, -0.856478f, -0.9851778f, -0.9805384f, -0.5917156f, -0.2601575f, 0.1066117f, 0.4589515f, -0.5917156f, -0.2601575f, 0.1066117f, 0.4589515f, -0.5917156f, -0.2601575f, 0.1066117f, 0.4589515f, 0.938f, 0.9998717f, 0.9264155f, 0.7275733f, 0.938f, 0.9998717f, 0.9264155f, 0.7275733f, 0.07470829f, -0.2909523f, -0.6172339f, -0.8599757f, 0.07470829f, -0.2909523f, -0.6172339f, -0.8599757f};

static void test_resize_torch(void) {
    static const struct {
        const char *label, *mode, *ctm, *nm;
        const float *want;
    } cases[] = {
        {"Resize vs torch bilinear", "linear", "pytorch_half_pixel", NULL, k_torch_bilinear_hp},
        {"Resize vs torch bilinear half_pixel", "linear", "half_pixel", NULL, k_torch_bilinear_hp},
        {"Resize vs torch bilinear align_corners", "linear", "align_corners", NULL, k_torch_bilinear_ac},
        {"Resize vs torch bicubic", "cubic", "half_pixel", NULL, k_torch_bicubic_hp},
        {"Resize vs torch bicubic align_corners", "cubic", "align_corners", NULL, k_torch_bicubic_ac},
        {"Resize vs torch nearest", "nearest", "asymmetric", "floor", k_torch_nearest},
    };
    for (size_t c = 0; c < GC_ARRAY_LEN(cases); c++) {
        gc_tensor in[4] = {oc_tensor(GC_F32, 4, DIMS(1, 2, 3, 5)), none(), none(), ti1(4, IV(1, 2, 7, 4))};
        for (int i = 0; i < 30; i++) ((float *)in[0].data)[i] = (float)sin(0.37 * i + 0.1);
        gc_node *n = oc_node("Resize", 13, 4, 1);
        oc_attr_s(n, "mode", cases[c].mode);
        oc_attr_s(n, "coordinate_transformation_mode", cases[c].ctm);
        if (cases[c].nm) oc_attr_s(n, "nearest_mode", cases[c].nm);
        expect_f(cases[c].label, n, in, 4, 0x8, 4, DIMS(1, 2, 7, 4), cases[c].want);
        node_free(n);
        free_all(in, 4);
    }
}

/* Cases from the ONNX backend test data (test_resize_*), inputs 1..16. */
static void test_resize_onnx(void) {
    float ramp16[16];
    for (int i = 0; i < 16; i++) ramp16[i] = (float)(i + 1);
    { /* tf_crop_and_resize with extrapolation */
        gc_tensor in[4] = {tf(4, DIMS(1, 1, 4, 4), ramp16), tf(1, DIMS(8), FV(0, 0, 0.4f, 0.6f, 1, 1, 1.2f, 1.7f)), none(),
                           ti1(4, IV(1, 1, 3, 3))};
        gc_node *n = oc_node("Resize", 13, 4, 1);
        oc_attr_s(n, "mode", "linear");
        oc_attr_s(n, "coordinate_transformation_mode", "tf_crop_and_resize");
        oc_attr_f(n, "extrapolation_value", 10);
        expect_f("Resize onnx tf_crop_and_resize", n, in, 4, 0xE, 4, DIMS(1, 1, 3, 3),
                 FV(7.6f, 10, 10, 12.4f, 10, 10, 10, 10, 10));
        oc_gradcheck("Resize grad tf_crop_and_resize", n, in, 4, 0xE, 1, 0x1, 1e-2, 1e-3, 16);
        node_free(n);
        free_all(in, 4);
    }
    { /* align_corners with scales uses the fractional resized length */
        gc_tensor in[3] = {tf(4, DIMS(1, 1, 2, 4), ramp16), none(), tf(1, DIMS(4), FV(1, 1, 0.6f, 0.6f))};
        gc_node *n = oc_node("Resize", 13, 3, 1);
        oc_attr_s(n, "mode", "linear");
        oc_attr_s(n, "coordinate_transformation_mode", "align_corners");
        expect_f("Resize onnx downsample linear align_corners", n, in, 3, 0x6, 4, DIMS(1, 1, 1, 2), FV(1, 3.142857f));
        node_free(n);
        free_all(in, 3);
    }
    { /* cubic A=-0.5 exclude_outside downsample */
        gc_tensor in[3] = {tf(4, DIMS(1, 1, 4, 4), ramp16), none(), tf(1, DIMS(4), FV(1, 1, 0.8f, 0.8f))};
        gc_node *n = oc_node("Resize", 13, 3, 1);
        oc_attr_s(n, "mode", "cubic");
        oc_attr_f(n, "cubic_coeff_a", -0.5f);
        oc_attr_i(n, "exclude_outside", 1);
        expect_f("Resize onnx cubic exclude_outside", n, in, 3, 0x6, 4, DIMS(1, 1, 3, 3),
                 FV(1.3681267f, 2.6695013f, 4.0133367f, 6.573625f, 7.875f, 9.218835f, 11.948966f, 13.250341f, 14.594176f));
        node_free(n);
        free_all(in, 3);
    }
    { /* tf_half_pixel_for_nn (opset 11, empty roi and scales tensors mean absent) */
        gc_tensor in[4] = {tf(4, DIMS(1, 1, 4, 4), ramp16), oc_tensor(GC_F32, 1, DIMS(0)), oc_tensor(GC_F32, 1, DIMS(0)),
                           ti1(4, IV(1, 1, 3, 2))};
        gc_node *n = oc_node("Resize", 11, 4, 1);
        oc_attr_s(n, "mode", "nearest");
        oc_attr_s(n, "coordinate_transformation_mode", "tf_half_pixel_for_nn");
        expect_f("Resize onnx tf_half_pixel_for_nn", n, in, 4, 0xE, 4, DIMS(1, 1, 3, 2), FV(6, 8, 10, 12, 14, 16));
        node_free(n);
        free_all(in, 4);
    }
    { /* pytorch_half_pixel to a length of 1 */
        gc_tensor in[4] = {tf(4, DIMS(1, 1, 4, 4), ramp16), none(), none(), ti1(4, IV(1, 1, 3, 1))};
        gc_node *n = oc_node("Resize", 13, 4, 1);
        oc_attr_s(n, "mode", "linear");
        oc_attr_s(n, "coordinate_transformation_mode", "pytorch_half_pixel");
        expect_f("Resize onnx pytorch_half_pixel", n, in, 4, 0x8, 4, DIMS(1, 1, 3, 1), FV(1.6666666f, 7, 12.333333f));
        node_free(n);
        free_all(in, 4);
    }
    { /* errors: both scales and sizes; neither; wrong count; unknown mode */
        gc_tensor in[4] = {oc_rand(4, DIMS(1, 1, 2, 2), 0, 1), none(), tf(1, DIMS(4), FV(1, 1, 2, 2)), ti1(4, IV(1, 1, 4, 4))};
        gc_node *n = oc_node("Resize", 13, 4, 1);
        expect_fail("Resize scales and sizes", n, in, 4, 0xE, 1);
        expect_fail("Resize no scales, no sizes", n, in, 2, 0x2, 1);
        expect_fail("Resize non-constant sizes", n, in, 4, 0x6, 1);
        node_free(n);
        oc_tensor_free(&in[3]);
        in[3] = none();
        oc_tensor_free(&in[2]);
        in[2] = tf(1, DIMS(3), FV(1, 2, 2));
        n = oc_node("Resize", 13, 3, 1);
        expect_fail("Resize scales count", n, in, 3, 0x6, 1);
        node_free(n);
        n = oc_node("Resize", 13, 3, 1);
        oc_attr_s(n, "mode", "area");
        expect_fail("Resize mode", n, in, 3, 0x6, 1);
        node_free(n);
        free_all(in, 4);
    }
}

/* Opset <= 10 (Upsample 7/9, Resize 10): x / scale, nearest truncates (ceil when shrinking). */
static void test_upsample(void) {
    {
        gc_tensor in[2] = {tf(4, DIMS(1, 1, 2, 2), FV(1, 2, 3, 4)), tf(1, DIMS(4), FV(1, 1, 2, 3))};
        gc_node *n = oc_node("Upsample", 9, 2, 1);
        oc_attr_s(n, "mode", "nearest");
        const float want[24] = {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4};
        expect_f("Upsample 9 nearest", n, in, 2, 0x2, 4, DIMS(1, 1, 4, 6), want);
        node_free(n);
        n = oc_node("Upsample", 7, 1, 1);
        oc_attr_floats(n, "scales", 4, FV(1, 1, 2, 3));
        expect_f("Upsample 7 nearest", n, in, 1, 0, 4, DIMS(1, 1, 4, 6), want);
        node_free(n);
        n = oc_node("Upsample", 7, 1, 1);
        oc_attr_floats(n, "scales", 4, FV(1, 1, 2, 2));
        oc_attr_s(n, "mode", "linear");
        expect_f("Upsample 7 linear", n, in, 1, 0, 4, DIMS(1, 1, 4, 4),
                 FV(1, 1.5f, 2, 2, 2, 2.5f, 3, 3, 3, 3.5f, 4, 4, 3, 3.5f, 4, 4));
        node_free(n);
        free_all(in, 2);
    }
    static const char *const modes[] = {"nearest", "linear"};
    for (int m = 0; m < 2; m++) {
        for (int op = 0; op < 2; op++) {
            const float sc[4] = {1, 1, op ? 0.6f : 2.5f, op ? 0.75f : 1.5f};
            gc_tensor in[2] = {oc_rand(4, DIMS(2, 2, 5, 4), -1, 1), tf(1, DIMS(4), sc)};
            gc_node *n = oc_node(op ? "Resize" : "Upsample", op ? 10 : 9, 2, 1);
            oc_attr_s(n, "mode", modes[m]);
            double scale[4], len[4];
            int64_t out[4], xst[4], ny = 1;
            gc_shape_strides(xst, &in[0].shape);
            for (int d = 0; d < 4; d++) {
                scale[d] = sc[d];
                len[d] = scale[d] * (double)in[0].shape.d[d];
                ny *= (out[d] = (int64_t)floor(len[d]));
            }
            rref r = {.mode = m, .ctm = 3, .nm = 4, .scale = scale, .len = len, .nd = 4, .in = in[0].shape.d,
                      .out = out, .xst = xst, .x = in[0].data};
            float *want = malloc((size_t)ny * sizeof(float));
            ref_resize(want, &r);
            char label[96];
            snprintf(label, sizeof label, "%s %s", op ? "Resize 10" : "Upsample 9", modes[m]);
            expect_f(label, n, in, 2, 0x2, 4, out, want);
            snprintf(label, sizeof label, "%s %s grad", op ? "Resize 10" : "Upsample 9", modes[m]);
            oc_gradcheck(label, n, in, 2, 0x2, 1, 0x1, 1e-2, 1e-3, 48);
            free(want);
            node_free(n);
            free_all(in, 2);
        }
    }
}

/* Large tensors: the parallel fused paths (with the row cache) and parallel per-axis passes,
 * against the reference. */
static void test_resize_large(void) {
    static const char *const modes[] = {"nearest", "linear", "cubic"};
    for (int m = 0; m < 3; m++) {
        gc_tensor in[3] = {oc_rand(4, DIMS(2, 8, 33, 47), -1, 1), none(), tf(1, DIMS(4), FV(1, 1, 2, 1.5f))};
        gc_node *n = oc_node("Resize", 13, 3, 1);
        oc_attr_s(n, "mode", modes[m]);
        double scale[4] = {1, 1, 2, 1.5}, len[4];
        int64_t out[4], xst[4], ny = 1;
        gc_shape_strides(xst, &in[0].shape);
        for (int d = 0; d < 4; d++) {
            len[d] = scale[d] * (double)in[0].shape.d[d];
            ny *= (out[d] = (int64_t)floor(len[d]));
        }
        rref r = {.mode = m, .ctm = 0, .nm = 0, .a = -0.75, .scale = scale, .len = len, .nd = 4, .in = in[0].shape.d,
                  .out = out, .xst = xst, .x = in[0].data};
        float *want = malloc((size_t)ny * sizeof(float));
        ref_resize(want, &r);
        char label[64];
        snprintf(label, sizeof label, "Resize large %s", modes[m]);
        expect_f(label, n, in, 3, 0x6, 4, out, want);
        snprintf(label, sizeof label, "Resize large %s grad", modes[m]);
        oc_gradcheck(label, n, in, 3, 0x6, 1, 0x1, 1e-2, 1e-3, 24);
        free(want);
        node_free(n);
        free_all(in, 3);
    }
}

int main(void) {
    oc_seed(12345);
    test_concat();
    test_split();
    test_views();
    test_transpose();
    test_slice();
    test_gather();
    test_expand_tile();
    test_small_ops();
    test_pad();
    test_resize_reference();
    test_resize_torch();
    test_resize_onnx();
    test_upsample();
    test_resize_large();
    printf("%d passed, %d failed\n", oc_checks - oc_failures, oc_failures);
    return oc_failures != 0;
}

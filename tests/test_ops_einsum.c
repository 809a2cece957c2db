/* Tests of einsum.c (Einsum): equations of every kind (matrix products in every layout, batched,
 * MaxViT's spaced upper-case attention equations, transposes, sums, traces and diagonals, outer and
 * dot products, implicit outputs, ellipses that broadcast, three and four operands, outputs that
 * need packing) against a naive reference that sums the product over every label assignment in
 * double; gradients of every operand against central finite differences (each operand enters
 * linearly); and the equations and shapes it must refuse. */
#include "opcheck.h"

#include <math.h>

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})

/* ---- the reference: letters only, explicit output, size-1 dims broadcast ---------------------- */

static void ref_einsum(const char *eq, gc_tensor *in, int n, double *out, int64_t *numel) {
    char terms[8][16];
    int nt = 0, len = 0;
    for (const char *c = eq;; c++) {
        if (*c == ',' || *c == '-' || !*c) {
            terms[nt][len] = 0;
            nt++, len = 0;
            if (*c == '-') c++;
            if (!*c) break;
        } else
            terms[nt][len++] = *c;
    }
    int64_t ext[128] = {0};
    for (int i = 0; i < n; i++)
        for (int d = 0; terms[i][d]; d++) {
            int64_t x = in[i].shape.d[d];
            if (x > ext[(int)terms[i][d]]) ext[(int)terms[i][d]] = x;
        }
    char labs[64];
    int nl = 0;
    for (int c = 0; c < 128; c++)
        if (ext[c] > 0) labs[nl++] = (char)c;
    const char *o = terms[n];
    *numel = 1;
    for (int d = 0; o[d]; d++) *numel *= ext[(int)o[d]];
    for (int64_t e = 0; e < *numel; e++) out[e] = 0;
    int64_t idx[128] = {0};
    for (;;) {
        double p = 1;
        for (int i = 0; i < n; i++) {
            int64_t off = 0;
            for (int d = 0; terms[i][d]; d++) {
                int64_t x = in[i].shape.d[d];
                off = off * x + (x == 1 ? 0 : idx[(int)terms[i][d]]);
            }
            p *= ((const float *)in[i].data)[off];
        }
        int64_t off = 0;
        for (int d = 0; o[d]; d++) off = off * ext[(int)o[d]] + idx[(int)o[d]];
        out[off] += p;
        int a = nl - 1;
        for (; a >= 0; a--) {
            if (++idx[(int)labs[a]] < ext[(int)labs[a]]) break;
            idx[(int)labs[a]] = 0;
        }
        if (a < 0) break;
    }
}

typedef struct ecase {
    const char *eq;      /* the equation under test */
    const char *ref;     /* the same with letters only and an explicit output, for the reference */
    int n;
    int nd[4];
    int64_t d[4][6];
} ecase;

static const ecase cases[] = {
    {"ij,jk->ik", "ij,jk->ik", 2, {2, 2}, {{3, 4}, {4, 5}}},
    {"ij,jk", "ij,jk->ik", 2, {2, 2}, {{3, 4}, {4, 5}}},
    {"ij,kj->ik", "ij,kj->ik", 2, {2, 2}, {{3, 4}, {5, 4}}},
    {"ji,jk->ik", "ji,jk->ik", 2, {2, 2}, {{4, 3}, {4, 5}}},
    {"ij,jk->ki", "ij,jk->ki", 2, {2, 2}, {{3, 4}, {4, 5}}},
    {"bij,bjk->bik", "bij,bjk->bik", 2, {3, 3}, {{2, 3, 4}, {2, 4, 5}}},
    {"bij,bjk->ikb", "bij,bjk->ikb", 2, {3, 3}, {{2, 3, 4}, {2, 4, 5}}},
    {"B G H I D, B G H J D -> B G H I J", "BGHID,BGHJD->BGHIJ", 2, {5, 5}, {{1, 3, 2, 4, 5}, {1, 3, 2, 4, 5}}},
    {"BGHIJ,BGHJD->BGHID", "BGHIJ,BGHJD->BGHID", 2, {5, 5}, {{2, 2, 2, 3, 4}, {2, 2, 2, 4, 5}}},
    {"ij->ji", "ij->ji", 1, {2}, {{3, 4}}},
    {"ij->", "ij->", 1, {2}, {{3, 4}}},
    {"ijk->kj", "ijk->kj", 1, {3}, {{2, 3, 4}}},
    {"ii->i", "ii->i", 1, {2}, {{4, 4}}},
    {"ii", "ii->", 1, {2}, {{4, 4}}},
    {"iij,jk->ik", "iij,jk->ik", 2, {3, 2}, {{3, 3, 4}, {4, 2}}},
    {"i,i->", "i,i->", 2, {1, 1}, {{7}, {7}}},
    {"i,j->ij", "i,j->ij", 2, {1, 1}, {{3}, {4}}},
    {"ij,ij->ij", "ij,ij->ij", 2, {2, 2}, {{3, 4}, {3, 4}}},
    {"ij,kl->", "ij,kl->", 2, {2, 2}, {{2, 3}, {3, 2}}},
    {"ik,jk->kji", "ik,jk->kji", 2, {2, 2}, {{3, 4}, {2, 4}}},
    {"ijk,ikj->i", "ijk,ikj->i", 2, {3, 3}, {{2, 3, 4}, {2, 4, 3}}},
    {"bn,anm,bm->ba", "bn,anm,bm->ba", 3, {2, 3, 2}, {{2, 3}, {4, 3, 5}, {2, 5}}},
    {"ij,jk,kl->il", "ij,jk,kl->il", 3, {2, 2, 2}, {{2, 3}, {3, 4}, {4, 2}}},
    {"a,b,c,d->abdc", "a,b,c,d->abdc", 4, {1, 1, 1, 1}, {{2}, {3}, {2}, {3}}},
    {"...ij,...jk->...ik", "abij,bjk->abik", 2, {4, 3}, {{2, 1, 3, 4}, {5, 4, 2}}},
    {"...ij,...jk", "abij,bjk->abik", 2, {4, 3}, {{2, 1, 3, 4}, {5, 4, 2}}},
    {"i...j->...", "iabj->ab", 1, {4}, {{2, 3, 2, 4}}},
    {"...i,...i->...", "abi,abi->ab", 2, {3, 3}, {{2, 3, 4}, {2, 1, 4}}},
    {"ij,j->i", "ij,j->i", 2, {2, 1}, {{3, 1}, {4}}},
    {"bhqd,bhkd->bhqk", "bhqd,bhkd->bhqk", 2, {4, 4}, {{2, 1, 3, 4}, {2, 3, 5, 4}}},
};

static void test_cases(void) {
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const ecase *k = &cases[c];
        gc_tensor in[4];
        for (int i = 0; i < k->n; i++) in[i] = oc_rand(k->nd[i], k->d[i], -1, 1);
        gc_node *n = oc_node("Einsum", 12, k->n, 1);
        oc_attr_s(n, "equation", k->eq);
        gc_tensor out;
        gc_err err = {0};
        char label[96];
        snprintf(label, sizeof label, "einsum '%s'", k->eq);
        if (oc_check(oc_forward(n, in, k->n, 0, &out, 1, &err) == GCAM_OK, "%s: forward failed: %s", label, err.msg)) {
            double want[4096];
            int64_t m;
            ref_einsum(k->ref, in, k->n, want, &m);
            if (oc_check(gc_numel(&out) == m, "%s: %lld elements, reference %lld", label, (long long)gc_numel(&out),
                         (long long)m)) {
                float w[4096];
                for (int64_t e = 0; e < m; e++) w[e] = (float)want[e];
                oc_close(label, out.data, w, m, 1e-5, 1e-5);
            }
            oc_tensor_free(&out);
            oc_gradcheck(label, n, in, k->n, 0, 1, (1u << k->n) - 1, 1e-2, 1e-3, 100);
        }
        oc_node_free(n);
        for (int i = 0; i < k->n; i++) oc_tensor_free(&in[i]);
    }
}

/* Many small batches (the threaded batch loop) and one large GEMM, against the reference. */
static void test_sizes(void) {
    static const struct { const char *eq; int64_t a[3], b[3]; } big[] = {
        {"bij,bjk->bik", {33, 5, 7}, {33, 7, 6}},
        {"bij,bkj->bki", {3, 70, 65}, {3, 40, 65}},
    };
    for (int c = 0; c < 2; c++) {
        gc_tensor in[2] = {oc_rand(3, big[c].a, -1, 1), oc_rand(3, big[c].b, -1, 1)};
        gc_node *n = oc_node("Einsum", 12, 2, 1);
        oc_attr_s(n, "equation", big[c].eq);
        gc_tensor out;
        gc_err err = {0};
        if (oc_check(oc_forward(n, in, 2, 0, &out, 1, &err) == GCAM_OK, "%s: %s", big[c].eq, err.msg)) {
            int64_t m = gc_numel(&out), r;
            double *want = malloc((size_t)m * sizeof(double));
            float *w = malloc((size_t)m * sizeof(float));
            ref_einsum(big[c].eq, in, 2, want, &r);
            for (int64_t e = 0; e < m; e++) w[e] = (float)want[e];
            oc_close(big[c].eq, out.data, w, m, 1e-4, 1e-4);
            free(want);
            free(w);
            oc_tensor_free(&out);
            oc_gradcheck(big[c].eq, n, in, 2, 0, 1, 0x3, 1e-2, 1e-3, 40);
        }
        oc_node_free(n);
        oc_tensor_free(&in[0]);
        oc_tensor_free(&in[1]);
    }
}

/* Empty operands: a zero output of the right shape. */
static void test_empty(void) {
    gc_tensor in[2] = {oc_rand(2, DIMS(3, 0), -1, 1), oc_rand(2, DIMS(0, 2), -1, 1)};
    gc_node *n = oc_node("Einsum", 12, 2, 1);
    oc_attr_s(n, "equation", "ij,jk->ik");
    gc_tensor out;
    gc_err err = {0};
    if (oc_check(oc_forward(n, in, 2, 0, &out, 1, &err) == GCAM_OK, "empty K: %s", err.msg)) {
        const float *y = out.data;
        oc_check(gc_numel(&out) == 6 && y[0] == 0 && y[5] == 0, "empty K: output not zero");
        oc_tensor_free(&out);
    }
    oc_node_free(n);
    oc_tensor_free(&in[0]);
    oc_tensor_free(&in[1]);
}

static void expect_parse_fail(const char *eq, int n_in) {
    gc_node *n = oc_node("Einsum", 12, n_in, 1);
    oc_attr_s(n, "equation", eq);
    gc_err err = {0};
    oc_check(gc_op_get(gc_op_find("Einsum"))->parse(n, &err) != GCAM_OK && err.msg[0], "'%s': expected a parse error", eq);
    oc_node_free(n);
}

static void expect_run_fail(const char *label, const char *eq, int nd0, const int64_t *d0, int nd1, const int64_t *d1) {
    gc_tensor in[2] = {oc_rand(nd0, d0, -1, 1), oc_rand(nd1, d1, -1, 1)};
    gc_node *n = oc_node("Einsum", 12, 2, 1);
    oc_attr_s(n, "equation", eq);
    gc_tensor out;
    gc_err err = {0};
    memset(&out, 0, sizeof out);
    gcam_status st = oc_forward(n, in, 2, 0, &out, 1, &err);
    oc_check(st != GCAM_OK && err.msg[0], "%s: expected an error", label);
    if (!st) oc_tensor_free(&out);
    oc_node_free(n);
    oc_tensor_free(&in[0]);
    oc_tensor_free(&in[1]);
}

static void test_errors(void) {
    expect_parse_fail("ij,jk->ik", 1);      /* more terms than inputs */
    expect_parse_fail("ij->ij", 2);         /* fewer */
    expect_parse_fail("i2,j->ij", 2);       /* not a letter */
    expect_parse_fail("ij,jk->iz", 2);      /* output letter in no input */
    expect_parse_fail("ij,jk->ii", 2);      /* repeated output letter */
    expect_parse_fail("i..j,jk->ik", 2);    /* broken ellipsis */
    expect_parse_fail("...i...,i->i", 2);   /* two ellipses */
    expect_parse_fail("ij,jk=>ik", 2);      /* not an arrow */
    expect_parse_fail("abcdefghi,j->abcdefghij", 2); /* rank beyond the supported */
    expect_run_fail("rank mismatch", "ij,jk->ik", 3, DIMS(2, 3, 4), 2, DIMS(4, 5));
    expect_run_fail("extent mismatch", "ij,jk->ik", 2, DIMS(2, 3), 2, DIMS(4, 5));
    expect_run_fail("diagonal of unequal extents", "ii,ij->j", 2, DIMS(2, 3), 2, DIMS(2, 3));
    expect_run_fail("ellipses that do not broadcast", "...i,...i->...", 2, DIMS(2, 3), 2, DIMS(4, 3));
}

int main(void) {
    oc_seed(4242);
    test_cases();
    test_sizes();
    test_empty();
    test_errors();
    printf("%d passed, %d failed\n", oc_checks - oc_failures, oc_failures);
    return oc_failures != 0;
}

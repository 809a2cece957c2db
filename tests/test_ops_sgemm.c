/* src/ops/sgemm.c on every path this CPU runs (portable C always; AVX2 + FMA and AVX-512F when the
 * CPU has them: a CPU without them cannot run those paths, so they are listed as not run, never
 * failed), against a double-precision reference: shapes with M, N, K = 1, odd sizes and every edge
 * of the 8 x 48 / 4 x 24 / 4 x 16 tiles and the 256-deep K blocks (N one and two past a strip:
 * those columns go with the strip before, sgemm.c's sg_dot), both transposes, strides past
 * the matrices' widths, alpha and beta (beta = 0 must not read C: C starts as NaN), the fused
 * Relu (M or N under 4 go to cblas_sgemm: checked the same way). Tolerance, per element: (K + 2) * 2^-23 * (|alpha| sum_k |a_ik b_kj| +
 * |beta c_ij|) * 2 (the standard bound gamma_K for a sum of K products, with room for the alpha
 * and beta roundings). Also: one and two threads give bit-identical results (each element is
 * summed by one thread in one order), and the knobs map onto the paths (gc_sg_isa). The epilogue
 * (gc_sg_epi: bias, residual, clamp, SiLU) on every path, cblas included: see test_epi. */
#include "opcheck.h"
#include "ops/sgemm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mat {
    float *p;
    int64_t rows, cols, ld;
} mat;

static mat mat_rand(int64_t rows, int64_t cols, int64_t pad) {
    mat m = {NULL, rows, cols, cols + pad};
    m.p = malloc((size_t)(rows * m.ld + 1) * sizeof(float));
    for (int64_t i = 0; i < rows * m.ld + 1; i++) m.p[i] = (float)(oc_urand() * 2.0 - 1.0);
    return m;
}

/* op(X)[i][k] */
static double at(const mat *x, int t, int64_t i, int64_t k) { return t ? x->p[k * x->ld + i] : x->p[i * x->ld + k]; }

/* One case: C = alpha op(A) op(B) + beta C (then Relu) on path isa, threads nt. Returns the
 * result (caller frees) for the thread comparison. */
static float *run_case(int isa, int nt, int relu, int ta, int tb, int64_t M, int64_t N, int64_t K,
                       float alpha, float beta, uint64_t seed) {
    oc_seed(seed);
    const int64_t pad = (M + N + K) % 3; /* strides past the widths */
    mat A = ta ? mat_rand(K, M, pad) : mat_rand(M, K, pad);
    mat B = tb ? mat_rand(N, K, pad) : mat_rand(K, N, pad);
    mat C = mat_rand(M, N, pad);
    if (beta == 0.0f)
        for (int64_t i = 0; i < M * C.ld; i++) C.p[i] = NAN; /* must not be read */
    float *c0 = malloc((size_t)(M * C.ld + 1) * sizeof(float));
    memcpy(c0, C.p, (size_t)(M * C.ld + 1) * sizeof(float));
    gc_sg_gemm_relu(isa, nt, ta, tb, M, N, K, alpha, A.p, A.ld, B.p, B.ld, beta, C.p, C.ld, relu);
    int bad = 0;
    double worst = 0.0;
    for (int64_t i = 0; i < M && bad < 3; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0.0, mag = 0.0;
            for (int64_t k = 0; k < K; k++) {
                const double p = at(&A, ta, i, k) * (tb ? B.p[j * B.ld + k] : B.p[k * B.ld + j]);
                s += p;
                mag += fabs(p);
            }
            double want = alpha * s, cij = beta == 0.0f ? 0.0 : c0[i * C.ld + j];
            want += beta == 0.0f ? 0.0 : beta * cij;
            if (relu && want < 0.0) want = 0.0;
            const double tol = (double)(K + 2) * ldexp(1.0, -23) * (fabs(alpha) * mag + fabs(beta * cij)) * 2.0 + 1e-30;
            const double got = C.p[i * C.ld + j], err = fabs(got - want);
            if (!(err <= tol)) {
                if (bad++ == 0)
                    printf("  %s %s ta=%d tb=%d M=%lld N=%lld K=%lld alpha=%g beta=%g relu=%d nt=%d: C[%lld][%lld] = %.9g, "
                           "want %.9g (tol %.3g)\n",
                           gc_sg_isa_name(isa), "gemm", ta, tb, (long long)M, (long long)N,
                           (long long)K, alpha, beta, relu, nt, (long long)i, (long long)j, got, want, tol);
            }
            if (tol > 0 && err / tol > worst) worst = err / tol;
        }
    /* the padding between rows stays as it was */
    for (int64_t i = 0; i < M && !bad; i++)
        for (int64_t j = N; j < C.ld; j++)
            if (memcmp(&C.p[i * C.ld + j], &c0[i * C.ld + j], sizeof(float))) bad++;
    oc_check(bad == 0, "%s %s ta=%d tb=%d M=%lld N=%lld K=%lld alpha=%g beta=%g: %d bad", gc_sg_isa_name(isa),
             relu ? "relu" : "gemm", ta, tb, (long long)M, (long long)N, (long long)K, alpha, beta, bad);
    float *out = malloc((size_t)(M * N + 1) * sizeof(float));
    for (int64_t i = 0; i < M; i++) memcpy(out + i * N, C.p + i * C.ld, (size_t)N * sizeof(float));
    free(A.p);
    free(B.p);
    free(C.p);
    free(c0);
    return out;
}

static void test_path(int isa) {
    static const int64_t Ms[] = {1, 3, 4, 5, 8, 9, 16, 17, 33, 64};
    static const int64_t Ns[] = {1, 7, 8, 15, 16, 17, 18, 24, 25, 26, 47, 48, 49, 50, 97, 130};
    static const int64_t Ks[] = {1, 2, 9, 255, 256, 257, 600};
    static const float ab[][2] = {{1.0f, 0.0f}, {1.0f, 1.0f}, {0.5f, -1.5f}, {-2.0f, 0.0f}, {1.0f, 0.25f}};
    int n = 0;
    const int before = oc_failures;
    /* every M and N edge against a short and a blocked K, cycling the transposes and alpha/beta */
    for (size_t im = 0; im < sizeof Ms / sizeof *Ms; im++)
        for (size_t in = 0; in < sizeof Ns / sizeof *Ns; in++) {
            const int64_t K = Ks[(im + 2 * in) % (sizeof Ks / sizeof *Ks)];
            const int ta = (int)(im + in) & 1, tb = (int)(im / 2 + in) & 1;
            const float *x = ab[(im * 3 + in) % (sizeof ab / sizeof *ab)];
            free(run_case(isa, 1, (im + in) % 3 == 0, ta, tb, Ms[im], Ns[in], K, x[0], x[1], 100 + im * 31 + in));
            n++;
        }
    /* every K with a few shapes, with and without Relu */
    for (size_t ik = 0; ik < sizeof Ks / sizeof *Ks; ik++)
        for (int relu = 0; relu < 2; relu++) {
            free(run_case(isa, 1, relu, (int)ik & 1, relu, 17, 49, Ks[ik], 1.0f, relu ? 1.0f : 0.0f, 7 + ik));
            free(run_case(isa, 1, relu, 0, 0, 64, 130, Ks[ik], 1.0f, 0.0f, 9 + ik));
            n += 2;
        }
    /* K = 0 and alpha = 0: C = beta C */
    free(run_case(isa, 1, 0, 0, 0, 5, 9, 0, 1.0f, 0.5f, 3));
    free(run_case(isa, 1, 1, 1, 1, 5, 9, 4, 0.0f, 2.0f, 4));
    /* threads: one and two give the same bits (strip split and panel split) */
    static const int64_t big[][3] = {{64, 3136, 64}, {512, 49, 300}, {96, 200, 520}};
    for (int s = 0; s < 3; s++)
        for (int ta = 0; ta < 2; ta++) {
            const int64_t M = big[s][0], N = big[s][1], K = big[s][2];
            float *r1 = run_case(isa, 1, ta, ta, s == 2, M, N, K, 1.0f, 1.0f, 55 + s);
            float *r2 = run_case(isa, 2, ta, ta, s == 2, M, N, K, 1.0f, 1.0f, 55 + s);
            float *r3 = run_case(isa, 2, ta, ta, s == 2, M, N, K, 1.0f, 1.0f, 55 + s);
            oc_check(!memcmp(r1, r2, (size_t)(M * N) * sizeof(float)) && !memcmp(r2, r3, (size_t)(M * N) * sizeof(float)),
                     "%s %lldx%lldx%lld ta=%d: 1 and 2 threads, two runs: bit-identical", gc_sg_isa_name(isa),
                     (long long)M, (long long)N, (long long)K, ta);
            free(r1);
            free(r2);
            free(r3);
            n += 3;
        }
    printf("%s: %d cases, %d failed\n", gc_sg_isa_name(isa), n + 2, oc_failures - before);
}

/* ---- the epilogue (gc_sg_epi): bias per row, a residual operand, then clamp or SiLU */

static const char *act_name(int act) { return act == GC_ACT_CLAMP ? "clamp" : act == GC_ACT_SILU ? "silu" : "none"; }

/* C = alpha op(A) op(B) + beta C + bias + res, then act, on path isa: checked (1) against a double
 * reference before the activation (the GEMM tolerance above, plus |bias| + |res| roundings), and
 * (2) bit for bit against the same call without the activation followed by kmath.h's scalar
 * gc_act1 (what the standalone Clip / Sigmoid + Mul kernels compute): the fused activation must be
 * that function on every path. Returns the result (caller frees). */
static float *run_epi(int isa, int nt, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, float beta,
                      int use_bias, int use_res, int act, float lo, float hi, uint64_t seed) {
    oc_seed(seed);
    const int64_t pad = (M + 2 * N + K) % 3;
    mat A = ta ? mat_rand(K, M, pad) : mat_rand(M, K, pad);
    mat B = tb ? mat_rand(N, K, pad) : mat_rand(K, N, pad);
    mat C = mat_rand(M, N, pad), R = mat_rand(M, N, (pad + 1) % 3), bias = mat_rand(1, M, 0);
    if (beta == 0.0f)
        for (int64_t i = 0; i < M * C.ld; i++) C.p[i] = NAN; /* must not be read */
    const size_t cb = (size_t)(M * C.ld + 1) * sizeof(float);
    float *c0 = malloc(cb), *plain = malloc(cb);
    memcpy(c0, C.p, cb);
    memcpy(plain, C.p, cb);
    gc_sg_epi e = {use_bias ? bias.p : NULL, use_res ? R.p : NULL, R.ld, act, lo, hi};
    gc_sg_gemm_epi(isa, nt, ta, tb, M, N, K, alpha, A.p, A.ld, B.p, B.ld, beta, C.p, C.ld, &e);
    e.act = GC_ACT_NONE;
    gc_sg_gemm_epi(isa, nt, ta, tb, M, N, K, alpha, A.p, A.ld, B.p, B.ld, beta, plain, C.ld, &e);
    int bad = 0, diff = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0.0, mag = 0.0;
            for (int64_t k = 0; k < K; k++) {
                const double p = at(&A, ta, i, k) * (tb ? B.p[j * B.ld + k] : B.p[k * B.ld + j]);
                s += p;
                mag += fabs(p);
            }
            const double cij = beta == 0.0f ? 0.0 : c0[i * C.ld + j];
            const double bi = use_bias ? bias.p[i] : 0.0, rij = use_res ? R.p[i * R.ld + j] : 0.0;
            const double want = alpha * s + beta * cij + bi + rij;
            const double tol = (double)(K + 4) * ldexp(1.0, -23) *
                                   (fabs(alpha) * mag + fabs(beta * cij) + fabs(bi) + fabs(rij)) * 2.0 + 1e-30;
            const float got = plain[i * C.ld + j], fused = C.p[i * C.ld + j], ref = gc_act1(got, act, lo, hi);
            if (!(fabs(got - want) <= tol) && bad++ == 0)
                printf("  %s epi M=%lld N=%lld K=%lld bias=%d res=%d: [%lld][%lld] = %.9g, want %.9g (tol %.3g)\n",
                       gc_sg_isa_name(isa), (long long)M, (long long)N, (long long)K, use_bias, use_res, (long long)i,
                       (long long)j, got, want, tol);
            if (memcmp(&fused, &ref, sizeof fused) && diff++ == 0)
                printf("  %s epi %s M=%lld N=%lld K=%lld: [%lld][%lld] fused %.9g, act of the plain GEMM %.9g\n",
                       gc_sg_isa_name(isa), act_name(act), (long long)M, (long long)N, (long long)K, (long long)i,
                       (long long)j, fused, ref);
        }
    for (int64_t i = 0; i < M; i++) /* the padding between rows stays as it was */
        for (int64_t j = N; j < C.ld; j++)
            if (memcmp(&C.p[i * C.ld + j], &c0[i * C.ld + j], sizeof(float))) bad++;
    oc_check(bad == 0 && diff == 0,
             "%s epi ta=%d tb=%d M=%lld N=%lld K=%lld alpha=%g beta=%g bias=%d res=%d %s [%g, %g] nt=%d: %d off the "
             "reference, %d not the standalone activation's bits",
             gc_sg_isa_name(isa), ta, tb, (long long)M, (long long)N, (long long)K, alpha, beta, use_bias, use_res,
             act_name(act), lo, hi, nt, bad, diff);
    float *out = malloc((size_t)(M * N + 1) * sizeof(float));
    for (int64_t i = 0; i < M; i++) memcpy(out + i * N, C.p + i * C.ld, (size_t)N * sizeof(float));
    free(A.p), free(B.p), free(C.p), free(R.p), free(bias.p), free(c0), free(plain);
    return out;
}

/* Values exactly at the bounds, just inside and outside, NaN and infinities through a clamp:
 * C = 1 . b (K = 1: exact) + bias 0, so the epilogue sees b itself; the result must be act.c's
 * Clip of it, bit for bit (NaN stays NaN). */
static void run_bounds(int isa, int64_t M, int64_t N, float lo, float hi) {
    float *A = malloc((size_t)M * sizeof(float)), *B = malloc((size_t)N * sizeof(float));
    float *C = malloc((size_t)(M * N) * sizeof(float)), *bias = calloc((size_t)M, sizeof(float));
    for (int64_t i = 0; i < M; i++) A[i] = 1.0f;
    const float special[] = {lo, hi, NAN, nextafterf(lo, -INFINITY), nextafterf(lo, INFINITY),
                             nextafterf(hi, -INFINITY), nextafterf(hi, INFINITY), INFINITY, -INFINITY, 0.0f};
    oc_seed((uint64_t)(M * 1000 + N));
    for (int64_t j = 0; j < N; j++)
        B[j] = j < (int64_t)(sizeof special / sizeof *special) ? special[j] : (float)(oc_urand() * 16.0 - 8.0);
    const gc_sg_epi e = {bias, NULL, 0, GC_ACT_CLAMP, lo, hi};
    gc_sg_gemm_epi(isa, 1, 0, 0, M, N, 1, 1.0f, A, 1, B, N, 0.0f, C, N, &e);
    int bad = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float want = B[j] < lo ? lo : B[j]; /* act.c's clip_fw */
            want = want > hi ? hi : want;
            const float got = C[i * N + j];
            if (isnan(want) ? !isnan(got) : memcmp(&got, &want, sizeof got)) bad++;
        }
    oc_check(bad == 0, "%s clamp [%g, %g] at and around its bounds, NaN, inf (M=%lld N=%lld): %d wrong",
             gc_sg_isa_name(isa), lo, hi, (long long)M, (long long)N, bad);
    free(A), free(B), free(C), free(bias);
}

static void test_epi(int isa) {
    static const int64_t shapes[][3] = {{1, 9, 5},   {3, 70, 20},  {8, 48, 64},  {9, 49, 257},
                                        {17, 97, 9}, {64, 130, 600}, {33, 16, 256}, {5, 25, 300}};
    static const struct {
        int act;
        float lo, hi;
    } acts[] = {{GC_ACT_NONE, 0, 0}, {GC_ACT_CLAMP, 0.0f, INFINITY}, {GC_ACT_CLAMP, 0.0f, 6.0f},
                {GC_ACT_CLAMP, -0.25f, 0.5f}, {GC_ACT_SILU, 0, 0}};
    const int before = oc_failures;
    int n = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (size_t a = 0; a < sizeof acts / sizeof *acts; a++)
            for (int br = 0; br < 4; br++) {
                const int ta = (int)(s + a) & 1, tb = (int)(s / 2 + br) & 1;
                const float beta = (s + br) % 3 == 0 ? 1.0f : 0.0f, alpha = a == 3 ? 0.5f : 1.0f;
                free(run_epi(isa, 1, ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], alpha, beta, br & 1, br >> 1,
                             acts[a].act, acts[a].lo, acts[a].hi, 300 + s * 17 + a * 5 + (size_t)br));
                n++;
            }
    /* K = 0: C = beta C, then the epilogue */
    free(run_epi(isa, 1, 0, 0, 6, 20, 0, 1.0f, 0.5f, 1, 1, GC_ACT_SILU, 0, 0, 11));
    free(run_epi(isa, 1, 0, 0, 6, 20, 0, 1.0f, 0.0f, 1, 1, GC_ACT_CLAMP, 0.0f, 6.0f, 12));
    /* bounds, on full tiles and on edge tiles (and M, N under 4: cblas plus the pass) */
    run_bounds(isa, 16, 96, 0.0f, INFINITY);
    run_bounds(isa, 9, 50, 0.0f, 6.0f);
    run_bounds(isa, 3, 13, -1.0f, 1.0f);
    run_bounds(isa, 8, 2, 0.0f, 6.0f);
    n += 6;
    /* threads: bit-identical for 1 and 2 on sgemm.c's own paths. Not on cblas_sgemm's: its order of
     * summation is OpenBLAS's and may follow its threading (the ASan build's differed); its
     * epilogue is checked against the double reference above. */
    for (size_t a = 1; isa != GC_ISA_BLAS && a < sizeof acts / sizeof *acts; a++) {
        float *r1 = run_epi(isa, 1, 0, 0, 96, 3136, 64, 1.0f, 0.0f, 1, 1, acts[a].act, acts[a].lo, acts[a].hi, 900);
        float *r2 = run_epi(isa, 2, 0, 0, 96, 3136, 64, 1.0f, 0.0f, 1, 1, acts[a].act, acts[a].lo, acts[a].hi, 900);
        oc_check(!memcmp(r1, r2, (size_t)96 * 3136 * sizeof(float)), "%s epi %s: 1 and 2 threads bit-identical",
                 gc_sg_isa_name(isa), act_name(acts[a].act));
        free(r1), free(r2);
        n += 2;
    }
    printf("%s epilogue: %d cases, %d failed\n", gc_sg_isa_name(isa), n, oc_failures - before);
}

static void test_knobs(void) {
    gc_tuning t;
    gc_tuning_defaults(&t);
    const int best = gc_sg_cpu_isa();
    oc_check(gc_sg_isa(&t) == (best == GC_ISA_GENERIC ? GC_ISA_BLAS : best), "default path: the CPU's best");
    t.no_sgemm = 1;
    oc_check(gc_sg_isa(&t) == GC_ISA_BLAS, "GCAM_NO_SGEMM: blas");
    t.no_sgemm = 0;
    t.isa = GC_ISA_GENERIC;
    oc_check(gc_sg_isa(&t) == GC_ISA_GENERIC, "GCAM_ISA=generic");
    t.isa = GC_ISA_AVX512;
    oc_check(gc_sg_isa(&t) == best, "GCAM_ISA=avx512: at most the CPU's best");
    /* the environment's spelling */
    setenv("GCAM_ISA", "avx2", 1);
    gc_tuning_get(&t);
    oc_check(t.isa == GC_ISA_AVX2, "GCAM_ISA=avx2 parsed");
    setenv("GCAM_ISA", "sse9", 1);
    gc_tuning_get(&t);
    oc_check(t.isa == 0, "GCAM_ISA=sse9: unset");
    unsetenv("GCAM_ISA");
    /* blas path: gc_sg_gemm is cblas */
    free(run_case(GC_ISA_BLAS, 2, 1, 1, 0, 33, 70, 100, 1.0f, 0.5f, 77));
}

int main(void) {
    const int best = gc_sg_cpu_isa();
    for (int isa = GC_ISA_GENERIC; isa <= GC_ISA_AVX512; isa++) {
        if (isa > best) {
            printf("%s: not run (this CPU lacks it)\n", gc_sg_isa_name(isa));
            continue;
        }
        test_path(isa);
        test_epi(isa);
    }
    test_epi(GC_ISA_BLAS); /* cblas_sgemm, then the epilogue in a pass */
    test_knobs();
    printf("%d passed, %d failed\n", oc_checks - oc_failures, oc_failures);
    return oc_failures != 0;
}

/* src/ops/sgemm.c on every path this CPU runs (portable C always; AVX2 + FMA and AVX-512F when the
 * CPU has them: a CPU without them cannot run those paths, so they are listed as not run, never
 * failed), against a double-precision reference: shapes with M, N, K = 1, odd sizes and every edge
 * of the 8 x 48 / 4 x 24 / 4 x 16 tiles and the 256-deep K blocks, both transposes, strides past
 * the matrices' widths, alpha and beta (beta = 0 must not read C: C starts as NaN), the fused
 * Relu (M or N under 4 go to cblas_sgemm: checked the same way). Tolerance, per element: (K + 2) * 2^-23 * (|alpha| sum_k |a_ik b_kj| +
 * |beta c_ij|) * 2 (the standard bound gamma_K for a sum of K products, with room for the alpha
 * and beta roundings). Also: one and two threads give bit-identical results (each element is
 * summed by one thread in one order), and the knobs map onto the paths (gc_sg_isa). */
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
    static const int64_t Ns[] = {1, 7, 8, 15, 16, 17, 24, 25, 47, 48, 49, 97, 130};
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
    }
    test_knobs();
    printf("%d passed, %d failed\n", oc_checks - oc_failures, oc_failures);
    return oc_failures != 0;
}

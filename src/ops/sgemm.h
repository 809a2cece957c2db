/* gradcam's own SGEMM (src/ops/sgemm.c): row-major C (M, N) = alpha op(A) op(B) + beta C with
 * micro-kernels picked at run time by what the CPU has (AVX-512F, AVX2 + FMA, portable C). Used
 * by conv.c and gemm.c; GCAM_NO_SGEMM=1 sends every call back to cblas_sgemm,
 * GCAM_ISA=avx512|avx2|generic forces a lower path (tests run each path on any AVX-512 CPU).
 *
 * Results: each element of C is summed by one thread in a fixed order (K in fixed blocks, each
 * block's products accumulated in k order), whatever the thread count and the split: bit-identical
 * from run to run and for any nt, on one ISA path. The paths differ by rounding (FMA or not). */
#ifndef GC_OPS_SGEMM_H
#define GC_OPS_SGEMM_H

#include <stddef.h>
#include <stdint.h>

#include "../tuning.h"
#include "kmath.h"

enum { GC_ISA_BLAS = 0, GC_ISA_GENERIC = 1, GC_ISA_AVX2 = 2, GC_ISA_AVX512 = 3 };

/* The best path this CPU runs (GC_ISA_GENERIC .. GC_ISA_AVX512). */
int gc_sg_cpu_isa(void);
/* The path a context's GEMMs take: GC_ISA_BLAS (cblas_sgemm) with no_sgemm or when the CPU has
 * neither AVX2 + FMA nor AVX-512 (OpenBLAS's kernels then win); else the CPU's best, lowered to
 * the isa knob when one is set. */
int gc_sg_isa(const gc_tuning *t);
/* The name of a path ("blas", "generic", "avx2", "avx512"). */
const char *gc_sg_isa_name(int isa);

/* C (M, N; row stride ldc) = alpha op(A) op(B) + beta C, threads split over nt (1: the caller's
 * thread only, e.g. inside its own parallel region): ta = 0: A (M, K) row stride lda, else A
 * (K, M); tb likewise for B (K, N). isa GC_ISA_BLAS, or M or N under 4 (GEMV-like): gc_sgemm
 * (cblas_sgemm). beta = 0: C is not read. */
void gc_sg_gemm(int isa, int nt, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* What the GEMM's last write of each element does after alpha op(A) op(B) + beta C, in this order
 * (NULL epilogue: nothing): t += bias[i] (row i of C); t += res[i, j]; then the activation. On the
 * kernels' paths in the tile's last write while it is in registers (SiLU: over the tile just
 * stored, in L1); on the cblas path in a pass right after, with the same operations, so every
 * path gives the same semantics (and the same bits as the standalone ops on the same values:
 * kmath.h). */
typedef struct gc_sg_epi {
    const float *bias; /* (M), or NULL */
    const float *res;  /* (M, N; row stride ldr), or NULL: e.g. a fused residual Add's operand */
    int64_t ldr;
    int act;           /* GC_ACT_NONE, GC_ACT_CLAMP: gc_clamp(t, lo, hi) (Relu: lo 0, hi +inf; NaN
                          propagates), GC_ACT_SILU: gc_silu_fast(t) */
    float lo, hi;
} gc_sg_epi;

void gc_sg_gemm_epi(int isa, int nt, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const gc_sg_epi *epi);
/* gc_sg_gemm_epi with relu: a clamp to [0, +inf], else none */
void gc_sg_gemm_relu(int isa, int nt, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                     int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc, int relu);

#endif

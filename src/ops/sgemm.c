/* gradcam's own SGEMM: see sgemm.h for the contract.
 *
 * Layout (the GotoBLAS / BLIS scheme, written from the papers' description; MLAS read for its
 * register tiles): C is cut into strips of nr columns (nv vectors of vl lanes) and panels of mr
 * rows; K runs in blocks of at most SG_KC. op(B) is packed strip by strip (kb x nr, zero columns
 * past N) into a buffer on the thread's stack that stays in L1 while every panel of A streams past
 * it. A micro-kernel keeps an mr x nr tile of C in registers over one K block: per k, nv vector
 * loads of B and mr broadcasts of A.
 *  - AVX-512F: mr 8, 1..3 zmm (16..48 columns): 24 accumulators of 32 registers;
 *  - AVX2 + FMA: mr 4, 1..3 ymm (8..24 columns): 12 accumulators of 16;
 *  - portable C: mr 4, 16 columns (the compiler's baseline vectors).
 * op(A) is read where it is (mr row pointers, or mr consecutive floats per k for a transposed A):
 * packing A into panels, per call or once per model for constant weights, measured no faster
 * (resnet50 forward within noise; a 2048 x 49 x 512 product 148 GF/s in place vs 127 packed), so
 * only a last panel of fewer than mr rows is packed, on the stack, with zero rows. The last strip
 * takes as many vectors as its columns need. The kernels live in functions built with
 * __attribute__((target(...))) so the library needs no -mavx flags; the path is chosen at run time
 * (gc_sg_isa). Tiles cut by M or N are computed whole into a local tile by the same kernel and
 * copied out by the scalar epilogue, which performs the same operations as the vector epilogue
 * (multiply, add; the build's C17 mode does not contract them into FMAs): edge tiles round
 * exactly as full ones.
 * The last K block's write applies the epilogue (sgemm.h gc_sg_epi): row bias, residual, clamp in
 * registers, SiLU over the tile just stored (kmath.h's scalar function, vectorised by the compiler
 * in each kernel's instruction set): conv.c's bias prefill pass, residual prefill and the
 * standalone Relu/Clip/SiLU passes after a Conv go away.
 * Threads: whole strips per thread (or whole panels when the strips are few). Every element is
 * summed by one thread in one order. */
#include "sgemm.h"

#include "isa.h"
#include "kutil.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SG_X86 1
#include <immintrin.h>
#else
#define SG_X86 0
#endif

#define SG_KC 256           /* K block: a strip of B (SG_KC x 48 floats, 48 KB at most) stays in L1 */
#define SG_NR_MAX 48        /* widest strip of any path */
#define SG_MR_MAX 8
#define SG_MIN_SIDE 4       /* M or N below this: cblas_sgemm (GEMV-like: most of a tile would be padding) */
#define SG_DOT_MAX 2        /* columns past the last full strip up to this: folded into it (sg_dot; with 4,
                               N = 196 = 4 x 48 + 4 took 13% longer transposed) */
#define SG_PAR_MIN 1e6      /* multiply-adds below which one thread does the GEMM */
#define SG_AI static inline __attribute__((always_inline))

/* What a tile's write does: C = alpha acc + beta C (beta 0: C not read), then gc_sg_epi's steps
 * (sgemm.h) with bias and res already moved to the tile's first row and element. */
typedef struct sg_epi {
    float alpha, beta;
    const float *bias; /* (mr): the tile's rows, or NULL */
    const float *res;  /* the tile's element (0, 0), rows ldr apart, or NULL */
    int64_t ldr;
    int act;
    float lo, hi;
} sg_epi;

/* acc (mr, nv vl) over kc, b a packed strip (kc, nv vl), c (mr rows, ldc); a: a packed panel
 * (kc, mr) (the kernels of kern[1]), or (kern[0]) op(A)'s rows where they are: element (i, k)
 * at a[i rsa + k csa] (ta = 0: rsa = lda, csa = 1; ta = 1: rsa = 1, csa = lda) */
typedef void (*sg_kern)(int64_t kc, const float *a, int64_t rsa, int64_t csa, const float *b, float *c,
                        int64_t ldc, const sg_epi *e);

typedef struct sg_def {
    int mr, vl, nvmax;
    sg_kern kern[2][4]; /* kern[packed][nv], nv = 1..nvmax */
} sg_def;

/* The scalar epilogue of the tile's element (i, j): the vector ones' operations in the same order. */
static inline float sg_epi1(float acc, const float *c, const sg_epi *e, int64_t i, int64_t j) {
    float t = e->alpha == 1.0f ? acc : acc * e->alpha;
    if (e->beta != 0.0f) t = e->beta == 1.0f ? *c + t : *c * e->beta + t;
    if (e->bias) t = t + e->bias[i];
    if (e->res) t = t + e->res[i * e->ldr + j];
    return gc_act1(t, e->act, e->lo, e->hi);
}

/* SiLU over n floats of a tile just stored (still in L1): a plain loop over kmath.h's scalar
 * function, which the compiler vectorises for the calling kernel's instruction set; exp is too
 * long to keep 24 accumulators live through it in registers. */
SG_AI void sg_silu_row(float *p, int64_t n) {
    for (int64_t j = 0; j < n; j++) p[j] = gc_silu_fast(p[j]);
}

/* ---------------------------------------------------------------- micro-kernels */

/* portable C: mr 4, 16 columns (packed panels: rsa 1, csa 4) */
static void sg_kern_c(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa, const float *restrict b,
                      float *c, int64_t ldc, const sg_epi *e) {
    float acc[4][16] = {{0}};
    for (int64_t k = 0; k < kc; k++, a += csa, b += 16)
        for (int i = 0; i < 4; i++) {
            const float ai = a[i * rsa];
            for (int j = 0; j < 16; j++) acc[i][j] += ai * b[j];
        }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 16; j++) c[i * ldc + j] = sg_epi1(acc[i][j], c + i * ldc + j, e, i, j);
}

#if SG_X86
#define SG_T512 __attribute__((target("avx512f")))
#define SG_T256 __attribute__((target("avx2,fma")))

SG_T512 SG_AI __m512 sg_e512(__m512 acc, const float *c, const sg_epi *e, int i, int j) {
    __m512 t = e->alpha == 1.0f ? acc : _mm512_mul_ps(acc, _mm512_set1_ps(e->alpha));
    if (e->beta != 0.0f) {
        const __m512 cv = _mm512_loadu_ps(c);
        t = e->beta == 1.0f ? _mm512_add_ps(cv, t) : _mm512_add_ps(_mm512_mul_ps(cv, _mm512_set1_ps(e->beta)), t);
    }
    if (e->bias) t = _mm512_add_ps(t, _mm512_set1_ps(e->bias[i]));
    if (e->res) t = _mm512_add_ps(t, _mm512_loadu_ps(e->res + i * e->ldr + j));
    /* max(lo, t) and min(hi, t) return t when t is NaN or equal to the bound (the second
     * operand): gc_clamp's selects, so NaN propagates, as Relu and Clip */
    if (e->act == GC_ACT_CLAMP)
        t = _mm512_min_ps(_mm512_set1_ps(e->hi), _mm512_max_ps(_mm512_set1_ps(e->lo), t));
    return t;
}

SG_T512 SG_AI void sg_k512(const int nv, const int packed, int64_t kc, const float *restrict a, int64_t rsa,
                           int64_t csa, const float *restrict b, float *c, int64_t ldc, const sg_epi *e) {
    __m512 acc[8][3];
    const float *ar[8]; /* unpacked: the rows of op(A) */
    int64_t o = 0;
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) ar[i] = a + i * rsa;
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
#pragma GCC unroll 3
        for (int v = 0; v < 3; v++) acc[i][v] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++, a += 8, o += csa, b += 16 * nv) {
        __m512 bv[3];
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            const __m512 ai = _mm512_set1_ps(packed ? a[i] : ar[i][o]);
#pragma GCC unroll 3
            for (int v = 0; v < nv; v++) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) {
            float *p = c + i * ldc + 16 * v;
            _mm512_storeu_ps(p, sg_e512(acc[i][v], p, e, i, 16 * v));
        }
    if (e->act == GC_ACT_SILU)
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) sg_silu_row(c + i * ldc, 16 * nv);
}
/* the kernels for 1-3 vectors of columns, A read in place (0x) or packed (1x) */
#define SG_K512(P, NV) SG_T512 static void sg_k512_##P##NV(int64_t kc, const float *a, int64_t rsa, int64_t csa, \
                                                          const float *b, float *c, int64_t ldc, const sg_epi *e) { \
        sg_k512(NV, P, kc, a, rsa, csa, b, c, ldc, e); \
    }
SG_K512(0, 1) SG_K512(0, 2) SG_K512(0, 3) SG_K512(1, 1) SG_K512(1, 2) SG_K512(1, 3)
#undef SG_K512

SG_T256 SG_AI __m256 sg_e256(__m256 acc, const float *c, const sg_epi *e, int i, int j) {
    __m256 t = e->alpha == 1.0f ? acc : _mm256_mul_ps(acc, _mm256_set1_ps(e->alpha));
    if (e->beta != 0.0f) {
        const __m256 cv = _mm256_loadu_ps(c);
        t = e->beta == 1.0f ? _mm256_add_ps(cv, t) : _mm256_add_ps(_mm256_mul_ps(cv, _mm256_set1_ps(e->beta)), t);
    }
    if (e->bias) t = _mm256_add_ps(t, _mm256_set1_ps(e->bias[i]));
    if (e->res) t = _mm256_add_ps(t, _mm256_loadu_ps(e->res + i * e->ldr + j));
    if (e->act == GC_ACT_CLAMP) /* gc_clamp's selects, as in sg_e512 */
        t = _mm256_min_ps(_mm256_set1_ps(e->hi), _mm256_max_ps(_mm256_set1_ps(e->lo), t));
    return t;
}

SG_T256 SG_AI void sg_k256(const int nv, const int packed, int64_t kc, const float *restrict a, int64_t rsa,
                           int64_t csa, const float *restrict b, float *c, int64_t ldc, const sg_epi *e) {
    __m256 acc[4][3];
    const float *ar[4]; /* unpacked: the rows of op(A) */
    int64_t o = 0;
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) ar[i] = a + i * rsa;
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 3
        for (int v = 0; v < 3; v++) acc[i][v] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k++, a += 4, o += csa, b += 8 * nv) {
        __m256 bv[3];
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) bv[v] = _mm256_load_ps(b + 8 * v);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            const __m256 ai = _mm256_broadcast_ss(packed ? a + i : ar[i] + o);
#pragma GCC unroll 3
            for (int v = 0; v < nv; v++) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) {
            float *p = c + i * ldc + 8 * v;
            _mm256_storeu_ps(p, sg_e256(acc[i][v], p, e, i, 8 * v));
        }
    if (e->act == GC_ACT_SILU)
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) sg_silu_row(c + i * ldc, 8 * nv);
}
/* the kernels for 1-3 vectors of columns, A read in place (0x) or packed (1x) */
#define SG_K256(P, NV) SG_T256 static void sg_k256_##P##NV(int64_t kc, const float *a, int64_t rsa, int64_t csa, \
                                                          const float *b, float *c, int64_t ldc, const sg_epi *e) { \
        sg_k256(NV, P, kc, a, rsa, csa, b, c, ldc, e); \
    }
SG_K256(0, 1) SG_K256(0, 2) SG_K256(0, 3) SG_K256(1, 1) SG_K256(1, 2) SG_K256(1, 3)
#undef SG_K256
#endif

static const sg_def sg_defs[4] = {
    [GC_ISA_GENERIC] = {4, 16, 1, {{NULL, sg_kern_c}, {NULL, sg_kern_c}}},
#if SG_X86
    [GC_ISA_AVX2] = {4, 8, 3, {{NULL, sg_k256_01, sg_k256_02, sg_k256_03}, {NULL, sg_k256_11, sg_k256_12, sg_k256_13}}},
    [GC_ISA_AVX512] = {8, 16, 3, {{NULL, sg_k512_01, sg_k512_02, sg_k512_03}, {NULL, sg_k512_11, sg_k512_12, sg_k512_13}}},
#endif
};

/* ---------------------------------------------------------------- dispatch */

/* One detection for every kernel (isa.c): x86-64-v4 / v3 cover what these kernels' targets need
 * (avx512f; avx2 + fma), so the GEMMs and the element kernels always take the same level. */
int gc_sg_cpu_isa(void) {
    const int v = gc_cpu_isa();
    return v == GC_KISA_AVX512 ? GC_ISA_AVX512 : v == GC_KISA_AVX2 ? GC_ISA_AVX2 : GC_ISA_GENERIC;
}

int gc_sg_isa(const gc_tuning *t) {
    if (t && t->no_sgemm) return GC_ISA_BLAS;
    const int best = gc_sg_cpu_isa();
    if (t && t->isa > 0) return GC_MIN(t->isa, best);
    return best == GC_ISA_GENERIC ? GC_ISA_BLAS : best;
}

const char *gc_sg_isa_name(int isa) {
    static const char *names[4] = {"blas", "generic", "avx2", "avx512"};
    return isa >= 0 && isa < 4 ? names[isa] : "?";
}

/* ---------------------------------------------------------------- blocks and packing */

/* K block size: blocks of equal size (the last may be shorter), at most SG_KC. A function of K
 * alone: the order of every element's sum does not depend on the split over threads. */
static int64_t sg_kc(int64_t K) {
    const int64_t nb = (K + SG_KC - 1) / SG_KC;
    return nb ? (K + nb - 1) / nb : 1;
}

/* q (kb, mr) <- op(A) rows i0 .. i0 + mi - 1, columns p0 .. p0 + kb - 1; zeros in rows mi .. mr - 1 */
static void sg_pack_rows(float *restrict q, int mr, int ta, const float *A, int64_t lda, int64_t i0, int64_t mi,
                         int64_t p0, int64_t kb) {
    if (ta) {
        for (int64_t k = 0; k < kb; k++) {
            const float *s = A + (p0 + k) * lda + i0;
            for (int64_t i = 0; i < mr; i++) q[k * mr + i] = i < mi ? s[i] : 0.0f;
        }
        return;
    }
    /* k outer: mr row streams read in step, the panel written in order */
    const float *r[SG_MR_MAX];
    for (int64_t i = 0; i < mr; i++) r[i] = i < mi ? A + (i0 + i) * lda + p0 : NULL;
    for (int64_t k = 0; k < kb; k++)
        for (int64_t i = 0; i < mr; i++) q[k * mr + i] = r[i] ? r[i][k] : 0.0f;
}

/* bs (kb, w) <- op(B) rows p0 .. p0 + kb - 1, columns j0 .. j0 + nc - 1, zeros in columns nc .. w - 1 */
static void sg_pack_b(float *restrict bs, int64_t w, int tb, const float *B, int64_t ldb, int64_t p0, int64_t kb,
                      int64_t j0, int64_t nc) {
    if (!tb) {
        for (int64_t k = 0; k < kb; k++) {
            const float *s = B + (p0 + k) * ldb + j0;
            float *q = bs + k * w;
            memcpy(q, s, (size_t)nc * sizeof(float));
            for (int64_t j = nc; j < w; j++) q[j] = 0.0f;
        }
        return;
    }
    for (int64_t j = 0; j < w; j++) {
        const float *s = B + (j0 + j) * ldb + p0;
        if (j < nc)
            for (int64_t k = 0; k < kb; k++) bs[k * w + j] = s[k];
        else
            for (int64_t k = 0; k < kb; k++) bs[k * w + j] = 0.0f;
    }
}

/* ---------------------------------------------------------------- the loops */

typedef struct sg_job {
    const sg_def *d;
    const float *A; /* op(A) read where it is, but for a last panel of fewer than mr rows */
    int64_t lda;
    int ta, tb;
    int64_t M, N, K, ldb, ldc;
    const float *B;
    float *C;
    sg_epi e;
    int kisa; /* GC_KISA_*: the instance of the plain-loop helpers (sg_dot) on the same path */
} sg_job;

/* ---------------------------------------------------------------- a few columns more */

/* out (mi, nx) = the panel a (element (i, k) at a[i rsa + k csa]) . bc (nx columns of kb floats).
 * Rows along k (csa 1: op(A) in place, not transposed): each sum in 16 lanes along k, the lanes
 * then added in a fixed tree. Otherwise (k-major: rsa 1, a transposed op(A) in place or a packed
 * panel, mr rows readable at each k) the mr rows side by side. Plain loops, the same operations
 * in every instance (GC_ISA_FN). */
/* k-major panel: at each k, the mr rows side by side (a constant mr: one vector of rows) */
GC_INLINE void sg_dot_kmajor(float *restrict out, const float *restrict a, int64_t csa, const float *restrict bc,
                             int64_t kb, int mi, const int mr, int nx) {
    float acc[SG_DOT_MAX][SG_MR_MAX] = {{0}};
    for (int64_t k = 0; k < kb; k++) {
        const float *p = a + k * csa;
        for (int x = 0; x < nx; x++) {
            const float y = bc[x * kb + k];
            for (int i = 0; i < mr; i++) acc[x][i] += p[i] * y;
        }
    }
    for (int i = 0; i < mi; i++)
        for (int x = 0; x < nx; x++) out[i * nx + x] = acc[x][i];
}
GC_INLINE void sg_dot_body(float *restrict out, const float *restrict a, int64_t rsa, int64_t csa,
                           const float *restrict bc, int64_t kb, int mi, int mr, int nx) {
    if (csa == 1) {
        for (int i = 0; i < mi; i++)
            for (int x = 0; x < nx; x++) {
                const float *r = a + i * rsa, *y = bc + x * kb;
                float l[16] = {0};
                int64_t k = 0;
                for (; k + 16 <= kb; k += 16)
                    for (int v = 0; v < 16; v++) l[v] += r[k + v] * y[k + v];
                for (int v = 0; k + v < kb; v++) l[v] += r[k + v] * y[k + v];
                for (int w = 8; w > 0; w /= 2)
                    for (int v = 0; v < w; v++) l[v] += l[v + w];
                out[i * nx + x] = l[0];
            }
        return;
    }
    if (mr == 8) sg_dot_kmajor(out, a, csa, bc, kb, mi, 8, nx);
    else sg_dot_kmajor(out, a, csa, bc, kb, mi, 4, nx);
}
GC_ISA_FN(sg_dot_isa, sg_dot_body,
          (float *restrict out, const float *restrict a, int64_t rsa, int64_t csa, const float *restrict bc, int64_t kb,
           int mi, int mr, int nx),
          (out, a, rsa, csa, bc, kb, mi, mr, nx))

/* Strips of nr columns; a remainder of at most SG_DOT_MAX columns goes with the last full strip
 * (sg_tiles' nx): a strip of its own would read all of A again for them (9.4 MB for a 512 x 4608
 * A: a 7x7 map's N = 49 took 2.92 ms where N = 48 took 2.10) and spend a vector per column. A
 * function of N alone: every thread count splits the same way. */
static int64_t sg_nstrips(const sg_job *j, int64_t nr) {
    int64_t ns = (j->N + nr - 1) / nr;
    if (ns > 1 && j->N - (ns - 1) * nr <= SG_DOT_MAX) ns--;
    return ns;
}

/* Strips s0 .. s1 - 1 against panels p0 .. p1 - 1. */
static void sg_tiles(const sg_job *j, int64_t s0, int64_t s1, int64_t q0, int64_t q1) {
    const sg_def *d = j->d;
    const int mr = d->mr;
    const int64_t nr = (int64_t)d->vl * d->nvmax, kc = sg_kc(j->K);
    float bs[SG_KC * SG_NR_MAX] __attribute__((aligned(64))); /* (kb, w): the strip of op(B) */
    float tile[SG_MR_MAX * SG_NR_MAX] __attribute__((aligned(64)));
    float ap[SG_KC * SG_MR_MAX] __attribute__((aligned(64))); /* (kb, mr): an unpacked A's last panel */
    const sg_epi raw = {1.0f, 0.0f, NULL, NULL, 0, GC_ACT_NONE, 0.0f, 0.0f};
    const int64_t ns = sg_nstrips(j, nr);
    float bx[SG_DOT_MAX * SG_KC] __attribute__((aligned(64))); /* (nx, kb): the columns past the strip */
    float ox[SG_MR_MAX * SG_DOT_MAX];
    for (int64_t s = s0; s < s1; s++) {
        const int64_t j0 = s * nr, nc = GC_MIN(nr, j->N - j0);
        const int64_t nx = s == ns - 1 ? j->N - j0 - nc : 0; /* sg_nstrips: 0 .. SG_DOT_MAX */
        const int nv = (int)((nc + d->vl - 1) / d->vl);
        const int64_t w = (int64_t)nv * d->vl;
        for (int64_t p0 = 0; p0 < j->K; p0 += kc) {
            const int64_t kb = GC_MIN(kc, j->K - p0);
            sg_pack_b(bs, w, j->tb, j->B, j->ldb, p0, kb, j0, nc);
            for (int64_t x = 0; x < nx; x++)
                for (int64_t k = 0; k < kb; k++)
                    bx[x * kb + k] = j->tb ? j->B[(j0 + nc + x) * j->ldb + p0 + k] : j->B[(p0 + k) * j->ldb + j0 + nc + x];
            sg_epi e = j->e; /* the first block applies beta, the last one bias, res and activation */
            if (p0 > 0) e.beta = 1.0f;
            if (p0 + kb < j->K) e.bias = NULL, e.res = NULL, e.act = GC_ACT_NONE;
            const float *bias0 = e.bias, *res0 = e.res;
            for (int64_t q = q0; q < q1; q++) {
                const int64_t i0 = q * mr, mi = GC_MIN(mr, j->M - i0);
                const float *a = ap;
                int64_t rsa = 1, csa = mr;
                sg_kern kern = d->kern[1][nv];
                if (mi == mr) { /* op(A)'s rows where they are */
                    a = j->ta ? j->A + p0 * j->lda + i0 : j->A + i0 * j->lda + p0;
                    rsa = j->ta ? 1 : j->lda;
                    csa = j->ta ? j->lda : 1;
                    kern = d->kern[0][nv];
                } else { /* the last rows: packed here with zeros past M (never read past A) */
                    sg_pack_rows(ap, mr, j->ta, j->A, j->lda, i0, mi, p0, kb);
                }
                float *c = j->C + i0 * j->ldc + j0;
                e.bias = bias0 ? bias0 + i0 : NULL;
                e.res = res0 ? res0 + i0 * e.ldr + j0 : NULL;
                if (mi == mr && nc == w) {
                    kern(kb, a, rsa, csa, bs, c, j->ldc, &e);
                } else {
                    kern(kb, a, rsa, csa, bs, tile, w, &raw);
                    for (int64_t i = 0; i < mi; i++)
                        for (int64_t jj = 0; jj < nc; jj++)
                            c[i * j->ldc + jj] = sg_epi1(tile[i * w + jj], c + i * j->ldc + jj, &e, i, jj);
                }
                if (nx) { /* the few columns past the strip, from the panel just read */
                    sg_dot_isa_tab[j->kisa](ox, a, rsa, csa, bx, kb, (int)mi, mr, (int)nx);
                    for (int64_t i = 0; i < mi; i++)
                        for (int64_t x = 0; x < nx; x++)
                            c[i * j->ldc + nc + x] = sg_epi1(ox[i * nx + x], c + i * j->ldc + nc + x, &e, i, nc + x);
                }
            }
        }
    }
}

/* C = beta C, then the epilogue, where there is nothing to multiply (K = 0 or alpha = 0) */
static void sg_scale(int64_t M, int64_t N, float beta, float *C, int64_t ldc, const sg_epi *epi) {
    sg_epi e = *epi;
    e.alpha = 0.0f;
    e.beta = beta;
    for (int64_t i = 0; i < M; i++)
        for (int64_t jj = 0; jj < N; jj++) C[i * ldc + jj] = sg_epi1(0.0f, C + i * ldc + jj, &e, i, jj);
}

/* The job over nt threads. */
static void sg_run(const sg_job *j, int nt) {
    const sg_def *d = j->d;
    const int64_t nr = (int64_t)d->vl * d->nvmax, ns = sg_nstrips(j, nr), np = (j->M + d->mr - 1) / d->mr;
    if (nt < 2 || (double)j->M * (double)j->N * (double)j->K < SG_PAR_MIN || ns * np < 2) nt = 1;
    /* strips per thread when there are plenty (each packs only its own B), else panels */
    const int by_strip = ns >= 4 * (int64_t)nt || ns >= np;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
        const int64_t L = by_strip ? ns : np, a0 = L * t / n, a1 = L * (t + 1) / n;
        if (a1 > a0) {
            if (by_strip) sg_tiles(j, a0, a1, 0, np);
            else sg_tiles(j, 0, ns, a0, a1);
        }
    }
}

/* The public epilogue as the tiles' (bias and res from C's element (0, 0); NULL: none). */
static sg_epi sg_epi_of(float alpha, float beta, const gc_sg_epi *p) {
    sg_epi e = {alpha, beta, NULL, NULL, 0, GC_ACT_NONE, 0.0f, 0.0f};
    if (p) {
        e.bias = p->bias;
        e.res = p->res;
        e.ldr = p->ldr;
        e.act = p->act;
        e.lo = p->lo;
        e.hi = p->hi;
    }
    return e;
}

void gc_sg_gemm_epi(int isa, int nt, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc, const gc_sg_epi *epi) {
    if (M <= 0 || N <= 0) return;
    const sg_epi e = sg_epi_of(alpha, beta, epi);
    const int post = e.bias || e.res || e.act != GC_ACT_NONE;
    /* a matrix-vector product (a batch-1 classifier): OpenBLAS's GEMV reads B once, no packing */
    if (isa <= GC_ISA_BLAS || isa > GC_ISA_AVX512 || !sg_defs[isa].mr || M < SG_MIN_SIDE || N < SG_MIN_SIDE) {
        gc_sgemm(nt, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        if (post) { /* while C is still in cache: C is now alpha AB + beta C, so the epilogue adds to it */
            sg_epi q = e;
            q.alpha = 1.0f;
            q.beta = 0.0f;
            for (int64_t i = 0; i < M; i++)
                for (int64_t jj = 0; jj < N; jj++) C[i * ldc + jj] = sg_epi1(C[i * ldc + jj], NULL, &q, i, jj);
        }
        return;
    }
    if (K <= 0 || alpha == 0.0f) {
        sg_scale(M, N, beta, C, ldc, &e);
        return;
    }
    const int kisa = isa == GC_ISA_AVX512 ? GC_KISA_AVX512 : isa == GC_ISA_AVX2 ? GC_KISA_AVX2 : GC_KISA_BASE;
    const sg_job j = {&sg_defs[isa], A, lda, ta, tb, M, N, K, ldb, ldc, B, C, e, kisa};
    sg_run(&j, GC_MAX(1, nt));
}

void gc_sg_gemm_relu(int isa, int nt, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                     int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc, int relu) {
    const gc_sg_epi r = {.act = GC_ACT_CLAMP, .lo = 0.0f, .hi = INFINITY};
    gc_sg_gemm_epi(isa, nt, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, relu ? &r : NULL);
}

void gc_sg_gemm(int isa, int nt, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    gc_sg_gemm_epi(isa, nt, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL);
}

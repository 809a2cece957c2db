/* Depthwise 2-D convolution, direct kernels (dwconv.h): square K x K kernels (K = 3, 5, 7), stride 1
 * or 2, dilation 1, any padding; AVX-512 (16 lanes) and AVX2 (8 lanes).
 *
 * An output row is cut into chunks of one vector. A chunk reads its taps straight from the input
 * rows: lanes outside a row are masked loads that give 0, rows outside the plane give a vector of
 * zeros. Every output is then bias + w[0] x[0] + ... + w[K*K-1] x[K*K-1] with each product and sum
 * rounded in that order and zeros where conv.c's padded plane has its border: the operations of
 * plane_load + plane_gather (ISO C mode, no FMA: isa.h), so the paths agree bit for bit, and the
 * plane copy (a third of the depthwise time in mobilenet_v2) is gone.
 * Stride 2 loads two vectors per kernel column pair and splits them into even and odd columns
 * (taps kx and kx + 1). R output rows share each input row's loads (rows overlap by K - S).
 * Addresses of masked lanes may lie outside the row (never read): they are formed as integers. */
#include "dwconv.h"

#include "isa.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define DW_X86 1
#include <immintrin.h>
#else
#define DW_X86 0
#endif

#define DW_AI static inline __attribute__((always_inline))
/* Output rows per block, stride 1 and 2: a 3x3 then loads 4.5 vectors per output vector, not 9.
 * Measured (AVX-512, EfficientNet's and MobileNet's shapes): 4 rows 1.7x faster than 1, and
 * faster than 2 or 6 (register pressure). */
#define DW_R 4
#define DW_R2 4

int gc_dw2d_ok(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t H, int64_t W,
               int64_t pt, int64_t pl, int isa) {
    if (!DW_X86 || isa < GC_KISA_AVX2) return 0;
    /* the AVX2 masks compute columns in 32-bit lanes */
    const int64_t lim = (int64_t)1 << 28;
    return kh == kw && (kw == 3 || kw == 5 || kw == 7) && sh == sw && (sw == 1 || sw == 2) && dh == 1 && dw == 1 &&
           H < lim && W < lim && pt >= 0 && pl >= 0 && pt < lim && pl < lim;
}

#if DW_X86
/* p + off floats, as an address only: masked lanes may point before or past the row */
DW_AI const float *dw_at(const float *p, int64_t off) {
    return (const float *)((uintptr_t)p + (uintptr_t)off * sizeof(float));
}

/* Bit j set for lanes j < n whose column b + j lies in [0, W). */
DW_AI uint32_t dw_lanes(int64_t b, int64_t W, int n) {
    const int64_t lo = b < 0 ? -b : 0, hi = W - b < n ? W - b : n;
    if (hi <= lo) return 0;
    return (uint32_t)((((uint64_t)1 << hi) - 1) & ~(((uint64_t)1 << lo) - 1));
}

/* ---------------------------------------------------------------- AVX-512 */

#define DW_T512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi2")))

/* R output rows (row stride ldy) x one chunk of 16: input rows rp[0 .. S + K) (NULL: outside
 * the plane); tap kx of lane j reads column c0 + S j + kx. m: per kernel column (S 1) or column
 * pair (S 2: two masks) the lanes inside the row; st: the lanes stored. */
DW_T512 DW_AI void dw512_block(float *y, int64_t ldy, const float *const *rp, const float *w, float bias, int64_t c0,
                               const __mmask16 *m, __mmask16 st, const int S, const int K, const int R) {
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    __m512 acc[DW_R];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) acc[i] = _mm512_set1_ps(bias);
#pragma GCC unroll 16
    for (int r = 0; r < (R - 1) * S + K; r++) {
        __m512 v[7];
        if (rp[r]) {
            if (S == 1) {
#pragma GCC unroll 7
                for (int kx = 0; kx < K; kx++) v[kx] = _mm512_maskz_loadu_ps(m[kx], dw_at(rp[r], c0 + kx));
            } else {
#pragma GCC unroll 4
                for (int p = 0; 2 * p < K; p++) {
                    const __m512 a = _mm512_maskz_loadu_ps(m[2 * p], dw_at(rp[r], c0 + 2 * p));
                    const __m512 b = _mm512_maskz_loadu_ps(m[2 * p + 1], dw_at(rp[r], c0 + 2 * p + 16));
                    v[2 * p] = _mm512_permutex2var_ps(a, ev, b);
                    if (2 * p + 1 < K) v[2 * p + 1] = _mm512_permutex2var_ps(a, od, b);
                }
            }
        } else {
#pragma GCC unroll 7
            for (int kx = 0; kx < K; kx++) v[kx] = _mm512_setzero_ps();
        }
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            const int ky = r - S * i;
            if (ky < 0 || ky >= K) continue;
#pragma GCC unroll 7
            for (int kx = 0; kx < K; kx++)
                acc[i] = _mm512_add_ps(acc[i], _mm512_mul_ps(_mm512_set1_ps(w[ky * K + kx]), v[kx]));
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) _mm512_mask_storeu_ps(y + i * ldy, st, acc[i]);
}

/* Output rows [oy, oy + R), every chunk. */
DW_T512 DW_AI void dw512_rows(float *y, const float *x, const float *w, float bias, const gc_dw2d *g, int64_t oy,
                              const int S, const int K, const int R) {
    const float *rp[(DW_R > DW_R2 ? DW_R : DW_R2) * 2 + 7];
    const int nr = (R - 1) * S + K;
    for (int r = 0; r < nr; r++) {
        const int64_t iy = oy * S - g->pt + r;
        rp[r] = iy >= 0 && iy < g->H ? x + iy * g->W : NULL;
    }
    for (int64_t x0 = 0; x0 < g->OW; x0 += 16) {
        const int64_t n = g->OW - x0 < 16 ? g->OW - x0 : 16, c0 = x0 * S - g->pl;
        __mmask16 m[8];
        if (S == 1) {
            for (int kx = 0; kx < K; kx++) m[kx] = (__mmask16)dw_lanes(c0 + kx, g->W, 16);
        } else {
            for (int p = 0; 2 * p < K; p++) {
                const uint32_t mm = dw_lanes(c0 + 2 * p, g->W, 32);
                m[2 * p] = (__mmask16)(mm & 0xffff);
                m[2 * p + 1] = (__mmask16)(mm >> 16);
            }
        }
        dw512_block(y + oy * g->OW + x0, g->OW, rp, w, bias, c0, m, (__mmask16)((1u << n) - 1), S, K, R);
    }
}

DW_T512 DW_AI void dw512_plane(float *y, const float *x, const float *w, float bias, const gc_dw2d *g, const int S,
                               const int K) {
    int64_t oy = 0;
    if (S == 1)
        for (; oy + DW_R <= g->OH; oy += DW_R) dw512_rows(y, x, w, bias, g, oy, 1, K, DW_R);
    else
        for (; oy + DW_R2 <= g->OH; oy += DW_R2) dw512_rows(y, x, w, bias, g, oy, 2, K, DW_R2);
    for (; oy < g->OH; oy++) dw512_rows(y, x, w, bias, g, oy, S, K, 1);
}


/* Stride-2 data gradient (dwconv.h), 32 columns of x from j0 (j0 even) as 16 even and 16 odd
 * columns. Even column j0 + 2l takes the taps kx of pl's parity, from y's column
 * (j0 + pl - kx) / 2 + l: consecutive lanes read consecutive columns. The column masks depend on
 * j0 only, so a chunk of columns runs down every row of x, each summing the rows of y it reads
 * with ky descending and kx descending (the gather's order: the kernel rotated, row-major). */
DW_T512 DW_AI void dwb512_cols(float *x, const float *y, const float *w, int64_t j0, const gc_dw2d *g, const int K) {
    const __m512i lo_i = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi_i = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    int64_t base[7];
    __mmask16 m[7];
#pragma GCC unroll 7
    for (int kx = 0; kx < K; kx++) {
        const int odd = ((g->pl - kx) & 1) != 0; /* this tap feeds the odd columns */
        base[kx] = (j0 + odd + g->pl - kx) / 2;
        m[kx] = (__mmask16)dw_lanes(base[kx], g->OW, 16);
    }
    const __mmask16 s0 = (__mmask16)dw_lanes(j0, g->W, 16), s1 = (__mmask16)dw_lanes(j0 + 16, g->W, 16);
    for (int64_t i = 0; i < g->H; i++) {
        __m512 e = _mm512_setzero_ps(), o = _mm512_setzero_ps();
#pragma GCC unroll 7
        for (int ky = K - 1; ky >= 0; ky--) {
            const int64_t a = i + g->pt - ky; /* 2 oy */
            if ((a & 1) || a < 0 || a / 2 >= g->OH) continue;
            const float *r = y + a / 2 * g->OW, *wr = w + ky * K;
#pragma GCC unroll 7
            for (int kx = K - 1; kx >= 0; kx--) {
                const __m512 p = _mm512_mul_ps(_mm512_set1_ps(wr[kx]), _mm512_maskz_loadu_ps(m[kx], dw_at(r, base[kx])));
                if (((g->pl - kx) & 1) != 0) o = _mm512_add_ps(o, p);
                else e = _mm512_add_ps(e, p);
            }
        }
        _mm512_mask_storeu_ps(x + i * g->W + j0, s0, _mm512_permutex2var_ps(e, lo_i, o));
        _mm512_mask_storeu_ps(x + i * g->W + j0 + 16, s1, _mm512_permutex2var_ps(e, hi_i, o));
    }
}

DW_T512 DW_AI void dwb512_plane(float *x, const float *y, const float *w, const gc_dw2d *g, const int K) {
    for (int64_t j0 = 0; j0 < g->W; j0 += 32) dwb512_cols(x, y, w, j0, g, K);
}


#define DW_INST(T, name, body, S, K)                                                                                \
    T static void name##_s##S##k##K(float *y, const float *x, const float *w, float bias, const gc_dw2d *g) {     \
        body(y, x, w, bias, g, S, K);                                                                               \
    }
DW_INST(DW_T512, dw512, dw512_plane, 1, 3)
DW_INST(DW_T512, dw512, dw512_plane, 1, 5)
DW_INST(DW_T512, dw512, dw512_plane, 1, 7)
DW_INST(DW_T512, dw512, dw512_plane, 2, 3)
DW_INST(DW_T512, dw512, dw512_plane, 2, 5)
DW_INST(DW_T512, dw512, dw512_plane, 2, 7)

/* ---------------------------------------------------------------- AVX2 */

#define DW_T256 __attribute__((target("avx2,fma,bmi2")))

/* The lanes j < 8 whose column b + j lies in [0, W), as maskload's sign bits. */
DW_T256 DW_AI __m256i dw_m256(int64_t b, int64_t W) {
    const __m256i c = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int32_t)b));
    return _mm256_and_si256(_mm256_cmpgt_epi32(c, _mm256_set1_epi32(-1)),
                            _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)W), c));
}

/* 8 floats from column b of row p: plain loads inside the row (edge 0), masked ones at its ends */
DW_T256 DW_AI __m256 dw_ld256(const float *p, int64_t b, int64_t W, const int edge) {
    return edge ? _mm256_maskload_ps(dw_at(p, b), dw_m256(b, W)) : _mm256_loadu_ps(p + b);
}

/* dw512_block with 8 lanes; edge: some lane of some tap is outside the row. */
DW_T256 DW_AI void dw256_block(float *y, int64_t ldy, const float *const *rp, const float *w, float bias, int64_t c0,
                               int64_t W, __m256i st, int full, const int S, const int K, const int R,
                               const int edge) {
    __m256 acc[DW_R];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) acc[i] = _mm256_set1_ps(bias);
#pragma GCC unroll 16
    for (int r = 0; r < (R - 1) * S + K; r++) {
        __m256 v[7];
        if (rp[r]) {
            if (S == 1) {
#pragma GCC unroll 7
                for (int kx = 0; kx < K; kx++) v[kx] = dw_ld256(rp[r], c0 + kx, W, edge);
            } else {
#pragma GCC unroll 4
                for (int p = 0; 2 * p < K; p++) {
                    const __m256 a = dw_ld256(rp[r], c0 + 2 * p, W, edge);
                    const __m256 b = dw_ld256(rp[r], c0 + 2 * p + 8, W, edge);
                    /* a0 a2 b0 b2 a4 a6 b4 b6, then the 64-bit pairs reordered: a0 a2 a4 a6 b0 b2 b4 b6 */
                    const __m256d e = _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
                    v[2 * p] = _mm256_castpd_ps(_mm256_permute4x64_pd(e, _MM_SHUFFLE(3, 1, 2, 0)));
                    if (2 * p + 1 < K) {
                        const __m256d o = _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
                        v[2 * p + 1] = _mm256_castpd_ps(_mm256_permute4x64_pd(o, _MM_SHUFFLE(3, 1, 2, 0)));
                    }
                }
            }
        } else {
#pragma GCC unroll 7
            for (int kx = 0; kx < K; kx++) v[kx] = _mm256_setzero_ps();
        }
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            const int ky = r - S * i;
            if (ky < 0 || ky >= K) continue;
#pragma GCC unroll 7
            for (int kx = 0; kx < K; kx++)
                acc[i] = _mm256_add_ps(acc[i], _mm256_mul_ps(_mm256_set1_ps(w[ky * K + kx]), v[kx]));
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
        if (full) _mm256_storeu_ps(y + i * ldy, acc[i]);
        else _mm256_maskstore_ps(y + i * ldy, st, acc[i]);
    }
}

DW_T256 DW_AI void dw256_rows(float *y, const float *x, const float *w, float bias, const gc_dw2d *g, int64_t oy,
                              const int S, const int K, const int R) {
    const float *rp[(DW_R > DW_R2 ? DW_R : DW_R2) * 2 + 7];
    const int nr = (R - 1) * S + K;
    for (int r = 0; r < nr; r++) {
        const int64_t iy = oy * S - g->pt + r;
        rp[r] = iy >= 0 && iy < g->H ? x + iy * g->W : NULL;
    }
    /* columns read by a chunk: c0 .. c0 + 8 S + K - 2 (stride 2: pairs up to c0 + K - 1 + 15) */
    const int64_t span = S == 1 ? 8 + K - 1 : 16 + K - 1;
    for (int64_t x0 = 0; x0 < g->OW; x0 += 8) {
        const int64_t n = g->OW - x0 < 8 ? g->OW - x0 : 8, c0 = x0 * S - g->pl;
        const __m256i st = dw_m256(0, n); /* lanes j < n */
        float *yb = y + oy * g->OW + x0;
        if (c0 >= 0 && c0 + span <= g->W) dw256_block(yb, g->OW, rp, w, bias, c0, g->W, st, n == 8, S, K, R, 0);
        else dw256_block(yb, g->OW, rp, w, bias, c0, g->W, st, n == 8, S, K, R, 1);
    }
}

DW_T256 DW_AI void dw256_plane(float *y, const float *x, const float *w, float bias, const gc_dw2d *g, const int S,
                               const int K) {
    int64_t oy = 0;
    if (S == 1)
        for (; oy + DW_R <= g->OH; oy += DW_R) dw256_rows(y, x, w, bias, g, oy, 1, K, DW_R);
    else
        for (; oy + DW_R2 <= g->OH; oy += DW_R2) dw256_rows(y, x, w, bias, g, oy, 2, K, DW_R2);
    for (; oy < g->OH; oy++) dw256_rows(y, x, w, bias, g, oy, S, K, 1);
}


/* dwb512_cols with 8 lanes: 16 columns from j0 */
DW_T256 DW_AI void dwb256_cols(float *x, const float *y, const float *w, int64_t j0, const gc_dw2d *g, const int K) {
    int64_t base[7];
    __m256i m[7];
#pragma GCC unroll 7
    for (int kx = 0; kx < K; kx++) {
        const int odd = ((g->pl - kx) & 1) != 0;
        base[kx] = (j0 + odd + g->pl - kx) / 2;
        m[kx] = dw_m256(base[kx], g->OW);
    }
    const __m256i s0 = dw_m256(j0, g->W), s1 = dw_m256(j0 + 8, g->W);
    for (int64_t i = 0; i < g->H; i++) {
        __m256 e = _mm256_setzero_ps(), o = _mm256_setzero_ps();
#pragma GCC unroll 7
        for (int ky = K - 1; ky >= 0; ky--) {
            const int64_t a = i + g->pt - ky; /* 2 oy */
            if ((a & 1) || a < 0 || a / 2 >= g->OH) continue;
            const float *r = y + a / 2 * g->OW, *wr = w + ky * K;
#pragma GCC unroll 7
            for (int kx = K - 1; kx >= 0; kx--) {
                const __m256 p = _mm256_mul_ps(_mm256_set1_ps(wr[kx]), _mm256_maskload_ps(dw_at(r, base[kx]), m[kx]));
                if (((g->pl - kx) & 1) != 0) o = _mm256_add_ps(o, p);
                else e = _mm256_add_ps(e, p);
            }
        }
        /* e0 o0 e1 o1 | e4 o4 e5 o5 and e2 o2 e3 o3 | e6 o6 e7 o7, then their 128-bit halves in order */
        const __m256 a = _mm256_unpacklo_ps(e, o), b = _mm256_unpackhi_ps(e, o);
        _mm256_maskstore_ps(x + i * g->W + j0, s0, _mm256_permute2f128_ps(a, b, 0x20));
        _mm256_maskstore_ps(x + i * g->W + j0 + 8, s1, _mm256_permute2f128_ps(a, b, 0x31));
    }
}

DW_T256 DW_AI void dwb256_plane(float *x, const float *y, const float *w, const gc_dw2d *g, const int K) {
    for (int64_t j0 = 0; j0 < g->W; j0 += 16) dwb256_cols(x, y, w, j0, g, K);
}


DW_INST(DW_T256, dw256, dw256_plane, 1, 3)
DW_INST(DW_T256, dw256, dw256_plane, 1, 5)
DW_INST(DW_T256, dw256, dw256_plane, 1, 7)
DW_INST(DW_T256, dw256, dw256_plane, 2, 3)
DW_INST(DW_T256, dw256, dw256_plane, 2, 5)
DW_INST(DW_T256, dw256, dw256_plane, 2, 7)

#define DWB_INST(T, name, body, K)                                                                                  \
    T static void name##_k##K(float *x, const float *y, const float *w, const gc_dw2d *g) { body(x, y, w, g, K); }
DWB_INST(DW_T512, dwb512, dwb512_plane, 3)
DWB_INST(DW_T512, dwb512, dwb512_plane, 5)
DWB_INST(DW_T512, dwb512, dwb512_plane, 7)
DWB_INST(DW_T256, dwb256, dwb256_plane, 3)
DWB_INST(DW_T256, dwb256, dwb256_plane, 5)
DWB_INST(DW_T256, dwb256, dwb256_plane, 7)

typedef void (*dwb_fn)(float *x, const float *y, const float *w, const gc_dw2d *g);
/* [isa - 1][(K - 3) / 2] */
static const dwb_fn dwb_tab[2][3] = {{dwb256_k3, dwb256_k5, dwb256_k7}, {dwb512_k3, dwb512_k5, dwb512_k7}};

void gc_dw2d_backward_s2(float *x, const float *y, const float *w, const gc_dw2d *g, int isa) {
    dwb_tab[isa - 1][(g->k - 3) / 2](x, y, w, g);
}

typedef void (*dw_fn)(float *y, const float *x, const float *w, float bias, const gc_dw2d *g);
/* [isa - 1][stride - 1][(K - 3) / 2] */
static const dw_fn dw_tab[2][2][3] = {
    {{dw256_s1k3, dw256_s1k5, dw256_s1k7}, {dw256_s2k3, dw256_s2k5, dw256_s2k7}},
    {{dw512_s1k3, dw512_s1k5, dw512_s1k7}, {dw512_s2k3, dw512_s2k5, dw512_s2k7}},
};

void gc_dw2d_forward(float *y, const float *x, const float *w, float bias, const gc_dw2d *g, int isa) {
    dw_tab[isa - 1][g->s - 1][(g->k - 3) / 2](y, x, w, bias, g);
}
#else
void gc_dw2d_forward(float *y, const float *x, const float *w, float bias, const gc_dw2d *g, int isa) {
    (void)y, (void)x, (void)w, (void)bias, (void)g, (void)isa; /* gc_dw2d_ok said no */
}
void gc_dw2d_backward_s2(float *x, const float *y, const float *w, const gc_dw2d *g, int isa) {
    (void)x, (void)y, (void)w, (void)g, (void)isa; /* gc_dw2d_ok said no */
}
#endif

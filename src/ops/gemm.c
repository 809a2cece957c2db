/* Gemm and MatMul: cblas_sgemm forward and backward (gradients to A, B, and Gemm's C).
 *
 * Gemm: Y (M, N) = alpha * A' B' + beta * C, A' = A or A^T (transA), B' likewise, C broadcast
 * to (M, N) one-directionally. Y is prefilled with beta * C and the GEMM accumulates into it.
 * MatMul: numpy semantics (1-D operands promoted and their dim removed again, leading batch dims
 * broadcast). When B is a single matrix and A has one per output batch (a linear layer on
 * (batch..., M, K)), the batch folds into one (batch*M, K) GEMM; otherwise one GEMM per batch.
 * Backward accumulates with beta = 1 in batch order: deterministic, even under broadcasting.
 * GEMMs: src/ops/sgemm.c's kernels (GCAM_NO_SGEMM=1: cblas_sgemm; a GEMV-like product, M or N
 * under 4, e.g. a batch-1 classifier, goes to cblas_sgemm either way).
 * Threads: OpenBLAS's own, or (single-threaded OpenBLAS) an OpenMP split of each GEMM. */
#include "kutil.h"
#include "sgemm.h"

#include <cblas.h>
#include <limits.h>
#include <omp.h>

#define GM_OMP_MIN 32768


/* ---------------------------------------------------------------- Gemm */

typedef struct gemm_params {
    int transA, transB;
    float alpha, beta;
} gemm_params;

static gcam_status gemm_parse(gc_node *n, gc_err *err) {
    int64_t ta = gc_attr_int(n, "transA", 0), tb = gc_attr_int(n, "transB", 0);
    if ((ta != 0 && ta != 1) || (tb != 0 && tb != 1))
        return gc_fail(err, GCAM_E_FORMAT, "node '%s' (Gemm): attributes transA/transB must be 0 or 1, got %lld/%lld",
                       n->name, (long long)ta, (long long)tb);
    gemm_params *p = calloc(1, sizeof *p);
    if (!p) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
    p->transA = (int)ta;
    p->transB = (int)tb;
    p->alpha = gc_attr_float(n, "alpha", 1.0f);
    p->beta = gc_attr_float(n, "beta", 1.0f);
    /* opset < 7 'broadcast' is ignored: broadcasting C is always allowed */
    free(n->params);
    n->params = p;
    return GCAM_OK;
}

typedef struct gemm_geom {
    int64_t M, N, K;
    int64_t cs0, cs1; /* element strides of C over Y's (row, col), 0 on broadcast axes */
} gemm_geom;

static gcam_status gemm_setup(gc_kctx *k, gemm_geom *g) {
    const gemm_params *p = k->params;
    const gc_tensor *a = k->in[0], *b = k->n_in > 1 ? k->in[1] : NULL, *c = k->n_in > 2 ? k->in[2] : NULL;
    memset(g, 0, sizeof *g);
    if (!p) return gc_kfail(k, GCAM_E_INTERNAL, "attributes not parsed");
    if (!a || !b) return gc_kfail(k, GCAM_E_FORMAT, "inputs A and B are required");
    if (a->dtype != GC_F32 || b->dtype != GC_F32 || (c && c->dtype != GC_F32))
        return gc_kfail(k, GCAM_E_UNSUPPORTED, "only float32 A, B and C are supported");
    if (a->shape.ndim != 2 || b->shape.ndim != 2)
        return gc_kfail(k, GCAM_E_SHAPE, "A and B must be 2-D (got ranks %d and %d)", a->shape.ndim, b->shape.ndim);
    g->M = a->shape.d[p->transA ? 1 : 0];
    g->K = a->shape.d[p->transA ? 0 : 1];
    int64_t kb = b->shape.d[p->transB ? 1 : 0];
    g->N = b->shape.d[p->transB ? 0 : 1];
    if (g->M < 0 || g->N < 0 || g->K < 0 || kb != g->K)
        return gc_kfail(k, GCAM_E_SHAPE, "A' (%lld, %lld) and B' (%lld, %lld) do not multiply", (long long)g->M,
                        (long long)g->K, (long long)kb, (long long)g->N);
    int64_t mn;
    if (g->M > INT_MAX || g->N > INT_MAX || g->K > INT_MAX || gc_mul_i64(&mn, g->M, g->N))
        return gc_kfail(k, GCAM_E_LIMIT, "matrix sizes exceed the GEMM limits");
    g->cs0 = g->cs1 = 0;
    if (c) {
        gc_shape ys = {.ndim = 2, .d = {g->M, g->N}};
        int cr = c->shape.ndim;
        if (cr > 2) return gc_kfail(k, GCAM_E_SHAPE, "C must have rank <= 2, got %d", cr);
        for (int i = 0; i < cr; i++) {
            int64_t want = ys.d[2 - cr + i];
            if (c->shape.d[i] != 1 && c->shape.d[i] != want)
                return gc_kfail(k, GCAM_E_SHAPE, "C does not broadcast to (%lld, %lld)", (long long)g->M,
                                (long long)g->N);
        }
        int64_t st[GC_MAX_DIMS];
        gc_broadcast_strides(st, &c->shape, &ys);
        g->cs0 = st[0];
        g->cs1 = st[1];
    }
    return GCAM_OK;
}

static gcam_status gemm_infer(gc_kctx *k) {
    gemm_geom g;
    gcam_status st = gemm_setup(k, &g);
    if (st) return st;
    k->out[0]->dtype = GC_F32;
    k->out[0]->shape.ndim = 2;
    k->out[0]->shape.d[0] = g.M;
    k->out[0]->shape.d[1] = g.N;
    return GCAM_OK;
}

static gcam_status gemm_forward(gc_kctx *k) {
    const gemm_params *p = k->params;
    gemm_geom g;
    gcam_status st = gemm_setup(k, &g);
    if (st) return st;
    const float *a = k->in[0]->data, *b = k->in[1]->data;          /* A (M, K) or (K, M); B (K, N) or (N, K) */
    const gc_tensor *ct = k->n_in > 2 ? k->in[2] : NULL;
    float *y = k->out[0]->data;                                     /* (M, N) */
    const int nth = GC_MAX(1, k->nthreads), isa = gc_sg_isa(gc_ktune(k));
    float bb = 0.0f;
    if (ct && p->beta != 0.0f) {
        const float *c = ct->data, beta = p->beta;
        const int64_t M = g.M, N = g.N, s0 = g.cs0, s1 = g.cs1;
#pragma omp parallel for num_threads(nth) schedule(static) if (M * N > GM_OMP_MIN)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) y[i * N + j] = beta * c[i * s0 + j * s1];
        bb = 1.0f;
    }
    if (g.M == 0 || g.N == 0) return GCAM_OK;
    if (g.K == 0) {
        if (bb == 0.0f) memset(y, 0, (size_t)(g.M * g.N) * sizeof(float));
        return GCAM_OK;
    }
    gc_sg_gemm(isa, nth, p->transA, p->transB, g.M, g.N, g.K, p->alpha, a, p->transA ? g.M : g.K, b, p->transB ? g.K : g.N, bb,
             y, g.N);
    return GCAM_OK;
}

/* d (K) += alpha sum_j g[j] B[kk, j], B's row kk contiguous at bt + kk * es: a column walk of B per
 * nonzero (stride es) costs a cache line an element, so a dense row is K dot products instead, summed
 * in 8 lanes (a fixed order: the same bits from run to run). */
static void sparse_dA_dots(float *d, const float *g, const float *bt, int64_t N, int64_t K, int64_t es, float alpha) {
    for (int64_t kk = 0; kk < K; kk++) {
        const float *r = bt + kk * es; /* (N) */
        float acc[8] = {0};
        int64_t j = 0;
        for (; j + 8 <= N; j += 8)
            for (int l = 0; l < 8; l++) acc[l] += g[j + l] * r[j + l];
        for (int l = 0; j < N; j++, l++) acc[l] += g[j] * r[j];
        d[kk] += alpha * (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
    }
}

/* dA (M, K) += alpha dY (M, N) Bt, Bt (N, K) with row j at bt + j * rs and element stride es: one axpy
 * per nonzero of dY. A class target's dY is one-hot, and reading the one row it selects instead of the
 * whole weight matrix (5 MB for a 1000 x 1280 classifier) is what a batch-1 backward costs otherwise.
 * Returns 0, touching nothing, when dY is too dense for this to pay. Same sums as the GEMM up to
 * rounding order; exactly the selected row times alpha dY for a one-hot row. */
static int sparse_dA(float *ga, const float *gy, const float *bt, int64_t M, int64_t N, int64_t K, int64_t rs,
                     int64_t es, float alpha) {
    int64_t nnz = 0, lim = M * N / 8;
    for (int64_t i = 0; i < M * N; i++)
        if (gy[i] != 0.0f && ++nnz > lim) return 0; /* NaN counts as nonzero, so it still propagates */
    for (int64_t i = 0; i < M; i++) {
        const float *g = gy + i * N;
        float *d = ga + i * K;
        int64_t nz = 0;
        for (int64_t j = 0; j < N; j++) nz += g[j] != 0.0f;
        if (rs == 1 && es != 1 && nz * 16 >= N) { /* a dense row of a row-sparse dY (ViT's class token) */
            sparse_dA_dots(d, g, bt, N, K, es, alpha);
            continue;
        }
        for (int64_t j = 0; j < N; j++) {
            if (g[j] == 0.0f) continue;
            const float s = alpha * g[j];
            const float *r = bt + j * rs;
            for (int64_t kk = 0; kk < K; kk++) d[kk] += s * r[kk * es];
        }
    }
    return 1;
}

static gcam_status gemm_backward(gc_kctx *k) {
    const gemm_params *p = k->params;
    gemm_geom g;
    gcam_status st = gemm_setup(k, &g);
    if (st) return st;
    if (!k->gout[0] || g.M == 0 || g.N == 0) return GCAM_OK;
    const float *gy = k->gout[0]->data; /* (M, N) */
    const int M = (int)g.M, N = (int)g.N, K = (int)g.K, nth = GC_MAX(1, k->nthreads);
    const int isa = gc_sg_isa(gc_ktune(k));
    const int lda = p->transA ? M : K, ldb = p->transB ? K : N;
    if (k->gin[0] && K > 0) {
        const float *b = k->in[1]->data;
        float *ga = k->gin[0]->data;
        if (!p->transA) { /* dA (M, K) += alpha dY B'^T */
            if (!sparse_dA(ga, gy, b, M, N, K, p->transB ? ldb : 1, p->transB ? 1 : ldb, p->alpha))
                gc_sg_gemm(isa, nth, 0, !p->transB, M, K, N, p->alpha, gy, N, b, ldb, 1.0f, ga, K);
        } else /* dA (K, M) += alpha B' dY^T */
            gc_sg_gemm(isa, nth, p->transB, 1, K, M, N, p->alpha, b, ldb, gy, N, 1.0f, ga, M);
    }
    if (k->gin[1] && K > 0) {
        const float *a = k->in[0]->data;
        float *gb = k->gin[1]->data;
        if (!p->transB) /* dB (K, N) += alpha A'^T dY */
            gc_sg_gemm(isa, nth, !p->transA, 0, K, N, M, p->alpha, a, lda, gy, N, 1.0f, gb, N);
        else /* dB (N, K) += alpha dY^T A' */
            gc_sg_gemm(isa, nth, 1, p->transA, N, K, M, p->alpha, gy, N, a, lda, 1.0f, gb, K);
    }
    if (k->n_in > 2 && k->gin[2]) { /* dC += beta * dY summed over C's broadcast axes, in row order */
        float *gc = k->gin[2]->data;
        const float beta = p->beta;
        for (int64_t i = 0; i < g.M; i++)
            for (int64_t j = 0; j < g.N; j++) gc[i * g.cs0 + j * g.cs1] += beta * gy[i * g.N + j];
    }
    return GCAM_OK;
}

/* ---------------------------------------------------------------- MatMul */

typedef struct mm_geom {
    int64_t M, N, K, nb;    /* each output batch is (M, N) = (M, K) x (K, N); nb batches */
    int nbd;                /* batch rank of the output */
    int64_t bdims[GC_MAX_DIMS];
    int64_t sa[GC_MAX_DIMS], sb[GC_MAX_DIMS]; /* per batch dim: matrix strides of A and B, 0 broadcast */
    int fold;               /* B is one matrix, A one per batch: a single (nb*M, K) GEMM */
    gc_shape yshape;
} mm_geom;

static gcam_status mm_setup(gc_kctx *k, mm_geom *g) {
    const gc_tensor *a = k->in[0], *b = k->n_in > 1 ? k->in[1] : NULL;
    memset(g, 0, sizeof *g);
    if (!a || !b) return gc_kfail(k, GCAM_E_FORMAT, "inputs A and B are required");
    if (a->dtype != GC_F32 || b->dtype != GC_F32) return gc_kfail(k, GCAM_E_UNSUPPORTED, "only float32 is supported");
    const int ra = a->shape.ndim, rb = b->shape.ndim;
    if (ra < 1 || rb < 1) return gc_kfail(k, GCAM_E_SHAPE, "MatMul operands must have rank >= 1");
    for (int i = 0; i < ra; i++)
        if (a->shape.d[i] < 0) return gc_kfail(k, GCAM_E_SHAPE, "A has an unknown dim");
    for (int i = 0; i < rb; i++)
        if (b->shape.d[i] < 0) return gc_kfail(k, GCAM_E_SHAPE, "B has an unknown dim");
    g->M = ra == 1 ? 1 : a->shape.d[ra - 2];
    g->K = a->shape.d[ra - 1];
    int64_t kb = rb == 1 ? b->shape.d[0] : b->shape.d[rb - 2];
    g->N = rb == 1 ? 1 : b->shape.d[rb - 1];
    if (kb != g->K)
        return gc_kfail(k, GCAM_E_SHAPE, "inner dims differ: A has %lld, B has %lld", (long long)g->K, (long long)kb);
    gc_shape ab = {.ndim = ra > 2 ? ra - 2 : 0}, bb = {.ndim = rb > 2 ? rb - 2 : 0}, ob;
    for (int i = 0; i < ab.ndim; i++) ab.d[i] = a->shape.d[i];
    for (int i = 0; i < bb.ndim; i++) bb.d[i] = b->shape.d[i];
    if (gc_broadcast_shape(&ob, &ab, &bb)) {
        char s1[128], s2[128];
        return gc_kfail(k, GCAM_E_SHAPE, "batch dims %s and %s do not broadcast", gc_shape_str(&ab, s1, sizeof s1),
                        gc_shape_str(&bb, s2, sizeof s2));
    }
    g->nbd = ob.ndim;
    g->nb = 1;
    for (int i = 0; i < ob.ndim; i++) {
        g->bdims[i] = ob.d[i];
        if (gc_mul_i64(&g->nb, g->nb, ob.d[i])) return gc_kfail(k, GCAM_E_LIMIT, "batch size overflows");
    }
    gc_broadcast_strides(g->sa, &ab, &ob);
    gc_broadcast_strides(g->sb, &bb, &ob);
    int64_t na = gc_shape_numel(&ab), nbb = gc_shape_numel(&bb), t;
    g->fold = nbb == 1 && na == g->nb;
    int64_t rows = g->fold ? g->nb * g->M : g->M;
    if (g->M > INT_MAX || g->N > INT_MAX || g->K > INT_MAX || rows > INT_MAX || gc_mul_i64(&t, g->nb, g->M) ||
        gc_mul_i64(&t, t, g->N) || gc_mul_i64(&t, g->nb, g->K) || gc_mul_i64(&t, t, GC_MAX(g->M, g->N)))
        return gc_kfail(k, GCAM_E_LIMIT, "matrix sizes exceed the GEMM limits");
    g->yshape.ndim = 0;
    for (int i = 0; i < ob.ndim; i++) g->yshape.d[g->yshape.ndim++] = ob.d[i];
    if (ra > 1) g->yshape.d[g->yshape.ndim++] = g->M;
    if (rb > 1) g->yshape.d[g->yshape.ndim++] = g->N;
    return GCAM_OK;
}

static gcam_status mm_infer(gc_kctx *k) {
    mm_geom g;
    gcam_status st = mm_setup(k, &g);
    if (st) return st;
    k->out[0]->dtype = GC_F32;
    k->out[0]->shape = g.yshape;
    return GCAM_OK;
}

/* Matrix offsets (in matrices) of A and B for every output batch, walked in order. */
typedef struct mm_iter {
    int64_t idx[GC_MAX_DIMS], oa, ob;
} mm_iter;
static void mm_next(mm_iter *it, const mm_geom *g) {
    for (int a = g->nbd - 1; a >= 0; a--) {
        it->oa += g->sa[a];
        it->ob += g->sb[a];
        if (++it->idx[a] < g->bdims[a]) return;
        it->oa -= g->sa[a] * g->bdims[a];
        it->ob -= g->sb[a] * g->bdims[a];
        it->idx[a] = 0;
    }
}

static gcam_status mm_forward(gc_kctx *k) {
    mm_geom g;
    gcam_status st = mm_setup(k, &g);
    if (st) return st;
    const float *a = k->in[0]->data, *b = k->in[1]->data; /* A (..., M, K), B (..., K, N) */
    float *y = k->out[0]->data;                            /* (batch..., M, N) */
    const int M = (int)g.M, N = (int)g.N, K = (int)g.K, nth = GC_MAX(1, k->nthreads);
    const int isa = gc_sg_isa(gc_ktune(k));
    if (g.nb == 0 || M == 0 || N == 0) return GCAM_OK;
    if (K == 0) {
        memset(y, 0, (size_t)(g.nb * g.M * g.N) * sizeof(float));
        return GCAM_OK;
    }
    if (g.fold) {
        gc_sg_gemm(isa, nth, 0, 0, g.nb * g.M, N, K, 1.0f, a, K, b, N, 0.0f, y, N);
        return GCAM_OK;
    }
    mm_iter it = {{0}, 0, 0};
    for (int64_t i = 0; i < g.nb; i++, mm_next(&it, &g))
        gc_sg_gemm(isa, nth, 0, 0, M, N, K, 1.0f, a + it.oa * g.M * g.K, K, b + it.ob * g.K * g.N, N, 0.0f,
                 y + i * g.M * g.N, N);
    return GCAM_OK;
}

static gcam_status mm_backward(gc_kctx *k) {
    mm_geom g;
    gcam_status st = mm_setup(k, &g);
    if (st) return st;
    if (!k->gout[0] || g.nb == 0 || g.M == 0 || g.N == 0 || g.K == 0) return GCAM_OK;
    const float *gy = k->gout[0]->data; /* (batch..., M, N) */
    const int M = (int)g.M, N = (int)g.N, K = (int)g.K, nth = GC_MAX(1, k->nthreads);
    const int isa = gc_sg_isa(gc_ktune(k));
    float *ga = k->gin[0] ? k->gin[0]->data : NULL, *gb = k->gin[1] ? k->gin[1]->data : NULL;
    const float *a = ga || gb ? k->in[0]->data : NULL, *b = ga || gb ? k->in[1]->data : NULL;
    if (g.fold) {
        const int R = (int)(g.nb * g.M);
        if (ga && !sparse_dA(ga, gy, b, R, N, K, 1, N, 1.0f)) /* dA (R, K) += dY (R, N) B^T */
            gc_sg_gemm(isa, nth, 0, 1, R, K, N, 1.0f, gy, N, b, N, 1.0f, ga, K);
        if (gb) /* dB (K, N) += A^T (K, R) dY (R, N) */
            gc_sg_gemm(isa, nth, 1, 0, K, N, R, 1.0f, a, K, gy, N, 1.0f, gb, N);
        return GCAM_OK;
    }
    mm_iter it = {{0}, 0, 0};
    for (int64_t i = 0; i < g.nb; i++, mm_next(&it, &g)) {
        const float *gyi = gy + i * g.M * g.N;
        if (ga && !sparse_dA(ga + it.oa * g.M * g.K, gyi, b + it.ob * g.K * g.N, M, N, K, 1, N, 1.0f))
            gc_sg_gemm(isa, nth, 0, 1, M, K, N, 1.0f, gyi, N, b + it.ob * g.K * g.N, N, 1.0f, ga + it.oa * g.M * g.K,
                     K);
        if (gb)
            gc_sg_gemm(isa, nth, 1, 0, K, N, M, 1.0f, a + it.oa * g.M * g.K, K, gyi, N, 1.0f, gb + it.ob * g.K * g.N,
                     N);
    }
    return GCAM_OK;
}

/* dA needs B and dB needs A; the masks are static, so backward keeps both. */
const gc_opdef gc_def_Gemm = {.name = "Gemm", .min_opset = 1, .parse = gemm_parse, .infer = gemm_infer,
                              .forward = gemm_forward, .backward = gemm_backward,
                              .bw_in = (1u << 0) | (1u << 1), .diff_in = (1u << 0) | (1u << 1) | (1u << 2)};
const gc_opdef gc_def_MatMul = {.name = "MatMul", .min_opset = 1, .infer = mm_infer, .forward = mm_forward,
                                .backward = mm_backward, .bw_in = (1u << 0) | (1u << 1),
                                .diff_in = (1u << 0) | (1u << 1)};

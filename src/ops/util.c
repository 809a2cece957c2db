/* Helpers shared by the op families: broadcasting, strides, constant int inputs, axes. */
#include "kutil.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>

static pthread_mutex_t kcache_mutex = PTHREAD_MUTEX_INITIALIZER;
void gc_kcache_lock(void) { pthread_mutex_lock(&kcache_mutex); }
void gc_kcache_unlock(void) { pthread_mutex_unlock(&kcache_mutex); }

#define GC_PAR_GEMM_MIN 1e6 /* multiply-adds below which one thread does a GEMM */

gcam_status gc_broadcast_shape(gc_shape *out, const gc_shape *a, const gc_shape *b) {
    int nd = GC_MAX(a->ndim, b->ndim);
    if (a->ndim < 0 || b->ndim < 0 || nd > GC_MAX_DIMS) return GCAM_E_SHAPE;
    out->ndim = nd;
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
        if (da == db || db == 1) out->d[i] = da;
        else if (da == 1) out->d[i] = db;
        else return GCAM_E_SHAPE;
    }
    return GCAM_OK;
}

void gc_shape_strides(int64_t *strides, const gc_shape *s) {
    int64_t acc = 1;
    for (int i = s->ndim - 1; i >= 0; i--) {
        strides[i] = acc;
        acc *= s->d[i];
    }
}

void gc_broadcast_strides(int64_t *strides, const gc_shape *in, const gc_shape *out) {
    int64_t own[GC_MAX_DIMS];
    gc_shape_strides(own, in);
    int off = out->ndim - in->ndim;
    for (int i = 0; i < out->ndim; i++) {
        int j = i - off;
        strides[i] = (j >= 0 && in->d[j] != 1) ? own[j] : 0;
    }
}

int64_t gc_tensor_ints(const gc_tensor *t, int64_t *v, int64_t max) {
    if (!t || !t->data) return -1;
    int64_t n = gc_shape_numel(&t->shape);
    if (n < 0 || n > max) return -1;
    if (t->dtype == GC_I64) {
        memcpy(v, t->data, (size_t)n * sizeof(int64_t));
    } else if (t->dtype == GC_BOOL) {
        for (int64_t i = 0; i < n; i++) v[i] = ((const uint8_t *)t->data)[i];
    } else {
        return -1;
    }
    return n;
}

int gc_norm_axis(int64_t axis, int ndim) {
    if (axis < -ndim || axis >= ndim) return -1;
    return (int)(axis < 0 ? axis + ndim : axis);
}

/* cblas_sgemm, or cblas_sgemv when op(A) is one row or op(B) one column: OpenBLAS 0.3.21's sgemm
 * packs all of op(B) for a single row of A (a batch-1 classifier's 8 MB of weights copied, then
 * read again: resnet50's 2048 x 1000 Gemm took 1.5 ms where reading the weights once takes 0.4). */
static void blas_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                      const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (K > 0 && (M == 1 || N == 1)) {
        if (beta == 0.0f) /* C is not to be read (it may hold NaN): gemv's beta then scales zeros */
            for (int64_t i = 0; i < (M == 1 ? N : M); i++) C[M == 1 ? i : i * ldc] = 0.0f;
        if (M == 1) /* c (N) = alpha op(B)^T a + beta c, a op(A)'s one row */
            cblas_sgemv(CblasRowMajor, tb ? CblasNoTrans : CblasTrans, (int)(tb ? N : K), (int)(tb ? K : N), alpha, B,
                        (int)ldb, A, (int)(ta ? lda : 1), beta, C, 1);
        else /* c (M, stride ldc) = alpha op(A) b + beta c, b op(B)'s one column */
            cblas_sgemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, (int)(ta ? K : M), (int)(ta ? M : K), alpha, A,
                        (int)lda, B, (int)(tb ? 1 : ldb), beta, C, (int)ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
                alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

void gc_sgemm(int nt, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
              int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    if (nt > 1 && (double)M * (double)N * (double)K >= GC_PAR_GEMM_MIN && openblas_get_num_threads() == 1) {
        const int split_n = N >= M;
        const int64_t L = split_n ? N : M;
#pragma omp parallel num_threads(nt)
        {
            const int t = omp_get_thread_num(), n = omp_get_num_threads();
            /* slice bounds rounded to 16 so every slice but the last keeps whole SIMD panels */
            int64_t a0 = t == 0 ? 0 : GC_MIN(L, (L * t / n + 15) & ~(int64_t)15);
            int64_t a1 = t == n - 1 ? L : GC_MIN(L, (L * (t + 1) / n + 15) & ~(int64_t)15);
            if (a1 > a0) {
                if (split_n)
                    blas_gemm(ta, tb, M, a1 - a0, K, alpha, A, lda, tb ? B + a0 * ldb : B + a0, ldb, beta, C + a0, ldc);
                else
                    blas_gemm(ta, tb, a1 - a0, N, K, alpha, ta ? A + a0 : A + a0 * lda, lda, B, ldb, beta, C + a0 * ldc,
                              ldc);
            }
        }
        return;
    }
    blas_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

gcam_status gc_node_fail(const gc_node *n, gc_err *err, gcam_status code, const char *fmt, ...) {
    char text[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return gc_fail(err, code, "node '%s' (%s): %s", n->name ? n->name : "?", n->op_type, text);
}

/* Helpers shared by the kernel files beyond ops.h: the threaded GEMM, node-named failures at
 * parse time, the thread count of a kernel context. (Implemented in util.c.) */
#ifndef GC_OPS_KUTIL_H
#define GC_OPS_KUTIL_H

#include "ops.h"

/* Row-major C (M, N) = alpha op(A) op(B) + beta C. When OpenBLAS runs single-threaded (the
 * context then owns all threads through OpenMP: one pool for every op, no two pools spinning
 * against each other), the larger of M and N is split over nt OpenMP threads, each making a
 * single-threaded call on its slice (static split: deterministic); otherwise OpenBLAS threads. */
void gc_sgemm(int nt, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
              const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* gc_fail with the node named ("node 'n' (Op): text"), for parsing where there is no kernel context. */
gcam_status gc_node_fail(const gc_node *n, gc_err *err, gcam_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The build targets x86-64-v2 (SSE4.2); compute-bound loops get an AVX2+FMA clone too, picked
 * at load time when the CPU has it. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GC_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define GC_CLONES
#endif

/* One process-wide lock around building a node's kcache (rare: once per node and model). */
void gc_kcache_lock(void);
void gc_kcache_unlock(void);

/* gx (n) += a * (Relu's VJP at output y (n) for gradient gy (n)) under rule (assign: gx =
 * instead, gx's old contents unread): Relu's backward (a = 1) and the ops that fuse it
 * (.fuse_relu_bw), with the unfused pair's rounding (the VJP, then times a). Written as selects
 * GCC if-converts and vectorises: the rule hoisted out of the loops, & not && (a branch on the
 * gradient's sign mispredicts half the time: 10x slower). */
#define GC_RELU_VJP_LOOP(op, sel)                                                                  \
    for (int64_t i = 0; i < n; i++) {                                                              \
        const float g = gy[i];                                                                     \
        gx[i] op(sel ? g : 0.0f) * a;                                                              \
    }
static inline void gc_relu_vjp_axpy(float *gx, const float *gy, const float *y, int64_t n, float a, gc_rule rule,
                                    int assign) {
    switch (rule) {
    case GC_RULE_GUIDED: /* where the forward passed and the gradient is positive */
        if (assign) GC_RELU_VJP_LOOP(=, (y[i] > 0.0f) & (g > 0.0f))
        else GC_RELU_VJP_LOOP(+=, (y[i] > 0.0f) & (g > 0.0f))
        break;
    case GC_RULE_DECONV: /* where the gradient is positive, whatever the forward did */
        if (assign) GC_RELU_VJP_LOOP(=, g > 0.0f)
        else GC_RELU_VJP_LOOP(+=, g > 0.0f)
        break;
    default:
        if (assign) GC_RELU_VJP_LOOP(=, y[i] > 0.0f)
        else GC_RELU_VJP_LOOP(+=, y[i] > 0.0f)
        break;
    }
}
#undef GC_RELU_VJP_LOOP

/* g (n) = Relu's VJP at output y (n) of g itself, in place (an Add's gradient shared with its
 * inputs', fuse.c): gc_relu_vjp_axpy's selects with a = 1, the same values. Its own loop because
 * gx == gy defeats the vectoriser's overlap check there (a scalar loop). */
#define GC_RELU_VJP_INPLACE(sel)                                                                   \
    for (int64_t i = 0; i < n; i++) {                                                              \
        const float v = g[i];                                                                      \
        g[i] = sel ? v : 0.0f;                                                                     \
    }
static inline void gc_relu_vjp_inplace(float *restrict g, const float *restrict y, int64_t n, gc_rule rule) {
    switch (rule) {
    case GC_RULE_GUIDED: GC_RELU_VJP_INPLACE((y[i] > 0.0f) & (v > 0.0f)) break;
    case GC_RULE_DECONV: GC_RELU_VJP_INPLACE(v > 0.0f) break;
    default: GC_RELU_VJP_INPLACE(y[i] > 0.0f) break;
    }
}
/* g (n) = Clip's VJP at output y (n) of g itself, in place (fuse.c's relu_dx with a Clip): act.c's
 * clip_bw_rows' selects on a fresh gradient, the same values; the rules apply with lo == 0 only
 * (ReLU6), as there. */
static inline void gc_clip_vjp_inplace(float *restrict g, const float *restrict y, int64_t n, float lo, float hi,
                                       gc_rule rule) {
    switch (lo == 0.0f ? rule : GC_RULE_STANDARD) {
    case GC_RULE_GUIDED: GC_RELU_VJP_INPLACE((y[i] > lo) & (y[i] < hi) & (v > 0.0f)) break;
    case GC_RULE_DECONV: GC_RELU_VJP_INPLACE(v > 0.0f) break;
    default: GC_RELU_VJP_INPLACE((y[i] > lo) & (y[i] < hi)) break;
    }
}
#undef GC_RELU_VJP_INPLACE

/* Threads a kernel may use (at least 1). */
static inline int gc_kthreads(const gc_kctx *k) { return k->nthreads > 0 ? k->nthreads : 1; }

#endif

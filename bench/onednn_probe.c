/* onednn_probe: oneDNN's C API against OpenBLAS on DenseNet-121's batch-8 convolution shapes, one
 * thread, best of 5 (CPU time). A measurement behind docs/performance.md ("What was tried"), not
 * part of the build: it needs Debian's libdnnl-dev, which gradcam itself does not use.
 *
 *   apt-get install libdnnl-dev
 *   gcc -O2 -std=c17 bench/onednn_probe.c -o /tmp/onednn_probe -lopenblas -ldnnl
 *   OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /tmp/onednn_probe
 *
 * For each shape: oneDNN's convolution with the layouts it prefers (format "any": blocked nChw8c
 * activations on AVX2), with plain NCHW tensors (what PyTorch hands it), and dnnl_sgemm against
 * cblas_sgemm on the per-image GEMM of a 1x1 convolution (Y (M, HW) = W (M, C) . X (C, HW)). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <cblas.h>
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CK(x)                                                                                      \
    do {                                                                                           \
        dnnl_status_t s_ = (x);                                                                    \
        if (s_ != dnnl_success) {                                                                  \
            fprintf(stderr, "onednn_probe: %s failed (status %d)\n", #x, (int)s_);                \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "onednn_probe: out of memory\n");
        exit(1);
    }
    return p;
}

static dnnl_engine_t eng;
static dnnl_stream_t strm;

/* One convolution (N, C, H, H) -> (N, M, H, H), k x k, stride 1, "same" padding, with bias. */
static double conv_ms(int N, int C, int M, int H, int k, int blocked, const char **impl) {
    const int p = k / 2;
    dnnl_dims_t sd = {N, C, H, H}, wd = {M, C, k, k}, bd = {M}, dd = {N, M, H, H}, st = {1, 1}, pd = {p, p};
    dnnl_memory_desc_t s_md, w_md, b_md, d_md;
    const dnnl_format_tag_t at = blocked ? dnnl_format_tag_any : dnnl_nchw;
    CK(dnnl_memory_desc_init_by_tag(&s_md, 4, sd, dnnl_f32, at));
    CK(dnnl_memory_desc_init_by_tag(&w_md, 4, wd, dnnl_f32, blocked ? dnnl_format_tag_any : dnnl_oihw));
    CK(dnnl_memory_desc_init_by_tag(&b_md, 1, bd, dnnl_f32, dnnl_x));
    CK(dnnl_memory_desc_init_by_tag(&d_md, 4, dd, dnnl_f32, at));
    dnnl_convolution_desc_t cd;
    CK(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &s_md, &w_md, &b_md,
                                          &d_md, st, pd, pd));
    dnnl_primitive_desc_t prd;
    CK(dnnl_primitive_desc_create(&prd, &cd, NULL, eng, NULL));
    CK(dnnl_primitive_desc_query(prd, dnnl_query_impl_info_str, 0, impl));
    const dnnl_query_t qs[4] = {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_weights_md, dnnl_query_dst_md};
    const int args[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST};
    dnnl_memory_t mem[4];
    dnnl_exec_arg_t ea[4];
    for (int i = 0; i < 4; i++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(prd, qs[i], i == 2);
        CK(dnnl_memory_create(&mem[i], md, eng, DNNL_MEMORY_ALLOCATE));
        void *h = NULL;
        CK(dnnl_memory_get_data_handle(mem[i], &h));
        for (size_t j = 0, n = dnnl_memory_desc_get_size(md) / sizeof(float); j < n; j++)
            ((float *)h)[j] = 0.1f * (float)(j % 7);
        ea[i].arg = args[i];
        ea[i].memory = mem[i];
    }
    dnnl_primitive_t prim;
    CK(dnnl_primitive_create(&prim, prd));
    double best = 1e30;
    for (int r = 0; r < 6; r++) { /* the first run is a warm-up */
        double t0 = cpu_now();
        CK(dnnl_primitive_execute(prim, strm, 4, ea));
        CK(dnnl_stream_wait(strm));
        double t = cpu_now() - t0;
        if (r > 0 && t < best) best = t;
    }
    dnnl_primitive_destroy(prim);
    for (int i = 0; i < 4; i++) dnnl_memory_destroy(mem[i]);
    dnnl_primitive_desc_destroy(prd);
    return best * 1e3;
}

/* N per-image GEMMs of a 1x1 convolution, with cblas_sgemm (blas=1) or dnnl_sgemm (0). */
static double gemm_ms(int N, int C, int M, int H, int blas) {
    const long HW = (long)H * H;
    float *W = xmalloc(sizeof(float) * (size_t)M * (size_t)C);              /* (M, C) */
    float *X = xmalloc(sizeof(float) * (size_t)N * (size_t)C * (size_t)HW); /* (N, C, HW) */
    float *Y = xmalloc(sizeof(float) * (size_t)N * (size_t)M * (size_t)HW); /* (N, M, HW) */
    for (long i = 0; i < (long)M * C; i++) W[i] = 0.01f * (float)(i % 5);
    for (long i = 0; i < (long)N * C * HW; i++) X[i] = 0.1f * (float)(i % 7);
    double best = 1e30;
    for (int r = 0; r < 6; r++) {
        double t0 = cpu_now();
        for (int n = 0; n < N; n++) {
            const float *x = X + (long)n * C * HW;
            float *y = Y + (long)n * M * HW;
            if (blas)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, (int)HW, C, 1.0f, W, C, x, (int)HW, 0.0f, y,
                            (int)HW);
            else
                CK(dnnl_sgemm('N', 'N', M, HW, C, 1.0f, W, C, x, HW, 0.0f, y, HW));
        }
        double t = cpu_now() - t0;
        if (r > 0 && t < best) best = t;
    }
    free(W);
    free(X);
    free(Y);
    return best * 1e3;
}

int main(void) {
    CK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CK(dnnl_stream_create(&strm, eng, dnnl_stream_default_flags));
    static const struct { int C, M, H, k; } L[] = {
        {256, 128, 56, 1}, {512, 128, 28, 1}, {1024, 128, 14, 1}, /* bottlenecks (1x1) of blocks 1-3 */
        {128, 32, 56, 3},  {128, 32, 28, 3},  {128, 32, 14, 3},   /* growth convolutions (3x3) */
    };
    printf("| layer (batch 8) | GFLOP | oneDNN blocked | oneDNN NCHW | cblas_sgemm | dnnl_sgemm |\n");
    printf("| --- | --- | --- | --- | --- | --- |\n");
    for (size_t i = 0; i < sizeof L / sizeof L[0]; i++) {
        const double fl = 2.0 * 8 * L[i].C * L[i].M * L[i].k * L[i].k * L[i].H * L[i].H * 1e-9;
        const char *ib = "", *in = "";
        double b = conv_ms(8, L[i].C, L[i].M, L[i].H, L[i].k, 1, &ib);
        double n = conv_ms(8, L[i].C, L[i].M, L[i].H, L[i].k, 0, &in);
        printf("| %d->%d %dx%d k%d | %.2f | %.1f ms (%s) | %.1f ms (%s) |", L[i].C, L[i].M, L[i].H, L[i].H, L[i].k, fl,
               b, ib, n, in);
        if (L[i].k == 1)
            printf(" %.1f ms | %.1f ms |\n", gemm_ms(8, L[i].C, L[i].M, L[i].H, 1), gemm_ms(8, L[i].C, L[i].M, L[i].H, 0));
        else
            printf(" | |\n");
    }
    dnnl_stream_destroy(strm);
    dnnl_engine_destroy(eng);
    return 0;
}

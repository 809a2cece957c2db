/* Cost of the backward pass relative to the forward, on one model, interleaved runs:
 *   bench_backward MODEL.onnx LAYER [RUNS]
 * Prints median times of: forward (inference plan), forward (Grad-CAM plan), backward to LAYER,
 * backward to the input; and the planned memory of the inference and Grad-CAM contexts. */
#include <gradcam.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmpd);
    return v[n / 2];
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.onnx LAYER [RUNS]\n", argv[0]);
        return 2;
    }
    int runs = argc > 3 ? atoi(argv[3]) : 10;
    if (runs < 1 || runs > 1000) runs = 10;
    gcam_model *m = NULL;
    double t0 = now();
    if (gcam_model_load(&m, argv[1], NULL)) {
        fprintf(stderr, "%s\n", gcam_model_error(m));
        return 1;
    }
    double load = now() - t0;
    gcam_tensor_info in, out;
    gcam_model_input(m, 0, &in);
    gcam_model_output(m, 0, &out);
    int64_t dims[4] = {1, 3, 224, 224};
    size_t n = 3 * 224 * 224;
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)((i * 7919 % 1000) / 500.0 - 1.0);
    gcam_feed f = {.name = in.name, .dtype = GCAM_FLOAT32, .ndim = 4, .dims = dims, .data = x};
    gcam_ctx *inf = NULL, *gc = NULL;
    const char *grad_of[2] = {argv[2], in.name};
    gcam_ctx_options o = {.seed = out.name, .grad_of = grad_of, .n_grad_of = 2};
    gcam_ctx_options o1 = {.seed = out.name, .grad_of = grad_of, .n_grad_of = 1};
    gcam_ctx *gc1 = NULL;
    if (gcam_ctx_create(&inf, m, &f, 1, NULL) || gcam_ctx_create(&gc, m, &f, 1, &o) ||
        gcam_ctx_create(&gc1, m, &f, 1, &o1)) {
        fprintf(stderr, "%s%s%s\n", gcam_ctx_error(inf), gcam_ctx_error(gc), gcam_ctx_error(gc1));
        return 1;
    }
    gcam_tensor_view sv;
    gcam_ctx_seed_shape(gc, &sv);
    float *seed = calloc(sv.numel, sizeof(float));
    seed[sv.numel > 7 ? 7 : 0] = 1.0f;
    double *tf = malloc(sizeof(double) * (size_t)runs), *tg = malloc(sizeof(double) * (size_t)runs);
    double *tl = malloc(sizeof(double) * (size_t)runs), *ti = malloc(sizeof(double) * (size_t)runs);
    const char *want_layer[1] = {argv[2]}, *want_in[1] = {in.name};
    int nl = 0, ni = 0;
    for (int r = -1; r < runs; r++) { /* r = -1: warm-up */
        double a = now();
        gcam_ctx_run(inf, &f, 1);
        double b = now();
        gcam_ctx_run(gc, &f, 1);
        double c = now();
        gcam_ctx_backward(gc, seed, GCAM_RULE_STANDARD, want_layer, 1);
        double d = now();
        nl = gcam_ctx_backward_node_count(gc);
        gcam_ctx_backward(gc, seed, GCAM_RULE_STANDARD, want_in, 1);
        double e = now();
        ni = gcam_ctx_backward_node_count(gc);
        if (r < 0) continue;
        tf[r] = b - a;
        tg[r] = c - b;
        tl[r] = d - c;
        ti[r] = e - d;
    }
    double mf = median(tf, runs), mg = median(tg, runs), ml = median(tl, runs), mi = median(ti, runs);
    printf("model %s, load %.0f ms, %d runs (medians)\n", argv[1], load * 1e3, runs);
    printf("forward (inference plan)    %8.1f ms\n", mf * 1e3);
    printf("forward (gradient plan)     %8.1f ms\n", mg * 1e3);
    printf("backward to layer           %8.2f ms  (%d nodes)  = %.1f%% of the forward\n", ml * 1e3, nl, 100 * ml / mf);
    printf("backward to the input       %8.1f ms  (%d nodes)  = %.2fx the forward\n", mi * 1e3, ni, mi / mf);
    printf("planned memory: inference %.1f MiB, Grad-CAM (layer only) %.1f MiB = %.2fx, layer+input %.1f MiB = %.2fx\n",
           gcam_ctx_planned_bytes(inf) / 1048576.0, gcam_ctx_planned_bytes(gc1) / 1048576.0,
           (double)gcam_ctx_planned_bytes(gc1) / (double)gcam_ctx_planned_bytes(inf),
           gcam_ctx_planned_bytes(gc) / 1048576.0, (double)gcam_ctx_planned_bytes(gc) / (double)gcam_ctx_planned_bytes(inf));
    gcam_ctx_free(inf);
    gcam_ctx_free(gc);
    gcam_ctx_free(gc1);
    gcam_model_free(m);
    free(x);
    free(seed);
    free(tf); free(tg); free(tl); free(ti);
    return 0;
}

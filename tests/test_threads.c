/* One gcam_model shared by 8 threads x 50 iterations, each thread with its own gcam_ctx and
 * gcam_explainer: every forward output and every Grad-CAM / Guided Backprop map must be
 * bit-identical to the same computation done first on the main thread alone. Threads alternate
 * 1 and 2 intra-op (OpenMP) threads; the reference uses the same count. Each thread also reads the
 * model's introspection tables (gcam_model_node builds name tables on first use) at the same time.
 *
 * Usage: test_threads MODEL.onnx   (tests/threads_model.py writes one: input (1, 3, H, W), logits (1, K)) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcam.h"

#define N_THREADS 8
#define N_ITERS 50
#define N_INPUTS 4

static const gcam_model *g_model;
static int64_t g_dims[4];
static size_t g_numel, g_classes;
static float *g_inputs[N_INPUTS];
/* references, per intra-op thread count (index 0: 1 thread, 1: 2 threads) */
static float *g_logits[2][N_INPUTS];
static gcam_map g_cam[2][N_INPUTS], g_gbp[2][N_INPUTS];
static int g_failures;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static void fail(const char *what, int t, int i) {
    pthread_mutex_lock(&g_lock);
    g_failures++;
    if (g_failures <= 20) printf("FAIL thread %d iteration %d: %s\n", t, i, what);
    pthread_mutex_unlock(&g_lock);
}

static gcam_feed feed_of(int k) {
    return (gcam_feed){.name = NULL, .dtype = GCAM_FLOAT32, .ndim = 4, .dims = g_dims, .data = g_inputs[k]};
}

static int same_map(const gcam_map *a, const gcam_map *b) {
    if (a->n != b->n || a->c != b->c || a->h != b->h || a->w != b->w || a->H != b->H || a->W != b->W) return 0;
    size_t raw = (size_t)(a->n * a->c * a->h * a->w), up = (size_t)(a->n * a->c * a->H * a->W);
    return memcmp(a->raw, b->raw, raw * sizeof(float)) == 0 && memcmp(a->upsampled, b->upsampled, up * sizeof(float)) == 0 &&
           memcmp(a->normalized, b->normalized, up * sizeof(float)) == 0;
}

/* The class explained for input k (a different one per input). */
static int64_t class_of(int k) { return (int64_t)(k * 3 % (int)g_classes); }

typedef struct job {
    int t, intra;
    gcam_ctx *ctx;
    gcam_explainer *ex;
} job;

static int setup(job *j, char *err, size_t n) {
    gcam_feed f = feed_of(0);
    gcam_ctx_options co = {.n_threads = j->intra};
    if (gcam_ctx_create(&j->ctx, g_model, &f, 1, &co) != GCAM_OK) {
        snprintf(err, n, "ctx: %s", gcam_ctx_error(j->ctx));
        return -1;
    }
    gcam_explain_options eo = {.n_threads = j->intra};
    if (gcam_explainer_create(&j->ex, g_model, &f, 1, &eo) != GCAM_OK) {
        snprintf(err, n, "explainer: %s", gcam_explainer_error(j->ex));
        return -1;
    }
    return 0;
}

/* One iteration on input k: the forward output and two maps. */
static int iterate(job *j, int k, float *logits, gcam_map *cam, gcam_map *gbp, char *err, size_t n) {
    gcam_feed f = feed_of(k);
    gcam_tensor_view v;
    if (gcam_ctx_run(j->ctx, &f, 1) != GCAM_OK || gcam_ctx_output(j->ctx, 0, &v) != GCAM_OK || v.numel != g_classes) {
        snprintf(err, n, "run: %s", gcam_ctx_error(j->ctx));
        return -1;
    }
    memcpy(logits, v.data, g_classes * sizeof(float));
    gcam_target tg = {.kind = GCAM_TARGET_CLASS, .cls = class_of(k)};
    if (gcam_explainer_forward(j->ex, &f, 1) != GCAM_OK || gcam_explain(j->ex, GCAM_GRADCAM, &tg, cam) != GCAM_OK ||
        gcam_explain(j->ex, GCAM_GUIDED_BACKPROP, &tg, gbp) != GCAM_OK) {
        snprintf(err, n, "explain: %s", gcam_explainer_error(j->ex));
        return -1;
    }
    return 0;
}

static void *worker(void *arg) {
    job *j = arg;
    char err[1200];
    /* introspection from every thread at once */
    gcam_node_info ni;
    gcam_tensor_info ti;
    for (int i = 0; i < gcam_model_num_nodes(g_model); i++)
        if (gcam_model_node(g_model, i, &ni) != GCAM_OK || !ni.outputs || !ni.outputs[0]) fail("gcam_model_node", j->t, -1);
    if (gcam_model_find_tensor(g_model, "logits", &ti) != GCAM_OK) fail("gcam_model_find_tensor", j->t, -1);
    if (setup(j, err, sizeof err)) {
        fail(err, j->t, -1);
        return NULL;
    }
    float *logits = malloc(g_classes * sizeof(float));
    for (int i = 0; i < N_ITERS && logits; i++) {
        int k = (j->t + i) % N_INPUTS, r = j->intra - 1;
        gcam_map cam, gbp;
        if (iterate(j, k, logits, &cam, &gbp, err, sizeof err)) {
            fail(err, j->t, i);
            break;
        }
        if (memcmp(logits, g_logits[r][k], g_classes * sizeof(float)) != 0) fail("logits differ", j->t, i);
        if (!same_map(&cam, &g_cam[r][k])) fail("Grad-CAM map differs", j->t, i);
        if (!same_map(&gbp, &g_gbp[r][k])) fail("Guided Backprop map differs", j->t, i);
        gcam_map_free(&cam);
        gcam_map_free(&gbp);
    }
    free(logits);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_threads MODEL.onnx\n");
        return 2;
    }
    gcam_model *m = NULL;
    if (gcam_model_load(&m, argv[1], NULL) != GCAM_OK) {
        printf("FAIL load: %s\n", gcam_model_error(m));
        gcam_model_free(m);
        return 1;
    }
    g_model = m;
    gcam_tensor_info in, out;
    gcam_model_input(m, 0, &in);
    gcam_model_output(m, 0, &out);
    if (in.ndim != 4 || out.ndim != 2) {
        printf("FAIL: the model must take (1, C, H, W) and give (1, K)\n");
        return 1;
    }
    g_numel = 1;
    for (int d = 0; d < 4; d++) g_numel *= (size_t)(g_dims[d] = in.dims[d]);
    g_classes = (size_t)out.dims[1];
    uint64_t s = 12345;
    for (int k = 0; k < N_INPUTS; k++) {
        g_inputs[k] = malloc(g_numel * sizeof(float));
        for (size_t e = 0; e < g_numel; e++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            g_inputs[k][e] = (float)((s >> 40) & 0xffff) / 65536.0f * 2.0f - 1.0f;
        }
    }
    /* references: main thread only */
    char err[1200];
    for (int r = 0; r < 2; r++) {
        job j = {.t = -1, .intra = r + 1};
        if (setup(&j, err, sizeof err)) {
            printf("FAIL reference: %s\n", err);
            return 1;
        }
        for (int k = 0; k < N_INPUTS; k++) {
            g_logits[r][k] = malloc(g_classes * sizeof(float));
            if (iterate(&j, k, g_logits[r][k], &g_cam[r][k], &g_gbp[r][k], err, sizeof err)) {
                printf("FAIL reference: %s\n", err);
                return 1;
            }
        }
        gcam_ctx_free(j.ctx);
        gcam_explainer_free(j.ex);
    }
    pthread_t th[N_THREADS];
    job jobs[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        jobs[t] = (job){.t = t, .intra = 1 + t % 2};
        if (pthread_create(&th[t], NULL, worker, &jobs[t]) != 0) {
            printf("FAIL pthread_create\n");
            return 1;
        }
    }
    for (int t = 0; t < N_THREADS; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < N_THREADS; t++) {
        gcam_ctx_free(jobs[t].ctx);
        gcam_explainer_free(jobs[t].ex);
    }
    for (int r = 0; r < 2; r++)
        for (int k = 0; k < N_INPUTS; k++) {
            free(g_logits[r][k]);
            gcam_map_free(&g_cam[r][k]);
            gcam_map_free(&g_gbp[r][k]);
        }
    for (int k = 0; k < N_INPUTS; k++) free(g_inputs[k]);
    gcam_model_free(m);
    int checks = N_THREADS * N_ITERS * 3;
    printf("%d threads x %d iterations (forward, Grad-CAM, Guided Backprop) against single-threaded references\n",
           N_THREADS, N_ITERS);
    printf("%d passed, %d failed\n", checks - (g_failures < checks ? g_failures : checks), g_failures);
    return g_failures != 0;
}

/* gcam_explain_many against a loop of gcam_explain (the independent truth: the one-target path
 * that test_methods checks against PyTorch): the same maps within 1e-5 * max|map| (raw and
 * upsampled; max|map| taken as at least 1e-1 of the call's largest map, see compare()), for
 * k = 1, 3, 5 (and 16, 40: chunks of at most 64 rows) targets, batch 1 and 2, every gradient CAM method, on
 *   heavytail.onnx  fully-connected head of ~25 MiB: the batched tail must run (counter checked),
 *                   with the tail's forward once (default layer) or every time (a MaxPool after it)
 *   resnet18.onnx   GAP + FC tail (2 MB): the loop is kept (counter checked); then with the testing
 *                   knob tail_batch_min_bytes = 0 (GCAM_TAIL_BATCH_MIN_BYTES, set through gc_tuning_set_default) at an inner layer (a tail of residual blocks)
 *                   and at two layers, where the batched path must run and still agree
 * plus methods outside the batched set, the explainer's switch to the input-gradient plan on the
 * first pixel method (lazy_input_grad), and bad arguments (n_targets <= 0, NULL targets or outs,
 * a class out of range at position 3: error naming it, every map zeroed).
 * Usage: test_explain_many DIR (with the files of tests/explain_many_models.py). Exits 1 on any
 * mismatch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gradcam.h>

#include "explain/explain.h"
#include "graph/plan.h"

static int g_fail, g_checks;

#define CHECK(cond, ...)                                                                                   \
    do {                                                                                                   \
        g_checks++;                                                                                        \
        if (!(cond)) {                                                                                     \
            g_fail++;                                                                                      \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                           \
            fprintf(stderr, __VA_ARGS__);                                                                  \
            fputc('\n', stderr);                                                                           \
        }                                                                                                  \
    } while (0)

typedef struct setup {
    gcam_model *m;
    gcam_explainer *e;
    int64_t N, S, K;
    float *x;
    int64_t dims[4];
    gcam_feed in;
    int64_t order[2][16]; /* per sample: the 16 highest-scoring classes, best first */
} setup;

static int setup_open(setup *s, gcam_model *m, int64_t N, int64_t S, const char *const *layers, int n_layers) {
    memset(s, 0, sizeof *s);
    s->m = m;
    s->N = N;
    s->S = S;
    size_t n = (size_t)(N * 3 * S * S);
    s->x = malloc(n * sizeof(float));
    if (!s->x) return 1;
    for (size_t i = 0; i < n; i++) s->x[i] = (float)(sin((double)i * 0.37) + 0.5 * cos((double)i * 0.011));
    s->dims[0] = N, s->dims[1] = 3, s->dims[2] = S, s->dims[3] = S;
    s->in = (gcam_feed){.dtype = GCAM_FLOAT32, .ndim = 4, .dims = s->dims, .data = s->x};
    gcam_explain_options eo = {.n_threads = 2, .layers = layers, .n_layers = n_layers};
    if (gcam_explainer_create(&s->e, m, &s->in, 1, &eo) || gcam_explainer_forward(s->e, &s->in, 1)) {
        fprintf(stderr, "explainer: %s\n", gcam_explainer_error(s->e));
        return 1;
    }
    gcam_tensor_view sv;
    if (gcam_explainer_scores(s->e, &sv)) return 1;
    s->K = sv.dims[1];
    const float *y = sv.data;
    for (int64_t b = 0; b < N; b++) { /* selection of the top 16 (K >= 16 here) */
        uint8_t used[1000] = {0};
        for (int j = 0; j < 16; j++) {
            int64_t best = -1;
            for (int64_t c = 0; c < s->K && c < 1000; c++)
                if (!used[c] && (best < 0 || y[b * s->K + c] > y[b * s->K + best])) best = c;
            s->order[b][j] = best >= 0 ? best : 0;
            if (best >= 0) used[best] = 1;
        }
    }
    return 0;
}

static void setup_close(setup *s) {
    gcam_explainer_free(s->e);
    free(s->x);
}

static double max_abs(const float *a, size_t n) {
    double mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(a[i]));
    return mx;
}

/* max |a - b| <= tol * max(max|a|, floor) over n values */
static int close_rel(const float *a, const float *b, size_t n, double tol, double floor, double *err_out, double *mx_out) {
    double mx = max_abs(a, n), err = 0;
    for (size_t i = 0; i < n; i++) err = fmax(err, fabs((double)a[i] - b[i]));
    *err_out = err;
    *mx_out = mx;
    return err <= tol * fmax(mx, floor);
}

/* k targets of kind CLASS: target j is each sample's (j+1)-th class (per-sample classes when N > 1,
 * cls when N = 1); the last target of k = 5 on N = 1 is an ELEMENT target (index (0, class)). */
static void make_targets(const setup *s, int k, gcam_target *t, int64_t (*cls)[2]) {
    for (int j = 0; j < k; j++) {
        memset(&t[j], 0, sizeof t[j]);
        t[j].kind = GCAM_TARGET_CLASS;
        for (int64_t b = 0; b < s->N; b++) cls[j][b] = s->order[b][j % 10];
        if (s->N > 1) t[j].classes = cls[j];
        else t[j].cls = cls[j][0];
        if (s->N == 1 && k == 5 && j == 4) {
            t[j].kind = GCAM_TARGET_ELEMENT;
            t[j].index[0] = 0;
            t[j].index[1] = cls[j][0];
        }
    }
}

/* gcam_explain_many == the loop for k targets; batched: whether the tail must run (k >= 3). */
static void compare(setup *s, const char *what, gcam_method method, int k, int batched) {
    gcam_target t[40];
    int64_t cls[40][2];
    static gcam_map ref[40], got[40];
    make_targets(s, k, t, cls);
    memset(ref, 0, sizeof ref);
    for (int j = 0; j < k; j++) {
        gcam_status rc = gcam_explain(s->e, method, &t[j], &ref[j]);
        CHECK(rc == GCAM_OK, "%s %s k=%d: gcam_explain target %d: %s", what, gcam_method_name(method), k, j,
              gcam_explainer_error(s->e));
        if (rc) goto out;
    }
    long runs0 = s->e->tail_runs;
    gcam_status rc = gcam_explain_many(s->e, method, t, k, got);
    long ran = s->e->tail_runs - runs0;
    CHECK(rc == GCAM_OK, "%s %s k=%d: gcam_explain_many: %s", what, gcam_method_name(method), k,
          gcam_explainer_error(s->e));
    if (rc) goto out;
    int64_t kmax = 64 / s->N, chunks = (k + kmax - 1) / kmax; /* at most 64 batched rows per run */
    if (batched && k >= 3)
        CHECK(ran == chunks, "%s %s k=%d: the batched tail ran %ld times, %lld expected", what, gcam_method_name(method), k,
              ran, (long long)chunks);
    else CHECK(ran == 0, "%s %s k=%d: the batched tail ran %ld times (the loop was expected)", what, gcam_method_name(method), k, ran);
    /* scale: max|map| of the target, but at least 1e-1 of the largest map of the call: a map that
     * is a near-cancellation of much larger terms (the counterfactual of a low-ranked class, 1e-2
     * of the others) keeps the rounding of those terms (seen: 3e-5 of its own max) */
    double call_max[2] = {0, 0};
    for (int j = 0; j < k; j++) {
        gcam_map *a = &ref[j];
        call_max[0] = fmax(call_max[0], max_abs(a->raw, (size_t)(a->n * a->c * a->h * a->w)));
        call_max[1] = fmax(call_max[1], max_abs(a->upsampled, (size_t)(a->n * a->c * a->H * a->W)));
    }
    int nonzero = 0;
    for (int j = 0; j < k; j++) {
        gcam_map *a = &ref[j], *b = &got[j];
        CHECK(a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w && a->H == b->H && a->W == b->W &&
                  a->method == b->method && ((!a->layer && !b->layer) || (a->layer && b->layer && !strcmp(a->layer, b->layer))),
              "%s %s k=%d target %d: map header differs", what, gcam_method_name(method), k, j);
        if (a->n != b->n || a->c != b->c || a->h != b->h || a->w != b->w) continue;
        double err, mx;
        size_t nr = (size_t)(a->n * a->c * a->h * a->w), nu = (size_t)(a->n * a->c * a->H * a->W);
        CHECK(close_rel(a->raw, b->raw, nr, 1e-5, 1e-1 * call_max[0], &err, &mx), "%s %s k=%d target %d: raw differs by %g (max|map| %g)", what,
              gcam_method_name(method), k, j, err, mx);
        nonzero += mx > 0;
        if (getenv("EM_VERBOSE"))
            printf("%s %s k=%d t%d rel %.3g (err %.3g max %.3g)\n", what, gcam_method_name(method), k, j,
                   mx > 0 ? err / mx : 0, err, mx);
        CHECK(close_rel(a->upsampled, b->upsampled, nu, 1e-5, 1e-1 * call_max[1], &err, &mx),
              "%s %s k=%d target %d: upsampled differs by %g (max|map| %g)", what, gcam_method_name(method), k, j, err, mx);
    }
    CHECK(nonzero > 0, "%s %s k=%d: every map is zero (the comparison would prove nothing)", what, gcam_method_name(method), k);
out:
    for (int j = 0; j < k; j++) {
        gcam_map_free(&ref[j]);
        gcam_map_free(&got[j]);
    }
}

static int map_is_zero(const gcam_map *m) {
    static const gcam_map z;
    return memcmp(m, &z, sizeof z) == 0;
}

static void bad_arguments(setup *s, const char *what, int batched) {
    gcam_target t[5];
    int64_t cls[40][2];
    gcam_map outs[5];
    make_targets(s, 5, t, cls);
    t[4].kind = GCAM_TARGET_CLASS; /* plain classes here */
    memset(outs, 0x5a, sizeof outs);
    gcam_status rc = gcam_explain_many(s->e, GCAM_GRADCAM, t, 0, outs);
    CHECK(rc == GCAM_E_ARG, "%s: n_targets 0 gives %d", what, (int)rc);
    rc = gcam_explain_many(s->e, GCAM_GRADCAM, t, -2, outs);
    CHECK(rc == GCAM_E_ARG && strstr(gcam_explainer_error(s->e), "n_targets"), "%s: n_targets -2 gives %d (%s)", what,
          (int)rc, gcam_explainer_error(s->e));
    rc = gcam_explain_many(s->e, GCAM_GRADCAM, NULL, 5, outs);
    CHECK(rc == GCAM_E_ARG, "%s: NULL targets gives %d", what, (int)rc);
    for (int j = 0; j < 5; j++) CHECK(map_is_zero(&outs[j]), "%s: NULL targets: map %d not zeroed", what, j);
    rc = gcam_explain_many(s->e, GCAM_GRADCAM, t, 5, NULL);
    CHECK(rc == GCAM_E_ARG, "%s: NULL outs gives %d", what, (int)rc);
    rc = gcam_explain_many(s->e, (gcam_method)GCAM_METHOD_COUNT, t, 5, outs);
    CHECK(rc == GCAM_E_ARG, "%s: unknown method gives %d", what, (int)rc);
    /* a class out of range at position 3 */
    int64_t badcls[2] = {s->K, s->K};
    for (int j = 0; j < 5; j++) t[j].classes = NULL, t[j].cls = cls[j][0];
    t[3].cls = s->K;
    if (s->N > 1) t[3].classes = badcls;
    memset(outs, 0x5a, sizeof outs);
    long runs0 = s->e->tail_runs;
    rc = gcam_explain_many(s->e, GCAM_GRADCAM, t, 5, outs);
    const char *msg = gcam_explainer_error(s->e);
    CHECK(rc == GCAM_E_ARG && strstr(msg, "target 3") && strstr(msg, "out of range"),
          "%s: a bad class at position 3 gives %d '%s'", what, (int)rc, msg);
    for (int j = 0; j < 5; j++) CHECK(map_is_zero(&outs[j]), "%s: bad class: map %d not zeroed", what, j);
    CHECK(s->e->tail_runs == runs0, "%s: a bad target still ran the batched tail", what);
    /* ... and at position 4 of 8 with Grad-CAM++: the first chunk may be done, then freed */
    gcam_target t8[8];
    for (int j = 0; j < 8; j++) t8[j] = (gcam_target){.kind = GCAM_TARGET_CLASS, .cls = cls[j % 5][0]};
    t8[6].cls = -1;
    gcam_map outs8[8];
    rc = gcam_explain_many(s->e, GCAM_GRADCAMPP, t8, 8, outs8);
    msg = gcam_explainer_error(s->e);
    CHECK(rc == GCAM_E_ARG && strstr(msg, "target 6 of 8"), "%s: a bad class at position 6 gives %d '%s'", what, (int)rc, msg);
    for (int j = 0; j < 8; j++) CHECK(map_is_zero(&outs8[j]), "%s: bad class: map %d of 8 not zeroed", what, j);
    /* the explainer still works afterwards */
    compare(s, what, GCAM_GRADCAM, 3, batched);
}

/* The explainer plans the input gradient only when a pixel method first asks (explain.h): before,
 * its context is smaller; the switch re-runs the forward, keeps the scores view valid and changes no
 * map (maps within 1e-6 * max|map| of the same method on an explainer that switched first). */
static void lazy_input_grad(gcam_model *m, int64_t N) {
    char what[64];
    snprintf(what, sizeof what, "resnet18 lazy input gradient N=%lld", (long long)N);
    setup a, b;
    if (setup_open(&a, m, N, 64, NULL, 0) || setup_open(&b, m, N, 64, NULL, 0)) {
        CHECK(0, "%s: setup", what);
        return;
    }
    gcam_target t = {.kind = GCAM_TARGET_CLASS, .cls = a.order[0][0]};
    gcam_map cam1 = {0}, cam2 = {0}, cam3 = {0}, gb1 = {0}, gb2 = {0}, ggc1 = {0}, ggc2 = {0};
    gcam_tensor_view sv;
    float before[2000];
    size_t ns = 0;
    CHECK(!a.e->ctx_full, "%s: a new explainer already plans the input gradient", what);
    size_t cam_arena = a.e->ctx->arena_size;
    CHECK(gcam_explainer_scores(a.e, &sv) == GCAM_OK && sv.numel <= 2000, "%s: scores", what);
    const float *sp = sv.data;
    ns = sv.numel <= 2000 ? sv.numel : 0;
    memcpy(before, sp, ns * sizeof(float));
    CHECK(gcam_explain(a.e, GCAM_GRADCAM, &t, &cam1) == GCAM_OK, "%s: Grad-CAM: %s", what, gcam_explainer_error(a.e));
    CHECK(!a.e->ctx_full, "%s: Grad-CAM planned the input gradient", what);
    CHECK(gcam_explain(a.e, GCAM_GUIDED_BACKPROP, &t, &gb1) == GCAM_OK, "%s: GBP: %s", what, gcam_explainer_error(a.e));
    CHECK(a.e->ctx_full, "%s: Guided Backprop ran without the input-gradient plan", what);
    size_t full_arena = a.e->ctx->arena_size;
    CHECK(cam_arena < full_arena, "%s: CAM-only arena %zu not below the full one %zu", what, cam_arena, full_arena);
    printf("%s: arena %zu -> %zu bytes (%.2fx)\n", what, cam_arena, full_arena, (double)full_arena / (double)cam_arena);
    CHECK(ns && memcmp(before, sp, ns * sizeof(float)) == 0, "%s: the scores view changed with the re-plan", what);
    CHECK(gcam_explain(a.e, GCAM_GRADCAM, &t, &cam2) == GCAM_OK, "%s: Grad-CAM after: %s", what, gcam_explainer_error(a.e));
    CHECK(gcam_explain(a.e, GCAM_GUIDED_GRADCAM, &t, &ggc1) == GCAM_OK, "%s: GGC: %s", what, gcam_explainer_error(a.e));
    /* b: a pixel method first (the switch before any CAM), then the CAM methods on the full plan */
    CHECK(gcam_explain(b.e, GCAM_GUIDED_GRADCAM, &t, &ggc2) == GCAM_OK, "%s: GGC first: %s", what, gcam_explainer_error(b.e));
    CHECK(gcam_explain(b.e, GCAM_GUIDED_BACKPROP, &t, &gb2) == GCAM_OK, "%s: GBP: %s", what, gcam_explainer_error(b.e));
    CHECK(gcam_explainer_forward(b.e, &b.in, 1) == GCAM_OK, "%s: forward after the switch: %s", what, gcam_explainer_error(b.e));
    CHECK(gcam_explain(b.e, GCAM_GRADCAM, &t, &cam3) == GCAM_OK, "%s: Grad-CAM: %s", what, gcam_explainer_error(b.e));
    const gcam_map *pairs[4][2] = {{&cam1, &cam2}, {&cam1, &cam3}, {&gb1, &gb2}, {&ggc1, &ggc2}};
    static const char *const names[4] = {"Grad-CAM before/after the switch", "Grad-CAM, CAM-only vs full plan",
                                         "Guided Backprop", "Guided Grad-CAM"};
    for (int i = 0; i < 4; i++) {
        const gcam_map *x = pairs[i][0], *y = pairs[i][1];
        size_t n = (size_t)(x->n * x->c * x->h * x->w);
        double err = 0, mx = 0;
        int same = x->raw && y->raw && n == (size_t)(y->n * y->c * y->h * y->w);
        CHECK(same && close_rel(x->raw, y->raw, n, 1e-6, 0, &err, &mx), "%s: %s differ: %g of max %g", what, names[i], err, mx);
    }
    gcam_map *all[7] = {&cam1, &cam2, &cam3, &gb1, &gb2, &ggc1, &ggc2};
    for (int i = 0; i < 7; i++) gcam_map_free(all[i]);
    setup_close(&a);
    setup_close(&b);
}

static gcam_model *load(const char *dir, const char *file) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    gcam_model *m = NULL;
    if (gcam_model_load(&m, p, NULL)) {
        fprintf(stderr, "%s: %s\n", p, gcam_model_error(m));
        gcam_model_free(m);
        return NULL;
    }
    return m;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    gc_tuning tune; /* the defaults (16 MiB), whatever the environment says */
    gc_tuning_defaults(&tune);
    gc_tuning_set_default(&tune);
    gcam_model *heavy = load(argv[1], "heavytail.onnx"), *res = load(argv[1], "resnet18.onnx");
    if (!heavy || !res) return 1;
    static const gcam_method grad_methods[] = {GCAM_GRADCAM, GCAM_GRADCAMPP, GCAM_XGRADCAM, GCAM_LAYERCAM,
                                               GCAM_HIRESCAM, GCAM_EIGENGRADCAM, GCAM_GRADCAM_COUNTER};
    const int ks[] = {1, 3, 5};
    setup s;

    /* (a) weight-heavy tail: batched */
    for (int64_t N = 1; N <= 2; N++) {
        if (setup_open(&s, heavy, N, 32, NULL, 0)) return 1;
        char what[64];
        snprintf(what, sizeof what, "heavytail N=%lld", (long long)N);
        for (size_t mi = 0; mi < sizeof grad_methods / sizeof *grad_methods; mi++)
            for (int ki = 0; ki < 3; ki++) compare(&s, what, grad_methods[mi], ks[ki], 1);
        compare(&s, what, GCAM_GRADCAM, 16, 1);       /* reuses / re-plans the tail context */
        compare(&s, what, GCAM_GRADCAM, 40, 1);       /* N = 2: over 64 rows, two chunks of 20 */
        compare(&s, what, GCAM_GUIDED_BACKPROP, 3, 0); /* outside the batched set: the loop */
        compare(&s, what, GCAM_GUIDED_GRADCAM, 3, 0);
        bad_arguments(&s, what, 1);
        /* no op after the layer keeps state from its forward: the tail's forward ran only once */
        CHECK(s.e->tail_ctx && !s.e->tail_fwd, "%s: the tail's forward is re-run every time", what);
        setup_close(&s);
        /* a layer before a MaxPool (argmax kept by its forward): the tail's forward runs each time */
        const char *relu4[] = {"/features/features.4/Relu_output_0"};
        snprintf(what, sizeof what, "heavytail relu4 N=%lld", (long long)N);
        if (setup_open(&s, heavy, N, 32, relu4, 1)) return 1;
        compare(&s, what, GCAM_GRADCAM, 5, 1);
        compare(&s, what, GCAM_LAYERCAM, 3, 1);
        CHECK(s.e->tail_ctx && s.e->tail_fwd, "%s: the tail's forward was not re-run (MaxPool in the tail)", what);
        setup_close(&s);
    }
    /* (b) resnet18: GAP + FC tail, the loop is kept */
    for (int64_t N = 1; N <= 2; N++) {
        if (setup_open(&s, res, N, 64, NULL, 0)) return 1;
        char what[64];
        snprintf(what, sizeof what, "resnet18 N=%lld", (long long)N);
        compare(&s, what, GCAM_GRADCAM, 1, 0);
        compare(&s, what, GCAM_GRADCAM, 5, 0);
        compare(&s, what, GCAM_LAYERCAM, 3, 0);
        compare(&s, what, GCAM_CAM, 3, 0);
        if (N == 1) bad_arguments(&s, what, 0);
        setup_close(&s);
    }
    for (int64_t N = 1; N <= 2; N++) lazy_input_grad(res, N);
    /* the knob at 0: residual blocks in the tail, one and two layers, batched */
    tune.tail_batch_min_bytes = 0;
    gc_tuning_set_default(&tune);
    const char *l3[] = {"/layer3/layer3.1/relu_1/Relu_output_0"};
    const char *l34[] = {"/layer3/layer3.1/relu_1/Relu_output_0", "/layer4/layer4.1/relu_1/Relu_output_0"};
    for (int64_t N = 1; N <= 2; N++) {
        char what[64];
        snprintf(what, sizeof what, "resnet18 layer3 knob=0 N=%lld", (long long)N);
        if (setup_open(&s, res, N, 64, l3, 1)) return 1;
        for (int ki = 0; ki < 3; ki++) compare(&s, what, GCAM_GRADCAM, ks[ki], 1);
        compare(&s, what, GCAM_XGRADCAM, 5, 1);
        setup_close(&s);
        snprintf(what, sizeof what, "resnet18 layer3+4 knob=0 N=%lld", (long long)N);
        if (setup_open(&s, res, N, 64, l34, 2)) return 1;
        compare(&s, what, GCAM_GRADCAM, 5, 1);
        compare(&s, what, GCAM_GRADCAMPP, 3, 1);
        setup_close(&s);
    }
    gcam_model_free(heavy);
    gcam_model_free(res);
    printf("test_explain_many: %d checks, %d failures\n", g_checks, g_fail);
    return g_fail ? 1 : 0;
}

/* gradcam's side of `make bench`'s detection rows (bench/run.sh, issue #18), through the public C
 * API only: explain every detection of one picture.
 *
 *   bench_detect MODEL.onnx PICTURE.f32 --name NAME [--size S] [--runs R] [--threads T]
 *                [--budget SECONDS [--min-runs K]] [--rows detect_hirescam,detect_gradcam]
 *                [--score-threshold X] [--each] [--smoke]
 *   bench_detect MODEL.onnx PICTURE.f32 --layers-only
 *
 * PICTURE.f32: the model input (1, 3, S, S) as raw float32 (bench/bench_detect_torch.py picture
 * writes it; PyTorch's side reads the same file). The explainer is created once (explain_probability
 * = 1: the detector's output itself is decoded and explained), then one run of a row is what a user
 * waits for: one forward (gcam_explainer_forward), the output (gcam_explainer_scores),
 * gcam_detect_decode (score threshold, class-wise NMS at IoU 0.45, as the CLI's --task detect), and
 * one map per kept detection (its GCAM_TARGET_PRODUCT target) with the row's method, raw, upsampled
 * and normalised: gcam_explain_many over the detections (--each: gcam_explain per detection).
 * Rows: detect_hirescam (HiResCAM, --task detect's default CAM), detect_gradcam (Grad-CAM).
 * Each row: one warm-up, then R runs (the --budget rule of bench_gradcam.c), each in a turn of
 * bench/lockstep.py. Prints tab-separated
 *   RESULT  NAME  1  ROW  MEDIAN_MS  MIN_MS  MAX_MS  RUNS
 *   DETS    NAME  1  ROW  K  ANCHOR:CLASS,...   (the kept detections, by anchor; run.sh compares
 *                                                them with PyTorch's)
 *   LAYERS  NAME  1  L1,L2,...                  (the explainer's CAM layers)
 *   RSS     NAME  1  PEAK_MIB
 * A run whose detections differ from the first run's is an error. --smoke: 1 run, no warm-up.
 * --layers-only: prints the explainer's automatic CAM layers, comma-separated, and exits (run.sh
 * hands them to PyTorch's side, which hooks the same layers). */
#include <gradcam.h>
#include "bench_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

enum { ROW_HIRESCAM, ROW_GRADCAM, ROW_COUNT };
static const char *row_names[ROW_COUNT] = {"detect_hirescam", "detect_gradcam"};
static const gcam_method row_method[ROW_COUNT] = {GCAM_HIRESCAM, GCAM_GRADCAM};

typedef struct bench {
    gcam_explainer *e;
    gcam_feed in;
    gcam_detect_options det;
    gcam_method method;
    int each;              /* gcam_explain per detection instead of gcam_explain_many */
    int64_t n_first;       /* detections of the first run (-1: none yet) */
    int64_t *first;        /* their (anchor, class) pairs, in decode order */
} bench;

/* One run: forward, decode, a map per detection. */
static int run_once(bench *b) {
    gcam_tensor_view s;
    if (gcam_explainer_forward(b->e, &b->in, 1) || gcam_explainer_scores(b->e, &s)) {
        fprintf(stderr, "bench_detect: %s\n", gcam_explainer_error(b->e));
        return 1;
    }
    gcam_detection *d = NULL;
    int64_t n = 0;
    char why[512];
    if (gcam_detect_decode(&s, &b->det, &d, &n, NULL, why, sizeof why)) {
        fprintf(stderr, "bench_detect: %s\n", why);
        return 1;
    }
    int rc = 0;
    if (n > 0) {
        gcam_target *t = malloc(sizeof *t * (size_t)n);
        gcam_map *maps = calloc((size_t)n, sizeof *maps);
        if (!t || !maps) {
            rc = 1;
        } else {
            for (int64_t i = 0; i < n; i++) t[i] = d[i].target;
            if (b->each) {
                for (int64_t i = 0; i < n && !rc; i++) rc = gcam_explain(b->e, b->method, &t[i], &maps[i]) != GCAM_OK;
            } else {
                rc = gcam_explain_many(b->e, b->method, t, (int)n, maps) != GCAM_OK;
            }
            if (rc) fprintf(stderr, "bench_detect: %s\n", gcam_explainer_error(b->e));
            for (int64_t i = 0; i < n; i++) gcam_map_free(&maps[i]);
        }
        free(t);
        free(maps);
    }
    /* the same detections on every run (outside the work a user waits for, but cheap) */
    if (!rc && b->n_first < 0) {
        b->first = malloc(sizeof(int64_t) * 2 * (size_t)(n ? n : 1));
        if (!b->first) rc = 1;
        for (int64_t i = 0; i < n && !rc; i++) {
            b->first[2 * i] = d[i].anchor;
            b->first[2 * i + 1] = d[i].cls;
        }
        b->n_first = n;
    } else if (!rc) {
        int same = n == b->n_first;
        for (int64_t i = 0; i < n && same; i++) same = b->first[2 * i] == d[i].anchor && b->first[2 * i + 1] == d[i].cls;
        if (!same) {
            fprintf(stderr, "bench_detect: the detections changed from one run to the next (%lld, then %lld)\n",
                    (long long)b->n_first, (long long)n);
            rc = 1;
        }
    }
    free(d);
    return rc;
}

static int cmp_pair(const void *a, const void *b) { /* (anchor, class) */
    const int64_t *x = a, *y = b;
    return x[0] != y[0] ? (x[0] < y[0] ? -1 : 1) : (x[1] > y[1]) - (x[1] < y[1]);
}

/* warm runs (a turn each) decide the count under the budget, then `runs` timed ones */
static int time_row(bench *b, int warm, int runs, double budget, int min_runs, double *t, result *out) {
    for (int r = 0; r < warm; r++) {
        turn();
        double a = now();
        if (run_once(b)) return 1;
        double w = now() - a;
        if (budget > 0 && w * runs > budget) {
            int k = (int)(budget / w);
            runs = k < min_runs ? min_runs : k < runs ? k : runs;
        }
    }
    for (int r = 0; r < runs; r++) {
        turn();
        double a = now();
        if (run_once(b)) return 1;
        t[r] = now() - a;
    }
    *out = summarise(t, runs);
    return 0;
}

static void usage(const char *p) {
    fprintf(stderr,
            "usage: %s MODEL.onnx PICTURE.f32 --name NAME [--size S] [--runs R] [--threads T]\n"
            "       [--budget SECONDS [--min-runs K]] [--rows detect_hirescam,detect_gradcam]\n"
            "       [--score-threshold X] [--each] [--smoke]\n"
            "       %s MODEL.onnx PICTURE.f32 --layers-only\n",
            p, p);
}

int main(int argc, char **argv) {
    const char *path = NULL, *pic = NULL, *name = NULL, *rows = "detect_hirescam,detect_gradcam";
    int size = 128, runs = 10, threads = 2, smoke = 0, min_runs = 3, each = 0, layers_only = 0;
    double budget = 0, thr = 0.25;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--smoke")) {
            smoke = 1;
        } else if (!strcmp(a, "--each")) {
            each = 1;
        } else if (!strcmp(a, "--layers-only")) {
            layers_only = 1;
        } else if (a[0] == '-' && a[1] == '-' && !v) {
            usage(argv[0]);
            return 2;
        } else if (!strcmp(a, "--name")) {
            name = argv[++i];
        } else if (!strcmp(a, "--size")) {
            size = atoi(argv[++i]);
        } else if (!strcmp(a, "--runs")) {
            runs = atoi(argv[++i]);
        } else if (!strcmp(a, "--budget")) {
            budget = atof(argv[++i]);
        } else if (!strcmp(a, "--min-runs")) {
            min_runs = atoi(argv[++i]);
        } else if (!strcmp(a, "--threads")) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(a, "--rows")) {
            rows = argv[++i];
        } else if (!strcmp(a, "--score-threshold")) {
            thr = atof(argv[++i]);
        } else if (a[0] != '-' && !path) {
            path = a;
        } else if (a[0] != '-' && !pic) {
            pic = a;
        } else {
            usage(argv[0]);
            return 2;
        }
    }
    if (!path || !pic || size < 8 || size > 4096 || runs < 1 || runs > 100000 || threads < 0 || min_runs < 1 ||
        budget < 0 || !(thr >= 0 && thr <= 1)) {
        usage(argv[0]);
        return 2;
    }
    if (!name) name = path;
    if (smoke) runs = 1;
    if (!layers_only) turn_init("bench_detect");
    int want[ROW_COUNT] = {0};
    for (int r = 0; r < ROW_COUNT; r++) {
        const char *p = rows;
        size_t l = strlen(row_names[r]);
        while ((p = strstr(p, row_names[r])) != NULL) { /* whole comma-separated words only */
            if ((p == rows || p[-1] == ',') && (p[l] == ',' || p[l] == 0)) want[r] = 1;
            p += l;
        }
    }

    size_t numel = 3 * (size_t)size * (size_t)size;
    float *x = malloc(numel * sizeof(float));
    double *t = malloc(sizeof(double) * (size_t)runs);
    if (!x || !t) return 1;
    FILE *f = fopen(pic, "rb");
    if (!f) {
        perror(pic);
        return 1;
    }
    size_t got = fread(x, sizeof(float), numel, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != numel || extra) {
        fprintf(stderr, "bench_detect: %s is not (1, 3, %d, %d) float32\n", pic, size, size);
        return 1;
    }
    int64_t dims[4] = {1, 3, size, size};
    gcam_feed in = {.name = NULL, .dtype = GCAM_FLOAT32, .ndim = 4, .dims = dims, .data = x};

    gcam_model *m = NULL;
    if (gcam_model_load(&m, path, NULL)) {
        fprintf(stderr, "%s: %s\n", path, gcam_model_error(m));
        return 1;
    }
    bench b = {.in = in, .each = each, .n_first = -1};
    gcam_detect_options_init(&b.det);
    b.det.score_threshold = (float)thr;
    gcam_explain_options eo = {.explain_probability = 1, .n_threads = threads};
    if (gcam_explainer_create(&b.e, m, &in, 1, &eo)) {
        fprintf(stderr, "%s\n", gcam_explainer_error(b.e));
        return 1;
    }
    if (layers_only) {
        for (int l = 0; l < gcam_explainer_num_layers(b.e); l++)
            printf("%s%s", l ? "," : "", gcam_explainer_layer(b.e, l));
        printf("\n");
        gcam_explainer_free(b.e);
        gcam_model_free(m);
        free(t);
        free(x);
        return 0;
    }
    result res[ROW_COUNT] = {{0}};
    for (int r = 0; r < ROW_COUNT; r++) {
        if (!want[r]) continue;
        b.method = row_method[r];
        if (time_row(&b, !smoke, runs, budget, min_runs, t, &res[r])) return 1;
    }

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss = (double)ru.ru_maxrss / 1024.0; /* kilobytes on Linux */
    int64_t k = b.n_first < 0 ? 0 : b.n_first;
    int64_t *sorted = malloc(sizeof(int64_t) * 2 * (size_t)(k ? k : 1));
    if (!sorted) return 1;
    if (k) memcpy(sorted, b.first, sizeof(int64_t) * 2 * (size_t)k);
    qsort(sorted, (size_t)k, 2 * sizeof *sorted, cmp_pair);
    for (int r = 0; r < ROW_COUNT; r++) {
        if (!res[r].done) continue;
        printf("RESULT\t%s\t1\t%s\t%.3f\t%.3f\t%.3f\t%d\n", name, row_names[r], res[r].med, res[r].min, res[r].max,
               res[r].runs);
        printf("DETS\t%s\t1\t%s\t%lld\t", name, row_names[r], (long long)k);
        for (int64_t i = 0; i < k; i++)
            printf("%s%lld:%lld", i ? "," : "", (long long)sorted[2 * i], (long long)sorted[2 * i + 1]);
        printf("\n");
    }
    printf("LAYERS\t%s\t1\t", name);
    for (int l = 0; l < gcam_explainer_num_layers(b.e); l++) printf("%s%s", l ? "," : "", gcam_explainer_layer(b.e, l));
    printf("\nRSS\t%s\t1\t%.1f\n", name, rss);
    for (int r = 0; r < ROW_COUNT; r++)
        if (res[r].done)
            printf("| %s | 1 | %s (%lld detections) | %.1f ms [%.1f–%.1f] | %d runs |\n", name, row_names[r],
                   (long long)k, res[r].med, res[r].min, res[r].max, res[r].runs);
    gcam_explainer_free(b.e);
    gcam_model_free(m);
    free(sorted);
    free(b.first);
    free(t);
    free(x);
    return 0;
}

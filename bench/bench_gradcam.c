/* gradcam's side of `make bench` (bench/run.sh), through the public C API only:
 *
 *   bench_gradcam MODEL.onnx --name NAME [--batch N] [--size S] [--runs R] [--threads T]
 *                 [--budget SECONDS [--min-runs K]] [--rows load,forward,gradcam,top5,guided,guided_gradcam,scorecam] [--smoke]
 *
 * Each row is run once as a warm-up (Score-CAM: one forward), then R times (with --budget, a row
 * whose warm-up shows R runs would take longer than SECONDS gets fewer, at least K, default 3); printed as a tab-separated line
 *   RESULT  NAME  N  ROW  MEDIAN_MS  MIN_MS  MAX_MS  RUNS
 * and, at the end, RSS  NAME  N  PEAK_MIB (getrusage of this process), with the forward row also
 * PLANNED  NAME  N  BYTES (gcam_ctx_planned_bytes: its planned activations), then the same as markdown
 * table rows. A row times what a user waits for: an explanation row is forward + choosing the
 * class (argmax of the scores) + the map(s), raw, upsampled and normalised, as PyTorch's side
 * (bench/bench_torch.py) does. --smoke: 1 run, no warm-up (keeps the code from rotting, in ctest). */
#include <gradcam.h>
#include "bench_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

enum { ROW_LOAD, ROW_FORWARD, ROW_GRADCAM, ROW_TOP5, ROW_GUIDED, ROW_GUIDED_GRADCAM, ROW_SCORECAM, ROW_COUNT };
static const char *row_names[ROW_COUNT] = {"load", "forward", "gradcam", "top5", "guided", "guided_gradcam", "scorecam"};

/* Classes by descending score for each sample: top[s * k + j] is sample s's (j+1)-th class. */
static void topk(const gcam_tensor_view *scores, int64_t n, int k, int64_t *top) {
    int64_t c = (int64_t)scores->numel / n;
    const float *y = scores->data;
    for (int64_t s = 0; s < n; s++) {
        int64_t *t = top + s * k;
        int m = 0;
        for (int64_t i = 0; i < c; i++) {
            float v = y[s * c + i];
            if (m == k && v <= y[s * c + t[k - 1]]) continue;
            int j = m < k ? m++ : k - 1; /* insertion into the sorted short list */
            while (j > 0 && y[s * c + t[j - 1]] < v) {
                t[j] = t[j - 1];
                j--;
            }
            t[j] = i;
        }
    }
}

typedef struct bench {
    gcam_explainer *e;
    gcam_feed in;
    int64_t n;
    int64_t *top; /* (n, 5) */
    int64_t *cls; /* (5, n): target j's class per sample */
    int row;
} bench;

/* forward + scores + top classes */
static int forward_top(bench *b, int k) {
    gcam_tensor_view s;
    if (gcam_explainer_forward(b->e, &b->in, 1) || gcam_explainer_scores(b->e, &s)) return 1;
    topk(&s, b->n, k, b->top);
    return 0;
}

static int explain_one(bench *b, gcam_method method, int j) {
    for (int64_t s = 0; s < b->n; s++) b->cls[s] = b->top[s * 5 + j];
    gcam_target t = {.kind = GCAM_TARGET_CLASS, .classes = b->cls};
    gcam_map map;
    if (gcam_explain(b->e, method, &t, &map)) return 1;
    gcam_map_free(&map);
    return 0;
}

/* One timed run of an explanation row. */
static int run_row(bench *b, int row) {
    switch (row) {
    case ROW_GRADCAM: return forward_top(b, 1) || explain_one(b, GCAM_GRADCAM, 0);
    case ROW_TOP5: { /* the five together: gcam_explain_many batches what it can */
        if (forward_top(b, 5)) return 1;
        gcam_target t[5];
        gcam_map maps[5];
        for (int j = 0; j < 5; j++) {
            for (int64_t s = 0; s < b->n; s++) b->cls[j * b->n + s] = b->top[s * 5 + j];
            t[j] = (gcam_target){.kind = GCAM_TARGET_CLASS, .classes = b->cls + j * b->n};
        }
        if (gcam_explain_many(b->e, GCAM_GRADCAM, t, 5, maps)) return 1;
        for (int j = 0; j < 5; j++) gcam_map_free(&maps[j]);
        return 0;
    }
    case ROW_GUIDED: return forward_top(b, 1) || explain_one(b, GCAM_GUIDED_BACKPROP, 0);
    case ROW_GUIDED_GRADCAM: return forward_top(b, 1) || explain_one(b, GCAM_GUIDED_GRADCAM, 0);
    case ROW_SCORECAM: return forward_top(b, 1) || explain_one(b, GCAM_SCORECAM, 0);
    default: return 1;
    }
}

typedef struct loader {
    const char *path;
    gcam_model *m;
} loader;
static int do_load(void *p) {
    loader *l = p;
    gcam_model_free(l->m);
    l->m = NULL;
    if (gcam_model_load(&l->m, l->path, NULL)) {
        fprintf(stderr, "%s: %s\n", l->path, gcam_model_error(l->m));
        return 1;
    }
    return 0;
}
typedef struct fwd {
    gcam_ctx *c;
    const gcam_feed *in;
} fwd;
static int do_forward(void *p) {
    fwd *f = p;
    if (gcam_ctx_run(f->c, f->in, 1)) {
        fprintf(stderr, "%s\n", gcam_ctx_error(f->c));
        return 1;
    }
    return 0;
}
static int do_row(void *p) {
    bench *b = p;
    if (run_row(b, b->row)) {
        fprintf(stderr, "%s: %s\n", row_names[b->row], gcam_explainer_error(b->e));
        return 1;
    }
    return 0;
}

/* warm runs (a turn each); *runs becomes the timed-run count: with a budget (seconds), a row
 * whose warm-up says `*runs` runs would exceed it gets fewer, never under min_runs. */
static int warm_up(int (*fn)(void *), void *arg, int warm, int *runs, double budget, int min_runs) {
    for (int r = 0; r < warm; r++) {
        turn();
        double a = now();
        if (fn(arg)) return 1;
        double w = now() - a;
        if (budget > 0 && w * *runs > budget) {
            int k = (int)(budget / w);
            *runs = k < min_runs ? min_runs : k < *runs ? k : *runs;
        }
    }
    return 0;
}

/* warm runs, then `runs` timed ones (the count as warm_up sets it); without warm-up (Score-CAM)
 * the first timed run decides, down to 1 run (the same rule as bench_torch.py). t holds runs. */
static int time_row(int (*fn)(void *), void *arg, int warm, int runs, double budget, int min_runs, double *t,
                    result *out) {
    if (warm_up(fn, arg, warm, &runs, budget, min_runs)) return 1;
    for (int r = 0; r < runs; r++) {
        turn();
        double a = now();
        if (fn(arg)) return 1;
        t[r] = now() - a;
        if (!warm && r == 0 && budget > 0 && t[0] * runs > budget) { /* no warm-up: the first run probes */
            int k = (int)(budget / t[0]);
            runs = k < 1 ? 1 : k < runs ? k : runs;
        }
    }
    *out = summarise(t, runs);
    return 0;
}

/* Several rows of one explainer (Grad-CAM and its top-5: one target compares the two), run by
 * run: after each row's warm-up (warm_up: a turn each, and its count), every turn runs one
 * timed run of every row, the order reversed from one turn to the next, so the rows see the same
 * machine and the same cache state as each other. t holds nr * (runs + 1). */
static int time_rows(bench *b, const int *rows, int nr, int warm, int runs, double budget, int min_runs, double *t,
                     result *res) {
    int n[ROW_COUNT], maxn = 0;
    for (int i = 0; i < nr; i++) {
        n[i] = runs;
        b->row = rows[i];
        if (warm_up(do_row, b, warm, &n[i], budget, min_runs)) return 1;
        if (n[i] > maxn) maxn = n[i];
    }
    for (int r = 0; r < maxn; r++) {
        turn();
        for (int j = 0; j < nr; j++) {
            const int i = r % 2 ? nr - 1 - j : j;
            if (r >= n[i]) continue;
            b->row = rows[i];
            double a = now();
            if (do_row(b)) return 1;
            t[i * (runs + 1) + r] = now() - a;
        }
    }
    for (int i = 0; i < nr; i++) res[rows[i]] = summarise(t + i * (runs + 1), n[i]);
    return 0;
}

static void usage(const char *p) {
    fprintf(stderr,
            "usage: %s MODEL.onnx --name NAME [--batch N] [--size S] [--runs R] [--threads T]\n"
            "       [--budget SECONDS [--min-runs K]] [--rows load,forward,gradcam,top5,guided,guided_gradcam,scorecam] [--smoke]\n",
            p);
}

int main(int argc, char **argv) {
    const char *path = NULL, *name = NULL, *rows = "load,forward,gradcam,top5,guided,guided_gradcam";
    int batch = 1, size = 224, runs = 10, threads = 2, smoke = 0, min_runs = 3;
    double budget = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--smoke")) {
            smoke = 1;
        } else if (a[0] == '-' && a[1] == '-' && !v) {
            usage(argv[0]);
            return 2;
        } else if (!strcmp(a, "--name")) {
            name = argv[++i];
        } else if (!strcmp(a, "--batch")) {
            batch = atoi(argv[++i]);
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
        } else if (a[0] != '-' && !path) {
            path = a;
        } else {
            usage(argv[0]);
            return 2;
        }
    }
    if (!path || batch < 1 || batch > 1024 || size < 8 || size > 4096 || runs < 1 || runs > 100000 || threads < 0 ||
        min_runs < 1 || budget < 0) {
        usage(argv[0]);
        return 2;
    }
    if (!name) name = path;
    if (smoke) runs = 1;
    turn_init("bench_gradcam");
    int want[ROW_COUNT] = {0};
    for (int r = 0; r < ROW_COUNT; r++) {
        const char *p = rows;
        size_t l = strlen(row_names[r]);
        while ((p = strstr(p, row_names[r])) != NULL) { /* whole comma-separated words only */
            if ((p == rows || p[-1] == ',') && (p[l] == ',' || p[l] == 0)) want[r] = 1;
            p += l;
        }
    }

    result res[ROW_COUNT] = {{0}};
    double *t = malloc(sizeof(double) * ROW_COUNT * (size_t)(runs + 1));
    size_t numel = (size_t)batch * 3 * (size_t)size * (size_t)size;
    float *x = malloc(numel * sizeof(float));
    int64_t *top = malloc(sizeof(int64_t) * 5 * (size_t)batch), *cls = malloc(sizeof(int64_t) * 5 * (size_t)batch);
    if (!t || !x || !top || !cls) return 1;
    /* the same input pattern as bench_torch.py: image-like values, different per sample */
    for (size_t i = 0; i < numel; i++) x[i] = (float)(((i * 7919u + i / 50177u * 104729u) % 1000u) / 500.0 - 1.0);
    int64_t dims[4] = {batch, 3, size, size};
    gcam_feed in = {.name = NULL, .dtype = GCAM_FLOAT32, .ndim = 4, .dims = dims, .data = x};

    /* load: warm-up + runs (the file is then in the page cache, as for PyTorch's state dict) */
    loader ld = {.path = path};
    if (want[ROW_LOAD]) {
        if (time_row(do_load, &ld, !smoke, runs, budget, min_runs, t, &res[ROW_LOAD])) return 1;
    } else if (do_load(&ld)) {
        return 1;
    }
    gcam_model *m = ld.m;

    /* forward only: an inference context (no gradient plan), freed before the explainer */
    size_t planned = 0;
    if (want[ROW_FORWARD]) {
        gcam_ctx *c = NULL;
        if (gcam_ctx_create(&c, m, &in, 1, &(gcam_ctx_options){.n_threads = threads})) {
            fprintf(stderr, "%s\n", gcam_ctx_error(c));
            return 1;
        }
        planned = gcam_ctx_planned_bytes(c);
        fwd f = {.c = c, .in = &in};
        if (time_row(do_forward, &f, !smoke, runs, budget, min_runs, t, &res[ROW_FORWARD])) return 1;
        gcam_ctx_free(c);
    }

    int any = 0;
    for (int r = ROW_GRADCAM; r < ROW_COUNT; r++) any |= want[r];
    if (any) {
        bench b = {.in = in, .n = batch, .top = top, .cls = cls};
        gcam_explain_options eo = {.n_threads = threads}; /* Score-CAM: 16 masks per forward, as pytorch-grad-cam */
        if (gcam_explainer_create(&b.e, m, &in, 1, &eo)) {
            fprintf(stderr, "%s\n", gcam_explainer_error(b.e));
            return 1;
        }
        if (want[ROW_GRADCAM] && want[ROW_TOP5]) { /* run by run, alternating (time_rows) */
            const int pair[2] = {ROW_GRADCAM, ROW_TOP5};
            if (time_rows(&b, pair, 2, !smoke, runs, budget, min_runs, t, res)) return 1;
            want[ROW_GRADCAM] = want[ROW_TOP5] = 0;
        }
        for (int row = ROW_GRADCAM; row < ROW_COUNT; row++) {
            if (!want[row]) continue;
            /* Score-CAM: a whole run as warm-up would double the longest row; one forward instead */
            if (row == ROW_SCORECAM && !smoke && gcam_explainer_forward(b.e, &in, 1)) {
                fprintf(stderr, "%s\n", gcam_explainer_error(b.e));
                return 1;
            }
            b.row = row;
            if (time_row(do_row, &b, !smoke && row != ROW_SCORECAM, runs, budget, min_runs, t, &res[row])) return 1;
        }
        gcam_explainer_free(b.e);
    }
    gcam_model_free(m);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss = (double)ru.ru_maxrss / 1024.0; /* kilobytes on Linux */
    for (int r = 0; r < ROW_COUNT; r++)
        if (res[r].done)
            printf("RESULT\t%s\t%d\t%s\t%.3f\t%.3f\t%.3f\t%d\n", name, batch, row_names[r], res[r].med, res[r].min,
                   res[r].max, res[r].runs);
    printf("RSS\t%s\t%d\t%.1f\n", name, batch, rss);
    if (want[ROW_FORWARD]) printf("PLANNED\t%s\t%d\t%zu\n", name, batch, planned);
    for (int r = 0; r < ROW_COUNT; r++)
        if (res[r].done)
            printf("| %s | %d | %s | %.1f ms [%.1f–%.1f] | %d runs |\n", name, batch, row_names[r], res[r].med,
                   res[r].min, res[r].max, res[r].runs);
    printf("| %s | %d | peak RSS | %.0f MiB | |\n", name, batch, rss);
    free(t);
    free(x);
    free(top);
    free(cls);
    return 0;
}

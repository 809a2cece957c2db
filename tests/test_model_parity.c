/* torchvision parity: every model in the manifest written by tests/export_models.py is loaded and
 * run through the public API (include/gradcam.h) and compared with PyTorch's own output.
 * Pass: max|ours - torch| / max|torch| <= 1e-4 (and every output finite, same shape).
 * op17bn models (BatchNormalization kept in the graph) are run twice: as loaded, and with
 * gcam_load_options.fold_batchnorm = 1.
 * Usage: test_model_parity MANIFEST.tsv [SUBSTRING]   (SUBSTRING: only models whose name has it)
 * Never skips: a missing or empty manifest is a failure. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <time.h>

#include "gradcam.h"
#include "image/npy.h"

#define REL_TOL 1e-4

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

typedef struct entry {
    char name[128], variant[32], model[256], input[256], expected[256];
} entry;

/* Splits a manifest line into 5 tab-separated fields. */
static int parse_line(char *line, entry *e) {
    char *f[5];
    int n = 0;
    char *p = line;
    while (n < 5) {
        f[n++] = p;
        p = strchr(p, '\t');
        if (!p) break;
        *p++ = 0;
    }
    if (n != 5) return 0;
    char *nl = strpbrk(f[4], "\r\n");
    if (nl) *nl = 0;
    snprintf(e->name, sizeof e->name, "%s", f[0]);
    snprintf(e->variant, sizeof e->variant, "%s", f[1]);
    snprintf(e->model, sizeof e->model, "%s", f[2]);
    snprintf(e->input, sizeof e->input, "%s", f[3]);
    snprintf(e->expected, sizeof e->expected, "%s", f[4]);
    return 1;
}

/* Runs one check; returns 1 on pass. Prints one line. *m / cur_model cache the loaded model. */
static int run_one(const char *dir, const entry *e, int fold, gcam_model **m, char *cur_model, size_t cur_cap) {
    char path[1024], label[64];
    snprintf(label, sizeof label, "%s%s", e->variant, fold ? "+fold" : "");
    double t0 = now_ms(), t_load = 0;
    snprintf(path, sizeof path, "%s/%s", dir, e->model);
    char key[1100];
    snprintf(key, sizeof key, "%s|%d", path, fold);
    if (!*m || strcmp(cur_model, key) != 0) {
        gcam_model_free(*m);
        *m = NULL;
        cur_model[0] = 0;
        gcam_load_options lo = {.fold_batchnorm = fold};
        if (gcam_model_load(m, path, &lo) != GCAM_OK) {
            printf("FAIL %-26s %-12s load: %s\n", e->name, label, *m ? gcam_model_error(*m) : "out of memory");
            gcam_model_free(*m);
            *m = NULL;
            return 0;
        }
        snprintf(cur_model, cur_cap, "%s", key);
        t_load = now_ms() - t0;
    }
    gc_tensor in = {0}, want = {0};
    gc_err err = {0};
    snprintf(path, sizeof path, "%s/%s", dir, e->input);
    if (gc_npy_read(path, &in, &err) != GCAM_OK || in.dtype != GC_F32) {
        printf("FAIL %-26s %-12s input: %s\n", e->name, label, err.msg[0] ? err.msg : "not float32");
        free(in.data);
        return 0;
    }
    snprintf(path, sizeof path, "%s/%s", dir, e->expected);
    if (gc_npy_read(path, &want, &err) != GCAM_OK || want.dtype != GC_F32) {
        printf("FAIL %-26s %-12s expected: %s\n", e->name, label, err.msg[0] ? err.msg : "not float32");
        free(in.data);
        free(want.data);
        return 0;
    }
    char shp[96];
    gc_shape_str(&in.shape, shp, sizeof shp);
    gcam_feed feed = {.name = NULL, .dtype = GCAM_FLOAT32, .ndim = in.shape.ndim, .dims = in.shape.d,
                      .data = in.data};
    gcam_ctx *c = NULL;
    int pass = 0;
    double t1 = now_ms(), t_create = 0, t_run = 0;
    if (gcam_ctx_create(&c, *m, &feed, 1, NULL) != GCAM_OK) {
        printf("FAIL %-26s %-12s %-18s ctx_create: %s\n", e->name, label, shp, c ? gcam_ctx_error(c) : "?");
        goto done;
    }
    t_create = now_ms() - t1;
    double t2 = now_ms();
    if (gcam_ctx_run(c, &feed, 1) != GCAM_OK) {
        printf("FAIL %-26s %-12s %-18s run: %s\n", e->name, label, shp, gcam_ctx_error(c));
        goto done;
    }
    t_run = now_ms() - t2;
    gcam_tensor_view out;
    if (gcam_ctx_output(c, 0, &out) != GCAM_OK) {
        printf("FAIL %-26s %-12s %-18s output: %s\n", e->name, label, shp, gcam_ctx_error(c));
        goto done;
    }
    int same = out.dtype == GCAM_FLOAT32 && out.ndim == want.shape.ndim;
    for (int i = 0; same && i < out.ndim; i++) same = out.dims[i] == want.shape.d[i];
    if (!same) {
        gc_shape os = {.ndim = out.ndim};
        for (int i = 0; i < out.ndim && i < GCAM_MAX_DIMS; i++) os.d[i] = out.dims[i];
        char a[96], b[96];
        printf("FAIL %-26s %-12s %-18s output shape %s dtype %d, expected %s float32\n", e->name, label, shp,
               gc_shape_str(&os, a, sizeof a), (int)out.dtype, gc_shape_str(&want.shape, b, sizeof b));
        goto done;
    }
    const float *y = out.data, *w = want.data;
    size_t n = out.numel;
    double maxdiff = 0, maxref = 0;
    size_t argmax = 0, nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(y[i])) {
            nonfinite++;
            continue;
        }
        double d = fabs((double)y[i] - (double)w[i]);
        if (d > maxdiff) {
            maxdiff = d;
            argmax = i;
        }
        if (fabs((double)w[i]) > maxref) maxref = fabs((double)w[i]);
    }
    double rel = maxref > 0 ? maxdiff / maxref : maxdiff;
    pass = nonfinite == 0 && rel <= REL_TOL;
    printf("%s %-26s %-12s %-18s rel_err %.2e (max|d| %.2e at %zu, max|ref| %.3g)%s  load %6.0f ms  create "
           "%5.0f ms  run %6.0f ms\n",
           pass ? "ok  " : "FAIL", e->name, label, shp, rel, maxdiff, argmax, maxref,
           nonfinite ? "  NON-FINITE OUTPUTS" : "", t_load, t_create, t_run);
done:
    fflush(stdout);
    gcam_ctx_free(c);
    free(in.data);
    free(want.data);
    return pass;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s MANIFEST.tsv [NAME_SUBSTRING]\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        printf("FAIL: cannot open manifest %s (did the export_models test run?)\n", argv[1]);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", argv[1]);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");

    int passed = 0, failed = 0, lineno = 0, n = 0, cap = 0;
    entry *es = NULL;
    char line[2048];
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            entry *ne = realloc(es, (size_t)cap * sizeof *es);
            if (!ne) {
                printf("FAIL: out of memory\n");
                return 1;
            }
            es = ne;
        }
        if (!parse_line(line, &es[n])) {
            printf("FAIL: %s:%d: malformed manifest line\n", argv[1], lineno);
            failed++;
            continue;
        }
        if (argc == 3 && !strstr(es[n].name, argv[2])) continue;
        n++;
    }
    fclose(f);

    gcam_model *m = NULL;
    char cur[1200] = "";
    double t0 = now_ms();
    printf("model parity vs PyTorch: pass when max|ours - torch| / max|torch| <= %.0e\n", REL_TOL);
    for (int i = 0; i < n;) {
        int j = i; /* entries [i, j) share a model file: load it once per fold setting */
        while (j < n && strcmp(es[j].model, es[i].model) == 0) j++;
        int folds = strstr(es[i].variant, "bn") ? 2 : 1; /* BN kept in the graph: also test folding */
        for (int fold = 0; fold < folds; fold++)
            for (int k = i; k < j; k++) {
                if (run_one(dir, &es[k], fold, &m, cur, sizeof cur)) passed++;
                else failed++;
            }
        i = j;
    }
    free(es);
    gcam_model_free(m);
    if (passed + failed == 0) {
        printf("FAIL: manifest %s lists no models%s\n", argv[1], argc == 3 ? " matching the filter" : "");
        failed = 1;
    }
    printf("total %.1f s\n", (now_ms() - t0) / 1e3);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}

/* Explanation methods against the PyTorch reference of tests/methods_ref.py, through the public
 * API only (gcam_explainer_*), plus properties from the papers on its small GAP + linear network.
 *
 * Usage: test_methods DIR [SUBSTRING]     (DIR holds manifest.tsv; SUBSTRING: only those models)
 *
 * Checks (manifest format: see tests/methods_ref.py):
 *  - layer: the named tensor exists and its value equals PyTorch's activation (proves the name);
 *  - model: with no layers given, the automatic choice is exactly that tensor;
 *  - map:   gcam_explain(method, class) raw map: max|ours - ref| <= TOL * max|ref| (and the
 *           upsampled / normalised maps where listed); TOL "l2:X": relative L2 error <= X instead
 *           (input gradients of deep nets, where float32 kink flips are expected: see
 *           methods_ref.py, TOL_FLIP); "ERROR": the call must fail;
 *  - prop:  CAM ~ Grad-CAM (Pearson > 0.9999), Guided Grad-CAM == Guided Backprop x upsampled
 *           Grad-CAM (1e-5 relative), IG completeness at 64 steps (1%), two classes' normalised
 *           Grad-CAMs differ (mean |diff| > 0.1).
 * GCAM_METHODS_DUMP=DIR in the environment writes our raw maps there (same file names).
 * Never skips: a missing or empty manifest is a failure. Prints "N passed, M failed". */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gradcam.h"
#include "image/npy.h"

#define MAX_FIELDS 12
#define MAX_ROWS 1024

static int n_pass, n_fail;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void result(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void result(int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (ok)
        n_pass++;
    else
        n_fail++;
}

/* ---- manifest -------------------------------------------------------------------------------- */

typedef struct row {
    char *f[MAX_FIELDS];
    int n;
} row;

static row rows[MAX_ROWS];
static int n_rows;
static const char *dir;

static int read_manifest(const char *path) {
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    char line[8192];
    while (fgets(line, sizeof line, fp) && n_rows < MAX_ROWS) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        row *r = &rows[n_rows++];
        char *p = strdup(line);
        r->n = 0;
        while (p && r->n < MAX_FIELDS) {
            r->f[r->n++] = p;
            p = strchr(p, '\t');
            if (p) *p++ = 0;
        }
    }
    fclose(fp);
    return n_rows;
}

static const row *find_row(const char *kind, const char *name) {
    for (int i = 0; i < n_rows; i++)
        if (!strcmp(rows[i].f[0], kind) && rows[i].n > 1 && !strcmp(rows[i].f[1], name)) return &rows[i];
    return NULL;
}

static int load_npy(const char *file, gc_tensor *t) {
    char path[2048];
    gc_err err = {0};
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (gc_npy_read(path, t, &err) != GCAM_OK || t->dtype != GC_F32) {
        result(0, "read %s: %s", file, err.msg[0] ? err.msg : "not float32");
        free(t->data);
        t->data = NULL;
        return 0;
    }
    return 1;
}

static int64_t numel(const gc_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->shape.ndim; i++) n *= t->shape.d[i];
    return n;
}

/* max|a - b| and max|b| over n floats. */
static void diff(const float *a, const float *b, int64_t n, double *dmax, double *rmax) {
    double d = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= d)) d = e; /* NaN wins */
        if (fabs(b[i]) > r) r = fabs(b[i]);
    }
    *dmax = d;
    *rmax = r;
}

/* Error of a (n, c, h, w) map against a reference file: max|d| / max|ref| (absolute for an
 * all-zero reference), or with l2 set ||d||_2 / ||ref||_2. -1 on a shape mismatch or read error. */
static double compare_map(const float *got, const int64_t dims[4], const char *file, int l2, double *rmax) {
    gc_tensor ref = {0};
    *rmax = 0;
    if (!load_npy(file, &ref)) return -1;
    double err = -1;
    if (ref.shape.ndim == 4 && ref.shape.d[0] == dims[0] && ref.shape.d[1] == dims[1] &&
        ref.shape.d[2] == dims[2] && ref.shape.d[3] == dims[3]) {
        const float *r = ref.data;
        double d, m, dd = 0, rr = 0;
        diff(got, r, numel(&ref), &d, &m);
        for (int64_t i = 0; i < numel(&ref); i++) {
            dd += ((double)got[i] - r[i]) * ((double)got[i] - r[i]);
            rr += (double)r[i] * r[i];
        }
        *rmax = m;
        err = l2 ? sqrt(dd) / (rr > 0 ? sqrt(rr) : 1.0) : d / (m > 0 ? m : 1.0);
        if (isnan(d) || isnan(dd)) err = INFINITY;
    } else {
        printf("     shape (%lld, %lld, %lld, %lld), reference (%lld, %lld, %lld, %lld)\n", (long long)dims[0],
               (long long)dims[1], (long long)dims[2], (long long)dims[3], (long long)ref.shape.d[0],
               (long long)ref.shape.d[1], (long long)ref.shape.d[2], (long long)ref.shape.d[3]);
    }
    free(ref.data);
    return err;
}

/* ---- models and explainers ------------------------------------------------------------------- */

typedef struct model_entry {
    const row *r;       /* model NAME ONNX INPUT AUTO_LAYER */
    gcam_model *m;
    gc_tensor x;        /* (1, 3, H, W) */
} model_entry;

static gcam_model *cur_m;
static char cur_onnx[1024];

static int open_model(const char *name, model_entry *me) {
    memset(me, 0, sizeof *me);
    me->r = find_row("model", name);
    if (!me->r || me->r->n < 5) {
        result(0, "%s: no model line in the manifest", name);
        return 0;
    }
    if (strcmp(cur_onnx, me->r->f[2]) != 0) {
        gcam_model_free(cur_m);
        cur_m = NULL;
        cur_onnx[0] = 0;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, me->r->f[2]);
        if (gcam_model_load(&cur_m, path, NULL) != GCAM_OK) {
            result(0, "%s: load %s: %s", name, path, cur_m ? gcam_model_error(cur_m) : "out of memory");
            gcam_model_free(cur_m);
            cur_m = NULL;
            return 0;
        }
        snprintf(cur_onnx, sizeof cur_onnx, "%s", me->r->f[2]);
    }
    me->m = cur_m;
    return load_npy(me->r->f[3], &me->x);
}

static gcam_feed feed_of(const gc_tensor *x) {
    gcam_feed f = {.name = NULL, .dtype = GCAM_FLOAT32, .ndim = x->shape.ndim, .dims = x->shape.d, .data = x->data};
    return f;
}

/* Options from "key=value,..." ("-": defaults). */
static int parse_opts(const char *s, gcam_explain_options *o) {
    if (!strcmp(s, "-")) return 1;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) return 0;
        *eq = 0;
        const char *v = eq + 1;
        if (!strcmp(kv, "samples")) o->smoothgrad_samples = atoi(v);
        else if (!strcmp(kv, "sigma")) o->smoothgrad_sigma = strtof(v, NULL);
        else if (!strcmp(kv, "seed")) o->noise_seed = strtoull(v, NULL, 10);
        else if (!strcmp(kv, "steps")) o->ig_steps = atoi(v);
        else if (!strcmp(kv, "batch")) o->batch_size = atoi(v);
        else return 0;
    }
    return 1;
}

/* Explainer on the model's input with layers given as "a,b" ("" or NULL: automatic). */
static gcam_explainer *make_explainer(const model_entry *me, const char *layers, const gcam_explain_options *base,
                                      const char *label) {
    gcam_explain_options o = base ? *base : (gcam_explain_options){0};
    char buf[2048];
    const char *names[8];
    int n = 0;
    if (layers && layers[0]) {
        snprintf(buf, sizeof buf, "%s", layers);
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n < 8; t = strtok_r(NULL, ",", &save))
            names[n++] = t;
    }
    o.layers = n ? names : NULL;
    o.n_layers = n;
    gcam_feed in = feed_of(&me->x);
    gcam_explainer *e = NULL;
    if (gcam_explainer_create(&e, me->m, &in, 1, &o) != GCAM_OK) {
        result(0, "%s: gcam_explainer_create: %s", label, e ? gcam_explainer_error(e) : "out of memory");
        gcam_explainer_free(e);
        return NULL;
    }
    if (gcam_explainer_forward(e, &in, 1) != GCAM_OK) {
        result(0, "%s: gcam_explainer_forward: %s", label, gcam_explainer_error(e));
        gcam_explainer_free(e);
        return NULL;
    }
    return e;
}

static int explain(gcam_explainer *e, const char *label, gcam_method meth, int64_t cls, gcam_map *out) {
    gcam_target t = {.kind = GCAM_TARGET_CLASS, .cls = cls};
    memset(out, 0, sizeof *out);
    if (gcam_explain(e, meth, &t, out) != GCAM_OK) {
        result(0, "%s: gcam_explain(%s): %s", label, gcam_method_name(meth), gcam_explainer_error(e));
        return 0;
    }
    return 1;
}

/* With GCAM_METHODS_DUMP=DIR, our raw maps are written there under the reference's file name. */
static void dump(const char *file, const gcam_map *mp) {
    const char *d = getenv("GCAM_METHODS_DUMP");
    if (!d || !d[0]) return;
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", d, file);
    gc_tensor t = {.dtype = GC_F32, .shape = {.ndim = 4, .d = {mp->n, mp->c, mp->h, mp->w}}, .data = mp->raw};
    gc_err err = {0};
    if (gc_npy_write(path, &t, &err) != GCAM_OK) printf("     dump: %s\n", err.msg);
}

/* ---- checks ---------------------------------------------------------------------------------- */

/* The tensor names of the manifest hold PyTorch's values; and the automatic layer. */
static void check_layers(const char *name, const model_entry *me) {
    for (int i = 0; i < n_rows; i++) {
        const row *r = &rows[i];
        if (strcmp(r->f[0], "layer") || strcmp(r->f[1], name) || r->n < 4) continue;
        const char *keep[1] = {r->f[2]};
        gcam_ctx_options co = {.keep = keep, .n_keep = 1};
        gcam_feed in = feed_of(&me->x);
        gcam_ctx *c = NULL;
        gcam_tensor_view v;
        gc_tensor ref = {0};
        if (gcam_ctx_create(&c, me->m, &in, 1, &co) != GCAM_OK || gcam_ctx_run(c, &in, 1) != GCAM_OK ||
            gcam_ctx_tensor(c, r->f[2], &v) != GCAM_OK) {
            result(0, "%-16s layer %s: %s", name, r->f[2], c ? gcam_ctx_error(c) : "out of memory");
        } else if (load_npy(r->f[3], &ref)) {
            double d = -1, m = 0;
            if ((int64_t)v.numel == numel(&ref)) diff(v.data, ref.data, numel(&ref), &d, &m);
            result(d >= 0 && d <= 1e-4 * m, "%-16s layer value %-44s rel err %.2e", name, r->f[2], d / (m > 0 ? m : 1));
        }
        free(ref.data);
        gcam_ctx_free(c);
    }
    gcam_explainer *e = make_explainer(me, NULL, NULL, name);
    if (!e) return;
    const char *got = gcam_explainer_num_layers(e) == 1 ? gcam_explainer_layer(e, 0) : NULL;
    result(got && !strcmp(got, me->r->f[4]), "%-16s automatic layer %s (expected %s, %d layers)", name,
           got ? got : "(none)", me->r->f[4], gcam_explainer_num_layers(e));
    gcam_explainer_free(e);
}

/* Every map line of one model; explainers are shared by lines with the same layers and options. */
static void check_maps(const char *name, const model_entry *me) {
    int done[MAX_ROWS] = {0};
    for (int i = 0; i < n_rows; i++) {
        const row *r = &rows[i];
        if (done[i] || strcmp(r->f[0], "map") || strcmp(r->f[1], name)) continue;
        gcam_explain_options o = {0};
        if (r->n < 8 || !parse_opts(r->f[7], &o)) {
            result(0, "%s: bad manifest line (options '%s')", name, r->n >= 8 ? r->f[7] : "");
            done[i] = 1;
            continue;
        }
        double t0 = now_ms();
        gcam_explainer *e = make_explainer(me, r->f[2], &o, name);
        double t_setup = now_ms() - t0;
        for (int j = i; j < n_rows; j++) {
            const row *q = &rows[j];
            if (done[j] || strcmp(q->f[0], "map") || strcmp(q->f[1], name) || strcmp(q->f[2], r->f[2]) ||
                q->n < 8 || strcmp(q->f[7], r->f[7]))
                continue;
            done[j] = 1;
            if (!e) continue;
            char layer[128], label[384]; /* first layer without the exporter's "_output_0" */
            snprintf(layer, sizeof layer, "%.*s", (int)strcspn(q->f[2], ","), q->f[2]);
            char *suffix = strstr(layer, "_output_0");
            if (suffix) *suffix = 0;
            snprintf(label, sizeof label, "%-16s %-20s c=%-4s %s%s", name, q->f[3], q->f[4], layer,
                     strchr(q->f[2], ',') ? " +1 layer" : "");
            int meth = gcam_method_from_name(q->f[3]);
            if (meth < 0) {
                result(0, "%s: gcam_method_from_name does not know '%s'", label, q->f[3]);
                continue;
            }
            gcam_target t = {.kind = GCAM_TARGET_CLASS, .cls = atoll(q->f[4])};
            gcam_map mp = {0};
            double t1 = now_ms();
            gcam_status st = gcam_explain(e, (gcam_method)meth, &t, &mp);
            double ms = now_ms() - t1;
            if (!strcmp(q->f[5], "ERROR")) {
                result(st != GCAM_OK, "%s must fail: %s", label, st != GCAM_OK ? gcam_explainer_error(e) : "it succeeded");
                gcam_map_free(&mp);
                continue;
            }
            if (st != GCAM_OK) {
                result(0, "%s: %s", label, gcam_explainer_error(e));
                continue;
            }
            dump(q->f[5], &mp);
            int l2 = !strncmp(q->f[6], "l2:", 3);
            double tol = atof(q->f[6] + (l2 ? 3 : 0)), rmax = 0;
            int64_t rd[4] = {mp.n, mp.c, mp.h, mp.w}, ud[4] = {mp.n, mp.c, mp.H, mp.W};
            double err = compare_map(mp.raw, rd, q->f[5], l2, &rmax);
            int ok = err >= 0 && err <= tol;
            char more[256] = "";
            if (q->n >= 10) { /* upsampled and normalised references */
                double r2, e_up = compare_map(mp.upsampled, ud, q->f[8], l2, &r2);
                double e_no = compare_map(mp.normalized, ud, q->f[9], l2, &r2);
                ok = ok && e_up >= 0 && e_up <= tol && e_no >= 0 && e_no <= tol;
                snprintf(more, sizeof more, " upsampled %.1e normalized %.1e", e_up, e_no);
            }
            result(ok, "%s %s err %.2e (tol %.0e, max|ref| %.3g)%s  %.0f ms", label, l2 ? "L2" : "max", err, tol,
                   rmax, more, ms);
            gcam_map_free(&mp);
        }
        if (e) printf("     (explainer for %s, options %s: setup+forward %.0f ms)\n", r->f[2], r->f[7], t_setup);
        gcam_explainer_free(e);
    }
}

static double pearson(const float *a, const float *b, int64_t n) {
    double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    for (int64_t i = 0; i < n; i++) ma += a[i], mb += b[i];
    ma /= n, mb /= n;
    for (int64_t i = 0; i < n; i++) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : 0;
}

/* The explained score of class c after the last forward. */
static int score_of(gcam_explainer *e, int64_t c, double *out) {
    gcam_tensor_view s;
    if (gcam_explainer_scores(e, &s) != GCAM_OK || s.dtype != GCAM_FLOAT32 || (int64_t)s.numel <= c) return 0;
    *out = ((const float *)s.data)[c];
    return 1;
}

/* prop NAME ONNX INPUT LAYER CLASS1 CLASS2 */
static void check_props(const char *name, const model_entry *me, const row *r) {
    if (r->n < 7) {
        result(0, "%s: bad prop line", name);
        return;
    }
    const char *lay = r->f[4];
    int64_t c1 = atoll(r->f[5]), c2 = atoll(r->f[6]);
    gcam_explainer *e = make_explainer(me, lay, NULL, name);
    if (!e) return;
    gcam_map cam, gc, gc2, gb, ggc;
    if (explain(e, "prop cam", GCAM_CAM, c1, &cam)) {
        if (explain(e, "prop gradcam", GCAM_GRADCAM, c1, &gc)) {
            double p = pearson(cam.raw, gc.raw, cam.n * cam.c * cam.h * cam.w);
            result(p > 0.9999, "%-16s CAM vs Grad-CAM (GAP + linear head): Pearson %.7f (> 0.9999)", name, p);
            if (explain(e, "prop guided", GCAM_GUIDED_BACKPROP, c1, &gb)) {
                if (explain(e, "prop guided-gradcam", GCAM_GUIDED_GRADCAM, c1, &ggc)) {
                    /* guided (n, C, H, W) x upsampled Grad-CAM (n, 1, H, W) */
                    int64_t hw = gb.H * gb.W, n = gb.n * gb.c * hw;
                    float *want = malloc(sizeof(float) * (size_t)n);
                    for (int64_t i = 0; i < n; i++) want[i] = gb.raw[i] * gc.upsampled[(i / (gb.c * hw)) * hw + i % hw];
                    double d, m;
                    diff(ggc.raw, want, n, &d, &m);
                    result(d <= 1e-5 * m && m > 0, "%-16s Guided Grad-CAM == guided backprop x upsampled Grad-CAM: "
                           "rel err %.2e", name, d / (m > 0 ? m : 1));
                    free(want);
                    gcam_map_free(&ggc);
                }
                gcam_map_free(&gb);
            }
            if (explain(e, "prop gradcam c2", GCAM_GRADCAM, c2, &gc2)) {
                int64_t n = gc.n * gc.H * gc.W;
                double s = 0;
                for (int64_t i = 0; i < n; i++) s += fabs((double)gc.normalized[i] - gc2.normalized[i]);
                result(s / n > 0.1, "%-16s Grad-CAM class %lld vs %lld: normalised mean |diff| %.3f (> 0.1)", name,
                       (long long)c1, (long long)c2, s / n);
                gcam_map_free(&gc2);
            }
            gcam_map_free(&gc);
        }
        gcam_map_free(&cam);
    }
    gcam_explainer_free(e);

    /* Integrated Gradients completeness: sum(IG) = f(x) - f(0) */
    gcam_explain_options o = {.ig_steps = 64};
    e = make_explainer(me, lay, &o, name);
    if (!e) return;
    float *zeros = calloc((size_t)numel(&me->x), sizeof(float));
    gcam_feed z = feed_of(&me->x), x = feed_of(&me->x);
    z.data = zeros;
    double f0, fx;
    gcam_map ig;
    if (gcam_explainer_forward(e, &z, 1) != GCAM_OK || !score_of(e, c1, &f0) ||
        gcam_explainer_forward(e, &x, 1) != GCAM_OK || !score_of(e, c1, &fx)) {
        result(0, "%s: forward/scores for IG completeness: %s", name, gcam_explainer_error(e));
    } else if (explain(e, "prop ig", GCAM_INTEGRATED_GRADIENTS, c1, &ig)) {
        double s = 0;
        for (int64_t i = 0; i < ig.n * ig.c * ig.h * ig.w; i++) s += ig.raw[i];
        double rel = fabs(s - (fx - f0)) / fabs(fx - f0);
        result(rel <= 0.01, "%-16s IG completeness (64 steps): sum %.6g vs f(x)-f(0) %.6g, rel err %.2e (<= 1%%)",
               name, s, fx - f0, rel);
        gcam_map_free(&ig);
    }
    free(zeros);
    gcam_explainer_free(e);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [SUBSTRING]\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    const char *only = argc > 2 ? argv[2] : NULL;
    char path[2048];
    snprintf(path, sizeof path, "%s/manifest.tsv", dir);
    if (!read_manifest(path)) {
        printf("FAIL no manifest at %s (run tests/methods_ref.py; torch is required)\n", path);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    double t0 = now_ms();
    for (int i = 0; i < n_rows; i++) {
        const row *r = &rows[i];
        if (strcmp(r->f[0], "model") || r->n < 5 || (only && !strstr(r->f[1], only))) continue;
        const char *name = r->f[1];
        model_entry me;
        double tm = now_ms();
        if (open_model(name, &me)) {
            check_layers(name, &me);
            check_maps(name, &me);
            const row *p = find_row("prop", name);
            if (p) check_props(name, &me, p);
        }
        free(me.x.data);
        printf("     %s: %.1f s\n", name, (now_ms() - tm) / 1e3);
    }
    gcam_model_free(cur_m);
    printf("total %.1f s\n%d passed, %d failed\n", (now_ms() - t0) / 1e3, n_pass, n_fail);
    return n_fail != 0 || n_pass == 0;
}

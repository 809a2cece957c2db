/* gcam_detect_decode (src/explain/detect.c): hand-made unit cases (layouts and their messages,
 * rejected shapes and dtypes, sizes that overflow, options, targets, max_detections), and, given
 * the folder tests/detect_ref.py writes, every reference case in its manifest.txt:
 *   test_detect [FIXTURE_DIR]
 * Reference detections must match in count, order, sample, anchor, class and score exactly, box
 * corners within 1e-5 relative; every detection's target must point at the elements whose product
 * is its score. Decode times of the large cases are printed. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <time.h>

#include "image/npy.h"
#include "opcheck.h"

static gcam_tensor_view view3(const char *name, int64_t n, int64_t d1, int64_t d2, const float *data) {
    gcam_tensor_view v = {.name = name, .dtype = GCAM_FLOAT32, .ndim = 3, .dims = {n, d1, d2}, .data = data};
    v.numel = (size_t)(n * d1 * d2);
    return v;
}

static gcam_detect_options opts_default(void) {
    gcam_detect_options o;
    gcam_detect_options_init(&o);
    return o;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Decodes expecting `want`; on failure *dets must be NULL and *n 0 (they start as garbage). */
static gcam_status decode(const gcam_tensor_view *v, const gcam_detect_options *o, gcam_detection **dets,
                          int64_t *n, gcam_det_layout *l, char *err, size_t es) {
    *dets = (gcam_detection *)(uintptr_t)0x1, *n = -7;
    gcam_status st = gcam_detect_decode(v, o, dets, n, l, err, es);
    if (st) oc_check(*dets == NULL && *n == 0, "a failed decode leaves *dets NULL and *n_dets 0");
    return st;
}

/* Expects a failure `want` whose message contains every string of subs (NULL-terminated). */
static void expect_fail(const char *what, const gcam_tensor_view *v, const gcam_detect_options *o, gcam_status want,
                        const char *const *subs) {
    gcam_detection *d;
    int64_t n;
    char err[256] = "";
    gcam_status st = decode(v, o, &d, &n, NULL, err, sizeof err);
    oc_check(st == want, "%s: status %d (%s), expected %d", what, (int)st, err, (int)want);
    for (int i = 0; subs && subs[i]; i++)
        oc_check(strstr(err, subs[i]) != NULL, "%s: message lacks \"%s\": %s", what, subs[i], err);
    if (!st) free(d);
}

static void test_names(void) {
    oc_check(strcmp(gcam_det_layout_name(GCAM_DET_YOLOV8), "yolov8") == 0, "name of yolov8");
    oc_check(strcmp(gcam_det_layout_name(GCAM_DET_YOLOV5), "yolov5") == 0, "name of yolov5");
    oc_check(strcmp(gcam_det_layout_name(GCAM_DET_AUTO), "auto") == 0, "name of auto");
    oc_check(strcmp(gcam_det_layout_name((gcam_det_layout)42), "unknown") == 0, "name of 42");
    oc_check(gcam_det_layout_from_name("YOLOv8") == GCAM_DET_YOLOV8, "from_name YOLOv8");
    oc_check(gcam_det_layout_from_name("yolov5") == GCAM_DET_YOLOV5, "from_name yolov5");
    oc_check(gcam_det_layout_from_name("auto") == GCAM_DET_AUTO, "from_name auto");
    oc_check(gcam_det_layout_from_name("yolov7") == -1 && gcam_det_layout_from_name(NULL) == -1, "unknown names");
    gcam_detect_options o;
    memset(&o, 0x5a, sizeof o);
    gcam_detect_options_init(&o);
    oc_check(o.layout == GCAM_DET_AUTO && o.score_threshold == 0.25f && o.iou_threshold == 0.45f &&
                 o.max_detections == 100 && o.classes == NULL && o.n_classes == 0,
             "gcam_detect_options_init defaults");
}

/* Shapes only: zero data decodes to nothing (scores 0 < 0.25), and *dets stays NULL. */
static void test_auto_layout(void) {
    float *z = calloc(2 * 84 * 8400, sizeof(float));
    gcam_detect_options o = opts_default();
    gcam_detection *d;
    int64_t n;
    gcam_det_layout l = GCAM_DET_AUTO;
    char err[256];
    gcam_tensor_view v = view3("output0", 2, 84, 8400, z);
    oc_check(decode(&v, &o, &d, &n, &l, err, sizeof err) == GCAM_OK && l == GCAM_DET_YOLOV8, "auto: (2, 84, 8400) is yolov8");
    oc_check(d == NULL && n == 0, "no detection: *dets NULL, *n_dets 0");
    v = view3("output0", 1, 8400, 85, z);
    oc_check(decode(&v, &o, &d, &n, &l, err, sizeof err) == GCAM_OK && l == GCAM_DET_YOLOV5, "auto: (1, 8400, 85) is yolov5");
    v = view3("output0", 1, 5, 6, z); /* smallest yolov8: one class, 6 anchors */
    oc_check(decode(&v, &o, &d, &n, &l, err, sizeof err) == GCAM_OK && l == GCAM_DET_YOLOV8, "auto: (1, 5, 6) is yolov8");
    v = view3("output0", 1, 7, 6, z);
    oc_check(decode(&v, &o, &d, &n, &l, err, sizeof err) == GCAM_OK && l == GCAM_DET_YOLOV5, "auto: (1, 7, 6) is yolov5");
    v = view3("output0", 1, 84, 84, z);
    expect_fail("auto (1, 84, 84)", &v, &o, GCAM_E_SHAPE,
                (const char *[]){"output 'output0' (1, 84, 84)", "cannot tell", "yolov8 (N, 4 + C, A)", "yolov5 (N, A, 5 + C)", NULL});
    v = view3("scores", 1, 4, 100, z); /* D1 < D2 but no room for a class */
    expect_fail("auto (1, 4, 100)", &v, &o, GCAM_E_SHAPE, (const char *[]){"output 'scores' (1, 4, 100)", "cannot tell", NULL});
    v = view3("scores", 1, 100, 5, z);
    expect_fail("auto (1, 100, 5)", &v, &o, GCAM_E_SHAPE, (const char *[]){"output 'scores' (1, 100, 5)", NULL});
    /* the full expected message once */
    v = view3("output0", 1, 84, 84, z);
    err[0] = 0;
    decode(&v, &o, &d, &n, NULL, err, sizeof err);
    oc_check(strcmp(err, "output 'output0' (1, 84, 84): cannot tell the detection layout: give yolov8 (N, 4 + C, A) "
                         "or yolov5 (N, A, 5 + C)") == 0, "auto message: %s", err);
    free(z);
}

static void test_named_layout(void) {
    float *z = calloc(100 * 100, sizeof(float));
    gcam_detect_options o = opts_default();
    gcam_detection *d;
    int64_t n;
    gcam_det_layout l;
    char err[256];
    o.layout = GCAM_DET_YOLOV5;
    gcam_tensor_view v = view3("out", 1, 100, 5, z);
    expect_fail("yolov5 on (1, 100, 5)", &v, &o, GCAM_E_SHAPE,
                (const char *[]){"output 'out' (1, 100, 5)", "does not fit yolov5", NULL});
    v = view3("out", 1, 10, 84, z); /* yolov8-looking, but named: 10 anchors of 79 classes */
    oc_check(decode(&v, &o, &d, &n, &l, err, sizeof err) == GCAM_OK && l == GCAM_DET_YOLOV5, "named yolov5 on (1, 10, 84)");
    o.layout = GCAM_DET_YOLOV8;
    v = view3("out", 1, 4, 100, z);
    expect_fail("yolov8 on (1, 4, 100)", &v, &o, GCAM_E_SHAPE,
                (const char *[]){"output 'out' (1, 4, 100)", "does not fit yolov8", NULL});
    v = view3("out", 1, 84, 84, z); /* ambiguous for auto, fine when named */
    oc_check(decode(&v, &o, &d, &n, &l, err, sizeof err) == GCAM_OK && l == GCAM_DET_YOLOV8, "named yolov8 on (1, 84, 84)");
    free(z);
}

static void test_dtype_rank(void) {
    float *z = calloc(84 * 8400, sizeof(float));
    gcam_detect_options o = opts_default();
    gcam_tensor_view v = view3("output0", 1, 84, 8400, z);
    /* gcam_dtype has no float64: int64 and bool stand for every non-float32 output */
    v.dtype = GCAM_INT64;
    expect_fail("int64 output", &v, &o, GCAM_E_SHAPE, (const char *[]){"output 'output0' (1, 84, 8400)", "int64", "float32", NULL});
    v.dtype = GCAM_BOOL;
    expect_fail("bool output", &v, &o, GCAM_E_SHAPE, (const char *[]){"bool", "float32", NULL});
    v = (gcam_tensor_view){.name = "logits", .dtype = GCAM_FLOAT32, .ndim = 2, .dims = {84, 8400}, .numel = 84 * 8400, .data = z};
    expect_fail("2-D output", &v, &o, GCAM_E_SHAPE, (const char *[]){"output 'logits' (84, 8400)", "3 dimensions", NULL});
    v = (gcam_tensor_view){.name = "x", .dtype = GCAM_FLOAT32, .ndim = 4, .dims = {1, 1, 84, 8400}, .numel = 84 * 8400, .data = z};
    expect_fail("4-D output", &v, &o, GCAM_E_SHAPE, (const char *[]){"(1, 1, 84, 8400)", NULL});
    v.ndim = -1;
    expect_fail("ndim -1", &v, &o, GCAM_E_SHAPE, (const char *[]){"output 'x' ()", NULL});
    v.ndim = 1000; /* dims[] holds GCAM_MAX_DIMS: the message must not read past it */
    expect_fail("ndim 1000", &v, &o, GCAM_E_SHAPE, NULL);
    v = view3(NULL, 1, 84, 84, z);
    expect_fail("unnamed output", &v, &o, GCAM_E_SHAPE, (const char *[]){"output '?' (1, 84, 84)", NULL});
    free(z);
}

/* Dims whose product overflows or does not match numel are refused before anything is read or
 * allocated (data points at 16 floats: valgrind would see any read past them). */
static void test_sizes(void) {
    float small[16] = {0};
    gcam_detect_options o = opts_default();
    gcam_detection *d;
    int64_t n;
    char err[256];
    gcam_tensor_view v = {.name = "o", .dtype = GCAM_FLOAT32, .ndim = 3, .dims = {1, 1LL << 40, 1LL << 40}, .numel = 16, .data = small};
    expect_fail("dims overflow int64", &v, &o, GCAM_E_SHAPE, (const char *[]){"(1, 1099511627776, 1099511627776)", NULL});
    v.dims[0] = 1LL << 62, v.dims[1] = 4, v.dims[2] = 4;
    expect_fail("N * D1 overflow", &v, &o, GCAM_E_SHAPE, NULL);
    v.dims[0] = 1, v.dims[1] = 84, v.dims[2] = 8400;
    expect_fail("dims larger than numel", &v, &o, GCAM_E_SHAPE, (const char *[]){"705600 elements", "16", NULL});
    v.dims[0] = 1, v.dims[1] = -4, v.dims[2] = -4;
    expect_fail("negative dims", &v, &o, GCAM_E_SHAPE, (const char *[]){"(1, -4, -4)", NULL});
    v.dims[0] = 1, v.dims[1] = 5, v.dims[2] = 6, v.numel = 30, v.data = NULL;
    expect_fail("no data", &v, &o, GCAM_E_ARG, NULL);
    /* empty outputs: nothing read, nothing sized by the huge dims */
    v = (gcam_tensor_view){.name = "o", .dtype = GCAM_FLOAT32, .ndim = 3, .dims = {0, 1LL << 40, 1LL << 41}};
    oc_check(decode(&v, &o, &d, &n, NULL, err, sizeof err) == GCAM_OK && d == NULL && n == 0, "N = 0 with huge dims: %s", err);
    o.layout = GCAM_DET_YOLOV5;
    v.dims[0] = 1, v.dims[1] = 0, v.dims[2] = 1LL << 50;
    oc_check(decode(&v, &o, &d, &n, NULL, err, sizeof err) == GCAM_OK && d == NULL && n == 0, "A = 0 with huge C: %s", err);
    int64_t cls = (1LL << 50) - 6; /* the last of C = 2^50 - 5 classes */
    o.classes = &cls, o.n_classes = 1;
    oc_check(decode(&v, &o, &d, &n, NULL, err, sizeof err) == GCAM_OK, "a filter class within a huge C: %s", err);
}

static void test_args(void) {
    float z[5 * 6] = {0};
    gcam_detect_options o = opts_default();
    gcam_detection *d = NULL;
    int64_t n = 0;
    char err[256];
    gcam_tensor_view v = view3("o", 1, 5, 6, z);
    oc_check(gcam_detect_decode(NULL, &o, &d, &n, NULL, err, sizeof err) == GCAM_E_ARG, "NULL output");
    oc_check(gcam_detect_decode(&v, &o, NULL, &n, NULL, err, sizeof err) == GCAM_E_ARG, "NULL dets");
    oc_check(gcam_detect_decode(&v, &o, &d, NULL, NULL, NULL, 0) == GCAM_E_ARG, "NULL n_dets, NULL err");
    oc_check(gcam_detect_decode(&v, NULL, &d, &n, NULL, NULL, 0) == GCAM_OK && n == 0, "NULL options: the defaults");
    gcam_tensor_view bad = view3("output0", 1, 84, 84, z); /* refused before anything is read */
    oc_check(gcam_detect_decode(&bad, &o, &d, &n, NULL, NULL, 0) == GCAM_E_SHAPE, "an error with err NULL");
    char tiny[8];
    oc_check(gcam_detect_decode(&bad, &o, &d, &n, NULL, tiny, sizeof tiny) == GCAM_E_SHAPE && strlen(tiny) == 7,
             "a short err buffer is truncated and terminated");
    o.score_threshold = NAN;
    expect_fail("NaN score threshold", &v, &o, GCAM_E_ARG, (const char *[]){"NaN", NULL});
    o = opts_default(), o.iou_threshold = NAN;
    expect_fail("NaN IoU threshold", &v, &o, GCAM_E_ARG, NULL);
    o = opts_default(), o.max_detections = 0;
    expect_fail("max_detections 0", &v, &o, GCAM_E_ARG, (const char *[]){"max_detections", NULL});
    o = opts_default(), o.n_classes = 2;
    expect_fail("a filter count without classes", &v, &o, GCAM_E_ARG, NULL);
    o = opts_default(), o.n_classes = -1;
    expect_fail("n_classes -1", &v, &o, GCAM_E_ARG, NULL);
    o = opts_default(), o.layout = (gcam_det_layout)7;
    expect_fail("layout 7", &v, &o, GCAM_E_ARG, (const char *[]){"layout", NULL});
    int64_t cl[2] = {0, 1};
    o = opts_default(), o.classes = cl, o.n_classes = 2;
    expect_fail("class 1 of a 1-class output", &v, &o, GCAM_E_ARG, (const char *[]){"output 'o' (1, 5, 6)", "class 1", NULL});
    cl[1] = -1;
    expect_fail("class -1", &v, &o, GCAM_E_ARG, (const char *[]){"class -1", NULL});
}

/* A seeded output: boxes spread out (cx in [0, 200), w, h in [4, 12)), scores in [0.05, 1). */
static float *seeded(int64_t n, int64_t d1, int64_t d2, gcam_det_layout l) {
    float *x = malloc((size_t)(n * d1 * d2) * sizeof(float));
    for (int64_t i = 0; i < n * d1 * d2; i++) {
        int64_t f = l == GCAM_DET_YOLOV8 ? (i / d2) % d1 : i % d2; /* the field */
        double u = oc_urand();
        x[i] = (float)(f < 2 ? 200 * u : f < 4 ? 4 + 8 * u : 0.05 + 0.95 * u);
    }
    return x;
}

/* Each detection's target: kind, count, the flat indices the header gives, and the product of the
 * elements equal to the score (bit for bit). */
static void check_targets(const char *what, const gcam_tensor_view *v, gcam_det_layout l, const gcam_detection *d,
                          int64_t n) {
    const float *x = v->data;
    int64_t d1 = v->dims[1], d2 = v->dims[2];
    for (int64_t i = 0; i < n; i++) {
        const gcam_target *t = &d[i].target;
        int64_t s = d[i].sample, a = d[i].anchor, c = d[i].cls, want0, want1 = -1;
        if (l == GCAM_DET_YOLOV8) want0 = (s * d1 + 4 + c) * d2 + a;
        else want0 = (s * d1 + a) * d2 + 5 + c, want1 = (s * d1 + a) * d2 + 4;
        int ok = t->kind == GCAM_TARGET_PRODUCT && t->n_elements == (l == GCAM_DET_YOLOV8 ? 1 : 2) &&
                 t->elements[0] == want0 && (want1 < 0 || t->elements[1] == want1);
        oc_check(ok, "%s: detection %lld: target kind %d, %d elements, [%lld, %lld]", what, (long long)i, (int)t->kind,
                 t->n_elements, (long long)t->elements[0], (long long)t->elements[1]);
        if (!ok) continue;
        float prod = x[t->elements[0]];
        for (int k = 1; k < t->n_elements; k++) prod *= x[t->elements[k]];
        oc_check(prod == d[i].score, "%s: detection %lld: elements give %.9g, score %.9g", what, (long long)i, prod,
                 d[i].score);
    }
}

static void test_targets(void) {
    for (int li = 0; li < 2; li++) {
        gcam_det_layout l = li ? GCAM_DET_YOLOV5 : GCAM_DET_YOLOV8;
        int64_t n = 3, a = 40, c = 3, d1 = l == GCAM_DET_YOLOV8 ? 4 + c : a, d2 = l == GCAM_DET_YOLOV8 ? a : 5 + c;
        float *x = seeded(n, d1, d2, l);
        gcam_tensor_view v = view3("output0", n, d1, d2, x);
        gcam_detect_options o = opts_default();
        o.score_threshold = 0.0f, o.iou_threshold = 1.0f; /* every candidate kept */
        gcam_detection *d;
        int64_t nd;
        char err[256];
        gcam_det_layout got;
        oc_check(decode(&v, &o, &d, &nd, &got, err, sizeof err) == GCAM_OK && got == l, "targets %s: %s",
                 gcam_det_layout_name(l), err);
        oc_check(nd == n * a, "targets %s: %lld detections of %lld candidates", gcam_det_layout_name(l), (long long)nd,
                 (long long)(n * a));
        check_targets(gcam_det_layout_name(l), &v, l, d, nd);
        for (int64_t i = 1; i < nd; i++) /* sample, then score descending */
            oc_check(d[i - 1].sample < d[i].sample || (d[i - 1].sample == d[i].sample && d[i - 1].score >= d[i].score),
                     "targets %s: order at %lld", gcam_det_layout_name(l), (long long)i);
        free(d);
        /* max_detections = 1: the best candidate of each sample, which NMS always keeps */
        o = opts_default(), o.max_detections = 1;
        oc_check(decode(&v, &o, &d, &nd, NULL, err, sizeof err) == GCAM_OK && nd == n, "max 1 %s: %lld detections",
                 gcam_det_layout_name(l), (long long)nd);
        for (int64_t s = 0; s < nd; s++) {
            float best = -1;
            for (int64_t k = 0; k < a; k++)
                for (int64_t j = 0; j < c; j++) {
                    float sc = l == GCAM_DET_YOLOV8 ? x[(s * d1 + 4 + j) * d2 + k]
                                                    : x[(s * d1 + k) * d2 + 4] * x[(s * d1 + k) * d2 + 5 + j];
                    best = sc > best ? sc : best;
                }
            oc_check(d[s].sample == s && d[s].score == best, "max 1 %s: sample %lld score %.9g, best %.9g",
                     gcam_det_layout_name(l), (long long)s, d[s].score, best);
        }
        free(d);
        free(x);
    }
}

/* ---- the reference cases --------------------------------------------------------------------- */

typedef struct ref_case {
    char name[128], file[160], layout[16], classes[256], expect[16];
    float thr, iou;
    int max_det;
    int64_t n_dets;
} ref_case;

static int parse_classes(const char *s, int64_t *out, int cap) {
    if (strcmp(s, "-") == 0) return 0;
    int k = 0;
    for (char *e; *s && k < cap; s = *e ? e + 1 : e) out[k++] = strtoll(s, &e, 10);
    return k;
}

/* Compares decoded detections with the expected lines; prints the first few differences. */
static void compare_dets(const ref_case *rc, const gcam_detection *d, int64_t nd, const gcam_detection *want) {
    oc_check(nd == rc->n_dets, "%s: %lld detections, expected %lld", rc->name, (long long)nd, (long long)rc->n_dets);
    int shown = 0;
    for (int64_t i = 0; i < GC_MIN(nd, rc->n_dets) && shown < 5; i++) {
        const gcam_detection *g = &d[i], *w = &want[i];
        float gc[4] = {g->x0, g->y0, g->x1, g->y1}, wc[4] = {w->x0, w->y0, w->x1, w->y1};
        int ok = g->sample == w->sample && g->anchor == w->anchor && g->cls == w->cls && g->score == w->score;
        for (int k = 0; k < 4; k++) ok = ok && fabsf(gc[k] - wc[k]) <= 1e-5f * fabsf(wc[k]);
        if (!ok) shown++;
        oc_check(ok, "%s: detection %lld: got (sample %lld, anchor %lld, class %lld, score %.9g, box %g %g %g %g), "
                     "expected (%lld, %lld, %lld, %.9g, %g %g %g %g)", rc->name, (long long)i, (long long)g->sample,
                 (long long)g->anchor, (long long)g->cls, g->score, g->x0, g->y0, g->x1, g->y1, (long long)w->sample,
                 (long long)w->anchor, (long long)w->cls, w->score, w->x0, w->y0, w->x1, w->y1);
    }
}

/* Decodes one case (3 times when large, to time it) and compares. */
static void run_case(const char *dir, const ref_case *rc, const gcam_detection *want) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, rc->file);
    gc_tensor t = {0};
    gc_err e = {0};
    if (!oc_check(gc_npy_read(path, &t, &e) == GCAM_OK && t.dtype == GC_F32 && t.shape.ndim == 3, "%s: %s", rc->name,
                  e.msg)) {
        free(t.data);
        return;
    }
    gcam_tensor_view v = view3(rc->name, t.shape.d[0], t.shape.d[1], t.shape.d[2], t.data);
    int64_t cls[64];
    gcam_detect_options o = opts_default();
    o.layout = gcam_det_layout_from_name(rc->layout);
    o.score_threshold = rc->thr, o.iou_threshold = rc->iou, o.max_detections = rc->max_det;
    o.n_classes = parse_classes(rc->classes, cls, 64), o.classes = o.n_classes ? cls : NULL;
    int reps = v.numel > 40000 ? 3 : 1; /* the large cases are timed (best of 3) */
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        gcam_detection *d;
        int64_t nd;
        gcam_det_layout l;
        char err[256] = "";
        double t0 = now_ms();
        gcam_status st = decode(&v, &o, &d, &nd, &l, err, sizeof err);
        best = GC_MIN(best, now_ms() - t0);
        if (!oc_check(st == GCAM_OK, "%s: %s", rc->name, err)) break;
        if (r == 0) {
            oc_check(strcmp(gcam_det_layout_name(l), rc->expect) == 0, "%s: layout %s, expected %s", rc->name,
                     gcam_det_layout_name(l), rc->expect);
            compare_dets(rc, d, nd, want);
            check_targets(rc->name, &v, l, d, nd);
        }
        free(d);
    }
    if (reps > 1)
        printf("  %-22s (%lld, %lld, %lld): %lld detections in %.2f ms\n", rc->name, (long long)v.dims[0],
               (long long)v.dims[1], (long long)v.dims[2], (long long)rc->n_dets, best);
    free(t.data);
}

/* Reads "det" lines into want[0..rc->n_dets). */
static int read_dets(FILE *f, const ref_case *rc, gcam_detection *want) {
    char line[1024], s[4][64], sc[64];
    for (int64_t i = 0; i < rc->n_dets; i++) {
        long long n, a, c;
        if (!fgets(line, sizeof line, f) ||
            sscanf(line, "det %lld %lld %lld %63s %63s %63s %63s %63s", &n, &a, &c, sc, s[0], s[1], s[2], s[3]) != 8)
            return 0;
        want[i] = (gcam_detection){.sample = n, .anchor = a, .cls = c, .score = strtof(sc, NULL), .x0 = strtof(s[0], NULL),
                                   .y0 = strtof(s[1], NULL), .x1 = strtof(s[2], NULL), .y1 = strtof(s[3], NULL)};
    }
    return 1;
}

static int run_fixtures(const char *dir) {
    char path[512], line[1024];
    snprintf(path, sizeof path, "%s/manifest.txt", dir);
    FILE *f = fopen(path, "r");
    if (!oc_check(f != NULL, "cannot open %s (run tests/detect_ref.py first)", path)) return 0;
    int n_cases = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        ref_case rc = {0};
        char thr[64], iou[64];
        long long nd;
        if (!oc_check(sscanf(line, "case %127s %159s %15s %63s %63s %d %255s %15s %lld", rc.name, rc.file, rc.layout, thr,
                             iou, &rc.max_det, rc.classes, rc.expect, &nd) == 9 && nd >= 0,
                      "manifest: bad line: %s", line))
            break;
        rc.thr = strtof(thr, NULL), rc.iou = strtof(iou, NULL), rc.n_dets = nd;
        gcam_detection *want = calloc((size_t)nd + 1, sizeof *want);
        if (oc_check(want && read_dets(f, &rc, want), "manifest: %s: bad det lines", rc.name)) run_case(dir, &rc, want);
        free(want);
        n_cases++;
    }
    fclose(f);
    oc_check(n_cases >= 30, "manifest: %d cases, expected at least 30", n_cases);
    return n_cases;
}

/* gcam_detect_layout: the layout and the class count, the decoder's errors. */
static void test_layout_call(void) {
    float *z = calloc(8400 * 85, sizeof(float));
    gcam_det_layout l = GCAM_DET_AUTO;
    int64_t C = -1;
    char err[256] = "";
    gcam_tensor_view v = view3("output0", 1, 84, 8400, z);
    oc_check(gcam_detect_layout(&v, GCAM_DET_AUTO, &l, &C, err, sizeof err) == GCAM_OK && l == GCAM_DET_YOLOV8 && C == 80,
             "layout: (1, 84, 8400) is yolov8 with 80 classes (%d, %lld)", (int)l, (long long)C);
    v = view3("output0", 1, 8400, 85, z);
    oc_check(gcam_detect_layout(&v, GCAM_DET_AUTO, &l, &C, err, sizeof err) == GCAM_OK && l == GCAM_DET_YOLOV5 && C == 80,
             "layout: (1, 8400, 85) is yolov5 with 80 classes (%d, %lld)", (int)l, (long long)C);
    v = view3("output0", 1, 7, 6, z);
    oc_check(gcam_detect_layout(&v, GCAM_DET_YOLOV8, &l, &C, err, sizeof err) == GCAM_OK && l == GCAM_DET_YOLOV8 && C == 3,
             "layout: (1, 7, 6) named yolov8 has 3 classes (%d, %lld)", (int)l, (long long)C);
    v = view3("output0", 1, 84, 84, z);
    oc_check(gcam_detect_layout(&v, GCAM_DET_AUTO, &l, &C, err, sizeof err) == GCAM_E_SHAPE && strstr(err, "cannot tell"),
             "layout: (1, 84, 84) is ambiguous: %s", err);
    free(z);
}

int main(int argc, char **argv) {
    oc_seed(17);
    test_names();
    test_auto_layout();
    test_named_layout();
    test_dtype_rank();
    test_sizes();
    test_args();
    test_targets();
    test_layout_call();
    int n_cases = argc > 1 ? run_fixtures(argv[1]) : 0;
    printf("test_detect: %d checks, %d failures, %d reference cases\n", oc_checks, oc_failures, n_cases);
    return oc_failures != 0;
}

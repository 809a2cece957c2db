/* Evaluation metrics (src/explain/metrics.c) on tiny hand-made cases with known answers, and the
 * randomised-weights copy of a model (src/explain/randomize.c) when a model path is given:
 *   test_metrics [MODEL.onnx]
 * The model must be a classifier taking (1, 3, H, W) with H, W >= 32 and fixed or dynamic sizes. */
#include <math.h>

#include "explain/metrics.h"
#include "report/report.h"
#include "graph/model.h"
#include "opcheck.h"

static int near(double a, double b, double tol) { return fabs(a - b) <= tol; }

static float *zeros(int64_t n) { return calloc((size_t)n, sizeof(float)); }

static void fill_box(float *s, int64_t w, gc_box b, float v) {
    for (int64_t y = b.y0; y < b.y1; y++)
        for (int64_t x = b.x0; x < b.x1; x++) s[y * w + x] = v;
}

static void test_box_map(void) {
    const int64_t h = 64, w = 64;
    float *s = zeros(h * w);
    gc_box gt = {10, 20, 30, 40};
    fill_box(s, w, gt, 1.0f);
    gc_box b;
    oc_check(gc_localize_box(s, h, w, 0.15f, &b, NULL) == 1, "box map: a region is found");
    oc_check(b.x0 == 10 && b.y0 == 20 && b.x1 == 30 && b.y1 == 40, "box map: box (%lld,%lld,%lld,%lld)",
             (long long)b.x0, (long long)b.y0, (long long)b.x1, (long long)b.y1);
    oc_check(gc_box_iou(&b, &gt) == 1.0, "box map: IoU %g != 1", gc_box_iou(&b, &gt));
    oc_check(gc_energy_in(s, h, w, &gt, 1) == 1.0, "box map: energy %g != 1", gc_energy_in(s, h, w, &gt, 1));
    oc_check(gc_pointing_hit(s, h, w, &gt, 1, 0) == 1, "box map: pointing hit at tolerance 0");
    /* half the mass outside */
    fill_box(s, w, (gc_box){40, 0, 60, 20}, 1.0f);
    oc_check(near(gc_energy_in(s, h, w, &gt, 1), 0.5, 1e-12), "energy: half inside gives %g", gc_energy_in(s, h, w, &gt, 1));
    /* overlapping boxes count each pixel once */
    gc_box two[2] = {gt, {20, 20, 30, 40}};
    oc_check(near(gc_energy_in(s, h, w, two, 2), 0.5, 1e-12), "energy: union of overlapping boxes");
    memset(s, 0, sizeof(float) * (size_t)(h * w));
    oc_check(isnan(gc_energy_in(s, h, w, &gt, 1)), "energy: an empty map gives NaN");
    oc_check(gc_localize_box(s, h, w, 0.15f, &b, NULL) == 0, "localisation: an empty map has no box");
    oc_check(gc_pointing_hit(s, h, w, &gt, 1, 15) == 0, "pointing: an empty map misses");
    free(s);
}

static void test_iou(void) {
    gc_box a = {0, 0, 10, 10}, b = {5, 0, 15, 10}, c = {20, 20, 30, 30}, e = {3, 3, 3, 9};
    oc_check(near(gc_box_iou(&a, &b), 50.0 / 150.0, 1e-12), "IoU of half-shifted boxes %g", gc_box_iou(&a, &b));
    oc_check(gc_box_iou(&a, &c) == 0, "IoU of disjoint boxes");
    oc_check(gc_box_iou(&a, &e) == 0 && gc_box_area(&e) == 0, "an empty box");
    oc_check(gc_box_iou(&e, &e) == 0, "IoU of two empty boxes is 0, not NaN");
}

static void test_threshold(void) {
    /* a peak of 1, a ring at 0.16 (in: >= 15%), then a ring at 0.14 (out) */
    const int64_t h = 40, w = 40;
    float *s = zeros(h * w);
    fill_box(s, w, (gc_box){6, 6, 16, 16}, 0.14f);
    fill_box(s, w, (gc_box){8, 8, 14, 14}, 0.16f);
    fill_box(s, w, (gc_box){10, 10, 12, 12}, 1.0f);
    gc_box b;
    gc_localize_box(s, h, w, 0.15f, &b, NULL);
    oc_check(b.x0 == 8 && b.y0 == 8 && b.x1 == 14 && b.y1 == 14, "threshold at 15%%: box (%lld,%lld,%lld,%lld)",
             (long long)b.x0, (long long)b.y0, (long long)b.x1, (long long)b.y1);
    /* exactly at the threshold is in */
    for (int64_t i = 0; i < h * w; i++)
        if (s[i] == 0.14f) s[i] = 0.15f;
    gc_localize_box(s, h, w, 0.15f, &b, NULL);
    oc_check(b.x0 == 6 && b.x1 == 16, "a pixel at exactly 15%% of the maximum is in");
    free(s);
}

static void test_largest_region(void) {
    const int64_t h = 50, w = 50;
    float *s = zeros(h * w);
    fill_box(s, w, (gc_box){2, 2, 4, 4}, 1.0f);     /* the maximum, 4 pixels */
    fill_box(s, w, (gc_box){20, 20, 30, 30}, 0.5f); /* the largest region, 100 pixels */
    fill_box(s, w, (gc_box){40, 5, 45, 10}, 0.9f);  /* 25 pixels */
    gc_box b;
    gc_localize_box(s, h, w, 0.15f, &b, NULL);
    oc_check(b.x0 == 20 && b.y0 == 20 && b.x1 == 30 && b.y1 == 30, "largest region chosen, not the peak's");
    /* 8-connectivity: a diagonal neighbour joins the small regions into the largest */
    fill_box(s, w, (gc_box){4, 4, 19, 20}, 0.0f);
    for (int64_t k = 4; k < 20; k++) s[k * w + k] = 0.3f; /* a diagonal line from (4,4) to (19,19) */
    gc_localize_box(s, h, w, 0.15f, &b, NULL);
    oc_check(b.x0 == 2 && b.y0 == 2 && b.x1 == 30 && b.y1 == 30, "8-connected diagonal joins regions: (%lld,%lld,%lld,%lld)",
             (long long)b.x0, (long long)b.y0, (long long)b.x1, (long long)b.y1);
    free(s);
}

static void test_pointing(void) {
    const int64_t h = 100, w = 100;
    float *s = zeros(h * w);
    gc_box box = {20, 20, 40, 40}; /* last column 39 */
    s[30 * w + 49] = 1.0f;          /* 10 px right of column 39 */
    oc_check(gc_pointing_hit(s, h, w, &box, 1, 15) == 1, "pointing: 10 px outside hits (tolerance 15)");
    oc_check(gc_pointing_hit(s, h, w, &box, 1, 9.5) == 0, "pointing: 10 px outside misses at tolerance 9.5");
    s[30 * w + 49] = 0;
    s[30 * w + 59] = 1.0f;          /* 20 px */
    oc_check(gc_pointing_hit(s, h, w, &box, 1, 15) == 0, "pointing: 20 px outside misses");
    s[30 * w + 59] = 0;
    s[(39 + 9) * w + 39 + 9] = 1.0f; /* diagonal: sqrt(81 + 81) = 12.7 */
    oc_check(gc_pointing_hit(s, h, w, &box, 1, 15) == 1, "pointing: 12.7 px diagonally hits");
    oc_check(near(gc_box_distance(48, 48, &box), sqrt(162.0), 1e-12), "distance to a corner");
    oc_check(gc_box_distance(25, 25, &box) == 0, "distance inside is 0");
    s[(39 + 11) * w + 39 + 11] = 2.0f; /* 15.6 px: the maximum now */
    oc_check(gc_pointing_hit(s, h, w, &box, 1, 15) == 0, "pointing: 15.6 px diagonally misses");
    gc_box two[2] = {box, {45, 45, 60, 60}};
    oc_check(gc_pointing_hit(s, h, w, two, 2, 0) == 1, "pointing: any of the class's boxes");
    oc_check(gc_argmax_pos(s, h * w) == (39 + 11) * w + 39 + 11, "argmax");
    free(s);
}

/* A linear "model" on a 1-channel image: score = sum(wt * x) / sum(wt); the map is wt itself. */
static double lin_score(const float *x, const float *wt, int64_t n) {
    double a = 0, b = 0;
    for (int64_t i = 0; i < n; i++) {
        a += (double)wt[i] * x[i];
        b += wt[i];
    }
    return a / b;
}

static double curve_auc(const float *map, const float *wt, int64_t n, int steps, int insertion) {
    float *img = malloc(sizeof(float) * (size_t)n), *sub = zeros(n), *x = malloc(sizeof(float) * (size_t)n);
    int64_t *order = malloc(sizeof(int64_t) * (size_t)n);
    double *y = malloc(sizeof(double) * (size_t)(steps + 1));
    for (int64_t i = 0; i < n; i++) img[i] = 1.0f;
    gc_rank_order(order, map, n);
    for (int i = 0; i <= steps; i++) {
        int64_t k = gc_step_pixels(i, steps, n);
        if (insertion) gc_perturb(x, sub, img, order, k, 1, n);
        else gc_perturb(x, img, sub, order, k, 1, n);
        y[i] = lin_score(x, wt, n);
    }
    double a = gc_auc(y, steps + 1);
    free(img);
    free(sub);
    free(x);
    free(order);
    free(y);
    return a;
}

static void test_deletion(void) {
    const int64_t n = 400;
    float *wt = malloc(sizeof(float) * n), *rev = malloc(sizeof(float) * n), *flat = zeros(n);
    oc_seed(7);
    for (int64_t i = 0; i < n; i++) {
        wt[i] = (float)(0.01 + oc_urand());
        rev[i] = -wt[i];
    }
    double best = curve_auc(wt, wt, n, 50, 0), worst = curve_auc(rev, wt, n, 50, 0), mid = curve_auc(flat, wt, n, 50, 0);
    oc_check(best < mid && mid < worst, "deletion AUC: true order %g < index order %g < reversed %g", best, mid, worst);
    /* the reversed order is the worst of many random orders */
    float *r = malloc(sizeof(float) * n);
    int worst_ok = 1, best_ok = 1;
    for (int t = 0; t < 20; t++) {
        for (int64_t i = 0; i < n; i++) r[i] = (float)oc_urand();
        double a = curve_auc(r, wt, n, 50, 0);
        worst_ok &= a <= worst;
        best_ok &= a >= best;
    }
    oc_check(worst_ok && best_ok, "deletion AUC: random orders lie between the true and the reversed order");
    double ins_best = curve_auc(wt, wt, n, 50, 1), ins_worst = curve_auc(rev, wt, n, 50, 1);
    oc_check(ins_best > ins_worst, "insertion AUC: true order %g > reversed %g", ins_best, ins_worst);
    /* a uniform model: deletion falls linearly, AUC 1/2 */
    for (int64_t i = 0; i < n; i++) wt[i] = 1.0f;
    oc_check(near(curve_auc(flat, wt, n, 50, 0), 0.5, 1e-9), "deletion AUC of a uniform model is 1/2");
    oc_check(gc_step_pixels(0, 50, 100) == 0 && gc_step_pixels(1, 50, 100) == 2 && gc_step_pixels(50, 50, 100) == 100 &&
                 gc_step_pixels(1, 3, 10) == 3,
             "pixels per step");
    double y2[2] = {1, 0}, y3[3] = {1, 1, 1}, y5[5] = {0, 1, 0, 1, 0};
    oc_check(gc_auc(y2, 2) == 0.5 && gc_auc(y3, 3) == 1.0 && near(gc_auc(y5, 5), 0.5, 1e-12), "trapezoid AUC");
    free(wt);
    free(rev);
    free(flat);
    free(r);
}

static void test_blur(void) {
    const int64_t h = 20, w = 30;
    float *a = malloc(sizeof(float) * 2 * h * w), *b = malloc(sizeof(float) * 2 * h * w);
    for (int64_t i = 0; i < 2 * h * w; i++) a[i] = i < h * w ? 0.25f : -1.0f;
    gc_gaussian_blur(b, a, 2, h, w, 3.0);
    int ok = 1;
    for (int64_t i = 0; i < 2 * h * w; i++) ok &= near(b[i], a[i], 1e-6);
    oc_check(ok, "blur keeps a constant plane");
    memset(a, 0, sizeof(float) * h * w);
    a[10 * w + 15] = 1.0f;
    gc_gaussian_blur(b, a, 1, h, w, 1.0);
    double sum = 0;
    for (int64_t i = 0; i < h * w; i++) sum += b[i];
    oc_check(near(sum, 1.0, 1e-5) && b[10 * w + 15] < 0.2f && near(b[10 * w + 16], b[10 * w + 14], 1e-7) &&
                 near(b[10 * w + 16], b[11 * w + 15], 1e-7),
             "blur of an impulse: symmetric, sums to 1");
    free(a);
    free(b);
}

static void test_compare(void) {
    const int64_t h = 20, w = 24, n = h * w;
    float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n), *r = malloc(sizeof(float) * n);
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            a[y * w + x] = (float)((sin(x * 0.3) + cos(y * 0.2) + 2) / 4);
            b[y * w + x] = (float)(((x * y) % 7) / 6.0);
        }
    for (int64_t i = 0; i < n; i++) r[i] = -a[i];
    oc_check(near(gc_spearman(a, a, n), 1.0, 1e-12), "Spearman of identical maps is 1");
    oc_check(near(gc_spearman(a, r, n), -1.0, 1e-12), "Spearman of reversed maps is -1");
    /* reference: scipy.stats.spearmanr */
    oc_check(near(gc_spearman(a, b, n), -0.042414598082597954, 1e-9), "Spearman against scipy: %.12f",
             gc_spearman(a, b, n));
    float t1[4] = {1, 2, 2, 3}, t2[4] = {1, 2, 3, 4};
    oc_check(near(gc_spearman(t1, t2, 4), 4.5 / sqrt(22.5), 1e-12), "Spearman with ties (average ranks)");
    float c[4] = {5, 5, 5, 5};
    oc_check(isnan(gc_spearman(c, t2, 4)), "Spearman with a constant map is NaN");
    oc_check(near(gc_ssim(a, a, h, w), 1.0, 1e-12), "SSIM of identical maps is 1");
    /* reference: the Wang et al. formula with a valid 11x11 window, computed in numpy; equal to
     * skimage's gaussian_weights=True, use_sample_covariance=False, data_range=1 */
    oc_check(near(gc_ssim(a, b, h, w), 0.007407697595204183, 1e-9), "SSIM against the reference: %.12f",
             gc_ssim(a, b, h, w));
    oc_check(near(gc_ssim(a, b, h, w), gc_ssim(b, a, h, w), 1e-12), "SSIM is symmetric");
    for (int64_t i = 0; i < n; i++) r[i] = 1.0f - a[i];
    oc_check(gc_ssim(a, r, h, w) < 0, "SSIM of a map and its negative is below 0");
    float small[9] = {0, 1, 0, 1, 0, 1, 0, 1, 0};
    oc_check(near(gc_ssim(small, small, 3, 3), 1.0, 1e-12), "SSIM of a map smaller than the window");
    free(a);
    free(b);
    free(r);
}

static void test_misc(void) {
    double v[5] = {5, 1, 4, 2, 3}, u[4] = {4, 1, 3, 2};
    oc_check(gc_median(v, 5) == 3 && gc_median(u, 4) == 2.5 && isnan(gc_median(u, 0)), "median");
    float up[2 * 4] = {-3, 1, 0, 2, 1, -2, 0.5f, -5};
    float s[4];
    gc_saliency(s, up, 2, 2, 2, 0);
    oc_check(s[0] == 3 && s[1] == 2 && s[2] == 0.5f && s[3] == 5, "pixel-space saliency: max |.| over channels");
    gc_saliency(s, up, 1, 2, 2, 1);
    oc_check(s[0] == 0 && s[1] == 1 && s[2] == 0 && s[3] == 2, "CAM saliency: positive part");
    float mm[3] = {2, 4, 3}, o[3];
    gc_minmax01(o, mm, 3);
    oc_check(o[0] == 0 && o[1] == 1 && o[2] == 0.5f, "min-max");
    int64_t ord[4];
    float t[4] = {1, 3, 3, 2};
    gc_rank_order(ord, t, 4);
    oc_check(ord[0] == 1 && ord[1] == 2 && ord[2] == 3 && ord[3] == 0, "rank order: decreasing, ties by index");
}

/* ---- randomised weights ---- */

static gcam_status run_model(const gcam_model *m, const float *x, const int64_t *dims, float *out, int64_t *n_out) {
    gcam_feed f = {.name = NULL, .dtype = GCAM_FLOAT32, .ndim = 4, .dims = dims, .data = x};
    gcam_ctx *c = NULL;
    gcam_ctx_options co = {.n_threads = 1};
    gcam_status rc = gcam_ctx_create(&c, m, &f, 1, &co);
    if (!rc) rc = gcam_ctx_run(c, &f, 1);
    gcam_tensor_view v;
    if (!rc) rc = gcam_ctx_output(c, 0, &v);
    if (!rc) {
        *n_out = (int64_t)GC_MIN(v.numel, 4096);
        memcpy(out, v.data, sizeof(float) * (size_t)*n_out);
    } else {
        printf("run: %s\n", gcam_ctx_error(c));
    }
    gcam_ctx_free(c);
    return rc;
}

static int same(const float *a, const float *b, int64_t n) { return memcmp(a, b, sizeof(float) * (size_t)n) == 0; }

/* The weights of a parameterised layer (its first constant float input), through a context. */
static int layer_weight(const gcam_model *m, const char *node, float **w, int64_t *n) {
    for (int i = 0; i < gcam_model_num_nodes(m); i++) {
        gcam_node_info ni;
        gcam_model_node(m, i, &ni);
        if (strcmp(ni.name, node) != 0) continue;
        for (int k = 1; k < ni.n_inputs; k++) {
            gcam_tensor_info ti;
            if (gcam_model_find_tensor(m, ni.inputs[k], &ti) || !ti.is_weight || ti.dtype != GCAM_FLOAT32) continue;
            const gc_model *g = gc_model_of(m);
            int v = gc_model_find_value(g, ni.inputs[k]);
            int64_t cnt = gc_shape_numel(&g->values[v].shape);
            *w = malloc(sizeof(float) * (size_t)cnt);
            memcpy(*w, g->values[v].const_data, sizeof(float) * (size_t)cnt);
            *n = cnt;
            return 0;
        }
    }
    return -1;
}

static void moments(const float *x, int64_t n, double *mean, double *sd) {
    double m = 0, v = 0;
    for (int64_t i = 0; i < n; i++) m += x[i];
    m /= (double)n;
    for (int64_t i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    *mean = m;
    *sd = sqrt(v / (double)n);
}

static void test_randomize(const char *path) {
    gcam_model *m = NULL;
    if (gcam_model_load(&m, path, NULL)) {
        oc_check(0, "load %s: %s", path, gcam_model_error(m));
        gcam_model_free(m);
        return;
    }
    gcam_tensor_info in;
    gcam_model_input(m, 0, &in);
    int64_t dims[4] = {1, 3, in.dims[2] > 0 ? in.dims[2] : 64, in.dims[3] > 0 ? in.dims[3] : 64};
    int64_t nx = 3 * dims[2] * dims[3];
    float *x = malloc(sizeof(float) * (size_t)nx);
    oc_seed(3);
    for (int64_t i = 0; i < nx; i++) x[i] = (float)oc_urand();
    float y0[4096], y1[4096];
    int64_t n0 = 0, n1 = 0;
    oc_check(run_model(m, x, dims, y0, &n0) == GCAM_OK, "original model runs");
    int L = gc_model_num_param_layers(m);
    oc_check(L >= 2, "%d parameterised layers", L);
    printf("%s: %d parameterised layers, the last '%s', the first '%s'\n", path, L, gc_model_param_layer(m, 0),
           gc_model_param_layer(m, L - 1));
    oc_check(gc_model_param_layer(m, L) == NULL, "no layer past the count");

    gcam_model *c0 = NULL, *c1 = NULL, *c1b = NULL, *c2 = NULL, *cs = NULL;
    oc_check(gc_model_randomize(&c0, m, 0, 1) == GCAM_OK, "copy: %s", gcam_model_error(c0));
    oc_check(run_model(c0, x, dims, y1, &n1) == GCAM_OK && n1 == n0 && same(y0, y1, n0), "k = 0: the same outputs bit for bit");
    oc_check(gc_model_randomize(&c1, m, 1, 1) == GCAM_OK, "k = 1: %s", gcam_model_error(c1));
    oc_check(gc_model_randomize(&c1b, m, 1, 1) == GCAM_OK, "k = 1 again");
    oc_check(gc_model_randomize(&c2, m, 2, 1) == GCAM_OK, "k = 2");
    oc_check(gc_model_randomize(&cs, m, 1, 2) == GCAM_OK, "k = 1, another seed");
    oc_check(run_model(c1, x, dims, y1, &n1) == GCAM_OK && !same(y0, y1, n0), "k = 1: the outputs change");
    const char *top = gc_model_param_layer(m, 0), *second = gc_model_param_layer(m, 1);
    float *w0 = NULL, *w1 = NULL, *w1b = NULL, *w2 = NULL, *ws = NULL, *s0 = NULL, *s1 = NULL, *s2 = NULL;
    int64_t n = 0, ns = 0;
    if (!layer_weight(m, top, &w0, &n) && !layer_weight(c1, top, &w1, &n) && !layer_weight(c1b, top, &w1b, &n) &&
        !layer_weight(c2, top, &w2, &n) && !layer_weight(cs, top, &ws, &n) && !layer_weight(m, second, &s0, &ns) &&
        !layer_weight(c1, second, &s1, &ns) && !layer_weight(c2, second, &s2, &ns)) {
        oc_check(!same(w0, w1, n), "k = 1: the top layer's weights are new");
        oc_check(same(w1, w1b, n), "deterministic given the seed");
        oc_check(!same(w1, ws, n), "another seed, other weights");
        oc_check(same(w1, w2, n), "cascade: k = 2 randomises the top layer as k = 1 does");
        oc_check(same(s0, s1, ns), "k = 1 keeps the second layer");
        oc_check(!same(s0, s2, ns), "k = 2 randomises the second layer");
        double m0, sd0, m1, sd1;
        moments(w0, n, &m0, &sd0);
        moments(w1, n, &m1, &sd1);
        oc_check(n < 50 || (fabs(sd1 / sd0 - 1) < 0.2 && fabs(m1 - m0) < 0.2 * sd0 + 1e-6),
                 "random weights keep the scale: mean %g/%g, std %g/%g", m0, m1, sd0, sd1);
    } else {
        oc_check(0, "weights of '%s' and '%s' readable", top, second);
    }
    free(w0); free(w1); free(w1b); free(w2); free(ws); free(s0); free(s1); free(s2);
    gcam_model *all = NULL;
    oc_check(gc_model_randomize(&all, m, L + 5, 9) == GCAM_OK && run_model(all, x, dims, y1, &n1) == GCAM_OK,
             "k beyond the count randomises everything and runs");
    gcam_model_free(all);
    gcam_model_free(c0);
    gcam_model_free(c1);
    gcam_model_free(c1b);
    gcam_model_free(c2);
    gcam_model_free(cs);
    gcam_model_free(m);
    free(x);
}

int main(int argc, char **argv) {
    test_box_map();
    test_iou();
    test_threshold();
    test_largest_region();
    test_pointing();
    test_deletion();
    test_blur();
    test_compare();
    test_misc();
    if (argc > 1) test_randomize(argv[1]);
    printf("%d passed, %d failed\n", oc_checks - oc_failures, oc_failures);
    return oc_failures != 0;
}

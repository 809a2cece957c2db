/* Evaluation metrics of explanation maps: the formulas are in docs/evaluation.md. */
#include "metrics.h"

#include <math.h>

#include "../report/report.h"

void gc_saliency(float *s, const float *up, int64_t c, int64_t h, int64_t w, int is_cam) {
    int64_t n = h * w;
    for (int64_t i = 0; i < n; i++) {
        float v = 0;
        if (is_cam && c == 1) {
            v = up[i] > 0 ? up[i] : 0; /* NaN fails the test: 0 */
        } else {
            for (int64_t k = 0; k < c; k++) {
                float a = fabsf(up[k * n + i]);
                if (a > v) v = a;
            }
        }
        s[i] = v;
    }
}

/* ---- localisation ---- */

int64_t gc_box_area(const gc_box *b) {
    int64_t w = b->x1 - b->x0, h = b->y1 - b->y0;
    return w > 0 && h > 0 ? w * h : 0;
}

double gc_box_iou(const gc_box *a, const gc_box *b) {
    gc_box in = {GC_MAX(a->x0, b->x0), GC_MAX(a->y0, b->y0), GC_MIN(a->x1, b->x1), GC_MIN(a->y1, b->y1)};
    int64_t i = gc_box_area(&in), u = gc_box_area(a) + gc_box_area(b) - i;
    return u > 0 ? (double)i / (double)u : 0.0;
}

/* ---- pointing game ---- */

int64_t gc_argmax_pos(const float *s, int64_t n) {
    int64_t best = -1;
    float mx = 0;
    for (int64_t i = 0; i < n; i++)
        if (s[i] > mx) {
            mx = s[i];
            best = i;
        }
    return best;
}

double gc_box_distance(int64_t x, int64_t y, const gc_box *b) {
    double dx = 0, dy = 0;
    if (x < b->x0) dx = (double)(b->x0 - x);
    else if (x > b->x1 - 1) dx = (double)(x - (b->x1 - 1));
    if (y < b->y0) dy = (double)(b->y0 - y);
    else if (y > b->y1 - 1) dy = (double)(y - (b->y1 - 1));
    return sqrt(dx * dx + dy * dy);
}

int gc_pointing_hit(const float *s, int64_t h, int64_t w, const gc_box *boxes, int n_boxes, double tol) {
    int64_t p = gc_argmax_pos(s, h * w);
    if (p < 0) return 0;
    for (int i = 0; i < n_boxes; i++)
        if (gc_box_area(&boxes[i]) > 0 && gc_box_distance(p % w, p / w, &boxes[i]) <= tol) return 1;
    return 0;
}

double gc_mass_in(const float *s, int64_t h, int64_t w, const gc_box *boxes, int n_boxes) {
    double acc = 0;
    for (int64_t y = 0; y < h; y++) {
        for (int64_t x = 0; x < w; x++) {
            int in = 0;
            for (int i = 0; i < n_boxes && !in; i++)
                in = x >= boxes[i].x0 && x < boxes[i].x1 && y >= boxes[i].y0 && y < boxes[i].y1;
            float v = s[y * w + x];
            if (in && v > 0) acc += v;
        }
    }
    return acc;
}

double gc_mass(const float *s, int64_t n) {
    double acc = 0;
    for (int64_t i = 0; i < n; i++)
        if (s[i] > 0) acc += s[i];
    return acc;
}

double gc_energy_in(const float *s, int64_t h, int64_t w, const gc_box *boxes, int n_boxes) {
    double tot = gc_mass(s, h * w);
    if (!(tot > 0)) return NAN;
    return gc_mass_in(s, h, w, boxes, n_boxes) / tot;
}

/* ---- deletion / insertion ---- */

typedef struct rank_item {
    float v;
    int64_t i;
} rank_item;

static int cmp_desc(const void *pa, const void *pb) {
    const rank_item *a = pa, *b = pb;
    if (a->v > b->v) return -1;
    if (a->v < b->v) return 1;
    return (a->i > b->i) - (a->i < b->i);
}

static int cmp_asc(const void *pa, const void *pb) {
    const rank_item *a = pa, *b = pb;
    if (a->v < b->v) return -1;
    if (a->v > b->v) return 1;
    return (a->i > b->i) - (a->i < b->i);
}

int gc_rank_order(int64_t *order, const float *s, int64_t n) {
    rank_item *it = gc_malloc2((size_t)(n ? n : 1), sizeof *it);
    if (!it) return -1;
    for (int64_t i = 0; i < n; i++) it[i] = (rank_item){isfinite(s[i]) ? s[i] : -INFINITY, i};
    qsort(it, (size_t)n, sizeof *it, cmp_desc);
    for (int64_t i = 0; i < n; i++) order[i] = it[i].i;
    free(it);
    return 0;
}

int64_t gc_step_pixels(int64_t i, int64_t steps, int64_t n) {
    if (steps <= 0) return n;
    /* i * n may overflow only for absurd sizes; do it in long double then */
    int64_t r;
    if (!gc_mul_i64(&r, i, n)) return r / steps;
    return (int64_t)((long double)i * (long double)n / (long double)steps);
}

void gc_perturb(float *dst, const float *base, const float *from, const int64_t *order, int64_t k, int64_t c,
                int64_t plane) {
    memcpy(dst, base, sizeof(float) * (size_t)(c * plane));
    for (int64_t q = 0; q < k; q++) {
        int64_t p = order[q];
        for (int64_t ch = 0; ch < c; ch++) dst[ch * plane + p] = from[ch * plane + p];
    }
}

double gc_auc(const double *y, int n) {
    if (n <= 0) return NAN;
    if (n == 1) return y[0];
    double acc = 0;
    for (int i = 0; i + 1 < n; i++) acc += 0.5 * (y[i] + y[i + 1]);
    return acc / (n - 1);
}

int gc_gaussian_blur(float *dst, const float *src, int64_t c, int64_t h, int64_t w, double sigma) {
    if (!(sigma > 0)) {
        memcpy(dst, src, sizeof(float) * (size_t)(c * h * w));
        return 0;
    }
    int64_t r = (int64_t)ceil(3.0 * sigma);
    if (r > 1024) r = 1024;
    double *k = gc_malloc2((size_t)(2 * r + 1), sizeof(double));
    float *tmp = gc_malloc2((size_t)(h * w), sizeof(float));
    if (!k || !tmp) {
        free(k);
        free(tmp);
        return -1;
    }
    double ks = 0;
    for (int64_t i = -r; i <= r; i++) ks += k[i + r] = exp(-0.5 * (double)(i * i) / (sigma * sigma));
    for (int64_t i = 0; i <= 2 * r; i++) k[i] /= ks;
    for (int64_t ch = 0; ch < c; ch++) {
        const float *s = src + ch * h * w;
        float *d = dst + ch * h * w;
        for (int64_t y = 0; y < h; y++) /* horizontal */
            for (int64_t x = 0; x < w; x++) {
                double acc = 0;
                for (int64_t i = -r; i <= r; i++) {
                    int64_t xx = GC_MIN(GC_MAX(x + i, 0), w - 1);
                    acc += k[i + r] * s[y * w + xx];
                }
                tmp[y * w + x] = (float)acc;
            }
        for (int64_t y = 0; y < h; y++) /* vertical */
            for (int64_t x = 0; x < w; x++) {
                double acc = 0;
                for (int64_t i = -r; i <= r; i++) {
                    int64_t yy = GC_MIN(GC_MAX(y + i, 0), h - 1);
                    acc += k[i + r] * tmp[yy * w + x];
                }
                d[y * w + x] = (float)acc;
            }
    }
    free(k);
    free(tmp);
    return 0;
}

/* ---- comparisons ---- */

/* Average ranks (1-based) of v, ties sharing the mean of their positions. */
static int avg_ranks(double *rank, const float *v, int64_t n) {
    rank_item *it = gc_malloc2((size_t)(n ? n : 1), sizeof *it);
    if (!it) return -1;
    for (int64_t i = 0; i < n; i++) it[i] = (rank_item){isfinite(v[i]) ? v[i] : 0.0f, i};
    qsort(it, (size_t)n, sizeof *it, cmp_asc);
    for (int64_t a = 0; a < n;) {
        int64_t b = a;
        while (b + 1 < n && it[b + 1].v == it[a].v) b++;
        double r = 0.5 * (double)(a + b) + 1.0;
        for (int64_t q = a; q <= b; q++) rank[it[q].i] = r;
        a = b + 1;
    }
    free(it);
    return 0;
}

double gc_spearman(const float *a, const float *b, int64_t n) {
    if (n < 2) return NAN;
    double *ra = gc_malloc2((size_t)n, sizeof(double)), *rb = gc_malloc2((size_t)n, sizeof(double));
    if (!ra || !rb || avg_ranks(ra, a, n) || avg_ranks(rb, b, n)) {
        free(ra);
        free(rb);
        return -2;
    }
    double ma = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) {
        ma += ra[i];
        mb += rb[i];
    }
    ma /= (double)n;
    mb /= (double)n;
    double sab = 0, saa = 0, sbb = 0;
    for (int64_t i = 0; i < n; i++) {
        double da = ra[i] - ma, db = rb[i] - mb;
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    free(ra);
    free(rb);
    if (!(saa > 0) || !(sbb > 0)) return NAN;
    return sab / sqrt(saa * sbb);
}

/* dst (h, w - win + 1) <- src (h, w) filtered along rows with k (valid part). */
static void filt_rows(double *dst, const double *src, int64_t h, int64_t w, const double *k, int64_t win) {
    int64_t wo = w - win + 1;
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < wo; x++) {
            double acc = 0;
            for (int64_t i = 0; i < win; i++) acc += k[i] * src[y * w + x + i];
            dst[y * wo + x] = acc;
        }
}

/* dst (h - win + 1, w) <- src (h, w) filtered along columns. */
static void filt_cols(double *dst, const double *src, int64_t h, int64_t w, const double *k, int64_t win) {
    int64_t ho = h - win + 1;
    for (int64_t y = 0; y < ho; y++)
        for (int64_t x = 0; x < w; x++) {
            double acc = 0;
            for (int64_t i = 0; i < win; i++) acc += k[i] * src[(y + i) * w + x];
            dst[y * w + x] = acc;
        }
}

double gc_ssim(const float *a, const float *b, int64_t h, int64_t w) {
    if (h <= 0 || w <= 0) return NAN;
    int64_t win = GC_MIN(11, GC_MIN(h, w));
    double k[11], ks = 0, ctr = 0.5 * (double)(win - 1);
    for (int64_t i = 0; i < win; i++) ks += k[i] = exp(-0.5 * ((double)i - ctr) * ((double)i - ctr) / (1.5 * 1.5));
    for (int64_t i = 0; i < win; i++) k[i] /= ks;
    int64_t n = h * w, wo = w - win + 1, ho = h - win + 1;
    /* the five moments: a, b, a^2, b^2, ab */
    double *in = gc_malloc2((size_t)n, sizeof(double)), *row = gc_malloc2((size_t)(h * wo), sizeof(double));
    double *mom[5] = {0};
    int bad = !in || !row;
    for (int q = 0; q < 5 && !bad; q++) bad = !(mom[q] = gc_malloc2((size_t)(ho * wo), sizeof(double)));
    if (bad) {
        free(in);
        free(row);
        for (int q = 0; q < 5; q++) free(mom[q]);
        return -2;
    }
    for (int q = 0; q < 5; q++) {
        for (int64_t i = 0; i < n; i++) {
            double x = a[i], y = b[i];
            in[i] = q == 0 ? x : q == 1 ? y : q == 2 ? x * x : q == 3 ? y * y : x * y;
        }
        filt_rows(row, in, h, w, k, win);
        filt_cols(mom[q], row, h, wo, k, win);
    }
    const double C1 = 0.01 * 0.01, C2 = 0.03 * 0.03;
    double acc = 0;
    for (int64_t i = 0; i < ho * wo; i++) {
        double ma = mom[0][i], mb = mom[1][i];
        double va = mom[2][i] - ma * ma, vb = mom[3][i] - mb * mb, cab = mom[4][i] - ma * mb;
        acc += ((2 * ma * mb + C1) * (2 * cab + C2)) / ((ma * ma + mb * mb + C1) * (va + vb + C2));
    }
    free(in);
    free(row);
    for (int q = 0; q < 5; q++) free(mom[q]);
    return acc / (double)(ho * wo);
}

/* ---- statistics ---- */

static int cmp_double(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

double gc_median(double *v, int64_t n) {
    if (n <= 0) return NAN;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Preprocessing photos into model inputs, reproducing Pillow + torchvision bit for bit:
 * Pillow's Image.resize(BILINEAR) (a separable convolution with a triangle filter whose support
 * grows with the shrink factor, 22-bit fixed-point coefficients, horizontal pass first, rounded
 * to 8 bits between passes), torchvision's Resize(int) output size, CenterCrop offsets (Python's
 * round-half-even) and zero padding, ToTensor (x / 255 in float32) and Normalize ((x - m) / s in
 * float32). Only the output window that the crop keeps is computed: each output pixel of Pillow's
 * resampler depends only on its own coefficients, so the values are the same. */
#include "image.h"

#include <math.h>

#define RS_BITS 22 /* Pillow's PRECISION_BITS for 8-bit images */
#define GC_MAX_INPUT_SIDE 65536

/* Coefficients of the output pixels [first, first + count) of a 1-D resize in -> out. */
typedef struct rs_axis {
    int64_t ksize;
    int64_t *lo, *n;  /* (count,): first input sample and number of taps */
    int32_t *k;       /* (count, ksize) fixed point */
} rs_axis;

static void rs_axis_free(rs_axis *a) {
    free(a->lo);
    free(a->n);
    free(a->k);
    memset(a, 0, sizeof *a);
}

static double tri_filter(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static gcam_status rs_axis_make(rs_axis *a, int64_t in, int64_t out, int64_t first, int64_t count, gc_err *err) {
    memset(a, 0, sizeof *a);
    /* Pillow keeps the box in floats: the same conversions give the same coefficients */
    double scale = (double)((float)in - 0.0f) / (double)out;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    double ksd = ceil(support) * 2 + 1;
    if (ksd > (double)INT32_MAX) return gc_fail(err, GCAM_E_LIMIT, "resize: filter support too large");
    a->ksize = (int64_t)ksd;
    size_t nk;
    if (gc_mul_sz(&nk, (size_t)count, (size_t)a->ksize))
        return gc_fail(err, GCAM_E_LIMIT, "resize: coefficient table too large");
    a->lo = gc_malloc2((size_t)count, sizeof *a->lo);
    a->n = gc_malloc2((size_t)count, sizeof *a->n);
    a->k = gc_calloc2(nk, sizeof *a->k);
    double *kd = gc_malloc2((size_t)a->ksize, sizeof *kd);
    if (!a->lo || !a->n || !a->k || !kd) {
        free(kd);
        rs_axis_free(a);
        return gc_fail(err, GCAM_E_NOMEM, "resize: out of memory for coefficients");
    }
    double ss = 1.0 / filterscale;
    for (int64_t i = 0; i < count; i++) {
        int64_t xx = first + i;
        double center = 0.0 + ((double)xx + 0.5) * scale;
        int64_t xmin = (int64_t)(center - support + 0.5); /* truncation, as Pillow's (int) cast */
        if (xmin < 0) xmin = 0;
        int64_t xmax = (int64_t)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        if (xmax > a->ksize) xmax = a->ksize; /* cannot happen; keeps the table in bounds */
        if (xmax < 0) xmax = 0;
        double ww = 0.0;
        for (int64_t x = 0; x < xmax; x++) {
            double w = tri_filter(((double)(x + xmin) - center + 0.5) * ss);
            kd[x] = w;
            ww += w;
        }
        int32_t *k = a->k + i * a->ksize;
        for (int64_t x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? kd[x] / ww : kd[x];
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << RS_BITS)) : (int32_t)(0.5 + v * (1 << RS_BITS));
        }
        a->lo[i] = xmin;
        a->n[i] = xmax;
    }
    free(kd);
    return GCAM_OK;
}

static inline uint8_t rs_clip8(int32_t v) {
    v >>= RS_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* dst (wh, ww, 3) = the window [wx0, wx0+ww) x [wy0, wy0+wh) of src (sh, sw, 3) resized to
 * (rh, rw) with Pillow's bilinear filter. */
static gcam_status pil_resize_window(uint8_t *dst, const uint8_t *src, int64_t sw, int64_t sh, int64_t rw, int64_t rh,
                                     int64_t wx0, int64_t wy0, int64_t ww, int64_t wh, gc_err *err) {
    rs_axis ax = {0}, ay = {0};
    int hor = rw != sw, ver = rh != sh;
    gcam_status st = GCAM_OK;
    if (hor && (st = rs_axis_make(&ax, sw, rw, wx0, ww, err))) return st;
    if (ver && (st = rs_axis_make(&ay, sh, rh, wy0, wh, err))) {
        rs_axis_free(&ax);
        return st;
    }
    /* source rows the vertical pass reads */
    int64_t y_first = ver ? ay.lo[0] : wy0;
    int64_t y_last = ver ? ay.lo[wh - 1] + ay.n[wh - 1] : wy0 + wh;
    if (y_last < y_first) y_last = y_first;
    int64_t nrows = y_last - y_first;

    /* tmp (nrows, ww, 3) after the horizontal pass, or a view of src */
    uint8_t *tmpbuf = NULL;
    const uint8_t *tmp;
    size_t tstride;
    if (hor) {
        tmpbuf = gc_malloc2((size_t)(nrows > 0 ? nrows : 1), (size_t)ww * 3);
        if (!tmpbuf) {
            st = gc_fail(err, GCAM_E_NOMEM, "resize: out of memory");
            goto done;
        }
        const int64_t ks = ax.ksize;
#pragma omp parallel for schedule(static) if (nrows * ww * ks > (1 << 20))
        for (int64_t r = 0; r < nrows; r++) {
            const uint8_t *s = src + (size_t)(y_first + r) * (size_t)sw * 3;
            uint8_t *d = tmpbuf + (size_t)r * (size_t)ww * 3;
            for (int64_t x = 0; x < ww; x++) {
                const int32_t *k = ax.k + x * ks;
                const uint8_t *p = s + (size_t)ax.lo[x] * 3;
                int32_t s0 = 1 << (RS_BITS - 1), s1 = s0, s2 = s0;
                for (int64_t t = 0; t < ax.n[x]; t++, p += 3) {
                    s0 += p[0] * k[t];
                    s1 += p[1] * k[t];
                    s2 += p[2] * k[t];
                }
                d[3 * x] = rs_clip8(s0);
                d[3 * x + 1] = rs_clip8(s1);
                d[3 * x + 2] = rs_clip8(s2);
            }
        }
        tmp = tmpbuf;
        tstride = (size_t)ww * 3;
    } else {
        tmp = src + (size_t)y_first * (size_t)sw * 3 + (size_t)wx0 * 3;
        tstride = (size_t)sw * 3;
    }

    if (ver) {
        const int64_t ks = ay.ksize;
#pragma omp parallel for schedule(static) if (wh * ww * ks > (1 << 20))
        for (int64_t y = 0; y < wh; y++) {
            const int32_t *k = ay.k + y * ks;
            const uint8_t *base = tmp + (size_t)(ay.lo[y] - y_first) * tstride;
            uint8_t *d = dst + (size_t)y * (size_t)ww * 3;
            for (int64_t x = 0; x < ww * 3; x++) {
                int32_t s = 1 << (RS_BITS - 1);
                const uint8_t *p = base + x;
                for (int64_t t = 0; t < ay.n[y]; t++, p += tstride) s += *p * k[t];
                d[x] = rs_clip8(s);
            }
        }
    } else {
        for (int64_t y = 0; y < wh; y++)
            memcpy(dst + (size_t)y * (size_t)ww * 3, tmp + (size_t)(y + wy0 - y_first) * tstride, (size_t)ww * 3);
    }
done:
    free(tmpbuf);
    rs_axis_free(&ax);
    rs_axis_free(&ay);
    return st;
}

/* ---- recipes ------------------------------------------------------------------------------------ */

void gc_preprocess_imagenet(gc_preprocess *p) {
    memset(p, 0, sizeof *p);
    p->width = p->height = 224;
    p->mode = GC_RESIZE_SHORTER_SIDE_CROP;
    p->resize_shorter = 256;
    p->scale = 1.0f;
    p->mean[0] = 0.485f;
    p->mean[1] = 0.456f;
    p->mean[2] = 0.406f;
    p->std[0] = 0.229f;
    p->std[1] = 0.224f;
    p->std[2] = 0.225f;
}

void gc_preprocess_raw(gc_preprocess *p, int64_t width, int64_t height) {
    memset(p, 0, sizeof *p);
    p->width = width;
    p->height = height;
    p->mode = GC_RESIZE_STRETCH;
    p->scale = 1.0f;
    p->std[0] = p->std[1] = p->std[2] = 1.0f;
}

/* Python's int(round(d / 2.0)) for d >= 0: halves go to the even neighbour. */
static int64_t half_round_even(int64_t d) {
    int64_t k = d / 2;
    return (d & 1) && (k & 1) ? k + 1 : k;
}

/* Where the W x H input sits in the image resized to (rw, rh): input (x, y) is resized
 * (x + ox, y + oy); outside [0, rw) x [0, rh) is padding. */
typedef struct layout {
    int64_t rw, rh, ox, oy;
} layout;

static gcam_status plan_layout(layout *L, int64_t w, int64_t h, const gc_preprocess *p, gc_err *err) {
    int64_t W = p->width, H = p->height;
    switch (p->mode) {
    case GC_RESIZE_STRETCH:
        L->rw = W;
        L->rh = H;
        L->ox = L->oy = 0;
        return GCAM_OK;
    case GC_RESIZE_SHORTER_SIDE_CROP: {
        /* torchvision's Resize(int): the shorter side becomes S, the longer int(S * long / short) */
        int64_t S = p->resize_shorter, sh = w <= h ? w : h, lg = w <= h ? h : w, nl, prod;
        if (sh == S) {
            L->rw = w;
            L->rh = h;
        } else {
            if (gc_mul_i64(&prod, S, lg) || prod > ((int64_t)1 << 53))
                return gc_fail(err, GCAM_E_LIMIT, "preprocess: resized image too large");
            nl = (int64_t)((double)prod / (double)sh);
            if (nl < 1) nl = 1;
            L->rw = w <= h ? S : nl;
            L->rh = w <= h ? nl : S;
        }
        /* CenterCrop: zero padding when the crop is larger, else round((r - W) / 2) */
        L->ox = W > L->rw ? -((W - L->rw) / 2) : half_round_even(L->rw - W);
        L->oy = H > L->rh ? -((H - L->rh) / 2) : half_round_even(L->rh - H);
        return GCAM_OK;
    }
    case GC_RESIZE_LETTERBOX: {
        int64_t a, b;
        if (gc_mul_i64(&a, W, h) || gc_mul_i64(&b, H, w) || a > INT64_MAX / 2 || b > INT64_MAX / 2)
            return gc_fail(err, GCAM_E_LIMIT, "preprocess: image too large");
        if (a <= b) { /* width-limited */
            L->rw = W;
            L->rh = (2 * a + w) / (2 * w);
        } else {
            L->rh = H;
            L->rw = (2 * b + h) / (2 * h);
        }
        if (L->rw < 1) L->rw = 1;
        if (L->rh < 1) L->rh = 1;
        L->ox = -((W - L->rw) / 2);
        L->oy = -((H - L->rh) / 2);
        return GCAM_OK;
    }
    }
    return gc_fail(err, GCAM_E_ARG, "preprocess: unknown resize mode %d", (int)p->mode);
}

static gcam_status check_params(const gc_image *img, const gc_preprocess *p, gc_err *err) {
    if (!img || !img->px || img->w < 1 || img->h < 1) return gc_fail(err, GCAM_E_ARG, "preprocess: no image");
    size_t n;
    if (gc_mul_sz(&n, (size_t)img->w, (size_t)img->h) || gc_mul_sz(&n, n, 3))
        return gc_fail(err, GCAM_E_ARG, "preprocess: image size overflows");
    if (!p) return gc_fail(err, GCAM_E_ARG, "preprocess: no parameters");
    if (p->width < 1 || p->height < 1 || p->width > GC_MAX_INPUT_SIDE || p->height > GC_MAX_INPUT_SIDE)
        return gc_fail(err, GCAM_E_ARG, "preprocess: bad model input size %lldx%lld (1..%d)", (long long)p->width,
                       (long long)p->height, GC_MAX_INPUT_SIDE);
    if (p->mode == GC_RESIZE_SHORTER_SIDE_CROP && (p->resize_shorter < 1 || p->resize_shorter > GC_MAX_INPUT_SIDE))
        return gc_fail(err, GCAM_E_ARG, "preprocess: bad resize_shorter %lld (1..%d)", (long long)p->resize_shorter,
                       GC_MAX_INPUT_SIDE);
    if (!isfinite(p->scale) || p->scale == 0.0f)
        return gc_fail(err, GCAM_E_ARG, "preprocess: scale must be finite and non-zero");
    for (int c = 0; c < 3; c++)
        if (!isfinite(p->mean[c]) || !isfinite(p->std[c]) || p->std[c] == 0.0f)
            return gc_fail(err, GCAM_E_ARG, "preprocess: mean/std of channel %d must be finite, std non-zero", c);
    return GCAM_OK;
}

gcam_status gc_preprocess_image(float *out, gc_image *seen, gc_geometry *geom, const gc_image *img,
                                const gc_preprocess *p, gc_err *err) {
    if (seen) {
        seen->w = seen->h = 0;
        seen->px = NULL;
    }
    gcam_status st = check_params(img, p, err);
    if (st != GCAM_OK) return st;
    if (!out) return gc_fail(err, GCAM_E_ARG, "preprocess: no output buffer");
    layout L = {0, 0, 0, 0};
    if ((st = plan_layout(&L, img->w, img->h, p, err))) return st;
    const int64_t W = p->width, H = p->height;

    /* the part of the resized image inside the input: [x0, x1) x [y0, y1) in resized coordinates */
    int64_t x0 = GC_MAX(L.ox, 0), x1 = GC_MIN(L.ox + W, L.rw);
    int64_t y0 = GC_MAX(L.oy, 0), y1 = GC_MIN(L.oy + H, L.rh);
    uint8_t *sp = gc_malloc2((size_t)W * (size_t)H, 3); /* the seen image, (H, W, 3) */
    uint8_t *win = gc_malloc2((size_t)(x1 - x0) * (size_t)(y1 - y0), 3);
    if (!sp || !win) {
        free(sp);
        free(win);
        return gc_fail(err, GCAM_E_NOMEM, "preprocess: out of memory");
    }
    if ((st = pil_resize_window(win, img->px, img->w, img->h, L.rw, L.rh, x0, y0, x1 - x0, y1 - y0, err))) {
        free(sp);
        free(win);
        return st;
    }
    /* padding: the mean colour for letterbox (its normalised value is exactly 0), black for the
     * centre crop's padding (torchvision pads with 0 before cropping) */
    uint8_t pad[3] = {0, 0, 0};
    int letterbox = p->mode == GC_RESIZE_LETTERBOX;
    if (letterbox)
        for (int c = 0; c < 3; c++) {
            double v = (double)p->mean[c] / (double)p->scale * 255.0;
            pad[c] = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : lrint(v));
        }
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++) memcpy(sp + ((size_t)y * (size_t)W + (size_t)x) * 3, pad, 3);
    int64_t dx = x0 - L.ox, dy = y0 - L.oy; /* window origin in input coordinates */
    for (int64_t y = 0; y < y1 - y0; y++)
        memcpy(sp + ((size_t)(y + dy) * (size_t)W + (size_t)dx) * 3, win + (size_t)y * (size_t)(x1 - x0) * 3,
               (size_t)(x1 - x0) * 3);
    free(win);

    /* ToTensor + Normalize in float32, exactly as torchvision evaluates them */
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            float x = p->scale == 1.0f ? (float)v / 255.0f : (float)((double)v * (double)p->scale / 255.0);
            lut[c][v] = (x - p->mean[c]) / p->std[c];
        }
    const size_t plane = (size_t)W * (size_t)H;
    for (int64_t y = 0; y < H; y++) {
        int yin = y >= dy && y < dy + (y1 - y0);
        for (int64_t x = 0; x < W; x++) {
            size_t i = (size_t)y * (size_t)W + (size_t)x;
            int in = yin && x >= dx && x < dx + (x1 - x0);
            for (int c = 0; c < 3; c++) {
                float v = (!in && letterbox) ? 0.0f : lut[c][sp[3 * i + (size_t)c]];
                size_t oc = (size_t)(p->bgr ? 2 - c : c);
                out[p->nhwc ? 3 * i + oc : oc * plane + i] = v;
            }
        }
    }
    if (geom) {
        geom->orig_w = img->w;
        geom->orig_h = img->h;
        geom->sx = (double)img->w / (double)L.rw;
        geom->sy = (double)img->h / (double)L.rh;
        geom->x0 = (double)L.ox * geom->sx;
        geom->y0 = (double)L.oy * geom->sy;
    }
    if (seen) {
        seen->w = W;
        seen->h = H;
        seen->px = sp;
    } else {
        free(sp);
    }
    return GCAM_OK;
}

/* ---- back to the photo ---------------------------------------------------------------------- */

/* Bilinear sampling positions (half-pixel centres, edge-clamped, as cv2.resize INTER_LINEAR)
 * of n original pixels along one axis; inside[i] = 0 where the pixel lies outside the input. */
static void axis_map(int64_t *i0, int64_t *i1, float *f, uint8_t *inside, int64_t n, double o, double s, int64_t len) {
    for (int64_t i = 0; i < n; i++) {
        double u = ((double)i + 0.5 - o) / s; /* continuous input coordinate */
        inside[i] = u >= 0.0 && u < (double)len;
        double t = u - 0.5, fl = floor(t);
        int64_t a = (int64_t)fl, b = a + 1;
        double w = t - fl;
        if (a < 0) {
            a = 0;
            b = 0;
        }
        if (b > len - 1) {
            b = len - 1;
            if (a > len - 1) a = len - 1;
        }
        i0[i] = a;
        i1[i] = b;
        f[i] = (float)w;
    }
}

gcam_status gc_heat_to_original(float *out, const float *heat, int64_t h, int64_t w, const gc_geometry *g,
                                gc_err *err) {
    if (!out || !heat || !g) return gc_fail(err, GCAM_E_ARG, "heat_to_original: NULL argument");
    if (h < 1 || w < 1 || g->orig_w < 1 || g->orig_h < 1)
        return gc_fail(err, GCAM_E_ARG, "heat_to_original: bad sizes");
    if (!(g->sx > 0) || !(g->sy > 0) || !isfinite(g->sx) || !isfinite(g->sy) || !isfinite(g->x0) ||
        !isfinite(g->y0))
        return gc_fail(err, GCAM_E_ARG, "heat_to_original: bad geometry");
    size_t n;
    if (gc_mul_sz(&n, (size_t)g->orig_w, (size_t)g->orig_h) || gc_mul_sz(&n, (size_t)w, (size_t)h))
        return gc_fail(err, GCAM_E_ARG, "heat_to_original: size overflows");
    const int64_t OW = g->orig_w, OH = g->orig_h;
    int64_t *xa = gc_malloc2((size_t)OW, 2 * sizeof *xa), *ya = gc_malloc2((size_t)OH, 2 * sizeof *ya);
    float *xf = gc_malloc2((size_t)OW, sizeof *xf), *yf = gc_malloc2((size_t)OH, sizeof *yf);
    uint8_t *xin = malloc((size_t)OW), *yin = malloc((size_t)OH);
    if (!xa || !ya || !xf || !yf || !xin || !yin) {
        free(xa), free(ya), free(xf), free(yf), free(xin), free(yin);
        return gc_fail(err, GCAM_E_NOMEM, "heat_to_original: out of memory");
    }
    axis_map(xa, xa + OW, xf, xin, OW, g->x0, g->sx, w);
    axis_map(ya, ya + OH, yf, yin, OH, g->y0, g->sy, h);
#pragma omp parallel for schedule(static) if (OW * OH > (1 << 18))
    for (int64_t y = 0; y < OH; y++) {
        float *o = out + (size_t)y * (size_t)OW;
        if (!yin[y]) {
            memset(o, 0, (size_t)OW * sizeof *o);
            continue;
        }
        const float *r0 = heat + (size_t)ya[y] * (size_t)w, *r1 = heat + (size_t)ya[OH + y] * (size_t)w;
        float fy = yf[y];
        for (int64_t x = 0; x < OW; x++) {
            if (!xin[x]) {
                o[x] = 0.0f;
                continue;
            }
            int64_t a = xa[x], b = xa[OW + x];
            float fx = xf[x];
            float top = r0[a] + (r0[b] - r0[a]) * fx, bot = r1[a] + (r1[b] - r1[a]) * fx;
            o[x] = top + (bot - top) * fy;
        }
    }
    free(xa), free(ya), free(xf), free(yf), free(xin), free(yin);
    return GCAM_OK;
}

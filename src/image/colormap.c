/* Colour maps (matplotlib's jet, viridis, inferno, turbo and gray as 256-entry tables, see
 * tools/gen_colormaps.py), heat-map overlays, pixel-space map images and box outlines. */
#include "image.h"

#include <math.h>

static const char *const CMAP_NAMES[GC_CMAP_COUNT] = {"jet", "viridis", "inferno", "turbo", "gray"};

int gc_colormap_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < GC_CMAP_COUNT; i++)
        if (strcmp(name, CMAP_NAMES[i]) == 0) return i;
    if (strcmp(name, "grey") == 0) return GC_CMAP_GRAY;
    return -1;
}

const char *gc_colormap_name(gc_colormap_id id) {
    return (unsigned)id < GC_CMAP_COUNT ? CMAP_NAMES[id] : "unknown";
}

/* matplotlib's lookup: index int(v * 256), 1.0 -> 255; out of range clamps; NaN -> 0. */
static inline const uint8_t *cmap_entry(float v, const uint8_t (*t)[3]) {
    if (!(v > 0.0f)) return t[0]; /* also NaN */
    if (v >= 1.0f) return t[255];
    int i = (int)(v * 256.0f);
    return t[i > 255 ? 255 : i];
}

void gc_colormap(uint8_t *rgb, const float *v, size_t n, gc_colormap_id id) {
    if ((unsigned)id >= GC_CMAP_COUNT) id = GC_CMAP_GRAY;
    const uint8_t(*t)[3] = gc_colormap_tables[id];
    for (size_t i = 0; i < n; i++) memcpy(rgb + 3 * i, cmap_entry(v[i], t), 3);
}

static gcam_status new_image(gc_image *out, int64_t w, int64_t h, const char *what, gc_err *err) {
    out->w = out->h = 0;
    out->px = NULL;
    if (w < 1 || h < 1) return gc_fail(err, GCAM_E_ARG, "%s: bad size %lldx%lld", what, (long long)w, (long long)h);
    size_t n;
    if (gc_mul_sz(&n, (size_t)w, (size_t)h) || gc_mul_sz(&n, n, 3))
        return gc_fail(err, GCAM_E_ARG, "%s: size overflows", what);
    out->px = malloc(n);
    if (!out->px) return gc_fail(err, GCAM_E_NOMEM, "%s: out of memory", what);
    out->w = w;
    out->h = h;
    return GCAM_OK;
}

gcam_status gc_overlay(gc_image *out, const gc_image *base, const float *heat, gc_colormap_id id, float alpha,
                       gc_err *err) {
    if (!out || !base || !base->px || !heat) return gc_fail(err, GCAM_E_ARG, "overlay: NULL argument");
    if ((unsigned)id >= GC_CMAP_COUNT) return gc_fail(err, GCAM_E_ARG, "overlay: unknown colour map %d", (int)id);
    if (!(alpha >= 0.0f && alpha <= 1.0f)) return gc_fail(err, GCAM_E_ARG, "overlay: alpha must be in [0, 1]");
    gc_image o;
    gcam_status st = new_image(&o, base->w, base->h, "overlay", err);
    if (st != GCAM_OK) return st;
    const uint8_t(*t)[3] = gc_colormap_tables[id];
    size_t n = (size_t)base->w * (size_t)base->h;
    const float b = 1.0f - alpha;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *c = cmap_entry(heat[i], t);
        for (int k = 0; k < 3; k++) {
            float v = b * (float)base->px[3 * i + (size_t)k] + alpha * (float)c[k] + 0.5f;
            o.px[3 * i + (size_t)k] = (uint8_t)(v >= 255.0f ? 255 : v);
        }
    }
    *out = o;
    return GCAM_OK;
}

gcam_status gc_heatmap_image(gc_image *out, const float *heat, int64_t h, int64_t w, gc_colormap_id id, gc_err *err) {
    if (!out || !heat) return gc_fail(err, GCAM_E_ARG, "heatmap: NULL argument");
    if ((unsigned)id >= GC_CMAP_COUNT) return gc_fail(err, GCAM_E_ARG, "heatmap: unknown colour map %d", (int)id);
    gc_image o;
    gcam_status st = new_image(&o, w, h, "heatmap", err);
    if (st != GCAM_OK) return st;
    gc_colormap(o.px, heat, (size_t)w * (size_t)h, id);
    *out = o;
    return GCAM_OK;
}

gcam_status gc_pixelmap_image(gc_image *out, const float *map, int64_t c, int64_t h, int64_t w, gc_err *err) {
    if (!out || !map) return gc_fail(err, GCAM_E_ARG, "pixelmap: NULL argument");
    if (c != 1 && c != 3) return gc_fail(err, GCAM_E_ARG, "pixelmap: %lld channels (1 or 3 expected)", (long long)c);
    gc_image o;
    gcam_status st = new_image(&o, w, h, "pixelmap", err);
    if (st != GCAM_OK) return st;
    size_t plane = (size_t)w * (size_t)h, n = plane * (size_t)c;
    /* mean and population std in double, two passes for accuracy */
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += map[i];
    double mean = sum / (double)n, ss = 0;
    for (size_t i = 0; i < n; i++) ss += ((double)map[i] - mean) * ((double)map[i] - mean);
    if (!isfinite(mean) || !isfinite(ss)) {
        gc_image_free(&o);
        return gc_fail(err, GCAM_E_NUMERIC, "pixelmap: the map holds NaN or Inf");
    }
    double inv = 1.0 / (sqrt(ss / (double)n) + 1e-5);
    for (size_t i = 0; i < plane; i++)
        for (size_t k = 0; k < 3; k++) {
            double v = ((double)map[(c == 3 ? k : 0) * plane + i] - mean) * inv * 0.1 + 0.5;
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            o.px[3 * i + k] = (uint8_t)(v * 255.0); /* truncation, as np.uint8(x * 255) */
        }
    *out = o;
    return GCAM_OK;
}

void gc_draw_box(gc_image *img, int64_t x0, int64_t y0, int64_t x1, int64_t y1, const uint8_t rgb[3], int thickness) {
    if (!img || !img->px || !rgb || thickness < 1 || img->w < 1 || img->h < 1) return;
    if (x0 > x1) {
        int64_t t = x0;
        x0 = x1;
        x1 = t;
    }
    if (y0 > y1) {
        int64_t t = y0;
        y0 = y1;
        y1 = t;
    }
    /* clamp far-away coordinates first so that the arithmetic below cannot overflow */
    const int64_t big = (int64_t)1 << 40;
    x0 = GC_MAX(GC_MIN(x0, big), -big), x1 = GC_MAX(GC_MIN(x1, big), -big);
    y0 = GC_MAX(GC_MIN(y0, big), -big), y1 = GC_MAX(GC_MIN(y1, big), -big);
    int64_t t = thickness, cx0 = GC_MAX(x0, 0), cx1 = GC_MIN(x1, img->w - 1);
    for (int64_t y = GC_MAX(y0, 0); y <= GC_MIN(y1, img->h - 1); y++) {
        uint8_t *row = img->px + (size_t)y * (size_t)img->w * 3;
        if (y < y0 + t || y > y1 - t) { /* a horizontal edge: the whole span */
            for (int64_t x = cx0; x <= cx1; x++) memcpy(row + 3 * x, rgb, 3);
            continue;
        }
        for (int64_t x = cx0; x <= GC_MIN(cx1, x0 + t - 1); x++) memcpy(row + 3 * x, rgb, 3);
        for (int64_t x = GC_MAX(cx0, x1 - t + 1); x <= cx1; x++) memcpy(row + 3 * x, rgb, 3);
    }
}

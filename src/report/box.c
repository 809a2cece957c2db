/* The Grad-CAM paper's weakly supervised localisation (section 4.1): threshold the map at 15% of
 * its maximum and box the largest connected region. Also a small image downscaler for the page. */
#include <math.h>

#include "report.h"

int gc_localize_box(const float *map, int64_t h, int64_t w, float frac, gc_box *box, int64_t *area_out) {
    memset(box, 0, sizeof *box);
    int64_t best = 0;
    if (area_out) *area_out = 0;
    int64_t n;
    if (h <= 0 || w <= 0 || gc_mul_i64(&n, h, w)) return 0;
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (map[i] > mx) mx = map[i]; /* NaN never compares greater */
    if (!(mx > 0) || !isfinite(mx)) return 0;
    float thr = frac * mx;
    /* only "visited" matters (each region's size and box are taken as it is filled) */
    uint8_t *seen = calloc((size_t)n, 1);
    int64_t *stack = gc_malloc2((size_t)n, sizeof(int64_t));
    if (!seen || !stack) {
        free(seen);
        free(stack);
        return -1;
    }
    int found = 0;
    for (int64_t start = 0; start < n; start++) {
        if (seen[start] || !(map[start] >= thr)) continue;
        /* flood fill (8-connectivity) with an explicit stack: no recursion depth limit */
        int64_t top = 0, area = 0;
        int64_t bx0 = w, by0 = h, bx1 = -1, by1 = -1;
        stack[top++] = start;
        seen[start] = 1;
        while (top > 0) {
            int64_t p = stack[--top], y = p / w, x = p % w;
            area++;
            if (x < bx0) bx0 = x;
            if (x > bx1) bx1 = x;
            if (y < by0) by0 = y;
            if (y > by1) by1 = y;
            for (int64_t dy = -1; dy <= 1; dy++) {
                int64_t yy = y + dy;
                if (yy < 0 || yy >= h) continue;
                for (int64_t dx = -1; dx <= 1; dx++) {
                    int64_t xx = x + dx;
                    if (xx < 0 || xx >= w || (dx == 0 && dy == 0)) continue;
                    int64_t q = yy * w + xx;
                    if (seen[q] || !(map[q] >= thr)) continue;
                    seen[q] = 1;
                    stack[top++] = q; /* each pixel is pushed at most once: top <= n */
                }
            }
        }
        if (area > best) {
            *box = (gc_box){.x0 = bx0, .y0 = by0, .x1 = bx1 + 1, .y1 = by1 + 1};
            best = area;
            found = 1;
        }
    }
    free(seen);
    free(stack);
    if (area_out) *area_out = best;
    return found;
}

gcam_status gc_image_thumbnail(gc_image *out, const gc_image *img, int64_t max_side, gc_err *err) {
    memset(out, 0, sizeof *out);
    if (img->w <= 0 || img->h <= 0 || !img->px || max_side <= 0)
        return gc_fail(err, GCAM_E_ARG, "thumbnail of an empty image");
    int64_t W = img->w, H = img->h;
    if (W > max_side || H > max_side) {
        if (W >= H) {
            H = (int64_t)llround((double)H * (double)max_side / (double)W);
            W = max_side;
        } else {
            W = (int64_t)llround((double)W * (double)max_side / (double)H);
            H = max_side;
        }
        if (W < 1) W = 1;
        if (H < 1) H = 1;
    }
    out->px = gc_malloc2((size_t)(W * H), 3);
    if (!out->px) return gc_fail(err, GCAM_E_NOMEM, "out of memory for a thumbnail");
    out->w = W;
    out->h = H;
    if (W == img->w && H == img->h) {
        memcpy(out->px, img->px, (size_t)(W * H) * 3);
        return GCAM_OK;
    }
    /* area average: output pixel (x, y) covers source [x*sx, (x+1)*sx) x [y*sy, (y+1)*sy) */
    double sx = (double)img->w / (double)W, sy = (double)img->h / (double)H;
    for (int64_t y = 0; y < H; y++) {
        double fy0 = (double)y * sy, fy1 = fy0 + sy;
        for (int64_t x = 0; x < W; x++) {
            double fx0 = (double)x * sx, fx1 = fx0 + sx;
            double acc[3] = {0, 0, 0}, wsum = 0;
            for (int64_t yy = (int64_t)fy0; yy < img->h && (double)yy < fy1; yy++) {
                double wy = fmin(fy1, (double)yy + 1) - fmax(fy0, (double)yy);
                if (wy <= 0) continue;
                for (int64_t xx = (int64_t)fx0; xx < img->w && (double)xx < fx1; xx++) {
                    double wx = fmin(fx1, (double)xx + 1) - fmax(fx0, (double)xx);
                    if (wx <= 0) continue;
                    const uint8_t *p = img->px + (yy * img->w + xx) * 3;
                    for (int c = 0; c < 3; c++) acc[c] += wx * wy * p[c];
                    wsum += wx * wy;
                }
            }
            uint8_t *o = out->px + (y * W + x) * 3;
            for (int c = 0; c < 3; c++) {
                double v = wsum > 0 ? acc[c] / wsum : 0;
                o[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lround(v));
            }
        }
    }
    return GCAM_OK;
}

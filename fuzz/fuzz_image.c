/* Fuzz target: PNG / JPEG bytes -> gc_image_load_memory (with a 4-megapixel cap so that
 * decompression bombs fail fast), then the three preprocessing modes and an overlay on the result.
 * The first byte picks options (EXIF on/off, background) and is not part of the image when it is
 * not a magic byte. */
#include <stdlib.h>
#include <string.h>

#include "image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gc_decode_opts o = {.max_pixels = 4u << 20, .background = {255, 255, 255}};
    if (size > 0 && data[0] != 0x89 && data[0] != 0xFF) { /* an option byte */
        o.ignore_exif = data[0] & 1;
        o.background[1] = data[0];
        data++;
        size--;
    }
    gc_image img;
    gc_err err = {0};
    gcam_status rc = gc_image_load_memory(data, size, "fuzz.img", &img, &o, &err);
    if (rc) {
        if (!err.msg[0] || img.px) abort(); /* failures say why and leave *out zeroed */
        return 0;
    }
    if (img.w <= 0 || img.h <= 0 || !img.px) abort();
    static float buf[3 * 40 * 24];
    static float heat[40 * 24];
    for (int mode = 0; mode < 3; mode++) {
        gc_preprocess p;
        gc_preprocess_raw(&p, 40, 24);
        p.mode = (gc_resize_mode)mode;
        p.resize_shorter = 28;
        p.nhwc = mode == 1;
        gc_image seen = {0};
        gc_geometry g;
        gc_err e2 = {0};
        if (gc_preprocess_image(buf, &seen, &g, &img, &p, &e2) == GCAM_OK) {
            for (int i = 0; i < 40 * 24; i++) heat[i] = (float)i / (40 * 24);
            gc_image ov = {0};
            if (gc_overlay(&ov, &seen, heat, GC_CMAP_JET, 0.5f, &e2) == GCAM_OK) gc_image_free(&ov);
            if (img.w * img.h <= (1 << 16)) {
                float *back = malloc(sizeof(float) * (size_t)(img.w * img.h));
                if (back) {
                    gc_heat_to_original(back, heat, 24, 40, &g, &e2);
                    free(back);
                }
            }
        }
        gc_image_free(&seen);
    }
    gc_image_free(&img);
    return 0;
}

/* Images: decoding (libpng, libjpeg-turbo), preprocessing into model inputs, colour maps, PNG
 * output. Every file is untrusted: sizes are capped before any pixel buffer is allocated. */
#ifndef GC_IMAGE_H
#define GC_IMAGE_H

#include "../ir/ir.h"

/* 8-bit RGB, row-major (h, w, 3). */
typedef struct gc_image {
    int64_t w, h;
    uint8_t *px;
} gc_image;

typedef struct gc_decode_opts {
    uint64_t max_pixels;   /* 0: default cap (100 megapixels); larger declared sizes fail before decoding */
    uint8_t background[3]; /* alpha is composited on this colour (default set by caller; {255,255,255} white) */
    int ignore_exif;       /* 1: do not apply the EXIF orientation of JPEGs */
} gc_decode_opts;

/* Decodes a PNG or JPEG (chosen by magic bytes, not by extension) to RGB8: grey, grey+alpha, RGB,
 * RGBA, palette (with tRNS), 16-bit PNG (rounded to 8 bits); baseline, progressive, greyscale and
 * CMYK/YCCK JPEG; EXIF orientation applied (all 8 values). Errors name the file and the reason.
 * The pixels equal Pillow's Image.open(f).convert('RGB') (after ImageOps.exif_transpose for JPEG)
 * except where Pillow is lossy or ignores alpha: 16-bit samples become round(v * 255 / 65535)
 * (Pillow keeps the high byte), and alpha a is composited as round((c*a + bg*(255-a)) / 255) with
 * the 16-bit alpha first rounded to 8 bits (Pillow's convert drops alpha). CMYK JPEG is read with
 * Adobe polarity and converted with Pillow's formula (no colour management). A file that ends
 * early is an error (GCAM_E_FORMAT); a declared size above max_pixels is GCAM_E_LIMIT, found
 * before any pixel buffer is allocated; files above 1 GiB are refused (GCAM_E_LIMIT). The
 * library never prints: libpng/libjpeg messages end up in err. out->px is malloc'ed (free it with
 * gc_image_free); on failure *out is zeroed. */
gcam_status gc_image_load(const char *path, gc_image *out, const gc_decode_opts *o, gc_err *err);
gcam_status gc_image_load_memory(const void *data, size_t size, const char *name, gc_image *out,
                                 const gc_decode_opts *o, gc_err *err);
/* 1 if the file starts like a PNG or JPEG. */
int gc_image_sniff(const char *path);
void gc_image_free(gc_image *img);

/* Writes an RGB8 PNG through a temporary file renamed into place (no partial file on failure). */
gcam_status gc_image_write_png(const char *path, const gc_image *img, gc_err *err);
/* Whether gc_image_write_png and gc_npy_write fsync each file before its rename (default 1). A
 * process writing many files sets 0 once, before any thread writes, and syncs the folder itself
 * before the file that says the run is complete (gradcam explain: syncfs before results.json). */
void gc_set_write_fsync(int on);
int gc_write_fsync(void);
/* Encodes an RGB8 PNG into a malloc'ed buffer (for embedding in HTML). */
gcam_status gc_image_encode_png(const gc_image *img, uint8_t **data, size_t *size, gc_err *err);

typedef enum gc_resize_mode {
    GC_RESIZE_STRETCH = 0,            /* straight to (width, height) */
    GC_RESIZE_SHORTER_SIDE_CROP = 1,  /* shorter side to `resize_shorter`, then centre crop */
    GC_RESIZE_LETTERBOX = 2           /* fit inside, pad with the mean colour (or black) */
} gc_resize_mode;

typedef struct gc_preprocess {
    int64_t width, height;       /* the model's input size */
    gc_resize_mode mode;
    int64_t resize_shorter;      /* SHORTER_SIDE_CROP: 256 for the ImageNet recipe */
    float scale;                 /* the value of a full-intensity (255) pixel before mean/std: 1 gives 0..1
                                    (torchvision), 255 gives 0..255 (Caffe-style models) */
    float mean[3], std[3];       /* x = (pixel/255 * scale - mean) / std, indexed by R, G, B channel
                                    (also when bgr is set: mean[0] always applies to red) */
    int bgr;                     /* output channel order B, G, R */
    int nhwc;                    /* (H, W, C) instead of (C, H, W) */
} gc_preprocess;
/* The arithmetic, in float32 as torchvision's ToTensor + Normalize do it: v = pixel / 255.0f when
 * scale is 1, else (float)(pixel * scale / 255.0) in double; x = (v - mean[c]) / std[c].
 * Modes:
 *  STRETCH: resize to (width, height), aspect ratio not kept.
 *  SHORTER_SIDE_CROP: torchvision's Resize(resize_shorter) then CenterCrop((height, width)): the
 *    shorter side becomes resize_shorter, the longer int(resize_shorter * long / short); the crop
 *    starts at round((size - crop) / 2) (Python's round, halves to even); when the crop is larger
 *    than the resized image the missing border is black (0, 0, 0) as torchvision pads with 0.
 *  LETTERBOX: resize to fit inside (the limiting side exactly, the other rounded to nearest),
 *    centred (offset floor((size - fitted) / 2)); the padding is the mean colour: its model input
 *    values are exactly 0 and `seen` shows round(mean[c] * 255 / scale).
 * Resizing is Pillow's Image.resize(BILINEAR), bit for bit (triangle filter stretched by the
 * shrink factor, i.e. antialiased; 8-bit rounding between the horizontal and the vertical pass). */

/* The ImageNet recipe (torchvision): shorter side to 256 with PIL-style antialiased bilinear,
 * centre crop 224, ImageNet mean/std, RGB, CHW. */
void gc_preprocess_imagenet(gc_preprocess *p);
/* 0..1 RGB, stretch to size. */
void gc_preprocess_raw(gc_preprocess *p, int64_t width, int64_t height);

/* Where the model's input sits in the original photo: input pixel (x, y) comes from original
 * (x0 + x * sx, y0 + y * sy). Coordinates are continuous, pixel i covering [i, i + 1) (its centre
 * at i + 0.5), so input pixel centre (x + 0.5) lies at original x0 + (x + 0.5) * sx. Letterbox and
 * crop padding lie outside [0, w) x [0, h) of the original. */
typedef struct gc_geometry {
    double x0, y0, sx, sy;
    int64_t orig_w, orig_h;
} gc_geometry;

/* Fills out (3 * height * width floats, CHW or HWC per p) from img; seen receives the exact RGB
 * image the model saw (height x width, before mean/std), geom the mapping back to img. Resizing is
 * bilinear with antialiasing when shrinking (as PIL and torchvision do for images). seen and geom
 * may be NULL; seen->px is malloc'ed (gc_image_free). */
gcam_status gc_preprocess_image(float *out, gc_image *seen, gc_geometry *geom, const gc_image *img,
                                const gc_preprocess *p, gc_err *err);

typedef enum gc_colormap_id {
    GC_CMAP_JET = 0,
    GC_CMAP_VIRIDIS,
    GC_CMAP_INFERNO,
    GC_CMAP_TURBO,
    GC_CMAP_GRAY,
    GC_CMAP_COUNT
} gc_colormap_id;

int gc_colormap_from_name(const char *name); /* -1 if unknown */
const char *gc_colormap_name(gc_colormap_id id);
/* The colour maps, 256 RGB8 entries each: matplotlib's float tables * 255 rounded to nearest
 * (jet is matplotlib's jet, which differs slightly from OpenCV's COLORMAP_JET; turbo is Google's
 * 256-entry table as matplotlib ships it). Generated by tools/gen_colormaps.py. */
extern const uint8_t gc_colormap_tables[GC_CMAP_COUNT][256][3];

/* v in [0,1] (clamped; NaN -> 0) -> RGB8, n values. Entry int(v * 256), 1.0 -> 255, as
 * matplotlib's Colormap.__call__ indexes. Names: "jet", "viridis", "inferno", "turbo", "gray"
 * (or "grey"). */
void gc_colormap(uint8_t *rgb, const float *v, size_t n, gc_colormap_id id);
/* heat (h, w) in [0,1] coloured and alpha-blended over base (same size): out = (1-a)*base + a*colour,
 * rounded to nearest in float. *out receives a new image (must not be base itself). */
gcam_status gc_overlay(gc_image *out, const gc_image *base, const float *heat, gc_colormap_id id, float alpha,
                       gc_err *err);
/* A heat map (h, w) in [0,1] as an RGB image. */
gcam_status gc_heatmap_image(gc_image *out, const float *heat, int64_t h, int64_t w, gc_colormap_id id, gc_err *err);
/* A pixel-space map (3, h, w) as an image normalised as in the Grad-CAM paper's figures
 * (zero mean, unit std, * 0.1, + 0.5, clipped to [0, 1]); channel order RGB. Exactly
 * pytorch-grad-cam's deprocess_image: mean and population std over all c*h*w values, x / (std +
 * 1e-5), then uint8(x * 255) truncated. c may be 1 (grey, replicated) or 3. NaN/Inf ->
 * GCAM_E_NUMERIC. */
gcam_status gc_pixelmap_image(gc_image *out, const float *map, int64_t c, int64_t h, int64_t w, gc_err *err);
/* Maps a heat map on the model's input (h, w) back onto the original photo's size (bilinear;
 * zero outside the crop). Each original pixel centre is mapped through g into input coordinates
 * and sampled with half-pixel centres, edges clamped (as cv2.resize INTER_LINEAR: in STRETCH mode
 * this is the usual upsampling of a CAM to the photo size); original pixels whose centre falls
 * outside the input (cropped away) get 0. */
gcam_status gc_heat_to_original(float *out /* (orig_h, orig_w) */, const float *heat, int64_t h, int64_t w,
                                const gc_geometry *g, gc_err *err);
/* Draws a rectangle outline (x0, y0, x1, y1 inclusive) of the given colour and thickness (lines
 * grow inwards from the box edges); clipped to the image, corners may be given in any order. */
void gc_draw_box(gc_image *img, int64_t x0, int64_t y0, int64_t x1, int64_t y1, const uint8_t rgb[3], int thickness);

/* The 1000 ImageNet class names (from Debian's torchvision metadata). */
extern const char *const gc_imagenet_labels[1000];

#endif

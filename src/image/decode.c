/* Image decoding: PNG (libpng) and JPEG (libjpeg-turbo) to RGB8, chosen by magic bytes.
 *
 * Files are untrusted. The declared size is checked against the pixel cap before any pixel buffer
 * is allocated; both libraries report errors through callbacks that longjmp back here (never
 * exit(), never print); a file that ends early is an error, not a grey bottom half. The pixels
 * match what Pillow decodes (same libjpeg-turbo settings: ISLOW DCT, fancy upsampling; CMYK with
 * Adobe polarity and Pillow's CMYK->RGB formula; 16-bit PNG samples rounded to nearest). */
#define _POSIX_C_SOURCE 200809L
#include "image.h"

#include <errno.h>
#include <setjmp.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#define GC_DEFAULT_MAX_PIXELS 100000000ull
/* Whole files are read into memory; no PNG or JPEG of a capped pixel count needs more. */
#define GC_MAX_FILE_BYTES ((size_t)1 << 30)
/* A progressive JPEG with thousands of tiny scans decodes for minutes: refuse it. */
#define GC_MAX_JPEG_SCANS 1000

static const uint8_t PNG_MAGIC[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static uint64_t cap_pixels(const gc_decode_opts *o) {
    return (o && o->max_pixels) ? o->max_pixels : GC_DEFAULT_MAX_PIXELS;
}

/* Declared size check, before anything proportional to it is allocated. */
static gcam_status check_size(const char *name, uint64_t w, uint64_t h, const gc_decode_opts *o, gc_err *err) {
    if (w == 0 || h == 0) return gc_fail(err, GCAM_E_FORMAT, "%s: image has zero width or height", name);
    uint64_t cap = cap_pixels(o), n;
    if (__builtin_mul_overflow(w, h, &n) || n > cap)
        return gc_fail(err, GCAM_E_LIMIT, "%s: image of %llux%llu pixels exceeds the limit of %llu pixels", name,
                       (unsigned long long)w, (unsigned long long)h, (unsigned long long)cap);
    /* 4 bytes per pixel is the largest intermediate buffer below */
    size_t b;
    if (gc_mul_sz(&b, (size_t)n, 4))
        return gc_fail(err, GCAM_E_LIMIT, "%s: image of %llux%llu pixels is too large", name,
                       (unsigned long long)w, (unsigned long long)h);
    return GCAM_OK;
}

/* x = c*a + bg*(255-a) rounded to nearest over 255 (never a tie: 255 is odd). */
static inline uint8_t blend255(unsigned c, unsigned a, unsigned bg) {
    return (uint8_t)((c * a + bg * (255u - a) + 127u) / 255u);
}

static void composite_row(uint8_t *dst, const uint8_t *rgba, size_t w, const uint8_t bg[3]) {
    for (size_t x = 0; x < w; x++, rgba += 4, dst += 3) {
        unsigned a = rgba[3];
        dst[0] = blend255(rgba[0], a, bg[0]);
        dst[1] = blend255(rgba[1], a, bg[1]);
        dst[2] = blend255(rgba[2], a, bg[2]);
    }
}

static const uint8_t *bg_of(const gc_decode_opts *o) {
    static const uint8_t white[3] = {255, 255, 255};
    return o ? o->background : white;
}

/* ---- PNG ------------------------------------------------------------------------------------- */

typedef struct png_ctx {
    const uint8_t *data;
    size_t size, pos;
    char msg[256];
    /* everything allocated under setjmp lives here so the error path can free it */
    uint8_t *px, *tmp;
    png_bytep *rows;
} png_ctx;

static void png_read_cb(png_structp png, png_bytep out, size_t len) {
    png_ctx *c = png_get_io_ptr(png);
    if (len > c->size - c->pos) png_error(png, "file is truncated");
    memcpy(out, c->data + c->pos, len);
    c->pos += len;
}

static void png_error_cb(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warning_cb(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* recoverable (e.g. a bad ancillary chunk CRC): the image is still decoded */
}

static gcam_status png_decode_body(png_structp png, png_infop info, png_ctx *c, const char *name, gc_image *out,
                                   const gc_decode_opts *o, gc_err *err) {
    png_set_read_fn(png, c, png_read_cb);
    /* size checks are ours (clearer message); libpng's own caps would trip first otherwise */
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_set_chunk_malloc_max(png, 16u << 20);
    png_set_chunk_cache_max(png, 1000);
    /* compressed text and colour profiles are not needed: skip them rather than inflate them */
    static const png_byte skip[] = "iCCP\0iTXt\0sPLT\0tEXt\0zTXt\0eXIf\0";
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, skip, (int)(sizeof skip / 5));

    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    gcam_status cs = check_size(name, w, h, o, err);
    if (cs != GCAM_OK) return cs;

    int has_trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
    int alpha = (ctype & PNG_COLOR_MASK_ALPHA) || has_trns;
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (has_trns) png_set_tRNS_to_alpha(png);
    if (depth == 16) png_set_scale_16(png); /* round(v * 255 / 65535) */
    if (!(ctype & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(png);
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, info);

    size_t chans = alpha ? 4 : 3, rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)w * chans || png_get_bit_depth(png, info) != 8)
        return gc_fail(err, GCAM_E_INTERNAL, "%s: unexpected PNG row layout after transforms", name);

    c->px = gc_malloc2((size_t)w * h, 3);
    c->rows = gc_malloc2(h, sizeof *c->rows);
    if (!c->px || !c->rows) return gc_fail(err, GCAM_E_NOMEM, "%s: out of memory for %ux%u pixels", name, w, h);
    const uint8_t *bg = bg_of(o);
    if (!alpha) {
        for (png_uint_32 y = 0; y < h; y++) c->rows[y] = c->px + (size_t)y * w * 3;
        png_read_image(png, c->rows);
    } else if (interlace != PNG_INTERLACE_NONE) {
        /* Adam7 passes revisit every row: keep the whole RGBA image */
        c->tmp = gc_malloc2((size_t)w * h, 4);
        if (!c->tmp) return gc_fail(err, GCAM_E_NOMEM, "%s: out of memory for %ux%u pixels", name, w, h);
        for (png_uint_32 y = 0; y < h; y++) c->rows[y] = c->tmp + (size_t)y * w * 4;
        png_read_image(png, c->rows);
        for (png_uint_32 y = 0; y < h; y++) composite_row(c->px + (size_t)y * w * 3, c->rows[y], w, bg);
    } else {
        c->tmp = gc_malloc2(w, 4);
        if (!c->tmp) return gc_fail(err, GCAM_E_NOMEM, "%s: out of memory", name);
        for (png_uint_32 y = 0; y < h; y++) {
            png_read_row(png, c->tmp, NULL);
            composite_row(c->px + (size_t)y * w * 3, c->tmp, w, bg);
        }
    }
    png_read_end(png, NULL);
    out->w = w;
    out->h = h;
    out->px = c->px;
    c->px = NULL;
    return GCAM_OK;
}

static gcam_status png_decode(const uint8_t *data, size_t size, const char *name, gc_image *out,
                              const gc_decode_opts *o, gc_err *err) {
    /* on the heap: what the body changes must not be a local of the function that calls setjmp */
    png_ctx *c = calloc(1, sizeof *c);
    if (!c) return gc_fail(err, GCAM_E_NOMEM, "%s: out of memory", name);
    c->data = data;
    c->size = size;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, png_error_cb, png_warning_cb);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        free(c);
        return gc_fail(err, GCAM_E_NOMEM, "%s: out of memory", name);
    }
    gcam_status st;
    if (setjmp(png_jmpbuf(png))) {
        st = gc_fail(err, GCAM_E_FORMAT, "%s: invalid PNG: %s", name, c->msg);
    } else {
        st = png_decode_body(png, info, c, name, out, o, err);
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(c->px);
    free(c->tmp);
    free(c->rows);
    free(c);
    return st;
}

/* ---- JPEG ------------------------------------------------------------------------------------ */

typedef struct jpeg_ctx {
    struct jpeg_error_mgr mgr; /* first: libjpeg passes &mgr, we cast back */
    struct jpeg_progress_mgr progress;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX + 64];
    uint8_t *px, *row;
    struct jpeg_decompress_struct ci;
} jpeg_ctx;

static void jpeg_error_exit_cb(j_common_ptr ci) {
    jpeg_ctx *c = (jpeg_ctx *)ci->err;
    (*ci->err->format_message)(ci, c->msg);
    longjmp(c->jb, 1);
}

static void jpeg_emit_cb(j_common_ptr ci, int level) {
    jpeg_ctx *c = (jpeg_ctx *)ci->err;
    /* The memory source pads a file that ends early with a fake EOI and only warns: that is a
     * truncated file, an error (as Pillow says "image file is truncated"). Other warnings (corrupt
     * entropy data libjpeg recovers from) are accepted silently, as Pillow does. */
    if (level < 0 && ci->err->msg_code == JWRN_JPEG_EOF) {
        snprintf(c->msg, sizeof c->msg, "file is truncated");
        longjmp(c->jb, 1);
    }
    if (level < 0) ci->err->num_warnings++;
}

static void jpeg_output_cb(j_common_ptr ci) { (void)ci; /* never print */ }

static void jpeg_progress_cb(j_common_ptr ci) {
    jpeg_ctx *c = (jpeg_ctx *)ci->err;
    if (c->ci.input_scan_number > GC_MAX_JPEG_SCANS) {
        snprintf(c->msg, sizeof c->msg, "more than %d scans", GC_MAX_JPEG_SCANS);
        longjmp(c->jb, 1);
    }
}

static inline uint32_t rd16(const uint8_t *p, int le) { return le ? p[0] | (uint32_t)p[1] << 8 : (uint32_t)p[0] << 8 | p[1]; }
static inline uint32_t rd32(const uint8_t *p, int le) {
    return le ? rd16(p, 1) | rd16(p + 2, 1) << 16 : rd16(p, 0) << 16 | rd16(p + 2, 0);
}

/* EXIF orientation (tag 0x0112 of IFD0) from an APP1 payload; 0 when absent or malformed. Every
 * offset is bounds-checked against the segment. */
static int exif_orientation(const uint8_t *d, size_t n) {
    static const uint8_t hdr[6] = {'E', 'x', 'i', 'f', 0, 0};
    if (n < 6 + 8 || memcmp(d, hdr, 6) != 0) return 0;
    const uint8_t *t = d + 6;
    size_t tn = n - 6;
    int le;
    if (t[0] == 'I' && t[1] == 'I') le = 1;
    else if (t[0] == 'M' && t[1] == 'M') le = 0;
    else return 0;
    if (rd16(t + 2, le) != 42) return 0;
    size_t ifd = rd32(t + 4, le);
    if (ifd > tn || tn - ifd < 2) return 0;
    size_t cnt = rd16(t + ifd, le);
    for (size_t i = 0; i < cnt; i++) {
        size_t e = ifd + 2 + 12 * i;
        if (e > tn || tn - e < 12) break;
        if (rd16(t + e, le) != 0x0112) continue;
        uint32_t type = rd16(t + e + 2, le), count = rd32(t + e + 4, le);
        if (count < 1) return 0;
        uint32_t v;
        if (type == 3) v = rd16(t + e + 8, le);                /* SHORT */
        else if (type == 4 || type == 9) v = rd32(t + e + 8, le); /* LONG, SLONG */
        else return 0;
        return v >= 1 && v <= 8 ? (int)v : 0;
    }
    return 0;
}

/* Pillow's CMYK -> RGB: nk = 255 - K, R = nk - round-ish(C * nk / 255). */
static inline uint8_t cmyk_chan(unsigned c, unsigned nk) {
    unsigned t = c * nk + 128;
    unsigned m = ((t >> 8) + t) >> 8;
    return (uint8_t)(nk - m); /* m <= nk always */
}

static gcam_status jpeg_decode_body(struct jpeg_decompress_struct *ci, jpeg_ctx *c, const uint8_t *data, size_t size,
                                    const char *name, gc_image *out, int *orient, const gc_decode_opts *o,
                                    gc_err *err) {
    jpeg_mem_src(ci, data, (unsigned long)size);
    jpeg_save_markers(ci, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(ci, TRUE);
    gcam_status cs = check_size(name, ci->image_width, ci->image_height, o, err);
    if (cs != GCAM_OK) return cs;

    *orient = 0;
    for (jpeg_saved_marker_ptr m = ci->marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && (*orient = exif_orientation(m->data, m->data_length)) != 0) break;

    int cmyk = 0, grey = 0;
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE: ci->out_color_space = JCS_GRAYSCALE; grey = 1; break;
    case JCS_CMYK:
    case JCS_YCCK: ci->out_color_space = JCS_CMYK; cmyk = 1; break;
    default: ci->out_color_space = JCS_RGB; break;
    }
    ci->dct_method = JDCT_ISLOW;
    ci->do_fancy_upsampling = TRUE;
    ci->progress = &c->progress;
    jpeg_start_decompress(ci);

    size_t w = ci->output_width, h = ci->output_height, nc = (size_t)ci->output_components;
    if (w != ci->image_width || h != ci->image_height || nc != (cmyk ? 4u : grey ? 1u : 3u))
        return gc_fail(err, GCAM_E_INTERNAL, "%s: unexpected JPEG output layout", name);
    c->px = gc_malloc2(w * h, 3);
    c->row = gc_malloc2(w, nc);
    if (!c->px || !c->row) return gc_fail(err, GCAM_E_NOMEM, "%s: out of memory for %zux%zu pixels", name, w, h);
    while (ci->output_scanline < h) {
        size_t y = ci->output_scanline;
        uint8_t *dst = c->px + y * w * 3;
        JSAMPROW rp = nc == 3 ? dst : c->row;
        if (jpeg_read_scanlines(ci, &rp, 1) != 1)
            return gc_fail(err, GCAM_E_FORMAT, "%s: invalid JPEG: no data for row %zu", name, y);
        if (grey) {
            for (size_t x = 0; x < w; x++) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = c->row[x];
        } else if (cmyk) {
            /* libjpeg returns Adobe (inverted) CMYK, also for YCCK; Pillow inverts it back */
            for (size_t x = 0; x < w; x++) {
                const uint8_t *s = c->row + 4 * x;
                unsigned nk = s[3]; /* 255 - (255 - s[3]) */
                dst[3 * x + 0] = cmyk_chan(255u - s[0], nk);
                dst[3 * x + 1] = cmyk_chan(255u - s[1], nk);
                dst[3 * x + 2] = cmyk_chan(255u - s[2], nk);
            }
        }
    }
    jpeg_finish_decompress(ci);
    out->w = (int64_t)w;
    out->h = (int64_t)h;
    out->px = c->px;
    c->px = NULL;
    return GCAM_OK;
}

static gcam_status jpeg_decode(const uint8_t *data, size_t size, const char *name, gc_image *out, int *orient,
                               const gc_decode_opts *o, gc_err *err) {
    /* on the heap: what the body changes must not be a local of the function that calls setjmp */
    jpeg_ctx *c = calloc(1, sizeof *c);
    if (!c) return gc_fail(err, GCAM_E_NOMEM, "%s: out of memory", name);
    struct jpeg_decompress_struct *ci = &c->ci;
    ci->err = jpeg_std_error(&c->mgr);
    c->mgr.error_exit = jpeg_error_exit_cb;
    c->mgr.emit_message = jpeg_emit_cb;
    c->mgr.output_message = jpeg_output_cb;
    c->progress.progress_monitor = jpeg_progress_cb;
    gcam_status st;
    if (setjmp(c->jb)) {
        st = gc_fail(err, GCAM_E_FORMAT, "%s: invalid JPEG: %s", name, c->msg);
    } else {
        jpeg_create_decompress(ci);
        st = jpeg_decode_body(ci, c, data, size, name, out, orient, o, err);
    }
    jpeg_destroy_decompress(ci);
    free(c->px);
    free(c->row);
    free(c);
    return st;
}

/* ---- EXIF orientation -------------------------------------------------------------------------- */

/* Output (x, y) takes source (sx, sy), as Pillow's ImageOps.exif_transpose does for values 2..8. */
static gcam_status apply_orientation(gc_image *img, int orient, const char *name, gc_err *err) {
    if (orient <= 1) return GCAM_OK;
    int64_t W = img->w, H = img->h;
    int swap = orient >= 5;
    int64_t ow = swap ? H : W, oh = swap ? W : H;
    uint8_t *dst = gc_malloc2((size_t)W * (size_t)H, 3);
    if (!dst) return gc_fail(err, GCAM_E_NOMEM, "%s: out of memory", name);
    for (int64_t y = 0; y < oh; y++) {
        for (int64_t x = 0; x < ow; x++) {
            int64_t sx, sy;
            switch (orient) {
            case 2: sx = W - 1 - x; sy = y; break;
            case 3: sx = W - 1 - x; sy = H - 1 - y; break;
            case 4: sx = x; sy = H - 1 - y; break;
            case 5: sx = y; sy = x; break;
            case 6: sx = y; sy = H - 1 - x; break;
            case 7: sx = W - 1 - y; sy = H - 1 - x; break;
            default: sx = W - 1 - y; sy = x; break; /* 8 */
            }
            memcpy(dst + ((size_t)y * (size_t)ow + (size_t)x) * 3, img->px + ((size_t)sy * (size_t)W + (size_t)sx) * 3,
                   3);
        }
    }
    free(img->px);
    img->px = dst;
    img->w = ow;
    img->h = oh;
    return GCAM_OK;
}

/* ---- entry points ------------------------------------------------------------------------------ */

static int is_png(const uint8_t *d, size_t n) { return n >= 8 && memcmp(d, PNG_MAGIC, 8) == 0; }
static int is_jpeg(const uint8_t *d, size_t n) { return n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff; }

gcam_status gc_image_load_memory(const void *data, size_t size, const char *name, gc_image *out,
                                 const gc_decode_opts *o, gc_err *err) {
    if (!name) name = "<memory>";
    if (!out) return gc_fail(err, GCAM_E_ARG, "%s: no output image", name);
    out->w = out->h = 0;
    out->px = NULL;
    if (!data && size) return gc_fail(err, GCAM_E_ARG, "%s: no data", name);
    const uint8_t *d = data;
    gc_image img = {0};
    int orient = 0;
    gcam_status st;
    if (is_png(d, size)) {
        st = png_decode(d, size, name, &img, o, err);
    } else if (is_jpeg(d, size)) {
        st = jpeg_decode(d, size, name, &img, &orient, o, err);
        if (st == GCAM_OK && !(o && o->ignore_exif)) st = apply_orientation(&img, orient, name, err);
    } else if (size == 0) {
        return gc_fail(err, GCAM_E_FORMAT, "%s: empty file", name);
    } else {
        return gc_fail(err, GCAM_E_FORMAT, "%s: not a PNG or JPEG file (unknown magic bytes)", name);
    }
    if (st != GCAM_OK) {
        free(img.px);
        return st;
    }
    *out = img;
    return GCAM_OK;
}

static gcam_status read_file(const char *path, uint8_t **data, size_t *size, gc_err *err) {
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return gc_fail(err, GCAM_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return gc_fail(err, GCAM_E_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > GC_MAX_FILE_BYTES) {
        fclose(f);
        return gc_fail(err, GCAM_E_LIMIT, "%s: file of %lld bytes is larger than the %zu bytes accepted", path,
                       (long long)sb.st_size, GC_MAX_FILE_BYTES);
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        fclose(f);
        return gc_fail(err, GCAM_E_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = fread(b, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        free(b);
        return gc_fail(err, GCAM_E_IO, "%s: read error", path);
    }
    *data = b;
    *size = n;
    return GCAM_OK;
}

gcam_status gc_image_load(const char *path, gc_image *out, const gc_decode_opts *o, gc_err *err) {
    if (out) {
        out->w = out->h = 0;
        out->px = NULL;
    }
    if (!path) return gc_fail(err, GCAM_E_ARG, "gc_image_load: no path");
    uint8_t *data;
    size_t size;
    gcam_status st = read_file(path, &data, &size, err);
    if (st != GCAM_OK) return st;
    st = gc_image_load_memory(data, size, path, out, o, err);
    free(data);
    return st;
}

int gc_image_sniff(const char *path) {
    uint8_t b[8];
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f) return 0;
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    return is_png(b, n) || is_jpeg(b, n);
}

void gc_image_free(gc_image *img) {
    if (!img) return;
    free(img->px);
    img->px = NULL;
    img->w = img->h = 0;
}

/* Tests for src/image: decoding every PNG/JPEG kind against Pillow (pixel-exact), malformed files
 * (truncated, garbage, decompression bombs, random corruption), PNG writing (round trip, read
 * back by Pillow, failures leave nothing behind), preprocessing against torchvision (bit-exact
 * floats and the exact uint8 pixels), geometry and heat maps back onto the photo, colour maps
 * against matplotlib, overlays, paper-style pixel maps, boxes and the ImageNet labels.
 * Fixtures are written at test time by tests/image_fixtures.py with the system python.
 * Usage: test_image PYTHON FIXTURE_SCRIPT OUTDIR
 *        test_image --write-ycck CMYK.npy OUT.jpg   (used by the fixture script) */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>

#include "image/image.h"
#include "image/npy.h"

static int n_checks, n_fail;
static char g_dir[512];
static const char *g_python, *g_script;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        n_checks++;                                                                                \
        if (!(cond)) {                                                                             \
            n_fail++;                                                                              \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

static const char *fx(const char *name) {
    static char buf[8][1024];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

static void spit(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(b, 1, n, f);
    fclose(f);
}

/* A uint8 .npy (h, w, 3) (or any (h, w, c)) as bytes; dims in d. */
static uint8_t *load_u8(const char *name, int64_t *d, int *ndim) {
    gc_tensor t = {0};
    gc_err err = {0};
    if (gc_npy_read(fx(name), &t, &err) != GCAM_OK) {
        CHECK(0, "cannot read %s: %s", name, err.msg);
        return NULL;
    }
    int64_t n = gc_shape_numel(&t.shape);
    uint8_t *b = malloc((size_t)n + 1);
    const int64_t *v = t.data;
    for (int64_t i = 0; i < n; i++) b[i] = (uint8_t)v[i];
    for (int i = 0; i < t.shape.ndim; i++) d[i] = t.shape.d[i];
    *ndim = t.shape.ndim;
    free(t.data);
    return b;
}

static float *load_f32(const char *name, int64_t *n) {
    gc_tensor t = {0};
    gc_err err = {0};
    if (gc_npy_read(fx(name), &t, &err) != GCAM_OK || t.dtype != GC_F32) {
        CHECK(0, "cannot read %s: %s", name, err.msg);
        free(t.data);
        return NULL;
    }
    *n = gc_shape_numel(&t.shape);
    return t.data;
}

/* Splits a tab-separated line in place. */
static int split_tabs(char *line, char **f, int max) {
    int n = 0;
    line[strcspn(line, "\r\n")] = 0;
    while (n < max) {
        f[n++] = line;
        char *t = strchr(line, '\t');
        if (!t) break;
        *t = 0;
        line = t + 1;
    }
    return n;
}

static gcam_status status_from_name(const char *s) {
    static const char *names[] = {"GCAM_OK", "GCAM_E_ARG", "GCAM_E_IO", "GCAM_E_FORMAT", "GCAM_E_UNSUPPORTED",
                                  "GCAM_E_SHAPE", "GCAM_E_NOMEM", "GCAM_E_LIMIT"};
    for (int i = 0; i < (int)GC_ARRAY_LEN(names); i++)
        if (!strcmp(s, names[i])) return (gcam_status)i;
    return GCAM_E_INTERNAL;
}

/* ---- YCCK writer (Pillow cannot write YCCK) ---------------------------------------------------- */

static int write_ycck(const char *npy, const char *out) {
    int64_t d[4];
    int nd;
    uint8_t *px = load_u8(npy, d, &nd);
    if (!px || nd != 3 || d[2] != 4) return 1;
    FILE *f = fopen(out, "wb");
    if (!f) return 1;
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)d[1];
    ci.image_height = (JDIMENSION)d[0];
    ci.input_components = 4;
    ci.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&ci);
    jpeg_set_colorspace(&ci, JCS_YCCK);
    jpeg_set_quality(&ci, 92, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW r = px + (size_t)ci.next_scanline * (size_t)d[1] * 4;
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    fclose(f);
    free(px);
    return 0;
}

/* ---- decoding ----------------------------------------------------------------------------------- */

static int exact_png, exact_jpg, total_png, total_jpg;

static void test_decode_fixtures(void) {
    FILE *f = fopen(fx("decode.tsv"), "r");
    CHECK(f != NULL, "no decode.tsv");
    if (!f) return;
    char line[2048];
    int cases = 0;
    while (fgets(line, sizeof line, f)) {
        char *c[5];
        if (split_tabs(line, c, 5) != 5) continue;
        cases++;
        int bg[3];
        sscanf(c[3], "%d,%d,%d", &bg[0], &bg[1], &bg[2]);
        gc_decode_opts o = {.max_pixels = 0, .background = {(uint8_t)bg[0], (uint8_t)bg[1], (uint8_t)bg[2]},
                            .ignore_exif = atoi(c[4])};
        int64_t d[4];
        int nd;
        uint8_t *truth = load_u8(c[2], d, &nd);
        if (!truth) continue;
        gc_image img;
        gc_err err = {0};
        gcam_status st = gc_image_load(fx(c[1]), &img, &o, &err);
        CHECK(st == GCAM_OK, "%s: decode failed: %s", c[0], err.msg);
        int is_jpg = strncmp(c[0], "jpg", 3) == 0;
        if (is_jpg) total_jpg++;
        else total_png++;
        if (st == GCAM_OK) {
            CHECK(img.w == d[1] && img.h == d[0], "%s: size %lldx%lld, Pillow %lldx%lld", c[0], (long long)img.w,
                  (long long)img.h, (long long)d[1], (long long)d[0]);
            if (img.w == d[1] && img.h == d[0]) {
                size_t n = (size_t)img.w * (size_t)img.h * 3, ndiff = 0;
                int maxd = 0;
                for (size_t i = 0; i < n; i++) {
                    int df = abs((int)img.px[i] - (int)truth[i]);
                    ndiff += df != 0;
                    maxd = df > maxd ? df : maxd;
                }
                CHECK(ndiff == 0, "%s: %zu of %zu samples differ from the truth (max %d)", c[0], ndiff, n, maxd);
                if (!ndiff && is_jpg) exact_jpg++;
                if (!ndiff && !is_jpg) exact_png++;
            }
            /* the same through memory */
            size_t fn;
            uint8_t *buf = slurp(fx(c[1]), &fn);
            gc_image m;
            gc_err e2 = {0};
            st = gc_image_load_memory(buf, fn, c[0], &m, &o, &e2);
            CHECK(st == GCAM_OK && m.w == img.w && m.h == img.h &&
                      !memcmp(m.px, img.px, (size_t)img.w * (size_t)img.h * 3),
                  "%s: memory decode differs: %s", c[0], e2.msg);
            gc_image_free(&m);
            free(buf);
            CHECK(gc_image_sniff(fx(c[1])) == 1, "%s: sniff", c[0]);
        }
        gc_image_free(&img);
        free(truth);
    }
    fclose(f);
    CHECK(cases >= 60, "only %d decode cases", cases);
    printf("decode: PNG %d/%d exact, JPEG %d/%d exact\n", exact_png, total_png, exact_jpg, total_jpg);
}

static void test_bad_fixtures(void) {
    FILE *f = fopen(fx("bad.tsv"), "r");
    CHECK(f != NULL, "no bad.tsv");
    if (!f) return;
    char line[2048];
    while (fgets(line, sizeof line, f)) {
        char *c[4];
        if (split_tabs(line, c, 4) != 4) continue;
        gc_image img = {.w = 7, .h = 7, .px = (uint8_t *)1};
        gc_err err = {0};
        const char *p = fx(c[1]);
        gcam_status st = gc_image_load(p, &img, NULL, &err);
        CHECK(st == status_from_name(c[2]), "%s: status %d (%s), expected %s", c[0], (int)st, err.msg, c[2]);
        CHECK(!strncmp(err.msg, p, strlen(p)), "%s: message does not start with the file name: %s", c[0], err.msg);
        CHECK(strstr(err.msg, c[3]) != NULL, "%s: message '%s' lacks '%s'", c[0], err.msg, c[3]);
        CHECK(img.px == NULL && img.w == 0 && img.h == 0, "%s: output not cleared on failure", c[0]);
        if (st == GCAM_OK) gc_image_free(&img);
    }
    fclose(f);
}

/* Every proper prefix of a valid file fails cleanly (no crash, an error naming the file). */
static void test_truncations(const char *name, size_t step) {
    size_t n;
    uint8_t *b = slurp(fx(name), &n);
    CHECK(b != NULL, "cannot read %s", name);
    if (!b) return;
    int bad = 0;
    for (size_t len = 0; len < n; len += (len < 64 || len + 64 > n) ? 1 : step) {
        gc_image img;
        gc_err err = {0};
        gcam_status st = gc_image_load_memory(b, len, name, &img, NULL, &err);
        if (st == GCAM_OK || err.msg[0] == 0 || strncmp(err.msg, name, strlen(name)) != 0) {
            if (bad++ < 3) printf("  %s cut at %zu: status %d, '%s'\n", name, len, (int)st, err.msg);
        }
        gc_image_free(&img);
    }
    CHECK(bad == 0, "%s: %d truncated prefixes decoded or failed without a proper message", name, bad);
    free(b);
}

static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

/* Recomputes every chunk CRC so that corruption reaches zlib, the filters and the transforms. */
static void png_fix_crcs(uint8_t *b, size_t n) {
    size_t pos = 8;
    while (pos + 12 <= n) {
        size_t len = (size_t)b[pos] << 24 | (size_t)b[pos + 1] << 16 | (size_t)b[pos + 2] << 8 | b[pos + 3];
        if (len > n - pos - 12) break;
        uint32_t c = crc32_png(b + pos + 4, len + 4);
        uint8_t *q = b + pos + 8 + len;
        q[0] = (uint8_t)(c >> 24), q[1] = (uint8_t)(c >> 16), q[2] = (uint8_t)(c >> 8), q[3] = (uint8_t)c;
        pos += len + 12;
    }
}

/* Random corruption: decoding must never crash; a success has the declared size. */
static void test_fuzz(const char *name, int rounds) {
    size_t n;
    uint8_t *b = slurp(fx(name), &n);
    CHECK(b != NULL, "cannot read %s", name);
    if (!b) return;
    uint8_t *m = malloc(n);
    uint64_t s = 0x9E3779B97F4A7C15ull;
    int ok = 0, failed = 0, badmsg = 0;
    for (int r = 0; r < rounds; r++) {
        memcpy(m, b, n);
        int flips = 1 + r % 8;
        for (int k = 0; k < flips; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            size_t pos = 8 + (size_t)(s % (n - 8)); /* keep the magic: reach the decoders */
            m[pos] = (uint8_t)(s >> 32);
        }
        if (m[0] == 0x89 && (r & 1)) png_fix_crcs(m, n);
        gc_image img;
        gc_err err = {0};
        gcam_status st = gc_image_load_memory(m, n, name, &img, NULL, &err);
        if (st == GCAM_OK) {
            ok++;
            badmsg += img.w < 1 || img.h < 1 || !img.px;
        } else {
            failed++;
            badmsg += strncmp(err.msg, name, strlen(name)) != 0;
        }
        gc_image_free(&img);
    }
    CHECK(badmsg == 0, "%s fuzz: %d results without a proper image or message", name, badmsg);
    printf("fuzz %s: %d decoded, %d rejected\n", name, ok, failed);
    free(m);
    free(b);
}

static void test_limits(void) {
    gc_image img;
    gc_err err = {0};
    /* png_rgb is 37x23 = 851 pixels */
    gc_decode_opts o = {.max_pixels = 850, .background = {255, 255, 255}};
    gcam_status st = gc_image_load(fx("png_rgb.png"), &img, &o, &err);
    CHECK(st == GCAM_E_LIMIT && strstr(err.msg, "850"), "max_pixels 850: %d %s", (int)st, err.msg);
    o.max_pixels = 851;
    gc_err_clear(&err);
    st = gc_image_load(fx("png_rgb.png"), &img, &o, &err);
    CHECK(st == GCAM_OK, "max_pixels 851: %s", err.msg);
    gc_image_free(&img);
    o.max_pixels = 61 * 43 - 1;
    gc_err_clear(&err);
    st = gc_image_load(fx("jpg_420.jpg"), &img, &o, &err);
    CHECK(st == GCAM_E_LIMIT, "JPEG max_pixels: %d %s", (int)st, err.msg);
    gc_err_clear(&err);
    st = gc_image_load(fx("does-not-exist.png"), &img, NULL, &err);
    CHECK(st == GCAM_E_IO && strstr(err.msg, "does-not-exist.png"), "missing file: %d %s", (int)st, err.msg);
    gc_err_clear(&err);
    st = gc_image_load(g_dir, &img, NULL, &err);
    CHECK(st == GCAM_E_IO, "a directory: %d %s", (int)st, err.msg);
    gc_err_clear(&err);
    st = gc_image_load_memory("abc", 3, NULL, &img, NULL, &err);
    CHECK(st == GCAM_E_FORMAT && strstr(err.msg, "<memory>"), "memory garbage: %d %s", (int)st, err.msg);
    /* errors with a NULL err record must not crash */
    st = gc_image_load_memory("abc", 3, "x", &img, NULL, NULL);
    CHECK(st == GCAM_E_FORMAT, "NULL err");
    CHECK(gc_image_sniff(fx("garbage.png")) == 0 && gc_image_sniff(fx("nope")) == 0, "sniff garbage");
    /* bomb under default options: refused before any allocation (LIMIT, not NOMEM) */
    gc_err_clear(&err);
    st = gc_image_load(fx("bomb.png"), &img, NULL, &err);
    CHECK(st == GCAM_E_LIMIT, "bomb: %d %s", (int)st, err.msg);
}

/* ---- PNG writing -------------------------------------------------------------------------------- */

static int count_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strstr(e->d_name, ".tmp-") != NULL;
    closedir(d);
    return n;
}

static void test_png_write(void) {
    gc_image img = {.w = 37, .h = 23};
    img.px = malloc(37 * 23 * 3);
    for (int i = 0; i < 37 * 23 * 3; i++) img.px[i] = (uint8_t)(i * 31 + i / 7);
    gc_err err = {0};
    const char *p = fx("written.png");
    gcam_status st = gc_image_write_png(p, &img, &err);
    CHECK(st == GCAM_OK, "write: %s", err.msg);
    gc_image back;
    st = gc_image_load(p, &back, NULL, &err);
    CHECK(st == GCAM_OK && back.w == 37 && back.h == 23 && !memcmp(back.px, img.px, 37 * 23 * 3),
          "round trip through file: %s", err.msg);
    gc_image_free(&back);
    struct stat sb;
    CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0644, "written file mode %o", (unsigned)sb.st_mode & 0777);
    /* Pillow reads it back identically */
    gc_tensor t = {.dtype = GC_I64, .shape = {.ndim = 3, .d = {23, 37, 3}}};
    int64_t *v = malloc(sizeof *v * 37 * 23 * 3);
    for (int i = 0; i < 37 * 23 * 3; i++) v[i] = img.px[i];
    t.data = v;
    CHECK(gc_npy_write(fx("written.truth.npy"), &t, &err) == GCAM_OK, "npy write: %s", err.msg);
    free(v);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' '%s' --check-png '%s' '%s'", g_python, g_script, p, fx("written.truth.npy"));
    CHECK(system(cmd) == 0, "Pillow does not read the written PNG identically");

    /* memory encoding */
    uint8_t *data = NULL;
    size_t size = 0;
    st = gc_image_encode_png(&img, &data, &size, &err);
    CHECK(st == GCAM_OK && size > 8 && !memcmp(data, "\x89PNG", 4), "encode to memory: %s", err.msg);
    st = gc_image_load_memory(data, size, "mem.png", &back, NULL, &err);
    CHECK(st == GCAM_OK && back.w == 37 && !memcmp(back.px, img.px, 37 * 23 * 3), "memory round trip: %s", err.msg);
    gc_image_free(&back);
    free(data);

    /* overwriting replaces the file */
    img.px[0] ^= 0xff;
    st = gc_image_write_png(p, &img, &err);
    CHECK(st == GCAM_OK, "overwrite: %s", err.msg);
    st = gc_image_load(p, &back, NULL, &err);
    CHECK(st == GCAM_OK && back.px[0] == img.px[0], "overwrite content");
    gc_image_free(&back);

    /* failures: nothing created, an existing file untouched, no temporary left behind */
    size_t before_n;
    uint8_t *before = slurp(p, &before_n);
    gc_image empty = {.w = 0, .h = 5, .px = img.px};
    gc_err_clear(&err);
    st = gc_image_write_png(p, &empty, &err);
    CHECK(st == GCAM_E_ARG, "bad image: %d %s", (int)st, err.msg);
    size_t after_n;
    uint8_t *after = slurp(p, &after_n);
    CHECK(after && after_n == before_n && !memcmp(before, after, before_n), "existing file changed by a failed write");
    free(before);
    free(after);
    gc_err_clear(&err);
    st = gc_image_write_png(fx("no-such-dir/x.png"), &img, &err);
    CHECK(st == GCAM_E_IO && strstr(err.msg, "no-such-dir/x.png"), "missing dir: %d %s", (int)st, err.msg);
    char sub[1024];
    snprintf(sub, sizeof sub, "%s/wdir", g_dir);
    mkdir(sub, 0755);
    char target[1100];
    snprintf(target, sizeof target, "%s/adir", sub);
    mkdir(target, 0755);
    char inner[1200];
    snprintf(inner, sizeof inner, "%s/keep", target);
    spit(inner, "x", 1); /* a non-empty directory: rename over it fails */
    gc_err_clear(&err);
    st = gc_image_write_png(target, &img, &err);
    CHECK(st == GCAM_E_IO, "write over a directory: %d %s", (int)st, err.msg);
    CHECK(count_tmp_files(sub) == 0, "temporary file left behind after a failed rename");
    CHECK(count_tmp_files(g_dir) == 0, "temporary file left behind in the fixture dir");
    struct stat ds;
    CHECK(stat(inner, &ds) == 0, "directory content disturbed");
    gc_err_clear(&err);
    CHECK(gc_image_write_png(NULL, &img, &err) == GCAM_E_ARG, "NULL path");
    gc_err_clear(&err);
    CHECK(gc_image_encode_png(NULL, &data, &size, &err) != GCAM_OK, "NULL image");
    free(img.px);
}

/* ---- preprocessing ------------------------------------------------------------------------------ */

static void test_preprocess_fixtures(void) {
    FILE *f = fopen(fx("pre.tsv"), "r");
    CHECK(f != NULL, "no pre.tsv");
    if (!f) return;
    char line[2048];
    int cases = 0, exact_seen = 0, exact_tensor = 0, ntensor = 0;
    double worst = 0;
    while (fgets(line, sizeof line, f)) {
        char *c[8];
        if (split_tabs(line, c, 8) != 8) continue;
        cases++;
        int64_t d[4], ds[4];
        int nd, nds;
        uint8_t *src = load_u8(c[5], d, &nd);
        uint8_t *want = load_u8(c[6], ds, &nds);
        if (!src || !want) {
            free(src);
            free(want);
            continue;
        }
        gc_image img = {.w = d[1], .h = d[0], .px = src};
        gc_preprocess p;
        gc_preprocess_imagenet(&p);
        p.width = atoll(c[2]);
        p.height = atoll(c[3]);
        p.resize_shorter = atoll(c[4]);
        p.mode = !strcmp(c[1], "crop") ? GC_RESIZE_SHORTER_SIDE_CROP
                 : !strcmp(c[1], "stretch") ? GC_RESIZE_STRETCH
                                            : GC_RESIZE_LETTERBOX;
        size_t n = (size_t)p.width * (size_t)p.height * 3;
        float *out = malloc(n * sizeof *out);
        gc_image seen;
        gc_geometry g;
        gc_err err = {0};
        gcam_status st = gc_preprocess_image(out, &seen, &g, &img, &p, &err);
        CHECK(st == GCAM_OK, "%s: %s", c[0], err.msg);
        if (st == GCAM_OK) {
            CHECK(seen.w == ds[1] && seen.h == ds[0], "%s: seen size", c[0]);
            size_t nd_ = 0;
            int maxd = 0;
            for (size_t i = 0; i < n; i++) {
                int df = abs((int)seen.px[i] - (int)want[i]);
                nd_ += df != 0;
                maxd = df > maxd ? df : maxd;
            }
            CHECK(nd_ == 0, "%s: %zu of %zu pixels differ from Pillow/torchvision (max %d)", c[0], nd_, n, maxd);
            exact_seen += nd_ == 0;
            if (strcmp(c[7], "-")) {
                int64_t nt;
                float *tv = load_f32(c[7], &nt);
                if (tv && (size_t)nt == n) {
                    ntensor++;
                    double md = 0;
                    size_t neq = 0;
                    for (size_t i = 0; i < n; i++) {
                        double df = fabs((double)out[i] - (double)tv[i]);
                        md = df > md ? df : md;
                        neq += out[i] == tv[i];
                    }
                    worst = md > worst ? md : worst;
                    CHECK(md <= 1e-6, "%s: tensor differs from torchvision by %g", c[0], md);
                    exact_tensor += neq == n;
                }
                free(tv);
            }
            if (p.mode == GC_RESIZE_LETTERBOX) {
                /* padding is exactly 0 after normalisation: the corner pixel of a padded layout */
                int padded = 0;
                for (int k = 0; k < 3; k++) padded |= out[(size_t)k * (size_t)(p.width * p.height)] == 0.0f;
                CHECK(padded || (g.x0 == 0 && g.y0 == 0), "%s: letterbox padding not zero", c[0]);
            }
            CHECK(g.orig_w == img.w && g.orig_h == img.h && g.sx > 0 && g.sy > 0, "%s: geometry", c[0]);
        }
        gc_image_free(&seen);
        free(out);
        free(src);
        free(want);
    }
    fclose(f);
    CHECK(cases >= 20, "only %d preprocessing cases", cases);
    printf("preprocess: %d/%d seen images exact, %d/%d tensors bit-identical to torchvision (max diff %g)\n",
           exact_seen, cases, exact_tensor, ntensor, worst);
}

static void test_preprocess_layouts(void) {
    gc_image img = {.w = 50, .h = 31};
    img.px = malloc(50 * 31 * 3);
    for (int i = 0; i < 50 * 31 * 3; i++) img.px[i] = (uint8_t)(i * 13 + i / 50);
    gc_preprocess p;
    gc_preprocess_imagenet(&p);
    p.width = 20;
    p.height = 16;
    p.resize_shorter = 24;
    const size_t hw = 20 * 16, n = hw * 3;
    float *chw = malloc(n * 4), *o = malloc(n * 4);
    gc_err err = {0};
    gc_image seen;
    gc_geometry g;
    CHECK(gc_preprocess_image(chw, &seen, &g, &img, &p, &err) == GCAM_OK, "layout base: %s", err.msg);
    for (int variant = 1; variant < 4; variant++) {
        p.bgr = variant & 1;
        p.nhwc = (variant >> 1) & 1;
        CHECK(gc_preprocess_image(o, NULL, NULL, &img, &p, &err) == GCAM_OK, "variant %d: %s", variant, err.msg);
        int ok = 1;
        for (size_t i = 0; i < hw; i++)
            for (size_t c = 0; c < 3; c++) {
                size_t oc = p.bgr ? 2 - c : c;
                ok &= o[p.nhwc ? 3 * i + oc : oc * hw + i] == chw[c * hw + i];
            }
        CHECK(ok, "bgr=%d nhwc=%d is not a permutation of the CHW RGB output", p.bgr, p.nhwc);
    }
    /* scale 255, mean 0, std 1: exactly the pixel values */
    p.bgr = p.nhwc = 0;
    p.scale = 255.0f;
    for (int c = 0; c < 3; c++) p.mean[c] = 0, p.std[c] = 1;
    CHECK(gc_preprocess_image(o, NULL, NULL, &img, &p, &err) == GCAM_OK, "scale 255: %s", err.msg);
    int ok = 1;
    for (size_t i = 0; i < hw; i++)
        for (size_t c = 0; c < 3; c++) ok &= o[c * hw + i] == (float)seen.px[3 * i + c];
    CHECK(ok, "scale 255 does not give the pixel values");
    /* raw: 0..1, stretch */
    gc_preprocess_raw(&p, 50, 31);
    gc_image s2;
    float *o2 = malloc(50 * 31 * 3 * 4);
    CHECK(gc_preprocess_image(o2, &s2, &g, &img, &p, &err) == GCAM_OK, "raw: %s", err.msg);
    ok = s2.w == 50 && s2.h == 31 && !memcmp(s2.px, img.px, 50 * 31 * 3);
    for (size_t i = 0; ok && i < 50 * 31; i++)
        for (size_t c = 0; c < 3; c++) ok &= o2[c * 50 * 31 + i] == (float)img.px[3 * i + c] / 255.0f;
    CHECK(ok, "raw preprocessing of an image of the input size is not pixel/255");
    CHECK(g.x0 == 0 && g.y0 == 0 && g.sx == 1 && g.sy == 1, "raw identity geometry");
    gc_image_free(&s2);
    free(o2);
    /* bad parameters */
    gc_preprocess_imagenet(&p);
    p.std[1] = 0;
    gc_err_clear(&err);
    CHECK(gc_preprocess_image(o, NULL, NULL, &img, &p, &err) == GCAM_E_ARG, "std 0 accepted");
    gc_preprocess_imagenet(&p);
    p.width = 0;
    gc_err_clear(&err);
    CHECK(gc_preprocess_image(o, NULL, NULL, &img, &p, &err) == GCAM_E_ARG, "width 0 accepted");
    gc_preprocess_imagenet(&p);
    p.mode = (gc_resize_mode)7;
    gc_err_clear(&err);
    CHECK(gc_preprocess_image(o, NULL, NULL, &img, &p, &err) == GCAM_E_ARG, "bad mode accepted");
    gc_preprocess_imagenet(&p);
    p.resize_shorter = 0;
    gc_err_clear(&err);
    CHECK(gc_preprocess_image(o, NULL, NULL, &img, &p, &err) == GCAM_E_ARG, "resize_shorter 0 accepted");
    gc_image none = {0};
    gc_err_clear(&err);
    CHECK(gc_preprocess_image(o, NULL, NULL, &none, &p, &err) == GCAM_E_ARG, "empty image accepted");
    gc_image_free(&seen);
    free(chw);
    free(o);
    free(img.px);
}

/* ---- geometry and heat maps back onto the photo --------------------------------------------------- */

static void test_geometry(void) {
    gc_image img = {.w = 300, .h = 200};
    img.px = calloc(300 * 200 * 3, 1);
    gc_preprocess p;
    gc_preprocess_imagenet(&p);
    float *o = malloc(224 * 224 * 3 * 4);
    gc_geometry g;
    gc_err err = {0};
    CHECK(gc_preprocess_image(o, NULL, &g, &img, &p, &err) == GCAM_OK, "geometry: %s", err.msg);
    /* 300x200 -> 384x256, crop offsets (80, 16) */
    CHECK(fabs(g.sx - 300.0 / 384) < 1e-12 && fabs(g.sy - 200.0 / 256) < 1e-12, "scale %g %g", g.sx, g.sy);
    CHECK(fabs(g.x0 - 62.5) < 1e-9 && fabs(g.y0 - 12.5) < 1e-9, "offset %g %g", g.x0, g.y0);

    /* constant heat: 1 where the original pixel centre falls inside the crop, 0 elsewhere */
    float *heat = malloc(224 * 224 * 4), *back = malloc(300 * 200 * 4);
    for (int i = 0; i < 224 * 224; i++) heat[i] = 1.0f;
    CHECK(gc_heat_to_original(back, heat, 224, 224, &g, &err) == GCAM_OK, "heat_to_original: %s", err.msg);
    int ok = 1;
    for (int y = 0; y < 200; y++)
        for (int x = 0; x < 300; x++) {
            double u = (x + 0.5 - g.x0) / g.sx, v = (y + 0.5 - g.y0) / g.sy;
            int in = u >= 0 && u < 224 && v >= 0 && v < 224;
            ok &= back[y * 300 + x] == (in ? 1.0f : 0.0f);
        }
    CHECK(ok, "constant heat is not 1 inside the crop and 0 outside");
    CHECK(back[0] == 0 && back[100 * 300 + 150] == 1, "crop corners");
    /* an affine heat (at input pixel centres) comes back affine in the interior */
    for (int y = 0; y < 224; y++)
        for (int x = 0; x < 224; x++) heat[y * 224 + x] = 0.01f * (float)x + 0.02f * (float)y + 0.5f;
    CHECK(gc_heat_to_original(back, heat, 224, 224, &g, &err) == GCAM_OK, "affine heat: %s", err.msg);
    double md = 0;
    for (int y = 0; y < 200; y++)
        for (int x = 0; x < 300; x++) {
            double u = (x + 0.5 - g.x0) / g.sx - 0.5, v = (y + 0.5 - g.y0) / g.sy - 0.5;
            if (u < 0 || u > 223 || v < 0 || v > 223) continue;
            double want = 0.01 * u + 0.02 * v + 0.5;
            md = fmax(md, fabs(back[y * 300 + x] - want));
        }
    CHECK(md < 1e-5, "affine heat not reproduced: max error %g", md);
    /* stretch to the same size: identity */
    gc_geometry id = {.x0 = 0, .y0 = 0, .sx = 1, .sy = 1, .orig_w = 224, .orig_h = 224};
    float *same = malloc(224 * 224 * 4);
    CHECK(gc_heat_to_original(same, heat, 224, 224, &id, &err) == GCAM_OK, "identity: %s", err.msg);
    CHECK(!memcmp(same, heat, 224 * 224 * 4), "identity geometry does not copy the heat map");
    /* 2x2 -> 4x4 upsampling as cv2.resize INTER_LINEAR: [[0,1],[2,3]] */
    float h4[4] = {0, 1, 2, 3}, o16[16];
    gc_geometry up = {.sx = 2, .sy = 2, .orig_w = 4, .orig_h = 4};
    CHECK(gc_heat_to_original(o16, h4, 2, 2, &up, &err) == GCAM_OK, "2x2: %s", err.msg);
    const float want16[16] = {0, 0.25f, 0.75f, 1, 0.5f, 0.75f, 1.25f, 1.5f, 1.5f, 1.75f, 2.25f, 2.5f, 2, 2.25f, 2.75f, 3};
    ok = 1;
    for (int i = 0; i < 16; i++) ok &= fabsf(o16[i] - want16[i]) < 1e-6f;
    CHECK(ok, "2x2 -> 4x4 bilinear differs from cv2's INTER_LINEAR");
    /* letterbox: padding maps outside the photo */
    gc_preprocess_imagenet(&p);
    p.mode = GC_RESIZE_LETTERBOX;
    CHECK(gc_preprocess_image(o, NULL, &g, &img, &p, &err) == GCAM_OK, "letterbox geometry: %s", err.msg);
    /* 300x200 -> 224x149, offset (0, 37) */
    CHECK(fabs(g.sx - 300.0 / 224) < 1e-12 && fabs(g.sy - 200.0 / 149) < 1e-12 && g.x0 == 0 &&
              fabs(g.y0 + 37 * 200.0 / 149) < 1e-9,
          "letterbox geometry %g %g %g %g", g.x0, g.y0, g.sx, g.sy);
    for (int i = 0; i < 224 * 224; i++) heat[i] = 1.0f;
    CHECK(gc_heat_to_original(back, heat, 224, 224, &g, &err) == GCAM_OK, "letterbox back: %s", err.msg);
    ok = 1;
    for (int i = 0; i < 300 * 200; i++) ok &= back[i] == 1.0f;
    CHECK(ok, "letterbox: the whole photo is inside the input");
    gc_geometry badg = {.sx = 0, .sy = 1, .orig_w = 4, .orig_h = 4};
    gc_err_clear(&err);
    CHECK(gc_heat_to_original(o16, h4, 2, 2, &badg, &err) == GCAM_E_ARG, "sx 0 accepted");
    free(same);
    free(heat);
    free(back);
    free(o);
    free(img.px);
}

/* ---- colour maps and pictures -------------------------------------------------------------------- */

static void test_colormaps(void) {
    /* anchors: well-known end points of matplotlib's maps (float * 255, rounded) */
    static const struct {
        int id, idx;
        uint8_t rgb[3];
    } anchors[] = {
        {GC_CMAP_VIRIDIS, 0, {68, 1, 84}},    {GC_CMAP_VIRIDIS, 255, {253, 231, 37}},
        {GC_CMAP_INFERNO, 0, {0, 0, 4}},      {GC_CMAP_INFERNO, 255, {252, 255, 164}},
        {GC_CMAP_TURBO, 0, {48, 18, 59}},     {GC_CMAP_TURBO, 255, {122, 4, 3}},
        {GC_CMAP_JET, 0, {0, 0, 128}},        {GC_CMAP_JET, 255, {128, 0, 0}},
        {GC_CMAP_GRAY, 0, {0, 0, 0}},         {GC_CMAP_GRAY, 255, {255, 255, 255}},
    };
    for (size_t i = 0; i < GC_ARRAY_LEN(anchors); i++) {
        const uint8_t *t = gc_colormap_tables[anchors[i].id][anchors[i].idx];
        CHECK(!memcmp(t, anchors[i].rgb, 3), "%s[%d] = %d,%d,%d", gc_colormap_name(anchors[i].id), anchors[i].idx,
              t[0], t[1], t[2]);
    }
    int ok = 1;
    for (int i = 0; i < 256; i++)
        for (int c = 0; c < 3; c++) ok &= gc_colormap_tables[GC_CMAP_GRAY][i][c] == i;
    CHECK(ok, "gray is not the identity");
    int64_t d[4];
    int nd;
    if (access(fx("cmap.npy"), R_OK) == 0) {
        uint8_t *mt = load_u8("cmap.npy", d, &nd);
        CHECK(mt && nd == 3 && d[0] == GC_CMAP_COUNT && d[1] == 256 && d[2] == 3, "cmap.npy shape");
        if (mt) {
            for (int k = 0; k < GC_CMAP_COUNT; k++)
                CHECK(!memcmp(mt + k * 768, gc_colormap_tables[k], 768), "%s differs from matplotlib",
                      gc_colormap_name(k));
            free(mt);
        }
        int64_t nv;
        float *vals = load_f32("cmap_values.npy", &nv);
        uint8_t *look = load_u8("cmap_lookup.npy", d, &nd);
        if (vals && look) {
            uint8_t *rgb = malloc((size_t)nv * 3);
            for (int k = 0; k < GC_CMAP_COUNT; k++) {
                gc_colormap(rgb, vals, (size_t)nv, k);
                int bad = 0;
                for (int64_t i = 0; i < nv; i++)
                    if (memcmp(rgb + 3 * i, look + ((size_t)k * (size_t)nv + (size_t)i) * 3, 3)) {
                        if (bad++ < 2) printf("  %s(%.9g) differs\n", gc_colormap_name(k), vals[i]);
                    }
                CHECK(bad == 0, "%s: %d lookups differ from matplotlib's Colormap.__call__", gc_colormap_name(k), bad);
            }
            free(rgb);
        }
        free(vals);
        free(look);
    } else {
        printf("matplotlib not available: colour tables checked against anchors only\n");
    }
    float v[5] = {NAN, -3, 2, 1, 0.5f};
    uint8_t rgb[15];
    gc_colormap(rgb, v, 5, GC_CMAP_VIRIDIS);
    const uint8_t(*t)[3] = gc_colormap_tables[GC_CMAP_VIRIDIS];
    CHECK(!memcmp(rgb, t[0], 3) && !memcmp(rgb + 3, t[0], 3) && !memcmp(rgb + 6, t[255], 3) &&
              !memcmp(rgb + 9, t[255], 3) && !memcmp(rgb + 12, t[128], 3),
          "NaN / clamping / 0.5 lookups");
    for (int k = 0; k < GC_CMAP_COUNT; k++)
        CHECK(gc_colormap_from_name(gc_colormap_name(k)) == k, "name round trip %d", k);
    CHECK(gc_colormap_from_name("grey") == GC_CMAP_GRAY && gc_colormap_from_name("hot") == -1 &&
              gc_colormap_from_name(NULL) == -1,
          "names");
}

static void test_pictures(void) {
    gc_image base = {.w = 4, .h = 2};
    base.px = malloc(4 * 2 * 3);
    for (int i = 0; i < 24; i++) base.px[i] = (uint8_t)(i * 10);
    float heat[8] = {0, 0.25f, 0.5f, 1, NAN, -1, 2, 0.75f};
    gc_image o;
    gc_err err = {0};
    CHECK(gc_overlay(&o, &base, heat, GC_CMAP_JET, 0.0f, &err) == GCAM_OK && !memcmp(o.px, base.px, 24),
          "alpha 0 is the base");
    gc_image_free(&o);
    gc_image hm;
    CHECK(gc_heatmap_image(&hm, heat, 2, 4, GC_CMAP_JET, &err) == GCAM_OK && hm.w == 4 && hm.h == 2, "heatmap");
    CHECK(gc_overlay(&o, &base, heat, GC_CMAP_JET, 1.0f, &err) == GCAM_OK && !memcmp(o.px, hm.px, 24),
          "alpha 1 is the heat map");
    gc_image_free(&o);
    CHECK(gc_overlay(&o, &base, heat, GC_CMAP_JET, 0.4f, &err) == GCAM_OK, "overlay 0.4");
    int ok = 1;
    for (int i = 0; i < 24; i++) ok &= fabs(o.px[i] - (0.6 * base.px[i] + 0.4 * hm.px[i])) <= 0.5 + 1e-4;
    CHECK(ok, "overlay blend");
    gc_image_free(&o);
    gc_image_free(&hm);
    gc_err_clear(&err);
    CHECK(gc_overlay(&o, &base, heat, GC_CMAP_JET, 1.5f, &err) == GCAM_E_ARG, "alpha 1.5 accepted");
    gc_err_clear(&err);
    CHECK(gc_overlay(&o, &base, heat, (gc_colormap_id)99, 0.5f, &err) == GCAM_E_ARG, "bad colour map accepted");
    gc_err_clear(&err);
    CHECK(gc_heatmap_image(&o, heat, 0, 4, GC_CMAP_JET, &err) == GCAM_E_ARG, "empty heat map accepted");
    free(base.px);

    /* pixel-space map as in the paper's figures vs numpy (float64) */
    int64_t n;
    float *m = load_f32("pixmap_in.npy", &n);
    int64_t d[4];
    int nd;
    uint8_t *want = load_u8("pixmap_out.npy", d, &nd);
    if (m && want && n == 3 * 17 * 23) {
        gc_image pm;
        CHECK(gc_pixelmap_image(&pm, m, 3, 17, 23, &err) == GCAM_OK, "pixelmap: %s", err.msg);
        size_t nd_ = 0;
        int maxd = 0;
        for (size_t i = 0; i < (size_t)n; i++) {
            int df = abs((int)pm.px[i] - (int)want[i]);
            nd_ += df != 0;
            maxd = df > maxd ? df : maxd;
        }
        CHECK(nd_ == 0, "pixelmap: %zu values differ from numpy (max %d)", nd_, maxd);
        gc_image_free(&pm);
        /* one channel: grey */
        CHECK(gc_pixelmap_image(&pm, m, 1, 17, 23, &err) == GCAM_OK && pm.px[0] == pm.px[1] && pm.px[1] == pm.px[2],
              "pixelmap grey");
        gc_image_free(&pm);
        m[5] = NAN;
        gc_err_clear(&err);
        CHECK(gc_pixelmap_image(&pm, m, 3, 17, 23, &err) == GCAM_E_NUMERIC, "pixelmap NaN");
        gc_err_clear(&err);
        CHECK(gc_pixelmap_image(&pm, m, 2, 17, 23, &err) == GCAM_E_ARG, "pixelmap 2 channels");
    }
    free(m);
    free(want);

    /* boxes */
    gc_image b = {.w = 10, .h = 8};
    b.px = calloc(10 * 8 * 3, 1);
    const uint8_t red[3] = {255, 0, 0};
    gc_draw_box(&b, 7, 6, 2, 1, red, 2); /* corners reversed */
    ok = 1;
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 10; x++) {
            int inbox = x >= 2 && x <= 7 && y >= 1 && y <= 6;
            int inner = x >= 4 && x <= 5 && y >= 3 && y <= 4;
            int want_red = inbox && !inner;
            ok &= (b.px[(y * 10 + x) * 3] == 255) == want_red;
        }
    CHECK(ok, "box outline of thickness 2");
    memset(b.px, 0, 240);
    gc_draw_box(&b, -5, -5, 4, INT64_MAX, red, 1); /* clipped: left/top edges outside, right edge x=4 */
    ok = 1;
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 10; x++) ok &= (b.px[(y * 10 + x) * 3] == 255) == (x == 4);
    CHECK(ok, "clipped box");
    gc_draw_box(&b, 0, 0, 9, 7, red, 0); /* thickness 0: nothing */
    gc_draw_box(NULL, 0, 0, 9, 7, red, 1);
    free(b.px);
}

static void test_labels(void) {
    FILE *f = fopen(fx("labels.txt"), "r");
    CHECK(f != NULL, "no labels.txt");
    if (!f) return;
    char line[512];
    int i = 0, bad = 0;
    while (fgets(line, sizeof line, f) && i < 1000) {
        line[strcspn(line, "\n")] = 0;
        if (!gc_imagenet_labels[i] || strcmp(line, gc_imagenet_labels[i])) {
            if (bad++ < 3) printf("  label %d: '%s' vs '%s'\n", i, gc_imagenet_labels[i], line);
        }
        i++;
    }
    fclose(f);
    CHECK(i == 1000 && bad == 0, "ImageNet labels: %d read, %d differ from torchvision", i, bad);
    CHECK(!strcmp(gc_imagenet_labels[0], "tench") && !strcmp(gc_imagenet_labels[999], "toilet tissue"), "labels");
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--write-ycck")) {
        const char *slash = strrchr(argv[2], '/');
        if (!slash) {
            snprintf(g_dir, sizeof g_dir, ".");
            return write_ycck(argv[2], argv[3]);
        }
        snprintf(g_dir, sizeof g_dir, "%.*s", (int)(slash - argv[2]), argv[2]);
        return write_ycck(slash + 1, argv[3]);
    }
    if (argc != 4) {
        fprintf(stderr, "usage: %s PYTHON FIXTURE_SCRIPT OUTDIR\n", argv[0]);
        return 2;
    }
    g_python = argv[1];
    g_script = argv[2];
    snprintf(g_dir, sizeof g_dir, "%s", argv[3]);
    char self[1024];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) {
        fprintf(stderr, "cannot find my own path\n");
        return 2;
    }
    self[sl] = 0;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && '%s' '%s' '%s' '%s'", g_dir, g_python, g_script, g_dir, self);
    if (system(cmd) != 0) {
        printf("FAIL: the fixture script failed\n0 passed, 1 failed\n");
        return 1;
    }
    /* the library never prints: everything below runs with stderr captured, which must stay empty */
    fflush(stderr);
    int saved = dup(2);
    int cap = open(fx("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(cap, 2);
    close(cap);
    test_decode_fixtures();
    test_bad_fixtures();
    test_limits();
    test_truncations("png_rgb.png", 7);
    test_truncations("png_rgba_adam7.png", 5);
    test_truncations("png_pal_trns.png", 5);
    test_truncations("jpg_420.jpg", 7);
    test_truncations("jpg_progressive.jpg", 5);
    test_truncations("jpg_cmyk.jpg", 11);
    test_truncations("jpg_exif6.jpg", 9);
    test_fuzz("png_rgb.png", 400);
    test_fuzz("png_pal_adam7.png", 300);
    test_fuzz("jpg_420.jpg", 400);
    test_fuzz("jpg_progressive.jpg", 300);
    test_fuzz("jpg_exif6.jpg", 300);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    struct stat es;
    CHECK(stat(fx("stderr.txt"), &es) == 0 && es.st_size == 0, "the library wrote %lld bytes to stderr",
          (long long)es.st_size);
    test_png_write();
    test_preprocess_fixtures();
    test_preprocess_layouts();
    test_geometry();
    test_colormaps();
    test_pictures();
    test_labels();
    printf("%d passed, %d failed\n", n_checks - n_fail, n_fail);
    return n_fail != 0;
}

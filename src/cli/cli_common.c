/* Shared pieces of the image-reading subcommands (see cli_common.h). */
#include "cli_common.h"

#include <errno.h>
#include <math.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "report/report.h"

/* ---- numbers ---------------------------------------------------------------------------------- */

int cli_parse_i64(const char *s, int64_t *v) {
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (end == s || *end || errno) return -1;
    *v = x;
    return 0;
}

int cli_parse_dbl(const char *s, double *v) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(x)) return -1;
    *v = x;
    return 0;
}

int cli_parse_float(const char *s, float *v) {
    double d;
    if (cli_parse_dbl(s, &d) || fabs(d) > 3.4e38) return -1;
    *v = (float)d;
    return 0;
}

int cli_parse_float3(const char *s, float v[3]) {
    char tmp[256];
    if (snprintf(tmp, sizeof tmp, "%s", s) >= (int)sizeof tmp) return -1;
    char *parts[4];
    int n = 0;
    for (char *p = tmp, *tok; n < 4 && (tok = strsep(&p, ",")) != NULL;) parts[n++] = tok;
    if (n != 1 && n != 3) return -1;
    float r[3];
    for (int i = 0; i < n; i++)
        if (cli_parse_float(parts[i], &r[i])) return -1;
    for (int i = 0; i < 3; i++) v[i] = r[n == 1 ? 0 : i];
    return 0;
}

int cli_parse_bytes(const char *s, size_t *out) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || errno || !(x > 0) || !isfinite(x)) return -1;
    double mul = 1;
    if (*end) {
        char u = (char)(*end | 0x20);
        mul = u == 'k' ? 1024.0 : u == 'm' ? 1048576.0 : u == 'g' ? 1073741824.0 : u == 't' ? 1099511627776.0 : 0;
        if (!mul) return -1;
        end++;
        if (*end == 'i' || *end == 'I') end++;
        if (*end == 'b' || *end == 'B') end++;
        if (*end) return -1;
    }
    x *= mul;
    if (x >= 1.8e19 || x > (double)SIZE_MAX) return -1;
    *out = (size_t)x;
    return 0;
}

double cli_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *cli_split_option(const char *arg, char *buf, size_t cap) {
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    if (!eq) {
        snprintf(buf, cap, "%s", arg);
        return NULL;
    }
    snprintf(buf, cap, "%.*s", (int)(eq - arg), arg);
    return eq + 1;
}

int cli_mkdir_p(const char *dir) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) return ENAMETOOLONG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST) return errno;
        *p = '/';
    }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST) return errno;
    struct stat st;
    if (stat(tmp, &st) != 0) return errno;
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

/* ---- progress --------------------------------------------------------------------------------- */

void cli_progress_clear(cli_progress *p) {
    if (p->shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        p->shown = 0;
    }
}

void cli_progress_bar(cli_progress *p, const char *current) {
    if (!p->tty || p->quiet || p->total < 2) return;
    int cols = 80;
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40) cols = ws.ws_col;
    double el = cli_now_s() - p->t0, rate = el > 0 && p->done > 0 ? p->done / el : 0;
    char eta[32] = "--:--";
    if (rate > 0) {
        long s = (long)((p->total - p->done) / rate + 0.5);
        if (s >= 3600) snprintf(eta, sizeof eta, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
        else snprintf(eta, sizeof eta, "%ld:%02ld", s / 60, s % 60);
    }
    enum { BAR = 24 };
    int fill = (int)((double)p->done / p->total * BAR);
    char bar[BAR + 1];
    for (int i = 0; i < BAR; i++) bar[i] = i < fill ? '#' : '.';
    bar[BAR] = 0;
    char head[160];
    int n = snprintf(head, sizeof head, "[%s] %d/%d  %.2f img/s  %s left", bar, p->done, p->total, rate, eta);
    if (p->failed) n += snprintf(head + n, sizeof head - (size_t)n, "  %d failed", p->failed);
    int room = cols - 1 - n - 2;
    fprintf(stderr, "\r\033[K%s", head);
    if (current && room > 8) { /* the current item, its tail if the line is too short */
        size_t len = strlen(current);
        if ((int)len > room) fprintf(stderr, "  ...%s", current + len - (size_t)(room - 3));
        else fprintf(stderr, "  %s", current);
    }
    fflush(stderr);
    p->shown = 1;
}

/* ---- labels ----------------------------------------------------------------------------------- */

int cli_labels_load(const char *path, const char ***labels, int64_t *n_labels, char **owned) {
    *labels = NULL;
    *n_labels = 0;
    *owned = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return cli_fail(CLI_BAD_INPUT, "%s: cannot open labels: %s", path, strerror(errno));
    const size_t cap = (size_t)64 << 20;
    gc_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.n < cap) gc_buf_put(&b, chunk, n);
    int bad = ferror(f) || b.oom || b.n >= cap;
    fclose(f);
    if (bad) {
        gc_buf_free(&b);
        return cli_fail(CLI_BAD_INPUT, "%s: cannot read labels (unreadable or larger than 64 MiB)", path);
    }
    if (!b.p) gc_buf_put(&b, "", 0);
    int64_t lines = 1;
    for (size_t i = 0; i < b.n; i++) lines += b.p[i] == '\n';
    const char **v = calloc((size_t)lines, sizeof *v);
    if (!v || !b.p) {
        free(v);
        gc_buf_free(&b);
        return cli_fail(CLI_FAIL, "out of memory");
    }
    int64_t k = 0;
    for (char *p = b.p, *line; (line = strsep(&p, "\n")) != NULL;) {
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r') line[--len] = 0;
        if (k == 0 && (unsigned char)line[0] == 0xEF && (unsigned char)line[1] == 0xBB && (unsigned char)line[2] == 0xBF)
            line += 3; /* UTF-8 byte order mark */
        v[k++] = line;
    }
    while (k > 0 && !v[k - 1][0]) k--; /* trailing empty lines */
    *labels = v;
    *n_labels = k;
    *owned = b.p;
    return 0;
}

/* ---- preprocessing options -------------------------------------------------------------------- */

void cli_pre_defaults(cli_pre_opts *p) {
    memset(p, 0, sizeof *p);
    p->preprocess = -1;
    p->resize_mode = -1;
}

int cli_pre_option(cli_pre_opts *p, const char *name, const char *val) {
    if (strcmp(name, "--bgr") == 0) p->bgr = 1;
    else if (strcmp(name, "--nhwc") == 0) p->nhwc = 1;
    else if (!val) return cli_usage_error("%s needs a value", name);
    else if (strcmp(name, "--preprocess") == 0) {
        if (strcmp(val, "imagenet") == 0) p->preprocess = 0;
        else if (strcmp(val, "raw") == 0) p->preprocess = 1;
        else return cli_usage_error("--preprocess: '%s' is neither imagenet nor raw", val);
    } else if (strcmp(name, "--size") == 0) {
        int64_t d[GCAM_MAX_DIMS];
        int nd;
        if (cli_parse_dims(val, d, &nd) || nd != 2 || d[0] < 1 || d[1] < 1 || d[0] > 65536 || d[1] > 65536)
            return cli_usage_error("--size: '%s' is not WIDTHxHEIGHT (e.g. 224x224)", val);
        p->size_w = d[0];
        p->size_h = d[1];
    } else if (strcmp(name, "--resize-mode") == 0) {
        if (strcmp(val, "stretch") == 0) p->resize_mode = GC_RESIZE_STRETCH;
        else if (strcmp(val, "shorter-side-crop") == 0) p->resize_mode = GC_RESIZE_SHORTER_SIDE_CROP;
        else if (strcmp(val, "letterbox") == 0) p->resize_mode = GC_RESIZE_LETTERBOX;
        else return cli_usage_error("--resize-mode: '%s' is not stretch, shorter-side-crop or letterbox", val);
    } else if (strcmp(name, "--mean") == 0) {
        if (cli_parse_float3(val, p->mean)) return cli_usage_error("--mean: '%s' is not one or three numbers", val);
        p->have_mean = 1;
    } else if (strcmp(name, "--std") == 0) {
        if (cli_parse_float3(val, p->std) || !(p->std[0] != 0 && p->std[1] != 0 && p->std[2] != 0))
            return cli_usage_error("--std: '%s' is not one or three non-zero numbers", val);
        p->have_std = 1;
    } else if (strcmp(name, "--scale") == 0) {
        if (cli_parse_float(val, &p->scale)) return cli_usage_error("--scale: '%s' is not a number", val);
        p->have_scale = 1;
    } else {
        return cli_usage_error("%s is not a preprocessing option", name);
    }
    return 0;
}

void cli_input_geom_of(cli_input_geom *g, const gcam_tensor_info *t, int force_nhwc) {
    memset(g, 0, sizeof *g);
    g->c = g->h = g->w = -1;
    g->batch_dynamic = t->ndim >= 1 && t->dims[0] < 0;
    if (t->ndim != 4) return;
    int64_t c1 = t->dims[1], c3 = t->dims[3];
    /* channels last when told, or when only the last axis looks like channels */
    g->nhwc = force_nhwc || ((c3 == 1 || c3 == 3) && !(c1 == 1 || c1 == 3));
    g->c = g->nhwc ? c3 : c1;
    g->h = g->nhwc ? t->dims[1] : t->dims[2];
    g->w = g->nhwc ? t->dims[2] : t->dims[3];
}

int cli_default_imagenet(const cli_pre_opts *p, const cli_input_geom *g) {
    if (p->preprocess >= 0) return p->preprocess == 0;
    return g->c == 3 && g->h == 224 && g->w == 224;
}

void cli_make_preprocess(gc_preprocess *out, const cli_pre_opts *p, const cli_input_geom *g, const gc_image *img) {
    int imagenet = cli_default_imagenet(p, g);
    int64_t W, H;
    if (p->size_w) W = p->size_w, H = p->size_h;
    else if (g->w > 0 && g->h > 0) W = g->w, H = g->h;
    else if (imagenet) W = H = 224;
    else W = img->w, H = img->h;
    if (g->w > 0 && g->h < 0) H = p->size_h ? H : img->h; /* one dynamic side */
    if (g->h > 0 && g->w < 0) W = p->size_w ? W : img->w;
    if (imagenet) {
        gc_preprocess_imagenet(out);
        out->width = W;
        out->height = H;
        /* torchvision's 256 for 224, kept in proportion for other sizes */
        out->resize_shorter = (int64_t)llround((double)(W > H ? W : H) * 256.0 / 224.0);
    } else {
        gc_preprocess_raw(out, W, H);
    }
    if (p->resize_mode >= 0) {
        out->mode = (gc_resize_mode)p->resize_mode;
        if (out->mode == GC_RESIZE_SHORTER_SIDE_CROP && !imagenet) out->resize_shorter = W > H ? W : H;
    }
    if (p->have_mean) memcpy(out->mean, p->mean, sizeof out->mean);
    if (p->have_std) memcpy(out->std, p->std, sizeof out->std);
    if (p->have_scale) out->scale = p->scale;
    out->bgr = p->bgr;
    out->nhwc = g->nhwc;
}

void cli_print_method_names(int indent, int width, const char *suffix) {
    int col = 0;
    for (int m = 0; m < GCAM_METHOD_COUNT; m++) {
        const char *name = gcam_method_name((gcam_method)m);
        int len = (int)strlen(name) + (m == GCAM_METHOD_COUNT - 1 ? (int)strlen(suffix) : 0);
        if (col > 0 && col + 1 + len > width) {
            printf("\n");
            col = 0;
        }
        col += col == 0 ? printf("%*s%s", indent, "", name) : printf(" %s", name);
    }
    printf("%s\n", suffix);
}

const char *g_prog = "gradcam";

/* The command as a library (tool.c) prints nothing: its thread's first message is kept instead. */
static _Thread_local char *g_capture;
static _Thread_local size_t g_capture_n;

void cli_capture(char *buf, size_t n) {
    g_capture = buf;
    g_capture_n = n;
    if (buf && n) buf[0] = 0;
}

int cli_capturing(void) { return g_capture != NULL; }

__attribute__((format(printf, 1, 0))) static void say(const char *fmt, va_list ap, int usage) {
    if (g_capture) {
        if (!g_capture[0] && g_capture_n) vsnprintf(g_capture, g_capture_n, fmt, ap);
        return;
    }
    fprintf(stderr, "%s: ", g_prog);
    vfprintf(stderr, fmt, ap);
    if (usage) fprintf(stderr, "\nTry '%s --help'.\n", g_prog);
    else fputc('\n', stderr);
}

int cli_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap, 1);
    va_end(ap);
    return CLI_USAGE;
}

int cli_fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap, 0);
    va_end(ap);
    return code;
}

int cli_status_exit(gcam_status s) {
    switch (s) {
    case GCAM_OK: return 0;
    case GCAM_E_ARG: return CLI_USAGE;
    case GCAM_E_IO:
    case GCAM_E_FORMAT:
    case GCAM_E_UNSUPPORTED:
    case GCAM_E_SHAPE:
    case GCAM_E_LIMIT:
    case GCAM_E_NUMERIC:
    case GCAM_E_NOT_FOUND: return CLI_BAD_INPUT;
    default: return 1;
    }
}

gcam_status cli_load_model(gcam_model **m, const char *path, int allow_unsupported, size_t max_memory) {
    gcam_load_options lo = {.allow_unsupported = allow_unsupported, .max_memory = max_memory};
    gcam_status rc = gcam_model_load(m, path, &lo);
    if (rc) cli_fail(1, "%s", gcam_model_error(*m));
    return rc;
}

int cli_parse_dims(const char *s, int64_t *dims, int *ndim) {
    *ndim = 0;
    while (*s) {
        if (*ndim >= GCAM_MAX_DIMS) return -1;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno || v < 0) return -1;
        dims[(*ndim)++] = v;
        if (*end == 'x' || *end == 'X' || *end == ',') end++;
        else if (*end) return -1;
        s = end;
    }
    return *ndim > 0 ? 0 : -1;
}

/* ---- detection boxes ---- */

void cli_box_to_picture(const gc_geometry *g, double W, double H, const double in[4], double out[4]) {
    double v[4] = {in[0], in[1], in[2], in[3]};
    if (g) {
        v[0] = g->x0 + v[0] * g->sx;
        v[2] = g->x0 + v[2] * g->sx;
        v[1] = g->y0 + v[1] * g->sy;
        v[3] = g->y0 + v[3] * g->sy;
    }
    out[0] = fmin(fmax(v[0], 0), W);
    out[2] = fmin(fmax(v[2], 0), W);
    out[1] = fmin(fmax(v[1], 0), H);
    out[3] = fmin(fmax(v[3], 0), H);
}

double cli_box_iou(const double a[4], const double b[4]) {
    double iw = fmin(a[2], b[2]) - fmax(a[0], b[0]), ih = fmin(a[3], b[3]) - fmax(a[1], b[1]);
    double inter = iw > 0 && ih > 0 ? iw * ih : 0;
    double ua = fmax(a[2] - a[0], 0) * fmax(a[3] - a[1], 0), ub = fmax(b[2] - b[0], 0) * fmax(b[3] - b[1], 0);
    double u = ua + ub - inter;
    return u > 0 ? inter / u : 0;
}

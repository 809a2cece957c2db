/* An explain request turned into a job: its query into the options of gcam_tool_explain (only
 * those about what is explained and how it is drawn: nothing that names a file), the picture
 * found in the body (raw or a multipart field), its size read from its header before decoding. */
#include <stdarg.h>
#include <strings.h>

#include <microhttpd.h>

#include "serve.h"

/* Query keys and the explain options they become; flag: a yes/no option. */
static const struct {
    const char *key, *opt;
    int flag;
} g_query[] = {
    {"methods", "-m", 0},       {"method", "-m", 0},
    {"k", "-k", 0},             {"classes", "-c", 0},
    {"class", "-c", 0},         {"layer", "-l", 0},
    {"target", "--target", 0},  {"output", "--output", 0},
    {"probability", "--probability", 1}, {"colormap", "--colormap", 0},
    {"alpha", "--alpha", 0},    {"npy", "--npy", 1},
    {"seed", "--seed", 0},      {"box", "--box", 0},
    {"detections", "--detections", 0}, {"score_threshold", "--score-threshold", 0},
    {"iou_threshold", "--iou-threshold", 0}, {"max_detections", "--max-detections", 0},
    {"caption", "--caption", 0}, {"question", "--question", 0}, {"max_words", "--max-words", 0},
};

enum { MAX_ARGS = 64, MAX_VALUE = 4096 };

typedef struct qctx {
    sv_req *r;
    const char *model;
    int inline_given, npy;
    int status;
    char *err;
    size_t cap;
} qctx;

static int yes_no(const char *v, int *out) {
    if (!v || !*v || !strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes")) *out = 1;
    else if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no")) *out = 0;
    else return -1;
    return 0;
}

static int push_arg(sv_req *r, const char *a) {
    if (r->argc >= MAX_ARGS) return -1;
    if (!r->argv && !(r->argv = calloc(MAX_ARGS + 1, sizeof *r->argv))) return -1;
    if (!(r->argv[r->argc] = gc_strdup(a))) return -1;
    r->argc++;
    return 0;
}

static enum MHD_Result fail(qctx *q, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static enum MHD_Result fail(qctx *q, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    q->status = status;
    vsnprintf(q->err, q->cap, fmt, ap);
    va_end(ap);
    return MHD_NO; /* stops the walk over the query */
}

static enum MHD_Result one_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *val) {
    qctx *q = cls;
    sv_req *r = q->r;
    if (val && strlen(val) > MAX_VALUE) return fail(q, 400, "query parameter '%s' is too long", key);
    int yes = 0;
    if (!strcmp(key, "model")) {
        q->model = val ? val : "";
        return MHD_YES;
    }
    if (!strcmp(key, "inline")) {
        if (yes_no(val, &yes)) return fail(q, 400, "inline: '%s' is not 0 or 1", val);
        r->inline_png = yes;
        q->inline_given = 1;
        return MHD_YES;
    }
    if (!strcmp(key, "name")) {
        if (!val || !*val || strlen(val) > 200) return fail(q, 400, "name: '%s' is not a name of 1 to 200 characters", val ? val : "");
        free(r->name);
        if (!(r->name = gc_strdup(val))) return fail(q, 500, "%s", "out of memory");
        return MHD_YES;
    }
    for (size_t i = 0; i < sizeof g_query / sizeof *g_query; i++) {
        if (strcmp(key, g_query[i].key) != 0) continue;
        if (g_query[i].flag) {
            if (yes_no(val, &yes)) return fail(q, 400, "'%s' takes 0 or 1", key);
            if (!strcmp(key, "npy")) q->npy = yes;
            if (yes && push_arg(r, g_query[i].opt)) return fail(q, 400, "%s", "too many query parameters");
            return MHD_YES;
        }
        if (!val || !*val) return fail(q, 400, "query parameter '%s' needs a value", key);
        if (push_arg(r, g_query[i].opt) || push_arg(r, val)) return fail(q, 400, "%s", "too many query parameters");
        return MHD_YES;
    }
    return fail(q, 400,
                "unknown query parameter '%s' (known: model, methods, k, classes, layer, target, output, probability, "
                "colormap, alpha, npy, seed, box, detections, score_threshold, iou_threshold, max_detections, caption, "
                "question, max_words, inline, name)",
                key);
}

int sv_job_from_query(sv_server *s, sv_req *r, char *err, size_t cap) {
    qctx q = {.r = r, .err = err, .cap = cap};
    r->inline_png = 1;
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, one_arg, &q);
    if (q.status) return q.status;
    if (q.model) {
        for (int i = 0; i < s->n_models; i++)
            if (!strcmp(s->models[i].name, q.model)) r->model = i;
        if (r->model < 0) {
            snprintf(err, cap, "no model named '%.200s' (GET /v1/models lists them)", q.model);
            return 400;
        }
    } else if (s->n_models == 1) {
        r->model = 0;
    } else {
        snprintf(err, cap, "%d models are loaded: say which with ?model=NAME", s->n_models);
        return 400;
    }
    /* the files come back under /v1/results when asked (inline=0) and for the .npy maps, which
     * are never inline */
    r->store = !r->inline_png || q.npy;
    return 0;
}

/* ---- the picture ---------------------------------------------------------------------------- */

static const unsigned char *find(const unsigned char *h, size_t n, const char *needle, size_t m) {
    if (m == 0 || n < m) return NULL;
    for (size_t i = 0; i + m <= n; i++)
        if (h[i] == (unsigned char)needle[0] && !memcmp(h + i, needle, m)) return h + i;
    return NULL;
}

/* boundary=... (quoted or not) of a multipart Content-Type into b; 0 or -1. */
static int boundary_of(const char *ct, char *b, size_t cap) {
    const char *p = ct;
    while (*p && strncasecmp(p, "boundary=", 9) != 0) p++;
    if (!*p) return -1;
    p += 9;
    size_t n = 0;
    if (*p == '"') {
        p++;
        while (p[n] && p[n] != '"') n++;
    } else {
        while (p[n] && p[n] != ';' && p[n] != ' ') n++;
    }
    if (n == 0 || n > 70 || n + 3 > cap) return -1; /* RFC 2046: 1 to 70 characters */
    b[0] = b[1] = '-';
    memcpy(b + 2, p, n);
    b[n + 2] = 0;
    return 0;
}

/* Whether a part's headers name the field (name="field", not filename="field"). */
static int part_is(const unsigned char *h, size_t n, const char *field) {
    char want[80];
    int w = snprintf(want, sizeof want, "name=\"%s\"", field);
    if (w < 0 || (size_t)w >= sizeof want) return 0;
    for (const unsigned char *p = h; (p = find(p, n - (size_t)(p - h), want, (size_t)w)) != NULL; p++)
        if (p > h && (p[-1] == ' ' || p[-1] == ';' || p[-1] == '\t')) return 1;
    return 0;
}

int sv_multipart_field(const unsigned char *body, size_t n, const char *ct, const char *field, const unsigned char **out,
                       size_t *out_n) {
    char delim[80];
    if (boundary_of(ct, delim, sizeof delim)) return -1;
    size_t dl = strlen(delim);
    const unsigned char *end = body + n, *p = find(body, n, delim, dl);
    while (p) {
        p += dl;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') return -1; /* the closing delimiter */
        const unsigned char *hdr_end = find(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!hdr_end) return -1;
        const unsigned char *data = hdr_end + 4;
        char next[84];
        snprintf(next, sizeof next, "\r\n%s", delim);
        const unsigned char *stop = find(data, (size_t)(end - data), next, dl + 2);
        if (!stop) return -1;
        if (part_is(p, (size_t)(hdr_end - p), field)) {
            *out = data;
            *out_n = (size_t)(stop - data);
            return 0;
        }
        p = stop + 2;
    }
    return -1;
}

static int64_t be16(const unsigned char *p) { return (int64_t)p[0] << 8 | p[1]; }
static int64_t be32(const unsigned char *p) { return (int64_t)p[0] << 24 | (int64_t)p[1] << 16 | (int64_t)p[2] << 8 | p[3]; }

/* A JPEG's frame size: the first start-of-frame segment. */
static int jpeg_size(const unsigned char *p, size_t n, int64_t *w, int64_t *h) {
    size_t i = 2;
    while (i + 4 <= n) {
        if (p[i] != 0xFF) return -1;
        unsigned m = p[i + 1];
        if (m == 0xFF) { /* fill byte */
            i++;
            continue;
        }
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) { /* no length */
            i += 2;
            continue;
        }
        size_t len = (size_t)be16(p + i + 2);
        if (len < 2) return -1;
        int sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
        if (sof) {
            if (i + 9 > n) return -1;
            *h = be16(p + i + 5);
            *w = be16(p + i + 7);
            return 0;
        }
        i += 2 + len;
    }
    return -1;
}

int sv_picture_size(const unsigned char *p, size_t n, int64_t *w, int64_t *h) {
    static const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (n >= 24 && !memcmp(p, png, 8) && !memcmp(p + 12, "IHDR", 4)) {
        *w = be32(p + 16);
        *h = be32(p + 20);
        return 0;
    }
    if (n >= 4 && p[0] == 0xFF && p[1] == 0xD8) return jpeg_size(p, n, w, h);
    return -1;
}

int sv_job_picture(sv_server *s, sv_req *r, const char *ct, char *err, size_t cap) {
    const unsigned char *body = (const unsigned char *)r->body.p;
    size_t n = r->body.n;
    if (ct && !strncasecmp(ct, "multipart/form-data", 19)) {
        if (sv_multipart_field(body, n, ct, "image", &r->pic, &r->pic_size)) {
            snprintf(err, cap, "no field 'image' in the multipart body (or a malformed one)");
            return 400;
        }
    } else if (!ct || !strncasecmp(ct, "image/", 6) || !strncasecmp(ct, "application/octet-stream", 24)) {
        r->pic = body;
        r->pic_size = n;
    } else {
        snprintf(err, cap, "Content-Type '%.100s': send the picture as image/png, image/jpeg or multipart/form-data", ct);
        return 415;
    }
    if (!r->pic_size) {
        snprintf(err, cap, "no picture in the body");
        return 400;
    }
    int64_t w = 0, h = 0;
    if (!sv_picture_size(r->pic, r->pic_size, &w, &h) && w * h > s->cfg.max_pixels) {
        snprintf(err, cap, "the picture is %lldx%lld pixels, more than %lld (--max-pixels)", (long long)w, (long long)h,
                 (long long)s->cfg.max_pixels);
        return 413;
    }
    return 0;
}

/* gradcam eval: ground-truth boxes from a CSV file or a folder of Pascal VOC XML annotations.
 * Both are untrusted: sizes are bounded, the XML parser expands no entity beyond the five
 * predefined ones and numeric references, skips DOCTYPE declarations whole, and limits depth. */
#include <dirent.h>
#include <strings.h>
#include <errno.h>
#include <math.h>
#include <sys/stat.h>

#include "eval.h"

#define EV_MAX_FILE ((size_t)64 << 20)   /* a CSV */
#define EV_MAX_XML ((size_t)4 << 20)     /* one VOC annotation */
#define EV_MAX_OBJS 100000               /* boxes in all */
#define EV_MAX_FIELD 4096

static int msgf(char *msg, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int msgf(char *msg, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, n, fmt, ap);
    va_end(ap);
    return -1;
}

static int read_all(const char *path, size_t max, char **out, size_t *n, char *msg, size_t msg_size) {
    FILE *f = fopen(path, "rb");
    if (!f) return msgf(msg, msg_size, "%s: cannot open: %s", path, strerror(errno));
    gc_buf b = {0};
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0 && b.n <= max) gc_buf_put(&b, chunk, k);
    int bad = ferror(f);
    fclose(f);
    if (bad || b.oom || b.n > max) {
        gc_buf_free(&b);
        if (bad) return msgf(msg, msg_size, "%s: read error", path);
        if (b.oom) return msgf(msg, msg_size, "out of memory reading %s", path);
        return msgf(msg, msg_size, "%s: larger than %zu MiB", path, max >> 20);
    }
    if (!b.p) gc_buf_put(&b, "", 0);
    if (!b.p) return msgf(msg, msg_size, "out of memory");
    *out = b.p;
    *n = b.n;
    return 0;
}

static char *join_path(const char *dir, const char *name) {
    if (name[0] == '/' || !dir || !dir[0]) return gc_strdup(name);
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
    return p;
}

static ev_image *image_get(ev_gt *gt, const char *name) {
    /* a linear search from the end: CSV rows of one image are usually together */
    for (int i = gt->n - 1; i >= 0 && i >= gt->n - 4; i--)
        if (strcmp(gt->v[i].name, name) == 0) return &gt->v[i];
    for (int i = gt->n - 5; i >= 0; i--)
        if (strcmp(gt->v[i].name, name) == 0) return &gt->v[i];
    if (gt->n == gt->cap) {
        int cap = gt->cap ? gt->cap * 2 : 64;
        ev_image *v = realloc(gt->v, sizeof *v * (size_t)cap);
        if (!v) return NULL;
        gt->v = v;
        gt->cap = cap;
    }
    ev_image *im = &gt->v[gt->n];
    memset(im, 0, sizeof *im);
    if (!(im->name = gc_strdup(name))) return NULL;
    gt->n++;
    return im;
}

static ev_obj *obj_add(ev_image *im) {
    if (im->n_objs == im->cap_objs) {
        int cap = im->cap_objs ? im->cap_objs * 2 : 4;
        ev_obj *v = realloc(im->objs, sizeof *v * (size_t)cap);
        if (!v) return NULL;
        im->objs = v;
        im->cap_objs = cap;
    }
    ev_obj *o = &im->objs[im->n_objs++];
    memset(o, 0, sizeof *o);
    o->cls = -1;
    return o;
}

static int parse_num(const char *s, double *v) {
    while (*s == ' ' || *s == '\t') s++;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || errno || !isfinite(x)) return -1;
    while (*end == ' ' || *end == '\t') end++;
    if (*end) return -1;
    *v = x;
    return 0;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = 0;
    return s;
}

/* ---- CSV ---- */

/* Splits one record starting at *pos into fields (RFC 4180: quoted fields may hold commas, ""
 * and newlines). Fields are written NUL-terminated into buf. Returns the field count, -1 when a
 * field is too long or there are too many, -2 on an unterminated quote. *line counts newlines. */
static int csv_record(const char *s, size_t n, size_t *pos, char *buf, size_t bufsz, char **fields, int maxf,
                      int *line) {
    size_t p = *pos, o = 0;
    int nf = 0;
    fields[nf++] = buf;
    for (;;) {
        if (p >= n || s[p] == '\n' || (s[p] == '\r' && (p + 1 >= n || s[p + 1] == '\n'))) {
            if (p < n && s[p] == '\r') p++;
            if (p < n) p++, (*line)++;
            break;
        }
        char c = s[p];
        if (c == '"' && (o == 0 || buf[o - 1] == 0)) { /* a quoted field */
            p++;
            for (;;) {
                if (p >= n) return -2;
                if (s[p] == '"') {
                    if (p + 1 < n && s[p + 1] == '"') p++;
                    else break;
                }
                if (s[p] == '\n') (*line)++;
                if (o + 2 >= bufsz) return -1;
                buf[o++] = s[p++];
            }
            p++;
            continue;
        }
        if (c == ',') {
            if (o + 2 >= bufsz || nf >= maxf) return -1;
            buf[o++] = 0;
            fields[nf++] = buf + o;
            p++;
            continue;
        }
        if (o + 2 >= bufsz) return -1;
        buf[o++] = c;
        p++;
    }
    buf[o] = 0;
    *pos = p;
    return nf;
}

static int read_csv(ev_gt *gt, const char *path, char *msg, size_t msg_size) {
    char *s;
    size_t n;
    if (read_all(path, EV_MAX_FILE, &s, &n, msg, msg_size)) return -1;
    size_t pos = 0;
    if (n >= 3 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB && (unsigned char)s[2] == 0xBF) pos = 3;
    char *buf = malloc(EV_MAX_FIELD * 8);
    char *f[16];
    int col[6] = {0, 1, 2, 3, 4, 5}; /* image, class, x0, y0, x1, y1 */
    int line = 1, rc = 0, first = 1, n_objs = 0;
    if (!buf) {
        free(s);
        return msgf(msg, msg_size, "out of memory");
    }
    while (pos < n) {
        int at = line;
        int nf = csv_record(s, n, &pos, buf, EV_MAX_FIELD * 8, f, 16, &line);
        if (nf == -2) {
            rc = msgf(msg, msg_size, "%s:%d: a quoted field never ends", path, at);
            break;
        }
        if (nf < 0) {
            rc = msgf(msg, msg_size, "%s:%d: a field or the line is too long (or more than 16 columns)", path, at);
            break;
        }
        if (nf == 1 && !*trim(f[0])) continue; /* blank line */
        if (first) {
            first = 0;
            double v;
            if (nf >= 6 && parse_num(f[2], &v) != 0) { /* a header: columns by name */
                static const char *const names[6] = {"image", "class", "x0", "y0", "x1", "y1"};
                for (int k = 0; k < 6; k++) {
                    col[k] = -1;
                    for (int q = 0; q < nf; q++)
                        if (strcasecmp(trim(f[q]), names[k]) == 0) col[k] = q;
                    if (col[k] < 0) {
                        rc = msgf(msg, msg_size, "%s:1: the header has no '%s' column (want image,class,x0,y0,x1,y1)",
                                  path, names[k]);
                        goto out;
                    }
                }
                continue;
            }
        }
        int need = 0;
        for (int k = 0; k < 6; k++) need = GC_MAX(need, col[k] + 1);
        if (nf < need) {
            rc = msgf(msg, msg_size, "%s:%d: %d fields; want image,class,x0,y0,x1,y1", path, at, nf);
            break;
        }
        double b[4];
        for (int k = 0; k < 4; k++)
            if (parse_num(f[col[2 + k]], &b[k])) {
                rc = msgf(msg, msg_size, "%s:%d: '%s' is not a number", path, at, f[col[2 + k]]);
                goto out;
            }
        if (!(b[2] > b[0]) || !(b[3] > b[1])) {
            rc = msgf(msg, msg_size, "%s:%d: empty box (%g,%g)-(%g,%g): x1 and y1 are exclusive and must exceed x0, y0",
                      path, at, b[0], b[1], b[2], b[3]);
            break;
        }
        char *name = trim(f[col[0]]), *cls = trim(f[col[1]]);
        if (!*name || !*cls) {
            rc = msgf(msg, msg_size, "%s:%d: empty image or class", path, at);
            break;
        }
        if (++n_objs > EV_MAX_OBJS) {
            rc = msgf(msg, msg_size, "%s: more than %d boxes", path, EV_MAX_OBJS);
            break;
        }
        ev_image *im = image_get(gt, name);
        ev_obj *o = im ? obj_add(im) : NULL;
        if (!o || !(o->cls_text = gc_strdup(cls))) {
            rc = msgf(msg, msg_size, "out of memory");
            break;
        }
        o->x0 = b[0];
        o->y0 = b[1];
        o->x1 = b[2];
        o->y1 = b[3];
        o->line = at;
    }
out:
    free(buf);
    free(s);
    return rc;
}

/* ---- Pascal VOC XML ---- */

#define XML_MAX_DEPTH 32

typedef struct xml_state {
    const char *s;
    size_t n, p;
    char stack[XML_MAX_DEPTH][64];
    int depth;
    char text[EV_MAX_FIELD];
    size_t tn;
    int text_overflow;
} xml_state;

static void text_put(xml_state *x, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (x->tn + 1 >= sizeof x->text) {
            x->text_overflow = 1;
            return;
        }
        x->text[x->tn++] = s[i];
    }
}

/* UTF-8 of a code point into out; returns bytes (0 for invalid). */
static int utf8_put(char *out, long cp) {
    if (cp <= 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 63));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 63));
        out[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 63));
    out[2] = (char)(0x80 | ((cp >> 6) & 63));
    out[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* Character data with the predefined and numeric references decoded; any other reference is
 * kept as written (no entity is ever expanded from a DTD). */
static void text_chars(xml_state *x, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '&') {
            text_put(x, s + i, 1);
            continue;
        }
        size_t e = i + 1;
        while (e < n && e - i < 12 && s[e] != ';') e++;
        if (e >= n || s[e] != ';') {
            text_put(x, s + i, 1);
            continue;
        }
        const char *r = s + i + 1;
        size_t rl = e - i - 1;
        char u[4];
        int ul = 0;
        if (rl == 2 && !strncmp(r, "lt", 2)) u[0] = '<', ul = 1;
        else if (rl == 2 && !strncmp(r, "gt", 2)) u[0] = '>', ul = 1;
        else if (rl == 3 && !strncmp(r, "amp", 3)) u[0] = '&', ul = 1;
        else if (rl == 4 && !strncmp(r, "quot", 4)) u[0] = '"', ul = 1;
        else if (rl == 4 && !strncmp(r, "apos", 4)) u[0] = '\'', ul = 1;
        else if (rl >= 2 && r[0] == '#') {
            char num[16];
            snprintf(num, sizeof num, "%.*s", (int)(rl - 1), r + 1);
            char *end;
            long cp = (num[0] == 'x' || num[0] == 'X') ? strtol(num + 1, &end, 16) : strtol(num, &end, 10);
            if (*end == 0) ul = utf8_put(u, cp);
        }
        if (ul) {
            text_put(x, u, (size_t)ul);
            i = e;
        } else {
            text_put(x, s + i, 1);
        }
    }
}

static int starts(const xml_state *x, const char *lit) {
    size_t l = strlen(lit);
    return x->p + l <= x->n && memcmp(x->s + x->p, lit, l) == 0;
}

/* Skips to just past `end`; -1 if it never comes. */
static int skip_past(xml_state *x, const char *end) {
    size_t l = strlen(end);
    for (; x->p + l <= x->n; x->p++)
        if (memcmp(x->s + x->p, end, l) == 0) {
            x->p += l;
            return 0;
        }
    return -1;
}

/* A DOCTYPE declaration with any internal subset, skipped whole (its entities are not defined). */
static int skip_doctype(xml_state *x) {
    int bracket = 0;
    char quote = 0;
    for (; x->p < x->n; x->p++) {
        char c = x->s[x->p];
        if (quote) {
            if (c == quote) quote = 0;
        } else if (c == '"' || c == '\'') {
            quote = c;
        } else if (c == '[') {
            bracket++;
        } else if (c == ']') {
            bracket--;
        } else if (c == '>' && bracket <= 0) {
            x->p++;
            return 0;
        }
    }
    return -1;
}

typedef struct voc_cur {
    ev_obj *obj;              /* the object being read */
    int have[4];
    char name[256];
    int has_name;
    int n_objects;
} voc_cur;

static int is_path(const xml_state *x, int depth_from_end, const char *const *names, int k) {
    if (x->depth < k) return 0;
    (void)depth_from_end;
    for (int i = 0; i < k; i++)
        if (strcmp(x->stack[x->depth - k + i], names[i]) != 0) return 0;
    return 1;
}

/* The end of element `name` (on top of x's stack): its text stored where VOC puts what is read
 * (the file name, an object's name and box corners), and a finished object added to img. 0, or
 * an error (msg). */
static int voc_end_element(ev_image *img, xml_state *x, voc_cur *cur, double box[4], const char *name, const char *what,
                           char *msg, size_t msg_size) {
    int rc = 0;
    x->text[x->tn] = 0;
    char *t = x->text;
    while (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r') t++;
    size_t tl = strlen(t);
    while (tl && strchr(" \t\r\n", t[tl - 1])) t[--tl] = 0;
    static const char *const p_fname[] = {"annotation", "filename"};
    static const char *const p_name[] = {"object", "name"};
    static const char *const coords[4] = {"xmin", "ymin", "xmax", "ymax"};
    if (x->depth == 2 && is_path(x, 0, p_fname, 2)) {
        if (!x->text_overflow && tl && !strchr(t, '/')) {
            free(img->name);
            img->name = gc_strdup(t);
        }
    } else if (x->depth == 3 && is_path(x, 0, p_name, 2)) {
        snprintf(cur->name, sizeof cur->name, "%s", t);
        cur->has_name = tl > 0;
    } else if (x->depth == 4 && strcmp(x->stack[1], "object") == 0 && strcmp(x->stack[2], "bndbox") == 0) {
        for (int k = 0; k < 4; k++)
            if (strcmp(name, coords[k]) == 0) {
                if (parse_num(t, &box[k])) {
                    rc = msgf(msg, msg_size, "%s: object %d: <%s> '%s' is not a number", what, cur->n_objects, name, t);
                    break;
                }
                cur->have[k] = 1;
            }
    } else if (x->depth == 2 && strcmp(name, "object") == 0) {
        if (!cur->has_name || !cur->have[0] || !cur->have[1] || !cur->have[2] || !cur->have[3]) {
            return msgf(msg, msg_size, "%s: object %d lacks <name> or <bndbox> xmin/ymin/xmax/ymax", what, cur->n_objects);
        }
        /* VOC: 1-based, inclusive corners -> 0-based, exclusive */
        double b0 = box[0] - 1, b1 = box[1] - 1, b2 = box[2], b3 = box[3];
        if (!(b2 > b0) || !(b3 > b1)) {
            return msgf(msg, msg_size, "%s: object %d: empty box xmin %g ymin %g xmax %g ymax %g", what, cur->n_objects,
                      box[0], box[1], box[2], box[3]);
        }
        ev_obj *o = obj_add(img);
        if (!o || !(o->cls_text = gc_strdup(cur->name))) {
            return msgf(msg, msg_size, "out of memory");
        }
        o->x0 = b0;
        o->y0 = b1;
        o->x1 = b2;
        o->y1 = b3;
        o->line = cur->n_objects;
    }
    return rc;
}

int ev_voc_parse(ev_image *img, const char *xml, size_t n, const char *what, char *msg, size_t msg_size) {
    xml_state *x = calloc(1, sizeof *x);
    if (!x) return msgf(msg, msg_size, "out of memory");
    x->s = xml;
    x->n = n;
    voc_cur cur = {0};
    int rc = 0, seen_root = 0;
    double box[4] = {0};
    while (x->p < x->n && !rc) {
        if (x->s[x->p] != '<') {
            size_t a = x->p;
            while (x->p < x->n && x->s[x->p] != '<') x->p++;
            if (x->depth > 0) text_chars(x, x->s + a, x->p - a);
            continue;
        }
        if (starts(x, "<!--")) {
            if (skip_past(x, "-->")) rc = msgf(msg, msg_size, "%s: a comment never ends", what);
            continue;
        }
        if (starts(x, "<![CDATA[")) {
            x->p += 9;
            size_t a = x->p;
            if (skip_past(x, "]]>")) {
                rc = msgf(msg, msg_size, "%s: a CDATA section never ends", what);
                continue;
            }
            if (x->depth > 0) text_put(x, x->s + a, x->p - 3 - a);
            continue;
        }
        if (starts(x, "<?")) {
            if (skip_past(x, "?>")) rc = msgf(msg, msg_size, "%s: a processing instruction never ends", what);
            continue;
        }
        if (starts(x, "<!")) {
            if (skip_doctype(x)) rc = msgf(msg, msg_size, "%s: a declaration never ends", what);
            continue;
        }
        /* a start or end tag */
        int end_tag = starts(x, "</");
        x->p += end_tag ? 2 : 1;
        size_t a = x->p;
        while (x->p < x->n && !strchr(" \t\r\n/>", x->s[x->p])) x->p++;
        size_t nl = x->p - a;
        if (nl == 0 || nl >= 64) {
            rc = msgf(msg, msg_size, "%s: malformed tag near byte %zu", what, a);
            break;
        }
        char name[64];
        memcpy(name, x->s + a, nl);
        name[nl] = 0;
        /* attributes are skipped (quotes may hold '>') */
        char quote = 0;
        int self_close = 0;
        for (; x->p < x->n; x->p++) {
            char c = x->s[x->p];
            if (quote) {
                if (c == quote) quote = 0;
            } else if (c == '"' || c == '\'') {
                quote = c;
            } else if (c == '>') {
                self_close = x->p > a && x->s[x->p - 1] == '/';
                break;
            }
        }
        if (x->p >= x->n) {
            rc = msgf(msg, msg_size, "%s: the tag <%s> never ends", what, name);
            break;
        }
        x->p++;
        if (!end_tag) {
            if (x->depth == 0 && seen_root) {
                rc = msgf(msg, msg_size, "%s: more than one root element", what);
                break;
            }
            if (x->depth >= XML_MAX_DEPTH) {
                rc = msgf(msg, msg_size, "%s: elements nested deeper than %d", what, XML_MAX_DEPTH);
                break;
            }
            seen_root = 1;
            snprintf(x->stack[x->depth++], 64, "%s", name);
            x->tn = 0;
            x->text_overflow = 0;
            if (strcmp(name, "object") == 0 && x->depth == 2) {
                if (++cur.n_objects > EV_MAX_OBJS) {
                    rc = msgf(msg, msg_size, "%s: more than %d objects", what, EV_MAX_OBJS);
                    break;
                }
                cur.has_name = 0;
                memset(cur.have, 0, sizeof cur.have);
            }
            if (!self_close) continue;
            end_tag = 1; /* <x/>: an empty element */
        }
        if (x->depth == 0 || strcmp(x->stack[x->depth - 1], name) != 0) {
            rc = msgf(msg, msg_size, "%s: </%s> does not close <%s>", what, name, x->depth ? x->stack[x->depth - 1] : "");
            break;
        }
        if ((rc = voc_end_element(img, x, &cur, box, name, what, msg, msg_size))) break;
        x->depth--;
        x->tn = 0;
    }
    if (!rc && x->depth > 0) rc = msgf(msg, msg_size, "%s: <%s> is never closed", what, x->stack[x->depth - 1]);
    if (!rc && !seen_root) rc = msgf(msg, msg_size, "%s: no XML element", what);
    if (!rc && strcmp(x->stack[0], "annotation") != 0)
        rc = msgf(msg, msg_size, "%s: the root element is <%s>, not <annotation>", what, x->stack[0]);
    free(x);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int read_voc_dir(ev_gt *gt, const char *dir, const char *images_dir, char *msg, size_t msg_size) {
    DIR *d = opendir(dir);
    if (!d) return msgf(msg, msg_size, "%s: cannot open the folder: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 5 || strcasecmp(e->d_name + l - 4, ".xml") != 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **v = realloc(names, sizeof *v * (size_t)cap);
            if (!v) {
                rc = msgf(msg, msg_size, "out of memory");
                break;
            }
            names = v;
        }
        if (!(names[n] = gc_strdup(e->d_name))) {
            rc = msgf(msg, msg_size, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (!rc && n == 0) rc = msgf(msg, msg_size, "%s: no .xml annotation in the folder", dir);
    if (!rc) qsort(names, (size_t)n, sizeof *names, cmp_str);
    int total = 0;
    for (int i = 0; i < n && !rc; i++) {
        char *path = join_path(dir, names[i]), *xml = NULL;
        size_t len = 0;
        if (!path) {
            rc = msgf(msg, msg_size, "out of memory");
            break;
        }
        if ((rc = read_all(path, EV_MAX_XML, &xml, &len, msg, msg_size))) {
            free(path);
            break;
        }
        ev_image tmp = {0};
        rc = ev_voc_parse(&tmp, xml, len, path, msg, msg_size);
        free(xml);
        if (!rc && !tmp.name) { /* no <filename>: the annotation's stem with an image extension */
            static const char *const ext[] = {".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"};
            size_t sl = strlen(names[i]) - 4;
            for (size_t k = 0; k < GC_ARRAY_LEN(ext) && !tmp.name; k++) {
                char cand[1024];
                snprintf(cand, sizeof cand, "%.*s%s", (int)GC_MIN(sl, 1000), names[i], ext[k]);
                char *ip = join_path(images_dir, cand);
                struct stat st;
                if (ip && stat(ip, &st) == 0) tmp.name = gc_strdup(cand);
                free(ip);
            }
            if (!tmp.name) rc = msgf(msg, msg_size, "%s: no <filename>, and no image %.*s.jpg/.png in %s", path, (int)sl,
                                     names[i], images_dir);
        }
        total += tmp.n_objs;
        if (!rc && total > EV_MAX_OBJS) rc = msgf(msg, msg_size, "%s: more than %d boxes", dir, EV_MAX_OBJS);
        if (!rc) {
            ev_image *im = image_get(gt, tmp.name);
            for (int k = 0; im && k < tmp.n_objs; k++) {
                ev_obj *o = obj_add(im);
                if (!o) {
                    im = NULL;
                    break;
                }
                *o = tmp.objs[k];
                tmp.objs[k].cls_text = NULL;
            }
            if (!im) rc = msgf(msg, msg_size, "out of memory");
        }
        for (int k = 0; k < tmp.n_objs; k++) free(tmp.objs[k].cls_text);
        free(tmp.objs);
        free(tmp.name);
        free(path);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

static int cmp_image(const void *a, const void *b) {
    return strcmp(((const ev_image *)a)->name, ((const ev_image *)b)->name);
}

int ev_gt_read(ev_gt *gt, const char *boxes, const char *images_dir, char *msg, size_t msg_size) {
    memset(gt, 0, sizeof *gt);
    struct stat st;
    if (stat(boxes, &st) != 0) return msgf(msg, msg_size, "%s: %s", boxes, strerror(errno));
    gt->source = gc_strdup(boxes);
    gt->is_csv = !S_ISDIR(st.st_mode);
    int rc = S_ISDIR(st.st_mode) ? read_voc_dir(gt, boxes, images_dir, msg, msg_size) : read_csv(gt, boxes, msg, msg_size);
    if (rc) return rc;
    if (gt->n == 0) return msgf(msg, msg_size, "%s: no boxes", boxes);
    qsort(gt->v, (size_t)gt->n, sizeof *gt->v, cmp_image);
    for (int i = 0; i < gt->n; i++)
        if (!(gt->v[i].path = join_path(images_dir, gt->v[i].name))) return msgf(msg, msg_size, "out of memory");
    return 0;
}

void ev_gt_free(ev_gt *gt) {
    for (int i = 0; i < gt->n; i++) {
        for (int k = 0; k < gt->v[i].n_objs; k++) free(gt->v[i].objs[k].cls_text);
        free(gt->v[i].objs);
        free(gt->v[i].name);
        free(gt->v[i].path);
    }
    free(gt->v);
    free(gt->source);
    memset(gt, 0, sizeof *gt);
}

/* ---- --task detect: matching ---- */

double ev_mbox_iou(const ev_mbox *a, const ev_mbox *b) {
    return cli_box_iou((const double[4]){a->x0, a->y0, a->x1, a->y1}, (const double[4]){b->x0, b->y0, b->x1, b->y1});
}

typedef struct ev_pair {
    double iou;
    float score;
    int g, d;
} ev_pair;

/* IoU descending, then the higher score, then the lower ground truth, then the lower detection. */
static int cmp_pair(const void *pa, const void *pb) {
    const ev_pair *a = pa, *b = pb;
    if (a->iou != b->iou) return a->iou > b->iou ? -1 : 1;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->g != b->g) return a->g < b->g ? -1 : 1;
    return (a->d > b->d) - (a->d < b->d);
}

int ev_match(const ev_mbox *gt, int n_gt, const ev_mbox *det, int n_det, double min_iou, int *det_of_gt,
             int *gt_of_det, double *iou_of_gt) {
    size_t np = 0;
    for (int g = 0; g < n_gt; g++) {
        det_of_gt[g] = -1;
        iou_of_gt[g] = 0;
        for (int d = 0; d < n_det; d++) {
            if (det[d].cls != gt[g].cls) continue;
            double v = ev_mbox_iou(&gt[g], &det[d]);
            iou_of_gt[g] = fmax(iou_of_gt[g], v);
            np += v >= min_iou;
        }
    }
    for (int d = 0; d < n_det; d++) gt_of_det[d] = -1;
    if (!np) return 0;
    ev_pair *p = gc_malloc2(np, sizeof *p); /* np <= n_gt * n_det */
    if (!p) return -1;
    size_t k = 0;
    for (int g = 0; g < n_gt; g++)
        for (int d = 0; d < n_det; d++) {
            if (det[d].cls != gt[g].cls) continue;
            double v = ev_mbox_iou(&gt[g], &det[d]);
            if (v >= min_iou) p[k++] = (ev_pair){.iou = v, .score = det[d].score, .g = g, .d = d};
        }
    qsort(p, k, sizeof *p, cmp_pair);
    for (size_t i = 0; i < k; i++) {
        if (det_of_gt[p[i].g] >= 0 || gt_of_det[p[i].d] >= 0) continue;
        det_of_gt[p[i].g] = p[i].d;
        gt_of_det[p[i].d] = p[i].g;
        iou_of_gt[p[i].g] = p[i].iou;
    }
    free(p);
    return 0;
}

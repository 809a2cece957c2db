/* Text pieces of the reports: a growable buffer, UTF-8 checking, JSON / HTML escaping, base64 and
 * a small streaming JSON writer. */
#include <math.h>

#include "report.h"

/* ---- buffer ---- */

static int buf_reserve(gc_buf *b, size_t extra) {
    if (b->oom) return -1;
    size_t need;
    if (gc_add_sz(&need, b->n, extra) || gc_add_sz(&need, need, 1)) {
        b->oom = 1;
        return -1;
    }
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void gc_buf_put(gc_buf *b, const void *s, size_t n) {
    if (buf_reserve(b, n)) return;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void gc_buf_puts(gc_buf *b, const char *s) { gc_buf_put(b, s, strlen(s)); }

void gc_buf_printf(gc_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int k = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (k < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)k < sizeof small) {
        gc_buf_put(b, small, (size_t)k);
        return;
    }
    if (buf_reserve(b, (size_t)k)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

void gc_buf_clear(gc_buf *b) {
    b->n = 0;
    if (b->p) b->p[0] = 0;
}

void gc_buf_free(gc_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- UTF-8 ---- */

int32_t gc_utf8_decode(const unsigned char *s, size_t n, int *len) {
    *len = 1;
    if (n == 0) return -1;
    unsigned c = s[0];
    if (c < 0x80) return (int32_t)c;
    int need;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; min = 0x10000; }
    else return -1; /* continuation byte, overlong lead C0/C1, or F5..FF */
    if (n < (size_t)need + 1) return -1;
    for (int i = 1; i <= need; i++) {
        if ((s[i] & 0xC0) != 0x80) return -1;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    *len = need + 1;
    return (int32_t)cp;
}

static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */

void gc_json_escape(gc_buf *b, const char *str) {
    if (!str) {
        gc_buf_puts(b, "null");
        return;
    }
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    gc_buf_put(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        /* copy the longest run that needs nothing */
        size_t j = i;
        while (j < n && s[j] >= 0x20 && s[j] < 0x80 && s[j] != '"' && s[j] != '\\') j++;
        if (j > i) gc_buf_put(b, s + i, j - i);
        i = j;
        if (i >= n) break;
        unsigned c = s[i];
        if (c == '"') { gc_buf_puts(b, "\\\""); i++; }
        else if (c == '\\') { gc_buf_puts(b, "\\\\"); i++; }
        else if (c == '\n') { gc_buf_puts(b, "\\n"); i++; }
        else if (c == '\r') { gc_buf_puts(b, "\\r"); i++; }
        else if (c == '\t') { gc_buf_puts(b, "\\t"); i++; }
        else if (c == '\b') { gc_buf_puts(b, "\\b"); i++; }
        else if (c == '\f') { gc_buf_puts(b, "\\f"); i++; }
        else if (c < 0x20) { gc_buf_printf(b, "\\u%04x", c); i++; }
        else {
            int len;
            int32_t cp = gc_utf8_decode(s + i, n - i, &len);
            if (cp < 0) gc_buf_puts(b, REPLACEMENT);
            else gc_buf_put(b, s + i, (size_t)len);
            i += (size_t)len;
        }
    }
    gc_buf_put(b, "\"", 1);
}

void gc_html_escape(gc_buf *b, const char *str) {
    if (!str) return;
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str), i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] >= 0x20 && s[j] < 0x7F && s[j] != '&' && s[j] != '<' && s[j] != '>' && s[j] != '"' &&
               s[j] != '\'')
            j++;
        if (j > i) gc_buf_put(b, s + i, j - i);
        i = j;
        if (i >= n) break;
        unsigned c = s[i];
        switch (c) {
        case '&': gc_buf_puts(b, "&amp;"); i++; continue;
        case '<': gc_buf_puts(b, "&lt;"); i++; continue;
        case '>': gc_buf_puts(b, "&gt;"); i++; continue;
        case '"': gc_buf_puts(b, "&quot;"); i++; continue;
        case '\'': gc_buf_puts(b, "&#39;"); i++; continue;
        case '\t':
        case '\n': gc_buf_put(b, s + i, 1); i++; continue;
        default: break;
        }
        if (c < 0x20 || c == 0x7F) { /* other control characters are not allowed in HTML text */
            i++;
            continue;
        }
        int len;
        int32_t cp = gc_utf8_decode(s + i, n - i, &len);
        if (cp < 0 || (cp >= 0x80 && cp < 0xA0)) gc_buf_puts(b, REPLACEMENT); /* C1 controls too */
        else gc_buf_put(b, s + i, (size_t)len);
        i += (size_t)len;
    }
}

void gc_base64(gc_buf *b, const void *data, size_t n) {
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = data;
    size_t out_n = (n + 2) / 3 * 4;
    if (buf_reserve(b, out_n)) return;
    char *o = b->p + b->n;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = T[v >> 18];
        *o++ = T[(v >> 12) & 63];
        *o++ = T[(v >> 6) & 63];
        *o++ = T[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        *o++ = T[v >> 18];
        *o++ = T[(v >> 12) & 63];
        *o++ = i + 1 < n ? T[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    b->n += out_n;
    b->p[b->n] = 0;
}

/* ---- JSON writer ---- */

void gc_json_init(gc_json *j, gc_buf *b, int indent) {
    memset(j, 0, sizeof *j);
    j->b = b;
    j->indent = indent;
}

static void newline(gc_json *j) {
    if (!j->indent || (j->inline_from && j->depth >= j->inline_from)) return;
    gc_buf_put(j->b, "\n", 1);
    for (int i = 0; i < (j->depth + j->base) * j->indent; i++) gc_buf_put(j->b, " ", 1);
}

/* Separator and layout before a value (or a key, in objects). */
static int before_item(gc_json *j, int is_key) {
    if (j->depth == 0) {
        if (is_key || j->count[0]) return j->bad = 1, -1; /* one top-level value only */
        j->count[0]++;
        return 0;
    }
    char k = j->kind[j->depth];
    if (k == '{' && !is_key) {
        if (!j->want_value) return j->bad = 1, -1;
        j->want_value = 0;
        return 0;
    }
    if ((k == '{' && (!is_key || j->want_value)) || (k == '[' && is_key)) return j->bad = 1, -1;
    if (j->count[j->depth]++) gc_buf_puts(j->b, j->inline_from && j->depth >= j->inline_from && j->indent ? ", " : ",");
    newline(j);
    return 0;
}

static void open_container(gc_json *j, char kind) {
    if (before_item(j, 0)) return;
    if (j->depth + 1 >= GC_JSON_MAX_DEPTH) {
        j->bad = 1;
        return;
    }
    gc_buf_put(j->b, kind == '{' ? "{" : "[", 1);
    j->depth++;
    j->kind[j->depth] = kind;
    j->count[j->depth] = 0;
}

static void close_container(gc_json *j, char kind) {
    if (j->depth == 0 || j->kind[j->depth] != kind || j->want_value) {
        j->bad = 1;
        return;
    }
    int had = j->count[j->depth], inl = j->inline_from && j->depth >= j->inline_from;
    if (j->inline_from == j->depth) j->inline_from = 0;
    j->depth--;
    if (had && !inl) newline(j);
    gc_buf_put(j->b, kind == '{' ? "}" : "]", 1);
}

void gc_json_begin_object(gc_json *j) { open_container(j, '{'); }
void gc_json_end_object(gc_json *j) { close_container(j, '{'); }
void gc_json_begin_array(gc_json *j) { open_container(j, '['); }
void gc_json_end_array(gc_json *j) { close_container(j, '['); }

void gc_json_begin_array_inline(gc_json *j) {
    int d = j->depth;
    open_container(j, '[');
    if (j->depth == d + 1 && !j->inline_from) j->inline_from = j->depth;
}

/* Shortest decimal form that reads back as the same float. */
void gc_json_number_f(gc_json *j, float v) {
    if (!isfinite(v) || v == 0) {
        gc_json_number(j, v);
        return;
    }
    if (before_item(j, 0)) return;
    char tmp[40];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, (double)v);
        if (strtof(tmp, NULL) == v) break;
    }
    gc_buf_puts(j->b, tmp);
}

void gc_json_key(gc_json *j, const char *key) {
    if (!key || before_item(j, 1)) {
        j->bad = 1;
        return;
    }
    gc_json_escape(j->b, key);
    gc_buf_put(j->b, j->indent ? ": " : ":", j->indent ? 2 : 1);
    j->want_value = 1;
}

void gc_json_string(gc_json *j, const char *s) {
    if (before_item(j, 0)) return;
    gc_json_escape(j->b, s);
}

void gc_json_number(gc_json *j, double v) {
    if (before_item(j, 0)) return;
    if (!isfinite(v)) {
        gc_buf_puts(j->b, "null");
        return;
    }
    if (v == 0) { /* also -0: "-0" is valid JSON but surprises readers */
        gc_buf_puts(j->b, "0");
        return;
    }
    /* the shortest of %.15g / %.17g that reads back exactly */
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.15g", v);
    if (strtod(tmp, NULL) != v) snprintf(tmp, sizeof tmp, "%.17g", v);
    gc_buf_puts(j->b, tmp);
}

void gc_json_int(gc_json *j, int64_t v) {
    if (before_item(j, 0)) return;
    gc_buf_printf(j->b, "%lld", (long long)v);
}

void gc_json_bool(gc_json *j, int v) {
    if (before_item(j, 0)) return;
    gc_buf_puts(j->b, v ? "true" : "false");
}

void gc_json_null(gc_json *j) {
    if (before_item(j, 0)) return;
    gc_buf_puts(j->b, "null");
}

void gc_json_raw(gc_json *j, const char *json) {
    if (!json || before_item(j, 0)) {
        j->bad = 1;
        return;
    }
    gc_buf_puts(j->b, json);
}

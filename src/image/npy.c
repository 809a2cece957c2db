/* NumPy .npy reader and writer. The format: "\x93NUMPY", major, minor, a little-endian header
 * length (2 bytes in 1.0, 4 in 2.0/3.0), then a Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and '\n', then the raw array data. Files are untrusted: everything is
 * validated before anything is allocated from it. */
#define _POSIX_C_SOURCE 200809L
#include "npy.h"
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

static const uint8_t NPY_MAGIC[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

typedef enum npy_kind { K_F4, K_F8, K_I8, K_I4, K_I2, K_I1, K_U4, K_U2, K_U1, K_B1 } npy_kind;

typedef struct npy_type {
    const char *code; /* descr without the byte-order character */
    npy_kind kind;
    size_t size;      /* bytes per element in the file */
    gc_dtype out;     /* dtype of the tensor produced */
} npy_type;

static const npy_type NPY_TYPES[] = {
    {"f4", K_F4, 4, GC_F32}, {"f8", K_F8, 8, GC_F32}, {"i8", K_I8, 8, GC_I64},
    {"i4", K_I4, 4, GC_I64}, {"i2", K_I2, 2, GC_I64}, {"i1", K_I1, 1, GC_I64},
    {"u4", K_U4, 4, GC_I64}, {"u2", K_U2, 2, GC_I64}, {"u1", K_U1, 1, GC_I64},
    {"b1", K_B1, 1, GC_BOOL},
};

static int host_le(void) {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void swap_bytes(uint8_t *p, size_t n, size_t es) {
    if (es < 2) return;
    for (size_t i = 0; i < n; i++, p += es)
        for (size_t a = 0, b = es - 1; a < b; a++, b--) {
            uint8_t t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

/* ---- header dict parsing ----------------------------------------------------------------------- */

typedef struct npy_lex {
    const char *p, *start, *end;
    const char *name; /* file name for messages */
    gc_err *err;
} npy_lex;

typedef struct npy_header {
    const npy_type *type;
    char descr[32];
    int fortran;
    gc_shape shape;
    int seen_descr, seen_fortran, seen_shape;
} npy_header;

static gcam_status lex_fail(npy_lex *L, const char *what) {
    return gc_fail(L->err, GCAM_E_FORMAT, "%s: bad header: %s at offset %d of the header dict", L->name,
                   what, (int)(L->p - L->start));
}

static void lex_ws(npy_lex *L) {
    while (L->p < L->end && (*L->p == ' ' || *L->p == '\t' || *L->p == '\n' || *L->p == '\r')) L->p++;
}

static int lex_peek(const npy_lex *L) { return L->p < L->end ? (unsigned char)*L->p : -1; }

/* A quoted Python string without escapes, copied into buf (cap bytes with the NUL). */
static gcam_status lex_string(npy_lex *L, char *buf, size_t cap, const char *what) {
    int q = lex_peek(L);
    if (q != '\'' && q != '"') {
        char m[96];
        snprintf(m, sizeof m, "expected a quoted string for %s", what);
        return lex_fail(L, m);
    }
    const char *s = ++L->p;
    while (L->p < L->end && *L->p != q) {
        if (*L->p == '\\') return lex_fail(L, "escape sequences in strings are not supported");
        if ((unsigned char)*L->p < 0x20) return lex_fail(L, "control character in a string");
        L->p++;
    }
    if (L->p >= L->end) return lex_fail(L, "unterminated string");
    size_t n = (size_t)(L->p - s);
    L->p++;
    if (n >= cap) {
        char m[96];
        snprintf(m, sizeof m, "string too long for %s", what);
        return lex_fail(L, m);
    }
    memcpy(buf, s, n);
    buf[n] = 0;
    return GCAM_OK;
}

static gcam_status lex_bool(npy_lex *L, int *v) {
    const char *s = L->p;
    while (L->p < L->end && ((*L->p >= 'a' && *L->p <= 'z') || (*L->p >= 'A' && *L->p <= 'Z') ||
                             (*L->p >= '0' && *L->p <= '9') || *L->p == '_'))
        L->p++;
    size_t n = (size_t)(L->p - s);
    if (n == 4 && memcmp(s, "True", 4) == 0) *v = 1;
    else if (n == 5 && memcmp(s, "False", 5) == 0) *v = 0;
    else {
        L->p = s;
        return lex_fail(L, "'fortran_order' must be True or False");
    }
    return GCAM_OK;
}

/* A non-negative Python int (an optional Python 2 'L' suffix is accepted). */
static gcam_status lex_dim(npy_lex *L, int64_t *v) {
    int neg = 0;
    if (lex_peek(L) == '+' || lex_peek(L) == '-') neg = *L->p++ == '-';
    if (lex_peek(L) < '0' || lex_peek(L) > '9') return lex_fail(L, "expected an integer in 'shape'");
    int64_t x = 0;
    while (lex_peek(L) >= '0' && lex_peek(L) <= '9') {
        if (gc_mul_i64(&x, x, 10) || gc_add_i64(&x, x, *L->p - '0'))
            return gc_fail(L->err, GCAM_E_FORMAT, "%s: bad header: dimension in 'shape' is too large",
                           L->name);
        L->p++;
    }
    if (lex_peek(L) == 'L' || lex_peek(L) == 'l') L->p++;
    if (neg && x != 0)
        return gc_fail(L->err, GCAM_E_FORMAT, "%s: bad header: negative dimension -%lld in 'shape'",
                       L->name, (long long)x);
    *v = x;
    return GCAM_OK;
}

/* A tuple of ints: "()", "(3,)", "(2, 3)", "(2, 3,)". "(3)" is an int in Python, so refused. */
static gcam_status lex_shape(npy_lex *L, gc_shape *s) {
    if (lex_peek(L) != '(') return lex_fail(L, "'shape' must be a tuple");
    L->p++;
    s->ndim = 0;
    lex_ws(L);
    if (lex_peek(L) == ')') {
        L->p++;
        return GCAM_OK;
    }
    int commas = 0;
    for (;;) {
        int64_t d = 0;
        gcam_status st = lex_dim(L, &d);
        if (st) return st;
        if (s->ndim >= GC_MAX_DIMS)
            return gc_fail(L->err, GCAM_E_UNSUPPORTED, "%s: array rank exceeds the maximum of %d",
                           L->name, GC_MAX_DIMS);
        s->d[s->ndim++] = d;
        lex_ws(L);
        if (lex_peek(L) == ',') {
            L->p++;
            commas++;
            lex_ws(L);
            if (lex_peek(L) == ')') break;
            continue;
        }
        if (lex_peek(L) == ')') break;
        return lex_fail(L, "expected ',' or ')' in 'shape'");
    }
    L->p++;
    if (s->ndim == 1 && commas == 0) return lex_fail(L, "'shape' (N) is not a tuple (write (N,))");
    return GCAM_OK;
}

static gcam_status parse_descr(npy_lex *L, npy_header *h) {
    const char *d = h->descr;
    char order = '=';
    if (*d == '<' || *d == '>' || *d == '|' || *d == '=') order = *d++;
    for (size_t i = 0; i < GC_ARRAY_LEN(NPY_TYPES); i++) {
        if (strcmp(d, NPY_TYPES[i].code) != 0) continue;
        const npy_type *t = &NPY_TYPES[i];
        if (t->size > 1 && order == '>')
            return gc_fail(L->err, GCAM_E_UNSUPPORTED, "%s: big-endian data ('%s') is not supported",
                           L->name, h->descr);
        if (t->size > 1 && order == '|')
            return gc_fail(L->err, GCAM_E_FORMAT, "%s: bad header: descr '%s' has no byte order",
                           L->name, h->descr);
        if (t->size > 1 && order == '=' && !host_le())
            return gc_fail(L->err, GCAM_E_UNSUPPORTED, "%s: native big-endian data ('%s') is not supported",
                           L->name, h->descr);
        h->type = t;
        return GCAM_OK;
    }
    return gc_fail(L->err, GCAM_E_UNSUPPORTED,
                   "%s: dtype '%s' is not supported (supported: <f4 <f8 <i8 <i4 <i2 |i1 <u4 <u2 |u1 |b1)",
                   L->name, h->descr);
}

static gcam_status parse_header(const char *text, size_t n, const char *name, npy_header *h, gc_err *err) {
    npy_lex L = {.p = text, .start = text, .end = text + n, .name = name, .err = err};
    gcam_status st;
    memset(h, 0, sizeof *h);
    lex_ws(&L);
    if (lex_peek(&L) != '{') return lex_fail(&L, "expected '{'");
    L.p++;
    for (;;) {
        lex_ws(&L);
        if (lex_peek(&L) == '}') break;
        char key[32];
        if ((st = lex_string(&L, key, sizeof key, "a key"))) return st;
        lex_ws(&L);
        if (lex_peek(&L) != ':') return lex_fail(&L, "expected ':'");
        L.p++;
        lex_ws(&L);
        int *seen;
        if (strcmp(key, "descr") == 0) {
            seen = &h->seen_descr;
            if ((st = lex_string(&L, h->descr, sizeof h->descr, "'descr' (structured dtypes are not supported)")))
                return st;
        } else if (strcmp(key, "fortran_order") == 0) {
            seen = &h->seen_fortran;
            if ((st = lex_bool(&L, &h->fortran))) return st;
        } else if (strcmp(key, "shape") == 0) {
            seen = &h->seen_shape;
            if ((st = lex_shape(&L, &h->shape))) return st;
        } else {
            return gc_fail(err, GCAM_E_FORMAT, "%s: bad header: unknown key '%s'", name, key);
        }
        if (*seen) return gc_fail(err, GCAM_E_FORMAT, "%s: bad header: duplicate key '%s'", name, key);
        *seen = 1;
        lex_ws(&L);
        if (lex_peek(&L) == ',') {
            L.p++;
            continue;
        }
        if (lex_peek(&L) == '}') break;
        return lex_fail(&L, "expected ',' or '}'");
    }
    L.p++;
    lex_ws(&L);
    if (L.p != L.end) return lex_fail(&L, "unexpected characters after the dict");
    if (!h->seen_descr || !h->seen_fortran || !h->seen_shape)
        return gc_fail(err, GCAM_E_FORMAT, "%s: bad header: missing key '%s'", name,
                       !h->seen_descr ? "descr" : !h->seen_fortran ? "fortran_order" : "shape");
    return parse_descr(&L, h);
}

/* ---- reading ------------------------------------------------------------------------------------ */

/* Either a FILE or a memory buffer. */
typedef struct npy_src {
    FILE *f;
    const uint8_t *mem;
    size_t size, pos;
} npy_src;

static size_t src_read(npy_src *s, void *buf, size_t n) {
    if (s->f) return fread(buf, 1, n, s->f);
    size_t k = GC_MIN(n, s->size - s->pos);
    if (k) memcpy(buf, s->mem + s->pos, k);
    s->pos += k;
    return k;
}

/* Bytes left after the current position; -1 when not knowable (a pipe). */
static int64_t src_remaining(npy_src *s) {
    if (!s->f) return (int64_t)(s->size - s->pos);
    struct stat st;
    if (fstat(fileno(s->f), &st) != 0 || !S_ISREG(st.st_mode)) return -1;
    off_t at = ftello(s->f);
    if (at < 0 || st.st_size < at) return -1;
    return (int64_t)(st.st_size - at);
}

/* Converts n file elements (little-endian bytes in src) into dst starting at element i0. */
static void convert(void *dst, int64_t i0, const uint8_t *src, size_t n, const npy_type *t) {
    float *df = (float *)dst + (t->out == GC_F32 ? i0 : 0);
    int64_t *di = (int64_t *)dst + (t->out == GC_I64 ? i0 : 0);
    uint8_t *db = (uint8_t *)dst + (t->out == GC_BOOL ? i0 : 0);
    for (size_t i = 0; i < n; i++, src += t->size) {
        switch (t->kind) {
        case K_F4: memcpy(&df[i], src, 4); break;
        case K_F8: {
            double v;
            memcpy(&v, src, 8);
            /* explicit: an out-of-range double -> float conversion is undefined in C */
            df[i] = v > FLT_MAX ? INFINITY : v < -FLT_MAX ? -INFINITY : (float)v;
        } break;
        case K_I8: memcpy(&di[i], src, 8); break;
        case K_I4: { int32_t v; memcpy(&v, src, 4); di[i] = v; } break;
        case K_I2: { int16_t v; memcpy(&v, src, 2); di[i] = v; } break;
        case K_I1: di[i] = (int8_t)src[0]; break;
        case K_U4: { uint32_t v; memcpy(&v, src, 4); di[i] = v; } break;
        case K_U2: { uint16_t v; memcpy(&v, src, 2); di[i] = v; } break;
        case K_U1: di[i] = src[0]; break;
        case K_B1: db[i] = src[0] != 0; break;
        }
    }
}

/* Fortran (column-major) order to C order, in a fresh buffer. */
static void *fortran_to_c(const uint8_t *src, const gc_shape *s, size_t es, int64_t numel) {
    uint8_t *dst = gc_malloc2((size_t)numel, es);
    if (!dst) return NULL;
    int64_t fstride[GC_MAX_DIMS], idx[GC_MAX_DIMS] = {0}, off = 0;
    for (int k = 0; k < s->ndim; k++) fstride[k] = k ? fstride[k - 1] * s->d[k - 1] : 1;
    for (int64_t c = 0; c < numel; c++) {
        memcpy(dst + (size_t)c * es, src + (size_t)off * es, es);
        for (int k = s->ndim - 1; k >= 0; k--) { /* odometer over the C-order index */
            off += fstride[k];
            if (++idx[k] < s->d[k]) break;
            off -= fstride[k] * s->d[k];
            idx[k] = 0;
        }
    }
    return dst;
}

static gcam_status read_src(npy_src *src, const char *name, gc_tensor *out, gc_err *err) {
    uint8_t pre[12];
    size_t got = src_read(src, pre, 8);
    if (got < 6 || memcmp(pre, NPY_MAGIC, 6) != 0)
        return gc_fail(err, GCAM_E_FORMAT, "%s: bad magic (not a .npy file)", name);
    if (got < 8) return gc_fail(err, GCAM_E_FORMAT, "%s: truncated: file ends inside the preamble", name);
    int major = pre[6], minor = pre[7];
    if (major < 1 || major > 3 || minor != 0)
        return gc_fail(err, GCAM_E_UNSUPPORTED, "%s: unsupported .npy format version %d.%d", name, major, minor);
    size_t lenbytes = major == 1 ? 2 : 4;
    if (src_read(src, pre + 8, lenbytes) != lenbytes)
        return gc_fail(err, GCAM_E_FORMAT, "%s: truncated: file ends inside the preamble", name);
    uint32_t hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8;
    if (major > 1) hlen |= (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
    if (hlen == 0) return gc_fail(err, GCAM_E_FORMAT, "%s: bad header: header length is 0", name);
    if (hlen > GC_NPY_MAX_HEADER)
        return gc_fail(err, GCAM_E_FORMAT, "%s: bad header: header length %u exceeds the limit of %u bytes",
                       name, (unsigned)hlen, (unsigned)GC_NPY_MAX_HEADER);
    int64_t rem = src_remaining(src);
    if (rem >= 0 && rem < (int64_t)hlen)
        return gc_fail(err, GCAM_E_FORMAT, "%s: truncated: header of %u bytes but only %lld bytes follow",
                       name, (unsigned)hlen, (long long)rem);
    char *text = malloc(hlen);
    if (!text) return gc_fail(err, GCAM_E_NOMEM, "%s: out of memory reading the header", name);
    if (src_read(src, text, hlen) != hlen) {
        free(text);
        return gc_fail(err, GCAM_E_FORMAT, "%s: truncated: file ends inside the header", name);
    }
    if (memchr(text, 0, hlen)) {
        free(text);
        return gc_fail(err, GCAM_E_FORMAT, "%s: bad header: NUL byte in the header", name);
    }
    npy_header h;
    gcam_status st = parse_header(text, hlen, name, &h, err);
    free(text);
    if (st) return st;

    /* Sizes: dims were checked non-negative; element and byte counts overflow-checked. */
    /* gc_shape_numel also refuses an empty shape whose other extents overflow (strides must fit). */
    int64_t numel = gc_shape_numel(&h.shape), nbytes, obytes;
    if (numel < 0)
        return gc_fail(err, GCAM_E_FORMAT, "%s: bad header: element count of the shape overflows", name);
    if (gc_mul_i64(&nbytes, numel, (int64_t)h.type->size) ||
        gc_mul_i64(&obytes, numel, (int64_t)gc_dtype_size(h.type->out)) || (uint64_t)obytes > SIZE_MAX)
        return gc_fail(err, GCAM_E_FORMAT, "%s: bad header: byte count of the shape overflows", name);
    rem = src_remaining(src);
    if (rem >= 0 && rem < nbytes)
        return gc_fail(err, GCAM_E_FORMAT, "%s: truncated: expected %lld bytes of data, found %lld", name,
                       (long long)nbytes, (long long)rem);
    if (rem > nbytes)
        return gc_fail(err, GCAM_E_FORMAT, "%s: %lld unexpected bytes after the %lld bytes of data", name,
                       (long long)(rem - nbytes), (long long)nbytes);

    void *data = malloc(obytes ? (size_t)obytes : 1);
    if (!data)
        return gc_fail(err, GCAM_E_NOMEM, "%s: out of memory (%lld bytes of data)", name, (long long)obytes);
    /* Stream through a small buffer: converting types never needs a second full-size copy. */
    uint8_t chunk[16384];
    size_t per = sizeof chunk / h.type->size;
    int64_t done = 0;
    while (done < numel) {
        size_t n = (size_t)GC_MIN((int64_t)per, numel - done);
        size_t k = src_read(src, chunk, n * h.type->size);
        if (k != n * h.type->size) {
            free(data);
            return gc_fail(err, GCAM_E_FORMAT, "%s: truncated: expected %lld bytes of data, found %lld", name,
                           (long long)nbytes, (long long)(done * (int64_t)h.type->size + (int64_t)k));
        }
        if (!host_le()) swap_bytes(chunk, n, h.type->size);
        convert(data, done, chunk, n, h.type);
        done += (int64_t)n;
    }
    if (rem < 0 && src_read(src, chunk, 1) == 1) { /* a pipe: trailing data shows only now */
        free(data);
        return gc_fail(err, GCAM_E_FORMAT, "%s: unexpected bytes after the %lld bytes of data", name,
                       (long long)nbytes);
    }
    if (src->f && ferror(src->f)) {
        free(data);
        return gc_fail(err, GCAM_E_IO, "%s: read error", name);
    }
    if (h.fortran && h.shape.ndim > 1 && numel > 0) { /* transposed to C order, as documented */
        void *c = fortran_to_c(data, &h.shape, gc_dtype_size(h.type->out), numel);
        free(data);
        if (!c) return gc_fail(err, GCAM_E_NOMEM, "%s: out of memory transposing fortran-order data", name);
        data = c;
    }
    out->dtype = h.type->out;
    out->shape = h.shape;
    out->data = data;
    return GCAM_OK;
}

gcam_status gc_npy_read(const char *path, gc_tensor *out, gc_err *err) {
    if (!out) return gc_fail(err, GCAM_E_ARG, "gc_npy_read: out is NULL");
    out->data = NULL;
    if (!path) return gc_fail(err, GCAM_E_ARG, "gc_npy_read: path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f) return gc_fail(err, GCAM_E_IO, "%s: cannot open: %s", path, strerror(errno));
    npy_src s = {.f = f};
    gcam_status st = read_src(&s, path, out, err);
    fclose(f);
    return st;
}

gcam_status gc_npy_read_memory(const void *buf, size_t size, const char *name, gc_tensor *out, gc_err *err) {
    if (!out) return gc_fail(err, GCAM_E_ARG, "gc_npy_read_memory: out is NULL");
    out->data = NULL;
    if (!name) name = "(memory)";
    if (!buf && size) return gc_fail(err, GCAM_E_ARG, "%s: buffer is NULL", name);
    npy_src s = {.mem = buf, .size = size};
    return read_src(&s, name, out, err);
}

/* ---- writing ------------------------------------------------------------------------------------ */

static gcam_status write_all(FILE *f, const gc_tensor *t, size_t nbytes, size_t es, const uint8_t *hdr,
                             size_t hdr_len) {
    if (fwrite(hdr, 1, hdr_len, f) != hdr_len) return GCAM_E_IO;
    if (nbytes == 0) return GCAM_OK;
    if (host_le() || es < 2) return fwrite(t->data, 1, nbytes, f) == nbytes ? GCAM_OK : GCAM_E_IO;
    uint8_t chunk[16384]; /* big-endian host: swap a copy, chunk by chunk */
    for (size_t off = 0; off < nbytes;) {
        size_t k = GC_MIN(sizeof chunk, nbytes - off);
        memcpy(chunk, (const uint8_t *)t->data + off, k);
        swap_bytes(chunk, k / es, es);
        if (fwrite(chunk, 1, k, f) != k) return GCAM_E_IO;
        off += k;
    }
    return GCAM_OK;
}

/* The format 1.0 header of t into hdr (at least NPY_HDR_MAX bytes): its length in *total, and the
 * data's bytes in *nbytes. */
#define NPY_HDR_MAX (64 + GC_MAX_DIMS * 24 + 128)
static gcam_status make_header(const char *name, const gc_tensor *t, uint8_t *hdr, size_t *total, size_t *nbytes,
                              gc_err *err) {
    const char *descr = t->dtype == GC_F32 ? "<f4" : t->dtype == GC_I64 ? "<i8" : t->dtype == GC_BOOL ? "|b1" : NULL;
    if (!descr) return gc_fail(err, GCAM_E_ARG, "%s: cannot write dtype %d", name, (int)t->dtype);
    if (t->shape.ndim < 0 || t->shape.ndim > GC_MAX_DIMS)
        return gc_fail(err, GCAM_E_ARG, "%s: cannot write a tensor of rank %d", name, t->shape.ndim);
    int ok;
    *nbytes = gc_tensor_bytes(t->dtype, &t->shape, &ok);
    if (!ok) return gc_fail(err, GCAM_E_ARG, "%s: tensor shape is unknown, negative or too large", name);
    if (*nbytes && !t->data) return gc_fail(err, GCAM_E_ARG, "%s: tensor has no data", name);

    /* Preamble + dict + padding + '\n', a multiple of 64 bytes as numpy writes it. */
    char dict[64 + GC_MAX_DIMS * 24];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < t->shape.ndim; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%lld", i ? ", " : "", (long long)t->shape.d[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", t->shape.ndim == 1 ? "," : "");
    size_t pre = 10;
    *total = gc_align64(pre + (size_t)n + 1);
    memcpy(hdr, NPY_MAGIC, 6);
    hdr[6] = 1;
    hdr[7] = 0;
    size_t hlen = *total - pre;
    hdr[8] = (uint8_t)(hlen & 0xff);
    hdr[9] = (uint8_t)(hlen >> 8);
    memcpy(hdr + pre, dict, (size_t)n);
    memset(hdr + pre + n, ' ', *total - pre - (size_t)n - 1);
    hdr[*total - 1] = '\n';
    return GCAM_OK;
}

gcam_status gc_npy_encode(const gc_tensor *t, uint8_t **data, size_t *size, gc_err *err) {
    if (!t || !data || !size) return gc_fail(err, GCAM_E_ARG, "gc_npy_encode: NULL argument");
    uint8_t hdr[NPY_HDR_MAX];
    size_t total, nbytes, all;
    gcam_status st = make_header(".npy", t, hdr, &total, &nbytes, err);
    if (st) return st;
    if (gc_add_sz(&all, total, nbytes)) return gc_fail(err, GCAM_E_ARG, ".npy: tensor too large");
    uint8_t *b = malloc(all ? all : 1);
    if (!b) return gc_fail(err, GCAM_E_NOMEM, ".npy: out of memory");
    memcpy(b, hdr, total);
    if (nbytes) memcpy(b + total, t->data, nbytes);
    size_t es = gc_dtype_size(t->dtype);
    if (!host_le() && es >= 2) swap_bytes(b + total, nbytes / es, es); /* .npy says little-endian */
    *data = b;
    *size = all;
    return GCAM_OK;
}

gcam_status gc_npy_write(const char *path, const gc_tensor *t, gc_err *err) {
    if (!path || !t) return gc_fail(err, GCAM_E_ARG, "gc_npy_write: NULL argument");
    uint8_t hdr[NPY_HDR_MAX];
    size_t total, nbytes;
    gcam_status hst = make_header(path, t, hdr, &total, &nbytes, err);
    if (hst) return hst;

    size_t plen = strlen(path), tlen;
    if (gc_add_sz(&tlen, plen, 16)) return gc_fail(err, GCAM_E_ARG, "gc_npy_write: path too long");
    char *tmp = malloc(tlen);
    if (!tmp) return gc_fail(err, GCAM_E_NOMEM, "%s: out of memory", path);
    snprintf(tmp, tlen, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        gcam_status st = gc_fail(err, GCAM_E_IO, "%s: cannot create a temporary file: %s", path, strerror(errno));
        free(tmp);
        return st;
    }
    (void)fchmod(fd, 0644); /* mkstemp makes 0600; a data file is normally world-readable */
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        free(tmp);
        return gc_fail(err, GCAM_E_IO, "%s: cannot open the temporary file: %s", path, strerror(e));
    }
    gcam_status st = write_all(f, t, nbytes, gc_dtype_size(t->dtype), hdr, total);
    int e = errno;
    if (fflush(f) != 0 || (gc_write_fsync() && fsync(fileno(f)) != 0)) {
        e = errno;
        st = GCAM_E_IO;
    }
    if (fclose(f) != 0 && st == GCAM_OK) {
        e = errno;
        st = GCAM_E_IO;
    }
    if (st == GCAM_OK && rename(tmp, path) != 0) {
        e = errno;
        st = GCAM_E_IO;
    }
    if (st != GCAM_OK) {
        unlink(tmp);
        free(tmp);
        return gc_fail(err, GCAM_E_IO, "%s: write failed: %s", path, strerror(e));
    }
    free(tmp);
    return GCAM_OK;
}

/* The skeleton of a ModelProto (see wire.h). Only three message types are entered: ModelProto
 * (field 7, graph), GraphProto (field 5, initializer) and TensorProto (field 9, raw_data); every other
 * field is copied as it is, after its extent has been checked, and protobuf-c checks its contents.
 * Entered messages are rewritten with their new length, so the skeleton is a valid message whenever
 * the file is. */
#include "wire.h"

enum { MSG_MODEL, MSG_GRAPH, MSG_TENSOR };

/* protobuf-c reads nested lengths as 32-bit numbers: the skeleton stays below 2 GiB. */
#define GC_WIRE_MAX ((size_t)INT32_MAX)

typedef struct wfield {
    uint32_t num;
    int wt;          /* wire type: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 */
    size_t start;    /* first byte of the tag */
    size_t tag_end;  /* one past the tag */
    size_t val;      /* first byte of the value (past the length, for wire type 2) */
    size_t end;      /* one past the value */
} wfield;

typedef struct walker {
    const uint8_t *buf;
    uint8_t *out; /* the skeleton being written: len bytes used of cap */
    size_t len, cap;
    gc_skeleton *s;
    size_t cap_pl;
    gc_err *err;
} walker;

size_t gc_wire_varint(const uint8_t *p, size_t n, uint64_t *v) {
    uint64_t r = 0;
    for (size_t i = 0; i < 10 && i < n; i++) {
        uint64_t c = p[i];
        if (i == 9 && c > 1) return 0; /* the 10th byte carries bit 63 only */
        r |= (c & 0x7f) << (7 * i);
        if (!(c & 0x80)) {
            *v = r;
            return i + 1;
        }
    }
    return 0;
}

static size_t put_varint(uint8_t *b, uint64_t v) {
    size_t k = 0;
    for (; v >= 0x80; v >>= 7) b[k++] = (uint8_t)(v | 0x80);
    b[k++] = (uint8_t)v;
    return k;
}

static gcam_status corrupt(walker *w, const char *what, size_t at) {
    return gc_fail(w->err, GCAM_E_FORMAT, "not a valid ONNX model (truncated or corrupt protobuf: %s at byte %zu)",
                   what, at);
}

/* Reads the field at *pos (< end) into f and moves *pos past it; nothing is read at or past end. */
static gcam_status next_field(walker *w, size_t *pos, size_t end, wfield *f) {
    uint64_t tag, v;
    f->start = *pos;
    size_t k = gc_wire_varint(w->buf + *pos, end - *pos, &tag);
    if (!k) return corrupt(w, "a field tag runs past its message or is overlong", *pos);
    if (tag > UINT32_MAX || (tag >> 3) == 0) return corrupt(w, "an invalid field tag", *pos);
    f->num = (uint32_t)(tag >> 3);
    f->wt = (int)(tag & 7);
    size_t p = f->tag_end = *pos + k;
    switch (f->wt) {
    case 0:
        if (!(k = gc_wire_varint(w->buf + p, end - p, &v))) return corrupt(w, "a varint runs past its message or is overlong", p);
        f->val = p;
        f->end = p + k;
        break;
    case 1:
    case 5: {
        size_t n = f->wt == 1 ? 8 : 4;
        if (end - p < n) return corrupt(w, "a fixed-size value runs past its message", p);
        f->val = p;
        f->end = p + n;
        break;
    }
    case 2:
        if (!(k = gc_wire_varint(w->buf + p, end - p, &v))) return corrupt(w, "a length runs past its message or is overlong", p);
        if (v > end - (p + k)) return corrupt(w, "a length runs past the end of its message", p);
        f->val = p + k;
        f->end = f->val + (size_t)v;
        break;
    default: return corrupt(w, "an unsupported wire type (groups are not used by ONNX)", *pos);
    }
    *pos = f->end;
    return GCAM_OK;
}

static gcam_status emit(walker *w, const void *src, size_t n) {
    if (!n) return GCAM_OK;
    if (n > w->cap - w->len) {
        size_t need, cap = w->cap ? w->cap : 4096;
        if (gc_add_sz(&need, w->len, n) || need > GC_WIRE_MAX)
            return gc_fail(w->err, GCAM_E_LIMIT, "the model's graph is larger than the 2 GiB protobuf allows");
        while (cap < need) cap *= 2;
        uint8_t *o = realloc(w->out, cap);
        if (!o) return gc_fail(w->err, GCAM_E_NOMEM, "out of memory reading the model");
        w->out = o;
        w->cap = cap;
    }
    memcpy(w->out + w->len, src, n);
    w->len += n;
    return GCAM_OK;
}

static gcam_status emit_varint(walker *w, uint64_t v) {
    uint8_t b[10];
    return emit(w, b, put_varint(b, v));
}

/* raw_data -> a marker holding the payload's index (the last marker wins, as the last raw_data does). */
static gcam_status emit_marker(walker *w, const wfield *f) {
    gc_skeleton *s = w->s;
    if (s->n_pl == w->cap_pl) {
        size_t cap = w->cap_pl ? w->cap_pl * 2 : 64;
        gc_payload *pl = gc_malloc2(cap, sizeof *pl);
        if (!pl) return gc_fail(w->err, GCAM_E_NOMEM, "out of memory reading the model");
        if (s->n_pl) memcpy(pl, s->pl, s->n_pl * sizeof *pl);
        free(s->pl);
        s->pl = pl;
        w->cap_pl = cap;
    }
    s->pl[s->n_pl] = (gc_payload){.off = f->val, .len = f->end - f->val};
    s->pl_bytes += f->end - f->val; /* payloads are disjoint parts of the file: no overflow */
    gcam_status rc = emit_varint(w, (uint64_t)GC_WIRE_MARKER_FIELD << 3);
    if (!rc) rc = emit_varint(w, s->n_pl++);
    return rc;
}

static gcam_status copy_message(walker *w, int kind, size_t pos, size_t end);

/* A field holding a message we enter: its tag, the rewritten body, the body's new length before it. */
static gcam_status copy_sub(walker *w, int kind, const wfield *f) {
    static const uint8_t gap[5] = {0}; /* room for the length: bodies stay below 2^35 */
    gcam_status rc = emit(w, w->buf + f->start, f->tag_end - f->start);
    size_t lenpos = w->len;
    if (!rc) rc = emit(w, gap, sizeof gap);
    size_t body = w->len;
    if (!rc) rc = copy_message(w, kind, f->val, f->end);
    if (rc) return rc;
    size_t blen = w->len - body;
    uint8_t b[10];
    size_t k = put_varint(b, blen); /* blen < 2^31: at most 5 bytes */
    memcpy(w->out + lenpos, b, k);
    memmove(w->out + lenpos + k, w->out + body, blen);
    w->len = lenpos + k + blen;
    return GCAM_OK;
}

static int sub_kind(int kind, uint32_t num) {
    if (kind == MSG_MODEL && num == 7) return MSG_GRAPH;  /* ModelProto.graph */
    if (kind == MSG_GRAPH && num == 5) return MSG_TENSOR; /* GraphProto.initializer */
    return -1;
}

static gcam_status copy_message(walker *w, int kind, size_t pos, size_t end) {
    wfield f = {0};
    while (pos < end) {
        gcam_status rc = next_field(w, &pos, end, &f);
        if (rc) return rc;
        int sub = f.wt == 2 ? sub_kind(kind, f.num) : -1;
        if (sub >= 0) rc = copy_sub(w, sub, &f);
        else if (kind == MSG_TENSOR && f.num == 9 && f.wt == 2) rc = emit_marker(w, &f);
        else if (kind == MSG_TENSOR && f.num == GC_WIRE_MARKER_FIELD) rc = GCAM_OK; /* never taken from the file */
        else rc = emit(w, w->buf + f.start, f.end - f.start);
        if (rc) return rc;
    }
    return GCAM_OK;
}

gcam_status gc_wire_skeleton(gc_skeleton *s, const uint8_t *buf, size_t size, gc_err *err) {
    memset(s, 0, sizeof *s);
    walker w = {.buf = buf, .s = s, .err = err};
    gcam_status rc = size ? copy_message(&w, MSG_MODEL, 0, size) : GCAM_OK;
    if (rc) {
        free(w.out);
        gc_wire_skeleton_free(s);
        return rc;
    }
    s->data = w.out;
    s->size = w.len;
    return GCAM_OK;
}

void gc_wire_skeleton_free(gc_skeleton *s) {
    free(s->data);
    free(s->pl);
    memset(s, 0, sizeof *s);
}

/* ONNX ModelProto -> IR. Every field is untrusted: counts, dims, data sizes, names and external
 * data locations are checked before use. */
#include "onnx.h"

#include <errno.h>
#include <math.h>
#include <stdalign.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../graph/model.h"
#include "onnx.pb-c.h"
#include "source.h"
#include "wire.h"

/* Largest file we read: protobuf itself cannot represent messages above 2 GiB. */
#define GC_MAX_MODEL_BYTES ((size_t)2 << 30)

gcam_status gc_read_file(const char *path, uint8_t **data, size_t *size, size_t max_bytes, gc_err *err) {
    *data = NULL;
    *size = 0;
    int fd;
    size_t n;
    gcam_status rc = gc_open_regular(path, max_bytes, &fd, &n, err);
    if (rc) return rc;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) rc = gc_fail(err, GCAM_E_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    else if (n && gc_pread_full(fd, buf, n, 0, path, err)) rc = gc_fail(err, GCAM_E_IO, "%s: read error", path);
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    *data = buf;
    *size = n;
    return GCAM_OK;
}

static uint16_t rd_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd_u64(const uint8_t *p) { return (uint64_t)rd_u32(p) | ((uint64_t)rd_u32(p + 4) << 32); }

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float f;
    if (exp == 0) {
        f = ldexpf((float)man, -24); /* zero or subnormal */
        return sign ? -f : f;
    }
    uint32_t bits = exp == 31 ? (sign | 0x7f800000u | (man << 13))
                              : (sign | ((exp + 112) << 23) | (man << 13));
    memcpy(&f, &bits, 4);
    return f;
}

static float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* ONNX element type -> (our dtype, bytes per element in raw_data). */
static int map_elem_type(int32_t t, gc_dtype *dt, size_t *raw_size) {
    switch (t) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: *dt = GC_F32; *raw_size = 4; return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: *dt = GC_F32; *raw_size = 8; return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: *dt = GC_F32; *raw_size = 2; return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: *dt = GC_F32; *raw_size = 2; return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: *dt = GC_I64; *raw_size = 8; return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: *dt = GC_I64; *raw_size = 8; return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: *dt = GC_I64; *raw_size = 4; return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: *dt = GC_I64; *raw_size = 4; return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: *dt = GC_I64; *raw_size = 2; return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: *dt = GC_I64; *raw_size = 2; return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: *dt = GC_I64; *raw_size = 1; return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: *dt = GC_I64; *raw_size = 1; return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: *dt = GC_BOOL; *raw_size = 1; return 1;
    default: return 0;
    }
}

static const char *elem_type_name(int32_t t) {
    static const char *names[] = {"UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32",
                                  "INT64", "STRING", "BOOL", "FLOAT16", "DOUBLE", "UINT32", "UINT64",
                                  "COMPLEX64", "COMPLEX128", "BFLOAT16"};
    return t >= 0 && t < (int32_t)GC_ARRAY_LEN(names) ? names[t] : "unknown";
}

/* Converts element e of a raw little-endian buffer of ONNX type t into dst (of dtype dt). */
static void convert_raw(void *dst, gc_dtype dt, const uint8_t *src, int32_t t, int64_t n) {
    for (int64_t e = 0; e < n; e++) {
        const uint8_t *p;
        switch (t) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: {
            p = src + 4 * e;
            uint32_t b = rd_u32(p);
            memcpy((float *)dst + e, &b, 4);
            break;
        }
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: {
            uint64_t b = rd_u64(src + 8 * e);
            double d;
            memcpy(&d, &b, 8);
            ((float *)dst)[e] = (float)d;
            break;
        }
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: ((float *)dst)[e] = half_to_float(rd_u16(src + 2 * e)); break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: ((float *)dst)[e] = bf16_to_float(rd_u16(src + 2 * e)); break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: ((int64_t *)dst)[e] = (int64_t)rd_u64(src + 8 * e); break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: ((int64_t *)dst)[e] = (int32_t)rd_u32(src + 4 * e); break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: ((int64_t *)dst)[e] = rd_u32(src + 4 * e); break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: ((int64_t *)dst)[e] = (int16_t)rd_u16(src + 2 * e); break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: ((int64_t *)dst)[e] = rd_u16(src + 2 * e); break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: ((int64_t *)dst)[e] = (int8_t)src[e]; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: ((int64_t *)dst)[e] = src[e]; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: ((uint8_t *)dst)[e] = src[e] != 0; break;
        default: break;
        }
    }
    (void)dt;
}

/* Checks that an external-data location stays inside base_dir: relative, no "..", no NUL. */
static int safe_relative_path(const char *loc) {
    if (!loc[0] || loc[0] == '/') return 0;
    const char *p = loc;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') return 0;
        if (!slash) break;
        p = slash + 1;
    }
    return 1;
}

/* The external data's location, offset and length (-1: not given) from its key/value pairs. */
static gcam_status external_fields(const Onnx__TensorProto *tp, const char **loc, int64_t *offset, int64_t *length,
                                   const char *what, gc_err *err) {
    *loc = NULL;
    *offset = 0;
    *length = -1;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *kv = tp->external_data[i];
        if (!kv || !kv->key || !kv->value) continue;
        char *end = NULL;
        if (strcmp(kv->key, "location") == 0) *loc = kv->value;
        else if (strcmp(kv->key, "offset") == 0) {
            errno = 0;
            *offset = strtoll(kv->value, &end, 10);
            if (errno || !end || *end || *offset < 0)
                return gc_fail(err, GCAM_E_FORMAT, "%s: external data offset '%s' is not a valid number", what, kv->value);
        } else if (strcmp(kv->key, "length") == 0) {
            errno = 0;
            *length = strtoll(kv->value, &end, 10);
            if (errno || !end || *end || *length < 0)
                return gc_fail(err, GCAM_E_FORMAT, "%s: external data length '%s' is not a valid number", what, kv->value);
        }
    }
    return GCAM_OK;
}

/* A tensor's raw little-endian bytes, wherever they are. */
typedef struct raw_src {
    const uint8_t *p; /* len bytes */
    size_t len;
    int fd;           /* the file that holds them, read at off for copies (-1: copied from p) */
    uint64_t off;
    int in_map;       /* p lies in a mapping a tensor may point into */
} raw_src;

enum { PLACED_MALLOC, PLACED_ARENA, PLACED_MAP };

/* The alignment raw bytes of ONNX type t need to be used as they are for dtype dt; 0 when they must
 * be converted (other widths, booleans normalised to 0/1, a big-endian host). */
static size_t as_is_align(int32_t t, gc_dtype dt) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (t == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && dt == GC_F32) return alignof(float);
    if ((t == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || t == ONNX__TENSOR_PROTO__DATA_TYPE__UINT64) && dt == GC_I64)
        return alignof(int64_t);
#endif
    (void)t;
    (void)dt;
    return 0;
}

/* out->data from raw bytes: pointing into the mapping when they are aligned and need no conversion,
 * else copied into the arena (a model's constant) or converted into a malloc'ed buffer. */
static gcam_status place_raw(gc_tensor *out, int *placed, const raw_src *rs, int32_t t, int64_t n, size_t bytes,
                             gc_load *L, int to_model, const char *what, gc_err *err) {
    *placed = PLACED_MALLOC;
    size_t align = as_is_align(t, out->dtype);
    if (align && to_model && L && L->m && rs->len) { /* (an empty tensor gets its own byte below) */
        if (rs->in_map && (uintptr_t)rs->p % align == 0) {
            out->data = (void *)(uintptr_t)rs->p; /* read-only: the mapping is PROT_READ */
            *placed = PLACED_MAP;
            L->m->bytes_mapped += rs->len;
            return GCAM_OK;
        }
        void *dst = gc_load_arena(L, rs->len, err);
        if (!dst) return err->code;
        if (rs->fd >= 0) { /* not through the mapping: its pages are not faulted in */
            gcam_status rc = gc_pread_full(rs->fd, dst, rs->len, rs->off, what, err);
            if (rc) return rc;
        } else {
            memcpy(dst, rs->p, rs->len);
        }
        out->data = dst;
        *placed = PLACED_ARENA;
        L->m->bytes_copied += rs->len;
        return GCAM_OK;
    }
    if (!(out->data = malloc(bytes ? bytes : 1)))
        return gc_fail(err, GCAM_E_NOMEM, "%s: out of memory for %zu bytes", what, bytes);
    convert_raw(out->data, out->dtype, rs->p, t, n);
    if (to_model && L && L->m) L->m->bytes_converted += bytes;
    gc_load_drop_pages(L, rs->p, rs->len);
    return GCAM_OK;
}

/* Raw bytes in an external data file: checked, mapped, placed; the mapping is kept when the tensor
 * points into it. */
static gcam_status place_external(gc_tensor *out, int *placed, const Onnx__TensorProto *tp, int64_t n, size_t bytes,
                                  size_t want, gc_load *L, int to_model, const char *what, gc_err *err) {
    const char *loc;
    int64_t offset, length;
    gcam_status rc = external_fields(tp, &loc, &offset, &length, what, err);
    if (rc) return rc;
    if (!loc) return gc_fail(err, GCAM_E_FORMAT, "%s: external data without a 'location'", what);
    if (!L || !L->base_dir)
        return gc_fail(err, GCAM_E_IO, "%s: external data '%s' but the model was loaded from memory without a base folder", what, loc);
    if (!safe_relative_path(loc))
        return gc_fail(err, GCAM_E_FORMAT, "%s: external data location '%s' points outside the model's folder", what, loc);
    if (length >= 0 && (uint64_t)length != want)
        return gc_fail(err, GCAM_E_FORMAT, "%s: external data length %lld does not match the %zu bytes its dims need", what, (long long)length, want);
    gc_ext x;
    if ((rc = gc_ext_open(&x, L->base_dir, loc, (uint64_t)offset, want, what, err))) return rc; /* checks the file's size first */
    raw_src rs = {.p = x.p, .len = want, .fd = x.fd, .off = (uint64_t)offset, .in_map = 1};
    rc = place_raw(out, placed, &rs, tp->data_type, n, bytes, L, to_model, what, err);
    if (!rc && *placed == PLACED_MAP && (rc = gc_ext_keep(&x, L->m, err))) out->data = NULL;
    gc_ext_close(&x);
    return rc;
}

/* The payload index of a TensorProto's marker (the last one), or -1 (see wire.h). */
static int64_t payload_index(const Onnx__TensorProto *tp) {
    int64_t idx = -1;
    for (unsigned i = 0; i < tp->base.n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *u = &tp->base.unknown_fields[i];
        uint64_t v;
        if (u->tag == GC_WIRE_MARKER_FIELD && u->wire_type == PROTOBUF_C_WIRE_TYPE_VARINT && u->data &&
            gc_wire_varint(u->data, u->len, &v) && v < INT64_MAX)
            idx = (int64_t)v;
    }
    return idx;
}

/* The typed fields (float_data, int64_data, ...) -> out->data (malloc'ed). */
static gcam_status typed_data(gc_tensor *out, const Onnx__TensorProto *tp, int64_t n, size_t bytes, const char *what,
                              gc_err *err) {
    int32_t t = tp->data_type;
    size_t have;
    switch (t) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: have = tp->n_float_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: have = tp->n_double_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: have = tp->n_int64_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: have = tp->n_uint64_data; break;
    default: have = tp->n_int32_data; break;
    }
    if (have != (size_t)n)
        return gc_fail(err, GCAM_E_FORMAT, "%s: holds %zu values but dims %s need %lld", what, have,
                       gc_shape_str(&out->shape, (char[96]){0}, 96), (long long)n);
    if (!(out->data = malloc(bytes ? bytes : 1)))
        return gc_fail(err, GCAM_E_NOMEM, "%s: out of memory for %zu bytes", what, bytes);
    for (int64_t e = 0; e < n; e++) {
        switch (t) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: ((float *)out->data)[e] = tp->float_data[e]; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: ((float *)out->data)[e] = (float)tp->double_data[e]; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
            ((float *)out->data)[e] = half_to_float((uint16_t)tp->int32_data[e]);
            break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
            ((float *)out->data)[e] = bf16_to_float((uint16_t)tp->int32_data[e]);
            break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: ((int64_t *)out->data)[e] = tp->int64_data[e]; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
            ((int64_t *)out->data)[e] = (int64_t)tp->uint64_data[e];
            break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: ((uint8_t *)out->data)[e] = tp->int32_data[e] != 0; break;
        default: ((int64_t *)out->data)[e] = tp->int32_data[e]; break;
        }
    }
    return GCAM_OK;
}

/* TensorProto -> gc_tensor, converted to F32 / I64 / BOOL. With to_model (an initialiser of L's
 * model) the data may lie in one of the model's regions (*in_region set; not to be freed), else it
 * is malloc'ed. */
static gcam_status convert_tensor(gc_tensor *out, int *in_region, const Onnx__TensorProto *tp, gc_load *L,
                                  int to_model, const char *what, gc_err *err) {
    memset(out, 0, sizeof *out);
    *in_region = 0;
    if (tp->n_dims > GC_MAX_DIMS)
        return gc_fail(err, GCAM_E_UNSUPPORTED, "%s: %zu dimensions (at most %d supported)", what, tp->n_dims, GC_MAX_DIMS);
    out->shape.ndim = (int)tp->n_dims;
    for (size_t i = 0; i < tp->n_dims; i++) {
        if (tp->dims[i] < 0)
            return gc_fail(err, GCAM_E_FORMAT, "%s: negative dimension %lld", what, (long long)tp->dims[i]);
        out->shape.d[i] = tp->dims[i];
    }
    size_t raw_es;
    if (!map_elem_type(tp->data_type, &out->dtype, &raw_es))
        return gc_fail(err, GCAM_E_UNSUPPORTED, "%s: element type %s is not supported", what, elem_type_name(tp->data_type));
    if (tp->segment) return gc_fail(err, GCAM_E_UNSUPPORTED, "%s: segmented tensors are not supported", what);
    int64_t n = gc_shape_numel(&out->shape);
    int ok = 0;
    size_t bytes = gc_tensor_bytes(out->dtype, &out->shape, &ok), raw_bytes;
    if (n < 0 || !ok || gc_mul_sz(&raw_bytes, (size_t)n, raw_es))
        return gc_fail(err, GCAM_E_FORMAT, "%s: element count overflows", what);
    /* The data's presence and size are checked before the buffer is allocated: a tiny file must
     * not make us allocate what its dims claim. */
    gcam_status rc;
    int32_t t = tp->data_type;
    int placed = PLACED_MALLOC, from_file = 0;
    int64_t pi = L && L->sk ? payload_index(tp) : -1;
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        rc = place_external(out, &placed, tp, n, bytes, raw_bytes, L, to_model, what, err);
    } else if (pi >= 0 || tp->has_raw_data) {
        raw_src rs = {.p = tp->raw_data.data, .len = tp->raw_data.len, .fd = -1};
        if (pi >= 0) {
            if ((uint64_t)pi >= L->sk->n_pl) return gc_fail(err, GCAM_E_INTERNAL, "%s: raw_data lost", what);
            const gc_payload *pl = &L->sk->pl[pi];
            rs = (raw_src){.p = L->base + pl->off, .len = pl->len, .fd = L->fd, .off = pl->off, .in_map = L->borrow};
            from_file = 1;
        }
        if (rs.len != raw_bytes)
            rc = gc_fail(err, GCAM_E_FORMAT, "%s: raw_data holds %zu bytes but dims %s of %s need %zu", what,
                         rs.len, gc_shape_str(&out->shape, (char[96]){0}, 96), elem_type_name(t), raw_bytes);
        else rc = place_raw(out, &placed, &rs, t, n, bytes, L, to_model, what, err);
    } else {
        rc = typed_data(out, tp, n, bytes, what, err);
    }
    if (!rc && placed != PLACED_MALLOC) {
        if (placed == PLACED_MAP && from_file) L->borrowed += raw_bytes;
        *in_region = 1;
    } else if (rc && placed == PLACED_MALLOC) {
        free(out->data);
    }
    if (rc) out->data = NULL;
    return rc;
}

gcam_status gc_onnx_read_tensor_pb(gc_tensor *out, const uint8_t *data, size_t size, const char *what,
                                   gc_err *err) {
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, size, data);
    if (!tp) return gc_fail(err, GCAM_E_FORMAT, "%s: not a valid TensorProto (truncated or corrupt protobuf)", what);
    int in_region;
    gcam_status rc = convert_tensor(out, &in_region, tp, NULL, 0, what, err);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return rc;
}

static gcam_status convert_attr(gc_attr *a, const Onnx__AttributeProto *ap, gc_load *L, const char *node_desc,
                                gc_err *err) {
    memset(a, 0, sizeof *a);
    a->name = gc_strdup(ap->name ? ap->name : "");
    if (!a->name) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
    int type = ap->has_type ? (int)ap->type : 0;
    if (!type) { /* IR < 3 models leave the type unset: infer it from the field present */
        if (ap->n_floats) type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
        else if (ap->n_ints) type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
        else if (ap->n_strings) type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
        else if (ap->t) type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
        else if (ap->g) type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
        else if (ap->has_s) type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
        else if (ap->has_i) type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
        else if (ap->has_f) type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    }
    switch (type) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: a->type = GC_ATTR_FLOAT; a->f = ap->f; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: a->type = GC_ATTR_INT; a->i = ap->i; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
        a->type = GC_ATTR_STRING;
        a->s = gc_strndup(ap->s.data ? (const char *)ap->s.data : "", ap->s.data ? ap->s.len : 0);
        if (!a->s) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
        a->n = ap->s.len;
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
        a->type = GC_ATTR_FLOATS;
        a->n = ap->n_floats;
        a->floats = gc_malloc2(ap->n_floats, sizeof(float));
        if (!a->floats) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
        if (ap->n_floats) memcpy(a->floats, ap->floats, ap->n_floats * sizeof(float));
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
        a->type = GC_ATTR_INTS;
        a->n = ap->n_ints;
        a->ints = gc_malloc2(ap->n_ints, sizeof(int64_t));
        if (!a->ints) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
        if (ap->n_ints) memcpy(a->ints, ap->ints, ap->n_ints * sizeof(int64_t));
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS:
        a->type = GC_ATTR_STRINGS;
        a->strings = gc_calloc2(ap->n_strings, sizeof(char *));
        if (!a->strings) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
        a->n = ap->n_strings;
        for (size_t i = 0; i < ap->n_strings; i++) {
            a->strings[i] = gc_strndup(ap->strings[i].data ? (const char *)ap->strings[i].data : "",
                                       ap->strings[i].data ? ap->strings[i].len : 0);
            if (!a->strings[i]) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
        }
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
        a->type = GC_ATTR_TENSOR;
        if (!ap->t) return gc_fail(err, GCAM_E_FORMAT, "%s: attribute '%s' has no tensor", node_desc, a->name);
        char what[512];
        snprintf(what, sizeof what, "%s: attribute '%s'", node_desc, a->name);
        int in_region; /* an attribute's tensor is its own (malloc'ed): never in a region */
        return convert_tensor(&a->t, &in_region, ap->t, L, 0, what, err);
    }
    default:
        a->type = GC_ATTR_GRAPH; /* graphs, sparse tensors, type protos: the op will refuse them */
        break;
    }
    return GCAM_OK;
}

static void read_value_type(gc_value *v, const Onnx__ValueInfoProto *vi) {
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) return;
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    size_t rs;
    if (tt->has_elem_type) map_elem_type(tt->elem_type, &v->dtype, &rs);
    if (!tt->shape || tt->shape->n_dim > GC_MAX_DIMS) return;
    v->shape.ndim = (int)tt->shape->n_dim;
    for (size_t i = 0; i < tt->shape->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        v->shape.d[i] = -1;
        if (!d) continue;
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && d->dim_value >= 0)
            v->shape.d[i] = d->dim_value;
        else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && d->dim_param)
            v->dim_names[i] = gc_strdup(d->dim_param);
    }
}

static const char *str_or(const char *s, const char *def) { return s && s[0] ? s : def; }

/* The default-domain opset and the producer's name. */
static void load_header(gc_model *m, const Onnx__ModelProto *mp) {
    m->opset = 0;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *os = mp->opset_import[i];
        if (os && (!os->domain || !os->domain[0] || strcmp(os->domain, "ai.onnx") == 0))
            m->opset = (int)GC_MIN(os->version, 1000);
    }
    if (mp->n_opset_import == 0) m->opset = 1; /* IR version 1/2 models predate opset_import */
    /* A model may import only other domains (training ops): its nodes are then reported as
     * unsupported; a default-domain node without an imported opset is an error (gc_model_finish). */
    char prod[256];
    snprintf(prod, sizeof prod, "%s%s%s", str_or(mp->producer_name, ""),
             mp->producer_version && mp->producer_version[0] ? " " : "", str_or(mp->producer_version, ""));
    m->producer = gc_strdup(prod);
}

/* Initialisers: the model's constant values. */
static gcam_status load_initializers(gc_model *m, const Onnx__GraphProto *g, gc_load *L) {
    gc_err *err = &m->err;
    gcam_status rc;
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *tp = g->initializer[i];
        if (!tp || !tp->name || !tp->name[0]) {
            return gc_fail(err, GCAM_E_FORMAT, "initialiser #%zu has no name", i);
        }
        int vi = gc_model_add_value(m, tp->name);
        if (vi == -2) {
            return gc_fail(err, GCAM_E_FORMAT, "initialiser '%s' is defined twice", tp->name);
        }
        if (vi < 0) {
            return gc_fail(err, GCAM_E_NOMEM, "out of memory");
        }
        char what[300];
        snprintf(what, sizeof what, "initialiser '%s'", tp->name);
        gc_tensor t;
        int in_region;
        if ((rc = convert_tensor(&t, &in_region, tp, L, 1, what, err))) return rc;
        gc_value *v = &m->values[vi];
        v->dtype = t.dtype;
        v->shape = t.shape;
        v->const_data = t.data;
        v->const_in_region = in_region;
    }
    if (g->n_sparse_initializer) {
        return gc_fail(err, GCAM_E_UNSUPPORTED, "sparse initialisers are not supported");
    }
    return GCAM_OK;
}

/* Graph inputs that are not initialisers are what the caller feeds. */
static gcam_status load_inputs(gc_model *m, const Onnx__GraphProto *g) {
    gc_err *err = &m->err;
    m->inputs = gc_calloc2(g->n_input + 1, sizeof(int));
    m->outputs = gc_calloc2(g->n_output + 1, sizeof(int));
    if (!m->inputs || !m->outputs) {
        return gc_fail(err, GCAM_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < g->n_input; i++) {
        const Onnx__ValueInfoProto *vi = g->input[i];
        if (!vi || !vi->name || !vi->name[0]) {
            return gc_fail(err, GCAM_E_FORMAT, "graph input #%zu has no name", i);
        }
        int idx = gc_model_find_value(m, vi->name);
        if (idx >= 0 && m->values[idx].const_data) continue; /* an initialiser listed as input (IR < 4) */
        if (idx >= 0) {
            return gc_fail(err, GCAM_E_FORMAT, "graph input '%s' is listed twice", vi->name);
        }
        idx = gc_model_add_value(m, vi->name);
        if (idx < 0) {
            return gc_fail(err, GCAM_E_NOMEM, "out of memory");
        }
        gc_value *v = &m->values[idx];
        read_value_type(v, vi);
        if (v->dtype == GCAM_UNDEFINED || (vi->type && vi->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && vi->type->tensor_type &&
                                           vi->type->tensor_type->elem_type == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16)) {
            return gc_fail(err, GCAM_E_UNSUPPORTED, "graph input '%s' is not a tensor of a supported type", vi->name);
        }
        if (v->shape.ndim == 0 && (!vi->type || !vi->type->tensor_type || !vi->type->tensor_type->shape))
            v->shape.ndim = -1; /* no shape given at all */
        v->is_input = 1;
        m->inputs[m->n_inputs++] = idx;
    }
    return GCAM_OK;
}

/* Nodes, first pass: every node and the values it produces, so that inputs can refer to nodes
 * listed later. */
static gcam_status load_node_outputs(gc_model *m, const Onnx__GraphProto *g) {
    gc_err *err = &m->err;
    m->nodes = gc_calloc2(g->n_node + 1, sizeof(gc_node));
    if (!m->nodes) {
        return gc_fail(err, GCAM_E_NOMEM, "out of memory");
    }
    for (size_t ni = 0; ni < g->n_node; ni++) {
        const Onnx__NodeProto *np = g->node[ni];
        gc_node *n = &m->nodes[m->n_nodes++];
        n->op = -1;
        if (!np || !np->op_type || !np->op_type[0]) {
            return gc_fail(err, GCAM_E_FORMAT, "node #%zu has no op type", ni);
        }
        char autoname[64];
        snprintf(autoname, sizeof autoname, "%s_%zu", np->op_type, ni);
        n->name = gc_strdup(np->name && np->name[0] ? np->name : autoname);
        n->op_type = gc_strdup(np->op_type);
        n->domain = gc_strdup(np->domain ? np->domain : "");
        n->n_in = (int)GC_MIN(np->n_input, 1u << 20);
        n->n_out = (int)GC_MIN(np->n_output, 1u << 20);
        n->in = gc_calloc2((size_t)n->n_in + 1, sizeof(int));
        n->out = gc_calloc2((size_t)n->n_out + 1, sizeof(int));
        if (!n->name || !n->op_type || !n->domain || !n->in || !n->out) {
            return gc_fail(err, GCAM_E_NOMEM, "out of memory");
        }
        int is_default = !n->domain[0] || strcmp(n->domain, "ai.onnx") == 0;
        n->opset = is_default ? m->opset : 0;
        for (size_t i = 0; i < np->n_output; i++) {
            const char *name = np->output[i];
            if (!name || !name[0]) {
                n->out[i] = -1;
                continue;
            }
            int vi = gc_model_add_value(m, name);
            if (vi == -2) {
                return gc_fail(err, GCAM_E_FORMAT, "node '%s' (%s): output '%s' is already produced elsewhere "
                             "(duplicate tensor name)", n->name, n->op_type, name);
            }
            if (vi < 0) {
                return gc_fail(err, GCAM_E_NOMEM, "out of memory");
            }
            m->values[vi].producer = (int)ni;
            n->out[i] = vi;
        }
    }
    return GCAM_OK;
}

/* Nodes, second pass: inputs bound to their values, and attributes. */
static gcam_status load_node_inputs(gc_model *m, const Onnx__GraphProto *g, gc_load *L) {
    gc_err *err = &m->err;
    gcam_status rc;
    for (size_t ni = 0; ni < g->n_node; ni++) {
        const Onnx__NodeProto *np = g->node[ni];
        gc_node *n = &m->nodes[ni];
        for (size_t i = 0; i < np->n_input; i++) {
            const char *name = np->input[i];
            if (!name || !name[0]) {
                n->in[i] = -1;
                continue;
            }
            int vi = gc_model_find_value(m, name);
            if (vi < 0) {
                return gc_fail(err, GCAM_E_FORMAT, "node '%s' (%s): input '%s' is not produced by any node, "
                             "initialiser or graph input", n->name, n->op_type, name);
            }
            n->in[i] = vi;
        }
        n->attrs = gc_calloc2(np->n_attribute + 1, sizeof(gc_attr));
        if (!n->attrs) {
            return gc_fail(err, GCAM_E_NOMEM, "out of memory");
        }
        char desc[300];
        snprintf(desc, sizeof desc, "node '%s' (%s)", n->name, n->op_type);
        for (size_t i = 0; i < np->n_attribute; i++) {
            if (!np->attribute[i]) continue;
            rc = convert_attr(&n->attrs[n->n_attrs], np->attribute[i], L, desc, err);
            n->n_attrs++;
            if (rc) return rc;
        }
    }
    return GCAM_OK;
}

/* Graph outputs: values some node or input produces. */
static gcam_status load_outputs(gc_model *m, const Onnx__GraphProto *g) {
    gc_err *err = &m->err;
    for (size_t i = 0; i < g->n_output; i++) {
        const Onnx__ValueInfoProto *vi = g->output[i];
        int idx = vi && vi->name ? gc_model_find_value(m, vi->name) : -1;
        if (idx < 0) {
            return gc_fail(err, GCAM_E_FORMAT, "graph output '%s' is not produced by any node or input",
                         vi && vi->name ? vi->name : "?");
        }
        gc_value *v = &m->values[idx];
        if (v->dtype == GCAM_UNDEFINED && v->shape.ndim <= 0 && !v->const_data) read_value_type(v, vi);
        if (vi->type && vi->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && vi->type->tensor_type &&
            vi->type->tensor_type->elem_type == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16) {
            return gc_fail(err, GCAM_E_UNSUPPORTED, "graph output '%s' is bfloat16, which gradcam does not produce", vi->name);
        }
        v->is_output = 1;
        m->outputs[m->n_outputs++] = idx;
    }

    /* Declared shapes of intermediates (value_info) are hints only: shapes are inferred anyway. */
    return GCAM_OK;
}

/* The skeleton unpacked by protobuf-c, then the IR; tensors read their payloads through L. */
static gcam_status load_model(gc_load *L) {
    gc_model *m = L->m;
    gc_skeleton sk;
    gcam_status rc = gc_wire_skeleton(&sk, L->base, L->size, &m->err);
    if (rc) return rc;
    L->sk = &sk;
    L->copy_hint = sk.pl_bytes + 64 * sk.n_pl; /* no overflow: n_pl <= file size */
    static const uint8_t empty[1];
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, sk.size, sk.data ? sk.data : empty);
    free(sk.data); /* protobuf-c copied what it keeps */
    sk.data = NULL;
    const Onnx__GraphProto *g = mp ? mp->graph : NULL;
    if (!mp) {
        rc = gc_fail(&m->err, GCAM_E_FORMAT, "not a valid ONNX model (truncated or corrupt protobuf)");
    } else if (!g) {
        rc = gc_fail(&m->err, GCAM_E_FORMAT, "the model has no graph");
    } else {
        load_header(m, mp);
        rc = load_initializers(m, g, L);
        if (!rc) rc = load_inputs(m, g);
        if (!rc) rc = load_node_outputs(m, g);
        if (!rc) rc = load_node_inputs(m, g, L);
        if (!rc) rc = load_outputs(m, g);
    }
    if (mp) onnx__model_proto__free_unpacked(mp, NULL);
    gc_load_arena_seal(L);
    gc_wire_skeleton_free(&sk);
    L->sk = NULL;
    return rc;
}

gcam_status gc_onnx_load(gc_model *m, const uint8_t *data, size_t size, const char *base_dir) {
    /* the caller's buffer may go once we return: every payload is copied */
    gc_load L = {.m = m, .base_dir = base_dir, .base = data, .size = size, .fd = -1};
    return load_model(&L);
}

gcam_status gc_onnx_load_file(gc_model *m, const char *path, const char *base_dir) {
    int fd;
    size_t size;
    gcam_status rc = gc_open_regular(path, GC_MAX_MODEL_BYTES, &fd, &size, &m->err);
    if (rc) return rc;
    void *base = NULL;
    if (size) {
        /* read-only: nothing may write into the weights; private: a change to the file by someone
         * else is not ours to see (until the page is read) */
        base = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (base == MAP_FAILED) {
            close(fd);
            return gc_fail(&m->err, GCAM_E_IO, "%s: cannot map the file: %s", path, strerror(errno));
        }
        if (gc_model_add_region(m, base, size, 1)) {
            munmap(base, size);
            close(fd);
            return gc_fail(&m->err, GCAM_E_NOMEM, "out of memory");
        }
    }
    gc_load L = {.m = m, .base_dir = base_dir, .base = base, .size = size, .fd = fd, .borrow = 1};
    rc = load_model(&L);
    close(fd);
    if (base && !L.borrowed) gc_model_drop_region(m, base); /* no tensor points into it */
    return rc;
}

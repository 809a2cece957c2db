/* IR basics: dtypes, shapes, attribute look-ups. */
#include "ir.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

const char *gc_dtype_name(gc_dtype t) {
    switch (t) {
    case GC_F32: return "float32";
    case GC_I64: return "int64";
    case GC_BOOL: return "bool";
    default: return "undefined";
    }
}

size_t gc_dtype_size(gc_dtype t) {
    switch (t) {
    case GC_F32: return 4;
    case GC_I64: return 8;
    case GC_BOOL: return 1;
    default: return 0;
    }
}

int64_t gc_shape_numel(const gc_shape *s) {
    if (s->ndim < 0 || s->ndim > GC_MAX_DIMS) return -1;
    int64_t n = 1, nz = 1; /* nz: the nonzero extents' product, so strides of empty tensors fit too */
    for (int i = 0; i < s->ndim; i++) {
        if (s->d[i] < 0 || gc_mul_i64(&n, n, s->d[i]) || gc_mul_i64(&nz, nz, s->d[i] ? s->d[i] : 1)) return -1;
    }
    return n;
}

size_t gc_tensor_bytes(gc_dtype t, const gc_shape *s, int *ok) {
    *ok = 0;
    int64_t n = gc_shape_numel(s);
    size_t es = gc_dtype_size(t), b;
    if (n < 0 || es == 0 || (uint64_t)n > SIZE_MAX || gc_mul_sz(&b, (size_t)n, es)) return 0;
    *ok = 1;
    return b;
}

int gc_shape_eq(const gc_shape *a, const gc_shape *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->d[i] != b->d[i]) return 0;
    return 1;
}

const char *gc_shape_str(const gc_shape *s, char *buf, size_t n) {
    size_t used = 0;
    if (n == 0) return buf;
    buf[0] = 0;
    if (s->ndim < 0) {
        snprintf(buf, n, "(?)");
        return buf;
    }
    used += (size_t)snprintf(buf + used, n - used, "(");
    for (int i = 0; i < s->ndim && used < n; i++) {
        if (s->d[i] < 0) used += (size_t)snprintf(buf + used, n - used, "%s?", i ? ", " : "");
        else used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)s->d[i]);
    }
    if (used < n) snprintf(buf + used, n - used, ")");
    return buf;
}

const gc_attr *gc_attr_find(const gc_node *n, const char *name) {
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}

int64_t gc_attr_int(const gc_node *n, const char *name, int64_t def) {
    const gc_attr *a = gc_attr_find(n, name);
    return a && a->type == GC_ATTR_INT ? a->i : def;
}

float gc_attr_float(const gc_node *n, const char *name, float def) {
    const gc_attr *a = gc_attr_find(n, name);
    if (!a) return def;
    if (a->type == GC_ATTR_FLOAT) return a->f;
    if (a->type == GC_ATTR_INT) return (float)a->i;
    return def;
}

const char *gc_attr_str(const gc_node *n, const char *name, const char *def) {
    const gc_attr *a = gc_attr_find(n, name);
    return a && a->type == GC_ATTR_STRING ? a->s : def;
}

size_t gc_attr_ints(const gc_node *n, const char *name, const int64_t **v) {
    const gc_attr *a = gc_attr_find(n, name);
    if (!a || a->type != GC_ATTR_INTS) { static const int64_t none[1]; *v = none; return 0; } /* not NULL: memcpy(.., v, 0) */
    *v = a->ints;
    return a->n;
}

size_t gc_attr_floats(const gc_node *n, const char *name, const float **v) {
    const gc_attr *a = gc_attr_find(n, name);
    if (!a || a->type != GC_ATTR_FLOATS) { static const float none[1]; *v = none; return 0; } /* not NULL */
    *v = a->floats;
    return a->n;
}

void gc_model_release(const gc_model *m, const void *p, size_t n) {
    if (!m || !p || !n) return;
    const uintptr_t a = (uintptr_t)p, b = a + n;
    for (int i = 0; i < m->n_regions; i++) {
        const gc_region *r = &m->regions[i];
        const uintptr_t lo = (uintptr_t)r->base, hi = lo + r->size;
        if (!r->file || a < lo || b > hi || b < a) continue;
        const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), a2 = (a + pg - 1) / pg * pg, b2 = b / pg * pg;
        if (b2 > a2) madvise((void *)a2, b2 - a2, MADV_DONTNEED); /* advice: a failure changes nothing */
        return;
    }
}


/* Helpers shared by the op families: broadcasting, strides, constant int inputs, axes. */
#include "ops.h"

gcam_status gc_broadcast_shape(gc_shape *out, const gc_shape *a, const gc_shape *b) {
    int nd = GC_MAX(a->ndim, b->ndim);
    if (a->ndim < 0 || b->ndim < 0 || nd > GC_MAX_DIMS) return GCAM_E_SHAPE;
    out->ndim = nd;
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
        if (da == db || db == 1) out->d[i] = da;
        else if (da == 1) out->d[i] = db;
        else return GCAM_E_SHAPE;
    }
    return GCAM_OK;
}

void gc_shape_strides(int64_t *strides, const gc_shape *s) {
    int64_t acc = 1;
    for (int i = s->ndim - 1; i >= 0; i--) {
        strides[i] = acc;
        acc *= s->d[i];
    }
}

void gc_broadcast_strides(int64_t *strides, const gc_shape *in, const gc_shape *out) {
    int64_t own[GC_MAX_DIMS];
    gc_shape_strides(own, in);
    int off = out->ndim - in->ndim;
    for (int i = 0; i < out->ndim; i++) {
        int j = i - off;
        strides[i] = (j >= 0 && in->d[j] != 1) ? own[j] : 0;
    }
}

int64_t gc_tensor_ints(const gc_tensor *t, int64_t *v, int64_t max) {
    if (!t || !t->data) return -1;
    int64_t n = gc_shape_numel(&t->shape);
    if (n < 0 || n > max) return -1;
    if (t->dtype == GC_I64) {
        memcpy(v, t->data, (size_t)n * sizeof(int64_t));
    } else if (t->dtype == GC_BOOL) {
        for (int64_t i = 0; i < n; i++) v[i] = ((const uint8_t *)t->data)[i];
    } else {
        return -1;
    }
    return n;
}

int gc_norm_axis(int64_t axis, int ndim) {
    if (axis < -ndim || axis >= ndim) return -1;
    return (int)(axis < 0 ? axis + ndim : axis);
}

/* Arena packing for a plan (alloc.h). */
#include "alloc.h"

#include <stdlib.h>

#include "../common.h"

typedef struct gc_abuf {
    size_t size;
    int first, last;
    size_t offset;
    void **target; /* where the pointer goes once the arena exists */
} gc_abuf;

struct gc_alloc {
    gc_abuf *b;
    int n, cap;
};

gc_alloc *gc_alloc_new(void) { return calloc(1, sizeof(gc_alloc)); }

void gc_alloc_free(gc_alloc *a) {
    if (!a) return;
    free(a->b);
    free(a);
}

int gc_alloc_reserve(gc_alloc *a, size_t size, int first, int last, void **target) {
    if (a->n == a->cap) {
        int cap = a->cap ? a->cap * 2 : 256;
        size_t bytes;
        if (gc_mul_sz(&bytes, (size_t)cap, sizeof(gc_abuf))) return -1;
        gc_abuf *nb = realloc(a->b, bytes);
        if (!nb) return -1;
        a->b = nb;
        a->cap = cap;
    }
    size_t sz = gc_align64(size ? size : 1);
    if (!sz) return -1;
    a->b[a->n++] = (gc_abuf){.size = sz, .first = first, .last = last, .target = target};
    return 0;
}

static int cmp_size_desc(const void *x_, const void *y_) {
    const gc_abuf *x = *(const gc_abuf *const *)x_, *y = *(const gc_abuf *const *)y_;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->first - y->first;
}

static int cmp_offset(const void *x_, const void *y_) {
    const gc_abuf *x = *(const gc_abuf *const *)x_, *y = *(const gc_abuf *const *)y_;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

size_t gc_alloc_pack(gc_alloc *a) {
    int n = a->n;
    if (n == 0) return 0;
    gc_abuf **order = gc_malloc2((size_t)n, sizeof(gc_abuf *));
    gc_abuf **live = gc_malloc2((size_t)n, sizeof(gc_abuf *)); /* placed buffers overlapping in time */
    size_t total = 0;
    if (!order || !live) {
        total = SIZE_MAX;
        goto out;
    }
    for (int i = 0; i < n; i++) order[i] = &a->b[i];
    qsort(order, (size_t)n, sizeof *order, cmp_size_desc);
    for (int i = 0; i < n; i++) {
        gc_abuf *b = order[i];
        int nl = 0;
        for (int j = 0; j < i; j++)
            if (order[j]->first <= b->last && b->first <= order[j]->last) live[nl++] = order[j];
        qsort(live, (size_t)nl, sizeof *live, cmp_offset);
        size_t off = 0, end;
        for (int j = 0; j < nl; j++) {
            if (live[j]->offset >= off && live[j]->offset - off >= b->size) break;
            if (gc_add_sz(&end, live[j]->offset, live[j]->size)) { total = SIZE_MAX; goto out; }
            if (end > off) off = end;
        }
        b->offset = off;
        if (gc_add_sz(&end, off, b->size)) { total = SIZE_MAX; goto out; }
        if (end > total) total = end;
    }
out:
    free(order);
    free(live);
    return total;
}

void gc_alloc_bind(const gc_alloc *a, uint8_t *arena) {
    for (int i = 0; i < a->n; i++) *a->b[i].target = arena + a->b[i].offset;
}

/* Internal helpers shared by every part of libgradcam: error records,
 * overflow-checked size arithmetic, small string utilities. */
#ifndef GC_COMMON_H
#define GC_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcam.h"

/* An error record: a status and one human-readable line. Every handle owns one. */
/* A pixel box, x1 and y1 exclusive: pixels x0 <= x < x1, y0 <= y < y1 (empty when x1 <= x0 or
 * y1 <= y0). The one box type of the project: maps' localisation boxes, evaluation ground truth,
 * detections. Outputs that print inclusive bounds (results.json's map "box") convert there. */
typedef struct gc_box {
    int64_t x0, y0, x1, y1;
} gc_box;

typedef struct gc_err {
    gcam_status code;
    char msg[1024];
} gc_err;

/* Records the first failure only: a later, less specific message never hides the root cause. */
gcam_status gc_fail(gc_err *e, gcam_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void gc_err_clear(gc_err *e);

/* Overflow-checked arithmetic: return 0 on success, non-zero on overflow. */
static inline int gc_mul_sz(size_t *r, size_t a, size_t b) { return __builtin_mul_overflow(a, b, r); }
static inline int gc_add_sz(size_t *r, size_t a, size_t b) { return __builtin_add_overflow(a, b, r); }
static inline int gc_mul_i64(int64_t *r, int64_t a, int64_t b) { return __builtin_mul_overflow(a, b, r); }
static inline int gc_add_i64(int64_t *r, int64_t a, int64_t b) { return __builtin_add_overflow(a, b, r); }

/* Rounds n up to a multiple of 64 (cache line / SIMD friendly); 0 on overflow. */
static inline size_t gc_align64(size_t n) {
    size_t r;
    if (gc_add_sz(&r, n, 63)) return 0;
    return r & ~(size_t)63;
}

/* Min-max to [0, 1] over the finite values; non-finite values and a constant array give 0. */
void gc_minmax01(float *dst, const float *src, size_t n);

/* CPUs this process may run on (its affinity mask: taskset, cgroup cpusets), else those online. */
int gc_cpu_count(void);

char *gc_strdup(const char *s);
char *gc_strndup(const char *s, size_t n);
/* Allocation of a*b bytes with overflow check; NULL on overflow or failure. */
void *gc_malloc2(size_t a, size_t b);
void *gc_calloc2(size_t a, size_t b);

#define GC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define GC_MAX(a, b) ((a) > (b) ? (a) : (b))
#define GC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif

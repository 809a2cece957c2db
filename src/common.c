#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "common.h"

#include <math.h>
#include <sched.h>
#include <unistd.h>

gcam_status gc_fail(gc_err *e, gcam_status code, const char *fmt, ...) {
    if (!e) return code;
    if (e->code != GCAM_OK) return e->code; /* keep the first, most specific message */
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

void gc_err_clear(gc_err *e) {
    e->code = GCAM_OK;
    e->msg[0] = 0;
}

char *gc_strdup(const char *s) { return s ? gc_strndup(s, strlen(s)) : NULL; }

char *gc_strndup(const char *s, size_t n) {
    size_t sz;
    if (gc_add_sz(&sz, n, 1)) return NULL;
    char *r = malloc(sz);
    if (!r) return NULL;
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

void *gc_malloc2(size_t a, size_t b) {
    size_t n;
    if (gc_mul_sz(&n, a, b)) return NULL;
    return malloc(n ? n : 1);
}

void *gc_calloc2(size_t a, size_t b) {
    size_t n;
    if (gc_mul_sz(&n, a, b)) return NULL;
    return calloc(n ? n : 1, 1);
}

int gc_cpu_count(void) {
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < 4096 ? (int)n : 1;
}

void gc_minmax01(float *dst, const float *src, size_t n) {
    float mn = INFINITY, mx = -INFINITY;
    /* compares, not fminf/fmaxf: only finite values take part, so the same extremes, and no call
     * into libm per element (fminf's NaN rules keep GCC from inlining it: 11% of a demo request) */
    for (size_t i = 0; i < n; i++) {
        const float v = src[i];
        const int f = isfinite(v);
        mn = f && v < mn ? v : mn;
        mx = f && v > mx ? v : mx;
    }
    float r = mx - mn;
    for (size_t i = 0; i < n; i++) dst[i] = r > 0 && isfinite(src[i]) ? (src[i] - mn) / r : 0;
}

/* gc_kisa: the instruction set a kernel may use (isa.h). */
#include "isa.h"

static int cpu_isa_detect(void) {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    __builtin_cpu_init();
    int v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
    int v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    return v4 ? GC_KISA_AVX512 : v3 ? GC_KISA_AVX2 : GC_KISA_BASE;
#else
    return GC_KISA_BASE;
#endif
}

int gc_cpu_isa(void) {
    static int isa = -1; /* a benign race: every thread computes the same value */
    int v = __atomic_load_n(&isa, __ATOMIC_RELAXED);
    if (v < 0) {
        v = cpu_isa_detect();
        __atomic_store_n(&isa, v, __ATOMIC_RELAXED);
    }
    return v;
}

int gc_kisa(const gc_kctx *k) {
    const gc_tuning *t = gc_ktune(k);
    int v = gc_cpu_isa();
    /* GCAM_ISA (tuning.h: 1 generic, 2 avx2, 3 avx512) caps these kernels as it caps sgemm.c's */
    if (t->isa == 2 && v > GC_KISA_AVX2) v = GC_KISA_AVX2;
    if (t->isa == 1) v = GC_KISA_BASE;
    return v;
}

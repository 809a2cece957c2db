/* Kernels compiled for several instruction sets and picked per call: one body (an always-inline
 * function written as plain loops that GCC vectorises), instantiated three times by GC_ISA_FN:
 * the build's baseline (x86-64-v2), AVX2+FMA (x86-64-v3) and AVX-512 (x86-64-v4, 512-bit vectors).
 * gc_kisa(k) says which one a kernel may use: the best the CPU (and OS) has, capped by the tuning
 * knob GCAM_ISA=avx2|generic (the one that also lowers src/ops/sgemm.c's path), so tests run every
 * path on any machine that has it. (GC_KISA_*: not sgemm.h's GC_ISA_* numbering, which has a BLAS 0.)
 *
 * The build is ISO C (-std=c17: no FMA contraction), and bodies keep a fixed order of operations
 * (reductions in explicit lanes), so the three instances give bit-identical results. */
#ifndef GC_OPS_ISA_H
#define GC_OPS_ISA_H

#include "ops.h"

#include <string.h>

enum { GC_KISA_BASE = 0, GC_KISA_AVX2 = 1, GC_KISA_AVX512 = 2 };

/* The instruction set kernel k may use (GC_ISA_*). */
int gc_kisa(const gc_kctx *k);
/* The CPU's best, whatever the knobs say (tests: which paths exist here). */
int gc_cpu_isa(void);

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GC_ISA_T2 __attribute__((target("arch=x86-64-v3")))
#define GC_ISA_T3 __attribute__((target("arch=x86-64-v4,prefer-vector-width=512")))
#else
#define GC_ISA_T2
#define GC_ISA_T3
#endif
#define GC_INLINE static inline __attribute__((always_inline))

/* 4 floats as one value (GCC's vector extension, native on every path; wider ones get lowered
 * to scalar compares on the narrower paths), for loops GCC would not vectorise itself (a max with
 * NaN detection). Macros: a function returning a vector draws -Wpsabi. */
typedef float gc_f4 __attribute__((vector_size(16)));
typedef int32_t gc_i4 __attribute__((vector_size(16)));
#define GC_F4_LOAD(v, p) memcpy(&(v), (p), sizeof(gc_f4))
#define GC_F4_SET(x) ((gc_f4){x, x, x, x})
/* m ? a : b lane by lane (m: all ones or zero, as comparisons give) */
#define GC_F4_SEL(m, a, b) ((gc_f4)(((gc_i4)(a) & (m)) | ((gc_i4)(b) & ~(m))))

/* static void name(int isa, params): calls body(args) compiled for that instruction set. */
#define GC_ISA_FN(name, body, params, args)                                                        \
    static void name##_i0 params { body args; }                                                    \
    GC_ISA_T2 static void name##_i1 params { body args; }                                          \
    GC_ISA_T3 static void name##_i2 params { body args; }                                          \
    static void (*const name##_tab[3]) params = {name##_i0, name##_i1, name##_i2};

#endif

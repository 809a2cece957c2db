/* Element-wise math shared by kernels that must agree bit for bit: act.c's standalone Sigmoid,
 * Mul-fused SiLU and Clip, and the same activations fused into a producer's last write (sgemm.c's
 * epilogue, conv.c's Winograd and depthwise writes). Plain scalar C, always inlined, so the loops
 * calling it vectorise on whatever instruction set their function is built for; the build is ISO
 * C (-std=c17: no FMA contraction) and every operation is IEEE-exact or bitwise, so a vectorised
 * loop and a scalar one give the same bits. */
#ifndef GC_OPS_KMATH_H
#define GC_OPS_KMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define GC_KM_INLINE static inline __attribute__((always_inline))

/* c ? a : b on the bit patterns. With a plain select GCC sinks the work feeding it into one
 * branch, where -ftrapping-math (the default) then forbids vectorising the loop. */
GC_KM_INLINE float gc_bsel(int c, float a, float b) {
    uint32_t m = 0u - (uint32_t)(c != 0), ua, ub, r;
    float f;
    memcpy(&ua, &a, 4);
    memcpy(&ub, &b, 4);
    r = (ua & m) | (ub & ~m);
    memcpy(&f, &r, 4);
    return f;
}

/* e^x without a libm call, so loops over it vectorise: x = n ln2 + r (Cody-Waite), the Cephes
 * expf polynomial for e^r, and 2^n applied in two halves so both ends of the range (n = 128,
 * denormal results down to -103.97) come out right. Measured <= 1.35 ulp; 0 below -103.97,
 * inf above 88.72, NaN stays NaN. */
GC_KM_INLINE float gc_exp_fast(float x) {
    const float hi = 88.7228393554688f, lo = -103.972084045410f;
    const int over = x > hi, under = x < lo;
    /* adding 1.5 * 2^23 rounds to an integer n, which then sits in t's low mantissa bits */
    float t = x * 1.44269504088896341f + 12582912.0f, n = t - 12582912.0f, r, p, s1, s2;
    r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    uint32_t tb, b1, b2;
    memcpy(&tb, &t, 4);
    int32_t ni = (int32_t)(tb - 0x4B400000u), n1 = ni >> 1, n2 = ni - n1;
    b1 = (uint32_t)(n1 + 127) << 23;
    b2 = (uint32_t)(n2 + 127) << 23;
    memcpy(&s1, &b1, 4);
    memcpy(&s2, &b2, 4);
    float y = p * s1 * s2; /* garbage when out of range: replaced below */
    y = gc_bsel(over, INFINITY, y);
    return gc_bsel(under, 0.0f, y);
}

/* 1 / (1 + e^-x), from e^-|x| so nothing overflows for large |x| (act.c's Sigmoid) */
GC_KM_INLINE float gc_sigmoid_fast(float x) {
    const float e = gc_exp_fast(-fabsf(x)), r = 1.0f / (1.0f + e);
    return gc_bsel(x >= 0.0f, r, e * r);
}

/* x sigmoid(x): SiLU, as act.c's Sigmoid then Mul (Mul(x, s) and Mul(s, x) round the same) */
GC_KM_INLINE float gc_silu_fast(float x) { return x * gc_sigmoid_fast(x); }

/* An activation fused into a producer's last write (ops.h gc_kfuse.act, sgemm.h gc_sg_epi). */
enum { GC_ACT_NONE = 0, GC_ACT_CLAMP = 1, GC_ACT_SILU = 2 };

/* min(max(t, lo), hi) as act.c's Clip writes it (Relu: lo 0, hi +inf): NaN propagates, and a
 * value at a bound stays itself (-0 at a bound of +0 included). These selects are what x86's
 * max/min instructions do with the bound as first operand. */
GC_KM_INLINE float gc_clamp(float t, float lo, float hi) {
    const float v = t < lo ? lo : t;
    return v > hi ? hi : v;
}

/* act (GC_ACT_*) of t; the bounds are read for GC_ACT_CLAMP only */
GC_KM_INLINE float gc_act1(float t, int act, float lo, float hi) {
    if (act == GC_ACT_CLAMP) return gc_clamp(t, lo, hi);
    if (act == GC_ACT_SILU) return gc_silu_fast(t);
    return t;
}

#endif

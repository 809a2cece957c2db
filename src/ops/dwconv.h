/* Depthwise 2-D convolution, direct kernels (dwconv.c): one channel at a time, read straight from
 * the input plane (no padded copy). conv.c's padded-plane loops are the portable path and the
 * fallback for every shape these do not take. */
#ifndef GC_OPS_DWCONV_H
#define GC_OPS_DWCONV_H

#include <stdint.h>

/* One channel's geometry: a K x K kernel, stride s in both axes, dilation 1. */
typedef struct gc_dw2d {
    int64_t H, W;   /* input plane */
    int64_t OH, OW; /* output plane */
    int64_t k, s;   /* kernel side, stride */
    int64_t pt, pl; /* padding before the rows, before the columns */
} gc_dw2d;

/* 1 when gc_dw2d_forward has a kernel for this shape on instruction-set path isa (GC_KISA_*):
 * square kernels of side 3, 5 or 7, equal strides 1 or 2, dilation 1, AVX2 or AVX-512. */
int gc_dw2d_ok(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t H, int64_t W,
               int64_t pt, int64_t pl, int isa);

/* y (OH, OW) = bias + the K x K taps of x (H, W) (zeros outside), summed in row-major tap order
 * without FMA: bit-identical to conv.c's plane_load + plane_gather. */
void gc_dw2d_forward(float *y, const float *x, const float *w, float bias, const gc_dw2d *g, int isa);

/* dX of a stride-2 depthwise convolution (the same shapes as gc_dw2d_ok with stride 2), written
 * first: x (H, W) = the K x K taps of y (OH, OW) scattered back, g the forward's geometry. Each input
 * pixel sums only the taps whose output exists (a quarter of the K x K on average), in the order
 * conv.c's gather over dY spread out with zeros between takes them (rotated kernel, row-major),
 * from +0: the products by those zeros are skipped, which changes no bit (a sum that starts at +0
 * never is -0, and adding a +-0 leaves every other value as it is), for finite weights. */
void gc_dw2d_backward_s2(float *x, const float *y, const float *w, const gc_dw2d *g, int isa);

#endif

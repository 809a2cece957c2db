/* Conv and ConvTranspose over 1..6 spatial dims: X (N, C, xs...), Y (N, M, ys...), G groups,
 * Conv W (M, C/G, k...), ConvTranspose W (C, M/G, k...), optional bias B (M).
 *
 * Both ops are written as one "lowering" between an image space and a column space:
 * Conv reads its image X and writes columns in Y's space; ConvTranspose is the adjoint, its
 * image is Y and its columns live in X's space. Strategy per case:
 *  - pointwise (all kernel extents 1, strides 1, no padding, same spatial size): no lowering; per
 *    (batch, group) one GEMM on the channel-major layout: Conv Y = W.X, ConvT Y = W^T.X.
 *    Backward: Conv dX += W^T.dY, ConvT dX += W.dY (beta = 1 accumulates into the gradient).
 *  - depthwise (one input channel per group and at most DW_MAX_MULT outputs per group, e.g.
 *    MobileNet/EfficientNet): a direct loop per channel, no GEMM. Conv forward with a square 3x3,
 *    5x5 or 7x7 kernel, stride 1 or 2 and no dilation, on AVX2 or AVX-512: dwconv.c's kernels,
 *    straight from the input. Otherwise 1-D/2-D: the channel is copied
 *    into a zero-bordered plane in per-thread scratch, so the loops need no bounds: 3x3 kernels
 *    take all 9 taps in one pass per output row, other widths one fused pass per kernel row
 *    (stride-1 loops on the CPU's instruction set, isa.h). 3-D (or no scratch): one pass per kernel tap
 *    over the tap's valid range. Conv forward gathers, its backward scatters; ConvTranspose
 *    forward scatters, its backward gathers.
 *  - general: per (batch, group), in tiles of column rows sized to the scratch budget:
 *    Conv forward = im2col + sgemm W.col; Conv backward = sgemm W^T.dY + col2im added into dX;
 *    ConvT forward = sgemm W^T.X + col2im into Y; ConvT backward = im2col(dY) + sgemm W.col
 *    added into dX.
 * GEMMs: src/ops/sgemm.c's kernels for the CPU, or cblas_sgemm with GCAM_NO_SGEMM=1; isa below is
 * the context's path (gc_sg_isa).
 * Bias, a fused Add's operand (k.fuse.res) and the fused activation (a Relu, a Clip's clamp, a
 * SiLU: kmath.h) go into the last write of every path: the GEMMs' epilogue (sgemm.h gc_sg_epi),
 * Winograd's output transform, the depthwise rows while in cache (the bias as their first
 * value), so no pass over Y before or after; only col2im (ConvTranspose) adds into Y prefilled
 * with the bias.
 * Threads: with multi-threaded OpenBLAS, OpenBLAS threads the GEMMs and OpenMP the im2col rows,
 * col2im channels and depthwise channels. With single-threaded OpenBLAS (one thread pool for the
 * whole context) GEMMs are split over OpenMP threads, and the im2col+GEMM loops give whole tiles
 * to threads (a scratch slot each). Every output element is summed by one thread in a fixed
 * order, whatever thread that is: results are bit-identical from run to run.
 * Backward reads only W (bw_in = W): X and Y need not be kept alive. */
#include "dwconv.h"
#include "isa.h"
#include "kutil.h"
#include "sgemm.h"

#include <cblas.h>
#include <limits.h>
#include <omp.h>

#define CV_SP (GC_MAX_DIMS - 2)
#define DW_MAX_MULT 8                    /* beyond this many outputs per channel GEMM wins */
#define DW_TAPS 16                       /* depthwise fast paths: kernel rows up to this wide */
#define DW_FLIP_MAX 256                  /* depthwise stride-1 backward as a gather: taps at most */
/* im2col tiles: about 1 MB (so the tile is still in cache when the GEMM packs it; measured
 * faster than whole-image lowering), but at least CV_MIN_COLS columns so the GEMM stays wide */
#define CV_COL_BUDGET ((int64_t)1 << 18)
#define CV_MIN_COLS 256
#define CV_OMP_MIN 32768                 /* elements below which threads do not pay */

/* the direct depthwise loops and the Winograd transforms are compute bound: AVX2 clones */
#define CV_CLONES GC_CLONES

/* [*lo, *hi): this OpenMP thread's share of [0, n), whole and in thread order */
static inline void gc_omp_range(int64_t n, int64_t *lo, int64_t *hi) {
    const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
    *lo = n * t / T;
    *hi = n * (t + 1) / T;
}

enum { PAD_NOTSET, PAD_SAME_UPPER, PAD_SAME_LOWER, PAD_VALID };
enum { PATH_GEMM, PATH_POINTWISE, PATH_DEPTHWISE };

typedef struct conv_params {
    int transpose, auto_pad;
    int64_t group;
    int n_kernel, n_strides, n_dil, n_pads, n_outpad, n_outshape;
    int64_t kernel[CV_SP], strides[CV_SP], dil[CV_SP], pads[2 * CV_SP], outpad[CV_SP];
    int64_t outshape[GC_MAX_DIMS];
} conv_params;

/* Image space <-> column space: col[o] reads img[o*s + t*d - p] for kernel tap t. */
typedef struct lowering {
    int nsp;
    int64_t img[CV_SP], col[CV_SP], k[CV_SP], s[CV_SP], d[CV_SP], p[CV_SP];
    int64_t imgsz, colsz, ksz;
} lowering;

/* Depthwise on 1-D/2-D (1-D as one row): a channel padded into a zero-bordered plane (Hp, Wp),
 * so every tap of every output is in range and the inner loops need no bounds. */
typedef struct dw_plane {
    int ok;
    int64_t H, W, OH, OW, kh, kw, sh, sw, dh, dw, pt, pl, Hp, Wp;
    int64_t Hq, Wq; /* stride 1: the backward's plane of dY with a border (see conv_backward) */
    int64_t floats; /* per-thread plane (Hp, Wp), rounded up to 16 floats (64 bytes) */
    int isa;        /* the plane loops' instruction-set path (gc_kisa) */
    int direct;     /* Conv forward: dwconv.c's kernels read the input in place (no plane) */
} dw_plane;

typedef struct conv_geom {
    int transpose, path;
    dw_plane pl;
    int64_t N, C, M, G, Cg, Mg; /* X has C channels (Cg per group), Y has M (Mg per group) */
    int64_t xsz, ysz;           /* spatial element counts of X and Y */
    int64_t cimg;               /* image channels per group: Cg for Conv, Mg for ConvT */
    int64_t rows, tile_rows;    /* column rows (all spatial dims but the last): total, per tile */
    int64_t ntiles, tile_floats; /* tiles per image, floats of one im2col tile (cimg*ksz, tile) */
    lowering lw;
    gc_shape yshape;
} conv_geom;

/* ---------------------------------------------------------------- parse */

static gcam_status read_ints(const gc_node *n, const char *name, int64_t *dst, int *cnt, int max,
                             int64_t min_value, gc_err *err) {
    const int64_t *v;
    size_t c = gc_attr_ints(n, name, &v);
    if (c > (size_t)max)
        return gc_fail(err, GCAM_E_UNSUPPORTED, "node '%s' (%s): attribute %s has %zu values (at most %d)",
                       n->name, n->op_type, name, c, max);
    for (size_t i = 0; i < c; i++) {
        if (v[i] < min_value)
            return gc_fail(err, GCAM_E_FORMAT, "node '%s' (%s): attribute %s[%zu] = %lld (must be >= %lld)",
                           n->name, n->op_type, name, i, (long long)v[i], (long long)min_value);
        dst[i] = v[i];
    }
    *cnt = (int)c;
    return GCAM_OK;
}

static gcam_status conv_parse_common(gc_node *n, gc_err *err, int transpose) {
    conv_params *p = calloc(1, sizeof *p);
    if (!p) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
    p->transpose = transpose;
    gcam_status st = GCAM_OK;
    p->group = gc_attr_int(n, "group", 1);
    const char *ap = gc_attr_str(n, "auto_pad", "NOTSET");
    if (!strcmp(ap, "NOTSET") || !ap[0]) p->auto_pad = PAD_NOTSET;
    else if (!strcmp(ap, "SAME_UPPER")) p->auto_pad = PAD_SAME_UPPER;
    else if (!strcmp(ap, "SAME_LOWER")) p->auto_pad = PAD_SAME_LOWER;
    else if (!strcmp(ap, "VALID")) p->auto_pad = PAD_VALID;
    else st = gc_fail(err, GCAM_E_FORMAT, "node '%s' (%s): attribute auto_pad = '%s' is not one of "
                      "NOTSET, SAME_UPPER, SAME_LOWER, VALID", n->name, n->op_type, ap);
    if (!st && p->group < 1)
        st = gc_fail(err, GCAM_E_FORMAT, "node '%s' (%s): attribute group = %lld (must be >= 1)", n->name,
                     n->op_type, (long long)p->group);
    if (!st) st = read_ints(n, "kernel_shape", p->kernel, &p->n_kernel, CV_SP, 1, err);
    if (!st) st = read_ints(n, "strides", p->strides, &p->n_strides, CV_SP, 1, err);
    if (!st) st = read_ints(n, "dilations", p->dil, &p->n_dil, CV_SP, 1, err);
    if (!st) st = read_ints(n, "pads", p->pads, &p->n_pads, 2 * CV_SP, 0, err);
    if (!st && transpose) st = read_ints(n, "output_padding", p->outpad, &p->n_outpad, CV_SP, 0, err);
    if (!st && transpose) st = read_ints(n, "output_shape", p->outshape, &p->n_outshape, GC_MAX_DIMS, 1, err);
    if (st) {
        free(p);
        return st;
    }
    free(n->params);
    n->params = p;
    return GCAM_OK;
}
static gcam_status conv_parse(gc_node *n, gc_err *err) { return conv_parse_common(n, err, 0); }
static gcam_status convt_parse(gc_node *n, gc_err *err) { return conv_parse_common(n, err, 1); }

/* ---------------------------------------------------------------- geometry (infer) */

static int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

/* Validates shapes and attributes, fills g (output shape, lowering, path, tiling). */
/* Attributes, X, W and B against each other: ranks, attribute lengths, channels and groups. */
static gcam_status conv_check(gc_kctx *k, conv_geom *g) {
    const conv_params *pr = k->params;
    const gc_tensor *x = k->in[0], *w = k->n_in > 1 ? k->in[1] : NULL, *b = k->n_in > 2 ? k->in[2] : NULL;
    if (!pr) return gc_kfail(k, GCAM_E_INTERNAL, "attributes not parsed");
    if (!x || !w) return gc_kfail(k, GCAM_E_FORMAT, "inputs X and W are required");
    if (x->dtype != GC_F32 || w->dtype != GC_F32 || (b && b->dtype != GC_F32))
        return gc_kfail(k, GCAM_E_UNSUPPORTED, "only float32 X, W and B are supported");
    const int r = x->shape.ndim, nsp = r - 2;
    if (r < 3 || nsp > CV_SP)
        return gc_kfail(k, GCAM_E_SHAPE, "X must have rank 3..%d (N, C, spatial...), got %d", GC_MAX_DIMS, r);
    if (w->shape.ndim != r) return gc_kfail(k, GCAM_E_SHAPE, "W has rank %d, X has rank %d", w->shape.ndim, r);
    for (int i = 0; i < r; i++)
        if (x->shape.d[i] < (i == 0 ? 0 : 1) || w->shape.d[i] < 1)
            return gc_kfail(k, GCAM_E_SHAPE, "X and W must have known, non-empty dims");
    if ((pr->n_kernel && pr->n_kernel != nsp) || (pr->n_strides && pr->n_strides != nsp) ||
        (pr->n_dil && pr->n_dil != nsp) || (pr->n_pads && pr->n_pads != 2 * nsp) ||
        (pr->n_outpad && pr->n_outpad != nsp) ||
        (pr->n_outshape && pr->n_outshape != nsp && pr->n_outshape != nsp + 2))
        return gc_kfail(k, GCAM_E_FORMAT, "kernel_shape/strides/dilations/output_padding need %d values, "
                        "pads %d, output_shape %d (input rank %d)", nsp, 2 * nsp, nsp, r);
    g->transpose = pr->transpose;
    g->G = pr->group;
    g->N = x->shape.d[0];
    g->C = x->shape.d[1];
    if (g->C % g->G) return gc_kfail(k, GCAM_E_SHAPE, "X channels %lld not divisible by group %lld",
                                     (long long)g->C, (long long)g->G);
    g->Cg = g->C / g->G;
    if (!g->transpose) {
        g->M = w->shape.d[0];
        if (g->M % g->G || w->shape.d[1] != g->Cg)
            return gc_kfail(k, GCAM_E_SHAPE, "W (%lld, %lld, ...) does not fit X channels %lld with group %lld",
                            (long long)w->shape.d[0], (long long)w->shape.d[1], (long long)g->C, (long long)g->G);
        g->Mg = g->M / g->G;
    } else {
        if (w->shape.d[0] != g->C)
            return gc_kfail(k, GCAM_E_SHAPE, "W dim 0 is %lld, X has %lld channels", (long long)w->shape.d[0],
                            (long long)g->C);
        g->Mg = w->shape.d[1];
        if (gc_mul_i64(&g->M, g->Mg, g->G)) return gc_kfail(k, GCAM_E_LIMIT, "output channels overflow");
    }
    if (b && (b->shape.ndim != 1 || b->shape.d[0] != g->M))
        return gc_kfail(k, GCAM_E_SHAPE, "B must have shape (%lld)", (long long)g->M);
    return GCAM_OK;
}

/* Per spatial axis: the output extent, the begin pad, and the lowering (im2col geometry). */
static gcam_status conv_spatial(gc_kctx *k, conv_geom *g) {
    const conv_params *pr = k->params;
    const gc_tensor *x = k->in[0], *w = k->in[1];
    const int r = x->shape.ndim, nsp = r - 2;
    lowering *lw = &g->lw;
    lw->nsp = nsp;
    g->yshape.ndim = r;
    g->yshape.d[0] = g->N;
    g->yshape.d[1] = g->M;
    lw->imgsz = lw->colsz = lw->ksz = 1;
    g->xsz = g->ysz = 1;
    for (int i = 0; i < nsp; i++) {
        int64_t kd = w->shape.d[2 + i], s = pr->n_strides ? pr->strides[i] : 1, d = pr->n_dil ? pr->dil[i] : 1;
        int64_t isz = x->shape.d[2 + i], pb = pr->n_pads ? pr->pads[i] : 0, pe = pr->n_pads ? pr->pads[nsp + i] : 0;
        int64_t dk, O, tot;
        if (pr->n_kernel && pr->kernel[i] != kd)
            return gc_kfail(k, GCAM_E_SHAPE, "kernel_shape[%d] = %lld but W has %lld", i,
                            (long long)pr->kernel[i], (long long)kd);
        if (gc_mul_i64(&dk, kd - 1, d) || gc_add_i64(&dk, dk, 1) || isz > INT64_MAX / 4 || pb > INT64_MAX / 4 ||
            pe > INT64_MAX / 4 || dk > INT64_MAX / 4)
            return gc_kfail(k, GCAM_E_LIMIT, "spatial sizes overflow");
        if (!g->transpose) {
            if (pr->auto_pad == PAD_VALID) pb = pe = 0;
            if (pr->auto_pad == PAD_SAME_UPPER || pr->auto_pad == PAD_SAME_LOWER) {
                O = (isz + s - 1) / s;
                tot = GC_MAX(0, (O - 1) * s + dk - isz);
                pb = pr->auto_pad == PAD_SAME_UPPER ? tot / 2 : tot - tot / 2;
            } else {
                O = floor_div(isz + pb + pe - dk, s) + 1;
            }
            lw->img[i] = isz;
            lw->col[i] = O;
        } else {
            int64_t op = pr->n_outpad ? pr->outpad[i] : 0, full;
            if (gc_mul_i64(&full, s, isz - 1) || gc_add_i64(&full, full, op) || gc_add_i64(&full, full, dk))
                return gc_kfail(k, GCAM_E_LIMIT, "spatial sizes overflow");
            if (pr->n_outshape || pr->auto_pad == PAD_SAME_UPPER || pr->auto_pad == PAD_SAME_LOWER) {
                if (pr->n_outshape) O = pr->outshape[pr->n_outshape - nsp + i];
                else if (gc_mul_i64(&O, isz, s)) return gc_kfail(k, GCAM_E_LIMIT, "spatial sizes overflow");
                /* the spec's split: SAME_UPPER puts the odd unit at the end, otherwise at the start */
                tot = full - O;
                pb = pr->auto_pad == PAD_SAME_UPPER ? floor_div(tot, 2) : tot - floor_div(tot, 2);
            } else {
                if (pr->auto_pad == PAD_VALID) pb = pe = 0;
                O = full - pb - pe;
            }
            lw->img[i] = O;
            lw->col[i] = isz;
        }
        if (O < 1)
            return gc_kfail(k, GCAM_E_SHAPE, "spatial dim %d of the output would be %lld", i, (long long)O);
        lw->k[i] = kd;
        lw->s[i] = s;
        lw->d[i] = d;
        lw->p[i] = pb;
        g->yshape.d[2 + i] = O;
        if (gc_mul_i64(&lw->imgsz, lw->imgsz, lw->img[i]) || gc_mul_i64(&lw->colsz, lw->colsz, lw->col[i]) ||
            gc_mul_i64(&lw->ksz, lw->ksz, kd))
            return gc_kfail(k, GCAM_E_LIMIT, "spatial sizes overflow");
    }
    return GCAM_OK;
}

/* The depthwise loops' plane geometry (g->pl), for 1-D and 2-D depthwise convolutions. */

/* Whether the data gradient can be the gather (conv_backward): stride 1, or stride 2 without
 * dilation, where dY spread out with a zero between samples keeps every tap the gather reads
 * inside the plane (the last input row reads row H - 1 + pt + kh - 1 of it). */
static int dw_bw_gathers(const dw_plane *q) {
    if (q->sh == 1 && q->sw == 1) return 1;
    return q->sh == 2 && q->sw == 2 && q->dh == 1 && q->dw == 1 && q->H - 1 + q->pt + q->kh - 1 < q->Hq &&
           q->W - 1 + q->pl + q->kw - 1 < q->Wq && q->pt < q->kh && q->pl < q->kw;
}

static void conv_dw_plane(conv_geom *g) {
    const lowering *lw = &g->lw;
    const int nsp = lw->nsp;
    int64_t t;
    dw_plane *q = &g->pl;
    const int two = nsp == 2;
    q->H = two ? lw->img[0] : 1;
    q->OH = two ? lw->col[0] : 1;
    q->kh = two ? lw->k[0] : 1;
    q->sh = two ? lw->s[0] : 1;
    q->dh = two ? lw->d[0] : 1;
    q->pt = two ? lw->p[0] : 0;
    q->W = lw->img[nsp - 1];
    q->OW = lw->col[nsp - 1];
    q->kw = lw->k[nsp - 1];
    q->sw = lw->s[nsp - 1];
    q->dw = lw->d[nsp - 1];
    q->pl = lw->p[nsp - 1];
    /* sizes were checked above to stay far below INT64_MAX / 4 */
    q->Hp = (q->OH - 1) * q->sh + (q->kh - 1) * q->dh + 1;
    q->Wp = (q->OW - 1) * q->sw + (q->kw - 1) * q->dw + 1;
    /* the data gradient as a gather too (see conv_backward), from dY placed inside a zero border
     * of the kernel's extent (spread out with zeros between at stride 2): a plane (Hp + (kh-1) dh,
     * Wp + (kw-1) dw) */
    q->Hq = q->Hp + (q->kh - 1) * q->dh;
    q->Wq = q->Wp + (q->kw - 1) * q->dw;
    int64_t tq = 0;
    if (!gc_mul_i64(&t, q->Hp, q->Wp) && t < INT64_MAX / 64 && !gc_mul_i64(&tq, q->Hq, q->Wq) &&
        tq < INT64_MAX / 64) {
        q->floats = (GC_MAX(t, dw_bw_gathers(q) ? tq : 0) + 15) & ~(int64_t)15;
        q->ok = 1;
    }
}

/* Sizes checked for overflow and for cblas's int, the path, and the im2col tiles. */
static gcam_status conv_plan(gc_kctx *k, conv_geom *g) {
    lowering *lw = &g->lw;
    const int nsp = lw->nsp;
    g->xsz = g->transpose ? lw->colsz : lw->imgsz;
    g->ysz = g->transpose ? lw->imgsz : lw->colsz;
    g->cimg = g->transpose ? g->Mg : g->Cg;
    g->rows = lw->colsz / lw->col[nsp - 1];
    int64_t t, kcol, ynum;
    if (gc_mul_i64(&kcol, g->cimg, lw->ksz) || gc_mul_i64(&t, g->N, g->M) || gc_mul_i64(&ynum, t, g->ysz) ||
        gc_mul_i64(&t, g->N, g->C) || gc_mul_i64(&t, t, g->xsz) || gc_mul_i64(&t, g->M, lw->ksz) ||
        gc_mul_i64(&t, t, g->Cg))
        return gc_kfail(k, GCAM_E_LIMIT, "tensor sizes overflow");
    /* cblas takes int sizes and leading dims */
    if (kcol > INT_MAX || g->xsz > INT_MAX || g->ysz > INT_MAX || g->M > INT_MAX || g->C > INT_MAX ||
        g->Mg * g->Cg > INT_MAX)
        return gc_kfail(k, GCAM_E_LIMIT, "a per-image GEMM dimension exceeds %d", INT_MAX);

    int pointwise = 1;
    for (int i = 0; i < nsp; i++)
        if (lw->k[i] != 1 || lw->s[i] != 1 || lw->p[i] != 0 || lw->img[i] != lw->col[i]) pointwise = 0;
    if (pointwise) g->path = PATH_POINTWISE;
    else if (g->Cg == 1 && g->Mg <= DW_MAX_MULT) g->path = PATH_DEPTHWISE;
    else g->path = PATH_GEMM;
    if (g->path == PATH_DEPTHWISE && nsp <= 2 && lw->k[nsp - 1] <= DW_TAPS) {
        dw_plane *q = &g->pl;
        conv_dw_plane(g);
        q->isa = gc_kisa(k);
        q->direct = q->ok && !g->transpose &&
                    gc_dw2d_ok(q->kh, q->kw, q->sh, q->sw, q->dh, q->dw, q->H, q->W, q->pt, q->pl, q->isa);
    }
    int64_t per_row;
    if (gc_mul_i64(&per_row, kcol, lw->col[nsp - 1]) || per_row > INT64_MAX / 8)
        return gc_kfail(k, GCAM_E_LIMIT, "im2col row size overflows");
    int64_t min_rows = (CV_MIN_COLS + lw->col[nsp - 1] - 1) / lw->col[nsp - 1];
    g->tile_rows = GC_MIN(g->rows, GC_MAX(min_rows, CV_COL_BUDGET / per_row));
    /* several tiles: make their count a multiple of the threads, which may each take whole tiles */
    const int64_t nt = GC_MAX(1, k->nthreads), nt0 = (g->rows + g->tile_rows - 1) / g->tile_rows;
    if (nt > 1 && nt0 > 1) {
        int64_t want = (nt0 + nt - 1) / nt * nt;
        g->tile_rows = (g->rows + want - 1) / want;
    }
    g->ntiles = (g->rows + g->tile_rows - 1) / g->tile_rows;
    if (gc_mul_i64(&t, per_row, g->tile_rows) || t > INT64_MAX / 8 / nt)
        return gc_kfail(k, GCAM_E_LIMIT, "im2col tile size overflows");
    g->tile_floats = t;
    return GCAM_OK;
}

static gcam_status conv_setup(gc_kctx *k, conv_geom *g) {
    memset(g, 0, sizeof *g);
    gcam_status rc = conv_check(k, g);
    if (!rc) rc = conv_spatial(k, g);
    if (!rc) rc = conv_plan(k, g);
    return rc;
}

static gcam_status conv_infer(gc_kctx *k) {
    conv_geom g;
    gcam_status st = conv_setup(k, &g);
    if (st) return st;
    k->out[0]->dtype = GC_F32;
    k->out[0]->shape = g.yshape;
    return GCAM_OK;
}

static int wino_eligible(const gc_kctx *k, const conv_geom *g, int fw);
static int64_t wino_scratch_floats(const conv_geom *g, int nth, int fw);

/* Pointwise convolutions of a batch on small maps (ResNet's and DenseNet's 14x14 and 7x7 stages):
 * the images' columns gathered side by side into one (C, N*HW) matrix so one GEMM reads (and
 * OpenBLAS packs) W once instead of once per image; per image, a 7x7 map gave GEMMs 49 columns
 * wide that spent about as long packing a 2048x512 W as computing. Floats of scratch needed
 * (X and Y sides, the same for the data gradient), 0 when this layout does not apply. */
#define CV_PW_BATCH_MAX_HW 256
#define CV_PW_BATCH_MAX_FLOATS ((int64_t)1 << 24) /* 64 MB of scratch at most */
static int64_t pw_batched_floats(const conv_geom *g) {
    if (g->path != PATH_POINTWISE || g->transpose || g->G != 1 || g->N < 2 || g->xsz > CV_PW_BATCH_MAX_HW)
        return 0;
    int64_t t;
    if (gc_mul_i64(&t, g->C + g->M, g->N) || gc_mul_i64(&t, t, g->xsz) || t > CV_PW_BATCH_MAX_FLOATS) return 0;
    if ((int64_t)g->N * g->xsz > INT_MAX) return 0;
    return t;
}

/* dst (C, N*HW) <- src (N, C, HW): each channel's images side by side (batched pointwise GEMMs) */
static void batch_columns(float *dst, const float *src, int64_t N, int64_t C, int64_t HW, int nth) {
#pragma omp parallel for num_threads(nth) schedule(static) if (C * N * HW > CV_OMP_MIN)
    for (int64_t c = 0; c < C; c++)
        for (int64_t n = 0; n < N; n++)
            memcpy(dst + (c * N + n) * HW, src + (n * C + c) * HW, (size_t)HW * sizeof(float));
}

/* The inverse of batch_columns: dst (N, C, HW) = src (C, N*HW), or += with add (the backward's
 * data gradient: assigned where written first, else added). The forward's is unbatch_epi. */
static void unbatch_columns(float *dst, const float *src, int64_t N, int64_t C, int64_t HW, int add, int nth) {
    const int64_t NHW = N * HW;
#pragma omp parallel for num_threads(nth) schedule(static) if (C * NHW > CV_OMP_MIN)
    for (int64_t nc = 0; nc < N * C; nc++) {
        const int64_t n = nc / C, c = nc % C;
        const float *s = src + c * NHW + n * HW;
        float *d = dst + nc * HW;
        if (add)
            for (int64_t i = 0; i < HW; i++) d[i] += s[i];
        else
            memcpy(d, s, (size_t)HW * sizeof(float));
    }
}

/* act (GC_ACT_*, kmath.h) of y + res over n floats (res may be NULL): the fused activation of a
 * write that has no GEMM epilogue (depthwise rows, the batched pointwise copy, Winograd with a
 * fused Add), the same function as sgemm.c's epilogue and act.c's kernels. One loop per case, so
 * each vectorises (SiLU's exp is compute bound). */
static inline __attribute__((always_inline)) void epi_seq(float *restrict y, const float *restrict res, int64_t n,
                                                          int act, float lo, float hi) {
    if (res) {
        if (act == GC_ACT_CLAMP)
            for (int64_t i = 0; i < n; i++) y[i] = gc_clamp(y[i] + res[i], lo, hi);
        else if (act == GC_ACT_SILU)
            for (int64_t i = 0; i < n; i++) y[i] = gc_silu_fast(y[i] + res[i]);
        else
            for (int64_t i = 0; i < n; i++) y[i] = y[i] + res[i];
    } else if (act == GC_ACT_CLAMP) {
        for (int64_t i = 0; i < n; i++) y[i] = gc_clamp(y[i], lo, hi);
    } else if (act == GC_ACT_SILU) {
        for (int64_t i = 0; i < n; i++) y[i] = gc_silu_fast(y[i]);
    }
}
/* epi_seq for the callers outside the Winograd clones, on the kernel's instruction-set path
 * (kisa: gc_kisa): 16 lanes on AVX-512 for SiLU's exp (bit-identical on every path, isa.h) */
GC_ISA_FN(epi_isa, epi_seq, (float *restrict y, const float *restrict res, int64_t n, int act, float lo, float hi),
          (y, res, n, act, lo, hi))
static void epi_row(float *y, const float *res, int64_t n, const gc_sg_epi *e, int kisa) {
    epi_isa_tab[kisa](y, res, n, e->act, e->lo, e->hi);
}

/* The forward's unbatch: dst (N, C, HW) = act(src (C, N*HW) + bias[c] + res (N, C, HW)), bias
 * and res may be NULL (the GEMM epilogue's order of operations). */
static void unbatch_epi(float *dst, const float *src, int64_t N, int64_t C, int64_t HW, const float *bias,
                        const gc_sg_epi *e, int kisa, int nth) {
    const int64_t NHW = N * HW;
#pragma omp parallel for num_threads(nth) schedule(static) if (C * NHW > CV_OMP_MIN)
    for (int64_t nc = 0; nc < N * C; nc++) {
        const int64_t n = nc / C, c = nc % C;
        const float *s = src + c * NHW + n * HW;
        float *d = dst + nc * HW;
        const float bv = bias ? bias[c] : 0.0f;
        for (int64_t i = 0; i < HW; i++) d[i] = s[i] + bv;
        if (e->res || e->act) epi_row(d, e->res ? e->res + nc * HW : NULL, HW, e, kisa);
    }
}

static int w4_eligible(const gc_kctx *k, const conv_geom *g);
static int64_t w4_scratch_floats(const conv_geom *g, int nth);

/* Scratch of the forward (fw: F(4x4) may run) or of the backward. */
static size_t conv_scratch_dir(const gc_kctx *k, int fw) {
    conv_geom g;
    gc_err e = {0};
    gc_kctx kk = *k;
    kk.err = &e; /* sizing must not record errors: infer already validated */
    if (conv_setup(&kk, &g)) return 0;
    if (g.path == PATH_DEPTHWISE)
        return g.pl.ok ? (size_t)GC_MAX(1, k->nthreads) * (size_t)g.pl.floats * sizeof(float) : 0;
    if (g.path == PATH_POINTWISE) return (size_t)pw_batched_floats(&g) * sizeof(float);
    if (g.path != PATH_GEMM) return 0;
    /* a tile slot per thread when the image has several (see lowered_gemm) */
    size_t im2col_bytes = (size_t)(g.ntiles > 1 ? GC_MAX(1, k->nthreads) : 1) * (size_t)g.tile_floats * sizeof(float);
    if (!wino_eligible(k, &g, fw)) return im2col_bytes;
    /* room for either path: im2col stays the fallback if U cannot be allocated */
    const int nth = GC_MAX(1, k->nthreads);
    size_t wb = (size_t)wino_scratch_floats(&g, nth, fw) * sizeof(float);
    if (fw && w4_eligible(k, &g)) /* F(2x2) stays the fallback too (no memory for U) */
        wb = GC_MAX(wb, (size_t)w4_scratch_floats(&g, nth) * sizeof(float));
    return GC_MAX(wb, im2col_bytes);
}
static size_t conv_scratch(const gc_kctx *k) { return conv_scratch_dir(k, 1); }
static size_t conv_bscratch(const gc_kctx *k) { return conv_scratch_dir(k, 0); }

/* ---------------------------------------------------------------- lowering kernels */

static inline void unravel(int64_t *idx, int64_t lin, const int64_t *dims, int n) {
    for (int a = n - 1; a >= 0; a--) {
        idx[a] = lin % dims[a];
        lin /= dims[a];
    }
}
static inline void next_index(int64_t *idx, const int64_t *dims, int n) {
    for (int a = n - 1; a >= 0; a--) {
        if (++idx[a] < dims[a]) return;
        idx[a] = 0;
    }
}
/* Row (over all image dims but the last) read by column row o[] at tap t[], or -1 if in padding. */
static inline int64_t lead_row(const lowering *lw, const int64_t *o, const int64_t *t) {
    int64_t row = 0;
    for (int a = 0; a < lw->nsp - 1; a++) {
        int64_t i = o[a] * lw->s[a] + t[a] * lw->d[a] - lw->p[a];
        if (i < 0 || i >= lw->img[a]) return -1;
        row = row * lw->img[a] + i;
    }
    return row;
}
/* Along the last axis, tap t of column row positions [lo, hi) reads image o*s + off, in range. */
static inline void tap_range(int64_t *lo, int64_t *hi, int64_t *off, const lowering *lw, int64_t t) {
    const int L = lw->nsp - 1;
    int64_t s = lw->s[L], n = lw->img[L], on = lw->col[L];
    *off = t * lw->d[L] - lw->p[L];
    int64_t l = *off >= 0 ? 0 : (-*off + s - 1) / s;
    int64_t h = n - 1 - *off < 0 ? 0 : (n - 1 - *off) / s + 1;
    *lo = GC_MIN(l, on);
    *hi = GC_MAX(*lo, GC_MIN(h, on));
}

/* Tap ranges of the first DW_TAPS taps along the last axis, computed once per channel (the
 * divisions in tap_range would otherwise cost more than a short row of work), and the interior
 * [ilo, ihi) where every tap is in range. */
typedef struct tap_table {
    int64_t lo[DW_TAPS], hi[DW_TAPS], off[DW_TAPS], ilo, ihi;
} tap_table;
static void tap_table_init(tap_table *tt, const lowering *lw) {
    const int64_t kL = lw->k[lw->nsp - 1];
    tt->ilo = 0;
    tt->ihi = lw->col[lw->nsp - 1];
    for (int64_t t = 0; t < GC_MIN(kL, DW_TAPS); t++) {
        tap_range(&tt->lo[t], &tt->hi[t], &tt->off[t], lw, t);
        tt->ilo = GC_MAX(tt->ilo, tt->lo[t]);
        tt->ihi = GC_MIN(tt->ihi, tt->hi[t]);
    }
}
static inline void tap_get(int64_t *lo, int64_t *hi, int64_t *off, const tap_table *tt, const lowering *lw, int64_t t) {
    if (t < DW_TAPS) {
        *lo = tt->lo[t];
        *hi = tt->hi[t];
        *off = tt->off[t];
    } else {
        tap_range(lo, hi, off, lw, t);
    }
}

/* col (Cc*ksz, nr*colL) <- img (Cc, imgsz), column rows [r0, r0+nr). */
static void im2col(float *restrict col, const float *restrict img, int64_t Cc, const lowering *lw, int64_t r0,
                   int64_t nr, int nth) {
    const int L = lw->nsp - 1;
    const int64_t cL = lw->col[L], iL = lw->img[L], st = lw->s[L], Pt = nr * cL, R = Cc * lw->ksz;
#pragma omp parallel for num_threads(nth) schedule(static) if (nth > 1 && R * Pt > CV_OMP_MIN)
    for (int64_t q = 0; q < R; q++) {
        int64_t t[CV_SP], o[CV_SP], lo, hi, off;
        unravel(t, q % lw->ksz, lw->k, lw->nsp);
        unravel(o, r0, lw->col, L);
        tap_range(&lo, &hi, &off, lw, t[L]);
        const float *src = img + (q / lw->ksz) * lw->imgsz;
        float *dst = col + q * Pt;
        for (int64_t r = 0; r < nr; r++, dst += cL, next_index(o, lw->col, L)) {
            int64_t row = lead_row(lw, o, t);
            if (row < 0 || lo >= hi) {
                memset(dst, 0, (size_t)cL * sizeof(float));
                continue;
            }
            const float *s = src + row * iL;
            if (lo > 0) memset(dst, 0, (size_t)lo * sizeof(float));
            if (st == 1) memcpy(dst + lo, s + (lo + off), (size_t)(hi - lo) * sizeof(float));
            else if (st == 2) /* a constant stride: the vectoriser's even-element shuffles */
                for (int64_t x = lo; x < hi; x++) dst[x] = s[x * 2 + off];
            else
                for (int64_t x = lo; x < hi; x++) dst[x] = s[x * st + off];
            if (hi < cL) memset(dst + hi, 0, (size_t)(cL - hi) * sizeof(float));
        }
    }
}

/* img (Cc, imgsz) += col (Cc*ksz, nr*colL), column rows [r0, r0+nr). One thread per channel. */
static void col2im(float *restrict img, const float *restrict col, int64_t Cc, const lowering *lw, int64_t r0,
                   int64_t nr, int nth) {
    const int L = lw->nsp - 1;
    const int64_t cL = lw->col[L], iL = lw->img[L], st = lw->s[L], Pt = nr * cL, ksz = lw->ksz;
#pragma omp parallel for num_threads(nth) schedule(static) if (nth > 1 && Cc * ksz * Pt > CV_OMP_MIN)
    for (int64_t c = 0; c < Cc; c++) {
        float *dimg = img + c * lw->imgsz;
        for (int64_t kk = 0; kk < ksz; kk++) {
            int64_t t[CV_SP], o[CV_SP], lo, hi, off;
            unravel(t, kk, lw->k, lw->nsp);
            unravel(o, r0, lw->col, L);
            tap_range(&lo, &hi, &off, lw, t[L]);
            const float *src = col + (c * ksz + kk) * Pt;
            for (int64_t r = 0; r < nr; r++, src += cL, next_index(o, lw->col, L)) {
                int64_t row = lead_row(lw, o, t);
                if (row < 0) continue;
                float *d = dimg + row * iL;
                if (st == 1)
                    for (int64_t x = lo; x < hi; x++) d[x + off] += src[x];
                else
                    for (int64_t x = lo; x < hi; x++) d[x * st + off] += src[x];
            }
        }
    }
}

/* d[x] += sum_t w[t] * s[x*st + off[t]] over x in [x0, x1), all kn taps in range: one pass
 * instead of kn. Inlined with constant kn (and stride 1 or 2), so the tap loop unrolls and x
 * vectorises. */
GC_INLINE void row_taps_k(float *restrict d, const float *restrict s, const float *w, const int64_t *off,
                          int64_t x0, int64_t x1, const int64_t st, const int kn) {
    for (int64_t x = x0; x < x1; x++) {
        float acc = d[x];
        for (int t = 0; t < kn; t++) acc += w[t] * s[x * st + off[t]];
        d[x] = acc;
    }
}
static inline void row_taps(float *restrict d, const float *restrict s, const float *w, const int64_t *off,
                            int64_t x0, int64_t x1, int64_t st, const int kn) {
    if (st == 1) row_taps_k(d, s, w, off, x0, x1, 1, kn);
    else if (st == 2) row_taps_k(d, s, w, off, x0, x1, 2, kn);
    else row_taps_k(d, s, w, off, x0, x1, st, kn);
}

/* Depthwise, one channel pair: col (colsz) (init: = bias, else +=) sum of taps of img (imgsz).
 * Kernel rows of width 3, 5 or 7 take one fused pass over the interior, the borders go tap by tap. */
static void dw_gather(float *restrict col, const float *restrict img, const float *w, const lowering *lw,
                      int init, float bias) {
    const int L = lw->nsp - 1;
    const int64_t cL = lw->col[L], iL = lw->img[L], st = lw->s[L], kL = lw->k[L];
    const int64_t rows = lw->colsz / cL, nlead = lw->ksz / kL;
    tap_table tt;
    tap_table_init(&tt, lw);
    const int fused = (kL == 3 || kL == 5 || kL == 7) && tt.ilo < tt.ihi;
    int64_t o[CV_SP] = {0};
    for (int64_t r = 0; r < rows; r++, next_index(o, lw->col, L)) {
        float *d = col + r * cL;
        if (init)
            for (int64_t x = 0; x < cL; x++) d[x] = bias;
        int64_t t[CV_SP] = {0};
        for (int64_t tl = 0; tl < nlead; tl++, next_index(t, lw->k, L)) {
            int64_t row = lead_row(lw, o, t);
            if (row < 0) continue;
            const float *s = img + row * iL, *wr = w + tl * kL;
            if (fused) {
                if (kL == 3) row_taps(d, s, wr, tt.off, tt.ilo, tt.ihi, st, 3);
                else if (kL == 5) row_taps(d, s, wr, tt.off, tt.ilo, tt.ihi, st, 5);
                else row_taps(d, s, wr, tt.off, tt.ilo, tt.ihi, st, 7);
            }
            for (int64_t kx = 0; kx < kL; kx++) {
                int64_t lo, hi, off;
                tap_get(&lo, &hi, &off, &tt, lw, kx);
                const float wv = wr[kx];
                int64_t m0 = fused ? GC_MIN(hi, tt.ilo) : hi, m1 = fused ? GC_MAX(lo, tt.ihi) : hi;
                /* [lo, m0) and [m1, hi): everything the fused pass did not cover */
                if (st == 1) {
                    for (int64_t x = lo; x < m0; x++) d[x] += wv * s[x + off];
                    for (int64_t x = m1; x < hi; x++) d[x] += wv * s[x + off];
                } else {
                    for (int64_t x = lo; x < m0; x++) d[x] += wv * s[x * st + off];
                    for (int64_t x = m1; x < hi; x++) d[x] += wv * s[x * st + off];
                }
            }
        }
    }
}

/* Depthwise, one channel pair: img (imgsz) += taps of col (colsz) scattered back. */
static void dw_scatter(float *restrict img, const float *restrict col, const float *w, const lowering *lw) {
    const int L = lw->nsp - 1;
    const int64_t cL = lw->col[L], iL = lw->img[L], st = lw->s[L], kL = lw->k[L];
    const int64_t rows = lw->colsz / cL, nlead = lw->ksz / kL;
    tap_table tt;
    tap_table_init(&tt, lw);
    int64_t o[CV_SP] = {0};
    for (int64_t r = 0; r < rows; r++, next_index(o, lw->col, L)) {
        const float *s = col + r * cL;
        int64_t t[CV_SP] = {0};
        for (int64_t tl = 0; tl < nlead; tl++, next_index(t, lw->k, L)) {
            int64_t row = lead_row(lw, o, t);
            if (row < 0) continue;
            float *d = img + row * iL;
            for (int64_t kx = 0; kx < kL; kx++) {
                int64_t lo, hi, off;
                tap_get(&lo, &hi, &off, &tt, lw, kx);
                const float wv = w[tl * kL + kx];
                if (st == 1)
                    for (int64_t x = lo; x < hi; x++) d[x + off] += wv * s[x];
                else
                    for (int64_t x = lo; x < hi; x++) d[x * st + off] += wv * s[x];
            }
        }
    }
}

/* P (Hp, Wp) <- one image channel (H, W) placed at (pt, pl), zeros around. */
static void plane_load(float *restrict P, const float *restrict img, const dw_plane *q) {
    const int64_t c0 = GC_MIN(GC_MAX(q->pl, 0), q->Wp), c1 = GC_MAX(c0, GC_MIN(q->pl + q->W, q->Wp));
    for (int64_t r = 0; r < q->Hp; r++) {
        float *d = P + r * q->Wp;
        const int64_t i = r - q->pt;
        if (i < 0 || i >= q->H) {
            memset(d, 0, (size_t)q->Wp * sizeof(float));
            continue;
        }
        memset(d, 0, (size_t)c0 * sizeof(float));
        memcpy(d + c0, img + i * q->W + (c0 - q->pl), (size_t)(c1 - c0) * sizeof(float));
        memset(d + c1, 0, (size_t)(q->Wp - c1) * sizeof(float));
    }
}

/* One image channel (H, W) += the part of P (Hp, Wp) that overlaps it. */
static void plane_store_add(float *restrict img, const float *restrict P, const dw_plane *q) {
    const int64_t j0 = GC_MAX(0, -q->pl), j1 = GC_MIN(q->W, q->Wp - q->pl);
    for (int64_t i = GC_MAX(0, -q->pt); i < GC_MIN(q->H, q->Hp - q->pt); i++) {
        const float *s = P + (i + q->pt) * q->Wp;
        float *d = img + i * q->W;
        for (int64_t j = j0; j < j1; j++) d[j] += s[j + q->pl];
    }
}

/* d[x] (+)= all 9 taps of a 3x3 kernel over rows r0..r2 in one pass (constant stride st). */
GC_INLINE void row_3x3(float *restrict d, const float *r0, const float *r1, const float *r2, const float *w,
                       const int64_t *off, int64_t n, const int64_t st) {
    const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6], w7 = w[7], w8 = w[8];
    const int64_t o0 = off[0], o1 = off[1], o2 = off[2];
    for (int64_t x = 0; x < n; x++) {
        const int64_t b = x * st;
        d[x] = d[x] + w0 * r0[b + o0] + w1 * r0[b + o1] + w2 * r0[b + o2] + w3 * r1[b + o0] + w4 * r1[b + o1] +
               w5 * r1[b + o2] + w6 * r2[b + o0] + w7 * r2[b + o1] + w8 * r2[b + o2];
    }
}

/* col (OH, OW) (init: = bias, else +=) taps of the padded plane P: 3x3 in one pass per output
 * row, other kernels one fused pass per kernel row. */
GC_INLINE void plane_gather_st(float *restrict col, const float *restrict P, const float *w, const dw_plane *q,
                               int init, float bias, const int64_t st) {
    int64_t off[DW_TAPS];
    for (int64_t t = 0; t < q->kw; t++) off[t] = t * q->dw;
    for (int64_t oy = 0; oy < q->OH; oy++) {
        float *d = col + oy * q->OW;
        if (init)
            for (int64_t x = 0; x < q->OW; x++) d[x] = bias;
        const float *s = P + oy * q->sh * q->Wp;
        if (q->kh == 3 && q->kw == 3) {
            row_3x3(d, s, s + q->dh * q->Wp, s + 2 * q->dh * q->Wp, w, off, q->OW, st);
            continue;
        }
        for (int64_t ky = 0; ky < q->kh; ky++, s += q->dh * q->Wp) {
            const float *wr = w + ky * q->kw;
            if (q->kw == 3) row_taps_k(d, s, wr, off, 0, q->OW, st, 3);
            else if (q->kw == 5) row_taps_k(d, s, wr, off, 0, q->OW, st, 5);
            else if (q->kw == 7) row_taps_k(d, s, wr, off, 0, q->OW, st, 7);
            else row_taps_k(d, s, wr, off, 0, q->OW, st, (int)q->kw);
        }
    }
}
GC_INLINE void plane_gather_s1_body(float *restrict col, const float *restrict P, const float *w, const dw_plane *q,
                                    int init, float bias) {
    plane_gather_st(col, P, w, q, init, bias, 1);
}
/* Stride 1 on the plane's instruction-set path (q->isa: 16 lanes on AVX-512; the backward's
 * data-gradient gather runs here too); strided reads measured slower with 256-bit shuffles than
 * SSE, so stride 2 stays on the baseline. */
GC_ISA_FN(plane_gather_s1_isa, plane_gather_s1_body,
          (float *restrict col, const float *restrict P, const float *w, const dw_plane *q, int init, float bias),
          (col, P, w, q, init, bias))
static void plane_gather_s1(float *restrict col, const float *restrict P, const float *w, const dw_plane *q,
                            int init, float bias) {
    plane_gather_s1_isa_tab[q->isa](col, P, w, q, init, bias);
}
static void plane_gather(float *restrict col, const float *restrict P, const float *w, const dw_plane *q, int init,
                         float bias) {
    if (q->sw == 1) plane_gather_s1(col, P, w, q, init, bias);
    else if (q->sw == 2) plane_gather_st(col, P, w, q, init, bias, 2);
    else plane_gather_st(col, P, w, q, init, bias, q->sw);
}

/* Conv forward of one channel: yc (OH, OW) = bias + taps of xc (H, W), with dwconv.c's kernels
 * straight from xc when they take the shape (bit-identical), else through the padded plane P. */
static void dw_forward_channel(float *restrict yc, const float *restrict xc, float *restrict P, const float *w,
                               const dw_plane *q, float bias) {
    if (q->direct) {
        const gc_dw2d g = {q->H, q->W, q->OH, q->OW, q->kw, q->sw, q->pt, q->pl};
        gc_dw2d_forward(yc, xc, w, bias, &g, q->isa);
        return;
    }
    plane_load(P, xc, q);
    plane_gather(yc, P, w, q, 1, bias);
}

/* P (Hp, Wp) += taps of col (OH, OW) scattered back (the adjoint of plane_gather). */
CV_CLONES static void plane_scatter(float *restrict P, const float *restrict col, const float *w, const dw_plane *q) {
    for (int64_t oy = 0; oy < q->OH; oy++) {
        const float *s = col + oy * q->OW;
        for (int64_t ky = 0; ky < q->kh; ky++) {
            float *d = P + (oy * q->sh + ky * q->dh) * q->Wp;
            for (int64_t kx = 0; kx < q->kw; kx++) {
                const float wv = w[ky * q->kw + kx];
                const int64_t off = kx * q->dw;
                if (q->sw == 1)
                    for (int64_t x = 0; x < q->OW; x++) d[x + off] += wv * s[x];
                else
                    for (int64_t x = 0; x < q->OW; x++) d[x * q->sw + off] += wv * s[x];
            }
        }
    }
}

/* The stride-1 depthwise data gradient as a gather (conv_backward); GCAM_NO_DW_GATHER=1 keeps
 * the scatter (A/B measurements, tests comparing the two). */
static int dw_bw_gather(const gc_kctx *k) { return !gc_ktune(k)->no_dw_gather; }

/* How many per-thread planes the scratch holds (0: none, use the bounds-checked loops). */
static int64_t dw_planes(const gc_kctx *k, const dw_plane *q) {
    if (!q->ok || !k->scratch) return 0;
    return (int64_t)(k->scratch_size / ((size_t)q->floats * sizeof(float)));
}

/* y (N*M, ysz) = bias per channel (0 without bias) + res (N*M, ysz; may be NULL: a fused Add's
 * other operand, so the GEMM accumulates onto it). */
static void fill_bias(float *y, const float *b, const float *res, int64_t NM, int64_t M, int64_t ysz, int nth) {
#pragma omp parallel for num_threads(nth) schedule(static) if (NM * ysz > CV_OMP_MIN)
    for (int64_t c = 0; c < NM; c++) {
        float v = b ? b[c % M] : 0.0f, *d = y + c * ysz;
        if (res) {
            const float *r = res + c * ysz;
            for (int64_t i = 0; i < ysz; i++) d[i] = r[i] + v;
        } else {
            for (int64_t i = 0; i < ysz; i++) d[i] = v;
        }
    }
}

/* out (Mo, colsz; row stride ldo) (beta 0: =, 1: +=) A (Mo, cimg*ksz) . im2col(img (cimg, imgsz)),
 * then the epilogue ep (its res laid out as out), tile by tile. When OpenBLAS runs single-threaded
 * and the scratch has a slot per thread, the threads take whole tiles (lowering + a single-threaded
 * GEMM each: one parallel region, no barrier per tile); otherwise each tile is lowered by all
 * threads, then a threaded GEMM. */
static void lowered_gemm_epi(float *out, int64_t ldo, const float *A, int isa, int64_t Mo, const float *img,
                             int64_t cimg, float beta, const conv_geom *g, float *scratch, size_t scratch_size,
                             const gc_sg_epi *ep, int nth) {
    const lowering *lw = &g->lw;
    const int64_t cL = lw->col[lw->nsp - 1], kcol = cimg * lw->ksz;
    const int64_t slots = (int64_t)(scratch_size / ((size_t)g->tile_floats * sizeof(float)));
    if (nth > 1 && g->ntiles > 1 && slots >= 2 && openblas_get_num_threads() == 1) {
        const int nt = (int)GC_MIN(GC_MIN(nth, slots), g->ntiles);
#pragma omp parallel num_threads(nt)
        {
            float *c = scratch + (int64_t)omp_get_thread_num() * g->tile_floats;
#pragma omp for schedule(dynamic)
            for (int64_t ti = 0; ti < g->ntiles; ti++) {
                const int64_t r0 = ti * g->tile_rows, nr = GC_MIN(g->tile_rows, g->rows - r0), Pt = nr * cL;
                im2col(c, img, cimg, lw, r0, nr, 1);
                gc_sg_epi e = *ep; /* res (Mo, ldr) from out's element (0, 0): the tile's columns */
                if (e.res) e.res += r0 * cL;
                gc_sg_gemm_epi(isa, 1, 0, 0, Mo, Pt, kcol, 1.0f, A, kcol, c, Pt, beta, out + r0 * cL, ldo, &e);
            }
        }
        return;
    }
    for (int64_t r0 = 0; r0 < g->rows; r0 += g->tile_rows) {
        const int64_t nr = GC_MIN(g->tile_rows, g->rows - r0), Pt = nr * cL;
        im2col(scratch, img, cimg, lw, r0, nr, nth);
        gc_sg_epi e = *ep;
        if (e.res) e.res += r0 * cL;
        gc_sg_gemm_epi(isa, nth, 0, 0, Mo, Pt, kcol, 1.0f, A, kcol, scratch, Pt, beta, out + r0 * cL, ldo, &e);
    }
}
/* lowered_gemm_epi with a Relu or nothing (the backward's call) */
static void lowered_gemm(float *out, int64_t ldo, const float *A, int isa, int64_t Mo, const float *img, int64_t cimg,
                         float beta, const conv_geom *g, float *scratch, size_t scratch_size, int relu, int nth) {
    const gc_sg_epi e = {.act = relu ? GC_ACT_CLAMP : GC_ACT_NONE, .lo = 0.0f, .hi = INFINITY};
    lowered_gemm_epi(out, ldo, A, isa, Mo, img, cimg, beta, g, scratch, scratch_size, &e, nth);
}

/* Pointwise convolutions of a batch (or of many groups): one single-threaded GEMM per (image,
 * group), the threads taking whole ones, when there are at least two per thread (so the split
 * stays balanced) and each is worth a thread. Splitting one image's GEMM instead cuts a 7x7 or
 * 14x14 map into thin, uneven slices. Each output is computed by one call either way. */
static int pointwise_by_image(const conv_geom *g, int nth) {
    return nth > 1 && g->N * g->G >= 2 * (int64_t)nth && openblas_get_num_threads() == 1 &&
           (double)g->Mg * (double)g->ysz * (double)g->Cg >= 1e5;
}

/* ---------------------------------------------------------------- Winograd F(2x2, 3x3) */

/* 2-D 3x3 convolutions with stride 1, dilation 1 and one group (VGG, ResNet's bottleneck middle,
 * DenseNet's growth layers) run as Winograd F(2x2, 3x3) (Lavin & Gray 2016): each 2x2 output tile
 * comes from a 4x4 input patch, V = B^T d B, M = U . V summed over input channels with U = G g G^T,
 * y = A^T M A. The channel sums are 16 GEMMs (one per point of the 4x4 transform) over a block of
 * tiles, 2.25x fewer multiply-adds than im2col; the transforms are additions only, and the error
 * stays at the level of a direct sum (points 0, 1, -1, infinity: no scaling by large constants).
 * U (16, M, C) is built once per model from the constant weights (node kcache) and also serves
 * the backward: the data gradient of a 3x3 stride-1 convolution is a 3x3 correlation of dY with
 * the weights rotated by 180 degrees and transposed, and for these points rotating g swaps the
 * transform's first and last points, so U'[i][j] = U[p(i)][p(j)]^T with p = (3, 1, 2, 0). */
#define WG_SUB 64            /* tiles a sub-block: transformed at a time (their data stays in L1) */
#define WG_MAX_TILES 512     /* tiles per block at most: the N side of the 16 GEMMs */
#define WG_MIN_CH 16         /* thinner layers keep im2col (the transforms would dominate) */
#define WG_ROWS_IN 12        /* tiles a tile row from which the input transform goes row by row */
#define WG_ROWS_OUT 7        /* the same for the output transform */
#define W4_MAX_MC 16384      /* F(4x4) (forward) for M C up to this: U4 (36, M, C) <= 2.4 MB */

/* Whether a Winograd run shares one block of all NT tiles out by phases (input channels, the
 * GEMMs, output channels) instead of giving each thread blocks of tiles: when the tiles are too
 * few for every thread to get a block of a sub-block's width (resnet50's 14x14 and 28x28 maps at
 * batch 1: 49 tiles went out as 32 + 17, or, F(2x2) at 2 threads, not at all: im2col), and one
 * block of them, padded by 8 tiles (the input transform's writes past a run), fits a slot. */
static int wg_shared(int64_t NT, int64_t blk, int64_t sub, int nth) {
    return nth > 1 && NT < sub * nth && (NT + 7) / 8 * 8 + 8 <= blk;
}

static int64_t wino_block(const conv_geom *g);
static int wino_eligible(const gc_kctx *k, const conv_geom *g, int fw) {
    const lowering *lw = &g->lw;
    if (g->transpose || lw->nsp != 2 || g->G != 1 || !(k->const_in & 2)) return 0;
    if (gc_ktune(k)->no_winograd) return 0; /* im2col everywhere (A/B measurements) */
    for (int i = 0; i < 2; i++)
        if (lw->k[i] != 3 || lw->s[i] != 1 || lw->d[i] != 1) return 0;
    if (g->C < WG_MIN_CH || g->M < WG_MIN_CH) return 0;
    /* blocks for every thread, or the im2col path (which splits each GEMM) is faster; with fewer
     * tiles, one block shared out by phases (wg_shared) where U is built for the data gradient
     * anyway: the backward, and a forward a backward passes through (k.exact). An inference
     * context keeps im2col there: U for resnet50's 14x14 layers would add 20 MiB to a forward's
     * memory (docs/performance.md). */
    const int64_t tiles = g->N * ((lw->col[0] + 1) / 2) * ((lw->col[1] + 1) / 2);
    const int nth = GC_MAX(1, k->nthreads);
    return (tiles >= (int64_t)WG_SUB * nth / 2 ||
            ((!fw || k->exact) && tiles >= WG_SUB / 2 && wg_shared(tiles, wino_block(g), WG_SUB, nth))) &&
           (nth == 1 || openblas_get_num_threads() == 1);
}

/* Tiles per block: as many as keep V[e] (Cin, tiles) near 512 KB, so OpenBLAS packs each U[e]
 * (Cout, Cin) for enough columns (with 64 tiles the packing took 12% of the time on VGG-16). */
static int64_t wino_block(const conv_geom *g) {
    int64_t t = ((int64_t)1 << 17) / GC_MAX(g->C, g->M);
    return GC_MAX(WG_SUB, GC_MIN(WG_MAX_TILES, t / WG_SUB * WG_SUB));
}
/* Floats of one thread's slot: V (16, Cin, tiles) and M (16, Cout, tiles); the same for the
 * forward (Cin = C) and the backward (Cin = M). */
static int64_t wino_slot_floats(const conv_geom *g) { return 16 * (g->C + g->M) * wino_block(g); }
/* The scratch a run with nth threads needs: a slot each, or one block of every tile when they
 * share it (wg_shared; the tiles of Y forward, of X for the data gradient) */
static int64_t wino_scratch_floats(const conv_geom *g, int nth, int fw) {
    const int64_t *o = fw ? g->lw.col : g->lw.img, NT = g->N * ((o[0] + 1) / 2) * ((o[1] + 1) / 2);
    if (wg_shared(NT, wino_block(g), WG_SUB, nth)) return 16 * (g->C + g->M) * ((NT + 7) / 8 * 8 + 8);
    return nth * wino_slot_floats(g);
}

static void w4_weights(float *u4, const float *w, int64_t MC);

/* U (16, M, C) from W (M, C, 3, 3), built once per node under the kcache lock. For weights small
 * enough for F(4x4) (M C <= W4_MAX_MC, a property of the node alone, so every call agrees on the
 * layout) the same allocation (kcache is one pointer, freed with free()) continues with the
 * F(4x4) U4 (36, M, C): the F(2x2) code reads the start, the F(4x4) forward from 16 M C on. Each
 * part is built the first time it is asked for (a flag each in a header before them): a forward
 * on F(4x4) alone never touches F(2x2)'s pages, which then take no memory. */
typedef struct {
    int built[2]; /* U (F(2x2)), U4 (F(4x4)): read with acquire, set with release under the lock */
    char pad[64 - 2 * sizeof(int)];
} wg_ucache;

static void wino_u2(float *u, const float *w, int64_t MC) {
    for (int64_t mc = 0; mc < MC; mc++) {
        const float *f = w + mc * 9;
        float t[4][3]; /* G f: rows for the points 0, 1, -1, infinity */
        for (int j = 0; j < 3; j++) {
            t[0][j] = f[j];
            t[1][j] = 0.5f * (f[j] + f[3 + j] + f[6 + j]);
            t[2][j] = 0.5f * (f[j] - f[3 + j] + f[6 + j]);
            t[3][j] = f[6 + j];
        }
        for (int i = 0; i < 4; i++) { /* (G f) G^T */
            u[(i * 4 + 0) * MC + mc] = t[i][0];
            u[(i * 4 + 1) * MC + mc] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
            u[(i * 4 + 2) * MC + mc] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
            u[(i * 4 + 3) * MC + mc] = t[i][2];
        }
    }
}

/* U (f4 0) or U4 (f4 1), NULL without memory */
static const float *wino_weights(const gc_kctx *k, const conv_geom *g, int f4) {
    gc_node *n = (gc_node *)k->node; /* kcache is the one field kernels write, once, under the lock */
    const int64_t MC = g->M * g->C;
    wg_ucache *h = __atomic_load_n((wg_ucache **)&n->kcache, __ATOMIC_ACQUIRE);
    if (h && __atomic_load_n(&h->built[f4], __ATOMIC_ACQUIRE)) return (const float *)(h + 1) + (f4 ? 16 * MC : 0);
    gc_kcache_lock();
    h = n->kcache;
    if (!h) { /* the parts' pages untouched until built */
        const int with4 = MC <= W4_MAX_MC;
        h = gc_malloc2((size_t)MC * (with4 ? 16 + 36 : 16) + 16, sizeof(float));
        if (h) {
            memset(h, 0, sizeof *h);
            __atomic_store_n((wg_ucache **)&n->kcache, h, __ATOMIC_RELEASE);
        }
    }
    const float *u = NULL;
    if (h && (!f4 || MC <= W4_MAX_MC)) {
        float *part = (float *)(h + 1) + (f4 ? 16 * MC : 0);
        if (!h->built[f4]) {
            const float *w = k->in[1]->data; /* (M, C, 3, 3) */
            if (f4) w4_weights(part, w, MC);
            else wino_u2(part, w, MC);
            __atomic_store_n(&h->built[f4], 1, __ATOMIC_RELEASE);
            /* the Winograd paths read U only (the forward and the data gradient): W's pages in the
             * mapped file go back (the other part or an im2col elsewhere reads them again) */
            gc_model_release(k->model, w, (size_t)MC * 9 * sizeof(float));
        }
        u = part;
    }
    gc_kcache_unlock();
    return u;
}

/* U when this convolution runs as Winograd here (eligible, scratch planned for it, U built), or
 * NULL for the im2col path: the one decision the forward and the backward share. */
static const float *wino_ready(const gc_kctx *k, const conv_geom *g, int nth, int fw) {
    if (g->path != PATH_GEMM || !wino_eligible(k, g, fw) ||
        k->scratch_size < (size_t)wino_scratch_floats(g, nth, fw) * sizeof(float))
        return NULL;
    return wino_weights(k, g, 0); /* NULL without memory for U */
}

/* The helpers of wino_run, inlined into each of its clones (each gets the clone's vector ISA). */
#define WG_INLINE static inline __attribute__((always_inline))

/* A run of a block: its tiles j0 .. j0 + n - 1 lie in one image and one tile row (ty), from tile
 * column tx on, so their patches (and their outputs) are side by side in the same rows. Runs
 * stop at the WG_SUB sub-blocks, so n <= WG_SUB. */
typedef struct {
    int64_t j0, n, img, ty, tx;
} wg_run;

/* The runs of the nt tiles from t0 (T tiles per image, tw per tile row); first[s] is the first
 * run of sub-block s (tiles s sub ..; sub is WG_SUB for F(2x2), W4_SUB for F(4x4)),
 * first[number of sub-blocks] the count of runs. */
static void wino_runs(wg_run *rs, int *first, int64_t t0, int64_t nt, int64_t T, int64_t tw, int64_t sub) {
    int nr = 0, s = 0;
    for (int64_t j = 0; j < nt;) {
        if (j % sub == 0) first[s++] = nr;
        const int64_t t = t0 + j, r = t % T, tx = r % tw;
        const int64_t n = GC_MIN(GC_MIN(nt - j, tw - tx), sub - j % sub);
        rs[nr++] = (wg_run){.j0 = j, .n = n, .img = t / T, .ty = r / tw, .tx = tx};
        j += n;
    }
    first[s] = nr;
}

/* Zeros standing for the input outside the map (rows above or below, columns left or right). */
static const float wg_zero_row[2 * WG_SUB + 2];
#define WG_EW (2 * WG_SUB + 18) /* columns of wino_in_run's rows: a run's 2n + 2, and up to 16 past */

/* B^T d for nx columns: rows e0 .. e3 = d0 - d2, d1 + d2, d2 - d1, d1 - d3. */
WG_INLINE void wino_in_cols(float *restrict e0, float *restrict e1, float *restrict e2, float *restrict e3,
                            const float *restrict d0, const float *restrict d1, const float *restrict d2,
                            const float *restrict d3, int64_t nx) {
    for (int64_t x = 0; x < nx; x++) {
        e0[x] = d0[x] - d2[x];
        e1[x] = d1[x] + d2[x];
        e2[x] = d2[x] - d1[x];
        e3[x] = d1[x] - d3[x];
    }
}

/* Input transform of one run in one channel, row by row: the patches of its n tiles span the 4
 * rows y0 .. y0 + 3 and the 2n + 2 columns xs .. xs + 2n + 1 of the channel src (IH, IW), zeros
 * outside. B^T d as additions of whole rows (the columns of all tiles at once) into E, then d B
 * per tile from its columns 2j .. 2j + 3 (the same additions, in the same order, as for each
 * patch on its own: wino_in_tiles). V[e] gets the tile's point e at o + e * es + j, for j < n,
 * or with over for j < n rounded up to 8 (no scalar remainder): the caller lets a run write past
 * its end only where a later run or channel overwrites it; E's columns past 2n + 2 hold finite
 * values of earlier runs. */
WG_INLINE void wino_in_run(float *restrict o, int64_t es, float (*restrict E)[WG_EW], const float *restrict src,
                           int64_t IH, int64_t IW, int64_t y0, int64_t xs, int64_t n, int over) {
    const int64_t W = 2 * n + 2;                        /* columns xs .. xs + W - 1 */
    const int64_t lo = GC_MIN(W, GC_MAX(0, -xs));      /* columns left of the map */
    const int64_t hi = GC_MAX(lo, GC_MIN(W, IW - xs)); /* from here on: right of the map */
    const int64_t m = over ? (n + 7) / 8 * 8 : n;       /* tiles written */
    const float *r[4], *z = wg_zero_row;
    for (int u = 0; u < 4; u++)
        r[u] = y0 + u >= 0 && y0 + u < IH ? src + (y0 + u) * IW + xs + lo : z;
    /* the columns outside the map as additions of zeros (loops storing zeros become memset calls) */
    wino_in_cols(E[0], E[1], E[2], E[3], z, z, z, z, lo);
    wino_in_cols(E[0] + lo, E[1] + lo, E[2] + lo, E[3] + lo, r[0], r[1], r[2], r[3], hi - lo);
    wino_in_cols(E[0] + hi, E[1] + hi, E[2] + hi, E[3] + hi, z, z, z, z, W - hi);
    for (int k = 0; k < 4; k++) { /* (B^T d) B: (a - c, b + c, c - b, b - d) of each tile's columns (a, b, c, d) */
        const float *restrict f = E[k];
        float *restrict o0 = o + (k * 4 + 0) * es, *restrict o1 = o + (k * 4 + 1) * es,
                        *restrict o2 = o + (k * 4 + 2) * es, *restrict o3 = o + (k * 4 + 3) * es;
        for (int64_t j = 0; j < m; j++) {
            const float a = f[2 * j], b = f[2 * j + 1], c = f[2 * j + 2], d = f[2 * j + 3];
            o0[j] = a - c;
            o1[j] = b + c;
            o2[j] = c - b;
            o3[j] = b - d;
        }
    }
}

/* For the tile-by-tile input transforms (both Winograd sizes): where each tile's patch starts,
 * for the tiles of the nr runs of a sub-block, step input pixels apart (the output tile's size):
 * its image's offset in `in`, its top row and left column (either may be outside the map).
 * Returns the tile count. */
WG_INLINE int64_t wg_patch_starts(int64_t *pimg, int64_t *py, int64_t *px, const wg_run *rs, int nr, int64_t chw,
                                  int64_t step, int64_t pt, int64_t pl) {
    int64_t nt = 0;
    for (int i = 0; i < nr; i++)
        for (int64_t j = 0; j < rs[i].n; j++, nt++) {
            pimg[nt] = rs[i].img * chw;
            py[nt] = rs[i].ty * step - pt;
            px[nt] = (rs[i].tx + j) * step - pl;
        }
    return nt;
}
/* D[u * P + v][j] (rows of ld floats) = the P x P patch of one channel src (IH, IW) from row y0,
 * column x0, zeros outside the map (clamped loads, zeros selected, where the patch crosses it). */
WG_INLINE void wg_gather_patch(float *D, int64_t ld, int64_t j, const float *src, int64_t IH, int64_t IW, int64_t y0,
                               int64_t x0, const int P) {
    const int cols_in = x0 >= 0 && x0 + P <= IW;
    for (int u = 0; u < P; u++) {
        const int in_map = y0 + u >= 0 && y0 + u < IH;
        const float *r = src + (in_map ? y0 + u : 0) * IW;
        if (in_map && cols_in)
            for (int v = 0; v < P; v++) D[(u * P + v) * ld + j] = r[x0 + v];
        else
            for (int v = 0; v < P; v++) {
                const int64_t xx = x0 + v;
                const int ok = in_map && xx >= 0 && xx < IW;
                const float t = r[ok ? xx : 0];
                D[(u * P + v) * ld + j] = ok ? t : 0.0f;
            }
    }
}

/* Input transform tile by tile, for maps whose tile rows are too short for wino_in_run to pay
 * off: the nr runs of one sub-block, each 4x4 patch gathered into D (16, tiles) (zeros outside
 * the map), then B^T d B as additions over the sub-block's tiles; V[e] of channel c (c0 <= c <
 * c1) at o + e * es + c * B + j. */
WG_INLINE void wino_in_tiles(float *o, int64_t es, int64_t B, const float *in, int64_t Ci, int64_t c0, int64_t c1,
                             int64_t IH, int64_t IW, int64_t pt, int64_t pl, const wg_run *rs, int nr) {
    const int64_t jb = rs[0].j0;
    int64_t pimg[WG_SUB], py[WG_SUB], px[WG_SUB]; /* where each tile's patch starts */
    const int64_t nt = wg_patch_starts(pimg, py, px, rs, nr, Ci * IH * IW, 2, pt, pl);
    for (int64_t c = c0; c < c1; c++) {
        float D[16][WG_SUB], E[16][WG_SUB];
        for (int64_t j = 0; j < nt; j++)
            wg_gather_patch(&D[0][0], WG_SUB, j, in + pimg[j] + c * IH * IW, IH, IW, py[j], px[j], 4);
        for (int v = 0; v < 4; v++) /* B^T d, rows u */
            for (int64_t j = 0; j < nt; j++) {
                float d0 = D[v][j], d1 = D[4 + v][j], d2 = D[8 + v][j], d3 = D[12 + v][j];
                E[v][j] = d0 - d2;
                E[4 + v][j] = d1 + d2;
                E[8 + v][j] = d2 - d1;
                E[12 + v][j] = d1 - d3;
            }
        float *dst = o + c * B + jb;
        for (int u = 0; u < 4; u++) { /* (B^T d) B, columns v */
            float *o0 = dst + (u * 4 + 0) * es, *o1 = dst + (u * 4 + 1) * es, *o2 = dst + (u * 4 + 2) * es,
                  *o3 = dst + (u * 4 + 3) * es;
            const float *e0 = E[u * 4], *e1 = E[u * 4 + 1], *e2 = E[u * 4 + 2], *e3 = E[u * 4 + 3];
            for (int64_t j = 0; j < nt; j++) {
                o0[j] = e0[j] - e2[j];
                o1[j] = e1[j] + e2[j];
                o2[j] = e2[j] - e1[j];
                o3[j] = e1[j] - e3[j];
            }
        }
    }
}

/* One output row of a run: q0, q1 (the tiles' left and right outputs in this row) interleaved
 * into p (the row from the run's first column), n tiles of which the last may have only its
 * left column inside (nx columns left in the row); add: += (backward), else =. */
WG_INLINE void wino_out_row(float *restrict p, const float *restrict q0, const float *restrict q1, int64_t n,
                            int64_t nx, int add) {
    const int64_t nf = GC_MIN(n, nx / 2); /* whole tiles */
    if (add)
        for (int64_t j = 0; j < nf; j++) {
            p[2 * j] += q0[j];
            p[2 * j + 1] += q1[j];
        }
    else
        for (int64_t j = 0; j < nf; j++) {
            p[2 * j] = q0[j];
            p[2 * j + 1] = q1[j];
        }
    if (nf < n) p[2 * nf] = add ? p[2 * nf] + q0[nf] : q0[nf];
}

/* The outputs of one run tile by tile (short rows): tile j0 + j of Q (4, WG_SUB) goes to p + 2 j
 * (rows OW apart), nx columns and ny rows left in the map from p; add: += (backward), else =. */
WG_INLINE void wino_out_tiles(float *p, int64_t OW, float Q[4][WG_SUB], int64_t j0, int64_t n, int64_t nx, int64_t ny,
                              int add) {
    for (int64_t j = 0; j < n; j++, p += 2, nx -= 2) {
        const float *q = Q[0] + j0 + j;
        if (nx >= 2 && ny >= 2) {
            if (add) {
                p[0] += q[0], p[1] += q[WG_SUB], p[OW] += q[2 * WG_SUB], p[OW + 1] += q[3 * WG_SUB];
            } else {
                p[0] = q[0], p[1] = q[WG_SUB], p[OW] = q[2 * WG_SUB], p[OW + 1] = q[3 * WG_SUB];
            }
            continue;
        }
        for (int u = 0; u < 2 && u < ny; u++)
            for (int v = 0; v < 2 && v < nx; v++) {
                float *t = p + u * OW + v;
                *t = add ? *t + q[(u * 2 + v) * WG_SUB] : q[(u * 2 + v) * WG_SUB];
            }
    }
}

/* What the phases of one block of wino_run need: the geometry, the block's runs and buffers. */
typedef struct {
    const float *in, *U, *bias, *res;
    float *out, *V, *Mt;
    int64_t Ci, Co, IH, IW, OH, OW, pt, pl, B, nb, nsub, MC;
    const wg_run *rs;
    const int *first;
    int bw, rows_in, rows_out, act, qact, isa;
    float lo, hi;
} wg_job;

/* input transform of channels [c0, c1): V[e] (Ci, nb) */
WG_INLINE void wino_in_chans(const wg_job *j, float (*E)[WG_EW], int64_t c0, int64_t c1) {
    const int64_t Ci = j->Ci, B = j->B, IH = j->IH, IW = j->IW, pt = j->pt, pl = j->pl;
    const int nr = j->first[j->nsub];
    if (j->rows_in)
        for (int64_t c = c0; c < c1; c++)
            for (int i = 0; i < nr; i++) {
                const wg_run *q = &j->rs[i];
                const float *src = j->in + (q->img * Ci + c) * IH * IW;
                if (c + 1 < c1) { /* the run's rows in the next channel */
                    const int64_t ya = GC_MAX(0, q->ty * 2 - pt), yb = GC_MIN(IH, q->ty * 2 - pt + 4);
                    for (const float *p = src + IH * IW + ya * IW; p < src + IH * IW + yb * IW; p += 16)
                        __builtin_prefetch(p, 0, 3);
                }
                /* writing past the run: over the next runs, or the next channel's first tiles of
                 * V[e] (c + 1 comes later, in this thread), never past the last channel's end
                 * (V[e + 1] is done) nor past B when channels are shared out */
                const int over = c + 1 < c1 || q->j0 + (q->n + 7) / 8 * 8 <= B;
                wino_in_run(j->V + c * B + q->j0, Ci * B, E, src, IH, IW, q->ty * 2 - pt, q->tx * 2 - pl, q->n, over);
            }
    else
        for (int64_t s = 0; s < j->nsub; s++)
            wino_in_tiles(j->V, Ci * B, B, j->in, Ci, c0, c1, IH, IW, pt, pl, j->rs + j->first[s],
                          j->first[s + 1] - j->first[s]);
}

/* GEMMs e0 .. e1 - 1 of the 16: Mt[e] (Co, nb) = U_e (Co, Ci) . V[e] (Ci, nb) */
WG_INLINE void wino_gemms(const wg_job *j, int e0, int e1) {
    static const int perm[4] = {3, 1, 2, 0};
    for (int e = e0; e < e1; e++) {
        const float *A = j->bw ? j->U + (int64_t)(perm[e / 4] * 4 + perm[e % 4]) * j->MC : j->U + (int64_t)e * j->MC;
        gc_sg_gemm(j->isa, 1, j->bw, 0, j->Co, j->nb, j->Ci, 1.0f, A, j->bw ? j->Co : j->Ci,
                   j->V + (int64_t)e * j->Ci * j->B, j->B, 0.0f, j->Mt + (int64_t)e * j->Co * j->B, j->B);
    }
}

/* output transform of channels [o0, o1): A^T m A, A^T = [1 1 1 0; 0 1 -1 -1], over whole
 * sub-blocks of tiles, then each run's outputs: rows 2 ty, 2 ty + 1 (the second may be below the map) */
WG_INLINE void wino_out_chans(const wg_job *j, int64_t o0, int64_t o1) {
    const int64_t B = j->B, es = j->Co * B, Co = j->Co, OH = j->OH, OW = j->OW;
    for (int64_t o = o0; o < o1; o++) {
        const float bv = j->bias ? j->bias[o] : 0.0f;
        for (int64_t s = 0; s < j->nsub; s++) {
            const int64_t j00 = s * WG_SUB, nt = GC_MIN(WG_SUB, j->nb - j00);
            const float *m = j->Mt + o * B + j00;
            float R[8][WG_SUB], Q[4][WG_SUB];
            for (int v = 0; v < 4; v++) {
                const float *m0 = m + v * es, *m1 = m + (4 + v) * es, *m2 = m + (8 + v) * es, *m3 = m + (12 + v) * es;
                for (int64_t t = 0; t < nt; t++) {
                    R[v][t] = m0[t] + m1[t] + m2[t];
                    R[4 + v][t] = m1[t] - m2[t] - m3[t];
                }
            }
            for (int u = 0; u < 2; u++)
                for (int64_t t = 0; t < nt; t++) {
                    const float *r = &R[u * 4][0];
                    Q[u * 2][t] = r[t] + r[WG_SUB + t] + r[2 * WG_SUB + t];
                    Q[u * 2 + 1][t] = r[WG_SUB + t] - r[2 * WG_SUB + t] - r[3 * WG_SUB + t];
                }
            if (!j->bw) /* forward: the bias, and the fused activation unless a fused Add comes first */
                for (int e = 0; e < 4; e++) {
                    for (int64_t t = 0; t < nt; t++) Q[e][t] = bv + Q[e][t];
                    epi_seq(Q[e], NULL, nt, j->qact, j->lo, j->hi);
                }
            for (int i = j->first[s]; i < j->first[s + 1]; i++) {
                const wg_run *q = &j->rs[i];
                const int64_t y0 = q->ty * 2, x0 = q->tx * 2, t = q->j0 - j00;
                float *p = j->out + (q->img * Co + o) * OH * OW + y0 * OW + x0;
                if (o + 1 < o1) /* the run's output rows in the next channel */
                    for (int64_t x = 0; x < GC_MIN(2, OH - y0) * OW; x += 16)
                        __builtin_prefetch(p + OH * OW - x0 + x, 1, 3);
                if (j->rows_out) {
                    wino_out_row(p, Q[0] + t, Q[1] + t, q->n, OW - x0, j->bw == 1);
                    if (y0 + 1 < OH) wino_out_row(p + OW, Q[2] + t, Q[3] + t, q->n, OW - x0, j->bw == 1);
                } else
                    wino_out_tiles(p, OW, Q, t, q->n, OW - x0, OH - y0, j->bw == 1);
                if (j->res) /* the fused Add on the rows just written (in cache), then act */
                    for (int64_t u = 0; u < GC_MIN(2, OH - y0); u++)
                        epi_seq(p + u * OW, j->res + (p - j->out) + u * OW, GC_MIN(2 * q->n, OW - x0), j->act, j->lo,
                                j->hi);
            }
        }
    }
}


/* out (N, Co, OH, OW) (= bias + or +=) the 3x3 correlation of in (N, Ci, IH, IW) whose output pixel
 * (y, x) reads input rows y - pt .. y - pt + 2 (outside: zeros). bw = 0: U[e] (Co, Ci) as stored
 * (forward, Co = M); bw = 1: U[p(e)]^T (backward, Co = C). Tiles of all images are blocked together
 * (small late maps still fill a block); each thread owns whole blocks, so every output element is
 * written by one thread in a fixed order. Few tiles (wg_shared): one block, its phases shared out
 * (channels, GEMMs, channels), each output element still written by one thread. The transforms go
 * channel by channel over the block's runs (wino_runs): with tile rows of WG_ROWS_IN tiles or more,
 * the input row by row (contiguous loads and stores, vectorised), else tile by tile a sub-block at
 * a time; the output always a sub-block at a time, then written row by row (WG_ROWS_OUT tiles or
 * more) or tile by tile. The next channel's rows are prefetched (their planes are far apart). The
 * same additions in the same order on every path: the results do not depend on the path. The
 * backward adds into out (bw = 1) or, a data gradient written first here, assigns it (bw = 2:
 * every element is written once). */
CV_CLONES
static void wino_run(float *out, const float *in, const float *U, int bw, int64_t N, int64_t Ci, int64_t Co, int64_t IH,
                     int64_t IW, int64_t OH, int64_t OW, int64_t pt, int64_t pl, const float *bias, int64_t blk,
                     const gc_sg_epi *ep, float *scratch, int isa, int nth) {
    const int64_t th = (OH + 1) / 2, tw = (OW + 1) / 2, T = th * tw, NT = N * T;
    const int64_t slot = 16 * (Ci + Co) * blk; /* the scratch holds nth slots of blk tiles */
    const int shared = wg_shared(NT, blk, WG_SUB, nth);
    /* a block for every thread when the tiles are few (small late maps at batch 1); shared: one
     * block, 8 tiles of room past the last */
    const int64_t B = shared ? (NT + 7) / 8 * 8 + 8 : GC_MIN(blk, GC_MAX(WG_SUB / 2, (NT + nth - 1) / nth + 7) / 8 * 8);
    const int64_t nblk = (NT + B - 1) / B;
    const wg_job j0 = {.in = in, .U = U, .bias = bias, .res = ep ? ep->res : NULL, .out = out, .Ci = Ci, .Co = Co,
                       .IH = IH, .IW = IW, .OH = OH, .OW = OW, .pt = pt, .pl = pl, .B = B, .MC = Ci * Co, .bw = bw,
                       .rows_in = tw >= WG_ROWS_IN, .rows_out = tw >= WG_ROWS_OUT, .act = ep ? ep->act : GC_ACT_NONE,
                       .isa = isa, .lo = ep ? ep->lo : 0.0f, .hi = ep ? ep->hi : 0.0f};
#pragma omp parallel num_threads(nth)
    {
        wg_job j = j0;
        j.qact = j.res ? GC_ACT_NONE : j.act; /* with a fused Add, the activation comes after it */
        j.V = scratch + (shared ? 0 : (int64_t)omp_get_thread_num() * slot); /* (16, Ci, B) */
        j.Mt = j.V + 16 * Ci * B;                                              /* (16, Co, B) */
        wg_run rs[WG_MAX_TILES];
        int first[WG_MAX_TILES / WG_SUB + 1];
        float E[4][WG_EW] = {{0}}; /* wino_in_run's rows (zeros to begin with: finite past the runs) */
        j.rs = rs;
        j.first = first;
        if (shared) {
            j.nb = NT;
            j.nsub = (NT + WG_SUB - 1) / WG_SUB;
            wino_runs(rs, first, 0, NT, T, tw, WG_SUB);
            int64_t c0, c1;
            gc_omp_range(Ci, &c0, &c1);
            wino_in_chans(&j, E, c0, c1);
#pragma omp barrier
#pragma omp for schedule(static)
            for (int e = 0; e < 16; e++) wino_gemms(&j, e, e + 1);
            gc_omp_range(Co, &c0, &c1);
            wino_out_chans(&j, c0, c1);
        } else {
#pragma omp for schedule(dynamic)
            for (int64_t b = 0; b < nblk; b++) {
                const int64_t t00 = b * B;
                j.nb = GC_MIN(B, NT - t00);
                j.nsub = (j.nb + WG_SUB - 1) / WG_SUB;
                wino_runs(rs, first, t00, j.nb, T, tw, WG_SUB);
                wino_in_chans(&j, E, 0, Ci);
                wino_gemms(&j, 0, 16);
                wino_out_chans(&j, 0, Co);
            }
        }
    }
}

/* ---------------------------------------------------------------- Winograd F(4x4, 3x3) */

/* The forward of the Winograd-eligible convolutions with small weights (M C <= W4_MAX_MC:
 * DenseNet's 128->32 growth layers, ResNet-50's 64->64 and 128->128, VGG-16's first layers) runs
 * as F(4x4, 3x3): each 4x4 output tile from a 6x6 input patch, 36 GEMMs over a block of tiles,
 * 36 multiply-adds per 16 outputs (2.25 per output, F(2x2): 4, im2col: 9). U4 takes 4x the
 * weights' memory, so larger layers stay on F(2x2), and so does the data gradient (F(2x2)'s U
 * serves it, built in the same allocation).
 * Points 0, 1, -1, 1/2, -2 and infinity, y = A^T [(G g G^T) . (B^T d B)] A with
 *   B^T = [ 2 -3 -4  3  2  0 ]   G = [ 1/2     0     0   ]   A^T = [ 1  1  1  1    1  0 ]
 *         [ 0 -2  1  5  2  0 ]       [ 1/6   1/6   1/6   ]         [ 0  1 -1  1/2 -2  0 ]
 *         [ 0 -2  5 -1 -2  0 ]       [ 1/6  -1/6   1/6   ]         [ 0  1  1  1/4  4  0 ]
 *         [ 0  2  1 -2 -1  0 ]       [ 16/15 8/15  4/15  ]         [ 0  1 -1  1/8 -8  1 ]
 *         [ 0  1 -2 -1  2  0 ]       [ 1/30 -1/15  2/15  ]
 *         [ 0  2 -3 -4  3  2 ]       [ 0     0     1/2   ]
 * (A^T: the points' powers; B^T: the inverse Vandermonde transposed, rows scaled to small
 * integers with the scale moved into G; verified symbolically against the direct sum.) With
 * Cin 128, Cout 32, He-scaled weights and ReLU inputs (28x28, against a direct sum in double)
 * the largest error relative to max |y| was 2.1-2.7e-6 with these points, 6.0-10.7e-6 with
 * 0, +-1, +-1/2 and 6.7-7.8e-6 with 0, +-1, +-2 (4 seeds; F(2x2): 3.3-4.5e-7, im2col 3e-7): a
 * point and its negated reciprocal keep the entries of B^T and A^T small. U4 is computed in
 * double and rounded once.
 * Layout and threads as wino_run: blocks of B tiles over all images, one block per thread at a
 * time, V (36, Cin, B) and Mt (36, Cout, B) in the thread's scratch slot; the input transform
 * is B^T along the patch columns over whole rows of a run (contiguous, vectorised over the map's
 * columns), then per tile along its 6 columns (each row split into its 4 column phases first, so
 * this too is vectorised over tiles); short tile rows gather each 6x6 patch into a sub-block
 * array first. */
#define W4_SUB 32            /* tiles a sub-block: transformed at a time (local arrays stay in L1) */
#define W4_MAX_TILES 512     /* tiles per block at most */
#define W4_ROWS_IN 6         /* tiles a tile row from which the input transform goes row by row */
#define W4_ROWS_OUT 3        /* the same for writing the outputs */
#define W4_EW (4 * W4_SUB + 32) /* columns of w4_in_run's rows: a run's 4n + 2, and up to 28 past */
/* Floats between V[e] and V[e + 1] (and M[e], M[e + 1]) beyond their data: without it the 36
 * planes start at the same offset modulo 4 KB (Cin B a multiple of 1024 for the usual channel
 * counts), so the six streams a transform loop writes, or reads, share an L1 set (8 ways) and
 * evict each other (the input transform took about as long as the 36 GEMMs). One line apart, they spread
 * over the sets; at least 8, so writing up to 7 tiles past a run stays inside V[e]'s pad. */
#define W4_PAD 16

/* G of the points above, in double (U4 is rounded once) */
static const double w4_G[6][3] = {{0.5, 0.0, 0.0},
                                  {1.0 / 6, 1.0 / 6, 1.0 / 6},
                                  {1.0 / 6, -1.0 / 6, 1.0 / 6},
                                  {16.0 / 15, 8.0 / 15, 4.0 / 15},
                                  {1.0 / 30, -1.0 / 15, 2.0 / 15},
                                  {0.0, 0.0, 0.5}};

/* u4 (36, MC) = G f G^T of each 3x3 filter f of w (MC, 3, 3). */
static void w4_weights(float *u4, const float *w, int64_t MC) {
    for (int64_t mc = 0; mc < MC; mc++) {
        const float *f = w + mc * 9;
        double t[6][3]; /* G f */
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 3; j++)
                t[i][j] = w4_G[i][0] * f[j] + w4_G[i][1] * f[3 + j] + w4_G[i][2] * f[6 + j];
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 6; j++)
                u4[(i * 6 + j) * MC + mc] =
                    (float)(t[i][0] * w4_G[j][0] + t[i][1] * w4_G[j][1] + t[i][2] * w4_G[j][2]);
    }
}

/* F(4x4) for this forward: eligible for Winograd, small weights, 4x4 tiles for every thread
 * (the same rule as F(2x2)'s), no backward planned through it (k.exact, plan.c), and not switched
 * off (GCAM_NO_WINOGRAD4=1: A/B measurements). */
static int w4_eligible(const gc_kctx *k, const conv_geom *g) {
    if (k->exact || !wino_eligible(k, g, 1) || g->M * g->C > W4_MAX_MC) return 0;
    if (gc_ktune(k)->no_winograd4) return 0;
    const int64_t tiles = g->N * ((g->lw.col[0] + 3) / 4) * ((g->lw.col[1] + 3) / 4);
    return tiles >= (int64_t)W4_SUB * GC_MAX(1, k->nthreads) / 2;
}

/* Tiles per block: V (36, Cin, B) about 2.4 MB (V[e] 64 KB), B = 128 for 128 channels. The
 * transforms write V and the GEMMs' packing reads it back: with 224 tiles (V 4 MB) the 128 -> 32
 * layer on a 56x56 map took 10-15% longer, 64 tiles were no faster than 128. At most F(2x2)'s
 * slot (36 (C + M) B4 <= 16 (C + M) B2): the planned scratch does not grow. */
static int64_t w4_block(const conv_geom *g) {
    const int64_t t = GC_MIN(((int64_t)1 << 14) / GC_MAX(g->C, g->M), wino_block(g) * 16 / 36);
    return GC_MAX(W4_SUB, GC_MIN(W4_MAX_TILES, t / 8 * 8));
}
/* Floats of one thread's slot: V (36, C, tiles) and M (36, M, tiles), each V[e] and M[e]
 * followed by W4_PAD floats. */
static int64_t w4_slot_floats(const conv_geom *g) { return 36 * ((g->C + g->M) * w4_block(g) + 2 * W4_PAD); }
/* wino_scratch_floats for F(4x4) (forward only) */
static int64_t w4_scratch_floats(const conv_geom *g, int nth) {
    const int64_t NT = g->N * ((g->lw.col[0] + 3) / 4) * ((g->lw.col[1] + 3) / 4);
    if (wg_shared(NT, w4_block(g), W4_SUB, nth)) return 36 * ((g->C + g->M) * ((NT + 7) / 8 * 8 + 8) + 2 * W4_PAD);
    return nth * w4_slot_floats(g);
}

/* U4 when this forward runs as F(4x4) (eligible, scratch planned for it, U built), else NULL
 * (F(2x2) or im2col then decide). */
static const float *w4_ready(const gc_kctx *k, const conv_geom *g, int nth) {
    if (g->path != PATH_GEMM || !w4_eligible(k, g) ||
        k->scratch_size < (size_t)w4_scratch_floats(g, nth) * sizeof(float))
        return NULL;
    return wino_weights(k, g, 1);
}

/* r = B^T d of six values (the rows of B^T above, sharing the differences u and v) */
WG_INLINE void w4_bt(float *r, float d0, float d1, float d2, float d3, float d4, float d5) {
    const float u = d1 - d3, v = d2 - d4, a = 3.0f * d2 - 2.0f * u, b = 3.0f * d3 - 2.0f * v;
    r[0] = 2.0f * (d0 - d2) - 3.0f * u - 2.0f * v;
    r[1] = a + b;
    r[2] = a - b;
    r[3] = 2.0f * u + v;
    r[4] = u - 2.0f * v;
    r[5] = 2.0f * u - 3.0f * v - 2.0f * (d3 - d5);
}
/* y = A^T m of six values */
WG_INLINE void w4_at(float *y, float m0, float m1, float m2, float m3, float m4, float m5) {
    const float a = m1 + m2, b = m1 - m2;
    y[0] = m0 + a + m3 + m4;
    y[1] = b + 0.5f * m3 - 2.0f * m4;
    y[2] = a + 0.25f * m3 + 4.0f * m4;
    y[3] = b + 0.125f * m3 - 8.0f * m4 + m5;
}

static const float w4_zero_row[4 * W4_SUB + 2]; /* the input outside the map */

/* o_k[x] = (B^T d)[k] of the six values d_0[x] .. d_5[x], for x < nx: each pass of the input
 * transform (restrict parameters: GCC does not vectorise six output streams of pointers declared
 * inside a loop, the aliasing checks would be too many). */
WG_INLINE void w4_bt_vec(float *restrict o0, float *restrict o1, float *restrict o2, float *restrict o3,
                         float *restrict o4, float *restrict o5, const float *restrict d0, const float *restrict d1,
                         const float *restrict d2, const float *restrict d3, const float *restrict d4,
                         const float *restrict d5, int64_t nx) {
    for (int64_t x = 0; x < nx; x++) {
        float r[6];
        w4_bt(r, d0[x], d1[x], d2[x], d3[x], d4[x], d5[x]);
        o0[x] = r[0], o1[x] = r[1], o2[x] = r[2], o3[x] = r[3], o4[x] = r[4], o5[x] = r[5];
    }
}

/* E[k][o + x] = (B^T d)[k] of column x of the six rows d, for x < nx */
WG_INLINE void w4_in_cols(float (*restrict E)[W4_EW], int64_t o, const float *d0, const float *d1, const float *d2,
                          const float *d3, const float *d4, const float *d5, int64_t nx) {
    w4_bt_vec(E[0] + o, E[1] + o, E[2] + o, E[3] + o, E[4] + o, E[5] + o, d0, d1, d2, d3, d4, d5, nx);
}

/* (B^T d) B of the tiles j < m from E's rows (tile j: columns 4j .. 4j + 5); V point k * 6 + v of
 * tile j at o + (k * 6 + v) * es + j. Each row is first split into its four column phases
 * P[v][j] = E[k][4j + v], so tile j's columns are P[0..3][j], P[0][j + 1], P[1][j + 1] and the
 * transform loads contiguous vectors (read in place, the overlapping stride-4 loads stay scalar). */
WG_INLINE void w4_in_tiles_of_rows(float *o, int64_t es, float (*restrict E)[W4_EW], int64_t m) {
    float P[6][4][W4_SUB + 8];
    for (int k = 0; k < 6; k++) {
        const float *restrict f = E[k];
        for (int64_t j = 0; j <= m; j++) {
            P[k][0][j] = f[4 * j];
            P[k][1][j] = f[4 * j + 1];
            P[k][2][j] = f[4 * j + 2];
            P[k][3][j] = f[4 * j + 3];
        }
    }
    /* all rows split before any is read back: the reads at j + 1 straddle two stores, which
     * stalls (no store forwarding) while those are still in flight */
    for (int k = 0; k < 6; k++) {
        float *ok = o + k * 6 * es;
        w4_bt_vec(ok, ok + es, ok + 2 * es, ok + 3 * es, ok + 4 * es, ok + 5 * es, P[k][0], P[k][1], P[k][2], P[k][3],
                  P[k][0] + 1, P[k][1] + 1, m);
    }
}

/* Input transform of one run in one channel, row by row: the patches of its n tiles span the 6
 * rows y0 .. y0 + 5 and the 4n + 2 columns xs .. of the channel src (IH, IW), zeros outside.
 * V gets n tiles from o, and up to 7 more (no scalar remainder), which later runs or channels
 * overwrite, or which fall in V[e]'s pad; E's columns past 4n + 2 hold finite values. */
WG_INLINE void w4_in_run(float *restrict o, int64_t es, float (*restrict E)[W4_EW], const float *restrict src,
                         int64_t IH, int64_t IW, int64_t y0, int64_t xs, int64_t n) {
    const int64_t W = 4 * n + 2;                        /* columns xs .. xs + W - 1 */
    const int64_t lo = GC_MIN(W, GC_MAX(0, -xs));      /* columns left of the map */
    const int64_t hi = GC_MAX(lo, GC_MIN(W, IW - xs)); /* from here on: right of the map */
    const float *r[6], *z = w4_zero_row;
    for (int u = 0; u < 6; u++) r[u] = y0 + u >= 0 && y0 + u < IH ? src + (y0 + u) * IW + xs + lo : z;
    /* the columns outside the map as transforms of zeros (loops storing zeros become memset calls) */
    w4_in_cols(E, 0, z, z, z, z, z, z, lo);
    w4_in_cols(E, lo, r[0], r[1], r[2], r[3], r[4], r[5], hi - lo);
    w4_in_cols(E, hi, z, z, z, z, z, z, W - hi);
    w4_in_tiles_of_rows(o, es, E, (n + 7) / 8 * 8);
}

/* Input transform tile by tile (tile rows too short for w4_in_run): the nr runs of a sub-block,
 * each 6x6 patch gathered into D (36, tiles) (zeros outside the map), then B^T d B over the
 * sub-block's tiles, in the same order as w4_in_run (the results do not depend on the path);
 * V[e] of channel c (c0 <= c < c1) at o + e * es + c * B + j. */
WG_INLINE void w4_in_tiles(float *o, int64_t es, int64_t B, const float *in, int64_t Ci, int64_t c0, int64_t c1,
                           int64_t IH, int64_t IW, int64_t pt, int64_t pl, const wg_run *rs, int nr) {
    const int64_t jb = rs[0].j0;
    int64_t pimg[W4_SUB], py[W4_SUB], px[W4_SUB]; /* where each tile's patch starts */
    const int64_t nt = wg_patch_starts(pimg, py, px, rs, nr, Ci * IH * IW, 4, pt, pl);
    for (int64_t c = c0; c < c1; c++) {
        float D[36][W4_SUB], E[36][W4_SUB];
        for (int64_t j = 0; j < nt; j++)
            wg_gather_patch(&D[0][0], W4_SUB, j, in + pimg[j] + c * IH * IW, IH, IW, py[j], px[j], 6);
        for (int v = 0; v < 6; v++) /* B^T d: column v of every patch */
            w4_bt_vec(E[v], E[6 + v], E[12 + v], E[18 + v], E[24 + v], E[30 + v], D[v], D[6 + v], D[12 + v], D[18 + v],
                      D[24 + v], D[30 + v], nt);
        float *dst = o + c * B + jb;
        for (int k = 0; k < 6; k++) { /* (B^T d) B: row k */
            float *ok = dst + k * 6 * es;
            w4_bt_vec(ok, ok + es, ok + 2 * es, ok + 3 * es, ok + 4 * es, ok + 5 * es, E[k * 6], E[k * 6 + 1],
                      E[k * 6 + 2], E[k * 6 + 3], E[k * 6 + 4], E[k * 6 + 5], nt);
        }
    }
}

/* One output row of a run: Q's rows q (4, W4_SUB) from tile j0 (the tiles' four outputs in this
 * row) interleaved into p (the row from the run's first column), n tiles of which the last may
 * have fewer than 4 columns inside (nx columns left in the row). */
WG_INLINE void w4_out_row(float *restrict p, float (*restrict q)[W4_SUB], int64_t j0, int64_t n, int64_t nx) {
    const int64_t nf = GC_MIN(n, nx / 4); /* whole tiles */
    const float *restrict q0 = q[0] + j0, *restrict q1 = q[1] + j0, *restrict q2 = q[2] + j0,
                          *restrict q3 = q[3] + j0;
    for (int64_t j = 0; j < nf; j++) {
        p[4 * j] = q0[j];
        p[4 * j + 1] = q1[j];
        p[4 * j + 2] = q2[j];
        p[4 * j + 3] = q3[j];
    }
    if (nf < n)
        for (int64_t v = 0; v < nx - 4 * nf; v++) p[4 * nf + v] = q[v][j0 + nf];
}

/* wino_run's phases for F(4x4): the block's job (V[e] and M[e] ev and em floats apart) */
typedef struct {
    const float *in, *U4, *bias, *res;
    float *out, *V, *Mt;
    int64_t Ci, Co, IH, IW, OH, OW, pt, pl, B, nb, nsub, MC, ev, em;
    const wg_run *rs;
    const int *first;
    int rows_in, rows_out, act, qact, isa;
    float lo, hi;
} w4_job;

/* input transform of channels [c0, c1): V[e] (Ci, nb) */
WG_INLINE void w4_in_chans(const w4_job *j, float (*E)[W4_EW], int64_t c0, int64_t c1) {
    const int64_t Ci = j->Ci, B = j->B, IH = j->IH, IW = j->IW, pt = j->pt, pl = j->pl;
    const int nr = j->first[j->nsub];
    if (j->rows_in)
        for (int64_t c = c0; c < c1; c++)
            for (int i = 0; i < nr; i++) {
                const wg_run *q = &j->rs[i];
                const float *src = j->in + (q->img * Ci + c) * IH * IW;
                const int64_t y0 = q->ty * 4 - pt, xs = q->tx * 4 - pl;
                if (c + 1 < c1) { /* the run's rows in the next channel */
                    const int64_t xa = GC_MAX(0, xs), xb = GC_MIN(IW, xs + 4 * q->n + 2);
                    for (int64_t yy = GC_MAX(0, y0); yy < GC_MIN(IH, y0 + 6); yy++)
                        for (int64_t x = xa; x < xb; x += 16) __builtin_prefetch(src + IH * IW + yy * IW + x, 0, 3);
                }
                w4_in_run(j->V + c * B + q->j0, j->ev, E, src, IH, IW, y0, xs, q->n);
            }
    else
        for (int64_t s = 0; s < j->nsub; s++)
            w4_in_tiles(j->V, j->ev, B, j->in, Ci, c0, c1, IH, IW, pt, pl, j->rs + j->first[s],
                        j->first[s + 1] - j->first[s]);
}

/* GEMMs e0 .. e1 - 1 of the 36: Mt[e] (Co, nb) = U4[e] (Co, Ci) . V[e] (Ci, nb) */
WG_INLINE void w4_gemms(const w4_job *j, int e0, int e1) {
    for (int e = e0; e < e1; e++)
        gc_sg_gemm(j->isa, 1, 0, 0, j->Co, j->nb, j->Ci, 1.0f, j->U4 + (int64_t)e * j->MC, j->Ci, j->V + e * j->ev, j->B,
                   0.0f, j->Mt + e * j->em, j->B);
}

/* output transform of channels [o0, o1): A^T m A over whole sub-blocks of tiles, bias, Relu, then
 * each run's outputs: rows 4 ty .. 4 ty + 3 (those below the map skipped) */
WG_INLINE void w4_out_chans(const w4_job *j, int64_t o0, int64_t o1) {
    const int64_t B = j->B, es = j->em, Co = j->Co, OH = j->OH, OW = j->OW;
    for (int64_t o = o0; o < o1; o++) {
        const float bv = j->bias ? j->bias[o] : 0.0f;
        for (int64_t s = 0; s < j->nsub; s++) {
            const int64_t j00 = s * W4_SUB, nt = GC_MIN(W4_SUB, j->nb - j00);
            const float *m = j->Mt + o * B + j00;
            float R[24][W4_SUB], Q[16][W4_SUB];
            for (int v = 0; v < 6; v++) { /* A^T m: column v of every tile */
                const float *m0 = m + v * es, *m1 = m + (6 + v) * es, *m2 = m + (12 + v) * es, *m3 = m + (18 + v) * es,
                            *m4 = m + (24 + v) * es, *m5 = m + (30 + v) * es;
                for (int64_t t = 0; t < nt; t++) {
                    float y[4];
                    w4_at(y, m0[t], m1[t], m2[t], m3[t], m4[t], m5[t]);
                    for (int i = 0; i < 4; i++) R[i * 6 + v][t] = y[i];
                }
            }
            for (int i = 0; i < 4; i++) /* (A^T m) A, then the bias and a fused Relu */
                for (int64_t t = 0; t < nt; t++) {
                    const float *r = &R[i * 6][t];
                    float y[4];
                    w4_at(y, r[0], r[W4_SUB], r[2 * W4_SUB], r[3 * W4_SUB], r[4 * W4_SUB], r[5 * W4_SUB]);
                    for (int l = 0; l < 4; l++) Q[i * 4 + l][t] = bv + y[l];
                }
            for (int e = 0; e < 16; e++) epi_seq(Q[e], NULL, nt, j->qact, j->lo, j->hi);
            for (int i = j->first[s]; i < j->first[s + 1]; i++) {
                const wg_run *q = &j->rs[i];
                const int64_t y0 = q->ty * 4, x0 = q->tx * 4, t = q->j0 - j00, ny = GC_MIN(4, OH - y0);
                float *p = j->out + (q->img * Co + o) * OH * OW + y0 * OW + x0;
                if (o + 1 < o1) /* the run's output rows in the next channel */
                    for (int64_t u = 0; u < ny; u++)
                        for (int64_t x = 0; x < GC_MIN(4 * q->n, OW - x0); x += 16)
                            __builtin_prefetch(p + OH * OW + u * OW + x, 1, 3);
                if (j->rows_out) {
                    for (int64_t u = 0; u < ny; u++) w4_out_row(p + u * OW, Q + u * 4, t, q->n, OW - x0);
                } else {
                    for (int64_t k = 0; k < q->n; k++) { /* tile by tile */
                        const int64_t nx = GC_MIN(4, OW - x0 - 4 * k);
                        for (int64_t u = 0; u < ny; u++)
                            for (int64_t v = 0; v < nx; v++) p[u * OW + 4 * k + v] = Q[u * 4 + v][t + k];
                    }
                }
                if (j->res) /* the fused Add on the rows just written (in cache), then act */
                    for (int64_t u = 0; u < ny; u++)
                        epi_seq(p + u * OW, j->res + (p - j->out) + u * OW, GC_MIN(4 * q->n, OW - x0), j->act, j->lo,
                                j->hi);
            }
        }
    }
}

/* out (N, Co, OH, OW) = bias + the 3x3 correlation of in (N, Ci, IH, IW) whose output pixel (y, x)
 * reads input rows y - pt .. y - pt + 2 (outside: zeros), then max(., 0) with relu (NaN
 * propagates, as Relu); U4[e] (Co, Ci). Blocks, threads, runs and the shared mode as wino_run
 * (each output element written by one thread, in a fixed order); the output transform a
 * sub-block at a time, written row by row (W4_ROWS_OUT tiles a row or more) or tile by tile. */
CV_CLONES
static void w4_run(float *out, const float *in, const float *U4, int64_t N, int64_t Ci, int64_t Co, int64_t IH,
                   int64_t IW, int64_t OH, int64_t OW, int64_t pt, int64_t pl, const float *bias, int64_t blk,
                   const gc_sg_epi *ep, float *scratch, int isa, int nth) {
    const int64_t th = (OH + 3) / 4, tw = (OW + 3) / 4, T = th * tw, NT = N * T;
    const int64_t slot = 36 * ((Ci + Co) * blk + 2 * W4_PAD); /* nth slots of blk tiles in the scratch */
    const int shared = wg_shared(NT, blk, W4_SUB, nth);
    /* a block for every thread when the tiles are few; shared: one block, 8 tiles of room past
     * the last (w4_in_run writes up to 7 past a run) */
    const int64_t B = shared ? (NT + 7) / 8 * 8 + 8 : GC_MIN(blk, GC_MAX(W4_SUB / 2, (NT + nth - 1) / nth + 7) / 8 * 8);
    const int64_t nblk = (NT + B - 1) / B;
    const w4_job j0 = {.in = in, .U4 = U4, .bias = bias, .res = ep ? ep->res : NULL, .out = out, .Ci = Ci, .Co = Co,
                       .IH = IH, .IW = IW, .OH = OH, .OW = OW, .pt = pt, .pl = pl, .B = B, .MC = Ci * Co,
                       .ev = Ci * B + W4_PAD, .em = Co * B + W4_PAD, .rows_in = tw >= W4_ROWS_IN,
                       .rows_out = tw >= W4_ROWS_OUT, .act = ep ? ep->act : GC_ACT_NONE, .isa = isa,
                       .lo = ep ? ep->lo : 0.0f, .hi = ep ? ep->hi : 0.0f};
#pragma omp parallel num_threads(nth)
    {
        w4_job j = j0;
        j.qact = j.res ? GC_ACT_NONE : j.act; /* with a fused Add, the activation comes after it */
        j.V = scratch + (shared ? 0 : (int64_t)omp_get_thread_num() * slot); /* (36, Ci, B), V[e] at e ev */
        j.Mt = j.V + 36 * j.ev;                                                /* (36, Co, B), M[e] at e em */
        wg_run rs[W4_MAX_TILES];
        int first[W4_MAX_TILES / W4_SUB + 1];
        float E[6][W4_EW] = {{0}}; /* w4_in_run's rows (zeros to begin with: finite past the runs) */
        j.rs = rs;
        j.first = first;
        if (shared) {
            j.nb = NT;
            j.nsub = (NT + W4_SUB - 1) / W4_SUB;
            wino_runs(rs, first, 0, NT, T, tw, W4_SUB);
            int64_t c0, c1;
            gc_omp_range(Ci, &c0, &c1);
            w4_in_chans(&j, E, c0, c1);
#pragma omp barrier
#pragma omp for schedule(static)
            for (int e = 0; e < 36; e++) w4_gemms(&j, e, e + 1);
            gc_omp_range(Co, &c0, &c1);
            w4_out_chans(&j, c0, c1);
        } else {
#pragma omp for schedule(dynamic)
            for (int64_t b = 0; b < nblk; b++) {
                const int64_t t00 = b * B;
                j.nb = GC_MIN(B, NT - t00);
                j.nsub = (j.nb + W4_SUB - 1) / W4_SUB;
                wino_runs(rs, first, t00, j.nb, T, tw, W4_SUB);
                w4_in_chans(&j, E, 0, Ci);
                w4_gemms(&j, 0, 36);
                w4_out_chans(&j, 0, Co);
            }
        }
    }
}

/* ---------------------------------------------------------------- forward */

/* The epilogue of image n, group gr's GEMM: its rows' bias and its block of res (ep: the whole
 * output's). */
static gc_sg_epi group_epi(const gc_sg_epi *ep, const float *b, int64_t n, int64_t gr, const conv_geom *g) {
    gc_sg_epi e = *ep;
    e.bias = b ? b + gr * g->Mg : NULL;
    if (e.res) e.res += (n * g->M + gr * g->Mg) * g->ysz;
    return e;
}

static gcam_status conv_forward(gc_kctx *k) {
    conv_geom g;
    gcam_status st = conv_setup(k, &g);
    if (st) return st;
    const float *x = k->in[0]->data, *w = k->in[1]->data;
    const float *b = k->n_in > 2 && k->in[2] ? k->in[2]->data : NULL;
    float *y = k->out[0]->data, *col = k->scratch; /* y (N, M, ys...), col (cimg*ksz, tile) */
    const lowering *lw = &g.lw;
    const int nth = GC_MAX(1, k->nthreads), L = lw->nsp - 1;
    const int64_t NM = g.N * g.M, cL = lw->col[L], ksz = lw->ksz;
    const int isa = gc_sg_isa(gc_ktune(k)); /* sgemm.c's path (or cblas_sgemm) */
    const float *res = k->fuse.res ? k->fuse.res->data : NULL; /* (N, M, ys...): a following Add fused in, before the activation */
    if (g.N == 0) return GCAM_OK;
    if (res && k->fuse.res->shape.ndim != k->out[0]->shape.ndim)
        return gc_kfail(k, GCAM_E_INTERNAL, "fused Add operand of another rank");
    /* what every path does after the convolution's sum (and the bias): + res, then the fused
     * activation (a Relu, a Clip's clamp or a SiLU; plan.c); the bias only where a GEMM writes Y */
    gc_sg_epi ep = {.res = res, .ldr = g.ysz, .act = k->fuse.act, .lo = k->fuse.act_lo, .hi = k->fuse.act_hi};
    if (k->fuse.relu) ep.act = GC_ACT_CLAMP, ep.lo = 0.0f, ep.hi = INFINITY;
    if (g.path == PATH_DEPTHWISE) {
        const dw_plane *q = &g.pl;
        /* as many threads as the scratch holds planes for (none: the bounds-checked loops) */
        const int64_t planes = dw_planes(k, q);
        const int nt = (int)GC_MAX(1, GC_MIN(nth, planes));
#pragma omp parallel num_threads(nt) if (NM * g.ysz * ksz > CV_OMP_MIN)
        {
            float *P = planes ? (float *)k->scratch + (int64_t)omp_get_thread_num() * q->floats : NULL;
            /* static: every channel costs the same, and a dynamic schedule's shared counter, taken
             * once per channel (960 channels of 7x7), cost more than the channels themselves */
#pragma omp for schedule(static)
            for (int64_t nm = 0; nm < NM; nm++) {
                int64_t n = nm / g.M, m = nm % g.M;
                const float *xc = x + (n * g.C + m / g.Mg) * g.xsz, *wm = w + m * ksz;
                float *yc = y + nm * g.ysz, bv = b ? b[m] : 0.0f;
                if (!g.transpose) {
                    if (P) {
                        dw_forward_channel(yc, xc, P, wm, q, bv);
                    } else {
                        dw_gather(yc, xc, wm, lw, 1, bv);
                    }
                    if (res || ep.act) epi_row(yc, res ? res + nm * g.ysz : NULL, g.ysz, &ep, q->isa);
                } else {
                    for (int64_t i = 0; i < g.ysz; i++) yc[i] = bv;
                    if (P) {
                        memset(P, 0, (size_t)(q->Hp * q->Wp) * sizeof(float));
                        plane_scatter(P, xc, wm, q);
                        plane_store_add(yc, P, q);
                    } else {
                        dw_scatter(yc, xc, wm, lw);
                    }
                    if (res || ep.act) epi_row(yc, res ? res + nm * g.ysz : NULL, g.ysz, &ep, q->isa);
                }
            }
        }
        return GCAM_OK;
    }
    if (g.path == PATH_GEMM && (!col || k->scratch_size < (size_t)g.tile_floats * sizeof(float)))
        return gc_kfail(k, GCAM_E_INTERNAL, "im2col scratch missing");
    {
        const float *U4 = w4_ready(k, &g, nth); /* NULL: F(2x2) or im2col below */
        if (U4) {
            w4_run(y, x, U4, g.N, g.C, g.M, lw->img[0], lw->img[1], lw->col[0], lw->col[1], lw->p[0], lw->p[1], b,
                   w4_block(&g), &ep, col, isa, nth);
            return GCAM_OK;
        }
        const float *U = wino_ready(k, &g, nth, 1); /* NULL: im2col below */
        if (U) {
            wino_run(y, x, U, 0, g.N, g.C, g.M, lw->img[0], lw->img[1], lw->col[0], lw->col[1], lw->p[0], lw->p[1], b,
                     wino_block(&g), &ep, col, isa, nth);
            return GCAM_OK;
        }
    }
    const int64_t pwb = pw_batched_floats(&g);
    if (pwb && k->scratch_size >= (size_t)pwb * sizeof(float)) {
        /* one GEMM for the batch: Ys (M, N*HW) = W (M, C) . Xs (C, N*HW), then Y with bias, res, act */
        const int64_t HW = g.xsz, NHW = g.N * HW;
        float *xs = col, *ys = col + g.C * NHW;
        batch_columns(xs, x, g.N, g.C, HW, nth);
        gc_sg_gemm(isa, nth, 0, 0, g.M, NHW, g.C, 1.0f, w, g.C, xs, NHW, 0.0f, ys, NHW);
        unbatch_epi(y, ys, g.N, g.M, HW, b, &ep, gc_kisa(k), nth);
        return GCAM_OK;
    }
    /* col2im (ConvTranspose) adds into Y filled with the bias (and a fused Add's operand); the
     * GEMMs that write Y add those in their epilogue instead (no pass over Y before them) */
    const int col2im_path = g.transpose && g.path == PATH_GEMM;
    if (col2im_path) fill_bias(y, b, res, NM, g.M, g.ysz, nth);
    const float beta = 0.0f;
    const int64_t kcol = g.cimg * ksz;
    if (g.path == PATH_POINTWISE && pointwise_by_image(&g, nth)) {
        /* whole (image, group) GEMMs per thread: balanced, and no thin slices of a small map */
#pragma omp parallel for num_threads(nth) schedule(dynamic)
        for (int64_t ng = 0; ng < g.N * g.G; ng++) {
            const int64_t n = ng / g.G, gr = ng % g.G;
            const float *xg = x + (n * g.C + gr * g.Cg) * g.xsz; /* (Cg, xsz) */
            float *yg = y + (n * g.M + gr * g.Mg) * g.ysz;       /* (Mg, ysz) */
            const float *wg = w + gr * g.Mg * g.Cg * ksz;
            /* bias, res, act in the GEMM's last write (sgemm.c), or right after it while in cache (cblas) */
            const gc_sg_epi e = group_epi(&ep, b, n, gr, &g);
            gc_sg_gemm_epi(isa, 1, g.transpose, 0, g.Mg, g.ysz, g.Cg, 1.0f, wg, g.transpose ? g.Mg : g.Cg, xg, g.xsz,
                           beta, yg, g.ysz, &e);
        }
        return GCAM_OK;
    }
    for (int64_t n = 0; n < g.N; n++) {
        for (int64_t gr = 0; gr < g.G; gr++) {
            const float *xg = x + (n * g.C + gr * g.Cg) * g.xsz; /* (Cg, xsz) */
            float *yg = y + (n * g.M + gr * g.Mg) * g.ysz;       /* (Mg, ysz) */
            const float *wg = w + gr * g.Mg * g.Cg * ksz;         /* Conv (Mg, Cg*ksz), ConvT (Cg, Mg*ksz) */
            const gc_sg_epi e = group_epi(&ep, b, n, gr, &g);
            if (g.path == PATH_POINTWISE) {
                gc_sg_gemm_epi(isa, nth, g.transpose, 0, g.Mg, g.ysz, g.Cg, 1.0f, wg, g.transpose ? g.Mg : g.Cg, xg,
                               g.xsz, beta, yg, g.ysz, &e);
                continue;
            }
            if (!g.transpose) {
                lowered_gemm_epi(yg, g.ysz, wg, isa, g.Mg, xg, g.Cg, beta, &g, col, k->scratch_size, &e, nth);
                continue;
            }
            /* col2im scatters across tile borders: tiles in turn, each with all threads */
            for (int64_t r0 = 0; r0 < g.rows; r0 += g.tile_rows) {
                int64_t nr = GC_MIN(g.tile_rows, g.rows - r0), Pt = nr * cL;
                gc_sg_gemm(isa, nth, 1, 0, kcol, Pt, g.Cg, 1.0f, wg, kcol, xg + r0 * cL, g.xsz, 0.0f, col, Pt);
                col2im(yg, col, g.Mg, lw, r0, nr, nth);
            }
            if (ep.act) epi_row(yg, NULL, g.Mg * g.ysz, &ep, gc_kisa(k)); /* res came with the bias fill */
        }
    }
    return GCAM_OK;
}

/* ---------------------------------------------------------------- backward (dX only) */

/* With k.fuse.relu_dx, the VJP of the Relu (or Clip) whose output X is (fuse.c's fuse_relu_dx),
 * in place on n elements of dX from element o: that op's own backward's selects, so its values. */
static void dx_act_vjp(const gc_kctx *k, float *gx, int64_t o, int64_t n) {
    const float *y = (const float *)k->in[0]->data + o; /* the Relu's output */
    if (k->fuse.relu_dx == 2) gc_clip_vjp_inplace(gx + o, y, n, k->fuse.dx_lo, k->fuse.dx_hi, k->rule);
    else gc_relu_vjp_inplace(gx + o, y, n, k->rule);
}

/* dX; *vjp_done: the fused activation's VJP was applied too (the depthwise loops apply it to each
 * channel as it is finished, while it is in cache) */
static gcam_status conv_backward_dx(gc_kctx *k, int *vjp_done) {
    conv_geom g;
    gcam_status st = conv_setup(k, &g);
    if (st) return st;
    if (!k->gin[0] || !k->gout[0] || g.N == 0) return GCAM_OK;
    const float *w = k->in[1]->data, *gy = k->gout[0]->data; /* gy (N, M, ys...) */
    float *gx = k->gin[0]->data, *col = k->scratch;          /* gx (N, C, xs...) */
    const lowering *lw = &g.lw;
    const int nth = GC_MAX(1, k->nthreads), L = lw->nsp - 1;
    const int64_t NC = g.N * g.C, cL = lw->col[L], ksz = lw->ksz;
    const int isa = gc_sg_isa(gc_ktune(k)); /* sgemm.c's path (or cblas_sgemm) */
    /* dX written first here (planner's gin_fresh): the GEMM and Winograd paths assign it, the
     * others accumulate onto zeros they write themselves */
    const int fresh = (int)(k->gin_fresh & 1);
    const dw_plane *q = &g.pl;
    const int64_t planes = g.path == PATH_DEPTHWISE ? dw_planes(k, q) : 0;
    /* Stride 1 (EfficientNet's and MobileNet's non-reducing layers): dX is the correlation of
     * dY, padded by the kernel's extent, with the flipped kernel, i.e. the forward's gather
     * (all taps of an output row in one pass) instead of one scatter pass per tap. Stride 2 (their
     * reducing layers): the same with dY's samples two apart and zeros between; four times the
     * products, three of four by zero, but in the vectorised gather instead of strided scatters
     * (mobilenet_v2's 96-channel 112x112 layer: 1.55 ms at 1 thread before). */
    const int gather = g.path == PATH_DEPTHWISE && dw_bw_gather(k) && planes && !g.transpose && dw_bw_gathers(q) &&
                       ksz <= DW_FLIP_MAX;
    const int64_t sd = q->sh; /* 1, or 2: dY's samples that far apart in the plane, zeros between */
    /* ... and, written first with one output per group, dwconv.c's forward kernels on dY itself
     * (padding k - 1 - p, bias 0): no plane copy, no zeroing; 0 + the same sum in the same order
     * as the plane gather onto zeros, so the same bits */
    const int bdirect = gather && sd == 1 && fresh && g.Mg == 1 && q->pt < q->kh && q->pl < q->kw &&
                        gc_dw2d_ok(q->kh, q->kw, 1, 1, q->dh, q->dw, q->OH, q->OW, q->kh - 1 - q->pt,
                                   q->kw - 1 - q->pl, q->isa);
    /* stride 2, likewise written first: dwconv.c's kernel sums only the taps whose dY sample exists
     * (the gather's other products are by its zeros), in the gather's order from 0: the same bits */
    const int bdirect2 = gather && sd == 2 && fresh && g.Mg == 1 &&
                         gc_dw2d_ok(q->kh, q->kw, 2, 2, q->dh, q->dw, q->H, q->W, q->pt, q->pl, q->isa);
    if (fresh && g.path != PATH_POINTWISE && !bdirect && !bdirect2 && !wino_ready(k, &g, nth, 0))
        memset(gx, 0, (size_t)(NC * g.xsz) * sizeof(float));
    if (g.path == PATH_DEPTHWISE) {
        const int nt = (int)GC_MAX(1, GC_MIN(nth, planes));
        dw_plane qg = *q; /* the gather: outputs (H, W) from Q's rows pt.., columns pl.. */
        qg.OH = q->H;
        qg.OW = q->W;
        qg.Wp = q->Wq;
        qg.sh = qg.sw = 1; /* a stride-1 gather over the plane, whatever the forward's stride */
        const int64_t by = (q->kh - 1) * q->dh, bx = (q->kw - 1) * q->dw; /* Q's border */
        /* one thread per input channel: it owns gx[n, c] and sums its Mg outputs in order */
#pragma omp parallel num_threads(nt) if (NC * g.Mg * g.ysz * ksz > CV_OMP_MIN)
        {
            float *P = planes ? (float *)k->scratch + (int64_t)omp_get_thread_num() * q->floats : NULL;
            if (gather && !bdirect && !bdirect2) memset(P, 0, (size_t)(q->Hq * q->Wq) * sizeof(float)); /* the border stays 0 */
#pragma omp for schedule(static)
            for (int64_t nc = 0; nc < NC; nc++) {
                if (bdirect) { /* gx (H, W) from dY (OH, OW) */
                    const gc_dw2d dg = {q->OH, q->OW, q->H, q->W, q->kw, 1, q->kh - 1 - q->pt, q->kw - 1 - q->pl};
                    const float *wm = w + (nc % g.C) * ksz;
                    float wf[DW_FLIP_MAX]; /* the kernel rotated by 180 degrees */
                    for (int64_t t = 0; t < ksz; t++) wf[t] = wm[ksz - 1 - t];
                    gc_dw2d_forward(gx + nc * g.xsz, gy + nc * g.ysz, wf, 0.0f, &dg, q->isa);
                } else if (bdirect2) { /* gx (H, W) from dY (OH, OW) */
                    const gc_dw2d dg = {q->H, q->W, q->OH, q->OW, q->kw, 2, q->pt, q->pl};
                    gc_dw2d_backward_s2(gx + nc * g.xsz, gy + nc * g.ysz, w + (nc % g.C) * ksz, &dg, q->isa);
                } else if (gather) {
                    const int64_t n = nc / g.C, c = nc % g.C;
                    float *gxc = gx + nc * g.xsz; /* (H, W) */
                    for (int64_t j = 0; j < g.Mg; j++) {
                        const int64_t m = c * g.Mg + j;
                        const float *gym = gy + (n * g.M + m) * g.ysz, *wm = w + m * ksz; /* (OH, OW) */
                        float wf[DW_FLIP_MAX]; /* the kernel rotated by 180 degrees */
                        for (int64_t t = 0; t < ksz; t++) wf[t] = wm[ksz - 1 - t];
                        for (int64_t r = 0; r < q->OH; r++) {
                            float *pr = P + (r * sd + by) * q->Wq + bx; /* the zeros between stay from the memset */
                            if (sd == 1) memcpy(pr, gym + r * q->OW, (size_t)q->OW * sizeof(float));
                            else
                                for (int64_t x = 0; x < q->OW; x++) pr[x * sd] = gym[r * q->OW + x];
                        }
                        plane_gather_s1(gxc, P + q->pt * q->Wq + q->pl, wf, &qg, 0, 0.0f);
                    }
                } else { /* the scatter (or ConvTranspose's gather) */
                    int64_t n = nc / g.C, c = nc % g.C;
                    float *gxc = gx + nc * g.xsz;
                    if (P && !g.transpose) memset(P, 0, (size_t)(q->Hp * q->Wp) * sizeof(float));
                    for (int64_t j = 0; j < g.Mg; j++) {
                        int64_t m = c * g.Mg + j;
                        const float *gym = gy + (n * g.M + m) * g.ysz, *wm = w + m * ksz;
                        if (!g.transpose) {
                            if (P) plane_scatter(P, gym, wm, q);
                            else dw_scatter(gxc, gym, wm, lw);
                        } else {
                            if (P) {
                                plane_load(P, gym, q);
                                plane_gather(gxc, P, wm, q, 0, 0.0f);
                            } else {
                                dw_gather(gxc, gym, wm, lw, 0, 0.0f);
                            }
                        }
                    }
                    if (P && !g.transpose) plane_store_add(gxc, P, q);
                }
                if (k->fuse.relu_dx) dx_act_vjp(k, gx, nc * g.xsz, g.xsz);
            }
        }
        *vjp_done = 1;
        return GCAM_OK;
    }
    if (g.path == PATH_GEMM && (!col || k->scratch_size < (size_t)g.tile_floats * sizeof(float)))
        return gc_kfail(k, GCAM_E_INTERNAL, "im2col scratch missing");
    {
        const float *U = wino_ready(k, &g, nth, 0);
        if (U) { /* dX += 3x3 correlation of dY with the rotated, transposed weights */
            wino_run(gx, gy, U, fresh ? 2 : 1, g.N, g.M, g.C, lw->col[0], lw->col[1], lw->img[0], lw->img[1],
                     2 - lw->p[0], 2 - lw->p[1], NULL, wino_block(&g), 0, col, isa, nth);
            return GCAM_OK;
        }
    }
    const int64_t pwb = pw_batched_floats(&g);
    if (pwb && k->scratch_size >= (size_t)pwb * sizeof(float)) {
        /* one GEMM for the batch: Xs (C, N*HW) = W^T (C, M) . dYs (M, N*HW), into dX (= or +=) */
        const int64_t HW = g.xsz, NHW = g.N * HW;
        float *xs = col, *ys = col + g.C * NHW;
        batch_columns(ys, gy, g.N, g.M, HW, nth);
        gc_sg_gemm(isa, nth, 1, 0, g.C, NHW, g.M, 1.0f, w, g.C, ys, NHW, 0.0f, xs, NHW);
        unbatch_columns(gx, xs, g.N, g.C, HW, !fresh, nth);
        return GCAM_OK;
    }
    const int64_t kcol = g.cimg * ksz;
    const float beta = fresh ? 0.0f : 1.0f; /* the pointwise GEMMs: dX = or += */
    if (g.path == PATH_POINTWISE && pointwise_by_image(&g, nth)) {
#pragma omp parallel for num_threads(nth) schedule(dynamic)
        for (int64_t ng = 0; ng < g.N * g.G; ng++) {
            const int64_t n = ng / g.G, gr = ng % g.G;
            float *gxg = gx + (n * g.C + gr * g.Cg) * g.xsz;        /* (Cg, xsz) */
            const float *gyg = gy + (n * g.M + gr * g.Mg) * g.ysz; /* (Mg, ysz) */
            const float *wg = w + gr * g.Mg * g.Cg * ksz;
            if (!g.transpose)
                gc_sg_gemm(isa, 1, 1, 0, g.Cg, g.xsz, g.Mg, 1.0f, wg, g.Cg, gyg, g.ysz, beta, gxg, g.xsz);
            else
                gc_sg_gemm(isa, 1, 0, 0, g.Cg, g.xsz, g.Mg, 1.0f, wg, g.Mg, gyg, g.ysz, beta, gxg, g.xsz);
        }
        return GCAM_OK;
    }
    for (int64_t n = 0; n < g.N; n++) {
        for (int64_t gr = 0; gr < g.G; gr++) {
            float *gxg = gx + (n * g.C + gr * g.Cg) * g.xsz;        /* (Cg, xsz) */
            const float *gyg = gy + (n * g.M + gr * g.Mg) * g.ysz; /* (Mg, ysz) */
            const float *wg = w + gr * g.Mg * g.Cg * ksz;
            if (g.path == PATH_POINTWISE) {
                if (!g.transpose)
                    gc_sg_gemm(isa, nth, 1, 0, g.Cg, g.xsz, g.Mg, 1.0f, wg, g.Cg, gyg, g.ysz, beta, gxg, g.xsz);
                else
                    gc_sg_gemm(isa, nth, 0, 0, g.Cg, g.xsz, g.Mg, 1.0f, wg, g.Mg, gyg, g.ysz, beta, gxg, g.xsz);
                continue;
            }
            if (g.transpose) {
                lowered_gemm(gxg, g.xsz, wg, isa, g.Cg, gyg, g.Mg, 1.0f, &g, col, k->scratch_size, 0, nth);
                continue;
            }
            for (int64_t r0 = 0; r0 < g.rows; r0 += g.tile_rows) {
                int64_t nr = GC_MIN(g.tile_rows, g.rows - r0), Pt = nr * cL;
                gc_sg_gemm(isa, nth, 1, 0, kcol, Pt, g.Mg, 1.0f, wg, kcol, gyg + r0 * cL, g.ysz, 0.0f, col, Pt);
                col2im(gxg, col, g.Cg, lw, r0, nr, nth);
            }
        }
    }
    return GCAM_OK;
}

/* dX, then with k.fuse.relu_dx the VJP of the Relu (or Clip) whose output X is in place, in chunks
 * over the threads (unless the depthwise loops applied it channel by channel). */
static gcam_status conv_backward(gc_kctx *k) {
    int done = 0;
    gcam_status st = conv_backward_dx(k, &done);
    if (st || done || !k->fuse.relu_dx || !k->gin[0] || !k->gout[0]) return st;
    float *gx = k->gin[0]->data; /* (N, C, xs...) */
    const int64_t n = gc_numel(k->in[0]), chunk = 16384, nch = (n + chunk - 1) / chunk;
    const int nt = n > 65536 ? GC_MAX(1, k->nthreads) : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t c = 0; c < nch; c++) dx_act_vjp(k, gx, c * chunk, GC_MIN(chunk, n - c * chunk));
    return GCAM_OK;
}

/* Backward reads only W (bit 1) and the shapes (and X with fuse.relu_dx); only X gets a gradient,
 * assigned when fresh. */
const gc_opdef gc_def_Conv = {.name = "Conv", .min_opset = 1, .parse = conv_parse, .infer = conv_infer,
                              .scratch_bytes = conv_scratch, .forward = conv_forward,
                              .bscratch_bytes = conv_bscratch, .backward = conv_backward,
                              .bw_in = 1u << 1, .diff_in = 1u << 0, .fuse_relu = 1, .bw_assign = 1,
                              .fuse_relu_dx = 1, .fuse_act = (1u << GC_ACT_CLAMP) | (1u << GC_ACT_SILU)};
const gc_opdef gc_def_ConvTranspose = {.name = "ConvTranspose", .min_opset = 1, .parse = convt_parse,
                                       .infer = conv_infer, .scratch_bytes = conv_scratch,
                                       .forward = conv_forward, .bscratch_bytes = conv_bscratch,
                                       .backward = conv_backward, .bw_in = 1u << 1, .diff_in = 1u << 0,
                                       .bw_assign = 1};

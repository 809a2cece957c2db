/* Spatial re-sampling ops: Pad, Resize, Upsample.
 *
 * Resize/Upsample are linear in X: every output is a fixed weighted sum of input elements,
 * separable per axis. We precompute, per axis, a table of taps (input index, weight) for each
 * output coordinate (no per-pixel float work), then either run a fused 2-D kernel (nearest and
 * linear over the last two axes, the NCHW case) or one pass per resized axis. Backward applies
 * the transposed taps (scatter-add with the same weights). */
#include "ops.h"

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static gcam_status set_out(gc_kctx *k, gc_dtype t, const gc_shape *s) {
    int ok = 0;
    (void)gc_tensor_bytes(t, s, &ok);
    if (!ok) return gc_kfail(k, GCAM_E_SHAPE, "output shape is invalid or too large");
    k->out[0]->dtype = t;
    k->out[0]->shape = *s;
    return GCAM_OK;
}

static const gc_tensor *opt_in(const gc_kctx *k, int i) {
    return i < k->n_in && k->in[i] ? k->in[i] : NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Pad                                                                                          */

enum { PAD_CONSTANT = 0, PAD_REFLECT = 1, PAD_EDGE = 2 };

typedef struct pad_params {
    int mode;
} pad_params;

static gcam_status pad_parse(gc_node *n, gc_err *err) {
    const char *m = gc_attr_str(n, "mode", "constant");
    int mode;
    if (!strcmp(m, "constant")) mode = PAD_CONSTANT;
    else if (!strcmp(m, "reflect")) mode = PAD_REFLECT;
    else if (!strcmp(m, "edge")) mode = PAD_EDGE;
    else return gc_fail(err, GCAM_E_UNSUPPORTED, "node '%s' (Pad): attribute 'mode' = '%s' is not supported", n->name, m);
    if (n->opset < 11 && !gc_attr_find(n, "pads"))
        return gc_fail(err, GCAM_E_FORMAT, "node '%s' (Pad): attribute 'pads' is required", n->name);
    pad_params *p = malloc(sizeof *p);
    if (!p) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
    p->mode = mode;
    n->params = p;
    return GCAM_OK;
}

/* Per-axis geometry: pb/pe are the (possibly negative) pads; the input is first cropped to
 * [start, start+len) by the negative ones, then padded by the positive ones. */
typedef struct pad_geom {
    int nd;
    int64_t pb[GC_MAX_DIMS], pe[GC_MAX_DIMS], start[GC_MAX_DIMS], len[GC_MAX_DIMS], out[GC_MAX_DIMS];
} pad_geom;

static gcam_status pad_geom_get(gc_kctx *k, pad_geom *g) {
    const gc_tensor *x = k->in[0];
    int nd = x->shape.ndim;
    int64_t pads[2 * GC_MAX_DIMS], np = 0, axes[GC_MAX_DIMS], na = -1;
    if (k->node->opset < 11) {
        const int64_t *a;
        np = (int64_t)gc_attr_ints(k->node, "pads", &a);
        if (np > 2 * GC_MAX_DIMS) return gc_kfail(k, GCAM_E_SHAPE, "too many pads");
        memcpy(pads, a, (size_t)np * sizeof *a);
    } else {
        const gc_tensor *p = opt_in(k, 1);
        if (!p) return gc_kfail(k, GCAM_E_FORMAT, "input 'pads' is missing");
        if (p->dtype != GC_I64) return gc_kfail(k, GCAM_E_FORMAT, "input 'pads' must be int64");
        if (!p->data) return gc_kfail(k, GCAM_E_UNSUPPORTED, "input 'pads' must be constant (known when planning)");
        np = gc_tensor_ints(p, pads, 2 * GC_MAX_DIMS);
        if (np < 0) return gc_kfail(k, GCAM_E_SHAPE, "too many pads");
        const gc_tensor *a = opt_in(k, 3);
        if (a && gc_numel(a) > 0) {
            if (!a->data) return gc_kfail(k, GCAM_E_UNSUPPORTED, "input 'axes' must be constant");
            na = gc_tensor_ints(a, axes, GC_MAX_DIMS);
            if (na < 0) return gc_kfail(k, GCAM_E_SHAPE, "too many axes");
        }
    }
    int64_t nax = na >= 0 ? na : nd;
    if (np != 2 * nax) return gc_kfail(k, GCAM_E_SHAPE, "%lld pads for %lld axes", (long long)np, (long long)nax);
    g->nd = nd;
    for (int d = 0; d < nd; d++) g->pb[d] = g->pe[d] = 0;
    for (int64_t i = 0; i < nax; i++) {
        int a = na >= 0 ? gc_norm_axis(axes[i], nd) : (int)i;
        if (a < 0) return gc_kfail(k, GCAM_E_SHAPE, "axis %lld out of range", (long long)axes[i]);
        g->pb[a] = pads[i];
        g->pe[a] = pads[i + nax];
    }
    for (int d = 0; d < nd; d++) {
        int64_t in = x->shape.d[d], cb = g->pb[d] < 0 ? g->pb[d] : 0, ce = g->pe[d] < 0 ? g->pe[d] : 0;
        if (g->pb[d] < -in || g->pe[d] < -in || in + cb + ce < 0)
            return gc_kfail(k, GCAM_E_SHAPE, "pads on axis %d crop more than its extent %lld", d, (long long)in);
        g->start[d] = -cb;
        g->len[d] = in + cb + ce;
        int64_t o;
        if (gc_add_i64(&o, g->len[d], GC_MAX(g->pb[d], 0)) || gc_add_i64(&o, o, GC_MAX(g->pe[d], 0)))
            return gc_kfail(k, GCAM_E_SHAPE, "padded extent overflows");
        g->out[d] = o;
    }
    return GCAM_OK;
}

static gcam_status pad_infer(gc_kctx *k) {
    const gc_tensor *x = k->in[0];
    if (!x || gc_shape_numel(&x->shape) < 0) return gc_kfail(k, GCAM_E_SHAPE, "input shape unknown");
    if (x->dtype != GC_F32 && x->dtype != GC_I64 && x->dtype != GC_BOOL)
        return gc_kfail(k, GCAM_E_UNSUPPORTED, "unsupported dtype");
    pad_geom g;
    gcam_status st = pad_geom_get(k, &g);
    if (st) return st;
    const pad_params *p = k->params;
    gc_shape s = {.ndim = g.nd};
    for (int d = 0; d < g.nd; d++) {
        s.d[d] = g.out[d];
        if (p->mode != PAD_CONSTANT && g.len[d] == 0 && g.out[d] > 0)
            return gc_kfail(k, GCAM_E_SHAPE, "cannot %s-pad the empty axis %d", p->mode == PAD_EDGE ? "edge" : "reflect", d);
    }
    const gc_tensor *cv = opt_in(k, 2);
    if (k->node->opset >= 11 && cv && gc_numel(cv) > 0) {
        if (cv->dtype != x->dtype) return gc_kfail(k, GCAM_E_FORMAT, "constant_value dtype differs from the data's");
        if (gc_numel(cv) != 1) return gc_kfail(k, GCAM_E_SHAPE, "constant_value must be a scalar");
    }
    return set_out(k, x->dtype, &s);
}

static size_t pad_scratch(const gc_kctx *k) {
    size_t n = 0;
    for (int d = 0; d < k->out[0]->shape.ndim; d++) n += (size_t)k->out[0]->shape.d[d];
    return n * sizeof(int64_t) + 64;
}

/* Source index along one axis for output index j, or -1 for the constant. */
static int64_t pad_map(int mode, int64_t j, int64_t pb, int64_t start, int64_t len) {
    int64_t r = j - GC_MAX(pb, 0);
    if (r >= 0 && r < len) return start + r;
    if (mode == PAD_CONSTANT) return -1;
    if (mode == PAD_EDGE || len == 1) return start + (r < 0 ? 0 : len - 1);
    int64_t period = 2 * (len - 1), m = r % period; /* reflect, repeatedly for wide pads */
    if (m < 0) m += period;
    return start + (m >= len ? period - m : m);
}

/* Fills the per-axis maps (out_d entries each) into scratch. */
static void pad_maps(const gc_kctx *k, const pad_geom *g, int64_t **maps) {
    const pad_params *p = k->params;
    int64_t *m = k->scratch;
    for (int d = 0; d < g->nd; d++) {
        maps[d] = m;
        for (int64_t j = 0; j < g->out[d]; j++) m[j] = pad_map(p->mode, j, g->pb[d], g->start[d], g->len[d]);
        m += g->out[d];
    }
}

/* Offset (elements) in x of the row feeding output row `row` (leading axes), or -1. */
static int64_t pad_row_src(const pad_geom *g, int64_t *const *maps, const int64_t *xst, int64_t row) {
    int64_t off = 0;
    for (int d = g->nd - 2; d >= 0; d--) {
        int64_t j = row % g->out[d];
        row /= g->out[d];
        int64_t s = maps[d][j];
        if (s < 0) return -1;
        off += s * xst[d];
    }
    return off;
}

static gcam_status pad_forward(gc_kctx *k) {
    const gc_tensor *x = k->in[0];
    gc_tensor *y = k->out[0];
    size_t es = gc_dtype_size(x->dtype);
    if (x->shape.ndim == 0) {
        memcpy(y->data, x->data, es);
        return GCAM_OK;
    }
    pad_geom g;
    gcam_status st = pad_geom_get(k, &g);
    if (st) return st;
    /* The fill value, as the data's bytes. */
    union { float f; int64_t i; uint8_t b; } cv = {0};
    const gc_tensor *ct = opt_in(k, 2);
    if (k->node->opset >= 11 && ct && ct->data && gc_numel(ct) == 1) memcpy(&cv, ct->data, es);
    else if (x->dtype == GC_F32) cv.f = gc_attr_float(k->node, "value", 0.0f);
    else if (x->dtype == GC_I64) cv.i = (int64_t)gc_attr_float(k->node, "value", 0.0f);
    else cv.b = gc_attr_float(k->node, "value", 0.0f) != 0.0f;
    int64_t *maps[GC_MAX_DIMS], xst[GC_MAX_DIMS];
    pad_maps(k, &g, maps);
    gc_shape_strides(xst, &x->shape);
    int nd = g.nd;
    int64_t ow = g.out[nd - 1], rows = gc_numel(y) / (ow ? ow : 1);
    if (ow == 0 || gc_numel(y) == 0) return GCAM_OK;
    const int64_t *mw = maps[nd - 1];
    int64_t lo = GC_MAX(g.pb[nd - 1], 0), mid = g.len[nd - 1], w0 = g.start[nd - 1];
    const char *xd = x->data;
    char *yd = y->data;
#pragma omp parallel for num_threads(k->nthreads) schedule(static) if (rows * ow > (1 << 15))
    for (int64_t r = 0; r < rows; r++) {
        char *yr = yd + (size_t)(r * ow) * es; /* (ow) */
        int64_t src = pad_row_src(&g, maps, xst, r);
        if (src < 0) {
            for (int64_t j = 0; j < ow; j++) memcpy(yr + (size_t)j * es, &cv, es);
            continue;
        }
        const char *xr = xd + (size_t)src * es;
        for (int64_t j = 0; j < ow; j++) {
            if (j == lo && mid > 0) { /* the untouched middle, in one copy */
                memcpy(yr + (size_t)j * es, xr + (size_t)w0 * es, (size_t)mid * es);
                j += mid - 1;
                continue;
            }
            if (mw[j] < 0) memcpy(yr + (size_t)j * es, &cv, es);
            else memcpy(yr + (size_t)j * es, xr + (size_t)mw[j] * es, es);
        }
    }
    return GCAM_OK;
}

/* gx[src(j)] += gy[j]; constant positions get nothing. Blocks over the leading unpadded axes
 * own disjoint parts of gx, so they run in parallel without races. */
static gcam_status pad_backward(gc_kctx *k) {
    gc_tensor *gx = k->gin[0];
    const gc_tensor *gy = k->gout[0];
    if (!gx || !gy || gx->dtype != GC_F32) return GCAM_OK;
    if (gx->shape.ndim == 0) {
        *(float *)gx->data += *(const float *)gy->data;
        return GCAM_OK;
    }
    pad_geom g;
    gcam_status st = pad_geom_get(k, &g);
    if (st) return st;
    int64_t *maps[GC_MAX_DIMS], xst[GC_MAX_DIMS];
    pad_maps(k, &g, maps);
    gc_shape_strides(xst, &gx->shape);
    int nd = g.nd;
    int64_t ow = g.out[nd - 1];
    if (ow == 0 || gc_numel(gy) == 0) return GCAM_OK;
    int npar = 0;
    while (npar < nd - 1 && g.pb[npar] == 0 && g.pe[npar] == 0) npar++;
    int64_t nblk = 1, per = 1;
    for (int d = 0; d < npar; d++) nblk *= g.out[d];
    for (int d = npar; d < nd - 1; d++) per *= g.out[d];
    const int64_t *mw = maps[nd - 1];
    float *xd = gx->data;
    const float *yd = gy->data;
#pragma omp parallel for num_threads(k->nthreads) schedule(static) if (nblk > 1 && gc_numel(gy) > (1 << 15))
    for (int64_t b = 0; b < nblk; b++) {
        for (int64_t q = 0; q < per; q++) {
            int64_t r = b * per + q, src = pad_row_src(&g, maps, xst, r);
            if (src < 0) continue;
            float *xr = xd + src;
            const float *yr = yd + r * ow;
            for (int64_t j = 0; j < ow; j++)
                if (mw[j] >= 0) xr[mw[j]] += yr[j];
        }
    }
    return GCAM_OK;
}

const gc_opdef gc_def_Pad = {.name = "Pad", .min_opset = 2, .parse = pad_parse, .infer = pad_infer,
                             .scratch_bytes = pad_scratch, .forward = pad_forward, .bscratch_bytes = pad_scratch,
                             .backward = pad_backward, .bw_in = 0xAu, .diff_in = 0x1u};

/* ------------------------------------------------------------------------------------------ */
/* Resize / Upsample                                                                            */

enum { RS_NEAREST = 0, RS_LINEAR = 1, RS_CUBIC = 2 };
enum { CT_HALF_PIXEL = 0, CT_PYTORCH_HALF_PIXEL, CT_ALIGN_CORNERS, CT_ASYMMETRIC, CT_TF_HALF_PIXEL_NN,
       CT_TF_CROP_AND_RESIZE };
enum { NM_ROUND_PREFER_FLOOR = 0, NM_ROUND_PREFER_CEIL, NM_FLOOR, NM_CEIL, NM_SIMPLE };

typedef struct rs_params {
    int upsample;    /* Upsample op: X, scales (input from opset 9, attribute before) */
    int mode, ctm, nearest;
    float cubic_a, extrapolation;
    int exclude_outside;
} rs_params;

static const char *const k_ctm_names[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                                          "tf_half_pixel_for_nn", "tf_crop_and_resize"};
static const char *const k_nm_names[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};

static gcam_status rs_parse_common(gc_node *n, gc_err *err, int upsample) {
    rs_params p = {.upsample = upsample, .ctm = CT_ASYMMETRIC, .nearest = NM_SIMPLE, .cubic_a = -0.75f};
    const char *op = upsample ? "Upsample" : "Resize";
    const char *m = gc_attr_str(n, "mode", "nearest");
    if (!strcmp(m, "nearest")) p.mode = RS_NEAREST;
    else if (!strcmp(m, "linear") || !strcmp(m, "bilinear")) p.mode = RS_LINEAR;
    else if (!strcmp(m, "cubic") && !upsample && n->opset >= 11) p.mode = RS_CUBIC;
    else return gc_fail(err, GCAM_E_UNSUPPORTED, "node '%s' (%s): attribute 'mode' = '%s' is not supported", n->name, op, m);
    if (!upsample && n->opset >= 11) {
        /* Opset 10 Resize and Upsample map x_out -> x_out / scale with truncating nearest. */
        const char *c = gc_attr_str(n, "coordinate_transformation_mode", "half_pixel");
        p.ctm = -1;
        for (size_t i = 0; i < GC_ARRAY_LEN(k_ctm_names); i++)
            if (!strcmp(c, k_ctm_names[i])) p.ctm = (int)i;
        if (!strcmp(c, "tf_half_pixel_for_nearest")) p.ctm = CT_TF_HALF_PIXEL_NN;
        if (p.ctm < 0)
            return gc_fail(err, GCAM_E_UNSUPPORTED,
                           "node '%s' (Resize): attribute 'coordinate_transformation_mode' = '%s' is not supported", n->name, c);
        const char *nm = gc_attr_str(n, "nearest_mode", "round_prefer_floor");
        p.nearest = -1;
        for (size_t i = 0; i < GC_ARRAY_LEN(k_nm_names); i++)
            if (!strcmp(nm, k_nm_names[i])) p.nearest = (int)i;
        if (p.nearest < 0)
            return gc_fail(err, GCAM_E_UNSUPPORTED, "node '%s' (Resize): attribute 'nearest_mode' = '%s' is not supported",
                           n->name, nm);
        p.cubic_a = gc_attr_float(n, "cubic_coeff_a", -0.75f);
        p.exclude_outside = gc_attr_int(n, "exclude_outside", 0) != 0;
        p.extrapolation = gc_attr_float(n, "extrapolation_value", 0.0f);
        if (!isfinite(p.cubic_a))
            return gc_fail(err, GCAM_E_FORMAT, "node '%s' (Resize): attribute 'cubic_coeff_a' is not finite", n->name);
        if (gc_attr_int(n, "antialias", 0) != 0 || gc_attr_find(n, "axes") ||
            strcmp(gc_attr_str(n, "keep_aspect_ratio_policy", "stretch"), "stretch") != 0)
            return gc_fail(err, GCAM_E_UNSUPPORTED,
                           "node '%s' (Resize): attributes 'antialias', 'axes' and 'keep_aspect_ratio_policy' (opset 18) "
                           "are not supported", n->name);
    }
    if (upsample && n->opset < 9 && !gc_attr_find(n, "scales"))
        return gc_fail(err, GCAM_E_FORMAT, "node '%s' (Upsample): attribute 'scales' is required", n->name);
    rs_params *pp = malloc(sizeof *pp);
    if (!pp) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
    *pp = p;
    n->params = pp;
    return GCAM_OK;
}

static gcam_status resize_parse(gc_node *n, gc_err *err) { return rs_parse_common(n, err, 0); }
static gcam_status upsample_parse(gc_node *n, gc_err *err) { return rs_parse_common(n, err, 1); }

/* Per-axis geometry. len: the resized length the coordinate formulas use (scale * in when
 * scales are given, as the ONNX reference does, else the requested size). */
typedef struct rs_geom {
    int nd;
    int64_t in[GC_MAX_DIMS], out[GC_MAX_DIMS];
    double scale[GC_MAX_DIMS], len[GC_MAX_DIMS], r0[GC_MAX_DIMS], r1[GC_MAX_DIMS];
} rs_geom;

/* A float input (absent when omitted or empty): count, or -1 when absent. */
static gcam_status rs_floats(gc_kctx *k, int i, const char *what, double *v, int64_t max, int64_t *n) {
    const gc_tensor *t = opt_in(k, i);
    *n = -1;
    if (!t || gc_shape_numel(&t->shape) == 0) return GCAM_OK;
    if (!t->data) return gc_kfail(k, GCAM_E_UNSUPPORTED, "input '%s' must be constant (known when planning)", what);
    int64_t c = gc_numel(t);
    if (c > max) return gc_kfail(k, GCAM_E_SHAPE, "input '%s' has %lld values, expected %lld", what, (long long)c, (long long)max);
    if (t->dtype == GC_F32) for (int64_t j = 0; j < c; j++) v[j] = ((const float *)t->data)[j];
    else if (t->dtype == GC_I64) for (int64_t j = 0; j < c; j++) v[j] = (double)((const int64_t *)t->data)[j];
    else return gc_kfail(k, GCAM_E_FORMAT, "input '%s' must be float", what);
    *n = c;
    return GCAM_OK;
}

static gcam_status rs_geom_get(gc_kctx *k, rs_geom *g) {
    const rs_params *p = k->params;
    const gc_tensor *x = k->in[0];
    int nd = x->shape.ndim;
    double sc[GC_MAX_DIMS], roi[2 * GC_MAX_DIMS];
    int64_t sizes[GC_MAX_DIMS], nsc = -1, nroi = -1, nsz = -1;
    gcam_status st;
    g->nd = nd;
    if (p->upsample && k->node->opset < 9) {
        const float *a;
        nsc = (int64_t)gc_attr_floats(k->node, "scales", &a);
        if (nsc > nd) return gc_kfail(k, GCAM_E_SHAPE, "%lld scales for rank %d", (long long)nsc, nd);
        for (int64_t i = 0; i < nsc; i++) sc[i] = a[i];
    } else if (p->upsample || k->node->opset < 11) {
        if ((st = rs_floats(k, 1, "scales", sc, nd, &nsc))) return st;
        if (nsc < 0) return gc_kfail(k, GCAM_E_FORMAT, "input 'scales' is missing");
    } else {
        if ((st = rs_floats(k, 1, "roi", roi, 2 * nd, &nroi))) return st;
        if ((st = rs_floats(k, 2, "scales", sc, nd, &nsc))) return st;
        const gc_tensor *s = opt_in(k, 3);
        if (s && gc_numel(s) > 0) {
            if (s->dtype != GC_I64) return gc_kfail(k, GCAM_E_FORMAT, "input 'sizes' must be int64");
            if (!s->data) return gc_kfail(k, GCAM_E_UNSUPPORTED, "input 'sizes' must be constant (known when planning)");
            nsz = gc_tensor_ints(s, sizes, nd);
            if (nsz < 0) return gc_kfail(k, GCAM_E_SHAPE, "input 'sizes' has more values than the rank %d", nd);
        }
        if ((nsc >= 0) == (nsz >= 0)) return gc_kfail(k, GCAM_E_FORMAT, "exactly one of 'scales' and 'sizes' must be given");
        if (nsz >= 0 && nsz != nd) return gc_kfail(k, GCAM_E_SHAPE, "%lld sizes for rank %d", (long long)nsz, nd);
        if (nroi >= 0 && nroi != 2 * nd) return gc_kfail(k, GCAM_E_SHAPE, "%lld roi values for rank %d", (long long)nroi, nd);
    }
    if (nsc >= 0 && nsc != nd) return gc_kfail(k, GCAM_E_SHAPE, "%lld scales for rank %d", (long long)nsc, nd);
    for (int d = 0; d < nd; d++) {
        int64_t in = x->shape.d[d];
        g->in[d] = in;
        g->r0[d] = nroi >= 0 ? roi[d] : 0.0;
        g->r1[d] = nroi >= 0 ? roi[d + nd] : 1.0;
        if (nsz >= 0) {
            if (sizes[d] < 0) return gc_kfail(k, GCAM_E_SHAPE, "sizes[%d] = %lld is negative", d, (long long)sizes[d]);
            if (in == 0 && sizes[d] != 0) return gc_kfail(k, GCAM_E_SHAPE, "cannot resize the empty axis %d", d);
            g->out[d] = sizes[d];
            g->scale[d] = in ? (double)sizes[d] / (double)in : 1.0;
            g->len[d] = (double)sizes[d];
        } else {
            if (!(sc[d] > 0) || !isfinite(sc[d])) return gc_kfail(k, GCAM_E_SHAPE, "scale %g on axis %d is not positive", sc[d], d);
            double o = floor(sc[d] * (double)in);
            if (o > 4.0e18) return gc_kfail(k, GCAM_E_SHAPE, "resized extent overflows");
            g->out[d] = (int64_t)o;
            g->scale[d] = sc[d];
            g->len[d] = sc[d] * (double)in;
        }
    }
    return GCAM_OK;
}

static gcam_status rs_infer(gc_kctx *k) {
    const gc_tensor *x = k->in[0];
    if (!x || gc_shape_numel(&x->shape) < 0) return gc_kfail(k, GCAM_E_SHAPE, "input shape unknown");
    if (x->dtype != GC_F32) return gc_kfail(k, GCAM_E_UNSUPPORTED, "only float data can be resized");
    rs_geom g;
    gcam_status st = rs_geom_get(k, &g);
    if (st) return st;
    gc_shape s = {.ndim = g.nd};
    for (int d = 0; d < g.nd; d++) s.d[d] = g.out[d];
    return set_out(k, GC_F32, &s);
}

/* Input coordinate of output index x along axis d. */
static double rs_coord_raw(const rs_params *p, const rs_geom *g, int d, int64_t xo) {
    double x = (double)xo, s = g->scale[d], len = g->len[d], in = (double)g->in[d];
    switch (p->ctm) {
    case CT_HALF_PIXEL: return (x + 0.5) / s - 0.5;
    case CT_PYTORCH_HALF_PIXEL: return len > 1 ? (x + 0.5) / s - 0.5 : 0.0;
    case CT_ALIGN_CORNERS: return len == 1 ? 0.0 : x * (in - 1) / (len - 1);
    case CT_TF_HALF_PIXEL_NN: return (x + 0.5) / s;
    case CT_TF_CROP_AND_RESIZE:
        return len > 1 ? g->r0[d] * (in - 1) + x * (g->r1[d] - g->r0[d]) * (in - 1) / (len - 1)
                       : 0.5 * (g->r0[d] + g->r1[d]) * (in - 1);
    default: return x / s;
    }
}

/* Clamped so degenerate lengths (tf_crop_and_resize with len ~ 1) never overflow an index. */
static double rs_coord(const rs_params *p, const rs_geom *g, int d, int64_t xo) {
    double c = rs_coord_raw(p, g, d, xo);
    if (!(c > -1e15)) return -1e15;
    return c < 1e15 ? c : 1e15;
}

/* An axis the op leaves untouched (same size, every coordinate maps to itself). */
static int rs_identity(const rs_params *p, const rs_geom *g, int d) {
    if (g->out[d] != g->in[d]) return 0;
    for (int64_t x = 0; x < g->out[d]; x++)
        if (rs_coord(p, g, d, x) != (double)x) return 0;
    return 1;
}

static int rs_taps(const rs_params *p) { return p->mode == RS_NEAREST ? 1 : p->mode == RS_LINEAR ? 2 : 4; }

/* Keys cubic kernel with parameter a. */
static double cubic_w(double t, double a) {
    t = fabs(t);
    if (t <= 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
    if (t < 2) return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
    return 0;
}

/* One axis' taps: idx (out, K) clamped input indices, w (out, K), outside (out): 1 where the
 * output is the extrapolation value (tf_crop_and_resize). */
typedef struct rs_tab {
    int64_t *idx;
    float *w;
    uint8_t *outside;
} rs_tab;

static void rs_build(const rs_params *p, const rs_geom *g, int d, rs_tab *t) {
    int K = rs_taps(p);
    int64_t in = g->in[d], last = in - 1;
    for (int64_t o = 0; o < g->out[d]; o++) {
        double c = rs_coord(p, g, d, o), fl = floor(c), r = c - fl;
        int64_t *ix = t->idx + o * K;
        float *w = t->w + o * K;
        t->outside[o] = p->ctm == CT_TF_CROP_AND_RESIZE && (c < 0 || c > (double)last);
        int64_t base = (int64_t)fl;
        if (p->mode == RS_NEAREST) {
            int64_t i = base;
            if (p->nearest == NM_SIMPLE) i = g->scale[d] < 1 ? (int64_t)ceil(c) : (int64_t)c;
            else if (r == 0) i = base;
            else if (p->nearest == NM_ROUND_PREFER_FLOOR) i = r <= 0.5 ? base : base + 1;
            else if (p->nearest == NM_ROUND_PREFER_CEIL) i = r < 0.5 ? base : base + 1;
            else if (p->nearest == NM_CEIL) i = base + 1;
            ix[0] = GC_MAX(0, GC_MIN(i, last));
            w[0] = 1.0f;
            continue;
        }
        double wd[4];
        if (p->mode == RS_LINEAR) {
            wd[0] = 1 - r;
            wd[1] = r;
        } else {
            base -= 1;
            double a = p->cubic_a, sum = 0;
            wd[0] = cubic_w(r + 1, a);
            wd[1] = cubic_w(r, a);
            wd[2] = cubic_w(1 - r, a);
            wd[3] = cubic_w(2 - r, a);
            if (p->exclude_outside) {
                for (int j = 0; j < 4; j++) {
                    if (base + j < 0 || base + j > last) wd[j] = 0;
                    sum += wd[j];
                }
                for (int j = 0; j < 4; j++) wd[j] = sum != 0 ? wd[j] / sum : 0;
            }
        }
        for (int j = 0; j < K; j++) {
            ix[j] = GC_MAX(0, GC_MIN(base + j, last));
            w[j] = (float)wd[j];
        }
    }
}

/* Execution plan: which axes run, in which order, and where everything lives in scratch. */
typedef struct rs_plan {
    rs_geom g;
    int fused;                 /* 2-D kernel over the last two axes */
    int npass, order[GC_MAX_DIMS];
    size_t tab_off[GC_MAX_DIMS];
    size_t buf_elems;          /* each of the two ping-pong buffers (generic path) */
    size_t buf_off[2];
    size_t rows_off;           /* fused linear: per-thread row cache, 2 * out_w floats each */
    size_t rows_per_thread;
    size_t fixed;              /* bytes up to the per-thread rows */
} rs_plan;

static size_t a64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Estimated cost of running the passes in this order: elements written, the innermost axis
 * (scalar gathers) weighted 3x. */
static double rs_order_cost(const rs_geom *g, const int *order, int n) {
    double cur[GC_MAX_DIMS], cost = 0;
    for (int d = 0; d < g->nd; d++) cur[d] = (double)g->in[d];
    for (int i = 0; i < n; i++) {
        int d = order[i];
        cur[d] = (double)g->out[d];
        double e = 1;
        for (int j = 0; j < g->nd; j++) e *= cur[j];
        cost += e * (d == g->nd - 1 ? 3.0 : 1.0);
    }
    return cost;
}

/* Tries every order of the (few) passes, keeping the cheapest (first on ties). */
static void rs_perm(const rs_geom *g, int *cur, int k, int n, int *best, double *best_cost) {
    if (k == n) {
        double c = rs_order_cost(g, cur, n);
        if (c < *best_cost) {
            *best_cost = c;
            memcpy(best, cur, (size_t)n * sizeof *cur);
        }
        return;
    }
    for (int i = k; i < n; i++) {
        int t = cur[k];
        cur[k] = cur[i], cur[i] = t;
        rs_perm(g, cur, k + 1, n, best, best_cost);
        t = cur[k], cur[k] = cur[i], cur[i] = t;
    }
}

static void rs_best_order(const rs_geom *g, int *order, int n) {
    if (n < 2 || n > 5) return;
    int cur[GC_MAX_DIMS], best[GC_MAX_DIMS];
    double best_cost = INFINITY;
    memcpy(cur, order, (size_t)n * sizeof *cur);
    memcpy(best, order, (size_t)n * sizeof *cur);
    rs_perm(g, cur, 0, n, best, &best_cost);
    memcpy(order, best, (size_t)n * sizeof *order);
}

static gcam_status rs_plan_get(gc_kctx *k, rs_plan *pl) {
    const rs_params *p = k->params;
    memset(pl, 0, sizeof *pl);
    gcam_status st = rs_geom_get(k, &pl->g);
    if (st) return st;
    const rs_geom *g = &pl->g;
    int nd = g->nd, K = rs_taps(p), ident[GC_MAX_DIMS];
    size_t off = 0;
    for (int d = 0; d < nd; d++) {
        ident[d] = rs_identity(p, g, d);
        pl->tab_off[d] = off;
        size_t o = (size_t)g->out[d];
        off += a64(o * (size_t)K * sizeof(int64_t)) + a64(o * (size_t)K * sizeof(float)) + a64(o);
    }
    int npass = 0;
    for (int d = 0; d < nd; d++) npass += !ident[d];
    int lead_ident = 1;
    for (int d = 0; d + 2 < nd; d++) lead_ident &= ident[d];
    pl->fused = npass > 0 && p->mode != RS_CUBIC && nd >= 2 && lead_ident;
    if (!pl->fused) {
        for (int d = 0; d < nd; d++)
            if (!ident[d]) pl->order[pl->npass++] = d;
        rs_best_order(g, pl->order, pl->npass);
        int64_t cur[GC_MAX_DIMS];
        for (int d = 0; d < nd; d++) cur[d] = g->in[d];
        size_t big = 0;
        for (int i = 0; i + 1 < pl->npass; i++) {
            cur[pl->order[i]] = g->out[pl->order[i]];
            size_t n = 1;
            for (int d = 0; d < nd; d++) n *= (size_t)cur[d]; /* <= max(in, out) elements: no overflow */
            big = GC_MAX(big, n);
        }
        pl->buf_elems = big;
        pl->buf_off[0] = off;
        off += a64(big * sizeof(float));
        pl->buf_off[1] = off;
        off += a64(big * sizeof(float));
    }
    pl->fixed = off;
    pl->rows_off = off;
    /* fused linear: forward caches two output-width rows, backward one input-width row */
    pl->rows_per_thread = pl->fused && p->mode == RS_LINEAR
                              ? a64(GC_MAX(2 * (size_t)g->out[nd - 1], (size_t)g->in[nd - 1]) * sizeof(float))
                              : 0;
    return GCAM_OK;
}

static size_t rs_scratch(const gc_kctx *k) {
    rs_plan pl;
    if (rs_plan_get((gc_kctx *)k, &pl)) return 0;
    return pl.fixed + pl.rows_per_thread * (size_t)GC_MAX(k->nthreads, 1) + 64;
}

static void rs_tab_at(const gc_kctx *k, const rs_plan *pl, int d, rs_tab *t) {
    int K = rs_taps(k->params);
    size_t o = (size_t)pl->g.out[d];
    char *b = (char *)k->scratch + pl->tab_off[d];
    t->idx = (int64_t *)b;
    t->w = (float *)(b + a64(o * (size_t)K * sizeof(int64_t)));
    t->outside = (uint8_t *)(b + a64(o * (size_t)K * sizeof(int64_t)) + a64(o * (size_t)K * sizeof(float)));
}

/* ---- generic path: one pass per axis over (outer, n, inner) views ---- */

/* y (outer, nout, inner) = taps applied to x (outer, nin, inner). */
static void rs_pass_fw(float *y, const float *x, int64_t outer, int64_t nin, int64_t nout, int64_t inner,
                       const rs_tab *t, int K, float extra, int nthreads) {
    int64_t rows = outer * nout;
    if (inner == 1) { /* the innermost axis: one gather per tap */
#pragma omp parallel for num_threads(nthreads) schedule(static) if (rows * K > (1 << 16))
        for (int64_t o = 0; o < outer; o++) {
            const float *xb = x + o * nin;
            float *yb = y + o * nout;
            for (int64_t j = 0; j < nout; j++) {
                const int64_t *ix = t->idx + j * K;
                const float *w = t->w + j * K;
                float v = w[0] * xb[ix[0]];
                for (int q = 1; q < K; q++) v += w[q] * xb[ix[q]];
                yb[j] = t->outside[j] ? extra : v;
            }
        }
        return;
    }
#pragma omp parallel for num_threads(nthreads) schedule(static) if (rows * inner * K > (1 << 16))
    for (int64_t r = 0; r < rows; r++) {
        int64_t o = r / nout, j = r % nout;
        float *yr = y + r * inner;
        const float *xb = x + o * nin * inner;
        if (t->outside[j]) {
            for (int64_t c = 0; c < inner; c++) yr[c] = extra;
            continue;
        }
        const int64_t *ix = t->idx + j * K;
        const float *w = t->w + j * K;
        const float *x0 = xb + ix[0] * inner;
        for (int64_t c = 0; c < inner; c++) yr[c] = w[0] * x0[c];
        for (int q = 1; q < K; q++) {
            const float *xq = xb + ix[q] * inner;
            float wq = w[q];
            for (int64_t c = 0; c < inner; c++) yr[c] += wq * xq[c];
        }
    }
}

/* gx (outer, nin, inner) += taps^T applied to gy (outer, nout, inner). Tasks own disjoint
 * (outer, inner-chunk) blocks of gx. */
static void rs_pass_bw(float *gx, const float *gy, int64_t outer, int64_t nin, int64_t nout, int64_t inner,
                       const rs_tab *t, int K, int nthreads) {
    if (inner == 1) {
#pragma omp parallel for num_threads(nthreads) schedule(static) if (outer > 1 && outer * nout * K > (1 << 16))
        for (int64_t o = 0; o < outer; o++) {
            float *xb = gx + o * nin;
            const float *yb = gy + o * nout;
            for (int64_t j = 0; j < nout; j++) {
                if (t->outside[j]) continue;
                const int64_t *ix = t->idx + j * K;
                const float *w = t->w + j * K;
                for (int q = 0; q < K; q++) xb[ix[q]] += w[q] * yb[j];
            }
        }
        return;
    }
    int64_t nchunk = (outer >= nthreads || inner < 256) ? 1 : nthreads;
    int64_t csz = (inner + nchunk - 1) / nchunk, tasks = outer * nchunk;
#pragma omp parallel for num_threads(nthreads) schedule(static) if (tasks > 1 && outer * nout * inner * K > (1 << 16))
    for (int64_t tk = 0; tk < tasks; tk++) {
        int64_t o = tk / nchunk, c0 = (tk % nchunk) * csz, c1 = GC_MIN(inner, c0 + csz);
        float *xb = gx + o * nin * inner;
        for (int64_t j = 0; j < nout; j++) {
            if (t->outside[j]) continue;
            const float *yr = gy + (o * nout + j) * inner;
            for (int q = 0; q < K; q++) {
                float *xr = xb + t->idx[j * K + q] * inner, wq = t->w[j * K + q];
                if (wq == 0.0f) continue;
                for (int64_t c = c0; c < c1; c++) xr[c] += wq * yr[c];
            }
        }
    }
}

/* outer/inner around axis d of the shape cur. */
static void rs_split(const int64_t *cur, int nd, int d, int64_t *outer, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < d; i++) *outer *= cur[i];
    for (int i = d + 1; i < nd; i++) *inner *= cur[i];
}

/* ---- fused 2-D path over the last two axes: x (P, H, W) -> y (P, OH, OW) ---- */

static void rs_fused_nearest_fw(float *y, const float *x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                const rs_tab *ty, const rs_tab *tx, float extra, int nthreads) {
    int64_t rows = P * OH;
    int any_out_x = 0;
    for (int64_t ox = 0; ox < OW; ox++) any_out_x |= tx->outside[ox];
#pragma omp parallel for num_threads(nthreads) schedule(static) if (rows * OW > (1 << 15))
    for (int64_t r = 0; r < rows; r++) {
        int64_t pi = r / OH, oy = r % OH;
        float *yr = y + r * OW;
        if (ty->outside[oy]) {
            for (int64_t ox = 0; ox < OW; ox++) yr[ox] = extra;
            continue;
        }
        const float *xr = x + (pi * H + ty->idx[oy]) * W;
        const int64_t *ix = tx->idx;
        if (any_out_x)
            for (int64_t ox = 0; ox < OW; ox++) yr[ox] = tx->outside[ox] ? extra : xr[ix[ox]];
        else
            for (int64_t ox = 0; ox < OW; ox++) yr[ox] = xr[ix[ox]];
    }
}

/* Horizontal pass of one input row into h (OW). */
static void rs_hrow(float *h, const float *xr, int64_t OW, const rs_tab *tx) {
    for (int64_t ox = 0; ox < OW; ox++) {
        const int64_t *ix = tx->idx + 2 * ox;
        const float *w = tx->w + 2 * ox;
        h[ox] = w[0] * xr[ix[0]] + w[1] * xr[ix[1]];
    }
}

/* Bilinear: rows are interpolated horizontally once (cached per thread: upsampling reuses each
 * one), then blended vertically. */
static void rs_fused_linear_fw(float *y, const float *x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW,
                               const rs_tab *ty, const rs_tab *tx, float extra, float *rows, size_t row_stride,
                               int nthreads) {
    int64_t work = P * OH * OW;
    int nt = (work > (1 << 15) && P > 1) ? nthreads : 1;
#pragma omp parallel num_threads(nt)
    {
        int tid = 0, nth = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nth = omp_get_num_threads();
#endif
        float *h0 = rows + (size_t)tid * row_stride, *h1 = h0 + OW;
        int64_t p0 = P * tid / nth, p1 = P * (tid + 1) / nth;
        for (int64_t pi = p0; pi < p1; pi++) {
            const float *xp = x + pi * H * W;
            int64_t have0 = -1, have1 = -1; /* input rows cached in h0/h1 */
            for (int64_t oy = 0; oy < OH; oy++) {
                float *yr = y + (pi * OH + oy) * OW;
                if (ty->outside[oy]) {
                    for (int64_t ox = 0; ox < OW; ox++) yr[ox] = extra;
                    continue;
                }
                int64_t y0 = ty->idx[2 * oy], y1 = ty->idx[2 * oy + 1];
                float wy0 = ty->w[2 * oy], wy1 = ty->w[2 * oy + 1];
                if (have0 != y0) {
                    if (have1 == y0) { /* slide the window down */
                        float *tmp = h0;
                        h0 = h1, h1 = tmp;
                        have0 = y0, have1 = -1;
                    } else {
                        rs_hrow(h0, xp + y0 * W, OW, tx);
                        have0 = y0;
                    }
                }
                if (have1 != y1) {
                    rs_hrow(h1, xp + y1 * W, OW, tx);
                    have1 = y1;
                }
                for (int64_t ox = 0; ox < OW; ox++) yr[ox] = wy0 * h0[ox] + wy1 * h1[ox];
                for (int64_t ox = 0; ox < OW; ox++)
                    if (tx->outside[ox]) yr[ox] = extra;
            }
        }
    }
}

/* gx (P, H, W) += taps^T gy (P, OH, OW); planes are independent. Nearest scatters directly;
 * linear first folds each gradient row horizontally into a row h (W) that stays in L1, then
 * adds it to the two input rows. */
static void rs_fused_bw(float *gx, const float *gy, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW,
                        const rs_tab *ty, const rs_tab *tx, int K, float *rows, size_t row_stride, int nthreads) {
    int nt = (P > 1 && P * OH * OW > (1 << 15)) ? nthreads : 1;
#pragma omp parallel num_threads(nt)
    {
        int tid = 0, nth = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nth = omp_get_num_threads();
#endif
        float *h = rows ? rows + (size_t)tid * row_stride : NULL;
        int64_t p0 = P * tid / nth, p1 = P * (tid + 1) / nth;
        for (int64_t pi = p0; pi < p1; pi++) {
            float *xp = gx + pi * H * W;
            for (int64_t oy = 0; oy < OH; oy++) {
                if (ty->outside[oy]) continue;
                const float *yr = gy + (pi * OH + oy) * OW;
                if (K == 1) {
                    float *xr = xp + ty->idx[oy] * W;
                    for (int64_t ox = 0; ox < OW; ox++)
                        if (!tx->outside[ox]) xr[tx->idx[ox]] += yr[ox];
                    continue;
                }
                memset(h, 0, (size_t)W * sizeof(float));
                for (int64_t ox = 0; ox < OW; ox++) {
                    if (tx->outside[ox]) continue;
                    h[tx->idx[2 * ox]] += tx->w[2 * ox] * yr[ox];
                    h[tx->idx[2 * ox + 1]] += tx->w[2 * ox + 1] * yr[ox];
                }
                for (int q = 0; q < 2; q++) {
                    float wy = ty->w[2 * oy + q], *xr = xp + ty->idx[2 * oy + q] * W;
                    if (wy != 0.0f)
                        for (int64_t x = 0; x < W; x++) xr[x] += wy * h[x];
                }
            }
        }
    }
}

static gcam_status rs_forward(gc_kctx *k) {
    const rs_params *p = k->params;
    rs_plan pl;
    gcam_status st = rs_plan_get(k, &pl);
    if (st) return st;
    if (k->scratch_size < pl.fixed + pl.rows_per_thread)
        return gc_kfail(k, GCAM_E_INTERNAL, "scratch too small");
    const rs_geom *g = &pl.g;
    int nd = g->nd, K = rs_taps(p);
    const float *x = k->in[0]->data;
    float *y = k->out[0]->data;
    if (gc_numel(k->out[0]) == 0) return GCAM_OK;
    rs_tab tab[GC_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        rs_tab_at(k, &pl, d, &tab[d]);
        rs_build(p, g, d, &tab[d]);
    }
    if (pl.fused) {
        int64_t P = 1, H = g->in[nd - 2], W = g->in[nd - 1], OH = g->out[nd - 2], OW = g->out[nd - 1];
        for (int d = 0; d + 2 < nd; d++) P *= g->in[d];
        if (p->mode == RS_NEAREST) {
            rs_fused_nearest_fw(y, x, P, H, W, OH, OW, &tab[nd - 2], &tab[nd - 1], p->extrapolation, k->nthreads);
        } else {
            int nt = (int)GC_MIN((size_t)GC_MAX(k->nthreads, 1), (k->scratch_size - pl.fixed) / pl.rows_per_thread);
            rs_fused_linear_fw(y, x, P, H, W, OH, OW, &tab[nd - 2], &tab[nd - 1], p->extrapolation,
                               (float *)((char *)k->scratch + pl.rows_off), pl.rows_per_thread / sizeof(float), nt);
        }
        return GCAM_OK;
    }
    if (pl.npass == 0) {
        memcpy(y, x, (size_t)gc_numel(k->out[0]) * sizeof(float));
        return GCAM_OK;
    }
    int64_t cur[GC_MAX_DIMS];
    for (int d = 0; d < nd; d++) cur[d] = g->in[d];
    const float *src = x;
    for (int i = 0; i < pl.npass; i++) {
        int d = pl.order[i];
        float *dst = i + 1 == pl.npass ? y : (float *)((char *)k->scratch + pl.buf_off[i & 1]);
        int64_t outer, inner;
        rs_split(cur, nd, d, &outer, &inner);
        rs_pass_fw(dst, src, outer, cur[d], g->out[d], inner, &tab[d], K, p->extrapolation, k->nthreads);
        cur[d] = g->out[d];
        src = dst;
    }
    return GCAM_OK;
}

static gcam_status rs_backward(gc_kctx *k) {
    const rs_params *p = k->params;
    gc_tensor *gx = k->gin[0];
    const gc_tensor *gy = k->gout[0];
    if (!gx || !gy) return GCAM_OK;
    rs_plan pl;
    gcam_status st = rs_plan_get(k, &pl);
    if (st) return st;
    if (k->scratch_size < pl.fixed + pl.rows_per_thread) return gc_kfail(k, GCAM_E_INTERNAL, "scratch too small");
    const rs_geom *g = &pl.g;
    int nd = g->nd, K = rs_taps(p);
    if (gc_numel(gy) == 0) return GCAM_OK;
    rs_tab tab[GC_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        rs_tab_at(k, &pl, d, &tab[d]);
        rs_build(p, g, d, &tab[d]);
    }
    if (pl.fused) {
        int64_t P = 1, H = g->in[nd - 2], W = g->in[nd - 1], OH = g->out[nd - 2], OW = g->out[nd - 1];
        for (int d = 0; d + 2 < nd; d++) P *= g->in[d];
        float *rows = NULL;
        int nt = k->nthreads;
        if (pl.rows_per_thread) {
            rows = (float *)((char *)k->scratch + pl.rows_off);
            nt = (int)GC_MIN((size_t)GC_MAX(k->nthreads, 1), (k->scratch_size - pl.fixed) / pl.rows_per_thread);
        }
        rs_fused_bw(gx->data, gy->data, P, H, W, OH, OW, &tab[nd - 2], &tab[nd - 1], K, rows,
                    pl.rows_per_thread / sizeof(float), nt);
        return GCAM_OK;
    }
    float *gxd = gx->data;
    const float *gyd = gy->data;
    if (pl.npass == 0) {
        int64_t n = gc_numel(gx);
        for (int64_t i = 0; i < n; i++) gxd[i] += gyd[i];
        return GCAM_OK;
    }
    /* Shapes before each forward pass, to walk them backwards. */
    int64_t shp[GC_MAX_DIMS + 1][GC_MAX_DIMS];
    for (int d = 0; d < nd; d++) shp[0][d] = g->in[d];
    for (int i = 0; i < pl.npass; i++) {
        memcpy(shp[i + 1], shp[i], sizeof shp[i]);
        shp[i + 1][pl.order[i]] = g->out[pl.order[i]];
    }
    const float *src = gyd;
    for (int i = pl.npass - 1; i >= 0; i--) {
        int d = pl.order[i];
        float *dst = i == 0 ? gxd : (float *)((char *)k->scratch + pl.buf_off[i & 1]);
        int64_t outer, inner, n = 1;
        rs_split(shp[i], nd, d, &outer, &inner);
        if (i > 0) { /* intermediate gradients start from zero; gx accumulates */
            for (int j = 0; j < nd; j++) n *= shp[i][j];
            memset(dst, 0, (size_t)n * sizeof(float));
        }
        rs_pass_bw(dst, src, outer, shp[i][d], g->out[d], inner, &tab[d], K, k->nthreads);
        src = dst;
    }
    return GCAM_OK;
}

const gc_opdef gc_def_Resize = {.name = "Resize", .min_opset = 10, .parse = resize_parse, .infer = rs_infer,
                                .scratch_bytes = rs_scratch, .forward = rs_forward, .bscratch_bytes = rs_scratch,
                                .backward = rs_backward, .bw_in = 0xEu, .diff_in = 0x1u};

const gc_opdef gc_def_Upsample = {.name = "Upsample", .min_opset = 7, .parse = upsample_parse, .infer = rs_infer,
                                  .scratch_bytes = rs_scratch, .forward = rs_forward, .bscratch_bytes = rs_scratch,
                                  .backward = rs_backward, .bw_in = 0x2u, .diff_in = 0x1u};

/* Detector outputs (gradcam.h, "detector outputs"): YOLO-style candidates decoded from one float32
 * output, filtered by score and class, class-wise NMS, and for each detection the target whose
 * value is its score.
 *
 * Rules, all deterministic:
 *  - Per candidate, one class (no multi-label): the best score among the allowed classes, ties to
 *    the lower class index. YOLOv5's score per class is objectness x class score (float product).
 *  - Dropped: NaN in any field the candidate uses (box, objectness, allowed class scores), a score
 *    that is not finite or < score_threshold, a box that is not finite, w <= 0 or h <= 0, corners
 *    that overflow.
 *  - Order: score descending, ties to the lower anchor index. NMS is greedy in that order (as
 *    torchvision.ops.batched_nms, whose order among equal scores is unspecified: ours is the lower
 *    anchor first), class-wise: a candidate is suppressed by a kept box of its class whose IoU with
 *    it is > iou_threshold. IoU is computed in double on the float corners, then rounded to float
 *    and compared with the float threshold: an IoU equal to the threshold's decimal (exactly 0.45
 *    against 0.45f, which is 0.449999988) is equal, so not suppressed, as a user reads it.
 *  - At most GC_DET_MAX_NMS candidates per sample enter NMS (the best, as Ultralytics' max_nms), so
 *    that NMS stays bounded; a sample with more survivors loses its lowest-scoring ones.
 *  - Greedy order means the first max_detections kept are the best max_detections of full NMS:
 *    NMS stops there.
 *  - No detection: *dets = NULL, *n_dets = 0, GCAM_OK. */
#include <math.h>
#include <strings.h>

#include "../common.h"

/* Candidates per sample that enter NMS at most (sorted by score first). */
#define GC_DET_MAX_NMS 30000

/* Where a candidate's fields live in the flat output. Field f (0..3: cx, cy, w, h; obj; classes
 * from cls0) of anchor a in sample n is at n * s_n + a * s_a + f * s_f.
 *   yolov8 (N, 4 + C, A): s_n = (4 + C) * A, s_a = 1, s_f = A, cls0 = 4, no objectness
 *   yolov5 (N, A, 5 + C): s_n = A * (5 + C), s_a = 5 + C, s_f = 1, cls0 = 5, obj = 4 */
typedef struct det_geom {
    gcam_det_layout layout;
    int64_t n, a, c;
    int64_t s_n, s_a, s_f;
    int64_t cls0, obj; /* obj < 0: none */
} det_geom;

typedef struct det_cand {
    float score;
    int64_t anchor, cls;
    float x0, y0, x1, y1;
} det_cand;

/* Scratch buffers for one sample, sized once for the whole output. */
typedef struct det_work {
    float *best;           /* (A) best allowed score so far; NaN sticks */
    int64_t *best_cls;     /* (A) its class, -1 before any */
    det_cand *cand;        /* (A) survivors of the threshold */
    int64_t *kept;         /* (min(A, cap, max_det)) indices into cand */
    int64_t *chain;        /* (same) previous kept of the same class, -1 at the end */
    int64_t *head;         /* (C) last kept of each class, -1 none */
    unsigned char *allow;  /* (C) class filter, NULL: every class */
} det_work;

static const char *const g_layout_names[] = {"auto", "yolov8", "yolov5"};

const char *gcam_det_layout_name(gcam_det_layout l) {
    return (unsigned)l < GC_ARRAY_LEN(g_layout_names) ? g_layout_names[l] : "unknown";
}

int gcam_det_layout_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < (int)GC_ARRAY_LEN(g_layout_names); i++)
        if (strcasecmp(name, g_layout_names[i]) == 0) return i;
    return -1;
}

void gcam_detect_options_init(gcam_detect_options *o) {
    if (!o) return;
    *o = (gcam_detect_options){.layout = GCAM_DET_AUTO, .score_threshold = 0.25f, .iou_threshold = 0.45f,
                               .max_detections = 100, .classes = NULL, .n_classes = 0};
}

/* ---- messages -------------------------------------------------------------------------------- */

static gcam_status det_fail(char *err, size_t err_size, gcam_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static gcam_status det_fail(char *err, size_t err_size, gcam_status code, const char *fmt, ...) {
    if (err && err_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* "output 'name' (1, 84, 8400)": the start of every shape message. */
static const char *view_str(const gcam_tensor_view *v, char *buf, size_t n) {
    size_t used = (size_t)snprintf(buf, n, "output '%s' (", v->name ? v->name : "?");
    int nd = v->ndim < 0 ? 0 : GC_MIN(v->ndim, GCAM_MAX_DIMS);
    for (int i = 0; i < nd && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)v->dims[i]);
    if (used < n) snprintf(buf + used, n - used, ")");
    return buf;
}

#define DET_LAYOUTS "yolov8 (N, 4 + C, A) or yolov5 (N, A, 5 + C)"

/* ---- shape ----------------------------------------------------------------------------------- */

/* The view is float32, 3-D, and its dims multiply (without overflow) to numel: nothing is read
 * before this holds, so huge dims on a small buffer are refused here. */
static gcam_status check_view(const gcam_tensor_view *v, char *err, size_t es) {
    char vs[160];
    if (v->ndim != 3)
        return det_fail(err, es, GCAM_E_SHAPE, "%s: a detector output has 3 dimensions: give " DET_LAYOUTS,
                        view_str(v, vs, sizeof vs));
    if (v->dtype != GCAM_FLOAT32)
        return det_fail(err, es, GCAM_E_SHAPE, "%s is %s: a detector output must be float32",
                        view_str(v, vs, sizeof vs), gcam_dtype_str(v->dtype));
    int64_t numel = 1;
    for (int i = 0; i < 3; i++)
        if (v->dims[i] < 0 || gc_mul_i64(&numel, numel, v->dims[i]))
            return det_fail(err, es, GCAM_E_SHAPE, "%s: negative or overflowing dimensions",
                            view_str(v, vs, sizeof vs));
    if ((uint64_t)numel != (uint64_t)v->numel)
        return det_fail(err, es, GCAM_E_SHAPE, "%s: the shape holds %lld elements but the view has %zu",
                        view_str(v, vs, sizeof vs), (long long)numel, v->numel);
    if (numel > 0 && !v->data)
        return det_fail(err, es, GCAM_E_ARG, "%s: no data", view_str(v, vs, sizeof vs));
    return GCAM_OK;
}

/* AUTO: yolov8 when D1 < D2 (classes fewer than anchors) and D1 >= 5, yolov5 when D1 > D2 and
 * D2 >= 6; D1 == D2 is ambiguous. A named layout only needs room for one class. */
static gcam_status pick_layout(const gcam_tensor_view *v, gcam_det_layout want, gcam_det_layout *got,
                               char *err, size_t es) {
    int64_t d1 = v->dims[1], d2 = v->dims[2];
    char vs[160];
    if (want == GCAM_DET_AUTO) {
        *got = d1 < d2 && d1 >= 5 ? GCAM_DET_YOLOV8 : d1 > d2 && d2 >= 6 ? GCAM_DET_YOLOV5 : GCAM_DET_AUTO;
        if (*got != GCAM_DET_AUTO) return GCAM_OK;
        return det_fail(err, es, GCAM_E_SHAPE, "%s: cannot tell the detection layout: give " DET_LAYOUTS,
                        view_str(v, vs, sizeof vs));
    }
    if (want == GCAM_DET_YOLOV8 && d1 < 5)
        return det_fail(err, es, GCAM_E_SHAPE, "%s: does not fit yolov8 (N, 4 + C, A) with C >= 1 (layouts: " DET_LAYOUTS ")",
                        view_str(v, vs, sizeof vs));
    if (want == GCAM_DET_YOLOV5 && d2 < 6)
        return det_fail(err, es, GCAM_E_SHAPE, "%s: does not fit yolov5 (N, A, 5 + C) with C >= 1 (layouts: " DET_LAYOUTS ")",
                        view_str(v, vs, sizeof vs));
    *got = want;
    return GCAM_OK;
}

/* Strides of the layout (see det_geom). check_view bounded N * D1 * D2 by numel, so with N >= 1
 * no index overflows; with N = 0, D1 * D2 may (then s_n is 0 and nothing is read). */
static det_geom make_geom(const gcam_tensor_view *v, gcam_det_layout l) {
    int64_t d1 = v->dims[1], d2 = v->dims[2];
    det_geom g = {.layout = l, .n = v->dims[0]};
    if (gc_mul_i64(&g.s_n, d1, d2)) g.s_n = 0;
    if (l == GCAM_DET_YOLOV8) {
        g.a = d2, g.c = d1 - 4, g.s_a = 1, g.s_f = d2, g.cls0 = 4, g.obj = -1;
    } else {
        g.a = d1, g.c = d2 - 5, g.s_a = d2, g.s_f = 1, g.cls0 = 5, g.obj = 4;
    }
    return g;
}

/* ---- options --------------------------------------------------------------------------------- */

static gcam_status check_options(const gcam_detect_options *o, char *err, size_t es) {
    if ((unsigned)o->layout > GCAM_DET_YOLOV5)
        return det_fail(err, es, GCAM_E_ARG, "detect: unknown layout %d", (int)o->layout);
    if (isnan(o->score_threshold) || isnan(o->iou_threshold))
        return det_fail(err, es, GCAM_E_ARG, "detect: the score and IoU thresholds must not be NaN");
    if (o->max_detections < 1)
        return det_fail(err, es, GCAM_E_ARG, "detect: max_detections is %d, must be >= 1", o->max_detections);
    if (o->n_classes < 0 || (o->n_classes > 0 && !o->classes))
        return det_fail(err, es, GCAM_E_ARG, "detect: class filter of %d classes without a list", o->n_classes);
    return GCAM_OK;
}

/* ---- decoding one sample --------------------------------------------------------------------- */

/* Keeps the best allowed score of anchor a: NaN sticks (the candidate is dropped), a strictly
 * greater score wins, so ties go to the lower class. */
static inline void take(det_work *w, int64_t a, int64_t c, float s) {
    if (isnan(w->best[a])) return;
    if (isnan(s) || s > w->best[a] || w->best_cls[a] < 0) w->best[a] = s, w->best_cls[a] = c;
}

/* best/best_cls over the allowed classes, in memory order: yolov8 reads one class row (A floats)
 * at a time, yolov5 one anchor row (5 + C floats). p: the sample's first element. */
static void best_classes(const det_geom *g, const float *p, det_work *w) {
    for (int64_t a = 0; a < g->a; a++) w->best[a] = -INFINITY, w->best_cls[a] = -1;
    if (g->layout == GCAM_DET_YOLOV8) {
        for (int64_t c = 0; c < g->c; c++) {
            if (w->allow && !w->allow[c]) continue;
            const float *row = p + (g->cls0 + c) * g->s_f; /* (A) */
            for (int64_t a = 0; a < g->a; a++) take(w, a, c, row[a]);
        }
        return;
    }
    for (int64_t a = 0; a < g->a; a++) {
        const float *row = p + a * g->s_a; /* (5 + C): cx, cy, w, h, obj, classes */
        for (int64_t c = 0; c < g->c; c++)
            if (!w->allow || w->allow[c]) take(w, a, c, row[g->obj] * row[g->cls0 + c]);
    }
}

/* Anchor a's box if usable: finite, w > 0, h > 0, corners finite (cx + w/2 may overflow). */
static int read_box(const det_geom *g, const float *p, int64_t a, det_cand *c) {
    const float *q = p + a * g->s_a;
    float cx = q[0], cy = q[g->s_f], bw = q[2 * g->s_f], bh = q[3 * g->s_f];
    if (!(bw > 0 && bh > 0 && isfinite(cx) && isfinite(cy) && isfinite(bw) && isfinite(bh))) return 0;
    c->x0 = cx - 0.5f * bw, c->x1 = cx + 0.5f * bw; /* as torchvision's box_convert, in float */
    c->y0 = cy - 0.5f * bh, c->y1 = cy + 0.5f * bh;
    return isfinite(c->x0) && isfinite(c->x1) && isfinite(c->y0) && isfinite(c->y1);
}

/* Survivors of the threshold into w->cand; returns their count. */
static int64_t collect(const det_geom *g, const float *p, float thr, det_work *w) {
    int64_t k = 0;
    for (int64_t a = 0; a < g->a; a++) {
        float s = w->best[a];
        if (!(s >= thr) || !isfinite(s) || w->best_cls[a] < 0) continue; /* NaN fails s >= thr */
        det_cand *c = &w->cand[k];
        if (!read_box(g, p, a, c)) continue;
        c->score = s, c->anchor = a, c->cls = w->best_cls[a];
        k++;
    }
    return k;
}

/* Score descending, then anchor ascending: a total order (anchors are distinct, no NaN here). */
static int cand_cmp(const void *pa, const void *pb) {
    const det_cand *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->anchor > b->anchor) - (a->anchor < b->anchor);
}

static double iou(const det_cand *a, const det_cand *b) {
    double iw = GC_MIN((double)a->x1, (double)b->x1) - GC_MAX((double)a->x0, (double)b->x0);
    double ih = GC_MIN((double)a->y1, (double)b->y1) - GC_MAX((double)a->y0, (double)b->y0);
    if (iw <= 0 || ih <= 0) return 0;
    double inter = iw * ih;
    double ua = ((double)a->x1 - a->x0) * ((double)a->y1 - a->y0) + ((double)b->x1 - b->x0) * ((double)b->y1 - b->y0);
    double u = ua - inter;
    return u > 0 ? inter / u : 0;
}

/* Greedy class-wise NMS over the sorted cand[0..k): w->kept gets the kept indices, best first,
 * at most max_det (greedy order makes them the best max_det of the full NMS). Each candidate is
 * compared with the kept boxes of its class only (w->head / w->chain). */
static int64_t nms(det_work *w, int64_t k, float iou_thr, int64_t max_det) {
    int64_t nk = 0;
    for (int64_t i = 0; i < k && nk < max_det; i++) {
        const det_cand *c = &w->cand[i];
        int keep = 1;
        for (int64_t j = w->head[c->cls]; j >= 0 && keep; j = w->chain[j])
            keep = !((float)iou(&w->cand[w->kept[j]], c) > iou_thr);
        if (!keep) continue;
        w->kept[nk] = i, w->chain[nk] = w->head[c->cls], w->head[c->cls] = nk;
        nk++;
    }
    for (int64_t j = 0; j < nk; j++) w->head[w->cand[w->kept[j]].cls] = -1; /* ready for the next sample */
    return nk;
}

/* ---- the whole output ------------------------------------------------------------------------ */

/* The filter's classes must exist in the output (a filter that can never match is a mistake, not
 * an empty result). Checked before anything is sized by C. */
static gcam_status check_filter(const gcam_detect_options *o, const gcam_tensor_view *v, const det_geom *g,
                                char *err, size_t es) {
    char vs[160];
    for (int i = 0; i < o->n_classes; i++)
        if (o->classes[i] < 0 || o->classes[i] >= g->c)
            return det_fail(err, es, GCAM_E_ARG, "%s: class filter: class %lld is not among its %lld classes",
                            view_str(v, vs, sizeof vs), (long long)o->classes[i], (long long)g->c);
    return GCAM_OK;
}

static void work_free(det_work *w) {
    free(w->best), free(w->best_cls), free(w->cand), free(w->kept), free(w->chain), free(w->head), free(w->allow);
}

/* Buffers sized by A and C: both are bounded by numel once N >= 1 and A >= 1 (the caller's
 * check), so no size here can exceed the output itself by more than the element size ratio. */
static gcam_status work_alloc(det_work *w, const det_geom *g, const gcam_detect_options *o, char *err, size_t es) {
    size_t a = (size_t)g->a, c = (size_t)g->c;
    size_t nk = (size_t)GC_MIN(GC_MIN(g->a, (int64_t)GC_DET_MAX_NMS), (int64_t)o->max_detections);
    w->best = gc_malloc2(a, sizeof *w->best);
    w->best_cls = gc_malloc2(a, sizeof *w->best_cls);
    w->cand = gc_malloc2(a, sizeof *w->cand);
    w->kept = gc_malloc2(nk, sizeof *w->kept);
    w->chain = gc_malloc2(nk, sizeof *w->chain);
    w->head = gc_malloc2(c, sizeof *w->head);
    if (o->n_classes > 0) w->allow = gc_calloc2(c, 1);
    if (!w->best || !w->best_cls || !w->cand || !w->kept || !w->chain || !w->head || (o->n_classes > 0 && !w->allow))
        return det_fail(err, es, GCAM_E_NOMEM, "detect: out of memory (%lld anchors, %lld classes)",
                        (long long)g->a, (long long)g->c);
    for (size_t i = 0; i < c; i++) w->head[i] = -1;
    for (int i = 0; i < o->n_classes; i++) w->allow[o->classes[i]] = 1;
    return GCAM_OK;
}

/* The PRODUCT target whose value is the detection's score: the class score element, and for
 * yolov5 the objectness element (score = obj x class score). cls is set too, for display. */
static gcam_target det_target(const det_geom *g, int64_t n, int64_t a, int64_t c) {
    gcam_target t = {.kind = GCAM_TARGET_PRODUCT, .cls = c, .n_elements = 1};
    int64_t base = n * g->s_n + a * g->s_a;
    t.elements[0] = base + (g->cls0 + c) * g->s_f; /* yolov8 (n*(4+C) + 4+c)*A + a; yolov5 (n*A + a)*(5+C) + 5+c */
    if (g->obj >= 0) t.elements[t.n_elements++] = base + g->obj * g->s_f;
    return t;
}

/* Appends sample n's kept detections to *dets (grown by doubling, sizes overflow-checked). */
static gcam_status append(const det_geom *g, const det_work *w, int64_t n, int64_t nk, gcam_detection **dets,
                          int64_t *n_dets, int64_t *cap, char *err, size_t es) {
    int64_t need;
    if (gc_add_i64(&need, *n_dets, nk)) return det_fail(err, es, GCAM_E_NOMEM, "detect: too many detections");
    if (need > *cap) {
        int64_t ncap = GC_MAX(need, *cap > INT64_MAX / 2 ? need : *cap * 2);
        gcam_detection *d = NULL;
        size_t bytes;
        if ((uint64_t)ncap <= SIZE_MAX && !gc_mul_sz(&bytes, (size_t)ncap, sizeof *d)) d = realloc(*dets, bytes);
        if (!d) return det_fail(err, es, GCAM_E_NOMEM, "detect: out of memory (%lld detections)", (long long)ncap);
        *dets = d, *cap = ncap;
    }
    for (int64_t j = 0; j < nk; j++) {
        const det_cand *c = &w->cand[w->kept[j]];
        (*dets)[(*n_dets)++] = (gcam_detection){.sample = n, .anchor = c->anchor, .cls = c->cls, .score = c->score,
                                                .x0 = c->x0, .y0 = c->y0, .x1 = c->x1, .y1 = c->y1,
                                                .target = det_target(g, n, c->anchor, c->cls)};
    }
    return GCAM_OK;
}

/* Each sample: best class per anchor, threshold, sort, cap, NMS, append. */
static gcam_status decode_all(const det_geom *g, const float *data, const gcam_detect_options *o, det_work *w,
                              gcam_detection **dets, int64_t *n_dets, char *err, size_t es) {
    int64_t cap = 0;
    for (int64_t n = 0; n < g->n; n++) {
        const float *p = data + n * g->s_n; /* this sample's (D1, D2) */
        best_classes(g, p, w);
        int64_t k = collect(g, p, o->score_threshold, w);
        qsort(w->cand, (size_t)k, sizeof *w->cand, cand_cmp);
        k = GC_MIN(k, (int64_t)GC_DET_MAX_NMS);
        int64_t nk = nms(w, k, o->iou_threshold, o->max_detections);
        gcam_status rc = append(g, w, n, nk, dets, n_dets, &cap, err, es);
        if (rc) return rc;
    }
    return GCAM_OK;
}

gcam_status gcam_detect_decode(const gcam_tensor_view *out, const gcam_detect_options *opts, gcam_detection **dets,
                               int64_t *n_dets, gcam_det_layout *layout_used, char *err, size_t err_size) {
    if (err && err_size) err[0] = 0;
    if (dets) *dets = NULL;
    if (n_dets) *n_dets = 0;
    if (!out || !dets || !n_dets) return det_fail(err, err_size, GCAM_E_ARG, "detect: NULL output or result pointer");
    gcam_detect_options o;
    if (opts) o = *opts;
    else gcam_detect_options_init(&o);
    gcam_det_layout l = GCAM_DET_AUTO;
    gcam_status rc = check_options(&o, err, err_size);
    if (!rc) rc = check_view(out, err, err_size);
    if (!rc) rc = pick_layout(out, o.layout, &l, err, err_size);
    if (rc) return rc;
    det_geom g = make_geom(out, l);
    if ((rc = check_filter(&o, out, &g, err, err_size))) return rc;
    if (layout_used) *layout_used = l;
    /* No sample or no anchor: nothing to read. (Here A and C may be huge, bounded by nothing.) */
    if (g.n == 0 || g.a == 0) return GCAM_OK;
    det_work w = {0};
    rc = work_alloc(&w, &g, &o, err, err_size);
    if (!rc) rc = decode_all(&g, out->data, &o, &w, dets, n_dets, err, err_size);
    work_free(&w);
    if (rc) {
        free(*dets);
        *dets = NULL, *n_dets = 0;
    }
    return rc;
}

gcam_status gcam_detect_layout(const gcam_tensor_view *out, gcam_det_layout layout, gcam_det_layout *used,
                               int64_t *num_classes, char *err, size_t err_size) {
    gcam_detect_options probe;
    gcam_detect_options_init(&probe);
    probe.layout = layout;
    probe.score_threshold = 2; /* scores are at most 1 where it matters: nothing is kept */
    gcam_detection *d = NULL;
    int64_t nd = 0;
    gcam_det_layout lay = GCAM_DET_AUTO;
    gcam_status rc = gcam_detect_decode(out, &probe, &d, &nd, &lay, err, err_size);
    free(d);
    if (rc) return rc;
    if (used) *used = lay;
    if (num_classes) *num_classes = lay == GCAM_DET_YOLOV8 ? out->dims[1] - 4 : out->dims[2] - 5;
    return GCAM_OK;
}

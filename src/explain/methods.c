/* gcam_explain: every method of docs/methods.md on the explainer's last forward. */
#include <cblas.h>
#include <math.h>

#include "../graph/model.h"
#include "explain.h"
#include "method_table.h"

/* LAPACK (bundled with OpenBLAS): symmetric eigen-decomposition, for Eigen-CAM. */
extern void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                   double *work, const int *lwork, int *info, size_t jobz_len, size_t uplo_len);

static const char *vname(const gcam_explainer *e, int v) { return e->m->values[v].name; }

/* ---- targets ---- */

/* d(prod_i y_i)/dy_i = prod_{j != i} y_j at the current forward (a repeated element counts twice). */
static gcam_status product_seed(gcam_explainer *e, const gcam_target *t, const gc_tensor *s, float *seed) {
    int64_t n = gc_numel(s), N = s->shape.ndim ? s->shape.d[0] : 1, per = N > 0 ? n / N : 0;
    const float *y = s->data;
    if (t->n_elements < 1 || t->n_elements > GCAM_MAX_TARGET_ELEMENTS)
        return gc_fail(&e->err, GCAM_E_ARG, "a product target needs 1..%d elements, not %d", GCAM_MAX_TARGET_ELEMENTS,
                       t->n_elements);
    for (int i = 0; i < t->n_elements; i++) {
        int64_t el = t->elements[i];
        if (el < 0 || el >= n || per <= 0)
            return gc_fail(&e->err, GCAM_E_ARG, "product target element %lld is out of range for '%s' (%lld elements)",
                           (long long)el, vname(e, e->score), (long long)n);
        if (el / per != t->elements[0] / per)
            return gc_fail(&e->err, GCAM_E_ARG, "a product target's elements must be in one sample (%lld and %lld are not)",
                           (long long)t->elements[0], (long long)el);
    }
    for (int i = 0; i < t->n_elements; i++) {
        double g = 1;
        for (int j = 0; j < t->n_elements; j++)
            if (j != i) g *= y[t->elements[j]];
        if (!isfinite(g)) return gc_fail(&e->err, GCAM_E_NUMERIC, "product target: the score is not finite");
        seed[t->elements[i]] += (float)g;
    }
    e->prod_n = t->n_elements;
    memcpy(e->prod_el, t->elements, sizeof e->prod_el);
    e->prod_sample = t->elements[0] / per;
    return GCAM_OK;
}

/* The PRODUCT target's value in one sample's scores row (per elements), 0 for another sample. */
static double product_value(const gcam_explainer *e, const float *row, int64_t sample, int64_t per) {
    if (sample != e->prod_sample) return 0;
    double v = 1;
    for (int i = 0; i < e->prod_n; i++) v *= row[e->prod_el[i] - sample * per];
    return v;
}

static gcam_status build_seed(gcam_explainer *e, const gcam_target *t) {
    const gc_tensor *s = gc_ctx_value(e->ctx, e->score);
    int64_t n = gc_numel(s);
    float *seed = e->seed;
    memset(seed, 0, (size_t)n * sizeof(float));
    char a[128];
    const char *sn = vname(e, e->score);
    e->prod_n = 0;
    switch (t->kind) {
    case GCAM_TARGET_CLASS: {
        if (s->shape.ndim < 2)
            return gc_fail(&e->err, GCAM_E_ARG, "a class target needs a score with a class axis; '%s' is %s", sn,
                           gc_shape_str(&s->shape, a, sizeof a));
        int64_t N = s->shape.d[0], K = s->shape.d[1], NK = N * K, inner = NK > 0 ? n / NK : 0;
        for (int64_t b = 0; b < N; b++) {
            int64_t c = t->classes ? t->classes[b] : t->cls;
            if (c < 0 || c >= K)
                return gc_fail(&e->err, GCAM_E_ARG, "class %lld is out of range: '%s' has %lld classes", (long long)c, sn,
                               (long long)K);
            for (int64_t i = 0; i < inner; i++) seed[(b * K + c) * inner + i] = 1.0f;
        }
        return GCAM_OK;
    }
    case GCAM_TARGET_ELEMENT: {
        int64_t off = 0;
        for (int d = 0; d < s->shape.ndim; d++) {
            if (t->index[d] < 0 || t->index[d] >= s->shape.d[d])
                return gc_fail(&e->err, GCAM_E_ARG, "element index %lld on axis %d is out of range for '%s' %s",
                               (long long)t->index[d], d, sn, gc_shape_str(&s->shape, a, sizeof a));
            off = off * s->shape.d[d] + t->index[d];
        }
        seed[off] = 1.0f;
        return GCAM_OK;
    }
    case GCAM_TARGET_REGION: {
        if (s->shape.ndim != 4)
            return gc_fail(&e->err, GCAM_E_ARG, "a region target needs a spatial score (N, C, H, W); '%s' is %s", sn,
                           gc_shape_str(&s->shape, a, sizeof a));
        int64_t N = s->shape.d[0], K = s->shape.d[1], H = s->shape.d[2], W = s->shape.d[3];
        if (t->cls < 0 || t->cls >= K || t->y0 < 0 || t->x0 < 0 || t->y1 > H || t->x1 > W || t->y0 >= t->y1 ||
            t->x0 >= t->x1)
            return gc_fail(&e->err, GCAM_E_ARG, "region class %lld rows %lld..%lld cols %lld..%lld does not fit '%s' %s",
                           (long long)t->cls, (long long)t->y0, (long long)t->y1, (long long)t->x0, (long long)t->x1, sn,
                           gc_shape_str(&s->shape, a, sizeof a));
        for (int64_t b = 0; b < N; b++)
            for (int64_t y = t->y0; y < t->y1; y++)
                for (int64_t x = t->x0; x < t->x1; x++) seed[((b * K + t->cls) * H + y) * W + x] = 1.0f;
        return GCAM_OK;
    }
    case GCAM_TARGET_PRODUCT: return product_seed(e, t, s, seed);
    case GCAM_TARGET_MASK: {
        if (s->shape.ndim != 4 || !t->mask)
            return gc_fail(&e->err, GCAM_E_ARG, "a mask target needs a spatial score (N, C, H, W) and a mask; '%s' is %s", sn,
                           gc_shape_str(&s->shape, a, sizeof a));
        int64_t N = s->shape.d[0], K = s->shape.d[1], HW = s->shape.d[2] * s->shape.d[3];
        if (t->cls < 0 || t->cls >= K)
            return gc_fail(&e->err, GCAM_E_ARG, "mask class %lld is out of range: '%s' has %lld classes", (long long)t->cls, sn,
                           (long long)K);
        for (int64_t b = 0; b < N; b++)
            for (int64_t i = 0; i < HW; i++) seed[(b * K + t->cls) * HW + i] = t->mask[i] ? 1.0f : 0.0f;
        return GCAM_OK;
    }
    case GCAM_TARGET_WEIGHTS:
        if (!t->weights) return gc_fail(&e->err, GCAM_E_ARG, "a weights target needs weights");
        for (int64_t i = 0; i < n; i++) {
            if (!isfinite(t->weights[i])) return gc_fail(&e->err, GCAM_E_NUMERIC, "target weight %lld is not finite", (long long)i);
            seed[i] = t->weights[i];
        }
        return GCAM_OK;
    }
    return gc_fail(&e->err, GCAM_E_ARG, "unknown target kind %d", (int)t->kind);
}

/* Per-sample target score: sum(seed * score) over the sample's elements (a PRODUCT target: the product). */
static void target_scores(const gcam_explainer *e, const float *score, double *y) {
    const gc_tensor *s = gc_ctx_value(e->ctx, e->score);
    int64_t N = s->shape.d[0], per = gc_numel(s) / (N ? N : 1);
    for (int64_t b = 0; b < N; b++) {
        double acc = 0;
        if (e->prod_n) acc = product_value(e, score + b * per, b, per);
        else
            for (int64_t i = 0; i < per; i++) acc += (double)e->seed[b * per + i] * score[b * per + i];
        y[b] = acc;
    }
}

static gcam_status backward(gcam_explainer *e, gcam_rule rule, int v) {
    const char *want[1] = {vname(e, v)};
    gcam_status rc = gcam_ctx_backward(e->ctx, e->seed, rule, want, 1);
    if (rc) return gc_fail(&e->err, rc, "%s", gcam_ctx_error(e->ctx));
    return GCAM_OK;
}

/* ---- maps ---- */

/* The view of a target layer (value v). */
static const gc_layer_view *view_of(const gcam_explainer *e, int v) {
    for (int l = 0; l < e->n_layers; l++)
        if (e->layers[l] == v) return &e->views[l];
    return NULL;
}

/* src (the layer's tensor, native layout) as maps (N, K, h, w) into dst. */
static void gather_maps(const gc_layer_view *v, const float *src, float *dst) {
    int64_t hw = v->h * v->w;
    for (int64_t b = 0; b < v->N; b++)
        for (int64_t k = 0; k < v->K; k++)
            for (int64_t p = 0; p < hw; p++) dst[(b * v->K + k) * hw + p] = src[gc_lv_index(v, b, k, p)];
}

static gcam_status alloc_map(gcam_explainer *e, gcam_map *out, gcam_method method, int layer, int64_t n, int64_t c,
                             int64_t h, int64_t w) {
    memset(out, 0, sizeof *out);
    out->method = method;
    out->layer = layer >= 0 ? vname(e, layer) : NULL;
    out->n = n;
    out->c = c;
    out->h = h;
    out->w = w;
    out->H = e->H;
    out->W = e->W;
    size_t raw_n = (size_t)(n * c * h * w), up_n = (size_t)(n * c * e->H * e->W);
    out->raw = gc_malloc2(raw_n ? raw_n : 1, sizeof(float));
    out->upsampled = gc_malloc2(up_n ? up_n : 1, sizeof(float));
    out->normalized = gc_malloc2(up_n ? up_n : 1, sizeof(float));
    if (!out->raw || !out->upsampled || !out->normalized) {
        gcam_map_free(out);
        return gc_fail(&e->err, GCAM_E_NOMEM, "out of memory for a map");
    }
    return GCAM_OK;
}

/* ReLU that lets NaN and +-Inf through (fmaxf(NaN, 0) is 0): the check below must see them. */
static inline float relu_keep_nonfinite(float v) { return isfinite(v) ? (v > 0.0f ? v : 0.0f) : v; }

/* The one finiteness check of a map, (n) values: GCAM_E_NUMERIC naming the method and layer. Run on
 * every final map (finish_map) and on each layer's map before several layers are normalised and
 * averaged (normalising would turn a layer holding Inf into zeros). */
static gcam_status check_finite(gcam_explainer *e, gcam_method method, int layer, const float *map, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(map[i]))
            return gc_fail(&e->err, GCAM_E_NUMERIC, "NaN/Inf in the map of %s%s%s%s (element %zu): not drawn",
                           gcam_method_name(method), layer >= 0 ? " at layer '" : "", layer >= 0 ? vname(e, layer) : "",
                           layer >= 0 ? "'" : "", i);
    return GCAM_OK;
}

/* Fills upsampled and normalized from raw; refuses non-finite maps. */
static gcam_status finish_map(gcam_explainer *e, gcam_map *m) {
    size_t plane = (size_t)(m->H * m->W), rplane = (size_t)(m->h * m->w);
    int layer = -1;
    for (int l = 0; l < e->n_layers && m->layer && gcam_method_is_cam(m->method); l++)
        if (vname(e, e->layers[l]) == m->layer) layer = e->layers[l];
    gcam_status rc = check_finite(e, m->method, layer, m->raw, (size_t)(m->n * m->c) * rplane);
    if (rc) {
        gcam_map_free(m);
        return rc;
    }
    for (int64_t b = 0; b < m->n * m->c; b++) {
        if (m->h == m->H && m->w == m->W) memcpy(m->upsampled + b * plane, m->raw + b * rplane, plane * sizeof(float));
        else gc_resize_bilinear(m->upsampled + b * plane, m->H, m->W, m->raw + b * rplane, m->h, m->w);
    }
    size_t per = (size_t)m->c * plane;
    for (int64_t b = 0; b < m->n; b++) gc_minmax01(m->normalized + b * per, m->upsampled + b * per, per);
    return GCAM_OK;
}

/* map[n][ij] = ReLU(sum_k w[n][k] A[n][k][ij]).  A (N, K, hw), w (N, K), map (N, hw). */
static void combine(float *map, const float *A, const float *w, int64_t N, int64_t K, int64_t hw) {
    for (int64_t b = 0; b < N; b++) {
        cblas_sgemv(CblasRowMajor, CblasTrans, (int)K, (int)hw, 1.0f, A + b * K * hw, (int)hw, w + b * K, 1, 0.0f,
                    map + b * hw, 1);
        for (int64_t i = 0; i < hw; i++) map[b * hw + i] = relu_keep_nonfinite(map[b * hw + i]);
    }
}

/* First principal component projection of M (rows hw, cols K), columns centred: M v with v the
 * first right singular vector. Its sign is arbitrary; we choose the one under which the mean
 * activation (the uncentred column means) projects positively, mean . v >= 0 (the sum of M v
 * itself is always 0). proj (hw). Works on the smaller Gram matrix. */
static gcam_status pca_projection(gcam_explainer *e, float *proj, const float *src /* (K, hw) */, int64_t K, int64_t hw) {
    double *Mc = gc_malloc2((size_t)(K * hw), sizeof(double)); /* (hw, K) centred */
    double *mean = gc_malloc2((size_t)K, sizeof(double));
    int64_t d = hw < K ? hw : K;
    double *gram = gc_malloc2((size_t)(d * d), sizeof(double)), *ev = gc_malloc2((size_t)d, sizeof(double));
    gcam_status rc = GCAM_OK;
    if (!Mc || !gram || !ev || !mean) {
        rc = gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
        goto out;
    }
    for (int64_t k = 0; k < K; k++) {
        double mu = 0;
        for (int64_t i = 0; i < hw; i++) mu += src[k * hw + i];
        mu /= (double)hw;
        mean[k] = mu;
        for (int64_t i = 0; i < hw; i++) Mc[i * K + k] = src[k * hw + i] - mu;
    }
    /* gram = M M^T (hw x hw) when hw <= K, else M^T M (K x K) */
    if (hw <= K) cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)hw, (int)hw, (int)K, 1.0, Mc, (int)K, Mc, (int)K, 0.0, gram, (int)d);
    else cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)K, (int)hw, 1.0, Mc, (int)K, Mc, (int)K, 0.0, gram, (int)d);
    int n = (int)d, lwork = -1, info = 0;
    double wq;
    dsyev_("V", "U", &n, gram, &n, ev, &wq, &lwork, &info, 1, 1);
    lwork = (int)wq;
    double *work = gc_malloc2((size_t)(lwork > 1 ? lwork : 1), sizeof(double));
    if (!work) {
        rc = gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
        goto out;
    }
    dsyev_("V", "U", &n, gram, &n, ev, work, &lwork, &info, 1, 1);
    free(work);
    if (info != 0) {
        rc = gc_fail(&e->err, GCAM_E_NUMERIC, "eigen-decomposition failed (LAPACK dsyev info %d)", info);
        goto out;
    }
    /* the eigenvector of the largest eigenvalue is the last one (ascending order); LAPACK's
     * column-major output read row-major: vector j is row j */
    const double *vec = gram + (size_t)(d - 1) * (size_t)d;
    double sign_dot = 0;
    if (hw <= K) {
        /* u = vec (hw); M v = sigma u; v = M^T u / sigma, so sign(mean . v) = sign(mean . M^T u) */
        double s = sqrt(ev[d - 1] > 0 ? ev[d - 1] : 0);
        for (int64_t k = 0; k < K; k++) {
            double mtu = 0;
            for (int64_t i = 0; i < hw; i++) mtu += Mc[i * K + k] * vec[i];
            sign_dot += mean[k] * mtu;
        }
        double sign = sign_dot < 0 ? -1 : 1;
        for (int64_t i = 0; i < hw; i++) proj[i] = (float)(sign * s * vec[i]);
    } else {
        for (int64_t k = 0; k < K; k++) sign_dot += mean[k] * vec[k];
        double sign = sign_dot < 0 ? -1 : 1;
        for (int64_t i = 0; i < hw; i++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++) acc += Mc[i * K + k] * vec[k];
            proj[i] = (float)(sign * acc);
        }
    }
out:
    free(Mc);
    free(mean);
    free(gram);
    free(ev);
    return rc;
}

/* CAM: the class weights of the linear layer after global average pooling of `layer`. */
static gcam_status cam_weights(gcam_explainer *e, int layer, float *w /* (N, K) */, int64_t N, int64_t K) {
    const gc_model *m = e->m;
    const gcam_ctx *c = e->ctx;
    /* follow the unique chain layer -> pool -> [Flatten|Reshape|Squeeze]* -> Gemm|MatMul */
    int v = layer, stage = 0, lin = -1;
    while (lin < 0) {
        int consumer = -1, count = 0;
        for (int s = 0; s < gc_ctx_num_steps(c); s++) {
            const gc_node *n = &m->nodes[gc_ctx_step_node(c, s)];
            for (int k = 0; k < n->n_in; k++)
                if (n->in[k] == v) {
                    consumer = gc_ctx_step_node(c, s);
                    count++;
                }
        }
        if (count != 1) break;
        const gc_node *n = &m->nodes[consumer];
        if (stage == 0) {
            int ok = n->op == GC_OP_GlobalAveragePool;
            if (n->op == GC_OP_ReduceMean) {
                const int64_t *ax;
                size_t na = gc_attr_ints(n, "axes", &ax);
                ok = na == 2 && ((ax[0] == 2 && ax[1] == 3) || (ax[0] == -2 && ax[1] == -1));
            }
            if (!ok) break;
            stage = 1;
        } else if (n->op == GC_OP_Flatten || n->op == GC_OP_Reshape || n->op == GC_OP_Squeeze) {
        } else if (n->op == GC_OP_Gemm || n->op == GC_OP_MatMul) {
            lin = consumer;
            break;
        } else {
            break;
        }
        v = n->out[0];
    }
    if (lin < 0)
        return gc_fail(&e->err, GCAM_E_UNSUPPORTED, "CAM needs layer '%s' to feed global average pooling and then a linear "
                       "layer (Gemm/MatMul); this network has another head: use gradcam, which generalises CAM",
                       vname(e, layer));
    const gc_node *n = &m->nodes[lin];
    const gc_tensor *B = gc_ctx_value(c, n->in[1]);
    if (!B->data || gc_ctx_is_activation(c, n->in[1]) || B->shape.ndim != 2)
        return gc_fail(&e->err, GCAM_E_UNSUPPORTED, "CAM: the linear layer '%s' has no constant 2-D weight", n->name);
    int transB = n->op == GC_OP_Gemm ? (int)gc_attr_int(n, "transB", 0) : 0;
    float alpha = n->op == GC_OP_Gemm ? gc_attr_float(n, "alpha", 1.0f) : 1.0f;
    int64_t rows = B->shape.d[0], cols = B->shape.d[1];
    int64_t nclass = transB ? rows : cols, kdim = transB ? cols : rows;
    if (kdim != K) return gc_fail(&e->err, GCAM_E_SHAPE, "CAM: the linear layer '%s' takes %lld features, the layer has %lld channels",
                                  n->name, (long long)kdim, (long long)K);
    /* the CAM class is where the seed puts weight on the score (the classes of a CLASS target) */
    const gc_tensor *s = gc_ctx_value(c, e->score);
    if (s->shape.ndim != 2 || s->shape.d[1] != nclass)
        return gc_fail(&e->err, GCAM_E_UNSUPPORTED, "CAM: the score '%s' is not the linear layer's (N, classes) output",
                       vname(e, e->score));
    const float *W = B->data;
    for (int64_t b = 0; b < N; b++)
        for (int64_t k = 0; k < K; k++) {
            double acc = 0;
            for (int64_t cl = 0; cl < nclass; cl++) {
                double sd = e->seed[b * nclass + cl];
                if (sd != 0) acc += sd * (transB ? W[cl * K + k] : W[k * nclass + cl]);
            }
            w[b * K + k] = (float)(alpha * acc);
        }
    return GCAM_OK;
}

static gcam_status ensure_mask_ctx(gcam_explainer *e, int64_t K) {
    if (e->mask_ctx) return GCAM_OK;
    const gc_value *xv = &e->m->values[e->input];
    int64_t B = (xv->shape.ndim == 4 && xv->shape.d[0] < 0) ? e->o.batch_size : e->N;
    if (B > K && xv->shape.d[0] < 0) B = K;
    const char *keep[1] = {vname(e, e->score)};
    gcam_ctx_options co = {.n_threads = e->o.n_threads, .max_memory = e->o.max_memory, .keep = keep, .n_keep = 1};
    gcam_status rc = gcam_ctx_create(&e->mask_ctx, (const gcam_model *)(const void *)e->m,
                                     gc_explainer_feeds(e, NULL, 1, B), e->n_feeds, &co);
    if (!rc) gcam_ctx_set_abort(e->mask_ctx, e->abort_fn, e->abort_user);
    if (rc) {
        gc_fail(&e->err, rc, "Score-CAM: %s", gcam_ctx_error(e->mask_ctx));
        gcam_ctx_free(e->mask_ctx);
        e->mask_ctx = NULL;
        return rc;
    }
    e->mask_batch = B;
    return GCAM_OK;
}

/* Score-CAM weights for one layer: softmax class score of each channel-masked input. */
static gcam_status scorecam_weights(gcam_explainer *e, const float *A, float *w, int64_t N, int64_t K, int64_t h, int64_t wd) {
    gcam_status rc = ensure_mask_ctx(e, K);
    if (rc) return rc;
    gcam_ctx *mc = e->mask_ctx;
    int64_t B = e->mask_batch, HW = e->H * e->W, C = e->C;
    size_t xs = (size_t)(C * HW);
    float *mask = gc_malloc2((size_t)HW, sizeof(float));
    float *batch = gc_malloc2((size_t)B * xs, sizeof(float));
    void **other = gc_calloc2((size_t)e->n_feeds, sizeof *other); /* per feed: its rows repeated */
    gcam_feed *f = e->feed_work;
    int64_t(*dims)[GCAM_MAX_DIMS] = e->feed_work_dims;
    if (!mask || !batch || !other) {
        rc = gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
        goto out;
    }
    const gc_tensor *st = gc_ctx_value(mc, e->score);
    int64_t per = gc_numel(st) / (st->shape.d[0] ? st->shape.d[0] : 1);
    const float *x = e->feed_data[e->input_feed];
    for (int64_t n = 0; n < N; n++) {
        /* other feeds: sample n's row repeated B times */
        for (int i = 0; i < e->n_feeds; i++) {
            memcpy(dims[i], e->feed_dims[i], sizeof dims[i]);
            f[i] = e->feeds[i];
            if (i == e->input_feed) continue;
            int ok = 0;
            gc_shape sh = {.ndim = f[i].ndim};
            memcpy(sh.d, dims[i], sizeof sh.d);
            size_t bytes = gc_tensor_bytes(f[i].dtype, &sh, &ok);
            if (dims[i][0] == e->N && e->N > 0) {
                size_t row = bytes / (size_t)e->N;
                free(other[i]);
                other[i] = gc_malloc2((size_t)B, row ? row : 1);
                if (!other[i]) { rc = gc_fail(&e->err, GCAM_E_NOMEM, "out of memory"); goto out; }
                for (int64_t r = 0; r < B; r++) memcpy((char *)other[i] + r * row, (const char *)e->feed_data[i] + n * row, row);
                dims[i][0] = B;
                f[i].data = other[i];
            } else {
                f[i].data = e->feed_data[i];
            }
            f[i].dims = dims[i];
        }
        for (int64_t k0 = 0; k0 < K; k0 += B) {
            int64_t nb = K - k0 < B ? K - k0 : B;
            for (int64_t r = 0; r < B; r++) {
                float *dst = batch + r * xs;
                const float *src = x + n * xs;
                if (r >= nb) { /* padding rows: unused */
                    memset(dst, 0, xs * sizeof(float));
                    continue;
                }
                const float *ak = A + (n * K + k0 + r) * h * wd;
                gc_resize_bilinear(mask, e->H, e->W, ak, h, wd);
                gc_minmax01(mask, mask, (size_t)HW);
                if (e->nhwc) {
                    for (int64_t p = 0; p < HW; p++)
                        for (int64_t ch = 0; ch < C; ch++) dst[p * C + ch] = src[p * C + ch] * mask[p];
                } else {
                    for (int64_t ch = 0; ch < C; ch++)
                        for (int64_t p = 0; p < HW; p++) dst[ch * HW + p] = src[ch * HW + p] * mask[p];
                }
            }
            f[e->input_feed] = e->feeds[e->input_feed];
            memcpy(dims[e->input_feed], e->feed_dims[e->input_feed], sizeof dims[0]);
            dims[e->input_feed][0] = B;
            f[e->input_feed].dims = dims[e->input_feed];
            f[e->input_feed].data = batch;
            rc = gcam_ctx_run(mc, f, e->n_feeds);
            if (rc) {
                gc_fail(&e->err, rc, "Score-CAM: %s", gcam_ctx_error(mc));
                goto out;
            }
            const float *sc = gc_ctx_value(mc, e->score)->data;
            for (int64_t r = 0; r < nb; r++) {
                const float *row = sc + r * per, *sd = e->seed + n * per;
                double val = 0;
                int is_class = st->shape.ndim == 2 && e->score != e->output && e->prob_op == GC_OP_Softmax;
                if (st->shape.ndim == 2 && e->score == e->output && e->prob_op < 0) is_class = 1; /* plain logits */
                if (e->prod_n) {
                    val = product_value(e, row, n, per);
                } else if (is_class) {
                    double mx = -INFINITY, z = 0;
                    for (int64_t j = 0; j < per; j++) mx = fmax(mx, row[j]);
                    for (int64_t j = 0; j < per; j++) z += exp((double)row[j] - mx);
                    for (int64_t j = 0; j < per; j++)
                        if (sd[j] != 0) val += sd[j] * exp((double)row[j] - mx) / z;
                } else if (e->prob_op == GC_OP_Sigmoid && e->score != e->output) {
                    for (int64_t j = 0; j < per; j++)
                        if (sd[j] != 0) val += sd[j] / (1.0 + exp(-(double)row[j]));
                } else {
                    for (int64_t j = 0; j < per; j++) val += (double)sd[j] * row[j];
                }
                w[n * K + k0 + r] = (float)val;
            }
        }
    }
out:
    free(mask);
    free(batch);
    for (int i = 0; other && i < e->n_feeds; i++) free(other[i]);
    free(other);
    return rc;
}

/* Ablation-CAM weights: (y - y_k) / y with channel k of the layer zeroed; only the layers after
 * it re-run. The forward state is restored afterwards. */
static gcam_status ablation_weights(gcam_explainer *e, int layer, float *w, int64_t N, int64_t K, int64_t hw) {
    gcam_ctx *c = e->ctx;
    const gc_layer_view *lv = view_of(e, layer);
    float *A = gc_ctx_value(c, layer)->data;
    size_t n = (size_t)gc_numel(gc_ctx_value(c, layer)); /* (N, K, h, w), or with the special tokens */
    int first = gc_ctx_first_step_after(c, layer);
    /* every value the tail reads from before it must still be intact: kept until the end */
    int *cross = NULL, n_cross = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (gc_ctx_crossing_values(c, first, &cross, &n_cross)) return gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
        int broken = -1;
        for (int i = 0; i < n_cross && broken < 0; i++)
            if (cross[i] != layer && !gc_ctx_is_kept(c, cross[i]) && !e->m->values[cross[i]].is_input) broken = cross[i];
        free(cross);
        if (broken < 0) break;
        if (pass || e->ctx_full)
            return gc_fail(&e->err, GCAM_E_UNSUPPORTED, "Ablation-CAM: the layers after '%s' also read '%s' (a skip "
                           "connection around it), which the plan could not keep", vname(e, layer), vname(e, broken));
        /* the full plan keeps what crosses the layer (a transformer block's residual stream) */
        gcam_status rc = gc_explainer_need_input_grad(e);
        if (rc) return rc;
        c = e->ctx;
        A = gc_ctx_value(c, layer)->data;
        first = gc_ctx_first_step_after(c, layer);
    }
    double *y = gc_malloc2((size_t)N, sizeof(double)), *yk = gc_malloc2((size_t)N, sizeof(double));
    float *saved = gc_malloc2(n, sizeof(float));
    gcam_status rc = GCAM_OK;
    if (!y || !yk || !saved) {
        rc = gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
        goto out;
    }
    memcpy(saved, A, n * sizeof(float));
    target_scores(e, gc_ctx_value(c, e->score)->data, y);
    for (int64_t k = 0; k < K && !rc; k++) {
        memcpy(A, saved, n * sizeof(float));
        for (int64_t b = 0; b < N; b++) /* channel k of every map position (special tokens kept) */
            for (int64_t p = 0; p < hw; p++) A[gc_lv_index(lv, b, k, p)] = 0;
        rc = gc_ctx_forward_from(c, first);
        if (rc) {
            gc_fail(&e->err, rc, "%s", gcam_ctx_error(c));
            break;
        }
        target_scores(e, gc_ctx_value(c, e->score)->data, yk);
        for (int64_t b = 0; b < N; b++) w[b * K + k] = (float)(y[b] != 0 ? (y[b] - yk[b]) / y[b] : y[b] - yk[b]);
    }
    memcpy(A, saved, n * sizeof(float));
    gcam_status rc2 = gc_ctx_forward_from(c, first); /* restore every tensor after the layer */
    if (!rc) rc = rc2;
out:
    free(y);
    free(yk);
    free(saved);
    return rc;
}

/* CAM-family methods whose weights come from the plain gradient of the target at the layer. */
static int cam_needs_grad(gcam_method method) { return gc_method_info_of(method)->needs_grad; }

/* One layer's map (N, h*w) for a CAM-family method. G: the target's gradient at the layer
 * (N, K, h, w) when already computed (gcam_explain_many's batched tail), NULL to run the backward. */
static gcam_status layer_map(gcam_explainer *e, gcam_method method, int layer, float *map, const float *G) {
    gcam_ctx *c = e->ctx;
    const gc_layer_view *lv = view_of(e, layer);
    int64_t N = lv->N, K = lv->K, h = lv->h, wd = lv->w, hw = h * wd;
    const float *A = gc_ctx_value(c, layer)->data;
    gcam_status rc = GCAM_OK;
    if (method == GCAM_CAM && lv->kind != GC_LV_NCHW)
        return gc_fail(&e->err, GCAM_E_ARG, "cam needs maps (N, C, H, W) pooled into a linear head; '%s' is %s: use "
                       "gradcam or another method", vname(e, layer), lv->kind == GC_LV_TOKENS ? "tokens" : "channel-last");
    if (cam_needs_grad(method) && !G) {
        if ((rc = backward(e, GCAM_RULE_STANDARD, layer))) return rc;
        G = gc_ctx_gradient(c, layer)->data;
    }
    float *w = gc_malloc2((size_t)(N * K), sizeof(float));
    float *tmp = NULL, *An = NULL, *Gn = NULL; /* tokens / channel-last read as (N, K, h, w) */
    if (!w) return gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
    if (lv->kind != GC_LV_NCHW) {
        An = gc_malloc2((size_t)(N * K * hw), sizeof(float));
        Gn = G ? gc_malloc2((size_t)(N * K * hw), sizeof(float)) : NULL;
        if (!An || (G && !Gn)) {
            free(w);
            free(An);
            free(Gn);
            return gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
        }
        gather_maps(lv, A, An);
        if (G) gather_maps(lv, G, Gn);
        A = An;
        G = Gn;
    }
    switch (method) {
    case GCAM_GRADCAM:
    case GCAM_GRADCAM_COUNTER: {
        float sign = method == GCAM_GRADCAM ? 1.0f : -1.0f;
        for (int64_t i = 0; i < N * K; i++) {
            double acc = 0;
            for (int64_t j = 0; j < hw; j++) acc += G[i * hw + j];
            w[i] = (float)(sign * acc / (double)hw);
        }
        combine(map, A, w, N, K, hw);
        break;
    }
    case GCAM_GRADCAMPP:
        for (int64_t i = 0; i < N * K; i++) {
            double sumA = 0, acc = 0;
            for (int64_t j = 0; j < hw; j++) sumA += A[i * hw + j];
            for (int64_t j = 0; j < hw; j++) {
                double g = G[i * hw + j];
                if (g == 0) continue;
                double g2 = g * g, aij = g2 / (2 * g2 + sumA * g2 * g + 1e-6);
                acc += aij * (g > 0 ? g : 0);
            }
            w[i] = (float)acc;
        }
        combine(map, A, w, N, K, hw);
        break;
    case GCAM_XGRADCAM:
        for (int64_t i = 0; i < N * K; i++) {
            double sumA = 0, acc = 0;
            for (int64_t j = 0; j < hw; j++) sumA += A[i * hw + j];
            for (int64_t j = 0; j < hw; j++) acc += (double)G[i * hw + j] * A[i * hw + j];
            w[i] = (float)(acc / (sumA + 1e-7));
        }
        combine(map, A, w, N, K, hw);
        break;
    case GCAM_HIRESCAM:
    case GCAM_LAYERCAM:
        for (int64_t b = 0; b < N; b++)
            for (int64_t j = 0; j < hw; j++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++) {
                    double g = G[(b * K + k) * hw + j];
                    if (method == GCAM_LAYERCAM && g < 0) g = 0;
                    acc += g * A[(b * K + k) * hw + j];
                }
                map[b * hw + j] = relu_keep_nonfinite((float)acc);
            }
        break;
    case GCAM_EIGENCAM:
    case GCAM_EIGENGRADCAM:
        if (method == GCAM_EIGENGRADCAM) {
            tmp = gc_malloc2((size_t)(N * K * hw), sizeof(float));
            if (!tmp) { rc = gc_fail(&e->err, GCAM_E_NOMEM, "out of memory"); break; }
            for (int64_t i = 0; i < N * K * hw; i++) tmp[i] = G[i] * A[i];
        }
        rc = check_finite(e, method, layer, tmp ? tmp : A, (size_t)(N * K * hw)); /* before LAPACK sees it */
        for (int64_t b = 0; b < N && !rc; b++) {
            rc = pca_projection(e, map + b * hw, (tmp ? tmp : A) + b * K * hw, K, hw);
            for (int64_t j = 0; j < hw; j++) map[b * hw + j] = relu_keep_nonfinite(map[b * hw + j]);
        }
        break;
    case GCAM_CAM:
        if (!(rc = cam_weights(e, layer, w, N, K))) combine(map, A, w, N, K, hw);
        break;
    case GCAM_SCORECAM:
        if (!(rc = scorecam_weights(e, A, w, N, K, h, wd))) combine(map, A, w, N, K, hw);
        break;
    case GCAM_ABLATIONCAM:
        if (!(rc = ablation_weights(e, layer, w, N, K, hw))) /* (A's values are restored; An is a copy) */
            combine(map, An ? An : gc_ctx_value(c, layer)->data, w, N, K, hw);
        break;
    default:
        rc = gc_fail(&e->err, GCAM_E_INTERNAL, "not a CAM method");
    }
    free(w);
    free(tmp);
    free(An);
    free(Gn);
    return rc ? rc : check_finite(e, method, layer, map, (size_t)(N * hw));
}

/* The CAM-family map: one layer as is, several normalised, upsampled and averaged. G: NULL, or
 * per layer the target's gradient there (see layer_map). */
static gcam_status cam_map(gcam_explainer *e, gcam_method method, gcam_map *out, const float *const *G) {
    if (e->n_layers == 0)
        return gc_fail(&e->err, GCAM_E_ARG, "%s needs a target layer: the model has no 4-D activation with spatial "
                       "size > 1 on the path to '%s'; name one", gcam_method_name(method), vname(e, e->score));
    gcam_status rc;
    if (e->n_layers == 1) {
        int L = e->layers[0];
        const gc_layer_view *lv = &e->views[0];
        if ((rc = alloc_map(e, out, method, L, lv->N, 1, lv->h, lv->w))) return rc;
        if ((rc = layer_map(e, method, L, out->raw, G ? G[0] : NULL))) {
            gcam_map_free(out);
            return rc;
        }
        return finish_map(e, out);
    }
    if ((rc = alloc_map(e, out, method, e->layers[0], e->N, 1, e->H, e->W))) return rc;
    int64_t HW = e->H * e->W;
    memset(out->raw, 0, (size_t)(e->N * HW) * sizeof(float));
    float *up = gc_malloc2((size_t)HW, sizeof(float));
    for (int l = 0; l < e->n_layers && !rc; l++) {
        const gc_layer_view *lv = &e->views[l];
        int64_t hw = lv->h * lv->w;
        float *lm = gc_malloc2((size_t)(e->N * hw), sizeof(float));
        if (!lm || !up) {
            free(lm);
            rc = gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
            break;
        }
        rc = layer_map(e, method, e->layers[l], lm, G ? G[l] : NULL);
        for (int64_t b = 0; b < e->N && !rc; b++) {
            gc_minmax01(lm + b * hw, lm + b * hw, (size_t)hw);
            gc_resize_bilinear(up, e->H, e->W, lm + b * hw, lv->h, lv->w);
            for (int64_t i = 0; i < HW; i++) out->raw[b * HW + i] += up[i] / (float)e->n_layers;
        }
        free(lm);
    }
    free(up);
    if (rc) {
        gcam_map_free(out);
        return rc;
    }
    return finish_map(e, out);
}

/* Input gradient into dst (N, C, H, W) under a rule; times the input for gradient x input. */
static gcam_status input_grad(gcam_explainer *e, gcam_rule rule, int times_input, const float *x, float *dst, float scale,
                              int accumulate) {
    gcam_status rc = backward(e, rule, e->input);
    if (rc) return rc;
    const float *g = gc_ctx_gradient(e->ctx, e->input)->data;
    int64_t N = e->N, C = e->C, HW = e->H * e->W;
    for (int64_t b = 0; b < N; b++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < HW; p++) {
                int64_t src = e->nhwc ? (b * HW + p) * C + c : (b * C + c) * HW + p;
                float v = g[src] * (times_input ? x[src] : 1.0f) * scale;
                int64_t d = (b * C + c) * HW + p;
                dst[d] = accumulate ? dst[d] + v : v;
            }
    return GCAM_OK;
}

static gcam_rule rule_of(gcam_method m) { return gc_method_info_of(m)->rule; }

static gcam_status pixel_map(gcam_explainer *e, gcam_method method, const gcam_target *t, gcam_map *out) {
    gcam_status rc = alloc_map(e, out, method, -1, e->N, e->C, e->H, e->W);
    if (rc) return rc;
    const float *x = e->feed_data[e->input_feed];
    size_t nx = e->x_numel;
    switch (method) {
    case GCAM_GRADIENT:
    case GCAM_GRAD_X_INPUT:
    case GCAM_GUIDED_BACKPROP:
    case GCAM_DECONVNET:
        rc = input_grad(e, rule_of(method), method == GCAM_GRAD_X_INPUT, x, out->raw, 1.0f, 0);
        break;
    case GCAM_GUIDED_GRADCAM: {
        gcam_map gc;
        if ((rc = cam_map(e, GCAM_GRADCAM, &gc, NULL))) break;
        rc = input_grad(e, GCAM_RULE_GUIDED, 0, x, out->raw, 1.0f, 0);
        int64_t HW = e->H * e->W;
        for (int64_t b = 0; b < e->N && !rc; b++)
            for (int64_t c = 0; c < e->C; c++)
                for (int64_t p = 0; p < HW; p++) out->raw[(b * e->C + c) * HW + p] *= gc.upsampled[b * HW + p];
        out->layer = gc.layer;
        gcam_map_free(&gc);
        break;
    }
    case GCAM_SMOOTHGRAD: {
        float *noisy = gc_malloc2(nx, sizeof(float));
        if (!noisy) { rc = gc_fail(&e->err, GCAM_E_NOMEM, "out of memory"); break; }
        gc_normal_stream noise = {.state = e->o.noise_seed};
        int S = e->o.smoothgrad_samples;
        gcam_method base = e->o.smoothgrad_base;
        size_t per = nx / (size_t)e->N;
        memset(out->raw, 0, nx * sizeof(float));
        for (int s = 0; s < S && !rc; s++) {
            gc_normal_fill(noisy, nx, &noise);
            for (int64_t b = 0; b < e->N; b++) {
                float mn = INFINITY, mx = -INFINITY;
                for (size_t i = 0; i < per; i++) {
                    mn = fminf(mn, x[b * per + i]);
                    mx = fmaxf(mx, x[b * per + i]);
                }
                float sigma = e->o.smoothgrad_sigma * (mx - mn);
                for (size_t i = 0; i < per; i++) noisy[b * per + i] = x[b * per + i] + sigma * noisy[b * per + i];
            }
            if (!(rc = gc_explainer_forward_input(e, noisy)))
                rc = input_grad(e, rule_of(base), base == GCAM_GRAD_X_INPUT, noisy, out->raw, 1.0f / (float)S, 1);
        }
        free(noisy);
        gcam_status r2 = gc_explainer_forward_input(e, NULL); /* back to the explained input */
        if (!rc) rc = r2;
        break;
    }
    case GCAM_INTEGRATED_GRADIENTS: {
        float *xi = gc_malloc2(nx, sizeof(float));
        float *acc = gc_calloc2(nx, sizeof(float));
        if (!xi || !acc) { free(xi); free(acc); rc = gc_fail(&e->err, GCAM_E_NOMEM, "out of memory"); break; }
        int M = e->o.ig_steps;
        const float *base = e->baseline;
        for (int s = 0; s <= M && !rc; s++) {
            float a = (float)s / (float)M, wgt = (s == 0 || s == M) ? 0.5f : 1.0f;
            for (size_t i = 0; i < nx; i++) {
                float b0 = base ? base[i] : 0.0f;
                xi[i] = b0 + a * (x[i] - b0);
            }
            if (!(rc = gc_explainer_forward_input(e, xi))) rc = input_grad(e, GCAM_RULE_STANDARD, 0, xi, acc, wgt / (float)M, 1);
        }
        /* times (x - x'), in the (N, C, H, W) output layout */
        int64_t HW = e->H * e->W;
        for (int64_t b = 0; b < e->N && !rc; b++)
            for (int64_t c = 0; c < e->C; c++)
                for (int64_t p = 0; p < HW; p++) {
                    int64_t src = e->nhwc ? (b * HW + p) * e->C + c : (b * e->C + c) * HW + p;
                    int64_t d = (b * e->C + c) * HW + p;
                    out->raw[d] = acc[d] * (x[src] - (base ? base[src] : 0.0f));
                }
        free(xi);
        free(acc);
        gcam_status r2 = gc_explainer_forward_input(e, NULL);
        if (!rc) rc = r2;
        break;
    }
    default:
        rc = gc_fail(&e->err, GCAM_E_INTERNAL, "not a pixel-space method");
    }
    (void)t;
    if (rc) {
        gcam_map_free(out);
        return rc;
    }
    return finish_map(e, out);
}

/* ---- attention rollout (docs/methods.md, "Transformers") ---- */

/* One sample's layer matrix into M (T, T), double: the heads' mean of the attention A, or (grad) of
 * ReLU(G ⊙ A). a, g: the Softmax output and its gradient, (N * heads, T, T) or (N, heads, T, T). */
static void head_mean(double *M, const float *a, const float *g, int64_t b, int64_t heads, int64_t T) {
    size_t TT = (size_t)(T * T);
    memset(M, 0, TT * sizeof(double));
    for (int64_t h = 0; h < heads; h++) {
        size_t off = (size_t)(b * heads + h) * TT;
        for (size_t i = 0; i < TT; i++) {
            double v = g ? (double)g[off + i] * a[off + i] : a[off + i];
            M[i] += (g && v < 0 ? 0 : v) / (double)heads;
        }
    }
}

/* R <- (R + M R) (grad: Chefer et al.) or R <- Ã R with Ã = rows-normalised (0.5 M + 0.5 I) (Abnar &
 * Zuidema); tmp (T, T) scratch. */
static void rollout_step(double *R, double *M, double *tmp, int64_t T, int grad) {
    if (!grad)
        for (int64_t i = 0; i < T; i++) {
            double sum = 0;
            for (int64_t j = 0; j < T; j++) sum += (M[i * T + j] = 0.5 * M[i * T + j] + (i == j ? 0.5 : 0));
            for (int64_t j = 0; j < T && sum > 0; j++) M[i * T + j] /= sum;
        }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)T, (int)T, 1.0, M, (int)T, R, (int)T, 0.0, tmp,
                (int)T);
    for (int64_t i = 0; i < T * T; i++) R[i] = grad ? R[i] + tmp[i] : tmp[i];
}

static gcam_status rollout_map(gcam_explainer *e, gcam_method method, gcam_map *out) {
    int grad = method == GCAM_GRAD_ROLLOUT;
    if (e->n_attn == 0)
        return gc_fail(&e->err, GCAM_E_UNSUPPORTED, "%s needs global attention (Softmax outputs (N x heads, T, T) whose "
                       "T tokens form a grid over the input, read by a MatMul) on the way to '%s'; this model has none",
                       gcam_method_name(method), vname(e, e->score));
    gcam_status rc = gc_explainer_need_input_grad(e); /* the full plan keeps the attention maps */
    if (rc) return rc;
    if (grad) {
        const char **want = gc_malloc2((size_t)e->n_attn, sizeof *want);
        if (!want) return gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
        for (int l = 0; l < e->n_attn; l++) want[l] = vname(e, e->attn[l]);
        rc = gcam_ctx_backward(e->ctx, e->seed, GCAM_RULE_STANDARD, want, e->n_attn);
        free(want);
        if (rc) return gc_fail(&e->err, rc, "%s", gcam_ctx_error(e->ctx));
    }
    const gc_layer_view *g = &e->attn_grid;
    const gc_shape *sh = &gc_ctx_value(e->ctx, e->attn[0])->shape;
    int64_t T = sh->d[sh->ndim - 1], heads = sh->ndim == 4 ? sh->d[1] : sh->d[0] / e->N, hw = g->h * g->w;
    if ((rc = alloc_map(e, out, method, e->attn[e->n_attn - 1], e->N, 1, g->h, g->w))) return rc;
    size_t TT = (size_t)(T * T);
    double *R = gc_malloc2(TT, sizeof(double)), *M = gc_malloc2(TT, sizeof(double)), *tmp = gc_malloc2(TT, sizeof(double));
    if (!R || !M || !tmp) rc = gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
    for (int64_t b = 0; b < e->N && !rc; b++) {
        for (size_t i = 0; i < TT; i++) R[i] = i % (size_t)(T + 1) == 0; /* identity */
        for (int l = 0; l < e->n_attn; l++) {
            const float *a = gc_ctx_value(e->ctx, e->attn[l])->data;
            const float *ga = grad ? gc_ctx_gradient(e->ctx, e->attn[l])->data : NULL;
            head_mean(M, a, ga, b, heads, T);
            rollout_step(R, M, tmp, T, grad);
        }
        /* the class token's row over the grid's tokens; without special tokens, every row's mean */
        for (int64_t p = 0; p < hw; p++) {
            double v = 0;
            if (g->skip > 0) v = R[g->skip + p];
            else
                for (int64_t i = 0; i < T; i++) v += R[i * T + p] / (double)T;
            out->raw[b * hw + p] = (float)v;
        }
    }
    free(R);
    free(M);
    free(tmp);
    if (rc) {
        gcam_map_free(out);
        return rc;
    }
    return finish_map(e, out);
}

gcam_status gcam_explain(gcam_explainer *e, gcam_method method, const gcam_target *target, gcam_map *out) {
    if (!e || !out || !target) return GCAM_E_ARG;
    memset(out, 0, sizeof *out);
    gc_err_clear(&e->err);
    if (!e->ctx || gc_ctx_failed(e->ctx)) return gc_fail(&e->err, GCAM_E_STATE, "the explainer was not created");
    if (!e->forwarded) return gc_fail(&e->err, GCAM_E_STATE, "call gcam_explainer_forward first");
    if ((unsigned)method >= GCAM_METHOD_COUNT) return gc_fail(&e->err, GCAM_E_ARG, "unknown method %d", (int)method);
    gcam_status rc = build_seed(e, target);
    if (rc) return rc;
    if (method == GCAM_ATTENTION_ROLLOUT || method == GCAM_GRAD_ROLLOUT) return rollout_map(e, method, out);
    if (gcam_method_is_cam(method)) return cam_map(e, method, out, NULL);
    if ((rc = gc_explainer_need_input_grad(e))) return rc;
    return pixel_map(e, method, target, out);
}

/* ---- several targets at once ----
 *
 * gcam_explain_many batches the gradient CAM methods when the steps after the layer(s) (the tail)
 * read many weight bytes (VGG's fully-connected head: a per-target backward is a GEMV over each
 * weight matrix, memory-bound). A second context at batch N * k (every feed's leading N replaced)
 * runs only the tail: the values it reads from before it (the layers, inputs, ...) are copied k
 * times from the explainer's forward, target j in rows j*N .. j*N+N-1; one forward of the tail,
 * one backward from a seed holding target j's seed in the same rows, then each target's map from
 * its rows of the layer gradient with the code gcam_explain uses. Weights are read twice instead
 * of k times. */

#define GC_TAIL_MAX_ROWS 64  /* at most this many batched rows per tail run (peak memory) */
#define GC_TAIL_MIN_TARGETS 3 /* tail forward + backward read the weights twice: pays from 3 targets */

static int tail_method(gcam_method m) { return gc_method_info_of(m)->batchable; }

/* Decides once per explainer whether the tail pays and can be batched: finds the tail's first
 * step and the values crossing into it. Sets tail_state to 1 or -1; never fails (the loop is
 * always available) except for lack of memory. */
static gcam_status tail_decide(gcam_explainer *e) {
    const gcam_ctx *c = e->ctx;
    const gc_model *m = e->m;
    e->tail_state = -1;
    if (e->n_layers < 1) return GCAM_OK;
    int first = gc_ctx_num_steps(c);
    for (int l = 0; l < e->n_layers; l++) {
        int f = gc_ctx_first_step_after(c, e->layers[l]);
        if (f < first) first = f;
    }
    /* weight bytes the per-target backward reads: constants of the differentiated tail steps */
    size_t wbytes = gc_ctx_backward_weight_bytes(c, first);
    /* values the tail reads from before it: they must be intact in the explainer's context */
    int *cross = NULL, n_cross = 0, intact = 1;
    if (gc_ctx_crossing_values(c, first, &cross, &n_cross)) return gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
    for (int i = 0; i < n_cross; i++)
        if (!gc_ctx_is_kept(c, cross[i]) && !m->values[cross[i]].is_input) intact = 0;
    if (!intact || n_cross == 0 || wbytes < e->tune.tail_batch_min_bytes) {
        free(cross);
        return GCAM_OK;
    }
    free(e->tail_cross);
    e->tail_cross = cross;
    e->n_tail_cross = n_cross;
    e->tail_first = first;
    e->tail_state = 1;
    return GCAM_OK;
}

/* (N, rest...) in the explainer, (N * k, rest...) in the tail context. */
static int batch_like(const gc_tensor *a, const gc_tensor *b, int64_t N, int64_t k) {
    if (a->shape.ndim < 1 || a->shape.ndim != b->shape.ndim || a->dtype != b->dtype) return 0;
    if (a->shape.d[0] != N || b->shape.d[0] != N * k) return 0;
    for (int d = 1; d < a->shape.ndim; d++)
        if (a->shape.d[d] != b->shape.d[d]) return 0;
    return 1;
}

/* The explainer's tensor a fills the tail's b: the same, or batch_like. */
typedef struct batch_shape {
    int64_t N, k;
} batch_shape;
static int same_or_batched(const gc_tensor *a, const gc_tensor *b, void *user) {
    const batch_shape *bs = user;
    return batch_like(a, b, bs->N, bs->k) || (a->dtype == b->dtype && gc_shape_eq(&a->shape, &b->shape));
}

/* The tail context for k targets per run (re-planned when k grows or falls below half of it).
 * Returns GCAM_OK with *usable 0 when this model's tail cannot be batched (the loop is used). */
static gcam_status ensure_tail_ctx(gcam_explainer *e, int64_t k, int *usable) {
    *usable = 0;
    if (e->tail_ctx && k <= e->tail_k && 2 * k > e->tail_k) {
        *usable = 1;
        return GCAM_OK;
    }
    gcam_ctx_free(e->tail_ctx);
    e->tail_ctx = NULL;
    free(e->tail_seed);
    e->tail_seed = NULL;
    e->tail_checked = 0;
    const char **names = gc_malloc2((size_t)e->n_layers, sizeof *names);
    if (!names) return gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
    for (int l = 0; l < e->n_layers; l++) names[l] = vname(e, e->layers[l]);
    const char *keep[1] = {vname(e, e->score)};
    gcam_ctx_options co = {.n_threads = e->o.n_threads, .max_memory = e->o.max_memory, .keep = keep, .n_keep = 1,
                           .seed = vname(e, e->score), .grad_of = names, .n_grad_of = e->n_layers};
    gcam_ctx *t = NULL;
    gcam_status rc = gcam_ctx_create(&t, (const gcam_model *)(const void *)e->m, gc_explainer_feeds(e, NULL, 1, e->N * k),
                                     e->n_feeds, &co);
    free(names);
    if (!rc) gcam_ctx_set_abort(t, e->abort_fn, e->abort_user);
    if (rc == GCAM_E_NOMEM) {
        gcam_ctx_free(t);
        return gc_fail(&e->err, rc, "out of memory");
    }
    /* a fixed batch dimension, a limit, a shape that does not scale with the batch: the loop */
    int ok = !rc && gc_ctx_same_steps(t, e->ctx);
    ok = ok && batch_like(gc_ctx_value(e->ctx, e->score), gc_ctx_value(t, e->score), e->N, k);
    for (int l = 0; ok && l < e->n_layers; l++)
        ok = batch_like(gc_ctx_value(e->ctx, e->layers[l]), gc_ctx_value(t, e->layers[l]), e->N, k) &&
             gc_ctx_gradient(t, e->layers[l]);
    batch_shape bsh0 = {e->N, k};
    for (int i = 0; ok && i < e->n_tail_cross; i++) {
        int v = e->tail_cross[i];
        ok = gc_ctx_is_activation(t, v) && same_or_batched(gc_ctx_value(e->ctx, v), gc_ctx_value(t, v), &bsh0);
    }
    if (!ok) {
        gcam_ctx_free(t);
        e->tail_state = -1;
        return GCAM_OK;
    }
    /* The tail's backward reads some forward values (Relu outputs, ...): when it reads nothing
     * else (no op keeping state from its forward, as MaxPool's argmax), they are copied from the
     * explainer's forward, where its own backward keeps them, and the tail's forward runs only
     * once, to check that the tail keeps the samples apart. */
    free(e->tail_saved);
    e->tail_saved = NULL;
    e->n_tail_saved = 0;
    e->tail_seed = gc_malloc2((size_t)gc_numel(gc_ctx_value(t, e->score)), sizeof(float));
    batch_shape bsh = {e->N, k};
    int replay = e->tail_seed ? gc_ctx_backward_reads(t, e->ctx, e->tail_first, same_or_batched, &bsh, &e->tail_saved,
                                                      &e->n_tail_saved)
                              : -1;
    if (replay < 0) {
        gcam_ctx_free(t);
        return gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
    }
    e->tail_fwd = !replay;
    e->tail_ctx = t;
    e->tail_k = k;
    *usable = 1;
    return GCAM_OK;
}

/* Targets the next batched tail run takes (0: explain the next target with gcam_explain). */
static gcam_status tail_take(gcam_explainer *e, gcam_method method, int remaining, int *take) {
    *take = 0;
    if (!tail_method(method) || remaining < GC_TAIL_MIN_TARGETS) return GCAM_OK;
    if (e->tail_state == 0) {
        gcam_status rc = tail_decide(e);
        if (rc) return rc;
    }
    if (e->tail_state != 1) return GCAM_OK;
    int64_t kmax = e->N > 0 ? GC_TAIL_MAX_ROWS / e->N : 0;
    if (kmax < GC_TAIL_MIN_TARGETS) return GCAM_OK;
    int64_t chunks = (remaining + kmax - 1) / kmax, k = (remaining + chunks - 1) / chunks; /* equal chunks */
    int usable = 0;
    gcam_status rc = ensure_tail_ctx(e, k, &usable);
    if (rc || !usable) return rc;
    *take = (int)k;
    return GCAM_OK;
}

/* One batched tail run for targets t[0..k-1] into outs[0..k-1]. On failure *bad is the target
 * at fault (or 0) and every map of the run is freed. *fallback: the tail turned out not to be
 * batch-separable (its score differs from the explainer's): nothing done, use the loop. */
static gcam_status tail_run(gcam_explainer *e, gcam_method method, const gcam_target *t, int k, gcam_map *outs,
                            int *bad, int *fallback) {
    gcam_ctx *tc = e->tail_ctx, *c = e->ctx;
    int64_t K = e->tail_k;
    *bad = 0;
    *fallback = 0;
    /* seeds first: a bad target fails before any work */
    size_t sn = (size_t)gc_numel(gc_ctx_value(c, e->score));
    for (int j = 0; j < K; j++) {
        if (j < k) {
            gcam_status rc = build_seed(e, &t[j]);
            if (rc) {
                *bad = j;
                return rc;
            }
            memcpy(e->tail_seed + (size_t)j * sn, e->seed, sn * sizeof(float));
        } else { /* unused copies: zero seed */
            memset(e->tail_seed + (size_t)j * sn, 0, sn * sizeof(float));
        }
    }
    /* the values crossing into the tail, then its forward (the same steps as the explainer's) or,
     * once checked, only the values its backward reads */
    gcam_status rc = GCAM_OK;
    if (e->tail_fwd || !e->tail_checked) {
        gc_ctx_copy_values(tc, c, e->tail_cross, e->n_tail_cross, K);
        if ((rc = gc_ctx_forward_from(tc, e->tail_first))) return gc_fail(&e->err, rc, "%s", gcam_ctx_error(tc));
    }
    if (!e->tail_checked) {
        /* each copy's score must be the explainer's (a tail mixing samples would differ) */
        const float *s0 = gc_ctx_value(c, e->score)->data, *s1 = gc_ctx_value(tc, e->score)->data;
        float mx = 0;
        for (size_t i = 0; i < sn; i++) mx = fmaxf(mx, fabsf(s0[i]));
        for (int64_t j = 0; j < K; j++)
            for (size_t i = 0; i < sn; i++)
                if (!(fabsf(s1[(size_t)j * sn + i] - s0[i]) <= 1e-3f * mx + 1e-6f)) {
                    e->tail_state = -1;
                    gcam_ctx_free(e->tail_ctx);
                    e->tail_ctx = NULL;
                    *fallback = 1;
                    return GCAM_OK;
                }
        e->tail_checked = 1;
    }
    if (!e->tail_fwd) {
        gc_ctx_copy_values(tc, c, e->tail_saved, e->n_tail_saved, K);
        gc_ctx_mark_forward_done(tc);
    }
    int n_run = 0;
    rc = gc_ctx_backward(tc, e->tail_seed, GC_RULE_STANDARD, e->layers, e->n_layers, &n_run);
    if (rc) return gc_fail(&e->err, rc, "%s", gcam_ctx_error(tc));
    e->tail_runs++;
    const float **G = gc_malloc2((size_t)e->n_layers, sizeof *G); /* per layer: target j's rows of its gradient */
    if (!G) return gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
    for (int j = 0; j < k && !rc; j++) {
        for (int l = 0; l < e->n_layers; l++) {
            size_t per = (size_t)gc_numel(gc_ctx_value(c, e->layers[l])); /* (N, K, h, w) of one copy */
            G[l] = (const float *)gc_ctx_gradient(tc, e->layers[l])->data + (size_t)j * per;
        }
        rc = cam_map(e, method, &outs[j], G);
        if (rc) *bad = j;
    }
    free(G);
    if (rc)
        for (int j = 0; j < k; j++) gcam_map_free(&outs[j]);
    return rc;
}

gcam_status gcam_explain_many(gcam_explainer *e, gcam_method method, const gcam_target *targets, int n_targets,
                              gcam_map *outs) {
    if (!e) return GCAM_E_ARG;
    gc_err_clear(&e->err);
    if (!outs) return gc_fail(&e->err, GCAM_E_ARG, "no output maps");
    if (n_targets <= 0) return gc_fail(&e->err, GCAM_E_ARG, "n_targets must be at least 1 (got %d)", n_targets);
    memset(outs, 0, sizeof *outs * (size_t)n_targets);
    if (!targets) return gc_fail(&e->err, GCAM_E_ARG, "no targets");
    if (!e->ctx || gc_ctx_failed(e->ctx)) return gc_fail(&e->err, GCAM_E_STATE, "the explainer was not created");
    if (!e->forwarded) return gc_fail(&e->err, GCAM_E_STATE, "call gcam_explainer_forward first");
    if ((unsigned)method >= GCAM_METHOD_COUNT) return gc_fail(&e->err, GCAM_E_ARG, "unknown method %d", (int)method);
    gcam_status rc = GCAM_OK;
    int i = 0, bad = 0;
    while (i < n_targets) {
        int take = 0;
        if ((rc = tail_take(e, method, n_targets - i, &take))) {
            bad = i;
            break;
        }
        if (take > 0) {
            int fb = 0, b = 0;
            rc = tail_run(e, method, targets + i, take, outs + i, &b, &fb);
            if (rc) {
                bad = i + b;
                break;
            }
            if (!fb) {
                i += take;
                continue;
            }
        }
        if ((rc = gcam_explain(e, method, &targets[i], &outs[i]))) {
            bad = i;
            break;
        }
        i++;
    }
    if (rc) {
        for (int j = 0; j < n_targets; j++) gcam_map_free(&outs[j]);
        char why[sizeof e->err.msg];
        snprintf(why, sizeof why, "%s", e->err.code ? e->err.msg : gcam_status_str(rc));
        gc_err_clear(&e->err);
        gc_fail(&e->err, rc, "target %d of %d: %s", bad, n_targets, why);
    }
    return rc;
}

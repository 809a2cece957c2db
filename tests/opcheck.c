#include "opcheck.h"

#include <math.h>

int oc_failures = 0;
int oc_checks = 0;

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
void oc_seed(uint64_t s) { g_rng = s ? s : 1; }
double oc_urand(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}

int oc_check(int cond, const char *fmt, ...) {
    oc_checks++;
    if (!cond) {
        oc_failures++;
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "FAIL: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    }
    return cond;
}

static void *xmalloc(size_t n) {
    void *p = calloc(n ? n : 1, 1);
    if (!p) { fprintf(stderr, "out of memory\n"); abort(); }
    return p;
}

gc_node *oc_node(const char *op_type, int opset, int n_in, int n_out) {
    gc_node *n = xmalloc(sizeof *n);
    n->name = gc_strdup("test_node");
    n->op_type = gc_strdup(op_type);
    n->domain = gc_strdup("");
    n->opset = opset;
    n->op = gc_op_find(op_type);
    n->n_in = n_in;
    n->n_out = n_out;
    n->in = xmalloc(sizeof(int) * (size_t)(n_in + 1));
    n->out = xmalloc(sizeof(int) * (size_t)(n_out + 1));
    for (int i = 0; i < n_in; i++) n->in[i] = i;
    for (int i = 0; i < n_out; i++) n->out[i] = n_in + i;
    n->attrs = xmalloc(sizeof(gc_attr) * 32);
    return n;
}

static gc_attr *new_attr(gc_node *n, const char *name, gc_attr_type t) {
    gc_attr *a = &n->attrs[n->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = gc_strdup(name);
    a->type = t;
    return a;
}
void oc_attr_i(gc_node *n, const char *name, int64_t v) { new_attr(n, name, GC_ATTR_INT)->i = v; }
void oc_attr_f(gc_node *n, const char *name, float v) { new_attr(n, name, GC_ATTR_FLOAT)->f = v; }
void oc_attr_s(gc_node *n, const char *name, const char *v) {
    gc_attr *a = new_attr(n, name, GC_ATTR_STRING);
    a->s = gc_strdup(v);
    a->n = strlen(v);
}
void oc_attr_ints(gc_node *n, const char *name, int count, const int64_t *v) {
    gc_attr *a = new_attr(n, name, GC_ATTR_INTS);
    a->ints = xmalloc(sizeof(int64_t) * (size_t)count);
    memcpy(a->ints, v, sizeof(int64_t) * (size_t)count);
    a->n = (size_t)count;
}
void oc_attr_floats(gc_node *n, const char *name, int count, const float *v) {
    gc_attr *a = new_attr(n, name, GC_ATTR_FLOATS);
    a->floats = xmalloc(sizeof(float) * (size_t)count);
    memcpy(a->floats, v, sizeof(float) * (size_t)count);
    a->n = (size_t)count;
}
void oc_node_free(gc_node *n) {
    if (!n) return;
    for (int i = 0; i < n->n_attrs; i++) {
        free(n->attrs[i].name);
        free(n->attrs[i].s);
        free(n->attrs[i].ints);
        free(n->attrs[i].floats);
    }
    free(n->attrs);
    free(n->params);
    free(n->kcache);
    free(n->in);
    free(n->out);
    free(n->name);
    free(n->op_type);
    free(n->domain);
    free(n);
}

gc_tensor oc_tensor(gc_dtype t, int ndim, const int64_t *dims) {
    gc_tensor r = {.dtype = t};
    r.shape.ndim = ndim;
    for (int i = 0; i < ndim; i++) r.shape.d[i] = dims[i];
    int ok = 0;
    size_t b = gc_tensor_bytes(t, &r.shape, &ok);
    if (!ok) { fprintf(stderr, "bad test tensor\n"); abort(); }
    r.data = xmalloc(b);
    return r;
}
gc_tensor oc_rand(int ndim, const int64_t *dims, float lo, float hi) {
    gc_tensor r = oc_tensor(GC_F32, ndim, dims);
    float *p = r.data;
    for (int64_t i = 0; i < gc_numel(&r); i++) p[i] = lo + (hi - lo) * (float)oc_urand();
    return r;
}
gc_tensor oc_ints(int n, const int64_t *v) {
    int64_t d = n;
    gc_tensor r = oc_tensor(GC_I64, 1, &d);
    memcpy(r.data, v, sizeof(int64_t) * (size_t)n);
    return r;
}
void oc_tensor_free(gc_tensor *t) {
    free(t->data);
    t->data = NULL;
}

typedef struct run_state {
    gc_kctx k;
    gc_tuning tune; /* as a context takes it at creation (gc_tuning_set_default in tests) */
    gc_tensor shadow_in[GC_MAX_IO];
    void *aux;
} run_state;

static gcam_status prepare(run_state *s, gc_node *n, gc_tensor *in, int n_in, uint32_t const_mask,
                           gc_tensor *outs, int n_out, gc_err *err) {
    memset(s, 0, sizeof *s);
    const gc_opdef *d = gc_op_get(n->op);
    if (!d || !d->forward) return gc_fail(err, GCAM_E_UNSUPPORTED, "op %s not implemented", n->op_type);
    if (d->parse && !n->params) {
        gcam_status st = d->parse(n, err);
        if (st) return st;
    }
    gc_kctx *k = &s->k;
    k->node = n;
    k->params = n->params;
    k->n_in = n_in;
    k->n_out = n_out;
    k->err = err;
    k->nthreads = 2;
    gc_tuning_get(&s->tune);
    k->tune = &s->tune;
    k->const_in = const_mask; /* as the planner marks model constants (ops may cache what they derive) */
    for (int i = 0; i < n_in; i++) {
        if (!in[i].data && in[i].dtype == 0) { k->in[i] = NULL; continue; } /* omitted optional */
        s->shadow_in[i] = in[i];
        if (!(const_mask & (1u << i))) s->shadow_in[i].data = NULL;
        k->in[i] = &s->shadow_in[i];
    }
    for (int j = 0; j < n_out; j++) {
        memset(&outs[j], 0, sizeof outs[j]);
        k->out[j] = &outs[j];
    }
    gcam_status st = d->infer(k);
    if (st) return st;
    for (int i = 0; i < n_in; i++)
        if (k->in[i]) s->shadow_in[i].data = in[i].data;
    for (int j = 0; j < n_out; j++) {
        int ok = 0;
        size_t b = gc_tensor_bytes(outs[j].dtype, &outs[j].shape, &ok);
        if (!ok) return gc_fail(err, GCAM_E_SHAPE, "harness: bad output shape");
        outs[j].data = xmalloc(b);
        memset(outs[j].data, 0xCD, b); /* forward must write every element */
    }
    size_t sb = d->scratch_bytes ? d->scratch_bytes(k) : 0;
    size_t bsb = d->bscratch_bytes ? d->bscratch_bytes(k) : 0;
    k->scratch_size = GC_MAX(sb, bsb);
    k->scratch = k->scratch_size ? aligned_alloc(64, gc_align64(k->scratch_size)) : NULL;
    size_t ab = d->aux_bytes ? d->aux_bytes(k) : 0;
    s->aux = ab ? xmalloc(ab) : NULL;
    k->aux = s->aux;
    return GCAM_OK;
}

static void release(run_state *s) {
    free(s->k.scratch);
    free(s->aux);
}

gcam_status oc_forward(gc_node *n, gc_tensor *in, int n_in, uint32_t const_mask, gc_tensor *outs,
                       int n_out, gc_err *err) {
    run_state s;
    gcam_status st = prepare(&s, n, in, n_in, const_mask, outs, n_out, err);
    if (!st) st = gc_op_get(n->op)->forward(&s.k);
    release(&s);
    return st;
}

/* L = sum_j sum gout_j * out_j, in double. */
static double loss_of(gc_node *n, gc_tensor *in, int n_in, uint32_t const_mask, int n_out,
                      gc_tensor *gouts, int *ok) {
    gc_tensor outs[GC_MAX_IO];
    gc_err err = {0};
    *ok = oc_forward(n, in, n_in, const_mask, outs, n_out, &err) == GCAM_OK;
    double L = 0;
    for (int j = 0; j < n_out; j++) {
        if (*ok && outs[j].dtype == GC_F32 && gouts[j].data) {
            const float *o = outs[j].data, *g = gouts[j].data;
            for (int64_t e = 0; e < gc_numel(&outs[j]); e++) L += (double)o[e] * (double)g[e];
        }
        oc_tensor_free(&outs[j]);
    }
    return L;
}

static double g_gout_density = 1.0;
void oc_set_gout_density(double p) { g_gout_density = p; }

double oc_gradcheck(const char *label, gc_node *n, gc_tensor *in, int n_in, uint32_t const_mask,
                    int n_out, uint32_t grad_mask, double h, double tol, int max_elems) {
    gc_err err = {0};
    run_state s;
    gc_tensor outs[GC_MAX_IO], gouts[GC_MAX_IO], gins[GC_MAX_IO], prefill[GC_MAX_IO];
    memset(gouts, 0, sizeof gouts);
    memset(gins, 0, sizeof gins);
    memset(prefill, 0, sizeof prefill);
    double worst = 0;
    gcam_status st = prepare(&s, n, in, n_in, const_mask, outs, n_out, &err);
    const gc_opdef *d = gc_op_get(n->op);
    if (!st) st = d->forward(&s.k);
    if (st || !d->backward) {
        oc_check(0, "%s: forward failed or no backward: %s", label, err.msg);
        release(&s);
        for (int j = 0; j < n_out; j++) oc_tensor_free(&outs[j]);
        return INFINITY;
    }
    for (int j = 0; j < n_out; j++) {
        if (outs[j].dtype != GC_F32) continue;
        gouts[j] = oc_rand(outs[j].shape.ndim, outs[j].shape.d, -1, 1);
        if (g_gout_density < 1.0) { /* a sparse upstream gradient, at least one nonzero */
            float *g = gouts[j].data;
            const int64_t ne = gc_numel(&gouts[j]);
            int64_t nz = 0;
            for (int64_t e = 0; e < ne; e++)
                if (oc_urand() >= g_gout_density) g[e] = 0.0f;
                else nz++;
            if (!nz && ne) g[(int64_t)(oc_urand() * (double)ne) % ne] = 0.5f;
        }
        s.k.gout[j] = &gouts[j];
    }
    for (int i = 0; i < n_in; i++) {
        if (!(grad_mask & (1u << i))) continue;
        gins[i] = oc_rand(in[i].shape.ndim, in[i].shape.d, -1, 1);
        prefill[i] = oc_tensor(GC_F32, in[i].shape.ndim, in[i].shape.d);
        memcpy(prefill[i].data, gins[i].data, (size_t)gc_numel(&gins[i]) * sizeof(float));
        s.k.gin[i] = &gins[i];
    }
    /* Backward may only read what it declared: poison everything else. */
    for (int i = 0; i < n_in; i++)
        if (s.k.in[i] && !(d->bw_in & (1u << i)) && !(const_mask & (1u << i))) s.shadow_in[i].data = NULL;
    void *keep_out[GC_MAX_IO];
    for (int j = 0; j < n_out; j++) {
        keep_out[j] = outs[j].data;
        if (!(d->bw_out & (1u << j))) outs[j].data = NULL;
    }
    st = d->backward(&s.k);
    for (int j = 0; j < n_out; j++) outs[j].data = keep_out[j];
    if (st) {
        oc_check(0, "%s: backward failed: %s", label, err.msg);
        worst = INFINITY;
        goto done;
    }
    for (int i = 0; i < n_in; i++) {
        if (!(grad_mask & (1u << i))) continue;
        float *x = in[i].data;
        int64_t N = gc_numel(&in[i]);
        int64_t step = N > max_elems ? (N + max_elems - 1) / max_elems : 1;
        double maxnum = 0, maxdiff = 0;
        int64_t worst_e = -1;
        double worst_a = 0, worst_n = 0;
        for (int64_t e = (step > 1 ? (int64_t)(oc_urand() * (double)step) : 0); e < N; e += step) {
            float x0 = x[e];
            int ok1, ok2;
            x[e] = (float)(x0 + h);
            double lp = loss_of(n, in, n_in, const_mask, n_out, gouts, &ok1);
            x[e] = (float)(x0 - h);
            double lm = loss_of(n, in, n_in, const_mask, n_out, gouts, &ok2);
            double hh = ((double)(float)(x0 + h) - (double)(float)(x0 - h));
            x[e] = x0;
            double num = (lp - lm) / hh;
            double ana = (double)((float *)gins[i].data)[e] - (double)((float *)prefill[i].data)[e];
            if (fabs(num) > maxnum) maxnum = fabs(num);
            if (!isfinite(ana) || fabs(ana - num) > maxdiff || !ok1 || !ok2) {
                maxdiff = isfinite(ana) ? fabs(ana - num) : INFINITY;
                worst_e = e; worst_a = ana; worst_n = num;
            }
        }
        double rel = maxdiff / GC_MAX(maxnum, 1e-2);
        if (rel > worst) worst = rel;
        oc_check(rel <= tol, "%s: input %d: max|analytic-numeric| = %.3g (%.3g relative, tol %.1g) at "
                 "element %lld: analytic %.6g numeric %.6g",
                 label, i, maxdiff, rel, tol, (long long)worst_e, worst_a, worst_n);
    }
done:
    for (int j = 0; j < n_out; j++) oc_tensor_free(&outs[j]);
    release(&s);
    for (int j = 0; j < GC_MAX_IO; j++) {
        oc_tensor_free(&gouts[j]);
        oc_tensor_free(&gins[j]);
        oc_tensor_free(&prefill[j]);
    }
    return worst;
}

int oc_close(const char *label, const float *a, const float *b, int64_t n, double atol, double rtol) {
    int64_t worst = -1;
    double wd = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double lim = atol + rtol * fabs((double)b[i]);
        if (!(d <= lim) && (worst < 0 || d > wd)) { worst = i; wd = d; }
    }
    if (worst >= 0)
        return oc_check(0, "%s: element %lld: got %.7g want %.7g (|diff| %.3g)", label,
                        (long long)worst, a[worst], b[worst], wd);
    return oc_check(1, "%s", label);
}

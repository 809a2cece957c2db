/* Einsum (opset 12 on), forward and backward, float32.
 *
 * The equation: terms of letters (a-z, A-Z) with at most one "..." each, separated by commas,
 * optionally "->" and the output term (implicit mode: the ellipsis dims, then the letters that occur
 * once, in ASCII order, as numpy does); spaces are ignored (PyTorch exports "B G H I D, ..."). A
 * letter repeated in one operand reads its diagonal; labels of extent 1 broadcast against the others,
 * and the ellipsis dims broadcast right-aligned.
 *
 * Every tensor becomes a view: its data and a stride per label (summed over a repeated letter, 0
 * where it lacks the label or has extent 1). One engine then computes O += X1 (.) X2 for any three
 * views, classifying each label: in O and both inputs (batch), in O and one input (M or N), not in O
 * (contracted: K, the input lacking it is read as constant along it). Each batch is one GEMM through
 * gc_sgemm; an operand whose M/K (K/N) labels do not collapse into one strided matrix is first packed
 * into the workspace, and an output that does not collapse gets a packed result added into it.
 * More than two operands contract left to right through intermediates that keep only the labels
 * still needed; one operand is a strided sum. The gradient of operand i is the same engine run on
 * dY and the other operands, with operand i's view as the output: diagonals, broadcasts and summed
 * labels then come out right by construction (gradient on the diagonal only, summed over broadcast
 * dims, constant along labels only operand i has). */
#include "kutil.h"

#include <limits.h>

#define ES_LETTERS 52
#define ES_MAXL (ES_LETTERS + GC_MAX_DIMS) /* letters, then the ellipsis dims (< 64: label masks) */
#define ES_MAXEQ 4096

typedef struct es_term {
    int n;                    /* letters */
    int ell;                  /* index in lab[] where "..." stands, -1 without */
    int8_t lab[GC_MAX_DIMS];  /* letter ids: A-Z 0..25, a-z 26..51 */
} es_term;

typedef struct es_params {
    int nops;
    es_term out;
    es_term in[];             /* nops */
} es_params;

/* ---------------------------------------------------------------- the equation */

static int letter_id(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return 26 + c - 'a';
    return -1;
}

/* One term from *s up to ',', '-' or the end; advances *s. Returns 0 or an error text. */
static const char *parse_term(const char **s, es_term *t) {
    const char *p = *s;
    t->n = 0;
    t->ell = -1;
    for (; *p && *p != ',' && *p != '-'; p++) {
        if (*p == '.') {
            if (p[1] != '.' || p[2] != '.') return "'.' outside an ellipsis '...'";
            if (t->ell >= 0) return "more than one ellipsis in a term";
            t->ell = t->n;
            p += 2;
            continue;
        }
        int id = letter_id(*p);
        if (id < 0) return "a subscript is not a letter";
        if (t->n >= GC_MAX_DIMS) return "a term has more subscripts than the supported rank";
        t->lab[t->n++] = (int8_t)id;
    }
    *s = p;
    return NULL;
}

/* Implicit output: "..." (when an input has one), then the letters occurring exactly once. */
static int implicit_out(es_params *p) {
    int count[ES_LETTERS] = {0}, any_ell = 0;
    for (int i = 0; i < p->nops; i++) {
        any_ell |= p->in[i].ell >= 0;
        for (int j = 0; j < p->in[i].n; j++) count[p->in[i].lab[j]]++;
    }
    p->out.n = 0;
    p->out.ell = any_ell ? 0 : -1;
    for (int l = 0; l < ES_LETTERS; l++)
        if (count[l] == 1) {
            if (p->out.n >= GC_MAX_DIMS) return -1;
            p->out.lab[p->out.n++] = (int8_t)l;
        }
    return 0;
}

static gcam_status es_parse_eq(gc_node *n, gc_err *err, const char *eq, es_params *p) {
    char buf[ES_MAXEQ];
    size_t len = 0;
    for (const char *c = eq; *c; c++) /* spaces are not part of the grammar's tokens */
        if (*c != ' ' && *c != '\t') {
            if (len + 1 >= sizeof buf) return gc_node_fail(n, err, GCAM_E_FORMAT, "equation too long");
            buf[len++] = *c;
        }
    buf[len] = 0;
    const char *s = buf, *e;
    for (int i = 0;; i++) {
        if (i >= p->nops) return gc_node_fail(n, err, GCAM_E_FORMAT, "equation '%s' has more terms than the %d inputs", eq, p->nops);
        if ((e = parse_term(&s, &p->in[i]))) return gc_node_fail(n, err, GCAM_E_FORMAT, "equation '%s': %s", eq, e);
        if (*s != ',') {
            if (i + 1 != p->nops)
                return gc_node_fail(n, err, GCAM_E_FORMAT, "equation '%s' has %d input terms for %d inputs", eq, i + 1, p->nops);
            break;
        }
        s++;
    }
    if (!*s)
        return implicit_out(p) ? gc_node_fail(n, err, GCAM_E_UNSUPPORTED, "equation '%s': implicit output rank exceeds %d", eq,
                                              GC_MAX_DIMS)
                               : GCAM_OK;
    if (s[0] != '-' || s[1] != '>') return gc_node_fail(n, err, GCAM_E_FORMAT, "equation '%s': expected '->'", eq);
    s += 2;
    if ((e = parse_term(&s, &p->out)) || *s)
        return gc_node_fail(n, err, GCAM_E_FORMAT, "equation '%s': %s", eq, e ? e : "unexpected text after the output");
    for (int j = 0; j < p->out.n; j++) {
        int seen = 0;
        for (int q = 0; q < j; q++)
            if (p->out.lab[q] == p->out.lab[j])
                return gc_node_fail(n, err, GCAM_E_FORMAT, "equation '%s': an output subscript repeats", eq);
        for (int i = 0; i < p->nops && !seen; i++)
            for (int q = 0; q < p->in[i].n; q++) seen |= p->in[i].lab[q] == p->out.lab[j];
        if (!seen) return gc_node_fail(n, err, GCAM_E_FORMAT, "equation '%s': an output subscript is in no input", eq);
    }
    return GCAM_OK;
}

static gcam_status es_parse(gc_node *n, gc_err *err) {
    const char *eq = gc_attr_str(n, "equation", NULL);
    if (!eq) return gc_node_fail(n, err, GCAM_E_FORMAT, "attribute 'equation' is required");
    if (n->n_in < 1 || n->n_in > GC_MAX_IO) return gc_node_fail(n, err, GCAM_E_FORMAT, "Einsum takes 1 to %d inputs", GC_MAX_IO);
    es_params *p = calloc(1, sizeof *p + (size_t)n->n_in * sizeof(es_term));
    if (!p) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
    p->nops = n->n_in;
    gcam_status st = es_parse_eq(n, err, eq, p);
    if (st) {
        free(p);
        return st;
    }
    free(n->params);
    n->params = p;
    return GCAM_OK;
}

/* ---------------------------------------------------------------- shapes and views */

typedef struct es_view {
    float *data;
    int64_t st[ES_MAXL];      /* element stride per label; 0: constant along it */
} es_view;

typedef struct es_geom {
    int64_t ext[ES_MAXL];     /* extent per label (1 for unused labels) */
    gc_shape yshape;
    int64_t yst[ES_MAXL];     /* Y's strides */
} es_geom;

/* Label of dim d of a rank-r operand with term t, E ellipsis dims in all, e of them its own. */
static int dim_label(const es_term *t, int d, int e, int E) {
    if (t->ell >= 0 && d >= t->ell && d < t->ell + e) return ES_LETTERS + (E - e) + (d - t->ell);
    return t->lab[t->ell >= 0 && d >= t->ell + e ? d - e : d];
}

/* Operand i's strides over the labels (diagonals summed, extent-1 dims left out). */
static void operand_strides(const gc_shape *s, const es_term *t, int E, int64_t *st) {
    int64_t cs[GC_MAX_DIMS];
    gc_shape_strides(cs, s);
    memset(st, 0, ES_MAXL * sizeof *st);
    for (int d = 0; d < s->ndim; d++)
        if (s->d[d] > 1) st[dim_label(t, d, s->ndim - t->n, E)] += cs[d];
}

/* Checks the operands against the equation, then extents, Y's shape and strides. */
static gcam_status es_setup(gc_kctx *k, es_geom *g) {
    const es_params *p = k->params;
    if (!p || p->nops != k->n_in) return gc_kfail(k, GCAM_E_INTERNAL, "attributes not parsed");
    int E = 0;
    for (int i = 0; i < p->nops; i++) {
        const gc_tensor *x = k->in[i];
        if (!x || x->dtype != GC_F32) return gc_kfail(k, GCAM_E_UNSUPPORTED, "input %d: only float32 is supported", i);
        if (gc_shape_numel(&x->shape) < 0) return gc_kfail(k, GCAM_E_SHAPE, "input %d: unknown shape", i);
        int e = x->shape.ndim - p->in[i].n;
        if (e < 0 || (e > 0 && p->in[i].ell < 0))
            return gc_kfail(k, GCAM_E_SHAPE, "input %d has rank %d, its term %d subscripts%s", i, x->shape.ndim,
                            p->in[i].n, p->in[i].ell >= 0 ? " and an ellipsis" : "");
        E = GC_MAX(E, e);
    }
    for (int l = 0; l < ES_MAXL; l++) g->ext[l] = -1;
    for (int i = 0; i < p->nops; i++) { /* extents: equal, or 1 (broadcast) */
        const gc_shape *s = &k->in[i]->shape;
        for (int d = 0; d < s->ndim; d++) {
            int l = dim_label(&p->in[i], d, s->ndim - p->in[i].n, E);
            int64_t x = s->d[d];
            for (int d2 = 0; d2 < d; d2++) /* a diagonal needs equal extents */
                if (dim_label(&p->in[i], d2, s->ndim - p->in[i].n, E) == l && s->d[d2] != x)
                    return gc_kfail(k, GCAM_E_SHAPE, "input %d: a repeated subscript spans extents %lld and %lld", i,
                                    (long long)s->d[d2], (long long)x);
            if (g->ext[l] < 0 || g->ext[l] == 1) g->ext[l] = x;
            else if (x != 1 && x != g->ext[l])
                return gc_kfail(k, GCAM_E_SHAPE, "input %d: extent %lld does not match %lld for the same subscript", i,
                                (long long)x, (long long)g->ext[l]);
        }
    }
    for (int l = 0; l < ES_MAXL; l++)
        if (g->ext[l] < 0) g->ext[l] = 1;
    const es_term *o = &p->out;
    int yr = o->n + (o->ell >= 0 ? E : 0);
    if (yr > GC_MAX_DIMS) return gc_kfail(k, GCAM_E_UNSUPPORTED, "output rank %d exceeds %d", yr, GC_MAX_DIMS);
    g->yshape.ndim = yr;
    for (int d = 0; d < yr; d++) g->yshape.d[d] = g->ext[dim_label(o, d, yr - o->n, E)];
    int ok = 0;
    (void)gc_tensor_bytes(GC_F32, &g->yshape, &ok);
    if (!ok) return gc_kfail(k, GCAM_E_LIMIT, "output too large");
    operand_strides(&g->yshape, o, E, g->yst);
    return GCAM_OK;
}

static gcam_status es_infer(gc_kctx *k) {
    es_geom g;
    gcam_status st = es_setup(k, &g);
    if (st) return st;
    k->out[0]->dtype = GC_F32;
    k->out[0]->shape = g.yshape;
    return GCAM_OK;
}

/* Operand i's strides (recomputes the ellipsis count; es_setup has checked the shapes). */
static void input_strides(const gc_kctx *k, int i, int64_t *st) {
    const es_params *p = k->params;
    int E = 0;
    for (int j = 0; j < p->nops; j++) E = GC_MAX(E, k->in[j]->shape.ndim - p->in[j].n);
    operand_strides(&k->in[i]->shape, &p->in[i], E, st);
}

/* ---------------------------------------------------------------- the engine */

/* One evaluation: label extents, threads, and the workspace used as a stack (dry: sizes only). */
typedef struct es_run {
    const int64_t *ext;
    int nt, dry;
    char *base;
    size_t size, used, peak;
    gc_kctx *k;
} es_run;

static uint64_t view_mask(const es_run *r, const es_view *v) {
    uint64_t m = 0;
    for (int l = 0; l < ES_MAXL; l++)
        if (r->ext[l] > 1 && v->st[l] != 0) m |= UINT64_C(1) << l;
    return m;
}

/* n floats from the workspace (NULL when dry); fails on overflow or when it is too small. */
static gcam_status es_alloc(es_run *r, int64_t n, float **out) {
    size_t b;
    *out = NULL;
    if (gc_mul_sz(&b, (size_t)n, sizeof(float)) || !(b = gc_align64(b)) || gc_add_sz(&b, r->used, b))
        return gc_kfail(r->k, GCAM_E_LIMIT, "workspace size overflows");
    if (!r->dry) {
        if (b > r->size) return gc_kfail(r->k, GCAM_E_INTERNAL, "workspace smaller than planned");
        *out = (float *)(r->base + r->used);
    }
    r->used = b;
    r->peak = GC_MAX(r->peak, b);
    return GCAM_OK;
}

/* dst[od] = (or +=) src[os] over n labels (extents e, strides sd, ss): an odometer, the last label
 * innermost. */
static void sloop(int n, const int64_t *e, const int64_t *sd, const int64_t *ss, float *dst, const float *src, int add) {
    int64_t idx[ES_MAXL] = {0}, od = 0, os = 0;
    const int64_t ni = n ? e[n - 1] : 1, di = n ? sd[n - 1] : 0, si = n ? ss[n - 1] : 0;
    for (;;) {
        if (add)
            for (int64_t i = 0; i < ni; i++) dst[od + i * di] += src[os + i * si];
        else
            for (int64_t i = 0; i < ni; i++) dst[od + i * di] = src[os + i * si];
        int a = n - 2;
        for (; a >= 0; a--) {
            od += sd[a];
            os += ss[a];
            if (++idx[a] < e[a]) break;
            od -= sd[a] * e[a];
            os -= ss[a] * e[a];
            idx[a] = 0;
        }
        if (a < 0) return;
    }
}

/* Sorts labels by descending key[l] (stable: ties keep label order). */
static void sort_desc(int *lab, int n, const int64_t *key) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && key[lab[j]] > key[lab[j - 1]]; j--) {
            int t = lab[j];
            lab[j] = lab[j - 1];
            lab[j - 1] = t;
        }
}

/* Whether a group of labels (in order) is one strided axis: its stride in *s (0 for no label). */
static int collapse(const int *g, int n, const int64_t *ext, const int64_t *st, int64_t *s) {
    for (int i = 0; i + 1 < n; i++)
        if (st[g[i]] != st[g[i + 1]] * ext[g[i + 1]]) return 0;
    *s = n ? st[g[n - 1]] : 0;
    return 1;
}

typedef struct es_group {
    int n;
    int lab[ES_MAXL];
    int64_t size;             /* product of the extents */
} es_group;

/* How view v reads as an (R, C) matrix in each batch: row-major with leading dimension *ld
 * (*trans 0) or its transpose stored row-major (*trans 1). 0 when it does not. */
static int as_matrix(const es_group *rg, const es_group *cg, const int64_t *ext, const es_view *v, int *trans, int64_t *ld) {
    int64_t rs, cs, R = rg->size, C = cg->size;
    if (!collapse(rg->lab, rg->n, ext, v->st, &rs) || !collapse(cg->lab, cg->n, ext, v->st, &cs)) return 0;
    if ((C <= 1 || cs == 1) && (R <= 1 || rs >= GC_MAX(C, 1))) {
        *trans = 0;
        *ld = R <= 1 ? GC_MAX(C, 1) : rs;
    } else if ((R <= 1 || rs == 1) && (C <= 1 || cs >= GC_MAX(R, 1))) {
        *trans = 1;
        *ld = C <= 1 ? GC_MAX(R, 1) : cs;
    } else
        return 0;
    return *ld <= INT_MAX;
}

/* Copies view v into a contiguous (batch, rows, cols) buffer, then points v at it. */
static gcam_status pack(es_run *r, es_view *v, const es_group *b, const es_group *rg, const es_group *cg) {
    int64_t n, lab[ES_MAXL], e[ES_MAXL], sd[ES_MAXL], ss[ES_MAXL];
    if (gc_mul_i64(&n, b->size, rg->size) || gc_mul_i64(&n, n, cg->size))
        return gc_kfail(r->k, GCAM_E_LIMIT, "packed operand too large");
    float *buf;
    gcam_status st = es_alloc(r, n, &buf);
    if (st || r->dry) return st;
    int nl = 0;
    const es_group *gs[3] = {b, rg, cg};
    for (int q = 0; q < 3; q++)
        for (int i = 0; i < gs[q]->n; i++) lab[nl++] = gs[q]->lab[i];
    int64_t acc = 1;
    for (int i = nl - 1; i >= 0; i--) {
        e[i] = r->ext[lab[i]];
        ss[i] = v->st[lab[i]];
        sd[i] = acc;
        acc *= e[i];
    }
    sloop(nl, e, sd, ss, buf, v->data, 0);
    v->data = buf;
    for (int i = 0; i < nl; i++) v->st[lab[i]] = sd[i];
    return GCAM_OK;
}

typedef struct es_gemm {
    int ta, tb;
    int64_t M, N, K, lda, ldb, ldc;
    float beta;
} es_gemm;

/* Element offset of batch b in view v (batch labels in group order, last fastest). */
static int64_t batch_off(const es_group *bg, const int64_t *ext, const es_view *v, int64_t b) {
    int64_t off = 0;
    for (int i = bg->n - 1; i >= 0; i--) {
        int64_t e = ext[bg->lab[i]];
        off += (b % e) * v->st[bg->lab[i]];
        b /= e;
    }
    return off;
}

/* C_b (M, N) (+)= A_b B_b for every batch b: the batches over threads when each GEMM is small (too
 * small for gc_sgemm to split) but all of them together are worth waking the threads for. */
static void run_batches(es_run *r, const es_group *bg, const es_gemm *g, const es_view *a, const es_view *b, float *c,
                        const es_view *cv) {
    const int64_t nb = bg->size;
    const double mnk = (double)g->M * (double)g->N * (double)g->K;
    const int par = r->nt > 1 && nb >= 2 && mnk < 262144.0 && mnk * (double)nb >= 65536.0;
#pragma omp parallel for num_threads(r->nt) schedule(static) if (par)
    for (int64_t i = 0; i < nb; i++)
        gc_sgemm(par ? 1 : r->nt, g->ta, g->tb, g->M, g->N, g->K, 1.0f, a->data + batch_off(bg, r->ext, a, i), g->lda,
                 b->data + batch_off(bg, r->ext, b, i), g->ldb, g->beta, c + batch_off(bg, r->ext, cv, i), g->ldc);
}

/* Classifies the labels of o += x1 (.) x2 into batch, M, N and K groups (ordered for collapsing). */
static gcam_status classify(es_run *r, const es_view *x1, const es_view *x2, const es_view *o, es_group gr[4]) {
    const uint64_t m1 = view_mask(r, x1), m2 = view_mask(r, x2), mo = view_mask(r, o);
    for (int q = 0; q < 4; q++) gr[q].n = 0, gr[q].size = 1;
    for (int l = 0; l < ES_MAXL; l++) {
        uint64_t bit = UINT64_C(1) << l;
        if (!((m1 | m2 | mo) & bit)) continue;
        int q = !(mo & bit) ? 3 : (m1 & bit) && !(m2 & bit) ? 1 : (m2 & bit) && !(m1 & bit) ? 2 : 0;
        gr[q].lab[gr[q].n++] = l;
        if (gc_mul_i64(&gr[q].size, gr[q].size, r->ext[l]) || gr[q].size > INT_MAX)
            return gc_kfail(r->k, GCAM_E_LIMIT, "a contraction dimension exceeds the GEMM limits");
    }
    for (int q = 0; q < 3; q++) sort_desc(gr[q].lab, gr[q].n, o->st);
    sort_desc(gr[3].lab, gr[3].n, x1->st);
    return GCAM_OK;
}

/* o += x1 (.) x2 over every label (see the file comment). */
static gcam_status es_pair(es_run *r, const es_view *x1in, const es_view *x2in, const es_view *o) {
    es_group gr[4]; /* batch, M, N, K */
    gcam_status st = classify(r, x1in, x2in, o, gr);
    if (st) return st;
    const size_t mark = r->used;
    es_view a = *x1in, b = *x2in, c = *o;
    int ta, tb, tc;
    int64_t lda, ldb, ldc;
    if (!as_matrix(&gr[1], &gr[3], r->ext, &a, &ta, &lda)) {
        if ((st = pack(r, &a, &gr[0], &gr[1], &gr[3]))) return st;
        ta = 0, lda = GC_MAX(gr[3].size, 1);
    }
    if (!as_matrix(&gr[3], &gr[2], r->ext, &b, &tb, &ldb)) {
        if ((st = pack(r, &b, &gr[0], &gr[3], &gr[2]))) return st;
        tb = 0, ldb = GC_MAX(gr[2].size, 1);
    }
    int direct = as_matrix(&gr[1], &gr[2], r->ext, &c, &tc, &ldc);
    float *cbuf = NULL;
    if (!direct) { /* a packed (batch, M, N) result, added into o afterwards */
        int64_t n;
        if (gc_mul_i64(&n, gr[0].size, gr[1].size) || gc_mul_i64(&n, n, gr[2].size))
            return gc_kfail(r->k, GCAM_E_LIMIT, "result too large");
        if ((st = es_alloc(r, n, &cbuf))) return st;
        int64_t acc = gr[1].size * gr[2].size;
        for (int i = gr[0].n - 1; i >= 0; i--) c.st[gr[0].lab[i]] = acc, acc *= r->ext[gr[0].lab[i]];
        tc = 0, ldc = GC_MAX(gr[2].size, 1);
    }
    if (r->dry) {
        r->used = mark;
        return GCAM_OK;
    }
    es_gemm g = {ta, tb, gr[1].size, gr[2].size, gr[3].size, lda, ldb, ldc, direct ? 1.0f : 0.0f};
    if (tc) /* o is stored transposed: o^T (N, M) += x2^T x1^T */
        g = (es_gemm){!tb, !ta, gr[2].size, gr[1].size, gr[3].size, ldb, lda, ldc, 1.0f};
    run_batches(r, &gr[0], &g, tc ? &b : &a, tc ? &a : &b, direct ? c.data : cbuf, &c);
    if (!direct) { /* o += the packed result, over (batch, M, N) */
        int64_t lab[ES_MAXL], e[ES_MAXL], sd[ES_MAXL], ss[ES_MAXL], acc = 1;
        int nl = 0;
        for (int q = 0; q < 3; q++)
            for (int i = 0; i < gr[q].n; i++) lab[nl++] = gr[q].lab[i];
        for (int i = nl - 1; i >= 0; i--) {
            e[i] = r->ext[lab[i]];
            sd[i] = o->st[lab[i]];
            ss[i] = acc;
            acc *= e[i];
        }
        sloop(nl, e, sd, ss, o->data, cbuf, 1);
    }
    r->used = mark;
    return GCAM_OK;
}

/* o += the one operand summed over the labels o lacks (o's order, its largest strides outermost). */
static void es_single(es_run *r, const es_view *x, const es_view *o) {
    int lab[ES_MAXL], nl = 0;
    int64_t e[ES_MAXL], sd[ES_MAXL], ss[ES_MAXL];
    const uint64_t m = view_mask(r, x) | view_mask(r, o);
    for (int l = 0; l < ES_MAXL; l++)
        if (m & (UINT64_C(1) << l)) lab[nl++] = l;
    sort_desc(lab, nl, o->st);
    for (int i = 0; i < nl; i++) e[i] = r->ext[lab[i]], sd[i] = o->st[lab[i]], ss[i] = x->st[lab[i]];
    sloop(nl, e, sd, ss, o->data, x->data, 1);
}

/* o += v[0] (.) v[1] (.) ... (.) v[n-1], contracted left to right; each intermediate keeps the
 * labels a later operand or o still has, contiguous in label order, in two buffers used in turn. */
static gcam_status es_chain(es_run *r, const es_view *const *v, int n, const es_view *o) {
    if (n == 1) {
        if (!r->dry) es_single(r, v[0], o);
        return GCAM_OK;
    }
    uint64_t later[GC_MAX_IO + 1], tm[GC_MAX_IO];
    later[n] = view_mask(r, o);
    for (int t = n - 1; t >= 1; t--) later[t] = later[t + 1] | view_mask(r, v[t]);
    int64_t tmax = 0; /* the largest intermediate */
    uint64_t cur = view_mask(r, v[0]);
    for (int t = 1; t + 1 < n; t++) {
        tm[t] = (cur | view_mask(r, v[t])) & later[t + 1];
        int64_t sz = 1;
        for (int l = 0; l < ES_MAXL; l++)
            if ((tm[t] >> l & 1) && gc_mul_i64(&sz, sz, r->ext[l]))
                return gc_kfail(r->k, GCAM_E_LIMIT, "intermediate too large");
        tmax = GC_MAX(tmax, sz);
        cur = tm[t];
    }
    const size_t mark = r->used;
    es_view tv[2];
    gcam_status st = GCAM_OK;
    if (n > 2 && ((st = es_alloc(r, tmax, &tv[0].data)) || (st = es_alloc(r, tmax, &tv[1].data)))) return st;
    const es_view *acc = v[0];
    for (int t = 1; t < n && !st; t++) {
        const es_view *out = o;
        if (t + 1 < n) { /* the next intermediate, zeroed: es_pair adds into it */
            es_view *tw = &tv[t & 1];
            int64_t s = 1;
            for (int l = ES_MAXL - 1; l >= 0; l--) {
                tw->st[l] = (tm[t] >> l & 1) ? s : 0;
                if (tm[t] >> l & 1) s *= r->ext[l];
            }
            if (!r->dry) memset(tw->data, 0, (size_t)s * sizeof(float));
            out = tw;
        }
        st = es_pair(r, acc, v[t], out);
        acc = out;
    }
    r->used = mark;
    return st;
}

/* ---------------------------------------------------------------- the kernels */

static int any_empty(const gc_kctx *k) {
    for (int i = 0; i < k->n_in; i++)
        if (gc_numel(k->in[i]) == 0) return 1;
    return 0;
}

/* Y (zeroed) += the contraction of every input; dry: the workspace it needs. */
static gcam_status es_fw_run(gc_kctx *k, int dry, size_t *need) {
    es_geom g;
    gcam_status st = es_setup(k, &g);
    if (st) return st;
    es_view vs[GC_MAX_IO], y;
    const es_view *vp[GC_MAX_IO];
    for (int i = 0; i < k->n_in; i++) {
        vs[i].data = k->in[i]->data;
        input_strides(k, i, vs[i].st);
        vp[i] = &vs[i];
    }
    y.data = dry ? NULL : k->out[0]->data;
    memcpy(y.st, g.yst, sizeof y.st);
    es_run r = {.ext = g.ext, .nt = gc_kthreads(k), .dry = dry, .base = k->scratch, .size = k->scratch_size, .k = k};
    if (!dry) memset(y.data, 0, (size_t)gc_shape_numel(&g.yshape) * sizeof(float));
    if (gc_shape_numel(&g.yshape) == 0 || any_empty(k)) return GCAM_OK;
    st = es_chain(&r, vp, k->n_in, &y);
    *need = r.peak;
    return st;
}

static size_t es_scratch(const gc_kctx *k) {
    size_t need = 0;
    gc_err e = {0};
    gc_kctx c = *k;
    c.err = &e; /* a failure here shows again, with its message, when the kernel runs */
    return es_fw_run(&c, 1, &need) ? SIZE_MAX : need;
}

static gcam_status es_forward(gc_kctx *k) {
    size_t need = 0;
    return es_fw_run(k, 0, &need);
}

/* dX_i += the contraction of dY with every other input, into X_i's view; dry: the workspace for
 * every input's gradient (whichever are wanted, and whether dY exists, is not always known then). */
static gcam_status es_bw_run(gc_kctx *k, int dry, size_t *need) {
    es_geom g;
    gcam_status st = es_setup(k, &g);
    if (st || (!dry && !k->gout[0]) || any_empty(k) || gc_shape_numel(&g.yshape) == 0) return st;
    es_view vs[GC_MAX_IO], dy, dx;
    const es_view *vp[GC_MAX_IO];
    dy.data = dry ? NULL : (float *)k->gout[0]->data;
    memcpy(dy.st, g.yst, sizeof dy.st);
    for (int i = 0; i < k->n_in; i++) {
        vs[i].data = k->in[i]->data;
        input_strides(k, i, vs[i].st);
    }
    es_run r = {.ext = g.ext, .nt = gc_kthreads(k), .dry = dry, .base = k->scratch, .size = k->scratch_size, .k = k};
    for (int i = 0; i < k->n_in && !st; i++) {
        if (!dry && !k->gin[i]) continue;
        int n = 0;
        vp[n++] = &dy;
        for (int j = 0; j < k->n_in; j++)
            if (j != i) vp[n++] = &vs[j];
        dx.data = dry ? NULL : k->gin[i]->data;
        memcpy(dx.st, vs[i].st, sizeof dx.st);
        st = es_chain(&r, vp, n, &dx);
    }
    *need = r.peak;
    return st;
}

static size_t es_bscratch(const gc_kctx *k) {
    size_t need = 0;
    gc_err e = {0};
    gc_kctx c = *k;
    c.err = &e;
    return es_bw_run(&c, 1, &need) ? SIZE_MAX : need;
}

static gcam_status es_backward(gc_kctx *k) {
    size_t need = 0;
    return es_bw_run(k, 0, &need);
}

const gc_opdef gc_def_Einsum = {.name = "Einsum", .min_opset = 12, .parse = es_parse, .infer = es_infer,
                                .scratch_bytes = es_scratch, .forward = es_forward, .bscratch_bytes = es_bscratch,
                                .backward = es_backward, .bw_in = GC_ALL_INPUTS, .diff_in = GC_ALL_INPUTS};

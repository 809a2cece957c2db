/* Recurrent layers: LSTM, GRU and RNN (ONNX opset 7 on; layout from 14), forward and backward.
 *
 * One direction at a time. X W^T for every step is one GEMM into the gate buffer A (T, B, G*H)
 * (G gates: LSTM i o f c, GRU z r h, RNN one), biases added; each step then adds H_prev R^T, one
 * GEMM over the batch, and applies the cell. A ends up holding every gate's pre-activation (after
 * peepholes, before clip), and the states of every step are kept beside it: that tape, one per
 * direction, is the aux buffer when a backward is planned (the forward scratch otherwise), so the
 * backward re-derives each gate from it instead of re-running the recurrence. Memory O(T B G H).
 *
 * sequence_lens as ONNX Runtime reads it: batch entry b runs steps 0..len_b-1 (the reverse
 * direction from time len_b-1 down to 0), Y is zero from time len_b on, Y_h and Y_c hold the state
 * after its last valid step (zero when len_b = 0). States are kept per step s (processing order);
 * A per time t. Past its length an entry's state is carried over unchanged, so step T's state is
 * its final one, and in backward its gradient passes through those steps untouched.
 *
 * Gradients: to X, W, R, B, initial_h, initial_c and P, whichever the plan asks for (W, R, B are
 * weights in exported models and get none then; they are plain inputs in ONNX's node tests). */
#include "kutil.h"

#include <limits.h>
#include <math.h>

enum { CELL_RNN, CELL_GRU, CELL_LSTM };

typedef enum act_kind {
    A_RELU, A_TANH, A_SIGMOID, A_AFFINE, A_LEAKYRELU, A_THRESHRELU, A_SCALEDTANH, A_HARDSIGMOID,
    A_ELU, A_SOFTSIGN, A_SOFTPLUS
} act_kind;

typedef struct rnn_act {
    act_kind kind;
    float alpha, beta;
} rnn_act;

typedef struct rnn_params {
    int cell, ngates, nact;   /* per direction: gates (1, 3, 4) and activations (1, 2, 3) */
    int ndir, reverse0;       /* directions; direction 0 runs backwards in time ("reverse") */
    int layout, lbr, input_forget;
    int64_t hidden;           /* hidden_size, or -1 when absent (then R's shape says) */
    float clip;               /* INFINITY when absent */
    rnn_act act[2][3];        /* [direction][f, g, h] */
} rnn_params;

/* ---------------------------------------------------------------- activations */

static const struct {
    const char *name;
    act_kind kind;
    int n_ab;                 /* parameters it consumes from activation_alpha/beta: 0, 1 (alpha), 2 */
    float alpha, beta;        /* defaults, as the ONNX ops of the same name */
} act_table[] = {
    {"relu", A_RELU, 0, 0, 0},           {"tanh", A_TANH, 0, 0, 0},
    {"sigmoid", A_SIGMOID, 0, 0, 0},     {"affine", A_AFFINE, 2, 1.0f, 0.0f},
    {"leakyrelu", A_LEAKYRELU, 1, 0.01f, 0}, {"thresholdedrelu", A_THRESHRELU, 1, 1.0f, 0},
    {"scaledtanh", A_SCALEDTANH, 2, 1.0f, 1.0f}, {"hardsigmoid", A_HARDSIGMOID, 2, 0.2f, 0.5f},
    {"elu", A_ELU, 1, 1.0f, 0},          {"softsign", A_SOFTSIGN, 0, 0, 0},
    {"softplus", A_SOFTPLUS, 0, 0, 0},
};

static float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

static float act_fw(const rnn_act *a, float x) {
    switch (a->kind) {
    case A_RELU: return x > 0.0f ? x : 0.0f;
    case A_TANH: return tanhf(x);
    case A_SIGMOID: return sigm(x);
    case A_AFFINE: return a->alpha * x + a->beta;
    case A_LEAKYRELU: return x >= 0.0f ? x : a->alpha * x;
    case A_THRESHRELU: return x >= a->alpha ? x : 0.0f;
    case A_SCALEDTANH: return a->alpha * tanhf(a->beta * x);
    case A_HARDSIGMOID: return fminf(fmaxf(a->alpha * x + a->beta, 0.0f), 1.0f);
    case A_ELU: return x >= 0.0f ? x : a->alpha * (expf(x) - 1.0f);
    case A_SOFTSIGN: return x / (1.0f + fabsf(x));
    case A_SOFTPLUS: return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x));
    }
    return x;
}

/* d act / dx at x (the one-sided value where the function has a kink, as Relu's backward). */
static float act_dx(const rnn_act *a, float x) {
    switch (a->kind) {
    case A_RELU: return x > 0.0f ? 1.0f : 0.0f;
    case A_TANH: { float t = tanhf(x); return 1.0f - t * t; }
    case A_SIGMOID: { float s = sigm(x); return s * (1.0f - s); }
    case A_AFFINE: return a->alpha;
    case A_LEAKYRELU: return x >= 0.0f ? 1.0f : a->alpha;
    case A_THRESHRELU: return x >= a->alpha ? 1.0f : 0.0f;
    case A_SCALEDTANH: { float t = tanhf(a->beta * x); return a->alpha * a->beta * (1.0f - t * t); }
    case A_HARDSIGMOID: { float v = a->alpha * x + a->beta; return v > 0.0f && v < 1.0f ? a->alpha : 0.0f; }
    case A_ELU: return x >= 0.0f ? 1.0f : a->alpha * expf(x);
    case A_SOFTSIGN: { float d = 1.0f + fabsf(x); return 1.0f / (d * d); }
    case A_SOFTPLUS: return sigm(x);
    }
    return 1.0f;
}

/* clip applies to every activation's input; outside [-c, c] the gate is flat. */
static inline float gate(const rnn_act *a, float x, float c) { return act_fw(a, x < -c ? -c : x > c ? c : x); }
static inline float gate_dx(const rnn_act *a, float x, float c) { return fabsf(x) <= c ? act_dx(a, x) : 0.0f; }

/* ---------------------------------------------------------------- attributes */

static int name_is(const char *s, const char *lower) {
    for (; *s && *lower; s++, lower++)
        if ((*s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' : *s) != *lower) return 0;
    return !*s && !*lower;
}

/* activations / activation_alpha / activation_beta: one name per activation and direction (or one
 * set shared by both directions); alphas and betas are consumed in order by those that take them. */
static gcam_status parse_acts(gc_node *n, gc_err *err, rnn_params *p) {
    static const act_kind defaults[3][3] = {{A_TANH}, {A_SIGMOID, A_TANH}, {A_SIGMOID, A_TANH, A_TANH}};
    for (int d = 0; d < 2; d++)
        for (int j = 0; j < p->nact; j++) p->act[d][j] = (rnn_act){defaults[p->cell][j], 0, 0};
    const gc_attr *an = gc_attr_find(n, "activations");
    if (!an) return GCAM_OK;
    if (an->type != GC_ATTR_STRINGS) return gc_node_fail(n, err, GCAM_E_FORMAT, "activations must be strings");
    if (an->n != (size_t)p->nact && an->n != (size_t)(p->nact * p->ndir))
        return gc_node_fail(n, err, GCAM_E_FORMAT, "%zu activations given, %d expected", an->n, p->nact * p->ndir);
    const float *al = NULL, *be = NULL;
    size_t nal = gc_attr_floats(n, "activation_alpha", &al), nbe = gc_attr_floats(n, "activation_beta", &be), ia = 0, ib = 0;
    for (size_t j = 0; j < an->n; j++) {
        size_t e = 0;
        while (e < GC_ARRAY_LEN(act_table) && !name_is(an->strings[j], act_table[e].name)) e++;
        if (e == GC_ARRAY_LEN(act_table))
            return gc_node_fail(n, err, GCAM_E_UNSUPPORTED, "activation '%s' not supported", an->strings[j]);
        rnn_act a = {act_table[e].kind, act_table[e].alpha, act_table[e].beta};
        if (act_table[e].n_ab >= 1 && ia < nal) a.alpha = al[ia++];
        if (act_table[e].n_ab >= 2 && ib < nbe) a.beta = be[ib++];
        if (!isfinite(a.alpha) || !isfinite(a.beta))
            return gc_node_fail(n, err, GCAM_E_FORMAT, "activation parameters must be finite");
        p->act[j / (size_t)p->nact][j % (size_t)p->nact] = a;
        if (an->n == (size_t)p->nact) p->act[1][j] = a;
    }
    return GCAM_OK;
}

static gcam_status rnn_parse(gc_node *n, gc_err *err, int cell) {
    rnn_params p = {.cell = cell, .ngates = cell == CELL_LSTM ? 4 : cell == CELL_GRU ? 3 : 1,
                    .nact = cell + 1, .clip = INFINITY};
    const char *dir = gc_attr_str(n, "direction", "forward");
    if (strcmp(dir, "forward") == 0) p.ndir = 1;
    else if (strcmp(dir, "reverse") == 0) p.ndir = 1, p.reverse0 = 1;
    else if (strcmp(dir, "bidirectional") == 0) p.ndir = 2;
    else return gc_node_fail(n, err, GCAM_E_FORMAT, "direction '%s' is not forward, reverse or bidirectional", dir);
    int64_t layout = gc_attr_int(n, "layout", 0), lbr = gc_attr_int(n, "linear_before_reset", 0);
    int64_t inf = gc_attr_int(n, "input_forget", 0);
    if (layout != 0 && layout != 1) return gc_node_fail(n, err, GCAM_E_FORMAT, "layout must be 0 or 1");
    if (lbr != 0 && lbr != 1) return gc_node_fail(n, err, GCAM_E_FORMAT, "linear_before_reset must be 0 or 1");
    if (inf != 0 && inf != 1) return gc_node_fail(n, err, GCAM_E_FORMAT, "input_forget must be 0 or 1");
    p.layout = (int)layout;
    p.lbr = cell == CELL_GRU && lbr;
    p.input_forget = cell == CELL_LSTM && inf;
    p.hidden = gc_attr_int(n, "hidden_size", -1);
    if (gc_attr_find(n, "hidden_size") && p.hidden < 1) return gc_node_fail(n, err, GCAM_E_FORMAT, "hidden_size must be >= 1");
    if (gc_attr_find(n, "clip")) {
        p.clip = gc_attr_float(n, "clip", INFINITY);
        if (!(p.clip > 0.0f)) return gc_node_fail(n, err, GCAM_E_FORMAT, "clip must be > 0");
    }
    gcam_status st = parse_acts(n, err, &p);
    if (st) return st;
    rnn_params *q = malloc(sizeof *q);
    if (!q) return gc_node_fail(n, err, GCAM_E_NOMEM, "out of memory");
    *q = p;
    free(n->params);
    n->params = q;
    return GCAM_OK;
}
static gcam_status lstm_parse(gc_node *n, gc_err *err) { return rnn_parse(n, err, CELL_LSTM); }
static gcam_status gru_parse(gc_node *n, gc_err *err) { return rnn_parse(n, err, CELL_GRU); }
static gcam_status rnn1_parse(gc_node *n, gc_err *err) { return rnn_parse(n, err, CELL_RNN); }

/* ---------------------------------------------------------------- shapes */

enum { IN_X, IN_W, IN_R, IN_B, IN_SEQ, IN_H0, IN_C0, IN_P };

typedef struct rnn_geom {
    int64_t T, B, I, H, D, G;  /* steps, batch, input size, hidden size, directions, gates */
    int64_t GH, BH;            /* G*H; B*H */
    int64_t tape;              /* floats of one direction's tape: A (T,B,GH), Hs (T+1,B,H) at offH,
                                  LSTM Cs (T+1,B,H) at offC, GRU lbr's H_prev Rh^T + Rbh (T,B,H) at offL */
    int64_t offH, offC, offL;
    size_t aux_b, scr_b, bscr_b;
} rnn_geom;

static const gc_tensor *opt_in(const gc_kctx *k, int i) { return i < k->n_in ? k->in[i] : NULL; }
static gc_tensor *opt_out(const gc_kctx *k, int j) { return j < k->n_out ? k->out[j] : NULL; }

static int dims_are(const gc_tensor *t, int nd, int64_t d0, int64_t d1, int64_t d2) {
    const int64_t want[3] = {d0, d1, d2};
    if (t->shape.ndim != nd) return 0;
    for (int i = 0; i < nd; i++)
        if (t->shape.d[i] != want[i]) return 0;
    return 1;
}

/* a*b*c... in int64 and as bytes of floats, or an error. */
static int mul3(int64_t *r, int64_t a, int64_t b, int64_t c) { return gc_mul_i64(r, a, b) || gc_mul_i64(r, *r, c); }

static gcam_status rnn_sizes(gc_kctx *k, rnn_geom *g) {
    const rnn_params *p = k->params;
    int64_t tb, tbg, tbh, t1bh, bg, bh6, aux, scr, bscr;
    if (gc_mul_i64(&g->GH, g->G, g->H) || gc_mul_i64(&g->BH, g->B, g->H) || gc_mul_i64(&tb, g->T, g->B) ||
        gc_mul_i64(&tbg, tb, g->GH) || gc_mul_i64(&tbh, tb, g->H) || mul3(&t1bh, g->T + 1, g->B, g->H) ||
        gc_mul_i64(&bg, g->B, g->GH) || gc_mul_i64(&bh6, g->BH, 6))
        return gc_kfail(k, GCAM_E_LIMIT, "sizes overflow");
    if (tb > INT_MAX || g->GH > INT_MAX || g->I > INT_MAX || bg > INT_MAX)
        return gc_kfail(k, GCAM_E_LIMIT, "sizes exceed the GEMM limits");
    /* tape: A (T,B,GH) | Hs (T+1,B,H) | LSTM: Cs (T+1,B,H) | GRU lbr: L (T,B,H) */
    g->offH = tbg;
    if (gc_add_i64(&g->offC, g->offH, t1bh)) return gc_kfail(k, GCAM_E_LIMIT, "sizes overflow");
    g->offL = g->offC;
    g->tape = g->offC;
    if ((p->cell == CELL_LSTM && gc_add_i64(&g->tape, g->tape, t1bh)) || (p->lbr && gc_add_i64(&g->tape, g->tape, tbh)) ||
        gc_mul_i64(&aux, g->tape, g->D) ||
        gc_add_i64(&scr, g->tape, bg) || gc_add_i64(&scr, scr, g->BH) ||     /* forward: tape, tmp (B,GH), rh (B,H) */
        gc_add_i64(&bscr, tbg, bg) || gc_add_i64(&bscr, bscr, bh6) ||       /* backward: dA, dAs, 6 (B,H) */
        gc_mul_sz(&g->aux_b, (size_t)aux, sizeof(float)) || gc_mul_sz(&g->scr_b, (size_t)scr, sizeof(float)) ||
        gc_mul_sz(&g->bscr_b, (size_t)bscr, sizeof(float)))
        return gc_kfail(k, GCAM_E_LIMIT, "buffer sizes overflow");
    return GCAM_OK;
}

/* Checks every input against X and R (hidden size from R, as hidden_size must agree). */
static gcam_status rnn_setup(gc_kctx *k, rnn_geom *g) {
    const rnn_params *p = k->params;
    memset(g, 0, sizeof *g);
    if (!p) return gc_kfail(k, GCAM_E_INTERNAL, "attributes not parsed");
    const gc_tensor *x = opt_in(k, IN_X), *w = opt_in(k, IN_W), *r = opt_in(k, IN_R);
    if (!x || !w || !r) return gc_kfail(k, GCAM_E_FORMAT, "inputs X, W and R are required");
    for (int i = 0; i <= IN_P; i++) {
        const gc_tensor *t = opt_in(k, i);
        if (t && t->dtype != (i == IN_SEQ ? GC_I64 : GC_F32))
            return gc_kfail(k, GCAM_E_UNSUPPORTED, "input %d: only float32 (sequence_lens: integers) supported", i);
        for (int j = 0; t && j < t->shape.ndim; j++)
            if (t->shape.d[j] < 1) return gc_kfail(k, GCAM_E_SHAPE, "input %d has an unknown or empty dim", i);
    }
    if (x->shape.ndim != 3 || r->shape.ndim != 3)
        return gc_kfail(k, GCAM_E_SHAPE, "X and R must be 3-D (got ranks %d and %d)", x->shape.ndim, r->shape.ndim);
    g->T = x->shape.d[p->layout ? 1 : 0];
    g->B = x->shape.d[p->layout ? 0 : 1];
    g->I = x->shape.d[2];
    g->H = r->shape.d[2];
    g->D = p->ndir;
    g->G = p->ngates;
    if (p->hidden >= 0 && p->hidden != g->H)
        return gc_kfail(k, GCAM_E_SHAPE, "hidden_size %lld but R is (.., .., %lld)", (long long)p->hidden, (long long)g->H);
    gcam_status st = rnn_sizes(k, g);
    if (st) return st;
    const gc_tensor *b = opt_in(k, IN_B), *sq = opt_in(k, IN_SEQ), *h0 = opt_in(k, IN_H0), *c0 = opt_in(k, IN_C0),
                    *pp = opt_in(k, IN_P);
    const int64_t s0 = p->layout ? g->B : g->D, s1 = p->layout ? g->D : g->B; /* initial states' dims */
    if (!dims_are(w, 3, g->D, g->GH, g->I)) return gc_kfail(k, GCAM_E_SHAPE, "W must be (%lld, %lld, %lld)", (long long)g->D, (long long)g->GH, (long long)g->I);
    if (!dims_are(r, 3, g->D, g->GH, g->H)) return gc_kfail(k, GCAM_E_SHAPE, "R must be (%lld, %lld, %lld)", (long long)g->D, (long long)g->GH, (long long)g->H);
    if (b && !dims_are(b, 2, g->D, 2 * g->GH, 0)) return gc_kfail(k, GCAM_E_SHAPE, "B must be (%lld, %lld)", (long long)g->D, (long long)(2 * g->GH));
    if (sq && !dims_are(sq, 1, g->B, 0, 0)) return gc_kfail(k, GCAM_E_SHAPE, "sequence_lens must be (%lld)", (long long)g->B);
    if (h0 && !dims_are(h0, 3, s0, s1, g->H)) return gc_kfail(k, GCAM_E_SHAPE, "initial_h must be (%lld, %lld, %lld)", (long long)s0, (long long)s1, (long long)g->H);
    if (c0 && !dims_are(c0, 3, s0, s1, g->H)) return gc_kfail(k, GCAM_E_SHAPE, "initial_c must be (%lld, %lld, %lld)", (long long)s0, (long long)s1, (long long)g->H);
    if (pp && !dims_are(pp, 2, g->D, 3 * g->H, 0)) return gc_kfail(k, GCAM_E_SHAPE, "P must be (%lld, %lld)", (long long)g->D, (long long)(3 * g->H));
    return GCAM_OK;
}

/* sequence_lens values, when known, within [0, T]. */
static gcam_status check_lens(gc_kctx *k, const rnn_geom *g) {
    const gc_tensor *sq = opt_in(k, IN_SEQ);
    if (!sq || !sq->data) return GCAM_OK;
    const int64_t *l = sq->data;
    for (int64_t b = 0; b < g->B; b++)
        if (l[b] < 0 || l[b] > g->T)
            return gc_kfail(k, GCAM_E_SHAPE, "sequence_lens[%lld] = %lld is outside [0, %lld]", (long long)b,
                            (long long)l[b], (long long)g->T);
    return GCAM_OK;
}

static gcam_status rnn_infer(gc_kctx *k) {
    const rnn_params *p = k->params;
    rnn_geom g;
    gcam_status st = rnn_setup(k, &g);
    if (!st) st = check_lens(k, &g);
    if (st) return st;
    gc_tensor *y = opt_out(k, 0);
    if (y) {
        y->dtype = GC_F32;
        y->shape = p->layout ? (gc_shape){.ndim = 4, .d = {g.B, g.T, g.D, g.H}}
                             : (gc_shape){.ndim = 4, .d = {g.T, g.D, g.B, g.H}};
    }
    for (int j = 1; j < (p->cell == CELL_LSTM ? 3 : 2); j++) {
        gc_tensor *s = opt_out(k, j);
        if (!s) continue;
        s->dtype = GC_F32;
        s->shape = p->layout ? (gc_shape){.ndim = 3, .d = {g.B, g.D, g.H}} : (gc_shape){.ndim = 3, .d = {g.D, g.B, g.H}};
    }
    return GCAM_OK;
}

static size_t rnn_aux(const gc_kctx *k) {
    rnn_geom g;
    return rnn_setup((gc_kctx *)k, &g) ? 0 : g.aux_b;
}
/* Sized for a forward without aux (a tape of its own): aux is not assigned when this is asked. */
static size_t rnn_scratch(const gc_kctx *k) {
    rnn_geom g;
    return rnn_setup((gc_kctx *)k, &g) ? 0 : g.scr_b;
}
static size_t rnn_bscratch(const gc_kctx *k) {
    rnn_geom g;
    return rnn_setup((gc_kctx *)k, &g) ? 0 : g.bscr_b;
}

/* ---------------------------------------------------------------- one direction */

typedef struct rnn_run {
    const rnn_params *p;
    const rnn_geom *g;
    int d, rev, nt;
    const rnn_act *act;              /* this direction's f, g, h */
    float clip;
    const float *W, *R, *P, *bias;   /* this direction's (GH, I), (GH, H), (3H) or NULL, (2GH) or NULL */
    const int64_t *lens;             /* (B), or NULL: every entry runs T steps */
    float *A, *Hs, *Cs, *L;          /* the tape (Cs: LSTM only; L: GRU lbr only) */
} rnn_run;

static void run_init(rnn_run *r, gc_kctx *k, const rnn_geom *g, int d, float *tape) {
    const rnn_params *p = k->params;
    const gc_tensor *b = opt_in(k, IN_B), *pp = opt_in(k, IN_P), *sq = opt_in(k, IN_SEQ);
    *r = (rnn_run){.p = p, .g = g, .d = d, .rev = d == 1 || p->reverse0, .nt = gc_kthreads(k), .act = p->act[d],
                   .clip = p->clip};
    r->W = (const float *)k->in[IN_W]->data + d * g->GH * g->I;
    r->R = (const float *)k->in[IN_R]->data + d * g->GH * g->H;
    r->P = pp && p->cell == CELL_LSTM ? (const float *)pp->data + d * 3 * g->H : NULL;
    r->bias = b && b->data ? (const float *)b->data + d * 2 * g->GH : NULL;
    r->lens = sq ? sq->data : NULL;
    r->A = tape;
    r->Hs = tape + g->offH;
    r->Cs = p->cell == CELL_LSTM ? tape + g->offC : NULL;
    r->L = p->lbr ? tape + g->offL : NULL;
}

static inline int64_t len_of(const rnn_run *r, int64_t b) { return r->lens ? r->lens[b] : r->g->T; }
/* Time of step s for entry b, whose length is len (> s). */
static inline int64_t time_of(const rnn_run *r, int64_t len, int64_t s) { return r->rev ? len - 1 - s : s; }
/* Offsets in elements of row (d, b) of an initial/final state and of row (t, d, b) of Y. */
static inline int64_t state_off(const rnn_run *r, int64_t b) {
    const rnn_geom *g = r->g;
    return (r->p->layout ? b * g->D + r->d : r->d * g->B + b) * g->H;
}
static inline int64_t y_off(const rnn_run *r, int64_t t, int64_t b) {
    const rnn_geom *g = r->g;
    return (r->p->layout ? (b * g->T + t) * g->D + r->d : (t * g->D + r->d) * g->B + b) * g->H;
}

/* A (T, B, GH) = X W^T + Wb + Rb (GRU lbr: Rb of z and r only; Rbh is added inside r's product). */
static void fill_proj(const rnn_run *r, const float *x) {
    const rnn_geom *g = r->g;
    const int64_t T = g->T, B = g->B, I = g->I, GH = g->GH;
    if (!r->p->layout) gc_sgemm(r->nt, 0, 1, T * B, GH, I, 1.0f, x, I, r->W, I, 0.0f, r->A, GH);
    else /* X (B, T, I): each entry's rows land in A with stride B rows */
        for (int64_t b = 0; b < B; b++)
            gc_sgemm(r->nt, 0, 1, T, GH, I, 1.0f, x + b * T * I, I, r->W, I, 0.0f, r->A + b * GH, B * GH);
    if (!r->bias) return;
    const float *wb = r->bias, *rb = r->bias + GH;
    const int64_t nrb = r->p->lbr ? 2 * g->H : GH;
    for (int64_t row = 0; row < T * B; row++) {
        float *a = r->A + row * GH;
        for (int64_t j = 0; j < nrb; j++) a[j] += wb[j] + rb[j];
        for (int64_t j = nrb; j < GH; j++) a[j] += wb[j];
    }
}

/* Hs[0] (and Cs[0]) from initial_h / initial_c, zero when absent. */
static void load_states(const rnn_run *r, gc_kctx *k) {
    const gc_tensor *h0 = opt_in(k, IN_H0), *c0 = opt_in(k, IN_C0);
    const int64_t H = r->g->H;
    for (int64_t b = 0; b < r->g->B; b++) {
        if (h0) memcpy(r->Hs + b * H, (const float *)h0->data + state_off(r, b), (size_t)H * sizeof(float));
        else memset(r->Hs + b * H, 0, (size_t)H * sizeof(float));
        if (!r->Cs) continue;
        if (c0) memcpy(r->Cs + b * H, (const float *)c0->data + state_off(r, b), (size_t)H * sizeof(float));
        else memset(r->Cs + b * H, 0, (size_t)H * sizeof(float));
    }
}

/* Entry b is past its length at step s: its state carries over. */
static void carry(const rnn_run *r, int64_t s, int64_t b) {
    const int64_t BH = r->g->BH, H = r->g->H;
    memcpy(r->Hs + (s + 1) * BH + b * H, r->Hs + s * BH + b * H, (size_t)H * sizeof(float));
    if (r->Cs) memcpy(r->Cs + (s + 1) * BH + b * H, r->Cs + s * BH + b * H, (size_t)H * sizeof(float));
}

/* ---------------------------------------------------------------- cells: forward */

/* One LSTM row: a (4H) holds i o f c pre-activations without peepholes; adds them, writes C, H. */
static void lstm_cell(const rnn_run *r, float *a, const float *cp, float *cn, float *hn) {
    const int64_t H = r->g->H;
    const rnn_act *fa = &r->act[0], *ga = &r->act[1], *ha = &r->act[2];
    const float c = r->clip, *P = r->P;
    float *ai = a, *ao = a + H, *af = a + 2 * H, *ac = a + 3 * H;
    for (int64_t j = 0; j < H; j++) {
        if (P) {
            ai[j] += P[j] * cp[j];
            af[j] += P[2 * H + j] * cp[j];
        }
        const float i = gate(fa, ai[j], c), f = r->p->input_forget ? 1.0f - i : gate(fa, af[j], c);
        const float C = f * cp[j] + i * gate(ga, ac[j], c);
        if (P) ao[j] += P[H + j] * C;
        cn[j] = C;
        hn[j] = gate(fa, ao[j], c) * gate(ha, C, c);
    }
}

/* tmp (B, GH): forward scratch for H_prev R^T; rh (B, H): GRU's r * H_prev. */
static void lstm_rnn_forward(const rnn_run *r, float *tmp) {
    const rnn_geom *g = r->g;
    const int64_t B = g->B, H = g->H, GH = g->GH, BH = g->BH;
    for (int64_t s = 0; s < g->T; s++) {
        const float *hp = r->Hs + s * BH;
        gc_sgemm(r->nt, 0, 1, B, GH, H, 1.0f, hp, H, r->R, H, 0.0f, tmp, GH); /* (B, GH) = H_prev R^T */
        for (int64_t b = 0; b < B; b++) {
            const int64_t len = len_of(r, b);
            if (s >= len) { carry(r, s, b); continue; }
            float *a = r->A + (time_of(r, len, s) * B + b) * GH, *hn = r->Hs + (s + 1) * BH + b * H;
            for (int64_t j = 0; j < GH; j++) a[j] += tmp[b * GH + j];
            if (r->Cs) lstm_cell(r, a, r->Cs + s * BH + b * H, r->Cs + (s + 1) * BH + b * H, hn);
            else
                for (int64_t j = 0; j < H; j++) hn[j] = gate(&r->act[0], a[j], r->clip);
        }
    }
}

/* GRU: z and r first (and r * H_prev, whose product with Rh^T comes next unless lbr), then h. */
static void gru_forward(const rnn_run *r, float *tmp, float *rh) {
    const rnn_geom *g = r->g;
    const int64_t B = g->B, H = g->H, GH = g->GH, BH = g->BH;
    const rnn_act *fa = &r->act[0], *ga = &r->act[1];
    const float c = r->clip, *rbh = r->bias ? r->bias + GH + 2 * H : NULL;
    for (int64_t s = 0; s < g->T; s++) {
        const float *hp = r->Hs + s * BH;
        /* (B, 3H) = H_prev R^T, or its z and r columns only */
        gc_sgemm(r->nt, 0, 1, B, r->p->lbr ? GH : 2 * H, H, 1.0f, hp, H, r->R, H, 0.0f, tmp, GH);
        for (int64_t b = 0; b < B; b++) {
            const int64_t len = len_of(r, b);
            if (s >= len) { memset(rh + b * H, 0, (size_t)H * sizeof(float)); continue; }
            const int64_t t = time_of(r, len, s);
            float *a = r->A + (t * B + b) * GH;
            const float *q = tmp + b * GH, *hpb = hp + b * H;
            for (int64_t j = 0; j < 2 * H; j++) a[j] += q[j];
            for (int64_t j = 0; j < H; j++) {
                const float rg = gate(fa, a[H + j], c);
                if (!r->p->lbr) { rh[b * H + j] = rg * hpb[j]; continue; }
                float *l = r->L + (t * B + b) * H;
                l[j] = q[2 * H + j] + (rbh ? rbh[j] : 0.0f);
                a[2 * H + j] += rg * l[j];
            }
        }
        if (!r->p->lbr) /* tmp[:, 2H:] (B, H) = (r * H_prev) Rh^T */
            gc_sgemm(r->nt, 0, 1, B, H, H, 1.0f, rh, H, r->R + 2 * H * H, H, 0.0f, tmp + 2 * H, GH);
        for (int64_t b = 0; b < B; b++) {
            const int64_t len = len_of(r, b);
            if (s >= len) { carry(r, s, b); continue; }
            float *a = r->A + (time_of(r, len, s) * B + b) * GH, *hn = r->Hs + (s + 1) * BH + b * H;
            const float *hpb = hp + b * H;
            for (int64_t j = 0; j < H; j++) {
                if (!r->p->lbr) a[2 * H + j] += tmp[b * GH + 2 * H + j];
                const float z = gate(fa, a[j], c), hh = gate(ga, a[2 * H + j], c);
                hn[j] = (1.0f - z) * hh + z * hpb[j];
            }
        }
    }
}

/* Y, Y_h, Y_c of this direction from the tape. */
static void write_outputs(const rnn_run *r, gc_kctx *k) {
    const rnn_geom *g = r->g;
    const int64_t B = g->B, H = g->H, BH = g->BH, T = g->T;
    const size_t hb = (size_t)H * sizeof(float);
    gc_tensor *y = opt_out(k, 0), *yh = opt_out(k, 1), *yc = r->Cs ? opt_out(k, 2) : NULL;
    for (int64_t b = 0; b < B; b++) {
        const int64_t len = len_of(r, b);
        for (int64_t t = 0; y && t < T; t++) {
            float *dst = (float *)y->data + y_off(r, t, b);
            if (t < len) memcpy(dst, r->Hs + ((r->rev ? len - 1 - t : t) + 1) * BH + b * H, hb);
            else memset(dst, 0, hb);
        }
        const gc_tensor *fin[2] = {yh, yc};
        const float *src[2] = {r->Hs + T * BH + b * H, r->Cs ? r->Cs + T * BH + b * H : NULL};
        for (int i = 0; i < 2; i++) {
            if (!fin[i]) continue;
            float *dst = (float *)fin[i]->data + state_off(r, b);
            if (len > 0) memcpy(dst, src[i], hb);
            else memset(dst, 0, hb);
        }
    }
}

static gcam_status rnn_forward(gc_kctx *k) {
    const rnn_params *p = k->params;
    rnn_geom g;
    gcam_status st = rnn_setup(k, &g);
    if (!st) st = check_lens(k, &g);
    if (st) return st;
    if (!k->scratch || k->scratch_size < g.scr_b) return gc_kfail(k, GCAM_E_INTERNAL, "scratch too small");
    float *scr = k->scratch, *tmp = scr + g.tape, *rh = tmp + g.B * g.GH;
    for (int d = 0; d < g.D; d++) {
        rnn_run r;
        run_init(&r, k, &g, d, k->aux ? (float *)k->aux + d * g.tape : scr);
        fill_proj(&r, k->in[IN_X]->data);
        load_states(&r, k);
        if (p->cell == CELL_GRU) gru_forward(&r, tmp, rh);
        else lstm_rnn_forward(&r, tmp);
        write_outputs(&r, k);
    }
    return GCAM_OK;
}

/* ---------------------------------------------------------------- cells: backward */

/* The backward's buffers for one direction (bscratch). */
typedef struct rnn_bw {
    float *dA;        /* (T, B, GH): gradients of the pre-activations, by time (zero where inactive) */
    float *dAs;       /* (B, GH): this step's */
    float *dH, *dC;   /* (B, H): gradients of the state after this step */
    float *nH;        /* (B, H): the state before it: becomes dH */
    float *dRH, *rh, *dL; /* (B, H): GRU's */
    const float *gy;  /* Y's gradient or NULL */
    float *gR, *gP, *gB; /* this direction's slices of the wanted gradients, or NULL */
} rnn_bw;

/* Entry b at step s: dH += dY at its time; returns the time, or -1 (past its length: dAs row zero,
 * the state gradient passes through). */
static int64_t bw_row(const rnn_run *r, rnn_bw *w, int64_t s, int64_t b) {
    const int64_t H = r->g->H, GH = r->g->GH, len = len_of(r, b);
    if (s >= len) {
        memset(w->dAs + b * GH, 0, (size_t)GH * sizeof(float));
        memcpy(w->nH + b * H, w->dH + b * H, (size_t)H * sizeof(float));
        return -1;
    }
    const int64_t t = time_of(r, len, s);
    if (w->gy) {
        const float *gy = w->gy + y_off(r, t, b);
        for (int64_t j = 0; j < H; j++) w->dH[b * H + j] += gy[j];
    }
    return t;
}

/* One LSTM row backward: dh, dc (in: after the step; dc out: before it), da (4H) out. */
static void lstm_cell_bw(const rnn_run *r, const float *a, const float *cp, const float *cn, const float *dh,
                         float *dc, float *da, float *gP) {
    const int64_t H = r->g->H;
    const rnn_act *fa = &r->act[0], *ga = &r->act[1], *ha = &r->act[2];
    const float c = r->clip, *P = r->P;
    const float *ai = a, *ao = a + H, *af = a + 2 * H, *ac = a + 3 * H;
    for (int64_t j = 0; j < H; j++) {
        const float i = gate(fa, ai[j], c), f = r->p->input_forget ? 1.0f - i : gate(fa, af[j], c);
        const float o = gate(fa, ao[j], c), cc = gate(ga, ac[j], c), hc = gate(ha, cn[j], c);
        const float dao = dh[j] * hc * gate_dx(fa, ao[j], c);
        const float dC = dc[j] + dh[j] * o * gate_dx(ha, cn[j], c) + (P ? dao * P[H + j] : 0.0f);
        float di = dC * cc, df = dC * cp[j];
        if (r->p->input_forget) di -= df, df = 0.0f;
        const float dai = di * gate_dx(fa, ai[j], c), daf = r->p->input_forget ? 0.0f : df * gate_dx(fa, af[j], c);
        da[j] = dai;
        da[H + j] = dao;
        da[2 * H + j] = daf;
        da[3 * H + j] = dC * i * gate_dx(ga, ac[j], c);
        dc[j] = dC * f + (P ? dai * P[j] + daf * P[2 * H + j] : 0.0f);
        if (gP) {
            gP[j] += dai * cp[j];
            gP[H + j] += dao * cn[j];
            gP[2 * H + j] += daf * cp[j];
        }
    }
}

/* dH_prev = direct part (in nH) + dAs R; dR += dAs^T H_prev. */
static void bw_recur(const rnn_run *r, rnn_bw *w, int64_t s, int64_t kcols) {
    const rnn_geom *g = r->g;
    const float *hp = r->Hs + s * g->BH;
    gc_sgemm(r->nt, 0, 0, g->B, g->H, kcols, 1.0f, w->dAs, g->GH, r->R, g->H, 1.0f, w->nH, g->H);
    if (w->gR) gc_sgemm(r->nt, 1, 0, kcols, g->H, g->B, 1.0f, w->dAs, g->GH, hp, g->H, 1.0f, w->gR, g->H);
    float *t = w->dH;
    w->dH = w->nH;
    w->nH = t;
}

static void lstm_rnn_backward(const rnn_run *r, rnn_bw *w) {
    const rnn_geom *g = r->g;
    const int64_t B = g->B, H = g->H, GH = g->GH, BH = g->BH;
    for (int64_t s = g->T - 1; s >= 0; s--) {
        for (int64_t b = 0; b < B; b++) {
            const int64_t t = bw_row(r, w, s, b);
            if (t < 0) continue;
            const float *a = r->A + (t * B + b) * GH, *dh = w->dH + b * H;
            float *da = w->dAs + b * GH;
            memset(w->nH + b * H, 0, (size_t)H * sizeof(float)); /* LSTM and RNN: H_prev only through R */
            if (r->Cs)
                lstm_cell_bw(r, a, r->Cs + s * BH + b * H, r->Cs + (s + 1) * BH + b * H, dh, w->dC + b * H, da, w->gP);
            else
                for (int64_t j = 0; j < H; j++) da[j] = dh[j] * gate_dx(&r->act[0], a[j], r->clip);
            memcpy(w->dA + (t * B + b) * GH, da, (size_t)GH * sizeof(float));
        }
        bw_recur(r, w, s, GH);
    }
}

/* GRU backward, phase 1: everything but r's gradient when r multiplies H_prev before Rh. */
static void gru_bw_rows(const rnn_run *r, rnn_bw *w, int64_t s, int64_t b, int64_t t) {
    const int64_t B = r->g->B, H = r->g->H, GH = r->g->GH;
    const rnn_act *fa = &r->act[0], *ga = &r->act[1];
    const float c = r->clip, *a = r->A + (t * B + b) * GH, *hp = r->Hs + s * r->g->BH + b * H, *dh = w->dH + b * H;
    float *da = w->dAs + b * GH, *nh = w->nH + b * H;
    for (int64_t j = 0; j < H; j++) {
        const float z = gate(fa, a[j], c), hh = gate(ga, a[2 * H + j], c);
        da[j] = dh[j] * (hp[j] - hh) * gate_dx(fa, a[j], c);
        da[2 * H + j] = dh[j] * (1.0f - z) * gate_dx(ga, a[2 * H + j], c);
        nh[j] = dh[j] * z;
        const float rg = gate(fa, a[H + j], c);
        if (r->p->lbr) {
            const float l = r->L[(t * B + b) * H + j];
            da[H + j] = da[2 * H + j] * l * gate_dx(fa, a[H + j], c);
            w->dL[b * H + j] = da[2 * H + j] * rg;
        } else {
            w->rh[b * H + j] = rg * hp[j];
        }
    }
}

static void gru_backward(const rnn_run *r, rnn_bw *w) {
    const rnn_geom *g = r->g;
    const int64_t B = g->B, H = g->H, GH = g->GH, BH = g->BH;
    const float *Rh = r->R + 2 * H * H;
    for (int64_t s = g->T - 1; s >= 0; s--) {
        const float *hp = r->Hs + s * BH;
        for (int64_t b = 0; b < B; b++) {
            const int64_t t = bw_row(r, w, s, b);
            if (t >= 0) gru_bw_rows(r, w, s, b, t);
            else {
                memset(w->dL + b * H, 0, (size_t)H * sizeof(float));
                memset(w->rh + b * H, 0, (size_t)H * sizeof(float));
            }
        }
        if (!r->p->lbr) { /* dRH (B, H) = da_h Rh: r's gradient and H_prev's through r */
            gc_sgemm(r->nt, 0, 0, B, H, H, 1.0f, w->dAs + 2 * H, GH, Rh, H, 0.0f, w->dRH, H);
            for (int64_t b = 0; b < B; b++) {
                const int64_t len = len_of(r, b);
                if (s >= len) continue;
                float *a = r->A + (time_of(r, len, s) * B + b) * GH, *da = w->dAs + b * GH;
                for (int64_t j = 0; j < H; j++) {
                    const float rg = gate(&r->act[0], a[H + j], r->clip), q = w->dRH[b * H + j];
                    da[H + j] = q * hp[b * H + j] * gate_dx(&r->act[0], a[H + j], r->clip);
                    w->nH[b * H + j] += q * rg;
                }
            }
            if (w->gR) /* dRh += da_h^T (r * H_prev) */
                gc_sgemm(r->nt, 1, 0, H, H, B, 1.0f, w->dAs + 2 * H, GH, w->rh, H, 1.0f, w->gR + 2 * H * H, H);
        } else { /* H_prev Rh^T + Rbh got dL: into H_prev, Rh and Rbh */
            gc_sgemm(r->nt, 0, 0, B, H, H, 1.0f, w->dL, H, Rh, H, 1.0f, w->nH, H);
            if (w->gR) gc_sgemm(r->nt, 1, 0, H, H, B, 1.0f, w->dL, H, hp, H, 1.0f, w->gR + 2 * H * H, H);
            if (w->gB)
                for (int64_t b = 0; b < B; b++)
                    for (int64_t j = 0; j < H; j++) w->gB[GH + 2 * H + j] += w->dL[b * H + j];
        }
        for (int64_t b = 0; b < B; b++) {
            const int64_t len = len_of(r, b);
            if (s < len) memcpy(w->dA + (time_of(r, len, s) * B + b) * GH, w->dAs + b * GH, (size_t)GH * sizeof(float));
        }
        bw_recur(r, w, s, 2 * H); /* z and r through R[0:2H] */
    }
}

/* dX, dW and the biases' gradients from dA (T, B, GH). */
static void bw_inputs(const rnn_run *r, gc_kctx *k, const rnn_bw *w) {
    const rnn_geom *g = r->g;
    const int64_t T = g->T, B = g->B, I = g->I, GH = g->GH;
    gc_tensor *gx = k->gin[IN_X], *gw = k->gin[IN_W];
    const float *x = gw ? k->in[IN_X]->data : NULL;
    float *gwd = gw ? (float *)gw->data + r->d * GH * I : NULL;
    if (!r->p->layout) {
        if (gx) gc_sgemm(r->nt, 0, 0, T * B, I, GH, 1.0f, w->dA, GH, r->W, I, 1.0f, gx->data, I);
        if (gw) gc_sgemm(r->nt, 1, 0, GH, I, T * B, 1.0f, w->dA, GH, x, I, 1.0f, gwd, I);
    } else {
        for (int64_t b = 0; b < B; b++) {
            if (gx) gc_sgemm(r->nt, 0, 0, T, I, GH, 1.0f, w->dA + b * GH, B * GH, r->W, I, 1.0f,
                             (float *)gx->data + b * T * I, I);
            if (gw) gc_sgemm(r->nt, 1, 0, GH, I, T, 1.0f, w->dA + b * GH, B * GH, x + b * T * I, I, 1.0f, gwd, I);
        }
    }
    if (!w->gB) return;
    const int64_t nrb = r->p->lbr ? 2 * g->H : GH; /* lbr's Rbh: gru_backward */
    for (int64_t row = 0; row < T * B; row++) {
        const float *da = w->dA + row * GH;
        for (int64_t j = 0; j < GH; j++) w->gB[j] += da[j];
        for (int64_t j = 0; j < nrb; j++) w->gB[GH + j] += da[j];
    }
}

/* dH, dC of the final states from Y_h's, Y_c's gradients (zero for an entry of length 0, whose
 * outputs are constant zeros). */
static void bw_init_states(const rnn_run *r, gc_kctx *k, rnn_bw *w) {
    const int64_t H = r->g->H;
    const gc_tensor *gh = 1 < k->n_out ? k->gout[1] : NULL, *gc = r->Cs && 2 < k->n_out ? k->gout[2] : NULL;
    for (int64_t b = 0; b < r->g->B; b++) {
        const int live = len_of(r, b) > 0;
        for (int64_t j = 0; j < H; j++) {
            w->dH[b * H + j] = gh && live ? ((const float *)gh->data)[state_off(r, b) + j] : 0.0f;
            if (r->Cs) w->dC[b * H + j] = gc && live ? ((const float *)gc->data)[state_off(r, b) + j] : 0.0f;
        }
    }
}

static void bw_final_states(const rnn_run *r, gc_kctx *k, const rnn_bw *w) {
    const int64_t H = r->g->H;
    gc_tensor *gh = k->n_in > IN_H0 ? k->gin[IN_H0] : NULL, *gc = r->Cs && k->n_in > IN_C0 ? k->gin[IN_C0] : NULL;
    for (int64_t b = 0; b < r->g->B; b++)
        for (int64_t j = 0; j < H; j++) {
            if (gh) ((float *)gh->data)[state_off(r, b) + j] += w->dH[b * H + j];
            if (gc) ((float *)gc->data)[state_off(r, b) + j] += w->dC[b * H + j];
        }
}

static gcam_status rnn_backward(gc_kctx *k) {
    const rnn_params *p = k->params;
    rnn_geom g;
    gcam_status st = rnn_setup(k, &g);
    if (!st) st = check_lens(k, &g);
    if (st) return st;
    int any = 0;
    for (int j = 0; j < k->n_out && j < 3; j++) any |= k->gout[j] != NULL;
    if (!any) return GCAM_OK;
    if (!k->aux) return gc_kfail(k, GCAM_E_INTERNAL, "backward without the forward's tape (aux)");
    if (!k->scratch || k->scratch_size < g.bscr_b) return gc_kfail(k, GCAM_E_INTERNAL, "scratch too small");
    float *s = k->scratch;
    const int64_t BH = g.BH;
    for (int d = 0; d < g.D; d++) {
        rnn_run r;
        run_init(&r, k, &g, d, (float *)k->aux + d * g.tape);
        rnn_bw w = {.dA = s, .dAs = s + g.T * g.B * g.GH};
        w.dH = w.dAs + g.B * g.GH;
        w.dC = w.dH + BH, w.nH = w.dC + BH, w.dRH = w.nH + BH, w.rh = w.dRH + BH, w.dL = w.rh + BH;
        w.gy = k->n_out > 0 && k->gout[0] ? k->gout[0]->data : NULL;
        w.gR = k->gin[IN_R] ? (float *)k->gin[IN_R]->data + d * g.GH * g.H : NULL;
        w.gB = k->n_in > IN_B && k->gin[IN_B] ? (float *)k->gin[IN_B]->data + d * 2 * g.GH : NULL;
        w.gP = r.P && k->gin[IN_P] ? (float *)k->gin[IN_P]->data + d * 3 * g.H : NULL;
        memset(w.dA, 0, (size_t)(g.T * g.B * g.GH) * sizeof(float));
        bw_init_states(&r, k, &w);
        if (p->cell == CELL_GRU) gru_backward(&r, &w);
        else lstm_rnn_backward(&r, &w);
        bw_final_states(&r, k, &w);
        bw_inputs(&r, k, &w);
    }
    return GCAM_OK;
}

/* Backward reads X (for dW), W (dX), R (the recurrence), sequence_lens and P; initial states and
 * B live on in the tape. */
#define RNN_BW_IN ((1u << IN_X) | (1u << IN_W) | (1u << IN_R) | (1u << IN_SEQ) | (1u << IN_P))
#define RNN_DIFF ((1u << IN_X) | (1u << IN_W) | (1u << IN_R) | (1u << IN_B) | (1u << IN_H0))
#define RNN_DEF(Name, parse_fn, diff)                                                                          \
    const gc_opdef gc_def_##Name = {.name = #Name, .min_opset = 7, .parse = parse_fn, .infer = rnn_infer,      \
                                    .scratch_bytes = rnn_scratch, .forward = rnn_forward,                      \
                                    .bscratch_bytes = rnn_bscratch, .backward = rnn_backward,                  \
                                    .aux_bytes = rnn_aux, .bw_in = RNN_BW_IN, .diff_in = (diff)};
RNN_DEF(LSTM, lstm_parse, RNN_DIFF | (1u << IN_C0) | (1u << IN_P))
RNN_DEF(GRU, gru_parse, RNN_DIFF)
RNN_DEF(RNN, rnn1_parse, RNN_DIFF)

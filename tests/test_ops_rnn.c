/* Tests of rnn.c (LSTM, GRU, RNN): forward against a naive double-precision reference written from
 * the ONNX equations (per entry, per step, no GEMM), backward against central finite differences
 * for every float input (X, W, R, B, initial_h, initial_c, P) — in every direction, both layouts,
 * with sequence_lens (including a zero length), peepholes, input_forget, clip, linear_before_reset
 * and non-default activations. Where a case has kinks (Relu, HardSigmoid, clip), its inputs are
 * redrawn until every activation input lies well away from them (the reference measures the
 * margin), so the check is exact whatever the CPU's rounding. */
#include "opcheck.h"

#include <math.h>

enum { C_RNN, C_GRU, C_LSTM };

typedef struct act_cfg {
    const char *name;
    double alpha, beta;
    int n_ab; /* how many of alpha, beta the activation consumes (ONNX order) */
} act_cfg;

typedef struct rcase {
    const char *label;
    int cell, dir, layout; /* dir: 0 forward, 1 reverse, 2 bidirectional */
    int T, B, I, H;
    int bias, h0, c0, peep, lbr, input_forget;
    int n_lens;            /* 0: no sequence_lens */
    int64_t lens[4];
    float clip;            /* 0: none */
    int n_acts;            /* 0: defaults */
    act_cfg acts[6];
} rcase;

/* ---- the reference ---------------------------------------------------------------------- */

static double g_margin; /* smallest distance of an activation input to a kink or the clip */

static void see_kink(double x, double at) {
    if (fabs(x - at) < g_margin) g_margin = fabs(x - at);
}

static double ract(const act_cfg *a, double x, double clip) {
    if (clip > 0) {
        see_kink(x, clip);
        see_kink(x, -clip);
        x = x < -clip ? -clip : x > clip ? clip : x;
    }
    const char *n = a->name;
    if (!strcmp(n, "Sigmoid")) return 1 / (1 + exp(-x));
    if (!strcmp(n, "Tanh")) return tanh(x);
    if (!strcmp(n, "Relu")) return see_kink(x, 0), x > 0 ? x : 0;
    if (!strcmp(n, "Affine")) return a->alpha * x + a->beta;
    if (!strcmp(n, "LeakyRelu")) return see_kink(x, 0), x >= 0 ? x : a->alpha * x;
    if (!strcmp(n, "ThresholdedRelu")) return see_kink(x, a->alpha), x >= a->alpha ? x : 0;
    if (!strcmp(n, "ScaledTanh")) return a->alpha * tanh(a->beta * x);
    if (!strcmp(n, "HardSigmoid")) {
        see_kink(a->alpha * x + a->beta, 0);
        see_kink(a->alpha * x + a->beta, 1);
        return fmin(fmax(a->alpha * x + a->beta, 0), 1);
    }
    if (!strcmp(n, "Elu")) return see_kink(x, 0), x >= 0 ? x : a->alpha * (exp(x) - 1);
    if (!strcmp(n, "Softsign")) return x / (1 + fabs(x));
    if (!strcmp(n, "Softplus")) return log1p(exp(x));
    fprintf(stderr, "reference: unknown activation %s\n", n);
    abort();
}

typedef struct rin {
    const float *X, *W, *R, *B, *h0, *c0, *P;
    const int64_t *lens;
} rin;

/* One entry b of direction d; writes Y (T, D, B, H or layout 1) and the final states. */
static void ref_entry(const rcase *c, const act_cfg *act, const rin *in, int d, int b, double *Y, double *Yh,
                      double *Yc) {
    const int T = c->T, B = c->B, I = c->I, H = c->H, D = c->dir == 2 ? 2 : 1;
    const int G = c->cell == C_LSTM ? 4 : c->cell == C_GRU ? 3 : 1, rev = c->dir == 1 || d == 1;
    const int len = c->n_lens ? (int)in->lens[b] : T;
    const float *W = in->W + (size_t)d * G * H * I, *R = in->R + (size_t)d * G * H * H;
    const float *Wb = in->B ? in->B + (size_t)d * 2 * G * H : NULL, *Rb = Wb ? Wb + G * H : NULL;
    double h[16] = {0}, cc[16] = {0}, g[64], hn[16];
    const size_t so = c->layout ? ((size_t)b * D + d) * H : ((size_t)d * B + b) * H;
    for (int j = 0; j < H; j++) {
        if (in->h0) h[j] = in->h0[so + j];
        if (in->c0) cc[j] = in->c0[so + j];
    }
    for (int s = 0; s < len; s++) {
        const int t = rev ? len - 1 - s : s;
        const float *x = in->X + (c->layout ? (size_t)b * T + t : (size_t)t * B + b) * I;
        for (int q = 0; q < G * H; q++) { /* X W^T + Wb, and H R^T + Rb where it is added plainly */
            double v = Wb ? Wb[q] : 0, rv = Rb ? Rb[q] : 0;
            for (int i = 0; i < I; i++) v += (double)W[q * I + i] * x[i];
            for (int j = 0; j < H; j++) rv += (double)R[q * H + j] * h[j];
            g[q] = v;
            if (c->cell != C_GRU || q < 2 * H) g[q] += rv;
            else if (c->lbr) hn[q - 2 * H] = rv; /* H_prev Rh^T + Rbh */
        }
        if (c->cell == C_RNN) {
            for (int j = 0; j < H; j++) h[j] = ract(&act[0], g[j], c->clip);
        } else if (c->cell == C_GRU) {
            double z[16], r[16];
            for (int j = 0; j < H; j++) z[j] = ract(&act[0], g[j], c->clip), r[j] = ract(&act[0], g[H + j], c->clip);
            for (int q = 0; q < H; q++) {
                double a = g[2 * H + q];
                if (c->lbr) a += r[q] * hn[q];
                else {
                    a += Rb ? Rb[2 * H + q] : 0;
                    for (int j = 0; j < H; j++) a += (double)R[(2 * H + q) * H + j] * r[j] * h[j];
                }
                hn[q] = a;
            }
            for (int j = 0; j < H; j++) h[j] = (1 - z[j]) * ract(&act[1], hn[j], c->clip) + z[j] * h[j];
        } else {
            const float *P = c->peep ? in->P + (size_t)d * 3 * H : NULL;
            for (int j = 0; j < H; j++) {
                double ai = g[j] + (P ? P[j] * cc[j] : 0), af = g[2 * H + j] + (P ? P[2 * H + j] * cc[j] : 0);
                double i = ract(&act[0], ai, c->clip);
                double f = c->input_forget ? 1 - i : ract(&act[0], af, c->clip);
                double C = f * cc[j] + i * ract(&act[1], g[3 * H + j], c->clip);
                double o = ract(&act[0], g[H + j] + (P ? P[H + j] * C : 0), c->clip);
                cc[j] = C;
                h[j] = o * ract(&act[2], C, c->clip);
            }
        }
        const size_t yo = c->layout ? (((size_t)b * T + t) * D + d) * H : (((size_t)t * D + d) * B + b) * H;
        for (int j = 0; j < H; j++) Y[yo + j] = h[j];
    }
    for (int j = 0; j < H; j++) {
        Yh[so + j] = len > 0 ? h[j] : 0;
        Yc[so + j] = len > 0 ? cc[j] : 0;
    }
}

/* ---- the cases -------------------------------------------------------------------------- */

static const char *dir_name[3] = {"forward", "reverse", "bidirectional"};
static const char *op_name[3] = {"RNN", "GRU", "LSTM"};

/* This case's activations per direction, defaults filled in. */
static void case_acts(const rcase *c, act_cfg act[2][3]) {
    static const act_cfg sg = {"Sigmoid", 0, 0, 0}, th = {"Tanh", 0, 0, 0};
    const int na = c->cell + 1;
    for (int d = 0; d < 2; d++)
        for (int j = 0; j < na; j++) {
            act[d][j] = c->cell == C_RNN || j > 0 ? th : sg;
            if (c->n_acts) act[d][j] = c->acts[c->n_acts == na ? j : d * na + j];
        }
}

static gc_node *case_node(const rcase *c) {
    const int n_in = c->cell == C_LSTM ? 8 : 6, n_out = c->cell == C_LSTM ? 3 : 2;
    gc_node *n = oc_node(op_name[c->cell], 14, n_in, n_out);
    oc_attr_i(n, "hidden_size", c->H);
    oc_attr_s(n, "direction", dir_name[c->dir]);
    if (c->layout) oc_attr_i(n, "layout", 1);
    if (c->lbr) oc_attr_i(n, "linear_before_reset", 1);
    if (c->input_forget) oc_attr_i(n, "input_forget", 1);
    if (c->clip > 0) oc_attr_f(n, "clip", c->clip);
    if (c->n_acts) { /* the strings, and alpha / beta in the order the activations consume them */
        gc_attr *a = &n->attrs[n->n_attrs++];
        memset(a, 0, sizeof *a);
        a->name = gc_strdup("activations");
        a->type = GC_ATTR_STRINGS;
        a->strings = calloc((size_t)c->n_acts, sizeof(char *));
        a->n = (size_t)c->n_acts;
        float al[6], be[6];
        int na = 0, nb = 0;
        for (int j = 0; j < c->n_acts; j++) {
            a->strings[j] = gc_strdup(c->acts[j].name);
            if (c->acts[j].n_ab >= 1) al[na++] = (float)c->acts[j].alpha;
            if (c->acts[j].n_ab >= 2) be[nb++] = (float)c->acts[j].beta;
        }
        if (na) oc_attr_floats(n, "activation_alpha", na, al);
        if (nb) oc_attr_floats(n, "activation_beta", nb, be);
    }
    return n;
}

static void free_strings(gc_node *n) {
    for (int i = 0; i < n->n_attrs; i++)
        if (n->attrs[i].type == GC_ATTR_STRINGS) {
            for (size_t j = 0; j < n->attrs[i].n; j++) free(n->attrs[i].strings[j]);
            free(n->attrs[i].strings);
            n->attrs[i].strings = NULL;
        }
}

/* Random inputs; returns the reference outputs' kink margin. */
static double case_inputs(const rcase *c, gc_tensor *in, double *Y, double *Yh, double *Yc) {
    const int D = c->dir == 2 ? 2 : 1, G = c->cell == C_LSTM ? 4 : c->cell == C_GRU ? 3 : 1;
    const int64_t H = c->H, GH = G * H;
    const int64_t xd[3] = {c->layout ? c->B : c->T, c->layout ? c->T : c->B, c->I};
    const int64_t wd[3] = {D, GH, c->I}, rd[3] = {D, GH, H}, bd[2] = {D, 2 * GH}, pd[2] = {D, 3 * H};
    const int64_t sd[3] = {c->layout ? c->B : D, c->layout ? D : c->B, H};
    for (int i = 0; i < 8; i++) in[i] = (gc_tensor){0};
    in[0] = oc_rand(3, xd, -1.0f, 1.0f);
    in[1] = oc_rand(3, wd, -0.7f, 0.7f);
    in[2] = oc_rand(3, rd, -0.7f, 0.7f);
    if (c->bias) in[3] = oc_rand(2, bd, -0.5f, 0.5f);
    if (c->n_lens) in[4] = oc_ints(c->n_lens, c->lens);
    if (c->h0) in[5] = oc_rand(3, sd, -0.8f, 0.8f);
    if (c->c0 && c->cell == C_LSTM) in[6] = oc_rand(3, sd, -0.8f, 0.8f);
    if (c->peep && c->cell == C_LSTM) in[7] = oc_rand(2, pd, -0.6f, 0.6f);
    act_cfg act[2][3];
    case_acts(c, act);
    const size_t ny = (size_t)c->T * D * c->B * H, ns = (size_t)D * c->B * H;
    memset(Y, 0, ny * sizeof(double));
    memset(Yh, 0, ns * sizeof(double));
    memset(Yc, 0, ns * sizeof(double));
    rin ri = {in[0].data, in[1].data, in[2].data, in[3].data, in[5].data, in[6].data, in[7].data, in[4].data};
    g_margin = INFINITY;
    for (int d = 0; d < D; d++)
        for (int b = 0; b < c->B; b++) ref_entry(c, act[d], &ri, d, b, Y, Yh, Yc);
    return g_margin;
}

static void compare(const char *label, const gc_tensor *got, const double *want, size_t n) {
    float *w = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) w[i] = (float)want[i];
    if (oc_check(got->dtype == GC_F32 && (size_t)gc_numel(got) == n, "%s: shape", label))
        oc_close(label, got->data, w, (int64_t)n, 2e-6, 2e-5);
    free(w);
}

static void run_case(const rcase *c) {
    const int D = c->dir == 2 ? 2 : 1, n_in = c->cell == C_LSTM ? 8 : 6, n_out = c->cell == C_LSTM ? 3 : 2;
    const size_t ny = (size_t)c->T * D * c->B * c->H, ns = (size_t)D * c->B * c->H;
    double *Y = malloc(ny * sizeof(double)), *Yh = malloc(ns * sizeof(double)), *Yc = malloc(ns * sizeof(double));
    gc_tensor in[8], out[3];
    const double h = 1e-3;
    double margin = 0;
    for (int tries = 0; tries < 200; tries++) { /* redraw until no kink is within reach of the steps */
        margin = case_inputs(c, in, Y, Yh, Yc);
        if (margin > 0.03) break;
        for (int i = 0; i < 8; i++) oc_tensor_free(&in[i]);
    }
    if (!oc_check(margin > 0.03, "%s: no input draw away from the kinks", c->label)) goto done;
    gc_node *n = case_node(c);
    gc_err err = {0};
    const uint32_t cm = 1u << 4; /* sequence_lens is constant */
    if (oc_check(oc_forward(n, in, n_in, cm, out, n_out, &err) == GCAM_OK, "%s: forward: %s", c->label, err.msg)) {
        char l[160];
        snprintf(l, sizeof l, "%s: Y", c->label);
        compare(l, &out[0], Y, ny);
        snprintf(l, sizeof l, "%s: Y_h", c->label);
        compare(l, &out[1], Yh, ns);
        if (c->cell == C_LSTM) {
            snprintf(l, sizeof l, "%s: Y_c", c->label);
            compare(l, &out[2], Yc, ns);
        }
        for (int j = 0; j < n_out; j++) oc_tensor_free(&out[j]);
    }
    uint32_t gm = 0;
    for (int i = 0; i < n_in; i++)
        if (in[i].data && in[i].dtype == GC_F32) gm |= 1u << i;
    oc_gradcheck(c->label, n, in, n_in, cm, n_out, gm, h, 5e-3, 64);
    free_strings(n);
    oc_node_free(n);
    for (int i = 0; i < 8; i++) oc_tensor_free(&in[i]);
done:
    free(Y);
    free(Yh);
    free(Yc);
}

#define SG {"Sigmoid", 0, 0, 0}
#define TH {"Tanh", 0, 0, 0}
static const rcase cases[] = {
    /* label, cell, dir, layout, T, B, I, H, bias, h0, c0, peep, lbr, input_forget, n_lens, lens, clip */
    {"LSTM forward", C_LSTM, 0, 0, 3, 2, 3, 4, 1, 1, 1, 0, 0, 0, 0, {0}, 0, 0, {{0}}},
    {"LSTM defaults (no B, no states)", C_LSTM, 0, 0, 2, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, {0}, 0, 0, {{0}}},
    {"LSTM reverse, seq lens, peepholes", C_LSTM, 1, 0, 4, 3, 2, 3, 1, 1, 1, 1, 0, 0, 3, {4, 1, 3}, 0, 0, {{0}}},
    {"LSTM bidirectional layout 1, seq lens with 0", C_LSTM, 2, 1, 3, 3, 3, 3, 1, 1, 1, 1, 0, 0, 3, {2, 3, 0}, 0, 0, {{0}}},
    {"LSTM input_forget, peepholes, bidirectional", C_LSTM, 2, 0, 3, 2, 2, 3, 1, 1, 1, 1, 0, 1, 0, {0}, 0, 0, {{0}}},
    {"LSTM clip 0.6", C_LSTM, 0, 0, 3, 2, 3, 3, 1, 1, 1, 1, 0, 0, 0, {0}, 0.6f, 0, {{0}}},
    {"LSTM other activations, bidirectional", C_LSTM, 2, 0, 3, 2, 2, 3, 1, 1, 1, 0, 0, 0, 0, {0}, 0, 6,
     {{"HardSigmoid", 0.3, 0.45, 2}, {"Softsign", 0, 0, 0}, {"ScaledTanh", 0.9, 1.3, 2},
      {"Sigmoid", 0, 0, 0}, {"Elu", 0.7, 0, 1}, {"Softplus", 0, 0, 0}}},
    {"GRU forward", C_GRU, 0, 0, 3, 2, 3, 4, 1, 1, 0, 0, 0, 0, 0, {0}, 0, 0, {{0}}},
    {"GRU linear_before_reset, layout 1", C_GRU, 0, 1, 3, 2, 3, 4, 1, 1, 0, 0, 1, 0, 0, {0}, 0, 0, {{0}}},
    {"GRU bidirectional lbr, seq lens, clip 0.7", C_GRU, 2, 0, 4, 3, 2, 3, 1, 1, 0, 0, 1, 0, 3, {4, 2, 0}, 0.7f, 0, {{0}}},
    {"GRU reverse, seq lens, layout 1", C_GRU, 1, 1, 4, 2, 2, 3, 1, 1, 0, 0, 0, 0, 2, {3, 4}, 0, 0, {{0}}},
    {"GRU Relu candidate, LeakyRelu gates", C_GRU, 2, 0, 3, 2, 2, 3, 1, 1, 0, 0, 0, 0, 0, {0}, 0, 4,
     {{"HardSigmoid", 0.25, 0.5, 2}, {"Relu", 0, 0, 0}, SG, {"LeakyRelu", 0.2, 0, 1}}},
    {"RNN forward", C_RNN, 0, 0, 3, 2, 3, 4, 1, 1, 0, 0, 0, 0, 0, {0}, 0, 0, {{0}}},
    {"RNN bidirectional Relu, layout 1, seq lens", C_RNN, 2, 1, 3, 3, 2, 3, 1, 1, 0, 0, 0, 0, 3, {1, 3, 2}, 0, 1,
     {{"Relu", 0, 0, 0}}},
    {"RNN bidirectional Affine/ThresholdedRelu", C_RNN, 2, 0, 3, 2, 2, 3, 1, 0, 0, 0, 0, 0, 0, {0}, 0, 2,
     {{"Affine", 0.8, 0.1, 2}, {"ThresholdedRelu", 0.1, 0, 1}}},
    {"RNN shared activations, bidirectional", C_RNN, 2, 0, 2, 2, 2, 3, 1, 1, 0, 0, 0, 0, 0, {0}, 0, 1, {TH}},
};

/* Errors: shapes, sequence_lens out of range, attributes. */
static void test_errors(void) {
    gc_err err = {0};
    const int64_t xd[3] = {2, 1, 3}, wd[3] = {1, 12, 3}, rd[3] = {1, 12, 3}, bad[3] = {1, 12, 2};
    gc_tensor in[8] = {oc_rand(3, xd, -1, 1), oc_rand(3, wd, -1, 1), oc_rand(3, rd, -1, 1)}, out[3];
    gc_node *n = oc_node("LSTM", 14, 3, 3);
    oc_check(oc_forward(n, in, 3, 0, out, 3, &err) == GCAM_OK, "LSTM minimal: %s", err.msg);
    for (int j = 0; j < 3; j++) oc_tensor_free(&out[j]);
    oc_node_free(n);
    n = oc_node("LSTM", 14, 3, 3);
    oc_attr_i(n, "hidden_size", 4);
    err = (gc_err){0};
    oc_check(oc_forward(n, in, 3, 0, out, 3, &err) == GCAM_E_SHAPE, "hidden_size disagreeing with R refused");
    oc_node_free(n);
    n = oc_node("LSTM", 14, 3, 3);
    oc_tensor_free(&in[2]);
    in[2] = oc_rand(3, bad, -1, 1);
    err = (gc_err){0};
    oc_check(oc_forward(n, in, 3, 0, out, 3, &err) == GCAM_E_SHAPE, "R of the wrong shape refused");
    oc_node_free(n);
    oc_tensor_free(&in[2]);
    in[2] = oc_rand(3, rd, -1, 1);
    int64_t lens[1] = {3};
    in[4] = oc_ints(1, lens);
    n = oc_node("LSTM", 14, 5, 3);
    err = (gc_err){0};
    oc_check(oc_forward(n, in, 5, 1u << 4, out, 3, &err) == GCAM_E_SHAPE, "sequence_lens > T refused");
    oc_node_free(n);
    n = oc_node("GRU", 14, 3, 2);
    oc_attr_s(n, "direction", "sideways");
    err = (gc_err){0};
    oc_check(n && gc_op_get(n->op)->parse(n, &err) == GCAM_E_FORMAT, "bad direction refused");
    oc_node_free(n);
    n = oc_node("RNN", 14, 3, 2);
    gc_attr *a = &n->attrs[n->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = gc_strdup("activations");
    a->type = GC_ATTR_STRINGS;
    a->strings = calloc(1, sizeof(char *));
    a->strings[0] = gc_strdup("Gelu");
    a->n = 1;
    err = (gc_err){0};
    oc_check(gc_op_get(n->op)->parse(n, &err) == GCAM_E_UNSUPPORTED, "unknown activation: unsupported");
    free_strings(n);
    oc_node_free(n);
    for (int i = 0; i < 8; i++) oc_tensor_free(&in[i]);
}

int main(void) {
    oc_seed(20240519);
    for (size_t i = 0; i < GC_ARRAY_LEN(cases); i++) run_case(&cases[i]);
    test_errors();
    printf("%d passed, %d failed\n", oc_checks - oc_failures, oc_failures);
    return oc_failures != 0;
}

/* The activations fused into a Conv's last write (src/graph/fuse.c: a Clip with constant bounds,
 * a SiLU where no backward passes; k.fuse.act) against the same plan with no fusion at all
 * (GCAM_NO_FUSION) and with only these two off (GCAM_NO_ACT_FUSION), on the model
 * tests/fusion_act_model.py writes (every Conv path: im2col, depthwise, pointwise, Winograd, a
 * fused residual Add before a standalone Clip). Three plans: inference; input gradient (the SiLUs
 * then stay separate, the Clips are fused and their backward reads the shared buffer, or, for a
 * Clip that only a Conv reads, runs inside that Conv's backward: k.fuse.relu_dx 2); a Grad-CAM
 * plan whose gradients stop at an inner layer (the SiLUs before it fused). Checks, per plan:
 *  - how many Conv steps apply a clamp or a SiLU (the fusions took place where they should);
 *  - forward outputs bit-identical to both unfused runs (the fused write is kmath.h's function of
 *    the same sum: the Clip's and Sigmoid + Mul's own, and (conv + bias) + res rounds as Add);
 *  - gradients under each rule (standard, guided, deconvnet) bit-identical to GCAM_NO_ACT_FUSION's
 *    (the same backward kernels on the same values), and within 1e-6 of the maximum of
 *    GCAM_NO_FUSION's (whose unfused SiLU and Relu VJPs round differently from the fused ones).
 *
 * Usage: test_fusion_act MODEL.onnx */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcam.h"
#include "graph/plan.h"

static int g_checks, g_failures;

static int check(int ok, const char *what, const char *detail) {
    g_checks++;
    if (!ok) {
        g_failures++;
        printf("FAIL %s %s\n", what, detail ? detail : "");
    }
    return ok;
}

enum { TUNE_DEFAULT, TUNE_NO_FUSION, TUNE_NO_ACT, N_TUNE };
static const char *tune_name[N_TUNE] = {"fused", "GCAM_NO_FUSION", "GCAM_NO_ACT_FUSION"};

typedef struct result {
    float logits[10];
    float *grad[3]; /* per rule */
    size_t n_grad;
    int clamp, silu; /* Conv steps applying each */
} result;

static int64_t g_dims[4] = {1, 8, 24, 24};
static float g_x[8 * 24 * 24];

/* One plan (grad_of NULL: inference) under one tuning: logits, gradients, fused Conv counts. */
static int run(const gcam_model *m, int tune, const char *grad_of, result *r) {
    gc_tuning t;
    gc_tuning_defaults(&t);
    t.no_fusion = tune == TUNE_NO_FUSION;
    t.no_act_fusion = tune == TUNE_NO_ACT;
    gc_tuning_set_default(&t);
    gcam_feed f = {.name = NULL, .dtype = GCAM_FLOAT32, .ndim = 4, .dims = g_dims, .data = g_x};
    const char *go[1] = {grad_of};
    gcam_ctx_options o = {.n_threads = 2, .seed = grad_of ? "logits" : NULL, .grad_of = go, .n_grad_of = grad_of ? 1 : 0};
    gcam_ctx *c = NULL;
    memset(r, 0, sizeof *r);
    int ok = check(gcam_ctx_create(&c, m, &f, 1, &o) == GCAM_OK, "ctx", gcam_ctx_error(c)) &&
             check(gcam_ctx_run(c, &f, 1) == GCAM_OK, "run", gcam_ctx_error(c));
    gcam_tensor_view v;
    if (ok && check(gcam_ctx_output(c, 0, &v) == GCAM_OK && v.numel == 10, "output", gcam_ctx_error(c)))
        memcpy(r->logits, v.data, sizeof r->logits);
    for (int s = 0; ok && s < c->n_steps; s++) {
        const gc_step *st = &c->steps[s];
        if (c->m->nodes[st->node].op != GC_OP_Conv) continue;
        r->clamp += st->k.fuse.act == GC_ACT_CLAMP;
        r->silu += st->k.fuse.act == GC_ACT_SILU;
    }
    float seed[10] = {0};
    seed[3] = 1.0f;
    seed[7] = -0.5f;
    for (int rule = 0; ok && grad_of && rule < 3; rule++) {
        ok = check(gcam_ctx_backward(c, seed, (gcam_rule)rule, NULL, 0) == GCAM_OK, "backward", gcam_ctx_error(c)) &&
             check(gcam_ctx_grad(c, grad_of, &v) == GCAM_OK, "grad", gcam_ctx_error(c));
        if (!ok) break;
        r->n_grad = v.numel;
        r->grad[rule] = malloc(v.numel * sizeof(float));
        memcpy(r->grad[rule], v.data, v.numel * sizeof(float));
    }
    gcam_ctx_free(c);
    gc_tuning_set_default(NULL);
    return ok;
}

static void compare(const char *plan, const char *grad_of, const result *r, int want_clamp, int want_silu) {
    char d[256];
    snprintf(d, sizeof d, "%s: %d clamp, %d SiLU Convs (want %d, %d)", plan, r[0].clamp, r[0].silu, want_clamp, want_silu);
    check(r[0].clamp == want_clamp && r[0].silu == want_silu, "fused Convs", d);
    check(r[TUNE_NO_FUSION].clamp + r[TUNE_NO_FUSION].silu + r[TUNE_NO_ACT].clamp + r[TUNE_NO_ACT].silu == 0,
          "the knobs turn the fusions off", plan);
    for (int t = 1; t < N_TUNE; t++) {
        snprintf(d, sizeof d, "%s: logits fused vs %s", plan, tune_name[t]);
        check(!memcmp(r[0].logits, r[t].logits, sizeof r[0].logits), "bit-identical", d);
        for (int rule = 0; grad_of && rule < 3; rule++) {
            if (!r[0].grad[rule] || !r[t].grad[rule] || r[0].n_grad != r[t].n_grad) {
                check(0, "gradients present", plan);
                continue;
            }
            double mx = 0.0, err = 0.0;
            for (size_t i = 0; i < r[0].n_grad; i++) {
                mx = fmax(mx, fabs(r[t].grad[rule][i]));
                err = fmax(err, fabs((double)r[0].grad[rule][i] - r[t].grad[rule][i]));
            }
            snprintf(d, sizeof d, "%s: gradient of %s, rule %d, fused vs %s: max err %.3g of max %.3g", plan, grad_of,
                     rule, tune_name[t], err, mx);
            if (t == TUNE_NO_ACT)
                check(!memcmp(r[0].grad[rule], r[t].grad[rule], r[0].n_grad * sizeof(float)), "bit-identical", d);
            else
                check(mx > 0.0 && err <= 1e-6 * mx, "close", d);
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.onnx\n", argv[0]);
        return 2;
    }
    gcam_model *m = NULL;
    if (gcam_model_load(&m, argv[1], NULL) != GCAM_OK) {
        printf("FAIL load %s: %s\n", argv[1], gcam_model_error(m));
        return 1;
    }
    uint64_t s = 12345;
    for (size_t i = 0; i < sizeof g_x / sizeof *g_x; i++) { /* inputs in [-3, 3): both sides of every bound */
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        g_x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 6.0 - 3.0);
    }
    static const struct {
        const char *name, *grad_of;
        int clamp, silu;
    } plans[] = {{"inference", NULL, 3, 3}, {"input gradient", "x", 3, 0}, {"Grad-CAM at y5", "y5", 3, 2}};
    for (size_t p = 0; p < sizeof plans / sizeof *plans; p++) {
        result r[N_TUNE];
        int ok = 1;
        for (int t = 0; t < N_TUNE; t++) ok &= run(m, t, plans[p].grad_of, &r[t]);
        if (ok) compare(plans[p].name, plans[p].grad_of, r, plans[p].clamp, plans[p].silu);
        for (int t = 0; t < N_TUNE; t++)
            for (int rule = 0; rule < 3; rule++) free(r[t].grad[rule]);
    }
    gcam_model_free(m);
    printf("%d passed, %d failed\n", g_checks - g_failures, g_failures);
    return g_failures != 0;
}

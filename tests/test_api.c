/* The public API's error contract (include/gradcam.h), through the API only:
 *   - every call clears its handle's error on entry: after a failed call, the next call reports
 *     its own status and message (or none), never the old one;
 *   - a context whose planning failed stays failed with the planning error;
 *   - tables sized by the model, not by a constant: a model with 70 graph inputs (made by
 *     tests/many_inputs_model.py) runs when all are fed, and an unfed 70th input is named;
 *   - an abort check (gcam_ctx_set_abort, gcam_explainer_set_abort) stops a forward, a backward and
 *     Score-CAM's masked forwards between steps with GCAM_E_ABORTED, and the next passes give the
 *     bits of passes never stopped.
 * Usage: test_api DEMO_MODEL.onnx MANY_INPUTS.onnx */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcam.h"

static int passed, failed;

#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        if (cond) {                                                                                          \
            passed++;                                                                                        \
        } else {                                                                                             \
            failed++;                                                                                        \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                      \
            printf(__VA_ARGS__);                                                                             \
            printf("\n");                                                                                    \
        }                                                                                                    \
    } while (0)

static void ctx_errors(const gcam_model *m) {
    gcam_tensor_info in, out;
    gcam_model_input(m, 0, &in);
    gcam_model_output(m, 0, &out);
    int64_t dims[4] = {1, 3, 128, 128}, bad[4] = {1, 3, 64, 64};
    size_t n = 3 * 128 * 128;
    float *x = calloc(n, sizeof(float));
    const char *grad_of[1] = {in.name};
    gcam_ctx_options o = {.n_threads = 1, .seed = out.name, .grad_of = grad_of, .n_grad_of = 1};
    gcam_feed f = {.name = NULL, .dtype = GCAM_FLOAT32, .ndim = 4, .dims = dims, .data = x};
    gcam_ctx *c = NULL;
    CHECK(x && gcam_ctx_create(&c, m, &f, 1, &o) == GCAM_OK, "ctx_create: %s", gcam_ctx_error(c));
    if (!c) return;
    gcam_tensor_view v;

    gcam_feed wrong = f;
    wrong.dims = bad;
    CHECK(gcam_ctx_run(c, &wrong, 1) == GCAM_E_SHAPE, "a wrongly shaped feed is a shape error");
    CHECK(strstr(gcam_ctx_error(c), "shape") != NULL, "its message says so: '%s'", gcam_ctx_error(c));
    gcam_status rc = gcam_ctx_tensor(c, "no-such-tensor", &v);
    CHECK(rc == GCAM_E_NOT_FOUND, "after a failed run, an unknown tensor is NOT_FOUND (got %s)", gcam_status_str(rc));
    CHECK(strstr(gcam_ctx_error(c), "no-such-tensor") != NULL, "and the message names it: '%s'", gcam_ctx_error(c));
    rc = gcam_ctx_output(c, 0, &v);
    CHECK(rc == GCAM_E_STATE && strstr(gcam_ctx_error(c), "no forward"), "output before a run: %s '%s'",
          gcam_status_str(rc), gcam_ctx_error(c));

    CHECK(gcam_ctx_run(c, &f, 1) == GCAM_OK && gcam_ctx_error(c)[0] == 0, "a good run clears the error: '%s'",
          gcam_ctx_error(c));
    rc = gcam_ctx_grad(c, in.name, &v);
    CHECK(rc == GCAM_E_STATE && strstr(gcam_ctx_error(c), "no backward"), "grad before backward: %s '%s'",
          gcam_status_str(rc), gcam_ctx_error(c));
    rc = gcam_ctx_output(c, 0, &v);
    CHECK(rc == GCAM_OK && gcam_ctx_error(c)[0] == 0, "a good getter clears the error: %s '%s'", gcam_status_str(rc),
          gcam_ctx_error(c));
    rc = gcam_ctx_grad(c, "logits-not-planned", &v);
    CHECK(rc == GCAM_E_NOT_FOUND && strstr(gcam_ctx_error(c), "logits-not-planned"), "grad of an unplanned tensor: %s '%s'",
          gcam_status_str(rc), gcam_ctx_error(c));
    float seed[6] = {1, 0, 0, 0, 0, 0};
    rc = gcam_ctx_backward(c, seed, GCAM_RULE_STANDARD, NULL, 0);
    CHECK(rc == GCAM_OK && gcam_ctx_error(c)[0] == 0, "backward clears the error: %s '%s'", gcam_status_str(rc),
          gcam_ctx_error(c));
    rc = gcam_ctx_tensor(c, in.name, &v);
    CHECK(rc == GCAM_OK && gcam_ctx_error(c)[0] == 0, "an input is readable: %s '%s'", gcam_status_str(rc),
          gcam_ctx_error(c));
    gcam_ctx_free(c);

    /* planning fails: the context stays failed, with the planning message */
    const char *keep[1] = {"no-such-tensor"};
    gcam_ctx_options ko = {.n_threads = 1, .keep = keep, .n_keep = 1};
    c = NULL;
    CHECK(gcam_ctx_create(&c, m, &f, 1, &ko) == GCAM_E_NOT_FOUND, "keeping an unknown tensor fails planning");
    CHECK(c && gcam_ctx_run(c, &f, 1) != GCAM_OK && strstr(gcam_ctx_error(c), "no-such-tensor"),
          "a failed context keeps its planning error: '%s'", c ? gcam_ctx_error(c) : "");
    gcam_ctx_free(c);
    free(x);
}

static void explainer_errors(const gcam_model *m) {
    int64_t dims[4] = {1, 3, 128, 128}, bad[4] = {1, 3, 64, 64};
    float *x = calloc(3 * 128 * 128, sizeof(float));
    gcam_feed f = {.name = NULL, .dtype = GCAM_FLOAT32, .ndim = 4, .dims = dims, .data = x};
    gcam_explain_options o = {.n_threads = 1};
    gcam_explainer *e = NULL;
    CHECK(x && gcam_explainer_create(&e, m, &f, 1, &o) == GCAM_OK, "explainer_create: %s", gcam_explainer_error(e));
    if (!e) return;
    gcam_tensor_view v;
    gcam_status rc = gcam_explainer_scores(e, &v);
    CHECK(rc == GCAM_E_STATE && strstr(gcam_explainer_error(e), "no forward"), "scores before a forward: %s '%s'",
          gcam_status_str(rc), gcam_explainer_error(e));
    gcam_feed wrong = f;
    wrong.ndim = 3;
    wrong.dims = bad;
    CHECK(gcam_explainer_forward(e, &wrong, 1) != GCAM_OK, "a wrongly shaped input is refused");
    CHECK(gcam_explainer_forward(e, &f, 1) == GCAM_OK && gcam_explainer_error(e)[0] == 0,
          "a good forward clears the error: '%s'", gcam_explainer_error(e));
    gcam_map mp;
    gcam_target t = {.kind = GCAM_TARGET_CLASS, .cls = 99};
    rc = gcam_explain(e, GCAM_GRADCAM, &t, &mp);
    CHECK(rc != GCAM_OK && gcam_explainer_error(e)[0] != 0, "class 99 of 6 is refused: %s '%s'", gcam_status_str(rc),
          gcam_explainer_error(e));
    rc = gcam_explainer_scores(e, &v);
    CHECK(rc == GCAM_OK && gcam_explainer_error(e)[0] == 0 && v.numel == 6, "scores after that: %s '%s'",
          gcam_status_str(rc), gcam_explainer_error(e));
    t.cls = 2;
    rc = gcam_explain(e, GCAM_GRADCAM, &t, &mp);
    CHECK(rc == GCAM_OK && gcam_explainer_error(e)[0] == 0, "then a good explanation: %s '%s'", gcam_status_str(rc),
          gcam_explainer_error(e));
    gcam_map_free(&mp);
    gcam_explainer_free(e);
    free(x);
}

/* An abort check that says stop on its n-th call (counting every call). */
typedef struct abort_count {
    int calls, stop_at;
} abort_count;
static int abort_at(void *user) {
    abort_count *a = user;
    return ++a->calls >= a->stop_at;
}

/* gcam_ctx_set_abort / gcam_explainer_set_abort: a pass stopped between steps is GCAM_E_ABORTED
 * with a message naming the step; the context (explainer) stays usable, and its next whole pass
 * gives the same bits as one never stopped. */
static void aborts(const gcam_model *m) {
    gcam_tensor_info in, out;
    gcam_model_input(m, 0, &in);
    gcam_model_output(m, 0, &out);
    int64_t dims[4] = {1, 3, 128, 128};
    const size_t n = 3 * 128 * 128;
    float *x = malloc(n * sizeof(float)), *y0 = malloc(6 * sizeof(float)), *g0 = malloc(n * sizeof(float));
    if (!x || !y0 || !g0) {
        CHECK(0, "out of memory");
        free(x), free(y0), free(g0);
        return;
    }
    for (size_t i = 0; i < n; i++) x[i] = (float)((i * 37) % 101) / 101.0f;
    const char *grad_of[1] = {in.name};
    gcam_ctx_options o = {.n_threads = 1, .seed = out.name, .grad_of = grad_of, .n_grad_of = 1};
    gcam_feed f = {.name = NULL, .dtype = GCAM_FLOAT32, .ndim = 4, .dims = dims, .data = x};
    float seed[6] = {0, 0, 1, 0, 0, 0};
    gcam_ctx *c = NULL;
    gcam_tensor_view v, g;
    CHECK(gcam_ctx_create(&c, m, &f, 1, &o) == GCAM_OK, "ctx_create: %s", gcam_ctx_error(c));
    if (!c) goto done;
    /* the reference: never stopped */
    CHECK(gcam_ctx_run(c, &f, 1) == GCAM_OK && gcam_ctx_output(c, 0, &v) == GCAM_OK && v.numel == 6 &&
              gcam_ctx_backward(c, seed, GCAM_RULE_STANDARD, NULL, 0) == GCAM_OK &&
              gcam_ctx_grad(c, in.name, &g) == GCAM_OK && g.numel == n,
          "reference pass: %s", gcam_ctx_error(c));
    memcpy(y0, v.data, 6 * sizeof(float));
    memcpy(g0, g.data, n * sizeof(float));
    abort_count a = {0, 3};
    CHECK(gcam_ctx_set_abort(NULL, abort_at, &a) == GCAM_E_ARG, "set_abort on NULL");
    CHECK(gcam_ctx_set_abort(c, abort_at, &a) == GCAM_OK, "set_abort");
    gcam_status rc = gcam_ctx_run(c, &f, 1);
    CHECK(rc == GCAM_E_ABORTED && a.calls == 3 && strstr(gcam_ctx_error(c), "before forward step"),
          "a forward stopped at the 3rd check: %s after %d calls, '%s'", gcam_status_str(rc), a.calls,
          gcam_ctx_error(c));
    CHECK(!strcmp(gcam_status_str(GCAM_E_ABORTED), "aborted"), "status string '%s'", gcam_status_str(GCAM_E_ABORTED));
    rc = gcam_ctx_output(c, 0, &v);
    CHECK(rc == GCAM_E_STATE, "no output after a stopped forward: %s", gcam_status_str(rc));
    /* a whole forward (the check says go), then a backward stopped on its 2nd step */
    a.calls = 0;
    a.stop_at = 1000000;
    rc = gcam_ctx_run(c, &f, 1);
    const int fw_checks = a.calls;
    CHECK(rc == GCAM_OK && fw_checks > 3, "then a whole forward: %s, %d checks", gcam_status_str(rc), fw_checks);
    a.stop_at = fw_checks + 2;
    rc = gcam_ctx_backward(c, seed, GCAM_RULE_STANDARD, NULL, 0);
    CHECK(rc == GCAM_E_ABORTED && strstr(gcam_ctx_error(c), "before backward step 2 of"),
          "a backward stopped at its 2nd step: %s '%s'", gcam_status_str(rc), gcam_ctx_error(c));
    rc = gcam_ctx_grad(c, in.name, &g);
    CHECK(rc == GCAM_E_STATE, "no gradient after a stopped backward: %s", gcam_status_str(rc));
    /* removed: the next passes run whole, bit-identical to the reference */
    CHECK(gcam_ctx_set_abort(c, NULL, NULL) == GCAM_OK, "abort check removed");
    rc = gcam_ctx_run(c, &f, 1);
    int same = rc == GCAM_OK && gcam_ctx_output(c, 0, &v) == GCAM_OK && !memcmp(v.data, y0, 6 * sizeof(float));
    CHECK(same, "the next forward gives the reference's bits: %s", gcam_ctx_error(c));
    rc = gcam_ctx_backward(c, seed, GCAM_RULE_STANDARD, NULL, 0);
    same = rc == GCAM_OK && gcam_ctx_grad(c, in.name, &g) == GCAM_OK && !memcmp(g.data, g0, n * sizeof(float));
    CHECK(same, "and the next backward too: %s", gcam_ctx_error(c));

    /* the explainer: a check set before the contexts it makes later (Score-CAM's) reaches them;
     * (Score-CAM only stopped, not run whole: valgrind_api runs this under memcheck) */
    gcam_explainer *e = NULL;
    gcam_explain_options eo = {.n_threads = 1};
    CHECK(gcam_explainer_create(&e, m, &f, 1, &eo) == GCAM_OK, "explainer: %s", gcam_explainer_error(e));
    if (!e) goto done;
    gcam_target t = {.kind = GCAM_TARGET_CLASS, .cls = 2};
    gcam_map ref, mp;
    memset(&ref, 0, sizeof ref);
    CHECK(gcam_explainer_forward(e, &f, 1) == GCAM_OK && gcam_explain(e, GCAM_GRADCAM, &t, &ref) == GCAM_OK,
          "Grad-CAM reference: %s", gcam_explainer_error(e));
    gcam_explainer_free(e);
    e = NULL;
    CHECK(gcam_explainer_create(&e, m, &f, 1, &eo) == GCAM_OK, "explainer: %s", gcam_explainer_error(e));
    if (!e) goto done_ref;
    a.calls = 0;
    a.stop_at = 1000000;
    CHECK(gcam_explainer_set_abort(e, abort_at, &a) == GCAM_OK && gcam_explainer_forward(e, &f, 1) == GCAM_OK,
          "explainer forward under a check that says go: %s", gcam_explainer_error(e));
    a.stop_at = a.calls + 5; /* inside Score-CAM's masked forwards */
    rc = gcam_explain(e, GCAM_SCORECAM, &t, &mp);
    CHECK(rc == GCAM_E_ABORTED && strstr(gcam_explainer_error(e), "abort check"), "Score-CAM stopped: %s '%s'",
          gcam_status_str(rc), gcam_explainer_error(e));
    CHECK(gcam_explainer_set_abort(e, NULL, NULL) == GCAM_OK, "removed");
    rc = gcam_explainer_forward(e, &f, 1);
    if (rc == GCAM_OK) rc = gcam_explain(e, GCAM_GRADCAM, &t, &mp);
    same = rc == GCAM_OK && mp.h == ref.h && mp.w == ref.w &&
           !memcmp(mp.raw, ref.raw, (size_t)(ref.n * ref.c * ref.h * ref.w) * sizeof(float));
    CHECK(same, "then a forward and Grad-CAM: the reference's bits: %s '%s'", gcam_status_str(rc),
          gcam_explainer_error(e));
    if (rc == GCAM_OK) gcam_map_free(&mp);
    gcam_explainer_free(e);
done_ref:
    gcam_map_free(&ref);
done:
    gcam_ctx_free(c);
    free(x), free(y0), free(g0);
}

static void many_inputs(const char *path) {
    gcam_model *m = NULL;
    CHECK(gcam_model_load(&m, path, NULL) == GCAM_OK, "load %s: %s", path, gcam_model_error(m));
    int n = gcam_model_num_inputs(m);
    CHECK(n == 70, "70 graph inputs (got %d)", n);
    if (n != 70) {
        gcam_model_free(m);
        return;
    }
    int64_t dims[2] = {1, 4};
    float data[70][4];
    gcam_feed f[70];
    for (int i = 0; i < 70; i++) {
        for (int j = 0; j < 4; j++) data[i][j] = (float)(i + 1) * (float)(j + 1);
        f[i] = (gcam_feed){.name = NULL, .dtype = GCAM_FLOAT32, .ndim = 2, .dims = dims, .data = data[i]};
    }
    gcam_ctx *c = NULL;
    CHECK(gcam_ctx_create(&c, m, f, 70, NULL) == GCAM_OK, "ctx_create: %s", gcam_ctx_error(c));
    gcam_status rc = gcam_ctx_run(c, f, 69);
    CHECK(rc == GCAM_E_ARG && strstr(gcam_ctx_error(c), "'in69' was not fed"), "70th input unfed: %s '%s'",
          gcam_status_str(rc), gcam_ctx_error(c));
    gcam_tensor_view v;
    CHECK(gcam_ctx_run(c, f, 70) == GCAM_OK && gcam_ctx_output(c, 0, &v) == GCAM_OK, "all fed: %s", gcam_ctx_error(c));
    /* y[j] = sum_i (i + 1)(j + 1) = 2485 (j + 1), exact in float32 */
    int ok = v.numel == 4;
    for (int j = 0; ok && j < 4; j++) ok = ((const float *)v.data)[j] == 2485.0f * (float)(j + 1);
    CHECK(ok, "the sum of 70 inputs");
    gcam_ctx_free(c);

    gcam_explainer *e = NULL;
    gcam_explain_options eo = {.n_threads = 1};
    rc = gcam_explainer_create(&e, m, f, 70, &eo);
    if (rc == GCAM_OK) {
        rc = gcam_explainer_forward(e, f, 70);
        CHECK(rc == GCAM_OK, "explainer forward with 70 inputs: %s '%s'", gcam_status_str(rc), gcam_explainer_error(e));
    } else { /* no spatial layer: refused at creation, with a message, not by a table size */
        CHECK(strstr(gcam_explainer_error(e), "64") == NULL && strstr(gcam_explainer_error(e), "it is float32 (1, 4)"),
              "explainer_create: '%s'", gcam_explainer_error(e));
    }
    gcam_explainer_free(e);
    gcam_model_free(m);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s DEMO_MODEL.onnx MANY_INPUTS.onnx\n", argv[0]);
        return 2;
    }
    gcam_model *m = NULL;
    if (gcam_model_load(&m, argv[1], NULL) != GCAM_OK) {
        printf("FAIL: load %s: %s\n0 passed, 1 failed\n", argv[1], gcam_model_error(m));
        gcam_model_free(m);
        return 1;
    }
    ctx_errors(m);
    explainer_errors(m);
    aborts(m);
    gcam_model_free(m);
    many_inputs(argv[2]);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}

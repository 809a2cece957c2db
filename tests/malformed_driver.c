/* API-level checks for tests/test_malformed_inputs.py (which builds the models):
 *   malformed_driver numeric MODEL [LAYER]  NaN/Inf must surface as GCAM_E_NUMERIC, from
 *                                           gcam_explainer_forward (non-finite scores) or from
 *                                           gcam_explain (a non-finite map), never as a map;
 *                                           with LAYER (whose gradients are non-finite), from
 *                                           every gradient-based CAM method, naming it and LAYER
 *   malformed_driver limit MODEL BYTES      planning over max_memory = BYTES fails with GCAM_E_LIMIT
 *                                           and a message giving both byte counts
 * The model's first input must have a fixed shape; it is fed with ones. Prints one line; exit 0 when
 * the expectation holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcam.h"

static int input_shape(const gcam_model *m, gcam_feed *f, int64_t *dims, float **data) {
    gcam_tensor_info ti;
    if (gcam_model_input(m, 0, &ti) != GCAM_OK || ti.ndim < 1) return -1;
    size_t n = 1;
    for (int d = 0; d < ti.ndim; d++) {
        if (ti.dims[d] < 1) return -1;
        dims[d] = ti.dims[d];
        n *= (size_t)ti.dims[d];
    }
    *data = malloc(n * sizeof(float));
    if (!*data) return -1;
    for (size_t i = 0; i < n; i++) (*data)[i] = 1.0f;
    *f = (gcam_feed){.name = ti.name, .dtype = GCAM_FLOAT32, .ndim = ti.ndim, .dims = dims, .data = *data};
    return 0;
}

static int numeric(const char *path, const char *layer) {
    gcam_model *m = NULL;
    if (gcam_model_load(&m, path, NULL) != GCAM_OK) {
        printf("load failed: %s\n", gcam_model_error(m));
        gcam_model_free(m);
        return 1;
    }
    gcam_feed f;
    int64_t dims[GCAM_MAX_DIMS];
    float *x = NULL;
    if (input_shape(m, &f, dims, &x)) {
        printf("the model's first input needs a fixed float shape\n");
        gcam_model_free(m);
        return 1;
    }
    const char *layers[1] = {layer};
    gcam_explain_options eo = {.layers = layer ? layers : NULL, .n_layers = layer ? 1 : 0, .n_threads = 1};
    gcam_explainer *e = NULL;
    int ok = 0;
    gcam_status rc = gcam_explainer_create(&e, m, &f, 1, &eo);
    if (rc) {
        printf("explainer_create: %s: %s\n", gcam_status_str(rc), gcam_explainer_error(e));
    } else if ((rc = gcam_explainer_forward(e, &f, 1)) != GCAM_OK) {
        printf("forward: %s: %s\n", gcam_status_str(rc), gcam_explainer_error(e));
        ok = rc == GCAM_E_NUMERIC;
    } else {
        gcam_target t = {.kind = GCAM_TARGET_CLASS, .cls = 0};
        gcam_map map;
        ok = 1;
        for (int meth = 0; meth < GCAM_METHOD_COUNT; meth++) {
            if (meth == GCAM_CAM || meth == GCAM_SCORECAM || meth == GCAM_ABLATIONCAM) continue; /* no gradient */
            if (meth == GCAM_ATTENTION_ROLLOUT || meth == GCAM_GRAD_ROLLOUT) continue;           /* transformers only */
            rc = gcam_explain(e, (gcam_method)meth, &t, &map);
            printf("%s: %s: %s\n", gcam_method_name((gcam_method)meth), gcam_status_str(rc), rc ? gcam_explainer_error(e) : "");
            if (meth == GCAM_GRADCAM && (rc != GCAM_E_NUMERIC || map.raw || map.normalized)) ok = 0;
            if (layer && gcam_method_is_cam((gcam_method)meth) && meth != GCAM_EIGENCAM) {
                /* non-finite gradients at the layer: every gradient-weighted CAM reports them, by name */
                char want[256];
                snprintf(want, sizeof want, "NaN/Inf in the map of %s at layer '%s'", gcam_method_name((gcam_method)meth), layer);
                if (rc != GCAM_E_NUMERIC || !strstr(gcam_explainer_error(e), want)) ok = 0;
            }
            if (rc == GCAM_OK) { /* any map drawn must be finite */
                for (int64_t i = 0; i < map.n * map.c * map.H * map.W; i++)
                    if (!(map.normalized[i] >= 0.0f && map.normalized[i] <= 1.0f)) ok = 0;
            } else if (rc != GCAM_E_NUMERIC) {
                ok = 0;
            }
            gcam_map_free(&map);
        }
    }
    gcam_explainer_free(e);
    gcam_model_free(m);
    free(x);
    return ok ? 0 : 1;
}

static int limit(const char *path, const char *bytes) {
    gcam_model *m = NULL;
    if (gcam_model_load(&m, path, NULL) != GCAM_OK) {
        printf("load failed: %s\n", gcam_model_error(m));
        gcam_model_free(m);
        return 1;
    }
    gcam_feed f;
    int64_t dims[GCAM_MAX_DIMS];
    float *x = NULL;
    int ok = 0;
    if (input_shape(m, &f, dims, &x) == 0) {
        gcam_ctx_options co = {.n_threads = 1, .max_memory = (size_t)strtoull(bytes, NULL, 10)};
        gcam_ctx *c = NULL;
        gcam_status rc = gcam_ctx_create(&c, m, &f, 1, &co);
        const char *msg = gcam_ctx_error(c);
        char cap[64];
        snprintf(cap, sizeof cap, "%s bytes", bytes);
        printf("%s: %s\n", gcam_status_str(rc), msg);
        ok = rc == GCAM_E_LIMIT && strstr(msg, cap) && strstr(msg, "the plan needs ");
        gcam_ctx_free(c);
        /* and with no cap given, the same plan fits the default */
        c = NULL;
        co.max_memory = 0;
        if (gcam_ctx_create(&c, m, &f, 1, &co) != GCAM_OK || gcam_ctx_run(c, &f, 1) != GCAM_OK) ok = 0;
        gcam_ctx_free(c);
    }
    free(x);
    gcam_model_free(m);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "numeric") == 0) return numeric(argv[2], argc > 3 ? argv[3] : NULL);
    if (argc == 4 && strcmp(argv[1], "limit") == 0) return limit(argv[2], argv[3]);
    fprintf(stderr, "usage: malformed_driver numeric MODEL [LAYER] | limit MODEL BYTES\n");
    return 2;
}

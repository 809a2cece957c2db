/* Fuzz target: ONNX model bytes -> gcam_model_load_memory -> introspection -> gcam_ctx_create with
 * small input shapes -> a forward run (and a backward pass) when the plan is small. External data
 * is resolved in a private folder holding one 4 KiB file, "weights.bin". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_tmp.h"

#include "gradcam.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (fuzz_tmp_init("onnx", "weights.bin")) return 0; /* no external data file then */
    FILE *f = fopen(g_path, "wb");
    if (f) {
        for (int i = 0; i < 4096; i++) fputc(i * 7 & 0xff, f);
        fclose(f);
    }
    return 0;
}

#define MAX_PLAN ((size_t)64 << 20)
#define MAX_RUN ((size_t)2 << 20)

static void fill(void *data, gcam_dtype t, size_t n) {
    if (t == GCAM_FLOAT32)
        for (size_t i = 0; i < n; i++) ((float *)data)[i] = (float)((int)(i % 7) - 3) * 0.25f;
    else if (t == GCAM_INT64)
        for (size_t i = 0; i < n; i++) ((int64_t *)data)[i] = (int64_t)(i % 2);
    else
        memset(data, 0, n);
}

static size_t esize(gcam_dtype t) { return t == GCAM_FLOAT32 ? 4 : t == GCAM_INT64 ? 8 : 1; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gcam_load_options lo = {.allow_unsupported = (int)(size % 3 == 1), .fold_batchnorm = (int)(size & 1)};
    gcam_model *m = NULL;
    gcam_status rc = gcam_model_load_memory(&m, data, size, g_dir[0] ? g_dir : NULL, &lo);
    if (rc) {
        const char *e = gcam_model_error(m);
        if (!e || !e[0]) abort(); /* every failure must say why */
        gcam_model_free(m);
        return 0;
    }
    /* everything the info command reads */
    gcam_tensor_info ti;
    gcam_node_info ni;
    for (int i = 0; i < gcam_model_num_nodes(m); i++) gcam_model_node(m, i, &ni);
    for (int i = 0; i < gcam_model_num_tensors(m); i++) gcam_model_tensor(m, i, &ti);
    for (int i = 0; i < gcam_model_num_unsupported(m); i++) (void)gcam_model_unsupported(m, i);
    (void)gcam_model_producer(m);

    int nin = gcam_model_num_inputs(m);
    if (nin > 8 || gcam_model_num_unsupported(m)) {
        gcam_model_free(m);
        return 0;
    }
    gcam_feed feeds[8];
    int64_t dims[8][GCAM_MAX_DIMS];
    void *bufs[8] = {0};
    int ok = 1;
    for (int i = 0; i < nin && ok; i++) {
        gcam_model_input(m, i, &ti);
        int nd = ti.ndim < 0 ? 4 : ti.ndim; /* unknown rank: an image-like 4-D input */
        size_t n = 1;
        for (int d = 0; d < nd; d++) {
            int64_t v = ti.ndim < 0 ? (d == 1 ? 3 : 2) : ti.dims[d];
            if (v < 0) v = d == 0 ? 1 : 3; /* symbolic: batch 1, other dims small */
            dims[i][d] = v;
            if (v > 4096 || (n *= (size_t)(v ? v : 1)) > ((size_t)1 << 16)) ok = 0;
        }
        gcam_dtype t = ti.dtype == GCAM_UNDEFINED ? GCAM_FLOAT32 : ti.dtype;
        if (ok && !(bufs[i] = calloc(n ? n : 1, esize(t)))) ok = 0;
        if (ok) fill(bufs[i], t, n);
        feeds[i] = (gcam_feed){.name = ti.name, .dtype = t, .ndim = nd, .dims = dims[i], .data = bufs[i]};
    }
    if (ok) {
        gcam_ctx *c = NULL;
        gcam_ctx_options co = {.n_threads = 1, .max_memory = MAX_PLAN, .const_int_inputs = (int)(size & 2)};
        rc = gcam_ctx_create(&c, m, feeds, nin, &co);
        if (rc && !gcam_ctx_error(c)[0]) abort();
        if (!rc && gcam_ctx_planned_bytes(c) <= MAX_RUN) {
            rc = gcam_ctx_run(c, feeds, nin);
            if (rc && !gcam_ctx_error(c)[0]) abort();
            gcam_tensor_view v;
            for (int i = 0; !rc && i < gcam_ctx_num_outputs(c); i++) gcam_ctx_output(c, i, &v);
        }
        gcam_ctx_free(c);
        /* backward from the first output to the first input, when both are float */
        gcam_tensor_info oi;
        if (!rc && nin > 0 && gcam_model_num_outputs(m) > 0 && gcam_model_output(m, 0, &oi) == GCAM_OK &&
            feeds[0].dtype == GCAM_FLOAT32) {
            const char *grad_of[1] = {feeds[0].name};
            gcam_ctx_options bo = {.n_threads = 1, .max_memory = MAX_PLAN, .seed = oi.name, .grad_of = grad_of, .n_grad_of = 1};
            c = NULL;
            if (gcam_ctx_create(&c, m, feeds, nin, &bo) == GCAM_OK && gcam_ctx_planned_bytes(c) <= MAX_RUN &&
                gcam_ctx_run(c, feeds, nin) == GCAM_OK) {
                gcam_tensor_view sv;
                if (gcam_ctx_seed_shape(c, &sv) == GCAM_OK && sv.numel <= ((size_t)1 << 20)) {
                    float *seed = calloc(sv.numel ? sv.numel : 1, sizeof(float));
                    if (seed) {
                        for (size_t e = 0; e < sv.numel; e++) seed[e] = e % 3 == 0 ? 1.0f : 0.0f;
                        if (gcam_ctx_backward(c, seed, (gcam_rule)(size % 3), NULL, 0) == GCAM_OK)
                            gcam_ctx_grad(c, feeds[0].name, &sv);
                        free(seed);
                    }
                }
            }
            gcam_ctx_free(c);
        }
    }
    for (int i = 0; i < nin; i++) free(bufs[i]);
    gcam_model_free(m);
    return 0;
}

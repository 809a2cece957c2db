/* Grad-CAM in a few lines: load an ONNX classifier, explain its top class, write the map as a PGM.
 *
 *   explain MODEL.onnx OUT.pgm [INPUT.f32 [SIZE]]
 *
 * INPUT.f32: raw float32 (1, 3, SIZE, SIZE), already normalised as the model expects; without it
 * a synthetic input is made. SIZE defaults to 224. Only <gradcam.h> is used. */
#include <gradcam.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.onnx OUT.pgm [INPUT.f32 [SIZE]]\n", argv[0]);
        return 2;
    }
    int64_t s = argc > 4 ? atoll(argv[4]) : 224;
    int64_t dims[4] = {1, 3, s, s}, n = 3 * s * s;
    float *x = malloc(sizeof(float) * (size_t)n);
    if (!x) return 1;
    if (argc > 3) {
        FILE *f = fopen(argv[3], "rb");
        size_t got = f ? fread(x, sizeof(float), (size_t)n, f) : 0;
        if (f) fclose(f);
        if (got != (size_t)n) {
            fprintf(stderr, "%s: expected %lld float32 values\n", argv[3], (long long)n);
            return 1;
        }
    } else {
        for (int64_t i = 0; i < n; i++) x[i] = (float)((i * 7919 % 1000) / 500.0 - 1.0); /* any pattern */
    }

    gcam_model *m = NULL;
    gcam_explainer *e = NULL;
    gcam_map map = {0};
    int rc = 1;
    gcam_feed in = {.name = NULL, .dtype = GCAM_FLOAT32, .ndim = 4, .dims = dims, .data = x};
    if (gcam_model_load(&m, argv[1], NULL) != GCAM_OK) {
        fprintf(stderr, "%s\n", gcam_model_error(m));
        goto done;
    }
    /* NULL options: automatic target layer (the input of the global pooling for a classifier) */
    if (gcam_explainer_create(&e, m, &in, 1, NULL) != GCAM_OK || gcam_explainer_forward(e, &in, 1) != GCAM_OK) {
        fprintf(stderr, "%s\n", gcam_explainer_error(e));
        goto done;
    }
    gcam_tensor_view scores; /* (1, classes): pick the top one */
    if (gcam_explainer_scores(e, &scores) != GCAM_OK) goto done;
    const float *y = scores.data;
    int64_t top = 0;
    for (int64_t i = 1; i < (int64_t)scores.numel; i++)
        if (y[i] > y[top]) top = i;
    gcam_target t = {.kind = GCAM_TARGET_CLASS, .cls = top};
    if (gcam_explain(e, GCAM_GRADCAM, &t, &map) != GCAM_OK) {
        fprintf(stderr, "%s\n", gcam_explainer_error(e));
        goto done;
    }

    FILE *f = fopen(argv[2], "wb"); /* binary PGM: header, then one byte per pixel */
    if (!f) {
        perror(argv[2]);
        goto done;
    }
    fprintf(f, "P5\n%lld %lld\n255\n", (long long)map.W, (long long)map.H);
    for (int64_t i = 0; i < map.H * map.W; i++) fputc((int)(map.normalized[i] * 255.0f + 0.5f), f);
    rc = fclose(f) != 0;
    printf("class %lld (score %g), layer %s, map %lldx%lld -> %s\n", (long long)top, y[top], map.layer,
           (long long)map.h, (long long)map.w, argv[2]);
done:
    gcam_map_free(&map);
    gcam_explainer_free(e);
    gcam_model_free(m);
    free(x);
    return rc;
}

/* Loading maps the model file: the models of tests/load_map_models.py (payloads 64-byte aligned, or
 * 1, 2, 3 bytes past a multiple of 4; external data aligned and not) must
 *   - load with exactly the expected bytes pointed into the file, copied and converted (the
 *     loader's counters: deterministic, unlike a peak RSS);
 *   - give the output computed in float64 by the script (1e-4), bit-identical across placements,
 *     forward and backward (the weights' pages are read-only: a write would fault);
 *   - keep the weights in read-only memory, the file mapped while the model lives and unmapped
 *     when it is freed;
 *   - from memory (gcam_model_load_memory), copy everything: the caller's buffer may be freed at
 *     once;
 *   - give the same bits after every weight's pages were given back (gc_model_release).
 * Usage: test_load_map DIR (written by load_map_models.py) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/model.h"
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

static const char *g_dir;
static float g_x[3 * 8 * 8];  /* (1, 3, 8, 8) */
static float g_ref[6];        /* (1, 6), from the script */

static const char *path_of(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", g_dir, name);
    return buf;
}

static void *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = len > 0 ? malloc((size_t)len) : NULL;
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = buf ? (size_t)len : 0;
    return buf;
}

/* The permissions ("r--p") of the mapping holding p and, in file, its path ("" if anonymous); 0
 * if p is in no mapping. */
static int mapping_of(const void *p, char perms[5], char *file, size_t nfile) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4600];
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f)) {
        unsigned long a, b;
        char path[4096] = "";
        if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %4095[^\n]", &a, &b, perms, path) < 3) continue;
        if ((uintptr_t)p >= a && (uintptr_t)p < b) {
            found = 1;
            snprintf(file, nfile, "%s", path);
        }
    }
    if (f) fclose(f);
    return found;
}

static int file_mapped(const char *path) {
    char *real = realpath(path, NULL);
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4600];
    int found = 0;
    while (real && f && !found && fgets(line, sizeof line, f)) {
        size_t n = strlen(line), k = strlen(real);
        if (n && line[n - 1] == '\n') line[--n] = 0;
        found = n >= k && strcmp(line + n - k, real) == 0;
    }
    if (f) fclose(f);
    free(real);
    return found;
}

/* y = the model's output on g_x, and dx = the gradient of sum(y * (1..6)) with respect to x. */
static int run(const gcam_model *m, float y[6], float dx[3 * 8 * 8], const char *what) {
    int64_t dims[4] = {1, 3, 8, 8};
    gcam_feed feed = {.name = "x", .dtype = GCAM_FLOAT32, .ndim = 4, .dims = dims, .data = g_x};
    const char *grad_of[1] = {"x"};
    gcam_ctx_options o = {.n_threads = 1, .seed = "y", .grad_of = grad_of, .n_grad_of = 1};
    gcam_ctx *c = NULL;
    gcam_tensor_view v;
    const float seed[6] = {1, 2, 3, 4, 5, 6};
    int ok = gcam_ctx_create(&c, m, &feed, 1, &o) == GCAM_OK && gcam_ctx_run(c, &feed, 1) == GCAM_OK &&
             gcam_ctx_output(c, 0, &v) == GCAM_OK && v.numel == 6;
    if (ok) memcpy(y, v.data, sizeof(float) * 6);
    ok = ok && gcam_ctx_backward(c, seed, GCAM_RULE_STANDARD, NULL, 0) == GCAM_OK &&
         gcam_ctx_grad(c, "x", &v) == GCAM_OK && v.numel == 3 * 8 * 8;
    if (ok) memcpy(dx, v.data, sizeof(float) * 3 * 8 * 8);
    CHECK(ok, "%s: forward/backward failed: %s", what, gcam_ctx_error(c));
    gcam_ctx_free(c);
    return ok;
}

/* Every initialiser in one of the model's regions sits in read-only memory; mapped ones in file. */
static void check_read_only(const gcam_model *mm, const char *what, const char *file) {
    const gc_model *m = gc_model_of(mm);
    int n_region = 0;
    for (int i = 0; i < m->n_values; i++) {
        const gc_value *v = &m->values[i];
        if (!v->const_data || !v->const_in_region) continue;
        n_region++;
        char perms[5] = "", path[4096] = "";
        int found = mapping_of(v->const_data, perms, path, sizeof path);
        CHECK(found && perms[1] == '-', "%s: weight '%s' is in a mapping '%s' (must be read-only)", what, v->name, perms);
        if (file) {
            char *real = realpath(file, NULL);
            CHECK(real && strcmp(path, real) == 0, "%s: weight '%s' points into '%s', not into the file", what, v->name, path);
            free(real);
        }
    }
    CHECK(n_region >= 6, "%s: only %d weights in the model's regions", what, n_region);
}

static void check_model(const char *name, size_t mapped, size_t copied, size_t converted, float *y0, float *dx0) {
    const char *p = path_of(name);
    gcam_model *mm = NULL;
    gcam_status rc = gcam_model_load(&mm, p, NULL);
    CHECK(rc == GCAM_OK, "%s: load failed: %s", name, gcam_model_error(mm));
    if (rc) {
        gcam_model_free(mm);
        return;
    }
    const gc_model *m = gc_model_of(mm);
    CHECK(m->bytes_mapped == mapped && m->bytes_copied == copied && m->bytes_converted == converted,
          "%s: %zu bytes mapped, %zu copied, %zu converted; expected %zu, %zu, %zu", name, m->bytes_mapped,
          m->bytes_copied, m->bytes_converted, mapped, copied, converted);
    int external = strncmp(name, "ext_", 4) == 0;
    char bin[256];
    snprintf(bin, sizeof bin, "%.*s.bin", (int)(strlen(name) - 5), name);
    const char *data_file = external ? bin : name;
    check_read_only(mm, name, mapped ? path_of(data_file) : NULL);
    CHECK(file_mapped(path_of(data_file)) == (mapped > 0), "%s: %s is %smapped", name, data_file,
          mapped ? "not " : "");
    float y[6], dx[3 * 8 * 8];
    if (run(mm, y, dx, name)) {
        double worst = 0;
        for (int i = 0; i < 6; i++) {
            double e = (y[i] - g_ref[i]) / (1.0 + (g_ref[i] < 0 ? -g_ref[i] : g_ref[i]));
            if ((e < 0 ? -e : e) > worst) worst = e < 0 ? -e : e;
        }
        CHECK(worst < 1e-4, "%s: output off the float64 reference by %g", name, worst);
        if (y0 && dx0) { /* the first model sets the bits every other must give */
            static int have;
            if (!have) {
                memcpy(y0, y, sizeof y);
                memcpy(dx0, dx, sizeof dx);
                have = 1;
            }
            CHECK(memcmp(y0, y, sizeof y) == 0 && memcmp(dx0, dx, sizeof dx) == 0,
                  "%s: output or gradient differs from aligned.onnx's", name);
        }
        /* every constant's pages given back (gc_model_release: file mappings only; the arena of
         * copies and converted weights must stay): the same bits again, read from the file */
        for (int i = 0; i < m->n_values; i++) {
            const gc_value *v = &m->values[i];
            int64_t n = 1;
            for (int d = 0; d < v->shape.ndim; d++) n *= v->shape.d[d];
            if (v->const_data && v->shape.ndim >= 0 && n > 0)
                gc_model_release(m, v->const_data, (size_t)n * gc_dtype_size(v->dtype));
        }
        float y2[6], dx2[3 * 8 * 8];
        if (run(mm, y2, dx2, name))
            CHECK(memcmp(y2, y, sizeof y) == 0 && memcmp(dx2, dx, sizeof dx) == 0,
                  "%s: output or gradient changed after the weights' pages were given back", name);
    }
    gcam_model_free(mm);
    CHECK(!file_mapped(path_of(data_file)), "%s: %s still mapped after gcam_model_free", name, data_file);
}

/* From memory: everything copied; the buffer is scribbled over and freed before the run. */
static void check_memory(size_t as_is, size_t converted, const float *y0, const float *dx0) {
    size_t n;
    uint8_t *buf = read_all(path_of("aligned.onnx"), &n);
    CHECK(buf != NULL, "cannot read aligned.onnx");
    if (!buf) return;
    gcam_model *mm = NULL;
    gcam_status rc = gcam_model_load_memory(&mm, buf, n, g_dir, NULL);
    memset(buf, 0xA5, n);
    free(buf);
    CHECK(rc == GCAM_OK, "memory: load failed: %s", gcam_model_error(mm));
    const gc_model *m = gc_model_of(mm);
    CHECK(m->bytes_mapped == 0 && m->bytes_copied == as_is && m->bytes_converted == converted,
          "memory: %zu bytes mapped, %zu copied, %zu converted; expected 0, %zu, %zu", m->bytes_mapped,
          m->bytes_copied, m->bytes_converted, as_is, converted);
    float y[6], dx[3 * 8 * 8];
    if (!rc) {
        check_read_only(mm, "memory", NULL);
        if (run(mm, y, dx, "memory"))
            CHECK(memcmp(y0, y, sizeof y) == 0 && memcmp(dx0, dx, sizeof dx) == 0,
                  "memory: output or gradient differs from aligned.onnx's");
    }
    gcam_model_free(mm);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_load_map DIR\n");
        return 2;
    }
    g_dir = argv[1];
    for (int i = 0; i < 3 * 8 * 8; i++) g_x[i] = (float)((i * 7 % 13) - 6) / 8.0f; /* as the script's x */
    size_t n;
    float *ref = read_all(path_of("ref.bin"), &n);
    FILE *f = fopen(path_of("expect.txt"), "r");
    if (!ref || n != sizeof g_ref || !f) {
        fprintf(stderr, "test_load_map: %s: run load_map_models.py first\n", g_dir);
        return 1;
    }
    memcpy(g_ref, ref, sizeof g_ref);
    free(ref);
    char name[256];
    size_t mapped, copied, converted, as_is = 0, conv = 0;
    float y0[6], dx0[3 * 8 * 8];
    int models = 0;
    while (fscanf(f, "%255s %zu %zu %zu", name, &mapped, &copied, &converted) == 4) {
        if (!models) {
            as_is = mapped;
            conv = converted;
        }
        check_model(name, mapped, copied, converted, y0, dx0);
        models++;
    }
    fclose(f);
    CHECK(models >= 6, "only %d models in expect.txt", models);
    check_memory(as_is, conv, y0, dx0);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

/* Fuzz target: .npy bytes -> gc_npy_read_memory. A tensor that reads back must have a sane
 * shape, and writing it again and reading that gives the same bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/npy.h"

static char g_dir[512], g_path[600];

/* The private folder: under $GCAM_FUZZ_TMP (fuzz/run.sh points it into the build folder, since
 * libFuzzer ends processes with _Exit and the atexit clean-up does not always run), else /tmp. */
static void set_template(const char *kind) {
    const char *root = getenv("GCAM_FUZZ_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/gcam-fuzz-%s-XXXXXX", root && *root ? root : "/tmp", kind);
}

static void cleanup(void) {
    unlink(g_path);
    rmdir(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    set_template("npy");
    if (!mkdtemp(g_dir)) return 0;
    snprintf(g_path, sizeof g_path, "%s/t.npy", g_dir);
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gc_tensor t;
    gc_err err = {0};
    if (gc_npy_read_memory(data, size, "fuzz.npy", &t, &err)) {
        if (!err.msg[0] || t.data) abort();
        return 0;
    }
    int ok = 0;
    size_t bytes = gc_tensor_bytes(t.dtype, &t.shape, &ok);
    if (!ok || !t.data || t.shape.ndim < 0 || t.shape.ndim > GC_MAX_DIMS) abort();
    if (bytes && bytes <= 4096 && g_path[0]) { /* write + read back: the same tensor */
        gc_err e2 = {0};
        if (gc_npy_write(g_path, &t, &e2) == GCAM_OK) {
            gc_tensor u;
            if (gc_npy_read(g_path, &u, &e2) != GCAM_OK) abort();
            if (u.dtype != t.dtype || !gc_shape_eq(&u.shape, &t.shape) || memcmp(u.data, t.data, bytes) != 0) abort();
            free(u.data);
        }
    }
    free(t.data);
    return 0;
}

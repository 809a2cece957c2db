/* Fuzz target: .npy bytes -> gc_npy_read_memory. A tensor that reads back must have a sane
 * shape, and writing it again and reading that gives the same bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_tmp.h"

#include "image/npy.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    (void)fuzz_tmp_init("npy", "t.npy"); /* without it, the write-back check is skipped */
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

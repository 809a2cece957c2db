/* The private scratch folder of a fuzz target, included by the targets that write files. It lives
 * under $GCAM_FUZZ_TMP (fuzz/run.sh points it into the build folder, since libFuzzer ends
 * processes with _Exit and the atexit clean-up does not always run), else under /tmp. */
#ifndef GCAM_FUZZ_TMP_H
#define GCAM_FUZZ_TMP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char g_dir[512], g_path[600]; /* the folder; the one file in it ("" when none) */

static void fuzz_tmp_cleanup(void) {
    if (g_path[0]) unlink(g_path);
    if (g_dir[0]) rmdir(g_dir);
}

/* Creates gcam-fuzz-KIND-XXXXXX and names FILE in it (NULL: no file); removed at exit. Returns 0,
 * or -1 with g_dir and g_path empty when the folder cannot be made. */
static int fuzz_tmp_init(const char *kind, const char *file) {
    const char *root = getenv("GCAM_FUZZ_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/gcam-fuzz-%s-XXXXXX", root && *root ? root : "/tmp", kind);
    if (!mkdtemp(g_dir)) {
        g_dir[0] = g_path[0] = 0;
        return -1;
    }
    if (file) snprintf(g_path, sizeof g_path, "%s/%s", g_dir, file);
    atexit(fuzz_tmp_cleanup);
    return 0;
}

#endif

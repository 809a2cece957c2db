/* Fuzz target: `gradcam eval --boxes FILE.csv` -- the ground-truth CSV reader (ev_gt_read in
 * src/cli/eval_gt.c: RFC 4180 quoting, optional header, BOM, image,class,x0,y0,x1,y1). The input is
 * written to a file first: the reader takes a path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/eval.h"

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
    set_template("csv");
    if (!mkdtemp(g_dir)) abort();
    snprintf(g_path, sizeof g_path, "%s/boxes.csv", g_dir);
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(g_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    ev_gt gt;
    char msg[1024] = "";
    if (ev_gt_read(&gt, g_path, "images", msg, sizeof msg) != 0) {
        if (!msg[0]) abort(); /* a failure always says why */
    } else {
        for (int i = 0; i < gt.n; i++) {
            if (!gt.v[i].name || !gt.v[i].path || gt.v[i].n_objs < 1) abort();
            for (int k = 0; k < gt.v[i].n_objs; k++) {
                const ev_obj *o = &gt.v[i].objs[k];
                if (!o->cls_text || !(o->x1 > o->x0) || !(o->y1 > o->y0)) abort(); /* boxes are never empty */
            }
            if (i && strcmp(gt.v[i - 1].name, gt.v[i].name) > 0) abort(); /* sorted by name */
        }
    }
    ev_gt_free(&gt);
    return 0;
}

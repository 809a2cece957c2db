/* Fuzz target: `gradcam eval --boxes FILE.csv` -- the ground-truth CSV reader (ev_gt_read in
 * src/cli/eval_gt.c: RFC 4180 quoting, optional header, BOM, image,class,x0,y0,x1,y1). The input is
 * written to a file first: the reader takes a path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_tmp.h"

#include "cli/eval.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (fuzz_tmp_init("csv", "boxes.csv")) abort();
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

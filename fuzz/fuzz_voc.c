/* Fuzz target: `gradcam eval --boxes DIR` -- one Pascal VOC annotation through ev_voc_parse
 * (src/cli/eval_gt.c: a small XML reader for <annotation><object><name>/<bndbox>). */
#include <stdlib.h>
#include <string.h>

#include "cli/eval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ev_image img;
    memset(&img, 0, sizeof img);
    char msg[1024] = "";
    if (ev_voc_parse(&img, (const char *)data, size, "fuzz.xml", msg, sizeof msg) != 0) {
        if (!msg[0]) abort();
    } else {
        for (int k = 0; k < img.n_objs; k++) {
            const ev_obj *o = &img.objs[k];
            if (!o->cls_text || !(o->x1 > o->x0) || !(o->y1 > o->y0)) abort();
        }
        if (img.name && strchr(img.name, '/')) abort(); /* a file name, never a path */
    }
    for (int k = 0; k < img.n_objs; k++) free(img.objs[k].cls_text);
    free(img.objs);
    free(img.name);
    return 0;
}

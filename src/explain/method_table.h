/* What each explanation method is: one table (method_table.c) that the library, the command's
 * reports and its help all read. Adding a method: a gcam_method value (gradcam.h), a row here,
 * its computation in methods.c (cam_map's weights or pixel_map), and docs/methods.md. */
#ifndef GC_METHOD_TABLE_H
#define GC_METHOD_TABLE_H

#include "gradcam.h"

typedef struct gc_method_info {
    const char *name;        /* the API's and the command's name: "gradcam" */
    const char *title;       /* for reports: "Grad-CAM" */
    const char *plain_title; /* ASCII, for the terminal table and CSV of `gradcam eval` */
    int cam;                 /* 1: a map at a layer's resolution (CAM family); 0: pixel space */
    int needs_grad;          /* the target's gradient at the layer (CAM) or at the input (pixel) */
    gcam_rule rule;          /* the ReLU rule of the backward its map is made of */
    int batchable;           /* gcam_explain_many runs one backward for several targets at once */
} gc_method_info;

/* The row of method m; NULL when m is not a method. */
const gc_method_info *gc_method_info_of(gcam_method m);

#endif

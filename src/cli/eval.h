/* gradcam eval: ground truth (CSV or Pascal VOC), the results gathered, and the report writers. */
#ifndef GC_EVAL_H
#define GC_EVAL_H

#include "cli_common.h"
#include "common.h"
#include "explain/metrics.h"
#include "report/report.h"

/* ---- ground truth ---- */

typedef struct ev_obj {
    char *cls_text;        /* as written (index or label) */
    int64_t cls;           /* resolved class index, -1 until resolved */
    double x0, y0, x1, y1; /* original-image pixels, x1/y1 exclusive */
    int line;              /* CSV line or XML object number, for messages */
} ev_obj;

typedef struct ev_image {
    char *name;            /* as written in the ground truth */
    char *path;            /* resolved file path */
    ev_obj *objs;
    int n_objs, cap_objs;
} ev_image;

typedef struct ev_gt {
    ev_image *v;
    int n, cap;
    char *source;          /* the file or folder read */
    int is_csv;            /* ev_obj.line is a CSV line (else the object's number in its XML file) */
} ev_gt;

/* Reads FILE (CSV: image,class,x0,y0,x1,y1, a header optional) or a folder of Pascal VOC .xml
 * files into gt, images sorted by name. Image paths are joined to images_dir. On failure a
 * message (naming the file and line) is written to msg and -1 returned. */
int ev_gt_read(ev_gt *gt, const char *boxes, const char *images_dir, char *msg, size_t msg_size);
void ev_gt_free(ev_gt *gt);

/* One Pascal VOC annotation from memory: objects appended to img (name, bndbox converted from
 * 1-based inclusive to 0-based exclusive), img->name set from <filename> when present. */
int ev_voc_parse(ev_image *img, const char *xml, size_t n, const char *what, char *msg, size_t msg_size);

/* ---- results ---- */

#define EV_MAX_DEPTHS 64

typedef struct ev_method_result {
    gcam_method method;
    int skipped;              /* not applicable to the model (with -m all) */
    char skip_reason[256];
    /* localisation (one case per image) */
    int64_t loc_n, loc_err;
    double *ious;             /* per (image, class): best IoU with the class's boxes */
    int64_t n_ious, cap_ious;
    /* pointing game (per (image, class)) */
    int64_t pt_n, pt_hit;
    double energy_sum;
    int64_t energy_n;
    /* class discrimination (per ordered pair of classes on an image) */
    int64_t cd_n, cd_hit;
    /* faithfulness */
    int64_t fa_n;
    double del_sum, ins_sum;
    double *del_curve, *ins_curve; /* sums over cases, steps + 1 points */
    /* sanity */
    double sp_sum[EV_MAX_DEPTHS], ss_sum[EV_MAX_DEPTHS];
    int64_t sp_n[EV_MAX_DEPTHS], ss_n[EV_MAX_DEPTHS];
} ev_method_result;

typedef struct ev_summary {
    const char *model;
    const char *images_dir, *boxes;
    int n_images, n_failed, n_cases, n_pairs, n_boxes_dropped;
    int steps;
    const char *substrate;
    double blur_sigma, tolerance, threshold;
    int metrics;              /* EV_M_* bits */
    int n_depths;
    int depths[EV_MAX_DEPTHS];
    char depth_layer[EV_MAX_DEPTHS][128];
    int n_param_layers;
    int sanity_cases;
    uint64_t seed;
    const char *layers;       /* target layers of the CAM methods */
    const char *preprocess;   /* a one-line description */
    double seconds;
    char **failures;
    int n_failures;
} ev_summary;

enum { EV_M_LOC = 1, EV_M_POINT = 2, EV_M_DISCR = 4, EV_M_FAITH = 8, EV_M_SANITY = 16, EV_M_ALL = 31 };

/* Derived numbers of a method (NaN where there were no cases). */
typedef struct ev_row {
    double loc_error, iou_mean, iou_median, pointing, energy, discrimination, deletion, insertion;
} ev_row;
void ev_row_of(const ev_method_result *r, ev_row *row);
const char *ev_method_title(gcam_method m);

/* eval.csv, eval.json, eval.html under out_dir (written through temporary files). */
int ev_write_reports(const char *out_dir, const ev_summary *s, const ev_method_result *res, int n_methods,
                     gc_buf *cases_json, char *msg, size_t msg_size);
/* The table on stdout. */
void ev_print_table(FILE *f, const ev_summary *s, const ev_method_result *res, int n_methods);

#endif

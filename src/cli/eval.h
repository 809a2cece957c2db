/* gradcam eval: ground truth (CSV or Pascal VOC), the results gathered, and the report writers. */
#ifndef GC_EVAL_H
#define GC_EVAL_H

#include "cli_common.h"
#include "cli_opts.h"
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

/* ---- --task detect: matching ground truth to detections ---- */

/* A box in the picture's pixels (x1, y1 exclusive), its class, and (detections) its score. */
typedef struct ev_mbox {
    double x0, y0, x1, y1;
    int64_t cls;
    float score;
} ev_mbox;

/* Intersection over union of two continuous boxes (0 when the union is empty). */
double ev_mbox_iou(const ev_mbox *a, const ev_mbox *b);

/* Greedy matching (docs/evaluation.md, "Detectors"): the (ground truth, detection) pairs of one
 * class with IoU >= min_iou, taken by IoU descending (ties: the higher score, then the lower
 * ground-truth index, then the lower detection index) while both are free. det_of_gt (n_gt) and
 * gt_of_det (n_det) get the partner or -1; iou_of_gt (n_gt) the matched pair's IoU, or for a
 * missed box the best IoU with any detection of its class (0 when none). 0, or -1 when out of
 * memory. */
int ev_match(const ev_mbox *gt, int n_gt, const ev_mbox *det, int n_det, double min_iou, int *det_of_gt,
             int *gt_of_det, double *iou_of_gt);

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
    /* faithfulness (classify) */
    int64_t fa_n;
    double del_sum, ins_sum;
    double *del_curve, *ins_curve; /* sums over cases, steps + 1 points */
    /* sanity */
    double sp_sum[EV_MAX_DEPTHS], ss_sum[EV_MAX_DEPTHS];
    int64_t sp_n[EV_MAX_DEPTHS], ss_n[EV_MAX_DEPTHS];
} ev_method_result;


/* --task detect: ground-truth boxes (in the model's view), matched / missed, detections kept and
 * those matching no box (false positives). */
typedef struct ev_det_counts {
    int64_t gt, matched, missed, dets, fp;
} ev_det_counts;

typedef struct ev_det_summary {
    const char *layout;            /* the layout read (yolov8 / yolov5) */
    double score_threshold, iou_threshold, match_iou;
    int max_detections;
    ev_det_counts all;
    const ev_det_counts *per_class; /* (K) */
    int64_t K;
    const char *const *labels;     /* (n_labels) class names, or NULL */
    int64_t n_labels;
} ev_det_summary;

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
    int task;                 /* CLI_TASK_*; detect: cases are matched boxes, n_pairs 0 */
    ev_det_summary det;       /* detect */
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

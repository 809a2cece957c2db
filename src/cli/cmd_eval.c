/* gradcam eval MODEL --images DIR --boxes FILE: how well explanation methods localise, point,
 * discriminate classes, stay faithful to the model (deletion / insertion) and depend on its
 * weights (cascading randomisation). With --task detect: the detector's detections matched to the
 * ground truth, each matched detection's maps scored against its box. The metrics are in
 * src/explain/metrics.c, their definitions in docs/evaluation.md. */
#include <errno.h>
#include <math.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_common.h"
#include "cli_opts.h"
#include "eval.h"
#include "image/image.h"

/* ---- options ---- */

#define EV_MAX_LIST 64
#define EV_MATCH_IOU 0.5       /* a detection matches a ground-truth box from this IoU */

typedef struct ev_opts {
    cli_base_opts base;          /* as in 'gradcam explain' (first: cli_base_rows) */
    const char *model, *images, *boxes;
    gcam_method methods[GCAM_METHOD_COUNT];
    int n_methods, methods_all;
    const char *layers[EV_MAX_LIST];
    int n_layers;
    int metrics;
    double threshold, tolerance, blur_sigma;
    int steps, substrate, batch, limit, sanity_cases;
    int depths[EV_MAX_DEPTHS], n_depths, depth_all;
    int metrics_named;           /* --metrics bits named one by one (not through 'all') */
    char *owned[EV_MAX_LIST];
    int n_owned;
} ev_opts;

enum { SUB_BLUR, SUB_ZERO, SUB_MEAN };
static const char *const substrate_names[] = {"blur", "zero", "mean"};

/* The setters of the option table below. */
#define EVO ev_opts *o = opts
static int ev_images(void *opts, const char *name, const char *val) {
    EVO;
    o->images = val;
    return 0;
}
static int ev_boxes(void *opts, const char *name, const char *val) {
    EVO;
    o->boxes = val;
    return 0;
}
static int ev_limit(void *opts, const char *name, const char *val) {
    EVO;
    int64_t iv;
    if (cli_parse_i64(val, &iv) || iv < 1 || iv > 100000000) return cli_usage_error("--limit: '%s' is not a positive number", val);
    o->limit = (int)iv;
    return 0;
}
static int ev_method(void *opts, const char *name, const char *val) {
    EVO;
    return cli_set_methods(name, val, o->methods, &o->n_methods, &o->methods_all, "docs/methods.md");
}
static int ev_layer(void *opts, const char *name, const char *val) {
    EVO;
    char *copy = gc_strdup(val);
    if (!copy || o->n_owned >= EV_MAX_LIST) {
        free(copy);
        return cli_usage_error("%s: too many layers", name);
    }
    o->owned[o->n_owned++] = copy;
    for (char *p = copy, *tok; (tok = strsep(&p, ",")) != NULL;)
        if (*tok && o->n_layers < EV_MAX_LIST) o->layers[o->n_layers++] = tok;
    return 0;
}
static int ev_metrics(void *opts, const char *name, const char *val) {
    EVO;
    static const char *const mn[] = {"localisation", "pointing", "discrimination", "faithfulness", "sanity"};
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", val);
    o->metrics = 0;
    for (char *p = tmp, *tok; (tok = strsep(&p, ",")) != NULL;) {
        if (!*tok) continue;
        int found = strcasecmp(tok, "all") == 0 ? EV_M_ALL : 0;
        if (strcasecmp(tok, "localization") == 0) found = EV_M_LOC;
        for (int k = 0; k < 5 && !found; k++)
            if (strcasecmp(tok, mn[k]) == 0) found = 1 << k;
        if (!found)
            return cli_usage_error("--metrics: '%s' is not localisation, pointing, discrimination, faithfulness, "
                                   "sanity or all", tok);
        o->metrics |= found;
        if (found != EV_M_ALL) o->metrics_named |= found;
    }
    if (!o->metrics) return cli_usage_error("--metrics: empty list");
    return 0;
}
static int ev_threshold(void *opts, const char *name, const char *val) {
    EVO;
    if (cli_parse_dbl(val, &o->threshold) || !(o->threshold > 0 && o->threshold <= 1))
        return cli_usage_error("--threshold: '%s' is not in (0, 1]", val);
    return 0;
}
static int ev_tolerance(void *opts, const char *name, const char *val) {
    EVO;
    if (cli_parse_dbl(val, &o->tolerance) || o->tolerance < 0) return cli_usage_error("--tolerance: '%s' is not >= 0", val);
    return 0;
}
static int ev_steps(void *opts, const char *name, const char *val) {
    EVO;
    int64_t iv;
    if (cli_parse_i64(val, &iv) || iv < 1 || iv > 10000) return cli_usage_error("--steps: '%s' is not 1..10000", val);
    o->steps = (int)iv;
    return 0;
}
static int ev_substrate(void *opts, const char *name, const char *val) {
    EVO;
    o->substrate = -1;
    for (int k = 0; k < 3; k++)
        if (strcmp(val, substrate_names[k]) == 0) o->substrate = k;
    if (o->substrate < 0) return cli_usage_error("--substrate: '%s' is not blur, zero or mean", val);
    return 0;
}
static int ev_blur_sigma(void *opts, const char *name, const char *val) {
    EVO;
    double dv;
    if (cli_parse_dbl(val, &dv) || !(dv > 0) || dv > 1000) return cli_usage_error("--blur-sigma: '%s' is not in (0, 1000]", val);
    o->blur_sigma = dv;
    return 0;
}
static int ev_batch(void *opts, const char *name, const char *val) {
    EVO;
    int64_t iv;
    if (cli_parse_i64(val, &iv) || iv < 1 || iv > 4096) return cli_usage_error("--batch: '%s' is not 1..4096", val);
    o->batch = (int)iv;
    return 0;
}
static int ev_sanity_depths(void *opts, const char *name, const char *val) {
    EVO;
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", val);
    o->n_depths = 0;
    for (char *p = tmp, *tok; (tok = strsep(&p, ",")) != NULL;) {
        if (!*tok) continue;
        if (strcasecmp(tok, "all") == 0) {
            o->depth_all = 1;
            continue;
        }
        int64_t iv;
        if (cli_parse_i64(tok, &iv) || iv < 1 || iv > 1000000 || o->n_depths >= EV_MAX_DEPTHS - 1)
            return cli_usage_error("--sanity-depths: '%s' is not a positive number (or too many)", tok);
        o->depths[o->n_depths++] = (int)iv;
    }
    if (!o->n_depths && !o->depth_all) return cli_usage_error("--sanity-depths: empty list");
    return 0;
}
static int ev_sanity_cases(void *opts, const char *name, const char *val) {
    EVO;
    int64_t iv;
    if (cli_parse_i64(val, &iv) || iv < 1 || iv > 100000) return cli_usage_error("--sanity-cases: '%s' is not 1..100000", val);
    o->sanity_cases = (int)iv;
    return 0;
}
#undef EVO

static const cli_row g_eval_rows[] = {
    CLI_SECTION_ROW("Ground truth:"),
    CLI_OPT("--images", "DIR", "a folder", ev_images,
            "the images (PNG, JPEG); names in the boxes file are relative to it"),
    CLI_OPT("--boxes", "FILE|DIR", "a CSV file or a folder of VOC XML files", ev_boxes,
            "a CSV file 'image,class,x0,y0,x1,y1' (header optional; one row per box;\n"
            "class as index or label; pixels of the original image, x1 and y1\n"
            "EXCLUSIVE: x0 <= x < x1), or a folder of Pascal VOC .xml annotations\n"
            "(object/name, bndbox xmin..ymax, 1-based inclusive as VOC writes them)"),
    CLI_OPT("--labels", "FILE", "a file", cli_set_labels,
            "class names, one per line (1000-class outputs get the ImageNet names)"),
    CLI_OPT("--limit", "N", "a number", ev_limit, "only the first N images (sorted by name)"),
    CLI_SECTION_ROW("Methods and metrics:"),
    CLI_OPT("-m|--method", "LIST", "a method list", ev_method,
            "comma-separated, or 'all' (default gradcam,guided-backprop,guided-gradcam;\n"
            "with --task detect: hirescam)"),
    CLI_OPT("-l|--layer", "NAME", "a layer name", ev_layer,
            "target layer of the CAM methods (default: automatic, as in explain)"),
    CLI_OPT("--metrics", "LIST", "a list", ev_metrics,
            "localisation,pointing,discrimination,faithfulness,sanity or all (default;\n"
            "with --task detect: localisation, pointing, sanity)"),
    CLI_OPT("--threshold", "F", "a fraction", ev_threshold,
            "localisation: map threshold as a fraction of its maximum (default 0.15)"),
    CLI_OPT("--tolerance", "PX", "pixels", ev_tolerance, "pointing game tolerance in model-input pixels (default 15)"),
    CLI_OPT("--steps", "N", "a number", ev_steps, "deletion/insertion steps (default 50)"),
    CLI_OPT("--substrate", "S", "blur, zero or mean", ev_substrate,
            "what deleted pixels become: blur (default), zero (0 in the model's input,\n"
            "i.e. the normalisation mean) or mean (the image's mean colour)"),
    CLI_OPT("--blur-sigma", "S", "a number", ev_blur_sigma,
            "the blur substrate's Gaussian sigma in input pixels (default 5)"),
    CLI_OPT("--batch", "N", "a number", ev_batch,
            "perturbed images per forward pass when the batch axis is dynamic (default 16)"),
    CLI_OPT("--sanity-depths", "LIST", "a list", ev_sanity_depths,
            "numbers of top parameterised layers randomised, e.g. 1,2,4,all (default:\n"
            "every depth up to 16 layers, otherwise about 16 spread depths)"),
    CLI_OPT("--sanity-cases", "N", "a number", ev_sanity_cases,
            "(image, class) cases recomputed per depth (default 16)"),
    CLI_OPT("--seed", "N", "a number", cli_set_seed_opt, "seed of the randomised weights (default 0); results are deterministic"),
    CLI_INCLUDE_ROW(cli_token_rows),
    CLI_SECTION_ROW("Detectors (--task detect; docs/evaluation.md, \"Detectors\"):"),
    CLI_OPT("--task", "TASK", "a task", cli_set_task,
            "classify (default) | detect: decode the detector's output, match the detections to\n"
            "the boxes (same class, IoU >= 0.5) and score each matched detection's maps against\n"
            "its box (default method hirescam; metrics localisation, pointing, sanity; images\n"
            "letterboxed, RGB / 255, unless --resize-mode / --preprocess say otherwise)"),
    CLI_INCLUDE_ROW(cli_det_rows),
    CLI_SECTION_ROW("Images are turned into model inputs as in 'gradcam explain' (NCHW inputs only):"),
    CLI_INCLUDE_ROW(cli_pre_rows),
    CLI_TEXT_ROW("Boxes are mapped into the model's input through the same geometry (crop, letterbox, stretch);\n"
                 "boxes falling wholly outside the model's view are dropped (counted in the report)."),
    CLI_SECTION_ROW("Output and running:"),
    CLI_OPT("-o|--out", "DIR", "a folder", cli_set_out, "output folder (default ./gradcam-eval)"),
    CLI_FLAG("-q|--quiet", cli_set_quiet, "no progress bar and no table"),
    CLI_OPT("--threads", "N", "a number", cli_set_threads_opt, "worker threads (default: one per CPU the process may use)"),
    CLI_OPT("--max-memory", "BYTES", "a size", cli_set_max_memory,
            "cap on the memory planned per model run; suffixes K, M, G (default 8G)"),
    CLI_END_ROW,
};

static void print_eval_help(void) {
    printf("Usage: gradcam eval MODEL --images DIR --boxes FILE [options]\n\n"
           "Scores explanation methods against ground-truth boxes and prints one row per method; writes\n"
           "eval.csv, eval.json and eval.html (the table, deletion/insertion curves and sanity-check curves\n"
           "drawn as SVG) into the output folder. Every metric is defined in docs/evaluation.md. With --task detect,\n"
           "the detections are matched to the boxes and each matched detection's maps are scored against its box.\n\n");
    cli_print_options(g_eval_rows);
    printf("\n"
           "Example:\n"
           "  /usr/bin/python3 examples/demo/shapes.py eval /tmp/shapes --n 500\n"
           "  gradcam eval examples/demo/shapes_cnn.onnx --images /tmp/shapes --boxes /tmp/shapes/boxes.csv \\\n"
           "      --labels examples/demo/labels.txt -m gradcam,gradcam++,scorecam,guided-backprop\n"
           "  gradcam eval yolov8n.onnx --task detect --images VOC/JPEGImages --boxes VOC/Annotations --labels voc.txt\n\n"
           "Exit status: 0 success; 2 usage error; 3 bad model, boxes or images (images that fail are listed and\n"
           "left out); 1 other failures.\n");
}

static int ev_positional(void *opts, char *arg) {
    ev_opts *o = opts;
    if (o->model) return cli_usage_error("eval: unexpected argument '%s' (one MODEL; images come with --images)", arg);
    o->model = arg;
    return 0;
}

static int parse_options(int argc, char **argv, ev_opts *o) {
    memset(o, 0, sizeof *o);
    o->base.out = "gradcam-eval";
    o->metrics = EV_M_ALL;
    o->threshold = 0.15;
    o->tolerance = 15;
    o->blur_sigma = 5;
    o->steps = 50;
    o->batch = 16;
    o->sanity_cases = 16;
    cli_pre_defaults(&o->base.pre);
    cli_det_defaults(&o->base);
    int rc = cli_parse_options(argc, argv, g_eval_rows, o, ev_positional, print_eval_help, "eval");
    if (rc) return rc;
    if (!o->model) return cli_usage_error("eval: no MODEL given");
    if (!o->images) return cli_usage_error("eval: --images DIR is required");
    if (!o->boxes) return cli_usage_error("eval: --boxes FILE is required (CSV or a folder of VOC XML files)");
    if (o->methods_all) {
        o->n_methods = 0;
        for (int m = 0; m < GCAM_METHOD_COUNT; m++) o->methods[o->n_methods++] = (gcam_method)m;
    } else if (!o->n_methods && o->base.task == CLI_TASK_DETECT) {
        o->methods[0] = GCAM_HIRESCAM; /* a detection is one instance (docs/detection.md) */
        o->n_methods = 1;
    } else if (!o->n_methods) {
        o->methods[0] = GCAM_GRADCAM;
        o->methods[1] = GCAM_GUIDED_BACKPROP;
        o->methods[2] = GCAM_GUIDED_GRADCAM;
        o->n_methods = 3;
    }
    if (o->base.task != CLI_TASK_CLASSIFY && o->base.task != CLI_TASK_DETECT)
        return cli_usage_error("--task %s: eval takes classifiers and detectors (classify, detect), not yet %s",
                               o->base.task == CLI_TASK_SEGMENT ? "segment" : o->base.task == CLI_TASK_CAPTION ? "caption" : "vqa",
                               o->base.task == CLI_TASK_SEGMENT ? "segmentation" : "text tasks");
    if ((rc = cli_det_finish(&o->base)) || o->base.task != CLI_TASK_DETECT) return rc;
    /* detect: class discrimination and deletion / insertion do not apply (docs/evaluation.md) */
    if (o->metrics_named & (EV_M_DISCR | EV_M_FAITH))
        return cli_usage_error("--metrics: %s does not apply to --task detect (localisation, pointing, sanity do)",
                               (o->metrics_named & EV_M_DISCR) ? "discrimination" : "faithfulness");
    o->metrics &= EV_M_LOC | EV_M_POINT | EV_M_SANITY;
    return 0;
}

/* ---- run state ---- */

typedef struct ev_case_store { /* a sanity-check case: the input and the original maps */
    float *x;
    gcam_target target;        /* a class, or a detection's score (its elements are inline) */
    float **maps;              /* per method: [0,1]-normalised saliency (H, W), or NULL */
} ev_case_store;

typedef struct ev_run {
    ev_opts *o;
    gcam_model *m;
    gcam_tensor_info in0;
    cli_input_geom g;              /* the image input's layout and extents (-1: dynamic) */
    gcam_explainer *e;
    int64_t dims[4];               /* the explainer's input shape */
    gcam_ctx *ictx;                /* inference on perturbed batches */
    int64_t ibatch, idims[4];
    int prob_mode;                 /* output -> probability: 0 softmax, 1 as is, 2 exp, 3 sigmoid */
    int score_sigmoid;             /* the output is a Sigmoid (its scores are logits of one) */
    int64_t K;
    const char **labels;
    int64_t n_labels;
    char *labels_owned;
    int resolved;
    ev_gt gt;
    ev_method_result *res;
    ev_case_store *cases;
    int n_cases;
    char *layer_names;
    const char **layer_list;
    int n_layer_list;
    gc_buf cases_json;
    gc_json cj;
    ev_summary sum;
    cli_progress prog;
    float *batch_buf;              /* (ibatch, C, H, W) */
    double *probs;                 /* scratch */
    ev_det_counts *det_counts;     /* (K) --task detect, per class */
} ev_run;




static int load_labels(ev_run *R, const char *path) {
    return cli_labels_load(path, &R->labels, &R->n_labels, &R->labels_owned);
}

static const char *label_of(const ev_run *R, int64_t c) {
    return c >= 0 && c < R->n_labels && R->labels[c][0] ? R->labels[c] : NULL;
}

/* "boxes.csv:12 (img.png)" or "voc/ (img.png, object 2)": where a box was written. */
static const char *where(const ev_run *R, int i, const ev_obj *ob, char *buf, size_t n) {
    if (R->gt.is_csv) snprintf(buf, n, "%s:%d (%s)", R->gt.source, ob->line, R->gt.v[i].name);
    else snprintf(buf, n, "%s (%s, object %d)", R->gt.source, R->gt.v[i].name, ob->line);
    return buf;
}

/* Every box's class, once the number of classes is known. */
static int resolve_classes(ev_run *R) {
    char at[1200];
    if (R->o->base.labels_path) {
        if (R->n_labels != R->K)
            return cli_fail(CLI_BAD_INPUT, "%s: %lld labels for the model's %lld classes", R->o->base.labels_path,
                            (long long)R->n_labels, (long long)R->K);
    } else if (R->K == 1000) {
        R->labels = (const char **)gc_imagenet_labels;
        R->n_labels = 1000;
    }
    for (int i = 0; i < R->gt.n; i++)
        for (int k = 0; k < R->gt.v[i].n_objs; k++) {
            ev_obj *ob = &R->gt.v[i].objs[k];
            int64_t v;
            if (cli_parse_i64(ob->cls_text, &v) == 0) {
                if (v < 0 || v >= R->K)
                    return cli_fail(CLI_BAD_INPUT, "%s: class %lld is out of range 0..%lld", where(R, i, ob, at, sizeof at),
                                    (long long)v, (long long)R->K - 1);
                ob->cls = v;
                continue;
            }
            for (int64_t c = 0; c < R->n_labels && ob->cls < 0; c++)
                if (strcmp(R->labels[c], ob->cls_text) == 0) ob->cls = c;
            for (int64_t c = 0; c < R->n_labels && ob->cls < 0; c++)
                if (strcasecmp(R->labels[c], ob->cls_text) == 0) ob->cls = c;
            if (ob->cls < 0)
                return cli_fail(CLI_BAD_INPUT, "%s: no class named '%s'%s", where(R, i, ob, at, sizeof at), ob->cls_text,
                                R->n_labels ? "" : " (give --labels FILE, or class indices)");
        }
    R->resolved = 1;
    return 0;
}

static void input_layout(ev_run *R) { cli_input_geom_of(&R->g, &R->in0, R->o->base.pre.nhwc); }

static int default_imagenet(const ev_run *R) { return cli_default_imagenet(&R->o->base.pre, &R->g); }

static void make_preprocess(const ev_run *R, const gc_image *img, gc_preprocess *p) {
    cli_make_preprocess(p, &R->o->base.pre, &R->g, img);
}

/* An original-image box [x0, x1) mapped into input pixels: the pixels whose centres it holds
 * (at least the one nearest its centre when it is smaller than a pixel), clipped to the input. */
static int map_box(gc_box *out, const ev_obj *ob, const gc_geometry *g, int64_t W, int64_t H) {
    double ax0 = (ob->x0 - g->x0) / g->sx - 0.5, ax1 = (ob->x1 - g->x0) / g->sx - 0.5;
    double ay0 = (ob->y0 - g->y0) / g->sy - 0.5, ay1 = (ob->y1 - g->y0) / g->sy - 0.5;
    int64_t x0 = (int64_t)ceil(ax0), x1 = (int64_t)ceil(ax1), y0 = (int64_t)ceil(ay0), y1 = (int64_t)ceil(ay1);
    if (x1 <= x0) x0 = (int64_t)floor(0.5 * (ax0 + ax1) + 0.5), x1 = x0 + 1;
    if (y1 <= y0) y0 = (int64_t)floor(0.5 * (ay0 + ay1) + 0.5), y1 = y0 + 1;
    out->x0 = GC_MAX(x0, 0);
    out->y0 = GC_MAX(y0, 0);
    out->x1 = GC_MIN(x1, W);
    out->y1 = GC_MIN(y1, H);
    return gc_box_area(out) > 0;
}

/* ---- model runs ---- */

static void probs_mode(const ev_run *R, const float *s, int64_t inner, double *p, int prob_mode) {
    int64_t K = R->K;
    double mx = -INFINITY, z = 0;
    for (int64_t c = 0; c < K; c++) {
        double acc = 0;
        for (int64_t i = 0; i < inner; i++) acc += s[c * inner + i];
        p[c] = acc / (double)inner;
        mx = fmax(mx, p[c]);
    }
    int mode = prob_mode == 0 && K == 1 ? 3 : prob_mode;
    for (int64_t c = 0; c < K; c++) {
        switch (mode) {
        case 1: break;
        case 2: p[c] = exp(p[c]); break;
        case 3: p[c] = 1.0 / (1.0 + exp(-p[c])); break;
        default: p[c] = exp(p[c] - mx); z += p[c];
        }
    }
    if (z > 0)
        for (int64_t c = 0; c < K; c++) p[c] /= z;
}


/* Probabilities from the model's output. */
static void probs_of(const ev_run *R, const float *s, int64_t inner, double *p) { probs_mode(R, s, inner, p, R->prob_mode); }

/* Probabilities from the explained scores (before any final Softmax / Sigmoid). */
static void probs_of_scores(const ev_run *R, const float *s, int64_t inner, double *p) {
    probs_mode(R, s, inner, p, R->score_sigmoid ? 3 : 0);
}

/* The inference context for batches of perturbed inputs of the current shape. */
static gcam_status ensure_ictx(ev_run *R, gc_err *err) {
    int64_t B = R->g.batch_dynamic ? GC_MIN((int64_t)R->o->batch, (int64_t)R->o->steps + 1) : 1;
    int64_t d[4] = {B, R->dims[1], R->dims[2], R->dims[3]};
    if (R->ictx && memcmp(R->idims, d, sizeof d) == 0) return GCAM_OK;
    gcam_ctx_free(R->ictx);
    R->ictx = NULL;
    free(R->batch_buf);
    R->batch_buf = gc_malloc2((size_t)(B * d[1] * d[2] * d[3]), sizeof(float));
    if (!R->batch_buf) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
    gcam_feed f = {.name = R->in0.name, .dtype = GCAM_FLOAT32, .ndim = 4, .dims = d};
    gcam_ctx_options co = {.n_threads = R->o->base.threads, .max_memory = R->o->base.max_memory};
    gcam_status rc = gcam_ctx_create(&R->ictx, R->m, &f, 1, &co);
    if (rc) {
        gc_fail(err, rc, "%s", gcam_ctx_error(R->ictx));
        gcam_ctx_free(R->ictx);
        R->ictx = NULL;
        return rc;
    }
    memcpy(R->idims, d, sizeof d);
    R->ibatch = B;
    return GCAM_OK;
}

/* Runs the filled part of batch_buf (n samples; the rest repeats the last) and stores the
 * probability of class cls of each sample into out[0..n). */
static gcam_status run_batch(ev_run *R, int64_t n, int64_t cls, double *out, gc_err *err) {
    size_t per = (size_t)(R->idims[1] * R->idims[2] * R->idims[3]);
    for (int64_t b = n; b < R->ibatch; b++) memcpy(R->batch_buf + (size_t)b * per, R->batch_buf + (size_t)(n - 1) * per, per * sizeof(float));
    gcam_feed f = {.name = R->in0.name, .dtype = GCAM_FLOAT32, .ndim = 4, .dims = R->idims, .data = R->batch_buf};
    gcam_status rc = gcam_ctx_run(R->ictx, &f, 1);
    gcam_tensor_view v;
    if (!rc) rc = gcam_ctx_output(R->ictx, 0, &v);
    if (rc) return gc_fail(err, rc, "%s", gcam_ctx_error(R->ictx));
    if (v.ndim < 2 || v.dims[0] != R->ibatch || v.dims[1] != R->K)
        return gc_fail(err, GCAM_E_SHAPE, "the model's output is not (N, %lld, ...) for a batch of %lld", (long long)R->K,
                       (long long)R->ibatch);
    int64_t inner = 1;
    for (int d = 2; d < v.ndim; d++) inner *= v.dims[d];
    for (int64_t b = 0; b < n; b++) {
        probs_of(R, (const float *)v.data + b * R->K * inner, inner, R->probs);
        out[b] = R->probs[cls];
    }
    return GCAM_OK;
}

/* Deletion (insertion = 0) or insertion curve: y[0..steps]. */
static gcam_status perturb_curve(ev_run *R, const float *x, const float *sub, const int64_t *order, int64_t cls,
                                 int insertion, double *y, gc_err *err) {
    int64_t C = R->dims[1], plane = R->dims[2] * R->dims[3], steps = R->o->steps;
    size_t per = (size_t)(C * plane);
    gcam_status rc = GCAM_OK;
    for (int64_t i0 = 0; i0 <= steps && !rc; i0 += R->ibatch) {
        int64_t n = GC_MIN(R->ibatch, steps + 1 - i0);
        for (int64_t b = 0; b < n; b++) {
            int64_t k = gc_step_pixels(i0 + b, steps, plane);
            if (insertion) gc_perturb(R->batch_buf + (size_t)b * per, sub, x, order, k, C, plane);
            else gc_perturb(R->batch_buf + (size_t)b * per, x, sub, order, k, C, plane);
        }
        rc = run_batch(R, n, cls, y + i0, err);
    }
    return rc;
}

static void substrate(const ev_run *R, float *sub, const float *x) {
    int64_t C = R->dims[1], plane = R->dims[2] * R->dims[3];
    if (R->o->substrate == SUB_ZERO) {
        memset(sub, 0, sizeof(float) * (size_t)(C * plane));
    } else if (R->o->substrate == SUB_MEAN) {
        for (int64_t c = 0; c < C; c++) {
            double acc = 0;
            for (int64_t i = 0; i < plane; i++) acc += x[c * plane + i];
            for (int64_t i = 0; i < plane; i++) sub[c * plane + i] = (float)(acc / (double)plane);
        }
    } else if (gc_gaussian_blur(sub, x, C, R->dims[2], R->dims[3], R->o->blur_sigma)) {
        memset(sub, 0, sizeof(float) * (size_t)(C * plane)); /* out of memory: caught by the caller's next malloc */
    }
}

static int push_iou(ev_method_result *r, double v) {
    if (r->n_ious == r->cap_ious) {
        int64_t cap = r->cap_ious ? r->cap_ious * 2 : 256;
        double *p = realloc(r->ious, sizeof *p * (size_t)cap);
        if (!p) return -1;
        r->ious = p;
        r->cap_ious = cap;
    }
    r->ious[r->n_ious++] = v;
    return 0;
}

static void json_num(gc_json *j, const char *key, double v) {
    gc_json_key(j, key);
    gc_json_number(j, v);
}

/* ---- one image ---- */

enum { EV_DONE = 0, EV_FAILED = 1, EV_STOP = 100 };

static const char *explain_layers(ev_run *R) { return R->layer_names ? R->layer_names : ""; }

static int make_explainer(ev_run *R, const gcam_model *m, gcam_explainer **e, const gcam_feed *f, gc_err *err) {
    /* a detector's output is decoded and explained as is: its scores are the output's values */
    gcam_explain_options eo = {.layers = R->n_layer_list ? R->layer_list : (R->o->n_layers ? R->o->layers : NULL),
                               .n_layers = R->n_layer_list ? R->n_layer_list : R->o->n_layers,
                               .explain_probability = R->o->base.task == CLI_TASK_DETECT,
                               .n_threads = R->o->base.threads, .max_memory = R->o->base.max_memory, .noise_seed = R->o->base.seed,
                               .batch_size = R->o->batch, .tokens_h = R->o->base.tokens_h, .tokens_w = R->o->base.tokens_w,
                               .skip_tokens = R->o->base.skip_tokens};
    gcam_status rc = gcam_explainer_create(e, m, f, 1, &eo);
    if (rc) {
        gc_fail(err, rc, "%s", gcam_explainer_error(*e));
        gcam_explainer_free(*e);
        *e = NULL;
    }
    return rc;
}

/* One image's state while eval_image's phases run (freed by one_free). */
typedef struct ev_one {
    ev_image *img;
    gc_image orig;
    gc_geometry geom;                 /* the picture -> model input mapping */
    int64_t C, H, W, plane;           /* the model input (1, C, H, W) */
    float *x, *sub;                   /* (C, H, W) the input; the deletion substrate */
    float *S, *Sn;                    /* (H, W) a map's saliency; normalised (sanity cases) */
    int64_t *order;                   /* (H * W) pixels by saliency */
    double *curve;                    /* (steps + 1) a deletion / insertion curve */
    double *cscore, *probs;           /* (K) class scores; probabilities (R->probs) */
    gcam_tensor_view sv;              /* the explained scores */
    int64_t inner, top1;
    gcam_map map;
    gc_box *boxes, *cb, *ob;          /* (n_objs) boxes in the model's input; a class's; the others' */
    int64_t *bcls, *classes;          /* (n_objs) each box's class; the classes present */
    int n_boxes, n_classes, want_faith, store;
    /* --task detect */
    gcam_detection *dets;             /* (n_dets) decoded, best first */
    int64_t n_dets;
    ev_mbox *gtm, *dm;                /* (n_boxes) ground truth, (n_dets) detections: picture pixels */
    int *det_of_gt, *gt_of_det;       /* (n_boxes), (n_dets) the matching, -1: none */
    double *iou_of_gt;                /* (n_boxes) */
    gc_buf jb;                        /* the image's eval.json record */
    gc_json j;
} ev_one;

static void one_free(ev_one *s) {
    gcam_map_free(&s->map);
    gc_image_free(&s->orig);
    free(s->x);
    free(s->sub);
    free(s->S);
    free(s->Sn);
    free(s->order);
    free(s->curve);
    free(s->boxes);
    free(s->cb);
    free(s->ob);
    free(s->bcls);
    free(s->classes);
    free(s->cscore);
    free(s->dets);
    free(s->gtm);
    free(s->dm);
    free(s->det_of_gt);
    free(s->gt_of_det);
    free(s->iou_of_gt);
    gc_buf_free(&s->jb);
}

static int one_oom(const ev_one *s, gc_err *err) {
    gc_fail(err, GCAM_E_NOMEM, "%s: out of memory", s->img->path);
    return EV_FAILED;
}

/* The picture, preprocessed into the model input, and the per-image buffers. */
static int one_load(ev_run *R, ev_one *s, gc_err *err) {
    const ev_opts *o = R->o;
    ev_image *img = s->img;
    gcam_status rc;
    gc_decode_opts dopt = {.background = {255, 255, 255}};
    if ((rc = gc_image_load(img->path, &s->orig, &dopt, err))) return EV_FAILED;
    if (R->in0.ndim != 4 || (R->g.c > 0 && R->g.c != 3)) {
        gc_fail(err, GCAM_E_SHAPE, "the model input '%s' is not an RGB image batch (N, 3, H, W)", R->in0.name);
        return EV_STOP + CLI_BAD_INPUT;
    }
    gc_preprocess p;
    make_preprocess(R, &s->orig, &p);
    s->H = p.height;
    s->W = p.width;
    s->plane = s->H * s->W;
    s->C = 3;
    s->x = gc_malloc2((size_t)(s->C * s->plane), sizeof(float));
    s->S = gc_malloc2((size_t)s->plane, sizeof(float));
    s->Sn = gc_malloc2((size_t)s->plane, sizeof(float));
    s->order = gc_malloc2((size_t)s->plane, sizeof(int64_t));
    s->curve = gc_malloc2((size_t)o->steps + 1, sizeof(double));
    s->boxes = gc_malloc2((size_t)img->n_objs + 1, sizeof(gc_box));
    s->bcls = gc_malloc2((size_t)img->n_objs + 1, sizeof(int64_t));
    s->classes = gc_malloc2((size_t)img->n_objs + 1, sizeof(int64_t));
    if (!s->x || !s->S || !s->Sn || !s->order || !s->curve || !s->boxes || !s->bcls || !s->classes) return one_oom(s, err);
    if ((rc = gc_preprocess_image(s->x, NULL, &s->geom, &s->orig, &p, err))) return EV_FAILED;
    return 0;
}

/* The explainer for input f's shape; the CAM layers it chose are kept from the first one on. */
static int one_explainer(ev_run *R, ev_one *s, const gcam_feed *f, gc_err *err) {
    gcam_status rc;
    if (R->e && memcmp(R->dims, f->dims, sizeof R->dims) == 0) return 0;
    gcam_explainer_free(R->e);
    R->e = NULL;
    if ((rc = make_explainer(R, R->m, &R->e, f, err))) return R->resolved ? EV_FAILED : EV_STOP + cli_status_exit(rc);
    memcpy(R->dims, f->dims, sizeof R->dims);
    if (R->layer_names) return 0;
    gc_buf ln = {0};
    int nl = gcam_explainer_num_layers(R->e);
    R->layer_list = calloc((size_t)nl + 1, sizeof *R->layer_list);
    for (int i = 0; i < nl; i++) {
        if (i) gc_buf_puts(&ln, ", ");
        gc_buf_puts(&ln, gcam_explainer_layer(R->e, i));
    }
    R->layer_names = ln.p ? ln.p : gc_strdup("");
    if (ln.oom) R->layer_names = NULL, gc_buf_free(&ln);
    if (!R->layer_list || !R->layer_names) return one_oom(s, err);
    for (int i = 0; i < nl; i++)
        if (!(R->layer_list[i] = gc_strdup(gcam_explainer_layer(R->e, i)))) return one_oom(s, err);
    R->n_layer_list = nl;
    return 0;
}

/* First forward of a classifier: the classes (axis 1 of the score), the boxes' classes resolved. */
static int classify_first(ev_run *R, ev_one *s, gc_err *err) {
    if (s->sv.ndim < 2) {
        gc_fail(err, GCAM_E_SHAPE, "the model's score '%s' has no class axis", gcam_explainer_score_name(R->e));
        return EV_STOP + CLI_BAD_INPUT;
    }
    R->K = s->sv.dims[1];
    int rr = resolve_classes(R);
    if (rr) {
        err->msg[0] = 0;
        return EV_STOP + rr;
    }
    /* the classes are resolved once: without this buffer the run cannot go on */
    if (!(R->probs = calloc((size_t)R->K, sizeof(double)))) return EV_STOP + cli_fail(1, "out of memory");
    return 0;
}

/* First forward of a detector: the layout and the classes from the output's shape (a shape that
 * fits no layout stops the run), the boxes' classes resolved, the per-class counters. */
static int detect_first(ev_run *R, ev_one *s, gc_err *err) {
    ev_opts *o = R->o;
    char why[512];
    gcam_det_layout lay;
    err->msg[0] = 0;
    if (gcam_detect_layout(&s->sv, o->base.det.layout, &lay, &R->K, why, sizeof why))
        return EV_STOP + cli_fail(CLI_BAD_INPUT, "%s: --task detect: %s", o->model, why);
    o->base.det.layout = lay;
    int rr = resolve_classes(R);
    if (rr) return EV_STOP + rr;
    if (!(R->det_counts = gc_calloc2((size_t)R->K, sizeof *R->det_counts))) return EV_STOP + cli_fail(1, "out of memory");
    return 0;
}

/* The class scores (averaged over any spatial axes) and the top-1 class of a classifier. */
static int classify_top1(ev_run *R, ev_one *s, gc_err *err) {
    if (s->sv.ndim < 2 || s->sv.dims[1] != R->K) {
        gc_fail(err, GCAM_E_SHAPE, "the output has %lld classes for this image, %lld before", s->sv.ndim >= 2 ? (long long)s->sv.dims[1] : 0LL,
                (long long)R->K);
        return EV_FAILED;
    }
    s->inner = 1;
    for (int d = 2; d < s->sv.ndim; d++) s->inner *= s->sv.dims[d];
    s->cscore = calloc((size_t)R->K, sizeof(double));
    if (!s->cscore) return one_oom(s, err);
    for (int64_t c = 0; c < R->K; c++) {
        double acc = 0;
        for (int64_t i = 0; i < s->inner; i++) acc += ((const float *)s->sv.data)[c * s->inner + i];
        s->cscore[c] = acc / (double)s->inner;
    }
    s->top1 = 0;
    for (int64_t c = 1; c < R->K; c++)
        if (s->cscore[c] > s->cscore[s->top1]) s->top1 = c;
    return 0;
}

/* The explainer for this input shape, the forward pass, the scores (the output itself for a
 * detector); the classes on the first image; a classifier's top-1 class. */
static int one_forward(ev_run *R, ev_one *s, gc_err *err) {
    gcam_status rc;
    int64_t dims[4] = {1, s->C, s->H, s->W};
    gcam_feed f = {.name = R->in0.name, .dtype = GCAM_FLOAT32, .ndim = 4, .dims = dims, .data = s->x};
    int r = one_explainer(R, s, &f, err);
    if (r) return r;
    if ((rc = gcam_explainer_forward(R->e, &f, 1)) || (rc = gcam_explainer_scores(R->e, &s->sv))) {
        gc_fail(err, rc, "%s", gcam_explainer_error(R->e));
        return EV_FAILED;
    }
    int detect = R->o->base.task == CLI_TASK_DETECT;
    if (!R->resolved && (r = detect ? detect_first(R, s, err) : classify_first(R, s, err))) return r;
    return detect ? 0 : classify_top1(R, s, err);
}

/* The ground-truth boxes in the model's input, grouped by class; the image's JSON record begun. */
static int one_boxes(ev_run *R, ev_one *s, gc_err *err) {
    const ev_opts *o = R->o;
    ev_image *img = s->img;
    gcam_status rc;
    for (int k = 0; k < img->n_objs; k++) {
        gc_box b;
        if (!map_box(&b, &img->objs[k], &s->geom, s->W, s->H)) {
            R->sum.n_boxes_dropped++;
            continue;
        }
        s->boxes[s->n_boxes] = b;
        s->bcls[s->n_boxes++] = img->objs[k].cls;
        int dup = 0;
        for (int q = 0; q < s->n_classes; q++) dup |= s->classes[q] == img->objs[k].cls;
        if (!dup) s->classes[s->n_classes++] = img->objs[k].cls;
    }
    if (!s->n_boxes) {
        gc_fail(err, GCAM_E_ARG, "%s: no box lies inside the model's view of the image", img->path);
        return EV_FAILED;
    }
    s->want_faith = (o->metrics & EV_M_FAITH) != 0;
    if (s->want_faith) {
        if (!(s->sub = gc_malloc2((size_t)(s->C * s->plane), sizeof(float)))) return one_oom(s, err);
        substrate(R, s->sub, s->x);
        if ((rc = ensure_ictx(R, err))) return EV_FAILED;
    }
    s->store = (o->metrics & EV_M_SANITY) && R->n_cases < o->sanity_cases;

    gc_json_init(&s->j, &s->jb, 2);
    s->j.base = 2;
    gc_json_begin_object(&s->j);
    gc_json_key(&s->j, "image");
    gc_json_string(&s->j, img->name);
    gc_json_key(&s->j, "top1");
    gc_json_int(&s->j, s->top1);
    gc_json_key(&s->j, "top1_label");
    gc_json_string(&s->j, label_of(R, s->top1));
    gc_json_key(&s->j, "classes");
    gc_json_begin_array(&s->j);
    return 0;
}

/* Method mi's map of target t, as the saliency s->S (H, W). 0, also when the method turns out
 * not to apply to the model (r->skipped is then set: with -m all, or after the first image), or
 * EV_FAILED / EV_STOP + an exit code. what names the target in messages. */
static int method_saliency(ev_run *R, ev_one *s, int mi, const gcam_target *t, const char *what, gc_err *err) {
    ev_method_result *r = &R->res[mi];
    gcam_status rc = gcam_explain(R->e, r->method, t, &s->map);
    if (rc) {
        const char *why = gcam_explainer_error(R->e);
        if (rc == GCAM_E_UNSUPPORTED || rc == GCAM_E_ARG) { /* the method does not apply to this model */
            if (!R->o->methods_all && !R->sum.n_images) {
                gc_fail(err, rc, "%s: %s", gcam_method_name(r->method), why);
                return EV_STOP + CLI_BAD_INPUT;
            }
            r->skipped = 1;
            snprintf(r->skip_reason, sizeof r->skip_reason, "%s", why);
            return 0;
        }
        gc_fail(err, rc, "%s (%s): %s", gcam_method_name(r->method), what, why);
        return EV_FAILED;
    }
    gc_saliency(s->S, s->map.upsampled, s->map.c, s->H, s->W, gcam_method_is_cam(r->method));
    gcam_map_free(&s->map);
    return 0;
}

/* The sanity-check case cs (may be NULL) keeps method mi's map s->S, min-max normalised. */
static int case_keep_map(ev_one *s, ev_case_store *cs, int mi, gc_err *err) {
    if (!cs) return 0;
    gc_minmax01(s->Sn, s->S, (size_t)s->plane);
    if (!(cs->maps[mi] = gc_malloc2((size_t)s->plane, sizeof(float)))) return one_oom(s, err);
    memcpy(cs->maps[mi], s->Sn, sizeof(float) * (size_t)s->plane);
    return 0;
}

/* The localisation box of map s->S and its best IoU with boxes[0..nb) (*best; JSON "iou", "box"),
 * pushed as an IoU case. */
static int loc_box_iou(ev_run *R, ev_one *s, ev_method_result *r, const gc_box *boxes, int nb, double *best, gc_err *err) {
    gc_box lb;
    *best = 0;
    if (gc_localize_box(s->S, s->H, s->W, (float)R->o->threshold, &lb, NULL) < 0) return one_oom(s, err);
    for (int k = 0; k < nb; k++) *best = fmax(*best, gc_box_iou(&lb, &boxes[k]));
    if (push_iou(r, *best)) return one_oom(s, err);
    json_num(&s->j, "iou", *best);
    gc_json_key(&s->j, "box");
    gc_json_begin_array_inline(&s->j);
    gc_json_int(&s->j, lb.x0);
    gc_json_int(&s->j, lb.y0);
    gc_json_int(&s->j, lb.x1);
    gc_json_int(&s->j, lb.y1);
    gc_json_end_array(&s->j);
    return 0;
}

/* The pointing game and its energy on map s->S against boxes[0..nb) (JSON "pointing", "energy"). */
static void point_energy(ev_run *R, ev_one *s, ev_method_result *r, const gc_box *boxes, int nb) {
    int hit = gc_pointing_hit(s->S, s->H, s->W, boxes, nb, R->o->tolerance);
    double en = gc_energy_in(s->S, s->H, s->W, boxes, nb);
    r->pt_n++;
    r->pt_hit += hit;
    if (!isnan(en)) {
        r->energy_sum += en;
        r->energy_n++;
    }
    gc_json_key(&s->j, "pointing");
    gc_json_bool(&s->j, hit);
    json_num(&s->j, "energy", en);
}

/* One method's map of class cls and every metric of it (cb: the class's ncb boxes; cs: the
 * sanity-check case being stored, or NULL). */
static int one_method(ev_run *R, ev_one *s, int mi, int64_t cls, int ncb, ev_case_store *cs, gc_err *err) {
    const ev_opts *o = R->o;
    gcam_status rc;
    ev_method_result *r = &R->res[mi];
    if (r->skipped) return 0;
    char what[64];
    snprintf(what, sizeof what, "class %lld", (long long)cls);
    int e = method_saliency(R, s, mi, &(gcam_target){.kind = GCAM_TARGET_CLASS, .cls = cls}, what, err);
    if (e || r->skipped) return e;
    gc_json_key(&s->j, gcam_method_name(r->method));
    gc_json_begin_object(&s->j);
    if (o->metrics & EV_M_LOC) {
        double best;
        if ((e = loc_box_iou(R, s, r, s->cb, ncb, &best, err))) return e;
        if (cls == s->top1) { /* the image's localisation case: top-1 is a ground-truth class */
            r->loc_n++;
            r->loc_err += best < 0.5;
        }
    }
    if (o->metrics & EV_M_POINT) point_energy(R, s, r, s->cb, ncb);
    if ((o->metrics & EV_M_DISCR) && s->n_classes > 1) {
        double own = gc_mass_in(s->S, s->H, s->W, s->cb, ncb);
        int hits = 0, cases = 0;
        for (int v = 0; v < s->n_classes; v++) {
            if (s->classes[v] == cls) continue;
            int nob = 0;
            for (int k = 0; k < s->n_boxes; k++)
                if (s->bcls[k] == s->classes[v]) s->ob[nob++] = s->boxes[k];
            cases++;
            hits += own > gc_mass_in(s->S, s->H, s->W, s->ob, nob);
        }
        r->cd_n += cases;
        r->cd_hit += hits;
        json_num(&s->j, "discrimination", (double)hits / cases);
    }
    if (s->want_faith) {
        if (gc_rank_order(s->order, s->S, s->plane)) return one_oom(s, err);
        double d, in;
        if ((rc = perturb_curve(R, s->x, s->sub, s->order, cls, 0, s->curve, err))) return EV_FAILED;
        d = gc_auc(s->curve, o->steps + 1);
        for (int i = 0; i <= o->steps; i++) r->del_curve[i] += s->curve[i];
        if ((rc = perturb_curve(R, s->x, s->sub, s->order, cls, 1, s->curve, err))) return EV_FAILED;
        in = gc_auc(s->curve, o->steps + 1);
        for (int i = 0; i <= o->steps; i++) r->ins_curve[i] += s->curve[i];
        r->del_sum += d;
        r->ins_sum += in;
        r->fa_n++;
        json_num(&s->j, "deletion_auc", d);
        json_num(&s->j, "insertion_auc", in);
    }
    gc_json_end_object(&s->j);
    return case_keep_map(s, cs, mi, err);
}

/* The sanity-check case of target t (its input kept; the maps come with the methods) into *out,
 * or NULL when the sanity cases are complete. 0 or EV_FAILED. */
static int case_begin(ev_run *R, ev_one *s, const gcam_target *t, ev_case_store **out, gc_err *err) {
    *out = NULL;
    if (!s->store || R->n_cases >= R->o->sanity_cases) return 0;
    ev_case_store *cs = &R->cases[R->n_cases];
    memset(cs, 0, sizeof *cs);
    cs->target = *t;
    cs->x = gc_malloc2((size_t)(s->C * s->plane), sizeof(float));
    cs->maps = calloc((size_t)R->o->n_methods, sizeof(float *));
    if (!cs->x || !cs->maps) {
        free(cs->x);
        free(cs->maps);
        return one_oom(s, err);
    }
    memcpy(cs->x, s->x, sizeof(float) * (size_t)(s->C * s->plane));
    R->n_cases++;
    *out = cs;
    return 0;
}

/* Class u of the image: its boxes, the sanity case it may start, every method. */
static int one_class(ev_run *R, ev_one *s, int u, gc_err *err) {
    const ev_opts *o = R->o;
    int64_t cls = s->classes[u];
    int ncb = 0;
    for (int k = 0; k < s->n_boxes; k++)
        if (s->bcls[k] == cls) s->cb[ncb++] = s->boxes[k];
    ev_case_store *cs = NULL;
    int r = case_begin(R, s, &(gcam_target){.kind = GCAM_TARGET_CLASS, .cls = cls}, &cs, err);
    if (r) return r;
    gc_json_begin_object(&s->j);
    gc_json_key(&s->j, "class");
    gc_json_int(&s->j, cls);
    gc_json_key(&s->j, "label");
    gc_json_string(&s->j, label_of(R, cls));
    gc_json_key(&s->j, "probability");
    s->probs = R->probs;
    probs_of_scores(R, (const float *)s->sv.data, s->inner, s->probs);
    gc_json_number(&s->j, s->probs[cls]);
    gc_json_key(&s->j, "boxes");
    gc_json_begin_array(&s->j);
    for (int k = 0; k < ncb; k++) {
        gc_json_begin_array_inline(&s->j);
        gc_json_int(&s->j, s->cb[k].x0);
        gc_json_int(&s->j, s->cb[k].y0);
        gc_json_int(&s->j, s->cb[k].x1);
        gc_json_int(&s->j, s->cb[k].y1);
        gc_json_end_array(&s->j);
    }
    gc_json_end_array(&s->j);
    gc_json_key(&s->j, "methods");
    gc_json_begin_object(&s->j);
    for (int mi = 0; mi < o->n_methods; mi++)
        if ((r = one_method(R, s, mi, cls, ncb, cs, err))) return r;
    gc_json_end_object(&s->j);
    gc_json_end_object(&s->j);
    R->sum.n_cases++;
    return 0;
}

/* ---- --task detect: one image ---- */

/* A detection's box in the picture's pixels, clipped to the picture (explain's results.json box). */
static ev_mbox det_picture_box(const ev_one *s, const gcam_detection *d) {
    double v[4];
    cli_box_to_picture(&s->geom, (double)s->orig.w, (double)s->orig.h, (const double[4]){d->x0, d->y0, d->x1, d->y1}, v);
    return (ev_mbox){.x0 = v[0], .y0 = v[1], .x1 = v[2], .y1 = v[3], .cls = d->cls, .score = d->score};
}

/* The detections (score threshold, class-wise NMS, the best --max-detections), the ground-truth
 * boxes in the model's view (input pixels for the maps, picture pixels for the matching), and the
 * matching. No box in view is no failure here: every detection is then a false positive. */
static int det_boxes(ev_run *R, ev_one *s, gc_err *err) {
    ev_image *img = s->img;
    char why[512];
    if (gcam_detect_decode(&s->sv, &R->o->base.det, &s->dets, &s->n_dets, NULL, why, sizeof why)) {
        gc_fail(err, GCAM_E_SHAPE, "%s: %s", img->path, why);
        return EV_FAILED;
    }
    if (s->n_dets > R->o->base.det.max_detections) s->n_dets = R->o->base.det.max_detections;
    size_t ng = (size_t)img->n_objs + 1, nd = (size_t)s->n_dets + 1;
    s->gtm = gc_malloc2(ng, sizeof *s->gtm);
    s->det_of_gt = gc_malloc2(ng, sizeof *s->det_of_gt);
    s->iou_of_gt = gc_malloc2(ng, sizeof *s->iou_of_gt);
    s->dm = gc_malloc2(nd, sizeof *s->dm);
    s->gt_of_det = gc_malloc2(nd, sizeof *s->gt_of_det);
    if (!s->gtm || !s->det_of_gt || !s->iou_of_gt || !s->dm || !s->gt_of_det) return one_oom(s, err);
    for (int k = 0; k < img->n_objs; k++) {
        const ev_obj *ob = &img->objs[k];
        gc_box b;
        if (!map_box(&b, ob, &s->geom, s->W, s->H)) {
            R->sum.n_boxes_dropped++;
            continue;
        }
        s->boxes[s->n_boxes] = b;
        s->bcls[s->n_boxes] = ob->cls;
        s->gtm[s->n_boxes++] = (ev_mbox){.x0 = ob->x0, .y0 = ob->y0, .x1 = ob->x1, .y1 = ob->y1, .cls = ob->cls};
    }
    for (int64_t d = 0; d < s->n_dets; d++) s->dm[d] = det_picture_box(s, &s->dets[d]);
    if (ev_match(s->gtm, s->n_boxes, s->dm, (int)s->n_dets, EV_MATCH_IOU, s->det_of_gt, s->gt_of_det, s->iou_of_gt))
        return one_oom(s, err);
    s->store = (R->o->metrics & EV_M_SANITY) && R->n_cases < R->o->sanity_cases;
    return 0;
}

/* The image's counts: per class and overall, ground-truth boxes matched or missed, detections
 * and those matching nothing. */
static void det_count(ev_run *R, const ev_one *s) {
    ev_det_counts *all = &R->sum.det.all;
    for (int g = 0; g < s->n_boxes; g++) {
        ev_det_counts *c = &R->det_counts[s->bcls[g]];
        int hit = s->det_of_gt[g] >= 0;
        c->gt++, all->gt++;
        c->matched += hit, all->matched += hit;
        c->missed += !hit, all->missed += !hit;
    }
    for (int64_t d = 0; d < s->n_dets; d++) {
        ev_det_counts *c = &R->det_counts[s->dets[d].cls];
        int fp = s->gt_of_det[d] < 0;
        c->dets++, all->dets++;
        c->fp += fp, all->fp += fp;
    }
}

static void json_box4(gc_json *j, const char *key, double x0, double y0, double x1, double y1) {
    gc_json_key(j, key);
    gc_json_begin_array_inline(j);
    gc_json_number(j, x0);
    gc_json_number(j, y0);
    gc_json_number(j, x1);
    gc_json_number(j, y1);
    gc_json_end_array(j);
}

/* The image's eval.json "detections": each with its boxes (picture, input) and its ground truth. */
static void det_json_detections(const ev_run *R, ev_one *s) {
    gc_json *j = &s->j;
    gc_json_key(j, "detections");
    gc_json_begin_array(j);
    for (int64_t d = 0; d < s->n_dets; d++) {
        const gcam_detection *dt = &s->dets[d];
        gc_json_begin_object(j);
        gc_json_key(j, "class");
        gc_json_int(j, dt->cls);
        gc_json_key(j, "label");
        gc_json_string(j, label_of(R, dt->cls));
        gc_json_key(j, "score");
        gc_json_number_f(j, dt->score);
        gc_json_key(j, "anchor");
        gc_json_int(j, dt->anchor);
        json_box4(j, "box", s->dm[d].x0, s->dm[d].y0, s->dm[d].x1, s->dm[d].y1);
        json_box4(j, "box_input", dt->x0, dt->y0, dt->x1, dt->y1);
        gc_json_key(j, "ground_truth");
        if (s->gt_of_det[d] >= 0) gc_json_int(j, s->gt_of_det[d]);
        else gc_json_null(j);
        gc_json_end_object(j);
    }
    gc_json_end_array(j);
}

/* Method mi on the detection matched to ground-truth box g: its map scored against that box. */
static int det_method(ev_run *R, ev_one *s, int mi, int g, ev_case_store *cs, gc_err *err) {
    ev_method_result *r = &R->res[mi];
    int64_t d = s->det_of_gt[g];
    if (r->skipped) return 0;
    char what[64];
    snprintf(what, sizeof what, "detection %lld", (long long)d);
    int e = method_saliency(R, s, mi, &s->dets[d].target, what, err);
    if (e || r->skipped) return e;
    gc_json_key(&s->j, gcam_method_name(r->method));
    gc_json_begin_object(&s->j);
    if (R->o->metrics & EV_M_LOC) {
        double best;
        if ((e = loc_box_iou(R, s, r, &s->boxes[g], 1, &best, err))) return e;
    }
    if (R->o->metrics & EV_M_POINT) point_energy(R, s, r, &s->boxes[g], 1);
    gc_json_end_object(&s->j);
    return case_keep_map(s, cs, mi, err);
}

/* Ground-truth box g's eval.json record; when a detection matched it, every method on that
 * detection (a case). */
static int det_gt(ev_run *R, ev_one *s, int g, gc_err *err) {
    gc_json *j = &s->j;
    const ev_mbox *m = &s->gtm[g];
    int d = s->det_of_gt[g], r;
    gc_json_begin_object(j);
    gc_json_key(j, "class");
    gc_json_int(j, s->bcls[g]);
    gc_json_key(j, "label");
    gc_json_string(j, label_of(R, s->bcls[g]));
    json_box4(j, "box", m->x0, m->y0, m->x1, m->y1); /* as a detection's: the picture's, then the input's pixels */
    json_box4(j, "box_input", (double)s->boxes[g].x0, (double)s->boxes[g].y0, (double)s->boxes[g].x1, (double)s->boxes[g].y1);
    gc_json_key(j, "detection");
    if (d >= 0) gc_json_int(j, d);
    else gc_json_null(j);
    json_num(j, "iou", s->iou_of_gt[g]);
    if (d >= 0) {
        ev_case_store *cs = NULL;
        if ((r = case_begin(R, s, &s->dets[d].target, &cs, err))) return r;
        R->sum.n_cases++;
        if (!cs && !(R->o->metrics & (EV_M_LOC | EV_M_POINT))) { /* no map is needed */
            gc_json_end_object(j);
            return 0;
        }
        gc_json_key(j, "methods");
        gc_json_begin_object(j);
        for (int mi = 0; mi < R->o->n_methods; mi++)
            if ((r = det_method(R, s, mi, g, cs, err))) return r;
        gc_json_end_object(j);
    }
    gc_json_end_object(j);
    return 0;
}

/* Scores one image of a detector (EV_DONE, EV_FAILED or EV_STOP + an exit code, as eval_image). */
static int eval_image_det(ev_run *R, ev_image *img, gc_err *err) {
    ev_one s = {.img = img};
    int r;
    if ((r = one_load(R, &s, err)) || (r = one_forward(R, &s, err)) || (r = det_boxes(R, &s, err))) goto done;
    gc_json_init(&s.j, &s.jb, 2);
    s.j.base = 2;
    gc_json_begin_object(&s.j);
    gc_json_key(&s.j, "image");
    gc_json_string(&s.j, img->name);
    det_json_detections(R, &s);
    gc_json_key(&s.j, "ground_truth");
    gc_json_begin_array(&s.j);
    for (int g = 0; g < s.n_boxes; g++)
        if ((r = det_gt(R, &s, g, err))) goto done;
    gc_json_end_array(&s.j);
    gc_json_end_object(&s.j);
    if (s.jb.oom || s.j.bad) {
        r = one_oom(&s, err);
        goto done;
    }
    det_count(R, &s);
    gc_json_raw(&R->cj, s.jb.p);
done:
    one_free(&s);
    return r;
}

/* Scores one image: EV_DONE, EV_FAILED (err says why; the next image is tried) or EV_STOP + an
 * exit code (the run cannot go on). */
static int eval_image(ev_run *R, ev_image *img, gc_err *err) {
    if (R->o->base.task == CLI_TASK_DETECT) return eval_image_det(R, img, err);
    const ev_opts *o = R->o;
    ev_one s = {.img = img};
    int r;
    if ((r = one_load(R, &s, err)) || (r = one_forward(R, &s, err)) || (r = one_boxes(R, &s, err))) goto done;
    /* per class: boxes of the class; per method: the map and every metric */
    s.cb = gc_malloc2((size_t)s.n_boxes, sizeof(gc_box));
    s.ob = gc_malloc2((size_t)s.n_boxes, sizeof(gc_box));
    if (!s.cb || !s.ob) {
        r = one_oom(&s, err);
        goto done;
    }
    for (int u = 0; u < s.n_classes; u++)
        if ((r = one_class(R, &s, u, err))) goto done;

    if (s.n_classes > 1) R->sum.n_pairs += s.n_classes * (s.n_classes - 1);
    /* the localisation case of an image whose top-1 class is not in its ground truth */
    int top_in = 0;
    for (int u = 0; u < s.n_classes; u++) top_in |= s.classes[u] == s.top1;
    if (!top_in && (o->metrics & EV_M_LOC))
        for (int mi = 0; mi < o->n_methods; mi++)
            if (!R->res[mi].skipped) {
                R->res[mi].loc_n++;
                R->res[mi].loc_err++;
            }
    gc_json_end_array(&s.j);
    gc_json_end_object(&s.j);
    if (s.jb.oom || s.j.bad) {
        r = one_oom(&s, err);
        goto done;
    }
    gc_json_raw(&R->cj, s.jb.p);
done:
    one_free(&s);
    return r;
}

/* ---- the sanity check: the stored cases again on models with randomised top layers ---- */

static int sanity_depth(ev_run *R, int di, gc_err *err) {
    const ev_opts *o = R->o;
    int depth = R->sum.depths[di];
    gcam_model *rm = NULL;
    gcam_explainer *e = NULL;
    gcam_map map = {0};
    int64_t H = R->dims[2], W = R->dims[3], plane = H * W;
    float *S = gc_malloc2((size_t)plane, sizeof(float)), *Sn = gc_malloc2((size_t)plane, sizeof(float));
    int rc = GCAM_OK;
    if (!S || !Sn) {
        rc = gc_fail(err, GCAM_E_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = gc_model_randomize(&rm, R->m, depth, o->base.seed))) {
        gc_fail(err, rc, "randomising the top %d layers: %s", depth, gcam_model_error(rm));
        goto out;
    }
    int64_t dims[4] = {1, R->dims[1], H, W};
    gcam_feed f = {.name = R->in0.name, .dtype = GCAM_FLOAT32, .ndim = 4, .dims = dims};
    if ((rc = make_explainer(R, rm, &e, &f, err))) goto out;
    for (int c = 0; c < R->n_cases && !rc; c++) {
        ev_case_store *cs = &R->cases[c];
        f.data = cs->x;
        if ((rc = gcam_explainer_forward(e, &f, 1))) {
            gc_fail(err, rc, "%s", gcam_explainer_error(e));
            break;
        }
        for (int mi = 0; mi < o->n_methods && !rc; mi++) {
            ev_method_result *r = &R->res[mi];
            if (r->skipped || !cs->maps[mi]) continue;
            rc = gcam_explain(e, r->method, &cs->target, &map);
            if (rc) {
                gc_fail(err, rc, "%s on the randomised model: %s", gcam_method_name(r->method), gcam_explainer_error(e));
                break;
            }
            gc_saliency(S, map.upsampled, map.c, H, W, gcam_method_is_cam(r->method));
            gcam_map_free(&map);
            gc_minmax01(Sn, S, (size_t)plane);
            double sp = gc_spearman(cs->maps[mi], Sn, plane), ss = gc_ssim(cs->maps[mi], Sn, H, W);
            if (sp == -2 || ss == -2) {
                rc = gc_fail(err, GCAM_E_NOMEM, "out of memory");
                break;
            }
            /* a map that became constant has no ranks: it shares nothing with the original */
            r->sp_sum[di] += isnan(sp) ? 0 : sp;
            r->sp_n[di]++;
            r->ss_sum[di] += ss;
            r->ss_n[di]++;
        }
    }
out:
    gcam_map_free(&map);
    gcam_explainer_free(e);
    gcam_model_free(rm);
    free(S);
    free(Sn);
    return rc;
}

/* The randomisation depths: as asked, or every depth up to 16 layers, else about 16 spread ones. */
static void choose_depths(ev_run *R) {
    const ev_opts *o = R->o;
    int L = R->sum.n_param_layers, n = 0;
    int *d = R->sum.depths;
    if (o->n_depths || o->depth_all) {
        for (int i = 0; i < o->n_depths; i++)
            if (o->depths[i] <= L) d[n++] = o->depths[i];
        if (o->depth_all) d[n++] = L;
    } else if (L <= 16) {
        for (int k = 1; k <= L; k++) d[n++] = k;
    } else {
        for (int i = 1; i <= 16; i++) {
            int k = (int)lround(pow((double)L, (double)i / 16.0));
            if (!n || k > d[n - 1]) d[n++] = k;
        }
    }
    /* sorted, unique */
    for (int i = 1; i < n; i++)
        for (int q = i; q > 0 && d[q] < d[q - 1]; q--) {
            int t = d[q];
            d[q] = d[q - 1];
            d[q - 1] = t;
        }
    int m = 0;
    for (int i = 0; i < n; i++)
        if (d[i] >= 1 && (!m || d[i] != d[m - 1])) d[m++] = d[i];
    R->sum.n_depths = m;
    for (int i = 0; i < m; i++) {
        const char *ln = gc_model_param_layer(R->m, d[i] - 1);
        snprintf(R->sum.depth_layer[i], sizeof R->sum.depth_layer[i], "%s", ln ? ln : "?");
    }
}


static int add_failure(ev_run *R, const char *path, const char *why) {
    char **f = realloc(R->sum.failures, sizeof *f * (size_t)(R->sum.n_failures + 1));
    if (!f) return -1;
    R->sum.failures = f;
    size_t n = strlen(path) + strlen(why) + 3;
    char *s = malloc(n);
    if (!s) return -1;
    if (strncmp(why, path, strlen(path)) == 0) snprintf(s, n, "%s", why);
    else snprintf(s, n, "%s: %s", path, why);
    f[R->sum.n_failures++] = s;
    return 0;
}

/* The model (one NCHW image input), its output's kind, labels, the ground truth (--limit applied),
 * the output folder and the per-method accumulators. 0 or an exit code. */
static int ev_prepare(ev_run *R) {
    const ev_opts *o = R->o;
    char msg[1200];
    gcam_load_options lo = {.max_memory = o->base.max_memory};
    gcam_status rc = gcam_model_load(&R->m, o->model, &lo);
    if (rc) return cli_fail(cli_status_exit(rc), "%s", gcam_model_error(R->m));
    if (gcam_model_num_inputs(R->m) != 1)
        return cli_fail(CLI_BAD_INPUT, "%s: eval needs a model with one input (an image batch); it has %d", o->model,
                        gcam_model_num_inputs(R->m));
    gcam_model_input(R->m, 0, &R->in0);
    input_layout(R);
    if (R->g.nhwc)
        return cli_fail(CLI_BAD_INPUT, "%s: eval takes (N, 3, H, W) image inputs; '%s' is (N, H, W, C)", o->model,
                        R->in0.name);
    gcam_tensor_info oi;
    gcam_model_output(R->m, 0, &oi);
    const char *op = oi.op_type ? oi.op_type : "";
    R->prob_mode = strcmp(op, "Softmax") == 0 ? 1 : strcmp(op, "LogSoftmax") == 0 ? 2 : strcmp(op, "Sigmoid") == 0 ? 1 : 0;
    R->score_sigmoid = strcmp(op, "Sigmoid") == 0;
    int exit_code;
    if (o->base.labels_path && (exit_code = load_labels(R, o->base.labels_path))) return exit_code;
    if (ev_gt_read(&R->gt, o->boxes, o->images, msg, sizeof msg)) return cli_fail(CLI_BAD_INPUT, "%s", msg);
    if (o->limit && o->limit < R->gt.n) {
        for (int i = o->limit; i < R->gt.n; i++) {
            for (int k = 0; k < R->gt.v[i].n_objs; k++) free(R->gt.v[i].objs[k].cls_text);
            free(R->gt.v[i].objs);
            free(R->gt.v[i].name);
            free(R->gt.v[i].path);
        }
        R->gt.n = o->limit;
    }
    int e = cli_mkdir_p(o->base.out);
    if (e) return cli_fail(1, "%s: cannot create the output folder: %s", o->base.out, strerror(e));
    R->res = calloc((size_t)o->n_methods, sizeof *R->res);
    R->cases = calloc((size_t)o->sanity_cases, sizeof *R->cases);
    if (!R->res || !R->cases) return cli_fail(1, "out of memory");
    for (int i = 0; i < o->n_methods; i++) {
        R->res[i].method = o->methods[i];
        R->res[i].del_curve = calloc((size_t)o->steps + 1, sizeof(double));
        R->res[i].ins_curve = calloc((size_t)o->steps + 1, sizeof(double));
        if (!R->res[i].del_curve || !R->res[i].ins_curve) return cli_fail(1, "out of memory");
    }
    R->sum.n_param_layers = gc_model_num_param_layers(R->m);
    if (o->metrics & EV_M_SANITY) choose_depths(R);
    gc_json_init(&R->cj, &R->cases_json, 2);
    R->cj.base = 1;
    gc_json_begin_array(&R->cj);
    return 0;
}

/* Every image in turn (a failed one is listed and the next tried), then the sanity check's
 * depths. 0 or an exit code. */
static int ev_evaluate_all(ev_run *R, double t0, gc_err *err) {
    const ev_opts *o = R->o;
    R->prog = (cli_progress){.tty = isatty(STDERR_FILENO), .quiet = o->base.quiet,
                             .total = R->gt.n + ((o->metrics & EV_M_SANITY) ? R->sum.n_depths : 0), .t0 = t0};
    for (int i = 0; i < R->gt.n; i++) {
        cli_progress_bar(&R->prog, R->gt.v[i].name);
        gc_err_clear(err);
        int r = eval_image(R, &R->gt.v[i], err);
        if (r >= EV_STOP) {
            cli_progress_clear(&R->prog);
            if (err->msg[0]) cli_fail(r - EV_STOP, "%s", err->msg);
            return r - EV_STOP;
        }
        if (r == EV_FAILED) {
            if (add_failure(R, R->gt.v[i].path, err->msg[0] ? err->msg : "failed")) return cli_fail(1, "out of memory");
            R->sum.n_failed++;
            if (!o->base.quiet) {
                cli_progress_clear(&R->prog);
                fprintf(stderr, "%s: %s\n", g_prog, R->sum.failures[R->sum.n_failures - 1]);
            }
        } else {
            R->sum.n_images++;
        }
        R->prog.done++;
    }
    if (!R->sum.n_images) {
        cli_progress_clear(&R->prog);
        return cli_fail(CLI_BAD_INPUT, "no image could be evaluated");
    }
    for (int di = 0; (o->metrics & EV_M_SANITY) && di < R->sum.n_depths; di++) {
        char what[200];
        snprintf(what, sizeof what, "sanity check: top %d layer%s randomised", R->sum.depths[di], R->sum.depths[di] > 1 ? "s" : "");
        cli_progress_bar(&R->prog, what);
        gc_err_clear(err);
        if (sanity_depth(R, di, err)) {
            cli_progress_clear(&R->prog);
            return cli_fail(cli_status_exit(err->code), "sanity check: %s", err->msg);
        }
        R->prog.done++;
    }
    if (o->metrics & EV_M_SANITY) R->sum.sanity_cases = R->n_cases;
    cli_progress_clear(&R->prog);
    gc_json_end_array(&R->cj);
    return 0;
}

/* The run's settings for the reports; pre_desc (cap bytes) describes the preprocessing. */
static void ev_describe(ev_run *R, char *pre_desc, size_t cap) {
    const ev_opts *o = R->o;
    R->sum.model = o->model;
    R->sum.images_dir = o->images;
    R->sum.boxes = o->boxes;
    R->sum.steps = o->steps;
    R->sum.substrate = substrate_names[o->substrate];
    R->sum.blur_sigma = o->blur_sigma;
    R->sum.tolerance = o->tolerance;
    R->sum.threshold = o->threshold;
    R->sum.metrics = o->metrics;
    R->sum.seed = o->base.seed;
    R->sum.layers = explain_layers(R);
    R->sum.task = o->base.task;
    if (o->base.task == CLI_TASK_DETECT) {
        ev_det_summary *d = &R->sum.det;
        d->layout = gcam_det_layout_name(o->base.det.layout);
        d->score_threshold = o->base.det.score_threshold;
        d->iou_threshold = o->base.det.iou_threshold;
        d->max_detections = o->base.det.max_detections;
        d->match_iou = EV_MATCH_IOU;
        d->per_class = R->det_counts;
        d->K = R->det_counts ? R->K : 0;
        d->labels = R->labels;
        d->n_labels = R->labels ? R->n_labels : 0;
    }
    static const char *const modes[] = {"stretched", "shorter side resized and centre-cropped", "letterboxed"};
    gc_image dummy = {.w = R->dims[3], .h = R->dims[2]};
    gc_preprocess p;
    make_preprocess(R, &dummy, &p);
    snprintf(pre_desc, cap, "%lldx%lld input, %s, %s", (long long)R->dims[3], (long long)R->dims[2], modes[p.mode],
             default_imagenet(R) ? "ImageNet mean/std" : "RGB in 0..1 (raw)");
    if (o->base.pre.have_mean || o->base.pre.have_std || o->base.pre.have_scale) {
        size_t u = strlen(pre_desc);
        snprintf(pre_desc + u, cap - u, ", mean %g,%g,%g std %g,%g,%g scale %g", p.mean[0], p.mean[1], p.mean[2],
                 p.std[0], p.std[1], p.std[2], p.scale);
    }
    R->sum.preprocess = pre_desc;
}

/* eval.csv, eval.json, eval.html, the table, and the failures. The exit code. */
static int ev_report(ev_run *R, double t0) {
    const ev_opts *o = R->o;
    char pre_desc[256], msg[1200];
    ev_describe(R, pre_desc, sizeof pre_desc);
    R->sum.seconds = cli_now_s() - t0;
    if (R->cj.bad || R->cases_json.oom) return cli_fail(1, "out of memory building eval.json");
    if (ev_write_reports(o->base.out, &R->sum, R->res, o->n_methods, &R->cases_json, msg, sizeof msg))
        return cli_fail(1, "%s", msg);
    if (!o->base.quiet) {
        ev_print_table(stdout, &R->sum, R->res, o->n_methods);
        printf("\nEvaluated %d image%s in %.1f s: %s/eval.csv, %s/eval.json, %s/eval.html\n", R->sum.n_images,
               R->sum.n_images == 1 ? "" : "s", R->sum.seconds, o->base.out, o->base.out, o->base.out);
    }
    if (!R->sum.n_failures) return 0;
    fprintf(stderr, "%s: %d of %d images failed:\n", g_prog, R->sum.n_failures, R->gt.n);
    for (int i = 0; i < R->sum.n_failures; i++) fprintf(stderr, "  %s\n", R->sum.failures[i]);
    return CLI_BAD_INPUT;
}

static void ev_run_free(ev_run *R) {
    const ev_opts *o = R->o;
    gcam_explainer_free(R->e);
    gcam_ctx_free(R->ictx);
    gcam_model_free(R->m);
    ev_gt_free(&R->gt);
    if (R->res)
        for (int i = 0; i < o->n_methods; i++) {
            free(R->res[i].ious);
            free(R->res[i].del_curve);
            free(R->res[i].ins_curve);
        }
    free(R->res);
    if (R->cases)
        for (int c = 0; c < R->n_cases; c++) {
            free(R->cases[c].x);
            for (int mi = 0; R->cases[c].maps && mi < o->n_methods; mi++) free(R->cases[c].maps[mi]);
            free(R->cases[c].maps);
        }
    free(R->cases);
    for (int i = 0; i < R->sum.n_failures; i++) free(R->sum.failures[i]);
    free(R->sum.failures);
    for (int i = 0; i < R->n_layer_list; i++) free((char *)R->layer_list[i]);
    free(R->layer_list);
    free(R->layer_names);
    free(R->batch_buf);
    free(R->probs);
    free(R->det_counts);
    gc_buf_free(&R->cases_json);
    if (R->labels != (const char **)gc_imagenet_labels) free(R->labels);
    free(R->labels_owned);
}

int cmd_eval(int argc, char **argv) {
    ev_opts o;
    int exit_code = parse_options(argc, argv, &o);
    if (exit_code) {
        for (int i = 0; i < o.n_owned; i++) free(o.owned[i]);
        return exit_code < 0 ? 0 : exit_code;
    }
    ev_run R;
    memset(&R, 0, sizeof R);
    R.o = &o;
    gc_err err = {0};
    double t0 = cli_now_s();
    if (!(exit_code = ev_prepare(&R)) && !(exit_code = ev_evaluate_all(&R, t0, &err))) exit_code = ev_report(&R, t0);
    ev_run_free(&R);
    for (int i = 0; i < o.n_owned; i++) free(o.owned[i]);
    return exit_code;
}

/* gradcam explain MODEL INPUT...: heat maps, overlays, pixel-space maps, results.json and
 * report.html for every input and explained class. A batch goes on past a bad input.
 * This file: the options, the model, and the phases of one input (load, explainer, forward, what
 * to explain, the maps); explain_output.c writes what they produce. */
#define _GNU_SOURCE /* syncfs */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_opts.h"
#include "explain.h"
#include "explain/method_table.h"
#include "image/npy.h"

/* ---- options ---------------------------------------------------------------------------------- */

static char *own(ex_opts *o, char *p) {
    if (p && o->n_owned < (int)(sizeof o->owned / sizeof o->owned[0])) o->owned[o->n_owned++] = p;
    else if (p) { /* more copies than slots: cannot happen with the option limits, but never leak silently */
        free(p);
        return NULL;
    }
    return p;
}

/* Splits a comma list into dst (pointers into s, which is modified). */
static int split_list(char *s, const char **dst, int *n, int max) {
    for (char *p = s, *tok; (tok = strsep(&p, ",")) != NULL;) {
        while (*tok == ' ') tok++;
        size_t len = strlen(tok);
        while (len && tok[len - 1] == ' ') tok[--len] = 0;
        if (!*tok) continue;
        if (*n >= max) return -1;
        dst[(*n)++] = tok;
    }
    return 0;
}

static int parse_int_list(const char *s, int64_t *v, int *n, int max) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", s);
    *n = 0;
    for (char *p = tmp, *tok; (tok = strsep(&p, ",")) != NULL;) {
        if (*n >= max || cli_parse_i64(tok, &v[*n])) return -1;
        (*n)++;
    }
    return *n > 0 ? 0 : -1;
}

static int parse_target(char *s, ex_target_spec *t) {
    memset(t, 0, sizeof *t);
    if (strncmp(s, "class:", 6) == 0) {
        t->kind = GCAM_TARGET_CLASS;
        t->cls_text = s + 6;
        return *t->cls_text ? 0 : -1;
    }
    if (strncmp(s, "region:", 7) == 0) {
        char *cls = s + 7, *colon = strrchr(cls, ':');
        if (!colon || colon == cls) return -1;
        *colon = 0;
        int64_t v[4];
        int n;
        if (parse_int_list(colon + 1, v, &n, 4) || n != 4) return -1;
        t->kind = GCAM_TARGET_REGION;
        t->cls_text = cls;
        t->y0 = v[0];
        t->x0 = v[1];
        t->y1 = v[2];
        t->x1 = v[3];
        return 0;
    }
    if (strncmp(s, "element:", 8) == 0) {
        t->kind = GCAM_TARGET_ELEMENT;
        return parse_int_list(s + 8, t->index, &t->n_index, GCAM_MAX_DIMS);
    }
    return -1;
}

/* The setters of the option table below. */
#define EXO ex_opts *o = opts
static int ex_method(void *opts, const char *name, const char *val) {
    EXO;
    return cli_set_methods(name, val, o->methods, &o->n_methods, &o->methods_all,
                           "'gradcam explain --help' or docs/methods.md");
}
static int ex_class(void *opts, const char *name, const char *val) {
    EXO;
    char *copy = own(o, gc_strdup(val)); /* o->classes point into it */
    if (!copy || split_list(copy, o->classes, &o->n_classes, EX_MAX_LIST))
        return cli_usage_error("%s: at most %d classes", name, EX_MAX_LIST);
    return 0;
}
static int ex_top_k(void *opts, const char *name, const char *val) {
    EXO;
    int64_t k;
    if (cli_parse_i64(val, &k) || k < 1) return cli_usage_error("%s: '%s' is not a positive number", name, val);
    if (k > EX_MAX_LIST) return cli_usage_error("%s: at most %d classes per input", name, EX_MAX_LIST);
    o->top_k = (int)k;
    return 0;
}
static int ex_layer(void *opts, const char *name, const char *val) {
    EXO;
    char *copy = own(o, gc_strdup(val));
    if (!copy || split_list(copy, o->layers, &o->n_layers, EX_MAX_LIST))
        return cli_usage_error("%s: at most %d layers", name, EX_MAX_LIST);
    return 0;
}
static int ex_output(void *opts, const char *name, const char *val) {
    EXO;
    o->output = val;
    return 0;
}
static int ex_target(void *opts, const char *name, const char *val) {
    EXO;
    if (o->n_targets >= EX_MAX_LIST) return cli_usage_error("at most %d --target options", EX_MAX_LIST);
    char *copy = own(o, gc_strdup(val));
    if (!copy || parse_target(copy, &o->targets[o->n_targets]))
        return cli_usage_error("--target '%s': want class:C, region:C:y0,x0,y1,x1 or element:i,j,...", val);
    o->n_targets++;
    return 0;
}
static int ex_probability(void *opts, const char *name, const char *val) {
    EXO;
    o->probability = 1;
    return 0;
}
static int ex_colormap(void *opts, const char *name, const char *val) {
    EXO;
    int c = gc_colormap_from_name(val);
    if (c < 0) return cli_usage_error("--colormap: '%s' is not jet, viridis, inferno, turbo or gray", val);
    o->cmap = c;
    return 0;
}
static int ex_alpha(void *opts, const char *name, const char *val) {
    EXO;
    if (cli_parse_float(val, &o->alpha) || o->alpha < 0 || o->alpha > 1)
        return cli_usage_error("--alpha: '%s' is not a number from 0 to 1", val);
    return 0;
}
static int ex_npy(void *opts, const char *name, const char *val) {
    EXO;
    o->npy = 1;
    return 0;
}
static int ex_feed_opt(void *opts, const char *name, const char *val) {
    EXO;
    const char *e2 = strchr(val, '=');
    if (!e2 || e2 == val || !e2[1]) return cli_usage_error("--feed needs NAME=FILE.npy, got '%s'", val);
    if (o->n_feeds >= 31) return cli_usage_error("at most 31 --feed options");
    char *nm = own(o, gc_strndup(val, (size_t)(e2 - val)));
    if (!nm) return cli_fail(1, "out of memory");
    o->feed_names[o->n_feeds] = nm;
    o->feed_paths[o->n_feeds++] = e2 + 1;
    return 0;
}
static int ex_mask(void *opts, const char *name, const char *val) {
    EXO;
    o->mask_path = val;
    return 0;
}
static int ex_text(void *opts, const char *name, const char *val) {
    EXO;
    if (strcmp(name, "--caption") == 0) o->caption = val;
    else if (strcmp(name, "--question") == 0) o->question = val;
    else o->vocab_path = val;
    return 0;
}
static int ex_max_words(void *opts, const char *name, const char *val) {
    EXO;
    int64_t k;
    if (cli_parse_i64(val, &k) || k < 1 || k > EX_MAX_LIST - 1)
        return cli_usage_error("%s: '%s' is not a number from 1 to %d", name, val, EX_MAX_LIST - 1);
    o->max_words = (int)k;
    return 0;
}
static int ex_batch_opt(void *opts, const char *name, const char *val) {
    EXO;
    int64_t k;
    if (strcmp(val, "auto") == 0) k = EX_AUTO_BATCH;
    else if (cli_parse_i64(val, &k) || k < 1 || k > EX_MAX_BATCH)
        return cli_usage_error("%s: '%s' is not 'auto' or a number from 1 to %d", name, val, EX_MAX_BATCH);
    o->batch = (int)k;
    return 0;
}
static int ex_box(void *opts, const char *name, const char *val) {
    EXO;
    char buf[256], *tok, *save = NULL;
    int n = 0;
    snprintf(buf, sizeof buf, "%s", val);
    for (tok = strtok_r(buf, ",", &save); tok && n < 5; tok = strtok_r(NULL, ",", &save))
        if (n == 4 || cli_parse_float(tok, &o->box[n++])) n = 5;
    if (n != 4 || o->box[2] <= o->box[0] || o->box[3] <= o->box[1])
        return cli_usage_error("%s: want x0,y0,x1,y1 in picture pixels with x1 > x0 and y1 > y0, got '%s'", name, val);
    o->have_box = 1;
    return 0;
}
#undef EXO

static void print_method_names(void) { cli_print_method_names(25, 100, " (docs/methods.md)"); }

static const cli_row g_explain_rows[] = {
    CLI_SECTION_ROW("What to explain:"),
    {CLI_OPTION, "-m|--method", "LIST", "a method list", ex_method,
     "comma-separated, or 'all' (default gradcam,guided-backprop,guided-gradcam; hirescam\n"
     "instead of gradcam for detections, segments and region targets):", print_method_names, NULL},
    CLI_OPT("-c|--class", "LIST", "a class list", ex_class,
            "classes to explain, by index or label name, comma-separated (repeatable)"),
    CLI_OPT("-k|--top-k", "K", "a number", ex_top_k,
            "without --class: explain the K highest-scoring classes (default 1)"),
    CLI_OPT("-l|--layer", "NAME", "a layer name", ex_layer,
            "target layer of the CAM methods: a tensor or node name; repeatable or\n"
            "comma-separated (maps averaged). Default: the last spatial activation\n"
            "before the output ('gradcam info MODEL' names it)"),
    CLI_OPT("--output", "NAME", "an output name", ex_output, "the model output to explain (default: the first)"),
    CLI_OPT("--target", "SPEC", "a target", ex_target,
            "explain this instead of classes (repeatable):\n"
            "  class:C                  class C (index or label)\n"
            "  region:C:y0,x0,y1,x1     class C's scores summed over output rows y0..y1-1,\n"
            "                           columns x0..x1-1 (segmentation outputs)\n"
            "  element:i,j,...          one output element (the batch index may be left out)"),
    CLI_INCLUDE_ROW(cli_token_rows),
    CLI_FLAG("--probability", ex_probability,
             "explain the probability after a final Softmax/Sigmoid, not the score before it"),
    CLI_OPT("--seed", "N", "a number", cli_set_seed_opt, "SmoothGrad noise seed (default 0)"),
    CLI_SECTION_ROW("Detectors (--task detect, docs/detection.md):"),
    CLI_OPT("--task", "TASK", "a task", cli_set_task,
            "classify (default) | detect: decode the output's boxes, explain each detection's\n"
            "score (default methods hirescam,guided-backprop,guided-gradcam; --class filters;\n"
            "images letterboxed, RGB / 255, unless --resize-mode / --preprocess say otherwise)\n"
            "| segment: explain each class present in a (N, C, H, W) output over the pixels\n"
            "predicted as that class (--class: those classes; same default methods)"),
    CLI_INCLUDE_ROW(cli_det_rows),
    CLI_OPT("--box", "x0,y0,x1,y1", "a box", ex_box,
            "detect: explain the candidate that best overlaps this box (picture pixels) instead;\n"
            "segment: explain one segment, the output's pixels inside this box"),
    CLI_OPT("--mask", "FILE.png", "a PNG file", ex_mask,
            "segment: explain one segment, the output's pixels where this picture-sized mask\n"
            "is not 0 (class: --class, else the one predicted most inside)"),
    CLI_SECTION_ROW("Captions and visual questions (--task caption | vqa, docs/captioning.md):"),
    CLI_OPT("--caption", "TEXT", "a caption", ex_text,
            "caption: explain this caption (teacher-forced): each word's log-probability at its\n"
            "step and the whole caption's; without it, the model's greedy caption is explained"),
    CLI_OPT("--question", "TEXT", "a question", ex_text, "vqa: the question; its top answers (-k) are explained"),
    CLI_OPT("--vocab", "FILE", "a file", ex_text, "the text's vocabulary: one token per line, line i = id i\n"
            "(<bos>, <eos>, <unk> by name; --labels names a VQA model's answers)"),
    CLI_OPT("--max-words", "N", "a number", ex_max_words, "greedy captions: at most N words (default 16)"),
    CLI_SECTION_ROW("Images are turned into model inputs as follows:"),
    CLI_INCLUDE_ROW(cli_pre_rows),
    CLI_SECTION_ROW("Output:"),
    CLI_OPT("-o|--out", "DIR", "a folder", cli_set_out, "output folder (default ./gradcam-out), created when missing"),
    CLI_OPT("--labels", "FILE", "a file", cli_set_labels,
            "class names, one per line (1000-class outputs get the ImageNet names)"),
    CLI_OPT("--colormap", "NAME", "a colour map name", ex_colormap, "jet | viridis | inferno | turbo | gray (default jet)"),
    CLI_OPT("--alpha", "A", "a number", ex_alpha, "heat map opacity on overlays, 0..1 (default 0.5)"),
    CLI_FLAG("--npy", ex_npy, "also write every raw map (before upsampling and normalisation) as .npy"),
    CLI_OPT("--report", "MODE", "a report mode", ex_report_opt,
            "report.html's pictures: embed (inline: one self-contained page) | link (the PNG\n"
            "files beside it, relative: a page of inputs at a time) | auto (default: embed up\n"
            "to 20 inputs)"),
    CLI_FLAG("-q|--quiet", cli_set_quiet, "no progress and no summary (errors are still printed)"),
    CLI_SECTION_ROW("Running:"),
    CLI_OPT("--feed", "NAME=FILE.npy", "NAME=FILE.npy", ex_feed_opt, "a further model input; repeatable"),
    CLI_OPT("--threads", "N", "a number", cli_set_threads_opt, "worker threads (default: one per CPU the process may use)"),
    CLI_OPT("--batch", "N|auto", "a batch size", ex_batch_opt,
            "run up to N inputs of one shape through the model together (auto: 8;\n"
            "default 1: one by one). Only for a dynamic batch axis, --task classify\n"
            "without --feed or --target, and methods computed per sample (the gradient\n"
            "CAMs but the Eigen-CAMs and CAM; the gradient pixel maps but SmoothGrad and\n"
            "Integrated Gradients); else one by one. Scores and maps equal one by one's\n"
            "within float rounding (docs/performance.md)"),
    CLI_OPT("--max-memory", "BYTES", "a size in bytes", cli_set_max_memory,
            "cap on the memory planned per model run, and on constants\n"
            "computed at load; suffixes K, M, G (default 8G)"),
    CLI_END_ROW,
};

static void print_explain_help(void) {
    printf(
        "Usage: gradcam explain MODEL INPUT... [options]\n\n"
        "Explains MODEL's predictions on each INPUT: an image (PNG, JPEG), a float32 .npy tensor (the model\n"
        "input as is, with or without the batch axis) or a folder (searched recursively for .png, .jpg,\n"
        ".jpeg and .npy files: pictures and tensors in one list sorted by path, hidden entries skipped).\n"
        "For every input and explained class it writes heat maps, overlays and pixel-space maps into the\n"
        "output folder, with results.json (predictions, maps, localisation boxes) and report.html (readable\n"
        "offline: self-contained for up to 20 inputs, else linking the PNG files beside it, see --report).\n\n");
    cli_print_options(g_explain_rows);
    printf(
        "\n"
        "Files written, per input STEM (its file name without extension) and class C:\n"
        "  STEM_input.png                  the exact image the model saw\n"
        "  STEM_cC_METHOD_heatmap.png      a CAM-family map in colour (at the model's input size)\n"
        "  STEM_cC_METHOD_overlay.png      the same blended over the model's view\n"
        "  STEM_cC_METHOD_photo.png        the same mapped back onto the original photo\n"
        "  STEM_cC_METHOD.png              pixel-space maps (guided-backprop, guided-gradcam, ...)\n"
        "  STEM_cC_METHOD.npy              raw maps (--npy)\n"
        "  results.json, report.html\n"
        "  STEM_TAG_segment.png, STEM_picture.png   a linked report's segment and detection pictures\n"
        "(regions and elements are tagged rC-y0-x0-y1-x1 and eI-J-..., detections dI by rank; 'gradcam++' is\n"
        "written 'gradcampp')\n\n"
        "Examples:\n"
        "  gradcam explain examples/demo/shapes_cnn.onnx examples/demo/images/ --labels examples/demo/labels.txt\n"
        "  gradcam explain resnet50.onnx cat.jpg\n"
        "  gradcam explain resnet50.onnx photos/ -k 3 -m all -o out/\n"
        "  gradcam explain resnet50.onnx dog.png -c 'bull mastiff',tabby -m gradcam,gradcam++ --npy\n"
        "  gradcam explain resnet18.onnx x.npy -l /layer3/layer3.1/relu_1/Relu_output_0 -c 7\n"
        "  gradcam explain unet.onnx scan.png --preprocess raw --size 256x256 --target region:1:100,80,140,120\n"
        "  gradcam explain mnist.onnx digit.png --mean 0.1307 --std 0.3081\n"
        "  gradcam explain yolov8n.onnx street.jpg --task detect --score-threshold 0.4 --class car\n\n"
        "Exit status: 0 every input explained; 2 usage error; 3 bad model, or bad inputs (the others are still\n"
        "explained and the failures listed at the end); 1 other failures (e.g. the output cannot be written).\n");
}

static int ex_positional(void *opts, char *arg) {
    ex_opts *o = opts;
    if (!o->model) o->model = arg;
    else o->inputs[o->n_inputs++] = arg;
    return 0;
}

/* Parses argv into o; returns -1 when --help was shown (exit 0), a CLI_USAGE code, or 0. tool: the
 * command as a library (tool.c): MODEL and options only. */
int ex_parse_options(int argc, char **argv, ex_opts *o, int tool) {
    memset(o, 0, sizeof *o);
    o->top_k = 1;
    cli_pre_defaults(&o->base.pre);
    o->cmap = GC_CMAP_JET;
    o->alpha = 0.5f;
    o->base.out = "gradcam-out";
    cli_det_defaults(&o->base);
    o->inputs = calloc((size_t)argc, sizeof *o->inputs);
    if (!o->inputs) return cli_fail(1, "out of memory");
    int rc = cli_parse_options(argc, argv, g_explain_rows, o, ex_positional, print_explain_help, "explain");
    if (rc) return rc;
    if (!o->model) return cli_usage_error("explain: no MODEL given");
    if (tool && o->n_inputs) return cli_usage_error("'%s': options only (the inputs come one by one)", o->inputs[0]);
    if (!tool && !o->n_inputs) return cli_usage_error("explain: no INPUT given (an image, a .npy file or a folder)");
    if ((o->caption || (!o->question && o->vocab_path)) && o->base.task == CLI_TASK_CLASSIFY) o->base.task = CLI_TASK_CAPTION;
    if (o->question && o->base.task == CLI_TASK_CLASSIFY) o->base.task = CLI_TASK_VQA;
    if (o->methods_all) {
        o->n_methods = 0;
        for (int m = 0; m < GCAM_METHOD_COUNT; m++) o->methods[o->n_methods++] = (gcam_method)m;
    } else if (!o->n_methods) {
        /* a detection, a segment or a region is one instance: HiResCAM's element-wise weights keep
         * to it where Grad-CAM's channel means light every object of the class (docs/methods.md) */
        int instance = o->base.task == CLI_TASK_DETECT || o->base.task == CLI_TASK_SEGMENT;
        for (int i = 0; i < o->n_targets; i++) instance |= o->targets[i].kind == GCAM_TARGET_REGION;
        o->methods[0] = instance ? GCAM_HIRESCAM : GCAM_GRADCAM;
        o->methods[1] = GCAM_GUIDED_BACKPROP;
        o->methods[2] = GCAM_GUIDED_GRADCAM;
        o->n_methods = 3;
    }
    if (o->n_targets && o->n_classes) return cli_usage_error("give either --class or --target, not both");
    if (o->caption && o->base.task != CLI_TASK_CAPTION) return cli_usage_error("--caption needs --task caption");
    if (o->question && o->base.task != CLI_TASK_VQA) return cli_usage_error("--question needs --task vqa");
    if (o->base.task == CLI_TASK_VQA && !o->question && !tool) /* (the tool's requests give theirs) */
        return cli_usage_error("--task vqa needs --question TEXT");
    if (o->max_words && (o->base.task != CLI_TASK_CAPTION || o->caption))
        return cli_usage_error("--max-words is for the greedy captions of --task caption");
    if (o->base.task == CLI_TASK_CAPTION) {
        if (o->n_targets || o->n_classes)
            return cli_usage_error("--task caption explains the caption's words: --%s does not apply",
                                   o->n_targets ? "target" : "class");
        o->probability = 1; /* a word's log-probability, after the LogSoftmax, as the paper explains it */
    }
    if (o->vocab_path && !ex_text_task(o)) return cli_usage_error("--vocab needs --task caption or vqa");
    if ((rc = cli_det_finish(&o->base))) return rc;
    if (o->base.task == CLI_TASK_DETECT) {
        if (o->n_targets) return cli_usage_error("--task detect explains detections: --target does not apply");
        if (o->base.det.max_detections > EX_MAX_DETECTIONS)
            return cli_usage_error("--max-detections %d: explain takes at most %d detections per input",
                                   o->base.det.max_detections, EX_MAX_DETECTIONS);
        o->probability = 1; /* the detector's output itself is decoded and explained */
    } else if (o->have_box && o->base.task != CLI_TASK_SEGMENT) {
        return cli_usage_error("--box needs --task detect or segment");
    }
    if (o->mask_path && o->base.task != CLI_TASK_SEGMENT) return cli_usage_error("--mask needs --task segment");
    if (o->mask_path && o->have_box) return cli_usage_error("give either --box or --mask, not both");
    if (o->base.task == CLI_TASK_SEGMENT && o->n_targets)
        return cli_usage_error("--task segment explains the predicted segments: --target does not apply");
    if (o->base.task == CLI_TASK_SEGMENT && (o->have_box || o->mask_path) && o->n_classes > 1)
        return cli_usage_error("--%s explains one segment: give at most one --class", o->have_box ? "box" : "mask");
    return 0;
}

/* ---- run state ---------------------------------------------------------------------------------- */

/* ---- progress ---- */



/* A line on stderr that does not collide with the bar. */
static void prog_msg(cli_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void prog_msg(cli_progress *p, const char *fmt, ...) {
    if (cli_capturing()) return; /* a library prints nothing */
    cli_progress_clear(p);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void ex_failure_line(char *out, size_t n, const char *path, const char *why) {
    /* error texts from the library usually start with the file name already */
    size_t pl = strlen(path);
    if (strncmp(why, path, pl) == 0 && why[pl] == ':') snprintf(out, n, "%s", why);
    else snprintf(out, n, "%s: %s", path, why);
}

static int add_failure(ex_run *R, const char *path, const char *why) {
    char **f = realloc(R->failures, sizeof *f * (size_t)(R->n_failures + 1));
    if (!f) return -1;
    R->failures = f;
    char **fp = realloc(R->failure_paths, sizeof *fp * (size_t)(R->n_failures + 1));
    if (!fp) return -1;
    R->failure_paths = fp;
    size_t n = strlen(path) + strlen(why) + 3;
    char *s = malloc(n), *pc = gc_strdup(path);
    if (!s || !pc) {
        free(s);
        free(pc);
        return -1;
    }
    ex_failure_line(s, n, path, why);
    R->failures[R->n_failures] = s;
    R->failure_paths[R->n_failures++] = pc;
    return 0;
}

/* ---- labels ---- */

static int load_labels(ex_run *R, const char *path) {
    return cli_labels_load(path, &R->labels, &R->n_labels, &R->labels_owned);
}

static int resolve_class(const ex_run *R, const char *text, int64_t *out) {
    int64_t v;
    if (cli_parse_i64(text, &v) == 0) {
        if (v < 0 || v >= R->K) return cli_usage_error("class %s is out of range: the output has %lld classes (0..%lld)",
                                                        text, (long long)R->K, (long long)R->K - 1);
        *out = v;
        return 0;
    }
    for (int64_t c = 0; c < R->n_labels; c++)
        if (strcasecmp(R->labels[c], text) == 0) {
            *out = c;
            return 0;
        }
    if (!R->n_labels) return cli_usage_error("class '%s': the model's %lld classes have no names (give --labels FILE or an index)",
                                             text, (long long)R->K);
    return cli_usage_error("class '%s': no label of that name (give an index 0..%lld or a name from the labels)", text,
                           (long long)R->K - 1);
}

/* ---- model input layout and preprocessing ---- */

static void input_layout(ex_run *R) { cli_input_geom_of(&R->g, &R->in0, R->o->base.pre.nhwc); }

/* The preprocessing of one image (its size matters for dynamic models). */
static void make_preprocess(const ex_run *R, const gc_image *img, gc_preprocess *p) {
    cli_make_preprocess(p, &R->o->base.pre, &R->g, img);
}

/* An RGB rendering of a raw tensor input (1, C, H, W) / (1, H, W, C): min-max over the sample.
 * (Comparisons rather than fminf/fmaxf, which are library calls here: the same values for the
 * finite numbers they see, at a fifth of the cost.) */
static gcam_status render_tensor(gc_image *out, const float *x, int64_t C, int64_t H, int64_t W, int nhwc, int bgr,
                                 gc_err *err) {
    out->w = W;
    out->h = H;
    out->px = gc_malloc2((size_t)(W * H), 3);
    if (!out->px) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
    size_t n = (size_t)(C * H * W);
    float mn = INFINITY, mx = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i])) {
            mn = x[i] < mn ? x[i] : mn;
            mx = x[i] > mx ? x[i] : mx;
        }
    float range = mx > mn ? mx - mn : 1;
    for (int64_t y = 0; y < H; y++)
        for (int64_t xx = 0; xx < W; xx++) {
            float v[3] = {0, 0, 0};
            for (int c = 0; c < 3; c++) {
                int64_t ch = C == 3 ? (bgr ? 2 - c : c) : -1;
                if (ch < 0) { /* not RGB: the mean over channels, in grey */
                    double acc = 0;
                    for (int64_t k = 0; k < C; k++) acc += x[nhwc ? (y * W + xx) * C + k : (k * H + y) * W + xx];
                    v[c] = (float)(acc / (double)C);
                } else {
                    v[c] = x[nhwc ? (y * W + xx) * C + ch : (ch * H + y) * W + xx];
                }
                v[c] = isfinite(v[c]) ? (v[c] - mn) / range : 0;
            }
            uint8_t *o = out->px + (y * W + xx) * 3;
            for (int c = 0; c < 3; c++) {
                float u = v[c] < 0 ? 0 : v[c] > 1 ? 1 : v[c];
                o[c] = (uint8_t)lrintf(u * 255.0f);
            }
        }
    return GCAM_OK;
}

/* ---- the explainer ---- */

/* Facts known once the first explainer exists: classes, labels, probability mode, targets. */
static int first_explainer(ex_run *R) {
    const ex_opts *o = R->o;
    gcam_explainer *e = R->e;
    /* (again when the first prediction did not come: a batch that went back one by one re-plans) */
    free(R->score_name);
    free(R->layer_names);
    R->score_name = gc_strdup(gcam_explainer_score_name(e));
    gc_buf ln = {0};
    for (int i = 0; i < gcam_explainer_num_layers(e); i++) {
        if (i) gc_buf_puts(&ln, ", ");
        gc_buf_puts(&ln, gcam_explainer_layer(e, i));
    }
    R->layer_names = ln.p ? ln.p : gc_strdup("");
    const char *out_name = o->output;
    gcam_tensor_info oi;
    if (!out_name && gcam_model_output(R->m, 0, &oi) == GCAM_OK) out_name = oi.name;
    const char *op = "";
    if (out_name && gcam_model_find_tensor(R->m, out_name, &oi) == GCAM_OK && oi.op_type) op = oi.op_type;
    int final_op = strcmp(op, "Softmax") == 0 || strcmp(op, "LogSoftmax") == 0 || strcmp(op, "Sigmoid") == 0;
    if (out_name && R->score_name && strcmp(out_name, R->score_name) == 0 && final_op)
        R->prob_mode = strcmp(op, "LogSoftmax") == 0 ? PROB_EXP : PROB_IDENTITY;
    else
        R->prob_mode = strcmp(op, "Sigmoid") == 0 ? PROB_SIGMOID : PROB_SOFTMAX;
    return 0;
}

/* Labels and the classes named on the command line, for an output of K classes. */
static int resolve_classes(ex_run *R, int64_t K, const char *what) {
    const ex_opts *o = R->o;
    R->K = K;
    if (o->base.labels_path) {
        if (R->n_labels != K)
            return cli_fail(CLI_BAD_INPUT, "%s: %lld labels for the %lld classes of '%s'", o->base.labels_path,
                            (long long)R->n_labels, (long long)K, what);
    } else if (K == 1000) {
        R->labels = (const char **)gc_imagenet_labels;
        R->n_labels = 1000;
    } else {
        R->labels = NULL;
        R->n_labels = 0;
    }
    for (int i = 0; i < o->n_classes; i++) {
        int rc = resolve_class(R, o->classes[i], &R->classes[i]);
        if (rc) return rc;
    }
    for (int i = 0; i < o->n_targets; i++) {
        R->target_cls[i] = -1;
        if (o->targets[i].kind != GCAM_TARGET_ELEMENT) {
            int rc = resolve_class(R, o->targets[i].cls_text, &R->target_cls[i]);
            if (rc) return rc;
        }
    }
    return 0;
}

/* --task detect, first forward: the layout, the classes it holds, --class resolved into the
 * class filter. 0 or an exit code. */
static int first_detections(ex_run *R, const gcam_tensor_view *sv) {
    ex_opts *o = R->o;
    char why[512];
    gcam_det_layout lay;
    int64_t C;
    if (gcam_detect_layout(sv, o->base.det.layout, &lay, &C, why, sizeof why)) return cli_fail(CLI_BAD_INPUT, "%s: %s", o->model, why);
    o->base.det.layout = lay;
    int rc = resolve_classes(R, C, sv->name ? sv->name : "?");
    if (rc) return rc;
    o->base.det.classes = o->n_classes ? R->classes : NULL;
    o->base.det.n_classes = o->n_classes;
    return 0;
}

/* Called after the first forward (the score shape is known then). */
static int first_scores(ex_run *R, const gcam_tensor_view *sv) {
    const ex_opts *o = R->o;
    R->score_ndim = sv->ndim;
    memcpy(R->score_dims, sv->dims, sizeof R->score_dims);
    if (o->base.task == CLI_TASK_CAPTION) return 0; /* (checked per input: its length varies) */
    if (o->base.task == CLI_TASK_DETECT) return first_detections(R, sv);
    if (o->base.task == CLI_TASK_SEGMENT) {
        if (sv->ndim != 4)
            return cli_fail(CLI_BAD_INPUT, "%s: --task segment needs a spatial output (N, C, H, W); '%s' has %d dimensions",
                            o->model, R->score_name ? R->score_name : "?", sv->ndim);
        return resolve_classes(R, sv->dims[1], R->score_name ? R->score_name : "?");
    }
    int rc = resolve_classes(R, sv->ndim >= 2 ? sv->dims[1] : 1, R->score_name ? R->score_name : "?");
    if (rc) return rc;
    for (int i = 0; i < o->n_targets; i++) {
        const ex_target_spec *t = &o->targets[i];
        if (t->kind == GCAM_TARGET_REGION) {
            if (sv->ndim != 4)
                return cli_usage_error("--target region: needs a spatial output (N, C, H, W); '%s' has %d dimensions",
                                       R->score_name, sv->ndim);
            if (t->y0 < 0 || t->x0 < 0 || t->y1 > sv->dims[2] || t->x1 > sv->dims[3] || t->y0 >= t->y1 || t->x0 >= t->x1)
                return cli_usage_error("--target region: rows %lld..%lld, columns %lld..%lld do not fit the %lldx%lld output",
                                       (long long)t->y0, (long long)t->y1, (long long)t->x0, (long long)t->x1,
                                       (long long)sv->dims[2], (long long)sv->dims[3]);
        }
        if (t->kind == GCAM_TARGET_ELEMENT) {
            int skip = t->n_index == sv->ndim - 1;
            if (t->n_index != sv->ndim && !skip)
                return cli_usage_error("--target element: %d indices for the %d-D output '%s'", t->n_index, sv->ndim,
                                       R->score_name);
            for (int d = 0; d < t->n_index; d++) {
                int64_t ext = sv->dims[d + skip];
                if (t->index[d] < 0 || t->index[d] >= ext)
                    return cli_usage_error("--target element: index %lld on axis %d is out of range (0..%lld)",
                                           (long long)t->index[d], d + skip, (long long)ext - 1);
            }
        }
    }
    return 0;
}

/* ---- one input ---- */

/* Scores per class (the mean over any axes after the class axis) and their probabilities. */
static int class_scores(const ex_run *R, const gcam_tensor_view *sv, double **score, double **prob) {
    int64_t K = R->K, inner = 1;
    for (int d = 2; d < sv->ndim; d++) inner *= sv->dims[d];
    *score = calloc((size_t)K, sizeof(double));
    *prob = calloc((size_t)K, sizeof(double));
    if (!*score || !*prob) return -1;
    const float *s = sv->data;
    for (int64_t c = 0; c < K; c++) {
        double acc = 0;
        for (int64_t i = 0; i < inner; i++) acc += s[c * inner + i];
        (*score)[c] = acc / (double)inner;
    }
    double mx = -INFINITY, z = 0;
    for (int64_t c = 0; c < K; c++) mx = fmax(mx, (*score)[c]);
    for (int64_t c = 0; c < K; c++) {
        double v = (*score)[c];
        switch (K == 1 && R->prob_mode == PROB_SOFTMAX ? PROB_SIGMOID : R->prob_mode) {
        case PROB_SIGMOID: (*prob)[c] = 1.0 / (1.0 + exp(-v)); break;
        case PROB_IDENTITY: (*prob)[c] = v; break;
        case PROB_EXP: (*prob)[c] = exp(v); break;
        default: (*prob)[c] = exp(v - mx); z += (*prob)[c];
        }
    }
    if (z > 0)
        for (int64_t c = 0; c < K; c++) (*prob)[c] /= z;
    return 0;
}

/* The gradient CAM methods that gcam_explain_many can batch over several targets (gradcam.h). */
static int many_method(gcam_method m) { return gc_method_info_of(m)->batchable; }

/* Maps of every item for the methods gcam_explain_many batches, computed before the item loop:
 * pre[mi * n_items + it] when have[mi]. A method whose batch fails is left to the loop (which then
 * reports the error as for a single target). */
static void explain_many_first(ex_run *R, const ex_item *items, int n_items, gcam_map *pre, uint8_t *have) {
    const ex_opts *o = R->o;
    gcam_target t[EX_MAX_LIST];
    for (int i = 0; i < n_items; i++) t[i] = items[i].t;
    for (int mi = 0; mi < o->n_methods; mi++) {
        have[mi] = 0;
        if (n_items < 2 || !many_method(o->methods[mi])) continue;
        have[mi] = gcam_explain_many(R->e, o->methods[mi], t, n_items, pre + (size_t)mi * (size_t)n_items) == GCAM_OK;
    }
}

void ex_one_free(const ex_opts *o, ex_one *s) {
    gcam_map_free(&s->map);
    if (s->pre)
        for (size_t q = 0; q < (size_t)o->n_methods * (size_t)s->n_items; q++) gcam_map_free(&s->pre[q]);
    free(s->pre);
    gc_image_free(&s->orig);
    gc_image_free(&s->seen);
    gc_image_free(&s->thumb_seen);
    gc_image_free(&s->user_mask);
    free(s->npy.data);
    free(s->xbuf);
    free(s->cscore);
    free(s->cprob);
    free(s->order);
    free(s->dets);
    free(s->seg_masks);
    ex_text_free_one(s);
    gc_buf_free(&s->jb);
    ex_panels_free(&s->panels);
    for (int w = 0; w < s->n_warn; w++) free(s->warnings[w]);
}

void ex_one_unpredict(const ex_opts *o, ex_one *s) {
    if (s->pre)
        for (size_t q = 0; q < (size_t)o->n_methods * (size_t)s->n_items; q++) gcam_map_free(&s->pre[q]);
    free(s->pre);
    free(s->cscore);
    free(s->cprob);
    free(s->order);
    s->pre = NULL;
    s->cscore = s->cprob = NULL;
    s->order = NULL;
    s->n_top = 0;
    s->n_items = 0;
    memset(s->pre_have, 0, sizeof s->pre_have);
}

static int one_oom_or(const ex_one *s, gcam_status rc, gc_err *err) { return rc ? EX_FAILED : ex_one_oom(s, err); }

/* A picture input: decoded (unless s->orig holds it), preprocessed into s->xbuf as the model takes it. */
int ex_picture_input(ex_run *R, ex_one *s, gc_err *err) {
    const ex_opts *o = R->o;
    ex_input *in = s->in;
    gcam_status rc = GCAM_OK;
    if (R->in0.ndim != 4) {
        gc_fail(err, GCAM_E_SHAPE, "%s: the model input '%s' is not an image batch (N, C, H, W): feed a .npy", in->path,
                R->in0.name);
        return EX_FAILED;
    }
    int64_t C = R->g.c < 0 ? 3 : R->g.c;
    if (C != 1 && C != 3) {
        gc_fail(err, GCAM_E_SHAPE, "%s: the model takes %lld channels; images give 1 (grey) or 3 (RGB): feed a .npy",
                in->path, (long long)C);
        return EX_FAILED;
    }
    gc_decode_opts dopt = {.background = {255, 255, 255}};
    if (!s->orig.px) { /* (the tool's gcam_tool_preprocess gives the picture decoded) */
        rc = in->data ? gc_image_load_memory(in->data, in->size, in->path, &s->orig, &dopt, err)
                      : gc_image_load(in->path, &s->orig, &dopt, err);
        if (rc) return EX_FAILED;
    }
    gc_preprocess p;
    make_preprocess(R, &s->orig, &p);
    if (C == 1) { /* grey models: RGB without mean/std first, then luma, then the grey mean/std */
        p.mean[0] = p.mean[1] = p.mean[2] = 0;
        p.std[0] = p.std[1] = p.std[2] = 1;
        p.nhwc = 0;
        p.bgr = 0;
    }
    size_t plane = (size_t)(p.width * p.height);
    s->xbuf = gc_malloc2(plane, 3 * sizeof(float));
    if (!s->xbuf) {
        gc_fail(err, GCAM_E_NOMEM, "%s: out of memory", in->path);
        return EX_FAILED;
    }
    if ((rc = gc_preprocess_image(s->xbuf, &s->seen, &s->geom, &s->orig, &p, err))) return EX_FAILED;
    s->have_geom = 1;
    if (C == 1) {
        float m0 = o->base.pre.have_mean ? o->base.pre.mean[0] : 0, s0 = o->base.pre.have_std ? o->base.pre.std[0] : 1;
        for (size_t i = 0; i < plane; i++)
            s->xbuf[i] = (0.299f * s->xbuf[i] + 0.587f * s->xbuf[plane + i] + 0.114f * s->xbuf[2 * plane + i] - m0) / s0;
    }
    s->x = s->xbuf;
    s->nhwc = R->g.nhwc;
    s->ndim = 4;
    s->dims[0] = 1;
    s->dims[R->g.nhwc ? 3 : 1] = C;
    s->dims[R->g.nhwc ? 1 : 2] = p.height;
    s->dims[R->g.nhwc ? 2 : 3] = p.width;
    static const char *const modes[] = {"stretched", "shorter side resized and centre-cropped", "letterboxed"};
    snprintf(s->note, sizeof s->note, "%lldx%lld model input from a %lldx%lld image (%s%s)", (long long)p.width,
             (long long)p.height, (long long)s->orig.w, (long long)s->orig.h, modes[p.mode],
             ex_default_imagenet(R) ? ", ImageNet normalisation" : "");
    return 0;
}

/* 1. The model input: a .npy tensor as is, or a picture decoded and preprocessed. */
int ex_one_load(ex_run *R, ex_one *s, gc_err *err) {
    const ex_opts *o = R->o;
    ex_input *in = s->in;
    gcam_status rc = GCAM_OK;
    if (in->problem) {
        gc_fail(err, GCAM_E_IO, "%s: %s", in->path, in->problem);
        return EX_FAILED;
    }
    if (in->is_npy) {
        rc = in->data ? gc_npy_read_memory(in->data, in->size, in->path, &s->npy, err) : gc_npy_read(in->path, &s->npy, err);
        if (rc) return EX_FAILED;
        if (s->npy.dtype != GC_F32) {
            gc_fail(err, GCAM_E_FORMAT, "%s: a %s tensor; the model input must be float32", in->path, gcam_dtype_str(s->npy.dtype));
            return EX_FAILED;
        }
        if (R->in0.ndim >= 1 && s->npy.shape.ndim == R->in0.ndim - 1) {
            memmove(s->npy.shape.d + 1, s->npy.shape.d, sizeof(int64_t) * (size_t)s->npy.shape.ndim);
            s->npy.shape.d[0] = 1;
            s->npy.shape.ndim++;
        }
        char a[128], b[128];
        gc_shape ms = {.ndim = R->in0.ndim};
        memcpy(ms.d, R->in0.dims, sizeof ms.d);
        int fits = R->in0.ndim < 0 || s->npy.shape.ndim == R->in0.ndim;
        for (int d = 0; fits && d < s->npy.shape.ndim && R->in0.ndim >= 0; d++)
            fits = R->in0.dims[d] < 0 || R->in0.dims[d] == s->npy.shape.d[d];
        if (!fits) {
            gc_fail(err, GCAM_E_SHAPE, "%s: shape %s does not fit the model input '%s' %s", in->path,
                    gc_shape_str(&s->npy.shape, a, sizeof a), R->in0.name, gc_shape_str(&ms, b, sizeof b));
            return EX_FAILED;
        }
        if (s->npy.shape.ndim >= 1 && s->npy.shape.d[0] != 1) /* one sample per file */ {
            gc_fail(err, GCAM_E_SHAPE, "%s: shape %s holds %lld samples; give one sample per file", in->path,
                    gc_shape_str(&s->npy.shape, a, sizeof a), (long long)s->npy.shape.d[0]);
            return EX_FAILED;
        }
        s->ndim = s->npy.shape.ndim;
        memcpy(s->dims, s->npy.shape.d, sizeof s->dims);
        s->x = s->npy.data;
        if (s->ndim == 4) {
            int nh = o->base.pre.nhwc || ((s->dims[3] == 1 || s->dims[3] == 3) && !(s->dims[1] == 1 || s->dims[1] == 3));
            s->nhwc = nh;
            int64_t C = nh ? s->dims[3] : s->dims[1], H = nh ? s->dims[1] : s->dims[2], W = nh ? s->dims[2] : s->dims[3];
            if ((rc = render_tensor(&s->seen, s->x, C, H, W, nh, o->base.pre.bgr, err))) return EX_FAILED;
        }
        snprintf(s->note, sizeof s->note, "a tensor %s fed as is", gc_shape_str(&s->npy.shape, a, sizeof a));
    } else {
        return ex_picture_input(R, s, err);
    }
    return 0;
}

void ex_input_feeds(const ex_run *R, ex_one *s) {
    s->feeds[0] = (gcam_feed){.name = R->in0.name, .dtype = GCAM_FLOAT32, .ndim = s->ndim, .dims = s->dims, .data = s->x};
    for (int f = 0; f < R->n_feeds; f++)
        s->feeds[1 + f] = (gcam_feed){.name = R->feeds[f].name, .dtype = R->feeds[f].t.dtype,
                                      .ndim = R->feeds[f].t.shape.ndim, .dims = R->feeds[f].dims, .data = R->feeds[f].t.data};
    s->nf = 1 + R->n_feeds;
    if (ex_text_task(R->o)) { /* the text's ids, (1, n_tokens) */
        s->text_dims[0] = 1;
        s->text_dims[1] = s->n_tokens;
        s->feeds[s->nf++] = (gcam_feed){.name = R->text_name, .dtype = GCAM_INT64, .ndim = 2, .dims = s->text_dims,
                                        .data = s->tokens};
    }
}

/* 2. The explainer for these feeds' shape (kept while the shape stays). quiet (a batch): a failure
 * is EX_FAILED with err set, never a stop, and prints nothing (the inputs are then tried one by one). */
int ex_plan(ex_run *R, const gcam_feed *feeds, int nf, const int64_t *dims, int ndim, int64_t text_len, int quiet,
            gc_err *err) {
    const ex_opts *o = R->o;
    gcam_status rc = GCAM_OK;
    if (R->e && R->e_ndim == ndim && memcmp(R->e_dims, dims, sizeof(int64_t) * (size_t)ndim) == 0 &&
        (!ex_text_task(o) || R->e_text_len == text_len))
        return 0;
    gcam_explainer_free(R->e);
    R->e = NULL;
    const char **layers = o->n_layers ? (const char **)o->layers : NULL;
    int pixel_space = 0; /* (planned from the start: every input's maps then come from one plan) */
    for (int i = 0; i < o->n_methods; i++) /* (rollout reads the attention maps that plan keeps) */
        pixel_space |= !gcam_method_is_cam(o->methods[i]) || o->methods[i] == GCAM_ATTENTION_ROLLOUT ||
                       o->methods[i] == GCAM_GRAD_ROLLOUT || o->methods[i] == GCAM_ABLATIONCAM;
    gcam_explain_options eo = {.output = o->output, .layers = layers, .n_layers = o->n_layers,
                               .explain_probability = o->probability, .n_threads = o->base.threads,
                               .max_memory = o->base.max_memory, .noise_seed = o->base.seed,
                               .input_gradient = pixel_space, .tokens_h = o->base.tokens_h, .tokens_w = o->base.tokens_w,
                               .skip_tokens = o->base.skip_tokens};
    rc = gcam_explainer_create(&R->e, R->m, feeds, nf, &eo);
    if (rc) {
        const char *why = gcam_explainer_error(R->e);
        int model_level = !quiet && !R->first_done && rc != GCAM_E_SHAPE && rc != GCAM_E_LIMIT && rc != GCAM_E_NOMEM;
        gc_fail(err, rc, "%s%s", why, rc == GCAM_E_LIMIT && !o->base.pre.size_w ? " (a smaller --size or a larger --max-memory helps)" : "");
        gcam_explainer_free(R->e);
        R->e = NULL;
        if (!model_level) return EX_FAILED;
        cli_progress_clear(&R->prog);
        cli_fail(cli_status_exit(rc), "%s: %s", o->model, err->msg);
        return EX_STOP + cli_status_exit(rc);
    }
    if (R->abort_fn) gcam_explainer_set_abort(R->e, R->abort_fn, R->abort_user);
    R->e_ndim = ndim;
    memcpy(R->e_dims, dims, sizeof(int64_t) * (size_t)ndim);
    R->e_text_len = text_len;
    if (!R->first_done && first_explainer(R)) return EX_STOP + 1;
    return 0;
}

static int one_explainer(ex_run *R, ex_one *s, gc_err *err) {
    ex_input_feeds(R, s);
    return ex_plan(R, s->feeds, s->nf, s->dims, s->ndim, s->n_tokens, 0, err);
}

/* A picture box (--box) in the model input's pixels. */
static void box_to_input(const ex_one *s, const float in[4], double out[4]) {
    for (int k = 0; k < 4; k++) out[k] = in[k];
    if (!s->have_geom) return;
    out[0] = (in[0] - s->geom.x0) / s->geom.sx;
    out[2] = (in[2] - s->geom.x0) / s->geom.sx;
    out[1] = (in[1] - s->geom.y0) / s->geom.sy;
    out[3] = (in[3] - s->geom.y0) / s->geom.sy;
}

/* --box: of every candidate (no threshold, no NMS; the class filter holds), the best-scoring one
 * among those overlapping the box by IoU >= 0.5 (the detection a user sees there); without any,
 * the one overlapping it most. */
static int one_match_box(ex_run *R, ex_one *s, const gcam_tensor_view *sv, gc_err *err) {
    gcam_detect_options all = R->o->base.det;
    all.score_threshold = 0;
    all.iou_threshold = 1;
    all.max_detections = INT32_MAX;
    char why[512];
    gcam_detection *d = NULL;
    int64_t nd = 0;
    if (gcam_detect_decode(sv, &all, &d, &nd, NULL, why, sizeof why)) {
        gc_fail(err, GCAM_E_SHAPE, "%s: %s", s->in->path, why);
        return EX_FAILED;
    }
    double b[4], best = 0;
    box_to_input(s, R->o->box, b);
    int64_t at = -1;
    for (int64_t i = 0; i < nd; i++) { /* best score first: the first at IoU >= 0.5 wins */
        double v = cli_box_iou(b, (const double[4]){d[i].x0, d[i].y0, d[i].x1, d[i].y1});
        if (v >= 0.5) {
            at = i;
            break;
        }
        if (v > best) {
            best = v;
            at = i;
        }
    }
    if (at < 0) {
        free(d);
        gc_fail(err, GCAM_E_ARG, "%s: --box %g,%g,%g,%g overlaps no candidate of the detector", s->in->path, R->o->box[0],
                R->o->box[1], R->o->box[2], R->o->box[3]);
        return EX_FAILED;
    }
    memmove(d, d + at, sizeof *d);
    s->dets = d;
    s->n_dets = 1;
    return 0;
}

/* 3. (--task detect) The detections: decoded, thresholded, NMS; or the candidate of --box. */
static int one_detect(ex_run *R, ex_one *s, const gcam_tensor_view *sv, gc_err *err) {
    s->det_layout = R->o->base.det.layout;
    if (R->o->have_box) return one_match_box(R, s, sv, err);
    char why[512];
    if (gcam_detect_decode(sv, &R->o->base.det, &s->dets, &s->n_dets, NULL, why, sizeof why)) {
        gc_fail(err, GCAM_E_SHAPE, "%s: %s", s->in->path, why);
        return EX_FAILED;
    }
    return 0;
}

/* A detection's box in the picture's pixels (the model input's for a tensor input), clipped. */
void ex_det_box(const ex_one *s, const gcam_detection *d, double b[4]) {
    const double in[4] = {d->x0, d->y0, d->x1, d->y1};
    if (s->have_geom) cli_box_to_picture(&s->geom, (double)s->orig.w, (double)s->orig.h, in, b);
    else cli_box_to_picture(NULL, (double)s->dims[s->nhwc ? 2 : 3], (double)s->dims[s->nhwc ? 1 : 2], in, b);
}

/* The output pixel (x, y) of an (H, W) output seen on the picture: its centre through the input. */
static void out_to_picture(const ex_one *s, int64_t x, int64_t y, double *px, double *py) {
    double xi = ((double)x + 0.5) * (double)s->dims[s->nhwc ? 2 : 3] / (double)s->seg_w;
    double yi = ((double)y + 0.5) * (double)s->dims[s->nhwc ? 1 : 2] / (double)s->seg_h;
    *px = s->have_geom ? s->geom.x0 + xi * s->geom.sx : xi;
    *py = s->have_geom ? s->geom.y0 + yi * s->geom.sy : yi;
}

/* --box / --mask (segment): one segment, the output's pixels whose centre falls in the box or on a
 * nonzero pixel of the mask; its class --class, else the one predicted most there (ties: lower). */
static int one_user_segment(ex_run *R, ex_one *s, const int32_t *best, int64_t K, gc_err *err) {
    const ex_opts *o = R->o;
    uint8_t *m = s->seg_masks; /* (seg_h, seg_w) */
    if (o->mask_path) {
        gc_decode_opts dopt = {.background = {0, 0, 0}};
        if (!s->user_mask.px && gc_image_load(o->mask_path, &s->user_mask, &dopt, err)) return EX_FAILED;
        int64_t pw = s->have_geom ? s->orig.w : s->dims[s->nhwc ? 2 : 3], ph = s->have_geom ? s->orig.h : s->dims[s->nhwc ? 1 : 2];
        if (s->user_mask.w != pw || s->user_mask.h != ph) {
            gc_fail(err, GCAM_E_SHAPE, "%s: --mask %s is %lldx%lld, the picture %lldx%lld", s->in->path, o->mask_path,
                    (long long)s->user_mask.w, (long long)s->user_mask.h, (long long)pw, (long long)ph);
            return EX_FAILED;
        }
    }
    int64_t *count = calloc((size_t)K, sizeof(int64_t)), n_in = 0;
    if (!count) return ex_one_oom(s, err);
    for (int64_t y = 0; y < s->seg_h; y++)
        for (int64_t x = 0; x < s->seg_w; x++) {
            double px, py;
            out_to_picture(s, x, y, &px, &py);
            int in;
            if (o->have_box) {
                in = px >= o->box[0] && px < o->box[2] && py >= o->box[1] && py < o->box[3];
            } else {
                int64_t ix = (int64_t)floor(px), iy = (int64_t)floor(py);
                const uint8_t *p = s->user_mask.px + (iy * s->user_mask.w + ix) * 3;
                in = ix >= 0 && iy >= 0 && ix < s->user_mask.w && iy < s->user_mask.h && (p[0] | p[1] | p[2]);
            }
            m[y * s->seg_w + x] = (uint8_t)in;
            n_in += in;
            if (in && best[y * s->seg_w + x] >= 0) count[best[y * s->seg_w + x]]++;
        }
    int64_t cls = o->n_classes ? R->classes[0] : 0;
    for (int64_t c = 1; !o->n_classes && c < K; c++)
        if (count[c] > count[cls]) cls = c;
    free(count);
    if (!n_in) {
        gc_fail(err, GCAM_E_ARG, "%s: the --%s covers no pixel of the %lldx%lld output", s->in->path, o->have_box ? "box" : "mask",
                (long long)s->seg_w, (long long)s->seg_h);
        return EX_FAILED;
    }
    s->seg_cls[0] = cls;
    s->seg_pixels[0] = n_in;
    return 0;
}

/* --class with --task segment: the classes asked, once each, that have pixels; the others said
 * in the input's warnings. Their number. */
static int asked_segments(ex_run *R, ex_one *s, const int64_t *count) {
    int n = 0;
    for (int i = 0; i < R->o->n_classes; i++) {
        int64_t c = R->classes[i];
        int seen = 0;
        for (int j = 0; j < n; j++) seen |= s->seg_cls[j] == c;
        if (seen) continue;
        if (count[c]) {
            s->seg_cls[n++] = c;
        } else if (s->n_warn < GCAM_METHOD_COUNT) {
            const char *lb = ex_label_of(R, c);
            size_t wl = 96 + (lb ? strlen(lb) : 0);
            if ((s->warnings[s->n_warn] = malloc(wl)))
                snprintf(s->warnings[s->n_warn++], wl, "class %lld%s%s: no pixel is predicted as it; not explained",
                         (long long)c, lb ? " " : "", lb ? lb : "");
        }
    }
    return n;
}

/* 3. (--task segment) Per pixel of sample 0 the best class (ties: the lower index; NaN: none);
 * the classes asked (--class) or present, each with its pixels: the segments explained. */
static int one_segment(ex_run *R, ex_one *s, const gcam_tensor_view *sv, gc_err *err) {
    const ex_opts *o = R->o;
    int64_t K = sv->dims[1], H = sv->dims[2], W = sv->dims[3], HW = H * W;
    const float *y = sv->data; /* (N, K, H, W) */
    int32_t *best = gc_malloc2((size_t)HW, sizeof(int32_t)); /* (H, W) */
    int64_t *count = calloc((size_t)K, sizeof(int64_t));
    if (!best || !count) {
        free(best);
        free(count);
        return ex_one_oom(s, err);
    }
    for (int64_t i = 0; i < HW; i++) {
        int32_t b = -1;
        for (int64_t c = 0; c < K; c++)
            if (y[c * HW + i] == y[c * HW + i] && (b < 0 || y[c * HW + i] > y[b * HW + i])) b = (int32_t)c;
        best[i] = b;
        if (b >= 0) count[b]++;
    }
    s->seg_h = H;
    s->seg_w = W;
    int user = o->have_box || o->mask_path;
    int n = user ? 1 : o->n_classes ? o->n_classes : 0;
    for (int64_t c = 0; !user && !o->n_classes && c < K && n < EX_MAX_LIST; c++)
        if (count[c]) s->seg_cls[n++] = c;
    if (!user && o->n_classes) n = asked_segments(R, s, count);
    s->seg_masks = gc_malloc2((size_t)(n ? n : 1), (size_t)HW);
    int rc = s->seg_masks ? 0 : ex_one_oom(s, err);
    for (int j = 0; !rc && !user && j < n; j++) {
        uint8_t *m = s->seg_masks + (size_t)j * (size_t)HW;
        for (int64_t i = 0; i < HW; i++) m[i] = best[i] == s->seg_cls[j];
        s->seg_pixels[j] = count[s->seg_cls[j]];
    }
    if (!rc && user) rc = one_user_segment(R, s, best, K, err);
    s->n_segs = rc ? 0 : n;
    free(best);
    free(count);
    return rc;
}

/* 3. The predictions (classes by score) from this input's scores (one sample's view of them). */
int ex_predict_view(ex_run *R, ex_one *s, const gcam_tensor_view *scores, gc_err *err) {
    const ex_opts *o = R->o;
    ex_input *in = s->in;
    const gcam_tensor_view sv = *scores;
    if (!R->first_done) {
        int frc = first_scores(R, &sv);
        if (frc) {
            cli_progress_clear(&R->prog);
            return EX_STOP + frc;
        }
        R->first_done = 1;
    } else if (o->base.task == CLI_TASK_DETECT || o->base.task == CLI_TASK_CAPTION) {
        /* the layout was found on the first input: a shape change is checked by the decoder; a
         * caption's output is checked against its length by ex_caption_scores */
    } else if (o->base.task == CLI_TASK_SEGMENT && (sv.ndim != 4 || sv.dims[1] != R->K)) {
        gc_fail(err, GCAM_E_SHAPE, "%s: the output is not (N, %lld, H, W) for this input", in->path, (long long)R->K);
        return EX_FAILED;
    } else if (sv.ndim >= 2 && sv.dims[1] != R->K) {
        gc_fail(err, GCAM_E_SHAPE, "%s: the output has %lld classes for this input, %lld before", in->path,
                (long long)sv.dims[1], (long long)R->K);
        return EX_FAILED;
    }
    if (o->base.task == CLI_TASK_DETECT) return one_detect(R, s, &sv, err);
    if (o->base.task == CLI_TASK_SEGMENT) return one_segment(R, s, &sv, err);
    if (o->base.task == CLI_TASK_CAPTION) return ex_caption_scores(R, s, &sv, err);
    if (class_scores(R, &sv, &s->cscore, &s->cprob) || !(s->order = malloc(sizeof *s->order * (size_t)R->K))) {
        gc_fail(err, GCAM_E_NOMEM, "out of memory");
        return EX_FAILED;
    }
    for (int64_t c = 0; c < R->K; c++) s->order[c] = c;
    /* top classes: partial selection sort, ties to the lower index */
    s->n_top = R->K < 5 ? R->K : 5;
    if (o->top_k > s->n_top) s->n_top = o->top_k < R->K ? o->top_k : R->K;
    for (int64_t a = 0; a < s->n_top; a++) {
        int64_t best = a;
        for (int64_t c = a + 1; c < R->K; c++)
            if (s->cscore[s->order[c]] > s->cscore[s->order[best]] ||
                (s->cscore[s->order[c]] == s->cscore[s->order[best]] && s->order[c] < s->order[best]))
                best = c;
        int64_t t = s->order[a];
        s->order[a] = s->order[best];
        s->order[best] = t;
    }
    return 0;
}

/* 3. The forward pass and the predictions. */
static int one_predict(ex_run *R, ex_one *s, gc_err *err) {
    gcam_status rc = GCAM_OK;
    gcam_tensor_view sv;
    if ((rc = gcam_explainer_forward(R->e, s->feeds, s->nf)) || (rc = gcam_explainer_scores(R->e, &sv))) {
        gc_fail(err, rc, "%s", gcam_explainer_error(R->e));
        return EX_FAILED;
    }
    return ex_predict_view(R, s, &sv, err);
}

/* 4. What to explain: the --target specs, or classes (--class, else the top k). */
void ex_one_items(ex_run *R, ex_one *s) {
    const ex_opts *o = R->o;
    if (o->base.task == CLI_TASK_CAPTION) {
        ex_text_items(R, s);
        return;
    }
    if (o->base.task == CLI_TASK_SEGMENT) {
        for (int j = 0; j < s->n_segs; j++) {
            ex_item *it = &s->items[s->n_items++];
            memset(it, 0, sizeof *it);
            it->det = -1;
            it->seg = j;
            it->cls = s->seg_cls[j];
            it->t = (gcam_target){.kind = GCAM_TARGET_MASK, .cls = it->cls,
                                  .mask = s->seg_masks + (size_t)j * (size_t)(s->seg_h * s->seg_w)};
            const char *lb = ex_label_of(R, it->cls);
            snprintf(it->tag, sizeof it->tag, "s%lld", (long long)it->cls);
            snprintf(it->title, sizeof it->title, "segment: class %lld%s%s, %lld pixels (%.1f%% of the output)",
                     (long long)it->cls, lb ? " \xC2\xB7 " : "", lb ? lb : "", (long long)s->seg_pixels[j],
                     100.0 * (double)s->seg_pixels[j] / (double)(s->seg_h * s->seg_w));
        }
        return;
    }
    if (o->base.task == CLI_TASK_DETECT) {
        for (int64_t i = 0; i < s->n_dets && s->n_items < EX_MAX_LIST; i++) {
            const gcam_detection *d = &s->dets[i];
            ex_item *it = &s->items[s->n_items++];
            memset(it, 0, sizeof *it);
            it->t = d->target;
            it->cls = d->cls;
            it->det = (int)i;
            it->seg = -1;
            double b[4];
            ex_det_box(s, d, b);
            const char *lb = ex_label_of(R, d->cls);
            snprintf(it->tag, sizeof it->tag, "d%lld", (long long)i);
            snprintf(it->title, sizeof it->title, "detection %lld: class %lld%s%s, score %.3f, box %.0f,%.0f..%.0f,%.0f", (long long)i,
                     (long long)d->cls, lb ? " \xC2\xB7 " : "", lb ? lb : "", d->score, b[0], b[1], b[2], b[3]);
        }
        return;
    }

    if (o->n_targets) {
        for (int i = 0; i < o->n_targets; i++) {
            const ex_target_spec *ts = &o->targets[i];
            ex_item *it = &s->items[s->n_items++];
            memset(it, 0, sizeof *it);
            it->det = -1;
            it->seg = -1;
            it->t.kind = ts->kind;
            it->cls = R->target_cls[i];
            it->t.cls = it->cls;
            const char *lb = ex_label_of(R, it->cls);
            if (ts->kind == GCAM_TARGET_CLASS) {
                snprintf(it->tag, sizeof it->tag, "c%lld", (long long)it->cls);
                snprintf(it->title, sizeof it->title, "class %lld%s%s", (long long)it->cls, lb ? " \xC2\xB7 " : "", lb ? lb : "");
            } else if (ts->kind == GCAM_TARGET_REGION) {
                it->t.y0 = ts->y0;
                it->t.x0 = ts->x0;
                it->t.y1 = ts->y1;
                it->t.x1 = ts->x1;
                snprintf(it->tag, sizeof it->tag, "r%lld-%lld-%lld-%lld-%lld", (long long)it->cls, (long long)ts->y0,
                         (long long)ts->x0, (long long)ts->y1, (long long)ts->x1);
                snprintf(it->title, sizeof it->title, "class %lld%s%s over output rows %lld..%lld, columns %lld..%lld",
                         (long long)it->cls, lb ? " \xC2\xB7 " : "", lb ? lb : "", (long long)ts->y0, (long long)ts->y1 - 1,
                         (long long)ts->x0, (long long)ts->x1 - 1);
            } else {
                int skip = ts->n_index == R->score_ndim - 1;
                size_t u = (size_t)snprintf(it->tag, sizeof it->tag, "e");
                size_t v = (size_t)snprintf(it->title, sizeof it->title, "output element (");
                for (int d = 0; d < R->score_ndim; d++) {
                    int64_t idx = skip ? (d == 0 ? 0 : ts->index[d - 1]) : ts->index[d];
                    it->t.index[d] = idx;
                    if (u < sizeof it->tag) u += (size_t)snprintf(it->tag + u, sizeof it->tag - u, "%s%lld", d ? "-" : "", (long long)idx);
                    if (v < sizeof it->title)
                        v += (size_t)snprintf(it->title + v, sizeof it->title - v, "%s%lld", d ? ", " : "", (long long)idx);
                }
                if (v < sizeof it->title) snprintf(it->title + v, sizeof it->title - v, ")");
                it->cls = R->score_ndim >= 2 ? it->t.index[1] : -1;
            }
        }
    } else {
        int64_t n = o->n_classes ? o->n_classes : (o->top_k < R->K ? o->top_k : R->K);
        for (int64_t i = 0; i < n && s->n_items < EX_MAX_LIST; i++) {
            ex_item *it = &s->items[s->n_items++];
            memset(it, 0, sizeof *it);
            it->det = -1;
            it->seg = -1;
            it->cls = o->n_classes ? R->classes[i] : s->order[i];
            if (R->score_ndim >= 2) {
                it->t.kind = GCAM_TARGET_CLASS;
                it->t.cls = it->cls;
            } else { /* a single score per sample */
                it->t.kind = GCAM_TARGET_ELEMENT;
            }
            const char *lb = ex_label_of(R, it->cls);
            snprintf(it->tag, sizeof it->tag, "c%lld", (long long)it->cls);
            snprintf(it->title, sizeof it->title, "class %lld%s%s (score %.4g, probability %.2f%%)", (long long)it->cls,
                     lb ? " \xC2\xB7 " : "", lb ? lb : "", s->cscore[it->cls], 100 * s->cprob[it->cls]);
        }
    }
    if (o->base.task == CLI_TASK_VQA) ex_text_items(R, s); /* the answers, nested in the record */
}

/* 6. One item x method: the map (computed now or with the batch), its JSON, files and panel. */
static int one_map(ex_run *R, ex_one *s, int it_i, int mi, gc_err *err) {
    const ex_opts *o = R->o;
    ex_item *it = &s->items[it_i];
    gcam_status rc = GCAM_OK;
    const gcam_method meth = o->methods[mi];
    const char *mname = gcam_method_name(meth);
    if (s->pre && s->pre_have[mi]) {
        gcam_map *pm = &s->pre[(size_t)mi * (size_t)s->n_items + (size_t)it_i];
        s->map = *pm; /* owned by map from here on */
        memset(pm, 0, sizeof *pm);
        rc = GCAM_OK;
    } else {
        rc = gcam_explain(R->e, meth, &it->t, &s->map);
    }
    if (rc) {
        const char *why = gcam_explainer_error(R->e);
        if (o->methods_all && (rc == GCAM_E_UNSUPPORTED || rc == GCAM_E_ARG)) {
            /* 'all' means every method that applies to this model */
            if (!R->warned[meth]) {
                R->warned[meth] = 1;
                prog_msg(&R->prog, "%s: note: %s skipped: %s", g_prog, mname, why);
            }
            if (s->n_warn < GCAM_METHOD_COUNT) {
                size_t wl = strlen(mname) + strlen(why) + 16;
                s->warnings[s->n_warn] = malloc(wl);
                if (s->warnings[s->n_warn]) snprintf(s->warnings[s->n_warn++], wl, "%s skipped: %s", mname, why);
            }
            return 0;
        }
        gc_fail(err, rc, "%s (class %lld): %s", mname, (long long)it->cls, why);
        return EX_FAILED;
    }
    R->n_maps++;
    s->n_maps++;
    int r = ex_map_files(R, s, it, meth, err);
    gcam_map_free(&s->map);
    return r;
}

/* A detection's box on a picture of the model's view (scaled to its size). */
static void draw_det(const ex_one *s, const gcam_detection *d, gc_image *img) {
    static const uint8_t green[3] = {0, 230, 64};
    double k = s->seen.w > 0 ? (double)img->w / (double)s->seen.w : 1;
    int th = (int)(img->w / 150 > 1 ? img->w / 150 : 1);
    double b[4] = {d->x0 * k, d->y0 * k, d->x1 * k, d->y1 * k};
    for (int i = 0; i < 4; i++) b[i] = fmin(fmax(b[i], -1e9), 1e9); /* finite (decoded), but maybe huge */
    gc_draw_box(img, (int64_t)floor(b[0]), (int64_t)floor(b[1]), (int64_t)ceil(b[2]) - 1, (int64_t)ceil(b[3]) - 1, green, th);
}

/* 6. Every item x method (the top-k maps of the batchable methods computed together first). */
static int one_maps(ex_run *R, ex_one *s, gc_err *err) {
    const ex_opts *o = R->o;
    ex_input *in = s->in;
    gcam_status rc = GCAM_OK;
    if (!s->pre && s->n_items > 1 && o->n_methods > 0) { /* (a batch's: computed already) */
        s->pre = gc_calloc2((size_t)o->n_methods * (size_t)s->n_items, sizeof *s->pre);
        if (!s->pre) return ex_one_oom(s, err);
        explain_many_first(R, s->items, s->n_items, s->pre, s->pre_have);
    }
    for (int it_i = 0; it_i < s->n_items; it_i++) {
        s->first_panel_of_item[it_i] = s->panels.n;
        if (s->items[it_i].seg >= 0 && s->seen.px) { /* the segment on the model's view */
            ex_panel *pn = ex_panel_new(&s->panels, 0);
            if (!pn) return ex_one_oom(s, err);
            if (ex_seg_panel(s, &s->items[it_i], pn, err)) return EX_FAILED;
        } else if (s->thumb_seen.px) {
            ex_panel *pn = ex_panel_new(&s->panels, 0);
            if (!pn || (rc = gc_image_thumbnail(&pn->img, &s->thumb_seen, 448, err))) return one_oom_or(s, rc, err);
            snprintf(pn->title, sizeof pn->title, "%s", in->is_npy ? "Input (rendered)" : "Model input");
            snprintf(pn->caption, sizeof pn->caption, "%lldx%lld", (long long)s->seen.w, (long long)s->seen.h);
            if (s->items[it_i].det >= 0) draw_det(s, &s->dets[s->items[it_i].det], &pn->img);
        }
        if (s->items[it_i].det >= 0) ex_det_begin(R, s, &s->items[it_i]);
        if (s->items[it_i].seg >= 0) ex_seg_begin(R, s, &s->items[it_i]);
        if (s->items[it_i].text) ex_text_item_begin(R, s, &s->items[it_i]);
        for (int mi = 0; mi < o->n_methods; mi++) {
            int r = one_map(R, s, it_i, mi, err);
            if (r) return r;
        }
        if (s->items[it_i].det >= 0 || s->items[it_i].seg >= 0) ex_det_end(s);
        if (s->items[it_i].text) ex_text_item_end(R, s, &s->items[it_i]);
    }
    s->first_panel_of_item[s->n_items] = s->panels.n;
    gc_json_end_array(&s->j);
    if (ex_text_task(o)) ex_text_json_close(R, s);
    if (s->n_warn) {
        gc_json_key(&s->j, "warnings");
        gc_json_begin_array(&s->j);
        for (int w = 0; w < s->n_warn; w++) gc_json_string(&s->j, s->warnings[w]);
        gc_json_end_array(&s->j);
    }
    gc_json_end_object(&s->j);
    if (s->j.bad || s->jb.oom) {
        gc_fail(err, s->j.bad ? GCAM_E_INTERNAL : GCAM_E_NOMEM, "%s: results.json entry could not be built", in->path);
        return EX_FAILED;
    }
    return 0;
}

/* 5-7. A loaded, predicted input's record, maps, files and report section; its progress line. */
int ex_one_finish(ex_run *R, ex_one *s, gc_err *err) {
    const ex_opts *o = R->o;
    ex_input *in = s->in;
    int r;
    if ((r = ex_input_json(R, s, err)) || (r = one_maps(R, s, err)) || (!R->no_report && (r = ex_report_input(R, s, err))))
        return r;
    if (R->record_out) {
        gc_buf_puts(R->record_out, s->jb.p);
        if (R->record_out->oom) return ex_one_oom(s, err);
    } else {
        gc_json_raw(&R->ij, s->jb.p);
    }
    if (!o->base.quiet && !(R->prog.tty && R->prog.total > 1) && o->base.task == CLI_TASK_DETECT) {
        prog_msg(&R->prog, "[%d/%d] %s: %lld detection%s, %d map%s", R->prog.done + 1, R->prog.total, in->path,
                 (long long)s->n_dets, s->n_dets == 1 ? "" : "s", s->n_maps, s->n_maps == 1 ? "" : "s");
    } else if (!o->base.quiet && !(R->prog.tty && R->prog.total > 1) && o->base.task == CLI_TASK_CAPTION) {
        prog_msg(&R->prog, "[%d/%d] %s: %s, %d map%s", R->prog.done + 1, R->prog.total, in->path, s->text_note, s->n_maps,
                 s->n_maps == 1 ? "" : "s");
    } else if (!o->base.quiet && !(R->prog.tty && R->prog.total > 1) && o->base.task == CLI_TASK_SEGMENT) {
        prog_msg(&R->prog, "[%d/%d] %s: %d segment%s, %d map%s", R->prog.done + 1, R->prog.total, in->path, s->n_segs,
                 s->n_segs == 1 ? "" : "s", s->n_maps, s->n_maps == 1 ? "" : "s");
    } else if (!o->base.quiet && !(R->prog.tty && R->prog.total > 1)) {
        const char *lb = s->n_top > 0 ? ex_label_of(R, s->order[0]) : NULL;
        prog_msg(&R->prog, "[%d/%d] %s: top %lld%s%s%s (p=%.3f), %d map%s", R->prog.done + 1, R->prog.total, in->path,
                 s->n_top > 0 ? (long long)s->order[0] : -1LL, lb ? " \"" : "", lb ? lb : "", lb ? "\"" : "",
                 s->n_top > 0 ? s->cprob[s->order[0]] : 0.0, s->n_maps, s->n_maps == 1 ? "" : "s");
    }
    return 0;
}

/* 2-7. A loaded input, alone: its explainer, forward, items, and what ex_one_finish does. */
int ex_one_explain(ex_run *R, ex_one *s, gc_err *err) {
    int r;
    if ((ex_text_task(R->o) && (r = ex_text_tokens(R, s, err))) || (r = one_explainer(R, s, err)) ||
        (r = one_predict(R, s, err)))
        return r;
    ex_one_items(R, s);
    return ex_one_finish(R, s, err);
}

/* Explains one input: EX_DONE, EX_FAILED (err says why; the next input is tried) or EX_STOP + an
 * exit code (the run cannot go on). */
int ex_explain_input(ex_run *R, ex_input *in, gc_err *err) {
    ex_one *s = calloc(1, sizeof *s); /* large (items, paths): not on the stack */
    if (!s) {
        gc_fail(err, GCAM_E_NOMEM, "%s: out of memory", in->path);
        return EX_FAILED;
    }
    s->in = in;
    int r = ex_one_load(R, s, err);
    if (!r) r = ex_one_explain(R, s, err);
    ex_one_free(R->o, s);
    free(s);
    return r;
}

/* ---- the command ---- */

static int layer_exists(const gcam_model *m, const char *name) {
    gcam_tensor_info ti;
    if (gcam_model_find_tensor(m, name, &ti) == GCAM_OK) return 1;
    for (int i = 0; i < gcam_model_num_nodes(m); i++) {
        gcam_node_info ni;
        if (gcam_model_node(m, i, &ni) == GCAM_OK && strcmp(ni.name, name) == 0) return 1;
    }
    return 0;
}

static int load_feeds(ex_run *R) {
    const ex_opts *o = R->o;
    for (int f = 0; f < o->n_feeds; f++) {
        ex_feed *fd = &R->feeds[f];
        gc_err err = {0};
        gcam_tensor_info ti;
        fd->name = o->feed_names[f];
        if (gcam_model_find_tensor(R->m, fd->name, &ti) != GCAM_OK || ti.producer || ti.is_weight)
            return cli_fail(CLI_BAD_INPUT, "--feed: the model has no input named '%s'", fd->name);
        if (strcmp(fd->name, R->in0.name) == 0)
            return cli_usage_error("--feed %s: that is the explained input; give it as INPUT", fd->name);
        if (gc_npy_read(o->feed_paths[f], &fd->t, &err)) return cli_fail(CLI_BAD_INPUT, "%s", err.msg);
        R->n_feeds = f + 1;
        gc_tensor *t = &fd->t;
        if (ti.ndim >= 1 && t->shape.ndim == ti.ndim - 1) { /* without its batch axis */
            memmove(t->shape.d + 1, t->shape.d, sizeof(int64_t) * (size_t)t->shape.ndim);
            t->shape.d[0] = 1;
            t->shape.ndim++;
        }
        memcpy(fd->dims, t->shape.d, sizeof fd->dims);
    }
    return 0;
}

/* The model and everything checked against it before any input: --size, --layer, --output,
 * labels, classes, --feed. 0 or an exit code. */
int ex_prepare_model(ex_run *R) {
    const ex_opts *o = R->o;
    gcam_status rc = R->m ? GCAM_OK : cli_load_model(&R->m, o->model, 0, o->base.max_memory); /* (the tool's, loaded) */
    R->load_status = rc;
    if (rc) return cli_status_exit(rc);
    if (gcam_model_num_inputs(R->m) < 1) return cli_fail(CLI_BAD_INPUT, "%s: the model has no inputs", o->model);
    gcam_model_input(R->m, 0, &R->in0);
    input_layout(R);
    if (o->base.pre.size_w && R->g.w > 0 && R->g.h > 0 && (o->base.pre.size_w != R->g.w || o->base.pre.size_h != R->g.h))
        return cli_usage_error("--size %lldx%lld: the model's input '%s' is fixed at %lldx%lld", (long long)o->base.pre.size_w,
                               (long long)o->base.pre.size_h, R->in0.name, (long long)R->g.w, (long long)R->g.h);
    for (int i = 0; i < o->n_layers; i++)
        if (!layer_exists(R->m, o->layers[i]))
            return cli_usage_error("--layer '%s': %s has no tensor or node of that name ('gradcam info %s' lists them)",
                                   o->layers[i], o->model, o->model);
    gcam_tensor_info ti;
    if (o->output && gcam_model_find_tensor(R->m, o->output, &ti) != GCAM_OK)
        return cli_usage_error("--output '%s': %s has no output or tensor of that name", o->output, o->model);
    int exit_code;
    if (o->base.labels_path && (exit_code = load_labels(R, o->base.labels_path))) return exit_code;
    /* classes and labels checked now when the output's class axis is fixed in the model */
    gcam_tensor_info oi;
    int have = o->output ? gcam_model_find_tensor(R->m, o->output, &oi) == GCAM_OK : gcam_model_output(R->m, 0, &oi) == GCAM_OK;
    if ((o->base.task == CLI_TASK_CLASSIFY || o->base.task == CLI_TASK_VQA) && have && oi.ndim >= 2 && oi.dims[1] > 0 &&
        (exit_code = resolve_classes(R, oi.dims[1], oi.name)))
        return exit_code;
    if ((exit_code = load_feeds(R))) return exit_code;
    return ex_text_task(o) ? ex_text_prepare(R) : 0;
}

/* The inputs (folders searched), their file stems, and the output folder (never over an input). */
static int ex_prepare_inputs(ex_run *R, ex_inputs *list) {
    const ex_opts *o = R->o;
    if (ex_inputs_collect(list, o->inputs, o->n_inputs, o->base.out) || ex_inputs_assign_stems(list))
        return cli_fail(1, "out of memory");
    if (list->n == 0)
        return cli_fail(CLI_BAD_INPUT, "no inputs: the folder%s given hold%s no .png, .jpg, .jpeg or .npy file",
                        o->n_inputs > 1 ? "s" : "", o->n_inputs > 1 ? "" : "s");
    int cl = ex_inputs_find_clobber(list, o->base.out);
    if (cl >= 0)
        return cli_usage_error("--out %s holds the input '%s', which an output could overwrite: choose another --out",
                               o->base.out, list->v[cl].path);
    int e = cli_mkdir_p(o->base.out);
    if (e) return cli_fail(1, "%s: cannot create the output folder: %s", o->base.out, strerror(e));
    return 0;
}

/* An input's result r (ex_explain_input's codes) taken: its files kept or removed, a failure
 * listed. 0, or the exit code of a stop (*stopped set). */
int ex_conclude(ex_run *R, const ex_input *in, int r, gc_err *err, int *stopped) {
    ex_end_input_files(R, r != EX_FAILED && r < EX_STOP);
    if (r >= EX_STOP) {
        *stopped = 1;
        return r - EX_STOP;
    }
    if (r == EX_FAILED) {
        if (!err->msg[0]) snprintf(err->msg, sizeof err->msg, "failed (no reason recorded)");
        if (add_failure(R, in->path, err->msg)) {
            *stopped = 1;
            return cli_fail(1, "out of memory");
        }
        R->prog.failed++;
        if (!R->o->base.quiet && R->prog.total > 1) prog_msg(&R->prog, "%s: %s", g_prog, R->failures[R->n_failures - 1]);
    } else {
        R->n_ok++;
    }
    R->prog.done++;
    return 0;
}

/* Every input in turn, or in batches (explain_batch.c); a failed one is listed and the next tried.
 * 0, or the exit code of a stop (*stopped set). */
static int ex_explain_all(ex_run *R, ex_inputs *list, double t0, gc_err *err, int *stopped) {
    int exit_code = 0;
    R->prog = (cli_progress){.tty = isatty(STDERR_FILENO), .quiet = R->o->base.quiet, .total = list->n, .t0 = t0};
    R->batch = ex_batch_size(R, list);
    for (int i = 0; i < list->n && !*stopped;) {
        int w = list->n - i < R->batch ? list->n - i : R->batch;
        if (w > 1) {
            exit_code = ex_explain_batch(R, list->v + i, w, err, stopped);
            i += w;
            continue;
        }
        ex_input *in = &list->v[i++];
        cli_progress_bar(&R->prog, in->path);
        gc_err_clear(err);
        exit_code = ex_conclude(R, in, ex_explain_input(R, in, err), err, stopped);
    }
    cli_progress_clear(&R->prog);
    return exit_code;
}

void ex_run_free(ex_run *R) {
    ex_end_input_files(R, 0); /* stopped inside an input: its files go */
    free(R->written);
    ex_mem_files_free(R);
    free(R->mem_files);
    if (R->report_open) gc_report_abort(&R->report);
    gcam_explainer_free(R->e);
    if (!R->m_borrowed) gcam_model_free(R->m);
    for (int f = 0; f < R->n_feeds; f++) free(R->feeds[f].t.data);
    for (int i = 0; i < R->n_failures; i++) {
        free(R->failures[i]);
        free(R->failure_paths[i]);
    }
    free(R->failures);
    free(R->failure_paths);
    gc_buf_free(&R->inputs_json);
    if (R->inputs_spill) fclose(R->inputs_spill);
    free(R->score_name);
    free(R->layer_names);
    if (R->labels != (const char **)gc_imagenet_labels) free(R->labels);
    free(R->labels_owned);
    ex_text_free_run(R);
}

void ex_opts_free(ex_opts *o) {
    free(o->inputs);
    for (int i = 0; i < o->n_owned; i++) free(o->owned[i]);
    o->inputs = NULL;
    o->n_owned = 0;
}

/* The output folder's files on disk (one syncfs for the run's PNGs and .npy files), so that a
 * results.json renamed into place after it names only complete files. */
static void sync_folder(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)syncfs(fd);
    close(fd);
}

int cmd_explain(int argc, char **argv) {
    ex_opts o;
    int exit_code = ex_parse_options(argc, argv, &o, 0);
    if (exit_code) {
        ex_opts_free(&o);
        return exit_code < 0 ? 0 : exit_code;
    }
    ex_run R;
    memset(&R, 0, sizeof R);
    R.o = &o;
    ex_inputs list = {0};
    R.list = &list;
    gc_err err = {0};
    double t0 = cli_now_s();
    int stopped = 0;
    /* the maps' files are not synced one by one (3+ fsyncs an input cost ~9 ms of waiting on this
     * VM's disk, a fifth of resnet50's Grad-CAM): the folder is synced once before results.json */
    gc_set_write_fsync(0);
    if (!(exit_code = ex_prepare_model(&R)) && !(exit_code = ex_prepare_inputs(&R, &list)) &&
        !(exit_code = ex_open_report(&R, &list, &err))) {
        exit_code = ex_explain_all(&R, &list, t0, &err, &stopped);
        if (!stopped) {
            sync_folder(o.base.out);
            exit_code = ex_write_results(&R, &list, &err);
            exit_code = ex_summary(&R, &list, exit_code, t0);
        }
    }
    ex_run_free(&R);
    ex_inputs_free(&list);
    ex_opts_free(&o);
    return exit_code;
}

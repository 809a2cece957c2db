/* Table-driven options (cli_opts.h). */
#include "cli_opts.h"

#include <errno.h>
#include <strings.h>

/* The row for spelling `name` (searching included tables), or NULL. */
static const cli_row *find_row(const cli_row *t, const char *name) {
    for (; t->kind != CLI_END; t++) {
        if (t->kind == CLI_INCLUDE) {
            const cli_row *r = find_row(t->rows, name);
            if (r) return r;
        }
        if (t->kind != CLI_OPTION) continue;
        size_t len = strlen(name);
        for (const char *p = t->names; p && *p;) {
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t)(bar - p) : strlen(p);
            if (n == len && strncmp(p, name, n) == 0) return t;
            p = bar ? bar + 1 : NULL;
        }
    }
    return NULL;
}

int cli_parse_options(int argc, char **argv, const cli_row *table, void *opts, int (*positional)(void *opts, char *arg),
                      void (*help)(void), const char *cmd) {
    int only_positional = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        int rc;
        if (only_positional || a[0] != '-' || !a[1]) {
            if ((rc = positional(opts, a))) return rc;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_positional = 1;
            continue;
        }
        char name[64];
        const char *val = cli_split_option(a, name, sizeof name), *eq = val; /* --name=value */
        if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0) {
            help();
            return -1;
        }
        const cli_row *r = find_row(table, name);
        if (!r) return cli_usage_error("%s: unknown option '%s'", cmd, a);
        if (!r->arg && eq) return cli_usage_error("%s takes no value", name);
        if (r->arg && !val) {
            if (i + 1 >= argc) return cli_usage_error("%s needs %s", name, r->need);
            val = argv[++i];
        }
        if ((rc = r->set(opts, name, r->arg ? val : NULL))) return rc;
    }
    return 0;
}

/* One option's help: "  -m, --method LIST" padded to 25 columns, then its lines. */
static void print_row(const cli_row *r) {
    char usage[128];
    size_t u = 0;
    for (const char *p = r->names; *p && u + 2 < sizeof usage; p++) {
        if (*p == '|') {
            usage[u++] = ',';
            usage[u++] = ' ';
        } else {
            usage[u++] = *p;
        }
    }
    usage[u] = 0;
    if (r->arg) snprintf(usage + u, sizeof usage - u, " %s", r->arg);
    const char *h = r->help ? r->help : "";
    const char *nl = strchr(h, '\n');
    int first = nl ? (int)(nl - h) : (int)strlen(h);
    if (first) printf("  %-23s%.*s\n", usage, first, h);
    else printf("  %s\n", usage);
    for (const char *p = nl; p; p = strchr(p + 1, '\n')) {
        const char *end = strchr(p + 1, '\n');
        printf("%25s%.*s\n", "", end ? (int)(end - p - 1) : (int)strlen(p + 1), p + 1);
    }
    if (r->more) r->more();
}

static void print_rows(const cli_row *t, int *sections) {
    for (; t->kind != CLI_END; t++) {
        if (t->kind == CLI_SECTION) printf("%s%s\n", (*sections)++ ? "\n" : "", t->help);
        else if (t->kind == CLI_TEXT) printf("%s\n", t->help);
        else if (t->kind == CLI_INCLUDE) print_rows(t->rows, sections);
        else if (t->help) print_row(t);
    }
}

void cli_print_options(const cli_row *table) {
    int sections = 0;
    print_rows(table, &sections);
}

/* ---- the preprocessing options -------------------------------------------------------------- */

static int set_pre(void *opts, const char *name, const char *val) {
    return cli_pre_option(&((cli_base_opts *)opts)->pre, name, val); /* the options struct begins with it */
}

const cli_row cli_pre_rows[] = {
    CLI_OPT("--preprocess", "P", "a value", set_pre,
            "imagenet: shorter side to 256, centre crop 224x224, ImageNet mean/std, RGB,\n"
            "NCHW (the default for a 3x224x224 input); raw: RGB in 0..1 stretched to the\n"
            "input size (the default otherwise)"),
    CLI_OPT("--size", "WxH", "a value", set_pre,
            "the input size (default: the model's; a model with dynamic height and width\n"
            "takes each image at its own size, or 224x224 with --preprocess imagenet)"),
    CLI_OPT("--resize-mode", "M", "a value", set_pre, "stretch | shorter-side-crop | letterbox"),
    CLI_OPT("--mean", "R,G,B", "a value", set_pre,
            "x = (pixel / 255 * scale - mean) / std per channel; one value sets all three"),
    CLI_OPT("--std", "R,G,B", "a value", set_pre, ""),
    CLI_OPT("--scale", "S", "a value", set_pre, "(default 1: pixels in 0..1)"),
    CLI_FLAG("--bgr", set_pre, "channels in B, G, R order"),
    CLI_FLAG("--nhwc", set_pre, "the model takes (N, H, W, C) (found from the input shape when it is clear)"),
    CLI_END_ROW,
};

/* ---- shared setters ------------------------------------------------------------------------- */

int cli_set_methods(const char *name, const char *val, gcam_method *methods, int *n, int *all, const char *see) {
    char *copy = gc_strdup(val);
    if (!copy) return cli_fail(1, "out of memory");
    int given = 0, rc = 0;
    for (char *p = copy, *tok; !rc && (tok = strsep(&p, ",")) != NULL;) {
        while (*tok == ' ') tok++;
        size_t len = strlen(tok);
        while (len && tok[len - 1] == ' ') tok[--len] = 0;
        if (!*tok) continue;
        given++;
        if (strcasecmp(tok, "all") == 0) {
            *all = 1;
            continue;
        }
        int m = gcam_method_from_name(tok);
        if (m < 0) {
            rc = cli_usage_error("unknown method '%s' (see %s)", tok, see);
            break;
        }
        int dup = 0;
        for (int q = 0; q < *n; q++) dup |= methods[q] == (gcam_method)m;
        if (!dup) methods[(*n)++] = (gcam_method)m;
    }
    free(copy);
    if (!rc && !given) rc = cli_usage_error("%s: no method given", name);
    return rc;
}

#define BASE cli_base_opts *b = opts
int cli_set_out(void *opts, const char *name, const char *val) {
    BASE;
    if (!*val) return cli_usage_error("%s: empty folder name", name);
    b->out = val;
    return 0;
}

int cli_set_labels(void *opts, const char *name, const char *val) {
    BASE;
    b->labels_path = val;
    return 0;
}

int cli_set_quiet(void *opts, const char *name, const char *val) {
    BASE;
    b->quiet = 1;
    return 0;
}

int cli_set_threads_opt(void *opts, const char *name, const char *val) {
    BASE;
    int64_t t;
    if (cli_parse_i64(val, &t) || t < 1 || t > 1024) return cli_usage_error("%s: '%s' is not a number from 1 to 1024", name, val);
    b->threads = (int)t;
    return 0;
}

int cli_set_max_memory(void *opts, const char *name, const char *val) {
    BASE;
    if (cli_parse_bytes(val, &b->max_memory)) return cli_usage_error("--max-memory: '%s' is not a size (e.g. 2G)", val);
    return 0;
}

int cli_set_seed_opt(void *opts, const char *name, const char *val) {
    BASE;
    char *end;
    errno = 0;
    unsigned long long s = strtoull(val, &end, 0);
    if (end == val || *end || errno || val[0] == '-') return cli_usage_error("--seed: '%s' is not a number", val);
    b->seed = s;
    return 0;
}
#undef BASE

/* ---- the transformer options ----------------------------------------------------------------- */

static int set_tokens(void *opts, const char *name, const char *val) {
    cli_base_opts *b = opts;
    if (strcmp(name, "--skip-tokens") == 0) {
        int64_t k;
        if (cli_parse_i64(val, &k) || k < 1 || k > 64) return cli_usage_error("%s: '%s' is not a number from 1 to 64", name, val);
        b->skip_tokens = (int)k;
        return 0;
    }
    int64_t d[GCAM_MAX_DIMS];
    int nd = 0;
    if (cli_parse_dims(val, d, &nd) || nd != 2 || d[0] < 1 || d[1] < 1 || d[0] > 4096 || d[1] > 4096)
        return cli_usage_error("%s: '%s' is not HxW (e.g. 14x14)", name, val);
    b->tokens_h = d[0];
    b->tokens_w = d[1];
    return 0;
}

const cli_row cli_token_rows[] = {
    CLI_OPT("--tokens-grid", "HxW", "a grid HxW", set_tokens,
            "a token layer (N, T, C) is the grid of its last H*W tokens (default: the grid with\n"
            "the input's aspect ratio, after 0, 1 or 2 special tokens)"),
    CLI_OPT("--skip-tokens", "N", "a number", set_tokens, "the special tokens (class, distillation) before the grid's"),
    CLI_END_ROW,
};

/* ---- the detection options ------------------------------------------------------------------- */

int cli_set_task(void *opts, const char *name, const char *val) {
    cli_base_opts *b = opts;
    if (strcmp(val, "classify") == 0) b->task = CLI_TASK_CLASSIFY;
    else if (strcmp(val, "detect") == 0) b->task = CLI_TASK_DETECT;
    else if (strcmp(val, "segment") == 0) b->task = CLI_TASK_SEGMENT;
    else if (strcmp(val, "caption") == 0) b->task = CLI_TASK_CAPTION;
    else if (strcmp(val, "vqa") == 0) b->task = CLI_TASK_VQA;
    else return cli_usage_error("%s: '%s' is not classify, detect, segment, caption or vqa", name, val);
    return 0;
}

static int set_det(void *opts, const char *name, const char *val) {
    cli_base_opts *b = opts;
    if (!b->det_given) b->det_given = name;
    if (strcmp(name, "--detections") == 0) {
        int l = gcam_det_layout_from_name(val);
        if (l < 0) return cli_usage_error("%s: '%s' is not auto, yolov8 or yolov5", name, val);
        b->det.layout = (gcam_det_layout)l;
    } else if (strcmp(name, "--max-detections") == 0) {
        int64_t k;
        if (cli_parse_i64(val, &k) || k < 1 || k > CLI_MAX_DETECTIONS)
            return cli_usage_error("%s: '%s' is not a number from 1 to %d", name, val, CLI_MAX_DETECTIONS);
        b->det.max_detections = (int)k;
    } else {
        float v;
        if (cli_parse_float(val, &v) || v < 0 || v > 1) return cli_usage_error("%s: '%s' is not a number from 0 to 1", name, val);
        if (strcmp(name, "--score-threshold") == 0) b->det.score_threshold = v;
        else b->det.iou_threshold = v;
    }
    return 0;
}

const cli_row cli_det_rows[] = {
    CLI_OPT("--detections", "LAYOUT", "a layout", set_det,
            "auto (default: from the output's shape) | yolov8 (N, 4 + C, A) | yolov5 (N, A, 5 + C)"),
    CLI_OPT("--score-threshold", "S", "a number", set_det, "keep detections scoring >= S (default 0.25)"),
    CLI_OPT("--iou-threshold", "T", "a number", set_det,
            "class-wise NMS: drop boxes overlapping a better one by IoU > T (default 0.45)"),
    CLI_OPT("--max-detections", "N", "a number", set_det, "keep at most N detections per image, the best first (default 32)"),
    CLI_END_ROW,
};

void cli_det_defaults(cli_base_opts *b) {
    gcam_detect_options_init(&b->det);
    b->det.max_detections = 32;
}

int cli_det_finish(cli_base_opts *b) {
    if (b->task != CLI_TASK_DETECT) return b->det_given ? cli_usage_error("%s needs --task detect", b->det_given) : 0;
    if (b->pre.preprocess < 0) b->pre.preprocess = 1;                     /* YOLO: RGB / 255 */
    if (b->pre.resize_mode < 0) b->pre.resize_mode = GC_RESIZE_LETTERBOX; /* YOLO's input */
    return 0;
}

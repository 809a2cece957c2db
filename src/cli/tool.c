/* The explain command as a library (include/gradcam_tool.h): the command's own option parser, model
 * checks, per-input phases and output writers, driven one input at a time with the model loaded
 * once. Nothing is printed: cli_fail's lines are captured into the tool's error. */
#include <stdarg.h>
#include <stdint.h>
#include <strings.h>

#include "explain.h"
#include "image/npy.h"

struct gcam_tool {
    gcam_model *m;
    int own_model;
    char *model_path;
    char **base;                 /* the tool's options (copies) */
    int n_base;
    /* the run of the current options: the tool's with the last request's over them */
    ex_opts o;
    ex_run R;
    int have_run;
    char **run_argv;             /* what o points into */
    int run_argc;
    char *run_key;               /* the request options the run was made for, joined */
    gc_buf describe;
    gcam_abort_fn abort_fn;      /* gcam_tool_set_abort: given to every explainer of every run */
    void *abort_user;
    char err[1024];
};

/* Options a request may give: what is explained and how it is drawn, nothing that reads a file. */
static const struct {
    const char *name, *alias;
    int value;
} g_request_opts[] = {
    {"--method", "-m", 1},      {"--class", "-c", 1},        {"--top-k", "-k", 1},          {"--layer", "-l", 1},
    {"--output", NULL, 1},      {"--target", NULL, 1},       {"--probability", NULL, 0},    {"--colormap", NULL, 1},
    {"--alpha", NULL, 1},       {"--npy", NULL, 0},          {"--box", NULL, 1},            {"--score-threshold", NULL, 1},
    {"--iou-threshold", NULL, 1}, {"--max-detections", NULL, 1}, {"--seed", NULL, 1},
    {"--caption", NULL, 1},     {"--question", NULL, 1},     {"--max-words", NULL, 1}, /* (text, not files) */
    {"--detections", NULL, 1},
};
#define N_REQUEST_OPTS ((int)(sizeof g_request_opts / sizeof g_request_opts[0]))

/* The request option arg names (its long name's index), or -1. "--name=value" counts as --name. */
static int request_opt(const char *arg) {
    size_t n = strcspn(arg, "=");
    for (int i = 0; i < N_REQUEST_OPTS; i++) {
        const char *a = g_request_opts[i].alias;
        if ((strlen(g_request_opts[i].name) == n && strncmp(arg, g_request_opts[i].name, n) == 0) ||
            (a && strcmp(arg, a) == 0))
            return i;
    }
    return -1;
}

static gcam_status tool_fail(gcam_tool *t, gcam_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static gcam_status tool_fail(gcam_tool *t, gcam_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err, sizeof t->err, fmt, ap);
    va_end(ap);
    return st;
}

static void free_argv(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

static void drop_run(gcam_tool *t) {
    if (t->have_run) {
        ex_run_free(&t->R);
        ex_opts_free(&t->o);
    }
    memset(&t->R, 0, sizeof t->R);
    t->have_run = 0;
    free_argv(t->run_argv, t->run_argc);
    t->run_argv = NULL;
    t->run_argc = 0;
    free(t->run_key);
    t->run_key = NULL;
}

/* "explain MODEL <the tool's options minus those the request gives> <the request's>", copied. */
static gcam_status build_argv(gcam_tool *t, int argc, const char *const *argv) {
    size_t cap = (size_t)t->n_base + (size_t)argc + 2;
    char **v = calloc(cap, sizeof *v);
    int n = 0;
    if (!v) return tool_fail(t, GCAM_E_NOMEM, "out of memory");
    v[n++] = gc_strdup("explain");
    v[n++] = gc_strdup(t->model_path);
    for (int i = 0; i < t->n_base; i++) {
        int k = request_opt(t->base[i]), given = 0;
        for (int r = 0; k >= 0 && r < argc; r++) given |= request_opt(argv[r]) == k;
        if (given) { /* the request's replaces it (with its value) */
            if (g_request_opts[k].value && !strchr(t->base[i], '=')) i++;
            continue;
        }
        v[n++] = gc_strdup(t->base[i]);
    }
    for (int r = 0; r < argc; r++) v[n++] = gc_strdup(argv[r]);
    for (int i = 0; i < n; i++)
        if (!v[i]) {
            free_argv(v, n);
            return tool_fail(t, GCAM_E_NOMEM, "out of memory");
        }
    t->run_argv = v;
    t->run_argc = n;
    return GCAM_OK;
}

static gcam_status exit_status(int code) {
    return code == CLI_USAGE ? GCAM_E_ARG : code == CLI_BAD_INPUT ? GCAM_E_FORMAT : GCAM_E_INTERNAL;
}

/* The run for these request options (kept while they stay the same). */
/* The run (and its explainer, and the explainers ex_plan makes later) takes the tool's abort check. */
static void run_take_abort(gcam_tool *t) {
    t->R.abort_fn = t->abort_fn;
    t->R.abort_user = t->abort_user;
    if (t->R.e) gcam_explainer_set_abort(t->R.e, t->abort_fn, t->abort_user);
}

static gcam_status ensure_run(gcam_tool *t, int argc, const char *const *argv) {
    gc_buf key = {0};
    for (int i = 0; i < argc; i++) {
        if (!argv[i]) return tool_fail(t, GCAM_E_ARG, "request option %d is NULL", i);
        gc_buf_puts(&key, argv[i]);
        gc_buf_puts(&key, "\x1f");
    }
    if (key.oom) return tool_fail(t, GCAM_E_NOMEM, "out of memory");
    const char *k = key.p ? key.p : "";
    if (t->have_run && t->run_key && strcmp(t->run_key, k) == 0) {
        gc_buf_free(&key);
        return GCAM_OK;
    }
    drop_run(t);
    t->run_key = key.p ? key.p : gc_strdup("");
    gcam_status st = build_argv(t, argc, argv);
    if (st) return st;
    int code = ex_parse_options(t->run_argc, t->run_argv, &t->o, 1);
    if (code) {
        ex_opts_free(&t->o);
        return code < 0 ? tool_fail(t, GCAM_E_ARG, "--help is not an option here") : exit_status(code);
    }
    t->o.base.quiet = 1;
    t->R.o = &t->o;
    t->R.no_report = 1;
    t->R.m = t->m;
    t->R.m_borrowed = t->m != NULL;
    run_take_abort(t);
    t->have_run = 1;
    code = ex_prepare_model(&t->R);
    if (!t->m && t->R.m) { /* the first run loaded it: the tool keeps it for the next runs */
        if (t->R.load_status) {
            gcam_model_free(t->R.m);
        } else {
            t->m = t->R.m;
            t->own_model = 1;
        }
        t->R.m_borrowed = 1;
    }
    if (code) {
        st = t->R.load_status ? t->R.load_status : exit_status(code);
        drop_run(t);
        return st;
    }
    return GCAM_OK;
}

static gcam_status check_base(gcam_tool *t, int argc, const char *const *argv) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!a) return tool_fail(t, GCAM_E_ARG, "option %d is NULL", i);
        if (strcmp(a, "-o") == 0 || strncmp(a, "--out", 5) == 0)
            return tool_fail(t, GCAM_E_ARG, "%s: the output folder is given per input (the request's out_dir)", a);
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) return tool_fail(t, GCAM_E_ARG, "--help is not an option here");
    }
    return GCAM_OK;
}

static gcam_status tool_open(gcam_tool **out, gcam_model *m, int own, const char *path, int argc,
                             const char *const *argv) {
    if (!out) return GCAM_E_ARG;
    gcam_tool *t = calloc(1, sizeof *t);
    *out = t;
    if (!t) return GCAM_E_NOMEM;
    t->m = m;
    t->own_model = own;
    if (!path) return tool_fail(t, GCAM_E_ARG, "no model path");
    if (argc < 0 || (argc > 0 && !argv)) return tool_fail(t, GCAM_E_ARG, "bad option list");
    gcam_status st = check_base(t, argc, argv);
    if (st) return st;
    t->model_path = gc_strdup(path);
    t->base = calloc((size_t)argc + 1, sizeof *t->base);
    if (!t->model_path || !t->base) return tool_fail(t, GCAM_E_NOMEM, "out of memory");
    for (int i = 0; i < argc; i++)
        if (!(t->base[t->n_base++] = gc_strdup(argv[i]))) return tool_fail(t, GCAM_E_NOMEM, "out of memory");
    cli_capture(t->err, sizeof t->err);
    st = ensure_run(t, 0, NULL);
    cli_capture(NULL, 0);
    return st;
}

gcam_status gcam_tool_open(gcam_tool **out, const char *model_path, int argc, const char *const *argv) {
    return tool_open(out, NULL, 0, model_path, argc, argv);
}

gcam_status gcam_tool_open_model(gcam_tool **out, const gcam_model *m, const char *model_path, int argc,
                                 const char *const *argv) {
    if (!m) {
        if (out) *out = NULL;
        return GCAM_E_ARG;
    }
    /* (shared read-only; the cast only lets the run hold it in its field) */
    return tool_open(out, (gcam_model *)(uintptr_t)m, 0, model_path, argc, argv);
}

const char *gcam_tool_error(const gcam_tool *t) { return t ? t->err : "out of memory"; }

const gcam_model *gcam_tool_model(const gcam_tool *t) { return t ? t->m : NULL; }

void gcam_tool_free(gcam_tool *t) {
    if (!t) return;
    drop_run(t);
    if (t->own_model) gcam_model_free(t->m);
    free_argv(t->base, t->n_base);
    free(t->model_path);
    gc_buf_free(&t->describe);
    free(t);
}

void gcam_tool_result_free(gcam_tool_result *r) {
    if (!r) return;
    free(r->record);
    for (int i = 0; i < r->n_files; i++) {
        free(r->files[i].name);
        free(r->files[i].data);
    }
    free(r->files);
    memset(r, 0, sizeof *r);
}

static int looks_npy(const void *data, size_t size) { return size >= 6 && memcmp(data, "\x93NUMPY", 6) == 0; }

/* The request's one input, named. */
static gcam_status request_input(gcam_tool *t, const gcam_tool_request *rq, ex_inputs *l) {
    int bad;
    if (rq->path) {
        char *arg = (char *)(uintptr_t)rq->path; /* (ex_inputs_collect only reads it) */
        bad = ex_inputs_collect(l, &arg, 1, NULL);
        if (!bad && l->n != 1) return tool_fail(t, GCAM_E_ARG, "%s: a folder; give the files one at a time", rq->path);
    } else {
        bad = ex_inputs_add_memory(l, rq->name ? rq->name : "input", rq->data, rq->size, looks_npy(rq->data, rq->size));
    }
    if (bad || ex_inputs_assign_stems(l)) return tool_fail(t, GCAM_E_NOMEM, "out of memory");
    if (rq->name) { /* the stem given, as is */
        char *stem = gc_strdup(rq->name);
        if (!stem) return tool_fail(t, GCAM_E_NOMEM, "out of memory");
        free(l->v[0].stem);
        l->v[0].stem = stem;
    }
    return GCAM_OK;
}

static gcam_status check_request(gcam_tool *t, const gcam_tool_request *rq) {
    if (!rq) return tool_fail(t, GCAM_E_ARG, "no request");
    if (!rq->path == !rq->data) return tool_fail(t, GCAM_E_ARG, "give either a path or data, not %s", rq->path ? "both" : "neither");
    if (rq->data && !rq->size) return tool_fail(t, GCAM_E_ARG, "the input is empty (0 bytes)");
    if (rq->name && (!rq->name[0] || strchr(rq->name, '/') || strcmp(rq->name, ".") == 0 || strcmp(rq->name, "..") == 0 ||
                     strlen(rq->name) > 200))
        return tool_fail(t, GCAM_E_ARG, "name '%.200s': a file-name stem has no '/', is not '.' or '..' and has 1 to 200 bytes",
                         rq->name);
    if (rq->argc < 0 || (rq->argc > 0 && !rq->argv)) return tool_fail(t, GCAM_E_ARG, "bad request option list");
    for (int i = 0; i < rq->argc; i++) {
        const char *a = rq->argv[i];
        int k = a ? request_opt(a) : -1;
        if (k < 0)
            return tool_fail(t, GCAM_E_ARG, "'%s' cannot be given per input (the tool's options hold it)", a ? a : "(null)");
        if (g_request_opts[k].value && !strchr(a, '=')) i++;
    }
    return GCAM_OK;
}

/* A failed input's record, as results.json lists failures. */
static char *failure_record(const char *path, const char *why) {
    gc_buf b = {0};
    gc_json j;
    gc_json_init(&j, &b, 2);
    gc_json_begin_object(&j);
    gc_json_key(&j, "path");
    gc_json_string(&j, path);
    gc_json_key(&j, "error");
    gc_json_string(&j, why);
    gc_json_end_object(&j);
    if (b.oom || j.bad) {
        gc_buf_free(&b);
        return NULL;
    }
    return b.p;
}

/* One input through the run: its record (and memory files) into *res. */
static gcam_status run_input(gcam_tool *t, const gcam_tool_request *rq, ex_input *in, gcam_tool_result *res) {
    ex_run *R = &t->R;
    gc_buf rec = {0};
    gc_err err = {0};
    R->record_out = &rec;
    int r = ex_explain_input(R, in, &err);
    R->record_out = NULL;
    ex_end_input_files(R, r == EX_DONE);
    if (r >= EX_STOP) { /* the run cannot go on: made again for the next input */
        gcam_status st = err.code ? err.code : exit_status(r - EX_STOP);
        if (!t->err[0]) snprintf(t->err, sizeof t->err, "%s", err.msg[0] ? err.msg : "stopped");
        gc_buf_free(&rec);
        ex_mem_files_free(R);
        drop_run(t);
        return st;
    }
    if (r == EX_FAILED) {
        gc_buf_free(&rec);
        ex_mem_files_free(R);
        const char *why = err.msg[0] ? err.msg : "failed (no reason recorded)";
        char line[1400];
        ex_failure_line(line, sizeof line, in->path, why);
        res->record = failure_record(rq->path ? rq->path : in->path, line);
        res->failed = 1;
        res->exit_code = cli_status_exit(err.code ? err.code : GCAM_E_FORMAT);
        if (res->exit_code == 0 || res->exit_code == CLI_USAGE) res->exit_code = CLI_BAD_INPUT;
        snprintf(t->err, sizeof t->err, "%s", line);
        return res->record ? GCAM_OK : tool_fail(t, GCAM_E_NOMEM, "out of memory");
    }
    res->record = rec.p;
    res->files = R->mem_files;
    res->n_files = R->n_mem_files;
    R->mem_files = NULL;
    R->n_mem_files = R->cap_mem_files = 0;
    return GCAM_OK;
}

gcam_status gcam_tool_set_abort(gcam_tool *t, gcam_abort_fn fn, void *user) {
    if (!t) return GCAM_E_ARG;
    t->abort_fn = fn;
    t->abort_user = fn ? user : NULL;
    run_take_abort(t); /* at once: a check removed leaves no explainer holding its user pointer */
    return GCAM_OK;
}

gcam_status gcam_tool_explain(gcam_tool *t, const gcam_tool_request *rq, gcam_tool_result *res) {
    if (!t || !res) return GCAM_E_ARG;
    memset(res, 0, sizeof *res);
    t->err[0] = 0;
    gcam_status st = check_request(t, rq);
    if (st) return st;
    cli_capture(t->err, sizeof t->err);
    ex_inputs l = {0};
    if ((st = ensure_run(t, rq->argc, rq->argv)) || (st = request_input(t, rq, &l))) goto done;
    ex_run *R = &t->R;
    R->mem = !rq->out_dir;
    R->mem_inline = R->mem && rq->inline_png;
    R->mem_url = R->mem ? rq->url_prefix : NULL;
    R->list = &l;
    t->o.base.out = rq->out_dir ? rq->out_dir : "";
    if (rq->out_dir) {
        int cl = ex_inputs_find_clobber(&l, rq->out_dir);
        if (cl >= 0) {
            st = tool_fail(t, GCAM_E_ARG, "%s holds the input '%s', which an output could overwrite", rq->out_dir, l.v[cl].path);
            goto done;
        }
        int e = cli_mkdir_p(rq->out_dir);
        if (e) {
            st = tool_fail(t, GCAM_E_IO, "%s: cannot create the output folder: %s", rq->out_dir, strerror(e));
            goto done;
        }
    }
    st = run_input(t, rq, &l.v[0], res);
    if (t->have_run) t->R.list = NULL;
done:
    cli_capture(NULL, 0);
    ex_inputs_free(&l);
    if (st) gcam_tool_result_free(res);
    return st;
}

void gcam_tool_inputs_free(char **paths, char **stems, int n) {
    for (int i = 0; i < n; i++) {
        if (paths) free(paths[i]);
        if (stems) free(stems[i]);
    }
    free(paths);
    free(stems);
}

gcam_status gcam_tool_inputs(const char *const *args, int n_args, const char *out_dir, char ***paths, char ***stems,
                             int *n) {
    if (!paths || !stems || !n || n_args < 0 || (n_args && !args)) return GCAM_E_ARG;
    *paths = *stems = NULL;
    *n = 0;
    for (int i = 0; i < n_args; i++)
        if (!args[i]) return GCAM_E_ARG;
    ex_inputs l = {0};
    /* (ex_inputs_collect only reads the arguments) */
    if (ex_inputs_collect(&l, (char *const *)(uintptr_t)args, n_args, out_dir) || ex_inputs_assign_stems(&l)) {
        ex_inputs_free(&l);
        return GCAM_E_NOMEM;
    }
    char **p = calloc((size_t)l.n + 1, sizeof *p), **s = calloc((size_t)l.n + 1, sizeof *s);
    gcam_status st = p && s ? GCAM_OK : GCAM_E_NOMEM;
    for (int i = 0; !st && i < l.n; i++) { /* taken over from the list */
        p[i] = l.v[i].path;
        s[i] = l.v[i].stem;
        l.v[i].path = l.v[i].stem = NULL;
    }
    int count = l.n;
    ex_inputs_free(&l);
    if (st) {
        gcam_tool_inputs_free(p, s, p && s ? count : 0);
        return st;
    }
    *paths = p;
    *stems = s;
    *n = count;
    return GCAM_OK;
}

const char *gcam_tool_describe(gcam_tool *t) {
    if (!t) return NULL;
    gc_buf_free(&t->describe);
    if (!t->have_run) {
        cli_capture(t->err, sizeof t->err);
        gcam_status st = ensure_run(t, 0, NULL);
        cli_capture(NULL, 0);
        if (st) return NULL;
    }
    ex_describe(&t->R, &t->describe);
    return t->describe.oom ? NULL : t->describe.p;
}

/* ---- the picture side ---- */

gcam_status gcam_tool_decode(const char *path, const void *data, size_t size, uint8_t **rgb, int64_t *h, int64_t *w,
                             char *errbuf, size_t err_size) {
    gc_err err = {0};
    gcam_status st = GCAM_OK;
    gc_image img = {0};
    if (rgb) *rgb = NULL;
    if (!rgb || !h || !w) st = gc_fail(&err, GCAM_E_ARG, "gcam_tool_decode: NULL output");
    else if (!path == !data) st = gc_fail(&err, GCAM_E_ARG, "give either a path or data, not %s", path ? "both" : "neither");
    if (!st) {
        gc_decode_opts dopt = {.background = {255, 255, 255}};
        st = path ? gc_image_load(path, &img, &dopt, &err) : gc_image_load_memory(data, size, "picture", &img, &dopt, &err);
    }
    if (st) {
        if (errbuf && err_size) snprintf(errbuf, err_size, "%s", err.msg);
        return st;
    }
    *rgb = img.px;
    *h = img.h;
    *w = img.w;
    return GCAM_OK;
}

gcam_status gcam_tool_preprocess(gcam_tool *t, const uint8_t *rgb, int64_t h, int64_t w, float **x, int64_t *dims,
                                 int *ndim) {
    if (!t || !rgb || !x || !dims || !ndim || h < 1 || w < 1 || h > (1 << 20) || w > (1 << 20)) return GCAM_E_ARG;
    *x = NULL;
    cli_capture(t->err, sizeof t->err);
    gcam_status st = t->have_run ? GCAM_OK : ensure_run(t, 0, NULL);
    cli_capture(NULL, 0);
    if (st) return st;
    ex_one *s = calloc(1, sizeof *s);
    ex_input in = {.path = "picture"};
    if (!s) return tool_fail(t, GCAM_E_NOMEM, "out of memory");
    s->in = &in;
    s->orig = (gc_image){.w = w, .h = h, .px = (uint8_t *)(uintptr_t)rgb}; /* read only */
    gc_err err = {0};
    if (ex_picture_input(&t->R, s, &err)) {
        st = tool_fail(t, err.code ? err.code : GCAM_E_FORMAT, "%s", err.msg);
    } else {
        *x = s->xbuf;
        s->xbuf = NULL;
        *ndim = s->ndim;
        memcpy(dims, s->dims, sizeof(int64_t) * (size_t)s->ndim);
    }
    free(s->xbuf);
    gc_image_free(&s->seen);
    free(s);
    return st;
}

gcam_status gcam_tool_colorize(const float *map, int64_t h, int64_t w, const char *colormap, const uint8_t *rgb,
                               float alpha, uint8_t *out) {
    if (!map || !out || h < 1 || w < 1 || h > (1 << 20) || w > (1 << 20) || !(alpha >= 0 && alpha <= 1)) return GCAM_E_ARG;
    int id = gc_colormap_from_name(colormap ? colormap : "jet");
    if (id < 0) return GCAM_E_ARG;
    gc_image im = {0}, base = {.w = w, .h = h, .px = (uint8_t *)(uintptr_t)rgb};
    gc_err err = {0};
    gcam_status st = rgb ? gc_overlay(&im, &base, map, (gc_colormap_id)id, alpha, &err)
                         : gc_heatmap_image(&im, map, h, w, (gc_colormap_id)id, &err);
    if (st) return st;
    memcpy(out, im.px, (size_t)h * (size_t)w * 3);
    gc_image_free(&im);
    return GCAM_OK;
}

gcam_status gcam_tool_png(const uint8_t *px, int64_t h, int64_t w, int channels, unsigned char **png, size_t *size) {
    if (!px || !png || !size || h < 1 || w < 1 || h > (1 << 20) || w > (1 << 20) || (channels != 1 && channels != 3))
        return GCAM_E_ARG;
    *png = NULL;
    gc_image im = {.w = w, .h = h, .px = (uint8_t *)(uintptr_t)px};
    uint8_t *grey3 = NULL;
    if (channels == 1) { /* PNGs here are RGB: grey repeated */
        grey3 = gc_malloc2((size_t)h * (size_t)w, 3);
        if (!grey3) return GCAM_E_NOMEM;
        for (size_t i = 0; i < (size_t)h * (size_t)w; i++) grey3[3 * i] = grey3[3 * i + 1] = grey3[3 * i + 2] = px[i];
        im.px = grey3;
    }
    gc_err err = {0};
    gcam_status st = gc_image_encode_png(&im, png, size, &err);
    free(grey3);
    return st;
}

void gcam_tool_buffer_free(void *p) { free(p); }

/* gradcam_tool.h — the `gradcam explain` command as a library: pictures in, the command's records
 * and files out, with the model loaded once. For programs that explain many inputs over a long
 * life (the Python package and its Dask workers, `gradcam serve`), not for one-off runs.
 *
 * libgradcam_tool holds the whole engine (every gcam_ function of gradcam.h) plus what the command
 * adds over it: picture decoding, preprocessing, colour maps, PNG writing and the records of
 * results.json. libgradcam stays the lean engine for C programs.
 *
 * USAGE GUIDE
 * -----------
 *   const char *opts[] = {"--preprocess", "imagenet", "-m", "gradcam,guided-backprop", "-k", "2"};
 *   gcam_tool *t = NULL;
 *   if (gcam_tool_open(&t, "resnet50.onnx", 6, opts) != GCAM_OK) {
 *       fprintf(stderr, "%s\n", gcam_tool_error(t));   // t is valid even on failure
 *       gcam_tool_free(t);
 *       return 1;
 *   }
 *   gcam_tool_request rq = {.path = "cat.jpg", .out_dir = "out"};    // files as the command writes
 *   gcam_tool_result r;
 *   if (gcam_tool_explain(t, &rq, &r) == GCAM_OK) puts(r.record);    // results.json's record
 *   gcam_tool_result_free(&r);
 *   gcam_tool_free(t);
 *
 * Rules: a gcam_tool is used by one thread at a time (one per worker thread; several tools may
 * share one gcam_model, see gcam_tool_open_model). It never prints and never exits: every failure
 * is a status and one line in gcam_tool_error(). An input that cannot be explained (an undecodable
 * picture, a class it does not have...) is not a failure of the call: its record says "error" and
 * result.failed is 1, as results.json lists failed inputs; the command's exit code is in
 * result.exit_code (0, or 3 for a bad input).
 */
#ifndef GRADCAM_TOOL_H
#define GRADCAM_TOOL_H

#include "gradcam.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gcam_tool gcam_tool;

/* Loads model_path and takes the options of `gradcam explain` that follow MODEL on its command line
 * (argv: argc strings, no program name, no inputs; -o/--out is refused, the request names where
 * files go). Anything the command would reject is GCAM_E_ARG (bad option), GCAM_E_IO / FORMAT /
 * UNSUPPORTED (the model, the labels file) with the command's message. *out is set even on
 * failure unless memory ran out. */
gcam_status gcam_tool_open(gcam_tool **out, const char *model_path, int argc, const char *const *argv);
/* The same over a model already loaded (shared, not freed by the tool; it must outlive the tool).
 * model_path is what the records call it. */
gcam_status gcam_tool_open_model(gcam_tool **out, const gcam_model *m, const char *model_path, int argc,
                                 const char *const *argv);
const char *gcam_tool_error(const gcam_tool *t);
void gcam_tool_free(gcam_tool *t);
/* The model (borrowed or owned). */
const gcam_model *gcam_tool_model(const gcam_tool *t);

typedef struct gcam_tool_request {
    const char *path;            /* a picture (PNG, JPEG) or a .npy tensor file; or NULL and: */
    const void *data;            /* a picture's bytes in memory (PNG or JPEG) */
    size_t size;
    const char *name;            /* stem of the output file names, as is (no '/', not "." or "..",
                                    at most 200 bytes: GCAM_E_ARG otherwise); NULL: the file name's
                                    stem made file-name safe as the command does, or "input" */
    const char *out_dir;         /* write the files here as the command does (created if missing);
                                    NULL: nothing touches the file system, files come back in
                                    result.files */
    int inline_png;              /* memory mode: each PNG also inline in the record, key "png",
                                    base64 */
    const char *url_prefix;      /* memory mode: each file also named in the record as
                                    "url": url_prefix + file name (NULL: no "url") */
    /* Options of this request, over the tool's: the ones about what is explained and how it is
     * drawn (-m, -k, --class, --layer, --target, --output, --probability, --colormap, --alpha,
     * --npy, --box, --detections, --score-threshold, ...). Preprocessing, labels and --task are
     * the tool's. */
    int argc;
    const char *const *argv;
} gcam_tool_request;

typedef struct gcam_tool_file {
    char *name;                  /* the file name the command would write (no folder) */
    unsigned char *data;
    size_t size;
} gcam_tool_file;

typedef struct gcam_tool_result {
    char *record;                /* the input's record in results.json (JSON object, UTF-8) */
    int failed;                  /* the input could not be explained: record has "error" */
    int exit_code;               /* the command's: 0, or 3 for a bad input */
    gcam_tool_file *files;       /* memory mode: every file the command would write for the input */
    int n_files;
} gcam_tool_result;

/* Explains one input. GCAM_OK with result->failed 0 or 1 (see above); other statuses for a bad
 * request (GCAM_E_ARG: options, neither or both of path and data), a stopped run (out of memory,
 * an output folder that cannot be written) — result is then zeroed. Always free the result. */
gcam_status gcam_tool_explain(gcam_tool *t, const gcam_tool_request *rq, gcam_tool_result *result);
/* The abort check (gradcam.h, gcam_ctx_set_abort) of the explainers behind later gcam_tool_explain
 * calls: an input it stops is a failed input (result->failed, its reason in the record); the tool
 * stays usable. fn NULL removes it. (gradcam serve: the per-request deadline.) */
gcam_status gcam_tool_set_abort(gcam_tool *t, gcam_abort_fn fn, void *user);
void gcam_tool_result_free(gcam_tool_result *r);

/* The inputs `gradcam explain` would take for these arguments, in its order (files as given;
 * folders walked for .png, .jpg and .jpeg files, sorted, hidden entries and out_dir (may be NULL)
 * left out), and the stem it names each one's files with (unique: "-2", "-3"... added). Arrays of
 * *n malloc'd strings (free with gcam_tool_inputs_free). A path that does not exist is listed: it
 * fails when explained. */
gcam_status gcam_tool_inputs(const char *const *args, int n_args, const char *out_dir, char ***paths, char ***stems,
                             int *n);
void gcam_tool_inputs_free(char **paths, char **stems, int n);

/* The "model" and "options" objects of results.json as one JSON object {"model": ..., "options":
 * ...}, known after the first explained input (before it: the model's input and output only).
 * Owned by the tool, valid until the next call on it. */
const char *gcam_tool_describe(gcam_tool *t);

/* ---- the picture side, as the command does it ------------------------------------------------ */

/* Decodes a picture (PNG or JPEG; path, or bytes with data/size) to 8-bit RGB as the command does
 * (alpha over white, EXIF orientation applied): (h, w, 3) row-major, malloc'd (free with
 * gcam_tool_buffer_free). On failure err (err_size bytes, may be NULL) says why. */
gcam_status gcam_tool_decode(const char *path, const void *data, size_t size, uint8_t **rgb, int64_t *h, int64_t *w,
                             char *err, size_t err_size);
/* The model input the tool's preprocessing makes from an RGB picture (h, w, 3): *x malloc'd with
 * *ndim dims (the model's layout, batch 1). */
gcam_status gcam_tool_preprocess(gcam_tool *t, const uint8_t *rgb, int64_t h, int64_t w, float **x, int64_t *dims,
                                 int *ndim);
/* A map (h, w) in [0, 1] coloured with a colour map ("jet", "viridis", "inferno", "gray") and, when
 * rgb is given (same h, w), blended over it with opacity alpha: (h, w, 3) into out. */
gcam_status gcam_tool_colorize(const float *map, int64_t h, int64_t w, const char *colormap, const uint8_t *rgb,
                               float alpha, uint8_t *out);
/* PNG bytes (RGB) of an 8-bit picture (h, w, channels): 3 for RGB, 1 for grey; malloc'd. */
gcam_status gcam_tool_png(const uint8_t *px, int64_t h, int64_t w, int channels, unsigned char **png, size_t *size);
void gcam_tool_buffer_free(void *p);

#ifdef __cplusplus
}
#endif
#endif

/* Pieces shared by the gradcam command's subcommands: exit codes and error lines, loading a model,
 * number parsing, the progress bar, label files, the model input's layout and the preprocessing
 * options (one copy, so that explain and eval turn an image into the same tensor), and the
 * subcommands' entry points that main.c dispatches to. */
#ifndef GC_CLI_COMMON_H
#define GC_CLI_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcam.h"
#include "image/image.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2, CLI_BAD_INPUT = 3 };

extern const char *g_prog;

int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* While buf is set (tool.c, per thread), cli_fail / cli_usage_error keep their first message in buf
 * (n bytes) instead of printing, and progress lines are not printed; NULL: print again. */
void cli_capture(char *buf, size_t n);
int cli_capturing(void);
int cli_status_exit(gcam_status s);
/* Loads with the message printed on failure; max_memory caps constants folded at load (0: default). */
gcam_status cli_load_model(gcam_model **m, const char *path, int allow_unsupported, size_t max_memory);
/* "1x3x224x224" -> dims; 0 on success. */
int cli_parse_dims(const char *s, int64_t *dims, int *ndim);

int cmd_info(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Numbers: 0 on success, -1 when s is not entirely a number of that kind. */
int cli_parse_i64(const char *s, int64_t *v);
int cli_parse_dbl(const char *s, double *v);       /* finite */
int cli_parse_float(const char *s, float *v);      /* finite and within float range */
int cli_parse_float3(const char *s, float v[3]);   /* "a,b,c", or "a" for all three */
int cli_parse_bytes(const char *s, size_t *out);   /* "512M", "2G", "1.5GiB", "1000000" */
double cli_now_s(void);                            /* monotonic seconds */
/* The methods' names (src/explain/method_table.c) in help text: lines of at most `width`
 * characters indented by `indent` spaces, `suffix` after the last name. */
void cli_print_method_names(int indent, int width, const char *suffix);
/* "--name=value": name into buf, returns value; otherwise the whole argument into buf, returns NULL. */
const char *cli_split_option(const char *arg, char *buf, size_t cap);
int cli_mkdir_p(const char *dir);                  /* 0, or an errno value */

/* A progress bar on stderr: only on a terminal, only for more than one item, never with quiet. */
typedef struct cli_progress {
    int tty, quiet, total, done, failed, shown;
    double t0;
} cli_progress;
void cli_progress_bar(cli_progress *p, const char *current);
void cli_progress_clear(cli_progress *p);

/* A label file: one name per line (CRLF, a UTF-8 BOM and trailing empty lines tolerated, at most
 * 64 MiB). *labels points into *owned; free both. Returns 0 or a CLI exit code (message printed). */
int cli_labels_load(const char *path, const char ***labels, int64_t *n, char **owned);

/* The preprocessing options (--preprocess, --size, --resize-mode, --mean, --std, --scale, --bgr,
 * --nhwc), parsed the same way by every command. */
typedef struct cli_pre_opts {
    int preprocess;              /* -1 auto, 0 imagenet, 1 raw */
    int64_t size_w, size_h;      /* 0: unset */
    int resize_mode;             /* -1: unset, else gc_resize_mode */
    float mean[3], std[3], scale;
    int have_mean, have_std, have_scale, bgr, nhwc;
} cli_pre_opts;
void cli_pre_defaults(cli_pre_opts *p);
/* Applies one preprocessing option (val NULL for a flag): 0, or CLI_USAGE with the message printed.
 * The options and their help are the rows cli_pre_rows (cli_opts.c). */
int cli_pre_option(cli_pre_opts *p, const char *name, const char *val);

/* The image input's layout, from its declared shape; -1 for a dynamic extent. */
typedef struct cli_input_geom {
    int nhwc;                    /* (N, H, W, C): forced by --nhwc or clear from the shape */
    int64_t c, h, w;
    int batch_dynamic;
} cli_input_geom;
void cli_input_geom_of(cli_input_geom *g, const gcam_tensor_info *t, int force_nhwc);
/* Whether ImageNet preprocessing applies: asked for, or by default for a 3x224x224 input. */
int cli_default_imagenet(const cli_pre_opts *p, const cli_input_geom *g);
/* The preprocessing of one image (its size matters for models with dynamic height/width). */
void cli_make_preprocess(gc_preprocess *out, const cli_pre_opts *p, const cli_input_geom *g, const gc_image *img);

/* Detection boxes, corners (x0, y0, x1, y1) as double[4], shared by explain and eval: in (model-input
 * pixels) mapped to the picture through g (NULL: as is), clipped to [0, W] x [0, H]. */
void cli_box_to_picture(const gc_geometry *g, double W, double H, const double in[4], double out[4]);
/* Intersection over union; 0 when the union is empty. */
double cli_box_iou(const double a[4], const double b[4]);

#endif

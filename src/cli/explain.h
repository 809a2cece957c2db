/* The explain command's state, shared by its two halves: cmd_explain.c (options, the model, the
 * phases of one input: load, explainer, forward, what to explain, the maps) and explain_output.c
 * (everything written: PNG, npy, results.json, report.html, and the files of a failed input
 * removed). Private to src/cli/. */
#ifndef GRADCAM_CLI_EXPLAIN_H
#define GRADCAM_CLI_EXPLAIN_H

#include "gradcam_tool.h"

#include "cli_common.h"
#include "cli_opts.h"
#include "explain_inputs.h"
#include "image/image.h"
#include "report/report.h"

#define EX_MAX_LIST 64

typedef struct ex_target_spec {
    gcam_target_kind kind;
    const char *cls_text;        /* CLASS, REGION: index or label */
    int64_t y0, x0, y1, x1;      /* REGION */
    int64_t index[GCAM_MAX_DIMS];
    int n_index;                 /* ELEMENT */
} ex_target_spec;

#define EX_MAX_DETECTIONS 64 /* explained per input (an item each) */
#define EX_MAX_BATCH 256     /* --batch */
#define EX_AUTO_BATCH 8      /* --batch auto: resnet50 ~10%, vgg16 ~45% less time per input than one by one */

typedef struct ex_opts {
    cli_base_opts base;          /* --preprocess ..., -o, --labels, -q, --threads, ... (first: cli_base_rows) */
    const char *model;
    char **inputs;
    int n_inputs;
    gcam_method methods[GCAM_METHOD_COUNT];
    int n_methods, methods_all;
    const char *classes[EX_MAX_LIST];
    int n_classes;
    int top_k;
    const char *layers[EX_MAX_LIST];
    int n_layers;
    const char *output;
    ex_target_spec targets[EX_MAX_LIST];
    int n_targets;
    int cmap;
    float alpha;
    int npy, probability;
    int batch;                   /* --batch N (auto: EX_AUTO_BATCH), 0: not given (one by one) */
    int64_t det_classes[EX_MAX_LIST]; /* --class, resolved (detect) */
    int have_box;
    float box[4];                /* --box x0,y0,x1,y1 in picture pixels */
    const char *mask_path;       /* --mask FILE.png (segment): the picture's pixels, nonzero = in */
    const char *caption;         /* --caption TEXT (caption: explain this one, not the greedy one) */
    const char *question;        /* --question TEXT (vqa) */
    const char *vocab_path;      /* --vocab FILE */
    int max_words;               /* --max-words (greedy captions; default 16) */
    int report_mode;             /* --report: EX_REPORT_AUTO, _EMBED or _LINK */
    const char *feed_names[32], *feed_paths[32];
    int n_feeds;
    char *owned[4 * EX_MAX_LIST + 64]; /* copies the pointers above point into */
    int n_owned;
} ex_opts;

enum { PROB_SOFTMAX, PROB_SIGMOID, PROB_IDENTITY, PROB_EXP };

/* --report: report.html's pictures inline or linked; auto embeds runs of at most
 * EX_REPORT_EMBED_MAX inputs (a few MB of PNGs: ~300 KB an input at top-2, 3 methods). */
enum { EX_REPORT_AUTO, EX_REPORT_EMBED, EX_REPORT_LINK };
#define EX_REPORT_EMBED_MAX 20

typedef struct ex_feed {
    const char *name;
    gc_tensor t;
    int64_t dims[GCAM_MAX_DIMS];
} ex_feed;

typedef struct ex_run {
    ex_opts *o;
    gcam_model *m;
    gcam_tensor_info in0;
    cli_input_geom g;            /* the image input's layout and extents (-1: dynamic) */
    ex_feed feeds[32];
    int n_feeds;
    /* the explainer, for the input shape it was planned for */
    gcam_explainer *e;
    gcam_abort_fn abort_fn;      /* given to the explainer (gcam_explainer_set_abort): the tool's */
    void *abort_user;
    int64_t e_dims[GCAM_MAX_DIMS];
    int e_ndim;
    int first_done;              /* model-level facts below are known */
    char *score_name, *layer_names;
    int prob_mode;
    int64_t K;                   /* classes (axis 1 of the score) */
    int score_ndim;
    int64_t score_dims[GCAM_MAX_DIMS];
    const char **labels;
    int64_t n_labels;
    char *labels_owned;
    int64_t classes[EX_MAX_LIST];
    int64_t target_cls[EX_MAX_LIST];
    char warned[GCAM_METHOD_COUNT];
    /* outputs */
    gc_buf inputs_json;
    gc_json ij;
    FILE *inputs_spill;          /* inputs_json moved out as the run goes (unlinked; ex_spill_inputs) */
    int spill_errno;             /* a write to it failed */
    gc_report report;
    int report_open;
    int report_link;             /* report.html links the PNG files (gc_report_mode LINK) */
    char **failures;             /* "path: reason" */
    char **failure_paths;
    int n_failures;
    int n_ok, n_maps;
    ex_inputs *list;
    int batch;                   /* inputs per forward (explain_batch.c), 1: one by one */
    cli_progress prog;
    char **written;              /* files written for the current input: removed if it fails */
    int n_written, cap_written;
    /* --task caption / vqa (explain_text.c) */
    char **vocab;                /* (n_vocab) tokens, id = line */
    int64_t n_vocab;
    char *vocab_buf;
    int64_t *vocab_slot;         /* (vocab_mask + 1) open-addressing table: id + 1, 0 empty */
    uint64_t vocab_mask;
    int64_t tok_bos, tok_eos, tok_unk; /* ids, or -1 */
    const char *text_name;       /* the model's integer input the text is fed to */
    int64_t e_text_len;          /* the explainer was planned for this many tokens */
    /* the command as a library (tool.c, gradcam_tool.h) */
    int m_borrowed;              /* m is the caller's: not freed */
    gcam_status load_status;     /* the model's load (ex_prepare_model) */
    int no_report;               /* no report.html (and no progress) */
    gc_buf *record_out;          /* each input's results.json record is also copied here */
    int mem;                     /* files kept in mem_files instead of written */
    int mem_inline;              /* ... each PNG also base64 in the record ("png") */
    const char *mem_url;         /* ... each file also named by URL in the record ("url"), or NULL */
    gcam_tool_file *mem_files;
    int n_mem_files, cap_mem_files;
} ex_run;

typedef struct ex_item {
    gcam_target t;
    int64_t cls;                 /* the class (labels, scores), or -1 */
    int det;                     /* --task detect: the detection (s->dets), else -1 */
    int text;                    /* --task caption / vqa: a word, the whole caption or an answer */
    int word;                    /* caption: the word (1..n), 0: the whole caption */
    int seg;                     /* --task segment: the segment (s->seg_*), else -1 */
    char tag[96];                /* file-name tag: c281, r3-0-0-8-8, e0-5 */
    char title[400];
} ex_item;

typedef struct ex_panel {
    int order;                   /* position in the row (Figure 1 of the paper first) */
    char title[96];
    char caption[600];
    gc_image img;
    char file[1100];             /* the output file showing img (a linked report's picture), or "" */
    int64_t file_w, file_h;      /* its pixels */
    int box_caption, box_drawn;  /* a box said in the caption / drawn on img (gc_report_panel) */
    int64_t box[4];              /* x0, y0, x1, y1 inclusive, in the file's pixels */
} ex_panel;

typedef struct ex_panels {
    ex_panel *v;
    int n, cap;
} ex_panels;

/* Result codes of one input: 0 done, 1 the input failed (recorded, the batch goes on), other
 * values: stop the whole run with that exit status minus 100. */
enum { EX_DONE = 0, EX_FAILED = 1, EX_STOP = 100 };

/* One input's state while explain_input's phases run (freed by one_free). */
typedef struct ex_one {
    ex_input *in;
    gc_image orig, seen, thumb_seen;  /* the decoded picture, the model's view, its thumbnail */
    gc_image user_mask;               /* --mask, decoded */
    gc_geometry geom;                 /* the picture -> model input mapping (have_geom) */
    int have_geom;
    int nhwc;                         /* the model input (dims) is (N, H, W, C) */
    gc_tensor npy;                    /* a .npy input */
    float *x, *xbuf;                  /* the model input (npy.data or xbuf) */
    int64_t dims[GCAM_MAX_DIMS];
    int ndim;
    char note[256];                   /* how the input was made, for the report */
    gcam_feed feeds[34];              /* the input, the --feed tensors (32 at most), the text's ids */
    int nf;
    double *cscore, *cprob;           /* (K) class scores and probabilities */
    int64_t *order, n_top;            /* classes by score; how many are listed */
    gcam_detection *dets;             /* (n_dets) --task detect: what is explained, best first */
    int64_t n_dets;
    gcam_det_layout det_layout;
    int n_segs;                       /* --task segment: the classes explained, */
    int64_t seg_cls[EX_MAX_LIST], seg_pixels[EX_MAX_LIST]; /* their pixels predicted, */
    uint8_t *seg_masks;               /* (n_segs, seg_h, seg_w) and where */
    int64_t seg_h, seg_w;
    ex_item items[EX_MAX_LIST];       /* what is explained */
    int n_items;
    gcam_map map;                     /* the map being written */
    gcam_map *pre;                    /* (n_methods, n_items) maps computed together (explain_many_first) */
    uint8_t pre_have[GCAM_METHOD_COUNT + 1];
    gc_buf jb;                        /* the input's results.json record */
    gc_json j;
    ex_panels panels;                 /* the report row's pictures */
    int first_panel_of_item[EX_MAX_LIST + 1];
    int64_t *tokens;                  /* caption / vqa: the text fed, (1, n_tokens) ids */
    int64_t n_tokens, text_dims[2];
    int n_words;                      /* caption: tokens 1..n_words are words (0 is <bos>) */
    int generated;                    /* caption: by greedy decoding (else --caption) */
    double *word_logprob;             /* (n_words + 1) log p of each word at its step; [0]: their sum */
    float *caption_weights;           /* the whole caption's target: 1 at each word's (step, id) */
    char text_note[600];              /* the caption or question, for the report */
    int pend_file[8];                 /* memory mode: files of the record being written, listed */
    const char *pend_key[8];          /* with their keys in its "png" / "url" object (ex_flush_files) */
    int n_pend;
    char *warnings[GCAM_METHOD_COUNT];
    int n_warn, n_maps;
    char path[4096];
} ex_one;

static inline const char *ex_label_of(const ex_run *R, int64_t c) {
    if (c < 0 || c >= R->n_labels || !R->labels[c][0]) return NULL;
    return R->labels[c];
}

static inline int ex_default_imagenet(const ex_run *R) { return cli_default_imagenet(&R->o->base.pre, &R->g); }

/* A detection's box in the picture's pixels (the model input's for a tensor input), clipped. */
void ex_det_box(const ex_one *s, const gcam_detection *d, double b[4]);

/* cmd_explain.c, for tool.c: the options (tool: MODEL given apart, no INPUT, no --out), the model
 * and its checks, one input, the run's memory */
int ex_parse_options(int argc, char **argv, ex_opts *o, int tool);
int ex_prepare_model(ex_run *R);
int ex_explain_input(ex_run *R, ex_input *in, gc_err *err);
/* The phases of ex_explain_input, for batches (explain_batch.c): 1. load (s->in set; its problem
 * too), 2. the explainer for these feeds' shape (quiet: failures return EX_FAILED and print
 * nothing), 3. the predictions from the input's own view of the scores, 4. the items, 5-7. record,
 * maps (s->pre, when set, holds them), files, report; 2-7 alone; the input's state freed. */
int ex_one_load(ex_run *R, ex_one *s, gc_err *err);
int ex_plan(ex_run *R, const gcam_feed *feeds, int nf, const int64_t *dims, int ndim, int64_t text_len, int quiet,
            gc_err *err);
int ex_predict_view(ex_run *R, ex_one *s, const gcam_tensor_view *scores, gc_err *err);
void ex_one_items(ex_run *R, ex_one *s);
int ex_one_finish(ex_run *R, ex_one *s, gc_err *err);
int ex_one_explain(ex_run *R, ex_one *s, gc_err *err);
void ex_one_free(const ex_opts *o, ex_one *s);
/* A classified input's predictions, items and maps dropped (s as ex_one_load left it). */
void ex_one_unpredict(const ex_opts *o, ex_one *s);
/* An input's result taken (files kept or removed, a failure listed, progress); 0 or a stop's exit
 * code (*stopped set). */
int ex_conclude(ex_run *R, const ex_input *in, int r, gc_err *err, int *stopped);

/* explain_batch.c: inputs per forward for this run (1: one by one), and a window of w inputs
 * explained (loaded, one forward and one backward per map for those of the first one's shape, the
 * others alone), each concluded in order. 0 or a stop's exit code (*stopped set). */
int ex_batch_size(const ex_run *R, const ex_inputs *list);
int ex_explain_batch(ex_run *R, ex_input *ins, int w, gc_err *err, int *stopped);
/* s->feeds, s->nf: the input, the --feed tensors, the text's ids (caption / vqa) */
void ex_input_feeds(const ex_run *R, ex_one *s);
/* "path: why", unless why starts with the path already */
void ex_failure_line(char *out, size_t n, const char *path, const char *why);
/* s->in's picture (or s->orig, when set) as the model's input: s->xbuf, dims, ndim, seen, geom */
int ex_picture_input(ex_run *R, ex_one *s, gc_err *err);
void ex_run_free(ex_run *R);
void ex_opts_free(ex_opts *o);

/* explain_text.c: --task caption / vqa */
int ex_text_prepare(ex_run *R);                                  /* vocabulary, text input; exit code */
int ex_text_tokens(ex_run *R, ex_one *s, gc_err *err);           /* s->tokens (greedy for captions) */
int ex_caption_scores(ex_run *R, ex_one *s, const gcam_tensor_view *sv, gc_err *err);
void ex_text_items(ex_run *R, ex_one *s);
void ex_text_json_head(ex_run *R, ex_one *s);                    /* "caption": {..., "words": [ / "answers": [ */
void ex_text_item_begin(ex_run *R, ex_one *s, const ex_item *it);
void ex_text_item_end(ex_run *R, ex_one *s, const ex_item *it);
void ex_text_json_close(ex_run *R, ex_one *s);
void ex_text_free_run(ex_run *R);
void ex_text_free_one(ex_one *s);
static inline int ex_text_task(const ex_opts *o) {
    return o->base.task == CLI_TASK_CAPTION || o->base.task == CLI_TASK_VQA;
}

/* explain_output.c: the files of the current input */
int ex_one_oom(const ex_one *s, gc_err *err);
void ex_end_input_files(ex_run *R, int ok);
ex_panel *ex_panel_new(ex_panels *P, int order);
void ex_panels_free(ex_panels *P);
/* the input's results.json record up to its maps, and the model's view as a PNG */
int ex_input_json(ex_run *R, ex_one *s, gc_err *err);
/* one map's results.json record, its pictures (and .npy) and its report panel */
int ex_map_files(ex_run *R, ex_one *s, const ex_item *it, gcam_method meth, gc_err *err);
/* --task detect / segment: one detection's or segment's record around its maps */
void ex_det_begin(ex_run *R, ex_one *s, const ex_item *it);
void ex_seg_begin(ex_run *R, ex_one *s, const ex_item *it);
void ex_det_end(ex_one *s);
/* --task segment: the model's view with the segment's pixels tinted, as a report panel */
int ex_seg_panel(const ex_one *s, const ex_item *it, ex_panel *pn, gc_err *err);
/* the input's section of report.html */
int ex_report_input(ex_run *R, ex_one *s, gc_err *err);

/* explain_output.c: memory mode's files dropped (after a failed input, or once handed over) */
void ex_mem_files_free(ex_run *R);
/* the JSON text of results.json's head ({"model": ..., "options": ...}) into b */
void ex_describe(ex_run *R, gc_buf *b);

/* explain_output.c: the run's files */
int ex_open_report(ex_run *R, const ex_inputs *list, gc_err *err);
/* results.json's input records so far moved to a file, so memory stays flat on large runs */
void ex_spill_inputs(ex_run *R);
/* --report MODE (an option setter, cli_opts.h) */
int ex_report_opt(void *opts, const char *name, const char *val);
int ex_write_results(ex_run *R, const ex_inputs *list, gc_err *err);
int ex_summary(const ex_run *R, const ex_inputs *list, int exit_code, double t0);

#endif

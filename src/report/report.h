/* Reports of an explanation run: results.json and report.html, plus the small reusable pieces
 * they are made of (a JSON writer, HTML escaping, base64, files written through a temporary
 * name, the Grad-CAM paper's localisation box). Internal to gradcam; used by the CLI. */
#ifndef GC_REPORT_H
#define GC_REPORT_H

#include <stdio.h>

#include "../common.h"
#include "../image/image.h"

/* ---- growable text buffer ----------------------------------------------------------------------- */

typedef struct gc_buf {
    char *p;    /* NUL-terminated when non-NULL */
    size_t n, cap;
    int oom;    /* set once an append failed; later appends are ignored */
} gc_buf;

void gc_buf_put(gc_buf *b, const void *s, size_t n);
void gc_buf_puts(gc_buf *b, const char *s);
void gc_buf_printf(gc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gc_buf_clear(gc_buf *b); /* keeps the memory */
void gc_buf_free(gc_buf *b);

/* ---- text encodings ----------------------------------------------------------------------------- */

/* Decodes one UTF-8 sequence at s (n bytes left): the code point, or -1 for an invalid or
 * truncated sequence (overlong forms, surrogates and values above U+10FFFF are invalid); *len
 * receives the bytes consumed (1 for an invalid byte). */
int32_t gc_utf8_decode(const unsigned char *s, size_t n, int *len);
/* s as a JSON string literal with its quotes: ", \ and control characters escaped (\n, \t, ...,
 * \u00XX), each invalid UTF-8 byte replaced by U+FFFD. NULL gives null. */
void gc_json_escape(gc_buf *b, const char *s);
/* s as HTML text or attribute value: & < > " ' as entities, control characters other than tab
 * and newline dropped, invalid UTF-8 replaced by U+FFFD. */
void gc_html_escape(gc_buf *b, const char *s);
/* Standard base64 (RFC 4648, padded). */
void gc_base64(gc_buf *b, const void *data, size_t n);

/* ---- JSON writer ------------------------------------------------------------------------------- */

#define GC_JSON_MAX_DEPTH 32

/* Streams a JSON document into a buffer; commas, colons and indentation are handled here.
 * Misuse (a value where a key is due, too deep nesting) sets `bad` and is otherwise ignored, so
 * a caller checks once at the end. */
typedef struct gc_json {
    gc_buf *b;
    int indent;                       /* spaces per level; 0: compact */
    int base;                         /* levels of indentation added (for a part spliced in later) */
    int inline_from;                  /* depth of an array written on one line, or 0 */
    int depth;
    int count[GC_JSON_MAX_DEPTH];     /* items written in each open container */
    char kind[GC_JSON_MAX_DEPTH];     /* '{' or '[' */
    int want_value;                   /* a key was written, its value is due */
    int bad;
} gc_json;

void gc_json_init(gc_json *j, gc_buf *b, int indent);
void gc_json_begin_object(gc_json *j);
void gc_json_end_object(gc_json *j);
void gc_json_begin_array(gc_json *j);
/* An array written on one line ([1, 3, 224, 224]), with everything inside it. */
void gc_json_begin_array_inline(gc_json *j);
void gc_json_end_array(gc_json *j);
void gc_json_key(gc_json *j, const char *key);
void gc_json_string(gc_json *j, const char *s); /* NULL: null */
void gc_json_number(gc_json *j, double v);      /* NaN and +-Inf: null (JSON has no such numbers) */
void gc_json_number_f(gc_json *j, float v);     /* the shortest text that reads back as the same float */
void gc_json_int(gc_json *j, int64_t v);
void gc_json_bool(gc_json *j, int v);
void gc_json_null(gc_json *j);
/* A value already written as JSON (e.g. by another writer with `base` set to this depth). */
void gc_json_raw(gc_json *j, const char *json);

/* ---- files written through a temporary name ---------------------------------------------------- */

/* Writes go to "PATH.tmp-XXXXXX"; gc_afile_commit renames it over PATH, gc_afile_abort removes it:
 * a reader never sees a half-written file and a failure leaves nothing behind. */
typedef struct gc_afile {
    FILE *f;
    char *path, *tmp;
    int failed;
} gc_afile;

gcam_status gc_afile_open(gc_afile *a, const char *path, gc_err *err);
void gc_afile_write(gc_afile *a, const void *data, size_t n);
void gc_afile_write_buf(gc_afile *a, gc_buf *b); /* writes and clears b */
gcam_status gc_afile_commit(gc_afile *a, gc_err *err);
void gc_afile_abort(gc_afile *a);
/* A whole buffer to PATH through a temporary file. */
gcam_status gc_write_file_atomic(const char *path, const void *data, size_t n, gc_err *err);

/* ---- localisation (Grad-CAM paper, section 4.1) -------------------------------------------------- */

/* Thresholds map (h, w) at frac * its maximum (pixels >= the threshold are in) and boxes the
 * largest 8-connected region (ties: the one met first in row-major order). Returns 1 with *box
 * (x1, y1 exclusive) and *area (its pixels; area may be NULL) set, 0 when there is no region
 * (empty map, maximum <= 0 or not finite, NaN pixels are out; *box all zero), -1 when out of
 * memory. */
int gc_localize_box(const float *map, int64_t h, int64_t w, float frac, gc_box *box, int64_t *area);

/* ---- report.html ------------------------------------------------------------------------------- */

/* Downscales img so that its longer side is at most max_side (area averaging); a smaller image
 * is copied. */
gcam_status gc_image_thumbnail(gc_image *out, const gc_image *img, int64_t max_side, gc_err *err);

typedef struct gc_report_pred {
    int64_t index;
    const char *label;  /* may be NULL */
    double score, probability;
} gc_report_pred;

typedef struct gc_report_panel {
    const char *title;      /* "Grad-CAM" */
    const char *caption;    /* a second line (layer), or NULL */
    const gc_image *img;    /* embedded mode: the picture shown */
    /* linked mode: the picture's file beside report.html, and its size in pixels */
    const char *file;
    int64_t file_w, file_h;
    /* a localisation box, x0, y0, x1, y1 inclusive, in the file's pixels (box_caption: said after
     * the caption; box_drawn: drawn over the linked picture, embedded pictures have it drawn in) */
    int box_caption, box_drawn;
    int64_t box[4];
} gc_report_panel;

typedef struct gc_report_row {
    const char *title;      /* "class 281 · tabby" */
    int64_t cls;            /* the class explained, or -1 (a linked report names it once for the */
    const char *label;      /* row's title and files: "class CLS · LABEL...", "..._cCLS_...") */
    const gc_report_panel *panels;
    int n_panels;
} gc_report_row;

/* A detection listed in the input's table and drawn on its picture. */
typedef struct gc_report_det {
    int64_t index;          /* class */
    const char *label;      /* may be NULL */
    double score;
    double x0, y0, x1, y1;  /* in the picture's pixels, x1 and y1 exclusive */
} gc_report_det;

typedef struct gc_report_input {
    const char *path;
    const char *stem;       /* linked mode: the files' common prefix (file names are STEM + a suffix) */
    const char *note;       /* "224x224 model input from a 640x480 photo", or NULL */
    const gc_report_pred *preds;
    int n_preds;
    /* detection (dets_shown): a table of the detections and the picture with their boxes and
     * labels drawn over it (SVG); none is said in the page */
    int dets_shown;
    const gc_report_det *dets;
    int n_dets;
    const gc_image *picture; /* NULL: no picture (a tensor input) */
    const char *picture_file; /* linked mode: the picture's file, of any size, showing the */
    int64_t picture_w, picture_h; /* picture_w x picture_h pixels the boxes are given in */
    const char *dets_note;   /* the thresholds, said above the table */
    const gc_report_row *rows;
    int n_rows;
    const char *const *warnings;
    int n_warnings;
} gc_report_input;

/* How report.html shows the pictures. EMBED: every picture inline (a data: URI), the page stands
 * alone, no script; for small runs (its size grows by the PNGs' bytes). LINK: the pictures are the
 * PNG files beside the page, named relatively (the folder can be moved); the inputs are a compact
 * table in the page (a few hundred bytes each) that a script shows a page at a time. */
typedef enum { GC_REPORT_EMBED = 0, GC_REPORT_LINK = 1 } gc_report_mode;

/* Strings a linked report writes once and then refers to by number (labels, titles, file-name
 * suffixes): at most GC_REPORT_MAX_STRINGS are remembered, so memory stays bounded; past that,
 * new strings are written again each time they are met. */
#define GC_REPORT_MAX_STRINGS 4096

typedef struct gc_report_strings {
    char **s;               /* (cap) the strings by slot, NULL: free slot */
    int32_t *id;            /* (cap) their numbers, in the order written */
    int cap, n;             /* slots, strings kept */
    int32_t next;           /* the next string's number (past the cap, strings are numbered, not kept) */
} gc_report_strings;

/* Streams report.html: one section (embedded) or one record (linked) per input as it is
 * explained, so memory stays bounded on large batches; the page appears under its name only at
 * gc_report_finish. */
typedef struct gc_report {
    gc_afile file;
    gc_buf buf;
    gc_buf tmp, tpl;        /* scratch (escaping, a panel's template) */
    gc_buf strs;            /* linked mode: the strings new in the batch of records in buf */
    int batch;              /* records in buf */
    int mode;               /* gc_report_mode */
    int n_inputs;
    int64_t panel_px;       /* displayed panel width in CSS pixels */
    gc_report_strings strings; /* linked mode */
} gc_report;

/* summary: key/value lines shown under the title (model, methods...), n_summary pairs. */
gcam_status gc_report_begin(gc_report *r, const char *path, gc_report_mode mode, const char *title,
                            const char *const *summary_keys, const char *const *summary_values, int n_summary,
                            gc_err *err);
gcam_status gc_report_add(gc_report *r, const gc_report_input *in, gc_err *err);
/* failures: "path: reason" lines listed at the end. */
gcam_status gc_report_finish(gc_report *r, const char *const *failures, int n_failures, gc_err *err);
void gc_report_abort(gc_report *r);

/* The page's head up to and including <body>, the title and the summary (html.c, both modes). */
void gc_report_put_head(gc_report *r, const char *title, const char *extra_css, const char *const *keys,
                        const char *const *values, int n_summary);
/* The failures' list and the footer (html.c, both modes). */
void gc_report_put_tail(gc_report *r, const char *const *failures, int n_failures);
/* Linked mode (html_link.c): the start of the data table, an input's record, the table's end and
 * the script that shows it. */
void gc_report_link_begin(gc_report *r, const char *title, const char *const *keys, const char *const *values,
                          int n_summary);
gcam_status gc_report_link_add(gc_report *r, const gc_report_input *in, gc_err *err);
void gc_report_link_end(gc_report *r);
void gc_report_link_script(gc_report *r);
void gc_report_link_free(gc_report *r);

#endif

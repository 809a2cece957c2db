/* The subcommands' options as tables: one row per option (its spellings, argument, help text and
 * the function that stores its value), plus rows for the help's section titles and free text. The
 * same table parses the command line (cli_parse_options) and prints the help (cli_print_options),
 * so the two cannot drift apart. explain and eval share rows (the preprocessing options:
 * cli_pre_rows) and setters (methods, threads, ...). */
#ifndef GC_CLI_OPTS_H
#define GC_CLI_OPTS_H

#include "cli_common.h"

typedef enum cli_row_kind {
    CLI_END = 0,     /* the table's last row */
    CLI_OPTION,      /* an option */
    CLI_SECTION,     /* a section title in the help ("Output:"), a blank line before all but the first */
    CLI_TEXT,        /* lines of help text after a section's options */
    CLI_INCLUDE      /* the rows of another table (its options parse and print here) */
} cli_row_kind;

typedef struct cli_row cli_row;
/* Stores the option's value (NULL for a flag) into the command's options; name is the spelling
 * used. 0, or an exit code after the one line of cli_usage_error / cli_fail. */
typedef int (*cli_setter)(void *opts, const char *name, const char *val);

struct cli_row {
    cli_row_kind kind;
    const char *names;    /* "-m|--method" (OPTION) */
    const char *arg;      /* the value's name in the help ("LIST"); NULL: a flag */
    const char *need;     /* the value in "NAME needs ..." ("a method list") */
    cli_setter set;
    const char *help;     /* help lines, '\n' between them (OPTION, SECTION title, TEXT) */
    void (*more)(void);   /* OPTION: prints more help lines after its own (the method names) */
    const cli_row *rows;  /* INCLUDE */
};

#define CLI_OPT(names_, arg_, need_, set_, help_) {CLI_OPTION, names_, arg_, need_, set_, help_, NULL, NULL}
#define CLI_FLAG(names_, set_, help_) {CLI_OPTION, names_, NULL, NULL, set_, help_, NULL, NULL}
#define CLI_SECTION_ROW(title_) {CLI_SECTION, NULL, NULL, NULL, NULL, title_, NULL, NULL}
#define CLI_TEXT_ROW(text_) {CLI_TEXT, NULL, NULL, NULL, NULL, text_, NULL, NULL}
#define CLI_INCLUDE_ROW(rows_) {CLI_INCLUDE, NULL, NULL, NULL, NULL, NULL, NULL, rows_}
#define CLI_END_ROW {CLI_END, NULL, NULL, NULL, NULL, NULL, NULL, NULL}

/* Parses argv[1..]: options through their rows' setters (--name=value for valued long options),
 * -h/--help through help(), every other argument (all after "--") through positional(opts, arg).
 * cmd names the command in "unknown option" lines. 0, -1 after the help was printed, or an exit
 * code. */
int cli_parse_options(int argc, char **argv, const cli_row *table, void *opts, int (*positional)(void *opts, char *arg),
                      void (*help)(void), const char *cmd);
/* The table's sections, options and text, as the help shows them. */
void cli_print_options(const cli_row *table);

enum { CLI_TASK_CLASSIFY = 0, CLI_TASK_DETECT = 1, CLI_TASK_SEGMENT = 2, CLI_TASK_CAPTION = 3, CLI_TASK_VQA = 4 };
#define CLI_MAX_DETECTIONS 1000 /* --max-detections */

/* What explain and eval both take: a command's options struct begins with one, and the shared
 * setters below store into it. */
typedef struct cli_base_opts {
    cli_pre_opts pre;            /* --preprocess, --size, --mean, ... (cli_pre_rows) */
    const char *out;             /* -o */
    const char *labels_path;     /* --labels */
    int quiet;                   /* -q */
    int threads;                 /* --threads, 0: the default */
    size_t max_memory;           /* --max-memory, 0: the default */
    uint64_t seed;               /* --seed */
    int task;                    /* --task: CLI_TASK_* */
    gcam_detect_options det;     /* --detections, --score-threshold, --iou-threshold, --max-detections */
    const char *det_given;       /* the first of those given, for "needs --task detect" */
    int64_t tokens_h, tokens_w;  /* --tokens-grid HxW (0: from the input) */
    int skip_tokens;             /* --skip-tokens N (0: found) */
} cli_base_opts;

/* The preprocessing options' rows. */
extern const cli_row cli_pre_rows[];
/* The transformer options' rows (--tokens-grid, --skip-tokens): how token layers are read as maps. */
extern const cli_row cli_token_rows[];
/* The detection options' rows (--detections, --score-threshold, --iou-threshold, --max-detections). */
extern const cli_row cli_det_rows[];
/* Their defaults (0.25, 0.45, 32 detections, layout auto). */
void cli_det_defaults(cli_base_opts *b);
/* After parsing: a detection option without --task detect is a usage error; with it, images are
 * letterboxed and scaled to RGB / 255 (YOLO's input) unless --resize-mode / --preprocess say
 * otherwise. 0 or an exit code. */
int cli_det_finish(cli_base_opts *b);

/* Setters into the cli_base_opts the options struct begins with. */
int cli_set_out(void *opts, const char *name, const char *val);
int cli_set_labels(void *opts, const char *name, const char *val);
int cli_set_quiet(void *opts, const char *name, const char *val);
int cli_set_threads_opt(void *opts, const char *name, const char *val);  /* 1..1024 */
int cli_set_max_memory(void *opts, const char *name, const char *val);
int cli_set_seed_opt(void *opts, const char *name, const char *val);
int cli_set_task(void *opts, const char *name, const char *val); /* classify | detect | segment */
/* A method list into methods[] (n of them; *all when 'all' is given), with `see` in the
 * unknown-method line. 0 or an exit code. */
int cli_set_methods(const char *name, const char *val, gcam_method *methods, int *n, int *all, const char *see);

#endif

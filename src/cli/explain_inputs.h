/* gradcam explain: the list of inputs (files and folders walked), their output name stems, and the
 * guard that keeps outputs from overwriting inputs. */
#ifndef GC_EXPLAIN_INPUTS_H
#define GC_EXPLAIN_INPUTS_H

#include <sys/types.h>

typedef struct ex_input {
    char *path;     /* as given, or found in a folder */
    char *stem;     /* unique, file-name-safe prefix of this input's outputs */
    char *problem;  /* set when the path cannot be used at all (missing, unreadable folder) */
    int is_npy;
    const void *data; /* the file's bytes in memory (the tool), or NULL: read path */
    size_t size;
    int have_id;    /* dev/ino known (a regular file) */
    dev_t dev;
    ino_t ino;
} ex_input;

typedef struct ex_inputs {
    ex_input *v;
    int n, cap;
} ex_inputs;

/* Adds each argument: a file as is, a folder walked recursively (only .png/.jpg/.jpeg and .npy
 * files, pictures and tensors in one list sorted by path (strcmp order), hidden entries and the
 * folder skip_dir (the output folder, if it exists) left out). A path that does not exist becomes an input with `problem` set. -1 when out of memory. */
int ex_inputs_collect(ex_inputs *l, char *const *args, int n_args, const char *skip_dir);
/* Adds an input held in memory (the tool): name stands for its path in messages and records. */
int ex_inputs_add_memory(ex_inputs *l, const char *name, const void *data, size_t size, int is_npy);
/* Gives every input a stem: its file name without extension, made file-name safe, with "-2",
 * "-3"... added where two inputs would share one. */
int ex_inputs_assign_stems(ex_inputs *l);
/* Index of an input lying in out_dir whose name an output could take (results.json, report.html,
 * or STEM_..._METHOD... names of the patterns written), or -1. */
int ex_inputs_find_clobber(const ex_inputs *l, const char *out_dir);
/* 1 if path exists and is one of the input files (same device and inode). */
int ex_inputs_contains_file(const ex_inputs *l, const char *path);
void ex_inputs_free(ex_inputs *l);

/* The file-name form of a method name ("gradcam++" -> "gradcampp"). */
void ex_method_file_name(char *out, size_t n, const char *method);

#endif

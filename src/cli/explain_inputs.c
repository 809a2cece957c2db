/* gradcam explain: collecting inputs, naming their outputs, and never overwriting an input. */
#include <dirent.h>
#include <errno.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli_common.h"
#include "explain_inputs.h"

static char *dupstr(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static char *join_path(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *p = malloc(a + (size_t)slash + b + 1);
    if (!p) return NULL;
    memcpy(p, dir, a);
    if (slash) p[a] = '/';
    memcpy(p + a + (size_t)slash, name, b + 1);
    return p;
}

static int ends_with_ci(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

/* What a folder walk takes: pictures and .npy tensors alike (one sorted list, a mixed folder too). */
static int is_input_name(const char *name) {
    return ends_with_ci(name, ".png") || ends_with_ci(name, ".jpg") || ends_with_ci(name, ".jpeg") ||
           ends_with_ci(name, ".npy");
}

/* A new entry for path (taken), or NULL (path NULL, or no memory: freed). */
static ex_input *push_entry(ex_inputs *l, char *path) {
    if (!path) return NULL;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        ex_input *v = realloc(l->v, sizeof *v * (size_t)cap);
        if (!v) {
            free(path);
            return NULL;
        }
        l->v = v;
        l->cap = cap;
    }
    ex_input *in = &l->v[l->n++];
    memset(in, 0, sizeof *in);
    in->path = path;
    in->is_npy = ends_with_ci(path, ".npy");
    return in;
}

/* A file (or a problem) into the list, its identity read for ex_inputs_contains_file. */
static int push(ex_inputs *l, char *path, const char *problem) {
    ex_input *in = push_entry(l, path);
    if (!in) return -1;
    struct stat st;
    if (problem) {
        in->problem = dupstr(problem);
        if (!in->problem) return -1;
    } else if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        in->have_id = 1;
        in->dev = st.st_dev;
        in->ino = st.st_ino;
    }
    return 0;
}

int ex_inputs_add_memory(ex_inputs *l, const char *name, const void *data, size_t size, int is_npy) {
    /* a name, not a file: never looked up (a server's request names it) */
    ex_input *in = push_entry(l, dupstr(name));
    if (!in) return -1;
    in->is_npy = is_npy;
    in->data = data;
    in->size = size;
    return 0;
}

typedef struct str_list {
    char **v;
    int n, cap;
} str_list;

static int str_push(str_list *s, char *p) {
    if (!p) return -1;
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 64;
        char **v = realloc(s->v, sizeof *v * (size_t)cap);
        if (!v) {
            free(p);
            return -1;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = p;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Recursive walk; symbolic links to folders are not followed (no cycles), links to files are. */
static int walk(str_list *files, const char *dir, const struct stat *skip, int depth) {
    if (depth > 64) return 0;
    DIR *d = opendir(dir);
    if (!d) return 0; /* an unreadable sub-folder holds nothing we can explain */
    struct dirent *de;
    int rc = 0;
    while (!rc && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue; /* ".", "..", hidden files (e.g. macOS "._x.jpg") */
        char *p = join_path(dir, de->d_name);
        if (!p) {
            rc = -1;
            break;
        }
        struct stat st;
        if (lstat(p, &st) != 0) {
            free(p);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (!(skip && st.st_dev == skip->st_dev && st.st_ino == skip->st_ino)) rc = walk(files, p, skip, depth + 1);
            free(p);
        } else if (is_input_name(de->d_name) && (S_ISREG(st.st_mode) || (S_ISLNK(st.st_mode) && stat(p, &st) == 0 &&
                                                                           S_ISREG(st.st_mode)))) {
            rc = str_push(files, p);
        } else {
            free(p);
        }
    }
    closedir(d);
    return rc;
}

int ex_inputs_collect(ex_inputs *l, char *const *args, int n_args, const char *skip_dir) {
    struct stat skip_st;
    int have_skip = skip_dir && stat(skip_dir, &skip_st) == 0 && S_ISDIR(skip_st.st_mode);
    for (int i = 0; i < n_args; i++) {
        struct stat st;
        if (stat(args[i], &st) != 0) {
            char msg[300];
            snprintf(msg, sizeof msg, "%s", errno == ENOENT ? "no such file or folder" : strerror(errno));
            if (push(l, dupstr(args[i]), msg)) return -1;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (push(l, dupstr(args[i]), NULL)) return -1;
            continue;
        }
        str_list files = {0};
        int rc = walk(&files, args[i], have_skip ? &skip_st : NULL, 0);
        if (!rc) qsort(files.v, (size_t)files.n, sizeof *files.v, cmp_str);
        for (int f = 0; f < files.n; f++) {
            if (!rc) rc = push(l, files.v[f], NULL);
            else free(files.v[f]);
        }
        free(files.v);
        if (rc) return -1;
    }
    return 0;
}

static int stem_taken(const ex_inputs *l, int upto, const char *stem) {
    for (int i = 0; i < upto; i++)
        if (strcmp(l->v[i].stem, stem) == 0) return 1;
    return 0;
}

int ex_inputs_assign_stems(ex_inputs *l) {
    for (int i = 0; i < l->n; i++) {
        const char *path = l->v[i].path, *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        size_t len = strlen(base);
        const char *dot = strrchr(base, '.');
        if (dot && dot != base) len = (size_t)(dot - base);
        char stem[200];
        size_t j = 0;
        for (size_t k = 0; k < len && j + 5 < sizeof stem;) {
            unsigned char ch = (unsigned char)base[k];
            int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                     ch == '_' || ch == '.' || ch == '+';
            if (ok) {
                stem[j++] = (char)ch;
                k++;
                continue;
            }
            /* keep well-formed UTF-8 (names in any script); anything else becomes '_' */
            int n = 0;
            if (ch >= 0xC2 && ch <= 0xDF) n = 2;
            else if (ch >= 0xE0 && ch <= 0xEF) n = 3;
            else if (ch >= 0xF0 && ch <= 0xF4) n = 4;
            int good = n > 0 && k + (size_t)n <= len;
            for (int q = 1; good && q < n; q++) good = ((unsigned char)base[k + (size_t)q] & 0xC0) == 0x80;
            if (good && j + (size_t)n + 5 < sizeof stem) {
                memcpy(stem + j, base + k, (size_t)n);
                j += (size_t)n;
                k += (size_t)n;
            } else {
                stem[j++] = '_';
                k++;
            }
        }
        stem[j] = 0;
        char cand[220];
        /* never a hidden or empty name */
        snprintf(cand, sizeof cand, "%s%s", !j || stem[0] == '.' ? "input" : "", stem);
        snprintf(stem, sizeof stem, "%s", cand);
        for (int k = 2; stem_taken(l, i, cand); k++) snprintf(cand, sizeof cand, "%s-%d", stem, k);
        l->v[i].stem = dupstr(cand);
        if (!l->v[i].stem) return -1;
    }
    return 0;
}

void ex_method_file_name(char *out, size_t n, const char *method) {
    size_t j = 0;
    for (size_t i = 0; method[i] && j + 1 < n; i++) out[j++] = method[i] == '+' ? 'p' : method[i];
    out[j] = 0;
}

/* Could `name` be written for an input of stem `stem`? (the patterns of cmd_explain.c) */
static int is_output_name_of(const char *name, const char *stem) {
    size_t s = strlen(stem);
    if (strncmp(name, stem, s) != 0 || name[s] != '_') return 0;
    const char *rest = name + s + 1;
    if (strcmp(rest, "input.png") == 0) return 1;
    static const char *const kinds[] = {"_heatmap.png", "_overlay.png", "_photo.png", ".png", ".npy"};
    for (int m = 0; m < GCAM_METHOD_COUNT; m++) {
        char fm[64];
        ex_method_file_name(fm, sizeof fm, gcam_method_name((gcam_method)m));
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            char suffix[96];
            snprintf(suffix, sizeof suffix, "_%s%s", fm, kinds[k]);
            size_t n = strlen(rest), q = strlen(suffix);
            if (n > q && strcmp(rest + n - q, suffix) == 0) return 1;
        }
    }
    return 0;
}

int ex_inputs_find_clobber(const ex_inputs *l, const char *out_dir) {
    struct stat od;
    if (stat(out_dir, &od) != 0) return -1; /* not created yet: holds no input */
    for (int i = 0; i < l->n; i++) {
        const ex_input *in = &l->v[i];
        if (!in->have_id) continue;
        const char *slash = strrchr(in->path, '/');
        char *dir = slash ? malloc((size_t)(slash - in->path) + 2) : dupstr(".");
        if (!dir) continue;
        if (slash) {
            size_t n = (size_t)(slash - in->path);
            memcpy(dir, in->path, n ? n : 1); /* "/x.png" lies in "/" */
            dir[n ? n : 1] = 0;
        }
        struct stat ds;
        int same = stat(dir, &ds) == 0 && ds.st_dev == od.st_dev && ds.st_ino == od.st_ino;
        free(dir);
        if (!same) continue;
        const char *name = slash ? slash + 1 : in->path;
        if (strcmp(name, "results.json") == 0 || strcmp(name, "report.html") == 0) return i;
        for (int k = 0; k < l->n; k++)
            if (l->v[k].stem && is_output_name_of(name, l->v[k].stem)) return i;
    }
    return -1;
}

int ex_inputs_contains_file(const ex_inputs *l, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    for (int i = 0; i < l->n; i++)
        if (l->v[i].have_id && l->v[i].dev == st.st_dev && l->v[i].ino == st.st_ino) return 1;
    return 0;
}

void ex_inputs_free(ex_inputs *l) {
    for (int i = 0; i < l->n; i++) {
        free(l->v[i].path);
        free(l->v[i].stem);
        free(l->v[i].problem);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

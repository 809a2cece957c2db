/* ONNX backend conformance: every case of Debian's libonnx-testdata (node/, pytorch-converted/,
 * pytorch-operator/) whose ops are all supported must reproduce the stored outputs within
 * |diff| <= 1e-4 + 1e-4 * |ref|. The case list is read from the folders, never written by hand.
 * Usage: test_onnx_conformance [DATA_DIR] [-v] [-k SUBSTRING] */
#include <dirent.h>
#include <math.h>
#include <sys/stat.h>

#include "gradcam.h"
#include "onnx/onnx.h"

#define ATOL 1e-4
#define RTOL 1e-4

static int verbose = 0;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted list of entries of dir (names only); returns count. */
static int list_dir(const char *dir, char ***out) {
    DIR *d = opendir(dir);
    *out = NULL;
    if (!d) return -1;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            *out = realloc(*out, sizeof(char *) * (size_t)cap);
        }
        (*out)[n++] = gc_strdup(e->d_name);
    }
    closedir(d);
    qsort(*out, (size_t)n, sizeof(char *), cmp_str);
    return n;
}

static void free_list(char **l, int n) {
    for (int i = 0; i < n; i++) free(l[i]);
    free(l);
}

static int read_pb(const char *path, gc_tensor *t, gc_err *err) {
    uint8_t *buf;
    size_t size;
    if (gc_read_file(path, &buf, &size, (size_t)1 << 30, err)) return -1;
    gcam_status rc = gc_onnx_read_tensor_pb(t, buf, size, path, err);
    free(buf);
    return rc ? -1 : 0;
}

typedef enum { R_PASS, R_FAIL, R_UNSUPPORTED } result;

static char unsupported_ops[64][96];
static int unsupported_count[64], n_unsupported_ops = 0;

static void note_unsupported(const char *line) {
    char op[96];
    size_t l = strcspn(line, " (:");
    snprintf(op, sizeof op, "%.*s", (int)GC_MIN(l, 90), line);
    for (int i = 0; i < n_unsupported_ops; i++)
        if (strcmp(unsupported_ops[i], op) == 0) {
            unsupported_count[i]++;
            return;
        }
    if (n_unsupported_ops < 64) {
        snprintf(unsupported_ops[n_unsupported_ops], 96, "%s", op);
        unsupported_count[n_unsupported_ops++] = 1;
    }
}

static result run_case(const char *dir, char *why, size_t whylen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    gcam_load_options lo = {.allow_unsupported = 1};
    gcam_model *m = NULL;
    result res = R_PASS;
    gcam_status rc = gcam_model_load(&m, path, &lo);
    if (rc == GCAM_E_UNSUPPORTED) {
        snprintf(why, whylen, "%s", gcam_model_error(m));
        note_unsupported(strstr(gcam_model_error(m), ": ") ? strstr(gcam_model_error(m), ": ") + 2 : gcam_model_error(m));
        gcam_model_free(m);
        return R_UNSUPPORTED;
    }
    if (rc) {
        snprintf(why, whylen, "load: %s", gcam_model_error(m));
        gcam_model_free(m);
        return R_FAIL;
    }
    if (gcam_model_num_unsupported(m) > 0) {
        snprintf(why, whylen, "%s", gcam_model_unsupported(m, 0));
        for (int i = 0; i < gcam_model_num_unsupported(m); i++) note_unsupported(gcam_model_unsupported(m, i));
        gcam_model_free(m);
        return R_UNSUPPORTED;
    }
    char **sets;
    int nsets = list_dir(dir, &sets), ran = 0;
    for (int s = 0; s < nsets && res == R_PASS; s++) {
        if (strncmp(sets[s], "test_data_set_", 14) != 0) continue;
        ran++;
        int nin = gcam_model_num_inputs(m);
        gc_tensor ins[32], outs[32];
        gcam_feed feeds[32];
        int n_ok_in = 0, nout = gcam_model_num_outputs(m);
        memset(ins, 0, sizeof ins);
        memset(outs, 0, sizeof outs);
        gc_err err = {0};
        if (nin > 32 || nout > 32) {
            snprintf(why, whylen, "too many inputs/outputs");
            res = R_FAIL;
            break;
        }
        for (int i = 0; i < nin; i++) {
            snprintf(path, sizeof path, "%s/%s/input_%d.pb", dir, sets[s], i);
            struct stat st;
            if (stat(path, &st) != 0) break; /* optional inputs may be omitted */
            if (read_pb(path, &ins[i], &err)) {
                snprintf(why, whylen, "%s", err.msg);
                res = R_UNSUPPORTED;
                note_unsupported("test input type");
                break;
            }
            gcam_tensor_info info;
            gcam_model_input(m, i, &info);
            feeds[i] = (gcam_feed){.name = info.name, .dtype = ins[i].dtype, .ndim = ins[i].shape.ndim,
                                   .dims = ins[i].shape.d, .data = ins[i].data};
            n_ok_in++;
        }
        for (int j = 0; j < nout && res == R_PASS; j++) {
            snprintf(path, sizeof path, "%s/%s/output_%d.pb", dir, sets[s], j);
            if (read_pb(path, &outs[j], &err)) {
                snprintf(why, whylen, "%s", err.msg);
                res = R_UNSUPPORTED;
                note_unsupported("test output type");
            }
        }
        gcam_ctx *c = NULL;
        if (res == R_PASS) {
            rc = gcam_ctx_create(&c, m, feeds, n_ok_in, &(gcam_ctx_options){.const_int_inputs = 1});
            if (!rc) rc = gcam_ctx_run(c, feeds, n_ok_in);
            if (rc == GCAM_E_UNSUPPORTED) {
                snprintf(why, whylen, "%s", gcam_ctx_error(c));
                const char *p = strstr(gcam_ctx_error(c), "): ");
                char op[96] = "?";
                const char *q = strchr(gcam_ctx_error(c), '(');
                if (q) snprintf(op, sizeof op, "%.*s", (int)strcspn(q + 1, ")"), q + 1);
                (void)p;
                note_unsupported(op);
                res = R_UNSUPPORTED;
            } else if (rc) {
                snprintf(why, whylen, "%s", gcam_ctx_error(c));
                res = R_FAIL;
            }
        }
        for (int j = 0; j < nout && res == R_PASS; j++) {
            gcam_tensor_view v;
            if (gcam_ctx_output(c, j, &v)) {
                snprintf(why, whylen, "output %d unavailable", j);
                res = R_FAIL;
                break;
            }
            gc_tensor *e = &outs[j];
            int same_shape = v.ndim == e->shape.ndim;
            for (int d = 0; same_shape && d < v.ndim; d++) same_shape = v.dims[d] == e->shape.d[d];
            if (!same_shape || v.dtype != e->dtype) {
                char a[128], b[128];
                gc_shape vs = {.ndim = v.ndim};
                memcpy(vs.d, v.dims, sizeof v.dims);
                snprintf(why, whylen, "output %d: got %s %s, want %s %s", j, gcam_dtype_str(v.dtype),
                         gc_shape_str(&vs, a, sizeof a), gcam_dtype_str(e->dtype), gc_shape_str(&e->shape, b, sizeof b));
                res = R_FAIL;
                break;
            }
            for (size_t k = 0; k < v.numel && res == R_PASS; k++) {
                double got, want;
                if (v.dtype == GCAM_FLOAT32) {
                    got = ((const float *)v.data)[k];
                    want = ((const float *)e->data)[k];
                } else if (v.dtype == GCAM_INT64) {
                    got = (double)((const int64_t *)v.data)[k];
                    want = (double)((const int64_t *)e->data)[k];
                } else {
                    got = ((const uint8_t *)v.data)[k];
                    want = ((const uint8_t *)e->data)[k];
                }
                int ok = (isnan(want) && isnan(got)) || (isinf(want) && got == want) ||
                         fabs(got - want) <= ATOL + RTOL * fabs(want);
                if (!ok) {
                    snprintf(why, whylen, "%s output %d element %zu: got %.8g want %.8g", sets[s], j, k, got, want);
                    res = R_FAIL;
                }
            }
        }
        gcam_ctx_free(c);
        for (int i = 0; i < 32; i++) {
            free(ins[i].data);
            free(outs[i].data);
        }
    }
    free_list(sets, nsets);
    gcam_model_free(m);
    if (res == R_PASS && ran == 0) {
        snprintf(why, whylen, "no test_data_set");
        res = R_FAIL;
    }
    return res;
}

int main(int argc, char **argv) {
    const char *root = "/usr/share/libonnx-testdata/data";
    const char *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0) verbose = 1;
        else if (strcmp(argv[i], "-k") == 0 && i + 1 < argc) filter = argv[++i];
        else root = argv[i];
    }
    const char *suites[] = {"node", "pytorch-converted", "pytorch-operator"};
    int total = 0, passed = 0, failed = 0, unsup = 0;
    for (size_t s = 0; s < GC_ARRAY_LEN(suites); s++) {
        char dir[2048];
        snprintf(dir, sizeof dir, "%s/%s", root, suites[s]);
        char **cases;
        int n = list_dir(dir, &cases);
        if (n <= 0) {
            fprintf(stderr, "FAIL: no test cases in %s (is libonnx-testdata installed?)\n", dir);
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (filter && !strstr(cases[i], filter)) continue;
            char cdir[4096], why[1200] = "";
            snprintf(cdir, sizeof cdir, "%s/%s", dir, cases[i]);
            struct stat st;
            snprintf(why, sizeof why, "%s/model.onnx", cdir);
            if (stat(why, &st) != 0) continue;
            why[0] = 0;
            total++;
            result r = run_case(cdir, why, sizeof why);
            if (r == R_PASS) {
                passed++;
                if (verbose) printf("pass %s/%s\n", suites[s], cases[i]);
            } else if (r == R_FAIL) {
                failed++;
                printf("FAIL %s/%s: %s\n", suites[s], cases[i], why);
            } else {
                unsup++;
                if (verbose) printf("unsupported %s/%s: %s\n", suites[s], cases[i], why);
            }
        }
        free_list(cases, n);
    }
    printf("\nunsupported cases by reason:\n");
    for (int i = 0; i < n_unsupported_ops; i++) printf("  %-40s %d\n", unsupported_ops[i], unsupported_count[i]);
    printf("\nONNX backend cases: %d found, %d run, %d passed, %d failed, %d left out as unsupported\n", total,
           passed + failed, passed, failed, unsup);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0 || passed == 0;
}

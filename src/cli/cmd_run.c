/* gradcam run MODEL INPUT.npy: forward pass, outputs or named tensors as .npy. */
#include <errno.h>
#include <math.h>
#include <sys/stat.h>

#include "cli_common.h"
#include "image/npy.h"

static void print_run_help(void) {
    printf("Usage: gradcam run MODEL INPUT.npy [-o OUT] [--tensor NAME]... [--feed NAME=FILE.npy]...\n\n"
           "Runs MODEL forward on a float32 .npy input (with or without the batch axis) and writes the\n"
           "model's outputs, or the tensors named with --tensor, as .npy files.\n\n"
           "Options:\n"
           "  -o, --out OUT          one tensor: the .npy file to write; several: a folder that receives\n"
           "                         one NAME.npy per tensor; '-' (the default): a summary on stdout\n"
           "  -t, --tensor NAME      write this tensor (an output or any intermediate); repeatable\n"
           "  --feed NAME=FILE.npy   a further model input (e.g. token ids, int64); repeatable\n"
           "  --threads N            worker threads (default: one per CPU the process may use)\n"
           "  --max-memory BYTES     cap on the memory planned for the run and on constants\n"
           "                         computed at load; suffixes K, M, G (default 8G)\n\n"
           "Examples:\n"
           "  gradcam run resnet18.onnx cat.npy -o logits.npy\n"
           "  gradcam run resnet18.onnx cat.npy -t /layer4/layer4.1/relu_1/Relu_output_0 -t logits -o feats/\n"
           "  gradcam run captioner.onnx img.npy --feed tokens=ids.npy -\n");
}

/* File-system-safe version of a tensor name. */
static void safe_name(char *out, size_t n, const char *name) {
    size_t j = 0;
    for (size_t i = 0; name[i] && j + 1 < n; i++) {
        char ch = name[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                 ch == '_' || ch == '.';
        if (j == 0 && (ch == '/' || ch == '.')) continue;
        out[j++] = ok ? ch : '_';
    }
    out[j] = 0;
    if (!j) snprintf(out, n, "tensor");
}

static void summarize(const gcam_tensor_view *v) {
    char dims[256];
    size_t u = 0;
    dims[0] = 0;
    for (int d = 0; d < v->ndim; d++) u += (size_t)snprintf(dims + u, sizeof dims - u, "%s%lld", d ? ", " : "", (long long)v->dims[d]);
    printf("%s: %s (%s)", v->name, gcam_dtype_str(v->dtype), dims);
    if (v->dtype != GCAM_FLOAT32 || v->numel == 0) {
        printf("\n");
        return;
    }
    const float *x = v->data;
    double mn = INFINITY, mx = -INFINITY, sum = 0;
    size_t nonfinite = 0;
    for (size_t i = 0; i < v->numel; i++) {
        if (!isfinite(x[i])) { nonfinite++; continue; }
        mn = fmin(mn, x[i]);
        mx = fmax(mx, x[i]);
        sum += x[i];
    }
    printf(" min %.6g max %.6g mean %.6g", mn, mx, sum / (double)(v->numel - nonfinite ? v->numel - nonfinite : 1));
    if (nonfinite) printf(" NON-FINITE %zu", nonfinite);
    printf("\n");
    /* classifier-like output: top-5 per sample */
    if (v->ndim == 2 && v->dims[1] > 1) {
        for (int64_t b = 0; b < v->dims[0]; b++) {
            const float *row = x + b * v->dims[1];
            int top[5];
            int k = (int)(v->dims[1] < 5 ? v->dims[1] : 5);
            for (int t = 0; t < k; t++) {
                top[t] = -1;
                for (int64_t c = 0; c < v->dims[1]; c++) {
                    int used = 0;
                    for (int s = 0; s < t; s++) used |= top[s] == c;
                    if (!used && (top[t] < 0 || row[c] > row[top[t]])) top[t] = (int)c;
                }
            }
            printf("  sample %lld top-%d:", (long long)b, k);
            for (int t = 0; t < k; t++) printf(" %d (%.4g)", top[t], row[top[t]]);
            printf("\n");
        }
    }
}

/* "512M", "2G", "1.5GiB", "65536" -> bytes; -1 if not a positive size. */
static int parse_size(const char *s, size_t *out) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || errno || !(x >= 1)) return -1;
    if (*end) {
        char u = (char)(*end | 0x20);
        double mul = u == 'k' ? 1024.0 : u == 'm' ? 1048576.0 : u == 'g' ? 1073741824.0 : u == 't' ? 1099511627776.0 : 0;
        if (!mul) return -1;
        x *= mul;
        end++;
        if (*end == 'i' || *end == 'I') end++;
        if (*end == 'b' || *end == 'B') end++;
        if (*end) return -1;
    }
    if (x >= 1.8e19) return -1;
    *out = (size_t)x;
    return 0;
}

typedef struct feed_file {
    const char *name;
    const char *path;
    gc_tensor t;
} feed_file;

int cmd_run(int argc, char **argv) {
    const char *model = NULL, *input = NULL, *out = "-";
    const char *tensors[64];
    int n_tensors = 0, threads = 0;
    size_t max_memory = 0;
    feed_file feeds[32];
    int n_feeds = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_run_help();
            return 0;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) {
            if (++i >= argc) return cli_usage_error("%s needs a path", a);
            out = argv[i];
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--tensor") == 0) {
            if (++i >= argc) return cli_usage_error("%s needs a tensor name", a);
            if (n_tensors >= 64) return cli_usage_error("at most 64 --tensor options");
            tensors[n_tensors++] = argv[i];
        } else if (strcmp(a, "--feed") == 0) {
            if (++i >= argc) return cli_usage_error("--feed needs NAME=FILE.npy");
            char *eq = strchr(argv[i], '=');
            if (!eq || eq == argv[i] || !eq[1]) return cli_usage_error("--feed needs NAME=FILE.npy, got '%s'", argv[i]);
            if (n_feeds >= 31) return cli_usage_error("at most 31 --feed options");
            *eq = 0;
            feeds[1 + n_feeds++] = (feed_file){.name = argv[i], .path = eq + 1};
        } else if (strcmp(a, "--threads") == 0) {
            if (++i >= argc) return cli_usage_error("--threads needs a number");
            char *end;
            long v = strtol(argv[i], &end, 10);
            if (*end || v < 1 || v > 1024) return cli_usage_error("--threads: '%s' is not a number from 1 to 1024", argv[i]);
            threads = (int)v;
        } else if (strcmp(a, "--max-memory") == 0) {
            if (++i >= argc) return cli_usage_error("--max-memory needs a size in bytes");
            if (parse_size(argv[i], &max_memory))
                return cli_usage_error("--max-memory: '%s' is not a size (e.g. 512M, 2G)", argv[i]);
        } else if (strcmp(a, "-") == 0 && model && input) {
            out = "-";
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("run: unknown option '%s'", a);
        } else if (!model) {
            model = a;
        } else if (!input) {
            input = a;
        } else {
            return cli_usage_error("run: unexpected argument '%s'", a);
        }
    }
    if (!model || !input) return cli_usage_error("run: needs MODEL and INPUT.npy");

    int rc_exit = 0, nf = 0;
    gcam_model *m = NULL;
    gcam_ctx *c = NULL;
    gcam_feed gf[32];
    int64_t gdims[32][GCAM_MAX_DIMS];
    gcam_status rc = cli_load_model(&m, model, 0, max_memory);
    if (rc) { rc_exit = cli_status_exit(rc); goto done; }
    if (gcam_model_num_inputs(m) < 1) { rc_exit = cli_fail(CLI_BAD_INPUT, "%s: the model has no inputs", model); goto done; }
    gcam_tensor_info in0;
    gcam_model_input(m, 0, &in0);
    feeds[0] = (feed_file){.name = in0.name, .path = input};
    nf = 1 + n_feeds;
    for (int f = 0; f < nf; f++) {
        gc_err err = {0};
        if (gc_npy_read(feeds[f].path, &feeds[f].t, &err)) {
            rc_exit = cli_fail(CLI_BAD_INPUT, "%s", err.msg);
            nf = f;
            goto done;
        }
        gcam_tensor_info ti;
        if (gcam_model_find_tensor(m, feeds[f].name, &ti) != GCAM_OK) {
            rc_exit = cli_fail(CLI_BAD_INPUT, "--feed: the model has no input named '%s'", feeds[f].name);
            nf = f + 1;
            goto done;
        }
        gc_tensor *t = &feeds[f].t;
        if (ti.dtype != GCAM_UNDEFINED && ti.dtype != (gcam_dtype)t->dtype) { /* bad input, not bad usage */
            rc_exit = cli_fail(CLI_BAD_INPUT, "%s: input '%s' is %s, got %s in %s", model, ti.name, gcam_dtype_str(ti.dtype),
                               gcam_dtype_str((gcam_dtype)t->dtype), feeds[f].path);
            nf = f + 1;
            goto done;
        }
        /* accept the input without its batch axis */
        if (ti.ndim >= 1 && t->shape.ndim == ti.ndim - 1) {
            memmove(t->shape.d + 1, t->shape.d, sizeof(int64_t) * (size_t)t->shape.ndim);
            t->shape.d[0] = 1;
            t->shape.ndim++;
        }
        memcpy(gdims[f], t->shape.d, sizeof(int64_t) * GCAM_MAX_DIMS);
        gf[f] = (gcam_feed){.name = feeds[f].name, .dtype = t->dtype, .ndim = t->shape.ndim, .dims = gdims[f], .data = t->data};
    }
    gcam_ctx_options co = {.n_threads = threads, .max_memory = max_memory, .keep = tensors, .n_keep = n_tensors};
    rc = gcam_ctx_create(&c, m, gf, nf, &co);
    if (!rc) rc = gcam_ctx_run(c, gf, nf);
    if (rc) {
        rc_exit = cli_fail(cli_status_exit(rc), "%s: %s", model, gcam_ctx_error(c));
        goto done;
    }
    gcam_tensor_view views[64];
    int nv = 0;
    if (n_tensors) {
        for (int i = 0; i < n_tensors; i++)
            if (gcam_ctx_tensor(c, tensors[i], &views[nv++])) {
                rc_exit = cli_fail(CLI_BAD_INPUT, "%s", gcam_ctx_error(c));
                goto done;
            }
    } else {
        for (int i = 0; i < gcam_ctx_num_outputs(c) && nv < 64; i++) gcam_ctx_output(c, i, &views[nv++]);
    }
    if (strcmp(out, "-") == 0) {
        for (int i = 0; i < nv; i++) summarize(&views[i]);
        goto done;
    }
    for (int i = 0; i < nv; i++) {
        char path[4096], fname[256];
        if (nv == 1) {
            snprintf(path, sizeof path, "%s", out);
        } else {
            if (mkdir(out, 0777) != 0 && errno != EEXIST) {
                rc_exit = cli_fail(1, "%s: cannot create folder: %s", out, strerror(errno));
                goto done;
            }
            safe_name(fname, sizeof fname, views[i].name);
            snprintf(path, sizeof path, "%s/%s.npy", out, fname);
        }
        gc_tensor t = {.dtype = views[i].dtype, .shape.ndim = views[i].ndim, .data = (void *)views[i].data};
        memcpy(t.shape.d, views[i].dims, sizeof t.shape.d);
        gc_err err = {0};
        if (gc_npy_write(path, &t, &err)) {
            rc_exit = cli_fail(1, "%s", err.msg);
            goto done;
        }
        if (nv > 1) printf("%s -> %s\n", views[i].name, path);
    }
done:
    for (int f = 0; f < nf && f < 32; f++) free(feeds[f].t.data);
    gcam_ctx_free(c);
    gcam_model_free(m);
    return rc_exit;
}

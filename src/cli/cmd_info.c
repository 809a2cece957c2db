/* gradcam info MODEL: what a model takes, gives and contains. */
#include "cli_common.h"

static void print_info_help(void) {
    printf("Usage: gradcam info MODEL [--shape NAME=DIMS]...\n\n"
           "Lists the model's inputs and outputs, then every layer: node name, op type and output shape,\n"
           "then any ops gradcam does not support. Symbolic dimensions are bound for the listing: batch to 1,\n"
           "height and width of an image input to 224, unless --shape gives them.\n\n"
           "Options:\n"
           "  --shape NAME=DIMS   shape to assume for an input, e.g. --shape input=1x3x320x256\n\n"
           "Example:\n"
           "  gradcam info resnet18.onnx\n");
}

static void fmt_dims(char *buf, size_t n, int ndim, const int64_t *dims, const char *const *names) {
    size_t u = 0;
    buf[0] = 0;
    if (ndim < 0) {
        snprintf(buf, n, "(unknown rank)");
        return;
    }
    u += (size_t)snprintf(buf + u, n - u, "(");
    for (int d = 0; d < ndim && u < n; d++) {
        if (dims[d] >= 0) u += (size_t)snprintf(buf + u, n - u, "%s%lld", d ? ", " : "", (long long)dims[d]);
        else u += (size_t)snprintf(buf + u, n - u, "%s%s", d ? ", " : "", names && names[d] ? names[d] : "?");
    }
    if (u < n) snprintf(buf + u, n - u, ")");
}

/* Which tensors a CAM method can take as its layer (-l), by kind, with an example of each; and why
 * the others cannot (transformers: tokens need a grid, docs/methods.md). */
static void print_cam_layers(const gcam_model *m, const gcam_explainer *ex) {
    enum { MAPS, NHWC, TOKENS, NOT, KINDS };
    static const char *const kinds[KINDS] = {"(N, C, H, W) maps", "channel-last maps (N, H, W, C)", "tokens (N, T, C)",
                                             "not usable"};
    int count[KINDS] = {0}, defaulted[KINDS] = {0};
    char last[KINDS][256] = {{0}}, how_of[KINDS][300] = {{0}};
    for (int i = 0; i < gcam_model_num_nodes(m); i++) {
        gcam_node_info ni;
        if (gcam_model_node(m, i, &ni) || ni.n_outputs < 1 || !ni.outputs[0][0]) continue;
        gcam_tensor_info ti;
        if (gcam_model_find_tensor(m, ni.outputs[0], &ti) || ti.is_weight) continue;
        char how[300];
        int k = gcam_explainer_layer_check(ex, ni.outputs[0], how, sizeof how) ? NOT
                : strncmp(how, "tokens", 6) == 0                               ? TOKENS
                : strncmp(how, "channel-last", 12) == 0                        ? NHWC
                                                                               : MAPS;
        count[k]++;
        int is_default = 0; /* the example: the default layer where it is of this kind, else the last */
        for (int l = 0; l < gcam_explainer_num_layers(ex); l++) is_default |= strcmp(gcam_explainer_layer(ex, l), ni.outputs[0]) == 0;
        if (is_default || !defaulted[k]) {
            snprintf(last[k], sizeof last[k], "%s", ni.outputs[0]);
            snprintf(how_of[k], sizeof how_of[k], "%s", how);
            defaulted[k] = is_default;
        }
    }
    printf("\nCAM layers (-l NAME):\n");
    for (int k = 0; k < KINDS; k++)
        if (count[k])
            printf("  %-32s %5d tensors, e.g. %s (%s)\n", kinds[k], count[k], last[k], how_of[k]);
}

int cmd_info(int argc, char **argv) {
    const char *model = NULL;
    const char *shape_names[16];
    int64_t shape_dims[16][GCAM_MAX_DIMS];
    int shape_nd[16], n_shapes = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_info_help();
            return 0;
        } else if (strcmp(argv[i], "--shape") == 0) {
            if (i + 1 >= argc) return cli_usage_error("--shape needs NAME=DIMS");
            char *arg = argv[++i], *eq = strchr(arg, '=');
            if (!eq || n_shapes >= 16) return cli_usage_error("--shape needs NAME=DIMS, got '%s'", arg);
            *eq = 0;
            shape_names[n_shapes] = arg;
            if (cli_parse_dims(eq + 1, shape_dims[n_shapes], &shape_nd[n_shapes]))
                return cli_usage_error("--shape %s: bad dimensions '%s' (want e.g. 1x3x224x224)", arg, eq + 1);
            n_shapes++;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error("info: unknown option '%s'", argv[i]);
        } else if (!model) {
            model = argv[i];
        } else {
            return cli_usage_error("info: unexpected argument '%s'", argv[i]);
        }
    }
    if (!model) return cli_usage_error("info: no MODEL given");
    gcam_model *m = NULL;
    gcam_status rc = cli_load_model(&m, model, 1, 0);
    if (rc) {
        gcam_model_free(m);
        return cli_status_exit(rc);
    }
    char buf[512];
    printf("model:    %s\nproducer: %s\nopset:    %d\n", model, gcam_model_producer(m)[0] ? gcam_model_producer(m) : "(unknown)",
           gcam_model_opset(m));
    int nin = gcam_model_num_inputs(m);
    gcam_feed feeds[64];
    int64_t fdims[64][GCAM_MAX_DIMS];
    int assumed = 0;
    printf("\ninputs:\n");
    for (int i = 0; i < nin && i < 64; i++) {
        gcam_tensor_info ti;
        gcam_model_input(m, i, &ti);
        fmt_dims(buf, sizeof buf, ti.ndim, ti.dims, ti.dim_names);
        printf("  %-30s %-8s %s\n", ti.name, gcam_dtype_str(ti.dtype), buf);
        feeds[i] = (gcam_feed){.name = ti.name, .dtype = ti.dtype, .ndim = ti.ndim, .dims = fdims[i]};
        int given = -1;
        for (int s = 0; s < n_shapes; s++)
            if (strcmp(shape_names[s], ti.name) == 0) given = s;
        if (given >= 0) {
            feeds[i].ndim = shape_nd[given];
            memcpy(fdims[i], shape_dims[given], sizeof(int64_t) * (size_t)shape_nd[given]);
            continue;
        }
        for (int d = 0; d < ti.ndim; d++) {
            fdims[i][d] = ti.dims[d];
            if (ti.dims[d] < 0) {
                fdims[i][d] = (ti.ndim == 4 && d >= 2) ? 224 : 1;
                assumed = 1;
            }
        }
        if (ti.ndim < 0) feeds[i].ndim = 0;
    }
    printf("\noutputs:\n");
    for (int i = 0; i < gcam_model_num_outputs(m); i++) {
        gcam_tensor_info ti;
        gcam_model_output(m, i, &ti);
        fmt_dims(buf, sizeof buf, ti.ndim, ti.dims, ti.dim_names);
        printf("  %-30s %-8s %s\n", ti.name, gcam_dtype_str(ti.dtype), buf);
    }
    gcam_ctx *c = NULL;
    int have_shapes = 0;
    if (gcam_model_num_unsupported(m) == 0) {
        rc = gcam_ctx_create(&c, m, feeds, nin < 64 ? nin : 64, NULL);
        if (rc) fprintf(stderr, "%s: %s: cannot infer shapes: %s\n", g_prog, model, gcam_ctx_error(c));
        else have_shapes = 1;
    }
    int nn = gcam_model_num_nodes(m);
    printf("\nlayers (%d nodes)%s:\n", nn,
           have_shapes && assumed ? " — shapes for symbolic dimensions bound as batch 1, 224x224 (see --shape)" : "");
    for (int i = 0; i < nn; i++) {
        gcam_node_info ni;
        gcam_model_node(m, i, &ni);
        printf("  %-40s %-20s", ni.name, ni.op_type);
        for (int j = 0; j < ni.n_outputs; j++) {
            gcam_tensor_view v;
            if (have_shapes && ni.outputs[j][0] && gcam_ctx_tensor_shape(c, ni.outputs[j], &v) == GCAM_OK)
                fmt_dims(buf, sizeof buf, v.ndim, v.dims, NULL);
            else
                snprintf(buf, sizeof buf, "%s", ni.outputs[j][0] ? "?" : "-");
            printf("%s%s", j ? "  " : " ", buf);
        }
        printf("\n");
    }
    if (have_shapes) { /* the layer explanations use unless told (-l) */
        gcam_explainer *ex = NULL;
        int nl = gcam_explainer_create(&ex, m, feeds, nin < 64 ? nin : 64, NULL) == GCAM_OK ? gcam_explainer_num_layers(ex) : 0;
        if (nl > 1) { /* a detector's pyramid levels (docs/detection.md) */
            printf("\ndefault explanation layers (one per pyramid level):");
            for (int l = 0; l < nl; l++) printf("%s %s", l ? "," : "", gcam_explainer_layer(ex, l));
            printf(" (score: %s)\n", gcam_explainer_score_name(ex));
        } else if (nl == 1)
            printf("\ndefault explanation layer: %s (score: %s)\n", gcam_explainer_layer(ex, 0),
                   gcam_explainer_score_name(ex));
        else
            printf("\ndefault explanation layer: none (%s)\n",
                   ex && gcam_explainer_error(ex)[0] ? gcam_explainer_error(ex) : "no 4-D activation with spatial size > 1");
        if (ex) print_cam_layers(m, ex);
        gcam_explainer_free(ex);
    }
    int nu = gcam_model_num_unsupported(m);
    if (nu) {
        printf("\nunsupported (%d):\n", nu);
        for (int i = 0; i < nu; i++) printf("  %s\n", gcam_model_unsupported(m, i));
    } else {
        printf("\nunsupported: none\n");
    }
    gcam_ctx_free(c);
    gcam_model_free(m);
    return nu ? CLI_BAD_INPUT : (have_shapes ? 0 : CLI_BAD_INPUT);
}

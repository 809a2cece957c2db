/* The models: loaded once at start, and each one's /v1/models entry (inputs, outputs, labels,
 * the layers a CAM method can use, the default layer, the explain options in force). */
#include "cli/cli_common.h"
#include "serve.h"

enum { MAX_FEEDS = 64 };

static size_t max_memory_of(const sv_model *m) {
    size_t v = 0;
    for (int a = 0; a + 1 < m->argc; a++)
        if (!strcmp(m->argv[a], "--max-memory") && cli_parse_bytes(m->argv[a + 1], &v)) v = 0;
    return v;
}

int sv_models_load(sv_server *s) {
    for (int i = 0; i < s->n_models; i++) {
        sv_model *m = &s->models[i];
        if (!m->path) return cli_fail(CLI_FAIL, "out of memory");
        gcam_status rc = cli_load_model(&m->m, m->path, 0, max_memory_of(m));
        if (rc) return cli_status_exit(rc);
    }
    return 0;
}

void sv_models_free(sv_server *s) {
    for (int i = 0; i < s->n_models; i++) {
        gcam_model_free(s->models[i].m);
        s->models[i].m = NULL;
        free(s->models[i].info_json);
        s->models[i].info_json = NULL;
    }
    free(s->models_json);
    s->models_json = NULL;
}

static void tensor_json(gc_json *j, const gcam_tensor_info *ti) {
    gc_json_begin_object(j);
    gc_json_key(j, "name");
    gc_json_string(j, ti->name);
    gc_json_key(j, "dtype");
    gc_json_string(j, gcam_dtype_str(ti->dtype));
    gc_json_key(j, "shape");
    gc_json_begin_array_inline(j);
    for (int d = 0; d < ti->ndim; d++) {
        if (ti->dims[d] >= 0) gc_json_int(j, ti->dims[d]);
        else gc_json_string(j, ti->dim_names[d] ? ti->dim_names[d] : "?");
    }
    gc_json_end_array(j);
    gc_json_end_object(j);
}

/* The shapes the model is bound with for the layer list: the first input as the tool's
 * preprocessing makes it from a picture, the others with dynamic extents as 1. */
typedef struct sv_shapes {
    gcam_feed feeds[MAX_FEEDS];
    int64_t dims[MAX_FEEDS][GCAM_MAX_DIMS];
    int n;
} sv_shapes;

static int bind_shapes(gcam_tool *t, const gcam_model *m, sv_shapes *sh) {
    sh->n = gcam_model_num_inputs(m) < MAX_FEEDS ? gcam_model_num_inputs(m) : MAX_FEEDS;
    for (int i = 0; i < sh->n; i++) {
        gcam_tensor_info ti;
        gcam_model_input(m, i, &ti);
        sh->feeds[i] = (gcam_feed){.name = ti.name, .dtype = ti.dtype, .ndim = ti.ndim > 0 ? ti.ndim : 0, .dims = sh->dims[i]};
        for (int d = 0; d < ti.ndim; d++) sh->dims[i][d] = ti.dims[d] >= 0 ? ti.dims[d] : 1;
    }
    static const uint8_t gray[32 * 32 * 3] = {0};
    float *x = NULL;
    int64_t dims[GCAM_MAX_DIMS];
    int nd = 0;
    if (sh->n && gcam_tool_preprocess(t, gray, 32, 32, &x, dims, &nd) == GCAM_OK && nd <= GCAM_MAX_DIMS) {
        memcpy(sh->dims[0], dims, sizeof(int64_t) * (size_t)nd);
        sh->feeds[0].ndim = nd;
    }
    gcam_tool_buffer_free(x);
    return sh->n;
}

/* Layers a CAM method can explain: 4-D activations with more than one spatial position. */
static void layers_json(gc_json *j, const gcam_model *m, const sv_shapes *sh) {
    gcam_ctx *c = NULL;
    gc_json_key(j, "layers");
    gc_json_begin_array(j);
    if (gcam_ctx_create(&c, m, sh->feeds, sh->n, NULL) == GCAM_OK) {
        int nn = gcam_model_num_nodes(m);
        for (int i = 0; i < nn; i++) {
            gcam_node_info ni;
            gcam_model_node(m, i, &ni);
            for (int o = 0; o < ni.n_outputs; o++) {
                gcam_tensor_view v;
                if (!ni.outputs[o][0] || gcam_ctx_tensor_shape(c, ni.outputs[o], &v) != GCAM_OK) continue;
                if (v.ndim == 4 && v.dims[2] * v.dims[3] > 1) gc_json_string(j, ni.outputs[o]);
            }
        }
    }
    gc_json_end_array(j);
    gcam_ctx_free(c);
    gcam_explainer *ex = NULL;
    gc_json_key(j, "default_layers");
    gc_json_begin_array(j);
    if (gcam_explainer_create(&ex, m, sh->feeds, sh->n, NULL) == GCAM_OK)
        for (int l = 0; l < gcam_explainer_num_layers(ex); l++) gc_json_string(j, gcam_explainer_layer(ex, l));
    gc_json_end_array(j);
    gcam_explainer_free(ex);
}

static int labels_json(gc_json *j, const sv_model *sm) {
    gc_json_key(j, "labels");
    if (sm->labels_path) {
        const char **labels = NULL;
        char *owned = NULL;
        int64_t n = 0;
        int rc = cli_labels_load(sm->labels_path, &labels, &n, &owned);
        if (rc) return rc;
        gc_json_begin_array(j);
        for (int64_t i = 0; i < n; i++) gc_json_string(j, labels[i]);
        gc_json_end_array(j);
        free(labels);
        free(owned);
        return 0;
    }
    gcam_tensor_info out;
    if (gcam_model_num_outputs(sm->m) > 0 && gcam_model_output(sm->m, 0, &out) == GCAM_OK && out.ndim >= 1 &&
        out.dims[out.ndim - 1] == 1000) { /* as the command: ImageNet's names for 1000 classes */
        gc_json_begin_array(j);
        for (int i = 0; i < 1000; i++) gc_json_string(j, gc_imagenet_labels[i]);
        gc_json_end_array(j);
    } else {
        gc_json_null(j);
    }
    return 0;
}

static int describe_one(sv_server *s, int i, gc_json *j) {
    sv_model *sm = &s->models[i];
    gcam_tool *t = s->tools[0][i];
    gc_json_begin_object(j);
    gc_json_key(j, "name");
    gc_json_string(j, sm->name);
    gc_json_key(j, "path");
    gc_json_string(j, sm->path);
    gc_json_key(j, "inputs");
    gc_json_begin_array(j);
    for (int k = 0; k < gcam_model_num_inputs(sm->m); k++) {
        gcam_tensor_info ti;
        if (gcam_model_input(sm->m, k, &ti) == GCAM_OK) tensor_json(j, &ti);
    }
    gc_json_end_array(j);
    gc_json_key(j, "outputs");
    gc_json_begin_array(j);
    for (int k = 0; k < gcam_model_num_outputs(sm->m); k++) {
        gcam_tensor_info ti;
        if (gcam_model_output(sm->m, k, &ti) == GCAM_OK) tensor_json(j, &ti);
    }
    gc_json_end_array(j);
    int rc = labels_json(j, sm);
    if (rc) return rc;
    sv_shapes sh;
    bind_shapes(t, sm->m, &sh);
    layers_json(j, sm->m, &sh);
    gc_json_key(j, "methods");
    gc_json_begin_array_inline(j);
    for (int m = 0; m < GCAM_METHOD_COUNT; m++) gc_json_string(j, gcam_method_name((gcam_method)m));
    gc_json_end_array(j);
    const char *d = gcam_tool_describe(t); /* {"model": ..., "options": ...} as results.json has them */
    gc_json_key(j, "explain");
    if (d) gc_json_raw(j, d);
    else gc_json_null(j);
    gc_json_end_object(j);
    return 0;
}

int sv_models_describe(sv_server *s) {
    gc_buf b = {0};
    gc_json j;
    gc_json_init(&j, &b, 2);
    gc_json_begin_object(&j);
    gc_json_key(&j, "models");
    gc_json_begin_array(&j);
    for (int i = 0; i < s->n_models; i++) {
        int rc = describe_one(s, i, &j);
        if (rc) {
            gc_buf_free(&b);
            return rc;
        }
    }
    gc_json_end_array(&j);
    gc_json_end_object(&j);
    gc_buf_puts(&b, "\n");
    if (b.oom || j.bad) {
        gc_buf_free(&b);
        return cli_fail(CLI_FAIL, "out of memory");
    }
    s->models_json = b.p;
    return 0;
}

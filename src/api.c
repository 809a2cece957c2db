/* The public C API (include/gradcam.h): thin, checked wrappers over the model and context. */
#include <libgen.h>
#include <math.h>

#include "graph/model.h"
#include "graph/plan.h"
#include "onnx/onnx.h"

const char *gcam_version(void) { return GCAM_VERSION_STRING; }

const char *gcam_status_str(gcam_status s) {
    switch (s) {
    case GCAM_OK: return "ok";
    case GCAM_E_ARG: return "invalid argument";
    case GCAM_E_IO: return "I/O error";
    case GCAM_E_FORMAT: return "format error";
    case GCAM_E_UNSUPPORTED: return "unsupported";
    case GCAM_E_SHAPE: return "shape error";
    case GCAM_E_NOMEM: return "out of memory";
    case GCAM_E_LIMIT: return "limit exceeded";
    case GCAM_E_NUMERIC: return "numeric error";
    case GCAM_E_NOT_FOUND: return "not found";
    case GCAM_E_STATE: return "invalid state";
    case GCAM_E_INTERNAL: return "internal error";
    case GCAM_E_ABORTED: return "aborted";
    }
    return "unknown status";
}

const char *gcam_dtype_str(gcam_dtype t) { return gc_dtype_name(t); }

static gcam_status build_name_tables(gc_model *m);

static gcam_status finish_load(gcam_model *mm, const gcam_load_options *opts, gcam_status rc) {
    mm->m.fold_bn = opts ? opts->fold_batchnorm : 0;
    mm->m.fold_max = opts ? opts->max_memory : 0;
    if (!rc) rc = gc_model_finish(&mm->m, opts ? opts->allow_unsupported : 0);
    if (!rc) rc = build_name_tables(&mm->m);
    return rc;
}

gcam_status gcam_model_load_memory(gcam_model **out, const void *data, size_t size, const char *base_dir,
                                   const gcam_load_options *opts) {
    if (!out) return GCAM_E_ARG;
    *out = calloc(1, sizeof **out);
    if (!*out) return GCAM_E_NOMEM;
    if (!data) return gc_fail(&(*out)->m.err, GCAM_E_ARG, "no model data");
    gcam_status rc = gc_onnx_load(&(*out)->m, data, size, base_dir);
    return finish_load(*out, opts, rc);
}

gcam_status gcam_model_load(gcam_model **out, const char *path, const gcam_load_options *opts) {
    if (!out) return GCAM_E_ARG;
    *out = calloc(1, sizeof **out);
    if (!*out) return GCAM_E_NOMEM;
    gc_model *m = &(*out)->m;
    if (!path) return gc_fail(&m->err, GCAM_E_ARG, "no model path");
    char *dircopy = gc_strdup(path);
    if (!dircopy) return gc_fail(&m->err, GCAM_E_NOMEM, "out of memory");
    gcam_status rc = gc_onnx_load_file(m, path, dirname(dircopy));
    free(dircopy);
    rc = finish_load(*out, opts, rc);
    if (rc && m->err.msg[0] && strncmp(m->err.msg, path, strlen(path)) != 0) {
        /* name the file in the one line the user sees */
        char msg[sizeof m->err.msg];
        snprintf(msg, sizeof msg, "%.300s: %.700s", path, m->err.msg);
        memcpy(m->err.msg, msg, sizeof msg);
    }
    return rc;
}

const char *gcam_model_error(const gcam_model *m) {
    if (!m) return "out of memory (no model handle)";
    return m->m.err.code ? m->m.err.msg : "";
}

void gcam_model_free(gcam_model *m) {
    if (!m) return;
    gc_model_destroy(&m->m);
    free(m);
}

int gcam_model_num_inputs(const gcam_model *m) { return m ? m->m.n_inputs : 0; }
int gcam_model_num_outputs(const gcam_model *m) { return m ? m->m.n_outputs : 0; }
int gcam_model_num_nodes(const gcam_model *m) { return m ? m->m.n_nodes : 0; }
int gcam_model_num_tensors(const gcam_model *m) { return m ? m->m.n_values : 0; }
int gcam_model_num_unsupported(const gcam_model *m) { return m ? m->m.n_unsupported : 0; }
int gcam_model_opset(const gcam_model *m) { return m ? m->m.opset : 0; }
const char *gcam_model_producer(const gcam_model *m) { return m && m->m.producer ? m->m.producer : ""; }

const char *gcam_model_unsupported(const gcam_model *m, int i) {
    if (!m || i < 0 || i >= m->m.n_unsupported) return NULL;
    return m->m.unsupported[i];
}

static void fill_info(const gc_model *m, int v, gcam_tensor_info *out) {
    const gc_value *val = &m->values[v];
    memset(out, 0, sizeof *out);
    out->name = val->name;
    out->dtype = val->dtype;
    out->ndim = val->shape.ndim;
    for (int d = 0; d < val->shape.ndim && d < GC_MAX_DIMS; d++) {
        out->dims[d] = val->shape.d[d];
        out->dim_names[d] = val->dim_names[d];
    }
    if (val->producer >= 0) {
        out->producer = m->nodes[val->producer].name;
        out->op_type = m->nodes[val->producer].op_type;
    }
    out->is_weight = val->const_data != NULL;
}

gcam_status gcam_model_input(const gcam_model *m, int i, gcam_tensor_info *out) {
    if (!m || !out || i < 0 || i >= m->m.n_inputs) return GCAM_E_ARG;
    fill_info(&m->m, m->m.inputs[i], out);
    return GCAM_OK;
}

gcam_status gcam_model_output(const gcam_model *m, int i, gcam_tensor_info *out) {
    if (!m || !out || i < 0 || i >= m->m.n_outputs) return GCAM_E_ARG;
    fill_info(&m->m, m->m.outputs[i], out);
    return GCAM_OK;
}

gcam_status gcam_model_tensor(const gcam_model *m, int i, gcam_tensor_info *out) {
    if (!m || !out || i < 0 || i >= m->m.n_values) return GCAM_E_ARG;
    fill_info(&m->m, i, out);
    return GCAM_OK;
}

gcam_status gcam_model_find_tensor(const gcam_model *m, const char *name, gcam_tensor_info *out) {
    if (!m || !out || !name) return GCAM_E_ARG;
    int v = gc_model_find_value(&m->m, name);
    if (v < 0) return GCAM_E_NOT_FOUND;
    fill_info(&m->m, v, out);
    return GCAM_OK;
}

/* Node input/output name tables for gcam_model_node, built once at load so that a loaded model
 * is never written again (it is shared read-only by threads). */
static gcam_status build_name_tables(gc_model *m) {
    const char ***in = gc_calloc2((size_t)m->n_nodes + 1, sizeof(char **));
    const char ***on = gc_calloc2((size_t)m->n_nodes + 1, sizeof(char **));
    m->node_in_names = in;
    m->node_out_names = on;
    if (!in || !on) return gc_fail(&m->err, GCAM_E_NOMEM, "out of memory");
    for (int k = 0; k < m->n_nodes; k++) {
        gc_node *n = &m->nodes[k];
        in[k] = gc_calloc2((size_t)n->n_in + 1, sizeof(char *));
        on[k] = gc_calloc2((size_t)n->n_out + 1, sizeof(char *));
        if (!in[k] || !on[k]) return gc_fail(&m->err, GCAM_E_NOMEM, "out of memory");
        for (int j = 0; j < n->n_in; j++) in[k][j] = n->in[j] >= 0 ? m->values[n->in[j]].name : "";
        for (int j = 0; j < n->n_out; j++) on[k][j] = n->out[j] >= 0 ? m->values[n->out[j]].name : "";
    }
    return GCAM_OK;
}

gcam_status gcam_model_node(const gcam_model *cm, int i, gcam_node_info *out) {
    if (!cm || !out || i < 0 || i >= cm->m.n_nodes || !cm->m.node_in_names) return GCAM_E_ARG;
    const gc_model *m = &cm->m;
    const gc_node *n = &m->nodes[i];
    out->name = n->name;
    out->op_type = n->op_type;
    out->domain = n->domain;
    out->opset = n->opset;
    out->n_inputs = n->n_in;
    out->n_outputs = n->n_out;
    out->inputs = m->node_in_names[i];
    out->outputs = m->node_out_names[i];
    return GCAM_OK;
}

/* ---- contexts ---- */

gcam_status gcam_ctx_create(gcam_ctx **out, const gcam_model *m, const gcam_feed *shapes, int n_shapes,
                            const gcam_ctx_options *opts) {
    if (!out) return GCAM_E_ARG;
    *out = calloc(1, sizeof **out);
    if (!*out) return GCAM_E_NOMEM;
    gcam_ctx *c = *out;
    if (!m) return gc_fail(&c->err, GCAM_E_ARG, "no model");
    if (m->m.err.code) return gc_fail(&c->err, GCAM_E_STATE, "the model failed to load: %s", m->m.err.msg);
    if (n_shapes < 0 || (n_shapes > 0 && !shapes)) return gc_fail(&c->err, GCAM_E_ARG, "invalid input shapes");
    c->m = &m->m;
    gcam_status rc = gc_ctx_plan(c, shapes, n_shapes, opts);
    c->broken = rc != GCAM_OK;
    return rc;
}

const char *gcam_ctx_error(const gcam_ctx *c) {
    if (!c) return "out of memory (no context handle)";
    return c->err.code ? c->err.msg : "";
}

void gcam_ctx_free(gcam_ctx *c) {
    if (!c) return;
    gc_ctx_destroy(c);
    free(c->grad_valid);
    free(c);
}

size_t gcam_ctx_planned_bytes(const gcam_ctx *c) { return c ? c->arena_size : 0; }

gcam_status gcam_ctx_set_abort(gcam_ctx *c, gcam_abort_fn fn, void *user) {
    if (!c) return GCAM_E_ARG;
    c->abort_fn = fn;
    c->abort_user = fn ? user : NULL;
    return GCAM_OK;
}

/* A context whose planning failed stays unusable; a failed run leaves it usable (the error
 * text then describes the latest call). */
static int ready(const gcam_ctx *c) { return c && c->m && c->vals && !c->broken; }

/* Every call reports its own error: cleared on entry, except a failed plan's, which stays. */
static void enter(gcam_ctx *c) {
    if (!c->broken) gc_err_clear(&c->err);
}

/* Copies each feed into its graph input's buffer and marks it in fed[input index]. */
static gcam_status feed_inputs(gcam_ctx *c, const gcam_feed *feeds, int n_feeds, uint8_t *fed) {
    const gc_model *m = c->m;
    for (int f = 0; f < n_feeds; f++) {
        int i = -1;
        if (feeds[f].name) {
            int v = gc_model_find_value(m, feeds[f].name);
            for (int k = 0; k < m->n_inputs; k++)
                if (m->inputs[k] == v) i = k;
        } else if (f < m->n_inputs) {
            i = f;
        }
        if (i < 0) return gc_fail(&c->err, GCAM_E_NOT_FOUND, "no graph input %s", feeds[f].name ? feeds[f].name : "at that position");
        gc_tensor *t = &c->vals[m->inputs[i]];
        if (c->vkind[m->inputs[i]] == GC_V_FOLDED) { /* bound as a constant at creation */
            fed[i] = 1;
            continue;
        }
        int same = feeds[f].ndim == t->shape.ndim && feeds[f].data && (!feeds[f].ndim || feeds[f].dims);
        for (int d = 0; same && d < t->shape.ndim; d++) same = feeds[f].dims[d] == t->shape.d[d];
        if (!same) {
            char a[128];
            return gc_fail(&c->err, GCAM_E_SHAPE, "input '%s': the context was created for shape %s; feed that "
                           "shape (with data) or create another context", m->values[m->inputs[i]].name,
                           gc_shape_str(&t->shape, a, sizeof a));
        }
        if (feeds[f].dtype != GCAM_UNDEFINED && feeds[f].dtype != t->dtype)
            return gc_fail(&c->err, GCAM_E_ARG, "input '%s' is %s, got %s", m->values[m->inputs[i]].name,
                           gcam_dtype_str(t->dtype), gcam_dtype_str(feeds[f].dtype));
        int ok = 0;
        size_t bytes = gc_tensor_bytes(t->dtype, &t->shape, &ok);
        if (t->data && bytes) memcpy(t->data, feeds[f].data, bytes);
        fed[i] = 1;
    }
    return GCAM_OK;
}

gcam_status gcam_ctx_run(gcam_ctx *c, const gcam_feed *feeds, int n_feeds) {
    if (!c) return GCAM_E_ARG;
    if (!ready(c)) return c->err.code ? c->err.code : GCAM_E_STATE;
    enter(c);
    const gc_model *m = c->m;
    if (n_feeds < 0 || (n_feeds > 0 && !feeds)) return gc_fail(&c->err, GCAM_E_ARG, "invalid feeds");
    uint8_t *fed = calloc((size_t)m->n_inputs + 1, 1); /* per graph input */
    if (!fed) return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
    gcam_status rc = feed_inputs(c, feeds, n_feeds, fed);
    for (int i = 0; !rc && i < m->n_inputs; i++)
        if (!fed[i] && c->vkind[m->inputs[i]] == GC_V_RUNTIME && gc_numel(&c->vals[m->inputs[i]]) > 0)
            rc = gc_fail(&c->err, GCAM_E_ARG, "graph input '%s' was not fed", m->values[m->inputs[i]].name);
    free(fed);
    return rc ? rc : gc_ctx_forward(c);
}

int gcam_ctx_num_outputs(const gcam_ctx *c) { return c && c->m ? c->m->n_outputs : 0; }

static gcam_status view_of(gcam_ctx *c, int v, const gc_tensor *t, gcam_tensor_view *out) {
    memset(out, 0, sizeof *out);
    out->name = c->m->values[v].name;
    out->dtype = t->dtype;
    out->ndim = t->shape.ndim;
    for (int d = 0; d < t->shape.ndim; d++) out->dims[d] = t->shape.d[d];
    int64_t n = gc_numel(t);
    out->numel = n > 0 ? (size_t)n : 0;
    out->data = t->data;
    return GCAM_OK;
}

gcam_status gcam_ctx_output(gcam_ctx *c, int i, gcam_tensor_view *out) {
    if (!c) return GCAM_E_ARG;
    enter(c);
    if (!out || !c->m || i < 0 || i >= c->m->n_outputs) return GCAM_E_ARG;
    if (!c->has_run && c->vkind[c->m->outputs[i]] == GC_V_RUNTIME)
        return gc_fail(&c->err, GCAM_E_STATE, "no forward pass has run yet");
    int v = c->m->outputs[i];
    return view_of(c, v, &c->vals[v], out);
}

gcam_status gcam_ctx_tensor(gcam_ctx *c, const char *name, gcam_tensor_view *out) {
    if (!c) return GCAM_E_ARG;
    enter(c);
    if (!out || !name || !c->m || !c->vals) return GCAM_E_ARG;
    int v = gc_model_find_value(c->m, name);
    if (v < 0) return gc_fail(&c->err, GCAM_E_NOT_FOUND, "no tensor named '%s'", name);
    if (c->vkind[v] == GC_V_RUNTIME) {
        if (!c->has_run) return gc_fail(&c->err, GCAM_E_STATE, "no forward pass has run yet");
        int is_input = 0;
        for (int i = 0; i < c->m->n_inputs; i++) is_input |= c->m->inputs[i] == v;
        if (!c->kept[v] && !c->m->values[v].is_output && !is_input)
            return gc_fail(&c->err, GCAM_E_STATE, "tensor '%s' was not kept after the run: list it in "
                           "gcam_ctx_options.keep", name);
    } else if (c->vkind[v] == GC_V_NONE) {
        return gc_fail(&c->err, GCAM_E_STATE, "tensor '%s' is not computed in this context", name);
    }
    return view_of(c, v, &c->vals[v], out);
}

gcam_status gcam_ctx_tensor_shape(const gcam_ctx *c, const char *name, gcam_tensor_view *out) {
    if (!c || !out || !name || !c->m || !c->vals) return GCAM_E_ARG;
    int v = gc_model_find_value(c->m, name);
    if (v < 0 || c->vkind[v] == GC_V_NONE) return GCAM_E_NOT_FOUND;
    view_of((gcam_ctx *)c, v, &c->vals[v], out);
    out->data = NULL;
    return GCAM_OK;
}

gcam_status gcam_ctx_backward(gcam_ctx *c, const float *seed_grad, gcam_rule rule, const char *const *want,
                              int n_want) {
    if (!ready(c)) return c && c->err.code ? c->err.code : GCAM_E_ARG;
    enter(c);
    if (!seed_grad) return gc_fail(&c->err, GCAM_E_ARG, "no seed gradient");
    if (rule < GCAM_RULE_STANDARD || rule > GCAM_RULE_DECONV) return gc_fail(&c->err, GCAM_E_ARG, "unknown rule %d", (int)rule);
    if (c->seed < 0) return gc_fail(&c->err, GCAM_E_STATE, "no backward was planned: set seed and grad_of at creation");
    if (!c->grad_valid && !(c->grad_valid = calloc((size_t)c->n_req + 1, 1)))
        return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
    int *w = gc_malloc2((size_t)c->n_req + 1, sizeof(int));
    if (!w) return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
    int nw = 0;
    memset(c->grad_valid, 0, (size_t)c->n_req);
    if (!want || n_want <= 0) {
        for (int r = 0; r < c->n_req; r++) {
            w[nw++] = c->req[r];
            c->grad_valid[r] = 1;
        }
    } else {
        for (int i = 0; i < n_want; i++) {
            int v = want[i] ? gc_model_find_value(c->m, want[i]) : -1, r;
            for (r = 0; r < c->n_req && c->req[r] != v; r++) {}
            if (r == c->n_req) {
                free(w);
                return gc_fail(&c->err, GCAM_E_ARG, "'%s' was not planned as a grad_of tensor", want[i] ? want[i] : "(null)");
            }
            if (nw < c->n_req) w[nw++] = v;
            c->grad_valid[r] = 1;
        }
    }
    for (size_t e = 0, n = (size_t)gc_numel(&c->vals[c->seed]); e < n; e++)
        if (!isfinite(seed_grad[e])) {
            free(w);
            return gc_fail(&c->err, GCAM_E_NUMERIC, "seed gradient element %zu is not finite", e);
        }
    gcam_status rc = gc_ctx_backward(c, seed_grad, (gc_rule)rule, w, nw, &c->last_bw_nodes);
    free(w);
    if (rc) memset(c->grad_valid, 0, (size_t)c->n_req);
    return rc;
}

gcam_status gcam_ctx_grad(gcam_ctx *c, const char *name, gcam_tensor_view *out) {
    if (!c) return GCAM_E_ARG;
    enter(c);
    if (!out || !name || !c->m) return GCAM_E_ARG;
    int v = gc_model_find_value(c->m, name), r;
    for (r = 0; r < c->n_req && c->req[r] != v; r++) {}
    if (v < 0 || r == c->n_req) return gc_fail(&c->err, GCAM_E_NOT_FOUND, "'%s' was not planned as a grad_of tensor", name);
    if (!c->has_backward || !c->grad_valid || !c->grad_valid[r])
        return gc_fail(&c->err, GCAM_E_STATE, "no backward pass has computed the gradient of '%s'", name);
    return view_of(c, v, &c->grads[v], out);
}

int gcam_ctx_backward_node_count(const gcam_ctx *c) { return c ? c->last_bw_nodes : 0; }

gcam_status gcam_ctx_seed_shape(const gcam_ctx *c, gcam_tensor_view *out) {
    if (!c || !out || !c->m || c->seed < 0) return GCAM_E_ARG;
    view_of((gcam_ctx *)c, c->seed, &c->vals[c->seed], out);
    out->data = NULL;
    return GCAM_OK;
}

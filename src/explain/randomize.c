/* Models with randomised weights, for the sanity check of Adebayo et al. 2018 (cascading
 * randomisation from the top layer down). The copy is rebuilt from the loaded graph as the ONNX
 * loader leaves it (values, nodes, attributes, initialisers) and finished again, so constants
 * folded from the weights at load (transposed Gemm weights, Constant nodes) are recomputed from
 * the random ones. */
#include <math.h>

#include "../graph/model.h"
#include "explain.h"
#include "metrics.h"

static int is_param_op(const char *t) {
    return strcmp(t, "Conv") == 0 || strcmp(t, "ConvTranspose") == 0 || strcmp(t, "Gemm") == 0 ||
           strcmp(t, "MatMul") == 0 || strcmp(t, "BatchNormalization") == 0;
}

/* Float initialisers behind value v (itself, or through nodes folded at load), marked in mark[]. */
static int weight_sources(const gc_model *m, int v, uint8_t *mark, int depth) {
    if (v < 0 || depth > 64) return 0;
    const gc_value *val = &m->values[v];
    if (!val->const_data) return 0;
    if (val->producer < 0) {
        if (val->dtype != GC_F32 || mark[v]) return 0;
        mark[v] = 1;
        return 1;
    }
    const gc_node *n = &m->nodes[val->producer];
    int found = 0;
    for (int k = 0; k < n->n_in; k++) found += weight_sources(m, n->in[k], mark, depth + 1);
    return found;
}

/* Inputs of a parameterised node that hold learned weights (not BN running statistics). */
static int weight_slot(const gc_node *n, int k) {
    if (strcmp(n->op_type, "BatchNormalization") == 0) return k == 1 || k == 2;
    return 1;
}

/* Node indices of the parameterised layers, from the output down; returns the count (-1 OOM). */
static int param_layers(const gc_model *m, int *out) {
    uint8_t *mark = calloc((size_t)m->n_values + 1, 1);
    if (!mark) return -1;
    int n = 0;
    for (int i = m->n_nodes - 1; i >= 0; i--) {
        const gc_node *nd = &m->nodes[i];
        if (nd->folded || !is_param_op(nd->op_type)) continue;
        int found = 0;
        memset(mark, 0, (size_t)m->n_values);
        for (int k = 0; k < nd->n_in; k++)
            if (weight_slot(nd, k)) found += weight_sources(m, nd->in[k], mark, 0);
        if (found) {
            if (out) out[n] = i;
            n++;
        }
    }
    free(mark);
    return n;
}

int gc_model_num_param_layers(const gcam_model *m) {
    if (!m) return 0;
    int n = param_layers(gc_model_of(m), NULL);
    return n < 0 ? 0 : n;
}

const char *gc_model_param_layer(const gcam_model *m, int i) {
    if (!m || i < 0) return NULL;
    const gc_model *g = gc_model_of(m);
    int *idx = gc_malloc2((size_t)g->n_nodes + 1, sizeof(int));
    if (!idx) return NULL;
    int n = param_layers(g, idx);
    const char *name = i < n ? g->nodes[idx[i]].name : NULL;
    free(idx);
    return name;
}

/* ---- copying a model ---- */

static int copy_attr(gc_attr *d, const gc_attr *s) {
    memset(d, 0, sizeof *d);
    d->type = s->type;
    d->f = s->f;
    d->i = s->i;
    d->n = s->n;
    if (!(d->name = gc_strdup(s->name))) return -1;
    if (s->s) {
        if (!(d->s = malloc(s->n + 1))) return -1;
        memcpy(d->s, s->s, s->n);
        d->s[s->n] = 0;
    }
    if (s->floats && !(d->floats = gc_malloc2(s->n ? s->n : 1, sizeof(float)))) return -1;
    if (s->floats && s->n) memcpy(d->floats, s->floats, s->n * sizeof(float));
    if (s->ints && !(d->ints = gc_malloc2(s->n ? s->n : 1, sizeof(int64_t)))) return -1;
    if (s->ints && s->n) memcpy(d->ints, s->ints, s->n * sizeof(int64_t));
    if (s->strings) {
        if (!(d->strings = gc_calloc2(s->n ? s->n : 1, sizeof(char *)))) return -1;
        for (size_t i = 0; i < s->n; i++)
            if (!(d->strings[i] = gc_strdup(s->strings[i] ? s->strings[i] : ""))) return -1;
    }
    d->t = s->t;
    d->t.data = NULL;
    if (s->t.data) {
        int ok = 0;
        size_t b = gc_tensor_bytes(s->t.dtype, &s->t.shape, &ok);
        if (!ok || !(d->t.data = malloc(b ? b : 1))) return -1;
        memcpy(d->t.data, s->t.data, b);
    }
    return 0;
}

/* d <- s as loaded, before binding and folding; nodes removed by BatchNormalization folding are
 * left out (their effect already lives in the Conv's folded weights). */
static gcam_status clone_graph(gc_model *d, const gc_model *s) {
    gc_err *err = &d->err;
    d->opset = s->opset;
    d->fold_bn = 0;
    if (!(d->producer = gc_strdup(s->producer ? s->producer : ""))) goto oom;
    int *remap = gc_malloc2((size_t)s->n_nodes + 1, sizeof(int));
    if (!remap) goto oom;
    int nn = 0;
    for (int i = 0; i < s->n_nodes; i++) {
        const gc_node *n = &s->nodes[i];
        remap[i] = n->folded && n->n_in == 0 && n->n_out == 0 ? -1 : nn++;
    }
    for (int v = 0; v < s->n_values; v++) {
        const gc_value *sv = &s->values[v];
        int idx = gc_model_add_value(d, sv->name);
        if (idx != v) {
            free(remap);
            if (idx == -2) return gc_fail(err, GCAM_E_INTERNAL, "tensor name '%s' twice in a loaded model", sv->name);
            goto oom;
        }
        gc_value *dv = &d->values[idx];
        dv->dtype = sv->dtype;
        dv->shape = sv->shape;
        dv->is_input = sv->is_input;
        dv->is_output = sv->is_output;
        dv->producer = sv->producer >= 0 ? remap[sv->producer] : -1;
        for (int k = 0; k < GC_MAX_DIMS; k++)
            if (sv->dim_names[k] && !(dv->dim_names[k] = gc_strdup(sv->dim_names[k]))) goto oom_remap;
        if (sv->const_data && sv->producer < 0) { /* initialisers (and BN-folded weights) */
            int ok = 0;
            size_t b = gc_tensor_bytes(sv->dtype, &sv->shape, &ok);
            if (!ok || !(dv->const_data = malloc(b ? b : 1))) goto oom_remap;
            memcpy(dv->const_data, sv->const_data, b);
        } else if (sv->producer >= 0 && s->nodes[sv->producer].folded) {
            dv->shape.ndim = -1; /* recomputed by folding */
            dv->dtype = GCAM_UNDEFINED;
        }
    }
    d->nodes = gc_calloc2((size_t)nn + 1, sizeof(gc_node));
    d->inputs = gc_calloc2((size_t)s->n_inputs + 1, sizeof(int));
    d->outputs = gc_calloc2((size_t)s->n_outputs + 1, sizeof(int));
    if (!d->nodes || !d->inputs || !d->outputs) goto oom_remap;
    memcpy(d->inputs, s->inputs, sizeof(int) * (size_t)s->n_inputs);
    memcpy(d->outputs, s->outputs, sizeof(int) * (size_t)s->n_outputs);
    d->n_inputs = s->n_inputs;
    d->n_outputs = s->n_outputs;
    for (int i = 0; i < s->n_nodes; i++) {
        if (remap[i] < 0) continue;
        const gc_node *sn = &s->nodes[i];
        gc_node *dn = &d->nodes[d->n_nodes++];
        dn->op = -1;
        dn->opset = sn->opset;
        dn->n_in = sn->n_in;
        dn->n_out = sn->n_out;
        dn->name = gc_strdup(sn->name);
        dn->op_type = gc_strdup(sn->op_type);
        dn->domain = gc_strdup(sn->domain);
        dn->in = gc_malloc2((size_t)sn->n_in + 1, sizeof(int));
        dn->out = gc_malloc2((size_t)sn->n_out + 1, sizeof(int));
        dn->attrs = gc_calloc2((size_t)sn->n_attrs + 1, sizeof(gc_attr));
        if (!dn->name || !dn->op_type || !dn->domain || !dn->in || !dn->out || !dn->attrs) goto oom_remap;
        memcpy(dn->in, sn->in, sizeof(int) * (size_t)sn->n_in);
        memcpy(dn->out, sn->out, sizeof(int) * (size_t)sn->n_out);
        for (int a = 0; a < sn->n_attrs; a++) {
            dn->n_attrs++;
            if (copy_attr(&dn->attrs[a], &sn->attrs[a])) goto oom_remap;
        }
    }
    free(remap);
    return GCAM_OK;
oom_remap:
    free(remap);
oom:
    return gc_fail(err, GCAM_E_NOMEM, "out of memory copying the model");
}

static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Replaces the float tensor's values by normals of its own mean and standard deviation. */
static gcam_status randomize_tensor(gc_value *v, uint64_t state, gc_err *err) {
    int64_t n = gc_shape_numel(&v->shape);
    if (n <= 0) return GCAM_OK;
    float *x = v->const_data;
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    for (int64_t i = 0; i < n; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
    double sd = sqrt(var / (double)n);
    if (!isfinite(mean) || !isfinite(sd))
        return gc_fail(err, GCAM_E_NUMERIC, "weight '%s' holds NaN or Inf", v->name);
    gc_normal_stream g = {.state = state};
    gc_normal_fill(x, (size_t)n, &g);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(mean + sd * (double)x[i]);
    return GCAM_OK;
}

gcam_status gc_model_randomize(gcam_model **out, const gcam_model *m, int top_k, uint64_t seed) {
    if (!out) return GCAM_E_ARG;
    *out = calloc(1, sizeof **out);
    if (!*out) return GCAM_E_NOMEM;
    gc_model *d = &(*out)->m;
    if (!m) return gc_fail(&d->err, GCAM_E_ARG, "no model");
    const gc_model *s = gc_model_of(m);
    if (s->n_unsupported)
        return gc_fail(&d->err, GCAM_E_UNSUPPORTED, "the model has unsupported ops: it cannot be copied");
    gcam_status rc = clone_graph(d, s);
    if (rc) return rc;
    int *layers = gc_malloc2((size_t)s->n_nodes + 1, sizeof(int));
    uint8_t *mark = calloc((size_t)s->n_values + 1, 1), *done = calloc((size_t)s->n_values + 1, 1);
    int L = layers ? param_layers(s, layers) : -1;
    if (!layers || !mark || !done || L < 0) {
        rc = gc_fail(&d->err, GCAM_E_NOMEM, "out of memory");
        goto out;
    }
    for (int j = 0; j < L && j < top_k && !rc; j++) {
        const gc_node *nd = &s->nodes[layers[j]];
        int q = 0;
        for (int k = 0; k < nd->n_in && !rc; k++) {
            if (!weight_slot(nd, k)) continue;
            memset(mark, 0, (size_t)s->n_values);
            weight_sources(s, nd->in[k], mark, 0);
            for (int v = 0; v < s->n_values && !rc; v++) {
                if (!mark[v] || done[v]) continue;
                done[v] = 1; /* a tensor shared by two layers: randomised once, by the upper one */
                uint64_t st = mix64(seed ^ mix64(((uint64_t)(j + 1) << 32) | (uint64_t)q++));
                rc = randomize_tensor(&d->values[v], st, &d->err);
            }
        }
    }
    if (!rc) rc = gc_model_finish(d, 0);
out:
    free(layers);
    free(mark);
    free(done);
    return rc;
}

#include "model.h"

#include <math.h>
#include <sys/mman.h>

#include "../ops/ops.h"

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

int gc_model_find_value(const gc_model *m, const char *name) {
    if (!m->name_index_cap || !name) return -1;
    size_t mask = m->name_index_cap - 1;
    for (size_t i = hash_str(name) & mask;; i = (i + 1) & mask) {
        int v = m->name_index[i];
        if (v < 0) return -1;
        if (strcmp(m->values[v].name, name) == 0) return v;
    }
}

static int index_insert(gc_model *m, int v) {
    size_t mask = m->name_index_cap - 1;
    for (size_t i = hash_str(m->values[v].name) & mask;; i = (i + 1) & mask) {
        if (m->name_index[i] < 0) {
            m->name_index[i] = v;
            return 0;
        }
    }
}

static int grow_index(gc_model *m) {
    size_t cap = m->name_index_cap ? m->name_index_cap * 2 : 256;
    int *idx = gc_malloc2(cap, sizeof(int));
    if (!idx) return -1;
    for (size_t i = 0; i < cap; i++) idx[i] = -1;
    free(m->name_index);
    m->name_index = idx;
    m->name_index_cap = cap;
    for (int v = 0; v < m->n_values; v++) index_insert(m, v);
    return 0;
}

int gc_model_add_value(gc_model *m, const char *name) {
    if (gc_model_find_value(m, name) >= 0) return -2;
    if (m->n_values == m->cap_values) {
        int cap = m->cap_values ? m->cap_values * 2 : 256;
        if (cap > (1 << 26)) return -1;
        gc_value *nv = realloc(m->values, (size_t)cap * sizeof(gc_value));
        if (!nv) return -1;
        m->values = nv;
        m->cap_values = cap;
    }
    /* keep the index at most half full */
    if ((size_t)(m->n_values + 1) * 2 > m->name_index_cap && grow_index(m)) return -1;
    gc_value *v = &m->values[m->n_values];
    memset(v, 0, sizeof *v);
    v->name = gc_strdup(name);
    if (!v->name) return -1;
    v->shape.ndim = -1;
    v->producer = -1;
    int idx = m->n_values++;
    index_insert(m, idx);
    return idx;
}

static void free_attr(gc_attr *a) {
    free(a->name);
    free(a->s);
    free(a->floats);
    free(a->ints);
    if (a->strings)
        for (size_t i = 0; i < a->n; i++) free(a->strings[i]);
    free(a->strings);
    free(a->t.data);
}

void gc_model_destroy(gc_model *m) {
    for (int i = 0; i < m->n_nodes; i++) {
        gc_node *n = &m->nodes[i];
        free(n->name);
        free(n->op_type);
        free(n->domain);
        free(n->in);
        free(n->out);
        for (int a = 0; a < n->n_attrs; a++) free_attr(&n->attrs[a]);
        free(n->attrs);
        free(n->params);
        free(n->kcache);
    }
    free(m->nodes);
    for (int i = 0; i < m->n_values; i++) {
        free(m->values[i].name);
        if (!m->values[i].const_in_region) free(m->values[i].const_data);
        for (int d = 0; d < GC_MAX_DIMS; d++) free(m->values[i].dim_names[d]);
    }
    free(m->values);
    free(m->inputs);
    free(m->outputs);
    free(m->name_index);
    free(m->producer);
    for (int i = 0; i < m->n_unsupported; i++) free(m->unsupported[i]);
    free(m->unsupported);
    for (int i = 0; i < m->n_nodes; i++) {
        if (m->node_in_names) free(m->node_in_names[i]);
        if (m->node_out_names) free(m->node_out_names[i]);
    }
    free(m->node_in_names);
    free(m->node_out_names);
    for (int i = 0; i < m->n_regions; i++)
        if (m->regions[i].size) munmap(m->regions[i].base, m->regions[i].size);
    free(m->regions);
}

int gc_model_add_region(gc_model *m, void *base, size_t size, int file) {
    if (m->n_regions == m->cap_regions) {
        int cap = m->cap_regions ? m->cap_regions * 2 : 8;
        if (cap > (1 << 24)) return -1;
        gc_region *r = realloc(m->regions, (size_t)cap * sizeof *r);
        if (!r) return -1;
        m->regions = r;
        m->cap_regions = cap;
    }
    m->regions[m->n_regions++] = (gc_region){.base = base, .size = size, .file = file};
    return 0;
}

gc_region *gc_model_region(gc_model *m, const void *base) {
    for (int i = m->n_regions - 1; i >= 0; i--) /* the newest first: the loader asks about those */
        if (m->regions[i].base == base) return &m->regions[i];
    return NULL;
}

void gc_model_drop_region(gc_model *m, const void *base) {
    gc_region *r = gc_model_region(m, base);
    if (!r) return;
    if (r->size) munmap(r->base, r->size);
    *r = m->regions[--m->n_regions];
}

/* Kahn's algorithm; nodes are permuted in place and value producers renumbered. */
static gcam_status topo_sort(gc_model *m) {
    int n = m->n_nodes;
    if (n <= 0) return GCAM_OK;
    int *indeg = gc_calloc2((size_t)n, sizeof(int));
    int *order = gc_calloc2((size_t)n, sizeof(int));
    int *cons_count = gc_calloc2((size_t)m->n_values + 1, sizeof(int));
    int *cons_start = gc_calloc2((size_t)m->n_values + 2, sizeof(int));
    gc_node *sorted = gc_calloc2((size_t)n, sizeof(gc_node));
    int *cons = NULL;
    gcam_status rc = GCAM_OK;
    if (!indeg || !order || !cons_count || !cons_start || !sorted) {
        rc = gc_fail(&m->err, GCAM_E_NOMEM, "out of memory");
        goto out;
    }
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < m->nodes[i].n_in; k++) {
            int v = m->nodes[i].in[k];
            if (v >= 0 && m->values[v].producer >= 0) {
                indeg[i]++;
                cons_count[v]++;
                total++;
            }
        }
    }
    cons = gc_calloc2(total + 1, sizeof(int));
    if (!cons) {
        rc = gc_fail(&m->err, GCAM_E_NOMEM, "out of memory");
        goto out;
    }
    for (int v = 0; v < m->n_values; v++) cons_start[v + 1] = cons_start[v] + cons_count[v];
    memset(cons_count, 0, sizeof(int) * (size_t)m->n_values);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++) {
            int v = m->nodes[i].in[k];
            if (v >= 0 && m->values[v].producer >= 0) cons[cons_start[v] + cons_count[v]++] = i;
        }
    int head = 0, tail = 0;
    for (int i = 0; i < n; i++)
        if (indeg[i] == 0) order[tail++] = i; /* stable: keeps the file's order when it is valid */
    while (head < tail) {
        int i = order[head++];
        for (int k = 0; k < m->nodes[i].n_out; k++) {
            int v = m->nodes[i].out[k];
            if (v < 0) continue;
            for (int c = cons_start[v]; c < cons_start[v] + cons_count[v]; c++)
                if (--indeg[cons[c]] == 0) order[tail++] = cons[c];
        }
    }
    if (tail < n) {
        int bad = -1;
        for (int i = 0; i < n && bad < 0; i++)
            if (indeg[i] > 0) bad = i;
        rc = gc_fail(&m->err, GCAM_E_FORMAT, "the graph has a cycle through node '%s' (%s)",
                     m->nodes[bad].name, m->nodes[bad].op_type);
        goto out;
    }
    for (int i = 0; i < n; i++) sorted[i] = m->nodes[order[i]];
    memcpy(m->nodes, sorted, sizeof(gc_node) * (size_t)n);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < m->nodes[i].n_out; k++)
            if (m->nodes[i].out[k] >= 0) m->values[m->nodes[i].out[k]].producer = i;
out:
    free(indeg);
    free(order);
    free(cons_count);
    free(cons_start);
    free(cons);
    free(sorted);
    return rc;
}

static gcam_status add_unsupported(gc_model *m, const gc_node *n, const char *why) {
    char line[600];
    snprintf(line, sizeof line, "%s (node '%s', domain '%s', opset %d): %s", n->op_type, n->name,
             n->domain, n->opset, why);
    char **u = realloc(m->unsupported, sizeof(char *) * (size_t)(m->n_unsupported + 1));
    if (!u) return gc_fail(&m->err, GCAM_E_NOMEM, "out of memory");
    m->unsupported = u;
    if (!(u[m->n_unsupported] = gc_strdup(line))) return gc_fail(&m->err, GCAM_E_NOMEM, "out of memory");
    m->n_unsupported++;
    return GCAM_OK;
}

/* Constants folded at load (their outputs stay for the model's lifetime) may take this much: the
 * same default as the plan's cap on activation memory. A tiny initialiser expanded by
 * ConstantOfShape/Expand/Tile would otherwise be allocated whatever its size. */
#define GC_FOLD_MAX_BYTES ((size_t)8 << 30) /* the default of gcam_load_options.max_memory */

gcam_status gc_eval_node(const gc_node *n, gc_tensor *const *ins, gc_tensor *outs, gc_err *err, size_t *budget,
                         size_t cap, const char *when) {
    const gc_opdef *d = gc_op_get(n->op);
    gc_kctx k;
    memset(&k, 0, sizeof k);
    k.node = n;
    k.params = n->params;
    k.n_in = n->n_in;
    k.n_out = n->n_out;
    k.err = err;
    k.nthreads = 1;
    if (n->n_in > GC_MAX_IO || n->n_out > GC_MAX_IO)
        return gc_fail(err, GCAM_E_UNSUPPORTED, "node '%s' (%s): more than %d inputs or outputs", n->name,
                       n->op_type, GC_MAX_IO);
    for (int i = 0; i < n->n_in; i++) k.in[i] = ins[i];
    for (int j = 0; j < n->n_out; j++) {
        memset(&outs[j], 0, sizeof outs[j]);
        k.out[j] = n->out[j] >= 0 ? &outs[j] : NULL;
    }
    gcam_status rc = d->infer(&k);
    if (rc) return rc;
    size_t out_bytes = 0, ob[GC_MAX_IO] = {0};
    for (int j = 0; j < n->n_out && !rc; j++) {
        if (!k.out[j]) continue;
        int ok = 0;
        ob[j] = gc_tensor_bytes(outs[j].dtype, &outs[j].shape, &ok);
        if (!ok || gc_add_sz(&out_bytes, out_bytes, ob[j]))
            rc = gc_fail(err, GCAM_E_SHAPE, "node '%s' (%s): output %d has an invalid shape", n->name, n->op_type, j);
    }
    size_t sb = (!rc && d->scratch_bytes) ? d->scratch_bytes(&k) : 0;
    if (!rc) {
        size_t need;
        if (gc_add_sz(&need, out_bytes, sb) || need > *budget) {
            char used[64] = "";
            if (*budget < cap) snprintf(used, sizeof used, " (%zu bytes used already)", cap - *budget);
            return gc_fail(err, GCAM_E_LIMIT, "node '%s' (%s): folding its constant output %s needs %zu bytes "
                           "(%.1f MiB), which exceeds the memory limit of %zu bytes (%.1f MiB) for constants%s",
                           n->name, n->op_type, when, out_bytes, (double)out_bytes / 1048576.0, cap,
                           (double)cap / 1048576.0, used);
        }
        *budget -= out_bytes;
    }
    for (int j = 0; j < n->n_out && !rc; j++)
        if (k.out[j] && !(outs[j].data = malloc(ob[j] ? ob[j] : 1)))
            rc = gc_fail(err, GCAM_E_NOMEM, "out of memory");
    if (!rc && sb && !(k.scratch = aligned_alloc(64, gc_align64(sb)))) rc = gc_fail(err, GCAM_E_NOMEM, "out of memory");
    k.scratch_size = sb;
    if (!rc) rc = d->forward(&k);
    free(k.scratch);
    if (rc)
        for (int j = 0; j < n->n_out; j++) {
            free(outs[j].data);
            outs[j].data = NULL;
        }
    return rc;
}

/* Evaluates nodes whose inputs are all known at load (Constant, weight transforms, shape
 * arithmetic on initialisers). Their outputs become constants; the nodes never run again. */
static gcam_status fold_constants(gc_model *m) {
    const size_t cap = m->fold_max ? m->fold_max : GC_FOLD_MAX_BYTES;
    size_t budget = cap;
    for (int i = 0; i < m->n_nodes; i++) {
        gc_node *n = &m->nodes[i];
        if (n->op < 0 || n->folded) continue;
        int all_const = 1;
        for (int k = 0; k < n->n_in && all_const; k++)
            if (n->in[k] >= 0 && !m->values[n->in[k]].const_data) all_const = 0;
        if (!all_const) continue;
        gc_tensor tin[GC_MAX_IO], *ins[GC_MAX_IO], outs[GC_MAX_IO];
        for (int k = 0; k < n->n_in; k++) {
            ins[k] = NULL;
            if (n->in[k] < 0) continue;
            gc_value *v = &m->values[n->in[k]];
            tin[k] = (gc_tensor){.dtype = v->dtype, .shape = v->shape, .data = v->const_data};
            ins[k] = &tin[k];
        }
        gcam_status rc = gc_eval_node(n, ins, outs, &m->err, &budget, cap, "at load");
        if (rc) return rc;
        for (int j = 0; j < n->n_out; j++) {
            if (n->out[j] < 0) continue;
            gc_value *v = &m->values[n->out[j]];
            v->dtype = outs[j].dtype;
            v->shape = outs[j].shape;
            v->const_data = outs[j].data;
        }
        n->folded = 1;
    }
    return GCAM_OK;
}

/* Folds inference BatchNormalization into the Conv before it: W' = W * g, b' = (b - mean) * g + beta
 * with g = scale / sqrt(var + eps), per output channel. Only when the Conv's output feeds the BN
 * alone and every parameter is constant; the BN output keeps its name (now produced by the Conv). */
static gcam_status fold_batchnorm(gc_model *m) {
    for (int i = 0; i < m->n_nodes; i++) {
        gc_node *bn = &m->nodes[i];
        if (bn->op != GC_OP_BatchNormalization || bn->folded || bn->n_in < 5 || bn->n_out < 1) continue;
        int x = bn->in[0];
        if (x < 0 || m->values[x].producer < 0 || m->values[x].is_output) continue;
        gc_node *cv = &m->nodes[m->values[x].producer];
        if (cv->op != GC_OP_Conv || cv->folded || cv->n_in < 2 || cv->in[1] < 0 || !m->values[cv->in[1]].const_data) continue;
        if (cv->n_in > 2 && cv->in[2] >= 0 && !m->values[cv->in[2]].const_data) continue;
        int uses = 0;
        for (int j = 0; j < m->n_nodes; j++)
            for (int k = 0; k < m->nodes[j].n_in; k++) uses += m->nodes[j].in[k] == x;
        if (uses != 1) continue;
        int ok = 1;
        for (int k = 1; k < 5; k++) ok &= bn->in[k] >= 0 && m->values[bn->in[k]].const_data != NULL;
        for (int k = 1; k < bn->n_out; k++) ok &= bn->out[k] < 0; /* training outputs: leave alone */
        const gc_value *wv = &m->values[cv->in[1]];
        if (!ok || wv->dtype != GC_F32 || wv->shape.ndim < 3) continue;
        int64_t cout = wv->shape.d[0], per = gc_shape_numel(&wv->shape) / (cout ? cout : 1);
        const float *sc = m->values[bn->in[1]].const_data, *be = m->values[bn->in[2]].const_data;
        const float *mu = m->values[bn->in[3]].const_data, *va = m->values[bn->in[4]].const_data;
        for (int k = 1; k < 5; k++) ok &= gc_shape_numel(&m->values[bn->in[k]].shape) == cout;
        if (!ok) continue;
        float eps = gc_attr_float(bn, "epsilon", 1e-5f);
        float *nw = gc_malloc2((size_t)(cout * per), sizeof(float)), *nb = gc_malloc2((size_t)cout, sizeof(float));
        int *nin = gc_malloc2(3, sizeof(int));
        char name[600];
        if (!nw || !nb || !nin) {
            free(nw); free(nb); free(nin);
            return gc_fail(&m->err, GCAM_E_NOMEM, "out of memory");
        }
        const float *w = wv->const_data;
        const float *b = cv->n_in > 2 && cv->in[2] >= 0 ? m->values[cv->in[2]].const_data : NULL;
        for (int64_t o = 0; o < cout; o++) {
            double g = (double)sc[o] / sqrt((double)va[o] + (double)eps);
            for (int64_t e = 0; e < per; e++) nw[o * per + e] = (float)(w[o * per + e] * g);
            nb[o] = (float)(((b ? b[o] : 0.0) - mu[o]) * g + be[o]);
        }
        gc_shape wshape = wv->shape, bshape = {.ndim = 1, .d = {cout}};
        snprintf(name, sizeof name, "%s/bn_folded_weight", bn->name);
        int vw = gc_model_add_value(m, name);
        snprintf(name, sizeof name, "%s/bn_folded_bias", bn->name);
        int vb = gc_model_add_value(m, name);
        if (vw < 0 || vb < 0) {
            free(nw); free(nb); free(nin);
            if (vw == -2 || vb == -2) continue;
            return gc_fail(&m->err, GCAM_E_NOMEM, "out of memory");
        }
        m->values[vw].dtype = GC_F32;
        m->values[vw].shape = wshape;
        m->values[vw].const_data = nw;
        m->values[vb].dtype = GC_F32;
        m->values[vb].shape = bshape;
        m->values[vb].const_data = nb;
        nin[0] = cv->in[0];
        nin[1] = vw;
        nin[2] = vb;
        free(cv->in);
        cv->in = nin;
        cv->n_in = 3;
        cv->out[0] = bn->out[0];
        m->values[bn->out[0]].producer = (int)(cv - m->nodes);
        m->values[x].producer = -1; /* the pre-BN tensor no longer exists */
        bn->folded = 1;
        bn->n_out = 0;
        bn->n_in = 0;
    }
    return GCAM_OK;
}

/* The node's input and output counts against the op's (counting omitted optional ones): kernels
 * would ignore extras, so a model relying on them would silently compute something else. */
static gcam_status check_arity(gc_model *m, const gc_node *n) {
    gc_arity a = gc_op_arity(n->op, n->opset);
    const char *what = "input";
    int have = n->n_in, lo = a.min_in, hi = a.max_in;
    if (n->n_in >= a.min_in && n->n_in <= a.max_in) {
        what = "output";
        have = n->n_out;
        lo = a.min_out;
        hi = a.max_out;
        if (n->n_out >= a.min_out && n->n_out <= a.max_out) return GCAM_OK;
    }
    char got[32];
    if (have) snprintf(got, sizeof got, "%d %s%s", have, what, have == 1 ? "" : "s");
    else snprintf(got, sizeof got, "no %ss", what);
    if (have > hi)
        return gc_fail(&m->err, GCAM_E_FORMAT, "node '%s' (%s): %s, at most %d allowed (opset %d)", n->name,
                       n->op_type, got, hi, n->opset);
    return gc_fail(&m->err, GCAM_E_FORMAT, "node '%s' (%s): %s, %s%d %s%s required (opset %d)", n->name, n->op_type,
                   got, lo < hi ? "at least " : "", lo, what, lo == 1 ? "" : "s", n->opset);
}

gcam_status gc_model_finish(gc_model *m, int allow_unsupported) {
    gcam_status rc = topo_sort(m);
    if (rc) return rc;
    for (int i = 0; i < m->n_nodes; i++) {
        gc_node *n = &m->nodes[i];
        int is_default = !n->domain[0] || strcmp(n->domain, "ai.onnx") == 0;
        if (!is_default) {
            if ((rc = add_unsupported(m, n, "custom domain"))) return rc;
            continue;
        }
        if (n->opset <= 0)
            return gc_fail(&m->err, GCAM_E_FORMAT, "node '%s' (%s) is in the default ONNX domain but the model "
                           "imports no opset for it", n->name, n->op_type);
        n->op = gc_op_find(n->op_type);
        if (n->op < 0) {
            if ((rc = add_unsupported(m, n, "op not implemented"))) return rc;
            continue;
        }
        if (n->n_in > GC_MAX_IO || n->n_out > GC_MAX_IO) {
            n->op = -1;
            if ((rc = add_unsupported(m, n, "too many inputs or outputs"))) return rc;
            continue;
        }
        /* every supported op writes out[0], except those whose outputs are all optional (LSTM's Y
         * may be "" when only Y_h is wanted): they need one output of any kind */
        int n_present = 0;
        for (int j = 0; j < n->n_out; j++) n_present += n->out[j] >= 0;
        if (n->n_out < 1 || (n->out[0] < 0 && (n_present == 0 || gc_op_arity(n->op, n->opset).min_out > 0)))
            return gc_fail(&m->err, GCAM_E_FORMAT, "node '%s' (%s) has no output", n->name, n->op_type);
        const gc_opdef *d = gc_op_get(n->op);
        if (n->opset < d->min_opset) {
            n->op = -1;
            if ((rc = add_unsupported(m, n, "opset too old for this op"))) return rc;
            continue;
        }
        if ((rc = check_arity(m, n))) return rc;
        if (d->parse) {
            gc_err perr = {0};
            rc = d->parse(n, &perr);
            if (rc == GCAM_E_UNSUPPORTED) {
                n->op = -1;
                if ((rc = add_unsupported(m, n, perr.msg))) return rc;
                continue;
            }
            if (rc) return gc_fail(&m->err, rc, "%s", perr.msg);
        }
    }
    if (m->n_unsupported && !allow_unsupported) {
        char msg[sizeof m->err.msg];
        size_t used = (size_t)snprintf(msg, sizeof msg, "%d unsupported op%s: ", m->n_unsupported,
                                       m->n_unsupported > 1 ? "s" : "");
        for (int i = 0; i < m->n_unsupported && used < sizeof msg; i++)
            used += (size_t)snprintf(msg + used, sizeof msg - used, "%s%s", i ? "; " : "", m->unsupported[i]);
        return gc_fail(&m->err, GCAM_E_UNSUPPORTED, "%s", msg);
    }
    if (m->n_unsupported) return GCAM_OK; /* inspection only: no folding through unknown ops */
    if (m->fold_bn && (rc = fold_batchnorm(m))) return rc;
    return fold_constants(m);
}

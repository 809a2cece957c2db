/* The context queries and transfers of engine.h, over the fields of plan.h. */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "plan.h"

gc_tensor *gc_ctx_value(const gcam_ctx *c, int v) { return &c->vals[v]; }

const gc_tensor *gc_ctx_gradient(const gcam_ctx *c, int v) {
    return c->grads && c->grads[v].data ? &c->grads[v] : NULL;
}

int gc_ctx_is_activation(const gcam_ctx *c, int v) { return c->vkind[v] == GC_V_RUNTIME; }
int gc_ctx_is_kept(const gcam_ctx *c, int v) { return c->kept[v] != 0; }
int gc_ctx_failed(const gcam_ctx *c) { return c->broken; }
int gc_ctx_num_steps(const gcam_ctx *c) { return c->n_steps; }
int gc_ctx_step_node(const gcam_ctx *c, int s) { return c->steps[s].node; }

int gc_ctx_first_step_after(const gcam_ctx *c, int v) {
    int p = c->m->values[v].producer;
    for (int s = 0; s < c->n_steps; s++)
        if (c->steps[s].node == p) return s + 1;
    return 0;
}

gcam_status gc_ctx_crossing_values(const gcam_ctx *c, int first, int **out, int *n) {
    const gc_model *m = c->m;
    *n = 0;
    *out = gc_malloc2((size_t)m->n_values + 1, sizeof(int));
    uint8_t *seen = calloc((size_t)m->n_values + 1, 1);
    if (!*out || !seen) {
        free(*out);
        *out = NULL;
        free(seen);
        return GCAM_E_NOMEM;
    }
    for (int s = first; s < c->n_steps; s++) {
        const gc_node *nd = &m->nodes[c->steps[s].node];
        for (int k = 0; k < nd->n_in; k++) {
            int v = nd->in[k];
            if (v < 0 || seen[v] || c->vkind[v] != GC_V_RUNTIME) continue;
            int p = m->values[v].producer, ps = -1;
            for (int t = 0; t < first && p >= 0; t++)
                if (c->steps[t].node == p) ps = t;
            if (p >= 0 && ps < 0) continue; /* computed by a step from `first` on */
            seen[v] = 1;
            (*out)[(*n)++] = v;
        }
    }
    free(seen);
    return GCAM_OK;
}

size_t gc_ctx_backward_weight_bytes(const gcam_ctx *c, int first) {
    const gc_model *m = c->m;
    uint8_t *seen = calloc((size_t)m->n_values + 1, 1);
    if (!seen) return 0;
    size_t wbytes = 0;
    for (int b = 0; b < c->n_bsteps; b++) {
        if (c->bsteps[b].fstep < first) continue;
        const gc_node *n = &m->nodes[c->bsteps[b].node];
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v < 0 || seen[v] || c->vkind[v] == GC_V_RUNTIME || c->vals[v].dtype != GC_F32) continue;
            seen[v] = 1;
            int ok = 0;
            size_t by = gc_tensor_bytes(GC_F32, &c->vals[v].shape, &ok);
            if (ok && !gc_add_sz(&by, wbytes, by)) wbytes = by;
        }
    }
    free(seen);
    return wbytes;
}

int gc_ctx_same_steps(const gcam_ctx *a, const gcam_ctx *b) {
    if (a->n_steps != b->n_steps) return 0;
    for (int s = 0; s < a->n_steps; s++)
        if (a->steps[s].node != b->steps[s].node) return 0;
    return 1;
}

int gc_ctx_backward_reads(const gcam_ctx *t, const gcam_ctx *src, int first,
                          int (*same_or_batched)(const gc_tensor *a, const gc_tensor *b, void *user), void *user,
                          int **out, int *n) {
    const gc_model *m = t->m;
    uint8_t *in_src = calloc((size_t)m->n_nodes + 1, 1), *seen = calloc((size_t)m->n_values + 1, 1);
    int *vals = gc_malloc2((size_t)m->n_values + 1, sizeof(int));
    int nv = 0, ok = 1;
    if (!in_src || !seen || !vals) {
        free(in_src);
        free(seen);
        free(vals);
        return -1;
    }
    for (int b = 0; b < src->n_bsteps; b++) in_src[src->bsteps[b].node] = 1;
    for (int b = 0; b < t->n_bsteps && ok; b++) {
        const gc_bstep *bs = &t->bsteps[b];
        const gc_node *nd = &m->nodes[bs->node];
        const gc_opdef *d = gc_op_get(nd->op);
        if (!in_src[bs->node] || bs->fstep < first || bs->k.aux) {
            ok = 0;
            break;
        }
        for (int io = 0; io < nd->n_in + nd->n_out; io++) {
            int isin = io < nd->n_in, v = isin ? nd->in[io] : nd->out[io - nd->n_in];
            uint64_t bit = UINT64_C(1) << (isin ? io : io - nd->n_in);
            if (v < 0 || seen[v] || t->vkind[v] != GC_V_RUNTIME || !((isin ? d->bw_in : d->bw_out) & bit)) continue;
            seen[v] = 1;
            const gc_tensor *a = &src->vals[v];
            if (!same_or_batched(a, &t->vals[v], user) || !a->data) {
                ok = 0;
                break;
            }
            vals[nv++] = v;
        }
    }
    free(in_src);
    free(seen);
    if (!ok) {
        free(vals);
        return 0;
    }
    *out = vals;
    *n = nv;
    return 1;
}

void gc_ctx_copy_values(gcam_ctx *dst, const gcam_ctx *src, const int *v, int n, int64_t copies) {
    for (int i = 0; i < n; i++) {
        int ok = 0;
        const gc_tensor *a = &src->vals[v[i]];
        gc_tensor *b = &dst->vals[v[i]];
        size_t by = gc_tensor_bytes(a->dtype, &a->shape, &ok);
        int64_t k = gc_shape_eq(&a->shape, &b->shape) ? 1 : copies;
        for (int64_t j = 0; j < k && by; j++) memcpy((char *)b->data + (size_t)j * by, a->data, by);
    }
}

void gc_ctx_mark_forward_done(gcam_ctx *c) { c->has_run = 1; }

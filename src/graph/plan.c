/* Planning an execution context and running it.
 *
 * Timeline: forward steps 0..F-1, the seed at F, backward steps F+1..F+B, END = F+B+1.
 * Every runtime buffer (activation, gradient, aux, scratch) gets a [first, last] interval on
 * that timeline and a size; one greedy packing gives each an offset in a single arena that is
 * allocated once. Runs then only call kernels. */
#include "plan.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "model.h"

#define GC_DEFAULT_MAX_MEMORY ((size_t)8 << 30)

/* GCAM_PROFILE's counters: one row per op type (prof_report) */
typedef struct gc_prof_row {
    double fw, bw;
    long nfw, nbw;
} gc_prof_row;


typedef struct gc_buf {
    size_t size;
    int first, last;
    size_t offset;
    void **target; /* where to store the pointer once the arena exists */
} gc_buf;

typedef struct gc_bufs {
    gc_buf *b;
    int n, cap;
} gc_bufs;

static int bufs_add(gc_bufs *bs, size_t size, int first, int last, void **target) {
    if (bs->n == bs->cap) {
        int cap = bs->cap ? bs->cap * 2 : 256;
        gc_buf *nb = realloc(bs->b, sizeof(gc_buf) * (size_t)cap);
        if (!nb) return -1;
        bs->b = nb;
        bs->cap = cap;
    }
    size_t a = gc_align64(size ? size : 1);
    if (!a) return -1;
    bs->b[bs->n++] = (gc_buf){.size = a, .first = first, .last = last, .target = target};
    return 0;
}

static int cmp_size_desc(const void *a, const void *b) {
    const gc_buf *x = *(const gc_buf *const *)a, *y = *(const gc_buf *const *)b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->first - y->first;
}

static int cmp_offset(const void *a, const void *b) {
    const gc_buf *x = *(const gc_buf *const *)a, *y = *(const gc_buf *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Greedy packing, largest first: each buffer goes to the lowest offset that does not collide
 * with an already placed buffer whose interval overlaps its own. Returns the arena size, or
 * SIZE_MAX on failure. */
static size_t pack(gc_bufs *bs) {
    int n = bs->n;
    if (n == 0) return 0;
    gc_buf **order = gc_malloc2((size_t)n, sizeof(gc_buf *));
    gc_buf **live = gc_malloc2((size_t)n, sizeof(gc_buf *));
    if (!order || !live) {
        free(order);
        free(live);
        return SIZE_MAX;
    }
    for (int i = 0; i < n; i++) order[i] = &bs->b[i];
    qsort(order, (size_t)n, sizeof *order, cmp_size_desc);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        gc_buf *b = order[i];
        int nl = 0;
        for (int j = 0; j < i; j++)
            if (order[j]->first <= b->last && b->first <= order[j]->last) live[nl++] = order[j];
        qsort(live, (size_t)nl, sizeof *live, cmp_offset);
        size_t off = 0;
        for (int j = 0; j < nl; j++) {
            if (live[j]->offset >= off && live[j]->offset - off >= b->size) break;
            size_t end;
            if (gc_add_sz(&end, live[j]->offset, live[j]->size)) { total = SIZE_MAX; goto out; }
            if (end > off) off = end;
        }
        b->offset = off;
        size_t end;
        if (gc_add_sz(&end, off, b->size)) { total = SIZE_MAX; goto out; }
        if (end > total) total = end;
    }
out:
    free(order);
    free(live);
    return total;
}

static const char *vname(const gcam_ctx *c, int v) { return c->m->values[v].name; }

/* Gradient v, written first by backward step bst through its slot k: assigned there (bit k of
 * *fresh) when the kernel can (assign: it honours the bit, and v reaches it through that slot
 * alone: one pass less over memory, no zeroing), else zeroed just before the step (once). */
static void first_write(gc_bstep *bst, int v, int assign, int k, uint64_t *fresh) {
    int dup = 0;
    for (int z = 0; z < bst->n_zero; z++) dup |= bst->zero[z] == v;
    if (assign && k < 64) *fresh |= UINT64_C(1) << k;
    else if (!dup) bst->zero[bst->n_zero++] = v;
}

static void fill_kctx(gcam_ctx *c, gc_kctx *k, const gc_node *n) {
    memset(k, 0, sizeof *k);
    k->node = n;
    k->params = n->params;
    k->n_in = n->n_in;
    k->n_out = n->n_out;
    k->err = &c->err;
    k->nthreads = c->nthreads;
    k->tune = &c->tune;
    for (int i = 0; i < n->n_in; i++) {
        k->in[i] = n->in[i] >= 0 ? &c->vals[n->in[i]] : NULL;
        if (n->in[i] >= 0 && c->vkind[n->in[i]] == GC_V_CONST) k->const_in |= UINT64_C(1) << i;
    }
    for (int j = 0; j < n->n_out; j++) k->out[j] = n->out[j] >= 0 ? &c->vals[n->out[j]] : NULL;
}

static int find_input(const gc_model *m, const gcam_feed *f, int pos) {
    if (f->name) {
        int v = gc_model_find_value(m, f->name);
        for (int i = 0; i < m->n_inputs; i++)
            if (m->inputs[i] == v) return i;
        return -1;
    }
    return pos < m->n_inputs ? pos : -1;
}

/* Binds graph inputs to the caller's shapes. */
static gcam_status bind_inputs(gcam_ctx *c, const gcam_feed *shapes, int n_shapes) {
    const gc_model *m = c->m;
    uint8_t *bound = calloc((size_t)m->n_inputs + 1, 1);
    if (!bound) return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
    gcam_status rc = GCAM_OK;
    for (int s = 0; s < n_shapes && !rc; s++) {
        const gcam_feed *f = &shapes[s];
        int i = find_input(m, f, s);
        if (i < 0) {
            rc = gc_fail(&c->err, GCAM_E_NOT_FOUND, "no graph input %s%s%s (the model's inputs: %d)",
                         f->name ? "'" : "#", f->name ? f->name : "", f->name ? "'" : "", m->n_inputs);
            break;
        }
        const gc_value *v = &m->values[m->inputs[i]];
        gc_tensor *t = &c->vals[m->inputs[i]];
        if (f->ndim < 0 || f->ndim > GC_MAX_DIMS || (f->ndim > 0 && !f->dims)) {
            rc = gc_fail(&c->err, GCAM_E_ARG, "input '%s': invalid rank %d", v->name, f->ndim);
            break;
        }
        if (v->shape.ndim >= 0 && v->shape.ndim != f->ndim) {
            rc = gc_fail(&c->err, GCAM_E_SHAPE, "input '%s' has rank %d in the model, got %d", v->name,
                         v->shape.ndim, f->ndim);
            break;
        }
        if (f->dtype != GCAM_UNDEFINED && f->dtype != v->dtype) {
            rc = gc_fail(&c->err, GCAM_E_ARG, "input '%s' is %s, got %s", v->name, gcam_dtype_str(v->dtype),
                         gcam_dtype_str(f->dtype));
            break;
        }
        t->shape.ndim = f->ndim;
        for (int d = 0; d < f->ndim; d++) {
            if (f->dims[d] < 0) {
                rc = gc_fail(&c->err, GCAM_E_ARG, "input '%s': negative dimension %lld", v->name, (long long)f->dims[d]);
                break;
            }
            if (v->shape.ndim >= 0 && v->shape.d[d] >= 0 && v->shape.d[d] != f->dims[d]) {
                char a[128], b[128];
                gc_shape bs = {.ndim = f->ndim};
                memcpy(bs.d, f->dims, sizeof(int64_t) * (size_t)f->ndim);
                rc = gc_fail(&c->err, GCAM_E_SHAPE, "input '%s' must have shape %s, got %s", v->name,
                             gc_shape_str(&v->shape, a, sizeof a), gc_shape_str(&bs, b, sizeof b));
                break;
            }
            t->shape.d[d] = f->dims[d];
        }
        bound[i] = 1;
        if (c->const_int_inputs && f->data && t->dtype != GC_F32) {
            int ok = 0;
            size_t bytes = gc_tensor_bytes(t->dtype, &t->shape, &ok);
            void *copy = ok ? malloc(bytes ? bytes : 1) : NULL;
            if (!copy) {
                rc = gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
                break;
            }
            memcpy(copy, f->data, bytes);
            t->data = copy;
            c->vkind[m->inputs[i]] = GC_V_FOLDED;
            c->folded_owned[c->n_folded_owned++] = copy;
        }
    }
    for (int i = 0; i < m->n_inputs && !rc; i++) {
        if (bound[i]) continue;
        const gc_value *v = &m->values[m->inputs[i]];
        if (gc_shape_numel(&v->shape) < 0) {
            char a[128];
            rc = gc_fail(&c->err, GCAM_E_ARG, "input '%s' has shape %s with unknown dimensions: give its shape",
                         v->name, gc_shape_str(&v->shape, a, sizeof a));
        }
        c->vals[m->inputs[i]].shape = v->shape;
    }
    free(bound);
    return rc;
}

/* Walks the graph once with the bound shapes: infers every shape, folds what depends only on
 * shapes and constants, and records the nodes that must run. */
static gcam_status infer_and_fold(gcam_ctx *c) {
    const gc_model *m = c->m;
    c->steps = gc_calloc2((size_t)m->n_nodes + 1, sizeof(gc_step));
    if (!c->steps) return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
    for (int i = 0; i < m->n_nodes; i++) {
        const gc_node *n = &m->nodes[i];
        if (n->folded) continue;
        if (n->op < 0) return gc_fail(&c->err, GCAM_E_UNSUPPORTED, "node '%s' (%s) is not supported", n->name, n->op_type);
        const gc_opdef *d = gc_op_get(n->op);
        int foldable = 1;
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v < 0) continue;
            if (c->vkind[v] == GC_V_NONE)
                return gc_fail(&c->err, GCAM_E_INTERNAL, "node '%s': input '%s' not computed", n->name, vname(c, v));
            if (c->vkind[v] == GC_V_RUNTIME && !(n->op == GC_OP_Shape || n->op == GC_OP_Size)) foldable = 0;
        }
        if (foldable) {
            gc_tensor *ins[GC_MAX_IO], outs[GC_MAX_IO];
            for (int k = 0; k < n->n_in; k++) ins[k] = n->in[k] >= 0 ? &c->vals[n->in[k]] : NULL;
            gcam_status rc = gc_eval_node(n, ins, outs, &c->err);
            if (rc) return rc;
            for (int j = 0; j < n->n_out; j++) {
                int v = n->out[j];
                if (v < 0) { free(outs[j].data); continue; }
                c->vals[v] = outs[j];
                c->vkind[v] = GC_V_FOLDED;
                c->folded_owned[c->n_folded_owned++] = outs[j].data;
            }
            continue;
        }
        gc_step *s = &c->steps[c->n_steps];
        s->node = i;
        fill_kctx(c, &s->k, n);
        for (int j = 0; j < n->n_out; j++) {
            int v = n->out[j];
            if (v < 0) continue;
            memset(&c->vals[v], 0, sizeof c->vals[v]);
        }
        gcam_status rc = d->infer(&s->k);
        if (rc) return rc;
        for (int j = 0; j < n->n_out; j++) {
            int v = n->out[j];
            if (v < 0) continue;
            int ok = 0;
            gc_tensor_bytes(c->vals[v].dtype, &c->vals[v].shape, &ok);
            if (!ok) {
                char a[128];
                return gc_fail(&c->err, GCAM_E_SHAPE, "node '%s' (%s): output '%s' has an invalid shape %s",
                               n->name, n->op_type, vname(c, v), gc_shape_str(&c->vals[v].shape, a, sizeof a));
            }
            c->vals[v].data = NULL;
            c->vkind[v] = GC_V_RUNTIME;
        }
        c->n_steps++;
    }
    return GCAM_OK;
}

/* Marks which values carry gradients and which nodes are differentiated. */
static gcam_status plan_backward_sets(gcam_ctx *c, uint8_t *gneed, uint8_t *active, int *step_of) {
    const gc_model *m = c->m;
    uint8_t *fwd = calloc((size_t)m->n_values + 1, 1), *bwd = calloc((size_t)m->n_values + 1, 1);
    if (!fwd || !bwd) {
        free(fwd);
        free(bwd);
        return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
    }
    for (int r = 0; r < c->n_req; r++) fwd[c->req[r]] = 1;
    for (int s = 0; s < c->n_steps; s++) {
        const gc_node *n = &m->nodes[c->steps[s].node];
        const gc_opdef *d = gc_op_get(n->op);
        int reach = 0;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && fwd[n->in[k]] && (d->diff_in & (UINT64_C(1) << k)) && d->backward) reach = 1;
        if (reach)
            for (int j = 0; j < n->n_out; j++)
                if (n->out[j] >= 0 && c->vals[n->out[j]].dtype == GC_F32) fwd[n->out[j]] = 1;
    }
    bwd[c->seed] = 1;
    for (int s = c->n_steps - 1; s >= 0; s--) {
        const gc_node *n = &m->nodes[c->steps[s].node];
        const gc_opdef *d = gc_op_get(n->op);
        int reach = 0;
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] >= 0 && bwd[n->out[j]] && fwd[n->out[j]]) reach = 1;
        if (!reach || !d->backward) continue;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && (d->diff_in & (UINT64_C(1) << k)) && fwd[n->in[k]]) bwd[n->in[k]] = 1;
    }
    for (int v = 0; v < m->n_values; v++) gneed[v] = fwd[v] && bwd[v] && c->vkind[v] == GC_V_RUNTIME;
    for (int s = 0; s < c->n_steps; s++) {
        const gc_node *n = &m->nodes[c->steps[s].node];
        const gc_opdef *d = gc_op_get(n->op);
        int out_ok = 0, in_ok = 0;
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] >= 0 && gneed[n->out[j]]) out_ok = 1;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && gneed[n->in[k]] && (d->diff_in & (UINT64_C(1) << k))) in_ok = 1;
        active[s] = out_ok && in_ok && d->backward;
        step_of[c->steps[s].node] = s;
    }
    int missing = -1;
    for (int r = 0; r < c->n_req && missing < 0; r++)
        if (!gneed[c->req[r]]) missing = c->req[r];
    free(fwd);
    free(bwd);
    if (missing >= 0)
        return gc_fail(&c->err, GCAM_E_ARG, "tensor '%s' does not influence the seed '%s' through differentiable "
                       "ops: no gradient can flow to it", vname(c, missing), vname(c, c->seed));
    return GCAM_OK;
}

static gcam_status plan_memory(gcam_ctx *c, const gcam_ctx_options *o) {
    const gc_model *m = c->m;
    int F = c->n_steps;
    gcam_status rc = GCAM_OK;
    int *first = gc_malloc2((size_t)m->n_values + 1, sizeof(int));
    int *last = gc_malloc2((size_t)m->n_values + 1, sizeof(int));
    uint8_t *gneed = calloc((size_t)m->n_values + 1, 1);
    uint8_t *active = calloc((size_t)F + 1, 1);
    int *step_of = gc_malloc2((size_t)m->n_nodes + 1, sizeof(int));
    int *gfirst = gc_malloc2((size_t)m->n_values + 1, sizeof(int));
    int *glast = gc_malloc2((size_t)m->n_values + 1, sizeof(int));
    gc_bufs bs = {0};
    int *fused_from = NULL, *bw_relu = NULL, *bw_silu = NULL, *bw_cat = NULL;
    if (!first || !last || !gneed || !active || !step_of || !gfirst || !glast) {
        rc = gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
        goto out;
    }
    int has_bw = c->seed >= 0;
    if (has_bw && (rc = plan_backward_sets(c, gneed, active, step_of))) goto out;
    int B = 0;
    for (int s = 0; s < F; s++) B += active[s];
    const int END = F + B + 1;

    /* Forward liveness. Inputs, outputs and kept values live to the end. */
    for (int v = 0; v < m->n_values; v++) {
        first[v] = -1;
        last[v] = -1;
        gfirst[v] = -1;
        glast[v] = -1;
    }
    for (int i = 0; i < m->n_inputs; i++) {
        int v = m->inputs[i];
        if (c->vkind[v] == GC_V_RUNTIME) { first[v] = 0; last[v] = END; }
    }
    for (int s = 0; s < F; s++) {
        const gc_node *n = &m->nodes[c->steps[s].node];
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] >= 0) first[n->out[j]] = last[n->out[j]] = s;
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v >= 0 && c->vkind[v] == GC_V_RUNTIME && last[v] < s) last[v] = s;
        }
    }
    for (int v = 0; v < m->n_values; v++) {
        if (c->vkind[v] != GC_V_RUNTIME) continue;
        if (m->values[v].is_output || c->kept[v]) last[v] = END;
    }
    if (has_bw) last[c->seed] = END;

    /* Backward: saved tensors live to the end (several backward passes may follow one forward);
     * gradient buffers live from their first contribution to their producer's backward. */
    c->bsteps = gc_calloc2((size_t)B + 1, sizeof(gc_bstep));
    if (!c->bsteps) { rc = gc_fail(&c->err, GCAM_E_NOMEM, "out of memory"); goto out; }
    if (has_bw) {
        gfirst[c->seed] = F;
        glast[c->seed] = END;
        int b = 0;
        for (int s = F - 1; s >= 0; s--) {
            if (!active[s]) continue;
            const gc_node *n = &m->nodes[c->steps[s].node];
            const gc_opdef *d = gc_op_get(n->op);
            int t = F + 1 + b;
            gc_bstep *bst = &c->bsteps[b];
            bst->node = c->steps[s].node;
            bst->fstep = s;
            for (int k = 0; k < n->n_in; k++) {
                int v = n->in[k];
                if (v < 0) continue;
                if ((d->bw_in & (UINT64_C(1) << k)) && c->vkind[v] == GC_V_RUNTIME) last[v] = END;
                if ((d->diff_in & (UINT64_C(1) << k)) && gneed[v]) {
                    if (gfirst[v] < 0) gfirst[v] = t;
                    if (glast[v] < t) glast[v] = t;
                }
            }
            for (int j = 0; j < n->n_out; j++) {
                int v = n->out[j];
                if (v < 0) continue;
                if ((d->bw_out & (UINT64_C(1) << j)) && c->vkind[v] == GC_V_RUNTIME) last[v] = END;
                if (gneed[v] && glast[v] < t) glast[v] = t;
            }
            b++;
        }
        c->n_bsteps = B;
        for (int r = 0; r < c->n_req; r++) glast[c->req[r]] = END;
    }

    /* Relu fused into its producer (an op with .fuse_relu: Conv, BatchNormalization, Add) when
     * nothing else reads the producer's output: the producer writes max(y, 0) and the Relu's output
     * shares its buffer, which saves a pass over memory and a buffer per pair (ResNet, VGG,
     * DenseNet). The Relu's backward still runs (it reads its output, i.e. the shared buffer; the
     * liveness above already keeps that buffer), unless the producer applies it (below); the
     * producers' backward otherwise reads only weights (Add: nothing). */
    fused_from = gc_malloc2((size_t)m->n_values + 1, sizeof(int)); /* Relu output -> producer output */
    int *uses = calloc((size_t)m->n_values + 1, sizeof(int));
    int *prod_step = gc_malloc2((size_t)m->n_values + 1, sizeof(int));
    if (!fused_from || !uses || !prod_step) {
        free(uses);
        free(prod_step);
        rc = gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
        goto out;
    }
    const int fuse = !c->tune.no_fusion;
    /* backward step of each forward step (-1: none), and per backward step the fused Relu output
     * whose gradient it reads instead of its own output's (.fuse_relu_bw) */
    int *bstep_of = gc_malloc2((size_t)F + 1, sizeof(int));
    bw_relu = gc_malloc2((size_t)B + 1, sizeof(int));
    bw_silu = gc_malloc2((size_t)B + 1, sizeof(int));
    bw_cat = gc_malloc2((size_t)B + 1, sizeof(int));
    if (!bstep_of || !bw_relu || !bw_silu || !bw_cat) {
        free(uses);
        free(prod_step);
        free(bstep_of);
        rc = gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
        goto out;
    }
    for (int s = 0; s < F; s++) bstep_of[s] = -1;
    for (int b = 0; b < B; b++) bw_relu[b] = bw_silu[b] = bw_cat[b] = -1;
    for (int b = 0; has_bw && b < c->n_bsteps; b++) bstep_of[c->bsteps[b].fstep] = b;
    /* Steps a backward passes through keep the exact paths: F(4x4) Winograd's rounding (2-3e-6
     * against F(2x2)'s 4e-7) flips enough ReLU kinks to move a Guided Backprop map by 1e-3 of its
     * maximum (test_cli's resnet18), while forward-only steps (inference, and everything before a
     * Grad-CAM-only plan's target layer) take it. */
    for (int s = 0; s < F; s++) c->steps[s].k.exact = bstep_of[s] >= 0;
    for (int v = 0; v < m->n_values; v++) fused_from[v] = prod_step[v] = -1;
    for (int s = 0; s < F; s++) {
        const gc_node *n = &m->nodes[c->steps[s].node];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0) uses[n->in[k]]++;
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] >= 0) prod_step[n->out[j]] = s;
    }
    for (int s = 0; s < F && fuse; s++) {
        const gc_node *n = &m->nodes[c->steps[s].node];
        if (n->op != GC_OP_Relu || n->n_in < 1 || n->n_out < 1) continue;
        int v = n->in[0], r = n->out[0];
        if (v < 0 || r < 0 || prod_step[v] < 0 || uses[v] != 1 || c->vkind[v] != GC_V_RUNTIME ||
            c->vkind[r] != GC_V_RUNTIME || c->vals[v].dtype != GC_F32 || c->kept[v] || m->values[v].is_output ||
            v == c->seed || fused_from[v] >= 0)
            continue;
        gc_step *ps = &c->steps[prod_step[v]];
        const gc_node *pn = &m->nodes[ps->node];
        if (!gc_op_get(pn->op)->fuse_relu || pn->n_out != 1) continue;
        ps->k.post_relu = 1;
        c->steps[s].fused = 1;
        fused_from[r] = v;
        if (last[v] < last[r]) last[v] = last[r];
        /* Backward too, when the producer's kernel can apply the Relu's VJP (BatchNormalization:
         * DenseNet's pre-activations; Add: ResNet's joins): one pass over the gradient instead of two, and no gradient
         * buffer for v (only the Relu reads v, so only its VJP would write that buffer). The
         * Relu's output gradient must then live until the producer's backward step. */
        const int rb = bstep_of[s], pb = bstep_of[prod_step[v]];
        int same = 1; /* the kernels apply the VJP elementwise: inputs of the output's shape */
        for (int k = 0; k < pn->n_in; k++)
            if (pn->in[k] >= 0 && (gc_op_get(pn->op)->diff_in & (UINT64_C(1) << k)) && gneed[pn->in[k]])
                same &= gc_shape_eq(&c->vals[pn->in[k]].shape, &c->vals[v].shape);
        if (has_bw && same && gc_op_get(pn->op)->fuse_relu_bw && rb >= 0 && pb >= 0 && gneed[v] && gneed[r]) {
            c->bsteps[rb].fused = 1;
            bw_relu[pb] = r;
            gneed[v] = 0;
            if (glast[r] < F + 1 + pb) glast[r] = F + 1 + pb;
        }
    }
    /* An Add joining a convolution's output with a tensor computed before that convolution
     * (ResNet's and MobileNetV2's residual joins), where no backward passes (inference, and a
     * Grad-CAM-only plan's layers before its target): the Conv adds the other operand itself
     * (k.res: into the bias fill its GEMMs accumulate onto, or the pass that writes its output
     * anyway), then the Add's fused Relu; the Add's step is skipped and its output (and that
     * Relu's) shares the Conv's buffer: one pass over memory (two reads, a write) less per join.
     * Of two Conv operands, the later one takes the Add (the other is then already computed). */
    const int fuse_add = fuse && !c->tune.no_add_fusion;
    for (int s = 0; s < F && fuse_add; s++) {
        const gc_node *n = &m->nodes[c->steps[s].node];
        if (n->op != GC_OP_Add || n->n_in != 2 || n->n_out != 1 || bstep_of[s] >= 0 || c->steps[s].fused) continue;
        const int ao = n->out[0];
        if (ao < 0 || c->vkind[ao] != GC_V_RUNTIME || c->vals[ao].dtype != GC_F32 || fused_from[ao] >= 0) continue;
        int pick = -1;
        for (int i = 0; i < 2; i++) {
            const int v = n->in[i], r = n->in[1 - i];
            if (v < 0 || r < 0 || v == r || prod_step[v] < 0) continue;
            const int cs = prod_step[v];
            const gc_step *cst = &c->steps[cs];
            const gc_node *cn = &m->nodes[cst->node];
            if (cn->op != GC_OP_Conv || cn->n_out != 1 || cst->fused || cst->k.post_relu || cst->k.res ||
                bstep_of[cs] >= 0)
                continue;
            if (uses[v] != 1 || c->vkind[v] != GC_V_RUNTIME || c->vals[v].dtype != GC_F32 || c->kept[v] ||
                m->values[v].is_output || v == c->seed || fused_from[v] >= 0)
                continue;
            if (c->vkind[r] != GC_V_RUNTIME || c->vals[r].dtype != GC_F32 || prod_step[r] >= cs) continue;
            if (!gc_shape_eq(&c->vals[v].shape, &c->vals[ao].shape) || !gc_shape_eq(&c->vals[r].shape, &c->vals[ao].shape))
                continue;
            if (pick < 0 || cs > prod_step[n->in[pick]]) pick = i;
        }
        if (pick < 0) continue;
        const int v = n->in[pick], r = n->in[1 - pick];
        gc_step *cst = &c->steps[prod_step[v]];
        cst->k.res = &c->vals[r];
        cst->k.post_relu = c->steps[s].k.post_relu;
        c->steps[s].fused = 1;
        for (int x = 0; x < m->n_values; x++)
            if (fused_from[x] == ao) fused_from[x] = v; /* the Add's fused Relu: its output too */
        fused_from[ao] = v;
        if (last[v] < last[ao]) last[v] = last[ao];
    }
    /* A Concat along axis 1 whose output only a BatchNormalization reads (DenseNet: each layer's
     * norm1 over all earlier features; the transitions; norm5): the BN reads the Concat's inputs
     * in place (k.cat_in), the Concat's forward step is skipped and its output gets no buffer.
     * When the two backward steps are adjacent, the BN's backward also writes straight into the
     * Concat inputs' gradients (k.gcat_in): the Concat's backward step is skipped and its output's
     * gradient gets no buffer (one pass less over every dense block's gradient). Otherwise the
     * Concat's backward runs (it reads only gradients); the BN's backward never reads X. */
    for (int s = 0; s < F && fuse; s++) {
        const gc_node *n = &m->nodes[c->steps[s].node];
        if (n->op != GC_OP_Concat || n->n_out != 1 || n->n_in < 1 || n->n_in > GC_MAX_IO) continue;
        int v = n->out[0];
        if (v < 0 || uses[v] != 1 || c->vkind[v] != GC_V_RUNTIME || c->vals[v].dtype != GC_F32 || c->kept[v] ||
            m->values[v].is_output || v == c->seed || fused_from[v] >= 0 || c->vals[v].shape.ndim < 2 ||
            gc_norm_axis(gc_attr_int(n, "axis", 1), c->vals[v].shape.ndim) != 1)
            continue;
        int cs = -1; /* the consumer's step */
        for (int t = s + 1; t < F && cs < 0; t++) {
            const gc_node *tn = &m->nodes[c->steps[t].node];
            for (int k = 0; k < tn->n_in; k++)
                if (tn->in[k] == v) cs = t;
        }
        if (cs < 0 || c->steps[cs].fused) continue;
        const gc_node *bn = &m->nodes[c->steps[cs].node];
        if (!gc_op_get(bn->op)->fuse_concat || bn->in[0] != v) continue;
        int ok = 1;
        for (int k = 0; k < n->n_in; k++) {
            int x = n->in[k];
            ok &= x >= 0 && c->vkind[x] != GC_V_NONE && c->vals[x].dtype == GC_F32;
        }
        if (!ok) continue;
        c->steps[cs].k.cat_in = c->steps[s].k.in;
        c->steps[cs].k.n_cat = n->n_in;
        c->steps[s].fused = 1;
        first[v] = -1; /* no buffer */
        for (int k = 0; k < n->n_in; k++) {
            int x = n->in[k];
            if (c->vkind[x] == GC_V_RUNTIME && last[x] < cs) last[x] = cs;
        }
        const int cb = has_bw ? bstep_of[s] : -1, bb = has_bw ? bstep_of[cs] : -1;
        if (cb >= 0 && bb >= 0 && bb + 1 == cb && gneed[v] && !c->bsteps[cb].fused && !c->bsteps[bb].fused) {
            c->bsteps[cb].fused = 1;
            bw_cat[bb] = cb;
            gneed[v] = 0;
            for (int k = 0; k < n->n_in; k++) { /* gradients the Concat's step wrote first: now the BN's */
                int x = n->in[k];
                if (gneed[x] && gfirst[x] == F + 1 + cb) gfirst[x] = F + 1 + bb;
            }
        }
    }
    /* Mul(x, Sigmoid(x)) (SiLU) computed by the Sigmoid in one pass when the Mul directly
     * follows it and nothing else reads the Sigmoid's output: the Mul's step is skipped and its
     * output lives from the Sigmoid's step on. The sigmoid itself then gets no buffer (k.silu):
     * no backward reads it, or the Sigmoid's backward applies SiLU's whole VJP from x (recomputing
     * the sigmoid is cheaper than storing it and reading it back: EfficientNet's largest tensors),
     * and the Mul's backward step is skipped. */
    for (int s = 1; s < F && fuse; s++) {
        const gc_node *n = &m->nodes[c->steps[s].node], *pn = &m->nodes[c->steps[s - 1].node];
        if (n->op != GC_OP_Mul || pn->op != GC_OP_Sigmoid || n->n_in != 2 || n->n_out != 1 || pn->n_out != 1)
            continue;
        int sg = pn->out[0], x = pn->in[0], y = n->out[0];
        if (sg < 0 || x < 0 || y < 0 || !((n->in[0] == x && n->in[1] == sg) || (n->in[0] == sg && n->in[1] == x)))
            continue;
        if (uses[sg] != 1 || c->kept[sg] || m->values[sg].is_output || sg == c->seed || c->vkind[x] != GC_V_RUNTIME ||
            c->vkind[y] != GC_V_RUNTIME || c->vals[x].dtype != GC_F32 || c->vals[y].dtype != GC_F32 ||
            fused_from[y] >= 0 || !gc_shape_eq(&c->vals[x].shape, &c->vals[y].shape))
            continue;
        c->steps[s - 1].k.post_mul = &c->vals[y];
        c->steps[s].fused = 1;
        first[y] = s - 1;
        const int mb = has_bw ? bstep_of[s] : -1, sb = has_bw ? bstep_of[s - 1] : -1;
        if (mb < 0 && sb < 0) { /* no backward passes here (inference, a CAM-only plan's early layers) */
            c->steps[s - 1].k.silu = 1;
            first[sg] = -1;
        } else if (mb >= 0 && sb == mb + 1 && gneed[x] && gneed[y] && !c->bsteps[mb].fused &&
                   !c->bsteps[sb].fused) {
            c->steps[s - 1].k.silu = 1;
            first[sg] = -1;
            gneed[sg] = 0;
            c->bsteps[mb].fused = 1;
            bw_silu[sb] = y;
            last[x] = END;                                     /* the fused VJP reads x */
            if (glast[y] < F + 1 + sb) glast[y] = F + 1 + sb;  /* ... and the Mul's output gradient */
            if (gfirst[x] == F + 1 + mb) gfirst[x] = F + 1 + sb; /* x's gradient is first written there */
        }
    }
    free(uses);
    free(prod_step);
    free(bstep_of);

    /* Buffers: activations, aux, scratch, gradients. */
    for (int v = 0; v < m->n_values; v++) {
        if (c->vkind[v] != GC_V_RUNTIME || first[v] < 0 || fused_from[v] >= 0) continue;
        int ok = 0;
        size_t bytes = gc_tensor_bytes(c->vals[v].dtype, &c->vals[v].shape, &ok);
        if (!ok || bufs_add(&bs, bytes, first[v], last[v], &c->vals[v].data)) {
            rc = gc_fail(&c->err, GCAM_E_NOMEM, "out of memory planning '%s'", vname(c, v));
            goto out;
        }
    }
    for (int s = 0; s < F; s++) {
        gc_kctx *k = &c->steps[s].k;
        const gc_opdef *d = gc_op_get(m->nodes[c->steps[s].node].op);
        size_t sb = d->scratch_bytes ? d->scratch_bytes(k) : 0;
        k->scratch_size = sb;
        if (sb && bufs_add(&bs, sb, s, s, &k->scratch)) { rc = gc_fail(&c->err, GCAM_E_NOMEM, "out of memory"); goto out; }
        if (has_bw && active[s] && d->aux_bytes) {
            size_t ab = d->aux_bytes(k);
            if (ab && bufs_add(&bs, ab, s, END, &k->aux)) { rc = gc_fail(&c->err, GCAM_E_NOMEM, "out of memory"); goto out; }
        }
    }
    if (has_bw) {
        c->grads = gc_calloc2((size_t)m->n_values + 1, sizeof(gc_tensor));
        if (!c->grads) { rc = gc_fail(&c->err, GCAM_E_NOMEM, "out of memory"); goto out; }
        for (int v = 0; v < m->n_values; v++) {
            if (!gneed[v] || gfirst[v] < 0) continue;
            c->grads[v].dtype = GC_F32;
            c->grads[v].shape = c->vals[v].shape;
            int ok = 0;
            size_t bytes = gc_tensor_bytes(GC_F32, &c->vals[v].shape, &ok);
            if (!ok || bufs_add(&bs, bytes, gfirst[v], glast[v], &c->grads[v].data)) {
                rc = gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
                goto out;
            }
        }
        for (int b = 0; b < c->n_bsteps; b++) {
            gc_bstep *bst = &c->bsteps[b];
            const gc_node *n = &m->nodes[bst->node];
            const gc_opdef *d = gc_op_get(n->op);
            fill_kctx(c, &bst->k, n);
            for (int k = 0; k < n->n_in; k++)
                if (n->in[k] >= 0 && gneed[n->in[k]] && (d->diff_in & (UINT64_C(1) << k))) bst->k.gin[k] = &c->grads[n->in[k]];
            for (int j = 0; j < n->n_out; j++)
                if (n->out[j] >= 0 && gneed[n->out[j]]) bst->k.gout[j] = &c->grads[n->out[j]];
            if (bw_relu[b] >= 0) { /* the fused Relu's VJP first: its output's gradient in */
                bst->k.gout[0] = &c->grads[bw_relu[b]];
                bst->k.post_relu = 1;
            }
            if (bw_silu[b] >= 0) { /* SiLU's VJP: the fused Mul's output gradient in, from x */
                bst->k.gout[0] = &c->grads[bw_silu[b]];
                bst->k.silu = 1;
            }
            size_t sb = d->bscratch_bytes ? d->bscratch_bytes(&bst->k) : 0;
            bst->k.scratch_size = sb;
            if (sb && bufs_add(&bs, sb, F + 1 + b, F + 1 + b, &bst->k.scratch)) {
                rc = gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
                goto out;
            }
            /* gradients first written here are zeroed just before */
            const gc_node *cn = bw_cat[b] >= 0 ? &m->nodes[c->bsteps[bw_cat[b]].node] : NULL; /* its Concat */
            if (cn) { /* the Concat's gradient array (filled when the loop reaches its step) */
                bst->k.gcat_in = c->bsteps[bw_cat[b]].k.gin;
                bst->k.cat_in = c->steps[bst->fstep].k.cat_in; /* the inputs' shapes */
                bst->k.n_cat = cn->n_in;
            }
            bst->zero = gc_malloc2((size_t)n->n_in + (cn ? (size_t)cn->n_in : 0) + 1, sizeof(int));
            if (!bst->zero) { rc = gc_fail(&c->err, GCAM_E_NOMEM, "out of memory"); goto out; }
            for (int k = 0; k < n->n_in; k++) {
                int v = n->in[k];
                if (v < 0 || !bst->k.gin[k] || gfirst[v] != F + 1 + b) continue;
                int n_at = 0;
                for (int j = 0; j < n->n_in; j++) n_at += n->in[j] == v && bst->k.gin[j];
                const int assign = d->bw_assign && !bst->fused && n_at == 1 && bst->k.gout[0];
                first_write(bst, v, assign, k, &bst->k.gin_fresh);
            }
            for (int k = 0; cn && k < cn->n_in; k++) { /* the fused Concat's inputs written first here */
                int v = cn->in[k];
                if (v < 0 || !gneed[v] || gfirst[v] != F + 1 + b) continue;
                int n_at = 0;
                for (int j = 0; j < cn->n_in; j++) n_at += cn->in[j] == v;
                first_write(bst, v, n_at == 1 && bst->k.gout[0], k, &bst->k.gcat_fresh);
            }
        }
    }

    size_t total = pack(&bs);
    if (total == SIZE_MAX) { rc = gc_fail(&c->err, GCAM_E_NOMEM, "arena size overflows"); goto out; }
    if (total > c->max_memory) {
        rc = gc_fail(&c->err, GCAM_E_LIMIT, "the plan needs %zu bytes (%.1f MiB) of activation memory, more than the %zu "
                     "bytes (%.1f MiB) allowed (raise the limit with max_memory / --max-memory)", total,
                     (double)total / 1048576.0, c->max_memory, (double)c->max_memory / 1048576.0);
        goto out;
    }
    c->arena_size = total;
    c->arena = total ? aligned_alloc(64, total) : NULL;
    if (total && !c->arena) {
        rc = gc_fail(&c->err, GCAM_E_NOMEM, "cannot allocate %.1f MiB for activations", (double)total / 1048576.0);
        goto out;
    }
    for (int i = 0; i < bs.n; i++) *bs.b[i].target = c->arena + bs.b[i].offset;
    for (int v = 0; v < m->n_values; v++)
        if (fused_from[v] >= 0) c->vals[v].data = c->vals[fused_from[v]].data;
    /* aux pointers were planned on the forward kctx; backward reads them from the same place */
    for (int b = 0; b < c->n_bsteps; b++) c->bsteps[b].k.aux = c->steps[c->bsteps[b].fstep].k.aux;
out:
    free(bw_relu);
    free(bw_silu);
    free(bw_cat);
    free(fused_from);
    free(first);
    free(last);
    free(gneed);
    free(active);
    free(step_of);
    free(gfirst);
    free(glast);
    free(bs.b);
    return rc;
}

gcam_status gc_ctx_plan(gcam_ctx *c, const gcam_feed *shapes, int n_shapes, const gcam_ctx_options *o) {
    const gc_model *m = c->m;
    /* One thread pool: OpenMP. OpenBLAS's own pthread pool would spin against it on the same
     * cores; the conv/gemm kernels split their GEMMs over OpenMP threads instead. */
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
    c->nthreads = o && o->n_threads > 0 ? o->n_threads : gc_cpu_count();
    gc_tuning_get(&c->tune);
    if (c->tune.profile && !(c->prof = calloc(GC_OP_COUNT, sizeof *c->prof)))
        return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
    c->max_memory = o && o->max_memory ? o->max_memory : GC_DEFAULT_MAX_MEMORY;
    c->seed = -1;
    c->vals = gc_calloc2((size_t)m->n_values + 1, sizeof(gc_tensor));
    c->vkind = calloc((size_t)m->n_values + 1, 1);
    c->kept = calloc((size_t)m->n_values + 1, 1);
    c->folded_owned = gc_calloc2((size_t)m->n_values + 1, sizeof(char *));
    if (!c->vals || !c->vkind || !c->kept || !c->folded_owned) return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
    c->const_int_inputs = o && o->const_int_inputs;
    if (m->n_unsupported)
        return gc_fail(&c->err, GCAM_E_UNSUPPORTED, "the model has %d unsupported op%s, first: %s", m->n_unsupported,
                       m->n_unsupported > 1 ? "s" : "", m->unsupported[0]);
    for (int v = 0; v < m->n_values; v++) {
        const gc_value *mv = &m->values[v];
        if (mv->const_data) {
            c->vals[v] = (gc_tensor){.dtype = mv->dtype, .shape = mv->shape, .data = mv->const_data};
            c->vkind[v] = GC_V_CONST;
        }
    }
    for (int i = 0; i < m->n_inputs; i++) {
        int v = m->inputs[i];
        c->vals[v].dtype = m->values[v].dtype;
        c->vkind[v] = GC_V_RUNTIME;
    }
    gcam_status rc = bind_inputs(c, shapes, n_shapes);
    if (rc) return rc;
    if ((rc = infer_and_fold(c))) return rc;

    if (o) {
        for (int i = 0; i < o->n_keep; i++) {
            if (!o->keep || !o->keep[i]) return gc_fail(&c->err, GCAM_E_ARG, "keep[%d] is NULL", i);
            if (strcmp(o->keep[i], "*") == 0) {
                memset(c->kept, 1, (size_t)m->n_values);
                continue;
            }
            int v = gc_model_find_value(m, o->keep[i]);
            if (v < 0) return gc_fail(&c->err, GCAM_E_NOT_FOUND, "no tensor named '%s' to keep", o->keep[i]);
            c->kept[v] = 1;
        }
        if (o->seed) {
            c->seed = gc_model_find_value(m, o->seed);
            if (c->seed < 0) return gc_fail(&c->err, GCAM_E_NOT_FOUND, "no tensor named '%s' (seed)", o->seed);
            if (c->vkind[c->seed] != GC_V_RUNTIME || c->vals[c->seed].dtype != GC_F32)
                return gc_fail(&c->err, GCAM_E_ARG, "seed '%s' is not a float activation of the model", o->seed);
            if (o->n_grad_of <= 0 || !o->grad_of)
                return gc_fail(&c->err, GCAM_E_ARG, "a seed needs at least one grad_of tensor");
            c->req = gc_malloc2((size_t)o->n_grad_of, sizeof(int));
            if (!c->req) return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
            for (int i = 0; i < o->n_grad_of; i++) {
                int v = o->grad_of[i] ? gc_model_find_value(m, o->grad_of[i]) : -1;
                if (v < 0)
                    return gc_fail(&c->err, GCAM_E_NOT_FOUND, "no tensor named '%s' (grad_of)",
                                   o->grad_of[i] ? o->grad_of[i] : "(null)");
                if (c->vkind[v] != GC_V_RUNTIME || c->vals[v].dtype != GC_F32)
                    return gc_fail(&c->err, GCAM_E_ARG, "'%s' is not a float activation or input: it has no gradient",
                                   o->grad_of[i]);
                c->req[c->n_req++] = v;
                c->kept[v] = 1;
            }
        } else if (o->n_grad_of > 0) {
            return gc_fail(&c->err, GCAM_E_ARG, "grad_of given without a seed");
        }
    }
    return plan_memory(c, o);
}

gcam_status gc_ctx_forward(gcam_ctx *c) { return gc_ctx_forward_from(c, 0); }

int gc_ctx_first_step_after(const gcam_ctx *c, int v) {
    int p = c->m->values[v].producer;
    for (int s = 0; s < c->n_steps; s++)
        if (c->steps[s].node == p) return s + 1;
    return 0;
}

/* GCAM_PROFILE=1: time spent per op type, forward and backward, summed over the context's life
 * and printed to stderr when it is freed. A developer's aid for finding where the time goes
 * (docs/performance.md); off by default, and then it costs one branch per step. */
static void prof_report(const gc_prof_row *rows) {
    double tf = 0, tb = 0;
    for (int i = 0; i < GC_OP_COUNT; i++) tf += rows[i].fw, tb += rows[i].bw;
    fprintf(stderr, "GCAM_PROFILE: op               forward ms (calls)      backward ms (calls)\n");
    for (int i = 0; i < GC_OP_COUNT; i++) {
        const gc_prof_row *r = &rows[i];
        if (!r->nfw && !r->nbw) continue;
        fprintf(stderr, "GCAM_PROFILE: %-16s %10.1f %5.1f%% (%ld) %10.1f %5.1f%% (%ld)\n", gc_op_get(i)->name,
                r->fw * 1e3, tf > 0 ? 100 * r->fw / tf : 0, r->nfw, r->bw * 1e3, tb > 0 ? 100 * r->bw / tb : 0,
                r->nbw);
    }
    fprintf(stderr, "GCAM_PROFILE: total            %10.1f               %10.1f\n", tf * 1e3, tb * 1e3);
}

static double prof_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

gcam_status gc_ctx_forward_from(gcam_ctx *c, int first) {
    const gc_model *m = c->m;
    gc_prof_row *prof = c->prof;
    c->has_run = 0;
    c->has_backward = 0;
    for (int s = first; s < c->n_steps; s++) {
        gc_step *st = &c->steps[s];
        if (st->fused) continue;
        if (c->step_hook) c->step_hook(c, s, c->step_hook_user);
        int op = m->nodes[st->node].op;
        const gc_opdef *d = gc_op_get(op);
        double t0 = prof ? prof_now() : 0;
        gcam_status rc = d->forward(&st->k);
        if (prof) prof[op].fw += prof_now() - t0, prof[op].nfw++;
        if (rc) return rc;
    }
    c->has_run = 1;
    return GCAM_OK;
}

gcam_status gc_ctx_backward(gcam_ctx *c, const float *seed_grad, gc_rule rule, const int *want, int n_want,
                            int *n_run) {
    const gc_model *m = c->m;
    gc_prof_row *prof = c->prof;
    *n_run = 0;
    if (c->seed < 0) return gc_fail(&c->err, GCAM_E_STATE, "no backward was planned: set a seed and grad_of at creation");
    if (!c->has_run) return gc_fail(&c->err, GCAM_E_STATE, "run the forward pass before a backward pass");
    /* Stop after the last step that contributes to a wanted gradient: the one differentiating
     * the earliest consumer (in topological order) of a wanted tensor. */
    int stop = -1;
    for (int b = 0; b < c->n_bsteps; b++) {
        const gc_node *n = &m->nodes[c->bsteps[b].node];
        for (int k = 0; k < n->n_in; k++) {
            if (!c->bsteps[b].k.gin[k]) continue;
            for (int w = 0; w < n_want; w++)
                if (n->in[k] == want[w]) stop = b;
        }
    }
    gc_tensor *sg = &c->grads[c->seed];
    memcpy(sg->data, seed_grad, (size_t)gc_numel(sg) * sizeof(float));
    for (int b = 0; b <= stop; b++) {
        gc_bstep *bst = &c->bsteps[b];
        for (int z = 0; z < bst->n_zero; z++) {
            gc_tensor *g = &c->grads[bst->zero[z]];
            memset(g->data, 0, (size_t)gc_numel(g) * sizeof(float));
        }
        if (bst->fused) continue; /* its producer's backward applies it */
        bst->k.rule = rule;
        int op = m->nodes[bst->node].op;
        const gc_opdef *d = gc_op_get(op);
        double t0 = prof ? prof_now() : 0;
        gcam_status rc = d->backward(&bst->k);
        if (prof) prof[op].bw += prof_now() - t0, prof[op].nbw++;
        if (rc) return rc;
        (*n_run)++;
    }
    c->has_backward = 1;
    return GCAM_OK;
}

void gc_ctx_destroy(gcam_ctx *c) {
    if (c->prof) prof_report(c->prof);
    free(c->prof);
    free(c->vals);
    free(c->vkind);
    free(c->kept);
    free(c->steps);
    free(c->arena);
    free(c->req);
    free(c->grads);
    if (c->bsteps)
        for (int b = 0; b < c->n_bsteps; b++) free(c->bsteps[b].zero);
    free(c->bsteps);
    if (c->folded_owned)
        for (int i = 0; i < c->n_folded_owned; i++) free(c->folded_owned[i]);
    free(c->folded_owned);
}

/* Planning an execution context and running it.
 *
 * Timeline: forward steps 0..F-1, the seed at F, backward steps F+1..F+B, END = F+B+1.
 * Every runtime buffer (activation, gradient, aux, scratch) gets a [first, last] interval on
 * that timeline and a size; one greedy packing gives each an offset in a single arena that is
 * allocated once. Runs then only call kernels. */
#include "plan.h"
#include "planner.h"
#include "alloc.h"

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
    k->model = c->m;
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
            rc = gc_fail(&c->err, GCAM_E_ARG, "input '%s' is %s, got %s", v->name, gc_dtype_name(v->dtype),
                         gc_dtype_name(f->dtype));
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
    /* constants folded here (shapes and what depends on them) count against the context's cap,
     * as its planned buffers do: a fuzzed model's Expand to 24 GB once got past every limit */
    size_t fold_budget = c->max_memory;
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
            gcam_status rc = gc_eval_node(n, ins, outs, &c->err, &fold_budget, c->max_memory, "while planning");
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

static void planner_free(gc_planner *p) {
    free(p->first);
    free(p->last);
    free(p->gfirst);
    free(p->glast);
    free(p->gneed);
    free(p->active);
    free(p->step_of);
    free(p->bstep_of);
    free(p->fused_from);
    free(p->gshare);
    free(p->bw_relu);
    free(p->bw_silu);
    free(p->bw_cat);
    free(p->bw_relu_dx);
    free(p->bw_dx_clip);
    free(p->bw_dx_lo);
    free(p->bw_dx_hi);
}

/* The working arrays, the backward sets, and the timeline's length. */
static gcam_status planner_init(gc_planner *p, gcam_ctx *c) {
    const gc_model *m = c->m;
    const size_t V = (size_t)m->n_values + 1, F = (size_t)c->n_steps + 1;
    *p = (gc_planner){.c = c, .m = m, .F = c->n_steps, .has_bw = c->seed >= 0};
    p->first = gc_malloc2(V, sizeof(int));
    p->last = gc_malloc2(V, sizeof(int));
    p->gfirst = gc_malloc2(V, sizeof(int));
    p->glast = gc_malloc2(V, sizeof(int));
    p->fused_from = gc_malloc2(V, sizeof(int));
    p->gshare = gc_malloc2(V, sizeof(int));
    p->gneed = calloc(V, 1);
    p->active = calloc(F, 1);
    p->step_of = gc_malloc2((size_t)m->n_nodes + 1, sizeof(int));
    p->bstep_of = gc_malloc2(F, sizeof(int));
    if (!p->first || !p->last || !p->gfirst || !p->glast || !p->fused_from || !p->gshare || !p->gneed || !p->active ||
        !p->step_of || !p->bstep_of)
        return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
    gcam_status rc = p->has_bw ? plan_backward_sets(c, p->gneed, p->active, p->step_of) : GCAM_OK;
    if (rc) return rc;
    for (int s = 0; s < p->F; s++) p->B += p->active[s];
    p->END = p->F + p->B + 1;
    p->bw_relu = gc_malloc2((size_t)p->B + 1, sizeof(int));
    p->bw_silu = gc_malloc2((size_t)p->B + 1, sizeof(int));
    p->bw_cat = gc_malloc2((size_t)p->B + 1, sizeof(int));
    p->bw_relu_dx = gc_malloc2((size_t)p->B + 1, sizeof(int));
    p->bw_dx_clip = gc_calloc2((size_t)p->B + 1, sizeof(int));
    p->bw_dx_lo = gc_calloc2((size_t)p->B + 1, sizeof(float));
    p->bw_dx_hi = gc_calloc2((size_t)p->B + 1, sizeof(float));
    if (!p->bw_relu || !p->bw_silu || !p->bw_cat || !p->bw_relu_dx || !p->bw_dx_clip || !p->bw_dx_lo || !p->bw_dx_hi)
        return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
    for (int v = 0; v < m->n_values; v++)
        p->first[v] = p->last[v] = p->gfirst[v] = p->glast[v] = p->fused_from[v] = p->gshare[v] = -1;
    for (int s = 0; s < p->F; s++) p->bstep_of[s] = -1;
    for (int b = 0; b < p->B; b++) p->bw_relu[b] = p->bw_silu[b] = p->bw_cat[b] = p->bw_relu_dx[b] = -1;
    return GCAM_OK;
}

/* Forward lifetimes: from the producing step to the last reader; inputs, outputs, kept values
 * and the seed live to the end. */
static void plan_lifetimes(gc_planner *p) {
    const gcam_ctx *c = p->c;
    const gc_model *m = p->m;
    for (int i = 0; i < m->n_inputs; i++) {
        int v = m->inputs[i];
        if (c->vkind[v] == GC_V_RUNTIME) p->first[v] = 0, p->last[v] = p->END;
    }
    for (int s = 0; s < p->F; s++) {
        const gc_node *n = &m->nodes[c->steps[s].node];
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] >= 0) p->first[n->out[j]] = p->last[n->out[j]] = s;
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v >= 0 && c->vkind[v] == GC_V_RUNTIME && p->last[v] < s) p->last[v] = s;
        }
    }
    for (int v = 0; v < m->n_values; v++)
        if (c->vkind[v] == GC_V_RUNTIME && (m->values[v].is_output || c->kept[v])) p->last[v] = p->END;
    if (p->has_bw) p->last[c->seed] = p->END;
}

/* Backward steps, in reverse order of the differentiated forward steps. Saved tensors live to the
 * end (several backward passes may follow one forward); gradient buffers from their first
 * contribution to their producer's backward. Forward steps a backward passes through stay exact. */
static gcam_status plan_backward_steps(gc_planner *p) {
    gcam_ctx *c = p->c;
    const gc_model *m = p->m;
    const int F = p->F, END = p->END;
    c->bsteps = gc_calloc2((size_t)p->B + 1, sizeof(gc_bstep));
    if (!c->bsteps) return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
    if (p->has_bw) {
        p->gfirst[c->seed] = F;
        p->glast[c->seed] = END;
        int b = 0;
        for (int s = F - 1; s >= 0; s--) {
            if (!p->active[s]) continue;
            const gc_node *n = &m->nodes[c->steps[s].node];
            const gc_opdef *d = gc_op_get(n->op);
            int t = F + 1 + b;
            c->bsteps[b] = (gc_bstep){.node = c->steps[s].node, .fstep = s};
            p->bstep_of[s] = b;
            for (int k = 0; k < n->n_in; k++) {
                int v = n->in[k];
                if (v < 0) continue;
                if ((d->bw_in & (UINT64_C(1) << k)) && c->vkind[v] == GC_V_RUNTIME) p->last[v] = END;
                if ((d->diff_in & (UINT64_C(1) << k)) && p->gneed[v]) {
                    if (p->gfirst[v] < 0) p->gfirst[v] = t;
                    if (p->glast[v] < t) p->glast[v] = t;
                }
            }
            for (int j = 0; j < n->n_out; j++) {
                int v = n->out[j];
                if (v < 0) continue;
                if ((d->bw_out & (UINT64_C(1) << j)) && c->vkind[v] == GC_V_RUNTIME) p->last[v] = END;
                if (p->gneed[v] && p->glast[v] < t) p->glast[v] = t;
            }
            b++;
        }
        c->n_bsteps = p->B;
        for (int r = 0; r < c->n_req; r++) p->glast[c->req[r]] = END;
    }
    /* Steps a backward passes through keep the exact paths: F(4x4) Winograd's rounding (2-3e-6
     * against F(2x2)'s 4e-7) flips enough ReLU kinks to move a Guided Backprop map by 1e-3 of its
     * maximum (test_cli's resnet18), while forward-only steps (inference, and everything before a
     * Grad-CAM-only plan's target layer) take it. */
    for (int s = 0; s < F; s++) c->steps[s].k.exact = p->bstep_of[s] >= 0;
    return GCAM_OK;
}

/* Buffers of the forward: activations (a fused output shares its producer's), scratch, aux. */
static gcam_status plan_forward_buffers(gc_planner *p, gc_alloc *a) {
    gcam_ctx *c = p->c;
    const gc_model *m = p->m;
    for (int v = 0; v < m->n_values; v++) {
        if (c->vkind[v] != GC_V_RUNTIME || p->first[v] < 0 || p->fused_from[v] >= 0) continue;
        int ok = 0;
        size_t bytes = gc_tensor_bytes(c->vals[v].dtype, &c->vals[v].shape, &ok);
        if (!ok || gc_alloc_reserve(a, bytes, p->first[v], p->last[v], &c->vals[v].data))
            return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory planning '%s'", vname(c, v));
    }
    for (int s = 0; s < p->F; s++) {
        gc_kctx *k = &c->steps[s].k;
        const gc_opdef *d = gc_op_get(m->nodes[c->steps[s].node].op);
        size_t sb = d->scratch_bytes ? d->scratch_bytes(k) : 0;
        k->scratch_size = sb;
        if (sb && gc_alloc_reserve(a, sb, s, s, &k->scratch)) return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
        if (p->has_bw && p->active[s] && d->aux_bytes) {
            size_t ab = d->aux_bytes(k);
            if (ab && gc_alloc_reserve(a, ab, s, p->END, &k->aux))
                return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
        }
    }
    return GCAM_OK;
}

/* Backward step b's kernel context: gradients in and out (through a fused Relu, SiLU or Concat),
 * scratch, and the gradients it writes first (assigned, or zeroed just before it). */
static gcam_status plan_backward_kctx(gc_planner *p, int b, gc_alloc *a) {
    gcam_ctx *c = p->c;
    const gc_model *m = p->m;
    const int F = p->F;
    gc_bstep *bst = &c->bsteps[b];
    const gc_node *n = &m->nodes[bst->node];
    const gc_opdef *d = gc_op_get(n->op);
    fill_kctx(c, &bst->k, n);
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0 && p->gneed[n->in[k]] && (d->diff_in & (UINT64_C(1) << k))) bst->k.gin[k] = &c->grads[n->in[k]];
    const int rdx = p->bw_relu_dx[b]; /* the Relu before it fused in: its input's gradient out */
    if (rdx >= 0) {
        bst->k.gin[0] = &c->grads[rdx];
        bst->k.fuse.relu_dx = p->bw_dx_clip[b] ? 2 : 1;
        bst->k.fuse.dx_lo = p->bw_dx_lo[b];
        bst->k.fuse.dx_hi = p->bw_dx_hi[b];
    }
    for (int j = 0; j < n->n_out; j++)
        if (n->out[j] >= 0 && p->gneed[n->out[j]]) bst->k.gout[j] = &c->grads[n->out[j]];
    if (p->bw_relu[b] >= 0) { /* the fused Relu's VJP first: its output's gradient in */
        bst->k.gout[0] = &c->grads[p->bw_relu[b]];
        bst->k.fuse.relu = 1;
    }
    if (p->bw_silu[b] >= 0) { /* SiLU's VJP: the fused Mul's output gradient in, from x */
        bst->k.gout[0] = &c->grads[p->bw_silu[b]];
        bst->k.fuse.silu = 1;
    }
    size_t sb = d->bscratch_bytes ? d->bscratch_bytes(&bst->k) : 0;
    bst->k.scratch_size = sb;
    if (sb && gc_alloc_reserve(a, sb, F + 1 + b, F + 1 + b, &bst->k.scratch))
        return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
    /* gradients first written here are zeroed just before */
    const gc_node *cn = p->bw_cat[b] >= 0 ? &m->nodes[c->bsteps[p->bw_cat[b]].node] : NULL; /* its Concat */
    if (cn) { /* the Concat's gradient array (filled when the loop reaches its step) */
        bst->k.fuse.gcat_in = c->bsteps[p->bw_cat[b]].k.gin;
        bst->k.fuse.cat_in = c->steps[bst->fstep].k.fuse.cat_in; /* the inputs' shapes */
        bst->k.fuse.n_cat = cn->n_in;
    }
    bst->zero = gc_malloc2((size_t)n->n_in + (cn ? (size_t)cn->n_in : 0) + 1, sizeof(int));
    if (!bst->zero) return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
    for (int k = 0; k < n->n_in; k++) {
        int v = k == 0 && rdx >= 0 ? rdx : n->in[k];
        /* a shared gradient (fuse.c's fuse_add_grads) already holds its value: neither zeroed nor assigned */
        if (v < 0 || !bst->k.gin[k] || p->gfirst[v] != F + 1 + b || p->gshare[v] >= 0) continue;
        int n_at = 0;
        for (int j = 0; j < n->n_in; j++) n_at += (j == 0 && rdx >= 0 ? rdx : n->in[j]) == v && bst->k.gin[j];
        const int assign = d->bw_assign && !bst->fused && n_at == 1 && bst->k.gout[0];
        first_write(bst, v, assign, k, &bst->k.gin_fresh);
    }
    for (int k = 0; cn && k < cn->n_in; k++) { /* the fused Concat's inputs written first here */
        int v = cn->in[k];
        if (v < 0 || !p->gneed[v] || p->gfirst[v] != F + 1 + b) continue;
        int n_at = 0;
        for (int j = 0; j < cn->n_in; j++) n_at += cn->in[j] == v;
        first_write(bst, v, n_at == 1 && bst->k.gout[0], k, &bst->k.fuse.gcat_fresh);
    }
    return GCAM_OK;
}

/* Buffers of the backward: one gradient per value that carries one, and each step's context. */
static gcam_status plan_backward_buffers(gc_planner *p, gc_alloc *a) {
    gcam_ctx *c = p->c;
    const gc_model *m = p->m;
    if (!p->has_bw) return GCAM_OK;
    c->grads = gc_calloc2((size_t)m->n_values + 1, sizeof(gc_tensor));
    if (!c->grads) return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
    for (int v = 0; v < m->n_values; v++) {
        if (!p->gneed[v] || p->gfirst[v] < 0) continue;
        c->grads[v].dtype = GC_F32;
        c->grads[v].shape = c->vals[v].shape;
        if (p->gshare[v] >= 0) continue; /* bound to its root's buffer in plan_arena */
        int ok = 0;
        size_t bytes = gc_tensor_bytes(GC_F32, &c->vals[v].shape, &ok);
        if (!ok || gc_alloc_reserve(a, bytes, p->gfirst[v], p->glast[v], &c->grads[v].data))
            return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
    }
    gcam_status rc = GCAM_OK;
    for (int b = 0; b < c->n_bsteps && !rc; b++) rc = plan_backward_kctx(p, b, a);
    return rc;
}

/* One arena for every buffer, within max_memory; fused outputs point at their producer's. */
static gcam_status plan_arena(gc_planner *p, gc_alloc *a) {
    gcam_ctx *c = p->c;
    size_t total = gc_alloc_pack(a);
    if (total == SIZE_MAX) return gc_fail(&c->err, GCAM_E_NOMEM, "arena size overflows");
    if (total > c->max_memory)
        return gc_fail(&c->err, GCAM_E_LIMIT, "the plan needs %zu bytes (%.1f MiB) of activation memory, more than "
                       "the %zu bytes (%.1f MiB) allowed (raise the limit with max_memory / --max-memory)", total,
                       (double)total / 1048576.0, c->max_memory, (double)c->max_memory / 1048576.0);
    c->arena_size = total;
    c->arena = total ? aligned_alloc(64, total) : NULL;
    if (total && !c->arena)
        return gc_fail(&c->err, GCAM_E_NOMEM, "cannot allocate %.1f MiB for activations", (double)total / 1048576.0);
    gc_alloc_bind(a, c->arena);
    for (int v = 0; v < p->m->n_values; v++)
        if (p->fused_from[v] >= 0) c->vals[v].data = c->vals[p->fused_from[v]].data;
    for (int v = 0; c->grads && v < p->m->n_values; v++)
        if (p->gshare[v] >= 0) c->grads[v].data = c->grads[p->gshare[v]].data;
    /* aux pointers were planned on the forward kctx; backward reads them from the same place */
    for (int b = 0; b < c->n_bsteps; b++) c->bsteps[b].k.aux = c->steps[c->bsteps[b].fstep].k.aux;
    return GCAM_OK;
}

/* Lifetimes, backward steps, fusions, buffers, arena. */
static gcam_status plan_memory(gcam_ctx *c) {
    gc_planner p;
    gc_alloc *a = gc_alloc_new();
    gcam_status rc = a ? planner_init(&p, c) : gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
    if (!rc) {
        plan_lifetimes(&p);
        rc = plan_backward_steps(&p);
    }
    if (!rc) rc = gc_fuse(&p);
    if (!rc) rc = plan_forward_buffers(&p, a);
    if (!rc) rc = plan_backward_buffers(&p, a);
    if (!rc) rc = plan_arena(&p, a);
    if (a) planner_free(&p);
    gc_alloc_free(a);
    return rc;
}

gcam_status gc_ctx_plan(gcam_ctx *c, const gcam_feed *shapes, int n_shapes, const gcam_ctx_options *o) {
    const gc_model *m = c->m;
    /* One thread pool: OpenMP. OpenBLAS's own pthread pool would spin against it on the same
     * cores; the conv/gemm kernels split their GEMMs over OpenMP threads instead. */
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
    c->nthreads = o && o->n_threads > 0 ? o->n_threads : gc_cpu_count();
    gc_tuning_get(&c->tune);
    c->tune.profile |= c->tune.profile_steps;
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
    rc = plan_memory(c);
    if (!rc && c->tune.profile_steps &&
        (!(c->prof_fw = calloc((size_t)c->n_steps + 1, sizeof(double))) ||
         !(c->prof_bw = calloc((size_t)c->n_bsteps + 1, sizeof(double)))))
        return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
    return rc;
}

gcam_status gc_ctx_forward(gcam_ctx *c) { return gc_ctx_forward_from(c, 0); }


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

/* GCAM_PROFILE_STEPS=1: the 30 slowest steps of each direction, node by node, with their output */
static void prof_steps_report(const gcam_ctx *c, const double *t, int n, int bw) {
    enum { TOP = 30 };
    int top[TOP], k = 0;
    for (int i = 0; i < n; i++) { /* insertion into a short sorted list */
        if (t[i] <= 0 || (k == TOP && t[i] <= t[top[k - 1]])) continue;
        int j = k < TOP ? k++ : TOP - 1;
        for (; j > 0 && t[top[j - 1]] < t[i]; j--) top[j] = top[j - 1];
        top[j] = i;
    }
    for (int j = 0; j < k; j++) {
        const gc_node *nd = &c->m->nodes[bw ? c->bsteps[top[j]].node : c->steps[top[j]].node];
        /* the output's shape and the second input's (a Conv's or Gemm's weights) */
        char shape[2][48] = {"", ""};
        for (int e = 0; e < 2; e++) {
            int v = e == 0 ? (nd->n_out > 0 ? nd->out[0] : -1) : (nd->n_in > 1 ? nd->in[1] : -1);
            const gc_tensor *y = v >= 0 ? &c->vals[v] : NULL;
            for (int d = 0, o = 0; y && d < y->shape.ndim && o < (int)sizeof shape[e] - 12; d++)
                o += snprintf(shape[e] + o, sizeof shape[e] - (size_t)o, d ? "x%lld" : "%lld", (long long)y->shape.d[d]);
        }
        fprintf(stderr, "GCAM_PROFILE: %s step %4d %10.2f ms  %-16s %-18s %-14s %s\n", bw ? "backward" : "forward ",
                top[j], t[top[j]] * 1e3, gc_op_get(nd->op)->name, shape[0], shape[1], nd->name ? nd->name : "");
    }
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
        if (c->abort_fn && c->abort_fn(c->abort_user))
            return gc_fail(&c->err, GCAM_E_ABORTED, "stopped by the abort check before forward step %d of %d", s + 1,
                           c->n_steps);
        int op = m->nodes[st->node].op;
        const gc_opdef *d = gc_op_get(op);
        double t0 = prof ? prof_now() : 0;
        gcam_status rc = d->forward(&st->k);
        if (prof) {
            double dt = prof_now() - t0;
            prof[op].fw += dt, prof[op].nfw++;
            if (c->prof_fw) c->prof_fw[s] += dt;
        }
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
        if (c->abort_fn && c->abort_fn(c->abort_user))
            return gc_fail(&c->err, GCAM_E_ABORTED, "stopped by the abort check before backward step %d of %d", b + 1,
                           stop + 1);
        bst->k.rule = rule;
        int op = m->nodes[bst->node].op;
        const gc_opdef *d = gc_op_get(op);
        double t0 = prof ? prof_now() : 0;
        gcam_status rc = d->backward(&bst->k);
        if (prof) {
            double dt = prof_now() - t0;
            prof[op].bw += dt, prof[op].nbw++;
            if (c->prof_bw) c->prof_bw[b] += dt;
        }
        if (rc) return rc;
        (*n_run)++;
    }
    c->has_backward = 1;
    return GCAM_OK;
}

void gc_ctx_destroy(gcam_ctx *c) {
    if (c->prof) prof_report(c->prof);
    if (c->prof_fw) prof_steps_report(c, c->prof_fw, c->n_steps, 0);
    if (c->prof_bw) prof_steps_report(c, c->prof_bw, c->n_bsteps, 1);
    free(c->prof);
    free(c->prof_fw);
    free(c->prof_bw);
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

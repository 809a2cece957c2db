/* The planner's fusions (planner.h): neighbouring steps computed as one, where it saves a pass
 * over memory or a buffer and the result is the same. Each pass decides from the graph, the
 * lifetimes and the backward plan alone, and records what it fused in the kernels' k.fuse. */
#include "planner.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "model.h"

/* Use counts and producer steps of the values, for the passes below. */
typedef struct fuse_state {
    gc_planner *p;
    int *uses;      /* (n_values) readers among the forward steps */
    int *prod_step; /* (n_values) forward step that computes it, -1: none */
} fuse_state;

static int scalar_in(const fuse_state *f, int s, int k, float *val);

/* The bounds of step s's Clip when they are constants (attributes before opset 11, else inputs 1
 * and 2, each optional: +-inf without one, as act.c reads them) with lo <= hi: 1, else 0. */
static int clip_bounds(const fuse_state *f, int s, float *lo, float *hi) {
    const gc_node *n = &f->p->m->nodes[f->p->c->steps[s].node];
    const char *names[2] = {"min", "max"};
    float v[2] = {-INFINITY, INFINITY};
    for (int i = 0; i < 2; i++) {
        const gc_attr *at = gc_attr_find(n, names[i]);
        if (at) v[i] = gc_attr_float(n, names[i], v[i]);
        if (n->n_in > i + 1 && n->in[i + 1] >= 0 && (at || !scalar_in(f, s, i + 1, &v[i]))) return 0;
    }
    if (!(v[0] <= v[1])) return 0; /* NaN or lo > hi (every output hi): left to Clip */
    *lo = v[0];
    *hi = v[1];
    return 1;
}

/* Step s as a ReLU-like step the fusions take: 1 a Relu (lo 0, hi +inf), 2 a Clip with constant
 * bounds lo <= hi (not with tune.no_act_fusion), 0 neither (or without an input and an output). */
static int relu_like(const fuse_state *f, int s, float *lo, float *hi) {
    const gc_node *n = &f->p->m->nodes[f->p->c->steps[s].node];
    *lo = 0.0f;
    *hi = INFINITY;
    if (n->n_in < 1 || n->n_out < 1) return 0;
    if (n->op == GC_OP_Relu) return 1;
    return n->op == GC_OP_Clip && !f->p->c->tune.no_act_fusion && clip_bounds(f, s, lo, hi) ? 2 : 0;
}

/* Relu fused into its producer (an op with .fuse_relu: Conv, BatchNormalization, Add) when
 * nothing else reads the producer's output: the producer writes max(y, 0) and the Relu's output
 * shares its buffer, which saves a pass over memory and a buffer per pair (ResNet, VGG,
 * DenseNet). The Relu's backward still runs (it reads its output, i.e. the shared buffer; the
 * lifetimes already keep that buffer), unless the producer applies it (below); the
 * producers' backward otherwise reads only weights (Add: nothing).
 * A Clip with constant bounds (MobileNetV2's ReLU6) the same way into a producer whose .fuse_act
 * has GC_ACT_CLAMP (Conv): the producer writes the clamp (k.fuse.act, kmath.h's gc_clamp, Clip's
 * own function) and the Clip's backward step still runs, reading its output, the shared buffer
 * (lo < y < hi there is lo < x < hi, the gradient PyTorch's hardtanh passes), under k->rule as
 * before: the Clip's step keeps its rule. Saves a pass over memory after every such Conv. */
static void fuse_relu(fuse_state *f) {
    gc_planner *p = f->p;
    gcam_ctx *c = p->c;
    const gc_model *m = p->m;
    const int F = p->F;
    const int *uses = f->uses, *prod_step = f->prod_step, *bstep_of = p->bstep_of;
    int *fused_from = p->fused_from, *last = p->last, *glast = p->glast, *bw_relu = p->bw_relu;
    uint8_t *gneed = p->gneed;
    const int has_bw = p->has_bw;
    for (int s = 0; s < F; s++) {
        const gc_node *n = &m->nodes[c->steps[s].node];
        float lo, hi;
        const int kind = relu_like(f, s, &lo, &hi), clip = kind == 2;
        if (!kind) continue;
        int v = n->in[0], r = n->out[0];
        if (v < 0 || r < 0 || prod_step[v] < 0 || uses[v] != 1 || c->vkind[v] != GC_V_RUNTIME ||
            c->vkind[r] != GC_V_RUNTIME || c->vals[v].dtype != GC_F32 || c->kept[v] || m->values[v].is_output ||
            v == c->seed || fused_from[v] >= 0)
            continue;
        gc_step *ps = &c->steps[prod_step[v]];
        const gc_node *pn = &m->nodes[ps->node];
        if (pn->n_out != 1 || ps->k.fuse.relu || ps->k.fuse.act) continue;
        if (clip) {
            if (!(gc_op_get(pn->op)->fuse_act & (1u << GC_ACT_CLAMP))) continue;
            ps->k.fuse.act = GC_ACT_CLAMP;
            ps->k.fuse.act_lo = lo;
            ps->k.fuse.act_hi = hi;
            c->steps[s].fused = 1;
            fused_from[r] = v;
            if (last[v] < last[r]) last[v] = last[r];
            continue; /* its backward stays a step of its own */
        }
        if (!gc_op_get(pn->op)->fuse_relu) continue;
        ps->k.fuse.relu = 1;
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
}

/* An Add joining a convolution's output with a tensor computed before that convolution
 * (ResNet's and MobileNetV2's residual joins): the Conv adds the other operand itself
 * (k.fuse.res: into the bias fill its GEMMs accumulate onto, or the pass that writes its output
 * anyway), then the Add's fused Relu; the Add's step is skipped and its output (and that
 * Relu's) shares the Conv's buffer: one pass over memory (two reads, a write) less per join.
 * Of two Conv operands, the later one takes the Add (the other is then already computed).
 * Also where a backward passes (add_fusable_bw): the buffer then holds the Add's (or its Relu's)
 * output, which is what their backward reads, and nothing reads the Conv's own output. */
/* With a backward planned through the Conv cn or the Add n (whose input i cn computes): neither's
 * backward may read the Conv's output, which the fused pair overwrites with the sum. The Add's
 * (and its Relu's) backward read at most the Add's output, the shared buffer's final value. */
static int add_fusable_bw(const gc_node *cn, const gc_node *n, int i) {
    return !(gc_op_get(cn->op)->bw_out & 1) && !(gc_op_get(n->op)->bw_in >> i & 1);
}

static void fuse_add(fuse_state *f) {
    gc_planner *p = f->p;
    gcam_ctx *c = p->c;
    const gc_model *m = p->m;
    const int F = p->F;
    const int *uses = f->uses, *prod_step = f->prod_step, *bstep_of = p->bstep_of;
    int *fused_from = p->fused_from, *last = p->last;
    for (int s = 0; s < F; s++) {
        const gc_node *n = &m->nodes[c->steps[s].node];
        if (n->op != GC_OP_Add || n->n_in != 2 || n->n_out != 1 || c->steps[s].fused) continue;
        const int ao = n->out[0];
        if (ao < 0 || c->vkind[ao] != GC_V_RUNTIME || c->vals[ao].dtype != GC_F32 || fused_from[ao] >= 0) continue;
        int pick = -1;
        for (int i = 0; i < 2; i++) {
            const int v = n->in[i], r = n->in[1 - i];
            if (v < 0 || r < 0 || v == r || prod_step[v] < 0) continue;
            const int cs = prod_step[v];
            const gc_step *cst = &c->steps[cs];
            const gc_node *cn = &m->nodes[cst->node];
            if (cn->op != GC_OP_Conv || cn->n_out != 1 || cst->fused || cst->k.fuse.relu || cst->k.fuse.res ||
                cst->k.fuse.act || ((bstep_of[cs] >= 0 || bstep_of[s] >= 0) && !add_fusable_bw(cn, n, i)))
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
        cst->k.fuse.res = &c->vals[r];
        cst->k.fuse.relu = c->steps[s].k.fuse.relu;
        c->steps[s].fused = 1;
        for (int x = 0; x < m->n_values; x++)
            if (fused_from[x] == ao) fused_from[x] = v; /* the Add's fused Relu: its output too */
        fused_from[ao] = v;
        if (last[v] < last[ao]) last[v] = last[ao];
    }
}

/* A Concat along axis 1 whose output only a BatchNormalization reads (DenseNet: each layer's
 * norm1 over all earlier features; the transitions; norm5): the BN reads the Concat's inputs
 * in place (k.fuse.cat_in), the Concat's forward step is skipped and its output gets no buffer.
 * When the two backward steps are adjacent, the BN's backward also writes straight into the
 * Concat inputs' gradients (k.fuse.gcat_in): the Concat's backward step is skipped and its output's
 * gradient gets no buffer (one pass less over every dense block's gradient). Otherwise the
 * Concat's backward runs (it reads only gradients); the BN's backward never reads X. */
static void fuse_concat(fuse_state *f) {
    gc_planner *p = f->p;
    gcam_ctx *c = p->c;
    const gc_model *m = p->m;
    const int F = p->F;
    const int *uses = f->uses, *bstep_of = p->bstep_of;
    int *fused_from = p->fused_from, *first = p->first, *last = p->last, *gfirst = p->gfirst, *bw_cat = p->bw_cat;
    uint8_t *gneed = p->gneed;
    const int has_bw = p->has_bw;
    for (int s = 0; s < F; s++) {
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
        c->steps[cs].k.fuse.cat_in = c->steps[s].k.in;
        c->steps[cs].k.fuse.n_cat = n->n_in;
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
}

/* Mul(x, Sigmoid(x)) (SiLU) computed by the Sigmoid in one pass when the Mul directly
 * follows it and nothing else reads the Sigmoid's output: the Mul's step is skipped and its
 * output lives from the Sigmoid's step on. The sigmoid itself then gets no buffer (k.fuse.silu):
 * no backward reads it, or the Sigmoid's backward applies SiLU's whole VJP from x (recomputing
 * the sigmoid is cheaper than storing it and reading it back: EfficientNet's largest tensors),
 * and the Mul's backward step is skipped. */
static void fuse_silu(fuse_state *f) {
    gc_planner *p = f->p;
    gcam_ctx *c = p->c;
    const gc_model *m = p->m;
    const int F = p->F;
    const int END = p->END, has_bw = p->has_bw;
    const int *uses = f->uses, *bstep_of = p->bstep_of;
    int *fused_from = p->fused_from, *first = p->first, *last = p->last, *gfirst = p->gfirst, *glast = p->glast;
    int *bw_silu = p->bw_silu;
    uint8_t *gneed = p->gneed;
    for (int s = 1; s < F; s++) {
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
        c->steps[s - 1].k.fuse.mul = &c->vals[y];
        c->steps[s].fused = 1;
        first[y] = s - 1;
        const int mb = has_bw ? bstep_of[s] : -1, sb = has_bw ? bstep_of[s - 1] : -1;
        if (mb < 0 && sb < 0) { /* no backward passes here (inference, a CAM-only plan's early layers) */
            c->steps[s - 1].k.fuse.silu = 1;
            first[sg] = -1;
        } else if (mb >= 0 && sb == mb + 1 && gneed[x] && gneed[y] && !c->bsteps[mb].fused &&
                   !c->bsteps[sb].fused) {
            c->steps[s - 1].k.fuse.silu = 1;
            first[sg] = -1;
            gneed[sg] = 0;
            c->bsteps[mb].fused = 1;
            bw_silu[sb] = y;
            last[x] = END;                                     /* the fused VJP reads x */
            if (glast[y] < F + 1 + sb) glast[y] = F + 1 + sb;  /* ... and the Mul's output gradient */
            if (gfirst[x] == F + 1 + mb) gfirst[x] = F + 1 + sb; /* x's gradient is first written there */
        }
    }
}

/* A SiLU (a Sigmoid + Mul pair that fuse_silu joined, k.fuse.silu) of a Conv's output, where no
 * backward passes (inference, a Grad-CAM plan's layers before its target): the Conv writes
 * x sigmoid(x) in its last write (k.fuse.act GC_ACT_SILU: kmath.h's function, the Sigmoid's own,
 * so the same bits) and the pair's output shares the Conv's buffer; the Sigmoid's step is skipped
 * too. EfficientNet: one pass over memory less after each expansion and depthwise Conv. Not with a
 * backward: SiLU's VJP reads the pre-activation, which this overwrites. */
static void fuse_conv_silu(fuse_state *f) {
    gc_planner *p = f->p;
    gcam_ctx *c = p->c;
    const gc_model *m = p->m;
    const int *uses = f->uses, *prod_step = f->prod_step, *bstep_of = p->bstep_of;
    int *fused_from = p->fused_from, *last = p->last;
    for (int s = 0; s + 1 < p->F; s++) {
        gc_step *st = &c->steps[s];
        const gc_node *n = &m->nodes[st->node];
        if (n->op != GC_OP_Sigmoid || !st->k.fuse.silu || !st->k.fuse.mul || st->fused || !c->steps[s + 1].fused ||
            bstep_of[s] >= 0 || bstep_of[s + 1] >= 0)
            continue;
        const int x = n->in[0], y = (int)(st->k.fuse.mul - c->vals); /* fuse_silu: the Mul is step s + 1 */
        const int cs = x >= 0 ? prod_step[x] : -1;
        if (cs < 0 || y < 0 || y >= m->n_values || uses[x] != 2 || c->vkind[x] != GC_V_RUNTIME ||
            c->vals[x].dtype != GC_F32 || c->kept[x] || m->values[x].is_output || x == c->seed ||
            fused_from[x] >= 0 || fused_from[y] >= 0 || c->vkind[y] != GC_V_RUNTIME)
            continue;
        gc_step *cst = &c->steps[cs];
        const gc_node *cn = &m->nodes[cst->node];
        if (!(gc_op_get(cn->op)->fuse_act & (1u << GC_ACT_SILU)) || cn->n_out != 1 || cst->fused ||
            cst->k.fuse.relu || cst->k.fuse.act || bstep_of[cs] >= 0)
            continue;
        cst->k.fuse.act = GC_ACT_SILU;
        st->fused = 1;
        fused_from[y] = x;
        if (last[x] < last[y]) last[x] = last[y];
    }
}

/* The step that reads v, when exactly one forward step does (uses[v] == 1), after step `from`. */
static int sole_reader(const fuse_state *f, int v, int from) {
    const gcam_ctx *c = f->p->c;
    const gc_model *m = f->p->m;
    if (v < 0 || f->uses[v] != 1) return -1;
    for (int t = from + 1; t < f->p->F; t++) {
        const gc_node *n = &m->nodes[c->steps[t].node];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] == v) return t;
    }
    return -1;
}

/* The float value of a one-element constant (weights, folded values) at input k of step s's node;
 * 0 when it is not one. */
static int scalar_in(const fuse_state *f, int s, int k, float *val) {
    const gcam_ctx *c = f->p->c;
    const gc_node *n = &f->p->m->nodes[c->steps[s].node];
    int v = n->in[k];
    if (v < 0 || (c->vkind[v] != GC_V_CONST && c->vkind[v] != GC_V_FOLDED) || c->vals[v].dtype != GC_F32 ||
        !c->vals[v].data || gc_numel(&c->vals[v]) != 1)
        return 0;
    *val = *(const float *)c->vals[v].data;
    return 1;
}

/* A step of op `op` with two inputs and one output where input 1 - k is v and input k a scalar
 * constant (either order); its output, or -1. */
static int scalar_step(const fuse_state *f, int s, int op, int v, float *val, int commutes) {
    const gcam_ctx *c = f->p->c;
    const gc_node *n = s >= 0 ? &f->p->m->nodes[c->steps[s].node] : NULL;
    if (!n || n->op != op || n->n_in != 2 || n->n_out != 1 || c->steps[s].fused) return -1;
    if (n->in[0] == v && scalar_in(f, s, 1, val)) return n->out[0];
    if (commutes && n->in[1] == v && scalar_in(f, s, 0, val)) return n->out[0];
    return -1;
}

/* An intermediate of the GELU chain: read once, by the chain, and not wanted after the run. */
static int chain_value(const fuse_state *f, int v, const gc_shape *shape) {
    const gcam_ctx *c = f->p->c;
    return v >= 0 && f->uses[v] == 1 && c->vkind[v] == GC_V_RUNTIME && c->vals[v].dtype == GC_F32 && !c->kept[v] &&
           !f->p->m->values[v].is_output && v != c->seed && f->p->fused_from[v] < 0 &&
           gc_shape_eq(&c->vals[v].shape, shape);
}

/* Step s is Add(a, b) (either order) of a float activation *mm of shape xs and a constant *b of
 * xs's last extent (a Linear's bias): 1, else 0. */
static int bias_add(const fuse_state *f, int s, const gc_shape *xs, int *mm, int *b) {
    const gcam_ctx *c = f->p->c;
    const gc_node *n = &f->p->m->nodes[c->steps[s].node];
    if (n->op != GC_OP_Add || n->n_in != 2 || n->n_out != 1 || xs->ndim < 1) return 0;
    for (int i = 0; i < 2; i++) {
        const int a = n->in[i], w = n->in[1 - i];
        if (a < 0 || w < 0 || c->vkind[a] != GC_V_RUNTIME || c->vals[a].dtype != GC_F32 ||
            !gc_shape_eq(&c->vals[a].shape, xs) || (c->vkind[w] != GC_V_CONST && c->vkind[w] != GC_V_FOLDED) ||
            c->vals[w].dtype != GC_F32 || !c->vals[w].data || gc_numel(&c->vals[w]) != xs->d[xs->ndim - 1])
            continue;
        const gc_shape *ws = &c->vals[w].shape; /* (C), or (1, .., C) */
        int ok = ws->ndim >= 1 && ws->ndim <= xs->ndim;
        for (int k = 0; ok && k + 1 < ws->ndim; k++) ok = ws->d[k] == 1;
        if (!ok) continue;
        *mm = a;
        *b = w;
        return 1;
    }
    return 0;
}

/* GELU as PyTorch exports nn.GELU (ViT's and Swin's MLPs): Div(x, c0) -> Erf -> Add(c1) ->
 * Mul(x, .) -> Mul(c2), five passes over the MLP's widest tensor, computed by the Erf's step in
 * one (k.fuse.gelu_x: the same float operations, so the same result), and with it the Add of
 * the Linear's bias before it (k.fuse.gelu_b) when only the chain reads its output. Only where no
 * backward passes (inference, a Grad-CAM plan's layers before its target); the other steps are
 * skipped and the intermediates get no buffer. */
static void fuse_gelu(fuse_state *f) {
    gc_planner *p = f->p;
    gcam_ctx *c = p->c;
    const gc_model *m = p->m;
    const int *bstep_of = p->bstep_of;
    for (int s = 0; s < p->F; s++) {
        const gc_node *n = &m->nodes[c->steps[s].node];
        if (n->op != GC_OP_Erf || n->n_in != 1 || n->n_out != 1 || c->steps[s].fused || bstep_of[s] >= 0) continue;
        const int d = n->in[0], e = n->out[0], sd = d >= 0 ? f->prod_step[d] : -1;
        if (sd < 0 || bstep_of[sd] >= 0) continue;
        const gc_node *dn = &m->nodes[c->steps[sd].node];
        float c0, c1, c2;
        const int x = dn->n_in == 2 ? dn->in[0] : -1;
        if (x < 0 || scalar_step(f, sd, GC_OP_Div, x, &c0, 0) != d) continue;
        const gc_shape *xs = &c->vals[x].shape;
        if (c->vkind[x] != GC_V_RUNTIME || c->vals[x].dtype != GC_F32 || !chain_value(f, d, xs) || !chain_value(f, e, xs))
            continue;
        const int sa = sole_reader(f, e, s), a = scalar_step(f, sa, GC_OP_Add, e, &c1, 1);
        const int sm = sole_reader(f, a, sa);
        if (!chain_value(f, a, xs) || sm < 0 || c->steps[sm].fused) continue;
        const gc_node *mn = &m->nodes[c->steps[sm].node];
        if (mn->op != GC_OP_Mul || mn->n_in != 2 || mn->n_out != 1 ||
            !((mn->in[0] == x && mn->in[1] == a) || (mn->in[0] == a && mn->in[1] == x)))
            continue;
        const int mv = mn->out[0], sh = sole_reader(f, mv, sm), y = scalar_step(f, sh, GC_OP_Mul, mv, &c2, 1);
        if (!chain_value(f, mv, xs) || y < 0 || c->vkind[y] != GC_V_RUNTIME || p->fused_from[y] >= 0 ||
            !gc_shape_eq(&c->vals[y].shape, xs) || bstep_of[sa] >= 0 || bstep_of[sm] >= 0 || bstep_of[sh] >= 0)
            continue;
        gc_kfuse *fu = &c->steps[s].k.fuse;
        const int sb = f->prod_step[x];
        int mm = -1, b = -1; /* x = mm + b, a Linear's bias Add: fused in too */
        if (f->uses[x] == 2 && !c->kept[x] && !m->values[x].is_output && x != c->seed && p->fused_from[x] < 0 &&
            bstep_of[sb] < 0 && !c->steps[sb].fused && bias_add(f, sb, xs, &mm, &b)) {
            c->steps[sb].fused = 1;
            p->first[x] = -1;
            if (p->last[mm] < s) p->last[mm] = s;
            fu->gelu_b = &c->vals[b];
        }
        fu->gelu_x = &c->vals[mm >= 0 ? mm : x];
        fu->gelu_y = &c->vals[y];
        fu->gelu_c[0] = c0;
        fu->gelu_c[1] = c1;
        fu->gelu_c[2] = c2;
        c->steps[sd].fused = c->steps[sa].fused = c->steps[sm].fused = c->steps[sh].fused = 1;
        p->first[d] = p->first[e] = p->first[a] = p->first[mv] = -1; /* no buffers */
        p->first[y] = s;                                             /* written at the Erf's step */
        if (p->last[x] < s) p->last[x] = s;
    }
}

/* A Transpose that moves only axes of extent 1 (ViT's (1, T, C) <-> (T, 1, C)): its output is
 * its input's bytes. */
static int transpose_keeps_bytes(const gc_node *n, const gc_shape *in) {
    const int64_t *perm;
    size_t np = gc_attr_ints(n, "perm", &perm);
    int last = -1;
    if (np && (size_t)in->ndim != np) return 0;
    for (int i = 0; i < in->ndim; i++) {
        int a = np ? (int)perm[i] : in->ndim - 1 - i;
        if (a < 0) a += in->ndim;
        if (a < 0 || a >= in->ndim) return 0;
        if (in->d[a] == 1) continue;
        if (a < last) return 0;
        last = a;
    }
    return 1;
}

/* Ops whose output is their input's bytes under another shape (Reshape, Flatten, Squeeze,
 * Unsqueeze, Identity, and a Transpose of unit axes) share its buffer instead of copying it: the
 * step is skipped and the root buffer lives as long as the view. Not where the explainer may
 * write into either value (kept ones: Score-CAM's perturbed layer would leak into the other), nor
 * for graph inputs (bound per run). Their backward steps still run (they read no forward data). */
static void fuse_views(fuse_state *f) {
    gc_planner *p = f->p;
    gcam_ctx *c = p->c;
    const gc_model *m = p->m;
    int *fused_from = p->fused_from;
    for (int s = 0; s < p->F; s++) {
        const gc_node *n = &m->nodes[c->steps[s].node];
        const int op = n->op;
        if (c->steps[s].fused || n->n_in < 1 || n->n_out < 1 || n->in[0] < 0 || n->out[0] < 0) continue;
        if (op != GC_OP_Reshape && op != GC_OP_Flatten && op != GC_OP_Squeeze && op != GC_OP_Unsqueeze &&
            op != GC_OP_Identity && op != GC_OP_Transpose)
            continue;
        const int v = n->in[0], y = n->out[0];
        const int r = fused_from[v] >= 0 ? fused_from[v] : v; /* the buffer's owner */
        if (c->vkind[v] != GC_V_RUNTIME || c->vkind[y] != GC_V_RUNTIME || f->prod_step[v] < 0 || p->first[r] < 0 ||
            p->first[y] < 0 || fused_from[y] >= 0 || c->kept[v] || c->kept[y] || v == c->seed || y == c->seed ||
            c->vals[v].dtype != c->vals[y].dtype || gc_numel(&c->vals[v]) != gc_numel(&c->vals[y]))
            continue;
        if (op == GC_OP_Transpose && !transpose_keeps_bytes(n, &c->vals[v].shape)) continue;
        c->steps[s].fused = 1;
        fused_from[y] = r;
        if (p->last[r] < p->last[y]) p->last[r] = p->last[y];
    }
}

/* A Relu (or a Clip with constant bounds: MobileNetV2's ReLU6, knob no_act_fusion) whose output
 * only a Conv reads, as that Conv's input (ResNet's and DenseNet's Conv -> Relu -> Conv), with the
 * two backward steps adjacent: the Conv's backward applies the Relu's VJP to
 * its dX while writing it (reading the Relu's output, its own input, which the Relu's backward
 * kept) into the Relu's input gradient (k.fuse.relu_dx); the Relu's backward step is skipped and
 * its output's gradient gets no buffer: a pass over memory and a buffer less per pair, the same
 * values. */
static void fuse_relu_dx(fuse_state *f) {
    gc_planner *p = f->p;
    gcam_ctx *c = p->c;
    const gc_model *m = p->m;
    const int T = p->F + 1; /* a backward step's time: T + its index */
    if (!p->has_bw) return;
    for (int s = 0; s < p->F; s++) {
        const gc_node *n = &m->nodes[c->steps[s].node];
        const int rb = p->bstep_of[s];
        float lo, hi;
        const int kind = relu_like(f, s, &lo, &hi);
        if (!kind || rb < 1 || c->bsteps[rb].fused) continue;
        const int v = n->in[0], r = n->out[0], cs = sole_reader(f, r, s), cb = rb - 1;
        if (v < 0 || r < 0 || cs < 0 || p->bstep_of[cs] != cb || c->bsteps[cb].fused || p->bw_relu_dx[cb] >= 0)
            continue;
        const gc_node *cn = &m->nodes[c->steps[cs].node];
        int only0 = cn->n_in >= 1 && cn->in[0] == r;
        for (int k = 1; k < cn->n_in; k++) only0 &= cn->in[k] != r;
        /* not for kept values, as the other fusions: a kept tensor's steps stay as they are (the
         * backward node count, tests' forced kinks) */
        if (!gc_op_get(cn->op)->fuse_relu_dx || !only0 || !p->gneed[r] || !p->gneed[v] || r == c->seed ||
            c->kept[v] || c->kept[r] ||
            p->gshare[v] >= 0 || p->gfirst[r] != T + cb || p->glast[r] != T + rb || p->gfirst[v] != T + rb ||
            !gc_shape_eq(&c->vals[v].shape, &c->vals[r].shape))
            continue;
        c->bsteps[rb].fused = 1;
        p->bw_relu_dx[cb] = v;
        p->bw_dx_clip[cb] = kind == 2;
        p->bw_dx_lo[cb] = lo;
        p->bw_dx_hi[cb] = hi;
        p->gneed[r] = 0;
        p->gfirst[v] = T + cb;
    }
}

/* The earliest time on the timeline at which a backward step other than ab may write v's
 * gradient: the backward steps of v's other readers; a fused one's a step early (a fused Concat's
 * inputs are written by the BatchNormalization's step just before the Concat's; a fused SiLU
 * Mul's by the Sigmoid's, after it); INT_MAX: none. */
static int other_grad_writes(const gc_planner *p, int v, int ab) {
    const gcam_ctx *c = p->c;
    int t = INT_MAX;
    for (int b = 0; b < c->n_bsteps; b++) {
        const gc_node *n = &p->m->nodes[c->bsteps[b].node];
        const uint64_t diff = gc_op_get(n->op)->diff_in;
        const int tb = p->F + 1 + b - (c->bsteps[b].fused ? 1 : 0);
        for (int k = 0; b != ab && k < n->n_in; k++)
            if (n->in[k] == v && (diff >> k & 1) && tb < t) t = tb;
    }
    return t;
}

/* Whether a value other than gy that shares root's gradient buffer is still in use at time t. */
static int grad_buffer_busy(const gc_planner *p, int root, int gy, int t) {
    for (int v = 0; v < p->m->n_values; v++)
        if (v != gy && (v == root || p->gshare[v] == root) && p->glast[v] >= t) return 1;
    return 0;
}

/* An Add's VJP is the identity: the gradient of an input of the output's shape that the Add's
 * backward writes first is its output's gradient (through the Add's fused Relu: that Relu's VJP of
 * it), so it shares that buffer (p->gshare) instead of being copied into its own, when the output's
 * gradient is not read after the Add's backward and no other value in that buffer is still in use.
 * Both inputs share it when neither input's other readers add into it before the other's last use
 * (ResNet: the block's last Conv output, read only by the Add, and the block input, whose other
 * reader, the block's first Conv, comes later in the backward): the Add's backward is then the
 * Relu's VJP in place, or nothing. The kernel sees gin == gout (add_backward). Same values: the
 * VJP written once and copied instead of computed twice. */
static void fuse_add_grads(fuse_state *f) {
    gc_planner *p = f->p;
    gcam_ctx *c = p->c;
    const gc_model *m = p->m;
    if (!p->has_bw) return;
    for (int s = p->F - 1; s >= 0; s--) { /* backward order: a shared buffer passes down a chain of joins */
        const gc_node *n = &m->nodes[c->steps[s].node];
        const int ab = p->bstep_of[s];
        if (ab < 0 || n->op != GC_OP_Add || n->n_in != 2 || n->n_out != 1 || n->out[0] < 0 || c->bsteps[ab].fused)
            continue;
        const int t = p->F + 1 + ab, gy = p->bw_relu[ab] >= 0 ? p->bw_relu[ab] : n->out[0];
        if (!p->gneed[gy] || p->gfirst[gy] < 0 || p->gfirst[gy] >= t || p->glast[gy] != t) continue;
        const int root = p->gshare[gy] >= 0 ? p->gshare[gy] : gy;
        if (grad_buffer_busy(p, root, gy, t)) continue;
        int in[2], ni = 0;
        for (int i = 0; i < 2; i++) {
            const int v = n->in[i];
            if (v < 0 || v == n->in[1 - i] || v == gy || !p->gneed[v] || p->gfirst[v] != t || p->gshare[v] >= 0 ||
                !gc_shape_eq(&c->vals[v].shape, &c->vals[n->out[0]].shape))
                continue;
            in[ni++] = v;
        }
        if (ni == 2 && !(other_grad_writes(p, in[1], ab) > p->glast[in[0]] &&
                         other_grad_writes(p, in[0], ab) > p->glast[in[1]]))
            ni = 1;
        for (int i = 0; i < ni; i++) p->gshare[in[i]] = root;
    }
    /* a shared buffer lives as long as the last of its values */
    for (int v = 0; v < m->n_values; v++)
        if (p->gshare[v] >= 0 && p->glast[p->gshare[v]] < p->glast[v]) p->glast[p->gshare[v]] = p->glast[v];
}

gcam_status gc_fuse(gc_planner *p) {
    gcam_ctx *c = p->c;
    const gc_model *m = p->m;
    if (c->tune.no_fusion) return GCAM_OK;
    fuse_state f = {.p = p, .uses = calloc((size_t)m->n_values + 1, sizeof(int)),
                    .prod_step = gc_malloc2((size_t)m->n_values + 1, sizeof(int))};
    if (!f.uses || !f.prod_step) {
        free(f.uses);
        free(f.prod_step);
        return gc_fail(&c->err, GCAM_E_NOMEM, "out of memory");
    }
    for (int v = 0; v < m->n_values; v++) f.prod_step[v] = -1;
    for (int s = 0; s < p->F; s++) {
        const gc_node *n = &m->nodes[c->steps[s].node];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0) f.uses[n->in[k]]++;
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] >= 0) f.prod_step[n->out[j]] = s;
    }
    fuse_relu(&f);
    if (!c->tune.no_add_fusion) fuse_add(&f);
    fuse_concat(&f);
    fuse_silu(&f);
    if (!c->tune.no_act_fusion) fuse_conv_silu(&f);
    fuse_gelu(&f);
    fuse_views(&f);
    fuse_relu_dx(&f);
    if (!c->tune.no_add_fusion) fuse_add_grads(&f);
    free(f.uses);
    free(f.prod_step);
    return GCAM_OK;
}

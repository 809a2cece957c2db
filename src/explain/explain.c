/* The explanation methods (docs/methods.md has every formula). One context per explainer:
 * one forward, then any number of backward passes (per method and target) that only visit the
 * nodes between the target layers (or the input) and the score. */
#include <math.h>
#include <cblas.h>

#include "../graph/model.h"
#include "explain.h"

/* ---- small numeric helpers ---- */

/* Bilinear resize with half-pixel centres (PyTorch align_corners=False).
 * dst (h2, w2) <- src (h1, w1). */
void gc_resize_bilinear(float *dst, int64_t h2, int64_t w2, const float *src, int64_t h1, int64_t w1) {
    double sy = (double)h1 / (double)h2, sx = (double)w1 / (double)w2;
    for (int64_t y = 0; y < h2; y++) {
        double fy = ((double)y + 0.5) * sy - 0.5;
        if (fy < 0) fy = 0;
        int64_t y0 = (int64_t)fy, y1 = y0 + 1 < h1 ? y0 + 1 : h1 - 1;
        double ly = fy - (double)y0;
        for (int64_t x = 0; x < w2; x++) {
            double fx = ((double)x + 0.5) * sx - 0.5;
            if (fx < 0) fx = 0;
            int64_t x0 = (int64_t)fx, x1 = x0 + 1 < w1 ? x0 + 1 : w1 - 1;
            double lx = fx - (double)x0;
            double v = (1 - ly) * ((1 - lx) * src[y0 * w1 + x0] + lx * src[y0 * w1 + x1]) +
                       ly * ((1 - lx) * src[y1 * w1 + x0] + lx * src[y1 * w1 + x1]);
            dst[y * w2 + x] = (float)v;
        }
    }
}

/* Min-max to [0,1]; a constant (or empty) array becomes zeros. */
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Standard normals by Box-Muller on splitmix64 uniforms (docs/methods.md). The stream is one
 * sequence across calls: a pair's second normal left over by an odd n starts the next call. */
void gc_normal_fill(float *out, size_t n, gc_normal_stream *g) {
    size_t i = 0;
    if (n && g->has_spare) {
        out[i++] = g->spare;
        g->has_spare = 0;
    }
    for (; i < n; i += 2) {
        double u1 = (double)(splitmix64(&g->state) >> 11) * 0x1.0p-53;
        double u2 = (double)(splitmix64(&g->state) >> 11) * 0x1.0p-53;
        double r = sqrt(-2.0 * log(1.0 - u1));
        out[i] = (float)(r * cos(2.0 * M_PI * u2));
        float z2 = (float)(r * sin(2.0 * M_PI * u2));
        if (i + 1 < n) out[i + 1] = z2;
        else {
            g->spare = z2;
            g->has_spare = 1;
        }
    }
}

/* ---- the explainer ---- */

static const char *vname(const gcam_explainer *e, int v) { return e->m->values[v].name; }

static int is_softmax_like(int op) { return op == GC_OP_Softmax || op == GC_OP_LogSoftmax || op == GC_OP_Sigmoid; }

/* Value index for a user-given layer: a tensor name, or a node name (its first output). */
static int resolve_layer(const gc_model *m, const char *name) {
    int v = gc_model_find_value(m, name);
    if (v >= 0) return v;
    for (int i = 0; i < m->n_nodes; i++)
        if (strcmp(m->nodes[i].name, name) == 0 && m->nodes[i].n_out > 0) return m->nodes[i].out[0];
    return -1;
}

/* The last 4-D float activation with spatial size > 1 on which the score depends; identity-sized
 * pools after it (VGG's adaptive 7x7 average pool) are looked through. */
static int auto_layer(gcam_explainer *e, const gcam_ctx *c, int *step) {
    const gc_model *m = e->m;
    uint8_t *anc = calloc((size_t)m->n_values + 1, 1);
    if (!anc) return -1;
    anc[e->score] = 1;
    int best = -1;
    for (int s = gc_ctx_num_steps(c) - 1; s >= 0; s--) {
        const gc_node *n = &m->nodes[gc_ctx_step_node(c, s)];
        int hit = 0;
        for (int j = 0; j < n->n_out; j++) hit |= n->out[j] >= 0 && anc[n->out[j]];
        if (!hit) continue;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && gc_ctx_is_activation(c, n->in[k])) anc[n->in[k]] = 1;
        if (best >= 0) continue;
        for (int j = 0; j < n->n_out; j++) {
            int v = n->out[j];
            if (v < 0 || !anc[v] || v == e->score) continue;
            const gc_tensor *t = gc_ctx_value(c, v);
            /* maps over the picture: (N, C, h, w) with the input's aspect, to within a cell (not a
             * recurrent layer's (L, dirs, N, hidden)) */
            int64_t off = t->shape.ndim == 4 ? t->shape.d[2] * e->W - t->shape.d[3] * e->H : 0;
            if (t->dtype == GC_F32 && t->shape.ndim == 4 && t->shape.d[2] * t->shape.d[3] > 1 &&
                (off < 0 ? -off : off) <= e->H + e->W) {
                best = v;
                *step = s;
                break;
            }
        }
    }
    free(anc);
    /* look through shape-preserving pools / identities */
    while (best >= 0 && m->values[best].producer >= 0) {
        const gc_node *n = &m->nodes[m->values[best].producer];
        if (!(n->op == GC_OP_AveragePool || n->op == GC_OP_MaxPool || n->op == GC_OP_Identity || n->op == GC_OP_Dropout))
            break;
        int in = n->in[0];
        if (in < 0 || !gc_ctx_is_activation(c, in) || !gc_shape_eq(&gc_ctx_value(c, in)->shape, &gc_ctx_value(c, best)->shape)) break;
        best = in;
    }
    return best;
}

/* ---- layers read as maps: (N, C, H, W), channel-last maps, transformer tokens ---- */

/* A grid h x w of n cells with the input's aspect ratio (h W == w H); 0 if there is none. */
static int grid_of(int64_t n, int64_t H, int64_t W, int64_t *h, int64_t *w) {
    for (int64_t a = 1; a <= n && a <= (1 << 20); a++)
        if (n % a == 0 && a * W == (n / a) * H) {
            *h = a;
            *w = n / a;
            return 1;
        }
    return 0;
}

/* How tensor t is read as maps (N, K, h, w), against the input's H x W: 0, or -1 with why. A 4-D
 * tensor is (N, C, H, W) unless only channel-last reading has the input's aspect; a 3-D one is
 * tokens (N, T, C) whose last h * w form the grid (tokens_h/w, or found, see gcam.h). */
static int layer_view(const gcam_explainer *e, const gc_tensor *t, gc_layer_view *lv, char *why, size_t nwhy) {
    const gc_shape *s = &t->shape;
    int64_t H = e->H, W = e->W;
    memset(lv, 0, sizeof *lv);
    if (t->dtype != GC_F32) {
        snprintf(why, nwhy, "it is not float");
        return -1;
    }
    if (s->ndim == 4) {
        lv->N = s->d[0];
        int64_t off = s->d[2] * W - s->d[3] * H; /* (N, C, h, w) within a cell of the input's aspect */
        int nchw = (off < 0 ? -off : off) <= H + W, nhwc = s->d[1] * W == s->d[2] * H && s->d[1] * s->d[2] > 1;
        lv->kind = !nchw && nhwc ? GC_LV_NHWC : GC_LV_NCHW;
        lv->K = lv->kind == GC_LV_NHWC ? s->d[3] : s->d[1];
        lv->h = lv->kind == GC_LV_NHWC ? s->d[1] : s->d[2];
        lv->w = lv->kind == GC_LV_NHWC ? s->d[2] : s->d[3];
        return 0;
    }
    if (s->ndim != 3) {
        snprintf(why, nwhy, "it is neither maps (N, C, H, W) or (N, H, W, C) nor tokens (N, T, C)");
        return -1;
    }
    int64_t T = s->d[1], gh = e->o.tokens_h, gw = e->o.tokens_w, sk = e->o.skip_tokens;
    *lv = (gc_layer_view){.kind = GC_LV_TOKENS, .N = s->d[0], .K = s->d[2]};
    if (gh > 0 && gw > 0) {
        if (gh > (1 << 20) || gw > (1 << 20) || gh * gw > T || (sk > 0 && T - gh * gw != sk)) {
            snprintf(why, nwhy, "a grid of %lldx%lld tokens%s does not fit its %lld tokens", (long long)gh, (long long)gw,
                     sk > 0 ? " after the special ones" : "", (long long)T);
            return -1;
        }
        lv->h = gh;
        lv->w = gw;
        lv->skip = T - gh * gw;
        return 0;
    }
    for (int64_t k = sk > 0 ? sk : 0; k <= (sk > 0 ? sk : 2); k++)
        if (T - k > 0 && grid_of(T - k, H, W, &lv->h, &lv->w)) {
            lv->skip = k;
            return 0;
        }
    snprintf(why, nwhy, "its %lld tokens form no grid with the input's %lldx%lld aspect after %s special tokens; "
             "give the grid (tokens_h x tokens_w, --tokens-grid HxW)", (long long)T, (long long)W, (long long)H,
             sk > 0 ? "the" : "0, 1 or 2");
    return -1;
}

/* A transformer's automatic layer: the last LayerNormalization on the way to the score whose output
 * is tokens that attention still mixes later on (a MatMul of two activations downstream: ViT's last
 * block's first norm, not its second nor the final one, which only the class token leaves), or
 * channel-last maps (Swin's final norm). -1 if none; *step: its step. */
static int auto_token_layer(gcam_explainer *e, const gcam_ctx *c, int *step) {
    const gc_model *m = e->m;
    uint8_t *anc = calloc((size_t)m->n_values + 1, 1), *mix = calloc((size_t)m->n_values + 1, 1);
    int best = -1;
    if (!anc || !mix) {
        free(anc);
        free(mix);
        return -2;
    }
    anc[e->score] = 1;
    for (int s = gc_ctx_num_steps(c) - 1; s >= 0 && best < 0; s--) {
        const gc_node *n = &m->nodes[gc_ctx_step_node(c, s)];
        int hit = 0, mixes = 0;
        for (int j = 0; j < n->n_out; j++) {
            hit |= n->out[j] >= 0 && anc[n->out[j]];
            mixes |= n->out[j] >= 0 && mix[n->out[j]];
        }
        if (!hit) continue;
        mixes |= n->op == GC_OP_MatMul && n->n_in == 2 && n->in[0] >= 0 && n->in[1] >= 0 &&
                 gc_ctx_is_activation(c, n->in[0]) && gc_ctx_is_activation(c, n->in[1]);
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && gc_ctx_is_activation(c, n->in[k])) {
                anc[n->in[k]] = 1;
                mix[n->in[k]] |= (uint8_t)mixes;
            }
        if (n->op != GC_OP_LayerNormalization || n->out[0] < 0) continue;
        gc_layer_view lv;
        char why[300];
        const gc_tensor *t = gc_ctx_value(c, n->out[0]);
        if (layer_view(e, t, &lv, why, sizeof why)) {
            if (t->shape.ndim == 3 && mix[n->out[0]] && (e->o.tokens_h > 0 || e->o.skip_tokens > 0)) {
                /* the grid was given and does not fit the transformer's tokens: said, not skipped */
                gc_fail(&e->err, GCAM_E_ARG, "the automatic layer '%s': %s", vname(e, n->out[0]), why);
                best = -3;
                break;
            }
            continue;
        }
        if (lv.kind == GC_LV_NHWC || (lv.kind == GC_LV_TOKENS && mix[n->out[0]])) {
            best = n->out[0];
            *step = s;
        }
    }
    free(anc);
    free(mix);
    return best;
}

/* The values the steps after each layer read from before it (Ablation-CAM re-runs only those
 * steps), the layers and graph inputs left out: into e->cross. Their count, or -1 out of memory. */
static int find_crossings(gcam_explainer *e, const gcam_ctx *c) {
    for (int l = 0; l < e->n_layers; l++) {
        int *cr = NULL, n = 0;
        if (gc_ctx_crossing_values(c, gc_ctx_first_step_after(c, e->layers[l]), &cr, &n)) return -1;
        int *grown = realloc(e->cross, sizeof *grown * ((size_t)e->n_cross + (size_t)n + 1));
        if (!grown) {
            free(cr);
            return -1;
        }
        e->cross = grown;
        for (int i = 0; i < n; i++) {
            int v = cr[i], dup = e->m->values[v].is_input;
            for (int k = 0; k < e->n_layers; k++) dup |= e->layers[k] == v;
            for (int k = 0; k < e->n_cross; k++) dup |= e->cross[k] == v;
            if (!dup) e->cross[e->n_cross++] = v;
        }
        free(cr);
    }
    return e->n_cross;
}

/* The global attention maps on the way to the score (rollout): Softmax outputs (N * heads, T, T) or
 * (N, heads, T, T) whose T tokens form a grid over the input (after special tokens) and which a
 * MatMul with another activation reads (attention @ V). Windowed attention (Swin: a leading
 * dimension of N * windows) is not global and is left out. Their count, or -1 out of memory. */
static int find_attention(gcam_explainer *e, const gcam_ctx *c) {
    const gc_model *m = e->m;
    uint8_t *anc = calloc((size_t)m->n_values + 1, 1);
    int *found = gc_malloc2((size_t)gc_ctx_num_steps(c) + 1, sizeof(int)), n = 0;
    if (!anc || !found) {
        free(anc);
        free(found);
        return -1;
    }
    anc[e->score] = 1;
    int64_t T0 = -1;
    for (int s = gc_ctx_num_steps(c) - 1; s >= 0; s--) {
        const gc_node *nd = &m->nodes[gc_ctx_step_node(c, s)];
        int hit = 0;
        for (int j = 0; j < nd->n_out; j++) hit |= nd->out[j] >= 0 && anc[nd->out[j]];
        if (!hit) continue;
        for (int k = 0; k < nd->n_in; k++)
            if (nd->in[k] >= 0 && gc_ctx_is_activation(c, nd->in[k])) anc[nd->in[k]] = 1;
        if (nd->op != GC_OP_Softmax || nd->out[0] < 0) continue;
        int v = nd->out[0];
        const gc_shape *sh = &gc_ctx_value(c, v)->shape;
        int64_t T = sh->ndim >= 3 ? sh->d[sh->ndim - 1] : -1;
        int lead_ok = (sh->ndim == 4 && sh->d[0] == e->N) || (sh->ndim == 3 && e->N > 0 && sh->d[0] % e->N == 0);
        if (!lead_ok || T < 2 || sh->d[sh->ndim - 2] != T || (T0 >= 0 && T != T0)) continue;
        int reads = 0; /* attention @ V */
        for (int t = s + 1; t < gc_ctx_num_steps(c) && !reads; t++) {
            const gc_node *u = &m->nodes[gc_ctx_step_node(c, t)];
            reads = u->op == GC_OP_MatMul && u->n_in == 2 && u->in[0] == v && u->in[1] >= 0 && gc_ctx_is_activation(c, u->in[1]);
        }
        gc_tensor tok = {.dtype = GC_F32, .shape = {.ndim = 3, .d = {e->N, T, 1}}};
        char why[300];
        if (!reads || layer_view(e, &tok, &e->attn_grid, why, sizeof why)) continue;
        T0 = T;
        found[n++] = v;
    }
    free(anc);
    e->attn = gc_malloc2((size_t)n + 1, sizeof(int));
    if (!e->attn) {
        free(found);
        return -1;
    }
    for (int i = 0; i < n; i++) e->attn[i] = found[n - 1 - i]; /* step order */
    e->n_attn = n;
    free(found);
    return n;
}

/* ---- a detector's automatic layers ----
 *
 * A detection output (N, fields, A) or (N, A, fields) is several pyramid levels' head outputs
 * (N, C', h, w), each flattened, then concatenated. The CAM layers, one per level, are the maps
 * the level's class scores are computed from: the input of the Conv making them. That Conv is
 * found back from the level's output through its last channel-Concat input (YOLOv8 concatenates
 * box then class branch), or directly (YOLOv5's one Conv per level). Channel weights there are
 * class-specific, where the neck's maps, shared with the box branch, are not (docs/detection.md).
 * Else the last map two or more of the level's own Convs read (the fork into the branches). With
 * one level, the usual automatic layer. */

#define GC_MAX_LEVELS 8

/* 4-D float activation with a spatial extent > 1. */
static int spatial_act(const gcam_ctx *c, int v) {
    if (v < 0 || !gc_ctx_is_activation(c, v)) return 0;
    const gc_tensor *t = gc_ctx_value(c, v);
    return t->dtype == GC_F32 && t->shape.ndim == 4 && t->shape.d[2] * t->shape.d[3] > 1;
}

/* The levels: 4-D inputs of the Reshape / Flatten nodes on the path to the score whose output is
 * not 4-D, in step order. Returns their count (0 when more than GC_MAX_LEVELS), -1 out of memory. */
static int head_levels(const gcam_explainer *e, const gcam_ctx *c, int *lv) {
    const gc_model *m = e->m;
    uint8_t *anc = calloc((size_t)m->n_values + 1, 1);
    if (!anc) return -1;
    anc[e->score] = 1;
    int n = 0, too_many = 0;
    for (int s = gc_ctx_num_steps(c) - 1; s >= 0; s--) {
        const gc_node *nd = &m->nodes[gc_ctx_step_node(c, s)];
        int hit = 0;
        for (int j = 0; j < nd->n_out; j++) hit |= nd->out[j] >= 0 && anc[nd->out[j]];
        if (!hit) continue;
        for (int k = 0; k < nd->n_in; k++)
            if (nd->in[k] >= 0) anc[nd->in[k]] = 1;
        if ((nd->op == GC_OP_Reshape || nd->op == GC_OP_Flatten) && spatial_act(c, nd->in[0]) &&
            gc_ctx_value(c, nd->out[0])->shape.ndim != 4) {
            if (n == GC_MAX_LEVELS) too_many = 1;
            else lv[n++] = nd->in[0];
        }
    }
    free(anc);
    for (int i = 0; i < n / 2; i++) { /* step order */
        int t = lv[i];
        lv[i] = lv[n - 1 - i];
        lv[n - 1 - i] = t;
    }
    return too_many ? 0 : n;
}

/* Back from the level's output to the Conv making its class scores (the last input of a channel
 * Concat, else the first 4-D input of each op passed); that Conv's input, or -1. */
static int level_conv_input(const gc_model *m, const gcam_ctx *c, int v) {
    for (int guard = 0; guard < 64 && v >= 0 && m->values[v].producer >= 0; guard++) {
        const gc_node *nd = &m->nodes[m->values[v].producer];
        int next = -1;
        if (nd->op == GC_OP_Concat && gc_attr_int(nd, "axis", 0) == 1) {
            for (int k = nd->n_in - 1; k >= 0 && next < 0; k--)
                if (spatial_act(c, nd->in[k])) next = nd->in[k];
        } else {
            for (int k = 0; k < nd->n_in && next < 0; k++)
                if (spatial_act(c, nd->in[k])) next = nd->in[k];
        }
        if (nd->op == GC_OP_Conv) return next;
        v = next;
    }
    return -1;
}

/* Per level the neck's map feeding its head (see above) into out[]; the number found (every
 * level, or 0), -1 out of memory. */
static int head_layers(const gcam_explainer *e, const gcam_ctx *c, int *out) {
    const gc_model *m = e->m;
    if (gc_ctx_value(c, e->score)->shape.ndim != 3) return 0;
    int lv[GC_MAX_LEVELS];
    int n = head_levels(e, c, lv);
    if (n < 2) return n < 0 ? -1 : 0;
    uint8_t *reach = calloc((size_t)m->n_values + 1, 1); /* bit i: an ancestor of level i (or it) */
    uint8_t *readers = calloc((size_t)m->n_values + 1, 1); /* Conv nodes of level i reading it */
    if (!reach || !readers) {
        free(reach);
        free(readers);
        return -1;
    }
    for (int i = 0; i < n; i++) reach[lv[i]] |= (uint8_t)(1u << i);
    for (int s = gc_ctx_num_steps(c) - 1; s >= 0; s--) {
        const gc_node *nd = &m->nodes[gc_ctx_step_node(c, s)];
        uint8_t r = 0;
        for (int j = 0; j < nd->n_out; j++) r |= nd->out[j] >= 0 ? reach[nd->out[j]] : 0;
        for (int k = 0; k < nd->n_in; k++)
            if (nd->in[k] >= 0) reach[nd->in[k]] |= r;
    }
    for (int i = 0; i < n; i++) {
        out[i] = -1;
        memset(readers, 0, (size_t)m->n_values + 1);
        for (int s = 0; s < gc_ctx_num_steps(c); s++) { /* step order: the last fork wins */
            const gc_node *nd = &m->nodes[gc_ctx_step_node(c, s)];
            uint8_t r = 0;
            for (int j = 0; j < nd->n_out; j++) r |= nd->out[j] >= 0 ? reach[nd->out[j]] : 0;
            if (nd->op != GC_OP_Conv || r != (1u << i) || !spatial_act(c, nd->in[0])) continue;
            int v = nd->in[0];
            if (readers[v] < 255) readers[v]++;
            if (readers[v] == 2) out[i] = v;
        }
    }
    for (int i = 0; i < n; i++) { /* the class scores' Conv input, when it serves only this level */
        int v = level_conv_input(m, c, lv[i]);
        if (v >= 0 && (reach[v] & (1u << i))) out[i] = v;
    }
    free(reach);
    free(readers);
    for (int i = 0; i < n; i++)
        if (out[i] < 0) return 0;
    return n;
}

static void free_feeds(gcam_explainer *e) {
    for (int i = 0; i < e->n_feeds; i++) free(e->feed_data[i]);
    e->n_feeds = 0;
}

void gcam_explainer_free(gcam_explainer *e) {
    if (!e) return;
    gcam_ctx_free(e->ctx);
    free(e->score_copy);
    gcam_ctx_free(e->mask_ctx);
    gcam_ctx_free(e->tail_ctx);
    free(e->tail_cross);
    free(e->tail_seed);
    free(e->tail_saved);
    free_feeds(e);
    free(e->feeds);
    free(e->feed_dims);
    free(e->feed_data);
    free(e->feed_work);
    free(e->feed_work_dims);
    free(e->layers);
    free(e->views);
    free(e->attn);
    free(e->cross);
    free(e->seed);
    free(e->baseline);
    free(e->saved_act);
    free(e);
}

gcam_status gcam_explainer_set_abort(gcam_explainer *e, gcam_abort_fn fn, void *user) {
    if (!e) return GCAM_E_ARG;
    e->abort_fn = fn;
    e->abort_user = fn ? user : NULL;
    gcam_ctx *cs[3] = {e->ctx, e->mask_ctx, e->tail_ctx}; /* and those made later, as made */
    for (int i = 0; i < 3; i++)
        if (cs[i]) gcam_ctx_set_abort(cs[i], e->abort_fn, e->abort_user);
    return GCAM_OK;
}

const char *gcam_explainer_error(const gcam_explainer *e) {
    if (!e) return "out of memory (no explainer handle)";
    return e->err.code ? e->err.msg : "";
}

int gcam_explainer_num_layers(const gcam_explainer *e) { return e ? e->n_layers : 0; }
const char *gcam_explainer_layer(const gcam_explainer *e, int i) {
    return e && i >= 0 && i < e->n_layers ? vname(e, e->layers[i]) : NULL;
}
gcam_status gcam_explainer_layer_check(const gcam_explainer *e, const char *name, char *how, size_t n) {
    char tmp[300];
    if (!how || !n) {
        how = tmp;
        n = sizeof tmp;
    }
    how[0] = 0;
    if (!e || !e->ctx || !name) {
        snprintf(how, n, "no explainer or no name");
        return GCAM_E_ARG;
    }
    int v = resolve_layer(e->m, name);
    if (v < 0) {
        snprintf(how, n, "no tensor or node of that name");
        return GCAM_E_NOT_FOUND;
    }
    const gc_tensor *t = gc_ctx_value(e->ctx, v);
    gc_layer_view lv;
    if (!gc_ctx_is_activation(e->ctx, v)) {
        snprintf(how, n, "not an activation (a weight, a constant or an input)");
        return GCAM_E_ARG;
    }
    if (layer_view(e, t, &lv, how, n)) return GCAM_E_ARG;
    if (lv.kind == GC_LV_TOKENS)
        snprintf(how, n, "tokens: %lld special + a %lldx%lld grid of %lld channels", (long long)lv.skip, (long long)lv.h,
                 (long long)lv.w, (long long)lv.K);
    else
        snprintf(how, n, "%s maps: %lld channels of %lldx%lld", lv.kind == GC_LV_NHWC ? "channel-last" : "(N, C, H, W)",
                 (long long)lv.K, (long long)lv.h, (long long)lv.w);
    return GCAM_OK;
}

const char *gcam_explainer_score_name(const gcam_explainer *e) { return e && e->score >= 0 ? vname(e, e->score) : NULL; }

/* The explainer's context: forward, kept score/output, the backward from the score to the layers
 * (their gradients are kept, and so are their values: Ablation-CAM re-runs the steps after them)
 * and, when full, to the input as well. */
static gcam_status plan_ctx(gcam_explainer *e, const gcam_feed *shapes, int n_shapes, int full, gcam_ctx **out) {
    /* full: also the input's gradient, and the attention maps kept and differentiated (rollout) */
    size_t na = full ? (size_t)e->n_attn : 0, nc = full ? (size_t)e->n_cross : 0;
    const char **names = gc_malloc2((size_t)e->n_layers + 1 + na, sizeof *names);
    const char **keep = gc_malloc2(3 + na + nc, sizeof *keep);
    if (!names || !keep) {
        free(names);
        free(keep);
        return gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
    }
    int nn = 0, nk = 3;
    if (full) names[nn++] = vname(e, e->input);
    for (int i = 0; i < e->n_layers; i++) names[nn++] = vname(e, e->layers[i]);
    keep[0] = vname(e, e->score);
    keep[1] = vname(e, e->output);
    keep[2] = vname(e, e->input);
    for (size_t i = 0; i < na; i++) names[nn++] = keep[nk++] = vname(e, e->attn[i]);
    for (size_t i = 0; i < nc; i++) keep[nk++] = vname(e, e->cross[i]);
    gcam_ctx_options co = {.n_threads = e->o.n_threads, .max_memory = e->o.max_memory, .keep = keep, .n_keep = nk,
                           .seed = vname(e, e->score), .grad_of = names, .n_grad_of = nn};
    gcam_status rc = gcam_ctx_create(out, (const gcam_model *)(const void *)e->m, shapes, n_shapes, &co);
    if (!rc) gcam_ctx_set_abort(*out, e->abort_fn, e->abort_user);
    free(names);
    free(keep);
    if (rc) {
        gc_fail(&e->err, rc, "%s", gcam_ctx_error(*out));
        gcam_ctx_free(*out);
        *out = NULL;
    }
    return rc;
}

gcam_status gc_explainer_need_input_grad(gcam_explainer *e) {
    if (e->ctx_full) return GCAM_OK;
    if (!e->forwarded) return gc_fail(&e->err, GCAM_E_STATE, "call gcam_explainer_forward first");
    /* the planned shapes are those of the last forward's feeds */
    gcam_ctx *full = NULL;
    gcam_status rc = plan_ctx(e, gc_explainer_feeds(e, NULL, 1, 0), e->n_feeds, 1, &full);
    if (rc) return rc; /* e->ctx (and its forward) stays usable for the CAM methods */
    /* freed before the new forward touches its arena: the peak is the larger context, not both */
    gcam_ctx_free(e->ctx);
    e->ctx = full;
    e->ctx_full = 1;
    rc = gc_explainer_forward_input(e, NULL);
    if (rc) e->forwarded = 0; /* nothing valid to explain until the next forward */
    return rc;
}

gcam_status gcam_explainer_create(gcam_explainer **out, const gcam_model *pm, const gcam_feed *shapes, int n_shapes,
                                  const gcam_explain_options *opts) {
    if (!out) return GCAM_E_ARG;
    gcam_explainer *e = *out = calloc(1, sizeof **out);
    if (!e) return GCAM_E_NOMEM;
    e->score = -1;
    if (!pm) return gc_fail(&e->err, GCAM_E_ARG, "no model");
    const gc_model *m = e->m = gc_model_of(pm);
    if (m->err.code) return gc_fail(&e->err, GCAM_E_STATE, "the model failed to load: %s", m->err.msg);
    if (opts) e->o = *opts;
    gc_tuning_get(&e->tune);
    if (e->o.smoothgrad_samples <= 0) e->o.smoothgrad_samples = 25;
    if (!(e->o.smoothgrad_sigma > 0)) e->o.smoothgrad_sigma = 0.15f;
    if (e->o.ig_steps <= 0) e->o.ig_steps = 50;
    if (e->o.batch_size <= 0) e->o.batch_size = 16;
    if (e->o.smoothgrad_base == GCAM_SMOOTHGRAD || gcam_method_is_cam(e->o.smoothgrad_base) ||
        e->o.smoothgrad_base == GCAM_GUIDED_GRADCAM || e->o.smoothgrad_base == GCAM_INTEGRATED_GRADIENTS)
        if (e->o.smoothgrad_base != 0) return gc_fail(&e->err, GCAM_E_ARG, "SmoothGrad's base must be a gradient method "
                                                      "(gradient, gradient-x-input, guided-backprop, deconvnet)");
    if (e->o.smoothgrad_base == 0) e->o.smoothgrad_base = GCAM_GRADIENT; /* 0 is GRADCAM: means "unset" here */
    if (m->n_inputs < 1) return gc_fail(&e->err, GCAM_E_ARG, "the model has no inputs");
    e->input = m->inputs[0];
    size_t ni = (size_t)m->n_inputs;
    e->feeds = gc_calloc2(ni, sizeof *e->feeds);
    e->feed_dims = gc_calloc2(ni, sizeof *e->feed_dims);
    e->feed_data = gc_calloc2(ni, sizeof *e->feed_data);
    e->feed_work = gc_calloc2(ni, sizeof *e->feed_work);
    e->feed_work_dims = gc_calloc2(ni, sizeof *e->feed_work_dims);
    if (!e->feeds || !e->feed_dims || !e->feed_data || !e->feed_work || !e->feed_work_dims)
        return gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");

    /* The explained output and the score before a final Softmax/LogSoftmax/Sigmoid. */
    int outv = -1;
    if (e->o.output) {
        for (int i = 0; i < m->n_outputs; i++)
            if (strcmp(m->values[m->outputs[i]].name, e->o.output) == 0) outv = m->outputs[i];
        if (outv < 0) outv = gc_model_find_value(m, e->o.output); /* any tensor may be explained */
        if (outv < 0) return gc_fail(&e->err, GCAM_E_NOT_FOUND, "no output or tensor named '%s'", e->o.output);
    } else {
        if (m->n_outputs < 1) return gc_fail(&e->err, GCAM_E_ARG, "the model has no outputs");
        outv = m->outputs[0];
    }
    e->output = outv;
    e->score = outv;
    int p = m->values[outv].producer;
    if (p >= 0 && is_softmax_like(m->nodes[p].op)) {
        e->prob_op = m->nodes[p].op;
        if (!e->o.explain_probability) e->score = m->nodes[p].in[0];
    } else {
        e->prob_op = -1;
    }

    /* A first plan (no run) gives every shape: needed to choose layers. */
    gcam_ctx *probe = NULL;
    gcam_status rc = gcam_ctx_create(&probe, pm, shapes, n_shapes, &(gcam_ctx_options){.n_threads = 1});
    if (rc) {
        gc_fail(&e->err, rc, "%s", gcam_ctx_error(probe));
        gcam_ctx_free(probe);
        return rc;
    }
    /* the explained input: an image batch, (N, C, H, W) or (N, H, W, C) */
    const gc_tensor *x = gc_ctx_value(probe, e->input);
    if (x->dtype != GC_F32 || x->shape.ndim != 4) {
        char a[128]; /* x lives in the probe: say what it is before freeing it */
        gc_fail(&e->err, GCAM_E_UNSUPPORTED, "the first input '%s' must be a float32 image batch (4-D); it is %s %s",
                vname(e, e->input), gc_dtype_name(x->dtype), gc_shape_str(&x->shape, a, sizeof a));
        gcam_ctx_free(probe);
        return GCAM_E_UNSUPPORTED;
    }
    e->x_numel = (size_t)gc_numel(x);
    int64_t c1 = x->shape.d[1], c3 = x->shape.d[3];
    e->nhwc = (c3 == 1 || c3 == 3 || c3 == 4) && !(c1 == 1 || c1 == 3 || c1 == 4);
    e->N = x->shape.d[0];
    e->C = e->nhwc ? c3 : c1;
    e->H = e->nhwc ? x->shape.d[1] : x->shape.d[2];
    e->W = e->nhwc ? x->shape.d[2] : x->shape.d[3];
    size_t max_layers = (size_t)(e->o.n_layers > 0 ? e->o.n_layers : GC_MAX_LEVELS);
    e->layers = gc_malloc2(max_layers, sizeof(int));
    e->views = gc_calloc2(max_layers, sizeof *e->views);
    if (!e->layers || !e->views) {
        gcam_ctx_free(probe);
        return gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < e->o.n_layers; i++) {
        int v = e->o.layers && e->o.layers[i] ? resolve_layer(m, e->o.layers[i]) : -1;
        if (v < 0) {
            gcam_ctx_free(probe);
            return gc_fail(&e->err, GCAM_E_NOT_FOUND, "no tensor or node named '%s' (layer)",
                           e->o.layers && e->o.layers[i] ? e->o.layers[i] : "(null)");
        }
        const gc_tensor *t = gc_ctx_value(probe, v);
        char why[300] = "it is not an activation (a weight, or an input)";
        if (!gc_ctx_is_activation(probe, v) || layer_view(e, t, &e->views[e->n_layers], why, sizeof why)) {
            char a[128]; /* t lives in the probe: the message first */
            gc_fail(&e->err, GCAM_E_ARG, "layer '%s' (%s %s) cannot be a CAM layer: %s; a layer is maps "
                    "(N, C, H, W) or (N, H, W, C), or tokens (N, T, C)", vname(e, v), gc_dtype_name(t->dtype),
                    gc_shape_str(&t->shape, a, sizeof a), why);
            gcam_ctx_free(probe);
            return GCAM_E_ARG;
        }
        e->layers[e->n_layers++] = v;
    }
    if (e->n_layers == 0) {
        int nh = head_layers(e, probe, e->layers);
        if (nh < 0) {
            gcam_ctx_free(probe);
            return gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
        }
        e->n_layers = nh;
    }
    if (e->n_layers == 0) {
        int s4 = -1, st = -1, v = auto_layer(e, probe, &s4), vt = auto_token_layer(e, probe, &st);
        if (vt == -2 || vt == -3) {
            gcam_ctx_free(probe);
            return vt == -3 ? e->err.code : gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
        }
        if (vt >= 0 && st > s4) v = vt; /* a transformer after (or without) the convolutions */
        if (v >= 0) e->layers[e->n_layers++] = v;
        /* no layer: only pixel-space methods will work; said when a CAM is asked for */
    }
    for (int l = 0; l < e->n_layers; l++) { /* (the automatic ones) */
        char why[300];
        if (layer_view(e, gc_ctx_value(probe, e->layers[l]), &e->views[l], why, sizeof why)) {
            gcam_ctx_free(probe);
            return gc_fail(&e->err, GCAM_E_INTERNAL, "automatic layer '%s': %s", vname(e, e->layers[l]), why);
        }
    }
    if (find_crossings(e, probe) < 0 || find_attention(e, probe) < 0) {
        gcam_ctx_free(probe);
        return gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
    }
    gcam_ctx_free(probe);

    /* Without a layer only pixel methods can run: plan the input gradient at once. */
    int full = e->n_layers == 0 || e->o.input_gradient;
    if ((rc = plan_ctx(e, shapes, n_shapes, full, &e->ctx))) return rc;
    e->ctx_full = full;
    /* values crossing each layer's producer must survive for Ablation-CAM's tail re-runs; the
     * plan keeps inputs/outputs/requested tensors; other crossings are checked at use */
    e->seed = gc_malloc2((size_t)gc_numel(gc_ctx_value(e->ctx, e->score)), sizeof(float));
    e->score_copy = gc_malloc2((size_t)gc_numel(gc_ctx_value(e->ctx, e->score)), sizeof(float));
    if (!e->seed || !e->score_copy) return gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
    if (e->o.ig_baseline) {
        e->baseline = gc_malloc2(e->x_numel, sizeof(float));
        if (!e->baseline) return gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
        memcpy(e->baseline, e->o.ig_baseline, e->x_numel * sizeof(float));
    }
    return GCAM_OK;
}

const gcam_feed *gc_explainer_feeds(gcam_explainer *e, const float *x, int shapes_only, int64_t batch) {
    for (int i = 0; i < e->n_feeds; i++) {
        gcam_feed *f = &e->feed_work[i];
        *f = e->feeds[i];
        memcpy(e->feed_work_dims[i], e->feed_dims[i], sizeof e->feed_work_dims[i]);
        if (batch > 0 && f->ndim > 0 && e->feed_work_dims[i][0] == e->N) e->feed_work_dims[i][0] = batch;
        f->dims = e->feed_work_dims[i];
        f->data = shapes_only ? NULL : (i == e->input_feed && x) ? (const void *)x : e->feed_data[i];
    }
    return e->feed_work;
}

/* Runs the forward on the explainer's current feeds, with input 0 replaced by x (or as fed). */
gcam_status gc_explainer_forward_input(gcam_explainer *e, const float *x) {
    gcam_status rc = gcam_ctx_run(e->ctx, gc_explainer_feeds(e, x, 0, 0), e->n_feeds);
    if (rc) gc_fail(&e->err, rc, "%s", gcam_ctx_error(e->ctx));
    return rc;
}

gcam_status gcam_explainer_forward(gcam_explainer *e, const gcam_feed *inputs, int n_inputs) {
    if (!e || !e->ctx || gc_ctx_failed(e->ctx)) return e && e->err.code ? e->err.code : GCAM_E_ARG;
    gc_err_clear(&e->err);
    if (n_inputs <= 0 || n_inputs > e->m->n_inputs || !inputs)
        return gc_fail(&e->err, GCAM_E_ARG, "between 1 and %d inputs (the model's) expected, got %d", e->m->n_inputs,
                       n_inputs);
    free_feeds(e);
    e->forwarded = 0;
    e->input_feed = -1;
    for (int i = 0; i < n_inputs; i++) {
        const gcam_feed *f = &inputs[i];
        int v = f->name ? gc_model_find_value(e->m, f->name) : (i < e->m->n_inputs ? e->m->inputs[i] : -1);
        if (v < 0) return gc_fail(&e->err, GCAM_E_NOT_FOUND, "no graph input '%s'", f->name ? f->name : "?");
        const gc_tensor *t = gc_ctx_value(e->ctx, v);
        int ok = 0;
        size_t bytes = gc_tensor_bytes(t->dtype, &t->shape, &ok);
        if (!f->data || f->ndim != t->shape.ndim) {
            char a[128];
            return gc_fail(&e->err, GCAM_E_SHAPE, "input '%s' must have shape %s (as planned)", vname(e, v),
                           gc_shape_str(&t->shape, a, sizeof a));
        }
        e->feed_data[i] = malloc(bytes ? bytes : 1);
        if (!e->feed_data[i]) return gc_fail(&e->err, GCAM_E_NOMEM, "out of memory");
        e->n_feeds = i + 1;
        memcpy(e->feed_data[i], f->data, bytes);
        e->feeds[i] = *f;
        e->feeds[i].name = vname(e, v);
        memcpy(e->feed_dims[i], f->dims, sizeof(int64_t) * (size_t)f->ndim);
        if (v == e->input) e->input_feed = i;
    }
    if (e->input_feed < 0) return gc_fail(&e->err, GCAM_E_ARG, "the explained input '%s' was not fed", vname(e, e->input));
    gcam_status rc = gc_explainer_forward_input(e, NULL);
    if (!rc) {
        const float *s = gc_ctx_value(e->ctx, e->score)->data;
        for (int64_t i = 0, n = gc_numel(gc_ctx_value(e->ctx, e->score)); i < n; i++)
            if (!isfinite(s[i]))
                return gc_fail(&e->err, GCAM_E_NUMERIC, "the score '%s' holds a non-finite value (element %lld): "
                               "check the input and the model's weights", vname(e, e->score), (long long)i);
        memcpy(e->score_copy, s, (size_t)gc_numel(gc_ctx_value(e->ctx, e->score)) * sizeof(float));
        e->forwarded = 1;
    }
    return rc;
}

gcam_status gcam_explainer_scores(gcam_explainer *e, gcam_tensor_view *out) {
    if (!e || !out || !e->ctx) return GCAM_E_ARG;
    if (!gc_ctx_failed(e->ctx)) gc_err_clear(&e->err);
    if (!e->forwarded) return gc_fail(&e->err, GCAM_E_STATE, "no forward pass yet");
    gcam_status rc = gcam_ctx_tensor(e->ctx, vname(e, e->score), out);
    if (!rc) out->data = e->score_copy; /* valid until the next gcam_explainer_forward, whatever runs between */
    return rc;
}

void gcam_map_free(gcam_map *m) {
    if (!m) return;
    free(m->raw);
    free(m->upsampled);
    free(m->normalized);
    memset(m, 0, sizeof *m);
}

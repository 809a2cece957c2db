/* Gradient parity with PyTorch autograd: every check in the manifest written by
 * tests/export_grads.py is run through the public API (include/gradcam.h): a context planned with
 * seed = the model output and grad_of = the listed tensors, a forward pass, one backward pass with
 * the seed gradient and rule of the check, then every gradient is compared with PyTorch's.
 *
 * Pass, per check:
 *   forward:  max|ours - torch| / max|torch| <= FWD_TOL for the output and every listed activation
 *             (this also proves the Grad-CAM layer's ONNX tensor is the hooked PyTorch module output);
 *   backward: max|ours - torch| / max|torch| <= GRAD_TOL for every compared gradient, all finite,
 *             after removing the effect of kink flips (below);
 *   count:    "want:N" / "all:N" -> gcam_ctx_backward_node_count() == N exactly (pruning).
 *
 * Kink flips (see KINKS in tests/export_grads.py): the two forwards differ by float32 rounding, so
 * a unit within ~1e-6 of a ReLU/ReLU6/HardSigmoid kink, or a MaxPool window whose top two values
 * nearly tie, may take the other branch here than in PyTorch, which moves a blob of the input
 * gradient by up to a few % of its maximum without any bug. The export lists every near-kink unit
 * with PyTorch's value and output gradient; here our value decides which units really flipped
 * (after asserting it agrees with PyTorch's to tau/2 of the tensor's range, tau = the listed
 * distance: units further away cannot flip, and a wrongly mapped tensor fails). For each tensor
 * with flips, d = (our local gradient - PyTorch's) at its units is pushed down to the compared
 * tensors by our own backward seeded there (STANDARD: the linear map of d; GUIDED/DECONV are not
 * linear: see correct_flips), and that is subtracted from our gradient before comparing. So the
 * tolerance stays tight and a real backward bug cannot hide in a flip: the correction is exactly
 * the flipped units' effect, computed from our values. The raw error and the flips are printed.
 *
 * Usage: test_grad_parity MANIFEST.tsv [SUBSTRING]   (SUBSTRING: only checks whose name has it)
 * With GRAD_PARITY_DUMP=DIR in the environment, our (uncorrected) gradients are written to DIR as
 * CHECKNAME.gI.npy ('/' in the name becomes '_'), and the flip corrections as CHECKNAME.gI.corr.npy,
 * for looking at where a mismatch sits. GRAD_PARITY_VERBOSE=1 prints every flipped unit.
 * Never skips: a missing or empty manifest is a failure. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gradcam.h"
#include "image/npy.h"

#define FWD_TOL 1e-4  /* as tests/test_model_parity.c: float32 reordering over deep nets */
#define GRAD_TOL 1e-3 /* gradients go through twice the arithmetic, BN folded into Conv on our side */
#define MAX_T 4       /* tensors per check */
#define KMAXC 16      /* candidates per MaxPool window listed */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

typedef struct check {
    char name[128], model[256], input[256], seed[256], rule[32], output[256], count[64], kinks[256];
    int nt;
    char tensor[MAX_T][256], grad[MAX_T][256], value[MAX_T][256];
} check;

/* ---- kinks ------------------------------------------------------------------------------------ */

enum { K_RELU, K_CLIP, K_HSIG, K_MAXPOOL };

typedef struct kunit {
    int64_t idx[KMAXC]; /* flat indices into the tensor */
    float val[KMAXC];   /* PyTorch's values there */
    int n, choice;      /* candidates (1 for an element-wise unit); PyTorch's argmax among them */
    float g;            /* PyTorch's gradient at the op's output */
} kunit;

typedef struct ktensor {
    char name[256], base[256]; /* base: see GraphIndex.base in export_grads.py ("-" if not given) */
    int kind, below;
    float a, b, scale;
    kunit *u;
    int nu, cap;
    float *delta; /* (numel) our local input gradient minus PyTorch's, NULL when no unit flipped */
    int flips;
} ktensor;

typedef struct kinks {
    double tau;
    ktensor *t;
    int nt, cap;
} kinks;

static void kinks_free(kinks *k) {
    for (int i = 0; i < k->nt; i++) {
        free(k->t[i].u);
        free(k->t[i].delta);
    }
    free(k->t);
    memset(k, 0, sizeof *k);
}

static int grow(void **p, int *cap, int n, size_t elem) {
    if (n < *cap) return 1;
    int nc = *cap ? 2 * *cap : 16;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q) return 0;
    *p = q;
    *cap = nc;
    return 1;
}

/* Parses a kinks file; on error prints why and returns 0. */
static int kinks_read(const char *path, kinks *k) {
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("  cannot open %s\n", path);
        return 0;
    }
    char line[4096];
    int lineno = 0, ok = 1;
    while (ok && fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line, *end;
        if (line[0] == '#' || line[0] == '\n') continue;
        if (line[0] == 'K') {
            k->tau = strtod(p + 1, &end);
            ok = end != p + 1 && k->tau > 0;
        } else if (line[0] == 'T') {
            ok = grow((void **)&k->t, &k->cap, k->nt, sizeof *k->t);
            if (!ok) break;
            ktensor *t = &k->t[k->nt];
            memset(t, 0, sizeof *t);
            char kind[32] = "";
            ok = sscanf(line, "T %255s %31s %f %f %d %f %255s", t->name, kind, &t->a, &t->b, &t->below, &t->scale,
                        t->base) == 7;
            if (strcmp(kind, "relu") == 0) t->kind = K_RELU;
            else if (strcmp(kind, "clip") == 0) t->kind = K_CLIP;
            else if (strcmp(kind, "hsig") == 0) t->kind = K_HSIG;
            else if (strcmp(kind, "maxpool") == 0) t->kind = K_MAXPOOL;
            else ok = 0;
            k->nt += ok;
        } else if ((line[0] == 'U' || line[0] == 'W') && k->nt > 0) {
            ktensor *t = &k->t[k->nt - 1];
            ok = grow((void **)&t->u, &t->cap, t->nu, sizeof *t->u);
            if (!ok) break;
            kunit *u = &t->u[t->nu];
            memset(u, 0, sizeof *u);
            p++;
            if (line[0] == 'U') {
                u->n = 1;
                u->idx[0] = strtoll(p, &end, 10);
                ok = end != p;
                p = end;
                u->val[0] = strtof(p, &end);
                ok = ok && end != p;
                p = end;
                u->g = strtof(p, &end);
                ok = ok && end != p && t->kind != K_MAXPOOL;
            } else {
                u->g = strtof(p, &end);
                ok = end != p;
                p = end;
                u->choice = (int)strtol(p, &end, 10);
                ok = ok && end != p;
                p = end;
                u->n = (int)strtol(p, &end, 10);
                ok = ok && end != p && u->n >= 2 && u->n <= KMAXC && u->choice >= 0 && u->choice < u->n &&
                     t->kind == K_MAXPOOL;
                p = end;
                for (int j = 0; ok && j < u->n; j++) {
                    u->idx[j] = strtoll(p, &end, 10);
                    ok = end != p;
                    p = end;
                    u->val[j] = strtof(p, &end);
                    ok = ok && end != p;
                    p = end;
                }
            }
            t->nu += ok;
        } else {
            ok = 0;
        }
    }
    fclose(f);
    if (!ok) printf("  %s:%d: malformed kinks record\n", path, lineno);
    else if (k->tau <= 0) printf("  %s: no 'K tau' record\n", path), ok = 0;
    return ok;
}

/* The local input gradient a kink op gives for input x and output gradient g, as our kernels
 * (src/ops/act.c, pool.c) and the PyTorch reference compute it. */
static double kink_din(const ktensor *t, gcam_rule rule, float x, float g) {
    int rule_op = t->kind == K_RELU || (t->kind == K_CLIP && t->a == 0.0f); /* the rules apply */
    if (rule_op && rule == GCAM_RULE_DECONV) return g > 0 ? g : 0;
    int pass = 0;
    if (t->kind == K_RELU) pass = x > 0;
    else if (t->kind == K_CLIP) pass = x > t->a && x < t->b;
    else { /* HardSigmoid */
        float s = t->a * x + t->b;
        return s > 0 && s < 1 ? (double)t->a * g : 0;
    }
    if (rule_op && rule == GCAM_RULE_GUIDED) pass = pass && g > 0;
    return pass ? g : 0;
}

/* Reads our values of every listed tensor (kept in c), checks they agree with PyTorch's at every
 * listed unit to tau/2 of the tensor's range, and builds delta for the flipped units of the
 * relevant tensors (all when `all`, else those with below set). Returns 0 (with a message in msg)
 * on a failed check. */
static int kinks_detect(gcam_ctx *c, kinks *k, gcam_rule rule, int all, int *flips, double *worst_noise,
                        char *msg, size_t msz) {
    *flips = 0;
    *worst_noise = 0;
    for (int i = 0; i < k->nt; i++) {
        ktensor *t = &k->t[i];
        gcam_tensor_view v;
        if (gcam_ctx_tensor(c, t->name, &v) != GCAM_OK || v.dtype != GCAM_FLOAT32) {
            snprintf(msg, msz, "kink tensor %s: %s", t->name, gcam_ctx_error(c));
            return 0;
        }
        const float *x = v.data;
        int relevant = all || t->below;
        for (int j = 0; j < t->nu; j++) {
            kunit *u = &t->u[j];
            int ours = 0; /* our argmax among the candidates: the first largest, as the kernel scans */
            for (int q = 0; q < u->n; q++) {
                if (u->idx[q] < 0 || (size_t)u->idx[q] >= v.numel) {
                    snprintf(msg, msz, "kink tensor %s: index %lld out of range", t->name, (long long)u->idx[q]);
                    return 0;
                }
                float xe = x[u->idx[q]];
                double noise = fabs((double)xe - u->val[q]) / t->scale;
                if (!(noise <= k->tau / 2)) {
                    snprintf(msg, msz, "kink tensor %s[%lld]: ours %.9g, PyTorch %.9g: the forwards differ by more "
                             "than tau/2 = %.0e of the range (%.3g): wrong tensor, or a forward bug",
                             t->name, (long long)u->idx[q], xe, u->val[q], k->tau / 2, t->scale);
                    return 0;
                }
                if (noise > *worst_noise) *worst_noise = noise;
                if (q > 0 && xe > x[u->idx[ours]]) ours = q;
            }
            if (!relevant) continue;
            double d0 = 0, d1 = 0;
            int64_t i0 = u->idx[0], i1 = u->idx[0];
            if (t->kind == K_MAXPOOL) {
                if (ours == u->choice) continue;
                i0 = u->idx[ours], i1 = u->idx[u->choice];
                d0 = u->g, d1 = -u->g; /* routed to our argmax instead of PyTorch's */
            } else {
                d0 = kink_din(t, rule, x[i0], u->g) - kink_din(t, rule, u->val[0], u->g);
                if (d0 == 0) continue;
            }
            if (!t->delta && !(t->delta = calloc(v.numel, sizeof(float)))) {
                snprintf(msg, msz, "out of memory");
                return 0;
            }
            t->delta[i0] += (float)d0;
            t->delta[i1] += (float)d1;
            if (getenv("GRAD_PARITY_VERBOSE"))
                printf("  flip %s[%lld]: ours %.9g, PyTorch %.9g, g %.9g, delta %.9g at %lld, %.9g at %lld\n", t->name,
                       (long long)u->idx[0], x[u->idx[ours]], u->val[u->choice], u->g, d0, (long long)i0, d1,
                       (long long)i1);
            t->flips++;
            (*flips)++;
        }
    }
    return 1;
}

/* Runs a context seeded at tensor `seed` and adds, into dst[i] (times sgn[i]), the effect of a
 * change delta of the gradient there on tensor names[i]. STANDARD is linear: the map of delta.
 * GUIDED/DECONV are not: map(cur) - map(cur - delta), cur being our gradient at the seed. */
static int diff_map(const gcam_model *m, const gcam_feed *feed, const char *seed_name, const float *cur,
                    const float *delta, gcam_rule rule, const char *const *names, int n, float *const *dst,
                    const float *sgn, char *msg, size_t msz) {
    gcam_ctx_options o = {.seed = seed_name, .grad_of = names, .n_grad_of = n};
    gcam_ctx *c = NULL;
    int ok = 0;
    gcam_tensor_view sv;
    float *tmp = NULL;
    if (gcam_ctx_create(&c, m, feed, 1, &o) != GCAM_OK || gcam_ctx_run(c, feed, 1) != GCAM_OK ||
        gcam_ctx_seed_shape(c, &sv) != GCAM_OK) {
        snprintf(msg, msz, "correction context from %s: %s", seed_name, c ? gcam_ctx_error(c) : "out of memory");
        goto out;
    }
    for (int pass = 0; pass < (rule == GCAM_RULE_STANDARD ? 1 : 2); pass++) {
        const float *seed = delta;
        if (rule != GCAM_RULE_STANDARD) {
            if (!tmp && !(tmp = malloc(sv.numel * sizeof(float)))) {
                snprintf(msg, msz, "out of memory");
                goto out;
            }
            for (size_t i = 0; i < sv.numel; i++) tmp[i] = pass == 0 ? cur[i] : cur[i] - delta[i];
            seed = tmp;
        }
        if (gcam_ctx_backward(c, seed, rule, NULL, 0) != GCAM_OK) {
            snprintf(msg, msz, "correction backward from %s: %s", seed_name, gcam_ctx_error(c));
            goto out;
        }
        for (int i = 0; i < n; i++) {
            gcam_tensor_view g;
            if (gcam_ctx_grad(c, names[i], &g) != GCAM_OK) {
                snprintf(msg, msz, "correction gradient %s: %s", names[i], gcam_ctx_error(c));
                goto out;
            }
            const float *gd = g.data;
            float k = pass == 0 ? sgn[i] : -sgn[i];
            for (size_t q = 0; q < g.numel; q++) dst[i][q] += k * gd[q];
        }
    }
    ok = 1;
out:
    free(tmp);
    gcam_ctx_free(c);
    return ok;
}

/* Tensor -> producing node over the whole model, to answer "does a depend on b" (rules only). */
typedef struct graph_map {
    int n_nodes;
    gcam_node_info *nodes;
} graph_map;

static int graph_map_build(const gcam_model *m, graph_map *g) {
    g->n_nodes = gcam_model_num_nodes(m);
    g->nodes = calloc((size_t)(g->n_nodes > 0 ? g->n_nodes : 1), sizeof *g->nodes);
    if (!g->nodes) return 0;
    for (int i = 0; i < g->n_nodes; i++)
        if (gcam_model_node(m, i, &g->nodes[i]) != GCAM_OK) return 0;
    return 1;
}

static int producer_of(const graph_map *g, const char *t) {
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_outputs; j++)
            if (strcmp(g->nodes[i].outputs[j], t) == 0) return i;
    return -1;
}

/* 1 when tensor a is computed from tensor b (a == b counts). */
static int depends_on(const graph_map *g, const char *a, const char *b) {
    if (strcmp(a, b) == 0) return 1;
    int *stack = malloc((size_t)(g->n_nodes + 1) * sizeof(int));
    unsigned char *seen = calloc((size_t)g->n_nodes + 1, 1);
    int sp = 0, found = 0, p = producer_of(g, a);
    if (!stack || !seen) goto out;
    if (p >= 0) stack[sp++] = p, seen[p] = 1;
    while (sp && !found) {
        const gcam_node_info *nd = &g->nodes[stack[--sp]];
        for (int k = 0; k < nd->n_inputs && !found; k++) {
            if (!nd->inputs[k][0]) continue;
            if (strcmp(nd->inputs[k], b) == 0) found = 1;
            int q = producer_of(g, nd->inputs[k]);
            if (q >= 0 && !seen[q]) seen[q] = 1, stack[sp++] = q;
        }
    }
out:
    free(stack);
    free(seen);
    return found;
}

/* ---- manifest ------------------------------------------------------------------------------- */

/* Splits a tab-separated line in place; returns the field count, -1 if more than max. */
static int split_tabs(char *line, char **f, int max) {
    char *nl = strpbrk(line, "\r\n");
    if (nl) *nl = 0;
    int n = 0;
    char *p = line;
    while (n < max) {
        f[n++] = p;
        p = strchr(p, '\t');
        if (!p) break;
        *p++ = 0;
    }
    return p ? -1 : n;
}

static int copy_field(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n == 0 || n >= cap) return 0;
    memcpy(dst, src, n + 1);
    return 1;
}

static int parse_check(char *line, check *c) {
    char *f[8 + 3 * MAX_T];
    int n = split_tabs(line, f, 8 + 3 * MAX_T);
    if (n < 11 || (n - 8) % 3 != 0) return 0;
    int ok = copy_field(c->name, sizeof c->name, f[0]) && copy_field(c->model, sizeof c->model, f[1]) &&
             copy_field(c->input, sizeof c->input, f[2]) && copy_field(c->seed, sizeof c->seed, f[3]) &&
             copy_field(c->rule, sizeof c->rule, f[4]) && copy_field(c->output, sizeof c->output, f[5]) &&
             copy_field(c->count, sizeof c->count, f[6]) && copy_field(c->kinks, sizeof c->kinks, f[7]);
    c->nt = (n - 8) / 3;
    for (int i = 0; ok && i < c->nt; i++)
        ok = copy_field(c->tensor[i], sizeof c->tensor[i], f[8 + 3 * i]) &&
             copy_field(c->grad[i], sizeof c->grad[i], f[9 + 3 * i]) &&
             copy_field(c->value[i], sizeof c->value[i], f[10 + 3 * i]);
    return ok;
}

/* Reads DIR/FILE as float32 into *t; prints a FAIL line on error. */
static int load_npy(const char *dir, const char *file, gc_tensor *t, const char *who) {
    char path[1024];
    gc_err err = {0};
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (gc_npy_read(path, t, &err) != GCAM_OK || t->dtype != GC_F32) {
        printf("FAIL %-34s %s: %s\n", who, file, err.msg[0] ? err.msg : "not float32");
        free(t->data);
        t->data = NULL;
        return 0;
    }
    return 1;
}

/* max|a - corr - b| / max|b| (corr may be NULL); NaN when shapes differ or a is not finite. */
static double rel_err(const gcam_tensor_view *v, const float *corr, const gc_tensor *ref) {
    if (v->dtype != GCAM_FLOAT32 || v->ndim != ref->shape.ndim) return NAN;
    for (int i = 0; i < v->ndim; i++)
        if (v->dims[i] != ref->shape.d[i]) return NAN;
    const float *a = v->data, *b = ref->data;
    double md = 0, mr = 0;
    for (size_t i = 0; i < v->numel; i++) {
        if (!isfinite(a[i])) return NAN;
        double d = fabs((double)a[i] - (corr ? (double)corr[i] : 0.0) - (double)b[i]);
        if (d > md) md = d;
        if (fabs((double)b[i]) > mr) mr = fabs((double)b[i]);
    }
    return mr > 0 ? md / mr : md;
}

static const char *short_name(const char *t) {
    const char *s = strrchr(t, '/');
    return s && s[1] ? s + 1 : t;
}

/* Writes a gradient to $GRAD_PARITY_DUMP/NAME.gI.npy when that variable is set (debugging aid). */
static void dump_grad(const char *name, int i, const char *suffix, const gcam_tensor_view *v) {
    const char *dir = getenv("GRAD_PARITY_DUMP");
    if (!dir || !*dir || v->ndim > GC_MAX_DIMS) return;
    char path[1024], nm[128];
    snprintf(nm, sizeof nm, "%s", name);
    for (char *p = nm; *p; p++)
        if (*p == '/') *p = '_';
    snprintf(path, sizeof path, "%s/%s.g%d%s.npy", dir, nm, i, suffix);
    gc_tensor t = {.dtype = GC_F32, .shape = {.ndim = v->ndim}, .data = (void *)v->data};
    for (int d = 0; d < v->ndim; d++) t.shape.d[d] = v->dims[d];
    gc_err err = {0};
    if (gc_npy_write(path, &t, &err) != GCAM_OK) printf("  (dump failed: %s)\n", err.msg);
}

/* ---- one check ------------------------------------------------------------------------------ */

typedef struct run_state {
    gcam_ctx *c;
    gc_tensor in, seed, out_ref, g_ref[MAX_T], v_ref[MAX_T];
    kinks k;
    float *corr[MAX_T];     /* (numel of tensor i) flip corrections, NULL when none */
    float *our[MAX_T];      /* (numel of tensor i) copies of our gradients */
    size_t our_n[MAX_T];
    int n_cur;              /* rules only: our gradients at the flipped tensors and their bases */
    const char *cur_name[256];
    float *cur[256];
} run_state;

static void run_state_free(run_state *s) {
    gcam_ctx_free(s->c);
    free(s->in.data);
    free(s->seed.data);
    free(s->out_ref.data);
    for (int i = 0; i < MAX_T; i++) {
        free(s->g_ref[i].data);
        free(s->v_ref[i].data);
        free(s->corr[i]);
        free(s->our[i]);
    }
    for (int i = 0; i < s->n_cur; i++) free(s->cur[i]);
    kinks_free(&s->k);
}

static float *cur_of(run_state *s, const char *name) {
    for (int i = 0; i < s->n_cur; i++)
        if (strcmp(s->cur_name[i], name) == 0) return s->cur[i];
    return NULL;
}

/* Rules only: our gradient (from a context seeded like the check) at every flipped tensor and at
 * its base. */
static int collect_cur(const gcam_model *m, const gcam_feed *feed, const char *out_name, run_state *s,
                       gcam_rule rule, char *msg, size_t msz) {
    gcam_ctx *c = NULL;
    int ok = 0;
    for (int i = 0; i < s->k.nt; i++) {
        const ktensor *t = &s->k.t[i];
        if (!t->delta) continue;
        if (strcmp(t->base, "-") == 0) {
            snprintf(msg, msz, "kink tensor %s has no base tensor (export_grads.py writes it for the rules)", t->name);
            return 0;
        }
        const char *nm[2] = {t->name, t->base};
        for (int j = 0; j < 2; j++) {
            int have = 0;
            for (int q = 0; q < s->n_cur; q++) have |= strcmp(s->cur_name[q], nm[j]) == 0;
            if (have) continue;
            if (s->n_cur == (int)(sizeof s->cur / sizeof *s->cur)) {
                snprintf(msg, msz, "too many flipped tensors");
                return 0;
            }
            s->cur_name[s->n_cur++] = nm[j];
        }
    }
    gcam_ctx_options o = {.seed = out_name, .grad_of = s->cur_name, .n_grad_of = s->n_cur};
    int n = s->n_cur;
    s->n_cur = 0; /* counts the allocated ones from here */
    if (gcam_ctx_create(&c, m, feed, 1, &o) != GCAM_OK || gcam_ctx_run(c, feed, 1) != GCAM_OK ||
        gcam_ctx_backward(c, s->seed.data, rule, NULL, 0) != GCAM_OK) {
        snprintf(msg, msz, "context for the gradients at the flipped tensors: %s", c ? gcam_ctx_error(c) : "?");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        gcam_tensor_view g;
        if (gcam_ctx_grad(c, s->cur_name[i], &g) != GCAM_OK || !(s->cur[i] = malloc(g.numel * sizeof(float)))) {
            snprintf(msg, msz, "gradient at %s: %s", s->cur_name[i], gcam_ctx_error(c));
            goto out;
        }
        memcpy(s->cur[i], g.data, g.numel * sizeof(float));
        s->n_cur = i + 1;
    }
    ok = 1;
out:
    gcam_ctx_free(c);
    return ok;
}

/* Fills s->corr[i] (the n_cmp compared tensors) with the effect of every flipped kink tensor t.
 * STANDARD (linear): the map of t's delta, from t down to each compared tensor below it.
 * GUIDED/DECONV (not linear): our gradient is a function of the one at t's base B alone (every
 * input-output path passes B), and t's flips reach B only through t (see GraphIndex.base). So
 * the change at B is D_B = P(cur_t) - P(cur_t - delta) (P: from t to B; D_B = delta when B = t),
 * and the effect below B is L(cur_B) - L(cur_B - D_B). Tensors between B and t take theirs from P.
 * Flipped tensors are taken top-down (the kinks file is in graph order) and each step also
 * corrects our gradients at the lower flipped tensors and bases, so that every step starts from
 * PyTorch's gradient above it. */
static int correct_flips(const gcam_model *m, const gcam_feed *feed, const char *out_name, const char *in_name,
                         const check *ck, int n_cmp, gcam_rule rule, run_state *s, char *msg, size_t msz) {
    graph_map gm = {0};
    float *db = NULL;
    int ok = 0;
    for (int i = 0; i < n_cmp; i++)
        if (!(s->corr[i] = calloc(s->our_n[i], sizeof(float)))) goto oom;
    if (!graph_map_build(m, &gm)) goto oom;
    if (rule != GCAM_RULE_STANDARD && !collect_cur(m, feed, out_name, s, rule, msg, msz)) goto out;
    for (int ti = s->k.nt - 1; ti >= 0; ti--) {
        const ktensor *t = &s->k.t[ti];
        if (!t->delta) continue;
        const char *names[MAX_T + 256];
        float *dst[MAX_T + 256], sgn[MAX_T + 256];
        int n = 0;
        /* compared tensors: the input always lies below t, the layer only when t is above it */
        const char *cmp[MAX_T];
        float *cmp_corr[MAX_T];
        size_t cmp_n[MAX_T];
        int nc = 0;
        for (int i = 0; i < n_cmp; i++)
            if (strcmp(ck->tensor[i], in_name) == 0 || t->below)
                cmp[nc] = ck->tensor[i], cmp_corr[nc] = s->corr[i], cmp_n[nc++] = s->our_n[i];
        if (rule == GCAM_RULE_STANDARD) {
            for (int i = 0; i < nc; i++) {
                if (strcmp(cmp[i], t->name) == 0) { /* the layer is the kink's input */
                    for (size_t q = 0; q < cmp_n[i]; q++) cmp_corr[i][q] += t->delta[q];
                    continue;
                }
                names[n] = cmp[i], dst[n] = cmp_corr[i], sgn[n++] = 1.0f;
            }
            if (n && !diff_map(m, feed, t->name, NULL, t->delta, rule, names, n, dst, sgn, msg, msz)) goto out;
            continue;
        }
        const char *B = t->base;
        int same = strcmp(B, t->name) == 0;
        float *cur_t = cur_of(s, t->name), *cur_b = cur_of(s, B);
        gcam_tensor_view bv;
        if (!cur_t || !cur_b || gcam_ctx_tensor_shape(s->c, B, &bv) != GCAM_OK) {
            snprintf(msg, msz, "no gradient kept at %s / %s", t->name, B);
            goto out;
        }
        free(db);
        if (!(db = calloc(bv.numel, sizeof(float)))) goto oom;
        if (same) memcpy(db, t->delta, bv.numel * sizeof(float));
        /* from t: D_B, and the tensors strictly between B and t */
        if (!same) names[n] = B, dst[n] = db, sgn[n++] = 1.0f;
        for (int i = 0; i < nc; i++) {
            if (strcmp(cmp[i], t->name) == 0) {
                for (size_t q = 0; q < cmp_n[i]; q++) cmp_corr[i][q] += t->delta[q];
            } else if (!same && strcmp(cmp[i], B) != 0 && depends_on(&gm, t->name, cmp[i]) &&
                       !depends_on(&gm, B, cmp[i])) {
                names[n] = cmp[i], dst[n] = cmp_corr[i], sgn[n++] = 1.0f;
            }
        }
        for (int j = 0; j < s->n_cur && !same; j++)
            if (strcmp(s->cur_name[j], t->name) != 0 && strcmp(s->cur_name[j], B) != 0 &&
                depends_on(&gm, t->name, s->cur_name[j]) && !depends_on(&gm, B, s->cur_name[j]))
                names[n] = s->cur_name[j], dst[n] = s->cur[j], sgn[n++] = -1.0f;
        if (n && !diff_map(m, feed, t->name, cur_t, t->delta, rule, names, n, dst, sgn, msg, msz)) goto out;
        /* from B: everything below it */
        n = 0;
        for (int i = 0; i < nc; i++) {
            if (strcmp(cmp[i], B) == 0) {
                for (size_t q = 0; q < cmp_n[i]; q++) cmp_corr[i][q] += db[q];
            } else if (depends_on(&gm, B, cmp[i])) {
                names[n] = cmp[i], dst[n] = cmp_corr[i], sgn[n++] = 1.0f;
            }
        }
        for (int j = 0; j < s->n_cur; j++)
            if (strcmp(s->cur_name[j], B) != 0 && depends_on(&gm, B, s->cur_name[j]))
                names[n] = s->cur_name[j], dst[n] = s->cur[j], sgn[n++] = -1.0f;
        if (n && !diff_map(m, feed, B, cur_b, db, rule, names, n, dst, sgn, msg, msz)) goto out;
        for (size_t q = 0; q < bv.numel; q++) cur_b[q] -= db[q]; /* later flips with the same base */
    }
    ok = 1;
    goto out;
oom:
    snprintf(msg, msz, "out of memory");
out:
    free(db);
    free(gm.nodes);
    return ok;
}

/* Runs one check; returns 1 on pass and prints one line. The loaded model is cached in *m. */
static int run_check(const char *dir, const check *ck, gcam_model **m, char *cur, size_t cur_cap) {
    char path[1024], line[2048], msg[1024];
    size_t ll = 0;
    int pass = 1;
    run_state s;
    memset(&s, 0, sizeof s);
    line[0] = 0;
    msg[0] = 0;
#define APPEND(...) ll += (size_t)snprintf(line + ll, ll < sizeof line ? sizeof line - ll : 0, __VA_ARGS__)
#define LINE_FAIL(...)                                                                                       \
    do {                                                                                                     \
        printf("FAIL %-34s " __VA_ARGS__);                                                                   \
        printf("\n");                                                                                        \
        pass = 0;                                                                                            \
        goto done;                                                                                           \
    } while (0)

    gcam_rule rule = GCAM_RULE_STANDARD;
    if (strcmp(ck->rule, "guided") == 0) rule = GCAM_RULE_GUIDED;
    else if (strcmp(ck->rule, "deconv") == 0) rule = GCAM_RULE_DECONV;
    else if (strcmp(ck->rule, "standard") != 0) LINE_FAIL("unknown rule '%s'", ck->name, ck->rule);
    int want_mode = 0; /* 0: no count check, 1: want = first tensor, 2: want = all */
    long want_count = -1;
    if (strncmp(ck->count, "want:", 5) == 0) want_mode = 1, want_count = strtol(ck->count + 5, NULL, 10);
    else if (strncmp(ck->count, "all:", 4) == 0) want_mode = 2, want_count = strtol(ck->count + 4, NULL, 10);
    else if (strcmp(ck->count, "-") != 0) LINE_FAIL("bad count field '%s'", ck->name, ck->count);

    double t0 = now_ms();
    snprintf(path, sizeof path, "%s/%s", dir, ck->model);
    if (!*m || strcmp(cur, path) != 0) {
        gcam_model_free(*m);
        *m = NULL;
        cur[0] = 0;
        if (gcam_model_load(m, path, NULL) != GCAM_OK) {
            printf("FAIL %-34s load %s: %s\n", ck->name, ck->model, *m ? gcam_model_error(*m) : "out of memory");
            gcam_model_free(*m);
            *m = NULL;
            pass = 0;
            goto done;
        }
        snprintf(cur, cur_cap, "%s", path);
    }
    if (!load_npy(dir, ck->input, &s.in, ck->name) || !load_npy(dir, ck->seed, &s.seed, ck->name) ||
        !load_npy(dir, ck->output, &s.out_ref, ck->name)) {
        pass = 0;
        goto done;
    }
    for (int i = 0; i < ck->nt; i++) {
        if (!load_npy(dir, ck->grad[i], &s.g_ref[i], ck->name)) {
            pass = 0;
            goto done;
        }
        if (strcmp(ck->value[i], "-") != 0 && !load_npy(dir, ck->value[i], &s.v_ref[i], ck->name)) {
            pass = 0;
            goto done;
        }
    }
    if (strcmp(ck->kinks, "-") != 0) {
        snprintf(path, sizeof path, "%s/%s", dir, ck->kinks);
        if (!kinks_read(path, &s.k)) LINE_FAIL("kinks file %s unreadable", ck->name, ck->kinks);
    }

    gcam_tensor_info oi, ii;
    if (gcam_model_output(*m, 0, &oi) != GCAM_OK || gcam_model_input(*m, 0, &ii) != GCAM_OK)
        LINE_FAIL("model has no input or output", ck->name);
    const char *grad_of[MAX_T];
    const char **keep = calloc((size_t)(MAX_T + s.k.nt), sizeof *keep);
    if (!keep) LINE_FAIL("out of memory", ck->name);
    int n_keep = 0;
    for (int i = 0; i < ck->nt; i++) {
        grad_of[i] = ck->tensor[i];
        if (s.v_ref[i].data) keep[n_keep++] = ck->tensor[i];
    }
    for (int i = 0; i < s.k.nt; i++) keep[n_keep++] = s.k.t[i].name;
    gcam_ctx_options o = {.seed = oi.name, .grad_of = grad_of, .n_grad_of = ck->nt, .keep = keep, .n_keep = n_keep};
    gcam_feed feed = {.name = NULL, .dtype = GCAM_FLOAT32, .ndim = s.in.shape.ndim, .dims = s.in.shape.d,
                      .data = s.in.data};
    gcam_status rc = gcam_ctx_create(&s.c, *m, &feed, 1, &o);
    free(keep);
    if (rc != GCAM_OK) LINE_FAIL("ctx_create: %s", ck->name, s.c ? gcam_ctx_error(s.c) : "out of memory");
    if (gcam_ctx_run(s.c, &feed, 1) != GCAM_OK) LINE_FAIL("run: %s", ck->name, gcam_ctx_error(s.c));

    /* forward: the output and every listed activation */
    gcam_tensor_view v;
    if (gcam_ctx_output(s.c, 0, &v) != GCAM_OK) LINE_FAIL("output: %s", ck->name, gcam_ctx_error(s.c));
    double e = rel_err(&v, NULL, &s.out_ref);
    if (!(e <= FWD_TOL)) pass = 0;
    APPEND("fwd %.1e", e);
    for (int i = 0; i < ck->nt; i++) {
        if (!s.v_ref[i].data) continue;
        if (gcam_ctx_tensor(s.c, ck->tensor[i], &v) != GCAM_OK)
            LINE_FAIL("tensor %s: %s", ck->name, ck->tensor[i], gcam_ctx_error(s.c));
        e = rel_err(&v, NULL, &s.v_ref[i]);
        if (!(e <= FWD_TOL)) pass = 0;
        APPEND(" %s %.1e", short_name(ck->tensor[i]), e);
    }

    /* which gradients are compared; kink flips anywhere matter to the input's, only those below
     * the layer to the layer's */
    int n_cmp = want_mode == 1 ? 1 : ck->nt; /* with want = first only, the others are incomplete */
    int cmp_input = 0;
    for (int i = 0; i < n_cmp; i++) cmp_input |= strcmp(ck->tensor[i], ii.name) == 0;
    int flips = 0;
    double noise = 0;
    if (s.k.nt && !kinks_detect(s.c, &s.k, rule, cmp_input, &flips, &noise, msg, sizeof msg))
        LINE_FAIL("%s", ck->name, msg);

    /* backward */
    if (gcam_ctx_seed_shape(s.c, &v) != GCAM_OK) LINE_FAIL("seed_shape: %s", ck->name, gcam_ctx_error(s.c));
    if ((int64_t)v.numel != gc_shape_numel(&s.seed.shape))
        LINE_FAIL("seed has %zu elements, the file %lld", ck->name, v.numel,
                  (long long)gc_shape_numel(&s.seed.shape));
    double t1 = now_ms();
    const char *want[1] = {ck->tensor[0]};
    if (gcam_ctx_backward(s.c, s.seed.data, rule, want_mode == 1 ? want : NULL, want_mode == 1 ? 1 : 0) != GCAM_OK)
        LINE_FAIL("backward (%s): %s", ck->name, ck->rule, gcam_ctx_error(s.c));
    double t_bw = now_ms() - t1;
    int nodes = gcam_ctx_backward_node_count(s.c);
    for (int i = 0; i < n_cmp; i++) {
        if (gcam_ctx_grad(s.c, ck->tensor[i], &v) != GCAM_OK)
            LINE_FAIL("grad %s: %s", ck->name, ck->tensor[i], gcam_ctx_error(s.c));
        dump_grad(ck->name, i, "", &v);
        if (!(s.our[i] = malloc(v.numel * sizeof(float)))) LINE_FAIL("out of memory", ck->name);
        memcpy(s.our[i], v.data, v.numel * sizeof(float));
        s.our_n[i] = v.numel;
    }
    APPEND(" | grad");
    for (int i = 0; i < n_cmp; i++) {
        gcam_tensor_view g = {.dtype = GCAM_FLOAT32, .ndim = s.g_ref[i].shape.ndim, .numel = s.our_n[i],
                              .data = s.our[i]};
        gcam_ctx_tensor_shape(s.c, ck->tensor[i], &v);
        g.ndim = v.ndim;
        memcpy(g.dims, v.dims, sizeof g.dims);
        APPEND(" %s %.1e", short_name(ck->tensor[i]), rel_err(&g, NULL, &s.g_ref[i]));
    }

    /* remove the effect of the kink flips, then compare */
    if (flips) {
        if (!correct_flips(*m, &feed, oi.name, ii.name, ck, n_cmp, rule, &s, msg, sizeof msg))
            LINE_FAIL("%s", ck->name, msg);
        APPEND(" | %d flip%s in", flips, flips > 1 ? "s" : "");
        for (int ti = 0; ti < s.k.nt; ti++)
            if (s.k.t[ti].flips) APPEND(" %s:%d", short_name(s.k.t[ti].name), s.k.t[ti].flips);
        APPEND(", corrected");
    }
    for (int i = 0; i < n_cmp; i++) {
        gcam_tensor_view g = {.dtype = GCAM_FLOAT32, .numel = s.our_n[i], .data = s.our[i]};
        gcam_ctx_tensor_shape(s.c, ck->tensor[i], &v);
        g.ndim = v.ndim;
        memcpy(g.dims, v.dims, sizeof g.dims);
        e = rel_err(&g, s.corr[i], &s.g_ref[i]);
        if (s.corr[i]) {
            g.data = s.corr[i];
            dump_grad(ck->name, i, ".corr", &g);
        }
        if (!(e <= GRAD_TOL)) pass = 0;
        if (flips) APPEND(" %s %.1e", short_name(ck->tensor[i]), e);
    }
    if (s.k.nt) APPEND(" | kink noise %.0e", noise);
    APPEND(" | %d nodes", nodes);
    if (want_mode) {
        if (nodes != want_count) pass = 0;
        APPEND(" (expected %ld%s)", want_count, want_mode == 1 ? ", want = first" : "");
    }
    printf("%s %-34s %s  total %.0f ms, backward %.0f ms\n", pass ? "ok  " : "FAIL", ck->name, line,
           now_ms() - t0, t_bw);
done:
#undef APPEND
#undef LINE_FAIL
    fflush(stdout);
    run_state_free(&s);
    return pass;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s MANIFEST.tsv [NAME_SUBSTRING]\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        printf("FAIL: cannot open manifest %s (did the export_grads test run?)\n", argv[1]);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", argv[1]);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");

    printf("gradient parity vs PyTorch autograd: forward rel err <= %.0e, gradient max|ours - torch| / "
           "max|torch| <= %.0e after removing kink flips, node counts exact\n", FWD_TOL, GRAD_TOL);
    int passed = 0, failed = 0, lineno = 0;
    gcam_model *m = NULL;
    char cur[1024] = "", line[8192];
    check *ck = malloc(sizeof *ck);
    if (!ck) {
        fclose(f);
        printf("FAIL: out of memory\n0 passed, 1 failed\n");
        return 1;
    }
    double t0 = now_ms();
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n') continue;
        memset(ck, 0, sizeof *ck);
        if (!parse_check(line, ck)) {
            printf("FAIL: %s:%d: malformed manifest line\n", argv[1], lineno);
            failed++;
            continue;
        }
        if (argc == 3 && !strstr(ck->name, argv[2])) continue;
        if (run_check(dir, ck, &m, cur, sizeof cur)) passed++;
        else failed++;
    }
    fclose(f);
    free(ck);
    gcam_model_free(m);
    if (passed + failed == 0) {
        printf("FAIL: manifest %s lists no checks%s\n", argv[1], argc == 3 ? " matching the filter" : "");
        failed = 1;
    }
    printf("total %.1f s\n", (now_ms() - t0) / 1e3);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}

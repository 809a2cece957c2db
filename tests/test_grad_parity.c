/* Gradient parity with PyTorch autograd: every check in the manifest written by
 * tests/export_grads.py is run through the public API (include/gradcam.h): a context planned with
 * seed = the model output and grad_of = the listed tensors, a forward pass, one backward pass with
 * the seed gradient and rule of the check, then every gradient is compared with PyTorch's.
 *
 * Pass, per check:
 *   forward:  max|ours - torch| / max|torch| <= FWD_TOL for the output and every listed activation
 *             (this also proves the Grad-CAM layer's ONNX tensor is the hooked PyTorch module output);
 *   backward: max|ours - torch| / max|torch| <= GRAD_TOL for every compared gradient, all finite,
 *             with PyTorch's branch taken at every kink (below);
 *   count:    "want:N" / "all:N" -> gcam_ctx_backward_node_count() == N exactly (pruning).
 *
 * Kink flips (see KINKS in tests/export_grads.py): the two forwards differ by float32 rounding, so
 * a unit within ~1e-6 of a ReLU/ReLU6/HardSigmoid kink, or a MaxPool window whose top two values
 * nearly tie, may take the other branch here than in PyTorch (which unit does depends on the CPU's
 * kernels), and one such flip moves a blob of the input gradient by up to a few % of its maximum
 * without any bug. The export lists every near-kink unit with PyTorch's value(s); here our value
 * decides which units took the other branch (after asserting it agrees with PyTorch's to tau/2 of
 * the tensor's range, tau = the listed distance: units further away cannot flip, and a wrongly
 * mapped tensor fails). When any did, the forward runs again with PyTorch's values written at every
 * listed unit as soon as its tensor is computed (a test-only step hook, gc_step_hook), so every
 * kink op takes PyTorch's branch, and the backward that is compared runs in that forward. This is
 * exact for every rule (standard, guided, deconvnet: their gates on the incoming gradient are
 * continuous), for any number of flips; nothing is subtracted, so a real backward bug cannot hide.
 * The unforced error and the flips are printed too.
 *
 * Usage: test_grad_parity MANIFEST.tsv [SUBSTRING]   (SUBSTRING: only checks whose name has it)
 * With GRAD_PARITY_DUMP=DIR in the environment, our gradients are written to DIR as
 * CHECKNAME.gI.npy ('/' in the name becomes '_'), those with PyTorch's branches forced as
 * CHECKNAME.gI.forced.npy, for looking at where a mismatch sits. GRAD_PARITY_VERBOSE=1 prints every
 * flipped unit. Never skips: a missing or empty manifest is a failure. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gradcam.h"
#include "graph/plan.h"
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
    char name[256];
    int kind;
    float a, b, scale;
    kunit *u;
    int nu, cap;
    int flips; /* units whose branch differs from PyTorch's in the unforced forward */
} ktensor;

typedef struct kinks {
    double tau;
    ktensor *t;
    int nt, cap;
} kinks;

static void kinks_free(kinks *k) {
    for (int i = 0; i < k->nt; i++) {
        free(k->t[i].u);
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
            ok = sscanf(line, "T %255s %31s %f %f %f", t->name, kind, &t->a, &t->b, &t->scale) == 5 && t->scale > 0;
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

/* The branch a kink op takes at unit u, from our values x, or from PyTorch's (x NULL), as our
 * kernels decide it (src/ops/act.c, pool.c): ReLU x > 0 (its backward reads y = max(x, 0));
 * Clip below/between/above its strict bounds; HardSigmoid alpha x + beta <= 0 / inside / >= 1;
 * MaxPool the first largest candidate in scan order (PyTorch's: its recorded argmax). */
static int kink_branch(const ktensor *t, const kunit *u, const float *x) {
    if (t->kind == K_MAXPOOL) {
        if (!x) return u->choice;
        int best = 0;
        for (int q = 1; q < u->n; q++)
            if (x[u->idx[q]] > x[u->idx[best]]) best = q;
        return best;
    }
    float v = x ? x[u->idx[0]] : u->val[0];
    if (t->kind == K_RELU) return v > 0;
    if (t->kind == K_CLIP) return v <= t->a ? 0 : v < t->b ? 1 : 2;
    float s = t->a * v + t->b;
    return s <= 0 ? 0 : s < 1 ? 1 : 2;
}

/* Reads our values of every listed tensor (kept in c), checks they agree with PyTorch's at every
 * listed unit to tau/2 of the tensor's range, and counts the units whose branch differs from
 * PyTorch's (t->flips, *flips). Returns 0 (with a message in msg) on a failed check. */
static int kinks_detect(gcam_ctx *c, kinks *k, int *flips, double *worst_noise, char *msg, size_t msz) {
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
        t->flips = 0;
        for (int j = 0; j < t->nu; j++) {
            const kunit *u = &t->u[j];
            for (int q = 0; q < u->n; q++) {
                if (u->idx[q] < 0 || (size_t)u->idx[q] >= v.numel) {
                    snprintf(msg, msz, "kink tensor %s: index %lld out of range", t->name, (long long)u->idx[q]);
                    return 0;
                }
                double noise = fabs((double)x[u->idx[q]] - u->val[q]) / t->scale;
                if (!(noise <= k->tau / 2)) {
                    snprintf(msg, msz, "kink tensor %s[%lld]: ours %.9g, PyTorch %.9g: the forwards differ by more "
                             "than tau/2 = %.0e of the range (%.3g): wrong tensor, or a forward bug",
                             t->name, (long long)u->idx[q], x[u->idx[q]], u->val[q], k->tau / 2, t->scale);
                    return 0;
                }
                if (noise > *worst_noise) *worst_noise = noise;
            }
            int ours = kink_branch(t, u, x), theirs = kink_branch(t, u, NULL);
            if (ours == theirs) continue;
            if (getenv("GRAD_PARITY_VERBOSE"))
                printf("  flip %s[%lld]: ours %.9g (branch %d), PyTorch %.9g (branch %d), g %.9g\n", t->name,
                       (long long)u->idx[ours], x[u->idx[ours]], ours, u->val[theirs], theirs, u->g);
            t->flips++;
            (*flips)++;
        }
    }
    return 1;
}

/* Forcing PyTorch's branches: before each forward step, every listed tensor already computed and
 * not yet forced gets PyTorch's values at its listed units (all of them: a unit that did not flip
 * moves by float32 noise only), so every kink op downstream, and every later listed tensor computed
 * from the forced ones, sees them. The hook runs before each step that runs, so a tensor is forced
 * after its producer (a fused producer included) and before any reader. */
typedef struct forcing {
    kinks *k;
    int *first;   /* per listed tensor: the first step after its producer */
    float **x;    /* per listed tensor: our buffer */
    uint8_t *done;
} forcing;

/* PyTorch's values at t's units; MaxPool candidates tied exactly with PyTorch's argmax ahead of it
 * in scan order are then lowered by one ulp (our kernel takes the first largest). */
static void kink_force(const ktensor *t, float *x) {
    for (int j = 0; j < t->nu; j++)
        for (int q = 0; q < t->u[j].n; q++) x[t->u[j].idx[q]] = t->u[j].val[q];
    if (t->kind != K_MAXPOOL) return;
    for (int j = 0; j < t->nu; j++) {
        const kunit *u = &t->u[j];
        const float top = u->val[u->choice];
        for (int q = 0; q < u->choice; q++)
            if (x[u->idx[q]] >= top) x[u->idx[q]] = nextafterf(top, -INFINITY);
    }
}

static void force_hook(gcam_ctx *c, int step, void *user) {
    (void)c;
    forcing *f = user;
    for (int i = 0; i < f->k->nt; i++)
        if (!f->done[i] && f->first[i] <= step) {
            kink_force(&f->k->t[i], f->x[i]);
            f->done[i] = 1;
        }
}

/* Re-runs the forward with PyTorch's branch forced at every listed unit, then checks that every
 * unit took it. Returns 0 (with a message in msg) on failure. */
static int force_branches(gcam_ctx *c, const gcam_feed *feed, kinks *k, char *msg, size_t msz) {
    forcing f = {.k = k, .first = calloc((size_t)k->nt, sizeof(int)), .x = calloc((size_t)k->nt, sizeof(float *)),
                 .done = calloc((size_t)k->nt, 1)};
    int ok = 0;
    if (!f.first || !f.x || !f.done) {
        snprintf(msg, msz, "out of memory");
        goto out;
    }
    for (int i = 0; i < k->nt; i++) {
        int v = gc_model_find_value(c->m, k->t[i].name);
        if (v < 0 || !c->kept[v] || c->vals[v].dtype != GC_F32) {
            snprintf(msg, msz, "kink tensor %s is not a kept float tensor", k->t[i].name);
            goto out;
        }
        f.first[i] = gc_ctx_first_step_after(c, v);
        f.x[i] = c->vals[v].data;
    }
    c->step_hook = force_hook;
    c->step_hook_user = &f;
    gcam_status rc = gcam_ctx_run(c, feed, 1);
    c->step_hook = NULL;
    c->step_hook_user = NULL;
    if (rc != GCAM_OK) {
        snprintf(msg, msz, "forced run: %s", gcam_ctx_error(c));
        goto out;
    }
    for (int i = 0; i < k->nt; i++) {
        const ktensor *t = &k->t[i];
        if (!f.done[i]) {
            snprintf(msg, msz, "kink tensor %s was never forced (no step ran after its producer)", t->name);
            goto out;
        }
        for (int j = 0; j < t->nu; j++)
            if (kink_branch(t, &t->u[j], f.x[i]) != kink_branch(t, &t->u[j], NULL)) {
                snprintf(msg, msz, "kink tensor %s[%lld]: PyTorch's branch could not be forced", t->name,
                         (long long)t->u[j].idx[0]);
                goto out;
            }
    }
    ok = 1;
out:
    free(f.first);
    free(f.x);
    free(f.done);
    return ok;
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

/* max|a - b| / max|b|; NaN when shapes differ or a is not finite. */
static double rel_err(const gcam_tensor_view *v, const gc_tensor *ref) {
    if (v->dtype != GCAM_FLOAT32 || v->ndim != ref->shape.ndim) return NAN;
    for (int i = 0; i < v->ndim; i++)
        if (v->dims[i] != ref->shape.d[i]) return NAN;
    const float *a = v->data, *b = ref->data;
    double md = 0, mr = 0;
    for (size_t i = 0; i < v->numel; i++) {
        if (!isfinite(a[i])) return NAN;
        double d = fabs((double)a[i] - (double)b[i]);
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
} run_state;

static void run_state_free(run_state *s) {
    gcam_ctx_free(s->c);
    free(s->in.data);
    free(s->seed.data);
    free(s->out_ref.data);
    for (int i = 0; i < MAX_T; i++) {
        free(s->g_ref[i].data);
        free(s->v_ref[i].data);
    }
    kinks_free(&s->k);
}

/* Reads the check's input, seed, expected output, gradients, values and kinks; prints a FAIL line
 * and returns 0 on error. */
static int load_check(const char *dir, const check *ck, run_state *s) {
    if (!load_npy(dir, ck->input, &s->in, ck->name) || !load_npy(dir, ck->seed, &s->seed, ck->name) ||
        !load_npy(dir, ck->output, &s->out_ref, ck->name))
        return 0;
    for (int i = 0; i < ck->nt; i++) {
        if (!load_npy(dir, ck->grad[i], &s->g_ref[i], ck->name)) return 0;
        if (strcmp(ck->value[i], "-") != 0 && !load_npy(dir, ck->value[i], &s->v_ref[i], ck->name)) return 0;
    }
    if (strcmp(ck->kinks, "-") != 0) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, ck->kinks);
        if (!kinks_read(path, &s->k)) {
            printf("FAIL %-34s kinks file %s unreadable\n", ck->name, ck->kinks);
            return 0;
        }
    }
    return 1;
}

/* One backward pass with the check's seed and rule; err[i] = rel_err of the first n_cmp
 * gradients (dumped with suffix when GRAD_PARITY_DUMP is set). Returns 0 with msg on failure. */
static int backward_errors(run_state *s, const check *ck, gcam_rule rule, int want_first, int n_cmp,
                           const char *suffix, double *err, int *nodes, char *msg, size_t msz) {
    const char *want[1] = {ck->tensor[0]};
    if (gcam_ctx_backward(s->c, s->seed.data, rule, want_first ? want : NULL, want_first ? 1 : 0) != GCAM_OK) {
        snprintf(msg, msz, "backward (%s): %s", ck->rule, gcam_ctx_error(s->c));
        return 0;
    }
    *nodes = gcam_ctx_backward_node_count(s->c);
    for (int i = 0; i < n_cmp; i++) {
        gcam_tensor_view v;
        if (gcam_ctx_grad(s->c, ck->tensor[i], &v) != GCAM_OK) {
            snprintf(msg, msz, "grad %s: %s", ck->tensor[i], gcam_ctx_error(s->c));
            return 0;
        }
        dump_grad(ck->name, i, suffix, &v);
        err[i] = rel_err(&v, &s->g_ref[i]);
    }
    return 1;
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
    if (!load_check(dir, ck, &s)) {
        pass = 0;
        goto done;
    }

    gcam_tensor_info oi;
    if (gcam_model_output(*m, 0, &oi) != GCAM_OK) LINE_FAIL("model has no output", ck->name);
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
    double e = rel_err(&v, &s.out_ref);
    if (!(e <= FWD_TOL)) pass = 0;
    APPEND("fwd %.1e", e);
    for (int i = 0; i < ck->nt; i++) {
        if (!s.v_ref[i].data) continue;
        if (gcam_ctx_tensor(s.c, ck->tensor[i], &v) != GCAM_OK)
            LINE_FAIL("tensor %s: %s", ck->name, ck->tensor[i], gcam_ctx_error(s.c));
        e = rel_err(&v, &s.v_ref[i]);
        if (!(e <= FWD_TOL)) pass = 0;
        APPEND(" %s %.1e", short_name(ck->tensor[i]), e);
    }
    int flips = 0;
    double noise = 0;
    if (s.k.nt && !kinks_detect(s.c, &s.k, &flips, &noise, msg, sizeof msg)) LINE_FAIL("%s", ck->name, msg);

    /* backward, in our own forward; when units flipped, again with PyTorch's branches forced */
    if (gcam_ctx_seed_shape(s.c, &v) != GCAM_OK) LINE_FAIL("seed_shape: %s", ck->name, gcam_ctx_error(s.c));
    if ((int64_t)v.numel != gc_shape_numel(&s.seed.shape))
        LINE_FAIL("seed has %zu elements, the file %lld", ck->name, v.numel,
                  (long long)gc_shape_numel(&s.seed.shape));
    int n_cmp = want_mode == 1 ? 1 : ck->nt; /* with want = first only, the others are incomplete */
    double err[MAX_T];
    int nodes = 0;
    double t1 = now_ms();
    if (!backward_errors(&s, ck, rule, want_mode == 1, n_cmp, "", err, &nodes, msg, sizeof msg))
        LINE_FAIL("%s", ck->name, msg);
    double t_bw = now_ms() - t1;
    APPEND(" | grad");
    for (int i = 0; i < n_cmp; i++) APPEND(" %s %.1e", short_name(ck->tensor[i]), err[i]);
    if (flips) {
        APPEND(" | %d flip%s in", flips, flips > 1 ? "s" : "");
        for (int ti = 0; ti < s.k.nt; ti++)
            if (s.k.t[ti].flips) APPEND(" %s:%d", short_name(s.k.t[ti].name), s.k.t[ti].flips);
        if (!force_branches(s.c, &feed, &s.k, msg, sizeof msg)) LINE_FAIL("%s", ck->name, msg);
        int nodes2 = 0;
        if (!backward_errors(&s, ck, rule, want_mode == 1, n_cmp, ".forced", err, &nodes2, msg, sizeof msg))
            LINE_FAIL("%s", ck->name, msg);
        if (nodes2 != nodes) LINE_FAIL("forced backward ran %d nodes, the first %d", ck->name, nodes2, nodes);
        APPEND(", PyTorch's branches forced:");
        for (int i = 0; i < n_cmp; i++) APPEND(" %s %.1e", short_name(ck->tensor[i]), err[i]);
    }
    for (int i = 0; i < n_cmp; i++)
        if (!(err[i] <= GRAD_TOL)) pass = 0;
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
           "max|torch| <= %.0e with PyTorch's branch forced at kink flips, node counts exact\n", FWD_TOL, GRAD_TOL);
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

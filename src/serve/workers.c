/* The workers: a fixed pool of explainers, each a gcam_tool per model (a tool is used by one thread
 * at a time; they share the loaded model), and a thread per worker.
 * - Nobody waiting and a worker free: the request's own connection thread (MHD's thread per
 *   connection) explains it with that worker's tools and sends the answer. No hand-off: the
 *   request wakes one thread, not three.
 * - Otherwise it waits in a bounded FIFO line (--queue); a worker's thread takes the first in line,
 *   explains it and signals the connection thread, which sends the answer. A busy worker thread goes
 *   from one request to the next without sleeping, so a loaded server keeps its cores explaining.
 * At most --workers explanations run at once. */
#include <errno.h>
#include <time.h>

#include "cli/cli_common.h"
#include "serve.h"

typedef struct sv_worker_arg {
    sv_server *s;
    int index;
} sv_worker_arg;

static void run_job(sv_server *s, int w, sv_req *r);
static void set_error(sv_req *r, int status, const char *msg);

static struct timespec abs_time(double t_monotonic) {
    struct timespec ts;
    double sec = t_monotonic < 0 ? 0 : t_monotonic;
    ts.tv_sec = (time_t)sec;
    ts.tv_nsec = (long)((sec - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Wakes the threads of the free workers when someone is in line: every one of them, as one woken
 * earlier may not have run yet (a thread that finds nothing left sleeps again). Called with s->mu
 * held. */
static void wake_workers(sv_server *s) {
    if (!s->count) return;
    for (int w = 0; w < s->cfg.workers; w++)
        if (!s->slot_busy[w]) pthread_cond_signal(&s->worker_cv[w]);
}

/* Takes r out of the line (it timed out): the ones behind move up. */
static void line_leave(sv_server *s, sv_req *r) {
    int i = 0;
    while (i < s->count && s->ring[(s->head + i) % s->cfg.queue] != r) i++;
    if (i == s->count) return;
    for (; i + 1 < s->count; i++)
        s->ring[(s->head + i) % s->cfg.queue] = s->ring[(s->head + i + 1) % s->cfg.queue];
    s->count--;
}

static void job_begin(sv_server *s, int w) {
    s->slot_busy[w] = 1;
    s->busy++;
    s->explaining++;
}

static void job_end(sv_server *s, int w) {
    s->slot_busy[w] = 0;
    s->busy--;
    s->explaining--;
    pthread_cond_broadcast(&s->idle_cv);
}

int sv_explain(sv_server *s, sv_req *r) {
    pthread_mutex_lock(&s->mu);
    if (s->draining) goto refused;
    if (!s->count)
        for (int w = 0; w < s->cfg.workers; w++) {
            if (s->slot_busy[w]) continue;
            job_begin(s, w); /* nobody waiting, a worker free: explain here */
            pthread_mutex_unlock(&s->mu);
            r->t_start = sv_now();
            run_job(s, w, r);
            r->t_end = sv_now();
            r->done = 1;
            pthread_mutex_lock(&s->mu);
            job_end(s, w);
            wake_workers(s); /* someone came meanwhile: this worker's thread takes over */
            pthread_mutex_unlock(&s->mu);
            return 0;
        }
    if (s->count >= s->cfg.queue || pthread_cond_init(&r->cv, &s->cv_attr)) goto refused;
    s->ring[(s->head + s->count) % s->cfg.queue] = r;
    s->count++;
    wake_workers(s);
    struct timespec until = abs_time(r->t0 + s->cfg.deadline_s);
    while (!r->done) {
        /* once taken, the explanation's own abort check keeps to the deadline */
        int e = r->taken ? pthread_cond_wait(&r->cv, &s->mu) : pthread_cond_timedwait(&r->cv, &s->mu, &until);
        if (e == ETIMEDOUT && !r->taken && !r->done) {
            line_leave(s, r);
            r->t_start = r->t_end = sv_now();
            char msg[128];
            snprintf(msg, sizeof msg, "waited %.1f s for a worker, over the deadline (--deadline %g)",
                     r->t_start - r->t_queued, s->cfg.deadline_s);
            set_error(r, 503, msg);
            r->done = 1;
        }
    }
    pthread_mutex_unlock(&s->mu);
    pthread_cond_destroy(&r->cv);
    return 0;
refused:
    pthread_mutex_unlock(&s->mu);
    return -1;
}

static void *worker_main(void *arg) {
    sv_worker_arg *a = arg;
    sv_server *s = a->s;
    const int w = a->index;
    free(a);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!(s->count && !s->slot_busy[w]) && !s->stop) pthread_cond_wait(&s->worker_cv[w], &s->mu);
        if (!s->count || s->slot_busy[w]) break; /* stopping, and nothing left for this worker */
        sv_req *r = s->ring[s->head];
        s->head = (s->head + 1) % s->cfg.queue;
        s->count--;
        r->taken = 1;
        job_begin(s, w);
        pthread_mutex_unlock(&s->mu);
        r->t_start = sv_now();
        run_job(s, w, r);
        r->t_end = sv_now();
        pthread_mutex_lock(&s->mu);
        r->done = 1;
        pthread_cond_signal(&r->cv); /* the connection thread sends it; r is its, not ours, now */
        job_end(s, w);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void set_answer(sv_req *r, int status, char *body, size_t len) {
    r->ans_status = status;
    r->ans = body;
    r->ans_len = len;
}

static void set_error(sv_req *r, int status, const char *msg) {
    size_t len = 0;
    char *j = sv_error_json(msg, &len);
    set_answer(r, j ? status : 500, j, j ? len : 0);
}

/* {"model": NAME, "id": ID, ...the record's own keys} */
static char *splice(const char *record, const char *model, const char *id, size_t *len) {
    const char *p = record;
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++;
    if (*p != '{') return NULL;
    p++;
    const char *q = p;
    while (*q == ' ' || *q == '\n' || *q == '\r' || *q == '\t') q++;
    gc_buf b = {0};
    gc_buf_puts(&b, "{\"model\": ");
    gc_json_escape(&b, model);
    if (id) {
        gc_buf_puts(&b, ", \"id\": ");
        gc_json_escape(&b, id);
    }
    gc_buf_puts(&b, *q == '}' ? "" : ",");
    gc_buf_puts(&b, p);
    gc_buf_puts(&b, "\n");
    if (b.oom) {
        gc_buf_free(&b);
        return NULL;
    }
    *len = b.n;
    return b.p;
}

/* The engine's abort check (gcam_tool_set_abort), asked before each of its steps: the deadline
 * covers the explanation too, to within one kernel's time. */
static int past_deadline(void *user) {
    sv_req *r = user;
    if (sv_now() <= r->deadline) return 0;
    r->over = 1;
    return 1;
}

static void run_job(sv_server *s, int w, sv_req *r) {
    r->deadline = r->t0 + s->cfg.deadline_s;
    sv_model *m = &s->models[r->model];
    gcam_tool *t = s->tools[w][r->model];
    char id[33] = {0}, prefix[64];
    if (r->store && sv_random_hex(id, 16)) {
        set_error(r, 500, "no random numbers for a result's name");
        return;
    }
    snprintf(prefix, sizeof prefix, "/v1/results/%s/", id);
    gcam_tool_request rq = {.data = r->pic, .size = r->pic_size, .name = r->name, .inline_png = r->inline_png,
                            .url_prefix = r->store ? prefix : NULL, .argc = r->argc,
                            .argv = (const char *const *)r->argv};
    gcam_tool_result res;
    memset(&res, 0, sizeof res);
    gcam_tool_set_abort(t, past_deadline, r);
    gcam_status st = gcam_tool_explain(t, &rq, &res);
    gcam_tool_set_abort(t, NULL, NULL);
    if (r->over) {
        char msg[160];
        snprintf(msg, sizeof msg, "the explanation ran over the deadline (--deadline %g): stopped %.2f s after the request came",
                 s->cfg.deadline_s, sv_now() - r->t0);
        set_error(r, 503, msg);
    } else if (st != GCAM_OK) {
        set_error(r, st == GCAM_E_ARG ? 400 : st == GCAM_E_NOMEM ? 503 : 500, gcam_tool_error(t));
    } else if (res.failed || !res.record) {
        size_t len = 0;
        char *j = res.record ? splice(res.record, m->name, NULL, &len) : NULL;
        if (j) set_answer(r, 400, j, len);
        else set_error(r, 400, "the input could not be explained");
    } else if (r->store && res.n_files && sv_store_put(s->store, id, res.files, res.n_files)) {
        set_error(r, 507, "the result's files do not fit in the results memory (--results-memory)");
    } else {
        if (r->store && res.n_files) { /* the store owns them now */
            res.files = NULL;
            res.n_files = 0;
        }
        size_t len = 0;
        char *j = splice(res.record, m->name, r->store ? id : NULL, &len);
        if (j) set_answer(r, 200, j, len);
        else set_error(r, 500, "out of memory");
    }
    gcam_tool_result_free(&res);
}

/* A first explanation of a made-up picture: plans the contexts before the first request, and
 * finds a model the options do not fit now rather than at each request. */
static int warm_up(sv_server *s, gcam_tool *t, const sv_model *m) {
    enum { W = 96, H = 96 };
    static uint8_t px[H * W * 3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = px + 3 * (y * W + x);
            p[0] = (uint8_t)(x * 255 / W);
            p[1] = (uint8_t)(y * 255 / H);
            p[2] = (uint8_t)((x + y) & 0xFF);
        }
    unsigned char *png = NULL;
    size_t n = 0;
    if (gcam_tool_png(px, H, W, 3, &png, &n) != GCAM_OK) return cli_fail(CLI_FAIL, "out of memory");
    gcam_tool_request rq = {.data = png, .size = n, .name = "warm-up"};
    gcam_tool_result res;
    memset(&res, 0, sizeof res);
    gcam_status st = gcam_tool_explain(t, &rq, &res);
    int rc = 0;
    if (st != GCAM_OK) rc = cli_fail(cli_status_exit(st), "%s: %s", m->path, gcam_tool_error(t));
    else if (res.failed && !s->cfg.quiet)
        fprintf(stderr, "gradcam serve: %s: warning: a made-up picture could not be explained: %s\n", m->path,
                res.record ? res.record : "?");
    gcam_tool_result_free(&res);
    gcam_tool_buffer_free(png);
    return rc;
}

static int open_tools(sv_server *s, int w) {
    char threads[16];
    snprintf(threads, sizeof threads, "%d", s->cfg.threads);
    for (int i = 0; i < s->n_models; i++) {
        sv_model *m = &s->models[i];
        const char **argv = calloc((size_t)m->argc + 3, sizeof *argv);
        if (!argv) return cli_fail(CLI_FAIL, "out of memory");
        for (int a = 0; a < m->argc; a++) argv[a] = m->argv[a];
        argv[m->argc] = "--threads";
        argv[m->argc + 1] = threads;
        gcam_status st = gcam_tool_open_model(&s->tools[w][i], m->m, m->path, m->argc + 2, argv);
        free(argv);
        if (st != GCAM_OK)
            return cli_fail(cli_status_exit(st), "%s: %s", m->path,
                            s->tools[w][i] ? gcam_tool_error(s->tools[w][i]) : "out of memory");
        int rc = warm_up(s, s->tools[w][i], m);
        if (rc) return rc;
    }
    return 0;
}

int sv_workers_start(sv_server *s) {
    int W = s->cfg.workers;
    /* the line's waits count in sv_now()'s clock */
    if (pthread_condattr_init(&s->cv_attr) || pthread_condattr_setclock(&s->cv_attr, CLOCK_MONOTONIC))
        return cli_fail(CLI_FAIL, "cannot make a condition variable");
    s->cv_ready = 1;
    s->ring = calloc((size_t)s->cfg.queue, sizeof *s->ring);
    s->tools = calloc((size_t)W, sizeof *s->tools);
    s->slot_busy = calloc((size_t)W, sizeof *s->slot_busy);
    s->worker_cv = calloc((size_t)W, sizeof *s->worker_cv);
    s->threads = calloc((size_t)W, sizeof *s->threads);
    if (!s->ring || !s->tools || !s->slot_busy || !s->worker_cv || !s->threads) return cli_fail(CLI_FAIL, "out of memory");
    for (int w = 0; w < W; w++) {
        if (!(s->tools[w] = calloc((size_t)s->n_models, sizeof **s->tools))) return cli_fail(CLI_FAIL, "out of memory");
        int rc = open_tools(s, w);
        if (rc) return rc;
    }
    for (; s->n_worker_cv < W; s->n_worker_cv++)
        if (pthread_cond_init(&s->worker_cv[s->n_worker_cv], NULL)) return cli_fail(CLI_FAIL, "cannot make a condition variable");
    for (int w = 0; w < W; w++) {
        sv_worker_arg *a = malloc(sizeof *a);
        if (!a) return cli_fail(CLI_FAIL, "out of memory");
        *a = (sv_worker_arg){s, w};
        if (pthread_create(&s->threads[w], NULL, worker_main, a)) {
            free(a);
            return cli_fail(CLI_FAIL, "cannot start worker threads");
        }
        s->n_threads++;
    }
    return 0;
}

void sv_workers_stop(sv_server *s) {
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    for (int w = 0; w < s->n_worker_cv; w++) pthread_cond_signal(&s->worker_cv[w]);
    pthread_mutex_unlock(&s->mu);
    for (int w = 0; w < s->n_threads; w++) pthread_join(s->threads[w], NULL);
    s->n_threads = 0;
    if (s->tools)
        for (int w = 0; w < s->cfg.workers; w++) {
            for (int i = 0; s->tools[w] && i < s->n_models; i++) gcam_tool_free(s->tools[w][i]);
            free(s->tools[w]);
        }
    for (int w = 0; w < s->n_worker_cv; w++) pthread_cond_destroy(&s->worker_cv[w]);
    free(s->tools);
    free(s->slot_busy);
    free(s->worker_cv);
    free(s->threads);
    free(s->ring);
    s->tools = NULL;
    s->slot_busy = NULL;
    s->worker_cv = NULL;
    s->threads = NULL;
    s->ring = NULL;
    s->n_worker_cv = 0;
    if (s->cv_ready) pthread_condattr_destroy(&s->cv_attr);
    s->cv_ready = 0;
}

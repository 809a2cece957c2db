/* The workers: a fixed pool of threads, each with its own gcam_tool per model (tools are used by
 * one thread at a time; they share the loaded model), fed by a bounded ring of requests. A
 * worker answers into the request and resumes its connection; MHD's thread then sends it. */
#include <microhttpd.h>

#include "cli/cli_common.h"
#include "serve.h"

typedef struct sv_worker_arg {
    sv_server *s;
    int index;
} sv_worker_arg;

int sv_enqueue(sv_server *s, sv_req *r) {
    pthread_mutex_lock(&s->mu);
    int ok = !s->draining && s->count < s->cfg.queue;
    if (ok) {
        /* suspended before a worker can see it, so that its resume never comes first */
        MHD_suspend_connection(r->conn);
        s->ring[(s->head + s->count) % s->cfg.queue] = r;
        s->count++;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return ok ? 0 : -1;
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
    double waited = sv_now() - r->t_queued;
    if (waited > s->cfg.deadline_s) {
        char msg[128];
        snprintf(msg, sizeof msg, "waited %.1f s for a worker, over the deadline (--deadline %g)", waited, s->cfg.deadline_s);
        set_error(r, 503, msg);
        return;
    }
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

static void *worker_main(void *arg) {
    sv_worker_arg *a = arg;
    sv_server *s = a->s;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->count && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
        if (!s->count) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        sv_req *r = s->ring[s->head];
        s->head = (s->head + 1) % s->cfg.queue;
        s->count--;
        s->busy++;
        s->explaining++;
        pthread_mutex_unlock(&s->mu);
        r->t_start = sv_now();
        run_job(s, a->index, r);
        r->t_end = sv_now();
        r->done = 1;
        /* done explaining before the answer can reach the client, so that /metrics read after it
         * never counts this worker busy (busy itself lasts until the resume: the drain waits on it) */
        pthread_mutex_lock(&s->mu);
        s->explaining--;
        pthread_mutex_unlock(&s->mu);
        /* the last touch of r: once resumed, MHD's thread may answer and free it */
        MHD_resume_connection(r->conn);
        pthread_mutex_lock(&s->mu);
        s->busy--;
        pthread_cond_broadcast(&s->idle_cv);
        pthread_mutex_unlock(&s->mu);
    }
    free(a);
    return NULL;
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
    s->ring = calloc((size_t)s->cfg.queue, sizeof *s->ring);
    s->tools = calloc((size_t)W, sizeof *s->tools);
    s->threads = calloc((size_t)W, sizeof *s->threads);
    if (!s->ring || !s->tools || !s->threads) return cli_fail(CLI_FAIL, "out of memory");
    for (int w = 0; w < W; w++) {
        if (!(s->tools[w] = calloc((size_t)s->n_models, sizeof **s->tools))) return cli_fail(CLI_FAIL, "out of memory");
        int rc = open_tools(s, w);
        if (rc) return rc;
    }
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
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (int w = 0; w < s->n_threads; w++) pthread_join(s->threads[w], NULL);
    s->n_threads = 0;
    if (s->tools)
        for (int w = 0; w < s->cfg.workers; w++) {
            for (int i = 0; s->tools[w] && i < s->n_models; i++) gcam_tool_free(s->tools[w][i]);
            free(s->tools[w]);
        }
    free(s->tools);
    free(s->threads);
    s->tools = NULL;
    s->threads = NULL;
}

/* The HTTP side of gradcam serve: each connection's thread (MHD's thread per connection) routes
 * its requests, answers the quick endpoints, reads an explain request's body into memory (capped),
 * has it explained (workers.c: right there, or by a worker's thread when others wait) and sends the
 * answer. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <time.h>

#include <microhttpd.h>

#include "cli/cli_common.h"
#include "serve.h"

enum { R_NONE, R_PAGE, R_HEALTH, R_MODELS, R_METRICS, R_EXPLAIN, R_RESULT, R_NOT_FOUND };

double sv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *sv_error_json(const char *msg, size_t *len) {
    gc_buf b = {0};
    gc_buf_puts(&b, "{\"error\": ");
    gc_json_escape(&b, msg);
    gc_buf_puts(&b, "}\n");
    if (b.oom) {
        gc_buf_free(&b);
        return NULL;
    }
    *len = b.n;
    return b.p;
}

void sv_req_free(sv_req *r) {
    if (!r) return;
    gc_buf_free(&r->body);
    for (int i = 0; i < r->argc; i++) free(r->argv[i]);
    free(r->argv);
    free(r->name);
    free(r->ans);
    free(r);
}

/* ---- answers -------------------------------------------------------------------------------- */

/* Queues an answer whose bytes are malloc'd (taken, freed by MHD) or static (own = 0). The extra
 * header names the reason of a 401, 405 or 503. */
static enum MHD_Result answer(sv_server *s, sv_req *r, int status, const char *ctype, void *data, size_t len, int own) {
    struct MHD_Response *resp = own ? MHD_create_response_from_buffer_with_free_callback(len, data, free)
                                    : MHD_create_response_from_buffer(len, data, MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        if (own) free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->route != R_PAGE) MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_UNAUTHORIZED) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"gradcam\"");
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->route == R_EXPLAIN ? "POST" : "GET, HEAD");
    if (r->route == R_PAGE && status == MHD_HTTP_OK)
        /* nothing from elsewhere, scripts and styles only those of the page itself */
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                                "img-src data: blob:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'");
    if (s->draining) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (r->done) { /* where the time went: waiting for a worker, explaining (milliseconds) */
        char timing[96];
        snprintf(timing, sizeof timing, "queue;dur=%.3f, explain;dur=%.3f", 1e3 * (r->t_start - r->t_queued),
                 1e3 * (r->t_end - r->t_start));
        MHD_add_response_header(resp, "Server-Timing", timing);
    }
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (ok == MHD_YES) r->status = status;
    return ok;
}

static enum MHD_Result answer_error(sv_server *s, sv_req *r, int status, const char *msg) {
    size_t len = 0;
    char *j = sv_error_json(msg, &len);
    if (!j) return MHD_NO;
    return answer(s, r, status, "application/json", j, len, 1);
}

/* ---- the token ------------------------------------------------------------------------------ */

/* Compares in time that depends on the expected length only, so that the answer's timing says
 * nothing about how much of a guess was right. */
static int token_ok(const sv_server *s, const char *given) {
    if (!s->token) return 1;
    if (!given) return 0;
    size_t n = strlen(given);
    volatile unsigned char diff = (unsigned char)(n != s->token_len);
    for (size_t i = 0; i < s->token_len; i++) diff |= (unsigned char)((i < n ? given[i] : 0) ^ s->token[i]);
    return diff == 0;
}

/* ---- routes --------------------------------------------------------------------------------- */

static int route_of(const char *url) {
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) return R_PAGE;
    if (!strcmp(url, "/healthz")) return R_HEALTH;
    if (!strcmp(url, "/v1/models")) return R_MODELS;
    if (!strcmp(url, "/metrics")) return R_METRICS;
    if (!strcmp(url, "/v1/explain")) return R_EXPLAIN;
    if (!strncmp(url, "/v1/results/", 12)) return R_RESULT;
    return R_NOT_FOUND;
}

static const char *ctype_of(const char *name) {
    const char *dot = strrchr(name, '.');
    if (dot && !strcmp(dot, ".png")) return "image/png";
    if (dot && !strcmp(dot, ".json")) return "application/json";
    return "application/octet-stream";
}

/* GET /v1/results/ID/NAME */
static enum MHD_Result get_result(sv_server *s, sv_req *r, const char *url) {
    const char *id = url + 12, *slash = strchr(id, '/');
    if (!slash || slash - id != 32 || !slash[1] || strchr(slash + 1, '/')) return answer_error(s, r, 404, "no such result");
    char idz[33];
    memcpy(idz, id, 32);
    idz[32] = 0;
    size_t size = 0;
    unsigned char *data = sv_store_get(s->store, idz, slash + 1, &size);
    if (!data) return answer_error(s, r, 404, "no such result (unknown, or dropped to make room for newer ones)");
    return answer(s, r, 200, ctype_of(slash + 1), data, size, 1);
}

static enum MHD_Result get_route(sv_server *s, sv_req *r, const char *url) {
    switch (r->route) {
    case R_PAGE: return answer(s, r, 200, "text/html; charset=utf-8", (void *)sv_page_html, sv_page_html_len, 0);
    case R_HEALTH:
        if (s->draining) return answer_error(s, r, 503, "stopping");
        return answer(s, r, 200, "application/json", (void *)"{\"status\": \"ok\"}\n", 17, 0);
    case R_MODELS:
        return answer(s, r, 200, "application/json", s->models_json, strlen(s->models_json), 0);
    case R_METRICS: {
        size_t len = 0;
        char *t = sv_metrics_text(s, &len);
        return t ? answer(s, r, 200, "text/plain; version=0.0.4", t, len, 1) : MHD_NO;
    }
    case R_RESULT: return get_result(s, r, url);
    default: return answer_error(s, r, 404, "not found");
    }
}

/* The first call of a request: its headers are in. Refusals are answered now (and the connection
 * then closed, the body unread); the GETs at the next call, when the request is complete. */
static enum MHD_Result first_call(sv_server *s, sv_req *r, const char *url, const char *method) {
    r->route = route_of(url);
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (r->route == R_NOT_FOUND) return answer_error(s, r, 404, "not found");
    if (r->route != R_PAGE && r->route != R_HEALTH &&
        !token_ok(s, MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION)))
        return answer_error(s, r, 401, "missing or wrong token (Authorization: Bearer TOKEN)");
    if (r->route == R_EXPLAIN ? strcmp(method, "POST") != 0 : !get)
        return answer_error(s, r, 405, r->route == R_EXPLAIN ? "use POST" : "use GET");
    if (r->route != R_EXPLAIN) return MHD_YES; /* answered at the next call: answering now closes the connection */
    if (s->draining) return answer_error(s, r, 503, "stopping");
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    int64_t n = 0;
    if (cl && !cli_parse_i64(cl, &n) && (uint64_t)n > s->cfg.max_body) {
        char msg[128];
        snprintf(msg, sizeof msg, "the body is larger than %zu bytes (--max-body)", s->cfg.max_body);
        return answer_error(s, r, 413, msg);
    }
    char err[512];
    int st = sv_job_from_query(s, r, err, sizeof err);
    if (st) return answer_error(s, r, st, err);
    return MHD_YES;
}

/* The body is in: check it, find the picture and queue the job. */
static enum MHD_Result body_done(sv_server *s, sv_req *r) {
    char err[512];
    if (r->too_big) {
        snprintf(err, sizeof err, "the body is larger than %zu bytes (--max-body)", s->cfg.max_body);
        return answer_error(s, r, 413, err);
    }
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    int st = sv_job_picture(s, r, ct, err, sizeof err);
    if (st) return answer_error(s, r, st, err);
    r->t_queued = sv_now();
    if (sv_explain(s, r))
        return answer_error(s, r, 503, s->draining ? "stopping" : "busy: the queue is full, retry later");
    char *a = r->ans;
    r->ans = NULL;
    return answer(s, r, r->ans_status, "application/json", a, r->ans_len, 1);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    sv_server *s = cls;
    sv_req *r = *con_cls;
    if (!r) {
        if (!(r = calloc(1, sizeof *r))) return MHD_NO;
        r->t0 = sv_now();
        r->conn = conn;
        r->model = -1;
        *con_cls = r;
        pthread_mutex_lock(&s->mu);
        s->active++;
        pthread_mutex_unlock(&s->mu);
        return first_call(s, r, url, method);
    }
    if (r->status || r->route != R_EXPLAIN) { /* answered already, or a GET: a body is dropped */
        int more = *upload_size != 0;
        *upload_size = 0;
        return r->status || more ? MHD_YES : get_route(s, r, url);
    }
    if (*upload_size) {
        if (sv_now() - r->t0 > s->cfg.deadline_s) return MHD_NO; /* a sender too slow: close */
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->too_big || n > s->cfg.max_body - r->body.n) {
            r->too_big = 1;
            gc_buf_free(&r->body);
            return MHD_YES;
        }
        gc_buf_put(&r->body, upload, n);
        return r->body.oom ? answer_error(s, r, 413, "out of memory for the body") : MHD_YES;
    }
    return body_done(s, r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode why) {
    sv_server *s = cls;
    sv_req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    double dt = sv_now() - r->t0;
    sv_metrics_request(&s->metrics, why == MHD_REQUEST_TERMINATED_COMPLETED_OK ? r->status : 0, dt);
    sv_req_free(r);
    pthread_mutex_lock(&s->mu);
    s->active--;
    pthread_cond_broadcast(&s->idle_cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- start ---------------------------------------------------------------------------------- */

static int resolve(const char *host, int port, struct sockaddr_storage *sa, socklen_t *len) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int e = getaddrinfo(host, ps, &hints, &res);
    if (e || !res) return cli_usage_error("serve: --host %s: %s", host, e ? gai_strerror(e) : "no address");
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int sv_is_loopback(const char *host, int *loop) {
    struct sockaddr_storage sa;
    socklen_t len;
    int rc = resolve(host, 0, &sa, &len);
    if (rc) return rc;
    if (sa.ss_family == AF_INET) {
        *loop = (ntohl(((struct sockaddr_in *)&sa)->sin_addr.s_addr) >> 24) == 127;
    } else {
        const struct in6_addr *a = &((struct sockaddr_in6 *)&sa)->sin6_addr;
        *loop = IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

int sv_http_start(sv_server *s, const char *cert, const char *key) {
    struct sockaddr_storage sa;
    socklen_t salen;
    int rc = resolve(s->cfg.host, s->cfg.port, &sa, &salen);
    if (rc) return rc;
    /* a thread per connection: on a server not overrun, an explanation runs where its request was
     * read, with no hand-off to wake another thread twice per request; idle connections cost a
     * sleeping thread each, bounded by --max-connections. ITC: the threads are told to stop after
     * MHD_quiesce_daemon. */
    unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC;
    if (sa.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    if (cert) flags |= MHD_USE_TLS;
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)key},
        {MHD_OPTION_END, 0, NULL},
    };
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)s->cfg.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_conns,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        s->cfg.header_mem, MHD_OPTION_ARRAY, cert ? tls : tls + 2,
        MHD_OPTION_END);
    if (!s->daemon)
        return cli_fail(CLI_FAIL, "serve: cannot listen on %s port %d%s%s", s->cfg.host, s->cfg.port, errno ? ": " : "",
                        errno ? strerror(errno) : "");
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    int port = di ? di->port : s->cfg.port;
    const char *h = s->cfg.host;
    printf("gradcam serve: %d model%s, %d worker%s x %d thread%s, listening on %s://%s%s%s:%d/\n", s->n_models,
           s->n_models > 1 ? "s" : "", s->cfg.workers, s->cfg.workers > 1 ? "s" : "", s->cfg.threads,
           s->cfg.threads > 1 ? "s" : "", cert ? "https" : "http", strchr(h, ':') ? "[" : "", h,
           strchr(h, ':') ? "]" : "", port);
    fflush(stdout);
    return 0;
}

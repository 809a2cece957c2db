/* gradcam serve: options, start-up, and the SIGTERM drain. */
#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>

#include "cli/cli_opts.h"
#include "serve.h"

/* What the option parser fills: the server's settings and the models with their options. */
typedef struct sv_parse {
    sv_config cfg;
    sv_model *models;
    int n_models, cap_models;
    int bad;                     /* an exit code already printed */
} sv_parse;

/* ---- server options ------------------------------------------------------------------------- */

static int set_int(const char *name, const char *val, int lo, int hi, int *out) {
    int64_t v;
    if (cli_parse_i64(val, &v) || v < lo || v > hi) return cli_usage_error("%s: '%s' is not a number from %d to %d", name, val, lo, hi);
    *out = (int)v;
    return 0;
}

static int sv_opt(void *opts, const char *name, const char *val) {
    sv_parse *P = opts;
    sv_config *c = &P->cfg;
    if (!strcmp(name, "--host")) c->host = val;
    else if (!strcmp(name, "--port")) return set_int(name, val, 0, 65535, &c->port);
    else if (!strcmp(name, "--workers")) return set_int(name, val, 1, 256, &c->workers);
    else if (!strcmp(name, "--threads")) return set_int(name, val, 1, 1024, &c->threads);
    else if (!strcmp(name, "--queue")) return set_int(name, val, 1, 1 << 20, &c->queue);
    else if (!strcmp(name, "--max-connections")) /* each is a thread (http.c) */
        return set_int(name, val, 1, 10000, &c->max_conns);
    else if (!strcmp(name, "--idle-timeout")) return set_int(name, val, 1, 86400, &c->idle_timeout_s);
    else if (!strcmp(name, "--deadline")) {
        if (cli_parse_dbl(val, &c->deadline_s) || c->deadline_s <= 0 || c->deadline_s > 86400)
            return cli_usage_error("%s: '%s' is not a number of seconds from 0 to 86400", name, val);
    } else if (!strcmp(name, "--max-pixels")) {
        if (cli_parse_i64(val, &c->max_pixels) || c->max_pixels < 1) return cli_usage_error("%s: '%s' is not a positive number", name, val);
    } else if (!strcmp(name, "--max-body") || !strcmp(name, "--max-header") || !strcmp(name, "--results-memory")) {
        size_t *dst = name[6] == 'b' ? &c->max_body : name[6] == 'h' ? &c->header_mem : &c->results_mem;
        if (cli_parse_bytes(val, dst)) return cli_usage_error("%s: '%s' is not a size (e.g. 20M)", name, val);
        if (dst == &c->header_mem && (*dst < 1024 || *dst > (size_t)64 << 20))
            return cli_usage_error("%s: '%s' is not between 1K and 64M", name, val);
    } else if (!strcmp(name, "--token-file")) c->token_file = val;
    else if (!strcmp(name, "--tls-cert")) c->tls_cert = val;
    else if (!strcmp(name, "--tls-key")) c->tls_key = val;
    else if (!strcmp(name, "--insecure")) c->insecure = 1;
    else if (!strcmp(name, "-q") || !strcmp(name, "--quiet")) c->quiet = 1;
    return 0;
}

/* ---- per-model options: stored as given, checked by gcam_tool_open_model ------------------- */

static char *dup_or_oom(sv_parse *P, const char *s) {
    char *d = gc_strdup(s);
    if (!d && !P->bad) P->bad = cli_fail(CLI_FAIL, "out of memory");
    return d;
}

static int model_opt(void *opts, const char *name, const char *val) {
    sv_parse *P = opts;
    if (!P->n_models) return cli_usage_error("%s applies to a model: give it after its MODEL", name);
    sv_model *m = &P->models[P->n_models - 1];
    if (!strcmp(name, "--name")) {
        free(m->name);
        if (!*val || strpbrk(val, "&=?/# ")) return cli_usage_error("--name: '%s' is not a plain name", val);
        m->name = dup_or_oom(P, val);
        return P->bad;
    }
    char **a = realloc(m->argv, sizeof *a * (size_t)(m->argc + 3));
    if (!a) return cli_fail(CLI_FAIL, "out of memory");
    m->argv = a;
    a[m->argc] = dup_or_oom(P, name);
    a[m->argc + 1] = NULL;
    if (a[m->argc]) m->argc++;
    if (val) {
        a[m->argc] = dup_or_oom(P, val);
        if (a[m->argc]) m->argc++;
        a[m->argc] = NULL;
        if (!strcmp(name, "--labels")) m->labels_path = a[m->argc - 1];
    }
    return P->bad;
}

static char *stem_of(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    size_t n = dot && dot != b ? (size_t)(dot - b) : strlen(b);
    char *s = malloc(n + 1);
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) s[i] = strchr("&=?/# ", b[i]) ? '_' : b[i]; /* usable in ?model= */
    s[n] = 0;
    return s;
}

static int model_positional(void *opts, char *arg) {
    sv_parse *P = opts;
    if (P->n_models == P->cap_models) {
        int cap = P->cap_models ? 2 * P->cap_models : 4;
        sv_model *m = realloc(P->models, sizeof *m * (size_t)cap);
        if (!m) return cli_fail(CLI_FAIL, "out of memory");
        P->models = m;
        P->cap_models = cap;
    }
    sv_model *m = &P->models[P->n_models++];
    memset(m, 0, sizeof *m);
    m->path = dup_or_oom(P, arg);
    m->name = stem_of(arg);
    if (!m->name && !P->bad) P->bad = cli_fail(CLI_FAIL, "out of memory");
    return P->bad;
}

static const cli_row g_server_rows[] = {
    CLI_SECTION_ROW("Server:"),
    CLI_OPT("--host", "ADDR", "an address", sv_opt, "address to listen on (default 127.0.0.1; others need --token-file or --insecure)"),
    CLI_OPT("--port", "N", "a port", sv_opt, "port (default 8080; 0: any free port, printed)"),
    CLI_OPT("--workers", "N", "a number", sv_opt, "explanations run at once (default: CPUs / --threads)"),
    CLI_OPT("--threads", "N", "a number", sv_opt, "OpenMP threads per explanation (default 1)"),
    CLI_OPT("--queue", "N", "a number", sv_opt, "requests waiting for a worker; more get 503 (default 64)"),
    CLI_OPT("--deadline", "SECONDS", "a number", sv_opt,
            "longest wait for a worker and longest upload of a request (default 30)"),
    CLI_OPT("--max-body", "BYTES", "a size", sv_opt, "largest request body, 413 beyond (default 20M)"),
    CLI_OPT("--max-pixels", "N", "a number", sv_opt, "largest picture, width x height (default 50000000)"),
    CLI_OPT("--max-header", "BYTES", "a size", sv_opt, "memory for a request's line and headers (default 32K)"),
    CLI_OPT("--max-connections", "N", "a number", sv_opt, "open connections at once, a thread each (default 256, at most 10000)"),
    CLI_OPT("--idle-timeout", "SECONDS", "a number", sv_opt, "close connections silent this long (default 15)"),
    CLI_OPT("--results-memory", "BYTES", "a size", sv_opt, "memory for /v1/results files (default 256M)"),
    CLI_OPT("--token-file", "FILE", "a file", sv_opt,
            "every endpoint but / and /healthz needs 'Authorization: Bearer TOKEN',\n"
            "TOKEN being the file's first line"),
    CLI_OPT("--tls-cert", "FILE", "a PEM file", sv_opt, "serve HTTPS with this certificate (with --tls-key)"),
    CLI_OPT("--tls-key", "FILE", "a PEM file", sv_opt, "the certificate's private key"),
    CLI_FLAG("--insecure", sv_opt, "allow a non-loopback --host without --token-file"),
    CLI_FLAG("-q|--quiet", sv_opt, "print nothing but errors and the listening line"),
    CLI_END_ROW,
};

/* Rows that belong to the MODEL before them: the command's own tables with the setter swapped
 * for one that keeps the option for gcam_tool_open_model (which checks it as explain does). */
static const cli_row g_model_extra[] = {
    CLI_OPT("--name", "NAME", "a name", model_opt, "the model's name in requests (default: the file's stem)"),
    CLI_OPT("--labels", "FILE", "a file", model_opt, "class names, one per line (1000-class outputs get ImageNet's)"),
    CLI_OPT("--task", "TASK", "a task", model_opt, "classify (default) | detect | segment | caption | vqa, as in explain"),
    CLI_OPT("--vocab", "FILE", "a file", model_opt, "caption / vqa: the text's vocabulary, one token per line\n"
            "(requests give 'caption', 'question', 'max_words')"),
    CLI_OPT("-m|--method", "LIST", "a method list", model_opt, "default methods of its requests"),
    CLI_OPT("-k|--top-k", "K", "a number", model_opt, "default K of its requests"),
    CLI_OPT("--colormap", "NAME", "a colour map name", model_opt, "default colour map"),
    CLI_OPT("--alpha", "A", "a number", model_opt, "default heat map opacity on overlays"),
    CLI_OPT("--max-memory", "BYTES", "a size in bytes", model_opt, "cap on the memory planned per run"),
    CLI_END_ROW,
};

enum { MAX_ROWS = 96 };
static cli_row g_rows[MAX_ROWS];

static int append_rows(int n, const cli_row *src, int swap) {
    for (; src->kind != CLI_END && n < MAX_ROWS - 1; src++) {
        if (src->kind == CLI_INCLUDE) {
            n = append_rows(n, src->rows, swap);
            continue;
        }
        g_rows[n] = *src;
        if (swap && src->kind == CLI_OPTION) g_rows[n].set = model_opt;
        n++;
    }
    return n;
}

static void build_rows(void) {
    int n = append_rows(0, g_server_rows, 0);
    g_rows[n++] = (cli_row)CLI_SECTION_ROW("Per model (after its MODEL; as in 'gradcam explain'):");
    n = append_rows(n, g_model_extra, 0);
    n = append_rows(n, cli_pre_rows, 1);
    n = append_rows(n, cli_det_rows, 1);
    g_rows[n] = (cli_row)CLI_END_ROW;
}

static void print_help(void) {
    printf("Usage: gradcam serve MODEL [model options] [MODEL [model options]...] [options]\n\n"
           "Serves explanations over HTTP: each MODEL is loaded once and shared by a fixed pool of workers;\n"
           "a page for the browser at /, and a JSON API (docs/serve.md):\n"
           "  GET  /healthz                          200 when ready\n"
           "  GET  /v1/models                        inputs, outputs, labels, layers of each model\n"
           "  POST /v1/explain?model=M&methods=..&k=..&classes=..&layer=..&inline=0|1\n"
           "                                         the picture as the body (image/png, image/jpeg) or a\n"
           "                                         multipart field 'image'; answers explain's record\n"
           "  GET  /v1/results/ID/FILE               a file of an answer (inline=0)\n"
           "  GET  /metrics                          Prometheus text\n\n");
    cli_print_options(g_rows);
    printf("\nExamples:\n"
           "  gradcam serve examples/demo/shapes_cnn.onnx --labels examples/demo/labels.txt --preprocess raw\n"
           "  gradcam serve resnet50.onnx --workers 2 --threads 2 --port 9000\n"
           "  curl --data-binary @cat.jpg -H 'Content-Type: image/jpeg' 'localhost:8080/v1/explain?k=2'\n");
}

static void parse_free(sv_parse *P) {
    for (int i = 0; i < P->n_models; i++) {
        sv_model *m = &P->models[i];
        for (int a = 0; a < m->argc; a++) free(m->argv[a]);
        free(m->argv);
        free(m->name);
        free(m->path);
    }
    free(P->models);
    P->models = NULL;
    P->n_models = 0;
}

static int serve_parse(int argc, char **argv, sv_parse *P) {
    memset(P, 0, sizeof *P);
    sv_config *c = &P->cfg;
    *c = (sv_config){.host = "127.0.0.1", .port = 8080, .queue = 64, .max_body = (size_t)20 << 20,
                     .max_pixels = 50000000, .max_conns = 256, .deadline_s = 30, .idle_timeout_s = 15,
                     .header_mem = (size_t)32 << 10, .results_mem = (size_t)256 << 20};
    build_rows();
    int rc = cli_parse_options(argc, argv, g_rows, P, model_positional, print_help, "serve");
    if (rc) return rc;
    if (P->bad) return P->bad;
    if (!P->n_models) return cli_usage_error("serve: no MODEL given");
    for (int i = 0; i < P->n_models; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(P->models[i].name, P->models[j].name))
                return cli_usage_error("serve: two models named '%s' (give one --name)", P->models[i].name);
    if (!c->threads) c->threads = 1;
    if (!c->workers) {
        int cpus = gc_cpu_count();
        c->workers = cpus / c->threads > 0 ? cpus / c->threads : 1;
    }
    if (!!c->tls_cert != !!c->tls_key) return cli_usage_error("serve: --tls-cert and --tls-key go together");
    return 0;
}

/* ---- files given on the command line (the token, TLS) --------------------------------------- */

static char *read_small_file(const char *path, const char *what) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        cli_fail(CLI_BAD_INPUT, "%s: cannot open %s: %s", path, what, strerror(errno));
        return NULL;
    }
    gc_buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.n < (1u << 20)) gc_buf_put(&b, chunk, n);
    int err = ferror(f);
    fclose(f);
    if (err || b.oom || b.n >= (1u << 20) || !b.p) {
        cli_fail(CLI_BAD_INPUT, "%s: cannot read %s (empty, unreadable or over 1 MiB)", path, what);
        gc_buf_free(&b);
        return NULL;
    }
    return b.p;
}

static int load_token(sv_server *s) {
    if (!s->cfg.token_file) return 0;
    char *t = read_small_file(s->cfg.token_file, "the token file");
    if (!t) return CLI_BAD_INPUT;
    size_t n = strcspn(t, "\r\n"); /* the first line */
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\t')) n--;
    size_t start = 0;
    while (start < n && (t[start] == ' ' || t[start] == '\t')) start++;
    int rc = 0;
    if (n - start < 16) {
        rc = cli_fail(CLI_BAD_INPUT, "%s: the token is shorter than 16 characters", s->cfg.token_file);
    } else {
        gc_buf b = {0};
        gc_buf_puts(&b, "Bearer ");
        gc_buf_put(&b, t + start, n - start);
        if (b.oom) rc = cli_fail(CLI_FAIL, "out of memory");
        s->token = b.p;
        s->token_len = b.n;
    }
    memset(t, 0, strlen(t));
    free(t);
    return rc;
}

/* ---- OpenMP's wait policy ------------------------------------------------------------------- */

/* libgomp reads OMP_WAIT_POLICY once, when it is loaded: setting it now is too late for this
 * process. Idle OpenMP threads that spin (libgomp's default for a while after each parallel region)
 * steal the cores of the other workers, so the server re-executes itself once with the passive
 * policy unless the user chose one. */
static void reexec_passive(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GCAM_SERVE_NO_REEXEC")) return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1)) return;
    execv("/proc/self/exe", argv - 1); /* argv - 1: main's argv, program name first */
    fprintf(stderr, "%s: serve: warning: cannot re-execute with OMP_WAIT_POLICY=passive (%s); continuing\n", g_prog,
            strerror(errno));
}

/* ---- the drain on SIGTERM / SIGINT ---------------------------------------------------------- */

/* Threads that libraries start before main (OpenBLAS's pool) do not block the signals, so a
 * signal may land on any thread: a handler (not sigwait) turns it into a byte on a pipe that the
 * main thread reads. */
static int g_stop_pipe[2] = {-1, -1};

static void on_stop_signal(int sig) {
    int saved = errno;
    ssize_t w = write(g_stop_pipe[1], "x", 1);
    (void)w;
    errno = saved;
}

static int catch_stop_signals(void) {
    if (pipe(g_stop_pipe)) return cli_fail(CLI_FAIL, "serve: cannot make a pipe: %s", strerror(errno));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL))
        return cli_fail(CLI_FAIL, "serve: cannot catch SIGTERM: %s", strerror(errno));
    return 0;
}

static void wait_stop_signal(void) {
    char c;
    while (read(g_stop_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
}

static void close_stop_pipe(void) {
    /* ignored, not the default action: a second SIGTERM during the last clean-up (a supervisor, or
     * a test, repeating it) must not turn the clean exit 0 into death by signal */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    for (int i = 0; i < 2; i++)
        if (g_stop_pipe[i] >= 0) close(g_stop_pipe[i]);
    g_stop_pipe[0] = g_stop_pipe[1] = -1;
}

/* Stops taking connections, lets queued and running explanations finish and their answers go
 * out, then stops. */
static void drain(sv_server *s) {
    MHD_socket lfd = MHD_quiesce_daemon(s->daemon);
    /* MHD stops accepting, but the kernel would go on queueing connections on the still-open
     * socket until the drain ends (then reset them): shut it so that new clients are refused at
     * once (a balancer moves on). Closed only after MHD_stop_daemon, as MHD asks. */
    if (lfd != MHD_INVALID_SOCKET) shutdown(lfd, SHUT_RDWR);
    pthread_mutex_lock(&s->mu);
    s->draining = 1;
    while (s->count || s->busy) pthread_cond_wait(&s->idle_cv, &s->mu);
    /* answers being sent and uploads under way: a bounded wait */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    while (s->active && pthread_cond_timedwait(&s->idle_cv, &s->mu, &until) == 0) {
    }
    pthread_mutex_unlock(&s->mu);
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
}

static void server_free(sv_server *s) {
    sv_workers_stop(s);
    sv_models_free(s);
    sv_store_free(s->store);
    if (s->token) memset(s->token, 0, s->token_len);
    free(s->token);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->idle_cv);
    pthread_mutex_destroy(&s->metrics.mu);
}

static int serve_start(sv_server *s) {
    int rc = load_token(s);
    if (rc) return rc;
    if (!s->token && !s->cfg.insecure) {
        int loop = 0;
        if ((rc = sv_is_loopback(s->cfg.host, &loop))) return rc;
        if (!loop)
            return cli_usage_error("serve: --host %s is reachable from elsewhere: give --token-file (or --insecure)",
                                   s->cfg.host);
    }
    char *cert = NULL, *key = NULL;
    if (s->cfg.tls_cert) {
        cert = read_small_file(s->cfg.tls_cert, "the certificate");
        key = cert ? read_small_file(s->cfg.tls_key, "the key") : NULL;
        if (!key) {
            free(cert);
            return CLI_BAD_INPUT;
        }
    }
    rc = sv_models_load(s);
    if (!rc && !(s->store = sv_store_new(s->cfg.results_mem))) rc = cli_fail(CLI_FAIL, "out of memory");
    if (!rc) rc = sv_workers_start(s);
    if (!rc) rc = sv_models_describe(s);
    if (!rc) rc = sv_http_start(s, cert, key);
    if (key) memset(key, 0, strlen(key));
    free(cert);
    free(key);
    return rc;
}

int cmd_serve(int argc, char **argv) {
    reexec_passive(argv);
    sv_parse P;
    int rc = serve_parse(argc, argv, &P);
    if (rc) {
        parse_free(&P);
        return rc < 0 ? 0 : rc;
    }
    sv_server s;
    memset(&s, 0, sizeof s);
    s.cfg = P.cfg;
    s.models = P.models;
    s.n_models = P.n_models;
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.idle_cv, NULL);
    sv_metrics_init(&s.metrics);
    /* the threads started from here on (MHD's, the workers', OpenMP's) leave the stop signals to
     * the main thread */
    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    signal(SIGPIPE, SIG_IGN);
    rc = catch_stop_signals();
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    if (!rc) rc = serve_start(&s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!rc) {
        wait_stop_signal();
        if (!s.cfg.quiet) fprintf(stderr, "gradcam serve: stopping (finishing requests in flight)\n");
        drain(&s);
    } else if (s.daemon) {
        MHD_stop_daemon(s.daemon);
    }
    server_free(&s);
    close_stop_pipe();
    P.models = s.models;
    P.n_models = s.n_models;
    parse_free(&P);
    return rc;
}

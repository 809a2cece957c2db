/* gradcam serve: explanations over HTTP (libmicrohttpd, a thread per connection). A connection's
 * thread reads its requests, answers the quick endpoints, and runs an explanation itself when a
 * worker (a gcam_tool per model, all sharing one loaded gcam_model) is free and nobody waits;
 * otherwise the request waits in a bounded FIFO line for a worker's thread to explain it. Nothing
 * from a request touches the file system: pictures are explained from memory and the files come
 * back in memory (gcam_tool's memory mode). docs/serve.md. */
#ifndef GC_SERVE_H
#define GC_SERVE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "gradcam_tool.h"
#include "report/report.h"

struct MHD_Connection;
struct MHD_Daemon;

/* ---- configuration (serve_main.c) ---------------------------------------------------------- */

typedef struct sv_model {
    char *name;                  /* what requests call it (?model=): --name, or the file's stem */
    char *path;
    gcam_model *m;               /* loaded once, shared by every worker's tool */
    int argc;                    /* the explain options given after MODEL, passed to each tool */
    char **argv;
    char *labels_path;           /* --labels among them (also listed by /v1/models) */
    char *info_json;             /* its /v1/models entry */
} sv_model;

typedef struct sv_config {
    const char *host;
    int port;                    /* 0: any free port (printed) */
    int workers, threads;        /* worker threads, OpenMP threads per request */
    int queue;                   /* requests waiting for a worker, beyond: 503 */
    size_t max_body;             /* request body cap (413) */
    int64_t max_pixels;          /* picture cap, from its header before decoding (413) */
    int max_conns;
    double deadline_s;           /* a request's wait for a worker, and its upload */
    int idle_timeout_s;          /* connection inactivity */
    size_t header_mem;           /* MHD's per-connection memory (request line + headers) */
    size_t results_mem;          /* /v1/results store, bytes */
    const char *token_file, *tls_cert, *tls_key;
    int insecure, quiet;
} sv_config;

/* ---- the server's state --------------------------------------------------------------------- */

typedef struct sv_req sv_req;
typedef struct sv_store sv_store;

typedef struct sv_metrics {
    pthread_mutex_t mu;
    uint64_t by_status[600];     /* requests answered, by HTTP status */
    uint64_t aborted;            /* ended without an answer (client gone, timeout) */
    uint64_t lat_count, lat_bucket[16];
    double lat_sum;
} sv_metrics;

typedef struct sv_server {
    sv_config cfg;
    sv_model *models;
    int n_models;
    char *models_json;           /* GET /v1/models */
    char *token;                 /* "Bearer <token>", or NULL: no token asked */
    size_t token_len;
    /* the queue and the pool */
    pthread_mutex_t mu;
    pthread_condattr_t cv_attr;  /* of the requests' condition variables: CLOCK_MONOTONIC */
    int cv_ready;
    pthread_cond_t idle_cv;      /* a request ended (draining waits on it) */
    sv_req **ring;               /* the line of requests waiting for a worker, FIFO */
    int head, count;
    int *slot_busy;              /* [worker]: explaining, in its own thread or a connection's */
    pthread_cond_t *worker_cv;   /* [worker]: someone in line and this worker free, or stop */
    int n_worker_cv;
    pthread_t *threads;          /* [worker] */
    int n_threads;
    int busy, stop, draining;
    int explaining;              /* workers in gcam_tool_explain (gradcam_workers_busy) */
    int active;                  /* requests begun and not yet ended */
    gcam_tool ***tools;          /* [worker][model] */
    sv_store *store;
    sv_metrics metrics;
    struct MHD_Daemon *daemon;
} sv_server;

/* One request, from its first header to its end (MHD's con_cls). */
struct sv_req {
    int route;
    double t0;
    struct MHD_Connection *conn;
    gc_buf body;
    int too_big;                 /* the body passed max_body: answered 413 once read */
    int done;                    /* explained (or refused in line): the answer is in ans */
    int status;                  /* the answer's (for metrics) */
    /* the explain job */
    int model;
    int inline_png, store;       /* PNGs inline; files kept under /v1/results */
    char *name;
    int argc;
    char **argv;
    const unsigned char *pic;    /* into body */
    size_t pic_size;
    double t_queued;
    pthread_cond_t cv;           /* while in line: signalled by the worker that explained it */
    int taken;                   /* a worker's thread took it from the line */
    double deadline;             /* t0 + --deadline: the engine's abort check stops at it */
    int over;                    /* the abort check fired: the explanation ran past the deadline */
    /* the answer */
    double t_start, t_end;       /* a worker taken (or the wait over), and the answer made (Server-Timing) */
    int ans_status;
    char *ans;
    size_t ans_len;
};

/* http.c */
int sv_http_start(sv_server *s, const char *cert, const char *key);
/* Whether host (a numeric address or a name) is a loopback address: 0, or an exit code printed. */
int sv_is_loopback(const char *host, int *loop);
void sv_req_free(sv_req *r);

/* workers.c */
int sv_workers_start(sv_server *s);
void sv_workers_stop(sv_server *s);
/* Explains r, in the calling thread (its connection's) if a worker is free and nobody waits, else
 * by a worker's thread once r is first in line; answers 503 into r if its deadline passes while in
 * line. 0 with r->ans set, or -1 when the line is full or the server is stopping. */
int sv_explain(sv_server *s, sv_req *r);

/* request.c: turning a request into a job. 0, or an HTTP status with *err set (static text or
 * malloc'd into *err_owned). */
int sv_job_from_query(sv_server *s, sv_req *r, char *err, size_t cap);
int sv_job_picture(sv_server *s, sv_req *r, const char *content_type, char *err, size_t cap);
int sv_multipart_field(const unsigned char *body, size_t n, const char *content_type, const char *field,
                       const unsigned char **out, size_t *out_n);
int sv_picture_size(const unsigned char *p, size_t n, int64_t *w, int64_t *h);

/* store.c: files of results kept for /v1/results/ID/NAME, least recently used first out. */
sv_store *sv_store_new(size_t cap);
void sv_store_free(sv_store *st);
/* Keeps the files under id (32 hex digits), taking them on success only. 0, or -1 (larger than
 * the whole store, or no memory). */
int sv_store_put(sv_store *st, const char *id, gcam_tool_file *files, int n_files);
/* A copy of one file's bytes (malloc'd), or NULL. */
unsigned char *sv_store_get(sv_store *st, const char *id, const char *name, size_t *size);
size_t sv_store_bytes(sv_store *st);
int sv_random_hex(char *out, int n_bytes);

/* models.c: loading (before the workers), then each model's /v1/models entry (with a worker's
 * tool, before the workers take requests). 0, or an exit code printed. */
int sv_models_load(sv_server *s);
int sv_models_describe(sv_server *s);
void sv_models_free(sv_server *s);

/* metrics.c */
void sv_metrics_init(sv_metrics *m);
void sv_metrics_request(sv_metrics *m, int status, double seconds);
char *sv_metrics_text(sv_server *s, size_t *len);

/* page.c */
extern const char sv_page_html[];
extern const size_t sv_page_html_len;

/* JSON {"error": msg}, malloc'd. */
char *sv_error_json(const char *msg, size_t *len);
double sv_now(void);

#endif

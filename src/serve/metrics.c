/* GET /metrics: Prometheus text (exposition format 0.0.4). */
#include "serve.h"

/* Latency histogram bounds, seconds (the last bucket is +Inf). */
static const double g_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
enum { N_BOUNDS = sizeof g_bounds / sizeof *g_bounds };

void sv_metrics_init(sv_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void sv_metrics_request(sv_metrics *m, int status, double seconds) {
    pthread_mutex_lock(&m->mu);
    if (status >= 100 && status < 600) {
        m->by_status[status]++;
        int b = 0;
        while (b < N_BOUNDS && seconds > g_bounds[b]) b++;
        m->lat_bucket[b]++;
        m->lat_count++;
        m->lat_sum += seconds;
    } else {
        m->aborted++;
    }
    pthread_mutex_unlock(&m->mu);
}

char *sv_metrics_text(sv_server *s, size_t *len) {
    sv_metrics snap;
    pthread_mutex_lock(&s->metrics.mu);
    memcpy(snap.by_status, s->metrics.by_status, sizeof snap.by_status);
    memcpy(snap.lat_bucket, s->metrics.lat_bucket, sizeof snap.lat_bucket);
    snap.aborted = s->metrics.aborted;
    snap.lat_count = s->metrics.lat_count;
    snap.lat_sum = s->metrics.lat_sum;
    pthread_mutex_unlock(&s->metrics.mu);
    pthread_mutex_lock(&s->mu);
    int depth = s->count, busy = s->explaining, active = s->active;
    pthread_mutex_unlock(&s->mu);

    gc_buf b = {0};
    gc_buf_puts(&b, "# HELP gradcam_requests_total Requests answered, by HTTP status.\n"
                    "# TYPE gradcam_requests_total counter\n");
    for (int c = 100; c < 600; c++)
        if (snap.by_status[c]) gc_buf_printf(&b, "gradcam_requests_total{code=\"%d\"} %llu\n", c, (unsigned long long)snap.by_status[c]);
    gc_buf_printf(&b, "# HELP gradcam_requests_aborted_total Requests ended without an answer (client gone, timeout).\n"
                      "# TYPE gradcam_requests_aborted_total counter\ngradcam_requests_aborted_total %llu\n",
                  (unsigned long long)snap.aborted);
    gc_buf_puts(&b, "# HELP gradcam_request_duration_seconds Time from a request's headers to its answer sent.\n"
                    "# TYPE gradcam_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i <= N_BOUNDS; i++) {
        cum += snap.lat_bucket[i];
        if (i < N_BOUNDS) gc_buf_printf(&b, "gradcam_request_duration_seconds_bucket{le=\"%g\"} %llu\n", g_bounds[i], (unsigned long long)cum);
        else gc_buf_printf(&b, "gradcam_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    gc_buf_printf(&b, "gradcam_request_duration_seconds_sum %.6f\ngradcam_request_duration_seconds_count %llu\n", snap.lat_sum,
                  (unsigned long long)snap.lat_count);
    gc_buf_printf(&b,
                  "# HELP gradcam_queue_depth Explain requests waiting for a worker.\n# TYPE gradcam_queue_depth gauge\n"
                  "gradcam_queue_depth %d\n"
                  "# HELP gradcam_queue_capacity The queue's length (--queue).\n# TYPE gradcam_queue_capacity gauge\n"
                  "gradcam_queue_capacity %d\n"
                  "# HELP gradcam_workers_busy Workers explaining now.\n# TYPE gradcam_workers_busy gauge\n"
                  "gradcam_workers_busy %d\n"
                  "# HELP gradcam_workers Workers in the pool.\n# TYPE gradcam_workers gauge\ngradcam_workers %d\n"
                  "# HELP gradcam_requests_in_flight Requests begun and not ended.\n# TYPE gradcam_requests_in_flight gauge\n"
                  "gradcam_requests_in_flight %d\n"
                  "# HELP gradcam_results_bytes Bytes held for /v1/results.\n# TYPE gradcam_results_bytes gauge\n"
                  "gradcam_results_bytes %zu\n",
                  depth, s->cfg.queue, busy, s->cfg.workers, active - 1 /* not this one */, sv_store_bytes(s->store));
    if (b.oom) {
        gc_buf_free(&b);
        return NULL;
    }
    *len = b.n;
    return b.p;
}

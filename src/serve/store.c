/* The files of answers given as URLs (inline=0, .npy maps), kept in memory under a random name
 * for GET /v1/results/ID/NAME: bounded by bytes (and entries), the least recently used dropped
 * first. A list scanned in full: entries are few (4096 at most), a scan is microseconds. */
#include <errno.h>
#include <sys/random.h>

#include "serve.h"

enum { MAX_ENTRIES = 4096 };

typedef struct sv_entry {
    char id[33];
    gcam_tool_file *files;
    int n_files;
    size_t bytes;
    struct sv_entry *prev, *next; /* most recently used first */
} sv_entry;

struct sv_store {
    pthread_mutex_t mu;
    size_t cap, bytes;
    int n;
    sv_entry *head, *tail;
};

int sv_random_hex(char *out, int n_bytes) {
    unsigned char raw[64];
    if (n_bytes > 64) return -1;
    for (int got = 0; got < n_bytes;) {
        ssize_t r = getrandom(raw + got, (size_t)(n_bytes - got), 0);
        if (r < 0 && errno != EINTR) return -1;
        if (r > 0) got += (int)r;
    }
    for (int i = 0; i < n_bytes; i++) snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

sv_store *sv_store_new(size_t cap) {
    sv_store *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    pthread_mutex_init(&st->mu, NULL);
    st->cap = cap;
    return st;
}

static void unlink_entry(sv_store *st, sv_entry *e) {
    if (e->prev) e->prev->next = e->next;
    else st->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else st->tail = e->prev;
    e->prev = e->next = NULL;
}

static void push_front(sv_store *st, sv_entry *e) {
    e->prev = NULL;
    e->next = st->head;
    if (st->head) st->head->prev = e;
    st->head = e;
    if (!st->tail) st->tail = e;
}

static void entry_free(sv_entry *e) {
    gcam_tool_result r = {.files = e->files, .n_files = e->n_files};
    gcam_tool_result_free(&r); /* the files are the tool's to free */
    free(e);
}

void sv_store_free(sv_store *st) {
    if (!st) return;
    for (sv_entry *e = st->head, *next; e; e = next) {
        next = e->next;
        entry_free(e);
    }
    pthread_mutex_destroy(&st->mu);
    free(st);
}

int sv_store_put(sv_store *st, const char *id, gcam_tool_file *files, int n_files) {
    size_t bytes = sizeof(sv_entry);
    for (int i = 0; i < n_files; i++)
        if (gc_add_sz(&bytes, bytes, files[i].size)) return -1;
    if (bytes > st->cap) return -1;
    sv_entry *e = calloc(1, sizeof *e);
    if (!e) return -1;
    snprintf(e->id, sizeof e->id, "%s", id);
    e->files = files;
    e->n_files = n_files;
    e->bytes = bytes;
    pthread_mutex_lock(&st->mu);
    while (st->tail && (st->bytes + bytes > st->cap || st->n >= MAX_ENTRIES)) {
        sv_entry *old = st->tail;
        unlink_entry(st, old);
        st->bytes -= old->bytes;
        st->n--;
        entry_free(old);
    }
    push_front(st, e);
    st->bytes += bytes;
    st->n++;
    pthread_mutex_unlock(&st->mu);
    return 0;
}

unsigned char *sv_store_get(sv_store *st, const char *id, const char *name, size_t *size) {
    unsigned char *copy = NULL;
    pthread_mutex_lock(&st->mu);
    for (sv_entry *e = st->head; e; e = e->next) {
        if (strcmp(e->id, id) != 0) continue;
        for (int i = 0; i < e->n_files; i++) {
            if (strcmp(e->files[i].name, name) != 0) continue;
            /* a copy: the entry may be dropped while the answer is still being sent */
            if ((copy = malloc(e->files[i].size ? e->files[i].size : 1))) {
                memcpy(copy, e->files[i].data, e->files[i].size);
                *size = e->files[i].size;
            }
            break;
        }
        unlink_entry(st, e);
        push_front(st, e);
        break;
    }
    pthread_mutex_unlock(&st->mu);
    return copy;
}

size_t sv_store_bytes(sv_store *st) {
    pthread_mutex_lock(&st->mu);
    size_t b = st->bytes;
    pthread_mutex_unlock(&st->mu);
    return b;
}

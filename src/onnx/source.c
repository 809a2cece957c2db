/* Mappings, the arena of copies and external data files for the loader (see source.h). */
#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../graph/model.h"

#define GC_ARENA_MIN ((size_t)2 << 20)    /* a chunk's least size: one huge page */
#define GC_ARENA_HUGE ((size_t)4 << 20)   /* chunks from this size ask for huge pages */

static size_t page_size(void) {
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

static size_t round_up(size_t n, size_t to) { return n % to ? n + (to - n % to) : n; }

gcam_status gc_open_regular(const char *path, size_t max_bytes, int *fd, size_t *size, gc_err *err) {
    *fd = -1;
    *size = 0;
    int f = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (f < 0) return gc_fail(err, GCAM_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(f, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(f);
        return gc_fail(err, GCAM_E_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        close(f);
        return gc_fail(err, GCAM_E_LIMIT, "%s: file of %lld bytes is larger than the %zu allowed", path,
                       (long long)st.st_size, max_bytes);
    }
    *fd = f;
    *size = (size_t)st.st_size;
    return GCAM_OK;
}

gcam_status gc_pread_full(int fd, void *dst, size_t n, uint64_t off, const char *what, gc_err *err) {
    uint8_t *d = dst;
    while (n) {
        ssize_t r = pread(fd, d, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return gc_fail(err, GCAM_E_IO, "%s: read error: %s", what, r ? strerror(errno) : "the file got shorter");
        d += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return GCAM_OK;
}

/* A new chunk of at least need bytes, sized for what is left to copy: few chunks, few page faults
 * (huge pages where the kernel grants them). */
static int arena_chunk(gc_load *L, size_t need, gc_err *err) {
    size_t cap = GC_MAX(need, GC_MIN(L->copy_hint, (size_t)1 << 30));
    cap = round_up(GC_MAX(cap, GC_ARENA_MIN), GC_ARENA_MIN);
    void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        gc_fail(err, GCAM_E_NOMEM, "out of memory for %zu bytes of weights", need);
        return -1;
    }
    if (gc_model_add_region(L->m, p, cap, 0)) {
        munmap(p, cap);
        gc_fail(err, GCAM_E_NOMEM, "out of memory");
        return -1;
    }
#ifdef MADV_HUGEPAGE
    if (cap >= GC_ARENA_HUGE) madvise(p, cap, MADV_HUGEPAGE); /* advice only: 4 KiB pages work too */
#endif
    L->arena = p;
    L->arena_cap = cap;
    L->arena_used = 0;
    return 0;
}

void *gc_load_arena(gc_load *L, size_t bytes, gc_err *err) {
    size_t need = gc_align64(bytes ? bytes : 1);
    if (!need) {
        gc_fail(err, GCAM_E_NOMEM, "out of memory");
        return NULL;
    }
    if (!L->arena || need > L->arena_cap - L->arena_used) {
        gc_load_arena_seal(L);
        if (arena_chunk(L, need, err)) return NULL;
    }
    void *r = L->arena + L->arena_used;
    L->arena_used += need;
    L->copy_hint = L->copy_hint > need ? L->copy_hint - need : 0;
    return r;
}

void gc_load_arena_seal(gc_load *L) {
    if (!L->arena) return;
    size_t used = round_up(L->arena_used, page_size());
    gc_region *r = gc_model_region(L->m, L->arena);
    if (!used) {
        gc_model_drop_region(L->m, L->arena);
    } else if (r) {
        if (used < r->size && munmap(L->arena + used, r->size - used) == 0) r->size = used;
        mprotect(L->arena, used, PROT_READ); /* a bug that writes into a weight faults */
    }
    L->arena = NULL;
    L->arena_used = L->arena_cap = 0;
}

void gc_load_drop_pages(const gc_load *L, const void *p, size_t n) {
    if (!L || !L->borrow || !n || (const uint8_t *)p < L->base || (size_t)((const uint8_t *)p - L->base) >= L->size) return;
    uintptr_t ps = page_size(), a = (uintptr_t)p, b = a + n;
    a = (a + ps - 1) / ps * ps; /* whole pages inside: neighbours may still be read */
    b = b / ps * ps;
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* *out = the real path of base_dir/loc (malloc'ed), refused unless it lies inside base_dir's real
 * path once every symbolic link is resolved: a text check cannot see a link in the folder (or a
 * linked sub-folder) that points anywhere on the machine. */
static gcam_status resolve_inside(char **out, const char *base_dir, const char *loc, const char *what, gc_err *err) {
    *out = NULL;
    size_t plen = strlen(base_dir) + strlen(loc) + 2;
    char *path = malloc(plen);
    if (!path) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
    snprintf(path, plen, "%s/%s", base_dir, loc);
    char *rbase = realpath(base_dir, NULL);
    if (!rbase) {
        gc_fail(err, GCAM_E_IO, "%s: the model's folder '%s': %s", what, base_dir, strerror(errno));
        free(path);
        return err->code;
    }
    char *rpath = realpath(path, NULL);
    if (!rpath) {
        gc_fail(err, GCAM_E_IO, "%s: external data file '%s': %s", what, path, strerror(errno));
        free(path);
        free(rbase);
        return err->code;
    }
    size_t nb = strlen(rbase);
    if (nb && rbase[nb - 1] == '/') nb--; /* the root folder: everything is inside */
    int inside = strncmp(rpath, rbase, nb) == 0 && rpath[nb] == '/';
    free(path);
    free(rbase);
    if (!inside) {
        free(rpath);
        /* the link's target is not shown: the message may reach whoever supplied the model */
        return gc_fail(err, GCAM_E_FORMAT, "%s: external data location '%s' points outside the model's folder "
                       "(through a symbolic link)", what, loc);
    }
    *out = rpath;
    return GCAM_OK;
}

/* Maps [off, off + len) of the open file x->fd, from the page that holds off. */
static gcam_status ext_map(gc_ext *x, uint64_t off, size_t len, const char *what, const char *path, gc_err *err) {
    if (!len) return GCAM_OK;
    size_t ps = page_size(), skip = (size_t)(off % ps);
    x->map_size = skip + len; /* no overflow: off + len is within the file */
    x->map = mmap(NULL, x->map_size, PROT_READ, MAP_PRIVATE, x->fd, (off_t)(off - skip));
    if (x->map == MAP_FAILED) {
        x->map = NULL;
        return gc_fail(err, GCAM_E_IO, "%s: cannot map external data '%s': %s", what, path, strerror(errno));
    }
    x->p = (const uint8_t *)x->map + skip;
    return GCAM_OK;
}

gcam_status gc_ext_open(gc_ext *x, const char *base_dir, const char *loc, uint64_t off, size_t len,
                        const char *what, gc_err *err) {
    memset(x, 0, sizeof *x);
    x->fd = -1;
    char *path = NULL;
    gcam_status rc = resolve_inside(&path, base_dir, loc, what, err);
    if (rc) return rc;
    /* O_NOFOLLOW: the resolved path has no link left; O_NONBLOCK: a FIFO must not hang the load
     * (fstat then refuses it) */
    x->fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (x->fd < 0) {
        rc = gc_fail(err, GCAM_E_IO, "%s: external data file '%s': %s", what, path, strerror(errno));
    } else if (fstat(x->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = gc_fail(err, GCAM_E_IO, "%s: external data '%s' is not a regular file", what, path);
    } else if (off > (uint64_t)st.st_size || (uint64_t)st.st_size - off < len) {
        rc = gc_fail(err, GCAM_E_FORMAT, "%s: external data '%s' has %lld bytes; offset %lld + %zu bytes runs past its end",
                     what, path, (long long)st.st_size, (long long)off, len);
    } else {
        rc = ext_map(x, off, len, what, path, err);
    }
    free(path);
    if (rc) gc_ext_close(x);
    return rc;
}

gcam_status gc_ext_keep(gc_ext *x, gc_model *m, gc_err *err) {
    if (!x->map) return GCAM_OK;
    if (gc_model_add_region(m, x->map, x->map_size, 1)) return gc_fail(err, GCAM_E_NOMEM, "out of memory");
    x->map = NULL; /* the model's now */
    return GCAM_OK;
}

void gc_ext_close(gc_ext *x) {
    if (x->fd >= 0) close(x->fd);
    if (x->map) munmap(x->map, x->map_size);
    memset(x, 0, sizeof *x);
    x->fd = -1;
}

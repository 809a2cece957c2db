/* Where a model's tensor bytes come from while it loads: the model file mapped read-only (tensors
 * point into it where their bytes are aligned for their type), external data files mapped the same
 * way, and an arena for the bytes that must be copied (unaligned, or loaded from the caller's
 * memory). Everything mapped becomes a region of the model, unmapped with it. */
#ifndef GC_ONNX_SOURCE_H
#define GC_ONNX_SOURCE_H

#include "../ir/ir.h"
#include "wire.h"

typedef struct gc_load {
    gc_model *m;            /* NULL: a lone TensorProto (everything malloc'ed) */
    const char *base_dir;   /* external data are looked for here (NULL: refused) */
    const uint8_t *base;    /* the model's bytes: the file's mapping or the caller's buffer */
    size_t size;
    int fd;                 /* the model file (copies read it with pread, not through the mapping); -1 */
    int borrow;             /* base is the model's own mapping: tensors may point into it */
    const gc_skeleton *sk;  /* the payloads the markers index */
    size_t borrowed;        /* bytes of tensors pointing into base (0: the mapping is dropped) */
    size_t copy_hint;       /* bytes the arena may still have to take (sizes its chunks) */
    uint8_t *arena;         /* the arena's current chunk: used of cap bytes */
    size_t arena_used, arena_cap;
} gc_load;

/* Opens a regular file of at most max_bytes for reading (a FIFO does not block: it is refused). */
gcam_status gc_open_regular(const char *path, size_t max_bytes, int *fd, size_t *size, gc_err *err);
/* Reads n bytes at off, all of them. */
gcam_status gc_pread_full(int fd, void *dst, size_t n, uint64_t off, const char *what, gc_err *err);

/* 64-byte aligned room for bytes in the arena (read-only once the load ends); NULL on failure,
 * with err set. */
void *gc_load_arena(gc_load *L, size_t bytes, gc_err *err);
/* Ends the arena's current chunk: its unused tail unmapped, the rest made read-only. */
void gc_load_arena_seal(gc_load *L);
/* Drops the pages of [p, p + n) from the process (they stay in the page cache) when they lie in the
 * model's own mapping: bytes converted or copied out of it are not kept twice. */
void gc_load_drop_pages(const gc_load *L, const void *p, size_t n);

/* An external data file's bytes [off, off + len), mapped read-only. */
typedef struct gc_ext {
    int fd;
    void *map;           /* the mapping (NULL when len is 0) */
    size_t map_size;
    const uint8_t *p;    /* the bytes */
} gc_ext;

/* Opens and maps base_dir/loc's bytes [off, off + len) after the checks external data always had:
 * a relative location without "..", inside base_dir once links are resolved, a regular file long
 * enough. */
gcam_status gc_ext_open(gc_ext *x, const char *base_dir, const char *loc, uint64_t off, size_t len,
                        const char *what, gc_err *err);
/* Hands the mapping to m (a tensor points into it), before the tensor is made to. */
gcam_status gc_ext_keep(gc_ext *x, gc_model *m, gc_err *err);
/* Closes the file and unmaps what was not kept. */
void gc_ext_close(gc_ext *x);

#endif

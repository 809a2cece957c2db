/* The arena allocator of a plan: buffers with a lifetime [first, last] on the plan's timeline
 * (forward steps, the seed, backward steps) share one arena; two buffers whose lifetimes overlap
 * never overlap in memory. Five calls:
 *
 *   gc_alloc *a = gc_alloc_new();
 *   gc_alloc_reserve(a, bytes, first, last, &tensor->data);   // for every buffer
 *   size_t size = gc_alloc_pack(a);                           // offsets; the arena's size
 *   gc_alloc_bind(a, arena);                                  // every *target = arena + offset
 *   gc_alloc_free(a);
 */
#ifndef GC_ALLOC_H
#define GC_ALLOC_H

#include <stddef.h>
#include <stdint.h>

typedef struct gc_alloc gc_alloc;

gc_alloc *gc_alloc_new(void);
/* A buffer of `size` bytes (rounded up to 64) live from step first to step last (inclusive),
 * whose address goes to *target at bind time. 0, or -1 when out of memory or too large. */
int gc_alloc_reserve(gc_alloc *a, size_t size, int first, int last, void **target);
/* Greedy packing, largest first: each buffer at the lowest offset that collides with no placed
 * buffer whose lifetime overlaps its own. The arena's size, or SIZE_MAX (overflow, no memory). */
size_t gc_alloc_pack(gc_alloc *a);
/* Writes every reserved target: arena + its offset (after gc_alloc_pack). */
void gc_alloc_bind(const gc_alloc *a, uint8_t *arena);
void gc_alloc_free(gc_alloc *a);

#endif

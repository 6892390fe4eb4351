/* alloc.h - the library's large aligned allocations and its one
 * out-of-memory hook.
 *
 * th_alloc_aligned is what the model's activation arena and the kernels'
 * workspace allocate with: zeroed memory on a 64-byte boundary (a cache line
 * and a full AVX-512 register), so the SIMD kernels can rely on aligned rows.
 * When an allocation fails it tells the out-of-memory handler, as Redis'
 * zmalloc does, and returns NULL; the caller then reports the failure
 * through th_err as usual. The default handler does nothing: the library
 * never aborts on a failed allocation. A host program may set its own, to
 * log the request or to drop caches before it retries. */
#ifndef THORAX_ALLOC_H
#define THORAX_ALLOC_H

#include <stddef.h>

#define TH_ALIGN 64

/* Told of every failed th_alloc_aligned: the bytes asked for and what they
 * were for ("model activations"). It may not allocate through
 * th_alloc_aligned itself. */
typedef void (*th_oom_handler)(size_t bytes, const char *what);

/* Sets the handler; NULL restores the default, which does nothing. The one
 * piece of global state of the library: set it once, before any thread
 * allocates. */
void th_set_oom_handler(th_oom_handler fn);

/* `bytes` zeroed bytes starting on a TH_ALIGN boundary, or NULL after
 * telling the handler. bytes == 0 gives a valid, empty block. Free with
 * th_free_aligned. */
void *th_alloc_aligned(size_t bytes, const char *what);
void th_free_aligned(void *p);

/* n rounded up to a multiple of TH_ALIGN (n <= SIZE_MAX - TH_ALIGN). */
static inline size_t th_align_up(size_t n)
{
    return (n + TH_ALIGN - 1) / TH_ALIGN * TH_ALIGN;
}

#endif

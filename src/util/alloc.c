/* alloc.c - aligned zeroed allocations and the out-of-memory hook (see
 * thorax/util.h). */
#include "thorax/util.h"

#include <stdint.h>
#include <stdlib.h>

static void oom_ignore(size_t bytes, const char *what)
{
    (void)bytes;
    (void)what;
}

static th_oom_handler oom_handler = oom_ignore;

void th_set_oom_handler(th_oom_handler fn)
{
    oom_handler = fn ? fn : oom_ignore;
}

/* calloc rather than posix_memalign + memset: a large calloc maps fresh
 * zero pages, so memory a smaller batch never touches is never committed.
 * The block is over-allocated by TH_ALIGN; the start calloc returned is kept
 * in the pointer-sized word just below the aligned start. */
void *th_alloc_aligned(size_t bytes, const char *what)
{
    char *base = bytes <= SIZE_MAX - 2 * TH_ALIGN ? calloc(1, bytes + TH_ALIGN) : NULL;
    if (!base) {
        oom_handler(bytes, what);
        return NULL;
    }
    /* At least one pointer's room below the aligned start: calloc's result
     * is aligned to at least sizeof(void *), so the next TH_ALIGN boundary
     * strictly above it is at most TH_ALIGN away. */
    char *p = base + TH_ALIGN - (uintptr_t)base % TH_ALIGN;
    ((void **)p)[-1] = base;
    return p;
}

void th_free_aligned(void *p)
{
    if (p) free(((void **)p)[-1]);
}

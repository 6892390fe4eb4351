/* workspace.h - per-thread scratch for the layer kernels, sized once.
 *
 * The kernels split a batch's images across `threads` OpenMP threads (each
 * calling single-threaded OpenBLAS on its own images), so every thread needs
 * its own column buffer and its own partial sums of the weight gradients.
 * One workspace holds them all: `threads` slices of `per_thread` floats, each
 * slice starting on its own cache line so threads never share one.
 */
#ifndef THORAX_WORKSPACE_H
#define THORAX_WORKSPACE_H

#include <stddef.h>
#include "thorax/nn.h"


/* Sets the team size and makes room for `threads` slices of at least
 * per_thread floats, keeping the buffer when it is already large enough.
 * Not for the hot path: it may allocate. On failure the workspace is left
 * as it was. */
int th_workspace_reserve(th_workspace *ws, int threads, size_t per_thread, th_err *err);

/* Thread t's slice (0 <= t < ws->threads). */
static inline float *th_workspace_slice(const th_workspace *ws, int t)
{
    return ws->buf + (size_t)t * ws->per_thread;
}

/* The images [*first, *end) of a batch of n that thread t of `threads`
 * handles: contiguous blocks, so the work split, and every sum made over
 * it, depends only on (n, threads). */
static inline void th_workspace_share(int n, int threads, int t, int *first, int *end)
{
    *first = (int)((long)n * t / threads);
    *end = (int)((long)n * (t + 1) / threads);
}

void th_workspace_free(th_workspace *ws);


#endif

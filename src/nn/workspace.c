/* workspace.c - per-thread scratch for the layer kernels (see src/nn/workspace.h). */
#include "workspace.h"

#include <cblas.h>

#include "thorax/util.h"

void th_workspace_serial_blas(void)
{
    openblas_set_num_threads(1);
}

int th_workspace_reserve(th_workspace *ws, int threads, size_t per_thread, th_err *err)
{
    if (threads < 1) return th_errf(err, "workspace: needs at least one thread, got %d", threads);
    /* 16 floats = one 64-byte cache line: slices never share a line. */
    per_thread = (per_thread + 15) / 16 * 16;
    if (per_thread == 0) per_thread = 16;
    size_t need = (size_t)threads * per_thread;
    if (need > ws->capacity) {
        void *p = th_alloc_aligned(need * sizeof(float), "kernel workspace");
        if (!p)
            return th_errf(err, "workspace: out of memory for %d threads x %.1f MB of scratch", threads,
                           (double)per_thread * sizeof(float) / 1e6);
        th_free_aligned(ws->buf);
        ws->buf = p;
        ws->capacity = need;
    }
    ws->threads = threads;
    ws->per_thread = per_thread;
    return 0;
}

void th_workspace_free(th_workspace *ws)
{
    th_free_aligned(ws->buf);
    ws->buf = NULL;
    ws->capacity = 0;
    ws->per_thread = 0;
    ws->threads = 0;
}

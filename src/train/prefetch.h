/* prefetch.h - prepares the next training batch on a worker thread.
 *
 * While the ranks compute step s, the worker fills step s+1 (augmentation and
 * normalisation of the batch's images) into the other of two buffers, so the
 * compute waits for data only when preparing a batch takes longer than a
 * step. The worker calls only the fill function: it never touches MPI or HDF5,
 * so MPI_THREAD_FUNNELED is enough.
 */
#ifndef THORAX_PREFETCH_H
#define THORAX_PREFETCH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "thorax/util.h"

/* Fills batch `step` into x [batch floats] and y [batch labels]; returns the
 * number of images in it. Runs on the worker thread. */
typedef int (*th_prefetch_fill)(void *ctx, int step, float *x, uint8_t *y);

typedef struct th_prefetch {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    th_prefetch_fill fill;
    void *ctx;
    float *x[2];
    uint8_t *y[2];
    int n[2];
    int requested;      /* the step the worker is asked to fill, -1 when none */
    int ready;          /* the last step filled, -1 when none */
    int quit;
    int started;
} th_prefetch;

int th_prefetch_start(th_prefetch *p, size_t x_floats, size_t y_bytes, th_prefetch_fill fill, void *ctx, th_err *err);

/* Asks for `step` to be filled (into buffer step % 2). At most one request is
 * outstanding: call it after th_prefetch_wait returned the previous step. */
void th_prefetch_request(th_prefetch *p, int step);

/* Blocks until `step` is filled; returns its buffers and image count. */
int th_prefetch_wait(th_prefetch *p, int step, float **x, uint8_t **y);

/* Ends the worker and frees the buffers. Safe on a never-started prefetcher. */
void th_prefetch_stop(th_prefetch *p);

#endif

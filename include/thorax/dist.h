/* dist.h - the MPI side of training: gradient averaging and gathers.
 *
 * Every function here is collective over comm: all ranks call it, in the same
 * order, with the same sizes; th_grad_sync_init, _ready and _free say where
 * they are not.
 */
#ifndef THORAX_DIST_H
#define THORAX_DIST_H

#include <stddef.h>
#include <stdint.h>
#include <mpi.h>
#include "thorax/error.h"
#include "thorax/model.h"

/* Sums grads [n] over the ranks in place and divides by total, the number of
 * images in the global batch, so the result is the exact mean gradient even
 * when ranks hold different numbers of images (or none). */
int th_dist_allreduce_mean(MPI_Comm comm, float *grads, size_t n, long total, th_err *err);

/* Gradient averaging overlapped with backward. Installed as the model's
 * gradient hook (th_model_set_grads_hook(m, th_grad_sync_ready, &sync)), it
 * sums each bucket of finished layers with MPI_Iallreduce while the layers
 * below it are still differentiating; th_grad_sync_finish then waits for the
 * rest and divides by the global batch: th_dist_allreduce_mean's result.
 * Bit for bit on 2 and 4 ranks with Open MPI; on other counts its blocking
 * and non-blocking allreduces may add the ranks' terms in another order, so
 * the last bits may differ (every bucket size > 0 still gives the same bits:
 * an in-place MPI_Iallreduce always takes the same binomial tree).
 *
 * Only the gradients of layers that train travel: the sync covers the
 * segments of grads that hold the parameters of layers not frozen
 * (th_model_freeze) when it is initialised, one segment (all of grads) when
 * nothing is frozen. Frozen ranges are neither summed nor divided: they keep
 * whatever they held. Initialise it again after freezing or thawing layers.
 *
 * Buckets are runs of whole layers' ranges inside one segment, formed once
 * at init from the top of grads down: a bucket closes at the first layer
 * start where it holds at least bucket_floats, and at the bottom of its
 * segment (the lowest bucket of a segment takes what is left), and never
 * exceeds INT_MAX floats (MPI counts are ints). They depend only on the
 * model's layout, its frozen layers and bucket_floats, so every rank starts
 * the same buckets in the same order, as matching collectives must, whether
 * its backward reports layer after layer or, holding no images, every
 * trainable layer at once. */
typedef struct th_grad_sync {
    MPI_Comm comm;
    float *grads;               /* the model's gradient buffer [n] */
    size_t n;
    int n_segs;
    size_t *seg_lo, *seg_hi;    /* [n_segs], from the top down: segment k = [seg_lo[k], seg_hi[k]) */
    size_t n_sync;              /* gradients each step sums: the segments' lengths added */
    size_t bucket_floats;       /* 0: no buckets, one blocking allreduce per segment in finish */
    int n_buckets;
    size_t *lo, *hi;            /* [n_buckets], from the top down: bucket b = [lo[b], hi[b]) */
    MPI_Request *req;           /* [n_buckets] */
    size_t ready_lo;            /* grads [ready_lo, n) are final in this step (frozen ranges count as final) */
    int seg_at;                 /* the segment ready_lo lies in */
    int started;                /* buckets 0..started-1 are in flight or done in this step */
    int mpi_rc;                 /* first failed MPI_Iallreduce in this step (MPI_SUCCESS if none) */
    int failed_bucket;
    /* Buckets the last step started during backward, before finish: the
     * measure of overlap (0 with bucket_floats 0). */
    int started_early;
    /* Gradients summed over the ranks since init, every step added: what
     * the allreduces carried (in floats), for tests and benchmarks. */
    unsigned long long floats_reduced;
} th_grad_sync;

/* Buckets of bucket_mb MiB of float gradients (2^20 bytes), rounded up to
 * whole floats; 0 stays 0 (the blocking path). */
size_t th_grad_sync_bucket_floats(double bucket_mb);

/* Forms the segments and buckets of m's gradients (of its layers not frozen
 * now) and allocates everything a step needs: the hook and finish never
 * allocate. Not collective; does not install the hook. comm must be the
 * communicator finish would otherwise reduce over. */
int th_grad_sync_init(th_grad_sync *s, MPI_Comm comm, const th_model *m, size_t bucket_floats, th_err *err);

/* The model's gradient hook (a th_grads_ready_fn; ctx is the th_grad_sync):
 * grads [offset, offset + count) are final. Starts every bucket now wholly
 * final, in order, and tests those in flight so that they progress (Open
 * MPI's non-blocking collectives move only inside MPI calls). A range that
 * does not continue the final region downwards (frozen ranges between count
 * as final) starts nothing: finish then starts the rest, so the result stays
 * right and only the overlap is lost. Each rank calls it at its own pace;
 * only the order of starts must match. */
void th_grad_sync_ready(void *ctx, size_t offset, size_t count);

/* Collective. After backward: starts the buckets not yet started, waits for
 * all, and divides the sums by total, the images in the global batch, as
 * th_dist_allreduce_mean does. With bucket_floats 0 it is that function on
 * each segment. Readies the sync for the next step, which must not backward
 * before this. */
int th_grad_sync_finish(th_grad_sync *s, long total, th_err *err);

/* Frees the buffers; no step may be in flight (finish ends each one). */
void th_grad_sync_free(th_grad_sync *s);

/* The fewest CPUs any rank may run on (its affinity mask). mpirun binds each
 * rank to one core by default when there are at most two ranks, so a rank
 * with 2 threads may have a single core to share between them: callers warn
 * when threads_per_rank exceeds this. */
int th_dist_min_cpus(MPI_Comm comm);

/* Gathers rows [my_rows, width] from every rank onto root, concatenated in
 * rank order, into out [sum of rows, width] (only read on root). */
int th_dist_gather_rows(MPI_Comm comm, int root, const float *rows, int my_rows, int width,
                        float *out, th_err *err);

/* Makes a failure on any rank a failure on all: returns 0 if every rank's
 * status is 0; otherwise copies the message of the lowest failing rank into
 * err on every rank (prefixed "rank N: " when N is not 0) and returns -1.
 * Call it before any collective that a failed rank would not reach. */
int th_dist_agree(MPI_Comm comm, int status, th_err *err);

#endif

/* dist.h - the one MPI layer: collectives over flat spans.
 *
 * Everything Thorax sends between ranks goes through here: gradient
 * averaging (blocking, or bucketed and overlapped with backward), broadcasts
 * of any size, sums and maxima of a few numbers, gathers of rows, agreement
 * on an error, and the hand-over of a communicator to MPI-IO. It knows no
 * layer, tensor or model: callers pass pointers and counts.
 *
 * Usage, as a training step does it:
 *
 *   th_span train[] = {{0, n_params}};     // what trains (here: everything)
 *   size_t cuts[] = {...};                 // where a layer's gradients start
 *   th_grad_sync s;
 *   th_grad_sync_init(&s, comm, grads, n_params, train, 1, cuts, n_cuts, bucket, &err);
 *   // backward calls th_grad_sync_ready(&s, offset, count) per finished layer
 *   th_grad_sync_finish(&s, global_batch, &err);   // grads now the mean
 *
 * Every function here is collective over comm: all ranks call it, in the same
 * order, with the same sizes; those that are not say so.
 */
#ifndef THORAX_DIST_H
#define THORAX_DIST_H

#include <stddef.h>
#include <stdint.h>
#include <mpi.h>
#include "thorax/util.h"

/* The communicator a collective runs over: MPI's own under Thorax's name, so
 * that code outside src/dist never spells MPI and callers that hold an MPI
 * communicator (tests, a host program) pass it as it is. */
typedef MPI_Comm th_comm;

/* Every process of the job, and this process alone (a command that reads a
 * dataset file without training, such as `thorax split`). Not collective. */
th_comm th_comm_world(void);
th_comm th_comm_self(void);

/* Whether MPI is up, and this process's rank as the launcher's environment
 * gives it, known before MPI is (Open MPI, PMIx and SLURM name their
 * variables differently; 0 when none says): usage errors are found before
 * MPI starts, identically on every rank, and should be said once. Not
 * collective. */
int th_dist_started(void);
int th_dist_launcher_rank(void);

/* This process's rank in comm and comm's size. Not collective. */
int th_dist_rank(th_comm comm);
int th_dist_size(th_comm comm);

/* A range of a flat buffer: elements [off, off + count). */
typedef struct th_span {
    size_t off, count;
} th_span;

/* The hang watchdog. A rank stopped (SIGSTOP), hung outside MPI or on a
 * lost node leaves the others waiting in their next collective for ever.
 * With a watch on comm, every collective of this layer over comm is waited
 * for in a test loop that sleeps between tests; one that has not completed
 * after timeout_s seconds asks every rank whether it is there (ranks waiting
 * in a collective answer at once) and calls on_hang(ctx, msg, speak) on each
 * waiting rank, msg naming the silent ranks ("rank 1 silent: ..."), speak set
 * on one of them only (the lowest that answered): the callback reports and
 * ends the job (MPI_Abort); if it returns, the job is aborted anyway, as no
 * collective can complete. Collective (duplicates comm, for the questions);
 * timeout_s <= 0 watches nothing. The watch stays with comm (an MPI
 * attribute) until th_dist_unwatch. Collectives outside this layer (MPI-IO
 * inside HDF5) are not watched. */
typedef void (*th_dist_hang_fn)(void *ctx, const char *msg, int speak);
int th_dist_watch(th_comm comm, double timeout_s, th_dist_hang_fn on_hang, void *ctx, th_err *err);

/* Ends comm's watch, if any. Collective (frees the duplicate). */
void th_dist_unwatch(th_comm comm);

/* Copies root's buf [bytes] to every rank, in pieces of at most INT_MAX
 * bytes (MPI counts are ints), so a dataset index or a model of any size
 * travels in one call. */
int th_dist_bcast(th_comm comm, int root, void *buf, size_t bytes, th_err *err);

/* x [n] becomes, on every rank, the sum (or the maximum) over the ranks of
 * each element. For the few numbers of a step or a benchmark: n is small. */
void th_dist_sum(th_comm comm, double *x, int n);
void th_dist_max(th_comm comm, double *x, int n);

/* Whether flag is non-zero on any rank (every rank gets the answer). */
int th_dist_any(th_comm comm, int flag);

/* Waits until every rank has called it: the ranks start a timed loop
 * together. */
void th_dist_barrier(th_comm comm);

/* The ranks of comm on this process's node (those that share its memory),
 * and the sum over the ranks on rank 0's node of v (every rank gets it): a
 * benchmark's CPU probe on rank 0's node subtracts its node-mates' time. */
int th_dist_node_size(th_comm comm);
double th_dist_node0_sum(th_comm comm, double v);

/* Sets the HDF5 file-access property list fapl (an hid_t) to open a file
 * with MPI-IO over comm: the one place where MPI meets HDF5, so that the
 * dataset reader, which needs parallel HDF5, spells no MPI. Not collective
 * (the open that uses it is). */
int th_dist_h5_mpio(int64_t fapl, th_comm comm, th_err *err);

/* Sums grads [n] over the ranks in place and divides by total, the number of
 * images in the global batch, so the result is the exact mean gradient even
 * when ranks hold different numbers of images (or none). */
int th_dist_allreduce_mean(th_comm comm, float *grads, size_t n, long total, th_err *err);

/* Gradient averaging overlapped with backward. Installed as the model's
 * gradient hook, it sums each bucket of finished gradients with
 * MPI_Iallreduce while the layers below are still differentiating;
 * th_grad_sync_finish then waits for the rest and divides by the global
 * batch: th_dist_allreduce_mean's result. Bit for bit on 2 and 4 ranks with
 * Open MPI; on other counts its blocking and non-blocking allreduces may add
 * the ranks' terms in another order, so the last bits may differ (every
 * bucket size > 0 still gives the same bits: an in-place MPI_Iallreduce
 * always takes the same binomial tree).
 *
 * Only the spans of grads that train travel (the caller leaves frozen
 * layers out); adjacent spans merge into segments. Ranges outside every span
 * are neither summed nor divided: they keep whatever they held. Initialise
 * it again when the spans change.
 *
 * Buckets are runs of grads between cuts (the offsets where the caller's
 * ranges reported by th_grad_sync_ready start: a layer's gradients) inside
 * one segment, formed once at init from the top of grads down: a bucket
 * closes at the first cut where it holds at least bucket_floats, and at the
 * bottom of its segment (the lowest bucket of a segment takes what is left),
 * and never exceeds INT_MAX floats (MPI counts are ints). They depend only on
 * the spans, the cuts and bucket_floats, so every rank starts the same
 * buckets in the same order, as matching collectives must, whether its
 * backward reports layer after layer or, holding no images, every range at
 * once. */
typedef struct th_grad_sync {
    th_comm comm;
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

/* Forms the segments of grads [n] from spans [n_spans] (disjoint, any
 * order; empty ones are skipped) and their buckets from cuts [n_cuts] (any
 * order, duplicates allowed; 0 is always a cut), and allocates everything a
 * step needs: the hook and finish never allocate. Not collective; does not
 * install the hook. comm must be the communicator finish would otherwise
 * reduce over. */
int th_grad_sync_init(th_grad_sync *s, th_comm comm, float *grads, size_t n, const th_span *spans, int n_spans,
                      const size_t *cuts, int n_cuts, size_t bucket_floats, th_err *err);

/* Whether every gradient the sync carries is finite (one pass over its
 * segments; NaN and Inf propagate through the sum it takes). Not collective. */
int th_grad_sync_finite(const th_grad_sync *s);

/* The gradient hook (ctx is the th_grad_sync; nn calls it as a th_grads_ready_fn):
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
int th_dist_min_cpus(th_comm comm);

/* Gathers rows [my_rows, width] from every rank onto root, concatenated in
 * rank order, into out [sum of rows, width] (only read on root). */
int th_dist_gather_rows(th_comm comm, int root, const float *rows, int my_rows, int width,
                        float *out, th_err *err);

/* Gathers bytes [bytes] of every rank onto root in rank order, into out
 * [size * bytes] (only written on root): fixed-size records such as host
 * names in char buffers. */
int th_dist_gather_bytes(th_comm comm, int root, const void *mine, int bytes, void *out, th_err *err);

/* Makes a failure on any rank a failure on all: returns 0 if every rank's
 * status is 0; otherwise copies the message of the lowest failing rank into
 * err on every rank (prefixed "rank N: " when N is not 0) and returns -1.
 * Call it before any collective that a failed rank would not reach. */
int th_dist_agree(th_comm comm, int status, th_err *err);

#endif

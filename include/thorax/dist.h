/* dist.h - the MPI side of training: gradient averaging and gathers.
 *
 * Every function here is collective over comm: all ranks call it, in the same
 * order, with the same sizes.
 */
#ifndef THORAX_DIST_H
#define THORAX_DIST_H

#include <stddef.h>
#include <stdint.h>
#include <mpi.h>
#include "thorax/error.h"

/* Sums grads [n] over the ranks in place and divides by total, the number of
 * images in the global batch, so the result is the exact mean gradient even
 * when ranks hold different numbers of images (or none). */
int th_dist_allreduce_mean(MPI_Comm comm, float *grads, size_t n, long total, th_err *err);

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

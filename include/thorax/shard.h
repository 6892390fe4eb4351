/* shard.h - the images of one split that one rank handles, in memory.
 *
 * Rank 0 assigns every image an owner rank within its split (whole patients
 * per rank, th_shard_by_patient); each rank then reads its own images with
 * parallel HDF5. When ranks send results back to rank 0 with a gather, they
 * arrive in rank order: th_shard_gather_order says which dataset row each
 * gathered row is.
 */
#ifndef THORAX_SHARD_H
#define THORAX_SHARD_H

#include <stdint.h>
#include "thorax/dataset.h"
#include "thorax/error.h"

typedef struct th_shard {
    int n;
    int *rows;          /* [n] rows of the dataset file, ascending */
    uint8_t *img;       /* [n, H, W], or NULL when streamed */
    uint8_t *y;         /* [n, n_labels]: the run's labels, in its order */
} th_shard;

/* Loads the rows with split[i] == which and owner[i] == rank, their labels
 * label_col[0..n_labels) (columns of ds), and, with images set, their images
 * (otherwise img is NULL: the caller streams them). Independent reads: not
 * collective. */
int th_shard_load(th_shard *s, th_dataset *ds, const uint8_t *split, const int *owner, int which, int rank,
                  const int *label_col, int n_labels, int images, th_err *err);
void th_shard_free(th_shard *s);

/* Dataset rows of split `which` in the order a gather over n_ranks ranks
 * returns them (rank 0's rows, then rank 1's, ...). Returns their number. */
int th_shard_gather_order(int n, const uint8_t *split, const int *owner, int which, int n_ranks, int *order);

#endif

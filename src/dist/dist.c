/* dist.c - gradient averaging, gathers and error agreement over MPI. */
#include "thorax/dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int th_dist_allreduce_mean(MPI_Comm comm, float *grads, size_t n, long total, th_err *err)
{
    /* MPI counts are ints: move very large buffers in pieces. */
    for (size_t off = 0; off < n;) {
        size_t chunk = n - off < (size_t)INT_MAX ? n - off : (size_t)INT_MAX;
        int rc = MPI_Allreduce(MPI_IN_PLACE, grads + off, (int)chunk, MPI_FLOAT, MPI_SUM, comm);
        if (rc != MPI_SUCCESS) return th_errf(err, "MPI_Allreduce of %zu gradients failed (code %d)", n, rc);
        off += chunk;
    }
    if (total > 0) {
        float scale = 1.0f / (float)total;
        for (size_t i = 0; i < n; i++) grads[i] *= scale;
    }
    return 0;
}

int th_dist_gather_rows(MPI_Comm comm, int root, const float *rows, int my_rows, int width, float *out,
                        th_err *err)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int my_count = my_rows * width;
    int *counts = NULL, *displs = NULL;
    if (rank == root) {
        counts = malloc(sizeof *counts * (size_t)size);
        displs = malloc(sizeof *displs * (size_t)size);
    }
    int ok = rank != root || (counts && displs);
    /* Every rank must take part in the gather even if root failed to allocate,
     * so the failure is agreed on rather than left to hang. */
    if (th_dist_agree(comm, ok ? 0 : th_errf(err, "out of memory gathering %d-wide rows", width), err)) {
        free(counts);
        free(displs);
        return -1;
    }
    MPI_Gather(&my_count, 1, MPI_INT, counts, 1, MPI_INT, root, comm);
    if (rank == root) {
        int off = 0;
        for (int r = 0; r < size; r++) {
            displs[r] = off;
            off += counts[r];
        }
    }
    int rc = MPI_Gatherv(rows, my_count, MPI_FLOAT, out, counts, displs, MPI_FLOAT, root, comm);
    free(counts);
    free(displs);
    if (rc != MPI_SUCCESS) return th_errf(err, "MPI_Gatherv of predictions failed (code %d)", rc);
    return 0;
}

int th_dist_agree(MPI_Comm comm, int status, th_err *err)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    /* The lowest failing rank, or size if none failed. */
    int mine = status ? rank : size, first;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
    if (first == size) return 0;
    char msg[sizeof err->msg];
    if (rank == first) {
        if (first == 0) snprintf(msg, sizeof msg, "%s", err ? err->msg : "failed");
        else snprintf(msg, sizeof msg, "rank %d: %.1000s", first, err ? err->msg : "failed");
    }
    MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, first, comm);
    if (err) memcpy(err->msg, msg, sizeof msg);
    return -1;
}

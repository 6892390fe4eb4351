/* read_bench.c - how fast the dataset reader delivers images, for comparing
 * a compressed /images with a plain one (docs/tutorial-own-data.md, "Compressed images").
 *
 *   mpirun -np N read_bench F.h5 [PASSES]
 *
 * Every rank reads its share of the rows (rank r: rows r, r + N, ...) in
 * batches of 32 with th_dataset_read_images (independent MPI-IO reads, as
 * training does), PASSES times (default 3; the first pass warms the page
 * cache). Prints `read_bench images_per_s X bytes_sum S` on rank 0: the
 * images per second of the slowest rank times N, and a checksum of every
 * pixel read, equal for a compressed file and its plain twin.
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "thorax/data.h"
#include "thorax/dist.h"

#define BATCH 32

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    th_comm comm = th_comm_world();
    int rank = th_dist_rank(comm), size = th_dist_size(comm);
    if (argc < 2) {
        if (rank == 0) fprintf(stderr, "usage: mpirun -np N read_bench F.h5 [PASSES]\n");
        MPI_Finalize();
        return 2;
    }
    int passes = argc > 2 ? atoi(argv[2]) : 3;
    th_dataset ds;
    th_err err;
    if (th_dataset_open(&ds, argv[1], comm, &err)) {
        if (rank == 0) fprintf(stderr, "read_bench: %s\n", err.msg);
        MPI_Finalize();
        return 1;
    }
    size_t hw = (size_t)ds.h * ds.w;
    uint8_t *px = malloc(BATCH * hw);
    int idx[BATCH], rc = px ? 0 : 1;
    unsigned long long sum = 0;
    double best = 1e30;
    for (int p = 0; p < passes && rc == 0; p++) {
        MPI_Barrier(comm);
        double t0 = th_now();
        unsigned long long s = 0;
        for (int first = rank; first < ds.n && rc == 0; first += BATCH * size) {
            int n = 0;
            for (int i = first; i < ds.n && n < BATCH; i += size) idx[n++] = i;
            if (th_dataset_read_images(&ds, idx, n, px, &err)) rc = 1;
            for (size_t j = 0; rc == 0 && j < (size_t)n * hw; j++) s += px[j];
        }
        double t = th_now() - t0, slowest;
        MPI_Allreduce(&t, &slowest, 1, MPI_DOUBLE, MPI_MAX, comm);
        if (slowest < best) best = slowest;
        sum = s;
    }
    unsigned long long total = 0;
    MPI_Reduce(&sum, &total, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, comm);
    if (rc) fprintf(stderr, "read_bench: rank %d: %s\n", rank, err.msg);
    else if (rank == 0) printf("read_bench images_per_s %.0f bytes_sum %llu\n", ds.n / best, total);
    free(px);
    th_dataset_close(&ds);
    MPI_Finalize();
    return rc;
}

/* test_dist_grad.c - the allreduced gradient of a batch split across ranks
 * equals the one-rank gradient of the whole batch (to 1e-5 relative), with
 * uneven shares and a rank that holds no image at all. Run under mpirun. */
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "grad_batch.h"
#include "testutil.h"
#include "thorax/dist.h"
#include "thorax/nn.h"

static th_model_spec spec(void)
{
    th_model_spec s = {.c = 1, .h = H, .w = W};
    th_layer_spec conv = {.type = TH_LAYER_CONV, .k = 3, .stride = 1, .pad = 1, .bias = 1};
    th_layer_spec *l = s.layers;
    l[s.n_layers] = conv, l[s.n_layers++].out = 4;
    l[s.n_layers++] = (th_layer_spec){.type = TH_LAYER_RELU};
    l[s.n_layers++] = (th_layer_spec){.type = TH_LAYER_MAXPOOL, .k = 2, .stride = 2};
    l[s.n_layers] = conv, l[s.n_layers].stride = 2, l[s.n_layers++].out = 8;
    l[s.n_layers++] = (th_layer_spec){.type = TH_LAYER_RELU};
    l[s.n_layers++] = (th_layer_spec){.type = TH_LAYER_GAP};
    l[s.n_layers++] = (th_layer_spec){.type = TH_LAYER_DENSE, .out = TH_OUT_LABELS, .bias = 1};
    return s;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    /* The same global batch on every rank. */
    float *x = malloc(sizeof(float) * TOTAL * H * W);
    uint8_t y[TOTAL * L];
    grad_batch_make(x, y);

    int counts[64];
    grad_batch_shares(size, counts);
    int first = 0;
    for (int r = 0; r < rank; r++) first += counts[r];
    CHECK(size > 2 ? counts[size - 1] == 0 : counts[size - 1] > 0);

    th_model m;
    th_err err;
    th_model_spec s = spec();
    CHECK(th_model_create(&m, &s, L, TOTAL, &err) == 0);
    th_model_init_params(&m, 77);
    float dz[TOTAL * L];
    grad_batch_local(&m, x, y, first, counts[rank], dz);
    CHECK(th_dist_allreduce_mean(MPI_COMM_WORLD, m.grads, m.n_params, TOTAL, &err) == 0);

    /* The reference: one model, the whole batch, divided by its size. */
    th_model ref;
    th_model_create(&ref, &s, L, TOTAL, &err);
    th_model_init_params(&ref, 77);
    grad_batch_local(&ref, x, y, 0, TOTAL, dz);
    double diff = 0, norm = 0;
    for (size_t i = 0; i < ref.n_params; i++) {
        double g = ref.grads[i] / TOTAL;
        diff += (m.grads[i] - g) * (m.grads[i] - g);
        norm += g * g;
    }
    double rel = sqrt(diff / norm);
    if (rank == 0) printf("ranks %d, shares", size);
    for (int r = 0; rank == 0 && r < size; r++) printf(" %d", counts[r]);
    if (rank == 0) printf(": relative difference %.3g\n", rel);
    CHECK(norm > 0);
    CHECK(rel < 1e-5);

    /* Every rank ends with the same gradient, bit for bit. */
    float *g0 = malloc(sizeof(float) * m.n_params);
    memcpy(g0, m.grads, sizeof(float) * m.n_params);
    MPI_Bcast(g0, (int)m.n_params, MPI_FLOAT, 0, MPI_COMM_WORLD);
    CHECK(memcmp(g0, m.grads, sizeof(float) * m.n_params) == 0);

    /* A failure on one rank becomes a failure on all, with its message. */
    th_err e2 = {{0}};
    int st = rank == size - 1 ? th_errf(&e2, "disk full on the last rank") : 0;
    CHECK(th_dist_agree(MPI_COMM_WORLD, st, &e2) == -1);
    CHECK(strstr(e2.msg, "disk full on the last rank") != NULL);
    CHECK(th_dist_agree(MPI_COMM_WORLD, 0, &e2) == 0);

    /* Gathered rows arrive in rank order. */
    float mine[2] = {(float)rank, (float)rank + 0.5f}, all[128];
    CHECK(th_dist_gather_rows(MPI_COMM_WORLD, 0, mine, rank % 2 ? 0 : 1, 2, all, &err) == 0);
    if (rank == 0)
        for (int r = 0, row = 0; r < size; r += 2, row++) CHECK(all[row * 2] == (float)r && all[row * 2 + 1] == r + 0.5f);

    free(g0);
    free(x);
    th_model_free(&m);
    th_model_free(&ref);
    int failed = th_test_failed, any;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    int rc = rank == 0 ? th_test_summary("test_dist_grad") : (any ? 1 : 0);
    if (rank == 0 && any && !th_test_failed) rc = 1;
    MPI_Finalize();
    return rc;
}

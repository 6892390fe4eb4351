/* test_predict_share.c - th_predict_share, the prediction that polls a stop
 * request, on ranks holding uneven shares (rank r: 3 + 5 r images, so the
 * ranks run different numbers of batches of 4):
 *  - with no request, each rank's probabilities and summed loss are the same
 *    bits as th_predict's over its share in one call;
 *  - a request raised on the last rank only, before the call, stops every
 *    rank after the first batch: all return TH_TRAIN_STOPPED (none is left
 *    waiting in a poll), and a rank's later batches are not predicted;
 *  - without a flag it is th_predict alone (not collective): the ranks may
 *    call it different numbers of times.
 * Run under mpirun. */
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "thorax/dist.h"
#include "thorax/nn.h"
#include "thorax/train.h"

enum { H = 8, W = 8, L = 2, BATCH = 4 };

static int rank, size;

static th_model_spec spec(void)
{
    th_model_spec s = {.c = 1, .h = H, .w = W};
    th_layer_spec *l = s.layers;
    l[s.n_layers++] = (th_layer_spec){.type = TH_LAYER_CONV, .name = "c1", .out = 4, .k = 3, .stride = 1, .pad = 1, .bias = 1};
    l[s.n_layers++] = (th_layer_spec){.type = TH_LAYER_RELU, .name = "r1"};
    l[s.n_layers++] = (th_layer_spec){.type = TH_LAYER_GAP, .name = "gap"};
    l[s.n_layers++] = (th_layer_spec){.type = TH_LAYER_DENSE, .name = "fc", .out = TH_OUT_LABELS, .bias = 1};
    return s;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    th_comm comm = th_comm_world();
    int n = 3 + 5 * rank;
    th_model m;
    th_err err = {{0}};
    th_model_spec s = spec();
    CHECK(th_model_create(&m, &s, L, BATCH, &err) == 0);
    th_model_init_params(&m, 5);
    th_input in;
    th_input_params ip = {.normalize = TH_INPUT_NORM_NONE};
    th_input_init(&in, &ip, H, W, 0.5f, 0.25f);

    uint8_t *img = malloc((size_t)n * H * W), *y = malloc((size_t)n * L);
    for (int i = 0; i < n * H * W; i++) img[i] = (uint8_t)((i * 37 + rank * 11) % 251);
    for (int i = 0; i < n * L; i++) y[i] = (uint8_t)((i + rank) % 2);
    float w[L] = {1, 1}, *x = malloc(sizeof(float) * BATCH * H * W);
    float *p_ref = malloc(sizeof(float) * (size_t)n * L), *p = malloc(sizeof(float) * (size_t)n * L);

    double ref = th_predict(&m, &in, TH_LOSS_BCE, img, y, n, w, w, x, p_ref);
    volatile sig_atomic_t flag = 0;
    th_stop_poll poll = {.flag = &flag};
    double sum = -1;
    CHECK(th_predict_share(&m, &in, TH_LOSS_BCE, img, y, n, w, w, x, p, comm, &poll, &sum) == 0);
    CHECK(sum == ref);
    CHECK(memcmp(p, p_ref, sizeof(float) * (size_t)n * L) == 0);

    /* The last rank alone asks; every rank stops after its first batch. */
    flag = rank == size - 1;
    for (int i = 0; i < n * L; i++) p[i] = -1.0f;
    CHECK(th_predict_share(&m, &in, TH_LOSS_BCE, img, y, n, w, w, x, p, comm, &poll, NULL) == TH_TRAIN_STOPPED);
    int first = n < BATCH ? n : BATCH;
    CHECK(memcmp(p, p_ref, sizeof(float) * (size_t)first * L) == 0);
    for (int i = first * L; i < n * L; i++) CHECK(p[i] == -1.0f);

    /* No flag: serial; rank 0 alone calls it a second time. */
    th_stop_poll none = {0};
    for (int k = 0; k < (rank == 0 ? 2 : 1); k++) {
        CHECK(th_predict_share(&m, &in, TH_LOSS_BCE, img, y, n, w, w, x, p, comm, &none, &sum) == 0);
        CHECK(sum == ref);
    }
    th_dist_barrier(comm);

    free(img);
    free(y);
    free(x);
    free(p_ref);
    free(p);
    th_model_free(&m);
    int failed = th_test_failed, any;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    int rc = rank == 0 ? th_test_summary("test_predict_share") : (any ? 1 : 0);
    if (rank == 0 && any && !th_test_failed) rc = 1;
    MPI_Finalize();
    return rc;
}

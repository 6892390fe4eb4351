/* test_bench_step.c - `thorax bench` times the training step that `thorax
 * train` takes: th_bench_run's parameters and batch-norm statistics after K
 * steps equal, bit for bit, those of K steps of thorax/train.h (what train.c
 * and the learning-rate finder call) on the same batch from the same
 * initialisation. The network has batch-norm and dropout, so the step's
 * statistics allreduce and its per-step dropout masks are covered: every
 * rank must also end with the same running statistics (a benchmark that
 * skipped their averaging, as one did, fails here). Run under mpirun. */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "thorax/train.h"
#include "thorax/config.h"

static const char *CONFIG =
    "name: bench-step\n"
    "seed: 5\n"
    "data: {path: unused.h5, labels: [A, B, C]}\n"
    "model:\n"
    "  input: [1, 16, 16]\n"
    "  layers:\n"
    "    - {type: conv, out: 8, k: 3, pad: 1}\n"
    "    - {type: batchnorm}\n"
    "    - {type: relu}\n"
    "    - {type: maxpool, k: 2}\n"
    "    - {type: conv, out: 16, k: 3, pad: 1}\n"
    "    - {type: relu}\n"
    "    - {type: dropout, p: 0.3}\n"
    "    - {type: gap}\n"
    "    - {type: dense, out: labels}\n"
    "train:\n"
    "  batch_per_rank: 4\n"
    "  optimizer: {type: sgd, lr: 0.05, momentum: 0.9, weight_decay: 1.0e-4}\n"
    "runtime: {allreduce_bucket_mb: 0.001}\n";

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    static th_config cfg;
    th_err err = {{0}};
    CHECK(th_run_config_load_string(&cfg, CONFIG, "bench-step.yaml", NULL, 0, &err) == 0);
    const int L = 3, n = cfg.train.batch_per_rank, warmup = 2, steps = 3;

    /* The reference: train's step, by hand, on the benchmark's batch. */
    th_model m;
    th_optim opt;
    th_step step;
    CHECK(th_model_create(&m, &cfg.model, L, n, &err) == 0);
    th_model_init_params(&m, cfg.seed);
    CHECK(th_optim_init(&opt, &cfg.train.optimizer, m.n_params, &err) == 0);
    float *x = malloc(sizeof(float) * (size_t)n * 16 * 16), w_pos[3], w_neg[3];
    uint8_t y[4 * 3];
    th_bench_batch(&cfg, rank, n, L, x, y, w_pos, w_neg);
    CHECK(th_step_init(&step, MPI_COMM_WORLD, &m, &opt, cfg.train.loss, L, w_pos, w_neg, n,
                       th_grad_sync_bucket_floats(cfg.runtime.allreduce_bucket_mb), &err) == 0);
    CHECK(step.sync.n_buckets > 1);
    for (int s = 0; s < warmup + steps; s++) {
        th_step_out out;
        CHECK(th_step_gradients(&step, x, y, n, (long)n * size, cfg.seed, s, 0, 0, &out, &err) == 0);
        CHECK(!out.failed && !out.stop && out.loss > 0);
        th_step_update(&step, cfg.train.optimizer.lr);
    }

    /* The benchmark. */
    float *params = malloc(sizeof(float) * m.n_params), *buffers = malloc(sizeof(float) * m.n_buffers);
    static th_bench_result res;
    th_bench_opts o = {.steps = steps, .warmup = warmup, .mode = TH_BENCH_TRAIN, .n_labels = L,
                       .params_out = params, .buffers_out = buffers};
    CHECK(th_bench_run(&cfg, &o, MPI_COMM_WORLD, &res, &err) == 0);
    CHECK(res.train.measured && res.train.img_per_s > 0);

    CHECK(memcmp(params, m.params, sizeof(float) * m.n_params) == 0);
    CHECK(memcmp(buffers, m.buffers, sizeof(float) * m.n_buffers) == 0);
    /* The statistics moved, and every rank holds rank 0's. */
    int moved = 0;
    for (size_t i = 0; i < m.n_buffers; i++) moved |= buffers[i] != 0.0f && buffers[i] != 1.0f;
    CHECK(moved);
    float *root = malloc(sizeof(float) * m.n_buffers);
    memcpy(root, buffers, sizeof(float) * m.n_buffers);
    MPI_Bcast(root, (int)m.n_buffers, MPI_FLOAT, 0, MPI_COMM_WORLD);
    CHECK(memcmp(root, buffers, sizeof(float) * m.n_buffers) == 0);
    if (rank == 0)
        printf("ranks %d: %d bench steps = %d training steps, bit for bit (%zu parameters, %zu statistics)\n", size,
               warmup + steps, warmup + steps, m.n_params, m.n_buffers);

    th_step_free(&step);
    th_optim_free(&opt);
    th_model_free(&m);
    free(x);
    free(params);
    free(buffers);
    free(root);
    /* A check failed on any rank fails the test. */
    int any = th_test_failed > 0;
    MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    int rc = rank == 0 ? th_test_summary("test_bench_step") : (any ? 1 : 0);
    if (rank == 0 && any && !th_test_failed) rc = 1;
    MPI_Finalize();
    return rc;
}

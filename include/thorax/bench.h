/* bench.h - `thorax bench`: how fast a config's network trains and predicts.
 *
 * th_bench_run builds the config's model, feeds it random input of the
 * config's shape and random 0/1 labels (no dataset file is read, so the
 * figures are those of the network, not of the disk), and times, after a
 * warm-up:
 *   - training steps: the trainer's own step (thorax/step.h), on the same
 *     batch every step;
 *   - inference steps: forward in evaluation mode;
 *   - every layer on its own, forward and backward, with the same kernels on
 *     the model's own buffers in the same shapes (a micro-benchmark per layer,
 *     since the model's forward has no per-layer timing hook).
 *
 * Figures are medians over the timed steps (a busy machine makes the mean
 * follow its worst steps). A job's step is as slow as its slowest rank, so
 * each time is the maximum over the ranks of that rank's median.
 *
 * FLOP convention (as torch_ref.py): 2 x multiply-adds of the conv and dense
 * layers; bias, activations, pooling, loss and optimiser are not counted. A
 * training image costs 3 x its forward FLOPs (backward ~ 2 x forward: one
 * GEMM for the weight gradient, one for the input gradient). The reference
 * network costs 0.623 GFLOP forward, 1.87 GFLOP per training image.
 */
#ifndef THORAX_BENCH_H
#define THORAX_BENCH_H

#include "thorax/config.h"
#include "thorax/dist.h"
#include "thorax/error.h"
#include "thorax/model.h"

typedef enum th_bench_mode {
    TH_BENCH_TRAIN = 1,
    TH_BENCH_INFER = 2,
    TH_BENCH_BOTH = TH_BENCH_TRAIN | TH_BENCH_INFER,
} th_bench_mode;

typedef struct th_bench_opts {
    int steps;          /* timed steps per mode (and repetitions per layer), >= 1 */
    int warmup;         /* untimed steps before them, >= 0 */
    th_bench_mode mode;
    int n_labels;       /* outputs of `out: labels` when the config names no labels */
    int layers;         /* 1 = also time every layer on its own */
    /* When not NULL: the parameters [n_params] and batch-norm buffers
     * [n_buffers] after the warm-up and timed training steps (before the
     * per-layer pass), for tests that compare them with training's. */
    float *params_out, *buffers_out;
} th_bench_opts;

/* The timing of one mode (train or infer). */
typedef struct th_bench_figures {
    int measured;           /* 0 when the mode was not asked for */
    double step_ms;         /* median step time (max over ranks) */
    double step_ms_min, step_ms_max;
    double img_per_s;       /* images of the whole job per second: ranks x batch / step_ms */
    double gflop_per_img;   /* forward, x3 for training */
    double gflop_per_s;     /* img_per_s x gflop_per_img, the whole job */
    double allreduce_ms;    /* median time in the allreduces (max over ranks); 0 for infer */
    double allreduce_share; /* time in the allreduces / step time, summed over steps and ranks */
    double other_cpu;       /* CPUs busy with other processes during the timed steps
                             * (rank 0's node, from /proc/stat; -1 if unknown) */
} th_bench_figures;

/* One layer's micro-benchmark: median over the repetitions, max over ranks. */
typedef struct th_bench_layer {
    char name[TH_NAME_MAX];
    th_layer_type type;
    int out_c, out_h, out_w;    /* per-image output shape */
    double fwd_ms, bwd_ms;      /* per batch of `batch` images */
    double fwd_gflop, bwd_gflop;/* per batch; 0 for layers without FLOPs */
} th_bench_layer;

typedef struct th_bench_result {
    int ranks;
    int cpus_per_rank;          /* fewest CPUs a rank may run on (its affinity mask) */
    int batch;                  /* images per rank per step */
    int c, h, w;                /* input shape of one image */
    int n_labels;
    size_t n_params;
    double gflop_fwd_per_img;   /* th_model_flops / 1e9 */
    th_bench_figures train, infer;
    int n_layers;               /* 0 unless opts->layers */
    th_bench_layer layers[TH_MAX_NODES];
    double layers_other_cpu;    /* as th_bench_figures.other_cpu, during the per-layer pass */
    double peak_mb;             /* max over ranks of the peak resident set (ru_maxrss) */
    double act_mb;              /* a rank's activation arena (th_model.act_bytes) in MB */
} th_bench_result;

/* The benchmark's batch of rank `rank`: n random images x [n, C, H, W] like
 * normalised ones (zero mean, unit variance), random labels y [n, n_labels]
 * (0/1 per label, or one class per image for softmax cross-entropy) and
 * their class weights [n_labels] as training would weigh them. Seeded by
 * (cfg->seed, rank), so a rerun feeds the same numbers. */
void th_bench_batch(const th_config *cfg, int rank, int n, int n_labels, float *x, uint8_t *y, float *w_pos,
                    float *w_neg);

/* Collective over comm. The model is cfg->model with n_labels =
 * cfg->data.n_labels, or opts->n_labels when the config names none; batch =
 * cfg->train.batch_per_rank per rank. Input and labels are seeded from
 * cfg->seed and the rank. The OpenBLAS thread count is the caller's to set.
 * Fills res identically on every rank. */
int th_bench_run(const th_config *cfg, const th_bench_opts *opts, th_comm comm, th_bench_result *res, th_err *err);

#endif

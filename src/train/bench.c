/* bench.c - timing of training and inference steps (see thorax/train.h).
 *
 * Measurement rules, because the numbers feed performance work:
 *   - everything a timed loop touches is allocated before it starts, so the
 *     figures hold no malloc or page-fault time that training would not pay;
 *   - the training step is the trainer's own (thorax/train.h: forward, loss,
 *     backward with the gradient buckets' allreduces started from its hook,
 *     their wait, the allreduce of batch-norm statistics, loss and flags,
 *     the optimiser's update); the trainer's per-step NaN check and
 *     learning-rate schedule are left out, each a pass over the parameters
 *     or less;
 *   - the allreduce time is the step's own measure (th_step_out.comm_s),
 *     which train.c reports in its log too: the time the step waits
 *     for communication that backward did not hide, including waiting for
 *     the slowest rank, so a high share means imbalance or contention as
 *     much as communication;
 *   - ranks start every timed loop together (a barrier), so ranks sharing a
 *     node compete for cores and memory bandwidth as they do in training.
 */
#include "thorax/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "thorax/util.h"
#include "thorax/dist.h"
#include "thorax/nn.h"

/* What one benchmark holds; sized before any timing starts. */
typedef struct bench {
    const th_config *cfg;
    const th_bench_opts *opts;
    th_comm comm;
    int rank, size;
    int batch, n_labels;
    th_model model;
    th_optim opt;
    float *x;                   /* [batch, C, H, W] random input */
    uint8_t *y;                 /* [batch, n_labels] random labels */
    float *dz;                  /* [batch, n_labels] (the per-layer pass's loss gradient) */
    float w_pos[TH_MAX_LABELS], w_neg[TH_MAX_LABELS];
    double *t_step, *t_comm;    /* [steps] timed step and allreduce seconds */
} bench;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n), n >= 1. Sorts v. */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Busy CPU-seconds of the whole machine since boot (user through steal, not
 * idle or iowait), or -1 where /proc/stat is not readable. The same probe as
 * torch_ref.py's, so the two tools report contention alike. */
static double machine_busy_seconds(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return -1;
    unsigned long long v[8] = {0};
    int got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                     &v[6], &v[7]);
    fclose(f);
    if (got < 5) return -1;
    unsigned long long busy = 0;
    for (int k = 0; k < 8; k++)
        if (k != 3 && k != 4) busy += v[k];
    return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

/* CPU-seconds of this process, every thread (OpenBLAS's included). */
static double own_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

typedef struct cpu_probe {
    double machine, own, wall;
} cpu_probe;

static void probe_read(cpu_probe *p)
{
    p->machine = machine_busy_seconds();
    p->own = own_cpu_seconds();
    p->wall = th_now();
}

/* CPUs kept busy by other processes on rank 0's node between two probes: the
 * machine's busy time less that of this job's ranks there. Collective;
 * returns the same value on every rank (-1 if unknown). */
static double other_cpu(bench *b, const cpu_probe *p0, const cpu_probe *p1)
{
    double own = th_dist_node0_sum(b->comm, p1->own - p0->own), other = -1;
    if (b->rank == 0 && p0->machine >= 0 && p1->machine >= 0 && p1->wall > p0->wall) {
        other = ((p1->machine - p0->machine) - own) / (p1->wall - p0->wall);
        /* Tick rounding can make an idle machine look slightly negative. */
        if (other < 0) other = 0;
    }
    th_dist_bcast(b->comm, 0, &other, sizeof other, NULL);
    return other;
}

void th_bench_batch(const th_config *cfg, int rank, int n, int n_labels, float *x, uint8_t *y, float *w_pos,
                    float *w_neg)
{
    const th_model_spec *s = &cfg->model;
    size_t nx = (size_t)n * s->c * s->h * s->w;
    int L = n_labels;
    th_rng rng;
    th_rng_seed(&rng, cfg->seed, 0xBE4C0000ULL + (uint64_t)rank);
    for (size_t i = 0; i < nx; i++) x[i] = (float)th_rng_normal(&rng);
    for (int i = 0; i < n; i++) {
        uint8_t *yi = y + (size_t)i * L;
        if (cfg->train.loss == TH_LOSS_SOFTMAX_CE) {
            memset(yi, 0, (size_t)L);
            yi[th_rng_below(&rng, (uint32_t)L)] = 1;
        } else {
            for (int k = 0; k < L; k++) yi[k] = (uint8_t)(th_rng_u64(&rng) >> 63);
        }
    }
    double freq[TH_MAX_LABELS];
    th_label_freq(n, L, y, freq);
    if (cfg->train.loss == TH_LOSS_WEIGHTED_BCE) {
        th_class_weights(L, freq, w_pos, w_neg);
    } else {
        for (int k = 0; k < L; k++) w_pos[k] = w_neg[k] = 1.0f;
    }
}

/* Model, optimiser and every buffer of the timed loops. Fails on every rank
 * if it fails on one. */
static int setup(bench *b, th_err *err)
{
    const th_config *cfg = b->cfg;
    const th_model_spec *s = &cfg->model;
    int steps = b->opts->steps;
    int rc = th_model_create(&b->model, s, b->n_labels, b->batch, err);
    if (!rc) rc = th_model_set_threads(&b->model, cfg->runtime.threads_per_rank, err);
    if (!rc && th_model_set_precision(&b->model, cfg->runtime.precision, err))
        rc = th_err_prefix(err, "runtime.precision: ");
    if (!rc) rc = th_optim_init(&b->opt, &cfg->train.optimizer, b->model.n_params, err);
    if (!rc) {
        b->x = malloc(sizeof(float) * (size_t)b->batch * s->c * s->h * s->w);
        b->y = malloc((size_t)b->batch * b->n_labels);
        b->dz = malloc(sizeof(float) * (size_t)b->batch * b->n_labels);
        b->t_step = malloc(sizeof(double) * (size_t)steps);
        b->t_comm = malloc(sizeof(double) * (size_t)steps);
        if (!b->x || !b->y || !b->dz || !b->t_step || !b->t_comm)
            rc = th_errf(err, "out of memory for a batch of %d images", b->batch);
    }
    if (th_dist_agree(b->comm, rc, err)) return -1;
    th_model_init_params(&b->model, cfg->seed);
    th_bench_batch(cfg, b->rank, b->batch, b->n_labels, b->x, b->y, b->w_pos, b->w_neg);
    return 0;
}

static void teardown(bench *b)
{
    th_model_free(&b->model);
    th_optim_free(&b->opt);
    free(b->x);
    free(b->y);
    free(b->dz);
    free(b->t_step);
    free(b->t_comm);
}

/* Reduces this rank's timed steps into fig: per-rank medians, max over ranks
 * (the job waits for its slowest rank). Collective. */
static void summarise(bench *b, th_bench_figures *fig, double gflop_per_img)
{
    int steps = b->opts->steps;
    double sum[2] = {0, 0};
    for (int k = 0; k < steps; k++) {
        sum[0] += b->t_step[k];
        sum[1] += b->t_comm[k];
    }
    /* {median, -min, max, allreduce median}: one MAX reduction gives the
     * slowest rank's median and the extremes over all ranks. */
    double mx[4];
    mx[1] = -b->t_step[0];
    mx[2] = b->t_step[0];
    for (int k = 1; k < steps; k++) {
        if (-b->t_step[k] > mx[1]) mx[1] = -b->t_step[k];
        if (b->t_step[k] > mx[2]) mx[2] = b->t_step[k];
    }
    mx[0] = median(b->t_step, steps);
    mx[3] = median(b->t_comm, steps);
    th_dist_max(b->comm, mx, 4);
    th_dist_sum(b->comm, sum, 2);
    fig->measured = 1;
    fig->step_ms = 1e3 * mx[0];
    fig->step_ms_min = -1e3 * mx[1];
    fig->step_ms_max = 1e3 * mx[2];
    fig->allreduce_ms = 1e3 * mx[3];
    fig->allreduce_share = sum[0] > 0 ? sum[1] / sum[0] : 0;
    fig->img_per_s = mx[0] > 0 ? (double)b->size * b->batch / mx[0] : 0;
    fig->gflop_per_img = gflop_per_img;
    fig->gflop_per_s = fig->img_per_s * gflop_per_img;
}

/* Training steps: the trainer's step (thorax/train.h) on the random batch,
 * every rank holding `batch` images. */
static int time_train(bench *b, th_bench_figures *fig, th_err *err)
{
    const th_config *cfg = b->cfg;
    th_model *m = &b->model;
    int n = b->batch, warmup = b->opts->warmup, steps = b->opts->steps;
    long global_n = (long)n * b->size;
    cpu_probe p0 = {0}, p1;
    /* The step's gradient hook, for these steps only: the per-layer timings
     * run backward too, with no finish to wait for what it would start. */
    th_step step;
    int rc = th_step_init(&step, b->comm, m, &b->opt, cfg->train.loss, b->n_labels, b->w_pos, b->w_neg, n,
                          th_grad_sync_bucket_floats(cfg->runtime.allreduce_bucket_mb), err);
    if (th_dist_agree(b->comm, rc, err)) {
        th_step_free(&step);
        return -1;
    }
    th_dist_barrier(b->comm);
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) probe_read(&p0);
        double t0 = th_now();
        th_step_out out;
        if ((rc = th_step_gradients(&step, b->x, b->y, n, global_n, cfg->seed, s, 0, 0, &out, err)) != 0) break;
        th_step_update(&step, cfg->train.optimizer.lr);
        double t1 = th_now();
        if (s >= warmup) {
            b->t_step[s - warmup] = t1 - t0;
            b->t_comm[s - warmup] = out.comm_s;
        }
    }
    th_step_free(&step);
    if (rc) return -1;
    probe_read(&p1);
    if (b->opts->params_out) memcpy(b->opts->params_out, m->params, sizeof(float) * m->n_params);
    if (b->opts->buffers_out) memcpy(b->opts->buffers_out, m->buffers, sizeof(float) * m->n_buffers);
    summarise(b, fig, 3.0 * th_model_flops(m) / 1e9);
    fig->other_cpu = other_cpu(b, &p0, &p1);
    return 0;
}

/* Inference steps: an evaluation-mode forward, as th_predict makes it. */
static void time_infer(bench *b, th_bench_figures *fig)
{
    th_model *m = &b->model;
    int warmup = b->opts->warmup, steps = b->opts->steps;
    cpu_probe p0 = {0}, p1;
    th_dist_barrier(b->comm);
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) probe_read(&p0);
        double t0 = th_now();
        th_model_forward(m, b->x, b->batch, 0);
        double t1 = th_now();
        if (s >= warmup) {
            b->t_step[s - warmup] = t1 - t0;
            b->t_comm[s - warmup] = 0;
        }
    }
    probe_read(&p1);
    summarise(b, fig, th_model_flops(m) / 1e9);
    fig->other_cpu = other_cpu(b, &p0, &p1);
}

/* Layer i's backward as th_model_backward runs it in training: grad_a stands
 * for the gradient of its output, grad_b receives that of its (first)
 * input, and a layer reading the image computes no input gradient
 * (batch-norm excepted, which needs the buffer). */
static void layer_backward(th_model *m, int i, const float *x, int n)
{
    int want_dx = m->layers[i].in[0] >= 0 || m->layers[i].spec.type == TH_LAYER_BATCHNORM;
    th_model_layer_backward(m, i, x, m->grad_a, want_dx ? m->grad_b : NULL, n);
}

/* Median seconds of `reps` timed calls of one layer's forward (dir 0) or
 * backward (dir 1), after one untimed call that brings its buffers into cache
 * as the layers before it would have in a real step. */
static double time_layer(bench *b, int i, int dir, int reps)
{
    th_model *m = &b->model;
    th_dist_barrier(b->comm);
    for (int r = -1; r < reps; r++) {
        double t0 = th_now();
        if (dir == 0) th_model_layer_forward(m, i, b->x, b->batch, 1);
        else layer_backward(m, i, b->x, b->batch);
        if (r >= 0) b->t_step[r] = th_now() - t0;
    }
    return median(b->t_step, reps);
}

/* Every layer on its own. One full training step first fills every buffer a
 * kernel reads (activations, pooling argmax, batch-norm statistics, dropout
 * masks, gradients) with the values a real step leaves there. Collective. */
static void time_layers(bench *b, th_bench_result *res)
{
    th_model *m = &b->model;
    int n = b->batch, reps = b->opts->steps;
    const float *logits = th_model_forward(m, b->x, n, 1);
    th_loss(b->cfg->train.loss, n, b->n_labels, logits, b->y, b->w_pos, b->w_neg, b->dz);
    th_model_backward(m, b->x, b->dz, n);

    double ms[2 * TH_MAX_NODES];
    cpu_probe p0, p1;
    probe_read(&p0);
    for (int i = 0; i < m->n_layers; i++) {
        ms[2 * i] = 1e3 * time_layer(b, i, 0, reps);
        ms[2 * i + 1] = 1e3 * time_layer(b, i, 1, reps);
    }
    probe_read(&p1);
    res->layers_other_cpu = other_cpu(b, &p0, &p1);
    th_dist_max(b->comm, ms, 2 * m->n_layers);
    res->n_layers = m->n_layers;
    for (int i = 0; i < m->n_layers; i++) {
        const th_layer *L = &m->layers[i];
        th_bench_layer *o = &res->layers[i];
        snprintf(o->name, sizeof o->name, "%s", L->name);
        o->type = L->spec.type;
        o->out_c = L->out_c, o->out_h = L->out_h, o->out_w = L->out_w;
        o->fwd_ms = ms[2 * i];
        o->bwd_ms = ms[2 * i + 1];
        /* Backward is two GEMMs (weights, input) of the forward's size; the
         * first layer skips the input gradient, so it does one. */
        o->fwd_gflop = L->flops * n / 1e9;
        o->bwd_gflop = o->fwd_gflop * (L->in[0] >= 0 ? 2 : 1);
    }
}

static double peak_mb(th_comm comm)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    /* Linux reports ru_maxrss in kilobytes. */
    double mb = (double)ru.ru_maxrss / 1024.0;
    th_dist_max(comm, &mb, 1);
    return mb;
}

int th_bench_run(const th_config *cfg, const th_bench_opts *opts, th_comm comm, th_bench_result *res, th_err *err)
{
    memset(res, 0, sizeof *res);
    if (opts->steps < 1) return th_errf(err, "bench: --steps must be at least 1, got %d", opts->steps);
    if (opts->warmup < 0) return th_errf(err, "bench: --warmup must be 0 or more, got %d", opts->warmup);
    if (!(opts->mode & TH_BENCH_BOTH))
        return th_errf(err, "bench: the mode must be train, infer or both (got %d)", (int)opts->mode);
    int n_labels = cfg->data.n_labels > 0 ? cfg->data.n_labels : opts->n_labels;
    if (n_labels < 1 || n_labels > TH_MAX_LABELS)
        return th_errf(err, "bench: the number of labels must be 1 to %d, got %d", TH_MAX_LABELS, n_labels);

    bench b = {.cfg = cfg, .opts = opts, .comm = comm, .n_labels = n_labels, .batch = cfg->train.batch_per_rank};
    b.rank = th_dist_rank(comm);
    b.size = th_dist_size(comm);

    int rc = setup(&b, err);
    if (!rc) {
        res->ranks = b.size;
        res->cpus_per_rank = th_dist_min_cpus(comm);
        res->batch = b.batch;
        res->c = cfg->model.c, res->h = cfg->model.h, res->w = cfg->model.w;
        res->n_labels = n_labels;
        res->n_params = b.model.n_params;
        res->gflop_fwd_per_img = th_model_flops(&b.model) / 1e9;
        res->act_mb = (double)b.model.act_bytes / 1e6;
    }
    if (!rc && (opts->mode & TH_BENCH_TRAIN)) rc = time_train(&b, &res->train, err);
    if (!rc && (opts->mode & TH_BENCH_INFER)) time_infer(&b, &res->infer);
    if (!rc && opts->layers) time_layers(&b, res);
    if (!rc) res->peak_mb = peak_mb(comm);
    teardown(&b);
    return rc;
}

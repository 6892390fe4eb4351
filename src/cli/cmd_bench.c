/* cmd_bench.c - `thorax bench CONFIG.yaml`: images/s of training and
 * inference steps of a config's network on random data, under mpirun, with
 * a per-layer profile and one machine-readable RESULT line per mode (what
 * tools/bench/compare.sh and performance work read; see thorax/train.h). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "cli.h"
#include "thorax/dist.h"
#include "thorax/train.h"
#include "thorax/config.h"

static void bench_usage(FILE *f)
{
    fprintf(f,
            "usage: mpirun -np N thorax bench CONFIG.yaml [--steps K] [--warmup W] [--mode train|infer|both]\n"
            "                                   [--labels N] [--no-layers] [--set key=value ...]\n"
            "\n"
            "Times the network of CONFIG.yaml on random input of its model.input shape and\n"
            "random 0/1 labels, train.batch_per_rank images per rank, with\n"
            "runtime.threads_per_rank threads per rank. No dataset is read.\n"
            "  train  forward, loss, backward, gradient allreduce, optimiser step: the\n"
            "         steps of thorax train\n"
            "  infer  an evaluation-mode forward\n"
            "Then each layer alone, forward and backward, with the same kernels in the same\n"
            "shapes. Figures are medians over the K timed steps after W warm-up steps; a\n"
            "step is as slow as the slowest rank.\n"
            "\n"
            "Prints a per-layer table (ms per batch and GFLOP/s, per rank), and last one line\n"
            "per mode:\n"
            "  RESULT mode=train ranks=2 threads_per_rank=1 precision=fp32 batch=32 size=256 img_per_s=...\n"
            "         gflop_per_s=... allreduce_share=... peak_mb=... act_mb=... openblas_coretype=...\n"
            "         step_ms=... ...\n"
            "img_per_s counts the images of all ranks (ranks x batch per step); batch is per\n"
            "rank; gflop_per_s = img_per_s x FLOPs per image, where FLOPs are 2 x the\n"
            "multiply-adds of conv and dense layers, and a training image counts 3 x its\n"
            "forward (backward ~ 2 x forward); allreduce_share is the share of training step\n"
            "time in the allreduces, waiting for the slowest rank included; peak_mb is the\n"
            "largest peak resident set of a rank, act_mb the part of it that is the\n"
            "model's activations for the batch (one block, sized at creation); other_cpu\n"
            "is how many CPUs other processes kept busy meanwhile (rank 0's node; 0 = the\n"
            "machine was ours).\n"
            "\n"
            "options:\n"
            "  --steps K            timed steps per mode, and repetitions per layer (default 10)\n"
            "  --warmup W           untimed steps first (default 3)\n"
            "  --mode M             train, infer or both (default both)\n"
            "  --labels N           outputs of `dense, out: labels` when the config names no\n"
            "                       data.labels (default 14, ChestX-ray14's count)\n"
            "  --no-layers          skip the per-layer table (quicker)\n"
            "  --set key=value      override a config key, e.g. --set train.batch_per_rank=16\n"
            "                       --set runtime.threads_per_rank=2 (repeatable)\n"
            "  --log-format F       plain or json log lines (see thorax --help)\n"
            "  -h, --help           this help\n"
            "\n"
            "Give each rank as many cores as threads: mpirun binds a rank to one core when\n"
            "there are at most 2 ranks, so 1 rank x 2 threads needs\n"
            "  mpirun -np 1 --map-by slot:PE=2 thorax bench ... --set runtime.threads_per_rank=2\n"
            "\n"
            "exit status: 0 done, 1 failed, 2 usage or config error.\n");
}

static const char *mode_name(th_bench_mode m) { return m == TH_BENCH_TRAIN ? "train" : "infer"; }

/* "16x256x256", or "256" for a vector (gap, dense). */
static void format_shape(const th_bench_layer *l, char *buf, size_t n)
{
    if (l->out_h == 1 && l->out_w == 1) snprintf(buf, n, "%d", l->out_c);
    else snprintf(buf, n, "%dx%dx%d", l->out_c, l->out_h, l->out_w);
}

static void print_rate(double gflop, double ms)
{
    if (gflop > 0 && ms > 0) printf("  %11.1f", gflop / (ms / 1e3));
    else printf("  %11s", "-");
}

/* The per-layer table: each layer alone on one rank's batch, and the sum
 * beside the measured training step, whose remainder is the loss, the
 * allreduces and the optimiser. */
static void print_layers(const th_bench_result *r, const char *precision)
{
    printf("\nper layer, one rank's batch of %d, precision=%s (median ms, slowest rank; GFLOP/s of that rank):\n",
           r->batch, precision);
    printf("%-10s %-14s %9s %9s  %11s  %11s\n", "layer", "output", "fwd ms", "bwd ms", "fwd GFLOP/s",
           "bwd GFLOP/s");
    double fwd = 0, bwd = 0, gf = 0, gb = 0;
    for (int i = 0; i < r->n_layers; i++) {
        const th_bench_layer *l = &r->layers[i];
        char shape[48];
        format_shape(l, shape, sizeof shape);
        printf("%-10s %-14s %9.2f %9.2f", l->name, shape, l->fwd_ms, l->bwd_ms);
        print_rate(l->fwd_gflop, l->fwd_ms);
        print_rate(l->bwd_gflop, l->bwd_ms);
        printf("\n");
        fwd += l->fwd_ms;
        bwd += l->bwd_ms;
        gf += l->fwd_gflop;
        gb += l->bwd_gflop;
    }
    printf("%-10s %-14s %9.2f %9.2f", "all layers", "", fwd, bwd);
    print_rate(gf, fwd);
    print_rate(gb, bwd);
    printf("\n");
    if (r->train.measured) {
        double step = r->train.step_ms, rest = step - fwd - bwd - r->train.allreduce_ms;
        printf("train step %.1f ms (median) = layers %.1f ms (%.0f%%) + allreduce %.1f ms + rest %.1f ms (loss, "
               "optimiser, and layers running slower or faster alone than in a step)\n",
               step, fwd + bwd, 100 * (fwd + bwd) / step, r->train.allreduce_ms, rest);
    }
    printf("other processes kept %.2f CPUs busy during the per-layer pass%s\n", r->layers_other_cpu,
           r->layers_other_cpu > 0.25 ? ": its times are inflated" : "");
}

static void print_result(const th_bench_result *r, th_bench_mode mode, int threads, const char *precision,
                         const th_bench_opts *o)
{
    const th_bench_figures *f = mode == TH_BENCH_TRAIN ? &r->train : &r->infer;
    const char *coretype = getenv("OPENBLAS_CORETYPE");
    char size[32];
    if (r->h == r->w) snprintf(size, sizeof size, "%d", r->h);
    else snprintf(size, sizeof size, "%dx%d", r->h, r->w);
    printf("RESULT mode=%s ranks=%d threads_per_rank=%d precision=%s batch=%d size=%s img_per_s=%.2f gflop_per_s=%.2f "
           "allreduce_share=%.4f peak_mb=%.1f act_mb=%.1f openblas_coretype=%s step_ms=%.2f step_ms_min=%.2f step_ms_max=%.2f "
           "allreduce_ms=%.2f gflop_per_img=%.4f labels=%d steps=%d warmup=%d cpus_per_rank=%d other_cpu=%.2f "
           "openblas_core=%s\n",
           mode_name(mode), r->ranks, threads, precision, r->batch, size, f->img_per_s, f->gflop_per_s, f->allreduce_share,
           r->peak_mb, r->act_mb, coretype && *coretype ? coretype : "unset", f->step_ms, f->step_ms_min, f->step_ms_max,
           f->allreduce_ms, f->gflop_per_img, r->n_labels, o->steps, o->warmup, r->cpus_per_rank, f->other_cpu,
           openblas_get_corename());
}

enum { OPT_SET = 1, OPT_STEPS, OPT_WARMUP, OPT_MODE, OPT_LABELS, OPT_NO_LAYERS };

static const cli_opt bench_opts[] = {{OPT_SET, "set", "key=value"},
                                     {OPT_STEPS, "steps", "a value (a whole number)"},
                                     {OPT_WARMUP, "warmup", "a value (a whole number)"},
                                     {OPT_MODE, "mode", "a value (train, infer or both)"},
                                     {OPT_LABELS, "labels", "a value (a whole number)"},
                                     {OPT_NO_LAYERS, "no-layers", NULL},
                                     {0, NULL, NULL}};

/* Parses the options into opts; returns 0, -1 for --help (printed), or an
 * exit status after saying why. */
static int parse_args(int argc, char **argv, const char **config_path, th_bench_opts *opts, int *labels_given,
                      cli_sets *sets)
{
    cli_parser p;
    cli_parser_init(&p, "bench", argc, argv, bench_opts);
    const char *val;
    long v;
    for (int id; (id = cli_next(&p, &val)) != CLI_END;) {
        switch (id) {
        case CLI_HELP: bench_usage(stdout); return -1;
        case CLI_BAD: return TH_EXIT_USAGE;
        case OPT_SET:
            if (cli_sets_add(sets, val)) return TH_EXIT_USAGE;
            break;
        case OPT_NO_LAYERS: opts->layers = 0; break;
        case OPT_MODE:
            if (!strcmp(val, "train")) opts->mode = TH_BENCH_TRAIN;
            else if (!strcmp(val, "infer")) opts->mode = TH_BENCH_INFER;
            else if (!strcmp(val, "both")) opts->mode = TH_BENCH_BOTH;
            else {
                cli_error("bench: --mode must be train, infer or both, got '%s'", val);
                return TH_EXIT_USAGE;
            }
            break;
        case OPT_STEPS:
            if (cli_parse_int(val, 1, 100000, &v)) {
                cli_error("bench: --steps must be a whole number from 1 to 100000, got '%s'", val);
                return TH_EXIT_USAGE;
            }
            opts->steps = (int)v;
            break;
        case OPT_WARMUP:
            if (cli_parse_int(val, 0, 100000, &v)) {
                cli_error("bench: --warmup must be a whole number from 0 to 100000, got '%s'", val);
                return TH_EXIT_USAGE;
            }
            opts->warmup = (int)v;
            break;
        case OPT_LABELS:
            if (cli_parse_int(val, 1, TH_MAX_LABELS, &v)) {
                cli_error("bench: --labels must be a whole number from 1 to %d, got '%s'", TH_MAX_LABELS, val);
                return TH_EXIT_USAGE;
            }
            opts->n_labels = (int)v;
            *labels_given = 1;
            break;
        case CLI_ARG:
            if (*config_path) {
                cli_error("bench: one config file only, got '%s' and '%s'", *config_path, val);
                return TH_EXIT_USAGE;
            }
            *config_path = val;
            break;
        }
    }
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    const char *config_path = NULL;
    th_bench_opts opts = {.steps = 10, .warmup = 3, .mode = TH_BENCH_BOTH, .n_labels = 14, .layers = 1};
    int labels_given = 0;
    cli_sets sets = {.n = 0};
    int status = parse_args(argc, argv, &config_path, &opts, &labels_given, &sets);
    if (status) return status < 0 ? TH_EXIT_OK : status;
    if (!config_path) {
        bench_usage(stderr);
        return TH_EXIT_USAGE;
    }

    MPI_Init(&argc, &argv);
    int rank = th_dist_rank(th_comm_world());
    th_err err = {{0}};
    th_config *cfg = malloc(sizeof *cfg);
    th_bench_result *res = malloc(sizeof *res);
    if (!cfg || !res) {
        if (rank == 0) cli_error("bench: out of memory");
        status = TH_EXIT_FAIL;
        goto done;
    }
    /* Every rank parses the same file and fails the same way; rank 0 speaks. */
    if (th_run_config_load(cfg, config_path, sets.v, sets.n, &err)) {
        if (rank == 0) cli_error("%s", err.msg);
        status = TH_EXIT_USAGE;
        goto done;
    }
    if (labels_given && cfg->data.n_labels > 0 && cfg->data.n_labels != opts.n_labels) {
        if (rank == 0)
            cli_error("bench: --labels %d disagrees with the %d data.labels of %s; --labels is for configs that "
                      "name none",
                      opts.n_labels, cfg->data.n_labels, config_path);
        status = TH_EXIT_USAGE;
        goto done;
    }
    int threads = cfg->runtime.threads_per_rank;
    const char *precision = th_precision_names[cfg->runtime.precision];

    if (th_bench_run(cfg, &opts, th_comm_world(), res, &err)) {
        if (rank == 0) cli_error("%s", err.msg);
        status = TH_EXIT_FAIL;
        goto done;
    }
    if (rank == 0) {
        const char *coretype = getenv("OPENBLAS_CORETYPE");
        cli_log("info",
                "bench %s: %d rank%s x %d thread%s, %d images per rank, input %dx%dx%d, %d labels, %zu parameters",
               config_path, res->ranks, res->ranks == 1 ? "" : "s", threads, threads == 1 ? "" : "s", res->batch,
               res->c, res->h, res->w, res->n_labels, res->n_params);
        cli_log("info",
                "%.3f GFLOP forward per image, %.3f per training image; OpenBLAS core %s (OPENBLAS_CORETYPE %s); "
                "%d timed steps after %d warm-up",
               res->gflop_fwd_per_img, 3 * res->gflop_fwd_per_img, openblas_get_corename(),
               coretype && *coretype ? coretype : "unset", opts.steps, opts.warmup);
        if (threads > res->cpus_per_rank)
            cli_error("bench: warning: %d threads per rank, but a rank may run on %d CPU%s only; give "
                      "each rank its cores, e.g. mpirun --map-by slot:PE=%d",
                      threads, res->cpus_per_rank, res->cpus_per_rank == 1 ? "" : "s", threads);
        if (res->n_layers) print_layers(res, precision);
        printf("\n");
        for (int m = TH_BENCH_TRAIN; m <= TH_BENCH_INFER; m <<= 1) {
            const th_bench_figures *f = m == TH_BENCH_TRAIN ? &res->train : &res->infer;
            if (!f->measured) continue;
            printf("%s: %.1f img/s, step %.1f ms (min %.1f, max %.1f), %.1f GFLOP/s", mode_name(m), f->img_per_s,
                   f->step_ms, f->step_ms_min, f->step_ms_max, f->gflop_per_s);
            if (m == TH_BENCH_TRAIN) printf(", allreduce %.1f%% of step time", 100 * f->allreduce_share);
            if (f->other_cpu > 0.25) printf("; other processes kept %.1f CPUs busy meanwhile", f->other_cpu);
            printf("\n");
        }
        for (int m = TH_BENCH_TRAIN; m <= TH_BENCH_INFER; m <<= 1)
            if ((m == TH_BENCH_TRAIN ? &res->train : &res->infer)->measured) print_result(res, m, threads, precision, &opts);
        fflush(stdout);
    }
done:
    free(cfg);
    free(res);
    MPI_Finalize();
    return status;
}

/* cmd_train.c - `thorax train CONFIG.yaml`: the training job, under mpirun. */
#include <cblas.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "thorax/config.h"
#include "thorax/train.h"

static void train_usage(FILE *f)
{
    fprintf(f,
            "usage: mpirun -np N thorax train CONFIG.yaml [--set key=value ...]\n"
            "\n"
            "Trains the network of CONFIG.yaml on its dataset across the MPI ranks and\n"
            "writes the run directory <runtime.out_dir>/<name>/: config.yaml (resolved),\n"
            "split.csv, metrics.csv, checkpoints/last.h5 and checkpoints/best.h5.\n"
            "\n"
            "options:\n"
            "  --set key=value   override a config key, e.g. --set train.epochs=3\n"
            "                    --set data.labels=[Effusion,Nodule] (repeatable)\n"
            "  -h, --help        this help\n");
}

/* Progress goes to a log more often than to a terminal: under mpirun and in
 * SLURM output files stdout is a file or a pipe (isatty even lies under
 * Open MPI, which hands ranks a pty), so every line is a whole line. */
typedef struct {
    double last_print;
} progress;

static void on_info(void *ctx, const char *msg)
{
    (void)ctx;
    printf("%s\n", msg);
    fflush(stdout);
}

static void on_step(void *ctx, const th_step_report *r)
{
    progress *p = ctx;
    double now = MPI_Wtime();
    /* The epoch line follows the last step; between, a line every few seconds. */
    if (r->step_in_epoch == r->steps_per_epoch || now - p->last_print < 5.0) return;
    p->last_print = now;
    char eta[32];
    cli_format_duration(r->eta_s, eta, sizeof eta);
    printf("epoch %d/%d  step %d/%d  loss %.4f  %.1f img/s  ETA %s\n", r->epoch, r->epochs, r->step_in_epoch,
           r->steps_per_epoch, r->loss, r->img_per_s, eta);
    fflush(stdout);
}

static void on_epoch(void *ctx, const th_epoch_report *e)
{
    progress *p = ctx;
    p->last_print = MPI_Wtime();
    printf("epoch %d/%d  train_loss %.4f  val_loss %.4f  val_auc %.4f%s  lr %.3g  %.1f img/s  %.1fs\n", e->epoch,
           e->epochs, e->train_loss, e->val_loss, e->val_auc, e->is_best ? " (best)" : "  ", (double)e->lr,
           e->img_per_s, e->seconds);
    fflush(stdout);
}

int cmd_train(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        train_usage(stdout);
        return TH_EXIT_OK;
    }
    const char *config_path = NULL;
    cli_sets sets = {.n = 0};
    for (int i = 1; i < argc; i++) {
        int took = cli_take_set(argc, argv, &i, &sets);
        if (took < 0) return TH_EXIT_USAGE;
        if (took) continue;
        if (argv[i][0] == '-') {
            cli_error("train: unknown option '%s' (see thorax train --help)", argv[i]);
            return TH_EXIT_USAGE;
        } else if (!config_path) {
            config_path = argv[i];
        } else {
            cli_error("train: one config file only, got '%s' and '%s'", config_path, argv[i]);
            return TH_EXIT_USAGE;
        }
    }
    if (!config_path) {
        train_usage(stderr);
        return TH_EXIT_USAGE;
    }

    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int status = TH_EXIT_OK;
    th_err err = {{0}};
    static th_config cfg;
    /* Every rank parses the same file and fails the same way; rank 0 speaks. */
    if (th_config_load(&cfg, config_path, sets.v, sets.n, &err)) {
        if (rank == 0) cli_error("%s", err.msg);
        status = TH_EXIT_USAGE;
        goto done;
    }
    openblas_set_num_threads(cfg.runtime.threads_per_rank);

    char run_dir[2 * TH_PATH_MAX], last[2 * TH_PATH_MAX + 32];
    snprintf(run_dir, sizeof run_dir, "%s/%s", cfg.runtime.out_dir, cfg.name);
    snprintf(last, sizeof last, "%s/checkpoints/last.h5", run_dir);
    if (access(last, F_OK) == 0) {
        if (rank == 0)
            cli_error("%s already holds a run (%s); choose another name with --set name=..., or move it away", run_dir,
                      last);
        status = TH_EXIT_USAGE;
        goto done;
    }
    if (rank == 0) printf("run %s -> %s\n", cfg.name, run_dir);

    progress prog = {.last_print = MPI_Wtime()};
    th_train_callbacks cb = {.on_info = on_info, .on_step = on_step, .on_epoch = on_epoch, .ctx = &prog};
    if (th_train_run(&cfg, run_dir, MPI_COMM_WORLD, &cb, &err)) {
        if (rank == 0) cli_error("%s", err.msg);
        status = TH_EXIT_FAIL;
        goto done;
    }
    if (rank == 0) printf("done: %s\n", run_dir);
done:
    MPI_Finalize();
    return status;
}

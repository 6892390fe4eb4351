/* cmd_train.c - `thorax train CONFIG.yaml`: the training job, under mpirun. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cli.h"
#include "thorax/util.h"
#include "thorax/dist.h"
#include "thorax/config.h"
#include "thorax/eval.h"
#include "thorax/train.h"

static void train_usage(FILE *f)
{
    fprintf(f,
            "usage: mpirun -np N thorax train CONFIG.yaml [--set key=value ...] [--resume auto|DIR]\n"
            "\n"
            "Trains the network of CONFIG.yaml on its dataset across the MPI ranks and\n"
            "writes the run directory <runtime.out_dir>/<name>/: config.yaml (resolved),\n"
            "split.csv, metrics.csv, checkpoints/last.h5 and checkpoints/best.h5.\n"
            "\n"
            "options:\n"
            "  --set key=value   override a config key, e.g. --set train.epochs=3\n"
            "                    --set data.labels=[Effusion,Nodule] (repeatable)\n"
            "  --resume auto     continue the run directory's checkpoints/last.h5 if there\n"
            "                    is one, else start afresh (for requeued batch jobs)\n"
            "  --resume DIR      continue the run in DIR (its checkpoints/last.h5)\n"
            "  --log-format F    plain or json log lines (see thorax --help)\n"
            "  -h, --help        this help\n"
            "\n"
            "A resumed run must keep the seed, data and model sections and train.freeze\n"
            "and train.unfreeze; the rest of train may change (e.g. more epochs).\n"
            "Fine-tuning: model.init starts from another run's checkpoint or an imported\n"
            "file, train.freeze keeps layers from training, train.unfreeze {epoch, lr}\n"
            "trains every layer from that epoch on (see the README).\n"
            "\n"
            "SIGTERM, SIGUSR1 (SLURM sends one before the time limit with --signal) or\n"
            "Ctrl-C (SIGINT; a second one aborts at once) stops every rank after the\n"
            "current step (or the current batch of a validation or of the final\n"
            "evaluation), writes last.h5, and exits with status 75; --resume auto goes\n"
            "on from there, bit-identical to a run never stopped (an interrupted\n"
            "validation or evaluation is redone). Open MPI's mpirun forwards SIGUSR1 to\n"
            "the ranks, but answers SIGTERM and SIGINT itself: it stops the ranks (which\n"
            "still write last.h5) and exits 1 whatever they return; send mpirun SIGUSR1.\n"
            "A rank silent in a collective for runtime.hang_timeout seconds (stopped,\n"
            "hung, its node lost) ends the job with status 1, naming it.\n"
            "\n"
            "exit status: 0 done, 1 failed (data, I/O, NaN loss), 2 usage or config\n"
            "error, 75 stopped by a signal with a checkpoint to resume from.\n");
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
    cli_log("info", "%s", msg);
}

static void on_step(void *ctx, const th_step_report *r)
{
    progress *p = ctx;
    double now = th_now();
    /* The epoch line follows the last step; between, a line every few seconds. */
    if (r->step_in_epoch == r->steps_per_epoch || now - p->last_print < 5.0) return;
    p->last_print = now;
    char eta[32];
    cli_format_duration(r->eta_s, eta, sizeof eta);
    cli_field f[] = {{"epoch", r->epoch},
                     {"epochs", r->epochs},
                     {"step", r->step_in_epoch},
                     {"steps", r->steps_per_epoch},
                     {"global_step", (double)r->step},
                     {"loss", r->loss},
                     {"img_per_s", r->img_per_s},
                     {"data_wait_share", r->data_wait_share},
                     {"allreduce_share", r->allreduce_share},
                     {"eta_s", r->eta_s}};
    cli_log_at(stdout, "progress", f, (int)(sizeof f / sizeof f[0]),
               "epoch %d/%d  step %d/%d  loss %.4f  %.1f img/s  data wait %.0f%%  allreduce %.0f%%  ETA %s", r->epoch,
               r->epochs, r->step_in_epoch, r->steps_per_epoch, r->loss, r->img_per_s, 100 * r->data_wait_share,
               100 * r->allreduce_share, eta);
}

static void on_epoch(void *ctx, const th_epoch_report *e)
{
    progress *p = ctx;
    p->last_print = th_now();
    cli_field f[] = {{"epoch", e->epoch},
                     {"epochs", e->epochs},
                     {"global_step", (double)e->step},
                     {"train_loss", e->train_loss},
                     {"val_loss", e->val_loss},
                     {"val_auc", e->val_auc},
                     {"best", e->is_best},
                     {"lr", e->lr},
                     {"img_per_s", e->img_per_s},
                     {"data_wait_share", e->data_wait_share},
                     {"allreduce_share", e->allreduce_share},
                     {"seconds", e->seconds}};
    cli_log_at(stdout, "info", f, (int)(sizeof f / sizeof f[0]),
               "epoch %d/%d  train_loss %.4f  val_loss %.4f  val_auc %.4f%s  lr %.3g  %.1f img/s  data wait %.0f%%  "
               "allreduce %.0f%%  %.1fs",
               e->epoch, e->epochs, e->train_loss, e->val_loss, e->val_auc, e->is_best ? " (best)" : "       ",
               (double)e->lr, e->img_per_s, 100 * e->data_wait_share, 100 * e->allreduce_share, e->seconds);
}

/* The one piece of process-wide state: a signal can only reach the training
 * loop through a flag. The loop polls it once per step and once per batch of
 * validation and of the evaluation phase. */
static volatile sig_atomic_t stop_requested;
/* Ctrl-C: the first is a stop request as SIGTERM is; the second ends the
 * process at once (the epoch under way is lost, last.h5 stays). Rank 0 says
 * so when the first arrives: a terminal user otherwise sees nothing until
 * the step ends. */
static volatile sig_atomic_t interrupts, announce_interrupt;

static void on_stop_signal(int sig)
{
    stop_requested = 1;
    if (sig != SIGINT) return;
    if (interrupts++) {
        signal(SIGINT, SIG_DFL);
        raise(SIGINT);
        return;
    }
    if (announce_interrupt) {
        static const char msg[] = "\nthorax: interrupted: stopping after the current step to write last.h5 (Ctrl-C "
                                  "again aborts at once)\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
    }
}

static void catch_stop_signals(int rank)
{
    announce_interrupt = rank == 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* runtime.hang_timeout ran out in a collective (th_dist_watch): one rank
 * says which ranks are silent, and the job ends. The others wait a moment
 * so that their MPI_Abort does not kill the speaker before its message. */
static void on_hang(void *ctx, const char *msg, int speak)
{
    (void)ctx;
    if (speak) cli_error("train: %s", msg);
    else sleep(2);
    MPI_Abort(th_comm_world(), TH_EXIT_FAIL);
}

enum { OPT_SET = 1, OPT_RESUME };

static const cli_opt train_opts[] = {{OPT_SET, "set", "key=value"},
                                     {OPT_RESUME, "resume", "a value: 'auto' or a run directory"},
                                     {0, NULL, NULL}};

int cmd_train(int argc, char **argv)
{
    const char *config_path = NULL, *resume = NULL;
    cli_sets sets = {.n = 0};
    cli_parser p;
    cli_parser_init(&p, "train", argc, argv, train_opts);
    const char *v;
    for (int id; (id = cli_next(&p, &v)) != CLI_END;) {
        switch (id) {
        case CLI_HELP: train_usage(stdout); return TH_EXIT_OK;
        case CLI_BAD: return TH_EXIT_USAGE;
        case OPT_SET:
            if (cli_sets_add(&sets, v)) return TH_EXIT_USAGE;
            break;
        case OPT_RESUME:
            if (!*v) {
                cli_error("train: --resume takes 'auto' or a run directory, got ''");
                return TH_EXIT_USAGE;
            }
            resume = v;
            break;
        case CLI_ARG:
            if (config_path) {
                cli_error("train: one config file only, got '%s' and '%s'", config_path, v);
                return TH_EXIT_USAGE;
            }
            config_path = v;
            break;
        }
    }
    if (!config_path) {
        train_usage(stderr);
        return TH_EXIT_USAGE;
    }

    MPI_Init(&argc, &argv);
    int rank = th_dist_rank(th_comm_world());
    int status = TH_EXIT_OK;
    th_err err = {{0}};
    cli_run_lock lock = {.lock = {-1}};
    static th_config cfg;
    /* Every rank parses the same file and fails the same way; rank 0 speaks. */
    if (th_run_config_load(&cfg, config_path, sets.v, sets.n, &err)) {
        if (rank == 0) cli_error("%s", err.msg);
        status = TH_EXIT_USAGE;
        goto done;
    }
    if (th_dist_watch(th_comm_world(), cfg.runtime.hang_timeout, on_hang, NULL, &err)) {
        if (rank == 0) cli_error("%s", err.msg);
        status = TH_EXIT_FAIL;
        goto done;
    }
    int cpus = th_dist_min_cpus(th_comm_world());
    if (rank == 0 && cfg.runtime.threads_per_rank > cpus)
        cli_error("train: warning: %d threads per rank, but a rank may run on %d CPU%s only; give each rank its "
                  "cores, e.g. mpirun --map-by slot:PE=%d",
                  cfg.runtime.threads_per_rank, cpus, cpus == 1 ? "" : "s", cfg.runtime.threads_per_rank);

    /* The run directory's lock before the decision, which is made again
     * under it: two jobs started together both find no last.h5, and the
     * second must not write into the first's run. A directory that holds a
     * run is locked too, so that a job still writing it is named. */
    th_run_place place;
    struct stat st;
    int placed = th_train_place(&cfg, resume, &place, &err);
    if (placed == 0 || stat(place.dir, &st) == 0) {
        if (cli_lock_run(&lock, place.dir, placed == 0, &err)) {
            if (rank == 0) cli_error("%s", err.msg);
            status = TH_EXIT_FAIL;
            goto done;
        }
        placed = th_train_place(&cfg, resume, &place, &err);
    }
    if (placed) {
        if (rank == 0) cli_error("%s", err.msg);
        status = TH_EXIT_USAGE;
        goto done;
    }
    const char *run_dir = place.dir, *last = place.last;
    int have_last = place.resuming;
    th_train_opts opts = {
        .resume_from = have_last ? last : NULL, .stop = &stop_requested, .argc = argc, .argv = argv};
    const char *nan_step = getenv("THORAX_TEST_NAN_STEP"), *stop_step = getenv("THORAX_TEST_STOP_STEP");
    if (nan_step) opts.nan_at_step = atol(nan_step);
    if (stop_step) opts.stop_at_step = atol(stop_step);
    /* Test hook: a slow validation and evaluation, to signal mid-way. */
    const char *val_sleep = getenv("THORAX_TEST_VAL_SLEEP_MS");
    if (val_sleep) opts.val_sleep_ms = atoi(val_sleep);
    catch_stop_signals(rank);
    if (rank == 0) cli_log("info", "run %s -> %s%s", cfg.name, run_dir, have_last ? " (resuming)" : "");

    progress prog = {.last_print = th_now()};
    th_train_callbacks cb = {.on_info = on_info, .on_step = on_step, .on_epoch = on_epoch, .ctx = &prog};
    int rc = th_train_run(&cfg, run_dir, &opts, th_comm_world(), &cb, &err);
    if (rc == TH_TRAIN_STOPPED) {
        if (rank == 0) cli_log("info", "stopped: %s holds the checkpoint; continue with --resume auto", last);
        status = TH_EXIT_PREEMPTED;
        goto done;
    }
    if (rc) {
        if (rank == 0) cli_error("%s", err.msg);
        status = TH_EXIT_FAIL;
        goto done;
    }
    /* The evaluation phase: the best checkpoint on the config's eval split,
     * and on val too for the model card. */
    const char *splits[2] = {"val", cfg.eval.split};
    for (int k = strcmp(cfg.eval.split, "val") ? 0 : 1; k < 2; k++) {
        char what[64];
        snprintf(what, sizeof what, "eval %s, rank 0's share", splits[k]);
        cli_progress prog_eval;
        cli_progress_start(&prog_eval, what);
        prog_eval.f = stdout;
        prog_eval.tty = 0;
        th_eval_opts eo = {.run_dir = run_dir,
                           .split = splits[k],
                           .checkpoint = "best",
                           .on_progress = rank == 0 ? cli_progress_update : NULL,
                           .progress_ctx = &prog_eval,
                           .stop = {.flag = &stop_requested, .batch_sleep_ms = opts.val_sleep_ms}};
        th_eval_result er;
        int erc = th_eval_run(&eo, th_comm_world(), &er, &err);
        if (erc == TH_TRAIN_STOPPED) {
            if (rank == 0)
                printf("stopped during the evaluation phase: training is complete in %s; --resume auto evaluates "
                       "again\n", last);
            status = TH_EXIT_PREEMPTED;
            goto done;
        }
        if (erc) {
            if (rank == 0) cli_error("evaluation: %s", err.msg);
            status = TH_EXIT_FAIL;
            goto done;
        }
        if (rank == 0 && k == 1) cli_print_eval(&er);
    }
    if (rank == 0 && th_model_card_write(run_dir, &err)) {
        cli_error("%s", err.msg);
        status = TH_EXIT_FAIL;
        goto done;
    }
    if (rank == 0) cli_log("info", "done: %s", run_dir);
done:
    th_dist_unwatch(th_comm_world());
    cli_unlock_run(&lock, status != TH_EXIT_OK);
    MPI_Finalize();
    return status;
}

/* cmd_lrfind.c - `thorax lr-find CONFIG.yaml`: the learning-rate range test,
 * under mpirun like train. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "thorax/util.h"
#include "thorax/dist.h"
#include "thorax/config.h"
#include "thorax/train.h"

static void lrfind_usage(FILE *f)
{
    fprintf(f,
            "usage: mpirun -np N thorax lr-find CONFIG.yaml [--steps K] [--start-lr A] [--end-lr B]\n"
            "                                   [--out DIR] [--set key=value ...]\n"
            "\n"
            "The learning-rate range test (fastai's lr_find): sets up as train does (same\n"
            "data, split, shards, normalisation, initialisation from the seed, optimiser),\n"
            "then takes K training steps with the rate growing exponentially from A to B,\n"
            "recording the global loss of each. The loss is smoothed (moving average,\n"
            "beta 0.98, bias-corrected) and the test stops early once the smoothed loss is\n"
            "not finite or above 4x its best. Prints two suggestions, the steepest descent\n"
            "of the smoothed loss (per decade of rate) and a tenth of the rate of its\n"
            "minimum, and which one it suggests and why; then e.g.\n"
            "  mpirun -np N thorax train CONFIG.yaml --set train.optimizer.lr=<suggested>\n"
            "\n"
            "Writes DIR/lr_find.csv (step,lr,loss,smoothed) and DIR/lr_find.png; no\n"
            "checkpoint, and nothing else of the run directory.\n"
            "\n"
            "options:\n"
            "  --steps K         steps at most (default 100; each is one global batch)\n"
            "  --start-lr A      first rate (default 1e-7)\n"
            "  --end-lr B        last rate (default 10)\n"
            "  --out DIR         where the files go (default <runtime.out_dir>/<name>/lr_find)\n"
            "  --set key=value   override a config key (repeatable), as for train\n"
            "  --log-format F    plain or json log lines (see thorax --help)\n"
            "  -h, --help        this help\n"
            "\n"
            "The last line is machine-readable:\n"
            "  RESULT suggested_lr=... rule=steepest|min_tenth steepest_lr=... min_tenth_lr=... steps=... diverged=0|1\n"
            "\n"
            "exit status: 0 done, 1 failed (data, I/O, too few usable steps), 2 usage or\n"
            "config error.\n");
}

typedef struct {
    double last_print;
} lrfind_progress;

static void on_info(void *ctx, const char *msg)
{
    (void)ctx;
    cli_log("info", "%s", msg);
}

static void on_step(void *ctx, int step, int steps, double lr, double loss, double smoothed)
{
    lrfind_progress *p = ctx;
    double now = th_now();
    if (step != 1 && step != steps && now - p->last_print < 2.0) return;
    p->last_print = now;
    cli_field f[] = {{"step", step}, {"steps", steps}, {"lr", lr}, {"loss", loss}, {"smoothed", smoothed}};
    cli_log_at(stdout, "progress", f, 5, "step %d/%d  lr %.3g  loss %.4f  smoothed %.4f", step, steps, lr, loss,
               smoothed);
}

enum { OPT_SET = 1, OPT_STEPS, OPT_START_LR, OPT_END_LR, OPT_OUT };

static const cli_opt lrfind_opts[] = {{OPT_SET, "set", "key=value"},
                                      {OPT_STEPS, "steps", "a value (a whole number of steps)"},
                                      {OPT_START_LR, "start-lr", "a value (a positive rate)"},
                                      {OPT_END_LR, "end-lr", "a value (a positive rate)"},
                                      {OPT_OUT, "out", "a value (a directory)"},
                                      {0, NULL, NULL}};

int cmd_lrfind(int argc, char **argv)
{
    const char *config_path = NULL, *out = NULL;
    cli_sets sets = {.n = 0};
    th_lrfind_opts o;
    th_lrfind_defaults(&o);
    cli_parser p;
    cli_parser_init(&p, "lr-find", argc, argv, lrfind_opts);
    const char *v;
    long n;
    for (int id; (id = cli_next(&p, &v)) != CLI_END;) {
        switch (id) {
        case CLI_HELP: lrfind_usage(stdout); return TH_EXIT_OK;
        case CLI_BAD: return TH_EXIT_USAGE;
        case OPT_SET:
            if (cli_sets_add(&sets, v)) return TH_EXIT_USAGE;
            break;
        case OPT_STEPS:
            if (cli_parse_int(v, 3, 1000000, &n)) {
                cli_error("lr-find: --steps takes a whole number of steps from 3 to 1000000, got '%s'", v);
                return TH_EXIT_USAGE;
            }
            o.steps = (int)n;
            break;
        case OPT_START_LR:
            if (cli_parse_double(v, &o.start_lr) || !(o.start_lr > 0)) {
                cli_error("lr-find: --start-lr takes a positive rate, e.g. 1e-7, got '%s'", v);
                return TH_EXIT_USAGE;
            }
            break;
        case OPT_END_LR:
            if (cli_parse_double(v, &o.end_lr) || !(o.end_lr > 0)) {
                cli_error("lr-find: --end-lr takes a positive rate, e.g. 10, got '%s'", v);
                return TH_EXIT_USAGE;
            }
            break;
        case OPT_OUT:
            if (!*v) {
                cli_error("lr-find: --out takes a directory, got ''");
                return TH_EXIT_USAGE;
            }
            out = v;
            break;
        case CLI_ARG:
            if (config_path) {
                cli_error("lr-find: one config file only, got '%s' and '%s'", config_path, v);
                return TH_EXIT_USAGE;
            }
            config_path = v;
            break;
        }
    }
    if (!config_path) {
        lrfind_usage(stderr);
        return TH_EXIT_USAGE;
    }
    th_err err = {{0}};
    if (th_lrfind_check(&o, &err)) {
        cli_error("lr-find: %s", err.msg);
        return TH_EXIT_USAGE;
    }

    MPI_Init(&argc, &argv);
    int rank = th_dist_rank(th_comm_world());
    int status = TH_EXIT_OK;
    static th_config cfg;
    th_lrfind_result res;
    memset(&res, 0, sizeof res);
    if (th_run_config_load(&cfg, config_path, sets.v, sets.n, &err)) {
        if (rank == 0) cli_error("%s", err.msg);
        status = TH_EXIT_USAGE;
        goto done;
    }
    char dir[2 * TH_PATH_MAX + 16], file[2][sizeof dir + 16];
    int bad = 0;
    if (out) snprintf(dir, sizeof dir, "%s", out);
    else if (!(bad = th_child_path(dir, sizeof dir - 16, cfg.runtime.out_dir, cfg.name, "the run name", &err)))
        strcat(dir, "/lr_find");
    /* The output guard, before the steps are spent: neither result file may
     * be the config or the dataset. */
    const char *inputs[2] = {config_path, cfg.data.path};
    snprintf(file[0], sizeof file[0], "%s/lr_find.csv", dir);
    snprintf(file[1], sizeof file[1], "%s/lr_find.png", dir);
    if (!bad) bad = th_output_not_input(file[0], 2, inputs, &err) || th_output_not_input(file[1], 2, inputs, &err);
    if (bad) {
        if (rank == 0) cli_error("lr-find: %s", err.msg);
        status = TH_EXIT_FAIL;
        goto done;
    }
    if (rank == 0)
        cli_log("info", "lr-find %s: up to %d steps, lr %.3g to %.3g -> %s", cfg.name, o.steps, o.start_lr, o.end_lr,
                dir);

    /* Where the results go must take them before the steps are spent. */
    int made = rank == 0 ? th_mkdirs(dir, &err) : 0;
    if (th_dist_agree(th_comm_world(), made, &err)) {
        if (rank == 0) cli_error("lr-find: %s", err.msg);
        status = TH_EXIT_FAIL;
        goto done;
    }

    lrfind_progress prog = {.last_print = th_now()};
    o.on_step = on_step;
    o.ctx = &prog;
    th_train_callbacks cb = {.on_info = on_info};
    if (th_lrfind_run(&cfg, &o, th_comm_world(), &cb, &res, &err) || th_lrfind_suggest(&res, &err)) {
        if (rank == 0) cli_error("lr-find: %s", err.msg);
        status = TH_EXIT_FAIL;
        goto done;
    }
    /* Rank 0 writes; the others learn whether it could. */
    int rc = rank == 0 ? th_lrfind_write(&res, dir, cfg.name, &err) : 0;
    if (th_dist_agree(th_comm_world(), rc, &err)) {
        if (rank == 0) cli_error("lr-find: %s", err.msg);
        status = TH_EXIT_FAIL;
        goto done;
    }
    if (rank == 0) {
        if (res.diverged)
            printf("stopped at step %d of %d (lr %.3g): the smoothed loss %s\n", res.n, res.planned, res.lr[res.n - 1],
                   isfinite(res.smoothed[res.n - 1]) ? "rose above 4x its best" : "is not finite");
        else
            printf("ran all %d steps without divergence (the curve may go on rising past --end-lr %.3g)\n", res.n,
                   o.end_lr);
        printf("steepest descent: lr %.3g (smoothed loss %.4f, falling %.3g per decade of rate)\n", res.steep_lr,
               res.smoothed[res.steep_idx], -res.steep_slope);
        printf("minimum / 10:     lr %.3g (minimum smoothed loss %.4f at lr %.3g)\n", res.min_tenth_lr,
               res.smoothed[res.min_idx], res.min_lr);
        printf("suggested lr: %.3g (%s): %s\n", res.suggested,
               res.rule == TH_LRFIND_STEEPEST ? "steepest descent" : "minimum / 10", res.why);
        printf("wrote %s/lr_find.csv and %s/lr_find.png\n", dir, dir);
        printf("RESULT suggested_lr=%.6g rule=%s steepest_lr=%.6g min_tenth_lr=%.6g steps=%d diverged=%d\n",
               res.suggested, res.rule == TH_LRFIND_STEEPEST ? "steepest" : "min_tenth", res.steep_lr,
               res.min_tenth_lr, res.n, res.diverged);
    }
done:
    th_lrfind_result_free(&res);
    MPI_Finalize();
    return status;
}

/* cmd_eval.c - `thorax eval RUN_DIR`: the evaluation phase on its own. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "thorax/dist.h"
#include "thorax/eval.h"

static void eval_usage(FILE *f)
{
    fprintf(f,
            "usage: mpirun -np N thorax eval RUN_DIR [--split val|test] [--checkpoint best|last]\n"
            "                                       [--data OTHER.h5] [--patient] [--by COLUMN]\n"
            "\n"
            "Predicts a split of the run's dataset (default: the config's eval.split) with\n"
            "a checkpoint of the run, each rank a share of the patients, and writes\n"
            "RUN_DIR/eval/<split>/: predictions.csv, metrics.json (AUC with a 95%% CI from\n"
            "a bootstrap of patients, eval.bootstrap resamples seeded with the run's seed,\n"
            "and DeLong's 95%% CI; the operating point with Wilson 95%% CIs; calibration;\n"
            "average precision; macro means), metrics.md (the same as a table),\n"
            "roc_<label>.csv, roc.png and calibration.png; then refreshes\n"
            "RUN_DIR/MODEL_CARD.md.\n"
            "\n"
            "Each label's threshold is chosen on val by the config's eval.threshold\n"
            "(youden, sensitivity@S, specificity@S or fixed:T) into\n"
            "eval/val/thresholds.json, with one temperature per label when\n"
            "eval.calibrate is temperature; test and --data apply them, never re-fit\n"
            "(val is evaluated first when that file is missing or stale).\n"
            "\n"
            "options:\n"
            "  --split val|test        which split of the run's own dataset\n"
            "  --checkpoint best|last  best.h5 (best val AUC, default) or last.h5\n"
            "  --data OTHER.h5         external validation: every image of another dataset\n"
            "                          file, labels matched by name, into eval/<OTHER>/\n"
            "  --patient               also per patient (score = max over the patient's\n"
            "                          images) into eval/<split>/patient/\n"
            "  --by COLUMN             also per value of the dataset's /meta/COLUMN (an extra\n"
            "                          CSV column kept by ingest, e.g. \"View Position\"): AUC,\n"
            "                          DeLong 95%% CI, n_pos, n_neg per label and group into\n"
            "                          eval/<split>/by_<COLUMN>.json and .md, and printed\n"
            "  --log-format F          plain or json log lines (see thorax --help)\n"
            "  -h, --help              this help\n");
}

/* Logs the one-line summary of an evaluation (rank 0). */
void cli_print_eval(const th_eval_result *r)
{
    cli_field f[] = {{"images", r->n_images},   {"patients", r->n_patients},     {"labels", r->n_labels},
                     {"defined", r->n_defined}, {"macro_auc", r->macro_auc}};
    int n = (int)(sizeof f / sizeof f[0]);
    /* An AUC needs positives and negatives: with no label scorable the
     * macro mean is undefined, which "nan" would not explain. */
    if (r->n_defined == 0)
        cli_log_at(stdout, "info", f, n,
                   "eval: %d images of %d patients, %d labels: macro AUC undefined, no label has both positive and "
                   "negative images (metrics.json gives each label's reason) -> %s",
                   r->n_images, r->n_patients, r->n_labels, r->out_dir);
    else
        cli_log_at(stdout, "info", f, n, "eval: %d images of %d patients, %d labels (%d with both classes): macro AUC %.4f -> %s",
                   r->n_images, r->n_patients, r->n_labels, r->n_defined, r->macro_auc, r->out_dir);
    if (r->note[0]) cli_log("info", "eval: %s", r->note);
    if (r->external && (r->overlap.patients || r->overlap.images)) {
        cli_field o[] = {{"overlap_patients", (double)r->overlap.patients},
                         {"overlap_images", (double)r->overlap.images}};
        cli_log_at(stdout, "warning", o, 2,
                   "eval: %ld patients and %ld identical images of this file are in the run's training split: "
                   "this is not independent external validation (metrics.json: overlap_with_training)",
                   r->overlap.patients, r->overlap.images);
    }
}

enum { OPT_SPLIT = 1, OPT_CHECKPOINT, OPT_DATA, OPT_BY, OPT_PATIENT };

static const cli_opt eval_opts[] = {{OPT_SPLIT, "split", "a value (val or test)"},
                                    {OPT_CHECKPOINT, "checkpoint", "a value (best or last)"},
                                    {OPT_DATA, "data", "a value (a dataset file)"},
                                    {OPT_BY, "by", "a value (a /meta column)"},
                                    {OPT_PATIENT, "patient", NULL},
                                    {0, NULL, NULL}};

int cmd_eval(int argc, char **argv)
{
    th_eval_opts opts = {0};
    cli_parser p;
    cli_parser_init(&p, "eval", argc, argv, eval_opts);
    const char *v;
    for (int id; (id = cli_next(&p, &v)) != CLI_END;) {
        switch (id) {
        case CLI_HELP: eval_usage(stdout); return TH_EXIT_OK;
        case CLI_BAD: return TH_EXIT_USAGE;
        case OPT_SPLIT: opts.split = v; break;
        case OPT_CHECKPOINT: opts.checkpoint = v; break;
        case OPT_DATA: opts.data = v; break;
        case OPT_BY: opts.by = v; break;
        case OPT_PATIENT: opts.patient_level = 1; break;
        case CLI_ARG:
            if (opts.run_dir) {
                cli_error("eval: unexpected argument '%s' (see thorax eval --help)", v);
                return TH_EXIT_USAGE;
            }
            opts.run_dir = v;
            break;
        }
    }
    if (!opts.run_dir) {
        eval_usage(stderr);
        return TH_EXIT_USAGE;
    }
    if (opts.split && strcmp(opts.split, "val") && strcmp(opts.split, "test")) {
        cli_error("eval: --split must be val or test, got '%s'", opts.split);
        return TH_EXIT_USAGE;
    }
    if (opts.checkpoint && strcmp(opts.checkpoint, "best") && strcmp(opts.checkpoint, "last")) {
        cli_error("eval: --checkpoint must be best or last, got '%s'", opts.checkpoint);
        return TH_EXIT_USAGE;
    }
    MPI_Init(&argc, &argv);
    int rank = th_dist_rank(th_comm_world());
    /* Rank 0's share stands for the whole: the ranks predict alike. */
    cli_progress prog;
    cli_progress_start(&prog, "eval, rank 0's share");
    prog.f = stdout;
    prog.tty = 0;
    if (rank == 0) {
        opts.on_progress = cli_progress_update;
        opts.progress_ctx = &prog;
    }
    th_err err = {{0}};
    th_eval_result res;
    int status = TH_EXIT_OK;
    cli_run_lock lock;
    if (cli_lock_run(&lock, opts.run_dir, 0, &err)) {
        if (rank == 0) cli_error("%s", err.msg);
        status = TH_EXIT_FAIL;
    } else if (th_eval_run(&opts, th_comm_world(), &res, &err)) {
        if (rank == 0) cli_error("%s", err.msg);
        status = TH_EXIT_FAIL;
    } else if (rank == 0) {
        cli_print_eval(&res);
        if (res.by_md[0]) {
            th_err ignored;
            char *table = th_read_file(res.by_md, NULL, &ignored);
            if (table) printf("\n%s\n(%s)\n", table, res.by_md);
            free(table);
        }
        /* The card reads every evaluation there is, this one included. */
        if (th_model_card_write(opts.run_dir, &err)) {
            cli_error("%s", err.msg);
            status = TH_EXIT_FAIL;
        }
    }
    cli_unlock_run(&lock, status != TH_EXIT_OK);
    MPI_Finalize();
    return status;
}

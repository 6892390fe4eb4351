/* cmd_split.c - `thorax split CONFIG.yaml`: the split report and leakage check.
 *
 * Shows, before any compute is spent, what `thorax train` will train and
 * validate on: patients, images and positives per label in each split, and
 * proof that no patient has images in two splits.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "thorax/config.h"
#include "thorax/data.h"
#include "thorax/train.h"

static void split_usage(FILE *f)
{
    fprintf(f,
            "usage: thorax split CONFIG.yaml [--set key=value ...]\n"
            "\n"
            "Prints the patient-level split that `thorax train CONFIG.yaml` would use:\n"
            "patients, images and positives per label in train/val/test, and the leakage\n"
            "check (patients with images in more than one split; must be 0), and the\n"
            "duplicate check: pictures with identical or nearly identical pixels\n"
            "(data.duplicate_bits) in more than one split, and what data.on_duplicate\n"
            "does about them (the first groups are listed; a run writes them all to\n"
            "duplicates.csv). Exits 1 if the split leaks, or if such pictures remain\n"
            "with data.on_duplicate: refuse.\n"
            "\n"
            "options:\n"
            "  --set key=value   override a config key (repeatable)\n"
            "  --log-format F    plain or json log lines (see thorax --help)\n"
            "  -h, --help        this help\n");
}

static void report(const th_dataset *ds, const int *label_col, int n_labels, const uint8_t *split)
{
    th_split_tally t;
    th_err err = {{0}};
    if (th_split_count(ds, label_col, n_labels, split, &t, &err)) {
        cli_error("%s", err.msg);
        return;
    }
    const long *images = t.images, *patients = t.patients, *pos = t.pos;
    printf("%-20s %14ld %14ld %14ld\n", "patients", patients[0], patients[1], patients[2]);
    printf("%-20s %14ld %14ld %14ld\n", "images", images[0], images[1], images[2]);
    for (int k = 0; k < n_labels; k++) {
        printf("%-20.20s", ds->label_names[label_col[k]]);
        for (int s = 0; s < 3; s++) {
            long p = pos[(size_t)s * n_labels + k];
            char cell[32];
            snprintf(cell, sizeof cell, "%ld (%.1f%%)", p, images[s] ? 100.0 * p / images[s] : 0.0);
            printf(" %14s", cell);
        }
        printf("\n");
    }
    th_split_tally_free(&t);
}

/* The duplicate check's summary: the groups across splits, what the policy
 * did, and the first few groups image by image. */
static void report_dups(const th_config *cfg, const th_dataset *ds, const th_plan_dups *d)
{
    enum { SHOWN = 10 };
    static const char *const policy[] = {"refuse", "drop", "keep"};
    int exact = 0, within = d->found.n_groups - d->n_cross;
    for (int g = 0; g < d->found.n_groups; g++) exact += d->cross[g] && d->found.exact[g];
    if (d->n_cross == 0) {
        printf("duplicate check: passed, no picture in more than one split (%d groups within a split)\n", within);
        return;
    }
    printf("duplicate check: %d groups (%d images) in more than one split: %d identical, %d near", d->n_cross,
           d->cross_images, exact, d->n_cross - exact);
    if (cfg->data.duplicate_bits >= 0) printf(" (<= %d bits apart)", cfg->data.duplicate_bits);
    printf("; %d groups within a split\n", within);
    for (int g = 0, shown = 0; g < d->found.n_groups && shown < SHOWN; g++) {
        if (!d->cross[g]) continue;
        printf("  group %d (%s):", g + 1, d->found.exact[g] ? "identical" : "near");
        for (int i = 0; i < ds->n; i++)
            if (d->found.group[i] == g && d->split_before[i] != TH_SPLIT_NONE)
                printf(" %s (%s)", ds->image_name[i], th_split_name(d->split_before[i]));
        printf("\n");
        shown++;
    }
    if (d->n_cross > SHOWN) printf("  ... and %d more groups\n", d->n_cross - SHOWN);
    printf("data.on_duplicate: %s", policy[cfg->data.on_duplicate]);
    if (cfg->data.on_duplicate == TH_ON_DUP_DROP) printf(": %d copies left out of later splits", d->dropped);
    printf("\n");
}

enum { OPT_SET = 1 };

static const cli_opt split_opts[] = {{OPT_SET, "set", "key=value"}, {0, NULL, NULL}};

int cmd_split(int argc, char **argv)
{
    const char *config_path = NULL;
    cli_sets sets = {.n = 0};
    cli_parser p;
    cli_parser_init(&p, "split", argc, argv, split_opts);
    const char *v;
    for (int id; (id = cli_next(&p, &v)) != CLI_END;) {
        switch (id) {
        case CLI_HELP: split_usage(stdout); return TH_EXIT_OK;
        case CLI_BAD: return TH_EXIT_USAGE;
        case OPT_SET:
            if (cli_sets_add(&sets, v)) return TH_EXIT_USAGE;
            break;
        case CLI_ARG:
            if (config_path) {
                cli_error("split: unexpected argument '%s' (see thorax split --help)", v);
                return TH_EXIT_USAGE;
            }
            config_path = v;
            break;
        }
    }
    if (!config_path) {
        split_usage(stderr);
        return TH_EXIT_USAGE;
    }
    th_err err = {{0}};
    static th_config cfg;
    if (th_run_config_load(&cfg, config_path, sets.v, sets.n, &err)) {
        cli_error("%s", err.msg);
        return TH_EXIT_USAGE;
    }
    MPI_Init(&argc, &argv);
    int status = TH_EXIT_OK;
    th_dataset ds;
    uint8_t *split = NULL;
    if (th_dataset_open(&ds, cfg.data.path, th_comm_self(), &err)) {
        cli_error("%s", err.msg);
        MPI_Finalize();
        return TH_EXIT_FAIL;
    }
    static int label_col[TH_MAX_LABELS];
    int n_labels = 0, dropped = 0;
    th_plan_dups dups = {.n_cross = 0};
    split = malloc((size_t)ds.n);
    if (!split) {
        cli_error("out of memory");
        status = TH_EXIT_FAIL;
    } else if (th_plan_check(&cfg, &ds, label_col, &n_labels, &err) ||
               th_plan_split_dups(&cfg, &ds, label_col, n_labels, split, &dropped, &dups, &err)) {
        /* refuse: the groups it refused, before the error. */
        if (dups.n_cross) report_dups(&cfg, &ds, &dups);
        cli_error("%s", err.msg);
        status = TH_EXIT_FAIL;
    } else {
        printf("split of %s (%s, seed %llu)\n", cfg.data.path,
               cfg.data.split_mode == TH_SPLIT_MODE_PREDEFINED ? "predefined" : "by patient, stratified",
               (unsigned long long)cfg.seed);
        report(&ds, label_col, n_labels, split);
        if (dropped) printf("left out of val/test (data.on_leak: drop_from_eval): %d images\n", dropped);
        int first = -1, leaks = th_split_count_leaks(ds.n, (const char *const *)ds.patient_id, split, NULL, &first);
        if (leaks) {
            printf("leakage check: FAILED, %d patients in more than one split (first: %s)\n", leaks,
                   ds.patient_id[first]);
            status = TH_EXIT_FAIL;
        } else {
            printf("leakage check: passed, 0 patients in more than one split\n");
        }
        report_dups(&cfg, &ds, &dups);
    }
    th_plan_dups_free(&dups);
    free(split);
    th_dataset_close(&ds);
    MPI_Finalize();
    return status;
}

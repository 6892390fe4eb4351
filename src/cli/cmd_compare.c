/* cmd_compare.c - `thorax compare RUN_A RUN_B`: two runs' AUCs on the same
 * images, per label with DeLong's paired test and the paired patient
 * bootstrap. Serial: it reads the predictions thorax eval wrote. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "thorax/eval.h"

static void compare_usage(FILE *f)
{
    fprintf(f,
            "usage: thorax compare RUN_A RUN_B [--split val|test | --data F.h5] [--out DIR]\n"
            "                      [--bootstrap N] [--seed K]\n"
            "\n"
            "Compares two runs on the images both evaluated: reads RUN_A/eval/<split>/\n"
            "predictions.csv and RUN_B's (run thorax eval on each first), pairs images by\n"
            "name and labels by name, and reports per label the AUC of each run, the\n"
            "difference A - B, DeLong's paired test of it (z, two-sided p, 95%% CI) and a\n"
            "95%% CI from the paired bootstrap of patients (the same resampled patients\n"
            "for both runs). Prints a table and writes compare.json.\n"
            "\n"
            "options:\n"
            "  --split val|test   which evaluation to compare (default test)\n"
            "  --data F.h5        the evaluation of thorax eval --data F.h5 instead (eval/<F>/)\n"
            "  --out DIR          where compare.json goes (default\n"
            "                     RUN_A/compare/<RUN_B's name>_<split or F>/)\n"
            "  --bootstrap N      resamples of patients (default 2000; 0: DeLong only)\n"
            "  --seed K           the bootstrap's seed (default 42)\n"
            "  --log-format F     plain or json log lines (see thorax --help)\n"
            "  -h, --help         this help\n");
}

/* "[lo, hi]" with signs, or "-" when undefined. */
static void interval(char *buf, size_t cap, double lo, double hi)
{
    if (isfinite(lo) && isfinite(hi)) snprintf(buf, cap, "[%+.4f, %+.4f]", lo, hi);
    else snprintf(buf, cap, "-");
}

static void print_result(const th_compare_opts *o, const th_compare_result *r)
{
    printf("compare: %d images in both runs (A %d: %d left out; B %d: %d left out), %d patients\n", r->n_matched,
           r->n_a, r->n_a - r->n_matched, r->n_b, r->n_b - r->n_matched, r->n_patients);
    if (r->note[0]) printf("compare: %s\n", r->note);
    printf("%-20s %7s %7s %8s  %-20s %9s  %-20s\n", "label", "AUC A", "AUC B", "A - B", "DeLong 95% CI", "p",
           o->bootstrap > 0 ? "bootstrap 95% CI" : "");
    for (int k = 0; k < r->n_labels; k++) {
        const th_compare_label *c = &r->label[k];
        if (!isfinite(c->auc_a)) {
            printf("%-20.20s %s\n", c->label, c->reason ? c->reason : "undefined");
            continue;
        }
        char dl[48], bs[48], p[24];
        interval(dl, sizeof dl, c->lo, c->hi);
        interval(bs, sizeof bs, c->boot.lo, c->boot.hi);
        if (isfinite(c->p)) snprintf(p, sizeof p, "%.3g", c->p);
        else snprintf(p, sizeof p, "-");
        printf("%-20.20s %7.4f %7.4f %+8.4f  %-20s %9s  %-20s\n", c->label, c->auc_a, c->auc_b, c->diff, dl, p,
               o->bootstrap > 0 ? bs : "");
    }
    printf("compare: -> %s\n", r->out_path);
}

enum { OPT_SPLIT = 1, OPT_DATA, OPT_OUT, OPT_BOOTSTRAP, OPT_SEED };

static const cli_opt compare_opts[] = {{OPT_SPLIT, "split", "a value (val or test)"},
                                       {OPT_DATA, "data", "a value (a dataset file)"},
                                       {OPT_OUT, "out", "a value (a directory)"},
                                       {OPT_BOOTSTRAP, "bootstrap", "a value (resamples)"},
                                       {OPT_SEED, "seed", "a value"},
                                       {0, NULL, NULL}};

int cmd_compare(int argc, char **argv)
{
    th_compare_opts o = {.bootstrap = 2000, .seed = 42};
    const char *boot = NULL, *seed = NULL;
    cli_parser p;
    cli_parser_init(&p, "compare", argc, argv, compare_opts);
    const char *v;
    for (int id; (id = cli_next(&p, &v)) != CLI_END;) {
        switch (id) {
        case CLI_HELP: compare_usage(stdout); return TH_EXIT_OK;
        case CLI_BAD: return TH_EXIT_USAGE;
        case OPT_SPLIT: o.split = v; break;
        case OPT_DATA: o.data = v; break;
        case OPT_OUT: o.out_dir = v; break;
        case OPT_BOOTSTRAP: boot = v; break;
        case OPT_SEED: seed = v; break;
        case CLI_ARG:
            if (o.run_b) {
                cli_error("compare: unexpected argument '%s' (see thorax compare --help)", v);
                return TH_EXIT_USAGE;
            }
            *(o.run_a ? &o.run_b : &o.run_a) = v;
            break;
        }
    }
    if (!o.run_b) {
        compare_usage(stderr);
        return TH_EXIT_USAGE;
    }
    if (o.split && o.data) {
        cli_error("compare: give --split or --data, not both");
        return TH_EXIT_USAGE;
    }
    if (o.split && strcmp(o.split, "val") && strcmp(o.split, "test")) {
        cli_error("compare: --split must be val or test, got '%s'", o.split);
        return TH_EXIT_USAGE;
    }
    long num;
    if (boot) {
        if (cli_parse_int(boot, 0, 1000000, &num)) {
            cli_error("compare: --bootstrap must be an integer in [0, 1000000], got '%s'", boot);
            return TH_EXIT_USAGE;
        }
        o.bootstrap = (int)num;
    }
    if (seed) {
        if (cli_parse_int(seed, 0, LONG_MAX, &num)) {
            cli_error("compare: --seed must be a non-negative integer, got '%s'", seed);
            return TH_EXIT_USAGE;
        }
        o.seed = (uint64_t)num;
    }
    th_err err = {{0}};
    th_compare_result *res = malloc(sizeof *res);
    if (!res) {
        cli_error("compare: out of memory");
        return TH_EXIT_FAIL;
    }
    int status = TH_EXIT_OK;
    if (th_compare_run(&o, res, &err)) {
        cli_error("%s", err.msg);
        status = TH_EXIT_FAIL;
    } else {
        print_result(&o, res);
    }
    free(res);
    return status;
}

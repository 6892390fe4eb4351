/* model_card.c - MODEL_CARD.md of a run directory (see thorax/eval.h).
 *
 * Everything in the card is read back from the run directory and the
 * dataset file, so that the end of `thorax train` and every `thorax eval`
 * write the same card for the same files: config.yaml (name, network,
 * data), the dataset's index (size, fingerprint, split, leakage), best.h5
 * (parameters, best epoch), metrics.csv (epochs, time, ranks) and each
 * eval/<name>/metrics.md (the per-label metrics as eval computed them).
 */
#include "thorax/eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "thorax/config.h"
#include "thorax/data.h"
#include "thorax/util.h"

/* Labels with fewer positives than this in a split get a warning. */
enum { CARD_FEW_POSITIVES = 10 };

static const char *const split_names[3] = {"train", "val", "test"};

/* ## Data and ## Split: the file, its index, the split and the leakage check. */
static int card_data(th_strbuf *b, const th_config *cfg, th_strbuf *limits, th_err *err)
{
    th_dataset ds;
    if (th_dataset_open(&ds, cfg->data.path, th_comm_self(), err)) return -1;
    int label_col[TH_MAX_LABELS], n_labels = 0, dropped = 0, rc = -1;
    uint8_t *split = malloc((size_t)(ds.n > 0 ? ds.n : 1));
    th_split_tally t;
    th_plan_dups dups;
    memset(&t, 0, sizeof t);
    memset(&dups, 0, sizeof dups);
    if (!split) {
        th_errf(err, "out of memory");
        goto out;
    }
    if (th_plan_labels(cfg, &ds, label_col, &n_labels, err)) goto out;
    if (th_plan_split_dups(cfg, &ds, label_col, n_labels, split, &dropped, &dups, err)) goto out;
    if (th_split_count(&ds, label_col, n_labels, split, &t, err)) goto out;
    struct stat st;
    long long size = stat(cfg->data.path, &st) == 0 ? (long long)st.st_size : -1;
    char sha[65];
    th_dataset_index_sha256(&ds, sha);
    const char *base = strrchr(cfg->data.path, '/');
    th_strbuf_printf(b, "## Data\n\n- file: `%s` (%s)\n- size: %lld bytes\n", base ? base + 1 : cfg->data.path,
                     cfg->data.path, size);
    th_strbuf_printf(b, "- index SHA-256: `%s` (image names, patient IDs, label names, labels; see README)\n", sha);
    th_strbuf_printf(b, "- %d images of %dx%d pixels, %d labels in the file, %d used\n\n", ds.n, ds.h, ds.w,
                     ds.n_labels, n_labels);

    th_strbuf_printf(b, "## Split\n\n%s, seed %llu.\n\n| | train | val | test |\n|---|---:|---:|---:|\n",
                     cfg->data.split_mode == TH_SPLIT_MODE_PREDEFINED ? "Predefined by the file"
                                                                       : "By patient, stratified",
                     (unsigned long long)cfg->seed);
    th_strbuf_printf(b, "| patients | %ld | %ld | %ld |\n", t.patients[0], t.patients[1], t.patients[2]);
    th_strbuf_printf(b, "| images | %ld | %ld | %ld |\n", t.images[0], t.images[1], t.images[2]);
    for (int k = 0; k < n_labels; k++) {
        th_strbuf_printf(b, "| positives: %s |", ds.label_names[label_col[k]]);
        for (int s = 0; s < 3; s++) {
            long pos = t.pos[(size_t)s * n_labels + k];
            th_strbuf_printf(b, " %ld |", pos);
            if (s > 0 && pos < CARD_FEW_POSITIVES)
                th_strbuf_printf(limits, "- %s has %ld positive image%s in %s (fewer than %d): its %s metrics are "
                                         "uncertain.\n",
                                 ds.label_names[label_col[k]], pos, pos == 1 ? "" : "s", split_names[s],
                                 CARD_FEW_POSITIVES, split_names[s]);
        }
        th_strbuf_printf(b, "\n");
    }
    int first = -1, leaks = th_split_count_leaks(ds.n, (const char *const *)ds.patient_id, split, NULL, &first);
    if (leaks)
        th_strbuf_printf(b, "\nLeakage check: FAILED, %d patients in more than one split (first: %s).\n", leaks,
                         ds.patient_id[first]);
    else
        th_strbuf_printf(b, "\nLeakage check: passed, 0 patients in more than one split.\n");
    if (dropped)
        th_strbuf_printf(b, "Left out of val/test (data.on_leak: drop_from_eval): %d images.\n", dropped);
    if (dups.n_cross)
        th_strbuf_printf(b, "Duplicate check: %d groups of the same picture (%d images) across splits; %d copies "
                            "left out of later splits (data.on_duplicate); duplicates.csv lists them.\n",
                         dups.n_cross, dups.cross_images, dups.dropped);
    else
        th_strbuf_printf(b, "Duplicate check: passed, no picture in more than one split.\n");
    th_strbuf_printf(b, "\n");
    rc = 0;
out:
    th_plan_dups_free(&dups);
    th_split_tally_free(&t);
    free(split);
    th_dataset_close(&ds);
    return rc;
}

/* ## Network and ## Training: the config's layers, best.h5, metrics.csv. */
static int card_training(th_strbuf *b, const char *run_dir, const th_config *cfg, th_err *err)
{
    th_predictor *pr = calloc(1, sizeof *pr);
    if (!pr) return th_errf(err, "out of memory");
    if (th_predictor_open(pr, run_dir, "best", 1, err)) {
        free(pr);
        return -1;
    }
    th_strbuf_printf(b, "## Network\n\n- config: `%s`\n- input: %dx%dx%d\n- layers:", cfg->name, cfg->model.c,
                     cfg->model.h, cfg->model.w);
    for (int i = 0; i < cfg->model.n_layers; i++)
        th_strbuf_printf(b, "%s %s", i ? "," : "", th_layer_type_name(cfg->model.layers[i].type));
    th_strbuf_printf(b, "\n- parameters: %zu\n\n", pr->model.n_params);

    /* metrics.csv: epoch,step,lr,train_loss,val_loss,val_auc_macro,img_per_s,seconds,ranks,... */
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.csv", run_dir);
    th_err ignored;
    char *csv = th_read_file(path, NULL, &ignored);
    int epochs = 0, ranks = 0;
    double seconds = 0;
    for (const char *line = csv ? strchr(csv, '\n') : NULL; line && line[1]; line = strchr(line + 1, '\n')) {
        int epoch, r = 0;
        long step;
        double lr, tl, vl, auc, ips, sec;
        if (sscanf(line + 1, "%d,%ld,%lf,%lf,%lf,%lf,%lf,%lf,%d", &epoch, &step, &lr, &tl, &vl, &auc, &ips, &sec,
                   &r) < 8)
            continue;
        epochs++;
        seconds += sec;
        if (r > ranks) ranks = r;
    }
    free(csv);
    th_strbuf_printf(b, "## Training\n\n- epochs: %d (of %d configured)\n- training time: %.1f s (sum of "
                        "metrics.csv's seconds)\n",
                     epochs, cfg->train.epochs, seconds);
    if (ranks > 0) th_strbuf_printf(b, "- ranks: %d, %d images per rank per step\n", ranks, cfg->train.batch_per_rank);
    th_strbuf_printf(b, "- best epoch: %d (checkpoints/best.h5), validation macro AUC %.4f\n\n", pr->st.epoch,
                     pr->st.best_score);
    th_predictor_close(pr);
    free(pr);
    return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The first 256 names under eval/ (more evaluations than a card lists). */
typedef struct eval_names {
    char *v[256];
    int n;
} eval_names;

static int add_eval_name(void *ctx, const char *path, const char *name, const struct stat *st, th_err *err)
{
    (void)path, (void)st, (void)err;
    eval_names *en = ctx;
    if (en->n < 256 && (en->v[en->n] = strdup(name))) en->n++;
    return 0;
}

/* ## Evaluation: eval/<name>/metrics.md of every evaluation there is, in
 * name order (test, val, and external files). */
static void card_evals(th_strbuf *b, const char *run_dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/eval", run_dir);
    th_strbuf_printf(b, "## Evaluation\n\nEach as its last evaluation left it (checkpoints/best.h5 unless "
                        "`thorax eval --checkpoint last`), per image.\n\n");
    eval_names en = {.n = 0};
    th_err ignored;
    th_dir_each(path, add_eval_name, &en, &ignored); /* no eval/ yet: no evaluation */
    char **names = en.v;
    int n = en.n;
    qsort(names, (size_t)n, sizeof names[0], by_name);
    int found = 0;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/eval/%s/metrics.md", run_dir, names[i]);
        char *md = th_read_file(path, NULL, &ignored);
        if (md) {
            th_strbuf_printf(b, "### %s\n\n%s\n", names[i], md);
            found++;
        }
        free(md);
        free(names[i]);
    }
    if (!found) th_strbuf_printf(b, "No evaluation yet (`thorax eval %s`).\n\n", run_dir);
}

int th_model_card_write(const char *run_dir, th_err *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.yaml", run_dir);
    th_config *cfg = malloc(sizeof *cfg);
    if (!cfg) return th_errf(err, "out of memory");
    th_strbuf b = {0}, limits = {0};
    int rc = th_run_config_load(cfg, path, NULL, 0, err);
    if (!rc) {
        th_strbuf_printf(&b, "# Model card: %s\n\nWritten by Thorax %s from the files of `%s`.\n\n", cfg->name,
                         th_version(), run_dir);
        rc = card_data(&b, cfg, &limits, err);
    }
    if (!rc) rc = card_training(&b, run_dir, cfg, err);
    if (!rc) {
        card_evals(&b, run_dir);
        th_strbuf_printf(&b, "## Known limits\n\n"
                             "Trained and evaluated on one dataset file: the metrics describe images like its own "
                             "(its scanners, hospitals, population and labelling), not others; check on an external "
                             "set (`thorax eval --data`) and by subgroup (`thorax eval --by`) before any use. Labels "
                             "mined from reports are noisy, a high AUC may rest on shortcuts (markers, devices, view), "
                             "and operating points chosen on the validation split carry its prevalence: PPV and NPV "
                             "change with another population's. Not a medical device.\n\n");
        if (limits.len) th_strbuf_printf(&b, "Measured:\n\n%s", limits.data);
        snprintf(path, sizeof path, "%s/MODEL_CARD.md", run_dir);
        rc = b.failed || limits.failed ? th_errf(err, "out of memory writing %s", path)
                                       : th_write_file_atomic(path, b.data, b.len, err);
    }
    if (rc) th_err_prefix(err, "MODEL_CARD.md: ");
    th_strbuf_free(&b);
    th_strbuf_free(&limits);
    free(cfg);
    return rc;
}

/* rundir.c - the run directory's files (see run.h): split.csv, metrics.csv,
 * curves.png, config.yaml and the checkpoints, each written under a
 * temporary name and renamed into place; and resuming from last.h5. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run.h"
#include "thorax/render.h"
#include "thorax/train.h"
#include "schedule.h"
#include "thorax/data.h"

/* Rank 0 writes last.h5 mid-epoch so that --resume continues from this step. */
int run_save_midepoch(run *r, th_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoints/last.h5", r->dir);
    int rc = r->rank == 0 ? th_checkpoint_save(path, &r->model, &r->opt, &r->st, r->config_yaml, err) : 0;
    return th_dist_agree(r->comm, rc, err);
}


static int write_split_csv(run *r, th_err *err)
{
    th_strbuf b = {0};
    th_strbuf_printf(&b, "image,patient_id,split\n");
    for (int i = 0; i < r->ds.n; i++) {
        th_csv_field(&b, "", r->ds.image_name[i]);
        th_strbuf_printf(&b, ",");
        th_csv_field(&b, "", r->ds.patient_id[i]);
        th_strbuf_printf(&b, ",%s\n", th_split_name(r->split[i]));
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/split.csv", r->dir);
    int rc = b.failed ? th_errf(err, "out of memory writing %s", path)
                      : th_write_file_atomic(path, b.data, b.len, err);
    th_strbuf_free(&b);
    return rc;
}

/* duplicates.csv: every group of the same picture, and whether it stayed. */
static int write_duplicates_csv(run *r, th_err *err)
{
    th_strbuf b = {0};
    char path[4096];
    snprintf(path, sizeof path, "%s/duplicates.csv", r->dir);
    int rc = th_plan_dups_csv(&r->ds, &r->dups, r->split, &b) ? th_errf(err, "out of memory writing %s", path)
                                                               : th_write_file_atomic(path, b.data, b.len, err);
    th_strbuf_free(&b);
    return rc;
}

/* metrics.csv's header: the fixed columns, the job's ranks, then the
 * validation AUC of every label (val_auc_<label>, the label made safe as in
 * file names). */
static int metrics_header(run *r, th_err *err)
{
    const char *label[TH_MAX_LABELS];
    for (int k = 0; k < r->n_labels; k++) label[k] = r->cfg->data.labels[k];
    if (r->cfg->data.n_labels != r->n_labels)
        return th_errf(err, "metrics.csv: the config names %d labels but the run has %d", r->cfg->data.n_labels,
                       r->n_labels);
    char (*safe)[TH_SAFE_NAME_MAX] = malloc(sizeof *safe * (size_t)(r->n_labels + 1));
    if (!safe) return th_errf(err, "out of memory writing metrics.csv");
    int rc = th_safe_names(r->n_labels, label, safe, err);
    th_strbuf_printf(&r->metrics, "epoch,step,lr,train_loss,val_loss,val_auc_macro,img_per_s,seconds,ranks");
    for (int k = 0; !rc && k < r->n_labels; k++) th_strbuf_printf(&r->metrics, ",val_auc_%s", safe[k]);
    th_strbuf_printf(&r->metrics, "\n");
    free(safe);
    return rc;
}

/* metrics.csv as it stood at the checkpoint: the header and the rows of the
 * epochs it completed (a run stopped after writing later rows loses them). */
static int restore_metrics(run *r, const char *path, th_err *err)
{
    th_err ignored;
    if (metrics_header(r, err)) return -1;
    char *old = th_read_file(path, NULL, &ignored);
    for (char *line = old ? strchr(old, '\n') : NULL; line && line[1];) {
        char *row = line + 1;
        line = strchr(row, '\n');
        int len = line ? (int)(line - row) : (int)strlen(row);
        if (atoi(row) >= 1 && atoi(row) <= r->st.epoch) th_strbuf_printf(&r->metrics, "%.*s\n", len, row);
    }
    free(old);
    return 0;
}

/* Rank 0: the run directory's fixed files. */
int run_start_dir(run *r, th_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoints", r->dir);
    if (th_mkdirs(path, err)) return -1;
    snprintf(path, sizeof path, "%s/config.yaml", r->dir);
    if (th_write_file_atomic(path, r->config_yaml, strlen(r->config_yaml), err)) return -1;
    if (write_split_csv(r, err) || write_duplicates_csv(r, err)) return -1;
    snprintf(path, sizeof path, "%s/metrics.csv", r->dir);
    return r->opts->resume_from ? restore_metrics(r, path, err) : metrics_header(r, err);
}

/* Each row of split.csv ends in its split, which is never quoted. */
void run_count_split_csv(run *r)
{
    char path[4096];
    th_err ignored;
    snprintf(path, sizeof path, "%s/split.csv", r->dir);
    char *text = th_read_file(path, NULL, &ignored);
    int *images = &r->was_images, *train = &r->was_train;
    *images = *train = text ? 0 : -1;
    for (char *line = text ? strchr(text, '\n') : NULL; line && line[1];) {
        char *row = line + 1;
        line = strchr(row, '\n');
        size_t len = line ? (size_t)(line - row) : strlen(row);
        ++*images;
        *train += len >= 6 && !strncmp(row + len - 6, ",train", 6);
    }
    free(text);
}

/* Every rank: the state of the checkpoint to continue from, after checking
 * that the experiment is the same one (seed, data and model unchanged). */
int run_resume(run *r, th_err *err)
{
    const char *path = r->opts->resume_from;
    /* The stages too: the checkpoint's optimiser state is that of the
     * layers its run trained, and its epoch says which stage it is in. */
    static const char *const fixed[] = {"seed", "data", "model", "train.freeze", "train.unfreeze", NULL};
    th_config *was = malloc(sizeof *was);
    char *yaml = th_checkpoint_read_config(path, err);
    int rc = was && yaml ? 0 : -1;
    if (!was) th_errf(err, "out of memory");
    if (!rc && th_run_config_load_string(was, yaml, path, NULL, 0, err)) rc = th_err_prefix(err, "%s: ", path);
    if (!rc && th_config_compare(was, r->cfg, fixed, err))
        rc = th_err_prefix(err, "cannot resume from %s: the experiment changed: ", path);
    if (!rc && !r->staged) rc = th_checkpoint_load(path, &r->model, &r->opt, &r->st, err);
    /* A staged run learns its stage from the checkpoint's epoch first. */
    if (!rc && r->staged) rc = th_checkpoint_load(path, &r->model, NULL, &r->st, err);
    if (!rc && r->staged) {
        int thawed = r->cfg->train.unfreeze.epoch > 0 && r->st.epoch >= r->cfg->train.unfreeze.epoch;
        rc = run_set_stage(r, thawed, err);
        if (!rc) rc = th_checkpoint_load_optim(path, &r->model, &r->opt, err);
    }
    free(yaml);
    free(was);
    return rc;
}

/* Rank 0: curves.png, the training curves so far: loss (train, val) against
 * epoch, val macro AUC against epoch, and the val AUC of every label (one
 * panel with a line per label up to CURVES_OVERLAY_MAX labels, else one
 * small panel per label); the best epoch (best.h5's) dotted in the AUC
 * panels. Read back from metrics.csv's rows so that a resumed run draws its
 * whole history. */
enum { CURVES_OVERLAY_MAX = 4, CURVES_GRID_COLS = 4 };

static int write_curves(run *r, th_err *err)
{
    enum { MAX_EPOCHS = 100000, FIXED = 9 };  /* epoch .. ranks */
    int n = 0, L = r->n_labels;
    for (const char *c = r->metrics.data; c && *c; c++) n += *c == '\n';
    n = n > 1 ? n - 1 : 0;
    if (n > MAX_EPOCHS) n = MAX_EPOCHS;
    /* v [FIXED + L, n]: column j of row k at v[j * n + k]. */
    double *v = malloc(sizeof(double) * (size_t)(FIXED + L) * (size_t)(n + 1));
    if (!v) return th_errf(err, "out of memory drawing curves.png");
    const char *line = strchr(r->metrics.data, '\n');
    for (int k = 0; k < n && line; k++) {
        const char *c = line + 1;
        for (int j = 0; j < FIXED + L; j++) {
            char *end;
            v[(size_t)j * n + k] = strtod(c, &end);
            if (end == c || (*end != ',' && j + 1 < FIXED + L)) {
                for (; j < FIXED + L; j++) v[(size_t)j * n + k] = NAN;
                break;
            }
            c = end + 1;
        }
        line = strchr(line + 1, '\n');
    }
    const double *ep = v, *tl = v + 3 * n, *vl = v + 4 * n, *auc = v + 5 * n, *lab = v + (size_t)FIXED * n;
    int grid = L > CURVES_OVERLAY_MAX;
    int panels = 2 + (grid ? L : 1), cols = grid ? CURVES_GRID_COLS : panels, rows = (panels + cols - 1) / cols;
    th_figure *f = th_figure_new_grid(cols * (grid ? 380 : 560), rows * (grid ? 320 : 560), rows, cols, r->cfg->name,
                                      err);
    int rc = -1;
    if (f) {
        double best = r->st.best_epoch > 0 ? r->st.best_epoch : NAN;
        for (int k = 0; k < panels; k++) {
            th_plot_integer_x(th_figure_panel(f, k));
            if (k > 0) th_plot_vline(th_figure_panel(f, k), best);
        }
        th_plot *loss = th_figure_panel(f, 0), *score = th_figure_panel(f, 1);
        th_plot_labels(loss, "Loss", "epoch", r->cfg->train.loss == TH_LOSS_WEIGHTED_BCE ? "weighted BCE" : "loss");
        th_plot_series(loss, n, ep, tl, "train", TH_PLOT_MARKERS);
        th_plot_series(loss, n, ep, vl, "val", TH_PLOT_MARKERS);
        th_plot_legend(loss, TH_LEGEND_AUTO);
        th_plot_labels(score, "Validation macro AUC", "epoch", "AUC");
        th_plot_series(score, n, ep, auc, "val AUC", TH_PLOT_MARKERS | TH_PLOT_COLOR(2));
        char text[96];
        snprintf(text, sizeof text, "best epoch %d", r->st.best_epoch);
        if (r->st.best_epoch > 0) th_plot_series(score, 0, NULL, NULL, text, TH_PLOT_NO_LINE);
        th_plot_legend(score, TH_LEGEND_AUTO);
        for (int k = 0; k < L; k++) {
            th_plot *p = th_figure_panel(f, grid ? 2 + k : 2);
            if (grid) th_plot_labels(p, r->cfg->data.labels[k], "epoch", "val AUC");
            else if (k == 0) th_plot_labels(p, "Validation AUC per label", "epoch", "AUC");
            th_plot_series(p, n, ep, lab + (size_t)k * n, grid ? NULL : r->cfg->data.labels[k],
                           TH_PLOT_MARKERS | (grid ? TH_PLOT_COLOR(0) : 0));
        }
        if (!grid) th_plot_legend(th_figure_panel(f, 2), TH_LEGEND_AUTO);
        char path[4096];
        snprintf(path, sizeof path, "%s/curves.png", r->dir);
        rc = th_figure_write_png(f, path, err);
        th_figure_free(f);
    }
    free(v);
    return rc;
}

/* Rank 0: metrics.csv, curves.png and the checkpoints after an epoch. */
int run_end_epoch_files(run *r, const th_epoch_report *e, th_err *err)
{
    char path[4096];
    th_strbuf_printf(&r->metrics, "%d,%ld,%.6g,%.6f,%.6f,%.6f,%.1f,%.2f,%d", e->epoch, e->step, (double)e->lr,
                     e->train_loss, e->val_loss, e->val_auc, e->img_per_s, e->seconds, r->size);
    for (int k = 0; k < r->n_labels; k++) th_strbuf_printf(&r->metrics, ",%.6f", r->val_auc[k]);
    th_strbuf_printf(&r->metrics, "\n");
    snprintf(path, sizeof path, "%s/metrics.csv", r->dir);
    if (r->metrics.failed) return th_errf(err, "out of memory writing %s", path);
    if (th_write_file_atomic(path, r->metrics.data, r->metrics.len, err)) return -1;
    if (write_curves(r, err)) return -1;
    snprintf(path, sizeof path, "%s/checkpoints/last.h5", r->dir);
    if (th_checkpoint_save(path, &r->model, &r->opt, &r->st, r->config_yaml, err)) return -1;
    if (e->is_best) {
        snprintf(path, sizeof path, "%s/checkpoints/best.h5", r->dir);
        if (th_checkpoint_save(path, &r->model, &r->opt, &r->st, r->config_yaml, err)) return -1;
    }
    return 0;
}

int th_train_place(const th_config *cfg, const char *resume, th_run_place *p, th_err *err)
{
    memset(p, 0, sizeof *p);
    int named = resume && strcmp(resume, "auto");
    if (named) snprintf(p->dir, sizeof p->dir, "%s", resume);
    else if (th_child_path(p->dir, sizeof p->dir, cfg->runtime.out_dir, cfg->name, "the run name", err)) return -1;
    snprintf(p->last, sizeof p->last, "%s/checkpoints/last.h5", p->dir);
    p->resuming = access(p->last, F_OK) == 0;
    if (p->resuming && !resume)
        return th_errf(err, "%s already holds a run (%s); continue it with --resume auto, or choose another name with "
                            "--set name=...",
                       p->dir, p->last);
    if (!p->resuming && named) return th_errf(err, "--resume %s: no checkpoint %s to continue from", resume, p->last);
    return 0;
}

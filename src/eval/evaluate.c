/* evaluate.c - the evaluation phase (see thorax/eval.h).
 *
 * Every rank: the run's config and checkpoint, the dataset index, its share
 * of the split (whole patients, read with parallel HDF5), predictions.
 * Rank 0: the gathered predictions put back in dataset order, the metrics and
 * the result files. Failures on any rank are agreed on before the next
 * collective, so no rank waits forever.
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include "thorax/eval.h"
#include "eval_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thorax/config.h"
#include "thorax/data.h"
#include "thorax/dist.h"
#include "thorax/nn.h"
#include "thorax/train.h"

typedef struct eval {
    const th_eval_opts *opts;
    th_comm comm;
    int rank, size;
    th_predictor run;
    th_config *cfg;             /* run.cfg */
    const char *split_name;     /* "val", "test", or NULL for an external file */
    th_dataset ds;
    int ds_open;
    /* The labels evaluated: model output out_col[k] against file column file_col[k]. */
    int n_eval;
    int out_col[TH_MAX_LABELS], file_col[TH_MAX_LABELS];
    uint8_t *split;             /* [N] */
    int *owner;                 /* [N] */
    th_shard shard;
    float *x, *p_model, *p_eval;
    char **meta;                /* [N] /meta/<opts->by>, or NULL */
} eval;

/* The run's labels against this dataset's columns. For the run's own file
 * every label must be there; an external file may lack some, which are left
 * out and named in the result's note. */
static int match_labels(eval *e, th_eval_result *res, th_err *err)
{
    const th_config *cfg = e->cfg;
    if (!e->opts->data) {
        int n;
        /* The run's own file: the checks training made before its first step. */
        if (th_plan_check(cfg, &e->ds, e->file_col, &n, err)) return -1;
        e->n_eval = n;
        for (int k = 0; k < n; k++) e->out_col[k] = k;
        return 0;
    }
    size_t used = 0;
    for (int k = 0; k < cfg->data.n_labels; k++) {
        int col = th_dataset_label_index(&e->ds, cfg->data.labels[k]);
        if (col >= 0) {
            e->out_col[e->n_eval] = k;
            e->file_col[e->n_eval++] = col;
        } else if (used < sizeof res->note - 64) {
            const char *lead = used ? ", " : "labels missing from the file, not evaluated: ";
            used += (size_t)snprintf(res->note + used, sizeof res->note - used, "%s%s", lead, cfg->data.labels[k]);
        }
    }
    if (e->n_eval == 0)
        return th_errf(err, "%s has none of the run's labels (%s%s)", e->ds.path, cfg->data.labels[0],
                       cfg->data.n_labels > 1 ? ", ..." : "");
    return 0;
}

/* Rank 0: which images to evaluate and which rank predicts each. */
static int plan(eval *e, int which, th_err *err)
{
    int n = e->ds.n;
    if (e->opts->data) {
        memset(e->split, which, (size_t)n);
    } else {
        int col[TH_MAX_LABELS], L;
        if (th_plan_labels(e->cfg, &e->ds, col, &L, err)) return -1;
        /* The same split as training: a function of the config and the file. */
        if (th_plan_split(e->cfg, &e->ds, col, L, e->split, NULL, err)) return -1;
    }
    return th_shard_by_patient(n, (const char *const *)e->ds.patient_id, e->split, which, e->size, e->owner, err);
}

static int setup(eval *e, int *which, th_err *err)
{
    const th_eval_opts *o = e->opts;
    /* One image per forward until the shares are known (th_plan_batch). */
    if (th_predictor_open(&e->run, o->run_dir, o->checkpoint, 1, err)) return -1;
    e->cfg = e->run.cfg;
    e->split_name = o->data ? NULL : o->split ? o->split : e->cfg->eval.split;
    *which = TH_SPLIT_TEST;
    if (e->split_name && !strcmp(e->split_name, "val")) *which = TH_SPLIT_VAL;
    else if (e->split_name && strcmp(e->split_name, "test"))
        return th_errf(err, "--split must be val or test, got '%s'", e->split_name);
    return 0;
}

/* Where the files go: eval/<split>/, or eval/data-<stem>-<hash>/ for an
 * external file. */
static int out_dir(const eval *e, char *out, size_t cap, th_err *err)
{
    char name[TH_SAFE_NAME_MAX + 16], eval_dir[4096];
    snprintf(eval_dir, sizeof eval_dir, "%s/eval", e->opts->run_dir);
    if (!e->split_name && eval_data_dir_name(e->opts->data, name, sizeof name, err)) return -1;
    return th_child_path(out, cap, eval_dir, e->split_name ? e->split_name : name, "the evaluation", err);
}

int eval_data_dir_name(const char *path, char *out, size_t cap, th_err *err)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 3 && !strcmp(base + n - 3, ".h5")) n -= 3;
    char stem[TH_SAFE_NAME_MAX], safe[TH_SAFE_NAME_MAX];
    if (n >= sizeof stem) n = sizeof stem - 1;
    memcpy(stem, base, n);
    stem[n] = '\0';
    th_safe_name(stem, safe, sizeof safe);
    char *abs = realpath(path, NULL), hex[65];
    th_sha256 h;
    th_sha256_init(&h);
    th_sha256_update(&h, abs ? abs : path, strlen(abs ? abs : path));
    th_sha256_final(&h, hex);
    free(abs);
    if (snprintf(out, cap, "data-%s-%.8s", safe, hex) >= (int)cap)
        return th_errf(err, "--data %s: its name is too long for a directory", path);
    return 0;
}

static const char *checkpoint_name(const eval *e)
{
    return e->opts->checkpoint ? e->opts->checkpoint : "best";
}

static void thresholds_path(const eval *e, char *out, size_t cap)
{
    snprintf(out, cap, "%s/eval/val/thresholds.json", e->opts->run_dir);
}

/* Rank 0, evaluating val: the temperatures (when calibrating) fitted on the
 * raw scores p_raw [n, L], p [n, L] made from them, and the operating
 * points chosen on p at image level and at patient level (max over the
 * patient's images), into t. */
static int choose_on_val(const eval *e, int n, int L, const char *const *label, const char *const *patient,
                         const float *p_raw, float *p, const uint8_t *y, th_thresholds *t, th_err *err)
{
    const th_config *cfg = e->cfg;
    memset(t, 0, sizeof *t);
    snprintf(t->checkpoint, sizeof t->checkpoint, "%s", checkpoint_name(e));
    t->epoch = e->run.st.epoch;
    t->step = e->run.st.step;
    snprintf(t->rule, sizeof t->rule, "%s", cfg->eval.threshold);
    snprintf(t->calibrate, sizeof t->calibrate, "%s", th_calibrate_names[cfg->eval.calibrate]);
    t->l = L;
    for (int k = 0; k < L; k++) {
        snprintf(t->label[k], sizeof t->label[k], "%s", label[k]);
        t->temperature[k] = cfg->eval.calibrate == TH_CALIBRATE_TEMPERATURE ? th_temperature_fit(n, p_raw + k, y + k, L)
                                                                             : 1;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < L; k++) {
            size_t at = (size_t)i * L + k;
            p[at] = cfg->eval.calibrate == TH_CALIBRATE_TEMPERATURE ? th_temperature_apply(p_raw[at], t->temperature[k])
                                                                    : p_raw[at];
        }
    int *patient_of = malloc(sizeof(int) * (size_t)(n + 1));
    int np = patient_of ? th_patients_group(n, patient, patient_of) : -1;
    float *pp = np >= 0 ? malloc(sizeof(float) * (size_t)(np + 1) * L) : NULL;
    uint8_t *py = np >= 0 ? malloc((size_t)(np + 1) * L) : NULL;
    int rc = pp && py ? 0 : th_errf(err, "out of memory grouping %d images by patient", n);
    if (!rc) rc = th_metrics_by_patient(n, L, p, y, patient_of, np, pp, py, err);
    for (int k = 0; !rc && k < L; k++) {
        rc = th_threshold_choose(n, p + k, y + k, L, cfg->eval.threshold_rule, cfg->eval.threshold_value,
                                 &t->threshold[k], err);
        if (!rc)
            rc = th_threshold_choose(np, pp + k, py + k, L, cfg->eval.threshold_rule, cfg->eval.threshold_value,
                                     &t->threshold_patient[k], err);
    }
    free(patient_of);
    free(pp);
    free(py);
    return rc;
}

/* Rank 0, evaluating test or another file: val's choice for each label
 * evaluated, and p [n, L] calibrated with val's temperatures. */
static int read_val_choice(const eval *e, int n, int L, const char *const *label, const float *p_raw, float *p,
                           th_thresholds *t, th_err *err)
{
    char path[2100];
    thresholds_path(e, path, sizeof path);
    th_thresholds *val = malloc(sizeof *val);
    if (!val) return th_errf(err, "out of memory reading %s", path);
    int rc = th_thresholds_read(path, val, err);
    *t = *val;
    t->l = L;
    for (int k = 0; !rc && k < L; k++) {
        int j = 0;
        while (j < val->l && strcmp(val->label[j], label[k])) j++;
        if (j == val->l) {
            rc = th_errf(err, "%s has no threshold for label %s", path, label[k]);
            break;
        }
        snprintf(t->label[k], sizeof t->label[k], "%s", label[k]);
        t->threshold[k] = val->threshold[j];
        t->threshold_patient[k] = val->threshold_patient[j];
        t->temperature[k] = val->temperature[j];
    }
    for (int i = 0; !rc && i < n; i++)
        for (int k = 0; k < L; k++) {
            size_t at = (size_t)i * L + k;
            p[at] = e->cfg->eval.calibrate == TH_CALIBRATE_TEMPERATURE
                        ? th_temperature_apply(p_raw[at], t->temperature[k])
                        : p_raw[at];
        }
    free(val);
    return rc;
}

/* Rank 0: whether eval/val/thresholds.json was made with this checkpoint
 * (name, epoch, step), rule and calibration. */
static int val_choice_current(const eval *e)
{
    th_thresholds *t = malloc(sizeof *t);
    int ok = t && th_thresholds_current(e->opts->run_dir, checkpoint_name(e), &e->run.st, e->cfg, t);
    free(t);
    return ok;
}

/* Test and external data apply val's operating points: when val has none
 * for this checkpoint and config, it is evaluated first (collective, before
 * this evaluation opens the dataset). */
static int ensure_val_choice(eval *e, th_err *err)
{
    int missing = e->rank == 0 && !val_choice_current(e);
    if (th_dist_bcast(e->comm, 0, &missing, sizeof missing, err)) return -1;
    if (!missing) return 0;
    th_eval_opts vo = {
        .run_dir = e->opts->run_dir, .split = "val", .checkpoint = e->opts->checkpoint, .stop = e->opts->stop};
    th_eval_result vr;
    int rc = th_eval_run(&vo, e->comm, &vr, err);
    if (rc < 0) return th_err_prefix(err, "choosing the operating points on val: ");
    return rc;
}

/* Rank 0: the gathered rows (rank order) back in dataset order, and the files. */
static int write_results(eval *e, int which, const float *p_gathered, th_eval_result *res, th_err *err)
{
    int n = e->ds.n, total = 0, L = e->n_eval, rc = -1;
    for (int i = 0; i < n; i++) total += e->split[i] == which;
    int *order = malloc(sizeof(int) * (size_t)(total + 1)), *pos_of_row = malloc(sizeof(int) * (size_t)n);
    float *p = malloc(sizeof(float) * (size_t)(total + 1) * L);
    float *p_raw = malloc(sizeof(float) * (size_t)(total + 1) * L);
    th_thresholds *t = malloc(sizeof *t);
    uint8_t *y = malloc((size_t)(total + 1) * L);
    const char **image = malloc(sizeof(char *) * (size_t)(total + 1));
    const char **patient = malloc(sizeof(char *) * (size_t)(total + 1));
    const char **group = malloc(sizeof(char *) * (size_t)(total + 1));
    const char *label[TH_MAX_LABELS];
    if (!order || !pos_of_row || !p || !p_raw || !t || !y || !image || !patient || !group) {
        th_errf(err, "out of memory writing %d predictions", total);
        goto out;
    }
    th_shard_gather_order(n, e->split, e->owner, which, e->size, order);
    for (int k = 0; k < total; k++) pos_of_row[order[k]] = k;
    for (int i = 0, j = 0; i < n; i++) {
        if (e->split[i] != which) continue;
        memcpy(p_raw + (size_t)j * L, p_gathered + (size_t)pos_of_row[i] * L, sizeof(float) * (size_t)L);
        for (int k = 0; k < L; k++) y[(size_t)j * L + k] = e->ds.labels[(size_t)i * e->ds.n_labels + e->file_col[k]];
        image[j] = e->ds.image_name[i];
        if (e->meta) group[j] = e->meta[i];
        patient[j] = e->ds.patient_id[i];
        j++;
    }
    for (int k = 0; k < L; k++) label[k] = e->cfg->data.labels[e->out_col[k]];
    int on_val = e->split_name && !strcmp(e->split_name, "val");
    if (on_val ? choose_on_val(e, total, L, label, patient, p_raw, p, y, t, err)
               : read_val_choice(e, total, L, label, p_raw, p, t, err))
        goto out;
    int calibrated = e->cfg->eval.calibrate == TH_CALIBRATE_TEMPERATURE;
    th_eval_data d = {.n = total, .l = L, .label = label, .image = image, .patient_id = patient, .p = p, .y = y,
                      .p_raw = calibrated ? p_raw : NULL, .bootstrap = e->cfg->eval.bootstrap,
                      .bootstrap_seed = e->cfg->seed, .overlap = res->external ? &res->overlap : NULL};
    th_eval_applied ap = {.rule = e->cfg->eval.threshold, .chosen_on = "val", .threshold = t->threshold,
                          .threshold_patient = t->threshold_patient, .temperature = calibrated ? t->temperature : NULL};
    th_metrics_macro macro = {0};
    if (out_dir(e, res->out_dir, sizeof res->out_dir, err)) goto out;
    const char *title = e->split_name ? e->split_name : strrchr(res->out_dir, '/') + 1;
    /* Every file goes to a stage that replaces eval/<name>/'s files only
     * once all are written: an evaluation that fails midway leaves the
     * previous one whole, not new predictions beside old metrics. */
    char stage[sizeof res->out_dir + 16] = "", path[sizeof stage + 32];
    rc = th_stage_path(res->out_dir, NULL, stage, sizeof stage, err);
    if (!rc) rc = th_stage_begin(stage, err);
    if (!rc)
        rc = th_report_write_eval_applied(stage, title, &d, e->opts->patient_level ? TH_REPORT_PATIENT : 0, &ap,
                                          &macro, err);
    if (!rc && on_val) {
        /* thresholds_path's file: val's directory is res->out_dir. */
        snprintf(path, sizeof path, "%s/thresholds.json", stage);
        rc = th_thresholds_write(path, t, err);
    }
    if (!rc && e->meta) {
        rc = th_report_write_by(stage, e->opts->by, title, &d, group, &ap, path, sizeof path, err);
        snprintf(res->by_md, sizeof res->by_md, "%s%s", res->out_dir, path + strlen(stage));
    }
    if (!rc) rc = th_stage_commit(stage, res->out_dir, err);
    else th_stage_discard(stage);
    res->n_images = total;
    res->n_labels = L;
    res->n_defined = macro.n_defined;
    res->macro_auc = macro.auc;
    int *patient_of = malloc(sizeof(int) * (size_t)(total + 1));
    res->n_patients = patient_of ? th_patients_group(total, patient, patient_of) : -1;
    free(patient_of);
out:
    free(order);
    free(pos_of_row);
    free(p);
    free(p_raw);
    free(t);
    free(y);
    free(image);
    free(patient);
    free(group);
    return rc;
}

/* This rank's share of the split in memory and the buffers to predict it. */
static int load_share(eval *e, int which, th_err *err)
{
    const th_config *cfg = e->cfg;
    th_model *m = &e->run.model;
    int L_model = cfg->data.n_labels;
    if (th_shard_load(&e->shard, &e->ds, e->split, e->owner, which, e->rank, e->file_col, e->n_eval, 1, err))
        return -1;
    int n = e->shard.n;
    e->x = malloc(sizeof(float) * (size_t)m->max_batch * cfg->model.h * cfg->model.w);
    e->p_model = malloc(sizeof(float) * (size_t)(n + 1) * L_model);
    e->p_eval = malloc(sizeof(float) * (size_t)(n + 1) * e->n_eval);
    if (!e->x || !e->p_model || !e->p_eval) return th_errf(err, "out of memory predicting %d images", n);
    return 0;
}

/* Collective: predicts the share (load_share's) polling opts->stop, and keeps
 * the columns evaluated. Returns 0 or TH_TRAIN_STOPPED. */
static int predict_share(eval *e)
{
    const th_config *cfg = e->cfg;
    int n = e->shard.n, L_model = cfg->data.n_labels;
    th_stop_poll poll = e->opts->stop;
    poll.on_progress = e->opts->on_progress;
    poll.progress_ctx = e->opts->progress_ctx;
    if (th_predict_share(&e->run.model, &e->run.input, cfg->train.loss, e->shard.img, NULL, n, NULL, NULL, e->x,
                         e->p_model, e->comm, &poll, NULL))
        return TH_TRAIN_STOPPED;
    for (int j = 0; j < n; j++)
        for (int k = 0; k < e->n_eval; k++)
            e->p_eval[(size_t)j * e->n_eval + k] = e->p_model[(size_t)j * L_model + e->out_col[k]];
    return 0;
}

static int cmp_digest(const void *a, const void *b)
{
    return memcmp(a, b, TH_IMAGE_DIGEST);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Rank 0: the patients and images of ext (digests ext_dig [ext->n, D]) that
 * are in the training split of train (split [train->n], digests train_dig).
 * Patients by ID, images by pixel digest: a copy under another name counts. */
static int count_overlap(const th_dataset *ext, const uint8_t *ext_dig, const th_dataset *train,
                         const uint8_t *split, const uint8_t *train_dig, th_overlap *o, th_err *err)
{
    int m = 0;
    const char **pat = malloc(sizeof(char *) * (size_t)(train->n + 1));
    const char **mine = malloc(sizeof(char *) * (size_t)(ext->n + 1));
    uint8_t *dig = malloc((size_t)(train->n + 1) * TH_IMAGE_DIGEST);
    if (!pat || !mine || !dig) {
        free(pat);
        free(mine);
        free(dig);
        return th_errf(err, "out of memory comparing %s with the training data", ext->path);
    }
    for (int i = 0; i < train->n; i++)
        if (split[i] == TH_SPLIT_TRAIN) {
            pat[m] = train->patient_id[i];
            memcpy(dig + (size_t)m * TH_IMAGE_DIGEST, train_dig + (size_t)i * TH_IMAGE_DIGEST, TH_IMAGE_DIGEST);
            m++;
        }
    qsort(pat, (size_t)m, sizeof *pat, cmp_str);
    qsort(dig, (size_t)m, TH_IMAGE_DIGEST, cmp_digest);
    for (int i = 0; i < ext->n; i++) mine[i] = ext->patient_id[i];
    qsort(mine, (size_t)ext->n, sizeof *mine, cmp_str);
    memset(o, 0, sizeof *o);
    for (int i = 0; i < ext->n; i++) {
        int first = i == 0 || strcmp(mine[i], mine[i - 1]);
        if (first && bsearch(&mine[i], pat, (size_t)m, sizeof *pat, cmp_str)) o->patients++;
        if (bsearch(ext_dig + (size_t)i * TH_IMAGE_DIGEST, dig, (size_t)m, TH_IMAGE_DIGEST, cmp_digest))
            o->images++;
    }
    free(pat);
    free(mine);
    free(dig);
    return 0;
}

/* Collective, for eval --data: what the external file shares with the run's
 * training split. The run's own data file is opened, pinned to the
 * checkpoint's fingerprint (without it the training split is unknown) and
 * hashed whole, as the external file is: each file read once more. An
 * external file holding exactly the run's images is refused: that is the
 * run's own data, whose held-out images are evaluated with --split. */
static int measure_overlap(eval *e, th_eval_result *res, th_err *err)
{
    const th_config *cfg = e->cfg;
    th_dataset train;
    th_data_fingerprint fp_ext, fp_train;
    int open = 0;
    uint8_t *ext_dig = NULL, *train_dig = NULL, *split = NULL;
    int rc = -1;
    ext_dig = e->rank == 0 ? malloc((size_t)(e->ds.n + 1) * TH_IMAGE_DIGEST) : NULL;
    if (th_dist_agree(e->comm, e->rank == 0 && !ext_dig ? th_errf(err, "out of memory") : 0, err)) goto out;
    if (th_dataset_fingerprint(&e->ds, e->comm, &fp_ext, ext_dig, err)) goto out;
    if (th_dataset_open(&train, cfg->data.path, e->comm, err)) {
        th_err_prefix(err, "measuring what %s shares with the training data: ", e->ds.path);
        goto out;
    }
    open = 1;
    train_dig = e->rank == 0 ? malloc((size_t)(train.n + 1) * TH_IMAGE_DIGEST) : NULL;
    split = e->rank == 0 ? malloc((size_t)train.n + 1) : NULL;
    if (th_dist_agree(e->comm, e->rank == 0 && (!train_dig || !split) ? th_errf(err, "out of memory") : 0, err))
        goto out;
    if (th_dataset_fingerprint(&train, e->comm, &fp_train, train_dig, err)) goto out;
    if (th_plan_pin_match(e->run.st.data_fingerprint, e->run.ckpt, &train, &fp_train, err)) goto out;
    if (fp_ext.images == fp_train.images && !strcmp(fp_ext.pixels, fp_train.pixels)) {
        th_errf(err, "%s holds the very images the run %s was trained and validated on (%s: the same %ld images, "
                "pixel for pixel): that is not external validation; evaluate the run's held-out images with "
                "--split test or --split val", e->ds.path, e->opts->run_dir, train.path, fp_ext.images);
        goto out;
    }
    int local = 0;
    if (e->rank == 0) {
        int col[TH_MAX_LABELS], L;
        local = th_plan_labels(cfg, &train, col, &L, err);
        if (!local) local = th_plan_split(cfg, &train, col, L, split, NULL, err);
        if (!local) local = count_overlap(&e->ds, ext_dig, &train, split, train_dig, &res->overlap, err);
    }
    if (th_dist_agree(e->comm, local, err)) goto out;
    if (th_dist_bcast(e->comm, 0, &res->overlap, sizeof res->overlap, err)) goto out;
    res->external = 1;
    rc = 0;
out:
    if (open) th_dataset_close(&train);
    free(ext_dig);
    free(train_dig);
    free(split);
    return rc;
}

/* The largest share any rank predicts: the batch th_plan_batch clamps to. */
static int largest_share(const eval *e, int which)
{
    int *count = calloc((size_t)e->size, sizeof *count), most = 0;
    if (!count) return 1;
    for (int i = 0; i < e->ds.n; i++)
        if (e->split[i] == which && e->owner[i] >= 0) count[e->owner[i]]++;
    for (int k = 0; k < e->size; k++)
        if (count[k] > most) most = count[k];
    free(count);
    return most;
}

int th_eval_run(const th_eval_opts *opts, th_comm comm, th_eval_result *res, th_err *err)
{
    eval e;
    memset(&e, 0, sizeof e);
    memset(res, 0, sizeof *res);
    res->macro_auc = NAN;
    e.opts = opts;
    e.comm = comm;
    e.rank = th_dist_rank(comm);
    e.size = th_dist_size(comm);
    int which = TH_SPLIT_TEST;
    /* Every rank reads the same config and sees the same files: these agree. */
    int rc = setup(&e, &which, err);
    if (!rc && which != TH_SPLIT_VAL) rc = ensure_val_choice(&e, err);
    if (!rc) {
        rc = th_dataset_open(&e.ds, opts->data ? opts->data : e.cfg->data.path, comm, err);
        e.ds_open = rc == 0;
    }
    /* The run's own file must be the one it trained on; another file is
     * measured against it. */
    th_data_fingerprint fp;
    if (!rc && !opts->data) rc = th_plan_pin(&e.ds, e.run.st.data_fingerprint, e.run.ckpt, comm, &fp, err);
    if (!rc && opts->data) rc = th_plan_check_input(e.cfg, &e.ds, err);
    if (!rc && opts->data) rc = measure_overlap(&e, res, err);
    if (!rc) rc = match_labels(&e, res, err);
    if (!rc && opts->by) rc = th_dataset_read_meta(&e.ds, opts->by, comm, &e.meta, err);
    if (!rc) {
        e.split = malloc((size_t)e.ds.n);
        e.owner = malloc(sizeof(int) * (size_t)e.ds.n);
        int local = e.split && e.owner ? 0 : th_errf(err, "out of memory");
        if (!local && e.rank == 0) local = plan(&e, which, err);
        rc = th_dist_agree(comm, local, err);
    }
    if (!rc) {
        rc = th_dist_bcast(comm, 0, e.split, (size_t)e.ds.n, err);
        if (!rc) rc = th_dist_bcast(comm, 0, e.owner, sizeof(int) * (size_t)e.ds.n, err);
        int total = 0;
        for (int i = 0; !rc && i < e.ds.n; i++) total += e.split[i] == which;
        if (!rc && total == 0) rc = th_errf(err, "the %s split of %s is empty", e.split_name ? e.split_name : "", e.ds.path);
    }
    /* As training sized its model: no larger than the largest share. */
    if (!rc) {
        int batch = th_plan_batch(e.cfg, largest_share(&e, which));
        rc = th_dist_agree(comm, th_predictor_set_batch(&e.run, batch, err), err);
    }
    if (!rc) rc = th_dist_agree(comm, load_share(&e, which, err), err);
    if (!rc) rc = predict_share(&e);
    float *p_all = NULL;
    if (!rc) {
        int total = 0;
        for (int i = 0; i < e.ds.n; i++) total += e.split[i] == which;
        if (e.rank == 0) p_all = malloc(sizeof(float) * (size_t)(total + 1) * e.n_eval);
        rc = th_dist_agree(comm, e.rank == 0 && !p_all ? th_errf(err, "out of memory") : 0, err);
        if (!rc) rc = th_dist_gather_rows(comm, 0, e.p_eval, e.shard.n, e.n_eval, p_all, err);
    }
    if (!rc) {
        int local = e.rank == 0 ? write_results(&e, which, p_all, res, err) : 0;
        rc = th_dist_agree(comm, local, err);
        /* Rank 0's result for every rank, whether or not it could write it. */
        if (th_dist_bcast(comm, 0, res, sizeof *res, rc ? NULL : err)) rc = -1;
    }
    free(p_all);
    free(e.x);
    free(e.p_model);
    free(e.p_eval);
    th_shard_free(&e.shard);
    th_predictor_close(&e.run);
    free(e.split);
    free(e.owner);
    free(e.meta);
    if (e.ds_open) th_dataset_close(&e.ds);
    return rc;
}

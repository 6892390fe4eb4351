/* run_data.c - a run set up before its first step (see run.h): the
 * dataset, the split and shards, this rank's images, class weights,
 * normalisation, the model (from the seed, model.init or a checkpoint) and
 * the optimiser. Collective where it says so; writes no file. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run.h"
#include "thorax/nn.h"
#include "thorax/train.h"
#include "thorax/data.h"

/* The log: rank 0 hands each line to the caller's on_info. */
void run_info(run *r, const char *fmt, ...)
{
    if (r->rank != 0 || !r->cb || !r->cb->on_info) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->cb->on_info(r->cb->ctx, msg);
}

static void copy_labels(const run *r, int idx, uint8_t *out)
{
    for (int k = 0; k < r->n_labels; k++) out[k] = r->ds.labels[(size_t)idx * r->ds.n_labels + r->label_col[k]];
}

/* Rank 0: the split of every image, and the rank that handles each image
 * within its split (trains on it, or predicts it), whole patients per rank. */
static int make_split(run *r, th_err *err)
{
    int n = r->ds.n;
    if (th_plan_split_dups(r->cfg, &r->ds, r->label_col, r->n_labels, r->split, &r->dropped, &r->dups, err))
        return -1;
    int *part = malloc(sizeof *part * (size_t)n);
    if (!part) return th_errf(err, "out of memory sharding %d images", n);
    for (int i = 0; i < n; i++) r->owner[i] = -1;
    int rc = 0;
    for (int s = TH_SPLIT_TRAIN; s <= TH_SPLIT_TEST && !rc; s++) {
        rc = th_shard_by_patient(n, (const char *const *)r->ds.patient_id, r->split, s, r->size, part, err);
        for (int i = 0; i < n && !rc; i++)
            if (part[i] >= 0) r->owner[i] = part[i];
    }
    free(part);
    return rc;
}

/* "min..max images per rank (imbalance x%)" for the log. */
static void describe_shards(const int *count, int size, char *out, size_t cap)
{
    int lo = count[0], hi = count[0];
    for (int k = 1; k < size; k++) {
        if (count[k] < lo) lo = count[k];
        if (count[k] > hi) hi = count[k];
    }
    snprintf(out, cap, "%d..%d images per rank (imbalance %.1f%%)", lo, hi, hi ? 100.0 * (hi - lo) / hi : 0.0);
}

/* data.cache: memory, stream, or (auto) memory when this rank's training
 * images take at most half of the node's memory shared among its ranks. */
static int choose_streaming(const run *r)
{
    if (r->cfg->data.cache != TH_CACHE_AUTO) return r->cfg->data.cache == TH_CACHE_STREAM;
    int local = th_dist_node_size(r->comm);
    double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    double need = (double)r->shard_size[r->rank] * r->hw;
    return need > 0.5 * phys / local;
}

/* Split, shards, and this rank's share of the data, read into memory. */
static int load_data(run *r, th_err *err)
{
    int n = r->ds.n, L = r->n_labels;
    r->split = malloc((size_t)n);
    r->owner = malloc(sizeof *r->owner * (size_t)n);
    r->shard_size = calloc((size_t)r->size, sizeof *r->shard_size);
    int *val_size = calloc((size_t)r->size, sizeof *val_size);
    int rc = (r->split && r->owner && r->shard_size && val_size)
                 ? 0
                 : th_errf(err, "out of memory for the index of %d images", n);
    if (!rc && r->rank == 0) rc = make_split(r, err);
    if (th_dist_agree(r->comm, rc, err)) {
        free(val_size);
        return -1;
    }
    if (th_dist_bcast(r->comm, 0, r->split, (size_t)n, err) ||
        th_dist_bcast(r->comm, 0, r->owner, sizeof *r->owner * (size_t)n, err) ||
        th_dist_bcast(r->comm, 0, &r->dropped, sizeof r->dropped, err)) {
        free(val_size);
        return -1;
    }

    for (int i = 0; i < n; i++) {
        if (r->split[i] == TH_SPLIT_TRAIN) r->shard_size[r->owner[i]]++;
        if (r->split[i] == TH_SPLIT_VAL) val_size[r->owner[i]]++;
    }
    int n_train_total = 0;
    r->n_val_total = 0;
    for (int k = 0; k < r->size; k++) {
        n_train_total += r->shard_size[k];
        r->n_val_total += val_size[k];
    }
    char train_desc[96], val_desc[96];
    describe_shards(r->shard_size, r->size, train_desc, sizeof train_desc);
    describe_shards(val_size, r->size, val_desc, sizeof val_desc);
    free(val_size);
    /* Every rank computed the same counts, so these checks agree. */
    if (n_train_total == 0) return th_errf(err, "the training split of %s is empty", r->ds.path);
    if (r->n_val_total == 0)
        return th_errf(err, "the validation split of %s is empty: raise data.split.val or use more patients",
                       r->ds.path);
    if (r->dropped)
        run_info(r, "data.on_leak: drop_from_eval: %d val/test images of patients who cross splits are left out",
             r->dropped);
    if (r->dups.n_cross)
        run_info(r, "data.on_duplicate: %s: %d groups of the same picture (%d images) across splits, %d copies left "
                    "out of later splits; duplicates.csv lists them",
                 r->cfg->data.on_duplicate == TH_ON_DUP_DROP ? "drop" : "keep", r->dups.n_cross,
                 r->dups.cross_images, r->dups.dropped);
    run_info(r, "shards by patient: train %s; val %s", train_desc, val_desc);

    r->streaming = choose_streaming(r);
    rc = th_shard_load(&r->train, &r->ds, r->split, r->owner, TH_SPLIT_TRAIN, r->rank, r->label_col, L, !r->streaming,
                       err);
    if (!rc) rc = th_shard_load(&r->val, &r->ds, r->split, r->owner, TH_SPLIT_VAL, r->rank, r->label_col, L, 1, err);
    if (!rc && r->streaming) rc = th_image_reader_open(&r->reader, &r->ds, err);
    run_info(r, "training images %s", r->streaming ? "streamed from the file by the prefetch thread (data.cache)"
                                               : "held in memory (data.cache)");
    if (!rc && r->rank == 0) {
        /* The gather concatenates the ranks' shares in rank order: the labels
         * on rank 0 are laid out the same way. */
        int *order = malloc(sizeof(int) * (size_t)r->n_val_total);
        r->val_y_all = malloc((size_t)L * (size_t)r->n_val_total);
        r->val_p_all = malloc(sizeof(float) * (size_t)L * (size_t)r->n_val_total);
        if (!order || !r->val_y_all || !r->val_p_all) rc = th_errf(err, "out of memory for validation predictions");
        if (!rc) th_shard_gather_order(n, r->split, r->owner, TH_SPLIT_VAL, r->size, order);
        for (int v = 0; !rc && v < r->n_val_total; v++) copy_labels(r, order[v], r->val_y_all + (size_t)L * v);
        free(order);
    }
    return th_dist_agree(r->comm, rc, err);
}

/* Class weights from the label frequencies of the whole training split (every
 * rank has the index, so every rank computes the same weights). */
static int class_weights(run *r, th_err *err)
{
    int L = r->n_labels;
    long n_train = 0;
    /* Per label, the training images where it is known, and its positives. */
    long pos[TH_MAX_LABELS] = {0}, known[TH_MAX_LABELS] = {0};
    for (int i = 0; i < r->ds.n; i++) {
        if (r->split[i] != TH_SPLIT_TRAIN) continue;
        n_train++;
        for (int k = 0; k < L; k++) {
            uint8_t v = r->ds.labels[(size_t)i * r->ds.n_labels + r->label_col[k]];
            pos[k] += v == 1;
            known[k] += v != TH_LABEL_UNKNOWN;
        }
    }
    double freq[TH_MAX_LABELS];
    for (int k = 0; k < L; k++) {
        const char *name = r->ds.label_names[r->label_col[k]];
        if (known[k] < n_train && r->cfg->train.loss == TH_LOSS_SOFTMAX_CE)
            return th_errf(err, "label '%s' is unknown for %ld of the %ld training images: softmax_ce needs every "
                           "label known (use bce or weighted_bce, or ingest with --blank zeros / --uncertain "
                           "ones|zeros)", name, n_train - known[k], n_train);
        if (known[k] < n_train) r->unknown_labels = 1;
        if (r->cfg->train.loss != TH_LOSS_SOFTMAX_CE && (pos[k] == 0 || pos[k] == known[k]))
            return th_errf(err, "label '%s' has %s in the training split (%ld images, %ld with the label known): "
                           "it cannot be learned", name, pos[k] ? "only positive images" : "no positive image",
                           n_train, known[k]);
        freq[k] = (double)pos[k] / (double)known[k];
    }
    if (r->cfg->train.loss == TH_LOSS_WEIGHTED_BCE) {
        th_class_weights(L, freq, r->w_pos, r->w_neg);
    } else {
        for (int k = 0; k < L; k++) r->w_pos[k] = r->w_neg[k] = 1.0f;
    }
    return 0;
}

/* The validation macro AUC chooses best.h5 and drives early stopping and the
 * plateau schedule; with no label holding both classes in the validation
 * split it is undefined every epoch, no best.h5 is ever written and the
 * evaluation phase would fail after all the training. Refuse before it. */
static int val_auc_defined(run *r, th_err *err)
{
    int L = r->n_labels;
    long n_val = 0;
    /* Only the images where a label is known count for its AUC. */
    long pos[TH_MAX_LABELS] = {0}, known[TH_MAX_LABELS] = {0};
    for (int i = 0; i < r->ds.n; i++) {
        if (r->split[i] != TH_SPLIT_VAL) continue;
        n_val++;
        for (int k = 0; k < L; k++) {
            uint8_t v = r->ds.labels[(size_t)i * r->ds.n_labels + r->label_col[k]];
            pos[k] += v == 1;
            known[k] += v != TH_LABEL_UNKNOWN;
        }
    }
    for (int k = 0; k < L; k++)
        if (pos[k] > 0 && pos[k] < known[k]) return 0;
    return th_errf(err,
                   "no label has both positive and negative images in the validation split of %s (%ld image%s; "
                   "'%s' has %s): the validation AUC that chooses checkpoints/best.h5 is undefined; raise "
                   "data.split.val or use more patients",
                   r->ds.path, n_val, n_val == 1 ? "" : "s", r->ds.label_names[r->label_col[0]],
                   pos[0] ? "only positive images" : "no positive image");
}

/* Mean and standard deviation of the training pixels over all ranks. When
 * streaming, the shard is read in chunks through the same buffer. */
static int trainset_stats(run *r, th_err *err)
{
    double acc[3] = {0, 0, 0}; /* sum, sum of squares, count */
    enum { CHUNK = 256 };
    uint8_t *chunk = r->streaming ? malloc((size_t)CHUNK * r->hw) : NULL;
    int rc = r->streaming && !chunk ? th_errf(err, "out of memory") : 0;
    for (int off = 0; !rc && off < r->train.n; off += CHUNK) {
        int n = r->train.n - off < CHUNK ? r->train.n - off : CHUNK;
        const uint8_t *img = r->train.img + (size_t)off * r->hw;
        if (r->streaming) {
            rc = th_dataset_read_images(&r->ds, r->train.rows + off, n, chunk, err);
            img = chunk;
        }
        for (size_t i = 0; !rc && i < (size_t)n * r->hw; i++) {
            double v = img[i] / 255.0;
            acc[0] += v;
            acc[1] += v * v;
        }
        acc[2] += (double)n * r->hw;
    }
    free(chunk);
    if (th_dist_agree(r->comm, rc, err)) return -1;
    th_dist_sum(r->comm, acc, 3);
    double mean = acc[0] / acc[2];
    double var = acc[1] / acc[2] - mean * mean;
    r->st.norm_mean = (float)mean;
    r->st.norm_std = (float)sqrt(var > 1e-12 ? var : 1e-12);
    return 0;
}

/* Images that rank k contributes to step s of an epoch (0 once its shard is used up). */
int run_images_at_step(const run *r, int k, int s)
{
    long left = (long)r->shard_size[k] - (long)s * r->batch;
    return left <= 0 ? 0 : left < r->batch ? (int)left : r->batch;
}

/* The prefetcher's fill: training batch `step` of the current epoch's order. */
static int fill_batch(void *ctx, int step, float *x, uint8_t *y)
{
    run *r = ctx;
    int n = run_images_at_step(r, r->rank, step), L = r->n_labels;
    const int *rows = r->order + (size_t)step * r->batch;
    if (r->streaming) {
        for (int j = 0; j < n; j++) r->batch_rows[j] = r->train.rows[rows[j]];
        if (th_image_reader_read(&r->reader, r->batch_rows, n, r->stage, &r->stream_err)) return -1;
        th_input_make(&r->input, r->stage, NULL, r->batch_rows, n, r->fill_epoch, x);
    } else {
        th_input_make(&r->input, r->train.img, rows, r->train.rows, n, r->fill_epoch, x);
    }
    for (int j = 0; j < n; j++) memcpy(y + (size_t)j * L, r->train.y + (size_t)rows[j] * L, (size_t)L);
    return n;
}

static int alloc_step_buffers(run *r, th_err *err)
{
    int L = r->n_labels, max_shard = 0;
    for (int k = 0; k < r->size; k++)
        if (r->shard_size[k] > max_shard) max_shard = r->shard_size[k];
    /* A batch larger than every shard takes whole shards: size for what is used. */
    r->batch = th_plan_batch(r->cfg, max_shard);
    int rc = th_model_create(&r->model, &r->cfg->model, L, r->batch, err);
    if (!rc) rc = th_model_set_threads(&r->model, r->cfg->runtime.threads_per_rank, err);
    if (!rc && th_model_set_precision(&r->model, r->cfg->runtime.precision, err))
        rc = th_err_prefix(err, "runtime.precision: ");
    if (!rc) rc = th_optim_init(&r->opt, &r->cfg->train.optimizer, r->model.n_params, err);
    if (!rc)
        rc = th_step_init(&r->step, r->comm, &r->model, &r->opt, r->cfg->train.loss, L, r->w_pos, r->w_neg, r->batch,
                          th_grad_sync_bucket_floats(r->cfg->runtime.allreduce_bucket_mb), err);
    if (rc) return -1;
    r->step.unknowns = r->unknown_labels;
    r->order = malloc(sizeof(int) * (size_t)(r->train.n + 1));
    r->x = malloc(sizeof(float) * (size_t)r->batch * r->hw);
    r->val_p = malloc(sizeof(float) * (size_t)(r->val.n + 1) * L);
    if (r->streaming) {
        r->stage = malloc((size_t)r->batch * r->hw);
        r->batch_rows = malloc(sizeof(int) * (size_t)r->batch);
    }
    if (!r->order || !r->x || !r->val_p || (r->streaming && (!r->stage || !r->batch_rows)))
        return th_errf(err, "out of memory for a batch of %d images", r->batch);
    return th_prefetch_start(&r->prefetch, (size_t)r->batch * r->hw, (size_t)r->batch * L, fill_batch, r, err);
}


/* model.init. Rank 0 reads the file and broadcasts the parameters and
 * buffers: one reader instead of every rank hitting the shared file system
 * with the same file, one place where its errors are found, and replicas
 * that start from the same bits by construction, which data-parallel
 * training needs (each rank applies the same update to its own copy). */
static int init_from_file(run *r, th_err *err)
{
    const char *path = r->cfg->model_init;
    th_init_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = r->rank == 0 ? th_checkpoint_init_params(path, &r->model, &rep, err) : 0;
    if (rc) th_err_prefix(err, "model.init: ");
    if (th_dist_agree(r->comm, rc, err)) return -1;
    if (th_dist_bcast(r->comm, 0, r->model.params, sizeof(float) * r->model.n_params, err) ||
        th_dist_bcast(r->comm, 0, r->model.buffers, sizeof(float) * r->model.n_buffers, err))
        return -1;
    run_info(r, "init: %d tensor%s from %s%s%s", rep.loaded, rep.loaded == 1 ? "" : "s", path,
         rep.fresh ? "; initialised afresh: " : "", rep.fresh_names);
    return 0;
}


void run_free(run *r)
{
    if (!r->ds_open) {
        free(r->resolved);
        return; /* nothing else was made */
    }
    th_prefetch_stop(&r->prefetch);
    th_image_reader_close(&r->reader);
    free(r->stage);
    free(r->batch_rows);
    th_step_free(&r->step);
    th_model_free(&r->model);
    th_optim_free(&r->opt);
    th_dataset_close(&r->ds);
    free(r->split);
    th_plan_dups_free(&r->dups);
    free(r->owner);
    free(r->shard_size);
    th_shard_free(&r->train);
    th_shard_free(&r->val);
    free(r->val_y_all);
    free(r->val_p_all);
    free(r->order);
    free(r->x);
    free(r->val_p);
    free(r->config_yaml);
    th_strbuf_free(&r->metrics);
    free(r->stage_cfg[0]);
    free(r->stage_cfg[1]);
    free(r->resolved);
}

/* Everything before the first step, collective: the dataset, split, shards,
 * this rank's data, class weights, normalisation, the model initialised from
 * the seed (or the checkpoint of opts->resume_from) and the optimiser. Writes
 * no file. On failure (on every rank) run_free(r) is still to be called. */
int run_setup(run *r, const th_config *cfg, const th_train_opts *opts, th_comm comm,
                     const th_train_callbacks *cb, th_err *err)
{
    static const th_train_opts no_opts;
    memset(r, 0, sizeof *r);
    r->comm = comm;
    r->cb = cb;
    r->opts = opts ? opts : &no_opts;
    r->rank = th_dist_rank(comm);
    r->size = th_dist_size(comm);

    /* The config as this run resolves it: the labels spelled out when it names
     * none, so that config.yaml and the checkpoints say what the outputs are. */
    th_config *resolved = malloc(sizeof *resolved);
    if (!resolved) return th_errf(err, "out of memory");
    *resolved = *cfg;
    r->resolved = resolved;
    r->cfg = cfg = resolved;
    /* th_dataset_open agrees on its status across ranks */
    if (th_dataset_open(&r->ds, cfg->data.path, comm, err)) return -1;
    r->ds_open = 1;
    r->hw = r->ds.h * r->ds.w;
    /* What evaluation will check, checked before the first step. */
    int rc = th_plan_check(cfg, &r->ds, r->label_col, &r->n_labels, err);
    if (!rc) rc = th_config_name_labels(resolved, (const char *const *)r->ds.label_names, r->label_col, r->n_labels, err);
    /* Every rank holds the same index and config, so these checks agree. */
    th_data_fingerprint fp;
    if (!rc) rc = th_dataset_fingerprint(&r->ds, comm, &fp, NULL, err);
    if (!rc) rc = load_data(r, err);
    if (!rc) rc = class_weights(r, err);
    if (!rc) rc = val_auc_defined(r, err);
    if (!rc) rc = trainset_stats(r, err);
    if (!rc) {
        rc = alloc_step_buffers(r, err);
        rc = th_dist_agree(comm, rc, err);
    }
    if (!rc) {
        r->staged = cfg->train.n_freeze > 0;
        rc = th_dist_agree(comm, run_make_stage_cfgs(r, err), err);
    }
    if (!rc) {
        th_model_init_params(&r->model, cfg->seed);
        r->st.lr = cfg->train.optimizer.lr;
        r->st.best_score = -INFINITY;
        if (r->opts->resume_from) rc = th_dist_agree(comm, run_resume(r, err), err);
        else if (cfg->model_init[0]) rc = init_from_file(r, err);
        /* A file replaced at the same path would resume with the old
         * normalisation and split: the checkpoint's fingerprint says. */
        if (!rc && r->opts->resume_from &&
            th_plan_pin_match(r->st.data_fingerprint, r->opts->resume_from, &r->ds, &fp, err))
            rc = th_err_prefix(err, "cannot resume from ");
        if (!rc) th_fingerprint_text(&fp, r->st.data_fingerprint, sizeof r->st.data_fingerprint);
        if (!rc && r->staged && !r->opts->resume_from) rc = th_dist_agree(comm, run_set_stage(r, 0, err), err);
        if (!rc && r->staged && !r->thawed) run_describe_freeze(r);
        /* After a resume: the checkpoint's statistics, which are the same numbers. */
        th_input_params in;
        th_plan_input(cfg, &in);
        th_input_init(&r->input, &in, r->ds.h, r->ds.w, r->st.norm_mean, r->st.norm_std);
    }
    return rc;
}

/* The "data ..." line of the log. */
void run_describe_data(run *r)
{
    int counts[3] = {0, 0, 0};
    for (int i = 0; i < r->ds.n; i++)
        if (r->split[i] <= TH_SPLIT_TEST) counts[r->split[i]]++;
    run_info(r, "data %s: %d images %dx%d, %d labels; split train/val/test = %d/%d/%d images by patient", r->cfg->data.path,
         r->ds.n, r->ds.h, r->ds.w, r->n_labels, counts[0], counts[1], counts[2]);
}

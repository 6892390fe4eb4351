/* train.c - the distributed training loop (see thorax/train.h).
 *
 * One run, in order:
 *   1. every rank opens the dataset file; rank 0 reads the index and shares it;
 *   2. rank 0 splits patients into train/val/test and assigns each rank whole
 *      training patients, balanced by image count, and broadcasts both;
 *   3. each rank reads its training shard and its share of the validation
 *      split into memory (uint8) with parallel HDF5;
 *   4. per step, each rank takes the next batch_per_rank images of its shard,
 *      runs forward and backward, and the summed gradients are divided by the
 *      number of images in the global batch (exact mean, whatever the shards);
 *      the sums of the last layers' buckets travel while the first layers
 *      still differentiate (th_grad_sync, runtime.allreduce_bucket_mb);
 *   5. per epoch, the ranks predict their validation share, rank 0 gathers the
 *      predictions, computes the macro AUC, logs metrics.csv and writes the
 *      checkpoints.
 * Fine-tuning: the model may start from another file's parameters
 * (model.init), and train.freeze keeps layers from training, until the
 * epoch of train.unfreeze when given (see "Stages" below).
 * Every failure that one rank can meet alone goes through th_dist_agree
 * before the next collective, so no rank is left waiting in one.
 */
#include "thorax/train.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "thorax/auc.h"
#include "thorax/checkpoint.h"
#include "thorax/dataset.h"
#include "thorax/dist.h"
#include "thorax/fsutil.h"
#include "thorax/input.h"
#include "thorax/loss.h"
#include "thorax/model.h"
#include "thorax/optim.h"
#include "thorax/plan.h"
#include "thorax/plot.h"
#include "thorax/predict.h"
#include "thorax/prefetch.h"
#include "thorax/schedule.h"
#include "thorax/shard.h"
#include "thorax/split.h"

/* Everything one run holds. Sized once before the first step. */
typedef struct run {
    const th_config *cfg;
    th_config *resolved;            /* owned: cfg with its labels spelled out */
    int ds_open;                    /* the dataset opened (run_free has something to free) */
    const char *dir;
    MPI_Comm comm;
    int rank, size;
    const th_train_callbacks *cb;
    const th_train_opts *opts;
    long start_step;                /* global step this process started from (for the ETA) */

    th_dataset ds;
    int n_labels;
    int label_col[TH_MAX_LABELS];   /* column in the file of each run label */
    uint8_t *split;                 /* [N] split of every image */
    int *owner;                     /* [N] rank that trains on or predicts each image (-1: none) */
    int *shard_size;                /* [size] training images per rank */
    int dropped;                    /* val/test images left out by data.on_leak */
    int hw;                         /* pixels per image */

    /* This rank's data, in dataset order. */
    th_shard train, val;
    th_input input;                 /* augmentation and normalisation */
    int n_val_total;                /* validation images over all ranks */
    uint8_t *val_y_all;             /* rank 0: [n_val_total, n_labels] in gather order */
    float *val_p_all;               /* rank 0: gathered probabilities */

    /* Step buffers. */
    int batch;                      /* images per rank per step */
    int *order;                     /* [train.n] this epoch's order of the shard */
    float *x;                       /* [batch, 1, H, W] validation input */
    float *dz;                      /* [batch, n_labels] */
    float *val_p;                   /* [val.n, n_labels] */
    float w_pos[TH_MAX_LABELS], w_neg[TH_MAX_LABELS];
    th_prefetch prefetch;           /* fills the next training batch while a step computes */
    int streaming;                  /* training images read per batch, not held in memory */
    th_image_reader reader;         /* the prefetch thread's own handle when streaming */
    uint8_t *stage;                 /* [batch, H, W] images read for one batch (streaming) */
    int *batch_rows;                /* [batch] their dataset rows (streaming) */
    th_err stream_err;              /* a read failure on the prefetch thread */
    int fill_epoch;                 /* the epoch the prefetcher is filling */
    double data_wait_share;         /* of the last epoch's step time: waiting for a batch */
    double allreduce_share;         /* of the last epoch's step time: waiting for the allreduces */
    int stop_agreed;                /* the ranks agreed on a stop request in an epoch's last step */

    th_model model;
    th_grad_sync sync;              /* the model's gradient hook: bucketed allreduce */
    th_optim opt;
    /* Stages (train.freeze, train.unfreeze). */
    int staged;                     /* train.freeze names layers */
    int thawed;                     /* the second stage: every layer trains */
    th_config *stage_cfg[2];        /* with train.unfreeze: each stage's schedule (see scheduled_lr) */
    th_train_state st;
    char *config_yaml;
    th_strbuf metrics;              /* metrics.csv so far, rewritten atomically each epoch */
} run;

static void info(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void info(run *r, const char *fmt, ...)
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
    if (th_plan_split(r->cfg, &r->ds, r->label_col, r->n_labels, r->split, &r->dropped, err)) return -1;
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
    MPI_Comm node;
    int local = 1;
    MPI_Comm_split_type(r->comm, MPI_COMM_TYPE_SHARED, r->rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &local);
    MPI_Comm_free(&node);
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
    MPI_Bcast(r->split, n, MPI_UINT8_T, 0, r->comm);
    MPI_Bcast(r->owner, n, MPI_INT, 0, r->comm);
    MPI_Bcast(&r->dropped, 1, MPI_INT, 0, r->comm);

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
        info(r, "data.on_leak: drop_from_eval: %d val/test images of patients who cross splits are left out",
             r->dropped);
    info(r, "shards by patient: train %s; val %s", train_desc, val_desc);

    r->streaming = choose_streaming(r);
    rc = th_shard_load(&r->train, &r->ds, r->split, r->owner, TH_SPLIT_TRAIN, r->rank, r->label_col, L, !r->streaming,
                       err);
    if (!rc) rc = th_shard_load(&r->val, &r->ds, r->split, r->owner, TH_SPLIT_VAL, r->rank, r->label_col, L, 1, err);
    if (!rc && r->streaming) rc = th_image_reader_open(&r->reader, &r->ds, err);
    info(r, "training images %s", r->streaming ? "streamed from the file by the prefetch thread (data.cache)"
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
    long pos[TH_MAX_LABELS] = {0};
    for (int i = 0; i < r->ds.n; i++) {
        if (r->split[i] != TH_SPLIT_TRAIN) continue;
        n_train++;
        for (int k = 0; k < L; k++) pos[k] += r->ds.labels[(size_t)i * r->ds.n_labels + r->label_col[k]];
    }
    double freq[TH_MAX_LABELS];
    for (int k = 0; k < L; k++) {
        if (r->cfg->train.loss != TH_LOSS_SOFTMAX_CE && (pos[k] == 0 || pos[k] == n_train))
            return th_errf(err, "label '%s' has %s in the training split (%ld images): it cannot be learned",
                           r->ds.label_names[r->label_col[k]], pos[k] ? "only positive images" : "no positive image",
                           n_train);
        freq[k] = (double)pos[k] / (double)n_train;
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
    long pos[TH_MAX_LABELS] = {0};
    for (int i = 0; i < r->ds.n; i++) {
        if (r->split[i] != TH_SPLIT_VAL) continue;
        n_val++;
        for (int k = 0; k < L; k++) pos[k] += r->ds.labels[(size_t)i * r->ds.n_labels + r->label_col[k]];
    }
    for (int k = 0; k < L; k++)
        if (pos[k] > 0 && pos[k] < n_val) return 0;
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
    MPI_Allreduce(MPI_IN_PLACE, acc, 3, MPI_DOUBLE, MPI_SUM, r->comm);
    double mean = acc[0] / acc[2];
    double var = acc[1] / acc[2] - mean * mean;
    r->st.norm_mean = (float)mean;
    r->st.norm_std = (float)sqrt(var > 1e-12 ? var : 1e-12);
    return 0;
}

/* Images that rank k contributes to step s of an epoch (0 once its shard is used up). */
static int images_at_step(const run *r, int k, int s)
{
    long left = (long)r->shard_size[k] - (long)s * r->batch;
    return left <= 0 ? 0 : left < r->batch ? (int)left : r->batch;
}

/* The prefetcher's fill: training batch `step` of the current epoch's order. */
static int fill_batch(void *ctx, int step, float *x, uint8_t *y)
{
    run *r = ctx;
    int n = images_at_step(r, r->rank, step), L = r->n_labels;
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
    r->batch = r->cfg->train.batch_per_rank < max_shard ? r->cfg->train.batch_per_rank : max_shard;
    if (r->batch < 1) r->batch = 1;
    int rc = th_model_create(&r->model, &r->cfg->model, L, r->batch, err);
    if (!rc) rc = th_model_set_threads(&r->model, r->cfg->runtime.threads_per_rank, err);
    if (!rc) rc = th_optim_init(&r->opt, &r->cfg->train.optimizer, r->model.n_params, err);
    if (!rc)
        rc = th_grad_sync_init(&r->sync, r->comm, &r->model,
                               th_grad_sync_bucket_floats(r->cfg->runtime.allreduce_bucket_mb), err);
    if (rc) return -1;
    th_model_set_grads_hook(&r->model, th_grad_sync_ready, &r->sync);
    r->order = malloc(sizeof(int) * (size_t)(r->train.n + 1));
    r->x = malloc(sizeof(float) * (size_t)r->batch * r->hw);
    r->dz = malloc(sizeof(float) * (size_t)r->batch * L);
    r->val_p = malloc(sizeof(float) * (size_t)(r->val.n + 1) * L);
    if (r->streaming) {
        r->stage = malloc((size_t)r->batch * r->hw);
        r->batch_rows = malloc(sizeof(int) * (size_t)r->batch);
    }
    if (!r->order || !r->x || !r->dz || !r->val_p || (r->streaming && (!r->stage || !r->batch_rows)))
        return th_errf(err, "out of memory for a batch of %d images", r->batch);
    return th_prefetch_start(&r->prefetch, (size_t)r->batch * r->hw, (size_t)r->batch * L, fill_batch, r, err);
}

/* ---- Stages ------------------------------------------------------------
 * train.freeze keeps the layers it names from training: th_model_freeze
 * (no parameter gradients), no optimiser group (no update, no weight decay,
 * no state) and no share of the allreduce. With train.unfreeze {epoch: E,
 * lr: X} that is the first stage, epochs [0, E); from epoch E every layer
 * trains. The stage is a function of the epoch, so a resumed run finds it
 * again from its checkpoint. The switch happens at the end of epoch E - 1,
 * before its checkpoint is written, so every checkpoint holds the state of
 * the stage it resumes into:
 *  - the thawed tensors' optimiser state starts at zero, with a step count
 *    of its own (Adam's bias correction starts again for them, as PyTorch's
 *    per-parameter state would);
 *  - the learning rate becomes X and the schedule starts again: each stage
 *    runs train.schedule on its own, the first over E epochs from
 *    train.optimizer.lr, the second over epochs - E from X (step: X *
 *    factor^floor((epoch - E) / step_epochs); cosine: its warm-up and decay
 *    over the second stage; plateau and constant: X, reduced from there);
 *  - the plateau and early-stopping counters start again (the best score
 *    and best.h5 are the run's), and early stopping never ends the first
 *    stage: the second is the point of the run. */

/* Which stage a tensor trains in: 0 both, 1 the second only, -1 neither now. */
static int tensor_class(const run *r, const th_tensor_info *ti)
{
    if (!ti->trainable || r->model.layers[ti->layer].frozen) return -1;
    return th_config_freezes(r->cfg, r->model.layers[ti->layer].name);
}

/* Freezes the layers of the first stage, or thaws them (thawed = 1), and
 * gives the optimiser and the gradient sync the ranges that train. An
 * optimiser group is a run of adjacent tensors of one class, so a thawed
 * layer never shares a step count with one that trained from the start. */
static int set_stage(run *r, int thawed, th_err *err)
{
    th_model *m = &r->model;
    for (int i = 0; i < m->n_layers; i++)
        th_model_freeze(m, i, !thawed && th_config_freezes(r->cfg, m->layers[i].name));
    size_t cap = (size_t)m->n_tensors + 1;
    size_t *off = malloc(sizeof *off * cap), *cnt = malloc(sizeof *cnt * cap);
    if (!off || !cnt) {
        free(off);
        free(cnt);
        return th_errf(err, "out of memory for the optimiser groups of %d tensors", m->n_tensors);
    }
    int n = 0, last = -1;
    for (int t = 0; t < m->n_tensors; t++) {
        const th_tensor_info *ti = &m->tensors[t];
        int cls = tensor_class(r, ti);
        if (cls < 0 || ti->count == 0) continue;
        if (n > 0 && cls == last && off[n - 1] + cnt[n - 1] == ti->offset) {
            cnt[n - 1] += ti->count;
        } else {
            off[n] = ti->offset;
            cnt[n++] = ti->count;
        }
        last = cls;
    }
    int rc = th_optim_set_groups(&r->opt, n, off, cnt, err);
    free(off);
    free(cnt);
    if (rc) return -1;
    th_grad_sync_free(&r->sync);
    if (th_grad_sync_init(&r->sync, r->comm, m, th_grad_sync_bucket_floats(r->cfg->runtime.allreduce_bucket_mb), err))
        return -1;
    th_model_set_grads_hook(m, th_grad_sync_ready, &r->sync);
    r->thawed = thawed;
    return 0;
}

/* "freeze: ..." for the log: what the first stage trains. */
static void describe_freeze(run *r)
{
    const th_model *m = &r->model;
    const th_config *cfg = r->cfg;
    char names[512] = "";
    size_t len = 0, frozen = 0;
    for (int k = 0; k < cfg->train.n_freeze && len < sizeof names; k++)
        len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", k ? ", " : "", cfg->train.freeze[k]);
    int layers = 0;
    for (int i = 0; i < m->n_layers; i++) layers += m->layers[i].frozen && m->layers[i].w_off != SIZE_MAX;
    for (int t = 0; t < m->n_tensors; t++)
        if (m->tensors[t].trainable && m->layers[m->tensors[t].layer].frozen) frozen += m->tensors[t].count;
    int e = cfg->train.unfreeze.epoch;
    char until[64] = "";
    if (e == 1) snprintf(until, sizeof until, " for the first epoch");
    else if (e > 1) snprintf(until, sizeof until, " for the first %d epochs", e);
    info(r, "freeze: %s (%d layer%s with parameters)%s: %zu of %zu parameters train", names, layers,
         layers == 1 ? "" : "s", until, m->n_params - frozen, m->n_params);
}

/* Epoch E reached (at the end of epoch E - 1): every layer trains from now
 * on. *thawed gets the number of parameters that start to train. */
static int unfreeze(run *r, size_t *thawed, th_err *err)
{
    *thawed = 0;
    for (int t = 0; t < r->model.n_tensors; t++)
        if (r->model.tensors[t].trainable && r->model.layers[r->model.tensors[t].layer].frozen)
            *thawed += r->model.tensors[t].count;
    if (set_stage(r, 1, err)) return -1;
    r->st.lr = r->cfg->train.unfreeze.lr;
    r->st.plateau_epochs = 0;
    r->st.bad_epochs = 0;
    return 0;
}

/* The rate of the next step. With train.unfreeze each stage runs the
 * schedule as a training of its own (stage_cfg: the first over epochs
 * [0, E), the second from unfreeze.lr over [E, epochs)). */
static float scheduled_lr(const run *r, int steps)
{
    if (!r->stage_cfg[0]) return th_schedule_lr(r->cfg, r->st.step, steps, r->st.lr);
    long boundary = (long)r->cfg->train.unfreeze.epoch * steps;
    if (r->st.step < boundary) return th_schedule_lr(r->stage_cfg[0], r->st.step, steps, r->st.lr);
    return th_schedule_lr(r->stage_cfg[1], r->st.step - boundary, steps, r->st.lr);
}

static int make_stage_cfgs(run *r, th_err *err)
{
    const th_config *cfg = r->cfg;
    if (cfg->train.unfreeze.epoch <= 0) return 0;
    for (int k = 0; k < 2; k++) {
        r->stage_cfg[k] = malloc(sizeof *r->stage_cfg[k]);
        if (!r->stage_cfg[k]) return th_errf(err, "out of memory");
        *r->stage_cfg[k] = *cfg;
    }
    r->stage_cfg[0]->train.epochs = cfg->train.unfreeze.epoch;
    r->stage_cfg[1]->train.epochs = cfg->train.epochs - cfg->train.unfreeze.epoch;
    r->stage_cfg[1]->train.optimizer.lr = cfg->train.unfreeze.lr;
    return 0;
}

/* Broadcasts x [n] from rank 0, in pieces of at most INT_MAX. */
static void bcast_floats(MPI_Comm comm, float *x, size_t n)
{
    for (size_t off = 0; off < n;) {
        size_t chunk = n - off < (size_t)INT_MAX ? n - off : (size_t)INT_MAX;
        MPI_Bcast(x + off, (int)chunk, MPI_FLOAT, 0, comm);
        off += chunk;
    }
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
    bcast_floats(r->comm, r->model.params, r->model.n_params);
    bcast_floats(r->comm, r->model.buffers, r->model.n_buffers);
    info(r, "init: %d tensor%s from %s%s%s", rep.loaded, rep.loaded == 1 ? "" : "s", path,
         rep.fresh ? "; initialised afresh: " : "", rep.fresh_names);
    return 0;
}

/* Names where non-finite values first appear on this rank: the first layer
 * whose output holds one (forward), else the first tensor whose gradient does.
 * Returns 0 if this rank sees none. */
static int find_nonfinite(const run *r, int n, char *where, size_t cap)
{
    const th_model *m = &r->model;
    for (int i = 0; i < m->n_layers; i++) {
        const th_layer *L = &m->layers[i];
        /* A conv and ReLU fused with the max-pool after them keep no output
         * (y is NULL): the pool's output, checked next, holds their result. */
        if (!L->y) continue;
        size_t count = (size_t)n * L->out_c * L->out_h * L->out_w;
        for (size_t k = 0; k < count; k++) {
            if (isfinite(L->y[k])) continue;
            snprintf(where, cap, "the output of layer %s", L->name);
            return 1;
        }
    }
    for (int t = 0; t < m->n_tensors; t++) {
        const th_tensor_info *ti = &m->tensors[t];
        int trains = ti->trainable && !m->layers[ti->layer].frozen;
        for (size_t k = 0; trains && k < ti->count; k++) {
            if (isfinite(m->grads[ti->offset + k])) continue;
            snprintf(where, cap, "the gradient of %s", ti->name);
            return 1;
        }
    }
    return 0;
}

/* The gradients the step sums (a frozen layer's are never computed). */
static int grads_finite(const th_grad_sync *s)
{
    /* Summing propagates any NaN or Inf, and costs one pass. */
    float sum = 0;
    for (int j = 0; j < s->n_segs; j++)
        for (size_t k = s->seg_lo[j]; k < s->seg_hi[j]; k++) sum += s->grads[k] * 0.0f;
    return isfinite(sum);
}

/* Stops the run on a NaN or Inf loss or gradient, naming the step, where the
 * values first appear, and the checkpoint to go back to. Collective. */
static int nonfinite_error(run *r, int epoch, int s, int n, double loss, th_err *err)
{
    char where[160];
    int found = find_nonfinite(r, n, where, sizeof where);
    th_err mine = {{0}};
    char last[64];
    if (r->st.epoch > 0) snprintf(last, sizeof last, "checkpoints/last.h5 (epoch %d)", r->st.epoch);
    else snprintf(last, sizeof last, "none yet (no epoch completed)");
    th_errf(&mine,
            "training stopped: the %s is %s at epoch %d, step %d (global step %ld, learning rate %g); first "
            "non-finite values in %s; last good checkpoint: %s in %s. Lower train.optimizer.lr or check the data",
            isfinite(loss) ? "gradient" : "loss", isnan(loss) ? "NaN" : isfinite(loss) ? "non-finite" : "infinite",
            epoch + 1, s + 1, r->st.step + 1, (double)r->st.lr, found ? where : "the summed gradients", last, r->dir);
    /* The lowest rank that saw the values itself tells; else rank 0 does. */
    if (th_dist_agree(r->comm, found, &mine) == 0) th_dist_agree(r->comm, r->rank == 0, &mine);
    if (err) *err = mine;
    return -1;
}

/* Rank 0 writes last.h5 mid-epoch so that --resume continues from this step. */
static int save_midepoch(run *r, th_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoints/last.h5", r->dir);
    int rc = r->rank == 0 ? th_checkpoint_save(path, &r->model, &r->opt, &r->st, r->config_yaml, err) : 0;
    return th_dist_agree(r->comm, rc, err);
}

/* Every rank takes the same number of steps per epoch; ranks with smaller
 * shards contribute fewer (or no) images to the last steps of an epoch. */
static int steps_per_epoch(const run *r)
{
    int max_shard = 0;
    for (int k = 0; k < r->size; k++)
        if (r->shard_size[k] > max_shard) max_shard = r->shard_size[k];
    return (max_shard + r->batch - 1) / r->batch;
}

/* The shard's order for `epoch` and the prefetcher asked for step `first`. */
static void begin_epoch(run *r, int epoch, int first)
{
    /* The order of an epoch depends only on (seed, epoch, rank): a resumed run
     * sees the same order as an uninterrupted one. */
    th_rng rng;
    th_rng_seed(&rng, r->cfg->seed, 0x7000000ULL + (uint64_t)epoch * 65536 + (uint64_t)r->rank);
    for (int k = 0; k < r->train.n; k++) r->order[k] = k;
    th_rng_shuffle(&rng, r->order, r->train.n);
    r->fill_epoch = epoch;
    th_prefetch_request(&r->prefetch, first);
}

/* What one step's gradient pass leaves for the update. */
typedef struct step_out {
    int n;              /* this rank's images */
    long global_n;      /* images of the global batch */
    double loss;        /* mean loss of the global batch */
    int stop;           /* some rank had a stop request */
} step_out;

/* Step s of the current epoch up to the summed gradients: the batch from the
 * prefetcher (the next one requested), forward, loss, backward, the bucketed
 * allreduce and the loss's allreduce. Shared by train_epoch and th_trainer_step
 * so that the learning-rate finder takes exactly the training steps. Adds the
 * time waiting for data and for the allreduces to *t_wait and *t_comm. */
static int step_gradients(run *r, int s, int steps, step_out *o, double *t_wait, double *t_comm, th_err *err)
{
    const th_config *cfg = r->cfg;
    int L = r->n_labels;
    long global_n = 0;
    for (int k = 0; k < r->size; k++) global_n += images_at_step(r, k, s);
    float *x;
    uint8_t *y;
    double t0 = MPI_Wtime();
    int n = th_prefetch_wait(&r->prefetch, s, &x, &y);
    *t_wait += MPI_Wtime() - t0;
    /* A failed read: this rank adds nothing to the step, and every rank
     * learns of the failure from the allreduce below. */
    int failed = n < 0;
    if (failed) n = 0;
    if (s + 1 < steps && !failed) th_prefetch_request(&r->prefetch, s + 1);
    if (r->opts->nan_at_step == r->st.step + 1 && r->rank == 0 && n > 0) x[0] = NAN;

    /* Dropout masks from (seed, step, rank): no RNG state to carry across a resume. */
    th_rng_seed(&r->model.rng, cfg->seed, 0xD0000000000ULL + (uint64_t)r->st.step * 4096 + (uint64_t)r->rank);
    const float *logits = th_model_forward(&r->model, x, n, 1);
    double step_loss = n ? th_loss(cfg->train.loss, n, L, logits, y, r->w_pos, r->w_neg, r->dz) : 0.0;
    /* Starts the gradient buckets as their layers finish (the hook). */
    th_model_backward(&r->model, x, r->dz, n);
    /* From here the step only waits for communication: that is t_comm. */
    t0 = MPI_Wtime();
    if (th_grad_sync_finish(&r->sync, global_n, err)) return -1;
    /* Batch-norm running statistics: each rank's moved with its own images;
     * their mean is the statistic of the global batch's, and every rank then
     * holds the same, so validation on any rank, and a checkpoint (written by
     * rank 0) resumed on every rank, see what the run had. */
    if (r->size > 1 && r->model.n_buffers &&
        th_dist_allreduce_mean(r->comm, r->model.buffers, r->model.n_buffers, r->size, err))
        return -1;
    /* The loss and any stop request travel together: one small allreduce. */
    int stop = (r->opts->stop && *r->opts->stop) || r->opts->stop_at_step == r->st.step + 1;
    double red[3] = {step_loss, stop ? 1.0 : 0.0, failed};
    MPI_Allreduce(MPI_IN_PLACE, red, 3, MPI_DOUBLE, MPI_SUM, r->comm);
    *t_comm += MPI_Wtime() - t0;
    if (red[2] > 0) {
        if (failed) *err = r->stream_err;
        /* Keep the main thread out of HDF5 until the worker is idle. */
        if (!failed && s + 1 < steps) th_prefetch_wait(&r->prefetch, s + 1, &x, &y);
        th_dist_agree(r->comm, failed, err);
        return -1;
    }
    o->n = n;
    o->global_n = global_n;
    o->loss = red[0] / (double)global_n;
    o->stop = red[1] > 0;
    return 0;
}

/* One epoch of training steps, from step `first` (not 0 when resuming a run
 * stopped mid-epoch). Returns 0, TH_TRAIN_STOPPED after a stop request (with
 * last.h5 written), or -1. The mean training loss goes to *loss. */
static int train_epoch(run *r, int epoch, int first, int steps, double t_start, double *loss, double *img_per_s,
                       th_err *err)
{
    const th_config *cfg = r->cfg;
    double epoch_t0 = MPI_Wtime(), t_wait = 0, t_comm = 0;
    long images_now = 0;
    begin_epoch(r, epoch, first);
    for (int s = first; s < steps; s++) {
        step_out o;
        if (step_gradients(r, s, steps, &o, &t_wait, &t_comm, err)) return -1;
        int n = o.n;
        long global_n = o.global_n;
        double step_loss = o.loss;
        float *x;
        uint8_t *y;
        if (!isfinite(step_loss) || !grads_finite(&r->sync)) return nonfinite_error(r, epoch, s, n, step_loss, err);

        r->st.lr = scheduled_lr(r, steps);
        th_optim_step(&r->opt, r->model.params, r->model.grads, r->st.lr);
        r->st.step++;
        r->st.epoch_loss_sum += step_loss * (double)global_n;
        r->st.epoch_images += global_n;
        images_now += global_n;

        if (r->rank == 0 && r->cb && r->cb->on_step) {
            double now = MPI_Wtime();
            double done = (double)epoch * steps + s + 1, total = (double)cfg->train.epochs * steps;
            double run_done = done - ((double)r->start_step);
            th_step_report rep = {
                .epoch = epoch + 1,
                .epochs = cfg->train.epochs,
                .step_in_epoch = s + 1,
                .steps_per_epoch = steps,
                .step = r->st.step,
                .loss = step_loss,
                .img_per_s = (double)images_now / (now - epoch_t0 + 1e-9),
                .eta_s = (now - t_start) / (run_done > 0 ? run_done : 1) * (total - done),
                .data_wait_share = t_wait / (now - epoch_t0 + 1e-9),
                .allreduce_share = t_comm / (now - epoch_t0 + 1e-9),
            };
            r->cb->on_step(r->cb->ctx, &rep);
        }
        /* On an epoch's last step the request waits for the end of the epoch
         * (train_loop), whose checkpoint is the one to resume from. */
        if (o.stop && s + 1 == steps) r->stop_agreed = 1;
        if (o.stop && s + 1 < steps) {
            /* The worker may be reading the next batch: HDF5 is not thread-safe. */
            th_prefetch_wait(&r->prefetch, s + 1, &x, &y);
            info(r, "stop requested: checkpoint at epoch %d, step %d of %d (global step %ld)", epoch + 1, s + 1,
                 steps, r->st.step);
            return save_midepoch(r, err) ? -1 : TH_TRAIN_STOPPED;
        }
    }
    double elapsed = MPI_Wtime() - epoch_t0 + 1e-9;
    *loss = r->st.epoch_loss_sum / (double)(r->st.epoch_images ? r->st.epoch_images : 1);
    *img_per_s = (double)images_now / elapsed;
    r->data_wait_share = t_wait / elapsed;
    r->allreduce_share = t_comm / elapsed;
    r->st.epoch_loss_sum = 0;
    r->st.epoch_images = 0;
    return 0;
}

/* Predicts this rank's validation share; rank 0 gathers and scores it. */
static int validate(run *r, double *val_loss, double *val_auc, th_err *err)
{
    const th_config *cfg = r->cfg;
    int L = r->n_labels;
    double loss_sum = th_predict(&r->model, &r->input, cfg->train.loss, r->val.img, r->val.y, r->val.n, r->w_pos,
                                 r->w_neg, r->x, r->val_p);
    MPI_Allreduce(MPI_IN_PLACE, &loss_sum, 1, MPI_DOUBLE, MPI_SUM, r->comm);
    *val_loss = loss_sum / r->n_val_total;
    if (th_dist_gather_rows(r->comm, 0, r->val_p, r->val.n, L, r->val_p_all, err)) return -1;
    double auc = NAN;
    if (r->rank == 0) auc = th_auc_macro(r->n_val_total, L, r->val_p_all, r->val_y_all, NULL, NULL);
    MPI_Bcast(&auc, 1, MPI_DOUBLE, 0, r->comm);
    *val_auc = auc;
    return 0;
}

static int write_split_csv(run *r, th_err *err)
{
    th_strbuf b = {0};
    th_strbuf_printf(&b, "image,patient_id,split\n");
    for (int i = 0; i < r->ds.n; i++)
        th_strbuf_printf(&b, "%s,%s,%s\n", r->ds.image_name[i], r->ds.patient_id[i], th_split_name(r->split[i]));
    char path[4096];
    snprintf(path, sizeof path, "%s/split.csv", r->dir);
    int rc = b.failed ? th_errf(err, "out of memory writing %s", path)
                      : th_write_file_atomic(path, b.data, b.len, err);
    th_strbuf_free(&b);
    return rc;
}

/* metrics.csv as it stood at the checkpoint: the header and the rows of the
 * epochs it completed (a run stopped after writing later rows loses them). */
static void restore_metrics(run *r, const char *path)
{
    th_err ignored;
    char *old = th_read_file(path, NULL, &ignored);
    th_strbuf_printf(&r->metrics, "epoch,step,lr,train_loss,val_loss,val_auc_macro,img_per_s,seconds\n");
    for (char *line = old ? strchr(old, '\n') : NULL; line && line[1];) {
        char *row = line + 1;
        line = strchr(row, '\n');
        int len = line ? (int)(line - row) : (int)strlen(row);
        if (atoi(row) >= 1 && atoi(row) <= r->st.epoch) th_strbuf_printf(&r->metrics, "%.*s\n", len, row);
    }
    free(old);
}

/* Rank 0: the run directory's fixed files. */
static int start_run_dir(run *r, th_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoints", r->dir);
    if (th_mkdirs(path, err)) return -1;
    snprintf(path, sizeof path, "%s/config.yaml", r->dir);
    if (th_write_file_atomic(path, r->config_yaml, strlen(r->config_yaml), err)) return -1;
    if (write_split_csv(r, err)) return -1;
    snprintf(path, sizeof path, "%s/metrics.csv", r->dir);
    if (r->opts->resume_from) restore_metrics(r, path);
    else th_strbuf_printf(&r->metrics, "epoch,step,lr,train_loss,val_loss,val_auc_macro,img_per_s,seconds\n");
    return 0;
}

/* Every rank: the state of the checkpoint to continue from, after checking
 * that the experiment is the same one (seed, data and model unchanged). */
static int resume(run *r, th_err *err)
{
    const char *path = r->opts->resume_from;
    /* The stages too: the checkpoint's optimiser state is that of the
     * layers its run trained, and its epoch says which stage it is in. */
    static const char *const fixed[] = {"seed", "data", "model", "train.freeze", "train.unfreeze", NULL};
    th_config *was = malloc(sizeof *was);
    char *yaml = th_checkpoint_read_config(path, err);
    int rc = was && yaml ? 0 : -1;
    if (!was) th_errf(err, "out of memory");
    if (!rc && th_config_load_string(was, yaml, path, NULL, 0, err)) rc = th_err_prefix(err, "%s: ", path);
    if (!rc && th_config_compare(was, r->cfg, fixed, err))
        rc = th_err_prefix(err, "cannot resume from %s: the experiment changed: ", path);
    if (!rc && !r->staged) rc = th_checkpoint_load(path, &r->model, &r->opt, &r->st, err);
    /* A staged run learns its stage from the checkpoint's epoch first. */
    if (!rc && r->staged) rc = th_checkpoint_load(path, &r->model, NULL, &r->st, err);
    if (!rc && r->staged) {
        int thawed = r->cfg->train.unfreeze.epoch > 0 && r->st.epoch >= r->cfg->train.unfreeze.epoch;
        rc = set_stage(r, thawed, err);
        if (!rc) rc = th_checkpoint_load_optim(path, &r->model, &r->opt, err);
    }
    free(yaml);
    free(was);
    return rc;
}

/* Rank 0: curves.png, the training curves so far: loss (train, val) against
 * epoch, and val macro AUC against epoch. Read back from metrics.csv's rows
 * so that a resumed run draws its whole history. */
static int write_curves(run *r, th_err *err)
{
    enum { MAX_EPOCHS = 100000 };
    int n = 0;
    for (const char *c = r->metrics.data; c && *c; c++) n += *c == '\n';
    n = n > 1 ? n - 1 : 0;
    if (n > MAX_EPOCHS) n = MAX_EPOCHS;
    double *v = malloc(sizeof(double) * 4 * (size_t)(n + 1));
    if (!v) return th_errf(err, "out of memory drawing curves.png");
    double *ep = v, *tl = v + n, *vl = v + 2 * n, *auc = v + 3 * n;
    const char *line = strchr(r->metrics.data, '\n');
    for (int k = 0; k < n && line; k++) {
        /* epoch,step,lr,train_loss,val_loss,val_auc_macro,... */
        long step;
        double lr;
        if (sscanf(line + 1, "%lf,%ld,%lf,%lf,%lf,%lf", &ep[k], &step, &lr, &tl[k], &vl[k], &auc[k]) != 6)
            ep[k] = tl[k] = vl[k] = auc[k] = NAN;
        line = strchr(line + 1, '\n');
    }
    th_figure *f = th_figure_new(1400, 560, 2, r->cfg->name, err);
    int rc = -1;
    if (f) {
        th_plot *loss = th_figure_panel(f, 0), *score = th_figure_panel(f, 1);
        th_plot_labels(loss, "Loss", "epoch", r->cfg->train.loss == TH_LOSS_WEIGHTED_BCE ? "weighted BCE" : "loss");
        th_plot_series(loss, n, ep, tl, "train", TH_PLOT_MARKERS);
        th_plot_series(loss, n, ep, vl, "val", TH_PLOT_MARKERS);
        th_plot_legend(loss, TH_LEGEND_AUTO);
        th_plot_labels(score, "Validation macro AUC", "epoch", "AUC");
        th_plot_series(score, n, ep, auc, "val AUC", TH_PLOT_MARKERS | TH_PLOT_COLOR(2));
        th_plot_legend(score, TH_LEGEND_AUTO);
        char path[4096];
        snprintf(path, sizeof path, "%s/curves.png", r->dir);
        rc = th_figure_write_png(f, path, err);
        th_figure_free(f);
    }
    free(v);
    return rc;
}

/* Rank 0: metrics.csv, curves.png and the checkpoints after an epoch. */
static int end_epoch_files(run *r, const th_epoch_report *e, th_err *err)
{
    char path[4096];
    th_strbuf_printf(&r->metrics, "%d,%ld,%.6g,%.6f,%.6f,%.6f,%.1f,%.2f\n", e->epoch, e->step, (double)e->lr,
                     e->train_loss, e->val_loss, e->val_auc, e->img_per_s, e->seconds);
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

static int train_loop(run *r, th_err *err)
{
    const th_config *cfg = r->cfg;
    int steps = steps_per_epoch(r);
    long first = r->st.step - (long)r->st.epoch * steps;
    if (first < 0 || first >= steps)
        return th_errf(err, "the checkpoint stopped at global step %ld of epoch %d, which does not fit %d steps per "
                            "epoch: resume with the ranks and batch_per_rank it was written with",
                       r->st.step, r->st.epoch + 1, steps);
    r->start_step = r->st.step;
    double t_start = MPI_Wtime();
    info(r, "training %d epochs of %d steps: %d ranks x %d images per step, %zu parameters, %.3f GFLOP forward per "
            "image",
         cfg->train.epochs, steps, r->size, r->batch, r->model.n_params, th_model_flops(&r->model) / 1e9);
    if (r->st.step > 0) info(r, "resuming at epoch %d, step %ld of %d", r->st.epoch + 1, first + 1, steps);

    for (int epoch = r->st.epoch; epoch < cfg->train.epochs; epoch++) {
        double t0 = MPI_Wtime(), train_loss = 0, img_per_s = 0, val_loss = 0, val_auc = 0;
        int rc = train_epoch(r, epoch, (int)first, steps, t_start, &train_loss, &img_per_s, err);
        first = 0;
        if (rc) return rc;
        if (validate(r, &val_loss, &val_auc, err)) return -1;
        r->st.epoch = epoch + 1;
        th_epoch_report e = {
            .epoch = epoch + 1,
            .epochs = cfg->train.epochs,
            .step = r->st.step,
            .lr = r->st.lr,
            .train_loss = train_loss,
            .val_loss = val_loss,
            .val_auc = val_auc,
            .img_per_s = img_per_s,
            .data_wait_share = r->data_wait_share,
            .allreduce_share = r->allreduce_share,
        };
        th_schedule_after_epoch(cfg, &r->st, val_auc, &e.is_best, &e.stopping);
        /* The first stage is never the end of a run that has a second. */
        if (cfg->train.unfreeze.epoch > 0 && r->st.epoch <= cfg->train.unfreeze.epoch) e.stopping = 0;
        size_t thawed = 0;
        int thaw = r->staged && !r->thawed && r->st.epoch == cfg->train.unfreeze.epoch;
        if (thaw && th_dist_agree(r->comm, unfreeze(r, &thawed, err), err)) return -1;
        e.seconds = MPI_Wtime() - t0;
        rc = r->rank == 0 ? end_epoch_files(r, &e, err) : 0;
        if (th_dist_agree(r->comm, rc, err)) return -1;
        if (r->rank == 0 && r->cb && r->cb->on_epoch) r->cb->on_epoch(r->cb->ctx, &e);
        if (thaw)
            info(r, "unfreeze: from epoch %d every layer trains (%zu more parameters, their optimiser state from "
                    "zero) at lr %g; the schedule starts again from it",
                 epoch + 2, thawed, (double)r->st.lr);
        if (e.stopping) {
            info(r, "early stop: no gain in val AUC for %d epochs (best %.4f at epoch %d)", r->st.bad_epochs,
                 r->st.best_score, r->st.best_epoch);
            break;
        }
        /* A request that came during validation or checkpointing: last.h5 is
         * already this epoch's, so stopping here loses nothing. */
        int stop = r->stop_agreed || (r->opts->stop && *r->opts->stop);
        MPI_Allreduce(MPI_IN_PLACE, &stop, 1, MPI_INT, MPI_MAX, r->comm);
        if (stop && epoch + 1 < cfg->train.epochs) {
            info(r, "stop requested: checkpoint at the end of epoch %d", epoch + 1);
            return TH_TRAIN_STOPPED;
        }
    }
    return 0;
}

static void run_free(run *r)
{
    if (!r->ds_open) {
        free(r->resolved);
        return; /* nothing else was made */
    }
    th_prefetch_stop(&r->prefetch);
    th_image_reader_close(&r->reader);
    free(r->stage);
    free(r->batch_rows);
    th_grad_sync_free(&r->sync);
    th_model_free(&r->model);
    th_optim_free(&r->opt);
    th_dataset_close(&r->ds);
    free(r->split);
    free(r->owner);
    free(r->shard_size);
    th_shard_free(&r->train);
    th_shard_free(&r->val);
    free(r->val_y_all);
    free(r->val_p_all);
    free(r->order);
    free(r->x);
    free(r->dz);
    free(r->val_p);
    free(r->config_yaml);
    th_strbuf_free(&r->metrics);
    free(r->stage_cfg[0]);
    free(r->stage_cfg[1]);
    free(r->resolved);
}

static int check_input_shape(run *r, th_err *err)
{
    const th_model_spec *m = &r->cfg->model;
    if (m->c != 1)
        return th_errf(err, "model.input: X-rays are read as 1 channel, so the input must be [1, H, W], got [%d, %d, %d]",
                       m->c, m->h, m->w);
    if (m->h != r->ds.h || m->w != r->ds.w)
        return th_errf(err, "model.input is [1, %d, %d] but %s holds %dx%d images (ingest at --size %d, or change "
                            "model.input)",
                       m->h, m->w, r->ds.path, r->ds.h, r->ds.w, m->h);
    return 0;
}

/* Everything before the first step, collective: the dataset, split, shards,
 * this rank's data, class weights, normalisation, the model initialised from
 * the seed (or the checkpoint of opts->resume_from) and the optimiser. Writes
 * no file. On failure (on every rank) run_free(r) is still to be called. */
static int run_setup(run *r, const th_config *cfg, const th_train_opts *opts, MPI_Comm comm,
                     const th_train_callbacks *cb, th_err *err)
{
    static const th_train_opts no_opts;
    memset(r, 0, sizeof *r);
    r->comm = comm;
    r->cb = cb;
    r->opts = opts ? opts : &no_opts;
    MPI_Comm_rank(comm, &r->rank);
    MPI_Comm_size(comm, &r->size);

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
    int rc = th_plan_labels(cfg, &r->ds, r->label_col, &r->n_labels, err);
    if (!rc) rc = th_config_name_labels(resolved, (const char *const *)r->ds.label_names, r->label_col, r->n_labels, err);
    if (!rc) rc = check_input_shape(r, err);
    if (!rc) rc = th_model_spec_check(&cfg->model, r->n_labels, err);
    /* Every rank holds the same index and config, so these checks agree. */
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
        rc = th_dist_agree(comm, make_stage_cfgs(r, err), err);
    }
    if (!rc) {
        th_model_init_params(&r->model, cfg->seed);
        r->st.lr = cfg->train.optimizer.lr;
        r->st.best_score = -INFINITY;
        if (r->opts->resume_from) rc = th_dist_agree(comm, resume(r, err), err);
        else if (cfg->model_init[0]) rc = init_from_file(r, err);
        if (!rc && r->staged && !r->opts->resume_from) rc = th_dist_agree(comm, set_stage(r, 0, err), err);
        if (!rc && r->staged && !r->thawed) describe_freeze(r);
        /* After a resume: the checkpoint's statistics, which are the same numbers. */
        th_input_init(&r->input, cfg, r->ds.h, r->ds.w, r->st.norm_mean, r->st.norm_std);
    }
    return rc;
}

/* The "data ..." line of the log. */
static void describe_data(run *r)
{
    int counts[3] = {0, 0, 0};
    for (int i = 0; i < r->ds.n; i++)
        if (r->split[i] <= TH_SPLIT_TEST) counts[r->split[i]]++;
    info(r, "data %s: %d images %dx%d, %d labels; split train/val/test = %d/%d/%d images by patient", r->cfg->data.path,
         r->ds.n, r->ds.h, r->ds.w, r->n_labels, counts[0], counts[1], counts[2]);
}

int th_train_run(const th_config *cfg, const char *run_dir, const th_train_opts *opts, MPI_Comm comm,
                 const th_train_callbacks *cb, th_err *err)
{
    run r;
    int rc = run_setup(&r, cfg, opts, comm, cb, err);
    r.dir = run_dir;
    if (!rc) {
        r.config_yaml = th_config_to_yaml(r.cfg);
        int local = r.config_yaml ? 0 : th_errf(err, "out of memory writing the resolved config");
        if (!local && r.rank == 0) local = start_run_dir(&r, err);
        rc = th_dist_agree(comm, local, err);
    }
    if (!rc) {
        describe_data(&r);
        rc = train_loop(&r, err);
    }
    run_free(&r);
    return rc;
}

/* ------------------------------------------------------------------------
 * The trainer: the same setup and steps, one step at a time, at a rate the
 * caller chooses (the learning-rate finder).
 */

struct th_trainer {
    run r;
    int epoch, s, steps;    /* the next step: step s of epoch `epoch` */
    double t_wait, t_comm;  /* unused totals step_gradients adds to */
};

th_trainer *th_trainer_open(const th_config *cfg, MPI_Comm comm, const th_train_callbacks *cb, th_err *err)
{
    th_trainer *t = calloc(1, sizeof *t);
    int rc = t ? 0 : th_errf(err, "out of memory");
    if (th_dist_agree(comm, rc, err)) {
        free(t);
        return NULL;
    }
    if (run_setup(&t->r, cfg, NULL, comm, cb, err)) {
        run_free(&t->r);
        free(t);
        return NULL;
    }
    t->steps = steps_per_epoch(&t->r);
    describe_data(&t->r);
    info(&t->r, "%d steps per epoch: %d ranks x %d images per step, %zu parameters", t->steps, t->r.size, t->r.batch,
         t->r.model.n_params);
    return t;
}

int th_trainer_step(th_trainer *t, float lr, double *loss, th_err *err)
{
    run *r = &t->r;
    if (t->s == 0) begin_epoch(r, t->epoch, 0);
    step_out o;
    if (step_gradients(r, t->s, t->steps, &o, &t->t_wait, &t->t_comm, err)) return -1;
    *loss = o.loss;
    /* The summed gradients are the same on every rank, so is this verdict. */
    if (!isfinite(o.loss) || !grads_finite(&r->sync)) return TH_TRAINER_DIVERGED;
    r->st.lr = lr;
    th_optim_step(&r->opt, r->model.params, r->model.grads, lr);
    r->st.step++;
    if (++t->s == t->steps) {
        t->s = 0;
        t->epoch++;
    }
    return 0;
}

int th_trainer_steps_per_epoch(const th_trainer *t) { return t->steps; }

void th_trainer_close(th_trainer *t)
{
    if (!t) return;
    /* th_prefetch_stop (in run_free) joins a worker still filling the next
     * batch before the reader's HDF5 handle closes. */
    run_free(&t->r);
    free(t);
}

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
 * epoch of train.unfreeze when given (stages.c). The run's other pieces are
 * in run_data.c (setup) and rundir.c (its files); run.h lists them.
 * Every failure that one rank can meet alone goes through th_dist_agree
 * before the next collective, so no rank is left waiting in one.
 */
#include "thorax/train.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "run.h"
#include "thorax/util.h"
#include "thorax/nn.h"
#include "schedule.h"
#include "thorax/data.h"

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
    long global_n = 0;
    for (int k = 0; k < r->size; k++) global_n += run_images_at_step(r, k, s);
    float *x;
    uint8_t *y;
    double t0 = th_now();
    int n = th_prefetch_wait(&r->prefetch, s, &x, &y);
    *t_wait += th_now() - t0;
    /* A failed read: this rank adds nothing to the step, and every rank
     * learns of the failure from the allreduce below. */
    int failed = n < 0;
    if (failed) n = 0;
    if (s + 1 < steps && !failed) th_prefetch_request(&r->prefetch, s + 1);
    if (r->opts->nan_at_step == r->st.step + 1 && r->rank == 0 && n > 0) x[0] = NAN;

    int stop = (r->opts->stop && *r->opts->stop) || r->opts->stop_at_step == r->st.step + 1;
    th_step_out so;
    if (th_step_gradients(&r->step, x, y, n, global_n, cfg->seed, r->st.step, stop, failed, &so, err)) return -1;
    *t_comm += so.comm_s;
    if (so.failed) {
        if (failed) *err = r->stream_err;
        /* Keep the main thread out of HDF5 until the worker is idle. */
        if (!failed && s + 1 < steps) th_prefetch_wait(&r->prefetch, s + 1, &x, &y);
        th_dist_agree(r->comm, failed, err);
        return -1;
    }
    o->n = n;
    o->global_n = global_n;
    o->loss = so.loss;
    o->stop = so.stop;
    return 0;
}

/* One epoch of training steps, from step `first` (not 0 when resuming a run
 * stopped mid-epoch; `steps` when it stopped in the epoch's validation, which
 * leaves no step to take). Returns 0, TH_TRAIN_STOPPED after a stop request
 * (with last.h5 written), or -1. The mean training loss goes to *loss; the
 * epoch's sums stay in r->st until its validation is done (train_loop), so
 * that a checkpoint written during validation keeps them. */
static int train_epoch(run *r, int epoch, int first, int steps, double t_start, double *loss, double *img_per_s,
                       th_err *err)
{
    const th_config *cfg = r->cfg;
    double epoch_t0 = th_now(), t_wait = 0, t_comm = 0;
    long images_now = 0;
    if (first < steps) begin_epoch(r, epoch, first);
    for (int s = first; s < steps; s++) {
        step_out o;
        if (step_gradients(r, s, steps, &o, &t_wait, &t_comm, err)) return -1;
        int n = o.n;
        long global_n = o.global_n;
        double step_loss = o.loss;
        float *x;
        uint8_t *y;
        if (!isfinite(step_loss) || !th_step_grads_finite(&r->step)) return nonfinite_error(r, epoch, s, n, step_loss, err);

        r->st.lr = run_scheduled_lr(r, steps);
        th_step_update(&r->step, r->st.lr);
        r->st.step++;
        r->st.epoch_loss_sum += step_loss * (double)global_n;
        r->st.epoch_images += global_n;
        images_now += global_n;

        if (r->rank == 0 && r->cb && r->cb->on_step) {
            double now = th_now();
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
         * (train_loop), whose checkpoint is the one to resume from; a signal's
         * flag, still set, stops the validation in between at its first
         * batch, and the checkpoint is then the one before validation. */
        if (o.stop && s + 1 == steps) r->stop_agreed = 1;
        if (o.stop && s + 1 < steps) {
            /* The worker may be reading the next batch: HDF5 is not thread-safe. */
            th_prefetch_wait(&r->prefetch, s + 1, &x, &y);
            run_info(r, "stop requested: checkpoint at epoch %d, step %d of %d (global step %ld)", epoch + 1, s + 1,
                 steps, r->st.step);
            return run_save_midepoch(r, err) ? -1 : TH_TRAIN_STOPPED;
        }
    }
    double elapsed = th_now() - epoch_t0 + 1e-9;
    *loss = r->st.epoch_loss_sum / (double)(r->st.epoch_images ? r->st.epoch_images : 1);
    *img_per_s = (double)images_now / elapsed;
    r->data_wait_share = t_wait / elapsed;
    r->allreduce_share = t_comm / elapsed;
    return 0;
}

/* Predicts this rank's validation share; rank 0 gathers and scores it.
 * Returns 0, -1, or TH_TRAIN_STOPPED when a stop request came between two
 * batches (every rank stops at the same batch). */
static int validate(run *r, double *val_loss, double *val_auc, th_err *err)
{
    const th_config *cfg = r->cfg;
    int L = r->n_labels;
    double loss_sum = 0;
    th_stop_poll poll = {.flag = r->opts->stop, .batch_sleep_ms = r->opts->val_sleep_ms};
    if (th_predict_share(&r->model, &r->input, cfg->train.loss, r->val.img, r->val.y, r->val.n, r->w_pos, r->w_neg,
                         r->x, r->val_p, r->comm, &poll, &loss_sum))
        return TH_TRAIN_STOPPED;
    /* The mean over the known entries, as in training (thorax/nn.h); with
     * every label known, the sum over images / images as before. */
    double red[2] = {loss_sum, (double)th_label_known(r->val.n, L, r->val.y)};
    th_dist_sum(r->comm, red, 2);
    double all = (double)r->n_val_total * L;
    *val_loss = red[1] == all ? red[0] / r->n_val_total : red[0] * L / red[1];
    if (th_dist_gather_rows(r->comm, 0, r->val_p, r->val.n, L, r->val_p_all, err)) return -1;
    double auc = NAN;
    if (r->rank == 0) auc = th_auc_macro(r->n_val_total, L, r->val_p_all, r->val_y_all, r->val_auc, NULL);
    if (th_dist_bcast(r->comm, 0, &auc, sizeof auc, err)) return -1;
    *val_auc = auc;
    return 0;
}


/* A resumed run's checkpoint fits this job's steps per epoch; checked
 * before the run directory's files are rewritten, so a refused resume leaves
 * them as they were. */
static int check_resume_fits(const run *r, th_err *err)
{
    int steps = steps_per_epoch(r);
    long first = r->st.step - (long)r->st.epoch * steps;
    if (first < 0 || first > steps) {
        int train = 0;
        for (int i = 0; i < r->ds.n; i++) train += r->split[i] == TH_SPLIT_TRAIN;
        /* Other data gives other steps per epoch whatever the ranks: say so
         * rather than blame the job's shape. */
        if (r->was_images >= 0 && (r->was_images != r->ds.n || r->was_train != train))
            return th_errf(err, "cannot resume: the data changed: the run's split.csv lists %d images (%d to train "
                                "on), %s now has %d (%d to train on); the checkpoint (global step %ld of epoch %d) "
                                "does not fit its %d steps per epoch; resume on the data it was trained on, or start "
                                "a new run",
                           r->was_images, r->was_train, r->ds.path, r->ds.n, train, r->st.step, r->st.epoch + 1,
                           steps);
        return th_errf(err, "the checkpoint stopped at global step %ld of epoch %d, which does not fit %d steps per "
                            "epoch: resume with the ranks and batch_per_rank it was written with",
                       r->st.step, r->st.epoch + 1, steps);
    }
    return 0;
}

static int train_loop(run *r, th_err *err)
{
    const th_config *cfg = r->cfg;
    int steps = steps_per_epoch(r);
    long first = r->st.step - (long)r->st.epoch * steps;
    r->start_step = r->st.step;
    double t_start = th_now();
    run_info(r, "training %d epochs of %d steps: %d ranks x %d images per step, %zu parameters, %.3f GFLOP forward per "
            "image",
         cfg->train.epochs, steps, r->size, r->batch, r->model.n_params, th_model_flops(&r->model) / 1e9);
    if (r->st.step > 0 && first == steps)
        run_info(r, "resuming at epoch %d, its validation (stopped during it)", r->st.epoch + 1);
    else if (r->st.step > 0)
        run_info(r, "resuming at epoch %d, step %ld of %d", r->st.epoch + 1, first + 1, steps);
    /* A run that early stopping ended stays ended when it runs again (its
     * evaluation phase stopped and requeued): the same test as
     * th_schedule_after_epoch's on the checkpoint's counters, so that the
     * rerun's parameters are those of a run never stopped. */
    int first_stage = cfg->train.unfreeze.epoch > 0 && r->st.epoch <= cfg->train.unfreeze.epoch;
    if (first == 0 && r->st.epoch > 0 && r->st.epoch < cfg->train.epochs && cfg->train.early_stop_patience > 0 &&
        r->st.bad_epochs >= cfg->train.early_stop_patience && !first_stage) {
        run_info(r, "early stop: the run ended at epoch %d (no gain in val AUC for %d epochs)", r->st.epoch,
                 r->st.bad_epochs);
        return 0;
    }

    for (int epoch = r->st.epoch; epoch < cfg->train.epochs; epoch++) {
        double t0 = th_now(), train_loss = 0, img_per_s = 0, val_loss = 0, val_auc = 0;
        int rc = train_epoch(r, epoch, (int)first, steps, t_start, &train_loss, &img_per_s, err);
        first = 0;
        if (rc) return rc;
        rc = validate(r, &val_loss, &val_auc, err);
        if (rc == TH_TRAIN_STOPPED) {
            /* last.h5 at the end of the epoch's steps, before its validation:
             * the resumed run takes no step and validates this epoch again. */
            run_info(r, "stop requested during validation: checkpoint after the steps of epoch %d (global step %ld); "
                     "its validation runs again on resume", epoch + 1, r->st.step);
            return run_save_midepoch(r, err) ? -1 : TH_TRAIN_STOPPED;
        }
        if (rc) return -1;
        r->st.epoch_loss_sum = 0;
        r->st.epoch_images = 0;
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
        if (thaw && th_dist_agree(r->comm, run_unfreeze(r, &thawed, err), err)) return -1;
        e.seconds = th_now() - t0;
        rc = r->rank == 0 ? run_end_epoch_files(r, &e, err) : 0;
        if (th_dist_agree(r->comm, rc, err)) return -1;
        if (r->rank == 0 && r->cb && r->cb->on_epoch) r->cb->on_epoch(r->cb->ctx, &e);
        if (thaw)
            run_info(r, "unfreeze: from epoch %d every layer trains (%zu more parameters, their optimiser state from "
                    "zero) at lr %g; the schedule starts again from it",
                 epoch + 2, thawed, (double)r->st.lr);
        if (e.stopping) {
            run_info(r, "early stop: no gain in val AUC for %d epochs (best %.4f at epoch %d)", r->st.bad_epochs,
                 r->st.best_score, r->st.best_epoch);
            break;
        }
        /* A request that came during the last validation batch or
         * checkpointing: last.h5 is already this epoch's, so stopping here
         * loses nothing. */
        int stop = r->stop_agreed || (r->opts->stop && *r->opts->stop);
        stop = th_dist_any(r->comm, stop);
        if (stop && epoch + 1 < cfg->train.epochs) {
            run_info(r, "stop requested: checkpoint at the end of epoch %d", epoch + 1);
            return TH_TRAIN_STOPPED;
        }
    }
    return 0;
}


int th_train_run(const th_config *cfg, const char *run_dir, const th_train_opts *opts, th_comm comm,
                 const th_train_callbacks *cb, th_err *err)
{
    run r;
    time_t started = time(NULL);
    int rc = run_setup(&r, cfg, opts, comm, cb, err);
    r.dir = run_dir;
    r.was_images = r.was_train = -1;
    if (!rc && opts->resume_from) {
        run_count_split_csv(&r);
        rc = check_resume_fits(&r, err);
    }
    if (!rc) {
        r.config_yaml = th_config_to_yaml(r.cfg);
        int local = r.config_yaml ? 0 : th_errf(err, "out of memory writing the resolved config");
        if (!local && r.rank == 0) local = run_start_dir(&r, err);
        rc = th_dist_agree(comm, local, err);
    }
    if (!rc) rc = run_write_provenance(&r, started, err);
    if (!rc) {
        run_describe_data(&r);
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

th_trainer *th_trainer_open(const th_config *cfg, th_comm comm, const th_train_callbacks *cb, th_err *err)
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
    run_describe_data(&t->r);
    run_info(&t->r, "%d steps per epoch: %d ranks x %d images per step, %zu parameters", t->steps, t->r.size, t->r.batch,
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
    if (!isfinite(o.loss) || !th_step_grads_finite(&r->step)) return TH_TRAINER_DIVERGED;
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

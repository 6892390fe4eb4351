/* train.h - the distributed training loop.
 *
 * th_train_run is collective over comm. Rank 0 splits patients and assigns
 * each rank whole training patients; each rank reads its images with
 * parallel HDF5, computes the gradient of its share of every global batch,
 * and the gradients are averaged with MPI_Allreduce. After each epoch the
 * ranks predict the validation split, rank 0 gathers the predictions,
 * computes the macro AUC, appends to metrics.csv and writes checkpoints.
 *
 * The library prints nothing: progress and results go to the callbacks
 * (called on rank 0 only).
 */
#ifndef THORAX_TRAIN_H
#define THORAX_TRAIN_H

#include <signal.h>
#include <stdint.h>
#include "thorax/config.h"
#include "thorax/dist.h"
#include "thorax/dataset.h"
#include "thorax/plan.h"
#include "thorax/error.h"

typedef struct th_step_report {
    int epoch, epochs;          /* 1-based epoch */
    int step_in_epoch, steps_per_epoch;
    long step;                  /* global optimiser step */
    double loss;                /* mean loss of the last step's global batch */
    double img_per_s;           /* global images per second over the epoch so far */
    double eta_s;               /* estimated seconds to the end of training */
    double data_wait_share;     /* share of the epoch's step time spent waiting for a batch */
    double allreduce_share;     /* share spent waiting for the allreduces after backward */
} th_step_report;

typedef struct th_epoch_report {
    int epoch, epochs;
    long step;
    float lr;
    double train_loss, val_loss, val_auc;
    double img_per_s, seconds;
    double data_wait_share, allreduce_share;
    int is_best;
    int stopping;               /* early stopping ends the run after this epoch */
} th_epoch_report;

typedef struct th_train_callbacks {
    void (*on_info)(void *ctx, const char *msg);
    void (*on_step)(void *ctx, const th_step_report *r);
    void (*on_epoch)(void *ctx, const th_epoch_report *r);
    void *ctx;
} th_train_callbacks;

typedef struct th_train_opts {
    /* Continue from this checkpoint (a run directory's last.h5), or NULL for
     * a fresh start. The config's seed, data and model sections must match
     * the checkpoint's; train (e.g. more epochs) may differ. */
    const char *resume_from;
    /* Set (by a signal handler) to ask the ranks to stop after the current
     * step: they agree, write last.h5 and return TH_TRAIN_STOPPED. */
    const volatile sig_atomic_t *stop;
    /* Test hooks, global steps 1-based (0 = never): poison rank 0's input at
     * nan_at_step; behave as if a stop request arrived during stop_at_step. */
    long nan_at_step;
    long stop_at_step;
} th_train_opts;

/* th_train_run returns this when a stop request ended the run early. */
#define TH_TRAIN_STOPPED 1

/* Where a run lives and whether it continues (the run-directory policy of
 * `thorax train`): with resume NULL, a fresh run in <out_dir>/<name>,
 * refused when that already holds one (its checkpoints/last.h5); with
 * "auto", that directory, continued when it holds last.h5 and started
 * otherwise; with a run directory, that one, which must hold last.h5. Not
 * collective: every rank sees the same file system and decides alike. */
typedef struct th_run_place {
    char dir[2 * TH_PATH_MAX];
    char last[2 * TH_PATH_MAX + 32];    /* dir/checkpoints/last.h5 */
    int resuming;                       /* last exists: th_train_opts.resume_from = last */
} th_run_place;

int th_train_place(const th_config *cfg, const char *resume, th_run_place *p, th_err *err);

/* Trains cfg, writing the run directory run_dir (created if needed).
 * Returns 0 when done, TH_TRAIN_STOPPED, or -1 with err set (on every rank). */
int th_train_run(const th_config *cfg, const char *run_dir, const th_train_opts *opts, th_comm comm,
                 const th_train_callbacks *cb, th_err *err);

/* A trainer: th_train_run's setup (data, split, shards, normalisation, class
 * weights, model initialised from the seed, the config's optimiser) and its
 * training steps, taken one at a time at a learning rate the caller chooses
 * (the learning-rate finder). Epochs follow each other as in training: the
 * same shard orders, augmentation and dropout masks. Writes no file. All
 * calls are collective over comm. */
typedef struct th_trainer th_trainer;

/* NULL, with err set on every rank, on failure; cb->on_info gets the log. */
th_trainer *th_trainer_open(const th_config *cfg, th_comm comm, const th_train_callbacks *cb, th_err *err);

/* th_trainer_step returns this when the step's loss or gradients are not
 * finite: *loss holds the loss and the parameters are left unchanged. */
#define TH_TRAINER_DIVERGED 1

/* One global step at rate lr: *loss is the mean loss of the global batch
 * (before the update). Returns 0, TH_TRAINER_DIVERGED, or -1 (a read failed). */
int th_trainer_step(th_trainer *t, float lr, double *loss, th_err *err);

int th_trainer_steps_per_epoch(const th_trainer *t);
void th_trainer_close(th_trainer *t);

#endif

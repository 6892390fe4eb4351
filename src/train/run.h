/* run.h - one training run as the files of src/train share it (private).
 *
 * train.c    the step and epoch loop, th_train_run and th_trainer;
 * run_data.c everything before the first step: dataset, split, shards, this
 *            rank's data, class weights, normalisation, model, optimiser;
 * stages.c   train.freeze and train.unfreeze: which layers train when, and
 *            each stage's learning-rate schedule;
 * rundir.c   the run directory: split.csv, metrics.csv, curves.png,
 *            config.yaml, the checkpoints, and resuming from them;
 * provenance.c run.json: the sessions of the run, where and how each ran.
 */
#ifndef THORAX_TRAIN_RUN_H
#define THORAX_TRAIN_RUN_H

#include <stdint.h>
#include <time.h>

#include "thorax/train.h"
#include "thorax/data.h"
#include "thorax/dist.h"
#include "thorax/util.h"
#include "thorax/nn.h"
#include "prefetch.h"

/* Everything one run holds. Sized once before the first step. */
typedef struct run {
    const th_config *cfg;
    th_config *resolved;            /* owned: cfg with its labels spelled out */
    int ds_open;                    /* the dataset opened (run_free has something to free) */
    const char *dir;
    th_comm comm;
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
    th_plan_dups dups;              /* rank 0: the same picture twice (duplicates.csv) */
    int hw;                         /* pixels per image */

    /* This rank's data, in dataset order. */
    th_shard train, val;
    th_input input;                 /* augmentation and normalisation */
    int n_val_total;                /* validation images over all ranks */
    uint8_t *val_y_all;             /* rank 0: [n_val_total, n_labels] in gather order */
    float *val_p_all;               /* rank 0: gathered probabilities */
    double val_auc[TH_MAX_LABELS];  /* rank 0: the last validation's AUC per label (NaN: undefined) */

    /* Step buffers. */
    int batch;                      /* images per rank per step */
    int *order;                     /* [train.n] this epoch's order of the shard */
    float *x;                       /* [batch, 1, H, W] validation input */
    float *val_p;                   /* [val.n, n_labels] */
    float w_pos[TH_MAX_LABELS], w_neg[TH_MAX_LABELS];
    int unknown_labels;             /* some training label is TH_LABEL_UNKNOWN (th_step.unknowns) */
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
    th_step step;                   /* the training step (its gradient sync is the model's hook) */
    th_optim opt;
    /* Stages (train.freeze, train.unfreeze). */
    int staged;                     /* train.freeze names layers */
    int thawed;                     /* the second stage: every layer trains */
    th_config *stage_cfg[2];        /* with train.unfreeze: each stage's schedule (see scheduled_lr) */
    th_train_state st;
    /* Resuming: the images and training images of the run's split.csv as
     * the checkpoint's session left it (-1: none; run_count_split_csv), to
     * say when a checkpoint that does not fit the steps per epoch was made
     * on other data. */
    int was_images, was_train;
    char *config_yaml;
    th_strbuf metrics;              /* metrics.csv so far, rewritten atomically each epoch */
} run;

/* run_data.c */
void run_info(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int run_images_at_step(const run *r, int k, int s);
void run_free(run *r);
int run_setup(run *r, const th_config *cfg, const th_train_opts *opts, th_comm comm,
                     const th_train_callbacks *cb, th_err *err);
void run_describe_data(run *r);

/* stages.c */
int run_set_stage(run *r, int thawed, th_err *err);
void run_describe_freeze(run *r);
int run_unfreeze(run *r, size_t *thawed, th_err *err);
float run_scheduled_lr(const run *r, int steps);
int run_make_stage_cfgs(run *r, th_err *err);

/* rundir.c */
int run_save_midepoch(run *r, th_err *err);
/* Rank by rank, before run_start_dir rewrites it: r->was_images and
 * r->was_train from r->dir/split.csv. */
void run_count_split_csv(run *r);
int run_start_dir(run *r, th_err *err);
int run_resume(run *r, th_err *err);
int run_end_epoch_files(run *r, const th_epoch_report *e, th_err *err);

/* provenance.c. Collective: gathers the ranks' host names; rank 0 appends
 * this session (started then) to run.json. */
int run_write_provenance(run *r, time_t started, th_err *err);

#endif

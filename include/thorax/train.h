/* train.h - a training run: the one training step, the epoch loop over
 * the ranks, the run directory, checkpoints, prediction, the plain AUC,
 * the benchmark and the learning-rate finder. Orchestrates nn, data, dist,
 * config and render; never uses eval.
 *
 *   th_run_place place;
 *   th_train_place(cfg, "auto", &place, &err);            // where the run lives, resume or not
 *   th_train_opts o = {.resume_from = place.resuming ? place.last : NULL};
 *   th_train_run(cfg, place.dir, &o, comm, &callbacks, &err);   // collective
 */
#ifndef THORAX_TRAIN_H
#define THORAX_TRAIN_H

#include <signal.h>
#include <stdint.h>
#include "thorax/util.h"
#include "thorax/nn.h"
#include "thorax/dist.h"
#include "thorax/data.h"
#include "thorax/config.h"

/* ------------------------------------------------------------------------- */
/* A configuration checked against the network it describes.
 *
 * Part of train: the config module reads and validates keys without knowing
 * the network code (it depends on thorax/spec.h alone), so what only the
 * network can tell - that the layers fit the input and end in one output per
 * label, that every train.freeze entry names a layer and something still
 * trains - is checked here, with the messages and "file:line:" places the
 * loader would have given (th_config.at).
 */
/* The checks above on a loaded config. */
int th_run_config_check(const th_config *cfg, th_err *err);

/* th_config_load / th_config_load_string, then th_run_config_check: how
 * every command and run reads a configuration. */
int th_run_config_load(th_config *cfg, const char *path, const char *const *sets, int n_sets, th_err *err);
int th_run_config_load_string(th_config *cfg, const char *yaml, const char *name, const char *const *sets,
                              int n_sets, th_err *err);

/* ------------------------------------------------------------------------- */
/* The area under the ROC curve, as training reports it on the
 * validation split every epoch, and the sorted-score sweep it is read from.
 *
 * The AUC is the Mann-Whitney statistic: the probability that a random
 * positive scores above a random negative, ties counting one half (equal to
 * scikit-learn's roc_auc_score). It is exact: the scores are sorted once in
 * decreasing order and swept in groups of tied scores, with no binning.
 * Eval's ROC analysis (thorax/eval.h: the curve, DeLong's interval, the
 * operating points) runs its own sweeps over the same sorted scores and takes
 * the AUC from here, so that training's validation AUC and evaluation's
 * are one computation.
 */
/* score[i * stride], y[i * stride] for i < n. Returns NaN when one class is
 * absent, when a score is NaN, or when memory runs out. */
double th_auc(int n, const float *score, const uint8_t *y, int stride);

/* Per-label AUC of p [n, l] against y [n, l] into auc[l] (NaN where undefined);
 * returns the mean over the labels where it is defined (NaN if none) and
 * stores how many those are in *n_defined (may be NULL). */
double th_auc_macro(int n, int l, const float *p, const uint8_t *y, double *auc, int *n_defined);

/* ---- the sweep, for ROC analysis ------------------------------------------ */

/* One case: its score and its class (0/1). */
typedef struct th_scored {
    float score;
    uint8_t y;
} th_scored;

/* Gathers score[i * stride], y[i * stride] of the *n_known cases whose y is
 * known (TH_LABEL_UNKNOWN left out) into *out [*n_known] (malloc'd; free it)
 * sorted by decreasing score, so that a sweep meets the highest threshold
 * first, as the ROC curve does, and counts the positives into *n_pos.
 * n_known may point to the caller's n.
 * Returns -1 for a negative n, a NaN score (naming the case) or an
 * allocation failure, with *out NULL. */
int th_scores_rank(int n, const float *score, const uint8_t *y, int stride, th_scored **out, int *n_known,
                   long *n_pos, th_err *err);

/* The cases i < n whose y[i * stride] is known (not TH_LABEL_UNKNOWN), copied
 * to *p_out and *y_out [*m] (stride 1, malloc'd; free both), so that a metric
 * over the known cases is the metric of these. When every case is known both
 * are NULL and *m = n (use the inputs). Returns -1 when memory runs out. */
int th_known_cases(int n, const float *p, const uint8_t *y, int stride, float **p_out, uint8_t **y_out, int *m,
                   th_err *err);

/* Returns the end of the group of scores tied with s[i] (sorted as above),
 * counting its positives and negatives into *dpos, *dneg. Inline: every
 * sweep calls it once per distinct score. */
static inline int th_scores_tie_group(const th_scored *s, int n, int i, long *dpos, long *dneg)
{
    int j = i;
    long pos = 0;
    while (j < n && s[j].score == s[i].score) pos += s[j++].y;
    *dpos = pos;
    *dneg = (long)(j - i) - pos;
    return j;
}

/* The AUC of sorted scores with both classes present (n_pos, n_neg > 0). */
double th_auc_sorted(const th_scored *s, int n, long n_pos, long n_neg);

/* ------------------------------------------------------------------------- */
/* Which images a run uses: its labels and its patient split.
 *
 * Training, evaluation, `thorax split` and `thorax cam` must agree on both,
 * so they all come from the config and the dataset's index through these two
 * functions, deterministically.
 */
/* The run's labels: label_col[k] is the column in ds of the k-th label the
 * config names (every label of the file when it names none). label_col has
 * room for TH_MAX_LABELS. The error names a missing label and lists the file's. */
int th_plan_labels(const th_config *cfg, const th_dataset *ds, int *label_col, int *n_labels, th_err *err);

/* The split of every image of ds that cfg asks for, split [ds->n]: by patient
 * with the configured fractions, stratified on the run's labels; or the file's
 * predefined /split, which is refused if it puts a patient in two splits
 * (naming how many and a few of them) unless data.on_leak is drop_from_eval,
 * which marks those patients' val/test images TH_SPLIT_NONE and counts them
 * in *dropped (may be NULL). */
int th_plan_split(const th_config *cfg, const th_dataset *ds, const int *label_col, int n_labels, uint8_t *split,
                   int *dropped, th_err *err);

/* th_plan_split, and what it found and did about the same picture in two
 * splits (data.on_duplicate, data.duplicate_bits; th_dups_find). Unless
 * on_duplicate is keep, th_plan_split itself hashes every image of ds and
 * applies the policy after the patient split: refuse is an error naming the
 * first groups; drop leaves each crossing group's images outside its
 * earliest split (train < val < test) as TH_SPLIT_NONE. Here the groups are
 * found whatever the policy, and kept in *dups (also when refuse fails, so
 * that `thorax split` can list them); free with th_plan_dups_free. */
typedef struct th_plan_dups {
    th_dups found;          /* every group of the file, within a split or across */
    uint8_t *split_before;  /* [n] each image's split before the policy */
    uint8_t *first;         /* [n_groups] each group's earliest split */
    uint8_t *cross;         /* [n_groups] 1 when the group has images in two splits */
    int n_cross;            /* groups across splits */
    int cross_images;       /* their images */
    int dropped;            /* images left out by drop */
} th_plan_dups;
int th_plan_split_dups(const th_config *cfg, const th_dataset *ds, const int *label_col, int n_labels,
                       uint8_t *split, int *dropped, th_plan_dups *dups, th_err *err);
void th_plan_dups_free(th_plan_dups *p);
/* duplicates.csv: group,kind (identical or near),across_splits (0/1),image,
 * patient_id,split (before the policy),kept (0/1: in a split afterwards,
 * split [n]),phash (16 hex digits), one row per image of every group. */
int th_plan_dups_csv(const th_dataset *ds, const th_plan_dups *p, const uint8_t *split, th_strbuf *b);

/* How the run turns stored images into inputs: cfg's data.normalize,
 * data.augment and seed, as th_input_init takes them. Training, evaluation
 * and prediction all go through here, so they normalise alike. */
void th_plan_input(const th_config *cfg, th_input_params *p);

/* The up-front validation of a config against its dataset that every phase
 * shares (train and lr-find before the first step, split, eval, cam), so that
 * what one phase would refuse, all refuse alike with the same message:
 * th_plan_labels, then th_plan_check_input, then the model against the run's
 * labels (th_model_spec_check). Predict and bench read no dataset: they have
 * th_run_config_check and th_plan_batch alone. */
int th_plan_check(const th_config *cfg, const th_dataset *ds, int *label_col, int *n_labels, th_err *err);

/* The model's input [1, H, W] against ds's images: refused naming
 * model.input, the file and both sizes. Also for eval --data's file. */
int th_plan_check_input(const th_config *cfg, const th_dataset *ds, th_err *err);

/* The images per rank per forward pass, the same rule for training,
 * evaluation and the learning-rate finder: train.batch_per_rank, but no more
 * than `images`, the most that one rank holds (a larger batch would only size
 * buffers that stay empty; training clamps, so evaluation must too), and at
 * least 1. */
int th_plan_batch(const th_config *cfg, long images);

/* Pins a phase to the data its run trained on: th_dataset_fingerprint of ds
 * (collective over comm) into *now, then th_plan_pin_match. */
int th_plan_pin(th_dataset *ds, const char *recorded, const char *recorded_in, th_comm comm,
                th_data_fingerprint *now, th_err *err);

/* Not collective: 0 when recorded (a checkpoint's
 * th_train_state.data_fingerprint, read from recorded_in) is "" (an older
 * run: nothing to compare) or matches now; otherwise "<recorded_in>: <file>
 * has changed since the run trained on it: <what>". */
int th_plan_pin_match(const char *recorded, const char *recorded_in, const th_dataset *ds,
                      const th_data_fingerprint *now, th_err *err);

/* ------------------------------------------------------------------------- */
/* Batched inference over images held in memory. */
/* Predicts n images img [n, H, W] in batches of at most m->max_batch (eval
 * mode): probabilities p [n, n_labels] as the loss implies them (sigmoid, or
 * softmax for softmax_ce). With labels y [n, n_labels] it also returns the
 * summed loss (weights w_pos/w_neg as in training), else 0. x is scratch of
 * [max_batch, 1, H, W] floats. */
double th_predict(th_model *m, const th_input *in, th_loss_type loss, const uint8_t *img, const uint8_t *y, int n,
                  const float *w_pos, const float *w_neg, float *x, float *p);

/* What the long collective phases (validation, the evaluation phase at the
 * end of a run) do between prediction batches: poll a stop request, report
 * progress. */
typedef struct th_stop_poll {
    /* Set (by a signal handler) to ask the ranks to stop; NULL: never. */
    const volatile sig_atomic_t *flag;
    /* Test hook: sleep this many milliseconds after each batch (0: none), so
     * that a test can land a signal mid-phase deterministically. */
    int batch_sleep_ms;
    /* Called with this rank's done of n images, once at 0 and after each
     * batch; NULL: not. */
    void (*on_progress)(void *ctx, int done, int total);
    void *progress_ctx;
} th_stop_poll;

/* th_predict of this rank's share of a split (n may differ between ranks),
 * polling a stop request between batches. With poll and poll->flag set it is
 * collective over comm: every rank runs as many batches as the rank with the
 * most (the others idle through the rest) and after each but the last the
 * ranks agree whether the flag is set on any of them, so that all stop at
 * the same batch. Otherwise it is th_predict alone. The summed loss goes to
 * *loss_sum (may be NULL). Returns 0, or TH_TRAIN_STOPPED with p incomplete. */
int th_predict_share(th_model *m, const th_input *in, th_loss_type loss, const uint8_t *img, const uint8_t *y, int n,
                     const float *w_pos, const float *w_neg, float *x, float *p, th_comm comm,
                     const th_stop_poll *poll, double *loss_sum);

/* ------------------------------------------------------------------------- */
/* Training state in one HDF5 file, written atomically.
 *
 * Layout:
 *   /params/<name>         every model tensor (conv1.weight, bn1.running_mean, fc.bias ...)
 *   /optimizer/<name>.m    optimiser state per tensor that has some (momentum, Adam moments .m .v):
 *                          every trainable tensor, but those frozen (th_optim_set_groups); a
 *                          group whose step count differs from the optimiser's (a layer
 *                          thawed mid-run) gives its tensors' .m an attribute `t`
 *   /state                 attributes: normalisation, best score, learning rate, optimiser step t
 *   /rng/dropout           the dropout RNG state (uint64 [4]); the data order is
 *                          derived from (seed, epoch) and needs no state
 *   root attributes        epoch, step, config (the resolved YAML text), data_fingerprint
 *                          (the data the run trains on, th_dataset_fingerprint)
 *   crc32 attributes       every dataset's CRC-32 over its values as loaded, and the
 *                          root's over the whole content (see checkpoint.c); every
 *                          number is stored as the one little-endian type written
 *                          (tensors IEEE f32 LE), and any other type is refused
 * The file is written to `<path>.tmp` and renamed into place, so a killed job
 * leaves the previous checkpoint intact; it is fsync'ed before the rename.
 * Every function that reads a checkpoint first checks its checksums: a
 * damaged, truncated or checksum-less file is an error naming the file (and
 * the damaged dataset when the CRC of one does not match).
 */
/* What the training loop needs besides the model and optimiser to go on. */
typedef struct th_train_state {
    int epoch;              /* epochs completed */
    long step;              /* optimiser steps taken */
    float lr;               /* current learning rate (after the schedule) */
    double best_score;      /* best validation macro AUC so far (-inf if none) */
    int best_epoch;
    int bad_epochs;         /* epochs since the best, for early stopping */
    int plateau_epochs;     /* epochs since the plateau schedule last saw a gain */
    float norm_mean, norm_std; /* input normalisation (trainset), in units of pixel/255 */
    double epoch_loss_sum;  /* training loss summed over the current epoch's images so far */
    long epoch_images;      /* images of the current epoch so far (0 at an epoch boundary) */
    /* th_fingerprint_text of the data the run trains on (root attribute
     * data_fingerprint); "" in checkpoints older than it. */
    char data_fingerprint[TH_FINGERPRINT_TEXT];
} th_train_state;

int th_checkpoint_save(const char *path, const th_model *m, const th_optim *o,
                       const th_train_state *s, const char *config_yaml, th_err *err);

/* Loads into an already created model of the same spec (every tensor must
 * exist with the same shape: a mismatch names the tensor). o and s may be
 * NULL when only the parameters are wanted. o's groups must be those it was
 * saved with (the same tensors frozen): the file must hold the state of
 * exactly the tensors they cover, and each group takes its step count. */
int th_checkpoint_load(const char *path, th_model *m, th_optim *o, th_train_state *s, th_err *err);

/* The optimiser state alone (th_checkpoint_load's o part), for a caller that
 * reads the training state first to learn which groups it needs. */
int th_checkpoint_load_optim(const char *path, const th_model *m, th_optim *o, th_err *err);

/* What th_checkpoint_init_params did. */
typedef struct th_init_report {
    int loaded;             /* model tensors read from the file */
    int fresh;              /* model tensors the file lacks, left as they were */
    char fresh_names[512];  /* their names, ", "-separated, cut with ", ..." */
} th_init_report;

/* Starts a model from another file's parameters (config key model.init): a
 * run's best.h5 or last.h5, or a file of tools/import-torch.py (/params
 * alone). Checks the checksums, then reads every model tensor the file holds
 * under /params (shapes must match exactly: a mismatch names the tensor and
 * both shapes); tensors the file lacks keep their values and are reported
 * (a new head for other labels); a tensor the model lacks is an error naming
 * the first few (another architecture). Nothing else of the file is read.
 * On failure the model is unchanged. */
int th_checkpoint_init_params(const char *path, th_model *m, th_init_report *r, th_err *err);

/* Checks the checksums of a checkpoint without loading it. */
int th_checkpoint_verify(const char *path, th_err *err);

/* The `config` attribute of a checkpoint, malloc'd (for eval and predict). */
char *th_checkpoint_read_config(const char *path, th_err *err);

/* Refuses cfg, a run's config (read from cfg_path), for the checkpoint at
 * path when the two differ in what the outputs mean: data.labels (names and
 * order), data.normalize, model.input, model.layers or train.loss. The error
 * names the first key that differs, with both values ("data.labels: was [A,
 * B], now [B, A]"): an edited config.yaml would otherwise print a network's
 * numbers under the wrong names. */
int th_checkpoint_check_config(const char *path, const th_config *cfg, const char *cfg_path, th_err *err);

/* ------------------------------------------------------------------------- */
/* One training step: the only one.
 *
 * `thorax train`, `thorax lr-find` (through th_trainer) and `thorax bench`
 * all take their steps here, so a speed figure is the speed of the step that
 * training takes, and a change to the step (a new collective, a fused
 * kernel) reaches all three at once.
 *
 * A step, on every rank with its own share of the global batch:
 *
 *   th_step_gradients: dropout masks from (seed, step, rank); forward in
 *       training mode; the loss and its gradient; backward, whose gradient
 *       hook starts the buckets' allreduces as layers finish; the wait for
 *       them (the gradients are then the global batch's mean); and ONE small
 *       allreduce of doubles carrying the batch-norm running statistics
 *       (averaged over the ranks, so every replica and every checkpoint hold
 *       the global batch's), the loss sum, and the stop and failure flags.
 *   th_step_update: the optimiser's update at the caller's learning rate.
 *
 * Usage:
 *
 *   th_step s;
 *   th_step_init(&s, comm, &model, &opt, &cfg->train, n_labels, w_pos, w_neg, batch, bucket_floats, &err);
 *   for each step k:
 *       th_step_gradients(&s, x, y, n, global_n, seed, k, stop, failed, &out, &err);
 *       if (out.failed) ...; if (!isfinite(out.loss) || !th_step_grads_finite(&s)) ...;
 *       th_step_update(&s, lr);
 *   th_step_free(&s);
 *
 * Everything a step touches is allocated in th_step_init: a step allocates
 * nothing.
 */
typedef struct th_step {
    th_comm comm;
    int rank, size;
    th_model *model;            /* borrowed */
    th_optim *opt;              /* borrowed */
    th_loss_type loss;
    int n_labels;
    const float *w_pos, *w_neg; /* [n_labels] class weights, borrowed */
    size_t bucket_floats;
    th_grad_sync sync;          /* the model's gradient hook while the step lives */
    float *dz;                  /* [batch, n_labels] gradient of the loss */
    double *red;                /* [n_buffers + 3]: the step's small allreduce */
    int unknowns;               /* set by the caller when labels may be TH_LABEL_UNKNOWN: the
                                 * loss is then the mean over the known entries, whose count
                                 * takes one more allreduce (one double) before backward */
} th_step;

/* What th_step_gradients learnt from every rank. */
typedef struct th_step_out {
    double loss;                /* mean loss of the global batch */
    int stop;                   /* some rank asked to stop */
    int failed;                 /* some rank could not read its batch */
    double comm_s;              /* seconds spent after backward waiting for communication */
} th_step_out;

/* Sizes the step for batches of up to `batch` images and installs the
 * gradient sync (of the layers not frozen now) as m's gradient hook. Not
 * collective. */
int th_step_init(th_step *s, th_comm comm, th_model *m, th_optim *opt, th_loss_type loss, int n_labels,
                 const float *w_pos, const float *w_neg, int batch, size_t bucket_floats, th_err *err);

/* The gradient sync again, after layers were frozen or thawed. Not collective. */
int th_step_resync(th_step *s, th_err *err);

/* The gradient sync of m's trainable, unfrozen tensors, buckets cut where a
 * layer's gradients start. What th_step installs; tests and tools that time
 * or check the sync on its own call it directly. Not collective. */
int th_model_grad_sync_init(th_grad_sync *sync, th_comm comm, const th_model *m, size_t bucket_floats, th_err *err);

/* Collective. This rank's n images x [n, C, H, W] with labels y [n, n_labels]
 * (n may be 0), of a global batch of global_n images, at global step `step`
 * (0-based; with seed it fixes the dropout masks, so a resumed run draws the
 * same ones). stop and failed are this rank's flags; out gets every rank's.
 * When out->failed the gradients are not to be used. Returns -1 only when
 * communication itself failed. */
int th_step_gradients(th_step *s, const float *x, const uint8_t *y, int n, long global_n, uint64_t seed, long step,
                      int stop, int failed, th_step_out *out, th_err *err);

/* Whether every gradient the step summed is finite. Not collective. */
int th_step_grads_finite(const th_step *s);

/* The optimiser's update of the model's parameters at rate lr. */
void th_step_update(th_step *s, float lr);

/* Uninstalls the hook and frees what th_step_init allocated. */
void th_step_free(th_step *s);

/* ------------------------------------------------------------------------- */
/* The distributed training loop.
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
     * step, or the current batch of validation: they agree, write last.h5
     * and return TH_TRAIN_STOPPED. A validation cut short is run again, whole,
     * on resume (last.h5 then holds the epoch's trained state before its
     * validation). */
    const volatile sig_atomic_t *stop;
    /* Test hooks, global steps 1-based (0 = never): poison rank 0's input at
     * nan_at_step; behave as if a stop request arrived during stop_at_step;
     * sleep val_sleep_ms after each validation batch (th_stop_poll). */
    long nan_at_step;
    long stop_at_step;
    int val_sleep_ms;
    /* The command's arguments (from the command name on, e.g. train x.yaml
     * --resume auto), recorded in run.json; argc 0: none. */
    int argc;
    char *const *argv;
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

/* ------------------------------------------------------------------------- */
/* `thorax bench`: how fast a config's network trains and predicts.
 *
 * th_bench_run builds the config's model, feeds it random input of the
 * config's shape and random 0/1 labels (no dataset file is read, so the
 * figures are those of the network, not of the disk), and times, after a
 * warm-up:
 *   - training steps: the trainer's own step (thorax/train.h), on the same
 *     batch every step;
 *   - inference steps: forward in evaluation mode;
 *   - every layer on its own, forward and backward, with the same kernels on
 *     the model's own buffers in the same shapes (a micro-benchmark per layer,
 *     since the model's forward has no per-layer timing hook).
 *
 * Figures are medians over the timed steps (a busy machine makes the mean
 * follow its worst steps). A job's step is as slow as its slowest rank, so
 * each time is the maximum over the ranks of that rank's median.
 *
 * FLOP convention (as torch_ref.py): 2 x multiply-adds of the conv and dense
 * layers; bias, activations, pooling, loss and optimiser are not counted. A
 * training image costs 3 x its forward FLOPs (backward ~ 2 x forward: one
 * GEMM for the weight gradient, one for the input gradient). The reference
 * network costs 0.623 GFLOP forward, 1.87 GFLOP per training image.
 */
typedef enum th_bench_mode {
    TH_BENCH_TRAIN = 1,
    TH_BENCH_INFER = 2,
    TH_BENCH_BOTH = TH_BENCH_TRAIN | TH_BENCH_INFER,
} th_bench_mode;

typedef struct th_bench_opts {
    int steps;          /* timed steps per mode (and repetitions per layer), >= 1 */
    int warmup;         /* untimed steps before them, >= 0 */
    th_bench_mode mode;
    int n_labels;       /* outputs of `out: labels` when the config names no labels */
    int layers;         /* 1 = also time every layer on its own */
    /* When not NULL: the parameters [n_params] and batch-norm buffers
     * [n_buffers] after the warm-up and timed training steps (before the
     * per-layer pass), for tests that compare them with training's. */
    float *params_out, *buffers_out;
} th_bench_opts;

/* The timing of one mode (train or infer). */
typedef struct th_bench_figures {
    int measured;           /* 0 when the mode was not asked for */
    double step_ms;         /* median step time (max over ranks) */
    double step_ms_min, step_ms_max;
    double img_per_s;       /* images of the whole job per second: ranks x batch / step_ms */
    double gflop_per_img;   /* forward, x3 for training */
    double gflop_per_s;     /* img_per_s x gflop_per_img, the whole job */
    double allreduce_ms;    /* median time in the allreduces (max over ranks); 0 for infer */
    double allreduce_share; /* time in the allreduces / step time, summed over steps and ranks */
    double other_cpu;       /* CPUs busy with other processes during the timed steps
                             * (rank 0's node, from /proc/stat; -1 if unknown) */
} th_bench_figures;

/* One layer's micro-benchmark: median over the repetitions, max over ranks. */
typedef struct th_bench_layer {
    char name[TH_NAME_MAX];
    th_layer_type type;
    int out_c, out_h, out_w;    /* per-image output shape */
    double fwd_ms, bwd_ms;      /* per batch of `batch` images */
    double fwd_gflop, bwd_gflop;/* per batch; 0 for layers without FLOPs */
} th_bench_layer;

typedef struct th_bench_result {
    int ranks;
    int cpus_per_rank;          /* fewest CPUs a rank may run on (its affinity mask) */
    int batch;                  /* images per rank per step */
    int c, h, w;                /* input shape of one image */
    int n_labels;
    size_t n_params;
    double gflop_fwd_per_img;   /* th_model_flops / 1e9 */
    th_bench_figures train, infer;
    int n_layers;               /* 0 unless opts->layers */
    th_bench_layer layers[TH_MAX_NODES];
    double layers_other_cpu;    /* as th_bench_figures.other_cpu, during the per-layer pass */
    double peak_mb;             /* max over ranks of the peak resident set (ru_maxrss) */
    double act_mb;              /* a rank's activation arena (th_model.act_bytes) in MB */
} th_bench_result;

/* The benchmark's batch of rank `rank`: n random images x [n, C, H, W] like
 * normalised ones (zero mean, unit variance), random labels y [n, n_labels]
 * (0/1 per label, or one class per image for softmax cross-entropy) and
 * their class weights [n_labels] as training would weigh them. Seeded by
 * (cfg->seed, rank), so a rerun feeds the same numbers. */
void th_bench_batch(const th_config *cfg, int rank, int n, int n_labels, float *x, uint8_t *y, float *w_pos,
                    float *w_neg);

/* Collective over comm. The model is cfg->model with n_labels =
 * cfg->data.n_labels, or opts->n_labels when the config names none; batch =
 * cfg->train.batch_per_rank per rank. Input and labels are seeded from
 * cfg->seed and the rank. The OpenBLAS thread count is the caller's to set.
 * Fills res identically on every rank. */
int th_bench_run(const th_config *cfg, const th_bench_opts *opts, th_comm comm, th_bench_result *res, th_err *err);

/* ------------------------------------------------------------------------- */
/* The learning-rate range test (Smith 2015; fastai's lr_find).
 *
 * th_lrfind_run sets a run up exactly as training does (th_trainer: same
 * data, split, shards, normalisation, class weights, initialisation from the
 * seed, the config's optimiser) and takes training steps with the learning
 * rate growing exponentially from start_lr to end_lr, recording the global
 * (allreduced) loss of every step. The loss is smoothed by an exponential
 * moving average with bias correction (beta 0.98, as fastai):
 *
 *   avg_i = beta * avg_{i-1} + (1 - beta) * loss_i,   smoothed_i = avg_i / (1 - beta^(i+1))
 *
 * and the test stops early once the smoothed loss is not finite or exceeds
 * `diverge` (4) times its best so far: the rates beyond say nothing more.
 *
 * Two suggestions are drawn from the smoothed curve:
 *   - steepest: the rate where the smoothed loss falls fastest per decade of
 *     rate (most negative d smoothed / d log10 lr, central differences), the
 *     first tenth of the points (at most 10) left out as fastai does, since
 *     the bias-corrected average rests on few losses there;
 *   - min/10: a tenth of the rate of the smallest smoothed loss (the same
 *     first points left out).
 * The suggested one is the steepest descent when the loss does fall there and
 * it lies on the descent into the minimum (at most TH_LRFIND_STEEP_DECADES'
 * worth, 2 decades, below the minimum's rate, where a clean curve has it):
 * there a step still gains the most. Otherwise min/10, the rule that stays
 * clear of divergence: when the curve never falls, when the steepest point
 * lies past the minimum, or when it lies far below it, on the flat start of
 * a noisy curve, where the slope of the smoothed loss is batch noise (small
 * batches, weighted losses: the phantom's quick start is such a curve).
 *
 * The library prints nothing; rank 0 writes the files (th_lrfind_write).
 */
typedef struct th_lrfind_opts {
    int steps;              /* steps at most (default 100) */
    double start_lr;        /* default 1e-7 */
    double end_lr;          /* default 10 */
    double beta;            /* smoothing (default 0.98) */
    double diverge;         /* stop once smoothed > diverge x best (default 4) */
    /* Rank 0, after every step (may be NULL). */
    void (*on_step)(void *ctx, int step, int steps, double lr, double loss, double smoothed);
    void *ctx;
} th_lrfind_opts;

/* The defaults above. */
void th_lrfind_defaults(th_lrfind_opts *o);

/* Checks the options, naming the one at fault. */
int th_lrfind_check(const th_lrfind_opts *o, th_err *err);

/* The rate of step i (0-based) of o->steps: start * (end/start)^(i/(steps-1)). */
double th_lrfind_lr(const th_lrfind_opts *o, int i);

/* The smoothing and the divergence rule, one loss at a time. */
typedef struct th_lrfind_smoother {
    double beta, diverge;
    double avg, best;       /* best: the smallest smoothed loss so far */
    int n;
} th_lrfind_smoother;

void th_lrfind_smoother_init(th_lrfind_smoother *s, double beta, double diverge);
/* Adds a loss; returns the smoothed value and sets *stop when the test
 * should end here (smoothed not finite, or above diverge x best). */
double th_lrfind_smooth(th_lrfind_smoother *s, double loss, int *stop);

/* How far below the minimum's rate (a factor) a steepest point is trusted. */
#define TH_LRFIND_STEEP_DECADES 100.0

typedef enum th_lrfind_rule {
    TH_LRFIND_STEEPEST = 0,
    TH_LRFIND_MIN_TENTH,
} th_lrfind_rule;

typedef struct th_lrfind_result {
    int n;                      /* steps recorded */
    int planned;                /* o->steps */
    int diverged;               /* the test stopped at step n-1 */
    double *lr, *loss, *smoothed;   /* [n] */
    /* Filled by th_lrfind_suggest. */
    int steep_idx, min_idx;
    double steep_lr, steep_slope;   /* slope: d smoothed / d log10 lr there */
    double min_lr, min_tenth_lr;
    th_lrfind_rule rule;
    double suggested;
    char why[256];              /* why that rule */
} th_lrfind_result;

/* Allocates room for n points (n, diverged zeroed). */
int th_lrfind_result_init(th_lrfind_result *r, int n, th_err *err);
void th_lrfind_result_free(th_lrfind_result *r);

/* The two suggestions and the choice between them, from r->lr and
 * r->smoothed (points 0..n-1; a divergent last point is left out). -1 when
 * too few finite points remain to differentiate (fewer than 3). */
int th_lrfind_suggest(th_lrfind_result *r, th_err *err);

/* The range test (collective over comm); res is initialised here (free it
 * even on failure) and filled the same on every rank; th_lrfind_suggest is
 * the caller's next step. cb->on_info gets the setup's log. */
int th_lrfind_run(const th_config *cfg, const th_lrfind_opts *o, th_comm comm, const th_train_callbacks *cb,
                  th_lrfind_result *res, th_err *err);

/* Writes dir/lr_find.csv (step,lr,loss,smoothed) and dir/lr_find.png (the
 * smoothed loss against lr on a log axis, the raw loss faint, the
 * suggestions marked), each atomically; creates dir. Not collective. */
int th_lrfind_write(const th_lrfind_result *r, const char *dir, const char *title, th_err *err);

#endif

/* checkpoint.h - training state in one HDF5 file, written atomically.
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
 *   root attributes        epoch, step, config (the resolved YAML text)
 *   crc32 attributes       every dataset's CRC-32 over its stored bytes, and the
 *                          root's over the whole content (see checkpoint.c)
 * The file is written to `<path>.tmp` and renamed into place, so a killed job
 * leaves the previous checkpoint intact; it is fsync'ed before the rename.
 * Every function that reads a checkpoint first checks its checksums: a
 * damaged, truncated or checksum-less file is an error naming the file (and
 * the damaged dataset when the CRC of one does not match).
 */
#ifndef THORAX_CHECKPOINT_H
#define THORAX_CHECKPOINT_H

#include "thorax/error.h"
#include "thorax/model.h"
#include "thorax/optim.h"
#include "thorax/rng.h"

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

#endif

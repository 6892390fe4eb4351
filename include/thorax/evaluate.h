/* evaluate.h - the evaluation phase: every rank predicts its share of a
 * split's patients, rank 0 gathers the predictions in dataset order and
 * writes predictions.csv, metrics.json, roc_<label>.csv and roc.png.
 *
 * The same code runs at the end of `thorax train` and as `thorax eval`. A
 * split's images are dealt to ranks by whole patients; the gather neither
 * pads nor repeats a sample, so the numbers do not depend on the number of
 * ranks.
 */
#ifndef THORAX_EVALUATE_H
#define THORAX_EVALUATE_H

#include "thorax/checkpoint.h"
#include "thorax/config.h"
#include "thorax/dist.h"
#include "thorax/error.h"
#include "thorax/input.h"
#include "thorax/model.h"

/* A predictor: a trained run opened for inference, with its resolved
 * config, a checkpoint's parameters, and the input transform of training
 * (normalisation from the checkpoint, no augmentation). Not collective:
 * each rank opens its own. */
typedef struct th_predictor {
    th_config *cfg;
    char ckpt[2048];
    th_model model;
    th_train_state st;
    th_input input;
} th_predictor;

/* checkpoint: "best" (default when NULL) or "last". max_batch: images per
 * forward (<= 0: the config's batch_per_rank). */
int th_predictor_open(th_predictor *t, const char *run_dir, const char *checkpoint, int max_batch, th_err *err);
void th_predictor_close(th_predictor *t);

/* Reads a PNG as ingest prepares training images (luminance, resized to the
 * model's input with the same resampling) into img [H, W]. warn receives ""
 * or a sentence on how the image differs from the training data: another
 * size, 16-bit or colour samples, or intensity statistics far from the
 * training set's (mean more than 1.5 training standard deviations away, or
 * a contrast below 0.3x or above 2.5x the training set's). */
int th_predictor_load_png(const th_predictor *t, const char *path, uint8_t *img, char *warn, size_t warn_cap, th_err *err);

typedef struct th_eval_opts {
    const char *run_dir;        /* the training run: config.yaml and checkpoints/ */
    const char *split;          /* "val" or "test" (default: the config's eval.split) */
    const char *checkpoint;     /* "best" (default) or "last" */
    const char *data;           /* another dataset file: evaluate all its images (external validation) */
    int patient_level;          /* also evaluate per patient (max over their images) */
} th_eval_opts;

typedef struct th_eval_result {
    char out_dir[2048];         /* where the files went */
    int n_images, n_patients;
    int n_labels, n_defined;    /* labels evaluated, and those with both classes */
    double macro_auc;           /* NaN when no label is defined */
    char note[512];             /* e.g. labels missing from an external file; "" if none */
} th_eval_result;

/* Collective over comm. The result is filled on every rank. */
int th_eval_run(const th_eval_opts *opts, th_comm comm, th_eval_result *res, th_err *err);

#endif

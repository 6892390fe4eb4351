/* step.h - one training step: the only one.
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
#ifndef THORAX_STEP_H
#define THORAX_STEP_H

#include <stdint.h>
#include "thorax/dist.h"
#include "thorax/error.h"
#include "thorax/loss.h"
#include "thorax/model.h"
#include "thorax/optim.h"

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

#endif

/* schedule.h - the learning-rate schedule, best-epoch tracking and early
 * stopping.
 *
 *   constant  lr = train.optimizer.lr
 *   step      lr = lr0 * factor ^ floor(epoch / step_epochs)
 *   cosine    linear warm-up over warmup_epochs, then
 *             lr = min_lr + (lr0 - min_lr) * (1 + cos(pi * t)) / 2, t from 0 to 1
 *   plateau   lr *= factor (not below min_lr) once the validation AUC has not
 *             improved for more than `patience` epochs (PyTorch's ReduceLROnPlateau
 *             in max mode, without cooldown)
 * Step and cosine are functions of the global step, so a resumed run follows
 * the same curve; plateau lives in th_train_state, which checkpoints carry.
 */
#ifndef THORAX_SCHEDULE_H
#define THORAX_SCHEDULE_H

#include "thorax/train.h"
#include "thorax/config.h"

/* The rate of global step `step` (0-based); constant and plateau return current. */
float th_schedule_lr(const th_config *cfg, long step, int steps_per_epoch, float current);

/* After st->epoch epochs and a validation macro AUC of val_auc: is it the
 * best so far (an undefined, NaN, AUC never is), the plateau schedule's
 * reduction, and whether early stopping ends the run (never after the last
 * epoch). Updates st. */
void th_schedule_after_epoch(const th_config *cfg, th_train_state *st, double val_auc, int *is_best, int *stop);

#endif

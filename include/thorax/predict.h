/* predict.h - batched inference over images held in memory. */
#ifndef THORAX_PREDICT_H
#define THORAX_PREDICT_H

#include <stdint.h>
#include "thorax/input.h"
#include "thorax/loss.h"
#include "thorax/model.h"

/* Predicts n images img [n, H, W] in batches of at most m->max_batch (eval
 * mode): probabilities p [n, n_labels] as the loss implies them (sigmoid, or
 * softmax for softmax_ce). With labels y [n, n_labels] it also returns the
 * summed loss (weights w_pos/w_neg as in training), else 0. x is scratch of
 * [max_batch, 1, H, W] floats. */
double th_predict(th_model *m, const th_input *in, th_loss_type loss, const uint8_t *img, const uint8_t *y, int n,
                  const float *w_pos, const float *w_neg, float *x, float *p);

#endif

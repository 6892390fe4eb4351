/* loss.h - multi-label and multi-class losses, and class weights.
 *
 * Conventions: z [N, L] logits, y [N, L] uint8 0/1 labels.
 * A loss function returns the SUM over the N images of each image's loss, and
 * writes dz = d(sum)/dz. The trainer divides by the number of images in the
 * global batch after the gradients have been summed across ranks, so uneven
 * shards still give the exact mean.
 *
 * Weighted BCE, per image: sum over labels l of
 *   -( w_pos[l] * y * log(sigmoid(z)) + w_neg[l] * (1 - y) * log(1 - sigmoid(z)) )
 * computed from logits with log-sum-exp so it never takes log(0).
 * Plain BCE is the same with every weight 1.
 */
#ifndef THORAX_LOSS_H
#define THORAX_LOSS_H

#include <stdint.h>
#include "thorax/spec.h"  /* th_loss_type */

/* Fraction of positive images per label: freq_pos[l] = mean over n of y[n,l]. */
void th_label_freq(int n, int l, const uint8_t *y, double *freq_pos);

/* The seeds' class weights: w_pos = freq_neg = 1 - freq_pos, w_neg = freq_pos,
 * so each label's positives and negatives contribute equally to the loss. */
void th_class_weights(int l, const double *freq_pos, float *w_pos, float *w_neg);

/* Weighted BCE on logits (see above). dz may be NULL. */
double th_wbce_logits(int n, int l, const float *z, const uint8_t *y,
                      const float *w_pos, const float *w_neg, float *dz);

/* The seeds' formula on probabilities p [N, L] with an epsilon inside the log:
 * sum over labels of the MEAN over images of
 *   -( w_pos * y * log(p + eps) + w_neg * (1 - y) * log(1 - p + eps) ).
 * Kept to reproduce their worked examples; training uses th_wbce_logits. */
double th_wbce_probs(int n, int l, const float *p, const uint8_t *y,
                     const float *w_pos, const float *w_neg, float eps);

/* Softmax cross-entropy; y is one-hot [N, L] (the class is the first 1).
 * dz may be NULL. */
double th_softmax_ce(int n, int l, const float *z, const uint8_t *y, float *dz);

/* Dispatch on the configured loss. w_pos/w_neg are used by the weighted BCE only. */
double th_loss(th_loss_type type, int n, int l, const float *z, const uint8_t *y,
               const float *w_pos, const float *w_neg, float *dz);

/* Turns logits into the probabilities the loss implies: sigmoid per label, or
 * softmax over labels for TH_LOSS_SOFTMAX_CE. p may alias z. */
void th_loss_probs(th_loss_type type, int n, int l, const float *z, float *p);

#endif

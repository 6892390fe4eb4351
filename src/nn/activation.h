/* activation.h - element-wise layers: ReLU and (inverted) dropout. */
#ifndef THORAX_ACTIVATION_H
#define THORAX_ACTIVATION_H

#include <stddef.h>
#include <stdint.h>
#include "thorax/util.h"

void th_relu_forward(size_t n, const float *x, float *y);
/* Uses the forward output y (y > 0 exactly where x > 0), so x need not be kept. */
void th_relu_backward(size_t n, const float *y, const float *dy, float *dx);

/* Training-mode dropout: each element kept with probability 1-p and scaled by
 * 1/(1-p), so evaluation is the identity. mask [n] records the kept elements. */
void th_dropout_forward(size_t n, float p, th_rng *rng, const float *x, float *y, uint8_t *mask);
void th_dropout_backward(size_t n, float p, const uint8_t *mask, const float *dy, float *dx);

#endif

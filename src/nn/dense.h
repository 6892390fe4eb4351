/* dense.h - fully connected layer, PyTorch layout.
 *
 *   x [N, I], w [O, I], b [O], y [N, O] = x w^T + b
 */
#ifndef THORAX_DENSE_H
#define THORAX_DENSE_H

#include <stddef.h>

#include "thorax/spec.h"

void th_dense_forward(int n, int in, int out, const float *x, const float *w, const float *b, float *y);
/* Overwrites dw [O,I], db [O] and dx [N,I]; each may be NULL (dw NULL: a frozen layer). */
void th_dense_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                       float *dx, float *dw, float *db);

/* The same in a given precision (thorax/spec.h th_precision): bf16 GEMMs
 * read bf16 copies of x, w and dy made in scratch, of
 * th_dense_scratch_floats(n, in, out, p) floats (0 for fp32: scratch may be
 * NULL). */
size_t th_dense_scratch_floats(int n, int in, int out, th_precision p);
void th_dense_forward_p(th_precision p, int n, int in, int out, const float *x, const float *w, const float *b,
                        float *y, float *scratch);
void th_dense_backward_p(th_precision p, int n, int in, int out, const float *x, const float *w, const float *dy,
                         float *dx, float *dw, float *db, float *scratch);

#endif

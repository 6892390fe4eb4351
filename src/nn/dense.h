/* dense.h - fully connected layer, PyTorch layout.
 *
 *   x [N, I], w [O, I], b [O], y [N, O] = x w^T + b
 */
#ifndef THORAX_DENSE_H
#define THORAX_DENSE_H

void th_dense_forward(int n, int in, int out, const float *x, const float *w, const float *b, float *y);
/* Overwrites dw [O,I], db [O] and dx [N,I]; each may be NULL (dw NULL: a frozen layer). */
void th_dense_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                       float *dx, float *dw, float *db);

#endif

/* conv.h - 2-D convolution as im2col + one OpenBLAS GEMM over the whole batch.
 *
 * Shapes (NCHW, float32):
 *   x   [N, C, H, W]            input
 *   w   [K, C, KH, KW]          filters (PyTorch layout: conv.weight)
 *   b   [K]                     bias (may be NULL: no bias)
 *   y   [N, K, OH, OW]          output, OH = (H + 2*pad - KH)/stride + 1
 *   col [C*KH*KW, N*OH*OW]      scratch: every receptive field of the batch as a column
 *   tmp [K, N*OH*OW]            scratch: the GEMM's output before it is laid out as NCHW
 *
 * Forward:  tmp = w[K, CKK] * col[CKK, N*P]; y[n,k,p] = tmp[k, n*P + p] + b[k].
 * Backward: tmp = dy laid out as [K, N*P];
 *           dw  = tmp * col^T,  db = row sums of tmp,
 *           col = w^T * tmp, dx = col2im(col).
 * The backward pass recomputes im2col from x rather than keeping the forward
 * columns, so one scratch buffer serves every layer of a model.
 */
#ifndef THORAX_CONV_H
#define THORAX_CONV_H

#include <stddef.h>

typedef struct th_conv_dims {
    int n;          /* images in the batch */
    int c, h, w;    /* input channels, height, width */
    int k;          /* output channels */
    int kh, kw;     /* kernel height, width */
    int stride, pad;
    int oh, ow;     /* output height, width: set by th_conv_dims_init */
} th_conv_dims;

/* Output length of one spatial axis; <= 0 when the kernel does not fit. */
int th_conv_out_len(int in, int k, int stride, int pad);

/* Fills d (oh, ow included). Returns -1 if the output would be empty. */
int th_conv_dims_init(th_conv_dims *d, int n, int c, int h, int w, int k,
                      int kh, int kw, int stride, int pad);

/* Scratch sizes, in floats, for a batch of d->n images. */
size_t th_conv_col_floats(const th_conv_dims *d);
size_t th_conv_tmp_floats(const th_conv_dims *d);

/* im2col of one image x [C,H,W] into columns col[r, col0 + p] of a matrix
 * whose rows are ldcol floats long (ldcol = N*OH*OW for a batch). Padding
 * reads as zero. */
void th_im2col(const th_conv_dims *d, const float *x, float *col, size_t ldcol, size_t col0);
/* The adjoint of th_im2col: adds columns back into dx [C,H,W] (accumulates). */
void th_col2im(const th_conv_dims *d, const float *col, size_t ldcol, size_t col0, float *dx);

void th_conv_forward(const th_conv_dims *d, const float *x, const float *w, const float *b,
                     float *y, float *col, float *tmp);

/* Overwrites dw [K,C,KH,KW] and db [K] (db may be NULL) with the gradients of
 * the batch, and dx [N,C,H,W] (may be NULL for the first layer). */
void th_conv_backward(const th_conv_dims *d, const float *x, const float *w, const float *dy,
                      float *dx, float *dw, float *db, float *col, float *tmp);

#endif

/* conv.h - 2-D convolution as im2col + OpenBLAS GEMM, one image per thread.
 *
 * Shapes (NCHW, float32):
 *   x   [N, C, H, W]            input
 *   w   [K, C, KH, KW]          filters (PyTorch layout: conv.weight)
 *   b   [K]                     bias (may be NULL: no bias)
 *   y   [N, K, OH, OW]          output, OH = (H + 2*pad - KH)/stride + 1
 *
 * With P = OH*OW and CKK = C*KH*KW, image n's output y[n] is the product
 *   y[n] [K, P] = w [K, CKK] * col(x[n]) [CKK, P]
 * where col holds every receptive field of the image as a column. In NCHW
 * y[n] already is that [K, P] matrix, so the GEMM writes the output in place
 * with no reorder. Backward, per image:
 *   dw  += dy[n] [K, P] * col^T [P, CKK]     db += row sums of dy[n]
 *   dcol = w^T [CKK, K] * dy[n] [K, P]       dx[n] = col2im(dcol)
 *
 * Where dw is large and an image's columns are few (ResNet's layer4: 9.4 MB
 * of dw, 7x7 outputs), backward takes a group of images at once
 * (th_conv_dims.group): their columns side by side, [CKK, group*P], so that
 * the dw GEMM passes over dw once per group rather than once per image.
 *
 * The batch's images are split across ws->threads OpenMP threads, each
 * running single-threaded OpenBLAS on its own images with its own slice of
 * the workspace: a block of output rows of col at a time (sized to stay in
 * the core's cache), and its own partial weight gradient. A 1x1 convolution
 * with stride 1 and no padding needs no columns: col(x[n]) is x[n] itself.
 *
 * With precision bf16 the GEMMs read bf16 columns (im2col writes them
 * rounded, in one pass) and bf16 copies of dy and of w (made in the
 * workspace, w once per call by the whole team) and sum in fp32
 * (src/nn/gemm.h); everything else is as in fp32.
 *
 * The forward's results do not depend on the number of threads. Backward's
 * depend on it through the order in which the threads' partial weight
 * gradients are added and through how each thread's images fall into
 * groups (the GEMMs' widths); both are fixed for a given number and batch,
 * so a run is bit-reproducible for a given threads_per_rank.
 */
#ifndef THORAX_CONV_H
#define THORAX_CONV_H

#include <stddef.h>
#include <stdint.h>
#include "workspace.h"

typedef struct th_conv_dims {
    int n;          /* images in the batch */
    int c, h, w;    /* input channels, height, width */
    int k;          /* output channels */
    int kh, kw;     /* kernel height, width */
    int stride, pad;
    int oh, ow;     /* output height, width: set by th_conv_dims_init */
    int block_rows; /* output rows per block of columns: th_conv_dims_init picks
                     * it for the cache; any value in [1, oh] gives the same result */
    int group;      /* images per block of the backward GEMMs, 1 or (an image's
                     * columns being few) several, so that dw's GEMM sums over
                     * group x OH x OW columns per pass over dw rather than OH x OW;
                     * th_conv_dims_init picks it; any value >= 1 gives the same
                     * result up to rounding */
    th_precision precision; /* the im2col GEMMs' (fp32 from th_conv_dims_init); the
                             * direct path for few taps is fp32 either way */
} th_conv_dims;

/* Output length of one spatial axis; <= 0 when the kernel does not fit. */
int th_conv_out_len(int in, int k, int stride, int pad);

/* Fills d (oh, ow included). Returns -1 if the output would be empty. */
int th_conv_dims_init(th_conv_dims *d, int n, int c, int h, int w, int k,
                      int kh, int kw, int stride, int pad);

/* Floats of workspace each thread needs for this layer (any batch size). */
size_t th_conv_workspace_floats(const th_conv_dims *d);

/* im2col of output rows [oy0, oy1) of one image x [C,H,W] into
 * col [CKK, (oy1-oy0)*OW] with row stride ld >= (oy1-oy0)*OW (several
 * images' columns side by side). Padding reads as zero. */
void th_im2col(const th_conv_dims *d, const float *x, int oy0, int oy1, float *col, size_t ld);
/* The same columns rounded to bf16 (as th_bf16_convert rounds); tmp:
 * scratch for KH*KW*(oy1-oy0)*OW floats. */
void th_im2col_bf16(const th_conv_dims *d, const float *x, int oy0, int oy1, uint16_t *col, size_t ld, float *tmp);
/* The adjoint of th_im2col: adds the columns back into dx [C,H,W]. */
void th_col2im(const th_conv_dims *d, const float *col, int oy0, int oy1, size_t ld, float *dx);

/* y = conv(x) + b, then max(y, 0) when relu is set (a ReLU layer fused into
 * the GEMM's output pass). */
void th_conv_forward(const th_conv_dims *d, const float *x, const float *w, const float *b,
                     float *y, int relu, const th_workspace *ws);

/* Overwrites dw [K,C,KH,KW] and db [K] (db may be NULL) with the gradients
 * of the batch, and dx [N,C,H,W] (may be NULL for the first layer). dw NULL
 * (a frozen layer) computes dx alone and leaves db alone. When
 * relu_y is given (the output of a fused ReLU, [N,K,OH,OW]), dy is first
 * multiplied in place by the ReLU's derivative, relu_y > 0; otherwise dy is
 * only read. */
void th_conv_backward(const th_conv_dims *d, const float *x, const float *w, float *dy, const float *relu_y,
                      float *dx, float *dw, float *db, const th_workspace *ws);

/* conv -> ReLU -> 2x2 max-pool (stride 2) as one pass: each block of output
 * rows is pooled while it is in cache, and the conv's output is never
 * stored. py [N, K, OH/2, OW/2] and argmax (indices into each OH x OW plane,
 * as th_maxpool_forward gives them) are written directly. */
void th_conv_forward_pool(const th_conv_dims *d, const float *x, const float *w, const float *b, float *py,
                          int32_t *argmax, const th_workspace *ws);
/* Its backward from the pool's gradient pdy [N, K, OH/2, OW/2]: dw, db (may
 * be NULL) and dx (may be NULL) as th_conv_backward would give them. */
void th_conv_backward_pool(const th_conv_dims *d, const float *x, const float *w, const float *pdy,
                           const float *py, const int32_t *argmax, float *dx, float *dw, float *db,
                           const th_workspace *ws);

#endif

/* pool.h - max pooling, average pooling and global average pooling.
 *
 *   x [N, C, H, W] -> y [N, C, OH, OW], OH = (H - k)/stride + 1 (floor, no padding,
 *   as PyTorch's MaxPool2d(k, stride) and AvgPool2d(k, stride)).
 *   gap: x [N, C, H, W] -> y [N, C].
 */
#ifndef THORAX_POOL_H
#define THORAX_POOL_H

#include <stdint.h>

int th_pool_out_len(int in, int k, int stride);

/* argmax [N, C, OH, OW] keeps the flat index (within the H*W plane) of each
 * window's maximum so backward routes the gradient without searching again. */
void th_maxpool_forward(int n, int c, int h, int w, int k, int stride,
                        const float *x, float *y, int32_t *argmax);
/* Overwrites dx [N,C,H,W]. */
void th_maxpool_backward(int n, int c, int h, int w, int k, int stride,
                         const float *dy, const int32_t *argmax, float *dx);

void th_avgpool_forward(int n, int c, int h, int w, int k, int stride, const float *x, float *y);
void th_avgpool_backward(int n, int c, int h, int w, int k, int stride, const float *dy, float *dx);

/* hw = H*W. */
void th_gap_forward(int n, int c, int hw, const float *x, float *y);
void th_gap_backward(int n, int c, int hw, const float *dy, float *dx);

#endif

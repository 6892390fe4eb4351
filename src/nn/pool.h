/* pool.h - max pooling, average pooling and global average pooling.
 *
 *   x [N, C, H, W] -> y [N, C, OH, OW], OH = (H + 2 pad - k)/stride + 1 (floor,
 *   as PyTorch's MaxPool2d(k, stride, pad) and AvgPool2d(k, stride); average
 *   pooling has no padding).
 *   gap: x [N, C, H, W] -> y [N, C].
 */
#ifndef THORAX_POOL_H
#define THORAX_POOL_H

#include <stdint.h>

int th_pool_out_len(int in, int k, int stride, int pad);

/* argmax [N, C, OH, OW] keeps the flat index (within the H*W plane) of each
 * window's maximum so backward routes the gradient without searching again. */
void th_maxpool_forward(int n, int c, int h, int w, int k, int stride, int pad,
                        const float *x, float *y, int32_t *argmax);
/* Overwrites dx [N,C,H,W]. */
void th_maxpool_backward(int n, int c, int h, int w, int k, int stride, int pad,
                         const float *dy, const int32_t *argmax, float *dx);
/* The plain loops every window size takes (th_maxpool_* run vector code
 * for 2x2/2 and 3x3/2 padded by 1, with the same results): for tests. */
void th_maxpool_forward_scalar(int n, int c, int h, int w, int k, int stride, int pad,
                               const float *x, float *y, int32_t *argmax);
void th_maxpool_backward_scalar(int n, int c, int h, int w, int k, int stride, int pad,
                                const float *dy, const int32_t *argmax, float *dx);

/* One output row of a 2x2, stride-2 max-pool: rows r0 and r1 of a plane w
 * wide, whose first element has flat index base, give w/2 maxima and their
 * indices. Its backward writes all of r0 and r1 (w each): the gradient at
 * each window's maximum, zero elsewhere and in an odd last column. */
void th_maxpool2_row(const float *r0, const float *r1, int w, int32_t base, float *y, int32_t *argmax);
void th_maxpool2_row_backward(const float *dy, const int32_t *argmax, int w, int32_t base, float *r0, float *r1);

void th_avgpool_forward(int n, int c, int h, int w, int k, int stride, const float *x, float *y);
void th_avgpool_backward(int n, int c, int h, int w, int k, int stride, const float *dy, float *dx);

/* hw = H*W. */
void th_gap_forward(int n, int c, int hw, const float *x, float *y);
void th_gap_backward(int n, int c, int hw, const float *dy, float *dx);

#endif

/* grad_batch.h - the global batch the MPI gradient tests split across ranks:
 * TOTAL images of H x W with L labels, the same on every rank, dealt out in
 * uneven shares, and one rank's sum-of-losses gradient of its share. */
#ifndef THORAX_TEST_GRAD_BATCH_H
#define THORAX_TEST_GRAD_BATCH_H

#include <stdint.h>

#include "testutil.h"
#include "thorax/nn.h"

enum { H = 16, W = 16, L = 3, TOTAL = 11 };

/* x [TOTAL, 1, H, W] and y [TOTAL, L], from fixed seeds. */
static inline void grad_batch_make(float *x, uint8_t *y)
{
    th_test_fill(x, (size_t)TOTAL * H * W, -1, 1, 21);
    for (int i = 0; i < TOTAL * L; i++) y[i] = (uint8_t)((i * 5 + 1) % 3 == 0);
}

/* counts [size]: each rank about half of what is left; with more than two
 * ranks the last one gets none, so a rank with no image is tested too. */
static inline void grad_batch_shares(int size, int *counts)
{
    int left = TOTAL, givers = size > 2 ? size - 1 : size;
    for (int r = 0; r < size; r++) counts[r] = 0;
    for (int r = 0; r < givers; r++) {
        counts[r] = r == givers - 1 ? left : (left + 1) / 2;
        left -= counts[r];
    }
}

/* Sum-of-losses gradient of images [first, first + n) of the global batch. */
static inline void grad_batch_local(th_model *m, const float *x, const uint8_t *y, int first, int n, float *dz)
{
    static const float w_pos[L] = {0.7f, 0.6f, 0.8f}, w_neg[L] = {0.3f, 0.4f, 0.2f};
    const float *xs = x + (size_t)first * H * W;
    const float *z = th_model_forward(m, xs, n, 1);
    if (n) th_wbce_logits(n, L, z, y + (size_t)first * L, w_pos, w_neg, dz);
    th_model_backward(m, xs, dz, n);
}

#endif

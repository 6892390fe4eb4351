/* activation.c - ReLU and inverted dropout (see src/nn/activation.h).
 *
 * Dropout is "inverted": kept elements are scaled by 1/(1-p) at training time
 * so the layer is exactly the identity at evaluation time and the model code
 * needs no special case there. The mask is kept as bytes so backward does not
 * need the random stream again.
 */
#include "activation.h"

#include <string.h>

void th_relu_forward(size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void th_relu_backward(size_t n, const float *y, const float *dy, float *dx)
{
    /* dy is read whatever the sign: with the load inside the condition GCC
     * keeps a branch per element, mispredicted on half of them. */
    for (size_t i = 0; i < n; i++) {
        const float g = dy[i];
        dx[i] = y[i] > 0.0f ? g : 0.0f;
    }
}

void th_dropout_forward(size_t n, float p, th_rng *rng, const float *x, float *y, uint8_t *mask)
{
    /* p == 0 is a no-op that leaves the random stream untouched, so adding a
     * disabled dropout layer does not change any other draw. */
    if (p <= 0.0f) {
        memmove(y, x, n * sizeof *y);
        memset(mask, 1, n);
        return;
    }
    if (p >= 1.0f) {
        memset(y, 0, n * sizeof *y);
        memset(mask, 0, n);
        return;
    }
    const float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++) {
        mask[i] = th_rng_uniform(rng) < p ? 0 : 1;
        y[i] = mask[i] ? x[i] * scale : 0.0f;
    }
}

void th_dropout_backward(size_t n, float p, const uint8_t *mask, const float *dy, float *dx)
{
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (size_t i = 0; i < n; i++) dx[i] = mask[i] ? dy[i] * scale : 0.0f;
}

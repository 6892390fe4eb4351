/* batchnorm.c - batch normalisation per channel over (N, H, W)
 * (see src/nn/batchnorm.h), with PyTorch's BatchNorm2d semantics:
 *
 *   training:   xhat = (x - mean_B) / sqrt(var_B + eps), var_B biased (/ m);
 *               running = (1 - momentum) * running + momentum * batch,
 *               with the unbiased variance (/ (m - 1)) in running_var;
 *   evaluation: xhat = (x - running_mean) / sqrt(running_var + eps);
 *   y = gamma * xhat + beta,
 *
 * where m = N*HW is the number of values per channel. Statistics are summed
 * in double: a channel of a 32-image batch at 256x256 has 2M values.
 * Channels are independent, so `threads` threads take a share of them each;
 * every channel's sums run in the same order whatever the number.
 */
#include "batchnorm.h"

#include <math.h>
#include <stddef.h>

void th_batchnorm_forward_train(int threads, int n, int c, int hw, const float *x,
                                const float *gamma, const float *beta,
                                float *y, float *xhat, float *mean, float *invstd,
                                float *running_mean, float *running_var,
                                float momentum, float eps)
{
    const size_t m = (size_t)n * hw;
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int ch = 0; ch < c; ch++) {
        /* Two passes (mean, then squared deviations) avoid the cancellation
         * of E[x^2] - E[x]^2 when the mean is large. */
        double sum = 0.0;
        for (int i = 0; i < n; i++) {
            const float *xp = x + ((size_t)i * c + ch) * hw;
            for (int j = 0; j < hw; j++) sum += xp[j];
        }
        double mu = sum / (double)m;

        double ss = 0.0;
        for (int i = 0; i < n; i++) {
            const float *xp = x + ((size_t)i * c + ch) * hw;
            for (int j = 0; j < hw; j++) {
                double dev = xp[j] - mu;
                ss += dev * dev;
            }
        }
        double var = ss / (double)m;
        double is = 1.0 / sqrt(var + eps);

        for (int i = 0; i < n; i++) {
            size_t off = ((size_t)i * c + ch) * hw;
            for (int j = 0; j < hw; j++) {
                float xh = (float)((x[off + j] - mu) * is);
                xhat[off + j] = xh;
                y[off + j] = gamma[ch] * xh + beta[ch];
            }
        }

        mean[ch] = (float)mu;
        invstd[ch] = (float)is;
        double unbiased = m > 1 ? ss / (double)(m - 1) : var;
        running_mean[ch] = (float)((1.0 - momentum) * running_mean[ch] + momentum * mu);
        running_var[ch] = (float)((1.0 - momentum) * running_var[ch] + momentum * unbiased);
    }
}

void th_batchnorm_forward_eval(int threads, int n, int c, int hw, const float *x,
                               const float *gamma, const float *beta,
                               const float *running_mean, const float *running_var,
                               float eps, float *y)
{
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int ch = 0; ch < c; ch++) {
        /* Folded into one affine map per channel: y = a*x + b. */
        double is = 1.0 / sqrt((double)running_var[ch] + eps);
        float a = (float)(gamma[ch] * is);
        float b = (float)(beta[ch] - gamma[ch] * running_mean[ch] * is);
        for (int i = 0; i < n; i++) {
            size_t off = ((size_t)i * c + ch) * hw;
            for (int j = 0; j < hw; j++) y[off + j] = a * x[off + j] + b;
        }
    }
}

/* With g = dy and m values per channel:
 *   dbeta  = sum g,   dgamma = sum g * xhat,
 *   dx     = gamma * invstd * (g - dbeta/m - xhat * dgamma/m),
 * the two mean terms coming from the dependence of mean and var on x.
 * Written with means rather than m*g - sum so float stays accurate at large m. */
void th_batchnorm_backward(int threads, int n, int c, int hw, const float *dy, const float *xhat,
                           const float *gamma, const float *invstd,
                           float *dx, float *dgamma, float *dbeta)
{
    const size_t m = (size_t)n * hw;
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int ch = 0; ch < c; ch++) {
        double sum_g = 0.0, sum_gx = 0.0;
        for (int i = 0; i < n; i++) {
            size_t off = ((size_t)i * c + ch) * hw;
            for (int j = 0; j < hw; j++) {
                sum_g += dy[off + j];
                sum_gx += (double)dy[off + j] * xhat[off + j];
            }
        }
        dbeta[ch] = (float)sum_g;
        dgamma[ch] = (float)sum_gx;

        float scale = gamma[ch] * invstd[ch];
        float mean_g = (float)(sum_g / (double)m), mean_gx = (float)(sum_gx / (double)m);
        for (int i = 0; i < n; i++) {
            size_t off = ((size_t)i * c + ch) * hw;
            for (int j = 0; j < hw; j++) dx[off + j] = scale * (dy[off + j] - mean_g - xhat[off + j] * mean_gx);
        }
    }
}

void th_batchnorm_backward_eval(int threads, int n, int c, int hw, const float *dy, const float *x,
                                const float *gamma, const float *running_mean,
                                const float *running_var, float eps,
                                float *dx, float *dgamma, float *dbeta)
{
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int ch = 0; ch < c; ch++) {
        /* The same per-channel constant as th_batchnorm_forward_eval. */
        double is = 1.0 / sqrt((double)running_var[ch] + eps);
        float scale = (float)(gamma[ch] * is);
        double sum_g = 0.0, sum_gx = 0.0;
        for (int i = 0; i < n; i++) {
            size_t off = ((size_t)i * c + ch) * hw;
            for (int j = 0; j < hw; j++) {
                sum_g += dy[off + j];
                sum_gx += (double)dy[off + j] * (x[off + j] - running_mean[ch]);
                dx[off + j] = scale * dy[off + j];
            }
        }
        dbeta[ch] = (float)sum_g;
        dgamma[ch] = (float)(sum_gx * is);
    }
}

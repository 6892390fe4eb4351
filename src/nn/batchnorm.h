/* batchnorm.h - batch normalisation over (N, H, W) for each channel.
 *
 *   x, y, xhat [N, C, HW]; gamma, beta, running_mean, running_var, mean, invstd [C]
 *
 * Training mode normalises with the batch's statistics and updates the running
 * ones as PyTorch does (momentum 0.1, unbiased variance in running_var);
 * evaluation mode uses the running statistics only. Each function splits the
 * channels across `threads` OpenMP threads; the results do not depend on it.
 */
#ifndef THORAX_BATCHNORM_H
#define THORAX_BATCHNORM_H

void th_batchnorm_forward_train(int threads, int n, int c, int hw, const float *x,
                                const float *gamma, const float *beta,
                                float *y, float *xhat, float *mean, float *invstd,
                                float *running_mean, float *running_var,
                                float momentum, float eps);
void th_batchnorm_forward_eval(int threads, int n, int c, int hw, const float *x,
                               const float *gamma, const float *beta,
                               const float *running_mean, const float *running_var,
                               float eps, float *y);
/* Overwrites dx [N,C,HW], dgamma [C], dbeta [C]. */
void th_batchnorm_backward(int threads, int n, int c, int hw, const float *dy, const float *xhat,
                           const float *gamma, const float *invstd,
                           float *dx, float *dgamma, float *dbeta);
/* Backward of th_batchnorm_forward_eval, where the statistics are constants:
 *   dx = dy * gamma / sqrt(running_var + eps),  dbeta = sum dy,
 *   dgamma = sum dy * (x - running_mean) / sqrt(running_var + eps).
 * Needed to back-propagate through a model evaluated in eval mode (CAMs,
 * saliency). Overwrites dx [N,C,HW], dgamma [C], dbeta [C]. */
void th_batchnorm_backward_eval(int threads, int n, int c, int hw, const float *dy, const float *x,
                                const float *gamma, const float *running_mean,
                                const float *running_var, float eps,
                                float *dx, float *dgamma, float *dbeta);

#endif

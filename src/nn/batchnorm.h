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

/* Batch-norm and the ReLU after it as one layer (model_alloc.c fuses them
 * where the ReLU is the batch-norm's only reader):
 *
 *   x [N, C, HW] -> y = max(0, gamma * xhat + beta) [N, C, HW]
 *
 * in the statistics passes and one normalise+ReLU pass; neither the
 * batch-norm's output nor xhat is stored. Backward recomputes xhat from x
 * (kept anyway: it is the layer below's output), mean and invstd rather
 * than storing it: one FMA per element against a stream of N*C*HW floats
 * written in forward and the same read in backward, and the memory of it.
 * Its first pass takes the ReLU's mask (y > 0) and the sums dgamma, dbeta
 * together, its second writes dx; dy is the gradient at the ReLU's output.
 * The same float operations as the plain functions followed by
 * th_relu_forward / th_relu_backward, so the results are identical. */
void th_batchnorm_relu_forward_train(int threads, int n, int c, int hw, const float *x,
                                     const float *gamma, const float *beta,
                                     float *y, float *mean, float *invstd,
                                     float *running_mean, float *running_var,
                                     float momentum, float eps);
void th_batchnorm_relu_forward_eval(int threads, int n, int c, int hw, const float *x,
                                    const float *gamma, const float *beta,
                                    const float *running_mean, const float *running_var,
                                    float eps, float *y);
/* y: the forward's output; x, mean, invstd: its input and statistics.
 * Overwrites dx [N,C,HW] (not dy's memory: it holds the masked dy between
 * the two passes), dgamma [C], dbeta [C]. */
void th_batchnorm_relu_backward(int threads, int n, int c, int hw, const float *dy, const float *y,
                                const float *x, const float *gamma, const float *mean, const float *invstd,
                                float *dx, float *dgamma, float *dbeta);
void th_batchnorm_relu_backward_eval(int threads, int n, int c, int hw, const float *dy, const float *y,
                                     const float *x, const float *gamma, const float *running_mean,
                                     const float *running_var, float eps,
                                     float *dx, float *dgamma, float *dbeta);

#endif

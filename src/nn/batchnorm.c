/* batchnorm.c - batch normalisation per channel over (N, H, W), alone or
 * with the ReLU after it (see src/nn/batchnorm.h), with PyTorch's
 * BatchNorm2d semantics:
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
 *
 * One body per kernel serves the plain layer and the fused batch-norm + ReLU
 * (a constant flag, the body inlined into each), so both do the same float
 * operations in the same order and a fused network matches an unfused one
 * bit for bit: xhat is (x - mean) * invstd in float from the float mean and
 * invstd the layer keeps, whether stored (plain) or recomputed from x in
 * backward (fused), and the ReLU's mask is read from its output y > 0 as
 * th_relu_backward reads it. The loops run 8 floats at a time with their
 * double sums in 8 lanes (v8d), then a scalar tail; the lanes are added in
 * a fixed order, so the sums do not depend on the vector unit either.
 */
#include "batchnorm.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "simd.h"

typedef double v8d __attribute__((vector_size(64)));

/* Everything a kernel reads or writes; which fields are used depends on the
 * kernel (NULL otherwise). Shapes: x, y, xhat, dy, dx, ry [N, C, HW]; the
 * rest [C]. */
typedef struct {
    int n, c, hw;
    const float *x, *gamma, *beta;
    float *y, *xhat, *mean, *invstd, *running_mean, *running_var;
    const float *dy, *ry, *xhat_in, *stat_mean, *stat_invstd;
    float *dx, *dgamma, *dbeta;
    float momentum, eps;
} bn_args;

/* Macros rather than functions: a vector argument or result changes the
 * ABI of the baseline build (-Wpsabi). v8fu loads and stores unaligned. */
typedef float v8fu __attribute__((vector_size(32), aligned(4)));
#define load8(p) (*(const v8fu *)(p))
#define store8(p, v) (*(v8fu *)(p) = (v))

/* max(v, 0) as th_relu_forward computes it (NaN and -0 become +0). */
#define relu8(v) ((v8f)((v8i)(v) & ((v) > 0.0f)))
#define relu1(v) ((v) > 0.0f ? (v) : 0.0f)

/* The gradient at the batch-norm's output: dy, or with a fused ReLU dy
 * where its output ry is positive. */
#define grad8(dy, ry, relu, j) \
    ((relu) ? (v8f)((v8i)load8((dy) + (j)) & (load8((ry) + (j)) > 0.0f)) : (v8f)load8((dy) + (j)))
#define grad1(dy, ry, relu, j) ((relu) ? ((ry)[j] > 0.0f ? (dy)[j] : 0.0f) : (dy)[j])

#define lanes_sum(v) ((((v)[0] + (v)[1]) + ((v)[2] + (v)[3])) + (((v)[4] + (v)[5]) + ((v)[6] + (v)[7])))

/* Statistics of channel ch, then y (and xhat unless NULL) over it. */
TH_INLINE void forward_train_body(const bn_args *a, int ch, int relu)
{
    const int n = a->n, c = a->c, hw = a->hw;
    const size_t m = (size_t)n * hw;
    /* Two passes (mean, then squared deviations) avoid the cancellation of
     * E[x^2] - E[x]^2 when the mean is large; the channel ([N, HW], strided
     * by C*HW) is still in cache for the second and third. */
    v8d acc = {0};
    double tail = 0.0;
    for (int i = 0; i < n; i++) {
        const float *xp = a->x + ((size_t)i * c + ch) * hw;
        int j = 0;
        for (; j + 8 <= hw; j += 8) acc += __builtin_convertvector(load8(xp + j), v8d);
        for (; j < hw; j++) tail += xp[j];
    }
    const double mu = (lanes_sum(acc) + tail) / (double)m;
    v8d acc2 = {0};
    double tail2 = 0.0;
    for (int i = 0; i < n; i++) {
        const float *xp = a->x + ((size_t)i * c + ch) * hw;
        int j = 0;
        for (; j + 8 <= hw; j += 8) {
            v8d dev = __builtin_convertvector(load8(xp + j), v8d) - mu;
            acc2 += dev * dev;
        }
        for (; j < hw; j++) tail2 += (xp[j] - mu) * (xp[j] - mu);
    }
    const double ss = lanes_sum(acc2) + tail2, var = ss / (double)m, is = 1.0 / sqrt(var + a->eps);
    const float mf = (float)mu, isf = (float)is, g = a->gamma[ch], b = a->beta[ch];
    for (int i = 0; i < n; i++) {
        const size_t off = ((size_t)i * c + ch) * hw;
        const float *xp = a->x + off;
        float *yp = a->y + off, *hp = a->xhat ? a->xhat + off : NULL;
        int j = 0;
        for (; j + 8 <= hw; j += 8) {
            v8f xh = (load8(xp + j) - mf) * isf, v = g * xh + b;
            if (hp) store8(hp + j, xh);
            store8(yp + j, relu ? relu8(v) : v);
        }
        for (; j < hw; j++) {
            float xh = (xp[j] - mf) * isf, v = g * xh + b;
            if (hp) hp[j] = xh;
            yp[j] = relu ? relu1(v) : v;
        }
    }
    a->mean[ch] = mf;
    a->invstd[ch] = isf;
    const float mom = a->momentum;
    const double unbiased = m > 1 ? ss / (double)(m - 1) : var;
    a->running_mean[ch] = (float)((1.0 - mom) * a->running_mean[ch] + mom * mu);
    a->running_var[ch] = (float)((1.0 - mom) * a->running_var[ch] + mom * unbiased);
}

/* Folded into one affine map per channel: y = s*x + t (then the ReLU). */
TH_INLINE void forward_eval_body(const bn_args *a, int ch, int relu)
{
    const double is = 1.0 / sqrt((double)a->running_var[ch] + a->eps);
    const float s = (float)(a->gamma[ch] * is);
    const float t = (float)(a->beta[ch] - a->gamma[ch] * a->running_mean[ch] * is);
    for (int i = 0; i < a->n; i++) {
        const size_t off = ((size_t)i * a->c + ch) * a->hw;
        const float *xp = a->x + off;
        float *yp = a->y + off;
        int j = 0;
        for (; j + 8 <= a->hw; j += 8) {
            v8f v = s * load8(xp + j) + t;
            store8(yp + j, relu ? relu8(v) : v);
        }
        for (; j < a->hw; j++) yp[j] = relu ? relu1(s * xp[j] + t) : s * xp[j] + t;
    }
}

/* With g the gradient at the batch-norm's output and m values per channel:
 *   dbeta  = sum g,   dgamma = sum g * xhat,
 *   dx     = gamma * invstd * (g - dbeta/m - xhat * dgamma/m),
 * the two mean terms coming from the dependence of mean and var on x.
 * Written with means rather than m*g - sum so float stays accurate at large
 * m. Two passes over the channel: the sums (with the ReLU's mask), then dx.
 * xhat is read (plain) or recomputed from x, mean and invstd (fused): the
 * same float operation as the forward that stored it. Fused, the first
 * pass also keeps the masked g in dx, which the second reads back and
 * overwrites: two streams there rather than dy, y and x again ([N, HW]
 * each: 400 KB at ResNet's stem at batch 8, so two fit a 1 MB L2 and
 * three do not), 15-30% faster at ResNet-18's 112x112 and 56x56. */
TH_INLINE void backward_body(const bn_args *a, int ch, int relu)
{
    const int n = a->n, c = a->c, hw = a->hw;
    const float mf = relu ? a->stat_mean[ch] : 0.0f, isf = a->stat_invstd[ch];
    v8d sg = {0}, sgx = {0};
    double tg = 0.0, tgx = 0.0;
    for (int i = 0; i < n; i++) {
        const size_t off = ((size_t)i * c + ch) * hw;
        const float *dy = a->dy + off, *ry = relu ? a->ry + off : NULL;
        const float *xp = relu ? a->x + off : NULL, *hp = relu ? NULL : a->xhat_in + off;
        float *gp = a->dx + off;
        int j = 0;
        for (; j + 8 <= hw; j += 8) {
            v8f g = grad8(dy, ry, relu, j), xh = relu ? (load8(xp + j) - mf) * isf : load8(hp + j);
            if (relu) store8(gp + j, g);
            v8d gd = __builtin_convertvector(g, v8d);
            sg += gd;
            sgx += gd * __builtin_convertvector(xh, v8d);
        }
        for (; j < hw; j++) {
            float g = grad1(dy, ry, relu, j), xh = relu ? (xp[j] - mf) * isf : hp[j];
            if (relu) gp[j] = g;
            tg += g;
            tgx += (double)g * xh;
        }
    }
    const double sum_g = lanes_sum(sg) + tg, sum_gx = lanes_sum(sgx) + tgx, m = (double)n * hw;
    a->dbeta[ch] = (float)sum_g;
    a->dgamma[ch] = (float)sum_gx;
    const float scale = a->gamma[ch] * isf, mean_g = (float)(sum_g / m), mean_gx = (float)(sum_gx / m);
    for (int i = 0; i < n; i++) {
        const size_t off = ((size_t)i * c + ch) * hw;
        const float *dy = a->dy + off;
        const float *xp = relu ? a->x + off : NULL, *hp = relu ? NULL : a->xhat_in + off;
        float *dx = a->dx + off;
        int j = 0;
        for (; j + 8 <= hw; j += 8) {
            v8f g = relu ? (v8f)load8(dx + j) : (v8f)load8(dy + j);
            v8f xh = relu ? (load8(xp + j) - mf) * isf : load8(hp + j);
            store8(dx + j, scale * (g - mean_g - xh * mean_gx));
        }
        for (; j < hw; j++) {
            float g = relu ? dx[j] : dy[j], xh = relu ? (xp[j] - mf) * isf : hp[j];
            dx[j] = scale * (g - mean_g - xh * mean_gx);
        }
    }
}

/* Backward with the running statistics as constants: one pass.
 *   dx = g * gamma / sqrt(running_var + eps),  dbeta = sum g,
 *   dgamma = sum g * (x - running_mean) / sqrt(running_var + eps). */
TH_INLINE void backward_eval_body(const bn_args *a, int ch, int relu)
{
    const double is = 1.0 / sqrt((double)a->running_var[ch] + a->eps);
    const float scale = (float)(a->gamma[ch] * is), rm = a->running_mean[ch];
    v8d sg = {0}, sgx = {0};
    double tg = 0.0, tgx = 0.0;
    for (int i = 0; i < a->n; i++) {
        const size_t off = ((size_t)i * a->c + ch) * a->hw;
        const float *dy = a->dy + off, *ry = relu ? a->ry + off : NULL, *xp = a->x + off;
        float *dx = a->dx + off;
        int j = 0;
        for (; j + 8 <= a->hw; j += 8) {
            v8f g = grad8(dy, ry, relu, j);
            v8d gd = __builtin_convertvector(g, v8d);
            sg += gd;
            sgx += gd * __builtin_convertvector(load8(xp + j) - rm, v8d);
            store8(dx + j, scale * g);
        }
        for (; j < a->hw; j++) {
            float g = grad1(dy, ry, relu, j);
            tg += g;
            tgx += (double)g * (xp[j] - rm);
            dx[j] = scale * g;
        }
    }
    a->dbeta[ch] = (float)(lanes_sum(sg) + tg);
    a->dgamma[ch] = (float)((lanes_sum(sgx) + tgx) * is);
}

/* One channel of each kernel, plain (relu 0) or fused (1), for the vector
 * unit at hand. */
enum { FWD_TRAIN, FWD_EVAL, BWD_TRAIN, BWD_EVAL };

TH_INLINE void channel_body(const bn_args *a, int ch, int kernel, int relu)
{
    switch (kernel) {
    case FWD_TRAIN:
        if (relu) forward_train_body(a, ch, 1);
        else forward_train_body(a, ch, 0);
        break;
    case FWD_EVAL:
        if (relu) forward_eval_body(a, ch, 1);
        else forward_eval_body(a, ch, 0);
        break;
    case BWD_TRAIN:
        if (relu) backward_body(a, ch, 1);
        else backward_body(a, ch, 0);
        break;
    default:
        if (relu) backward_eval_body(a, ch, 1);
        else backward_eval_body(a, ch, 0);
        break;
    }
}

TH_SIMD_DISPATCH(channel, (const bn_args *a, int ch, int kernel, int relu), (a, ch, kernel, relu))

static void run(int threads, const bn_args *a, int kernel, int relu)
{
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int ch = 0; ch < a->c; ch++) channel(a, ch, kernel, relu);
}

void th_batchnorm_forward_train(int threads, int n, int c, int hw, const float *x,
                                const float *gamma, const float *beta,
                                float *y, float *xhat, float *mean, float *invstd,
                                float *running_mean, float *running_var,
                                float momentum, float eps)
{
    bn_args a = {.n = n, .c = c, .hw = hw, .x = x, .gamma = gamma, .beta = beta, .y = y, .xhat = xhat,
                 .mean = mean, .invstd = invstd, .running_mean = running_mean, .running_var = running_var,
                 .momentum = momentum, .eps = eps};
    run(threads, &a, FWD_TRAIN, 0);
}

void th_batchnorm_relu_forward_train(int threads, int n, int c, int hw, const float *x,
                                     const float *gamma, const float *beta,
                                     float *y, float *mean, float *invstd,
                                     float *running_mean, float *running_var,
                                     float momentum, float eps)
{
    bn_args a = {.n = n, .c = c, .hw = hw, .x = x, .gamma = gamma, .beta = beta, .y = y,
                 .mean = mean, .invstd = invstd, .running_mean = running_mean, .running_var = running_var,
                 .momentum = momentum, .eps = eps};
    run(threads, &a, FWD_TRAIN, 1);
}

static void forward_eval(int threads, int n, int c, int hw, const float *x, const float *gamma, const float *beta,
                         const float *running_mean, const float *running_var, float eps, float *y, int relu)
{
    bn_args a = {.n = n, .c = c, .hw = hw, .x = x, .gamma = gamma, .beta = beta, .y = y,
                 .running_mean = (float *)running_mean, .running_var = (float *)running_var, .eps = eps};
    run(threads, &a, FWD_EVAL, relu);
}

void th_batchnorm_forward_eval(int threads, int n, int c, int hw, const float *x,
                               const float *gamma, const float *beta,
                               const float *running_mean, const float *running_var,
                               float eps, float *y)
{
    forward_eval(threads, n, c, hw, x, gamma, beta, running_mean, running_var, eps, y, 0);
}

void th_batchnorm_relu_forward_eval(int threads, int n, int c, int hw, const float *x,
                                    const float *gamma, const float *beta,
                                    const float *running_mean, const float *running_var,
                                    float eps, float *y)
{
    forward_eval(threads, n, c, hw, x, gamma, beta, running_mean, running_var, eps, y, 1);
}

void th_batchnorm_backward(int threads, int n, int c, int hw, const float *dy, const float *xhat,
                           const float *gamma, const float *invstd,
                           float *dx, float *dgamma, float *dbeta)
{
    bn_args a = {.n = n, .c = c, .hw = hw, .gamma = gamma, .dy = dy, .xhat_in = xhat, .stat_invstd = invstd,
                 .dx = dx, .dgamma = dgamma, .dbeta = dbeta};
    run(threads, &a, BWD_TRAIN, 0);
}

void th_batchnorm_relu_backward(int threads, int n, int c, int hw, const float *dy, const float *y,
                                const float *x, const float *gamma, const float *mean, const float *invstd,
                                float *dx, float *dgamma, float *dbeta)
{
    bn_args a = {.n = n, .c = c, .hw = hw, .x = x, .gamma = gamma, .dy = dy, .ry = y, .stat_mean = mean,
                 .stat_invstd = invstd, .dx = dx, .dgamma = dgamma, .dbeta = dbeta};
    run(threads, &a, BWD_TRAIN, 1);
}

void th_batchnorm_backward_eval(int threads, int n, int c, int hw, const float *dy, const float *x,
                                const float *gamma, const float *running_mean,
                                const float *running_var, float eps,
                                float *dx, float *dgamma, float *dbeta)
{
    bn_args a = {.n = n, .c = c, .hw = hw, .x = x, .gamma = gamma, .dy = dy,
                 .running_mean = (float *)running_mean, .running_var = (float *)running_var, .eps = eps,
                 .dx = dx, .dgamma = dgamma, .dbeta = dbeta};
    run(threads, &a, BWD_EVAL, 0);
}

void th_batchnorm_relu_backward_eval(int threads, int n, int c, int hw, const float *dy, const float *y,
                                     const float *x, const float *gamma, const float *running_mean,
                                     const float *running_var, float eps,
                                     float *dx, float *dgamma, float *dbeta)
{
    bn_args a = {.n = n, .c = c, .hw = hw, .x = x, .gamma = gamma, .dy = dy, .ry = y,
                 .running_mean = (float *)running_mean, .running_var = (float *)running_var, .eps = eps,
                 .dx = dx, .dgamma = dgamma, .dbeta = dbeta};
    run(threads, &a, BWD_EVAL, 1);
}

/* test_optim.c - SGD (plain, momentum, Nesterov, weight decay) and Adam over
 * three steps on a 3-element vector, against PyTorch's update formulas
 * written out independently here in double. */
#include <string.h>

#include "testutil.h"
#include "thorax/nn.h"

enum { N = 3, STEPS = 3 };

static const float p0[N] = {0.5f, -1.25f, 2.0f};
static const float grads[STEPS][N] = {{0.1f, -0.2f, 0.3f}, {-0.4f, 0.5f, 0.05f}, {0.2f, 0.2f, -0.6f}};

/* torch.optim.SGD, dampening 0: the momentum buffer is the first gradient on
 * step 1, then buf = mu*buf + g. */
static void sgd_reference(double lr, double mu, int nesterov, double wd, double p[N])
{
    double buf[N];
    for (int i = 0; i < N; i++) p[i] = p0[i];
    for (int t = 0; t < STEPS; t++) {
        for (int i = 0; i < N; i++) {
            double g = grads[t][i] + wd * p[i];
            if (mu != 0.0) {
                buf[i] = t == 0 ? g : mu * buf[i] + g;
                g = nesterov ? g + mu * buf[i] : buf[i];
            }
            p[i] -= lr * g;
        }
    }
}

/* torch.optim.Adam (not AdamW): step t counts from 1. */
static void adam_reference(double lr, double b1, double b2, double eps, double wd, double p[N])
{
    double m[N] = {0}, v[N] = {0};
    for (int i = 0; i < N; i++) p[i] = p0[i];
    for (int t = 1; t <= STEPS; t++) {
        for (int i = 0; i < N; i++) {
            double g = grads[t - 1][i] + wd * p[i];
            m[i] = b1 * m[i] + (1 - b1) * g;
            v[i] = b2 * v[i] + (1 - b2) * g * g;
            double mhat = m[i] / (1 - pow(b1, t)), vhat = v[i] / (1 - pow(b2, t));
            p[i] -= lr * mhat / (sqrt(vhat) + eps);
        }
    }
}

static void run(const th_optim_config *cfg, float lr, float p[N])
{
    th_optim o;
    th_err err;
    if (!CHECK(th_optim_init(&o, cfg, N, &err) == 0)) return;
    memcpy(p, p0, sizeof p0);
    for (int t = 0; t < STEPS; t++) th_optim_step(&o, p, grads[t], lr);
    CHECK(o.t == STEPS);
    th_optim_free(&o);
}

static void check_sgd(float lr, float mu, int nesterov, float wd)
{
    th_optim_config cfg = {.type = TH_OPTIM_SGD, .lr = 99.0f, .momentum = mu, .nesterov = nesterov,
                           .weight_decay = wd};
    float p[N];
    double want[N];
    /* cfg.lr is deliberately wrong: the step's lr argument must win. */
    run(&cfg, lr, p);
    sgd_reference(lr, mu, nesterov, wd, want);
    for (int i = 0; i < N; i++) CHECK_REL(p[i], want[i], 1e-6, 1e-3);
}

static void check_adam(float lr, float wd)
{
    th_optim_config cfg = {.type = TH_OPTIM_ADAM, .lr = lr, .weight_decay = wd,
                           .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    float p[N];
    double want[N];
    run(&cfg, lr, p);
    adam_reference(lr, 0.9f, 0.999f, 1e-8f, wd, want);
    for (int i = 0; i < N; i++) CHECK_REL(p[i], want[i], 1e-6, 1e-3);
}

int main(void)
{
    check_sgd(0.1f, 0.0f, 0, 0.0f);
    check_sgd(0.1f, 0.9f, 0, 0.0f);
    check_sgd(0.1f, 0.9f, 1, 0.0f);
    check_sgd(0.05f, 0.9f, 1, 0.01f);
    check_sgd(0.05f, 0.0f, 0, 0.1f);
    check_adam(0.01f, 0.0f);
    check_adam(0.01f, 0.05f);

    /* One hand-computed SGD step as an anchor for the reference itself:
     * p = 0.5, g = 0.1 + 0.01*0.5 = 0.105, buf = 0.105, Nesterov
     * g = 0.105 + 0.9*0.105 = 0.1995, p = 0.5 - 0.1*0.1995 = 0.48005. */
    th_optim_config cfg = {.type = TH_OPTIM_SGD, .momentum = 0.9f, .nesterov = 1, .weight_decay = 0.01f};
    th_optim o;
    th_err err;
    float p[N];
    memcpy(p, p0, sizeof p0);
    CHECK(th_optim_init(&o, &cfg, N, &err) == 0);
    th_optim_step(&o, p, grads[0], 0.1f);
    CHECK_NEAR(p[0], 0.48005, 1e-6);
    th_optim_free(&o);

    /* Adam's first step moves every parameter by about lr, whatever |g|. */
    cfg = (th_optim_config){.type = TH_OPTIM_ADAM, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    memcpy(p, p0, sizeof p0);
    CHECK(th_optim_init(&o, &cfg, N, &err) == 0);
    th_optim_step(&o, p, grads[0], 0.01f);
    for (int i = 0; i < N; i++) CHECK_NEAR(p0[i] - p[i], grads[0][i] > 0 ? 0.01 : -0.01, 1e-6);
    th_optim_free(&o);

    /* Errors name the problem. */
    cfg = (th_optim_config){.type = TH_OPTIM_SGD, .momentum = 0.0f, .nesterov = 1};
    CHECK(th_optim_init(&o, &cfg, N, &err) == -1 && strstr(err.msg, "nesterov") != NULL);
    th_optim_free(&o);

    return th_test_summary("test_optim");
}

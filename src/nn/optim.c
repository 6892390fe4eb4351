/* optim.c - SGD with momentum/Nesterov and Adam (see thorax/optim.h).
 *
 * The update rules are PyTorch's (torch.optim.SGD with dampening 0, and
 * torch.optim.Adam, weight decay added to the gradient, not decoupled), so a
 * run can be checked against, or continued from, a PyTorch reference.
 * PyTorch initialises the momentum buffer to the first gradient; starting it
 * at zero gives the same first step (mu*0 + g = g) with no special case.
 */
#include "thorax/optim.h"

#include <math.h>
#include <stdlib.h>

int th_optim_init(th_optim *o, const th_optim_config *cfg, size_t n, th_err *err)
{
    o->cfg = *cfg;
    o->n = n;
    o->m = NULL;
    o->v = NULL;
    o->t = 0;
    if (n == 0) return th_errf(err, "optimizer: the model has no parameters");
    if (cfg->type != TH_OPTIM_SGD && cfg->type != TH_OPTIM_ADAM)
        return th_errf(err, "optimizer: unknown type %d", (int)cfg->type);
    if (cfg->type == TH_OPTIM_SGD && cfg->nesterov && cfg->momentum <= 0.0f)
        return th_errf(err, "optimizer: nesterov needs a momentum > 0 (got %g)", (double)cfg->momentum);

    o->m = calloc(n, sizeof *o->m);
    if (!o->m) return th_errf(err, "optimizer: cannot allocate state for %zu parameters (%zu bytes)", n, n * sizeof *o->m);
    if (cfg->type == TH_OPTIM_ADAM) {
        o->v = calloc(n, sizeof *o->v);
        if (!o->v) {
            th_optim_free(o);
            return th_errf(err, "optimizer: cannot allocate Adam second moment for %zu parameters (%zu bytes)", n,
                           n * sizeof *o->v);
        }
    }
    return 0;
}

static void sgd_step(th_optim *o, float *params, const float *grads, float lr)
{
    const float mu = o->cfg.momentum, wd = o->cfg.weight_decay;
    const int nesterov = o->cfg.nesterov;
    float *buf = o->m;
    for (size_t i = 0; i < o->n; i++) {
        float g = grads[i] + wd * params[i];
        buf[i] = mu * buf[i] + g;
        g = nesterov ? g + mu * buf[i] : buf[i];
        params[i] -= lr * g;
    }
}

/* p -= lr * mhat / (sqrt(vhat) + eps), with mhat = m / (1 - b1^t) and
 * vhat = v / (1 - b2^t) undoing the bias of moments that start at zero. */
static void adam_step(th_optim *o, float *params, const float *grads, float lr)
{
    const float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps, wd = o->cfg.weight_decay;
    const float bc1 = (float)(1.0 - pow(b1, (double)o->t));
    const float bc2 = (float)(1.0 - pow(b2, (double)o->t));
    for (size_t i = 0; i < o->n; i++) {
        float g = grads[i] + wd * params[i];
        o->m[i] = b1 * o->m[i] + (1.0f - b1) * g;
        o->v[i] = b2 * o->v[i] + (1.0f - b2) * g * g;
        float mhat = o->m[i] / bc1, vhat = o->v[i] / bc2;
        params[i] -= lr * mhat / (sqrtf(vhat) + eps);
    }
}

void th_optim_step(th_optim *o, float *params, const float *grads, float lr)
{
    o->t++;
    switch (o->cfg.type) {
    case TH_OPTIM_SGD: sgd_step(o, params, grads, lr); break;
    case TH_OPTIM_ADAM: adam_step(o, params, grads, lr); break;
    }
}

void th_optim_free(th_optim *o)
{
    free(o->m);
    free(o->v);
    o->m = NULL;
    o->v = NULL;
}

/* optim.c - SGD with momentum/Nesterov and Adam (see thorax/nn.h).
 *
 * The update rules are PyTorch's (torch.optim.SGD with dampening 0, and
 * torch.optim.Adam, weight decay added to the gradient, not decoupled), so a
 * run can be checked against, or continued from, a PyTorch reference.
 * PyTorch initialises the momentum buffer to the first gradient; starting it
 * at zero gives the same first step (mu*0 + g = g) with no special case.
 *
 * The state of the groups is packed: a frozen parameter costs no memory, and
 * with one group (no freezing) the update is the single loop over the whole
 * buffer it always was.
 */
#include "thorax/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* State for n_state floats per slot, zeroed; NULL slots when n_state is 0. */
static int alloc_state(th_optim_type type, size_t n_state, float **m, float **v, th_err *err)
{
    *m = *v = NULL;
    if (n_state == 0) return 0;
    *m = calloc(n_state, sizeof **m);
    if (!*m)
        return th_errf(err, "optimizer: cannot allocate state for %zu parameters (%zu bytes)", n_state,
                       n_state * sizeof **m);
    if (type == TH_OPTIM_ADAM) {
        *v = calloc(n_state, sizeof **v);
        if (!*v) {
            free(*m);
            *m = NULL;
            return th_errf(err, "optimizer: cannot allocate Adam second moment for %zu parameters (%zu bytes)",
                           n_state, n_state * sizeof **v);
        }
    }
    return 0;
}

int th_optim_init(th_optim *o, const th_optim_config *cfg, size_t n, th_err *err)
{
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n = n;
    if (n == 0) return th_errf(err, "optimizer: the model has no parameters");
    if (cfg->type != TH_OPTIM_SGD && cfg->type != TH_OPTIM_ADAM)
        return th_errf(err, "optimizer: unknown type %d", (int)cfg->type);
    if (cfg->type == TH_OPTIM_SGD && cfg->nesterov && cfg->momentum <= 0.0f)
        return th_errf(err, "optimizer: nesterov needs a momentum > 0 (got %g)", (double)cfg->momentum);

    o->groups = malloc(sizeof *o->groups);
    if (!o->groups) return th_errf(err, "optimizer: out of memory");
    o->groups[0] = (th_optim_group){.offset = 0, .count = n, .state = 0, .t = 0};
    o->n_groups = 1;
    o->n_state = n;
    if (alloc_state(cfg->type, n, &o->m, &o->v, err)) {
        th_optim_free(o);
        return -1;
    }
    return 0;
}

th_optim_group *th_optim_find(const th_optim *o, size_t offset, size_t count)
{
    for (int k = 0; k < o->n_groups; k++) {
        th_optim_group *g = &o->groups[k];
        if (offset >= g->offset && offset + count <= g->offset + g->count) return g;
    }
    return NULL;
}

int th_optim_set_groups(th_optim *o, int n_groups, const size_t *offset, const size_t *count, th_err *err)
{
    size_t total = 0;
    for (int k = 0; k < n_groups; k++) {
        if (count[k] == 0 || offset[k] > o->n || count[k] > o->n - offset[k] ||
            (k > 0 && offset[k] < offset[k - 1] + count[k - 1]))
            return th_errf(err, "optimizer: group %d [%zu, %zu) is empty, overlaps the one before or lies beyond the "
                                "%zu parameters",
                           k, offset[k], offset[k] + count[k], o->n);
        total += count[k];
    }
    th_optim_group *groups = malloc(sizeof *groups * (size_t)(n_groups > 0 ? n_groups : 1));
    float *m, *v;
    if (!groups) return th_errf(err, "optimizer: out of memory for %d parameter groups", n_groups);
    if (alloc_state(o->cfg.type, total, &m, &v, err)) {
        free(groups);
        return -1;
    }
    size_t state = 0;
    for (int k = 0; k < n_groups; k++) {
        th_optim_group *g = &groups[k];
        *g = (th_optim_group){.offset = offset[k], .count = count[k], .state = state, .t = 0};
        state += count[k];
        const th_optim_group *old = th_optim_find(o, g->offset, g->count);
        if (!old) continue;
        size_t from = old->state + (g->offset - old->offset);
        g->t = old->t;
        memcpy(m + g->state, o->m + from, g->count * sizeof *m);
        if (v) memcpy(v + g->state, o->v + from, g->count * sizeof *v);
    }
    free(o->groups);
    free(o->m);
    free(o->v);
    o->groups = groups;
    o->n_groups = n_groups;
    o->n_state = total;
    o->m = m;
    o->v = v;
    return 0;
}

static void sgd_step(const th_optim *o, size_t n, float *params, const float *grads, float *buf, float lr)
{
    const float mu = o->cfg.momentum, wd = o->cfg.weight_decay;
    const int nesterov = o->cfg.nesterov;
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] + wd * params[i];
        buf[i] = mu * buf[i] + g;
        g = nesterov ? g + mu * buf[i] : buf[i];
        params[i] -= lr * g;
    }
}

/* p -= lr * mhat / (sqrt(vhat) + eps), with mhat = m / (1 - b1^t) and
 * vhat = v / (1 - b2^t) undoing the bias of moments that start at zero. */
static void adam_step(const th_optim *o, size_t n, long t, float *params, const float *grads, float *m, float *v,
                      float lr)
{
    const float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps, wd = o->cfg.weight_decay;
    const float bc1 = (float)(1.0 - pow(b1, (double)t));
    const float bc2 = (float)(1.0 - pow(b2, (double)t));
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] + wd * params[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        float mhat = m[i] / bc1, vhat = v[i] / bc2;
        params[i] -= lr * mhat / (sqrtf(vhat) + eps);
    }
}

void th_optim_step(th_optim *o, float *params, const float *grads, float lr)
{
    o->t++;
    for (int k = 0; k < o->n_groups; k++) {
        th_optim_group *g = &o->groups[k];
        g->t++;
        float *p = params + g->offset;
        const float *d = grads + g->offset;
        switch (o->cfg.type) {
        case TH_OPTIM_SGD: sgd_step(o, g->count, p, d, o->m + g->state, lr); break;
        case TH_OPTIM_ADAM: adam_step(o, g->count, g->t, p, d, o->m + g->state, o->v + g->state, lr); break;
        }
    }
}

void th_optim_free(th_optim *o)
{
    free(o->m);
    free(o->v);
    free(o->groups);
    o->m = NULL;
    o->v = NULL;
    o->groups = NULL;
    o->n_groups = 0;
    o->n_state = 0;
}

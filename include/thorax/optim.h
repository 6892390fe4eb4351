/* optim.h - SGD (momentum, Nesterov, weight decay) and Adam, with PyTorch's
 * update rules, over one flat parameter buffer.
 *
 * SGD:  g = grad + wd*p;  buf = mu*buf + g;  g = nesterov ? g + mu*buf : buf;  p -= lr*g
 * Adam: g = grad + wd*p;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
 *       p -= lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps)
 */
#ifndef THORAX_OPTIM_H
#define THORAX_OPTIM_H

#include <stddef.h>
#include "thorax/error.h"

typedef enum th_optim_type {
    TH_OPTIM_SGD = 0,
    TH_OPTIM_ADAM,
} th_optim_type;

typedef struct th_optim_config {
    th_optim_type type;
    float lr;
    float momentum;      /* SGD */
    int nesterov;        /* SGD */
    float weight_decay;
    float beta1, beta2;  /* Adam */
    float eps;           /* Adam */
} th_optim_config;

typedef struct th_optim {
    th_optim_config cfg;
    size_t n;
    float *m;            /* SGD momentum buffer, or Adam first moment [n] */
    float *v;            /* Adam second moment [n]; NULL for SGD */
    long t;              /* steps taken */
} th_optim;

int th_optim_init(th_optim *o, const th_optim_config *cfg, size_t n, th_err *err);
/* One update with learning rate lr (the schedule's, not cfg.lr). */
void th_optim_step(th_optim *o, float *params, const float *grads, float lr);
void th_optim_free(th_optim *o);

#endif

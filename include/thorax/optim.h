/* optim.h - SGD (momentum, Nesterov, weight decay) and Adam, with PyTorch's
 * update rules, over one flat parameter buffer.
 *
 * SGD:  g = grad + wd*p;  buf = mu*buf + g;  g = nesterov ? g + mu*buf : buf;  p -= lr*g
 * Adam: g = grad + wd*p;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
 *       p -= lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps)
 *
 * The optimiser updates groups: runs of the buffer, each with its own state
 * and step count. After th_optim_init one group covers the whole buffer.
 * Fine-tuning narrows them (th_optim_set_groups): parameters outside every
 * group are frozen, and get no update, no weight decay and no state at all.
 */
#ifndef THORAX_OPTIM_H
#define THORAX_OPTIM_H

#include <stddef.h>
#include "thorax/error.h"
#include "thorax/spec.h"  /* th_optim_config */

/* params [offset, offset + count) and their state m [state, state + count)
 * (and v likewise). t counts the group's own steps, which Adam's bias
 * correction uses: PyTorch keeps a step per parameter, so a parameter that
 * starts training late starts its correction at step 1, not at the run's
 * step (which would make its first steps about 3x too long). */
typedef struct th_optim_group {
    size_t offset, count;
    size_t state;
    long t;
} th_optim_group;

typedef struct th_optim {
    th_optim_config cfg;
    size_t n;                /* length of the parameter buffer */
    int n_groups;
    th_optim_group *groups;  /* increasing offsets, disjoint */
    size_t n_state;          /* floats of state per slot: the groups' counts summed */
    float *m;                /* SGD momentum buffer, or Adam first moment [n_state] */
    float *v;                /* Adam second moment [n_state]; NULL for SGD */
    long t;                  /* steps taken */
} th_optim;

/* One group over params [0, n). */
int th_optim_init(th_optim *o, const th_optim_config *cfg, size_t n, th_err *err);

/* From now on the optimiser updates exactly params [offset[k], offset[k] +
 * count[k]) for k < n_groups (increasing, disjoint, non-empty, within
 * [0, n)); everything else is frozen. A group lying inside a current one
 * keeps its state and step count; any other starts from zero state at t = 0
 * (PyTorch creates a parameter's state at its first update). n_groups may be
 * 0. Allocates: call it between steps, never in one. On failure o is as it
 * was. */
int th_optim_set_groups(th_optim *o, int n_groups, const size_t *offset, const size_t *count, th_err *err);

/* The group holding params [offset, offset + count) whole, or NULL (frozen). */
th_optim_group *th_optim_find(const th_optim *o, size_t offset, size_t count);

/* One update of every group with learning rate lr (the schedule's, not cfg.lr). */
void th_optim_step(th_optim *o, float *params, const float *grads, float lr);
void th_optim_free(th_optim *o);

#endif

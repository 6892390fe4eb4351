/* stages.c - train.freeze and train.unfreeze (see run.h). */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run.h"
#include "schedule.h"

/* ---- Stages ------------------------------------------------------------
 * train.freeze keeps the layers it names from training: th_model_freeze
 * (no parameter gradients), no optimiser group (no update, no weight decay,
 * no state) and no share of the allreduce. With train.unfreeze {epoch: E,
 * lr: X} that is the first stage, epochs [0, E); from epoch E every layer
 * trains. The stage is a function of the epoch, so a resumed run finds it
 * again from its checkpoint. The switch happens at the end of epoch E - 1,
 * before its checkpoint is written, so every checkpoint holds the state of
 * the stage it resumes into:
 *  - the thawed tensors' optimiser state starts at zero, with a step count
 *    of its own (Adam's bias correction starts again for them, as PyTorch's
 *    per-parameter state would);
 *  - the learning rate becomes X and the schedule starts again: each stage
 *    runs train.schedule on its own, the first over E epochs from
 *    train.optimizer.lr, the second over epochs - E from X (step: X *
 *    factor^floor((epoch - E) / step_epochs); cosine: its warm-up and decay
 *    over the second stage; plateau and constant: X, reduced from there);
 *  - the plateau and early-stopping counters start again (the best score
 *    and best.h5 are the run's), and early stopping never ends the first
 *    stage: the second is the point of the run. */

/* Which stage a tensor trains in: 0 both, 1 the second only, -1 neither now. */
static int tensor_class(const run *r, const th_tensor_info *ti)
{
    if (!ti->trainable || r->model.layers[ti->layer].frozen) return -1;
    return th_config_freezes(r->cfg, r->model.layers[ti->layer].name);
}

/* Freezes the layers of the first stage, or thaws them (thawed = 1), and
 * gives the optimiser and the gradient sync the ranges that train. An
 * optimiser group is a run of adjacent tensors of one class, so a thawed
 * layer never shares a step count with one that trained from the start. */
int run_set_stage(run *r, int thawed, th_err *err)
{
    th_model *m = &r->model;
    for (int i = 0; i < m->n_layers; i++)
        th_model_freeze(m, i, !thawed && th_config_freezes(r->cfg, m->layers[i].name));
    size_t cap = (size_t)m->n_tensors + 1;
    size_t *off = malloc(sizeof *off * cap), *cnt = malloc(sizeof *cnt * cap);
    if (!off || !cnt) {
        free(off);
        free(cnt);
        return th_errf(err, "out of memory for the optimiser groups of %d tensors", m->n_tensors);
    }
    int n = 0, last = -1;
    for (int t = 0; t < m->n_tensors; t++) {
        const th_tensor_info *ti = &m->tensors[t];
        int cls = tensor_class(r, ti);
        if (cls < 0 || ti->count == 0) continue;
        if (n > 0 && cls == last && off[n - 1] + cnt[n - 1] == ti->offset) {
            cnt[n - 1] += ti->count;
        } else {
            off[n] = ti->offset;
            cnt[n++] = ti->count;
        }
        last = cls;
    }
    int rc = th_optim_set_groups(&r->opt, n, off, cnt, err);
    free(off);
    free(cnt);
    if (rc) return -1;
    if (th_step_resync(&r->step, err)) return -1;
    r->thawed = thawed;
    return 0;
}

/* "freeze: ..." for the log: what the first stage trains. */
void run_describe_freeze(run *r)
{
    const th_model *m = &r->model;
    const th_config *cfg = r->cfg;
    char names[512] = "";
    size_t len = 0, frozen = 0;
    for (int k = 0; k < cfg->train.n_freeze && len < sizeof names; k++)
        len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", k ? ", " : "", cfg->train.freeze[k]);
    int layers = 0;
    for (int i = 0; i < m->n_layers; i++) layers += m->layers[i].frozen && m->layers[i].w_off != SIZE_MAX;
    for (int t = 0; t < m->n_tensors; t++)
        if (m->tensors[t].trainable && m->layers[m->tensors[t].layer].frozen) frozen += m->tensors[t].count;
    int e = cfg->train.unfreeze.epoch;
    char until[64] = "";
    if (e == 1) snprintf(until, sizeof until, " for the first epoch");
    else if (e > 1) snprintf(until, sizeof until, " for the first %d epochs", e);
    run_info(r, "freeze: %s (%d layer%s with parameters)%s: %zu of %zu parameters train", names, layers,
         layers == 1 ? "" : "s", until, m->n_params - frozen, m->n_params);
}

/* Epoch E reached (at the end of epoch E - 1): every layer trains from now
 * on. *thawed gets the number of parameters that start to train. */
int run_unfreeze(run *r, size_t *thawed, th_err *err)
{
    *thawed = 0;
    for (int t = 0; t < r->model.n_tensors; t++)
        if (r->model.tensors[t].trainable && r->model.layers[r->model.tensors[t].layer].frozen)
            *thawed += r->model.tensors[t].count;
    if (run_set_stage(r, 1, err)) return -1;
    r->st.lr = r->cfg->train.unfreeze.lr;
    r->st.plateau_epochs = 0;
    r->st.bad_epochs = 0;
    return 0;
}

/* The rate of the next step. With train.unfreeze each stage runs the
 * schedule as a training of its own (stage_cfg: the first over epochs
 * [0, E), the second from unfreeze.lr over [E, epochs)). */
float run_scheduled_lr(const run *r, int steps)
{
    if (!r->stage_cfg[0]) return th_schedule_lr(r->cfg, r->st.step, steps, r->st.lr);
    long boundary = (long)r->cfg->train.unfreeze.epoch * steps;
    if (r->st.step < boundary) return th_schedule_lr(r->stage_cfg[0], r->st.step, steps, r->st.lr);
    return th_schedule_lr(r->stage_cfg[1], r->st.step - boundary, steps, r->st.lr);
}

int run_make_stage_cfgs(run *r, th_err *err)
{
    const th_config *cfg = r->cfg;
    if (cfg->train.unfreeze.epoch <= 0) return 0;
    for (int k = 0; k < 2; k++) {
        r->stage_cfg[k] = malloc(sizeof *r->stage_cfg[k]);
        if (!r->stage_cfg[k]) return th_errf(err, "out of memory");
        *r->stage_cfg[k] = *cfg;
    }
    r->stage_cfg[0]->train.epochs = cfg->train.unfreeze.epoch;
    r->stage_cfg[1]->train.epochs = cfg->train.epochs - cfg->train.unfreeze.epoch;
    r->stage_cfg[1]->train.optimizer.lr = cfg->train.unfreeze.lr;
    return 0;
}

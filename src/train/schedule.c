/* schedule.c - learning-rate schedules and early stopping (see src/train/schedule.h). */
#include "schedule.h"

#include <math.h>

float th_schedule_lr(const th_config *cfg, long step, int steps_per_epoch, float current)
{
    float base = cfg->train.optimizer.lr;
    switch (cfg->train.schedule.type) {
    case TH_SCHED_STEP: {
        long epoch = step / steps_per_epoch;
        return base * powf(cfg->train.schedule.factor, (float)(epoch / cfg->train.schedule.step_epochs));
    }
    case TH_SCHED_COSINE: {
        long warm = (long)cfg->train.schedule.warmup_epochs * steps_per_epoch;
        long total = (long)cfg->train.epochs * steps_per_epoch;
        if (step < warm) return base * (float)(step + 1) / (float)warm;
        double t = total > warm ? (double)(step - warm) / (double)(total - warm) : 1.0;
        float lo = cfg->train.schedule.min_lr;
        return lo + (base - lo) * 0.5f * (1.0f + (float)cos(3.141592653589793 * t));
    }
    case TH_SCHED_CONSTANT:
    case TH_SCHED_PLATEAU:
    default: return current;
    }
}

void th_schedule_after_epoch(const th_config *cfg, th_train_state *st, double val_auc, int *is_best, int *stop)
{
    int better = isfinite(val_auc) && val_auc > st->best_score + 1e-6;
    *is_best = better;
    if (better) {
        st->best_score = val_auc;
        st->best_epoch = st->epoch;
        st->bad_epochs = 0;
        st->plateau_epochs = 0;
    } else {
        st->bad_epochs++;
        st->plateau_epochs++;
    }
    if (cfg->train.schedule.type == TH_SCHED_PLATEAU && st->plateau_epochs > cfg->train.schedule.patience) {
        st->lr *= cfg->train.schedule.factor;
        if (st->lr < cfg->train.schedule.min_lr) st->lr = cfg->train.schedule.min_lr;
        st->plateau_epochs = 0;
    }
    *stop = cfg->train.early_stop_patience > 0 && st->bad_epochs >= cfg->train.early_stop_patience &&
            st->epoch < cfg->train.epochs;
}

/* lrfind.h - the learning-rate range test (Smith 2015; fastai's lr_find).
 *
 * th_lrfind_run sets a run up exactly as training does (th_trainer: same
 * data, split, shards, normalisation, class weights, initialisation from the
 * seed, the config's optimiser) and takes training steps with the learning
 * rate growing exponentially from start_lr to end_lr, recording the global
 * (allreduced) loss of every step. The loss is smoothed by an exponential
 * moving average with bias correction (beta 0.98, as fastai):
 *
 *   avg_i = beta * avg_{i-1} + (1 - beta) * loss_i,   smoothed_i = avg_i / (1 - beta^(i+1))
 *
 * and the test stops early once the smoothed loss is not finite or exceeds
 * `diverge` (4) times its best so far: the rates beyond say nothing more.
 *
 * Two suggestions are drawn from the smoothed curve:
 *   - steepest: the rate where the smoothed loss falls fastest per decade of
 *     rate (most negative d smoothed / d log10 lr, central differences), the
 *     first tenth of the points (at most 10) left out as fastai does, since
 *     the bias-corrected average rests on few losses there;
 *   - min/10: a tenth of the rate of the smallest smoothed loss (the same
 *     first points left out).
 * The suggested one is the steepest descent when the loss does fall there and
 * it lies on the descent into the minimum (at most TH_LRFIND_STEEP_DECADES'
 * worth, 2 decades, below the minimum's rate, where a clean curve has it):
 * there a step still gains the most. Otherwise min/10, the rule that stays
 * clear of divergence: when the curve never falls, when the steepest point
 * lies past the minimum, or when it lies far below it, on the flat start of
 * a noisy curve, where the slope of the smoothed loss is batch noise (small
 * batches, weighted losses: the phantom's quick start is such a curve).
 *
 * The library prints nothing; rank 0 writes the files (th_lrfind_write).
 */
#ifndef THORAX_LRFIND_H
#define THORAX_LRFIND_H

#include "thorax/config.h"
#include "thorax/dist.h"
#include "thorax/error.h"
#include "thorax/train.h"

typedef struct th_lrfind_opts {
    int steps;              /* steps at most (default 100) */
    double start_lr;        /* default 1e-7 */
    double end_lr;          /* default 10 */
    double beta;            /* smoothing (default 0.98) */
    double diverge;         /* stop once smoothed > diverge x best (default 4) */
    /* Rank 0, after every step (may be NULL). */
    void (*on_step)(void *ctx, int step, int steps, double lr, double loss, double smoothed);
    void *ctx;
} th_lrfind_opts;

/* The defaults above. */
void th_lrfind_defaults(th_lrfind_opts *o);

/* Checks the options, naming the one at fault. */
int th_lrfind_check(const th_lrfind_opts *o, th_err *err);

/* The rate of step i (0-based) of o->steps: start * (end/start)^(i/(steps-1)). */
double th_lrfind_lr(const th_lrfind_opts *o, int i);

/* The smoothing and the divergence rule, one loss at a time. */
typedef struct th_lrfind_smoother {
    double beta, diverge;
    double avg, best;       /* best: the smallest smoothed loss so far */
    int n;
} th_lrfind_smoother;

void th_lrfind_smoother_init(th_lrfind_smoother *s, double beta, double diverge);
/* Adds a loss; returns the smoothed value and sets *stop when the test
 * should end here (smoothed not finite, or above diverge x best). */
double th_lrfind_smooth(th_lrfind_smoother *s, double loss, int *stop);

/* How far below the minimum's rate (a factor) a steepest point is trusted. */
#define TH_LRFIND_STEEP_DECADES 100.0

typedef enum th_lrfind_rule {
    TH_LRFIND_STEEPEST = 0,
    TH_LRFIND_MIN_TENTH,
} th_lrfind_rule;

typedef struct th_lrfind_result {
    int n;                      /* steps recorded */
    int planned;                /* o->steps */
    int diverged;               /* the test stopped at step n-1 */
    double *lr, *loss, *smoothed;   /* [n] */
    /* Filled by th_lrfind_suggest. */
    int steep_idx, min_idx;
    double steep_lr, steep_slope;   /* slope: d smoothed / d log10 lr there */
    double min_lr, min_tenth_lr;
    th_lrfind_rule rule;
    double suggested;
    char why[256];              /* why that rule */
} th_lrfind_result;

/* Allocates room for n points (n, diverged zeroed). */
int th_lrfind_result_init(th_lrfind_result *r, int n, th_err *err);
void th_lrfind_result_free(th_lrfind_result *r);

/* The two suggestions and the choice between them, from r->lr and
 * r->smoothed (points 0..n-1; a divergent last point is left out). -1 when
 * too few finite points remain to differentiate (fewer than 3). */
int th_lrfind_suggest(th_lrfind_result *r, th_err *err);

/* The range test (collective over comm); res is initialised here (free it
 * even on failure) and filled the same on every rank; th_lrfind_suggest is
 * the caller's next step. cb->on_info gets the setup's log. */
int th_lrfind_run(const th_config *cfg, const th_lrfind_opts *o, th_comm comm, const th_train_callbacks *cb,
                  th_lrfind_result *res, th_err *err);

/* Writes dir/lr_find.csv (step,lr,loss,smoothed) and dir/lr_find.png (the
 * smoothed loss against lr on a log axis, the raw loss faint, the
 * suggestions marked), each atomically; creates dir. Not collective. */
int th_lrfind_write(const th_lrfind_result *r, const char *dir, const char *title, th_err *err);

#endif

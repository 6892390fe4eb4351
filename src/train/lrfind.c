/* lrfind.c - the learning-rate range test (see thorax/train.h). */
#include "thorax/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thorax/util.h"
#include "thorax/render.h"

void th_lrfind_defaults(th_lrfind_opts *o)
{
    memset(o, 0, sizeof *o);
    o->steps = 100;
    o->start_lr = 1e-7;
    o->end_lr = 10;
    o->beta = 0.98;
    o->diverge = 4;
}

int th_lrfind_check(const th_lrfind_opts *o, th_err *err)
{
    /* Three points are the fewest a central difference needs. */
    if (o->steps < 3) return th_errf(err, "--steps %d: the range test needs at least 3 steps", o->steps);
    if (!(o->start_lr > 0) || !isfinite(o->start_lr))
        return th_errf(err, "--start-lr %g: must be a positive rate", o->start_lr);
    if (!(o->end_lr > o->start_lr) || !isfinite(o->end_lr))
        return th_errf(err, "--end-lr %g: must be above --start-lr %g", o->end_lr, o->start_lr);
    if (!(o->beta >= 0 && o->beta < 1)) return th_errf(err, "smoothing beta %g: must be in [0, 1)", o->beta);
    if (!(o->diverge > 1)) return th_errf(err, "divergence factor %g: must be above 1", o->diverge);
    return 0;
}

double th_lrfind_lr(const th_lrfind_opts *o, int i)
{
    double t = o->steps > 1 ? (double)i / (o->steps - 1) : 0;
    return o->start_lr * pow(o->end_lr / o->start_lr, t);
}

void th_lrfind_smoother_init(th_lrfind_smoother *s, double beta, double diverge)
{
    memset(s, 0, sizeof *s);
    s->beta = beta;
    s->diverge = diverge;
    s->best = INFINITY;
}

double th_lrfind_smooth(th_lrfind_smoother *s, double loss, int *stop)
{
    s->avg = s->beta * s->avg + (1 - s->beta) * loss;
    s->n++;
    /* The average starts at 0: dividing by 1 - beta^n removes that bias. */
    double sm = s->avg / (1 - pow(s->beta, s->n));
    *stop = !isfinite(sm) || (s->n > 1 && sm > s->diverge * s->best);
    if (isfinite(sm) && sm < s->best) s->best = sm;
    return sm;
}

int th_lrfind_result_init(th_lrfind_result *r, int n, th_err *err)
{
    memset(r, 0, sizeof *r);
    r->lr = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    r->loss = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    r->smoothed = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    r->planned = n;
    if (!r->lr || !r->loss || !r->smoothed) {
        th_lrfind_result_free(r);
        return th_errf(err, "out of memory for %d learning-rate steps", n);
    }
    return 0;
}

void th_lrfind_result_free(th_lrfind_result *r)
{
    free(r->lr);
    free(r->loss);
    free(r->smoothed);
    r->lr = r->loss = r->smoothed = NULL;
}

int th_lrfind_suggest(th_lrfind_result *r, th_err *err)
{
    /* The divergent point ends the curve but is not part of it. */
    int m = r->diverged ? r->n - 1 : r->n;
    while (m > 0 && !isfinite(r->smoothed[m - 1])) m--;
    /* The first points rest on few losses (fastai skips 10). */
    int a = m / 10 < 10 ? m / 10 : 10;
    if (m - a < 3)
        return th_errf(err, "only %d usable step%s of the learning-rate range test (of %d): at least 3 are needed; "
                            "raise --steps or lower --start-lr",
                       m - a, m - a == 1 ? "" : "s", r->planned);
    /* The minimum, too, among the points the average has settled on: the
     * first smoothed value is one batch's loss, low or high by chance. */
    r->min_idx = a;
    for (int i = a + 1; i < m; i++)
        if (r->smoothed[i] < r->smoothed[r->min_idx]) r->min_idx = i;
    r->min_lr = r->lr[r->min_idx];
    r->min_tenth_lr = r->min_lr / 10;

    /* d smoothed / d log10 lr: central differences inside [a, m), one-sided at
     * its ends (numpy.gradient's rule on uneven spacing would only matter if
     * the rates were not evenly spaced in log; they are). */
    r->steep_idx = -1;
    r->steep_slope = INFINITY;
    for (int i = a; i < m; i++) {
        int lo = i > a ? i - 1 : i, hi = i + 1 < m ? i + 1 : i;
        double dx = log10(r->lr[hi]) - log10(r->lr[lo]);
        double g = (r->smoothed[hi] - r->smoothed[lo]) / dx;
        if (g < r->steep_slope) {
            r->steep_slope = g;
            r->steep_idx = i;
        }
    }
    r->steep_lr = r->lr[r->steep_idx];

    if (r->steep_slope >= 0) {
        r->rule = TH_LRFIND_MIN_TENTH;
        snprintf(r->why, sizeof r->why,
                 "the smoothed loss never falls over the range, so there is no steepest descent; a tenth of the rate "
                 "of its minimum stays clear of divergence (the range may start too high: lower --start-lr)");
    } else if (r->steep_idx > r->min_idx) {
        r->rule = TH_LRFIND_MIN_TENTH;
        snprintf(r->why, sizeof r->why,
                 "the steepest descent (%.3g) lies past the minimum of the smoothed loss (%.3g), in its noisy rise; "
                 "a tenth of the minimum's rate is the safer choice",
                 r->steep_lr, r->min_lr);
    } else if (r->steep_lr < r->min_lr / TH_LRFIND_STEEP_DECADES) {
        r->rule = TH_LRFIND_MIN_TENTH;
        snprintf(r->why, sizeof r->why,
                 "the steepest descent (%.3g) lies %.1f decades below the minimum's rate %.3g, on the flat start of "
                 "the curve where the smoothed loss's slope is batch noise, not the descent; a tenth of the "
                 "minimum's rate is within that descent",
                 r->steep_lr, log10(r->min_lr / r->steep_lr), r->min_lr);
    } else {
        r->rule = TH_LRFIND_STEEPEST;
        snprintf(r->why, sizeof r->why,
                 "the loss falls fastest there (%.3g per decade of rate) while still %.2g decades below the "
                 "minimum's rate %.3g: the largest gain per step short of divergence",
                 r->steep_slope, log10(r->min_lr / r->steep_lr), r->min_lr);
    }
    r->suggested = r->rule == TH_LRFIND_STEEPEST ? r->steep_lr : r->min_tenth_lr;
    return 0;
}

int th_lrfind_run(const th_config *cfg, const th_lrfind_opts *o, th_comm comm, const th_train_callbacks *cb,
                  th_lrfind_result *res, th_err *err)
{
    if (th_lrfind_check(o, err) || th_lrfind_result_init(res, o->steps, err)) return -1;
    int rank = th_dist_rank(comm);
    th_trainer *t = th_trainer_open(cfg, comm, cb, err);
    if (!t) return -1;
    th_lrfind_smoother sm;
    th_lrfind_smoother_init(&sm, o->beta, o->diverge);
    int rc = 0;
    for (int i = 0; i < o->steps; i++) {
        double lr = th_lrfind_lr(o, i), loss;
        /* The loss is the allreduced one, the same on every rank, and so are
         * the decisions below: no further agreement is needed. */
        int st = th_trainer_step(t, (float)lr, &loss, err);
        if (st < 0) {
            rc = -1;
            break;
        }
        int stop;
        double s = th_lrfind_smooth(&sm, st == TH_TRAINER_DIVERGED ? NAN : loss, &stop);
        res->lr[i] = lr;
        res->loss[i] = loss;
        res->smoothed[i] = s;
        res->n = i + 1;
        if (rank == 0 && o->on_step) o->on_step(o->ctx, i + 1, o->steps, lr, loss, s);
        if (stop) {
            res->diverged = 1;
            break;
        }
    }
    th_trainer_close(t);
    return rc;
}

/* The suggestion as a vertical line through the plotted loss range. */
static void mark(th_plot *p, double x, double y0, double y1, const char *label, int style)
{
    double xs[2] = {x, x}, ys[2] = {y0, y1};
    th_plot_series(p, 2, xs, ys, label, style);
}

int th_lrfind_write(const th_lrfind_result *r, const char *dir, const char *title, th_err *err)
{
    char path[4096];
    if (th_mkdirs(dir, err)) return -1;
    th_strbuf b = {0};
    th_strbuf_printf(&b, "step,lr,loss,smoothed\n");
    for (int i = 0; i < r->n; i++)
        th_strbuf_printf(&b, "%d,%.6g,%.6g,%.6g\n", i + 1, r->lr[i], r->loss[i], r->smoothed[i]);
    snprintf(path, sizeof path, "%s/lr_find.csv", dir);
    int rc = b.failed ? th_errf(err, "out of memory writing %s", path) : th_write_file_atomic(path, b.data, b.len, err);
    th_strbuf_free(&b);
    if (rc) return -1;

    /* The y range of the curve before divergence: a last point at 4x the best
     * (or beyond) would flatten everything else. */
    int m = r->diverged ? r->n - 1 : r->n;
    double lo = INFINITY, hi = -INFINITY;
    int a = m / 10 < 10 ? m / 10 : 10; /* as th_lrfind_suggest: the settled points */
    for (int i = a; i < m; i++) {
        if (!isfinite(r->smoothed[i])) continue;
        lo = fmin(lo, r->smoothed[i]);
        hi = fmax(hi, r->smoothed[i]);
    }
    if (!(hi > lo)) {
        lo = isfinite(lo) ? lo - 0.5 : 0;
        hi = lo + 1;
    }
    double pad = 0.05 * (hi - lo);
    lo -= pad;
    hi += pad;
    th_figure *f = th_figure_new(900, 600, 1, title, err);
    if (!f) return -1;
    th_plot *p = th_figure_panel(f, 0);
    th_plot_labels(p, "Learning-rate range test", "learning rate", "loss");
    th_plot_log_x(p);
    th_plot_xrange(p, r->lr[0], r->lr[r->n > 0 ? r->n - 1 : 0]);
    th_plot_yrange(p, lo, hi);
    /* The raw losses (in the CSV) would hide the curve under batch noise. */
    th_plot_series(p, m, r->lr, r->smoothed, "smoothed (EMA 0.98)", TH_PLOT_COLOR(0));
    char label[96];
    snprintf(label, sizeof label, "steepest\t%.2g%s", r->steep_lr, r->rule == TH_LRFIND_STEEPEST ? " (suggested)" : "");
    mark(p, r->steep_lr, lo, hi, label, TH_PLOT_COLOR(3) | (r->rule == TH_LRFIND_STEEPEST ? 0 : TH_PLOT_DASHED));
    snprintf(label, sizeof label, "min / 10\t%.2g%s", r->min_tenth_lr,
             r->rule == TH_LRFIND_MIN_TENTH ? " (suggested)" : "");
    mark(p, r->min_tenth_lr, lo, hi, label, TH_PLOT_COLOR(2) | (r->rule == TH_LRFIND_MIN_TENTH ? 0 : TH_PLOT_DASHED));
    th_plot_legend(p, TH_LEGEND_AUTO);
    snprintf(path, sizeof path, "%s/lr_find.png", dir);
    rc = th_figure_write_png(f, path, err);
    th_figure_free(f);
    return rc;
}

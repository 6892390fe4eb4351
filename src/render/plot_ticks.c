/* plot_ticks.c - where an axis gets its ticks and what they read (see
 * plot_impl.h): "nice" 1-2-5 steps on a linear axis, decades or 1-2-5 of
 * each decade on a log axis, labels with as many decimals as the step needs.
 */
#include "plot_impl.h"

#include <math.h>
#include <stdio.h>

int th_plot_nice_ticks(double lo, double hi, int target, double *ticks, int cap, double *step)
{
    if (!(lo < hi) || !isfinite(lo) || !isfinite(hi)) {
        if (step) *step = 0;
        return 0;
    }
    if (target < 1) target = 1;
    double raw = (hi - lo) / target;
    double mag = pow(10, floor(log10(raw)));
    double frac = raw / mag, nice;
    /* Thresholds at the geometric midpoints between 1, 2, 5 and 10. */
    if (frac < 1.5)
        nice = 1;
    else if (frac < 3.5)
        nice = 2;
    else if (frac < 7.5)
        nice = 5;
    else
        nice = 10;
    double st = nice * mag;
    if (step) *step = st;
    double eps = st * 1e-9;
    double first = ceil((lo - eps) / st);
    int count = 0;
    for (double k = first; k * st <= hi + eps; k++) {
        double v = k * st;
        if (fabs(v) < eps) v = 0; /* no "-0" label */
        if (count < cap) ticks[count] = v;
        count++;
        if (count > 100000) break;
    }
    return count;
}

static void format_linear(double v, double step, char *out, size_t cap)
{
    double a = fabs(v);
    if (v != 0 && (a >= 1e6 || a < 1e-4)) {
        snprintf(out, cap, "%.3g", v);
        return;
    }
    int decimals = (int)ceil(-log10(step) - 1e-9);
    if (decimals < 0) decimals = 0;
    if (decimals > 8) decimals = 8;
    snprintf(out, cap, "%.*f", decimals, v);
}

int plot_linear_ticks(double lo, double hi, int target, tick *t)
{
    double v[MAX_TICKS], step;
    int n = th_plot_nice_ticks(lo, hi, target, v, MAX_TICKS, &step);
    if (n > MAX_TICKS) n = MAX_TICKS;
    for (int i = 0; i < n; i++) {
        t[i] = (tick){.at = v[i]};
        format_linear(v[i], step, t[i].text, sizeof t[i].text);
    }
    return n;
}

/* Ticks of a log10 axis spanning [lo, hi] in log10 units. Over four decades
 * or more: labelled decades (every k-th when there are many) with unlabelled
 * minor ticks at 2..9; over fewer, labels at 1, 2 and 5 times each power of
 * ten and minor ticks between; when that labels fewer than two, plain linear
 * ticks of the values. */
int plot_log_ticks(double lo, double hi, int target, tick *t)
{
    int d0 = (int)ceil(lo - 1e-9), d1 = (int)floor(hi + 1e-9);
    int n_dec = d1 - d0 + 1, n = 0, labelled = 0;
    int every = n_dec >= 4 ? (n_dec + target - 1) / target : 1;
    for (int d = d0 - 1; d <= d1 + 1; d++)
        for (int m = 1; m <= 9 && n < MAX_TICKS; m++) {
            double at = d + log10(m);
            if (at < lo - 1e-9 || at > hi + 1e-9) continue;
            int label = n_dec >= 4 ? m == 1 && (d - d0) % every == 0 : m == 1 || m == 2 || m == 5;
            if (!label && n_dec > 12) continue; /* minor ticks would crowd */
            t[n] = (tick){.at = at, .minor = !label};
            if (label && n_dec >= 4) {
                snprintf(t[n].text, sizeof t[n].text, "10");
                snprintf(t[n].exp, sizeof t[n].exp, "%d", d);
            } else if (label) {
                snprintf(t[n].text, sizeof t[n].text, "%g", m * pow(10, d));
            }
            labelled += label;
            n++;
        }
    if (labelled >= 2) return n;
    double v[MAX_TICKS], step;
    int m = th_plot_nice_ticks(pow(10, lo), pow(10, hi), target, v, MAX_TICKS, &step);
    if (m > MAX_TICKS) m = MAX_TICKS;
    n = 0;
    for (int i = 0; i < m; i++) {
        if (v[i] <= 0) continue;
        t[n] = (tick){.at = log10(v[i])};
        format_linear(v[i], step, t[n].text, sizeof t[n].text);
        n++;
    }
    return n;
}

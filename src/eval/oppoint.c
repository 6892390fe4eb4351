/* oppoint.c - operating points chosen by a rule, their counts and rates
 * with Wilson intervals, calibration error and temperature scaling (see
 * thorax/eval.h, "Operating points and calibration").
 *
 * Thresholds come from the same sort and sweep over groups of tied scores
 * as the ROC curve (th_scores_rank), so a threshold is always a score a case
 * reaches and ties are never split.
 */
#include "thorax/eval.h"

#include "eval_impl.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

/* Rates are ratios of counts; 1e-12 absorbs the decimal S (0.9 is not a
 * binary fraction), far below 1/n for any n. */
#define RATE_TOL 1e-12
#define P_CLAMP 1e-7

void th_wilson_interval(long k, long n, double z, double *lo, double *hi)
{
    if (n <= 0) {
        *lo = *hi = NAN;
        return;
    }
    double p = (double)k / (double)n, z2 = z * z, nn = (double)n;
    double denom = 1 + z2 / nn;
    double centre = (p + z2 / (2 * nn)) / denom;
    double half = z / denom * sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
    *lo = fmax(0.0, centre - half);
    *hi = fmin(1.0, centre + half);
}

static th_rate rate(long k, long n)
{
    th_rate r = {NAN, NAN, NAN};
    if (n <= 0) return r;
    r.value = (double)k / (double)n;
    th_wilson_interval(k, n, TH_AUC_CI_Z, &r.lo, &r.hi);
    return r;
}

void th_operating_point_at(int n, const float *p, const uint8_t *y, int stride, double threshold,
                           th_operating_point *op)
{
    *op = (th_operating_point){.threshold = threshold};
    th_rate none = {NAN, NAN, NAN};
    op->sensitivity = op->specificity = op->ppv = op->npv = op->accuracy = op->f1 = none;
    if (isnan(threshold)) return;
    th_confusion c = {0};
    long known = 0;
    for (int i = 0; i < n; i++) {
        if (y[(size_t)i * stride] == TH_LABEL_UNKNOWN) continue;
        known++;
        int called = (double)p[(size_t)i * stride] >= threshold, truth = y[(size_t)i * stride] != 0;
        c.tp += called && truth;
        c.fp += called && !truth;
        c.tn += !called && !truth;
        c.fn += !called && truth;
    }
    op->c = c;
    op->sensitivity = rate(c.tp, c.tp + c.fn);
    op->specificity = rate(c.tn, c.tn + c.fp);
    op->ppv = rate(c.tp, c.tp + c.fp);
    op->npv = rate(c.tn, c.tn + c.fn);
    op->accuracy = rate(c.tp + c.tn, known);
    /* F1 = 2J/(1+J), J = tp/(tp+fp+fn): the interval of J, mapped. */
    th_rate j = rate(c.tp, c.tp + c.fp + c.fn);
    if (!isnan(j.value)) {
        op->f1.value = 2 * j.value / (1 + j.value);
        op->f1.lo = 2 * j.lo / (1 + j.lo);
        op->f1.hi = 2 * j.hi / (1 + j.hi);
    }
}

int th_threshold_choose(int n, const float *p, const uint8_t *y, int stride, th_threshold_rule rule, double value,
                        double *threshold, th_err *err)
{
    *threshold = NAN;
    if (rule == TH_THRESHOLD_FIXED) {
        /* A float, as every score and every chosen threshold is. */
        *threshold = (float)value;
        return 0;
    }
    th_scored *s;
    long n_pos;
    if (th_scores_rank(n, p, y, stride, &s, &n, &n_pos, err)) return -1;
    long n_neg = n - n_pos;
    if (n_pos == 0 || n_neg == 0) {
        free(s);
        return 0;
    }
    long tp = 0, fp = 0;
    long long best_j = 0;
    int have = 0;
    if (rule == TH_THRESHOLD_SPECIFICITY) *threshold = nextafterf(s[0].score, INFINITY);
    for (int i = 0; i < n;) {
        long dpos, dneg;
        float thr = s[i].score;
        i = th_scores_tie_group(s, n, i, &dpos, &dneg);
        tp += dpos;
        fp += dneg;
        if (rule == TH_THRESHOLD_YOUDEN) {
            /* As label_metrics_sorted: J in integers, the first best stays. */
            long long j = (long long)tp * n_neg - (long long)fp * n_pos;
            if (!have || j > best_j) {
                have = 1;
                best_j = j;
                *threshold = thr;
            }
        } else if (rule == TH_THRESHOLD_SENSITIVITY) {
            /* Sensitivity only grows as the threshold falls: the first met. */
            if ((double)tp / (double)n_pos >= value - RATE_TOL) {
                *threshold = thr;
                break;
            }
        } else {
            /* Specificity only falls: the last score that keeps it. */
            if ((double)(n_neg - fp) / (double)n_neg < value - RATE_TOL) break;
            *threshold = thr;
        }
    }
    free(s);
    return 0;
}

int th_calibration_error(int n, const float *p, const uint8_t *y, int stride, int bins, double *ece, double *brier,
                         double *bin_p, double *bin_y, th_err *err)
{
    *ece = *brier = NAN;
    for (int b = 0; b < bins; b++) {
        if (bin_p) bin_p[b] = NAN;
        if (bin_y) bin_y[b] = NAN;
    }
    if (n <= 0 || bins <= 0) return 0;
    float *pk;
    uint8_t *yk;
    int nk;
    if (th_known_cases(n, p, y, stride, &pk, &yk, &nk, err)) return -1;
    if (pk) {
        int rc = th_calibration_error(nk, pk, yk, 1, bins, ece, brier, bin_p, bin_y, err);
        free(pk);
        free(yk);
        return rc;
    }
    int *order = malloc(sizeof(int) * (size_t)n);
    if (!order) return th_errf(err, "out of memory sorting %d scores", n);
    if (stats_rank(n, p, stride, 0, order, err)) {
        free(order);
        return -1;
    }
    double sq = 0;
    for (int i = 0; i < n; i++) {
        double d = (double)p[(size_t)i * stride] - (y[(size_t)i * stride] != 0);
        sq += d * d;
    }
    double e = 0;
    for (int b = 0; b < bins; b++) {
        long lo = (long)b * n / bins, hi = (long)(b + 1) * n / bins;
        if (hi <= lo) continue;
        double sp = 0, sy = 0;
        for (long k = lo; k < hi; k++) {
            size_t at = (size_t)order[k] * stride;
            sp += p[at];
            sy += y[at] != 0;
        }
        double m = (double)(hi - lo);
        if (bin_p) bin_p[b] = sp / m;
        if (bin_y) bin_y[b] = sy / m;
        e += m / n * fabs(sp / m - sy / m);
    }
    free(order);
    *ece = e;
    *brier = sq / n;
    return 0;
}

static double logit_clamped(float p)
{
    double q = fmin(fmax((double)p, P_CLAMP), 1 - P_CLAMP);
    return log(q / (1 - q));
}

float th_temperature_apply(float p, double t)
{
    return (float)(1 / (1 + exp(-logit_clamped(p) / t)));
}

/* NLL of sigmoid(beta z) against y, in a numerically stable form:
 * -log sigmoid(v) = log(1 + e^-v). */
static double nll(int n, const float *p, const uint8_t *y, int stride, double beta)
{
    double sum = 0;
    for (int i = 0; i < n; i++) {
        double v = beta * logit_clamped(p[(size_t)i * stride]);
        if (!y[(size_t)i * stride]) v = -v;
        sum += v > 0 ? log1p(exp(-v)) : -v + log1p(exp(v));
    }
    return sum;
}

double th_temperature_fit(int n, const float *p, const uint8_t *y, int stride)
{
    float *pk;
    uint8_t *yk;
    int m;
    if (th_known_cases(n, p, y, stride, &pk, &yk, &m, NULL)) return NAN;
    if (pk) {
        double t = th_temperature_fit(m, pk, yk, 1);
        free(pk);
        free(yk);
        return t;
    }
    long pos = 0;
    for (int i = 0; i < n; i++) pos += y[(size_t)i * stride] != 0;
    if (pos == 0 || pos == n) return 1;
    /* Golden-section over u = log beta, beta = 1/T. */
    const double g = (sqrt(5.0) - 1) / 2;
    double a = log(0.01), b = log(100.0);
    double c = b - g * (b - a), d = a + g * (b - a);
    double fc = nll(n, p, y, stride, exp(c)), fd = nll(n, p, y, stride, exp(d));
    while (b - a > 1e-12) {
        if (fc <= fd) {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = nll(n, p, y, stride, exp(c));
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = nll(n, p, y, stride, exp(d));
        }
    }
    return 1 / exp((a + b) / 2);
}

/* auc.c - exact AUC from one sort of the scores (see thorax/train.h). */
#include "thorax/train.h"

#include <math.h>
#include <stdlib.h>

/* Decreasing score. NaN never gets here (th_scores_rank refuses it). */
static int by_score_desc(const void *a, const void *b)
{
    float x = ((const th_scored *)a)->score, z = ((const th_scored *)b)->score;
    return (x < z) - (x > z);
}

int th_scores_rank(int n, const float *score, const uint8_t *y, int stride, th_scored **out, int *n_known,
                   long *n_pos, th_err *err)
{
    *out = NULL;
    *n_pos = 0;
    if (n < 0) return th_errf(err, "negative number of cases (%d)", n);
    th_scored *s = malloc(sizeof *s * (size_t)(n > 0 ? n : 1));
    if (!s) return th_errf(err, "out of memory sorting %d scores", n);
    int m = 0;
    for (int i = 0; i < n; i++) {
        uint8_t yi = y[(size_t)i * (size_t)stride];
        if (yi == TH_LABEL_UNKNOWN) continue;
        s[m].score = score[(size_t)i * (size_t)stride];
        s[m].y = yi ? 1 : 0;
        if (isnan(s[m].score)) {
            free(s);
            return th_errf(err, "the score of case %d is NaN", i);
        }
        *n_pos += s[m++].y;
    }
    qsort(s, (size_t)m, sizeof *s, by_score_desc);
    *out = s;
    *n_known = m;
    return 0;
}

int th_known_cases(int n, const float *p, const uint8_t *y, int stride, float **p_out, uint8_t **y_out, int *m,
                   th_err *err)
{
    *p_out = NULL;
    *y_out = NULL;
    *m = 0;
    for (int i = 0; i < n; i++) *m += y[(size_t)i * stride] != TH_LABEL_UNKNOWN;
    if (*m == n) return 0;
    *p_out = malloc(sizeof **p_out * (size_t)(*m + 1));
    *y_out = malloc((size_t)*m + 1);
    if (!*p_out || !*y_out) {
        free(*p_out);
        free(*y_out);
        *p_out = NULL;
        *y_out = NULL;
        return th_errf(err, "out of memory for the %d cases with a known label", *m);
    }
    for (int i = 0, j = 0; i < n; i++) {
        if (y[(size_t)i * stride] == TH_LABEL_UNKNOWN) continue;
        (*p_out)[j] = p[(size_t)i * stride];
        (*y_out)[j++] = y[(size_t)i * stride];
    }
    return 0;
}

/* A group with dpos positives and dneg negatives, above neg_below negatives,
 * wins dpos * neg_below pairs outright and ties dpos * dneg. The sum is kept
 * as twice the pairs won (ties counting one), a whole number, so that the
 * AUC is exact before the final division. */
double th_auc_sorted(const th_scored *s, int n, long n_pos, long n_neg)
{
    double won2 = 0;
    long neg_above = 0;
    for (int i = 0; i < n;) {
        long dpos, dneg;
        i = th_scores_tie_group(s, n, i, &dpos, &dneg);
        long neg_below = n_neg - neg_above - dneg;
        won2 += (double)dpos * (double)(2 * neg_below + dneg);
        neg_above += dneg;
    }
    return won2 / (2.0 * (double)n_pos * (double)n_neg);
}

double th_auc(int n, const float *score, const uint8_t *y, int stride)
{
    th_scored *s;
    long n_pos;
    if (th_scores_rank(n, score, y, stride, &s, &n, &n_pos, NULL)) return NAN;
    long n_neg = n - n_pos;
    double auc = n_pos > 0 && n_neg > 0 ? th_auc_sorted(s, n, n_pos, n_neg) : NAN;
    free(s);
    return auc;
}

double th_auc_macro(int n, int l, const float *p, const uint8_t *y, double *auc, int *n_defined)
{
    double sum = 0;
    int defined = 0;
    for (int k = 0; k < l; k++) {
        double a = th_auc(n, p + k, y + k, l);
        if (auc) auc[k] = a;
        if (!isnan(a)) {
            sum += a;
            defined++;
        }
    }
    if (n_defined) *n_defined = defined;
    return defined ? sum / defined : NAN;
}

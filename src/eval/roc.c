/* roc.c - exact AUC by the Mann-Whitney rank statistic (see thorax/roc.h). */
#include "thorax/roc.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    float score;
    uint8_t y;
} scored;

static int by_score(const void *a, const void *b)
{
    float x = ((const scored *)a)->score, z = ((const scored *)b)->score;
    return (x > z) - (x < z);
}

double th_auc(int n, const float *score, const uint8_t *y, int stride)
{
    scored *s = malloc(sizeof *s * (size_t)(n > 0 ? n : 1));
    if (!s) return NAN;
    long n_pos = 0;
    for (int i = 0; i < n; i++) {
        s[i].score = score[(size_t)i * stride];
        s[i].y = y[(size_t)i * stride] ? 1 : 0;
        n_pos += s[i].y;
    }
    long n_neg = n - n_pos;
    if (n_pos == 0 || n_neg == 0) {
        free(s);
        return NAN;
    }
    qsort(s, (size_t)n, sizeof *s, by_score);
    /* Sum of the (1-based, tie-averaged) ranks of the positives. */
    double rank_sum = 0;
    for (int i = 0; i < n;) {
        int j = i;
        long pos_in_tie = 0;
        while (j < n && s[j].score == s[i].score) pos_in_tie += s[j++].y;
        double mean_rank = 0.5 * ((double)(i + 1) + (double)j);
        rank_sum += mean_rank * (double)pos_in_tie;
        i = j;
    }
    free(s);
    return (rank_sum - 0.5 * (double)n_pos * (double)(n_pos + 1)) / ((double)n_pos * (double)n_neg);
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

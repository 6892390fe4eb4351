/* auc.h - the area under the ROC curve, as training reports it on the
 * validation split every epoch, and the sorted-score sweep it is read from.
 *
 * The AUC is the Mann-Whitney statistic: the probability that a random
 * positive scores above a random negative, ties counting one half (equal to
 * scikit-learn's roc_auc_score). It is exact: the scores are sorted once in
 * decreasing order and swept in groups of tied scores, with no binning.
 * Eval's ROC analysis (thorax/roc.h: the curve, DeLong's interval, the
 * operating points) runs its own sweeps over the same sorted scores and takes
 * the AUC from here, so that training's validation AUC and evaluation's
 * are one computation.
 */
#ifndef THORAX_AUC_H
#define THORAX_AUC_H

#include <stdint.h>
#include "thorax/error.h"

/* score[i * stride], y[i * stride] for i < n. Returns NaN when one class is
 * absent, when a score is NaN, or when memory runs out. */
double th_auc(int n, const float *score, const uint8_t *y, int stride);

/* Per-label AUC of p [n, l] against y [n, l] into auc[l] (NaN where undefined);
 * returns the mean over the labels where it is defined (NaN if none) and
 * stores how many those are in *n_defined (may be NULL). */
double th_auc_macro(int n, int l, const float *p, const uint8_t *y, double *auc, int *n_defined);

/* ---- the sweep, for ROC analysis ------------------------------------------ */

/* One case: its score and its class (0/1). */
typedef struct th_scored {
    float score;
    uint8_t y;
} th_scored;

/* Gathers score[i * stride], y[i * stride] into *out [n] (malloc'd; free it)
 * sorted by decreasing score, so that a sweep meets the highest threshold
 * first, as the ROC curve does, and counts the positives into *n_pos.
 * Returns -1 for a negative n, a NaN score (naming the case) or an
 * allocation failure, with *out NULL. */
int th_scores_rank(int n, const float *score, const uint8_t *y, int stride, th_scored **out, long *n_pos,
                   th_err *err);

/* Returns the end of the group of scores tied with s[i] (sorted as above),
 * counting its positives and negatives into *dpos, *dneg. Inline: every
 * sweep calls it once per distinct score. */
static inline int th_scores_tie_group(const th_scored *s, int n, int i, long *dpos, long *dneg)
{
    int j = i;
    long pos = 0;
    while (j < n && s[j].score == s[i].score) pos += s[j++].y;
    *dpos = pos;
    *dneg = (long)(j - i) - pos;
    return j;
}

/* The AUC of sorted scores with both classes present (n_pos, n_neg > 0). */
double th_auc_sorted(const th_scored *s, int n, long n_pos, long n_neg);

#endif

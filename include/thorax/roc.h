/* roc.h - ROC analysis of predicted scores against 0/1 labels.
 *
 * AUC is the Mann-Whitney statistic: the probability that a random positive
 * scores above a random negative, ties counting one half. It is computed
 * exactly by sorting, in O(n log n), with no binning.
 */
#ifndef THORAX_ROC_H
#define THORAX_ROC_H

#include <stdint.h>

/* score[i * stride], y[i * stride] for i < n. Returns NaN when one class is
 * absent (AUC is undefined there, and must not count as 0.5). */
double th_auc(int n, const float *score, const uint8_t *y, int stride);

/* Per-label AUC of p [n, l] against y [n, l] into auc[l] (NaN where undefined);
 * returns the mean over the labels where it is defined (NaN if none) and
 * stores how many those are in *n_defined (may be NULL). */
double th_auc_macro(int n, int l, const float *p, const uint8_t *y, double *auc, int *n_defined);

#endif

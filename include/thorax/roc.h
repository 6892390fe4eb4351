/* roc.h - ROC analysis of predicted scores against 0/1 labels.
 *
 * Everything here is exact: scores are sorted once (O(n log n)) and swept in
 * groups of tied scores, with no binning. The conventions are those of
 * scikit-learn, so that numbers can be checked against a notebook:
 *
 *   - a case is called positive when its score is >= the threshold;
 *   - the ROC curve has one point per distinct score plus (0,0) at the
 *     threshold +inf (roc_curve with drop_intermediate=False); a group of tied
 *     scores is one diagonal step, never a staircase in some arbitrary order;
 *   - AUC is the Mann-Whitney statistic (the probability that a random
 *     positive scores above a random negative, ties counting one half), which
 *     equals the trapezoidal area under that curve (roc_auc_score);
 *   - average precision is sum_k (R_k - R_{k-1}) P_k over the distinct
 *     thresholds (average_precision_score, no interpolation).
 *
 * The 95% confidence interval of the AUC is DeLong's: the variance from the
 * structural components (placement values) of DeLong, DeLong and
 * Clarke-Pearson (1988), computed with midranks as in Sun and Xu (2014), and
 * the normal (Wald) interval AUC +- 1.96 SE clipped to [0, 1], as in those
 * papers and in pROC's ci.auc(method = "delong"). With a perfect separation
 * the variance is 0 and the interval collapses onto the AUC; with fewer than
 * two cases in a class it is not estimable (NaN).
 *
 * A label whose cases are all of one class has no ROC curve: its metrics are
 * undefined (NaN, with a reason) and never count as 0.5 in a macro mean.
 */
#ifndef THORAX_ROC_H
#define THORAX_ROC_H

#include <stdint.h>
/* th_auc and th_auc_macro: the plain AUC, training's, which this extends. */
#include "thorax/auc.h"
#include "thorax/error.h"

/* z of the two-sided 95% normal interval. */
#define TH_AUC_CI_Z 1.959963984540054

/* AUC and DeLong's variance of it. *auc is NaN when one class is absent,
 * *var is NaN when either class has fewer than two cases (var may be NULL).
 * Returns -1 only for a NaN score or an allocation failure. */
int th_auc_delong(int n, const float *score, const uint8_t *y, int stride, double *auc, double *var, th_err *err);

/* An ROC curve: n points in order of decreasing threshold, from (0,0) at
 * threshold[0] = +inf to (1,1) at the lowest score. n = 0 (and NULL arrays)
 * when one class is absent. */
typedef struct th_roc {
    int n;
    double *threshold, *fpr, *tpr;
    long n_pos, n_neg;
} th_roc;

/* Fills *roc (free with th_roc_free). Returns -1 for a NaN score or an
 * allocation failure. */
int th_roc_curve(int n, const float *score, const uint8_t *y, int stride, th_roc *roc, th_err *err);
void th_roc_free(th_roc *roc);

/* Everything reported for one label. When defined is 0 every double is NaN
 * and reason says why ("no positive images", "no negative images", "no
 * images"); otherwise reason is NULL. auc_lo/auc_hi are NaN (and auc_var is
 * NaN) when a class has a single case. The threshold is Youden's: the score
 * maximising sensitivity + specificity - 1 (ties: the highest such score),
 * with the sensitivity and specificity of calling scores >= it positive. */
typedef struct th_label_metrics {
    double auc, auc_lo, auc_hi, auc_var;
    long n_pos, n_neg;
    double threshold, sensitivity, specificity;
    double ap;
    int defined;
    const char *reason;
} th_label_metrics;

/* Unweighted means over the defined labels (NaN when there are none). */
typedef struct th_metrics_macro {
    double auc, ap, sensitivity, specificity;
    int n_defined;
} th_metrics_macro;

/* Metrics of p [n, l] against y [n, l] for each of the l labels into out[l],
 * and their macro means into *macro (may be NULL). Returns -1 for a NaN
 * probability (naming image and label index) or an allocation failure. */
int th_metrics_compute(int n, int l, const float *p, const uint8_t *y, th_label_metrics *out, th_metrics_macro *macro,
                       th_err *err);

/* Patient-level scores and labels from image-level ones: patient_of[n] in
 * [0, n_patients) (as from th_patients_group); p_out [n_patients, l] is the
 * maximum over the patient's images (a NaN image score makes it NaN) and
 * y_out [n_patients, l] is 1 when any image is positive. Fails if a patient
 * index is out of range or a patient has no image. */
int th_metrics_by_patient(int n, int l, const float *p, const uint8_t *y, const int *patient_of, int n_patients,
                          float *p_out, uint8_t *y_out, th_err *err);

#endif

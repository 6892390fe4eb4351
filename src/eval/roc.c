/* roc.c - exact ROC curve, AUC with DeLong's variance, Youden's threshold and
 * average precision (see thorax/eval.h).
 *
 * Every quantity comes from one sort of the scores in decreasing order and a
 * sweep over the groups of tied scores (th_scores_rank, th_scores_tie_group
 * and the AUC itself from thorax/train.h, which training uses too). In a group
 * with dpos positives and dneg negatives, below which lie neg_below negatives
 * and above which lie pos_above positives, each positive's placement value
 * (DeLong's V10) is (neg_below + dneg/2) / n_neg and each negative's (V01) is
 * (pos_above + dpos/2) / n_pos. These are Sun and Xu's midrank expressions
 * (Tz - Tx) / n and 1 - (Tz - Ty) / m, read off the sorted order directly, so
 * the AUC, its variance and the curve share one O(n log n) sort.
 */
#include "thorax/eval.h"

#include <math.h>
#include <stdlib.h>

/* AUC and DeLong's variance from sorted scores with both classes present. */
static void delong_sorted(const th_scored *s, int n, long n_pos, long n_neg, double *auc, double *var)
{
    double a = th_auc_sorted(s, n, n_pos, n_neg);
    *auc = a;
    if (!var) return;
    if (n_pos < 2 || n_neg < 2) {
        *var = NAN;
        return;
    }
    /* A second pass, around the known mean, for the sample variances of the
     * placement values (S10 over positives, S01 over negatives). */
    double s10 = 0, s01 = 0;
    long pos_above = 0, neg_above = 0;
    for (int i = 0; i < n;) {
        long dpos, dneg;
        i = th_scores_tie_group(s, n, i, &dpos, &dneg);
        long neg_below = n_neg - neg_above - dneg;
        double v10 = ((double)neg_below + 0.5 * (double)dneg) / (double)n_neg;
        double v01 = ((double)pos_above + 0.5 * (double)dpos) / (double)n_pos;
        s10 += (double)dpos * (v10 - a) * (v10 - a);
        s01 += (double)dneg * (v01 - a) * (v01 - a);
        pos_above += dpos;
        neg_above += dneg;
    }
    s10 /= (double)(n_pos - 1);
    s01 /= (double)(n_neg - 1);
    *var = s10 / (double)n_pos + s01 / (double)n_neg;
}

int th_auc_delong(int n, const float *score, const uint8_t *y, int stride, double *auc, double *var, th_err *err)
{
    *auc = NAN;
    if (var) *var = NAN;
    th_scored *s;
    long n_pos;
    if (th_scores_rank(n, score, y, stride, &s, &n, &n_pos, err)) return -1;
    long n_neg = n - n_pos;
    if (n_pos > 0 && n_neg > 0) delong_sorted(s, n, n_pos, n_neg, auc, var);
    free(s);
    return 0;
}

int th_roc_curve(int n, const float *score, const uint8_t *y, int stride, th_roc *roc, th_err *err)
{
    *roc = (th_roc){0};
    th_scored *s;
    long n_pos;
    if (th_scores_rank(n, score, y, stride, &s, &n, &n_pos, err)) return -1;
    roc->n_pos = n_pos;
    roc->n_neg = n - n_pos;
    if (n_pos == 0 || roc->n_neg == 0) {
        free(s);
        return 0;
    }
    int n_groups = 0;
    for (int i = 0; i < n; n_groups++) {
        long dpos, dneg;
        i = th_scores_tie_group(s, n, i, &dpos, &dneg);
    }
    size_t cap = (size_t)n_groups + 1;
    roc->threshold = malloc(sizeof(double) * cap);
    roc->fpr = malloc(sizeof(double) * cap);
    roc->tpr = malloc(sizeof(double) * cap);
    if (!roc->threshold || !roc->fpr || !roc->tpr) {
        free(s);
        th_roc_free(roc);
        return th_errf(err, "out of memory for an ROC curve of %d points", n_groups + 1);
    }
    roc->threshold[0] = INFINITY;
    roc->fpr[0] = roc->tpr[0] = 0;
    long tp = 0, fp = 0;
    int k = 1;
    for (int i = 0; i < n; k++) {
        long dpos, dneg;
        roc->threshold[k] = s[i].score;
        i = th_scores_tie_group(s, n, i, &dpos, &dneg);
        tp += dpos;
        fp += dneg;
        roc->tpr[k] = (double)tp / (double)n_pos;
        roc->fpr[k] = (double)fp / (double)roc->n_neg;
    }
    roc->n = k;
    free(s);
    return 0;
}

void th_roc_free(th_roc *roc)
{
    free(roc->threshold);
    free(roc->fpr);
    free(roc->tpr);
    *roc = (th_roc){0};
}

/* All metrics of one label from its sorted scores (both classes present). */
static void label_metrics_sorted(const th_scored *s, int n, long n_pos, long n_neg, th_label_metrics *m)
{
    delong_sorted(s, n, n_pos, n_neg, &m->auc, &m->auc_var);
    if (isnan(m->auc_var)) {
        m->auc_lo = m->auc_hi = NAN;
    } else {
        double half = TH_AUC_CI_Z * sqrt(m->auc_var);
        m->auc_lo = fmax(0.0, m->auc - half);
        m->auc_hi = fmin(1.0, m->auc + half);
    }
    /* Youden's J = tpr - fpr, compared as tp * n_neg - fp * n_pos in integers
     * so that equal J at two thresholds is an exact tie (then the first met,
     * the highest threshold, stays). The +inf point is not a candidate: a
     * threshold must be a score a case can reach. */
    long long best_j = 0;
    int have_best = 0;
    long tp = 0, fp = 0;
    double ap = 0;
    for (int i = 0; i < n;) {
        long dpos, dneg;
        float thr = s[i].score;
        i = th_scores_tie_group(s, n, i, &dpos, &dneg);
        tp += dpos;
        fp += dneg;
        long long j = (long long)tp * n_neg - (long long)fp * n_pos;
        if (!have_best || j > best_j) {
            have_best = 1;
            best_j = j;
            m->threshold = thr;
            m->sensitivity = (double)tp / (double)n_pos;
            m->specificity = 1.0 - (double)fp / (double)n_neg;
        }
        /* Recall rises only where positives are; precision is that of the
         * whole group, so ties enter as one step. The division by n_pos
         * comes once at the end, so a perfect ranking gives exactly 1. */
        if (dpos) ap += (double)dpos * ((double)tp / (double)(tp + fp));
    }
    m->ap = ap / (double)n_pos;
}

int th_metrics_compute(int n, int l, const float *p, const uint8_t *y, th_label_metrics *out, th_metrics_macro *macro,
                       th_err *err)
{
    th_metrics_macro sum = {0};
    for (int k = 0; k < l; k++) {
        th_label_metrics *m = &out[k];
        *m = (th_label_metrics){.auc = NAN, .auc_lo = NAN, .auc_hi = NAN, .auc_var = NAN, .threshold = NAN,
                                .sensitivity = NAN, .specificity = NAN, .ap = NAN, .temperature = NAN,
                                .ece_raw = NAN, .brier_raw = NAN};
        if (th_calibration_error(n, p + k, y + k, l, TH_ECE_BINS, &m->ece, &m->brier, NULL, NULL, err))
            return th_err_prefix(err, "metrics of label %d: ", k);
        th_scored *s;
        long n_pos;
        int nk;
        if (th_scores_rank(n, p + k, y + k, l, &s, &nk, &n_pos, err))
            return th_err_prefix(err, "metrics of label %d: ", k);
        m->n_pos = n_pos;
        m->n_neg = nk - n_pos;
        m->n_unknown = n - nk;
        if (nk == 0) {
            m->reason = "no images";
        } else if (m->n_pos == 0) {
            m->reason = "no positive images";
        } else if (m->n_neg == 0) {
            m->reason = "no negative images";
        } else {
            m->defined = 1;
            label_metrics_sorted(s, nk, m->n_pos, m->n_neg, m);
            sum.auc += m->auc;
            sum.ap += m->ap;
            sum.sensitivity += m->sensitivity;
            sum.specificity += m->specificity;
            sum.n_defined++;
        }
        free(s);
    }
    if (macro) {
        int d = sum.n_defined;
        *macro = (th_metrics_macro){.auc = d ? sum.auc / d : NAN,
                                    .ap = d ? sum.ap / d : NAN,
                                    .sensitivity = d ? sum.sensitivity / d : NAN,
                                    .specificity = d ? sum.specificity / d : NAN,
                                    .n_defined = d};
    }
    return 0;
}

void th_metrics_apply(int n, int l, const float *p, const uint8_t *y, const double *threshold, const char *rule,
                      const char *chosen_on, th_label_metrics *m, th_metrics_macro *macro)
{
    double sens = 0, spec = 0;
    int n_sens = 0, n_spec = 0;
    for (int k = 0; k < l; k++) {
        th_label_metrics *x = &m[k];
        th_operating_point_at(n, p + k, y + k, l, threshold[k], &x->op);
        x->has_op = 1;
        x->op_rule = rule;
        x->op_chosen_on = chosen_on;
        /* An undefined label keeps its null legacy fields; its op block says the rest. */
        if (!x->defined) continue;
        x->threshold = x->op.threshold;
        x->sensitivity = x->op.sensitivity.value;
        x->specificity = x->op.specificity.value;
        if (!isnan(x->sensitivity)) sens += x->sensitivity, n_sens++;
        if (!isnan(x->specificity)) spec += x->specificity, n_spec++;
    }
    if (macro) {
        macro->sensitivity = n_sens ? sens / n_sens : NAN;
        macro->specificity = n_spec ? spec / n_spec : NAN;
    }
}

int th_metrics_by_patient(int n, int l, const float *p, const uint8_t *y, const int *patient_of, int n_patients,
                          float *p_out, uint8_t *y_out, th_err *err)
{
    if (n_patients < 0) return th_errf(err, "negative number of patients (%d)", n_patients);
    for (int i = 0; i < n; i++)
        if (patient_of[i] < 0 || patient_of[i] >= n_patients)
            return th_errf(err, "image %d belongs to patient %d, outside [0, %d)", i, patient_of[i], n_patients);
    /* Seen patients are tracked apart from the scores so that an image
     * scoring -inf still counts as an image. */
    uint8_t *seen = calloc((size_t)n_patients + 1, 1);
    if (!seen) return th_errf(err, "out of memory grouping %d patients", n_patients);
    for (int i = 0; i < n; i++) {
        int q = patient_of[i];
        for (int k = 0; k < l; k++) {
            float v = p[(size_t)i * l + k];
            float *best = &p_out[(size_t)q * l + k];
            uint8_t *pos = &y_out[(size_t)q * l + k];
            if (!seen[q]) {
                *best = v;
            } else if (!isnan(*best) && (isnan(v) || v > *best)) {
                /* NaN is kept once met so that it is reported, not hidden by max. */
                *best = v;
            }
            /* A patient is positive with one positive image, negative with
             * one negative and none positive, else unknown. */
            uint8_t yv = y[(size_t)i * l + k];
            if (!seen[q]) *pos = yv;
            else if (yv == 1 || (yv == 0 && *pos == TH_LABEL_UNKNOWN)) *pos = yv;
        }
        seen[q] = 1;
    }
    for (int q = 0; q < n_patients; q++)
        if (!seen[q]) {
            free(seen);
            return th_errf(err, "patient %d has no images", q);
        }
    free(seen);
    return 0;
}

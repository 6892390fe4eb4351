/* test_metrics.c - ROC curve, DeLong CI, Youden point, average precision and
 * patient-level pooling against values worked by hand, and against slow
 * textbook definitions on larger tie-heavy data.
 *
 * The hand values follow scikit-learn's conventions (roc_curve with
 * drop_intermediate=False, roc_auc_score, average_precision_score), so each
 * case below can be pasted into a notebook and give the same numbers.
 */
#include <math.h>
#include <string.h>

#include "testutil.h"
#include "thorax/eval.h"

enum { SLOW_MAX = 512 };

/* DeLong's variance the slow way: placement values V10 (per positive) and V01
 * (per negative) by counting all pairs, then S10/m + S01/n with sample
 * variances (DeLong, DeLong and Clarke-Pearson 1988). n <= SLOW_MAX. */
static double delong_var_pairs(int n, const float *s, const uint8_t *y, double *auc)
{
    int m = 0, k = 0;
    for (int i = 0; i < n; i++) m += y[i];
    k = n - m;
    double v10[SLOW_MAX] = {0}, v01[SLOW_MAX] = {0};
    double a = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (y[i] && !y[j]) {
                double psi = s[i] > s[j] ? 1 : s[i] == s[j] ? 0.5 : 0;
                v10[i] += psi / k;
                v01[j] += psi / m;
                a += psi;
            }
    a /= (double)m * k;
    double s10 = 0, s01 = 0;
    for (int i = 0; i < n; i++) {
        if (y[i])
            s10 += (v10[i] - a) * (v10[i] - a);
        else
            s01 += (v01[i] - a) * (v01[i] - a);
    }
    *auc = a;
    return s10 / (m - 1) / m + s01 / (k - 1) / k;
}

/* Average precision the slow way: at every distinct score t, precision and
 * recall of "score >= t" by counting, summed as (R_t - R_prev) * P_t. */
static double ap_slow(int n, const float *s, const uint8_t *y)
{
    int m = 0;
    for (int i = 0; i < n; i++) m += y[i];
    double ap = 0, r_prev = 0;
    float t = INFINITY;
    for (;;) {
        float next = -INFINITY; /* the largest score below t */
        for (int i = 0; i < n; i++)
            if (s[i] < t && s[i] > next) next = s[i];
        if (next == -INFINITY) break;
        t = next;
        int tp = 0, called = 0;
        for (int i = 0; i < n; i++)
            if (s[i] >= t) {
                called++;
                tp += y[i];
            }
        double r = (double)tp / m;
        ap += (r - r_prev) * tp / called;
        r_prev = r;
    }
    return ap;
}

static void check_curve(const th_roc *roc, int n, const double *thr, const double *fpr, const double *tpr)
{
    CHECK(roc->n == n);
    if (roc->n != n) return;
    for (int i = 0; i < n; i++) {
        CHECK(isinf(thr[i]) ? isinf(roc->threshold[i]) && roc->threshold[i] > 0 : roc->threshold[i] == (float)thr[i]);
        CHECK_NEAR(roc->fpr[i], fpr[i], 1e-15);
        CHECK_NEAR(roc->tpr[i], tpr[i], 1e-15);
    }
}

static void test_basic(void)
{
    /* Negatives {0.1, 0.4}, positives {0.35, 0.8}. */
    float s[] = {0.1f, 0.4f, 0.35f, 0.8f};
    uint8_t y[] = {0, 0, 1, 1};
    th_err err = {{0}};
    th_roc roc;
    CHECK(th_roc_curve(4, s, y, 1, &roc, &err) == 0);
    check_curve(&roc, 5, (double[]){INFINITY, 0.8, 0.4, 0.35, 0.1}, (double[]){0, 0, 0.5, 0.5, 1},
                (double[]){0, 0.5, 0.5, 1, 1});
    CHECK(roc.n_pos == 2 && roc.n_neg == 2);
    th_roc_free(&roc);
    CHECK(roc.n == 0 && roc.fpr == NULL);

    th_label_metrics m;
    th_metrics_macro macro;
    CHECK(th_metrics_compute(4, 1, s, y, &m, &macro, &err) == 0);
    CHECK(m.defined && m.reason == NULL);
    CHECK_NEAR(m.auc, 0.75, 1e-15);
    CHECK_NEAR(m.ap, 5.0 / 6.0, 1e-15); /* 0.5 * 1 + 0.5 * 2/3 */
    /* J = 0.5 at 0.8 (tpr 0.5, fpr 0) and at 0.35 (tpr 1, fpr 0.5): the higher wins. */
    CHECK(m.threshold == 0.8f);
    CHECK_NEAR(m.sensitivity, 0.5, 1e-15);
    CHECK_NEAR(m.specificity, 1.0, 1e-15);
    /* V10 = {1/2, 1}, V01 = {1, 1/2}: S10 = S01 = 0.125, var = 0.125/2 + 0.125/2. */
    CHECK_NEAR(m.auc_var, 0.125, 1e-15);
    CHECK_NEAR(m.auc_lo, 0.75 - TH_AUC_CI_Z * sqrt(0.125), 1e-12);
    CHECK(m.auc_hi == 1.0); /* 0.75 + 0.69 clipped */
    CHECK(m.n_pos == 2 && m.n_neg == 2);
    CHECK(macro.n_defined == 1 && macro.auc == m.auc && macro.ap == m.ap);

    double auc, var;
    CHECK(th_auc_delong(4, s, y, 1, &auc, &var, &err) == 0);
    CHECK_NEAR(auc, 0.75, 1e-15);
    CHECK_NEAR(var, 0.125, 1e-15);
}

static void test_ties(void)
{
    /* Score groups (pos, neg): 0.9 (1,1), 0.7 (1,0), 0.5 (1,2), 0.2 (1,1). */
    float s[] = {0.9f, 0.9f, 0.7f, 0.5f, 0.5f, 0.5f, 0.2f, 0.2f};
    uint8_t y[] = {1, 0, 1, 0, 1, 0, 0, 1};
    th_err err = {{0}};
    th_roc roc;
    CHECK(th_roc_curve(8, s, y, 1, &roc, &err) == 0);
    /* Each tie group is a single (diagonal) step. */
    check_curve(&roc, 5, (double[]){INFINITY, 0.9, 0.7, 0.5, 0.2}, (double[]){0, 0.25, 0.25, 0.75, 1},
                (double[]){0, 0.25, 0.5, 0.75, 1});
    double area = 0;
    for (int i = 1; i < roc.n; i++) area += (roc.fpr[i] - roc.fpr[i - 1]) * (roc.tpr[i] + roc.tpr[i - 1]) / 2;
    th_roc_free(&roc);

    th_label_metrics m;
    CHECK(th_metrics_compute(8, 1, s, y, &m, NULL, &err) == 0);
    /* Pairs won, ties one half: 3.5 + 3 + 2 + 0.5 = 9 of 16; also the trapezoids. */
    CHECK_NEAR(m.auc, 9.0 / 16.0, 1e-15);
    CHECK_NEAR(area, 9.0 / 16.0, 1e-15);
    /* Recall steps of 1/4 at precisions 1/2, 2/3, 3/6, 4/8. */
    CHECK_NEAR(m.ap, 0.25 * (0.5 + 2.0 / 3.0 + 0.5 + 0.5), 1e-15);
    /* J: 0.9 -> 0, 0.7 -> 0.25, 0.5 -> 0, 0.2 -> 0. */
    CHECK(m.threshold == 0.7f);
    CHECK_NEAR(m.sensitivity, 0.5, 1e-15);
    CHECK_NEAR(m.specificity, 0.75, 1e-15);
    /* V10 = {7/8, 3/4, 1/2, 1/8}, V01 = {1/8, 5/8, 5/8, 7/8}: S10 = 0.328125/3,
     * S01 = 0.296875/3, var = (S10 + S01) / 4 = 5/96. */
    CHECK_NEAR(m.auc_var, 5.0 / 96.0, 1e-15);
    double slow_auc;
    CHECK_NEAR(delong_var_pairs(8, s, y, &slow_auc), 5.0 / 96.0, 1e-15);
    CHECK(m.auc_lo < m.auc && m.auc < m.auc_hi);
    CHECK_NEAR(m.auc - m.auc_lo, TH_AUC_CI_Z * sqrt(5.0 / 96.0), 1e-12);
    CHECK(m.auc_hi == 1.0); /* 0.5625 + 0.447 clipped */

    /* All scores tied: one diagonal from (0,0) to (1,1), AUC 0.5, and the
     * only threshold (J = 0) is the common score. */
    float flat[] = {0.3f, 0.3f, 0.3f, 0.3f, 0.3f};
    uint8_t yf[] = {1, 0, 1, 0, 0};
    CHECK(th_roc_curve(5, flat, yf, 1, &roc, &err) == 0);
    check_curve(&roc, 2, (double[]){INFINITY, 0.3}, (double[]){0, 1}, (double[]){0, 1});
    th_roc_free(&roc);
    CHECK(th_metrics_compute(5, 1, flat, yf, &m, NULL, &err) == 0);
    CHECK_NEAR(m.auc, 0.5, 1e-15);
    CHECK(m.threshold == 0.3f && m.sensitivity == 1.0 && m.specificity == 0.0);
    CHECK_NEAR(m.ap, 0.4, 1e-15); /* prevalence */
}

static void test_edges(void)
{
    th_err err = {{0}};
    th_label_metrics m;

    /* Perfect separation: variance 0, the interval collapses onto 1. */
    float s[] = {0.1f, 0.2f, 0.3f, 0.7f, 0.8f, 0.9f};
    uint8_t y[] = {0, 0, 0, 1, 1, 1};
    CHECK(th_metrics_compute(6, 1, s, y, &m, NULL, &err) == 0);
    CHECK(m.auc == 1.0 && m.auc_var == 0.0 && m.auc_lo == 1.0 && m.auc_hi == 1.0);
    CHECK(m.threshold == 0.7f && m.sensitivity == 1.0 && m.specificity == 1.0 && m.ap == 1.0);

    /* One positive: AUC defined, its variance not (S10 needs two). */
    uint8_t one[] = {0, 0, 0, 0, 1, 0};
    CHECK(th_metrics_compute(6, 1, s, one, &m, NULL, &err) == 0);
    CHECK(m.defined);
    CHECK_NEAR(m.auc, 0.8, 1e-15); /* above 4 of 5 negatives */
    CHECK(isnan(m.auc_var) && isnan(m.auc_lo) && isnan(m.auc_hi));

    /* A NaN score is an error naming the case, never a silent sort. */
    float bad[] = {0.1f, NAN, 0.3f};
    uint8_t yb[] = {0, 1, 1};
    th_roc roc;
    CHECK(th_roc_curve(3, bad, yb, 1, &roc, &err) == -1);
    CHECK(strstr(err.msg, "case 1") != NULL);
    CHECK(isnan(th_auc(3, bad, yb, 1)));
    CHECK(th_metrics_compute(3, 1, bad, yb, &m, NULL, &err) == -1);
    CHECK(strstr(err.msg, "label 0") != NULL);

    /* One class only: no curve, no error. */
    uint8_t none[] = {0, 0, 0, 0, 0, 0};
    CHECK(th_roc_curve(6, s, none, 1, &roc, &err) == 0);
    CHECK(roc.n == 0 && roc.n_pos == 0 && roc.n_neg == 6);
    th_roc_free(&roc);
}

static void test_labels_and_macro(void)
{
    /* Labels: 0 = the basic case, 1 = no positives, 2 = no negatives,
     * 3 = the basic case reversed in class (AUC 0.25). */
    float s[] = {0.1f, 0.4f, 0.35f, 0.8f};
    uint8_t y[] = {0, 0, 1, 1};
    enum { N = 4, L = 4 };
    float p[N * L];
    uint8_t t[N * L];
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < L; k++) p[i * L + k] = s[i];
        t[i * L + 0] = y[i];
        t[i * L + 1] = 0;
        t[i * L + 2] = 1;
        t[i * L + 3] = !y[i];
    }
    th_label_metrics m[L];
    th_metrics_macro macro;
    th_err err = {{0}};
    CHECK(th_metrics_compute(N, L, p, t, m, &macro, &err) == 0);
    CHECK(m[0].defined && m[3].defined);
    CHECK(!m[1].defined && strcmp(m[1].reason, "no positive images") == 0);
    CHECK(!m[2].defined && strcmp(m[2].reason, "no negative images") == 0);
    CHECK(isnan(m[1].auc) && isnan(m[1].ap) && isnan(m[1].threshold) && isnan(m[2].auc_lo));
    CHECK(m[1].n_pos == 0 && m[1].n_neg == 4 && m[2].n_pos == 4 && m[2].n_neg == 0);
    CHECK_NEAR(m[3].auc, 0.25, 1e-15);
    /* Positives {0.1, 0.4}: recall 1/2 at 0.4 (precision 1/2), 1 at 0.1 (2/4). */
    CHECK_NEAR(m[3].ap, 0.5, 1e-15);
    CHECK(macro.n_defined == 2);
    CHECK_NEAR(macro.auc, (0.75 + 0.25) / 2, 1e-15);
    CHECK_NEAR(macro.ap, (5.0 / 6.0 + 0.5) / 2, 1e-15);
    CHECK_NEAR(macro.sensitivity, (m[0].sensitivity + m[3].sensitivity) / 2, 1e-15);
    CHECK_NEAR(macro.specificity, (m[0].specificity + m[3].specificity) / 2, 1e-15);

    /* The older entry points agree with the new code. */
    double auc[L];
    int defined;
    CHECK_NEAR(th_auc_macro(N, L, p, t, auc, &defined), macro.auc, 1e-15);
    CHECK(defined == 2 && isnan(auc[1]));

    /* No images: every label undefined, macro NaN. */
    CHECK(th_metrics_compute(0, 2, p, t, m, &macro, &err) == 0);
    CHECK(!m[0].defined && strcmp(m[0].reason, "no images") == 0);
    CHECK(macro.n_defined == 0 && isnan(macro.auc) && isnan(macro.sensitivity));
}

/* Many ties on a grid of 21 scores: every quantity against its slow definition. */
static void test_against_slow(void)
{
    enum { M = 400 };
    float s[M];
    uint8_t y[M];
    th_test_fill(s, M, 0, 1, 11);
    for (int i = 0; i < M; i++) {
        y[i] = (uint8_t)((i * 7 + i / 13) % 4 == 0);
        s[i] = roundf((s[i] + 0.15f * y[i]) * 20) / 20;
    }
    th_err err = {{0}};
    th_label_metrics m;
    CHECK(th_metrics_compute(M, 1, s, y, &m, NULL, &err) == 0);
    double slow_auc, slow_var = delong_var_pairs(M, s, y, &slow_auc);
    CHECK_NEAR(m.auc, slow_auc, 1e-12);
    CHECK_REL(m.auc_var, slow_var, 1e-10, 1e-12);
    CHECK(m.auc_lo < m.auc && m.auc < m.auc_hi);
    CHECK_NEAR(m.ap, ap_slow(M, s, y), 1e-12);

    /* Youden by brute force over the distinct scores, in exact integers. */
    long P = m.n_pos, N = m.n_neg, best = -1;
    float best_t = NAN;
    for (int i = 0; i < M; i++) {
        long tp = 0, fp = 0;
        for (int j = 0; j < M; j++)
            if (s[j] >= s[i]) {
                tp += y[j];
                fp += !y[j];
            }
        long j_num = tp * N - fp * P;
        if (best < 0 || j_num > best || (j_num == best && s[i] > best_t)) {
            best = j_num;
            best_t = s[i];
        }
    }
    CHECK(m.threshold == best_t);

    /* The curve's trapezoids give the Mann-Whitney AUC. */
    th_roc roc;
    CHECK(th_roc_curve(M, s, y, 1, &roc, &err) == 0);
    double area = 0;
    for (int i = 1; i < roc.n; i++) area += (roc.fpr[i] - roc.fpr[i - 1]) * (roc.tpr[i] + roc.tpr[i - 1]) / 2;
    CHECK_NEAR(area, m.auc, 1e-12);
    CHECK(roc.fpr[roc.n - 1] == 1.0 && roc.tpr[roc.n - 1] == 1.0);
    for (int i = 1; i < roc.n; i++) CHECK(roc.threshold[i] < roc.threshold[i - 1]);
    th_roc_free(&roc);
}

static void test_patients(void)
{
    /* 5 images of 3 patients, 2 labels; patient 1 has a NaN score on label 1. */
    enum { N = 5, L = 2, NP = 3 };
    float p[N * L] = {0.2f, 0.1f, 0.7f, 0.4f, 0.3f, 0.9f, 0.5f, 0.6f, 0.6f, NAN};
    uint8_t y[N * L] = {0, 0, 1, 0, 0, 0, 0, 1, 0, 0};
    int patient_of[N] = {0, 0, 2, 1, 1};
    float pp[NP * L];
    uint8_t py[NP * L];
    th_err err = {{0}};
    CHECK(th_metrics_by_patient(N, L, p, y, patient_of, NP, pp, py, &err) == 0);
    CHECK(pp[0] == 0.7f && pp[1] == 0.4f && py[0] == 1 && py[1] == 0); /* patient 0: images 0, 1 */
    CHECK(pp[2] == 0.6f && isnan(pp[3]) && py[2] == 0 && py[3] == 1);  /* patient 1: images 3, 4 */
    CHECK(pp[4] == 0.3f && pp[5] == 0.9f && py[4] == 0 && py[5] == 0); /* patient 2: image 2 */

    int bad_of[N] = {0, 0, 3, 1, 1};
    CHECK(th_metrics_by_patient(N, L, p, y, bad_of, NP, pp, py, &err) == -1);
    CHECK(strstr(err.msg, "image 2") != NULL);
    CHECK(th_metrics_by_patient(N, L, p, y, patient_of, NP + 1, (float[8]){0}, (uint8_t[8]){0}, &err) == -1);
    CHECK(strstr(err.msg, "patient 3 has no images") != NULL);
}

int main(void)
{
    test_basic();
    test_ties();
    test_edges();
    test_labels_and_macro();
    test_against_slow();
    test_patients();
    return th_test_summary("test_metrics");
}

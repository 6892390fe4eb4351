/* test_oppoint.c - operating-point rules, Wilson intervals, ECE, Brier and
 * temperature scaling against values worked by hand. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "thorax/config.h"
#include "thorax/eval.h"

/* Scores 0.1 .. 1.0 (case i scores (i+1)/10); positives at 0.4, 0.7, 0.8,
 * 0.9, 1.0 (5 positives, 5 negatives). Sweeping down from 1.0:
 *   t    tp fp  sens spec  J
 *   1.0  1  0   0.2  1.0   0.2
 *   0.9  2  0   0.4  1.0   0.4
 *   0.8  3  0   0.6  1.0   0.6
 *   0.7  4  0   0.8  1.0   0.8   <- Youden (J = 0.8, first met)
 *   0.6  4  1   0.8  0.8   0.6
 *   0.5  4  2   0.8  0.6   0.4
 *   0.4  5  2   1.0  0.6   0.6
 *   0.3  5  3   1.0  0.4
 *   0.2  5  4   1.0  0.2
 *   0.1  5  5   1.0  0.0 */
static const float S[10] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1.0f};
static const uint8_t Y[10] = {0, 0, 0, 1, 0, 0, 1, 1, 1, 1};

static double choose(th_threshold_rule rule, double v)
{
    double t = -1;
    th_err err = {{0}};
    CHECK(th_threshold_choose(10, S, Y, 1, rule, v, &t, &err) == 0);
    return t;
}

static void test_rules(void)
{
    CHECK(choose(TH_THRESHOLD_YOUDEN, 0) == (double)0.7f);
    /* Highest threshold with sensitivity >= 0.8: 0.7 (4/5 exactly meets it). */
    CHECK(choose(TH_THRESHOLD_SENSITIVITY, 0.8) == (double)0.7f);
    CHECK(choose(TH_THRESHOLD_SENSITIVITY, 0.9) == (double)0.4f);
    CHECK(choose(TH_THRESHOLD_SENSITIVITY, 0.1) == (double)1.0f);
    /* Lowest threshold with specificity >= 0.8: 0.6; >= 0.6: 0.4 (not 0.5). */
    CHECK(choose(TH_THRESHOLD_SPECIFICITY, 0.8) == (double)0.6f);
    CHECK(choose(TH_THRESHOLD_SPECIFICITY, 0.6) == (double)0.4f);
    CHECK(choose(TH_THRESHOLD_SPECIFICITY, 0.9) == (double)0.7f);
    CHECK(choose(TH_THRESHOLD_FIXED, 0.5) == 0.5);
    /* A negative at the top: no score keeps specificity 1, so nothing is called positive. */
    float s2[] = {0.9f, 0.5f, 0.1f};
    uint8_t y2[] = {0, 1, 0};
    double t;
    th_err err = {{0}};
    CHECK(th_threshold_choose(3, s2, y2, 1, TH_THRESHOLD_SPECIFICITY, 0.99, &t, &err) == 0);
    CHECK(t > 0.9f && (float)t == nextafterf(0.9f, 1));
    /* One class: no rule but fixed can choose. */
    uint8_t none[] = {0, 0, 0};
    CHECK(th_threshold_choose(3, s2, none, 1, TH_THRESHOLD_YOUDEN, 0, &t, &err) == 0 && isnan(t));
    /* Youden agrees with th_metrics_compute's threshold. */
    th_label_metrics m;
    CHECK(th_metrics_compute(10, 1, S, Y, &m, NULL, &err) == 0);
    CHECK(m.threshold == choose(TH_THRESHOLD_YOUDEN, 0));
}

static void test_parse(void)
{
    th_threshold_rule r;
    double v;
    char msg[160];
    CHECK(th_threshold_rule_parse("youden", &r, &v, msg, sizeof msg) == 0 && r == TH_THRESHOLD_YOUDEN);
    CHECK(th_threshold_rule_parse("sensitivity@0.9", &r, &v, msg, sizeof msg) == 0 && r == TH_THRESHOLD_SENSITIVITY &&
          v == 0.9);
    CHECK(th_threshold_rule_parse("specificity@0.95", &r, &v, msg, sizeof msg) == 0 && r == TH_THRESHOLD_SPECIFICITY);
    CHECK(th_threshold_rule_parse("fixed:0", &r, &v, msg, sizeof msg) == 0 && r == TH_THRESHOLD_FIXED && v == 0);
    CHECK(th_threshold_rule_parse("fixed:1", &r, &v, msg, sizeof msg) == 0 && v == 1);
    CHECK(th_threshold_rule_parse("sensitivity@1", &r, &v, msg, sizeof msg) == -1 && strstr(msg, "(0, 1)"));
    CHECK(th_threshold_rule_parse("fixed:1.5", &r, &v, msg, sizeof msg) == -1 && strstr(msg, "[0, 1]"));
    CHECK(th_threshold_rule_parse("sensitivity@0.9x", &r, &v, msg, sizeof msg) == -1);
    CHECK(th_threshold_rule_parse("f1", &r, &v, msg, sizeof msg) == -1 && strstr(msg, "youden"));
}

static void test_counts_and_intervals(void)
{
    double lo, hi;
    th_wilson_interval(8, 10, TH_AUC_CI_Z, &lo, &hi);
    CHECK_NEAR(lo, 0.4902, 5e-5);
    CHECK_NEAR(hi, 0.9433, 5e-5);
    /* 0/10: [0, 0.2775]; 10/10: [0.7225, 1]. */
    th_wilson_interval(0, 10, TH_AUC_CI_Z, &lo, &hi);
    CHECK_NEAR(lo, 0, 1e-12);
    CHECK_NEAR(hi, 0.2775, 5e-5);
    th_wilson_interval(10, 10, TH_AUC_CI_Z, &lo, &hi);
    CHECK_NEAR(lo, 0.7225, 5e-5);
    CHECK_NEAR(hi, 1, 1e-12);
    th_wilson_interval(0, 0, TH_AUC_CI_Z, &lo, &hi);
    CHECK(isnan(lo) && isnan(hi));

    /* At 0.5: called 0.5..1.0 -> tp 4 (0.7, 0.8, 0.9, 1.0), fp 2 (0.5, 0.6),
     * fn 1 (0.4), tn 3. */
    th_operating_point op;
    th_operating_point_at(10, S, Y, 1, 0.5f, &op);
    CHECK(op.c.tp == 4 && op.c.fp == 2 && op.c.tn == 3 && op.c.fn == 1);
    CHECK_NEAR(op.sensitivity.value, 0.8, 1e-12);
    CHECK_NEAR(op.sensitivity.lo, 0.3755, 5e-5); /* Wilson 4/5 */
    CHECK_NEAR(op.sensitivity.hi, 0.9638, 5e-5);
    CHECK_NEAR(op.specificity.value, 0.6, 1e-12);
    CHECK_NEAR(op.ppv.value, 4.0 / 6, 1e-12);
    CHECK_NEAR(op.npv.value, 0.75, 1e-12);
    CHECK_NEAR(op.accuracy.value, 0.7, 1e-12);
    CHECK_NEAR(op.f1.value, 8.0 / 11, 1e-12); /* 2*4 / (2*4 + 2 + 1) */
    /* F1's interval: Wilson of J = 4/7 mapped by 2J/(1+J). */
    th_wilson_interval(4, 7, TH_AUC_CI_Z, &lo, &hi);
    CHECK_NEAR(op.f1.lo, 2 * lo / (1 + lo), 1e-12);
    CHECK_NEAR(op.f1.hi, 2 * hi / (1 + hi), 1e-12);
    CHECK(op.f1.lo < op.f1.value && op.f1.value < op.f1.hi);
    /* Nothing called positive: ppv undefined. */
    th_operating_point_at(10, S, Y, 1, 2.0, &op);
    CHECK(op.c.tp == 0 && op.c.fp == 0 && isnan(op.ppv.value) && isnan(op.ppv.lo));
}

static void test_calibration(void)
{
    th_err err = {{0}};
    double ece, brier, bp[15], by[15];
    /* 30 cases, 15 bins of 2. Pair b scores {b/15, b/15} (sorted), truths
     * {1, 0} for even b and {0, 0} for odd b: bin means p_b = b/15, y_b =
     * 0.5 or 0. ECE = (1/15) sum_b |b/15 - y_b|. */
    float p[30];
    uint8_t y[30];
    double want = 0, want_brier = 0;
    for (int b = 0; b < 15; b++) {
        p[2 * b] = p[2 * b + 1] = (float)b / 15;
        y[2 * b] = (uint8_t)(b % 2 == 0);
        y[2 * b + 1] = 0;
        double pb = (double)((float)b / 15);
        want += fabs(pb - (b % 2 == 0 ? 0.5 : 0.0)) / 15;
        want_brier += (pb - y[2 * b]) * (pb - y[2 * b]) + pb * pb;
    }
    CHECK(th_calibration_error(30, p, y, 1, 15, &ece, &brier, bp, by, &err) == 0);
    CHECK_NEAR(ece, want, 1e-9);
    CHECK_NEAR(brier, want_brier / 30, 1e-9);
    CHECK_NEAR(by[0], 0.5, 1e-12);
    CHECK_NEAR(by[1], 0, 1e-12);
    /* By hand, 4 cases in 2 bins: {0.2 y0, 0.4 y1 | 0.6 y0, 0.8 y1}:
     * ECE = 0.5 |0.3 - 0.5| + 0.5 |0.7 - 0.5| = 0.2; Brier = (0.04 + 0.36 +
     * 0.36 + 0.04) / 4 = 0.2. Unsorted input, sorted by score. */
    float q[] = {0.8f, 0.2f, 0.6f, 0.4f};
    uint8_t z[] = {1, 0, 0, 1};
    CHECK(th_calibration_error(4, q, z, 1, 2, &ece, &brier, NULL, NULL, &err) == 0);
    CHECK_NEAR(ece, 0.2, 1e-7);
    CHECK_NEAR(brier, 0.2, 1e-7);
    /* 3 cases in 15 bins: bins of one case where floor(b*3/15) steps. */
    CHECK(th_calibration_error(3, q, z, 1, 15, &ece, &brier, bp, by, &err) == 0);
    CHECK_NEAR(ece, (0.2 + 0.2 + 0.6) / 3, 1e-7); /* {0.2 y0}, {0.6 y0}, {0.8 y1} */
}

static void test_temperature(void)
{
    /* Over-confident: every case scores 0.9 (logit ln 9), 3 in 4 positive.
     * The NLL is least where sigmoid(ln 9 / T) = 0.75, i.e. ln 9 / T = ln 3:
     * T = 2. */
    enum { N = 420 }; /* 15 bins of 28: each holds 7 negatives */
    float p[N];
    uint8_t y[N];
    for (int i = 0; i < N; i++) {
        p[i] = 0.9f;
        y[i] = (uint8_t)(i % 4 != 0);
    }
    double t = th_temperature_fit(N, p, y, 1);
    CHECK_NEAR(t, log((double)0.9f / (1 - (double)0.9f)) / log(3.0), 1e-6);
    CHECK_NEAR(th_temperature_apply(0.9f, t), 0.75, 1e-6);
    /* ECE falls from 0.15 to ~0. */
    th_err err = {{0}};
    double ece_raw, ece_cal, brier;
    float c[N];
    for (int i = 0; i < N; i++) c[i] = th_temperature_apply(p[i], t);
    CHECK(th_calibration_error(N, p, y, 1, TH_ECE_BINS, &ece_raw, &brier, NULL, NULL, &err) == 0);
    CHECK(th_calibration_error(N, c, y, 1, TH_ECE_BINS, &ece_cal, &brier, NULL, NULL, &err) == 0);
    CHECK_NEAR(ece_raw, 0.15, 1e-6);
    CHECK(ece_cal < 1e-5);

    /* A ranking with spread: scaling keeps the AUC, and lowers the ECE of an
     * over-confident set (scores pushed to the extremes). */
    float s[N], sc[N];
    uint8_t yy[N];
    th_test_fill(s, N, 0, 1, 7);
    for (int i = 0; i < N; i++) {
        yy[i] = (uint8_t)(s[i] > 0.5f ? (i % 5 != 0) : (i % 5 == 0)); /* 80% agree with the side */
        s[i] = s[i] > 0.5f ? 0.97f + 0.02f * s[i] : 0.01f + 0.02f * s[i];
    }
    double t2 = th_temperature_fit(N, s, yy, 1);
    CHECK(t2 > 1);
    for (int i = 0; i < N; i++) sc[i] = th_temperature_apply(s[i], t2);
    CHECK_NEAR(th_auc(N, sc, yy, 1), th_auc(N, s, yy, 1), 1e-12);
    CHECK(th_calibration_error(N, s, yy, 1, TH_ECE_BINS, &ece_raw, &brier, NULL, NULL, &err) == 0);
    CHECK(th_calibration_error(N, sc, yy, 1, TH_ECE_BINS, &ece_cal, &brier, NULL, NULL, &err) == 0);
    CHECK(ece_cal < ece_raw / 2);
    /* One class: T = 1. */
    uint8_t none[N] = {0};
    CHECK(th_temperature_fit(N, s, none, 1) == 1);
}

/* thresholds.json reads back what was written: floats as the same floats,
 * null as NaN, labels that need escaping by name. */
static void test_thresholds_file(void)
{
    static th_thresholds t, back;
    memset(&t, 0, sizeof t);
    snprintf(t.checkpoint, sizeof t.checkpoint, "last");
    t.epoch = 7;
    t.step = 1234;
    snprintf(t.rule, sizeof t.rule, "specificity@0.95");
    snprintf(t.calibrate, sizeof t.calibrate, "temperature");
    t.l = 3;
    const char *names[] = {"Effusion", "Pleural \"Thickening\"", "tab\there"};
    for (int k = 0; k < 3; k++) {
        snprintf(t.label[k], sizeof t.label[k], "%s", names[k]);
        t.threshold[k] = (double)(0.1f + 0.3f * (float)k);
        t.threshold_patient[k] = (double)nextafterf(0.5f, 1);
        t.temperature[k] = 1.0 / 3 + k;
    }
    t.threshold[2] = NAN;
    char dir[] = "/tmp/thorax_test_oppoint_XXXXXX", path[64];
    th_err err = {{0}};
    if (!CHECK(mkdtemp(dir) != NULL)) return;
    snprintf(path, sizeof path, "%s/thresholds.json", dir);
    CHECK(th_thresholds_write(path, &t, &err) == 0);
    if (!CHECK(th_thresholds_read(path, &back, &err) == 0)) fprintf(stderr, "    %s\n", err.msg);
    CHECK(strcmp(back.checkpoint, "last") == 0 && back.epoch == 7 && back.step == 1234);
    CHECK(strcmp(back.rule, "specificity@0.95") == 0 && strcmp(back.calibrate, "temperature") == 0);
    CHECK(back.l == 3);
    for (int k = 0; k < 3 && back.l == 3; k++) {
        CHECK(strcmp(back.label[k], names[k]) == 0);
        CHECK(k == 2 ? isnan(back.threshold[k]) : back.threshold[k] == t.threshold[k]);
        CHECK(back.threshold_patient[k] == t.threshold_patient[k]);
        CHECK(back.temperature[k] == t.temperature[k]);
    }
    /* A damaged file is an error naming it. */
    CHECK(th_write_file_atomic(path, "{\"labels\": {\"A\": {\"threshold\": }}}", 35, &err) == 0);
    CHECK(th_thresholds_read(path, &back, &err) == -1 && strstr(err.msg, "thresholds.json") != NULL);
    remove(path);
    rmdir(dir);
}

int main(void)
{
    test_thresholds_file();
    test_rules();
    test_parse();
    test_counts_and_intervals();
    test_calibration();
    test_temperature();
    return th_test_summary("test_oppoint");
}

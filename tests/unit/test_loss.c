/* test_loss.c - the seeds' worked examples for label frequencies, class
 * weights and the weighted loss on probabilities; agreement of the logit form
 * with the probability form; stability at huge logits; softmax
 * cross-entropy by hand; the th_loss dispatch and th_loss_probs; unknown
 * labels (TH_LABEL_UNKNOWN) left out of the loss, its gradient, the mean and
 * the class frequencies, checked by hand and by finite differences. */
#include <stdint.h>
#include <string.h>

#include "testutil.h"
#include "thorax/nn.h"

static void test_seed_weights(void)
{
    const uint8_t y[5 * 3] = {1, 0, 0,
                              0, 1, 1,
                              1, 0, 1,
                              1, 1, 1,
                              1, 0, 1};
    double freq[3];
    float w_pos[3], w_neg[3];
    th_label_freq(5, 3, y, freq);
    CHECK_NEAR(freq[0], 0.8, 1e-12);
    CHECK_NEAR(freq[1], 0.4, 1e-12);
    CHECK_NEAR(freq[2], 0.8, 1e-12);
    th_class_weights(3, freq, w_pos, w_neg);
    const float want_pos[3] = {0.2f, 0.6f, 0.2f}, want_neg[3] = {0.8f, 0.4f, 0.8f};
    for (int j = 0; j < 3; j++) {
        CHECK_NEAR(w_pos[j], want_pos[j], 1e-7);
        CHECK_NEAR(w_neg[j], want_neg[j], 1e-7);
        /* The point of the weights: positives and negatives weigh the same. */
        double pos = 0, neg = 0;
        for (int i = 0; i < 5; i++) y[i * 3 + j] ? (pos += w_pos[j]) : (neg += w_neg[j]);
        CHECK_NEAR(pos, neg, 1e-6);
    }
}

static void test_seed_probs_example(void)
{
    const uint8_t y[4 * 3] = {1, 1, 1,
                              1, 1, 0,
                              0, 1, 0,
                              1, 0, 1};
    const float w_pos[3] = {0.25f, 0.25f, 0.5f}, w_neg[3] = {0.75f, 0.75f, 0.5f};
    float p07[12], p03[12];
    for (int i = 0; i < 12; i++) p07[i] = 0.7f, p03[i] = 0.3f;
    double l07 = th_wbce_probs(4, 3, p07, y, w_pos, w_neg, 1.0f);
    double l03 = th_wbce_probs(4, 3, p03, y, w_pos, w_neg, 1.0f);
    CHECK_NEAR(l07, -0.4956, 1e-4);
    CHECK_NEAR(l03, -0.4956, 1e-4);
    CHECK_NEAR(l07, l03, 1e-6);
}

/* With z = logit(p) and no epsilon, the logit loss (a sum over images) is n
 * times the probability loss (a mean over images). */
static void test_logits_match_probs(void)
{
    enum { N = 6, L = 4 };
    float p[N * L], z[N * L], w_pos[L], w_neg[L], coin[N * L];
    uint8_t y[N * L];
    th_test_fill(p, N * L, 0.05f, 0.95f, 1);
    th_test_fill(coin, N * L, 0, 1, 2);
    th_test_fill(w_pos, L, 0.1f, 0.9f, 3);
    th_test_fill(w_neg, L, 0.1f, 0.9f, 4);
    for (int i = 0; i < N * L; i++) {
        z[i] = (float)log(p[i] / (1.0 - p[i]));
        y[i] = coin[i] < 0.5f;
    }
    double from_logits = th_wbce_logits(N, L, z, y, w_pos, w_neg, NULL);
    double from_probs = th_wbce_probs(N, L, p, y, w_pos, w_neg, 0.0f);
    CHECK_REL(from_logits, from_probs * N, 1e-5, 1e-6);
}

static void test_huge_logits(void)
{
    const float z[4] = {100, 100, -100, -100};
    const uint8_t y[4] = {1, 0, 1, 0};
    const float w_pos[4] = {0.3f, 0.3f, 0.3f, 0.3f}, w_neg[4] = {0.7f, 0.7f, 0.7f, 0.7f};
    float dz[4];
    double loss = th_wbce_logits(1, 4, z, y, w_pos, w_neg, dz);
    CHECK(isfinite(loss));
    /* Only the two confidently wrong logits cost anything: 0.7*100 + 0.3*100. */
    CHECK_REL(loss, 100.0, 1e-6, 1.0);
    for (int i = 0; i < 4; i++) CHECK(isfinite(dz[i]));
    CHECK_NEAR(dz[0], 0.0, 1e-12);
    CHECK_NEAR(dz[1], 0.7, 1e-6);
    CHECK_NEAR(dz[2], -0.3, 1e-6);
    CHECK_NEAR(dz[3], 0.0, 1e-12);

    const float zs[3] = {1000, -1000, 0};
    const uint8_t ys[3] = {0, 1, 0};
    float dzs[3];
    double ce = th_softmax_ce(1, 3, zs, ys, dzs);
    CHECK(isfinite(ce));
    CHECK_REL(ce, 2000.0, 1e-6, 1.0);
    CHECK(isfinite(dzs[0]) && isfinite(dzs[1]) && isfinite(dzs[2]));
}

static void test_softmax_ce_hand(void)
{
    /* Image 0: z = [1, 2, 3], class 2. log(e + e^2 + e^3) = 3.40760596.
     * Image 1: z = [0, 0, 0], labels [0, 1, 1]: the class is the first 1, so 1; loss log 3. */
    const float z[6] = {1, 2, 3, 0, 0, 0};
    const uint8_t y[6] = {0, 0, 1, 0, 1, 1};
    float dz[6];
    double loss = th_softmax_ce(2, 3, z, y, dz);
    CHECK_NEAR(loss, 0.40760596 + 1.09861229, 1e-6);
    CHECK_NEAR(dz[0], 0.09003057, 1e-6);
    CHECK_NEAR(dz[1], 0.24472847, 1e-6);
    CHECK_NEAR(dz[2], 0.66524096 - 1.0, 1e-6);
    CHECK_NEAR(dz[3], 1.0 / 3, 1e-6);
    CHECK_NEAR(dz[4], 1.0 / 3 - 1.0, 1e-6);
    CHECK_NEAR(dz[5], 1.0 / 3, 1e-6);
}

static void test_dispatch_and_probs(void)
{
    enum { N = 3, L = 4 };
    float z[N * L], w_pos[L], w_neg[L], ones[L], coin[N * L], dz_a[N * L], dz_b[N * L];
    uint8_t y[N * L];
    th_test_fill(z, N * L, -4, 4, 21);
    th_test_fill(coin, N * L, 0, 1, 22);
    th_test_fill(w_pos, L, 0.1f, 0.9f, 23);
    th_test_fill(w_neg, L, 0.1f, 0.9f, 24);
    for (int i = 0; i < N * L; i++) y[i] = coin[i] < 0.5f;
    for (int j = 0; j < L; j++) ones[j] = 1.0f;

    double a = th_loss(TH_LOSS_WEIGHTED_BCE, N, L, z, y, w_pos, w_neg, dz_a);
    double b = th_wbce_logits(N, L, z, y, w_pos, w_neg, dz_b);
    CHECK(a == b && memcmp(dz_a, dz_b, sizeof dz_a) == 0);

    /* Plain BCE ignores the weights it is given: every weight is 1. */
    a = th_loss(TH_LOSS_BCE, N, L, z, y, w_pos, w_neg, dz_a);
    b = th_wbce_logits(N, L, z, y, ones, ones, dz_b);
    CHECK(a == b && memcmp(dz_a, dz_b, sizeof dz_a) == 0);

    memset(y, 0, sizeof y);
    for (int i = 0; i < N; i++) y[i * L + i] = 1;
    a = th_loss(TH_LOSS_SOFTMAX_CE, N, L, z, y, NULL, NULL, dz_a);
    b = th_softmax_ce(N, L, z, y, dz_b);
    CHECK(a == b && memcmp(dz_a, dz_b, sizeof dz_a) == 0);

    /* Probabilities: sigmoid per label, softmax per row, in place. */
    float p[N * L];
    th_loss_probs(TH_LOSS_WEIGHTED_BCE, N, L, z, p);
    for (int i = 0; i < N * L; i++) CHECK_NEAR(p[i], 1.0 / (1.0 + exp(-z[i])), 1e-6);
    memcpy(p, z, sizeof p);
    th_loss_probs(TH_LOSS_SOFTMAX_CE, N, L, p, p);
    for (int i = 0; i < N; i++) {
        double sum = 0, norm = 0;
        for (int j = 0; j < L; j++) norm += exp(z[i * L + j]);
        for (int j = 0; j < L; j++) {
            sum += p[i * L + j];
            CHECK_NEAR(p[i * L + j], exp(z[i * L + j]) / norm, 1e-6);
        }
        CHECK_NEAR(sum, 1.0, 1e-6);
    }
}

/* -log(sigmoid(z)) and -log(1 - sigmoid(z)), written out directly. */
static double nlog_sig(double z) { return log(1.0 + exp(-z)); }
static double nlog_one_minus_sig(double z) { return log(1.0 + exp(z)); }

/* The trainer's mean over known entries (thorax/nn.h): L * sum / known. */
static double masked_mean(int n, int l, const float *z, const uint8_t *y, const float *w_pos, const float *w_neg,
                          float *dz)
{
    double scale = (double)l / (double)th_label_known(n, l, y);
    double sum = th_wbce_logits(n, l, z, y, w_pos, w_neg, dz);
    for (int i = 0; dz && i < n * l; i++) dz[i] = (float)(dz[i] * scale);
    return sum * scale;
}

static void test_unknown_labels(void)
{
    enum { N = 3, L = 2 };
    const uint8_t U = TH_LABEL_UNKNOWN;
    const uint8_t y[N * L] = {1, U,
                              0, 1,
                              U, 0};
    const float z[N * L] = {0.5f, 3.0f, -1.0f, 2.0f, -4.0f, 0.25f};
    const float w_pos[L] = {0.6f, 0.3f}, w_neg[L] = {0.4f, 0.7f};

    CHECK(th_label_known(N, L, y) == 4);
    /* Frequencies over the known images: label 0 has 1 positive of 2 known,
     * label 1 has 1 of 2. */
    double freq[L];
    th_label_freq(N, L, y, freq);
    CHECK_NEAR(freq[0], 0.5, 1e-12);
    CHECK_NEAR(freq[1], 0.5, 1e-12);

    /* The sum over the 4 known entries, by hand; the unknowns' dz is 0. */
    float dz[N * L];
    memset(dz, 0x7f, sizeof dz);
    double sum = th_wbce_logits(N, L, z, y, w_pos, w_neg, dz);
    double want = 0.6 * nlog_sig(0.5) + 0.4 * nlog_one_minus_sig(-1.0) + 0.3 * nlog_sig(2.0) +
                  0.7 * nlog_one_minus_sig(0.25);
    CHECK_NEAR(sum, want, 1e-6);
    CHECK(dz[1] == 0.0f && dz[4] == 0.0f);
    CHECK_NEAR(dz[0], 0.6 * (1 / (1 + exp(-0.5)) - 1), 1e-6);
    CHECK_NEAR(dz[2], 0.4 / (1 + exp(1.0)), 1e-6);
    CHECK_NEAR(dz[3], 0.3 * (1 / (1 + exp(-2.0)) - 1), 1e-6);
    CHECK_NEAR(dz[5], 0.7 / (1 + exp(-0.25)), 1e-6);

    /* The mean over known entries, and its gradient by central differences
     * (the unknown entries' logits do not move the loss at all). */
    double mean = masked_mean(N, L, z, y, w_pos, w_neg, dz);
    CHECK_NEAR(mean, want * L / 4.0, 1e-6);
    for (int i = 0; i < N * L; i++) {
        float zp[N * L], zm[N * L];
        memcpy(zp, z, sizeof zp);
        memcpy(zm, z, sizeof zm);
        const float h = 1e-2f;
        zp[i] += h;
        zm[i] -= h;
        double fd = (masked_mean(N, L, zp, y, w_pos, w_neg, NULL) - masked_mean(N, L, zm, y, w_pos, w_neg, NULL)) /
                    (2.0 * h);
        CHECK_NEAR(dz[i], fd, 1e-4);
    }
    /* With every label known the mean is today's sum over images / N. */
    const uint8_t y_all[N * L] = {1, 0, 0, 1, 1, 0};
    CHECK_NEAR(masked_mean(N, L, z, y_all, w_pos, w_neg, NULL),
               th_wbce_logits(N, L, z, y_all, w_pos, w_neg, NULL) / N, 1e-12);

    /* The probability form averages each label over its known images. */
    float p[N * L];
    th_loss_probs(TH_LOSS_BCE, N, L, z, p);
    const float ones[L] = {1, 1};
    double probs = th_wbce_probs(N, L, p, y, ones, ones, 0.0f);
    double want_probs = (nlog_sig(0.5) + nlog_one_minus_sig(-1.0)) / 2 + (nlog_sig(2.0) + nlog_one_minus_sig(0.25)) / 2;
    CHECK_NEAR(probs, want_probs, 1e-5);

    /* Softmax CE: a row with an unknown label adds nothing. */
    const uint8_t ys[2 * 3] = {0, 1, 0, 1, U, 0};
    const float zs[2 * 3] = {0.1f, 0.2f, 0.3f, 1.0f, 2.0f, 3.0f};
    float dzs[2 * 3];
    double ce = th_softmax_ce(2, 3, zs, ys, dzs);
    double lse = log(exp(0.1) + exp(0.2) + exp(0.3));
    CHECK_NEAR(ce, lse - 0.2, 1e-6);
    for (int j = 3; j < 6; j++) CHECK(dzs[j] == 0.0f);
}

int main(void)
{
    test_seed_weights();
    test_seed_probs_example();
    test_logits_match_probs();
    test_huge_logits();
    test_softmax_ce_hand();
    test_dispatch_and_probs();
    test_unknown_labels();
    return th_test_summary("test_loss");
}

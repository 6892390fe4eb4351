/* loss.c - weighted and plain binary cross-entropy, softmax cross-entropy,
 * and the seeds' class weights (see thorax/nn.h).
 *
 * The training losses work on logits z [N, L]. Taking log(sigmoid(z)) of a
 * float probability underflows to log(0) once |z| exceeds ~17 (and becomes
 * -inf at ~88), so the logs are written as softplus terms instead:
 *   log(sigmoid(z))     = -softplus(-z)
 *   log(1 - sigmoid(z)) = -softplus(z)
 * with softplus(t) = max(t, 0) + log1p(exp(-|t|)), which is finite for any z.
 * Sums are accumulated in double; losses return the sum over images.
 * A label TH_LABEL_UNKNOWN adds neither loss nor gradient (dz = 0).
 */
#include "thorax/nn.h"

#include <math.h>
#include <stddef.h>

void th_label_freq(int n, int l, const uint8_t *y, double *freq_pos)
{
    for (int j = 0; j < l; j++) {
        long pos = 0, known = 0;
        for (int i = 0; i < n; i++) {
            uint8_t v = y[(size_t)i * l + j];
            pos += v == 1;
            known += v != TH_LABEL_UNKNOWN;
        }
        freq_pos[j] = known > 0 ? (double)pos / known : 0.0;
    }
}

long th_label_known(int n, int l, const uint8_t *y)
{
    long known = 0;
    for (size_t i = 0; i < (size_t)n * (size_t)l; i++) known += y[i] != TH_LABEL_UNKNOWN;
    return known;
}

void th_class_weights(int l, const double *freq_pos, float *w_pos, float *w_neg)
{
    for (int j = 0; j < l; j++) {
        w_pos[j] = (float)(1.0 - freq_pos[j]);
        w_neg[j] = (float)freq_pos[j];
    }
}

static double softplus(double t) { return fmax(t, 0.0) + log1p(exp(-fabs(t))); }

/* Computed from exp(-|z|) on both branches so exp never overflows. */
static double sigmoid(double z)
{
    double e = exp(-fabs(z));
    return z >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

/* Binary cross-entropy on logits; NULL weights mean weight 1 (plain BCE), so
 * the weighted and unweighted losses share this one implementation. */
static double bce_logits(int n, int l, const float *z, const uint8_t *y,
                         const float *w_pos, const float *w_neg, float *dz)
{
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < l; j++) {
            size_t idx = (size_t)i * l + j;
            double wp = w_pos ? w_pos[j] : 1.0, wn = w_neg ? w_neg[j] : 1.0;
            double zi = z[idx];
            if (y[idx] == TH_LABEL_UNKNOWN) {
                if (dz) dz[idx] = 0.0f;
            } else if (y[idx]) {
                total += wp * softplus(-zi);
                if (dz) dz[idx] = (float)(wp * (sigmoid(zi) - 1.0));
            } else {
                total += wn * softplus(zi);
                if (dz) dz[idx] = (float)(wn * sigmoid(zi));
            }
        }
    }
    return total;
}

double th_wbce_logits(int n, int l, const float *z, const uint8_t *y,
                      const float *w_pos, const float *w_neg, float *dz)
{
    return bce_logits(n, l, z, y, w_pos, w_neg, dz);
}

double th_wbce_probs(int n, int l, const float *p, const uint8_t *y,
                     const float *w_pos, const float *w_neg, float eps)
{
    double total = 0.0;
    for (int j = 0; j < l; j++) {
        double sum = 0.0;
        int known = 0;
        for (int i = 0; i < n; i++) {
            size_t idx = (size_t)i * l + j;
            if (y[idx] == TH_LABEL_UNKNOWN) continue;
            double yi = y[idx] ? 1.0 : 0.0;
            double pi = p[idx];
            sum += -(w_pos[j] * yi * log(pi + eps) + w_neg[j] * (1.0 - yi) * log(1.0 - pi + eps));
            known++;
        }
        if (known) total += sum / known;
    }
    return total;
}

/* Per image: loss = logsumexp(z) - z[class], dz = softmax(z) - onehot(class).
 * An image with no 1 in its row has no class: it contributes neither loss
 * nor gradient; nor does one with an unknown label (the trainer refuses
 * unknowns for this loss before it starts). */
double th_softmax_ce(int n, int l, const float *z, const uint8_t *y, float *dz)
{
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *zi = z + (size_t)i * l;
        const uint8_t *yi = y + (size_t)i * l;
        int cls = -1, unknown = 0;
        for (int j = 0; j < l; j++) {
            if (yi[j] == 1 && cls < 0) cls = j;
            unknown |= yi[j] == TH_LABEL_UNKNOWN;
        }
        if (unknown) cls = -1;

        double zmax = zi[0];
        for (int j = 1; j < l; j++) zmax = fmax(zmax, zi[j]);
        double sum = 0.0;
        for (int j = 0; j < l; j++) sum += exp(zi[j] - zmax);
        double lse = zmax + log(sum);

        if (cls >= 0) total += lse - zi[cls];
        if (dz) {
            float *dzi = dz + (size_t)i * l;
            for (int j = 0; j < l; j++) {
                dzi[j] = cls < 0 ? 0.0f : (float)(exp(zi[j] - lse) - (j == cls ? 1.0 : 0.0));
            }
        }
    }
    return total;
}

double th_loss(th_loss_type type, int n, int l, const float *z, const uint8_t *y,
               const float *w_pos, const float *w_neg, float *dz)
{
    switch (type) {
    case TH_LOSS_WEIGHTED_BCE: return bce_logits(n, l, z, y, w_pos, w_neg, dz);
    case TH_LOSS_BCE: return bce_logits(n, l, z, y, NULL, NULL, dz);
    case TH_LOSS_SOFTMAX_CE: return th_softmax_ce(n, l, z, y, dz);
    }
    return NAN;
}

void th_loss_probs(th_loss_type type, int n, int l, const float *z, float *p)
{
    if (type != TH_LOSS_SOFTMAX_CE) {
        for (size_t i = 0; i < (size_t)n * l; i++) p[i] = (float)sigmoid(z[i]);
        return;
    }
    /* Softmax per row. p may alias z: each z[j] is read before p[j] is
     * written, and the max is taken before any write. */
    for (int i = 0; i < n; i++) {
        const float *zi = z + (size_t)i * l;
        float *pi = p + (size_t)i * l;
        double zmax = zi[0];
        for (int j = 1; j < l; j++) zmax = fmax(zmax, zi[j]);
        double sum = 0.0;
        for (int j = 0; j < l; j++) {
            double e = exp(zi[j] - zmax);
            pi[j] = (float)e;
            sum += e;
        }
        for (int j = 0; j < l; j++) pi[j] = (float)(pi[j] / sum);
    }
}

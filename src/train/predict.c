/* predict.c - batched inference (see thorax/train.h). */
#include "thorax/train.h"

double th_predict(th_model *m, const th_input *in, th_loss_type loss, const uint8_t *img, const uint8_t *y, int n,
                  const float *w_pos, const float *w_neg, float *x, float *p)
{
    int L = m->n_labels, hw = in->h * in->w;
    double loss_sum = 0;
    for (int off = 0; off < n; off += m->max_batch) {
        int b = n - off < m->max_batch ? n - off : m->max_batch;
        th_input_make(in, img + (size_t)off * hw, NULL, NULL, b, -1, x);
        const float *logits = th_model_forward(m, x, b, 0);
        if (y) loss_sum += th_loss(loss, b, L, logits, y + (size_t)off * L, w_pos, w_neg, NULL);
        th_loss_probs(loss, b, L, logits, p + (size_t)off * L);
    }
    return loss_sum;
}

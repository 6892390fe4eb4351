/* predict.c - batched inference (see thorax/train.h). */
#include "thorax/train.h"

#include <time.h>

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

int th_predict_share(th_model *m, const th_input *in, th_loss_type loss, const uint8_t *img, const uint8_t *y, int n,
                     const float *w_pos, const float *w_neg, float *x, float *p, th_comm comm,
                     const th_stop_poll *poll, double *loss_sum)
{
    int L = m->n_labels, hw = in->h * in->w;
    int polling = poll && poll->flag;
    double batches = (double)((n + m->max_batch - 1) / m->max_batch);
    if (polling) th_dist_max(comm, &batches, 1);
    /* One th_predict per batch adds the batches' losses in th_predict's own
     * order, so the sum is the same bits as one call over the share. */
    double sum = 0;
    if (poll && poll->on_progress) poll->on_progress(poll->progress_ctx, 0, n);
    for (int k = 0; k < (int)batches; k++) {
        int off = k * m->max_batch;
        if (off < n) {
            int b = n - off < m->max_batch ? n - off : m->max_batch;
            sum += th_predict(m, in, loss, img + (size_t)off * hw, y ? y + (size_t)off * L : NULL, b, w_pos, w_neg, x,
                              p + (size_t)off * L);
            if (poll && poll->on_progress) poll->on_progress(poll->progress_ctx, off + b, n);
        }
        if (poll && poll->batch_sleep_ms > 0) {
            struct timespec ts = {poll->batch_sleep_ms / 1000, (long)(poll->batch_sleep_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (polling && k + 1 < (int)batches && th_dist_any(comm, *poll->flag)) return TH_TRAIN_STOPPED;
    }
    if (loss_sum) *loss_sum = sum;
    return 0;
}

/* step.c - the training step (see thorax/train.h). */
#include "thorax/train.h"

#include <stdlib.h>
#include <string.h>

#include "thorax/util.h"

/* A parameter tensor whose gradient the sync carries: trainable, of a layer
 * not frozen. */
static int synced(const th_model *m, const th_tensor_info *t)
{
    return t->trainable && !m->layers[t->layer].frozen;
}

int th_model_grad_sync_init(th_grad_sync *sync, th_comm comm, const th_model *m, size_t bucket_floats, th_err *err)
{
    size_t cap = (size_t)m->n_tensors + 1;
    th_span *spans = malloc(sizeof *spans * cap);
    size_t *cuts = malloc(sizeof *cuts * cap);
    if (!spans || !cuts) {
        free(spans);
        free(cuts);
        return th_errf(err, "out of memory for the gradient layout of %d tensors", m->n_tensors);
    }
    /* The hook reports whole layers, so a bucket may end only where a synced
     * layer's lowest tensor starts. */
    int n_spans = 0, n_cuts = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const th_tensor_info *t = &m->tensors[i];
        if (!synced(m, t)) continue;
        spans[n_spans++] = (th_span){t->offset, t->count};
        int lowest = 1;
        for (int j = 0; j < m->n_tensors && lowest; j++) {
            const th_tensor_info *u = &m->tensors[j];
            if (synced(m, u) && u->layer == t->layer && u->offset < t->offset) lowest = 0;
        }
        if (lowest) cuts[n_cuts++] = t->offset;
    }
    int rc = th_grad_sync_init(sync, comm, m->grads, m->n_params, spans, n_spans, cuts, n_cuts, bucket_floats, err);
    free(spans);
    free(cuts);
    return rc;
}

int th_step_resync(th_step *s, th_err *err)
{
    th_model_set_grads_hook(s->model, NULL, NULL);
    th_grad_sync_free(&s->sync);
    if (th_model_grad_sync_init(&s->sync, s->comm, s->model, s->bucket_floats, err)) return -1;
    th_model_set_grads_hook(s->model, th_grad_sync_ready, &s->sync);
    return 0;
}

int th_step_init(th_step *s, th_comm comm, th_model *m, th_optim *opt, th_loss_type loss, int n_labels,
                 const float *w_pos, const float *w_neg, int batch, size_t bucket_floats, th_err *err)
{
    memset(s, 0, sizeof *s);
    s->comm = comm;
    s->rank = th_dist_rank(comm);
    s->size = th_dist_size(comm);
    s->model = m;
    s->opt = opt;
    s->loss = loss;
    s->n_labels = n_labels;
    s->w_pos = w_pos;
    s->w_neg = w_neg;
    s->bucket_floats = bucket_floats;
    s->dz = malloc(sizeof *s->dz * (size_t)(batch > 0 ? batch : 1) * (size_t)n_labels);
    s->red = malloc(sizeof *s->red * (m->n_buffers + 3));
    if (!s->dz || !s->red) {
        th_step_free(s);
        return th_errf(err, "out of memory for a training step of %d images", batch);
    }
    if (th_model_grad_sync_init(&s->sync, comm, m, bucket_floats, err)) {
        th_step_free(s);
        return -1;
    }
    th_model_set_grads_hook(m, th_grad_sync_ready, &s->sync);
    return 0;
}

int th_step_gradients(th_step *s, const float *x, const uint8_t *y, int n, long global_n, uint64_t seed, long step,
                      int stop, int failed, th_step_out *out, th_err *err)
{
    th_model *m = s->model;
    /* Dropout masks from (seed, step, rank): no RNG state to carry across a resume. */
    th_rng_seed(&m->rng, seed, 0xD0000000000ULL + (uint64_t)step * 4096 + (uint64_t)s->rank);
    const float *logits = th_model_forward(m, x, n, 1);
    double loss = n ? th_loss(s->loss, n, s->n_labels, logits, y, s->w_pos, s->w_neg, s->dz) : 0.0;
    if (s->unknowns) {
        /* The mean over the known entries of the global batch (thorax/nn.h):
         * the sync divides by global_n, so the gradient is scaled by
         * global_n * L / known first, the same factor on every rank. */
        double known = n ? (double)th_label_known(n, s->n_labels, y) : 0.0;
        th_dist_sum(s->comm, &known, 1);
        double scale = known > 0 ? (double)global_n * s->n_labels / known : 0.0;
        for (size_t i = 0; i < (size_t)n * (size_t)s->n_labels; i++) s->dz[i] = (float)(s->dz[i] * scale);
        loss *= scale;
    }
    /* Starts the gradient buckets as their layers finish (the hook). */
    th_model_backward(m, x, s->dz, n);
    /* From here the step only waits for communication. */
    double t0 = th_now();
    if (th_grad_sync_finish(&s->sync, global_n, err)) return -1;
    /* The batch-norm running statistics (each rank's moved with its own
     * images; their mean is the global batch's, and every rank then holds
     * the same, so validation on any rank, and a checkpoint written by rank
     * 0 and resumed on every rank, see what the run had), the loss and the
     * flags: one allreduce. Doubles, so that the loss sum keeps its
     * precision; a float statistic summed as a double and rounded once
     * gives the float sum's bits on 2 ranks. One rank has no statistics to
     * share. */
    size_t nb = s->size > 1 ? m->n_buffers : 0;
    double *red = s->red;
    for (size_t i = 0; i < nb; i++) red[i] = (double)m->buffers[i];
    red[nb] = loss;
    red[nb + 1] = stop ? 1.0 : 0.0;
    red[nb + 2] = failed ? 1.0 : 0.0;
    th_dist_sum(s->comm, red, (int)(nb + 3));
    for (size_t i = 0; i < nb; i++) m->buffers[i] = (float)(red[i] / s->size);
    out->comm_s = th_now() - t0;
    out->loss = global_n > 0 ? red[nb] / (double)global_n : 0.0;
    out->stop = red[nb + 1] > 0;
    out->failed = red[nb + 2] > 0;
    return 0;
}

int th_step_grads_finite(const th_step *s) { return th_grad_sync_finite(&s->sync); }

void th_step_update(th_step *s, float lr) { th_optim_step(s->opt, s->model->params, s->model->grads, lr); }

void th_step_free(th_step *s)
{
    if (s->model && s->model->on_grads_ctx == &s->sync) th_model_set_grads_hook(s->model, NULL, NULL);
    th_grad_sync_free(&s->sync);
    free(s->dz);
    free(s->red);
    s->dz = NULL;
    s->red = NULL;
}

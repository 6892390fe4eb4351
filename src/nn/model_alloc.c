/* model_alloc.c - where a model's activations live: which layers run fused
 * (sharing or skipping an output buffer), where each output's gradient is
 * gathered during backward, and the one arena every activation buffer is
 * carved from (see arena.h, and thorax/nn.h for why one block). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "arena.h"
#include "model_impl.h"
#include "thorax/util.h"

/* How many layers read each layer's output: users[j + 1] for layer j,
 * users[0] for the image. */
static void count_users(const th_model *m, int *users)
{
    memset(users, 0, sizeof *users * (size_t)(m->n_layers + 1));
    for (int i = 0; i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i].n_in; k++) users[m->layers[i].in[k] + 1]++;
}

/* Layer j's output is read by layer j + 1 alone: a link of a plain chain. */
static int chain_link(const th_model *m, const int *users, int j)
{
    return users[j + 1] == 1 && j + 1 < m->n_layers && m->layers[j + 1].n_in == 1 && m->layers[j + 1].in[0] == j;
}

/* A convolution followed by a ReLU runs as one layer: the convolution applies
 * max(0, .) in its output pass and the ReLU's derivative in its backward, and
 * both layers share one output buffer. That saves two passes over the
 * largest tensors of the network and half their memory. When a 2x2 max-pool
 * follows, it joins too: each block of the conv's output is pooled while in
 * cache and the conv's output is never stored
 * (th_conv_forward_pool). Only where nothing else reads the conv's (or the
 * ReLU's) output, and never when the group would end the network: backward
 * must not write into the caller's dlogits. Each layer of a group has the
 * group's flags. */
void th_model_fuse(th_model *m)
{
    int users[m->n_layers + 1];
    count_users(m, users);
    for (int i = 0; i + 2 < m->n_layers; i++) {
        th_layer *L = &m->layers[i], *R = &m->layers[i + 1], *P = &m->layers[i + 2];
        if (L->spec.type != TH_LAYER_CONV || R->spec.type != TH_LAYER_RELU || !chain_link(m, users, i)) continue;
        L->fused = R->fused = TH_FUSED_RELU;
        if (i + 3 < m->n_layers && P->spec.type == TH_LAYER_MAXPOOL && P->spec.k == 2 && P->spec.stride == 2 &&
            P->spec.pad == 0 && chain_link(m, users, i + 1))
            L->fused = R->fused = P->fused = TH_FUSED_RELU | TH_FUSED_POOL;
    }
    /* A batch-norm followed by a ReLU (ResNet's bn1 -> relu, DenseNet's
     * norm -> relu) runs as one layer too: the statistics, then one pass
     * writing max(0, gamma * xhat + beta) into the ReLU's output; backward
     * takes the ReLU's mask in its sums pass (batchnorm.h). The batch-norm's
     * output and xhat are never stored: forward saves writing both and the
     * ReLU's pass over the output, backward the ReLU's pass, and the group
     * two buffers of the tensor's size. Same conditions as above: the ReLU
     * is the batch-norm's only reader, and not the last layer. */
    for (int i = 0; i + 2 < m->n_layers; i++) {
        th_layer *L = &m->layers[i], *R = &m->layers[i + 1];
        if (L->spec.type != TH_LAYER_BATCHNORM || R->spec.type != TH_LAYER_RELU || !chain_link(m, users, i)) continue;
        L->fused = R->fused = TH_FUSED_BNRELU;
    }
    /* A residual add followed by a ReLU (ResNet's block ends): the add's
     * last input pass applies max(0, .) and the ReLU works in place in the
     * add's output, as after a conv; backward hands each input dy where that
     * output is positive, in the copy the add makes anyway. Saves the
     * ReLU's pass each way. */
    for (int i = 0; i + 2 < m->n_layers; i++) {
        th_layer *L = &m->layers[i], *R = &m->layers[i + 1];
        if (L->spec.type != TH_LAYER_ADD || R->spec.type != TH_LAYER_RELU || !chain_link(m, users, i)) continue;
        L->fused = R->fused = TH_FUSED_ADDRELU;
    }
}

/* The gradient slots (model_impl.h): along a chain, alternating; inside a
 * fused group, where the group's last layer got it. */
void th_model_assign_slots(th_model *m)
{
    int users[m->n_layers + 1];
    count_users(m, users);
    int next = SLOT_OWN; /* where the gradient of layer j + 1 is: the last layer's is the caller's dlogits */
    for (int j = m->n_layers - 2; j >= -1; j--) {
        const th_layer *R = &m->layers[j + 1];
        int slot = SLOT_OWN;
        if (fused_tail(R)) slot = next;
        else if (chain_link(m, users, j)) slot = next == SLOT_A ? SLOT_B : SLOT_A;
        if (j >= 0) m->layers[j].grad_slot = slot;
        else m->in_slot = slot;
        next = slot;
    }
    m->layers[m->n_layers - 1].grad_slot = SLOT_OWN;
}

/* n images of per_image elements each, SIZE_MAX if that overflows (the
 * arena then reports the batch as too large). */
static size_t batch_count(const th_model *m, size_t per_image)
{
    size_t n = (size_t)m->max_batch;
    return per_image <= SIZE_MAX / n ? n * per_image : SIZE_MAX;
}

/* Every buffer a step writes, for max_batch images, taken from the arena in
 * one fixed order (see arena.h): the sizing walk leaves every pointer NULL,
 * the carving walk points each into the block. What a layer has depends on
 * its type, its fusion (th_model_fuse) and its gradient slot
 * (th_model_assign_slots), which must not change between the two walks. */
static void take_activations(th_model *m, th_arena *a)
{
    size_t max_act = 0;
    for (int i = 0; i < m->n_layers; i++) {
        th_layer *L = &m->layers[i];
        const size_t out = batch_count(m, layer_out_size(L)), in = batch_count(m, layer_in_size(L));
        const size_t c = (size_t)L->in_c;
        if (in > max_act) max_act = in;
        if (out > max_act) max_act = out;
        const th_layer_type type = L->spec.type;
        /* A ReLU fused with a conv (an add) works in place, in the
         * convolution's (add's) output, which does not exist at all when the
         * pool is fused too; a batch-norm fused with its ReLU writes the
         * ReLU's output only. */
        const int pooled = (L->fused & TH_FUSED_POOL) && type != TH_LAYER_MAXPOOL;
        const int bnrelu = (L->fused & TH_FUSED_BNRELU) != 0;
        if ((L->fused & (TH_FUSED_RELU | TH_FUSED_ADDRELU)) && type == TH_LAYER_RELU)
            L->y = pooled ? NULL : m->layers[i - 1].y;
        else if (bnrelu && type == TH_LAYER_BATCHNORM) L->y = NULL;
        else L->y = pooled ? NULL : th_arena_take(a, out, sizeof(float), L->name, "y"); /* [N, out_c, out_h, out_w] */
        /* The gradient of an output read by several layers (or a later one). */
        const int own = L->grad_slot == SLOT_OWN && i + 1 < m->n_layers;
        L->dy_own = own ? th_arena_take(a, out, sizeof(float), L->name, "dy") : NULL; /* [N, out_c, out_h, out_w] */
        L->argmax = type == TH_LAYER_MAXPOOL ? th_arena_take(a, out, sizeof(int32_t), L->name, "argmax") : NULL;
        L->mask = type == TH_LAYER_DROPOUT ? th_arena_take(a, out, sizeof(uint8_t), L->name, "mask") : NULL;
        const int bn = type == TH_LAYER_BATCHNORM;
        L->xhat = bn && !bnrelu ? th_arena_take(a, in, sizeof(float), L->name, "xhat") : NULL; /* [N, C, H, W] */
        L->mean = bn ? th_arena_take(a, c, sizeof(float), L->name, "mean") : NULL;           /* [C] */
        L->invstd = bn ? th_arena_take(a, c, sizeof(float), L->name, "invstd") : NULL;       /* [C] */
        L->frozen_dstat = bn ? th_arena_take(a, 2 * c, sizeof(float), L->name, "frozen_dstat") : NULL; /* [2, C] */
    }
    const size_t image = (size_t)m->spec.c * m->spec.h * m->spec.w;
    m->grad_in = m->in_slot == SLOT_OWN ? th_arena_take(a, batch_count(m, image), sizeof(float), NULL, "grad_in") : NULL;
    m->grad_a = th_arena_take(a, max_act, sizeof(float), NULL, "grad_a"); /* [N x the largest activation] */
    m->grad_b = th_arena_take(a, max_act, sizeof(float), NULL, "grad_b");
    m->gsrc = th_arena_take(a, (size_t)m->n_layers + 1, sizeof(float *), NULL, "gsrc");
}

int th_model_new_arena(th_model *m, th_err *err)
{
    th_arena a;
    th_arena_begin(&a, NULL);
    take_activations(m, &a);
    const size_t total = a.used;
    char *block = th_arena_alloc(&a, "activations", m->max_batch, err);
    if (!block) {
        if (err) {
            size_t len = strlen(err->msg);
            snprintf(err->msg + len, sizeof err->msg - len, "; lower train.batch_per_rank");
        }
        return th_err_prefix(err, "model: ");
    }
    th_arena_begin(&a, block);
    take_activations(m, &a);
    TH_ASSERT(a.used == total);
    m->act_arena = block;
    m->act_bytes = total;
    return 0;
}

int th_model_keep_output(th_model *m, int layer, th_err *err)
{
    if (layer < 0 || layer >= m->n_layers || !m->layers[layer].fused) return 0;
    th_layer *K = &m->layers[layer];
    if (K->spec.type == TH_LAYER_MAXPOOL) return 0;  /* the pool's output is always written */
    /* ... and so is the ReLU's after a batch-norm or an add. */
    if ((K->fused & (TH_FUSED_BNRELU | TH_FUSED_ADDRELU)) && K->spec.type == TH_LAYER_RELU) return 0;
    int g = K->spec.type == TH_LAYER_RELU ? layer - 1 : layer;
    th_layer *L = &m->layers[g], *R = &m->layers[g + 1];
    const int was = L->fused;
    if (L->fused & TH_FUSED_POOL) {
        /* Back to conv+ReLU sharing one buffer, the pool on its own. */
        L->fused = R->fused = TH_FUSED_RELU;
        m->layers[g + 2].fused = 0;
    }
    /* The conv's (batch-norm's, add's) own output apart from the ReLU's;
     * otherwise the ReLU's output is the shared buffer. */
    if (K == L) L->fused = R->fused = 0;
    th_model_assign_slots(m);
    /* The layout follows from the fusions, so the arena is laid out anew:
     * a few buffers more than before, and re-carving keeps every activation
     * in the one block. On failure the old layout is restored in the old
     * block, which the walk reproduces exactly. */
    void *old = m->act_arena;
    if (th_model_new_arena(m, err)) {
        L->fused = R->fused = was;
        if (was & TH_FUSED_POOL) m->layers[g + 2].fused = was;
        th_model_assign_slots(m);
        th_arena a;
        th_arena_begin(&a, old);
        take_activations(m, &a);
        return th_err_prefix(err, "keeping the output of layer %s: ", K->name);
    }
    th_free_aligned(old);
    return 0;
}


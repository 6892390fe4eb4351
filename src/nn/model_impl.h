/* model_impl.h - what model.c and model_alloc.c share (private to src/nn). */
#ifndef THORAX_NN_MODEL_IMPL_H
#define THORAX_NN_MODEL_IMPL_H

#include <stddef.h>

#include "thorax/nn.h"

static inline size_t layer_in_size(const th_layer *L) { return (size_t)L->in_c * L->in_h * L->in_w; }
static inline size_t layer_out_size(const th_layer *L) { return (size_t)L->out_c * L->out_h * L->out_w; }

/* Where the gradient of each output lives during backward. Along a chain
 * (a layer read only by the next one) it is consumed as soon as it is made,
 * so two buffers serve every link, alternating (SLOT_A, SLOT_B); an output
 * read by several layers (a residual's input, a dense block's
 * concatenation) or by a later one gathers its gradient in a buffer of its
 * own (SLOT_OWN) over several steps of the walk. Inside a fused group the
 * ReLU and the pool hand their gradient down unchanged (backward_range), so
 * the group's conv (batch-norm, add) reads it where the group's last layer
 * got it: the head's input alternates with that. */
enum { SLOT_A = 0, SLOT_B = 1, SLOT_OWN = 2 };

/* A layer that runs inside the pass of the layer heading its fused group
 * (a conv, a batch-norm or an add): the group's ReLU and pool. */
static inline int fused_tail(const th_layer *L)
{
    return L->fused && (L->spec.type == TH_LAYER_RELU || L->spec.type == TH_LAYER_MAXPOOL);
}

/* Marks the fused groups (th_layer.fused): see model_alloc.c. */
void th_model_fuse(th_model *m);

/* Sets every layer's grad_slot and the image's in_slot from the graph and
 * the fusions; after th_model_fuse, and again whenever a fusion is undone. */
void th_model_assign_slots(th_model *m);

/* Sizes the activations, allocates their arena (m->act_arena, act_bytes) and
 * carves every activation pointer from it. The old arena, if any, is the
 * caller's to free; on failure the activation pointers are NULL, act_arena
 * and act_bytes are unchanged and err states the total. */
int th_model_new_arena(th_model *m, th_err *err);

#endif

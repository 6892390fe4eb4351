/* model.h - a CNN built from the config's layer list: a chain of layers, or
 * a graph where a layer names its inputs (`from:`), as residual and dense
 * blocks do.
 *
 * All trainable parameters live in one contiguous buffer (params) and all
 * their gradients in another of the same layout (grads), so one allreduce
 * moves every gradient and one optimiser call updates every parameter.
 * Non-trainable state (batch-norm running statistics) lives in `buffers`.
 * Every tensor has a PyTorch-style name (conv1.weight, bn1.running_mean,
 * fc.bias) listed in `tensors`, which is what checkpoints are written from.
 *
 * Activations for max_batch images are sized once at creation, and every
 * buffer a step writes (outputs, batch-norm and pooling state, dropout
 * masks, activation gradients) is carved from one 64-byte aligned block,
 * the activation arena (act_arena, act_bytes), so a batch too large states
 * its whole cost at once. Forward and backward never allocate. Parameters,
 * gradients and buffers are one block each of their own; the kernels'
 * workspace is separate too, as th_model_set_threads resizes it.
 */
#ifndef THORAX_MODEL_H
#define THORAX_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "thorax/error.h"
#include "thorax/rng.h"
#include "thorax/spec.h"
#include "thorax/workspace.h"

/* One layer of the expanded network: blocks become the layers they are made
 * of, each named under its block as torchvision names them (a resblock
 * "layer1.0" gives layer1.0.conv1, layer1.0.bn1 ... layer1.0.downsample.0 and
 * ends in a ReLU named layer1.0 itself, so `from: layer1.0` and
 * `--layer layer1.0` mean the block's output). Nodes are in an order where
 * every input comes before its reader. */
typedef struct th_node {
    th_layer_spec spec;     /* a primitive type; spec.name is the final, unique name */
    int in[TH_MAX_FROM];    /* the nodes it reads, in order; -1 = the input image */
    int n_in;
    int origin;             /* the model.layers entry it was expanded from */
    int c, h, w;            /* output shape of one image (dense and gap: {features, 1, 1}) */
} th_node;

typedef struct th_graph {
    int n;
    th_node *nodes;
} th_graph;

/* Expands the blocks, names every layer, resolves `from:` and walks the
 * shapes: checks that every layer fits what it receives, that every output
 * but the last is read by some layer, and that the network ends in
 * [n_labels] outputs per image. An error names the model.layers entry (its
 * number, type, name and config line). n_labels <= 0 leaves `out: labels`
 * as 1 and skips the final check. Allocates g->nodes (th_graph_free). */
int th_model_graph(const th_model_spec *spec, int n_labels, th_graph *g, th_err *err);
void th_graph_free(th_graph *g);

/* th_model_graph for its checks alone. */
int th_model_spec_check(const th_model_spec *spec, int n_labels, th_err *err);

/* Layers that run as one pass (th_layer.fused): a conv and the ReLU after
 * it (one shared output buffer); with TH_FUSED_POOL the 2x2 max-pool after
 * those as well (the conv's output is never stored: y is NULL for the conv
 * and the ReLU). */
#define TH_FUSED_RELU 1
#define TH_FUSED_POOL 2

typedef struct th_layer {
    th_layer_spec spec;
    char name[TH_NAME_MAX];
    int in_c, in_h, in_w;       /* per-image input shape (dense: in_c = features, h = w = 1) */
    int out_c, out_h, out_w;    /* per-image output shape */
    size_t w_off, b_off;        /* into params/grads (conv, dense, bn gamma/beta); SIZE_MAX if none */
    size_t rm_off, rv_off;      /* into buffers (bn running mean/var) */
    float *y;                   /* output activations [max_batch, out_c, out_h, out_w] */
    int32_t *argmax;            /* maxpool [max_batch, out] */
    float *xhat;                /* batch-norm normalised input [max_batch, C, HW] */
    float *mean, *invstd;       /* batch-norm batch statistics [C] */
    uint8_t *mask;              /* dropout [max_batch, out] */
    double flops;               /* forward multiply-adds x2 per image */
    int fused;                  /* TH_FUSED_* flags of the group this layer runs in (model_alloc.c) */
    int in[TH_MAX_FROM], n_in;  /* layers it reads (-1 = the input image), from th_node */
    int origin;                 /* the model.layers entry it comes from */
    int frozen;                 /* th_model_freeze: no parameter gradients */
    int grad_slot;              /* where the gradient of its output lives during backward (model_alloc.c) */
    float *dy_own;              /* that gradient, when it needs a buffer of its own [max_batch, out] */
    float *frozen_dstat;        /* frozen batch-norm: its unused dgamma, dbeta [2, C] */
} th_layer;

typedef struct th_tensor_info {
    char name[TH_NAME_MAX + 24];
    int ndim;
    int shape[4];
    size_t offset, count;       /* into params (trainable) or buffers (not) */
    int trainable;
    int layer;                  /* index into th_model.layers */
} th_tensor_info;

/* Told during th_model_backward as soon as a layer's parameter gradients are
 * final: grads[offset, offset + count). Layers finish from the last to the
 * first, so the ranges arrive in decreasing offset order and together cover
 * grads exactly once per backward. This is how gradient communication starts
 * while the rest of the backward pass still runs (see thorax/dist.h). */
typedef void (*th_grads_ready_fn)(void *ctx, size_t offset, size_t count);

typedef struct th_model {
    th_model_spec spec;
    int n_labels;
    int n_layers;
    th_layer *layers;
    int max_batch;
    size_t n_params;
    float *params, *grads;      /* [n_params] each */
    size_t n_buffers;
    float *buffers;             /* [n_buffers] */
    int n_tensors;
    th_tensor_info *tensors;
    th_workspace ws;            /* per-thread kernel scratch; ws.threads is the team size */
    size_t ws_floats;           /* per-thread scratch the largest layer needs */
    float *grad_a, *grad_b;     /* ping-pong activation gradients [max_batch * largest activation] */
    float *grad_in;             /* the image's gradient when several layers read it [max_batch, C, H, W] */
    int in_slot;                /* its grad_slot */
    float **gsrc;               /* backward: where each output's gradient is, the image's first [n_layers + 1] */
    void *act_arena;            /* the block every pointer above marked [max_batch, ...] (y, argmax,
                                 * xhat, mean, invstd, mask, dy_own, frozen_dstat, grad_a, grad_b,
                                 * grad_in) and gsrc are carved from */
    size_t act_bytes;           /* its size: the activations' memory for max_batch images */
    th_rng rng;                 /* dropout masks */
    int last_train;             /* mode of the last th_model_forward, which backward follows */
    th_grads_ready_fn on_grads; /* NULL: nobody listens (th_model_set_grads_hook) */
    void *on_grads_ctx;
} th_model;

int th_model_create(th_model *m, const th_model_spec *spec, int n_labels, int max_batch, th_err *err);
void th_model_free(th_model *m);

/* Runs the layers on `threads` OpenMP threads (1 after th_model_create),
 * each taking a block of the batch's images. Not for the hot path: sizes
 * the per-thread scratch. */
int th_model_set_threads(th_model *m, int threads, th_err *err);

/* Keeps layer's own output readable in m->layers[layer].y after a forward,
 * for a caller that reads it (Grad-CAM on a convolution): by default a
 * convolution followed by a ReLU is fused and its y holds the ReLU's output,
 * and with a 2x2 max-pool after them neither has a y at all.
 * Allocates a new activation arena with room for the extra output(s) and
 * frees the old one, so every pointer into it changes and its contents are
 * lost: call after th_model_create, before the first forward. On failure the
 * model is left as it was. */
int th_model_keep_output(th_model *m, int layer, th_err *err);

/* He (Kaiming) normal initialisation of conv and dense weights (std =
 * sqrt(2/fan_in)), zero biases, batch-norm gamma 1, beta 0, running mean 0,
 * running var 1. Seeds the dropout RNG too. Deterministic in seed. */
void th_model_init_params(th_model *m, uint64_t seed);

/* x [n, C, H, W] -> logits [n, n_labels] (a pointer into the last layer's
 * output). train selects batch statistics and dropout. n may be 0. */
const float *th_model_forward(th_model *m, const float *x, int n, int train);

/* Backward after a forward on the same x (train mode): dlogits [n, n_labels]
 * -> grads (overwritten). After an eval-mode forward, batch-norm differentiates
 * its running statistics as constants and dropout is the identity. */
void th_model_backward(th_model *m, const float *x, const float *dlogits, int n);

/* One layer's forward (as th_model_forward runs it, reading the previous
 * layer's output, or x for layer 0) and backward (dy [n, out] -> dx [n, in],
 * dx NULL for no input gradient; dy may be overwritten). For benchmarks that
 * time layers one by one; the ReLU's and pool's calls in a fused group do
 * nothing (the group's conv does their work). */
void th_model_layer_forward(th_model *m, int i, const float *x, int n, int train);
void th_model_layer_backward(th_model *m, int i, const float *x, float *dy, float *dx, int n);

/* Freezes (frozen = 1) or thaws layer i's parameters: a frozen layer's
 * backward computes no parameter gradients (its range of grads is left as
 * it is) and the grads hook is not told of it; the gradient still flows
 * through it to the layers below. Batch-norm running statistics still
 * follow train-mode forwards. */
void th_model_freeze(th_model *m, int layer, int frozen);

/* Sets (or, with fn NULL, clears) the listener told of each layer's finished
 * gradients during th_model_backward. th_model_grad_at never tells it. */
void th_model_set_grads_hook(th_model *m, th_grads_ready_fn fn, void *ctx);

/* Activation gradient for attribution maps (Grad-CAM, saliency). After a
 * forward on the same x (either mode, n >= 1), back-propagates dlogits
 * [n, n_labels] down to the output of layer `layer` and returns d/d(that
 * output) [n, out_c, out_h, out_w]; layer == -1 returns the gradient with
 * respect to x itself [n, C, H, W]. The result lives in grad_a or grad_b
 * (or is dlogits itself when layer is the last one) and is valid until the
 * next forward or backward. Overwrites the grads of the layers after
 * `layer` (all of them for -1) as a side effect; never allocates. */
const float *th_model_grad_at(th_model *m, const float *x, const float *dlogits, int n, int layer);

/* Index into m->tensors of the tensor with that name, or -1. */
int th_model_find_tensor(const th_model *m, const char *name);
/* Pointer to a tensor's data (in params or buffers). */
float *th_model_tensor_data(th_model *m, int i);

/* Forward FLOPs of one image (multiply and add counted as 2). */
double th_model_flops(const th_model *m);

#endif

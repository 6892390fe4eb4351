/* nn.h - the network: layers, the model built from a spec, losses, optimisers.
 *
 *   th_model m;
 *   th_model_create(&m, &spec, n_labels, max_batch, &err);   // sizes every buffer once
 *   th_model_init_params(&m, seed);                           // He init, deterministic
 *   const float *z = th_model_forward(&m, x, n, 1);           // x [n,C,H,W] -> logits [n,L]
 *   th_loss(TH_LOSS_WEIGHTED_BCE, n, L, z, y, w_pos, w_neg, dz);
 *   th_model_backward(&m, x, dz, n);                          // -> m.grads, one flat buffer
 *   th_optim_step(&opt, m.params, m.grads, lr);
 *   th_model_free(&m);
 *
 * Needs only BLAS, OpenMP and libc: no MPI, HDF5 or YAML. The gradient
 * reduction sees m.params/m.grads as flat spans (thorax/dist.h); the
 * checkpoint reads the named tensors of m.tensors. The layer kernels
 * (convolution, pooling, batch-norm...) are private to src/nn.
 */
#ifndef THORAX_NN_H
#define THORAX_NN_H

#include <stddef.h>
#include <stdint.h>
#include "thorax/util.h"
#include "thorax/spec.h"

/* ------------------------------------------------------------------------- */
/* Multi-label and multi-class losses, and class weights.
 *
 * Conventions: z [N, L] logits, y [N, L] uint8 0/1 labels.
 * A loss function returns the SUM over the N images of each image's loss, and
 * writes dz = d(sum)/dz. The trainer divides by the number of images in the
 * global batch after the gradients have been summed across ranks, so uneven
 * shards still give the exact mean.
 *
 * Weighted BCE, per image: sum over labels l of
 *   -( w_pos[l] * y * log(sigmoid(z)) + w_neg[l] * (1 - y) * log(1 - sigmoid(z)) )
 * computed from logits with log-sum-exp so it never takes log(0).
 * Plain BCE is the same with every weight 1.
 *
 * Unknown labels: an entry y = TH_LABEL_UNKNOWN (thorax/util.h) adds neither
 * loss nor gradient (dz = 0) to any loss. The trainer then takes the mean
 * over the known entries: loss = L * (sum over the known entries of the
 * global batch) / (their number), which is the sum over images / N above
 * when every label is known (see th_step_gradients).
 */
/* Fraction of positive images per label among the images where it is known:
 * freq_pos[l] = (images with y[n,l] = 1) / (images with y[n,l] known). */
void th_label_freq(int n, int l, const uint8_t *y, double *freq_pos);

/* The number of known entries (not TH_LABEL_UNKNOWN) of y [n, l]. */
long th_label_known(int n, int l, const uint8_t *y);

/* The seeds' class weights: w_pos = freq_neg = 1 - freq_pos, w_neg = freq_pos,
 * so each label's positives and negatives contribute equally to the loss. */
void th_class_weights(int l, const double *freq_pos, float *w_pos, float *w_neg);

/* Weighted BCE on logits (see above). dz may be NULL. */
double th_wbce_logits(int n, int l, const float *z, const uint8_t *y,
                      const float *w_pos, const float *w_neg, float *dz);

/* The seeds' formula on probabilities p [N, L] with an epsilon inside the log:
 * sum over labels of the MEAN over images (those where the label is known) of
 *   -( w_pos * y * log(p + eps) + w_neg * (1 - y) * log(1 - p + eps) ).
 * Kept to reproduce their worked examples; training uses th_wbce_logits. */
double th_wbce_probs(int n, int l, const float *p, const uint8_t *y,
                     const float *w_pos, const float *w_neg, float eps);

/* Softmax cross-entropy; y is one-hot [N, L] (the class is the first 1).
 * dz may be NULL. */
double th_softmax_ce(int n, int l, const float *z, const uint8_t *y, float *dz);

/* Dispatch on the configured loss. w_pos/w_neg are used by the weighted BCE only. */
double th_loss(th_loss_type type, int n, int l, const float *z, const uint8_t *y,
               const float *w_pos, const float *w_neg, float *dz);

/* Turns logits into the probabilities the loss implies: sigmoid per label, or
 * softmax over labels for TH_LOSS_SOFTMAX_CE. p may alias z. */
void th_loss_probs(th_loss_type type, int n, int l, const float *z, float *p);

/* ------------------------------------------------------------------------- */
/* SGD (momentum, Nesterov, weight decay) and Adam, with PyTorch's
 * update rules, over one flat parameter buffer.
 *
 * SGD:  g = grad + wd*p;  buf = mu*buf + g;  g = nesterov ? g + mu*buf : buf;  p -= lr*g
 * Adam: g = grad + wd*p;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
 *       p -= lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps)
 *
 * The optimiser updates groups: runs of the buffer, each with its own state
 * and step count. After th_optim_init one group covers the whole buffer.
 * Fine-tuning narrows them (th_optim_set_groups): parameters outside every
 * group are frozen, and get no update, no weight decay and no state at all.
 */
/* params [offset, offset + count) and their state m [state, state + count)
 * (and v likewise). t counts the group's own steps, which Adam's bias
 * correction uses: PyTorch keeps a step per parameter, so a parameter that
 * starts training late starts its correction at step 1, not at the run's
 * step (which would make its first steps about 3x too long). */
typedef struct th_optim_group {
    size_t offset, count;
    size_t state;
    long t;
} th_optim_group;

typedef struct th_optim {
    th_optim_config cfg;
    size_t n;                /* length of the parameter buffer */
    int n_groups;
    th_optim_group *groups;  /* increasing offsets, disjoint */
    size_t n_state;          /* floats of state per slot: the groups' counts summed */
    float *m;                /* SGD momentum buffer, or Adam first moment [n_state] */
    float *v;                /* Adam second moment [n_state]; NULL for SGD */
    long t;                  /* steps taken */
} th_optim;

/* One group over params [0, n). */
int th_optim_init(th_optim *o, const th_optim_config *cfg, size_t n, th_err *err);

/* From now on the optimiser updates exactly params [offset[k], offset[k] +
 * count[k]) for k < n_groups (increasing, disjoint, non-empty, within
 * [0, n)); everything else is frozen. A group lying inside a current one
 * keeps its state and step count; any other starts from zero state at t = 0
 * (PyTorch creates a parameter's state at its first update). n_groups may be
 * 0. Allocates: call it between steps, never in one. On failure o is as it
 * was. */
int th_optim_set_groups(th_optim *o, int n_groups, const size_t *offset, const size_t *count, th_err *err);

/* The group holding params [offset, offset + count) whole, or NULL (frozen). */
th_optim_group *th_optim_find(const th_optim *o, size_t offset, size_t count);

/* One update of every group with learning rate lr (the schedule's, not cfg.lr). */
void th_optim_step(th_optim *o, float *params, const float *grads, float lr);
void th_optim_free(th_optim *o);

/* ------------------------------------------------------------------------- */
/* A CNN built from the config's layer list: a chain of layers, or
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
/* One layer of the expanded network: blocks become the layers they are made
 * of, each named under its block as torchvision names them (a resblock
 * "layer1.0" gives layer1.0.conv1, layer1.0.bn1 ... layer1.0.downsample.0 and
 * ends in a ReLU named layer1.0 itself, so `from: layer1.0` and
 * `--layer layer1.0` mean the block's output). Nodes are in an order where
 * every input comes before its reader. */
/* Per-thread scratch of the layer kernels (src/nn/workspace.h): `threads`
 * slices of `per_thread` floats, each on its own cache lines. */
typedef struct th_workspace {
    float *buf;
    size_t capacity;    /* floats allocated */
    size_t per_thread;  /* floats in each thread's slice (a multiple of 16) */
    int threads;        /* the kernels' team size */
} th_workspace;

/* Makes OpenBLAS single-threaded for this process: the kernels call it from
 * several threads at once, one per block of images, and its own threads
 * would oversubscribe the cores. Call once, before the first kernel. */
void th_workspace_serial_blas(void);

/* Whether this CPU runs the bf16 GEMMs (runtime.precision: bf16): it needs
 * AVX512_BF16. Without it there is no bf16 path at all, never a slow one. */
int th_nn_bf16_supported(void);
/* This CPU's vector units in a few words, for messages ("AVX-512 without BF16"). */
const char *th_nn_cpu_simd(void);

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
 * and the ReLU); TH_FUSED_BNRELU a batch-norm and the ReLU after it (the
 * batch-norm's output and xhat are never stored: its y and xhat are NULL,
 * the ReLU's y holds the result); TH_FUSED_ADDRELU a residual add and the
 * ReLU after it (one shared output buffer, as conv+ReLU). */
#define TH_FUSED_RELU 1
#define TH_FUSED_POOL 2
#define TH_FUSED_BNRELU 4
#define TH_FUSED_ADDRELU 8

typedef struct th_layer {
    th_layer_spec spec;
    char name[TH_NAME_MAX];
    int in_c, in_h, in_w;       /* per-image input shape (dense: in_c = features, h = w = 1) */
    int out_c, out_h, out_w;    /* per-image output shape */
    size_t w_off, b_off;        /* into params/grads (conv, dense, bn gamma/beta); SIZE_MAX if none */
    size_t rm_off, rv_off;      /* into buffers (bn running mean/var) */
    float *y;                   /* output activations [max_batch, out_c, out_h, out_w] */
    int32_t *argmax;            /* maxpool [max_batch, out] */
    float *xhat;                /* batch-norm normalised input [max_batch, C, HW] (NULL when fused) */
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
    th_precision precision;     /* the conv and dense GEMMs' (th_model_set_precision) */
    th_grads_ready_fn on_grads; /* NULL: nobody listens (th_model_set_grads_hook) */
    void *on_grads_ctx;
} th_model;

int th_model_create(th_model *m, const th_model_spec *spec, int n_labels, int max_batch, th_err *err);
void th_model_free(th_model *m);

/* Runs the layers on `threads` OpenMP threads (1 after th_model_create),
 * each taking a block of the batch's images. Not for the hot path: sizes
 * the per-thread scratch. */
int th_model_set_threads(th_model *m, int threads, th_err *err);

/* The convolutions' and dense layers' GEMMs in fp32 (after
 * th_model_create) or with bf16 inputs and fp32 accumulation (see
 * th_precision, thorax/spec.h); every other computation, the parameters,
 * their gradients and checkpoints stay fp32. bf16 needs a CPU with
 * AVX512_BF16 (th_nn_bf16_supported), or it is an error. Not for the hot
 * path: resizes the per-thread scratch for the bf16 copies. */
int th_model_set_precision(th_model *m, th_precision p, th_err *err);

/* Keeps layer's own output readable in m->layers[layer].y after a forward,
 * for a caller that reads it (Grad-CAM on a convolution or a batch-norm):
 * by default a convolution followed by a ReLU is fused and its y holds the
 * ReLU's output, with a 2x2 max-pool after them neither has a y at all, a
 * batch-norm followed by a ReLU has none either, and a residual add's y
 * holds the ReLU after it.
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
 * nothing (the group's conv, batch-norm or add does their work). */
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

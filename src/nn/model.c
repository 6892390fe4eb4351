/* model.c - a CNN as a graph of layers: parameter layout, forward, backward.
 *
 * The layers come from th_model_graph (model_spec.c), in an order where
 * every layer's inputs come before it, so forward is one walk up the list
 * and backward one walk down. The model owns every buffer a training step
 * touches, sized once for max_batch images at creation, so th_model_forward
 * and th_model_backward never allocate; which layers fuse, where gradients
 * gather and the activation arena are model_alloc.c's. Layer kernels live
 * in conv.c, pool.c, activation.c, batchnorm.c and dense.c; this file only
 * wires them together.
 */
#include "thorax/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"
#include "activation.h"
#include "thorax/util.h"
#include "batchnorm.h"
#include "conv.h"
#include "dense.h"
#include "pool.h"
#include "workspace.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#define NO_OFFSET ((size_t)-1)

/* Elements of a layer's weight tensor (conv [K,C,k,k], dense [O,I], batch-norm [C]). */
static size_t layer_weight_count(const th_layer *L)
{
    switch (L->spec.type) {
    case TH_LAYER_CONV: return (size_t)L->out_c * L->in_c * L->spec.k * L->spec.k;
    case TH_LAYER_DENSE: return (size_t)L->out_c * L->in_c;
    case TH_LAYER_BATCHNORM: return (size_t)L->in_c;
    default: return 0;
    }
}

/* End of a layer's trainable range in params: weight and bias are adjacent
 * (layout_tensors). */
static size_t layer_params_end(const th_layer *L)
{
    return L->b_off != NO_OFFSET ? L->b_off + (size_t)L->out_c : L->w_off + layer_weight_count(L);
}

/* Reserves a named tensor in params (trainable) or buffers (not) and returns
 * its offset there. Shapes are PyTorch's: conv weight [K,C,k,k], dense weight
 * [O,I], biases and batch-norm vectors [C]. */
static size_t add_tensor(th_model *m, int layer, const char *what, int trainable, int ndim, int d0, int d1, int d2,
                         int d3)
{
    th_tensor_info *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s.%s", m->layers[layer].name, what);
    t->layer = layer;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->shape[2] = d2;
    t->shape[3] = d3;
    t->count = 1;
    for (int k = 0; k < ndim; k++) t->count *= (size_t)t->shape[k];
    t->trainable = trainable;
    size_t *end = trainable ? &m->n_params : &m->n_buffers;
    t->offset = *end;
    *end += t->count;
    return t->offset;
}

/* Lays out every tensor: trainable ones in params/grads, running statistics
 * in buffers, in layer order (weight before bias, as PyTorch lists them). */
static void layout_tensors(th_model *m)
{
    for (int i = 0; i < m->n_layers; i++) {
        th_layer *L = &m->layers[i];
        int k = L->spec.k;
        L->w_off = L->b_off = L->rm_off = L->rv_off = NO_OFFSET;
        switch (L->spec.type) {
        case TH_LAYER_CONV:
        case TH_LAYER_DENSE:
            if (L->spec.type == TH_LAYER_CONV) L->w_off = add_tensor(m, i, "weight", 1, 4, L->out_c, L->in_c, k, k);
            else L->w_off = add_tensor(m, i, "weight", 1, 2, L->out_c, L->in_c, 0, 0);
            if (L->spec.bias) L->b_off = add_tensor(m, i, "bias", 1, 1, L->out_c, 0, 0, 0);
            break;
        case TH_LAYER_BATCHNORM:
            L->w_off = add_tensor(m, i, "weight", 1, 1, L->in_c, 0, 0, 0);
            L->b_off = add_tensor(m, i, "bias", 1, 1, L->in_c, 0, 0, 0);
            L->rm_off = add_tensor(m, i, "running_mean", 0, 1, L->in_c, 0, 0, 0);
            L->rv_off = add_tensor(m, i, "running_var", 0, 1, L->in_c, 0, 0, 0);
            break;
        default: break;
        }
    }
}

static void *alloc_floats(size_t n, int *failed)
{
    if (n == 0) return NULL;
    void *p = calloc(n, sizeof(float));
    if (!p) *failed = 1;
    return p;
}

static void conv_dims(const th_model *m, const th_layer *L, int n, th_conv_dims *d)
{
    th_conv_dims_init(d, n, L->in_c, L->in_h, L->in_w, L->out_c, L->spec.k, L->spec.k, L->spec.stride, L->spec.pad);
    d->precision = m->precision;
}

/* Per-thread scratch the largest layer needs in the model's precision: a
 * convolution's (per thread), or a dense layer's bf16 copies for max_batch
 * images (it runs on thread 0's slice). */
static size_t workspace_floats(const th_model *m)
{
    size_t most = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const th_layer *L = &m->layers[i];
        size_t need = 0;
        if (L->spec.type == TH_LAYER_CONV) {
            th_conv_dims d;
            conv_dims(m, L, m->max_batch, &d);
            need = th_conv_workspace_floats(&d);
        } else if (L->spec.type == TH_LAYER_DENSE) {
            need = th_dense_scratch_floats(m->max_batch, L->in_c, L->out_c, m->precision);
        }
        if (need > most) most = need;
    }
    return most;
}

int th_model_set_precision(th_model *m, th_precision p, th_err *err)
{
    if (p == TH_PRECISION_BF16 && !th_nn_bf16_supported())
        return th_errf(err, "bf16 needs a CPU with AVX512_BF16 (this one has %s)", th_nn_cpu_simd());
    const th_precision was = m->precision;
    m->precision = p;
    size_t need = workspace_floats(m);
    if (th_workspace_reserve(&m->ws, m->ws.threads, need, err)) {
        m->precision = was;
        return th_err_prefix(err, "model: precision %s: ", th_precision_names[p]);
    }
    m->ws_floats = need;
    return 0;
}

int th_model_create(th_model *m, const th_model_spec *spec, int n_labels, int max_batch, th_err *err)
{
    memset(m, 0, sizeof *m);
    if (max_batch < 1) return th_errf(err, "model: batch size must be at least 1, got %d", max_batch);
    th_graph g;
    if (th_model_graph(spec, n_labels, &g, err)) return -1;
    m->spec = *spec;
    m->n_labels = n_labels;
    m->max_batch = max_batch;
    m->n_layers = g.n;
    m->layers = calloc((size_t)m->n_layers, sizeof *m->layers);
    /* At most four tensors per layer (batch-norm). */
    m->tensors = calloc((size_t)m->n_layers * 4, sizeof *m->tensors);
    if (!m->layers || !m->tensors) {
        th_graph_free(&g);
        th_model_free(m);
        return th_errf(err, "model: out of memory");
    }
    for (int i = 0; i < m->n_layers; i++) {
        th_layer *L = &m->layers[i];
        const th_node *nd = &g.nodes[i];
        L->spec = nd->spec;
        snprintf(L->name, sizeof L->name, "%s", nd->spec.name);
        L->n_in = nd->n_in;
        memcpy(L->in, nd->in, sizeof L->in);
        L->origin = nd->origin;
        /* The input shape is the first input's (add's inputs all have it). */
        if (nd->in[0] >= 0) {
            const th_node *x = &g.nodes[nd->in[0]];
            L->in_c = x->c, L->in_h = x->h, L->in_w = x->w;
        } else {
            L->in_c = spec->c, L->in_h = spec->h, L->in_w = spec->w;
        }
        L->out_c = nd->c, L->out_h = nd->h, L->out_w = nd->w;
        if (L->spec.type == TH_LAYER_DENSE) {
            /* A dense layer sees its [C,1,1] input as C features. */
            L->in_c = L->in_c * L->in_h * L->in_w;
            L->in_h = L->in_w = 1;
        }
    }
    th_graph_free(&g);
    layout_tensors(m);
    th_model_fuse(m);
    th_model_assign_slots(m);

    for (int i = 0; i < m->n_layers; i++) {
        th_layer *L = &m->layers[i];
        if (L->spec.type == TH_LAYER_CONV) {
            L->flops = 2.0 * L->out_c * L->in_c * L->spec.k * L->spec.k * L->out_h * L->out_w;
        } else if (L->spec.type == TH_LAYER_DENSE) {
            L->flops = 2.0 * L->out_c * L->in_c;
        }
    }
    m->ws_floats = workspace_floats(m);
    int failed = th_model_new_arena(m, err);
    if (!failed) {
        m->params = alloc_floats(m->n_params, &failed);
        m->grads = alloc_floats(m->n_params, &failed);
        m->buffers = alloc_floats(m->n_buffers, &failed);
        if (failed) th_errf(err, "model: out of memory for %zu parameters", m->n_params);
    }
    if (!failed && th_workspace_reserve(&m->ws, 1, m->ws_floats, err)) failed = 1;
    if (failed) {
        th_model_free(m);
        return -1;
    }
    return 0;
}

int th_model_set_threads(th_model *m, int threads, th_err *err)
{
    return th_workspace_reserve(&m->ws, threads, m->ws_floats, err);
}

void th_model_free(th_model *m)
{
    free(m->layers);
    free(m->tensors);
    free(m->params);
    free(m->grads);
    free(m->buffers);
    th_workspace_free(&m->ws);
    th_free_aligned(m->act_arena);
    memset(m, 0, sizeof *m);
}

void th_model_init_params(th_model *m, uint64_t seed)
{
    /* One RNG stream per tensor, so a tensor's initial values do not depend on
     * the sizes of the layers before it. */
    for (int t = 0; t < m->n_tensors; t++) {
        th_tensor_info *ti = &m->tensors[t];
        float *data = th_model_tensor_data(m, t);
        const char *what = strrchr(ti->name, '.') + 1;
        int is_bn = m->layers[ti->layer].spec.type == TH_LAYER_BATCHNORM;
        float fill = 0.0f;
        if (is_bn && (!strcmp(what, "weight") || !strcmp(what, "running_var"))) fill = 1.0f;
        if (!is_bn && !strcmp(what, "weight")) {
            /* He normal: fan_in = all dimensions but the first. */
            size_t fan_in = ti->count / (size_t)ti->shape[0];
            double std = sqrt(2.0 / (double)fan_in);
            th_rng r;
            th_rng_seed(&r, seed, 1000 + (uint64_t)t);
            for (size_t k = 0; k < ti->count; k++) data[k] = (float)(std * th_rng_normal(&r));
            continue;
        }
        for (size_t k = 0; k < ti->count; k++) data[k] = fill;
    }
    th_rng_seed(&m->rng, seed, 999);
}

/* Threads worth starting for n images: no more than there are images. */
static int team(const th_model *m, int n) { return m->ws.threads < n ? m->ws.threads : n; }

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* A layer whose every output image depends only on the same input image
 * (ReLU, pooling, gap), forward (src = its input, dst = L->y) or backward
 * (src = dy [n, out], dst = dx [n, in]): each thread runs the kernel on its
 * own block of images. */
static void image_local(th_model *m, th_layer *L, int backward, const float *src, float *dst, int n)
{
    const int threads = team(m, n);
    const size_t in_sz = layer_in_size(L), out_sz = layer_out_size(L);
    const size_t src_sz = backward ? out_sz : in_sz, dst_sz = backward ? in_sz : out_sz;
    const int c = L->in_c, h = L->in_h, w = L->in_w, k = L->spec.k, s = L->spec.stride;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        int first, end;
        th_workspace_share(n, threads, thread_id(), &first, &end);
        const int nb = end - first;
        const float *in = src + first * src_sz;
        float *out = dst + first * dst_sz;
        const float *y = L->y ? L->y + first * out_sz : NULL;
        int32_t *argmax = L->argmax ? L->argmax + first * out_sz : NULL;
        switch (nb > 0 ? L->spec.type : TH_LAYER_TYPE_COUNT) {
        case TH_LAYER_RELU:
            if (backward) th_relu_backward((size_t)nb * out_sz, y, in, out);
            else th_relu_forward((size_t)nb * out_sz, in, out);
            break;
        case TH_LAYER_MAXPOOL:
            if (backward) th_maxpool_backward(nb, c, h, w, k, s, L->spec.pad, in, argmax, out);
            else th_maxpool_forward(nb, c, h, w, k, s, L->spec.pad, in, out, argmax);
            break;
        case TH_LAYER_AVGPOOL:
            if (backward) th_avgpool_backward(nb, c, h, w, k, s, in, out);
            else th_avgpool_forward(nb, c, h, w, k, s, in, out);
            break;
        case TH_LAYER_GAP:
            if (backward) th_gap_backward(nb, c, h * w, in, out);
            else th_gap_forward(nb, c, h * w, in, out);
            break;
        default: break;
        }
    }
}

static void image_local_forward(th_model *m, th_layer *L, const float *x, int n)
{
    image_local(m, L, 0, x, L->y, n);
}

static void image_local_backward(th_model *m, th_layer *L, const float *dy, float *dx, int n)
{
    image_local(m, L, 1, dy, dx, n);
}

/* Per-image size of input k of layer L. */
static size_t input_size(const th_model *m, const th_layer *L, int k)
{
    if (L->in[k] >= 0) return layer_out_size(&m->layers[L->in[k]]);
    return (size_t)m->spec.c * m->spec.h * m->spec.w;
}

/* Input k of layer L: a layer's output, or the image x. */
static const float *layer_input(const th_model *m, const th_layer *L, int k, const float *x)
{
    return L->in[k] >= 0 ? m->layers[L->in[k]].y : x;
}

/* add: y = the sum of the inputs, with a fused ReLU max(0, that) in the
 * last input's pass; concat: each image's channels are its inputs'
 * channels, one input after the other. */
static void join_forward(th_model *m, th_layer *L, const float *x, int n)
{
    const int threads = team(m, n), concat = L->spec.type == TH_LAYER_CONCAT;
    const int relu = (L->fused & TH_FUSED_ADDRELU) != 0;
    const size_t out_sz = layer_out_size(L);
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        int first, end;
        th_workspace_share(n, threads, thread_id(), &first, &end);
        for (int img = first; img < end; img++) {
            float *y = L->y + img * out_sz;
            for (int k = 0; k < L->n_in; k++) {
                const size_t sz = input_size(m, L, k);
                const float *src = layer_input(m, L, k, x) + img * sz;
                if (concat || k == 0) {
                    memcpy(y, src, sz * sizeof *y);
                    if (concat) y += sz;
                } else if (relu && k == L->n_in - 1) {
                    for (size_t e = 0; e < sz; e++) {
                        float v = y[e] + src[e];
                        y[e] = v > 0.0f ? v : 0.0f;
                    }
                } else {
                    for (size_t e = 0; e < sz; e++) y[e] += src[e];
                }
            }
        }
    }
}

void th_model_layer_forward(th_model *m, int i, const float *x, int n, int train)
{
    /* Activations hold max_batch images: more would write past them. */
    TH_ASSERT(i >= 0 && i < m->n_layers && n >= 0 && n <= m->max_batch);
    th_layer *L = &m->layers[i];
    const float *in = layer_input(m, L, 0, x);
    const float *w = L->w_off != NO_OFFSET ? m->params + L->w_off : NULL;
    const float *b = L->b_off != NO_OFFSET ? m->params + L->b_off : NULL;
    size_t count = (size_t)n * layer_out_size(L);
    int hw = L->in_h * L->in_w;
    switch (L->spec.type) {
    case TH_LAYER_CONV: {
        th_conv_dims d;
        conv_dims(m, L, n, &d);
        if (L->fused & TH_FUSED_POOL) {
            th_layer *P = &m->layers[i + 2];
            th_conv_forward_pool(&d, in, w, b, P->y, P->argmax, &m->ws);
        } else {
            th_conv_forward(&d, in, w, b, L->y, L->fused & TH_FUSED_RELU, &m->ws);
        }
        break;
    }
    case TH_LAYER_RELU:
        /* A fused ReLU was applied by the convolution (in place) or the
         * batch-norm below it. */
        if (!L->fused) image_local_forward(m, L, in, n);
        break;
    case TH_LAYER_MAXPOOL:
        if (!L->fused) image_local_forward(m, L, in, n);
        break;
    case TH_LAYER_AVGPOOL:
    case TH_LAYER_GAP: image_local_forward(m, L, in, n); break;
    case TH_LAYER_BATCHNORM: {
        float *rm = m->buffers + L->rm_off, *rv = m->buffers + L->rv_off;
        if (L->fused & TH_FUSED_BNRELU) {
            /* Straight into the ReLU's output: the batch-norm's is not kept. */
            float *y = m->layers[i + 1].y;
            if (train)
                th_batchnorm_relu_forward_train(m->ws.threads, n, L->in_c, hw, in, w, b, y, L->mean, L->invstd, rm, rv,
                                                L->spec.momentum, L->spec.eps);
            else
                th_batchnorm_relu_forward_eval(m->ws.threads, n, L->in_c, hw, in, w, b, rm, rv, L->spec.eps, y);
        } else if (train)
            th_batchnorm_forward_train(m->ws.threads, n, L->in_c, hw, in, w, b, L->y, L->xhat, L->mean, L->invstd, rm, rv,
                                       L->spec.momentum, L->spec.eps);
        else
            th_batchnorm_forward_eval(m->ws.threads, n, L->in_c, hw, in, w, b, rm, rv, L->spec.eps, L->y);
        break;
    }
    case TH_LAYER_DENSE:
        th_dense_forward_p(m->precision, n, L->in_c, L->out_c, in, w, b, L->y, th_workspace_slice(&m->ws, 0));
        break;
    case TH_LAYER_DROPOUT:
        if (train) th_dropout_forward(count, L->spec.p, &m->rng, in, L->y, L->mask);
        else memcpy(L->y, in, count * sizeof(float));
        break;
    /* [N,C,H,W] -> [N,C*H*W]: the same floats in the same order. */
    case TH_LAYER_FLATTEN: memcpy(L->y, in, count * sizeof(float)); break;
    case TH_LAYER_ADD:
    case TH_LAYER_CONCAT: join_forward(m, L, x, n); break;
    default: break;
    }
}

const float *th_model_forward(th_model *m, const float *x, int n, int train)
{
    TH_ASSERT(n >= 0 && n <= m->max_batch);
    m->last_train = train;
    for (int i = 0; i < m->n_layers && n > 0; i++) th_model_layer_forward(m, i, x, n, train);
    return m->layers[m->n_layers - 1].y;
}

void th_model_layer_backward(th_model *m, int i, const float *x, float *dy, float *dx, int n)
{
    TH_ASSERT(i >= 0 && i < m->n_layers && n >= 0 && n <= m->max_batch);
    th_layer *L = &m->layers[i];
    const float *in = layer_input(m, L, 0, x);
    const float *w = L->w_off != NO_OFFSET ? m->params + L->w_off : NULL;
    /* A frozen layer computes no parameter gradient: NULL tells the kernels. */
    float *dw = L->w_off != NO_OFFSET && !L->frozen ? m->grads + L->w_off : NULL;
    float *db = L->b_off != NO_OFFSET && !L->frozen ? m->grads + L->b_off : NULL;
    size_t count = (size_t)n * layer_out_size(L);
    int hw = L->in_h * L->in_w;
    switch (L->spec.type) {
    case TH_LAYER_CONV: {
        th_conv_dims d;
        conv_dims(m, L, n, &d);
        if (L->fused & TH_FUSED_POOL) {
            th_layer *P = &m->layers[i + 2];
            th_conv_backward_pool(&d, in, w, dy, P->y, P->argmax, dx, dw, db, &m->ws);
        } else {
            th_conv_backward(&d, in, w, dy, L->fused ? L->y : NULL, dx, dw, db, &m->ws);
        }
        break;
    }
    case TH_LAYER_DENSE:
        th_dense_backward_p(m->precision, n, L->in_c, L->out_c, in, w, dy, dx, dw, db, th_workspace_slice(&m->ws, 0));
        break;
    case TH_LAYER_BATCHNORM:
        /* Batch-norm needs a dx buffer for its own dgamma/dbeta pass even at
         * layer 0, so the caller always passes one; and its dx needs dgamma
         * and dbeta, which a frozen layer puts aside. */
        if (!dw) dw = L->frozen_dstat, db = L->frozen_dstat + L->in_c;
        if (L->fused & TH_FUSED_BNRELU) {
            /* dy is the gradient at the ReLU's output, whose mask the
             * kernel applies from the ReLU's y. */
            const float *ry = m->layers[i + 1].y;
            if (m->last_train)
                th_batchnorm_relu_backward(m->ws.threads, n, L->in_c, hw, dy, ry, in, w, L->mean, L->invstd, dx, dw, db);
            else
                th_batchnorm_relu_backward_eval(m->ws.threads, n, L->in_c, hw, dy, ry, in, w, m->buffers + L->rm_off,
                                                m->buffers + L->rv_off, L->spec.eps, dx, dw, db);
        } else if (m->last_train)
            th_batchnorm_backward(m->ws.threads, n, L->in_c, hw, dy, L->xhat, w, L->invstd, dx, dw, db);
        else
            th_batchnorm_backward_eval(m->ws.threads, n, L->in_c, hw, dy, in, w, m->buffers + L->rm_off, m->buffers + L->rv_off,
                                       L->spec.eps, dx, dw, db);
        break;
    case TH_LAYER_RELU:
        /* A fused ReLU's derivative is applied by the convolution or
         * batch-norm below it. */
        if (dx && !L->fused) image_local_backward(m, L, dy, dx, n);
        break;
    case TH_LAYER_MAXPOOL:
        if (dx && !L->fused) image_local_backward(m, L, dy, dx, n);
        break;
    case TH_LAYER_AVGPOOL:
    case TH_LAYER_GAP:
        if (dx) image_local_backward(m, L, dy, dx, n);
        break;
    case TH_LAYER_DROPOUT:
        if (!dx) break;
        if (m->last_train) th_dropout_backward(count, L->spec.p, L->mask, dy, dx);
        else memcpy(dx, dy, count * sizeof(float));
        break;
    case TH_LAYER_FLATTEN:
        if (dx) memcpy(dx, dy, count * sizeof(float));
        break;
    case TH_LAYER_ADD:
        /* The gradient of the first input; backward_range gives every input
         * its own. With a fused ReLU (dy at its output): where it passed. */
        if (dx && (L->fused & TH_FUSED_ADDRELU)) th_relu_backward(count, L->y, dy, dx);
        else if (dx) memcpy(dx, dy, count * sizeof(float));
        break;
    case TH_LAYER_CONCAT:
        if (!dx) break;
        for (int img = 0; img < n; img++)
            memcpy(dx + img * input_size(m, L, 0), dy + img * layer_out_size(L), input_size(m, L, 0) * sizeof(float));
        break;
    default: break;
    }
}

/* ---- Backward over the graph ----------------------------------------------
 * gsrc[j + 1] points at the gradient of layer j's output (j = -1: the
 * image) once a reader of it has run its backward, NULL before. Readers run
 * from the last layer down, so by the time layer j's own backward runs,
 * every reader has given its share. */

/* The buffer that gathers the gradient of layer j's output (grad_slot). */
static float *grad_buffer(th_model *m, int j)
{
    int slot = j >= 0 ? m->layers[j].grad_slot : m->in_slot;
    if (slot == SLOT_A) return m->grad_a;
    if (slot == SLOT_B) return m->grad_b;
    return j >= 0 ? m->layers[j].dy_own : m->grad_in;
}

/* dst [n, sz] += src, split over images. */
static void add_images(th_model *m, float *dst, const float *src, size_t sz, int n)
{
    const int threads = team(m, n);
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        int first, end;
        th_workspace_share(n, threads, thread_id(), &first, &end);
        for (size_t e = first * sz; e < end * sz; e++) dst[e] += src[e];
    }
}

/* add and concat hand each input its part of dy: all of it (add), its own
 * channels (concat), written, or added to what its other readers gave. An
 * add fused with the ReLU after it gets dy at the ReLU's output and hands
 * on dy where that output (its y, shared) is positive, as th_relu_backward
 * would have made it. */
static void join_backward(th_model *m, th_layer *L, const float *dy, int n, int input_grad)
{
    const int threads = team(m, n), concat = L->spec.type == TH_LAYER_CONCAT;
    const int relu = (L->fused & TH_FUSED_ADDRELU) != 0;
    const size_t out_sz = layer_out_size(L);
    size_t off = 0;
    for (int k = 0; k < L->n_in; k++) {
        const int j = L->in[k];
        const size_t sz = input_size(m, L, k);
        if (j >= 0 || input_grad) {
            float *dst = grad_buffer(m, j);
            const int accumulate = m->gsrc[j + 1] != NULL;
#pragma omp parallel num_threads(threads) if (threads > 1)
            {
                int first, end;
                th_workspace_share(n, threads, thread_id(), &first, &end);
                for (int img = first; img < end; img++) {
                    const float *src = dy + img * out_sz + off, *y = L->y + img * out_sz;
                    float *d = dst + img * sz;
                    if (relu && accumulate) {
                        for (size_t e = 0; e < sz; e++) {
                            const float g = src[e];  /* read unconditionally: no branch (th_relu_backward) */
                            d[e] += y[e] > 0.0f ? g : 0.0f;
                        }
                    } else if (relu) {
                        th_relu_backward(sz, y, src, d);
                    } else if (accumulate) {
                        for (size_t e = 0; e < sz; e++) d[e] += src[e];
                    } else {
                        memcpy(d, src, sz * sizeof *d);
                    }
                }
            }
            m->gsrc[j + 1] = dst;
        }
        if (concat) off += sz;
    }
}

/* A one-input layer: its backward writes its input's gradient straight into
 * the buffer that gathers it, or, when another reader has been there first,
 * into scratch that is then added. */
static void single_backward(th_model *m, int i, const float *x, float *dy, int n, int input_grad)
{
    th_layer *L = &m->layers[i];
    const int j = L->in[0];
    float *scratch = dy == m->grad_a ? m->grad_b : m->grad_a;
    float *dx = NULL, *target = NULL;
    if (j >= 0 || input_grad) {
        target = grad_buffer(m, j);
        dx = m->gsrc[j + 1] ? scratch : target;
    } else if (L->spec.type == TH_LAYER_BATCHNORM) {
        /* The image's gradient is not wanted, but batch-norm computes its
         * parameter gradients through it. */
        dx = scratch;
    }
    th_model_layer_backward(m, i, x, dy, dx, n);
    if (!target) return;
    if (dx != target) add_images(m, target, dx, input_size(m, L, 0), n);
    m->gsrc[j + 1] = target;
}

/* Walks layers n_layers-1 down to stop+1, each turning the gradient of its
 * output into that of its inputs and writing its parameter gradients. The
 * image's gradient is computed only when input_grad is set. Returns the
 * gradient of layer stop's output (of x for stop == -1; NULL when it was
 * not computed). Batch-norm and dropout follow the mode of the last forward. */
static const float *backward_range(th_model *m, const float *x, const float *dlogits, int n, int stop,
                                   int input_grad, th_grads_ready_fn on_grads)
{
    memset(m->gsrc, 0, sizeof *m->gsrc * (size_t)(m->n_layers + 1));
    /* dlogits is only read: the last layer is never in a fused group
     * (th_model_fuse), whose layers are the only writers of dy. */
    m->gsrc[m->n_layers] = (float *)dlogits;
    for (int i = m->n_layers - 1; i > stop; i--) {
        th_layer *L = &m->layers[i];
        float *dy = m->gsrc[i + 1];
        if (fused_tail(L)) {
            /* The group's convolution (batch-norm) takes dy (of the ReLU's or
             * the pool's output) and does the rest in its own pass: the
             * layers above it hand dy down as it is. Only a walk that stops
             * inside the group needs the parts above the stop here. */
            int pool_group = (L->fused & TH_FUSED_POOL) != 0, j = L->in[0];
            float *other = dy == m->grad_a ? m->grad_b : m->grad_a;
            if (L->spec.type == TH_LAYER_MAXPOOL && stop >= i - 2) {
                if (stop == i - 2) {
                    /* Down to the conv's output: the ReLU passed the gradient
                     * only where the pooled maximum is positive. */
                    size_t count = (size_t)n * layer_out_size(L);
                    for (size_t k = 0; k < count; k++) dy[k] = L->y[k] > 0.0f ? dy[k] : 0.0f;
                }
                image_local_backward(m, L, dy, other, n);
                m->gsrc[j + 1] = other;
            } else if (L->spec.type == TH_LAYER_RELU && !pool_group && stop == i - 1) {
                image_local_backward(m, L, dy, other, n);
                m->gsrc[j + 1] = other;
            } else {
                m->gsrc[j + 1] = dy;
            }
            continue;
        }
        if (L->n_in > 1) join_backward(m, L, dy, n, input_grad);
        else single_backward(m, i, x, dy, n, input_grad);
        if (on_grads && L->w_off != NO_OFFSET && !L->frozen)
            on_grads(m->on_grads_ctx, L->w_off, layer_params_end(L) - L->w_off);
    }
    return m->gsrc[stop + 1];
}

void th_model_backward(th_model *m, const float *x, const float *dlogits, int n)
{
    TH_ASSERT(n <= m->max_batch);
    if (n <= 0) {
        /* A rank with no images this step contributes a zero gradient to the
         * sum (of the layers that train). */
        for (int i = m->n_layers - 1; i >= 0; i--) {
            th_layer *L = &m->layers[i];
            if (L->w_off == NO_OFFSET || L->frozen) continue;
            size_t count = layer_params_end(L) - L->w_off;
            memset(m->grads + L->w_off, 0, count * sizeof(float));
            if (m->on_grads) m->on_grads(m->on_grads_ctx, L->w_off, count);
        }
        return;
    }
    backward_range(m, x, dlogits, n, -1, 0, m->on_grads);
}

void th_model_freeze(th_model *m, int layer, int frozen)
{
    TH_ASSERT(layer >= 0 && layer < m->n_layers);
    m->layers[layer].frozen = frozen != 0;
}

void th_model_set_grads_hook(th_model *m, th_grads_ready_fn fn, void *ctx)
{
    m->on_grads = fn;
    m->on_grads_ctx = ctx;
}

const float *th_model_grad_at(th_model *m, const float *x, const float *dlogits, int n, int layer)
{
    /* layer -1 is the image; a name a user gave was resolved (and refused)
     * before this, so an index out of range is the caller's bug. */
    TH_ASSERT(layer >= -1 && layer < m->n_layers && n >= 1 && n <= m->max_batch);
    return backward_range(m, x, dlogits, n, layer, 1, NULL);
}

int th_model_find_tensor(const th_model *m, const char *name)
{
    for (int t = 0; t < m->n_tensors; t++)
        if (!strcmp(m->tensors[t].name, name)) return t;
    return -1;
}

float *th_model_tensor_data(th_model *m, int i)
{
    TH_ASSERT(i >= 0 && i < m->n_tensors);
    const th_tensor_info *t = &m->tensors[i];
    return (t->trainable ? m->params : m->buffers) + t->offset;
}

double th_model_flops(const th_model *m)
{
    double f = 0;
    for (int i = 0; i < m->n_layers; i++) f += m->layers[i].flops;
    return f;
}

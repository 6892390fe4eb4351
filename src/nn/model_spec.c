/* model_spec.c - the graph of a model spec: blocks expanded, layers named,
 * `from:` resolved, shapes walked.
 *
 * th_model_graph is the one place that knows how each layer type transforms
 * the shape of an image and what a block is made of, so the run's config
 * check (th_run_config_check: a network that does not fit its input is
 * rejected with the layer's line) and the model (to size activations) agree
 * by construction.
 */
#include "thorax/nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fails with "model.layers[i] (type name, line N): <problem>"; the name and
 * line appear only when the spec has them. */
static int layer_errf(th_err *err, int i, const th_layer_spec *l, const char *problem)
{
    char who[TH_NAME_MAX + 48];
    const char *type = th_layer_type_name(l->type);
    if (l->name[0] && l->line > 0)
        snprintf(who, sizeof who, "%s %s, line %d", type, l->name, l->line);
    else if (l->name[0])
        snprintf(who, sizeof who, "%s %s", type, l->name);
    else if (l->line > 0)
        snprintf(who, sizeof who, "%s, line %d", type, l->line);
    else
        snprintf(who, sizeof who, "%s", type);
    return th_errf(err, "model.layers[%d] (%s): %s", i, who, problem);
}

/* ---- Building the graph ------------------------------------------------- */

/* The most values one layer's output may hold per image (2^31: sizes stay
 * in int arithmetic where kernels use it). */
#define MAX_IMAGE_FLOATS (1LL << 31)

/* Room for a block-made name before push() checks it fits TH_NAME_MAX. */
#define NAME_BUF (4 * TH_NAME_MAX)

typedef struct builder {
    const th_model_spec *spec;
    int n_labels;
    th_graph *g;
    int origin;       /* the model.layers entry being expanded */
    th_err *err;
} builder;

/* Fails naming the entry being expanded and, inside a block, the layer of
 * the block ("layer2.0.conv1: kernel 3 does not fit ..."). */
static int node_errf(builder *b, const char *node, const char *problem)
{
    const th_layer_spec *l = &b->spec->layers[b->origin];
    char why[TH_NAME_MAX + 200];
    if (l->type >= TH_LAYER_RESBLOCK && node && node[0]) snprintf(why, sizeof why, "%s: %s", node, problem);
    else snprintf(why, sizeof why, "%s", problem);
    return layer_errf(b->err, b->origin, l, why);
}

static const th_node *input_of(const builder *b, int in, th_node *image)
{
    if (in >= 0) return &b->g->nodes[in];
    image->c = b->spec->c, image->h = b->spec->h, image->w = b->spec->w;
    return image;
}

/* The output shape of primitive layer l reading nodes in[0..n_in): checks
 * that it fits them. long long so that a huge pad or kernel cannot overflow. */
static int primitive_shape(builder *b, const th_layer_spec *l, const int *in, int n_in, int *out)
{
    char why[200];
    th_node image;
    const th_node *x = input_of(b, in[0], &image);
    long long c = x->c, h = x->h, w = x->w;
    int multi = l->type == TH_LAYER_ADD || l->type == TH_LAYER_CONCAT;
    if (multi && n_in < 2) return node_errf(b, l->name, "needs two or more inputs (from: [a, b])");
    if (!multi && n_in != 1) {
        snprintf(why, sizeof why, "reads one input, got from: with %d", n_in);
        return node_errf(b, l->name, why);
    }
    switch (l->type) {
    case TH_LAYER_CONV: {
        int stride = l->stride > 0 ? l->stride : 1;
        if (l->out <= 0) {
            snprintf(why, sizeof why, "out must be > 0, got %d", l->out);
            return node_errf(b, l->name, why);
        }
        if (l->k <= 0 || l->pad < 0 || l->stride < 0) {
            snprintf(why, sizeof why, "needs k > 0, pad >= 0, stride > 0, got k %d, pad %d, stride %d", l->k, l->pad,
                     l->stride);
            return node_errf(b, l->name, why);
        }
        long long hp = h + 2LL * l->pad, wp = w + 2LL * l->pad;
        if (hp < l->k || wp < l->k) {
            snprintf(why, sizeof why, "kernel %d does not fit a %lldx%lld input%s", l->k, h, w,
                     l->pad ? " (with its padding)" : "");
            return node_errf(b, l->name, why);
        }
        c = l->out;
        h = (hp - l->k) / stride + 1;
        w = (wp - l->k) / stride + 1;
        break;
    }
    case TH_LAYER_MAXPOOL:
    case TH_LAYER_AVGPOOL: {
        if (l->k <= 0 || l->stride < 0 || l->pad < 0) {
            snprintf(why, sizeof why, "needs k > 0, stride > 0 and pad >= 0, got k %d, stride %d, pad %d", l->k,
                     l->stride, l->pad);
            return node_errf(b, l->name, why);
        }
        /* PyTorch's rule: a window must hold at least one real pixel. */
        if (2 * l->pad > l->k) {
            snprintf(why, sizeof why, "pad %d must be at most half the kernel %d", l->pad, l->k);
            return node_errf(b, l->name, why);
        }
        int stride = l->stride > 0 ? l->stride : l->k;
        if (h + 2LL * l->pad < l->k || w + 2LL * l->pad < l->k) {
            snprintf(why, sizeof why, "kernel %d does not fit a %lldx%lld input", l->k, h, w);
            return node_errf(b, l->name, why);
        }
        h = (h + 2LL * l->pad - l->k) / stride + 1;
        w = (w + 2LL * l->pad - l->k) / stride + 1;
        break;
    }
    case TH_LAYER_BATCHNORM:
        if (!(l->eps > 0) || !(l->momentum >= 0 && l->momentum <= 1)) {
            snprintf(why, sizeof why, "needs eps > 0 and momentum in [0, 1], got eps %g, momentum %g", l->eps,
                     l->momentum);
            return node_errf(b, l->name, why);
        }
        break;
    case TH_LAYER_DROPOUT:
        if (!(l->p >= 0 && l->p < 1)) {
            snprintf(why, sizeof why, "p must be in [0, 1), got %g", l->p);
            return node_errf(b, l->name, why);
        }
        break;
    case TH_LAYER_RELU: break;
    case TH_LAYER_GAP: h = w = 1; break;
    /* Row-major [C,H,W] is already torch.flatten's order: only the shape changes. */
    case TH_LAYER_FLATTEN: c *= h * w, h = w = 1; break;
    case TH_LAYER_DENSE:
        /* Not flattened implicitly: a dense layer on a large map is usually a
         * missing gap, and its weights would be huge. */
        if (h != 1 || w != 1) {
            snprintf(why, sizeof why,
                     "needs a flat input (put a gap or flatten layer before it), got %lldx%lldx%lld", c, h, w);
            return node_errf(b, l->name, why);
        }
        if (l->out == TH_OUT_LABELS) {
            c = b->n_labels > 0 ? b->n_labels : 1;
        } else if (l->out <= 0) {
            snprintf(why, sizeof why, "out must be > 0 or 'labels', got %d", l->out);
            return node_errf(b, l->name, why);
        } else {
            c = l->out;
        }
        break;
    case TH_LAYER_ADD:
    case TH_LAYER_CONCAT:
        for (int k = 1; k < n_in; k++) {
            const th_node *o = input_of(b, in[k], &image);
            int same_plane = o->h == h && o->w == w;
            if (l->type == TH_LAYER_ADD ? same_plane && o->c == c : same_plane) {
                if (l->type == TH_LAYER_CONCAT) c += o->c;
                continue;
            }
            const th_node *first = input_of(b, in[0], &image);
            snprintf(why, sizeof why, "inputs %s (%dx%dx%d) and %s (%dx%dx%d) %s", in[0] < 0 ? "input" : first->spec.name,
                     first->c, first->h, first->w, in[k] < 0 ? "input" : o->spec.name, o->c, o->h, o->w,
                     l->type == TH_LAYER_ADD ? "differ in shape" : "differ in height or width");
            return node_errf(b, l->name, why);
        }
        break;
    default:
        snprintf(why, sizeof why, "unknown layer type %d", (int)l->type);
        return node_errf(b, l->name, why);
    }
    if (c * h * w > MAX_IMAGE_FLOATS) return node_errf(b, l->name, "its output is too large");
    out[0] = (int)c, out[1] = (int)h, out[2] = (int)w;
    return 0;
}

/* Appends a primitive layer named `name` reading in[0..n_in); returns its
 * index, or -1 with the error set. */
static int push(builder *b, th_layer_spec l, const char *name, const int *in, int n_in)
{
    th_graph *g = b->g;
    if (g->n >= TH_MAX_NODES) {
        char why[96];
        snprintf(why, sizeof why, "the network has more than %d layers once its blocks are expanded", TH_MAX_NODES);
        return node_errf(b, name, why);
    }
    if (strlen(name) >= TH_NAME_MAX) {
        char why[TH_NAME_MAX + 160];
        snprintf(why, sizeof why, "the name '%.*s...' is longer than %d characters", TH_NAME_MAX, name,
                 TH_NAME_MAX - 1);
        return node_errf(b, NULL, why);
    }
    th_node *nd = &g->nodes[g->n];
    memset(nd, 0, sizeof *nd);
    l.n_from = 0;
    l.line = b->spec->layers[b->origin].line;
    snprintf(l.name, sizeof l.name, "%s", name);
    nd->spec = l;
    nd->n_in = n_in;
    memcpy(nd->in, in, sizeof *in * (size_t)n_in);
    nd->origin = b->origin;
    int shape[3];
    if (primitive_shape(b, &nd->spec, in, n_in, shape)) return -1;
    nd->c = shape[0], nd->h = shape[1], nd->w = shape[2];
    return g->n++;
}

static th_layer_spec prim(th_layer_type t) { return (th_layer_spec){.type = t, .bias = 0}; }

static th_layer_spec conv(int out, int k, int stride, int pad)
{
    return (th_layer_spec){.type = TH_LAYER_CONV, .out = out, .k = k, .stride = stride, .pad = pad, .bias = 0};
}

/* Batch-norm with the block's momentum and eps (the config's defaults). */
static th_layer_spec bn(const th_layer_spec *block)
{
    return (th_layer_spec){.type = TH_LAYER_BATCHNORM, .momentum = block->momentum, .eps = block->eps};
}

/* Pushes `name` = prefix + "." + sub (or the prefix alone for sub NULL). */
static int push_sub(builder *b, th_layer_spec l, const char *prefix, const char *sub, int in)
{
    char name[NAME_BUF] = "";
    /* Prefixes are block names (< TH_NAME_MAX) or a dense layer's (block
     * name + ".denselayerN"), subs short words: push() rejects a result
     * longer than TH_NAME_MAX, which NAME_BUF holds whole. */
    strncat(name, prefix, TH_NAME_MAX * 3);
    if (sub) {
        strcat(name, ".");
        strncat(name, sub, TH_NAME_MAX / 2);
    }
    return push(b, l, name, &in, 1);
}

/* The end of both ResNet blocks: the branch's output i [out, H/s, W/s]
 * plus the shortcut from x [in_c, H, W] (the identity, or downsample.0, a
 * 1x1/s conv, and downsample.1, its batch-norm, when the shape changes),
 * then the ReLU named after the block itself. */
static int residual_join(builder *b, const th_layer_spec *l, const char *P, int x, int in_c, int s, int i)
{
    int shortcut = x;
    if (s != 1 || in_c != l->out) {
        if ((shortcut = push_sub(b, conv(l->out, 1, s, 0), P, "downsample.0", x)) < 0 ||
            (shortcut = push_sub(b, bn(l), P, "downsample.1", shortcut)) < 0)
            return -1;
    }
    char name[NAME_BUF];
    snprintf(name, sizeof name, "%s.add", P);
    int both[2] = {i, shortcut};
    if ((i = push(b, prim(TH_LAYER_ADD), name, both, 2)) < 0) return -1;
    return push_sub(b, prim(TH_LAYER_RELU), P, NULL, i);
}

/* ResNet basic block, torchvision's names:
 *   x -> conv1 (3x3, stride) -> bn1 -> relu1 -> conv2 (3x3) -> bn2 ---+-> add -> relu (= the block)
 *   x -> [downsample.0 (1x1, stride) -> downsample.1 (bn)] -----------+
 * The shortcut is the identity unless the shape changes. */
static int expand_resblock(builder *b, const th_layer_spec *l, const char *P, int x)
{
    th_node image;
    const th_node *in = input_of(b, x, &image);
    int s = l->stride > 0 ? l->stride : 1, i;
    if (l->out <= 0) return node_errf(b, NULL, "out must be > 0");
    if ((i = push_sub(b, conv(l->out, 3, s, 1), P, "conv1", x)) < 0 || (i = push_sub(b, bn(l), P, "bn1", i)) < 0 ||
        (i = push_sub(b, prim(TH_LAYER_RELU), P, "relu1", i)) < 0 ||
        (i = push_sub(b, conv(l->out, 3, 1, 1), P, "conv2", i)) < 0 || (i = push_sub(b, bn(l), P, "bn2", i)) < 0)
        return -1;
    return residual_join(b, l, P, x, in->c, s, i);
}

/* ResNet bottleneck block, torchvision's Bottleneck (v1.5: the stride in
 * the 3x3 conv), width = out / 4 unless given, names as torchvision's:
 *   x [C,H,W] -> conv1 (1x1, width) -> bn1 -> relu1 -> conv2 (3x3, width, stride) -> bn2 -> relu2
 *     -> conv3 (1x1, out) -> bn3 [out,H/s,W/s] ---------------------------------+-> add -> relu (= the block)
 *   x -> [downsample.0 (1x1, out, stride) -> downsample.1 (bn)] ----------------+
 * The shortcut is the identity unless the shape changes. */
static int expand_bottleneck(builder *b, const th_layer_spec *l, const char *P, int x)
{
    th_node image;
    const th_node *in = input_of(b, x, &image);
    int s = l->stride > 0 ? l->stride : 1, i;
    if (l->out <= 0 || l->width <= 0) return node_errf(b, NULL, "out and width must be > 0");
    if ((i = push_sub(b, conv(l->width, 1, 1, 0), P, "conv1", x)) < 0 || (i = push_sub(b, bn(l), P, "bn1", i)) < 0 ||
        (i = push_sub(b, prim(TH_LAYER_RELU), P, "relu1", i)) < 0 ||
        (i = push_sub(b, conv(l->width, 3, s, 1), P, "conv2", i)) < 0 || (i = push_sub(b, bn(l), P, "bn2", i)) < 0 ||
        (i = push_sub(b, prim(TH_LAYER_RELU), P, "relu2", i)) < 0 ||
        (i = push_sub(b, conv(l->out, 1, 1, 0), P, "conv3", i)) < 0 || (i = push_sub(b, bn(l), P, "bn3", i)) < 0)
        return -1;
    return residual_join(b, l, P, x, in->c, s, i);
}

/* DenseNet dense block: each dense layer j reads everything so far (the
 * block's input and every earlier layer's new maps, concatenated) and adds
 * `growth` maps:
 *   cat -> norm1 -> relu1 -> conv1 (1x1, bn_size*growth) -> norm2 -> relu2 -> conv2 (3x3, growth)
 *   cat' = concat(cat, conv2)
 * The last concatenation is the block's output and has its name. */
static int expand_denseblock(builder *b, const th_layer_spec *l, const char *P, int x)
{
    if (l->layers <= 0 || l->growth <= 0 || l->bn_size <= 0) return node_errf(b, NULL, "layers, growth and bn_size must be > 0");
    int cat = x;
    for (int j = 1; j <= l->layers; j++) {
        char L[NAME_BUF], name[NAME_BUF + 16];
        snprintf(L, sizeof L, "%s.denselayer%d", P, j);
        int i;
        if ((i = push_sub(b, bn(l), L, "norm1", cat)) < 0 || (i = push_sub(b, prim(TH_LAYER_RELU), L, "relu1", i)) < 0 ||
            (i = push_sub(b, conv(l->bn_size * l->growth, 1, 1, 0), L, "conv1", i)) < 0 ||
            (i = push_sub(b, bn(l), L, "norm2", i)) < 0 || (i = push_sub(b, prim(TH_LAYER_RELU), L, "relu2", i)) < 0 ||
            (i = push_sub(b, conv(l->growth, 3, 1, 1), L, "conv2", i)) < 0)
            return -1;
        if (j == l->layers) snprintf(name, sizeof name, "%s", P);
        else snprintf(name, sizeof name, "%s.cat%d", P, j);
        int both[2] = {cat, i};
        if ((cat = push(b, prim(TH_LAYER_CONCAT), name, both, 2)) < 0) return -1;
    }
    return cat;
}

/* DenseNet transition: norm -> relu -> conv (1x1, out) -> 2x2 average pool
 * (= the block). */
static int expand_transition(builder *b, const th_layer_spec *l, const char *P, int x)
{
    th_layer_spec pool = prim(TH_LAYER_AVGPOOL);
    pool.k = pool.stride = 2;
    int i;
    if (l->out <= 0) return node_errf(b, NULL, "out must be > 0");
    if ((i = push_sub(b, bn(l), P, "norm", x)) < 0 || (i = push_sub(b, prim(TH_LAYER_RELU), P, "relu", i)) < 0 ||
        (i = push_sub(b, conv(l->out, 1, 1, 0), P, "conv", i)) < 0)
        return -1;
    return push_sub(b, pool, P, NULL, i);
}

/* Automatic names, PyTorch style: conv1, bn1, relu1, pool1, drop1, add1,
 * cat1, block1 (either residual block), denseblock1, transition1, and gap /
 * fc / flatten for a single one of those (gap1, fc1, fc2 ... when there are
 * several), so that
 * checkpoints read like a torchvision state dict. */
static void auto_names(const th_model_spec *spec, char (*names)[TH_NAME_MAX])
{
    static const char *const prefix[TH_LAYER_TYPE_COUNT] = {
        [TH_LAYER_CONV] = "conv",       [TH_LAYER_RELU] = "relu",    [TH_LAYER_MAXPOOL] = "pool",
        [TH_LAYER_AVGPOOL] = "pool",    [TH_LAYER_BATCHNORM] = "bn", [TH_LAYER_GAP] = "gap",
        [TH_LAYER_DENSE] = "fc",        [TH_LAYER_DROPOUT] = "drop", [TH_LAYER_ADD] = "add",
        [TH_LAYER_CONCAT] = "cat",      [TH_LAYER_RESBLOCK] = "block", [TH_LAYER_DENSEBLOCK] = "denseblock",
        [TH_LAYER_TRANSITION] = "transition", [TH_LAYER_FLATTEN] = "flatten", [TH_LAYER_BOTTLENECK] = "block",
    };
    int count[TH_LAYER_TYPE_COUNT] = {0}, total[TH_LAYER_TYPE_COUNT] = {0};
    for (int i = 0; i < spec->n_layers; i++) total[spec->layers[i].type]++;
    for (int i = 0; i < spec->n_layers; i++) {
        th_layer_type t = spec->layers[i].type;
        /* Max and average pools share one counter (pool1, pool2 ...), and
         * so do the two residual blocks (block1, block2 ...). */
        int *c = &count[t == TH_LAYER_AVGPOOL ? TH_LAYER_MAXPOOL : t == TH_LAYER_BOTTLENECK ? TH_LAYER_RESBLOCK : t];
        ++*c;
        if (spec->layers[i].name[0]) snprintf(names[i], TH_NAME_MAX, "%s", spec->layers[i].name);
        else if ((t == TH_LAYER_GAP || t == TH_LAYER_DENSE || t == TH_LAYER_FLATTEN) && total[t] == 1) snprintf(names[i], TH_NAME_MAX, "%s", prefix[t]);
        else snprintf(names[i], TH_NAME_MAX, "%s%d", prefix[t], *c);
    }
}

/* The node called `name` among those built so far (the latest, should two
 * share it before the uniqueness check), -1 for "input", -2 if none. */
static int find_node(const th_graph *g, const char *name)
{
    if (!strcmp(name, "input")) return -1;
    for (int i = g->n - 1; i >= 0; i--)
        if (!strcmp(g->nodes[i].spec.name, name)) return i;
    return -2;
}

int th_model_graph(const th_model_spec *spec, int n_labels, th_graph *g, th_err *err)
{
    memset(g, 0, sizeof *g);
    if (spec->c <= 0 || spec->h <= 0 || spec->w <= 0)
        return th_errf(err, "model.input: must be positive, got %dx%dx%d", spec->c, spec->h, spec->w);
    if (spec->n_layers < 1 || spec->n_layers > TH_MAX_LAYERS)
        return th_errf(err, "model.layers: needs 1 to %d layers, got %d", TH_MAX_LAYERS, spec->n_layers);
    char(*names)[TH_NAME_MAX] = malloc(sizeof *names * (size_t)spec->n_layers);
    int *users = NULL;
    g->nodes = malloc(sizeof *g->nodes * TH_MAX_NODES);
    if (!names || !g->nodes) {
        free(names);
        th_graph_free(g);
        return th_errf(err, "model: out of memory");
    }
    auto_names(spec, names);
    builder b = {spec, n_labels, g, 0, err};
    int rc = 0;
    for (int i = 0; i < spec->n_layers && !rc; i++) {
        const th_layer_spec *l = &spec->layers[i];
        b.origin = i;
        int in[TH_MAX_FROM] = {g->n - 1}, n_in = 1;
        if (l->n_from > 0) n_in = l->n_from;
        for (int k = 0; k < l->n_from && !rc; k++) {
            in[k] = find_node(g, l->from[k]);
            if (in[k] == -2) {
                char why[2 * TH_NAME_MAX + 64];
                snprintf(why, sizeof why, "from: '%s' is not the name of an earlier layer (or 'input')", l->from[k]);
                rc = node_errf(&b, NULL, why);
            }
        }
        if (rc) break;
        int blockish = l->type >= TH_LAYER_RESBLOCK;
        if (blockish && n_in != 1) {
            rc = node_errf(&b, NULL, "a block reads one input");
            break;
        }
        switch (l->type) {
        case TH_LAYER_RESBLOCK: rc = expand_resblock(&b, l, names[i], in[0]) < 0; break;
        case TH_LAYER_DENSEBLOCK: rc = expand_denseblock(&b, l, names[i], in[0]) < 0; break;
        case TH_LAYER_TRANSITION: rc = expand_transition(&b, l, names[i], in[0]) < 0; break;
        case TH_LAYER_BOTTLENECK: rc = expand_bottleneck(&b, l, names[i], in[0]) < 0; break;
        default: rc = push(&b, *l, names[i], in, n_in) < 0; break;
        }
    }
    /* Names are tensor-name prefixes and `from:` targets: each must be one
     * layer's. Then every output but the network's own must be read. */
    for (int i = 0; i < g->n && !rc; i++) {
        for (int j = 0; j < i && !rc; j++) {
            if (strcmp(g->nodes[i].spec.name, g->nodes[j].spec.name)) continue;
            b.origin = g->nodes[i].origin;
            char why[TH_NAME_MAX + 96];
            snprintf(why, sizeof why, "name '%s' is already used by model.layers[%d]", g->nodes[i].spec.name,
                     g->nodes[j].origin);
            rc = node_errf(&b, NULL, why);
        }
    }
    if (!rc && !(users = calloc((size_t)g->n, sizeof *users))) rc = th_errf(err, "model: out of memory");
    for (int i = 0; i < g->n && !rc; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] >= 0) users[g->nodes[i].in[k]]++;
    for (int i = 0; i + 1 < g->n && !rc; i++) {
        if (users[i]) continue;
        b.origin = g->nodes[i].origin;
        char why[TH_NAME_MAX + 96];
        snprintf(why, sizeof why, "the output of %s is never used (no later layer reads it)", g->nodes[i].spec.name);
        rc = node_errf(&b, NULL, why);
    }
    if (!rc && n_labels > 0) {
        const th_node *last = &g->nodes[g->n - 1];
        if (last->c != n_labels || last->h != 1 || last->w != 1) {
            char why[160];
            snprintf(why, sizeof why, "the network must end in %d output%s (one per label), but gives %dx%dx%d",
                     n_labels, n_labels == 1 ? "" : "s", last->c, last->h, last->w);
            b.origin = spec->n_layers - 1;
            rc = node_errf(&b, NULL, why);
        }
    }
    free(users);
    free(names);
    if (rc) {
        th_graph_free(g);
        return -1;
    }
    th_node *fit = realloc(g->nodes, sizeof *g->nodes * (size_t)g->n);
    if (fit) g->nodes = fit;
    return 0;
}

void th_graph_free(th_graph *g)
{
    free(g->nodes);
    memset(g, 0, sizeof *g);
}

int th_model_spec_check(const th_model_spec *spec, int n_labels, th_err *err)
{
    th_graph g;
    if (th_model_graph(spec, n_labels, &g, err)) return -1;
    th_graph_free(&g);
    return 0;
}

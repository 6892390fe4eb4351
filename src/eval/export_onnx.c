/* export_onnx.c - a run as an ONNX model (opset 13), protobuf written by hand.
 *
 * The graph keeps every activation 4-D, [N, C, H, W] (N dynamic), as the
 * network computes it: a dense layer, whose input is [N, C, 1, 1], is a 1x1
 * Conv with its [out, in] weight stored as [out, in, 1, 1]; flatten is a
 * Reshape to [N, C*H*W, 1, 1]; only the end is flattened to [N, L].
 *
 *   image [N,1,H,W] -> normalisation -> the layers, one node each (the
 *   blocks are already expanded by th_model_graph) -> Flatten -> Sigmoid or
 *   Softmax (-> val's temperatures) -> prob [N,L]
 *
 * Each node, and each layer's output value, is named after the layer
 * (layer1.0.conv1); the parameters keep their checkpoint names
 * (layer1.0.conv1.weight); the nodes and constants the export adds are
 * named "thorax.*".
 *
 * Protobuf, from onnx.proto (field number: wire type; 0 varint, 2
 * length-delimited, 5 32-bit):
 *   ModelProto          1 ir_version: 0, 2 producer_name: 2, 3 producer_version: 2,
 *                       7 graph: 2, 8 opset_import: 2, 14 metadata_props: 2
 *   OperatorSetIdProto  1 domain: 2, 2 version: 0
 *   StringStringEntryProto  1 key: 2, 2 value: 2
 *   GraphProto          1 node: 2, 2 name: 2, 5 initializer: 2, 11 input: 2, 12 output: 2
 *   NodeProto           1 input: 2, 2 output: 2, 3 name: 2, 4 op_type: 2, 5 attribute: 2
 *   AttributeProto      1 name: 2, 2 f: 5, 3 i: 0, 8 ints: 0 (one field per value),
 *                       20 type: 0 (FLOAT 1, INT 2, INTS 7)
 *   TensorProto         1 dims: 0 (one per dim), 2 data_type: 0 (FLOAT 1, INT64 7),
 *                       8 name: 2, 9 raw_data: 2 (little-endian, as this x86/ARM host)
 *   ValueInfoProto      1 name: 2, 2 type: 2
 *   TypeProto           1 tensor_type: 2;  TypeProto.Tensor 1 elem_type: 0, 2 shape: 2
 *   TensorShapeProto    1 dim: 2;  Dimension 1 dim_value: 0, 2 dim_param: 2
 */
#include "export_impl.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thorax/nn.h"

#define ONNX_IR_VERSION 7 /* the IR of opset 13 (ONNX 1.8) */
#define ONNX_OPSET 13

enum { WIRE_VARINT = 0, WIRE_BYTES = 2, WIRE_FIXED32 = 5 };
enum { ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_INTS = 7 };
enum { ELEM_FLOAT = 1, ELEM_INT64 = 7 };

/* A message being encoded: bytes appended, an allocation failure remembered. */
typedef struct pb {
    uint8_t *p;
    size_t n, cap;
    int oom;
} pb;

static void pb_raw(pb *b, const void *data, size_t len)
{
    if (b->oom) return;
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + len) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
    if (len) memcpy(b->p + b->n, data, len);
    b->n += len;
}

static void pb_varint(pb *b, uint64_t v)
{
    uint8_t buf[10];
    int n = 0;
    do {
        buf[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) buf[n] |= 0x80;
        n++;
    } while (v);
    pb_raw(b, buf, (size_t)n);
}

static void pb_tag(pb *b, int field, int wire) { pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire); }

/* int64 fields: a negative value is its two's complement, ten bytes. */
static void pb_int(pb *b, int field, int64_t v)
{
    pb_tag(b, field, WIRE_VARINT);
    pb_varint(b, (uint64_t)v);
}

static void pb_float(pb *b, int field, float v)
{
    pb_tag(b, field, WIRE_FIXED32);
    pb_raw(b, &v, sizeof v);
}

static void pb_bytes(pb *b, int field, const void *data, size_t len)
{
    pb_tag(b, field, WIRE_BYTES);
    pb_varint(b, len);
    pb_raw(b, data, len);
}

static void pb_str(pb *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }

/* Appends sub as field `field` of b and frees it. */
static void pb_msg(pb *b, int field, pb *sub)
{
    if (sub->oom) b->oom = 1;
    else pb_bytes(b, field, sub->p, sub->n);
    free(sub->p);
    memset(sub, 0, sizeof *sub);
}

/* ---- nodes ---------------------------------------------------------------- */

static void attr_int(pb *node, const char *name, int64_t v)
{
    pb a = {0};
    pb_str(&a, 1, name);
    pb_int(&a, 3, v);
    pb_int(&a, 20, ATTR_INT);
    pb_msg(node, 5, &a);
}

static void attr_float(pb *node, const char *name, float v)
{
    pb a = {0};
    pb_str(&a, 1, name);
    pb_float(&a, 2, v);
    pb_int(&a, 20, ATTR_FLOAT);
    pb_msg(node, 5, &a);
}

static void attr_ints(pb *node, const char *name, int n, const int64_t *v)
{
    pb a = {0};
    pb_str(&a, 1, name);
    for (int k = 0; k < n; k++) pb_int(&a, 8, v[k]);
    pb_int(&a, 20, ATTR_INTS);
    pb_msg(node, 5, &a);
}

/* Starts a node: its inputs (n_in of them), one output, its name and type.
 * The caller adds attributes and ends it with end_node. */
static pb begin_node(const char *op, const char *name, const char *const *in, int n_in, const char *out)
{
    pb nd = {0};
    for (int k = 0; k < n_in; k++) pb_str(&nd, 1, in[k]);
    pb_str(&nd, 2, out);
    pb_str(&nd, 3, name);
    pb_str(&nd, 4, op);
    return nd;
}

static void end_node(pb *graph, pb *nd) { pb_msg(graph, 1, nd); }

/* A node without attributes. */
static void node(pb *graph, const char *op, const char *name, const char *const *in, int n_in, const char *out)
{
    pb nd = begin_node(op, name, in, n_in, out);
    end_node(graph, &nd);
}

/* A node reading a and b, named after its output. */
static void node2(pb *graph, const char *op, const char *a, const char *b, const char *out)
{
    node(graph, op, out, (const char *const[]){a, b}, 2, out);
}

/* Kernel, strides and symmetric pads of a conv or pool node. */
static void window_attrs(pb *nd, int k, int stride, int pad)
{
    attr_ints(nd, "kernel_shape", 2, (const int64_t[]){k, k});
    attr_ints(nd, "strides", 2, (const int64_t[]){stride, stride});
    attr_ints(nd, "pads", 4, (const int64_t[]){pad, pad, pad, pad});
}

/* ---- initializers --------------------------------------------------------- */

static void tensor(pb *graph, const char *name, int elem, int ndim, const int64_t *dims, const void *data, size_t bytes)
{
    pb t = {0};
    for (int k = 0; k < ndim; k++) pb_int(&t, 1, dims[k]);
    pb_int(&t, 2, elem);
    pb_str(&t, 8, name);
    pb_bytes(&t, 9, data, bytes);
    pb_msg(graph, 5, &t);
}

static void tensor_f(pb *graph, const char *name, int ndim, const int64_t *dims, const float *data, size_t count)
{
    tensor(graph, name, ELEM_FLOAT, ndim, dims, data, count * sizeof(float));
}

static void scalar_f(pb *graph, const char *name, float v) { tensor_f(graph, name, 0, NULL, &v, 1); }

/* A value of the graph's interface: float32 with dims (0 = the dynamic N). */
static void value_info(pb *graph, int field, const char *name, int ndim, const int *dims)
{
    pb shape = {0}, tt = {0}, type = {0}, vi = {0};
    for (int k = 0; k < ndim; k++) {
        pb d = {0};
        if (dims[k] > 0) pb_int(&d, 1, dims[k]);
        else pb_str(&d, 2, "N");
        pb_msg(&shape, 1, &d);
    }
    pb_int(&tt, 1, ELEM_FLOAT);
    pb_msg(&tt, 2, &shape);
    pb_msg(&type, 1, &tt);
    pb_str(&vi, 1, name);
    pb_msg(&vi, 2, &type);
    pb_msg(graph, field, &vi);
}

/* ---- the graph ------------------------------------------------------------ */

/* image -> the network's input, as th_input_make normalises pixel values v
 * (here image = v / 255). Returns the name of the normalised value. */
static const char *normalisation(pb *g, const th_input *in)
{
    switch (in->normalize) {
    case TH_INPUT_NORM_TRAINSET:
        /* (v - 255 mean) / (255 std) = (image - mean) / std */
        scalar_f(g, "thorax.norm_mean", in->mean);
        scalar_f(g, "thorax.norm_std", in->std);
        node2(g, "Sub", "image", "thorax.norm_mean", "thorax.centred");
        node2(g, "Div", "thorax.centred", "thorax.norm_std", "thorax.normalized");
        return "thorax.normalized";
    case TH_INPUT_NORM_PER_IMAGE: {
        /* Each image's mean and population variance over its pixels [N,1,1,1];
         * the variance is floored at 1e-6 grey levels^2, as th_input_make does. */
        scalar_f(g, "thorax.var_floor", (float)(1e-6 / (255.0 * 255.0)));
        pb nd = begin_node("ReduceMean", "thorax.image_mean", (const char *const[]){"image"}, 1, "thorax.image_mean");
        attr_ints(&nd, "axes", 3, (const int64_t[]){1, 2, 3});
        end_node(g, &nd);
        node2(g, "Sub", "image", "thorax.image_mean", "thorax.centred");
        node2(g, "Mul", "thorax.centred", "thorax.centred", "thorax.centred_sq");
        nd = begin_node("ReduceMean", "thorax.image_var", (const char *const[]){"thorax.centred_sq"}, 1,
                        "thorax.image_var");
        attr_ints(&nd, "axes", 3, (const int64_t[]){1, 2, 3});
        end_node(g, &nd);
        node2(g, "Max", "thorax.image_var", "thorax.var_floor", "thorax.image_var_floored");
        node(g, "Sqrt", "thorax.image_std", (const char *const[]){"thorax.image_var_floored"}, 1, "thorax.image_std");
        node2(g, "Div", "thorax.centred", "thorax.image_std", "thorax.normalized");
        return "thorax.normalized";
    }
    case TH_INPUT_NORM_NONE: break;
    }
    return "image";
}

/* Layer i's node(s) and initializers. in[k] are the names of its inputs. */
static void layer_nodes(pb *g, th_model *m, int i, const char *const *in)
{
    th_layer *L = &m->layers[i];
    const th_layer_spec *s = &L->spec;
    char wname[TH_NAME_MAX + 24], bname[TH_NAME_MAX + 24];
    snprintf(wname, sizeof wname, "%s.weight", L->name);
    snprintf(bname, sizeof bname, "%s.bias", L->name);
    size_t nw = 0, nb = 0;
    const float *w = export_tensor(m, L, "weight", &nw), *b = export_tensor(m, L, "bias", &nb);
    switch (s->type) {
    case TH_LAYER_CONV:
    case TH_LAYER_DENSE: {
        /* conv weight [out, in, k, k]; dense [out, in] as a 1x1 kernel */
        int k = s->type == TH_LAYER_CONV ? s->k : 1;
        tensor_f(g, wname, 4, (const int64_t[]){L->out_c, L->in_c, k, k}, w, nw);
        if (b) tensor_f(g, bname, 1, (const int64_t[]){L->out_c}, b, nb);
        pb nd = begin_node("Conv", L->name, (const char *const[]){in[0], wname, bname}, b ? 3 : 2, L->name);
        window_attrs(&nd, k, s->type == TH_LAYER_CONV ? export_stride(s) : 1, s->type == TH_LAYER_CONV ? s->pad : 0);
        end_node(g, &nd);
        break;
    }
    case TH_LAYER_BATCHNORM: {
        /* Eval form: (x - running_mean) / sqrt(running_var + eps) * weight + bias, per channel. */
        char mname[TH_NAME_MAX + 24], vname[TH_NAME_MAX + 24];
        size_t nm = 0, nv = 0;
        const float *rm = export_tensor(m, L, "running_mean", &nm), *rv = export_tensor(m, L, "running_var", &nv);
        snprintf(mname, sizeof mname, "%s.running_mean", L->name);
        snprintf(vname, sizeof vname, "%s.running_var", L->name);
        const int64_t c[1] = {L->in_c};
        tensor_f(g, wname, 1, c, w, nw);
        tensor_f(g, bname, 1, c, b, nb);
        tensor_f(g, mname, 1, c, rm, nm);
        tensor_f(g, vname, 1, c, rv, nv);
        pb nd = begin_node("BatchNormalization", L->name, (const char *const[]){in[0], wname, bname, mname, vname}, 5,
                           L->name);
        attr_float(&nd, "epsilon", s->eps);
        end_node(g, &nd);
        break;
    }
    case TH_LAYER_MAXPOOL:
    case TH_LAYER_AVGPOOL: {
        /* MaxPool pads with -inf, so padding never wins a window, as in the
         * kernel; the config gives an average pool no pad (0 here). */
        pb nd = begin_node(s->type == TH_LAYER_MAXPOOL ? "MaxPool" : "AveragePool", L->name, in, 1, L->name);
        window_attrs(&nd, s->k, export_stride(s), s->pad);
        end_node(g, &nd);
        break;
    }
    case TH_LAYER_RELU: node(g, "Relu", L->name, in, 1, L->name); break;
    case TH_LAYER_GAP: node(g, "GlobalAveragePool", L->name, in, 1, L->name); break;
    case TH_LAYER_DROPOUT: node(g, "Identity", L->name, in, 1, L->name); break;
    case TH_LAYER_ADD: node(g, "Sum", L->name, in, L->n_in, L->name); break;
    case TH_LAYER_CONCAT: {
        pb nd = begin_node("Concat", L->name, in, L->n_in, L->name);
        attr_int(&nd, "axis", 1);
        end_node(g, &nd);
        break;
    }
    case TH_LAYER_FLATTEN:
        /* [N, C, H, W] -> [N, C*H*W, 1, 1]: row-major, torch.flatten's order. */
        snprintf(wname, sizeof wname, "%s.shape", L->name);
        tensor(g, wname, ELEM_INT64, 1, (const int64_t[]){4}, (const int64_t[]){0, -1, 1, 1}, 4 * sizeof(int64_t));
        node(g, "Reshape", L->name, (const char *const[]){in[0], wname}, 2, L->name);
        break;
    default: TH_ASSERT(!"a layer type th_model_graph does not make");
    }
}

/* logits [N, L, 1, 1] (the last layer's output) -> prob [N, L]. */
static void output(pb *g, const export_info *x, const char *last)
{
    const th_predictor *t = x->t;
    int l = t->cfg->data.n_labels;
    pb nd = begin_node("Flatten", "thorax.logits", &last, 1, "thorax.logits");
    attr_int(&nd, "axis", 1);
    end_node(g, &nd);
    const char *link = x->temperature ? "thorax.p_raw" : "prob";
    nd = begin_node(x->softmax ? "Softmax" : "Sigmoid", link, (const char *const[]){"thorax.logits"}, 1, link);
    if (x->softmax) attr_int(&nd, "axis", 1);
    end_node(g, &nd);
    if (!x->temperature) return;
    /* th_temperature_apply: sigmoid(log(p / (1 - p)) / T), p clamped to [1e-7, 1 - 1e-7]. */
    float *temp = malloc(sizeof(float) * (size_t)l);
    if (!temp) {
        g->oom = 1;
        return;
    }
    for (int k = 0; k < l; k++) temp[k] = (float)t->op.temperature[k];
    tensor_f(g, "thorax.temperature", 1, (const int64_t[]){l}, temp, (size_t)l);
    free(temp);
    scalar_f(g, "thorax.p_min", 1e-7f);
    scalar_f(g, "thorax.p_max", 1 - 1e-7f);
    scalar_f(g, "thorax.one", 1.0f);
    node(g, "Clip", "thorax.p_clamped", (const char *const[]){"thorax.p_raw", "thorax.p_min", "thorax.p_max"}, 3,
         "thorax.p_clamped");
    node2(g, "Sub", "thorax.one", "thorax.p_clamped", "thorax.q");
    node2(g, "Div", "thorax.p_clamped", "thorax.q", "thorax.odds");
    node(g, "Log", "thorax.logit", (const char *const[]){"thorax.odds"}, 1, "thorax.logit");
    node2(g, "Div", "thorax.logit", "thorax.temperature", "thorax.logit_t");
    node(g, "Sigmoid", "prob", (const char *const[]){"thorax.logit_t"}, 1, "prob");
}

int export_onnx(const export_info *x, const char *path, th_err *err)
{
    th_predictor *t = x->t;
    th_model *m = &t->model;
    const th_config *cfg = t->cfg;
    pb g = {0}, model = {0};
    pb_str(&g, 2, cfg->name[0] ? cfg->name : "thorax");
    const char *input = normalisation(&g, &t->input);
    for (int i = 0; i < m->n_layers && !g.oom; i++) {
        const th_layer *L = &m->layers[i];
        const char *in[TH_MAX_FROM];
        for (int k = 0; k < L->n_in; k++) in[k] = L->in[k] < 0 ? input : m->layers[L->in[k]].name;
        layer_nodes(&g, m, i, in);
    }
    output(&g, x, m->layers[m->n_layers - 1].name);
    value_info(&g, 11, "image", 4, (const int[]){0, m->spec.c, m->spec.h, m->spec.w});
    value_info(&g, 12, "prob", 2, (const int[]){0, cfg->data.n_labels});

    pb_int(&model, 1, ONNX_IR_VERSION);
    pb_str(&model, 2, "thorax");
    pb_str(&model, 3, th_version());
    pb_msg(&model, 7, &g);
    pb opset = {0};
    pb_str(&opset, 1, "");
    pb_int(&opset, 2, ONNX_OPSET);
    pb_msg(&model, 8, &opset);
    for (int k = 0; k < x->n_meta; k++) {
        pb e = {0};
        pb_str(&e, 1, x->key[k]);
        pb_str(&e, 2, x->value[k].data ? x->value[k].data : "");
        pb_msg(&model, 14, &e);
    }
    int rc = model.oom ? th_errf(err, "out of memory encoding %s", path) : th_write_file_atomic(path, model.p, model.n, err);
    free(model.p);
    return rc;
}

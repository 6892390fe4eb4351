/* export_torch.c - a run as a self-contained PyTorch module: OUT.py, the
 * generated torch.nn.Module, and OUT.bin, its tensors.
 *
 * C cannot write a .pt (a pickle in a zip) simply, so the weights are one
 * raw file: every tensor of the model (th_model.tensors order), float32
 * little-endian, back to back. The .py lists each tensor's checkpoint name,
 * the state_dict key of its module, its offset (in floats) and its shape,
 * and reads the file with numpy.fromfile; it checks the file's size first.
 *
 * Modules are attributes l0, l1 ... (one per layer of the expanded network,
 * the layer's Thorax name in a comment and in LAYER_NAMES), since
 * nn.Module names may not hold dots. Activations stay 4-D [N, C, H, W] as
 * in the ONNX export (a dense layer reads x.flatten(1) and its output is
 * put back as [N, out, 1, 1]).
 */
#include "export_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report_impl.h"
#include "thorax/nn.h"

/* A Python string literal: a JSON string is one (the same escapes). */
static void py_string(th_strbuf *b, const char *s) { json_string(b, s); }

/* The constructor line of layer i's module, if it has one. */
static void module_line(th_strbuf *b, const th_layer *L, int i, int has_bias)
{
    const th_layer_spec *s = &L->spec;
    switch (s->type) {
    case TH_LAYER_CONV:
        th_strbuf_printf(b, "        self.l%d = nn.Conv2d(%d, %d, %d, stride=%d, padding=%d, bias=%s)", i, L->in_c,
                         L->out_c, s->k, export_stride(s), s->pad, has_bias ? "True" : "False");
        break;
    case TH_LAYER_DENSE:
        th_strbuf_printf(b, "        self.l%d = nn.Linear(%d, %d, bias=%s)", i, L->in_c, L->out_c,
                         has_bias ? "True" : "False");
        break;
    case TH_LAYER_BATCHNORM:
        th_strbuf_printf(b, "        self.l%d = nn.BatchNorm2d(%d, eps=%.9g)", i, L->in_c, s->eps);
        break;
    default: return;
    }
    th_strbuf_printf(b, "  # ");
    py_string(b, L->name);
    th_strbuf_printf(b, "\n");
}

/* The forward line of layer i: t<i> from its inputs' values. */
static void forward_line(th_strbuf *b, const th_model *m, int i)
{
    const th_layer *L = &m->layers[i];
    const th_layer_spec *s = &L->spec;
    char in[TH_MAX_FROM][24];
    for (int k = 0; k < L->n_in; k++) {
        if (L->in[k] < 0) snprintf(in[k], sizeof in[k], "x");
        else snprintf(in[k], sizeof in[k], "t%d", L->in[k]);
    }
    th_strbuf_printf(b, "        t%d = ", i);
    switch (s->type) {
    case TH_LAYER_CONV:
    case TH_LAYER_BATCHNORM: th_strbuf_printf(b, "self.l%d(%s)", i, in[0]); break;
    case TH_LAYER_DENSE: th_strbuf_printf(b, "self.l%d(%s.flatten(1))[:, :, None, None]", i, in[0]); break;
    case TH_LAYER_RELU: th_strbuf_printf(b, "F.relu(%s)", in[0]); break;
    /* PyTorch's max pool pads with -inf: padding never wins a window, as in the kernel. */
    case TH_LAYER_MAXPOOL:
        th_strbuf_printf(b, "F.max_pool2d(%s, %d, stride=%d, padding=%d)", in[0], s->k, export_stride(s), s->pad);
        break;
    case TH_LAYER_AVGPOOL: th_strbuf_printf(b, "F.avg_pool2d(%s, %d, stride=%d)", in[0], s->k, export_stride(s)); break;
    case TH_LAYER_GAP: th_strbuf_printf(b, "%s.mean((2, 3), keepdim=True)", in[0]); break;
    case TH_LAYER_DROPOUT: th_strbuf_printf(b, "%s", in[0]); break;
    case TH_LAYER_FLATTEN: th_strbuf_printf(b, "%s.reshape(%s.shape[0], -1, 1, 1)", in[0], in[0]); break;
    case TH_LAYER_ADD:
        for (int k = 0; k < L->n_in; k++) th_strbuf_printf(b, "%s%s", k ? " + " : "", in[k]);
        break;
    case TH_LAYER_CONCAT:
        th_strbuf_printf(b, "torch.cat([");
        for (int k = 0; k < L->n_in; k++) th_strbuf_printf(b, "%s%s", k ? ", " : "", in[k]);
        th_strbuf_printf(b, "], 1)");
        break;
    default: TH_ASSERT(0 && "a layer type th_model_graph does not make");
    }
    th_strbuf_printf(b, "  # ");
    py_string(b, L->name);
    th_strbuf_printf(b, "\n");
}

static void write_py(th_strbuf *b, const export_info *x, const char *py_base, const char *bin_base)
{
    const th_predictor *t = x->t;
    const th_model *m = &t->model;
    const th_config *cfg = t->cfg;
    th_strbuf_printf(b,
                     "\"\"\"A Thorax run exported as a PyTorch module (thorax export --format torch).\n"
                     "\n"
                     "Contract (docs/export.md), the same as the ONNX export and `thorax predict`:\n"
                     "  input   image, float32 [N, 1, %d, %d]: pixel / 255 (luminance, resized as predict does)\n"
                     "  output  prob, float32 [N, %d]: one column per name of LABELS\n"
                     "The normalisation, batch-norm in eval form and the output link are inside.\n"
                     "\n"
                     "    import importlib.util, torch\n"
                     "    spec = importlib.util.spec_from_file_location('exported', '%s')\n"
                     "    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
                     "    model = mod.load()                  # eval mode, weights from the .bin beside this file\n"
                     "    prob = model(torch.rand(2, 1, %d, %d))\n"
                     "\n"
                     "The weights are %s beside this file: every tensor as raw little-endian float32,\n"
                     "back to back, at the offsets (in floats) of TENSORS. Needs torch and numpy.\n"
                     "\"\"\"\n"
                     "import os\n\n"
                     "import numpy as np\n"
                     "import torch\n"
                     "import torch.nn as nn\n"
                     "import torch.nn.functional as F\n\n",
                     cfg->model.h, cfg->model.w, cfg->data.n_labels, py_base, cfg->model.h, cfg->model.w, bin_base);
    th_strbuf_printf(b, "WEIGHTS = ");
    py_string(b, bin_base);
    th_strbuf_printf(b, "\nMETADATA = {\n");
    for (int k = 0; k < x->n_meta; k++) {
        th_strbuf_printf(b, "    ");
        py_string(b, x->key[k]);
        th_strbuf_printf(b, ": ");
        py_string(b, x->value[k].data ? x->value[k].data : "");
        th_strbuf_printf(b, ",\n");
    }
    /* thorax.labels is a JSON array of strings, which is a Python list too. */
    const char *labels = "[]";
    for (int k = 0; k < x->n_meta; k++)
        if (!strcmp(x->key[k], "thorax.labels") && x->value[k].data) labels = x->value[k].data;
    th_strbuf_printf(b, "}\nLABELS = %s\n", labels);
    th_strbuf_printf(b, "INPUT_SHAPE = (1, %d, %d)\n", cfg->model.h, cfg->model.w);
    switch (t->input.normalize) {
    case TH_INPUT_NORM_TRAINSET:
        th_strbuf_printf(b, "NORMALIZATION = 'trainset'\nNORM_MEAN = %.9g\nNORM_STD = %.9g\n", t->input.mean,
                         t->input.std);
        break;
    case TH_INPUT_NORM_PER_IMAGE: th_strbuf_printf(b, "NORMALIZATION = 'per_image'\n"); break;
    case TH_INPUT_NORM_NONE: th_strbuf_printf(b, "NORMALIZATION = 'none'\n"); break;
    }
    th_strbuf_printf(b, "OUTPUT = '%s'\nTEMPERATURE = ", x->softmax ? "softmax" : "sigmoid");
    if (x->temperature) {
        th_strbuf_printf(b, "[");
        for (int k = 0; k < cfg->data.n_labels; k++) th_strbuf_printf(b, "%s%.17g", k ? ", " : "", t->op.temperature[k]);
        th_strbuf_printf(b, "]\n");
    } else {
        th_strbuf_printf(b, "None\n");
    }

    th_strbuf_printf(b, "# (checkpoint name, state_dict key, offset in floats, shape)\nTENSORS = [\n");
    size_t off = 0;
    for (int k = 0; k < m->n_tensors; k++) {
        const th_tensor_info *ti = &m->tensors[k];
        const th_layer *L = &m->layers[ti->layer];
        const char *what = ti->name + strlen(L->name) + 1; /* "<layer>.<what>" */
        th_strbuf_printf(b, "    (");
        py_string(b, ti->name);
        th_strbuf_printf(b, ", 'l%d.%s', %zu, (", ti->layer, what, off);
        for (int d = 0; d < ti->ndim; d++) th_strbuf_printf(b, "%d, ", ti->shape[d]);
        th_strbuf_printf(b, ")),\n");
        off += ti->count;
    }
    th_strbuf_printf(b, "]\nN_FLOATS = %zu\nLAYER_NAMES = [\n", off);
    for (int i = 0; i < m->n_layers; i++) {
        th_strbuf_printf(b, "    ");
        py_string(b, m->layers[i].name);
        th_strbuf_printf(b, ",\n");
    }
    th_strbuf_printf(b, "]\n\n\nclass Model(nn.Module):\n"
                        "    \"\"\"image [N, 1, H, W] (pixel / 255) -> prob [N, L].\"\"\"\n\n"
                        "    def __init__(self):\n"
                        "        super().__init__()\n");
    for (int i = 0; i < m->n_layers; i++) {
        size_t n;
        module_line(b, &m->layers[i], i, export_tensor((th_model *)m, &m->layers[i], "bias", &n) != NULL);
    }
    th_strbuf_printf(b, "\n    def forward(self, image):\n");
    switch (t->input.normalize) {
    case TH_INPUT_NORM_TRAINSET: th_strbuf_printf(b, "        x = (image - NORM_MEAN) / NORM_STD\n"); break;
    case TH_INPUT_NORM_PER_IMAGE:
        th_strbuf_printf(b, "        # each image's mean and population variance, floored at 1e-6 grey levels^2\n"
                            "        mean = image.mean((1, 2, 3), keepdim=True)\n"
                            "        d = image - mean\n"
                            "        var = (d * d).mean((1, 2, 3), keepdim=True)\n"
                            "        x = d / torch.sqrt(torch.clamp(var, min=1e-6 / (255.0 * 255.0)))\n");
        break;
    case TH_INPUT_NORM_NONE: th_strbuf_printf(b, "        x = image\n"); break;
    }
    for (int i = 0; i < m->n_layers; i++) forward_line(b, m, i);
    th_strbuf_printf(b, "        z = t%d.flatten(1)\n", m->n_layers - 1);
    th_strbuf_printf(b, "        p = %s\n", x->softmax ? "torch.softmax(z, 1)" : "torch.sigmoid(z)");
    if (x->temperature)
        th_strbuf_printf(b, "        # val's temperatures, as thorax predict applies them\n"
                            "        p = torch.clamp(p, 1e-7, 1 - 1e-7)\n"
                            "        temperature = torch.tensor(TEMPERATURE, dtype=p.dtype, device=p.device)\n"
                            "        p = torch.sigmoid(torch.log(p / (1 - p)) / temperature)\n");
    th_strbuf_printf(b, "        return p\n\n\n"
                        "def load(weights=None):\n"
                        "    \"\"\"The model in eval mode with its weights (default: WEIGHTS beside this file).\"\"\"\n"
                        "    path = weights or os.path.join(os.path.dirname(os.path.abspath(__file__)), WEIGHTS)\n"
                        "    flat = np.fromfile(path, dtype='<f4')\n"
                        "    if flat.size != N_FLOATS:\n"
                        "        raise ValueError('%%s: %%d floats, expected %%d' %% (path, flat.size, N_FLOATS))\n"
                        "    model = Model()\n"
                        "    state = {}\n"
                        "    for _, key, off, shape in TENSORS:\n"
                        "        n = int(np.prod(shape))\n"
                        "        state[key] = torch.from_numpy(flat[off:off + n].reshape(shape).copy())\n"
                        "    missing, unexpected = model.load_state_dict(state, strict=False)\n"
                        "    missing = [k for k in missing if not k.endswith('num_batches_tracked')]\n"
                        "    if missing or unexpected:\n"
                        "        raise ValueError('%%s: missing %%s, unexpected %%s' %% (path, missing, unexpected))\n"
                        "    return model.eval()\n");
}

int export_torch(const export_info *x, const char *py, const char *bin, th_err *err)
{
    th_model *m = &x->t->model;
    size_t total = 0;
    for (int k = 0; k < m->n_tensors; k++) total += m->tensors[k].count;
    float *flat = malloc(sizeof(float) * (total ? total : 1));
    if (!flat) return th_errf(err, "out of memory for %zu weights", total);
    size_t off = 0;
    for (int k = 0; k < m->n_tensors; k++) {
        memcpy(flat + off, th_model_tensor_data(m, k), sizeof(float) * m->tensors[k].count);
        off += m->tensors[k].count;
    }
    const char *bin_base = strrchr(bin, '/') ? strrchr(bin, '/') + 1 : bin;
    const char *py_base = strrchr(py, '/') ? strrchr(py, '/') + 1 : py;
    th_strbuf b = {0};
    write_py(&b, x, py_base, bin_base);
    int rc = b.failed ? th_errf(err, "out of memory writing %s", py) : 0;
    /* The weights first: the .py, the file a user opens, never names a missing .bin. */
    if (!rc) rc = th_write_file_atomic(bin, flat, sizeof(float) * total, err);
    if (!rc) rc = th_write_file_atomic(py, b.data, b.len, err);
    th_strbuf_free(&b);
    free(flat);
    return rc;
}

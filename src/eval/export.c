/* export.c - `thorax export`: a trained run opened as predict opens it,
 * described, and handed to the ONNX or PyTorch writer (see thorax/eval.h). */
#include "export_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report_impl.h"
#include "thorax/config.h"
#include "thorax/nn.h"
#include "thorax/train.h"

int th_export_format_parse(const char *s, th_export_format *f)
{
    if (!s) return -1;
    if (!strcmp(s, "onnx")) *f = TH_EXPORT_ONNX;
    else if (!strcmp(s, "torch")) *f = TH_EXPORT_TORCH;
    else return -1;
    return 0;
}

int export_stride(const th_layer_spec *l)
{
    if (l->stride > 0) return l->stride;
    return l->type == TH_LAYER_MAXPOOL || l->type == TH_LAYER_AVGPOOL ? l->k : 1;
}

const float *export_tensor(th_model *m, const th_layer *L, const char *what, size_t *count)
{
    char name[TH_NAME_MAX + 24];
    snprintf(name, sizeof name, "%s.%s", L->name, what);
    int i = th_model_find_tensor(m, name);
    if (i < 0) return NULL;
    *count = m->tensors[i].count;
    return th_model_tensor_data(m, i);
}

/* Refuses to write over the run's inputs: its config, either checkpoint,
 * its dataset file (th_output_not_input, the guard of every writer). */
static int guard_output(const char *run_dir, const th_config *cfg, const char *out, th_err *err)
{
    char in[4][4200];
    snprintf(in[0], sizeof in[0], "%s/config.yaml", run_dir);
    snprintf(in[1], sizeof in[1], "%s/checkpoints/best.h5", run_dir);
    snprintf(in[2], sizeof in[2], "%s/checkpoints/last.h5", run_dir);
    snprintf(in[3], sizeof in[3], "%s", cfg->data.path);
    const char *ins[4] = {in[0], in[1], in[2], in[3]};
    if (th_output_not_input(out, 4, ins, err))
        return th_err_prefix(err, "--out %s is an input of the run: choose another name: ", out);
    return 0;
}

static th_strbuf *meta(export_info *x, const char *key)
{
    TH_ASSERT(x->n_meta < EXPORT_META_MAX);
    x->key[x->n_meta] = key;
    return &x->value[x->n_meta++];
}

/* The description both formats carry, each value a string. */
static void describe(export_info *x)
{
    const th_predictor *t = x->t;
    const th_config *cfg = t->cfg;
    th_strbuf *b = meta(x, "thorax.labels");
    th_strbuf_printf(b, "[");
    for (int k = 0; k < cfg->data.n_labels; k++) {
        if (k) th_strbuf_printf(b, ", ");
        json_string(b, cfg->data.labels[k]);
    }
    th_strbuf_printf(b, "]");
    th_strbuf_printf(meta(x, "thorax.version"), "%s", th_version());
    th_strbuf_printf(meta(x, "thorax.run"), "%s", cfg->name);
    th_strbuf_printf(meta(x, "thorax.checkpoint"), "%s", x->checkpoint);
    th_strbuf_printf(meta(x, "thorax.epoch"), "%d", t->st.epoch);
    th_strbuf_printf(meta(x, "thorax.step"), "%ld", t->st.step);
    th_strbuf_printf(meta(x, "thorax.input"), "image: float32 [N, 1, %d, %d], pixel / 255", cfg->model.h, cfg->model.w);
    b = meta(x, "thorax.normalization");
    switch (t->input.normalize) {
    case TH_INPUT_NORM_TRAINSET:
        th_strbuf_printf(b, "trainset: (image - %.9g) / %.9g", t->input.mean, t->input.std);
        th_strbuf_printf(meta(x, "thorax.norm_mean"), "%.9g", t->input.mean);
        th_strbuf_printf(meta(x, "thorax.norm_std"), "%.9g", t->input.std);
        break;
    case TH_INPUT_NORM_PER_IMAGE:
        th_strbuf_printf(b, "per_image: (image - mean) / max(std, 1e-3 / 255), over each image's pixels");
        break;
    case TH_INPUT_NORM_NONE: th_strbuf_printf(b, "none"); break;
    }
    th_strbuf_printf(meta(x, "thorax.output"), "prob: float32 [N, %d], %s of the logits%s", cfg->data.n_labels,
                     x->softmax ? "softmax" : "sigmoid",
                     x->temperature ? ", then sigmoid(logit(p) / T) with val's temperatures T" : "");
    if (x->temperature) {
        b = meta(x, "thorax.temperature");
        th_strbuf_printf(b, "[");
        for (int k = 0; k < cfg->data.n_labels; k++) th_strbuf_printf(b, "%s%.17g", k ? ", " : "", t->op.temperature[k]);
        th_strbuf_printf(b, "]");
    }
}

int th_export_run(const th_export_opts *opts, th_export_result *res, th_err *err)
{
    memset(res, 0, sizeof *res);
    export_info x = {.checkpoint = opts->checkpoint ? opts->checkpoint : "best"};
    th_predictor t;
    if (!opts->out || !opts->out[0]) return th_errf(err, "export: no output (--out) given");
    char stem[4096];
    size_t n = strlen(opts->out);
    if (n >= sizeof stem - 8) return th_errf(err, "--out %s: path too long", opts->out);
    memcpy(stem, opts->out, n + 1);
    if (opts->format == TH_EXPORT_TORCH && n > 3 && !strcmp(stem + n - 3, ".py")) stem[n - 3] = '\0';
    if (opts->format == TH_EXPORT_ONNX) {
        snprintf(res->files[0], sizeof res->files[0], "%s", stem);
        res->n_files = 1;
    } else {
        snprintf(res->files[0], sizeof res->files[0], "%s.py", stem);
        snprintf(res->files[1], sizeof res->files[1], "%s.bin", stem);
        res->n_files = 2;
    }
    /* The directory of --out, made as predict --cam makes its own. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", stem);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) *slash = '\0';
    int rc = th_predictor_open(&t, opts->run_dir, x.checkpoint, 1, err);
    for (int k = 0; !rc && k < res->n_files; k++) rc = guard_output(opts->run_dir, t.cfg, res->files[k], err);
    if (!rc && slash && slash != dir) rc = th_mkdirs(dir, err);
    x.t = &t;
    if (!rc) {
        x.softmax = t.cfg->train.loss == TH_LOSS_SOFTMAX_CE;
        x.temperature = t.has_op && t.cfg->eval.calibrate == TH_CALIBRATE_TEMPERATURE;
        describe(&x);
        for (int k = 0; k < x.n_meta; k++)
            if (x.value[k].failed) rc = th_errf(err, "export: out of memory");
    }
    if (!rc) {
        rc = opts->format == TH_EXPORT_ONNX ? export_onnx(&x, res->files[0], err)
                                            : export_torch(&x, res->files[0], res->files[1], err);
        if (rc) th_err_prefix(err, "export of %s: ", opts->run_dir);
    }
    if (!rc) {
        res->epoch = t.st.epoch;
        res->step = t.st.step;
        res->n_layers = t.model.n_layers;
        res->n_params = t.model.n_params + t.model.n_buffers;
    }
    for (int k = 0; k < x.n_meta; k++) th_strbuf_free(&x.value[k]);
    th_predictor_close(&t);
    return rc;
}

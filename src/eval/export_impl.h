/* export_impl.h - what the exporters share (internal to src/eval): the
 * opened run, the metadata both formats carry, and the few facts about a
 * layer that both spell the same way. See th_export_run (thorax/eval.h).
 */
#ifndef THORAX_EVAL_EXPORT_IMPL_H
#define THORAX_EVAL_EXPORT_IMPL_H

#include "thorax/eval.h"

/* Key-value pairs of the exported model's description ("thorax.labels" ->
 * a JSON array of the label names ...): ONNX's metadata_props, the .py's
 * METADATA dict. */
#define EXPORT_META_MAX 16

typedef struct export_info {
    th_predictor *t;            /* the run, its checkpoint loaded */
    const char *checkpoint;     /* "best" or "last" */
    int temperature;            /* prob goes through val's temperatures (t->op.temperature), as predict's does */
    int softmax;                /* the link: softmax over labels (softmax-CE), else a sigmoid per label */
    int n_meta;
    const char *key[EXPORT_META_MAX];
    th_strbuf value[EXPORT_META_MAX];
} export_info;

/* A layer's stride as the kernels take it: the pools' default is their kernel. */
int export_stride(const th_layer_spec *l);

/* The float32 data of the model's tensor named `<layer>.<what>`, or NULL
 * (a conv or dense layer without a bias). *count receives its length. */
const float *export_tensor(th_model *m, const th_layer *L, const char *what, size_t *count);

/* Writes an ONNX model to path; a torch module to py with its weights in bin. */
int export_onnx(const export_info *x, const char *path, th_err *err);
int export_torch(const export_info *x, const char *py, const char *bin, th_err *err);

#endif

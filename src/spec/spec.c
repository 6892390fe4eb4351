/* spec.c - the names of the spec types (thorax/spec.h), shared by the config
 * that reads them and the code that reports on a built network. */
#include "thorax/spec.h"

#include <stddef.h>
#include <string.h>

static const char *const layer_type_names[TH_LAYER_TYPE_COUNT] = {
    [TH_LAYER_CONV] = "conv",         [TH_LAYER_RELU] = "relu", [TH_LAYER_MAXPOOL] = "maxpool",
    [TH_LAYER_AVGPOOL] = "avgpool",   [TH_LAYER_BATCHNORM] = "batchnorm",
    [TH_LAYER_GAP] = "gap",           [TH_LAYER_DENSE] = "dense", [TH_LAYER_DROPOUT] = "dropout",
    [TH_LAYER_ADD] = "add",           [TH_LAYER_CONCAT] = "concat", [TH_LAYER_RESBLOCK] = "resblock",
    [TH_LAYER_DENSEBLOCK] = "denseblock", [TH_LAYER_TRANSITION] = "transition",
    [TH_LAYER_FLATTEN] = "flatten",   [TH_LAYER_BOTTLENECK] = "bottleneck",
};

const char *const th_loss_names[] = {
    [TH_LOSS_WEIGHTED_BCE] = "weighted_bce", [TH_LOSS_BCE] = "bce", [TH_LOSS_SOFTMAX_CE] = "softmax_ce", NULL};
const char *const th_optim_names[] = {[TH_OPTIM_SGD] = "sgd", [TH_OPTIM_ADAM] = "adam", NULL};
const char *const th_precision_names[] = {[TH_PRECISION_FP32] = "fp32", [TH_PRECISION_BF16] = "bf16", NULL};

const char *th_layer_type_name(th_layer_type t)
{
    if ((unsigned)t >= TH_LAYER_TYPE_COUNT) return "unknown";
    return layer_type_names[t];
}

int th_layer_type_parse(const char *s, th_layer_type *t)
{
    for (int i = 0; i < TH_LAYER_TYPE_COUNT; i++) {
        if (strcmp(s, layer_type_names[i]) == 0) {
            *t = (th_layer_type)i;
            return 0;
        }
    }
    return -1;
}

/* model_spec.c - layer type names and the shape walk over a model spec.
 *
 * The walk is the one place that knows how each layer type transforms the
 * shape of an image, so the config loader (to reject a network that does not
 * fit its input, with the layer's line) and the model (to size activations)
 * agree by construction.
 */
#include "thorax/model.h"

#include <stdio.h>
#include <string.h>

static const char *const layer_type_names[TH_LAYER_TYPE_COUNT] = {
    [TH_LAYER_CONV] = "conv",         [TH_LAYER_RELU] = "relu", [TH_LAYER_MAXPOOL] = "maxpool",
    [TH_LAYER_AVGPOOL] = "avgpool",   [TH_LAYER_BATCHNORM] = "batchnorm",
    [TH_LAYER_GAP] = "gap",           [TH_LAYER_DENSE] = "dense", [TH_LAYER_DROPOUT] = "dropout",
};

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

int th_model_spec_shapes(const th_model_spec *spec, int n_labels, int (*shapes)[3], th_err *err)
{
    char why[160];
    if (spec->c <= 0 || spec->h <= 0 || spec->w <= 0)
        return th_errf(err, "model.input: must be positive, got %dx%dx%d", spec->c, spec->h, spec->w);
    if (spec->n_layers < 1 || spec->n_layers > TH_MAX_LAYERS)
        return th_errf(err, "model.layers: needs 1 to %d layers, got %d", TH_MAX_LAYERS, spec->n_layers);

    /* long long so that a huge pad or kernel cannot overflow the arithmetic. */
    long long c = spec->c, h = spec->h, w = spec->w;
    for (int i = 0; i < spec->n_layers; i++) {
        const th_layer_spec *l = &spec->layers[i];
        switch (l->type) {
        case TH_LAYER_CONV: {
            int stride = l->stride > 0 ? l->stride : 1;
            if (l->out <= 0) {
                snprintf(why, sizeof why, "out must be > 0, got %d", l->out);
                return layer_errf(err, i, l, why);
            }
            if (l->k <= 0 || l->pad < 0 || l->stride < 0) {
                snprintf(why, sizeof why, "needs k > 0, pad >= 0, stride > 0, got k %d, pad %d, stride %d", l->k,
                         l->pad, l->stride);
                return layer_errf(err, i, l, why);
            }
            long long hp = h + 2LL * l->pad, wp = w + 2LL * l->pad;
            if (hp < l->k || wp < l->k) {
                snprintf(why, sizeof why, "kernel %d does not fit a %lldx%lld input%s", l->k, h, w,
                         l->pad ? " (with its padding)" : "");
                return layer_errf(err, i, l, why);
            }
            c = l->out;
            h = (hp - l->k) / stride + 1;
            w = (wp - l->k) / stride + 1;
            break;
        }
        case TH_LAYER_MAXPOOL:
        case TH_LAYER_AVGPOOL: {
            if (l->k <= 0 || l->stride < 0) {
                snprintf(why, sizeof why, "needs k > 0 and stride > 0, got k %d, stride %d", l->k, l->stride);
                return layer_errf(err, i, l, why);
            }
            int stride = l->stride > 0 ? l->stride : l->k;
            if (h < l->k || w < l->k) {
                snprintf(why, sizeof why, "kernel %d does not fit a %lldx%lld input", l->k, h, w);
                return layer_errf(err, i, l, why);
            }
            h = (h - l->k) / stride + 1;
            w = (w - l->k) / stride + 1;
            break;
        }
        case TH_LAYER_BATCHNORM:
            if (!(l->eps > 0) || !(l->momentum >= 0 && l->momentum <= 1)) {
                snprintf(why, sizeof why, "needs eps > 0 and momentum in [0, 1], got eps %g, momentum %g", l->eps,
                         l->momentum);
                return layer_errf(err, i, l, why);
            }
            break;
        case TH_LAYER_DROPOUT:
            if (!(l->p >= 0 && l->p < 1)) {
                snprintf(why, sizeof why, "p must be in [0, 1), got %g", l->p);
                return layer_errf(err, i, l, why);
            }
            break;
        case TH_LAYER_RELU:
            break;
        case TH_LAYER_GAP:
            h = w = 1;
            break;
        case TH_LAYER_DENSE:
            if (h != 1 || w != 1) {
                snprintf(why, sizeof why, "needs a flat input (put a gap layer before it), got %lldx%lldx%lld", c, h,
                         w);
                return layer_errf(err, i, l, why);
            }
            if (l->out == TH_OUT_LABELS) {
                c = n_labels > 0 ? n_labels : 1;
            } else if (l->out <= 0) {
                snprintf(why, sizeof why, "out must be > 0 or 'labels', got %d", l->out);
                return layer_errf(err, i, l, why);
            } else {
                c = l->out;
            }
            break;
        default:
            snprintf(why, sizeof why, "unknown layer type %d", (int)l->type);
            return layer_errf(err, i, l, why);
        }
        if (shapes) {
            shapes[i][0] = (int)c;
            shapes[i][1] = (int)h;
            shapes[i][2] = (int)w;
        }
    }

    if (n_labels > 0 && (c != n_labels || h != 1 || w != 1)) {
        int last = spec->n_layers - 1;
        snprintf(why, sizeof why, "the network must end in %d output%s (one per label), but gives %lldx%lldx%lld",
                 n_labels, n_labels == 1 ? "" : "s", c, h, w);
        return layer_errf(err, last, &spec->layers[last], why);
    }
    return 0;
}

int th_model_spec_check(const th_model_spec *spec, int n_labels, th_err *err)
{
    return th_model_spec_shapes(spec, n_labels, NULL, err);
}

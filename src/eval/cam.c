/* cam.c - CAM, Grad-CAM and gradient saliency maps (see thorax/eval.h).
 *
 * The maps reuse the model's own buffers: the forward pass keeps every
 * layer's activations and th_model_grad_at leaves the activation gradient in
 * the model's ping-pong buffers, so one map costs a forward and (for
 * Grad-CAM and saliency) a partial backward, with no copies.
 */
#include "thorax/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "thorax/render.h"

static const char *const method_names[TH_CAM_METHOD_COUNT] = {"cam", "gradcam", "saliency"};

const char *th_cam_method_name(th_cam_method method)
{
    return method >= 0 && method < TH_CAM_METHOD_COUNT ? method_names[method] : "unknown";
}

int th_cam_method_parse(const char *s, th_cam_method *method)
{
    for (int k = 0; k < TH_CAM_METHOD_COUNT; k++)
        if (!strcmp(s, method_names[k])) {
            *method = (th_cam_method)k;
            return 0;
        }
    return -1;
}

/* Index of the first gap or dense layer: layers before it have a spatial
 * output [C, H, W]; from there on an image is a flat feature vector. */
static int spatial_end(const th_model *m)
{
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].spec.type == TH_LAYER_GAP || m->layers[i].spec.type == TH_LAYER_DENSE) return i;
    return m->n_layers;
}

int th_cam_layer_index(const th_model *m, const char *name, th_err *err)
{
    int end = spatial_end(m);
    if (name && name[0]) {
        for (int i = 0; i < m->n_layers; i++) {
            if (strcmp(m->layers[i].name, name)) continue;
            if (i >= end)
                return th_errf(err, "CAM layer '%s' (model.layers[%d], %s) comes after the network's first %s layer; "
                               "Grad-CAM needs a layer with a spatial output",
                               name, i, th_layer_type_name(m->layers[i].spec.type),
                               th_layer_type_name(m->layers[end].spec.type));
            return i;
        }
        return th_errf(err, "CAM layer '%s': the model has no layer of that name (conv layers are named conv1, conv2, ...)",
                       name);
    }
    /* What the classifier head pools: the layer feeding gap (in a ResNet,
     * the last block's output; in a chain, the last conv's rectified maps). */
    if (end < m->n_layers && m->layers[end].spec.type == TH_LAYER_GAP && m->layers[end].in[0] >= 0)
        return m->layers[end].in[0];
    int conv = -1;
    for (int i = 0; i < end; i++)
        if (m->layers[i].spec.type == TH_LAYER_CONV) conv = i;
    if (conv >= 0) {
        /* Extend over the conv block's own normalisation and activation: the
         * rectified maps are what the classifier head sees. */
        int i = conv;
        while (i + 1 < end) {
            th_layer_type t = m->layers[i + 1].spec.type;
            if (t != TH_LAYER_BATCHNORM && t != TH_LAYER_RELU && t != TH_LAYER_DROPOUT) break;
            i++;
        }
        return i;
    }
    for (int i = end - 1; i >= 0; i--)
        if (m->layers[i].out_h * m->layers[i].out_w > 1) return i;
    return th_errf(err, "CAM: the model has no layer with a spatial output before its first gap or dense layer");
}

/* Is layer L the identity at evaluation on a pooled [C, 1, 1] vector?
 * Dropout is (it scales at training time only), and so is flatten of a
 * 1x1 map. */
static int identity_at_eval(const th_layer *L)
{
    if (L->spec.type == TH_LAYER_DROPOUT) return 1;
    return L->spec.type == TH_LAYER_FLATTEN && L->in_h == 1 && L->in_w == 1;
}

/* The gap layer of a network ending in (a spatial layer ->) gap -> dense,
 * with any identity-at-eval layers (dropout) between gap and dense, or -1:
 * at evaluation the dense layer then sees gap's output unchanged, which is
 * what CAM's weighting of the feature maps assumes. */
static int cam_gap_layer(const th_model *m)
{
    const th_layer *fc = &m->layers[m->n_layers - 1];
    if (fc->spec.type != TH_LAYER_DENSE || fc->in[0] < 0) return -1;
    int g = fc->in[0];
    while (g >= 0 && identity_at_eval(&m->layers[g])) g = m->layers[g].in[0];
    if (g < 0 || m->layers[g].spec.type != TH_LAYER_GAP || m->layers[g].in[0] < 0) return -1;
    return g;
}

int th_cam_layer_prepare(th_model *m, th_cam_method method, const char *name, int *layer, th_err *err)
{
    *layer = -1;
    if (method != TH_CAM_GRADCAM) {
        if (name && name[0])
            return th_errf(err, "--layer %s: only gradcam reads a chosen layer (cam reads the layer feeding gap, "
                           "saliency the input)", name);
        return 0;
    }
    int i = th_cam_layer_index(m, name, err);
    /* Grad-CAM weighs the layer's own output, which a fused group does not keep. */
    if (i < 0 || th_model_keep_output(m, i, err)) return -1;
    *layer = i;
    return 0;
}

int th_cam_feature_layer(const th_model *m)
{
    int g = cam_gap_layer(m);
    return g < 0 ? -1 : m->layers[g].in[0];
}

int th_cam_feature_shape(const th_model *m, th_cam_method method, int layer, int *fh, int *fw, th_err *err)
{
    switch (method) {
    case TH_CAM_CAM: {
        int g = cam_gap_layer(m);
        if (g < 0) {
            int n = m->n_layers;
            return th_errf(err, "CAM needs a network ending in gap -> dense (dropout between them is fine); this one "
                           "ends in %s -> %s (use gradcam)",
                           n > 1 ? th_layer_type_name(m->layers[n - 2].spec.type) : "input",
                           th_layer_type_name(m->layers[n - 1].spec.type));
        }
        *fh = m->layers[m->layers[g].in[0]].out_h;
        *fw = m->layers[m->layers[g].in[0]].out_w;
        return 0;
    }
    case TH_CAM_GRADCAM:
        if (layer < 0 || layer >= spatial_end(m))
            return th_errf(err, "Grad-CAM layer %d is not a spatial layer of this model (0 to %d)", layer,
                           spatial_end(m) - 1);
        *fh = m->layers[layer].out_h;
        *fw = m->layers[layer].out_w;
        return 0;
    case TH_CAM_SALIENCY:
        *fh = m->spec.h;
        *fw = m->spec.w;
        return 0;
    default: return th_errf(err, "unknown CAM method %d", (int)method);
    }
}

/* m_c = sum_k w[c,k] A_k over the layer feeding gap; A [K, P], map [P]. */
static void cam_map(const th_model *m, int label, float *map, int p)
{
    const th_layer *feat = &m->layers[th_cam_feature_layer(m)], *fc = &m->layers[m->n_layers - 1];
    int k_count = feat->out_c;
    const float *a = feat->y;
    const float *w = m->params + fc->w_off + (size_t)label * fc->in_c;
    memset(map, 0, (size_t)p * sizeof *map);
    for (int k = 0; k < k_count; k++)
        for (int j = 0; j < p; j++) map[j] += w[k] * a[(size_t)k * p + j];
}

/* ReLU(sum_k alpha_k A_k), alpha_k = spatial mean of the gradient g [K, P]. */
static void gradcam_map(const th_layer *L, const float *g, float *map, int p)
{
    memset(map, 0, (size_t)p * sizeof *map);
    for (int k = 0; k < L->out_c; k++) {
        const float *gk = g + (size_t)k * p, *ak = L->y + (size_t)k * p;
        double sum = 0.0;
        for (int j = 0; j < p; j++) sum += gk[j];
        float alpha = (float)(sum / p);
        for (int j = 0; j < p; j++) map[j] += alpha * ak[j];
    }
    for (int j = 0; j < p; j++) map[j] = map[j] > 0.0f ? map[j] : 0.0f;
}

/* max over channels of |g|, g [C, P]. */
static void saliency_map(int c, const float *g, float *map, int p)
{
    for (int j = 0; j < p; j++) {
        float best = 0.0f;
        for (int ch = 0; ch < c; ch++) best = fmaxf(best, fabsf(g[(size_t)ch * p + j]));
        map[j] = best;
    }
}

static float label_prob(const float *z, int n_labels, int label, int softmax)
{
    if (!softmax) return 1.0f / (1.0f + expf(-z[label]));
    float zmax = z[0];
    for (int l = 1; l < n_labels; l++) zmax = fmaxf(zmax, z[l]);
    double sum = 0.0;
    for (int l = 0; l < n_labels; l++) sum += exp((double)(z[l] - zmax));
    return (float)(exp((double)(z[label] - zmax)) / sum);
}

int th_cam_compute(th_model *m, const float *x, int label, th_cam_method method, int layer, int softmax,
                   float *map_feat, int *fh, int *fw, float *map_img, float *prob, th_err *err)
{
    if (label < 0 || label >= m->n_labels)
        return th_errf(err, "CAM: label index %d out of range (the model has %d labels)", label, m->n_labels);
    if (th_cam_feature_shape(m, method, layer, fh, fw, err)) return -1;
    int p = *fh * *fw;
    const float *z = th_model_forward(m, x, 1, 0);
    if (prob) *prob = label_prob(z, m->n_labels, label, softmax);

    if (method == TH_CAM_CAM) {
        cam_map(m, label, map_feat, p);
    } else {
        /* The gradient of the logit z_c alone: a one-hot output gradient. */
        float *dz = calloc((size_t)m->n_labels, sizeof *dz);
        if (!dz) return th_errf(err, "CAM: out of memory");
        dz[label] = 1.0f;
        if (method == TH_CAM_GRADCAM) {
            const float *g = th_model_grad_at(m, x, dz, 1, layer);
            gradcam_map(&m->layers[layer], g, map_feat, p);
        } else {
            const float *g = th_model_grad_at(m, x, dz, 1, -1);
            saliency_map(m->spec.c, g, map_feat, p);
        }
        free(dz);
    }
    if (map_img) th_upsample_bilinear(map_feat, *fh, *fw, map_img, m->spec.h, m->spec.w);
    return 0;
}

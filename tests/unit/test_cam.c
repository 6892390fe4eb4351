/* test_cam.c - attribution maps: th_model_grad_at against finite
 * differences (train and eval mode, at the input and at inner layers),
 * Grad-CAM against CAM, bilinear upsampling, the pointing game and mask
 * scores, mask dilation, the maps.h5 writer and its extra columns, CAM
 * through dropout, file names with outcomes, and the heat-map overlay: the
 * blend, the panels' size and the caption's box inside the image. */
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "thorax/eval.h"
#include "thorax/nn.h"
#include "thorax/render.h"

enum { N = 2, C = 1, H = 12, W = 12, L = 3 };

static th_layer_spec layer(th_layer_type t, const char *name, int out, int k, int stride, int pad)
{
    th_layer_spec s = {.type = t, .out = out, .k = k, .stride = stride, .pad = pad, .bias = 1,
                       .momentum = 0.1f, .eps = 1e-5f};
    snprintf(s.name, sizeof s.name, "%s", name);
    return s;
}

/* conv-bn-relu-maxpool-conv-relu-dropout-gap-fc, every layer named so that a
 * tail of it (tail_model) shares its tensor names. */
static th_model_spec bn_spec(void)
{
    th_model_spec s = {.c = C, .h = H, .w = W};
    th_layer_spec *l = s.layers;
    l[s.n_layers++] = layer(TH_LAYER_CONV, "conv1", 4, 3, 1, 1);
    l[s.n_layers++] = layer(TH_LAYER_BATCHNORM, "bn1", 0, 0, 0, 0);
    l[s.n_layers++] = layer(TH_LAYER_RELU, "relu1", 0, 0, 0, 0);
    l[s.n_layers++] = layer(TH_LAYER_MAXPOOL, "pool1", 0, 2, 2, 0);
    l[s.n_layers++] = layer(TH_LAYER_CONV, "conv2", 6, 3, 1, 1);
    l[s.n_layers++] = layer(TH_LAYER_RELU, "relu2", 0, 0, 0, 0);
    l[s.n_layers] = layer(TH_LAYER_DROPOUT, "drop1", 0, 0, 0, 0);
    l[s.n_layers++].p = 0.3f;
    l[s.n_layers++] = layer(TH_LAYER_GAP, "gap", 0, 0, 0, 0);
    l[s.n_layers++] = layer(TH_LAYER_DENSE, "fc", TH_OUT_LABELS, 0, 0, 0);
    return s;
}

/* Batch-norm with statistics and affine parameters far from the identity, so
 * that an eval-mode backward using the wrong ones would show. */
static void perturb_bn(th_model *m)
{
    for (int t = 0; t < m->n_tensors; t++) {
        if (strncmp(m->tensors[t].name, "bn1.", 4)) continue;
        float *d = th_model_tensor_data(m, t);
        const char *what = m->tensors[t].name + 4;
        for (size_t k = 0; k < m->tensors[t].count; k++) {
            float v = (float)(k + 1);
            if (!strcmp(what, "weight")) d[k] = 0.5f + 0.3f * v;
            if (!strcmp(what, "bias")) d[k] = 0.1f * v - 0.2f;
            if (!strcmp(what, "running_mean")) d[k] = 0.05f * v;
            if (!strcmp(what, "running_var")) d[k] = 0.4f + 0.5f * v;
        }
    }
}

/* s = sum of c * logits, the scalar whose gradient th_model_grad_at returns
 * for dlogits = c. Train mode reseeds the dropout stream: the same mask each time. */
static double score(th_model *m, const float *x, const float *c, int train)
{
    th_rng_seed(&m->rng, 5, 5);
    const float *z = th_model_forward(m, x, N, train);
    double s = 0.0;
    for (int i = 0; i < N * L; i++) s += (double)c[i] * z[i];
    return s;
}

/* Compares analytic[k] with central differences of f over the inputs v[k]
 * for k in a spread of points; kinks (max-pool order or ReLU sign changing
 * within a step, seen as disagreement between steps h and h/2) are skipped
 * and counted. Returns the number of points checked. */
typedef double (*score_fn)(void *ctx);
static int check_fd(const char *what, float *v, const float *analytic, size_t n, score_fn f, void *ctx, int *kinks)
{
    int checked = 0;
    for (size_t k = 0; k < n; k += 1 + n / 23) {
        float saved = v[k];
        double est[2];
        for (int e = 0; e < 2; e++) {
            double h = e ? 1e-3 : 2e-3;
            v[k] = saved + (float)h;
            double sp = f(ctx);
            v[k] = saved - (float)h;
            double sm = f(ctx);
            est[e] = (sp - sm) / (2 * h);
        }
        v[k] = saved;
        if (fabs(est[0] - est[1]) > 0.1 * fmax(fmax(fabs(est[0]), fabs(est[1])), 5e-3)) {
            ++*kinks;
            continue;
        }
        checked++;
        if (!CHECK_REL(analytic[k], est[1], 3e-2, 1e-2)) fprintf(stderr, "  at element %zu (%s)\n", k, what);
    }
    return checked;
}

typedef struct fd_ctx {
    th_model *m;
    const float *x, *c;
    int train;
} fd_ctx;

static double full_score(void *p)
{
    fd_ctx *q = p;
    return score(q->m, q->x, q->c, q->train);
}

/* The layers after `from` as a model of their own (same names, same
 * parameters), to perturb an inner activation directly. */
static int tail_model(th_model *tail, th_model *full, const th_model_spec *spec, int from)
{
    th_model_spec ts = {.c = full->layers[from].out_c, .h = full->layers[from].out_h, .w = full->layers[from].out_w};
    for (int i = from + 1; i < spec->n_layers; i++) ts.layers[ts.n_layers++] = spec->layers[i];
    th_err err;
    if (th_model_create(tail, &ts, L, N, &err)) return -1;
    for (int t = 0; t < tail->n_tensors; t++) {
        int j = th_model_find_tensor(full, tail->tensors[t].name);
        if (j < 0) return -1;
        memcpy(th_model_tensor_data(tail, t), th_model_tensor_data(full, j), tail->tensors[t].count * sizeof(float));
    }
    return 0;
}

static void test_grad_at(int train)
{
    th_model m;
    th_err err;
    th_model_spec spec = bn_spec();
    CHECK(th_model_create(&m, &spec, L, N, &err) == 0);
    th_model_init_params(&m, 7);
    perturb_bn(&m);
    float x[N * C * H * W], c[N * L];
    th_test_fill(x, sizeof x / sizeof x[0], -1, 1, 21);
    th_test_fill(c, N * L, -1, 1, 22);

    /* Input gradient (saliency's) against differences on x. */
    score(&m, x, c, train);
    CHECK(m.last_train == train);
    const float *g = th_model_grad_at(&m, x, c, N, -1);
    float gx[N * C * H * W];
    memcpy(gx, g, sizeof gx);
    fd_ctx ctx = {&m, x, c, train};
    int kinks = 0;
    int checked = check_fd(train ? "input, train" : "input, eval", x, gx, sizeof x / sizeof x[0], full_score, &ctx, &kinks);
    CHECK(checked >= 15);
    CHECK(kinks <= 3);

    /* ReLU's chain rule: the gradient at conv2's output is that at relu2's
     * output where relu2 passed the value, 0 elsewhere. */
    score(&m, x, c, train);
    size_t count = (size_t)N * 6 * (H / 2) * (W / 2);
    float *g_relu = malloc(count * sizeof(float)), *g_conv = malloc(count * sizeof(float));
    memcpy(g_relu, th_model_grad_at(&m, x, c, N, 5), count * sizeof(float));
    memcpy(g_conv, th_model_grad_at(&m, x, c, N, 4), count * sizeof(float));
    int same = 1, nonzero = 0;
    for (size_t i = 0; i < count; i++) {
        float want = m.layers[5].y[i] > 0.0f ? g_relu[i] : 0.0f;
        same &= g_conv[i] == want;
        nonzero += g_conv[i] != 0.0f;
    }
    CHECK(same);
    CHECK(nonzero > 0);
    free(g_relu);
    free(g_conv);
    th_model_free(&m);
}

typedef struct tail_ctx {
    th_model *tail;
    const float *a, *c;
} tail_ctx;

static double tail_score(void *p)
{
    tail_ctx *q = p;
    const float *z = th_model_forward(q->tail, q->a, N, 0);
    double s = 0.0;
    for (int i = 0; i < N * L; i++) s += (double)q->c[i] * z[i];
    return s;
}

/* Eval mode at inner layers: the gradient at bn1's output (through relu,
 * pool, conv, relu, dropout, gap, fc) and at conv1's (through bn1 with its
 * running statistics) against differences on that activation. */
static void test_grad_at_inner(void)
{
    th_model m;
    th_err err;
    th_model_spec spec = bn_spec();
    CHECK(th_model_create(&m, &spec, L, N, &err) == 0);
    th_model_init_params(&m, 8);
    perturb_bn(&m);
    float x[N * C * H * W], c[N * L];
    th_test_fill(x, sizeof x / sizeof x[0], -1, 1, 31);
    th_test_fill(c, N * L, -1, 1, 32);
    const int inner[] = {0, 1, 3};
    for (size_t t = 0; t < sizeof inner / sizeof inner[0]; t++) {
        int at = inner[t];
        /* bn1 runs fused with relu1 and keeps no output of its own unless asked. */
        CHECK(th_model_keep_output(&m, at, &err) == 0);
        th_model tail;
        if (!CHECK(tail_model(&tail, &m, &spec, at) == 0)) continue;
        const float *z = th_model_forward(&m, x, N, 0);
        float logits[N * L];
        memcpy(logits, z, sizeof logits);
        size_t count = (size_t)N * m.layers[at].out_c * m.layers[at].out_h * m.layers[at].out_w;
        float *a = malloc(count * sizeof(float)), *g = malloc(count * sizeof(float));
        memcpy(a, m.layers[at].y, count * sizeof(float));
        memcpy(g, th_model_grad_at(&m, x, c, N, at), count * sizeof(float));
        /* The tail reproduces the full model from that activation on. */
        const float *zt = th_model_forward(&tail, a, N, 0);
        CHECK(th_test_max_rel(zt, logits, N * L, 1e-3) < 1e-5);
        tail_ctx ctx = {&tail, a, c};
        int kinks = 0;
        CHECK(check_fd(m.layers[at].name, a, g, count, tail_score, &ctx, &kinks) >= 15);
        CHECK(kinks <= 3);
        free(a);
        free(g);
        th_model_free(&tail);
    }
    th_model_free(&m);
}

/* th_model_backward after an eval forward: batch-norm's parameter gradients
 * use the running statistics too. The net is linear (conv-bn-avgpool-gap-fc)
 * so that finite differences have no kinks: a batch-norm parameter moves
 * every pixel of its channel and would cross many. */
static void test_backward_eval_bn(void)
{
    th_model_spec s = {.c = C, .h = H, .w = W};
    s.layers[s.n_layers++] = layer(TH_LAYER_CONV, "conv1", 4, 3, 1, 1);
    s.layers[s.n_layers++] = layer(TH_LAYER_BATCHNORM, "bn1", 0, 0, 0, 0);
    s.layers[s.n_layers++] = layer(TH_LAYER_AVGPOOL, "pool1", 0, 2, 2, 0);
    s.layers[s.n_layers++] = layer(TH_LAYER_GAP, "gap", 0, 0, 0, 0);
    s.layers[s.n_layers++] = layer(TH_LAYER_DENSE, "fc", TH_OUT_LABELS, 0, 0, 0);
    th_model m;
    th_err err;
    CHECK(th_model_create(&m, &s, L, N, &err) == 0);
    th_model_init_params(&m, 9);
    perturb_bn(&m);
    float x[N * C * H * W], c[N * L];
    th_test_fill(x, sizeof x / sizeof x[0], -1, 1, 61);
    th_test_fill(c, N * L, -1, 1, 62);
    score(&m, x, c, 0);
    th_model_backward(&m, x, c, N);
    float *analytic = malloc(m.n_params * sizeof(float));
    memcpy(analytic, m.grads, m.n_params * sizeof(float));
    fd_ctx ctx = {&m, x, c, 0};
    int kinks = 0;
    CHECK(check_fd("all parameters, eval", m.params, analytic, m.n_params, full_score, &ctx, &kinks) >= 15);
    CHECK(kinks == 0);
    free(analytic);
    th_model_free(&m);
}

/* conv-relu-conv-gap-fc at 16x16: Grad-CAM at conv2 is ReLU(CAM) / (fh*fw). */
static void test_gradcam_equals_cam(void)
{
    th_model_spec s = {.c = 1, .h = 16, .w = 16};
    s.layers[s.n_layers++] = layer(TH_LAYER_CONV, "", 4, 3, 2, 1);
    s.layers[s.n_layers++] = layer(TH_LAYER_RELU, "", 0, 0, 0, 0);
    s.layers[s.n_layers++] = layer(TH_LAYER_CONV, "", 5, 3, 1, 1);
    s.layers[s.n_layers++] = layer(TH_LAYER_GAP, "", 0, 0, 0, 0);
    s.layers[s.n_layers++] = layer(TH_LAYER_DENSE, "", TH_OUT_LABELS, 0, 0, 0);
    th_model m;
    th_err err;
    CHECK(th_model_create(&m, &s, L, 1, &err) == 0);
    th_model_init_params(&m, 4);
    for (int t = 0; t < m.n_tensors; t++)
        if (!strcmp(m.tensors[t].name, "fc.bias")) th_test_fill(th_model_tensor_data(&m, t), L, -1, 1, 3);
    float x[16 * 16];
    th_test_fill(x, 256, -1, 1, 41);

    int layer_i = th_cam_layer_index(&m, NULL, &err);
    CHECK(layer_i == 2);
    CHECK(th_cam_layer_index(&m, "conv1", &err) == 0);
    CHECK(th_cam_layer_index(&m, "fc", &err) == -1 && strstr(err.msg, "'fc'"));
    CHECK(th_cam_layer_index(&m, "conv9", &err) == -1 && strstr(err.msg, "'conv9'"));

    int fh, fw, gh, gw;
    CHECK(th_cam_feature_shape(&m, TH_CAM_CAM, -1, &fh, &fw, &err) == 0 && fh == 8 && fw == 8);
    float cam[64], gcam[64], img[256], prob;
    int positive = 0;
    for (int label = 0; label < L; label++) {
        CHECK(th_cam_compute(&m, x, label, TH_CAM_CAM, -1, 0, cam, &fh, &fw, img, &prob, &err) == 0);
        CHECK(fh == 8 && fw == 8);
        /* The definition: the map's mean plus the bias is the logit. */
        const float *z = th_model_forward(&m, x, 1, 0);
        double mean = 0;
        for (int p = 0; p < 64; p++) mean += cam[p] / 64.0;
        const float *bias = th_model_tensor_data(&m, th_model_find_tensor(&m, "fc.bias"));
        CHECK_NEAR(mean + bias[label], z[label], 1e-4);
        CHECK_NEAR(prob, 1.0 / (1.0 + exp(-z[label])), 1e-6);

        CHECK(th_cam_compute(&m, x, label, TH_CAM_GRADCAM, layer_i, 0, gcam, &gh, &gw, NULL, NULL, &err) == 0);
        CHECK(gh == 8 && gw == 8);
        float want[64];
        for (int p = 0; p < 64; p++) {
            want[p] = cam[p] > 0 ? cam[p] / 64.0f : 0.0f;
            positive += want[p] > 0;
        }
        CHECK(th_test_max_rel(gcam, want, 64, 1e-6) < 1e-4);
    }
    CHECK(positive > 20);

    /* Softmax probabilities sum to one over labels. */
    double total = 0;
    for (int label = 0; label < L; label++) {
        CHECK(th_cam_compute(&m, x, label, TH_CAM_CAM, -1, 1, cam, &fh, &fw, NULL, &prob, &err) == 0);
        total += prob;
    }
    CHECK_NEAR(total, 1.0, 1e-5);

    /* Saliency is |d z / d x| for a one-channel image, at image resolution. */
    CHECK(th_cam_compute(&m, x, 1, TH_CAM_SALIENCY, -1, 0, img, &fh, &fw, NULL, NULL, &err) == 0);
    CHECK(fh == 16 && fw == 16);
    float dz[L] = {0, 1, 0}, want[256];
    th_model_forward(&m, x, 1, 0);
    const float *g = th_model_grad_at(&m, x, dz, 1, -1);
    for (int p = 0; p < 256; p++) want[p] = fabsf(g[p]);
    CHECK(memcmp(img, want, sizeof want) == 0);

    CHECK(th_cam_compute(&m, x, L, TH_CAM_CAM, -1, 0, cam, &fh, &fw, NULL, NULL, &err) == -1);
    CHECK(strstr(err.msg, "label index 3") != NULL);
    th_model_free(&m);

    /* No gap -> dense head: CAM is refused, Grad-CAM still works. */
    th_model_spec s2 = s;
    s2.layers[4] = layer(TH_LAYER_DENSE, "", 6, 0, 0, 0);
    s2.layers[5] = layer(TH_LAYER_RELU, "", 0, 0, 0, 0);
    s2.layers[6] = layer(TH_LAYER_DENSE, "", TH_OUT_LABELS, 0, 0, 0);
    s2.n_layers = 7;
    CHECK(th_model_create(&m, &s2, L, 1, &err) == 0);
    CHECK(th_cam_compute(&m, x, 0, TH_CAM_CAM, -1, 0, cam, &fh, &fw, NULL, NULL, &err) == -1);
    CHECK(strstr(err.msg, "gap -> dense") != NULL);
    CHECK(th_cam_compute(&m, x, 0, TH_CAM_GRADCAM, 2, 0, gcam, &fh, &fw, NULL, NULL, &err) == 0);
    CHECK(th_cam_compute(&m, x, 0, TH_CAM_GRADCAM, 3, 0, gcam, &fh, &fw, NULL, NULL, &err) == -1);
    th_model_free(&m);
}

/* The quickstart's conv-bn-relu-gap ending: the default layer is relu (the
 * rectified block output, which feeds gap), where Grad-CAM and CAM agree
 * through an eval-mode batch-norm. */
/* gap -> dropout -> dense: dropout is the identity at evaluation, so CAM
 * reads through it and equals CAM of the same network without the dropout
 * (the same weights, copied by name). */
static void test_cam_through_dropout(void)
{
    th_model_spec s = {.c = 1, .h = 16, .w = 16};
    s.layers[s.n_layers++] = layer(TH_LAYER_CONV, "conv1", 4, 3, 2, 1);
    s.layers[s.n_layers++] = layer(TH_LAYER_RELU, "relu1", 0, 0, 0, 0);
    s.layers[s.n_layers++] = layer(TH_LAYER_CONV, "conv2", 5, 3, 1, 1);
    s.layers[s.n_layers++] = layer(TH_LAYER_GAP, "gap", 0, 0, 0, 0);
    th_model_spec d = s;
    d.layers[d.n_layers] = layer(TH_LAYER_DROPOUT, "drop", 0, 0, 0, 0);
    d.layers[d.n_layers++].p = 0.5f;
    s.layers[s.n_layers++] = layer(TH_LAYER_DENSE, "fc", TH_OUT_LABELS, 0, 0, 0);
    d.layers[d.n_layers++] = layer(TH_LAYER_DENSE, "fc", TH_OUT_LABELS, 0, 0, 0);
    th_model plain, drop;
    th_err err;
    CHECK(th_model_create(&plain, &s, L, 1, &err) == 0);
    CHECK(th_model_create(&drop, &d, L, 1, &err) == 0);
    th_model_init_params(&plain, 4);
    th_model_init_params(&drop, 9);
    int copied = 0;
    for (int t = 0; t < plain.n_tensors; t++) {
        int u = th_model_find_tensor(&drop, plain.tensors[t].name);
        CHECK(u >= 0 && drop.tensors[u].count == plain.tensors[t].count);
        if (u < 0) continue;
        memcpy(th_model_tensor_data(&drop, u), th_model_tensor_data(&plain, t), sizeof(float) * plain.tensors[t].count);
        copied++;
    }
    CHECK(copied == plain.n_tensors && copied >= 4);
    CHECK(th_cam_feature_layer(&drop) == 2);
    float x[16 * 16];
    th_test_fill(x, 256, -1, 1, 17);
    for (int label = 0; label < L; label++) {
        float a[64], b[64], ia[256], ib[256], pa, pb;
        int fh, fw, gh, gw;
        CHECK(th_cam_compute(&plain, x, label, TH_CAM_CAM, -1, 0, a, &fh, &fw, ia, &pa, &err) == 0);
        CHECK(th_cam_compute(&drop, x, label, TH_CAM_CAM, -1, 0, b, &gh, &gw, ib, &pb, &err) == 0);
        CHECK(fh == 8 && fw == 8 && gh == 8 && gw == 8);
        CHECK(memcmp(a, b, sizeof a) == 0 && memcmp(ia, ib, sizeof ia) == 0);
        CHECK(pa == pb);
    }
    th_model_free(&plain);
    th_model_free(&drop);

    /* A layer that is not the identity between gap and dense still fails. */
    th_model_spec r = d;
    r.layers[r.n_layers - 2] = layer(TH_LAYER_RELU, "relu9", 0, 0, 0, 0);
    th_model m;
    CHECK(th_model_create(&m, &r, L, 1, &err) == 0);
    int fh, fw;
    CHECK(th_cam_feature_shape(&m, TH_CAM_CAM, -1, &fh, &fw, &err) == -1 && strstr(err.msg, "gap -> dense"));
    th_model_free(&m);
}

static void test_default_layer_bn(void)
{
    th_model_spec s = {.c = 1, .h = 12, .w = 12};
    s.layers[s.n_layers++] = layer(TH_LAYER_CONV, "", 4, 3, 1, 1);
    s.layers[s.n_layers++] = layer(TH_LAYER_BATCHNORM, "bn1", 0, 0, 0, 0);
    s.layers[s.n_layers++] = layer(TH_LAYER_RELU, "", 0, 0, 0, 0);
    s.layers[s.n_layers++] = layer(TH_LAYER_MAXPOOL, "", 0, 2, 2, 0);
    s.layers[s.n_layers++] = layer(TH_LAYER_CONV, "", 8, 3, 1, 1);
    s.layers[s.n_layers++] = layer(TH_LAYER_BATCHNORM, "", 0, 0, 0, 0);
    s.layers[s.n_layers++] = layer(TH_LAYER_RELU, "", 0, 0, 0, 0);
    s.layers[s.n_layers++] = layer(TH_LAYER_GAP, "", 0, 0, 0, 0);
    s.layers[s.n_layers++] = layer(TH_LAYER_DENSE, "", TH_OUT_LABELS, 0, 0, 0);
    th_model m;
    th_err err;
    CHECK(th_model_create(&m, &s, L, 1, &err) == 0);
    th_model_init_params(&m, 5);
    perturb_bn(&m);
    int li = th_cam_layer_index(&m, "", &err);
    CHECK(li == 6 && !strcmp(m.layers[li].name, "relu2"));
    float x[144], cam[36], gcam[36];
    th_test_fill(x, 144, -1, 1, 51);
    int fh, fw;
    for (int label = 0; label < L; label++) {
        CHECK(th_cam_compute(&m, x, label, TH_CAM_CAM, li, 0, cam, &fh, &fw, NULL, NULL, &err) == 0);
        CHECK(th_cam_compute(&m, x, label, TH_CAM_GRADCAM, li, 0, gcam, &fh, &fw, NULL, NULL, &err) == 0);
        for (int p = 0; p < 36; p++) cam[p] = cam[p] > 0 ? cam[p] / 36.0f : 0.0f;
        CHECK(th_test_max_rel(gcam, cam, 36, 1e-6) < 1e-4);
    }
    th_model_free(&m);
}

static void test_upsample(void)
{
    float src[15], dst[77];
    for (int i = 0; i < 15; i++) src[i] = 2.5f;
    th_upsample_bilinear(src, 3, 5, dst, 7, 11);
    int constant = 1;
    for (int i = 0; i < 77; i++) constant &= fabsf(dst[i] - 2.5f) < 1e-6f;
    CHECK(constant);

    /* PyTorch's interpolate(bilinear, align_corners=False) of [[0,1],[2,3]] to 4x4. */
    const float two[4] = {0, 1, 2, 3};
    const float want[16] = {0, 0.25f, 0.75f, 1, 0.5f, 0.75f, 1.25f, 1.5f,
                            1.5f, 1.75f, 2.25f, 2.5f, 2, 2.25f, 2.75f, 3};
    float got[16];
    th_upsample_bilinear(two, 2, 2, got, 4, 4);
    for (int i = 0; i < 16; i++) CHECK_NEAR(got[i], want[i], 1e-6);

    /* The same size is the identity; 1x1 fills. */
    float id[4];
    th_upsample_bilinear(two, 2, 2, id, 2, 2);
    CHECK(memcmp(id, two, sizeof id) == 0);
    float one = 7.0f, fill[6];
    th_upsample_bilinear(&one, 1, 1, fill, 2, 3);
    for (int i = 0; i < 6; i++) CHECK(fill[i] == 7.0f);

    /* Against a naive loop in double, written from the definition: output
     * pixel (i, j) samples the source at ((i + .5) sh/dh - .5, (j + .5) sw/dw
     * - .5), clamped to [0, s - 1], as a weighted sum of the four
     * neighbours. Non-integer ratios both ways (7x5 -> 512x403, the overlay
     * sizes of a non-square map). */
    enum { SH = 7, SW = 5, DH = 512, DW = 403 };
    float in[SH * SW];
    th_test_fill(in, SH * SW, -2, 3, 77);
    float *out = malloc(sizeof(float) * DH * DW);
    th_upsample_bilinear(in, SH, SW, out, DH, DW);
    double worst = 0.0;
    for (int i = 0; i < DH; i++)
        for (int j = 0; j < DW; j++) {
            double sy = fmin(fmax((i + 0.5) * SH / DH - 0.5, 0.0), SH - 1);
            double sx = fmin(fmax((j + 0.5) * SW / DW - 0.5, 0.0), SW - 1);
            int y0 = (int)floor(sy), x0 = (int)floor(sx);
            int y1 = y0 + 1 < SH ? y0 + 1 : y0, x1 = x0 + 1 < SW ? x0 + 1 : x0;
            double fy = sy - y0, fx = sx - x0;
            double want = (1 - fy) * ((1 - fx) * in[y0 * SW + x0] + fx * in[y0 * SW + x1]) +
                          fy * ((1 - fx) * in[y1 * SW + x0] + fx * in[y1 * SW + x1]);
            worst = fmax(worst, fabs(out[(size_t)i * DW + j] - want));
        }
    CHECK(worst < 1e-5);
    free(out);
}

static void test_scores(void)
{
    /* 4x4, lesion in the top-left 2x2. */
    const uint8_t mask[16] = {1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    const uint8_t empty[16] = {0};
    float hit[16] = {0}, miss[16] = {0}, flat[16];
    hit[5] = 3.0f;
    hit[15] = 1.0f;
    hit[10] = -4.0f;
    miss[0] = 1.0f;
    miss[15] = 3.0f;
    for (int i = 0; i < 16; i++) flat[i] = 0.5f;
    CHECK(th_cam_pointing_hit(hit, mask, 4, 4) == 1);
    CHECK(th_cam_pointing_hit(miss, mask, 4, 4) == 0);
    CHECK(th_cam_pointing_hit(flat, mask, 4, 4) == 0);
    CHECK(th_cam_pointing_hit(hit, empty, 4, 4) == -1);

    /* Negative values carry no mass. */
    CHECK_NEAR(th_cam_mask_energy(hit, mask, 4, 4), 0.75, 1e-12);
    CHECK_NEAR(th_cam_mask_energy(miss, mask, 4, 4), 0.25, 1e-12);
    CHECK_NEAR(th_cam_mask_energy(flat, mask, 4, 4), 0.25, 1e-12);
    float zero[16] = {0};
    CHECK_NEAR(th_cam_mask_energy(zero, mask, 4, 4), 0.0, 0);
    CHECK(th_cam_mask_energy(hit, empty, 4, 4) == -1.0);

    /* Top quarter (4 pixels) of a ramp that peaks on the lesion: IoU 1; top
     * half: 4 of 8 pixels. */
    float ramp[16];
    for (int i = 0; i < 16; i++) ramp[i] = (float)(16 - i);
    ramp[4] = 20.0f;
    ramp[5] = 19.0f;
    CHECK_NEAR(th_cam_iou_at(ramp, mask, 4, 4, 0.75), 1.0, 1e-12);
    CHECK_NEAR(th_cam_iou_at(ramp, mask, 4, 4, 0.5), 0.5, 1e-12);
    /* Ties at the threshold all count: a flat map selects everything. */
    CHECK_NEAR(th_cam_iou_at(flat, mask, 4, 4, 0.9), 0.25, 1e-12);
    CHECK(th_cam_iou_at(ramp, mask, 4, 4, 1.0) == -1.0);
    CHECK(th_cam_iou_at(ramp, empty, 4, 4, 0.5) == -1.0);
    /* At the lesion's own area (4 of 16 pixels): the ramp's top 4 are the
     * lesion; a flat map selects everything (4 of 16); no lesion, or a
     * lesion everywhere, has no such region. */
    uint8_t full[16];
    memset(full, 1, sizeof full);
    CHECK_NEAR(th_cam_iou_lesion(ramp, mask, 4, 4), 1.0, 1e-12);
    CHECK_NEAR(th_cam_iou_lesion(flat, mask, 4, 4), 0.25, 1e-12);
    CHECK(th_cam_iou_lesion(ramp, empty, 4, 4) == -1.0);
    CHECK(th_cam_iou_lesion(ramp, full, 4, 4) == -1.0);
}

static void test_dilate(void)
{
    /* One pixel grown by 2 is the disc of radius 2 (13 pixels); clipped at
     * the border; radius 0 copies the mask as 0/1. */
    enum { DH = 7, DW = 6 };
    uint8_t mask[DH * DW] = {0}, out[DH * DW];
    mask[3 * DW + 2] = 9;
    th_cam_mask_dilate(mask, DH, DW, 2, out);
    int count = 0;
    for (int y = 0; y < DH; y++)
        for (int x = 0; x < DW; x++) {
            int in = (y - 3) * (y - 3) + (x - 2) * (x - 2) <= 4;
            CHECK(out[y * DW + x] == in);
            count += out[y * DW + x];
        }
    CHECK(count == 13);
    memset(mask, 0, sizeof mask);
    mask[0] = 1;
    th_cam_mask_dilate(mask, DH, DW, 1, out);
    CHECK(out[0] == 1 && out[1] == 1 && out[DW] == 1 && out[DW + 1] == 0 && out[2] == 0);
    th_cam_mask_dilate(mask, DH, DW, 0, out);
    CHECK(out[0] == 1 && out[1] == 0);

    /* A near miss becomes a hit once the mask is grown past it. */
    float map[DH * DW] = {0};
    map[2 * DW + 2] = 1.0f;
    memset(mask, 0, sizeof mask);
    mask[4 * DW + 2] = 1;
    CHECK(th_cam_pointing_hit(map, mask, DH, DW) == 0);
    th_cam_mask_dilate(mask, DH, DW, 1, out);
    CHECK(th_cam_pointing_hit(map, out, DH, DW) == 0);
    th_cam_mask_dilate(mask, DH, DW, 2, out);
    CHECK(th_cam_pointing_hit(map, out, DH, DW) == 1);
}

static int read_floats(hid_t f, const char *name, float *out, hsize_t *dims)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t sp = H5Dget_space(d);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    herr_t rc = H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    H5Dclose(d);
    return rc < 0 ? -1 : 0;
}

static void test_writer(void)
{
    char dir[] = "/tmp/thorax-test-cam-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], tmp[300];
    snprintf(path, sizeof path, "%s/maps.h5", dir);
    th_tmp_path(path, tmp, sizeof tmp, NULL);
    enum { M = 3, MH = 4, MW = 4 };
    th_cam_method methods[2] = {TH_CAM_CAM, TH_CAM_SALIENCY};
    int fh[2] = {2, MH}, fw[2] = {3, MW};
    const char *names[M] = {"P00001_000.png", "P00002_001.png", "P00003_000.png"};
    const char *labels[M] = {"Nodule", "Effusion", "Nodule"};
    th_cam_writer wr;
    th_err err;
    CHECK(th_cam_writer_open(&wr, path, M, MH, MW, 2, methods, fh, fw, &err) == 0);
    CHECK(access(tmp, F_OK) == 0);
    float img[MH * MW], feat[MH * MW];
    for (int i = 0; i < M; i++)
        for (int k = 0; k < 2; k++) {
            for (int p = 0; p < MH * MW; p++) img[p] = (float)(100 * i + 10 * k + p);
            for (int p = 0; p < fh[k] * fw[k]; p++) feat[p] = -(float)(100 * i + 10 * k + p);
            CHECK(th_cam_writer_put(&wr, i, methods[k], img, feat, 40 + i, names[i], labels[i], 0.1f * (float)i,
                                    &err) == 0);
        }
    CHECK(th_cam_writer_put(&wr, 0, TH_CAM_GRADCAM, img, feat, 0, "x", "y", 0, &err) == -1);
    CHECK(strstr(err.msg, "gradcam") != NULL);
    CHECK(th_cam_writer_close(&wr, &err) == 0);
    CHECK(access(path, F_OK) == 0);
    CHECK(access(tmp, F_OK) != 0);

    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0);
    float all[M * MH * MW];
    hsize_t dims[3] = {0};
    CHECK(read_floats(f, "maps/saliency", all, dims) == 0);
    CHECK(dims[0] == M && dims[1] == MH && dims[2] == MW);
    CHECK(all[2 * MH * MW + 5] == 200 + 10 + 5);
    CHECK(read_floats(f, "maps_feature/cam", all, dims) == 0);
    CHECK(dims[0] == M && dims[1] == 2 && dims[2] == 3);
    CHECK(all[1 * 6 + 4] == -(100 + 4));
    float prob[M];
    CHECK(read_floats(f, "prob", prob, dims) == 0);
    CHECK(dims[0] == M && fabsf(prob[2] - 0.2f) < 1e-7f);
    long long index[M];
    hid_t d = H5Dopen2(f, "index", H5P_DEFAULT);
    CHECK(H5Dread(d, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, index) >= 0);
    CHECK(index[0] == 40 && index[2] == 42);
    H5Dclose(d);
    const char *fields[2] = {"image_name", "label"};
    const char **want[2] = {names, labels};
    for (int k = 0; k < 2; k++) {
        char *got[M] = {0};
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        H5Tset_cset(t, H5T_CSET_UTF8);
        d = H5Dopen2(f, fields[k], H5P_DEFAULT);
        CHECK(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, got) >= 0);
        for (int i = 0; i < M; i++) {
            CHECK(got[i] && !strcmp(got[i], want[k][i]));
            free(got[i]);
        }
        H5Dclose(d);
        H5Tclose(t);
    }
    H5Fclose(f);

    /* Extra columns: written whole, next to the writer's own. */
    CHECK(th_cam_writer_open(&wr, path, M, MH, MW, 1, methods, fh, fw, &err) == 0);
    for (int i = 0; i < M; i++)
        CHECK(th_cam_writer_put(&wr, i, TH_CAM_CAM, img, feat, i, names[i], labels[i], 0.5f, &err) == 0);
    const char *kinds[M] = {"TP", "FP", "FN"};
    const int8_t hits[M] = {1, -1, 0};
    const float energy[M] = {0.25f, NAN, 0.0f};
    CHECK(th_cam_writer_column(&wr, "kind", TH_CAM_COLUMN_STRING, kinds, &err) == 0);
    CHECK(th_cam_writer_column(&wr, "pointing_hit", TH_CAM_COLUMN_INT8, hits, &err) == 0);
    CHECK(th_cam_writer_column(&wr, "mask_energy", TH_CAM_COLUMN_FLOAT32, energy, &err) == 0);
    CHECK(th_cam_writer_column(&wr, "prob", TH_CAM_COLUMN_FLOAT32, energy, &err) == -1);
    CHECK(strstr(err.msg, "/prob") != NULL);
    CHECK(th_cam_writer_close(&wr, &err) == 0);
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0);
    float got_energy[M];
    CHECK(read_floats(f, "mask_energy", got_energy, dims) == 0);
    CHECK(dims[0] == M && got_energy[0] == 0.25f && isnan(got_energy[1]));
    signed char got_hits[M];
    d = H5Dopen2(f, "pointing_hit", H5P_DEFAULT);
    CHECK(H5Dread(d, H5T_NATIVE_SCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, got_hits) >= 0);
    CHECK(got_hits[0] == 1 && got_hits[1] == -1 && got_hits[2] == 0);
    H5Dclose(d);
    H5Fclose(f);
    unlink(path);

    /* A row left out: no file, no temporary, an error naming row and method. */
    unlink(path);
    CHECK(th_cam_writer_open(&wr, path, 2, MH, MW, 1, methods, fh, fw, &err) == 0);
    CHECK(th_cam_writer_put(&wr, 0, TH_CAM_CAM, img, feat, 0, "a.png", "Nodule", 0.5f, &err) == 0);
    CHECK(th_cam_writer_close(&wr, &err) == -1);
    CHECK(strstr(err.msg, "row 1") && strstr(err.msg, "cam"));
    CHECK(access(path, F_OK) != 0 && access(tmp, F_OK) != 0);
    CHECK(th_cam_writer_open(&wr, "/nonexistent/maps.h5", 1, MH, MW, 1, methods, fh, fw, &err) == -1);
    CHECK(strstr(err.msg, "/nonexistent/maps.h5") != NULL);

    char name[64];
    CHECK(th_cam_png_name(name, sizeof name, "P00042_003.png", "Nodule", TH_CAM_GRADCAM, NULL, &err) == 0);
    CHECK(!strcmp(name, "P00042_003__Nodule__gradcam.png"));
    CHECK(th_cam_png_name(name, sizeof name, "images/a.b/x", "Mass", TH_CAM_CAM, "FN", &err) == 0);
    CHECK(!strcmp(name, "images_a.b_x__Mass__cam_FN.png"));
    /* A label is data: one naming for cam and predict --cam, never a path. */
    CHECK(th_cam_png_name(name, sizeof name, "x.png", "../Pleural Thickening/", TH_CAM_CAM, NULL, &err) == 0);
    CHECK(!strcmp(name, "x__.._Pleural_Thickening___cam.png"));
    CHECK(th_cam_png_name(name, 8, "P00042_003.png", "Nodule", TH_CAM_CAM, NULL, &err) == -1);

    /* Outcomes at an operating point: p >= t is positive. */
    CHECK(!strcmp(th_cam_outcome(0.7, 0.7, 1), "TP") && !strcmp(th_cam_outcome(0.69, 0.7, 1), "FN"));
    CHECK(!strcmp(th_cam_outcome(0.7, 0.7, 0), "FP") && !strcmp(th_cam_outcome(0.2, 0.7, 0), "TN"));
    CHECK(!strcmp(th_cam_outcome(0.9, 0.5, -1), "unknown"));
    rmdir(dir);
}

static void test_overlay_blend(void)
{
    enum { OH = 32, OW = 40 };
    uint8_t xray[OH * OW];
    float map[OH * OW];
    for (int i = 0; i < OH * OW; i++) {
        xray[i] = (uint8_t)(i % 200 + 20);
        map[i] = 0.0f;
    }
    map[5 * OW + 7] = 2.0f;   /* the maximum */
    map[6 * OW + 7] = 0.5f;   /* a quarter: opacity half of the maximum's */
    map[20 * OW + 3] = -1.0f; /* negative evidence: not drawn */
    uint8_t *rgb = malloc((size_t)OH * OW * 3);
    th_overlay_rgb(xray, map, OH, OW, 2.0f, rgb);
    uint8_t hot[3], cold[3], quarter[3];
    th_overlay_colormap(1.0f, hot);
    th_overlay_colormap(0.0f, cold);
    th_overlay_colormap(64.0f / 255.0f, quarter);
    CHECK(hot[0] > 100 && hot[1] < 60 && hot[2] < 60);    /* turbo ends dark red */
    CHECK(cold[2] > cold[0] && cold[2] > cold[1]);         /* and starts dark blue */
    const uint8_t *px = rgb + ((size_t)5 * OW + 7) * 3;
    float g = xray[5 * OW + 7];
    for (int k = 0; k < 3; k++)
        CHECK_NEAR(px[k], (1 - TH_OVERLAY_ALPHA_MAX) * g + TH_OVERLAY_ALPHA_MAX * hot[k], 0.51);
    px = rgb + ((size_t)6 * OW + 7) * 3;
    g = xray[6 * OW + 7];
    for (int k = 0; k < 3; k++)
        CHECK_NEAR(px[k], (1 - 0.5f * TH_OVERLAY_ALPHA_MAX) * g + 0.5f * TH_OVERLAY_ALPHA_MAX * quarter[k], 0.51);
    const int grey[2] = {20 * OW + 3, 30 * OW + 30};
    for (int j = 0; j < 2; j++) {
        px = rgb + (size_t)grey[j] * 3;
        CHECK(px[0] == xray[grey[j]] && px[1] == xray[grey[j]] && px[2] == xray[grey[j]]);
    }
    /* Scale 0 (no positive value) leaves the X-ray untouched. */
    th_overlay_rgb(xray, map, OH, OW, 0.0f, rgb);
    int untouched = 1;
    for (int i = 0; i < OH * OW; i++) untouched &= rgb[3 * i + 1] == xray[i];
    CHECK(untouched);
    free(rgb);
}

static int is_black(const uint8_t *rgb, int width, int x, int y)
{
    const uint8_t *p = rgb + ((size_t)y * width + x) * 3;
    return !p[0] && !p[1] && !p[2];
}

/* The overlay of a small model's image: panels of at least 512 px, and a
 * caption far too long for one line (a long path and many words) that is
 * wrapped, drawn inside its box, the box inside the image, and nothing in
 * the margin band. */
static void check_overlay(int h, int w, int mh, int mw, int want_ph, int want_pw)
{
    uint8_t *xray = malloc((size_t)h * w);
    float *map = malloc(sizeof(float) * (size_t)mh * mw);
    for (int i = 0; i < h * w; i++) xray[i] = (uint8_t)(i * 7 % 256);
    for (int i = 0; i < mh * mw; i++) map[i] = (float)(i % 5) - 1.0f;
    char caption[1400];
    int n = snprintf(caption, sizeof caption, "image ");
    for (int i = 0; i < 30; i++) n += snprintf(caption + n, sizeof caption - (size_t)n, "dir%02d/", i);
    snprintf(caption + n, sizeof caption - (size_t)n,
             "P00042_003.png\nPneumothorax: p=0.934, truth y=1: TP at threshold 0.412 (val's operating point, "
             "youden); chosen as one of the top 10 TP by rank\ngradcam at layer relu4, checkpoint best (epoch 12)");
    th_overlay o = {.xray = xray, .h = h, .w = w, .map = map, .mh = mh, .mw = mw, .caption = caption};
    uint8_t *rgb = NULL;
    th_overlay_layout L;
    th_err err;
    CHECK(th_overlay_render(&o, &rgb, &L, &err) == 0);
    if (!rgb) {
        free(xray);
        free(map);
        return;
    }
    CHECK(L.panel_h == want_ph && L.panel_w == want_pw);
    CHECK((L.panel_h > L.panel_w ? L.panel_h : L.panel_w) >= TH_OVERLAY_MIN_PX);
    CHECK(L.width > 2 * L.panel_w && L.height > L.panel_h);
    CHECK(L.caption_lines >= 4); /* the path alone needs two lines at any size */
    CHECK(L.scale == 3.0f);
    CHECK(L.margin >= 4);
    /* The box inside the image, clear of the margin band, under the panels. */
    CHECK(L.caption_x0 >= L.margin && L.caption_x1 <= L.width - L.margin);
    CHECK(L.caption_y0 >= L.panel_h && L.caption_y1 <= L.height - L.margin);
    CHECK(L.caption_x1 - L.caption_x0 > L.width / 2);
    /* Pixels: the band is untouched, and every lit pixel below the panels
     * (the caption's rows) lies in the caption's box. */
    int band_clear = 1, outside = 0, lit = 0;
    for (int y = 0; y < L.height; y++)
        for (int x = 0; x < L.width; x++) {
            int edge = x < L.margin || y < L.margin || x >= L.width - L.margin || y >= L.height - L.margin;
            if (edge) band_clear &= is_black(rgb, L.width, x, y);
            if (y < L.caption_y0 || is_black(rgb, L.width, x, y)) continue;
            lit++;
            outside += x < L.caption_x0 || x >= L.caption_x1 || y >= L.caption_y1;
        }
    CHECK(band_clear);
    CHECK(lit > 500);
    CHECK(outside == 0);
    free(rgb);

    /* Written as a PNG of the layout's size. */
    char path[] = "/tmp/thorax-test-overlay-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    th_overlay_layout W;
    CHECK(th_overlay_write(path, &o, &W, &err) == 0);
    unsigned char head[24] = {0};
    FILE *fp = fopen(path, "rb");
    CHECK(fp && fread(head, 1, 24, fp) == 24);
    if (fp) fclose(fp);
    CHECK(head[1] == 'P' && head[2] == 'N' && head[3] == 'G');
    unsigned png_w = (unsigned)head[16] << 24 | (unsigned)head[17] << 16 | (unsigned)head[18] << 8 | head[19];
    unsigned png_h = (unsigned)head[20] << 24 | (unsigned)head[21] << 16 | (unsigned)head[22] << 8 | head[23];
    CHECK(png_w == (unsigned)W.width && png_h == (unsigned)W.height && W.width == L.width);
    unlink(path);
    free(xray);
    free(map);
}

static void test_overlay(void)
{
    check_overlay(28, 28, 7, 7, 512, 512);
    check_overlay(36, 47, 36, 47, 393, 512); /* ceil(36 * 512 / 47) */
    check_overlay(600, 520, 19, 16, 600, 520); /* large enough: never downsampled */

    /* A long caption of many words: the smallest font, as many lines as it
     * needs, still inside the image. */
    {
        uint8_t x[64 * 64] = {0};
        float mp[16] = {1};
        char *words = malloc(3001);
        for (int i = 0; i < 3000; i++) words[i] = i % 6 == 5 ? ' ' : (char)('a' + i % 26);
        words[3000] = '\0';
        th_overlay lo = {.xray = x, .h = 64, .w = 64, .map = mp, .mh = 4, .mw = 4, .caption = words};
        uint8_t *rgb = NULL;
        th_overlay_layout L;
        th_err e;
        CHECK(th_overlay_render(&lo, &rgb, &L, &e) == 0);
        CHECK(L.caption_px == 9.0 && L.caption_lines > 7);
        CHECK(L.caption_x0 >= L.margin && L.caption_x1 <= L.width - L.margin && L.caption_y1 <= L.height - L.margin);
        free(rgb);
        free(words);
    }

    /* A caption that cannot be laid out is an error naming the file, and
     * nothing is written. */
    uint8_t xray[4] = {0, 50, 100, 150};
    float map[4] = {0, 1, 2, 3};
    char *huge = malloc(6000);
    memset(huge, 'x', 5999);
    huge[5999] = '\0';
    th_overlay o = {.xray = xray, .h = 2, .w = 2, .map = map, .mh = 2, .mw = 2, .caption = huge};
    th_err err;
    CHECK(th_overlay_write("/tmp/thorax-test-huge-caption.png", &o, NULL, &err) == -1);
    CHECK(strstr(err.msg, "thorax-test-huge-caption.png") && strstr(err.msg, "caption"));
    CHECK(access("/tmp/thorax-test-huge-caption.png", F_OK) != 0);
    free(huge);
}

int main(void)
{
    test_grad_at(0);
    test_grad_at(1);
    test_grad_at_inner();
    test_backward_eval_bn();
    test_gradcam_equals_cam();
    test_cam_through_dropout();
    test_default_layer_bn();
    test_upsample();
    test_scores();
    test_dilate();
    test_writer();
    test_overlay_blend();
    test_overlay();
    return th_test_summary("test_cam");
}

/* test_bnrelu.c - batch-norm fused with the ReLU after it, a residual add
 * fused with the ReLU after it, and the vector 3x3/2 padded max-pool:
 *
 *  - the fused kernels against the plain batch-norm followed by the plain
 *    ReLU (bit for bit: the same float operations), and their gradient
 *    against central differences of a double-precision reference;
 *  - a network of every block that fuses (stem, residual blocks, a dense
 *    block, a transition) against the same network with every batch-norm
 *    and add group undone by th_model_keep_output: logits, running
 *    statistics and every parameter gradient bit for bit, in training and
 *    evaluation mode, on 1-3 threads, with a frozen batch-norm inside a
 *    group, and the gradient and output at a fused batch-norm and add
 *    (Grad-CAM's reads);
 *  - the vector max-pool against the scalar loops on odd and even sizes,
 *    with ties, bit for bit.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batchnorm.h"
#include "activation.h"
#include "pool.h"
#include "testutil.h"
#include "thorax/nn.h"
#include "thorax/train.h"

/* ---- kernels ---------------------------------------------------------- */

/* n images of c channels of hw values: hw 21 runs two 8-wide steps and a
 * tail of 5 per image. */
enum { KN = 3, KC = 4, KHW = 21, KM = KN * KC * KHW };

/* Double reference of sum r * relu(bn(x)) in training mode. */
static double ref_loss(const double *x, const double *gamma, const double *beta, const float *r, float eps,
                       int *signs)
{
    double loss = 0.0;
    for (int ch = 0; ch < KC; ch++) {
        double mu = 0.0, var = 0.0;
        for (int i = 0; i < KN; i++)
            for (int j = 0; j < KHW; j++) mu += x[(i * KC + ch) * KHW + j];
        mu /= KN * KHW;
        for (int i = 0; i < KN; i++)
            for (int j = 0; j < KHW; j++) {
                double d = x[(i * KC + ch) * KHW + j] - mu;
                var += d * d;
            }
        var /= KN * KHW;
        for (int i = 0; i < KN; i++)
            for (int j = 0; j < KHW; j++) {
                int k = (i * KC + ch) * KHW + j;
                double v = gamma[ch] * (x[k] - mu) / sqrt(var + eps) + beta[ch];
                if (signs) signs[k] = v > 0;
                loss += r[k] * (v > 0 ? v : 0.0);
            }
    }
    return loss;
}

/* Fused against plain (forward in both modes, backward in both), and the
 * fused gradient against central differences of ref_loss. A step moves
 * every pre-activation of the channel; a difference across a ReLU's kink
 * (some pre-activation changes sign between x - h and x + h) is skipped,
 * and there must be few of them. */
static void test_kernels(void)
{
    float x[KM], r[KM], gamma[KC], beta[KC], rm[KC], rv[KC], rm2[KC], rv2[KC];
    th_test_fill(x, KM, -2, 3, 1);
    th_test_fill(r, KM, -1, 1, 2);
    th_test_fill(gamma, KC, 0.5f, 1.5f, 3);
    th_test_fill(beta, KC, -0.5f, 0.5f, 4);
    for (int k = 0; k < KC; k++) rm[k] = rm2[k] = 0.1f * k, rv[k] = rv2[k] = 1.0f + 0.2f * k;
    const float eps = 1e-5f;
    static float y[KM], yf[KM], xhat[KM], g[KM], dx[KM], dxf[KM];
    float mean[KC], invstd[KC], meanf[KC], invstdf[KC], dg[KC], db[KC], dgf[KC], dbf[KC];
    for (int threads = 1; threads <= 3; threads++) {
        th_batchnorm_forward_train(threads, KN, KC, KHW, x, gamma, beta, y, xhat, mean, invstd, rm, rv, 0.1f, eps);
        th_relu_forward(KM, y, y);
        th_batchnorm_relu_forward_train(threads, KN, KC, KHW, x, gamma, beta, yf, meanf, invstdf, rm2, rv2, 0.1f, eps);
        CHECK(memcmp(y, yf, sizeof y) == 0 && memcmp(mean, meanf, sizeof mean) == 0);
        CHECK(memcmp(invstd, invstdf, sizeof invstd) == 0 && memcmp(rm, rm2, sizeof rm) == 0 &&
              memcmp(rv, rv2, sizeof rv) == 0);
        th_relu_backward(KM, y, r, g);
        th_batchnorm_backward(threads, KN, KC, KHW, g, xhat, gamma, invstd, dx, dg, db);
        th_batchnorm_relu_backward(threads, KN, KC, KHW, r, yf, x, gamma, meanf, invstdf, dxf, dgf, dbf);
        CHECK(memcmp(dx, dxf, sizeof dx) == 0 && memcmp(dg, dgf, sizeof dg) == 0 && memcmp(db, dbf, sizeof db) == 0);

        th_batchnorm_forward_eval(threads, KN, KC, KHW, x, gamma, beta, rm, rv, eps, y);
        th_relu_forward(KM, y, y);
        th_batchnorm_relu_forward_eval(threads, KN, KC, KHW, x, gamma, beta, rm, rv, eps, yf);
        CHECK(memcmp(y, yf, sizeof y) == 0);
        th_relu_backward(KM, y, r, g);
        th_batchnorm_backward_eval(threads, KN, KC, KHW, g, x, gamma, rm, rv, eps, dx, dg, db);
        th_batchnorm_relu_backward_eval(threads, KN, KC, KHW, r, yf, x, gamma, rm, rv, eps, dxf, dgf, dbf);
        CHECK(memcmp(dx, dxf, sizeof dx) == 0 && memcmp(dg, dgf, sizeof dg) == 0 && memcmp(db, dbf, sizeof db) == 0);
    }

    /* The fused training gradient against differences. */
    th_batchnorm_relu_forward_train(1, KN, KC, KHW, x, gamma, beta, yf, meanf, invstdf, rm2, rv2, 0.1f, eps);
    th_batchnorm_relu_backward(1, KN, KC, KHW, r, yf, x, gamma, meanf, invstdf, dxf, dgf, dbf);
    static double xd[KM];
    double gd[KC], bd[KC];
    static int s0[KM], s1[KM];
    for (int k = 0; k < KM; k++) xd[k] = x[k];
    for (int k = 0; k < KC; k++) gd[k] = gamma[k], bd[k] = beta[k];
    const double h = 1e-5;
    int checked = 0, kinks = 0, bad = 0;
    /* Every input, then every gamma and beta. */
    for (int p = 0; p < KM + 2 * KC; p++) {
        double *v = p < KM ? &xd[p] : p < KM + KC ? &gd[p - KM] : &bd[p - KM - KC];
        float analytic = p < KM ? dxf[p] : p < KM + KC ? dgf[p - KM] : dbf[p - KM - KC];
        const double v0 = *v;
        *v = v0 + h;
        double lp = ref_loss(xd, gd, bd, r, eps, s0);
        *v = v0 - h;
        double lm = ref_loss(xd, gd, bd, r, eps, s1);
        *v = v0;
        if (memcmp(s0, s1, sizeof s0) != 0) {
            kinks++;
            continue;
        }
        checked++;
        bad += !th_test_close(analytic, (lp - lm) / (2 * h), 1e-3, 1e-3);
    }
    CHECK(bad == 0);
    CHECK(checked >= KM && kinks <= 8);
}

/* ---- the vector max-pool ---------------------------------------------- */

/* Every size from 1 to 41 (both parities, below and above one vector step
 * of 8 outputs) in both directions, values on a coarse grid with a third at
 * 0 (as after a ReLU) so that windows tie: the vector code must pick the
 * scalar code's maximum and route the gradient the same way. */
static void test_pool(void)
{
    enum { PN = 2, PC = 3, MAXS = 41 };
    const size_t in_max = (size_t)PN * PC * MAXS * MAXS, out_max = (size_t)PN * PC * 21 * 21;
    float *x = malloc(in_max * sizeof *x), *y = malloc(out_max * sizeof *y), *y2 = malloc(out_max * sizeof *y);
    float *dy = malloc(out_max * sizeof *dy), *dx = malloc(in_max * sizeof *dx), *dx2 = malloc(in_max * sizeof *dx);
    int32_t *a = malloc(out_max * sizeof *a), *a2 = malloc(out_max * sizeof *a);
    int mismatched = 0, sizes = 0;
    for (int h = 1; h <= MAXS; h += (h < 20 ? 1 : 3)) {
        for (int w = 1; w <= MAXS; w++) {
            const int oh = th_pool_out_len(h, 3, 2, 1), ow = th_pool_out_len(w, 3, 2, 1);
            const size_t in = (size_t)PN * PC * h * w, out = (size_t)PN * PC * oh * ow;
            th_test_fill(x, in, -3, 3, (unsigned long)(h * 100 + w));
            for (size_t k = 0; k < in; k++) x[k] = x[k] < -1 ? 0.0f : roundf(x[k] * 2) / 2;
            th_test_fill(dy, out, -1, 1, (unsigned long)(h * 100 + w + 7));
            th_maxpool_forward(PN, PC, h, w, 3, 2, 1, x, y, a);
            th_maxpool_forward_scalar(PN, PC, h, w, 3, 2, 1, x, y2, a2);
            th_maxpool_backward(PN, PC, h, w, 3, 2, 1, dy, a, dx);
            th_maxpool_backward_scalar(PN, PC, h, w, 3, 2, 1, dy, a2, dx2);
            mismatched += memcmp(y, y2, out * sizeof *y) != 0 || memcmp(a, a2, out * sizeof *a) != 0 ||
                          memcmp(dx, dx2, in * sizeof *dx) != 0;
            /* Image by image (the model splits the batch over threads). */
            for (int i = 0; i < PN; i++) {
                size_t io = (size_t)i * PC * h * w, oo = (size_t)i * PC * oh * ow;
                th_maxpool_forward(1, PC, h, w, 3, 2, 1, x + io, y2 + oo, a2 + oo);
                th_maxpool_backward(1, PC, h, w, 3, 2, 1, dy + oo, a2 + oo, dx2 + io);
            }
            mismatched += memcmp(y, y2, out * sizeof *y) != 0 || memcmp(dx, dx2, in * sizeof *dx) != 0;
            sizes++;
        }
    }
    CHECK(sizes > 1000);
    if (!CHECK(mismatched == 0)) fprintf(stderr, "    %d of %d sizes differ\n", mismatched, sizes);
    free(x), free(y), free(y2), free(dy), free(dx), free(dx2), free(a), free(a2);
}

/* ---- the network -------------------------------------------------------- */

enum { N = 3, C = 1, H = 20, W = 18, LABELS = 2 };

/* Convolutions without a bias, as before a batch-norm. */
static th_layer_spec layer(th_layer_type t, int out, int k, int stride, int pad)
{
    th_layer_spec s = th_test_layer(t, out, k, stride, pad);
    s.bias = 0;
    return s;
}

/* A ResNet stem (conv, bn, relu, 3x3/2 max-pool) with the pool's vector
 * columns in use (18 wide -> 9 outputs), an identity and a strided
 * residual block (bn1 -> relu1 fused, bn2 -> add not), a dense block
 * (norm -> relu fused twice per layer), a transition, gap, dense. */
static th_model_spec net_spec(void)
{
    th_model_spec s = {.c = C, .h = H, .w = W};
    th_layer_spec *l = s.layers;
    l[s.n_layers++] = layer(TH_LAYER_CONV, 4, 3, 1, 1);
    l[s.n_layers++] = layer(TH_LAYER_BATCHNORM, 0, 0, 0, 0);
    l[s.n_layers++] = layer(TH_LAYER_RELU, 0, 0, 0, 0);
    l[s.n_layers++] = layer(TH_LAYER_MAXPOOL, 0, 3, 2, 1);
    l[s.n_layers++] = layer(TH_LAYER_RESBLOCK, 4, 0, 1, 0);
    l[s.n_layers++] = layer(TH_LAYER_RESBLOCK, 8, 0, 2, 0);
    l[s.n_layers] = layer(TH_LAYER_DENSEBLOCK, 0, 0, 0, 0);
    l[s.n_layers].layers = 2, l[s.n_layers].growth = 3, l[s.n_layers++].bn_size = 2;
    l[s.n_layers++] = layer(TH_LAYER_TRANSITION, 6, 0, 0, 0);
    l[s.n_layers++] = layer(TH_LAYER_GAP, 0, 0, 0, 0);
    l[s.n_layers++] = layer(TH_LAYER_DENSE, TH_OUT_LABELS, 0, 0, 0);
    return s;
}

static const uint8_t labels[N * LABELS] = {1, 0, 0, 1, 1, 1};
static const float w_pos[LABELS] = {0.6f, 0.5f}, w_neg[LABELS] = {0.4f, 0.5f};

/* Batch-norm parameters and running statistics away from 1 and 0, the
 * same in a and b. */
static void perturb(th_model *a, th_model *b)
{
    for (int t = 0; t < a->n_tensors; t++) {
        if (a->layers[a->tensors[t].layer].spec.type != TH_LAYER_BATCHNORM) continue;
        float *p = th_model_tensor_data(a, t), *q = th_model_tensor_data(b, t);
        th_test_fill(p, a->tensors[t].count, 0.5f, 1.5f, 100 + (unsigned long)t);
        if (strstr(a->tensors[t].name, ".bias") || strstr(a->tensors[t].name, ".running_mean"))
            for (size_t k = 0; k < a->tensors[t].count; k++) p[k] -= 1.0f;
        memcpy(q, p, a->tensors[t].count * sizeof *p);
    }
}

/* a fused, b with every batch-norm group undone: the same numbers. */
static void test_network(void)
{
    th_model_spec s = net_spec();
    float x[N * C * H * W], dz[N * LABELS];
    th_test_fill(x, sizeof x / sizeof x[0], -1, 1, 17);
    float *logits1 = malloc(sizeof(float) * N * LABELS);
    for (int threads = 1; threads <= 3; threads++) {
        th_model a, b;
        th_err err;
        CHECK(th_model_create(&a, &s, LABELS, N, &err) == 0 && th_model_create(&b, &s, LABELS, N, &err) == 0);
        CHECK(th_model_set_threads(&a, threads, &err) == 0 && th_model_set_threads(&b, threads, &err) == 0);
        int groups = 0, frozen = -1, adds = 0, add = -1;
        for (int i = 0; i < a.n_layers; i++) {
            if ((a.layers[i].fused & TH_FUSED_ADDRELU) && a.layers[i].spec.type == TH_LAYER_ADD) {
                /* The ReLU in place in the add's output, until kept apart. */
                CHECK(a.layers[i + 1].spec.type == TH_LAYER_RELU && a.layers[i + 1].y == a.layers[i].y);
                CHECK(th_model_keep_output(&b, i, &err) == 0 && !b.layers[i].fused && b.layers[i].y != b.layers[i + 1].y);
                adds++;
                add = i;
            }
        }
        CHECK(adds == 2);
        for (int i = 0; i < a.n_layers; i++) {
            if (!(a.layers[i].fused & TH_FUSED_BNRELU) || a.layers[i].spec.type != TH_LAYER_BATCHNORM) continue;
            CHECK(a.layers[i + 1].spec.type == TH_LAYER_RELU && (a.layers[i + 1].fused & TH_FUSED_BNRELU));
            CHECK(!a.layers[i].y && !a.layers[i].xhat && a.layers[i + 1].y);
            CHECK(th_model_keep_output(&b, i, &err) == 0 && !b.layers[i].fused && b.layers[i].y && b.layers[i].xhat);
            groups++;
            if (groups == 3) frozen = i;
        }
        /* stem, 2 x bn1, 2 x (norm1, norm2), the transition's norm. */
        CHECK(groups == 8);
        /* bn2 feeds add: not fused. */
        for (int i = 0; i < a.n_layers; i++)
            if (a.layers[i].spec.type == TH_LAYER_BATCHNORM && a.layers[i + 1].spec.type == TH_LAYER_ADD)
                CHECK(!a.layers[i].fused);
        CHECK(a.act_bytes < b.act_bytes);
        th_model_init_params(&a, 9);
        th_model_init_params(&b, 9);
        perturb(&a, &b);
        for (int train = 1; train >= 0; train--) {
            const float *za = th_model_forward(&a, x, N, train), *zb = th_model_forward(&b, x, N, train);
            CHECK(memcmp(za, zb, sizeof(float) * N * LABELS) == 0);
            CHECK(memcmp(a.buffers, b.buffers, sizeof(float) * a.n_buffers) == 0);
            /* The number of threads changes no bit. */
            if (threads == 1 && train) memcpy(logits1, za, sizeof(float) * N * LABELS);
            if (train) CHECK(memcmp(logits1, za, sizeof(float) * N * LABELS) == 0);
            th_wbce_logits(N, LABELS, za, labels, w_pos, w_neg, dz);
            th_model_backward(&a, x, dz, N);
            th_model_backward(&b, x, dz, N);
            CHECK(memcmp(a.grads, b.grads, sizeof(float) * a.n_params) == 0);
        }

        /* A frozen batch-norm inside a group: no gradient of its own (its
         * range left as it was), the same gradients elsewhere. */
        th_model_freeze(&a, frozen, 1);
        th_model_freeze(&b, frozen, 1);
        const size_t off = a.layers[frozen].w_off, cnt = 2 * (size_t)a.layers[frozen].in_c;
        for (size_t k = 0; k < cnt; k++) a.grads[off + k] = b.grads[off + k] = 42.0f;
        const float *za = th_model_forward(&a, x, N, 1);
        th_model_forward(&b, x, N, 1);
        th_wbce_logits(N, LABELS, za, labels, w_pos, w_neg, dz);
        th_model_backward(&a, x, dz, N);
        th_model_backward(&b, x, dz, N);
        CHECK(memcmp(a.grads, b.grads, sizeof(float) * a.n_params) == 0);
        int kept = 1;
        for (size_t k = 0; k < cnt; k++) kept &= a.grads[off + k] == 42.0f;
        CHECK(kept);
        th_model_freeze(&a, frozen, 0);
        th_model_freeze(&b, frozen, 0);

        /* Grad-CAM at the fused batch-norm and add (the gradient at their
         * outputs, through the ReLU's mask) and at their ReLUs, in both
         * modes. */
        for (int train = 1; train >= 0; train--) {
            th_model_forward(&a, x, N, train);
            th_model_forward(&b, x, N, train);
            const int heads[2] = {frozen, add};
            for (int k = 0; k < 2; k++) {
                const th_layer *G = &a.layers[heads[k]];
                const size_t count = (size_t)N * G->out_c * G->out_h * G->out_w;
                for (int at = heads[k]; at <= heads[k] + 1; at++) {
                    const float *ga = th_model_grad_at(&a, x, dz, N, at), *gb = th_model_grad_at(&b, x, dz, N, at);
                    CHECK(memcmp(ga, gb, sizeof(float) * count) == 0);
                }
            }
        }
        /* Its output kept for Grad-CAM: the group undone, the same output. */
        CHECK(th_model_keep_output(&a, frozen + 1, &err) == 0 && a.layers[frozen].fused);
        CHECK(th_model_keep_output(&a, frozen, &err) == 0 && !a.layers[frozen].fused && a.layers[frozen].y);
        th_model_forward(&a, x, N, 1);
        th_model_forward(&b, x, N, 1);
        const size_t count = (size_t)N * a.layers[frozen].out_c * a.layers[frozen].out_h * a.layers[frozen].out_w;
        CHECK(memcmp(a.layers[frozen].y, b.layers[frozen].y, sizeof(float) * count) == 0);
        th_model_free(&a);
        th_model_free(&b);
    }
    free(logits1);
}

int main(void)
{
    test_kernels();
    test_pool();
    test_network();
    return th_test_summary("test_bnrelu");
}

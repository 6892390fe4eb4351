/* test_model.c - the whole network: backward against finite differences,
 * naming and layout of tensors, and checkpoint round trips. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "thorax/checkpoint.h"
#include "thorax/loss.h"
#include "thorax/model.h"

enum { N = 3, C = 1, H = 12, W = 12, L = 3 };

static th_layer_spec layer(th_layer_type t, int out, int k, int stride, int pad)
{
    th_layer_spec s = {.type = t, .out = out, .k = k, .stride = stride, .pad = pad, .bias = 1,
                       .momentum = 0.1f, .eps = 1e-5f};
    return s;
}

/* Every layer type once: conv, bn, maxpool, relu, conv (stride 2), avgpool,
 * dropout, gap, dense x2. */
static th_model_spec full_spec(float dropout_p)
{
    th_model_spec s = {.c = C, .h = H, .w = W};
    th_layer_spec *l = s.layers;
    l[s.n_layers++] = layer(TH_LAYER_CONV, 4, 3, 1, 1);
    l[s.n_layers++] = layer(TH_LAYER_BATCHNORM, 0, 0, 0, 0);
    l[s.n_layers++] = layer(TH_LAYER_MAXPOOL, 0, 2, 2, 0);
    l[s.n_layers++] = layer(TH_LAYER_RELU, 0, 0, 0, 0);
    l[s.n_layers++] = layer(TH_LAYER_CONV, 6, 3, 2, 1);
    l[s.n_layers++] = layer(TH_LAYER_AVGPOOL, 0, 2, 1, 0);
    l[s.n_layers] = layer(TH_LAYER_DROPOUT, 0, 0, 0, 0);
    l[s.n_layers++].p = dropout_p;
    l[s.n_layers++] = layer(TH_LAYER_GAP, 0, 0, 0, 0);
    l[s.n_layers++] = layer(TH_LAYER_DENSE, 5, 0, 0, 0);
    l[s.n_layers++] = layer(TH_LAYER_DENSE, TH_OUT_LABELS, 0, 0, 0);
    return s;
}

static const uint8_t labels[N * L] = {1, 0, 1, 0, 0, 1, 1, 1, 0};
static const float w_pos[L] = {0.6f, 0.7f, 0.5f}, w_neg[L] = {0.4f, 0.3f, 0.5f};

/* The loss of the batch with a fixed dropout mask (the RNG reseeded each time). */
static double loss_of(th_model *m, const float *x, float *dz)
{
    th_rng_seed(&m->rng, 5, 5);
    const float *z = th_model_forward(m, x, N, 1);
    return th_wbce_logits(N, L, z, labels, w_pos, w_neg, dz);
}

static void test_gradients(void)
{
    th_model m;
    th_err err;
    th_model_spec spec = full_spec(0.25f);
    CHECK(th_model_create(&m, &spec, L, N, &err) == 0);
    th_model_init_params(&m, 3);
    /* Non-trivial batch-norm affine parameters. */
    for (int t = 0; t < m.n_tensors; t++)
        if (!strncmp(m.tensors[t].name, "bn1.", 4) && m.tensors[t].trainable) {
            float *d = th_model_tensor_data(&m, t);
            for (size_t k = 0; k < m.tensors[t].count; k++) d[k] += 0.1f * (float)(k + 1);
        }
    float x[N * C * H * W], dz[N * L];
    th_test_fill(x, sizeof x / sizeof x[0], -1, 1, 11);
    loss_of(&m, x, dz);
    th_model_backward(&m, x, dz, N);
    float *analytic = malloc(sizeof(float) * m.n_params);
    memcpy(analytic, m.grads, sizeof(float) * m.n_params);

    /* Central differences on a spread of parameters from every tensor. Max-pool
     * and ReLU make the loss piecewise smooth: where a step of h crosses a
     * kink (two window values swapping order, an activation crossing 0), the
     * estimates for h and h/2 disagree, and that point says nothing about the
     * gradient. Such points are skipped, and there must be few of them. */
    int checked = 0, bad = 0, kinks = 0;
    for (int t = 0; t < m.n_tensors; t++) {
        th_tensor_info *ti = &m.tensors[t];
        if (!ti->trainable) continue;
        for (size_t k = 0; k < ti->count; k += 1 + ti->count / 7) {
            size_t i = ti->offset + k;
            float saved = m.params[i];
            double est[2];
            for (int e = 0; e < 2; e++) {
                double h = e ? 1.5e-3 : 3e-3;
                m.params[i] = saved + (float)h;
                double lp = loss_of(&m, x, NULL);
                m.params[i] = saved - (float)h;
                double lm = loss_of(&m, x, NULL);
                est[e] = (lp - lm) / (2 * h);
            }
            m.params[i] = saved;
            if (fabs(est[0] - est[1]) > 0.1 * fmax(fmax(fabs(est[0]), fabs(est[1])), 5e-3)) {
                kinks++;
                continue;
            }
            checked++;
            /* Floor 1.5e-2: the loss comes from float activations, good to
             * about 1e-6, which is 3e-4 in a quotient over 2h = 3e-3; a
             * gradient that is zero in theory (a conv bias under batch-norm)
             * is measured as that noise. */
            if (!CHECK_REL(analytic[i], est[1], 3e-2, 1.5e-2)) {
                bad++;
                fprintf(stderr, "  tensor %s[%zu]\n", ti->name, k);
            }
        }
    }
    CHECK(kinks <= 3);
    CHECK(checked > 40);
    CHECK(bad == 0);
    free(analytic);
    th_model_free(&m);
}

static void test_names_and_layout(void)
{
    th_model m;
    th_err err;
    th_model_spec spec = full_spec(0.0f);
    CHECK(th_model_create(&m, &spec, L, 2, &err) == 0);
    const char *want[] = {"conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean",
                          "bn1.running_var", "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias",
                          "fc2.weight", "fc2.bias"};
    CHECK(m.n_tensors == (int)(sizeof want / sizeof want[0]));
    for (size_t i = 0; i < sizeof want / sizeof want[0] && (int)i < m.n_tensors; i++)
        CHECK(!strcmp(m.tensors[i].name, want[i]));
    /* Trainable tensors tile params exactly, in order. */
    size_t off = 0;
    for (int t = 0; t < m.n_tensors; t++)
        if (m.tensors[t].trainable) {
            CHECK(m.tensors[t].offset == off);
            off += m.tensors[t].count;
        }
    CHECK(off == m.n_params);
    int w = th_model_find_tensor(&m, "conv2.weight");
    CHECK(w >= 0 && m.tensors[w].shape[0] == 6 && m.tensors[w].shape[1] == 4 && m.tensors[w].shape[2] == 3);
    /* He init: conv1 weights have std near sqrt(2/9). */
    th_model_init_params(&m, 1);
    int c1 = th_model_find_tensor(&m, "conv1.weight");
    CHECK(c1 >= 0);
    th_model_free(&m);

    /* The same seed gives the same parameters; another seed others. */
    th_model a, b;
    th_model_create(&a, &spec, L, 1, &err);
    th_model_create(&b, &spec, L, 1, &err);
    th_model_init_params(&a, 9);
    th_model_init_params(&b, 9);
    CHECK(memcmp(a.params, b.params, a.n_params * sizeof(float)) == 0);
    th_model_init_params(&b, 10);
    CHECK(memcmp(a.params, b.params, a.n_params * sizeof(float)) != 0);
    th_model_free(&a);
    th_model_free(&b);

    /* A spec whose layer does not fit fails naming it. */
    th_model_spec bad = spec;
    bad.layers[2].k = 13;
    bad.layers[2].line = 17;
    CHECK(th_model_create(&m, &bad, L, 1, &err) == -1);
    CHECK(strstr(err.msg, "line 17") != NULL);
}

static void test_checkpoint(void)
{
    char dir[] = "/tmp/thorax-test-ckpt-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/last.h5", dir);

    th_model a, b;
    th_err err;
    th_model_spec spec = full_spec(0.0f);
    th_model_create(&a, &spec, L, 2, &err);
    th_model_create(&b, &spec, L, 2, &err);
    th_model_init_params(&a, 1);
    th_model_init_params(&b, 2);
    for (size_t i = 0; i < a.n_buffers; i++) a.buffers[i] = 0.5f + (float)i;
    th_optim_config oc = {.type = TH_OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    th_optim oa, ob;
    th_optim_init(&oa, &oc, a.n_params, &err);
    th_optim_init(&ob, &oc, b.n_params, &err);
    for (size_t i = 0; i < a.n_params; i++) a.grads[i] = 0.01f * (float)(i % 13);
    th_optim_step(&oa, a.params, a.grads, 0.01f);
    th_train_state sa = {.epoch = 3, .step = 42, .lr = 0.005f, .best_score = 0.91, .best_epoch = 2,
                         .norm_mean = 0.4f, .norm_std = 0.2f};
    CHECK(th_checkpoint_save(path, &a, &oa, &sa, "name: x\n", &err) == 0);
    CHECK(access(path, F_OK) == 0);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0);

    th_train_state sb = {0};
    CHECK(th_checkpoint_load(path, &b, &ob, &sb, &err) == 0);
    CHECK(memcmp(a.params, b.params, a.n_params * sizeof(float)) == 0);
    CHECK(memcmp(a.buffers, b.buffers, a.n_buffers * sizeof(float)) == 0);
    CHECK(memcmp(oa.m, ob.m, a.n_params * sizeof(float)) == 0);
    CHECK(memcmp(oa.v, ob.v, a.n_params * sizeof(float)) == 0);
    CHECK(ob.t == oa.t);
    CHECK(sb.epoch == 3 && sb.step == 42 && sb.best_epoch == 2);
    CHECK_NEAR(sb.best_score, 0.91, 1e-12);
    CHECK_NEAR(sb.norm_std, 0.2, 1e-7);
    char *yaml = th_checkpoint_read_config(path, &err);
    CHECK(yaml && !strcmp(yaml, "name: x\n"));
    free(yaml);

    /* A checkpoint of another model is refused, naming the tensor. */
    th_model c;
    th_model_spec other = spec;
    other.layers[0].out = 5;
    th_model_create(&c, &other, L, 1, &err);
    CHECK(th_checkpoint_load(path, &c, NULL, NULL, &err) == -1);
    CHECK(strstr(err.msg, "conv1.weight") != NULL);
    th_model_free(&c);

    /* A truncated file is refused with its name. */
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (f) {
        CHECK(ftruncate(fileno(f), 1000) == 0);
        fclose(f);
    }
    CHECK(th_checkpoint_load(path, &b, NULL, NULL, &err) == -1);
    CHECK(strstr(err.msg, path) != NULL);
    CHECK(th_checkpoint_load("/nonexistent/x.h5", &b, NULL, NULL, &err) == -1);
    CHECK(strstr(err.msg, "/nonexistent/x.h5") != NULL);

    unlink(path);
    rmdir(dir);
    th_optim_free(&oa);
    th_optim_free(&ob);
    th_model_free(&a);
    th_model_free(&b);
}

/* A conv followed by a ReLU runs fused (one buffer, the ReLU applied in the
 * conv's output pass and its derivative in the conv's backward); the first
 * conv, on a gray image, takes the 2x2 max-pool after it into the same pass.
 * Against the same network with the fusions undone (th_model_keep_output):
 * the same logits bit for bit, on 1 and 2 threads, the same parameter
 * gradients (the fused pool sums the bias gradient in another order), the
 * same gradients at the conv's and the ReLU's outputs from th_model_grad_at,
 * and the conv's own output readable again when kept. */
static void test_fusion(void)
{
    th_model_spec s = {.c = C, .h = H, .w = W};
    th_layer_spec *l = s.layers;
    l[s.n_layers++] = layer(TH_LAYER_CONV, 4, 3, 1, 1);
    l[s.n_layers++] = layer(TH_LAYER_RELU, 0, 0, 0, 0);
    l[s.n_layers++] = layer(TH_LAYER_MAXPOOL, 0, 2, 2, 0);
    l[s.n_layers++] = layer(TH_LAYER_CONV, 6, 3, 1, 1);
    l[s.n_layers++] = layer(TH_LAYER_RELU, 0, 0, 0, 0);
    l[s.n_layers++] = layer(TH_LAYER_GAP, 0, 0, 0, 0);
    l[s.n_layers++] = layer(TH_LAYER_DENSE, TH_OUT_LABELS, 0, 0, 0);
    float x[N * C * H * W], dz[N * L];
    th_test_fill(x, sizeof x / sizeof x[0], -1, 1, 17);
    for (int threads = 1; threads <= 2; threads++) {
        th_model a, b;
        th_err err;
        CHECK(th_model_create(&a, &s, L, N, &err) == 0);
        CHECK(th_model_create(&b, &s, L, N, &err) == 0);
        CHECK(th_model_set_threads(&a, threads, &err) == 0 && th_model_set_threads(&b, threads, &err) == 0);
        CHECK(a.layers[0].fused == (TH_FUSED_RELU | TH_FUSED_POOL) && a.layers[2].fused && !a.layers[0].y);
        CHECK(a.layers[3].fused == TH_FUSED_RELU && a.layers[4].y == a.layers[3].y);
        CHECK(th_model_keep_output(&b, 0, &err) == 0 && th_model_keep_output(&b, 3, &err) == 0);
        CHECK(!b.layers[0].fused && !b.layers[1].fused && b.layers[0].y != b.layers[1].y);
        th_model_init_params(&a, 9);
        th_model_init_params(&b, 9);
        const float *za = th_model_forward(&a, x, N, 1), *zb = th_model_forward(&b, x, N, 1);
        CHECK(memcmp(za, zb, sizeof(float) * N * L) == 0);
        int negative = 0;
        for (size_t i = 0; i < (size_t)N * 4 * H * W; i++) negative += b.layers[0].y[i] < 0;
        CHECK(negative > 0);
        th_wbce_logits(N, L, za, labels, w_pos, w_neg, dz);
        th_model_backward(&a, x, dz, N);
        th_model_backward(&b, x, dz, N);
        CHECK(th_test_max_rel(a.grads, b.grads, a.n_params, 1e-3) < 1e-6);
        for (int stop = 0; stop <= 1; stop++) {
            const float *ga = th_model_grad_at(&a, x, dz, N, stop), *gb = th_model_grad_at(&b, x, dz, N, stop);
            CHECK(memcmp(ga, gb, sizeof(float) * N * 4 * H * W) == 0);
        }
        th_model_free(&a);
        th_model_free(&b);
    }
}

int main(void)
{
    test_gradients();
    test_fusion();
    test_names_and_layout();
    test_checkpoint();
    return th_test_summary("test_model");
}

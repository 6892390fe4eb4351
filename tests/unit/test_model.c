/* test_model.c - the whole network: backward against finite differences,
 * naming and layout of tensors, and checkpoint round trips. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "thorax/train.h"
#include "thorax/nn.h"

enum { N = 3, C = 1, H = 12, W = 12, L = 3 };

/* Every layer type once: conv, bn, maxpool, relu, conv (stride 2), avgpool,
 * dropout, gap, dense x2. */
static th_model_spec full_spec(float dropout_p)
{
    th_model_spec s = {.c = C, .h = H, .w = W};
    th_layer_spec *l = s.layers;
    l[s.n_layers++] = th_test_layer(TH_LAYER_CONV, 4, 3, 1, 1);
    l[s.n_layers++] = th_test_layer(TH_LAYER_BATCHNORM, 0, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_MAXPOOL, 0, 2, 2, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_RELU, 0, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_CONV, 6, 3, 2, 1);
    l[s.n_layers++] = th_test_layer(TH_LAYER_AVGPOOL, 0, 2, 1, 0);
    l[s.n_layers] = th_test_layer(TH_LAYER_DROPOUT, 0, 0, 0, 0);
    l[s.n_layers++].p = dropout_p;
    l[s.n_layers++] = th_test_layer(TH_LAYER_GAP, 0, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_DENSE, 5, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_DENSE, TH_OUT_LABELS, 0, 0, 0);
    return s;
}

static const uint8_t labels[N * L] = {1, 0, 1, 0, 0, 1, 1, 1, 0};
static const float w_pos[L] = {0.6f, 0.7f, 0.5f}, w_neg[L] = {0.4f, 0.3f, 0.5f};

/* Mode of the forwards of loss_of: 1 = training. */
static int loss_train = 1;

/* The loss of the batch with a fixed dropout mask (the RNG reseeded each time). */
static double loss_of(th_model *m, const float *x, float *dz)
{
    th_rng_seed(&m->rng, 5, 5);
    const float *z = th_model_forward(m, x, N, loss_train);
    return th_wbce_logits(N, L, z, labels, w_pos, w_neg, dz);
}

/* A graph with every kind of join: a fused conv+ReLU whose output is
 * concatenated with the image itself (so the image has two readers), a
 * padded 3x3 max-pool, an identity and a strided residual block, a dense
 * block, a transition, and an explicit add of two earlier layers. */
static th_model_spec graph_spec(void)
{
    th_model_spec s = {.c = C, .h = H, .w = W};
    th_layer_spec *l = s.layers;
    l[s.n_layers] = th_test_layer(TH_LAYER_CONV, 4, 3, 1, 1);
    strcpy(l[s.n_layers++].name, "stem");
    l[s.n_layers] = th_test_layer(TH_LAYER_RELU, 0, 0, 0, 0);
    strcpy(l[s.n_layers++].name, "stem_relu");
    l[s.n_layers] = th_test_layer(TH_LAYER_CONCAT, 0, 0, 0, 0);
    strcpy(l[s.n_layers].from[0], "stem_relu"), strcpy(l[s.n_layers].from[1], "input");
    l[s.n_layers++].n_from = 2;                                         /* 5 x 12 x 12 */
    l[s.n_layers++] = th_test_layer(TH_LAYER_MAXPOOL, 0, 3, 2, 1);              /* 5 x 6 x 6 */
    l[s.n_layers++] = th_test_layer(TH_LAYER_RESBLOCK, 5, 0, 1, 0);             /* identity shortcut */
    l[s.n_layers] = th_test_layer(TH_LAYER_RESBLOCK, 6, 0, 2, 0);               /* 6 x 3 x 3, 1x1 shortcut */
    strcpy(l[s.n_layers++].name, "down");
    l[s.n_layers] = th_test_layer(TH_LAYER_DENSEBLOCK, 0, 0, 0, 0);             /* 6 + 2 x 3 = 12 maps */
    l[s.n_layers].layers = 2, l[s.n_layers].growth = 3, l[s.n_layers++].bn_size = 2;
    l[s.n_layers++] = th_test_layer(TH_LAYER_TRANSITION, 6, 0, 0, 0);           /* 6 x 1 x 1 */
    l[s.n_layers] = th_test_layer(TH_LAYER_CONV, 6, 1, 1, 0);
    strcpy(l[s.n_layers].from[0], "down");                              /* back to a 3x3 map */
    l[s.n_layers++].n_from = 1;
    l[s.n_layers] = th_test_layer(TH_LAYER_GAP, 0, 0, 0, 0);
    strcpy(l[s.n_layers++].name, "gap_a");
    l[s.n_layers] = th_test_layer(TH_LAYER_ADD, 0, 0, 0, 0);
    strcpy(l[s.n_layers].from[0], "gap_a"), strcpy(l[s.n_layers].from[1], "transition1");
    l[s.n_layers++].n_from = 2;
    l[s.n_layers++] = th_test_layer(TH_LAYER_DENSE, TH_OUT_LABELS, 0, 0, 0);
    return s;
}

/* Bottleneck blocks and a flatten + dense head:
 *   stem conv 4 (1x12x12 -> 4x12x12) -> 2x2 max-pool (4x6x6)
 *   -> bottleneck "layer1.0" out 8, stride 2 (width 2; 8x3x3, 1x1/2 conv shortcut)
 *   -> bottleneck "layer1.1" out 8, width 3 (identity shortcut; 8x3x3)
 *   -> flatten (72) -> dense 5 -> relu -> dense labels. */
static th_model_spec bottleneck_spec(void)
{
    th_model_spec s = {.c = C, .h = H, .w = W};
    th_layer_spec *l = s.layers;
    l[s.n_layers++] = th_test_layer(TH_LAYER_CONV, 4, 3, 1, 1);
    l[s.n_layers++] = th_test_layer(TH_LAYER_MAXPOOL, 0, 2, 2, 0);
    l[s.n_layers] = th_test_layer(TH_LAYER_BOTTLENECK, 8, 0, 2, 0);
    l[s.n_layers].width = 2;
    strcpy(l[s.n_layers++].name, "layer1.0");
    l[s.n_layers] = th_test_layer(TH_LAYER_BOTTLENECK, 8, 0, 1, 0);
    l[s.n_layers].width = 3;
    strcpy(l[s.n_layers++].name, "layer1.1");
    l[s.n_layers++] = th_test_layer(TH_LAYER_FLATTEN, 0, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_DENSE, 5, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_RELU, 0, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_DENSE, TH_OUT_LABELS, 0, 0, 0);
    return s;
}

/* Backward against central differences on a spread of every trainable
 * tensor, and (with input_too) the gradient of the image, in training mode
 * or (train 0) evaluation mode. At most a tenth of the points (bad_tenths)
 * may disagree: see test_gradients. */
static void check_gradients(const th_model_spec *spec, int train, int input_too, int bad_tenths)
{
    th_model m;
    th_err err;
    if (!CHECK(th_model_create(&m, spec, L, N, &err) == 0)) {
        fprintf(stderr, "    %s\n", err.msg);
        return;
    }
    th_model_init_params(&m, 3);
    /* Non-trivial batch-norm affine parameters and running statistics. */
    for (int t = 0; t < m.n_tensors; t++) {
        if (m.layers[m.tensors[t].layer].spec.type != TH_LAYER_BATCHNORM) continue;
        float *d = th_model_tensor_data(&m, t);
        int var = strstr(m.tensors[t].name, "running_var") != NULL;
        for (size_t k = 0; k < m.tensors[t].count; k++) d[k] += (var ? 0.3f : 0.1f) * (float)(k % 4 + 1);
    }
    loss_train = train;
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
            if (!th_test_close(analytic[i], est[1], 3e-2, 1.5e-2)) {
                bad++;
                if (!bad_tenths) CHECK_REL(analytic[i], est[1], 3e-2, 1.5e-2);
                fprintf(stderr, "  %s[%zu]: analytic %g, estimate %g\n", ti->name, k, analytic[i], est[1]);
            }
        }
    }
    if (input_too) {
        /* d loss / d x, through both of the image's readers. */
        loss_of(&m, x, dz);
        const float *gx = th_model_grad_at(&m, x, dz, N, -1);
        float dx[N * C * H * W];
        memcpy(dx, gx, sizeof dx);
        for (size_t i = 0; i < sizeof x / sizeof x[0]; i += 5) {
            float saved = x[i];
            double h = 1.5e-3;
            x[i] = saved + (float)h;
            double lp = loss_of(&m, x, NULL);
            x[i] = saved - (float)h;
            double lm = loss_of(&m, x, NULL);
            x[i] = saved;
            double est = (lp - lm) / (2 * h);
            checked++;
            if (!th_test_close(dx[i], est, 3e-2, 1.5e-2)) {
                bad++;
                fprintf(stderr, "  input[%zu]: analytic %g, estimate %g\n", i, dx[i], est);
            }
        }
    }
    CHECK(kinks <= 3);
    CHECK(checked > 40);
    if (!CHECK(bad * 10 <= checked * bad_tenths)) fprintf(stderr, "    %d of %d points disagree\n", bad, checked);
    free(analytic);
    th_model_free(&m);
}

/* The chain in training mode, every point. The graph in evaluation mode,
 * where batch-norm is affine (in training mode its outputs are centred on
 * the next ReLU's kink), allowing a tenth of the points to disagree: in a
 * graph this deep some finite differences still straddle a kink within
 * 1e-4 of the point (seen: an estimate moving from 0.013 to the analytic
 * 0.0198 only below h = 5e-5), while a wrong join (a lost shortcut or
 * concatenation gradient) would put most points upstream of it off. Whole
 * ResNets and DenseNets in training mode are checked against PyTorch to
 * 1e-3 in tests/torch. */
static void test_gradients(void)
{
    th_model_spec full = full_spec(0.25f), graph = graph_spec();
    check_gradients(&full, 1, 0, 0);
    check_gradients(&graph, 0, 1, 1);
    /* Bottlenecks and flatten in evaluation mode, as the graph. */
    th_model_spec bottleneck = bottleneck_spec();
    check_gradients(&bottleneck, 0, 1, 1);
    loss_train = 1;
}

/* The graph's layers, named as torchvision names a ResNet's and a
 * DenseNet's, read what they should. */
static void test_graph_structure(void)
{
    th_model_spec spec = graph_spec();
    th_model m;
    th_err err;
    if (!CHECK(th_model_create(&m, &spec, L, N, &err) == 0)) return;
    const char *want[] = {"stem.weight", "block1.conv1.weight", "block1.bn2.running_var", "down.downsample.0.weight",
                          "down.downsample.1.bias", "denseblock1.denselayer2.norm1.weight",
                          "denseblock1.denselayer2.conv2.weight", "transition1.conv.weight", "fc.bias"};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
        if (!CHECK(th_model_find_tensor(&m, want[k]) >= 0)) fprintf(stderr, "    no tensor %s\n", want[k]);
    CHECK(th_model_find_tensor(&m, "block1.downsample.0.weight") < 0);  /* identity shortcut */
    int t = th_model_find_tensor(&m, "denseblock1.denselayer2.norm1.weight");
    CHECK(t >= 0 && m.tensors[t].shape[0] == 6 + 3);                   /* the block's input and layer 1's maps */
    int block = -1, add = -1;
    for (int i = 0; i < m.n_layers; i++) {
        if (!strcmp(m.layers[i].name, "block1")) block = i;
        if (!strcmp(m.layers[i].name, "block1.add")) add = i;
    }
    CHECK(block > 0 && add == block - 1 && m.layers[block].spec.type == TH_LAYER_RELU);
    /* The identity shortcut: the add reads bn2 and the block's input. */
    CHECK(add > 0 && m.layers[add].n_in == 2 && !strcmp(m.layers[m.layers[add].in[0]].name, "block1.bn2") &&
          !strcmp(m.layers[m.layers[add].in[1]].name, "pool1"));
    CHECK(m.layers[0].fused == TH_FUSED_RELU);                        /* stem + stem_relu */
    CHECK(m.layers[2].n_in == 2 && m.layers[2].in[1] == -1);            /* concat reads the image */
    CHECK(m.layers[2].out_c == 5);
    th_model_free(&m);
}

/* Bottleneck blocks named and shaped as torchvision's Bottleneck (the
 * stride in conv2), flatten's output the map's values in a row. */
static void test_bottleneck_structure(void)
{
    th_model_spec spec = bottleneck_spec();
    th_model m;
    th_err err;
    if (!CHECK(th_model_create(&m, &spec, L, N, &err) == 0)) {
        fprintf(stderr, "    %s\n", err.msg);
        return;
    }
    const struct {
        const char *name;
        int shape[4];
    } want[] = {{"layer1.0.conv1.weight", {2, 4, 1, 1}},  {"layer1.0.conv2.weight", {2, 2, 3, 3}},
                {"layer1.0.conv3.weight", {8, 2, 1, 1}},  {"layer1.0.bn3.running_var", {8}},
                {"layer1.0.downsample.0.weight", {8, 4, 1, 1}}, {"layer1.0.downsample.1.bias", {8}},
                {"layer1.1.conv1.weight", {3, 8, 1, 1}},  {"layer1.1.conv3.weight", {8, 3, 1, 1}},
                {"fc1.weight", {5, 72}}};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        int t = th_model_find_tensor(&m, want[k].name);
        if (!CHECK(t >= 0)) {
            fprintf(stderr, "    no tensor %s\n", want[k].name);
            continue;
        }
        for (int d = 0; d < m.tensors[t].ndim; d++)
            if (!CHECK(m.tensors[t].shape[d] == want[k].shape[d]))
                fprintf(stderr, "    %s: dimension %d is %d\n", want[k].name, d, m.tensors[t].shape[d]);
    }
    CHECK(th_model_find_tensor(&m, "layer1.1.downsample.0.weight") < 0); /* identity shortcut */
    int conv1 = -1, conv2 = -1, add = -1, flat = -1;
    for (int i = 0; i < m.n_layers; i++) {
        if (!strcmp(m.layers[i].name, "layer1.0.conv1")) conv1 = i;
        if (!strcmp(m.layers[i].name, "layer1.0.conv2")) conv2 = i;
        if (!strcmp(m.layers[i].name, "layer1.1.add")) add = i;
        if (!strcmp(m.layers[i].name, "flatten")) flat = i;
    }
    /* v1.5: conv1 keeps the 6x6 map, conv2 halves it. */
    CHECK(conv1 > 0 && m.layers[conv1].out_h == 6 && conv2 > 0 && m.layers[conv2].out_h == 3);
    /* The identity block's sum reads bn3 and the block before it, whose
     * last layer (its ReLU) carries its name. */
    CHECK(add > 0 && m.layers[add].n_in == 2 && !strcmp(m.layers[m.layers[add].in[0]].name, "layer1.1.bn3") &&
          !strcmp(m.layers[m.layers[add].in[1]].name, "layer1.0"));
    CHECK(add > 0 && m.layers[add + 1].spec.type == TH_LAYER_RELU && !strcmp(m.layers[add + 1].name, "layer1.1"));
    CHECK(flat > 0 && m.layers[flat].out_c == 72 && m.layers[flat].out_h == 1 && m.layers[flat].out_w == 1);
    /* Flatten keeps every value in place: [C,H,W] row-major, torch.flatten's order. */
    float x[N * C * H * W];
    th_test_fill(x, sizeof x / sizeof x[0], -1, 1, 5);
    th_model_init_params(&m, 4);
    th_model_forward(&m, x, N, 0);
    CHECK(flat > 0 && memcmp(m.layers[flat].y, m.layers[flat - 1].y, sizeof(float) * N * 72) == 0);
    th_model_free(&m);

    /* Errors name the block and its layer, and a dense head on a map asks
     * for gap or flatten, with the map's shape. */
    spec = bottleneck_spec();
    spec.layers[2].width = 0;
    spec.layers[2].line = 9;
    CHECK(th_model_spec_check(&spec, L, &err) == -1 &&
          strstr(err.msg, "model.layers[2] (bottleneck layer1.0, line 9): out and width must be > 0"));
    spec = bottleneck_spec();
    spec.layers[4] = th_test_layer(TH_LAYER_RELU, 0, 0, 0, 0);
    CHECK(th_model_spec_check(&spec, L, &err) == -1 &&
          strstr(err.msg, "model.layers[5] (dense): needs a flat input (put a gap or flatten layer before it), "
                          "got 8x3x3"));
}

/* Weights of a flatten + dense head made for one input size, started from
 * at another: the error names the tensor, both shapes and the flatten. */
static void test_flatten_init(void)
{
    char dir[] = "/tmp/thorax-test-flat-XXXXXX", path[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/w.h5", dir);
    th_model a, b;
    th_err err;
    th_model_spec spec = bottleneck_spec(), big = bottleneck_spec();
    big.h = big.w = 16; /* flatten: 8x4x4 = 128 inputs, not 8x3x3 = 72 */
    CHECK(th_model_create(&a, &spec, L, 1, &err) == 0 && th_model_create(&b, &big, L, 1, &err) == 0);
    th_optim_config oc = {.type = TH_OPTIM_SGD, .lr = 0.1f};
    th_optim o;
    th_train_state st = {0};
    CHECK(th_optim_init(&o, &oc, a.n_params, &err) == 0);
    CHECK(th_checkpoint_save(path, &a, &o, &st, "name: x\n", &err) == 0);
    th_init_report r;
    CHECK(th_checkpoint_init_params(path, &b, &r, &err) == -1);
    if (!CHECK(strstr(err.msg, "fc1.weight has shape [5, 72] in the file, [5, 128] in the model (layer flatten "
                               "turns 8x4x4 maps into 128 inputs") != NULL))
        fprintf(stderr, "    %s\n", err.msg);
    unlink(path);
    rmdir(dir);
    th_optim_free(&o);
    th_model_free(&a);
    th_model_free(&b);
}

/* What a graph may not be, each error naming the entry and its problem. */
static void test_graph_errors(void)
{
    th_err err;
    th_model_spec s;
    struct {
        int layer;
        const char *from0, *from1;
        const char *words;
    } cases[] = {
        {2, "nowhere", "input", "from: 'nowhere' is not the name of an earlier layer"},
        {2, "stem_relu", "fc", "from: 'fc' is not the name of an earlier layer"},   /* a later layer */
        {2, "stem_relu", NULL, "needs two or more inputs"},
        {10, "gap_a", "pool1", "differ in shape"},
        {10, "gap_a", "gap_a", "the output of transition1 is never used"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        s = graph_spec();
        th_layer_spec *l = &s.layers[cases[k].layer];
        memset(l->from, 0, sizeof l->from);
        strcpy(l->from[0], cases[k].from0);
        l->n_from = 1;
        if (cases[k].from1) strcpy(l->from[1], cases[k].from1), l->n_from = 2;
        if (!CHECK(th_model_spec_check(&s, L, &err) == -1 && strstr(err.msg, cases[k].words))) {
            fprintf(stderr, "    case %zu: %s\n", k, err.msg);
            continue;
        }
        char where[32];
        snprintf(where, sizeof where, "model.layers[%d]", cases[k].layer);
        if (k < 4) CHECK(strstr(err.msg, where) != NULL);
        else CHECK(strstr(err.msg, "model.layers[7] (transition") != NULL);
    }
    /* A block's own layers are named in its errors. */
    s = graph_spec();
    s.h = s.w = 4;  /* 4 -> 2 (pool) -> 1 (strided block): the transition's 2x2 pool has no room */
    s.layers[3].pad = 0;
    CHECK(th_model_spec_check(&s, L, &err) == -1 &&
          strstr(err.msg, "model.layers[7] (transition): transition1: kernel 2 does not fit a 1x1 input"));
    s = graph_spec();
    strcpy(s.layers[4].name, "stem");
    CHECK(th_model_spec_check(&s, L, &err) == -1 && strstr(err.msg, "name 'stem' is already used"));
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
    th_tmp_path(path, tmp, sizeof tmp, NULL);
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
    l[s.n_layers++] = th_test_layer(TH_LAYER_CONV, 4, 3, 1, 1);
    l[s.n_layers++] = th_test_layer(TH_LAYER_RELU, 0, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_MAXPOOL, 0, 2, 2, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_CONV, 6, 3, 1, 1);
    l[s.n_layers++] = th_test_layer(TH_LAYER_RELU, 0, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_GAP, 0, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_DENSE, TH_OUT_LABELS, 0, 0, 0);
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
    test_graph_structure();
    test_bottleneck_structure();
    test_flatten_init();
    test_graph_errors();
    test_fusion();
    test_names_and_layout();
    test_checkpoint();
    return th_test_summary("test_model");
}

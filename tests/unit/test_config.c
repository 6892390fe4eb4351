/* test_config.c - the YAML configuration: shipped configs, defaults, every
 * kind of error (with its key and line), --set overrides, and the round trip
 * through th_config_to_yaml. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "thorax/config.h"
#include "thorax/nn.h"
#include "thorax/train.h"

/* A model section (7 lines) that fits any config below, and a small valid
 * config made of it: layers on lines 6 to 9, an appended section at line 10. */
#define MODEL                                    \
    "model:\n"                                   \
    "  input: [1, 16, 16]\n"                     \
    "  layers:\n"                                \
    "    - {type: conv, out: 4, k: 3, pad: 1}\n" \
    "    - {type: relu}\n"                       \
    "    - {type: gap}\n"                        \
    "    - {type: dense, out: labels}\n"
#define MINI "data:\n  path: d.h5\n" MODEL

static int load_sets(th_config *cfg, const char *yaml, const char *const *sets, int n_sets, th_err *err)
{
    return th_run_config_load_string(cfg, yaml, "t.yaml", sets, n_sets, err);
}

static int load(th_config *cfg, const char *yaml, th_err *err)
{
    return load_sets(cfg, yaml, NULL, 0, err);
}

/* Loading must fail with a message containing every string given (the list
 * ends with NULL). Returns the message for further checks. */
static void expect_error_at(int line, const char *yaml, const char *const *sets, int n_sets, ...)
{
    static th_config cfg;
    th_err err = {{0}};
    int rc = load_sets(&cfg, yaml, sets, n_sets, &err);
    th_test_check(rc == -1, __FILE__, line, "loading fails");
    va_list ap;
    va_start(ap, n_sets);
    for (const char *want; (want = va_arg(ap, const char *));) {
        if (!th_test_check(strstr(err.msg, want) != NULL, __FILE__, line, "message contains the expected text"))
            fprintf(stderr, "    wanted \"%s\" in \"%s\"\n", want, err.msg);
    }
    va_end(ap);
}
#define EXPECT_ERROR(yaml, ...) expect_error_at(__LINE__, (yaml), NULL, 0, __VA_ARGS__, (const char *)NULL)
#define EXPECT_SET_ERROR(yaml, set, ...)                                                              \
    do {                                                                                              \
        const char *sets_[] = {set};                                                                  \
        expect_error_at(__LINE__, (yaml), sets_, 1, __VA_ARGS__, (const char *)NULL);                 \
    } while (0)

static const char *source_dir(void)
{
    const char *d = getenv("THORAX_SOURCE_DIR");
    return d ? d : ".";
}

/* Forward multiply-adds x2 of the conv layers, from the shape walk. */
/* Output shape of each layer of a chain (no blocks: one node per entry). */
static int spec_shapes(const th_model_spec *spec, int n_labels, int (*shapes)[3], th_err *err)
{
    th_graph g;
    if (th_model_graph(spec, n_labels, &g, err)) return -1;
    for (int i = 0; i < g.n; i++) shapes[i][0] = g.nodes[i].c, shapes[i][1] = g.nodes[i].h, shapes[i][2] = g.nodes[i].w;
    th_graph_free(&g);
    return 0;
}

static double conv_flops(const th_model_spec *spec, int (*shapes)[3])
{
    double flops = 0;
    int c = spec->c;
    for (int i = 0; i < spec->n_layers; i++) {
        const th_layer_spec *l = &spec->layers[i];
        if (l->type == TH_LAYER_CONV) flops += 2.0 * l->out * c * l->k * l->k * shapes[i][1] * shapes[i][2];
        c = shapes[i][0];
    }
    return flops;
}

static void test_shipped_configs(void)
{
    static th_config cfg;
    th_err err = {{0}};
    char path[1024];
    int shapes[TH_MAX_LAYERS][3];

    snprintf(path, sizeof path, "%s/configs/quickstart.yaml", source_dir());
    if (!CHECK(th_run_config_load(&cfg, path, NULL, 0, &err) == 0)) fprintf(stderr, "    %s\n", err.msg);
    CHECK(strcmp(cfg.source, path) == 0);
    CHECK(strcmp(cfg.name, "quickstart") == 0);
    CHECK(strcmp(cfg.data.path, "data/phantom.h5") == 0);
    CHECK(cfg.data.n_labels == 0);
    CHECK(cfg.model.c == 1 && cfg.model.h == 64 && cfg.model.w == 64);
    /* What must hold whatever the tuning: a conv first, a dense head with one
     * output per label last, and a shape that fits all the way down. */
    int last = cfg.model.n_layers - 1;
    CHECK(cfg.model.layers[0].type == TH_LAYER_CONV && cfg.model.layers[0].pad == 1 && cfg.model.layers[0].bias == 1);
    CHECK(cfg.model.layers[last].type == TH_LAYER_DENSE && cfg.model.layers[last].out == TH_OUT_LABELS);
    CHECK(cfg.model.layers[last - 1].type == TH_LAYER_GAP);
    CHECK(cfg.train.optimizer.type == TH_OPTIM_SGD && cfg.train.optimizer.nesterov == 1);
    CHECK(cfg.train.loss == TH_LOSS_WEIGHTED_BCE);
    CHECK(spec_shapes(&cfg.model, 4, shapes, &err) == 0);
    CHECK(shapes[last][0] == 4 && shapes[last][1] == 1 && shapes[last][2] == 1);

    snprintf(path, sizeof path, "%s/configs/reference.yaml", source_dir());
    if (!CHECK(th_run_config_load(&cfg, path, NULL, 0, &err) == 0)) fprintf(stderr, "    %s\n", err.msg);
    CHECK(strcmp(cfg.name, "reference") == 0);
    CHECK(cfg.model.c == 1 && cfg.model.h == 256 && cfg.model.w == 256);
    CHECK(cfg.model.n_layers == 16);
    CHECK(cfg.train.batch_per_rank == 32);
    CHECK(cfg.train.optimizer.nesterov == 1 && cfg.train.optimizer.momentum == 0.9f);
    CHECK(cfg.train.loss == TH_LOSS_WEIGHTED_BCE);
    int convs = 0;
    for (int i = 0; i < cfg.model.n_layers; i++) {
        const th_layer_spec *l = &cfg.model.layers[i];
        if (l->type != TH_LAYER_CONV) continue;
        CHECK(l->k == 3 && l->pad == 1 && l->bias == 1 && l->out == 16 << convs);
        convs++;
    }
    CHECK(convs == 5);
    CHECK(spec_shapes(&cfg.model, 14, shapes, &err) == 0);
    CHECK(shapes[13][0] == 256 && shapes[13][1] == 16 && shapes[13][2] == 16);
    CHECK(shapes[15][0] == 14 && shapes[15][1] == 1 && shapes[15][2] == 1);
    /* "About 0.64 GFLOP forward per image." */
    CHECK_NEAR(conv_flops(&cfg.model, shapes) / 1e9, 0.64, 0.03);

    /* The deeper networks: torchvision's convolutions, one by one, and the
     * shapes their heads read (2048x7x7 into ResNet's gap, VGG's 512x7x7
     * flattened into 25088 inputs, 14x14 maps under VGG-GAP's gap). */
    const struct {
        const char *name;
        int convs, head_in[3];
    } deep[] = {{"resnet50", 1 + 16 * 3 + 4, {2048, 7, 7}},
                {"resnet152", 1 + 50 * 3 + 4, {2048, 7, 7}},
                {"vgg16", 13, {25088, 1, 1}},
                {"vgg16_gap", 13, {512, 14, 14}}};
    for (size_t k = 0; k < sizeof deep / sizeof deep[0]; k++) {
        snprintf(path, sizeof path, "%s/configs/%s.yaml", source_dir(), deep[k].name);
        if (!CHECK(th_run_config_load(&cfg, path, NULL, 0, &err) == 0)) {
            fprintf(stderr, "    %s\n", err.msg);
            continue;
        }
        th_graph g;
        if (!CHECK(th_model_graph(&cfg.model, 1, &g, &err) == 0)) {
            fprintf(stderr, "    %s: %s\n", deep[k].name, err.msg);
            continue;
        }
        int convs = 0;
        for (int i = 0; i < g.n; i++) convs += g.nodes[i].spec.type == TH_LAYER_CONV;
        const th_node *head = &g.nodes[g.nodes[g.n - 1].in[0]];
        for (int i = g.n - 1; i > 0 && head->spec.type != TH_LAYER_GAP && head->spec.type != TH_LAYER_FLATTEN; i--)
            head = &g.nodes[i];
        const th_node *in = &g.nodes[head->in[0]];
        const th_node *shown = head->spec.type == TH_LAYER_FLATTEN ? head : in;
        if (!CHECK(convs == deep[k].convs && shown->c == deep[k].head_in[0] && shown->h == deep[k].head_in[1] &&
                   shown->w == deep[k].head_in[2]))
            fprintf(stderr, "    %s: %d convs, %dx%dx%d into the head\n", deep[k].name, convs, shown->c, shown->h,
                    shown->w);
        th_graph_free(&g);
    }
}

static void test_defaults(void)
{
    static th_config cfg;
    th_err err = {{0}};
    if (!CHECK(load(&cfg, MINI, &err) == 0)) fprintf(stderr, "    %s\n", err.msg);
    CHECK(strcmp(cfg.name, "t") == 0); /* the file's base name */
    CHECK(strcmp(cfg.source, "t.yaml") == 0);
    CHECK(cfg.seed == 42);
    CHECK(cfg.data.n_labels == 0);
    CHECK(cfg.data.split_mode == TH_SPLIT_MODE_RANDOM);
    CHECK(cfg.data.train == 0.7 && cfg.data.val == 0.15 && cfg.data.test == 0.15);
    CHECK(cfg.data.normalize == TH_NORM_TRAINSET);
    CHECK(cfg.data.augment.hflip == 0 && cfg.data.augment.rotate_deg == 0 && cfg.data.augment.shift == 0);
    CHECK(cfg.data.augment.scale_lo == 1 && cfg.data.augment.scale_hi == 1);
    CHECK(cfg.train.epochs == 10 && cfg.train.batch_per_rank == 16);
    CHECK(cfg.train.optimizer.type == TH_OPTIM_SGD && cfg.train.optimizer.lr == 0.01f);
    CHECK(cfg.train.optimizer.momentum == 0.9f && cfg.train.optimizer.nesterov == 0);
    CHECK(cfg.train.optimizer.weight_decay == 0);
    CHECK(cfg.train.optimizer.beta1 == 0.9f && cfg.train.optimizer.beta2 == 0.999f);
    CHECK(cfg.train.optimizer.eps == 1e-8f);
    CHECK(cfg.train.schedule.type == TH_SCHED_CONSTANT && cfg.train.schedule.patience == 2);
    CHECK(cfg.train.schedule.step_epochs == 10 && cfg.train.schedule.warmup_epochs == 0);
    CHECK(cfg.train.schedule.min_lr == 0);
    CHECK(cfg.train.loss == TH_LOSS_WEIGHTED_BCE && cfg.train.early_stop_patience == 0);
    CHECK(strcmp(cfg.eval.split, "test") == 0 && strcmp(cfg.eval.cam_method, "gradcam") == 0);
    CHECK(cfg.eval.cam_top_k == 8);
    CHECK(strcmp(cfg.eval.threshold, "youden") == 0 && cfg.eval.threshold_rule == TH_THRESHOLD_YOUDEN);
    CHECK(cfg.eval.calibrate == TH_CALIBRATE_NONE);
    CHECK(cfg.eval.bootstrap == 2000);
    CHECK(strcmp(cfg.runtime.out_dir, "runs") == 0 && cfg.runtime.threads_per_rank == 1);
    CHECK(cfg.runtime.allreduce_bucket_mb == 0.5f);
    CHECK(cfg.model.n_layers == 4);
    CHECK(cfg.model.layers[0].line == 6 && cfg.model.layers[3].line == 9);
    CHECK(cfg.model.layers[0].stride == 1 && cfg.model.layers[0].bias == 1);
    CHECK(cfg.model.layers[3].out == TH_OUT_LABELS && cfg.model.layers[3].bias == 1);
    CHECK(cfg.model.layers[1].k == 0 && cfg.model.layers[1].bias == 0); /* unused fields stay 0 */

    /* Defaults that depend on another key. */
    CHECK(load(&cfg, MINI "train:\n  optimizer: {type: adam}\n  schedule: {type: plateau}\n", &err) == 0);
    CHECK(cfg.train.optimizer.lr == 0.001f && cfg.train.schedule.factor == 0.5f);
    CHECK(load(&cfg, MINI "train:\n  schedule: {type: step}\n", &err) == 0);
    CHECK(cfg.train.schedule.factor == 0.1f);
    CHECK(load(&cfg,
               "data: {path: d.h5}\nmodel:\n  input: [1, 8, 8]\n  layers:\n"
               "    - {type: maxpool, k: 2}\n    - {type: avgpool, k: 3, stride: 1}\n"
               "    - {type: batchnorm}\n    - {type: dropout}\n    - {type: gap}\n    - {type: dense, out: 2}\n",
               &err) == 0);
    CHECK(cfg.model.layers[0].stride == 2 && cfg.model.layers[1].stride == 1);
    CHECK(cfg.model.layers[2].momentum == 0.1f && cfg.model.layers[2].eps == 1e-5f);
    CHECK(cfg.model.layers[3].p == 0.5f);
    CHECK(cfg.model.layers[5].out == 2);

    /* A name given to load_string decides the default run name; none gives "config". */
    CHECK(th_run_config_load_string(&cfg, MINI, "configs/exp.v2.yaml", NULL, 0, &err) == 0);
    CHECK(strcmp(cfg.name, "exp.v2") == 0);
    CHECK(th_run_config_load_string(&cfg, MINI, NULL, NULL, 0, &err) == 0);
    CHECK(strcmp(cfg.name, "config") == 0);
}

static void test_values(void)
{
    static th_config cfg;
    th_err err = {{0}};
    /* Booleans in every YAML spelling, numbers with and without a dot before the exponent. */
    CHECK(load(&cfg, MINI "train:\n  optimizer: {lr: 1e-4, weight_decay: 1.0e-4, nesterov: yes}\n", &err) == 0);
    CHECK(cfg.train.optimizer.lr == 1e-4f && cfg.train.optimizer.weight_decay == 1e-4f);
    CHECK(cfg.train.optimizer.nesterov == 1);
    CHECK(load(&cfg, MINI "train: {optimizer: {nesterov: On}}\n", &err) == 0 && cfg.train.optimizer.nesterov == 1);
    CHECK(load(&cfg, MINI "train: {optimizer: {nesterov: off}}\n", &err) == 0 && cfg.train.optimizer.nesterov == 0);

    /* A single label is a list of one; names are kept as written, spaces and all. */
    CHECK(load(&cfg, "data: {path: d.h5, labels: Effusion}\nmodel: {input: [1, 8, 8], layers: [{type: gap}, "
                     "{type: dense, out: labels}]}\n",
               &err) == 0);
    CHECK(cfg.data.n_labels == 1 && strcmp(cfg.data.labels[0], "Effusion") == 0);
    CHECK(load(&cfg, "data: {path: ../x.h5, labels: [No Finding, 'a: b']}\nmodel: {input: [1, 8, 8], layers: "
                     "[{type: gap}, {type: dense, out: labels}]}\n",
               &err) == 0);
    CHECK(cfg.data.n_labels == 2 && strcmp(cfg.data.labels[0], "No Finding") == 0);
    CHECK(strcmp(cfg.data.labels[1], "a: b") == 0 && strcmp(cfg.data.path, "../x.h5") == 0);

    /* Split: predefined, or a mapping whose test part may be left out. */
    CHECK(load(&cfg, "data: {path: d.h5, split: predefined}\n" MODEL, &err) == 0);
    CHECK(cfg.data.split_mode == TH_SPLIT_MODE_PREDEFINED);
    CHECK(load(&cfg, "data: {path: d.h5, split: {train: 0.8, val: 0.1}}\n" MODEL, &err) == 0);
    CHECK(cfg.data.split_mode == TH_SPLIT_MODE_RANDOM);
    CHECK_NEAR(cfg.data.test, 0.1, 1e-12);

    /* Augmentation: a mapping, or false/none for none. */
    CHECK(load(&cfg, "data: {path: d.h5, augment: {hflip: true, rotate_deg: 10, shift: 0.05, scale: [0.9, 1.1]}}\n"
                     MODEL,
               &err) == 0);
    CHECK(cfg.data.augment.hflip == 1 && cfg.data.augment.rotate_deg == 10 && cfg.data.augment.shift == 0.05f);
    CHECK(cfg.data.augment.scale_lo == 0.9f && cfg.data.augment.scale_hi == 1.1f);
    CHECK(load(&cfg, "data: {path: d.h5, augment: none}\n" MODEL, &err) == 0);
    CHECK(cfg.data.augment.hflip == 0 && cfg.data.augment.scale_lo == 1);
    CHECK(load(&cfg, "data: {path: d.h5, augment: false}\n" MODEL, &err) == 0);

    /* A null value is the default. */
    CHECK(load(&cfg, MINI "train:\n  epochs:\n  early_stop:\n", &err) == 0);
    CHECK(cfg.train.epochs == 10 && cfg.train.early_stop_patience == 0);
    CHECK(load(&cfg, MINI "train: {early_stop: {patience: 5}}\nseed: 0\n", &err) == 0);
    CHECK(cfg.train.early_stop_patience == 5 && cfg.seed == 0);

    /* th_config_load clears the whole struct, padding included. */
    static th_config dirty, clean;
    memset(&dirty, 0xab, sizeof dirty);
    memset(&clean, 0, sizeof clean);
    CHECK(load(&dirty, MINI, &err) == 0 && load(&clean, MINI, &err) == 0);
    CHECK(memcmp(&dirty, &clean, sizeof clean) == 0);
}

static void test_errors(void)
{
    /* The examples of the contract. */
    EXPECT_ERROR(MINI "train: {epochs: 3}\ndata_: 1\n", "t.yaml:11: data_: unknown key (did you mean 'data'?)");
    EXPECT_ERROR(MINI "train:\n  optimzer: {type: sgd}\n", "t.yaml:11: train.optimzer: unknown key",
                 "did you mean 'optimizer'?");
    EXPECT_ERROR("data:\n  path: d.h5\n  splt: predefined\n" MODEL, "t.yaml:3: data.splt: unknown key",
                 "(did you mean 'split'?)");
    EXPECT_ERROR(MINI "train:\n  epochs: ten\n", "t.yaml:11: train.epochs: must be an integer, got 'ten'");
    EXPECT_ERROR(MINI "train:\n  epochs: 1.5\n", "t.yaml:11: train.epochs: must be an integer, got '1.5'");
    EXPECT_ERROR(MINI "train:\n  epochs: 0\n", "t.yaml:11: train.epochs: must be >= 1, got 0");
    EXPECT_ERROR(MINI "train:\n  optimizer:\n    lr: -0.1\n",
                 "t.yaml:12: train.optimizer.lr: must be > 0, got -0.1");
    EXPECT_ERROR("data:\n  path: d.h5\n  split: {train: 0.7, val: 0.2, test: 0.2}\n" MODEL,
                 "t.yaml:3: data.split: fractions sum to 1.1, must sum to 1");
    EXPECT_ERROR("data:\n  path: d.h5\n  split: {train: 0.8, val: 0.3}\n" MODEL, "t.yaml:3: data.split:",
                 "nothing for test");
    EXPECT_ERROR("data:\n  path: d.h5\n  split: {val: 0.3, test: 0.2}\n" MODEL,
                 "t.yaml:3: data.split.train: is required");
    EXPECT_ERROR("data:\n  path: d.h5\n  split: random\n" MODEL, "t.yaml:3: data.split: must be 'predefined'");
    EXPECT_ERROR(MINI "train:\n  optimizer: {momentum: 0, nesterov: true}\n",
                 "t.yaml:11: train.optimizer.nesterov: needs momentum > 0");
    EXPECT_ERROR(MINI "train:\n  optimizer: {type: adm}\n", "t.yaml:11: train.optimizer.type: must be one of sgd, adam",
                 "did you mean 'adam'?");
    EXPECT_ERROR(MINI "train:\n  optimizer: {betas: [0.9, 1]}\n", "train.optimizer.betas[1]: must be in [0, 1), got 1");
    EXPECT_ERROR(MINI "train:\n  schedule: {factor: 1}\n", "train.schedule.factor: must be in (0, 1), got 1");
    EXPECT_ERROR(MINI "train:\n  schedule: {min_lr: 0.5}\n",
                 "train.schedule.min_lr: must not exceed the learning rate");
    EXPECT_ERROR(MINI "train:\n  loss: focal\n", "t.yaml:11: train.loss: must be one of weighted_bce, bce, softmax_ce");
    EXPECT_ERROR(MINI "eval: {split: train}\n", "t.yaml:10: eval.split: must be one of val, test; got 'train'");
    EXPECT_ERROR(MINI "eval: {cam: {method: gradcam, top_k: -1}}\n", "eval.cam.top_k: must be >= 0, got -1");
    /* Every method thorax cam knows, and the list in the error. */
    EXPECT_ERROR(MINI "eval: {cam: {method: lime}}\n", "eval.cam.method: must be one of cam, gradcam, saliency");
    {
        static th_config c;
        th_err e;
        CHECK(load(&c, MINI "eval: {cam: {method: saliency}}\n", &e) == 0 && !strcmp(c.eval.cam_method, "saliency"));
    }
    EXPECT_ERROR(MINI "eval: {threshold: sensitivity@1}\n",
                 "t.yaml:10: eval.threshold: the number after 'sensitivity@' must be in (0, 1), got '1'");
    EXPECT_ERROR(MINI "eval: {threshold: best}\n", "eval.threshold: must be youden, sensitivity@S, specificity@S or fixed:T");
    EXPECT_ERROR(MINI "eval: {calibrate: platt}\n", "eval.calibrate: must be one of none, temperature");
    EXPECT_ERROR(MINI "eval: {bootstrap: -5}\n", "eval.bootstrap: must be in [0, 1000000], got -5");
    EXPECT_ERROR(MINI "runtime: {threads_per_rank: 0}\n", "runtime.threads_per_rank: must be >= 1");
    EXPECT_ERROR(MINI "runtime: {allreduce_bucket_mb: -1}\n", "runtime.allreduce_bucket_mb: must be >= 0, got -1");
    EXPECT_ERROR(MINI "runtime: {allreduce_bucket_mb: big}\n", "runtime.allreduce_bucket_mb: must be a number");
    EXPECT_ERROR(MINI "runtime: {precision: fp16}\n", "runtime.precision");
    EXPECT_ERROR(MINI "seed: -1\n", "t.yaml:10: seed: must be >= 0, got -1");
    EXPECT_ERROR(MINI "train: [1, 2]\n", "t.yaml:10: train: must be a mapping of keys, got a list");
    EXPECT_ERROR("data: {path: d.h5, augment: {shift: 0.5}}\n" MODEL, "data.augment.shift: must be in [0, 0.5)");
    EXPECT_ERROR("data: {path: d.h5, augment: {scale: [1.2, 1.1]}}\n" MODEL, "data.augment.scale: must be [low, high]");
    EXPECT_ERROR("data: {path: d.h5, augment: true}\n" MODEL, "data.augment: must be a mapping, or false/none");
    EXPECT_ERROR("data: {path: d.h5, labels: [A, B, A]}\n" MODEL, "data.labels[2]: 'A' is listed twice");
    EXPECT_ERROR("data: {labels: [A]}\n" MODEL, "t.yaml:1: data.path: is required");
    EXPECT_ERROR("data: {path: d.h5}\n", "model.input: is required");
    EXPECT_ERROR("- a\n- b\n", "t.yaml:1: the top level must be a mapping");
    EXPECT_ERROR(MINI "name: a/b\n", "name: must be usable as a directory name");

    /* Layers: unknown type, keys of another type, and a network that does not fit. */
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - {type: relu}\n"
                 "    - {type: convv, out: 4, k: 3}\n",
                 "t.yaml:6: model.layers[1].type: must be one of conv, relu", "got 'convv' (did you mean 'conv'?)");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - {type: avgpool, k: 2, pad: 1}\n",
                 "t.yaml:5: model.layers[0].pad: not a key of an avgpool layer");
    /* Blocks and from: */
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - {type: resblock, out: 4, growth: 2}\n",
                 "t.yaml:5: model.layers[0].growth: not a key of a resblock layer");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - {type: resblock, out: 4, width: 2}\n",
                 "t.yaml:5: model.layers[0].width: not a key of a resblock layer");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - {type: bottleneck, stride: 2}\n",
                 "t.yaml:5: model.layers[0].out: is required");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - {type: bottleneck, out: 8, width: 0}\n",
                 "t.yaml:5: model.layers[0].width: must be");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - {type: bottleneck, out: 8, k: 3}\n",
                 "t.yaml:5: model.layers[0].k: not a key of a bottleneck layer");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - {type: flatten, out: 8}\n",
                 "t.yaml:5: model.layers[0].out: not a key of a flatten layer");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - {type: flaten}\n",
                 "got 'flaten' (did you mean 'flatten'?)");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - {type: denseblock, growth: 2}\n",
                 "t.yaml:5: model.layers[0].layers: is required");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - {type: relu, name: a}\n"
                 "    - {type: add, from: a}\n",
                 "t.yaml:6: model.layers[1].from: needs two or more layers, got 1");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - {type: relu, name: a}\n"
                 "    - {type: concat}\n",
                 "t.yaml:6: model.layers[1].from: is required");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - {type: relu, name: a}\n"
                 "    - {type: relu, from: [a, input]}\n",
                 "model.layers[1].from: a relu layer reads one layer, got 2");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - {type: relu, name: a}\n"
                 "    - {type: add, from: [a, b]}\n",
                 "model.layers[1] (add, line 6): from: 'b' is not the name of an earlier layer");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - {type: conv, name: a, out: 2, k: 1}\n"
                 "    - {type: add, from: [a, input]}\n",
                 "model.layers[1] (add, line 6): inputs a (2x16x16) and input (1x16x16) differ in shape");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 1, 1]\n  layers:\n    - {type: transition, name: t, out: 2}\n",
                 "model.layers[0] (transition t, line 5): t: kernel 2 does not fit a 1x1 input");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n"
                 "    - {type: conv, out: 4, k: 3, strid: 2}\n",
                 "model.layers[0].strid: not a key of a conv layer (did you mean 'stride'?)");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - {type: conv, k: 3}\n",
                 "t.yaml:5: model.layers[0].out: is required");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - {type: dense, out: lables}\n",
                 "model.layers[0].out: must be a number of outputs or 'labels', got 'lables'");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - {type: dropout, p: 1}\n",
                 "model.layers[0].p: must be in [0, 1), got 1");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - relu\n",
                 "t.yaml:5: model.layers[0]: must be a mapping such as {type: relu}, got 'relu'");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers: []\n",
                 "t.yaml:4: model.layers: must have at least one layer");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16]\n  layers: [{type: gap}]\n",
                 "t.yaml:3: model.input: must be a list [C, H, W]");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 0, 16]\n  layers: [{type: gap}]\n",
                 "model.input[1]: must be in [1, 65536], got 0");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n"
                 "    - {type: gap, name: head}\n    - {type: dense, out: 2, name: head}\n",
                 "t.yaml:6: model.layers[1].name: 'head' is already the name of model.layers[0]");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n    - {type: gap, name: a/b}\n",
                 "model.layers[0].name: must use only letters");
    /* 16 -> 8 -> 4 -> 2 -> 1: the fifth pool has nothing left to pool. */
    EXPECT_ERROR("data: {path: d.h5}\n"
                 "model:\n"
                 "  input: [1, 16, 16]\n"
                 "  layers:\n"
                 "    - {type: maxpool, k: 2}\n"
                 "    - {type: maxpool, k: 2}\n"
                 "    - {type: maxpool, k: 2}\n"
                 "    - {type: maxpool, k: 2}\n"
                 "    - {type: maxpool, k: 2}\n"
                 "    - {type: gap}\n",
                 "t.yaml: model.layers[4] (maxpool, line 9): kernel 2 does not fit a 1x1 input");
    EXPECT_ERROR("data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n"
                 "    - {type: conv, out: 64, k: 3, pad: 1}\n"
                 "    - {type: maxpool, k: 2}\n"
                 "    - {type: dense, out: 2}\n",
                 "model.layers[2] (dense, line 7): needs a flat input (put a gap or flatten layer before it), got 64x8x8");
    /* With the labels named, the outputs are checked too. */
    EXPECT_ERROR("data: {path: d.h5, labels: [A, B]}\nmodel:\n  input: [1, 16, 16]\n  layers:\n"
                 "    - {type: gap}\n    - {type: dense, out: 3}\n",
                 "model.layers[1] (dense, line 6): the network must end in 2 outputs");

    /* YAML itself: duplicates and syntax. */
    EXPECT_ERROR("seed: 1\nseed: 2\n", "t.yaml:2: seed: duplicate key (first given at line 1)");
    EXPECT_ERROR(MINI "train:\n  epochs: 3\n  batch_per_rank: 4\n  epochs: 5\n",
                 "t.yaml:13: train.epochs: duplicate key (first given at line 11)");
    EXPECT_ERROR("data:\n  path: d.h5\n  labels: a: b\n",
                 "t.yaml:3: YAML syntax error: mapping values are not allowed");
    EXPECT_ERROR("data:\n  path: d.h5\n  labels: [a, b\nmodel: 1\n", "t.yaml:", "YAML syntax error",
                 "flow sequence");
    EXPECT_ERROR("data: {path: d.h5}\n---\nseed: 1\n", "t.yaml:2: only one YAML document");
    EXPECT_ERROR("a: &x [*x]\n", "nested more than");

    /* Sizes: strings are never truncated, lists never cut. */
    char long_name[300], *big;
    memset(long_name, 'x', 200);
    long_name[200] = 0;
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "%sname: %s\n", MINI, long_name);
    EXPECT_ERROR(yaml, "t.yaml:10: name: is 200 characters long, at most 127 are allowed");
    size_t cap = 64 * (TH_MAX_LAYERS + 2) + sizeof MINI;
    big = malloc(cap);
    size_t n = (size_t)snprintf(big, cap, "data: {path: d.h5}\nmodel:\n  input: [1, 8, 8]\n  layers:\n");
    for (int i = 0; i <= TH_MAX_LAYERS; i++) n += (size_t)snprintf(big + n, cap - n, "    - {type: relu}\n");
    EXPECT_ERROR(big, "t.yaml:5: model.layers: at most 128 layers, got 129");
    free(big);
    cap = 8 * (TH_MAX_LABELS + 2) + sizeof MINI;
    big = malloc(cap);
    n = (size_t)snprintf(big, cap, "data:\n  path: d.h5\n  labels: [");
    for (int i = 0; i <= TH_MAX_LABELS; i++) n += (size_t)snprintf(big + n, cap - n, "%sL%d", i ? ", " : "", i);
    snprintf(big + n, cap - n, "]\n%s", MODEL);
    EXPECT_ERROR(big, "t.yaml:3: data.labels: at most 256 labels, got 257");
    free(big);

    static th_config cfg;
    th_err err = {{0}};
    CHECK(th_run_config_load(&cfg, "/nonexistent/x.yaml", NULL, 0, &err) == -1);
    CHECK(strstr(err.msg, "/nonexistent/x.yaml: cannot open") != NULL);
}

static void test_overrides(void)
{
    static th_config cfg;
    th_err err = {{0}};

    const char *scalar[] = {"train.optimizer.lr=0.1", "seed=7"};
    CHECK(load_sets(&cfg, MINI "train: {optimizer: {lr: 0.5}}\n", scalar, 2, &err) == 0);
    CHECK(cfg.train.optimizer.lr == 0.1f && cfg.seed == 7);

    const char *list[] = {"data.labels=[Effusion,Nodule]", "model.input=[1,32,32]"};
    CHECK(load_sets(&cfg, MINI, list, 2, &err) == 0);
    CHECK(cfg.data.n_labels == 2 && strcmp(cfg.data.labels[1], "Nodule") == 0);
    CHECK(cfg.model.h == 32 && cfg.model.w == 32);

    /* Keys the file did not have, in sections it did not have. */
    const char *create[] = {"name=exp1", "train.early_stop.patience=3", "eval.cam.top_k=2"};
    CHECK(load_sets(&cfg, MINI, create, 3, &err) == 0);
    CHECK(strcmp(cfg.name, "exp1") == 0 && cfg.train.early_stop_patience == 3 && cfg.eval.cam_top_k == 2);

    /* Into a list item, over a scalar, and the last override wins. */
    const char *deep[] = {"model.layers[0].out=8", "data.augment.hflip=true", "seed=1", "seed=2"};
    CHECK(load_sets(&cfg, "data: {path: d.h5, augment: false}\n" MODEL, deep, 4, &err) == 0);
    CHECK(cfg.model.layers[0].out == 8 && cfg.data.augment.hflip == 1 && cfg.seed == 2);

    /* A whole layer list from the command line: no file lines for its layers. */
    const char *layers[] = {"model.layers=[{type: gap}, {type: dense, out: labels}]"};
    CHECK(load_sets(&cfg, MINI, layers, 1, &err) == 0);
    CHECK(cfg.model.n_layers == 2 && cfg.model.layers[1].line == 0);

    /* An empty value is refused, naming the key (a forgotten value is not
     * the default); null restores the default. */
    const char *empty[] = {"train.epochs="}, *spaces[] = {"data.path=  "}, *unset[] = {"train.epochs=null"};
    CHECK(load_sets(&cfg, MINI "train: {epochs: 3}\n", empty, 1, &err) == -1);
    CHECK(strstr(err.msg, "--set train.epochs=: no value for train.epochs") != NULL);
    CHECK(load_sets(&cfg, MINI, spaces, 1, &err) == -1 && strstr(err.msg, "no value for data.path"));
    CHECK(load_sets(&cfg, MINI "train: {epochs: 3}\n", unset, 1, &err) == 0 && cfg.train.epochs == 10);

    const char *typo[] = {"train.optimiser.lr=0.1"};
    CHECK(load_sets(&cfg, MINI, typo, 1, &err) == -1);
    CHECK(strcmp(err.msg, "--set train.optimiser.lr=0.1: "
                          "unknown key 'optimiser' in train (did you mean 'optimizer'?)") == 0);
    EXPECT_SET_ERROR(MINI, "sed=1", "--set sed=1: unknown key 'sed' at the top level (did you mean 'seed'?)");
    EXPECT_SET_ERROR(MINI, "train.optimizer.lr=-1",
                     "--set train.optimizer.lr=-1: train.optimizer.lr: must be > 0, got -1");
    EXPECT_SET_ERROR(MINI, "train.epochs=ten", "--set train.epochs=ten: train.epochs: must be an integer, got 'ten'");
    EXPECT_SET_ERROR(MINI, "model.layers[1].k=3",
                     "--set model.layers[1].k=3: model.layers[1].k: not a key of a relu layer");
    EXPECT_SET_ERROR(MINI, "model.layers[9].k=3",
                     "--set model.layers[9].k=3: model.layers has 4 items, there is no [9]");
    EXPECT_SET_ERROR(MINI, "model.layers[0].strid=3",
                     "unknown key 'strid' in model.layers[0] (did you mean 'stride'?)");
    EXPECT_SET_ERROR(MINI, "seed.x=3", "--set seed.x=3: seed is a single value, it has no key 'x'");
    EXPECT_SET_ERROR(MINI, "train.epochs", "--set train.epochs: expected key=value");
    EXPECT_SET_ERROR(MINI, "train..epochs=1", "empty key");
    EXPECT_SET_ERROR(MINI, "data.labels=[a", "--set data.labels=[a: YAML syntax error");
    EXPECT_SET_ERROR(MINI, "train.optimizer={lr: 1, lr: 2}",
                     "--set train.optimizer={lr: 1, lr: 2}: train.optimizer.lr: duplicate key");
    /* Layers from the command line have no line; the message names the override. */
    EXPECT_SET_ERROR(MINI, "model.layers=[{type: maxpool, k: 32}]",
                     "--set model.layers=[{type: maxpool, k: 32}]: "
                     "model.layers[0] (maxpool): kernel 32 does not fit a 16x16 input");
    EXPECT_SET_ERROR(MINI, "train.batch_size=3", "unknown key 'batch_size' in train (expected one of: epochs, ");
}

static void test_out_labels(void)
{
    static th_config cfg;
    th_err err = {{0}};
    int shapes[TH_MAX_LAYERS][3];
    CHECK(load(&cfg, MINI, &err) == 0);
    CHECK(cfg.model.layers[3].out == TH_OUT_LABELS);
    /* Unresolved until the labels are known: one output, and no final check. */
    CHECK(spec_shapes(&cfg.model, 0, shapes, &err) == 0 && shapes[3][0] == 1);
    CHECK(spec_shapes(&cfg.model, 5, shapes, &err) == 0);
    CHECK(shapes[3][0] == 5 && shapes[3][1] == 1 && shapes[3][2] == 1);
    CHECK(th_model_spec_check(&cfg.model, 5, &err) == 0);

    /* The config alone does not know the network: a head of the wrong width
     * loads, and the run's check rejects it from the file. */
    const char *two[] = {"data.labels=[A, B]"};
    CHECK(th_config_load_string(&cfg, MINI, "t.yaml", two, 1, &err) == 0);
    CHECK(th_run_config_check(&cfg, &err) == 0);
    cfg.model.layers[3].out = 3;
    CHECK(th_run_config_check(&cfg, &err) == -1);
    CHECK(strncmp(err.msg, "t.yaml: model.layers[3] (dense, line 9): the network must end in 2 outputs", 74) == 0);

    const char *three[] = {"data.labels=[A, B, C]", "model.layers[3].out=3"};
    CHECK(load_sets(&cfg, MINI, three, 2, &err) == 0);
    CHECK(th_model_spec_check(&cfg.model, 4, &err) == -1);
    CHECK(strstr(err.msg, "model.layers[3] (dense, line 9): the network must end in 4 outputs") != NULL);
}

static void test_shapes(void)
{
    th_model_spec spec;
    th_err err = {{0}};
    int shapes[TH_MAX_LAYERS][3];
    th_layer_type t;
    memset(&spec, 0, sizeof spec);
    spec.c = 3, spec.h = 15, spec.w = 9;
    spec.n_layers = 4;
    spec.layers[0] = (th_layer_spec){.type = TH_LAYER_CONV, .out = 6, .k = 3, .stride = 2, .pad = 0};
    spec.layers[1] = (th_layer_spec){.type = TH_LAYER_AVGPOOL, .k = 3, .stride = 0}; /* stride 0 means k */
    spec.layers[2] = (th_layer_spec){.type = TH_LAYER_CONV, .out = 2, .k = 1, .stride = 0};
    spec.layers[3] = (th_layer_spec){.type = TH_LAYER_GAP};
    CHECK(spec_shapes(&spec, 0, shapes, &err) == 0);
    /* (15-3)/2+1 = 7, (9-3)/2+1 = 4; then (7-3)/3+1 = 2, (4-3)/3+1 = 1. */
    CHECK(shapes[0][0] == 6 && shapes[0][1] == 7 && shapes[0][2] == 4);
    CHECK(shapes[1][0] == 6 && shapes[1][1] == 2 && shapes[1][2] == 1);
    CHECK(shapes[2][0] == 2 && shapes[2][1] == 2 && shapes[2][2] == 1);
    CHECK(shapes[3][0] == 2 && shapes[3][1] == 1 && shapes[3][2] == 1);
    CHECK(th_model_spec_check(&spec, 2, &err) == 0);
    CHECK(th_model_spec_check(&spec, 3, &err) == -1);

    spec.layers[0].out = 0;
    spec.layers[0].line = 12;
    spec.layers[0].name[0] = 'c';
    CHECK(th_model_spec_check(&spec, 0, &err) == -1);
    CHECK(strstr(err.msg, "model.layers[0] (conv c, line 12): out must be > 0") != NULL);

    for (int i = 0; i < TH_LAYER_TYPE_COUNT; i++) {
        CHECK(th_layer_type_parse(th_layer_type_name((th_layer_type)i), &t) == 0 && (int)t == i);
    }
    CHECK(strcmp(th_layer_type_name(TH_LAYER_BATCHNORM), "batchnorm") == 0);
    CHECK(th_layer_type_parse("Conv", &t) == -1);
}

/* load -> to_yaml -> load gives the same struct, and the same text again. */
static void check_round_trip(int line, const th_config *a)
{
    static th_config b, a2;
    th_err err = {{0}};
    char *text = th_config_to_yaml(a);
    if (!th_test_check(text != NULL, __FILE__, line, "to_yaml")) return;
    int rc = th_run_config_load_string(&b, text, "resolved.yaml", NULL, 0, &err);
    if (!th_test_check(rc == 0, __FILE__, line, "the resolved YAML loads"))
        fprintf(stderr, "    %s\n--- text ---\n%s", err.msg, text);
    /* Where the config came from is all that may differ: its file name, the
     * lines its layers were written on, and the places th_config.at keeps. */
    a2 = *a;
    memset(a2.source, 0, sizeof a2.source);
    memset(b.source, 0, sizeof b.source);
    memset(&a2.at, 0, sizeof a2.at);
    memset(&b.at, 0, sizeof b.at);
    for (int i = 0; i < TH_MAX_LAYERS; i++) a2.model.layers[i].line = b.model.layers[i].line = 0;
    if (!th_test_check(memcmp(&a2, &b, sizeof b) == 0, __FILE__, line, "the resolved YAML gives the same struct"))
        fprintf(stderr, "--- text ---\n%s", text);
    char *again = th_config_to_yaml(&b);
    th_test_check(again && strcmp(text, again) == 0, __FILE__, line, "the text is a fixed point");
    free(again);
    free(text);
}

static void test_round_trip(void)
{
    static th_config cfg;
    th_err err = {{0}};
    char path[1024];
    snprintf(path, sizeof path, "%s/configs/quickstart.yaml", source_dir());
    CHECK(th_run_config_load(&cfg, path, NULL, 0, &err) == 0);
    check_round_trip(__LINE__, &cfg);
    snprintf(path, sizeof path, "%s/configs/reference.yaml", source_dir());
    CHECK(th_run_config_load(&cfg, path, NULL, 0, &err) == 0);
    check_round_trip(__LINE__, &cfg);
    for (const char *const *c =
             (const char *const[]){"resnet18", "densenet121", "resnet50", "resnet152", "vgg16", "vgg16_gap", NULL};
         *c; c++) {
        snprintf(path, sizeof path, "%s/configs/%s.yaml", source_dir(), *c);
        if (!CHECK(th_run_config_load(&cfg, path, NULL, 0, &err) == 0)) fprintf(stderr, "    %s\n", err.msg);
        check_round_trip(__LINE__, &cfg);
    }

    /* Everything else: awkward strings, every layer type, a computed test
     * fraction that is not a short decimal, adam, non-default everything. */
    const char *all =
        "name: \"yes\"\n"
        "seed: 9007199254740993\n"
        "data:\n"
        "  path: \"./data dir/x #1.h5\"\n"
        "  labels: [No Finding, 'quote\"d', \"tab\\there\", null_, 'true', '3']\n"
        "  split: {train: 0.6, val: 0.3}\n"
        "  normalize: per_image\n"
        "  augment: {hflip: on, rotate_deg: 7.5, shift: 0.1, scale: [0.85, 1.2], brightness: 0.2, contrast: 0.3}\n"
        "model:\n"
        "  input: [3, 33, 31]\n"
        "  layers:\n"
        "    - {type: conv, name: stem, out: 5, k: 5, stride: 2, pad: 2, bias: false}\n"
        "    - {type: batchnorm, momentum: 0.05, eps: 1.0e-3}\n"
        "    - {type: relu}\n"
        "    - {type: avgpool, k: 3, stride: 1}\n"
        "    - {type: maxpool, k: 3, stride: 2, pad: 1, name: mp}\n"
        "    - {type: resblock, name: r.0, out: 6, stride: 2, momentum: 0.2}\n"
        "    - {type: bottleneck, name: r.1, out: 12, stride: 1, eps: 1.0e-3}\n"
        "    - {type: bottleneck, out: 6, width: 5, stride: 1}\n"
        "    - {type: denseblock, layers: 2, growth: 3, bn_size: 2, eps: 1.0e-4}\n"
        "    - {type: transition, out: 4}\n"
        "    - {type: concat, from: [transition1, transition1]}\n"
        "    - {type: add, from: [cat1, cat1]}\n"
        "    - {type: gap, name: g}\n"
        "    - {type: conv, name: side, from: mp, out: 8, k: 1}\n"
        "    - {type: gap, from: side}\n"
        "    - {type: add, from: [g, gap2]}\n"
        "    - {type: dropout, p: 0.3}\n"
        "    - {type: flatten}\n"
        "    - {type: dense, out: 7, bias: false, name: hidden}\n"
        "    - {type: dense, out: labels}\n"
        "train:\n"
        "  epochs: 3\n"
        "  batch_per_rank: 5\n"
        "  optimizer: {type: adam, lr: 3.0e-4, weight_decay: 1e-5, betas: [0.8, 0.99], eps: 1e-7}\n"
        "  schedule: {type: cosine, warmup_epochs: 2, min_lr: 1e-6}\n"
        "  loss: softmax_ce\n"
        "  early_stop: {patience: 4}\n"
        "eval: {split: val, cam: {method: cam, top_k: 0}, threshold: \"specificity@0.95\", calibrate: temperature}\n"
        "runtime: {out_dir: /scratch/runs, threads_per_rank: 2, allreduce_bucket_mb: 0.125}\n";
    if (!CHECK(load(&cfg, all, &err) == 0)) fprintf(stderr, "    %s\n", err.msg);
    CHECK(strcmp(cfg.name, "yes") == 0 && cfg.seed == 9007199254740993ULL);
    CHECK(cfg.data.n_labels == 6 && strcmp(cfg.data.labels[2], "tab\there") == 0);
    CHECK_NEAR(cfg.data.test, 0.1, 1e-12);
    CHECK(strcmp(cfg.model.layers[0].name, "stem") == 0 && cfg.model.layers[0].bias == 0);
    /* A bottleneck's width is out / 4 unless given. */
    CHECK(cfg.model.layers[6].type == TH_LAYER_BOTTLENECK && cfg.model.layers[6].width == 3);
    CHECK(cfg.model.layers[7].width == 5);
    CHECK(th_model_spec_check(&cfg.model, cfg.data.n_labels, &err) == 0);
    CHECK(cfg.runtime.allreduce_bucket_mb == 0.125f);
    CHECK(cfg.eval.threshold_rule == TH_THRESHOLD_SPECIFICITY && cfg.eval.threshold_value == 0.95 &&
          cfg.eval.calibrate == TH_CALIBRATE_TEMPERATURE);
    check_round_trip(__LINE__, &cfg);

    /* runtime.precision: fp32 by default, bf16 read and written back. */
    CHECK(cfg.runtime.precision == TH_PRECISION_FP32);
    const char *bf16[] = {"runtime.precision=bf16"};
    CHECK(load_sets(&cfg, all, bf16, 1, &err) == 0 && cfg.runtime.precision == TH_PRECISION_BF16);
    check_round_trip(__LINE__, &cfg);
    char *bf16_text = th_config_to_yaml(&cfg);
    CHECK(bf16_text && strstr(bf16_text, "  precision: bf16\n"));
    free(bf16_text);

    const char *predefined[] = {"data.split=predefined", "train.optimizer.eps=1.0e-10"};
    CHECK(load_sets(&cfg, all, predefined, 2, &err) == 0);
    check_round_trip(__LINE__, &cfg);

    /* The resolved text names every default. */
    CHECK(load(&cfg, MINI, &err) == 0);
    char *text = th_config_to_yaml(&cfg);
    CHECK(text && strstr(text, "    - {type: conv, out: 4, k: 3, stride: 1, pad: 1, bias: true}\n"));
    CHECK(text && strstr(text, "    - {type: dense, out: labels, bias: true}\n"));
    free(text);
    CHECK(load(&cfg, "data: {path: d.h5}\nmodel:\n  input: [1, 16, 16]\n  layers:\n"
                     "    - {type: bottleneck, out: 16, stride: 2}\n    - {type: flatten}\n"
                     "    - {type: dense, out: labels}\n", &err) == 0);
    text = th_config_to_yaml(&cfg);
    CHECK(text && strstr(text, "    - {type: bottleneck, out: 16, width: 4, stride: 2, momentum: 0.1, eps: 1.0e-05}\n"));
    CHECK(text && strstr(text, "    - {type: flatten}\n"));
    CHECK(text && strstr(text, "    eps: 1.0e-08\n"));
    CHECK(text && strstr(text, "    lr: 0.01\n"));
    CHECK(text && strstr(text, "  split: {train: 0.7, val: 0.15, test: 0.15}\n"));
    free(text);
}

/* Resuming compares the old and new config section by section. */
static void test_compare(void)
{
    static th_config a, b;
    th_err err = {{0}};
    const char *const resume_sections[] = {"seed", "data", "model", NULL};
    CHECK(load(&a, MINI, &err) == 0);
    CHECK(load(&b, MINI "train: {epochs: 40, optimizer: {lr: 0.5}}\nname: other\n", &err) == 0);
    /* Training length, optimiser and name may change on resume. */
    CHECK(th_config_compare(&a, &b, resume_sections, &err) == 0);
    /* So may the runtime: threads, and when gradients travel. */
    CHECK(load(&b, MINI "runtime: {allreduce_bucket_mb: 0, threads_per_rank: 4}\n", &err) == 0);
    CHECK(th_config_compare(&a, &b, resume_sections, &err) == 0);
    b = a;
    b.model.layers[0].out = 99;
    CHECK(th_config_compare(&a, &b, resume_sections, &err) == -1);
    CHECK(strstr(err.msg, "model.layers[0]: was {") != NULL && strstr(err.msg, "out: 99") != NULL);
    b = a;
    snprintf(b.data.path, sizeof b.data.path, "other.h5");
    CHECK(th_config_compare(&a, &b, resume_sections, &err) == -1);
    CHECK(strstr(err.msg, "data.path: was d.h5, now other.h5") != NULL);
    b = a;
    b.seed = 7;
    CHECK(th_config_compare(&a, &b, resume_sections, &err) == -1 && strstr(err.msg, "seed: was") != NULL);
    b = a;
    b.data.augment.hflip = 1;
    CHECK(th_config_compare(&a, &b, resume_sections, &err) == -1 && strstr(err.msg, "data.augment.hflip") != NULL);
    b = a;
    b.model.layers[b.model.n_layers++] = a.model.layers[0];
    CHECK(th_config_compare(&a, &b, resume_sections, &err) == -1 && strstr(err.msg, "was absent") != NULL);
    CHECK(th_config_compare(&b, &a, resume_sections, &err) == -1 && strstr(err.msg, "now absent") != NULL);
}

/* A value nested in `depth` lists under `name:`, the schema's first complaint
 * when the nesting itself is allowed. */
static char *nested(int depth)
{
    char *yaml = malloc(sizeof MINI + 2 * (size_t)depth + 16);
    int n = sprintf(yaml, "%sname: ", MINI);
    for (int i = 0; i < depth; i++) yaml[n++] = '[';
    for (int i = 0; i < depth; i++) yaml[n++] = ']';
    strcpy(yaml + n, "\n");
    return yaml;
}

/* The limits of config.h, each just under and just over. */
static void test_limits(void)
{
    static th_config cfg;
    th_err err;

    char *yaml = nested(TH_CONFIG_MAX_DEPTH);
    CHECK(load(&cfg, yaml, &err) == -1 && strstr(err.msg, "name:") && !strstr(err.msg, "nested"));
    free(yaml);
    yaml = nested(TH_CONFIG_MAX_DEPTH + 1);
    CHECK(load(&cfg, yaml, &err) == -1 && strstr(err.msg, "t.yaml:10: name") &&
          strstr(err.msg, "nested more than 64 levels deep"));
    free(yaml);

    /* A list of n labels: n + 14 values in all with MINI's. */
    for (int over = 0; over <= 1; over++) {
        int n = over ? TH_CONFIG_MAX_VALUES : TH_CONFIG_MAX_VALUES - 100;
        char *big = malloc(16 * (size_t)n + sizeof MINI + 64);
        size_t len = (size_t)sprintf(big, "%sname: [", MINI);
        for (int i = 0; i < n; i++) len += (size_t)sprintf(big + len, "%s%d", i ? "," : "", i % 10);
        strcpy(big + len, "]\n");
        CHECK(load(&cfg, big, &err) == -1);
        CHECK(!strstr(err.msg, "values") == !over);
        if (over) CHECK(strstr(err.msg, "more than 100000 values") != NULL);
        free(big);
    }

    /* Size: exactly the limit loads (from a file too), one byte more is refused. */
    size_t max = (size_t)TH_CONFIG_MAX_BYTES;
    char *text = malloc(max + 2);
    memset(text, ' ', max + 1);
    memcpy(text, MINI, strlen(MINI));
    text[max - 1] = '\n';
    text[max] = '\0';
    CHECK(load(&cfg, text, &err) == 0);
    char path[] = "/tmp/thorax-config-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, text, max) == (ssize_t)max);
    CHECK(th_run_config_load(&cfg, path, NULL, 0, &err) == 0);
    text[max] = '\n';
    text[max + 1] = '\0';
    CHECK(load(&cfg, text, &err) == -1 && strstr(err.msg, "t.yaml: larger than 16777216 bytes (16 MiB)"));
    CHECK(write(fd, "\n", 1) == 1);
    CHECK(th_run_config_load(&cfg, path, NULL, 0, &err) == -1 && strstr(err.msg, "larger than 16777216 bytes"));
    close(fd);
    unlink(path);
    free(text);
}

/* The documentation generated from the schema (thorax config): every key
 * documented, one key explained with its default and range, a typo answered
 * with the key meant, and the documented defaults loading as the same config
 * as a file that writes no optional key at all. */
static void test_docs(void)
{
    th_err err = {{0}};
    if (!CHECK(th_config_docs_check(&err) == 0)) fprintf(stderr, "    %s\n", err.msg);

    char *text = th_config_explain("train.optimizer.lr", &err);
    CHECK(text && strstr(text, "default:  0.01 with sgd, 0.001 with adam") && strstr(text, "range:    > 0"));
    free(text);
    text = th_config_explain("model.layers[3].stride", &err);
    CHECK(text && strstr(text, "model.layers[].stride:") &&
          strstr(text, "layers:   conv, maxpool, avgpool, resblock, bottleneck"));
    free(text);
    text = th_config_explain("data.split.train", &err);
    CHECK(text && strstr(text, "default:  0.7 (required when data.split is written)") && strstr(text, "(0, 1]"));
    free(text);
    text = th_config_explain("train.schedule.type", &err);
    CHECK(text && strstr(text, "    plateau ") && strstr(text, "default:  constant"));
    free(text);
    CHECK(th_config_explain("train.optimzer.lr", &err) == NULL &&
          strstr(err.msg, "did you mean 'train.optimizer.lr'"));
    CHECK(th_config_explain("lr", &err) == NULL &&
          strstr(err.msg, "'train.optimizer.lr' or 'train.unfreeze.lr'"));
    CHECK(th_config_explain("seed.x", &err) == NULL && strstr(err.msg, "seed has no keys of its own"));

    text = th_config_reference(&err);
    CHECK(text && strstr(text, "\n## train.optimizer\n") && strstr(text, "| `lr` | number | 0.01 with sgd"));
    free(text);

    /* The defaults, read back, are a file with only the required keys. */
    static th_config from_defaults, from_mini;
    const char *const all[] = {"name", "seed", "data", "model", "train", "eval", "runtime", NULL};
    text = th_config_defaults_yaml(&err);
    CHECK(text && strstr(text, "\n    # learning rate") && strstr(text, "\n    lr: 0.01\n"));
    CHECK(text && th_config_load_string(&from_defaults, text, "experiment.yaml", NULL, 0, &err) == 0);
    free(text);
    const char *mini = "data: {path: data/dataset.h5}\n"
                       "model:\n  input: [1, 64, 64]\n  layers:\n    - {type: conv, out: 8, k: 3, pad: 1}\n"
                       "    - {type: relu}\n    - {type: gap}\n    - {type: dense, out: labels}\n";
    CHECK(th_config_load_string(&from_mini, mini, "experiment.yaml", NULL, 0, &err) == 0);
    if (!CHECK(th_config_compare(&from_mini, &from_defaults, all, &err) == 0)) fprintf(stderr, "    %s\n", err.msg);
    CHECK(from_defaults.seed == 42 && from_defaults.train.epochs == 10 && from_defaults.eval.bootstrap == 2000);
}

int main(void)
{
    test_docs();
    test_limits();
    test_shipped_configs();
    test_defaults();
    test_values();
    test_errors();
    test_overrides();
    test_out_labels();
    test_shapes();
    test_round_trip();
    test_compare();
    return th_test_summary("test_config");
}

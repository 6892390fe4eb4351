/* schema.c - the keys of a configuration, each declared once in the table
 * of its mapping (config_impl.h says what a key_def holds), the checks
 * across keys, and "did you mean" for a key or value that is not one of
 * them. Reading, the resolved YAML, the comparison of two configs and the
 * override paths all go by these tables, so a key is known to all or none.
 */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_impl.h"

/* Spellings of the enums, in enum order. */
static const char *const normalize_names[] = {"trainset", "per_image", "none", NULL};
static const char *const on_leak_names[] = {"error", "drop_from_eval", NULL};
static const char *const on_duplicate_names[] = {"refuse", "drop", "keep", NULL};
static const char *const cache_names[] = {"auto", "memory", "stream", NULL};
static const char *const schedule_names[] = {"constant", "step", "cosine", "plateau", NULL};
static const char *const eval_split_names[] = {"val", "test", NULL};
static const char *const cam_method_names[] = {"cam", "gradcam", "saliency", NULL};
const char *const th_calibrate_names[] = {"none", "temperature", NULL};

/* KEY_ENUM keeps an enum through an int. */
_Static_assert(sizeof(th_normalize) == sizeof(int) && sizeof(th_on_leak) == sizeof(int) &&
                   sizeof(th_on_duplicate) == sizeof(int) &&
                   sizeof(th_cache) == sizeof(int) && sizeof(th_schedule_type) == sizeof(int) &&
                   sizeof(th_loss_type) == sizeof(int) && sizeof(th_optim_type) == sizeof(int) &&
                   sizeof(th_precision) == sizeof(int) && sizeof(th_calibrate) == sizeof(int),
               "enums are int-sized");

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define AT(f) offsetof(th_config, f)
#define SIZE(f) sizeof(((th_config *)0)->f)
#define LAT(f) offsetof(th_layer_spec, f)

/* ---- Defaults that depend on another key ---- */

static double pool_stride_default(const void *base)
{
    const th_layer_spec *l = base;
    return l->type == TH_LAYER_MAXPOOL || l->type == TH_LAYER_AVGPOOL ? l->k : 1;
}

/* torchvision's Bottleneck: the block widens its inner maps 4 times. */
static double width_default(const void *base)
{
    const th_layer_spec *l = base;
    return l->type == TH_LAYER_BOTTLENECK && l->out >= 4 ? l->out / 4 : 1;
}

static double lr_default(const void *base)
{
    return ((const th_config *)base)->train.optimizer.type == TH_OPTIM_ADAM ? 1e-3 : 1e-2;
}

static double factor_default(const void *base)
{
    return ((const th_config *)base)->train.schedule.type == TH_SCHED_PLATEAU ? 0.5 : 0.1;
}

/* The second stage of a fine-tuning starts again from the optimiser's lr. */
static double unfreeze_lr_default(const void *base)
{
    return ((const th_config *)base)->train.optimizer.lr;
}

/* ---- Checks across keys ---- */

/* The name is the run's directory under runtime.out_dir. */
static int check_run_name(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base)
{
    const char *name = ((th_config *)base)->name;
    if (strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return cfg_fail(c, yt_get(m, k->name) ? yt_get(m, k->name) : m, path, k->name,
                        "must be usable as a directory name, got '%s'", name);
    return 0;
}

/* train and val given; test, when left out, is what they leave. */
static int check_split(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base)
{
    th_config *cfg = base;
    double train_val = cfg->data.train + cfg->data.val;
    if (!yt_get(m, "test")) {
        if (train_val > 1 + 1e-6)
            return cfg_fail(c, m, path, NULL, "train + val is %g, leaving nothing for test", train_val);
        cfg->data.test = train_val < 1 ? 1 - train_val : 0;
        return 0;
    }
    double sum = train_val + cfg->data.test;
    if (fabs(sum - 1) > 1e-6) return cfg_fail(c, m, path, NULL, "fractions sum to %g, must sum to 1", sum);
    return 0;
}

static int check_augment(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base)
{
    const th_config *cfg = base;
    if (cfg->data.augment.scale_lo > cfg->data.augment.scale_hi)
        return cfg_fail(c, yt_get(m, "scale"), path, "scale", "must be [low, high] with low <= high, got [%g, %g]",
                        cfg->data.augment.scale_lo, cfg->data.augment.scale_hi);
    return 0;
}

/* As in PyTorch: Nesterov's look-ahead is along the momentum buffer. */
static int check_optimizer(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base)
{
    const th_optim_config *o = &((const th_config *)base)->train.optimizer;
    if (o->type == TH_OPTIM_SGD && o->nesterov && o->momentum <= 0)
        return cfg_fail(c, yt_get(m, "nesterov"), path, "nesterov", "needs momentum > 0, got momentum %g",
                        o->momentum);
    return 0;
}

static int check_schedule(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base)
{
    const th_config *cfg = base;
    if (cfg->train.schedule.min_lr > cfg->train.optimizer.lr)
        return cfg_fail(c, yt_get(m, "min_lr"), path, "min_lr", "must not exceed the learning rate %g, got %g",
                        cfg->train.optimizer.lr, cfg->train.schedule.min_lr);
    return 0;
}

static int check_unfreeze(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base)
{
    const th_config *cfg = base;
    if (cfg->train.n_freeze == 0)
        return cfg_fail(c, m, path, NULL, "needs train.freeze: with no layer frozen there is nothing to unfreeze");
    if (cfg->train.unfreeze.epoch >= cfg->train.epochs)
        return cfg_fail(c, yt_get(m, "epoch"), path, "epoch",
                        "must be below train.epochs (%d), got %d: the second stage would never run",
                        cfg->train.epochs, cfg->train.unfreeze.epoch);
    if (cfg->train.unfreeze.lr < cfg->train.schedule.min_lr)
        return cfg_fail(c, yt_get(m, "lr") ? yt_get(m, "lr") : m, path, "lr",
                        "must not be below train.schedule.min_lr %g, got %g", cfg->train.schedule.min_lr,
                        cfg->train.unfreeze.lr);
    return 0;
}

/* The number after "sensitivity@", "specificity@" or "fixed:": all of it
 * must be a number, within (0, 1) for a rate and [0, 1] for a threshold. */
int th_threshold_rule_parse(const char *s, th_threshold_rule *rule, double *value, char *msg, size_t cap)
{
    static const struct {
        const char *prefix;
        th_threshold_rule rule;
        int open;
    } forms[] = {{"sensitivity@", TH_THRESHOLD_SENSITIVITY, 1},
                 {"specificity@", TH_THRESHOLD_SPECIFICITY, 1},
                 {"fixed:", TH_THRESHOLD_FIXED, 0}};
    *value = 0;
    if (strcmp(s, "youden") == 0) {
        *rule = TH_THRESHOLD_YOUDEN;
        return 0;
    }
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        size_t n = strlen(forms[i].prefix);
        if (strncmp(s, forms[i].prefix, n)) continue;
        char *end;
        double v = strtod(s + n, &end);
        int ok = end != s + n && *end == '\0' && isfinite(v) &&
                 (forms[i].open ? v > 0 && v < 1 : v >= 0 && v <= 1);
        if (!ok) {
            snprintf(msg, cap, "the number after '%s' must be in %s, got '%s'", forms[i].prefix,
                     forms[i].open ? "(0, 1)" : "[0, 1]", s + n);
            return -1;
        }
        *rule = forms[i].rule;
        *value = v;
        return 0;
    }
    snprintf(msg, cap, "must be youden, sensitivity@S, specificity@S or fixed:T, got '%s'", s);
    return -1;
}

static int check_threshold(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base)
{
    th_config *cfg = base;
    char msg[160];
    if (th_threshold_rule_parse(cfg->eval.threshold, &cfg->eval.threshold_rule, &cfg->eval.threshold_value, msg,
                                sizeof msg))
        return cfg_fail(c, yt_get(m, k->name) ? yt_get(m, k->name) : m, path, k->name, "%s", msg);
    return 0;
}

/* ---- The tables ----
 *
 * Each key's .doc is one line for `thorax config --reference`, --explain and
 * --defaults (doc.c); .def_doc says the default where the table cannot (a
 * default that depends on another key, or a special shape); .name_docs
 * says what each spelling of an enum means. */

/* Spellings' meanings, parallel to the names arrays above (and spec.h's),
 * NULL-terminated so that th_config_docs_check finds one missing. */
static const char *const normalize_docs[] = {
    "subtract the training images' mean and divide by their standard deviation (one pair for the whole set)",
    "each image by its own mean and standard deviation", "pixel values / 255, nothing else", NULL};
static const char *const on_leak_docs[] = {"refuse to train on a predefined split with a patient in two splits",
                                           "keep going without those patients' val/test images", NULL};
static const char *const on_duplicate_docs[] = {
    "refuse to split when the same picture is in two splits, listing the groups",
    "keep such a picture in its earliest split only (train, then val, then test), leaving its copies out",
    "keep every copy where the split put it (reported, not acted on)", NULL};
static const char *const cache_docs[] = {
    "memory when this rank's training images take at most half of the node's memory shared among its ranks, "
    "else stream",
    "read each rank's training images into memory once", "stream them from the file in a prefetch thread", NULL};
static const char *const schedule_docs[] = {
    "lr throughout", "lr x factor every step_epochs epochs",
    "linear warm-up over warmup_epochs, then a half cosine from lr down to min_lr at the last epoch",
    "lr x factor once the validation AUC has not improved for more than patience epochs (floor min_lr)", NULL};
static const char *const eval_split_docs[] = {"the validation patients", "the test patients", NULL};
static const char *const cam_method_docs[] = {"class activation maps: the feature maps weighted by the dense head",
                                              "Grad-CAM: the feature maps weighted by their mean gradient",
                                              "saliency: |d logit / d pixel|, at the image's resolution", NULL};
static const char *const calibrate_docs[] = {"probabilities as the network gives them",
                                             "one temperature per label, fitted on val, divides the logits", NULL};
static const char *const optim_docs[] = {
    [TH_OPTIM_SGD] = "stochastic gradient descent with momentum (as PyTorch's)",
    [TH_OPTIM_ADAM] = "Adam (as PyTorch's; weight decay is added to the gradient, not decoupled)", NULL};
static const char *const loss_docs[] = {
    [TH_LOSS_WEIGHTED_BCE] = "binary cross-entropy per label, positives weighted by the training split's negative "
                             "frequency and negatives by its positive frequency",
    [TH_LOSS_BCE] = "binary cross-entropy per label, unweighted",
    [TH_LOSS_SOFTMAX_CE] = "softmax cross-entropy: one class per image (the first 1); needs every label known", NULL};
static const char *const precision_docs[] = {
    [TH_PRECISION_FP32] = "fp32 throughout",
    [TH_PRECISION_BF16] = "conv and dense GEMMs on bf16 inputs with fp32 sums (needs a CPU with AVX512_BF16)", NULL};

const char *const cfg_layer_type_docs[TH_LAYER_TYPE_COUNT] = {
    [TH_LAYER_CONV] = "convolution: out filters of k x k, stride, zero padding pad",
    [TH_LAYER_RELU] = "max(0, x)",
    [TH_LAYER_MAXPOOL] = "max over k x k windows",
    [TH_LAYER_AVGPOOL] = "mean over k x k windows",
    [TH_LAYER_BATCHNORM] =
        "batch normalisation per channel (statistics per rank, as PyTorch DDP without SyncBatchNorm)",
    [TH_LAYER_GAP] = "global average pooling: [C, H, W] -> [C]",
    [TH_LAYER_DENSE] = "fully connected: out units, or out: labels for one per label",
    [TH_LAYER_DROPOUT] = "zeroes each input with probability p in training",
    [TH_LAYER_ADD] = "elementwise sum of the layers in from (same shape)",
    [TH_LAYER_CONCAT] = "the channels of the layers in from one after the other (same H, W)",
    [TH_LAYER_FLATTEN] = "[C, H, W] -> C*H*W inputs in PyTorch's order, for a dense head on feature maps",
    [TH_LAYER_RESBLOCK] = "torchvision's ResNet basic block: conv1 bn1 relu1 conv2 bn2, shortcut, add, relu",
    [TH_LAYER_DENSEBLOCK] = "torchvision's DenseNet dense block: layers dense layers, each adding growth channels",
    [TH_LAYER_TRANSITION] = "torchvision's DenseNet transition: norm relu conv (1x1, out), 2x2 average pool",
    [TH_LAYER_BOTTLENECK] = "torchvision's ResNet Bottleneck (v1.5): 1x1 width, 3x3 width (stride), 1x1 out, shortcut",
};

enum { LK_OUT = CFG_LK_FROM + 1, LK_K, LK_STRIDE, LK_PAD, LK_BIAS, LK_MOMENTUM, LK_EPS, LK_P, LK_LAYERS, LK_GROWTH,
       LK_BN_SIZE, LK_WIDTH };

/* Every key a layer may have; which ones each type takes is below. */
static const key_def layer_keys[] = {
    [CFG_LK_TYPE] = {"type", KEY_SPECIAL, KEY_REQUIRED, .doc = "the layer's type, which decides its other keys",
                     .type_doc = "one of the layer types below"},
    [CFG_LK_NAME] = {"name", KEY_SPECIAL, .read = cfg_read_layer_name, .emit = cfg_emit_layer_name,
                     .doc = "its name in checkpoints (conv1.weight), from:, train.freeze and thorax cam --layer; "
                            "letters, digits, '_', '-', '.'",
                     .def_doc = "none: named by its type and position", .type_doc = "string"},
    [CFG_LK_FROM] = {"from", KEY_SPECIAL, .read = cfg_read_from, .emit = cfg_emit_from,
                     .doc = "the layer(s) it reads (input is the image itself); add and concat need two or more",
                     .def_doc = "the layer before it", .type_doc = "layer name, or list of layer names"},
    [LK_OUT] = {"out", KEY_OUT, KEY_REQUIRED, LAT(out), .lo = 1, .hi = DIM_MAX,
                .doc = "output channels (conv, blocks) or units (dense; labels: one per label)"},
    [LK_K] = {"k", KEY_INT, KEY_REQUIRED, LAT(k), .lo = 1, .hi = DIM_MAX, .doc = "kernel or window side"},
    /* conv and the residual blocks 1; a pool's stride is its kernel. */
    [LK_STRIDE] = {"stride", KEY_INT, 0, LAT(stride), .lo = 1, .hi = DIM_MAX, .def_of = pool_stride_default,
                   .doc = "step between windows", .def_doc = "k for a pool, 1 otherwise"},
    [LK_PAD] = {"pad", KEY_INT, 0, LAT(pad), .lo = 0, .hi = DIM_MAX, .doc = "zero padding on each side"},
    [LK_BIAS] = {"bias", KEY_BOOL, 0, LAT(bias), .def = 1, .doc = "whether it adds a learned bias"},
    /* Batch-norm's, of a batchnorm layer or of every batch-norm in a block. */
    [LK_MOMENTUM] = {"momentum", KEY_FLOAT, 0, LAT(momentum), .b = CLOSED(0, 1), .def = 0.1,
                     .doc = "batch-norm running statistics' update weight (PyTorch's momentum), of every "
                            "batch-norm in a block"},
    [LK_EPS] = {"eps", KEY_FLOAT, 0, LAT(eps), .b = ABOVE(0), .def = 1e-5,
                .doc = "batch-norm's epsilon added to the variance"},
    [LK_P] = {"p", KEY_FLOAT, 0, LAT(p), .b = RIGHT_OPEN(0, 1), .def = 0.5, .doc = "dropout probability"},
    [LK_LAYERS] = {"layers", KEY_INT, KEY_REQUIRED, LAT(layers), .lo = 1, .hi = 1024,
                   .doc = "dense layers in the dense block"},
    [LK_GROWTH] = {"growth", KEY_INT, 0, LAT(growth), .lo = 1, .hi = DIM_MAX, .def = 32,
                   .doc = "channels each dense layer adds"},
    [LK_BN_SIZE] = {"bn_size", KEY_INT, 0, LAT(bn_size), .lo = 1, .hi = 1024, .def = 4,
                    .doc = "a dense layer's bottleneck width, in multiples of growth"},
    [LK_WIDTH] = {"width", KEY_INT, 0, LAT(width), .lo = 1, .hi = DIM_MAX, .def_of = width_default,
                  .doc = "maps of the bottleneck's 1x1 and 3x3 convolutions", .def_doc = "out / 4"},
};
const key_table cfg_layer_table = {"model.layers[]", layer_keys, N(layer_keys), NULL,
                                   "one layer or block of the network, read in order"};

#define COMMON CFG_LK_TYPE, CFG_LK_NAME, CFG_LK_FROM
const signed char cfg_layer_type_keys[TH_LAYER_TYPE_COUNT][10] = {
    [TH_LAYER_CONV] = {COMMON, LK_OUT, LK_K, LK_STRIDE, LK_PAD, LK_BIAS, -1},
    [TH_LAYER_RELU] = {COMMON, -1},
    [TH_LAYER_MAXPOOL] = {COMMON, LK_K, LK_STRIDE, LK_PAD, -1},
    [TH_LAYER_AVGPOOL] = {COMMON, LK_K, LK_STRIDE, -1},
    [TH_LAYER_BATCHNORM] = {COMMON, LK_MOMENTUM, LK_EPS, -1},
    [TH_LAYER_GAP] = {COMMON, -1},
    [TH_LAYER_DENSE] = {COMMON, LK_OUT, LK_BIAS, -1},
    [TH_LAYER_DROPOUT] = {COMMON, LK_P, -1},
    [TH_LAYER_ADD] = {COMMON, -1},
    [TH_LAYER_CONCAT] = {COMMON, -1},
    [TH_LAYER_FLATTEN] = {COMMON, -1},
    [TH_LAYER_RESBLOCK] = {COMMON, LK_OUT, LK_STRIDE, LK_MOMENTUM, LK_EPS, -1},
    [TH_LAYER_DENSEBLOCK] = {COMMON, LK_LAYERS, LK_GROWTH, LK_BN_SIZE, LK_MOMENTUM, LK_EPS, -1},
    [TH_LAYER_TRANSITION] = {COMMON, LK_OUT, LK_MOMENTUM, LK_EPS, -1},
    [TH_LAYER_BOTTLENECK] = {COMMON, LK_OUT, LK_WIDTH, LK_STRIDE, LK_MOMENTUM, LK_EPS, -1},
};

/* Patient fractions; when the mapping is left out, these defaults. */
static const key_def split_keys[] = {
    {"train", KEY_DOUBLE, KEY_REQUIRED, AT(data.train), .b = LEFT_OPEN(0, 1), .def = 0.7,
     .doc = "fraction of patients that train"},
    {"val", KEY_DOUBLE, KEY_REQUIRED, AT(data.val), .b = CLOSED(0, 1), .def = 0.15,
     .doc = "fraction of patients that validate (best checkpoint, operating points)"},
    {"test", KEY_DOUBLE, 0, AT(data.test), .b = CLOSED(0, 1), .def = 0.15,
     .doc = "fraction of patients kept for the final evaluation", .def_doc = "1 - train - val"},
};
static const key_table split_table = {"data.split", split_keys, N(split_keys), check_split,
                                      "the patient-level split: fractions summing to 1, or predefined (the file's "
                                      "/split)"};

static const key_def augment_keys[] = {
    {"hflip", KEY_BOOL, 0, AT(data.augment.hflip), .def = 0, .doc = "mirror left-right with probability 0.5"},
    {"rotate_deg", KEY_FLOAT, 0, AT(data.augment.rotate_deg), .b = AT_LEAST(0),
     .doc = "rotate by up to this many degrees either way"},
    {"shift", KEY_FLOAT, 0, AT(data.augment.shift), .b = RIGHT_OPEN(0, 0.5),
     .doc = "shift by up to this fraction of the image size"},
    {"scale", KEY_PAIR, 0, AT(data.augment.scale_lo), AT(data.augment.scale_hi), .b = ABOVE(0), .def = 1, .def2 = 1,
     .doc = "zoom by a factor drawn from [low, high]"},
    /* Fractions of the intensity range: a contrast of 1 or more could
     * invert an image, which no X-ray looks like. */
    {"brightness", KEY_FLOAT, 0, AT(data.augment.brightness), .b = RIGHT_OPEN(0, 1),
     .doc = "add up to this fraction of the intensity range"},
    {"contrast", KEY_FLOAT, 0, AT(data.augment.contrast), .b = RIGHT_OPEN(0, 1),
     .doc = "multiply contrast by a factor drawn from [1 - contrast, 1 + contrast]"},
};
static const key_table augment_table = {"data.augment", augment_keys, N(augment_keys), check_augment,
                                        "training-image augmentation, the same on any number of ranks "
                                        "(false or none: no augmentation)"};

static const key_def data_keys[] = {
    {"path", KEY_STR, KEY_REQUIRED, AT(data.path), .cap = SIZE(data.path), .def_str = "",
     .doc = "the dataset file (thorax ingest or thorax phantom)"},
    {"labels", KEY_SPECIAL, 0, .read = cfg_read_labels, .emit = cfg_emit_labels,
     .doc = "the labels to train, by name, in the network's output order", .def_doc = "every label in the file",
     .type_doc = "label name, or list of label names"},
    {"split", KEY_SPECIAL, 0, .sub = &split_table, .read = cfg_read_split, .emit = cfg_emit_split,
     .doc = "how patients are split into train/val/test",
     .def_doc = "{train: 0.7, val: 0.15, test: 0.15}", .type_doc = "mapping {train, val, test}, or predefined"},
    {"on_leak", KEY_ENUM, 0, AT(data.on_leak), .names = on_leak_names, .def = TH_ON_LEAK_ERROR,
     .doc = "what a predefined split that puts a patient in two splits does", .name_docs = on_leak_docs},
    {"on_duplicate", KEY_ENUM, 0, AT(data.on_duplicate), .names = on_duplicate_names, .def = TH_ON_DUP_REFUSE,
     .doc = "what images with identical or nearly identical pixels in two splits do (thorax split lists them)",
     .name_docs = on_duplicate_docs},
    {"duplicate_bits", KEY_INT, 0, AT(data.duplicate_bits), .lo = -1, .hi = 32, .def = -1,
     .doc = "near duplicates too: images whose 64-bit perceptual hashes differ in at most this many bits "
            "(-1: identical pixels only; synthetic phantom patients come within 2 bits of each other, "
            "PneumoniaMNIST's copies within 4)"},
    {"normalize", KEY_ENUM, 0, AT(data.normalize), .names = normalize_names, .def = TH_NORM_TRAINSET,
     .doc = "how pixel values are normalised", .name_docs = normalize_docs},
    {"cache", KEY_ENUM, 0, AT(data.cache), .names = cache_names, .def = TH_CACHE_AUTO,
     .doc = "where a rank keeps its training images", .name_docs = cache_docs},
    {"augment", KEY_SECTION, KEY_OFF_OK, .sub = &augment_table, .doc = "training-image augmentation"},
};
static const key_table data_table = {"data", data_keys, N(data_keys), NULL,
                                     "the dataset, its labels and its split"};

static const key_def model_keys[] = {
    {"input", KEY_SPECIAL, KEY_REQUIRED, .read = cfg_read_input, .emit = cfg_emit_input,
     .doc = "one image's shape: channels, height, width (the dataset's images)", .def_doc = "required",
     .type_doc = "[C, H, W], integers"},
    /* A path, checked when training starts (th_checkpoint_init_params). */
    {"init", KEY_STR, KEY_MAY_BE_EMPTY, AT(model_init), .cap = SIZE(model_init), .def_str = "",
     .null_note = "the seed's random initialisation",
     .doc = "start a fresh run from this file's parameters (a run's best.h5, or tools/import-torch.py's output)",
     .def_doc = "null: the seed's random initialisation"},
    {"layers", KEY_SPECIAL, KEY_REQUIRED | KEY_LIST, .sub = &cfg_layer_table, .read = cfg_read_layers,
     .emit = cfg_emit_layers, .doc = "the network, one entry per layer or block (see model.layers[])",
     .def_doc = "required", .type_doc = "list of layers"},
};
static const key_table model_table = {"model", model_keys, N(model_keys), NULL, "the network"};

static const key_def optimizer_keys[] = {
    {"type", KEY_ENUM, 0, AT(train.optimizer.type), .names = th_optim_names, .def = TH_OPTIM_SGD,
     .doc = "the optimiser", .name_docs = optim_docs},
    {"lr", KEY_FLOAT, 0, AT(train.optimizer.lr), .b = ABOVE(0), .def_of = lr_default,
     .doc = "learning rate (of the global batch's mean gradient)", .def_doc = "0.01 with sgd, 0.001 with adam"},
    {"momentum", KEY_FLOAT, 0, AT(train.optimizer.momentum), .b = RIGHT_OPEN(0, 1), .def = 0.9,
     .doc = "SGD momentum"},
    {"nesterov", KEY_BOOL, 0, AT(train.optimizer.nesterov), .def = 0,
     .doc = "SGD with Nesterov's look-ahead (needs momentum > 0)"},
    {"weight_decay", KEY_FLOAT, 0, AT(train.optimizer.weight_decay), .b = AT_LEAST(0),
     .doc = "L2 penalty added to the gradient of every trained parameter"},
    {"betas", KEY_PAIR, 0, AT(train.optimizer.beta1), AT(train.optimizer.beta2), .b = RIGHT_OPEN(0, 1), .def = 0.9,
     .def2 = 0.999, .doc = "Adam's decay rates of the gradient's mean and square"},
    {"eps", KEY_FLOAT, 0, AT(train.optimizer.eps), .b = ABOVE(0), .def = 1e-8,
     .doc = "Adam's epsilon added to the root mean square"},
};
static const key_table optimizer_table = {"train.optimizer", optimizer_keys, N(optimizer_keys), check_optimizer,
                                          "the optimiser and its hyperparameters"};

static const key_def schedule_keys[] = {
    {"type", KEY_ENUM, 0, AT(train.schedule.type), .names = schedule_names, .def = TH_SCHED_CONSTANT,
     .doc = "how the learning rate changes over the run", .name_docs = schedule_docs},
    {"factor", KEY_FLOAT, 0, AT(train.schedule.factor), .b = OPEN(0, 1), .def_of = factor_default,
     .doc = "step and plateau: the lr multiplier", .def_doc = "0.5 with plateau, 0.1 otherwise"},
    {"patience", KEY_INT, 0, AT(train.schedule.patience), .lo = 0, .hi = INT_MAX, .def = 2,
     .doc = "plateau: epochs without a validation AUC gain tolerated before the lr drops"},
    {"step_epochs", KEY_INT, 0, AT(train.schedule.step_epochs), .lo = 1, .hi = INT_MAX, .def = 10,
     .doc = "step: epochs between drops"},
    {"warmup_epochs", KEY_INT, 0, AT(train.schedule.warmup_epochs), .lo = 0, .hi = INT_MAX,
     .doc = "cosine: epochs of linear warm-up"},
    {"min_lr", KEY_FLOAT, 0, AT(train.schedule.min_lr), .b = AT_LEAST(0),
     .doc = "cosine: the final lr; plateau: the floor (at most optimizer.lr)"},
};
static const key_table schedule_table = {"train.schedule", schedule_keys, N(schedule_keys), check_schedule,
                                         "the learning-rate schedule"};

static const key_def early_stop_keys[] = {
    {"patience", KEY_INT, 0, AT(train.early_stop_patience), .lo = 0, .hi = INT_MAX,
     .doc = "stop after this many epochs without a validation AUC gain; 0 = never stop early"},
};
static const key_table early_stop_table = {"train.early_stop", early_stop_keys, N(early_stop_keys), NULL,
                                           "early stopping on the validation macro AUC"};

static const key_def unfreeze_keys[] = {
    {"epoch", KEY_INT, KEY_REQUIRED, AT(train.unfreeze.epoch), .lo = 1, .hi = INT_MAX,
     .doc = "epochs 1..epoch train with train.freeze applied, the rest train every layer (below train.epochs)"},
    {"lr", KEY_FLOAT, 0, AT(train.unfreeze.lr), .b = ABOVE(0), .def_of = unfreeze_lr_default,
     .doc = "the second stage's starting learning rate (its schedule starts again from it)",
     .def_doc = "train.optimizer.lr"},
};
static const key_table unfreeze_table = {"train.unfreeze", unfreeze_keys, N(unfreeze_keys), check_unfreeze,
                                         "the second stage of a fine-tuning: {epoch: E, lr: X}, or null for one "
                                         "stage"};

static const key_def train_keys[] = {
    {"epochs", KEY_INT, 0, AT(train.epochs), .lo = 1, .hi = INT_MAX, .def = 10,
     .doc = "passes over the training split"},
    {"batch_per_rank", KEY_INT, 0, AT(train.batch_per_rank), .lo = 1, .hi = INT_MAX, .def = 16,
     .doc = "images per rank per step: the global batch is ranks x batch_per_rank"},
    {"optimizer", KEY_SECTION, 0, .sub = &optimizer_table, .doc = "the optimiser"},
    {"schedule", KEY_SECTION, 0, .sub = &schedule_table, .doc = "the learning-rate schedule"},
    {"loss", KEY_ENUM, 0, AT(train.loss), .names = th_loss_names, .def = TH_LOSS_WEIGHTED_BCE,
     .doc = "the loss (unknown labels add nothing to it)", .name_docs = loss_docs},
    {"early_stop", KEY_SECTION, 0, .sub = &early_stop_table, .doc = "early stopping"},
    {"freeze", KEY_SPECIAL, 0, .read = cfg_read_freeze, .emit = cfg_emit_freeze,
     .doc = "layers that do not train: each entry a layer name or a prefix of names (layer1 freezes layer1.0.conv1)",
     .def_doc = "[]: every layer trains", .type_doc = "layer name, or list of layer names"},
    /* The second stage of a fine-tuning: {epoch: E, lr: X}. */
    {"unfreeze", KEY_SECTION, KEY_FLOW | KEY_OPTIONAL, .sub = &unfreeze_table,
     .doc = "the second stage of a fine-tuning, when every layer trains (needs train.freeze)",
     .def_doc = "null: one stage"},
};
static const key_table train_table = {"train", train_keys, N(train_keys), NULL,
                                      "training: epochs, batch, optimiser, schedule, loss"};

static const key_def cam_keys[] = {
    {"method", KEY_ENUM_STR, 0, AT(eval.cam_method), .cap = SIZE(eval.cam_method), .names = cam_method_names,
     .def = 1, .doc = "the map thorax cam and thorax predict --cam make unless --method says",
     .name_docs = cam_method_docs},
    {"top_k", KEY_INT, 0, AT(eval.cam_top_k), .lo = 0, .hi = INT_MAX, .def = 8,
     .doc = "thorax cam's default --top-k: images mapped per label and kind (TP, FP, FN), ranked by probability"},
};
static const key_table cam_table = {"eval.cam", cam_keys, N(cam_keys), NULL, "class activation maps"};

static const key_def eval_keys[] = {
    {"split", KEY_ENUM_STR, 0, AT(eval.split), .cap = SIZE(eval.split), .names = eval_split_names, .def = 1,
     .doc = "the split thorax train evaluates at the end (after val)", .name_docs = eval_split_docs},
    {"cam", KEY_SECTION, 0, .sub = &cam_table, .doc = "class activation maps"},
    {"threshold", KEY_STR, 0, AT(eval.threshold), .cap = SIZE(eval.threshold), .def_str = "youden",
     .check = check_threshold,
     .doc = "each label's operating point, chosen on val: youden, sensitivity@S, specificity@S (S in (0, 1)) "
            "or fixed:T (T in [0, 1])"},
    {"calibrate", KEY_ENUM, 0, AT(eval.calibrate), .names = th_calibrate_names, .def = TH_CALIBRATE_NONE,
     .doc = "probability calibration", .name_docs = calibrate_docs},
    /* Resamples of patients for the AUC intervals (thorax/eval.h); 2000 is
     * Efron and Tibshirani's usual count for percentile intervals. */
    {"bootstrap", KEY_INT, 0, AT(eval.bootstrap), .lo = 0, .hi = 1000000, .def = 2000,
     .doc = "patient-bootstrap resamples of the AUC's 95% interval, seeded with seed; 0 = DeLong's interval"},
};
static const key_table eval_table = {"eval", eval_keys, N(eval_keys), NULL,
                                     "evaluation: the split, operating points, calibration, intervals, CAMs"};

/* The default gradient bucket: the reference network (configs/reference.yaml)
 * has about 396k parameters, 1.5 MiB of gradients, of which conv5 and fc, the
 * first to finish in backward, hold 1.14 MiB. PyTorch's 25 MiB would make that
 * one bucket sent after backward, overlapping nothing; 0.5 MiB sends conv5+fc
 * while conv4..conv1 (three quarters of backward's FLOPs) still run, and the
 * rest after, in two messages, so per-message latency stays negligible. */
#define DEFAULT_BUCKET_MB 0.5

static const key_def runtime_keys[] = {
    {"out_dir", KEY_STR, 0, AT(runtime.out_dir), .cap = SIZE(runtime.out_dir), .def_str = "runs",
     .doc = "where run directories go: <out_dir>/<name>"},
    {"threads_per_rank", KEY_INT, 0, AT(runtime.threads_per_rank), .lo = 1, .hi = INT_MAX, .def = 1,
     .doc = "OpenMP threads splitting each rank's images"},
    {"allreduce_bucket_mb", KEY_FLOAT, 0, AT(runtime.allreduce_bucket_mb), .b = AT_LEAST(0),
     .def = DEFAULT_BUCKET_MB,
     .doc = "MiB of gradients per allreduce started during backward; 0 = one allreduce after it"},
    /* Whether this CPU can is for the model to say (th_model_set_precision):
     * a config is checked where it is written, not only where it runs. */
    {"precision", KEY_ENUM, 0, AT(runtime.precision), .names = th_precision_names, .def = TH_PRECISION_FP32,
     .doc = "the arithmetic of the conv and dense GEMMs", .name_docs = precision_docs},
    /* Generous: a collective waits for the slowest rank's whole step, and
     * a first epoch may wait on a cold file system. */
    {"hang_timeout", KEY_DOUBLE, 0, AT(runtime.hang_timeout), .b = AT_LEAST(0), .def = 1800,
     .doc = "seconds a rank may wait in a collective for the others before the job ends (exit 1) naming the "
            "silent ranks (stopped, hung, node lost); 0 = wait for ever"},
};
static const key_table runtime_table = {"runtime", runtime_keys, N(runtime_keys), NULL,
                                        "where outputs go and how each rank computes"};

static const key_def root_keys[] = {
    {"name", KEY_STR, KEY_RUN_NAME, AT(name), .cap = SIZE(name), .check = check_run_name,
     .doc = "the run's name: its directory under runtime.out_dir", .def_doc = "the config file's name without .yaml"},
    {"seed", KEY_U64, 0, AT(seed), .lo = 0, .hi = LLONG_MAX, .def = 42,
     .doc = "seeds the split, initialisation, data order, augmentation, dropout and bootstrap"},
    {"data", KEY_SECTION, 0, .sub = &data_table, .doc = "the dataset"},
    {"model", KEY_SECTION, 0, .sub = &model_table, .doc = "the network"},
    {"train", KEY_SECTION, 0, .sub = &train_table, .doc = "training"},
    {"eval", KEY_SECTION, 0, .sub = &eval_table, .doc = "evaluation"},
    {"runtime", KEY_SECTION, 0, .sub = &runtime_table, .doc = "outputs and compute"},
};
const key_table cfg_root_table = {"", root_keys, N(root_keys), NULL, "the top level of an experiment file"};

const key_table *cfg_table_at(const char *path)
{
    const key_table *t = &cfg_root_table;
    while (*path) {
        size_t n = strcspn(path, ".[");
        int list = path[n] == '[';
        const key_def *k = NULL;
        for (int i = 0; i < t->n && !k; i++)
            if (strlen(t->keys[i].name) == n && !strncmp(t->keys[i].name, path, n)) k = &t->keys[i];
        if (!k || !k->sub || list != !!(k->flags & KEY_LIST)) return NULL;
        t = k->sub;
        path += n + (list ? 2 : 0);
        if (*path == '.') path++;
    }
    return t;
}

void cfg_table_names(const key_table *t, const char **out)
{
    for (int i = 0; i < t->n; i++) out[i] = t->keys[i].name;
    out[t->n] = NULL;
}

int cfg_word_index(const char *s, const char *const *words)
{
    for (int i = 0; words[i]; i++)
        if (strcmp(s, words[i]) == 0) return i;
    return -1;
}

/* ---- "Did you mean" -------------------------------------------------------- */

/* Levenshtein distance ignoring case, so that "LR" finds "lr". */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int row[KEY_MAX];
    if (la >= KEY_MAX || lb >= KEY_MAX) return INT_MAX;
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int best = diag + cost;
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The word closest to s when it is close enough to be a typo of it: one edit
 * per three letters, so "splt" finds "split" but "p" does not find "k". */
const char *th_config_nearest(const char *s, const char *const *words)
{
    const char *best = NULL;
    int best_d = INT_MAX;
    for (int i = 0; words[i]; i++) {
        int d = edit_distance(s, words[i]);
        if (d < best_d) best = words[i], best_d = d;
    }
    if (best && 3 * best_d <= (int)strlen(best) + 1) return best;
    return NULL;
}

void cfg_join_words(char *buf, size_t cap, const char *const *words, const char *sep)
{
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; words[i] && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? sep : "", words[i]);
}

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
static const char *const cache_names[] = {"auto", "memory", "stream", NULL};
static const char *const schedule_names[] = {"constant", "step", "cosine", "plateau", NULL};
static const char *const eval_split_names[] = {"val", "test", NULL};
static const char *const cam_method_names[] = {"cam", "gradcam", "saliency", NULL};
const char *const th_calibrate_names[] = {"none", "temperature", NULL};

/* KEY_ENUM keeps an enum through an int. */
_Static_assert(sizeof(th_normalize) == sizeof(int) && sizeof(th_on_leak) == sizeof(int) &&
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

/* ---- The tables ---- */

enum { LK_OUT = CFG_LK_FROM + 1, LK_K, LK_STRIDE, LK_PAD, LK_BIAS, LK_MOMENTUM, LK_EPS, LK_P, LK_LAYERS, LK_GROWTH,
       LK_BN_SIZE, LK_WIDTH };

/* Every key a layer may have; which ones each type takes is below. */
static const key_def layer_keys[] = {
    [CFG_LK_TYPE] = {"type", KEY_SPECIAL, KEY_REQUIRED},
    [CFG_LK_NAME] = {"name", KEY_SPECIAL, .read = cfg_read_layer_name, .emit = cfg_emit_layer_name},
    [CFG_LK_FROM] = {"from", KEY_SPECIAL, .read = cfg_read_from, .emit = cfg_emit_from},
    [LK_OUT] = {"out", KEY_OUT, KEY_REQUIRED, LAT(out), .lo = 1, .hi = DIM_MAX},
    [LK_K] = {"k", KEY_INT, KEY_REQUIRED, LAT(k), .lo = 1, .hi = DIM_MAX},
    /* conv and the residual blocks 1; a pool's stride is its kernel. */
    [LK_STRIDE] = {"stride", KEY_INT, 0, LAT(stride), .lo = 1, .hi = DIM_MAX, .def_of = pool_stride_default},
    [LK_PAD] = {"pad", KEY_INT, 0, LAT(pad), .lo = 0, .hi = DIM_MAX},
    [LK_BIAS] = {"bias", KEY_BOOL, 0, LAT(bias), .def = 1},
    /* Batch-norm's, of a batchnorm layer or of every batch-norm in a block. */
    [LK_MOMENTUM] = {"momentum", KEY_FLOAT, 0, LAT(momentum), .b = CLOSED(0, 1), .def = 0.1},
    [LK_EPS] = {"eps", KEY_FLOAT, 0, LAT(eps), .b = ABOVE(0), .def = 1e-5},
    [LK_P] = {"p", KEY_FLOAT, 0, LAT(p), .b = RIGHT_OPEN(0, 1), .def = 0.5},
    [LK_LAYERS] = {"layers", KEY_INT, KEY_REQUIRED, LAT(layers), .lo = 1, .hi = 1024},
    [LK_GROWTH] = {"growth", KEY_INT, 0, LAT(growth), .lo = 1, .hi = DIM_MAX, .def = 32},
    [LK_BN_SIZE] = {"bn_size", KEY_INT, 0, LAT(bn_size), .lo = 1, .hi = 1024, .def = 4},
    [LK_WIDTH] = {"width", KEY_INT, 0, LAT(width), .lo = 1, .hi = DIM_MAX, .def_of = width_default},
};
const key_table cfg_layer_table = {"model.layers[]", layer_keys, N(layer_keys), NULL};

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
    {"train", KEY_DOUBLE, KEY_REQUIRED, AT(data.train), .b = LEFT_OPEN(0, 1), .def = 0.7},
    {"val", KEY_DOUBLE, KEY_REQUIRED, AT(data.val), .b = CLOSED(0, 1), .def = 0.15},
    {"test", KEY_DOUBLE, 0, AT(data.test), .b = CLOSED(0, 1), .def = 0.15},
};
static const key_table split_table = {"data.split", split_keys, N(split_keys), check_split};

static const key_def augment_keys[] = {
    {"hflip", KEY_BOOL, 0, AT(data.augment.hflip), .def = 0},
    {"rotate_deg", KEY_FLOAT, 0, AT(data.augment.rotate_deg), .b = AT_LEAST(0)},
    {"shift", KEY_FLOAT, 0, AT(data.augment.shift), .b = RIGHT_OPEN(0, 0.5)},
    {"scale", KEY_PAIR, 0, AT(data.augment.scale_lo), AT(data.augment.scale_hi), .b = ABOVE(0), .def = 1, .def2 = 1},
    /* Fractions of the intensity range: a contrast of 1 or more could
     * invert an image, which no X-ray looks like. */
    {"brightness", KEY_FLOAT, 0, AT(data.augment.brightness), .b = RIGHT_OPEN(0, 1)},
    {"contrast", KEY_FLOAT, 0, AT(data.augment.contrast), .b = RIGHT_OPEN(0, 1)},
};
static const key_table augment_table = {"data.augment", augment_keys, N(augment_keys), check_augment};

static const key_def data_keys[] = {
    {"path", KEY_STR, KEY_REQUIRED, AT(data.path), .cap = SIZE(data.path), .def_str = ""},
    {"labels", KEY_SPECIAL, 0, .read = cfg_read_labels, .emit = cfg_emit_labels},
    {"split", KEY_SPECIAL, 0, .sub = &split_table, .read = cfg_read_split, .emit = cfg_emit_split},
    {"on_leak", KEY_ENUM, 0, AT(data.on_leak), .names = on_leak_names, .def = TH_ON_LEAK_ERROR},
    {"normalize", KEY_ENUM, 0, AT(data.normalize), .names = normalize_names, .def = TH_NORM_TRAINSET},
    {"cache", KEY_ENUM, 0, AT(data.cache), .names = cache_names, .def = TH_CACHE_AUTO},
    {"augment", KEY_SECTION, KEY_OFF_OK, .sub = &augment_table},
};
static const key_table data_table = {"data", data_keys, N(data_keys), NULL};

static const key_def model_keys[] = {
    {"input", KEY_SPECIAL, KEY_REQUIRED, .read = cfg_read_input, .emit = cfg_emit_input},
    /* A path, checked when training starts (th_checkpoint_init_params). */
    {"init", KEY_STR, KEY_MAY_BE_EMPTY, AT(model_init), .cap = SIZE(model_init), .def_str = "",
     .null_note = "the seed's random initialisation"},
    {"layers", KEY_SPECIAL, KEY_REQUIRED | KEY_LIST, .sub = &cfg_layer_table, .read = cfg_read_layers,
     .emit = cfg_emit_layers},
};
static const key_table model_table = {"model", model_keys, N(model_keys), NULL};

static const key_def optimizer_keys[] = {
    {"type", KEY_ENUM, 0, AT(train.optimizer.type), .names = th_optim_names, .def = TH_OPTIM_SGD},
    {"lr", KEY_FLOAT, 0, AT(train.optimizer.lr), .b = ABOVE(0), .def_of = lr_default},
    {"momentum", KEY_FLOAT, 0, AT(train.optimizer.momentum), .b = RIGHT_OPEN(0, 1), .def = 0.9},
    {"nesterov", KEY_BOOL, 0, AT(train.optimizer.nesterov), .def = 0},
    {"weight_decay", KEY_FLOAT, 0, AT(train.optimizer.weight_decay), .b = AT_LEAST(0)},
    {"betas", KEY_PAIR, 0, AT(train.optimizer.beta1), AT(train.optimizer.beta2), .b = RIGHT_OPEN(0, 1), .def = 0.9,
     .def2 = 0.999},
    {"eps", KEY_FLOAT, 0, AT(train.optimizer.eps), .b = ABOVE(0), .def = 1e-8},
};
static const key_table optimizer_table = {"train.optimizer", optimizer_keys, N(optimizer_keys), check_optimizer};

static const key_def schedule_keys[] = {
    {"type", KEY_ENUM, 0, AT(train.schedule.type), .names = schedule_names, .def = TH_SCHED_CONSTANT},
    {"factor", KEY_FLOAT, 0, AT(train.schedule.factor), .b = OPEN(0, 1), .def_of = factor_default},
    {"patience", KEY_INT, 0, AT(train.schedule.patience), .lo = 0, .hi = INT_MAX, .def = 2},
    {"step_epochs", KEY_INT, 0, AT(train.schedule.step_epochs), .lo = 1, .hi = INT_MAX, .def = 10},
    {"warmup_epochs", KEY_INT, 0, AT(train.schedule.warmup_epochs), .lo = 0, .hi = INT_MAX},
    {"min_lr", KEY_FLOAT, 0, AT(train.schedule.min_lr), .b = AT_LEAST(0)},
};
static const key_table schedule_table = {"train.schedule", schedule_keys, N(schedule_keys), check_schedule};

static const key_def early_stop_keys[] = {
    /* 0 = never stop early */
    {"patience", KEY_INT, 0, AT(train.early_stop_patience), .lo = 0, .hi = INT_MAX},
};
static const key_table early_stop_table = {"train.early_stop", early_stop_keys, N(early_stop_keys), NULL};

static const key_def unfreeze_keys[] = {
    {"epoch", KEY_INT, KEY_REQUIRED, AT(train.unfreeze.epoch), .lo = 1, .hi = INT_MAX},
    {"lr", KEY_FLOAT, 0, AT(train.unfreeze.lr), .b = ABOVE(0), .def_of = unfreeze_lr_default},
};
static const key_table unfreeze_table = {"train.unfreeze", unfreeze_keys, N(unfreeze_keys), check_unfreeze};

static const key_def train_keys[] = {
    {"epochs", KEY_INT, 0, AT(train.epochs), .lo = 1, .hi = INT_MAX, .def = 10},
    {"batch_per_rank", KEY_INT, 0, AT(train.batch_per_rank), .lo = 1, .hi = INT_MAX, .def = 16},
    {"optimizer", KEY_SECTION, 0, .sub = &optimizer_table},
    {"schedule", KEY_SECTION, 0, .sub = &schedule_table},
    {"loss", KEY_ENUM, 0, AT(train.loss), .names = th_loss_names, .def = TH_LOSS_WEIGHTED_BCE},
    {"early_stop", KEY_SECTION, 0, .sub = &early_stop_table},
    {"freeze", KEY_SPECIAL, 0, .read = cfg_read_freeze, .emit = cfg_emit_freeze},
    /* The second stage of a fine-tuning: {epoch: E, lr: X}. */
    {"unfreeze", KEY_SECTION, KEY_FLOW | KEY_OPTIONAL, .sub = &unfreeze_table},
};
static const key_table train_table = {"train", train_keys, N(train_keys), NULL};

static const key_def cam_keys[] = {
    {"method", KEY_ENUM_STR, 0, AT(eval.cam_method), .cap = SIZE(eval.cam_method), .names = cam_method_names,
     .def = 1},
    {"top_k", KEY_INT, 0, AT(eval.cam_top_k), .lo = 0, .hi = INT_MAX, .def = 8},
};
static const key_table cam_table = {"eval.cam", cam_keys, N(cam_keys), NULL};

static const key_def eval_keys[] = {
    {"split", KEY_ENUM_STR, 0, AT(eval.split), .cap = SIZE(eval.split), .names = eval_split_names, .def = 1},
    {"cam", KEY_SECTION, 0, .sub = &cam_table},
    {"threshold", KEY_STR, 0, AT(eval.threshold), .cap = SIZE(eval.threshold), .def_str = "youden",
     .check = check_threshold},
    {"calibrate", KEY_ENUM, 0, AT(eval.calibrate), .names = th_calibrate_names, .def = TH_CALIBRATE_NONE},
    /* Resamples of patients for the AUC intervals (thorax/eval.h); 2000 is
     * Efron and Tibshirani's usual count for percentile intervals. */
    {"bootstrap", KEY_INT, 0, AT(eval.bootstrap), .lo = 0, .hi = 1000000, .def = 2000},
};
static const key_table eval_table = {"eval", eval_keys, N(eval_keys), NULL};

/* The default gradient bucket: the reference network (configs/reference.yaml)
 * has about 396k parameters, 1.5 MiB of gradients, of which conv5 and fc, the
 * first to finish in backward, hold 1.14 MiB. PyTorch's 25 MiB would make that
 * one bucket sent after backward, overlapping nothing; 0.5 MiB sends conv5+fc
 * while conv4..conv1 (three quarters of backward's FLOPs) still run, and the
 * rest after, in two messages, so per-message latency stays negligible. */
#define DEFAULT_BUCKET_MB 0.5

static const key_def runtime_keys[] = {
    {"out_dir", KEY_STR, 0, AT(runtime.out_dir), .cap = SIZE(runtime.out_dir), .def_str = "runs"},
    {"threads_per_rank", KEY_INT, 0, AT(runtime.threads_per_rank), .lo = 1, .hi = INT_MAX, .def = 1},
    {"allreduce_bucket_mb", KEY_FLOAT, 0, AT(runtime.allreduce_bucket_mb), .b = AT_LEAST(0),
     .def = DEFAULT_BUCKET_MB},
    /* Whether this CPU can is for the model to say (th_model_set_precision):
     * a config is checked where it is written, not only where it runs. */
    {"precision", KEY_ENUM, 0, AT(runtime.precision), .names = th_precision_names, .def = TH_PRECISION_FP32},
};
static const key_table runtime_table = {"runtime", runtime_keys, N(runtime_keys), NULL};

static const key_def root_keys[] = {
    {"name", KEY_STR, KEY_RUN_NAME, AT(name), .cap = SIZE(name), .check = check_run_name},
    {"seed", KEY_U64, 0, AT(seed), .lo = 0, .hi = LLONG_MAX, .def = 42},
    {"data", KEY_SECTION, 0, .sub = &data_table},
    {"model", KEY_SECTION, 0, .sub = &model_table},
    {"train", KEY_SECTION, 0, .sub = &train_table},
    {"eval", KEY_SECTION, 0, .sub = &eval_table},
    {"runtime", KEY_SECTION, 0, .sub = &runtime_table},
};
const key_table cfg_root_table = {"", root_keys, N(root_keys), NULL};

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

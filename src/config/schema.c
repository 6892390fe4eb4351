/* schema.c - which keys each mapping of a configuration takes, how its
 * enums are spelled, and "did you mean" for a key or value that is not one
 * of them. The walk (read.c) and the overrides (overrides.c) both check keys
 * against these lists, so a key is known to both or to neither.
 */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "config_impl.h"

const char *const cfg_root_keys[] = {"name", "seed", "data", "model", "train", "eval", "runtime", NULL};
static const char *const data_keys[] = {"path", "labels", "split", "on_leak", "normalize", "augment", "cache", NULL};
static const char *const split_keys[] = {"train", "val", "test", NULL};
static const char *const augment_keys[] = {"hflip", "rotate_deg", "shift", "scale", "brightness", "contrast", NULL};
static const char *const model_keys[] = {"input", "layers", "init", NULL};
static const char *const any_layer_keys[] = {"type", "name", "from", "out", "k", "stride", "pad", "bias",
                                             "momentum", "eps", "p", "layers", "growth", "bn_size", NULL};
static const char *const train_keys[] = {"epochs", "batch_per_rank", "optimizer", "schedule",
                                         "loss", "early_stop", "freeze", "unfreeze", NULL};
static const char *const optimizer_keys[] = {"type", "lr", "momentum", "nesterov",
                                             "weight_decay", "betas", "eps", NULL};
static const char *const schedule_keys[] = {"type", "factor", "patience", "step_epochs",
                                            "warmup_epochs", "min_lr", NULL};
static const char *const early_stop_keys[] = {"patience", NULL};
static const char *const unfreeze_keys[] = {"epoch", "lr", NULL};
static const char *const eval_keys[] = {"split", "cam", NULL};
static const char *const cam_keys[] = {"method", "top_k", NULL};
static const char *const runtime_keys[] = {"out_dir", "threads_per_rank", "allreduce_bucket_mb", NULL};

/* Every mapping of the schema by its dotted path; "[]" is any item of a list.
 * Both the tree walk and the override paths check keys against this table. */
static const struct section {
    const char *path;
    const char *const *keys;
} sections[] = {
    {"", cfg_root_keys},
    {"data", data_keys},
    {"data.split", split_keys},
    {"data.augment", augment_keys},
    {"model", model_keys},
    {"model.layers[]", any_layer_keys},
    {"train", train_keys},
    {"train.optimizer", optimizer_keys},
    {"train.schedule", schedule_keys},
    {"train.early_stop", early_stop_keys},
    {"train.unfreeze", unfreeze_keys},
    {"eval", eval_keys},
    {"eval.cam", cam_keys},
    {"runtime", runtime_keys},
};

/* The keys each layer type takes. */
const char *const cfg_layer_keys[TH_LAYER_TYPE_COUNT][10] = {
    [TH_LAYER_CONV] = {"type", "name", "from", "out", "k", "stride", "pad", "bias", NULL},
    [TH_LAYER_RELU] = {"type", "name", "from", NULL},
    [TH_LAYER_MAXPOOL] = {"type", "name", "from", "k", "stride", "pad", NULL},
    [TH_LAYER_AVGPOOL] = {"type", "name", "from", "k", "stride", NULL},
    [TH_LAYER_BATCHNORM] = {"type", "name", "from", "momentum", "eps", NULL},
    [TH_LAYER_GAP] = {"type", "name", "from", NULL},
    [TH_LAYER_DENSE] = {"type", "name", "from", "out", "bias", NULL},
    [TH_LAYER_DROPOUT] = {"type", "name", "from", "p", NULL},
    [TH_LAYER_ADD] = {"type", "name", "from", NULL},
    [TH_LAYER_CONCAT] = {"type", "name", "from", NULL},
    [TH_LAYER_RESBLOCK] = {"type", "name", "from", "out", "stride", "momentum", "eps", NULL},
    [TH_LAYER_DENSEBLOCK] = {"type", "name", "from", "layers", "growth", "bn_size", "momentum", "eps", NULL},
    [TH_LAYER_TRANSITION] = {"type", "name", "from", "out", "momentum", "eps", NULL},
};

/* Spellings of the enums, in enum order. */
const char *const cfg_normalize_names[] = {"trainset", "per_image", "none", NULL};
const char *const cfg_on_leak_names[] = {"error", "drop_from_eval", NULL};
const char *const cfg_cache_names[] = {"auto", "memory", "stream", NULL};
const char *const cfg_schedule_names[] = {"constant", "step", "cosine", "plateau", NULL};
const char *const cfg_eval_split_names[] = {"val", "test", NULL};
const char *const cfg_cam_method_names[] = {"cam", "gradcam", NULL};

const char *const *cfg_section_keys(const char *path)
{
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        if (strcmp(sections[i].path, path) == 0) return sections[i].keys;
    return NULL;
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

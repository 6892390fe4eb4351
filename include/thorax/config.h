/* config.h - one experiment, as a validated struct with every default filled.
 *
 * A YAML file (libyaml) is read into a tree, `--set a.b=value` overrides are
 * applied to the tree, and the tree is checked against the schema: unknown
 * keys, wrong types and impossible values are errors naming the key and its
 * line ("configs/x.yaml:12: train.optimizer.lr: must be > 0, got -0.1").
 * The resolved config is written back as YAML with every default, so a run
 * directory's config.yaml reproduces the run on its own.
 */
#ifndef THORAX_CONFIG_H
#define THORAX_CONFIG_H

#include <stdint.h>
#include "thorax/util.h"
#include "thorax/spec.h"

#define TH_MAX_LABELS 256

/* Limits of a configuration's text, each an error naming the file (and line)
 * instead of a crash or an hour of parsing:
 *   TH_CONFIG_MAX_BYTES   a file (or string) this long: a configuration is
 *                         a page of text, anything bigger is the wrong file;
 *   TH_CONFIG_MAX_DEPTH   mappings and lists nested this deep (the schema
 *                         needs 4: model.layers[i].k); deeper is "nested more
 *                         than 64 levels deep", usually an alias to itself;
 *   TH_CONFIG_MAX_VALUES  values in all, aliases counted at every use, so a
 *                         "billion laughs" document stops early. */
#define TH_CONFIG_MAX_BYTES (16L << 20)
#define TH_CONFIG_MAX_DEPTH 64
#define TH_CONFIG_MAX_VALUES 100000
#define TH_LABEL_MAX 64
#define TH_MAX_FREEZE 64        /* entries of train.freeze */
#define TH_PATH_MAX 1024
/* A message's "where": "file:line", or the whole "--set a.b=v" (cut here). */
#define TH_WHERE_MAX (TH_PATH_MAX + 16)

typedef enum th_normalize { TH_NORM_TRAINSET = 0, TH_NORM_PER_IMAGE, TH_NORM_NONE } th_normalize;
typedef enum th_schedule_type { TH_SCHED_CONSTANT = 0, TH_SCHED_STEP, TH_SCHED_COSINE, TH_SCHED_PLATEAU } th_schedule_type;
typedef enum th_split_mode { TH_SPLIT_MODE_RANDOM = 0, TH_SPLIT_MODE_PREDEFINED } th_split_mode;
/* What a predefined split that lets a patient into two splits does: refuse to
 * train, or drop that patient's val/test images from evaluation. */
/* Where a rank keeps its training images: in memory (read once), streamed from
 * the file by the prefetch thread, or in memory when they fit (auto). */
typedef enum th_cache { TH_CACHE_AUTO = 0, TH_CACHE_MEMORY, TH_CACHE_STREAM } th_cache;
typedef enum th_on_leak { TH_ON_LEAK_ERROR = 0, TH_ON_LEAK_DROP_FROM_EVAL } th_on_leak;
/* What the same picture in two splits (identical or near-identical pixels,
 * th_dups_find) does: refuse the split, drop the copies outside the earliest
 * split (train < val < test), or keep them (reported only). */
typedef enum th_on_duplicate { TH_ON_DUP_REFUSE = 0, TH_ON_DUP_DROP, TH_ON_DUP_KEEP } th_on_duplicate;

/* How each label's operating point is chosen on the validation split
 * (eval.threshold; th_eval_run applies it to every other split):
 *   youden            the score maximising sensitivity + specificity - 1
 *   sensitivity@s     the highest score whose sensitivity is >= s
 *   specificity@s     the lowest score whose specificity is >= s
 *   fixed:t           t itself
 * (s in (0, 1), t in [0, 1]). */
typedef enum th_threshold_rule {
    TH_THRESHOLD_YOUDEN = 0,
    TH_THRESHOLD_SENSITIVITY,
    TH_THRESHOLD_SPECIFICITY,
    TH_THRESHOLD_FIXED,
} th_threshold_rule;

/* Parses an eval.threshold value; *value is 0 for youden. Returns -1 with
 * msg (cap bytes) saying what is wrong. */
int th_threshold_rule_parse(const char *s, th_threshold_rule *rule, double *value, char *msg, size_t cap);

/* eval.calibrate: none, or one temperature per label fitted on val. */
typedef enum th_calibrate { TH_CALIBRATE_NONE = 0, TH_CALIBRATE_TEMPERATURE } th_calibrate;
extern const char *const th_calibrate_names[];

typedef struct th_config {
    char name[128];
    uint64_t seed;
    struct {
        char path[TH_PATH_MAX];
        int n_labels;                            /* 0 = every label in the file */
        char labels[TH_MAX_LABELS][TH_LABEL_MAX];
        th_split_mode split_mode;
        double train, val, test;                 /* patient fractions, sum to 1 */
        th_on_leak on_leak;                      /* predefined splits only */
        th_on_duplicate on_duplicate;
        int duplicate_bits;                      /* near-duplicate Hamming distance; -1 identical only */
        th_normalize normalize;
        th_cache cache;
        struct th_augment_config {
            int hflip;
            float rotate_deg;
            float shift;                         /* fraction of the image size */
            float scale_lo, scale_hi;
            float brightness, contrast;
        } augment;
    } data;
    th_model_spec model;
    /* model.init: start from this file's /params (a run's best.h5 or last.h5,
     * or tools/import-torch.py's output) instead of the seed's random
     * initialisation; "" for none. Read at the start of a fresh run only:
     * with --resume the checkpoint wins. */
    char model_init[TH_PATH_MAX];
    struct {
        int epochs;
        int batch_per_rank;
        th_optim_config optimizer;
        struct {
            th_schedule_type type;
            float factor;       /* plateau, step: lr multiplier */
            int patience;       /* plateau: epochs without val AUC gain */
            int step_epochs;    /* step: every this many epochs */
            int warmup_epochs;  /* cosine */
            float min_lr;       /* cosine, plateau floor */
        } schedule;
        th_loss_type loss;
        int early_stop_patience; /* 0 = never stop early */
        /* train.freeze: layers whose parameters do not train, each entry a
         * layer name or a prefix of names (th_config_freezes); that every
         * entry matches some layer of the model is th_run_config_check's
         * (train) to say. */
        int n_freeze;
        char freeze[TH_MAX_FREEZE][TH_NAME_MAX];
        /* train.unfreeze: from epoch `epoch` (0-based; 0 = never) every layer
         * trains and the schedule starts again from lr. Needs n_freeze > 0. */
        struct {
            int epoch;
            float lr;
        } unfreeze;
    } train;
    struct {
        char split[16];         /* val or test */
        char cam_method[16];    /* cam, gradcam or saliency */
        int cam_top_k;
        /* eval.threshold as written ("youden", "sensitivity@0.9",
         * "specificity@0.9", "fixed:0.5"), and parsed by
         * th_threshold_rule_parse into its rule and number. */
        char threshold[32];
        th_threshold_rule threshold_rule;
        double threshold_value;
        th_calibrate calibrate; /* eval.calibrate */
        int bootstrap;          /* patient-bootstrap resamples of the AUC CI, seeded with seed; 0 = DeLong's CI */
    } eval;
    struct {
        char out_dir[TH_PATH_MAX];
        int threads_per_rank;
        float allreduce_bucket_mb; /* gradient buckets overlapping backward; 0 = one allreduce after */
        th_precision precision;    /* the conv and dense GEMMs': fp32, or bf16 (needs AVX512_BF16) */
        double hang_timeout;       /* seconds a collective may wait before the job ends naming the silent ranks; 0 = never */
    } runtime;
    char source[TH_PATH_MAX];   /* the file it came from, for messages */
    /* Where the keys were written that only the network can check
     * (th_run_config_check, in train, which reports them as the loader
     * would): each is a message's "where", "file:line", the file alone, or
     * the "--set a.b=v" that wrote the key. Not configuration: the resolved
     * YAML and th_config_compare ignore it. */
    struct {
        char layers[TH_WHERE_MAX];      /* model.layers: its --set, else the file (each layer has its line) */
        char freeze[TH_WHERE_MAX];      /* train.freeze */
        char freeze_item[TH_MAX_FREEZE][TH_WHERE_MAX];
        int freeze_listed;              /* train.freeze was a list (its entries are named [i]), not one name */
    } at;
} th_config;

/* Loads path, applies sets[0..n_sets) ("a.b=value", the value parsed as YAML,
 * so `data.labels=[Effusion,Nodule]` works), validates every key on its own
 * and against the others. Whether the network fits its input and labels, and
 * train.freeze its layers, is for th_run_config_load (thorax/train.h)
 * to check: the config does not know the network code. */
int th_config_load(th_config *cfg, const char *path, const char *const *sets, int n_sets, th_err *err);
/* Same, from YAML text in memory (name is used in messages). */
int th_config_load_string(th_config *cfg, const char *yaml, const char *name,
                          const char *const *sets, int n_sets, th_err *err);

/* The resolved YAML text, every default filled. Returns a malloc'd string or NULL. */
char *th_config_to_yaml(const th_config *cfg);

/* Spells out the labels: data.labels = names[col[0..n)]. Fails naming a name
 * longer than a config label can hold. */
int th_config_name_labels(th_config *cfg, const char *const *names, const int *col, int n, th_err *err);

/* Whether train.freeze's entry freezes the layer named name: the name
 * itself, or a prefix of it followed by '.' (so "layer1" freezes
 * "layer1.0.conv1" but not "layer10"). */
int th_config_freeze_matches(const char *entry, const char *name);

/* Whether the layer named name is frozen by cfg's train.freeze. */
int th_config_freezes(const th_config *cfg, const char *name);

/* The word of words (NULL-terminated) closest to s when it is close enough
 * to be a typo of it, or NULL: the "did you mean" of config messages. */
const char *th_config_nearest(const char *s, const char *const *words);

/* Compares the keys of two configs under the given top-level sections
 * or keys (NULL-terminated, e.g. {"seed", "data", "model", "train.freeze",
 * NULL}); on the first difference fails with "model.layers[3]: was {...},
 * now {...}". */
int th_config_compare(const th_config *was, const th_config *now, const char *const *sections, th_err *err);

/* The documentation of the keys, generated from the schema's own tables
 * (thorax config). Each returns a malloc'd string, or NULL with err set.
 *   th_config_reference       the Markdown reference of every key, grouped
 *                             by mapping (docs/configuration.md);
 *   th_config_explain         one key ("train.optimizer.lr",
 *                             "model.layers[].k"): its doc, type, default and
 *                             range or choices; an unknown key fails with a
 *                             "did you mean";
 *   th_config_defaults_yaml   every key at its default as YAML, each with its
 *                             doc as a comment above it (placeholders for the
 *                             keys without one: data.path, model.input and
 *                             model.layers); it loads as a config. */
char *th_config_reference(th_err *err);
char *th_config_explain(const char *key, th_err *err);
char *th_config_defaults_yaml(th_err *err);
/* Fails naming the first key, mapping, enum spelling or layer type of the
 * schema without its doc string (th_config_reference checks it too). */
int th_config_docs_check(th_err *err);

#endif

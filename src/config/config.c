/* config.c - the experiment configuration: schema, defaults, validation,
 * `--set` overrides, and the resolved YAML.
 *
 * Loading happens in three passes over a yt_node tree (yaml_tree.c): parse the
 * file, graft each override onto the tree, then walk the tree against the
 * schema into a th_config. Overrides are applied to the tree rather than to
 * the struct so that an overridden value is validated by exactly the same
 * code as one written in the file, and so that `--set model.layers=[...]`
 * needs no special case.
 *
 * Every message has the form "<where>: <dotted.key>: <problem>", where
 * <where> is "file:line" or the "--set a.b=v" the value came from.
 */
#include "thorax/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "yaml_tree.h"

/* Largest channel count, image side, kernel, pad or stride accepted: far
 * beyond any X-ray network, and small enough that no shape product overflows. */
#define DIM_MAX 65536
#define KEY_MAX 256

/* ---- The schema: which keys each mapping takes ---------------------------- */

static const char *const root_keys[] = {"name", "seed", "data", "model", "train", "eval", "runtime", NULL};
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
    {"", root_keys},
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
static const char *const layer_keys[TH_LAYER_TYPE_COUNT][10] = {
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
static const char *const normalize_names[] = {"trainset", "per_image", "none", NULL};
static const char *const on_leak_names[] = {"error", "drop_from_eval", NULL};
static const char *const cache_names[] = {"auto", "memory", "stream", NULL};
static const char *const schedule_names[] = {"constant", "step", "cosine", "plateau", NULL};
static const char *const eval_split_names[] = {"val", "test", NULL};
static const char *const cam_method_names[] = {"cam", "gradcam", NULL};

static const char *const *section_keys(const char *path)
{
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        if (strcmp(sections[i].path, path) == 0) return sections[i].keys;
    return NULL;
}

static int word_index(const char *s, const char *const *words)
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

static void join_words(char *buf, size_t cap, const char *const *words, const char *sep)
{
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; words[i] && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? sep : "", words[i]);
}

/* ---- Errors -------------------------------------------------------------- */

typedef struct ctx {
    const char *file;           /* the config's name in messages */
    const char *default_name;   /* the run name when the file has none */
    yt_tree *tree;              /* owns stand-in nodes and override values */
    th_err *err;
} ctx;

/* "path.key", "path[3]" or just one of them. */
static void join_key(char *buf, size_t cap, const char *path, const char *key)
{
    if (!key || !key[0])
        snprintf(buf, cap, "%s", path);
    else if (!path[0] || key[0] == '[')
        snprintf(buf, cap, "%s%s", path, key);
    else
        snprintf(buf, cap, "%s.%s", path, key);
}

static int fail(const ctx *c, const yt_node *at, const char *path, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fail(const ctx *c, const yt_node *at, const char *path, const char *key, const char *fmt, ...)
{
    char where[TH_WHERE_MAX], full[KEY_MAX], what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    yt_where(at, c->file, where, sizeof where);
    join_key(full, sizeof full, path, key);
    if (!full[0]) return th_errf(c->err, "%s: %s", where, what);
    return th_errf(c->err, "%s: %s: %s", where, full, what);
}

/* ---- Scalars --------------------------------------------------------------- */

/* A closed, open or half-open interval; hi = HUGE_VAL for none. */
typedef struct bounds {
    double lo, hi;
    int lo_open, hi_open;
} bounds;

#define AT_LEAST(x) ((bounds){(x), HUGE_VAL, 0, 0})
#define ABOVE(x) ((bounds){(x), HUGE_VAL, 1, 0})
#define CLOSED(a, b) ((bounds){(a), (b), 0, 0})
#define OPEN(a, b) ((bounds){(a), (b), 1, 1})
#define LEFT_OPEN(a, b) ((bounds){(a), (b), 1, 0})   /* (a, b] */
#define RIGHT_OPEN(a, b) ((bounds){(a), (b), 0, 1})  /* [a, b) */

static int in_bounds(bounds b, double x)
{
    return (b.lo_open ? x > b.lo : x >= b.lo) && (b.hi_open ? x < b.hi : x <= b.hi);
}

static void bounds_text(bounds b, char *buf, size_t cap)
{
    if (isinf(b.hi))
        snprintf(buf, cap, "%s %g", b.lo_open ? ">" : ">=", b.lo);
    else
        snprintf(buf, cap, "in %c%g, %g%c", b.lo_open ? '(' : '[', b.lo, b.hi, b.hi_open ? ')' : ']');
}

/* Whole decimal integers only: "1.5", "1e3" and "0x10" are not integers here. */
static int parse_ll(const char *s, long long *out)
{
    const char *p = s + (*s == '+' || *s == '-');
    if (!isdigit((unsigned char)*p)) return -1;
    char *end;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return *end || errno ? -1 : 0;
}

/* YAML ints and floats (1, -0.5, 1e-4, 1.0e-4); not inf, nan or hex floats,
 * which strtod would take but a config never means. */
static int parse_double(const char *s, double *out)
{
    if (!s[0] || s[strspn(s, "0123456789+-.eE")] || !strpbrk(s, "0123456789")) return -1;
    char *end;
    *out = strtod(s, &end);
    return *end || !isfinite(*out) ? -1 : 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = 1, 0;
        if (strcasecmp(s, no[i]) == 0) return *out = 0, 0;
    }
    return -1;
}

/* Node readers: v is present; path and key name it in messages. */

static int node_int(const ctx *c, const yt_node *v, const char *path, const char *key, long long lo, long long hi,
                    long long *out)
{
    char d[64];
    if (v->kind != YT_SCALAR || parse_ll(v->str, out))
        return fail(c, v, path, key, "must be an integer, got %s", yt_describe(v, d, sizeof d));
    if (*out >= lo && *out <= hi) return 0;
    if (hi < INT_MAX) return fail(c, v, path, key, "must be in [%lld, %lld], got %s", lo, hi, v->str);
    if (*out < lo) return fail(c, v, path, key, "must be >= %lld, got %s", lo, v->str);
    return fail(c, v, path, key, "must be at most %lld, got %s", hi, v->str);
}

/* as_float rounds to float before the bounds check, so that what is checked
 * is what the struct will hold (1e-50 is not a positive float). */
static int node_num(const ctx *c, const yt_node *v, const char *path, const char *key, bounds b, int as_float,
                    double *out)
{
    char d[64], r[64];
    if (v->kind != YT_SCALAR || parse_double(v->str, out))
        return fail(c, v, path, key, "must be a number, got %s", yt_describe(v, d, sizeof d));
    if (as_float) {
        float f = (float)*out;
        if (isinf(f)) return fail(c, v, path, key, "is too large, got %s", v->str);
        *out = f;
    }
    if (in_bounds(b, *out)) return 0;
    bounds_text(b, r, sizeof r);
    return fail(c, v, path, key, "must be %s, got %s", r, v->str);
}

/* Key readers: the value of key in mapping m (which may be NULL, meaning
 * empty), or def when it is absent or null. */

static int read_int(const ctx *c, const yt_node *m, const char *path, const char *key, int lo, int hi, int def,
                    int *out)
{
    const yt_node *v = yt_get(m, key);
    long long x = def;
    if (v && node_int(c, v, path, key, lo, hi, &x)) return -1;
    *out = (int)x;
    return 0;
}

static int read_double(const ctx *c, const yt_node *m, const char *path, const char *key, bounds b, double def,
                       double *out)
{
    const yt_node *v = yt_get(m, key);
    *out = def;
    return v ? node_num(c, v, path, key, b, 0, out) : 0;
}

static int read_float(const ctx *c, const yt_node *m, const char *path, const char *key, bounds b, double def,
                      float *out)
{
    const yt_node *v = yt_get(m, key);
    double x = def;
    if (v && node_num(c, v, path, key, b, 1, &x)) return -1;
    *out = (float)x;
    return 0;
}

/* [a, b]: two floats within b each. */
static int read_float_pair(const ctx *c, const yt_node *m, const char *path, const char *key, bounds b, double def0,
                           double def1, float out[2])
{
    const yt_node *v = yt_get(m, key);
    char full[KEY_MAX], d[64];
    double x[2] = {def0, def1};
    join_key(full, sizeof full, path, key);
    if (v && (v->kind != YT_SEQ || v->n != 2))
        return fail(c, v, full, NULL, "must be a list of two numbers, got %s", yt_describe(v, d, sizeof d));
    for (int i = 0; v && i < 2; i++)
        if (node_num(c, v->vals[i], full, i ? "[1]" : "[0]", b, 1, &x[i])) return -1;
    out[0] = (float)x[0];
    out[1] = (float)x[1];
    return 0;
}

static int read_bool(const ctx *c, const yt_node *m, const char *path, const char *key, int def, int *out)
{
    const yt_node *v = yt_get(m, key);
    char d[64];
    *out = def;
    if (v && (v->kind != YT_SCALAR || parse_bool(v->str, out)))
        return fail(c, v, path, key, "must be true or false, got %s", yt_describe(v, d, sizeof d));
    return 0;
}

/* One of names (NULL-terminated), as its index. */
static int read_enum(const ctx *c, const yt_node *m, const char *path, const char *key, const char *const *names,
                     int def, int *out)
{
    const yt_node *v = yt_get(m, key);
    char list[160], d[64], hint[80] = "";
    *out = def;
    if (!v) return 0;
    if (v->kind == YT_SCALAR && (*out = word_index(v->str, names)) >= 0) return 0;
    const char *near = v->kind == YT_SCALAR ? th_config_nearest(v->str, names) : NULL;
    if (near) snprintf(hint, sizeof hint, " (did you mean '%s'?)", near);
    join_words(list, sizeof list, names, ", ");
    return fail(c, v, path, key, "must be one of %s; got %s%s", list, yt_describe(v, d, sizeof d), hint);
}

/* A string that must fit buf (strings are never truncated). */
static int read_str(const ctx *c, const yt_node *m, const char *path, const char *key, const char *def, char *buf,
                    size_t cap, int may_be_empty)
{
    const yt_node *v = yt_get(m, key);
    const yt_node *at = v ? v : m;
    const char *s = def;
    char d[64];
    if (v && v->kind != YT_SCALAR)
        return fail(c, v, path, key, "must be a string, got %s", yt_describe(v, d, sizeof d));
    if (v) s = v->str;
    size_t n = strlen(s);
    if (n >= cap) return fail(c, at, path, key, "is %zu characters long, at most %zu are allowed", n, cap - 1);
    if (n == 0 && !may_be_empty) return fail(c, at, path, key, "must not be empty");
    memcpy(buf, s, n + 1);
    return 0;
}

static int require(const ctx *c, const yt_node *m, const char *path, const char *key)
{
    return yt_get(m, key) ? 0 : fail(c, m, path, key, "is required");
}

/* ---- Mappings ------------------------------------------------------------ */

/* Rejects keys of m not in keys, naming the nearest known key. */
static int check_keys(const ctx *c, const yt_node *m, const char *path, const char *const *keys, const char *problem)
{
    for (int i = 0; i < m->n; i++) {
        const char *key = m->keys[i]->str;
        if (word_index(key, keys) >= 0) continue;
        const char *near = th_config_nearest(key, keys);
        if (near) return fail(c, m->keys[i], path, key, "%s (did you mean '%s'?)", problem, near);
        char list[256];
        join_words(list, sizeof list, keys, ", ");
        return fail(c, m->keys[i], path, key, "%s (expected one of: %s)", problem, list);
    }
    return 0;
}

/* The mapping at path, a key of parent, with its keys checked. When it is
 * absent, an empty stand-in placed at the parent, so that every key takes its
 * default and a missing required key is reported near where it belongs. */
static int section(const ctx *c, const yt_node *parent, const char *path, const yt_node **out)
{
    const char *dot = strrchr(path, '.');
    const yt_node *v = yt_get(parent, dot ? dot + 1 : path);
    char d[64];
    if (!v) {
        *out = yt_new_map(c->tree, parent->line, parent->set);
        return *out ? 0 : fail(c, parent, path, NULL, "out of memory");
    }
    if (v->kind != YT_MAP)
        return fail(c, v, path, NULL, "must be a mapping of keys, got %s", yt_describe(v, d, sizeof d));
    *out = v;
    return check_keys(c, v, path, section_keys(path), "unknown key");
}

/* ---- The sections ---------------------------------------------------------- */

static int read_labels(const ctx *c, const yt_node *data, th_config *cfg)
{
    const yt_node *v = yt_get(data, "labels");
    char d[64];
    if (!v) return 0;
    if (v->kind == YT_MAP) return fail(c, v, "data.labels", NULL, "must be a list of label names, got a mapping");
    /* A single name is a list of one. */
    int n = v->kind == YT_SEQ ? v->n : 1;
    if (n > TH_MAX_LABELS) return fail(c, v, "data.labels", NULL, "at most %d labels, got %d", TH_MAX_LABELS, n);
    for (int i = 0; i < n; i++) {
        const yt_node *it = v->kind == YT_SEQ ? v->vals[i] : v;
        char key[16] = "";
        if (v->kind == YT_SEQ) snprintf(key, sizeof key, "[%d]", i);
        if (it->kind != YT_SCALAR || yt_is_null(it))
            return fail(c, it, "data.labels", key, "must be a label name, got %s", yt_describe(it, d, sizeof d));
        size_t len = strlen(it->str);
        if (len == 0) return fail(c, it, "data.labels", key, "must not be empty");
        if (len >= TH_LABEL_MAX)
            return fail(c, it, "data.labels", key, "is %zu characters long, at most %d are allowed", len,
                        TH_LABEL_MAX - 1);
        for (int j = 0; j < i; j++)
            if (strcmp(cfg->data.labels[j], it->str) == 0)
                return fail(c, it, "data.labels", key, "'%s' is listed twice", it->str);
        memcpy(cfg->data.labels[i], it->str, len + 1);
    }
    cfg->data.n_labels = n;
    return 0;
}

static int read_split(const ctx *c, const yt_node *data, th_config *cfg)
{
    const yt_node *v = yt_get(data, "split"), *m;
    char d[64];
    if (v && v->kind == YT_SCALAR) {
        if (strcmp(v->str, "predefined") != 0)
            return fail(c, v, "data.split", NULL, "must be 'predefined' or a mapping {train, val, test}, got %s",
                        yt_describe(v, d, sizeof d));
        cfg->data.split_mode = TH_SPLIT_MODE_PREDEFINED;
        return 0;
    }
    cfg->data.split_mode = TH_SPLIT_MODE_RANDOM;
    if (!v) {
        cfg->data.train = 0.7, cfg->data.val = 0.15, cfg->data.test = 0.15;
        return 0;
    }
    if (section(c, data, "data.split", &m) || require(c, m, "data.split", "train") ||
        require(c, m, "data.split", "val") ||
        read_double(c, m, "data.split", "train", LEFT_OPEN(0, 1), 0, &cfg->data.train) ||
        read_double(c, m, "data.split", "val", CLOSED(0, 1), 0, &cfg->data.val))
        return -1;
    double train_val = cfg->data.train + cfg->data.val;
    if (!yt_get(m, "test")) {
        if (train_val > 1 + 1e-6)
            return fail(c, m, "data.split", NULL, "train + val is %g, leaving nothing for test", train_val);
        cfg->data.test = train_val < 1 ? 1 - train_val : 0;
        return 0;
    }
    if (read_double(c, m, "data.split", "test", CLOSED(0, 1), 0, &cfg->data.test)) return -1;
    double sum = train_val + cfg->data.test;
    if (fabs(sum - 1) > 1e-6) return fail(c, m, "data.split", NULL, "fractions sum to %g, must sum to 1", sum);
    return 0;
}

static int read_augment(const ctx *c, const yt_node *data, th_config *cfg)
{
    const char *P = "data.augment";
    const yt_node *v = yt_get(data, "augment"), *m = NULL;
    char d[64];
    int on;
    /* `augment: false` (or none) is every key at its default: no augmentation. */
    if (v && v->kind == YT_SCALAR) {
        if (!(parse_bool(v->str, &on) == 0 && !on) && strcmp(v->str, "none") != 0)
            return fail(c, v, P, NULL, "must be a mapping, or false/none for no augmentation, got %s",
                        yt_describe(v, d, sizeof d));
    } else if (section(c, data, P, &m)) {
        return -1;
    }
    float scale[2];
    if (read_bool(c, m, P, "hflip", 0, &cfg->data.augment.hflip) ||
        read_float(c, m, P, "rotate_deg", AT_LEAST(0), 0, &cfg->data.augment.rotate_deg) ||
        read_float(c, m, P, "shift", RIGHT_OPEN(0, 0.5), 0, &cfg->data.augment.shift) ||
        read_float_pair(c, m, P, "scale", ABOVE(0), 1, 1, scale) ||
        /* Fractions of the intensity range: a contrast of 1 or more could
         * invert an image, which no X-ray looks like. */
        read_float(c, m, P, "brightness", RIGHT_OPEN(0, 1), 0, &cfg->data.augment.brightness) ||
        read_float(c, m, P, "contrast", RIGHT_OPEN(0, 1), 0, &cfg->data.augment.contrast))
        return -1;
    if (scale[0] > scale[1])
        return fail(c, yt_get(m, "scale"), P, "scale", "must be [low, high] with low <= high, got [%g, %g]",
                    scale[0], scale[1]);
    cfg->data.augment.scale_lo = scale[0];
    cfg->data.augment.scale_hi = scale[1];
    return 0;
}

static int read_data(const ctx *c, const yt_node *root, th_config *cfg)
{
    const yt_node *m;
    int normalize, on_leak, cache;
    if (section(c, root, "data", &m) || require(c, m, "data", "path") ||
        read_str(c, m, "data", "path", "", cfg->data.path, sizeof cfg->data.path, 0) || read_labels(c, m, cfg) ||
        read_split(c, m, cfg) || read_enum(c, m, "data", "on_leak", on_leak_names, TH_ON_LEAK_ERROR, &on_leak) ||
        read_enum(c, m, "data", "normalize", normalize_names, TH_NORM_TRAINSET, &normalize) ||
        read_augment(c, m, cfg) || read_enum(c, m, "data", "cache", cache_names, TH_CACHE_AUTO, &cache))
        return -1;
    cfg->data.cache = (th_cache)cache;
    cfg->data.normalize = (th_normalize)normalize;
    cfg->data.on_leak = (th_on_leak)on_leak;
    return 0;
}

/* Layer names become tensor names (conv1.weight) and HDF5 paths, so they
 * keep to the characters PyTorch module names use. */
static int valid_layer_name(const char *s)
{
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") == strlen(s);
}

/* Batch-norm's settings, of a batchnorm layer or of every batch-norm in a block. */
static int read_bn(const ctx *c, const yt_node *v, const char *path, th_layer_spec *l)
{
    return read_float(c, v, path, "momentum", CLOSED(0, 1), 0.1, &l->momentum) ||
                   read_float(c, v, path, "eps", ABOVE(0), 1e-5, &l->eps)
               ? -1
               : 0;
}

/* from: a layer name or a list of them ("input" is the image). add and
 * concat need two or more. */
static int read_from(const ctx *c, const yt_node *v, const char *path, th_layer_spec *l)
{
    const yt_node *f = yt_get(v, "from");
    char d[64];
    int multi = l->type == TH_LAYER_ADD || l->type == TH_LAYER_CONCAT;
    if (!f) return multi ? fail(c, v, path, "from", "is required: the layers to %s, e.g. from: [a, b]",
                                l->type == TH_LAYER_ADD ? "add" : "concatenate")
                         : 0;
    if (f->kind == YT_MAP) return fail(c, f, path, "from", "must be a layer name or a list of them, got a mapping");
    int n = f->kind == YT_SEQ ? f->n : 1;
    if (n > TH_MAX_FROM) return fail(c, f, path, "from", "at most %d layers, got %d", TH_MAX_FROM, n);
    if (multi && n < 2) return fail(c, f, path, "from", "needs two or more layers, got %d", n);
    if (!multi && n != 1)
        return fail(c, f, path, "from", "a %s layer reads one layer, got %d", th_layer_type_name(l->type), n);
    for (int k = 0; k < n; k++) {
        const yt_node *it = f->kind == YT_SEQ ? f->vals[k] : f;
        if (it->kind != YT_SCALAR || yt_is_null(it) || !it->str[0])
            return fail(c, it, path, "from", "must name a layer, got %s", yt_describe(it, d, sizeof d));
        if (strlen(it->str) >= TH_NAME_MAX)
            return fail(c, it, path, "from", "'%s' is longer than %d characters", it->str, TH_NAME_MAX - 1);
        snprintf(l->from[k], sizeof l->from[k], "%s", it->str);
    }
    l->n_from = n;
    return 0;
}

static int read_layer(const ctx *c, const yt_node *v, int i, th_layer_spec *l)
{
    char path[32], d[64], problem[48];
    const char *types[TH_LAYER_TYPE_COUNT + 1] = {NULL};
    int type;
    snprintf(path, sizeof path, "model.layers[%d]", i);
    if (v->kind != YT_MAP)
        return fail(c, v, path, NULL, "must be a mapping such as {type: relu}, got %s", yt_describe(v, d, sizeof d));
    for (int t = 0; t < TH_LAYER_TYPE_COUNT; t++) types[t] = th_layer_type_name((th_layer_type)t);
    if (require(c, v, path, "type") || read_enum(c, v, path, "type", types, 0, &type)) return -1;
    snprintf(problem, sizeof problem, "not a key of %s %s layer", strchr("aeiou", types[type][0]) ? "an" : "a",
             types[type]);
    if (check_keys(c, v, path, layer_keys[type], problem)) return -1;

    l->type = (th_layer_type)type;
    /* A layer from --set has no line in the file. */
    l->line = v->set ? 0 : v->line;
    if (read_str(c, v, path, "name", "", l->name, sizeof l->name, 1)) return -1;
    if (!valid_layer_name(l->name))
        return fail(c, yt_get(v, "name"), path, "name", "must use only letters, digits, '_', '-' and '.', got '%s'",
                    l->name);
    if (!strcmp(l->name, "input")) return fail(c, yt_get(v, "name"), path, "name", "'input' names the image itself");
    if (read_from(c, v, path, l)) return -1;

    switch (l->type) {
    case TH_LAYER_CONV:
        return require(c, v, path, "out") || require(c, v, path, "k") ||
               read_int(c, v, path, "out", 1, DIM_MAX, 0, &l->out) ||
               read_int(c, v, path, "k", 1, DIM_MAX, 0, &l->k) ||
               read_int(c, v, path, "stride", 1, DIM_MAX, 1, &l->stride) ||
               read_int(c, v, path, "pad", 0, DIM_MAX, 0, &l->pad) || read_bool(c, v, path, "bias", 1, &l->bias)
                   ? -1
                   : 0;
    case TH_LAYER_MAXPOOL:
    case TH_LAYER_AVGPOOL:
        return require(c, v, path, "k") || read_int(c, v, path, "k", 1, DIM_MAX, 0, &l->k) ||
                       read_int(c, v, path, "stride", 1, DIM_MAX, l->k, &l->stride) ||
                       read_int(c, v, path, "pad", 0, DIM_MAX, 0, &l->pad)
                   ? -1
                   : 0;
    case TH_LAYER_RESBLOCK:
        return require(c, v, path, "out") || read_int(c, v, path, "out", 1, DIM_MAX, 0, &l->out) ||
                       read_int(c, v, path, "stride", 1, DIM_MAX, 1, &l->stride) || read_bn(c, v, path, l)
                   ? -1
                   : 0;
    case TH_LAYER_DENSEBLOCK:
        return require(c, v, path, "layers") || read_int(c, v, path, "layers", 1, 1024, 0, &l->layers) ||
                       read_int(c, v, path, "growth", 1, DIM_MAX, 32, &l->growth) ||
                       read_int(c, v, path, "bn_size", 1, 1024, 4, &l->bn_size) || read_bn(c, v, path, l)
                   ? -1
                   : 0;
    case TH_LAYER_TRANSITION:
        return require(c, v, path, "out") || read_int(c, v, path, "out", 1, DIM_MAX, 0, &l->out) ||
                       read_bn(c, v, path, l)
                   ? -1
                   : 0;
    case TH_LAYER_BATCHNORM: return read_bn(c, v, path, l);
    case TH_LAYER_DENSE: {
        const yt_node *out = yt_get(v, "out");
        long long x;
        if (require(c, v, path, "out")) return -1;
        if (out->kind == YT_SCALAR && strcmp(out->str, "labels") == 0) {
            l->out = TH_OUT_LABELS;
        } else if (out->kind != YT_SCALAR || parse_ll(out->str, &x)) {
            return fail(c, out, path, "out", "must be a number of outputs or 'labels', got %s",
                        yt_describe(out, d, sizeof d));
        } else if (read_int(c, v, path, "out", 1, DIM_MAX, 0, &l->out)) {
            return -1;
        }
        return read_bool(c, v, path, "bias", 1, &l->bias);
    }
    case TH_LAYER_DROPOUT:
        return read_float(c, v, path, "p", RIGHT_OPEN(0, 1), 0.5, &l->p);
    default:
        return 0;
    }
}

static int read_model(const ctx *c, const yt_node *root, th_config *cfg)
{
    th_model_spec *spec = &cfg->model;
    const yt_node *m, *in, *layers;
    char d[64];
    if (section(c, root, "model", &m) || require(c, m, "model", "input") || require(c, m, "model", "layers"))
        return -1;

    in = yt_get(m, "input");
    if (in->kind != YT_SEQ || in->n != 3)
        return fail(c, in, "model.input", NULL, "must be a list [C, H, W], got %s", yt_describe(in, d, sizeof d));
    long long dims[3];
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof key, "[%d]", i);
        if (node_int(c, in->vals[i], "model.input", key, 1, DIM_MAX, &dims[i])) return -1;
    }
    spec->c = (int)dims[0], spec->h = (int)dims[1], spec->w = (int)dims[2];

    layers = yt_get(m, "layers");
    if (layers->kind != YT_SEQ)
        return fail(c, layers, "model.layers", NULL, "must be a list of layers, got %s",
                    yt_describe(layers, d, sizeof d));
    if (layers->n == 0) return fail(c, layers, "model.layers", NULL, "must have at least one layer");
    if (layers->n > TH_MAX_LAYERS)
        return fail(c, layers, "model.layers", NULL, "at most %d layers, got %d", TH_MAX_LAYERS, layers->n);
    for (int i = 0; i < layers->n; i++) {
        if (read_layer(c, layers->vals[i], i, &spec->layers[i])) return -1;
        for (int j = 0; spec->layers[i].name[0] && j < i; j++) {
            if (strcmp(spec->layers[i].name, spec->layers[j].name) == 0) {
                char path[32];
                snprintf(path, sizeof path, "model.layers[%d]", i);
                return fail(c, yt_get(layers->vals[i], "name"), path, "name",
                            "'%s' is already the name of model.layers[%d]", spec->layers[i].name, j);
            }
        }
    }
    spec->n_layers = layers->n;

    /* The network is checked against its input and labels by the run
     * (th_run_config_check, in train), which knows the layers; it reports
     * from here: the override that wrote the list, or the file (each layer
     * carries its own line). */
    yt_where(layers->set ? layers : NULL, c->file, cfg->at.layers, sizeof cfg->at.layers);
    return 0;
}

static int read_optimizer(const ctx *c, const yt_node *train, th_config *cfg)
{
    const char *P = "train.optimizer";
    th_optim_config *o = &cfg->train.optimizer;
    const yt_node *m;
    int type;
    float betas[2];
    if (section(c, train, P, &m) || read_enum(c, m, P, "type", th_optim_names, TH_OPTIM_SGD, &type)) return -1;
    o->type = (th_optim_type)type;
    if (read_float(c, m, P, "lr", ABOVE(0), o->type == TH_OPTIM_ADAM ? 1e-3 : 1e-2, &o->lr) ||
        read_float(c, m, P, "momentum", RIGHT_OPEN(0, 1), 0.9, &o->momentum) ||
        read_bool(c, m, P, "nesterov", 0, &o->nesterov) ||
        read_float(c, m, P, "weight_decay", AT_LEAST(0), 0, &o->weight_decay) ||
        read_float_pair(c, m, P, "betas", RIGHT_OPEN(0, 1), 0.9, 0.999, betas) ||
        read_float(c, m, P, "eps", ABOVE(0), 1e-8, &o->eps))
        return -1;
    o->beta1 = betas[0];
    o->beta2 = betas[1];
    /* As in PyTorch: Nesterov's look-ahead is along the momentum buffer. */
    if (o->type == TH_OPTIM_SGD && o->nesterov && o->momentum <= 0)
        return fail(c, yt_get(m, "nesterov"), P, "nesterov", "needs momentum > 0, got momentum %g", o->momentum);
    return 0;
}

static int read_schedule(const ctx *c, const yt_node *train, th_config *cfg)
{
    const char *P = "train.schedule";
    const yt_node *m;
    int type;
    if (section(c, train, P, &m) || read_enum(c, m, P, "type", schedule_names, TH_SCHED_CONSTANT, &type)) return -1;
    cfg->train.schedule.type = (th_schedule_type)type;
    if (read_float(c, m, P, "factor", OPEN(0, 1), type == TH_SCHED_PLATEAU ? 0.5 : 0.1, &cfg->train.schedule.factor) ||
        read_int(c, m, P, "patience", 0, INT_MAX, 2, &cfg->train.schedule.patience) ||
        read_int(c, m, P, "step_epochs", 1, INT_MAX, 10, &cfg->train.schedule.step_epochs) ||
        read_int(c, m, P, "warmup_epochs", 0, INT_MAX, 0, &cfg->train.schedule.warmup_epochs) ||
        read_float(c, m, P, "min_lr", AT_LEAST(0), 0, &cfg->train.schedule.min_lr))
        return -1;
    if (cfg->train.schedule.min_lr > cfg->train.optimizer.lr)
        return fail(c, yt_get(m, "min_lr"), P, "min_lr", "must not exceed the learning rate %g, got %g",
                    cfg->train.optimizer.lr, cfg->train.schedule.min_lr);
    return 0;
}

/* model.init: a path, checked when training starts (th_checkpoint_init_params). */
static int read_model_init(const ctx *c, const yt_node *root, th_config *cfg)
{
    return read_str(c, yt_get(root, "model"), "model", "init", "", cfg->model_init, sizeof cfg->model_init, 1);
}

int th_config_freeze_matches(const char *entry, const char *name)
{
    size_t n = strlen(entry);
    return n > 0 && !strncmp(entry, name, n) && (name[n] == '\0' || name[n] == '.');
}

int th_config_freezes(const th_config *cfg, const char *name)
{
    for (int k = 0; k < cfg->train.n_freeze; k++)
        if (th_config_freeze_matches(cfg->train.freeze[k], name)) return 1;
    return 0;
}

/* train.freeze: a list of layer names or prefixes (a single name is a list of one). */
static int read_freeze(const ctx *c, const yt_node *train, th_config *cfg)
{
    const yt_node *v = yt_get(train, "freeze");
    char d[64];
    cfg->train.n_freeze = 0;
    if (!v) return 0;
    if (v->kind == YT_MAP)
        return fail(c, v, "train.freeze", NULL, "must be a list of layer names, got a mapping");
    int n = v->kind == YT_SEQ ? v->n : 1;
    if (n > TH_MAX_FREEZE) return fail(c, v, "train.freeze", NULL, "at most %d entries, got %d", TH_MAX_FREEZE, n);
    for (int i = 0; i < n; i++) {
        const yt_node *it = v->kind == YT_SEQ ? v->vals[i] : v;
        char key[16] = "";
        if (v->kind == YT_SEQ) snprintf(key, sizeof key, "[%d]", i);
        if (it->kind != YT_SCALAR || yt_is_null(it))
            return fail(c, it, "train.freeze", key, "must be a layer name, got %s", yt_describe(it, d, sizeof d));
        size_t len = strlen(it->str);
        if (len >= TH_NAME_MAX)
            return fail(c, it, "train.freeze", key, "is %zu characters long, at most %d are allowed", len,
                        TH_NAME_MAX - 1);
        for (int j = 0; j < i; j++)
            if (strcmp(cfg->train.freeze[j], it->str) == 0)
                return fail(c, it, "train.freeze", key, "'%s' is listed twice", it->str);
        memcpy(cfg->train.freeze[i], it->str, len + 1);
        yt_where(it, c->file, cfg->at.freeze_item[i], sizeof cfg->at.freeze_item[i]);
    }
    /* Whether each entry matches a layer is the run's check (th_run_config_check). */
    yt_where(v, c->file, cfg->at.freeze, sizeof cfg->at.freeze);
    cfg->at.freeze_listed = v->kind == YT_SEQ;
    cfg->train.n_freeze = n;
    return 0;
}

/* train.unfreeze: {epoch: E, lr: X}, the second stage of a fine-tuning. */
static int read_unfreeze(const ctx *c, const yt_node *train, th_config *cfg)
{
    const char *P = "train.unfreeze";
    const yt_node *v = yt_get(train, "unfreeze"), *m;
    cfg->train.unfreeze.epoch = 0;
    cfg->train.unfreeze.lr = 0;
    if (!v) return 0;
    if (section(c, train, P, &m) || require(c, m, P, "epoch") ||
        read_int(c, m, P, "epoch", 1, INT_MAX, 0, &cfg->train.unfreeze.epoch) ||
        read_float(c, m, P, "lr", ABOVE(0), cfg->train.optimizer.lr, &cfg->train.unfreeze.lr))
        return -1;
    if (cfg->train.n_freeze == 0)
        return fail(c, v, P, NULL, "needs train.freeze: with no layer frozen there is nothing to unfreeze");
    if (cfg->train.unfreeze.epoch >= cfg->train.epochs)
        return fail(c, yt_get(m, "epoch"), P, "epoch",
                    "must be below train.epochs (%d), got %d: the second stage would never run", cfg->train.epochs,
                    cfg->train.unfreeze.epoch);
    if (cfg->train.unfreeze.lr < cfg->train.schedule.min_lr)
        return fail(c, yt_get(m, "lr") ? yt_get(m, "lr") : m, P, "lr",
                    "must not be below train.schedule.min_lr %g, got %g", cfg->train.schedule.min_lr,
                    cfg->train.unfreeze.lr);
    return 0;
}

static int read_train(const ctx *c, const yt_node *root, th_config *cfg)
{
    const yt_node *m, *early;
    int loss;
    if (section(c, root, "train", &m) || read_int(c, m, "train", "epochs", 1, INT_MAX, 10, &cfg->train.epochs) ||
        read_int(c, m, "train", "batch_per_rank", 1, INT_MAX, 16, &cfg->train.batch_per_rank) ||
        read_optimizer(c, m, cfg) || read_schedule(c, m, cfg) ||
        read_enum(c, m, "train", "loss", th_loss_names, TH_LOSS_WEIGHTED_BCE, &loss) ||
        section(c, m, "train.early_stop", &early) ||
        read_int(c, early, "train.early_stop", "patience", 0, INT_MAX, 0, &cfg->train.early_stop_patience) ||
        read_freeze(c, m, cfg) || read_unfreeze(c, m, cfg))
        return -1;
    cfg->train.loss = (th_loss_type)loss;
    return 0;
}

static int read_eval(const ctx *c, const yt_node *root, th_config *cfg)
{
    const yt_node *m, *cam;
    int split, method;
    if (section(c, root, "eval", &m) || read_enum(c, m, "eval", "split", eval_split_names, 1, &split) ||
        section(c, m, "eval.cam", &cam) || read_enum(c, cam, "eval.cam", "method", cam_method_names, 1, &method) ||
        read_int(c, cam, "eval.cam", "top_k", 0, INT_MAX, 8, &cfg->eval.cam_top_k))
        return -1;
    snprintf(cfg->eval.split, sizeof cfg->eval.split, "%s", eval_split_names[split]);
    snprintf(cfg->eval.cam_method, sizeof cfg->eval.cam_method, "%s", cam_method_names[method]);
    return 0;
}

/* The default gradient bucket: the reference network (configs/reference.yaml)
 * has about 396k parameters, 1.5 MiB of gradients, of which conv5 and fc, the
 * first to finish in backward, hold 1.14 MiB. PyTorch's 25 MiB would make that
 * one bucket sent after backward, overlapping nothing; 0.5 MiB sends conv5+fc
 * while conv4..conv1 (three quarters of backward's FLOPs) still run, and the
 * rest after, in two messages, so per-message latency stays negligible. */
#define DEFAULT_BUCKET_MB 0.5

static int read_runtime(const ctx *c, const yt_node *root, th_config *cfg)
{
    const yt_node *m;
    return section(c, root, "runtime", &m) ||
                   read_str(c, m, "runtime", "out_dir", "runs", cfg->runtime.out_dir, sizeof cfg->runtime.out_dir, 0) ||
                   read_int(c, m, "runtime", "threads_per_rank", 1, INT_MAX, 1, &cfg->runtime.threads_per_rank) ||
                   read_float(c, m, "runtime", "allreduce_bucket_mb", AT_LEAST(0), DEFAULT_BUCKET_MB,
                              &cfg->runtime.allreduce_bucket_mb)
               ? -1
               : 0;
}

static int read_config(const ctx *c, const yt_node *root, th_config *cfg)
{
    const yt_node *seed = yt_get(root, "seed");
    long long s = 42;
    if (check_keys(c, root, "", root_keys, "unknown key") ||
        read_str(c, root, "", "name", c->default_name, cfg->name, sizeof cfg->name, 0))
        return -1;
    /* The name is the run's directory under runtime.out_dir. */
    if (strchr(cfg->name, '/') || strcmp(cfg->name, ".") == 0 || strcmp(cfg->name, "..") == 0)
        return fail(c, yt_get(root, "name") ? yt_get(root, "name") : root, "", "name",
                    "must be usable as a directory name, got '%s'", cfg->name);
    if (seed && node_int(c, seed, "", "seed", 0, LLONG_MAX, &s)) return -1;
    cfg->seed = (uint64_t)s;
    return read_data(c, root, cfg) || read_model(c, root, cfg) || read_model_init(c, root, cfg) ||
                   read_train(c, root, cfg) ||
                   read_eval(c, root, cfg) || read_runtime(c, root, cfg)
               ? -1
               : 0;
}

/* ---- Overrides ------------------------------------------------------------- */

/* Grafts one "a.b[2].c=value" onto the tree. The path is checked against the
 * schema first, so a typo fails here instead of creating a key that the walk
 * would then report without saying it came from the command line. */
static int apply_set(const ctx *c, yt_node *root, const char *set)
{
    /* schema is the walked path with "[]" for indices, to look up sections;
     * key[0..done) is the same path as written, for messages. */
    char label[600], key[KEY_MAX], schema[2 * KEY_MAX] = "";
    size_t done = 0;
    const char *eq = strchr(set, '=');
    snprintf(label, sizeof label, "--set %s", set);
    if (!eq || eq == set) return th_errf(c->err, "%s: expected key=value", label);
    if ((size_t)(eq - set) >= sizeof key) return th_errf(c->err, "%s: the key is too long", label);
    memcpy(key, set, (size_t)(eq - set));
    key[eq - set] = 0;

    yt_node *value;
    if (yt_parse(c->tree, eq + 1, strlen(eq + 1), c->file, label, key, &value, c->err)) return -1;
    const char *tag = value->set; /* the tree's copy of label */

    yt_node **slot = &root;
    const char *p = key;
    while (*p) {
        size_t ns = strlen(schema);
        const char *shown = done ? key : "the top level";
        int shown_len = done ? (int)done : (int)strlen(shown);
        if (*p == '[') {
            char *end;
            long i = strtol(p + 1, &end, 10);
            if (!isdigit((unsigned char)p[1]) || *end != ']')
                return th_errf(c->err, "%s: bad list index in '%s'", label, key);
            yt_node *seq = *slot;
            if (!seq || seq->kind != YT_SEQ)
                return th_errf(c->err, "%s: %.*s is not a list", label, shown_len, shown);
            if (i >= seq->n)
                return th_errf(c->err, "%s: %.*s has %d items, there is no [%ld]", label, shown_len, shown,
                               seq->n, i);
            slot = &seq->vals[i];
            snprintf(schema + ns, sizeof schema - ns, "[]");
            p = end + 1;
        } else {
            char name[KEY_MAX];
            size_t n = strcspn(p, ".[");
            if (n == 0) return th_errf(c->err, "%s: empty key in '%s'", label, key);
            memcpy(name, p, n);
            name[n] = 0;
            const char *const *keys = section_keys(schema);
            if (!keys)
                return th_errf(c->err, "%s: %.*s is a single value, it has no key '%s'", label, shown_len, shown,
                               name);
            if (word_index(name, keys) < 0) {
                const char *near = th_config_nearest(name, keys);
                char hint[KEY_MAX + 24], list[200];
                join_words(list, sizeof list, keys, ", ");
                if (near)
                    snprintf(hint, sizeof hint, " (did you mean '%s'?)", near);
                else
                    snprintf(hint, sizeof hint, " (expected one of: %s)", list);
                return th_errf(c->err, "%s: unknown key '%s' %s%.*s%s", label, name, done ? "in " : "at ",
                               shown_len, shown, hint);
            }
            /* The override wins over whatever the file had here, even a scalar
             * (`--set data.augment.hflip=true` over `augment: false`). */
            if (!*slot || (*slot)->kind != YT_MAP) *slot = yt_new_map(c->tree, 0, tag);
            if (!*slot || !(slot = yt_map_slot(c->tree, *slot, name, tag)))
                return th_errf(c->err, "%s: out of memory", label);
            snprintf(schema + ns, sizeof schema - ns, "%s%s", ns ? "." : "", name);
            p += n;
        }
        done = (size_t)(p - key);
        if (*p == '.' && (!p[1] || p[1] == '.' || p[1] == '['))
            return th_errf(c->err, "%s: empty key in '%s'", label, key);
        if (*p == '.') p++;
    }
    *slot = value;
    return 0;
}

/* ---- Loading --------------------------------------------------------------- */

/* "configs/quickstart.yaml" -> "quickstart". */
static void base_name(const char *path, char *buf, size_t cap)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    snprintf(buf, cap, "%.*s", (int)(n < cap ? n : cap - 1), base);
}

static int load(th_config *cfg, const char *text, size_t len, const char *source, const char *default_name,
                const char *const *sets, int n_sets, th_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    if (strlen(source) >= sizeof cfg->source) return th_errf(err, "%.200s...: the file name is too long", source);
    if (len > (size_t)TH_CONFIG_MAX_BYTES)
        return th_errf(err, "%s: larger than %ld bytes (%ld MiB), the limit of a configuration: the wrong file?",
                       source, (long)TH_CONFIG_MAX_BYTES, (long)TH_CONFIG_MAX_BYTES >> 20);
    memcpy(cfg->source, source, strlen(source) + 1);

    yt_tree tree = {0};
    ctx c = {.file = source, .default_name = default_name, .tree = &tree, .err = err};
    yt_node *root;
    char d[64];
    int rc = yt_parse(&tree, text, len, source, NULL, "", &root, err);
    /* An empty file is an empty mapping, which overrides may still fill. */
    if (rc == 0 && yt_is_null(root) && !(root = yt_new_map(&tree, 1, NULL))) rc = th_errf(err, "out of memory");
    if (rc == 0 && root->kind != YT_MAP)
        rc = fail(&c, root, "", NULL, "the top level must be a mapping of keys (name:, data:, model: ...), got %s",
                  yt_describe(root, d, sizeof d));
    for (int i = 0; rc == 0 && i < n_sets; i++) rc = apply_set(&c, root, sets[i]);
    if (rc == 0) rc = read_config(&c, root, cfg);
    yt_free(&tree);
    return rc;
}

int th_config_load_string(th_config *cfg, const char *yaml, const char *name, const char *const *sets, int n_sets,
                          th_err *err)
{
    char def[TH_PATH_MAX] = "config";
    if (name) base_name(name, def, sizeof def);
    return load(cfg, yaml, strlen(yaml), name ? name : "<string>", def, sets, n_sets, err);
}

/* Reads at most TH_CONFIG_MAX_BYTES + 1 bytes: enough for load() to tell a
 * file over the limit, without reading a wrong multi-gigabyte one whole. */
static int read_file(const char *path, char **text, size_t *len, th_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return th_errf(err, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            if (cap > (size_t)TH_CONFIG_MAX_BYTES) break;
            cap = cap ? 2 * cap : 8192;
            if (cap > (size_t)TH_CONFIG_MAX_BYTES) cap = (size_t)TH_CONFIG_MAX_BYTES + 1;
            char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(f);
                return th_errf(err, "%s: out of memory reading it", path);
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int failed = ferror(f);
    int saved = errno;
    fclose(f);
    if (failed) {
        free(buf);
        return th_errf(err, "%s: cannot read: %s", path, strerror(saved));
    }
    *text = buf;
    *len = n;
    return 0;
}

int th_config_load(th_config *cfg, const char *path, const char *const *sets, int n_sets, th_err *err)
{
    char def[TH_PATH_MAX], *text = NULL;
    size_t len = 0;
    memset(cfg, 0, sizeof *cfg);
    if (read_file(path, &text, &len, err)) return -1;
    base_name(path, def, sizeof def);
    int rc = load(cfg, text, len, path, def, sets, n_sets, err);
    free(text);
    return rc;
}

/* ---- The resolved YAML ---------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    if (b->failed) return;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Plain when a YAML reader cannot take it for anything but this string:
 * starts with a letter, '_' or '/', no indicators, not a bool or null word. */
static int plain_safe(const char *s)
{
    static const char *const words[] = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", NULL};
    if (!isalpha((unsigned char)s[0]) && s[0] != '_' && s[0] != '/') return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_-./", *p)) return 0;
    for (int i = 0; words[i]; i++)
        if (strcasecmp(s, words[i]) == 0) return 0;
    return 1;
}

static void put_str(sbuf *b, const char *s)
{
    if (plain_safe(s)) {
        put(b, "%s", s);
        return;
    }
    put(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            put(b, "\\%c", *p);
        else if (*p == '\n')
            put(b, "\\n");
        else if (*p == '\t')
            put(b, "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            put(b, "\\x%02x", *p);
        else
            put(b, "%c", *p);
    }
    put(b, "\"");
}

/* The shortest %g text that reads back as the same value, so the file is
 * both readable (0.05, not 0.0500000007) and exact. */
static void put_real(sbuf *b, double v, int is_float)
{
    char s[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        double back = strtod(s, NULL);
        if (is_float ? (float)back == (float)v : back == v) break;
    }
    /* YAML 1.1 readers (PyYAML) take 1e-08 for a string; 1.0e-08 is a float to all. */
    char *e = strchr(s, 'e');
    if (e && !memchr(s, '.', (size_t)(e - s)))
        put(b, "%.*s.0%s", (int)(e - s), s, e);
    else
        put(b, "%s", s);
}

static void line_str(sbuf *b, const char *key, const char *s)
{
    put(b, "%s: ", key);
    put_str(b, s);
    put(b, "\n");
}

static void line_float(sbuf *b, const char *key, float v)
{
    put(b, "%s: ", key);
    put_real(b, v, 1);
    put(b, "\n");
}

static void line_pair(sbuf *b, const char *key, float x, float y)
{
    put(b, "%s: [", key);
    put_real(b, x, 1);
    put(b, ", ");
    put_real(b, y, 1);
    put(b, "]\n");
}

static const char *enum_name(const char *const *names, int v)
{
    for (int i = 0; names[i]; i++)
        if (i == v) return names[i];
    return "invalid";
}

static void put_bn(sbuf *b, const th_layer_spec *l)
{
    put(b, ", momentum: ");
    put_real(b, l->momentum, 1);
    put(b, ", eps: ");
    put_real(b, l->eps, 1);
}

static void put_layer(sbuf *b, const th_layer_spec *l)
{
    put(b, "    - {type: %s", th_layer_type_name(l->type));
    if (l->name[0]) {
        put(b, ", name: ");
        put_str(b, l->name);
    }
    for (int k = 0; k < l->n_from; k++) {
        put(b, k == 0 ? ", from: [" : ", ");
        put_str(b, l->from[k]);
        if (k == l->n_from - 1) put(b, "]");
    }
    switch (l->type) {
    case TH_LAYER_CONV:
        put(b, ", out: %d, k: %d, stride: %d, pad: %d, bias: %s", l->out, l->k, l->stride, l->pad,
            l->bias ? "true" : "false");
        break;
    case TH_LAYER_MAXPOOL:
        put(b, ", k: %d, stride: %d, pad: %d", l->k, l->stride, l->pad);
        break;
    case TH_LAYER_AVGPOOL:
        put(b, ", k: %d, stride: %d", l->k, l->stride);
        break;
    case TH_LAYER_RESBLOCK:
        put(b, ", out: %d, stride: %d", l->out, l->stride);
        put_bn(b, l);
        break;
    case TH_LAYER_DENSEBLOCK:
        put(b, ", layers: %d, growth: %d, bn_size: %d", l->layers, l->growth, l->bn_size);
        put_bn(b, l);
        break;
    case TH_LAYER_TRANSITION:
        put(b, ", out: %d", l->out);
        put_bn(b, l);
        break;
    case TH_LAYER_BATCHNORM:
        put_bn(b, l);
        break;
    case TH_LAYER_DENSE:
        if (l->out == TH_OUT_LABELS)
            put(b, ", out: labels");
        else
            put(b, ", out: %d", l->out);
        put(b, ", bias: %s", l->bias ? "true" : "false");
        break;
    case TH_LAYER_DROPOUT:
        put(b, ", p: ");
        put_real(b, l->p, 1);
        break;
    default:
        break;
    }
    put(b, "}\n");
}

char *th_config_to_yaml(const th_config *cfg)
{
    sbuf b = {0};
    const th_optim_config *o = &cfg->train.optimizer;

    put(&b, "# Resolved configuration: every default filled in.\n");
    line_str(&b, "name", cfg->name);
    put(&b, "seed: %llu\n", (unsigned long long)cfg->seed);

    put(&b, "data:\n");
    line_str(&b, "  path", cfg->data.path);
    put(&b, "  labels: [");
    for (int i = 0; i < cfg->data.n_labels; i++) {
        put(&b, "%s", i ? ", " : "");
        put_str(&b, cfg->data.labels[i]);
    }
    put(&b, "]%s\n", cfg->data.n_labels ? "" : "   # every label in the file");
    if (cfg->data.split_mode == TH_SPLIT_MODE_PREDEFINED) {
        put(&b, "  split: predefined\n");
    } else {
        put(&b, "  split: {train: ");
        put_real(&b, cfg->data.train, 0);
        put(&b, ", val: ");
        put_real(&b, cfg->data.val, 0);
        put(&b, ", test: ");
        put_real(&b, cfg->data.test, 0);
        put(&b, "}\n");
    }
    put(&b, "  on_leak: %s\n", enum_name(on_leak_names, cfg->data.on_leak));
    put(&b, "  normalize: %s\n", enum_name(normalize_names, cfg->data.normalize));
    put(&b, "  cache: %s\n", enum_name(cache_names, cfg->data.cache));
    put(&b, "  augment:\n");
    put(&b, "    hflip: %s\n", cfg->data.augment.hflip ? "true" : "false");
    line_float(&b, "    rotate_deg", cfg->data.augment.rotate_deg);
    line_float(&b, "    shift", cfg->data.augment.shift);
    line_pair(&b, "    scale", cfg->data.augment.scale_lo, cfg->data.augment.scale_hi);
    line_float(&b, "    brightness", cfg->data.augment.brightness);
    line_float(&b, "    contrast", cfg->data.augment.contrast);

    put(&b, "model:\n");
    put(&b, "  input: [%d, %d, %d]\n", cfg->model.c, cfg->model.h, cfg->model.w);
    if (cfg->model_init[0]) line_str(&b, "  init", cfg->model_init);
    else put(&b, "  init: null   # the seed's random initialisation\n");
    put(&b, "  layers:\n");
    for (int i = 0; i < cfg->model.n_layers; i++) put_layer(&b, &cfg->model.layers[i]);

    put(&b, "train:\n");
    put(&b, "  epochs: %d\n", cfg->train.epochs);
    put(&b, "  batch_per_rank: %d\n", cfg->train.batch_per_rank);
    put(&b, "  optimizer:\n");
    put(&b, "    type: %s\n", enum_name(th_optim_names, o->type));
    line_float(&b, "    lr", o->lr);
    line_float(&b, "    momentum", o->momentum);
    put(&b, "    nesterov: %s\n", o->nesterov ? "true" : "false");
    line_float(&b, "    weight_decay", o->weight_decay);
    line_pair(&b, "    betas", o->beta1, o->beta2);
    line_float(&b, "    eps", o->eps);
    put(&b, "  schedule:\n");
    put(&b, "    type: %s\n", enum_name(schedule_names, cfg->train.schedule.type));
    line_float(&b, "    factor", cfg->train.schedule.factor);
    put(&b, "    patience: %d\n", cfg->train.schedule.patience);
    put(&b, "    step_epochs: %d\n", cfg->train.schedule.step_epochs);
    put(&b, "    warmup_epochs: %d\n", cfg->train.schedule.warmup_epochs);
    line_float(&b, "    min_lr", cfg->train.schedule.min_lr);
    put(&b, "  loss: %s\n", enum_name(th_loss_names, cfg->train.loss));
    put(&b, "  early_stop:\n");
    put(&b, "    patience: %d\n", cfg->train.early_stop_patience);
    put(&b, "  freeze: [");
    for (int i = 0; i < cfg->train.n_freeze; i++) {
        put(&b, "%s", i ? ", " : "");
        put_str(&b, cfg->train.freeze[i]);
    }
    put(&b, "]\n");
    if (cfg->train.unfreeze.epoch > 0) {
        put(&b, "  unfreeze: {epoch: %d, lr: ", cfg->train.unfreeze.epoch);
        put_real(&b, cfg->train.unfreeze.lr, 1);
        put(&b, "}\n");
    } else {
        put(&b, "  unfreeze: null\n");
    }

    put(&b, "eval:\n");
    line_str(&b, "  split", cfg->eval.split);
    put(&b, "  cam:\n");
    line_str(&b, "    method", cfg->eval.cam_method);
    put(&b, "    top_k: %d\n", cfg->eval.cam_top_k);

    put(&b, "runtime:\n");
    line_str(&b, "  out_dir", cfg->runtime.out_dir);
    put(&b, "  threads_per_rank: %d\n", cfg->runtime.threads_per_rank);
    line_float(&b, "  allreduce_bucket_mb", cfg->runtime.allreduce_bucket_mb);

    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

int th_config_name_labels(th_config *cfg, const char *const *names, const int *col, int n, th_err *err)
{
    if (n > TH_MAX_LABELS) return th_errf(err, "data.labels: %d labels, at most %d are supported", n, TH_MAX_LABELS);
    for (int k = 0; k < n; k++) {
        const char *name = names[col[k]];
        if (strlen(name) >= sizeof cfg->data.labels[k])
            return th_errf(err, "data.labels: label '%s' is longer than %zu characters", name,
                           sizeof cfg->data.labels[k] - 1);
        snprintf(cfg->data.labels[k], sizeof cfg->data.labels[k], "%s", name);
    }
    cfg->data.n_labels = n;
    return 0;
}

/* --- Comparing two configs (resume) -----------------------------------------
 * Both are emitted as resolved YAML and read back as (dotted key, value) pairs,
 * so the comparison covers every key the emitter knows, defaults included, and
 * names the first difference the way a user would write the key. */

typedef struct {
    char key[192];
    const char *value; /* points into the YAML text; ends at the newline */
    int len;
} flat_entry;

/* Appends ".part" (or "part" to an empty key), cutting at the buffer's end. */
static void key_append(char *key, size_t cap, const char *part)
{
    size_t len = strlen(key);
    if (len + 1 < cap) snprintf(key + len, cap - len, "%s%s", len && part[0] != '[' ? "." : "", part);
}

/* Flattens the emitter's block YAML: "data:" / "  path: x" -> "data.path",
 * "    - {type: conv ...}" under layers -> "model.layers[3]". */
static int flatten(char *yaml, flat_entry *out, int cap)
{
    char stack[8][64] = {{0}};
    int items[8] = {0}, n = 0;
    for (char *line = yaml; line && *line && n < cap;) {
        char *end = strchr(line, '\n');
        int len = end ? (int)(end - line) : (int)strlen(line);
        int indent = 0;
        while (indent < len && line[indent] == ' ') indent++;
        int depth = indent / 2;
        if (len > indent && line[indent] != '#' && depth < 7) {
            flat_entry *e = &out[n];
            e->key[0] = '\0';
            for (int d = 0; d < depth && d < 7; d++)
                if (stack[d][0]) key_append(e->key, sizeof e->key, stack[d]);
            const char *body = line + indent;
            if (!strncmp(body, "- ", 2)) {
                /* A list item: indexed under the key above it. */
                char idx[24];
                snprintf(idx, sizeof idx, "[%d]", items[depth - 1 >= 0 ? depth - 1 : 0]++);
                key_append(e->key, sizeof e->key, idx);
                e->value = body + 2;
                e->len = len - indent - 2;
                n++;
            } else {
                const char *colon = memchr(body, ':', (size_t)(len - indent));
                int klen = colon ? (int)(colon - body) : len - indent;
                snprintf(stack[depth], sizeof stack[depth], "%.*s", klen < 63 ? klen : 63, body);
                for (int d = depth + 1; d < 8; d++) stack[d][0] = '\0';
                items[depth] = 0;
                key_append(e->key, sizeof e->key, stack[depth]);
                const char *v = colon ? colon + 1 : body + klen;
                while (*v == ' ' && v < line + len) v++;
                e->value = v;
                e->len = (int)(line + len - v);
                /* A bare "section:" line carries no value of its own. */
                if (e->len > 0) n++;
            }
        }
        line = end ? end + 1 : NULL;
    }
    return n;
}

static int in_sections(const char *key, const char *const *which)
{
    for (; *which; which++) {
        size_t k = strlen(*which);
        if (!strncmp(key, *which, k) && (key[k] == '\0' || key[k] == '.' || key[k] == '[')) return 1;
    }
    return 0;
}

int th_config_compare(const th_config *was, const th_config *now, const char *const *which, th_err *err)
{
    enum { CAP = 4096 };
    char *a = th_config_to_yaml(was), *b = th_config_to_yaml(now);
    flat_entry *ea = malloc(sizeof *ea * CAP), *eb = malloc(sizeof *eb * CAP);
    int rc = 0;
    if (!a || !b || !ea || !eb) {
        rc = th_errf(err, "out of memory comparing configs");
        goto out;
    }
    int na = flatten(a, ea, CAP), nb = flatten(b, eb, CAP), i = 0, j = 0;
    for (;;) {
        while (i < na && !in_sections(ea[i].key, which)) i++;
        while (j < nb && !in_sections(eb[j].key, which)) j++;
        if (i == na && j == nb) break;
        if (i < na && j < nb && !strcmp(ea[i].key, eb[j].key) && ea[i].len == eb[j].len &&
            !memcmp(ea[i].value, eb[j].value, (size_t)ea[i].len)) {
            i++, j++;
            continue;
        }
        /* Both come from one emitter, so keys line up until a list differs in length. */
        if (i < na && j < nb && !strcmp(ea[i].key, eb[j].key))
            rc = th_errf(err, "%s: was %.*s, now %.*s", ea[i].key, ea[i].len, ea[i].value, eb[j].len, eb[j].value);
        else if (j < nb)
            rc = th_errf(err, "%s: was absent, now %.*s", eb[j].key, eb[j].len, eb[j].value);
        else
            rc = th_errf(err, "%s: was %.*s, now absent", ea[i].key, ea[i].len, ea[i].value);
        break;
    }
out:
    free(a);
    free(b);
    free(ea);
    free(eb);
    return rc;
}

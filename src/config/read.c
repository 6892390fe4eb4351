/* read.c - the walk of a YAML tree against the schema into a th_config:
 * typed readers for scalars (integers, numbers, booleans, enums, strings)
 * with their ranges, then one reader per section.
 *
 * Every message has the form "<where>: <dotted.key>: <problem>", where
 * <where> is "file:line" or the "--set a.b=v" the value came from.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_impl.h"

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

int cfg_fail(const ctx *c, const yt_node *at, const char *path, const char *key, const char *fmt, ...)
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
        return cfg_fail(c, v, path, key, "must be an integer, got %s", yt_describe(v, d, sizeof d));
    if (*out >= lo && *out <= hi) return 0;
    if (hi < INT_MAX) return cfg_fail(c, v, path, key, "must be in [%lld, %lld], got %s", lo, hi, v->str);
    if (*out < lo) return cfg_fail(c, v, path, key, "must be >= %lld, got %s", lo, v->str);
    return cfg_fail(c, v, path, key, "must be at most %lld, got %s", hi, v->str);
}

/* as_float rounds to float before the bounds check, so that what is checked
 * is what the struct will hold (1e-50 is not a positive float). */
static int node_num(const ctx *c, const yt_node *v, const char *path, const char *key, bounds b, int as_float,
                    double *out)
{
    char d[64], r[64];
    if (v->kind != YT_SCALAR || parse_double(v->str, out))
        return cfg_fail(c, v, path, key, "must be a number, got %s", yt_describe(v, d, sizeof d));
    if (as_float) {
        float f = (float)*out;
        if (isinf(f)) return cfg_fail(c, v, path, key, "is too large, got %s", v->str);
        *out = f;
    }
    if (in_bounds(b, *out)) return 0;
    bounds_text(b, r, sizeof r);
    return cfg_fail(c, v, path, key, "must be %s, got %s", r, v->str);
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
        return cfg_fail(c, v, full, NULL, "must be a list of two numbers, got %s", yt_describe(v, d, sizeof d));
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
        return cfg_fail(c, v, path, key, "must be true or false, got %s", yt_describe(v, d, sizeof d));
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
    if (v->kind == YT_SCALAR && (*out = cfg_word_index(v->str, names)) >= 0) return 0;
    const char *near = v->kind == YT_SCALAR ? th_config_nearest(v->str, names) : NULL;
    if (near) snprintf(hint, sizeof hint, " (did you mean '%s'?)", near);
    cfg_join_words(list, sizeof list, names, ", ");
    return cfg_fail(c, v, path, key, "must be one of %s; got %s%s", list, yt_describe(v, d, sizeof d), hint);
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
        return cfg_fail(c, v, path, key, "must be a string, got %s", yt_describe(v, d, sizeof d));
    if (v) s = v->str;
    size_t n = strlen(s);
    if (n >= cap) return cfg_fail(c, at, path, key, "is %zu characters long, at most %zu are allowed", n, cap - 1);
    if (n == 0 && !may_be_empty) return cfg_fail(c, at, path, key, "must not be empty");
    memcpy(buf, s, n + 1);
    return 0;
}

static int require(const ctx *c, const yt_node *m, const char *path, const char *key)
{
    return yt_get(m, key) ? 0 : cfg_fail(c, m, path, key, "is required");
}

/* ---- Mappings ------------------------------------------------------------ */

/* Rejects keys of m not in keys, naming the nearest known key. */
static int check_keys(const ctx *c, const yt_node *m, const char *path, const char *const *keys, const char *problem)
{
    for (int i = 0; i < m->n; i++) {
        const char *key = m->keys[i]->str;
        if (cfg_word_index(key, keys) >= 0) continue;
        const char *near = th_config_nearest(key, keys);
        if (near) return cfg_fail(c, m->keys[i], path, key, "%s (did you mean '%s'?)", problem, near);
        char list[256];
        cfg_join_words(list, sizeof list, keys, ", ");
        return cfg_fail(c, m->keys[i], path, key, "%s (expected one of: %s)", problem, list);
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
        return *out ? 0 : cfg_fail(c, parent, path, NULL, "out of memory");
    }
    if (v->kind != YT_MAP)
        return cfg_fail(c, v, path, NULL, "must be a mapping of keys, got %s", yt_describe(v, d, sizeof d));
    *out = v;
    return check_keys(c, v, path, cfg_section_keys(path), "unknown key");
}

/* ---- The sections ---------------------------------------------------------- */

static int read_labels(const ctx *c, const yt_node *data, th_config *cfg)
{
    const yt_node *v = yt_get(data, "labels");
    char d[64];
    if (!v) return 0;
    if (v->kind == YT_MAP) return cfg_fail(c, v, "data.labels", NULL, "must be a list of label names, got a mapping");
    /* A single name is a list of one. */
    int n = v->kind == YT_SEQ ? v->n : 1;
    if (n > TH_MAX_LABELS) return cfg_fail(c, v, "data.labels", NULL, "at most %d labels, got %d", TH_MAX_LABELS, n);
    for (int i = 0; i < n; i++) {
        const yt_node *it = v->kind == YT_SEQ ? v->vals[i] : v;
        char key[16] = "";
        if (v->kind == YT_SEQ) snprintf(key, sizeof key, "[%d]", i);
        if (it->kind != YT_SCALAR || yt_is_null(it))
            return cfg_fail(c, it, "data.labels", key, "must be a label name, got %s", yt_describe(it, d, sizeof d));
        size_t len = strlen(it->str);
        if (len == 0) return cfg_fail(c, it, "data.labels", key, "must not be empty");
        if (len >= TH_LABEL_MAX)
            return cfg_fail(c, it, "data.labels", key, "is %zu characters long, at most %d are allowed", len,
                        TH_LABEL_MAX - 1);
        for (int j = 0; j < i; j++)
            if (strcmp(cfg->data.labels[j], it->str) == 0)
                return cfg_fail(c, it, "data.labels", key, "'%s' is listed twice", it->str);
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
            return cfg_fail(c, v, "data.split", NULL, "must be 'predefined' or a mapping {train, val, test}, got %s",
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
            return cfg_fail(c, m, "data.split", NULL, "train + val is %g, leaving nothing for test", train_val);
        cfg->data.test = train_val < 1 ? 1 - train_val : 0;
        return 0;
    }
    if (read_double(c, m, "data.split", "test", CLOSED(0, 1), 0, &cfg->data.test)) return -1;
    double sum = train_val + cfg->data.test;
    if (fabs(sum - 1) > 1e-6) return cfg_fail(c, m, "data.split", NULL, "fractions sum to %g, must sum to 1", sum);
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
            return cfg_fail(c, v, P, NULL, "must be a mapping, or false/none for no augmentation, got %s",
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
        return cfg_fail(c, yt_get(m, "scale"), P, "scale", "must be [low, high] with low <= high, got [%g, %g]",
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
        read_split(c, m, cfg) || read_enum(c, m, "data", "on_leak", cfg_on_leak_names, TH_ON_LEAK_ERROR, &on_leak) ||
        read_enum(c, m, "data", "normalize", cfg_normalize_names, TH_NORM_TRAINSET, &normalize) ||
        read_augment(c, m, cfg) || read_enum(c, m, "data", "cache", cfg_cache_names, TH_CACHE_AUTO, &cache))
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
    if (!f) return multi ? cfg_fail(c, v, path, "from", "is required: the layers to %s, e.g. from: [a, b]",
                                l->type == TH_LAYER_ADD ? "add" : "concatenate")
                         : 0;
    if (f->kind == YT_MAP) return cfg_fail(c, f, path, "from", "must be a layer name or a list of them, got a mapping");
    int n = f->kind == YT_SEQ ? f->n : 1;
    if (n > TH_MAX_FROM) return cfg_fail(c, f, path, "from", "at most %d layers, got %d", TH_MAX_FROM, n);
    if (multi && n < 2) return cfg_fail(c, f, path, "from", "needs two or more layers, got %d", n);
    if (!multi && n != 1)
        return cfg_fail(c, f, path, "from", "a %s layer reads one layer, got %d", th_layer_type_name(l->type), n);
    for (int k = 0; k < n; k++) {
        const yt_node *it = f->kind == YT_SEQ ? f->vals[k] : f;
        if (it->kind != YT_SCALAR || yt_is_null(it) || !it->str[0])
            return cfg_fail(c, it, path, "from", "must name a layer, got %s", yt_describe(it, d, sizeof d));
        if (strlen(it->str) >= TH_NAME_MAX)
            return cfg_fail(c, it, path, "from", "'%s' is longer than %d characters", it->str, TH_NAME_MAX - 1);
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
        return cfg_fail(c, v, path, NULL, "must be a mapping such as {type: relu}, got %s", yt_describe(v, d, sizeof d));
    for (int t = 0; t < TH_LAYER_TYPE_COUNT; t++) types[t] = th_layer_type_name((th_layer_type)t);
    if (require(c, v, path, "type") || read_enum(c, v, path, "type", types, 0, &type)) return -1;
    snprintf(problem, sizeof problem, "not a key of %s %s layer", strchr("aeiou", types[type][0]) ? "an" : "a",
             types[type]);
    if (check_keys(c, v, path, cfg_layer_keys[type], problem)) return -1;

    l->type = (th_layer_type)type;
    /* A layer from --set has no line in the file. */
    l->line = v->set ? 0 : v->line;
    if (read_str(c, v, path, "name", "", l->name, sizeof l->name, 1)) return -1;
    if (!valid_layer_name(l->name))
        return cfg_fail(c, yt_get(v, "name"), path, "name", "must use only letters, digits, '_', '-' and '.', got '%s'",
                    l->name);
    if (!strcmp(l->name, "input")) return cfg_fail(c, yt_get(v, "name"), path, "name", "'input' names the image itself");
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
            return cfg_fail(c, out, path, "out", "must be a number of outputs or 'labels', got %s",
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
        return cfg_fail(c, in, "model.input", NULL, "must be a list [C, H, W], got %s", yt_describe(in, d, sizeof d));
    long long dims[3];
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof key, "[%d]", i);
        if (node_int(c, in->vals[i], "model.input", key, 1, DIM_MAX, &dims[i])) return -1;
    }
    spec->c = (int)dims[0], spec->h = (int)dims[1], spec->w = (int)dims[2];

    layers = yt_get(m, "layers");
    if (layers->kind != YT_SEQ)
        return cfg_fail(c, layers, "model.layers", NULL, "must be a list of layers, got %s",
                    yt_describe(layers, d, sizeof d));
    if (layers->n == 0) return cfg_fail(c, layers, "model.layers", NULL, "must have at least one layer");
    if (layers->n > TH_MAX_LAYERS)
        return cfg_fail(c, layers, "model.layers", NULL, "at most %d layers, got %d", TH_MAX_LAYERS, layers->n);
    for (int i = 0; i < layers->n; i++) {
        if (read_layer(c, layers->vals[i], i, &spec->layers[i])) return -1;
        for (int j = 0; spec->layers[i].name[0] && j < i; j++) {
            if (strcmp(spec->layers[i].name, spec->layers[j].name) == 0) {
                char path[32];
                snprintf(path, sizeof path, "model.layers[%d]", i);
                return cfg_fail(c, yt_get(layers->vals[i], "name"), path, "name",
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
        return cfg_fail(c, yt_get(m, "nesterov"), P, "nesterov", "needs momentum > 0, got momentum %g", o->momentum);
    return 0;
}

static int read_schedule(const ctx *c, const yt_node *train, th_config *cfg)
{
    const char *P = "train.schedule";
    const yt_node *m;
    int type;
    if (section(c, train, P, &m) || read_enum(c, m, P, "type", cfg_schedule_names, TH_SCHED_CONSTANT, &type)) return -1;
    cfg->train.schedule.type = (th_schedule_type)type;
    if (read_float(c, m, P, "factor", OPEN(0, 1), type == TH_SCHED_PLATEAU ? 0.5 : 0.1, &cfg->train.schedule.factor) ||
        read_int(c, m, P, "patience", 0, INT_MAX, 2, &cfg->train.schedule.patience) ||
        read_int(c, m, P, "step_epochs", 1, INT_MAX, 10, &cfg->train.schedule.step_epochs) ||
        read_int(c, m, P, "warmup_epochs", 0, INT_MAX, 0, &cfg->train.schedule.warmup_epochs) ||
        read_float(c, m, P, "min_lr", AT_LEAST(0), 0, &cfg->train.schedule.min_lr))
        return -1;
    if (cfg->train.schedule.min_lr > cfg->train.optimizer.lr)
        return cfg_fail(c, yt_get(m, "min_lr"), P, "min_lr", "must not exceed the learning rate %g, got %g",
                    cfg->train.optimizer.lr, cfg->train.schedule.min_lr);
    return 0;
}

/* model.init: a path, checked when training starts (th_checkpoint_init_params). */
static int read_model_init(const ctx *c, const yt_node *root, th_config *cfg)
{
    return read_str(c, yt_get(root, "model"), "model", "init", "", cfg->model_init, sizeof cfg->model_init, 1);
}

/* train.freeze: a list of layer names or prefixes (a single name is a list of one). */
static int read_freeze(const ctx *c, const yt_node *train, th_config *cfg)
{
    const yt_node *v = yt_get(train, "freeze");
    char d[64];
    cfg->train.n_freeze = 0;
    if (!v) return 0;
    if (v->kind == YT_MAP)
        return cfg_fail(c, v, "train.freeze", NULL, "must be a list of layer names, got a mapping");
    int n = v->kind == YT_SEQ ? v->n : 1;
    if (n > TH_MAX_FREEZE) return cfg_fail(c, v, "train.freeze", NULL, "at most %d entries, got %d", TH_MAX_FREEZE, n);
    for (int i = 0; i < n; i++) {
        const yt_node *it = v->kind == YT_SEQ ? v->vals[i] : v;
        char key[16] = "";
        if (v->kind == YT_SEQ) snprintf(key, sizeof key, "[%d]", i);
        if (it->kind != YT_SCALAR || yt_is_null(it))
            return cfg_fail(c, it, "train.freeze", key, "must be a layer name, got %s", yt_describe(it, d, sizeof d));
        size_t len = strlen(it->str);
        if (len >= TH_NAME_MAX)
            return cfg_fail(c, it, "train.freeze", key, "is %zu characters long, at most %d are allowed", len,
                        TH_NAME_MAX - 1);
        for (int j = 0; j < i; j++)
            if (strcmp(cfg->train.freeze[j], it->str) == 0)
                return cfg_fail(c, it, "train.freeze", key, "'%s' is listed twice", it->str);
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
        return cfg_fail(c, v, P, NULL, "needs train.freeze: with no layer frozen there is nothing to unfreeze");
    if (cfg->train.unfreeze.epoch >= cfg->train.epochs)
        return cfg_fail(c, yt_get(m, "epoch"), P, "epoch",
                    "must be below train.epochs (%d), got %d: the second stage would never run", cfg->train.epochs,
                    cfg->train.unfreeze.epoch);
    if (cfg->train.unfreeze.lr < cfg->train.schedule.min_lr)
        return cfg_fail(c, yt_get(m, "lr") ? yt_get(m, "lr") : m, P, "lr",
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
    if (section(c, root, "eval", &m) || read_enum(c, m, "eval", "split", cfg_eval_split_names, 1, &split) ||
        section(c, m, "eval.cam", &cam) || read_enum(c, cam, "eval.cam", "method", cfg_cam_method_names, 1, &method) ||
        read_int(c, cam, "eval.cam", "top_k", 0, INT_MAX, 8, &cfg->eval.cam_top_k))
        return -1;
    snprintf(cfg->eval.split, sizeof cfg->eval.split, "%s", cfg_eval_split_names[split]);
    snprintf(cfg->eval.cam_method, sizeof cfg->eval.cam_method, "%s", cfg_cam_method_names[method]);
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

int cfg_read(const ctx *c, const yt_node *root, th_config *cfg)
{
    const yt_node *seed = yt_get(root, "seed");
    long long s = 42;
    if (check_keys(c, root, "", cfg_root_keys, "unknown key") ||
        read_str(c, root, "", "name", c->default_name, cfg->name, sizeof cfg->name, 0))
        return -1;
    /* The name is the run's directory under runtime.out_dir. */
    if (strchr(cfg->name, '/') || strcmp(cfg->name, ".") == 0 || strcmp(cfg->name, "..") == 0)
        return cfg_fail(c, yt_get(root, "name") ? yt_get(root, "name") : root, "", "name",
                    "must be usable as a directory name, got '%s'", cfg->name);
    if (seed && node_int(c, seed, "", "seed", 0, LLONG_MAX, &s)) return -1;
    cfg->seed = (uint64_t)s;
    return read_data(c, root, cfg) || read_model(c, root, cfg) || read_model_init(c, root, cfg) ||
                   read_train(c, root, cfg) ||
                   read_eval(c, root, cfg) || read_runtime(c, root, cfg)
               ? -1
               : 0;
}

/* read.c - the walk of a YAML tree against the schema into a th_config:
 * typed readers for scalars (integers, numbers, booleans, enums, strings)
 * with their ranges, the walk of a mapping by its table (schema.c), and the
 * readers of the keys whose shape is their own (lists, layers, the split).
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
#include <stdint.h>
#include <strings.h>

#include "config_impl.h"

/* "path.key", "path[3]" or just one of them. */
void cfg_join_key(char *buf, size_t cap, const char *path, const char *key)
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
    cfg_join_key(full, sizeof full, path, key);
    if (!full[0]) return th_errf(c->err, "%s: %s", where, what);
    return th_errf(c->err, "%s: %s: %s", where, full, what);
}

/* ---- Scalars --------------------------------------------------------------- */

static int in_bounds(bounds b, double x)
{
    return (b.lo_open ? x > b.lo : x >= b.lo) && (b.hi_open ? x < b.hi : x <= b.hi);
}

void cfg_bounds_text(bounds b, char *buf, size_t cap)
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
    cfg_bounds_text(b, r, sizeof r);
    return cfg_fail(c, v, path, key, "must be %s, got %s", r, v->str);
}

/* Key readers: the value of key in mapping m (which may be NULL, meaning
 * empty), or def when it is absent or null. */

static int read_int(const ctx *c, const yt_node *m, const char *path, const char *key, long long lo, long long hi,
                    long long def, long long *out)
{
    const yt_node *v = yt_get(m, key);
    *out = def;
    return v ? node_int(c, v, path, key, lo, hi, out) : 0;
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
    cfg_join_key(full, sizeof full, path, key);
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
    if (yt_get(m, key)) return 0;
    /* Nulled by a --set (key=null): the command line's fault, not the file's. */
    const yt_node *at = m;
    for (int i = 0; m && m->kind == YT_MAP && i < m->n; i++)
        if (!strcmp(m->keys[i]->str, key) && m->vals[i] && m->vals[i]->set) at = m->vals[i];
    return cfg_fail(c, at, path, key, "is required");
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

/* The mapping of table t, a key of parent, with its keys checked. When it
 * is absent, an empty stand-in placed at the parent, so that every key takes
 * its default and a missing required key is reported near where it belongs. */
static int section(const ctx *c, const yt_node *parent, const key_table *t, const yt_node **out)
{
    const char *path = t->path, *dot = strrchr(path, '.');
    const yt_node *v = yt_get(parent, dot ? dot + 1 : path);
    const char *names[32];
    char d[64];
    if (!v) {
        *out = yt_new_map(c->tree, parent->line, parent->set);
        return *out ? 0 : cfg_fail(c, parent, path, NULL, "out of memory");
    }
    if (v->kind != YT_MAP)
        return cfg_fail(c, v, path, NULL, "must be a mapping of keys, got %s", yt_describe(v, d, sizeof d));
    *out = v;
    cfg_table_names(t, names);
    return check_keys(c, v, path, names, "unknown key");
}

static void store_int(void *base, size_t off, long long x)
{
    int i = (int)x;
    memcpy((char *)base + off, &i, sizeof i);
}

static void store_float(void *base, size_t off, float f)
{
    memcpy((char *)base + off, &f, sizeof f);
}

/* A layer's out: its filters or units, or for a dense layer `labels`. */
static int read_out(const ctx *c, const yt_node *m, const char *path, const key_def *k, th_layer_spec *l)
{
    const yt_node *v = yt_get(m, k->name);
    long long x;
    char d[64];
    if (l->type == TH_LAYER_DENSE && v) {
        if (v->kind == YT_SCALAR && strcmp(v->str, "labels") == 0) return l->out = TH_OUT_LABELS, 0;
        if (v->kind != YT_SCALAR || parse_ll(v->str, &x))
            return cfg_fail(c, v, path, k->name, "must be a number of outputs or 'labels', got %s",
                            yt_describe(v, d, sizeof d));
    }
    if (read_int(c, m, path, k->name, k->lo, k->hi, 0, &x)) return -1;
    l->out = (int)x;
    return 0;
}

static int read_table(const ctx *c, const yt_node *m, const key_table *t, void *base);

/* A KEY_SECTION: its mapping read with its own table. */
static int read_section(const ctx *c, const yt_node *parent, const key_def *k, void *base)
{
    const yt_node *v = yt_get(parent, k->name), *m = NULL;
    char d[64];
    int on;
    if (!v && (k->flags & KEY_OPTIONAL)) return 0;
    /* KEY_OFF_OK is data.augment's: `augment: false` is no augmentation. */
    if ((k->flags & KEY_OFF_OK) && v && v->kind == YT_SCALAR) {
        if (!(parse_bool(v->str, &on) == 0 && !on) && strcmp(v->str, "none") != 0)
            return cfg_fail(c, v, k->sub->path, NULL, "must be a mapping, or false/none for no augmentation, got %s",
                            yt_describe(v, d, sizeof d));
    } else if (section(c, parent, k->sub, &m)) {
        return -1;
    }
    return read_table(c, m, k->sub, base);
}

/* One key of mapping m (NULL: empty) into base, or its default. */
static int read_key(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base)
{
    char *at = (char *)base + k->off;
    double def = k->def_of ? k->def_of(base) : k->def;
    long long x;
    int i, rc = 0;
    switch (k->kind) {
    case KEY_INT:
        if (!(rc = read_int(c, m, path, k->name, k->lo, k->hi, (long long)def, &x))) store_int(base, k->off, x);
        break;
    case KEY_U64:
        if (!(rc = read_int(c, m, path, k->name, k->lo, k->hi, (long long)def, &x))) {
            uint64_t u = (uint64_t)x;
            memcpy(at, &u, sizeof u);
        }
        break;
    case KEY_FLOAT: {
        float f;
        if (!(rc = read_float(c, m, path, k->name, k->b, def, &f))) store_float(base, k->off, f);
        break;
    }
    case KEY_DOUBLE: {
        double v;
        if (!(rc = read_double(c, m, path, k->name, k->b, def, &v))) memcpy(at, &v, sizeof v);
        break;
    }
    case KEY_BOOL:
        if (!(rc = read_bool(c, m, path, k->name, (int)def, &i))) store_int(base, k->off, i);
        break;
    case KEY_STR:
        rc = read_str(c, m, path, k->name, k->flags & KEY_RUN_NAME ? c->default_name : k->def_str, at, k->cap,
                      k->flags & KEY_MAY_BE_EMPTY);
        break;
    case KEY_ENUM:
        if (!(rc = read_enum(c, m, path, k->name, k->names, (int)def, &i))) store_int(base, k->off, i);
        break;
    case KEY_ENUM_STR:
        if (!(rc = read_enum(c, m, path, k->name, k->names, (int)def, &i))) snprintf(at, k->cap, "%s", k->names[i]);
        break;
    case KEY_PAIR: {
        float xy[2];
        if (!(rc = read_float_pair(c, m, path, k->name, k->b, def, k->def2, xy))) {
            store_float(base, k->off, xy[0]);
            store_float(base, k->off2, xy[1]);
        }
        break;
    }
    case KEY_OUT: rc = read_out(c, m, path, k, base); break;
    case KEY_SECTION: rc = read_section(c, m, k, base); break;
    case KEY_SPECIAL: rc = k->read(c, m, path, k, base); break;
    }
    return rc ? rc : k->check ? k->check(c, m, path, k, base) : 0;
}

/* Every key of t: the required ones first, so a missing one is reported
 * before anything about the others, then each in the table's order. */
static int read_table(const ctx *c, const yt_node *m, const key_table *t, void *base)
{
    for (int i = 0; i < t->n; i++)
        if ((t->keys[i].flags & KEY_REQUIRED) && require(c, m, t->path, t->keys[i].name)) return -1;
    for (int i = 0; i < t->n; i++)
        if (read_key(c, m, t->path, &t->keys[i], base)) return -1;
    return t->check ? t->check(c, m, t->path, NULL, base) : 0;
}

/* ---- The special shapes ---------------------------------------------------- */

/* A list of names (a single name is a list of one) into names[max][len],
 * none listed twice: data.labels (labels set: "at most N labels", and none
 * empty) and train.freeze ("at most N entries"). */
static int read_names(const ctx *c, const yt_node *v, const char *full, int max, int len, int labels,
                      char *names, int *n_out)
{
    const char *what = labels ? "label name" : "layer name";
    char d[64];
    if (v->kind == YT_MAP) return cfg_fail(c, v, full, NULL, "must be a list of %ss, got a mapping", what);
    int n = v->kind == YT_SEQ ? v->n : 1;
    if (n > max)
        return cfg_fail(c, v, full, NULL, "at most %d %s, got %d", max, labels ? "labels" : "entries",
                        n);
    for (int i = 0; i < n; i++) {
        const yt_node *it = v->kind == YT_SEQ ? v->vals[i] : v;
        char key[16] = "";
        if (v->kind == YT_SEQ) snprintf(key, sizeof key, "[%d]", i);
        if (it->kind != YT_SCALAR || yt_is_null(it))
            return cfg_fail(c, it, full, key, "must be a %s, got %s", what, yt_describe(it, d, sizeof d));
        size_t l = strlen(it->str);
        if (l == 0 && labels) return cfg_fail(c, it, full, key, "must not be empty");
        if (l >= (size_t)len)
            return cfg_fail(c, it, full, key, "is %zu characters long, at most %d are allowed", l, len - 1);
        for (int j = 0; j < i; j++)
            if (strcmp(names + (size_t)j * (size_t)len, it->str) == 0)
                return cfg_fail(c, it, full, key, "'%s' is listed twice", it->str);
        memcpy(names + (size_t)i * (size_t)len, it->str, l + 1);
    }
    *n_out = n;
    return 0;
}

int cfg_read_labels(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base)
{
    th_config *cfg = base;
    const yt_node *v = yt_get(m, k->name);
    char full[KEY_MAX];
    cfg_join_key(full, sizeof full, path, k->name);
    return v ? read_names(c, v, full, TH_MAX_LABELS, TH_LABEL_MAX, 1, cfg->data.labels[0],
                          &cfg->data.n_labels)
             : 0;
}

/* train.freeze: layer names or prefixes. Whether each matches a layer is the
 * run's check (th_run_config_check), which reports from where each was. */
int cfg_read_freeze(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base)
{
    th_config *cfg = base;
    const yt_node *v = yt_get(m, k->name);
    char full[KEY_MAX];
    cfg_join_key(full, sizeof full, path, k->name);
    cfg->train.n_freeze = 0;
    if (!v) return 0;
    if (read_names(c, v, full, TH_MAX_FREEZE, TH_NAME_MAX, 0, cfg->train.freeze[0], &cfg->train.n_freeze))
        return -1;
    for (int i = 0; i < cfg->train.n_freeze; i++)
        yt_where(v->kind == YT_SEQ ? v->vals[i] : v, c->file, cfg->at.freeze_item[i], sizeof cfg->at.freeze_item[i]);
    yt_where(v, c->file, cfg->at.freeze, sizeof cfg->at.freeze);
    cfg->at.freeze_listed = v->kind == YT_SEQ;
    return 0;
}

/* data.split: `predefined`, or a mapping of fractions (its table), or when
 * left out that table's defaults. */
int cfg_read_split(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base)
{
    th_config *cfg = base;
    const key_table *t = k->sub;
    const yt_node *v = yt_get(m, k->name), *sm;
    const char *names[8];
    char d[64], list[64];
    if (v && v->kind == YT_SCALAR) {
        if (strcmp(v->str, "predefined") != 0) {
            cfg_table_names(t, names);
            cfg_join_words(list, sizeof list, names, ", ");
            return cfg_fail(c, v, t->path, NULL, "must be 'predefined' or a mapping {%s}, got %s", list,
                            yt_describe(v, d, sizeof d));
        }
        cfg->data.split_mode = TH_SPLIT_MODE_PREDEFINED;
        return 0;
    }
    cfg->data.split_mode = TH_SPLIT_MODE_RANDOM;
    if (!v) {
        for (int i = 0; i < t->n; i++) memcpy((char *)base + t->keys[i].off, &t->keys[i].def, sizeof(double));
        return 0;
    }
    return section(c, m, t, &sm) || read_table(c, sm, t, base) ? -1 : 0;
}

int cfg_read_input(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base)
{
    th_model_spec *spec = &((th_config *)base)->model;
    const yt_node *in = yt_get(m, k->name);
    char full[KEY_MAX], d[64];
    long long dims[3];
    cfg_join_key(full, sizeof full, path, k->name);
    if (in->kind != YT_SEQ || in->n != 3)
        return cfg_fail(c, in, full, NULL, "must be a list [C, H, W], got %s", yt_describe(in, d, sizeof d));
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof key, "[%d]", i);
        if (node_int(c, in->vals[i], full, key, 1, DIM_MAX, &dims[i])) return -1;
    }
    spec->c = (int)dims[0], spec->h = (int)dims[1], spec->w = (int)dims[2];
    return 0;
}

/* Layer names become tensor names (conv1.weight) and HDF5 paths, so they
 * keep to the characters PyTorch module names use. */
static int valid_layer_name(const char *s)
{
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") == strlen(s);
}

int cfg_read_layer_name(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base)
{
    th_layer_spec *l = base;
    if (read_str(c, m, path, k->name, "", l->name, sizeof l->name, 1)) return -1;
    if (!valid_layer_name(l->name))
        return cfg_fail(c, yt_get(m, k->name), path, k->name,
                        "must use only letters, digits, '_', '-' and '.', got '%s'", l->name);
    if (!strcmp(l->name, "input")) return cfg_fail(c, yt_get(m, k->name), path, k->name, "'input' names the image itself");
    return 0;
}

/* from: a layer name or a list of them ("input" is the image). add and
 * concat need two or more. */
int cfg_read_from(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base)
{
    th_layer_spec *l = base;
    const char *key = k->name;
    const yt_node *f = yt_get(m, key);
    char d[64];
    int multi = l->type == TH_LAYER_ADD || l->type == TH_LAYER_CONCAT;
    if (!f) return multi ? cfg_fail(c, m, path, key, "is required: the layers to %s, e.g. from: [a, b]",
                                    l->type == TH_LAYER_ADD ? "add" : "concatenate")
                         : 0;
    if (f->kind == YT_MAP) return cfg_fail(c, f, path, key, "must be a layer name or a list of them, got a mapping");
    int n = f->kind == YT_SEQ ? f->n : 1;
    if (n > TH_MAX_FROM) return cfg_fail(c, f, path, key, "at most %d layers, got %d", TH_MAX_FROM, n);
    if (multi && n < 2) return cfg_fail(c, f, path, key, "needs two or more layers, got %d", n);
    if (!multi && n != 1)
        return cfg_fail(c, f, path, key, "a %s layer reads one layer, got %d", th_layer_type_name(l->type), n);
    for (int i = 0; i < n; i++) {
        const yt_node *it = f->kind == YT_SEQ ? f->vals[i] : f;
        if (it->kind != YT_SCALAR || yt_is_null(it) || !it->str[0])
            return cfg_fail(c, it, path, key, "must name a layer, got %s", yt_describe(it, d, sizeof d));
        if (strlen(it->str) >= TH_NAME_MAX)
            return cfg_fail(c, it, path, key, "'%s' is longer than %d characters", it->str, TH_NAME_MAX - 1);
        snprintf(l->from[i], sizeof l->from[i], "%s", it->str);
    }
    l->n_from = n;
    return 0;
}

/* One layer: its type first, which decides its keys; then its name and
 * from; then the keys of its type, the required ones first. */
static int read_layer(const ctx *c, const yt_node *v, int i, th_layer_spec *l)
{
    const key_def *keys = cfg_layer_table.keys;
    char path[32], d[64], problem[48];
    const char *types[TH_LAYER_TYPE_COUNT + 1] = {NULL}, *names[16];
    int type, n = 0;
    snprintf(path, sizeof path, "model.layers[%d]", i);
    if (v->kind != YT_MAP)
        return cfg_fail(c, v, path, NULL, "must be a mapping such as {type: relu}, got %s",
                        yt_describe(v, d, sizeof d));
    for (int t = 0; t < TH_LAYER_TYPE_COUNT; t++) types[t] = th_layer_type_name((th_layer_type)t);
    const char *tkey = keys[CFG_LK_TYPE].name;
    if (require(c, v, path, tkey) || read_enum(c, v, path, tkey, types, 0, &type)) return -1;
    const signed char *own = cfg_layer_type_keys[type];
    for (; own[n] >= 0; n++) names[n] = keys[own[n]].name;
    names[n] = NULL;
    snprintf(problem, sizeof problem, "not a key of %s %s layer", strchr("aeiou", types[type][0]) ? "an" : "a",
             types[type]);
    if (check_keys(c, v, path, names, problem)) return -1;

    l->type = (th_layer_type)type;
    /* A layer from --set has no line in the file. */
    l->line = v->set ? 0 : v->line;
    for (int j = 1; j < n; j++)
        if (keys[own[j]].kind == KEY_SPECIAL && read_key(c, v, path, &keys[own[j]], l)) return -1;
    for (int j = 1; j < n; j++)
        if ((keys[own[j]].flags & KEY_REQUIRED) && require(c, v, path, keys[own[j]].name)) return -1;
    for (int j = 1; j < n; j++)
        if (keys[own[j]].kind != KEY_SPECIAL && read_key(c, v, path, &keys[own[j]], l)) return -1;
    return 0;
}

int cfg_read_layers(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base)
{
    th_config *cfg = base;
    th_model_spec *spec = &cfg->model;
    const yt_node *layers = yt_get(m, k->name);
    char full[KEY_MAX], d[64];
    cfg_join_key(full, sizeof full, path, k->name);
    if (layers->kind != YT_SEQ)
        return cfg_fail(c, layers, full, NULL, "must be a list of layers, got %s", yt_describe(layers, d, sizeof d));
    if (layers->n == 0) return cfg_fail(c, layers, full, NULL, "must have at least one layer");
    if (layers->n > TH_MAX_LAYERS)
        return cfg_fail(c, layers, full, NULL, "at most %d layers, got %d", TH_MAX_LAYERS, layers->n);
    for (int i = 0; i < layers->n; i++) {
        if (read_layer(c, layers->vals[i], i, &spec->layers[i])) return -1;
        for (int j = 0; spec->layers[i].name[0] && j < i; j++) {
            if (strcmp(spec->layers[i].name, spec->layers[j].name) == 0) {
                char at[KEY_MAX + 16];
                snprintf(at, sizeof at, "%s[%d]", full, i);
                return cfg_fail(c, yt_get(layers->vals[i], cfg_layer_table.keys[CFG_LK_NAME].name), at,
                                cfg_layer_table.keys[CFG_LK_NAME].name, "'%s' is already the name of %s[%d]",
                                spec->layers[i].name, full, j);
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

int cfg_read(const ctx *c, const yt_node *root, th_config *cfg)
{
    const char *names[32];
    cfg_table_names(&cfg_root_table, names);
    return check_keys(c, root, "", names, "unknown key") || read_table(c, root, &cfg_root_table, cfg) ? -1 : 0;
}

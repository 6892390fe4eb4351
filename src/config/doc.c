/* doc.c - the configuration's documentation, generated from the key tables
 * of schema.c (each key's .doc, .def_doc, .type_doc and .name_docs) so it
 * cannot drift from what the reader accepts: the Markdown reference
 * (docs/configuration.md), one key explained, and the default config as
 * YAML with each key's doc as a comment (through emit.c).
 */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_impl.h"

/* The keys with no default are given placeholders, a one-convolution network
 * on 64x64 gray images; everything else takes its default. */
static const char defaults_template[] = "data: {path: data/dataset.h5}\n"
                                        "model:\n"
                                        "  input: [1, 64, 64]\n"
                                        "  layers:\n"
                                        "    - {type: conv, out: 8, k: 3, pad: 1}\n"
                                        "    - {type: relu}\n"
                                        "    - {type: gap}\n"
                                        "    - {type: dense, out: labels}\n";
#define DEFAULTS_NAME "experiment.yaml"

/* The layer types' names, in th_layer_type order, NULL-terminated. */
static void layer_type_names(const char **out)
{
    for (int t = 0; t < TH_LAYER_TYPE_COUNT; t++) out[t] = th_layer_type_name((th_layer_type)t);
    out[TH_LAYER_TYPE_COUNT] = NULL;
}

/* A key's names and their meanings: an enum's, or the layer types for a
 * layer's type. NULL names for any other key. */
static const char *const *key_choices(const key_def *k, const char **types, const char *const **docs)
{
    if (k == &cfg_layer_table.keys[CFG_LK_TYPE]) {
        layer_type_names(types);
        *docs = cfg_layer_type_docs;
        return types;
    }
    *docs = k->name_docs;
    return k->kind == KEY_ENUM || k->kind == KEY_ENUM_STR ? k->names : NULL;
}

static int is_real(const key_def *k)
{
    return k->kind == KEY_FLOAT || k->kind == KEY_DOUBLE || k->kind == KEY_PAIR;
}

static const char *type_text(const key_def *k)
{
    if (k->type_doc) return k->type_doc;
    switch (k->kind) {
    case KEY_INT:
    case KEY_U64: return "integer";
    case KEY_FLOAT:
    case KEY_DOUBLE: return "number";
    case KEY_BOOL: return "boolean";
    case KEY_STR: return "string";
    case KEY_ENUM:
    case KEY_ENUM_STR: return "choice";
    case KEY_PAIR: return "[number, number]";
    case KEY_OUT: return "integer, or labels (dense)";
    case KEY_SECTION: return (k->flags & KEY_FLOW) ? "mapping {...}, or null" : "mapping";
    case KEY_SPECIAL: break;
    }
    return "";
}

/* The default as written in a config; literal is set when it is a value
 * rather than words. Empty for a section (its keys have theirs). */
static void default_text(const key_table *t, const key_def *k, char *buf, size_t cap, int *literal)
{
    char v[96] = "";
    *literal = 1;
    if (k->def_doc) {
        *literal = 0;
        snprintf(buf, cap, "%s", k->def_doc);
        return;
    }
    switch (k->kind) {
    case KEY_INT:
    case KEY_U64: snprintf(v, sizeof v, "%lld", (long long)k->def); break;
    case KEY_FLOAT:
    case KEY_DOUBLE: snprintf(v, sizeof v, "%g", k->def); break;
    case KEY_BOOL: snprintf(v, sizeof v, "%s", k->def ? "true" : "false"); break;
    case KEY_STR: snprintf(v, sizeof v, "%s", k->def_str ? k->def_str : ""); break;
    case KEY_ENUM:
    case KEY_ENUM_STR: snprintf(v, sizeof v, "%s", k->names[(int)k->def]); break;
    case KEY_PAIR: snprintf(v, sizeof v, "[%g, %g]", k->def, k->def2); break;
    case KEY_OUT:
    case KEY_SECTION:
    case KEY_SPECIAL: break;
    }
    /* A key required in its mapping may still have a default for when the
     * whole mapping is left out (data.split's fractions). */
    int has_default = v[0] && (k->def != 0 || !(k->flags & KEY_REQUIRED));
    if (k->flags & KEY_REQUIRED) {
        *literal = 0;
        if (has_default)
            snprintf(buf, cap, "%s (required when %s is written)", v, t->path);
        else
            snprintf(buf, cap, "required");
        return;
    }
    if (k->kind == KEY_SECTION) *literal = 0;
    snprintf(buf, cap, "%s", v);
}

/* The values accepted, beyond the type: a range, or the choices. */
static void range_text(const key_def *k, char *buf, size_t cap)
{
    const char *types[TH_LAYER_TYPE_COUNT + 1];
    const char *const *docs;
    const char *const *choices = key_choices(k, types, &docs);
    char b[64];
    buf[0] = 0;
    if (choices) {
        cfg_join_words(buf, cap, choices, ", ");
    } else if (k->kind == KEY_INT || k->kind == KEY_U64 || k->kind == KEY_OUT) {
        if (k->hi >= INT_MAX)
            snprintf(buf, cap, ">= %lld", k->lo);
        else
            snprintf(buf, cap, "[%lld, %lld]", k->lo, k->hi);
    } else if (is_real(k)) {
        cfg_bounds_text(k->b, b, sizeof b);
        /* bounds_text says "in [a, b]" for messages; a table wants the interval. */
        snprintf(buf, cap, "%s%s", k->kind == KEY_PAIR ? "each " : "", strncmp(b, "in ", 3) ? b : b + 3);
    }
}

/* "path.key" for a key of table t. */
static void full_name(const key_table *t, const key_def *k, char *buf, size_t cap)
{
    cfg_join_key(buf, cap, t->path, k->name);
}

/* The layer types that take key k (an index into cfg_layer_table.keys),
 * joined with ", "; "every type" for all of them. */
static void layer_types_of(int key, char *buf, size_t cap)
{
    size_t n = 0;
    int all = 1;
    buf[0] = 0;
    for (int t = 0; t < TH_LAYER_TYPE_COUNT; t++) {
        int takes = 0;
        for (int j = 0; cfg_layer_type_keys[t][j] >= 0; j++) takes |= cfg_layer_type_keys[t][j] == key;
        all &= takes;
        if (takes && n < cap)
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", th_layer_type_name((th_layer_type)t));
    }
    if (all) snprintf(buf, cap, "every type");
}

/* ---- The check: every key documented ------------------------------------- */

static int check_table(const key_table *t, th_err *err)
{
    char full[KEY_MAX];
    if (!t->doc || !t->doc[0])
        return th_errf(err, "config mapping %s has no doc string (src/config/schema.c)",
                       t->path[0] ? t->path : "(top level)");
    for (int i = 0; i < t->n; i++) {
        const key_def *k = &t->keys[i];
        full_name(t, k, full, sizeof full);
        if (!k->doc || !k->doc[0]) return th_errf(err, "config key %s has no doc string (src/config/schema.c)", full);
        if (k->kind == KEY_SPECIAL && !k->type_doc)
            return th_errf(err, "config key %s has no type_doc: its shape is its own (src/config/schema.c)", full);
        if ((k->def_of || (k->flags & KEY_RUN_NAME) || (k->kind == KEY_SPECIAL && !(k->flags & KEY_REQUIRED))) &&
            !k->def_doc)
            return th_errf(err, "config key %s has no def_doc: its default is not a constant (src/config/schema.c)",
                           full);
        if (k->kind == KEY_ENUM || k->kind == KEY_ENUM_STR) {
            for (int j = 0; k->names[j]; j++)
                if (!k->name_docs || !k->name_docs[j])
                    return th_errf(err, "config key %s: choice '%s' has no doc string (src/config/schema.c)", full,
                                   k->names[j]);
        }
        if (k->sub && k->sub != t && check_table(k->sub, err)) return -1;
    }
    return 0;
}

int th_config_docs_check(th_err *err)
{
    for (int t = 0; t < TH_LAYER_TYPE_COUNT; t++)
        if (!cfg_layer_type_docs[t] || !cfg_layer_type_docs[t][0])
            return th_errf(err, "layer type %s has no doc string (src/config/schema.c)",
                           th_layer_type_name((th_layer_type)t));
    return check_table(&cfg_root_table, err);
}

/* ---- The defaults, as YAML ------------------------------------------------ */

char *th_config_defaults_yaml(th_err *err)
{
    th_config *cfg = malloc(sizeof *cfg);
    if (!cfg) {
        th_errf(err, "out of memory for a config");
        return NULL;
    }
    if (th_config_load_string(cfg, defaults_template, DEFAULTS_NAME, NULL, 0, err)) {
        free(cfg);
        return NULL;
    }
    char *yaml = cfg_to_yaml(cfg, 1);
    free(cfg);
    th_strbuf b = {0};
    if (yaml)
        th_strbuf_printf(&b,
                         "# The default of every key (thorax config --defaults), each key's doc above it.\n"
                         "# data.path, model.input and model.layers have no default: here they are\n"
                         "# placeholders (a one-convolution network on 64x64 gray images). The name\n"
                         "# defaults to the file's: this is as if read from %s.\n%s",
                         DEFAULTS_NAME, yaml);
    free(yaml);
    if (!yaml || b.failed) {
        th_strbuf_free(&b);
        th_errf(err, "out of memory writing the default config");
        return NULL;
    }
    return b.data;
}

/* ---- One key explained ----------------------------------------------------- */

/* Every key's dotted name (layer keys as model.layers[].k), for "did you
 * mean" across mappings. */
typedef struct {
    const char *names[256];
    char buf[256][KEY_MAX];
    int n;
} key_list;

static void list_keys(const key_table *t, key_list *l)
{
    for (int i = 0; i < t->n && l->n < 255; i++) {
        full_name(t, &t->keys[i], l->buf[l->n], KEY_MAX);
        l->names[l->n] = l->buf[l->n];
        l->n++;
        if (t->keys[i].sub) list_keys(t->keys[i].sub, l);
    }
    l->names[l->n] = NULL;
}

/* Fails naming key, unknown from segment seg of table t on (rest is what
 * follows seg), with what it may have meant: the keys whose dotted name ends
 * with it ("lr"), else the nearest key of t to seg with the rest kept
 * ("train.optimzer.lr"), else the nearest dotted name of all. */
static int unknown_key(const char *key, const key_table *t, const char *seg, const char *rest, th_err *err)
{
    const char *names[32];
    char list[512];
    key_list *all = malloc(sizeof *all);
    if (!all) return th_errf(err, "%s: unknown config key", key);
    all->n = 0;
    list_keys(&cfg_root_table, all);
    size_t n = 0, kl = strlen(key);
    list[0] = 0;
    for (int i = 0; i < all->n && n < sizeof list; i++) {
        size_t l = strlen(all->names[i]);
        if (l > kl && all->names[i][l - kl - 1] == '.' && strcmp(all->names[i] + l - kl, key) == 0)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s'%s'", n ? " or " : "", all->names[i]);
    }
    cfg_table_names(t, names);
    const char *near = th_config_nearest(seg, names);
    if (!n && near) {
        char full[KEY_MAX];
        cfg_join_key(full, sizeof full, t->path, near);
        snprintf(list, sizeof list, "'%s%s'", full, rest);
    } else if (!n && (near = th_config_nearest(key, all->names))) {
        snprintf(list, sizeof list, "'%s'", near);
    }
    int rc = list[0] ? th_errf(err, "%s: unknown config key (did you mean %s?)", key, list)
                     : th_errf(err, "%s: unknown config key (thorax config --reference lists them all)", key);
    free(all);
    return rc;
}

/* Finds key ("train.optimizer.lr", "model.layers[].k", "model.layers[3].k"
 * or "model.layers.k") in the tables: the key and the table that holds it. */
static int find_key(const char *key, const key_table **table, const key_def **def, th_err *err)
{
    const key_table *t = &cfg_root_table;
    const char *p = key;
    char seg[KEY_MAX];
    if (!key[0]) return th_errf(err, "no config key given (e.g. train.optimizer.lr)");
    for (;;) {
        size_t n = strcspn(p, ".[");
        if (n == 0 || n >= sizeof seg)
            return th_errf(err, "%s: not a config key (dotted names, e.g. train.optimizer.lr)", key);
        memcpy(seg, p, n);
        seg[n] = 0;
        p += n;
        if (*p == '[') {
            /* Any index of a list: "[]" or "[3]". */
            size_t d = strspn(p + 1, "0123456789");
            if (p[1 + d] != ']') return th_errf(err, "%s: not a config key (a list item is [] or [N])", key);
            p += d + 2;
        }
        const key_def *k = NULL;
        for (int i = 0; i < t->n && !k; i++)
            if (strcmp(t->keys[i].name, seg) == 0) k = &t->keys[i];
        if (!k) return unknown_key(key, t, seg, p, err);
        if (!*p) {
            *table = t;
            *def = k;
            return 0;
        }
        if (*p != '.' || !k->sub) {
            char full[KEY_MAX];
            full_name(t, k, full, sizeof full);
            return th_errf(err, "%s: %s has no keys of its own (its type: %s)", key, full, type_text(k));
        }
        t = k->sub;
        p++;
    }
}

char *th_config_explain(const char *key, th_err *err)
{
    const key_table *t = NULL;
    const key_def *k = NULL;
    if (find_key(key, &t, &k, err)) return NULL;
    char full[KEY_MAX], def[256], range[512];
    int literal;
    full_name(t, k, full, sizeof full);
    default_text(t, k, def, sizeof def, &literal);
    range_text(k, range, sizeof range);
    th_strbuf b = {0};
    th_strbuf_printf(&b, "%s: %s\n", full, k->doc);
    th_strbuf_printf(&b, "  type:     %s\n", type_text(k));
    if (def[0]) th_strbuf_printf(&b, "  default:  %s\n", def);
    const char *types[TH_LAYER_TYPE_COUNT + 1];
    const char *const *docs;
    const char *const *choices = key_choices(k, types, &docs);
    if (choices) {
        th_strbuf_printf(&b, "  choices:\n");
        for (int i = 0; choices[i]; i++) th_strbuf_printf(&b, "    %-14s %s\n", choices[i], docs[i]);
    } else if (range[0]) {
        th_strbuf_printf(&b, "  range:    %s\n", range);
    }
    if (t == &cfg_layer_table) {
        char of[256];
        layer_types_of((int)(k - t->keys), of, sizeof of);
        th_strbuf_printf(&b, "  layers:   %s\n", of);
    }
    if (k->sub) {
        th_strbuf_printf(&b, "  %s\n  keys:\n", k->sub->doc);
        for (int i = 0; i < k->sub->n; i++)
            th_strbuf_printf(&b, "    %-20s %s\n", k->sub->keys[i].name, k->sub->keys[i].doc);
    }
    if (b.failed) {
        th_strbuf_free(&b);
        th_errf(err, "out of memory explaining %s", key);
        return NULL;
    }
    return b.data;
}

/* ---- The Markdown reference ------------------------------------------------- */

/* Text in a Markdown table cell: '|' would end the cell, '<' start a tag. */
static void md_text(th_strbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            th_strbuf_printf(b, "\\|");
        else if (*s == '<')
            th_strbuf_printf(b, "&lt;");
        else
            th_strbuf_printf(b, "%c", *s);
    }
}

/* The choices as code, or the range as code. */
static void md_accepts(th_strbuf *b, const key_def *k, const char *range)
{
    const char *types[TH_LAYER_TYPE_COUNT + 1];
    const char *const *docs;
    const char *const *choices = key_choices(k, types, &docs);
    for (int i = 0; choices && choices[i]; i++) th_strbuf_printf(b, "%s`%s`", i ? ", " : "", choices[i]);
    if (!choices && range[0]) th_strbuf_printf(b, "`%s`", range);
}

static void md_choices(th_strbuf *b, const char *full, const char *const *choices, const char *const *docs)
{
    th_strbuf_printf(b, "\n`%s`:\n\n", full);
    for (int i = 0; choices[i]; i++) {
        th_strbuf_printf(b, "- `%s`: ", choices[i]);
        md_text(b, docs[i]);
        th_strbuf_printf(b, "\n");
    }
}

/* Each layer type's keys and what it is. */
static void md_layer_types(th_strbuf *b)
{
    th_strbuf_printf(b, "\nLayer types (`type`):\n\n| type | keys | description |\n| --- | --- | --- |\n");
    for (int t = 0; t < TH_LAYER_TYPE_COUNT; t++) {
        const signed char *own = cfg_layer_type_keys[t];
        th_strbuf_printf(b, "| `%s` | ", th_layer_type_name((th_layer_type)t));
        for (int j = 1; own[j] >= 0; j++) {
            const key_def *k = &cfg_layer_table.keys[own[j]];
            th_strbuf_printf(b, "%s`%s`%s", j > 1 ? ", " : "", k->name, (k->flags & KEY_REQUIRED) ? " (required)" : "");
        }
        th_strbuf_printf(b, " | ");
        md_text(b, cfg_layer_type_docs[t]);
        th_strbuf_printf(b, " |\n");
    }
}

static void md_table(th_strbuf *b, const key_table *t)
{
    char full[KEY_MAX], def[256], range[512];
    int literal;
    th_strbuf_printf(b, "\n## %s\n\n%c", t->path[0] ? t->path : "Top level", toupper((unsigned char)t->doc[0]));
    md_text(b, t->doc + 1);
    th_strbuf_printf(b, ".\n\n| key | type | default | accepts | description |\n| --- | --- | --- | --- | --- |\n");
    for (int i = 0; i < t->n; i++) {
        const key_def *k = &t->keys[i];
        full_name(t, k, full, sizeof full);
        default_text(t, k, def, sizeof def, &literal);
        range_text(k, range, sizeof range);
        th_strbuf_printf(b, "| `%s` | ", k->name);
        md_text(b, type_text(k));
        th_strbuf_printf(b, " | ");
        if (def[0] && literal)
            th_strbuf_printf(b, "`%s`", def);
        else
            md_text(b, def);
        th_strbuf_printf(b, " | ");
        md_accepts(b, k, range);
        th_strbuf_printf(b, " | ");
        md_text(b, k->doc);
        if (t == &cfg_layer_table) {
            char of[256];
            layer_types_of(i, of, sizeof of);
            th_strbuf_printf(b, " (%s)", of);
        }
        th_strbuf_printf(b, " |\n");
    }
    for (int i = 0; i < t->n; i++) {
        const char *types[TH_LAYER_TYPE_COUNT + 1];
        const char *const *docs;
        const char *const *choices = key_choices(&t->keys[i], types, &docs);
        full_name(t, &t->keys[i], full, sizeof full);
        /* The layer types have a table of their own, below. */
        if (choices && t != &cfg_layer_table) md_choices(b, full, choices, docs);
    }
    if (t == &cfg_layer_table) md_layer_types(b);
    for (int i = 0; i < t->n; i++)
        if (t->keys[i].sub) md_table(b, t->keys[i].sub);
}

char *th_config_reference(th_err *err)
{
    if (th_config_docs_check(err)) return NULL;
    th_strbuf b = {0};
    th_strbuf_printf(
        &b,
        "# Configuration reference\n"
        "\n"
        "<!-- Generated by `thorax config --reference` from the key tables of\n"
        "src/config/schema.c: edit those, then regenerate this file with\n"
        "`build/thorax config --reference > docs/configuration.md`\n"
        "(tests/integration/test_config_docs.sh fails while the two differ). -->\n"
        "\n"
        "An experiment is one YAML file of these keys. `--set a.b=value` overrides\n"
        "a key from the command line (the value is read as YAML, so\n"
        "`--set data.labels=[Effusion,Nodule]` works). Unknown keys, wrong types and\n"
        "values out of range are errors naming the key and its line, with a\n"
        "suggestion for a typo. The resolved configuration, every default filled in,\n"
        "is the run directory's `config.yaml`.\n"
        "\n"
        "- `thorax config --defaults` prints every key at its default, as YAML with\n"
        "  each key's description as a comment;\n"
        "- `thorax config --explain KEY` describes one key (e.g.\n"
        "  `thorax config --explain train.optimizer.lr`);\n"
        "- `thorax config --reference` prints this file.\n"
        "\n"
        "Ranges: `[a, b]` includes both ends, `(a, b)` neither.\n");
    md_table(&b, &cfg_root_table);
    if (b.failed) {
        th_strbuf_free(&b);
        th_errf(err, "out of memory writing the configuration reference");
        return NULL;
    }
    return b.data;
}

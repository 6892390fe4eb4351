/* emit.c - the resolved YAML of a config (th_config_to_yaml): every key of
 * the schema's tables with its value, defaults included, so a run
 * directory's config.yaml reproduces the run on its own and reads back as
 * the same struct. Block style, one key a line; a few values on one line
 * ({...} or [...]) where that reads better: layers, lists, the split.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_impl.h"

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

static const char *enum_name(const char *const *names, int v)
{
    for (int i = 0; names[i]; i++)
        if (i == v) return names[i];
    return "invalid";
}

static int get_int(const void *base, size_t off)
{
    int i;
    memcpy(&i, (const char *)base + off, sizeof i);
    return i;
}

static float get_float(const void *base, size_t off)
{
    float f;
    memcpy(&f, (const char *)base + off, sizeof f);
    return f;
}

static void emit_table(sbuf *b, const key_table *t, const void *base, int indent, int docs);
static void emit_flow(sbuf *b, const key_table *t, const void *base);

/* The value of a key that is not KEY_SPECIAL or a block section. */
static void emit_value(sbuf *b, const key_def *k, const void *base)
{
    const char *at = (const char *)base + k->off;
    switch (k->kind) {
    case KEY_INT: put(b, "%d", get_int(base, k->off)); break;
    case KEY_U64: {
        uint64_t u;
        memcpy(&u, at, sizeof u);
        put(b, "%llu", (unsigned long long)u);
        break;
    }
    case KEY_FLOAT: put_real(b, get_float(base, k->off), 1); break;
    case KEY_DOUBLE: {
        double d;
        memcpy(&d, at, sizeof d);
        put_real(b, d, 0);
        break;
    }
    case KEY_BOOL: put(b, "%s", get_int(base, k->off) ? "true" : "false"); break;
    case KEY_STR:
        if (!at[0] && k->null_note)
            put(b, "null   # %s", k->null_note);
        else
            put_str(b, at);
        break;
    case KEY_ENUM: put(b, "%s", enum_name(k->names, get_int(base, k->off))); break;
    case KEY_ENUM_STR: put_str(b, at); break;
    case KEY_PAIR:
        put(b, "[");
        put_real(b, get_float(base, k->off), 1);
        put(b, ", ");
        put_real(b, get_float(base, k->off2), 1);
        put(b, "]");
        break;
    case KEY_OUT:
        if (get_int(base, k->off) == TH_OUT_LABELS)
            put(b, "labels");
        else
            put(b, "%d", get_int(base, k->off));
        break;
    case KEY_SECTION:
        /* An optional section is null while its first key is 0 (unset). */
        if ((k->flags & KEY_OPTIONAL) && get_int(base, k->sub->keys[0].off) == 0)
            put(b, "null");
        else
            emit_flow(b, k->sub, base);
        break;
    case KEY_SPECIAL: break;
    }
}

/* {k: v, k: v} on one line. */
static void emit_flow(sbuf *b, const key_table *t, const void *base)
{
    for (int i = 0; i < t->n; i++) {
        put(b, "%s%s: ", i ? ", " : "{", t->keys[i].name);
        emit_value(b, &t->keys[i], base);
    }
    put(b, "}");
}

/* "# doc (a | b)" above a key, at its indentation: comment lines, so the
 * documented YAML reads back as the same config. */
static void emit_doc(sbuf *b, const key_def *k, const char *lead)
{
    put(b, "%s# %s", lead, k->doc ? k->doc : "");
    for (int i = 0; k->names && k->names[i]; i++) put(b, "%s%s", i ? " | " : " (", k->names[i]);
    put(b, "%s\n", k->names ? ")" : "");
}

/* One key a line, sections as blocks indented under their key. */
static void emit_table(sbuf *b, const key_table *t, const void *base, int indent, int docs)
{
    char lead[16];
    snprintf(lead, sizeof lead, "%*s", indent, "");
    for (int i = 0; i < t->n; i++) {
        const key_def *k = &t->keys[i];
        if (docs) emit_doc(b, k, lead);
        if (k->kind == KEY_SPECIAL) {
            k->emit(b, k, base, lead);
        } else if (k->kind == KEY_SECTION && !(k->flags & KEY_FLOW)) {
            put(b, "%s%s:\n", lead, k->name);
            emit_table(b, k->sub, base, indent + 2, docs);
            continue;
        } else {
            put(b, "%s%s: ", lead, k->name);
            emit_value(b, k, base);
        }
        put(b, "\n");
    }
}

/* A list of names on one line: [a, b]. */
static void put_names(sbuf *b, const char *names, size_t len, int n)
{
    put(b, "[");
    for (int i = 0; i < n; i++) {
        put(b, "%s", i ? ", " : "");
        put_str(b, names + (size_t)i * len);
    }
    put(b, "]");
}

void cfg_emit_labels(sbuf *b, const key_def *k, const void *base, const char *lead)
{
    const th_config *cfg = base;
    put(b, "%s%s: ", lead, k->name);
    put_names(b, cfg->data.labels[0], sizeof cfg->data.labels[0], cfg->data.n_labels);
    if (!cfg->data.n_labels) put(b, "   # every label in the file");
}

void cfg_emit_freeze(sbuf *b, const key_def *k, const void *base, const char *lead)
{
    const th_config *cfg = base;
    put(b, "%s%s: ", lead, k->name);
    put_names(b, cfg->train.freeze[0], sizeof cfg->train.freeze[0], cfg->train.n_freeze);
}

void cfg_emit_split(sbuf *b, const key_def *k, const void *base, const char *lead)
{
    const th_config *cfg = base;
    put(b, "%s%s: ", lead, k->name);
    if (cfg->data.split_mode == TH_SPLIT_MODE_PREDEFINED)
        put(b, "predefined");
    else
        emit_flow(b, k->sub, base);
}

void cfg_emit_input(sbuf *b, const key_def *k, const void *base, const char *lead)
{
    const th_model_spec *m = &((const th_config *)base)->model;
    put(b, "%s%s: [%d, %d, %d]", lead, k->name, m->c, m->h, m->w);
}

void cfg_emit_layer_name(sbuf *b, const key_def *k, const void *base, const char *lead)
{
    const th_layer_spec *l = base;
    if (!l->name[0]) return;
    put(b, "%s%s: ", lead, k->name);
    put_str(b, l->name);
}

void cfg_emit_from(sbuf *b, const key_def *k, const void *base, const char *lead)
{
    const th_layer_spec *l = base;
    if (!l->n_from) return;
    put(b, "%s%s: ", lead, k->name);
    put_names(b, l->from[0], sizeof l->from[0], l->n_from);
}

/* Each layer on a line of its own, {type: t, ...} with its type's keys. */
void cfg_emit_layers(sbuf *b, const key_def *k, const void *base, const char *lead)
{
    const th_model_spec *m = &((const th_config *)base)->model;
    const key_def *keys = k->sub->keys;
    put(b, "%s%s:", lead, k->name);
    for (int i = 0; i < m->n_layers; i++) {
        const th_layer_spec *l = &m->layers[i];
        const signed char *own = cfg_layer_type_keys[l->type];
        put(b, "\n%s  - {%s: %s", lead, keys[CFG_LK_TYPE].name, th_layer_type_name(l->type));
        for (int j = 1; own[j] >= 0; j++) {
            const key_def *lk = &keys[own[j]];
            if (lk->kind == KEY_SPECIAL) {
                lk->emit(b, lk, l, ", ");
            } else {
                put(b, ", %s: ", lk->name);
                emit_value(b, lk, l);
            }
        }
        put(b, "}");
    }
}

char *cfg_to_yaml(const th_config *cfg, int docs)
{
    sbuf b = {0};
    /* th_config_defaults_yaml writes its own header. */
    if (!docs) put(&b, "# Resolved configuration: every default filled in.\n");
    emit_table(&b, &cfg_root_table, cfg, 0, docs);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

char *th_config_to_yaml(const th_config *cfg)
{
    return cfg_to_yaml(cfg, 0);
}

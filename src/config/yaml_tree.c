/* yaml_tree.c - libyaml's document API, copied into a tree of yt_nodes.
 *
 * libyaml's own document keeps nodes in an array addressed by index and
 * resolves aliases to shared indices; copying into our tree turns that into
 * plain pointers, and lets overrides add keys without touching libyaml's
 * structures. Aliases are copied too, within a depth and node budget, so an
 * alias loop or an exponential "billion laughs" document fails cleanly.
 */
#include "yaml_tree.h"

#include "thorax/config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define YT_PATH_MAX 512

/* Each allocation carries a link to the previous one, so freeing the tree is
 * one walk and no error path has to free anything. */
typedef union yt_alloc {
    union yt_alloc *next;
    max_align_t align;
} yt_alloc;

static void *tree_alloc(yt_tree *t, size_t size)
{
    yt_alloc *a = calloc(1, sizeof *a + size);
    if (!a) return NULL;
    a->next = t->allocs;
    t->allocs = a;
    return a + 1;
}

static char *tree_strndup(yt_tree *t, const char *s, size_t n)
{
    char *p = tree_alloc(t, n + 1);
    if (p) memcpy(p, s, n);
    return p;
}

void yt_free(yt_tree *t)
{
    yt_alloc *a = t->allocs;
    while (a) {
        yt_alloc *next = a->next;
        free(a);
        a = next;
    }
    t->allocs = NULL;
}

typedef struct conv {
    yt_tree *t;
    yaml_document_t *doc;
    const char *where;  /* file name, for nodes from a file */
    const char *set;    /* "--set a.b=v", for nodes from an override */
    int budget;         /* nodes still allowed */
    th_err *err;
} conv;

static void conv_fail(const conv *cx, int line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void conv_fail(const conv *cx, int line, const char *path, const char *fmt, ...)
{
    char what[512], where[YT_PATH_MAX + 32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (cx->set)
        snprintf(where, sizeof where, "%s", cx->set);
    else
        snprintf(where, sizeof where, "%s:%d", cx->where, line);
    if (path[0])
        th_errf(cx->err, "%s: %s: %s", where, path, what);
    else
        th_errf(cx->err, "%s: %s", where, what);
}

static yt_node *convert(conv *cx, yaml_node_t *yn, const char *path, int depth)
{
    int line = (int)yn->start_mark.line + 1;
    if (depth > TH_CONFIG_MAX_DEPTH) {
        conv_fail(cx, line, path, "nested more than %d levels deep (an alias that contains itself?)",
                  TH_CONFIG_MAX_DEPTH);
        return NULL;
    }
    if (--cx->budget < 0) {
        conv_fail(cx, line, path, "more than %d values (aliases expanding without bound?)", TH_CONFIG_MAX_VALUES);
        return NULL;
    }
    yt_node *n = tree_alloc(cx->t, sizeof *n);
    if (!n) goto oom;
    n->line = line;
    n->set = cx->set;

    switch (yn->type) {
    case YAML_SCALAR_NODE: {
        const char *s = (const char *)yn->data.scalar.value;
        size_t len = yn->data.scalar.length;
        if (memchr(s, 0, len)) {
            conv_fail(cx, line, path, "contains a NUL character");
            return NULL;
        }
        n->kind = YT_SCALAR;
        n->plain = yn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (!(n->str = tree_strndup(cx->t, s, len))) goto oom;
        return n;
    }
    case YAML_SEQUENCE_NODE: {
        yaml_node_item_t *items = yn->data.sequence.items.start;
        n->kind = YT_SEQ;
        n->n = (int)(yn->data.sequence.items.top - items);
        if (!(n->vals = tree_alloc(cx->t, (size_t)n->n * sizeof *n->vals))) goto oom;
        for (int i = 0; i < n->n; i++) {
            char sub[YT_PATH_MAX];
            snprintf(sub, sizeof sub, "%s[%d]", path, i);
            n->vals[i] = convert(cx, yaml_document_get_node(cx->doc, items[i]), sub, depth + 1);
            if (!n->vals[i]) return NULL;
        }
        return n;
    }
    case YAML_MAPPING_NODE: {
        yaml_node_pair_t *pairs = yn->data.mapping.pairs.start;
        n->kind = YT_MAP;
        n->n = (int)(yn->data.mapping.pairs.top - pairs);
        n->keys = tree_alloc(cx->t, (size_t)n->n * sizeof *n->keys);
        n->vals = tree_alloc(cx->t, (size_t)n->n * sizeof *n->vals);
        if (!n->keys || !n->vals) goto oom;
        for (int i = 0; i < n->n; i++) {
            yaml_node_t *k = yaml_document_get_node(cx->doc, pairs[i].key);
            if (k->type != YAML_SCALAR_NODE) {
                conv_fail(cx, (int)k->start_mark.line + 1, path, "a key must be a name, not a list or a mapping");
                return NULL;
            }
            if (!(n->keys[i] = convert(cx, k, path, depth + 1))) return NULL;
            const char *key = n->keys[i]->str;
            char sub[YT_PATH_MAX];
            snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", key);
            for (int j = 0; j < i; j++) {
                if (strcmp(n->keys[j]->str, key) == 0) {
                    conv_fail(cx, n->keys[i]->line, sub, "duplicate key (first given at line %d)",
                              n->keys[j]->line);
                    return NULL;
                }
            }
            n->vals[i] = convert(cx, yaml_document_get_node(cx->doc, pairs[i].value), sub, depth + 1);
            if (!n->vals[i]) return NULL;
        }
        return n;
    }
    default:
        conv_fail(cx, line, path, "empty node");
        return NULL;
    }

oom:
    conv_fail(cx, line, path, "out of memory");
    return NULL;
}

static int syntax_error(const yaml_parser_t *p, const char *where, const char *set, th_err *err)
{
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (set) where = set;
    if (p->error == YAML_MEMORY_ERROR) return th_errf(err, "%s: out of memory while parsing YAML", where);
    /* The reader checks the encoding before any line is known. */
    if (p->error == YAML_READER_ERROR)
        return th_errf(err, "%s: YAML syntax error: %s (at byte %zu)", where, problem, p->problem_offset);
    char context[160] = "";
    if (p->context && set)
        snprintf(context, sizeof context, " (%s)", p->context);
    else if (p->context)
        snprintf(context, sizeof context, " (%s at line %zu)", p->context, p->context_mark.line + 1);
    if (set) return th_errf(err, "%s: YAML syntax error: %s%s", where, problem, context);
    return th_errf(err, "%s:%zu: YAML syntax error: %s%s", where, p->problem_mark.line + 1, problem, context);
}

/* A configuration is one document; a second one would be silently ignored. */
static int check_no_second_document(yaml_parser_t *p, const char *where, const char *set, th_err *err)
{
    yaml_document_t doc;
    if (!yaml_parser_load(p, &doc)) return syntax_error(p, where, set, err);
    int rc = 0;
    if (yaml_document_get_root_node(&doc)) {
        if (set)
            rc = th_errf(err, "%s: only one YAML value is allowed", set);
        else
            rc = th_errf(err, "%s:%zu: only one YAML document is allowed", where, doc.start_mark.line + 1);
    }
    yaml_document_delete(&doc);
    return rc;
}

int yt_parse(yt_tree *t, const char *text, size_t len, const char *where, const char *set, const char *path,
             yt_node **root, th_err *err)
{
    conv cx = {.t = t, .where = where, .budget = TH_CONFIG_MAX_VALUES, .err = err};
    if (set && !(cx.set = tree_strndup(t, set, strlen(set)))) return th_errf(err, "%s: out of memory", set);

    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return th_errf(err, "%s: out of memory", set ? set : where);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    yaml_document_t doc;
    if (!yaml_parser_load(&p, &doc)) {
        syntax_error(&p, where, set, err);
        yaml_parser_delete(&p);
        return -1;
    }
    cx.doc = &doc;
    yaml_node_t *top = yaml_document_get_root_node(&doc);
    if (top) {
        *root = convert(&cx, top, path, 0);
    } else if ((*root = tree_alloc(t, sizeof **root))) {
        (*root)->kind = YT_SCALAR;
        (*root)->plain = 1;
        (*root)->str = "";
        (*root)->set = cx.set;
    } else {
        th_errf(err, "%s: out of memory", set ? set : where);
    }
    yaml_document_delete(&doc);
    int rc = *root ? check_no_second_document(&p, where, cx.set, err) : -1;
    yaml_parser_delete(&p);
    return rc;
}

yt_node *yt_new_map(yt_tree *t, int line, const char *set)
{
    yt_node *m = tree_alloc(t, sizeof *m);
    if (!m) return NULL;
    m->kind = YT_MAP;
    m->line = line;
    m->set = set;
    return m;
}

yt_node **yt_map_slot(yt_tree *t, yt_node *m, const char *key, const char *set)
{
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->keys[i]->str, key) == 0) return &m->vals[i];

    yt_node **keys = tree_alloc(t, (size_t)(m->n + 1) * sizeof *keys);
    yt_node **vals = tree_alloc(t, (size_t)(m->n + 1) * sizeof *vals);
    yt_node *k = tree_alloc(t, sizeof *k);
    char *s = tree_strndup(t, key, strlen(key));
    if (!keys || !vals || !k || !s) return NULL;
    if (m->n) {
        memcpy(keys, m->keys, (size_t)m->n * sizeof *keys);
        memcpy(vals, m->vals, (size_t)m->n * sizeof *vals);
    }
    k->kind = YT_SCALAR;
    k->str = s;
    k->set = set;
    keys[m->n] = k;
    m->keys = keys;
    m->vals = vals;
    return &m->vals[m->n++];
}

int yt_is_null(const yt_node *n)
{
    if (!n) return 1;
    if (n->kind != YT_SCALAR || !n->plain) return 0;
    const char *s = n->str;
    return !s[0] || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

const yt_node *yt_get(const yt_node *m, const char *key)
{
    if (!m || m->kind != YT_MAP) return NULL;
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->keys[i]->str, key) == 0) return yt_is_null(m->vals[i]) ? NULL : m->vals[i];
    return NULL;
}

void yt_where(const yt_node *n, const char *file, char *buf, size_t cap)
{
    if (n && n->set)
        snprintf(buf, cap, "%s", n->set);
    else if (n && n->line > 0)
        snprintf(buf, cap, "%s:%d", file, n->line);
    else
        snprintf(buf, cap, "%s", file);
}

const char *yt_describe(const yt_node *n, char *buf, size_t cap)
{
    if (yt_is_null(n)) return "nothing";
    if (n->kind == YT_MAP) return "a mapping";
    if (n->kind == YT_SEQ) return "a list";
    /* Long values are cut: the message only has to recognisably quote it. */
    if (strlen(n->str) > 40)
        snprintf(buf, cap, "'%.37s...'", n->str);
    else
        snprintf(buf, cap, "'%s'", n->str);
    return buf;
}

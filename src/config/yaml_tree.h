/* yaml_tree.h - a YAML document as a small tree that remembers lines.
 *
 * Internal to src/config. libyaml parses the text; the tree keeps what the
 * configuration needs: mappings, sequences and scalars, each with the line it
 * came from, so that every error can name the line. Overrides from `--set`
 * are parsed into the same tree and marked, so their errors name the
 * override instead of a line of a file they never were in.
 *
 * Every node and string belongs to the tree and is freed with it.
 */
#ifndef THORAX_YAML_TREE_H
#define THORAX_YAML_TREE_H

#include <stddef.h>
#include "thorax/util.h"

typedef enum yt_kind { YT_SCALAR, YT_SEQ, YT_MAP } yt_kind;

typedef struct yt_node yt_node;
struct yt_node {
    yt_kind kind;
    int line;           /* 1-based line in the text it was parsed from; 0 if made up */
    const char *set;    /* "--set a.b=v" when it came from that override; NULL from the file */
    int plain;          /* scalar written without quotes, so it may mean null */
    const char *str;    /* scalar text */
    int n;              /* sequence items or mapping pairs */
    yt_node **keys;     /* mapping keys, all scalars */
    yt_node **vals;     /* mapping values or sequence items */
};

typedef struct yt_tree {
    void *allocs;       /* every allocation, chained, for yt_free */
} yt_tree;

/* Parses text[0..len) into nodes owned by t. For a file, `where` is its name
 * and set is NULL; for an override, set is "--set a.b=v" (it is copied) and
 * where is ignored. `path` is the dotted key the text sits at ("" for a whole
 * file), so that a duplicate key is reported by its full name. An empty
 * document gives a null scalar. */
int yt_parse(yt_tree *t, const char *text, size_t len, const char *where, const char *set, const char *path,
             yt_node **root, th_err *err);
void yt_free(yt_tree *t);

/* An empty mapping, for an override to create keys in. set as in yt_node. */
yt_node *yt_new_map(yt_tree *t, int line, const char *set);
/* The value slot of key in map m, adding the key (with a NULL value, marked
 * as coming from set) when m does not have it. NULL when out of memory. */
yt_node **yt_map_slot(yt_tree *t, yt_node *m, const char *key, const char *set);

/* The value of key in m, or NULL when m is NULL, the key is absent or its
 * value is null: a null value means "use the default". */
const yt_node *yt_get(const yt_node *m, const char *key);
int yt_is_null(const yt_node *n);

/* "file:line", "file" when the line is unknown, or the node's "--set a.b=v". */
void yt_where(const yt_node *n, const char *file, char *buf, size_t cap);

/* "a mapping", "a list", "null" or the scalar quoted: for "got ..." messages. */
const char *yt_describe(const yt_node *n, char *buf, size_t cap);

#endif

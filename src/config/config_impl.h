/* config_impl.h - what the files of src/config share; not part of the API.
 *
 * schema.c declares every key once, in the table of its mapping; read.c
 * walks the YAML tree into a th_config by those tables, overrides.c grafts
 * `--set` values onto the tree before the walk (checking their paths against
 * the tables), emit.c writes the resolved YAML from the tables and
 * compare.c compares two configs through it; config.c is the entry points.
 */
#ifndef THORAX_CONFIG_IMPL_H
#define THORAX_CONFIG_IMPL_H

#include <math.h>
#include <stddef.h>

#include "thorax/config.h"
#include "yaml_tree.h"

/* Largest channel count, image side, kernel, pad or stride accepted: far
 * beyond any X-ray network, and small enough that no shape product overflows. */
#define DIM_MAX 65536
#define KEY_MAX 256

/* One load: where messages say the values came from, and the tree that owns
 * every node made along the way. */
typedef struct ctx {
    const char *file;           /* the config's name in messages */
    const char *default_name;   /* the run name when the file has none */
    yt_tree *tree;              /* owns stand-in nodes and override values */
    th_err *err;
} ctx;


/* A closed, open or half-open interval; hi = HUGE_VAL for none. Brace
 * initialisers, for the key tables. */
typedef struct bounds {
    double lo, hi;
    int lo_open, hi_open;
} bounds;

#define AT_LEAST(x) {(x), HUGE_VAL, 0, 0}
#define ABOVE(x) {(x), HUGE_VAL, 1, 0}
#define CLOSED(a, b) {(a), (b), 0, 0}
#define OPEN(a, b) {(a), (b), 1, 1}
#define LEFT_OPEN(a, b) {(a), (b), 1, 0}   /* (a, b] */
#define RIGHT_OPEN(a, b) {(a), (b), 0, 1}  /* [a, b) */

/* ---- schema.c: the keys ---------------------------------------------------
 *
 * Every key is declared once, in a table of its mapping: its name, what it
 * holds and where (offsetof into th_config, or into th_layer_spec for a
 * layer's keys), its default and its range. The walk (read.c), the resolved
 * YAML (emit.c, and so th_config_compare) and the override paths
 * (overrides.c) all go by the tables. A table's order is the order keys are
 * read, listed in messages and written. */

typedef enum key_kind {
    KEY_INT,        /* int in [lo, hi] */
    KEY_U64,        /* uint64_t in [lo, hi] */
    KEY_FLOAT,      /* float within b */
    KEY_DOUBLE,     /* double within b */
    KEY_BOOL,       /* int, 0 or 1 */
    KEY_STR,        /* char[cap], never truncated */
    KEY_ENUM,       /* an enum (int-sized): the index of its spelling in names */
    KEY_ENUM_STR,   /* one of names, kept as the name itself in char[cap] */
    KEY_PAIR,       /* [x, y]: floats within b at off and off2 */
    KEY_OUT,        /* a layer's out: an int in [lo, hi], or for a dense layer 'labels' (TH_OUT_LABELS) */
    KEY_SECTION,    /* a mapping, read and written with the table sub */
    KEY_SPECIAL,    /* a shape of its own: read and emit say how */
} key_kind;

enum {
    KEY_REQUIRED = 1,
    KEY_MAY_BE_EMPTY = 2,   /* KEY_STR: "" is allowed */
    KEY_RUN_NAME = 4,       /* KEY_STR: defaults to the file's base name */
    KEY_FLOW = 8,           /* KEY_SECTION: written as {k: v, ...} on one line */
    KEY_OPTIONAL = 16,      /* KEY_SECTION: absent leaves its fields 0, and is written null while its first is 0 */
    KEY_OFF_OK = 32,        /* KEY_SECTION: false or none means every key at its default */
    KEY_LIST = 64,          /* KEY_SPECIAL: a list of mappings of the table sub ("key[]" in override paths) */
};

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

typedef struct key_def key_def;
typedef struct key_table key_table;

/* A key's check against keys read before it (k set) or a table's once all
 * its keys are read (k NULL); m is the mapping, possibly NULL. */
typedef int (*key_check_fn)(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base);

struct key_def {
    const char *name;
    key_kind kind;
    int flags;
    size_t off, off2;
    size_t cap;
    long long lo, hi;
    bounds b;
    double def, def2;               /* numbers, bools, enum indices; KEY_PAIR: both */
    const char *def_str;            /* KEY_STR */
    const char *const *names;       /* KEY_ENUM, KEY_ENUM_STR (NULL-terminated) */
    double (*def_of)(const void *base);    /* a default that depends on a key read before */
    const key_table *sub;           /* KEY_SECTION, and a KEY_SPECIAL with keys of its own */
    /* KEY_SPECIAL: reads the key from mapping m (at path) into base; writes
     * lead, "name: " and the value (nothing at all when it is to be left out). */
    int (*read)(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base);
    void (*emit)(sbuf *b, const key_def *k, const void *base, const char *lead);
    key_check_fn check;
    const char *null_note;          /* KEY_STR: "" is written as null with this comment */
    /* The documentation (doc.c: thorax config --reference, --explain,
     * --defaults), each one line: what the key does; for every spelling of
     * names, what it means; the default in words where it is not a constant
     * (def_of, KEY_SPECIAL, KEY_RUN_NAME); the shape of a KEY_SPECIAL value.
     * th_config_docs_check fails on any of them missing. */
    const char *doc;
    const char *const *name_docs;   /* KEY_ENUM, KEY_ENUM_STR: parallel to names */
    const char *def_doc;
    const char *type_doc;
};

struct key_table {
    const char *path;               /* dotted, as messages name the mapping; "" for the top level */
    const key_def *keys;
    int n;
    key_check_fn check;
    const char *doc;                /* one line: what the mapping is for (doc.c) */
};

extern const key_table cfg_root_table;

/* model.layers[]: every layer key; the type, name and from keys come first
 * in every type's list, and are read by read.c itself. */
enum { CFG_LK_TYPE, CFG_LK_NAME, CFG_LK_FROM };
extern const key_table cfg_layer_table;
/* The keys of a layer type, as indices into cfg_layer_table.keys, -1 after the last. */
extern const signed char cfg_layer_type_keys[TH_LAYER_TYPE_COUNT][10];
/* What each layer type is, one line each, in th_layer_type order. */
extern const char *const cfg_layer_type_docs[TH_LAYER_TYPE_COUNT];

/* The table of the mapping at a dotted path ("[]" for any item of a list,
 * "" for the top level), or NULL when the schema has no mapping there. */
const key_table *cfg_table_at(const char *path);
/* The names of t's keys into out (NULL-terminated; cap >= t->n + 1). */
void cfg_table_names(const key_table *t, const char **out);

/* The index of s in words (NULL-terminated), or -1. */
int cfg_word_index(const char *s, const char *const *words);
/* words joined with sep into buf, cut at cap. */
void cfg_join_words(char *buf, size_t cap, const char *const *words, const char *sep);

/* ---- read.c ---- */

/* Fails with "<where>: <path.key>: <problem>", where comes from the node at. */
int cfg_fail(const ctx *c, const yt_node *at, const char *path, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* "path.key", "path[3]" or just one of them. */
void cfg_join_key(char *buf, size_t cap, const char *path, const char *key);
/* A range as messages and the reference state it: ">= 0", "in (0, 1]". */
void cfg_bounds_text(bounds b, char *buf, size_t cap);
/* Walks the tree from its root mapping into cfg. */
int cfg_read(const ctx *c, const yt_node *root, th_config *cfg);

/* The special shapes (KEY_SPECIAL). */
int cfg_read_labels(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base);
int cfg_read_split(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base);
int cfg_read_input(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base);
int cfg_read_layers(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base);
int cfg_read_layer_name(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base);
int cfg_read_from(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base);
int cfg_read_freeze(const ctx *c, const yt_node *m, const char *path, const key_def *k, void *base);

/* ---- emit.c ---- */

/* The resolved YAML (th_config_to_yaml), with each key's doc as a comment
 * line above it when docs is set (th_config_defaults_yaml). NULL when out
 * of memory. */
char *cfg_to_yaml(const th_config *cfg, int docs);

void cfg_emit_labels(sbuf *b, const key_def *k, const void *base, const char *lead);
void cfg_emit_split(sbuf *b, const key_def *k, const void *base, const char *lead);
void cfg_emit_input(sbuf *b, const key_def *k, const void *base, const char *lead);
void cfg_emit_layers(sbuf *b, const key_def *k, const void *base, const char *lead);
void cfg_emit_layer_name(sbuf *b, const key_def *k, const void *base, const char *lead);
void cfg_emit_from(sbuf *b, const key_def *k, const void *base, const char *lead);
void cfg_emit_freeze(sbuf *b, const key_def *k, const void *base, const char *lead);

/* ---- overrides.c ---- */

/* Grafts one "a.b[2].c=value" onto the tree at root. */
int cfg_apply_set(const ctx *c, yt_node *root, const char *set);

#endif

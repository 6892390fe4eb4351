/* config_impl.h - what the files of src/config share; not part of the API.
 *
 * schema.c says which keys each mapping takes and how enums are spelled,
 * read.c walks the YAML tree into a th_config, overrides.c grafts `--set`
 * values onto the tree before the walk, emit.c writes the resolved YAML and
 * compare.c compares two configs through it; config.c is the entry points.
 */
#ifndef THORAX_CONFIG_IMPL_H
#define THORAX_CONFIG_IMPL_H

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


/* ---- schema.c ---- */

extern const char *const cfg_root_keys[];
extern const char *const cfg_layer_keys[TH_LAYER_TYPE_COUNT][10];
extern const char *const cfg_normalize_names[], *const cfg_on_leak_names[], *const cfg_cache_names[];
extern const char *const cfg_schedule_names[], *const cfg_eval_split_names[], *const cfg_cam_method_names[];

/* The keys of the mapping at a dotted path ("[]" for any item of a list), or
 * NULL when the schema has no mapping there. */
const char *const *cfg_section_keys(const char *path);
/* The index of s in words (NULL-terminated), or -1. */
int cfg_word_index(const char *s, const char *const *words);
/* words joined with sep into buf, cut at cap. */
void cfg_join_words(char *buf, size_t cap, const char *const *words, const char *sep);

/* ---- read.c ---- */

/* Fails with "<where>: <path.key>: <problem>", where comes from the node at. */
int cfg_fail(const ctx *c, const yt_node *at, const char *path, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Walks the tree from its root mapping into cfg. */
int cfg_read(const ctx *c, const yt_node *root, th_config *cfg);

/* ---- overrides.c ---- */

/* Grafts one "a.b[2].c=value" onto the tree at root. */
int cfg_apply_set(const ctx *c, yt_node *root, const char *set);

#endif

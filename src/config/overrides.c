/* overrides.c - `--set a.b[2].c=value`: each override is grafted onto the
 * YAML tree before the walk, rather than applied to the struct after it, so
 * that an overridden value is validated by exactly the same code as one
 * written in the file, and `--set model.layers=[...]` needs no special case.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_impl.h"

/* Grafts one "a.b[2].c=value" onto the tree. The path is checked against the
 * schema first, so a typo fails here instead of creating a key that the walk
 * would then report without saying it came from the command line. */
int cfg_apply_set(const ctx *c, yt_node *root, const char *set)
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
    /* YAML reads an empty value as null, which the walk takes for "not
     * given": a forgotten value would silently become the default (or a
     * required key would be blamed on the config file). null says so. */
    if (!eq[strspn(eq + 1, " \t") + 1])
        return th_errf(c->err, "%s: no value for %s (%s=null restores its default, %s=\"\" is an empty string)", label,
                       key, key, key);

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
            const key_table *t = cfg_table_at(schema);
            const char *keys[32];
            if (!t)
                return th_errf(c->err, "%s: %.*s is a single value, it has no key '%s'", label, shown_len, shown,
                               name);
            cfg_table_names(t, keys);
            if (cfg_word_index(name, keys) < 0) {
                const char *near = th_config_nearest(name, keys);
                char hint[KEY_MAX + 24], list[200];
                cfg_join_words(list, sizeof list, keys, ", ");
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

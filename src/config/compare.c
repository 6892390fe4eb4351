/* compare.c - comparing two configs (resume, th_config_compare).
 *
 * Both are emitted as resolved YAML and read back as (dotted key, value) pairs,
 * so the comparison covers every key the emitter knows, defaults included, and
 * names the first difference the way a user would write the key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_impl.h"

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

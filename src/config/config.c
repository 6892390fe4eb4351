/* config.c - the experiment configuration's entry points: loading a file
 * or a string, naming the labels, and which layers train.freeze freezes.
 *
 * Loading happens in three passes over a yt_node tree (yaml_tree.c): parse
 * the file, graft each override onto the tree (overrides.c), then walk the
 * tree against the schema into a th_config (read.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_impl.h"

/* "configs/quickstart.yaml" -> "quickstart". */
static void base_name(const char *path, char *buf, size_t cap)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    snprintf(buf, cap, "%.*s", (int)(n < cap ? n : cap - 1), base);
}

static int load(th_config *cfg, const char *text, size_t len, const char *source, const char *default_name,
                const char *const *sets, int n_sets, th_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    if (strlen(source) >= sizeof cfg->source) return th_errf(err, "%.200s...: the file name is too long", source);
    if (len > (size_t)TH_CONFIG_MAX_BYTES)
        return th_errf(err, "%s: larger than %ld bytes (%ld MiB), the limit of a configuration: the wrong file?",
                       source, (long)TH_CONFIG_MAX_BYTES, (long)TH_CONFIG_MAX_BYTES >> 20);
    memcpy(cfg->source, source, strlen(source) + 1);

    yt_tree tree = {0};
    ctx c = {.file = source, .default_name = default_name, .tree = &tree, .err = err};
    yt_node *root;
    char d[64];
    int rc = yt_parse(&tree, text, len, source, NULL, "", &root, err);
    /* An empty file is an empty mapping, which overrides may still fill. */
    if (rc == 0 && yt_is_null(root) && !(root = yt_new_map(&tree, 1, NULL))) rc = th_errf(err, "out of memory");
    if (rc == 0 && root->kind != YT_MAP)
        rc = cfg_fail(&c, root, "", NULL, "the top level must be a mapping of keys (name:, data:, model: ...), got %s",
                  yt_describe(root, d, sizeof d));
    for (int i = 0; rc == 0 && i < n_sets; i++) rc = cfg_apply_set(&c, root, sets[i]);
    if (rc == 0) rc = cfg_read(&c, root, cfg);
    yt_free(&tree);
    return rc;
}

int th_config_load_string(th_config *cfg, const char *yaml, const char *name, const char *const *sets, int n_sets,
                          th_err *err)
{
    char def[TH_PATH_MAX] = "config";
    if (name) base_name(name, def, sizeof def);
    return load(cfg, yaml, strlen(yaml), name ? name : "<string>", def, sets, n_sets, err);
}

/* Reads at most TH_CONFIG_MAX_BYTES + 1 bytes: enough for load() to tell a
 * file over the limit, without reading a wrong multi-gigabyte one whole. */
static int read_file(const char *path, char **text, size_t *len, th_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return th_errf(err, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            if (cap > (size_t)TH_CONFIG_MAX_BYTES) break;
            cap = cap ? 2 * cap : 8192;
            if (cap > (size_t)TH_CONFIG_MAX_BYTES) cap = (size_t)TH_CONFIG_MAX_BYTES + 1;
            char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(f);
                return th_errf(err, "%s: out of memory reading it", path);
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int failed = ferror(f);
    int saved = errno;
    fclose(f);
    if (failed) {
        free(buf);
        return th_errf(err, "%s: cannot read: %s", path, strerror(saved));
    }
    *text = buf;
    *len = n;
    return 0;
}

int th_config_load(th_config *cfg, const char *path, const char *const *sets, int n_sets, th_err *err)
{
    char def[TH_PATH_MAX], *text = NULL;
    size_t len = 0;
    memset(cfg, 0, sizeof *cfg);
    if (read_file(path, &text, &len, err)) return -1;
    base_name(path, def, sizeof def);
    int rc = load(cfg, text, len, path, def, sets, n_sets, err);
    free(text);
    return rc;
}

int th_config_freeze_matches(const char *entry, const char *name)
{
    size_t n = strlen(entry);
    return n > 0 && !strncmp(entry, name, n) && (name[n] == '\0' || name[n] == '.');
}

int th_config_freezes(const th_config *cfg, const char *name)
{
    for (int k = 0; k < cfg->train.n_freeze; k++)
        if (th_config_freeze_matches(cfg->train.freeze[k], name)) return 1;
    return 0;
}

int th_config_name_labels(th_config *cfg, const char *const *names, const int *col, int n, th_err *err)
{
    if (n > TH_MAX_LABELS) return th_errf(err, "data.labels: %d labels, at most %d are supported", n, TH_MAX_LABELS);
    for (int k = 0; k < n; k++) {
        const char *name = names[col[k]];
        if (strlen(name) >= sizeof cfg->data.labels[k])
            return th_errf(err, "data.labels: label '%s' is longer than %zu characters", name,
                           sizeof cfg->data.labels[k] - 1);
        snprintf(cfg->data.labels[k], sizeof cfg->data.labels[k], "%s", name);
    }
    cfg->data.n_labels = n;
    return 0;
}

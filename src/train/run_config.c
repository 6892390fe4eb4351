/* run_config.c - the checks of a configuration that need the network
 * (thorax/train.h): th_model_graph expands and walks it, and every
 * message starts where the loader recorded the key (th_config.at), so it
 * reads as if the loader had made it. */
#include "thorax/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thorax/nn.h"

/* What a train.freeze entry may name: every layer of the expanded network
 * (blocks give layer1.0.conv1 ...) and every dotted prefix of one (layer1,
 * layer1.0), for "did you mean". NULL-terminated, into one allocation. */
static const char **freeze_words(const th_graph *g)
{
    size_t bytes = 0;
    int n = 0;
    for (int i = 0; i < g->n; i++) {
        int parts = 1;
        for (const char *p = g->nodes[i].spec.name; *p; p++) parts += *p == '.';
        bytes += (strlen(g->nodes[i].spec.name) + 1) * (size_t)parts;
        n += parts;
    }
    const char **words = malloc(sizeof *words * (size_t)(n + 1) + bytes);
    if (!words) return NULL;
    char *pool = (char *)(words + n + 1);
    int k = 0;
    for (int i = 0; i < g->n; i++) {
        const char *name = g->nodes[i].spec.name;
        for (const char *p = name;; p++) {
            if (*p != '.' && *p != '\0') continue;
            size_t len = (size_t)(p - name);
            int seen = 0;
            for (int j = 0; j < k && !seen; j++) seen = strlen(words[j]) == len && !strncmp(words[j], name, len);
            if (!seen) {
                memcpy(pool, name, len);
                pool[len] = '\0';
                words[k++] = pool;
                pool += len + 1;
            }
            if (!*p) break;
        }
    }
    words[k] = NULL;
    return words;
}

/* The model's top-level names (those without a '.') for a message, cut to cap. */
static void top_names(const char *const *words, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; words[i] && len + 8 < cap; i++) {
        if (strchr(words[i], '.')) continue;
        int w = snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", words[i]);
        if (w < 0 || (size_t)w >= cap - len - 5) {
            snprintf(buf + len, cap - len, "%s...", len ? ", " : "");
            return;
        }
        len += (size_t)w;
    }
}

/* Each train.freeze entry matches a layer of the model (a typo must not leave
 * the layer training), and something with parameters is left to train. */
static int check_freeze(const th_config *cfg, th_err *err)
{
    th_graph g;
    if (th_model_graph(&cfg->model, cfg->data.n_labels, &g, err)) return -1;
    const char **words = freeze_words(&g);
    int rc = words ? 0 : th_errf(err, "%s: train.freeze: out of memory", cfg->at.freeze);
    for (int k = 0; k < cfg->train.n_freeze && !rc; k++) {
        const char *e = cfg->train.freeze[k];
        int hit = 0;
        for (int i = 0; i < g.n && !hit; i++) hit = th_config_freeze_matches(e, g.nodes[i].spec.name);
        if (hit) continue;
        char key[16] = "", hint[512];
        if (cfg->at.freeze_listed) snprintf(key, sizeof key, "[%d]", k);
        const char *near = th_config_nearest(e, words);
        if (near) {
            snprintf(hint, sizeof hint, "did you mean '%s'?", near);
        } else {
            char names[400];
            top_names(words, names, sizeof names);
            snprintf(hint, sizeof hint, "its layers: %s", names);
        }
        rc = th_errf(err, "%s: train.freeze%s: '%s' matches no layer of the model (%s)", cfg->at.freeze_item[k], key,
                     e, hint);
    }
    int trains = 0;
    for (int i = 0; i < g.n && !rc && !trains; i++) {
        th_layer_type t = g.nodes[i].spec.type;
        int has_params = t == TH_LAYER_CONV || t == TH_LAYER_DENSE || t == TH_LAYER_BATCHNORM;
        trains = has_params && !th_config_freezes(cfg, g.nodes[i].spec.name);
    }
    if (!rc && !trains)
        rc = th_errf(err, "%s: train.freeze: freezes every layer that has parameters: nothing would train",
                     cfg->at.freeze);
    free(words);
    th_graph_free(&g);
    return rc;
}

int th_run_config_check(const th_config *cfg, th_err *err)
{
    /* With the labels named, the network's outputs are checked now rather
     * than when training starts; otherwise the dataset decides later. */
    if (th_model_spec_check(&cfg->model, cfg->data.n_labels, err)) return th_err_prefix(err, "%s: ", cfg->at.layers);
    return cfg->train.n_freeze ? check_freeze(cfg, err) : 0;
}

int th_run_config_load(th_config *cfg, const char *path, const char *const *sets, int n_sets, th_err *err)
{
    return th_config_load(cfg, path, sets, n_sets, err) || th_run_config_check(cfg, err) ? -1 : 0;
}

int th_run_config_load_string(th_config *cfg, const char *yaml, const char *name, const char *const *sets,
                              int n_sets, th_err *err)
{
    return th_config_load_string(cfg, yaml, name, sets, n_sets, err) || th_run_config_check(cfg, err) ? -1 : 0;
}

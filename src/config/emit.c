/* emit.c - the resolved YAML of a config (th_config_to_yaml): every key with
 * its value, defaults included, so a run directory's config.yaml reproduces
 * the run on its own and reads back as the same struct.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_impl.h"

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

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

static void line_str(sbuf *b, const char *key, const char *s)
{
    put(b, "%s: ", key);
    put_str(b, s);
    put(b, "\n");
}

static void line_float(sbuf *b, const char *key, float v)
{
    put(b, "%s: ", key);
    put_real(b, v, 1);
    put(b, "\n");
}

static void line_pair(sbuf *b, const char *key, float x, float y)
{
    put(b, "%s: [", key);
    put_real(b, x, 1);
    put(b, ", ");
    put_real(b, y, 1);
    put(b, "]\n");
}

static const char *enum_name(const char *const *names, int v)
{
    for (int i = 0; names[i]; i++)
        if (i == v) return names[i];
    return "invalid";
}

static void put_bn(sbuf *b, const th_layer_spec *l)
{
    put(b, ", momentum: ");
    put_real(b, l->momentum, 1);
    put(b, ", eps: ");
    put_real(b, l->eps, 1);
}

static void put_layer(sbuf *b, const th_layer_spec *l)
{
    put(b, "    - {type: %s", th_layer_type_name(l->type));
    if (l->name[0]) {
        put(b, ", name: ");
        put_str(b, l->name);
    }
    for (int k = 0; k < l->n_from; k++) {
        put(b, k == 0 ? ", from: [" : ", ");
        put_str(b, l->from[k]);
        if (k == l->n_from - 1) put(b, "]");
    }
    switch (l->type) {
    case TH_LAYER_CONV:
        put(b, ", out: %d, k: %d, stride: %d, pad: %d, bias: %s", l->out, l->k, l->stride, l->pad,
            l->bias ? "true" : "false");
        break;
    case TH_LAYER_MAXPOOL:
        put(b, ", k: %d, stride: %d, pad: %d", l->k, l->stride, l->pad);
        break;
    case TH_LAYER_AVGPOOL:
        put(b, ", k: %d, stride: %d", l->k, l->stride);
        break;
    case TH_LAYER_RESBLOCK:
        put(b, ", out: %d, stride: %d", l->out, l->stride);
        put_bn(b, l);
        break;
    case TH_LAYER_DENSEBLOCK:
        put(b, ", layers: %d, growth: %d, bn_size: %d", l->layers, l->growth, l->bn_size);
        put_bn(b, l);
        break;
    case TH_LAYER_TRANSITION:
        put(b, ", out: %d", l->out);
        put_bn(b, l);
        break;
    case TH_LAYER_BATCHNORM:
        put_bn(b, l);
        break;
    case TH_LAYER_DENSE:
        if (l->out == TH_OUT_LABELS)
            put(b, ", out: labels");
        else
            put(b, ", out: %d", l->out);
        put(b, ", bias: %s", l->bias ? "true" : "false");
        break;
    case TH_LAYER_DROPOUT:
        put(b, ", p: ");
        put_real(b, l->p, 1);
        break;
    default:
        break;
    }
    put(b, "}\n");
}

char *th_config_to_yaml(const th_config *cfg)
{
    sbuf b = {0};
    const th_optim_config *o = &cfg->train.optimizer;

    put(&b, "# Resolved configuration: every default filled in.\n");
    line_str(&b, "name", cfg->name);
    put(&b, "seed: %llu\n", (unsigned long long)cfg->seed);

    put(&b, "data:\n");
    line_str(&b, "  path", cfg->data.path);
    put(&b, "  labels: [");
    for (int i = 0; i < cfg->data.n_labels; i++) {
        put(&b, "%s", i ? ", " : "");
        put_str(&b, cfg->data.labels[i]);
    }
    put(&b, "]%s\n", cfg->data.n_labels ? "" : "   # every label in the file");
    if (cfg->data.split_mode == TH_SPLIT_MODE_PREDEFINED) {
        put(&b, "  split: predefined\n");
    } else {
        put(&b, "  split: {train: ");
        put_real(&b, cfg->data.train, 0);
        put(&b, ", val: ");
        put_real(&b, cfg->data.val, 0);
        put(&b, ", test: ");
        put_real(&b, cfg->data.test, 0);
        put(&b, "}\n");
    }
    put(&b, "  on_leak: %s\n", enum_name(cfg_on_leak_names, cfg->data.on_leak));
    put(&b, "  normalize: %s\n", enum_name(cfg_normalize_names, cfg->data.normalize));
    put(&b, "  cache: %s\n", enum_name(cfg_cache_names, cfg->data.cache));
    put(&b, "  augment:\n");
    put(&b, "    hflip: %s\n", cfg->data.augment.hflip ? "true" : "false");
    line_float(&b, "    rotate_deg", cfg->data.augment.rotate_deg);
    line_float(&b, "    shift", cfg->data.augment.shift);
    line_pair(&b, "    scale", cfg->data.augment.scale_lo, cfg->data.augment.scale_hi);
    line_float(&b, "    brightness", cfg->data.augment.brightness);
    line_float(&b, "    contrast", cfg->data.augment.contrast);

    put(&b, "model:\n");
    put(&b, "  input: [%d, %d, %d]\n", cfg->model.c, cfg->model.h, cfg->model.w);
    if (cfg->model_init[0]) line_str(&b, "  init", cfg->model_init);
    else put(&b, "  init: null   # the seed's random initialisation\n");
    put(&b, "  layers:\n");
    for (int i = 0; i < cfg->model.n_layers; i++) put_layer(&b, &cfg->model.layers[i]);

    put(&b, "train:\n");
    put(&b, "  epochs: %d\n", cfg->train.epochs);
    put(&b, "  batch_per_rank: %d\n", cfg->train.batch_per_rank);
    put(&b, "  optimizer:\n");
    put(&b, "    type: %s\n", enum_name(th_optim_names, o->type));
    line_float(&b, "    lr", o->lr);
    line_float(&b, "    momentum", o->momentum);
    put(&b, "    nesterov: %s\n", o->nesterov ? "true" : "false");
    line_float(&b, "    weight_decay", o->weight_decay);
    line_pair(&b, "    betas", o->beta1, o->beta2);
    line_float(&b, "    eps", o->eps);
    put(&b, "  schedule:\n");
    put(&b, "    type: %s\n", enum_name(cfg_schedule_names, cfg->train.schedule.type));
    line_float(&b, "    factor", cfg->train.schedule.factor);
    put(&b, "    patience: %d\n", cfg->train.schedule.patience);
    put(&b, "    step_epochs: %d\n", cfg->train.schedule.step_epochs);
    put(&b, "    warmup_epochs: %d\n", cfg->train.schedule.warmup_epochs);
    line_float(&b, "    min_lr", cfg->train.schedule.min_lr);
    put(&b, "  loss: %s\n", enum_name(th_loss_names, cfg->train.loss));
    put(&b, "  early_stop:\n");
    put(&b, "    patience: %d\n", cfg->train.early_stop_patience);
    put(&b, "  freeze: [");
    for (int i = 0; i < cfg->train.n_freeze; i++) {
        put(&b, "%s", i ? ", " : "");
        put_str(&b, cfg->train.freeze[i]);
    }
    put(&b, "]\n");
    if (cfg->train.unfreeze.epoch > 0) {
        put(&b, "  unfreeze: {epoch: %d, lr: ", cfg->train.unfreeze.epoch);
        put_real(&b, cfg->train.unfreeze.lr, 1);
        put(&b, "}\n");
    } else {
        put(&b, "  unfreeze: null\n");
    }

    put(&b, "eval:\n");
    line_str(&b, "  split", cfg->eval.split);
    put(&b, "  cam:\n");
    line_str(&b, "    method", cfg->eval.cam_method);
    put(&b, "    top_k: %d\n", cfg->eval.cam_top_k);

    put(&b, "runtime:\n");
    line_str(&b, "  out_dir", cfg->runtime.out_dir);
    put(&b, "  threads_per_rank: %d\n", cfg->runtime.threads_per_rank);
    line_float(&b, "  allreduce_bucket_mb", cfg->runtime.allreduce_bucket_mb);

    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* thresholds.c - reading eval/val/thresholds.json back (see thorax/eval.h;
 * th_thresholds_write in report.c writes it).
 *
 * A small recursive-descent reader of the JSON subset that writer emits
 * (objects, strings, numbers, null; arrays and booleans are skipped), which
 * keeps the keys it knows and skips the rest, so a field added later does
 * not break older readers. Every error names the file and the byte offset.
 */
#include "thorax/eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct reader {
    const char *path, *s;
    size_t len, at;
    th_err *err;
} reader;

static int fail(reader *r, const char *what)
{
    return th_errf(r->err, "%s: %s at byte %zu", r->path, what, r->at);
}

static void skip_space(reader *r)
{
    while (r->at < r->len && strchr(" \t\r\n", r->s[r->at])) r->at++;
}

static int expect(reader *r, char c)
{
    skip_space(r);
    if (r->at >= r->len || r->s[r->at] != c) {
        char what[32];
        snprintf(what, sizeof what, "expected '%c'", c);
        return fail(r, what);
    }
    r->at++;
    return 0;
}

/* A string into out[cap]; \uXXXX beyond ASCII becomes '?' (the writer only
 * escapes control characters and invalid bytes that way). */
static int read_string(reader *r, char *out, size_t cap)
{
    if (expect(r, '"')) return -1;
    size_t n = 0;
    while (r->at < r->len && r->s[r->at] != '"') {
        char c = r->s[r->at++];
        if (c == '\\') {
            if (r->at >= r->len) break;
            char e = r->s[r->at++];
            c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
            if (e == 'u') {
                if (r->at + 4 > r->len) return fail(r, "truncated \\u escape");
                unsigned v = (unsigned)strtoul((char[5]){r->s[r->at], r->s[r->at + 1], r->s[r->at + 2],
                                                         r->s[r->at + 3], 0},
                                               NULL, 16);
                r->at += 4;
                c = v < 0x80 ? (char)v : '?';
            }
        }
        if (n + 1 >= cap) return fail(r, "string too long");
        out[n++] = c;
    }
    if (r->at >= r->len) return fail(r, "unterminated string");
    r->at++;
    out[n] = '\0';
    return 0;
}

/* A number, or null as NaN. */
static int read_number(reader *r, double *v)
{
    skip_space(r);
    if (r->len - r->at >= 4 && !strncmp(r->s + r->at, "null", 4)) {
        r->at += 4;
        *v = NAN;
        return 0;
    }
    char *end;
    *v = strtod(r->s + r->at, &end);
    if (end == r->s + r->at) return fail(r, "expected a number");
    r->at = (size_t)(end - r->s);
    return 0;
}

static int skip_value(reader *r, int depth)
{
    skip_space(r);
    if (depth > 32 || r->at >= r->len) return fail(r, "expected a value");
    char c = r->s[r->at];
    if (c == '"') {
        char tmp[4096];
        return read_string(r, tmp, sizeof tmp);
    }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        r->at++;
        skip_space(r);
        if (r->at < r->len && r->s[r->at] == close) return r->at++, 0;
        for (;;) {
            if (c == '{') {
                char key[4096];
                if (read_string(r, key, sizeof key) || expect(r, ':')) return -1;
            }
            if (skip_value(r, depth + 1)) return -1;
            skip_space(r);
            if (r->at < r->len && r->s[r->at] == ',') {
                r->at++;
                continue;
            }
            return expect(r, close);
        }
    }
    if (r->len - r->at >= 4 && !strncmp(r->s + r->at, "true", 4)) return r->at += 4, 0;
    if (r->len - r->at >= 5 && !strncmp(r->s + r->at, "false", 5)) return r->at += 5, 0;
    double v;
    return read_number(r, &v);
}

/* Calls field(r, key, t) for each key of an object; field skips what it
 * does not know. */
typedef int (*field_fn)(reader *r, const char *key, th_thresholds *t, int k);

static int read_object(reader *r, field_fn field, th_thresholds *t, int k)
{
    if (expect(r, '{')) return -1;
    skip_space(r);
    if (r->at < r->len && r->s[r->at] == '}') return r->at++, 0;
    for (;;) {
        char key[TH_LABEL_MAX + 64];
        if (read_string(r, key, sizeof key) || expect(r, ':') || field(r, key, t, k)) return -1;
        skip_space(r);
        if (r->at < r->len && r->s[r->at] == ',') {
            r->at++;
            continue;
        }
        return expect(r, '}');
    }
}

/* Thresholds are float scores: read back as the float written. */
static int label_field(reader *r, const char *key, th_thresholds *t, int k)
{
    double v;
    double *dst = !strcmp(key, "threshold")           ? &t->threshold[k]
                  : !strcmp(key, "patient_threshold") ? &t->threshold_patient[k]
                  : !strcmp(key, "temperature")       ? &t->temperature[k]
                                                      : NULL;
    if (!dst) return skip_value(r, 0);
    if (read_number(r, &v)) return -1;
    *dst = dst == &t->temperature[k] || isnan(v) ? v : (double)(float)v;
    return 0;
}

static int labels_field(reader *r, const char *key, th_thresholds *t, int k)
{
    if (t->l >= TH_MAX_LABELS) return fail(r, "too many labels");
    k = t->l++;
    snprintf(t->label[k], sizeof t->label[k], "%s", key);
    t->threshold[k] = t->threshold_patient[k] = NAN;
    t->temperature[k] = 1;
    return read_object(r, label_field, t, k);
}

static int top_field(reader *r, const char *key, th_thresholds *t, int k)
{
    double v;
    if (!strcmp(key, "checkpoint")) return read_string(r, t->checkpoint, sizeof t->checkpoint);
    if (!strcmp(key, "rule")) return read_string(r, t->rule, sizeof t->rule);
    if (!strcmp(key, "calibrate")) return read_string(r, t->calibrate, sizeof t->calibrate);
    if (!strcmp(key, "labels")) return read_object(r, labels_field, t, 0);
    if (!strcmp(key, "checkpoint_epoch") || !strcmp(key, "checkpoint_step")) {
        if (read_number(r, &v)) return -1;
        if (key[11] == 'e') t->epoch = (int)v;
        else t->step = (long)v;
        return 0;
    }
    return skip_value(r, 0);
}

int th_thresholds_read(const char *path, th_thresholds *t, th_err *err)
{
    memset(t, 0, sizeof *t);
    t->epoch = -1;
    t->step = -1;
    size_t len;
    char *text = th_read_file(path, &len, err);
    if (!text) return -1;
    reader r = {.path = path, .s = text, .len = len, .err = err};
    int rc = read_object(&r, top_field, t, 0);
    free(text);
    return rc;
}

int th_thresholds_current(const char *run_dir, const char *checkpoint, const th_train_state *st,
                          const th_config *cfg, th_thresholds *t)
{
    char path[2100];
    snprintf(path, sizeof path, "%s/eval/val/thresholds.json", run_dir);
    th_err ignored = {{0}};
    if (th_thresholds_read(path, t, &ignored)) return 0;
    th_threshold_rule rule;
    double value;
    char msg[160];
    return !strcmp(t->checkpoint, checkpoint) && t->epoch == st->epoch && t->step == st->step &&
           !strcmp(t->calibrate, th_calibrate_names[cfg->eval.calibrate]) &&
           th_threshold_rule_parse(t->rule, &rule, &value, msg, sizeof msg) == 0 && rule == cfg->eval.threshold_rule &&
           value == cfg->eval.threshold_value;
}

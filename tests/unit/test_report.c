/* test_report.c - the evaluation files of a tiny three-label case, read back:
 * predictions.csv to the byte, metrics.json checked to be valid JSON and to
 * hold the hand-worked values (null and a reason for the undefined label),
 * roc_<label>.csv rows, roc.png decodable at its size, the patient-level
 * directory, file-name sanitising, and no .tmp file left behind.
 */
#include <cairo.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "thorax/util.h"
#include "thorax/eval.h"

/* ---- a minimal JSON validator (RFC 8259 grammar, no semantics) ---------- */

static void json_ws(const char **s)
{
    while (**s == ' ' || **s == '\n' || **s == '\t' || **s == '\r') (*s)++;
}

static int json_value(const char **s, int depth);

static int json_str(const char **s)
{
    if (**s != '"') return 0;
    for ((*s)++; **s != '"'; (*s)++) {
        unsigned char c = (unsigned char)**s;
        if (c < 0x20) return 0;
        if (c == '\\') {
            (*s)++;
            if (**s == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", (*s)[i]) || !(*s)[i]) return 0;
                *s += 4;
            } else if (!**s || !strchr("\"\\/bfnrt", **s)) {
                return 0;
            }
        }
    }
    (*s)++;
    return 1;
}

static int json_num(const char **s)
{
    const char *p = *s;
    if (*p == '-') p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9') p++;
    else
        return 0;
    if (*p == '.') {
        if (!(*++p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!(*p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    *s = p;
    return 1;
}

static int json_value(const char **s, int depth)
{
    if (depth > 32) return 0;
    json_ws(s);
    if (**s == '{' || **s == '[') {
        char close = **s == '{' ? '}' : ']';
        int object = **s == '{';
        (*s)++;
        json_ws(s);
        if (**s == close) {
            (*s)++;
            return 1;
        }
        for (;;) {
            if (object) {
                json_ws(s);
                if (!json_str(s)) return 0;
                json_ws(s);
                if (*(*s)++ != ':') return 0;
            }
            if (!json_value(s, depth + 1)) return 0;
            json_ws(s);
            if (**s == ',') {
                (*s)++;
                continue;
            }
            if (**s != close) return 0;
            (*s)++;
            return 1;
        }
    }
    if (**s == '"') return json_str(s);
    for (const char *lit[] = {"true", "false", "null"}, **l = lit; l < lit + 3; l++)
        if (strncmp(*s, *l, strlen(*l)) == 0) {
            *s += strlen(*l);
            return 1;
        }
    return json_num(s);
}

static int json_valid(const char *text)
{
    const char *s = text;
    if (!json_value(&s, 0)) return 0;
    json_ws(&s);
    return *s == '\0';
}

/* The number after `"field": ` (or the first of an array there) inside the
 * object that follows `key`, a JSON key with its quotes; NaN when absent. */
static double json_field(const char *text, const char *key, const char *field)
{
    const char *obj = strstr(text, key);
    if (!obj) return NAN;
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", field);
    const char *at = strstr(obj, pat);
    if (!at) return NAN;
    const char *num = at + strlen(pat);
    if (*num == '[') num++;
    char *end;
    double v = strtod(num, &end);
    return end == num ? NAN : v;
}

/* ---- helpers --------------------------------------------------------------- */

static char *slurp(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    th_err err;
    char *text = th_read_file(path, NULL, &err);
    if (!text) fprintf(stderr, "%s\n", err.msg);
    return text;
}

static void check_file(const char *dir, const char *name, const char *want)
{
    char *got = slurp(dir, name);
    CHECK(got != NULL);
    if (!got) return;
    if (!CHECK(strcmp(got, want) == 0)) fprintf(stderr, "%s/%s is:\n%s\nwanted:\n%s\n", dir, name, got, want);
    free(got);
}

static void check_contains(const char *text, const char *part)
{
    if (!CHECK(text && strstr(text, part) != NULL)) fprintf(stderr, "missing: %s\n", part);
}

static void check_png(const char *dir, const char *name, int w, int h)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    unsigned char sig[8] = {0};
    CHECK(f && fread(sig, 1, 8, f) == 8 && memcmp(sig, "\x89PNG\r\n\x1a\n", 8) == 0);
    if (f) fclose(f);
    cairo_surface_t *img = cairo_image_surface_create_from_png(path);
    CHECK(cairo_surface_status(img) == CAIRO_STATUS_SUCCESS);
    CHECK(cairo_image_surface_get_width(img) == w && cairo_image_surface_get_height(img) == h);
    cairo_surface_destroy(img);
}

/* Counts files whose names end in .tmp in dir and its subdirectories. */
static int count_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        size_t len = strlen(e->d_name);
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            n += count_tmp(path);
        else if (len >= 4 && strcmp(e->d_name + len - 4, ".tmp") == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* ---- the cases --------------------------------------------------------------- */

/* Four images of three patients. Labels: Effusion is the hand-worked case of
 * test_metrics (AUC 0.75), "Pleural Thickening" separates perfectly, and the
 * third (a name with a quote and a backslash) has no positives. */
enum { N = 4, L = 3 };

static th_eval_data tiny_case(void)
{
    static const char *const labels[L] = {"Effusion", "Pleural Thickening", "No \"finding\"\\x"};
    static const char *const images[N] = {"a.png", "b.png", "c,1.png", "d.png"};
    static const char *const patients[N] = {"P1", "P1", "P2", "P3"};
    static const float probs[N * L] = {0.1f, 0.9f, 0.5f, 0.4f, 0.2f, 0.25f, 0.35f, 0.3f, 0.125f, 0.8f, 0.6f, 1.0f};
    static const uint8_t truth[N * L] = {0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 1, 0};
    return (th_eval_data){N, L, labels, images, patients, probs, truth, NULL, 0, 0, NULL};
}

static void test_image_level(const char *dir)
{
    th_eval_data d = tiny_case();
    th_metrics_macro macro;
    th_err err = {{0}};
    if (!CHECK(th_report_write_eval(dir, "test", &d, TH_REPORT_PATIENT, &macro, &err) == 0)) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK(macro.n_defined == 2);
    CHECK_NEAR(macro.auc, (0.75 + 1.0) / 2, 1e-15);

    check_file(dir, "predictions.csv",
               "image,patient_id,y_Effusion,y_Pleural Thickening,\"y_No \"\"finding\"\"\\x\","
               "p_Effusion,p_Pleural Thickening,\"p_No \"\"finding\"\"\\x\"\n"
               "a.png,P1,0,1,0,0.100000,0.900000,0.500000\n"
               "b.png,P1,0,0,0,0.400000,0.200000,0.250000\n"
               "\"c,1.png\",P2,1,0,0,0.350000,0.300000,0.125000\n"
               "d.png,P3,1,1,0,0.800000,0.600000,1.000000\n");
    check_file(dir, "roc_Effusion.csv", "threshold,fpr,tpr\ninf,0,0\n0.8,0,0.5\n0.4,0.5,0.5\n0.35,0.5,1\n0.1,1,1\n");
    check_file(dir, "roc_Pleural_Thickening.csv",
               "threshold,fpr,tpr\ninf,0,0\n0.9,0,0.5\n0.6,0,1\n0.3,0.5,1\n0.2,1,1\n");
    check_file(dir, "roc_No__finding__x.csv", "threshold,fpr,tpr\n");
    check_png(dir, "roc.png", 820, 820);

    char *json = slurp(dir, "metrics.json");
    CHECK(json && json_valid(json));
    check_contains(json, "\"level\": \"image\"");
    check_contains(json, "\"split\": \"test\"");
    check_contains(json, "\"ci_method\": \"delong\"");
    check_contains(json, "\"n_images\": 4");
    check_contains(json, "\"n_patients\": 3");
    check_contains(json, "\"Effusion\": {\n      \"auc\": 0.75,\n      \"auc_ci\": [");
    CHECK_NEAR(json_field(json, "\"Effusion\"", "threshold"), 0.8, 1e-15);
    CHECK_NEAR(json_field(json, "\"Effusion\"", "sensitivity"), 0.5, 1e-15);
    CHECK_NEAR(json_field(json, "\"Effusion\"", "specificity"), 1.0, 1e-15);
    CHECK_NEAR(json_field(json, "\"Effusion\"", "average_precision"), 5.0 / 6.0, 1e-15);
    CHECK_NEAR(json_field(json, "\"Effusion\"", "n_pos"), 2, 0);
    /* CI: 0.75 -+ 1.96 sqrt(0.125), the upper end clipped to 1. */
    check_contains(json, ", 1],\n      \"n_pos\": 2");
    CHECK_NEAR(json_field(json, "\"Effusion\"", "auc_ci"), 0.75 - TH_AUC_CI_Z * sqrt(0.125), 1e-12);
    check_contains(json, "\"Pleural Thickening\": {\n      \"auc\": 1,\n      \"auc_ci\": [1, 1]");
    check_contains(json, "\"No \\\"finding\\\"\\\\x\": {\n      \"auc\": null,\n      \"auc_ci\": null,\n"
                         "      \"n_pos\": 0,\n      \"n_neg\": 4,\n      \"n_unknown\": 0,\n      \"threshold\": null");
    check_contains(json, "\"average_precision\": null,\n      \"reason\": \"no positive images\"");
    check_contains(json, "\"macro\": {\n    \"auc\": 0.875,");
    check_contains(json, "\"n_labels\": 2,\n    \"excluded\": [\"No \\\"finding\\\"\\\\x\"]");
    CHECK(json && !strstr(json, "nan") && !strstr(json, "inf"));
    free(json);
}

static void test_patient_level(const char *dir)
{
    char sub[512];
    snprintf(sub, sizeof sub, "%s/patient", dir);
    /* P1 pools images a and b: maxima of their scores, any positive. */
    check_file(sub, "predictions.csv",
               "patient_id,n_images,y_Effusion,y_Pleural Thickening,\"y_No \"\"finding\"\"\\x\","
               "p_Effusion,p_Pleural Thickening,\"p_No \"\"finding\"\"\\x\"\n"
               "P1,2,0,1,0,0.400000,0.900000,0.500000\n"
               "P2,1,1,0,0,0.350000,0.300000,0.125000\n"
               "P3,1,1,1,0,0.800000,0.600000,1.000000\n");
    /* Effusion per patient: negatives {0.4}, positives {0.35, 0.8}. */
    check_file(sub, "roc_Effusion.csv", "threshold,fpr,tpr\ninf,0,0\n0.8,0,0.5\n0.4,1,0.5\n0.35,1,1\n");
    check_png(sub, "roc.png", 820, 820);
    char *json = slurp(sub, "metrics.json");
    CHECK(json && json_valid(json));
    check_contains(json, "\"level\": \"patient\"");
    check_contains(json, "\"n_images\": 4,\n  \"n_patients\": 3");
    /* One negative patient: AUC 0.5, its CI not estimable. */
    check_contains(json, "\"Effusion\": {\n      \"auc\": 0.5,\n      \"auc_ci\": null,\n      \"n_pos\": 2,\n"
                         "      \"n_neg\": 1");
    check_contains(json, "\"reason\": \"no positive patients\"");
    free(json);
}

static void test_file_names(const char *dir)
{
    char out[64];
    CHECK(th_report_label_filename("Pleural Thickening", out, sizeof out) == 0 &&
          strcmp(out, "Pleural_Thickening") == 0);
    CHECK(th_report_label_filename("a/b\\c:d.e-f", out, sizeof out) == 0 && strcmp(out, "a_b_c_d.e-f") == 0);
    CHECK(th_report_label_filename("", out, sizeof out) == 0 && strcmp(out, "_") == 0);
    CHECK(th_report_label_filename("Infiltration", out, 8) == -1);

    /* Labels that sanitise alike still get files of their own. */
    static const char *const two[2] = {"a b", "a_b"};
    static const char *const img[2] = {"x.png", "y.png"};
    float p[4] = {0.2f, 0.7f, 0.9f, 0.1f};
    uint8_t y[4] = {0, 1, 1, 0};
    th_eval_data d = {2, 2, two, img, img, p, y, NULL, 0, 0, NULL};
    char sub[512];
    snprintf(sub, sizeof sub, "%s/clash", dir);
    th_err err = {{0}};
    CHECK(th_report_write_eval(sub, NULL, &d, 0, NULL, &err) == 0);
    check_file(sub, "roc_a_b.csv", "threshold,fpr,tpr\ninf,0,0\n0.9,0,1\n0.2,1,1\n");
    check_file(sub, "roc_a_b_1.csv", "threshold,fpr,tpr\ninf,0,0\n0.7,0,1\n0.1,1,1\n");
    char *json = slurp(sub, "metrics.json");
    CHECK(json && json_valid(json) && !strstr(json, "\"split\""));
    free(json);
}

static void test_errors(const char *dir)
{
    /* A directory that cannot be made: the error names the path. */
    char file[512], bad[600];
    snprintf(file, sizeof file, "%s/plain-file", dir);
    th_err err = {{0}};
    CHECK(th_write_file_atomic(file, "x", 1, &err) == 0);
    snprintf(bad, sizeof bad, "%s/eval", file);
    th_eval_data d = tiny_case();
    CHECK(th_report_write_eval(bad, "test", &d, 0, NULL, &err) == -1);
    CHECK(strstr(err.msg, "plain-file") != NULL);

    /* A NaN probability stops the metrics with the label named. */
    float p[N * L];
    memcpy(p, d.p, sizeof p);
    p[2 * L + 1] = NAN;
    d.p = p;
    snprintf(bad, sizeof bad, "%s/nan", dir);
    CHECK(th_report_write_eval(bad, "test", &d, 0, NULL, &err) == -1);
    CHECK(strstr(err.msg, "label 1") != NULL && strstr(err.msg, "case 2") != NULL);
}

int main(void)
{
    char dir[] = "/tmp/thorax_test_report_XXXXXX";
    if (CHECK(mkdtemp(dir) != NULL)) {
        test_image_level(dir);
        test_patient_level(dir);
        test_file_names(dir);
        test_errors(dir);
        CHECK(count_tmp(dir) == 0);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    return th_test_summary("test_report");
}

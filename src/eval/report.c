/* report.c - predictions.csv, metrics.json, roc_<label>.csv and roc.png
 * (see thorax/eval.h).
 *
 * Text is built in memory and written in one atomic call, so a reader never
 * sees half a file. Numbers in JSON and ROC tables are printed with the
 * fewest digits that read back to the same value (a float threshold as a
 * float, so 0.8f is "0.8", not "0.800000011920929"), which keeps the files
 * exact and readable at once.
 */
#include "thorax/eval.h"
#include "report_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thorax/util.h"
#include "thorax/render.h"
#include "thorax/data.h"

/* ---- formatting ------------------------------------------------------------ */

void json_interval(th_strbuf *b, double lo, double hi)
{
    if (!isfinite(lo) || !isfinite(hi)) {
        th_strbuf_printf(b, "null");
        return;
    }
    th_strbuf_printf(b, "[");
    th_json_number(b, lo, 0);
    th_strbuf_printf(b, ", ");
    th_json_number(b, hi, 0);
    th_strbuf_printf(b, "]");
}

int write_buffer(const char *path, th_strbuf *b, th_err *err)
{
    int rc = b->failed ? th_errf(err, "%s: out of memory while formatting", path)
                       : th_write_file_atomic(path, b->data ? b->data : "", b->len, err);
    th_strbuf_free(b);
    return rc;
}

int th_report_label_filename(const char *label, char *out, size_t cap) { return th_safe_name(label, out, cap); }

int make_path(char *out, size_t cap, th_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (need < 0 || (size_t)need >= cap) return th_errf(err, "path too long: %.200s...", out);
    return 0;
}

/* ---- predictions.csv --------------------------------------------------------- */

/* Rows of two leading columns (names, and names or counts) then y and p per
 * label: shared by image level (image, patient_id) and patient level
 * (patient_id, n_images). */
static int write_predictions(const char *path, int n, int l, const char *const *label, const char *h1,
                             const char *const *c1, const char *h2, const char *const *c2, const int *c2_count,
                             const float *p, const float *p_raw, const uint8_t *y, th_err *err)
{
    th_strbuf b = {0};
    th_strbuf_printf(&b, "%s,%s", h1, h2);
    for (int k = 0; k < l; k++) {
        th_strbuf_printf(&b, ",");
        th_csv_field(&b, "y_", label[k]);
    }
    for (int k = 0; k < l; k++) {
        th_strbuf_printf(&b, ",");
        th_csv_field(&b, "p_", label[k]);
    }
    for (int k = 0; p_raw && k < l; k++) {
        th_strbuf_printf(&b, ",");
        th_csv_field(&b, "p_raw_", label[k]);
    }
    th_strbuf_printf(&b, "\n");
    for (int i = 0; i < n; i++) {
        th_csv_field(&b, "", c1[i]);
        th_strbuf_printf(&b, ",");
        if (c2)
            th_csv_field(&b, "", c2[i]);
        else
            th_strbuf_printf(&b, "%d", c2_count[i]);
        /* An unknown label is an empty cell. */
        for (int k = 0; k < l; k++) {
            uint8_t v = y[(size_t)i * l + k];
            th_strbuf_printf(&b, v == TH_LABEL_UNKNOWN ? "," : ",%d", v ? 1 : 0);
        }
        for (int k = 0; k < l; k++) th_strbuf_printf(&b, ",%.6f", (double)p[(size_t)i * l + k]);
        for (int k = 0; p_raw && k < l; k++) th_strbuf_printf(&b, ",%.6f", (double)p_raw[(size_t)i * l + k]);
        th_strbuf_printf(&b, "\n");
    }
    return write_buffer(path, &b, err);
}

int th_report_write_predictions(const char *path, const th_eval_data *d, th_err *err)
{
    return write_predictions(path, d->n, d->l, d->label, "image", d->image, "patient_id", d->patient_id, NULL, d->p,
                             d->p_raw, d->y, err);
}

/* ---- metrics.json -------------------------------------------------------------- */

static void json_rate(th_strbuf *b, const char *name, const th_rate *r)
{
    th_strbuf_printf(b, ",\n        \"%s\": {\"value\": ", name);
    json_number(b, r->value, 0);
    th_strbuf_printf(b, ", \"ci\": ");
    if (isfinite(r->lo) && isfinite(r->hi)) {
        th_strbuf_printf(b, "[");
        json_number(b, r->lo, 0);
        th_strbuf_printf(b, ", ");
        json_number(b, r->hi, 0);
        th_strbuf_printf(b, "]}");
    } else {
        th_strbuf_printf(b, "null}");
    }
}

/* "operating_point": the threshold applied, where it was chosen, the
 * confusion counts and the rates with their Wilson intervals. */
static void write_operating_point(th_strbuf *b, const th_label_metrics *x)
{
    const th_operating_point *op = &x->op;
    th_strbuf_printf(b, ",\n      \"operating_point\": {\n        \"threshold\": ");
    json_number(b, op->threshold, 1);
    th_strbuf_printf(b, ",\n        \"rule\": ");
    json_string(b, x->op_rule ? x->op_rule : "youden");
    th_strbuf_printf(b, ",\n        \"chosen_on\": ");
    json_string(b, x->op_chosen_on ? x->op_chosen_on : "");
    th_strbuf_printf(b, ",\n        \"tp\": %ld, \"fp\": %ld, \"tn\": %ld, \"fn\": %ld", op->c.tp, op->c.fp,
                     op->c.tn, op->c.fn);
    json_rate(b, "sensitivity", &op->sensitivity);
    json_rate(b, "specificity", &op->specificity);
    json_rate(b, "ppv", &op->ppv);
    json_rate(b, "npv", &op->npv);
    json_rate(b, "accuracy", &op->accuracy);
    json_rate(b, "f1", &op->f1);
    th_strbuf_printf(b, "\n      }");
}

/* "calibration": ECE and Brier score; with temperature scaling also those
 * of the raw scores and T. */
static void write_calibration(th_strbuf *b, const th_label_metrics *x)
{
    th_strbuf_printf(b, ",\n      \"calibration\": {\"bins\": %d, \"ece\": ", TH_ECE_BINS);
    json_number(b, x->ece, 0);
    th_strbuf_printf(b, ", \"brier\": ");
    json_number(b, x->brier, 0);
    if (!isnan(x->temperature)) {
        th_strbuf_printf(b, ", \"ece_raw\": ");
        json_number(b, x->ece_raw, 0);
        th_strbuf_printf(b, ", \"brier_raw\": ");
        json_number(b, x->brier_raw, 0);
        th_strbuf_printf(b, ", \"temperature\": ");
        json_number(b, x->temperature, 0);
    }
    th_strbuf_printf(b, "}");
}

int th_report_write_metrics_json(const char *path, const th_report_info *info, int l, const char *const *label,
                                 const th_label_metrics *m, const th_metrics_macro *macro, th_err *err)
{
    th_strbuf b = {0};
    th_strbuf_printf(&b, "{\n  \"level\": ");
    json_string(&b, info->level ? info->level : "image");
    if (info->split) {
        th_strbuf_printf(&b, ",\n  \"split\": ");
        json_string(&b, info->split);
    }
    th_strbuf_printf(&b, ",\n  \"n_images\": %ld", info->n_images);
    if (info->n_patients >= 0) th_strbuf_printf(&b, ",\n  \"n_patients\": %ld", info->n_patients);
    if (info->overlap)
        th_strbuf_printf(&b, ",\n  \"overlap_with_training\": {\"patients\": %ld, \"images\": %ld}",
                         info->overlap->patients, info->overlap->images);
    const char *ci_method = info->bootstrap > 0 ? "patient_bootstrap" : "delong";
    th_strbuf_printf(&b, ",\n  \"ci_method\": \"%s\",\n  \"ci_level\": 0.95", ci_method);
    if (info->bootstrap > 0)
        th_strbuf_printf(&b, ",\n  \"bootstrap_resamples\": %d,\n  \"bootstrap_seed\": %llu", info->bootstrap,
                         (unsigned long long)info->bootstrap_seed);
    th_strbuf_printf(&b, ",\n  \"threshold_method\": ");
    json_string(&b, l > 0 && m[0].has_op && m[0].op_rule ? m[0].op_rule : "youden");
    th_strbuf_printf(&b, ",\n  \"labels\": {");
    for (int k = 0; k < l; k++) {
        const th_label_metrics *x = &m[k];
        th_strbuf_printf(&b, "%s\n    ", k ? "," : "");
        json_string(&b, label[k]);
        th_strbuf_printf(&b, ": {\n      \"auc\": ");
        json_number(&b, x->auc, 0);
        th_strbuf_printf(&b, ",\n      \"auc_ci\": ");
        if (info->bootstrap > 0)
            json_interval(&b, x->boot.lo, x->boot.hi);
        else
            json_interval(&b, x->auc_lo, x->auc_hi);
        th_strbuf_printf(&b, ",\n      \"n_pos\": %ld,\n      \"n_neg\": %ld,\n      \"n_unknown\": %ld,\n      \"threshold\": ",
                         x->n_pos, x->n_neg, x->n_unknown);
        json_number(&b, x->threshold, 1);
        th_strbuf_printf(&b, ",\n      \"sensitivity\": ");
        json_number(&b, x->sensitivity, 0);
        th_strbuf_printf(&b, ",\n      \"specificity\": ");
        json_number(&b, x->specificity, 0);
        th_strbuf_printf(&b, ",\n      \"average_precision\": ");
        json_number(&b, x->ap, 0);
        if (!x->defined) {
            th_strbuf_printf(&b, ",\n      \"reason\": ");
            json_string(&b, x->reason ? x->reason : "undefined");
        }
        th_strbuf_printf(&b, ",\n      \"auc_ci_delong\": ");
        json_interval(&b, x->auc_lo, x->auc_hi);
        th_strbuf_printf(&b, ",\n      \"ci_method\": \"%s\"", ci_method);
        if (info->bootstrap > 0)
            th_strbuf_printf(&b, ",\n      \"bootstrap_used\": %d,\n      \"bootstrap_skipped\": %d", x->boot.used,
                             x->boot.skipped);
        if (x->has_op) write_operating_point(&b, x);
        write_calibration(&b, x);
        th_strbuf_printf(&b, "\n    }");
    }
    th_strbuf_printf(&b, "%s},\n  \"macro\": {\n    \"auc\": ", l ? "\n  " : "");
    json_number(&b, macro->auc, 0);
    th_strbuf_printf(&b, ",\n    \"average_precision\": ");
    json_number(&b, macro->ap, 0);
    th_strbuf_printf(&b, ",\n    \"sensitivity\": ");
    json_number(&b, macro->sensitivity, 0);
    th_strbuf_printf(&b, ",\n    \"specificity\": ");
    json_number(&b, macro->specificity, 0);
    th_strbuf_printf(&b, ",\n    \"n_labels\": %d,\n    \"excluded\": [", macro->n_defined);
    for (int k = 0, first = 1; k < l; k++)
        if (!m[k].defined) {
            th_strbuf_printf(&b, "%s", first ? "" : ", ");
            json_string(&b, label[k]);
            first = 0;
        }
    th_strbuf_printf(&b, "]\n  }\n}\n");
    return write_buffer(path, &b, err);
}

/* ---- metrics.md: metrics.json's per-label table in Markdown ------------------- */

static void md_text(th_strbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '|') th_strbuf_printf(b, "\\|");
        else th_strbuf_printf(b, "%c", *s == '\n' ? ' ' : *s);
    }
}

static void md_number(th_strbuf *b, double v, int decimals)
{
    if (isfinite(v)) th_strbuf_printf(b, "%.*f", decimals, v);
    else th_strbuf_printf(b, "-");
}

static void cell_auc(th_strbuf *b, const th_label_metrics *m) { md_number(b, m->auc, 4); }
/* The interval metrics.json reports as auc_ci: the patient bootstrap's when
 * one ran, else DeLong's. */
static void cell_auc_ci(th_strbuf *b, const th_label_metrics *m)
{
    double lo = m->boot.used > 0 ? m->boot.lo : m->auc_lo, hi = m->boot.used > 0 ? m->boot.hi : m->auc_hi;
    if (!isfinite(lo) || !isfinite(hi)) {
        th_strbuf_printf(b, "-");
        return;
    }
    th_strbuf_printf(b, "%.4f-%.4f", lo, hi);
}
static void cell_ci_method(th_strbuf *b, const th_label_metrics *m)
{
    th_strbuf_printf(b, "%s", m->boot.used > 0 ? "patient bootstrap" : "DeLong");
}
static void cell_n_pos(th_strbuf *b, const th_label_metrics *m) { th_strbuf_printf(b, "%ld", m->n_pos); }
static void cell_n_neg(th_strbuf *b, const th_label_metrics *m) { th_strbuf_printf(b, "%ld", m->n_neg); }
/* The threshold applied, and where it was chosen ("val"). */
static void cell_threshold(th_strbuf *b, const th_label_metrics *m)
{
    md_number(b, m->threshold, 4);
    if (m->has_op && m->op_chosen_on && isfinite(m->threshold)) th_strbuf_printf(b, " (%s)", m->op_chosen_on);
}
static void cell_sensitivity(th_strbuf *b, const th_label_metrics *m) { md_number(b, m->sensitivity, 4); }
static void cell_specificity(th_strbuf *b, const th_label_metrics *m) { md_number(b, m->specificity, 4); }
static void cell_ap(th_strbuf *b, const th_label_metrics *m) { md_number(b, m->ap, 4); }
static void cell_ppv(th_strbuf *b, const th_label_metrics *m) { md_number(b, m->has_op ? m->op.ppv.value : NAN, 4); }
static void cell_npv(th_strbuf *b, const th_label_metrics *m) { md_number(b, m->has_op ? m->op.npv.value : NAN, 4); }
static void cell_f1(th_strbuf *b, const th_label_metrics *m) { md_number(b, m->has_op ? m->op.f1.value : NAN, 4); }
static void cell_ece(th_strbuf *b, const th_label_metrics *m) { md_number(b, m->ece, 4); }
static void cell_brier(th_strbuf *b, const th_label_metrics *m) { md_number(b, m->brier, 4); }

/* The table's columns after the label's: a field of th_label_metrics that
 * should be reported (an operating point, a calibration score, another
 * interval) is one more entry here, in the model card and by_<column>.md alike. */
static const struct {
    const char *head;
    void (*cell)(th_strbuf *b, const th_label_metrics *m);
} md_columns[] = {
    {"AUC", cell_auc},
    {"AUC 95% CI", cell_auc_ci},
    {"CI method", cell_ci_method},
    {"n_pos", cell_n_pos},
    {"n_neg", cell_n_neg},
    {"threshold (chosen on)", cell_threshold},
    {"sensitivity", cell_sensitivity},
    {"specificity", cell_specificity},
    {"PPV", cell_ppv},
    {"NPV", cell_npv},
    {"F1", cell_f1},
    {"AP", cell_ap},
    {"ECE", cell_ece},
    {"Brier", cell_brier},
};

void th_report_metrics_table(th_strbuf *b, const char *first_head, int l, const char *const *label,
                             const th_label_metrics *m)
{
    enum { N_COLUMNS = sizeof md_columns / sizeof md_columns[0] };
    th_strbuf_printf(b, "| ");
    md_text(b, first_head);
    for (int c = 0; c < N_COLUMNS; c++) th_strbuf_printf(b, " | %s", md_columns[c].head);
    th_strbuf_printf(b, " |\n|---");
    for (int c = 0; c < N_COLUMNS; c++) th_strbuf_printf(b, "|---:");
    th_strbuf_printf(b, "|\n");
    for (int k = 0; k < l; k++) {
        th_strbuf_printf(b, "| ");
        md_text(b, label[k]);
        for (int c = 0; c < N_COLUMNS; c++) {
            th_strbuf_printf(b, " | ");
            md_columns[c].cell(b, &m[k]);
        }
        th_strbuf_printf(b, " |\n");
    }
}

int th_report_write_metrics_md(const char *path, const th_report_info *info, int l, const char *const *label,
                               const th_label_metrics *m, const th_metrics_macro *macro, th_err *err)
{
    th_strbuf b = {0};
    th_strbuf_printf(&b, "%s level, %ld images", info->level ? info->level : "image", info->n_images);
    if (info->n_patients >= 0) th_strbuf_printf(&b, " of %ld patients", info->n_patients);
    th_strbuf_printf(&b, "; macro AUC ");
    md_number(&b, macro->auc, 4);
    th_strbuf_printf(&b, " over %d of %d labels.\n\n", macro->n_defined, l);
    th_report_metrics_table(&b, "label", l, label, m);
    for (int k = 0; k < l; k++)
        if (!m[k].defined) {
            th_strbuf_printf(&b, "%s", k && !m[k - 1].defined ? "; " : "\nUndefined: ");
            md_text(&b, label[k]);
            th_strbuf_printf(&b, " (%s)", m[k].reason ? m[k].reason : "undefined");
        }
    for (int k = 0; k < l; k++)
        if (!m[k].defined) {
            th_strbuf_printf(&b, ".\n");
            break;
        }
    return write_buffer(path, &b, err);
}

/* ---- roc_<label>.csv and roc.png ---------------------------------------------------- */

int th_report_write_roc_csv(const char *path, const th_roc *roc, th_err *err)
{
    th_strbuf b = {0};
    th_strbuf_printf(&b, "threshold,fpr,tpr\n");
    for (int i = 0; i < roc->n; i++) {
        char t[40], f[40], r[40];
        if (isinf(roc->threshold[i]))
            snprintf(t, sizeof t, "%s", roc->threshold[i] > 0 ? "inf" : "-inf");
        else
            th_shortest_g(roc->threshold[i], 1, t, sizeof t);
        th_shortest_g(roc->fpr[i], 0, f, sizeof f);
        th_shortest_g(roc->tpr[i], 0, r, sizeof r);
        th_strbuf_printf(&b, "%s,%s,%s\n", t, f, r);
    }
    return write_buffer(path, &b, err);
}

int th_report_write_roc_png(const char *path, const char *title, int l, const char *const *label, const th_roc *roc,
                            const th_label_metrics *m, th_err *err)
{
    th_figure *f = th_figure_new(820, 820, 1, NULL, err);
    if (!f) return th_err_prefix(err, "%s: ", path);
    th_plot *p = th_figure_panel(f, 0);
    th_plot_labels(p, title, "False positive rate (1 - specificity)", "True positive rate (sensitivity)");
    /* A hair beyond [0, 1] so that curves along the edges stay visible. */
    th_plot_xrange(p, -0.01, 1.01);
    th_plot_yrange(p, -0.01, 1.01);
    th_plot_diagonal(p);
    int drawn = 0;
    for (int k = 0; k < l; k++) {
        char text[320];
        if (!m[k].defined || roc[k].n == 0) {
            /* Named in the legend, so that a missing curve is explained. */
            snprintf(text, sizeof text, "%.80s\t%s", label[k], m[k].reason ? m[k].reason : "undefined");
            th_plot_series(p, 0, NULL, NULL, text, TH_PLOT_NO_LINE);
            continue;
        }
        /* The AUC and its CI in a column of their own (en dash in UTF-8):
         * the bootstrap's when there is one, as in metrics.json. */
        int boot = m[k].boot.used > 0;
        double lo = boot ? m[k].boot.lo : m[k].auc_lo, hi = boot ? m[k].boot.hi : m[k].auc_hi;
        if (isfinite(lo))
            snprintf(text, sizeof text, "%.80s\tAUC %.3f (%.3f\xe2\x80\x93%.3f)", label[k], m[k].auc, lo, hi);
        else
            snprintf(text, sizeof text, "%.80s\tAUC %.3f", label[k], m[k].auc);
        th_plot_series(p, roc[k].n, roc[k].fpr, roc[k].tpr, text, TH_PLOT_COLOR(drawn) | (drawn >= 10 ? TH_PLOT_DASHED : 0));
        /* Youden's operating point, in the curve's colour, out of the legend. */
        double fx = 1 - m[k].specificity, ty = m[k].sensitivity;
        th_plot_series(p, 1, &fx, &ty, NULL, TH_PLOT_COLOR(drawn) | TH_PLOT_MARKERS | TH_PLOT_NO_LINE);
        drawn++;
    }
    int rc = th_figure_write_png(f, path, err);
    th_figure_free(f);
    return rc;
}

int th_report_write_calibration_png(const char *path, const char *title, int n, int l, const char *const *label,
                                    const float *p, const uint8_t *y, const th_label_metrics *m, th_err *err)
{
    th_figure *f = th_figure_new(820, 820, 1, NULL, err);
    if (!f) return th_err_prefix(err, "%s: ", path);
    th_plot *pl = th_figure_panel(f, 0);
    th_plot_labels(pl, title, "Mean predicted probability (equal-mass bins)", "Fraction positive");
    th_plot_xrange(pl, -0.01, 1.01);
    th_plot_yrange(pl, -0.01, 1.01);
    th_plot_diagonal(pl);
    int rc = 0;
    for (int k = 0; k < l && !rc; k++) {
        double bp[TH_ECE_BINS], by[TH_ECE_BINS], ece, brier;
        rc = th_calibration_error(n, p + k, y + k, l, TH_ECE_BINS, &ece, &brier, bp, by, err);
        char text[320];
        snprintf(text, sizeof text, "%.80s\tECE %.3f", label[k], m[k].ece);
        th_plot_series(pl, TH_ECE_BINS, bp, by, text,
                       TH_PLOT_COLOR(k) | TH_PLOT_MARKERS | (k >= 10 ? TH_PLOT_DASHED : 0));
    }
    if (!rc) rc = th_figure_write_png(f, path, err);
    th_figure_free(f);
    return rc;
}

int th_thresholds_write(const char *path, const th_thresholds *t, th_err *err)
{
    th_strbuf b = {0};
    th_strbuf_printf(&b, "{\n  \"chosen_on\": \"val\",\n  \"checkpoint\": ");
    json_string(&b, t->checkpoint);
    th_strbuf_printf(&b, ",\n  \"checkpoint_epoch\": %d,\n  \"checkpoint_step\": %ld,\n  \"rule\": ", t->epoch,
                     t->step);
    json_string(&b, t->rule);
    th_strbuf_printf(&b, ",\n  \"calibrate\": ");
    json_string(&b, t->calibrate);
    th_strbuf_printf(&b, ",\n  \"labels\": {");
    for (int k = 0; k < t->l; k++) {
        th_strbuf_printf(&b, "%s\n    ", k ? "," : "");
        json_string(&b, t->label[k]);
        th_strbuf_printf(&b, ": {\"threshold\": ");
        json_number(&b, t->threshold[k], 1);
        th_strbuf_printf(&b, ", \"patient_threshold\": ");
        json_number(&b, t->threshold_patient[k], 1);
        th_strbuf_printf(&b, ", \"temperature\": ");
        json_number(&b, t->temperature[k], 0);
        th_strbuf_printf(&b, ", \"rule\": ");
        json_string(&b, t->rule);
        th_strbuf_printf(&b, ", \"chosen_on\": \"val\", \"checkpoint\": ");
        json_string(&b, t->checkpoint);
        th_strbuf_printf(&b, "}");
    }
    th_strbuf_printf(&b, "%s}\n}\n", t->l ? "\n  " : "");
    return write_buffer(path, &b, err);
}

/* ---- everything for one directory ---------------------------------------------------- */

/* The operating points into m: ap's thresholds (threshold [l], image or
 * patient level) or, without ap, Youden's on these data. With p_raw, the
 * raw scores' calibration and the temperatures too. */
static int apply_and_calibrate(int n, int l, const float *p, const float *p_raw, const uint8_t *y,
                               const th_eval_applied *ap, const double *threshold, const char *split,
                               th_label_metrics *m, th_metrics_macro *macro, th_err *err)
{
    double *own = NULL;
    if (!ap) {
        own = malloc(sizeof(double) * ((size_t)l + 1));
        if (!own) return th_errf(err, "out of memory for %d thresholds", l);
        for (int k = 0; k < l; k++)
            if (th_threshold_choose(n, p + k, y + k, l, TH_THRESHOLD_YOUDEN, 0, &own[k], err)) {
                free(own);
                return -1;
            }
        threshold = own;
    }
    th_metrics_apply(n, l, p, y, threshold, ap ? ap->rule : "youden", ap ? ap->chosen_on : split ? split : "",
                     m, macro);
    free(own);
    for (int k = 0; p_raw && ap && ap->temperature && k < l; k++) {
        m[k].temperature = ap->temperature[k];
        if (th_calibration_error(n, p_raw + k, y + k, l, TH_ECE_BINS, &m[k].ece_raw, &m[k].brier_raw, NULL, NULL,
                                 err))
            return -1;
    }
    return 0;
}

/* metrics.json, roc_<label>.csv, roc.png and calibration.png of one level
 * into dir; the bootstrap (info->bootstrap > 0) resamples the clusters
 * cluster_of[n] in [0, n_clusters), patients. */
static int write_level(const char *dir, const th_report_info *info, int n, int l, const char *const *label,
                       const float *p, const float *p_raw, const uint8_t *y, const int *cluster_of, int n_clusters,
                       const th_eval_applied *ap, const double *threshold, th_metrics_macro *macro, th_err *err)
{
    th_label_metrics *m = calloc((size_t)l + 1, sizeof *m);
    th_roc *roc = calloc((size_t)l + 1, sizeof *roc);
    char (*name)[TH_SAFE_NAME_MAX] = calloc((size_t)l + 1, sizeof *name);
    char path[4096];
    int rc = -1;
    if (!m || !roc || !name) {
        th_errf(err, "out of memory for the metrics of %d labels", l);
        goto done;
    }
    if (th_safe_names(l, label, name, err)) goto done;
    if (th_metrics_compute(n, l, p, y, m, macro, err)) goto done;
    if (info->bootstrap > 0) {
        th_auc_boot *boot = calloc((size_t)l + 1, sizeof *boot);
        int brc = boot ? th_auc_bootstrap(n, l, p, NULL, y, cluster_of, n_clusters, info->bootstrap,
                                          info->bootstrap_seed, boot, NULL, err)
                       : th_errf(err, "out of memory for the bootstrap of %d labels", l);
        for (int k = 0; !brc && k < l; k++) m[k].boot = boot[k];
        free(boot);
        if (brc) goto done;
    }
    /* The reasons speak of images; at patient level the cases are patients. */
    if (strcmp(info->level, "patient") == 0)
        for (int k = 0; k < l; k++)
            if (!m[k].defined)
                m[k].reason = m[k].n_pos + m[k].n_neg == 0 ? "no patients"
                              : m[k].n_pos == 0            ? "no positive patients"
                                                           : "no negative patients";
    if (apply_and_calibrate(n, l, p, p_raw, y, ap, threshold, info->split, m, macro, err)) goto done;
    for (int k = 0; k < l; k++)
        if (th_roc_curve(n, p + k, y + k, l, &roc[k], err)) {
            th_err_prefix(err, "label %s: ", label[k]);
            goto done;
        }
    if (make_path(path, sizeof path, err, "%s/metrics.json", dir)) goto done;
    if (th_report_write_metrics_json(path, info, l, label, m, macro, err)) goto done;
    if (make_path(path, sizeof path, err, "%s/metrics.md", dir)) goto done;
    if (th_report_write_metrics_md(path, info, l, label, m, macro, err)) goto done;
    for (int k = 0; k < l; k++) {
        if (make_path(path, sizeof path, err, "%s/roc_%s.csv", dir, name[k])) goto done;
        if (th_report_write_roc_csv(path, &roc[k], err)) goto done;
    }
    char title[256], macro_text[48] = "";
    if (isfinite(macro->auc)) snprintf(macro_text, sizeof macro_text, ", macro AUC %.3f", macro->auc);
    if (info->split)
        snprintf(title, sizeof title, "ROC, %.64s (%s level%s)", info->split, info->level, macro_text);
    else
        snprintf(title, sizeof title, "ROC (%s level%s)", info->level, macro_text);
    if (make_path(path, sizeof path, err, "%s/roc.png", dir)) goto done;
    if (th_report_write_roc_png(path, title, l, label, roc, m, err)) goto done;
    if (info->split)
        snprintf(title, sizeof title, "Calibration, %.64s (%s level)", info->split, info->level);
    else
        snprintf(title, sizeof title, "Calibration (%s level)", info->level);
    if (make_path(path, sizeof path, err, "%s/calibration.png", dir)) goto done;
    if (th_report_write_calibration_png(path, title, n, l, label, p, y, m, err)) goto done;
    rc = 0;
done:
    for (int k = 0; roc && k < l; k++) th_roc_free(&roc[k]);
    free(roc);
    free(m);
    free(name);
    return rc;
}

/* The patient-level data: max score, any-positive label, first image's ID. */
static int write_patient_level(const char *dir, const char *split, const th_eval_data *d, const th_eval_applied *ap,
                               th_err *err)
{
    int n = d->n, l = d->l, rc = -1;
    int *patient_of = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    int np = patient_of ? th_patients_group(n, d->patient_id, patient_of) : -1;
    size_t cells = (size_t)(np > 0 ? np : 1) * (size_t)(l > 0 ? l : 1);
    float *pp = np >= 0 ? malloc(sizeof(float) * cells) : NULL;
    float *pp_raw = np >= 0 && d->p_raw ? malloc(sizeof(float) * cells) : NULL;
    uint8_t *py = np >= 0 ? malloc(cells) : NULL;
    const char **id = np >= 0 ? calloc((size_t)np + 1, sizeof *id) : NULL;
    int *count = np >= 0 ? calloc((size_t)np + 1, sizeof *count) : NULL;
    int *self = np >= 0 ? malloc(sizeof(int) * ((size_t)np + 1)) : NULL;
    if (!pp || !py || !id || !count || !self || (d->p_raw && !pp_raw)) {
        th_errf(err, "out of memory grouping %d images by patient", n);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (!id[patient_of[i]]) id[patient_of[i]] = d->patient_id[i];
        count[patient_of[i]]++;
    }
    if (th_metrics_by_patient(n, l, d->p, d->y, patient_of, np, pp, py, err)) goto done;
    if (d->p_raw && th_metrics_by_patient(n, l, d->p_raw, d->y, patient_of, np, pp_raw, py, err)) goto done;
    if (th_mkdirs(dir, err)) goto done;
    char path[4096];
    if (make_path(path, sizeof path, err, "%s/predictions.csv", dir)) goto done;
    if (write_predictions(path, np, l, d->label, "patient_id", id, "n_images", NULL, count, pp, pp_raw, py, err))
        goto done;
    th_report_info info = {.overlap = d->overlap, .level = "patient", .split = split, .n_images = n, .n_patients = np,
                           .bootstrap = d->bootstrap, .bootstrap_seed = d->bootstrap_seed};
    th_metrics_macro macro;
    /* Each patient is one case: their own cluster. */
    for (int q = 0; q < np; q++) self[q] = q;
    rc = write_level(dir, &info, np, l, d->label, pp, pp_raw, py, self, np, ap, ap ? ap->threshold_patient : NULL,
                     &macro, err);
done:
    free(patient_of);
    free(pp);
    free(pp_raw);
    free(py);
    free(id);
    free(count);
    free(self);
    return rc;
}

int th_report_write_eval(const char *dir, const char *split, const th_eval_data *d, int flags,
                         th_metrics_macro *macro, th_err *err)
{
    return th_report_write_eval_applied(dir, split, d, flags, NULL, macro, err);
}

int th_report_write_eval_applied(const char *dir, const char *split, const th_eval_data *d, int flags,
                                 const th_eval_applied *ap, th_metrics_macro *macro, th_err *err)
{
    char path[4096];
    if (th_mkdirs(dir, err)) return -1;
    if (make_path(path, sizeof path, err, "%s/predictions.csv", dir)) return -1;
    if (th_report_write_predictions(path, d, err)) return -1;
    /* The patients behind the images: their number for metrics.json, and
     * the clusters of the bootstrap. */
    int *patient_of = malloc(sizeof(int) * (size_t)(d->n > 0 ? d->n : 1));
    int n_patients = patient_of ? th_patients_group(d->n, d->patient_id, patient_of) : -1;
    if (n_patients < 0) {
        free(patient_of);
        return th_errf(err, "out of memory grouping %d images by patient", d->n);
    }
    th_report_info info = {.overlap = d->overlap, .level = "image", .split = split, .n_images = d->n,
                           .n_patients = n_patients, .bootstrap = d->bootstrap, .bootstrap_seed = d->bootstrap_seed};
    th_metrics_macro image_macro;
    int rc = write_level(dir, &info, d->n, d->l, d->label, d->p, d->p_raw, d->y, patient_of, n_patients, ap,
                         ap ? ap->threshold : NULL, &image_macro, err);
    free(patient_of);
    if (rc) return -1;
    if (macro) *macro = image_macro;
    if (!(flags & TH_REPORT_PATIENT)) return 0;
    if (make_path(path, sizeof path, err, "%s/patient", dir)) return -1;
    return write_patient_level(path, split, d, ap, err);
}

/* ---- by_<column>.json and .md: the metrics per subgroup ------------------------ */

static int by_value(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int th_report_write_by(const char *dir, const char *column, const char *split, const th_eval_data *d,
                       const char *const *value, const th_eval_applied *ap, char *md_path, size_t md_cap,
                       th_err *err)
{
    int n = d->n, l = d->l, rc = -1, n_groups = 0;
    const char **groups = malloc(sizeof *groups * (size_t)(n + 1));
    float *p = malloc(sizeof(float) * (size_t)(n + 1) * (size_t)l);
    uint8_t *y = malloc((size_t)(n + 1) * (size_t)l);
    th_label_metrics *m = calloc((size_t)l + 1, sizeof *m);
    char safe[TH_SAFE_NAME_MAX], path[4096];
    th_strbuf js = {0}, md = {0};
    if (!groups || !p || !y || !m) {
        th_errf(err, "out of memory grouping %d images by %s", n, column);
        goto done;
    }
    /* The distinct values, in byte order. */
    memcpy(groups, value, sizeof *groups * (size_t)n);
    qsort(groups, (size_t)n, sizeof *groups, by_value);
    for (int i = 0; i < n; i++)
        if (i == 0 || strcmp(groups[i], groups[n_groups - 1])) groups[n_groups++] = groups[i];
    if (th_safe_name(column, safe, sizeof safe)) {
        th_errf(err, "column name too long for a file name: %.64s...", column);
        goto done;
    }
    th_strbuf_printf(&js, "{\n  \"column\": ");
    json_string(&js, column);
    th_strbuf_printf(&js, ",\n  \"split\": ");
    json_string(&js, split ? split : "");
    th_strbuf_printf(&js, ",\n  \"level\": \"image\",\n  \"ci_method\": \"delong\",\n  \"ci_level\": 0.95,\n"
                          "  \"groups\": {");
    th_strbuf_printf(&md, "Metrics by %s (%s, image level; DeLong 95%% CI)\n", column, split ? split : "");
    for (int g = 0; g < n_groups; g++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (!strcmp(value[i], groups[g])) {
                memcpy(p + (size_t)k * l, d->p + (size_t)i * l, sizeof(float) * (size_t)l);
                memcpy(y + (size_t)k * l, d->y + (size_t)i * l, (size_t)l);
                k++;
            }
        th_metrics_macro macro;
        if (th_metrics_compute(k, l, p, y, m, &macro, err)) goto done;
        /* A group's operating points are val's, as for the whole split:
         * a threshold fitted on the group would flatter it. */
        if (ap) th_metrics_apply(k, l, p, y, ap->threshold, ap->rule, ap->chosen_on, m, &macro);
        th_strbuf_printf(&js, "%s\n    ", g ? "," : "");
        json_string(&js, groups[g]);
        th_strbuf_printf(&js, ": {\n      \"n_images\": %d,\n      \"macro_auc\": ", k);
        json_number(&js, macro.auc, 0);
        th_strbuf_printf(&js, ",\n      \"labels\": {");
        for (int c = 0; c < l; c++) {
            th_strbuf_printf(&js, "%s\n        ", c ? "," : "");
            json_string(&js, d->label[c]);
            th_strbuf_printf(&js, ": {\"auc\": ");
            json_number(&js, m[c].auc, 0);
            th_strbuf_printf(&js, ", \"auc_ci\": ");
            json_interval(&js, m[c].auc_lo, m[c].auc_hi);
            th_strbuf_printf(&js, ", \"n_pos\": %ld, \"n_neg\": %ld}", m[c].n_pos, m[c].n_neg);
        }
        th_strbuf_printf(&js, "\n      }\n    }");
        th_strbuf_printf(&md, "\n%s = ", column);
        md_text(&md, groups[g][0] ? groups[g] : "(empty)");
        th_strbuf_printf(&md, ": %d images, macro AUC ", k);
        md_number(&md, macro.auc, 4);
        th_strbuf_printf(&md, "\n\n");
        th_report_metrics_table(&md, "label", l, d->label, m);
    }
    th_strbuf_printf(&js, "%s}\n}\n", n_groups ? "\n  " : "");
    if (make_path(path, sizeof path, err, "%s/by_%s.json", dir, safe)) goto done;
    if (write_buffer(path, &js, err)) goto done;
    if (make_path(md_path, md_cap, err, "%s/by_%s.md", dir, safe)) goto done;
    rc = write_buffer(md_path, &md, err);
done:
    th_strbuf_free(&js);
    th_strbuf_free(&md);
    free(groups);
    free(p);
    free(y);
    free(m);
    return rc;
}

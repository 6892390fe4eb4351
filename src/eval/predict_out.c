/* predict_out.c - `thorax predict`'s CSV and JSON (see thorax/eval.h), built
 * with report.c's field writers so that paths are quoted and escaped as in
 * every other result file.
 */
#include "thorax/eval.h"
#include "report_impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "thorax/config.h"

/* 1 at or above the label's operating point, 0 below, -1 when val chose no
 * point for it (a NaN threshold: the label had one class in val). The same
 * float-against-double comparison as the terminal table's '*'. */
static int flag(const th_predict_table *r, int i, int k)
{
    double th = r->t->op.threshold[k];
    if (!isfinite(th)) return -1;
    return r->p[(size_t)i * r->l + k] >= th;
}

void th_predict_csv(th_strbuf *b, const th_predict_table *r)
{
    const th_config *cfg = r->t->cfg;
    th_strbuf_printf(b, "image");
    for (int k = 0; k < r->l; k++) {
        th_strbuf_printf(b, ",");
        th_csv_field(b, "p_", cfg->data.labels[k]);
    }
    for (int k = 0; r->t->has_op && k < r->l; k++) {
        th_strbuf_printf(b, ",");
        th_csv_field(b, "pred_", cfg->data.labels[k]);
    }
    th_strbuf_printf(b, "\n");
    for (int i = 0; i < r->n; i++) {
        th_csv_field(b, "", r->image[i]);
        for (int k = 0; k < r->l; k++) th_strbuf_printf(b, ",%.6f", (double)r->p[(size_t)i * r->l + k]);
        for (int k = 0; r->t->has_op && k < r->l; k++) {
            int f = flag(r, i, k);
            th_strbuf_printf(b, f < 0 ? "," : ",%d", f);
        }
        th_strbuf_printf(b, "\n");
    }
}

/* {"<label>": value, ...} with value from fn (as a float when as_float), or
 * null where fn gives NaN. */
static void by_label(th_strbuf *b, const th_predict_table *r, int i, double (*fn)(const th_predict_table *, int, int),
                     int as_float)
{
    th_strbuf_printf(b, "{");
    for (int k = 0; k < r->l; k++) {
        th_strbuf_printf(b, k ? ", " : "");
        json_string(b, r->t->cfg->data.labels[k]);
        th_strbuf_printf(b, ": ");
        json_number(b, fn(r, i, k), as_float);
    }
    th_strbuf_printf(b, "}");
}

static double prob(const th_predict_table *r, int i, int k) { return r->p[(size_t)i * r->l + k]; }
static double pred(const th_predict_table *r, int i, int k) { return flag(r, i, k) < 0 ? NAN : flag(r, i, k); }
static double threshold(const th_predict_table *r, int i, int k)
{
    (void)i;
    return r->t->op.threshold[k];
}

/* The warning sentence as a list: th_predictor_load_image joins its parts
 * with "; ". */
static void warnings(th_strbuf *b, const char *w)
{
    th_strbuf_printf(b, "[");
    for (int first = 1; w && *w; first = 0) {
        const char *end = strstr(w, "; ");
        size_t n = end ? (size_t)(end - w) : strlen(w);
        char part[512];
        snprintf(part, sizeof part, "%.*s", (int)n, w);
        th_strbuf_printf(b, first ? "" : ", ");
        json_string(b, part);
        w = end ? end + 2 : w + n;
    }
    th_strbuf_printf(b, "]");
}

void th_predict_json(th_strbuf *b, const th_predict_table *r)
{
    const th_predictor *t = r->t;
    th_strbuf_printf(b, "{\n  \"checkpoint\": ");
    json_string(b, t->ckpt);
    th_strbuf_printf(b, ",\n  \"epoch\": %d,\n  \"step\": %ld,\n  \"labels\": [", t->st.epoch, t->st.step);
    for (int k = 0; k < r->l; k++) {
        th_strbuf_printf(b, k ? ", " : "");
        json_string(b, t->cfg->data.labels[k]);
    }
    th_strbuf_printf(b, "],\n  \"operating_points\": ");
    if (t->has_op) {
        by_label(b, r, 0, threshold, 1); /* float-valued, written as thresholds.json does */
        th_strbuf_printf(b, ",\n  \"rule\": ");
        json_string(b, t->op.rule);
    } else {
        th_strbuf_printf(b, "null,\n  \"rule\": null");
    }
    th_strbuf_printf(b, ",\n  \"calibrated\": %s,\n  \"images\": [",
                     t->has_op && t->cfg->eval.calibrate == TH_CALIBRATE_TEMPERATURE ? "true" : "false");
    for (int i = 0; i < r->n; i++) {
        th_strbuf_printf(b, "%s\n    {\"image\": ", i ? "," : "");
        json_string(b, r->image[i]);
        th_strbuf_printf(b, ", \"p\": ");
        by_label(b, r, i, prob, 1);
        if (t->has_op) {
            th_strbuf_printf(b, ", \"pred\": ");
            by_label(b, r, i, pred, 0);
        }
        th_strbuf_printf(b, ", \"warnings\": ");
        warnings(b, r->warning ? r->warning[i] : NULL);
        th_strbuf_printf(b, "}");
    }
    th_strbuf_printf(b, "%s],\n  \"skipped\": [", r->n ? "\n  " : "");
    for (int i = 0; i < r->n_skipped; i++) {
        th_strbuf_printf(b, "%s\n    {\"image\": ", i ? "," : "");
        json_string(b, r->skipped[i]);
        th_strbuf_printf(b, ", \"error\": ");
        json_string(b, r->error[i]);
        th_strbuf_printf(b, "}");
    }
    th_strbuf_printf(b, "%s]\n}\n", r->n_skipped ? "\n  " : "");
}

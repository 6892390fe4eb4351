/* compare.c - `thorax compare`: two runs' predictions of the same images,
 * per label the AUC difference with DeLong's paired test and the paired
 * patient bootstrap (see thorax/eval.h).
 *
 * The runs' predictions.csv files are read whole, the images paired by name
 * (both files sorted by name once, then merged), and the labels by name.
 * What was left out on either side is counted and reported, never silently
 * dropped. Serial: the work is a few sorts and sweeps.
 */
#include "thorax/eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thorax/data.h"
#include "eval_impl.h"
#include "report_impl.h"

typedef struct named {
    const char *name;
    const th_csv_row *row;
} named;

/* One run's predictions.csv: columns by label, rows sorted by image name. */
typedef struct preds {
    th_csv csv;
    int image_col, patient_col;
    int l;
    const char *label[TH_MAX_LABELS];   /* into the header */
    int y_col[TH_MAX_LABELS], p_col[TH_MAX_LABELS];
    named *by_name;                     /* [csv.n_rows] rows in image-name order */
} preds;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const named *)a)->name, ((const named *)b)->name);
}

static int read_preds(preds *r, const char *path, th_err *err)
{
    memset(r, 0, sizeof *r);
    if (th_csv_read(&r->csv, path, err)) return -1;
    const th_csv *c = &r->csv;
    r->image_col = csv_column(c, "image");
    r->patient_col = csv_column(c, "patient_id");
    if (r->image_col < 0 || r->patient_col < 0)
        return th_errf(err, "%s has no 'image' and 'patient_id' columns: not a predictions.csv of thorax eval", path);
    for (int k = 0; k < c->header.n_fields; k++) {
        const char *f = c->header.fields[k];
        if (strncmp(f, "y_", 2)) continue;
        char p_name[TH_CSV_MAX_FIELD + 2];
        snprintf(p_name, sizeof p_name, "p_%s", f + 2);
        int p_col = csv_column(c, p_name);
        if (p_col < 0) return th_errf(err, "%s has the column %s but no %s", path, f, p_name);
        if (r->l == TH_MAX_LABELS) return th_errf(err, "%s has more than %d labels", path, TH_MAX_LABELS);
        r->label[r->l] = f + 2;
        r->y_col[r->l] = k;
        r->p_col[r->l++] = p_col;
    }
    for (int i = 0; i < c->n_rows; i++)
        if (c->rows[i].n_fields != c->header.n_fields)
            return th_errf(err, "%s:%d: %d fields where the header has %d", path, c->rows[i].line,
                           c->rows[i].n_fields, c->header.n_fields);
    r->by_name = malloc(sizeof *r->by_name * ((size_t)c->n_rows + 1));
    if (!r->by_name) return th_errf(err, "out of memory reading %s", path);
    for (int i = 0; i < c->n_rows; i++) r->by_name[i] = (named){c->rows[i].fields[r->image_col], &c->rows[i]};
    qsort(r->by_name, (size_t)c->n_rows, sizeof *r->by_name, by_name);
    for (int i = 1; i < c->n_rows; i++) {
        const named *x = &r->by_name[i - 1], *y = &r->by_name[i];
        if (!strcmp(x->name, y->name))
            return th_errf(err, "%s: image '%s' is listed twice (lines %d and %d)", path, x->name, x->row->line,
                           y->row->line);
    }
    return 0;
}

static void preds_free(preds *r)
{
    th_csv_free(&r->csv);
    free(r->by_name);
}

static int parse_p(const preds *r, const th_csv_row *row, int k, float *out, th_err *err)
{
    const char *s = row->fields[r->p_col[k]];
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v))
        return th_errf(err, "%s:%d: p_%s is '%s', not a finite number", r->csv.path, row->line, r->label[k], s);
    *out = (float)v;
    return 0;
}

static int parse_y(const preds *r, const th_csv_row *row, int k, uint8_t *out, th_err *err)
{
    const char *s = row->fields[r->y_col[k]];
    if (strcmp(s, "0") && strcmp(s, "1") && *s)
        return th_errf(err, "%s:%d: y_%s is '%s', not 0, 1 or empty (unknown)", r->csv.path, row->line, r->label[k],
                       s);
    *out = !*s ? TH_LABEL_UNKNOWN : s[0] == '1';
    return 0;
}

/* The paired data: images in both files (in A's name order), common labels. */
typedef struct paired {
    int n, l;
    int label_a[TH_MAX_LABELS], label_b[TH_MAX_LABELS];
    float *pa, *pb;         /* [n, l] */
    uint8_t *y;             /* [n, l] */
    const char **patient;   /* [n], into A's file */
} paired;

static int pair_labels(const preds *a, const preds *b, paired *d, th_compare_result *res, th_err *err)
{
    size_t used = 0;
    for (int side = 0; side < 2; side++) {
        const preds *x = side ? b : a, *other = side ? a : b;
        for (int k = 0; k < x->l; k++) {
            int j = 0;
            while (j < other->l && strcmp(other->label[j], x->label[k])) j++;
            if (j < other->l) {
                if (side == 0) {
                    d->label_a[d->l] = k;
                    d->label_b[d->l++] = j;
                }
            } else if (used < sizeof res->note - 80) {
                const char *lead = used ? ", " : "labels of one run only, not compared: ";
                used += (size_t)snprintf(res->note + used, sizeof res->note - used, "%s%s (%s)", lead, x->label[k],
                                         side ? "B" : "A");
            }
        }
    }
    if (d->l == 0) return th_errf(err, "%s and %s have no label in common", a->csv.path, b->csv.path);
    return 0;
}

static int pair_images(const preds *a, const preds *b, paired *d, th_compare_result *res, th_err *err)
{
    int na = a->csv.n_rows, nb = b->csv.n_rows, cap = (na < nb ? na : nb) + 1, l = d->l;
    d->pa = malloc(sizeof(float) * (size_t)cap * l);
    d->pb = malloc(sizeof(float) * (size_t)cap * l);
    d->y = malloc((size_t)cap * l);
    d->patient = malloc(sizeof(char *) * (size_t)cap);
    if (!d->pa || !d->pb || !d->y || !d->patient) return th_errf(err, "out of memory pairing %d images", cap);
    int i = 0, j = 0;
    while (i < na && j < nb) {
        const th_csv_row *ra = a->by_name[i].row, *rb = b->by_name[j].row;
        int c = strcmp(a->by_name[i].name, b->by_name[j].name);
        if (c) {
            if (c < 0) i++;
            else j++;
            continue;
        }
        const char *name = a->by_name[i].name;
        if (strcmp(ra->fields[a->patient_col], rb->fields[b->patient_col]))
            return th_errf(err, "image '%s' belongs to patient '%s' in %s but '%s' in %s: the runs evaluated "
                           "different data", name, ra->fields[a->patient_col], a->csv.path,
                           rb->fields[b->patient_col], b->csv.path);
        size_t at = (size_t)d->n * l;
        for (int k = 0; k < l; k++) {
            uint8_t yb;
            if (parse_y(a, ra, d->label_a[k], &d->y[at + k], err) || parse_y(b, rb, d->label_b[k], &yb, err) ||
                parse_p(a, ra, d->label_a[k], &d->pa[at + k], err) || parse_p(b, rb, d->label_b[k], &d->pb[at + k], err))
                return -1;
            if (yb != d->y[at + k])
                return th_errf(err, "image '%s': y_%s is %d in %s but %d in %s: the runs evaluated different labels",
                               name, a->label[d->label_a[k]], d->y[at + k], a->csv.path, yb, b->csv.path);
        }
        d->patient[d->n++] = ra->fields[a->patient_col];
        i++;
        j++;
    }
    res->n_a = na;
    res->n_b = nb;
    res->n_matched = d->n;
    if (d->n == 0)
        return th_errf(err, "%s and %s have no image name in common (%d and %d images)", a->csv.path, b->csv.path, na,
                       nb);
    return 0;
}

/* DeLong's paired test of label k (both classes present). */
static int delong_paired(const paired *d, int k, th_compare_label *out, double *va, double *vb, th_err *err)
{
    int n = d->n, l = d->l;
    if (th_auc_placements(n, d->pa + k, d->y + k, l, va, err) || th_auc_placements(n, d->pb + k, d->y + k, l, vb, err))
        return -1;
    double m = (double)out->n_pos, q = (double)out->n_neg;
    double ma = 0, mb = 0;
    for (int i = 0; i < n; i++)
        if (d->y[(size_t)i * l + k] == 1) {
            ma += va[i];
            mb += vb[i];
        }
    out->auc_a = ma / m;
    out->auc_b = mb / m;
    out->diff = out->auc_a - out->auc_b;
    if (out->n_pos < 2 || out->n_neg < 2) {
        out->reason = "fewer than two cases in a class: no variance";
        return 0;
    }
    /* Sample (co)variances of the placement values, positives (10) and
     * negatives (01) apart; V01's mean is the AUC too. */
    double s10[3] = {0}, s01[3] = {0};
    for (int i = 0; i < n; i++) {
        uint8_t y = d->y[(size_t)i * l + k];
        if (y == TH_LABEL_UNKNOWN) continue;
        double x = va[i] - out->auc_a, z = vb[i] - out->auc_b;
        double *s = y ? s10 : s01;
        s[0] += x * x;
        s[1] += z * z;
        s[2] += x * z;
    }
    double var = (s10[0] + s10[1] - 2 * s10[2]) / (m - 1) / m + (s01[0] + s01[1] - 2 * s01[2]) / (q - 1) / q;
    out->se = sqrt(fmax(var, 0));
    out->lo = out->diff - TH_AUC_CI_Z * out->se;
    out->hi = out->diff + TH_AUC_CI_Z * out->se;
    if (out->se > 0) {
        out->z = out->diff / out->se;
        out->p = erfc(fabs(out->z) / sqrt(2.0));
    }
    return 0;
}

static int write_json(const char *path, const th_compare_opts *o, const th_compare_result *res, const preds *a,
                      const preds *b, th_err *err)
{
    th_strbuf s = {0};
    th_strbuf_printf(&s, "{\n  \"run_a\": ");
    json_string(&s, o->run_a);
    th_strbuf_printf(&s, ",\n  \"run_b\": ");
    json_string(&s, o->run_b);
    th_strbuf_printf(&s, ",\n  \"predictions_a\": ");
    json_string(&s, res->pred_a);
    th_strbuf_printf(&s, ",\n  \"predictions_b\": ");
    json_string(&s, res->pred_b);
    th_strbuf_printf(&s,
                     ",\n  \"n_images_a\": %d,\n  \"n_images_b\": %d,\n  \"n_matched\": %d,\n  \"n_only_a\": %d,"
                     "\n  \"n_only_b\": %d,\n  \"n_patients\": %d,\n  \"ci_level\": 0.95,\n  \"bootstrap_resamples\": %d,"
                     "\n  \"bootstrap_seed\": %llu",
                     res->n_a, res->n_b, res->n_matched, res->n_a - res->n_matched, res->n_b - res->n_matched,
                     res->n_patients, o->bootstrap, (unsigned long long)o->seed);
    for (int side = 0; side < 2; side++) {
        const preds *x = side ? b : a, *other = side ? a : b;
        th_strbuf_printf(&s, ",\n  \"labels_only_%c\": [", side ? 'b' : 'a');
        for (int k = 0, first = 1; k < x->l; k++) {
            int j = 0;
            while (j < other->l && strcmp(other->label[j], x->label[k])) j++;
            if (j < other->l) continue;
            th_strbuf_printf(&s, "%s", first ? "" : ", ");
            json_string(&s, x->label[k]);
            first = 0;
        }
        th_strbuf_printf(&s, "]");
    }
    th_strbuf_printf(&s, ",\n  \"labels\": {");
    for (int k = 0; k < res->n_labels; k++) {
        const th_compare_label *c = &res->label[k];
        th_strbuf_printf(&s, "%s\n    ", k ? "," : "");
        json_string(&s, c->label);
        th_strbuf_printf(&s, ": {\n      \"n_pos\": %ld,\n      \"n_neg\": %ld,\n      \"auc_a\": ", c->n_pos, c->n_neg);
        json_number(&s, c->auc_a, 0);
        th_strbuf_printf(&s, ",\n      \"auc_b\": ");
        json_number(&s, c->auc_b, 0);
        th_strbuf_printf(&s, ",\n      \"diff\": ");
        json_number(&s, c->diff, 0);
        th_strbuf_printf(&s, ",\n      \"delong\": {\"se\": ");
        json_number(&s, c->se, 0);
        th_strbuf_printf(&s, ", \"z\": ");
        json_number(&s, c->z, 0);
        th_strbuf_printf(&s, ", \"p\": ");
        json_number(&s, c->p, 0);
        th_strbuf_printf(&s, ", \"diff_ci\": ");
        json_interval(&s, c->lo, c->hi);
        th_strbuf_printf(&s, "}");
        if (o->bootstrap > 0) {
            th_strbuf_printf(&s, ",\n      \"bootstrap\": {\"diff_ci\": ");
            json_interval(&s, c->boot.lo, c->boot.hi);
            th_strbuf_printf(&s, ", \"used\": %d, \"skipped\": %d}", c->boot.used, c->boot.skipped);
        }
        if (c->reason) {
            th_strbuf_printf(&s, ",\n      \"reason\": ");
            json_string(&s, c->reason);
        }
        th_strbuf_printf(&s, "\n    }");
    }
    th_strbuf_printf(&s, "%s}\n}\n", res->n_labels ? "\n  " : "");
    return write_buffer(path, &s, err);
}

/* The base name of a run directory, trailing slashes ignored. */
static void run_name(const char *dir, char *out, size_t cap)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t start = n;
    while (start > 0 && dir[start - 1] != '/') start--;
    snprintf(out, cap, "%.*s", (int)(n - start), dir + start);
}

static int compute(const th_compare_opts *o, const paired *d, th_compare_result *res, th_err *err)
{
    int n = d->n, l = d->l, rc = -1;
    int *patient_of = malloc(sizeof(int) * (size_t)n);
    double *va = malloc(sizeof(double) * (size_t)n), *vb = malloc(sizeof(double) * (size_t)n);
    th_auc_boot *boot = calloc((size_t)l, sizeof *boot);
    if (!patient_of || !va || !vb || !boot) {
        th_errf(err, "out of memory comparing %d images", n);
        goto done;
    }
    res->n_patients = th_patients_group(n, d->patient, patient_of);
    if (res->n_patients < 0) {
        th_errf(err, "out of memory grouping %d images by patient", n);
        goto done;
    }
    if (o->bootstrap > 0 &&
        th_auc_bootstrap(n, l, d->pa, d->pb, d->y, patient_of, res->n_patients, o->bootstrap, o->seed, boot, NULL, err))
        goto done;
    for (int k = 0; k < l; k++) {
        th_compare_label *c = &res->label[k];
        c->auc_a = c->auc_b = c->diff = c->se = c->z = c->p = c->lo = c->hi = NAN;
        c->boot = boot[k];
        /* Images whose label is unknown take no part in that label's test. */
        for (int i = 0; i < n; i++) {
            uint8_t y = d->y[(size_t)i * l + k];
            c->n_pos += y == 1;
            c->n_neg += y == 0;
        }
        if (c->n_pos == 0 || c->n_neg == 0)
            c->reason = c->n_pos ? "no negative images" : "no positive images";
        else if (delong_paired(d, k, c, va, vb, err))
            goto done;
    }
    rc = 0;
done:
    free(patient_of);
    free(va);
    free(vb);
    free(boot);
    return rc;
}

int th_compare_run(const th_compare_opts *o, th_compare_result *res, th_err *err)
{
    memset(res, 0, sizeof *res);
    if (o->bootstrap < 0) return th_errf(err, "--bootstrap must be >= 0, got %d", o->bootstrap);
    char where[1024];
    if (o->data) {
        if (eval_data_dir_name(o->data, where, sizeof where, err)) return -1;
    } else {
        const char *split = o->split ? o->split : "test";
        if (strcmp(split, "val") && strcmp(split, "test"))
            return th_errf(err, "--split must be val or test, got '%s'", split);
        snprintf(where, sizeof where, "%s", split);
    }
    if (make_path(res->pred_a, sizeof res->pred_a, err, "%s/eval/%s/predictions.csv", o->run_a, where) ||
        make_path(res->pred_b, sizeof res->pred_b, err, "%s/eval/%s/predictions.csv", o->run_b, where))
        return -1;
    const char *eval_args = o->data ? " --data " : " --split ";
    const char *eval_what = o->data ? o->data : where;
    for (int side = 0; side < 2; side++) {
        const char *path = side ? res->pred_b : res->pred_a;
        FILE *f = fopen(path, "r");
        if (!f)
            return th_errf(err, "%s is missing: run `thorax eval %s%s%s` first", path, side ? o->run_b : o->run_a,
                           eval_args, eval_what);
        fclose(f);
    }
    char name_b[256], dir[2048];
    run_name(o->run_b, name_b, sizeof name_b);
    if (o->out_dir) snprintf(dir, sizeof dir, "%s", o->out_dir);
    else if (make_path(dir, sizeof dir, err, "%s/compare/%s_%s", o->run_a, name_b, where)) return -1;
    if (make_path(res->out_path, sizeof res->out_path, err, "%s/compare.json", dir)) return -1;
    const char *inputs[2] = {res->pred_a, res->pred_b};
    if (th_output_not_input(res->out_path, 2, inputs, err)) return th_err_prefix(err, "--out: ");

    preds a, b;
    paired d;
    memset(&d, 0, sizeof d);
    int rc = read_preds(&a, res->pred_a, err);
    if (!rc) rc = read_preds(&b, res->pred_b, err);
    else memset(&b, 0, sizeof b);
    if (!rc) rc = pair_labels(&a, &b, &d, res, err);
    if (!rc) rc = pair_images(&a, &b, &d, res, err);
    if (!rc) {
        res->n_labels = d.l;
        for (int k = 0; k < d.l; k++) snprintf(res->label[k].label, TH_LABEL_MAX, "%s", a.label[d.label_a[k]]);
        rc = compute(o, &d, res, err);
    }
    if (!rc) rc = th_mkdirs(dir, err);
    if (!rc) rc = write_json(res->out_path, o, res, &a, &b, err);
    free(d.pa);
    free(d.pb);
    free(d.y);
    free(d.patient);
    preds_free(&a);
    preds_free(&b);
    return rc;
}

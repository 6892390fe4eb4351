/* explain_select.c - which (image, label) pairs `thorax cam` maps (see
 * thorax/eval.h): the images named by --images, or per label the top-k
 * TP, FP and FN of the split's ranked predictions. Runs on rank 0.
 */
#include "explain_impl.h"
#include "eval_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thorax/data.h"

static int add_item(explain *e, int row, int label, th_explain_kind kind, th_err *err)
{
    if (e->n_items == e->cap_items) {
        int cap = e->cap_items ? 2 * e->cap_items : 64;
        int *more = realloc(e->items, sizeof(int) * IT_INTS * (size_t)cap);
        if (!more) return th_errf(err, "out of memory selecting %d maps", cap);
        e->items = more;
        e->cap_items = cap;
    }
    int *it = e->items + (size_t)e->n_items++ * IT_INTS;
    it[IT_ROW] = row;
    it[IT_LABEL] = label;
    it[IT_KIND] = kind;
    it[IT_OWNER] = 0;
    return 0;
}

/* Image names of the file, sorted, to find rows by name. */
typedef struct named_row {
    const char *name;
    int row;
} named_row;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const named_row *)a)->name, ((const named_row *)b)->name);
}

static named_row *name_index(const th_dataset *ds, th_err *err)
{
    named_row *idx = malloc(sizeof *idx * (size_t)(ds->n + 1));
    if (!idx) {
        th_errf(err, "out of memory indexing the %d image names of %s", ds->n, ds->path);
        return NULL;
    }
    for (int i = 0; i < ds->n; i++) idx[i] = (named_row){ds->image_name[i], i};
    qsort(idx, (size_t)ds->n, sizeof *idx, by_name);
    return idx;
}

static int find_row(const named_row *idx, int n, const char *name)
{
    named_row key = {name, -1};
    const named_row *hit = bsearch(&key, idx, (size_t)n, sizeof *idx, by_name);
    return hit ? hit->row : -1;
}

/* --images: every named image (once, in the order given) with every wanted label. */
static int select_named(explain *e, const named_row *idx, th_err *err)
{
    char *list = strdup(e->opts->images), *save = NULL;
    uint8_t *seen = calloc((size_t)e->ds.n + 1, 1);
    int rc = list && seen ? 0 : th_errf(err, "out of memory reading --images");
    for (char *name = list ? strtok_r(list, ",", &save) : NULL; name && !rc; name = strtok_r(NULL, ",", &save)) {
        int row = find_row(idx, e->ds.n, name);
        if (row < 0) {
            rc = th_errf(err, "--images: %s has no image named '%s' (its names look like '%s')", e->ds.path, name,
                         e->ds.n ? e->ds.image_name[0] : "");
            break;
        }
        if (seen[row]) continue;
        seen[row] = 1;
        for (int k = 0; k < e->n_labels && !rc; k++)
            if (wanted_label(e, k)) rc = add_item(e, row, k, TH_EXPLAIN_NAMED, err);
    }
    if (!rc && e->n_items == 0) rc = th_errf(err, "--images names no image");
    free(list);
    free(seen);
    return rc;
}

/* A ranked candidate; ties go to the lower dataset row either way. */
typedef struct ranked {
    double p;
    int row;
} ranked;

static int by_p_desc(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

static int by_p_asc(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

int csv_column(const th_csv *csv, const char *name)
{
    for (int c = 0; c < csv->header.n_fields; c++)
        if (!strcmp(csv->header.fields[c], name)) return c;
    return -1;
}

/* The predictions file's rows as dataset rows, each checked to be an image
 * of the split ranked: a file from another dataset or split is stale. */
static int prediction_rows(explain *e, const th_csv *csv, const named_row *idx, int image_col, int *rows, th_err *err)
{
    const char *split = th_split_name(e->which);
    for (int r = 0; r < csv->n_rows; r++) {
        const th_csv_row *cr = &csv->rows[r];
        if (cr->n_fields != csv->header.n_fields)
            return th_errf(err, "%s:%d: %d fields, the header has %d", csv->path, cr->line, cr->n_fields,
                           csv->header.n_fields);
        const char *name = cr->fields[image_col];
        rows[r] = find_row(idx, e->ds.n, name);
        if (rows[r] < 0)
            return th_errf(err, "%s:%d: image '%s' is not in %s (stale predictions? rerun thorax eval %s --split %s)",
                           csv->path, cr->line, name, e->ds.path, e->opts->run_dir, split);
        if (e->split[rows[r]] != e->which)
            return th_errf(err, "%s:%d: image '%s' is not in the %s split of this run (stale predictions? rerun "
                           "thorax eval %s --split %s)", csv->path, cr->line, name, split, e->opts->run_dir, split);
    }
    return 0;
}

/* One label's TP, FP and FN items from the ranked predictions. */
static int select_label(explain *e, const th_csv *csv, const int *rows, int p_col, int k, ranked *pos, ranked *neg,
                        th_err *err)
{
    int n_pos = 0, n_neg = 0, rc = 0;
    for (int r = 0; r < csv->n_rows; r++) {
        const char *s = csv->rows[r].fields[p_col];
        char *end;
        double p = strtod(s, &end);
        if (end == s || *end || !isfinite(p))
            return th_errf(err, "%s:%d: %s is '%s', not a probability", csv->path, csv->rows[r].line,
                           csv->header.fields[p_col], s);
        ranked c = {p, rows[r]};
        int y = truth(e, rows[r], k);
        if (y == 1) pos[n_pos++] = c;
        else if (y == 0) neg[n_neg++] = c;
    }
    int K = e->top_k;
    qsort(pos, (size_t)n_pos, sizeof *pos, by_p_desc);
    qsort(neg, (size_t)n_neg, sizeof *neg, by_p_desc);
    int n_tp = n_pos < K ? n_pos : K, n_fp = n_neg < K ? n_neg : K;
    for (int j = 0; j < n_tp && !rc; j++) rc = add_item(e, pos[j].row, k, TH_EXPLAIN_TP, err);
    for (int j = 0; j < n_fp && !rc; j++) rc = add_item(e, neg[j].row, k, TH_EXPLAIN_FP, err);
    /* FN: the lowest of the positives left after the TPs. */
    int rest = n_pos - n_tp, n_fn = rest < K ? rest : K;
    qsort(pos + n_tp, (size_t)rest, sizeof *pos, by_p_asc);
    for (int j = 0; j < n_fn && !rc; j++) rc = add_item(e, pos[n_tp + j].row, k, TH_EXPLAIN_FN, err);
    return rc;
}

static int select_top_k(explain *e, const th_explain_result *res, const named_row *idx, th_err *err)
{
    th_csv csv;
    if (th_csv_read(&csv, res->predictions, err)) return -1;
    int rc = 0, image_col = csv_column(&csv, "image");
    if (image_col < 0) rc = th_errf(err, "%s has no 'image' column", csv.path);
    int *rows = malloc(sizeof(int) * (size_t)(csv.n_rows + 1));
    ranked *pos = malloc(sizeof(ranked) * (size_t)(csv.n_rows + 1));
    ranked *neg = malloc(sizeof(ranked) * (size_t)(csv.n_rows + 1));
    if (!rc && (!rows || !pos || !neg)) rc = th_errf(err, "out of memory reading %s", csv.path);
    if (!rc) rc = prediction_rows(e, &csv, idx, image_col, rows, err);
    for (int k = 0; k < e->n_labels && !rc; k++) {
        if (!wanted_label(e, k)) continue;
        char col[TH_LABEL_MAX + 3];
        snprintf(col, sizeof col, "p_%s", e->cfg->data.labels[k]);
        int p_col = csv_column(&csv, col);
        if (p_col < 0) rc = th_errf(err, "%s has no column %s (stale predictions? rerun thorax eval)", csv.path, col);
        else rc = select_label(e, &csv, rows, p_col, k, pos, neg, err);
    }
    if (!rc && e->n_items == 0) rc = th_errf(err, "%s lists no images to map", csv.path);
    free(rows);
    free(pos);
    free(neg);
    th_csv_free(&csv);
    return rc;
}

int explain_select(explain *e, const th_explain_result *res, th_err *err)
{
    named_row *idx = name_index(&e->ds, err);
    if (!idx) return -1;
    int rc = e->opts->images ? select_named(e, idx, err) : select_top_k(e, res, idx, err);
    free(idx);
    return rc;
}

/* explain.c - `thorax cam`: class activation maps of chosen images of a
 * trained run (see thorax/explain.h).
 *
 * Every rank: the run (config, checkpoint, input transform), the dataset
 * index, the list of (image, label) items broadcast by rank 0, and the maps
 * and PNG overlays of the items whose image it owns. Rank 0: the selection,
 * the gathered maps put back in item order, cam/maps.h5 and cam/pointing.csv.
 * As in evaluate.c, a failure on any rank is agreed on before the next
 * collective, so no rank waits forever.
 */
#include "thorax/explain.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "thorax/cam.h"
#include "thorax/csv.h"
#include "thorax/dataset.h"
#include "thorax/dist.h"
#include "thorax/evaluate.h"
#include "thorax/fsutil.h"
#include "thorax/input.h"
#include "thorax/overlay.h"
#include "thorax/report.h"
#include "thorax/split.h"
#include "thorax/train.h"

/* An item, one (image, label) pair to map, is IT_INTS ints so that the list
 * is broadcast as one int array: the dataset row, the run's label index,
 * the th_explain_kind and the rank that computes it. */
enum { IT_ROW = 0, IT_LABEL, IT_KIND, IT_OWNER, IT_INTS };

/* A gathered map row is width floats: the map at image resolution [H*W],
 * at feature resolution [fh*fw], then these three. */
enum { TAIL_PROB = 0, TAIL_HIT, TAIL_ENERGY, TAIL_FLOATS };

static const char *const kind_names[] = {"named", "TP", "FP", "FN"};

const char *th_explain_kind_name(th_explain_kind kind)
{
    return kind >= TH_EXPLAIN_NAMED && kind <= TH_EXPLAIN_FN ? kind_names[kind] : "unknown";
}

typedef struct explain {
    const th_explain_opts *opts;
    MPI_Comm comm;
    int rank, size;
    th_trained run;
    th_config *cfg;             /* run.cfg */
    th_cam_method method;
    int layer;                  /* the layer Grad-CAM reads; -1 for saliency */
    int top_k, which;           /* top-k mode: K and the split ranked */
    th_dataset ds;
    int ds_open;
    int n_labels;               /* the run's labels: model output k is column label_col[k] of the file */
    int label_col[TH_MAX_LABELS];
    int only_label;             /* -1, or the one run label to map */
    uint8_t *split;             /* [N], rank 0 */
    int n_items, cap_items;
    int *items;                 /* [n_items, IT_INTS] */
    int hw, fhw, width;         /* map sizes; floats per gathered row */
    int n_mine;
    float *mine;                /* [n_mine, width]: this rank's maps, in item order */
} explain;

/* ---- setup (every rank) --------------------------------------------------- */

static int setup(explain *e, th_explain_result *res, th_err *err)
{
    const th_explain_opts *o = e->opts;
    if (th_trained_open(&e->run, o->run_dir, o->checkpoint, 1, err)) return -1;
    e->cfg = e->run.cfg;
    th_model *m = &e->run.model;
    const char *method = o->method ? o->method : e->cfg->eval.cam_method;
    if (th_cam_method_parse(method, &e->method))
        return th_errf(err, "--method must be cam, gradcam or saliency, got '%s'", method);
    snprintf(res->method, sizeof res->method, "%s", th_cam_method_name(e->method));
    int named_layer = o->layer && o->layer[0];
    if (named_layer && e->method != TH_CAM_GRADCAM)
        return th_errf(err, "--layer %s: only gradcam reads a chosen layer (cam reads the layer feeding gap, "
                       "saliency the input)", o->layer);
    e->layer = e->method == TH_CAM_GRADCAM ? th_cam_layer_index(m, o->layer, err) : -1;
    if (e->method == TH_CAM_GRADCAM && e->layer < 0) return -1;
    /* Grad-CAM weighs the layer's own output, which a fused ReLU would overwrite. */
    if (e->method == TH_CAM_GRADCAM && th_model_keep_output(m, e->layer, err)) return -1;
    if (th_cam_feature_shape(m, e->method, e->layer, &res->fh, &res->fw, err))
        return th_err_prefix(err, "%s/config.yaml: ", o->run_dir);
    /* CAM reads the layer feeding gap -> dense, which the check above found. */
    const char *layer_name = e->method == TH_CAM_SALIENCY ? "input"
                             : e->method == TH_CAM_CAM    ? m->layers[th_cam_feature_layer(m)].name
                                                          : m->layers[e->layer].name;
    snprintf(res->layer, sizeof res->layer, "%s", layer_name);
    res->h = e->cfg->model.h;
    res->w = e->cfg->model.w;
    e->hw = res->h * res->w;
    e->fhw = res->fh * res->fw;
    e->width = e->hw + e->fhw + TAIL_FLOATS;
    if (o->dilate < 0) return th_errf(err, "--dilate must be >= 0 pixels, got %d", o->dilate);

    if (o->images) return 0;
    e->top_k = o->top_k >= 0 ? o->top_k : e->cfg->eval.cam_top_k;
    if (e->top_k < 1)
        return th_errf(err, "nothing to map: top-k is 0 (eval.cam.top_k in %s/config.yaml) and no --images given",
                       o->run_dir);
    const char *split = o->split ? o->split : e->cfg->eval.split;
    if (strcmp(split, "val") && strcmp(split, "test")) return th_errf(err, "--split must be val or test, got '%s'", split);
    e->which = strcmp(split, "val") ? TH_SPLIT_TEST : TH_SPLIT_VAL;
    snprintf(res->split, sizeof res->split, "%s", split);
    snprintf(res->predictions, sizeof res->predictions, "%s/eval/%s/predictions.csv", o->run_dir, split);
    return 0;
}

/* Top-k mode ranks the split's predictions: when the run has none yet,
 * the evaluation phase makes them (collective, before the dataset is opened
 * here, so that the file is not open twice). */
static int ensure_predictions(explain *e, th_explain_result *res, th_err *err)
{
    int missing = e->rank == 0 && access(res->predictions, R_OK) != 0;
    MPI_Bcast(&missing, 1, MPI_INT, 0, e->comm);
    if (!missing) return 0;
    th_eval_opts eo = {.run_dir = e->opts->run_dir, .split = res->split, .checkpoint = e->opts->checkpoint};
    th_eval_result er;
    res->ran_eval = 1;
    if (th_eval_run(&eo, e->comm, &er, err)) return th_err_prefix(err, "making %s: ", res->predictions);
    return 0;
}

/* The run's labels in the file, and --label among them. */
static int resolve_labels(explain *e, th_err *err)
{
    const th_config *cfg = e->cfg;
    if (e->ds.h != cfg->model.h || e->ds.w != cfg->model.w)
        return th_errf(err, "%s holds %dx%d images but the model takes %dx%d", e->ds.path, e->ds.h, e->ds.w,
                       cfg->model.h, cfg->model.w);
    if (th_plan_labels(cfg, &e->ds, e->label_col, &e->n_labels, err)) return -1;
    e->only_label = -1;
    const char *want = e->opts->label;
    if (!want) return 0;
    for (int k = 0; k < e->n_labels; k++)
        if (!strcmp(cfg->data.labels[k], want)) e->only_label = k;
    if (e->only_label >= 0) return 0;
    char have[512] = "";
    size_t used = 0;
    for (int k = 0; k < e->n_labels && used < sizeof have - 64; k++)
        used += (size_t)snprintf(have + used, sizeof have - used, "%s%s", k ? ", " : "", cfg->data.labels[k]);
    return th_errf(err, "--label %s is not a label of the run %s (its labels: %s)", want, e->opts->run_dir, have);
}

static int wanted_label(const explain *e, int k) { return e->only_label < 0 || e->only_label == k; }

static uint8_t truth(const explain *e, int row, int k)
{
    return e->ds.labels[(size_t)row * e->ds.n_labels + e->label_col[k]];
}

/* ---- selection (rank 0) ----------------------------------------------------- */

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

static int csv_column(const th_csv *csv, const char *name)
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
        if (truth(e, rows[r], k)) pos[n_pos++] = c;
        else neg[n_neg++] = c;
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

/* Whole patients per rank over the selected images, balanced by image count:
 * a rank reads each of its images once for all of that image's labels. */
static int deal(explain *e, th_err *err)
{
    int n = e->ds.n;
    uint8_t *chosen = calloc((size_t)n + 1, 1);
    int *owner = malloc(sizeof(int) * (size_t)(n + 1));
    int rc = chosen && owner ? 0 : th_errf(err, "out of memory dealing %d maps", e->n_items);
    for (int i = 0; i < e->n_items && !rc; i++) chosen[e->items[(size_t)i * IT_INTS + IT_ROW]] = 1;
    if (!rc) rc = th_shard_by_patient(n, (const char *const *)e->ds.patient_id, chosen, 1, e->size, owner, err);
    for (int i = 0; i < e->n_items && !rc; i++) {
        int *it = e->items + (size_t)i * IT_INTS;
        it[IT_OWNER] = owner[it[IT_ROW]];
    }
    free(chosen);
    free(owner);
    return rc;
}

static int plan(explain *e, th_explain_result *res, th_err *err)
{
    e->split = malloc((size_t)e->ds.n + 1);
    if (!e->split) return th_errf(err, "out of memory");
    /* The same split as training: a function of the config and the file. */
    if (th_plan_split(e->cfg, &e->ds, e->label_col, e->n_labels, e->split, NULL, err)) return -1;
    named_row *idx = name_index(&e->ds, err);
    if (!idx) return -1;
    int rc = e->opts->images ? select_named(e, idx, err) : select_top_k(e, res, idx, err);
    free(idx);
    if (!rc && (long)e->n_items * e->width > INT_MAX)
        rc = th_errf(err, "%d maps of %dx%d are too many to gather at once: map fewer images or a smaller top-k",
                     e->n_items, res->h, res->w);
    if (!rc) rc = deal(e, err);
    if (!rc) rc = th_mkdirs(res->out_dir, err);
    return rc;
}

/* ---- this rank's maps ----------------------------------------------------- */

static int by_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The caption under an overlay, e.g. "Nodule TP\np=0.93 y=1". */
static void caption(const explain *e, const int *it, float prob, char *buf, size_t cap)
{
    const char *label = e->cfg->data.labels[it[IT_LABEL]];
    int y = truth(e, it[IT_ROW], it[IT_LABEL]);
    if (it[IT_KIND] == TH_EXPLAIN_NAMED) snprintf(buf, cap, "%s\np=%.2f y=%d", label, prob, y);
    else snprintf(buf, cap, "%s %s\np=%.2f y=%d", label, th_explain_kind_name(it[IT_KIND]), prob, y);
}

/* One item's map into out [width] (map, feature map, prob, hit, energy) and
 * its overlay PNG. masks: the image's lesion masks [file labels, H, W] or NULL. */
static int map_item(explain *e, const int *it, const uint8_t *img, const uint8_t *masks, float *x, uint8_t *dilated,
                    float *out, const char *dir, th_err *err)
{
    th_model *m = &e->run.model;
    int k = it[IT_LABEL], fh, fw, softmax = e->cfg->train.loss == TH_LOSS_SOFTMAX_CE;
    float prob = 0.0f, *tail = out + e->hw + e->fhw;
    th_input_make(&e->run.input, img, NULL, NULL, 1, -1, x);
    if (th_cam_compute(m, x, k, e->method, e->layer, softmax, out + e->hw, &fh, &fw, out, &prob, err)) return -1;
    tail[TAIL_PROB] = prob;
    tail[TAIL_HIT] = -1.0f;
    tail[TAIL_ENERGY] = NAN;
    if (masks) {
        th_cam_mask_dilate(masks + (size_t)e->label_col[k] * e->hw, e->cfg->model.h, e->cfg->model.w,
                           e->opts->dilate, dilated);
        int hit = th_cam_pointing_hit(out, dilated, e->cfg->model.h, e->cfg->model.w);
        tail[TAIL_HIT] = (float)hit;
        if (hit >= 0) tail[TAIL_ENERGY] = (float)th_cam_mask_energy(out, dilated, e->cfg->model.h, e->cfg->model.w);
    }
    char label[TH_LABEL_MAX + 8], name[1024], path[3200], text[TH_LABEL_MAX + 64];
    const char *image = e->ds.image_name[it[IT_ROW]];
    if (th_report_label_filename(e->cfg->data.labels[k], label, sizeof label))
        return th_errf(err, "label '%s' is too long for a file name", e->cfg->data.labels[k]);
    if (th_cam_png_name(name, sizeof name, image, label, e->method, err)) return -1;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    caption(e, it, prob, text, sizeof text);
    return th_overlay_write_captioned(path, img, out, e->cfg->model.h, e->cfg->model.w, text, err);
}

static int compute_share(explain *e, const char *dir, th_err *err)
{
    int n_rows = 0, rc = 0;
    for (int i = 0; i < e->n_items; i++) e->n_mine += e->items[(size_t)i * IT_INTS + IT_OWNER] == e->rank;
    int *rows = malloc(sizeof(int) * (size_t)(e->n_mine + 1));
    int *slot = malloc(sizeof(int) * (size_t)(e->n_items + 1));
    e->mine = malloc(sizeof(float) * (size_t)e->width * (size_t)(e->n_mine + 1));
    uint8_t *img = malloc((size_t)e->hw * (size_t)(e->n_mine + 1));
    float *x = malloc(sizeof(float) * (size_t)e->hw);
    uint8_t *masks = e->ds.has_masks ? malloc((size_t)e->ds.n_labels * e->hw) : NULL;
    uint8_t *dilated = malloc((size_t)e->hw);
    if (!rows || !slot || !e->mine || !img || !x || (e->ds.has_masks && !masks) || !dilated)
        rc = th_errf(err, "out of memory for %d maps of %dx%d", e->n_mine, e->cfg->model.h, e->cfg->model.w);
    /* This rank's images, each once, ascending; slot[i]: item i's row in mine. */
    for (int i = 0, s = 0; i < e->n_items && !rc; i++) {
        const int *it = e->items + (size_t)i * IT_INTS;
        slot[i] = it[IT_OWNER] == e->rank ? s++ : -1;
        if (slot[i] >= 0) rows[n_rows++] = it[IT_ROW];
    }
    if (!rc) {
        qsort(rows, (size_t)n_rows, sizeof *rows, by_int);
        int u = 0;
        for (int j = 0; j < n_rows; j++)
            if (j == 0 || rows[j] != rows[u - 1]) rows[u++] = rows[j];
        n_rows = u;
        rc = th_dataset_read_images(&e->ds, rows, n_rows, img, err);
    }
    /* Image by image, so that its masks are read once for all its labels. */
    for (int j = 0; j < n_rows && !rc; j++) {
        if (masks) rc = th_dataset_read_masks(&e->ds, rows[j], masks, err);
        for (int i = 0; i < e->n_items && !rc; i++) {
            const int *it = e->items + (size_t)i * IT_INTS;
            if (slot[i] < 0 || it[IT_ROW] != rows[j]) continue;
            rc = map_item(e, it, img + (size_t)j * e->hw, masks, x, dilated, e->mine + (size_t)slot[i] * e->width, dir,
                          err);
        }
    }
    free(rows);
    free(slot);
    free(img);
    free(x);
    free(masks);
    free(dilated);
    return rc;
}

/* ---- the files (rank 0) ----------------------------------------------------- */

/* Per wanted label, the pointing game over the TP items (named mode: the
 * images positive for the label) whose mask is not empty. */
static void score_labels(const explain *e, const float *all, const int *pos, th_explain_result *res)
{
    res->n_scores = 0;
    for (int k = 0; k < e->n_labels; k++) {
        if (!wanted_label(e, k)) continue;
        th_explain_score *s = &res->score[res->n_scores++];
        snprintf(s->label, sizeof s->label, "%s", e->cfg->data.labels[k]);
        double energy = 0.0;
        for (int i = 0; i < e->n_items; i++) {
            const int *it = e->items + (size_t)i * IT_INTS;
            int scored = it[IT_KIND] == TH_EXPLAIN_TP || (it[IT_KIND] == TH_EXPLAIN_NAMED && truth(e, it[IT_ROW], k));
            const float *tail = all + (size_t)pos[i] * e->width + e->hw + e->fhw;
            if (it[IT_LABEL] != k || !scored || tail[TAIL_HIT] < 0.0f) continue;
            s->n++;
            s->hits += tail[TAIL_HIT] > 0.0f;
            energy += tail[TAIL_ENERGY];
        }
        s->rate = s->n ? (double)s->hits / s->n : NAN;
        s->mean_energy = s->n ? energy / s->n : NAN;
    }
}

static int write_pointing_csv(const th_explain_result *res, th_err *err)
{
    th_strbuf b = {0};
    th_strbuf_printf(&b, "label,n,hits,rate,mean_energy\n");
    for (int k = 0; k < res->n_scores; k++) {
        const th_explain_score *s = &res->score[k];
        /* An unscored label has no rate: empty fields, not NaN. */
        if (s->n) th_strbuf_printf(&b, "%s,%d,%d,%.4f,%.4f\n", s->label, s->n, s->hits, s->rate, s->mean_energy);
        else th_strbuf_printf(&b, "%s,0,0,,\n", s->label);
    }
    char path[2100];
    snprintf(path, sizeof path, "%s/pointing.csv", res->out_dir);
    int rc = b.failed ? th_errf(err, "%s: out of memory", path) : th_write_file_atomic(path, b.data, b.len, err);
    th_strbuf_free(&b);
    return rc;
}

/* The columns beyond the writer's own: why each row was chosen, its truth,
 * the split of its image, and with masks its pointing-game scores. */
static int write_columns(const explain *e, th_cam_writer *wr, const float *all, const int *pos, th_err *err)
{
    int M = e->n_items, rc = 0;
    const char **kind = malloc(sizeof(char *) * (size_t)M), **split = malloc(sizeof(char *) * (size_t)M);
    int8_t *y = malloc((size_t)M), *hit = malloc((size_t)M);
    float *energy = malloc(sizeof(float) * (size_t)M);
    if (!kind || !split || !y || !hit || !energy) rc = th_errf(err, "out of memory writing %d rows", M);
    for (int i = 0; i < M && !rc; i++) {
        const int *it = e->items + (size_t)i * IT_INTS;
        const float *tail = all + (size_t)pos[i] * e->width + e->hw + e->fhw;
        kind[i] = th_explain_kind_name(it[IT_KIND]);
        split[i] = th_split_name(e->split[it[IT_ROW]]);
        y[i] = (int8_t)truth(e, it[IT_ROW], it[IT_LABEL]);
        hit[i] = (int8_t)tail[TAIL_HIT];
        energy[i] = tail[TAIL_ENERGY];
    }
    if (!rc) rc = th_cam_writer_column(wr, "kind", TH_CAM_COLUMN_STRING, kind, err);
    if (!rc) rc = th_cam_writer_column(wr, "truth", TH_CAM_COLUMN_INT8, y, err);
    if (!rc) rc = th_cam_writer_column(wr, "split", TH_CAM_COLUMN_STRING, split, err);
    if (!rc && e->ds.has_masks) rc = th_cam_writer_column(wr, "pointing_hit", TH_CAM_COLUMN_INT8, hit, err);
    if (!rc && e->ds.has_masks) rc = th_cam_writer_column(wr, "mask_energy", TH_CAM_COLUMN_FLOAT32, energy, err);
    free(kind);
    free(split);
    free(y);
    free(hit);
    free(energy);
    return rc;
}

/* all: the gathered rows, in rank order. */
static int write_results(explain *e, const float *all, th_explain_result *res, th_err *err)
{
    int M = e->n_items, *pos = malloc(sizeof(int) * (size_t)(M + 1));
    uint8_t *seen = calloc((size_t)e->ds.n + 1, 1);
    if (!pos || !seen) {
        free(pos);
        free(seen);
        return th_errf(err, "out of memory writing %d maps", M);
    }
    /* Item i's row in the gather: rank 0's items first, each rank's in item order. */
    for (int r = 0, k = 0; r < e->size; r++)
        for (int i = 0; i < M; i++)
            if (e->items[(size_t)i * IT_INTS + IT_OWNER] == r) pos[i] = k++;
    char path[2100];
    snprintf(path, sizeof path, "%s/maps.h5", res->out_dir);
    th_cam_writer wr;
    int rc = th_cam_writer_open(&wr, path, M, res->h, res->w, 1, &e->method, &res->fh, &res->fw, err);
    for (int i = 0; i < M && !rc; i++) {
        const int *it = e->items + (size_t)i * IT_INTS;
        const float *r = all + (size_t)pos[i] * e->width;
        rc = th_cam_writer_put(&wr, i, e->method, r, r + e->hw, it[IT_ROW], e->ds.image_name[it[IT_ROW]],
                               e->cfg->data.labels[it[IT_LABEL]], r[e->hw + e->fhw + TAIL_PROB], err);
        res->n_images += !seen[it[IT_ROW]];
        seen[it[IT_ROW]] = 1;
    }
    if (!rc) rc = write_columns(e, &wr, all, pos, err);
    if (!rc) rc = th_cam_writer_close(&wr, err);
    else th_cam_writer_abort(&wr);
    res->n_maps = M;
    res->has_masks = e->ds.has_masks;
    if (!rc && e->ds.has_masks) {
        score_labels(e, all, pos, res);
        rc = write_pointing_csv(res, err);
    }
    free(pos);
    free(seen);
    return rc;
}

int th_explain_run(const th_explain_opts *opts, MPI_Comm comm, th_explain_result *res, th_err *err)
{
    explain e;
    memset(&e, 0, sizeof e);
    memset(res, 0, sizeof *res);
    e.opts = opts;
    e.comm = comm;
    MPI_Comm_rank(comm, &e.rank);
    MPI_Comm_size(comm, &e.size);
    snprintf(res->out_dir, sizeof res->out_dir, "%s/cam", opts->run_dir);

    int rc = th_dist_agree(comm, setup(&e, res, err), err);
    if (!rc && !opts->images) rc = ensure_predictions(&e, res, err);
    if (!rc) {
        rc = th_dataset_open(&e.ds, e.cfg->data.path, comm, err);
        e.ds_open = rc == 0;
    }
    if (!rc) rc = th_dist_agree(comm, resolve_labels(&e, err), err);
    if (!rc) rc = th_dist_agree(comm, e.rank == 0 ? plan(&e, res, err) : 0, err);
    if (!rc) {
        MPI_Bcast(&e.n_items, 1, MPI_INT, 0, comm);
        if (e.rank != 0) e.items = malloc(sizeof(int) * IT_INTS * (size_t)e.n_items);
        rc = th_dist_agree(comm, e.items ? 0 : th_errf(err, "out of memory for %d maps", e.n_items), err);
    }
    if (!rc) {
        MPI_Bcast(e.items, IT_INTS * e.n_items, MPI_INT, 0, comm);
        rc = th_dist_agree(comm, compute_share(&e, res->out_dir, err), err);
    }
    float *all = NULL;
    if (!rc) {
        if (e.rank == 0) all = malloc(sizeof(float) * (size_t)e.width * (size_t)e.n_items);
        rc = th_dist_agree(comm, e.rank == 0 && !all ? th_errf(err, "out of memory gathering the maps") : 0, err);
        if (!rc) rc = th_dist_gather_rows(comm, 0, e.mine, e.n_mine, e.width, all, err);
    }
    if (!rc) {
        rc = th_dist_agree(comm, e.rank == 0 ? write_results(&e, all, res, err) : 0, err);
        MPI_Bcast(res, (int)sizeof *res, MPI_BYTE, 0, comm);
    }
    free(all);
    free(e.mine);
    free(e.items);
    free(e.split);
    th_trained_close(&e.run);
    if (e.ds_open) th_dataset_close(&e.ds);
    return rc;
}

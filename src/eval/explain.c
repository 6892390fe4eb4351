/* explain.c - `thorax cam`: class activation maps of chosen images of a
 * trained run (see thorax/eval.h).
 *
 * Every rank: the run (config, checkpoint, input transform), the dataset
 * index, the list of (image, label) items broadcast by rank 0, and the maps
 * and PNG overlays of the items whose image it owns. Rank 0: the selection
 * (explain_select.c), the gathered maps put back in item order, the maps
 * file and pointing.csv under cam/<checkpoint>/<method>/.
 * As in evaluate.c, a failure on any rank is agreed on before the next
 * collective, so no rank waits forever.
 */
#include "explain_impl.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "thorax/eval.h"
#include "thorax/data.h"
#include "thorax/dist.h"
#include "thorax/util.h"
#include "thorax/render.h"
#include "thorax/train.h"

/* A gathered map row is width floats: the map at image resolution [H*W],
 * at feature resolution [fh*fw], then these: the model's probability, the
 * one compared with the operating point (calibrated when the run
 * calibrates, as in predictions.csv), and the mask scores. */
enum { TAIL_PROB = 0, TAIL_POUT, TAIL_HIT, TAIL_ENERGY, TAIL_IOU, TAIL_FLOATS };

static const char *const kind_names[] = {"named", "TP", "FP", "FN"};

const char *th_explain_kind_name(th_explain_kind kind)
{
    return kind >= TH_EXPLAIN_NAMED && kind <= TH_EXPLAIN_FN ? kind_names[kind] : "unknown";
}

/* ---- setup (every rank) --------------------------------------------------- */

/* Label k's threshold for the outcomes: val's operating point when thorax
 * eval chose one for this checkpoint, else 0.5. */
static double op_threshold(const explain *e, int k)
{
    return e->run.has_op && isfinite(e->run.op.threshold[k]) ? e->run.op.threshold[k] : 0.5;
}

static void describe_threshold(const explain *e, th_explain_result *res)
{
    if (e->run.has_op)
        snprintf(res->threshold_source, sizeof res->threshold_source, "val's operating point, %s", e->run.op.rule);
    else
        snprintf(res->threshold_source, sizeof res->threshold_source,
                 "no eval/val/thresholds.json for this checkpoint: 0.5");
}

/* RUN_DIR/cam/<checkpoint>/<method>/ and the maps and pointing files in it,
 * one pair per label choice, so that no run overwrites another's. */
static int output_paths(explain *e, th_explain_result *res, th_err *err)
{
    const th_explain_opts *o = e->opts;
    char safe[TH_LABEL_MAX + 8] = "";
    if (o->label && th_report_label_filename(o->label, safe, sizeof safe))
        return th_errf(err, "--label '%s' is too long for a file name", o->label);
    const char *sep = o->label ? "_" : "";
    if (snprintf(res->out_dir, sizeof res->out_dir, "%s/cam/%s/%s", o->run_dir, e->checkpoint, res->method) >=
        (int)sizeof res->out_dir)
        return th_errf(err, "run directory path too long: %s", o->run_dir);
    snprintf(res->maps, sizeof res->maps, "%s/maps%s%s.h5", res->out_dir, sep, safe);
    snprintf(res->pointing, sizeof res->pointing, "%s/pointing%s%s.csv", res->out_dir, sep, safe);
    /* One stage per label choice, as the files are: runs for two labels may
     * write into one out_dir at once. */
    return th_stage_path(res->out_dir, safe, e->stage, sizeof e->stage, err);
}

static int setup(explain *e, th_explain_result *res, th_err *err)
{
    const th_explain_opts *o = e->opts;
    if (th_predictor_open(&e->run, o->run_dir, o->checkpoint, 1, err)) return -1;
    e->cfg = e->run.cfg;
    th_model *m = &e->run.model;
    const char *method = o->method ? o->method : e->cfg->eval.cam_method;
    if (th_cam_method_parse(method, &e->method))
        return th_errf(err, "--method must be cam, gradcam or saliency, got '%s'", method);
    snprintf(res->method, sizeof res->method, "%s", th_cam_method_name(e->method));
    if (th_cam_layer_prepare(m, e->method, o->layer, &e->layer, err)) return -1;
    if (th_cam_feature_shape(m, e->method, e->layer, &res->fh, &res->fw, err))
        return th_err_prefix(err, "%s/config.yaml: ", o->run_dir);
    /* CAM reads the layer feeding gap -> dense, which the check above found. */
    const char *layer_name = e->method == TH_CAM_SALIENCY ? "input"
                             : e->method == TH_CAM_CAM    ? m->layers[th_cam_feature_layer(m)].name
                                                          : m->layers[e->layer].name;
    snprintf(res->layer, sizeof res->layer, "%s", layer_name);
    snprintf(e->layer_name, sizeof e->layer_name, "%s", layer_name);
    e->checkpoint = o->checkpoint ? o->checkpoint : "best";
    if (output_paths(e, res, err)) return -1;
    describe_threshold(e, res);
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
    if (th_dist_bcast(e->comm, 0, &missing, sizeof missing, err)) return -1;
    if (!missing) return 0;
    th_eval_opts eo = {.run_dir = e->opts->run_dir, .split = res->split, .checkpoint = e->opts->checkpoint};
    th_eval_result er;
    res->ran_eval = 1;
    if (th_eval_run(&eo, e->comm, &er, err)) return th_err_prefix(err, "making %s: ", res->predictions);
    /* Evaluating val may just have chosen the operating points. */
    th_predictor_read_op(&e->run, e->opts->run_dir, e->checkpoint);
    describe_threshold(e, res);
    return 0;
}

/* The run's labels in the file, and --label among them. */
static int resolve_labels(explain *e, th_err *err)
{
    const th_config *cfg = e->cfg;
    /* The checks training made before its first step. */
    if (th_plan_check(cfg, &e->ds, e->label_col, &e->n_labels, err)) return -1;
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
    int rc = explain_select(e, res, err);
    if (!rc && (long)e->n_items * e->width > INT_MAX)
        rc = th_errf(err, "%d maps of %dx%d are too many to gather at once: map fewer images or a smaller top-k",
                     e->n_items, res->h, res->w);
    if (!rc) rc = deal(e, err);
    if (!rc) rc = th_stage_begin(e->stage, err);
    e->staged = rc == 0;
    return rc;
}

/* ---- this rank's maps ----------------------------------------------------- */

static int by_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The caption under an overlay: which image, label, probability, truth and
 * outcome at which threshold, why it was chosen, and how it was mapped. */
static void caption(const explain *e, const int *it, float p_out, const char *outcome, char *buf, size_t cap)
{
    int k = it[IT_LABEL], y = truth(e, it[IT_ROW], k);
    char ys[16], chosen[64] = "", source[96];
    snprintf(ys, sizeof ys, y < 0 ? "unknown" : "y=%d", y);
    if (it[IT_KIND] != TH_EXPLAIN_NAMED)
        snprintf(chosen, sizeof chosen, "; picked by rank as %s (%d per kind)", th_explain_kind_name(it[IT_KIND]),
                 e->top_k);
    if (e->run.has_op && isfinite(e->run.op.threshold[k]))
        snprintf(source, sizeof source, "val's operating point, %s", e->run.op.rule);
    else snprintf(source, sizeof source, "no operating point for this checkpoint");
    int calibrated = e->run.has_op && e->cfg->eval.calibrate == TH_CALIBRATE_TEMPERATURE;
    snprintf(buf, cap,
             "image %s\n%s: p=%.3f%s, truth %s: %s at threshold %.3f (%s)%s\n%s at layer %s, checkpoint %s (epoch %d)",
             e->ds.image_name[it[IT_ROW]], e->cfg->data.labels[k], p_out, calibrated ? " (calibrated)" : "", ys,
             outcome, op_threshold(e, k), source, chosen, th_cam_method_name(e->method), e->layer_name,
             e->checkpoint, e->run.st.epoch);
}

/* One item's map into out [width] (map, feature map, the tail) and its
 * overlay PNG. x: the image's model input; p_out: its probabilities as
 * compared with the operating points [labels]; masks: the image's lesion
 * masks [file labels, H, W] or NULL. */
static int map_item(explain *e, const int *it, const uint8_t *img, const uint8_t *masks, const float *x,
                    const float *p_out, uint8_t *dilated, float *out, const char *dir, th_err *err)
{
    th_model *m = &e->run.model;
    int k = it[IT_LABEL], fh, fw, softmax = e->cfg->train.loss == TH_LOSS_SOFTMAX_CE;
    float prob = 0.0f, *tail = out + e->hw + e->fhw;
    if (th_cam_compute(m, x, k, e->method, e->layer, softmax, out + e->hw, &fh, &fw, out, &prob, err)) return -1;
    tail[TAIL_PROB] = prob;
    tail[TAIL_POUT] = p_out[k];
    tail[TAIL_HIT] = -1.0f;
    tail[TAIL_ENERGY] = NAN;
    tail[TAIL_IOU] = NAN;
    if (masks) {
        const uint8_t *mask = masks + (size_t)e->label_col[k] * e->hw;
        th_cam_mask_dilate(mask, e->cfg->model.h, e->cfg->model.w, e->opts->dilate, dilated);
        int hit = th_cam_pointing_hit(out, dilated, e->cfg->model.h, e->cfg->model.w);
        tail[TAIL_HIT] = (float)hit;
        if (hit >= 0) {
            tail[TAIL_ENERGY] = (float)th_cam_mask_energy(out, dilated, e->cfg->model.h, e->cfg->model.w);
            tail[TAIL_IOU] = (float)th_cam_iou_lesion(out, mask, e->cfg->model.h, e->cfg->model.w);
        }
    }
    char name[1024], path[3400], text[2048];
    const char *image = e->ds.image_name[it[IT_ROW]];
    const char *outcome = th_cam_outcome(p_out[k], op_threshold(e, k), truth(e, it[IT_ROW], k));
    if (th_cam_png_name(name, sizeof name, image, e->cfg->data.labels[k], e->method, outcome, err)) return -1;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    caption(e, it, p_out[k], outcome, text, sizeof text);
    /* The feature-resolution map, upsampled once, straight to the display size. */
    th_overlay ov = {.xray = img, .h = e->cfg->model.h, .w = e->cfg->model.w, .map = out + e->hw, .mh = fh, .mw = fw,
                     .caption = text};
    return th_overlay_write(path, &ov, NULL, err);
}

static int compute_share(explain *e, const char *dir, th_err *err)
{
    int n_rows = 0, rc = 0;
    for (int i = 0; i < e->n_items; i++) e->n_mine += e->items[(size_t)i * IT_INTS + IT_OWNER] == e->rank;
    int *rows = malloc(sizeof(int) * (size_t)(e->n_mine + 1));
    int *slot = malloc(sizeof(int) * (size_t)(e->n_items + 1));
    e->mine = malloc(sizeof(float) * (size_t)e->width * (size_t)(e->n_mine + 1));
    uint8_t *img = malloc((size_t)e->hw * (size_t)(e->n_mine + 1));
    float *x = malloc(sizeof(float) * (size_t)e->hw), p_out[TH_MAX_LABELS];
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
        const uint8_t *im = img + (size_t)j * e->hw;
        th_input_make(&e->run.input, im, NULL, NULL, 1, -1, x);
        th_predictor_probs(&e->run, th_model_forward(&e->run.model, x, 1, 0), p_out);
        for (int i = 0; i < e->n_items && !rc; i++) {
            const int *it = e->items + (size_t)i * IT_INTS;
            if (slot[i] < 0 || it[IT_ROW] != rows[j]) continue;
            rc = map_item(e, it, im, masks, x, p_out, dilated, e->mine + (size_t)slot[i] * e->width, dir, err);
        }
        if (!rc && e->rank == 0 && e->opts->progress) e->opts->progress(e->opts->progress_ctx, j + 1, n_rows);
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
        double energy = 0.0, iou = 0.0;
        for (int i = 0; i < e->n_items; i++) {
            const int *it = e->items + (size_t)i * IT_INTS;
            int scored = it[IT_KIND] == TH_EXPLAIN_TP || (it[IT_KIND] == TH_EXPLAIN_NAMED && truth(e, it[IT_ROW], k) == 1);
            const float *tail = all + (size_t)pos[i] * e->width + e->hw + e->fhw;
            if (it[IT_LABEL] != k || !scored || tail[TAIL_HIT] < 0.0f) continue;
            s->n++;
            s->hits += tail[TAIL_HIT] > 0.0f;
            energy += tail[TAIL_ENERGY];
            iou += tail[TAIL_IOU];
        }
        s->rate = s->n ? (double)s->hits / s->n : NAN;
        s->mean_energy = s->n ? energy / s->n : NAN;
        s->mean_iou = s->n ? iou / s->n : NAN;
    }
}

static int write_pointing_csv(const th_explain_result *res, const char *path, th_err *err)
{
    th_strbuf b = {0};
    th_strbuf_printf(&b, "label,n,hits,rate,mean_energy,mean_iou\n");
    for (int k = 0; k < res->n_scores; k++) {
        const th_explain_score *s = &res->score[k];
        /* An unscored label has no rate: empty fields, not NaN. */
        if (s->n)
            th_strbuf_printf(&b, "%s,%d,%d,%.4f,%.4f,%.4f\n", s->label, s->n, s->hits, s->rate, s->mean_energy,
                             s->mean_iou);
        else th_strbuf_printf(&b, "%s,0,0,,,\n", s->label);
    }
    int rc = b.failed ? th_errf(err, "%s: out of memory", path) : th_write_file_atomic(path, b.data, b.len, err);
    th_strbuf_free(&b);
    return rc;
}

/* The columns beyond the writer's own: why each row was chosen, its truth,
 * the split of its image, its outcome at the operating point and the
 * threshold and probability that decided it, and with masks its
 * pointing-game scores. */
static int write_columns(const explain *e, th_cam_writer *wr, const float *all, const int *pos, th_err *err)
{
    int M = e->n_items, rc = 0;
    const char **kind = malloc(sizeof(char *) * (size_t)M), **split = malloc(sizeof(char *) * (size_t)M);
    const char **outcome = malloc(sizeof(char *) * (size_t)M);
    int8_t *y = malloc((size_t)M), *hit = malloc((size_t)M);
    float *energy = malloc(sizeof(float) * (size_t)M), *iou = malloc(sizeof(float) * (size_t)M);
    float *thr = malloc(sizeof(float) * (size_t)M), *p_out = malloc(sizeof(float) * (size_t)M);
    if (!kind || !split || !outcome || !y || !hit || !energy || !iou || !thr || !p_out)
        rc = th_errf(err, "out of memory writing %d rows", M);
    for (int i = 0; i < M && !rc; i++) {
        const int *it = e->items + (size_t)i * IT_INTS;
        const float *tail = all + (size_t)pos[i] * e->width + e->hw + e->fhw;
        kind[i] = th_explain_kind_name(it[IT_KIND]);
        split[i] = th_split_name(e->split[it[IT_ROW]]);
        y[i] = (int8_t)truth(e, it[IT_ROW], it[IT_LABEL]);
        hit[i] = (int8_t)tail[TAIL_HIT];
        energy[i] = tail[TAIL_ENERGY];
        iou[i] = tail[TAIL_IOU];
        thr[i] = (float)op_threshold(e, it[IT_LABEL]);
        p_out[i] = tail[TAIL_POUT];
        outcome[i] = th_cam_outcome(tail[TAIL_POUT], op_threshold(e, it[IT_LABEL]), y[i]);
    }
    if (!rc) rc = th_cam_writer_column(wr, "kind", TH_CAM_COLUMN_STRING, kind, err);
    if (!rc) rc = th_cam_writer_column(wr, "truth", TH_CAM_COLUMN_INT8, y, err);
    if (!rc) rc = th_cam_writer_column(wr, "split", TH_CAM_COLUMN_STRING, split, err);
    if (!rc) rc = th_cam_writer_column(wr, "outcome", TH_CAM_COLUMN_STRING, outcome, err);
    if (!rc) rc = th_cam_writer_column(wr, "threshold", TH_CAM_COLUMN_FLOAT32, thr, err);
    if (!rc) rc = th_cam_writer_column(wr, "p_operating", TH_CAM_COLUMN_FLOAT32, p_out, err);
    if (!rc && e->ds.has_masks) rc = th_cam_writer_column(wr, "pointing_hit", TH_CAM_COLUMN_INT8, hit, err);
    if (!rc && e->ds.has_masks) rc = th_cam_writer_column(wr, "mask_energy", TH_CAM_COLUMN_FLOAT32, energy, err);
    if (!rc && e->ds.has_masks) rc = th_cam_writer_column(wr, "lesion_iou", TH_CAM_COLUMN_FLOAT32, iou, err);
    free(kind);
    free(split);
    free(outcome);
    free(thr);
    free(p_out);
    free(y);
    free(hit);
    free(energy);
    free(iou);
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
    /* The files' names in out_dir, written in the stage. */
    char maps[sizeof e->stage + 256], pointing[sizeof maps];
    snprintf(maps, sizeof maps, "%s%s", e->stage, strrchr(res->maps, '/'));
    snprintf(pointing, sizeof pointing, "%s%s", e->stage, strrchr(res->pointing, '/'));
    th_cam_writer wr;
    int rc = th_cam_writer_open(&wr, maps, M, res->h, res->w, 1, &e->method, &res->fh, &res->fw, err);
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
        rc = write_pointing_csv(res, pointing, err);
    }
    if (!rc) {
        rc = th_stage_commit(e->stage, res->out_dir, err);
        e->staged = 0;
    }
    free(pos);
    free(seen);
    return rc;
}

int th_explain_run(const th_explain_opts *opts, th_comm comm, th_explain_result *res, th_err *err)
{
    explain e;
    memset(&e, 0, sizeof e);
    memset(res, 0, sizeof *res);
    e.opts = opts;
    e.comm = comm;
    e.rank = th_dist_rank(comm);
    e.size = th_dist_size(comm);
    int rc = th_dist_agree(comm, setup(&e, res, err), err);
    if (!rc && !opts->images) rc = ensure_predictions(&e, res, err);
    if (!rc) {
        rc = th_dataset_open(&e.ds, e.cfg->data.path, comm, err);
        e.ds_open = rc == 0;
    }
    if (!rc) rc = th_dist_agree(comm, resolve_labels(&e, err), err);
    /* The maps and the pointing game are of the images the run trained on. */
    th_data_fingerprint fp;
    if (!rc) rc = th_plan_pin(&e.ds, e.run.st.data_fingerprint, e.run.ckpt, comm, &fp, err);
    if (!rc) rc = th_dist_agree(comm, e.rank == 0 ? plan(&e, res, err) : 0, err);
    if (!rc) {
        rc = th_dist_bcast(comm, 0, &e.n_items, sizeof e.n_items, err);
        if (!rc && e.rank != 0) e.items = malloc(sizeof(int) * IT_INTS * (size_t)e.n_items);
        if (!rc) rc = th_dist_agree(comm, e.items ? 0 : th_errf(err, "out of memory for %d maps", e.n_items), err);
    }
    if (!rc) {
        rc = th_dist_bcast(comm, 0, e.items, sizeof(int) * IT_INTS * (size_t)e.n_items, err);
        if (!rc) rc = th_dist_agree(comm, compute_share(&e, e.stage, err), err);
    }
    float *all = NULL;
    if (!rc) {
        if (e.rank == 0) all = malloc(sizeof(float) * (size_t)e.width * (size_t)e.n_items);
        rc = th_dist_agree(comm, e.rank == 0 && !all ? th_errf(err, "out of memory gathering the maps") : 0, err);
        if (!rc) rc = th_dist_gather_rows(comm, 0, e.mine, e.n_mine, e.width, all, err);
    }
    if (!rc) {
        rc = th_dist_agree(comm, e.rank == 0 ? write_results(&e, all, res, err) : 0, err);
        /* Rank 0's result for every rank, whether or not it could write it. */
        if (th_dist_bcast(comm, 0, res, sizeof *res, rc ? NULL : err)) rc = -1;
    }
    /* Every rank is done writing into the stage: a failure anywhere leaves
     * nothing of this run. */
    if (e.staged) th_stage_discard(e.stage);
    free(all);
    free(e.mine);
    free(e.items);
    free(e.split);
    th_predictor_close(&e.run);
    if (e.ds_open) th_dataset_close(&e.ds);
    return rc;
}

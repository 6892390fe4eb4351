/* predictor.c - a trained run opened for inference, and a new image read as
 * training read its own (see thorax/eval.h). Used by the evaluation
 * phase, `thorax cam` and `thorax predict` (whose CSV and JSON are
 * predict_out.c's).
 */
#include "thorax/eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "thorax/train.h"
#include "thorax/config.h"
#include "thorax/data.h"
#include "thorax/nn.h"

int th_predictor_open(th_predictor *t, const char *run_dir, const char *checkpoint, int max_batch, th_err *err)
{
    memset(t, 0, sizeof *t);
    char path[2048];
    snprintf(path, sizeof path, "%s/config.yaml", run_dir);
    t->cfg = malloc(sizeof *t->cfg);
    if (!t->cfg) return th_errf(err, "out of memory");
    if (th_run_config_load(t->cfg, path, NULL, 0, err)) return th_err_prefix(err, "run directory %s: ", run_dir);
    const char *ck = checkpoint ? checkpoint : "best";
    if (strcmp(ck, "best") && strcmp(ck, "last")) return th_errf(err, "--checkpoint must be best or last, got '%s'", ck);
    snprintf(t->ckpt, sizeof t->ckpt, "%s/checkpoints/%s.h5", run_dir, ck);
    if (access(t->ckpt, R_OK)) return th_errf(err, "no checkpoint %s (has the run completed an epoch?)", t->ckpt);
    const th_config *cfg = t->cfg;
    if (cfg->data.n_labels == 0)
        return th_errf(err, "%s names no labels: it comes from an older run; add data.labels to it", path);
    if (th_model_create(&t->model, &cfg->model, cfg->data.n_labels, max_batch > 0 ? max_batch : cfg->train.batch_per_rank,
                        err))
        return -1;
    if (th_model_set_threads(&t->model, cfg->runtime.threads_per_rank, err)) return -1;
    if (th_checkpoint_load(t->ckpt, &t->model, NULL, &t->st, err)) return -1;
    /* After the load, whose errors name the tensor of another model. */
    if (th_checkpoint_check_config(t->ckpt, cfg, path, err)) return -1;
    th_input_params in;
    th_plan_input(cfg, &in);
    th_input_init(&t->input, &in, cfg->model.h, cfg->model.w, t->st.norm_mean, t->st.norm_std);
    th_predictor_read_op(t, run_dir, ck);
    return 0;
}

int th_predictor_set_batch(th_predictor *t, int max_batch, th_err *err)
{
    th_model *m = &t->model;
    if (max_batch == m->max_batch) return 0;
    size_t np = m->n_params, nb = m->n_buffers;
    float *keep = malloc(sizeof(float) * (np + nb + 1));
    if (!keep) return th_errf(err, "out of memory resizing the model to %d images", max_batch);
    /* A network without batch-norm has no buffers (m->buffers NULL). */
    if (np) memcpy(keep, m->params, sizeof(float) * np);
    if (nb) memcpy(keep + np, m->buffers, sizeof(float) * nb);
    th_model_free(m);
    int rc = th_model_create(m, &t->cfg->model, t->cfg->data.n_labels, max_batch, err);
    if (!rc) rc = th_model_set_threads(m, t->cfg->runtime.threads_per_rank, err);
    if (!rc) {
        if (np) memcpy(m->params, keep, sizeof(float) * np);
        if (nb) memcpy(m->buffers, keep + np, sizeof(float) * nb);
    }
    free(keep);
    return rc;
}

void th_predictor_read_op(th_predictor *t, const char *run_dir, const char *checkpoint)
{
    const th_config *cfg = t->cfg;
    /* Only a choice made for these very labels, in this order, applies. */
    t->has_op = th_thresholds_current(run_dir, checkpoint ? checkpoint : "best", &t->st, cfg, &t->op) &&
                t->op.l == cfg->data.n_labels;
    for (int k = 0; t->has_op && k < t->op.l; k++) t->has_op = !strcmp(t->op.label[k], cfg->data.labels[k]);
}

void th_predictor_probs(const th_predictor *t, const float *logits, float *p)
{
    const th_config *cfg = t->cfg;
    th_loss_probs(cfg->train.loss, 1, cfg->data.n_labels, logits, p);
    if (t->has_op && cfg->eval.calibrate == TH_CALIBRATE_TEMPERATURE)
        for (int k = 0; k < cfg->data.n_labels; k++) p[k] = th_temperature_apply(p[k], t->op.temperature[k]);
}

void th_predictor_close(th_predictor *t)
{
    th_model_free(&t->model);
    free(t->cfg);
    memset(t, 0, sizeof *t);
}

int th_predictor_load_image(const th_predictor *t, const char *path, uint8_t *img, char *warn, size_t warn_cap,
                            th_err *err)
{
    int H = t->cfg->model.h, W = t->cfg->model.w;
    th_image src;
    if (th_image_read_any(path, 0, &src, err)) return -1;
    int rc = th_image_resize(src.px, src.w, src.h, img, W, H, err);
    size_t used = 0;
    warn[0] = '\0';
    if (!rc && (src.w != W || src.h != H))
        used += (size_t)snprintf(warn + used, warn_cap - used, "%dx%d resized to the model's %dx%d; ", src.w, src.h, W, H);
    if (!rc && used < warn_cap && src.depth > 8)
        used += (size_t)snprintf(warn + used, warn_cap - used, "%d-bit samples reduced to 8; ", src.depth);
    if (!rc && used < warn_cap && src.channels >= 3)
        used += (size_t)snprintf(warn + used, warn_cap - used, "colour reduced to luminance; ");
    if (!rc && used < warn_cap) {
        double s = 0, s2 = 0;
        for (int p = 0; p < H * W; p++) {
            s += img[p] / 255.0;
            s2 += (img[p] / 255.0) * (img[p] / 255.0);
        }
        double mean = s / (H * W), sd = sqrt(fmax(s2 / (H * W) - mean * mean, 0));
        double tm = t->st.norm_mean, ts = t->st.norm_std;
        if (ts > 0 && (fabs(mean - tm) > 1.5 * ts || sd < 0.3 * ts || sd > 2.5 * ts))
            used += (size_t)snprintf(warn + used, warn_cap - used,
                                     "intensity mean %.2f sd %.2f unlike the training set's %.2f sd %.2f; ", mean, sd,
                                     tm, ts);
    }
    if (used >= 2 && used < warn_cap) warn[used - 2] = '\0'; /* drop the last "; " */
    th_image_free(&src);
    return rc;
}

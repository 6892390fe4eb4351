/* cmd_predict.c - `thorax predict RUN_DIR IMAGE.png ...`: probabilities (and
 * class activation maps) for new images, prepared exactly as in training. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "thorax/eval.h"
#include "thorax/util.h"
#include "thorax/nn.h"
#include "thorax/render.h"

static void predict_usage(FILE *f)
{
    fprintf(f,
            "usage: thorax predict RUN_DIR IMAGE.png ... [--checkpoint best|last] [--cam DIR]\n"
            "                      [--method cam|gradcam|saliency] [--layer NAME]\n"
            "\n"
            "Prints the probability of every label of the run for each image. Images are\n"
            "read as ingest reads them (PNG 8/16-bit, gray/RGB/RGBA to luminance, resized\n"
            "to the model's input) and normalised with the training set's statistics\n"
            "from the checkpoint. An image unlike the training data (size, bit depth,\n"
            "colour, intensity statistics) gets a warning on stderr. When the run's\n"
            "validation split has been evaluated for this checkpoint\n"
            "(eval/val/thresholds.json), a '*' marks each probability at or above its\n"
            "label's operating point, and with eval.calibrate: temperature the\n"
            "probabilities are val's calibrated ones, as in test's predictions.csv.\n"
            "\n"
            "options:\n"
            "  --checkpoint best|last  which checkpoint of RUN_DIR (default best)\n"
            "  --cam DIR               also write DIR/<image>__<label>__<method>.png for every\n"
            "                          label: the image and the heat map over it (at least\n"
            "                          512 px on the long side), a colour bar with its values\n"
            "                          and a caption (image, label, probability, operating\n"
            "                          point, method, layer, checkpoint), as thorax cam draws\n"
            "                          them (see thorax cam --help)\n"
            "  --method M              cam, gradcam or saliency (default: the config's\n"
            "                          eval.cam.method)\n"
            "  --layer NAME            the Grad-CAM layer (default: the last conv block)\n"
            "  -h, --help              this help\n");
}

/* The maps of one image for every label into dir, captioned like thorax
 * cam's but without a truth: the probability and, when val has chosen
 * them, the label's operating point. p: the image's probabilities [labels]. */
static int write_cams(th_predictor *t, const char *dir, const char *path, const uint8_t *img, const float *x,
                      const float *p, th_cam_method method, int layer, th_err *err)
{
    const th_config *cfg = t->cfg;
    int H = cfg->model.h, W = cfg->model.w, fh, fw;
    if (th_cam_feature_shape(&t->model, method, layer, &fh, &fw, err)) return -1;
    float *feat = malloc(sizeof(float) * (size_t)fh * fw);
    int rc = feat ? 0 : th_errf(err, "out of memory");
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const char *layer_name = method == TH_CAM_SALIENCY ? "input"
                             : method == TH_CAM_CAM    ? t->model.layers[th_cam_feature_layer(&t->model)].name
                                                       : t->model.layers[layer].name;
    for (int k = 0; !rc && k < cfg->data.n_labels; k++) {
        char name[1024], out[3072], op[96], text[2048];
        rc = th_cam_compute(&t->model, x, k, method, layer, cfg->train.loss == TH_LOSS_SOFTMAX_CE, feat, &fh, &fw, NULL,
                            NULL, err);
        if (!rc) rc = th_cam_png_name(name, sizeof name, base, cfg->data.labels[k], method, NULL, err);
        if (rc) break;
        snprintf(out, sizeof out, "%s/%s", dir, name);
        if (t->has_op)
            snprintf(op, sizeof op, "%s at val's operating point %.3f (%s)",
                     p[k] >= t->op.threshold[k] ? "positive" : "negative", t->op.threshold[k], t->op.rule);
        else snprintf(op, sizeof op, "no operating point for this checkpoint");
        snprintf(text, sizeof text, "image %s\n%s: p=%.3f, truth unknown: %s\n%s at layer %s, checkpoint %s (epoch %d)",
                 path, cfg->data.labels[k], p[k], op, th_cam_method_name(method), layer_name,
                 strstr(t->ckpt, "last.h5") ? "last" : "best", t->st.epoch);
        th_overlay ov = {.xray = img, .h = H, .w = W, .map = feat, .mh = fh, .mw = fw, .caption = text};
        rc = th_overlay_write(out, &ov, NULL, err);
    }
    free(feat);
    return rc;
}

int cmd_predict(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        predict_usage(stdout);
        return TH_EXIT_OK;
    }
    const char *run_dir = NULL, *checkpoint = NULL, *cam_dir = NULL, *method_name = NULL, *layer_name = NULL;
    const char **images = malloc(sizeof(char *) * (size_t)argc);
    int n_images = 0;
    for (int i = 1; i < argc; i++) {
        const char **value = NULL;
        if (!strcmp(argv[i], "--checkpoint")) value = &checkpoint;
        else if (!strcmp(argv[i], "--cam")) value = &cam_dir;
        else if (!strcmp(argv[i], "--method")) value = &method_name;
        else if (!strcmp(argv[i], "--layer")) value = &layer_name;
        else if (argv[i][0] == '-') {
            cli_error("predict: unknown option '%s' (see thorax predict --help)", argv[i]);
            free(images);
            return TH_EXIT_USAGE;
        } else if (!run_dir) run_dir = argv[i];
        else images[n_images++] = argv[i];
        if (value) {
            if (i + 1 >= argc) {
                cli_error("predict: %s needs a value", argv[i]);
                free(images);
                return TH_EXIT_USAGE;
            }
            *value = argv[++i];
        }
    }
    if (!run_dir || n_images == 0) {
        predict_usage(stderr);
        free(images);
        return TH_EXIT_USAGE;
    }
    th_err err = {{0}};
    th_predictor t;
    int status = TH_EXIT_OK;
    uint8_t *img = NULL;
    float *x = NULL, *p = NULL;
    if (th_predictor_open(&t, run_dir, checkpoint, 1, &err)) {
        cli_error("%s", err.msg);
        status = TH_EXIT_FAIL;
        goto done;
    }
    const th_config *cfg = t.cfg;
    th_cam_method method;
    if (th_cam_method_parse(method_name ? method_name : cfg->eval.cam_method, &method)) {
        cli_error("predict: --method must be cam, gradcam or saliency, got '%s'", method_name);
        status = TH_EXIT_USAGE;
        goto done;
    }
    int layer = 0;
    if (cam_dir && ((layer = th_cam_layer_index(&t.model, layer_name, &err)) < 0 || th_mkdirs(cam_dir, &err))) {
        cli_error("%s", err.msg);
        status = TH_EXIT_FAIL;
        goto done;
    }
    int H = cfg->model.h, W = cfg->model.w, L = cfg->data.n_labels;
    img = malloc((size_t)H * W);
    x = malloc(sizeof(float) * (size_t)H * W);
    p = malloc(sizeof(float) * (size_t)L);
    if (!img || !x || !p) {
        cli_error("out of memory");
        status = TH_EXIT_FAIL;
        goto done;
    }
    printf("%-32s", "image");
    for (int k = 0; k < L; k++) printf(" %14.14s", cfg->data.labels[k]);
    printf("\n");
    for (int i = 0; i < n_images; i++) {
        char warn[512];
        if (th_predictor_load_png(&t, images[i], img, warn, sizeof warn, &err)) {
            cli_error("%s", err.msg);
            status = TH_EXIT_FAIL;
            continue;
        }
        if (warn[0]) fprintf(stderr, "thorax: warning: %s: %s\n", images[i], warn);
        th_input_make(&t.input, img, NULL, NULL, 1, -1, x);
        const float *logits = th_model_forward(&t.model, x, 1, 0);
        th_predictor_probs(&t, logits, p);
        printf("%-32s", images[i]);
        for (int k = 0; k < L; k++)
            printf(" %13.4f%c", p[k], t.has_op && p[k] >= t.op.threshold[k] ? '*' : ' ');
        printf("\n");
        if (cam_dir && write_cams(&t, cam_dir, images[i], img, x, p, method, layer, &err)) {
            cli_error("%s", err.msg);
            status = TH_EXIT_FAIL;
        }
    }
    if (t.has_op)
        printf("* at or above the label's operating point, chosen on val by %s%s (eval/val/thresholds.json)\n",
               t.op.rule, cfg->eval.calibrate == TH_CALIBRATE_TEMPERATURE ? ", probabilities temperature-scaled" : "");
    else
        printf("no operating points for this checkpoint yet: `thorax eval %s --split val` chooses them\n", run_dir);
done:
    free(img);
    free(x);
    free(p);
    free(images);
    th_predictor_close(&t);
    return status;
}

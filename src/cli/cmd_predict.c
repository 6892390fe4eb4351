/* cmd_predict.c - `thorax predict RUN_DIR IMAGE|DIR|GLOB ...`: probabilities
 * (and class activation maps) for new images, prepared exactly as in
 * training, in batches; a table on the terminal, CSV and JSON on request. */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "thorax/data.h"
#include "thorax/eval.h"
#include "thorax/util.h"
#include "thorax/nn.h"
#include "thorax/render.h"

#define PREDICT_BATCH 32
/* Fewer images than this finish before a progress line would help. */
#define PREDICT_PROGRESS_MIN 64

static void predict_usage(FILE *f)
{
    fprintf(f,
            "usage: thorax predict RUN_DIR IMAGE|DIR|GLOB ... [--csv F] [--json F] [--skip-bad]\n"
            "                      [--checkpoint best|last] [--batch N] [--cam DIR]\n"
            "                      [--method cam|gradcam|saliency] [--layer NAME]\n"
            "\n"
            "Prints the probability of every label of the run for each image. Images are\n"
            "read as ingest reads them (PNG 8/16-bit, JPEG, gray or colour to luminance,\n"
            "DICOM with its first window; resized to the model's input) and normalised with\n"
            "the training set's statistics from the checkpoint. An image unlike the\n"
            "training data (size, bit depth, colour, intensity statistics) gets a warning\n"
            "on stderr. When the run's validation split has been evaluated for this\n"
            "checkpoint (eval/val/thresholds.json), a '*' marks each probability at or\n"
            "above its label's operating point, and with eval.calibrate: temperature the\n"
            "probabilities are val's calibrated ones, as in test's predictions.csv.\n"
            "\n"
            "Inputs are image files, directories (walked recursively; hidden entries are\n"
            "skipped, and a file counts as an image by its first bytes or its name: .png,\n"
            ".jpg, .jpeg, .dcm) and glob patterns, expanded here for shells that did not\n"
            "('scans/*/*.png'). They are predicted sorted by path, each file once.\n"
            "\n"
            "The table lists the images that loaded, its first column as wide as the\n"
            "longest path. An image that cannot be read is an error on stderr naming it;\n"
            "without --skip-bad the first one stops the command with status 1 before\n"
            "anything is printed or written; with --skip-bad the others are predicted,\n"
            "the count of skipped images is reported on stderr, and the status is 0\n"
            "(1 when no image could be read).\n"
            "\n"
            "options:\n"
            "  --csv F                 also write F: image,p_<label>... and, with val's\n"
            "                          operating points, pred_<label>... (1 at or above the\n"
            "                          point, 0 below); one row per image that loaded,\n"
            "                          probabilities with 6 decimals\n"
            "  --json F                also write F: {checkpoint, epoch, step, labels,\n"
            "                          operating_points, rule, calibrated, images: [{image,\n"
            "                          p: {label: p}, pred: {label: 0|1}, warnings: [...]}],\n"
            "                          skipped: [{image, error}]}\n"
            "                          F '-' is stdout (then no table); both are written to a\n"
            "                          temporary name and renamed, never over an input image\n"
            "  --skip-bad              go on past images that cannot be read\n"
            "  --checkpoint best|last  which checkpoint of RUN_DIR (default best)\n"
            "  --batch N               images per forward pass (default %d; the results do\n"
            "                          not depend on it)\n"
            "  --cam DIR               also write DIR/<image>__<label>__<method>.png for every\n"
            "                          label: the image and the heat map over it (at least\n"
            "                          512 px on the long side), a colour bar with its values\n"
            "                          and a caption (image, label, probability, operating\n"
            "                          point, method, layer, checkpoint), as thorax cam draws\n"
            "                          them (see thorax cam --help)\n"
            "  --method M              cam, gradcam or saliency (default: the config's\n"
            "                          eval.cam.method)\n"
            "  --layer NAME            the Grad-CAM layer (default: the last conv block)\n"
            "  --log-format F          plain or json log lines (see thorax --help)\n"
            "  -h, --help              this help\n"
            "\n"
            "A progress line with images/s and ETA goes to stderr from %d images on.\n",
            PREDICT_BATCH, PREDICT_PROGRESS_MIN);
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


/* ---- the inputs ---------------------------------------------------------- */

typedef struct path_list {
    char **v;
    int n, cap;
} path_list;

static int add_path(path_list *l, const char *path, th_err *err)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, sizeof *v * (size_t)cap);
        if (!v) return th_errf(err, "out of memory listing the images");
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(path))) return th_errf(err, "out of memory listing the images");
    l->n++;
    return 0;
}

static void free_paths(path_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
}

/* th_dir_fn: the images of a directory tree. */
static int walk(void *ctx, const char *path, const char *name, const struct stat *st, th_err *err)
{
    (void)name;
    if (S_ISDIR(st->st_mode)) return th_dir_each(path, walk, ctx, err);
    return S_ISREG(st->st_mode) && th_image_is_image_file(path) ? add_path(ctx, path, err) : 0;
}

/* A directory's images; one without any is an error, as a pattern matching
 * nothing is: both are almost always a mistyped argument. */
static int add_dir(path_list *l, const char *dir, th_err *err)
{
    int before = l->n;
    if (th_dir_each(dir, walk, l, err)) return -1;
    return l->n > before ? 0 : th_errf(err, "%s holds no PNG, JPEG or DICOM image", dir);
}

/* One argument: a directory, a glob pattern naming no file as such, or a
 * file (kept as given even when it is no image: reading it says why). */
static int add_arg(path_list *l, const char *arg, th_err *err)
{
    char dir[4096];
    size_t n = strlen(arg);
    if (n >= sizeof dir) return th_errf(err, "path too long: %.200s...", arg);
    memcpy(dir, arg, n + 1);
    while (n > 1 && dir[n - 1] == '/') dir[--n] = '\0'; /* "scans/" walks as "scans" */
    struct stat st;
    if (!stat(dir, &st)) return S_ISDIR(st.st_mode) ? add_dir(l, dir, err) : add_path(l, arg, err);
    if (!strpbrk(arg, "*?[")) return add_path(l, arg, err);
    glob_t g;
    int rc = glob(arg, 0, NULL, &g);
    if (rc == GLOB_NOMATCH) return th_errf(err, "no file matches %s", arg);
    if (rc) return th_errf(err, "cannot expand %s", arg);
    int before = l->n;
    for (size_t i = 0; !rc && i < g.gl_pathc; i++) {
        const char *p = g.gl_pathv[i];
        if (stat(p, &st)) continue;
        if (S_ISDIR(st.st_mode)) rc = add_dir(l, p, err);
        else if (S_ISREG(st.st_mode) && th_image_is_image_file(p)) rc = add_path(l, p, err);
    }
    globfree(&g);
    if (!rc && l->n == before) rc = th_errf(err, "%s matches no PNG, JPEG or DICOM image", arg);
    return rc;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct file_id {
    dev_t dev;
    ino_t ino;
    int i;
} file_id;

static int by_id(const void *a, const void *b)
{
    const file_id *x = a, *y = b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    return x->i - y->i;
}

/* Sorted by path; one path per file, the first in that order, whether two
 * arguments name it alike (a file and its directory) or not (./a.png, a
 * link). */
static int sort_unique(path_list *l, th_err *err)
{
    qsort(l->v, (size_t)l->n, sizeof *l->v, by_name);
    file_id *id = malloc(sizeof *id * (size_t)(l->n + 1));
    if (!id) return th_errf(err, "out of memory listing the images");
    int m = 0;
    for (int i = 0; i < l->n; i++) {
        struct stat st;
        if (!stat(l->v[i], &st)) id[m++] = (file_id){st.st_dev, st.st_ino, i};
    }
    qsort(id, (size_t)m, sizeof *id, by_id);
    for (int j = 1; j < m; j++)
        if (id[j].dev == id[j - 1].dev && id[j].ino == id[j - 1].ino) {
            free(l->v[id[j].i]);
            l->v[id[j].i] = NULL;
        }
    free(id);
    int k = 0;
    for (int i = 0; i < l->n; i++) {
        if (!l->v[i]) continue;
        if (k > 0 && !strcmp(l->v[k - 1], l->v[i])) free(l->v[i]); /* a missing file named twice */
        else l->v[k++] = l->v[i];
    }
    l->n = k;
    return 0;
}

/* ---- the table ----------------------------------------------------------- */

/* Terminal columns of UTF-8 text: one per code point (continuation bytes
 * take none), so accented names line up. */
static int text_width(const char *s)
{
    int w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

static void print_padded(const char *s, int width, int right)
{
    int pad = width - text_width(s);
    if (right) printf("%*s%s", pad > 0 ? pad : 0, "", s);
    else printf("%s%*s", s, pad > 0 ? pad : 0, "");
}

/* image, then a column per label: "0.1234" and, with operating points, '*'
 * or ' ' after it; the label names right-aligned over the digits. */
static void print_table(const th_predict_table *r)
{
    const th_predictor *t = r->t;
    int wi = text_width("image");
    for (int i = 0; i < r->n; i++)
        if (text_width(r->image[i]) > wi) wi = text_width(r->image[i]);
    print_padded("image", wi, 0);
    for (int k = 0; k < r->l; k++) {
        printf("  ");
        print_padded(t->cfg->data.labels[k], 6, 1);
        if (t->has_op) printf(" ");
    }
    printf("\n");
    for (int i = 0; i < r->n; i++) {
        print_padded(r->image[i], wi, 0);
        for (int k = 0; k < r->l; k++) {
            int w = text_width(t->cfg->data.labels[k]);
            float p = r->p[(size_t)i * r->l + k];
            printf("  %*.4f", w > 6 ? w : 6, p);
            if (t->has_op) printf("%c", p >= t->op.threshold[k] ? '*' : ' ');
        }
        printf("\n");
    }
    if (t->has_op)
        printf("* at or above the label's operating point, chosen on val by %s%s (eval/val/thresholds.json)\n",
               t->op.rule,
               t->cfg->eval.calibrate == TH_CALIBRATE_TEMPERATURE ? ", probabilities temperature-scaled" : "");
}

/* Writes text to path atomically, or to stdout for "-". */
static int emit(const char *path, th_strbuf *b, th_err *err)
{
    int rc = 0;
    if (b->failed) rc = th_errf(err, "%s: out of memory while formatting", path);
    else if (!strcmp(path, "-"))
        rc = fwrite(b->data, 1, b->len, stdout) == b->len && !fflush(stdout) ? 0
                                                                             : th_errf(err, "cannot write to stdout");
    else rc = th_write_file_atomic(path, b->data ? b->data : "", b->len, err);
    th_strbuf_free(b);
    return rc;
}

/* ---- the command --------------------------------------------------------- */

typedef struct predict_args {
    const char *run_dir, *checkpoint, *cam_dir, *method_name, *layer_name, *csv, *json;
    int skip_bad;
    long batch;
} predict_args;

enum { OPT_CHECKPOINT = 1, OPT_CAM, OPT_METHOD, OPT_LAYER, OPT_CSV, OPT_JSON, OPT_BATCH, OPT_SKIP_BAD };

static const cli_opt predict_opts[] = {{OPT_CHECKPOINT, "checkpoint", "a value (best or last)"},
                                       {OPT_CAM, "cam", "a value (a directory)"},
                                       {OPT_METHOD, "method", "a value (cam, gradcam or saliency)"},
                                       {OPT_LAYER, "layer", "a value (a layer name)"},
                                       {OPT_CSV, "csv", "a file name ('-' for stdout)"},
                                       {OPT_JSON, "json", "a file name ('-' for stdout)"},
                                       {OPT_BATCH, "batch", "a value (images per forward pass)"},
                                       {OPT_SKIP_BAD, "skip-bad", NULL},
                                       {0, NULL, NULL}};

/* TH_EXIT_OK, TH_EXIT_USAGE, or -1 when the help was asked for and printed. */
static int parse_args(int argc, char **argv, predict_args *a, const char **rest, int *n_rest)
{
    *a = (predict_args){.batch = PREDICT_BATCH};
    *n_rest = 0;
    cli_parser p;
    cli_parser_init(&p, "predict", argc, argv, predict_opts);
    const char *v;
    for (int id; (id = cli_next(&p, &v)) != CLI_END;) {
        switch (id) {
        case CLI_HELP: predict_usage(stdout); return -1;
        case CLI_BAD: return TH_EXIT_USAGE;
        case OPT_CHECKPOINT: a->checkpoint = v; break;
        case OPT_CAM: a->cam_dir = v; break;
        case OPT_METHOD: a->method_name = v; break;
        case OPT_LAYER: a->layer_name = v; break;
        case OPT_CSV: a->csv = v; break;
        case OPT_JSON: a->json = v; break;
        case OPT_SKIP_BAD: a->skip_bad = 1; break;
        case OPT_BATCH:
            if (cli_parse_int(v, 1, 4096, &a->batch)) {
                cli_error("predict: --batch must be a whole number from 1 to 4096, got '%s'", v);
                return TH_EXIT_USAGE;
            }
            break;
        case CLI_ARG:
            if (!a->run_dir) a->run_dir = v;
            else rest[(*n_rest)++] = v;
            break;
        }
    }
    if (!a->run_dir || *n_rest == 0) {
        predict_usage(stderr);
        return TH_EXIT_USAGE;
    }
    if ((a->csv && !*a->csv) || (a->json && !*a->json)) {
        cli_error("predict: --%s needs a file name ('-' for stdout)", a->csv && !*a->csv ? "csv" : "json");
        return TH_EXIT_USAGE;
    }
    if (a->csv && a->json && !strcmp(a->csv, a->json)) {
        cli_error("predict: --csv and --json both name %s", a->csv);
        return TH_EXIT_USAGE;
    }
    return TH_EXIT_OK;
}

/* The results so far, owned by cmd_predict. */
typedef struct predict_out {
    int n, n_bad, cap;          /* rows, skipped images, room for either */
    const char **image, **bad;
    char **warning, **error;
    float *p;
} predict_out;

static void free_out(predict_out *o)
{
    for (int i = 0; i < o->cap; i++) {
        free(o->warning[i]);
        free(o->error[i]);
    }
    free(o->image);
    free(o->bad);
    free(o->warning);
    free(o->error);
    free(o->p);
}

/* A message on stderr that a progress line on a terminal does not swallow. */
static void note_progress(cli_progress *pr)
{
    cli_progress_abort(pr);
    pr->shown = 0;
}

int cmd_predict(int argc, char **argv)
{
    const char **args = malloc(sizeof(char *) * (size_t)argc);
    if (!args) {
        cli_error("out of memory");
        return TH_EXIT_FAIL;
    }
    predict_args a;
    int n_args, status = parse_args(argc, argv, &a, args, &n_args);
    if (status != TH_EXIT_OK) {
        free(args);
        return status < 0 ? TH_EXIT_OK : status;
    }
    th_err err = {{0}};
    th_predictor t = {0};
    path_list in = {0};
    predict_out o = {0};
    uint8_t *img = NULL;
    float *x = NULL;
    int *row = NULL;
    for (int i = 0; i < n_args; i++)
        if (add_arg(&in, args[i], &err)) goto fail;
    if (sort_unique(&in, &err)) goto fail;
    /* Before any work: an output over an input would lose the image. */
    for (int j = 0; j < 2; j++) {
        const char *out = j ? a.json : a.csv;
        if (out && strcmp(out, "-") && th_output_not_input(out, in.n, (const char *const *)in.v, &err)) goto fail;
    }
    int B = (int)a.batch;
    if (th_predictor_open(&t, a.run_dir, a.checkpoint, B, &err)) goto fail;
    const th_config *cfg = t.cfg;
    th_cam_method method;
    if (th_cam_method_parse(a.method_name ? a.method_name : cfg->eval.cam_method, &method)) {
        cli_error("predict: --method must be cam, gradcam or saliency, got '%s'", a.method_name);
        status = TH_EXIT_USAGE;
        goto done;
    }
    int layer = -1;
    if (a.cam_dir && (th_cam_layer_prepare(&t.model, method, a.layer_name, &layer, &err) || th_mkdirs(a.cam_dir, &err)))
        goto fail;
    int H = cfg->model.h, W = cfg->model.w, L = cfg->data.n_labels;
    size_t HW = (size_t)H * W;
    img = malloc(HW * (size_t)B);
    x = malloc(sizeof(float) * HW * (size_t)B);
    row = malloc(sizeof(int) * (size_t)B);
    o.image = malloc(sizeof(char *) * (size_t)in.n);
    o.bad = malloc(sizeof(char *) * (size_t)in.n);
    o.warning = calloc((size_t)in.n, sizeof(char *));
    o.error = calloc((size_t)in.n, sizeof(char *));
    o.p = malloc(sizeof(float) * (size_t)in.n * L);
    o.cap = o.warning && o.error ? in.n : 0;
    if (!img || !x || !row || !o.image || !o.bad || !o.warning || !o.error || !o.p) {
        th_errf(&err, "out of memory for %d images", in.n);
        goto fail;
    }
    cli_progress pr;
    cli_progress_start(&pr, "predict");
    for (int i = 0; i < in.n;) {
        /* A batch of images that load: x [nb, 1, H, W]. */
        int nb = 0;
        for (; nb < B && i < in.n; i++) {
            char warn[512];
            if (th_predictor_load_image(&t, in.v[i], img + (size_t)nb * HW, warn, sizeof warn, &err)) {
                note_progress(&pr);
                if (!a.skip_bad) {
                    cli_error("%s (--skip-bad goes on past unreadable images)", err.msg);
                    status = TH_EXIT_FAIL;
                    goto done;
                }
                cli_error("%s", err.msg);
                o.bad[o.n_bad] = in.v[i];
                if (!(o.error[o.n_bad++] = strdup(err.msg))) {
                    th_errf(&err, "out of memory");
                    goto fail;
                }
                continue;
            }
            if (warn[0]) {
                note_progress(&pr);
                fprintf(stderr, "thorax: warning: %s: %s\n", in.v[i], warn);
                if (!(o.warning[o.n + nb] = strdup(warn))) {
                    th_errf(&err, "out of memory");
                    goto fail;
                }
            }
            row[nb++] = i;
        }
        if (nb > 0) {
            th_input_make(&t.input, img, NULL, NULL, nb, -1, x);
            const float *logits = th_model_forward(&t.model, x, nb, 0);
            for (int j = 0; j < nb; j++) {
                th_predictor_probs(&t, logits + (size_t)j * L, o.p + (size_t)(o.n + j) * L);
                o.image[o.n + j] = in.v[row[j]];
            }
            o.n += nb;
            /* After the probabilities: the maps overwrite the model's activations, logits among them. */
            for (int j = 0; a.cam_dir && j < nb; j++)
                if (write_cams(&t, a.cam_dir, in.v[row[j]], img + (size_t)j * HW, x + (size_t)j * HW,
                               o.p + (size_t)(o.n - nb + j) * L, method, layer, &err))
                    goto fail;
        }
        if (in.n >= PREDICT_PROGRESS_MIN) cli_progress_update(&pr, i, in.n);
    }
    if (o.n == 0) {
        th_errf(&err, "predict: no image could be read (%d tried)", in.n);
        goto fail;
    }
    th_predict_table r = {.n = o.n, .l = L, .image = o.image, .warning = (const char *const *)o.warning, .p = o.p,
                          .t = &t, .n_skipped = o.n_bad, .skipped = o.bad, .error = (const char *const *)o.error};
    if (a.csv) {
        th_strbuf b = {0};
        th_predict_csv(&b, &r);
        if (emit(a.csv, &b, &err)) goto fail;
    }
    if (a.json) {
        th_strbuf b = {0};
        th_predict_json(&b, &r);
        if (emit(a.json, &b, &err)) goto fail;
    }
    int to_stdout = (a.csv && !strcmp(a.csv, "-")) || (a.json && !strcmp(a.json, "-"));
    if (!to_stdout) {
        print_table(&r);
        if (!t.has_op)
            printf("no operating points for this checkpoint yet: `thorax eval %s --split val` chooses them\n",
                   a.run_dir);
    }
    if (o.n_bad)
        cli_error("predict: skipped %d of %d images that could not be read (--skip-bad)", o.n_bad, in.n);
    goto done;
fail:
    cli_error("%s", err.msg);
    status = TH_EXIT_FAIL;
done:
    free(img);
    free(x);
    free(row);
    free_out(&o);
    free_paths(&in);
    free(args);
    th_predictor_close(&t);
    return status;
}

/* cmd_cam.c - `thorax cam RUN_DIR`: class activation maps of chosen images
 * of a trained run, each rank mapping its own images (thorax/eval.h). */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "thorax/dist.h"
#include "thorax/eval.h"

static void cam_usage(FILE *f)
{
    fprintf(f,
            "usage: mpirun -np N thorax cam RUN_DIR [--method cam|gradcam|saliency] [--layer NAME]\n"
            "                                      [--images a.png,b.png,...|--top-k K] [--split val|test]\n"
            "                                      [--checkpoint best|last] [--label NAME] [--dilate D]\n"
            "\n"
            "Where the network looked: attribution maps of chosen images for chosen labels,\n"
            "computed with a checkpoint of the run (eval mode, the training normalisation, no\n"
            "augmentation), upsampled bilinearly to the image, and written to\n"
            "RUN_DIR/cam/<checkpoint>/<method>/ (e.g. cam/best/gradcam/), so that runs with\n"
            "another method or checkpoint keep each other's files:\n"
            "  maps.h5      (maps_<label>.h5 with --label) /maps/<method> float32 [M,H,W] at\n"
            "               image resolution, /maps_feature/<method> [M,fh,fw] at the layer's\n"
            "               resolution, and per row /index (row in the dataset file),\n"
            "               /image_name, /label, /prob, /kind (TP, FP, FN by rank, or named),\n"
            "               /truth, /split, /outcome (TP, FP, FN, TN or unknown at the\n"
            "               operating point), /threshold and /p_operating (the probability\n"
            "               compared with it); with lesion masks also /pointing_hit\n"
            "               (-1: not scored), /mask_energy and /lesion_iou\n"
            "  <image>__<label>__<method>_<outcome>.png\n"
            "               two panels at least 512 px on the long side: the X-ray and the\n"
            "               heat map over it (turbo; the map divided by its maximum, so 0..1,\n"
            "               values <= 0 uncoloured), a colour bar with its values, and a\n"
            "               caption: image, label, probability, truth, outcome, threshold,\n"
            "               why chosen, method, layer, checkpoint and the map's maximum\n"
            "  pointing.csv (pointing_<label>.csv; dataset files with /masks, e.g. phantom\n"
            "               data) per label label,n,hits,rate,mean_energy,mean_iou: the\n"
            "               pointing game over the TP maps (with --images: the images\n"
            "               positive for the label): a hit when the map's maximum lies in\n"
            "               the lesion mask dilated by D pixels; mean_energy is the mean\n"
            "               share of positive map mass inside it; mean_iou the mean IoU of\n"
            "               the map's brightest pixels, as many as the lesion has, with the\n"
            "               (undilated) lesion mask or box\n"
            "The outcome is the probability (as in predictions.csv: calibrated when the run\n"
            "calibrates) against val's operating point for the label when thorax eval has\n"
            "chosen one for this checkpoint (eval/val/thresholds.json), else against 0.5;\n"
            "the caption says which. A rerun with the same checkpoint, method and label\n"
            "choice replaces its files (each written under a temporary name and renamed).\n"
            "Each rank maps the images of its own patients; the files do not depend on N.\n"
            "Progress (rank 0's share of the images, with an ETA) goes to stderr.\n"
            "\n"
            "Which maps (one per image and label):\n"
            "  --top-k K (default: the config's eval.cam.top_k), per label: the K positives\n"
            "  with the highest probability (TP), the K negatives with the highest (FP) and\n"
            "  the K positives with the lowest (FN, among those not already TP), ranked from\n"
            "  RUN_DIR/eval/<split>/predictions.csv. A ranking, not a threshold: with few\n"
            "  confident positives a \"TP\" may have p < 0.5. When that file is missing the\n"
            "  evaluation phase (thorax eval) runs first and writes it, with --checkpoint;\n"
            "  an existing file is used as it is (thorax eval writes it from best.h5).\n"
            "  --images a.png,b.png names images of the dataset file (any split), each\n"
            "  mapped for every label of the run; a name the file lacks is an error.\n"
            "\n"
            "options:\n"
            "  --method M              cam (Zhou 2016: the dense weights over the layer feeding\n"
            "                          gap), gradcam (Selvaraju 2017), or saliency (|d logit /\n"
            "                          d pixel|); default: the config's eval.cam.method\n"
            "  --layer NAME            the layer Grad-CAM reads, e.g. conv3 or relu3 (default:\n"
            "                          the output of the last conv block)\n"
            "  --images LIST           comma-separated image names (instead of --top-k)\n"
            "  --top-k K               maps per label and kind (K >= 1)\n"
            "  --split val|test        the split whose predictions are ranked (default: the\n"
            "                          config's eval.split)\n"
            "  --checkpoint best|last  best.h5 (default) or last.h5\n"
            "  --label NAME            only this label of the run\n"
            "  --dilate D              pointing-game tolerance: masks grown by D pixels\n"
            "                          (default 3)\n"
            "  --log-format F          plain or json log lines (see thorax --help)\n"
            "  -h, --help              this help\n");
}

/* Rank 0's summary: what was written, and the pointing game when played. */
static void print_result(const th_explain_result *r, const char *checkpoint, int dilate)
{
    if (r->ran_eval) printf("cam: %s was missing: evaluated the %s split first\n", r->predictions, r->split);
    char shape[64];
    if (r->fh == r->h && r->fw == r->w) snprintf(shape, sizeof shape, "%dx%d", r->h, r->w);
    else snprintf(shape, sizeof shape, "%dx%d upsampled to %dx%d", r->fh, r->fw, r->h, r->w);
    printf("cam: %d %s map%s of %d image%s (%s, %s, checkpoint %s) -> %s and PNG overlays in %s/\n", r->n_maps,
           r->method, r->n_maps == 1 ? "" : "s", r->n_images, r->n_images == 1 ? "" : "s", r->layer, shape,
           checkpoint ? checkpoint : "best", r->maps, r->out_dir);
    printf("cam: outcomes (file names, /outcome) against %s\n", r->threshold_source);
    if (r->split[0]) printf("cam: top-k of the %s split, ranked from %s\n", r->split, r->predictions);
    if (!r->has_masks) {
        fflush(stdout);
        return;
    }
    printf("cam: pointing game (masks dilated by %d px) -> %s\n", dilate, r->pointing);
    for (int k = 0; k < r->n_scores; k++) {
        const th_explain_score *s = &r->score[k];
        if (s->n)
            printf("  %-20s %2d/%-2d hits  rate %.2f  mask energy %.2f  IoU %.2f\n", s->label, s->hits, s->n, s->rate,
                   s->mean_energy, s->mean_iou);
        else printf("  %-20s no scored maps\n", s->label);
    }
    fflush(stdout);
}

enum { OPT_METHOD = 1, OPT_LAYER, OPT_IMAGES, OPT_TOP_K, OPT_SPLIT, OPT_CHECKPOINT, OPT_LABEL, OPT_DILATE };

static const cli_opt cam_opts[] = {{OPT_METHOD, "method", "a value (cam, gradcam or saliency)"},
                                   {OPT_LAYER, "layer", "a value (a layer name)"},
                                   {OPT_IMAGES, "images", "a value (image names, comma-separated)"},
                                   {OPT_TOP_K, "top-k", "a value (a whole number)"},
                                   {OPT_SPLIT, "split", "a value (val or test)"},
                                   {OPT_CHECKPOINT, "checkpoint", "a value (best or last)"},
                                   {OPT_LABEL, "label", "a value (a label name)"},
                                   {OPT_DILATE, "dilate", "a value (pixels)"},
                                   {0, NULL, NULL}};

int cmd_cam(int argc, char **argv)
{
    th_explain_opts opts = {.top_k = -1, .dilate = 3};
    const char *top_k = NULL, *dilate = NULL, *v;
    cli_parser p;
    cli_parser_init(&p, "cam", argc, argv, cam_opts);
    for (int id; (id = cli_next(&p, &v)) != CLI_END;) {
        switch (id) {
        case CLI_HELP: cam_usage(stdout); return TH_EXIT_OK;
        case CLI_BAD: return TH_EXIT_USAGE;
        case OPT_METHOD: opts.method = v; break;
        case OPT_LAYER: opts.layer = v; break;
        case OPT_IMAGES: opts.images = v; break;
        case OPT_TOP_K: top_k = v; break;
        case OPT_SPLIT: opts.split = v; break;
        case OPT_CHECKPOINT: opts.checkpoint = v; break;
        case OPT_LABEL: opts.label = v; break;
        case OPT_DILATE: dilate = v; break;
        case CLI_ARG:
            if (opts.run_dir) {
                cli_error("cam: unexpected argument '%s' (see thorax cam --help)", v);
                return TH_EXIT_USAGE;
            }
            opts.run_dir = v;
            break;
        }
    }
    if (!opts.run_dir) {
        cam_usage(stderr);
        return TH_EXIT_USAGE;
    }
    long num;
    if (top_k) {
        if (cli_parse_int(top_k, 1, 100000, &num)) {
            cli_error("cam: --top-k must be a whole number from 1 to 100000, got '%s'", top_k);
            return TH_EXIT_USAGE;
        }
        opts.top_k = (int)num;
    }
    if (dilate) {
        if (cli_parse_int(dilate, 0, 1000, &num)) {
            cli_error("cam: --dilate must be a whole number of pixels from 0 to 1000, got '%s'", dilate);
            return TH_EXIT_USAGE;
        }
        opts.dilate = (int)num;
    }
    if (top_k && opts.images) {
        cli_error("cam: --images and --top-k choose the maps in two different ways: give one");
        return TH_EXIT_USAGE;
    }
    if (opts.images && opts.split) {
        cli_error("cam: --split ranks the predictions of --top-k; --images maps the named images in any split");
        return TH_EXIT_USAGE;
    }
    if (opts.method && strcmp(opts.method, "cam") && strcmp(opts.method, "gradcam") && strcmp(opts.method, "saliency")) {
        cli_error("cam: --method must be cam, gradcam or saliency, got '%s'", opts.method);
        return TH_EXIT_USAGE;
    }
    if (opts.split && strcmp(opts.split, "val") && strcmp(opts.split, "test")) {
        cli_error("cam: --split must be val or test, got '%s'", opts.split);
        return TH_EXIT_USAGE;
    }
    if (opts.checkpoint && strcmp(opts.checkpoint, "best") && strcmp(opts.checkpoint, "last")) {
        cli_error("cam: --checkpoint must be best or last, got '%s'", opts.checkpoint);
        return TH_EXIT_USAGE;
    }
    MPI_Init(&argc, &argv);
    int rank = th_dist_rank(th_comm_world()), size = th_dist_size(th_comm_world());
    cli_progress progress;
    cli_progress_start(&progress, size > 1 ? "cam (rank 0's share)" : "cam");
    if (rank == 0) {
        opts.progress = cli_progress_update;
        opts.progress_ctx = &progress;
    }
    th_err err = {{0}};
    th_explain_result res;
    int status = TH_EXIT_OK;
    cli_run_lock lock;
    if (cli_lock_run(&lock, opts.run_dir, 0, &err)) {
        if (rank == 0) cli_error("%s", err.msg);
        status = TH_EXIT_FAIL;
    } else if (th_explain_run(&opts, th_comm_world(), &res, &err)) {
        if (rank == 0) cli_progress_abort(&progress);
        if (rank == 0) cli_error("%s", err.msg);
        status = TH_EXIT_FAIL;
    } else if (rank == 0) {
        print_result(&res, opts.checkpoint, opts.dilate);
    }
    cli_unlock_run(&lock, status != TH_EXIT_OK);
    MPI_Finalize();
    return status;
}

/* explain.h - `thorax cam`: class activation maps of chosen images of a
 * trained run, as heat-map overlays and one maps file (DESIGN.md, "Run
 * directory": cam/maps.h5 and cam/<image>__<label>__<method>.png).
 *
 * Which (image, label) pairs get a map, decided on rank 0:
 *   named  opts->images, a comma-separated list of image names of the
 *          dataset file (any split), each with every label of the run (or
 *          only opts->label); an unknown name is an error naming it.
 *   top-k  per label, the split's predictions (eval/<split>/predictions.csv,
 *          made first with th_eval_run when missing) ranked by probability:
 *            TP  the K positives with the highest p,
 *            FP  the K negatives with the highest p,
 *            FN  the K positives with the lowest p, among those not taken as TP.
 *          Ranking, not an operating point: no threshold is involved, so a
 *          "TP" of a label with few confident positives may have p < 0.5.
 *          Ties go to the lower dataset row.
 *
 * The selected images are dealt to ranks by whole patients
 * (th_shard_by_patient over the selected rows, balanced by image count), so
 * every rank computes the maps of its own images: it reads them with
 * parallel HDF5, runs the model in eval mode on a batch of one per map
 * (normalised as in training, never augmented), writes their PNG overlays
 * and sends the maps to rank 0, which writes cam/maps.h5. A map depends only
 * on the image, the label and the checkpoint: the files are the same on any
 * number of ranks.
 *
 * When the dataset file has lesion masks (phantom data), every map is also
 * scored against the label's mask dilated by opts->dilate pixels: the
 * pointing game (is the map's maximum in the mask?) and the share of the
 * map's positive mass inside the mask; per label over the TP items (named
 * mode: the images positive for the label) they go to cam/pointing.csv
 * (label,n,hits,rate,mean_energy) and to the result.
 */
#ifndef THORAX_EXPLAIN_H
#define THORAX_EXPLAIN_H

#include "thorax/config.h"
#include "thorax/dist.h"
#include "thorax/error.h"

/* Why an (image, label) pair was chosen. */
typedef enum th_explain_kind { TH_EXPLAIN_NAMED = 0, TH_EXPLAIN_TP, TH_EXPLAIN_FP, TH_EXPLAIN_FN } th_explain_kind;

/* "named", "TP", "FP", "FN": the /kind column of maps.h5 and the captions. */
const char *th_explain_kind_name(th_explain_kind kind);

typedef struct th_explain_opts {
    const char *run_dir;        /* the training run: config.yaml and checkpoints/ */
    const char *method;         /* "cam", "gradcam" or "saliency" (NULL: the config's eval.cam.method) */
    const char *layer;          /* Grad-CAM's layer, e.g. "conv3" (NULL: the last conv block) */
    const char *images;         /* "a.png,b.png": named mode (NULL: top-k) */
    int top_k;                  /* K of top-k mode (< 0: the config's eval.cam.top_k) */
    const char *split;          /* "val" or "test", top-k mode (NULL: the config's eval.split) */
    const char *checkpoint;     /* "best" (default) or "last" */
    const char *label;          /* only this label (NULL: every label of the run) */
    int dilate;                 /* pixels of tolerance around lesion masks (>= 0) */
} th_explain_opts;

/* The pointing game of one label. */
typedef struct th_explain_score {
    char label[TH_LABEL_MAX];
    int n, hits;                /* scored maps (non-empty mask) and those whose maximum is in the mask */
    double rate;                /* hits / n; NaN when n is 0 */
    double mean_energy;         /* mean share of positive map mass in the mask; NaN when n is 0 */
} th_explain_score;

typedef struct th_explain_result {
    char out_dir[2048];         /* RUN_DIR/cam */
    char method[16];            /* the method used */
    char layer[64];             /* the layer read ("input" for saliency) */
    char split[16];             /* top-k: the split ranked; named: "" */
    char predictions[2100];     /* top-k: the predictions file ranked; named: "" */
    int ran_eval;               /* the predictions were missing and were made first */
    int h, w, fh, fw;           /* map shape at image and at feature resolution */
    int n_maps, n_images;       /* rows of maps.h5, and distinct images among them */
    int has_masks;              /* the pointing game was played (score[] is filled) */
    int n_scores;
    th_explain_score score[TH_MAX_LABELS];
} th_explain_result;

/* Collective over comm. The result is filled on every rank; on failure
 * every rank returns -1 with the same message (the lowest failing rank's). */
int th_explain_run(const th_explain_opts *opts, th_comm comm, th_explain_result *res, th_err *err);

#endif

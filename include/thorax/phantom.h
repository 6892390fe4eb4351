/* phantom.h - synthetic chest radiographs with known findings and lesion masks.
 *
 * Each patient has an anatomy (body and lung outline, heart size, rib phase,
 * brightness) drawn from (seed, patient) that stays the same across that
 * patient's studies; each study adds its own pose jitter, exposure, noise and
 * findings. Findings, with masks of where they are:
 *   Pneumothorax  a dark region without lung markings at an apex, bounded by a pleural line
 *   Cardiomegaly  an enlarged heart (cardiothoracic ratio > 0.5)
 *   Effusion      a blunted costophrenic angle: a dense meniscus at a lung base
 *   Nodule        a small round opacity in a lung
 * An optional shortcut marker (a bright square tag in a corner) can be drawn on
 * the studies of one label only, for the shortcut-learning demo.
 * Everything is deterministic in the seed.
 */
#ifndef THORAX_PHANTOM_H
#define THORAX_PHANTOM_H

#include <stdint.h>
#include "thorax/error.h"

#define TH_PHANTOM_N_LABELS 4
extern const char *const th_phantom_labels[TH_PHANTOM_N_LABELS];

typedef struct th_phantom_opts {
    int patients;           /* default 400 */
    int size;               /* H = W, default 128 */
    uint64_t seed;          /* default 1 */
    int studies_min;        /* studies per patient, default 1 */
    int studies_max;        /* default 4 */
    float prevalence;       /* probability of each finding per study, default 0.15 */
    int marker_label;       /* -1 = no shortcut marker, else the label index it follows */
    float marker_rate;      /* probability that a positive study of marker_label carries it, default 0.9 */
} th_phantom_opts;

void th_phantom_defaults(th_phantom_opts *o);

/* Number of images that opts produce (sum of studies over patients). */
int th_phantom_count(const th_phantom_opts *o);

/* Renders study `study` of patient `patient`: img [S, S], labels [4] (0/1),
 * masks [4, S, S] (0/1; may be NULL). Pure function of (opts, patient, study). */
void th_phantom_render(const th_phantom_opts *o, int patient, int study,
                       uint8_t *img, uint8_t *labels, uint8_t *masks);

/* Progress callback: called now and then with images written so far. */
typedef void (*th_phantom_progress_fn)(void *ctx, int done, int total);

/* Writes the whole dataset file (with masks; patient IDs `P00042`, image names
 * `P00042_003.png`). Atomic: a temp name renamed into place. */
int th_phantom_write(const th_phantom_opts *o, const char *path,
                     th_phantom_progress_fn progress, void *ctx, th_err *err);

/* What a phantom file holds, read back from the file itself (which also
 * proves that it opens): label counts, and its first images with their masks
 * and names for a person to look at. */
#define TH_PHANTOM_MAX_PREVIEW 64
typedef struct th_phantom_summary {
    int images;                         /* rows of the file */
    int size;                           /* S: images are [S, S] */
    int positive[TH_PHANTOM_N_LABELS];  /* images positive for each label */
    int any;                            /* images with any finding */
    int n_preview;                      /* the first images kept below */
    uint8_t *img;                       /* [n_preview, S, S] */
    uint8_t *masks;                     /* [n_preview, TH_PHANTOM_N_LABELS, S, S] */
    char name[TH_PHANTOM_MAX_PREVIEW][64]; /* their image names, "P00042_003.png" */
} th_phantom_summary;

/* th_phantom_write, then the summary of the file written, with its first
 * min(n_preview, images) images (n_preview 0 to TH_PHANTOM_MAX_PREVIEW). Free
 * s with th_phantom_summary_free, also after a failure. */
int th_phantom_make(const th_phantom_opts *o, const char *path, int n_preview,
                    th_phantom_progress_fn progress, void *ctx, th_phantom_summary *s, th_err *err);
void th_phantom_summary_free(th_phantom_summary *s);

#endif

/* input.h - from stored uint8 images to the network's input.
 *
 * Training images are warped by their augmentation transform (a function of
 * seed, epoch and dataset row) and normalised; evaluation images are only
 * normalised, with the same statistics: those of the training split (stored in
 * the checkpoint) or of the image itself, never of a batch.
 */
#ifndef THORAX_INPUT_H
#define THORAX_INPUT_H

#include <stdint.h>
#include "thorax/augment.h"

/* How pixel values become network inputs: (v/255 - mean) / std with the
 * training split's statistics, per image to zero mean and unit variance, or
 * v/255 alone. The config's data.normalize names the same three modes
 * (th_normalize); data does not read the config, so th_plan_input (train)
 * maps one onto the other. */
typedef enum th_input_norm { TH_INPUT_NORM_TRAINSET = 0, TH_INPUT_NORM_PER_IMAGE, TH_INPUT_NORM_NONE } th_input_norm;

/* What a run decides about its inputs: the normalisation, the run's seed
 * (augmentation streams) and the augmentation ranges. */
typedef struct th_input_params {
    th_input_norm normalize;
    uint64_t seed;
    th_augment_params augment;
} th_input_params;

typedef struct th_input {
    int h, w;
    th_input_norm normalize;
    float mean, std;            /* training-set statistics, in units of pixel/255 */
    uint64_t seed;
    th_augment_params augment;
    int augment_on;             /* any augmentation configured */
} th_input;

/* From the run's parameters p (th_plan_input fills them from a config);
 * images are [h, w]; mean/std are the training set's. */
void th_input_init(th_input *in, const th_input_params *p, int h, int w, float mean, float std);

/* x [n, 1, H, W] from images rows[j] of a uint8 block img [*, H, W] (rows
 * NULL: the first n). epoch >= 0 augments (training), with dataset_row[rows[j]]
 * the image's row in the dataset file; epoch < 0 does not (dataset_row unused). */
void th_input_make(const th_input *in, const uint8_t *img, const int *rows, const int *dataset_row, int n, int epoch,
                   float *x);

#endif

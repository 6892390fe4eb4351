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
#include "thorax/config.h"

typedef struct th_input {
    int h, w;
    th_normalize normalize;
    float mean, std;            /* training-set statistics, in units of pixel/255 */
    uint64_t seed;
    th_augment_params augment;
    int augment_on;             /* any augmentation configured */
} th_input;

/* From the config's data section; mean/std are the training set's. */
void th_input_init(th_input *in, const th_config *cfg, int h, int w, float mean, float std);

/* x [n, 1, H, W] from images rows[j] of a uint8 block img [*, H, W] (rows
 * NULL: the first n). epoch >= 0 augments (training), with dataset_row[rows[j]]
 * the image's row in the dataset file; epoch < 0 does not (dataset_row unused). */
void th_input_make(const th_input *in, const uint8_t *img, const int *rows, const int *dataset_row, int n, int epoch,
                   float *x);

#endif

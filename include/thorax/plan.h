/* plan.h - which images a run uses: its labels and its patient split.
 *
 * Training, evaluation, `thorax split` and `thorax cam` must agree on both,
 * so they all come from the config and the dataset's index through these two
 * functions, deterministically.
 */
#ifndef THORAX_PLAN_H
#define THORAX_PLAN_H

#include <stdint.h>
#include "thorax/config.h"
#include "thorax/dataset.h"
#include "thorax/error.h"
#include "thorax/input.h"

/* The run's labels: label_col[k] is the column in ds of the k-th label the
 * config names (every label of the file when it names none). label_col has
 * room for TH_MAX_LABELS. The error names a missing label and lists the file's. */
int th_plan_labels(const th_config *cfg, const th_dataset *ds, int *label_col, int *n_labels, th_err *err);

/* The split of every image of ds that cfg asks for, split [ds->n]: by patient
 * with the configured fractions, stratified on the run's labels; or the file's
 * predefined /split, which is refused if it puts a patient in two splits
 * (naming how many and a few of them) unless data.on_leak is drop_from_eval,
 * which marks those patients' val/test images TH_SPLIT_NONE and counts them
 * in *dropped (may be NULL). */
int th_plan_split(const th_config *cfg, const th_dataset *ds, const int *label_col, int n_labels, uint8_t *split,
                   int *dropped, th_err *err);

/* How the run turns stored images into inputs: cfg's data.normalize,
 * data.augment and seed, as th_input_init takes them. Training, evaluation
 * and prediction all go through here, so they normalise alike. */
void th_plan_input(const th_config *cfg, th_input_params *p);

#endif

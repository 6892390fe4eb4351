/* split.h - patient-level train/val/test splits and rank shards by patient.
 *
 * No patient ever has images in two splits: the unit of every split and of
 * every shard is the patient, never the image.
 */
#ifndef THORAX_SPLIT_H
#define THORAX_SPLIT_H

#include <stdint.h>
#include "thorax/error.h"

enum { TH_SPLIT_TRAIN = 0, TH_SPLIT_VAL = 1, TH_SPLIT_TEST = 2, TH_SPLIT_NONE = 255 };

const char *th_split_name(int s);

/* Groups images by patient: patient_of[i] in [0, n_patients), numbered in
 * sorted order of the patient ID strings (so the numbering does not depend on
 * the order of the rows). Returns n_patients, or -1 on allocation failure. */
int th_patients_group(int n, const char *const *patient_id, int *patient_of);

/* Splits patients into train/val/test with the given fractions of patients
 * (test = 1 - train - val); writes split[n] per image. Patient counts are the
 * fractions rounded (every split with a positive fraction gets a patient when
 * there are at least 3). With labels [n, n_labels] the split is stratified:
 * each split keeps each label's share of positive images as close to its
 * fraction as whole patients allow (rarest labels placed first); labels NULL
 * gives a plain random split. Deterministic in (seed, patient IDs, labels),
 * independent of the order of the rows and of the number of ranks. */
int th_split_by_patient(int n, const char *const *patient_id, const uint8_t *labels, int n_labels,
                        double f_train, double f_val, uint64_t seed, uint8_t *split, th_err *err);

/* Counts patients whose images fall in more than one split. leaky [n] (may be
 * NULL) receives 1 for every image of such a patient; first_leak (may be NULL)
 * the earliest row where such a patient appears in a second split (or -1). */
int th_split_count_leaks(int n, const char *const *patient_id, const uint8_t *split, uint8_t *leaky,
                         int *first_leak);

/* Assigns the patients of split `which` to n_ranks ranks, whole patients
 * only, balanced by image count (largest patient first to the least loaded
 * rank; ties to the lower rank). rank_of[i] = rank, or -1 for images not in
 * `which`. Deterministic. */
int th_shard_by_patient(int n, const char *const *patient_id, const uint8_t *split, int which,
                        int n_ranks, int *rank_of, th_err *err);

#endif

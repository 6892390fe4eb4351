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

/* Splits patients at random (seeded) into train/val/test with the given
 * fractions of patients (f_train + f_val + f_test = 1); writes split[n] per
 * image. Deterministic in (seed, the set of patient IDs). */
int th_split_by_patient(int n, const char *const *patient_id, double f_train, double f_val,
                        uint64_t seed, uint8_t *split, th_err *err);

/* Counts patients whose images fall in more than one split; if first_leak is
 * not NULL it receives the index of one image of the first such patient (or -1). */
int th_split_count_leaks(int n, const char *const *patient_id, const uint8_t *split, int *first_leak);

/* Assigns the patients of split `which` to n_ranks ranks, whole patients
 * only, balanced by image count (largest patient first to the least loaded
 * rank; ties to the lower rank). rank_of[i] = rank, or -1 for images not in
 * `which`. Deterministic. */
int th_shard_by_patient(int n, const char *const *patient_id, const uint8_t *split, int which,
                        int n_ranks, int *rank_of, th_err *err);

#endif

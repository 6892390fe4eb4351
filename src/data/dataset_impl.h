/* dataset_impl.h - what the files of the dataset reader share (internal to
 * src/data): dataset_read.c opens the file and reads images, dataset_index.c
 * reads and validates the index on rank 0 and hands it to every rank.
 */
#ifndef THORAX_DATASET_IMPL_H
#define THORAX_DATASET_IMPL_H

#include <stdint.h>
#include "thorax/data.h"
#include "thorax/dist.h"
#include "thorax/util.h"

/* Collective over comm. Rank 0 reads and validates the index of file (an
 * hid_t open on every rank), then every rank receives it into ds: n, h, w,
 * n_labels, label_names, labels, patient_id, image_name, split, has_masks.
 * A bad file or a failed allocation fails on every rank with the lowest
 * failing rank's message; ds then holds nothing that th_dataset_close would
 * not free. */
int dataset_load_index(int64_t file, const char *path, th_comm comm, th_dataset *ds, th_err *err);

/* Refuses a label name given twice among names [n], naming path, the name
 * and both columns. A file whose columns share a name would train (every
 * column is a label) and then stop the evaluation, whose config names each
 * label once: the writer refuses to make one and the reader to open one. */
int dataset_label_names_distinct(const char *path, int n, const char *const *names, th_err *err);

#endif

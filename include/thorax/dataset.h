/* dataset.h - the dataset file (HDF5), read with parallel HDF5 and written serially.
 *
 * Layout (DESIGN.md):
 *   /images      uint8 [N, H, W], chunked one image per chunk
 *   /labels      uint8 [N, L], attribute `names` (L strings)
 *   /patient_id  string [N]
 *   /image_name  string [N]
 *   /split       uint8 [N] optional (0 train, 1 val, 2 test)
 *   /masks       uint8 [N, L, H, W] optional (lesion masks, phantom data)
 * Strings may be variable-length (as h5py writes them) or fixed-length.
 */
#ifndef THORAX_DATASET_H
#define THORAX_DATASET_H

#include <stdint.h>
#include "thorax/dist.h"
#include "thorax/error.h"
#include "thorax/image.h"

/* Limits of a dataset file, checked when it is opened and when one is
 * written, so that a damaged or hostile file (whose shapes cost nothing to
 * declare: unwritten chunks take no space) fails naming the file, the
 * dataset and the limit, before any memory is allocated for it:
 *   TH_DATASET_MAX_IMAGES  rows of /images (and of every other dataset);
 *   TH_DATASET_MAX_LABELS  label columns, the most a run can train on
 *                          (TH_MAX_LABELS, TH_INGEST_MAX_LABELS);
 *   TH_IMAGE_MAX_SIDE      image height and width, as for ingested PNGs;
 *   TH_DATASET_MAX_STRING  bytes of one label name, patient ID or image name
 *                          (the CSV field limit, TH_CSV_MAX_FIELD). */
#define TH_DATASET_MAX_IMAGES (1L << 28)
#define TH_DATASET_MAX_LABELS 256
#define TH_DATASET_MAX_STRING 4096

typedef struct th_dataset {
    char path[1024];
    int64_t file;           /* hid_t of the open file */
    int64_t images;         /* hid_t of /images */
    int n, h, w;            /* images and their size */
    int n_labels;
    char **label_names;     /* [n_labels] */
    uint8_t *labels;        /* [n, n_labels] */
    char **patient_id;      /* [n] */
    char **image_name;      /* [n] */
    uint8_t *split;         /* [n], or NULL when the file defines none */
    int has_masks;
} th_dataset;

/* Opens path on every rank of comm with the MPI-IO driver (collective). Rank 0
 * reads the index (labels, names, patient IDs, split) and broadcasts it, so
 * every rank has the whole index afterwards. Errors name the file and the
 * missing or malformed dataset; every rank returns the same status. */
int th_dataset_open(th_dataset *ds, const char *path, th_comm comm, th_err *err);

/* Reads images idx[0..count) (any order, any rows) into out [count, H, W]
 * with independent MPI-IO reads of this rank only. */
int th_dataset_read_images(th_dataset *ds, const int *idx, int count, uint8_t *out, th_err *err);

/* A second, serial handle on a dataset's /images (the sec2 driver: no MPI
 * calls), for a worker thread that streams training images while the main
 * thread runs collectives. The HDF5 library is not thread-safe: the caller
 * keeps the main thread out of HDF5 while the worker reads. */
typedef struct th_image_reader {
    char path[1024];
    int64_t file, images;
    int n, h, w;
} th_image_reader;

int th_image_reader_open(th_image_reader *r, const th_dataset *ds, th_err *err);
int th_image_reader_read(th_image_reader *r, const int *idx, int count, uint8_t *out, th_err *err);
void th_image_reader_close(th_image_reader *r);

/* Reads the masks of image i: out [n_labels, H, W]. */
int th_dataset_read_masks(th_dataset *ds, int i, uint8_t *out, th_err *err);

/* Index of the label with that name, or -1. */
int th_dataset_label_index(const th_dataset *ds, const char *name);

void th_dataset_close(th_dataset *ds);

/* --- Writing (one process) ------------------------------------------------
 * The file is written as `<path>.tmp` and renamed onto path by
 * th_dataset_writer_finish, so a killed writer never leaves a half file. */
typedef struct th_dataset_writer {
    char path[1024], tmp_path[1040];
    int64_t file, images, labels, masks;
    int n, h, w, n_labels, with_masks, with_split;
    char **patient_id, **image_name;  /* copies, written at finish */
    uint8_t *split;
} th_dataset_writer;

int th_dataset_writer_create(th_dataset_writer *wr, const char *path, int n, int h, int w,
                             int n_labels, const char *const *label_names,
                             int with_masks, int with_split, th_err *err);
/* Writes row i: img [H, W], labels [n_labels], masks [n_labels, H, W] (NULL
 * when the file has none), split (ignored when the file has none). */
int th_dataset_writer_put(th_dataset_writer *wr, int i, const uint8_t *img, const uint8_t *labels,
                          const char *patient_id, const char *image_name,
                          const uint8_t *masks, int split, th_err *err);
int th_dataset_writer_finish(th_dataset_writer *wr, th_err *err);
/* Closes and removes the temporary file (after an error). */
void th_dataset_writer_abort(th_dataset_writer *wr);

#endif

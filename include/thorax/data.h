/* data.h - the images: the HDF5 dataset file, PNG decoding, label CSVs,
 * patient splits and shards, augmentation and the network's input, ingest
 * and the phantom.
 *
 *   th_dataset ds;
 *   th_dataset_open(&ds, "kermany224.h5", comm, &err);   // rank 0 reads the index, all get it
 *   th_dataset_read_images(&ds, rows, n, pixels, &err);  // uint8 [n, H, W]
 *   th_input_make(&in, pixels, NULL, NULL, n, epoch, x); // -> float [n, 1, H, W], augmented
 *   th_dataset_close(&ds);
 *
 * Needs HDF5 (parallel: the file is opened with MPI-IO through thorax/dist.h),
 * libpng and util; never the network (nn) or the configuration (config).
 */
#ifndef THORAX_DATA_H
#define THORAX_DATA_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>
#include "thorax/util.h"
#include "thorax/dist.h"

/* ------------------------------------------------------------------------- */
/* The HDF5 steps that Thorax's files share: the dataset file, the
 * checkpoints, cam/maps.h5.
 *
 * Part of data, the module that owns HDF5; train (checkpoints) and eval
 * (CAM maps) build on it. Each helper does one step the same way everywhere,
 * so that a string is always variable-length UTF-8, a row is always one
 * hyperslab of the leading dimension, and a file always takes its name only
 * once it is complete on disk. Creation properties are HDF5's defaults unless
 * asked otherwise, so files written through here are those written before.
 *
 * Functions return 0 (or a valid identifier) on success and -1 on failure;
 * HDF5 says no more than "failed", so those that can name a cause take a
 * th_err, and the others leave the message (naming the file and the dataset)
 * to the caller. Identifiers returned are the caller's to close.
 */
/* Switches off HDF5's printing of its error stack: library code never
 * prints, and our messages name the file and the dataset instead. */
void th_h5_quiet(void);

/* The string type of every string Thorax writes: variable-length UTF-8 (as
 * h5py writes str). */
hid_t th_h5_utf8(void);

/* Creates dataset name [dims[0], ..., dims[rank - 1]] of type under loc.
 * chunk [rank] or NULL (contiguous); shuffle and deflate (a gzip level, 0 for
 * none) apply to chunked datasets, in that order. */
hid_t th_h5_create(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims, const hsize_t *chunk,
                   int shuffle, int deflate);

/* Creates a contiguous dataset name [dims] of file_type and writes all of
 * data (mem_type) into it. */
int th_h5_write_all(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, int rank, const hsize_t *dims,
                    const void *data);

/* Reads the whole dataset name under loc into out (mem_type). */
int th_h5_read_all(hid_t loc, const char *name, hid_t mem_type, void *out);

/* Writes row i of dataset d [n, ...] (rank 1 to 4) from data laid out as one
 * row [...]. */
int th_h5_write_row(hid_t d, hid_t mem_type, hsize_t i, const void *data);

/* Reads rows [first, first + count) of dataset d [n, ...] (rank 1 to 4) into
 * out [count, ...]. */
int th_h5_read_rows(hid_t d, hid_t mem_type, hsize_t first, hsize_t count, void *out);

/* The shape of dataset d into dims [max_rank]: returns its rank, or -1 if it
 * cannot be read or has more than max_rank dimensions. */
int th_h5_dims(hid_t d, int max_rank, hsize_t *dims);

/* Writes s [n] as UTF-8 strings: dataset name of loc, or (is_attr) its
 * attribute name. */
int th_h5_write_strings(hid_t loc, const char *name, int is_attr, size_t n, const char *const *s);

/* A scalar attribute of obj: value (mem_type) stored as file_type. */
int th_h5_write_attr(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, const void *value);
int th_h5_write_attr_string(hid_t obj, const char *name, const char *value);

/* Reads attribute name of obj into value (mem_type); -1 also when absent. */
int th_h5_read_attr(hid_t obj, const char *name, hid_t mem_type, void *value);

/* --- Files from elsewhere: data, never pointers -------------------------
 * HDF5 lets a file point outside itself: an external link names an object
 * of another file, external storage keeps a dataset's values in any other
 * file (H5Pset_external), a virtual dataset maps other files' datasets, and
 * a filter HDF5 lacks is loaded as a plugin. A dataset file, checkpoint or
 * file of weights may come from anyone, and reading one that points outside
 * itself would read what it points to (/etc/shadow as readily as images).
 * So every HDF5 file Thorax reads is opened read-only and walked before
 * anything of it is read: every link of the file, to any depth. An external
 * or user-defined link, external storage, a virtual dataset or a filter that
 * is not one of HDF5's own is refused, the error naming the file and the
 * link or dataset; soft links stay inside the file and are allowed. */

/* The walk alone, on a file already open (the dataset file, opened with
 * MPI-IO by every rank): 0, or -1 with err naming path and the culprit. */
int th_h5_check_contained(hid_t file, const char *path, th_err *err);

/* Opens path read-only (HDF5's default driver) and walks it: the file, or -1
 * with err saying why ("cannot open x.h5: No such file or directory", "x.h5
 * is corrupt or truncated: not a readable HDF5 file", or the walk's). */
hid_t th_h5_open(const char *path, th_err *err);

/* --- Files that appear whole ---------------------------------------------
 * A file is written as tmp_path (path + ".tmp") and takes path's name only
 * when complete: a killed writer never leaves a half file under the real
 * name. */

/* Creates (truncating) tmp_path with Thorax's write driver (h5write.c:
 * POSIX I/O that keeps a failed write from HDF5, which does not survive one,
 * and remembers its errno for th_h5_flush). Fails naming the system's reason
 * (HDF5 would only say "unable to create file"), leaving no file of its own
 * behind. */
hid_t th_h5_create_tmp(const char *tmp_path, th_err *err);

/* Flushes and closes file (always: file is closed on return), syncs
 * tmp_path to disk and renames it onto path, so that a crash after the
 * rename cannot leave a complete-looking but empty file. On failure tmp_path
 * is left for the caller to remove. */
int th_h5_commit(hid_t file, const char *tmp_path, const char *path, th_err *err);

/* Writes out everything file holds, its open datasets' chunks included, so
 * that closing them writes nothing more; fails naming tmp_path and the
 * system's reason (No space left on device) if any write to the file has
 * failed. th_h5_commit starts with it; a writer calls it before closing its
 * datasets. */
int th_h5_flush(hid_t file, const char *tmp_path, th_err *err);

/* The file access list of that driver (the caller closes it), and the errno
 * of the first write that failed on file (0: none, or another driver). */
hid_t th_h5_write_fapl(void);
int th_h5_write_error(hid_t file);

/* ------------------------------------------------------------------------- */
/* Reading X-ray images from PNG files and resizing them.
 *
 * Every image becomes 8-bit luminance, the one channel the networks see:
 *   - gray is kept; RGB (and palette) becomes Y = 0.299 R + 0.587 G + 0.114 B
 *     (ITU-R BT.601), rounded to nearest;
 *   - 16-bit samples are reduced to 8 bits by v * 255 / 65535, rounded, after
 *     the luminance, so there is one rounding only. A 16-bit file that keeps
 *     12-bit data in the low bits (not the PNG convention) comes out dark:
 *     window it before ingesting;
 *   - alpha is ignored, not composited: radiographs have no transparency, and
 *     the RGBA files seen in the wild are opaque exports;
 *   - gamma and colour-profile chunks are ignored: the stored values are the
 *     detector's, and that is what a model trains on.
 */
/* Larger sides are refused before any pixel memory is allocated, so a
 * damaged or hostile header cannot ask for gigabytes: "x.png: 9000x300
 * pixels is larger than the limit of 8192 pixels a side". Twice the largest
 * detector (about 4300 pixels), and the decoded image then stays under 64 MiB
 * (512 MiB of 16-bit RGBA samples at most for an interlaced file, which is
 * the one kind decoded whole). */
#define TH_IMAGE_MAX_SIDE 8192

typedef struct th_image {
    int w, h;
    uint8_t *px;        /* [h, w] luminance, malloc'd */
    int depth;          /* bits per sample in the file (8 or 16; lower depths read as 8) */
    int channels;       /* samples per pixel in the file: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
} th_image;

/* Width and height from the PNG header alone (the first 24 bytes): a cheap
 * check that the file exists and is a PNG. Errors name the file: missing,
 * unreadable, "not a PNG file" (a JPEG is recognised and named as such). */
int th_image_png_size(const char *path, int *w, int *h, th_err *err);

/* Decodes a PNG file of any bit depth and colour type into luminance.
 * Truncated or corrupt files are errors naming the file and what is wrong.
 * On failure img is left empty. */
int th_image_read_png(const char *path, th_image *img, th_err *err);

/* The same from a PNG file's bytes data[0..len) in memory; name only names
 * it in errors. */
int th_image_decode_png(const void *data, size_t len, const char *name, th_image *img, th_err *err);

void th_image_free(th_image *img);

/* Any supported image file, told apart by its first bytes, not its name:
 * PNG (above) or JPEG (below). Other files are errors naming the file ("not
 * a PNG or JPEG file", "empty file"). th_image_size reads the header alone
 * for PNG; th_image_read decodes; th_image_decode takes the bytes. */
int th_image_size(const char *path, int *w, int *h, th_err *err);
int th_image_read(const char *path, th_image *img, th_err *err);
int th_image_decode(const void *data, size_t len, const char *name, th_image *img, th_err *err);

/* th_image_read, and DICOM too (the DICM magic or a .dcm name), read as
 * ingest reads it: window dicom_window (0 the file's first window, as
 * ingest's default; TH_INGEST_DICOM_WINDOW_NONE min-max), MONOCHROME1
 * inverted, 8-bit grey. For files outside a dataset (thorax predict). */
int th_image_read_any(const char *path, int dicom_window, th_image *img, th_err *err);

/* 1 when path looks like an image th_image_read_any takes, by its first
 * bytes (PNG, JPEG, DICOM magic) or its name (.png, .jpg, .jpeg, .dcm, any
 * case), else 0: which files of a directory are images. A damaged file with
 * an image's name counts, so that reading it reports the damage rather than
 * leaving it out silently. */
int th_image_is_image_file(const char *path);

/* JPEG (libjpeg-turbo): baseline, progressive or arithmetic-coded, 8-bit,
 * gray or colour (YCbCr or RGB) at any subsampling. Gray keeps its samples;
 * colour is decoded to RGB (libjpeg's default accurate integer IDCT and
 * smooth chroma upsampling, as PIL decodes) and becomes luminance exactly as
 * PNG colour does. Refused by name: "x.jpg: CMYK JPEG is not supported"
 * (also YCCK), "x.jpg: 12-bit JPEG is not supported". A truncated file or
 * corrupt data is "x.jpg: damaged JPEG: <libjpeg's message>": libjpeg's
 * warnings are errors, since it would fill the rest with grey. depth is 8
 * and channels 1 (gray) or 3 (colour). */
int th_image_decode_jpeg(const void *data, size_t len, const char *name, th_image *img, th_err *err);
int th_image_jpeg_size_mem(const void *data, size_t len, const char *name, int *w, int *h, th_err *err);

/* Resizes src [sh, sw] into dst [dh, dw], each axis on its own:
 *   - shrinking: area averaging, the exact mean of the source area under each
 *     output pixel, partly covered source pixels weighted by their coverage;
 *   - growing: bilinear between pixel centres (half-pixel alignment, as PIL
 *     and OpenCV), the edge pixels repeated beyond the last centre;
 *   - same size: a copy.
 * So 1024x768 to 256x256 averages on both axes, and 200x300 to 256x256 grows
 * one axis and averages the other. The aspect ratio is not kept: callers that
 * want a square crop must crop first. Results are rounded to nearest. */
int th_image_resize(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh, th_err *err);

/* ------------------------------------------------------------------------- */
/* Reading a CSV file with a header row (RFC 4180).
 *
 * Label files come from spreadsheets, pandas and hand edits, so the reader
 * takes what those write: fields in double quotes with "" for a quote, commas
 * and line breaks inside quotes, CRLF or LF line ends, a UTF-8 byte-order
 * mark. It keeps every row as it is: a row with too few or too many fields is
 * returned with its own count, because what to do with it is the caller's
 * business (ingest can skip it and say so).
 *
 * Limits, each an error naming file:line rather than a silent cut or an
 * overflow: TH_CSV_MAX_BYTES per file, TH_CSV_MAX_FIELD bytes per field,
 * TH_CSV_MAX_COLS fields per row, TH_CSV_MAX_ROWS rows. A quote that is never
 * closed, text after a closing quote, and a NUL byte are errors too. A quote
 * inside an unquoted field is kept as text, as Python's csv module does.
 * Empty lines are skipped.
 */
#define TH_CSV_MAX_BYTES (1L << 30)
#define TH_CSV_MAX_FIELD 4096
#define TH_CSV_MAX_COLS 1024
#define TH_CSV_MAX_ROWS 10000000

typedef struct th_csv_row {
    int line;           /* 1-based line of the file where the row starts */
    int n_fields;
    char **fields;      /* [n_fields], NUL-terminated, quotes removed */
} th_csv_row;

typedef struct th_csv {
    char path[1024];
    th_csv_row header;  /* the first non-empty row */
    th_csv_row *rows;   /* the data rows after it */
    int n_rows;
    char *text;         /* storage of every field */
    char **fields;      /* storage of every row's field pointers */
} th_csv;

/* Reads and parses the whole file. A file without a header row is an error.
 * On failure csv is left empty (th_csv_free is still safe). */
int th_csv_read(th_csv *csv, const char *path, th_err *err);

/* Parses text[0..len) as if read from path (which only names it in errors).
 * Takes ownership of text, a malloc'd buffer of len + 1 bytes, even on failure. */
int th_csv_parse(th_csv *csv, const char *path, char *text, size_t len, th_err *err);

void th_csv_free(th_csv *csv);

/* ------------------------------------------------------------------------- */
/* Patient-level train/val/test splits and rank shards by patient.
 *
 * No patient ever has images in two splits: the unit of every split and of
 * every shard is the patient, never the image.
 */
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

/* ------------------------------------------------------------------------- */
/* Training-time augmentation of chest radiographs.
 *
 * One image's transform (horizontal flip, rotation, scale and shift about the
 * image centre, then brightness and contrast) is drawn from an RNG seeded with
 * (run seed, epoch, dataset row) and nothing else, so an image is augmented
 * the same way whichever rank holds it, in whatever order, and a resumed run
 * sees the same augmentations as an uninterrupted one.
 *
 * The geometric part is one affine warp, applied by inverse mapping with
 * bilinear sampling: every output pixel looks up where it came from in the
 * source. Pixel (x, y) is the point at its centre, x = column, y = row (down),
 * and the centre of rotation and scale is ((w - 1) / 2, (h - 1) / 2), so a
 * flip, a 90-degree turn of a square image and an integer shift move pixel
 * centres onto pixel centres and reproduce the source values exactly.
 *
 * The output is float intensity in [0, 255], not normalised: the caller
 * normalises afterwards exactly as for an unaugmented image.
 *
 * This module does not include config.h; th_plan_input (src/train/plan.c)
 * fills th_augment_params from cfg->data.augment, which has the same fields.
 */
/* What to draw from. All zero except scale_lo = scale_hi = 1 is no
 * augmentation (every drawn transform is the identity). */
typedef struct th_augment_params {
    int hflip;          /* flip with probability 0.5 */
    float rotate_deg;   /* angle uniform in [-rotate_deg, rotate_deg] degrees */
    float shift;        /* dx, dy uniform in [-shift, shift], fractions of w and h */
    float scale_lo;     /* scale uniform in [scale_lo, scale_hi], > 0 */
    float scale_hi;
    float brightness;   /* offset uniform in [-brightness, brightness], fractions of 255 */
    float contrast;     /* factor uniform in [1 - contrast, 1 + contrast], floored at 0 */
} th_augment_params;

/* One image's transform. Set it with th_augment_init (or th_augment_draw),
 * which also fills the derived fields; do not write the fields directly. */
typedef struct th_augment {
    int flip;           /* 1: mirror left-right (before rotation and scale) */
    float angle_deg;    /* counter-clockwise as displayed (rows downwards) */
    float dx, dy;       /* shift right and down, fractions of w and h */
    float scale;        /* > 1 magnifies */
    float brightness;   /* added after contrast, fraction of 255 */
    float contrast;     /* multiplies the distance from mid-grey 127.5 */
    /* Derived by th_augment_init. */
    double inv[4];      /* 2x2 row-major: source offset from centre = inv * (output offset - shift) */
    int warp;           /* 0 when the geometric part is the identity */
} th_augment;

/* The RNG stream of (epoch, row): 0xA << 60 | epoch << 40 | row, a tag no
 * other Thorax stream uses in its top four bits, then 20 bits of epoch and 40
 * of row, so distinct (epoch, row) with 0 <= epoch < 2^20 and
 * 0 <= row < 2^40 never share a stream. Out-of-range values are masked
 * (they wrap onto other (epoch, row) pairs, but never onto other users). */
uint64_t th_augment_stream(int epoch, int64_t row);

/* Sets every field of t and derives the sampling matrix. contrast below 0 is
 * taken as 0; scale must be > 0. */
void th_augment_init(th_augment *t, int flip, float angle_deg, float dx, float dy, float scale,
                     float brightness, float contrast);

/* The identity transform. */
void th_augment_identity(th_augment *t);

/* Draws the transform of dataset row `row` in epoch `epoch` (0-based) from
 * th_rng seeded with (seed, th_augment_stream(epoch, row)). Seven uniforms
 * are always drawn, in the order flip, angle, dx, dy, scale, brightness,
 * contrast, whether or not each is enabled, so switching one augmentation on
 * or widening its range leaves the values of the others unchanged. */
void th_augment_draw(const th_augment_params *p, uint64_t seed, int epoch, int64_t row, th_augment *t);

/* 1 when t changes nothing (its output is the source converted to float). */
int th_augment_is_identity(const th_augment *t);

/* src [h, w] uint8 -> dst [h, w] float in [0, 255]:
 *   dst(x, y) = clamp(contrast * (S(x, y) - 127.5) + 127.5 + 255 * brightness, 0, 255)
 * where S samples src bilinearly at the inverse-mapped point, replicating the
 * edge pixels beyond the border. No allocation; src and dst must not overlap. */
void th_augment_apply(const th_augment *t, const uint8_t *src, int h, int w, float *dst);

/* ------------------------------------------------------------------------- */
/* The dataset file (HDF5), read with parallel HDF5 and written serially.
 *
 * Layout (DESIGN.md):
 *   /images      uint8 [N, H, W], chunked one image per chunk
 *   /labels      uint8 [N, L], attribute `names` (L strings); 0, 1, or
 *                TH_LABEL_UNKNOWN (255) where the label is not known
 *   /patient_id  string [N]
 *   /image_name  string [N]
 *   /split       uint8 [N] optional (0 train, 1 val, 2 test)
 *   /masks       uint8 [N, L, H, W] optional (lesion masks, phantom data)
 * Strings may be variable-length (as h5py writes them) or fixed-length.
 */
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

/* The SHA-256 of the dataset's index, as 64 hex digits: over, in order,
 * every /image_name followed by a NUL byte, every /patient_id followed by a
 * NUL byte (image order), every label name of /labels' `names` followed by a
 * NUL byte, then /labels' bytes [N, L] row-major. The images are not hashed:
 * it names the index (which images, whose, which findings), and stays cheap
 * for a file of any size. */
void th_dataset_index_sha256(const th_dataset *ds, char hex[65]);

/* The data fingerprint: what pins a run to its data. Digests (SHA-256, 64
 * hex digits) of each part of the file, so that a mismatch can say which
 * part changed:
 *   names     every /image_name followed by a NUL byte, in row order;
 *   patients  every /patient_id the same way;
 *   labels    every label name followed by a NUL byte, then /labels [N, L];
 *   pixels    the per-image digests [N, TH_IMAGE_DIGEST] in row order, each
 *             the SHA-256 of that image's pixels [H, W].
 * Recorded in every checkpoint (th_train_state.data_fingerprint) and run.json;
 * checked when a run resumes and when eval and cam read the run's file.
 * Every pixel is read: see fingerprint.c for the cost. */
#define TH_IMAGE_DIGEST 32
/* One image's digest: the SHA-256 of its n pixel bytes, raw. The pixel part
 * of the fingerprint and the duplicate check's identity are this one. */
void th_image_digest(const uint8_t *px, size_t n, uint8_t out[TH_IMAGE_DIGEST]);
#define TH_FINGERPRINT_TEXT 320
typedef struct th_data_fingerprint {
    long images;
    char names[65], patients[65], labels[65], pixels[65];
} th_data_fingerprint;

/* Collective over comm (the comm ds was opened with): each rank reads and
 * hashes a contiguous share of the rows; every rank gets fp. image_digest
 * (may be NULL; read on rank 0 only) receives the per-image digests
 * [N, TH_IMAGE_DIGEST] in row order on rank 0. */
int th_dataset_fingerprint(th_dataset *ds, th_comm comm, th_data_fingerprint *fp, uint8_t *image_digest,
                           th_err *err);

/* fp as one line "images=N names=<hex> patients=<hex> labels=<hex>
 * pixels=<hex>" (under TH_FINGERPRINT_TEXT bytes), and back: parse returns
 * -1 for anything else. */
void th_fingerprint_text(const th_data_fingerprint *fp, char *out, size_t cap);
int th_fingerprint_parse(const char *text, th_data_fingerprint *fp);

/* 0 when now is was; otherwise an error naming path and what changed: the
 * image count ("it holds 118 images, the run's file held 120"), or which of
 * image names, patient IDs, labels and pixels differ. */
int th_fingerprint_match(const th_data_fingerprint *was, const th_data_fingerprint *now, const char *path,
                         th_err *err);

/* Per-image metadata: /meta/<name> string datasets [N] (extra columns of
 * an ingested CSV, e.g. NIH's `View Position`). Collective over comm (the
 * comm ds was opened with): rank 0 reads, every rank receives *values [N]
 * in image order, one malloc'd block (free(*values) frees all). A missing
 * name is an error naming it and listing the file's /meta names. */
int th_dataset_read_meta(const th_dataset *ds, const char *name, th_comm comm, char ***values, th_err *err);

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

/* What a split holds, per split (TH_SPLIT_TRAIN, VAL, TEST): patients,
 * images, and positive images (label value 1; unknown 255 is not counted)
 * of each of the n_labels columns label_col[] of ds. A patient in two splits
 * counts in both. pos [3, n_labels]. Returns -1 when memory runs out. */
typedef struct th_split_tally {
    long patients[3], images[3];
    long *pos;
} th_split_tally;
int th_split_count(const th_dataset *ds, const int *label_col, int n_labels, const uint8_t *split,
                   th_split_tally *t, th_err *err);
void th_split_tally_free(th_split_tally *t);

/* The same picture twice: images of a dataset whose pixels are identical
 * (the SHA-256 of the stored image) or nearly so (a perceptual hash within
 * max_distance bits), whatever their names and patients. Two names of one
 * radiograph in two splits are a leak no patient ID shows (PneumoniaMNIST's
 * official train and val share 8 such groups).
 *
 * The perceptual hash is 64 bits: the image resized to 32x32 (th_image_resize),
 * its 2-D DCT-II, the coefficients (u, v) in [1, 8] x [1, 8] (the lowest
 * frequencies without the mean), each bit set where its coefficient is above
 * their median. Resizing, re-encoding and mild noise change a few bits;
 * distinct radiographs differ in about half. Groups are the connected
 * components of "identical or within max_distance" (so a chain of near
 * copies is one group); max_distance < 0 finds identical images only.
 * Every pair is compared: about a second per 50,000 images, after reading
 * them once through a serial handle (th_image_reader: one rank alone). */
typedef struct th_dups {
    int n;              /* images of the dataset */
    int n_groups;       /* groups of two or more images */
    int *group;         /* [n] the group of each image, numbered by its earliest row; -1 alone */
    uint8_t *exact;     /* [n_groups] 1 when every member has the same pixels */
    uint64_t *phash;    /* [n] each image's perceptual hash */
} th_dups;
int th_dups_find(const th_dataset *ds, int max_distance, th_dups *d, th_err *err);
void th_dups_free(th_dups *d);

/* --- Writing (one process) ------------------------------------------------
 * The file is written as `<path>.tmp` and renamed onto path by
 * th_dataset_writer_finish, so a killed writer never leaves a half file. */
typedef struct th_dataset_writer {
    char path[1024], tmp_path[1040];
    int64_t file, images, labels, masks;
    int n, h, w, n_labels, with_masks, with_split;
    char **patient_id, **image_name;  /* copies, written at finish */
    uint8_t *split;
    double images_ratio;    /* set by finish: /images' raw bytes over its bytes on disk */
} th_dataset_writer;

/* with_masks: 0, or TH_DATASET_MASKS (1) to write /masks, or-ed with
 * TH_DATASET_COMPRESS to store /images with shuffle + gzip level 4 in its
 * per-image chunks (HDF5 decompresses on reading; readers do not change). */
#define TH_DATASET_MASKS 1
#define TH_DATASET_COMPRESS 2
int th_dataset_writer_create(th_dataset_writer *wr, const char *path, int n, int h, int w,
                             int n_labels, const char *const *label_names,
                             int with_masks, int with_split, th_err *err);
/* Writes row i: img [H, W], labels [n_labels], masks [n_labels, H, W] (NULL
 * when the file has none), split (ignored when the file has none). */
int th_dataset_writer_put(th_dataset_writer *wr, int i, const uint8_t *img, const uint8_t *labels,
                          const char *patient_id, const char *image_name,
                          const uint8_t *masks, int split, th_err *err);
/* /meta/<name>: one string per row (variable-length UTF-8), values [n] in
 * row order; a '/' in name becomes '_'. Any time before finish. */
int th_dataset_writer_meta(th_dataset_writer *wr, const char *name, const char *const *values, th_err *err);
int th_dataset_writer_finish(th_dataset_writer *wr, th_err *err);
/* Closes and removes the temporary file (after an error). */
void th_dataset_writer_abort(th_dataset_writer *wr);

/* ------------------------------------------------------------------------- */
/* The images of one split that one rank handles, in memory.
 *
 * Rank 0 assigns every image an owner rank within its split (whole patients
 * per rank, th_shard_by_patient); each rank then reads its own images with
 * parallel HDF5. When ranks send results back to rank 0 with a gather, they
 * arrive in rank order: th_shard_gather_order says which dataset row each
 * gathered row is.
 */
typedef struct th_shard {
    int n;
    int *rows;          /* [n] rows of the dataset file, ascending */
    uint8_t *img;       /* [n, H, W], or NULL when streamed */
    uint8_t *y;         /* [n, n_labels]: the run's labels, in its order */
} th_shard;

/* Loads the rows with split[i] == which and owner[i] == rank, their labels
 * label_col[0..n_labels) (columns of ds), and, with images set, their images
 * (otherwise img is NULL: the caller streams them). Independent reads: not
 * collective. */
int th_shard_load(th_shard *s, th_dataset *ds, const uint8_t *split, const int *owner, int which, int rank,
                  const int *label_col, int n_labels, int images, th_err *err);
void th_shard_free(th_shard *s);

/* Dataset rows of split `which` in the order a gather over n_ranks ranks
 * returns them (rank 0's rows, then rank 1's, ...). Returns their number. */
int th_shard_gather_order(int n, const uint8_t *split, const int *owner, int which, int n_ranks, int *order);

/* ------------------------------------------------------------------------- */
/* From stored uint8 images to the network's input.
 *
 * Training images are warped by their augmentation transform (a function of
 * seed, epoch and dataset row) and normalised; evaluation images are only
 * normalised, with the same statistics: those of the training split (stored in
 * the checkpoint) or of the image itself, never of a batch.
 */
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

/* ------------------------------------------------------------------------- */
/* A label CSV and a folder of PNG images into one dataset file.
 *
 * Three CSV layouts, told apart by the header (or forced):
 *   common   `image,patient_id,<0/1 label columns>[,split]`, the layout of
 *            the shared data sets;
 *   nih      NIH ChestX-ray14 `Data_Entry_2017.csv`: `Image Index`,
 *            `Finding Labels` (findings joined by `|`, or `No Finding`),
 *            `Patient ID`; other columns are ignored. The labels are the 14
 *            findings in the order of th_ingest_nih_findings. NIH patient IDs
 *            are numbers (`3`); they are written as the 8-digit prefix of the
 *            image names (`00000003`), so that both layouts of the same
 *            images give the same IDs;
 *   columns  one column per label anywhere in the header, with the image and
 *            patient columns found by name: image, Image, Image Index,
 *            image_name, filename, file, path; patient_id, PatientId,
 *            Patient ID, patient. Every other named column is a label, unless
 *            a label list picks some;
 *   chexpert CheXpert's CSV (th_ingest_chexpert_patient, _meta below):
 *            `Path` is the image, its patientNNNNN directory the patient,
 *            Sex/Age/Frontal/Lateral/AP/PA metadata, the rest labels;
 *            frontal_only keeps the Frontal rows.
 * A label cell is 0, 1, blank or -1 (th_ingest_label_value).
 * In every layout a `split` column (train/val/valid/validation/test or
 * 0/1/2) becomes /split. Without a patient column the ID comes from the image
 * name (th_ingest_patient_from_name); with patient_from_file a name without
 * one is its own patient (the image's name, as given).
 *
 * The folders layout has no CSV (csv_path NULL): images_dir holds
 *   [train|val|test/]CLASS/image
 * Every class folder name is a label (byte order), except a normal folder
 * (NORMAL, No Finding, No_Finding, any case), whose images are negative for
 * every label; an image is positive for its own folder's label only. When
 * every top-level folder is a split name, they are that level and give
 * /split. Image names are the paths under images_dir (train/NORMAL/x.jpeg),
 * listed in byte order; errors and the skipped report give a listing line
 * (line 2 is the first image) with images_dir in the place of the CSV file.
 * Hidden entries (.DS_Store) are ignored; a file beside the class folders or
 * a folder inside one is an error naming it.
 *
 * Images are resolved under images_dir, decoded to 8-bit luminance
 * (thorax/data.h) and resized to size x size (area averaging when
 * shrinking, bilinear when growing, the aspect ratio squashed, as the
 * kermany source did), or kept at their own size when every image has the
 * same one.
 *
 * Bad rows - a wrong number of fields, a missing, non-PNG or damaged image,
 * a label that is not 0/1/-1/blank, an unknown finding or split, no patient ID, a
 * duplicate image name, a file another row names already under another
 * spelling (a.png, ./a.png, a link: the same device and inode), an image name
 * that is absolute or climbs out of images_dir with '..' (unless
 * allow_outside_images) - are errors naming the CSV file and line and the
 * image. With skip_bad they are left out instead and listed in the report
 * `<out>.skipped.csv` (`line,image,reason`). Both files are written under a
 * temporary name and renamed when complete; on failure neither is left.
 *
 * Work happens in passes: the CSV and every image header are checked first
 * (cheap, and most bad input is caught before any decoding); then each image
 * is decoded once and its pixels go to a scratch file next to the output
 * (unlinked as soon as it is open, so it never outlives the process); then
 * the dataset, whose row count is only known now, is written from it.
 *
 * DICOM files (the DICM magic, or a .dcm name) are read through DCMTK
 * (src/data/dicom.h): modality LUT, then the window dicom_window, MONOCHROME1
 * inverted, to 8-bit grey. Without a patient column a DICOM file's patient is
 * its PatientID; its PatientSex, PatientAge, ViewPosition and Manufacturer
 * become /meta/<tag> ("" for the rows that are not DICOM) unless the CSV has
 * a column of that name. With dicom_dir, the tree is walked for DICOM files
 * and each row names one by its base name, with or without .dcm
 * (src/data/dicom_dir.h); a file no row names is unlabelled: an error, or
 * with skip_bad left out and listed in the report (its line field empty).
 */
#define TH_INGEST_DICOM_WINDOW_NONE (-1)    /* dicom_window: min-max over each image */
#define TH_INGEST_MAX_LABELS 256
#define TH_INGEST_MAX_NAME 64       /* label name length, with the NUL */
#define TH_INGEST_N_NIH 14

extern const char *const th_ingest_nih_findings[TH_INGEST_N_NIH];

typedef enum {
    TH_INGEST_AUTO,
    TH_INGEST_COMMON,
    TH_INGEST_NIH,
    TH_INGEST_COLUMNS,
    TH_INGEST_CHEXPERT,
    TH_INGEST_FOLDERS
} th_ingest_format;

/* What a label cell of -1 (CheXpert's "uncertain") becomes: an error naming
 * --uncertain (the default: no silent choice), 1 (U-Ones), 0 (U-Zeros) or
 * TH_LABEL_UNKNOWN (U-Ignore), the policies of Irvin et al. 2019. */
typedef enum { TH_UNCERTAIN_REFUSE, TH_UNCERTAIN_ONES, TH_UNCERTAIN_ZEROS, TH_UNCERTAIN_IGNORE } th_ingest_uncertain;

typedef struct th_ingest_opts {
    const char *csv_path;
    const char *images_dir;         /* NULL: image names are paths as they are */
    const char *out_path;
    int size;                       /* output side S (S x S); 0 = the images' own size */
    const char *const *labels;      /* labels to keep, in this order; NULL = every label */
    int n_labels;
    int skip_bad;
    th_ingest_format format;
    th_ingest_uncertain uncertain;  /* a -1 label cell */
    int blank_zeros;                /* a blank label cell is 0; default TH_LABEL_UNKNOWN */
    int frontal_only;               /* chexpert: keep the rows whose Frontal/Lateral is Frontal */
    /* Lesion locations into /masks (th_lesions_load); NULL for none. */
    const char *boxes_path, *masks_dir, *rle_path;
    int compress;                   /* TH_DATASET_COMPRESS on /images */
    int patient_from_file;          /* an image name without a patient ID: the image is its own patient */
    int dicom_window;               /* DICOM VOI window: 0 the first, k the (k+1)-th, or TH_INGEST_DICOM_WINDOW_NONE */
    const char *dicom_dir;          /* instead of images_dir: rows name DICOM files anywhere in this tree */
    int allow_outside_images;       /* take image names that are absolute or climb out with '..' */
} th_ingest_opts;

typedef struct th_ingest_summary {
    th_ingest_format format;        /* the layout found (or forced) */
    int rows;                       /* data rows in the CSV */
    int images, patients, skipped;
    int h, w;
    int n_labels;
    char label_names[TH_INGEST_MAX_LABELS][TH_INGEST_MAX_NAME];
    int positives[TH_INGEST_MAX_LABELS];
    int unknown[TH_INGEST_MAX_LABELS];      /* images whose label is TH_LABEL_UNKNOWN */
    int has_split;
    int split_count[3];             /* train, val, test */
    char report_path[1040];         /* `<out>.skipped.csv` when skip_bad, else "" */
    int n_meta;                     /* extra CSV columns kept as /meta/<column> */
    int with_lesions;               /* images with a lesion in /masks (boxes, masks, RLE) */
    double images_ratio;            /* /images raw over stored bytes (1 uncompressed) */
    int patients_from_file;         /* rows whose patient is their image (patient_from_file) */
    int unlabeled;                  /* DICOM files under dicom_dir no row names (left out) */
} th_ingest_summary;

/* Called after each decoded image: done of total. */
typedef void (*th_ingest_progress_fn)(void *ctx, int done, int total);

int th_ingest_run(const th_ingest_opts *o, th_ingest_summary *sum, th_ingest_progress_fn progress, void *ctx,
                  th_err *err);

const char *th_ingest_format_name(th_ingest_format f);

/* "refuse", "ones", "zeros", "ignore"; th_ingest_uncertain_parse returns -1
 * for any other name. */
const char *th_ingest_uncertain_name(th_ingest_uncertain u);
int th_ingest_uncertain_parse(const char *s, th_ingest_uncertain *u);

/* One label cell: "0"/"0.0" -> 0, "1"/"1.0" -> 1, "-1"/"-1.0" by the
 * uncertain policy, "" -> 0 with blank_zeros else TH_LABEL_UNKNOWN. Writes
 * *v and returns 0; returns -1 for any other text, and -2 for a -1 under
 * TH_UNCERTAIN_REFUSE. */
int th_ingest_label_value(const char *s, th_ingest_uncertain u, int blank_zeros, uint8_t *v);

/* The CheXpert layout: `Path,Sex,Age,Frontal/Lateral,AP/PA,<14 labels>`.
 * The patient ID is the `patientNNNNN` directory of a path like
 * CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg; writes it
 * to out[n] and returns 0, or -1 when the path has none. */
int th_ingest_chexpert_patient(const char *path, char *out, size_t n);
/* Whether a header column is one of CheXpert's metadata columns (Sex, Age,
 * Frontal/Lateral, AP/PA), kept as /meta, never a label. */
int th_ingest_chexpert_meta(const char *column);

/* The patient ID in an image name (directory and extension ignored):
 *   NIH      `00000003_001.png`            -> `00000003`
 *   Kermany  `person100_bacteria_475.jpeg` -> `person100`
 *            `IM-0115-0001.jpeg`           -> `IM-0115`
 *            `NORMAL2-IM-0095-0001.jpeg`   -> `NORMAL2-IM-0095`
 *            `IM-0429-0001-0002.jpeg`      -> `IM-0429` (more image numbers)
 * Writes it to out[n] and returns 0, or returns -1 for any other name (no
 * guessing: a wrong ID would merge or split patients silently). */
int th_ingest_patient_from_name(const char *name, char *out, size_t n);

/* ------------------------------------------------------------------------- */
/* Lesion locations of real images, drawn into the dataset's /masks
 * [N, L, H, W] (0/1, the layout of the phantom's masks), so that `thorax cam`
 * plays the pointing game on them. Three sources, any together (a pixel is a
 * lesion when any source says so):
 *   boxes  NIH `BBox_List_2017.csv`: columns Image Index, Finding Label,
 *          x, y, w, h (the header `Image Index,Finding Label,Bbox [x,y,w,h]`;
 *          fields after the sixth ignored), the box in pixels of the original
 *          image, x right and y down from its top-left corner. Scaled to the
 *          stored size: pixel (col, row) is in the box when its centre
 *          (col + 0.5, row + 0.5) * original / stored lies in [x, x + w) x
 *          [y, y + h); clipped to the image. `Infiltrate` (the BBox file's
 *          spelling) is Infiltration. Boxes of labels not kept are ignored;
 *   masks  a folder of PNG masks named like the image (`<stem>` = the image
 *          name without folders and extension): `<stem>__<label>.png` is that
 *          label's mask, `<stem>.png` the mask of every label the image is
 *          positive for. The same size as the image; nonzero is lesion;
 *          resized like the image (area averaging) and kept where >= 128;
 *   rle    SIIM-ACR pneumothorax `train-rle.csv`: ImageId (the image's stem),
 *          EncodedPixels, one row per lesion, `-1` for none. The masks belong
 *          to the label Pneumothorax. EncodedPixels is SIIM's relative
 *          run-length code: pairs `start length` over the original image's
 *          pixels numbered column-major (p = col * height + row, 0-based);
 *          each start counts from the end of the previous run (the first from
 *          pixel 0). Decoded at the original size, then resized as a mask.
 * Image names are matched on their stem (boxes: the Image Index's). */
typedef struct th_lesions th_lesions;

/* Reads the sources (each NULL for none) for the labels label_names [L].
 * Errors name the file and line: a malformed row, a number that is not one,
 * a run-length code that is not pairs of integers; an RLE file without a
 * Pneumothorax label kept. *out is malloc'd; free with th_lesions_free. */
int th_lesions_load(th_lesions **out, const char *boxes_path, const char *masks_dir, const char *rle_path,
                    int n_labels, const char *const *label_names, th_err *err);

/* The masks of image `image` (a name of the label CSV) of original size
 * ow x oh, positive for labels [L] (0/1), into out [L, h, w] 0/1. Returns the
 * number of labels with a lesion drawn, or -1 with an error naming the file
 * (a damaged mask PNG, a mask of another size, a run past the last pixel). */
int th_lesions_draw(const th_lesions *l, const char *image, int ow, int oh, const uint8_t *labels, int h, int w,
                    uint8_t *out, th_err *err);

void th_lesions_free(th_lesions *l);

/* ------------------------------------------------------------------------- */
/* Synthetic chest radiographs with known findings and lesion masks.
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

/* ingest.h - a label CSV and a folder of PNG images into one dataset file.
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
 *            a label list picks some.
 * In every layout a `split` column (train/val/valid/validation/test or
 * 0/1/2) becomes /split. Without a patient column the ID comes from the image
 * name (th_ingest_patient_from_name).
 *
 * Images are resolved under images_dir, decoded to 8-bit luminance
 * (thorax/image.h) and resized to size x size (area averaging when
 * shrinking, bilinear when growing, the aspect ratio squashed, as the
 * kermany source did), or kept at their own size when every image has the
 * same one.
 *
 * Bad rows - a wrong number of fields, a missing, non-PNG or damaged image,
 * a label that is not 0/1, an unknown finding or split, no patient ID, a
 * duplicate image name - are errors naming the CSV file and line and the
 * image. With skip_bad they are left out instead and listed in the report
 * `<out>.skipped.csv` (`line,image,reason`). Both files are written under a
 * temporary name and renamed when complete; on failure neither is left.
 *
 * Work happens in passes: the CSV and every image header are checked first
 * (cheap, and most bad input is caught before any decoding); then each image
 * is decoded once and its pixels go to a scratch file next to the output
 * (unlinked as soon as it is open, so it never outlives the process); then
 * the dataset, whose row count is only known now, is written from it.
 */
#ifndef THORAX_INGEST_H
#define THORAX_INGEST_H

#include <stddef.h>
#include "thorax/error.h"

#define TH_INGEST_MAX_LABELS 256
#define TH_INGEST_MAX_NAME 64       /* label name length, with the NUL */
#define TH_INGEST_N_NIH 14

extern const char *const th_ingest_nih_findings[TH_INGEST_N_NIH];

typedef enum { TH_INGEST_AUTO, TH_INGEST_COMMON, TH_INGEST_NIH, TH_INGEST_COLUMNS } th_ingest_format;

typedef struct th_ingest_opts {
    const char *csv_path;
    const char *images_dir;         /* NULL: image names are paths as they are */
    const char *out_path;
    int size;                       /* output side S (S x S); 0 = the images' own size */
    const char *const *labels;      /* labels to keep, in this order; NULL = every label */
    int n_labels;
    int skip_bad;
    th_ingest_format format;
} th_ingest_opts;

typedef struct th_ingest_summary {
    th_ingest_format format;        /* the layout found (or forced) */
    int rows;                       /* data rows in the CSV */
    int images, patients, skipped;
    int h, w;
    int n_labels;
    char label_names[TH_INGEST_MAX_LABELS][TH_INGEST_MAX_NAME];
    int positives[TH_INGEST_MAX_LABELS];
    int has_split;
    int split_count[3];             /* train, val, test */
    char report_path[1040];         /* `<out>.skipped.csv` when skip_bad, else "" */
} th_ingest_summary;

/* Called after each decoded image: done of total. */
typedef void (*th_ingest_progress_fn)(void *ctx, int done, int total);

int th_ingest_run(const th_ingest_opts *o, th_ingest_summary *sum, th_ingest_progress_fn progress, void *ctx,
                  th_err *err);

const char *th_ingest_format_name(th_ingest_format f);

/* The patient ID in an image name (directory and extension ignored):
 *   NIH      `00000003_001.png`            -> `00000003`
 *   Kermany  `person100_bacteria_475.jpeg` -> `person100`
 *            `IM-0115-0001.jpeg`           -> `IM-0115`
 *            `NORMAL2-IM-0095-0001.jpeg`   -> `NORMAL2-IM-0095`
 *            `IM-0429-0001-0002.jpeg`      -> `IM-0429` (more image numbers)
 * Writes it to out[n] and returns 0, or returns -1 for any other name (no
 * guessing: a wrong ID would merge or split patients silently). */
int th_ingest_patient_from_name(const char *name, char *out, size_t n);

#endif

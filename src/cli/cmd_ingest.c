/* cmd_ingest.c - `thorax ingest`: a label CSV and PNG/JPEG images, or class
 * folders, into a dataset file.
 *
 * Parses the options, runs th_ingest_run with a progress line on stderr, and
 * prints what was written: images, patients, positives per label, the split
 * when the CSV has one, and the rows left out. Serial: no MPI here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "thorax/data.h"

#define MIN_SIZE 8
#define MAX_SIZE 4096

typedef struct {
    th_ingest_opts o;
    char labels_buf[4096];
    const char *labels[TH_INGEST_MAX_LABELS];
} ingest_args;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: thorax ingest --csv LABELS.csv --images DIR --out F.h5 [options]\n"
            "       thorax ingest --images DIR --format folders --out F.h5 [options]\n"
            "\n"
            "Converts a label CSV and a folder of PNG, JPEG or DICOM images, or a folder\n"
            "of class folders, into one dataset file.\n"
            "\n"
            "CSV layouts (--format auto tells them apart by the header):\n"
            "  common    image,patient_id,<label>...[,split]: one 0/1 column per label\n"
            "            (the layout of ../shared/data)\n"
            "  nih       NIH ChestX-ray14 Data_Entry_2017.csv: Image Index, Finding Labels\n"
            "            (findings joined by '|', or 'No Finding'), Patient ID; the labels\n"
            "            are the 14 findings in the NIH order, and the numeric patient IDs\n"
            "            are written as 8 digits (3 -> 00000003), as in the image names\n"
            "  columns   one 0/1 column per label, anywhere; the image column is named\n"
            "            image, Image, Image Index, image_name, filename or path, the\n"
            "            patient column patient_id, PatientId or Patient ID; every other\n"
            "            column is a label unless --labels picks some\n"
            "  chexpert  CheXpert's train.csv/valid.csv: Path, Sex, Age, Frontal/Lateral,\n"
            "            AP/PA, then the labels (No Finding ... Support Devices); the\n"
            "            patient is the patientNNNNN directory of Path; Sex, Age,\n"
            "            Frontal/Lateral and AP/PA go to /meta (auto: a Frontal/Lateral column)\n"
            "  folders   no CSV: DIR/[train|val|test/]CLASS/image. Each class folder name\n"
            "            is a label, positive for the images in it; NORMAL or No Finding\n"
            "            (any case) means negative for every label. Split folders above\n"
            "            the classes give the split. Image names are paths under DIR\n"
            "            (train/NORMAL/IM-0115-0001.jpeg), patients come from them\n"
            "Label cells: 0 or 1; -1 (uncertain) only with --uncertain; a blank cell is\n"
            "unknown (stored as 255: left out of the loss and of every metric).\n"
            "A split column (train/val/valid/validation/test or 0/1/2) becomes the file's\n"
            "predefined split. Every other named column that is not a label kept (NIH:\n"
            "Patient Age, Patient Gender, View Position, ...) is kept as the strings\n"
            "/meta/<column>, one per image, for `thorax eval --by <column>`. Without a patient column the ID comes from the image name:\n"
            "  00000003_001.png -> 00000003          (NIH)\n"
            "  person100_bacteria_475.png -> person100, IM-0115-0001.png -> IM-0115,\n"
            "  NORMAL2-IM-0095-0001.png -> NORMAL2-IM-0095   (Kermany)\n"
            "\n"
            "Images: PNG, 8- or 16-bit, gray, RGB, RGBA or palette; JPEG, 8-bit, gray or\n"
            "colour, baseline or progressive (not CMYK, not 12-bit), told apart by their\n"
            "first bytes, not their names. Colour becomes luminance (0.299 R + 0.587 G +\n"
            "0.114 B), alpha is ignored, 16-bit values are scaled to 8 bits\n"
            "(v * 255 / 65535), all rounded to nearest.\n"
            "DICOM (files with the DICM magic, or named *.dcm), through DCMTK: single-frame\n"
            "MONOCHROME1/2, 8-16 bits stored, uncompressed, RLE, JPEG (baseline, extended,\n"
            "lossless) or JPEG-LS. The stored values go through RescaleSlope/Intercept,\n"
            "then the file's window (--window) onto 0-255; MONOCHROME1 is inverted so that\n"
            "bone is bright. Without a patient column the patient is the PatientID tag;\n"
            "PatientSex, PatientAge, ViewPosition and Manufacturer become /meta/<tag>.\n"
            "Multi-frame, colour (RGB/YBR) and image-less objects are bad rows.\n"
            "\n"
            "options:\n"
            "  --csv FILE         the label CSV (required, except with --format folders)\n"
            "  --images DIR       the folder the image names are relative to (required)\n"
            "  --out F.h5         the dataset file to write (required); it is written as\n"
            "                     F.h5.<pid>.tmp and renamed when complete; never one of\n"
            "                     the inputs (the CSV, an image)\n"
            "  --size S           resize every image to S x S, %d-%d: area averaging when\n"
            "                     shrinking, bilinear when growing. A non-square image is\n"
            "                     squashed to the square, not cropped (default: the images'\n"
            "                     own size, if they all share one)\n"
            "  --labels A,B,...   keep these labels, in this order (default: every label)\n"
            "  --format F         auto, common, nih, columns, chexpert or folders (default auto)\n"
            "  --patient-from R   name (default): the patient ID comes from the patient\n"
            "                     column, the image name or the DICOM PatientID, and an\n"
            "                     image without one is a bad row; file: such an image is its\n"
            "                     own patient (with a warning: a patient's images may then\n"
            "                     land in two splits)\n"
            "  --uncertain P      what a -1 label becomes: ones (U-Ones), zeros (U-Zeros) or\n"
            "                     ignore (unknown, U-Ignore); without it a -1 is an error\n"
            "  --blank B          what a blank label cell becomes: unknown (default) or zeros\n"
            "  --frontal-only     chexpert: keep only the rows whose Frontal/Lateral is Frontal\n"
            "  --dicom-dir DIR    instead of --images: walk DIR for DICOM files (DICM magic\n"
            "                     or .dcm), and find each row's file by its base name with\n"
            "                     or without .dcm (X.dcm, a/X.dcm and X name DIR/.../X.dcm);\n"
            "                     a file no row names is an error (unlabelled), or left out\n"
            "                     and listed in the report with --skip-bad\n"
            "  --window N|none    DICOM: apply the file's N-th WindowCenter/WindowWidth\n"
            "                     (default 1, the first; min-max when the file has none);\n"
            "                     none: min-max over each image\n"
            "  --allow-outside-images  read image names that are absolute paths or climb out\n"
            "                     of --images with '..' (refused without it)\n"
            "  --skip-bad         leave bad rows out and list them (line, image, reason) in\n"
            "                     F.h5.skipped.csv; without it the first bad row is an error\n"
            "                     naming its CSV line. Bad rows: a missing, damaged or\n"
            "                     unreadable image (PNG, JPEG), a wrong number of fields, a\n"
            "                     label that is not 0/1/-1/blank, an unknown finding or split,\n"
            "                     no patient ID, a duplicate image, one file under two\n"
            "                     names (./a.png, a link), a name outside --images (and a\n"
            "                     damaged or wrong-size mask, or a run past the image).\n"
            "                     With folders the line is the image's row in the listing\n"
            "  --boxes FILE       lesion boxes into /masks: NIH BBox_List_2017.csv (Image Index,\n"
            "                     Finding Label, x, y, w, h in the original image's pixels,\n"
            "                     scaled to the stored size; Infiltrate = Infiltration)\n"
            "  --masks DIR        lesion masks into /masks: DIR/<stem>__<label>.png for one\n"
            "                     label, DIR/<stem>.png for every label the image is positive\n"
            "                     for (<stem>: the image name without folder and extension);\n"
            "                     the image's size, nonzero = lesion\n"
            "  --rle FILE         SIIM-ACR train-rle.csv (ImageId, EncodedPixels: relative\n"
            "                     start/length pairs, column-major, -1 = none) into the\n"
            "                     Pneumothorax masks\n"
            "  --compress         store /images with shuffle + gzip level 4, one chunk per\n"
            "                     image (reading is unchanged; prints the compression ratio)\n"
            "  --log-format F     plain or json log lines (see thorax --help)\n"
            "  -h, --help         show this help\n"
            "\n"
            "example:\n"
            "  thorax ingest --csv ../shared/data/kermany224/labels.csv \\\n"
            "                --images ../shared/data/kermany224/images --out data/kermany224.h5\n"
            "  thorax ingest --images chest_xray --format folders --out data/kermany.h5 --size 224\n",
            MIN_SIZE, MAX_SIZE);
}

static int bad_value(const char *opt, const char *value, const char *what)
{
    cli_error("ingest: %s '%s': %s", opt, value, what);
    return TH_EXIT_USAGE;
}

/* "A,B,C" into a->labels, in a->labels_buf. */
static int parse_labels(const char *s, ingest_args *a)
{
    if (strlen(s) >= sizeof a->labels_buf) return bad_value("--labels", s, "too long");
    strcpy(a->labels_buf, s);
    a->o.n_labels = 0;
    for (char *p = a->labels_buf;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        if (!*p) return bad_value("--labels", s, "an empty label name");
        if (a->o.n_labels == TH_INGEST_MAX_LABELS) return bad_value("--labels", s, "too many labels");
        a->labels[a->o.n_labels++] = p;
        if (!comma) break;
        p = comma + 1;
    }
    a->o.labels = a->labels;
    return TH_EXIT_OK;
}

static int parse_format(const char *s, th_ingest_format *f)
{
    static const th_ingest_format all[] = {TH_INGEST_AUTO, TH_INGEST_COMMON, TH_INGEST_NIH, TH_INGEST_COLUMNS,
                                           TH_INGEST_CHEXPERT, TH_INGEST_FOLDERS};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcasecmp(s, th_ingest_format_name(all[i]))) {
            *f = all[i];
            return 0;
        }
    return -1;
}

enum {
    OPT_CSV = 1, OPT_IMAGES, OPT_OUT, OPT_SIZE, OPT_LABELS, OPT_FORMAT, OPT_BOXES, OPT_MASKS, OPT_RLE, OPT_UNCERTAIN,
    OPT_BLANK, OPT_WINDOW, OPT_DICOM_DIR, OPT_PATIENT_FROM, OPT_SKIP_BAD, OPT_FRONTAL_ONLY, OPT_COMPRESS,
    OPT_ALLOW_OUTSIDE
};

static const cli_opt ingest_opts[] = {{OPT_CSV, "csv", "a value (a CSV file)"},
                                      {OPT_IMAGES, "images", "a value (a directory)"},
                                      {OPT_OUT, "out", "a value (the dataset file to write)"},
                                      {OPT_SIZE, "size", "a value (a side in pixels)"},
                                      {OPT_LABELS, "labels", "a value (A,B,...)"},
                                      {OPT_FORMAT, "format", "a value"},
                                      {OPT_BOXES, "boxes", "a value (a CSV file)"},
                                      {OPT_MASKS, "masks", "a value (a directory)"},
                                      {OPT_RLE, "rle", "a value (a CSV file)"},
                                      {OPT_UNCERTAIN, "uncertain", "a value (ones, zeros or ignore)"},
                                      {OPT_BLANK, "blank", "a value (unknown or zeros)"},
                                      {OPT_WINDOW, "window", "a value (N or none)"},
                                      {OPT_DICOM_DIR, "dicom-dir", "a value (a directory)"},
                                      {OPT_PATIENT_FROM, "patient-from", "a value (name or file)"},
                                      {OPT_SKIP_BAD, "skip-bad", NULL},
                                      {OPT_FRONTAL_ONLY, "frontal-only", NULL},
                                      {OPT_COMPRESS, "compress", NULL},
                                      {OPT_ALLOW_OUTSIDE, "allow-outside-images", NULL},
                                      {0, NULL, NULL}};

/* One option's value into a; TH_EXIT_OK, or TH_EXIT_USAGE after saying why. */
static int take_option(int id, const char *value, ingest_args *a)
{
    char name[32];
    for (const cli_opt *o = ingest_opts; o->name; o++)
        if (o->id == id) snprintf(name, sizeof name, "--%s", o->name);
    long k;
    switch (id) {
    case OPT_SKIP_BAD: a->o.skip_bad = 1; break;
    case OPT_FRONTAL_ONLY: a->o.frontal_only = 1; break;
    case OPT_COMPRESS: a->o.compress = 1; break;
    case OPT_ALLOW_OUTSIDE: a->o.allow_outside_images = 1; break;
    case OPT_CSV:
    case OPT_OUT:
    case OPT_BOXES:
    case OPT_MASKS:
    case OPT_RLE:
        if (!*value) return bad_value(name, value, id == OPT_MASKS ? "empty directory name" : "empty file name");
        *(id == OPT_CSV     ? &a->o.csv_path
          : id == OPT_OUT   ? &a->o.out_path
          : id == OPT_BOXES ? &a->o.boxes_path
          : id == OPT_MASKS ? &a->o.masks_dir
                            : &a->o.rle_path) = value;
        break;
    case OPT_IMAGES:
    case OPT_DICOM_DIR:
        if (!*value) return bad_value(name, value, "empty directory name");
        *(id == OPT_IMAGES ? &a->o.images_dir : &a->o.dicom_dir) = value;
        break;
    case OPT_SIZE:
        if (cli_parse_int(value, MIN_SIZE, MAX_SIZE, &k))
            return bad_value(name, value, "expected an integer from 8 to 4096");
        a->o.size = (int)k;
        break;
    case OPT_LABELS: return parse_labels(value, a);
    case OPT_WINDOW:
        if (!strcmp(value, "none")) a->o.dicom_window = TH_INGEST_DICOM_WINDOW_NONE;
        else if (cli_parse_int(value, 1, 1000, &k)) return bad_value(name, value, "expected 1 to 1000, or none");
        else a->o.dicom_window = (int)k - 1;
        break;
    case OPT_FORMAT:
        if (parse_format(value, &a->o.format))
            return bad_value(name, value, "expected auto, common, nih, columns, chexpert or folders");
        break;
    case OPT_UNCERTAIN:
        if (th_ingest_uncertain_parse(value, &a->o.uncertain))
            return bad_value(name, value, "expected ones, zeros or ignore");
        break;
    case OPT_BLANK:
        if (strcmp(value, "zeros") && strcmp(value, "unknown")) return bad_value(name, value, "expected zeros or unknown");
        a->o.blank_zeros = !strcmp(value, "zeros");
        break;
    case OPT_PATIENT_FROM:
        if (strcmp(value, "name") && strcmp(value, "file")) return bad_value(name, value, "expected name or file");
        a->o.patient_from_file = !strcmp(value, "file");
        break;
    }
    return TH_EXIT_OK;
}

/* TH_EXIT_OK, -1 when --help was printed, or TH_EXIT_USAGE after saying why. */
static int parse_args(int argc, char **argv, ingest_args *a)
{
    memset(a, 0, sizeof *a);
    a->o.format = TH_INGEST_AUTO;
    cli_parser p;
    cli_parser_init(&p, "ingest", argc, argv, ingest_opts);
    const char *value;
    for (int id; (id = cli_next(&p, &value)) != CLI_END;) {
        if (id == CLI_HELP) {
            usage(stdout);
            return -1;
        }
        if (id == CLI_BAD) return TH_EXIT_USAGE;
        if (id == CLI_ARG) {
            cli_error("ingest: unexpected argument '%s' (see thorax ingest --help)", value);
            return TH_EXIT_USAGE;
        }
        int rc = take_option(id, value, a);
        if (rc != TH_EXIT_OK) return rc;
    }
    int folders = a->o.format == TH_INGEST_FOLDERS;
    if (folders && a->o.csv_path) {
        cli_error("ingest: --format folders takes its labels from the folders, not --csv %s", a->o.csv_path);
        return TH_EXIT_USAGE;
    }
    if (a->o.images_dir && a->o.dicom_dir) {
        cli_error("ingest: give --images DIR or --dicom-dir DIR, not both");
        return TH_EXIT_USAGE;
    }
    const char *missing = !a->o.csv_path && !folders                ? "--csv LABELS.csv"
                          : !a->o.images_dir && !a->o.dicom_dir ? "--images DIR"
                          : !a->o.out_path                      ? "--out F.h5"
                                                                : NULL;
    if (missing) {
        cli_error("ingest: %s is required (see thorax ingest --help)", missing);
        return TH_EXIT_USAGE;
    }
    return TH_EXIT_OK;
}

static void print_summary(const ingest_args *a, const th_ingest_summary *s, double elapsed)
{
    printf("ingest: wrote %d images of %d patients (%dx%d, %s layout) in %.1fs (%.0f img/s) to %s\n", s->images,
           s->patients, s->w, s->h, th_ingest_format_name(s->format), elapsed, elapsed > 0 ? s->images / elapsed : 0,
           a->o.out_path);
    for (int k = 0; k < s->n_labels; k++) {
        printf("  %-20s %7d positive (%.1f%%)", s->label_names[k], s->positives[k],
               100.0 * s->positives[k] / s->images);
        if (s->unknown[k]) printf(", %d unknown", s->unknown[k]);
        printf("\n");
    }
    if (s->has_split)
        printf("  split: %d train, %d val, %d test\n", s->split_count[0], s->split_count[1], s->split_count[2]);
    if (s->n_meta) printf("  metadata: %d columns in /meta\n", s->n_meta);
    if (a->o.boxes_path || a->o.masks_dir || a->o.rle_path)
        printf("  lesions: %d images with a lesion in /masks\n", s->with_lesions);
    if (a->o.compress) printf("  compressed /images: ratio %.2f\n", s->images_ratio);
    if (s->unlabeled) printf("  left out %d unlabelled DICOM files, listed in %s\n", s->unlabeled, s->report_path);
    if (a->o.skip_bad)
        printf("  skipped %d of %d rows%s%s\n", s->skipped, s->rows, s->skipped ? ", listed in " : "",
               s->skipped ? s->report_path : "");
}

int cmd_ingest(int argc, char **argv)
{
    ingest_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != TH_EXIT_OK) return rc < 0 ? TH_EXIT_OK : rc;

    cli_progress p;
    cli_progress_start(&p, "ingest");
    th_ingest_summary *s = malloc(sizeof *s);
    th_err err;
    if (!s) {
        cli_error("ingest: out of memory");
        return TH_EXIT_FAIL;
    }
    if (th_ingest_run(&a.o, s, cli_progress_update, &p, &err)) {
        cli_progress_abort(&p);
        cli_error("%s", err.msg);
        free(s);
        return TH_EXIT_FAIL;
    }
    if (s->patients_from_file)
        cli_error("ingest: warning: %d images have no patient ID in their name and are each their own patient "
                  "(--patient-from file): one patient's images may land in two splits",
                  s->patients_from_file);
    print_summary(&a, s, cli_progress_seconds(&p));
    free(s);
    return TH_EXIT_OK;
}

/* ingest.c - a label CSV and a folder of PNG images into one dataset file
 * (see thorax/data.h for the layouts and the rules).
 *
 * The passes, and why they are separate:
 *   1. the CSV: layout, columns, and every row's fields, labels, split and
 *      patient ID; then duplicate image names (they need all rows);
 *   2. the image headers: missing and non-PNG files, and the common size
 *      when no size is given, before any time goes into decoding;
 *   3. decoding and resizing, each image once, into an unlinked scratch file:
 *      a damaged image only shows here, and with skip_bad it changes the
 *      row count the dataset writer needs up front;
 *   4. the dataset from the scratch file, then the report of skipped rows.
 * Without skip_bad the first bad row stops the run, after the pass that
 * found it.
 */
#include "thorax/data.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "folders.h"
#include "thorax/util.h"

#include "dicom.h"
#include "dicom_dir.h"

/* The limits of what ingest writes are those of what a dataset file may
 * hold: a file ingest wrote always opens. */
_Static_assert(TH_INGEST_MAX_LABELS == TH_DATASET_MAX_LABELS, "ingest must not write a file that cannot be opened");
_Static_assert(TH_DATASET_MAX_STRING == TH_CSV_MAX_FIELD, "an ingested name must fit in a dataset");

/* The ChestX-ray14 findings in the order CheXNet and the shared nih14 set use. */
const char *const th_ingest_nih_findings[TH_INGEST_N_NIH] = {
    "Atelectasis",  "Cardiomegaly",  "Effusion", "Infiltration", "Mass",     "Nodule",             "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema",    "Emphysema",    "Fibrosis", "Pleural_Thickening", "Hernia"};

/* Header names, compared after norm_name; the first alias found wins, so
 * `image` beats `path` when a file has both. */
static const char *const IMAGE_ALIASES[] = {"image", "imageindex", "imagename", "imagefile", "filename", "file",
                                            "path", NULL};
static const char *const PATIENT_ALIASES[] = {"patientid", "patient", NULL};
static const char *const SPLIT_ALIASES[] = {"split", NULL};
static const char *const FINDINGS_ALIASES[] = {"findinglabels", NULL};

#define NIH_ID_DIGITS 8

typedef struct {
    int line;
    const char *image;      /* the CSV field */
    char *patient;          /* malloc'd; NULL while unknown */
    int split;              /* TH_SPLIT_*, or TH_SPLIT_NONE without a split column */
    int w, h;               /* from the PNG or DICOM header */
    char *reason;           /* malloc'd why the row is left out; NULL for a good row */
    th_dicom_info *dicom;   /* malloc'd size and tags of a DICOM image; NULL for a PNG */
} row_info;

typedef struct {
    const th_ingest_opts *o;
    th_ingest_summary *sum;
    th_err *err;
    th_csv csv;
    int image_col, patient_col, split_col, findings_col;
    int frontal_col;                        /* chexpert's Frontal/Lateral, or -1 */
    int label_src[TH_INGEST_MAX_LABELS];    /* per label: its CSV column, or its NIH finding */
    row_info *rows;                         /* [csv.n_rows] */
    uint8_t *labels;                        /* [csv.n_rows, n_labels] */
    int n_bad;
    th_lesions *lesions;                    /* NULL without --boxes, --masks or --rle */
    const char *label_ptr[TH_INGEST_MAX_LABELS]; /* sum->label_names as pointers */
    th_dicom_dir dir;                       /* the DICOM files under o->dicom_dir */
} ingest;

const char *th_ingest_format_name(th_ingest_format f)
{
    switch (f) {
    case TH_INGEST_COMMON: return "common";
    case TH_INGEST_NIH: return "nih";
    case TH_INGEST_COLUMNS: return "columns";
    case TH_INGEST_CHEXPERT: return "chexpert";
    case TH_INGEST_FOLDERS: return "folders";
    default: return "auto";
    }
}

/* ------------------------------------------------------------------------
 * Names.
 */

/* Lower case without spaces, underscores, dashes and dots, so that
 * `Patient ID`, `PatientId` and `patient_id` all read `patientid`. */
static void norm_name(const char *s, char *out, size_t n)
{
    size_t k = 0;
    for (; *s && k + 1 < n; s++)
        if (!strchr(" _-.", *s)) out[k++] = (char)tolower((unsigned char)*s);
    out[k] = '\0';
}

static int same_name(const char *a, const char *b)
{
    char na[TH_CSV_MAX_FIELD + 1], nb[TH_CSV_MAX_FIELD + 1];
    norm_name(a, na, sizeof na);
    norm_name(b, nb, sizeof nb);
    return !strcmp(na, nb);
}

/* The number of decimal digits s[0..n) starts with. */
static size_t count_digits(const char *s, size_t n)
{
    size_t k = 0;
    while (k < n && isdigit((unsigned char)s[k])) k++;
    return k;
}

static int all_digits(const char *s, size_t n) { return n > 0 && count_digits(s, n) == n; }

/* Kermany normals: [PREFIX-]IM-NNNN followed by one or more -NNNN image
 * numbers (IM-0115-0001, NORMAL2-IM-0395-0001-0002). The length of the
 * patient part, through IM-NNNN, or 0. */
static size_t kermany_normal(const char *s, size_t len)
{
    for (size_t p = 0; p + 3 < len; p++) {
        if (strncmp(s + p, "IM-", 3) || (p > 0 && s[p - 1] != '-')) continue;
        size_t end = p + 3 + count_digits(s + p + 3, len - p - 3), q = end;
        if (end == p + 3) return 0;
        while (q < len && s[q] == '-') {
            size_t d = count_digits(s + q + 1, len - q - 1);
            if (d == 0) return 0;
            q += 1 + d;
        }
        return q == len && q > end ? end : 0;
    }
    return 0;
}

int th_ingest_patient_from_name(const char *name, char *out, size_t n)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot > base ? (size_t)(dot - base) : strlen(base), keep;
    const char *us = memchr(base, '_', len);
    size_t head = us ? (size_t)(us - base) : 0;

    if (us && all_digits(base, head) && all_digits(us + 1, len - head - 1))
        keep = head;                                        /* NIH: 00000003_001 */
    else if (us && head > 6 && !strncmp(base, "person", 6) && all_digits(base + 6, head - 6))
        keep = head;                                        /* person100_bacteria_475 */
    else
        keep = kermany_normal(base, len);                   /* IM-0115-0001 */
    if (keep == 0 || keep + 1 > n) return -1;
    memcpy(out, base, keep);
    out[keep] = '\0';
    return 0;
}

/* ------------------------------------------------------------------------
 * Bad rows.
 */

/* Marks row r bad (the first reason stays) and returns 0, or -1 when even
 * the reason cannot be stored. */
static int set_bad(ingest *g, row_info *r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_bad(ingest *g, row_info *r, const char *fmt, ...)
{
    if (r->reason) return 0;
    char msg[sizeof g->err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->reason = strdup(msg);
    if (!r->reason) return th_errf(g->err, "%s:%d: out of memory", g->o->csv_path, r->line);
    g->n_bad++;
    return 0;
}

static int row_error(ingest *g, const row_info *r, const char *reason, const char *more)
{
    if (r->image && *r->image)
        return th_errf(g->err, "%s:%d: image %s: %s%s", g->o->csv_path, r->line, r->image, reason, more);
    return th_errf(g->err, "%s:%d: %s%s", g->o->csv_path, r->line, reason, more);
}

/* After a pass: without skip_bad, any bad row is the error (the first one,
 * with how many there are). */
static int stop_on_bad(ingest *g)
{
    if (g->o->skip_bad || g->n_bad == 0) return 0;
    for (int i = 0; i < g->csv.n_rows; i++) {
        if (!g->rows[i].reason) continue;
        char more[96] = "";
        if (g->n_bad > 1)
            snprintf(more, sizeof more, " (and %d more bad rows; --skip-bad leaves them out)", g->n_bad - 1);
        return row_error(g, &g->rows[i], g->rows[i].reason, more);
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Pass 1: the CSV.
 */

static void trim(char *s)
{
    size_t n = strlen(s), a = 0;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    while (a < n && (s[a] == ' ' || s[a] == '\t')) a++;
    memmove(s, s + a, n - a);
    s[n - a] = '\0';
}

static void trim_all(th_csv *csv)
{
    for (int k = 0; k < csv->header.n_fields; k++) trim(csv->header.fields[k]);
    for (int i = 0; i < csv->n_rows; i++)
        for (int k = 0; k < csv->rows[i].n_fields; k++) trim(csv->rows[i].fields[k]);
}

/* The column named by the first alias that matches: its index, -1 if none,
 * -2 (with the error set) when two columns have that name. */
static int find_column(ingest *g, const char *const *aliases, const char *what)
{
    const th_csv_row *h = &g->csv.header;
    for (const char *const *a = aliases; *a; a++) {
        int found = -1;
        for (int k = 0; k < h->n_fields; k++) {
            char n[TH_CSV_MAX_FIELD + 1];
            norm_name(h->fields[k], n, sizeof n);
            if (strcmp(n, *a)) continue;
            if (found >= 0)
                return th_errf(g->err, "%s:%d: two %s columns: '%s' (column %d) and '%s' (column %d)",
                               g->o->csv_path, h->line, what, h->fields[found], found + 1, h->fields[k], k + 1) - 1;
            found = k;
        }
        if (found >= 0) return found;
    }
    return -1;
}

static int add_label(ingest *g, const char *name, int src)
{
    th_ingest_summary *s = g->sum;
    if (s->n_labels == TH_INGEST_MAX_LABELS)
        return th_errf(g->err, "%s: more than %d labels", g->o->csv_path, TH_INGEST_MAX_LABELS);
    if (strlen(name) >= TH_INGEST_MAX_NAME)
        return th_errf(g->err, "%s: label name '%s' is longer than %d characters", g->o->csv_path, name,
                       TH_INGEST_MAX_NAME - 1);
    for (int k = 0; k < s->n_labels; k++)
        if (!strcmp(s->label_names[k], name))
            return th_errf(g->err, "%s: label '%s' is named twice", g->o->csv_path, name);
    snprintf(s->label_names[s->n_labels], TH_INGEST_MAX_NAME, "%s", name);
    g->label_src[s->n_labels++] = src;
    return 0;
}

static int is_label_column(const ingest *g, int k)
{
    if (g->sum->format == TH_INGEST_CHEXPERT && th_ingest_chexpert_meta(g->csv.header.fields[k])) return 0;
    return k != g->image_col && k != g->patient_col && k != g->split_col && g->csv.header.fields[k][0];
}

/* The available labels, for an error message. */
static void list_labels(const ingest *g, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    int nih = g->sum->format == TH_INGEST_NIH;
    int count = nih ? TH_INGEST_N_NIH : g->csv.header.n_fields;
    for (int k = 0; k < count && len + 1 < n; k++) {
        if (!nih && !is_label_column(g, k)) continue;
        const char *name = nih ? th_ingest_nih_findings[k] : g->csv.header.fields[k];
        int w = snprintf(buf + len, n - len, "%s%s", len ? ", " : "", name);
        if (w < 0) break;
        len += (size_t)w;
    }
}

/* The labels: those asked for, in that order, or all of them. */
static int choose_labels(ingest *g)
{
    const th_ingest_opts *o = g->o;
    int nih = g->sum->format == TH_INGEST_NIH;
    const th_csv_row *h = &g->csv.header;
    if (!o->labels || o->n_labels == 0) {
        int count = nih ? TH_INGEST_N_NIH : h->n_fields;
        for (int k = 0; k < count; k++)
            if ((nih || is_label_column(g, k)) && add_label(g, nih ? th_ingest_nih_findings[k] : h->fields[k], k))
                return -1;
        if (g->sum->n_labels == 0)
            return th_errf(g->err, "%s:%d: no label columns (only image, patient and split)", o->csv_path, h->line);
        return 0;
    }
    for (int i = 0; i < o->n_labels; i++) {
        int found = -1;
        if (nih) {
            for (int k = 0; k < TH_INGEST_N_NIH && found < 0; k++)
                if (same_name(o->labels[i], th_ingest_nih_findings[k])) found = k;
        } else {
            /* The exact name first, then the same name in another spelling. */
            for (int k = 0; k < h->n_fields && found < 0; k++)
                if (is_label_column(g, k) && !strcmp(o->labels[i], h->fields[k])) found = k;
            for (int k = 0; k < h->n_fields && found < 0; k++)
                if (is_label_column(g, k) && same_name(o->labels[i], h->fields[k])) found = k;
        }
        if (found < 0) {
            char names[768];
            list_labels(g, names, sizeof names);
            return th_errf(g->err, "%s: no label '%s' (labels: %s)", o->csv_path, o->labels[i], names);
        }
        if (add_label(g, nih ? th_ingest_nih_findings[found] : h->fields[found], found)) return -1;
    }
    return 0;
}

/* The layout and its columns, from the header. */
static int read_layout(ingest *g)
{
    const th_ingest_opts *o = g->o;
    const th_csv_row *h = &g->csv.header;
    if ((g->image_col = find_column(g, IMAGE_ALIASES, "image")) < -1) return -1;
    if ((g->patient_col = find_column(g, PATIENT_ALIASES, "patient")) < -1) return -1;
    if ((g->split_col = find_column(g, SPLIT_ALIASES, "split")) < -1) return -1;
    if ((g->findings_col = find_column(g, FINDINGS_ALIASES, "Finding Labels")) < -1) return -1;
    int common = h->n_fields >= 2 && !strcmp(h->fields[0], "image") && !strcmp(h->fields[1], "patient_id");

    th_ingest_format f = o->format;
    int frontal = -1;
    for (int k = 0; k < h->n_fields && frontal < 0; k++)
        if (!strcasecmp(h->fields[k], "Frontal/Lateral")) frontal = k;
    if (f == TH_INGEST_AUTO && g->findings_col < 0 && frontal >= 0) f = TH_INGEST_CHEXPERT;
    if (f == TH_INGEST_AUTO) f = g->findings_col >= 0 ? TH_INGEST_NIH : common ? TH_INGEST_COMMON : TH_INGEST_COLUMNS;
    g->sum->format = f;
    if (f == TH_INGEST_COMMON && !common)
        return th_errf(g->err, "%s:%d: the common layout starts with image,patient_id, not %s,%s", o->csv_path,
                       h->line, h->fields[0], h->n_fields > 1 ? h->fields[1] : "(nothing)");
    if (f == TH_INGEST_NIH && g->findings_col < 0)
        return th_errf(g->err, "%s:%d: no 'Finding Labels' column for the NIH layout", o->csv_path, h->line);
    if (o->frontal_only && (f != TH_INGEST_CHEXPERT || frontal < 0))
        return th_errf(g->err, "%s:%d: --frontal-only needs the chexpert layout and its Frontal/Lateral column",
                       o->csv_path, h->line);
    g->frontal_col = frontal;
    if (g->image_col < 0)
        return th_errf(g->err, "%s:%d: no image column (a header named image, Image Index, filename or path)",
                       o->csv_path, h->line);
    /* In the NIH layout the other columns are metadata (age, view, ...), never
     * labels; elsewhere a Finding Labels column is just a column. */
    if (f != TH_INGEST_NIH) g->findings_col = -1;
    return choose_labels(g);
}

static int parse_split(const char *s)
{
    static const struct {
        const char *name;
        int split;
    } names[] = {{"train", TH_SPLIT_TRAIN}, {"0", TH_SPLIT_TRAIN},    {"val", TH_SPLIT_VAL},
                 {"valid", TH_SPLIT_VAL},   {"validation", TH_SPLIT_VAL}, {"1", TH_SPLIT_VAL},
                 {"test", TH_SPLIT_TEST},   {"2", TH_SPLIT_TEST}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(s, names[i].name)) return names[i].split;
    return -1;
}

int th_ingest_split_of(const char *s) { return parse_split(s); }

/* `Finding Labels` into the row's labels: 0 and r->reason unset, or a reason. */
static int parse_findings(ingest *g, row_info *r, const char *field, uint8_t *labels)
{
    char buf[TH_CSV_MAX_FIELD + 1];
    snprintf(buf, sizeof buf, "%s", field);
    int n_found = 0, no_finding = 0;
    char *save = NULL;
    if (!*buf) return set_bad(g, r, "empty Finding Labels");
    for (char *tok = strtok_r(buf, "|", &save); tok; tok = strtok_r(NULL, "|", &save)) {
        trim(tok);
        if (same_name(tok, "No Finding")) {
            no_finding = 1;
            continue;
        }
        int k = 0;
        while (k < TH_INGEST_N_NIH && !same_name(tok, th_ingest_nih_findings[k])) k++;
        if (k == TH_INGEST_N_NIH) return set_bad(g, r, "unknown finding '%s' in Finding Labels", tok);
        n_found++;
        for (int j = 0; j < g->sum->n_labels; j++)
            if (g->label_src[j] == k) labels[j] = 1;
    }
    if (no_finding && n_found) return set_bad(g, r, "'No Finding' together with findings in '%s'", field);
    if (!no_finding && !n_found) return set_bad(g, r, "empty Finding Labels '%s'", field);
    return 0;
}

/* One data row's fields, labels, split and patient. */
static int check_row(ingest *g, int i)
{
    const th_csv_row *c = &g->csv.rows[i];
    row_info *r = &g->rows[i];
    int L = g->sum->n_labels;
    uint8_t *labels = g->labels + (size_t)i * L;
    r->line = c->line;
    r->split = TH_SPLIT_NONE;
    r->image = c->n_fields > g->image_col ? c->fields[g->image_col] : "";
    if (c->n_fields != g->csv.header.n_fields)
        return set_bad(g, r, "%d fields, but the header has %d", c->n_fields, g->csv.header.n_fields);
    if (!*r->image) return set_bad(g, r, "no image name");

    if (g->findings_col >= 0) {
        if (parse_findings(g, r, c->fields[g->findings_col], labels)) return -1;
    } else {
        for (int k = 0; k < L; k++) {
            const char *v = c->fields[g->label_src[k]];
            int b = th_ingest_label_value(v, g->o->uncertain, g->o->blank_zeros, &labels[k]);
            if (b == -2)
                return set_bad(g, r, "label %s is -1 (uncertain): choose --uncertain ones, zeros or ignore",
                               g->sum->label_names[k]);
            if (b < 0)
                return set_bad(g, r, "label %s is '%s', expected 0, 1, -1 (uncertain) or blank (unknown)",
                               g->sum->label_names[k], v);
        }
    }
    if (r->reason) return 0;

    if (g->split_col >= 0) {
        const char *v = c->fields[g->split_col];
        r->split = parse_split(v);
        if (r->split < 0) return set_bad(g, r, "split '%s' is not train, val or test", v);
    }

    char derived[TH_CSV_MAX_FIELD + 1];
    const char *pid = derived;
    if (g->patient_col >= 0) {
        pid = c->fields[g->patient_col];
        if (!*pid) return set_bad(g, r, "no patient ID");
        /* NIH numbers its patients 1, 2, ...; the image names carry them as 00000001. */
        size_t n = strlen(pid);
        if (g->sum->format == TH_INGEST_NIH && n < NIH_ID_DIGITS && all_digits(pid, n)) {
            snprintf(derived, sizeof derived, "%0*d%s", (int)(NIH_ID_DIGITS - n), 0, pid);
            pid = derived;
        }
    } else if (g->sum->format == TH_INGEST_CHEXPERT) {
        if (th_ingest_chexpert_patient(r->image, derived, sizeof derived))
            return set_bad(g, r, "no patientNNNNN directory in the CheXpert path");
    } else if (th_ingest_patient_from_name(r->image, derived, sizeof derived)) {
        return 0;   /* a DICOM file's PatientID, the file itself, or bad: pass 2 (check_patient) */
    }
    r->patient = strdup(pid);
    if (!r->patient) return th_errf(g->err, "%s:%d: out of memory", g->o->csv_path, r->line);
    return 0;
}

typedef struct {
    const char *image;
    int row;
} image_row;

static int cmp_image_row(const void *a, const void *b)
{
    const image_row *x = a, *y = b;
    int c = strcmp(x->image, y->image);
    return c ? c : (x->row > y->row) - (x->row < y->row);
}

/* A name on two lines is one image twice: the later lines are bad. */
static int check_duplicates(ingest *g)
{
    int n = g->csv.n_rows;
    image_row *order = malloc(sizeof *order * (n > 0 ? (size_t)n : 1));
    if (!order) return th_errf(g->err, "%s: out of memory", g->o->csv_path);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (g->rows[i].image && *g->rows[i].image) order[m++] = (image_row){g->rows[i].image, i};
    qsort(order, (size_t)m, sizeof *order, cmp_image_row);
    int rc = 0;
    for (int i = 1, first = 0; i < m && rc == 0; i++) {
        if (strcmp(order[i].image, order[first].image)) {
            first = i;
            continue;
        }
        row_info *r = &g->rows[order[i].row];
        /* An earlier reason stays, but a duplicate must not stay good. */
        rc = set_bad(g, r, "duplicate image name (also on line %d)", g->rows[order[first].row].line);
    }
    free(order);
    return rc;
}

static int check_csv(ingest *g)
{
    int n = g->csv.n_rows;
    if (n == 0) return th_errf(g->err, "%s: no data rows after the header", g->o->csv_path);
    g->rows = calloc((size_t)n, sizeof *g->rows);
    g->labels = calloc((size_t)n * (size_t)g->sum->n_labels, 1);
    if (!g->rows || !g->labels) return th_errf(g->err, "%s: out of memory for %d rows", g->o->csv_path, n);
    for (int i = 0; i < n; i++)
        if (check_row(g, i)) return -1;
    if (check_duplicates(g)) return -1;
    return stop_on_bad(g);
}

/* ------------------------------------------------------------------------
 * Pass 2: image headers.
 */

/* 0, -1 when the path is too long, -2 when no file under dicom_dir has the
 * row's name. */
static int image_path(const ingest *g, const row_info *r, char *buf, size_t n)
{
    if (g->o->dicom_dir) {
        th_dicom_dir_file *f = th_dicom_dir_find(&g->dir, r->image);
        if (!f) return -2;
        f->used = 1;
        int w = snprintf(buf, n, "%s", f->path);
        return w < 0 || (size_t)w >= n ? -1 : 0;
    }
    const char *dir = g->o->images_dir;
    int joined = dir && *dir && r->image[0] != '/';
    int w = joined ? snprintf(buf, n, "%s/%s", dir, r->image) : snprintf(buf, n, "%s", r->image);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

/* Why an image name reaches outside the images folder, or NULL when it
 * stays inside: an absolute path, or a '..' component (a/../../x). Told from
 * the text, not the file system, so that a folder of links (a common way to
 * assemble a data set) still works, and a name means the same on every
 * machine. */
static const char *outside_images(const char *image)
{
    if (image[0] == '/') return "an absolute path";
    for (const char *p = image; *p;) {
        size_t len = strcspn(p, "/");
        if (len == 2 && p[0] == '.' && p[1] == '.') return "a '..' component";
        p += len;
        p += *p == '/';
    }
    return NULL;
}

typedef struct {
    dev_t dev;
    ino_t ino;
    int row;
} file_row;

static int cmp_file_row(const void *a, const void *b)
{
    const file_row *x = a, *y = b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

/* One file under two names (a.png and ./a.png, a link, a/../a.png) would be
 * two images, possibly of two patients in two splits: a leak that the name
 * check cannot see. Files are told apart by device and inode; the later rows
 * of a file are bad, naming the first. */
static int check_same_files(ingest *g)
{
    int n = g->csv.n_rows, m = 0;
    file_row *f = malloc(sizeof *f * (n > 0 ? (size_t)n : 1));
    if (!f) return th_errf(g->err, "%s: out of memory", g->o->csv_path);
    for (int i = 0; i < n; i++) {
        row_info *r = &g->rows[i];
        char path[4096];
        struct stat st;
        if (r->reason || image_path(g, r, path, sizeof path) || stat(path, &st)) continue;
        f[m++] = (file_row){st.st_dev, st.st_ino, i};
    }
    qsort(f, (size_t)m, sizeof *f, cmp_file_row);
    int rc = 0;
    for (int i = 1, first = 0; i < m && rc == 0; i++) {
        if (f[i].dev != f[first].dev || f[i].ino != f[first].ino) {
            first = i;
            continue;
        }
        const row_info *a = &g->rows[f[first].row];
        rc = set_bad(g, &g->rows[f[i].row], "the same file as %s on line %d: one image under two names", a->image,
                     a->line);
    }
    free(f);
    return rc;
}

/* A DICOM image's header: its size, its tags, and, without a patient
 * column, its PatientID as the patient (before an ID from the name). */
static int dicom_header(ingest *g, row_info *r, const char *path)
{
    th_err e;
    r->dicom = malloc(sizeof *r->dicom);
    if (!r->dicom) return th_errf(g->err, "%s:%d: out of memory", g->o->csv_path, r->line);
    if (th_dicom_read_info(path, r->dicom, &e)) return set_bad(g, r, "%s", e.msg);
    r->w = r->dicom->w;
    r->h = r->dicom->h;
    if (g->patient_col >= 0 || !r->dicom->patient_id[0]) return 0;
    free(r->patient);
    r->patient = strdup(r->dicom->patient_id);
    return r->patient ? 0 : th_errf(g->err, "%s:%d: out of memory", g->o->csv_path, r->line);
}

/* A row with no patient yet (no column, no ID in its name, no DICOM
 * PatientID): its own patient with --patient-from file, else bad. */
static int check_patient(ingest *g, row_info *r)
{
    if (r->reason || r->patient) return 0;
    if (!g->o->patient_from_file)
        return set_bad(g, r,
                       "no patient column, and no patient ID in the image name (NIH or Kermany style)%s; "
                       "--patient-from file makes each such image its own patient",
                       r->dicom ? " or in the DICOM PatientID" : "");
    r->patient = strdup(r->image);
    if (!r->patient) return th_errf(g->err, "%s:%d: out of memory", g->o->csv_path, r->line);
    g->sum->patients_from_file++;
    return 0;
}

/* Refuses an input (the CSV, a lesion file, an image a row names) that is
 * one of ingest's outputs (the dataset file, the --skip-bad report), before
 * anything is written: either would be overwritten, or unlinked. */
static int not_an_output(const ingest *g, const char *input)
{
    const char *out[2] = {g->o->out_path, g->sum->report_path};
    for (int j = 0; j < 2; j++)
        if (input && *input && out[j][0] && th_output_not_input(out[j], 1, &input, g->err)) return -1;
    return 0;
}

static int check_images(ingest *g, int *out_w, int *out_h)
{
    const row_info *first = NULL;
    for (int i = 0; i < g->csv.n_rows; i++) {
        row_info *r = &g->rows[i];
        if (r->reason) continue;
        char path[4096];
        th_err e;
        int where = image_path(g, r, path, sizeof path);
        if (!where && not_an_output(g, path)) return th_err_prefix(g->err, "%s:%d: ", g->o->csv_path, r->line);
        /* Without an images folder (a library caller's choice) names are paths as they are. */
        const char *escape =
            !g->o->images_dir || g->o->dicom_dir || g->o->allow_outside_images ? NULL : outside_images(r->image);
        if (escape) {
            if (set_bad(g, r, "%s leads outside --images %s; --allow-outside-images reads it", escape,
                        g->o->images_dir))
                return -1;
        } else if (where == -2) {
            if (set_bad(g, r, "no DICOM file of this name under %s", g->o->dicom_dir)) return -1;
        } else if (where) {
            if (set_bad(g, r, "the image path is too long")) return -1;
        } else if (th_dicom_is_dicom(path)) {
            if (dicom_header(g, r, path)) return -1;
        } else if (th_image_size(path, &r->w, &r->h, &e)) {
            if (set_bad(g, r, "%s", e.msg)) return -1;
        }
        if (check_patient(g, r)) return -1;
    }
    if (check_same_files(g) || stop_on_bad(g)) return -1;
    if (g->o->size > 0) {
        *out_w = *out_h = g->o->size;
        return 0;
    }
    /* No size given: the images' own, if they share one. */
    for (int i = 0; i < g->csv.n_rows; i++) {
        const row_info *r = &g->rows[i];
        if (r->reason) continue;
        if (!first) first = r;
        else if (r->w != first->w || r->h != first->h)
            return th_errf(g->err,
                           "%s: images differ in size (%s on line %d is %dx%d, %s on line %d is %dx%d): give --size S",
                           g->o->csv_path, first->image, first->line, first->w, first->h, r->image, r->line, r->w,
                           r->h);
    }
    if (!first) return 0;
    *out_w = first->w;
    *out_h = first->h;
    return 0;
}

/* ------------------------------------------------------------------------
 * Pass 3: decoding into the scratch file.
 */

/* Draws row r's masks once to find bad mask files now, while a bad row can
 * still be left out (the masks are drawn again when written). */
static int check_lesions(ingest *g, row_info *r, int w, int h)
{
    int L = g->sum->n_labels;
    uint8_t *m = malloc((size_t)L * w * h);
    if (!m) return th_errf(g->err, "out of memory for the masks of a %dx%d image", w, h);
    th_err e;
    int rc = th_lesions_draw(g->lesions, r->image, r->w, r->h, g->labels + (size_t)(r - g->rows) * L, h, w, m, &e);
    free(m);
    if (rc >= 0) return 0;
    return g->o->skip_bad ? set_bad(g, r, "%s", e.msg) : row_error(g, r, e.msg, "");
}

static int decode_all(ingest *g, FILE *scratch, const char *scratch_path, int w, int h, th_ingest_progress_fn progress,
                      void *ctx)
{
    int total = g->csv.n_rows - g->n_bad, done = 0;
    uint8_t *px = malloc((size_t)w * (size_t)h);
    if (!px) return th_errf(g->err, "out of memory for a %dx%d image", w, h);
    int rc = 0;
    for (int i = 0; i < g->csv.n_rows && rc == 0; i++) {
        row_info *r = &g->rows[i];
        if (r->reason) continue;
        char path[4096];
        th_image img;
        th_err e;
        image_path(g, r, path, sizeof path);
        if (r->dicom ? th_dicom_read(path, g->o->dicom_window, &img, &e) : th_image_read(path, &img, &e)) {
            rc = g->o->skip_bad ? set_bad(g, r, "%s", e.msg) : row_error(g, r, e.msg, "");
            total--;
            if (progress && rc == 0) progress(ctx, done, total);
            continue;
        }
        if (g->o->size == 0 && (img.w != w || img.h != h))
            rc = th_errf(g->err, "%s:%d: image %s is %dx%d, the others are %dx%d: give --size S", g->o->csv_path,
                         r->line, r->image, img.w, img.h, w, h);
        else rc = th_image_resize(img.px, img.w, img.h, px, w, h, g->err);
        th_image_free(&img);
        if (rc == 0 && g->lesions && check_lesions(g, r, w, h)) rc = -1;
        if (r->reason) {
            total--;
            continue;
        }
        if (rc == 0 && fwrite(px, 1, (size_t)w * (size_t)h, scratch) != (size_t)w * (size_t)h)
            rc = th_errf(g->err, "cannot write the scratch file %s: %s", scratch_path, strerror(errno));
        done++;
        if (progress && rc == 0) progress(ctx, done, total);
    }
    free(px);
    return rc;
}

/* ------------------------------------------------------------------------
 * Pass 4: the dataset and the report.
 */

/* The DICOM files under dicom_dir that no row names: unlabelled, never
 * ingested; an error unless skip_bad (then the report lists them). */
static int check_unlabeled(ingest *g)
{
    const th_dicom_dir_file *first = NULL;
    for (int i = 0; i < g->dir.n; i++)
        if (!g->dir.files[i].used) {
            if (!first) first = &g->dir.files[i];
            g->sum->unlabeled++;
        }
    if (!first || g->o->skip_bad) return 0;
    return th_errf(g->err,
                   "%s: %d DICOM file%s under %s %s no row (e.g. %s): unlabelled images are not ingested; add "
                   "them to the CSV, or --skip-bad to leave them out",
                   g->o->csv_path, g->sum->unlabeled, g->sum->unlabeled == 1 ? "" : "s", g->o->dicom_dir,
                   g->sum->unlabeled == 1 ? "has" : "have", first->path);
}

static int write_report(ingest *g)
{
    th_strbuf b = {0};
    th_strbuf_printf(&b, "line,image,reason\n");
    for (int i = 0; i < g->csv.n_rows; i++) {
        const row_info *r = &g->rows[i];
        if (!r->reason) continue;
        th_strbuf_printf(&b, "%d,", r->line);
        th_csv_field(&b, "", r->image ? r->image : "");
        th_strbuf_printf(&b, ",");
        th_csv_field(&b, "", r->reason);
        th_strbuf_printf(&b, "\n");
    }
    for (int i = 0; i < g->dir.n; i++) {
        if (g->dir.files[i].used) continue;
        th_strbuf_printf(&b, ",");
        th_csv_field(&b, "", g->dir.files[i].path);
        th_strbuf_printf(&b, ",DICOM file with no row in the CSV (unlabelled)\n");
    }
    int rc = b.failed ? th_errf(g->err, "%s: out of memory", g->sum->report_path)
                      : th_write_file_atomic(g->sum->report_path, b.data, b.len, g->err);
    th_strbuf_free(&b);
    return rc;
}

/* Whether column k is metadata: a named column that is not the image,
 * patient, split or findings column and not one of the labels kept. */
static int is_meta_column(const ingest *g, int k)
{
    const th_csv_row *hd = &g->csv.header;
    if (!hd->fields[k][0] || k == g->image_col || k == g->patient_col || k == g->split_col || k == g->findings_col)
        return 0;
    if (g->sum->format == TH_INGEST_NIH) return 1;
    for (int l = 0; l < g->sum->n_labels; l++)
        if (g->label_src[l] == k) return 0;
    return 1;
}

/* /meta/<tag> of DICOM tag t (th_dicom_meta_names) when any kept row is a
 * DICOM image and the CSV has no column of that name (the CSV's wins). v:
 * room for every kept row. */
static int write_dicom_meta(ingest *g, th_dataset_writer *wr, int t, const char **v)
{
    const char *name = th_dicom_meta_names[t];
    int any = 0, j = 0;
    for (int k = 0; k < g->csv.header.n_fields; k++)
        if (!strcmp(g->csv.header.fields[k], name)) return 0;
    for (int i = 0; i < g->csv.n_rows; i++) {
        const row_info *r = &g->rows[i];
        if (r->reason) continue;
        v[j++] = r->dicom ? r->dicom->meta[t] : "";
        any |= r->dicom != NULL;
    }
    if (!any) return 0;
    int rc = th_dataset_writer_meta(wr, name, v, g->err);
    if (rc == 0) g->sum->n_meta++;
    return rc;
}

/* /meta/<column> of every metadata column, the kept rows' values in order. */
static int write_meta(ingest *g, th_dataset_writer *wr, int n)
{
    const char **v = malloc(sizeof *v * (size_t)(n > 0 ? n : 1));
    if (!v) return th_errf(g->err, "out of memory for the metadata of %d images", n);
    int rc = 0;
    for (int k = 0; k < g->csv.header.n_fields && rc == 0; k++) {
        if (!is_meta_column(g, k)) continue;
        for (int i = 0, j = 0; i < g->csv.n_rows; i++)
            if (!g->rows[i].reason) v[j++] = g->csv.rows[i].fields[k];
        rc = th_dataset_writer_meta(wr, g->csv.header.fields[k], v, g->err);
        if (rc == 0) g->sum->n_meta++;
    }
    for (int t = 0; t < TH_DICOM_N_META && rc == 0; t++)
        rc = write_dicom_meta(g, wr, t, v);
    free(v);
    return rc;
}

static int write_dataset(ingest *g, FILE *scratch, const char *scratch_path, int w, int h)
{
    const th_ingest_opts *o = g->o;
    int n = g->csv.n_rows - g->n_bad, L = g->sum->n_labels;
    const char *names[TH_INGEST_MAX_LABELS];
    for (int k = 0; k < L; k++) names[k] = g->sum->label_names[k];
    uint8_t *px = malloc((size_t)w * (size_t)h);
    if (!px) return th_errf(g->err, "out of memory for a %dx%d image", w, h);
    th_dataset_writer wr;
    uint8_t *masks = g->lesions ? malloc((size_t)L * w * h) : NULL;
    int flags = (g->lesions ? TH_DATASET_MASKS : 0) | (o->compress ? TH_DATASET_COMPRESS : 0);
    int rc = g->lesions && !masks ? th_errf(g->err, "out of memory for the masks of a %dx%d image", w, h)
                                  : th_dataset_writer_create(&wr, o->out_path, n, h, w, L, names, flags,
                                                             g->split_col >= 0, g->err);
    if (rc) {
        free(masks);
        free(px);
        return rc;
    }
    rc = write_meta(g, &wr, n);
    rewind(scratch);
    for (int i = 0, j = 0; i < g->csv.n_rows && rc == 0; i++) {
        const row_info *r = &g->rows[i];
        if (r->reason) continue;
        int drawn = 0;
        if (fread(px, 1, (size_t)w * (size_t)h, scratch) != (size_t)w * (size_t)h)
            rc = th_errf(g->err, "cannot read back the scratch file %s", scratch_path);
        else if (masks && (drawn = th_lesions_draw(g->lesions, r->image, r->w, r->h, g->labels + (size_t)i * L, h, w,
                                                   masks, g->err)) < 0)
            rc = -1;
        else rc = th_dataset_writer_put(&wr, j++, px, g->labels + (size_t)i * L, r->patient, r->image, masks,
                                        r->split, g->err);
        g->sum->with_lesions += drawn > 0;
    }
    free(masks);
    free(px);
    if (rc == 0 && o->skip_bad) rc = write_report(g);
    if (rc) {
        th_dataset_writer_abort(&wr);
        return rc;
    }
    if (th_dataset_writer_finish(&wr, g->err)) {
        if (o->skip_bad) unlink(g->sum->report_path);
        return -1;
    }
    g->sum->images_ratio = wr.images_ratio;
    /* A report left by an earlier --skip-bad run would describe another file. */
    if (!o->skip_bad) unlink(g->sum->report_path);
    return 0;
}

static int summarize(ingest *g)
{
    th_ingest_summary *s = g->sum;
    int n = 0, L = s->n_labels;
    size_t rows = g->csv.n_rows > 0 ? (size_t)g->csv.n_rows : 1;
    const char **ids = malloc(sizeof *ids * rows);
    int *patient_of = malloc(sizeof *patient_of * rows);
    if (!ids || !patient_of) {
        free(ids);
        free(patient_of);
        return th_errf(g->err, "out of memory summarising %s", g->o->out_path);
    }
    for (int i = 0; i < g->csv.n_rows; i++) {
        const row_info *r = &g->rows[i];
        if (r->reason) continue;
        ids[n++] = r->patient;
        for (int k = 0; k < L; k++) {
            s->positives[k] += g->labels[(size_t)i * L + k] == 1;
            s->unknown[k] += g->labels[(size_t)i * L + k] == TH_LABEL_UNKNOWN;
        }
        if (r->split >= TH_SPLIT_TRAIN && r->split <= TH_SPLIT_TEST) s->split_count[r->split]++;
    }
    s->images = n;
    s->skipped = g->n_bad;
    s->has_split = g->split_col >= 0;
    s->patients = th_patients_group(n, ids, patient_of);
    free(ids);
    free(patient_of);
    return s->patients < 0 ? th_errf(g->err, "out of memory summarising %s", g->o->out_path) : 0;
}

/* ------------------------------------------------------------------------ */

static int first_bad_error(ingest *g)
{
    for (int i = 0; i < g->csv.n_rows; i++)
        if (g->rows[i].reason) {
            char more[128];
            snprintf(more, sizeof more, " (all %d rows are bad: nothing to write)", g->csv.n_rows);
            return row_error(g, &g->rows[i], g->rows[i].reason, more);
        }
    return th_errf(g->err, "%s: no rows", g->o->csv_path);
}

/* --frontal-only: the rows whose Frontal/Lateral is not Frontal are not
 * data for this run, so they leave the CSV before any check (a row too short
 * to have the column stays, to be reported). */
static int keep_frontal(ingest *g)
{
    if (!g->o->frontal_only) return 0;
    int m = 0;
    for (int i = 0; i < g->csv.n_rows; i++) {
        const th_csv_row *c = &g->csv.rows[i];
        if (c->n_fields > g->frontal_col && strcasecmp(c->fields[g->frontal_col], "Frontal")) continue;
        g->csv.rows[m++] = *c;
    }
    g->csv.n_rows = m;
    return 0;
}

static int run(ingest *g, th_ingest_progress_fn progress, void *ctx)
{
    const th_ingest_opts *o = g->o;
    int w = 0, h = 0;
    if (not_an_output(g, o->csv_path) || not_an_output(g, o->boxes_path) || not_an_output(g, o->rle_path)) return -1;
    if (o->format == TH_INGEST_FOLDERS) {
        char *text;
        size_t len;
        if (th_ingest_folders_csv(o->images_dir, &text, &len, g->err) ||
            th_csv_parse(&g->csv, o->csv_path, text, len, g->err))
            return -1;
    } else if (th_csv_read(&g->csv, o->csv_path, g->err)) {
        return -1;
    }
    g->sum->rows = g->csv.n_rows;
    trim_all(&g->csv);
    if (o->dicom_dir && th_dicom_dir_open(&g->dir, o->dicom_dir, g->err)) return -1;
    if (read_layout(g) || keep_frontal(g)) return -1;
    for (int k = 0; k < g->sum->n_labels; k++) g->label_ptr[k] = g->sum->label_names[k];
    if ((o->boxes_path || o->masks_dir || o->rle_path) &&
        th_lesions_load(&g->lesions, o->boxes_path, o->masks_dir, o->rle_path, g->sum->n_labels, g->label_ptr, g->err))
        return -1;
    if (check_csv(g) || check_images(g, &w, &h) || check_unlabeled(g)) return -1;
    if (g->n_bad == g->csv.n_rows) return first_bad_error(g);

    /* Unlinked at once: the scratch file never outlives this process. */
    char scratch_path[1100], pixels[1100];
    snprintf(pixels, sizeof pixels, "%s.pixels", o->out_path);
    if (th_tmp_path(pixels, scratch_path, sizeof scratch_path, g->err)) return -1;
    FILE *scratch = fopen(scratch_path, "w+b");
    if (!scratch)
        return th_errf(g->err, "cannot create the scratch file %s next to the output: %s", scratch_path,
                       strerror(errno));
    unlink(scratch_path);
    int rc = decode_all(g, scratch, scratch_path, w, h, progress, ctx);
    if (rc == 0 && g->n_bad == g->csv.n_rows) rc = first_bad_error(g);
    if (rc == 0) rc = write_dataset(g, scratch, scratch_path, w, h);
    fclose(scratch);
    if (rc == 0) {
        g->sum->w = w;
        g->sum->h = h;
        rc = summarize(g);
    }
    return rc;
}

int th_ingest_run(const th_ingest_opts *o, th_ingest_summary *sum, th_ingest_progress_fn progress, void *ctx,
                  th_err *err)
{
    memset(sum, 0, sizeof *sum);
    /* The folder layout is read as a CSV listing named after the folder,
     * so that errors say "DIR:LINE: image CLASS/x.jpg: ...". */
    th_ingest_opts folders;
    if (o->format == TH_INGEST_FOLDERS) {
        if (!o->images_dir || !*o->images_dir || (o->csv_path && *o->csv_path))
            return th_errf(err, "the folders layout needs an image folder and no CSV file");
        folders = *o;
        folders.csv_path = o->images_dir;
        o = &folders;
    }
    if (!o->csv_path || !*o->csv_path || !o->out_path || !*o->out_path)
        return th_errf(err, "ingest needs a CSV file and an output file");
    if (o->size < 0 || o->size > TH_IMAGE_MAX_SIDE)
        return th_errf(err, "impossible image size %d (1 to %d)", o->size, TH_IMAGE_MAX_SIDE);
    /* Before the CSV is read, which would otherwise be blamed for the
     * labels the command line named twice. */
    for (int k = 0; o->labels && k < o->n_labels; k++)
        for (int j = 0; j < k; j++)
            if (!strcmp(o->labels[j], o->labels[k]))
                return th_errf(err, "--labels: duplicate label '%s' (labels %d and %d)", o->labels[k], j + 1, k + 1);
    if (snprintf(sum->report_path, sizeof sum->report_path, "%s.skipped.csv", o->out_path) >=
        (int)sizeof sum->report_path)
        return th_errf(err, "output path too long: %s", o->out_path);
    ingest g = {.o = o, .sum = sum, .err = err};
    int rc = run(&g, progress, ctx);
    for (int i = 0; g.rows && i < g.csv.n_rows; i++) {
        free(g.rows[i].patient);
        free(g.rows[i].reason);
        free(g.rows[i].dicom);
    }
    free(g.rows);
    free(g.labels);
    th_lesions_free(g.lesions);
    th_csv_free(&g.csv);
    th_dicom_dir_free(&g.dir);
    if (!o->skip_bad) sum->report_path[0] = '\0';
    return rc;
}

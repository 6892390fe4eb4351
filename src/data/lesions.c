/* lesions.c - real lesion locations (NIH boxes, PNG masks, SIIM run-length
 * codes) drawn into an ingested dataset's masks (see thorax/data.h for the
 * conventions).
 *
 * The box and RLE files are read whole and indexed by image stem (sorted,
 * searched by bisection); mask PNGs are read when their image is drawn.
 */
#include "thorax/data.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* Both entry types start with their stem, which cmp_stem and first_of read. */
typedef struct {
    char stem[256];
    int label;              /* index into the kept labels */
    double x, y, w, h;      /* original-image pixels */
} lesion_box;

typedef struct {
    char stem[256];
    int line;
    const char *code;       /* EncodedPixels, in rle_csv's storage */
} lesion_rle;

struct th_lesions {
    int n_labels;
    const char *const *label_names;
    lesion_box *boxes;
    int n_boxes;
    const char *masks_dir;
    th_csv rle_csv;
    char rle_path[1024];
    lesion_rle *rles;
    int n_rles, rle_label;
};

/* The name without folders and extension into out[n]. */
static void stem_of(const char *name, char *out, size_t n)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot > base ? (size_t)(dot - base) : strlen(base);
    if (len + 1 > n) len = n - 1;
    memcpy(out, base, len);
    out[len] = '\0';
}

static int cmp_stem(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

static int find_label(const th_lesions *l, const char *name)
{
    if (!strcasecmp(name, "Infiltrate")) name = "Infiltration";
    for (int k = 0; k < l->n_labels; k++)
        if (!strcasecmp(name, l->label_names[k])) return k;
    return -1;
}

static int parse_number(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return *s && !*end && !errno && isfinite(*v) ? 0 : -1;
}

static int load_boxes(th_lesions *l, const char *path, th_err *err)
{
    th_csv csv;
    if (th_csv_read(&csv, path, err)) return -1;
    int rc = 0;
    if (csv.header.n_fields < 6)
        rc = th_errf(err, "%s:%d: %d columns; a box file has Image Index, Finding Label, x, y, w, h", path,
                     csv.header.line, csv.header.n_fields);
    l->boxes = rc ? NULL : malloc(sizeof *l->boxes * (size_t)(csv.n_rows > 0 ? csv.n_rows : 1));
    if (rc == 0 && !l->boxes) rc = th_errf(err, "%s: out of memory for %d boxes", path, csv.n_rows);
    static const char *const what[4] = {"x", "y", "w", "h"};
    for (int i = 0; i < csv.n_rows && rc == 0; i++) {
        const th_csv_row *r = &csv.rows[i];
        if (r->n_fields < 6) {
            rc = th_errf(err, "%s:%d: %d fields; expected Image Index, Finding Label, x, y, w, h", path, r->line,
                         r->n_fields);
            break;
        }
        int k = find_label(l, r->fields[1]);
        if (k < 0) continue;
        lesion_box *b = &l->boxes[l->n_boxes];
        double v[4];
        for (int j = 0; j < 4 && rc == 0; j++)
            if (parse_number(r->fields[2 + j], &v[j]) || v[j] < 0 || (j >= 2 && v[j] <= 0))
                rc = th_errf(err, "%s:%d: image %s: box %s '%s' is not a %s number", path, r->line, r->fields[0],
                             what[j], r->fields[2 + j], j >= 2 ? "positive" : "non-negative");
        if (rc) break;
        *b = (lesion_box){.label = k, .x = v[0], .y = v[1], .w = v[2], .h = v[3]};
        stem_of(r->fields[0], b->stem, sizeof b->stem);
        l->n_boxes++;
    }
    th_csv_free(&csv);
    if (rc == 0) qsort(l->boxes, (size_t)l->n_boxes, sizeof *l->boxes, cmp_stem);
    return rc;
}

/* "-1", or pairs of non-negative integers (lengths positive). */
static int check_rle(const char *code)
{
    if (!strcmp(code, "-1")) return 0;
    int n = 0;
    for (const char *p = code;;) {
        while (*p == ' ') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || (n % 2 == 1 && v == 0) || (*end && *end != ' ')) return -1;
        n++;
        p = end;
    }
    return n > 0 && n % 2 == 0 ? 0 : -1;
}

static int load_rle(th_lesions *l, const char *path, th_err *err)
{
    snprintf(l->rle_path, sizeof l->rle_path, "%s", path);
    l->rle_label = find_label(l, "Pneumothorax");
    if (l->rle_label < 0)
        return th_errf(err, "%s: SIIM run-length masks are of Pneumothorax, which is not among the labels kept", path);
    if (th_csv_read(&l->rle_csv, path, err)) return -1;
    th_csv *csv = &l->rle_csv;
    if (csv->header.n_fields < 2)
        return th_errf(err, "%s:%d: expected the columns ImageId, EncodedPixels", path, csv->header.line);
    l->rles = malloc(sizeof *l->rles * (size_t)(csv->n_rows > 0 ? csv->n_rows : 1));
    if (!l->rles) return th_errf(err, "%s: out of memory for %d rows", path, csv->n_rows);
    for (int i = 0; i < csv->n_rows; i++) {
        const th_csv_row *r = &csv->rows[i];
        if (r->n_fields < 2) return th_errf(err, "%s:%d: %d field; expected ImageId, EncodedPixels", path, r->line, 1);
        const char *code = r->fields[1];
        while (*code == ' ') code++;
        if (check_rle(code))
            return th_errf(err, "%s:%d: image %s: EncodedPixels is not -1 or pairs of start and length", path,
                           r->line, r->fields[0]);
        lesion_rle *e = &l->rles[l->n_rles++];
        stem_of(r->fields[0], e->stem, sizeof e->stem);
        e->line = r->line;
        e->code = code;
    }
    qsort(l->rles, (size_t)l->n_rles, sizeof *l->rles, cmp_stem);
    return 0;
}

int th_lesions_load(th_lesions **out, const char *boxes_path, const char *masks_dir, const char *rle_path,
                    int n_labels, const char *const *label_names, th_err *err)
{
    *out = NULL;
    th_lesions *l = calloc(1, sizeof *l);
    if (!l) return th_errf(err, "out of memory for the lesion sources");
    l->n_labels = n_labels;
    l->label_names = label_names;
    l->masks_dir = masks_dir;
    struct stat st;
    int rc = 0;
    if (masks_dir && (stat(masks_dir, &st) || !S_ISDIR(st.st_mode)))
        rc = th_errf(err, "%s: not a folder of masks", masks_dir);
    if (rc == 0 && boxes_path) rc = load_boxes(l, boxes_path, err);
    if (rc == 0 && rle_path) rc = load_rle(l, rle_path, err);
    if (rc) {
        th_lesions_free(l);
        return -1;
    }
    *out = l;
    return 0;
}

void th_lesions_free(th_lesions *l)
{
    if (!l) return;
    free(l->boxes);
    free(l->rles);
    th_csv_free(&l->rle_csv);
    free(l);
}

/* The first index of sorted entries [n] of size sz whose stem is stem, or n. */
static int first_of(const void *base, int n, size_t sz, const char *stem)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp((const char *)base + (size_t)mid * sz, stem) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Pixels [lo, hi) of a stored axis of n pixels whose centres, scaled by
 * scale (original / stored), lie in [a, b). */
static void box_span(double a, double b, double scale, int n, int *lo, int *hi)
{
    /* Clamped while still double: a box far outside the image (a CSV may
     * say x = 777777777718) has no int value. */
    double l = ceil(a / scale - 0.5), h = ceil(b / scale - 0.5);
    *lo = l <= 0 ? 0 : l >= n ? n : (int)l;
    *hi = h <= 0 ? 0 : h >= n ? n : (int)h;
}

/* A 0/255 mask src [oh, ow] resized to [h, w] and or-ed into out [h, w] as
 * 0/1 where the result is >= 128. scratch [h, w]. */
static int add_mask(const uint8_t *src, int ow, int oh, int h, int w, uint8_t *scratch, uint8_t *out, th_err *err)
{
    if (th_image_resize(src, ow, oh, scratch, w, h, err)) return -1;
    for (size_t i = 0; i < (size_t)h * w; i++) out[i] |= scratch[i] >= 128;
    return 0;
}

/* The path of a PNG mask into path[n]: 1 when that file exists, else 0. */
static int mask_png(const th_lesions *l, const char *stem, const char *label, char *path, size_t n)
{
    int len = label ? snprintf(path, n, "%s/%s__%s.png", l->masks_dir, stem, label)
                    : snprintf(path, n, "%s/%s.png", l->masks_dir, stem);
    struct stat st;
    return len > 0 && (size_t)len < n && stat(path, &st) == 0;
}

static int draw_png(const char *path, int ow, int oh, int h, int w, uint8_t *scratch, uint8_t *out, th_err *err)
{
    th_image m;
    if (th_image_read_png(path, &m, err)) return -1;
    int rc = 0;
    if (m.w != ow || m.h != oh) rc = th_errf(err, "%s: the mask is %dx%d, its image %dx%d", path, m.w, m.h, ow, oh);
    for (size_t i = 0; rc == 0 && i < (size_t)ow * oh; i++) m.px[i] = m.px[i] ? 255 : 0;
    if (rc == 0) rc = add_mask(m.px, ow, oh, h, w, scratch, out, err);
    th_image_free(&m);
    return rc;
}

/* SIIM's relative column-major runs into full [oh, ow] (0/255). */
static int decode_rle(const th_lesions *l, const lesion_rle *e, int ow, int oh, uint8_t *full, th_err *err)
{
    if (!strcmp(e->code, "-1")) return 0;
    size_t total = (size_t)ow * oh, pos = 0;
    for (const char *p = e->code; *p;) {
        char *end;
        size_t start = strtoul(p, &end, 10);
        size_t len = strtoul(end, &end, 10);
        p = end;
        while (*p == ' ') p++;
        pos += start;
        if (pos > total || len > total - pos)
            return th_errf(err, "%s:%d: image %s: a run ends past pixel %zu of its %dx%d pixels", l->rle_path,
                           e->line, e->stem, total, ow, oh);
        for (size_t q = pos; q < pos + len; q++) full[(q % (size_t)oh) * ow + q / (size_t)oh] = 255;
        pos += len;
    }
    return 0;
}

int th_lesions_draw(const th_lesions *l, const char *image, int ow, int oh, const uint8_t *labels, int h, int w,
                    uint8_t *out, th_err *err)
{
    size_t hw = (size_t)h * w;
    memset(out, 0, (size_t)l->n_labels * hw);
    char stem[256];
    stem_of(image, stem, sizeof stem);
    for (int i = first_of(l->boxes, l->n_boxes, sizeof *l->boxes, stem);
         i < l->n_boxes && !strcmp(l->boxes[i].stem, stem); i++) {
        const lesion_box *b = &l->boxes[i];
        int x0, x1, y0, y1;
        box_span(b->x, b->x + b->w, (double)ow / w, w, &x0, &x1);
        box_span(b->y, b->y + b->h, (double)oh / h, h, &y0, &y1);
        uint8_t *m = out + (size_t)b->label * hw;
        for (int y = y0; y < y1; y++) memset(m + (size_t)y * w + x0, 1, x1 > x0 ? (size_t)(x1 - x0) : 0);
    }

    uint8_t *scratch = NULL, *full = NULL;
    int rc = 0;
    if (l->masks_dir || l->n_rles) {
        scratch = malloc(hw);
        full = l->n_rles ? malloc((size_t)ow * oh) : NULL;
        if (!scratch || (l->n_rles && !full)) rc = th_errf(err, "out of memory for the masks of %s", image);
    }
    char path[4096];
    for (int k = 0; rc == 0 && l->masks_dir && k < l->n_labels; k++)
        if (mask_png(l, stem, l->label_names[k], path, sizeof path))
            rc = draw_png(path, ow, oh, h, w, scratch, out + (size_t)k * hw, err);
    if (rc == 0 && l->masks_dir && mask_png(l, stem, NULL, path, sizeof path)) {
        for (int k = 0; rc == 0 && k < l->n_labels; k++)
            if (labels[k]) rc = draw_png(path, ow, oh, h, w, scratch, out + (size_t)k * hw, err);
    }
    int i = rc == 0 ? first_of(l->rles, l->n_rles, sizeof *l->rles, stem) : l->n_rles;
    if (i < l->n_rles && !strcmp(l->rles[i].stem, stem)) {
        memset(full, 0, (size_t)ow * oh);
        for (; rc == 0 && i < l->n_rles && !strcmp(l->rles[i].stem, stem); i++)
            rc = decode_rle(l, &l->rles[i], ow, oh, full, err);
        if (rc == 0) rc = add_mask(full, ow, oh, h, w, scratch, out + (size_t)l->rle_label * hw, err);
    }
    free(scratch);
    free(full);
    if (rc) return -1;
    int drawn = 0;
    for (int k = 0; k < l->n_labels; k++) {
        size_t j = 0;
        while (j < hw && !out[(size_t)k * hw + j]) j++;
        drawn += j < hw;
    }
    return drawn;
}

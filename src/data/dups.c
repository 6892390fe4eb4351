/* dups.c - the same picture twice in a dataset: identical pixels (a SHA-256
 * of each image) or nearly so (a DCT perceptual hash within a Hamming
 * distance), grouped (see thorax/data.h).
 *
 * Why a DCT hash: a chest radiograph's coarse layout (two dark lungs, a
 * bright mediastinum) is shared by every image, so a hash of the mean
 * intensities of an 8x8 grid puts distinct patients a few bits apart. The
 * low-frequency DCT coefficients beyond the DC term, each compared with
 * their median, describe how this image departs from that layout, and
 * resizing, re-encoding and mild noise barely move them.
 */
#include "thorax/data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "thorax/util.h"

enum {
    PH_SIDE = 32,           /* the image is resized to PH_SIDE x PH_SIDE before the DCT */
    PH_K = 8,               /* coefficients (u, v) in [1, PH_K] on each axis: 64 bits */
    READ_BATCH = 256,       /* images read at a time */
};

static const double PI = 3.14159265358979323846;

/* cos((2x + 1) u pi / 2N) for the DCT-II of PH_SIDE samples, rows u = 1..PH_K. */
static void dct_table(double t[PH_K][PH_SIDE])
{
    for (int u = 0; u < PH_K; u++)
        for (int x = 0; x < PH_SIDE; x++) t[u][x] = cos((2.0 * x + 1.0) * (u + 1) * PI / (2.0 * PH_SIDE));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int phash_with(const double t[PH_K][PH_SIDE], const uint8_t *px, int h, int w, uint64_t *hash, th_err *err)
{
    uint8_t small[PH_SIDE * PH_SIDE];
    if (th_image_resize(px, w, h, small, PH_SIDE, PH_SIDE, err)) return -1;
    /* Separable 2-D DCT: rows first (tmp [PH_SIDE rows, PH_K]), then columns. */
    double tmp[PH_SIDE][PH_K], c[PH_K * PH_K], sorted[PH_K * PH_K];
    for (int y = 0; y < PH_SIDE; y++)
        for (int u = 0; u < PH_K; u++) {
            double s = 0;
            for (int x = 0; x < PH_SIDE; x++) s += t[u][x] * small[y * PH_SIDE + x];
            tmp[y][u] = s;
        }
    for (int v = 0; v < PH_K; v++)
        for (int u = 0; u < PH_K; u++) {
            double s = 0;
            for (int y = 0; y < PH_SIDE; y++) s += t[v][y] * tmp[y][u];
            c[v * PH_K + u] = s;
        }
    memcpy(sorted, c, sizeof c);
    qsort(sorted, PH_K * PH_K, sizeof *sorted, cmp_double);
    double median = 0.5 * (sorted[PH_K * PH_K / 2 - 1] + sorted[PH_K * PH_K / 2]);
    uint64_t bits = 0;
    for (int i = 0; i < PH_K * PH_K; i++)
        if (c[i] > median) bits |= 1ull << i;
    *hash = bits;
    return 0;
}

/* Union-find with path halving; the smaller root wins, so a group's root is
 * its earliest image. */
static int find_root(int *parent, int i)
{
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
}

static void join(int *parent, int a, int b)
{
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a < b) parent[b] = a;
    else if (b < a) parent[a] = b;
}

typedef struct {
    uint8_t sha[TH_IMAGE_DIGEST];
    int row;
} digest_row;

static int cmp_digest(const void *a, const void *b)
{
    const digest_row *x = a, *y = b;
    int c = memcmp(x->sha, y->sha, sizeof x->sha);
    return c ? c : (x->row > y->row) - (x->row < y->row);
}

/* Every image's digest and perceptual hash, read through a serial handle so
 * that one rank can do it without the others. */
static int hash_all(const th_dataset *ds, digest_row *dg, uint64_t *ph, th_err *err)
{
    size_t hw = (size_t)ds->h * (size_t)ds->w;
    int batch = ds->n < READ_BATCH ? ds->n : READ_BATCH;
    uint8_t *px = malloc(hw * (size_t)(batch > 0 ? batch : 1));
    int *idx = malloc(sizeof *idx * (size_t)(batch > 0 ? batch : 1));
    double t[PH_K][PH_SIDE];
    th_image_reader rd;
    int rc = px && idx ? 0 : th_errf(err, "out of memory hashing the images of %s", ds->path);
    if (rc == 0) rc = th_image_reader_open(&rd, ds, err);
    if (rc) {
        free(px);
        free(idx);
        return rc;
    }
    dct_table(t);
    for (int first = 0; first < ds->n && rc == 0; first += batch) {
        int count = ds->n - first < batch ? ds->n - first : batch;
        for (int j = 0; j < count; j++) idx[j] = first + j;
        rc = th_image_reader_read(&rd, idx, count, px, err);
        for (int j = 0; j < count && rc == 0; j++) {
            const uint8_t *img = px + (size_t)j * hw;
            dg[first + j].row = first + j;
            th_image_digest(img, hw, dg[first + j].sha);
            rc = phash_with(t, img, ds->h, ds->w, &ph[first + j], err);
        }
    }
    th_image_reader_close(&rd);
    free(px);
    free(idx);
    return rc ? th_err_prefix(err, "hashing the images of %s: ", ds->path) : 0;
}

int th_dups_find(const th_dataset *ds, int max_distance, th_dups *d, th_err *err)
{
    memset(d, 0, sizeof *d);
    int n = ds->n;
    size_t cap = n > 0 ? (size_t)n : 1;
    digest_row *dg = malloc(sizeof *dg * cap);
    int *parent = malloc(sizeof *parent * cap);
    d->n = n;
    d->phash = malloc(sizeof *d->phash * cap);
    d->group = malloc(sizeof *d->group * cap);
    d->exact = malloc(cap);
    int rc = dg && parent && d->phash && d->group && d->exact ? 0
             : th_errf(err, "out of memory looking for duplicate images in %s", ds->path);
    if (rc == 0) rc = hash_all(ds, dg, d->phash, err);
    if (rc) {
        free(dg);
        free(parent);
        th_dups_free(d);
        return rc;
    }
    for (int i = 0; i < n; i++) parent[i] = i;
    qsort(dg, (size_t)n, sizeof *dg, cmp_digest);
    for (int i = 1; i < n; i++)
        if (!memcmp(dg[i].sha, dg[i - 1].sha, sizeof dg[i].sha)) join(parent, dg[i - 1].row, dg[i].row);
    /* Every pair: n^2 / 2 popcounts, about a second per 50,000 images. */
    if (max_distance >= 0)
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
                if (__builtin_popcountll(d->phash[i] ^ d->phash[j]) <= max_distance) join(parent, i, j);

    /* Number the groups of two or more by their earliest image. */
    int *size = calloc(cap, sizeof *size);
    if (!size) {
        free(dg);
        free(parent);
        th_dups_free(d);
        return th_errf(err, "out of memory looking for duplicate images in %s", ds->path);
    }
    for (int i = 0; i < n; i++) size[find_root(parent, i)]++;
    for (int i = 0; i < n; i++) {
        int r = find_root(parent, i);
        if (size[r] < 2) d->group[i] = -1;
        else if (r == i) d->group[i] = d->n_groups++;
        else d->group[i] = d->group[r];
    }
    /* A group is exact when all of its members share the first one's digest. */
    uint8_t(*first_sha)[TH_IMAGE_DIGEST] = malloc(sizeof *first_sha * (size_t)(d->n_groups > 0 ? d->n_groups : 1));
    int *seen = calloc((size_t)(d->n_groups > 0 ? d->n_groups : 1), sizeof *seen);
    if (!first_sha || !seen) rc = th_errf(err, "out of memory looking for duplicate images in %s", ds->path);
    for (int k = 0; k < d->n_groups && rc == 0; k++) d->exact[k] = 1;
    for (int i = 0; i < n && rc == 0; i++) {
        int g = d->group[dg[i].row];
        if (g < 0) continue;
        if (!seen[g]) {
            memcpy(first_sha[g], dg[i].sha, TH_IMAGE_DIGEST);
            seen[g] = 1;
        } else if (memcmp(first_sha[g], dg[i].sha, TH_IMAGE_DIGEST)) {
            d->exact[g] = 0;
        }
    }
    free(first_sha);
    free(seen);
    free(size);
    free(dg);
    free(parent);
    if (rc) th_dups_free(d);
    return rc;
}

void th_dups_free(th_dups *d)
{
    free(d->phash);
    free(d->group);
    free(d->exact);
    memset(d, 0, sizeof *d);
}

/* dataset.c - the dataset file: parallel reading, serial atomic writing
 * (see thorax/dataset.h for the layout).
 *
 * Reading: every rank opens the file with the MPI-IO driver, but only rank 0
 * reads and validates the index (labels, names, patient IDs, split) and then
 * broadcasts it. The ranks first agree on rank 0's verdict (th_dist_agree),
 * so a bad file fails on every rank with the same sentence instead of
 * leaving the other ranks waiting in a collective. Images are read afterwards with
 * independent I/O: ranks never wait for one another to fetch a batch.
 *
 * Writing: one process with the default (sec2) driver. Images and masks are
 * written row by row as they come; the strings are kept in memory and written
 * at the end; the file lives under `<path>.tmp` until it is complete.
 *
 * HDF5's own error stack printing is switched off: library code never prints,
 * and our messages name the file and the dataset instead.
 */
#include "thorax/dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "thorax/split.h"

#include "thorax/csv.h"
#include "thorax/dist.h"
#include "thorax/ingest.h"

/* One label limit from ingest to the file (and, in src/train/plan.c, from
 * the file to the run). */
_Static_assert(TH_INGEST_MAX_LABELS == TH_DATASET_MAX_LABELS, "ingest must not write a file that cannot be opened");
_Static_assert(TH_DATASET_MAX_STRING == TH_CSV_MAX_FIELD, "an ingested name must fit in a dataset");

static void silence_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* ------------------------------------------------------------------------
 * A growable buffer of NUL-terminated strings, packed end to end: this is
 * how the index strings travel in one broadcast.
 */
typedef struct {
    char *data;
    size_t len, cap;
} packed_strings;

static int packed_add(packed_strings *p, const char *s)
{
    size_t n = strlen(s) + 1;
    if (p->len + n > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap < p->len + n) cap *= 2;
        char *bigger = realloc(p->data, cap);
        if (!bigger) return -1;
        p->data = bigger;
        p->cap = cap;
    }
    memcpy(p->data + p->len, s, n);
    p->len += n;
    return 0;
}

/* The index as rank 0 reads it, before it is broadcast. */
typedef struct {
    int64_t n, h, w, n_labels, has_split, has_masks;
    uint8_t *labels, *split;
    packed_strings strings; /* label names, then patient IDs, then image names */
} file_index;

static void index_free(file_index *ix)
{
    free(ix->labels);
    free(ix->split);
    free(ix->strings.data);
    memset(ix, 0, sizeof *ix);
}

/* ------------------------------------------------------------------------
 * Small HDF5 helpers for reading and validating.
 */

static int type_is_uint8(hid_t t)
{
    return H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 1 && H5Tget_sign(t) == H5T_SGN_NONE;
}

/* Opens dataset /name, or explains why it is not there. */
static hid_t open_dataset(hid_t f, const char *path, const char *name, th_err *err)
{
    htri_t exists = H5Lexists(f, name, H5P_DEFAULT);
    if (exists <= 0) {
        th_errf(err, "%s has no /%s dataset", path, name);
        return -1;
    }
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) th_errf(err, "%s: /%s is not a readable dataset", path, name);
    return d;
}

/* Reads the shape of d into dims and checks it has `rank` dimensions. */
static int check_rank(hid_t d, const char *path, const char *name, int rank, const char *shape, hsize_t *dims,
                      th_err *err)
{
    hid_t sp = H5Dget_space(d);
    int nd = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    if (nd == rank) H5Sget_simple_extent_dims(sp, dims, NULL);
    if (sp >= 0) H5Sclose(sp);
    if (nd < 0) return th_errf(err, "%s: cannot read the shape of /%s", path, name);
    if (nd != rank) return th_errf(err, "%s: /%s has %d dimensions, expected %d %s", path, name, nd, rank, shape);
    return 0;
}

/* Checks the element type of dataset d: uint8 when strict, any integer else. */
static int check_integer_type(hid_t d, const char *path, const char *name, int strict_uint8, th_err *err)
{
    hid_t t = H5Dget_type(d);
    int ok = t >= 0 && (strict_uint8 ? type_is_uint8(t) : H5Tget_class(t) == H5T_INTEGER);
    if (t >= 0) H5Tclose(t);
    if (!ok) return th_errf(err, "%s: /%s must hold %s", path, name, strict_uint8 ? "uint8 values" : "integers");
    return 0;
}

/* Reads a whole small-integer dataset into uint8 out[count]. uint8 data is
 * read as is; wider integers go through int64 so that values out of range
 * (negative, 256, ...) reach the caller's check instead of being clipped
 * silently by HDF5's conversion. Values above 255 become 255. */
static int read_small_ints(hid_t d, const char *path, const char *name, size_t count, uint8_t *out, th_err *err)
{
    hid_t t = H5Dget_type(d);
    int direct = t >= 0 && type_is_uint8(t);
    if (t >= 0) H5Tclose(t);
    herr_t rc;
    if (direct) {
        rc = H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    } else {
        long long *wide = malloc((count ? count : 1) * sizeof *wide);
        if (!wide) return th_errf(err, "%s: out of memory reading /%s", path, name);
        rc = H5Dread(d, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, wide);
        for (size_t i = 0; rc >= 0 && i < count; i++) out[i] = wide[i] < 0 || wide[i] > 255 ? 255 : (uint8_t)wide[i];
        free(wide);
    }
    if (rc < 0) return th_errf(err, "%s: cannot read /%s", path, name);
    return 0;
}

/* Reads `count` strings from a dataset or an attribute (obj, is_attr) into
 * the packed buffer. Handles variable-length strings (as h5py writes them)
 * and fixed-length ones (NUL- or space-padded). A NULL variable-length
 * string reads as "". */
static int read_strings(hid_t obj, int is_attr, const char *path, const char *what, size_t count,
                        packed_strings *out, th_err *err)
{
    hid_t ftype = is_attr ? H5Aget_type(obj) : H5Dget_type(obj);
    if (ftype < 0 || H5Tget_class(ftype) != H5T_STRING) {
        if (ftype >= 0) H5Tclose(ftype);
        return th_errf(err, "%s: %s must hold strings", path, what);
    }
    int rc = 0;
    size_t width = H5Tget_size(ftype);
    int variable = H5Tis_variable_str(ftype) > 0;
    if (!variable && width > TH_DATASET_MAX_STRING) {
        H5Tclose(ftype);
        return th_errf(err, "%s: %s holds strings of %zu bytes, more than the limit of %d", path, what, width,
                       TH_DATASET_MAX_STRING);
    }
    hid_t space = is_attr ? H5Aget_space(obj) : H5Dget_space(obj);
    hid_t mtype = H5Tcopy(H5T_C_S1);
    /* Same character set as the file: HDF5 will not convert between them. */
    H5Tset_cset(mtype, H5Tget_cset(ftype));
    if (variable) {
        char **vl = calloc(count ? count : 1, sizeof *vl);
        H5Tset_size(mtype, H5T_VARIABLE);
        herr_t r = !vl ? -1
                       : is_attr ? H5Aread(obj, mtype, vl)
                                 : H5Dread(obj, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, vl);
        if (r < 0) rc = th_errf(err, "%s: cannot read the strings of %s", path, what);
        for (size_t i = 0; rc == 0 && i < count; i++) {
            const char *v = vl[i] ? vl[i] : "";
            size_t len = strlen(v);
            if (len > TH_DATASET_MAX_STRING)
                rc = th_errf(err, "%s: %s: string %zu is %zu bytes long, more than the limit of %d", path, what, i,
                             len, TH_DATASET_MAX_STRING);
            else if (packed_add(out, v))
                rc = th_errf(err, "%s: out of memory reading %s", path, what);
        }
        if (r >= 0) H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, vl);
        free(vl);
    } else {
        width++;
        char *fixed = calloc(count ? count : 1, width);
        H5Tset_size(mtype, width);
        H5Tset_strpad(mtype, H5T_STR_NULLTERM);
        herr_t r = !fixed ? -1
                          : is_attr ? H5Aread(obj, mtype, fixed)
                                    : H5Dread(obj, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, fixed);
        if (r < 0) rc = th_errf(err, "%s: cannot read the strings of %s", path, what);
        for (size_t i = 0; rc == 0 && i < count; i++) {
            char *s = fixed + i * width;
            s[width - 1] = '\0';
            /* Space padding is padding, not part of the name. */
            for (size_t k = strlen(s); k > 0 && s[k - 1] == ' '; k--) s[k - 1] = '\0';
            if (packed_add(out, s)) rc = th_errf(err, "%s: out of memory reading %s", path, what);
        }
        free(fixed);
    }
    H5Tclose(mtype);
    H5Sclose(space);
    H5Tclose(ftype);
    return rc;
}

/* Reads /patient_id or /image_name: strings [n]; an empty one is an error
 * because it would silently merge unrelated images into one patient. */
static int read_string_column(hid_t f, const char *path, const char *name, int64_t n, packed_strings *out,
                              th_err *err)
{
    hsize_t dims[1];
    hid_t d = open_dataset(f, path, name, err);
    if (d < 0) return -1;
    int rc = check_rank(d, path, name, 1, "[N]", dims, err);
    if (rc == 0 && (int64_t)dims[0] != n)
        rc = th_errf(err, "%s: /%s has %llu rows but /images has %lld", path, name, (unsigned long long)dims[0],
                     (long long)n);
    size_t start = out->len;
    char what[64];
    snprintf(what, sizeof what, "/%s", name);
    if (rc == 0) rc = read_strings(d, 0, path, what, (size_t)n, out, err);
    for (int64_t i = 0; rc == 0 && i < n; i++) {
        if (!out->data[start]) rc = th_errf(err, "%s: /%s is empty in row %lld", path, name, (long long)i);
        start += strlen(out->data + start) + 1;
    }
    H5Dclose(d);
    return rc;
}

/* Reads and validates the whole index of an open file (rank 0 only). */
static int read_index(hid_t f, const char *path, file_index *ix, th_err *err)
{
    hsize_t dims[4];
    memset(ix, 0, sizeof *ix);

    hid_t d = open_dataset(f, path, "images", err);
    if (d < 0) return -1;
    int rc = check_integer_type(d, path, "images", 1, err);
    if (rc == 0) rc = check_rank(d, path, "images", 3, "[N, H, W]", dims, err);
    H5Dclose(d);
    if (rc) return rc;
    if (dims[0] == 0) return th_errf(err, "%s: /images holds no images", path);
    if (dims[0] > TH_DATASET_MAX_IMAGES)
        return th_errf(err, "%s: /images claims %llu images, more than the limit of %ld: corrupt?", path,
                       (unsigned long long)dims[0], (long)TH_DATASET_MAX_IMAGES);
    if (dims[1] == 0 || dims[2] == 0 || dims[1] > TH_IMAGE_MAX_SIDE || dims[2] > TH_IMAGE_MAX_SIDE)
        return th_errf(err, "%s: /images has an impossible image size %llux%llu (1 to %d pixels a side)", path,
                       (unsigned long long)dims[1], (unsigned long long)dims[2], TH_IMAGE_MAX_SIDE);
    ix->n = (int64_t)dims[0];
    ix->h = (int64_t)dims[1];
    ix->w = (int64_t)dims[2];

    d = open_dataset(f, path, "labels", err);
    if (d < 0) return -1;
    rc = check_integer_type(d, path, "labels", 0, err);
    if (rc == 0) rc = check_rank(d, path, "labels", 2, "[N, L]", dims, err);
    if (rc == 0 && (int64_t)dims[0] != ix->n)
        rc = th_errf(err, "%s: /labels has %llu rows but /images has %lld", path, (unsigned long long)dims[0],
                     (long long)ix->n);
    if (rc == 0 && (dims[1] == 0 || dims[1] > TH_DATASET_MAX_LABELS))
        rc = th_errf(err, "%s: /labels has %llu label columns (1 to %d)", path, (unsigned long long)dims[1],
                     TH_DATASET_MAX_LABELS);
    if (rc == 0) {
        ix->n_labels = (int64_t)dims[1];
        if (H5Aexists(d, "names") <= 0) {
            rc = th_errf(err, "%s: /labels has no attribute 'names'", path);
        } else {
            hid_t a = H5Aopen(d, "names", H5P_DEFAULT);
            hid_t sp = a < 0 ? -1 : H5Aget_space(a);
            hssize_t count = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
            if (sp >= 0) H5Sclose(sp);
            if (count != ix->n_labels)
                rc = th_errf(err, "%s: attribute 'names' of /labels has %lld names for %lld label columns", path,
                             (long long)count, (long long)ix->n_labels);
            else
                rc = read_strings(a, 1, path, "attribute 'names' of /labels", (size_t)count, &ix->strings, err);
            if (a >= 0) H5Aclose(a);
        }
    }
    size_t cells = (size_t)ix->n * (size_t)ix->n_labels;
    if (rc == 0 && !(ix->labels = malloc(cells))) rc = th_errf(err, "%s: out of memory for /labels", path);
    if (rc == 0) rc = read_small_ints(d, path, "labels", cells, ix->labels, err);
    H5Dclose(d);
    for (size_t c = 0; rc == 0 && c < cells; c++) {
        if (ix->labels[c] <= 1) continue;
        int64_t row = (int64_t)(c / (size_t)ix->n_labels), col = (int64_t)(c % (size_t)ix->n_labels);
        const char *name = ix->strings.data;
        for (int64_t k = 0; k < col; k++) name += strlen(name) + 1;
        rc = th_errf(err, "%s: /labels row %lld, label '%s' is not 0 or 1", path, (long long)row, name);
    }
    if (rc) return rc;

    if (read_string_column(f, path, "patient_id", ix->n, &ix->strings, err)) return -1;
    if (read_string_column(f, path, "image_name", ix->n, &ix->strings, err)) return -1;

    if (H5Lexists(f, "split", H5P_DEFAULT) > 0) {
        d = open_dataset(f, path, "split", err);
        if (d < 0) return -1;
        rc = check_integer_type(d, path, "split", 0, err);
        if (rc == 0) rc = check_rank(d, path, "split", 1, "[N]", dims, err);
        if (rc == 0 && (int64_t)dims[0] != ix->n)
            rc = th_errf(err, "%s: /split has %llu rows but /images has %lld", path, (unsigned long long)dims[0],
                         (long long)ix->n);
        if (rc == 0 && !(ix->split = malloc((size_t)ix->n))) rc = th_errf(err, "%s: out of memory for /split", path);
        if (rc == 0) rc = read_small_ints(d, path, "split", (size_t)ix->n, ix->split, err);
        H5Dclose(d);
        for (int64_t i = 0; rc == 0 && i < ix->n; i++)
            if (ix->split[i] > TH_SPLIT_TEST && ix->split[i] != TH_SPLIT_NONE)
                rc = th_errf(err, "%s: /split row %lld is %d, expected 0 (train), 1 (val) or 2 (test)", path,
                             (long long)i, ix->split[i]);
        if (rc) return rc;
        ix->has_split = 1;
    }

    if (H5Lexists(f, "masks", H5P_DEFAULT) > 0) {
        d = open_dataset(f, path, "masks", err);
        if (d < 0) return -1;
        rc = check_integer_type(d, path, "masks", 1, err);
        if (rc == 0) rc = check_rank(d, path, "masks", 4, "[N, L, H, W]", dims, err);
        H5Dclose(d);
        if (rc) return rc;
        if ((int64_t)dims[0] != ix->n || (int64_t)dims[1] != ix->n_labels || (int64_t)dims[2] != ix->h ||
            (int64_t)dims[3] != ix->w)
            return th_errf(err, "%s: /masks is [%llu, %llu, %llu, %llu] but should be [%lld, %lld, %lld, %lld]", path,
                           (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)dims[2],
                           (unsigned long long)dims[3], (long long)ix->n, (long long)ix->n_labels, (long long)ix->h,
                           (long long)ix->w);
        ix->has_masks = 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Broadcasting.
 */

/* Sends rank 0's index to every rank (collective): a header of the sizes,
 * then labels [n, n_labels], split [n] (if any) and the packed strings. Fails
 * on every rank, with the lowest failing rank's message, if any rank could
 * not allocate its copy. */
static int bcast_index(file_index *ix, const char *path, th_comm comm, th_err *err)
{
    int64_t hdr[7] = {ix->n, ix->h, ix->w, ix->n_labels, ix->has_split, ix->has_masks, (int64_t)ix->strings.len};
    if (th_dist_bcast(comm, 0, hdr, sizeof hdr, err)) return -1;
    if (th_dist_rank(comm) != 0) {
        ix->n = hdr[0];
        ix->h = hdr[1];
        ix->w = hdr[2];
        ix->n_labels = hdr[3];
        ix->has_split = hdr[4];
        ix->has_masks = hdr[5];
        ix->strings.len = ix->strings.cap = (size_t)hdr[6];
        ix->labels = malloc((size_t)(ix->n * ix->n_labels));
        ix->split = ix->has_split ? malloc((size_t)ix->n) : NULL;
        ix->strings.data = malloc(ix->strings.len);
    }
    int rc = 0;
    if (!ix->labels || (ix->has_split && !ix->split) || !ix->strings.data)
        rc = th_errf(err, "%s: out of memory for the index of %lld images", path, (long long)ix->n);
    if (th_dist_agree(comm, rc, err)) return -1;
    if (th_dist_bcast(comm, 0, ix->labels, (size_t)(ix->n * ix->n_labels), err)) return -1;
    if (ix->has_split && th_dist_bcast(comm, 0, ix->split, (size_t)ix->n, err)) return -1;
    return th_dist_bcast(comm, 0, ix->strings.data, ix->strings.len, err);
}

/* Moves the index into ds. The three string tables and their characters
 * share one allocation that starts at ds->label_names, which is what
 * th_dataset_close frees. */
static int adopt_index(th_dataset *ds, file_index *ix)
{
    size_t n_ptrs = (size_t)(ix->n_labels + 2 * ix->n);
    char **block = malloc(n_ptrs * sizeof(char *) + ix->strings.len);
    if (!block) return -1;
    char *s = (char *)(block + n_ptrs);
    memcpy(s, ix->strings.data, ix->strings.len);
    for (size_t i = 0; i < n_ptrs; i++) {
        block[i] = s;
        s += strlen(s) + 1;
    }
    ds->n = (int)ix->n;
    ds->h = (int)ix->h;
    ds->w = (int)ix->w;
    ds->n_labels = (int)ix->n_labels;
    ds->label_names = block;
    ds->patient_id = block + ix->n_labels;
    ds->image_name = block + ix->n_labels + ix->n;
    ds->labels = ix->labels;
    ds->split = ix->has_split ? ix->split : NULL;
    ds->has_masks = (int)ix->has_masks;
    if (!ix->has_split) free(ix->split);
    free(ix->strings.data);
    memset(ix, 0, sizeof *ix);
    return 0;
}

/* Rank 0 only: names the reason a file cannot be opened at all (missing,
 * unreadable, not HDF5), which H5Fopen would not tell us. */
static int probe_file(const char *path, th_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return th_errf(err, "cannot open dataset %s: %s", path, strerror(errno));
    fclose(f);
    if (H5Fis_hdf5(path) <= 0) return th_errf(err, "%s is not an HDF5 file", path);
    return 0;
}

int th_dataset_open(th_dataset *ds, const char *path, th_comm comm, th_err *err)
{
    memset(ds, 0, sizeof *ds);
    ds->file = ds->images = -1;
    silence_hdf5();
    th_err e = {{0}};
    file_index ix = {0};

    int rc = 0;
    if (snprintf(ds->path, sizeof ds->path, "%s", path) >= (int)sizeof ds->path)
        rc = th_errf(&e, "dataset path too long: %s", path);
    if (th_dist_rank(comm) == 0 && rc == 0) rc = probe_file(path, &e);
    if (th_dist_agree(comm, rc, &e)) goto fail;

    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f = -1;
    if (fapl >= 0 && th_dist_h5_mpio(fapl, comm, &e) == 0) f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (th_dist_any(comm, f < 0)) {
        /* Closing is collective; with a rank that failed to open, it would
         * hang, so a handle that opened elsewhere is left to HDF5's exit. */
        th_errf(&e, "%s: cannot open the HDF5 file with MPI-IO (damaged or truncated?)", path);
        goto fail;
    }
    ds->file = f;

    if (th_dist_rank(comm) == 0) rc = read_index(f, path, &ix, &e);
    if (th_dist_agree(comm, rc, &e)) goto fail;
    if (bcast_index(&ix, path, comm, &e)) goto fail;
    long long n = (long long)ix.n;
    if (adopt_index(ds, &ix)) rc = th_errf(&e, "%s: out of memory for the index of %lld images", path, n);
    if (rc == 0 && (ds->images = H5Dopen2(f, "images", H5P_DEFAULT)) < 0)
        rc = th_errf(&e, "%s: cannot open /images", path);
    if (th_dist_agree(comm, rc, &e)) goto fail;
    return 0;

fail:
    index_free(&ix);
    th_dataset_close(ds);
    if (err) *err = e;
    return -1;
}

/* ------------------------------------------------------------------------
 * Reading images.
 */

/* Reads idx[0..count) into out [count, H, W]: one H5Dread per run of
 * consecutive rows, straight into its place in out, so any order (and any
 * repeat) comes back as asked without sorting or staging. A single read over
 * the union of the runs would be the obvious alternative, but HDF5 1.10
 * maps complex selections onto chunks some 30 times slower than it reads
 * one regular block after another. */
/* Reads rows idx[0..count) of an open /images [n, h, w] into out, one
 * H5Dread per run of consecutive rows (HDF5 1.10 reads a union of many
 * hyperslabs far slower than the runs one by one). */
static int read_rows(hid_t images, const char *path, int n, int h, int w, const int *idx, int count, uint8_t *out,
                     th_err *err)
{
    if (count < 0) return th_errf(err, "%s: negative image count %d", path, count);
    for (int i = 0; i < count; i++)
        if (idx[i] < 0 || idx[i] >= n)
            return th_errf(err, "%s: image index %d (entry %d of the request) is outside [0, %d)", path, idx[i], i, n);
    size_t img = (size_t)h * (size_t)w;
    hid_t fspace = H5Dget_space(images);
    herr_t rc = fspace < 0 ? -1 : 0;
    int i = 0;
    while (rc >= 0 && i < count) {
        int j = i + 1;
        while (j < count && idx[j] == idx[j - 1] + 1) j++;
        hsize_t start[3] = {(hsize_t)idx[i], 0, 0}, block[3] = {(hsize_t)(j - i), (hsize_t)h, (hsize_t)w};
        hid_t mspace = H5Screate_simple(3, block, NULL);
        rc = mspace < 0 ? -1 : H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, block, NULL);
        if (rc >= 0) rc = H5Dread(images, H5T_NATIVE_UINT8, mspace, fspace, H5P_DEFAULT, out + (size_t)i * img);
        if (mspace >= 0) H5Sclose(mspace);
        if (rc >= 0) i = j;
    }
    if (fspace >= 0) H5Sclose(fspace);
    if (rc < 0) return th_errf(err, "%s: cannot read image %d from /images", path, idx[i]);
    return 0;
}

int th_dataset_read_images(th_dataset *ds, const int *idx, int count, uint8_t *out, th_err *err)
{
    if (ds->images < 0) return th_errf(err, "dataset %s is not open", ds->path);
    return read_rows(ds->images, ds->path, ds->n, ds->h, ds->w, idx, count, out, err);
}

int th_image_reader_open(th_image_reader *r, const th_dataset *ds, th_err *err)
{
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "%s", ds->path);
    r->n = ds->n, r->h = ds->h, r->w = ds->w;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    r->file = H5Fopen(ds->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    r->images = r->file < 0 ? -1 : H5Dopen2(r->file, "images", H5P_DEFAULT);
    if (r->images < 0) {
        th_image_reader_close(r);
        return th_errf(err, "%s: cannot open /images for streaming", ds->path);
    }
    return 0;
}

int th_image_reader_read(th_image_reader *r, const int *idx, int count, uint8_t *out, th_err *err)
{
    return read_rows(r->images, r->path, r->n, r->h, r->w, idx, count, out, err);
}

void th_image_reader_close(th_image_reader *r)
{
    if (r->images > 0) H5Dclose(r->images);
    if (r->file > 0) H5Fclose(r->file);
    r->images = r->file = 0;
}

int th_dataset_read_masks(th_dataset *ds, int i, uint8_t *out, th_err *err)
{
    if (ds->file < 0) return th_errf(err, "dataset %s is not open", ds->path);
    if (!ds->has_masks) return th_errf(err, "%s has no /masks dataset", ds->path);
    if (i < 0 || i >= ds->n) return th_errf(err, "%s: mask row %d is outside [0, %d)", ds->path, i, ds->n);
    hid_t d = H5Dopen2(ds->file, "masks", H5P_DEFAULT);
    hid_t fspace = d < 0 ? -1 : H5Dget_space(d);
    hsize_t start[4] = {(hsize_t)i, 0, 0, 0};
    hsize_t block[4] = {1, (hsize_t)ds->n_labels, (hsize_t)ds->h, (hsize_t)ds->w};
    hid_t mspace = H5Screate_simple(3, block + 1, NULL);
    herr_t rc = fspace < 0 || mspace < 0 ? -1 : H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, block, NULL);
    if (rc >= 0) rc = H5Dread(d, H5T_NATIVE_UINT8, mspace, fspace, H5P_DEFAULT, out);
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    if (d >= 0) H5Dclose(d);
    if (rc < 0) return th_errf(err, "%s: cannot read /masks row %d", ds->path, i);
    return 0;
}

int th_dataset_label_index(const th_dataset *ds, const char *name)
{
    for (int k = 0; k < ds->n_labels; k++)
        if (!strcmp(ds->label_names[k], name)) return k;
    return -1;
}

/* Collective over the communicator of th_dataset_open: H5Fclose of an
 * MPI-IO file is. HDF5 identifiers are positive, so a zeroed struct (never
 * opened) closes nothing. */
void th_dataset_close(th_dataset *ds)
{
    if (ds->images > 0) H5Dclose(ds->images);
    if (ds->file > 0) H5Fclose(ds->file);
    free(ds->label_names);
    free(ds->labels);
    free(ds->split);
    memset(ds, 0, sizeof *ds);
    ds->file = ds->images = -1;
}

/* ------------------------------------------------------------------------
 * Writing.
 */

/* Creates a uint8 dataset; chunk may be NULL (contiguous); gzip 0 = none. */
static hid_t create_u8(hid_t f, const char *name, int rank, const hsize_t *dims, const hsize_t *chunk, int gzip)
{
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk) H5Pset_chunk(dcpl, rank, chunk);
    if (gzip) H5Pset_deflate(dcpl, (unsigned)gzip);
    hid_t d = space < 0 || dcpl < 0 ? -1 : H5Dcreate2(f, name, H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return d;
}

/* Writes row i of dataset d (any rank >= 1) from data laid out as one row. */
static int write_row(hid_t d, int i, const void *data)
{
    hsize_t dims[4], start[4] = {0}, count[4];
    hid_t fspace = H5Dget_space(d);
    int rank = fspace < 0 ? -1 : H5Sget_simple_extent_dims(fspace, dims, NULL);
    herr_t rc = rank < 1 || rank > 4 ? -1 : 0;
    hid_t mspace = -1;
    if (rc >= 0) {
        for (int k = 0; k < rank; k++) count[k] = dims[k];
        start[0] = (hsize_t)i;
        count[0] = 1;
        mspace = rank == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank - 1, count + 1, NULL);
        rc = H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
    }
    if (rc >= 0) rc = H5Dwrite(d, H5T_NATIVE_UINT8, mspace, fspace, H5P_DEFAULT, data);
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    return rc < 0 ? -1 : 0;
}

/* Writes strings s[0..n) as variable-length UTF-8 strings, as a dataset or
 * (is_attr) as an attribute of loc. */
static int write_strings(hid_t loc, const char *name, int is_attr, int n, const char *const *s)
{
    hsize_t dim = (hsize_t)n;
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t space = H5Screate_simple(1, &dim, NULL);
    herr_t rc = -1;
    if (is_attr) {
        hid_t a = H5Acreate2(loc, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) {
            rc = H5Awrite(a, t, s);
            H5Aclose(a);
        }
    } else {
        hid_t d = H5Dcreate2(loc, name, t, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (d >= 0) {
            rc = H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s);
            if (H5Dclose(d) < 0) rc = -1;
        }
    }
    H5Sclose(space);
    H5Tclose(t);
    return rc < 0 ? -1 : 0;
}

static void writer_release(th_dataset_writer *wr)
{
    if (wr->masks > 0) H5Dclose(wr->masks);
    if (wr->labels > 0) H5Dclose(wr->labels);
    if (wr->images > 0) H5Dclose(wr->images);
    if (wr->file > 0) H5Fclose(wr->file);
    for (int i = 0; i < wr->n; i++) {
        if (wr->patient_id) free(wr->patient_id[i]);
        if (wr->image_name) free(wr->image_name[i]);
    }
    free(wr->patient_id);
    free(wr->image_name);
    free(wr->split);
    memset(wr, 0, sizeof *wr);
    wr->file = wr->images = wr->labels = wr->masks = -1;
}

int th_dataset_writer_create(th_dataset_writer *wr, const char *path, int n, int h, int w, int n_labels,
                             const char *const *label_names, int with_masks, int with_split, th_err *err)
{
    memset(wr, 0, sizeof *wr);
    wr->file = wr->images = wr->labels = wr->masks = -1;
    silence_hdf5();
    if (n < 1 || n > TH_DATASET_MAX_IMAGES)
        return th_errf(err, "%s: cannot write a dataset of %d images (1 to %ld)", path, n, (long)TH_DATASET_MAX_IMAGES);
    if (h < 1 || w < 1 || h > TH_IMAGE_MAX_SIDE || w > TH_IMAGE_MAX_SIDE)
        return th_errf(err, "%s: impossible image size %dx%d (1 to %d pixels a side)", path, h, w, TH_IMAGE_MAX_SIDE);
    if (n_labels < 1 || n_labels > TH_DATASET_MAX_LABELS)
        return th_errf(err, "%s: impossible label count %d (1 to %d)", path, n_labels, TH_DATASET_MAX_LABELS);
    for (int k = 0; k < n_labels; k++) {
        if (!label_names || !label_names[k] || !*label_names[k])
            return th_errf(err, "%s: label %d has no name", path, k);
        if (strlen(label_names[k]) > TH_DATASET_MAX_STRING)
            return th_errf(err, "%s: the name of label %d is longer than %d bytes", path, k, TH_DATASET_MAX_STRING);
    }
    if (snprintf(wr->path, sizeof wr->path, "%s", path) >= (int)sizeof wr->path ||
        snprintf(wr->tmp_path, sizeof wr->tmp_path, "%s.tmp", path) >= (int)sizeof wr->tmp_path) {
        wr->path[0] = wr->tmp_path[0] = '\0';
        return th_errf(err, "dataset path too long: %s", path);
    }
    wr->n = n;
    wr->h = h;
    wr->w = w;
    wr->n_labels = n_labels;
    wr->with_masks = with_masks != 0;
    wr->with_split = with_split != 0;
    wr->patient_id = calloc((size_t)n, sizeof(char *));
    wr->image_name = calloc((size_t)n, sizeof(char *));
    wr->split = with_split ? malloc((size_t)n) : NULL;
    if (!wr->patient_id || !wr->image_name || (with_split && !wr->split)) {
        th_dataset_writer_abort(wr);
        return th_errf(err, "%s: out of memory for %d rows", path, n);
    }
    if (with_split) memset(wr->split, TH_SPLIT_NONE, (size_t)n);

    /* HDF5 would only say "unable to create file": try the plain open first
     * so the message carries the system's reason. */
    int fd = open(wr->tmp_path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) {
        int e = errno;
        wr->tmp_path[0] = '\0';
        th_dataset_writer_abort(wr);
        return th_errf(err, "cannot create %s.tmp: %s", path, strerror(e));
    }
    close(fd);
    if (with_masks && H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0) {
        th_dataset_writer_abort(wr);
        return th_errf(err, "%s: this HDF5 library has no gzip filter for /masks", path);
    }

    hsize_t dims[4] = {(hsize_t)n, (hsize_t)h, (hsize_t)w}, chunk[4] = {1, (hsize_t)h, (hsize_t)w};
    const char *what = "the file";
    wr->file = H5Fcreate(wr->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (wr->file >= 0) {
        what = "/images";
        wr->images = create_u8(wr->file, "images", 3, dims, chunk, 0);
    }
    if (wr->images >= 0) {
        what = "/labels";
        hsize_t ldims[2] = {(hsize_t)n, (hsize_t)n_labels};
        wr->labels = create_u8(wr->file, "labels", 2, ldims, NULL, 0);
    }
    int ok = wr->labels >= 0;
    if (ok) {
        what = "the label names";
        ok = write_strings(wr->labels, "names", 1, n_labels, label_names) == 0;
    }
    if (ok && with_masks) {
        what = "/masks";
        hsize_t mdims[4] = {(hsize_t)n, (hsize_t)n_labels, (hsize_t)h, (hsize_t)w};
        hsize_t mchunk[4] = {1, (hsize_t)n_labels, (hsize_t)h, (hsize_t)w};
        wr->masks = create_u8(wr->file, "masks", 4, mdims, mchunk, 4);
        ok = wr->masks >= 0;
    }
    if (!ok) {
        th_dataset_writer_abort(wr);
        return th_errf(err, "%s.tmp: cannot create %s", path, what);
    }
    return 0;
}

int th_dataset_writer_put(th_dataset_writer *wr, int i, const uint8_t *img, const uint8_t *labels,
                          const char *patient_id, const char *image_name, const uint8_t *masks, int split,
                          th_err *err)
{
    if (wr->file < 0) return th_errf(err, "dataset writer for %s is not open", wr->path);
    if (i < 0 || i >= wr->n) return th_errf(err, "%s: row %d is outside [0, %d)", wr->path, i, wr->n);
    if (wr->patient_id[i])
        return th_errf(err, "%s: row %d is written twice (image %s)", wr->path, i, wr->image_name[i]);
    if (!patient_id || !*patient_id) return th_errf(err, "%s: row %d has no patient ID", wr->path, i);
    if (!image_name || !*image_name) return th_errf(err, "%s: row %d has no image name", wr->path, i);
    if (strlen(patient_id) > TH_DATASET_MAX_STRING || strlen(image_name) > TH_DATASET_MAX_STRING)
        return th_errf(err, "%s: row %d: the patient ID or image name is longer than %d bytes", wr->path, i,
                       TH_DATASET_MAX_STRING);
    for (int k = 0; k < wr->n_labels; k++)
        if (labels[k] > 1)
            return th_errf(err, "%s: image %s (row %d): label column %d is %d, expected 0 or 1", wr->path, image_name,
                           i, k, labels[k]);
    if (wr->with_split && (split < TH_SPLIT_TRAIN || split > TH_SPLIT_TEST) && split != TH_SPLIT_NONE)
        return th_errf(err, "%s: image %s (row %d): split %d is not 0 (train), 1 (val) or 2 (test)", wr->path,
                       image_name, i, split);

    if (write_row(wr->images, i, img)) return th_errf(err, "%s: cannot write /images row %d", wr->tmp_path, i);
    if (write_row(wr->labels, i, labels)) return th_errf(err, "%s: cannot write /labels row %d", wr->tmp_path, i);
    /* Chunks never written read back as the fill value 0: a row without
     * masks simply has none drawn. */
    if (wr->with_masks && masks && write_row(wr->masks, i, masks))
        return th_errf(err, "%s: cannot write /masks row %d", wr->tmp_path, i);
    char *pid = strdup(patient_id), *name = strdup(image_name);
    if (!pid || !name) {
        free(pid);
        free(name);
        return th_errf(err, "%s: out of memory at row %d", wr->path, i);
    }
    /* A row counts as written once its patient ID is stored: this array is
     * also the bitmap that catches duplicate and missing rows. */
    wr->patient_id[i] = pid;
    wr->image_name[i] = name;
    if (wr->with_split) wr->split[i] = (uint8_t)split;
    return 0;
}

int th_dataset_writer_finish(th_dataset_writer *wr, th_err *err)
{
    if (wr->file < 0) return th_errf(err, "dataset writer for %s is not open", wr->path);
    int missing = 0, first_missing = -1;
    for (int i = 0; i < wr->n; i++)
        if (!wr->patient_id[i] && missing++ == 0) first_missing = i;
    if (missing) {
        th_errf(err, "%s: row %d was never written (%d of %d rows missing)", wr->path, first_missing, missing, wr->n);
        th_dataset_writer_abort(wr);
        return -1;
    }
    const char *what = NULL;
    if (write_strings(wr->file, "patient_id", 0, wr->n, (const char *const *)wr->patient_id)) what = "/patient_id";
    else if (write_strings(wr->file, "image_name", 0, wr->n, (const char *const *)wr->image_name)) what = "/image_name";
    else if (wr->with_split) {
        hsize_t dim = (hsize_t)wr->n;
        hid_t d = create_u8(wr->file, "split", 1, &dim, NULL, 0);
        if (d < 0 || H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, wr->split) < 0) what = "/split";
        if (d >= 0 && H5Dclose(d) < 0) what = "/split";
    }
    if (what) {
        th_errf(err, "%s: cannot write %s", wr->tmp_path, what);
        th_dataset_writer_abort(wr);
        return -1;
    }

    herr_t rc = H5Dclose(wr->images);
    wr->images = -1;
    if (H5Dclose(wr->labels) < 0) rc = -1;
    wr->labels = -1;
    if (wr->masks >= 0 && H5Dclose(wr->masks) < 0) rc = -1;
    wr->masks = -1;
    if (H5Fflush(wr->file, H5F_SCOPE_GLOBAL) < 0) rc = -1;
    if (H5Fclose(wr->file) < 0) rc = -1;
    wr->file = -1;
    if (rc < 0) {
        th_errf(err, "%s: cannot flush and close the file (disk full?)", wr->tmp_path);
        th_dataset_writer_abort(wr);
        return -1;
    }
    /* On disk before it takes the real name, so that a crash after the
     * rename cannot leave a complete-looking but empty file. */
    int fd = open(wr->tmp_path, O_RDONLY);
    if (fd < 0 || fsync(fd)) {
        int e = errno;
        if (fd >= 0) close(fd);
        th_errf(err, "cannot sync %s: %s", wr->tmp_path, strerror(e));
        th_dataset_writer_abort(wr);
        return -1;
    }
    close(fd);
    if (rename(wr->tmp_path, wr->path)) {
        int e = errno;
        th_errf(err, "cannot rename %s to %s: %s", wr->tmp_path, wr->path, strerror(e));
        th_dataset_writer_abort(wr);
        return -1;
    }
    writer_release(wr);
    return 0;
}

/* Safe to call more than once, and after a failed create or finish (which
 * have already cleaned up). */
void th_dataset_writer_abort(th_dataset_writer *wr)
{
    char tmp[sizeof wr->tmp_path];
    memcpy(tmp, wr->tmp_path, sizeof tmp);
    writer_release(wr);
    if (tmp[0]) unlink(tmp);
}

/* dataset_index.c - the index of a dataset file (labels, label names,
 * patient IDs, image names, split): read and validated by rank 0, then
 * broadcast to every rank (see dataset_impl.h).
 *
 * Only rank 0 touches the index datasets: the other ranks would only repeat
 * the same small reads over MPI-IO, and one reader gives one verdict. The
 * ranks agree on that verdict (th_dist_agree) before anything is broadcast,
 * so a bad file fails on every rank with the same sentence.
 */
#include "dataset_impl.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thorax/data.h"

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
    if (rc == 0) {
        const char *names[TH_DATASET_MAX_LABELS];
        const char *name = ix->strings.data;
        for (int64_t k = 0; k < ix->n_labels; k++, name += strlen(name) + 1) names[k] = name;
        rc = dataset_label_names_distinct(path, (int)ix->n_labels, names, err);
    }
    size_t cells = (size_t)ix->n * (size_t)ix->n_labels;
    if (rc == 0 && !(ix->labels = malloc(cells))) rc = th_errf(err, "%s: out of memory for /labels", path);
    if (rc == 0) rc = read_small_ints(d, path, "labels", cells, ix->labels, err);
    H5Dclose(d);
    for (size_t c = 0; rc == 0 && c < cells; c++) {
        if (ix->labels[c] <= 1 || ix->labels[c] == TH_LABEL_UNKNOWN) continue;
        int64_t row = (int64_t)(c / (size_t)ix->n_labels), col = (int64_t)(c % (size_t)ix->n_labels);
        const char *name = ix->strings.data;
        for (int64_t k = 0; k < col; k++) name += strlen(name) + 1;
        rc = th_errf(err, "%s: /labels row %lld, label '%s' is not 0, 1 or 255 (unknown)", path, (long long)row, name);
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

int dataset_label_names_distinct(const char *path, int n, const char *const *names, th_err *err)
{
    for (int k = 1; k < n; k++)
        for (int j = 0; j < k; j++)
            if (!strcmp(names[j], names[k]))
                return th_errf(err, "%s: label '%s' is named twice (columns %d and %d of /labels): every label needs "
                               "its own name", path, names[k], j, k);
    return 0;
}

int dataset_load_index(int64_t file, const char *path, th_comm comm, th_dataset *ds, th_err *err)
{
    file_index ix = {0};
    int rc = th_dist_rank(comm) == 0 ? read_index((hid_t)file, path, &ix, err) : 0;
    if (th_dist_agree(comm, rc, err) || bcast_index(&ix, path, comm, err)) {
        index_free(&ix);
        return -1;
    }
    long long n = (long long)ix.n;
    if (adopt_index(ds, &ix)) rc = th_errf(err, "%s: out of memory for the index of %lld images", path, n);
    index_free(&ix);
    return th_dist_agree(comm, rc, err);
}

/* ------------------------------------------------------------------------
 * /meta/<name>: per-image strings, read on demand.
 */

/* Rank 0: the names under /meta, ", "-separated, for an error message. */
static void meta_names(hid_t f, char *buf, size_t cap)
{
    snprintf(buf, cap, "none");
    hid_t g = H5Lexists(f, "meta", H5P_DEFAULT) > 0 ? H5Gopen2(f, "meta", H5P_DEFAULT) : -1;
    H5G_info_t info;
    if (g < 0 || H5Gget_info(g, &info) < 0) {
        if (g >= 0) H5Gclose(g);
        return;
    }
    size_t len = 0;
    for (hsize_t i = 0; i < info.nlinks && len + 8 < cap; i++) {
        char name[256];
        if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0) continue;
        int w = snprintf(buf + len, cap - len, "%s'%s'", len ? ", " : "", name);
        if (w < 0 || (size_t)w >= cap - len) break;
        len += (size_t)w;
    }
    H5Gclose(g);
}

static int read_meta_rank0(const th_dataset *ds, const char *name, packed_strings *out, th_err *err)
{
    hid_t f = (hid_t)ds->file;
    char path[300];
    if (snprintf(path, sizeof path, "meta/%s", name) >= (int)sizeof path)
        return th_errf(err, "%s: metadata name too long: %.64s...", ds->path, name);
    int there = H5Lexists(f, "meta", H5P_DEFAULT) > 0 && strchr(name, '/') == NULL && name[0] &&
                H5Lexists(f, path, H5P_DEFAULT) > 0;
    if (!there) {
        char names[1024];
        meta_names(f, names, sizeof names);
        return th_errf(err, "%s has no metadata column '%s' (/meta: %s)", ds->path, name, names);
    }
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    hsize_t dims[1];
    int rc = d < 0 ? th_errf(err, "%s: cannot open /%s", ds->path, path) : check_rank(d, ds->path, path, 1, "[N]", dims, err);
    if (rc == 0 && (int64_t)dims[0] != ds->n)
        rc = th_errf(err, "%s: /%s has %llu rows but the file has %d images", ds->path, path,
                     (unsigned long long)dims[0], ds->n);
    char what[310];
    snprintf(what, sizeof what, "/%s", path);
    if (rc == 0) rc = read_strings(d, 0, ds->path, what, (size_t)ds->n, out, err);
    if (d >= 0) H5Dclose(d);
    return rc;
}

int th_dataset_read_meta(const th_dataset *ds, const char *name, th_comm comm, char ***values, th_err *err)
{
    *values = NULL;
    packed_strings ps = {0};
    int rc = th_dist_rank(comm) == 0 ? read_meta_rank0(ds, name, &ps, err) : 0;
    if (th_dist_agree(comm, rc, err)) {
        free(ps.data);
        return -1;
    }
    int64_t len = (int64_t)ps.len;
    rc = th_dist_bcast(comm, 0, &len, sizeof len, err);
    /* One block: the n pointers, then the strings they point into. */
    char **block = rc ? NULL : malloc(sizeof(char *) * (size_t)ds->n + (size_t)len + 1);
    if (!rc && !block) rc = th_errf(err, "%s: out of memory for /meta/%s", ds->path, name);
    if (th_dist_agree(comm, rc, err)) {
        free(block);
        free(ps.data);
        return -1;
    }
    char *text = (char *)(block + ds->n);
    if (th_dist_rank(comm) == 0) memcpy(text, ps.data, (size_t)len);
    free(ps.data);
    if (th_dist_bcast(comm, 0, text, (size_t)len, err)) {
        free(block);
        return -1;
    }
    for (int i = 0; i < ds->n; i++) {
        block[i] = text;
        text += strlen(text) + 1;
    }
    *values = block;
    return 0;
}

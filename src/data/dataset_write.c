/* dataset_write.c - writing a dataset file: one process, the default
 * (sec2) driver (see thorax/dataset.h for the layout).
 *
 * Images and masks are written row by row as they come; the strings are kept
 * in memory and written at the end; the file lives under `<path>.tmp` until
 * it is complete.
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

static void silence_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

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

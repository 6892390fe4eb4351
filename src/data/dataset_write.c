/* dataset_write.c - writing a dataset file: one process, the default
 * (sec2) driver (see thorax/data.h for the layout).
 *
 * Images and masks are written row by row as they come; the strings are kept
 * in memory and written at the end; the file lives under `<path>.tmp` until
 * it is complete.
 */
#include "thorax/data.h"
#include "dataset_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


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
    th_h5_quiet();
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
    if (dataset_label_names_distinct(path, n_labels, label_names, err)) return -1;
    if (snprintf(wr->path, sizeof wr->path, "%s", path) >= (int)sizeof wr->path ||
        th_tmp_path(path, wr->tmp_path, sizeof wr->tmp_path, NULL)) {
        wr->path[0] = wr->tmp_path[0] = '\0';
        return th_errf(err, "dataset path too long: %s", path);
    }
    wr->n = n;
    wr->h = h;
    wr->w = w;
    wr->n_labels = n_labels;
    wr->with_masks = (with_masks & TH_DATASET_MASKS) != 0;
    wr->with_split = with_split != 0;
    wr->patient_id = calloc((size_t)n, sizeof(char *));
    wr->image_name = calloc((size_t)n, sizeof(char *));
    wr->split = with_split ? malloc((size_t)n) : NULL;
    if (!wr->patient_id || !wr->image_name || (with_split && !wr->split)) {
        th_dataset_writer_abort(wr);
        return th_errf(err, "%s: out of memory for %d rows", path, n);
    }
    if (with_split) memset(wr->split, TH_SPLIT_NONE, (size_t)n);

    if (with_masks && H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0) {
        th_dataset_writer_abort(wr);
        return th_errf(err, "%s: this HDF5 library has no gzip filter for /masks or /images", path);
    }
    wr->file = th_h5_create_tmp(wr->tmp_path, err);
    if (wr->file < 0) {
        wr->tmp_path[0] = '\0'; /* nothing of ours to remove */
        th_dataset_writer_abort(wr);
        return -1;
    }

    /* One chunk per image [1, h, w] (and per image's masks [1, L, h, w]):
     * training reads whole images in any order. */
    hsize_t dims[3] = {(hsize_t)n, (hsize_t)h, (hsize_t)w}, chunk[3] = {1, (hsize_t)h, (hsize_t)w};
    const char *what = "/images";
    /* Compressed: shuffle is a no-op on 1-byte pixels but costs nothing and
     * keeps the filter pipeline the one h5py users expect; level 4 is within
     * a few percent of level 9's size at a fraction of its time. */
    int compress = (with_masks & TH_DATASET_COMPRESS) != 0;
    wr->images = th_h5_create(wr->file, "images", H5T_STD_U8LE, 3, dims, chunk, compress, compress ? 4 : 0);
    if (wr->images >= 0) {
        what = "/labels";
        hsize_t ldims[2] = {(hsize_t)n, (hsize_t)n_labels};
        wr->labels = th_h5_create(wr->file, "labels", H5T_STD_U8LE, 2, ldims, NULL, 0, 0);
    }
    int ok = wr->labels >= 0;
    if (ok) {
        what = "the label names";
        ok = th_h5_write_strings(wr->labels, "names", 1, (size_t)n_labels, label_names) == 0;
    }
    if (ok && with_masks) {
        what = "/masks";
        hsize_t mdims[4] = {(hsize_t)n, (hsize_t)n_labels, (hsize_t)h, (hsize_t)w};
        hsize_t mchunk[4] = {1, (hsize_t)n_labels, (hsize_t)h, (hsize_t)w};
        wr->masks = th_h5_create(wr->file, "masks", H5T_STD_U8LE, 4, mdims, mchunk, 0, 4);
        ok = wr->masks >= 0;
    }
    if (!ok) {
        th_errf(err, "%s: cannot create %s", wr->tmp_path, what);
        th_dataset_writer_abort(wr);
        return -1;
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
        if (labels[k] > 1 && labels[k] != TH_LABEL_UNKNOWN)
            return th_errf(err, "%s: image %s (row %d): label column %d is %d, expected 0, 1 or 255 (unknown)",
                           wr->path, image_name, i, k, labels[k]);
    if (wr->with_split && (split < TH_SPLIT_TRAIN || split > TH_SPLIT_TEST) && split != TH_SPLIT_NONE)
        return th_errf(err, "%s: image %s (row %d): split %d is not 0 (train), 1 (val) or 2 (test)", wr->path,
                       image_name, i, split);

    hsize_t row = (hsize_t)i;
    if (th_h5_write_row(wr->images, H5T_NATIVE_UINT8, row, img))
        return th_errf(err, "%s: cannot write /images row %d", wr->tmp_path, i);
    if (th_h5_write_row(wr->labels, H5T_NATIVE_UINT8, row, labels))
        return th_errf(err, "%s: cannot write /labels row %d", wr->tmp_path, i);
    /* Chunks never written read back as the fill value 0: a row without
     * masks simply has none drawn. */
    if (wr->with_masks && masks && th_h5_write_row(wr->masks, H5T_NATIVE_UINT8, row, masks))
        return th_errf(err, "%s: cannot write /masks row %d", wr->tmp_path, i);
    /* A full disk shows here (the driver drops the writes), not at the end. */
    int e = th_h5_write_error(wr->file);
    if (e) return th_errf(err, "cannot write %s (row %d): %s", wr->tmp_path, i, strerror(e));
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

int th_dataset_writer_meta(th_dataset_writer *wr, const char *name, const char *const *values, th_err *err)
{
    if (wr->file < 0) return th_errf(err, "dataset writer for %s is not open", wr->path);
    char safe[256];
    if (snprintf(safe, sizeof safe, "%s", name) >= (int)sizeof safe || !name[0])
        return th_errf(err, "%s: metadata column name '%.64s' is empty or too long", wr->path, name);
    for (char *c = safe; *c; c++)
        if (*c == '/') *c = '_';
    hid_t g = H5Lexists(wr->file, "meta", H5P_DEFAULT) > 0 ? H5Gopen2(wr->file, "meta", H5P_DEFAULT)
                                                           : H5Gcreate2(wr->file, "meta", H5P_DEFAULT, H5P_DEFAULT,
                                                                        H5P_DEFAULT);
    int rc = g < 0 || H5Lexists(g, safe, H5P_DEFAULT) > 0 ||
             th_h5_write_strings(g, safe, 0, (size_t)wr->n, values);
    if (g >= 0) H5Gclose(g);
    return rc ? th_errf(err, "%s: cannot write /meta/%s (twice the same name?)", wr->tmp_path, safe) : 0;
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
    size_t n = (size_t)wr->n;
    hsize_t dim = (hsize_t)wr->n;
    if (th_h5_write_strings(wr->file, "patient_id", 0, n, (const char *const *)wr->patient_id)) what = "/patient_id";
    else if (th_h5_write_strings(wr->file, "image_name", 0, n, (const char *const *)wr->image_name))
        what = "/image_name";
    else if (wr->with_split &&
             th_h5_write_all(wr->file, "split", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, &dim, wr->split))
        what = "/split";
    if (what) {
        th_errf(err, "%s: cannot write %s", wr->tmp_path, what);
        th_dataset_writer_abort(wr);
        return -1;
    }
    if (th_h5_flush(wr->file, wr->tmp_path, err)) {
        th_dataset_writer_abort(wr);
        return -1;
    }

    /* Ratio of raw to stored bytes: 1 for an uncompressed file (every chunk written). */
    hsize_t stored = H5Dget_storage_size(wr->images);
    double ratio = stored > 0 ? (double)wr->n * wr->h * wr->w / (double)stored : 0;
    herr_t rc = H5Dclose(wr->images);
    wr->images = -1;
    if (H5Dclose(wr->labels) < 0) rc = -1;
    wr->labels = -1;
    if (wr->masks >= 0 && H5Dclose(wr->masks) < 0) rc = -1;
    wr->masks = -1;
    hid_t file = wr->file;
    wr->file = -1;
    if (rc < 0) {
        H5Fclose(file);
        th_errf(err, "%s: cannot flush and close the file (disk full?)", wr->tmp_path);
        th_dataset_writer_abort(wr);
        return -1;
    }
    if (th_h5_commit(file, wr->tmp_path, wr->path, err)) {
        th_dataset_writer_abort(wr);
        return -1;
    }
    writer_release(wr);
    wr->images_ratio = ratio;
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

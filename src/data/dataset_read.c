/* dataset_read.c - opening a dataset file on every rank and reading its
 * images and masks (see thorax/data.h for the layout).
 *
 * Every rank opens the file with the MPI-IO driver; rank 0 alone reads the
 * index and sends it to the others (dataset_index.c). Images are read
 * afterwards with independent I/O: ranks never wait for one another to fetch
 * a batch.
 *
 * HDF5's own error stack printing is switched off: library code never prints,
 * and our messages name the file and the dataset instead.
 */
#include "dataset_impl.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thorax/data.h"

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
    th_h5_quiet();
    th_err e = {{0}};

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
    /* Every rank walks the file it opened before reading any of it. */
    rc = th_h5_check_contained(f, path, &e);
    if (th_dist_agree(comm, rc, &e)) goto fail;

    if (dataset_load_index(f, path, comm, ds, &e)) goto fail;
    if ((ds->images = H5Dopen2(f, "images", H5P_DEFAULT)) < 0) rc = th_errf(&e, "%s: cannot open /images", path);
    if (th_dist_agree(comm, rc, &e)) goto fail;
    return 0;

fail:
    th_dataset_close(ds);
    if (err) *err = e;
    return -1;
}

/* ------------------------------------------------------------------------
 * Reading images.
 */

/* Reads rows idx[0..count) of an open /images [n, h, w] into out
 * [count, h, w]: one H5Dread per run of consecutive rows, straight into its
 * place in out, so any order (and any repeat) comes back as asked without
 * sorting or staging. A single read over the union of the runs would be the
 * obvious alternative, but HDF5 1.10 maps complex selections onto chunks some
 * 30 times slower than it reads one regular block after another. */
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
    th_err why;
    r->file = th_h5_open(ds->path, &why);
    if (r->file < 0) {
        r->file = 0;
        return th_errf(err, "%s: cannot open /images for streaming: %s", ds->path, why.msg);
    }
    r->images = H5Dopen2(r->file, "images", H5P_DEFAULT);
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
    int rc = d < 0 ? -1 : th_h5_read_rows(d, H5T_NATIVE_UINT8, (hsize_t)i, 1, out);
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

void th_dataset_index_sha256(const th_dataset *ds, char hex[65])
{
    th_sha256 s;
    th_sha256_init(&s);
    for (int i = 0; i < ds->n; i++) th_sha256_update(&s, ds->image_name[i], strlen(ds->image_name[i]) + 1);
    for (int i = 0; i < ds->n; i++) th_sha256_update(&s, ds->patient_id[i], strlen(ds->patient_id[i]) + 1);
    for (int k = 0; k < ds->n_labels; k++) th_sha256_update(&s, ds->label_names[k], strlen(ds->label_names[k]) + 1);
    th_sha256_update(&s, ds->labels, (size_t)ds->n * (size_t)ds->n_labels);
    th_sha256_final(&s, hex);
}

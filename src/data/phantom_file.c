/* phantom_file.c - a phantom dataset file written and read back (see
 * thorax/data.h). Reading back is serial HDF5 (the default driver): the
 * command that makes a phantom runs without MPI.
 */
#include "thorax/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Counts the positives of labels [n, TH_PHANTOM_N_LABELS], read whole. */
static int read_counts(hid_t f, const char *path, th_phantom_summary *s, th_err *err)
{
    hid_t d = H5Dopen2(f, "labels", H5P_DEFAULT);
    hsize_t dims[2] = {0, 0};
    int ok = d >= 0 && th_h5_dims(d, 2, dims) == 2 && dims[0] > 0 && dims[0] <= (1u << 28) &&
             dims[1] == TH_PHANTOM_N_LABELS;
    uint8_t *labels = ok ? malloc((size_t)dims[0] * TH_PHANTOM_N_LABELS) : NULL;
    ok = labels && H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels) >= 0;
    if (d >= 0) H5Dclose(d);
    if (!ok) {
        free(labels);
        return th_errf(err, "cannot read /labels back from %s", path);
    }
    s->images = (int)dims[0];
    for (int i = 0; i < s->images; i++) {
        int row_any = 0;
        for (int k = 0; k < TH_PHANTOM_N_LABELS; k++) {
            s->positive[k] += labels[i * TH_PHANTOM_N_LABELS + k];
            row_any |= labels[i * TH_PHANTOM_N_LABELS + k];
        }
        s->any += row_any;
    }
    free(labels);
    return 0;
}

/* The first n image names into s->name (an unnamed row reads "image"). */
static int read_names(hid_t f, int n, th_phantom_summary *s)
{
    hid_t d = H5Dopen2(f, "image_name", H5P_DEFAULT);
    hid_t t = th_h5_utf8();
    char *vl[TH_PHANTOM_MAX_PREVIEW] = {0};
    int rc = d < 0 || t < 0 ? -1 : th_h5_read_rows(d, t, 0, (hsize_t)n, vl);
    for (int i = 0; i < n; i++) {
        if (rc == 0) snprintf(s->name[i], sizeof s->name[i], "%s", vl[i] ? vl[i] : "image");
        if (vl[i]) H5free_memory(vl[i]);
    }
    if (t >= 0) H5Tclose(t);
    if (d >= 0) H5Dclose(d);
    return rc;
}

/* The first n_preview rows of /images and /masks, and their names. */
static int read_preview(hid_t f, const char *path, int n_preview, th_phantom_summary *s, th_err *err)
{
    hid_t img = H5Dopen2(f, "images", H5P_DEFAULT), masks = H5Dopen2(f, "masks", H5P_DEFAULT);
    hsize_t dims[3] = {0, 0, 0};
    int rc = 0;
    if (img < 0 || masks < 0 || th_h5_dims(img, 3, dims) != 3 || dims[1] != dims[2] || dims[1] > TH_IMAGE_MAX_SIDE)
        rc = th_errf(err, "cannot read /images and /masks back from %s", path);
    if (rc == 0) {
        s->size = (int)dims[1];
        s->n_preview = n_preview < s->images ? n_preview : s->images;
        size_t npix = (size_t)s->size * (size_t)s->size;
        s->img = malloc(s->n_preview * npix + 1);
        s->masks = malloc(s->n_preview * TH_PHANTOM_N_LABELS * npix + 1);
        if (!s->img || !s->masks) {
            rc = th_errf(err, "%s: out of memory for %d preview images", path, s->n_preview);
            s->n_preview = 0;
        }
    }
    hsize_t n = (hsize_t)s->n_preview;
    if (rc == 0 && n > 0 &&
        (th_h5_read_rows(img, H5T_NATIVE_UINT8, 0, n, s->img) ||
         th_h5_read_rows(masks, H5T_NATIVE_UINT8, 0, n, s->masks) || read_names(f, s->n_preview, s)))
        rc = th_errf(err, "cannot read the first images back from %s for the preview", path);
    if (masks >= 0) H5Dclose(masks);
    if (img >= 0) H5Dclose(img);
    return rc;
}

int th_phantom_make(const th_phantom_opts *o, const char *path, int n_preview, th_phantom_progress_fn progress,
                    void *ctx, th_phantom_summary *s, th_err *err)
{
    memset(s, 0, sizeof *s);
    if (n_preview < 0 || n_preview > TH_PHANTOM_MAX_PREVIEW)
        return th_errf(err, "%d preview images asked for (0 to %d)", n_preview, TH_PHANTOM_MAX_PREVIEW);
    if (th_phantom_write(o, path, progress, ctx, err)) return -1;
    hid_t f = th_h5_open(path, err);
    if (f < 0) return th_err_prefix(err, "reading back the file just written: ");
    int rc = read_counts(f, path, s, err);
    if (rc == 0) rc = read_preview(f, path, n_preview, s, err);
    H5Fclose(f);
    return rc;
}

void th_phantom_summary_free(th_phantom_summary *s)
{
    free(s->img);
    free(s->masks);
    memset(s, 0, sizeof *s);
}

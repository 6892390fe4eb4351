/* cam_files.c - the files under cam/: the overlay PNGs' names (with the
 * outcome at the operating point) and the maps.h5 writer (see thorax/eval.h).
 */
#include "thorax/eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "thorax/data.h"

const char *th_cam_outcome(double p, double t, int y)
{
    if (y < 0) return "unknown";
    int positive = p >= t;
    return y ? (positive ? "TP" : "FN") : (positive ? "FP" : "TN");
}

int th_cam_png_name(char *buf, size_t size, const char *image_name, const char *label, th_cam_method method,
                    const char *outcome, th_err *err)
{
    /* The stem: up to the last '.' of the last path component, if any. */
    const char *base = strrchr(image_name, '/');
    base = base ? base + 1 : image_name;
    const char *dot = strrchr(base, '.');
    int stem = (int)(dot && dot > base ? (size_t)(dot - image_name) : strlen(image_name));
    /* The label as every file name has it (th_safe_name): a label is data,
     * and "A/B" or ".." must not leave the directory. */
    char safe[TH_SAFE_NAME_MAX];
    if (th_safe_name(label, safe, sizeof safe))
        return th_errf(err, "CAM file name for image '%s': label '%s' is too long", image_name, label);
    int len = snprintf(buf, size, "%.*s__%s__%s%s%s.png", stem, image_name, safe, th_cam_method_name(method),
                       outcome ? "_" : "", outcome ? outcome : "");
    if (len < 0 || (size_t)len >= size)
        return th_errf(err, "CAM file name for image '%s', label '%s' is too long", image_name, label);
    for (int i = 0; i < stem; i++)
        if (buf[i] == '/') buf[i] = '_';
    return 0;
}

/* ---- maps.h5 ------------------------------------------------------------- */

/* A dataset [rows, h, w] (rank 3) or [rows] (rank 1), chunked by row so
 * that writing one row touches one chunk. */
static hid_t create_rows(hid_t loc, const char *name, hid_t type, int rank, int rows, int h, int w)
{
    hsize_t dims[3] = {(hsize_t)rows, (hsize_t)h, (hsize_t)w}, chunk[3] = {1, (hsize_t)h, (hsize_t)w};
    if (rank != 3) return th_h5_create(loc, name, type, rank, dims, NULL, 0, 0);
    /* Grad-CAM and saliency maps are mostly zero or smooth: cheap wins. */
    int gzip = H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0;
    return th_h5_create(loc, name, type, 3, dims, chunk, gzip, gzip ? 1 : 0);
}

static void close_ids(th_cam_writer *wr)
{
    for (int k = 0; k < TH_CAM_MAX_METHODS; k++) {
        if (wr->maps[k] >= 0) H5Dclose(wr->maps[k]);
        if (wr->feats[k] >= 0) H5Dclose(wr->feats[k]);
        wr->maps[k] = wr->feats[k] = -1;
    }
    int64_t *ids[] = {&wr->index, &wr->image_name, &wr->label, &wr->prob};
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        if (*ids[k] >= 0) H5Dclose(*ids[k]);
        *ids[k] = -1;
    }
}

void th_cam_writer_abort(th_cam_writer *wr)
{
    close_ids(wr);
    if (wr->file >= 0) H5Fclose(wr->file);
    wr->file = -1;
    if (wr->tmp_path[0]) unlink(wr->tmp_path);
    wr->tmp_path[0] = '\0';
    free(wr->done);
    wr->done = NULL;
}

int th_cam_writer_open(th_cam_writer *wr, const char *path, int m_rows, int h, int w, int n_methods,
                       const th_cam_method *methods, const int *fh, const int *fw, th_err *err)
{
    memset(wr, 0, sizeof *wr);
    wr->file = wr->index = wr->image_name = wr->label = wr->prob = -1;
    for (int k = 0; k < TH_CAM_MAX_METHODS; k++) wr->maps[k] = wr->feats[k] = -1;
    if (m_rows < 1 || h < 1 || w < 1) return th_errf(err, "%s: cannot write %d maps of %dx%d", path, m_rows, h, w);
    if (n_methods < 1 || n_methods > TH_CAM_MAX_METHODS)
        return th_errf(err, "%s: %d methods (1 to %d)", path, n_methods, TH_CAM_MAX_METHODS);
    for (int k = 0; k < n_methods; k++) {
        if (methods[k] < 0 || methods[k] >= TH_CAM_METHOD_COUNT)
            return th_errf(err, "%s: unknown CAM method %d", path, (int)methods[k]);
        if (fh[k] < 1 || fw[k] < 1)
            return th_errf(err, "%s: %s feature maps of %dx%d", path, th_cam_method_name(methods[k]), fh[k], fw[k]);
        for (int j = 0; j < k; j++)
            if (methods[j] == methods[k])
                return th_errf(err, "%s: method %s given twice", path, th_cam_method_name(methods[k]));
        wr->methods[k] = methods[k];
        wr->fh[k] = fh[k];
        wr->fw[k] = fw[k];
    }
    if (snprintf(wr->path, sizeof wr->path, "%s", path) >= (int)sizeof wr->path ||
        th_tmp_path(path, wr->tmp_path, sizeof wr->tmp_path, NULL)) {
        wr->tmp_path[0] = '\0';
        return th_errf(err, "CAM maps path too long: %s", path);
    }
    wr->m = m_rows;
    wr->h = h;
    wr->w = w;
    wr->n_methods = n_methods;
    wr->done = calloc((size_t)m_rows * n_methods, 1);
    if (!wr->done) {
        wr->tmp_path[0] = '\0';
        return th_errf(err, "%s: out of memory for %d rows", path, m_rows);
    }

    wr->file = th_h5_create_tmp(wr->tmp_path, err);
    if (wr->file < 0) {
        wr->tmp_path[0] = '\0'; /* nothing of ours to remove */
        th_cam_writer_abort(wr);
        return -1;
    }
    hid_t maps = H5Gcreate2(wr->file, "maps", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t feats = H5Gcreate2(wr->file, "maps_feature", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int ok = maps >= 0 && feats >= 0;
    for (int k = 0; k < n_methods && ok; k++) {
        const char *name = th_cam_method_name(methods[k]);
        wr->maps[k] = create_rows(maps, name, H5T_IEEE_F32LE, 3, m_rows, h, w);
        wr->feats[k] = create_rows(feats, name, H5T_IEEE_F32LE, 3, m_rows, fh[k], fw[k]);
        ok = wr->maps[k] >= 0 && wr->feats[k] >= 0;
    }
    if (maps >= 0) H5Gclose(maps);
    if (feats >= 0) H5Gclose(feats);
    hid_t str = th_h5_utf8();
    if (ok) {
        wr->index = create_rows(wr->file, "index", H5T_STD_I64LE, 1, m_rows, 1, 1);
        wr->image_name = create_rows(wr->file, "image_name", str, 1, m_rows, 1, 1);
        wr->label = create_rows(wr->file, "label", str, 1, m_rows, 1, 1);
        wr->prob = create_rows(wr->file, "prob", H5T_IEEE_F32LE, 1, m_rows, 1, 1);
        ok = wr->index >= 0 && wr->image_name >= 0 && wr->label >= 0 && wr->prob >= 0;
    }
    H5Tclose(str);
    if (!ok) {
        th_errf(err, "%s: cannot create the map datasets (disk full?)", wr->tmp_path);
        th_cam_writer_abort(wr);
        return -1;
    }
    return 0;
}

int th_cam_writer_put(th_cam_writer *wr, int i, th_cam_method method, const float *map_img, const float *map_feat,
                      int64_t index, const char *image_name, const char *label, float prob, th_err *err)
{
    if (i < 0 || i >= wr->m) return th_errf(err, "%s: row %d out of range (%d rows)", wr->tmp_path, i, wr->m);
    int k = 0;
    while (k < wr->n_methods && wr->methods[k] != method) k++;
    if (k == wr->n_methods)
        return th_errf(err, "%s: method %s was not declared when the file was opened", wr->tmp_path,
                       th_cam_method_name(method));
    hid_t str = th_h5_utf8();
    long long idx = index;
    hsize_t row = (hsize_t)i;
    int rc = th_h5_write_row(wr->maps[k], H5T_NATIVE_FLOAT, row, map_img);
    rc |= th_h5_write_row(wr->feats[k], H5T_NATIVE_FLOAT, row, map_feat);
    rc |= th_h5_write_row(wr->index, H5T_NATIVE_LLONG, row, &idx);
    rc |= th_h5_write_row(wr->image_name, str, row, &image_name);
    rc |= th_h5_write_row(wr->label, str, row, &label);
    rc |= th_h5_write_row(wr->prob, H5T_NATIVE_FLOAT, row, &prob);
    H5Tclose(str);
    if (rc) return th_errf(err, "%s: cannot write row %d (%s, %s) (disk full?)", wr->tmp_path, i, image_name, label);
    wr->done[(size_t)i * wr->n_methods + k] = 1;
    return 0;
}

int th_cam_writer_column(th_cam_writer *wr, const char *name, th_cam_column_type type, const void *values,
                         th_err *err)
{
    if (wr->file < 0) return th_errf(err, "%s: column %s written to a closed file", wr->path, name);
    hid_t file_type, mem_type, str = -1;
    switch (type) {
    case TH_CAM_COLUMN_INT8: file_type = H5T_STD_I8LE; mem_type = H5T_NATIVE_INT8; break;
    case TH_CAM_COLUMN_FLOAT32: file_type = H5T_IEEE_F32LE; mem_type = H5T_NATIVE_FLOAT; break;
    case TH_CAM_COLUMN_STRING: file_type = mem_type = str = th_h5_utf8(); break;
    default: return th_errf(err, "%s: column %s has unknown type %d", wr->path, name, (int)type);
    }
    hsize_t rows = (hsize_t)wr->m;
    int rc = th_h5_write_all(wr->file, name, file_type, mem_type, 1, &rows, values);
    if (str >= 0) H5Tclose(str);
    if (rc < 0) return th_errf(err, "%s: cannot write column /%s (a name taken, or disk full?)", wr->tmp_path, name);
    return 0;
}

int th_cam_writer_close(th_cam_writer *wr, th_err *err)
{
    for (int i = 0; i < wr->m; i++)
        for (int k = 0; k < wr->n_methods; k++) {
            if (wr->done[(size_t)i * wr->n_methods + k]) continue;
            th_errf(err, "%s: row %d has no %s map; the file is left out", wr->path, i,
                    th_cam_method_name(wr->methods[k]));
            th_cam_writer_abort(wr);
            return -1;
        }
    if (th_h5_flush(wr->file, wr->tmp_path, err)) {
        th_cam_writer_abort(wr);
        return -1;
    }
    close_ids(wr);
    hid_t file = wr->file;
    wr->file = -1;
    if (th_h5_commit(file, wr->tmp_path, wr->path, err)) {
        th_cam_writer_abort(wr);
        return -1;
    }
    wr->tmp_path[0] = '\0';
    free(wr->done);
    wr->done = NULL;
    return 0;
}

/* h5util.c - the HDF5 steps Thorax's files share (see thorax/data.h). */
#include "thorax/data.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void th_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

hid_t th_h5_utf8(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

hid_t th_h5_create(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims, const hsize_t *chunk,
                   int shuffle, int deflate)
{
    hid_t space = H5Screate_simple(rank, dims, NULL);
    /* A contiguous dataset keeps HDF5's default creation properties. */
    hid_t dcpl = chunk ? H5Pcreate(H5P_DATASET_CREATE) : H5P_DEFAULT;
    herr_t rc = space < 0 || dcpl < 0 ? -1 : 0;
    if (rc >= 0 && chunk) rc = H5Pset_chunk(dcpl, rank, chunk);
    if (rc >= 0 && chunk && shuffle) rc = H5Pset_shuffle(dcpl);
    if (rc >= 0 && chunk && deflate) rc = H5Pset_deflate(dcpl, (unsigned)deflate);
    hid_t d = rc < 0 ? -1 : H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (chunk && dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return d;
}

int th_h5_write_all(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, int rank, const hsize_t *dims,
                    const void *data)
{
    hid_t d = th_h5_create(loc, name, file_type, rank, dims, NULL, 0, 0);
    herr_t rc = d < 0 ? -1 : H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (d >= 0 && H5Dclose(d) < 0) rc = -1;
    return rc < 0 ? -1 : 0;
}

int th_h5_read_all(hid_t loc, const char *name, hid_t mem_type, void *out)
{
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) return -1;
    herr_t rc = H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    H5Dclose(d);
    return rc < 0 ? -1 : 0;
}

/* Selects rows [first, first + count) of d's file space; sets *mspace to
 * the matching memory space [count, ...]. Returns the file space or -1. */
static hid_t select_rows(hid_t d, hsize_t first, hsize_t count, hid_t *mspace)
{
    hsize_t dims[4], start[4] = {0};
    *mspace = -1;
    hid_t fspace = H5Dget_space(d);
    int rank = fspace < 0 ? -1 : H5Sget_simple_extent_ndims(fspace);
    if (rank < 1 || rank > 4 || H5Sget_simple_extent_dims(fspace, dims, NULL) < 0 || first + count > dims[0]) {
        if (fspace >= 0) H5Sclose(fspace);
        return -1;
    }
    start[0] = first;
    dims[0] = count;
    *mspace = H5Screate_simple(rank, dims, NULL);
    if (*mspace < 0 || H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, dims, NULL) < 0) {
        if (*mspace >= 0) H5Sclose(*mspace);
        *mspace = -1;
        H5Sclose(fspace);
        return -1;
    }
    return fspace;
}

int th_h5_write_row(hid_t d, hid_t mem_type, hsize_t i, const void *data)
{
    hid_t mspace, fspace = select_rows(d, i, 1, &mspace);
    herr_t rc = fspace < 0 ? -1 : H5Dwrite(d, mem_type, mspace, fspace, H5P_DEFAULT, data);
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    return rc < 0 ? -1 : 0;
}

int th_h5_read_rows(hid_t d, hid_t mem_type, hsize_t first, hsize_t count, void *out)
{
    hid_t mspace, fspace = select_rows(d, first, count, &mspace);
    herr_t rc = fspace < 0 ? -1 : H5Dread(d, mem_type, mspace, fspace, H5P_DEFAULT, out);
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    return rc < 0 ? -1 : 0;
}

int th_h5_dims(hid_t d, int max_rank, hsize_t *dims)
{
    hid_t space = H5Dget_space(d);
    int rank = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
    if (rank > max_rank || (rank >= 0 && H5Sget_simple_extent_dims(space, dims, NULL) < 0)) rank = -1;
    if (space >= 0) H5Sclose(space);
    return rank;
}

int th_h5_write_strings(hid_t loc, const char *name, int is_attr, size_t n, const char *const *s)
{
    hsize_t dim = (hsize_t)n;
    hid_t t = th_h5_utf8();
    hid_t space = H5Screate_simple(1, &dim, NULL);
    herr_t rc = -1;
    if (t >= 0 && space >= 0 && is_attr) {
        hid_t a = H5Acreate2(loc, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) {
            rc = H5Awrite(a, t, s);
            if (H5Aclose(a) < 0) rc = -1;
        }
    } else if (t >= 0 && space >= 0) {
        hid_t d = H5Dcreate2(loc, name, t, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (d >= 0) {
            rc = H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s);
            if (H5Dclose(d) < 0) rc = -1;
        }
    }
    if (space >= 0) H5Sclose(space);
    if (t >= 0) H5Tclose(t);
    return rc < 0 ? -1 : 0;
}

int th_h5_write_attr(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, const void *value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = space < 0 ? -1 : H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, mem_type, value);
    if (a >= 0 && H5Aclose(a) < 0) rc = -1;
    if (space >= 0) H5Sclose(space);
    return rc < 0 ? -1 : 0;
}

int th_h5_write_attr_string(hid_t obj, const char *name, const char *value)
{
    hid_t t = th_h5_utf8();
    int rc = t < 0 ? -1 : th_h5_write_attr(obj, name, t, t, &value);
    if (t >= 0) H5Tclose(t);
    return rc;
}

int th_h5_read_attr(hid_t obj, const char *name, hid_t mem_type, void *value)
{
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Aread(a, mem_type, value);
    if (a >= 0) H5Aclose(a);
    return rc < 0 ? -1 : 0;
}

/* --- The open policy ------------------------------------------------------ */

/* What an offending link or dataset is, for the message. */
static const char *link_kind(H5L_type_t t)
{
    return t == H5L_TYPE_EXTERNAL ? "an HDF5 external link" : "a user-defined HDF5 link";
}

typedef struct policy_walk {
    const char *path; /* the file, for messages */
    th_err *err;
    int refused;
} policy_walk;

/* The storage of dataset d, which must lie inside the file: not external
 * storage (raw data kept in other files, H5Pset_external), not a virtual
 * dataset (other files' datasets mapped), no filter that is not one of
 * HDF5's own (those below H5Z_FILTER_RESERVED): an unknown filter is looked
 * for as a plugin, a shared library HDF5 would load and run. */
static int check_storage(hid_t d, const char *path, const char *name, th_err *err)
{
    hid_t dcpl = H5Dget_create_plist(d);
    if (dcpl < 0) return th_errf(err, "%s is corrupt or truncated: cannot read how %s is stored", path, name);
    int n_external = H5Pget_external_count(dcpl);
    H5D_layout_t layout = H5Pget_layout(dcpl);
    int n_filters = H5Pget_nfilters(dcpl), rc = 0;
    if (n_external < 0 || layout < 0 || n_filters < 0)
        rc = th_errf(err, "%s is corrupt or truncated: cannot read how %s is stored", path, name);
    else if (n_external > 0) {
        char other[256] = "?";
        off_t offset;
        hsize_t size;
        H5Pget_external(dcpl, 0, sizeof other, other, &offset, &size);
        other[sizeof other - 1] = '\0';
        rc = th_errf(err, "%s: dataset %s keeps its values in another file (HDF5 external storage in '%s'); refusing a "
                          "file that points outside itself",
                     path, name, other);
    } else if (layout == H5D_VIRTUAL)
        rc = th_errf(err, "%s: dataset %s is an HDF5 virtual dataset (its values are other files' datasets); refusing "
                          "a file that points outside itself",
                     path, name);
    for (int k = 0; !rc && k < n_filters; k++) {
        unsigned flags, config;
        size_t n_values = 0;
        char filter[64];
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)k, &flags, &n_values, NULL, sizeof filter, filter, &config);
        if (id < 0)
            rc = th_errf(err, "%s is corrupt or truncated: cannot read the filters of %s", path, name);
        else if (id >= H5Z_FILTER_RESERVED)
            rc = th_errf(err, "%s: dataset %s needs HDF5 filter %d, not one of HDF5's own (it would be loaded as a "
                              "plugin); refusing it",
                         path, name, (int)id);
    }
    H5Pclose(dcpl);
    return rc;
}

/* One link of the walk: an external or user-defined link is refused; a hard
 * link to a dataset has its storage checked; a soft link names a path of this
 * same file, whose own links the walk visits anyway. */
static herr_t check_link(hid_t root, const char *name, const H5L_info_t *info, void *ctx)
{
    policy_walk *w = ctx;
    if (info->type == H5L_TYPE_SOFT) return 0;
    if (info->type != H5L_TYPE_HARD) {
        char target[512] = "";
        const char *file = NULL, *object = NULL;
        char *value = info->type == H5L_TYPE_EXTERNAL && info->u.val_size <= 4096 ? malloc(info->u.val_size) : NULL;
        if (value && H5Lget_val(root, name, value, info->u.val_size, H5P_DEFAULT) >= 0 &&
            H5Lunpack_elink_val(value, info->u.val_size, NULL, &file, &object) >= 0 && file && object)
            snprintf(target, sizeof target, " to %s:%s", file, object);
        free(value);
        w->refused = 1;
        th_errf(w->err, "%s: /%s is %s%s; refusing a file that points outside itself", w->path, name,
                link_kind(info->type), target);
        return -1;
    }
    hid_t obj = H5Oopen(root, name, H5P_DEFAULT);
    if (obj < 0) {
        w->refused = 1;
        th_errf(w->err, "%s is corrupt or truncated: cannot open /%s", w->path, name);
        return -1;
    }
    char dname[1024];
    snprintf(dname, sizeof dname, "/%s", name);
    int rc = H5Iget_type(obj) == H5I_DATASET ? check_storage(obj, w->path, dname, w->err) : 0;
    H5Oclose(obj);
    if (rc) w->refused = 1;
    return rc ? -1 : 0;
}

int th_h5_check_contained(hid_t file, const char *path, th_err *err)
{
    policy_walk w = {path, err, 0};
    hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    herr_t rc = root < 0 ? -1 : H5Lvisit(root, H5_INDEX_NAME, H5_ITER_INC, check_link, &w);
    if (root >= 0) H5Gclose(root);
    if (rc < 0 && !w.refused) th_errf(err, "%s is corrupt or truncated: cannot list its contents", path);
    return rc < 0 ? -1 : 0;
}

hid_t th_h5_open(const char *path, th_err *err)
{
    th_h5_quiet();
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        th_errf(err, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    close(fd);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        th_errf(err, "%s is corrupt or truncated: not a readable HDF5 file", path);
        return -1;
    }
    if (th_h5_check_contained(f, path, err)) {
        H5Fclose(f);
        return -1;
    }
    return f;
}

hid_t th_h5_create_tmp(const char *tmp_path, th_err *err)
{
    /* The plain open first, so that the message carries the system's reason. */
    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) {
        th_errf(err, "cannot create %s: %s", tmp_path, strerror(errno));
        return -1;
    }
    close(fd);
    th_h5_quiet();
    hid_t fapl = th_h5_write_fapl();
    hid_t f = fapl < 0 ? -1 : H5Fcreate(tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (f < 0) {
        unlink(tmp_path);
        th_errf(err, "cannot create %s as an HDF5 file", tmp_path);
    }
    return f;
}

int th_h5_flush(hid_t file, const char *tmp_path, th_err *err)
{
    herr_t rc = H5Fflush(file, H5F_SCOPE_GLOBAL);
    int e = th_h5_write_error(file);
    if (e) return th_errf(err, "cannot write %s: %s", tmp_path, strerror(e));
    if (rc < 0) return th_errf(err, "cannot write %s: HDF5 could not flush it", tmp_path);
    return 0;
}

int th_h5_commit(hid_t file, const char *tmp_path, const char *path, th_err *err)
{
    if (th_h5_flush(file, tmp_path, err)) {
        H5Fclose(file);
        return -1;
    }
    if (H5Fclose(file) < 0) return th_errf(err, "%s: cannot close the file (disk full?)", tmp_path);
    int fd = open(tmp_path, O_RDONLY);
    if (fd < 0 || fsync(fd)) {
        int e = errno;
        if (fd >= 0) close(fd);
        return th_errf(err, "cannot sync %s: %s", tmp_path, strerror(e));
    }
    close(fd);
    if (rename(tmp_path, path)) return th_errf(err, "cannot rename %s to %s: %s", tmp_path, path, strerror(errno));
    return 0;
}

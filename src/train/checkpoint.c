/* checkpoint.c - save and restore training state as HDF5 (see thorax/train.h).
 *
 * Written by one rank: a checkpoint is small next to the dataset and one
 * writer keeps the file simple for h5py and PyTorch users to read. It is
 * built in memory and written in one go (see th_checkpoint_save), and carries
 * CRC-32 checksums that every read checks (see "The checksum").
 */
#include "thorax/train.h"
#include "thorax/util.h"
#include "thorax/data.h"

#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* A float tensor [shape[0], ..., shape[ndim - 1]], stored little-endian. */
static int write_floats(hid_t group, const char *name, const float *data, int ndim, const int *shape)
{
    hsize_t dims[4];
    for (int k = 0; k < ndim; k++) dims[k] = (hsize_t)shape[k];
    return th_h5_write_all(group, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, ndim, dims, data);
}

/* An RNG's state: uint64 [4]. */
/* The scalar attributes of /state, one list for the writer and the reader.
 * HDF5's type IDs are not constants, so the table holds a kind. */
enum { STATE_F32, STATE_F64, STATE_I32 };
static const struct {
    const char *name;
    int kind;
    size_t at;
} state_attrs[] = {
    {"lr", STATE_F32, offsetof(th_train_state, lr)},
    {"best_score", STATE_F64, offsetof(th_train_state, best_score)},
    {"best_epoch", STATE_I32, offsetof(th_train_state, best_epoch)},
    {"bad_epochs", STATE_I32, offsetof(th_train_state, bad_epochs)},
    {"plateau_epochs", STATE_I32, offsetof(th_train_state, plateau_epochs)},
    {"norm_mean", STATE_F32, offsetof(th_train_state, norm_mean)},
    {"norm_std", STATE_F32, offsetof(th_train_state, norm_std)},
    {"epoch_loss_sum", STATE_F64, offsetof(th_train_state, epoch_loss_sum)},
};

/* The stored (little-endian, as every checkpoint) and in-memory types of a kind. */
static void state_attr_types(int kind, hid_t *file_type, hid_t *mem_type)
{
    *file_type = kind == STATE_F32 ? H5T_IEEE_F32LE : kind == STATE_F64 ? H5T_IEEE_F64LE : H5T_STD_I32LE;
    *mem_type = kind == STATE_F32 ? H5T_NATIVE_FLOAT : kind == STATE_F64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT;
}

static int write_rng(hid_t group, const char *name, const th_rng *r)
{
    hsize_t dims[1] = {4};
    return th_h5_write_all(group, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, dims, r->s);
}

/* The optimiser's per-parameter state, as (suffix, buffer) slots: SGD has
 * its momentum ".m", Adam its two moments ".m" and ".v". Saving and loading
 * both walk these, so the two always agree on names. */
static int optim_slots(const th_optim *o, const char **suffix, float **buf)
{
    suffix[0] = ".m";
    buf[0] = o->m;
    if (o->cfg.type != TH_OPTIM_ADAM) return 1;
    suffix[1] = ".v";
    buf[1] = o->v;
    return 2;
}

static int save_contents(hid_t f, const th_model *m, const th_optim *o, const th_train_state *s,
                         const char *config_yaml)
{
    int rc = 0;
    hid_t params = H5Gcreate2(f, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (params < 0) return -1;
    for (int t = 0; t < m->n_tensors && !rc; t++) {
        const th_tensor_info *ti = &m->tensors[t];
        const float *data = (ti->trainable ? m->params : m->buffers) + ti->offset;
        rc = write_floats(params, ti->name, data, ti->ndim, ti->shape);
    }
    H5Gclose(params);
    if (rc) return -1;

    if (o) {
        hid_t g = H5Gcreate2(f, "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) return -1;
        long long t_steps = o->t;
        rc |= th_h5_write_attr_string(g, "type", o->cfg.type == TH_OPTIM_ADAM ? "adam" : "sgd");
        rc |= th_h5_write_attr(g, "t", H5T_STD_I64LE, H5T_NATIVE_LLONG, &t_steps);
        const char *suffix[2];
        float *buf[2];
        int slots = optim_slots(o, suffix, buf);
        char name[TH_NAME_MAX + 32];
        for (int t = 0; t < m->n_tensors && !rc; t++) {
            const th_tensor_info *ti = &m->tensors[t];
            const th_optim_group *grp = ti->trainable ? th_optim_find(o, ti->offset, ti->count) : NULL;
            /* A frozen tensor has no state to save. */
            if (!grp) continue;
            size_t at = grp->state + (ti->offset - grp->offset);
            for (int k = 0; k < slots && !rc; k++) {
                snprintf(name, sizeof name, "%s%s", ti->name, suffix[k]);
                rc = write_floats(g, name, buf[k] + at, ti->ndim, ti->shape);
            }
            /* Only a group that started late says so: a run that never froze
             * anything writes the files it always wrote. */
            if (!rc && grp->t != o->t) {
                long long t_group = grp->t;
                snprintf(name, sizeof name, "%s%s", ti->name, suffix[0]);
                hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
                rc = ds < 0 ? -1 : th_h5_write_attr(ds, "t", H5T_STD_I64LE, H5T_NATIVE_LLONG, &t_group);
                if (ds >= 0) H5Dclose(ds);
            }
        }
        H5Gclose(g);
        if (rc) return -1;
    }

    if (s) {
        hid_t g = H5Gcreate2(f, "state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) return -1;
        for (size_t i = 0; i < sizeof state_attrs / sizeof state_attrs[0]; i++) {
            hid_t file_type, mem_type;
            state_attr_types(state_attrs[i].kind, &file_type, &mem_type);
            rc |= th_h5_write_attr(g, state_attrs[i].name, file_type, mem_type, (char *)s + state_attrs[i].at);
        }
        long long images = s->epoch_images;
        rc |= th_h5_write_attr(g, "epoch_images", H5T_STD_I64LE, H5T_NATIVE_LLONG, &images);
        H5Gclose(g);
        hid_t r = H5Gcreate2(f, "rng", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (r < 0) return -1;
        rc |= write_rng(r, "dropout", &m->rng);
        H5Gclose(r);
        long long step = s->step;
        rc |= th_h5_write_attr(f, "epoch", H5T_STD_I32LE, H5T_NATIVE_INT, &s->epoch);
        rc |= th_h5_write_attr(f, "step", H5T_STD_I64LE, H5T_NATIVE_LLONG, &step);
        if (s->data_fingerprint[0]) rc |= th_h5_write_attr_string(f, "data_fingerprint", s->data_fingerprint);
    }
    if (config_yaml) rc |= th_h5_write_attr_string(f, "config", config_yaml);
    return rc ? -1 : 0;
}

/* --- The checksum -------------------------------------------------------------
 * A checkpoint carries CRC-32s (zlib's: Python's zlib.crc32 gives the same):
 *  - every dataset its own, as attribute `crc32`, over its values as loaded
 *    (see known_type: little-endian, in the one type each is stored as), so
 *    that a mismatch names the damaged tensor;
 *  - the root a `crc32` over everything: each object's path in name order,
 *    depth first, its attributes (name and stored bytes, in name order; the
 *    root's own `crc32` left out) and, for a dataset, its shape and CRC; so a
 *    damaged epoch, learning rate or config is caught too.
 * Both are computed from the file itself, not from the model: one walk stores
 * them (save) and checks them (load, verify), and a file can be checked
 * without knowing its model. */
typedef struct digest {
    uLong crc;          /* the whole-file CRC so far */
    int store;          /* 1: write the CRCs (save); 0: check them */
    const char *path;   /* the file, for messages */
    th_err *err;
    unsigned char *buf; /* scratch for one dataset's or attribute's bytes */
    size_t cap;
} digest;

#define CRC_ATTR "crc32"

static uLong crc_bytes(uLong crc, const void *p, size_t n)
{
    const unsigned char *b = p;
    /* zlib counts in uInt. */
    for (size_t done = 0; done < n;) {
        size_t k = n - done < (1u << 30) ? n - done : (1u << 30);
        crc = crc32(crc, b + done, (uInt)k);
        done += k;
    }
    return crc;
}

/* The types a checkpoint stores its numbers as, exactly; text is
 * variable-length strings. Everything is hashed as it loads: read as the
 * type found here (for an intact file the stored type itself, so the bytes
 * hashed are those stored and older files keep their checksums). A stored
 * type that is none of these is refused before anything is read: one flipped
 * bit in a type header (the byte order, the exponent bias) changes what every
 * value decodes to and leaves the stored bytes, and so a CRC over them, as
 * they were. Returns a predefined type (not to be closed) or -1. */
static hid_t known_type(hid_t stored)
{
    const hid_t known[] = {H5T_IEEE_F32LE, H5T_IEEE_F64LE, H5T_STD_I32LE,
                           H5T_STD_I64LE,  H5T_STD_U32LE,  H5T_STD_U64LE};
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        if (H5Tequal(stored, known[k]) > 0) return known[k];
    return -1;
}

static void *scratch(digest *d, size_t n)
{
    if (n == 0) n = 1; /* a buffer even for an empty tensor */
    if (n > d->cap) {
        unsigned char *b = realloc(d->buf, n);
        if (!b) return NULL;
        d->buf = b;
        d->cap = n;
    }
    return d->buf;
}

typedef struct attr_walk {
    digest *d;
    const char *owner; /* the object's path, for messages */
    const char *skip;  /* an attribute left out (the root's own CRC), or NULL */
    int failed;
} attr_walk;

static herr_t digest_attr(hid_t obj, const char *name, const H5A_info_t *info, void *ctx)
{
    (void)info;
    attr_walk *w = ctx;
    digest *d = w->d;
    if (w->skip && !strcmp(name, w->skip)) return 0;
    d->crc = crc_bytes(d->crc, name, strlen(name) + 1);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t type = a < 0 ? -1 : H5Aget_type(a);
    hid_t space = a < 0 ? -1 : H5Aget_space(a);
    hssize_t n = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
    int rc = type < 0 || n < 0 ? -1 : 0, bad_type = 0;
    if (!rc && H5Tis_variable_str(type) > 0) {
        /* Variable-length strings (config, optimizer type): scalars only. */
        char *value = NULL;
        rc = n != 1 || H5Aread(a, type, &value) < 0 ? -1 : 0;
        if (!rc && value) d->crc = crc_bytes(d->crc, value, strlen(value) + 1);
        if (value) H5free_memory(value);
    } else if (!rc && known_type(type) < 0) {
        bad_type = 1;
        rc = -1;
    } else if (!rc) {
        hid_t as = known_type(type);
        size_t bytes = H5Tget_size(as) * (size_t)n;
        void *buf = scratch(d, bytes);
        rc = !buf || H5Aread(a, as, buf) < 0 ? -1 : 0;
        if (!rc) d->crc = crc_bytes(d->crc, buf, bytes);
    }
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (a >= 0) H5Aclose(a);
    if (rc) {
        w->failed = 1;
        if (bad_type)
            th_errf(d->err, "%s is corrupt: attribute '%s' of %s is stored as a type no checkpoint uses (a damaged "
                            "type header?)",
                    d->path, name, w->owner);
        else
            th_errf(d->err, "%s is corrupt or truncated: cannot read attribute '%s' of %s", d->path, name, w->owner);
        return -1;
    }
    return 0;
}

static int digest_attrs(hid_t obj, const char *owner, const char *skip, digest *d)
{
    attr_walk w = {d, owner, skip, 0};
    hsize_t idx = 0;
    if (H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, digest_attr, &w) < 0 || w.failed) {
        if (!w.failed) th_errf(d->err, "%s is corrupt or truncated: cannot list the attributes of %s", d->path, owner);
        return -1;
    }
    return 0;
}

static int digest_dataset(hid_t ds, const char *name, digest *d)
{
    hid_t type = H5Dget_type(ds), space = H5Dget_space(ds);
    int ndims = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
    hsize_t dims[H5S_MAX_RANK];
    int rc = type < 0 || ndims < 0 || H5Tis_variable_str(type) > 0 ? -1 : 0;
    if (!rc && H5Sget_simple_extent_dims(space, dims, NULL) < 0) rc = -1;
    hid_t as = rc ? -1 : known_type(type);
    uLong own = crc32(0L, Z_NULL, 0);
    if (!rc && as >= 0) {
        size_t bytes = H5Tget_size(as) * (size_t)H5Sget_simple_extent_npoints(space);
        void *buf = scratch(d, bytes);
        rc = !buf || H5Dread(ds, as, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0 ? -1 : 0;
        if (!rc) own = crc_bytes(own, buf, bytes);
    }
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (!rc && as < 0)
        return th_errf(d->err, "%s is corrupt: dataset %s is stored as a type no checkpoint uses (a damaged type "
                               "header?)",
                       d->path, name);
    if (rc) return th_errf(d->err, "%s is corrupt or truncated: cannot read dataset %s", d->path, name);

    uint32_t stored_crc = (uint32_t)own;
    if (d->store) {
        if (th_h5_write_attr(ds, CRC_ATTR, H5T_STD_U32LE, H5T_NATIVE_UINT32, &stored_crc))
            return th_errf(d->err, "%s: cannot write the checksum of %s", d->path, name);
    } else {
        if (th_h5_read_attr(ds, CRC_ATTR, H5T_NATIVE_UINT32, &stored_crc))
            return th_errf(d->err, "%s: dataset %s has no checksum (written before Thorax stored checksums, or not by "
                                   "Thorax); refusing to trust it",
                           d->path, name);
        if (stored_crc != (uint32_t)own)
            return th_errf(d->err, "%s is corrupt: dataset %s does not match its checksum (CRC-32 %08x, stored %08x)",
                           d->path, name, (unsigned)own, (unsigned)stored_crc);
    }
    uint64_t shape[H5S_MAX_RANK + 1] = {(uint64_t)ndims};
    for (int k = 0; k < ndims; k++) shape[k + 1] = dims[k];
    d->crc = crc_bytes(d->crc, shape, sizeof(uint64_t) * (size_t)(ndims + 1));
    d->crc = crc_bytes(d->crc, &stored_crc, sizeof stored_crc);
    return digest_attrs(ds, name, NULL, d);
}

/* A group and, in name order, everything below it. */
static int digest_group(hid_t g, const char *gpath, digest *d)
{
    if (digest_attrs(g, gpath, !strcmp(gpath, "/") ? CRC_ATTR : NULL, d)) return -1;
    H5G_info_t info;
    if (H5Gget_info(g, &info) < 0)
        return th_errf(d->err, "%s is corrupt or truncated: cannot list group %s", d->path, gpath);
    for (hsize_t i = 0; i < info.nlinks; i++) {
        char name[TH_NAME_MAX + 64], child[TH_NAME_MAX + 128];
        ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT);
        if (len < 0 || (size_t)len >= sizeof name)
            return th_errf(d->err, "%s is corrupt or truncated: cannot list group %s", d->path, gpath);
        snprintf(child, sizeof child, "%s%s%s", gpath, strcmp(gpath, "/") ? "/" : "", name);
        d->crc = crc_bytes(d->crc, child, strlen(child) + 1);
        hid_t obj = H5Oopen(g, name, H5P_DEFAULT);
        H5I_type_t kind = obj < 0 ? H5I_BADID : H5Iget_type(obj);
        int rc = kind == H5I_GROUP     ? digest_group(obj, child, d)
                 : kind == H5I_DATASET ? digest_dataset(obj, child, d)
                                       : th_errf(d->err, "%s is corrupt or truncated: cannot open %s", d->path, child);
        if (obj >= 0) H5Oclose(obj);
        if (rc) return -1;
    }
    return 0;
}

/* Stores (store = 1) or checks the checksums of an open checkpoint. A file
 * without them (from before checksums) is refused rather than trusted. */
static int digest_file(hid_t f, const char *path, int store, th_err *err)
{
    uint32_t stored = 0;
    if (!store && th_h5_read_attr(f, CRC_ATTR, H5T_NATIVE_UINT32, &stored))
        return th_errf(err, "%s has no checksum (written by a Thorax before checksums, or not by Thorax); refusing to "
                            "trust it: start the run afresh",
                       path);
    digest d = {.crc = crc32(0L, Z_NULL, 0), .store = store, .path = path, .err = err};
    int rc = digest_group(f, "/", &d);
    free(d.buf);
    if (rc) return -1;
    uint32_t crc = (uint32_t)d.crc;
    if (store)
        return th_h5_write_attr(f, CRC_ATTR, H5T_STD_U32LE, H5T_NATIVE_UINT32, &crc)
                   ? th_errf(err, "%s: cannot write its checksum", path)
                   : 0;
    if (stored != crc)
        return th_errf(err, "%s is corrupt: its attributes or layout do not match the checksum (CRC-32 %08x, stored "
                            "%08x)",
                       path, (unsigned)crc, (unsigned)stored);
    return 0;
}

/* The checkpoint is built in memory (HDF5's core driver) and written with
 * plain write/fsync/rename (th_write_file_atomic): a full disk then fails one
 * write() with the OS's own reason, and HDF5 never holds a file it cannot
 * close (after a failed flush, H5Fclose fails and leaves the file open, and
 * HDF5 crashes closing it again at exit). The fsync before the rename means
 * a node crash cannot leave last.h5 naming an empty file, and network file
 * systems that report a full disk or quota only at fsync or close are caught. */
int th_checkpoint_save(const char *path, const th_model *m, const th_optim *o, const th_train_state *s,
                       const char *config_yaml, th_err *err)
{
    th_h5_quiet();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_core(fapl, 1 << 20, 0) < 0) {
        if (fapl >= 0) H5Pclose(fapl);
        return th_errf(err, "saving checkpoint %s: cannot set up HDF5's in-memory file", path);
    }
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0) return th_errf(err, "saving checkpoint %s: cannot create HDF5's in-memory file", path);
    int rc = save_contents(f, m, o, s, config_yaml);
    if (!rc) rc = digest_file(f, path, 1, NULL);
    if (!rc && H5Fflush(f, H5F_SCOPE_LOCAL) < 0) rc = -1;
    ssize_t size = rc ? -1 : H5Fget_file_image(f, NULL, 0);
    void *image = size > 0 ? malloc((size_t)size) : NULL;
    if (image && H5Fget_file_image(f, image, (size_t)size) != size) rc = -1;
    if (H5Fclose(f) < 0) rc = -1;
    if (rc || !image) {
        free(image);
        return th_errf(err, "saving checkpoint %s: HDF5 could not build it (out of memory?)", path);
    }
    th_err why;
    rc = th_write_file_atomic(path, image, (size_t)size, &why);
    free(image);
    if (rc) return th_errf(err, "saving checkpoint %s failed: %s; the previous %s is untouched", path, why.msg, path);
    return 0;
}

/* Reads one float tensor, checking its shape against the model's. */
static int load_floats(hid_t group, const char *path, const char *name, float *data, int ndim, const int *shape,
                       th_err *err)
{
    if (H5Lexists(group, name, H5P_DEFAULT) <= 0)
        return th_errf(err, "%s: no tensor '%s' (is it a checkpoint of this model?)", path, name);
    hid_t ds = H5Dopen2(group, name, H5P_DEFAULT);
    hid_t type = H5Dget_type(ds);
    int is_f32 = type >= 0 && H5Tequal(type, H5T_IEEE_F32LE) > 0;
    if (type >= 0) H5Tclose(type);
    if (!is_f32) {
        H5Dclose(ds);
        return th_errf(err, "%s: tensor '%s' is not stored as IEEE f32 little-endian (a damaged type header?)", path,
                       name);
    }
    hid_t space = H5Dget_space(ds);
    hsize_t dims[8];
    int nd = H5Sget_simple_extent_ndims(space);
    int ok = nd == ndim && nd <= 8;
    if (ok) {
        H5Sget_simple_extent_dims(space, dims, NULL);
        for (int k = 0; k < nd; k++) ok &= dims[k] == (hsize_t)shape[k];
    }
    H5Sclose(space);
    if (!ok) {
        H5Dclose(ds);
        char want[64] = "", *p = want;
        for (int k = 0; k < ndim; k++) p += snprintf(p, (size_t)(want + sizeof want - p), k ? "x%d" : "%d", shape[k]);
        return th_errf(err, "%s: tensor '%s' has another shape than the model's %s", path, name, want);
    }
    herr_t rc = H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(ds);
    if (rc < 0) return th_errf(err, "%s: cannot read tensor '%s' (truncated file?)", path, name);
    return 0;
}

/* The optimiser state of every tensor o's groups cover, and each group's
 * step count: a tensor's `t` attribute when the file has one, else the
 * optimiser's own. The file must hold state for those tensors and no other,
 * or the run it comes from froze other layers. */
static int load_optim(hid_t f, const char *path, const th_model *m, th_optim *o, th_err *err)
{
    if (H5Lexists(f, "optimizer", H5P_DEFAULT) <= 0) return th_errf(err, "%s: no optimizer state", path);
    hid_t g = H5Gopen2(f, "optimizer", H5P_DEFAULT);
    long long t_steps = 0;
    int rc = th_h5_read_attr(g, "t", H5T_NATIVE_LLONG, &t_steps) ? th_errf(err, "%s: damaged optimizer state (no step "
                                                                         "count)", path)
                                                           : 0;
    o->t = (long)t_steps;
    const char *suffix[2];
    float *buf[2];
    int slots = optim_slots(o, suffix, buf), expected = 0;
    char name[TH_NAME_MAX + 32];
    /* A group's step count comes from its first tensor; the others must agree. */
    th_optim_group *seen = NULL;
    for (int t = 0; t < m->n_tensors && !rc; t++) {
        const th_tensor_info *ti = &m->tensors[t];
        th_optim_group *grp = ti->trainable ? th_optim_find(o, ti->offset, ti->count) : NULL;
        if (!grp) continue;
        size_t at = grp->state + (ti->offset - grp->offset);
        for (int k = 0; k < slots && !rc; k++) {
            snprintf(name, sizeof name, "%s%s", ti->name, suffix[k]);
            if (H5Lexists(g, name, H5P_DEFAULT) <= 0)
                rc = th_errf(err, "%s: no optimizer state for %s, which trains here: was it written with other "
                                  "layers frozen (train.freeze)?",
                             path, ti->name);
            else
                rc = load_floats(g, path, name, buf[k] + at, ti->ndim, ti->shape, err);
            expected++;
        }
        if (rc) break;
        long long t_group = t_steps;
        snprintf(name, sizeof name, "%s%s", ti->name, suffix[0]);
        hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
        if (ds < 0 || (H5Aexists(ds, "t") > 0 && th_h5_read_attr(ds, "t", H5T_NATIVE_LLONG, &t_group)))
            rc = th_errf(err, "%s: damaged optimizer state (the step count of %s)", path, ti->name);
        if (ds >= 0) H5Dclose(ds);
        if (!rc && grp != seen) grp->t = (long)t_group;
        else if (!rc && grp->t != (long)t_group)
            rc = th_errf(err, "%s: damaged optimizer state (%s has step count %lld, the tensors it trains with %ld)",
                         path, ti->name, t_group, grp->t);
        seen = grp;
    }
    H5G_info_t info;
    if (!rc && H5Gget_info(g, &info) == 0 && info.nlinks != (hsize_t)expected)
        rc = th_errf(err, "%s: holds optimizer state for %llu tensors, this run trains %d: was it written with other "
                          "layers frozen (train.freeze)?",
                     path, (unsigned long long)info.nlinks / (hsize_t)slots, expected / slots);
    H5Gclose(g);
    return rc ? -1 : 0;
}

/* Attribute name of obj into value (mem_type), when it is there and stored
 * exactly as file_type, the type th_checkpoint_save writes it as. */
static int read_attr_as(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, void *value)
{
    hid_t a = H5Aexists(obj, name) > 0 ? H5Aopen(obj, name, H5P_DEFAULT) : -1;
    hid_t type = a < 0 ? -1 : H5Aget_type(a);
    int rc = type >= 0 && H5Tequal(type, file_type) > 0 && H5Aread(a, mem_type, value) >= 0 ? 0 : -1;
    if (type >= 0) H5Tclose(type);
    if (a >= 0) H5Aclose(a);
    return rc;
}

static int load_contents(hid_t f, const char *path, th_model *m, th_optim *o, th_train_state *s, th_err *err)
{
    if (H5Lexists(f, "params", H5P_DEFAULT) <= 0) return th_errf(err, "%s: not a Thorax checkpoint (no /params)", path);
    hid_t params = H5Gopen2(f, "params", H5P_DEFAULT);
    H5G_info_t info;
    hsize_t n_in_file = H5Gget_info(params, &info) < 0 ? 0 : info.nlinks;
    int rc = 0;
    for (int t = 0; t < m->n_tensors && !rc; t++) {
        th_tensor_info *ti = &m->tensors[t];
        rc = load_floats(params, path, ti->name, th_model_tensor_data(m, t), ti->ndim, ti->shape, err);
    }
    H5Gclose(params);
    if (rc) return -1;
    if (n_in_file != (hsize_t)m->n_tensors)
        return th_errf(err, "%s: holds %llu tensors, the model has %d (a checkpoint of another model?)", path,
                       (unsigned long long)n_in_file, m->n_tensors);

    if (o && load_optim(f, path, m, o, err)) return -1;

    th_rng dropout = m->rng;
    if (H5Lexists(f, "rng", H5P_DEFAULT) > 0) {
        hid_t r = H5Gopen2(f, "rng", H5P_DEFAULT);
        if (th_h5_read_all(r, "dropout", H5T_NATIVE_UINT64, dropout.s) == 0) m->rng = dropout;
        H5Gclose(r);
    }
    if (s) {
        if (H5Lexists(f, "state", H5P_DEFAULT) <= 0) return th_errf(err, "%s: no training state", path);
        hid_t g = H5Gopen2(f, "state", H5P_DEFAULT);
        for (size_t i = 0; i < sizeof state_attrs / sizeof state_attrs[0]; i++) {
            hid_t file_type, mem_type;
            state_attr_types(state_attrs[i].kind, &file_type, &mem_type);
            rc |= read_attr_as(g, state_attrs[i].name, file_type, mem_type, (char *)s + state_attrs[i].at);
        }
        long long images = 0;
        rc |= read_attr_as(g, "epoch_images", H5T_STD_I64LE, H5T_NATIVE_LLONG, &images);
        s->epoch_images = (long)images;
        H5Gclose(g);
        long long step = 0;
        rc |= read_attr_as(f, "epoch", H5T_STD_I32LE, H5T_NATIVE_INT, &s->epoch);
        rc |= read_attr_as(f, "step", H5T_STD_I64LE, H5T_NATIVE_LLONG, &step);
        s->step = (long)step;
        if (rc) return th_errf(err, "%s: damaged training state (an attribute missing or not stored as written)", path);
        /* Checkpoints from before the fingerprint have none: "" pins nothing. */
        s->data_fingerprint[0] = '\0';
        if (H5Aexists(f, "data_fingerprint") > 0) {
            char *value = NULL;
            hid_t t = th_h5_utf8();
            rc = t >= 0 && th_h5_read_attr(f, "data_fingerprint", t, &value) == 0 && value ? 0 : -1;
            if (!rc) snprintf(s->data_fingerprint, sizeof s->data_fingerprint, "%s", value);
            if (value) H5free_memory(value);
            if (t >= 0) H5Tclose(t);
            if (rc) return th_errf(err, "%s: damaged attribute data_fingerprint", path);
        }
    }
    return 0;
}

/* Opens a checkpoint for reading under the open policy (th_h5_open: nothing
 * outside the file) and checks its checksums. */
static hid_t open_verified(const char *path, th_err *err)
{
    if (access(path, R_OK)) {
        th_errf(err, "cannot open checkpoint %s: no such readable file", path);
        return -1;
    }
    hid_t f = th_h5_open(path, err);
    if (f < 0) return -1;
    if (digest_file(f, path, 0, err)) {
        H5Fclose(f);
        return -1;
    }
    return f;
}

int th_checkpoint_verify(const char *path, th_err *err)
{
    hid_t f = open_verified(path, err);
    if (f < 0) return -1;
    H5Fclose(f);
    return 0;
}

int th_checkpoint_load(const char *path, th_model *m, th_optim *o, th_train_state *s, th_err *err)
{
    hid_t f = open_verified(path, err);
    if (f < 0) return -1;
    int rc = load_contents(f, path, m, o, s, err);
    H5Fclose(f);
    return rc;
}

int th_checkpoint_load_optim(const char *path, const th_model *m, th_optim *o, th_err *err)
{
    hid_t f = open_verified(path, err);
    if (f < 0) return -1;
    int rc = load_optim(f, path, m, o, err);
    H5Fclose(f);
    return rc;
}

/* ---- Starting from another file's parameters (model.init) ------------------ */

/* "[14, 256]" */
static void shape_text(int ndim, const hsize_t *dims, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int k = 0; k < ndim && n < cap; k++) n += (size_t)snprintf(buf + n, cap - n, "%s%llu", k ? ", " : "",
                                                                    (unsigned long long)dims[k]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Appends name to a ", "-separated list of at most cap bytes, ending it with
 * ", ..." once the next name does not fit. */
static void list_name(char *list, size_t cap, const char *name)
{
    size_t len = strlen(list);
    if (len >= 5 && !strcmp(list + len - 5, ", ...")) return;
    if (len + strlen(name) + 2 + 6 < cap) snprintf(list + len, cap - len, "%s%s", len ? ", " : "", name);
    else if (len + 6 < cap) snprintf(list + len, cap - len, "%s...", len ? ", " : "");
}

/* Every check of th_checkpoint_init_params, on the open file: which model
 * tensors it holds (in_file[t]), each of the model's shape; a tensor the
 * model lacks is an error. Shapes are checked in the model's order, so the
 * first mismatch named is the one a reader of the model expects
 * (fc.weight before fc.bias). */
static int check_init(hid_t params, const char *path, const th_model *m, unsigned char *in_file, th_err *err)
{
    H5G_info_t info;
    if (H5Gget_info(params, &info) < 0) return th_errf(err, "%s is corrupt or truncated: cannot list /params", path);
    if (info.nlinks == 0) return th_errf(err, "%s holds no tensor under /params", path);
    char unknown[256] = "";
    long n_unknown = 0;
    for (hsize_t i = 0; i < info.nlinks; i++) {
        char name[TH_NAME_MAX + 64];
        ssize_t len = H5Lget_name_by_idx(params, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT);
        int t = len < 0 || (size_t)len >= sizeof name ? -1 : th_model_find_tensor(m, name);
        if (t >= 0) {
            in_file[t] = 1;
            continue;
        }
        if (len >= 0 && (size_t)len >= sizeof name) snprintf(name + sizeof name - 4, 4, "...");
        list_name(unknown, sizeof unknown, len < 0 ? "(unreadable name)" : name);
        n_unknown++;
    }
    if (n_unknown)
        return th_errf(err, "%s holds %ld tensor%s the model does not have (%s): parameters of another architecture, "
                            "or layers named otherwise",
                       path, n_unknown, n_unknown == 1 ? "" : "s", unknown);
    for (int t = 0; t < m->n_tensors; t++) {
        if (!in_file[t]) continue;
        const th_tensor_info *ti = &m->tensors[t];
        hid_t ds = H5Dopen2(params, ti->name, H5P_DEFAULT);
        hid_t space = ds < 0 ? -1 : H5Dget_space(ds), type = ds < 0 ? -1 : H5Dget_type(ds);
        int nd = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
        hsize_t dims[H5S_MAX_RANK] = {0};
        int is_float = type >= 0 && H5Tget_class(type) == H5T_FLOAT;
        if (nd >= 0 && nd <= H5S_MAX_RANK) H5Sget_simple_extent_dims(space, dims, NULL);
        if (type >= 0) H5Tclose(type);
        if (space >= 0) H5Sclose(space);
        if (ds >= 0) H5Dclose(ds);
        if (nd < 0 || nd > H5S_MAX_RANK) return th_errf(err, "%s: cannot read the shape of /params/%s", path, ti->name);
        if (!is_float) return th_errf(err, "%s: /params/%s is not floating-point", path, ti->name);
        int same = nd == ti->ndim;
        for (int k = 0; same && k < nd; k++) same = dims[k] == (hsize_t)ti->shape[k];
        if (!same) {
            char file_shape[96], model_shape[96];
            hsize_t want[4];
            for (int k = 0; k < ti->ndim; k++) want[k] = (hsize_t)ti->shape[k];
            shape_text(nd, dims, file_shape, sizeof file_shape);
            shape_text(ti->ndim, want, model_shape, sizeof model_shape);
            /* A dense layer after flatten has as many inputs as the maps
             * have values, which model.input decides: say so. */
            const th_layer *L = &m->layers[ti->layer];
            const th_layer *F = L->in[0] >= 0 ? &m->layers[L->in[0]] : NULL;
            char why[TH_NAME_MAX + 160] = "";
            if (L->spec.type == TH_LAYER_DENSE && F && F->spec.type == TH_LAYER_FLATTEN)
                snprintf(why, sizeof why, " (layer %s turns %dx%dx%d maps into %d inputs: another model.input?)",
                         F->name, F->in_c, F->in_h, F->in_w, F->out_c);
            return th_errf(err, "%s: %s has shape %s in the file, %s in the model%s", path, ti->name, file_shape,
                           model_shape, why);
        }
    }
    return 0;
}

int th_checkpoint_init_params(const char *path, th_model *m, th_init_report *r, th_err *err)
{
    memset(r, 0, sizeof *r);
    hid_t f = open_verified(path, err);
    if (f < 0) return -1;
    if (H5Lexists(f, "params", H5P_DEFAULT) <= 0) {
        H5Fclose(f);
        return th_errf(err, "%s: no /params group: not a Thorax checkpoint or import", path);
    }
    hid_t params = H5Gopen2(f, "params", H5P_DEFAULT);
    unsigned char *in_file = calloc((size_t)m->n_tensors + 1, 1);
    int rc = params < 0 || !in_file ? th_errf(err, "%s: cannot open /params", path) : 0;
    if (!rc) rc = check_init(params, path, m, in_file, err);
    for (int t = 0; t < m->n_tensors && !rc; t++) {
        const th_tensor_info *ti = &m->tensors[t];
        if (!in_file[t]) {
            r->fresh++;
            list_name(r->fresh_names, sizeof r->fresh_names, ti->name);
            continue;
        }
        rc = load_floats(params, path, ti->name, th_model_tensor_data(m, t), ti->ndim, ti->shape, err);
        r->loaded += !rc;
    }
    free(in_file);
    if (params >= 0) H5Gclose(params);
    H5Fclose(f);
    return rc;
}

char *th_checkpoint_read_config(const char *path, th_err *err)
{
    hid_t f = open_verified(path, err);
    if (f < 0) return NULL;
    char *value = NULL, *copy = NULL;
    hid_t t = th_h5_utf8();
    if (t >= 0 && th_h5_read_attr(f, "config", t, &value) == 0 && value) {
        copy = strdup(value);
        H5free_memory(value);
    }
    if (t >= 0) H5Tclose(t);
    H5Fclose(f);
    if (!copy) th_errf(err, "%s: no `config` attribute", path);
    return copy;
}

int th_checkpoint_check_config(const char *path, const th_config *cfg, const char *cfg_path, th_err *err)
{
    /* What the outputs mean: which label each is, in order, what the network
     * is, how its input is normalised, and how logits become probabilities. */
    static const char *const meaning[] = {"data.labels", "data.normalize", "model.input", "model.layers",
                                          "train.loss", NULL};
    char *yaml = th_checkpoint_read_config(path, err);
    if (!yaml) return -1;
    th_config *was = malloc(sizeof *was);
    int rc = was ? 0 : th_errf(err, "out of memory");
    if (!rc && th_run_config_load_string(was, yaml, path, NULL, 0, err))
        rc = th_err_prefix(err, "%s: its own config: ", path);
    if (!rc && th_config_compare(was, cfg, meaning, err))
        rc = th_err_prefix(err, "%s does not match the config of its checkpoint %s, which says what the outputs mean: ",
                           cfg_path, path);
    free(was);
    free(yaml);
    return rc;
}

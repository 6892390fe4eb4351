/* checkpoint.c - save and restore training state as HDF5 (see thorax/checkpoint.h).
 *
 * Written by one rank with the serial (sec2) driver: a checkpoint is small next
 * to the dataset and one writer keeps the file simple for h5py and PyTorch
 * users to read.
 */
#include "thorax/checkpoint.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_floats(hid_t group, const char *name, const float *data, int ndim, const int *shape)
{
    hsize_t dims[4];
    for (int k = 0; k < ndim; k++) dims[k] = (hsize_t)shape[k];
    hid_t space = H5Screate_simple(ndim, dims, NULL);
    hid_t ds = H5Dcreate2(group, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(space);
    return rc < 0 ? -1 : 0;
}

static int write_attr(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, const void *value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, mem_type, value);
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    return rc < 0 ? -1 : 0;
}

static int write_attr_string(hid_t obj, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    int rc = write_attr(obj, name, t, t, &value);
    H5Tclose(t);
    return rc;
}

static int read_attr(hid_t obj, const char *name, hid_t mem_type, void *value)
{
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Aread(a, mem_type, value);
    if (a >= 0) H5Aclose(a);
    return rc < 0 ? -1 : 0;
}

static int write_rng(hid_t group, const char *name, const th_rng *r)
{
    hsize_t dims[1] = {4};
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t ds = H5Dcreate2(group, name, H5T_STD_U64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->s);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(space);
    return rc < 0 ? -1 : 0;
}

static int read_rng(hid_t group, const char *name, th_rng *r)
{
    hid_t ds = H5Dopen2(group, name, H5P_DEFAULT);
    if (ds < 0) return -1;
    herr_t rc = H5Dread(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->s);
    H5Dclose(ds);
    return rc < 0 ? -1 : 0;
}

/* The optimiser's per-parameter state, as (suffix, buffer) slots: SGD has
 * its momentum ".m", Adam its two moments ".m" and ".v". Saving and loading
 * both walk these, so the two always agree on names. */
static int optim_slots(const th_optim *o, const char **suffix, float **buf)
{
    int n = 0;
    if (o->m) {
        suffix[n] = ".m";
        buf[n++] = o->m;
    }
    if (o->v) {
        suffix[n] = ".v";
        buf[n++] = o->v;
    }
    return n;
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
        rc |= write_attr_string(g, "type", o->cfg.type == TH_OPTIM_ADAM ? "adam" : "sgd");
        rc |= write_attr(g, "t", H5T_STD_I64LE, H5T_NATIVE_LLONG, &t_steps);
        const char *suffix[2];
        float *buf[2];
        int slots = optim_slots(o, suffix, buf);
        char name[TH_NAME_MAX + 32];
        for (int t = 0; t < m->n_tensors && !rc; t++) {
            const th_tensor_info *ti = &m->tensors[t];
            for (int k = 0; k < slots && ti->trainable && !rc; k++) {
                snprintf(name, sizeof name, "%s%s", ti->name, suffix[k]);
                rc = write_floats(g, name, buf[k] + ti->offset, ti->ndim, ti->shape);
            }
        }
        H5Gclose(g);
        if (rc) return -1;
    }

    if (s) {
        hid_t g = H5Gcreate2(f, "state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) return -1;
        rc |= write_attr(g, "lr", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, &s->lr);
        rc |= write_attr(g, "best_score", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &s->best_score);
        rc |= write_attr(g, "best_epoch", H5T_STD_I32LE, H5T_NATIVE_INT, &s->best_epoch);
        rc |= write_attr(g, "bad_epochs", H5T_STD_I32LE, H5T_NATIVE_INT, &s->bad_epochs);
        rc |= write_attr(g, "plateau_epochs", H5T_STD_I32LE, H5T_NATIVE_INT, &s->plateau_epochs);
        rc |= write_attr(g, "norm_mean", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, &s->norm_mean);
        rc |= write_attr(g, "norm_std", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, &s->norm_std);
        long long images = s->epoch_images;
        rc |= write_attr(g, "epoch_loss_sum", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &s->epoch_loss_sum);
        rc |= write_attr(g, "epoch_images", H5T_STD_I64LE, H5T_NATIVE_LLONG, &images);
        H5Gclose(g);
        hid_t r = H5Gcreate2(f, "rng", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (r < 0) return -1;
        rc |= write_rng(r, "dropout", &m->rng);
        H5Gclose(r);
        long long step = s->step;
        rc |= write_attr(f, "epoch", H5T_STD_I32LE, H5T_NATIVE_INT, &s->epoch);
        rc |= write_attr(f, "step", H5T_STD_I64LE, H5T_NATIVE_LLONG, &step);
    }
    if (config_yaml) rc |= write_attr_string(f, "config", config_yaml);
    return rc ? -1 : 0;
}

int th_checkpoint_save(const char *path, const th_model *m, const th_optim *o, const th_train_state *s,
                       const char *config_yaml, th_err *err)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return th_errf(err, "checkpoint path too long: %s", path);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return th_errf(err, "cannot create checkpoint %s (is the directory writable?)", tmp);
    int rc = save_contents(f, m, o, s, config_yaml);
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) rc = -1;
    if (H5Fclose(f) < 0) rc = -1;
    if (rc) {
        unlink(tmp);
        return th_errf(err, "writing checkpoint %s failed (disk full?); the previous checkpoint is untouched", tmp);
    }
    if (rename(tmp, path)) {
        unlink(tmp);
        return th_errf(err, "cannot rename %s to %s", tmp, path);
    }
    return 0;
}

/* Reads one float tensor, checking its shape against the model's. */
static int load_floats(hid_t group, const char *path, const char *name, float *data, int ndim, const int *shape,
                       th_err *err)
{
    if (H5Lexists(group, name, H5P_DEFAULT) <= 0)
        return th_errf(err, "%s: no tensor '%s' (is it a checkpoint of this model?)", path, name);
    hid_t ds = H5Dopen2(group, name, H5P_DEFAULT);
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

    if (o) {
        if (H5Lexists(f, "optimizer", H5P_DEFAULT) <= 0) return th_errf(err, "%s: no optimizer state", path);
        hid_t g = H5Gopen2(f, "optimizer", H5P_DEFAULT);
        long long t_steps = 0;
        rc = read_attr(g, "t", H5T_NATIVE_LLONG, &t_steps);
        o->t = (long)t_steps;
        const char *suffix[2];
        float *buf[2];
        int slots = optim_slots(o, suffix, buf);
        char name[TH_NAME_MAX + 32];
        for (int t = 0; t < m->n_tensors && !rc; t++) {
            const th_tensor_info *ti = &m->tensors[t];
            for (int k = 0; k < slots && ti->trainable && !rc; k++) {
                snprintf(name, sizeof name, "%s%s", ti->name, suffix[k]);
                rc = load_floats(g, path, name, buf[k] + ti->offset, ti->ndim, ti->shape, err);
            }
        }
        H5Gclose(g);
        if (rc) return err && err->msg[0] ? -1 : th_errf(err, "%s: damaged optimizer state", path);
    }

    th_rng dropout = m->rng;
    if (H5Lexists(f, "rng", H5P_DEFAULT) > 0) {
        hid_t r = H5Gopen2(f, "rng", H5P_DEFAULT);
        if (read_rng(r, "dropout", &dropout) == 0) m->rng = dropout;
        H5Gclose(r);
    }
    if (s) {
        if (H5Lexists(f, "state", H5P_DEFAULT) <= 0) return th_errf(err, "%s: no training state", path);
        hid_t g = H5Gopen2(f, "state", H5P_DEFAULT);
        rc |= read_attr(g, "lr", H5T_NATIVE_FLOAT, &s->lr);
        rc |= read_attr(g, "best_score", H5T_NATIVE_DOUBLE, &s->best_score);
        rc |= read_attr(g, "best_epoch", H5T_NATIVE_INT, &s->best_epoch);
        rc |= read_attr(g, "bad_epochs", H5T_NATIVE_INT, &s->bad_epochs);
        rc |= read_attr(g, "plateau_epochs", H5T_NATIVE_INT, &s->plateau_epochs);
        rc |= read_attr(g, "norm_mean", H5T_NATIVE_FLOAT, &s->norm_mean);
        rc |= read_attr(g, "norm_std", H5T_NATIVE_FLOAT, &s->norm_std);
        long long images = 0;
        rc |= read_attr(g, "epoch_loss_sum", H5T_NATIVE_DOUBLE, &s->epoch_loss_sum);
        rc |= read_attr(g, "epoch_images", H5T_NATIVE_LLONG, &images);
        s->epoch_images = (long)images;
        H5Gclose(g);
        long long step = 0;
        rc |= read_attr(f, "epoch", H5T_NATIVE_INT, &s->epoch);
        rc |= read_attr(f, "step", H5T_NATIVE_LLONG, &step);
        s->step = (long)step;
        if (rc) return th_errf(err, "%s: damaged training state", path);
    }
    return 0;
}

int th_checkpoint_load(const char *path, th_model *m, th_optim *o, th_train_state *s, th_err *err)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        if (access(path, R_OK)) return th_errf(err, "cannot open checkpoint %s: no such readable file", path);
        return th_errf(err, "%s: not an HDF5 file, or truncated", path);
    }
    int rc = load_contents(f, path, m, o, s, err);
    H5Fclose(f);
    return rc;
}

char *th_checkpoint_read_config(const char *path, th_err *err)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        th_errf(err, "cannot open checkpoint %s", path);
        return NULL;
    }
    char *value = NULL, *copy = NULL;
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    if (read_attr(f, "config", t, &value) == 0 && value) {
        copy = strdup(value);
        H5free_memory(value);
    }
    H5Tclose(t);
    H5Fclose(f);
    if (!copy) th_errf(err, "%s: no `config` attribute", path);
    return copy;
}

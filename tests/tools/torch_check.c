/* torch_check.c - Thorax's forward and backward against PyTorch's.
 *
 *   torch_check CONFIG.yaml CHECKPOINT.h5 DATA.h5 [--set k=v ...]
 * Builds the config's model for as many labels and images as DATA.h5 holds,
 * loads CHECKPOINT.h5 (tools/import-torch.py --keep-head of the PyTorch
 * model) and compares with what tests/torch/torch_equiv.py computed with
 * that model in float64, so that the differences are Thorax's float32 alone.
 * DATA.h5 holds:
 *   /x [N,C,H,W] float32    the input, already normalised
 *   /labels [N,L] uint8
 *   /logits_eval [N,L]      eval mode (running statistics)
 *   /logits_train [N,L]     train mode (batch statistics)
 *   /grads/<name>           d(loss)/d(tensor) after the train-mode forward,
 *                           for every trainable tensor
 * The loss is Thorax's plain BCE (th_loss, TH_LOSS_BCE: summed over labels)
 * divided by N, as the trainer divides the summed gradients by the images of
 * the global batch; in PyTorch, binary_cross_entropy_with_logits(reduction=
 * "sum") / N.
 *
 * The relative error of a tensor is max|thorax - torch| / max|torch| over its
 * elements: relative to the tensor's scale, because an element near zero has
 * no meaningful relative error of its own in float32 (an exactly zero
 * reference compares max|thorax| instead). Logits must agree to 1e-4 (eval
 * and train mode), gradients to 1e-3. Prints one line per tensor and the
 * worst of each kind; exits 1 when one is off, 2 on bad usage or inputs.
 */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thorax/train.h"
#include "thorax/config.h"
#include "thorax/nn.h"

#define FORWARD_TOL 1e-4
#define GRAD_TOL 1e-3
#define MAX_SETS 64

/* Reads a whole dataset as `type`, checking it has `want` elements (0: any).
 * Returns malloc'd memory, or NULL after printing why. */
static void *read_all(hid_t f, const char *path, hid_t type, size_t elem, size_t want, int ndim_max, hsize_t *dims,
                      int *ndim)
{
    if (H5Lexists(f, path, H5P_DEFAULT) <= 0) {
        fprintf(stderr, "torch_check: DATA.h5 has no %s\n", path);
        return NULL;
    }
    hid_t ds = H5Dopen2(f, path, H5P_DEFAULT), sp = H5Dget_space(ds);
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t d[H5S_MAX_RANK];
    H5Sget_simple_extent_dims(sp, d, NULL);
    size_t n = (size_t)H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    void *buf = NULL;
    if (nd > ndim_max) fprintf(stderr, "torch_check: %s has %d dimensions, expected at most %d\n", path, nd, ndim_max);
    else if (want && n != want) fprintf(stderr, "torch_check: %s has %zu values, expected %zu\n", path, n, want);
    else if (!(buf = malloc(elem * (n ? n : 1)))) fprintf(stderr, "torch_check: out of memory reading %s\n", path);
    else if (H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        fprintf(stderr, "torch_check: cannot read %s\n", path);
        free(buf);
        buf = NULL;
    }
    H5Dclose(ds);
    if (buf && dims) memcpy(dims, d, sizeof(hsize_t) * (size_t)nd);
    if (buf && ndim) *ndim = nd;
    return buf;
}

/* max|a - b| / max|b| (see the top of the file). */
static double rel_error(const float *a, const double *b, size_t n)
{
    double diff = 0, scale = 0, size = 0;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs(b[i]));
        size = fmax(size, fabs((double)a[i]));
    }
    return scale > 0 ? diff / scale : size;
}

typedef struct worst {
    double rel;
    char what[TH_NAME_MAX + 32];
} worst;

/* Prints one comparison and keeps the worst; returns 1 when over tol. */
static int report(const char *what, const float *thorax, const double *torch, size_t n, double tol, worst *w)
{
    double rel = rel_error(thorax, torch, n);
    int bad = !(rel <= tol); /* NaN fails */
    printf("%-56s %.3g%s\n", what, rel, bad ? "  FAIL" : "");
    if (!isnan(w->rel) && !(rel <= w->rel)) { /* a NaN is the worst, and stays so */
        w->rel = rel;
        snprintf(w->what, sizeof w->what, "%s", what);
    }
    return bad;
}

int main(int argc, char **argv)
{
    const char *sets[MAX_SETS];
    int n_sets = 0, usage = argc < 4;
    for (int i = 4; i < argc && !usage; i += 2) {
        usage = strcmp(argv[i], "--set") || i + 1 >= argc || n_sets == MAX_SETS;
        if (!usage) sets[n_sets++] = argv[i + 1];
    }
    if (usage) {
        fprintf(stderr, "usage: torch_check CONFIG.yaml CHECKPOINT.h5 DATA.h5 [--set k=v ...]\n");
        return 2;
    }
    th_err err;
    th_config *cfg = malloc(sizeof *cfg);
    if (!cfg || th_run_config_load(cfg, argv[1], sets, n_sets, &err)) {
        fprintf(stderr, "torch_check: %s\n", cfg ? err.msg : "out of memory");
        return 2;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(argv[3], H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr, "torch_check: cannot open %s\n", argv[3]);
        return 2;
    }
    hsize_t xd[4], yd[2];
    int x_nd = 0, y_nd = 0;
    float *x = read_all(f, "/x", H5T_NATIVE_FLOAT, sizeof(float), 0, 4, xd, &x_nd);
    uint8_t *y = read_all(f, "/labels", H5T_NATIVE_UINT8, 1, 0, 2, yd, &y_nd);
    if (!x || !y) return 2;
    const th_model_spec *spec = &cfg->model;
    if (x_nd != 4 || xd[1] != (hsize_t)spec->c || xd[2] != (hsize_t)spec->h || xd[3] != (hsize_t)spec->w ||
        y_nd != 2 || yd[0] != xd[0]) {
        fprintf(stderr, "torch_check: /x must be [N,%d,%d,%d] and /labels [N,L] (the config's model.input)\n",
                spec->c, spec->h, spec->w);
        return 2;
    }
    int n = (int)xd[0], L = (int)yd[1];
    double *eval_ref = read_all(f, "/logits_eval", H5T_NATIVE_DOUBLE, sizeof(double), (size_t)n * L, 2, NULL, NULL);
    double *train_ref = read_all(f, "/logits_train", H5T_NATIVE_DOUBLE, sizeof(double), (size_t)n * L, 2, NULL, NULL);
    if (!eval_ref || !train_ref) return 2;

    th_model m;
    if (th_model_create(&m, spec, L, n, &err) || th_checkpoint_load(argv[2], &m, NULL, NULL, &err)) {
        fprintf(stderr, "torch_check: %s\n", err.msg);
        return 2;
    }
    printf("%s: %d images, %d labels, %d layers, %zu parameters; relative error max|thorax - torch| / max|torch|\n",
           argv[1], n, L, m.n_layers, m.n_params);

    int bad = 0;
    worst fwd = {0, ""}, grad = {0, ""};
    float *logits = malloc(sizeof(float) * (size_t)n * L), *dz = malloc(sizeof(float) * (size_t)n * L);
    if (!logits || !dz) return 2;
    /* Eval mode first: the train-mode forward moves the running statistics. */
    memcpy(logits, th_model_forward(&m, x, n, 0), sizeof(float) * (size_t)n * L);
    bad |= report("logits (eval)", logits, eval_ref, (size_t)n * L, FORWARD_TOL, &fwd);
    memcpy(logits, th_model_forward(&m, x, n, 1), sizeof(float) * (size_t)n * L);
    bad |= report("logits (train)", logits, train_ref, (size_t)n * L, FORWARD_TOL, &fwd);

    th_loss(TH_LOSS_BCE, n, L, logits, y, NULL, NULL, dz);
    for (size_t i = 0; i < (size_t)n * L; i++) dz[i] /= (float)n;
    th_model_backward(&m, x, dz, n);
    for (int t = 0; t < m.n_tensors; t++) {
        const th_tensor_info *ti = &m.tensors[t];
        if (!ti->trainable) continue;
        char path[sizeof ti->name + 8], what[sizeof grad.what];
        snprintf(path, sizeof path, "/grads/%s", ti->name);
        snprintf(what, sizeof what, "grad %s", ti->name);
        double *ref = read_all(f, path, H5T_NATIVE_DOUBLE, sizeof(double), ti->count, 4, NULL, NULL);
        if (!ref) return 2;
        bad |= report(what, m.grads + ti->offset, ref, ti->count, GRAD_TOL, &grad);
        free(ref);
    }
    printf("worst forward %.3g (%s, tolerance %.0e); worst gradient %.3g (%s, tolerance %.0e)%s\n", fwd.rel, fwd.what,
           FORWARD_TOL, grad.rel, grad.what, GRAD_TOL, bad ? ": FAIL" : "");

    free(logits);
    free(dz);
    free(eval_ref);
    free(train_ref);
    free(x);
    free(y);
    th_model_free(&m);
    free(cfg);
    H5Fclose(f);
    return bad;
}

/* ckpt_compare.c - compares the parameters of two checkpoints.
 *
 *   ckpt_compare A.h5 B.h5 TOL
 * For every tensor under /params of A (B must have the same set), prints the
 * relative difference ||a - b|| / max(||a||, ||b||) and exits 1 if any
 * exceeds TOL. Used by the multi-rank integration tests.
 */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *read_tensor(hid_t f, const char *name, hsize_t *count)
{
    char path[512];
    snprintf(path, sizeof path, "/params/%s", name);
    if (H5Lexists(f, path, H5P_DEFAULT) <= 0) return NULL;
    hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
    hid_t sp = H5Dget_space(ds);
    *count = (hsize_t)H5Sget_simple_extent_npoints(sp);
    float *buf = malloc(sizeof(float) * (*count ? *count : 1));
    H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Sclose(sp);
    H5Dclose(ds);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: ckpt_compare A.h5 B.h5 TOL\n");
        return 2;
    }
    double tol = atof(argv[3]);
    hid_t a = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t b = H5Fopen(argv[2], H5F_ACC_RDONLY, H5P_DEFAULT);
    if (a < 0 || b < 0) {
        fprintf(stderr, "ckpt_compare: cannot open %s\n", a < 0 ? argv[1] : argv[2]);
        return 2;
    }
    hid_t g = H5Gopen2(a, "params", H5P_DEFAULT);
    H5G_info_t info;
    H5Gget_info(g, &info);
    int bad = 0;
    double worst = 0;
    for (hsize_t i = 0; i < info.nlinks; i++) {
        char name[256];
        H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT);
        hsize_t na = 0, nb = 0;
        float *x = read_tensor(a, name, &na), *y = read_tensor(b, name, &nb);
        if (!x || !y || na != nb) {
            printf("%-24s missing or different shape in %s\n", name, argv[2]);
            bad = 1;
        } else {
            double d = 0, sx = 0, sy = 0;
            for (hsize_t k = 0; k < na; k++) {
                d += ((double)x[k] - y[k]) * ((double)x[k] - y[k]);
                sx += (double)x[k] * x[k];
                sy += (double)y[k] * y[k];
            }
            double rel = sqrt(d) / fmax(sqrt(fmax(sx, sy)), 1e-30);
            if (rel > worst) worst = rel;
            printf("%-24s relative difference %.3g%s\n", name, rel, rel > tol ? "  FAIL" : "");
            if (rel > tol) bad = 1;
        }
        free(x);
        free(y);
    }
    printf("worst relative difference %.3g (tolerance %.3g)\n", worst, tol);
    H5Gclose(g);
    H5Fclose(a);
    H5Fclose(b);
    return bad;
}

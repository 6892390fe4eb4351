/* norm_check.c - the training-set statistics of a checkpoint against a
 * one-process computation.
 *
 *   norm_check DATA.h5 SPLIT.csv CHECKPOINT.h5
 * Reads every image that split.csv puts in train straight from the dataset
 * file, computes the mean and standard deviation of their pixels (in units of
 * pixel/255) in double, and compares them with the checkpoint's /state
 * norm_mean and norm_std. Exits 1 if either differs by more than 1e-6.
 */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float attr(hid_t f, const char *name)
{
    float v = NAN;
    hid_t g = H5Gopen2(f, "state", H5P_DEFAULT);
    hid_t a = H5Aopen(g, name, H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_FLOAT, &v);
    H5Aclose(a);
    H5Gclose(g);
    return v;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: norm_check DATA.h5 SPLIT.csv CHECKPOINT.h5\n");
        return 2;
    }
    hid_t d = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT), c = H5Fopen(argv[3], H5F_ACC_RDONLY, H5P_DEFAULT);
    FILE *csv = fopen(argv[2], "r");
    if (d < 0 || c < 0 || !csv) {
        fprintf(stderr, "norm_check: cannot open the inputs\n");
        return 2;
    }
    hid_t images = H5Dopen2(d, "images", H5P_DEFAULT);
    hid_t space = H5Dget_space(images);
    hsize_t dims[3];
    H5Sget_simple_extent_dims(space, dims, NULL);
    size_t hw = (size_t)(dims[1] * dims[2]);
    unsigned char *all = malloc((size_t)dims[0] * hw);
    H5Dread(images, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, all);
    /* split.csv lists every image in dataset order: image,patient_id,split. */
    char line[4096];
    double s = 0, s2 = 0, n = 0;
    long row = -1; /* the header is row -1 */
    for (; fgets(line, sizeof line, csv); row++) {
        if (row < 0) continue;
        char *last = strrchr(line, ',');
        if (!last || strncmp(last + 1, "train", 5)) continue;
        for (size_t p = 0; p < hw; p++) {
            double v = all[(size_t)row * hw + p] / 255.0;
            s += v;
            s2 += v * v;
        }
        n += (double)hw;
    }
    double mean = s / n, sd = sqrt(s2 / n - mean * mean);
    float cm = attr(c, "norm_mean"), cs = attr(c, "norm_std");
    printf("one process: mean %.7f sd %.7f; checkpoint: mean %.7f sd %.7f\n", mean, sd, cm, cs);
    free(all);
    return fabs(mean - cm) < 1e-6 && fabs(sd - cs) < 1e-6 ? 0 : 1;
}

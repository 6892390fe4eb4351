/* h5_summary.c - what a dataset file holds, as `key value...` lines for tests.
 *
 *   h5_summary F.h5            counts
 *   h5_summary F.h5 --rows     one line per image
 *
 * Counts: `images N`, `size H W`, `labels L names...`, `pos LABEL N` per
 * label, `all_negative N` (rows with every label 0), `patients N` (unique
 * IDs), `split NAME IMAGES PATIENTS POS...` per split when /split exists,
 * `pixel_mean M`. Rows: `image patient labels(0/1 string) pixel_sum split`.
 * Serial HDF5, so that it checks the file independently of the MPI reader.
 */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thorax/data.h"

static int fail(const char *path, const char *what)
{
    fprintf(stderr, "h5_summary: %s: cannot read %s\n", path, what);
    return 1;
}

/* A 1-D variable-length string dataset or attribute into a malloc'd array. */
static char **read_strings(hid_t obj, int is_attr, hsize_t n)
{
    char **s = calloc(n ? n : 1, sizeof *s);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    herr_t rc = is_attr ? H5Aread(obj, t, s) : H5Dread(obj, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s);
    H5Tclose(t);
    if (rc < 0) {
        free(s);
        return NULL;
    }
    return s;
}

static void free_strings(char **s, int n)
{
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

static int dims_of(hid_t d, hsize_t *dims)
{
    hid_t sp = H5Dget_space(d);
    int rank = H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    return rank;
}

/* Sum of the pixels of image i. */
static long long image_sum(hid_t images, hsize_t i, hsize_t h, hsize_t w, uint8_t *buf)
{
    hsize_t start[3] = {i, 0, 0}, count[3] = {1, h, w};
    hid_t fs = H5Dget_space(images), ms = H5Screate_simple(3, count, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    herr_t rc = H5Dread(images, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, buf);
    H5Sclose(ms);
    H5Sclose(fs);
    if (rc < 0) return -1;
    long long s = 0;
    for (hsize_t k = 0; k < h * w; k++) s += buf[k];
    return s;
}

static void print_split(int which, int n, int L, const uint8_t *split, const uint8_t *labels, char **patients)
{
    int m = 0;
    const char **ids = malloc(sizeof *ids * (size_t)n);
    int *of = malloc(sizeof *of * (size_t)n), *pos = calloc((size_t)L, sizeof *pos);
    for (int i = 0; i < n; i++) {
        if (split[i] != which) continue;
        ids[m++] = patients[i];
        for (int k = 0; k < L; k++) pos[k] += labels[(size_t)i * L + k];
    }
    printf("split %s %d %d", th_split_name(which), m, th_patients_group(m, ids, of));
    for (int k = 0; k < L; k++) printf(" %d", pos[k]);
    printf("\n");
    free(pos);
    free(of);
    free(ids);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "--rows"))) {
        fprintf(stderr, "usage: h5_summary F.h5 [--rows]\n");
        return 2;
    }
    const char *path = argv[1];
    int rows = argc == 3;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return fail(path, "the file");
    hid_t images = H5Dopen2(f, "images", H5P_DEFAULT), labels_d = H5Dopen2(f, "labels", H5P_DEFAULT);
    hid_t pid_d = H5Dopen2(f, "patient_id", H5P_DEFAULT), name_d = H5Dopen2(f, "image_name", H5P_DEFAULT);
    if (images < 0 || labels_d < 0 || pid_d < 0 || name_d < 0) return fail(path, "the datasets");
    hsize_t idims[3], ldims[2];
    if (dims_of(images, idims) != 3 || dims_of(labels_d, ldims) != 2 || ldims[0] != idims[0])
        return fail(path, "the shapes");
    int n = (int)idims[0], L = (int)ldims[1];
    uint8_t *labels = malloc((size_t)n * L), *split = NULL, *buf = malloc(idims[1] * idims[2]);
    if (H5Dread(labels_d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels) < 0) return fail(path, "/labels");
    hid_t names_a = H5Aopen(labels_d, "names", H5P_DEFAULT);
    char **label_names = names_a < 0 ? NULL : read_strings(names_a, 1, (hsize_t)L);
    char **patients = read_strings(pid_d, 0, (hsize_t)n), **image_names = read_strings(name_d, 0, (hsize_t)n);
    if (!label_names || !patients || !image_names) return fail(path, "the strings");
    if (H5Lexists(f, "split", H5P_DEFAULT) > 0) {
        hid_t s = H5Dopen2(f, "split", H5P_DEFAULT);
        split = malloc((size_t)n);
        if (H5Dread(s, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, split) < 0) return fail(path, "/split");
        H5Dclose(s);
    }

    long long total = 0;
    for (int i = 0; i < n; i++) {
        long long s = image_sum(images, (hsize_t)i, idims[1], idims[2], buf);
        if (s < 0) return fail(path, "/images");
        total += s;
        if (!rows) continue;
        printf("%s %s ", image_names[i], patients[i]);
        for (int k = 0; k < L; k++) putchar('0' + labels[(size_t)i * L + k]);
        printf(" %lld %s\n", s, split ? th_split_name(split[i]) : "-");
    }
    if (!rows) {
        printf("images %d\nsize %d %d\nlabels %d", n, (int)idims[1], (int)idims[2], L);
        for (int k = 0; k < L; k++) printf(" %s", label_names[k]);
        printf("\n");
        int all_neg = 0;
        for (int k = 0; k < L; k++) {
            int pos = 0;
            for (int i = 0; i < n; i++) pos += labels[(size_t)i * L + k];
            printf("pos %s %d\n", label_names[k], pos);
        }
        for (int i = 0; i < n; i++) {
            int any = 0;
            for (int k = 0; k < L; k++) any |= labels[(size_t)i * L + k];
            all_neg += !any;
        }
        printf("all_negative %d\n", all_neg);
        int *of = malloc(sizeof *of * (size_t)n);
        printf("patients %d\n", th_patients_group(n, (const char *const *)patients, of));
        free(of);
        for (int s = TH_SPLIT_TRAIN; split && s <= TH_SPLIT_TEST; s++)
            print_split(s, n, L, split, labels, patients);
        printf("pixel_mean %.4f\n", (double)total / ((double)n * (double)idims[1] * (double)idims[2]));
    }
    free_strings(label_names, L);
    free_strings(patients, n);
    free_strings(image_names, n);
    free(labels);
    free(split);
    free(buf);
    H5Aclose(names_a);
    H5Dclose(name_d);
    H5Dclose(pid_d);
    H5Dclose(labels_d);
    H5Dclose(images);
    H5Fclose(f);
    return 0;
}

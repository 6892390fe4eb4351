/* test_phantom.c - the synthetic dataset and the dataset file round trip
 * (thorax/data.h, thorax/data.h).
 *
 * Rendering must be a pure function of (opts, patient, study) with the asked
 * prevalence and masks exactly where labels are positive; a patient's
 * studies must share anatomy. The written file must read back, through the
 * MPI-IO reader on MPI_COMM_SELF, as exactly what was rendered; broken files
 * must fail with messages that name the file and the dataset.
 */
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "thorax/data.h"

static int any_set(const uint8_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (m[i]) return 1;
    return 0;
}

static double mean_abs_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += abs((int)a[i] - (int)b[i]);
    return s / (double)n;
}

static void test_determinism(void)
{
    th_phantom_opts o;
    th_phantom_defaults(&o);
    o.size = 64;
    o.prevalence = 0.5f;
    const size_t npix = 64 * 64;
    uint8_t a[64 * 64], b[64 * 64], la[4], lb[4];
    uint8_t *ma = malloc(4 * npix), *mb = malloc(4 * npix);
    th_phantom_render(&o, 3, 1, a, la, ma);
    th_phantom_render(&o, 3, 1, b, lb, mb);
    CHECK(memcmp(a, b, npix) == 0);
    CHECK(memcmp(la, lb, 4) == 0);
    CHECK(memcmp(ma, mb, 4 * npix) == 0);
    o.seed = 2;
    th_phantom_render(&o, 3, 1, b, lb, mb);
    CHECK(memcmp(a, b, npix) != 0);
    /* Not a blank picture: dark air, bright mediastinum. */
    int lo = 255, hi = 0;
    for (size_t i = 0; i < npix; i++) {
        if (a[i] < lo) lo = a[i];
        if (a[i] > hi) hi = a[i];
    }
    CHECK(lo < 40 && hi > 180);
    free(mb);
    free(ma);
}

/* Over a few hundred studies: positives near the prevalence, and a mask
 * with pixels exactly for the positive labels. Two sizes, the smallest
 * included, where a nodule is barely a pixel. */
static void test_labels_and_masks(int size)
{
    th_phantom_opts o;
    th_phantom_defaults(&o);
    o.size = size;
    o.prevalence = 0.3f;
    const size_t npix = (size_t)size * size;
    uint8_t *img = malloc(npix), *m = malloc(4 * npix), lab[4];
    int pos[4] = {0}, studies = 0, mask_ok = 1;
    for (int p = 0; p < 100; p++)
        for (int s = 0; s < 4; s++, studies++) {
            th_phantom_render(&o, p, s, img, lab, m);
            for (int k = 0; k < 4; k++) {
                pos[k] += lab[k];
                if (any_set(m + k * npix, npix) != lab[k]) {
                    if (mask_ok)
                        fprintf(stderr, "size %d patient %d study %d: mask of label %d disagrees with label %d\n",
                                size, p, s, k, lab[k]);
                    mask_ok = 0;
                }
            }
        }
    CHECK(mask_ok);
    for (int k = 0; k < 4; k++) CHECK_NEAR((double)pos[k] / studies, 0.3, 0.07);
    free(m);
    free(img);
}

/* Studies of one patient resemble each other more than two patients do. */
static void test_patient_anatomy(void)
{
    th_phantom_opts o;
    th_phantom_defaults(&o);
    o.size = 64;
    o.prevalence = 0;
    const size_t npix = 64 * 64;
    uint8_t a[64 * 64], b[64 * 64], c[64 * 64], lab[4];
    double same = 0, other = 0;
    for (int p = 0; p < 20; p++) {
        th_phantom_render(&o, p, 0, a, lab, NULL);
        th_phantom_render(&o, p, 1, b, lab, NULL);
        th_phantom_render(&o, p + 20, 0, c, lab, NULL);
        same += mean_abs_diff(a, b, npix);
        other += mean_abs_diff(a, c, npix);
    }
    CHECK(same < other);
}

/* The marker follows its label and changes nothing but the corner. */
static void test_marker(void)
{
    th_phantom_opts o;
    th_phantom_defaults(&o);
    o.size = 64;
    o.prevalence = 0.5f;
    th_phantom_opts om = o;
    om.marker_label = 1;
    om.marker_rate = 1;
    uint8_t a[64 * 64], b[64 * 64], la[4], lb[4];
    int tagged_pos = 0, pos = 0, tagged_neg = 0, neg = 0, outside_corner = 0;
    for (int p = 0; p < 60; p++) {
        th_phantom_render(&o, p, 0, a, la, NULL);
        th_phantom_render(&om, p, 0, b, lb, NULL);
        CHECK(memcmp(la, lb, 4) == 0);
        int differs = 0;
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++)
                if (a[y * 64 + x] != b[y * 64 + x]) {
                    differs = 1;
                    /* The tag and the blur's reach around it. */
                    if (y > 14 || (x > 14 && x < 49)) outside_corner = 1;
                }
        if (lb[1]) {
            pos++;
            tagged_pos += differs;
        } else {
            neg++;
            tagged_neg += differs;
        }
    }
    CHECK(pos > 10 && tagged_pos == pos);
    CHECK(tagged_neg <= neg / 5);
    CHECK(!outside_corner);
}

static void on_progress(void *ctx, int done, int total)
{
    int *last = ctx;
    if (done <= last[0] || done > total) last[1] = 1; /* not increasing: wrong */
    last[0] = done;
    last[2] = total;
}

/* A file made by hand with only the datasets given, for the error cases. */
static void write_partial_file(const char *path, int with_labels, int bad_label)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[3] = {2, 4, 4};
    uint8_t zeros[32] = {0};
    hid_t sp = H5Screate_simple(3, dims, NULL);
    hid_t d = H5Dcreate2(f, "images", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros);
    H5Dclose(d);
    H5Sclose(sp);
    if (with_labels) {
        hsize_t ldims[2] = {2, 1};
        uint8_t labels[2] = {0, (uint8_t)bad_label};
        sp = H5Screate_simple(2, ldims, NULL);
        d = H5Dcreate2(f, "labels", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels);
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 8);
        hsize_t one = 1;
        hid_t asp = H5Screate_simple(1, &one, NULL);
        hid_t a = H5Acreate2(d, "names", t, asp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, t, "Finding");
        H5Aclose(a);
        H5Sclose(asp);
        H5Tclose(t);
        H5Dclose(d);
        H5Sclose(sp);
        /* Fixed-length strings, as some tools write them. */
        const char ids[2][6] = {"A", "B"};
        t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 6);
        hsize_t two = 2;
        sp = H5Screate_simple(1, &two, NULL);
        d = H5Dcreate2(f, "patient_id", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids);
        H5Dclose(d);
        d = H5Dcreate2(f, "image_name", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids);
        H5Dclose(d);
        H5Sclose(sp);
        H5Tclose(t);
    }
    H5Fclose(f);
}

static void test_file_round_trip(const char *dir)
{
    th_phantom_opts o;
    th_phantom_defaults(&o);
    o.size = 32;
    o.patients = 20;
    o.prevalence = 0.3f;
    char path[512];
    snprintf(path, sizeof path, "%s/phantom.h5", dir);
    th_err err;
    int progress[3] = {0, 0, 0};
    CHECK(th_phantom_write(&o, path, on_progress, progress, &err) == 0);
    int n = th_phantom_count(&o);
    CHECK(n >= 20 && n <= 80);
    CHECK(progress[0] == n && progress[2] == n && progress[1] == 0);
    char tmp[600];
    th_tmp_path(path, tmp, sizeof tmp, NULL);
    CHECK(access(tmp, F_OK) != 0);

    th_dataset ds;
    if (!CHECK(th_dataset_open(&ds, path, MPI_COMM_SELF, &err) == 0)) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK(ds.n == n && ds.h == 32 && ds.w == 32 && ds.n_labels == 4);
    CHECK(ds.has_masks && ds.split == NULL);
    for (int k = 0; k < 4; k++) CHECK(!strcmp(ds.label_names[k], th_phantom_labels[k]));
    CHECK(th_dataset_label_index(&ds, "Effusion") == 2);
    CHECK(th_dataset_label_index(&ds, "Edema") == -1);

    const size_t npix = 32 * 32;
    uint8_t *all = malloc((size_t)n * npix), *want = malloc(npix), *m = malloc(4 * npix), *mwant = malloc(4 * npix);
    int *idx = malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) idx[i] = i;
    CHECK(th_dataset_read_images(&ds, idx, n, all, &err) == 0);
    int row = 0, images_ok = 1, labels_ok = 1, names_ok = 1, masks_ok = 1;
    for (int p = 0; p < o.patients; p++)
        for (int s = 0; row < n; s++, row++) {
            char pid[16], name[32];
            snprintf(pid, sizeof pid, "P%05d", p);
            snprintf(name, sizeof name, "P%05d_%03d.png", p, s);
            if (strcmp(ds.patient_id[row], pid)) break; /* next patient */
            uint8_t lab[4];
            th_phantom_render(&o, p, s, want, lab, mwant);
            images_ok &= memcmp(all + (size_t)row * npix, want, npix) == 0;
            labels_ok &= memcmp(ds.labels + row * 4, lab, 4) == 0;
            names_ok &= !strcmp(ds.image_name[row], name);
            CHECK(th_dataset_read_masks(&ds, row, m, &err) == 0);
            masks_ok &= memcmp(m, mwant, 4 * npix) == 0;
        }
    CHECK(row == n);
    CHECK(images_ok && labels_ok && names_ok && masks_ok);

    /* Unsorted, with a repeat: returned in the order asked. */
    int ask[6] = {n - 1, 2, 0, 2, n / 2, 1};
    uint8_t *got = malloc(6 * npix);
    CHECK(th_dataset_read_images(&ds, ask, 6, got, &err) == 0);
    int order_ok = 1;
    for (int i = 0; i < 6; i++) order_ok &= memcmp(got + i * npix, all + (size_t)ask[i] * npix, npix) == 0;
    CHECK(order_ok);
    int out_of_range[1] = {n};
    CHECK(th_dataset_read_images(&ds, out_of_range, 1, got, &err) == -1);
    CHECK(strstr(err.msg, path) != NULL);
    th_dataset_close(&ds);

    free(got);
    free(idx);
    free(mwant);
    free(m);
    free(want);
    free(all);
}

static void test_bad_files(const char *dir)
{
    th_dataset ds;
    th_err err;
    char path[512];

    snprintf(path, sizeof path, "%s/missing.h5", dir);
    CHECK(th_dataset_open(&ds, path, MPI_COMM_SELF, &err) == -1);
    CHECK(strstr(err.msg, path) != NULL);

    snprintf(path, sizeof path, "%s/garbage.h5", dir);
    FILE *f = fopen(path, "wb");
    fputs("this is not an HDF5 file at all, just some bytes\n", f);
    fclose(f);
    CHECK(th_dataset_open(&ds, path, MPI_COMM_SELF, &err) == -1);
    CHECK(strstr(err.msg, path) != NULL && strstr(err.msg, "HDF5") != NULL);

    snprintf(path, sizeof path, "%s/nolabels.h5", dir);
    write_partial_file(path, 0, 0);
    CHECK(th_dataset_open(&ds, path, MPI_COMM_SELF, &err) == -1);
    CHECK(strstr(err.msg, path) != NULL && strstr(err.msg, "/labels") != NULL);

    snprintf(path, sizeof path, "%s/badlabel.h5", dir);
    write_partial_file(path, 1, 2);
    CHECK(th_dataset_open(&ds, path, MPI_COMM_SELF, &err) == -1);
    CHECK(strstr(err.msg, "row 1") != NULL && strstr(err.msg, "Finding") != NULL);

    /* The same file with valid labels opens, fixed-length strings and all. */
    snprintf(path, sizeof path, "%s/fixed.h5", dir);
    write_partial_file(path, 1, 1);
    if (CHECK(th_dataset_open(&ds, path, MPI_COMM_SELF, &err) == 0)) {
        CHECK(ds.n == 2 && !strcmp(ds.patient_id[1], "B") && !strcmp(ds.label_names[0], "Finding"));
        CHECK(!ds.has_masks);
        th_dataset_close(&ds);
    } else {
        fprintf(stderr, "%s\n", err.msg);
    }
}

static void test_writer_misuse(const char *dir)
{
    char path[512], tmp[600];
    snprintf(path, sizeof path, "%s/partial.h5", dir);
    th_tmp_path(path, tmp, sizeof tmp, NULL);
    const char *names[1] = {"X"};
    uint8_t img[16] = {0}, lab[1] = {1};
    th_dataset_writer wr;
    th_err err;
    CHECK(th_dataset_writer_create(&wr, path, 3, 4, 4, 1, names, 0, 1, &err) == 0);
    CHECK(th_dataset_writer_put(&wr, 0, img, lab, "p", "a.png", NULL, 0, &err) == 0);
    CHECK(th_dataset_writer_put(&wr, 0, img, lab, "p", "a.png", NULL, 0, &err) == -1);
    CHECK(strstr(err.msg, "twice") != NULL);
    CHECK(th_dataset_writer_put(&wr, 3, img, lab, "p", "b.png", NULL, 0, &err) == -1);
    lab[0] = 2;
    CHECK(th_dataset_writer_put(&wr, 1, img, lab, "p", "b.png", NULL, 0, &err) == -1);
    lab[0] = 0;
    CHECK(th_dataset_writer_put(&wr, 2, img, lab, "q", "c.png", NULL, 2, &err) == 0);
    CHECK(th_dataset_writer_finish(&wr, &err) == -1);
    CHECK(strstr(err.msg, "row 1") != NULL);
    CHECK(access(tmp, F_OK) != 0 && access(path, F_OK) != 0);
    th_dataset_writer_abort(&wr); /* harmless after a failed finish */

    snprintf(path, sizeof path, "%s/no/such/dir/x.h5", dir);
    CHECK(th_dataset_writer_create(&wr, path, 1, 4, 4, 1, names, 0, 0, &err) == -1);
    CHECK(strstr(err.msg, path) != NULL);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    test_determinism();
    test_labels_and_masks(64);
    test_labels_and_masks(16);
    test_patient_anatomy();
    test_marker();

    char dir[] = "/tmp/thorax_test_phantom_XXXXXX";
    if (CHECK(mkdtemp(dir) != NULL)) {
        test_file_round_trip(dir);
        test_bad_files(dir);
        test_writer_misuse(dir);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    int rc = th_test_summary("test_phantom");
    MPI_Finalize();
    return rc;
}

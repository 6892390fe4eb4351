/* test_dataset_mpi.c - the dataset reader across ranks (run under mpirun
 * with 2 and 4 ranks).
 *
 * Rank 0 writes a small phantom file; every rank opens it collectively and
 * reads its own strided rows, in descending order, which must match the
 * same studies rendered directly, byte for byte; the index must be the same
 * on every rank. Then broken files (garbage, a fake HDF5 signature, a
 * truncated copy, a valid HDF5 file without /labels, a missing path): every
 * rank must fail, with the same message, and none may hang.
 */
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "thorax/data.h"

static int rank, n_ranks;

/* Every rank must reach the same verdict with the same sentence. */
static void check_fails_everywhere(const char *path, const char *must_contain)
{
    th_dataset ds;
    th_err err = {{0}};
    int rc = th_dataset_open(&ds, path, MPI_COMM_WORLD, &err);
    int all_failed;
    int failed = rc == -1;
    MPI_Allreduce(&failed, &all_failed, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    CHECK(all_failed);
    char root_msg[sizeof err.msg];
    memcpy(root_msg, err.msg, sizeof root_msg);
    MPI_Bcast(root_msg, (int)sizeof root_msg, MPI_CHAR, 0, MPI_COMM_WORLD);
    CHECK(strcmp(root_msg, err.msg) == 0);
    CHECK(strstr(err.msg, path) != NULL);
    if (must_contain) CHECK(strstr(err.msg, must_contain) != NULL);
    if (rank == 0) printf("  expected failure: %s\n", err.msg);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

/* A valid HDF5 file holding only /images, written serially. */
static void write_images_only(const char *path)
{
    hsize_t dims[3] = {3, 8, 8};
    static uint8_t pixels[3 * 8 * 8];
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(3, dims, NULL);
    hid_t d = H5Dcreate2(f, "images", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, pixels);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
}

/* The first half of src, as a crash mid-copy would leave it. */
static void write_truncated_copy(const char *src, const char *dst)
{
    FILE *f = fopen(src, "rb");
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    if (got == (size_t)n) write_bytes(dst, buf, (size_t)n / 2);
    free(buf);
}

static unsigned long hash_strings(char **s, int n)
{
    unsigned long h = 5381;
    for (int i = 0; i < n; i++)
        for (const char *c = s[i]; *c; c++) h = h * 33 + (unsigned char)*c;
    return h;
}

static void test_read_across_ranks(const char *path, const th_phantom_opts *o)
{
    th_dataset ds;
    th_err err;
    int ok = th_dataset_open(&ds, path, MPI_COMM_WORLD, &err) == 0;
    if (!CHECK(ok)) {
        fprintf(stderr, "rank %d: %s\n", rank, err.msg);
        return;
    }
    CHECK(ds.n == th_phantom_count(o) && ds.h == o->size && ds.w == o->size && ds.n_labels == TH_PHANTOM_N_LABELS);

    /* Same index everywhere. */
    unsigned long h[2] = {hash_strings(ds.patient_id, ds.n), hash_strings(ds.image_name, ds.n)}, h0[2];
    memcpy(h0, h, sizeof h);
    MPI_Bcast(h0, 2, MPI_UNSIGNED_LONG, 0, MPI_COMM_WORLD);
    CHECK(h0[0] == h[0] && h0[1] == h[1]);

    /* This rank's rows: every n_ranks-th, from the end backwards. */
    int count = 0, *idx = malloc((size_t)ds.n * sizeof(int));
    for (int i = ds.n - 1; i >= 0; i--)
        if (i % n_ranks == rank) idx[count++] = i;
    size_t npix = (size_t)ds.h * ds.w;
    uint8_t *got = malloc((size_t)count * npix), *want = malloc(npix), lab[TH_PHANTOM_N_LABELS];
    CHECK(th_dataset_read_images(&ds, idx, count, got, &err) == 0);
    int same = 1, labels_same = 1;
    for (int k = 0; k < count; k++) {
        int p = -1, s = -1;
        sscanf(ds.image_name[idx[k]], "P%d_%d.png", &p, &s);
        th_phantom_render(o, p, s, want, lab, NULL);
        same &= memcmp(got + (size_t)k * npix, want, npix) == 0;
        labels_same &= memcmp(ds.labels + (size_t)idx[k] * ds.n_labels, lab, TH_PHANTOM_N_LABELS) == 0;
    }
    CHECK(count > 0 && same && labels_same);
    free(want);
    free(got);
    free(idx);
    th_dataset_close(&ds);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);

    char dir[256] = "/tmp/thorax_test_mpi_XXXXXX";
    int made = 1;
    if (rank == 0) made = mkdtemp(dir) != NULL;
    MPI_Bcast(&made, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Bcast(dir, (int)sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (!CHECK(made)) MPI_Abort(MPI_COMM_WORLD, 1);

    th_phantom_opts o;
    th_phantom_defaults(&o);
    o.size = 32;
    o.patients = 24;
    o.prevalence = 0.3f;
    o.seed = 7;
    char path[512], bad[512];
    snprintf(path, sizeof path, "%s/phantom.h5", dir);
    int written = 1;
    if (rank == 0) {
        th_err err;
        written = th_phantom_write(&o, path, NULL, NULL, &err) == 0;
        if (!written) fprintf(stderr, "%s\n", err.msg);
    }
    MPI_Bcast(&written, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    if (CHECK(written)) test_read_across_ranks(path, &o);

    snprintf(bad, sizeof bad, "%s/garbage.h5", dir);
    if (rank == 0) {
        char junk[4096];
        for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 7919 % 251);
        write_bytes(bad, junk, sizeof junk);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    check_fails_everywhere(bad, "not an HDF5 file");

    /* The signature passes the first check; the rest is junk. */
    snprintf(bad, sizeof bad, "%s/fake_signature.h5", dir);
    if (rank == 0) {
        char junk[4096];
        for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 31 % 253);
        memcpy(junk, "\211HDF\r\n\032\n", 8);
        write_bytes(bad, junk, sizeof junk);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    check_fails_everywhere(bad, NULL);

    snprintf(bad, sizeof bad, "%s/truncated.h5", dir);
    if (rank == 0) write_truncated_copy(path, bad);
    MPI_Barrier(MPI_COMM_WORLD);
    check_fails_everywhere(bad, NULL);

    snprintf(bad, sizeof bad, "%s/no_labels.h5", dir);
    if (rank == 0) write_images_only(bad);
    MPI_Barrier(MPI_COMM_WORLD);
    check_fails_everywhere(bad, "/labels");

    snprintf(bad, sizeof bad, "%s/missing.h5", dir);
    check_fails_everywhere(bad, "No such file");

    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }

    /* One summary for the job, counting every rank's checks. */
    int mine[2] = {th_test_passed, th_test_failed}, all[2];
    MPI_Allreduce(mine, all, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int rc = all[1] ? 1 : 0;
    if (rank == 0) {
        th_test_passed = all[0];
        th_test_failed = all[1];
        char name[64];
        snprintf(name, sizeof name, "test_dataset_mpi (%d ranks)", n_ranks);
        rc = th_test_summary(name);
    }
    MPI_Finalize();
    return rc;
}

/* test_checkpoint.c - checkpoint checksums and failed writes: a flipped byte in
 * a tensor, a changed attribute, a file without checksums, truncated files,
 * and a write that runs out of room must all fail naming the file, and a
 * failed write must leave the previous checkpoint intact. (Round trips are in
 * test_model.c.) */
#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "thorax/train.h"
#include "thorax/nn.h"

enum { L = 2 };

static th_model_spec small_spec(void)
{
    th_model_spec s = {.c = 1, .h = 8, .w = 8};
    th_layer_spec conv = {.type = TH_LAYER_CONV, .out = 4, .k = 3, .stride = 1, .pad = 1, .bias = 1};
    th_layer_spec bn = {.type = TH_LAYER_BATCHNORM, .momentum = 0.1f, .eps = 1e-5f};
    th_layer_spec relu = {.type = TH_LAYER_RELU}, gap = {.type = TH_LAYER_GAP};
    th_layer_spec dense = {.type = TH_LAYER_DENSE, .out = TH_OUT_LABELS, .bias = 1};
    s.layers[s.n_layers++] = conv;
    s.layers[s.n_layers++] = bn;
    s.layers[s.n_layers++] = relu;
    s.layers[s.n_layers++] = gap;
    s.layers[s.n_layers++] = dense;
    return s;
}

typedef struct fixture {
    char dir[64], path[128];
    th_model m;
    th_optim o;
    th_train_state st;
} fixture;

static void save_good(fixture *fx)
{
    th_err err;
    CHECK(th_checkpoint_save(fx->path, &fx->m, &fx->o, &fx->st, "name: ckpt\n", &err) == 0);
}

static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    int rc = a && b ? 0 : -1;
    char buf[8192];
    size_t n;
    while (!rc && (n = fread(buf, 1, sizeof buf, a)) > 0) rc = fwrite(buf, 1, n, b) == n ? 0 : -1;
    if (a) fclose(a);
    if (b && fclose(b)) rc = -1;
    return rc;
}

/* Loading path must fail with a message holding every one of words[]. */
static void expect_load_fails(fixture *fx, const char *path, const char *const *words)
{
    th_err err = {""};
    th_model m;
    th_model_spec spec = small_spec();
    th_model_create(&m, &spec, L, 1, &err);
    th_train_state st = {0};
    CHECK(th_checkpoint_load(path, &m, NULL, &st, &err) == -1);
    for (const char *const *w = words; *w; w++)
        if (!CHECK(strstr(err.msg, *w) != NULL)) fprintf(stderr, "  message: %s\n  lacks: %s\n", err.msg, *w);
    err.msg[0] = 0;
    CHECK(th_checkpoint_verify(path, &err) == -1);
    CHECK(strstr(err.msg, path) != NULL);
    char *yaml = th_checkpoint_read_config(path, &err);
    CHECK(yaml == NULL);
    free(yaml);
    th_model_free(&m);
    (void)fx;
}

/* One byte of a tensor's stored data flipped on disk: found through the
 * dataset's file offset (contiguous layout, as the checkpoint writes it). */
static void test_flipped_byte(fixture *fx)
{
    char bad[160];
    snprintf(bad, sizeof bad, "%s/flipped.h5", fx->dir);
    CHECK(copy_file(fx->path, bad) == 0);
    hid_t f = H5Fopen(bad, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "/params/conv1.weight", H5P_DEFAULT);
    hid_t dcpl = H5Dget_create_plist(ds);
    CHECK(H5Pget_layout(dcpl) == H5D_CONTIGUOUS);
    haddr_t off = H5Dget_offset(ds);
    CHECK(off != HADDR_UNDEF);
    H5Pclose(dcpl);
    H5Dclose(ds);
    H5Fclose(f);
    int fd = open(bad, O_RDWR);
    unsigned char byte = 0;
    CHECK(fd >= 0 && pread(fd, &byte, 1, (off_t)off + 5) == 1);
    byte ^= 0x10;
    CHECK(pwrite(fd, &byte, 1, (off_t)off + 5) == 1);
    close(fd);
    const char *words[] = {bad, "corrupt", "/params/conv1.weight", NULL};
    expect_load_fails(fx, bad, words);
    unlink(bad);
}

/* An attribute changed after the fact (the epoch): the root CRC catches it. */
static void test_changed_attribute(fixture *fx)
{
    char bad[160];
    snprintf(bad, sizeof bad, "%s/attr.h5", fx->dir);
    CHECK(copy_file(fx->path, bad) == 0);
    hid_t f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t a = H5Aopen(f, "epoch", H5P_DEFAULT);
    int epoch = 99;
    CHECK(H5Awrite(a, H5T_NATIVE_INT, &epoch) >= 0);
    H5Aclose(a);
    H5Fclose(f);
    const char *words[] = {bad, "corrupt", "checksum", NULL};
    expect_load_fails(fx, bad, words);
    unlink(bad);
}

/* A checkpoint from before checksums (the root CRC removed) is refused. */
static void test_no_checksum(fixture *fx)
{
    char old[160];
    snprintf(old, sizeof old, "%s/old.h5", fx->dir);
    CHECK(copy_file(fx->path, old) == 0);
    hid_t f = H5Fopen(old, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(H5Adelete(f, "crc32") >= 0);
    H5Fclose(f);
    const char *words[] = {old, "no checksum", NULL};
    expect_load_fails(fx, old, words);
    unlink(old);
}

/* Truncated anywhere (inside the superblock, inside a tensor's data, by one
 * byte): an error naming the file, never a crash or a partial load. */
static void test_truncated(fixture *fx)
{
    struct stat sb;
    CHECK(stat(fx->path, &sb) == 0);
    hid_t f = H5Fopen(fx->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "/params/fc.weight", H5P_DEFAULT);
    off_t in_data = (off_t)H5Dget_offset(ds) + 3;
    H5Dclose(ds);
    H5Fclose(f);
    off_t sizes[] = {0, 100, 1000, in_data, sb.st_size / 2, sb.st_size - 1};
    char cut[160];
    snprintf(cut, sizeof cut, "%s/cut.h5", fx->dir);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        CHECK(copy_file(fx->path, cut) == 0);
        CHECK(truncate(cut, sizes[k]) == 0);
        const char *words[] = {cut, NULL};
        expect_load_fails(fx, cut, words);
    }
    unlink(cut);
}

/* A write that runs out of room (RLIMIT_FSIZE: EFBIG, as a full disk gives
 * ENOSPC, without needing one) fails naming the file and the OS's reason,
 * removes its temporary file, and leaves the previous checkpoint loadable. */
static void test_failed_write(fixture *fx)
{
    struct rlimit old;
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    struct rlimit small = {.rlim_cur = 4096, .rlim_max = old.rlim_max};
    signal(SIGXFSZ, SIG_IGN); /* else the kernel kills us instead of failing the write */
    CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
    th_train_state later = fx->st;
    later.epoch = fx->st.epoch + 1;
    th_err err = {""};
    int rc = th_checkpoint_save(fx->path, &fx->m, &fx->o, &later, "name: ckpt\n", &err);
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
    signal(SIGXFSZ, SIG_DFL);
    CHECK(rc == -1);
    if (!CHECK(strstr(err.msg, fx->path) != NULL && strstr(err.msg, "File too large") != NULL))
        fprintf(stderr, "  message: %s\n", err.msg);
    char tmp[160];
    th_tmp_path(fx->path, tmp, sizeof tmp, NULL);
    CHECK(access(tmp, F_OK) != 0);
    th_train_state st = {0};
    th_model m;
    th_model_spec spec = small_spec();
    th_model_create(&m, &spec, L, 1, &err);
    CHECK(th_checkpoint_load(fx->path, &m, NULL, &st, &err) == 0);
    CHECK(st.epoch == fx->st.epoch);
    th_model_free(&m);
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    fixture fx;
    memset(&fx, 0, sizeof fx);
    snprintf(fx.dir, sizeof fx.dir, "/tmp/thorax-test-ckpt-XXXXXX");
    if (!mkdtemp(fx.dir)) return 1;
    snprintf(fx.path, sizeof fx.path, "%s/last.h5", fx.dir);
    th_err err;
    th_model_spec spec = small_spec();
    CHECK(th_model_create(&fx.m, &spec, L, 1, &err) == 0);
    th_model_init_params(&fx.m, 3);
    th_optim_config oc = {.type = TH_OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    CHECK(th_optim_init(&fx.o, &oc, fx.m.n_params, &err) == 0);
    fx.st = (th_train_state){.epoch = 2, .step = 10, .lr = 0.01f, .best_score = 0.7, .norm_std = 1};
    save_good(&fx);
    CHECK(th_checkpoint_verify(fx.path, &err) == 0);

    test_flipped_byte(&fx);
    test_changed_attribute(&fx);
    test_no_checksum(&fx);
    test_truncated(&fx);
    test_failed_write(&fx);

    unlink(fx.path);
    rmdir(fx.dir);
    th_optim_free(&fx.o);
    th_model_free(&fx.m);
    return th_test_summary("test_checkpoint");
}

/* ckpt_verify.c - checks a checkpoint's checksums and prints where it stands.
 *
 *   ckpt_verify CKPT.h5
 * Prints `epoch E step S` and exits 0 when th_checkpoint_verify accepts the
 * file; prints its error and exits 1 otherwise. Used by the kill and
 * disk-full integration tests.
 */
#include <hdf5.h>
#include <stdio.h>

#include "thorax/train.h"

static long long root_attr(hid_t f, const char *name)
{
    long long v = -1;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a >= 0) {
        H5Aread(a, H5T_NATIVE_LLONG, &v);
        H5Aclose(a);
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: ckpt_verify CKPT.h5\n");
        return 2;
    }
    th_err err;
    if (th_checkpoint_verify(argv[1], &err)) {
        fprintf(stderr, "ckpt_verify: %s\n", err.msg);
        return 1;
    }
    hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
    printf("epoch %lld step %lld\n", root_attr(f, "epoch"), root_attr(f, "step"));
    H5Fclose(f);
    return 0;
}

/* h5_relabel.c - renames the label columns of a dataset file in place, for
 * tests that need a file no Thorax writer makes (two columns of one name).
 *
 *   h5_relabel F.h5 A,B,C,D      the new names, one per /labels column
 *
 * Rewrites attribute `names` of /labels as variable-length UTF-8 strings,
 * as the writer does, with serial HDF5 and nothing of Thorax's checks.
 */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: h5_relabel F.h5 NAME,NAME,...\n");
        return 2;
    }
    char *list = strdup(argv[2]);
    const char *names[256];
    int n = 0;
    for (char *tok = strtok(list, ","); tok && n < 256; tok = strtok(NULL, ",")) names[n++] = tok;
    hid_t f = H5Fopen(argv[1], H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = f < 0 ? -1 : H5Dopen2(f, "labels", H5P_DEFAULT);
    if (d < 0) {
        fprintf(stderr, "h5_relabel: %s: cannot open /labels\n", argv[1]);
        return 1;
    }
    hid_t sp = H5Dget_space(d);
    hsize_t dims[2];
    if (H5Sget_simple_extent_ndims(sp) != 2 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0 || dims[1] != (hsize_t)n) {
        fprintf(stderr, "h5_relabel: %s: /labels does not have %d columns\n", argv[1], n);
        return 1;
    }
    H5Sclose(sp);
    if (H5Aexists(d, "names") > 0) H5Adelete(d, "names");
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hsize_t count = (hsize_t)n;
    hid_t as = H5Screate_simple(1, &count, NULL);
    hid_t a = H5Acreate2(d, "names", t, as, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a < 0 || H5Awrite(a, t, names) < 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(as);
    H5Tclose(t);
    H5Dclose(d);
    if (H5Fclose(f) < 0) rc = 1;
    free(list);
    if (rc) fprintf(stderr, "h5_relabel: %s: cannot write the names\n", argv[1]);
    return rc;
}

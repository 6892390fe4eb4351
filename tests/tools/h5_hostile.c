/* h5_hostile.c - HDF5 files that point outside themselves, and checkpoints
 * whose type headers are damaged, for the bad-input corpus and the openat
 * test (Thorax must refuse them; see th_h5_open in thorax/data.h).
 *
 *   h5_hostile external SRC OUT TARGET   OUT is SRC with /images kept in TARGET's bytes
 *                                        (HDF5 external storage, from offset 0)
 *   h5_hostile elink SRC OUT TARGET [NAME]
 *                                        OUT is SRC with /NAME (default images) an
 *                                        external link to TARGET:/NAME (NAME params:
 *                                        a checkpoint whose tensors are elsewhere)
 *   h5_hostile virtual SRC OUT TARGET    OUT is SRC with /images a virtual dataset
 *                                        mapping all of TARGET:/images
 *   h5_hostile flip FILE OBJECT [ATTR]   flips the byte-order bit of the IEEE f32 LE
 *                                        type message of dataset OBJECT (or of its
 *                                        attribute ATTR) in place
 *
 * OUT keeps every other root link of SRC (copied with H5Ocopy), so it is a valid
 * dataset file in all but where its images come from. Exits 0, or 1 saying
 * why on stderr.
 */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int die(const char *what)
{
    fprintf(stderr, "h5_hostile: %s\n", what);
    return 1;
}

typedef struct copy_ctx {
    hid_t dst;
    const char *skip;
    int failed;
} copy_ctx;

static herr_t copy_link(hid_t src, const char *name, const H5L_info_t *info, void *ctx)
{
    (void)info;
    copy_ctx *c = ctx;
    if (!strcmp(name, c->skip)) return 0;
    if (H5Ocopy(src, name, c->dst, name, H5P_DEFAULT, H5P_DEFAULT) < 0) c->failed = 1;
    return 0;
}

/* OUT with every root link of SRC but /skip; the shape and type of SRC's
 * /images into dims [3] and *type. */
static hid_t copy_all_but(const char *src_path, const char *out_path, const char *skip, hsize_t *dims, hid_t *type)
{
    hid_t src = H5Fopen(src_path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (src < 0) return -1;
    hid_t images = H5Lexists(src, "images", H5P_DEFAULT) > 0 ? H5Dopen2(src, "images", H5P_DEFAULT) : -1;
    hid_t space = images < 0 ? -1 : H5Dget_space(images);
    int ok = space >= 0 && H5Sget_simple_extent_ndims(space) == 3 && H5Sget_simple_extent_dims(space, dims, NULL) == 3;
    *type = ok ? H5Dget_type(images) : H5Tcopy(H5T_NATIVE_UINT8);
    ok = ok || strcmp(skip, "images");
    if (space >= 0) H5Sclose(space);
    if (images >= 0) H5Dclose(images);
    hid_t out = ok ? H5Fcreate(out_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT) : -1;
    copy_ctx c = {out, skip, 0};
    hsize_t idx = 0;
    if (out >= 0 && (H5Literate(src, H5_INDEX_NAME, H5_ITER_INC, &idx, copy_link, &c) < 0 || c.failed)) {
        H5Fclose(out);
        out = -1;
    }
    H5Fclose(src);
    return out;
}

static int make_pointer(const char *kind, const char *src, const char *out_path, const char *target, const char *name)
{
    hsize_t dims[3];
    hid_t type;
    hid_t out = copy_all_but(src, out_path, name, dims, &type);
    if (out < 0) return die("cannot copy the source file");
    herr_t rc = 0;
    if (!strcmp(kind, "elink")) {
        char object[256];
        snprintf(object, sizeof object, "/%s", name);
        rc = H5Lcreate_external(target, object, out, name, H5P_DEFAULT, H5P_DEFAULT);
    } else {
        hid_t space = H5Screate_simple(3, dims, NULL);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        if (!strcmp(kind, "external")) {
            rc = H5Pset_external(dcpl, target, 0, H5F_UNLIMITED);
        } else {
            hid_t src_space = H5Screate_simple(3, dims, NULL);
            rc = H5Pset_virtual(dcpl, space, target, "/images", src_space);
            H5Sclose(src_space);
        }
        hid_t d = rc < 0 ? -1 : H5Dcreate2(out, "images", type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        if (d < 0) rc = -1;
        else H5Dclose(d);
        H5Pclose(dcpl);
        H5Sclose(space);
    }
    H5Tclose(type);
    if (H5Fclose(out) < 0) rc = -1;
    return rc < 0 ? die("cannot make the object point outside the file") : 0;
}

/* The IEEE f32 LE type message after its version-and-class byte: class bits
 * (little-endian, mantissa normalised, sign at bit 31), size 4, bit offset 0,
 * precision 32, exponent at 23 of 8 bits, mantissa at 0 of 23 bits, bias 127. */
static const unsigned char F32LE[] = {0x20, 0x1f, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20,
                                      0x00, 0x17, 0x08, 0x00, 0x17, 0x7f, 0x00, 0x00, 0x00};

static long find(const unsigned char *buf, long n, long from, const void *pat, size_t len)
{
    for (long i = from; i + (long)len <= n; i++)
        if (!memcmp(buf + i, pat, len)) return i;
    return -1;
}

static int flip(const char *path, const char *object, const char *attr)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t obj = f < 0 ? -1 : H5Oopen(f, object, H5P_DEFAULT);
    H5O_info_t info;
    int ok = obj >= 0 && H5Oget_info(obj, &info) >= 0;
    if (obj >= 0) H5Oclose(obj);
    if (f >= 0) H5Fclose(f);
    if (!ok) return die("cannot find the object");
    FILE *fp = fopen(path, "r+b");
    if (!fp) return die("cannot open the file for writing");
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    unsigned char *buf = malloc((size_t)n);
    rewind(fp);
    if (!buf || fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        fclose(fp);
        return die("cannot read the file");
    }
    /* The type message follows the object header's start (a dataset's) or
     * the attribute's name (an attribute message: name, type, space, data). */
    long at = (long)info.addr;
    if (attr) at = find(buf, n, at, attr, strlen(attr) + 1);
    long pos = at < 0 ? -1 : find(buf, n, at, F32LE, sizeof F32LE);
    int rc = 0;
    if (pos < 1 || (buf[pos - 1] & 0x0f) != 1) {
        rc = die("no IEEE f32 LE type message found there");
    } else {
        buf[pos] ^= 0x01; /* byte order: little-endian -> big-endian */
        if (fseek(fp, pos, SEEK_SET) || fputc(buf[pos], fp) == EOF) rc = die("cannot write the file");
    }
    free(buf);
    if (fclose(fp)) rc = die("cannot close the file");
    return rc;
}

int main(int argc, char **argv)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (argc == 5 && (!strcmp(argv[1], "external") || !strcmp(argv[1], "elink") || !strcmp(argv[1], "virtual")))
        return make_pointer(argv[1], argv[2], argv[3], argv[4], "images");
    if (argc == 6 && !strcmp(argv[1], "elink")) return make_pointer(argv[1], argv[2], argv[3], argv[4], argv[5]);
    if ((argc == 4 || argc == 5) && !strcmp(argv[1], "flip")) return flip(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
    fprintf(stderr, "usage: h5_hostile external|virtual SRC OUT TARGET\n"
                    "       h5_hostile elink SRC OUT TARGET [NAME]\n"
                    "       h5_hostile flip FILE OBJECT [ATTR]\n");
    return 2;
}

/* fuzz_dataset.c - libFuzzer target: opening a malformed dataset file.
 *
 * Fuzzing an HDF5 file's raw bytes mostly finds libhdf5's own bugs, in its
 * superblock and B-tree parsing, not ours. So the input is read as a list of
 * choices, and a small generator writes a well-formed HDF5 file whose
 * *content* is wrong in the ways th_dataset_open must catch: a dataset
 * missing, a group or dangling link in its place, the wrong element type,
 * rank or row count, zero or huge dimensions (declared with unwritten
 * chunks, so that they cost nothing in the file), scalar and null dataspaces,
 * out-of-range values, odd strings, and the label names attribute missing,
 * miscounted, mistyped or too wide. Choice 0 is always the well-formed one,
 * so an empty input makes a valid tiny file.
 *
 * An input that starts with the HDF5 signature is written as it is instead
 * (the raw mode, for real files), unless THORAX_FUZZ_RAW_HDF5=0: tools/
 * fuzz.sh turns it off by default, because mutated raw files soon crash
 * inside libhdf5 (a memcpy overlap in H5HG_read on a damaged global heap,
 * HDF5 1.10.8), which no check of ours can prevent.
 *
 * th_dataset_open may refuse the file, with a message; when it accepts it,
 * the index must obey the limits of thorax/data.h, and every image (and the
 * masks) must be readable through both handles. MPI runs as a singleton;
 * the dataset is opened on MPI_COMM_SELF.
 */
#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "thorax/data.h"

typedef struct {
    const uint8_t *p;
    size_t n, i;
} choices;

/* One of n choices; 0 (the well-formed one) once the input is used up. */
static unsigned pick(choices *c, unsigned n) { return c->i < c->n ? c->p[c->i++] % n : 0; }

typedef enum {
    F_NONE, F_MISSING, F_GROUP, F_DANGLING, F_TYPE, F_RANK_LESS, F_RANK_MORE, F_ROWS, F_ZERO, F_HUGE, F_SCALAR,
    F_NULL, F_VALUES, F_FIXED_STR, F_COUNT
} fault;

/* Faults are rare next to F_NONE, so that most files are wrong in one place. */
static fault pick_fault(choices *c)
{
    unsigned k = pick(c, 3 * F_COUNT);
    return k < F_COUNT ? (fault)k : F_NONE;
}

/* Sizes that are over one limit or another of thorax/data.h. */
static hsize_t huge(choices *c)
{
    static const hsize_t sizes[] = {TH_DATASET_MAX_IMAGES + 1, TH_IMAGE_MAX_SIDE + 1, TH_DATASET_MAX_LABELS + 1,
                                    (hsize_t)1 << 31, (hsize_t)1 << 40, 65536};
    return sizes[pick(c, sizeof sizes / sizeof sizes[0])];
}

static hid_t wrong_type(choices *c)
{
    switch (pick(c, 7)) {
    case 0: return H5Tcopy(H5T_STD_I8LE);
    case 1: return H5Tcopy(H5T_STD_U16LE);
    case 2: return H5Tcopy(H5T_STD_I64BE);
    case 3: return H5Tcopy(H5T_IEEE_F32LE);
    case 4: return H5Tcopy(H5T_STD_U8BE);
    case 5: return H5Tcopy(H5T_STD_I32LE);
    default: return H5Tcopy(H5T_C_S1);
    }
}

static hid_t string_type(size_t width)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, width ? width : H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

/* String i of a column: "<prefix><i>", or with F_VALUES bytes of the input
 * (empty, duplicated, unterminated, not UTF-8: whatever they are). */
static void make_string(choices *c, fault f, const char *prefix, int i, char *buf, size_t cap)
{
    if (f != F_VALUES) {
        snprintf(buf, cap, "%s%d", prefix, i);
        return;
    }
    size_t len = pick(c, 12);
    for (size_t k = 0; k < len && k + 1 < cap; k++) buf[k] = (char)(pick(c, 255) + 1);
    buf[len < cap ? len : cap - 1] = '\0';
}

#define MAX_WRITTEN 4096  /* elements; bigger datasets are left unwritten (fill value) */

/* Writes dataset `name` of dims[0..rank) in the file, as told or with fault
 * f: `strings` for a string column (prefix names its values), otherwise
 * integers from value(). */
static void put_dataset(hid_t f_id, const char *name, int rank, const hsize_t *want, int strings, const char *prefix,
                        fault f, choices *c, int value_range)
{
    hsize_t dims[5];
    memcpy(dims, want, sizeof *dims * (size_t)rank);
    switch (f) {
    case F_MISSING: return;
    case F_GROUP: H5Gclose(H5Gcreate2(f_id, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)); return;
    case F_DANGLING: H5Lcreate_soft("/nowhere", f_id, name, H5P_DEFAULT, H5P_DEFAULT); return;
    case F_RANK_LESS: rank = rank > 1 ? rank - 1 : 1; break;
    case F_RANK_MORE: dims[rank++] = 1 + pick(c, 3); break;
    case F_ROWS: dims[0] = dims[0] + 1 - 2 * (dims[0] > 1 && pick(c, 2)); break;
    case F_ZERO: dims[pick(c, (unsigned)rank)] = 0; break;
    case F_HUGE: dims[pick(c, (unsigned)rank)] = huge(c); break;
    default: break;
    }
    hid_t space = f == F_SCALAR ? H5Screate(H5S_SCALAR) : f == F_NULL ? H5Screate(H5S_NULL)
                                                                    : H5Screate_simple(rank, dims, NULL);
    size_t fixed = 0;
    if (f == F_FIXED_STR) {
        static const size_t widths[] = {8, 64, TH_DATASET_MAX_STRING + 1, 1 << 20};
        fixed = widths[pick(c, 4)];
    }
    hid_t type = f == F_TYPE ? wrong_type(c) : strings || f == F_FIXED_STR ? string_type(fixed)
                                                                          : H5Tcopy(H5T_STD_U8LE);
    /* Chunks of one element: any declared size, however huge, costs nothing. */
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t elems = 1, chunk[5];
    int simple = f != F_SCALAR && f != F_NULL, zero = 0;
    for (int k = 0; simple && k < rank; k++) {
        elems *= dims[k];
        zero |= dims[k] == 0;
        chunk[k] = 1;
    }
    if (simple && !zero && (f == F_HUGE || pick(c, 2))) H5Pset_chunk(dcpl, rank, chunk);
    hid_t d = H5Dcreate2(f_id, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d >= 0 && simple && elems <= MAX_WRITTEN && elems > 0) {
        if (H5Tget_class(type) == H5T_STRING) {
            char (*text)[16] = calloc(elems, sizeof *text);
            const char **ptrs = calloc(elems, sizeof *ptrs);
            for (hsize_t i = 0; text && ptrs && i < elems; i++) {
                make_string(c, f, prefix, (int)i, text[i], sizeof text[i]);
                ptrs[i] = text[i];
            }
            hid_t mem = string_type(0);
            if (text && ptrs && !fixed) H5Dwrite(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs);
            H5Tclose(mem);
            free(text);
            free(ptrs);
        } else {
            long long *v = calloc(elems, sizeof *v);
            for (hsize_t i = 0; v && f == F_VALUES && i < elems; i++) v[i] = (long long)pick(c, 260) - 2;
            for (hsize_t i = 0; v && f != F_VALUES && value_range > 1 && i < elems; i++)
                v[i] = pick(c, (unsigned)value_range);
            if (v) H5Dwrite(d, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
            free(v);
        }
    }
    if (d >= 0) H5Dclose(d);
    H5Pclose(dcpl);
    H5Tclose(type);
    H5Sclose(space);
}

/* The `names` attribute of /labels: L names, or wrong in one way. */
static void put_names(hid_t f_id, int n_labels, choices *c)
{
    hid_t labels = H5Dopen2(f_id, "labels", H5P_DEFAULT);
    if (labels < 0) return;
    unsigned how = pick(c, 24);  /* 0 and 8..23: as it should be */
    hsize_t count = (hsize_t)n_labels + (how == 2);
    size_t width = how == 4 ? 8 : how == 5 ? TH_DATASET_MAX_STRING + 1 : 0;
    hid_t type = how == 3 ? H5Tcopy(H5T_STD_I32LE) : string_type(width);
    hid_t space = how == 6 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &count, NULL);
    if (how != 1) {
        hid_t a = H5Acreate2(labels, "names", type, space, H5P_DEFAULT, H5P_DEFAULT);
        char text[TH_DATASET_MAX_LABELS + 2][16];
        const char *ptrs[TH_DATASET_MAX_LABELS + 2];
        for (hsize_t k = 0; k < count && k < TH_DATASET_MAX_LABELS + 2; k++) {
            make_string(c, how == 7 ? F_VALUES : F_NONE, "L", (int)k, text[k], sizeof text[k]);
            ptrs[k] = text[k];
        }
        hid_t mem = string_type(0);
        if (a >= 0 && how != 3 && !width && count <= TH_DATASET_MAX_LABELS + 2) H5Awrite(a, mem, ptrs);
        H5Tclose(mem);
        if (a >= 0) H5Aclose(a);
    }
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(labels);
}

static void generate(const char *path, choices *c)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) abort();
    hsize_t n = 2 + pick(c, 6), h = 4 + pick(c, 5), w = 4 + pick(c, 5), L = 2 + pick(c, 4);
    hsize_t images[3] = {n, h, w}, labels[2] = {n, L}, rows[1] = {n}, masks[4] = {n, L, h, w};
    put_dataset(f, "images", 3, images, 0, NULL, pick_fault(c), c, 256);
    put_dataset(f, "labels", 2, labels, 0, NULL, pick_fault(c), c, 2);
    put_names(f, (int)L, c);
    put_dataset(f, "patient_id", 1, rows, 1, "P", pick_fault(c), c, 0);
    put_dataset(f, "image_name", 1, rows, 1, "img", pick_fault(c), c, 0);
    if (pick(c, 2)) put_dataset(f, "split", 1, rows, 0, NULL, pick_fault(c), c, 3);
    if (pick(c, 2)) put_dataset(f, "masks", 4, masks, 0, NULL, pick_fault(c), c, 2);
    H5Fclose(f);
}

static void check(int ok, const char *what)
{
    if (ok) return;
    fprintf(stderr, "th_dataset_open accepted a file that breaks its promise: %s\n", what);
    abort();
}

/* Reading: the generator's files are whole, so their reads must succeed;
 * a raw file's chunks may be damaged (corrupt compressed data only shows
 * when it is read), and then the read must fail with a message. */
static void check_read(int rc, const th_err *err, int raw, const char *what)
{
    check(raw ? rc == 0 || err->msg[0] : rc == 0, what);
}

/* What an accepted file must give. */
static void use(th_dataset *ds, int raw)
{
    check(ds->n >= 1 && ds->n <= TH_DATASET_MAX_IMAGES, "1 to TH_DATASET_MAX_IMAGES images");
    check(ds->h >= 1 && ds->w >= 1 && ds->h <= TH_IMAGE_MAX_SIDE && ds->w <= TH_IMAGE_MAX_SIDE, "a sane image size");
    check(ds->n_labels >= 1 && ds->n_labels <= TH_DATASET_MAX_LABELS, "1 to TH_DATASET_MAX_LABELS labels");
    for (int k = 0; k < ds->n_labels; k++) check(th_dataset_label_index(ds, ds->label_names[k]) <= k, "label names");
    for (int i = 0; i < ds->n; i++) {
        check(ds->patient_id[i][0] && ds->image_name[i][0], "no empty patient ID or image name");
        check(strlen(ds->patient_id[i]) <= TH_DATASET_MAX_STRING, "patient IDs within the limit");
        for (int k = 0; k < ds->n_labels; k++) check(ds->labels[(size_t)i * ds->n_labels + k] <= 1, "0/1 labels");
    }
    size_t img = (size_t)ds->h * (size_t)ds->w;
    int idx[2] = {ds->n - 1, 0};
    uint8_t *px = malloc(2 * img);
    th_err err = {{0}};
    if (!px) return;
    check_read(th_dataset_read_images(ds, idx, 2, px, &err), &err, raw, "its images are readable");
    th_image_reader r;
    if (th_image_reader_open(&r, ds, &err) == 0) {
        check_read(th_image_reader_read(&r, idx, 2, px, &err), &err, raw, "its images stream");
        th_image_reader_close(&r);
    }
    free(px);
    if (ds->has_masks) {
        uint8_t *m = malloc(img * (size_t)ds->n_labels);
        if (m) check_read(th_dataset_read_masks(ds, ds->n - 1, m, &err), &err, raw, "its masks are readable");
        free(m);
    }
}

static void finalize(void) { MPI_Finalize(); }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* Open MPI's handlers of SIGABRT and SIGSEGV would print and exit first,
     * and libFuzzer leaves an existing handler alone: no crash input saved. */
    setenv("OMPI_MCA_opal_signal", "", 1);
    MPI_Init(NULL, NULL);
    atexit(finalize);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/thorax-fuzz-dataset-%d.h5", (int)getpid());
    const char *raw_mode = getenv("THORAX_FUZZ_RAW_HDF5");
    int raw = (!raw_mode || strcmp(raw_mode, "0")) && size >= 8 && !memcmp(data, "\x89HDF\r\n\x1a\n", 8);
    if (raw) {
        FILE *f = fopen(path, "wb");
        if (!f) abort();
        fwrite(data, 1, size, f);
        fclose(f);
    } else {
        choices c = {data, size, 0};
        generate(path, &c);
    }
    th_dataset ds;
    th_err err;
    int rc = th_dataset_open(&ds, path, MPI_COMM_SELF, &err);
    /* To see what a seed makes of the file: THORAX_FUZZ_VERBOSE=1 fuzz_replay_dataset SEED. */
    if (getenv("THORAX_FUZZ_VERBOSE")) fprintf(stderr, "  %s\n", rc ? err.msg : "accepted");
    if (rc == 0) {
        use(&ds, raw);
        th_dataset_close(&ds);
    } else {
        check(err.msg[0] != '\0', "a refusal has a message");
    }
    unlink(path);
    return 0;
}

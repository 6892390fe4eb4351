/* test_ingest.c - CSV and images into a dataset file (thorax/data.h).
 *
 * Patient IDs from NIH and Kermany file names, and no guess for others. Then
 * small ingests in a temporary folder, read back with serial HDF5: the three
 * layouts give the labels, patients and split the CSV says (NIH findings
 * mapped onto the 14 columns, NIH patient numbers padded to the name
 * prefix); pixels at their own size come back bit for bit, non-square
 * images included; a label list picks and orders columns; images of mixed
 * sizes need a size; a failed run leaves no file behind.
 */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "thorax/data.h"
#include "thorax/render.h"

static char dir[] = "/tmp/thorax-ingest-XXXXXX";

static const char *path_of(const char *name)
{
    static char path[8][4096];
    static int k;
    k = (k + 1) % 8;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k];
}

static int exists(const char *name)
{
    struct stat st;
    return stat(path_of(name), &st) == 0;
}

/* Whether this process's temporary file of name (th_tmp_path) exists. */
static int tmp_exists(const char *name)
{
    char tmp[1024];
    th_tmp_path(name, tmp, sizeof tmp, NULL);
    return exists(tmp);
}

static void write_text(const char *name, const char *text)
{
    FILE *f = fopen(path_of(name), "w");
    CHECK(f && fputs(text, f) >= 0);
    if (f) fclose(f);
}

static void test_patient_names(void)
{
    static const char *const cases[][2] = {
        {"00000003_001.png", "00000003"},
        {"images/00030805_000.png", "00030805"},
        {"person100_bacteria_475.jpeg", "person100"},
        {"person1_virus_6.png", "person1"},
        {"IM-0115-0001.jpeg", "IM-0115"},
        {"NORMAL2-IM-0095-0001", "NORMAL2-IM-0095"},
        {"train/NORMAL/NORMAL2-IM-1427-0001.png", "NORMAL2-IM-1427"},
        {"IM-0429-0001-0002.png", "IM-0429"},
        {"NORMAL2-IM-0395-0001-0002.png", "NORMAL2-IM-0395"},
        {"person447_virus_921_1.png", "person447"},
        {"IM-0429-0001-.png", NULL},
        {"IM-0429-x.png", NULL},
        {"scan.png", NULL},
        {"person_bacteria_1.png", NULL},
        {"IM-0115.png", NULL},
        {"XIM-0115-0001.png", NULL},
        {"0001_abc.png", NULL},
        {"_001.png", NULL},
        {"train_00000.png", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64] = "";
        int rc = th_ingest_patient_from_name(cases[i][0], out, sizeof out);
        int ok = cases[i][1] ? rc == 0 && !strcmp(out, cases[i][1]) : rc == -1;
        CHECK(ok);
        if (!ok) fprintf(stderr, "  %s -> rc %d '%s', expected %s\n", cases[i][0], rc, out, cases[i][1]);
    }
    char tiny[4];
    CHECK(th_ingest_patient_from_name("00000003_001.png", tiny, sizeof tiny) == -1);
}

/* ------------------------------------------------------------------------
 * Reading the result back.
 */

typedef struct {
    int n, h, w, L;
    uint8_t *images, *labels, *split;
    char **names, **patients, **label_names;
} readback;

static char **read_vl(hid_t obj, int is_attr, int n)
{
    char **s = calloc((size_t)n, sizeof *s);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    herr_t rc = is_attr ? H5Aread(obj, t, s) : H5Dread(obj, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s);
    H5Tclose(t);
    CHECK(rc >= 0);
    return s;
}

static void free_vl(char **s, int n)
{
    for (int i = 0; s && i < n; i++) free(s[i]);
    free(s);
}

static int read_back(const char *name, readback *r)
{
    memset(r, 0, sizeof *r);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path_of(name), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return -1;
    hid_t im = H5Dopen2(f, "images", H5P_DEFAULT), lb = H5Dopen2(f, "labels", H5P_DEFAULT);
    hid_t sp = H5Dget_space(im);
    hsize_t d[3], ld[2];
    H5Sget_simple_extent_dims(sp, d, NULL);
    H5Sclose(sp);
    sp = H5Dget_space(lb);
    H5Sget_simple_extent_dims(sp, ld, NULL);
    H5Sclose(sp);
    r->n = (int)d[0];
    r->h = (int)d[1];
    r->w = (int)d[2];
    r->L = (int)ld[1];
    r->images = malloc(d[0] * d[1] * d[2]);
    r->labels = malloc(ld[0] * ld[1]);
    H5Dread(im, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->images);
    H5Dread(lb, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->labels);
    hid_t a = H5Aopen(lb, "names", H5P_DEFAULT);
    r->label_names = read_vl(a, 1, r->L);
    H5Aclose(a);
    hid_t p = H5Dopen2(f, "patient_id", H5P_DEFAULT), nm = H5Dopen2(f, "image_name", H5P_DEFAULT);
    r->patients = read_vl(p, 0, r->n);
    r->names = read_vl(nm, 0, r->n);
    H5Dclose(p);
    H5Dclose(nm);
    if (H5Lexists(f, "split", H5P_DEFAULT) > 0) {
        hid_t s = H5Dopen2(f, "split", H5P_DEFAULT);
        r->split = malloc((size_t)r->n);
        H5Dread(s, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->split);
        H5Dclose(s);
    }
    H5Dclose(im);
    H5Dclose(lb);
    H5Fclose(f);
    return 0;
}

static void readback_free(readback *r)
{
    free(r->images);
    free(r->labels);
    free(r->split);
    free_vl(r->names, r->n);
    free_vl(r->patients, r->n);
    free_vl(r->label_names, r->L);
}

static th_ingest_opts opts(const char *csv, const char *out)
{
    th_ingest_opts o = {0};
    o.csv_path = path_of(csv);
    o.images_dir = path_of("img");
    o.out_path = path_of(out);
    return o;
}

/* ------------------------------------------------------------------------ */

enum { W = 5, H = 3 };
static uint8_t pixels[4][W * H];

static void write_images(void)
{
    th_err err;
    CHECK(mkdir(path_of("img"), 0777) == 0);
    const char *names[4] = {"img/00000003_000.png", "img/00000003_001.png", "img/00000012_000.png",
                            "img/person7_virus_2.png"};
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < W * H; i++) pixels[k][i] = (uint8_t)(k * 60 + i * 3);
        CHECK(th_png_write_gray(path_of(names[k]), pixels[k], H, W, &err) == 0);
    }
    uint8_t big[8 * 8] = {0};
    CHECK(th_png_write_gray(path_of("img/big.png"), big, 8, 8, &err) == 0);
}

static void test_common(void)
{
    write_text("common.csv", "image,patient_id,Effusion,Nodule,split\n"
                             "00000003_000.png,P3,1,0,train\n"
                             "00000003_001.png,P3,1,1,val\n"
                             "00000012_000.png,P12,0,0,test\n");
    th_ingest_opts o = opts("common.csv", "common.h5");
    th_ingest_summary s;
    th_err err;
    int rc = th_ingest_run(&o, &s, NULL, NULL, &err);
    CHECK(rc == 0);
    if (rc) fprintf(stderr, "  %s\n", err.msg);
    CHECK(s.format == TH_INGEST_COMMON && s.images == 3 && s.patients == 2 && s.skipped == 0);
    CHECK(s.w == W && s.h == H && s.n_labels == 2);
    CHECK(!strcmp(s.label_names[0], "Effusion") && !strcmp(s.label_names[1], "Nodule"));
    CHECK(s.positives[0] == 2 && s.positives[1] == 1);
    CHECK(s.has_split && s.split_count[0] == 1 && s.split_count[1] == 1 && s.split_count[2] == 1);
    CHECK(s.report_path[0] == '\0');

    readback r;
    CHECK(read_back("common.h5", &r) == 0);
    CHECK(r.n == 3 && r.h == H && r.w == W && r.L == 2);
    for (int k = 0; k < 3 && r.n == 3; k++) CHECK(!memcmp(r.images + k * W * H, pixels[k], W * H));
    CHECK(r.n == 3 && !memcmp(r.labels, (const uint8_t[]){1, 0, 1, 1, 0, 0}, 6));
    CHECK(r.n == 3 && !strcmp(r.patients[0], "P3") && !strcmp(r.patients[2], "P12"));
    CHECK(r.n == 3 && !strcmp(r.names[1], "00000003_001.png"));
    CHECK(r.split && r.split[0] == 0 && r.split[1] == 1 && r.split[2] == 2);
    readback_free(&r);

    /* --size: every image 4x4, and the label list picks and orders. */
    const char *pick[2] = {"nodule", "Effusion"};
    o.out_path = path_of("common4.h5");
    o.size = 4;
    o.labels = pick;
    o.n_labels = 2;
    CHECK(th_ingest_run(&o, &s, NULL, NULL, &err) == 0);
    CHECK(s.w == 4 && s.h == 4 && !strcmp(s.label_names[0], "Nodule") && s.positives[0] == 1);
    CHECK(read_back("common4.h5", &r) == 0);
    CHECK(r.h == 4 && r.w == 4 && !memcmp(r.labels, (const uint8_t[]){0, 1, 1, 1, 0, 0}, 6));
    readback_free(&r);

    const char *wrong[1] = {"Pneumothorax"};
    o.labels = wrong;
    o.n_labels = 1;
    CHECK(th_ingest_run(&o, &s, NULL, NULL, &err) == -1);
    CHECK(strstr(err.msg, "Pneumothorax") && strstr(err.msg, "Effusion, Nodule"));
}

static void test_nih(void)
{
    /* As Data_Entry_2017.csv is: a header with brackets split by commas,
     * numeric patient IDs, a trailing comma. */
    write_text("Data_Entry_2017.csv",
               "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
               "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n"
               "00000003_000.png,Hernia|Pleural_Thickening,0,3,81,F,PA,2582,2991,0.143,0.143,\n"
               "00000003_001.png,No Finding,1,3,74,F,PA,2500,2048,0.168,0.168,\n"
               "00000012_000.png,Effusion|Mass|Atelectasis,0,12,76,M,PA,3056,2544,0.139,0.139,\n");
    th_ingest_opts o = opts("Data_Entry_2017.csv", "nih.h5");
    th_ingest_summary s;
    th_err err;
    int rc = th_ingest_run(&o, &s, NULL, NULL, &err);
    CHECK(rc == 0);
    if (rc) fprintf(stderr, "  %s\n", err.msg);
    CHECK(s.format == TH_INGEST_NIH && s.images == 3 && s.patients == 2 && s.n_labels == TH_INGEST_N_NIH);
    CHECK(!s.has_split);
    readback r;
    CHECK(read_back("nih.h5", &r) == 0);
    CHECK(r.L == 14 && !strcmp(r.label_names[12], "Pleural_Thickening"));
    /* Atelectasis 0, Effusion 2, Mass 4, Pleural_Thickening 12, Hernia 13. */
    const uint8_t want[3][14] = {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1},
                                 {0},
                                 {1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}};
    CHECK(r.n == 3 && !memcmp(r.labels, want, sizeof want));
    CHECK(r.n == 3 && !strcmp(r.patients[0], "00000003") && !strcmp(r.patients[2], "00000012"));
    readback_free(&r);

    write_text("nih_bad.csv", "Image Index,Finding Labels,Patient ID\n"
                              "00000003_000.png,Hernia|Pneumonitis,3\n");
    o = opts("nih_bad.csv", "nih_bad.h5");
    CHECK(th_ingest_run(&o, &s, NULL, NULL, &err) == -1);
    CHECK(strstr(err.msg, "nih_bad.csv:2") && strstr(err.msg, "Pneumonitis"));
}

static void test_columns_and_names(void)
{
    /* Liberal header names in any order; no patient column: IDs from names. */
    write_text("columns.csv", "Cardiomegaly,filename,Edema\n"
                              "1,00000003_000.png,0\n"
                              "0,person7_virus_2.png,1\n"
                              "1,00000003_001.png,1\n");
    th_ingest_opts o = opts("columns.csv", "columns.h5");
    th_ingest_summary s;
    th_err err;
    int rc = th_ingest_run(&o, &s, NULL, NULL, &err);
    CHECK(rc == 0);
    if (rc) fprintf(stderr, "  %s\n", err.msg);
    CHECK(s.format == TH_INGEST_COLUMNS && s.images == 3 && s.patients == 2 && s.n_labels == 2);
    CHECK(s.positives[0] == 2 && s.positives[1] == 2);
    readback r;
    CHECK(read_back("columns.h5", &r) == 0);
    CHECK(r.n == 3 && !strcmp(r.patients[1], "person7") && !strcmp(r.patients[2], "00000003"));
    readback_free(&r);

    write_text("nameless.csv", "image,A\nbig.png,1\n");
    o = opts("nameless.csv", "nameless.h5");
    CHECK(th_ingest_run(&o, &s, NULL, NULL, &err) == -1);
    CHECK(strstr(err.msg, "nameless.csv:2") && strstr(err.msg, "patient"));
}

static void test_sizes_and_leftovers(void)
{
    write_text("mixed.csv", "image,patient_id,A\n00000003_000.png,P1,1\nbig.png,P2,0\n");
    th_ingest_opts o = opts("mixed.csv", "mixed.h5");
    th_ingest_summary s;
    th_err err;
    CHECK(th_ingest_run(&o, &s, NULL, NULL, &err) == -1);
    CHECK(strstr(err.msg, "--size") && strstr(err.msg, "big.png"));
    CHECK(!exists("mixed.h5") && !tmp_exists("mixed.h5") && !tmp_exists("mixed.h5.pixels"));
    o.size = 6;
    CHECK(th_ingest_run(&o, &s, NULL, NULL, &err) == 0);
    CHECK(s.w == 6 && s.h == 6 && exists("mixed.h5"));

    /* A damaged image found while decoding: nothing left, not even scratch. */
    write_text("img/broken.png", "not a png");
    write_text("broken.csv", "image,patient_id,A\n00000003_000.png,P1,1\nbroken.png,P2,0\n");
    o = opts("broken.csv", "broken.h5");
    CHECK(th_ingest_run(&o, &s, NULL, NULL, &err) == -1);
    CHECK(strstr(err.msg, "broken.csv:3") && strstr(err.msg, "not a PNG"));
    CHECK(!exists("broken.h5") && !tmp_exists("broken.h5") && !exists("broken.h5.skipped.csv"));

    /* With skip_bad: the good row and a report. */
    o.skip_bad = 1;
    CHECK(th_ingest_run(&o, &s, NULL, NULL, &err) == 0);
    CHECK(s.images == 1 && s.skipped == 1 && exists("broken.h5") && exists("broken.h5.skipped.csv"));
    CHECK(!tmp_exists("broken.h5") && !tmp_exists("broken.h5.skipped.csv"));
}

/* TH_INGEST_MAX_LABELS label columns are taken (the run then stops at the
 * missing image); one more is an error naming the CSV and the limit. */
static void test_label_limit(void)
{
    for (int over = 0; over <= 1; over++) {
        int n = TH_INGEST_MAX_LABELS + over;
        char *text = malloc(16 * (size_t)n + 64);
        size_t len = (size_t)sprintf(text, "image,patient_id");
        for (int k = 0; k < n; k++) len += (size_t)sprintf(text + len, ",L%d", k);
        len += (size_t)sprintf(text + len, "\nmissing.png,P1");
        for (int k = 0; k < n; k++) len += (size_t)sprintf(text + len, ",0");
        strcpy(text + len, "\n");
        write_text("many.csv", text);
        free(text);
        th_ingest_opts o = {.csv_path = path_of("many.csv"), .images_dir = dir, .out_path = path_of("many.h5")};
        th_ingest_summary s;
        th_err err;
        CHECK(th_ingest_run(&o, &s, NULL, NULL, &err) == -1);
        if (over)
            CHECK(strstr(err.msg, "many.csv: more than 256 labels") != NULL);
        else
            CHECK(strstr(err.msg, "missing.png") != NULL && s.n_labels == TH_INGEST_MAX_LABELS);
        CHECK(!exists("many.h5"));
    }
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_patient_names();
    test_label_limit();
    write_images();
    test_common();
    test_nih();
    test_columns_and_names();
    test_sizes_and_leftovers();
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return th_test_summary("ingest");
}

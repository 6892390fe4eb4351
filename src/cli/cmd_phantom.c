/* cmd_phantom.c - `thorax phantom`: writes the synthetic demo dataset.
 *
 * Parses the options, writes the file with th_phantom_write while showing
 * progress, then reads the labels back from the file it just wrote (which
 * also proves it is readable) to print how many positives each label got,
 * and optionally saves the first images with their masks as PNGs for a
 * person to look at. The writer is serial: no MPI here.
 */
#include <hdf5.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "thorax/fsutil.h"
#include "thorax/phantom.h"
#include "thorax/png.h"

#define PREVIEW_IMAGES 8
#define MAX_PATIENTS 10000000L
#define MAX_STUDIES 1000L
#define MAX_IMAGES (1L << 28)

/* Overlay colours per label, in th_phantom_labels order. */
static const uint8_t OVERLAY[TH_PHANTOM_N_LABELS][3] = {{255, 40, 40}, {40, 220, 40}, {40, 140, 255}, {255, 230, 0}};
static const char *const OVERLAY_NAME[TH_PHANTOM_N_LABELS] = {"red", "green", "blue", "yellow"};

typedef struct {
    const char *out, *preview;
    th_phantom_opts o;
} phantom_args;

static void usage(FILE *f)
{
    th_phantom_opts d;
    th_phantom_defaults(&d);
    fprintf(f,
            "usage: thorax phantom --out F.h5 [options]\n"
            "\n"
            "Writes a synthetic chest-radiograph dataset: several studies per patient,\n"
            "findings with known lesion masks (for checking CAMs), and optionally a\n"
            "shortcut marker that follows one label (for the shortcut-learning demo).\n"
            "\n"
            "options:\n"
            "  --out F.h5          output dataset file (required)\n"
            "  --patients N        number of patients (default %d)\n"
            "  --size S            image side in pixels, %d-%d (default %d)\n"
            "  --seed K            random seed (default %llu)\n"
            "  --studies MIN-MAX   studies per patient, uniform, or one number (default %d-%d)\n"
            "  --prevalence P      probability of each finding per study, 0-1 (default %g)\n"
            "  --marker LABEL      draw an 'R' tag on studies positive for LABEL (name or\n"
            "                      index 0-%d; default none)\n"
            "  --marker-rate R     share of LABEL-positive studies that carry the tag; about\n"
            "                      5%% of the others carry it too (default %g)\n"
            "  --shortcut-marker P the shortcut demo in one option: the tag on a share P of\n"
            "                      positive studies of --marker (default Pneumothorax)\n"
            "  --preview DIR       also write the first %d images and their mask overlays\n"
            "                      as PNG files into DIR\n"
            "  -h, --help          show this help\n"
            "\n"
            "labels: %s, %s, %s, %s\n",
            d.patients, 16, 1024, d.size, (unsigned long long)d.seed, d.studies_min, d.studies_max, d.prevalence,
            TH_PHANTOM_N_LABELS - 1, d.marker_rate, PREVIEW_IMAGES, th_phantom_labels[0], th_phantom_labels[1],
            th_phantom_labels[2], th_phantom_labels[3]);
}

static int bad_value(const char *opt, const char *value, const char *what)
{
    cli_error("phantom: %s '%s': %s", opt, value, what);
    return TH_EXIT_USAGE;
}

static int parse_studies(const char *s, th_phantom_opts *o)
{
    char lo[32], *dash = strchr(s, '-');
    long a, b;
    if (!dash) {
        if (cli_parse_int(s, 1, MAX_STUDIES, &a)) return -1;
        o->studies_min = o->studies_max = (int)a;
        return 0;
    }
    size_t n = (size_t)(dash - s);
    if (n == 0 || n >= sizeof lo) return -1;
    memcpy(lo, s, n);
    lo[n] = '\0';
    if (cli_parse_int(lo, 1, MAX_STUDIES, &a) || cli_parse_int(dash + 1, 1, MAX_STUDIES, &b) || a > b) return -1;
    o->studies_min = (int)a;
    o->studies_max = (int)b;
    return 0;
}

/* A label by name (any case), by index, or "none". */
static int parse_marker(const char *s, int *label)
{
    long k;
    if (!strcasecmp(s, "none")) {
        *label = -1;
        return 0;
    }
    if (!cli_parse_int(s, 0, TH_PHANTOM_N_LABELS - 1, &k)) {
        *label = (int)k;
        return 0;
    }
    for (int i = 0; i < TH_PHANTOM_N_LABELS; i++)
        if (!strcasecmp(s, th_phantom_labels[i])) {
            *label = i;
            return 0;
        }
    return -1;
}

static int parse_args(int argc, char **argv, phantom_args *a)
{
    th_phantom_defaults(&a->o);
    a->out = a->preview = NULL;
    int shortcut = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2)) {
            cli_error("phantom: unexpected argument '%s' (see thorax phantom --help)", arg);
            return TH_EXIT_USAGE;
        }
        /* --name value and --name=value are both accepted. */
        char name[64];
        const char *value, *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (len >= sizeof name) len = sizeof name - 1;
        memcpy(name, arg, len);
        name[len] = '\0';
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            cli_error("phantom: %s needs a value", name);
            return TH_EXIT_USAGE;
        }
        long k;
        double x;
        if (!strcmp(name, "--out")) {
            if (!*value) return bad_value(name, value, "empty file name");
            a->out = value;
        } else if (!strcmp(name, "--preview")) {
            if (!*value) return bad_value(name, value, "empty directory name");
            a->preview = value;
        } else if (!strcmp(name, "--patients")) {
            if (cli_parse_int(value, 1, MAX_PATIENTS, &k))
                return bad_value(name, value, "expected an integer from 1 to 10000000");
            a->o.patients = (int)k;
        } else if (!strcmp(name, "--size")) {
            if (cli_parse_int(value, 16, 1024, &k))
                return bad_value(name, value, "expected an integer from 16 to 1024");
            a->o.size = (int)k;
        } else if (!strcmp(name, "--seed")) {
            if (cli_parse_int(value, 0, LONG_MAX, &k))
                return bad_value(name, value, "expected a non-negative integer");
            a->o.seed = (uint64_t)k;
        } else if (!strcmp(name, "--studies")) {
            if (parse_studies(value, &a->o))
                return bad_value(name, value, "expected MIN-MAX or N with 1 <= MIN <= MAX <= 1000");
        } else if (!strcmp(name, "--prevalence")) {
            if (cli_parse_double(value, &x) || x < 0 || x > 1)
                return bad_value(name, value, "expected a number from 0 to 1");
            a->o.prevalence = (float)x;
        } else if (!strcmp(name, "--marker")) {
            if (parse_marker(value, &a->o.marker_label))
                return bad_value(name, value, "expected a label name, an index 0-3, or none");
        } else if (!strcmp(name, "--marker-rate") || !strcmp(name, "--shortcut-marker")) {
            if (cli_parse_double(value, &x) || x < 0 || x > 1)
                return bad_value(name, value, "expected a number from 0 to 1");
            a->o.marker_rate = (float)x;
            shortcut |= !strcmp(name, "--shortcut-marker");
        } else {
            cli_error("phantom: unknown option '%s' (see thorax phantom --help)", name);
            return TH_EXIT_USAGE;
        }
    }
    /* --shortcut-marker without --marker: the tag follows the first finding. */
    if (shortcut && a->o.marker_label < 0) a->o.marker_label = 0;
    if (!a->out) {
        cli_error("phantom: --out F.h5 is required (see thorax phantom --help)");
        return TH_EXIT_USAGE;
    }
    if ((long long)a->o.patients * a->o.studies_max > MAX_IMAGES) {
        cli_error("phantom: --patients %d with up to %d studies each could exceed %ld images", a->o.patients,
                  a->o.studies_max, MAX_IMAGES);
        return TH_EXIT_USAGE;
    }
    return TH_EXIT_OK;
}

/* ------------------------------------------------------------------------
 * Reading back what was written (serial HDF5: no MPI in this command).
 */

/* Rows [0, count) of a uint8 dataset of any rank into out. */
static int read_first_rows(hid_t f, const char *name, hsize_t count, uint8_t *out)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t fs = d < 0 ? -1 : H5Dget_space(d);
    hsize_t dims[4], start[4] = {0};
    int rank = fs < 0 ? -1 : H5Sget_simple_extent_dims(fs, dims, NULL);
    herr_t rc = rank < 1 || rank > 4 || count > dims[0] ? -1 : 0;
    hid_t ms = -1;
    if (rc >= 0) {
        dims[0] = count;
        ms = H5Screate_simple(rank, dims, NULL);
        rc = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, dims, NULL);
    }
    if (rc >= 0) rc = H5Dread(d, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, out);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (d >= 0) H5Dclose(d);
    return rc < 0 ? -1 : 0;
}

/* The first `count` image names, into names[count][64]. */
static int read_first_names(hid_t f, hsize_t count, char (*names)[64])
{
    hid_t d = H5Dopen2(f, "image_name", H5P_DEFAULT);
    hid_t fs = d < 0 ? -1 : H5Dget_space(d);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hsize_t start = 0;
    hid_t ms = H5Screate_simple(1, &count, NULL);
    char *vl[PREVIEW_IMAGES] = {0};
    herr_t rc = fs < 0 || ms < 0 ? -1 : H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL);
    if (rc >= 0) rc = H5Dread(d, t, ms, fs, H5P_DEFAULT, vl);
    for (hsize_t i = 0; rc >= 0 && i < count; i++) snprintf(names[i], 64, "%s", vl[i] ? vl[i] : "image");
    if (rc >= 0) H5Dvlen_reclaim(t, ms, H5P_DEFAULT, vl);
    if (ms >= 0) H5Sclose(ms);
    H5Tclose(t);
    if (fs >= 0) H5Sclose(fs);
    if (d >= 0) H5Dclose(d);
    return rc < 0 ? -1 : 0;
}

/* The image in gray, each label's mask blended in its colour. */
static void overlay(const uint8_t *img, const uint8_t *masks, int npix, uint8_t *rgb)
{
    for (int i = 0; i < npix; i++) {
        double c[3] = {img[i], img[i], img[i]};
        for (int k = 0; k < TH_PHANTOM_N_LABELS; k++)
            if (masks[(size_t)k * npix + i])
                for (int j = 0; j < 3; j++) c[j] = 0.55 * c[j] + 0.45 * OVERLAY[k][j];
        for (int j = 0; j < 3; j++) rgb[3 * i + j] = (uint8_t)(c[j] + 0.5);
    }
}

static int write_preview(hid_t f, const char *dir, int n, int S, th_err *err)
{
    int count = n < PREVIEW_IMAGES ? n : PREVIEW_IMAGES;
    size_t npix = (size_t)S * S;
    uint8_t *imgs = malloc(count * npix), *masks = malloc(count * TH_PHANTOM_N_LABELS * npix), *rgb = malloc(3 * npix);
    char names[PREVIEW_IMAGES][64];
    int rc = 0;
    if (!imgs || !masks || !rgb) rc = th_errf(err, "out of memory for the preview");
    else if (read_first_rows(f, "images", (hsize_t)count, imgs) || read_first_rows(f, "masks", (hsize_t)count, masks) ||
             read_first_names(f, (hsize_t)count, names))
        rc = th_errf(err, "cannot read the first images back for the preview");
    else rc = th_mkdirs(dir, err);
    for (int i = 0; rc == 0 && i < count; i++) {
        char path[4096], *dot = strrchr(names[i], '.');
        if (dot) *dot = '\0';
        snprintf(path, sizeof path, "%s/%s.png", dir, names[i]);
        rc = th_png_write_gray(path, imgs + i * npix, S, S, err);
        if (rc) break;
        overlay(imgs + i * npix, masks + i * TH_PHANTOM_N_LABELS * npix, (int)npix, rgb);
        snprintf(path, sizeof path, "%s/%s_masks.png", dir, names[i]);
        rc = th_png_write_rgb(path, rgb, S, S, err);
    }
    free(rgb);
    free(masks);
    free(imgs);
    return rc;
}

static int summarize(const phantom_args *a, double elapsed)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(a->out, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = f < 0 ? -1 : H5Dopen2(f, "labels", H5P_DEFAULT);
    hid_t sp = d < 0 ? -1 : H5Dget_space(d);
    hsize_t dims[2] = {0, 0};
    if (sp >= 0) H5Sget_simple_extent_dims(sp, dims, NULL);
    int n = (int)dims[0];
    uint8_t *labels = n > 0 && dims[1] == TH_PHANTOM_N_LABELS ? malloc((size_t)n * TH_PHANTOM_N_LABELS) : NULL;
    int ok = labels && H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels) >= 0;
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    if (!ok) {
        free(labels);
        if (f >= 0) H5Fclose(f);
        cli_error("phantom: cannot read /labels back from %s", a->out);
        return TH_EXIT_FAIL;
    }

    int pos[TH_PHANTOM_N_LABELS] = {0}, any = 0;
    for (int i = 0; i < n; i++) {
        int row_any = 0;
        for (int k = 0; k < TH_PHANTOM_N_LABELS; k++) {
            pos[k] += labels[i * TH_PHANTOM_N_LABELS + k];
            row_any |= labels[i * TH_PHANTOM_N_LABELS + k];
        }
        any += row_any;
    }
    free(labels);
    printf("phantom: wrote %d images of %d patients (%dx%d, seed %llu) in %.1fs to %s\n", n, a->o.patients, a->o.size,
           a->o.size, (unsigned long long)a->o.seed, elapsed, a->out);
    for (int k = 0; k < TH_PHANTOM_N_LABELS; k++)
        printf("  %-13s %7d positive (%.1f%%)\n", th_phantom_labels[k], pos[k], 100.0 * pos[k] / n);
    printf("  %-13s %7d (%.1f%%)\n", "any finding", any, 100.0 * any / n);
    if (a->o.marker_label >= 0)
        printf("  shortcut marker on %.0f%% of %s-positive studies (and ~5%% of the others)\n",
               100.0 * a->o.marker_rate, th_phantom_labels[a->o.marker_label]);

    int rc = TH_EXIT_OK;
    if (a->preview) {
        th_err err;
        if (write_preview(f, a->preview, n, a->o.size, &err)) {
            cli_error("phantom: preview: %s", err.msg);
            rc = TH_EXIT_FAIL;
        } else {
            printf("  preview: %d images and mask overlays in %s (", n < PREVIEW_IMAGES ? n : PREVIEW_IMAGES,
                   a->preview);
            for (int k = 0; k < TH_PHANTOM_N_LABELS; k++)
                printf("%s%s %s", k ? ", " : "", OVERLAY_NAME[k], th_phantom_labels[k]);
            printf(")\n");
        }
    }
    H5Fclose(f);
    return rc;
}

int cmd_phantom(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return TH_EXIT_OK;
    }
    phantom_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != TH_EXIT_OK) return rc;

    cli_progress p;
    cli_progress_start(&p, "phantom");
    th_err err;
    if (th_phantom_write(&a.o, a.out, cli_progress_update, &p, &err)) {
        cli_progress_abort(&p);
        cli_error("%s", err.msg);
        return TH_EXIT_FAIL;
    }
    return summarize(&a, cli_progress_seconds(&p));
}

/* cmd_phantom.c - `thorax phantom`: writes the synthetic demo dataset.
 *
 * Parses the options, makes the file with th_phantom_make while showing
 * progress (it writes the file, then reads back from it the label counts and
 * the first images: proof that it is readable), prints how many positives
 * each label got, and optionally saves the first images with their masks as
 * PNGs for a person to look at. The writer is serial: no MPI here.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "thorax/util.h"
#include "thorax/data.h"
#include "thorax/render.h"

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
            "  --log-format F      plain or json log lines (see thorax --help)\n"
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

enum { OPT_OUT = 1, OPT_PREVIEW, OPT_PATIENTS, OPT_SIZE, OPT_SEED, OPT_STUDIES, OPT_PREVALENCE, OPT_MARKER,
       OPT_MARKER_RATE, OPT_SHORTCUT_MARKER };

static const cli_opt phantom_opts[] = {{OPT_OUT, "out", "a value (the dataset file to write)"},
                                       {OPT_PREVIEW, "preview", "a value (a directory)"},
                                       {OPT_PATIENTS, "patients", "a value (a number of patients)"},
                                       {OPT_SIZE, "size", "a value (a side in pixels)"},
                                       {OPT_SEED, "seed", "a value"},
                                       {OPT_STUDIES, "studies", "a value (MIN-MAX or N)"},
                                       {OPT_PREVALENCE, "prevalence", "a value (0 to 1)"},
                                       {OPT_MARKER, "marker", "a value (a label)"},
                                       {OPT_MARKER_RATE, "marker-rate", "a value (0 to 1)"},
                                       {OPT_SHORTCUT_MARKER, "shortcut-marker", "a value (0 to 1)"},
                                       {0, NULL, NULL}};

/* TH_EXIT_OK, -1 when --help was printed, or TH_EXIT_USAGE after saying why. */
static int parse_args(int argc, char **argv, phantom_args *a)
{
    th_phantom_defaults(&a->o);
    a->out = a->preview = NULL;
    int shortcut = 0;
    cli_parser p;
    cli_parser_init(&p, "phantom", argc, argv, phantom_opts);
    const char *value;
    for (int id; (id = cli_next(&p, &value)) != CLI_END;) {
        long k;
        double x;
        char name[32] = "";
        for (const cli_opt *o = phantom_opts; o->name; o++)
            if (o->id == id) snprintf(name, sizeof name, "--%s", o->name);
        switch (id) {
        case CLI_HELP: usage(stdout); return -1;
        case CLI_BAD: return TH_EXIT_USAGE;
        case CLI_ARG:
            cli_error("phantom: unexpected argument '%s' (see thorax phantom --help)", value);
            return TH_EXIT_USAGE;
        case OPT_OUT:
        case OPT_PREVIEW:
            if (!*value) return bad_value(name, value, id == OPT_OUT ? "empty file name" : "empty directory name");
            *(id == OPT_OUT ? &a->out : &a->preview) = value;
            break;
        case OPT_PATIENTS:
            if (cli_parse_int(value, 1, MAX_PATIENTS, &k))
                return bad_value(name, value, "expected an integer from 1 to 10000000");
            a->o.patients = (int)k;
            break;
        case OPT_SIZE:
            if (cli_parse_int(value, 16, 1024, &k)) return bad_value(name, value, "expected an integer from 16 to 1024");
            a->o.size = (int)k;
            break;
        case OPT_SEED:
            if (cli_parse_int(value, 0, LONG_MAX, &k)) return bad_value(name, value, "expected a non-negative integer");
            a->o.seed = (uint64_t)k;
            break;
        case OPT_STUDIES:
            if (parse_studies(value, &a->o))
                return bad_value(name, value, "expected MIN-MAX or N with 1 <= MIN <= MAX <= 1000");
            break;
        case OPT_PREVALENCE:
            if (cli_parse_double(value, &x) || x < 0 || x > 1)
                return bad_value(name, value, "expected a number from 0 to 1");
            a->o.prevalence = (float)x;
            break;
        case OPT_MARKER:
            if (parse_marker(value, &a->o.marker_label))
                return bad_value(name, value, "expected a label name, an index 0-3, or none");
            break;
        case OPT_MARKER_RATE:
        case OPT_SHORTCUT_MARKER:
            if (cli_parse_double(value, &x) || x < 0 || x > 1)
                return bad_value(name, value, "expected a number from 0 to 1");
            a->o.marker_rate = (float)x;
            shortcut |= id == OPT_SHORTCUT_MARKER;
            break;
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

/* The first images of the file as PNGs in dir: <name>.png and, with each
 * label's mask blended in its colour, <name>_masks.png. */
static int write_preview(const char *dir, const th_phantom_summary *s, th_err *err)
{
    int S = s->size;
    size_t npix = (size_t)S * S;
    uint8_t *rgb = malloc(3 * npix);
    int rc = rgb ? th_mkdirs(dir, err) : th_errf(err, "out of memory for the preview");
    for (int i = 0; rc == 0 && i < s->n_preview; i++) {
        char path[4096], stem[64], *dot;
        snprintf(stem, sizeof stem, "%s", s->name[i]);
        if ((dot = strrchr(stem, '.'))) *dot = '\0';
        snprintf(path, sizeof path, "%s/%s.png", dir, stem);
        rc = th_png_write_gray(path, s->img + i * npix, S, S, err);
        if (rc) break;
        overlay(s->img + i * npix, s->masks + i * TH_PHANTOM_N_LABELS * npix, (int)npix, rgb);
        snprintf(path, sizeof path, "%s/%s_masks.png", dir, stem);
        rc = th_png_write_rgb(path, rgb, S, S, err);
    }
    free(rgb);
    return rc;
}

static int summarize(const phantom_args *a, const th_phantom_summary *s, double elapsed)
{
    int n = s->images;
    printf("phantom: wrote %d images of %d patients (%dx%d, seed %llu) in %.1fs to %s\n", n, a->o.patients, a->o.size,
           a->o.size, (unsigned long long)a->o.seed, elapsed, a->out);
    for (int k = 0; k < TH_PHANTOM_N_LABELS; k++)
        printf("  %-13s %7d positive (%.1f%%)\n", th_phantom_labels[k], s->positive[k], 100.0 * s->positive[k] / n);
    printf("  %-13s %7d (%.1f%%)\n", "any finding", s->any, 100.0 * s->any / n);
    if (a->o.marker_label >= 0)
        printf("  shortcut marker on %.0f%% of %s-positive studies (and ~5%% of the others)\n",
               100.0 * a->o.marker_rate, th_phantom_labels[a->o.marker_label]);
    if (!a->preview) return TH_EXIT_OK;
    th_err err;
    if (write_preview(a->preview, s, &err)) {
        cli_error("phantom: preview: %s", err.msg);
        return TH_EXIT_FAIL;
    }
    printf("  preview: %d images and mask overlays in %s (", s->n_preview, a->preview);
    for (int k = 0; k < TH_PHANTOM_N_LABELS; k++) printf("%s%s %s", k ? ", " : "", OVERLAY_NAME[k], th_phantom_labels[k]);
    printf(")\n");
    return TH_EXIT_OK;
}

int cmd_phantom(int argc, char **argv)
{
    phantom_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != TH_EXIT_OK) return rc < 0 ? TH_EXIT_OK : rc;

    cli_progress p;
    cli_progress_start(&p, "phantom");
    th_err err;
    th_phantom_summary s;
    if (th_phantom_make(&a.o, a.out, a.preview ? PREVIEW_IMAGES : 0, cli_progress_update, &p, &s, &err)) {
        cli_progress_abort(&p);
        th_phantom_summary_free(&s);
        cli_error("%s", err.msg);
        return TH_EXIT_FAIL;
    }
    rc = summarize(&a, &s, cli_progress_seconds(&p));
    th_phantom_summary_free(&s);
    return rc;
}

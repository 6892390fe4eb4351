/* seeds.c - the binary part of the fuzz seed corpus, made at run time.
 *
 *   fuzz_seeds OUTDIR             makes OUTDIR/<target>/ for every target and
 *                                 writes OUTDIR/png/ (small PNGs of every
 *                                 colour type and bit depth) and
 *                                 OUTDIR/dataset/ (a real tiny dataset file,
 *                                 for the raw mode of fuzz_dataset)
 *   fuzz_seeds --copy OUTDIR SRC...  copies every input of SRC (files or
 *                                 directories) into OUTDIR, decoding NAME.hex
 *
 * The repository commits no binary files (see tests/png_fixture.h); tools/
 * fuzz.sh and the replay tests run this to fill their corpora.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "inputs.h"
#include "png_fixture.h"
#include "thorax/data.h"

#define S 16

static int mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0777) && errno != EEXIST ? -1 : 0;
}

static int png(const char *dir, const char *name, int color, int depth, int interlace, int channels)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/png/%s", dir, name);
    int bytes = depth == 16 ? 2 : 1;
    size_t rowbytes = depth < 8 ? (size_t)(S * depth + 7) / 8 : (size_t)S * channels * bytes;
    uint8_t samples[S * 4 * 2 * S];
    for (size_t i = 0; i < rowbytes * S; i++) samples[i] = (uint8_t)(i * 37 + i / rowbytes * 11);
    png_color palette[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {255, 255, 255}};
    if (color == PNG_COLOR_TYPE_PALETTE)
        for (size_t i = 0; i < rowbytes * S; i++) samples[i] = (uint8_t)(samples[i] & 0x55);
    if (fixture_write_png(path, S, S, color, depth, interlace, samples, rowbytes,
                          color == PNG_COLOR_TYPE_PALETTE ? palette : NULL, 4)) {
        fprintf(stderr, "fuzz_seeds: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

static int dataset(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/dataset/raw-valid.h5", dir);
    const char *names[2] = {"Effusion", "Nodule"};
    uint8_t img[4 * 4] = {0, 10, 20, 30}, labels[2] = {1, 0}, masks[2 * 4 * 4] = {1};
    th_dataset_writer wr;
    th_err err;
    int rc = th_dataset_writer_create(&wr, path, 2, 4, 4, 2, names, 1, 1, &err);
    if (!rc) rc = th_dataset_writer_put(&wr, 0, img, labels, "00000001", "00000001_000.png", masks, 0, &err);
    if (!rc) rc = th_dataset_writer_put(&wr, 1, img, labels, "00000002", "00000002_000.png", NULL, 2, &err);
    if (!rc) rc = th_dataset_writer_finish(&wr, &err);
    if (rc) fprintf(stderr, "fuzz_seeds: %s\n", err.msg);
    return rc;
}

typedef struct {
    const char *out;
    int failed;
} copy_ctx;

static void copy(const char *path, const uint8_t *data, size_t len, void *p)
{
    copy_ctx *cx = p;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char out[4096];
    size_t n = strlen(base);
    if (n > 4 && !strcmp(base + n - 4, ".hex")) n -= 4;
    snprintf(out, sizeof out, "%s/%.*s", cx->out, (int)n, base);
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(data, 1, len, f) != len) cx->failed = 1;
    if (f && fclose(f)) cx->failed = 1;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "--copy")) {
        copy_ctx cx = {argv[2], 0};
        if (mkdir_p(argv[2])) return perror(argv[2]), 1;
        for (int i = 3; i < argc; i++)
            if (fuzz_each_input(argv[i], copy, &cx) < 0) return 1;
        return cx.failed;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds OUTDIR | fuzz_seeds --copy OUTDIR SRC...\n");
        return 2;
    }
    /* A directory for every target, even those without generated seeds,
     * so that callers can name OUTDIR/<target> for any target. */
    static const char *const targets[] = {"config", "csv", "png", "jpeg", "dataset", "lesions", "dicom"};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", argv[1], targets[i]);
        if (mkdir_p(sub)) return perror(sub), 1;
    }
    const char *d = argv[1];
    int rc = png(d, "gray8.png", PNG_COLOR_TYPE_GRAY, 8, 0, 1) || png(d, "gray16.png", PNG_COLOR_TYPE_GRAY, 16, 0, 1) ||
             png(d, "gray1.png", PNG_COLOR_TYPE_GRAY, 1, 0, 1) || png(d, "gray4.png", PNG_COLOR_TYPE_GRAY, 4, 0, 1) ||
             png(d, "rgb8.png", PNG_COLOR_TYPE_RGB, 8, 0, 3) || png(d, "rgba16.png", PNG_COLOR_TYPE_RGBA, 16, 0, 4) ||
             png(d, "graya8.png", PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, 2) ||
             png(d, "palette2.png", PNG_COLOR_TYPE_PALETTE, 2, 0, 1) ||
             png(d, "interlaced16.png", PNG_COLOR_TYPE_GRAY, 16, PNG_INTERLACE_ADAM7, 1) ||
             png(d, "interlaced-rgb8.png", PNG_COLOR_TYPE_RGB, 8, PNG_INTERLACE_ADAM7, 3) || dataset(d);
    return rc ? 1 : 0;
}

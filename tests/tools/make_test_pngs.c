/* make_test_pngs.c - the images of the bad-input corpus, written at test time.
 *
 *   make_test_pngs DIR
 * writes into DIR:
 *   a.png b.png c.png d.png   8-bit gray 32x32, four different patterns
 *   gray16.png                16-bit gray, a.png times 257 (decodes to a.png)
 *   rgba.png                  RGBA, R = G = B = b.png, alpha varying (decodes to b.png)
 *   rgb.png                   RGB, R = G = B = c.png (decodes to c.png)
 *   big.png                   8-bit gray 48x40 (another size)
 *   truncated.png             a noisy 32x32 PNG cut in the middle of its pixel data
 *   text.png                  a text file with a .png name
 * so that tests/corpus/ingest holds text files only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "png_fixture.h"
#include "thorax/render.h"

#define S 32

static int write_gray(const char *dir, const char *name, const uint8_t *px, int h, int w)
{
    char path[4096];
    th_err err;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (th_png_write_gray(path, px, h, w, &err)) {
        fprintf(stderr, "make_test_pngs: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int write_fixture(const char *dir, const char *name, int color_type, int depth, const uint8_t *samples,
                         size_t rowbytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (fixture_write_png(path, S, S, color_type, depth, 0, samples, rowbytes, NULL, 0)) {
        fprintf(stderr, "make_test_pngs: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

/* Keeps the first half of a file. */
static int truncate_half(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return truncate(path, n / 2);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_test_pngs DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    uint8_t pat[4][S * S], big[40 * 48], noise[S * S], rgba[S * S * 4], rgb[S * S * 3], g16[S * S * 2];
    uint16_t v16[S * S];
    unsigned seed = 12345;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            int i = y * S + x;
            pat[0][i] = (uint8_t)(x * 8);
            pat[1][i] = (uint8_t)(y * 6 + 20);
            pat[2][i] = (uint8_t)(x * 3 + y * 4);
            pat[3][i] = (uint8_t)(((x / 4 + y / 4) % 2) * 200 + 20);
            seed = seed * 1103515245u + 12345u;
            noise[i] = (uint8_t)(seed >> 16);
            v16[i] = (uint16_t)(pat[0][i] * 257);
            for (int c = 0; c < 3; c++) rgba[4 * i + c] = pat[1][i];
            rgba[4 * i + 3] = (uint8_t)(x * 7);
            for (int c = 0; c < 3; c++) rgb[3 * i + c] = pat[2][i];
        }
    for (int i = 0; i < 40 * 48; i++) big[i] = (uint8_t)(i % 251);
    fixture_be16(v16, S * S, g16);

    const char *names[4] = {"a.png", "b.png", "c.png", "d.png"};
    for (int k = 0; k < 4; k++)
        if (write_gray(dir, names[k], pat[k], S, S)) return 1;
    if (write_gray(dir, "big.png", big, 40, 48) || write_gray(dir, "truncated.png", noise, S, S) ||
        write_fixture(dir, "gray16.png", PNG_COLOR_TYPE_GRAY, 16, g16, S * 2) ||
        write_fixture(dir, "rgba.png", PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba, S * 4) ||
        write_fixture(dir, "rgb.png", PNG_COLOR_TYPE_RGB, 8, rgb, S * 3))
        return 1;
    if (truncate_half(dir, "truncated.png")) {
        fprintf(stderr, "make_test_pngs: cannot truncate %s/truncated.png\n", dir);
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/text.png", dir);
    FILE *t = fopen(path, "w");
    if (!t || fputs("This is a text file, not an image.\n", t) < 0 || fclose(t)) {
        fprintf(stderr, "make_test_pngs: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

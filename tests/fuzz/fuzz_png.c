/* fuzz_png.c - libFuzzer target: ingest's image path, PNG decoding and resizing.
 *
 * Input: a PNG file's bytes. th_image_decode_png decodes them; an image that
 * decodes must be within TH_IMAGE_MAX_SIDE, and the header check ingest runs
 * first (th_image_png_size, on the same bytes as a file) must agree on its
 * size. It is then resized as ingest would: shrunk, grown, and both at once.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "thorax/data.h"

static void check(int ok, const char *what)
{
    if (ok) return;
    fprintf(stderr, "image path broke its promise: %s\n", what);
    abort();
}

static void resize(const th_image *img, int dw, int dh)
{
    uint8_t *dst = malloc((size_t)dw * (size_t)dh);
    th_err err;
    if (!dst) return;
    check(th_image_resize(img->px, img->w, img->h, dst, dw, dh, &err) == 0, "a decoded image resizes");
    free(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    th_image img;
    th_err err;
    if (th_image_decode_png(data, size, "fuzz.png", &img, &err)) {
        check(err.msg[0] != '\0' && !img.px, "a failure has a message and no pixels");
        return 0;
    }
    check(img.w >= 1 && img.h >= 1 && img.w <= TH_IMAGE_MAX_SIDE && img.h <= TH_IMAGE_MAX_SIDE,
          "a decoded image is within the limit");

    char path[64];
    snprintf(path, sizeof path, "/tmp/thorax-fuzz-png-%d.png", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(data, 1, size, f);
    fclose(f);
    int w, h;
    check(th_image_png_size(path, &w, &h, &err) == 0 && w == img.w && h == img.h,
          "the header check agrees with the decoder");
    unlink(path);

    resize(&img, img.w / 3 + 1, img.h / 2 + 1);
    resize(&img, img.w < 100 ? 2 * img.w + 1 : 7, img.h < 100 ? 3 * img.h : 5);
    resize(&img, img.w < 100 ? img.w + 5 : 64, img.h > 1 ? img.h - 1 : 1);
    th_image_free(&img);
    return 0;
}

/* fuzz_jpeg.c - libFuzzer target: ingest's image path for JPEG files.
 *
 * Input: a file's bytes. th_image_decode tells the format by the first bytes
 * and decodes; a failure has a message and no pixels. An image that decodes
 * must be within TH_IMAGE_MAX_SIDE, and the header check ingest runs first
 * (th_image_size, on the same bytes as a file) must agree on its size. Seeds
 * (corpus/jpeg): gray baseline, colour progressive, arithmetic-coded, 4:4:4
 * with restart markers, and a CMYK file that must be refused.
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
    fprintf(stderr, "JPEG path broke its promise: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    th_image img;
    th_err err;
    int rc = th_image_decode(data, size, "fuzz.jpg", &img, &err);
    if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
        th_image jimg;
        th_err jerr;
        int jrc = th_image_decode_jpeg(data, size, "fuzz.jpg", &jimg, &jerr);
        int same = jrc == rc && (rc || (jimg.w == img.w && jimg.h == img.h &&
                                        !memcmp(jimg.px, img.px, (size_t)img.w * img.h)));
        check(same, "th_image_decode decodes a JPEG as th_image_decode_jpeg does");
        if (jrc == 0) th_image_free(&jimg);
    }
    if (rc) {
        check(err.msg[0] != '\0' && !img.px, "a failure has a message and no pixels");
        return 0;
    }
    check(img.w >= 1 && img.h >= 1 && img.w <= TH_IMAGE_MAX_SIDE && img.h <= TH_IMAGE_MAX_SIDE,
          "a decoded image is within the limit");
    check(img.depth == 8 || img.depth == 16, "a depth of 8 or 16 bits");

    char path[64];
    snprintf(path, sizeof path, "/tmp/thorax-fuzz-jpeg-%d.img", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(data, 1, size, f);
    fclose(f);
    int w, h;
    check(th_image_size(path, &w, &h, &err) == 0 && w == img.w && h == img.h,
          "the header check agrees with the decoder");
    th_image fimg;
    check(th_image_read(path, &fimg, &err) == 0 && fimg.w == img.w && fimg.h == img.h &&
              !memcmp(fimg.px, img.px, (size_t)img.w * img.h),
          "reading the file decodes as the bytes do");
    th_image_free(&fimg);
    unlink(path);
    th_image_free(&img);
    return 0;
}

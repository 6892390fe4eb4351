/* image.h - reading X-ray images from PNG files and resizing them.
 *
 * Every image becomes 8-bit luminance, the one channel the networks see:
 *   - gray is kept; RGB (and palette) becomes Y = 0.299 R + 0.587 G + 0.114 B
 *     (ITU-R BT.601), rounded to nearest;
 *   - 16-bit samples are reduced to 8 bits by v * 255 / 65535, rounded, after
 *     the luminance, so there is one rounding only. A 16-bit file that keeps
 *     12-bit data in the low bits (not the PNG convention) comes out dark:
 *     window it before ingesting;
 *   - alpha is ignored, not composited: radiographs have no transparency, and
 *     the RGBA files seen in the wild are opaque exports;
 *   - gamma and colour-profile chunks are ignored: the stored values are the
 *     detector's, and that is what a model trains on.
 */
#ifndef THORAX_IMAGE_H
#define THORAX_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include "thorax/error.h"

/* Larger sides are refused before any pixel memory is allocated, so a
 * damaged or hostile header cannot ask for gigabytes: "x.png: 9000x300
 * pixels is larger than the limit of 8192 pixels a side". Twice the largest
 * detector (about 4300 pixels), and the decoded image then stays under 64 MiB
 * (512 MiB of 16-bit RGBA samples at most for an interlaced file, which is
 * the one kind decoded whole). */
#define TH_IMAGE_MAX_SIDE 8192

typedef struct th_image {
    int w, h;
    uint8_t *px;        /* [h, w] luminance, malloc'd */
    int depth;          /* bits per sample in the file (8 or 16; lower depths read as 8) */
    int channels;       /* samples per pixel in the file: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
} th_image;

/* Width and height from the PNG header alone (the first 24 bytes): a cheap
 * check that the file exists and is a PNG. Errors name the file: missing,
 * unreadable, "not a PNG file" (a JPEG is recognised and named as such). */
int th_image_png_size(const char *path, int *w, int *h, th_err *err);

/* Decodes a PNG file of any bit depth and colour type into luminance.
 * Truncated or corrupt files are errors naming the file and what is wrong.
 * On failure img is left empty. */
int th_image_read_png(const char *path, th_image *img, th_err *err);

/* The same from a PNG file's bytes data[0..len) in memory; name only names
 * it in errors. */
int th_image_decode_png(const void *data, size_t len, const char *name, th_image *img, th_err *err);

void th_image_free(th_image *img);

/* Resizes src [sh, sw] into dst [dh, dw], each axis on its own:
 *   - shrinking: area averaging, the exact mean of the source area under each
 *     output pixel, partly covered source pixels weighted by their coverage;
 *   - growing: bilinear between pixel centres (half-pixel alignment, as PIL
 *     and OpenCV), the edge pixels repeated beyond the last centre;
 *   - same size: a copy.
 * So 1024x768 to 256x256 averages on both axes, and 200x300 to 256x256 grows
 * one axis and averages the other. The aspect ratio is not kept: callers that
 * want a square crop must crop first. Results are rounded to nearest. */
int th_image_resize(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh, th_err *err);

#endif

/* png.h - writing 8-bit PNG images (previews, CAM overlays, plots).
 *
 * Both writers are atomic: the image goes to `<path>.tmp` first and is
 * renamed onto path when complete, like every other file Thorax writes.
 */
#ifndef THORAX_PNG_H
#define THORAX_PNG_H

#include <stdint.h>
#include "thorax/error.h"

/* img [h, w], one byte per pixel. */
int th_png_write_gray(const char *path, const uint8_t *img, int h, int w, th_err *err);

/* rgb [h, w, 3], interleaved R, G, B. */
int th_png_write_rgb(const char *path, const uint8_t *rgb, int h, int w, th_err *err);

#endif

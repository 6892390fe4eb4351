/* image_impl.h - what the image decoders share (internal to src/data):
 * image.c's reduction of decoded samples to luminance, which jpeg.c reuses
 * so that colour becomes gray the same way in every format.
 */
#ifndef THORAX_IMAGE_IMPL_H
#define THORAX_IMAGE_IMPL_H

#include <stdint.h>

/* One row of w pixels of channels samples (1 gray, 2 gray+alpha, 3 RGB,
 * 4 RGBA) of depth bits (8, or 16 big-endian) into out [w]: BT.601
 * luminance, 16 bits scaled to 8, rounded once (see thorax/data.h). */
void th_image_luminance_row(const uint8_t *row, int w, int channels, int depth, uint8_t *out);

#endif

/* overlay.h - a heat map drawn over a grey image (the CAM overlays under cam/).
 *
 * Knows pixels only: the map is any float image of the grey image's size, at
 * that resolution (upsampled by the caller), and the result is RGB or a PNG.
 */
#ifndef THORAX_OVERLAY_H
#define THORAX_OVERLAY_H

#include <stdint.h>
#include "thorax/error.h"

/* Width of an overlay image for an X-ray w pixels wide: the image, a gap and
 * a vertical colour bar. */
int th_overlay_width(int w);

/* Heat map over the X-ray. xray [H, W] grey, map [H, W] at image resolution;
 * rgb [H, th_overlay_width(W), 3]. The map is shown as max(m, 0) / max(m)
 * (CAM's negative evidence is not drawn) through the turbo colour map,
 * alpha-blended over the grey image with an opacity that grows with the
 * value (0 at 0, TH_OVERLAY_ALPHA_MAX at the maximum), so low values leave the
 * anatomy visible. The bar on the right runs from 0 (bottom) to the maximum
 * (top), fully opaque. */
#define TH_OVERLAY_ALPHA_MAX 0.6f
void th_overlay_rgb(const uint8_t *xray, const float *map, int h, int w, uint8_t *rgb);

/* The turbo colour of a normalised value t in [0, 1] (clamped; 256 levels), rgb[3]. */
void th_overlay_colormap(float t, uint8_t *rgb);

/* th_overlay_rgb written as a PNG (atomic: <path>.tmp renamed). */
int th_overlay_write(const char *path, const uint8_t *xray, const float *map, int h, int w, th_err *err);

/* The same with a caption strip under the overlay: caption (lines separated
 * by '\n', e.g. "Nodule TP\np=0.93 y=1") in white on black, drawn with cairo
 * at the largest size up to 14 px that fits the overlay's width. NULL or ""
 * draws no strip, as th_overlay_write. */
int th_overlay_write_captioned(const char *path, const uint8_t *xray, const float *map, int h, int w,
                               const char *caption, th_err *err);

#endif

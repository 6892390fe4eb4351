/* augment.h - training-time augmentation of chest radiographs.
 *
 * One image's transform (horizontal flip, rotation, scale and shift about the
 * image centre, then brightness and contrast) is drawn from an RNG seeded with
 * (run seed, epoch, dataset row) and nothing else, so an image is augmented
 * the same way whichever rank holds it, in whatever order, and a resumed run
 * sees the same augmentations as an uninterrupted one.
 *
 * The geometric part is one affine warp, applied by inverse mapping with
 * bilinear sampling: every output pixel looks up where it came from in the
 * source. Pixel (x, y) is the point at its centre, x = column, y = row (down),
 * and the centre of rotation and scale is ((w - 1) / 2, (h - 1) / 2), so a
 * flip, a 90-degree turn of a square image and an integer shift move pixel
 * centres onto pixel centres and reproduce the source values exactly.
 *
 * The output is float intensity in [0, 255], not normalised: the caller
 * normalises afterwards exactly as for an unaugmented image.
 *
 * This module does not include config.h; th_plan_input (src/train/plan.c)
 * fills th_augment_params from cfg->data.augment, which has the same fields.
 */
#ifndef THORAX_AUGMENT_H
#define THORAX_AUGMENT_H

#include <stdint.h>

/* What to draw from. All zero except scale_lo = scale_hi = 1 is no
 * augmentation (every drawn transform is the identity). */
typedef struct th_augment_params {
    int hflip;          /* flip with probability 0.5 */
    float rotate_deg;   /* angle uniform in [-rotate_deg, rotate_deg] degrees */
    float shift;        /* dx, dy uniform in [-shift, shift], fractions of w and h */
    float scale_lo;     /* scale uniform in [scale_lo, scale_hi], > 0 */
    float scale_hi;
    float brightness;   /* offset uniform in [-brightness, brightness], fractions of 255 */
    float contrast;     /* factor uniform in [1 - contrast, 1 + contrast], floored at 0 */
} th_augment_params;

/* One image's transform. Set it with th_augment_init (or th_augment_draw),
 * which also fills the derived fields; do not write the fields directly. */
typedef struct th_augment {
    int flip;           /* 1: mirror left-right (before rotation and scale) */
    float angle_deg;    /* counter-clockwise as displayed (rows downwards) */
    float dx, dy;       /* shift right and down, fractions of w and h */
    float scale;        /* > 1 magnifies */
    float brightness;   /* added after contrast, fraction of 255 */
    float contrast;     /* multiplies the distance from mid-grey 127.5 */
    /* Derived by th_augment_init. */
    double inv[4];      /* 2x2 row-major: source offset from centre = inv * (output offset - shift) */
    int warp;           /* 0 when the geometric part is the identity */
} th_augment;

/* The RNG stream of (epoch, row): 0xA << 60 | epoch << 40 | row, a tag no
 * other Thorax stream uses in its top four bits, then 20 bits of epoch and 40
 * of row, so distinct (epoch, row) with 0 <= epoch < 2^20 and
 * 0 <= row < 2^40 never share a stream. Out-of-range values are masked
 * (they wrap onto other (epoch, row) pairs, but never onto other users). */
uint64_t th_augment_stream(int epoch, int64_t row);

/* Sets every field of t and derives the sampling matrix. contrast below 0 is
 * taken as 0; scale must be > 0. */
void th_augment_init(th_augment *t, int flip, float angle_deg, float dx, float dy, float scale,
                     float brightness, float contrast);

/* The identity transform. */
void th_augment_identity(th_augment *t);

/* Draws the transform of dataset row `row` in epoch `epoch` (0-based) from
 * th_rng seeded with (seed, th_augment_stream(epoch, row)). Seven uniforms
 * are always drawn, in the order flip, angle, dx, dy, scale, brightness,
 * contrast, whether or not each is enabled, so switching one augmentation on
 * or widening its range leaves the values of the others unchanged. */
void th_augment_draw(const th_augment_params *p, uint64_t seed, int epoch, int64_t row, th_augment *t);

/* 1 when t changes nothing (its output is the source converted to float). */
int th_augment_is_identity(const th_augment *t);

/* src [h, w] uint8 -> dst [h, w] float in [0, 255]:
 *   dst(x, y) = clamp(contrast * (S(x, y) - 127.5) + 127.5 + 255 * brightness, 0, 255)
 * where S samples src bilinearly at the inverse-mapped point, replicating the
 * edge pixels beyond the border. No allocation; src and dst must not overlap. */
void th_augment_apply(const th_augment *t, const uint8_t *src, int h, int w, float *dst);

#endif

/* augment.c - training-time augmentation: one affine warp plus a tone curve
 * per image, drawn from (seed, epoch, row) only (see thorax/data.h).
 *
 * Border: beyond the source's edge the warp replicates the edge pixel rather
 * than filling a constant. Radiographs do not have one background value: air
 * in the field is black, but collimated (unexposed) margins are white, and
 * many images are cropped through the shoulders or abdomen. A constant fill
 * of 0 would cut a sharp straight edge, of a value unrelated to the image,
 * into the corners of every rotated or shifted image: a feature that comes
 * from the augmentation rather than the patient, which the network can learn
 * to look at instead of the anatomy. Replicating the edge continues whatever
 * the border holds, with no new edge (it smears into short streaks where a
 * structure meets the border). Reflection was the other candidate and is
 * worse here: it mirrors anatomy (a second shoulder, a reversed laterality
 * marker, a second copy of a shortcut tag) into the image. With the
 * intended ranges (a few degrees, a few per cent of shift and scale) the
 * replicated slivers are thin.
 *
 * Note on hflip: mirroring a chest film puts the heart on the right, which
 * almost no real film shows; it is common practice (CheXNet) all the same,
 * off by default, and left to the configuration.
 */
#include "thorax/data.h"

#include <math.h>
#include <stddef.h>

#include "thorax/util.h"

/* Top four bits of every augmentation stream (see th_augment_stream). The
 * phantom uses tags 1-5, the split 5, the model and the shuffle small numbers. */
#define AUG_STREAM_TAG (0xAULL << 60)
#define AUG_EPOCH_BITS 20
#define AUG_ROW_BITS 40

#define AUG_PI 3.14159265358979323846

uint64_t th_augment_stream(int epoch, int64_t row)
{
    uint64_t e = (uint64_t)(uint32_t)epoch & ((1ULL << AUG_EPOCH_BITS) - 1);
    uint64_t r = (uint64_t)row & ((1ULL << AUG_ROW_BITS) - 1);
    return AUG_STREAM_TAG | e << AUG_ROW_BITS | r;
}

void th_augment_init(th_augment *t, int flip, float angle_deg, float dx, float dy, float scale,
                     float brightness, float contrast)
{
    t->flip = flip != 0;
    t->angle_deg = angle_deg;
    t->dx = dx;
    t->dy = dy;
    t->scale = scale;
    t->brightness = brightness;
    t->contrast = contrast > 0 ? contrast : 0;

    /* Forward, about the centre: out = shift + R * S * F * src, with
     * F = diag(+-1, 1), S = scale, and R turning counter-clockwise on screen
     * (rows point down): R = [[c, s], [-s, c]]. The warp needs the inverse,
     * src = F * S^-1 * R^-1 * (out - shift), with R^-1 = [[c, -s], [s, c]]. */
    double a = (double)angle_deg * (AUG_PI / 180.0);
    double c = cos(a), s = sin(a), f = t->flip ? -1.0 : 1.0, k = 1.0 / (double)scale;
    t->inv[0] = f * c * k;
    t->inv[1] = -f * s * k;
    t->inv[2] = s * k;
    t->inv[3] = c * k;
    t->warp = t->flip || angle_deg != 0.0f || dx != 0.0f || dy != 0.0f || scale != 1.0f;
}

void th_augment_identity(th_augment *t) { th_augment_init(t, 0, 0.0f, 0.0f, 0.0f, 1.0f, 0.0f, 1.0f); }

int th_augment_is_identity(const th_augment *t)
{
    return !t->warp && t->brightness == 0.0f && t->contrast == 1.0f;
}

/* r * (2u - 1): uniform in [-r, r) for u in [0, 1); exactly 0 when r is 0. */
static float symmetric(double u, float r) { return r > 0.0f ? (float)((double)r * (2.0 * u - 1.0)) : 0.0f; }

void th_augment_draw(const th_augment_params *p, uint64_t seed, int epoch, int64_t row, th_augment *t)
{
    th_rng rng;
    th_rng_seed(&rng, seed, th_augment_stream(epoch, row));
    /* Always seven draws in this order: each quantity owns its position in
     * the sequence, whatever the others' settings. */
    double u[7];
    for (int i = 0; i < 7; i++) u[i] = th_rng_uniform(&rng);
    float scale = p->scale_lo == p->scale_hi
                      ? p->scale_lo
                      : (float)((double)p->scale_lo + ((double)p->scale_hi - (double)p->scale_lo) * u[4]);
    th_augment_init(t, p->hflip && u[0] < 0.5, symmetric(u[1], p->rotate_deg), symmetric(u[2], p->shift),
                    symmetric(u[3], p->shift), scale, symmetric(u[5], p->brightness),
                    1.0f + symmetric(u[6], p->contrast));
}

/* The warp alone: dst [h, w] = bilinear samples of src [h, w].
 *
 * Source positions run in fixed point with AUG_FRAC_BITS fractional bits:
 * each row starts from a position computed in double and steps by a constant,
 * so a row of w pixels accumulates at most w * 2^-33 pixels of error, and
 * the clamp and the split into pixel and weight are integer operations.
 * Positions are then rounded to a grid of 2^-AUG_GRID_BITS pixels, which
 * makes a position within 2^-(AUG_GRID_BITS+1) of a pixel centre that
 * centre: transforms that map centres onto centres (flips, quarter turns,
 * integer shifts) reproduce the source exactly despite rounding elsewhere
 * (cos 90 degrees is 6e-17; a shift of 0.05f of 100 pixels is 5.00000007).
 * The grid moves any sample by at most 2^-17 pixels in x and in y, at most
 * 2 * 255 * 2^-17 = 0.004 grey levels. */
#define AUG_FRAC_BITS 32
#define AUG_GRID_BITS 16

static inline int64_t to_fixed(double v) { return (int64_t)llround(v * (double)(1LL << AUG_FRAC_BITS)); }

static void warp(const th_augment *t, const uint8_t *src, int h, int w, float *dst)
{
    const double cx = 0.5 * (w - 1), cy = 0.5 * (h - 1);
    const double tx = (double)t->dx * w, ty = (double)t->dy * h;
    const double *m = t->inv;
    const int64_t step_x = to_fixed(m[0]), step_y = to_fixed(m[2]);
    const int64_t xmax = (int64_t)(w - 1) << AUG_FRAC_BITS, ymax = (int64_t)(h - 1) << AUG_FRAC_BITS;
    const int64_t half = 1LL << (AUG_FRAC_BITS - AUG_GRID_BITS - 1);
    const int64_t grid_mask = (1LL << AUG_GRID_BITS) - 1;
    const float grid_unit = 1.0f / (float)(1 << AUG_GRID_BITS);
    for (int y = 0; y < h; y++) {
        /* Source position of output (x, y) is (bx + m0 x, by + m2 x). */
        double oy = y - cy - ty;
        int64_t sx = to_fixed(cx + m[1] * oy - m[0] * (cx + tx));
        int64_t sy = to_fixed(cy + m[3] * oy - m[2] * (cx + tx));
        float *out = dst + (size_t)y * w;
        for (int x = 0; x < w; x++, sx += step_x, sy += step_y) {
            /* Clamping the position to the outermost centres is exactly
             * edge replication for a bilinear sampler. */
            int64_t px = sx < 0 ? 0 : sx > xmax ? xmax : sx;
            int64_t py = sy < 0 ? 0 : sy > ymax ? ymax : sy;
            px = (px + half) >> (AUG_FRAC_BITS - AUG_GRID_BITS);
            py = (py + half) >> (AUG_FRAC_BITS - AUG_GRID_BITS);
            int x0 = (int)(px >> AUG_GRID_BITS), y0 = (int)(py >> AUG_GRID_BITS);
            float fx = (float)(px & grid_mask) * grid_unit, fy = (float)(py & grid_mask) * grid_unit;
            int x1 = x0 < w - 1 ? x0 + 1 : x0, y1 = y0 < h - 1 ? y0 + 1 : y0;
            const uint8_t *r0 = src + (size_t)y0 * w, *r1 = src + (size_t)y1 * w;
            /* a + f (b - a) is exactly a when f is 0 and never leaves [a, b]. */
            float top = r0[x0] + fx * (float)(r0[x1] - r0[x0]);
            float bot = r1[x0] + fx * (float)(r1[x1] - r1[x0]);
            out[x] = top + fy * (bot - top);
        }
    }
}

void th_augment_apply(const th_augment *t, const uint8_t *src, int h, int w, float *dst)
{
    size_t n = (size_t)h * (size_t)w;
    if (t->warp) {
        warp(t, src, h, w, dst);
    } else {
        for (size_t i = 0; i < n; i++) dst[i] = src[i];
    }
    /* A separate pass, skipped when neutral: (v - 127.5) + 127.5 is not v in
     * float for every interpolated v, and identity must be exact. */
    if (t->contrast == 1.0f && t->brightness == 0.0f) return;
    const float gain = t->contrast, offset = 127.5f + 255.0f * t->brightness;
    for (size_t i = 0; i < n; i++) {
        float v = gain * (dst[i] - 127.5f) + offset;
        dst[i] = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
    }
}

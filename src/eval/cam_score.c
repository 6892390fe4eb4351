/* cam_score.c - a map's scores against a lesion mask: the pointing game, the
 * mask's share of the map's mass and the IoU of the map's brightest pixels
 * (see thorax/eval.h). Plain arrays of the image's size; no model involved.
 */
#include "thorax/eval.h"

#include <math.h>
#include <string.h>

static size_t mask_count(const uint8_t *mask, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += mask[i] != 0;
    return c;
}

int th_cam_pointing_hit(const float *map, const uint8_t *mask, int h, int w)
{
    size_t n = (size_t)h * w;
    if (n == 0 || mask_count(mask, n) == 0) return -1;
    size_t best = 0;
    float lo = map[0];
    for (size_t i = 1; i < n; i++) {
        if (map[i] > map[best]) best = i;
        if (map[i] < lo) lo = map[i];
    }
    if (!(map[best] > lo)) return 0;
    return mask[best] != 0;
}

void th_cam_mask_dilate(const uint8_t *mask, int h, int w, int radius, uint8_t *out)
{
    int r = radius > 0 ? radius : 0;
    memset(out, 0, (size_t)h * w);
    /* Stamp a disc around every mask pixel: lesion masks are small, so this
     * costs (mask pixels) x r^2 rather than (all pixels) x r^2. */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            if (!mask[(size_t)y * w + x]) continue;
            int y0 = y - r > 0 ? y - r : 0, y1 = y + r < h - 1 ? y + r : h - 1;
            for (int yy = y0; yy <= y1; yy++) {
                int dy = yy - y;
                int x0 = x - r > 0 ? x - r : 0, x1 = x + r < w - 1 ? x + r : w - 1;
                for (int xx = x0; xx <= x1; xx++)
                    if ((xx - x) * (xx - x) + dy * dy <= r * r) out[(size_t)yy * w + xx] = 1;
            }
        }
}

double th_cam_mask_energy(const float *map, const uint8_t *mask, int h, int w)
{
    size_t n = (size_t)h * w;
    if (n == 0 || mask_count(mask, n) == 0) return -1.0;
    double total = 0.0, inside = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!(map[i] > 0.0f)) continue;
        total += map[i];
        if (mask[i]) inside += map[i];
    }
    return total > 0.0 ? inside / total : 0.0;
}

/* An unsigned key with the order of the floats, so a threshold can be found
 * by bisection over 32 bits, exactly and without sorting a copy. */
static uint32_t order_key(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

static size_t count_at_least(const float *map, size_t n, uint32_t key)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += order_key(map[i]) >= key;
    return c;
}

double th_cam_iou_at(const float *map, const uint8_t *mask, int h, int w, double quantile)
{
    size_t n = (size_t)h * w;
    if (n == 0 || !(quantile >= 0.0 && quantile < 1.0) || mask_count(mask, n) == 0) return -1.0;
    size_t k = (size_t)ceil((1.0 - quantile) * (double)n - 1e-9);
    if (k < 1) k = 1;
    /* The largest key t with at least k pixels at or above it. */
    uint64_t lo = 0, hi = (uint64_t)1 << 32;
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (count_at_least(map, n, (uint32_t)mid) >= k) lo = mid;
        else hi = mid;
    }
    size_t inter = 0, uni = 0;
    for (size_t i = 0; i < n; i++) {
        int in_map = order_key(map[i]) >= (uint32_t)lo, in_mask = mask[i] != 0;
        inter += in_map && in_mask;
        uni += in_map || in_mask;
    }
    return (double)inter / (double)uni;
}

double th_cam_iou_lesion(const float *map, const uint8_t *mask, int h, int w)
{
    size_t n = (size_t)h * w, area = mask_count(mask, n);
    if (area == 0 || area >= n) return -1.0;
    return th_cam_iou_at(map, mask, h, w, 1.0 - (double)area / (double)n);
}

/* test_augment.c - training-time augmentation (thorax/data.h).
 *
 * The warp is checked where the answer is known exactly: the identity, flips,
 * quarter turns and integer shifts move pixel centres onto pixel centres and
 * must reproduce source values bit for bit; a constant image stays constant
 * under any warp (edge replication adds no border); bilinear sampling of a
 * ramp is exact up to rounding. The tone curve is checked on hand values.
 * Then the property training relies on: a row's transform depends only on
 * (seed, epoch, row), so splitting the rows over ranks, in any order, gives
 * every row the output a single rank gives it. Finally the draws stay inside
 * the configured ranges and cover them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "thorax/data.h"
#include "thorax/util.h"

/* A random uint8 image [h, w] from a fixed seed: asymmetric in every way. */
static uint8_t *random_image(int h, int w, uint64_t seed)
{
    uint8_t *img = malloc((size_t)h * w);
    th_rng r;
    th_rng_seed(&r, seed, 7);
    for (int i = 0; i < h * w; i++) img[i] = (uint8_t)th_rng_below(&r, 256);
    return img;
}

/* Number of pixels where dst [n] differs from the expected values exp [n]. */
static int count_diff(const float *dst, const float *exp, int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++) bad += dst[i] != exp[i];
    return bad;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static void test_identity(void)
{
    const int h = 37, w = 53;
    uint8_t *src = random_image(h, w, 1);
    float *dst = malloc(sizeof(float) * h * w), *exp = malloc(sizeof(float) * h * w);
    for (int i = 0; i < h * w; i++) exp[i] = src[i];

    th_augment t;
    th_augment_identity(&t);
    CHECK(th_augment_is_identity(&t));
    th_augment_apply(&t, src, h, w, dst);
    CHECK(count_diff(dst, exp, h * w) == 0);

    /* Nothing enabled: every draw is the identity. */
    th_augment_params none = {0, 0.0f, 0.0f, 1.0f, 1.0f, 0.0f, 0.0f};
    for (int row = 0; row < 50; row++) {
        th_augment_draw(&none, 42, 3, row, &t);
        CHECK(th_augment_is_identity(&t));
    }
    th_augment_apply(&t, src, h, w, dst);
    CHECK(count_diff(dst, exp, h * w) == 0);
    free(src);
    free(dst);
    free(exp);
}

static void test_flip(void)
{
    /* Odd and even widths: the centre column maps onto itself or not. */
    for (int w = 52; w <= 53; w++) {
        const int h = 31;
        uint8_t *src = random_image(h, w, 2), *once = malloc((size_t)h * w);
        float *dst = malloc(sizeof(float) * h * w), *exp = malloc(sizeof(float) * h * w);
        th_augment t;
        th_augment_init(&t, 1, 0.0f, 0.0f, 0.0f, 1.0f, 0.0f, 1.0f);
        CHECK(!th_augment_is_identity(&t));
        th_augment_apply(&t, src, h, w, dst);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) exp[y * w + x] = src[y * w + (w - 1 - x)];
        CHECK(count_diff(dst, exp, h * w) == 0);

        /* Flipping the flipped image gives the source back, exactly. */
        for (int i = 0; i < h * w; i++) once[i] = (uint8_t)dst[i];
        th_augment_apply(&t, once, h, w, dst);
        for (int i = 0; i < h * w; i++) exp[i] = src[i];
        CHECK(count_diff(dst, exp, h * w) == 0);
        free(src);
        free(once);
        free(dst);
        free(exp);
    }
}

static void test_quarter_turns(void)
{
    for (int n = 6; n <= 7; n++) {
        uint8_t *src = random_image(n, n, 3);
        float *dst = malloc(sizeof(float) * n * n), *exp = malloc(sizeof(float) * n * n);
        th_augment t;

        /* +90 degrees is counter-clockwise on screen: the top-right corner
         * goes to the top-left, so out[y][x] = src[x][n-1-y]. */
        th_augment_init(&t, 0, 90.0f, 0.0f, 0.0f, 1.0f, 0.0f, 1.0f);
        th_augment_apply(&t, src, n, n, dst);
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) exp[y * n + x] = src[x * n + (n - 1 - y)];
        CHECK(count_diff(dst, exp, n * n) == 0);

        /* -90: out[y][x] = src[n-1-x][y]. */
        th_augment_init(&t, 0, -90.0f, 0.0f, 0.0f, 1.0f, 0.0f, 1.0f);
        th_augment_apply(&t, src, n, n, dst);
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) exp[y * n + x] = src[(n - 1 - x) * n + y];
        CHECK(count_diff(dst, exp, n * n) == 0);

        /* 180: the array reversed. */
        th_augment_init(&t, 0, 180.0f, 0.0f, 0.0f, 1.0f, 0.0f, 1.0f);
        th_augment_apply(&t, src, n, n, dst);
        for (int i = 0; i < n * n; i++) exp[i] = src[n * n - 1 - i];
        CHECK(count_diff(dst, exp, n * n) == 0);

        /* Flip, then +90: out[y][x] = flipped[x][n-1-y] = src[x][y], the transpose. */
        th_augment_init(&t, 1, 90.0f, 0.0f, 0.0f, 1.0f, 0.0f, 1.0f);
        th_augment_apply(&t, src, n, n, dst);
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) exp[y * n + x] = src[x * n + y];
        CHECK(count_diff(dst, exp, n * n) == 0);
        free(src);
        free(dst);
        free(exp);
    }
}

static void test_integer_shift(void)
{
    /* 3/50 and 2/30 are not binary fractions: the shift in pixels is only
     * nearly an integer, and must still land on pixel centres. Beyond the
     * border the edge pixel is replicated. */
    const int h = 30, w = 50, sx = 3, sy = -2;
    uint8_t *src = random_image(h, w, 4);
    float *dst = malloc(sizeof(float) * h * w), *exp = malloc(sizeof(float) * h * w);
    th_augment t;
    th_augment_init(&t, 0, 0.0f, (float)sx / w, (float)sy / h, 1.0f, 0.0f, 1.0f);
    th_augment_apply(&t, src, h, w, dst);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            exp[y * w + x] = src[clampi(y - sy, 0, h - 1) * w + clampi(x - sx, 0, w - 1)];
    CHECK(count_diff(dst, exp, h * w) == 0);
    free(src);
    free(dst);
    free(exp);
}

static void test_scale(void)
{
    const int n = 64;
    uint8_t *src = malloc((size_t)n * n);
    float *dst = malloc(sizeof(float) * n * n);
    th_augment t;

    /* A constant image stays constant under any warp: edge replication adds
     * no border of another value. */
    memset(src, 77, (size_t)n * n);
    const float scales[] = {2.0f, 0.5f, 0.9f};
    for (int k = 0; k < 3; k++) {
        th_augment_init(&t, k == 1, 10.0f * k, 0.05f, -0.03f, scales[k], 0.0f, 1.0f);
        th_augment_apply(&t, src, n, n, dst);
        int bad = 0;
        for (int i = 0; i < n * n; i++) bad += dst[i] != 77.0f;
        CHECK(bad == 0);
    }

    /* Scale 2 of a horizontal ramp v = 2x about the centre c = 31.5: the
     * output samples the source at c + (x - c) / 2, so out = x + c. */
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) src[y * n + x] = (uint8_t)(2 * x);
    th_augment_init(&t, 0, 0.0f, 0.0f, 0.0f, 2.0f, 0.0f, 1.0f);
    th_augment_apply(&t, src, n, n, dst);
    double worst = 0;
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) worst = fmax(worst, fabs(dst[y * n + x] - (x + 31.5)));
    CHECK_NEAR(worst, 0.0, 1e-4);
    free(src);
    free(dst);
}

static void test_tone(void)
{
    const uint8_t src[6] = {0, 100, 127, 200, 255, 128};
    float dst[6];
    th_augment t;

    /* v' = clamp(1.5 (v - 127.5) + 127.5 + 0.1 * 255, 0, 255). */
    th_augment_init(&t, 0, 0.0f, 0.0f, 0.0f, 1.0f, 0.1f, 1.5f);
    th_augment_apply(&t, src, 2, 3, dst);
    const float exp_a[6] = {0.0f, 111.75f, 152.25f, 255.0f, 255.0f, 153.75f};
    for (int i = 0; i < 6; i++) CHECK_NEAR(dst[i], exp_a[i], 1e-4);

    /* v' = 0.5 (v - 127.5) + 127.5 - 0.2 * 255: lower contrast, darker. */
    th_augment_init(&t, 0, 0.0f, 0.0f, 0.0f, 1.0f, -0.2f, 0.5f);
    th_augment_apply(&t, src, 2, 3, dst);
    const float exp_b[6] = {12.75f, 62.75f, 76.25f, 112.75f, 140.25f, 76.75f};
    for (int i = 0; i < 6; i++) CHECK_NEAR(dst[i], exp_b[i], 1e-4);

    /* A negative contrast factor would invert the image: it is floored at 0,
     * a flat mid-grey plus the brightness. */
    th_augment_init(&t, 0, 0.0f, 0.0f, 0.0f, 1.0f, 0.0f, -0.5f);
    CHECK(t.contrast == 0.0f);
    th_augment_apply(&t, src, 2, 3, dst);
    for (int i = 0; i < 6; i++) CHECK_NEAR(dst[i], 127.5, 1e-6);
}

static int same_transform(const th_augment *a, const th_augment *b)
{
    return a->flip == b->flip && a->angle_deg == b->angle_deg && a->dx == b->dx && a->dy == b->dy &&
           a->scale == b->scale && a->brightness == b->brightness && a->contrast == b->contrast;
}

static const th_augment_params busy = {1, 10.0f, 0.05f, 0.9f, 1.1f, 0.1f, 0.2f};

static void test_determinism(void)
{
    const int h = 40, w = 48;
    uint8_t *src = random_image(h, w, 5);
    float *d1 = malloc(sizeof(float) * h * w), *d2 = malloc(sizeof(float) * h * w);
    th_augment a, b;

    th_augment_draw(&busy, 42, 7, 123456789012LL, &a);
    th_augment_draw(&busy, 42, 7, 123456789012LL, &b);
    CHECK(same_transform(&a, &b));
    th_augment_apply(&a, src, h, w, d1);
    th_augment_apply(&b, src, h, w, d2);
    CHECK(memcmp(d1, d2, sizeof(float) * h * w) == 0);

    /* Another row, epoch or seed: another transform (angles are continuous,
     * so equal ones would mean the same stream). */
    th_augment_draw(&busy, 42, 7, 123456789013LL, &b);
    CHECK(a.angle_deg != b.angle_deg && a.dx != b.dx);
    th_augment_draw(&busy, 42, 8, 123456789012LL, &b);
    CHECK(a.angle_deg != b.angle_deg && a.dx != b.dx);
    th_augment_draw(&busy, 43, 7, 123456789012LL, &b);
    CHECK(a.angle_deg != b.angle_deg && a.dx != b.dx);

    /* Streams: the tag, then epoch and row side by side, never overlapping. */
    CHECK(th_augment_stream(0, 0) == 0xA000000000000000ULL);
    CHECK(th_augment_stream(1, 0) == 0xA000010000000000ULL);
    CHECK(th_augment_stream(0, (1LL << 40) - 1) == 0xA00000FFFFFFFFFFULL);
    CHECK(th_augment_stream((1 << 20) - 1, (1LL << 40) - 1) == 0xAFFFFFFFFFFFFFFFULL);
    CHECK(th_augment_stream(1, 0) != th_augment_stream(0, 1LL << 39));

    /* Enabling one augmentation leaves the others' values unchanged. */
    th_augment_params shift_only = {0, 0.0f, 0.05f, 1.0f, 1.0f, 0.0f, 0.0f};
    th_augment_draw(&shift_only, 42, 7, 99, &a);
    th_augment_draw(&busy, 42, 7, 99, &b);
    CHECK(a.dx == b.dx && a.dy == b.dy);
    CHECK(a.angle_deg == 0.0f && a.scale == 1.0f && !a.flip);
    free(src);
    free(d1);
    free(d2);
}

/* The done-when of the issue: each row's augmented image is the same whether
 * one rank processes all rows in order or the rows are split over ranks,
 * each taking its rows in its own order, the ranks interleaved in time. */
static void test_ranks(void)
{
    enum { N = 60, H = 32, W = 32, EPOCHS = 3 };
    const size_t hw = (size_t)H * W;
    uint8_t *data = malloc(N * hw);
    for (int i = 0; i < N; i++) {
        uint8_t *img = random_image(H, W, 100 + (uint64_t)i);
        memcpy(data + i * hw, img, hw);
        free(img);
    }
    float *ref = malloc(sizeof(float) * N * hw), *out = malloc(sizeof(float) * N * hw);
    th_rng r;
    th_rng_seed(&r, 9, 9);
    for (int epoch = 0; epoch < EPOCHS; epoch++) {
        /* One rank, rows in order. */
        th_augment t;
        for (int row = 0; row < N; row++) {
            th_augment_draw(&busy, 42, epoch, row, &t);
            th_augment_apply(&t, data + row * hw, H, W, ref + row * hw);
        }

        /* Two and three ranks: an epoch-dependent shuffle dealt round-robin,
         * each rank walking its share backwards, one row per rank in turn. */
        for (int ranks = 2; ranks <= 3; ranks++) {
            int order[N];
            for (int i = 0; i < N; i++) order[i] = i;
            th_rng_shuffle(&r, order, N);
            memset(out, 0xff, sizeof(float) * N * hw);
            int per = N / ranks;
            for (int k = per - 1; k >= 0; k--)
                for (int rank = 0; rank < ranks; rank++) {
                    int row = order[k * ranks + rank];
                    th_augment_draw(&busy, 42, epoch, row, &t);
                    th_augment_apply(&t, data + row * hw, H, W, out + row * hw);
                }
            CHECK(memcmp(ref, out, sizeof(float) * N * hw) == 0);
        }
    }
    free(data);
    free(ref);
    free(out);
}

static void test_ranges(void)
{
    const th_augment_params *p = &busy;
    enum { N = 10000 };
    double lo[6], hi[6];
    for (int k = 0; k < 6; k++) lo[k] = 1e30, hi[k] = -1e30;
    int flips = 0, outside = 0;
    for (int i = 0; i < N; i++) {
        th_augment t;
        th_augment_draw(p, 2024, i % 17, i, &t);
        double v[6] = {t.angle_deg, t.dx, t.dy, t.scale, t.brightness, t.contrast};
        for (int k = 0; k < 6; k++) {
            if (v[k] < lo[k]) lo[k] = v[k];
            if (v[k] > hi[k]) hi[k] = v[k];
        }
        flips += t.flip;
        outside += t.angle_deg < -p->rotate_deg || t.angle_deg > p->rotate_deg;
        outside += t.dx < -p->shift || t.dx > p->shift || t.dy < -p->shift || t.dy > p->shift;
        outside += t.scale < p->scale_lo || t.scale > p->scale_hi;
        outside += t.brightness < -p->brightness || t.brightness > p->brightness;
        outside += t.contrast < 1.0f - p->contrast || t.contrast > 1.0f + p->contrast;
    }
    CHECK(outside == 0);
    /* Coverage: with 10,000 uniform draws the extremes are within about
     * 1/10,000 of the range of each bound; allow 1%. */
    const double bound_lo[6] = {-10, -0.05, -0.05, 0.9, -0.1, 0.8};
    const double bound_hi[6] = {10, 0.05, 0.05, 1.1, 0.1, 1.2};
    for (int k = 0; k < 6; k++) {
        double tol = 0.01 * (bound_hi[k] - bound_lo[k]);
        CHECK_NEAR(lo[k], bound_lo[k], tol);
        CHECK_NEAR(hi[k], bound_hi[k], tol);
    }
    /* Binomial(10000, 0.5): standard deviation 50; allow 5 of them. */
    CHECK_NEAR(flips, N / 2, 250);
}

int main(void)
{
    test_identity();
    test_flip();
    test_quarter_turns();
    test_integer_shift();
    test_scale();
    test_tone();
    test_determinism();
    test_ranks();
    test_ranges();
    return th_test_summary("test_augment");
}

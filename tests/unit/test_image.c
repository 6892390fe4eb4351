/* test_image.c - PNG decoding and resizing (thorax/data.h).
 *
 * Decoding: PNGs of every colour type and depth are written here and read
 * back as luminance, checked against values worked by hand (BT.601 weights
 * with rounding, 16-bit reduced with rounding, alpha ignored). Damaged
 * files - truncated, a text file named .png, a JPEG, a corrupt CRC - are
 * errors that name the file.
 * Resizing: area averaging 4x4 -> 2x2 gives the block means; 3x3 -> 2x2
 * weighs partly covered pixels by their coverage, as computed by hand;
 * bilinear 2x2 -> 4x4 gives the hand values of half-pixel alignment; a
 * constant image stays constant at any size; an integer shrink keeps the
 * mean exactly; one axis shrinking while the other grows equals doing the
 * axes one after the other.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "png_fixture.h"
#include "testutil.h"
#include "thorax/data.h"
#include "thorax/render.h"

static char dir[] = "/tmp/thorax-image-XXXXXX";

static const char *path_of(const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

/* Decodes name and checks its size and pixels against want[h*w]. */
static void expect_pixels(const char *name, int w, int h, const uint8_t *want)
{
    th_image img;
    th_err err;
    int rc = th_image_read_png(path_of(name), &img, &err);
    CHECK(rc == 0);
    if (rc) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    CHECK(img.w == w && img.h == h);
    int bad = 0;
    for (int i = 0; img.w == w && img.h == h && i < w * h; i++)
        if (img.px[i] != want[i] && bad++ < 4)
            fprintf(stderr, "  %s pixel %d is %d, expected %d\n", name, i, img.px[i], want[i]);
    CHECK(bad == 0);
    int pw = 0, ph = 0;
    CHECK(th_image_png_size(path_of(name), &pw, &ph, &err) == 0 && pw == w && ph == h);
    th_image_free(&img);
}

static void test_gray8(void)
{
    uint8_t px[6] = {0, 1, 127, 128, 254, 255};
    th_err err;
    CHECK(th_png_write_gray(path_of("g8.png"), px, 2, 3, &err) == 0);
    expect_pixels("g8.png", 3, 2, px);
}

static void test_gray16(void)
{
    /* v * 255 / 65535 rounded: 128 -> 0.498 -> 0, 129 -> 0.502 -> 1, 32768 ->
     * 127.502 -> 128, 257 k -> k exactly. Truncating (v >> 8) would give 0, 0, 128, k. */
    uint16_t v[6] = {0, 128, 129, 32768, 257 * 100, 65535};
    uint8_t be[12], want[6] = {0, 0, 1, 128, 100, 255};
    fixture_be16(v, 6, be);
    CHECK(fixture_write_png(path_of("g16.png"), 3, 2, PNG_COLOR_TYPE_GRAY, 16, 0, be, 6, NULL, 0) == 0);
    expect_pixels("g16.png", 3, 2, want);
}

static void test_rgb_rgba(void)
{
    /* 0.299 R + 0.587 G + 0.114 B: red 76.245, green 149.685, blue 29.07,
     * (200,100,50) 124.2, white 255, gray (90,90,90) 90. */
    uint8_t rgb[18] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 200, 100, 50, 255, 255, 255, 90, 90, 90};
    uint8_t want[6] = {76, 150, 29, 124, 255, 90};
    CHECK(fixture_write_png(path_of("rgb.png"), 3, 2, PNG_COLOR_TYPE_RGB, 8, 0, rgb, 9, NULL, 0) == 0);
    expect_pixels("rgb.png", 3, 2, want);

    /* The same colours with alpha from 0 to 255: alpha is ignored. */
    uint8_t rgba[24];
    for (int i = 0; i < 6; i++) {
        memcpy(rgba + 4 * i, rgb + 3 * i, 3);
        rgba[4 * i + 3] = (uint8_t)(i * 51);
    }
    CHECK(fixture_write_png(path_of("rgba.png"), 3, 2, PNG_COLOR_TYPE_RGB_ALPHA, 8, 0, rgba, 12, NULL, 0) == 0);
    expect_pixels("rgba.png", 3, 2, want);

    /* 16-bit RGB: one rounding after the weights. 65535 red -> 76.245 -> 76;
     * (257*200, 257*100, 257*50) -> 124.2 -> 124; (1000, 30000, 60000) ->
     * (299000 + 17610000 + 6840000) * 255 / 65535000 = 96.30 -> 96. */
    uint16_t v[9] = {65535, 0, 0, 257 * 200, 257 * 100, 257 * 50, 1000, 30000, 60000};
    uint8_t be[18], want16[3] = {76, 124, 96};
    fixture_be16(v, 9, be);
    CHECK(fixture_write_png(path_of("rgb16.png"), 3, 1, PNG_COLOR_TYPE_RGB, 16, 0, be, 18, NULL, 0) == 0);
    expect_pixels("rgb16.png", 3, 1, want16);

    /* Gray + alpha. */
    uint8_t ga[6] = {77, 0, 200, 128, 3, 255}, want_ga[3] = {77, 200, 3};
    CHECK(fixture_write_png(path_of("ga.png"), 3, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, ga, 6, NULL, 0) == 0);
    expect_pixels("ga.png", 3, 1, want_ga);
}

static void test_palette_bits_interlace(void)
{
    png_color pal[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}};
    uint8_t idx[4] = {0, 1, 2, 3}, want[4] = {76, 150, 29, 255};
    CHECK(fixture_write_png(path_of("pal.png"), 4, 1, PNG_COLOR_TYPE_PALETTE, 8, 0, idx, 4, pal, 4) == 0);
    expect_pixels("pal.png", 4, 1, want);

    /* 1-bit gray: 0 -> 0, 1 -> 255; 10 pixels in two bytes, MSB first. */
    uint8_t bits[2] = {0xA5, 0x80}, want1[10] = {255, 0, 255, 0, 0, 255, 0, 255, 255, 0};
    CHECK(fixture_write_png(path_of("bit1.png"), 10, 1, PNG_COLOR_TYPE_GRAY, 1, 0, bits, 2, NULL, 0) == 0);
    expect_pixels("bit1.png", 10, 1, want1);

    /* Adam7 interlacing, on an image big enough to use all seven passes. */
    enum { W = 19, H = 13 };
    uint8_t px[W * H];
    for (int i = 0; i < W * H; i++) px[i] = (uint8_t)(i * 37 % 256);
    CHECK(fixture_write_png(path_of("adam7.png"), W, H, PNG_COLOR_TYPE_GRAY, 8, 1, px, W, NULL, 0) == 0);
    expect_pixels("adam7.png", W, H, px);
}

/* Both readers must fail on path with an error naming it and saying why. */
static void expect_bad(const char *name, const char *why_read, const char *why_size)
{
    th_image img = {.w = 1, .h = 1, .px = NULL};
    th_err err = {{0}};
    int w = -1, h = -1;
    CHECK(th_image_read_png(path_of(name), &img, &err) == -1);
    CHECK(strstr(err.msg, path_of(name)) != NULL && strstr(err.msg, why_read) != NULL);
    if (!strstr(err.msg, why_read)) fprintf(stderr, "  read %s: %s\n", name, err.msg);
    CHECK(img.px == NULL && img.w == 0 && img.h == 0);
    if (!why_size) return;
    CHECK(th_image_png_size(path_of(name), &w, &h, &err) == -1);
    CHECK(strstr(err.msg, path_of(name)) != NULL && strstr(err.msg, why_size) != NULL);
    if (!strstr(err.msg, why_size)) fprintf(stderr, "  size %s: %s\n", name, err.msg);
}

static void write_bytes(const char *name, const void *data, size_t n)
{
    FILE *f = fopen(path_of(name), "wb");
    CHECK(f && fwrite(data, 1, n, f) == n);
    if (f) fclose(f);
}

static uint8_t *slurp(const char *name, size_t *n)
{
    FILE *f = fopen(path_of(name), "rb");
    uint8_t *buf = malloc(1 << 16);
    *n = f ? fread(buf, 1, 1 << 16, f) : 0;
    if (f) fclose(f);
    return buf;
}

static void test_damaged(void)
{
    enum { S = 48 };
    uint8_t noise[S * S];
    unsigned seed = 7;
    for (int i = 0; i < S * S; i++) {
        seed = seed * 1103515245u + 12345u;
        noise[i] = (uint8_t)(seed >> 16);
    }
    th_err err;
    CHECK(th_png_write_gray(path_of("noise.png"), noise, S, S, &err) == 0);
    expect_pixels("noise.png", S, S, noise);
    size_t n;
    uint8_t *png = slurp("noise.png", &n);
    CHECK(n > 1000);

    write_bytes("truncated.png", png, n / 2);
    expect_bad("truncated.png", "truncated", NULL);
    write_bytes("short.png", png, 20);
    expect_bad("short.png", "truncated", "truncated");
    write_bytes("sig.png", png, 5);
    expect_bad("sig.png", "truncated", "truncated");

    /* A flipped byte in the pixel data: its chunk CRC no longer matches. */
    png[n / 2] ^= 0x55;
    write_bytes("crc.png", png, n);
    expect_bad("crc.png", "damaged PNG", NULL);
    free(png);

    const char *text = "image,patient_id\nthis is not an image\n";
    write_bytes("text.png", text, strlen(text));
    expect_bad("text.png", "not a PNG file", "not a PNG file");
    const uint8_t jpeg[16] = {0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0};
    write_bytes("photo.png", jpeg, sizeof jpeg);
    expect_bad("photo.png", "JPEG", "JPEG");
    write_bytes("empty.png", "", 0);
    expect_bad("empty.png", "empty", "empty");
    expect_bad("missing.png", "No such file", "No such file");
}

/* TH_IMAGE_MAX_SIDE, just under and just over, in width (a real file) and
 * height (the header patched: refused before the pixels are looked at), by
 * the header check and both decoders, which share one wording. */
static void test_size_limit(void)
{
    enum { M = TH_IMAGE_MAX_SIDE };
    uint8_t *row = calloc(M + 1, 1);
    th_image img;
    th_err err;
    int w, h;
    CHECK(fixture_write_png(path_of("wide.png"), M, 1, PNG_COLOR_TYPE_GRAY, 8, 0, row, M, NULL, 0) == 0);
    CHECK(th_image_png_size(path_of("wide.png"), &w, &h, &err) == 0 && w == M && h == 1);
    CHECK(th_image_read_png(path_of("wide.png"), &img, &err) == 0 && img.w == M && img.h == 1);
    th_image_free(&img);
    size_t n;
    uint8_t *png = slurp("wide.png", &n);
    CHECK(th_image_decode_png(png, n, "mem.png", &img, &err) == 0 && img.w == M);
    th_image_free(&img);
    png[20] = (uint8_t)((M + 1) >> 24), png[21] = (uint8_t)((M + 1) >> 16);
    png[22] = (uint8_t)((M + 1) >> 8), png[23] = (uint8_t)(M + 1);
    write_bytes("tall.png", png, n);
    expect_bad("tall.png", "8192x8193 pixels is larger than the limit of 8192 pixels a side",
               "8192x8193 pixels is larger than the limit of 8192 pixels a side");
    CHECK(th_image_decode_png(png, n, "mem.png", &img, &err) == -1 &&
          strstr(err.msg, "mem.png: 8192x8193 pixels is larger than the limit"));
    free(png);

    CHECK(fixture_write_png(path_of("wider.png"), M + 1, 1, PNG_COLOR_TYPE_GRAY, 8, 0, row, M + 1, NULL, 0) == 0);
    expect_bad("wider.png", "8193x1 pixels is larger than the limit of 8192", "8193x1 pixels is larger than");
    free(row);
}

/* A chunk before IHDR: libpng would decode it, the header check refuses it;
 * both must say the same (found by tests/fuzz/fuzz_png.c). */
static void test_header_first(void)
{
    uint8_t px[4] = {1, 2, 3, 4};
    th_err err;
    CHECK(th_png_write_gray(path_of("ok.png"), px, 2, 2, &err) == 0);
    size_t n;
    uint8_t *png = slurp("ok.png", &n);
    uint8_t *odd = malloc(n + 12);
    static const uint8_t chunk[12] = {0, 0, 0, 0, 'i', 'H', 'D', 'R', 0x8c, 0xf6, 0x1e, 0x60};
    memcpy(odd, png, 8);
    memcpy(odd + 8, chunk, 12);
    memcpy(odd + 20, png + 8, n - 8);
    write_bytes("late-ihdr.png", odd, n + 12);
    expect_bad("late-ihdr.png", "does not start with a header chunk", "does not start with a header chunk");
    free(odd);
    free(png);
}

/* ------------------------------------------------------------------------ */

static int resize_is(const uint8_t *src, int sw, int sh, int dw, int dh, const uint8_t *want)
{
    uint8_t *dst = malloc((size_t)dw * dh);
    th_err err;
    int ok = th_image_resize(src, sw, sh, dst, dw, dh, &err) == 0;
    for (int i = 0; ok && i < dw * dh; i++)
        if (dst[i] != want[i]) {
            fprintf(stderr, "  %dx%d -> %dx%d: pixel %d is %d, expected %d\n", sw, sh, dw, dh, i, dst[i], want[i]);
            ok = 0;
        }
    free(dst);
    return ok;
}

static void test_area(void)
{
    const uint8_t src[16] = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150};
    /* Block means: (0+10+40+50)/4 = 25, (20+30+60+70)/4 = 45, 105, 125. */
    CHECK(resize_is(src, 4, 4, 2, 2, (const uint8_t[]){25, 45, 105, 125}));

    /* 3x3 -> 2x2: output pixel 0 covers source [0, 1.5) on each axis, so
     * weights 2/3 and 1/3; in 2-D (4 a + 2 b + 2 d + e) / 9 and mirrored:
     *   (4*0 + 2*100 + 2*50 + 150) / 9 = 50
     *   (2*100 + 4*200 + 150 + 2*250) / 9 = 183.33 -> 183
     *   (2*50 + 150 + 4*10 + 2*20) / 9 = 36.67 -> 37
     *   (150 + 2*250 + 2*20 + 4*30) / 9 = 90 */
    const uint8_t s3[9] = {0, 100, 200, 50, 150, 250, 10, 20, 30};
    CHECK(resize_is(s3, 3, 3, 2, 2, (const uint8_t[]){50, 183, 37, 90}));

    /* 5 -> 2 on one row: [0, 2.5) and [2.5, 5): (10+20+0.5*30)/2.5 = 18,
     * (0.5*30+40+50)/2.5 = 42. */
    CHECK(resize_is((const uint8_t[]){10, 20, 30, 40, 50}, 5, 1, 2, 1, (const uint8_t[]){18, 42}));

    /* An integer shrink keeps the mean exactly (up to rounding of each pixel). */
    enum { N = 64 };
    uint8_t big[N * N], small[16 * 16];
    long sum = 0, sum_small = 0;
    for (int i = 0; i < N * N; i++) sum += big[i] = (uint8_t)(i * 7 % 253);
    th_err err;
    CHECK(th_image_resize(big, N, N, small, 16, 16, &err) == 0);
    for (int i = 0; i < 256; i++) sum_small += small[i];
    CHECK_NEAR((double)sum / (N * N), (double)sum_small / 256, 0.5);
}

static void test_bilinear(void)
{
    /* 2x2 -> 4x4: output centres at -0.25, 0.25, 0.75, 1.25 in source
     * coordinates, held to [0, 1]: weights (1,0), (.75,.25), (.25,.75), (0,1).
     * Rows: [0 100] -> 0 25 75 100; [200 40] -> 200 160 80 40. Columns mix
     * them the same way: .75/.25 gives 50 58.75 76.25 85, .25/.75 gives
     * 150 126.25 78.75 55. */
    const uint8_t src[4] = {0, 100, 200, 40};
    const uint8_t want[16] = {0, 25, 75, 100, 50, 59, 76, 85, 150, 126, 79, 55, 200, 160, 80, 40};
    CHECK(resize_is(src, 2, 2, 4, 4, want));

    /* A 1-pixel source grows to a constant. */
    CHECK(resize_is((const uint8_t[]){93}, 1, 1, 3, 2, (const uint8_t[]){93, 93, 93, 93, 93, 93}));
}

static void test_constant_and_mixed(void)
{
    const int sizes[][4] = {{37, 23, 64, 11}, {100, 100, 7, 7}, {5, 5, 256, 256}, {224, 224, 256, 256},
                            {1024, 3, 256, 9}, {13, 13, 13, 13}};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        int sw = sizes[t][0], sh = sizes[t][1], dw = sizes[t][2], dh = sizes[t][3];
        uint8_t *src = malloc((size_t)sw * sh), *want = malloc((size_t)dw * dh);
        memset(src, 173, (size_t)sw * sh);
        memset(want, 173, (size_t)dw * dh);
        CHECK(resize_is(src, sw, sh, dw, dh, want));
        free(src);
        free(want);
    }

    /* 4 wide x 2 high -> 2 wide x 4 high: x shrinks by area, y grows
     * bilinearly; the same as doing x (4x2 -> 2x2) then y (2x2 -> 2x4). */
    const uint8_t src[8] = {0, 20, 100, 140, 200, 220, 60, 20};
    uint8_t mid[4], want[8];
    th_err err;
    CHECK(th_image_resize(src, 4, 2, mid, 2, 2, &err) == 0);
    CHECK(mid[0] == 10 && mid[1] == 120 && mid[2] == 210 && mid[3] == 40);
    CHECK(th_image_resize(mid, 2, 2, want, 2, 4, &err) == 0);
    CHECK(resize_is(src, 4, 2, 2, 4, want));
    CHECK(resize_is(src, 4, 2, 2, 4, (const uint8_t[]){10, 120, 60, 100, 160, 60, 210, 40}));

    uint8_t one;
    CHECK(th_image_resize(src, 0, 2, &one, 1, 1, &err) == -1);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_gray8();
    test_gray16();
    test_rgb_rgba();
    test_palette_bits_interlace();
    test_damaged();
    test_size_limit();
    test_header_first();
    test_area();
    test_bilinear();
    test_constant_and_mixed();
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return th_test_summary("image");
}

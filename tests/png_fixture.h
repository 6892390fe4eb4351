/* png_fixture.h - writing test PNGs of any colour type and bit depth.
 *
 * th_png_write_gray writes 8-bit gray only; the decoder must also be tried
 * on 16-bit, RGB, RGBA, gray+alpha, palette, 1-bit and interlaced files.
 * Shared by tests/unit/test_image.c and tests/tools/make_test_pngs.c, which
 * generate these at test time so that no binary file is committed.
 */
#ifndef THORAX_PNG_FIXTURE_H
#define THORAX_PNG_FIXTURE_H

#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>

/* Writes samples (rows of w * channels samples, packed as libpng wants them:
 * 16-bit big-endian, 1-bit eight to a byte) with color_type and depth;
 * palette[n_palette] for PNG_COLOR_TYPE_PALETTE. At most 1024 rows.
 * Returns 0 or -1. */
static inline int fixture_write_png(const char *path, int w, int h, int color_type, int depth, int interlace,
                                    const uint8_t *samples, size_t rowbytes, const png_color *palette,
                                    int n_palette)
{
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (h > 1024 || !png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(fp);
        return -1;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color_type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, n_palette);
    png_write_info(png, info);
    png_bytep rows[1024];
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)(samples + (size_t)y * rowbytes);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return fclose(fp) ? -1 : 0;
}

/* 16-bit samples v[n] into big-endian bytes out[2n]. */
static inline void fixture_be16(const uint16_t *v, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = (uint8_t)(v[i] >> 8);
        out[2 * i + 1] = (uint8_t)(v[i] & 0xFF);
    }
}

#endif

/* png.c - 8-bit grayscale and RGB PNG writers on libpng (see thorax/render.h).
 *
 * libpng reports errors by longjmp; the handlers below catch its message so
 * that it reaches the caller through th_err instead of stderr (library code
 * never prints), and keep its warnings quiet for the same reason.
 */
#include "thorax/render.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char msg[256];
} png_failure;

static void on_png_error(png_structp png, png_const_charp msg)
{
    png_failure *f = png_get_error_ptr(png);
    snprintf(f->msg, sizeof f->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) {}

/* Encodes rows into an open file; returns 0, or -1 with f->msg set. The
 * volatile-free body keeps setjmp's rules simple: nothing that changes after
 * setjmp is read after the jump. */
static int encode(FILE *fp, const uint8_t *data, int h, int w, int channels, png_failure *f)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, f, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        snprintf(f->msg, sizeof f->msg, "out of memory");
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(data + (size_t)y * (size_t)w * (size_t)channels));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

static int write_png(const char *path, const uint8_t *data, int h, int w, int channels, th_err *err)
{
    if (h < 1 || w < 1) return th_errf(err, "%s: cannot write a %dx%d image", path, h, w);
    char tmp[4096];
    if (th_tmp_path(path, tmp, sizeof tmp, err)) return -1;
    FILE *fp = fopen(tmp, "wb");
    if (!fp) return th_errf(err, "cannot create %s: %s", tmp, strerror(errno));
    png_failure f = {{0}};
    int rc = encode(fp, data, h, w, channels, &f);
    int e = 0;
    if (fflush(fp) || ferror(fp)) e = errno ? errno : EIO;
    if (fclose(fp) && !e) e = errno ? errno : EIO;
    if (rc || e) {
        unlink(tmp);
        if (rc) return th_errf(err, "cannot write PNG %s: %s", path, f.msg);
        return th_errf(err, "cannot write %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path)) {
        e = errno;
        unlink(tmp);
        return th_errf(err, "cannot rename %s to %s: %s", tmp, path, strerror(e));
    }
    return 0;
}

int th_png_write_gray(const char *path, const uint8_t *img, int h, int w, th_err *err)
{
    return write_png(path, img, h, w, 1, err);
}

int th_png_write_rgb(const char *path, const uint8_t *rgb, int h, int w, th_err *err)
{
    return write_png(path, rgb, h, w, 3, err);
}

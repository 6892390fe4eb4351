/* image.c - PNG decoding to luminance and area/bilinear resizing (see
 * thorax/data.h).
 *
 * libpng reports errors by longjmp. Each libpng call that can fail runs in a
 * small function of its own that calls setjmp and holds no state of its own,
 * so nothing is left in a clobbered local after a jump; the caller owns every
 * buffer and frees it on every path. libpng's messages are caught into the
 * caller's th_err (library code never prints) and its warnings are dropped.
 */
#include "thorax/data.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_impl.h"

/* ------------------------------------------------------------------------
 * Decoding.
 */

/* Where libpng's bytes come from: an open file, or a buffer in memory. */
typedef struct {
    FILE *fp;                   /* NULL: read from mem */
    const uint8_t *mem;
    size_t len, pos;
    char msg[256];
} png_source;

static void on_png_error(png_structp png, png_const_charp msg)
{
    png_source *src = png_get_error_ptr(png);
    snprintf(src->msg, sizeof src->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) {}

/* libpng's own reader says only "Read Error" on a short file. */
static void on_png_read(png_structp png, png_bytep data, size_t len)
{
    png_source *src = png_get_io_ptr(png);
    if (src->fp) {
        if (fread(data, 1, len, src->fp) != len)
            png_error(png, ferror(src->fp) ? "read error" : "the file ends early (truncated)");
        return;
    }
    if (len > src->len - src->pos) png_error(png, "the file ends early (truncated)");
    memcpy(data, src->mem + src->pos, len);
    src->pos += len;
}

/* The first n bytes of a file that should be a PNG: 0, or an error naming
 * what the file is instead. */
static int check_signature(const char *path, const uint8_t *b, size_t n, th_err *err)
{
    if (n >= 8 && !png_sig_cmp(b, 0, 8)) return 0;
    if (n == 0) return th_errf(err, "%s: empty file, not a PNG", path);
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        return th_errf(err, "%s: not a PNG file (it is a JPEG: convert it to PNG first)", path);
    if (n < 8 && !png_sig_cmp(b, 0, n)) return th_errf(err, "%s: truncated PNG (only %zu bytes)", path, n);
    return th_errf(err, "%s: not a PNG file", path);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The first n (<= PNG_HEADER) bytes of a file that should be a PNG: the
 * signature (8), then the IHDR chunk's length (4), type (4), width and
 * height. The one check of a header, for the size query and both decoders:
 * the PNG standard puts IHDR first, and libpng, which tolerates chunks before
 * it, would otherwise decode files that ingest's header pass refuses. */
#define PNG_HEADER 24
static int check_header(const char *path, const uint8_t *b, size_t n, int *w, int *h, th_err *err)
{
    if (check_signature(path, b, n < 8 ? n : 8, err)) return -1;
    if (n < PNG_HEADER) return th_errf(err, "%s: truncated PNG (the header is incomplete)", path);
    if (memcmp(b + 12, "IHDR", 4)) return th_errf(err, "%s: corrupt PNG (it does not start with a header chunk)", path);
    uint32_t width = be32(b + 16), height = be32(b + 20);
    if (width == 0 || height == 0) return th_errf(err, "%s: corrupt PNG (size %ux%u)", path, width, height);
    if (width > TH_IMAGE_MAX_SIDE || height > TH_IMAGE_MAX_SIDE)
        return th_errf(err, "%s: %ux%u pixels is larger than the limit of %d pixels a side", path, width, height,
                       TH_IMAGE_MAX_SIDE);
    *w = (int)width;
    *h = (int)height;
    return 0;
}

/* Reads the first PNG_HEADER bytes of fp (fewer in a short file) into b. */
static int read_header(FILE *fp, const char *path, uint8_t *b, size_t *n, th_err *err)
{
    *n = fread(b, 1, PNG_HEADER, fp);
    if (ferror(fp)) return th_errf(err, "cannot read %s: %s", path, strerror(errno));
    return 0;
}

int th_image_png_size(const char *path, int *w, int *h, th_err *err)
{
    uint8_t b[PNG_HEADER];
    size_t n;
    FILE *fp = fopen(path, "rb");
    if (!fp) return th_errf(err, "cannot open %s: %s", path, strerror(errno));
    int rc = read_header(fp, path, b, &n, err);
    fclose(fp);
    return rc ? rc : check_header(path, b, n, w, h, err);
}

/* The decoded row layout after the transformations below. */
typedef struct {
    int w, h, channels, depth, interlaced;
    size_t rowbytes;
} png_layout;

/* Reads the header and asks libpng for 8- or 16-bit samples of 1 to 4
 * channels (gray, gray+alpha, RGB, RGBA): palettes become RGB and 1/2/4-bit
 * gray becomes 8-bit; the luminance and 16-to-8 reduction are done here. */
static int read_layout(png_structp png, png_infop info, png_layout *lay)
{
    if (setjmp(png_jmpbuf(png))) return -1;
    png_read_info(png, info);
    int color = png_get_color_type(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8) png_set_expand_gray_1_2_4_to_8(png);
    lay->interlaced = png_set_interlace_handling(png) > 1;
    png_read_update_info(png, info);
    lay->w = (int)png_get_image_width(png, info);
    lay->h = (int)png_get_image_height(png, info);
    lay->channels = png_get_channels(png, info);
    lay->depth = png_get_bit_depth(png, info);
    lay->rowbytes = png_get_rowbytes(png, info);
    return 0;
}

/* One row of samples to luminance. num is 1000 Y in the source's scale, so
 * that both the BT.601 weights and the 16-to-8 reduction round only once. */
static void row_to_luminance(const uint8_t *row, const png_layout *lay, uint8_t *out)
{
    int bytes = lay->depth / 8, step = lay->channels * bytes, color = lay->channels >= 3;
    for (int x = 0; x < lay->w; x++) {
        const uint8_t *p = row + (size_t)x * step;
        uint32_t c[3];
        for (int k = 0; k < (color ? 3 : 1); k++)
            c[k] = bytes == 2 ? (uint32_t)p[2 * k] << 8 | p[2 * k + 1] : p[k];
        uint64_t num = color ? 299u * c[0] + 587u * c[1] + 114u * c[2] : 1000u * c[0];
        out[x] = (uint8_t)(bytes == 2 ? (num * 255 + 32767500) / 65535000 : (num + 500) / 1000);
    }
}

void th_image_luminance_row(const uint8_t *row, int w, int channels, int depth, uint8_t *out)
{
    png_layout lay = {.w = w, .channels = channels, .depth = depth};
    row_to_luminance(row, &lay, out);
}

/* Decodes the rows into px [h, w]. A plain image is read a row at a time
 * into row (one decoded row), so that its samples, up to 8 bytes a pixel for
 * 16-bit RGBA, never take a whole image of memory; an Adam7-interlaced one
 * needs every row at once, and comes in rows (h pointers into one buffer). */
static int read_pixels(png_structp png, const png_layout *lay, png_bytep *rows, uint8_t *row, uint8_t *px)
{
    if (setjmp(png_jmpbuf(png))) return -1;
    if (rows) {
        png_read_image(png, rows);
        for (int y = 0; y < lay->h; y++) row_to_luminance(rows[y], lay, px + (size_t)y * lay->w);
    } else {
        for (int y = 0; y < lay->h; y++) {
            png_read_row(png, row, NULL);
            row_to_luminance(row, lay, px + (size_t)y * lay->w);
        }
    }
    png_read_end(png, NULL);
    return 0;
}

/* Decodes from src, whose header check_header has passed and whose first 8
 * bytes (the signature) have been consumed. name is the file in messages. */
static int decode_png(png_source *src, const char *name, th_image *img, th_err *err)
{
    snprintf(src->msg, sizeof src->msg, "out of memory");
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, src, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_layout lay = {0};
    uint8_t *raw = NULL;
    png_bytep *rows = NULL;
    int rc = png && info ? 0 : -1;
    if (rc == 0) {
        png_set_read_fn(png, src, on_png_read);
        png_set_sig_bytes(png, 8);
        /* check_header has refused larger sizes already: this is a guard. */
        png_set_user_limits(png, TH_IMAGE_MAX_SIDE, TH_IMAGE_MAX_SIDE);
        rc = read_layout(png, info, &lay);
    }
    if (rc == 0) {
        raw = malloc(lay.interlaced ? lay.rowbytes * (size_t)lay.h : lay.rowbytes);
        rows = lay.interlaced ? malloc(sizeof *rows * (size_t)lay.h) : NULL;
        img->px = malloc((size_t)lay.w * (size_t)lay.h);
        if (!raw || (lay.interlaced && !rows) || !img->px) {
            snprintf(src->msg, sizeof src->msg, "out of memory for %dx%d pixels", lay.w, lay.h);
            rc = -1;
        }
    }
    if (rc == 0) {
        for (int y = 0; rows && y < lay.h; y++) rows[y] = raw + (size_t)y * lay.rowbytes;
        rc = read_pixels(png, &lay, rows, raw, img->px);
    }
    if (rc == 0) {
        img->depth = lay.depth;
        img->channels = lay.channels;
        img->w = lay.w;
        img->h = lay.h;
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    free(raw);
    if (rc) {
        th_image_free(img);
        return th_errf(err, "%s: damaged PNG: %s", name, src->msg);
    }
    return 0;
}

int th_image_read_png(const char *path, th_image *img, th_err *err)
{
    memset(img, 0, sizeof *img);
    uint8_t b[PNG_HEADER];
    size_t n;
    int w, h;
    FILE *fp = fopen(path, "rb");
    if (!fp) return th_errf(err, "cannot open %s: %s", path, strerror(errno));
    int rc = read_header(fp, path, b, &n, err);
    if (rc == 0) rc = check_header(path, b, n, &w, &h, err);
    if (rc == 0 && fseek(fp, 8, SEEK_SET)) rc = th_errf(err, "cannot read %s: %s", path, strerror(errno));
    if (rc == 0) {
        png_source src = {.fp = fp};
        rc = decode_png(&src, path, img, err);
    }
    fclose(fp);
    return rc;
}

int th_image_decode_png(const void *data, size_t len, const char *name, th_image *img, th_err *err)
{
    memset(img, 0, sizeof *img);
    int w, h;
    if (check_header(name, data, len < PNG_HEADER ? len : PNG_HEADER, &w, &h, err)) return -1;
    png_source src = {.mem = data, .len = len, .pos = 8};
    return decode_png(&src, name, img, err);
}

void th_image_free(th_image *img)
{
    free(img->px);
    memset(img, 0, sizeof *img);
}

/* ------------------------------------------------------------------------
 * Resizing: one 1-D kernel per axis, applied rows first, then columns.
 * Both filters are separable, so the 2-D result is exact: an output pixel's
 * box covers a source pixel by (x overlap) * (y overlap).
 */

typedef struct {
    int taps;           /* weights per output pixel (the most any needs) */
    int *first;         /* [n_out] first source index */
    int *count;         /* [n_out] source pixels used, at most taps */
    double *w;          /* [n_out, taps] weights, summing to 1 */
} axis_kernel;

static void kernel_free(axis_kernel *k)
{
    free(k->first);
    free(k->count);
    free(k->w);
}

static int kernel_init(axis_kernel *k, int n_in, int n_out)
{
    double scale = (double)n_in / n_out;
    k->taps = n_out < n_in ? (int)ceil(scale) + 1 : 2;
    k->first = malloc(sizeof *k->first * (size_t)n_out);
    k->count = malloc(sizeof *k->count * (size_t)n_out);
    k->w = calloc((size_t)n_out * (size_t)k->taps, sizeof *k->w);
    if (!k->first || !k->count || !k->w) return -1;   /* the caller frees */
    for (int i = 0; i < n_out; i++) {
        double *w = k->w + (size_t)i * k->taps;
        if (n_out < n_in) {
            /* Area: output pixel i covers source interval [a, b). */
            double a = i * scale, b = (i + 1) * scale, sum = 0;
            int j0 = (int)floor(a), j1 = (int)ceil(b);
            if (j1 > n_in) j1 = n_in;
            if (j1 - j0 > k->taps) j1 = j0 + k->taps;
            k->first[i] = j0;
            k->count[i] = j1 - j0;
            for (int j = j0; j < j1; j++) {
                double lo = a > j ? a : j, hi = b < j + 1 ? b : j + 1;
                w[j - j0] = hi > lo ? hi - lo : 0;
                sum += w[j - j0];
            }
            for (int t = 0; t < k->count[i]; t++) w[t] /= sum;
        } else {
            /* Bilinear: the centre of output pixel i in source coordinates,
             * held inside the first and last source centres. */
            double x = (i + 0.5) * scale - 0.5;
            if (x < 0) x = 0;
            if (x > n_in - 1) x = n_in - 1;
            int j0 = (int)floor(x);
            double f = x - j0;
            k->first[i] = j0;
            k->count[i] = j0 + 1 < n_in ? 2 : 1;
            w[0] = k->count[i] == 2 ? 1 - f : 1;
            w[1] = k->count[i] == 2 ? f : 0;
        }
    }
    return 0;
}

int th_image_resize(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh, th_err *err)
{
    if (sw < 1 || sh < 1 || dw < 1 || dh < 1) return th_errf(err, "cannot resize %dx%d to %dx%d", sw, sh, dw, dh);
    if (sw == dw && sh == dh) {
        memcpy(dst, src, (size_t)sw * (size_t)sh);
        return 0;
    }
    axis_kernel kx = {0}, ky = {0};
    double *tmp = malloc(sizeof *tmp * (size_t)sh * (size_t)dw);
    double *acc = malloc(sizeof *acc * (size_t)dw);
    int rc = tmp && acc && !kernel_init(&kx, sw, dw) && !kernel_init(&ky, sh, dh) ? 0 : -1;
    if (rc) {
        th_errf(err, "out of memory resizing %dx%d to %dx%d", sw, sh, dw, dh);
    } else {
        /* Rows: tmp [sh, dw]. */
        for (int y = 0; y < sh; y++) {
            const uint8_t *s = src + (size_t)y * sw;
            double *t = tmp + (size_t)y * dw;
            for (int x = 0; x < dw; x++) {
                const double *w = kx.w + (size_t)x * kx.taps;
                const uint8_t *p = s + kx.first[x];
                double v = 0;
                for (int k = 0; k < kx.count[x]; k++) v += w[k] * p[k];
                t[x] = v;
            }
        }
        /* Columns: each output row is a weighted sum of whole tmp rows. */
        for (int y = 0; y < dh; y++) {
            const double *w = ky.w + (size_t)y * ky.taps;
            memset(acc, 0, sizeof *acc * (size_t)dw);
            for (int k = 0; k < ky.count[y]; k++) {
                const double *t = tmp + (size_t)(ky.first[y] + k) * dw;
                for (int x = 0; x < dw; x++) acc[x] += w[k] * t[x];
            }
            uint8_t *d = dst + (size_t)y * dw;
            for (int x = 0; x < dw; x++) {
                double v = floor(acc[x] + 0.5);
                d[x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    kernel_free(&kx);
    kernel_free(&ky);
    free(acc);
    free(tmp);
    return rc;
}

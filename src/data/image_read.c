/* image_read.c - an image file of any supported format, told apart by its
 * first bytes rather than its name (see thorax/data.h): collections rename
 * freely (Kermany's JPEGs end in .jpeg, exports call PNGs .jpg).
 */
#include "thorax/data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "thorax/util.h"
#include "dicom.h"

typedef enum { FMT_PNG, FMT_JPEG, FMT_OTHER } image_format;

static const uint8_t PNG_SIGNATURE[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

static image_format format_of(const uint8_t *b, size_t n)
{
    if (n >= 8 && !memcmp(b, PNG_SIGNATURE, 8)) return FMT_PNG;
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return FMT_JPEG;
    return FMT_OTHER;
}

static int unknown_format(const char *name, size_t n, th_err *err)
{
    if (n == 0) return th_errf(err, "%s: empty file, not an image", name);
    return th_errf(err, "%s: not a PNG or JPEG file", name);
}

/* The format of the file at path, from its first 8 bytes. A file shorter
 * than a signature reads as FMT_OTHER, except a cut PNG signature, which
 * the PNG decoder names as truncated. */
static int sniff(const char *path, image_format *fmt, th_err *err)
{
    uint8_t b[8];
    FILE *fp = fopen(path, "rb");
    if (!fp) return th_errf(err, "cannot open %s: %s", path, strerror(errno));
    size_t n = fread(b, 1, sizeof b, fp);
    int bad = ferror(fp);
    fclose(fp);
    if (bad) return th_errf(err, "cannot read %s", path);
    *fmt = format_of(b, n);
    if (*fmt == FMT_OTHER && n > 0 && n < 8 && !memcmp(b, PNG_SIGNATURE, n)) *fmt = FMT_PNG;
    return *fmt == FMT_OTHER ? unknown_format(path, n, err) : 0;
}

int th_image_size(const char *path, int *w, int *h, th_err *err)
{
    image_format fmt;
    if (sniff(path, &fmt, err)) return -1;
    if (fmt == FMT_PNG) return th_image_png_size(path, w, h, err);
    size_t len;
    char *data = th_read_file(path, &len, err);
    if (!data) return -1;
    int rc = th_image_jpeg_size_mem(data, len, path, w, h, err);
    free(data);
    return rc;
}

int th_image_read(const char *path, th_image *img, th_err *err)
{
    memset(img, 0, sizeof *img);
    image_format fmt;
    if (sniff(path, &fmt, err)) return -1;
    if (fmt == FMT_PNG) return th_image_read_png(path, img, err);
    size_t len;
    char *data = th_read_file(path, &len, err);
    if (!data) return -1;
    int rc = th_image_decode_jpeg(data, len, path, img, err);
    free(data);
    return rc;
}

int th_image_decode(const void *data, size_t len, const char *name, th_image *img, th_err *err)
{
    memset(img, 0, sizeof *img);
    switch (format_of(data, len)) {
    case FMT_PNG: return th_image_decode_png(data, len, name, img, err);
    case FMT_JPEG: return th_image_decode_jpeg(data, len, name, img, err);
    default: return unknown_format(name, len, err);
    }
}

int th_image_read_any(const char *path, int dicom_window, th_image *img, th_err *err)
{
    if (th_dicom_is_dicom(path)) return th_dicom_read(path, dicom_window, img, err);
    return th_image_read(path, img, err);
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcasecmp(s + n - k, suffix);
}

int th_image_is_image_file(const char *path)
{
    if (has_suffix(path, ".png") || has_suffix(path, ".jpg") || has_suffix(path, ".jpeg") || th_dicom_is_dicom(path))
        return 1;
    uint8_t b[8];
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    size_t n = fread(b, 1, sizeof b, fp);
    fclose(fp);
    return format_of(b, n) != FMT_OTHER;
}

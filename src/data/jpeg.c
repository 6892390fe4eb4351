/* jpeg.c - JPEG decoding to luminance through libjpeg-turbo's TurboJPEG API
 * (see thorax/data.h).
 *
 * The file is read whole (JPEGs of radiographs are a few MiB at most) and
 * handed to TurboJPEG, which keeps libjpeg's longjmp inside itself and
 * reports by return value, so no setjmp is needed here. Gray JPEGs decode
 * to their own samples; every colour one is decoded to RGB and reduced to
 * luminance by the PNG decoder's code (image_impl.h), so a colour image
 * gives the same gray whichever of the two files it came in.
 *
 * What is refused by name rather than decoded to something wrong: CMYK and
 * YCCK (print separations, not radiographs), and sample precisions other
 * than 8 bits (12-bit JPEG, which this libjpeg-turbo build cannot decode).
 * libjpeg's warnings (a truncated file, corrupt entropy data) are errors:
 * libjpeg would fill the rest of the image with grey and carry on.
 */
#include "thorax/data.h"

#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "image_impl.h"
#include "thorax/util.h"

/* Whether m is a start-of-frame marker (SOF0-SOF15 but DHT, JPG and DAC). */
static int is_sof(uint8_t m) { return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC; }

/* The sample precision of the first frame header, or -1 when the markers
 * before the first scan hold none (TurboJPEG then says what is wrong).
 * Walked here because libjpeg's own message for 12 bits ("Unsupported JPEG
 * data precision 12") does not say what to do. */
static int frame_precision(const uint8_t *b, size_t n)
{
    size_t i = 2;
    while (i + 1 < n) {
        if (b[i] != 0xFF) return -1;
        uint8_t m = b[i + 1];
        if (m == 0xFF) {                    /* fill byte before a marker */
            i++;
            continue;
        }
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) {   /* TEM, RSTn, SOI: no length */
            i += 2;
            continue;
        }
        if (m == 0xDA || m == 0xD9 || i + 3 >= n) return -1;     /* a scan or the end before any frame */
        if (is_sof(m)) return i + 4 < n ? b[i + 4] : -1;
        i += 2 + ((size_t)b[i + 2] << 8 | b[i + 3]);
    }
    return -1;
}

/* The header: size and colour space, with every refusal. */
static int read_header(tjhandle tj, const uint8_t *data, size_t len, const char *name, int *w, int *h, int *cs,
                       th_err *err)
{
    int precision = frame_precision(data, len), subsamp;
    if (precision > 0 && precision != 8)
        return th_errf(err, "%s: %d-bit JPEG is not supported (only 8-bit; convert it to 16-bit PNG)", name,
                       precision);
    if (len > (unsigned long)-1 || tjDecompressHeader3(tj, data, (unsigned long)len, w, h, &subsamp, cs))
        return th_errf(err, "%s: damaged JPEG: %s", name, tjGetErrorStr2(tj));
    if (*cs == TJCS_CMYK || *cs == TJCS_YCCK)
        return th_errf(err, "%s: %s JPEG is not supported (only gray and colour)", name,
                       *cs == TJCS_CMYK ? "CMYK" : "YCCK");
    if (*w < 1 || *h < 1) return th_errf(err, "%s: corrupt JPEG (size %dx%d)", name, *w, *h);
    if (*w > TH_IMAGE_MAX_SIDE || *h > TH_IMAGE_MAX_SIDE)
        return th_errf(err, "%s: %dx%d pixels is larger than the limit of %d pixels a side", name, *w, *h,
                       TH_IMAGE_MAX_SIDE);
    return 0;
}

/* Header only (size) when img is NULL, else the pixels too. */
static int decode_jpeg(const uint8_t *data, size_t len, const char *name, int *w, int *h, th_image *img,
                       th_err *err)
{
    tjhandle tj = tjInitDecompress();
    if (!tj) return th_errf(err, "%s: cannot start the JPEG decoder: %s", name, tjGetErrorStr2(NULL));
    int cs, rc = read_header(tj, data, len, name, w, h, &cs, err);
    if (rc || !img) {
        tjDestroy(tj);
        return rc;
    }
    int gray = cs == TJCS_GRAY, channels = gray ? 1 : 3;
    uint8_t *raw = malloc((size_t)*w * (size_t)*h * (size_t)channels);
    img->px = gray ? raw : malloc((size_t)*w * (size_t)*h);
    if (!raw || !img->px) {
        rc = th_errf(err, "%s: out of memory for %dx%d pixels", name, *w, *h);
    } else if (tjDecompress2(tj, data, (unsigned long)len, raw, *w, 0, *h, gray ? TJPF_GRAY : TJPF_RGB,
                             TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS)) {
        rc = th_errf(err, "%s: damaged JPEG: %s", name, tjGetErrorStr2(tj));
    } else if (!gray) {
        for (int y = 0; y < *h; y++)
            th_image_luminance_row(raw + (size_t)y * *w * 3, *w, 3, 8, img->px + (size_t)y * *w);
    }
    tjDestroy(tj);
    if (!gray) free(raw);
    if (rc) {
        th_image_free(img);
        return rc;
    }
    img->w = *w;
    img->h = *h;
    img->depth = 8;
    img->channels = channels;
    return 0;
}

int th_image_decode_jpeg(const void *data, size_t len, const char *name, th_image *img, th_err *err)
{
    memset(img, 0, sizeof *img);
    int w, h;
    return decode_jpeg(data, len, name, &w, &h, img, err);
}

int th_image_jpeg_size_mem(const void *data, size_t len, const char *name, int *w, int *h, th_err *err)
{
    return decode_jpeg(data, len, name, w, h, NULL, err);
}

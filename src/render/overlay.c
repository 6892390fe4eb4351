/* overlay.c - a heat map over a grey image, as a PNG with an optional
 * caption strip (see thorax/render.h).
 *
 * The blend and the colour bar are computed pixel by pixel; only the caption
 * needs fonts, and is drawn with cairo, as the plots are.
 */
#include "thorax/render.h"

#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Turbo (Anton Mikhailov, Google 2019), its published 256-entry sRGB table
 * rounded to 8 bits as 0xRRGGBB: perceptually smoother than jet, with the
 * blue-to-red reading radiologists expect of a heat map. (The popular
 * degree-5 polynomial fit is off by up to 32 levels at the ends.) */
void th_overlay_colormap(float t, uint8_t *rgb)
{
    static const uint32_t turbo[256] = {
        0x30123b, 0x321543, 0x33184a, 0x341b51, 0x351e58, 0x36215f, 0x372466, 0x38276d,
        0x392a73, 0x3a2d79, 0x3b2f80, 0x3c3286, 0x3d358b, 0x3e3891, 0x3f3b97, 0x3f3e9c,
        0x4040a2, 0x4143a7, 0x4146ac, 0x4249b1, 0x424bb5, 0x434eba, 0x4451bf, 0x4454c3,
        0x4456c7, 0x4559cb, 0x455ccf, 0x455ed3, 0x4661d6, 0x4664da, 0x4666dd, 0x4669e0,
        0x466be3, 0x476ee6, 0x4771e9, 0x4773eb, 0x4776ee, 0x4778f0, 0x477bf2, 0x467df4,
        0x4680f6, 0x4682f8, 0x4685fa, 0x4687fb, 0x458afc, 0x458cfd, 0x448ffe, 0x4391fe,
        0x4294ff, 0x4196ff, 0x4099ff, 0x3e9bfe, 0x3d9efe, 0x3ba0fd, 0x3aa3fc, 0x38a5fb,
        0x37a8fa, 0x35abf8, 0x33adf7, 0x31aff5, 0x2fb2f4, 0x2eb4f2, 0x2cb7f0, 0x2ab9ee,
        0x28bceb, 0x27bee9, 0x25c0e7, 0x23c3e4, 0x22c5e2, 0x20c7df, 0x1fc9dd, 0x1ecbda,
        0x1ccdd8, 0x1bd0d5, 0x1ad2d2, 0x1ad4d0, 0x19d5cd, 0x18d7ca, 0x18d9c8, 0x18dbc5,
        0x18ddc2, 0x18dec0, 0x18e0bd, 0x19e2bb, 0x19e3b9, 0x1ae4b6, 0x1ce6b4, 0x1de7b2,
        0x1fe9af, 0x20eaac, 0x22ebaa, 0x25eca7, 0x27eea4, 0x2aefa1, 0x2cf09e, 0x2ff19b,
        0x32f298, 0x35f394, 0x38f491, 0x3cf58e, 0x3ff68a, 0x43f787, 0x46f884, 0x4af880,
        0x4ef97d, 0x52fa7a, 0x55fa76, 0x59fb73, 0x5dfc6f, 0x61fc6c, 0x65fd69, 0x69fd66,
        0x6dfe62, 0x71fe5f, 0x75fe5c, 0x79fe59, 0x7dff56, 0x80ff53, 0x84ff51, 0x88ff4e,
        0x8bff4b, 0x8fff49, 0x92ff47, 0x96fe44, 0x99fe42, 0x9cfe40, 0x9ffd3f, 0xa1fd3d,
        0xa4fc3c, 0xa7fc3a, 0xa9fb39, 0xacfb38, 0xaffa37, 0xb1f936, 0xb4f836, 0xb7f735,
        0xb9f635, 0xbcf534, 0xbef434, 0xc1f334, 0xc3f134, 0xc6f034, 0xc8ef34, 0xcbed34,
        0xcdec34, 0xd0ea34, 0xd2e935, 0xd4e735, 0xd7e535, 0xd9e436, 0xdbe236, 0xdde037,
        0xdfdf37, 0xe1dd37, 0xe3db38, 0xe5d938, 0xe7d739, 0xe9d539, 0xebd339, 0xecd13a,
        0xeecf3a, 0xefcd3a, 0xf1cb3a, 0xf2c93a, 0xf4c73a, 0xf5c53a, 0xf6c33a, 0xf7c13a,
        0xf8be39, 0xf9bc39, 0xfaba39, 0xfbb838, 0xfbb637, 0xfcb336, 0xfcb136, 0xfdae35,
        0xfdac34, 0xfea933, 0xfea732, 0xfea431, 0xfea130, 0xfe9e2f, 0xfe9b2d, 0xfe992c,
        0xfe962b, 0xfe932a, 0xfe9029, 0xfd8d27, 0xfd8a26, 0xfc8725, 0xfc8423, 0xfb8122,
        0xfb7e21, 0xfa7b1f, 0xf9781e, 0xf9751d, 0xf8721c, 0xf76f1a, 0xf66c19, 0xf56918,
        0xf46617, 0xf36315, 0xf26014, 0xf15d13, 0xf05b12, 0xef5811, 0xed5510, 0xec530f,
        0xeb500e, 0xea4e0d, 0xe84b0c, 0xe7490c, 0xe5470b, 0xe4450a, 0xe2430a, 0xe14109,
        0xdf3f08, 0xdd3d08, 0xdc3b07, 0xda3907, 0xd83706, 0xd63506, 0xd43305, 0xd23105,
        0xd02f05, 0xce2d04, 0xcc2b04, 0xca2a04, 0xc82803, 0xc52603, 0xc32503, 0xc12302,
        0xbe2102, 0xbc2002, 0xb91e02, 0xb71d02, 0xb41b01, 0xb21a01, 0xaf1801, 0xac1701,
        0xa91601, 0xa71401, 0xa41301, 0xa11201, 0x9e1001, 0x9b0f01, 0x980e01, 0x950d01,
        0x920b01, 0x8e0a01, 0x8b0902, 0x880802, 0x850702, 0x810602, 0x7e0502, 0x7a0403,
    };
    float x = t > 0.0f ? (t < 1.0f ? t : 1.0f) : 0.0f;
    uint32_t c = turbo[(int)lroundf(x * 255.0f)];
    rgb[0] = (uint8_t)(c >> 16);
    rgb[1] = (uint8_t)(c >> 8);
    rgb[2] = (uint8_t)c;
}

/* Layout of an overlay row: image, black gap, colour bar. */
static int bar_gap(int w) { return w / 64 > 2 ? w / 64 : 2; }
static int bar_width(int w) { return w / 20 > 6 ? w / 20 : 6; }

int th_overlay_width(int w) { return w + bar_gap(w) + bar_width(w); }

void th_overlay_rgb(const uint8_t *xray, const float *map, int h, int w, uint8_t *rgb)
{
    uint8_t lut[256][3];
    for (int i = 0; i < 256; i++) th_overlay_colormap((float)i / 255.0f, lut[i]);
    size_t n = (size_t)h * w;
    float mx = 0.0f;
    for (size_t i = 0; i < n; i++) mx = fmaxf(mx, map[i]);
    int ow = th_overlay_width(w), gap = bar_gap(w);
    for (int y = 0; y < h; y++) {
        uint8_t *row = rgb + (size_t)y * ow * 3;
        for (int x = 0; x < w; x++) {
            float m = map[(size_t)y * w + x];
            float v = mx > 0.0f && m > 0.0f ? m / mx : 0.0f;
            /* Opacity rises with the value and saturates at half the maximum:
             * the hot region reads clearly, the cold anatomy stays visible. */
            float alpha = TH_OVERLAY_ALPHA_MAX * fminf(1.0f, 2.0f * v);
            const uint8_t *c = lut[(int)lroundf(v * 255.0f)];
            float g = xray[(size_t)y * w + x];
            for (int k = 0; k < 3; k++) row[3 * x + k] = (uint8_t)lroundf((1.0f - alpha) * g + alpha * c[k]);
        }
        memset(row + 3 * w, 0, (size_t)gap * 3);
        int level = h > 1 ? (int)lroundf(255.0f * (float)(h - 1 - y) / (float)(h - 1)) : 255;
        for (int x = w + gap; x < ow; x++) memcpy(row + 3 * x, lut[level], 3);
    }
}

int th_overlay_write(const char *path, const uint8_t *xray, const float *map, int h, int w, th_err *err)
{
    return th_overlay_write_captioned(path, xray, map, h, w, NULL, err);
}

#define CAPTION_MAX_LINES 4
#define CAPTION_MAX_PX 14.0
#define CAPTION_MIN_PX 6.0

/* Splits a caption into at most CAPTION_MAX_LINES lines (in buf). */
static int caption_lines(const char *caption, char *buf, size_t cap, const char **line)
{
    snprintf(buf, cap, "%s", caption);
    int n = 0;
    for (char *p = buf; n < CAPTION_MAX_LINES;) {
        line[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl) break;
        *nl = '\0';
        p = nl + 1;
    }
    return n;
}

/* The font size at which every line fits in width px (with a margin). */
static double caption_font(cairo_t *cr, const char *const *line, int n, int width)
{
    double size = CAPTION_MAX_PX;
    cairo_set_font_size(cr, size);
    for (int k = 0; k < n; k++) {
        cairo_text_extents_t e;
        cairo_text_extents(cr, line[k], &e);
        double room = width - 4.0;
        if (e.x_advance > room) size = fmin(size, CAPTION_MAX_PX * room / e.x_advance);
    }
    return fmax(size, CAPTION_MIN_PX);
}

/* Draws the caption lines under the overlay rgb [h, ow, 3] into a cairo
 * surface and reads it back as rgb [h + strip, ow, 3] (malloc'd). */
static uint8_t *caption_render(const uint8_t *rgb, int h, int ow, const char *caption, int *out_h)
{
    char buf[512];
    const char *line[CAPTION_MAX_LINES];
    int n = caption_lines(caption, buf, sizeof buf, line);
    cairo_surface_t *probe = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
    cairo_t *pcr = cairo_create(probe);
    cairo_select_font_face(pcr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    double size = caption_font(pcr, line, n, ow);
    cairo_destroy(pcr);
    cairo_surface_destroy(probe);

    int line_h = (int)ceil(1.25 * size), th = h + n * line_h + 3;
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, ow, th);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return NULL;
    }
    /* RGB24 keeps a pixel in a native-endian 32-bit word as 0x00RRGGBB. */
    cairo_surface_flush(s);
    unsigned char *data = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    memset(data, 0, (size_t)stride * th);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < ow; x++) {
            const uint8_t *p = rgb + ((size_t)y * ow + x) * 3;
            uint32_t v = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
            memcpy(data + (size_t)y * stride + 4 * (size_t)x, &v, 4);
        }
    cairo_surface_mark_dirty(s);
    cairo_t *cr = cairo_create(s);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_set_source_rgb(cr, 1, 1, 1);
    for (int k = 0; k < n; k++) {
        cairo_move_to(cr, 2.0, h + (k + 1) * line_h - 0.25 * size);
        cairo_show_text(cr, line[k]);
    }
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    cairo_surface_flush(s);
    uint8_t *out = st == CAIRO_STATUS_SUCCESS ? malloc((size_t)th * ow * 3) : NULL;
    for (int y = 0; out && y < th; y++)
        for (int x = 0; x < ow; x++) {
            uint32_t v;
            memcpy(&v, data + (size_t)y * stride + 4 * (size_t)x, 4);
            uint8_t *q = out + ((size_t)y * ow + x) * 3;
            q[0] = (uint8_t)(v >> 16);
            q[1] = (uint8_t)(v >> 8);
            q[2] = (uint8_t)v;
        }
    cairo_surface_destroy(s);
    *out_h = th;
    return out;
}

int th_overlay_write_captioned(const char *path, const uint8_t *xray, const float *map, int h, int w,
                               const char *caption, th_err *err)
{
    if (h < 1 || w < 1) return th_errf(err, "%s: cannot draw a %dx%d overlay", path, h, w);
    int ow = th_overlay_width(w);
    uint8_t *rgb = malloc((size_t)h * ow * 3);
    if (!rgb) return th_errf(err, "%s: out of memory for the overlay", path);
    th_overlay_rgb(xray, map, h, w, rgb);
    int rc;
    if (caption && caption[0]) {
        int th = h;
        uint8_t *full = caption_render(rgb, h, ow, caption, &th);
        rc = full ? th_png_write_rgb(path, full, th, ow, err) : th_errf(err, "%s: cannot draw the caption", path);
        free(full);
    } else {
        rc = th_png_write_rgb(path, rgb, h, ow, err);
    }
    free(rgb);
    return rc;
}

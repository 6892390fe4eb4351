/* overlay.c - a heat map over a grey image as a legible PNG: the X-ray and
 * the map over it side by side, upsampled bilinearly to at least
 * TH_OVERLAY_MIN_PX on the long side, a colour bar with its values, and a
 * caption wrapped to the width (see thorax/render.h).
 *
 * The panels and the bar are computed pixel by pixel; the text is drawn with
 * cairo, as the plots are, after being measured, so that the canvas is sized
 * to hold it.
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

/* ---- resampling ----------------------------------------------------------- */

/* Source coordinate of destination pixel i along one axis (pixel centres
 * aligned: PyTorch's align_corners=False): the lower neighbour, the upper
 * one (the same at the border) and the weight of the upper one. */
static void source_axis(int i, int src_len, int dst_len, int *lo, int *hi, float *frac)
{
    float s = ((float)i + 0.5f) * (float)src_len / (float)dst_len - 0.5f;
    if (s < 0.0f) s = 0.0f;
    int a = (int)s;
    if (a > src_len - 1) a = src_len - 1;
    *lo = a;
    *hi = a + 1 < src_len ? a + 1 : a;
    *frac = *hi > a ? s - (float)a : 0.0f;
}

void th_upsample_bilinear(const float *src, int sh, int sw, float *dst, int dh, int dw)
{
    for (int i = 0; i < dh; i++) {
        int y0, y1;
        float fy;
        source_axis(i, sh, dh, &y0, &y1, &fy);
        const float *r0 = src + (size_t)y0 * sw, *r1 = src + (size_t)y1 * sw;
        for (int j = 0; j < dw; j++) {
            int x0, x1;
            float fx;
            source_axis(j, sw, dw, &x0, &x1, &fx);
            float top = r0[x0] + fx * (r0[x1] - r0[x0]);
            float bottom = r1[x0] + fx * (r1[x1] - r1[x0]);
            dst[(size_t)i * dw + j] = top + fy * (bottom - top);
        }
    }
}

/* ---- the blend ------------------------------------------------------------ */

void th_overlay_rgb(const uint8_t *xray, const float *map, int h, int w, float scale, uint8_t *rgb)
{
    uint8_t lut[256][3];
    for (int i = 0; i < 256; i++) th_overlay_colormap((float)i / 255.0f, lut[i]);
    size_t n = (size_t)h * w;
    for (size_t i = 0; i < n; i++) {
        float m = map[i];
        float v = scale > 0.0f && m > 0.0f ? fminf(m / scale, 1.0f) : 0.0f;
        /* Opacity rises with the value and saturates at half the maximum:
         * the hot region reads clearly, the cold anatomy stays visible. */
        float alpha = TH_OVERLAY_ALPHA_MAX * fminf(1.0f, 2.0f * v);
        const uint8_t *c = lut[(int)lroundf(v * 255.0f)];
        float g = xray[i];
        for (int k = 0; k < 3; k++) rgb[3 * i + k] = (uint8_t)lroundf((1.0f - alpha) * g + alpha * c[k]);
    }
}

/* ---- layout ----------------------------------------------------------------
 *
 *   margin | title row                                  |
 *   margin | X-ray [ph, pw] | gap | overlay [ph, pw] | gap | bar + ticks | margin
 *          | caption lines, wrapped to the full width        |
 *   margin
 *
 * Every size of text is measured with cairo before the canvas size is
 * chosen, so the canvas is made to hold the text rather than the text cut
 * to the canvas. */
enum { MARGIN = 16, GAP = 12, BAR_W = 24, TICK_LEN = 5, MAX_WRAPPED = 64, CAPTION_CAP = 4096, MAX_BAR_TICKS = 12 };
#define TITLE_PX 16.0
#define TICK_PX 14.0
#define CAPTION_MAX_PX 18.0
#define CAPTION_MIN_PX 9.0
#define CAPTION_LINES 7 /* past this many wrapped lines, try a smaller font first */

static const char *const panel_title[3] = {"X-ray", "map over the X-ray", "map / max"};

/* The caption's lines after wrapping, each malloc'd. */
typedef struct wrapped {
    int n, failed;
    char *line[MAX_WRAPPED];
} wrapped;

static void wrapped_free(wrapped *w)
{
    for (int k = 0; k < w->n; k++) free(w->line[k]);
    w->n = 0;
}

static void wrapped_add(wrapped *w, const char *s, size_t len)
{
    char *copy = w->n < MAX_WRAPPED ? malloc(len + 1) : NULL;
    if (!copy) {
        w->failed = 1;
        return;
    }
    memcpy(copy, s, len);
    copy[len] = '\0';
    w->line[w->n++] = copy;
}

/* The rightmost pixel text reaches from its origin: its advance or its ink,
 * whichever is further (italic overhangs). */
static double text_right(cairo_t *cr, const char *s)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return fmax(e.x_advance, e.x_bearing + e.width);
}

static int fits(cairo_t *cr, const char *s, size_t len, double room)
{
    char buf[CAPTION_CAP];
    if (len >= sizeof buf) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return text_right(cr, buf) <= room;
}

/* The end of the UTF-8 character starting at s[i] (never splits one). */
static size_t next_char(const char *s, size_t i, size_t len)
{
    i++;
    while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
    return i;
}

/* Greedy word wrap of one paragraph (no '\n') into lines at most room px
 * wide in the current font; a word wider than a line (a long image path) is
 * broken between characters. */
static void wrap_paragraph(cairo_t *cr, const char *p, size_t len, double room, wrapped *out)
{
    char cur[CAPTION_CAP];
    size_t cur_len = 0, i = 0;
    while (i < len) {
        while (i < len && p[i] == ' ') i++;
        size_t wl = 0;
        while (i + wl < len && p[i + wl] != ' ') wl++;
        if (!wl) break;
        const char *word = p + i;
        i += wl;
        char cand[CAPTION_CAP];
        size_t cl = (size_t)snprintf(cand, sizeof cand, "%.*s%s%.*s", (int)cur_len, cur, cur_len ? " " : "", (int)wl,
                                     word);
        if (cl < sizeof cand && fits(cr, cand, cl, room)) {
            memcpy(cur, cand, cl);
            cur_len = cl;
            continue;
        }
        if (cur_len) wrapped_add(out, cur, cur_len);
        cur_len = 0;
        size_t a = 0;
        while (a < wl) {
            /* The longest run of whole characters from a that fits (at least one). */
            size_t best = next_char(word, a, wl);
            for (size_t b = best; b < wl;) {
                size_t nb = next_char(word, b, wl);
                if (!fits(cr, word + a, nb - a, room)) break;
                best = b = nb;
            }
            if (best < wl) wrapped_add(out, word + a, best - a);
            else {
                memcpy(cur, word + a, best - a);
                cur_len = best - a;
            }
            a = best;
        }
    }
    wrapped_add(out, cur, cur_len);
}

static void wrap_caption(cairo_t *cr, const char *text, double room, wrapped *out)
{
    for (const char *p = text;;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        wrap_paragraph(cr, p, len, room, out);
        if (!nl) break;
        p = nl + 1;
    }
}

/* Each panel's size: the image scaled up (never down) so that its long side
 * is at least TH_OVERLAY_MIN_PX, keeping the aspect ratio. */
static void panel_size(int h, int w, int *ph, int *pw)
{
    int longest = h > w ? h : w;
    if (longest >= TH_OVERLAY_MIN_PX) {
        *ph = h;
        *pw = w;
        return;
    }
    double f = (double)TH_OVERLAY_MIN_PX / longest;
    *ph = (int)ceil(h * f - 1e-9);
    *pw = (int)ceil(w * f - 1e-9);
}

/* The largest size up to max_px (not below 6 px) at which s fits room px. */
static double fit_size(cairo_t *cr, const char *s, double max_px, double room)
{
    cairo_set_font_size(cr, max_px);
    double wd = text_right(cr, s);
    return wd > room ? fmax(6.0, max_px * room / wd) : max_px;
}

typedef struct layout {
    int ph, pw, W, H, title_h, bar_x, cap_y0, line_h;
    double title_px[3], caption_px, ascent;
    int n_ticks;
    double ticks[MAX_BAR_TICKS];
    char tick_text[MAX_BAR_TICKS][16];
    wrapped lines;
} layout;

/* Every size from measured text; fills L (lines to free with wrapped_free). */
static int plan_layout(cairo_t *cr, int h, int w, const char *caption, layout *L, th_err *err)
{
    panel_size(h, w, &L->ph, &L->pw);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    double step;
    L->n_ticks = th_plot_nice_ticks(0.0, 1.0, 5, L->ticks, MAX_BAR_TICKS, &step);
    cairo_set_font_size(cr, TICK_PX);
    double tick_w = 0.0;
    for (int k = 0; k < L->n_ticks; k++) {
        snprintf(L->tick_text[k], sizeof L->tick_text[k], "%g", L->ticks[k]);
        tick_w = fmax(tick_w, text_right(cr, L->tick_text[k]));
    }
    int bar_col = BAR_W + TICK_LEN + 3 + (int)ceil(tick_w);
    cairo_set_font_size(cr, TITLE_PX);
    int bar_title = (int)ceil(text_right(cr, panel_title[2]));
    if (bar_title > bar_col) bar_col = bar_title;
    L->bar_x = MARGIN + 2 * L->pw + 2 * GAP;
    L->W = L->bar_x + bar_col + MARGIN;
    L->title_px[0] = fit_size(cr, panel_title[0], TITLE_PX, L->pw);
    L->title_px[1] = fit_size(cr, panel_title[1], TITLE_PX, L->pw);
    L->title_px[2] = TITLE_PX;
    cairo_font_extents_t fe;
    cairo_set_font_size(cr, TITLE_PX);
    cairo_font_extents(cr, &fe);
    L->title_h = MARGIN + (int)ceil(fe.height) + 4;

    /* The caption: the largest font at which it wraps into few lines; a
     * long one gets the smallest font and as many lines as it needs. */
    double room = L->W - 2 * MARGIN;
    for (double px = CAPTION_MAX_PX; px >= CAPTION_MIN_PX; px -= 1.0) {
        wrapped_free(&L->lines);
        L->lines.failed = 0;
        cairo_set_font_size(cr, px);
        wrap_caption(cr, caption, room, &L->lines);
        L->caption_px = px;
        if (!L->lines.failed && L->lines.n <= CAPTION_LINES) break;
    }
    if (L->lines.failed)
        return th_errf(err, "overlay caption too long: more than %d lines of %d px", MAX_WRAPPED, (int)room);
    cairo_set_font_size(cr, L->caption_px);
    cairo_font_extents(cr, &fe);
    L->ascent = fe.ascent;
    L->line_h = (int)ceil(fe.height);
    L->cap_y0 = L->title_h + L->ph + GAP;
    L->H = L->cap_y0 + L->lines.n * L->line_h + MARGIN;
    return 0;
}

/* ---- drawing -------------------------------------------------------------- */

/* RGB24 keeps a pixel in a native-endian 32-bit word as 0x00RRGGBB. */
static void put_rgb(unsigned char *data, int stride, int x, int y, const uint8_t *p)
{
    uint32_t v = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
    memcpy(data + (size_t)y * stride + 4 * (size_t)x, &v, 4);
}

/* The two panels and the bar, pixel by pixel. */
static int paint_pixels(cairo_surface_t *s, const th_overlay *o, const layout *L, float scale)
{
    size_t n = (size_t)L->ph * L->pw;
    float *src = malloc(sizeof(float) * (size_t)o->h * o->w), *grey = malloc(sizeof(float) * n);
    float *map = malloc(sizeof(float) * n);
    uint8_t *g8 = malloc(n), *blend = malloc(3 * n);
    int rc = src && grey && map && g8 && blend ? 0 : -1;
    if (!rc) {
        /* The X-ray is resampled as the map is, bilinearly: nearest
         * neighbour would turn a 28 px image into blocks. */
        for (size_t i = 0; i < (size_t)o->h * o->w; i++) src[i] = o->xray[i];
        th_upsample_bilinear(src, o->h, o->w, grey, L->ph, L->pw);
        for (size_t i = 0; i < n; i++) g8[i] = (uint8_t)lroundf(fminf(fmaxf(grey[i], 0.0f), 255.0f));
        th_upsample_bilinear(o->map, o->mh, o->mw, map, L->ph, L->pw);
        th_overlay_rgb(g8, map, L->ph, L->pw, scale, blend);
        cairo_surface_flush(s);
        unsigned char *data = cairo_image_surface_get_data(s);
        int stride = cairo_image_surface_get_stride(s);
        memset(data, 0, (size_t)stride * L->H);
        int x1 = MARGIN + L->pw + GAP;
        for (int y = 0; y < L->ph; y++)
            for (int x = 0; x < L->pw; x++) {
                size_t i = (size_t)y * L->pw + x;
                uint8_t gp[3] = {g8[i], g8[i], g8[i]};
                put_rgb(data, stride, MARGIN + x, L->title_h + y, gp);
                put_rgb(data, stride, x1 + x, L->title_h + y, blend + 3 * i);
            }
        for (int y = 0; y < L->ph; y++) {
            uint8_t c[3];
            th_overlay_colormap(L->ph > 1 ? (float)(L->ph - 1 - y) / (float)(L->ph - 1) : 1.0f, c);
            for (int x = 0; x < BAR_W; x++) put_rgb(data, stride, L->bar_x + x, L->title_h + y, c);
        }
        cairo_surface_mark_dirty(s);
    }
    free(src);
    free(grey);
    free(map);
    free(g8);
    free(blend);
    return rc;
}

static void draw_text(cairo_t *cr, double px, double x, double baseline, const char *s)
{
    cairo_set_font_size(cr, px);
    cairo_move_to(cr, x, baseline);
    cairo_show_text(cr, s);
}

/* Titles, the bar's ticks and the caption; the caption's ink box into box
 * [x0, y0, x1, y1]. Fails, naming the line, if any ink leaves the caption's
 * band (which the layout should make impossible: this is the check). */
static int draw_text_parts(cairo_t *cr, const layout *L, int box[4], th_err *err)
{
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_source_rgb(cr, 1, 1, 1);
    double base = L->title_h - 6;
    draw_text(cr, L->title_px[0], MARGIN, base, panel_title[0]);
    draw_text(cr, L->title_px[1], MARGIN + L->pw + GAP, base, panel_title[1]);
    draw_text(cr, L->title_px[2], L->bar_x, base, panel_title[2]);

    cairo_set_font_size(cr, TICK_PX);
    cairo_text_extents_t digit;
    cairo_text_extents(cr, "0", &digit);
    cairo_set_line_width(cr, 1.0);
    for (int k = 0; k < L->n_ticks; k++) {
        double y = L->title_h + (L->ph - 1) * (1.0 - L->ticks[k]) + 0.5;
        cairo_move_to(cr, L->bar_x + BAR_W, y);
        cairo_line_to(cr, L->bar_x + BAR_W + TICK_LEN, y);
        cairo_stroke(cr);
        /* Centred on the tick, held inside the bar's height. */
        double b = y + digit.height / 2;
        b = fmin(fmax(b, L->title_h + digit.height), L->title_h + L->ph);
        draw_text(cr, TICK_PX, L->bar_x + BAR_W + TICK_LEN + 3, b, L->tick_text[k]);
    }

    double x0 = L->W, y0 = L->H, x1 = 0, y1 = 0;
    for (int k = 0; k < L->lines.n; k++) {
        double baseline = L->cap_y0 + k * L->line_h + L->ascent;
        draw_text(cr, L->caption_px, MARGIN, baseline, L->lines.line[k]);
        if (!L->lines.line[k][0]) continue;
        cairo_text_extents_t e;
        cairo_text_extents(cr, L->lines.line[k], &e);
        double lx0 = MARGIN + e.x_bearing, lx1 = lx0 + e.width;
        double ly0 = baseline + e.y_bearing, ly1 = ly0 + e.height;
        if (lx0 < MARGIN / 2 || lx1 > L->W - MARGIN / 2 || ly0 < L->cap_y0 - GAP / 2 || ly1 > L->H - MARGIN / 2)
            return th_errf(err, "overlay caption line '%s' does not fit its %dx%d image (ink %.0f..%.0f x %.0f..%.0f)",
                           L->lines.line[k], L->W, L->H, lx0, lx1, ly0, ly1);
        x0 = fmin(x0, lx0);
        y0 = fmin(y0, ly0);
        x1 = fmax(x1, lx1);
        y1 = fmax(y1, ly1);
    }
    box[0] = x1 > x0 ? (int)floor(x0) : 0;
    box[1] = y1 > y0 ? (int)floor(y0) : 0;
    box[2] = x1 > x0 ? (int)ceil(x1) : 0;
    box[3] = y1 > y0 ? (int)ceil(y1) : 0;
    cairo_status_t st = cairo_status(cr);
    return st == CAIRO_STATUS_SUCCESS ? 0 : th_errf(err, "overlay text: %s", cairo_status_to_string(st));
}

static uint8_t *read_back(cairo_surface_t *s, int W, int H)
{
    cairo_surface_flush(s);
    const unsigned char *data = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    uint8_t *out = malloc((size_t)W * H * 3);
    for (int y = 0; out && y < H; y++)
        for (int x = 0; x < W; x++) {
            uint32_t v;
            memcpy(&v, data + (size_t)y * stride + 4 * (size_t)x, 4);
            uint8_t *q = out + ((size_t)y * W + x) * 3;
            q[0] = (uint8_t)(v >> 16);
            q[1] = (uint8_t)(v >> 8);
            q[2] = (uint8_t)v;
        }
    return out;
}

int th_overlay_render(const th_overlay *o, uint8_t **rgb, th_overlay_layout *out, th_err *err)
{
    *rgb = NULL;
    if (o->h < 1 || o->w < 1 || o->mh < 1 || o->mw < 1 || !o->xray || !o->map)
        return th_errf(err, "cannot draw a %dx%d overlay of a %dx%d map", o->h, o->w, o->mh, o->mw);
    /* The colour scale: the map over its own maximum, which the caption
     * states so that maps of different images can be compared. */
    float scale = 0.0f;
    for (size_t i = 0; i < (size_t)o->mh * o->mw; i++) scale = fmaxf(scale, o->map[i]);
    char text[CAPTION_CAP];
    const char *user = o->caption ? o->caption : "";
    int len;
    if (scale > 0.0f)
        len = snprintf(text, sizeof text, "%s%scolour: map / its maximum %.3g (0..1; values <= 0 not coloured)", user,
                       user[0] ? "\n" : "", (double)scale);
    else len = snprintf(text, sizeof text, "%s%scolour: the map has no positive value (nothing coloured)", user,
                        user[0] ? "\n" : "");
    if (len < 0 || (size_t)len >= sizeof text)
        return th_errf(err, "overlay caption of %zu bytes is too long (at most %d)", strlen(user), CAPTION_CAP - 128);

    layout L;
    memset(&L, 0, sizeof L);
    cairo_surface_t *probe = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
    cairo_t *pcr = cairo_create(probe);
    int rc = plan_layout(pcr, o->h, o->w, text, &L, err);
    cairo_destroy(pcr);
    cairo_surface_destroy(probe);
    cairo_surface_t *s = NULL;
    if (!rc) {
        s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, L.W, L.H);
        if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS)
            rc = th_errf(err, "cannot make a %dx%d overlay image", L.W, L.H);
    }
    if (!rc && paint_pixels(s, o, &L, scale)) rc = th_errf(err, "out of memory drawing a %dx%d overlay", L.W, L.H);
    int box[4] = {0};
    if (!rc) {
        cairo_t *cr = cairo_create(s);
        rc = draw_text_parts(cr, &L, box, err);
        cairo_destroy(cr);
    }
    if (!rc) {
        *rgb = read_back(s, L.W, L.H);
        if (!*rgb) rc = th_errf(err, "out of memory reading back a %dx%d overlay", L.W, L.H);
    }
    if (!rc && out)
        *out = (th_overlay_layout){.width = L.W, .height = L.H, .panel_h = L.ph, .panel_w = L.pw,
                                   .caption_x0 = box[0], .caption_y0 = box[1], .caption_x1 = box[2],
                                   .caption_y1 = box[3], .caption_lines = L.lines.n, .caption_px = L.caption_px,
                                   .margin = MARGIN / 2, .scale = scale};
    if (s) cairo_surface_destroy(s);
    wrapped_free(&L.lines);
    return rc;
}

int th_overlay_write(const char *path, const th_overlay *o, th_overlay_layout *out, th_err *err)
{
    th_overlay_layout lay;
    uint8_t *rgb;
    if (th_overlay_render(o, &rgb, &lay, err)) return th_err_prefix(err, "%s: ", path);
    int rc = th_png_write_rgb(path, rgb, lay.height, lay.width, err);
    free(rgb);
    if (!rc && out) *out = lay;
    return rc;
}

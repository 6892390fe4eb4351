/* render.h - drawing: line plots (ROC curves, learning curves), PNG
 * writing, heat-map overlays. Needs cairo, libpng and util.
 *
 *   th_figure *f = th_figure_new(800, 600, 1, "ROC", &err);    // a figure as data
 *   th_plot *p = th_figure_panel(f, 0);
 *   th_plot_series(p, n, fpr, tpr, "Pneumonia", 0);
 *   th_figure_write_png(f, "roc.png", &err);                   // cairo draws it here
 *   th_figure_free(f);
 */
#ifndef THORAX_RENDER_H
#define THORAX_RENDER_H

#include <stddef.h>
#include <stdint.h>
#include "thorax/util.h"

/* ------------------------------------------------------------------------- */
/* Writing 8-bit PNG images (previews, CAM overlays, plots).
 *
 * Both writers are atomic: the image goes to `<path>.tmp` first and is
 * renamed onto path when complete, like every other file Thorax writes.
 */
/* img [h, w], one byte per pixel. */
int th_png_write_gray(const char *path, const uint8_t *img, int h, int w, th_err *err);

/* rgb [h, w, 3], interleaved R, G, B. */
int th_png_write_rgb(const char *path, const uint8_t *rgb, int h, int w, th_err *err);

/* ------------------------------------------------------------------------- */
/* Line plots written as PNG, drawn with cairo.
 *
 * Small and general on purpose: ROC curves (roc.png), training curves
 * (curves.png: loss and AUC against epoch, side by side) and the learning-rate
 * finder (loss against lr on a log x axis) are all a figure of one or more
 * panels in a row, each panel with axes, "nice" 1-2-5 ticks, grid lines,
 * labelled line series and a legend placed where it hides the least data.
 *
 * Usage:
 *   th_figure *f = th_figure_new(800, 800, 1, NULL, &err);
 *   th_plot *p = th_figure_panel(f, 0);
 *   th_plot_labels(p, "ROC", "False positive rate", "True positive rate");
 *   th_plot_xrange(p, 0, 1);
 *   th_plot_series(p, n, fpr, tpr, "Effusion (AUC 0.871)", TH_PLOT_SOLID);
 *   th_figure_write_png(f, "roc.png", &err);
 *   th_figure_free(f);
 *
 * Building a figure never fails half-way: an allocation failure is remembered
 * and reported by th_figure_write_png. Nothing here keeps global state, and
 * text goes through cairo's font selection (fontconfig; "sans-serif" is
 * DejaVu Sans on Debian).
 */
typedef struct th_figure th_figure;
typedef struct th_plot th_plot;

/* Series styles, or'ed together; colours come from a fixed qualitative
 * palette (matplotlib's tab10) in order of addition unless TH_PLOT_COLOR(k)
 * names palette entry k. Past ten series the palette repeats dashed. */
enum {
    TH_PLOT_SOLID = 0,
    TH_PLOT_DASHED = 1 << 0,
    TH_PLOT_MARKERS = 1 << 1,   /* a dot at every point */
    TH_PLOT_NO_LINE = 1 << 2,   /* with TH_PLOT_MARKERS: points only */
};
#define TH_PLOT_COLOR(k) ((((k) % 10) + 1) << 8)

/* Where the legend goes; AUTO picks the corner or edge covering the fewest
 * drawn points. */
typedef enum {
    TH_LEGEND_AUTO = 0,
    TH_LEGEND_UPPER_RIGHT,
    TH_LEGEND_UPPER_LEFT,
    TH_LEGEND_LOWER_LEFT,
    TH_LEGEND_LOWER_RIGHT,
    TH_LEGEND_NONE,
} th_legend_pos;

/* A width x height pixel figure of n_cols panels side by side, with an
 * optional overall title (NULL for none). Returns NULL on bad sizes or
 * allocation failure. */
th_figure *th_figure_new(int width, int height, int n_cols, const char *title, th_err *err);
/* The same with n_rows x n_cols panels (small multiples), numbered row by
 * row from 0 at the top left. */
th_figure *th_figure_new_grid(int width, int height, int n_rows, int n_cols, const char *title, th_err *err);
void th_figure_free(th_figure *f);

/* Panel k (0-based) of the figure; NULL when k is out of range. */
th_plot *th_figure_panel(th_figure *f, int k);

/* Encodes the figure and writes it atomically (path.tmp, then rename). */
int th_figure_write_png(const th_figure *f, const char *path, th_err *err);

/* Any of the three may be NULL to leave it empty. */
void th_plot_labels(th_plot *p, const char *title, const char *xlabel, const char *ylabel);

/* Fixed axis ranges; without them the range fits the data with a small
 * margin. lo < hi (ignored otherwise). */
void th_plot_xrange(th_plot *p, double lo, double hi);
void th_plot_yrange(th_plot *p, double lo, double hi);

/* Logarithmic x axis (base 10): points with x <= 0 are not drawn. */
void th_plot_log_x(th_plot *p);

/* Adds a line through (x[i], y[i]), copied. Non-finite values break the line
 * (a gap, e.g. an epoch without validation). label NULL keeps the series out
 * of the legend; a tab in the label splits its legend entry into two aligned
 * columns ("Effusion\tAUC 0.871"). With TH_PLOT_NO_LINE and no markers (or
 * n = 0) the series is a legend entry of text alone. */
void th_plot_series(th_plot *p, int n, const double *x, const double *y, const char *label, int style);

/* The chance line y = x (dashed grey), drawn under the series. */
void th_plot_diagonal(th_plot *p);

void th_plot_legend(th_plot *p, th_legend_pos pos);

/* Ticks of the x axis at whole numbers only (epochs). */
void th_plot_integer_x(th_plot *p);

/* A vertical dotted grey line at x (e.g. the best epoch), drawn under the
 * series; up to four per panel. */
void th_plot_vline(th_plot *p, double x);

/* The "nice" ticks (steps 1, 2 or 5 times a power of ten) inside [lo, hi],
 * about `target` of them; writes at most cap into ticks and returns how many
 * there are, and the step in *step. Exposed for tests and callers that label
 * their own axes. */
int th_plot_nice_ticks(double lo, double hi, int target, double *ticks, int cap, double *step);

/* ------------------------------------------------------------------------- */
/* A heat map drawn over a grey image (the CAM overlays of `thorax cam` and
 * `thorax predict --cam`).
 *
 * Knows pixels and text only: the map is any float image (at the layer's
 * resolution, or the image's), upsampled bilinearly here, and the caption is
 * the caller's text.
 */

/* Bilinear resampling of src [sh, sw] to dst [dh, dw] with pixel centres
 * aligned (PyTorch's interpolate(mode="bilinear", align_corners=False)),
 * clamped at the borders: the map upsampling of CAM and of the overlays. */
void th_upsample_bilinear(const float *src, int sh, int sw, float *dst, int dh, int dw);

/* The turbo colour of a normalised value t in [0, 1] (clamped; 256 levels), rgb[3]. */
void th_overlay_colormap(float t, uint8_t *rgb);

/* Heat map over the X-ray at one resolution: xray [H, W] grey, map [H, W],
 * rgb [H, W, 3]. The map is shown as min(max(m, 0) / scale, 1) (CAM's
 * negative evidence is not drawn; scale <= 0 draws nothing) through the
 * turbo colour map, alpha-blended over the grey image with an opacity that
 * grows with the value (0 at 0, TH_OVERLAY_ALPHA_MAX from half the scale
 * up), so low values leave the anatomy visible. */
#define TH_OVERLAY_ALPHA_MAX 0.6f
void th_overlay_rgb(const uint8_t *xray, const float *map, int h, int w, float scale, uint8_t *rgb);

/* Each panel's long side is at least this many pixels. */
#define TH_OVERLAY_MIN_PX 512

typedef struct th_overlay {
    const uint8_t *xray; /* [h, w] grey, the image the model saw */
    int h, w;
    const float *map;    /* [mh, mw], any resolution */
    int mh, mw;
    const char *caption; /* lines separated by '\n' (NULL: none), e.g. the
                            image, label, probability, truth, method */
} th_overlay;

/* Where things went, for callers and tests. */
typedef struct th_overlay_layout {
    int width, height;      /* the whole image */
    int panel_h, panel_w;   /* each of the two panels */
    /* The caption's ink, [x0, x1) x [y0, y1), inside the image and outside
     * the margin band. */
    int caption_x0, caption_y0, caption_x1, caption_y1;
    int caption_lines;      /* after wrapping */
    double caption_px;      /* font size */
    int margin;             /* the band along every edge that nothing is drawn in */
    float scale;            /* the map value shown as 1 (its maximum); 0 when none is positive */
} th_overlay_layout;

/* The overlay image: a title row; the X-ray and the map over it (as
 * th_overlay_rgb with scale = the map's maximum), both upsampled bilinearly
 * so that the long side is at least TH_OVERLAY_MIN_PX (never downsampled);
 * a colour bar from 0 (bottom) to 1 (top) with tick values; under them the
 * caption and a last line giving the scale ("colour: map / its maximum
 * 0.0321 ..."), in white on black, wrapped at spaces (a word too long for a
 * line is broken) at the largest size from 18 px down to 9 px that keeps it
 * to 7 lines, and as many lines as it needs at 9 px otherwise: the image
 * grows to hold the text, which is never cut. The drawn caption's extents
 * are measured with cairo and checked to lie inside the image; a caption
 * that cannot be laid out (over 64 lines, or 4000 bytes) is an error.
 * *rgb [height, width, 3] is malloc'd (the caller frees it); layout may be
 * NULL. */
int th_overlay_render(const th_overlay *o, uint8_t **rgb, th_overlay_layout *layout, th_err *err);

/* th_overlay_render written as a PNG (atomic: <path>.tmp renamed); errors
 * name path. layout may be NULL. */
int th_overlay_write(const char *path, const th_overlay *o, th_overlay_layout *layout, th_err *err);

#endif

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
/* A heat map drawn over a grey image (the CAM overlays under cam/).
 *
 * Knows pixels only: the map is any float image of the grey image's size, at
 * that resolution (upsampled by the caller), and the result is RGB or a PNG.
 */
/* Width of an overlay image for an X-ray w pixels wide: the image, a gap and
 * a vertical colour bar. */
int th_overlay_width(int w);

/* Heat map over the X-ray. xray [H, W] grey, map [H, W] at image resolution;
 * rgb [H, th_overlay_width(W), 3]. The map is shown as max(m, 0) / max(m)
 * (CAM's negative evidence is not drawn) through the turbo colour map,
 * alpha-blended over the grey image with an opacity that grows with the
 * value (0 at 0, TH_OVERLAY_ALPHA_MAX at the maximum), so low values leave the
 * anatomy visible. The bar on the right runs from 0 (bottom) to the maximum
 * (top), fully opaque. */
#define TH_OVERLAY_ALPHA_MAX 0.6f
void th_overlay_rgb(const uint8_t *xray, const float *map, int h, int w, uint8_t *rgb);

/* The turbo colour of a normalised value t in [0, 1] (clamped; 256 levels), rgb[3]. */
void th_overlay_colormap(float t, uint8_t *rgb);

/* th_overlay_rgb written as a PNG (atomic: <path>.tmp renamed). */
int th_overlay_write(const char *path, const uint8_t *xray, const float *map, int h, int w, th_err *err);

/* The same with a caption strip under the overlay: caption (lines separated
 * by '\n', e.g. "Nodule TP\np=0.93 y=1") in white on black, drawn with cairo
 * at the largest size up to 14 px that fits the overlay's width. NULL or ""
 * draws no strip, as th_overlay_write. */
int th_overlay_write_captioned(const char *path, const uint8_t *xray, const float *map, int h, int w,
                               const char *caption, th_err *err);

#endif

/* plot.h - line plots written as PNG, drawn with cairo.
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
#ifndef THORAX_PLOT_H
#define THORAX_PLOT_H

#include <stddef.h>
#include "thorax/error.h"

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

/* The "nice" ticks (steps 1, 2 or 5 times a power of ten) inside [lo, hi],
 * about `target` of them; writes at most cap into ticks and returns how many
 * there are, and the step in *step. Exposed for tests and callers that label
 * their own axes. */
int th_plot_nice_ticks(double lo, double hi, int target, double *ticks, int cap, double *step);

#endif

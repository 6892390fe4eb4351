/* plot_impl.h - what the files of the plotter share (internal to src/render).
 *
 * plot.c builds a figure and writes it as PNG, plot_ticks.c chooses and
 * labels the ticks of an axis, plot_draw.c lays out and draws a figure on a
 * cairo context.
 */
#ifndef THORAX_PLOT_IMPL_H
#define THORAX_PLOT_IMPL_H

#include <cairo.h>
#include "thorax/render.h"

enum { MAX_TICKS = 160 }; /* decades with their minor ticks fit */

typedef struct {
    int n;
    double *x, *y;
    char *label;
    int style, color, dashed;
} plot_series;

struct th_plot {
    char *title, *xlabel, *ylabel;
    int x_fixed, y_fixed, log_x, diagonal, x_integer;
    int n_vlines;
    double vline[4];            /* x of vertical markers (th_plot_vline) */
    double x_lo, x_hi, y_lo, y_hi;
    th_legend_pos legend;
    plot_series *series;
    int n_series, cap_series;
    int failed; /* an allocation failed while building; reported on write */
};

struct th_figure {
    int width, height, n_rows, n_cols, n_panels; /* panels row by row */
    char *title;
    int failed;
    th_plot *panels;
};

/* A tick: position on the axis (in data units, log10 for a log axis) and its
 * label, "10" with an exponent drawn raised when exp[0] is set. */
typedef struct {
    double at;
    char text[32], exp[8];
    int minor;
} tick;

/* Up to MAX_TICKS ticks of a linear axis over [lo, hi], about target of them. */
int plot_linear_ticks(double lo, double hi, int target, tick *t);
/* The same for a log10 axis, lo and hi in log10 units (see plot_ticks.c). */
int plot_log_ticks(double lo, double hi, int target, tick *t);

/* Paints the whole figure (background, title, panels) onto cr, which draws
 * on a surface of f->width x f->height pixels. */
void plot_draw_figure(cairo_t *cr, const th_figure *f);

#endif

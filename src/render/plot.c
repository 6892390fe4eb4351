/* plot.c - line plots on cairo (see thorax/render.h): the figure as data,
 * copied in as the caller adds to it, and its PNG file. Ticks are chosen in
 * plot_ticks.c, the figure is laid out and drawn in plot_draw.c.
 */
#include "thorax/render.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plot_impl.h"
#include "thorax/util.h"

/* ---- building ------------------------------------------------------------ */

static char *dup_or_null(const char *s, int *failed)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *failed = 1;
    return d;
}

th_figure *th_figure_new(int width, int height, int n_cols, const char *title, th_err *err)
{
    return th_figure_new_grid(width, height, 1, n_cols, title, err);
}

th_figure *th_figure_new_grid(int width, int height, int n_rows, int n_cols, const char *title, th_err *err)
{
    if (width < 64 || height < 64 || n_cols < 1 || n_rows < 1 || width / n_cols < 64 || height / n_rows < 64 ||
        width > 16384 || height > 16384) {
        th_errf(err, "cannot make a %dx%d figure of %d x %d panels", width, height, n_rows, n_cols);
        return NULL;
    }
    th_figure *f = calloc(1, sizeof *f);
    th_plot *panels = calloc((size_t)n_rows * n_cols, sizeof *panels);
    if (!f || !panels) {
        free(f);
        free(panels);
        th_errf(err, "out of memory for a figure");
        return NULL;
    }
    f->width = width;
    f->height = height;
    f->n_rows = n_rows;
    f->n_cols = n_cols;
    f->n_panels = n_rows * n_cols;
    f->panels = panels;
    f->title = dup_or_null(title, &f->failed);
    return f;
}

static void plot_clear(th_plot *p)
{
    free(p->title);
    free(p->xlabel);
    free(p->ylabel);
    for (int i = 0; i < p->n_series; i++) {
        free(p->series[i].x);
        free(p->series[i].y);
        free(p->series[i].label);
    }
    free(p->series);
}

void th_figure_free(th_figure *f)
{
    if (!f) return;
    for (int k = 0; k < f->n_panels; k++) plot_clear(&f->panels[k]);
    free(f->panels);
    free(f->title);
    free(f);
}

th_plot *th_figure_panel(th_figure *f, int k)
{
    return f && k >= 0 && k < f->n_panels ? &f->panels[k] : NULL;
}

void th_plot_labels(th_plot *p, const char *title, const char *xlabel, const char *ylabel)
{
    free(p->title);
    free(p->xlabel);
    free(p->ylabel);
    p->title = dup_or_null(title, &p->failed);
    p->xlabel = dup_or_null(xlabel, &p->failed);
    p->ylabel = dup_or_null(ylabel, &p->failed);
}

void th_plot_xrange(th_plot *p, double lo, double hi)
{
    if (!(lo < hi) || !isfinite(lo) || !isfinite(hi)) return;
    p->x_fixed = 1;
    p->x_lo = lo;
    p->x_hi = hi;
}

void th_plot_yrange(th_plot *p, double lo, double hi)
{
    if (!(lo < hi) || !isfinite(lo) || !isfinite(hi)) return;
    p->y_fixed = 1;
    p->y_lo = lo;
    p->y_hi = hi;
}

void th_plot_log_x(th_plot *p) { p->log_x = 1; }
void th_plot_diagonal(th_plot *p) { p->diagonal = 1; }
void th_plot_integer_x(th_plot *p) { p->x_integer = 1; }

void th_plot_vline(th_plot *p, double x)
{
    if (isfinite(x) && p->n_vlines < (int)(sizeof p->vline / sizeof p->vline[0])) p->vline[p->n_vlines++] = x;
}
void th_plot_legend(th_plot *p, th_legend_pos pos) { p->legend = pos; }

void th_plot_series(th_plot *p, int n, const double *x, const double *y, const char *label, int style)
{
    if (n < 0) n = 0;
    if (p->n_series == p->cap_series) {
        int cap = p->cap_series ? 2 * p->cap_series : 8;
        plot_series *bigger = realloc(p->series, sizeof *bigger * (size_t)cap);
        if (!bigger) {
            p->failed = 1;
            return;
        }
        p->series = bigger;
        p->cap_series = cap;
    }
    plot_series *s = &p->series[p->n_series];
    *s = (plot_series){.n = n, .style = style};
    size_t bytes = sizeof(double) * (size_t)(n > 0 ? n : 1);
    s->x = malloc(bytes);
    s->y = malloc(bytes);
    s->label = dup_or_null(label, &p->failed);
    if (!s->x || !s->y) {
        free(s->x);
        free(s->y);
        free(s->label);
        p->failed = 1;
        return;
    }
    if (n > 0) {
        memcpy(s->x, x, sizeof(double) * (size_t)n);
        memcpy(s->y, y, sizeof(double) * (size_t)n);
    }
    int explicit_color = (style >> 8) & 0xff;
    int auto_index = p->n_series;
    s->color = explicit_color ? explicit_color - 1 : auto_index % 10;
    /* Past the ten colours the palette comes round again, dashed, so that
     * eleven or fourteen labels still tell apart. */
    s->dashed = (style & TH_PLOT_DASHED) || (!explicit_color && auto_index >= 10);
    p->n_series++;
}

/* ---- output -------------------------------------------------------------- */

static cairo_status_t to_strbuf(void *closure, const unsigned char *data, unsigned int len)
{
    th_strbuf *b = closure;
    /* th_strbuf is text-oriented (printf); PNG bytes are appended by hand. */
    if (b->failed) return CAIRO_STATUS_WRITE_ERROR;
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + len + 1) cap *= 2;
        char *bigger = realloc(b->data, cap);
        if (!bigger) {
            b->failed = 1;
            return CAIRO_STATUS_NO_MEMORY;
        }
        b->data = bigger;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return CAIRO_STATUS_SUCCESS;
}

int th_figure_write_png(const th_figure *f, const char *path, th_err *err)
{
    int failed = f->failed;
    for (int k = 0; k < f->n_panels; k++) failed |= f->panels[k].failed;
    if (failed) return th_errf(err, "%s: out of memory while building the plot", path);

    cairo_surface_t *surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, f->width, f->height);
    cairo_t *cr = cairo_create(surface);
    plot_draw_figure(cr, f);

    cairo_status_t st = cairo_status(cr);
    th_strbuf png = {0};
    if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_write_to_png_stream(surface, to_strbuf, &png);
    cairo_destroy(cr);
    cairo_surface_destroy(surface);
    if (st != CAIRO_STATUS_SUCCESS) {
        th_strbuf_free(&png);
        return th_errf(err, "%s: cannot render the plot: %s", path, cairo_status_to_string(st));
    }
    int rc = th_write_file_atomic(path, png.data, png.len, err);
    th_strbuf_free(&png);
    return rc;
}

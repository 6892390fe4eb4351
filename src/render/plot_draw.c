/* plot_draw.c - a figure's layout and drawing on cairo (see plot_impl.h).
 *
 * Layout is computed from measured text, not fixed margins, so that tick
 * labels of any width fit: the bottom margin depends only on font heights,
 * which gives the plot height and hence the y ticks; their widest label gives
 * the left margin, hence the plot width and the x ticks. Sizes scale with the
 * panel (600 px reference), so a figure rendered larger stays proportioned.
 */
#include "plot_impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define TH_PI 3.14159265358979323846

/* matplotlib's tab10: distinct hues that stay apart for colour-blind readers
 * better than a rainbow, and familiar from notebooks. */
static const double palette[10][3] = {
    {0x1f / 255.0, 0x77 / 255.0, 0xb4 / 255.0}, {0xff / 255.0, 0x7f / 255.0, 0x0e / 255.0},
    {0x2c / 255.0, 0xa0 / 255.0, 0x2c / 255.0}, {0xd6 / 255.0, 0x27 / 255.0, 0x28 / 255.0},
    {0x94 / 255.0, 0x67 / 255.0, 0xbd / 255.0}, {0x8c / 255.0, 0x56 / 255.0, 0x4b / 255.0},
    {0xe3 / 255.0, 0x77 / 255.0, 0xc2 / 255.0}, {0x7f / 255.0, 0x7f / 255.0, 0x7f / 255.0},
    {0xbc / 255.0, 0xbd / 255.0, 0x22 / 255.0}, {0x17 / 255.0, 0xbe / 255.0, 0xcf / 255.0},
};

/* ---- text ---------------------------------------------------------------- */

typedef struct {
    cairo_t *cr;
    double s; /* scale of sizes relative to a 600 px panel */
} pen;

static void font(const pen *g, double size, int bold)
{
    cairo_select_font_face(g->cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(g->cr, size * g->s);
}

static double text_width(const pen *g, const char *s)
{
    cairo_text_extents_t e;
    cairo_text_extents(g->cr, s, &e);
    return e.x_advance;
}

/* Height of a capital/digit in the current font: text is centred on it, so
 * rows of numbers line up whatever letters they contain. */
static double cap_height(const pen *g)
{
    cairo_text_extents_t e;
    cairo_text_extents(g->cr, "0", &e);
    return -e.y_bearing;
}

/* Draws s with its box anchored at (x, y): ha 0/0.5/1 = left/centre/right,
 * va 0/0.5/1 = top/middle/baseline of the cap height. */
static void text_at(const pen *g, const char *s, double x, double y, double ha, double va)
{
    double w = text_width(g, s), h = cap_height(g);
    cairo_move_to(g->cr, x - ha * w, y + (1 - va) * h);
    cairo_show_text(g->cr, s);
}

/* Tick labels: "10" with a raised exponent in 70% type, else plain text. */
static double tick_width(const pen *g, const tick *t, double size)
{
    font(g, size, 0);
    double w = text_width(g, t->text);
    if (t->exp[0]) {
        font(g, size * 0.7, 0);
        w += text_width(g, t->exp) + 0.5 * g->s;
    }
    return w;
}

static void tick_text(const pen *g, const tick *t, double size, double x, double y, double ha, double va)
{
    double w = tick_width(g, t, size);
    font(g, size, 0);
    double h = cap_height(g);
    double left = x - ha * w, base = y + (1 - va) * h;
    cairo_move_to(g->cr, left, base);
    cairo_show_text(g->cr, t->text);
    if (t->exp[0]) {
        double w10 = text_width(g, t->text);
        font(g, size * 0.7, 0);
        cairo_move_to(g->cr, left + w10 + 0.5 * g->s, base - 0.55 * h);
        cairo_show_text(g->cr, t->exp);
        font(g, size, 0);
    }
}

/* ---- layout and drawing ---------------------------------------------------- */

enum { SIZE_TITLE = 16, SIZE_LABEL = 14, SIZE_TICK = 13, SIZE_LEGEND = 13 };

typedef struct {
    double x0, x1, y0, y1; /* data range (log10 units on a log axis) */
    double px, py, pw, ph; /* plot area in pixels */
} frame;

static double to_px(const frame *fr, double x) { return fr->px + (x - fr->x0) / (fr->x1 - fr->x0) * fr->pw; }
static double to_py(const frame *fr, double y) { return fr->py + fr->ph - (y - fr->y0) / (fr->y1 - fr->y0) * fr->ph; }

/* A point in axis units, or 0 when it cannot be drawn (gap). */
static int axis_point(const th_plot *p, double x, double y, double *ax, double *ay)
{
    if (!isfinite(x) || !isfinite(y)) return 0;
    if (p->log_x) {
        if (x <= 0) return 0;
        x = log10(x);
    }
    *ax = x;
    *ay = y;
    return 1;
}

/* The data range of one axis with a 4% margin, or the fixed one. */
static void axis_range(const th_plot *p, int is_y, double *lo, double *hi)
{
    if (is_y ? p->y_fixed : p->x_fixed) {
        *lo = is_y ? p->y_lo : p->x_lo;
        *hi = is_y ? p->y_hi : p->x_hi;
        if (!is_y && p->log_x) {
            *lo = *lo > 0 ? log10(*lo) : -1;
            *hi = *hi > 0 ? log10(*hi) : *lo + 1;
            if (!(*lo < *hi)) *hi = *lo + 1;
        }
        return;
    }
    double a = INFINITY, b = -INFINITY;
    for (int i = 0; i < p->n_series; i++)
        for (int j = 0; j < p->series[i].n; j++) {
            double ax, ay;
            if (!axis_point(p, p->series[i].x[j], p->series[i].y[j], &ax, &ay)) continue;
            double v = is_y ? ay : ax;
            a = fmin(a, v);
            b = fmax(b, v);
        }
    if (!(a <= b)) {
        a = 0;
        b = 1;
    }
    if (a == b) {
        double d = a != 0 ? fabs(a) * 0.1 : 0.5;
        a -= d;
        b += d;
    }
    double m = 0.04 * (b - a);
    *lo = a - m;
    *hi = b + m;
}

static void set_rgb(cairo_t *cr, unsigned hex)
{
    cairo_set_source_rgb(cr, ((hex >> 16) & 0xff) / 255.0, ((hex >> 8) & 0xff) / 255.0, (hex & 0xff) / 255.0);
}

/* Snaps a coordinate so that a line of odd pixel width lands on whole pixels. */
static double crisp(double v, double width)
{
    return ((int)lround(width) % 2) ? floor(v) + 0.5 : round(v);
}

static void trace_series(const th_plot *p, const frame *fr, const plot_series *s, cairo_t *cr)
{
    int open = 0;
    for (int j = 0; j < s->n; j++) {
        double ax, ay;
        if (!axis_point(p, s->x[j], s->y[j], &ax, &ay)) {
            open = 0;
            continue;
        }
        if (open)
            cairo_line_to(cr, to_px(fr, ax), to_py(fr, ay));
        else
            cairo_move_to(cr, to_px(fr, ax), to_py(fr, ay));
        open = 1;
    }
}

/* Legend geometry: entries with a label, row height, sample length, and
 * where the second column starts for labels split by a tab. */
typedef struct {
    int n;
    double w, h, row, sample, pad, col2;
} legend_box;

/* A label's text before its first tab (all of it without one) into head;
 * returns what follows the tab, or NULL. */
static const char *legend_split(const char *label, char *head, size_t cap)
{
    const char *tab = strchr(label, '\t');
    size_t n = tab ? (size_t)(tab - label) : strlen(label);
    if (n >= cap) n = cap - 1;
    memcpy(head, label, n);
    head[n] = '\0';
    return tab ? tab + 1 : NULL;
}

static legend_box legend_measure(const pen *g, const th_plot *p)
{
    legend_box b = {0};
    font(g, SIZE_LEGEND, 0);
    double head_w = 0, tail_w = 0, whole_w = 0;
    for (int i = 0; i < p->n_series; i++) {
        if (!p->series[i].label) continue;
        char head[512];
        const char *tail = legend_split(p->series[i].label, head, sizeof head);
        b.n++;
        if (tail) {
            head_w = fmax(head_w, text_width(g, head));
            tail_w = fmax(tail_w, text_width(g, tail));
        } else {
            whole_w = fmax(whole_w, text_width(g, head));
        }
    }
    b.pad = 8 * g->s;
    b.row = 1.55 * SIZE_LEGEND * g->s;
    b.sample = 26 * g->s;
    b.col2 = head_w + (tail_w > 0 ? 0.9 * SIZE_LEGEND * g->s : 0);
    b.w = 2 * b.pad + b.sample + 7 * g->s + fmax(whole_w, b.col2 + tail_w);
    /* Rows of cap height, with room for descenders under the last. */
    b.h = 2 * b.pad + (b.n - 1) * b.row + 0.95 * SIZE_LEGEND * g->s;
    return b;
}

/* Counts the samples, every `step` px along the segment from (x0,y0) to
 * (x1,y1) in pixels, that fall inside the box. */
static long segment_hits(double x0, double y0, double x1, double y1, double bx, double by, double bw, double bh,
                         double step)
{
    int steps = (int)fmin(1e4, ceil(hypot(x1 - x0, y1 - y0) / step));
    long hits = 0;
    for (int k = 1; k <= steps; k++) {
        double t = (double)k / steps, x = x0 + t * (x1 - x0), y = y0 + t * (y1 - y0);
        hits += x >= bx && x <= bx + bw && y >= by && y <= by + bh;
    }
    return hits;
}

/* How much of what is drawn a legend box at (bx, by) would hide. */
static long covered(const th_plot *p, const frame *fr, double bx, double by, double bw, double bh)
{
    const double step = 2.0;
    long hits = 0;
    if (p->diagonal) {
        double lo = fmax(fr->x0, fr->y0), hi = fmin(fr->x1, fr->y1);
        hits += segment_hits(to_px(fr, lo), to_py(fr, lo), to_px(fr, hi), to_py(fr, hi), bx, by, bw, bh, step);
    }
    for (int i = 0; i < p->n_series; i++) {
        const plot_series *s = &p->series[i];
        int open = 0;
        double lx = 0, ly = 0;
        for (int j = 0; j < s->n; j++) {
            double ax, ay;
            if (!axis_point(p, s->x[j], s->y[j], &ax, &ay)) {
                open = 0;
                continue;
            }
            double x = to_px(fr, ax), y = to_py(fr, ay);
            if (open && !(s->style & TH_PLOT_NO_LINE))
                hits += segment_hits(lx, ly, x, y, bx, by, bw, bh, step);
            else
                hits += x >= bx && x <= bx + bw && y >= by && y <= by + bh;
            lx = x;
            ly = y;
            open = 1;
        }
    }
    return hits;
}

static void legend_place(const th_plot *p, const frame *fr, const legend_box *b, double inset, double *bx,
                         double *by)
{
    double l = fr->px + inset, r = fr->px + fr->pw - inset - b->w;
    double t = fr->py + inset, bo = fr->py + fr->ph - inset - b->h;
    double cx = fr->px + (fr->pw - b->w) / 2, cy = fr->py + (fr->ph - b->h) / 2;
    /* matplotlib's order of preference for "best", corners first. */
    double cand[][2] = {{r, t}, {l, t}, {l, bo}, {r, bo}, {r, cy}, {l, cy}, {cx, bo}, {cx, t}, {cx, cy}};
    int pick = 0;
    switch (p->legend) {
    case TH_LEGEND_UPPER_RIGHT: pick = 0; break;
    case TH_LEGEND_UPPER_LEFT: pick = 1; break;
    case TH_LEGEND_LOWER_LEFT: pick = 2; break;
    case TH_LEGEND_LOWER_RIGHT: pick = 3; break;
    default: {
        long best = -1;
        for (int i = 0; i < (int)(sizeof cand / sizeof cand[0]); i++) {
            long c = covered(p, fr, cand[i][0], cand[i][1], b->w, b->h);
            if (best < 0 || c < best) {
                best = c;
                pick = i;
            }
        }
    }
    }
    *bx = cand[pick][0];
    *by = cand[pick][1];
}

static void rounded_rect(cairo_t *cr, double x, double y, double w, double h, double r)
{
    cairo_new_sub_path(cr);
    cairo_arc(cr, x + w - r, y + r, r, -TH_PI / 2, 0);
    cairo_arc(cr, x + w - r, y + h - r, r, 0, TH_PI / 2);
    cairo_arc(cr, x + r, y + h - r, r, TH_PI / 2, TH_PI);
    cairo_arc(cr, x + r, y + r, r, TH_PI, 3 * TH_PI / 2);
    cairo_close_path(cr);
}

static void series_stroke_style(const pen *g, const plot_series *s)
{
    cairo_t *cr = g->cr;
    const double *c = palette[s->color];
    cairo_set_source_rgb(cr, c[0], c[1], c[2]);
    cairo_set_line_width(cr, 2.0 * g->s);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
    double dash[] = {7 * g->s, 4 * g->s};
    cairo_set_dash(cr, dash, s->dashed ? 2 : 0, 0);
}

static void draw_legend(const pen *g, const th_plot *p, const frame *fr)
{
    if (p->legend == TH_LEGEND_NONE) return;
    legend_box b = legend_measure(g, p);
    if (b.n == 0) return;
    double bx, by;
    legend_place(p, fr, &b, 10 * g->s, &bx, &by);
    cairo_t *cr = g->cr;
    rounded_rect(cr, bx, by, b.w, b.h, 4 * g->s);
    cairo_set_source_rgba(cr, 1, 1, 1, 0.88);
    cairo_fill_preserve(cr);
    set_rgb(cr, 0xcccccc);
    cairo_set_line_width(cr, 1);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_stroke(cr);
    font(g, SIZE_LEGEND, 0);
    double h = cap_height(g);
    int row = 0;
    for (int i = 0; i < p->n_series; i++) {
        const plot_series *s = &p->series[i];
        if (!s->label) continue;
        double cy = by + b.pad + 0.1 * SIZE_LEGEND * g->s + h / 2 + row * b.row;
        series_stroke_style(g, s);
        if (!(s->style & TH_PLOT_NO_LINE)) {
            cairo_move_to(cr, bx + b.pad, cy);
            cairo_line_to(cr, bx + b.pad + b.sample, cy);
            cairo_stroke(cr);
        }
        if (s->style & TH_PLOT_MARKERS) {
            cairo_arc(cr, bx + b.pad + b.sample / 2, cy, 3.2 * g->s, 0, 2 * TH_PI);
            cairo_fill(cr);
        }
        set_rgb(cr, 0x222222);
        font(g, SIZE_LEGEND, 0);
        char head[512];
        const char *tail = legend_split(s->label, head, sizeof head);
        double tx = bx + b.pad + b.sample + 7 * g->s;
        text_at(g, head, tx, cy, 0, 0.5);
        if (tail) text_at(g, tail, tx + b.col2, cy, 0, 0.5);
        row++;
    }
}

/* Integer ticks only (epochs): the 1-2-5 ticks that fall on whole numbers,
 * or every whole number in [lo, hi] when the step is below 1. */
static int integer_ticks(tick *t, int n, double lo, double hi)
{
    int kept = 0;
    for (int i = 0; i < n; i++)
        if (!t[i].minor && fabs(t[i].at - round(t[i].at)) < 1e-9) {
            t[kept] = t[i];
            snprintf(t[kept].text, sizeof t[kept].text, "%.0f", round(t[i].at));
            kept++;
        }
    if (kept >= 2) return kept;
    kept = 0;
    for (double v = ceil(lo); v <= hi && kept < MAX_TICKS; v++) {
        t[kept] = (tick){.at = v};
        snprintf(t[kept].text, sizeof t[kept].text, "%.0f", v);
        kept++;
    }
    return kept;
}

static void draw_panel(const pen *g, const th_plot *p, double x0, double y0, double w, double h)
{
    cairo_t *cr = g->cr;
    double s = g->s, pad = 14 * s, tick_len = 5 * s, gap = 4 * s;
    frame fr;
    axis_range(p, 0, &fr.x0, &fr.x1);
    axis_range(p, 1, &fr.y0, &fr.y1);

    font(g, SIZE_TITLE, 1);
    double top = pad + (p->title ? cap_height(g) + 14 * s : 0);
    font(g, SIZE_TICK, 0);
    double tick_h = cap_height(g) * (p->log_x ? 1.3 : 1.0); /* exponents stand higher */
    font(g, SIZE_LABEL, 0);
    double label_h = cap_height(g);
    double bottom = pad + tick_len + gap + tick_h + (p->xlabel ? 12 * s + label_h : 0);
    fr.ph = h - top - bottom;
    if (fr.ph < 8) return; /* no room for a plot: leave the panel blank */

    tick yt[MAX_TICKS], xt[MAX_TICKS];
    int target_y = (int)fmax(3, fmin(10, fr.ph / (75 * s)));
    int nyt = plot_linear_ticks(fr.y0, fr.y1, target_y, yt);
    double widest = 0;
    for (int i = 0; i < nyt; i++) widest = fmax(widest, tick_width(g, &yt[i], SIZE_TICK));
    double left = pad + (p->ylabel ? label_h + 12 * s : 0) + widest + gap + tick_len;

    /* Half of the last x label may hang past the frame: keep it inside. */
    double pw_guess = w - left - pad;
    /* Decade labels are short: a log axis can carry more of them. */
    int target_x = (int)fmax(3, fmin(p->log_x ? 16 : 10, pw_guess / ((p->log_x ? 60 : 95) * s)));
    int nxt = p->log_x ? plot_log_ticks(fr.x0, fr.x1, target_x, xt) : plot_linear_ticks(fr.x0, fr.x1, target_x, xt);
    if (p->x_integer) nxt = integer_ticks(xt, nxt, fr.x0, fr.x1);
    double right = pad;
    for (int i = nxt - 1; i >= 0; i--)
        if (!xt[i].minor) {
            double hang = tick_width(g, &xt[i], SIZE_TICK) / 2 - (fr.x1 - xt[i].at) / (fr.x1 - fr.x0) * pw_guess;
            right = fmax(right, hang + 4 * s);
            break;
        }
    fr.px = x0 + left;
    fr.py = y0 + top;
    fr.pw = w - left - right;
    if (fr.pw < 8) return;

    /* Grid under everything else. */
    cairo_set_line_width(cr, 1);
    cairo_set_dash(cr, NULL, 0, 0);
    for (int i = 0; i < nxt; i++) {
        double x = crisp(to_px(&fr, xt[i].at), 1);
        set_rgb(cr, xt[i].minor ? 0xf4f4f4 : 0xe3e3e3);
        cairo_move_to(cr, x, fr.py);
        cairo_line_to(cr, x, fr.py + fr.ph);
        cairo_stroke(cr);
    }
    set_rgb(cr, 0xe3e3e3);
    for (int i = 0; i < nyt; i++) {
        double y = crisp(to_py(&fr, yt[i].at), 1);
        cairo_move_to(cr, fr.px, y);
        cairo_line_to(cr, fr.px + fr.pw, y);
        cairo_stroke(cr);
    }

    cairo_save(cr);
    cairo_rectangle(cr, fr.px, fr.py, fr.pw, fr.ph);
    cairo_clip(cr);
    if (p->diagonal) {
        double lo = fmax(fr.x0, fr.y0), hi = fmin(fr.x1, fr.y1);
        set_rgb(cr, 0x8a8a8a);
        cairo_set_line_width(cr, 1.3 * s);
        double dash[] = {5 * s, 4 * s};
        cairo_set_dash(cr, dash, 2, 0);
        cairo_move_to(cr, to_px(&fr, lo), to_py(&fr, lo));
        cairo_line_to(cr, to_px(&fr, hi), to_py(&fr, hi));
        cairo_stroke(cr);
    }
    for (int i = 0; i < p->n_vlines; i++) {
        set_rgb(cr, 0x555555);
        cairo_set_line_width(cr, 1.3 * s);
        double dash[] = {2 * s, 3 * s};
        cairo_set_dash(cr, dash, 2, 0);
        double x = crisp(to_px(&fr, p->vline[i]), 1);
        cairo_move_to(cr, x, fr.py);
        cairo_line_to(cr, x, fr.py + fr.ph);
        cairo_stroke(cr);
    }
    for (int i = 0; i < p->n_series; i++) {
        const plot_series *ps = &p->series[i];
        series_stroke_style(g, ps);
        if (!(ps->style & TH_PLOT_NO_LINE)) {
            trace_series(p, &fr, ps, cr);
            cairo_stroke(cr);
        }
        if (ps->style & TH_PLOT_MARKERS)
            for (int j = 0; j < ps->n; j++) {
                double ax, ay;
                if (!axis_point(p, ps->x[j], ps->y[j], &ax, &ay)) continue;
                cairo_new_sub_path(cr);
                cairo_arc(cr, to_px(&fr, ax), to_py(&fr, ay), 3.2 * s, 0, 2 * TH_PI);
                cairo_fill(cr);
            }
    }
    cairo_restore(cr);

    /* Frame, ticks and their labels. */
    set_rgb(cr, 0x333333);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, crisp(fr.px, 1), crisp(fr.py, 1), round(fr.pw), round(fr.ph));
    cairo_stroke(cr);
    double base = fr.py + fr.ph;
    for (int i = 0; i < nxt; i++) {
        double x = crisp(to_px(&fr, xt[i].at), 1);
        cairo_move_to(cr, x, base);
        cairo_line_to(cr, x, base + (xt[i].minor ? 0.6 : 1) * tick_len);
        cairo_stroke(cr);
        if (!xt[i].minor) tick_text(g, &xt[i], SIZE_TICK, x, base + tick_len + gap + tick_h, 0.5, 1);
    }
    for (int i = 0; i < nyt; i++) {
        double y = crisp(to_py(&fr, yt[i].at), 1);
        cairo_move_to(cr, fr.px - tick_len, y);
        cairo_line_to(cr, fr.px, y);
        cairo_stroke(cr);
        tick_text(g, &yt[i], SIZE_TICK, fr.px - tick_len - gap, y, 1, 0.5);
    }

    set_rgb(cr, 0x222222);
    if (p->xlabel) {
        font(g, SIZE_LABEL, 0);
        text_at(g, p->xlabel, fr.px + fr.pw / 2, y0 + h - pad, 0.5, 1);
    }
    if (p->ylabel) {
        font(g, SIZE_LABEL, 0);
        cairo_save(cr);
        cairo_translate(cr, x0 + pad, fr.py + fr.ph / 2);
        cairo_rotate(cr, -TH_PI / 2);
        text_at(g, p->ylabel, 0, 0, 0.5, 0);
        cairo_restore(cr);
    }
    if (p->title) {
        font(g, SIZE_TITLE, 1);
        text_at(g, p->title, fr.px + fr.pw / 2, y0 + pad, 0.5, 0);
    }
    draw_legend(g, p, &fr);
}

/* ---- the figure ------------------------------------------------------------ */

void plot_draw_figure(cairo_t *cr, const th_figure *f)
{
    double panel_w = (double)f->width / f->n_cols;
    pen g = {cr, fmin(2.5, fmax(0.75, fmin(panel_w, (double)f->height / f->n_rows) / 600.0))};

    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    double top = 0;
    if (f->title) {
        font(&g, SIZE_TITLE + 2, 1);
        set_rgb(cr, 0x111111);
        top = 16 * g.s + cap_height(&g);
        text_at(&g, f->title, f->width / 2.0, 16 * g.s, 0.5, 0);
        top += 4 * g.s;
    }
    double panel_h = (f->height - top) / f->n_rows;
    for (int k = 0; k < f->n_panels; k++)
        if (f->panels[k].n_series || f->panels[k].title) /* a grid's spare cells stay blank */
            draw_panel(&g, &f->panels[k], (k % f->n_cols) * panel_w, top + (k / f->n_cols) * panel_h, panel_w, panel_h);
}

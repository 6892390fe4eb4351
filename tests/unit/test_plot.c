/* test_plot.c - the plot module: nice ticks, and figures that decode as PNG
 * with text actually rendered (fonts found), series in their palette colour
 * where the data says, and errors that name the file.
 */
#include <cairo.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "thorax/render.h"

static void check_ticks(double lo, double hi, int target, int n_want, double first, double step_want)
{
    double t[64], step;
    int n = th_plot_nice_ticks(lo, hi, target, t, 64, &step);
    if (!CHECK(n == n_want)) fprintf(stderr, "ticks of [%g, %g]: %d, wanted %d\n", lo, hi, n, n_want);
    CHECK_NEAR(step, step_want, 1e-12);
    if (n > 0) CHECK_NEAR(t[0], first, 1e-12);
    for (int i = 1; i < n && i < 64; i++) CHECK_NEAR(t[i] - t[i - 1], step, 1e-9);
}

static void test_ticks(void)
{
    check_ticks(0, 1, 5, 6, 0, 0.2);
    check_ticks(-0.01, 1.01, 5, 6, 0, 0.2);
    check_ticks(0.55, 0.87, 6, 7, 0.55, 0.05);
    check_ticks(0, 30, 6, 7, 0, 5);
    check_ticks(-3.2, 7.9, 5, 5, -2, 2);
    check_ticks(1e-5, 9e-5, 4, 4, 2e-5, 2e-5);
    double t[4], step;
    CHECK(th_plot_nice_ticks(3, 3, 5, t, 4, &step) == 0);
    CHECK(th_plot_nice_ticks(0, NAN, 5, t, 4, &step) == 0);
    /* More ticks than room: the count is still the full one. */
    CHECK(th_plot_nice_ticks(0, 100, 50, t, 4, &step) > 4);
    /* Zero is printed as 0, not -0. */
    CHECK(th_plot_nice_ticks(-1, 1, 4, t, 4, &step) >= 3 && !signbit(t[2]));
}

/* Pixels of [x0, x1) x [y0, y1) within tol of colour rgb (0xRRGGBB). */
static long count_colour(cairo_surface_t *img, int x0, int y0, int x1, int y1, unsigned rgb, int tol)
{
    const unsigned char *data = cairo_image_surface_get_data(img);
    int stride = cairo_image_surface_get_stride(img);
    long n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            uint32_t px;
            memcpy(&px, data + (size_t)y * stride + (size_t)x * 4, 4);
            int dr = (int)((px >> 16) & 0xff) - (int)((rgb >> 16) & 0xff);
            int dg = (int)((px >> 8) & 0xff) - (int)((rgb >> 8) & 0xff);
            int db = (int)(px & 0xff) - (int)(rgb & 0xff);
            n += abs(dr) <= tol && abs(dg) <= tol && abs(db) <= tol;
        }
    return n;
}

static void test_figure(const char *dir)
{
    th_err err = {{0}};
    char path[512];
    snprintf(path, sizeof path, "%s/curves.png", dir);

    /* Two panels; a thick horizontal line at y = 0.5 in the left one lands
     * in its middle rows, and nowhere in the right one. */
    th_figure *f = th_figure_new(1000, 400, 2, "Figure title", &err);
    CHECK(f != NULL);
    if (!f) return;
    CHECK(th_figure_panel(f, 2) == NULL && th_figure_panel(f, -1) == NULL);
    th_plot *a = th_figure_panel(f, 0), *b = th_figure_panel(f, 1);
    double x[] = {0, 1, 2, 3}, y[] = {0.5, 0.5, 0.5, 0.5}, y2[] = {1, NAN, 3, 4};
    th_plot_labels(a, "Loss", "Epoch", "Loss");
    th_plot_yrange(a, 0, 1);
    th_plot_series(a, 4, x, y, "flat", TH_PLOT_SOLID);
    th_plot_labels(b, "AUC", "Epoch", NULL);
    th_plot_series(b, 4, x, y2, "with a gap", TH_PLOT_COLOR(3) | TH_PLOT_MARKERS | TH_PLOT_DASHED);
    CHECK(th_figure_write_png(f, path, &err) == 0);
    th_figure_free(f);

    cairo_surface_t *img = cairo_image_surface_create_from_png(path);
    CHECK(cairo_surface_status(img) == CAIRO_STATUS_SUCCESS);
    if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS) return;
    CHECK(cairo_image_surface_get_width(img) == 1000 && cairo_image_surface_get_height(img) == 400);
    cairo_surface_flush(img);
    /* Text rendered: dark pixels in the band of the figure title. */
    CHECK(count_colour(img, 350, 0, 650, 30, 0x111111, 60) > 40);
    /* Background white in a corner. */
    CHECK(count_colour(img, 0, 390, 10, 400, 0xffffff, 0) == 100);
    /* tab10 blue (first series) in the left panel only; red (entry 3) right. */
    long blue_left = count_colour(img, 0, 0, 500, 400, 0x1f77b4, 8);
    long blue_right = count_colour(img, 500, 0, 1000, 400, 0x1f77b4, 8);
    CHECK(blue_left > 300 && blue_right == 0);
    CHECK(count_colour(img, 500, 0, 1000, 400, 0xd62728, 8) > 30);
    cairo_surface_destroy(img);
}

static void test_log_axis(const char *dir)
{
    th_err err = {{0}};
    char path[512];
    snprintf(path, sizeof path, "%s/lr.png", dir);
    th_figure *f = th_figure_new(600, 400, 1, NULL, &err);
    th_plot *p = th_figure_panel(f, 0);
    double lr[] = {0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1}, loss[] = {9, 0.7, 0.69, 0.6, 0.4, 0.5, 2};
    th_plot_labels(p, "LR finder", "Learning rate", "Loss");
    th_plot_log_x(p);
    th_plot_series(p, 7, lr, loss, "loss", TH_PLOT_SOLID); /* lr 0 is skipped, not log(0) */
    th_plot_legend(p, TH_LEGEND_NONE);
    CHECK(th_figure_write_png(f, path, &err) == 0);
    th_figure_free(f);
    cairo_surface_t *img = cairo_image_surface_create_from_png(path);
    CHECK(cairo_surface_status(img) == CAIRO_STATUS_SUCCESS && cairo_image_surface_get_width(img) == 600);
    cairo_surface_destroy(img);

    /* Under a decade, and an empty panel: still a valid figure. */
    f = th_figure_new(300, 200, 2, NULL, &err);
    p = th_figure_panel(f, 0);
    th_plot_log_x(p);
    th_plot_xrange(p, 0.02, 0.05);
    th_plot_series(p, 2, (double[]){0.02, 0.05}, (double[]){1, 2}, NULL, TH_PLOT_SOLID);
    CHECK(th_figure_write_png(f, path, &err) == 0);
    th_figure_free(f);
}

static void test_errors(const char *dir)
{
    th_err err = {{0}};
    CHECK(th_figure_new(10, 10, 1, NULL, &err) == NULL);
    CHECK(strstr(err.msg, "10x10") != NULL);
    CHECK(th_figure_new(800, 600, 0, NULL, &err) == NULL);
    /* The smallest figure has no room for axes, yet renders. */
    th_figure *f = th_figure_new(64, 64, 1, "A title far too long for sixty-four pixels", &err);
    char path[512];
    snprintf(path, sizeof path, "%s/tiny.png", dir);
    th_plot_labels(th_figure_panel(f, 0), "t", "x", "y");
    th_plot_series(th_figure_panel(f, 0), 2, (double[]){0, 1}, (double[]){0, 1}, "s", TH_PLOT_SOLID);
    CHECK(th_figure_write_png(f, path, &err) == 0);
    th_figure_free(f);

    f = th_figure_new(200, 200, 1, NULL, &err);
    snprintf(path, sizeof path, "%s/no/such/dir/x.png", dir);
    CHECK(th_figure_write_png(f, path, &err) == -1);
    CHECK(strstr(err.msg, "x.png") != NULL);
    th_figure_free(f);
    th_figure_free(NULL);
}

int main(void)
{
    test_ticks();
    char dir[] = "/tmp/thorax_test_plot_XXXXXX";
    if (CHECK(mkdtemp(dir) != NULL)) {
        test_figure(dir);
        test_log_axis(dir);
        test_errors(dir);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    return th_test_summary("test_plot");
}

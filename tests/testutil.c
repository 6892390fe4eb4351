/* testutil.c - see testutil.h. */
#include "testutil.h"

#include "thorax/util.h"

int th_test_passed, th_test_failed;

int th_test_check(int ok, const char *file, int line, const char *what)
{
    if (ok) {
        th_test_passed++;
        return 1;
    }
    th_test_failed++;
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    return 0;
}

int th_test_near(double a, double b, double tol, const char *file, int line, const char *sa, const char *sb)
{
    if (fabs(a - b) <= tol) {
        th_test_passed++;
        return 1;
    }
    th_test_failed++;
    fprintf(stderr, "%s:%d: %s = %.9g, %s = %.9g, differ by %.3g > %.3g\n", file, line, sa, a, sb, b, fabs(a - b), tol);
    return 0;
}

int th_test_close(double a, double b, double rtol, double floor)
{
    return fabs(a - b) <= rtol * fmax(fmax(fabs(a), fabs(b)), floor);
}

int th_test_rel(double a, double b, double rtol, double floor, const char *file, int line, const char *sa, const char *sb)
{
    double scale = fmax(fmax(fabs(a), fabs(b)), floor);
    if (th_test_close(a, b, rtol, floor)) {
        th_test_passed++;
        return 1;
    }
    th_test_failed++;
    fprintf(stderr, "%s:%d: %s = %.9g, %s = %.9g, relative difference %.3g > %.3g\n", file, line, sa, a, sb, b,
            fabs(a - b) / scale, rtol);
    return 0;
}

int th_test_summary(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, th_test_passed, th_test_failed);
    return th_test_failed ? 1 : 0;
}

void th_test_fill(float *x, size_t n, float lo, float hi, unsigned long seed)
{
    th_rng r;
    th_rng_seed(&r, seed, 7);
    for (size_t i = 0; i < n; i++) x[i] = (float)th_rng_range(&r, lo, hi);
}

double th_test_max_rel(const float *a, const float *b, size_t n, double floor)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double s = fmax(fmax(fabs(a[i]), fabs(b[i])), floor);
        double d = fabs((double)a[i] - b[i]) / s;
        if (d > worst) worst = d;
    }
    return worst;
}

th_layer_spec th_test_layer(th_layer_type t, int out, int k, int stride, int pad)
{
    th_layer_spec s = {.type = t, .out = out, .k = k, .stride = stride, .pad = pad, .bias = 1,
                       .momentum = 0.1f, .eps = 1e-5f};
    return s;
}

/* testutil.h - tiny assertion helpers shared by the C tests.
 *
 * A failed check prints file:line and the values, and counts; a test's main
 * ends with `return th_test_summary("name");`, which prints
 * "name: N passed, M failed" and returns non-zero on any failure.
 */
#ifndef THORAX_TESTUTIL_H
#define THORAX_TESTUTIL_H

#include <math.h>
#include <stdio.h>
#include "thorax/spec.h"

extern int th_test_passed, th_test_failed;

#define CHECK(cond) th_test_check((cond), __FILE__, __LINE__, #cond)
#define CHECK_NEAR(a, b, tol) th_test_near((double)(a), (double)(b), (double)(tol), __FILE__, __LINE__, #a, #b)
/* |a-b| <= rtol * max(|a|, |b|, floor) */
#define CHECK_REL(a, b, rtol, floor) th_test_rel((double)(a), (double)(b), (double)(rtol), (double)(floor), __FILE__, __LINE__, #a, #b)

int th_test_check(int ok, const char *file, int line, const char *what);
int th_test_near(double a, double b, double tol, const char *file, int line, const char *sa, const char *sb);
int th_test_rel(double a, double b, double rtol, double floor, const char *file, int line, const char *sa, const char *sb);
int th_test_summary(const char *name);
/* The test of CHECK_REL without counting or printing. */
int th_test_close(double a, double b, double rtol, double floor);

/* Fills x[n] with uniform values in [lo, hi) from a fixed seed. */
void th_test_fill(float *x, size_t n, float lo, float hi, unsigned long seed);

/* Largest relative difference between a[n] and b[n], relative to max(|a|,|b|,floor). */
double th_test_max_rel(const float *a, const float *b, size_t n, double floor);

/* A layer as a config would give it: conv and dense with a bias, batch-norm
 * with PyTorch's momentum 0.1 and eps 1e-5, everything else 0. */
th_layer_spec th_test_layer(th_layer_type t, int out, int k, int stride, int pad);

#endif

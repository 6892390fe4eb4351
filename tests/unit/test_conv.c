/* test_conv.c - the im2col + GEMM convolution against a direct 7-loop
 * convolution over odd sizes, strides, paddings, batches and with/without
 * bias; and im2col/col2im adjointness: <im2col(x), c> == <x, col2im(c)>. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "thorax/conv.h"

/* y[n,k,oy,ox] = b[k] + sum_{c,i,j} w[k,c,i,j] * x[n,c,oy*s-p+i,ox*s-p+j], in double. */
static void naive_conv(const th_conv_dims *d, const float *x, const float *w, const float *b, float *y)
{
    for (int n = 0; n < d->n; n++)
        for (int k = 0; k < d->k; k++)
            for (int oy = 0; oy < d->oh; oy++)
                for (int ox = 0; ox < d->ow; ox++) {
                    double sum = b ? b[k] : 0.0;
                    for (int c = 0; c < d->c; c++)
                        for (int i = 0; i < d->kh; i++)
                            for (int j = 0; j < d->kw; j++) {
                                int iy = oy * d->stride - d->pad + i, ix = ox * d->stride - d->pad + j;
                                if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w) continue;
                                sum += (double)w[((k * d->c + c) * d->kh + i) * d->kw + j] *
                                       x[((n * d->c + c) * d->h + iy) * d->w + ix];
                            }
                    y[((n * d->k + k) * d->oh + oy) * d->ow + ox] = (float)sum;
                }
}

static void check_forward(int n, int c, int h, int w, int k, int ks, int stride, int pad, int bias)
{
    th_conv_dims d;
    if (!CHECK(th_conv_dims_init(&d, n, c, h, w, k, ks, ks, stride, pad) == 0)) return;
    size_t nx = (size_t)n * c * h * w, nw = (size_t)k * c * ks * ks, ny = (size_t)n * k * d.oh * d.ow;
    float *x = malloc(nx * sizeof *x), *wt = malloc(nw * sizeof *wt), *b = malloc(k * sizeof *b);
    float *y = malloc(ny * sizeof *y), *ref = malloc(ny * sizeof *ref);
    float *col = malloc(th_conv_col_floats(&d) * sizeof *col), *tmp = malloc(th_conv_tmp_floats(&d) * sizeof *tmp);
    th_test_fill(x, nx, -1, 1, 1);
    th_test_fill(wt, nw, -1, 1, 2);
    th_test_fill(b, k, -1, 1, 3);

    /* Poison the scratch: the forward must not depend on its contents. */
    memset(col, 0xff, th_conv_col_floats(&d) * sizeof *col);
    th_conv_forward(&d, x, wt, bias ? b : NULL, y, col, tmp);
    naive_conv(&d, x, wt, bias ? b : NULL, ref);
    /* Floor 1: outputs are sums of up to 75 products of values in [-1, 1],
     * and float rounding of such a sum is absolute, not relative to a
     * result that happens to cancel to near zero. */
    double err = th_test_max_rel(y, ref, ny, 1.0);
    if (!CHECK(err < 1e-5))
        fprintf(stderr, "  conv n=%d c=%d %dx%d k=%d ks=%d s=%d p=%d bias=%d: max rel err %g\n", n, c, h, w, k, ks,
                stride, pad, bias, err);
    free(x), free(wt), free(b), free(y), free(ref), free(col), free(tmp);
}

/* <im2col(x), c> == <x, col2im(c)>, each image written at its own column
 * offset in a batch-wide matrix as the forward pass does. */
static void check_adjoint(int c, int h, int w, int ks, int stride, int pad)
{
    const int n = 2;
    th_conv_dims d;
    if (!CHECK(th_conv_dims_init(&d, n, c, h, w, 1, ks, ks, stride, pad) == 0)) return;
    size_t nx = (size_t)n * c * h * w, ncol = th_conv_col_floats(&d);
    size_t p = (size_t)d.oh * d.ow, ld = n * p, chw = (size_t)c * h * w;
    float *x = malloc(nx * sizeof *x), *col = malloc(ncol * sizeof *col);
    float *cr = malloc(ncol * sizeof *cr), *xr = calloc(nx, sizeof *xr);
    th_test_fill(x, nx, -1, 1, 11);
    th_test_fill(cr, ncol, -1, 1, 12);
    for (int i = 0; i < n; i++) {
        th_im2col(&d, x + i * chw, col, ld, i * p);
        th_col2im(&d, cr, ld, i * p, xr + i * chw);
    }
    double lhs = 0, rhs = 0;
    for (size_t i = 0; i < ncol; i++) lhs += (double)col[i] * cr[i];
    for (size_t i = 0; i < nx; i++) rhs += (double)x[i] * xr[i];
    CHECK_REL(lhs, rhs, 1e-6, 1.0);
    free(x), free(col), free(cr), free(xr);
}

int main(void)
{
    /* Output lengths, including kernels that do not fit. */
    CHECK(th_conv_out_len(7, 3, 1, 0) == 5);
    CHECK(th_conv_out_len(7, 3, 2, 1) == 4);
    CHECK(th_conv_out_len(256, 3, 1, 1) == 256);
    CHECK(th_conv_out_len(2, 5, 1, 0) <= 0);
    CHECK(th_conv_out_len(4, 5, 2, 0) <= 0);
    th_conv_dims d;
    CHECK(th_conv_dims_init(&d, 1, 1, 2, 2, 1, 3, 3, 1, 0) == -1);
    CHECK(th_conv_dims_init(&d, 2, 3, 9, 11, 4, 3, 5, 2, 1) == 0 && d.oh == 5 && d.ow == 5);

    const int sizes[][2] = {{7, 5}, {9, 11}};
    const int kernels[] = {1, 3, 5};
    for (int si = 0; si < 2; si++)
        for (int c = 1; c <= 3; c += 2)
            for (int k = 2; k <= 4; k += 2)
                for (int ki = 0; ki < 3; ki++)
                    for (int stride = 1; stride <= 2; stride++)
                        for (int pad = 0; pad <= (kernels[ki] == 5 ? 2 : 1); pad++)
                            for (int n = 1; n <= 3; n += 2)
                                for (int bias = 0; bias <= 1; bias++)
                                    check_forward(n, c, sizes[si][0], sizes[si][1], k, kernels[ki], stride, pad,
                                                  bias);

    /* A padding larger than the kernel reach: whole rows and columns of the
     * column matrix are padding. */
    check_forward(2, 2, 5, 6, 3, 3, 2, 3, 1);
    check_forward(1, 1, 3, 3, 1, 1, 1, 2, 1);

    check_adjoint(1, 7, 5, 3, 1, 1);
    check_adjoint(3, 9, 11, 3, 2, 1);
    check_adjoint(2, 9, 11, 5, 2, 2);
    check_adjoint(3, 8, 8, 5, 1, 0);
    check_adjoint(2, 6, 7, 3, 3, 4);

    return th_test_summary("test_conv");
}

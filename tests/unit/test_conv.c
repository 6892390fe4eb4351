/* test_conv.c - the im2col + GEMM convolution against a direct 7-loop
 * convolution over odd sizes, strides, paddings, batches, with/without bias
 * and fused ReLU, on 1-3 threads and several column blocks; its backward
 * against the direct loops' gradients with the images grouped 1, 2 and 3 at
 * a time; and im2col/col2im adjointness: <im2col(x), c> == <x, col2im(c)>. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "conv.h"
#include "gemm.h"

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

/* The forward against the naive loop, on 1 to 3 threads, with the columns
 * made in the chosen blocks and in blocks of 1 and 2 rows, with and without
 * the fused ReLU. The number of threads must not change a single bit: it only
 * decides who computes which image. (The block size may: OpenBLAS treats the
 * edges of a product of another width with other kernels.) */
static void check_forward(int n, int c, int h, int w, int k, int ks, int stride, int pad, int bias)
{
    th_conv_dims d;
    if (!CHECK(th_conv_dims_init(&d, n, c, h, w, k, ks, ks, stride, pad) == 0)) return;
    size_t nx = (size_t)n * c * h * w, nw = (size_t)k * c * ks * ks, ny = (size_t)n * k * d.oh * d.ow;
    float *x = malloc(nx * sizeof *x), *wt = malloc(nw * sizeof *wt), *b = malloc(k * sizeof *b);
    float *y = malloc(ny * sizeof *y), *ref = malloc(ny * sizeof *ref), *first = malloc(3 * ny * sizeof *first);
    th_test_fill(x, nx, -1, 1, 1);
    th_test_fill(wt, nw, -1, 1, 2);
    th_test_fill(b, k, -1, 1, 3);
    naive_conv(&d, x, wt, bias ? b : NULL, ref);

    th_workspace ws = {0};
    th_err err;
    const int blocks[] = {d.block_rows, 1, 2};
    for (int relu = 0; relu <= 1; relu++) {
        if (relu)
            for (size_t i = 0; i < ny; i++) ref[i] = ref[i] > 0 ? ref[i] : 0;
        for (int threads = 1; threads <= 3; threads++) {
            for (int bi = 0; bi < 3; bi++) {
                d.block_rows = blocks[bi] < d.oh ? blocks[bi] : d.oh;
                CHECK(th_workspace_reserve(&ws, threads, th_conv_workspace_floats(&d), &err) == 0);
                /* Poison the scratch: the forward must not depend on its contents. */
                memset(ws.buf, 0xff, ws.capacity * sizeof *ws.buf);
                th_conv_forward(&d, x, wt, bias ? b : NULL, y, relu, &ws);
                /* Floor 1: outputs are sums of up to 75 products of values in
                 * [-1, 1], and float rounding of such a sum is absolute, not
                 * relative to a result that happens to cancel to near zero. */
                double e = th_test_max_rel(y, ref, ny, 1.0);
                if (!CHECK(e < 1e-5))
                    fprintf(stderr, "  conv n=%d c=%d %dx%d k=%d ks=%d s=%d p=%d bias=%d relu=%d: max rel err %g\n",
                            n, c, h, w, k, ks, stride, pad, bias, relu, e);
                if (threads == 1) memcpy(first + bi * ny, y, ny * sizeof *y);
                else CHECK(memcmp(first + bi * ny, y, ny * sizeof *y) == 0);
            }
        }
    }
    th_workspace_free(&ws);
    free(x), free(wt), free(b), free(y), free(ref), free(first);
}

/* The gradients of sum(y * g) in double: dx [N,C,H,W], dw [K,C,KH,KW], db [K]. */
static void naive_conv_backward(const th_conv_dims *d, const float *x, const float *w, const float *g, double *dx,
                                double *dw, double *db)
{
    memset(dx, 0, (size_t)d->n * d->c * d->h * d->w * sizeof *dx);
    memset(dw, 0, (size_t)d->k * d->c * d->kh * d->kw * sizeof *dw);
    memset(db, 0, (size_t)d->k * sizeof *db);
    for (int n = 0; n < d->n; n++)
        for (int k = 0; k < d->k; k++)
            for (int oy = 0; oy < d->oh; oy++)
                for (int ox = 0; ox < d->ow; ox++) {
                    double gv = g[((n * d->k + k) * d->oh + oy) * d->ow + ox];
                    db[k] += gv;
                    for (int c = 0; c < d->c; c++)
                        for (int i = 0; i < d->kh; i++)
                            for (int j = 0; j < d->kw; j++) {
                                int iy = oy * d->stride - d->pad + i, ix = ox * d->stride - d->pad + j;
                                if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w) continue;
                                size_t wi = ((size_t)(k * d->c + c) * d->kh + i) * d->kw + j;
                                size_t xi = ((size_t)(n * d->c + c) * d->h + iy) * d->w + ix;
                                dw[wi] += gv * x[xi];
                                dx[xi] += gv * w[wi];
                            }
                }
}

static double max_rel_double(const float *v, const double *ref, size_t n)
{
    float *r = malloc(n * sizeof *r);
    for (size_t i = 0; i < n; i++) r[i] = (float)ref[i];
    double e = th_test_max_rel(v, r, n, 1.0);
    free(r);
    return e;
}

/* Backward against the direct loops with the images in backward groups of
 * 1, 2 and 3 (th_conv_dims.group; a thread's last group may be short), on
 * 1 to 3 threads. */
static void check_backward(int n, int c, int h, int w, int k, int ks, int stride, int pad)
{
    th_conv_dims d;
    if (!CHECK(th_conv_dims_init(&d, n, c, h, w, k, ks, ks, stride, pad) == 0)) return;
    size_t nx = (size_t)n * c * h * w, nw = (size_t)k * c * ks * ks, ny = (size_t)n * k * d.oh * d.ow;
    float *x = malloc(nx * sizeof *x), *wt = malloc(nw * sizeof *wt), *g = malloc(ny * sizeof *g);
    float *dx = malloc(nx * sizeof *dx), *dw = malloc(nw * sizeof *dw), *db = malloc(k * sizeof *db);
    double *rdx = malloc(nx * sizeof *rdx), *rdw = malloc(nw * sizeof *rdw), *rdb = malloc(k * sizeof *rdb);
    th_test_fill(x, nx, -1, 1, 21);
    th_test_fill(wt, nw, -1, 1, 22);
    th_test_fill(g, ny, -1, 1, 23);
    naive_conv_backward(&d, x, wt, g, rdx, rdw, rdb);

    th_workspace ws = {0};
    th_err err;
    for (int group = 1; group <= 3; group++) {
        for (int threads = 1; threads <= 3; threads++) {
            d.group = group;
            CHECK(th_workspace_reserve(&ws, threads, th_conv_workspace_floats(&d), &err) == 0);
            memset(ws.buf, 0xff, ws.capacity * sizeof *ws.buf);
            th_conv_backward(&d, x, wt, g, NULL, dx, dw, db, &ws);
            double ex = max_rel_double(dx, rdx, nx), ew = max_rel_double(dw, rdw, nw);
            double eb = max_rel_double(db, rdb, (size_t)k);
            if (!CHECK(ex < 1e-5 && ew < 1e-5 && eb < 1e-5))
                fprintf(stderr, "  conv backward n=%d c=%d %dx%d k=%d ks=%d s=%d p=%d group=%d threads=%d: "
                        "max rel err dx %g dw %g db %g\n", n, c, h, w, k, ks, stride, pad, group, threads, ex, ew, eb);
        }
    }
    th_workspace_free(&ws);
    free(x), free(wt), free(g), free(dx), free(dw), free(db), free(rdx), free(rdw), free(rdb);
}

/* <im2col(x), c> == <x, col2im(c)> for the whole image and for a block of
 * output rows in the middle of it; and th_im2col_bf16 gives the bits of
 * th_im2col's columns rounded by th_bf16_convert, in a wider row stride. */
static void check_adjoint(int c, int h, int w, int ks, int stride, int pad)
{
    th_conv_dims d;
    if (!CHECK(th_conv_dims_init(&d, 1, c, h, w, 1, ks, ks, stride, pad) == 0)) return;
    int ranges[2][2] = {{0, d.oh}, {d.oh / 3, d.oh / 3 + (d.oh + 1) / 2}};
    size_t nx = (size_t)c * h * w, ncol = (size_t)c * ks * ks * d.oh * d.ow;
    float *x = malloc(nx * sizeof *x), *col = malloc(ncol * sizeof *col);
    float *cr = malloc(2 * ncol * sizeof *cr), *xr = malloc(nx * sizeof *xr);
    th_test_fill(x, nx, -1, 1, 11);
    th_test_fill(cr, ncol, -1, 1, 12);
    for (int r = 0; r < 2; r++) {
        int oy0 = ranges[r][0], oy1 = ranges[r][1];
        size_t nc = (size_t)c * ks * ks * (oy1 - oy0) * d.ow;
        memset(xr, 0, nx * sizeof *xr);
        th_im2col(&d, x, oy0, oy1, col, (size_t)(oy1 - oy0) * d.ow);
        th_col2im(&d, cr, oy0, oy1, (size_t)(oy1 - oy0) * d.ow, xr);
        double lhs = 0, rhs = 0;
        for (size_t i = 0; i < nc; i++) lhs += (double)col[i] * cr[i];
        for (size_t i = 0; i < nx; i++) rhs += (double)x[i] * xr[i];
        CHECK_REL(lhs, rhs, 1e-6, 1.0);

        size_t cp = (size_t)(oy1 - oy0) * d.ow, rows = (size_t)c * ks * ks, ld = cp + 3;
        th_bf16 *want = malloc(rows * ld * sizeof *want), *got = malloc(rows * ld * sizeof *got);
        memset(want, 0x5a, rows * ld * sizeof *want);
        memset(got, 0x5a, rows * ld * sizeof *got);
        th_bf16_convert(want, ld, col, cp, rows, cp);
        th_im2col_bf16(&d, x, oy0, oy1, got, ld, cr + ncol);
        CHECK(memcmp(want, got, rows * ld * sizeof *got) == 0);
        free(want), free(got);
    }
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
    /* Many channels: a 1x1 kernel is a GEMM on the input itself, a 3x3 one
     * on columns (few channels take the direct loop, above). */
    check_forward(3, 40, 5, 4, 3, 1, 1, 0, 1);
    check_forward(3, 40, 5, 4, 3, 3, 1, 1, 0);
    /* Rows of 70: the direct loop's blocks of 4 filters x 32 columns, its
     * tail columns and its leftover filters. */
    check_forward(2, 1, 5, 70, 6, 3, 1, 1, 1);
    /* Rows of 21 and 35 outputs at stride 2 and 1: im2col's vector copies. */
    check_forward(2, 3, 5, 41, 4, 3, 2, 1, 1);
    check_forward(1, 4, 3, 35, 3, 3, 1, 1, 0);
    check_forward(1, 2, 4, 64, 4, 3, 1, 0, 0);

    /* Backward groups of whole images: 3x3 with padding, strided, 1x1 strided
     * (ResNet's shortcut), and enough channels for the GEMM path. */
    check_backward(5, 4, 7, 6, 3, 3, 1, 1);
    check_backward(4, 5, 9, 8, 6, 3, 2, 1);
    check_backward(7, 8, 6, 5, 4, 1, 2, 0);

    check_adjoint(1, 7, 5, 3, 1, 1);
    check_adjoint(3, 9, 11, 3, 2, 1);
    check_adjoint(2, 9, 11, 5, 2, 2);
    check_adjoint(3, 8, 8, 5, 1, 0);
    check_adjoint(2, 6, 7, 3, 3, 4);
    check_adjoint(1, 3, 300, 3, 2, 1);  /* strided rows of 150: bf16 in several gathers */
    check_adjoint(2, 5, 70, 3, 1, 1);   /* rows of 70: im2col's vector copies and their tails */
    check_adjoint(1, 4, 61, 7, 2, 3);   /* the stem's 7x7/2: even-element vectors, odd tail */

    return th_test_summary("test_conv");
}

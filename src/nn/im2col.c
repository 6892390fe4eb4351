/* im2col.c - the column matrix of a convolution and its adjoint (see
 * src/nn/conv.h: th_im2col, th_col2im), apart from conv.c's kernels. */
#include <string.h>

#include "conv.h"
#include "gemm.h"

/* The output positions o in [*lo, *hi) whose input coordinate
 * o*stride - pad + kofs lies inside [0, in). Outside that range the kernel
 * tap reads padding, so im2col writes zeros there and col2im skips it; working
 * with ranges keeps the inner loops free of per-element bounds checks. */
static void valid_range(int in, int out, int stride, int pad, int kofs, int *lo, int *hi)
{
    int first = pad - kofs;          /* o*stride must be >= first */
    int last = in - 1 + pad - kofs;  /* o*stride must be <= last */
    int l = first > 0 ? (first + stride - 1) / stride : 0;
    int h = last < 0 ? 0 : last / stride + 1;
    if (h > out) h = out;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

static int clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Row r = ((ci-c0)*KH + ki)*KW + kj of the column block holds, for every
 * output pixel (oy, ox) with oy0 <= oy < oy1, the input x[ci, oy*s - pad + ki,
 * ox*s - pad + kj]: the rows of channels [c0, c1). */
static void im2col_channels(const th_conv_dims *d, const float *x, int oy0, int oy1, int c0, int c1, float *col,
                            size_t ld)
{
    const int s = d->stride, ow = d->ow;
    const size_t plane = (size_t)d->h * d->w;
    for (int ci = c0; ci < c1; ci++) {
        const float *xc = x + ci * plane;
        for (int ki = 0; ki < d->kh; ki++) {
            int y_lo, y_hi;
            valid_range(d->h, d->oh, s, d->pad, ki, &y_lo, &y_hi);
            y_lo = clamp(y_lo, oy0, oy1);
            y_hi = clamp(y_hi, y_lo, oy1);
            for (int kj = 0; kj < d->kw; kj++) {
                int x_lo, x_hi;
                valid_range(d->w, ow, s, d->pad, kj, &x_lo, &x_hi);
                int rows_hi = x_lo < x_hi ? y_hi : y_lo;  /* no column in range: all padding */
                size_t r = ((size_t)(ci - c0) * d->kh + ki) * d->kw + kj;
                float *dst = col + r * ld - (size_t)oy0 * ow;  /* indexed by absolute oy */
                int len = x_hi - x_lo;

                memset(dst + (size_t)oy0 * ow, 0, (size_t)(y_lo - oy0) * ow * sizeof *dst);
                for (int oy = y_lo; oy < rows_hi; oy++) {
                    float *drow = dst + (size_t)oy * ow;
                    const float *src = xc + (size_t)(oy * s - d->pad + ki) * d->w + (x_lo * s - d->pad + kj);
                    memset(drow, 0, (size_t)x_lo * sizeof *drow);
                    if (s == 1) {
                        memcpy(drow + x_lo, src, (size_t)len * sizeof *drow);
                    } else {
                        for (int i = 0; i < len; i++) drow[x_lo + i] = src[(size_t)i * s];
                    }
                    memset(drow + x_hi, 0, (size_t)(ow - x_hi) * sizeof *drow);
                }
                memset(dst + (size_t)rows_hi * ow, 0, (size_t)(oy1 - rows_hi) * ow * sizeof *dst);
            }
        }
    }
}

void th_im2col(const th_conv_dims *d, const float *x, int oy0, int oy1, float *col, size_t ld)
{
    im2col_channels(d, x, oy0, oy1, 0, d->c, col, ld);
}

/* A channel at a time: its KH*KW rows in fp32 in tmp (a few KB, in L1),
 * then rounded into col, so the fp32 block never goes through L2 and the
 * rounding runs over whole rows of the block. */
void th_im2col_bf16(const th_conv_dims *d, const float *x, int oy0, int oy1, uint16_t *col, size_t ld, float *tmp)
{
    const size_t cp = (size_t)(oy1 - oy0) * d->ow, kk = (size_t)d->kh * d->kw;
    for (int ci = 0; ci < d->c; ci++) {
        im2col_channels(d, x, oy0, oy1, ci, ci + 1, tmp, cp);
        th_bf16_convert(col + ci * kk * ld, ld, tmp, cp, kk, cp);
    }
}

/* Same traversal as th_im2col with the copy reversed into an accumulation:
 * an input pixel covered by several receptive fields receives the sum. */
void th_col2im(const th_conv_dims *d, const float *col, int oy0, int oy1, size_t ld, float *dx)
{
    const int s = d->stride, ow = d->ow;
    const size_t plane = (size_t)d->h * d->w;
    for (int ci = 0; ci < d->c; ci++) {
        float *dxc = dx + ci * plane;
        for (int ki = 0; ki < d->kh; ki++) {
            int y_lo, y_hi;
            valid_range(d->h, d->oh, s, d->pad, ki, &y_lo, &y_hi);
            y_lo = clamp(y_lo, oy0, oy1);
            y_hi = clamp(y_hi, y_lo, oy1);
            for (int kj = 0; kj < d->kw; kj++) {
                int x_lo, x_hi;
                valid_range(d->w, ow, s, d->pad, kj, &x_lo, &x_hi);
                if (x_lo == x_hi) continue;
                size_t r = ((size_t)ci * d->kh + ki) * d->kw + kj;
                const float *src = col + r * ld - (size_t)oy0 * ow;
                int len = x_hi - x_lo;

                for (int oy = y_lo; oy < y_hi; oy++) {
                    const float *srow = src + (size_t)oy * ow + x_lo;
                    float *drow = dxc + (size_t)(oy * s - d->pad + ki) * d->w + (x_lo * s - d->pad + kj);
                    if (s == 1) {
                        for (int i = 0; i < len; i++) drow[i] += srow[i];
                    } else {
                        for (int i = 0; i < len; i++) drow[(size_t)i * s] += srow[i];
                    }
                }
            }
        }
    }
}

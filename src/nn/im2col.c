/* im2col.c - the column matrix of a convolution and its adjoint (see
 * src/nn/conv.h: th_im2col, th_col2im), apart from conv.c's kernels. */
#include <string.h>

#include "conv.h"
#include "gemm.h"
#include "simd.h"

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

/* dst[i] = src[i * s] for i < len, as inline loops rather than memcpy
 * calls: im2col's rows are short (56 floats at ResNet's 56x56, 7 at 7x7),
 * so a call per row cost more than its copy. Stride 2 takes the even
 * elements of two vectors at a time (vpermt2ps), reading at most src[2*len-2]. */
TH_INLINE void copy_row(float *dst, const float *src, int len, int s)
{
    int i = 0;
    if (s == 1) {
        for (; i + 16 <= len; i += 16) *(v16u *)(dst + i) = *(const v16u *)(src + i);
    } else if (s == 2) {
        const v16i evens = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
        for (; i + 17 <= len; i += 16) {
            v16 lo = *(const v16u *)(src + 2 * i), hi = *(const v16u *)(src + 2 * i + 16);
            *(v16u *)(dst + i) = __builtin_shuffle(lo, hi, evens);
        }
    }
    for (; i < len; i++) dst[i] = src[(size_t)i * s];
}

/* Row r = ((ci-c0)*KH + ki)*KW + kj of the column block holds, for every
 * output pixel (oy, ox) with oy0 <= oy < oy1, the input x[ci, oy*s - pad + ki,
 * ox*s - pad + kj]: the rows of channels [c0, c1). */
TH_INLINE void im2col_channels_body(const th_conv_dims *d, const float *x, int oy0, int oy1, int c0, int c1,
                                    float *col, size_t ld)
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
                    for (int i = 0; i < x_lo; i++) drow[i] = 0.0f;
                    copy_row(drow + x_lo, src, len, s);
                    for (int i = x_hi; i < ow; i++) drow[i] = 0.0f;
                }
                memset(dst + (size_t)rows_hi * ow, 0, (size_t)(oy1 - rows_hi) * ow * sizeof *dst);
            }
        }
    }
}

TH_SIMD_DISPATCH(im2col_channels,
                 (const th_conv_dims *d, const float *x, int oy0, int oy1, int c0, int c1, float *col, size_t ld),
                 (d, x, oy0, oy1, c0, c1, col, ld))

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

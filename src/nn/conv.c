/* conv.c - 2-D convolution as im2col + OpenBLAS GEMM (see thorax/conv.h).
 *
 * Why one image per thread rather than one GEMM for the whole batch: a
 * batch-wide column matrix is huge (302 MB for the reference network's
 * second layer at batch 32) and every byte of it goes through main memory
 * twice; its GEMM runs at half the speed of the same product on one image's
 * columns, and the reorder from the GEMM's [K, N*P] to NCHW is another pass.
 * Per image the output is written in place, the columns are made in blocks
 * of output rows that stay in the core's cache until the GEMM reads them,
 * and every loop around the GEMM (im2col, bias, ReLU, col2im) runs on all
 * threads, not only the BLAS.
 *
 * Notation: P = OH*OW output pixels per image, CKK = C*KH*KW.
 */
#include "thorax/conv.h"

#include <cblas.h>
#include <string.h>

#include "simd.h"
#ifdef _OPENMP
#include <omp.h>
#endif

/* Columns made per block: large enough that each GEMM call amortises
 * OpenBLAS's packing of w, small enough to stay in a 1-2 MB L2 cache
 * together with the output block. Measured on the reference network
 * (thorax bench): 128K-512K floats are within a few per cent of each other. */
#define COL_BLOCK_FLOATS (256u * 1024u)

/* A 1x1 kernel, stride 1, no padding: the columns are the input itself. */
static int is_pointwise(const th_conv_dims *d)
{
    return d->kh == 1 && d->kw == 1 && d->stride == 1 && d->pad == 0;
}

/* Few taps per output (a first layer on a gray image has C*KH*KW = 9): the
 * GEMM would be [K, 9] x [9, P], which streams 9 floats in for every K out
 * and runs at a few GFLOP/s; a direct loop keeps a row of taps in L1. */
#define DIRECT_MAX_TAPS 32

static int is_direct(const th_conv_dims *d)
{
    return d->stride == 1 && d->c * d->kh * d->kw <= DIRECT_MAX_TAPS;
}

/* Floats of one set of zero-padded input rows [C, KH, W + 2*pad]. */
static size_t padded_rows_floats(const th_conv_dims *d)
{
    return (size_t)d->c * d->kh * (d->w + 2 * d->pad);
}

/* Output rows per block of columns, as th_conv_dims_init picks them. */
static int pick_block_rows(const th_conv_dims *d)
{
    size_t row = (size_t)d->c * d->kh * d->kw * d->ow;
    int rows = (int)(COL_BLOCK_FLOATS / row);
    if (rows < 1) rows = 1;
    return rows < d->oh ? rows : d->oh;
}

int th_conv_out_len(int in, int k, int stride, int pad)
{
    /* Guard before dividing: C rounds negative quotients toward zero, which
     * would report a length of 1 for a kernel that does not fit. */
    if (stride < 1 || in + 2 * pad < k) return 0;
    return (in + 2 * pad - k) / stride + 1;
}

int th_conv_dims_init(th_conv_dims *d, int n, int c, int h, int w, int k,
                      int kh, int kw, int stride, int pad)
{
    d->n = n;
    d->c = c;
    d->h = h;
    d->w = w;
    d->k = k;
    d->kh = kh;
    d->kw = kw;
    d->stride = stride;
    d->pad = pad;
    d->oh = th_conv_out_len(h, kh, stride, pad);
    d->ow = th_conv_out_len(w, kw, stride, pad);
    if (n < 1 || c < 1 || k < 1 || kh < 1 || kw < 1 || pad < 0) return -1;
    if (d->oh <= 0 || d->ow <= 0) return -1;
    d->block_rows = pick_block_rows(d);
    return 0;
}

size_t th_conv_workspace_floats(const th_conv_dims *d)
{
    size_t ckk = (size_t)d->c * d->kh * d->kw;
    size_t col = is_direct(d)      ? 16 * (size_t)d->k * ckk + 2 * padded_rows_floats(d)  /* see direct_backward */
                 : is_pointwise(d) ? 0
                                   : ckk * d->block_rows * d->ow;
    /* + a thread's partial weight and bias gradient */
    return col + (size_t)d->k * ckk + d->k;
}

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

/* Row r = (ci*KH + ki)*KW + kj of the column block holds, for every output
 * pixel (oy, ox) with oy0 <= oy < oy1, the input x[ci, oy*s - pad + ki,
 * ox*s - pad + kj]. */
void th_im2col(const th_conv_dims *d, const float *x, int oy0, int oy1, float *col)
{
    const int s = d->stride, ow = d->ow, rows = oy1 - oy0;
    const size_t plane = (size_t)d->h * d->w, ld = (size_t)rows * ow;
    for (int ci = 0; ci < d->c; ci++) {
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
                size_t r = ((size_t)ci * d->kh + ki) * d->kw + kj;
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

/* Same traversal as th_im2col with the copy reversed into an accumulation:
 * an input pixel covered by several receptive fields receives the sum. */
void th_col2im(const th_conv_dims *d, const float *col, int oy0, int oy1, float *dx)
{
    const int s = d->stride, ow = d->ow;
    const size_t plane = (size_t)d->h * d->w, ld = (size_t)(oy1 - oy0) * ow;
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

/* y[k, i] = max(y[k, i] + b[k], 0) (relu) or y[k, i] + b[k] over the columns
 * [p0, p1) of y [K, P]. */
static void bias_act(float *y, int k_out, size_t p, size_t p0, size_t p1, const float *b, int relu)
{
    for (int k = 0; k < k_out; k++) {
        float *yk = y + (size_t)k * p;
        float bk = b ? b[k] : 0.0f;
        if (relu) {
            for (size_t i = p0; i < p1; i++) {
                float v = yk[i] + bk;
                yk[i] = v > 0.0f ? v : 0.0f;
            }
        } else if (b) {
            for (size_t i = p0; i < p1; i++) yk[i] += bk;
        }
    }
}

/* ---- direct convolution, stride 1, few taps ------------------------------ */

/* rows [C, KH, W + 2*pad] <- the input rows oy - pad + ki of image x [C, H, W]
 * that output row oy reads, with zeros for padding, so the loops below run
 * over whole rows without bounds checks. */
static void load_rows(const th_conv_dims *d, const float *x, int oy, float *rows)
{
    const int pw = d->w + 2 * d->pad;
    for (int c = 0; c < d->c; c++) {
        for (int ki = 0; ki < d->kh; ki++) {
            float *r = rows + ((size_t)c * d->kh + ki) * pw;
            int iy = oy - d->pad + ki;
            if (iy < 0 || iy >= d->h) {
                memset(r, 0, (size_t)pw * sizeof *r);
                continue;
            }
            memset(r, 0, (size_t)d->pad * sizeof *r);
            memcpy(r + d->pad, x + ((size_t)c * d->h + iy) * d->w, (size_t)d->w * sizeof *r);
            memset(r + d->pad + d->w, 0, (size_t)d->pad * sizeof *r);
        }
    }
}

/* Where tap t = (c*KH + ki)*KW + kj reads in the padded rows: row (c, ki)
 * shifted by kj. */
static void tap_offsets(const th_conv_dims *d, int *off)
{
    const int taps = d->c * d->kh * d->kw, pw = d->w + 2 * d->pad;
    for (int t = 0; t < taps; t++) off[t] = (t / d->kw) * pw + t % d->kw;
}

/* Output row oy of filters [k0, k0 + FB) over columns [ox0, ox0 + 32): the
 * bias plus a multiply-add of a shifted input row per tap, with the FB x 2
 * sums in registers so that every load of the input feeds 2 * FB FMAs. */
enum { FB = 4 };
TH_INLINE void direct_block(int taps, const int *off, const float *rows,
                                                                const float *w, const float *b, int relu, float *y,
                                                                size_t plane, int ox0)
{
    v16 acc[FB][2];
    for (int f = 0; f < FB; f++) acc[f][0] = acc[f][1] = (v16){0} + b[f];
    for (int t = 0; t < taps; t++) {
        const float *src = rows + off[t] + ox0;
        v16 x0 = *(const v16u *)src, x1 = *(const v16u *)(src + 16);
        for (int f = 0; f < FB; f++) {
            float wt = w[(size_t)f * taps + t];
            acc[f][0] += wt * x0;
            acc[f][1] += wt * x1;
        }
    }
    const v16 zero = {0};
    for (int f = 0; f < FB; f++) {
        if (relu) {
            /* max(acc, 0) as a mask: a > 0 is all ones where true */
            acc[f][0] = (v16)((v16i)acc[f][0] & (acc[f][0] > zero));
            acc[f][1] = (v16)((v16i)acc[f][1] & (acc[f][1] > zero));
        }
        *(v16u *)(y + f * plane + ox0) = acc[f][0];
        *(v16u *)(y + f * plane + ox0 + 16) = acc[f][1];
    }
}

/* Output row oy (y points at y[k0, oy, 0], filters one plane apart) of
 * filters [k0, k0 + nf): blocks of FB filters by 32 columns, then what is
 * left one value at a time. */
TH_INLINE void direct_row_body(int ow, int nf, int taps, const int *off,
                                                                   const float *rows, const float *w,
                                                                   const float *b, int relu, float *y, size_t plane)
{
    int f0 = 0, vec_end = ow / 32 * 32;
    for (; f0 + FB <= nf; f0 += FB)
        for (int ox0 = 0; ox0 < vec_end; ox0 += 32)
            direct_block(taps, off, rows, w + (size_t)f0 * taps, b + f0, relu, y + f0 * plane, plane, ox0);
    for (int f = 0; f < nf; f++) {
        int from = f < f0 ? vec_end : 0;  /* filters of a block have their vector part done */
        for (int ox = from; ox < ow; ox++) {
            float acc = b[f];
            for (int t = 0; t < taps; t++) acc += w[(size_t)f * taps + t] * rows[off[t] + ox];
            y[f * plane + ox] = relu && acc < 0.0f ? 0.0f : acc;
        }
    }
}

TH_SIMD_DISPATCH(direct_row,
                 (int ow, int nf, int taps, const int *off, const float *rows, const float *w, const float *b,
                  int relu, float *y, size_t plane),
                 (ow, nf, taps, off, rows, w, b, relu, y, plane))

/* y [K, OH, OW] of one image, row by row. */
static void direct_forward(const th_conv_dims *d, const float *x, const float *w, const float *b, float *y, int relu,
                           float *rows)
{
    const int taps = d->c * d->kh * d->kw;
    const size_t plane = (size_t)d->oh * d->ow;
    int off[DIRECT_MAX_TAPS];
    float zeros[1024] = {0};  /* the bias of a bias-free layer (K <= 1024 here; else in steps) */
    tap_offsets(d, off);
    for (int oy = 0; oy < d->oh; oy++) {
        load_rows(d, x, oy, rows);
        for (int k0 = 0; k0 < d->k; k0 += 1024) {
            int nf = d->k - k0 < 1024 ? d->k - k0 : 1024;
            direct_row(d->ow, nf, taps, off, rows, w + (size_t)k0 * taps, b ? b + k0 : zeros, relu,
                       y + (size_t)k0 * plane + (size_t)oy * d->ow, plane);
        }
    }
}

/* acc [K * taps] (16 partial sums each) += output row oy's gradient g
 * (filters one plane apart) times each tap's shifted input row; the columns
 * past the last multiple of 16 go straight into dw [K, taps]. Each load of
 * the gradient feeds one FMA per tap. */
TH_INLINE void direct_dw_row_body(int ow, int nf, int taps, const int *off, const float *rows, const float *g,
                                  size_t plane, v16 *acc, float *dw)
{
    const int vec_end = ow / 16 * 16;
    for (int f = 0; f < nf; f++) {
        const float *gf = g + f * plane;
        v16 a[DIRECT_MAX_TAPS];
        for (int t = 0; t < taps; t++) a[t] = acc[f * taps + t];
        for (int ox0 = 0; ox0 < vec_end; ox0 += 16) {
            v16 gv = *(const v16u *)(gf + ox0);
            for (int t = 0; t < taps; t++) a[t] += gv * *(const v16u *)(rows + off[t] + ox0);
        }
        for (int t = 0; t < taps; t++) acc[f * taps + t] = a[t];
        for (int ox = vec_end; ox < ow; ox++)
            for (int t = 0; t < taps; t++) dw[f * taps + t] += gf[ox] * rows[off[t] + ox];
    }
}

TH_SIMD_DISPATCH(direct_dw_row,
                 (int ow, int nf, int taps, const int *off, const float *rows, const float *g, size_t plane,
                  v16 *acc, float *dw),
                 (ow, nf, taps, off, rows, g, plane, acc, dw))

/* dw [K, taps] += the image's weight gradient; dx [C, H, W] (if wanted) =
 * its input gradient, each output row's taps added back into the padded
 * rows it read. scratch holds the K*taps partial sums (64-byte aligned),
 * then the input rows and their gradient. */
static void direct_backward(const th_conv_dims *d, const float *x, const float *w, const float *dy, float *dx,
                            float *dw, float *scratch)
{
    const int ow = d->ow, taps = d->c * d->kh * d->kw, pw = d->w + 2 * d->pad;
    const size_t plane = (size_t)d->oh * ow, nacc = (size_t)d->k * taps;
    v16 *acc = (v16 *)scratch;
    float *rows = scratch + 16 * nacc, *drows = rows + padded_rows_floats(d);
    int off[DIRECT_MAX_TAPS];
    tap_offsets(d, off);
    memset(acc, 0, nacc * sizeof *acc);
    if (dx) memset(dx, 0, (size_t)d->c * d->h * d->w * sizeof *dx);
    for (int oy = 0; oy < d->oh; oy++) {
        load_rows(d, x, oy, rows);
        direct_dw_row(ow, d->k, taps, off, rows, dy + (size_t)oy * ow, plane, acc, dw);
        if (!dx) continue;
        memset(drows, 0, padded_rows_floats(d) * sizeof *drows);
        for (int k = 0; k < d->k; k++) {
            const float *g = dy + k * plane + (size_t)oy * ow;
            for (int t = 0; t < taps; t++) {
                float *dst = drows + off[t];
                const float wt = w[(size_t)k * taps + t];
                for (int j = 0; j < ow; j++) dst[j] += wt * g[j];
            }
        }
        for (int c = 0; c < d->c; c++) {
            for (int ki = 0; ki < d->kh; ki++) {
                int iy = oy - d->pad + ki;
                if (iy < 0 || iy >= d->h) continue;
                const float *src = drows + ((size_t)c * d->kh + ki) * pw + d->pad;
                float *dst = dx + ((size_t)c * d->h + iy) * d->w;
                for (int j = 0; j < d->w; j++) dst[j] += src[j];
            }
        }
    }
    for (size_t i = 0; i < nacc; i++) {
        float sum = 0.0f;
        for (int j = 0; j < 16; j++) sum += acc[i][j];
        dw[i] += sum;
    }
}

/* ---- im2col + GEMM ---------------------------------------------------------- */

/* Forward of images [first, end), columns in col (a workspace slice). */
static void forward_images(const th_conv_dims *d, const float *x, const float *w, const float *b, float *y,
                           int relu, int first, int end, float *col)
{
    const size_t p = (size_t)d->oh * d->ow, chw = (size_t)d->c * d->h * d->w;
    const int ckk = d->c * d->kh * d->kw, rows = d->block_rows, pointwise = is_pointwise(d);
    for (int n = first; n < end; n++) {
        const float *xn = x + n * chw;
        float *yn = y + n * (size_t)d->k * p;
        if (is_direct(d)) {
            direct_forward(d, xn, w, b, yn, relu, col + 16 * (size_t)d->k * ckk);
            continue;
        }
        for (int oy0 = 0; oy0 < d->oh; oy0 += rows) {
            int oy1 = oy0 + rows < d->oh ? oy0 + rows : d->oh;
            size_t c0 = (size_t)oy0 * d->ow, cp = (size_t)(oy1 - oy0) * d->ow;
            const float *cols = col;
            size_t ldc = cp;
            if (pointwise) {
                cols = xn + c0, ldc = p;
            } else {
                th_im2col(d, xn, oy0, oy1, col);
            }
            /* yn[:, c0:c0+cp] [K, cp] = w [K, CKK] * cols [CKK, cp] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->k, (int)cp, ckk, 1.0f, w, ckk, cols,
                        (int)ldc, 0.0f, yn + c0, (int)p);
            bias_act(yn, d->k, p, c0, c0 + cp, b, relu);
        }
    }
}

void th_conv_forward(const th_conv_dims *d, const float *x, const float *w, const float *b,
                     float *y, int relu, const th_workspace *ws)
{
    const int threads = ws->threads < d->n ? ws->threads : d->n;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        int t = 0, first, end;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        th_workspace_share(d->n, threads, t, &first, &end);
        forward_images(d, x, w, b, y, relu, first, end, th_workspace_slice(ws, t));
    }
}

/* Backward of images [first, end): adds their weight and bias gradients to
 * dw [K, CKK] and db [K] and writes their dx. */
static void backward_images(const th_conv_dims *d, const float *x, const float *w, float *dy, const float *relu_y,
                            float *dx, float *dw, float *db, int first, int end, float *col)
{
    const size_t p = (size_t)d->oh * d->ow, kp = (size_t)d->k * p, chw = (size_t)d->c * d->h * d->w;
    const int ckk = d->c * d->kh * d->kw, rows = d->block_rows, pointwise = is_pointwise(d);
    for (int n = first; n < end; n++) {
        const float *xn = x + n * chw;
        float *dyn = dy + n * kp;
        if (relu_y) {
            const float *yn = relu_y + n * kp;
            for (size_t i = 0; i < kp; i++) dyn[i] = yn[i] > 0.0f ? dyn[i] : 0.0f;
        }
        for (int k = 0; k < d->k; k++) {
            const float *g = dyn + (size_t)k * p;
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (size_t i = 0; i < p; i++) sum += g[i];
            db[k] += sum;
        }
        float *dxn = dx ? dx + n * chw : NULL;
        if (is_direct(d)) {
            direct_backward(d, xn, w, dyn, dxn, dw, col);
            continue;
        }
        if (dxn && !pointwise) memset(dxn, 0, chw * sizeof *dxn);
        for (int oy0 = 0; oy0 < d->oh; oy0 += rows) {
            int oy1 = oy0 + rows < d->oh ? oy0 + rows : d->oh;
            size_t c0 = (size_t)oy0 * d->ow, cp = (size_t)(oy1 - oy0) * d->ow;
            const float *cols = col;
            size_t ldc = cp;
            if (pointwise) {
                cols = xn + c0, ldc = p;
            } else {
                th_im2col(d, xn, oy0, oy1, col);
            }
            /* dw [K, CKK] += dy[n][:, c0:c0+cp] [K, cp] * cols^T [cp, CKK] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d->k, ckk, (int)cp, 1.0f, dyn + c0, (int)p, cols,
                        (int)ldc, 1.0f, dw, ckk);
            if (!dxn) continue;
            if (pointwise) {
                /* dx[n][:, c0:] [C, cp] = w^T [C, K] * dy[n][:, c0:] [K, cp] */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, (int)cp, d->k, 1.0f, w, ckk, dyn + c0,
                            (int)p, 0.0f, dxn + c0, (int)p);
            } else {
                /* col [CKK, cp] = w^T [CKK, K] * dy[n][:, c0:] [K, cp]: col has served dw. */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, (int)cp, d->k, 1.0f, w, ckk, dyn + c0,
                            (int)p, 0.0f, col, (int)cp);
                th_col2im(d, col, oy0, oy1, dxn);
            }
        }
    }
}

void th_conv_backward(const th_conv_dims *d, const float *x, const float *w, float *dy, const float *relu_y,
                      float *dx, float *dw, float *db, const th_workspace *ws)
{
    const int threads = ws->threads < d->n ? ws->threads : d->n;
    const size_t ckk = (size_t)d->c * d->kh * d->kw, nw = (size_t)d->k * ckk;
    const size_t col_floats = th_conv_workspace_floats(d) - nw - (size_t)d->k;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        int t = 0, first, end;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        th_workspace_share(d->n, threads, t, &first, &end);
        /* Thread 0 sums straight into dw and db; the others into their slice. */
        float *slice = th_workspace_slice(ws, t);
        float *my_dw = t == 0 ? dw : slice + col_floats;
        float *my_db = t == 0 && db ? db : slice + col_floats + nw;
        memset(my_dw, 0, nw * sizeof *my_dw);
        memset(my_db, 0, (size_t)d->k * sizeof *my_db);
        backward_images(d, x, w, dy, relu_y, dx, my_dw, my_db, first, end, slice);

        /* dw += the other threads' sums, in thread order, each thread
         * adding up its own share of the elements. */
#pragma omp barrier
        int e0, e1;
        th_workspace_share((int)(nw + d->k), threads, t, &e0, &e1);
        for (int u = 1; u < threads; u++) {
            const float *part = th_workspace_slice(ws, u) + col_floats;
            for (int e = e0; e < e1; e++) {
                if ((size_t)e < nw) dw[e] += part[e];
                else if (db) db[e - nw] += part[e];
            }
        }
    }
}

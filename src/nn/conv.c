/* conv.c - 2-D convolution as im2col + OpenBLAS GEMM (see src/nn/conv.h).
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
#include "conv.h"

#include <string.h>

#include "gemm.h"
#include "pool.h"
#include "simd.h"
#ifdef _OPENMP
#include <omp.h>
#endif

/* Columns made per block: large enough that each GEMM call amortises
 * OpenBLAS's packing of w, small enough to stay in a 1-2 MB L2 cache
 * together with the output block. Measured on the reference network
 * (thorax bench): 128K-512K floats are within a few per cent of each other. */
#define COL_BLOCK_FLOATS (256u * 1024u)

/* Backward groups (th_conv_dims.group). Why group: dw's GEMM reads and
 * writes all of dw [K, CKK] for every block of columns, 2 x 4 bytes per
 * 2 x cp FLOPs of its cp columns. Where dw is large and an image has few
 * columns, that traffic, not the FLOPs, sets the speed: ResNet-18's layer4
 * (dw 9.4 MB, 49 columns per image) ran its backward at half the forward's
 * GFLOP/s. Grouped 8 images at a time, layer4.1.conv2's backward (16
 * images) went from 47-55 to 26-27 ms in bf16 and 45-50 to 36-39 ms in fp32. Where dw
 * fits in cache the wider GEMMs only cost: layer3 (dw 2.4 MB, 196
 * columns) and the smaller layers ran 10-40% slower grouped, so only a dw
 * of more than GROUP_DW_FLOATS is grouped, with up to GROUP_COL_FLOATS
 * columns' floats (8 MB) and GROUP_MAX images. */
#define GROUP_DW_FLOATS (1024u * 1024u)
#define GROUP_COL_FLOATS (2048u * 1024u)
#define GROUP_MAX 8

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

/* Floats of direct_scratch (below). */
static size_t direct_scratch_floats(const th_conv_dims *d)
{
    return 16 * (size_t)d->k * d->c * d->kh * d->kw + 2 * padded_rows_floats(d) + (size_t)d->k * 2 * d->ow +
           (size_t)d->ow / 2 + 1;
}

/* Output rows per block of columns, as th_conv_dims_init picks them. */
static int pick_block_rows(const th_conv_dims *d)
{
    size_t row = (size_t)d->c * d->kh * d->kw * d->ow;
    int rows = (int)(COL_BLOCK_FLOATS / row);
    if (rows < 1) rows = 1;
    return rows < d->oh ? rows : d->oh;
}

/* Images per group in backward, as th_conv_dims_init picks them: for a
 * large dw, whole images while at least two fit in GROUP_COL_FLOATS; the
 * pointwise convolution's columns are the images themselves, not side by
 * side. */
static int pick_group(const th_conv_dims *d)
{
    size_t ckk = (size_t)d->c * d->kh * d->kw, image = ckk * d->oh * d->ow;
    if (is_direct(d) || is_pointwise(d) || (size_t)d->k * ckk <= GROUP_DW_FLOATS) return 1;
    size_t g = GROUP_COL_FLOATS / image;
    return g < 2 ? 1 : g > GROUP_MAX ? GROUP_MAX : (int)g;
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
    d->group = pick_group(d);
    d->precision = TH_PRECISION_FP32;
    return 0;
}

/* Output rows per block when a 2x2 max-pool is fused: whole pairs. */
static int pool_block_rows(const th_conv_dims *d)
{
    return d->block_rows >= 2 ? d->block_rows & ~1 : 2;
}

/* Rows the GEMM path's scratch is sized for: a block, or a pair of rows. */
static size_t scratch_rows(const th_conv_dims *d)
{
    return (size_t)(d->block_rows > 2 ? d->block_rows : 2);
}

/* Columns the GEMM path's scratch is sized for: a block of rows, or a
 * backward group of whole images. */
static size_t scratch_cols(const th_conv_dims *d)
{
    size_t rows = scratch_rows(d) * d->ow, group = (size_t)(d->group > 1 ? d->group : 1) * d->oh * d->ow;
    return d->group > 1 && group > rows ? group : rows;
}

/* The GEMM path's scratch: a block of columns, then (for a fused pool) the
 * block's output [K, rows, OW], or (for a group) its gradient [K, cols],
 * and one pooled gradient row [OW/2]. */
static size_t gemm_scratch_floats(const th_conv_dims *d)
{
    size_t ckk = (size_t)d->c * d->kh * d->kw, cols = scratch_cols(d);
    return (is_pointwise(d) ? 0 : ckk * cols) + (size_t)d->k * cols + (size_t)d->ow / 2 + 1;
}

/* The bf16 path's scratch after it (th_bf16 elements): a block of columns
 * [CKK, rows*OW], a block of the output gradient [K, rows*OW], and the
 * weights [K, CKK] (slice 0's serve the whole team). */
static size_t bf16_scratch_floats(const th_conv_dims *d)
{
    size_t ckk = (size_t)d->c * d->kh * d->kw, block = scratch_cols(d);
    if (d->precision != TH_PRECISION_BF16 || is_direct(d)) return 0;
    return th_bf16_floats(ckk * block + (size_t)d->k * block + (size_t)d->k * ckk);
}

static th_bf16 *bf16_cols(const th_conv_dims *d, float *col) { return (th_bf16 *)(col + gemm_scratch_floats(d)); }
static th_bf16 *bf16_grad(const th_conv_dims *d, float *col)
{
    return bf16_cols(d, col) + (size_t)d->c * d->kh * d->kw * scratch_cols(d);
}
static th_bf16 *bf16_weights(const th_conv_dims *d, float *col)
{
    return bf16_grad(d, col) + (size_t)d->k * scratch_cols(d);
}

size_t th_conv_workspace_floats(const th_conv_dims *d)
{
    size_t ckk = (size_t)d->c * d->kh * d->kw;
    size_t scratch = is_direct(d) ? direct_scratch_floats(d) : gemm_scratch_floats(d) + bf16_scratch_floats(d);
    /* + a thread's partial weight and bias gradient */
    return scratch + (size_t)d->k * ckk + d->k;
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

/* ---- the fused 2x2 max-pool, shared by the direct and GEMM paths ---------- */

/* Pools output row pairs [oy0, oy1) of every filter, held in out
 * [K, (oy1-oy0)*OW] after bias and ReLU, into py [K, OH/2, OW/2] and argmax
 * (indices into the OH x OW plane). */
static void pool_rows(const th_conv_dims *d, const float *out, int oy0, int oy1, float *py, int32_t *argmax)
{
    const int ow = d->ow, ph = d->oh / 2, pw = ow / 2;
    const size_t cp = (size_t)(oy1 - oy0) * ow;
    for (int k = 0; k < d->k; k++) {
        for (int oy = oy0; oy < oy1; oy += 2) {
            const float *r0 = out + k * cp + (size_t)(oy - oy0) * ow;
            size_t o = ((size_t)k * ph + oy / 2) * pw;
            th_maxpool2_row(r0, r0 + ow, ow, oy * ow, py + o, argmax + o);
        }
    }
}

/* Rebuilds the conv's output gradient for output row pairs [oy0, oy1) in
 * g [K, (oy1-oy0)*OW] from the pool's: the pooled gradient at each window's
 * maximum where the ReLU let it through (pooled output > 0), zero elsewhere.
 * Adds its sums to db [K]. grow: scratch for one pooled row. */
static void unpool_rows(const th_conv_dims *d, const float *pdy, const float *py, const int32_t *argmax, int oy0,
                        int oy1, float *g, float *db, float *grow)
{
    const int ow = d->ow, ph = d->oh / 2, pw = ow / 2;
    const size_t cp = (size_t)(oy1 - oy0) * ow;
    for (int k = 0; k < d->k; k++) {
        float sum = 0.0f;
        for (int oy = oy0; oy < oy1; oy += 2) {
            size_t o = ((size_t)k * ph + oy / 2) * pw;
            for (int j = 0; j < pw; j++) {
                grow[j] = py[o + j] > 0.0f ? pdy[o + j] : 0.0f;
                sum += grow[j];
            }
            float *r0 = g + k * cp + (size_t)(oy - oy0) * ow;
            th_maxpool2_row_backward(grow, argmax + o, ow, oy * ow, r0, r0 + ow);
        }
        if (db) db[k] += sum;
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
    for (int f = 0; f < FB; f++) acc[f][0] = acc[f][1] = (v16){0} + (b ? b[f] : 0.0f);
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
            direct_block(taps, off, rows, w + (size_t)f0 * taps, b ? b + f0 : NULL, relu, y + f0 * plane, plane, ox0);
    for (int f = 0; f < nf; f++) {
        int from = f < f0 ? vec_end : 0;  /* filters of a block have their vector part done */
        for (int ox = from; ox < ow; ox++) {
            float acc = b ? b[f] : 0.0f;
            for (int t = 0; t < taps; t++) acc += w[(size_t)f * taps + t] * rows[off[t] + ox];
            y[f * plane + ox] = relu && acc < 0.0f ? 0.0f : acc;
        }
    }
}

TH_SIMD_DISPATCH(direct_row,
                 (int ow, int nf, int taps, const int *off, const float *rows, const float *w, const float *b,
                  int relu, float *y, size_t plane),
                 (ow, nf, taps, off, rows, w, b, relu, y, plane))

/* One thread's scratch for the direct loops, carved from its workspace
 * slice: the K*taps vector partial sums of dw first (64-byte aligned), the
 * padded input rows and their gradient, and for a fused 2x2 max-pool a pair
 * of output rows [K, 2, OW] and one pooled gradient row [OW/2]. */
typedef struct direct_scratch {
    v16 *acc;
    float *rows, *drows, *pair, *grow;
    int off[DIRECT_MAX_TAPS];
} direct_scratch;

static void direct_scratch_init(const th_conv_dims *d, float *slice, direct_scratch *s)
{
    s->acc = (v16 *)slice;
    s->rows = slice + 16 * (size_t)d->k * d->c * d->kh * d->kw;
    s->drows = s->rows + padded_rows_floats(d);
    s->pair = s->drows + padded_rows_floats(d);
    s->grow = s->pair + (size_t)d->k * 2 * d->ow;
    tap_offsets(d, s->off);
}

/* Output row oy of every filter into y (filters `plane` floats apart). */
static void direct_forward_row(const th_conv_dims *d, const float *x, const float *w, const float *b, int oy,
                               int relu, float *y, size_t plane, direct_scratch *s)
{
    load_rows(d, x, oy, s->rows);
    direct_row(d->ow, d->k, d->c * d->kh * d->kw, s->off, s->rows, w, b, relu, y, plane);
}

/* y [K, OH, OW] of one image, row by row. */
static void direct_forward(const th_conv_dims *d, const float *x, const float *w, const float *b, float *y, int relu,
                           direct_scratch *s)
{
    const size_t plane = (size_t)d->oh * d->ow;
    for (int oy = 0; oy < d->oh; oy++) direct_forward_row(d, x, w, b, oy, relu, y + (size_t)oy * d->ow, plane, s);
}

/* conv -> ReLU -> 2x2 max-pool of one image: each pair of output rows is
 * made in scratch, where it stays in cache, and pooled at once into
 * py [K, OH/2, OW/2] with argmax (indices into the conv's OH x OW plane).
 * The conv's output is never written out: that is the largest tensor of a
 * network whose first layer sees the full image. */
static void direct_forward_pool(const th_conv_dims *d, const float *x, const float *w, const float *b, float *py,
                                int32_t *argmax, direct_scratch *s)
{
    const int ow = d->ow;
    for (int oy = 0; oy + 1 < d->oh; oy += 2) {
        direct_forward_row(d, x, w, b, oy, 1, s->pair, 2 * (size_t)ow, s);
        direct_forward_row(d, x, w, b, oy + 1, 1, s->pair + ow, 2 * (size_t)ow, s);
        pool_rows(d, s->pair, oy, oy + 2, py, argmax);
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

/* The gradients from output row oy, whose gradient g holds every filter
 * `plane` floats apart: dw's partial sums in s->acc, and (if dx) the input
 * rows' gradient added into dx [C, H, W]. */
static void direct_backward_row(const th_conv_dims *d, const float *x, const float *w, const float *g, size_t plane,
                                int oy, float *dx, float *dw, direct_scratch *s)
{
    const int ow = d->ow, taps = d->c * d->kh * d->kw, pw = d->w + 2 * d->pad;
    if (dw) {
        load_rows(d, x, oy, s->rows);
        direct_dw_row(ow, d->k, taps, s->off, s->rows, g, plane, s->acc, dw);
    }
    if (!dx) return;
    memset(s->drows, 0, padded_rows_floats(d) * sizeof *s->drows);
    for (int k = 0; k < d->k; k++) {
        const float *gk = g + k * plane;
        for (int t = 0; t < taps; t++) {
            float *dst = s->drows + s->off[t];
            const float wt = w[(size_t)k * taps + t];
            for (int j = 0; j < ow; j++) dst[j] += wt * gk[j];
        }
    }
    for (int c = 0; c < d->c; c++) {
        for (int ki = 0; ki < d->kh; ki++) {
            int iy = oy - d->pad + ki;
            if (iy < 0 || iy >= d->h) continue;
            const float *src = s->drows + ((size_t)c * d->kh + ki) * pw + d->pad;
            float *dst = dx + ((size_t)c * d->h + iy) * d->w;
            for (int j = 0; j < d->w; j++) dst[j] += src[j];
        }
    }
}

static void direct_backward_begin(const th_conv_dims *d, float *dx, direct_scratch *s)
{
    memset(s->acc, 0, (size_t)d->k * d->c * d->kh * d->kw * sizeof *s->acc);
    if (dx) memset(dx, 0, (size_t)d->c * d->h * d->w * sizeof *dx);
}

/* dw += the partial sums of the image. */
static void direct_backward_end(const th_conv_dims *d, float *dw, direct_scratch *s)
{
    const size_t nacc = (size_t)d->k * d->c * d->kh * d->kw;
    if (!dw) return;
    for (size_t i = 0; i < nacc; i++) {
        float sum = 0.0f;
        for (int j = 0; j < 16; j++) sum += s->acc[i][j];
        dw[i] += sum;
    }
}

/* dw [K, taps] += the image's weight gradient from dy [K, OH, OW]; dx
 * [C, H, W] (if wanted) = its input gradient. */
static void direct_backward(const th_conv_dims *d, const float *x, const float *w, const float *dy, float *dx,
                            float *dw, direct_scratch *s)
{
    const size_t plane = (size_t)d->oh * d->ow;
    direct_backward_begin(d, dx, s);
    for (int oy = 0; oy < d->oh; oy++)
        direct_backward_row(d, x, w, dy + (size_t)oy * d->ow, plane, oy, dx, dw, s);
    direct_backward_end(d, dw, s);
}

/* The backward of direct_forward_pool from the pooled gradient pdy
 * [K, OH/2, OW/2]: each pair of conv output rows' gradient is rebuilt in
 * scratch (the pooled gradient at the window's maximum where the ReLU let it
 * through, pooled output > 0, zero elsewhere) and used at once. A last odd
 * row or column, which no window covers, has zero gradient. Adds the bias
 * gradient to db. */
static void direct_backward_pool(const th_conv_dims *d, const float *x, const float *w, const float *pdy,
                                 const float *py, const int32_t *argmax, float *dx, float *dw, float *db,
                                 direct_scratch *s)
{
    const int ow = d->ow;
    direct_backward_begin(d, dx, s);
    for (int oy = 0; oy + 1 < d->oh; oy += 2) {
        unpool_rows(d, pdy, py, argmax, oy, oy + 2, s->pair, db, s->grow);
        direct_backward_row(d, x, w, s->pair, 2 * (size_t)ow, oy, dx, dw, s);
        direct_backward_row(d, x, w, s->pair + ow, 2 * (size_t)ow, oy + 1, dx, dw, s);
    }
    direct_backward_end(d, dw, s);
}

/* ---- im2col + GEMM ---------------------------------------------------------- */

/* What a forward or backward pass works on. Without pooling the conv's
 * own output y and its gradient dy; with a fused ReLU and 2x2 max-pool
 * (th_conv_forward_pool), the pool's output py, argmax and gradient pdy. */
typedef struct conv_io {
    const float *x, *w, *b;
    float *y, *dy;              /* [N, K, OH, OW] */
    const float *relu_y;        /* backward of a fused ReLU: its output (may be y) */
    int pool;                   /* 0: no pooling */
    float *py_out;              /* forward: [N, K, OH/2, OW/2] */
    int32_t *argmax_out;        /* forward: [N, K, OH/2, OW/2] */
    const float *py, *pdy;      /* backward: the pool's output and its gradient */
    const int32_t *argmax;      /* backward */
    int relu;
    float *dx;
    const void *gemm_w;         /* the GEMMs' weights: w, or (bf16) its copy wb */
    th_bf16 *wb;                /* bf16: slice 0's copy of w [K, CKK], made by the team; else NULL */
} conv_io;

/* Output rows [oy0, oy1) of image n: out [K, (oy1-oy0)*OW] (row stride ldo)
 * = w * columns, then bias and ReLU. */
/* The columns of output rows [oy0, oy1) of image xn in the GEMMs'
 * precision, [CKK, cp] with row stride *ldc: xn itself (pointwise), or made
 * by im2col into col (fp32) or its bf16 scratch; a pointwise bf16 operand
 * is xn's copy in that scratch. */
static const void *columns(const th_conv_dims *d, const float *xn, int oy0, int oy1, float *col, int *ldc)
{
    const size_t p = (size_t)d->oh * d->ow, c0 = (size_t)oy0 * d->ow, cp = (size_t)(oy1 - oy0) * d->ow;
    const int ckk = d->c * d->kh * d->kw, bf16 = d->precision == TH_PRECISION_BF16;
    *ldc = (int)cp;
    if (is_pointwise(d)) {
        *ldc = (int)p;
        return th_gemm_operand(d->precision, xn + c0, ldc, ckk, (int)cp, bf16_cols(d, col));
    }
    if (bf16) {
        th_im2col_bf16(d, xn, oy0, oy1, bf16_cols(d, col), cp, col);
        return bf16_cols(d, col);
    }
    th_im2col(d, xn, oy0, oy1, col, cp);
    return col;
}

static void gemm_forward_block(const th_conv_dims *d, const float *xn, const void *w, const float *b, int relu,
                               int oy0, int oy1, float *out, size_t ldo, float *col)
{
    const size_t cp = (size_t)(oy1 - oy0) * d->ow;
    const int ckk = d->c * d->kh * d->kw;
    int ldc;
    const void *b_op = columns(d, xn, oy0, oy1, col, &ldc);
    /* out [K, cp] = w [K, CKK] * cols [CKK, cp] */
    th_gemm(d->precision, 0, 0, d->k, (int)cp, ckk, w, ckk, b_op, ldc, 0.0f, out, (int)ldo);
    bias_act(out, d->k, ldo, 0, cp, b, relu);
}

/* The gradients from output rows [oy0, oy1) of image n, whose gradient g is
 * [K, (oy1-oy0)*OW] with row stride ldg: dw += g * columns^T, and dxn (if
 * wanted, zeroed beforehand unless pointwise) += col2im(w^T * g). */
/* Where the GEMM path's scratch parts start in a workspace slice. */
static float *gemm_block_out(const th_conv_dims *d, float *col)
{
    return col + (is_pointwise(d) ? 0 : (size_t)d->c * d->kh * d->kw * scratch_cols(d));
}

/* The two GEMMs of a block of cp columns, given its gradient g_op [K, cp]
 * and, for dw, its columns c_op [CKK, cp] (row strides ldg, ldc; both in the
 * GEMMs' precision):
 *   dw [K, CKK] += g [K, cp] * cols^T [cp, CKK]      (dw may be NULL)
 *   dcol [CKK, cp] = w^T [CKK, K] * g [K, cp]        (dcol may be NULL) */
static void backward_gemms(const th_conv_dims *d, const void *w, const void *g_op, int ldg, const void *c_op,
                           int ldc, size_t cp, float *dw, float *dcol, int lddcol)
{
    const int ckk = d->c * d->kh * d->kw;
    if (dw) th_gemm(d->precision, 0, 1, d->k, ckk, (int)cp, g_op, ldg, c_op, ldc, 1.0f, dw, ckk);
    if (dcol) th_gemm(d->precision, 1, 0, ckk, (int)cp, d->k, w, ckk, g_op, ldg, 0.0f, dcol, lddcol);
}

static void gemm_backward_block(const th_conv_dims *d, const float *xn, const void *w, const float *g, size_t ldg,
                                int oy0, int oy1, float *dxn, float *dw, float *col)
{
    const size_t p = (size_t)d->oh * d->ow, c0 = (size_t)oy0 * d->ow, cp = (size_t)(oy1 - oy0) * d->ow;
    const int pointwise = is_pointwise(d);
    int ldc = 0, ldg_op = (int)ldg;
    const void *g_op = th_gemm_operand(d->precision, g, &ldg_op, d->k, (int)cp, bf16_grad(d, col));
    const void *c_op = dw ? columns(d, xn, oy0, oy1, col, &ldc) : NULL;
    /* pointwise: dx's columns are dxn[:, c0:] itself; otherwise col (fp32:
     * it has served dw) receives them for col2im. */
    float *dcol = !dxn ? NULL : pointwise ? dxn + c0 : col;
    backward_gemms(d, w, g_op, ldg_op, c_op, ldc, cp, dw, dcol, pointwise ? (int)p : (int)cp);
    if (dxn && !pointwise) th_col2im(d, col, oy0, oy1, cp, dxn);
}

/* The gradients from images [0, g) of a group (g <= d->group; not
 * pointwise): their columns side by side in col [CKK, g*P] and their output
 * gradients gathered into [K, g*P] (converted to bf16 on the way when
 * bf16), so that each GEMM makes one pass over g*P columns. x, dy and dx
 * (may be NULL) point at the group's first image. */
static void gemm_backward_group(const th_conv_dims *d, const float *x, const void *w, const float *dy, float *dx,
                                float *dw, int g, float *col)
{
    const size_t p = (size_t)d->oh * d->ow, cp = (size_t)g * p, chw = (size_t)d->c * d->h * d->w;
    const size_t kp = (size_t)d->k * p;
    const void *g_op, *c_op = col;
    if (d->precision == TH_PRECISION_BF16) {
        th_bf16 *gb = bf16_grad(d, col), *cb = bf16_cols(d, col);
        for (int j = 0; j < g && dw; j++) th_im2col_bf16(d, x + j * chw, 0, d->oh, cb + j * p, cp, col);
        for (int j = 0; j < g; j++) th_bf16_convert(gb + j * p, cp, dy + j * kp, p, (size_t)d->k, p);
        g_op = gb, c_op = cb;
    } else {
        for (int j = 0; j < g && dw; j++) th_im2col(d, x + j * chw, 0, d->oh, col + j * p, cp);
        float *gf = gemm_block_out(d, col);
        for (int k = 0; k < d->k; k++)
            for (int j = 0; j < g; j++) memcpy(gf + k * cp + j * p, dy + j * kp + k * p, p * sizeof *gf);
        g_op = gf;
    }
    backward_gemms(d, w, g_op, (int)cp, c_op, (int)cp, cp, dw, dx ? col : NULL, (int)cp);
    for (int j = 0; j < g && dx; j++) {
        memset(dx + j * chw, 0, chw * sizeof *dx);
        th_col2im(d, col + j * p, 0, d->oh, cp, dx + j * chw);
    }
}

static void gemm_forward(const th_conv_dims *d, const float *xn, const void *w, const float *b, float *yn, int relu,
                         float *col)
{
    const size_t p = (size_t)d->oh * d->ow;
    for (int oy0 = 0; oy0 < d->oh; oy0 += d->block_rows) {
        int oy1 = oy0 + d->block_rows < d->oh ? oy0 + d->block_rows : d->oh;
        gemm_forward_block(d, xn, w, b, relu, oy0, oy1, yn + (size_t)oy0 * d->ow, p, col);
    }
}

static void gemm_backward(const th_conv_dims *d, const float *xn, const void *w, const float *dyn, float *dxn,
                          float *dw, float *col)
{
    const size_t p = (size_t)d->oh * d->ow;
    if (dxn && !is_pointwise(d)) memset(dxn, 0, (size_t)d->c * d->h * d->w * sizeof *dxn);
    for (int oy0 = 0; oy0 < d->oh; oy0 += d->block_rows) {
        int oy1 = oy0 + d->block_rows < d->oh ? oy0 + d->block_rows : d->oh;
        gemm_backward_block(d, xn, w, dyn + (size_t)oy0 * d->ow, p, oy0, oy1, dxn, dw, col);
    }
}

/* conv -> ReLU -> 2x2 max-pool of one image on the GEMM path: each block of
 * output row pairs is computed into scratch and pooled there, into py
 * [K, OH/2, OW/2] and argmax. A last odd row, which no window covers, is not
 * computed. */
static void gemm_forward_pool(const th_conv_dims *d, const float *xn, const void *w, const float *b, float *py,
                              int32_t *argmax, float *col)
{
    const int ow = d->ow, ph = d->oh / 2, rows = pool_block_rows(d);
    float *out = gemm_block_out(d, col);
    for (int oy0 = 0; oy0 < 2 * ph; oy0 += rows) {
        int oy1 = oy0 + rows < 2 * ph ? oy0 + rows : 2 * ph;
        gemm_forward_block(d, xn, w, b, 1, oy0, oy1, out, (size_t)(oy1 - oy0) * ow, col);
        pool_rows(d, out, oy0, oy1, py, argmax);
    }
}

/* The backward of gemm_forward_pool from the pool's gradient. */
static void gemm_backward_pool(const th_conv_dims *d, const float *xn, const void *w, const float *pdy,
                               const float *py, const int32_t *argmax, float *dxn, float *dw, float *db, float *col)
{
    const int ow = d->ow, ph = d->oh / 2, rows = pool_block_rows(d);
    float *g = gemm_block_out(d, col), *grow = g + (size_t)d->k * scratch_cols(d);
    if (dxn && !is_pointwise(d)) memset(dxn, 0, (size_t)d->c * d->h * d->w * sizeof *dxn);
    if (dxn && is_pointwise(d) && (d->oh & 1))  /* the uncovered last row gets no gradient */
        for (int c = 0; c < d->c; c++) memset(dxn + ((size_t)c * d->oh + d->oh - 1) * ow, 0, (size_t)ow * sizeof *dxn);
    for (int oy0 = 0; oy0 < 2 * ph; oy0 += rows) {
        int oy1 = oy0 + rows < 2 * ph ? oy0 + rows : 2 * ph;
        unpool_rows(d, pdy, py, argmax, oy0, oy1, g, db, grow);
        gemm_backward_block(d, xn, w, g, (size_t)(oy1 - oy0) * ow, oy0, oy1, dxn, dw, col);
    }
}

/* Forward of images [first, end) with one thread's workspace slice. */
static void forward_images(const th_conv_dims *d, const conv_io *io, int first, int end, float *slice)
{
    const size_t kp = (size_t)d->k * d->oh * d->ow, pooled = (size_t)d->k * (d->oh / 2) * (d->ow / 2);
    const size_t chw = (size_t)d->c * d->h * d->w;
    direct_scratch ds;
    if (is_direct(d)) direct_scratch_init(d, slice, &ds);
    for (int n = first; n < end; n++) {
        const float *xn = io->x + n * chw;
        if (io->pool && is_direct(d))
            direct_forward_pool(d, xn, io->w, io->b, io->py_out + n * pooled, io->argmax_out + n * pooled, &ds);
        else if (io->pool)
            gemm_forward_pool(d, xn, io->gemm_w, io->b, io->py_out + n * pooled, io->argmax_out + n * pooled, slice);
        else if (is_direct(d))
            direct_forward(d, xn, io->w, io->b, io->y + n * kp, io->relu, &ds);
        else
            gemm_forward(d, xn, io->gemm_w, io->b, io->y + n * kp, io->relu, slice);
    }
}

/* Backward of images [first, end): adds their weight and bias gradients to
 * dw [K, CKK] and db [K] and writes their dx. */
static void backward_images(const th_conv_dims *d, const conv_io *io, float *dw, float *db, int first, int end,
                            float *slice)
{
    const size_t p = (size_t)d->oh * d->ow, kp = (size_t)d->k * p, chw = (size_t)d->c * d->h * d->w;
    const size_t pooled = (size_t)d->k * (d->oh / 2) * (d->ow / 2);
    direct_scratch ds;
    if (is_direct(d)) direct_scratch_init(d, slice, &ds);
    for (int n = first; n < end; n++) {
        const float *xn = io->x + n * chw;
        float *dxn = io->dx ? io->dx + n * chw : NULL;
        if (io->pool) {
            const float *pdy = io->pdy + n * pooled, *py = io->py + n * pooled;
            const int32_t *am = io->argmax + n * pooled;
            if (is_direct(d)) direct_backward_pool(d, xn, io->w, pdy, py, am, dxn, dw, db, &ds);
            else gemm_backward_pool(d, xn, io->gemm_w, pdy, py, am, dxn, dw, db, slice);
            continue;
        }
        float *dyn = io->dy + n * kp;
        if (io->relu_y) {
            const float *yn = io->relu_y + n * kp;
            for (size_t i = 0; i < kp; i++) dyn[i] = yn[i] > 0.0f ? dyn[i] : 0.0f;
        }
        for (int k = 0; k < d->k && db; k++) {
            const float *g = dyn + (size_t)k * p;
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (size_t i = 0; i < p; i++) sum += g[i];
            db[k] += sum;
        }
        if (is_direct(d)) {
            direct_backward(d, xn, io->w, dyn, dxn, dw, &ds);
        } else if (d->group < 2) {
            gemm_backward(d, xn, io->gemm_w, dyn, dxn, dw, slice);
        } else if ((n - first) % d->group == d->group - 1 || n == end - 1) {
            /* the group's last image: its gradient is ready, run the group */
            int g = (n - first) % d->group + 1, n0 = n + 1 - g;
            gemm_backward_group(d, io->x + n0 * chw, io->gemm_w, io->dy + n0 * kp, io->dx ? io->dx + n0 * chw : NULL,
                                dw, g, slice);
        }
    }
}

static int thread_num(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* bf16: the team converts the weights into slice 0's copy, a share of
 * filters each, before any thread's GEMM reads it. */
static void convert_weights(const th_conv_dims *d, const conv_io *io, int threads, int t)
{
    if (!io->wb) return;
    const size_t ckk = (size_t)d->c * d->kh * d->kw;
    int k0, k1;
    th_workspace_share(d->k, threads, t, &k0, &k1);
    th_bf16_convert(io->wb + k0 * ckk, ckk, io->w + k0 * ckk, ckk, (size_t)(k1 - k0), ckk);
#pragma omp barrier
}

/* Points io at the weights the GEMMs read. */
static void gemm_weights(const th_conv_dims *d, conv_io *io, const th_workspace *ws)
{
    const int bf16 = d->precision == TH_PRECISION_BF16 && !is_direct(d);
    io->wb = bf16 ? bf16_weights(d, th_workspace_slice(ws, 0)) : NULL;
    io->gemm_w = bf16 ? (const void *)io->wb : (const void *)io->w;
}

static void forward_team(const th_conv_dims *d, const conv_io *io, const th_workspace *ws)
{
    const int threads = ws->threads < d->n ? ws->threads : d->n;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        int t = thread_num(), first, end;
        convert_weights(d, io, threads, t);
        th_workspace_share(d->n, threads, t, &first, &end);
        forward_images(d, io, first, end, th_workspace_slice(ws, t));
    }
}

/* Every thread sums its images' weight gradients into its own slice
 * (thread 0 straight into dw and db), then the slices are added in thread
 * order, each thread adding up its share of the elements. Without dw (a
 * frozen layer) only the input gradient is computed. */
static void backward_team(const th_conv_dims *d, const conv_io *io, float *dw, float *db, const th_workspace *ws)
{
    const int threads = ws->threads < d->n ? ws->threads : d->n;
    const size_t ckk = (size_t)d->c * d->kh * d->kw, nw = (size_t)d->k * ckk;
    const size_t col_floats = th_conv_workspace_floats(d) - nw - (size_t)d->k;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        int t = thread_num(), first, end;
        convert_weights(d, io, threads, t);
        th_workspace_share(d->n, threads, t, &first, &end);
        float *slice = th_workspace_slice(ws, t);
        float *my_dw = !dw ? NULL : t == 0 ? dw : slice + col_floats;
        float *my_db = !dw ? NULL : t == 0 && db ? db : slice + col_floats + nw;
        if (my_dw) memset(my_dw, 0, nw * sizeof *my_dw);
        if (my_db) memset(my_db, 0, (size_t)d->k * sizeof *my_db);
        backward_images(d, io, my_dw, my_db, first, end, slice);
#pragma omp barrier
        int e0, e1;
        if (!dw) e0 = e1 = 0;
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

void th_conv_forward(const th_conv_dims *d, const float *x, const float *w, const float *b,
                     float *y, int relu, const th_workspace *ws)
{
    conv_io io = {.x = x, .w = w, .b = b, .y = y, .relu = relu};
    gemm_weights(d, &io, ws);
    forward_team(d, &io, ws);
}

void th_conv_backward(const th_conv_dims *d, const float *x, const float *w, float *dy, const float *relu_y,
                      float *dx, float *dw, float *db, const th_workspace *ws)
{
    conv_io io = {.x = x, .w = w, .dy = dy, .relu_y = relu_y, .dx = dx};
    gemm_weights(d, &io, ws);
    backward_team(d, &io, dw, db, ws);
}

void th_conv_forward_pool(const th_conv_dims *d, const float *x, const float *w, const float *b, float *py,
                          int32_t *argmax, const th_workspace *ws)
{
    conv_io io = {.x = x, .w = w, .b = b, .pool = 1, .py_out = py, .argmax_out = argmax, .relu = 1};
    gemm_weights(d, &io, ws);
    forward_team(d, &io, ws);
}

void th_conv_backward_pool(const th_conv_dims *d, const float *x, const float *w, const float *pdy,
                           const float *py, const int32_t *argmax, float *dx, float *dw, float *db,
                           const th_workspace *ws)
{
    conv_io io = {.x = x, .w = w, .pool = 1, .pdy = pdy, .py = py, .argmax = argmax, .dx = dx};
    gemm_weights(d, &io, ws);
    backward_team(d, &io, dw, db, ws);
}

/* pool.c - max, average and global average pooling (see src/nn/pool.h).
 *
 * All three work plane by plane: an [N, C, H, W] tensor is N*C independent
 * H x W images. Windows are k x k, step `stride`, and the output length is
 * floor((in + 2 pad - k)/stride) + 1 as in PyTorch, so trailing rows or
 * columns that do not fill a window are ignored (and get zero gradient).
 * Only max-pooling pads (ResNet's and DenseNet's 3x3 stem pool); padding
 * never wins a window.
 */
#include "pool.h"

#include <stddef.h>
#include <string.h>

#include "simd.h"

int th_pool_out_len(int in, int k, int stride, int pad)
{
    if (stride < 1 || k < 1 || pad < 0 || in + 2 * pad < k) return 0;
    return (in + 2 * pad - k) / stride + 1;
}

/* The common 2x2 window with stride 2, written without branches so the
 * compiler vectorises it: the four candidates in PyTorch's order, each
 * replacing the best so far only when strictly greater. */
void th_maxpool2_row(const float *r0, const float *r1, int w, int32_t base, float *y, int32_t *argmax)
{
    for (int ox = 0; ox < w / 2; ox++) {
        float best = r0[2 * ox];
        int32_t at = base + 2 * ox;
        float v = r0[2 * ox + 1];
        at = v > best ? base + 2 * ox + 1 : at;
        best = v > best ? v : best;
        v = r1[2 * ox];
        at = v > best ? base + w + 2 * ox : at;
        best = v > best ? v : best;
        v = r1[2 * ox + 1];
        at = v > best ? base + w + 2 * ox + 1 : at;
        best = v > best ? v : best;
        y[ox] = best;
        argmax[ox] = at;
    }
}

/* Every input of a window is written (the gradient where the maximum was,
 * zeros elsewhere): the windows tile the plane, so no memset and no
 * scattered adds. Eight windows at a time: each of the four positions gets
 * its masked gradient, and the even and odd positions of a row are
 * interleaved (the compiler does not vectorise the strided scalar form). */
void th_maxpool2_row_backward(const float *dy, const int32_t *argmax, int w, int32_t base, float *r0, float *r1)
{
    const v8i step = {0, 2, 4, 6, 8, 10, 12, 14};
    int ox = 0;
    for (; ox + 8 <= w / 2; ox += 8) {
        v8f g;
        v8i at;
        memcpy(&g, dy + ox, sizeof g);
        memcpy(&at, argmax + ox, sizeof at);
        at -= base + 2 * ox + step;  /* 0, 1, w or w + 1 within each window */
        v8f e0 = (v8f)((v8i)g & (at == 0)), e1 = (v8f)((v8i)g & (at == 1));
        v8f e2 = (v8f)((v8i)g & (at == w)), e3 = (v8f)((v8i)g & (at == w + 1));
        v8f out[4] = {TH_INTERLEAVE8_LO(e0, e1), TH_INTERLEAVE8_HI(e0, e1), TH_INTERLEAVE8_LO(e2, e3),
                      TH_INTERLEAVE8_HI(e2, e3)};
        memcpy(r0 + 2 * ox, out, 2 * sizeof out[0]);
        memcpy(r1 + 2 * ox, out + 2, 2 * sizeof out[0]);
    }
    for (; ox < w / 2; ox++) {
        float g = dy[ox];
        int32_t at = argmax[ox] - base - 2 * ox;
        r0[2 * ox] = at == 0 ? g : 0.0f;
        r0[2 * ox + 1] = at == 1 ? g : 0.0f;
        r1[2 * ox] = at == w ? g : 0.0f;
        r1[2 * ox + 1] = at == w + 1 ? g : 0.0f;
    }
    if (w & 1) r0[w - 1] = r1[w - 1] = 0.0f;
}

static void maxpool2_forward(size_t planes, int h, int w, const float *x, float *y, int32_t *argmax)
{
    const int oh = h / 2, ow = w / 2;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * h * w;
        for (int oy = 0; oy < oh; oy++) {
            const float *r0 = xp + (size_t)(2 * oy) * w;
            size_t o = (pl * oh + oy) * ow;
            th_maxpool2_row(r0, r0 + w, w, 2 * oy * w, y + o, argmax + o);
        }
    }
}

static void maxpool2_backward(size_t planes, int h, int w, const float *dy, const int32_t *argmax, float *dx)
{
    const int oh = h / 2, ow = w / 2;
    for (size_t pl = 0; pl < planes; pl++) {
        float *dp = dx + pl * h * w;
        for (int oy = 0; oy < oh; oy++) {
            float *r0 = dp + (size_t)(2 * oy) * w;
            size_t o = (pl * oh + oy) * ow;
            th_maxpool2_row_backward(dy + o, argmax + o, w, 2 * oy * w, r0, r0 + w);
        }
        if (h & 1) memset(dp + (size_t)(h - 1) * w, 0, (size_t)w * sizeof *dp);
    }
}

/* Output (oy, ox) of a k x k window, step stride, padding pad over a plane
 * xp [h, w]: the window clipped to the plane (padding never wins), scanned
 * row by row, each value replacing the best so far only when strictly
 * greater (the first maximum, as PyTorch keeps it). */
static inline void window_max(const float *xp, int h, int w, int k, int stride, int pad, int oy, int ox, float *y,
                              int32_t *argmax)
{
    int iy0 = oy * stride - pad, ix0 = ox * stride - pad;
    int i0 = iy0 < 0 ? -iy0 : 0, j0 = ix0 < 0 ? -ix0 : 0;
    int i1 = iy0 + k > h ? h - iy0 : k, j1 = ix0 + k > w ? w - ix0 : k;
    int32_t best_i = (iy0 + i0) * w + ix0 + j0;
    float best = xp[best_i];
    for (int i = i0; i < i1; i++) {
        const float *row = xp + (size_t)(iy0 + i) * w;
        for (int j = j0; j < j1; j++) {
            if (row[ix0 + j] > best) {
                best = row[ix0 + j];
                best_i = (iy0 + i) * w + ix0 + j;
            }
        }
    }
    *y = best;
    *argmax = best_i;
}

/* ---- the padded 3x3, stride-2 max-pool (ResNet's and DenseNet's stem) ----
 * Window (oy, ox) covers rows 2oy-1 .. 2oy+1 and columns 2ox-1 .. 2ox+1.
 * Forward takes 8 outputs of a row at a time where their windows lie inside
 * the plane's columns (ox >= 1, 2ox + 1 < w): the three columns of each
 * window are the even elements of x[2ox-1 ..] and the even and odd ones of
 * x[2ox ..], and the nine candidates are compared in window_max's order, so
 * the maxima and their indices (ties included) are window_max's. The last
 * step is moved back to end at the last such window, recomputing a few
 * outputs (identically) rather than leaving them to the scalar loop; the
 * first column and any padded last one are window_max's. */
TH_INLINE void pool3s2_load(const float *p, v8f *evens, v8f *odds)
{
    v8f a, b;
    memcpy(&a, p, sizeof a);
    memcpy(&b, p + 8, sizeof b);
    *evens = TH_EVENS8(a, b);
    *odds = TH_ODDS8(a, b);
}

/* Outputs ox .. ox+7 of a row whose windows cover input rows r0 .. r1. */
TH_INLINE void pool3s2_forward8(const float *xp, int w, int r0, int r1, int ox, float *y, int32_t *argmax)
{
    const v8i step = {0, 2, 4, 6, 8, 10, 12, 14};
    v8f best = {0};
    v8i at = {0};
    for (int r = r0; r <= r1; r++) {
        v8f c0, skip, c1, c2;
        pool3s2_load(xp + (size_t)r * w + 2 * ox - 1, &c0, &skip);
        pool3s2_load(xp + (size_t)r * w + 2 * ox, &c1, &c2);
        const v8i i0 = r * w + 2 * ox - 1 + step;
        v8i gt;
        if (r == r0) {
            best = c0;
            at = i0;
        } else {
            gt = c0 > best;
            best = (v8f)(((v8i)c0 & gt) | ((v8i)best & ~gt));
            at = (i0 & gt) | (at & ~gt);
        }
        gt = c1 > best;
        best = (v8f)(((v8i)c1 & gt) | ((v8i)best & ~gt));
        at = ((i0 + 1) & gt) | (at & ~gt);
        gt = c2 > best;
        best = (v8f)(((v8i)c2 & gt) | ((v8i)best & ~gt));
        at = ((i0 + 2) & gt) | (at & ~gt);
    }
    memcpy(y + ox, &best, sizeof best);
    memcpy(argmax + ox, &at, sizeof at);
}

TH_INLINE void pool3s2_forward_body(size_t planes, int h, int w, const float *x, float *y, int32_t *argmax)
{
    const int oh = th_pool_out_len(h, 3, 2, 1), ow = th_pool_out_len(w, 3, 2, 1);
    const int last = (w - 16) / 2;  /* the last ox whose 8 windows lie inside (if >= 1) */
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * h * w;
        for (int oy = 0; oy < oh; oy++) {
            float *yr = y + (pl * oh + oy) * ow;
            int32_t *ar = argmax + (pl * oh + oy) * ow;
            const int r0 = oy == 0 ? 0 : 2 * oy - 1, r1 = 2 * oy + 1 < h ? 2 * oy + 1 : h - 1;
            int ox = 1;
            window_max(xp, h, w, 3, 2, 1, oy, 0, yr, ar);
            for (; ox <= last; ox += 8) pool3s2_forward8(xp, w, r0, r1, ox, yr, ar);
            if (last >= 1 && ox < last + 8) {
                pool3s2_forward8(xp, w, r0, r1, last, yr, ar);
                ox = last + 8;
            }
            for (; ox < ow; ox++) window_max(xp, h, w, 3, 2, 1, oy, ox, yr + ox, ar + ox);
        }
    }
}

/* The gradient of input (iy, ix) as th_maxpool_backward's scatter makes
 * it: dy of every window whose maximum it is, added in the order of the
 * windows, from zero. Its windows: oy in [iy/2, (iy+1)/2], ox in [ix/2,
 * (ix+1)/2], within the output. */
static inline float pool3s2_gather1(const float *dy, const int32_t *argmax, int oh, int ow, int w, int iy, int ix)
{
    const int32_t at = iy * w + ix;
    const int oy1 = (iy + 1) / 2 < oh ? (iy + 1) / 2 : oh - 1, ox1 = (ix + 1) / 2 < ow ? (ix + 1) / 2 : ow - 1;
    float g = 0.0f;
    for (int oy = iy / 2; oy <= oy1; oy++)
        for (int ox = ix / 2; ox <= ox1; ox++) g += argmax[oy * ow + ox] == at ? dy[oy * ow + ox] : 0.0f;
    return g;
}

/* Input columns 2q .. 2q+15 of row iy, from window rows oy0 .. oy1: an even
 * column 2q lies in window q alone, an odd one in q and q + 1 (q + 8 < ow). */
TH_INLINE void pool3s2_backward8(const float *dy, const int32_t *argmax, int ow, int w, int iy, int oy0, int oy1,
                                 int q, float *row)
{
    const v8i step = {0, 2, 4, 6, 8, 10, 12, 14};
    const v8i even = iy * w + 2 * q + step, odd = even + 1;
    v8f ge = {0}, go = {0};
    for (int oy = oy0; oy <= oy1; oy++) {
        v8f d0, d1;
        v8i a0, a1;
        memcpy(&d0, dy + oy * ow + q, sizeof d0);
        memcpy(&d1, dy + oy * ow + q + 1, sizeof d1);
        memcpy(&a0, argmax + oy * ow + q, sizeof a0);
        memcpy(&a1, argmax + oy * ow + q + 1, sizeof a1);
        ge += (v8f)((v8i)d0 & (a0 == even));
        go += (v8f)((v8i)d0 & (a0 == odd));
        go += (v8f)((v8i)d1 & (a1 == odd));
    }
    v8f out[2] = {TH_INTERLEAVE8_LO(ge, go), TH_INTERLEAVE8_HI(ge, go)};
    memcpy(row + 2 * q, out, sizeof out);
}

/* Backward gathers rather than scatters: each input sums the windows that
 * may hold it (one or two rows of them, one or two per row), adding zero
 * where it is not the maximum, in the scatter's order. Adding +0 changes no
 * sum that starts from +0, so the result is the scatter's bit for bit, and
 * every input is written once without a memset. Eight column pairs at a
 * time, even and odd columns interleaved as in th_maxpool2_row_backward;
 * the last step moved back as in forward, the rest by pool3s2_gather1. */
TH_INLINE void pool3s2_backward_body(size_t planes, int h, int w, const float *dy, const int32_t *argmax, float *dx)
{
    const int oh = th_pool_out_len(h, 3, 2, 1), ow = th_pool_out_len(w, 3, 2, 1);
    const int last = ow - 9 < (w - 16) / 2 ? ow - 9 : (w - 16) / 2;  /* the last q a step can start at */
    for (size_t pl = 0; pl < planes; pl++) {
        const float *dp = dy + pl * oh * ow;
        const int32_t *ap = argmax + pl * oh * ow;
        float *xp = dx + pl * h * w;
        for (int iy = 0; iy < h; iy++) {
            float *row = xp + (size_t)iy * w;
            const int oy1 = (iy + 1) / 2 < oh ? (iy + 1) / 2 : oh - 1;
            int q = 0;
            for (; q <= last; q += 8) pool3s2_backward8(dp, ap, ow, w, iy, iy / 2, oy1, q, row);
            if (last >= 0 && q < last + 8) {
                pool3s2_backward8(dp, ap, ow, w, iy, iy / 2, oy1, last, row);
                q = last + 8;
            }
            for (int ix = 2 * q; ix < w; ix++) row[ix] = pool3s2_gather1(dp, ap, oh, ow, w, iy, ix);
        }
    }
}

TH_SIMD_DISPATCH(pool3s2_forward, (size_t planes, int h, int w, const float *x, float *y, int32_t *argmax),
                 (planes, h, w, x, y, argmax))
TH_SIMD_DISPATCH(pool3s2_backward, (size_t planes, int h, int w, const float *dy, const int32_t *argmax, float *dx),
                 (planes, h, w, dy, argmax, dx))

void th_maxpool_forward(int n, int c, int h, int w, int k, int stride, int pad,
                        const float *x, float *y, int32_t *argmax)
{
    const size_t planes = (size_t)n * c;
    if (k == 2 && stride == 2 && pad == 0) {
        maxpool2_forward(planes, h, w, x, y, argmax);
        return;
    }
    if (k == 3 && stride == 2 && pad == 1) {
        pool3s2_forward(planes, h, w, x, y, argmax);
        return;
    }
    th_maxpool_forward_scalar(n, c, h, w, k, stride, pad, x, y, argmax);
}

void th_maxpool_forward_scalar(int n, int c, int h, int w, int k, int stride, int pad,
                               const float *x, float *y, int32_t *argmax)
{
    const int oh = th_pool_out_len(h, k, stride, pad), ow = th_pool_out_len(w, k, stride, pad);
    const size_t planes = (size_t)n * c, in_plane = (size_t)h * w, out_plane = (size_t)oh * ow;
    for (size_t pl = 0; pl < planes; pl++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                window_max(x + pl * in_plane, h, w, k, stride, pad, oy, ox, y + pl * out_plane + oy * ow + ox,
                           argmax + pl * out_plane + oy * ow + ox);
}

void th_maxpool_backward(int n, int c, int h, int w, int k, int stride, int pad,
                         const float *dy, const int32_t *argmax, float *dx)
{
    if (k == 2 && stride == 2 && pad == 0) {
        maxpool2_backward((size_t)n * c, h, w, dy, argmax, dx);
        return;
    }
    if (k == 3 && stride == 2 && pad == 1) {
        pool3s2_backward((size_t)n * c, h, w, dy, argmax, dx);
        return;
    }
    th_maxpool_backward_scalar(n, c, h, w, k, stride, pad, dy, argmax, dx);
}

void th_maxpool_backward_scalar(int n, int c, int h, int w, int k, int stride, int pad,
                                const float *dy, const int32_t *argmax, float *dx)
{
    const int oh = th_pool_out_len(h, k, stride, pad), ow = th_pool_out_len(w, k, stride, pad);
    const size_t planes = (size_t)n * c, in_plane = (size_t)h * w, out_plane = (size_t)oh * ow;
    memset(dx, 0, planes * in_plane * sizeof *dx);
    for (size_t pl = 0; pl < planes; pl++) {
        const float *dyp = dy + pl * out_plane;
        const int32_t *ap = argmax + pl * out_plane;
        float *dxp = dx + pl * in_plane;
        /* += because overlapping windows (stride < k) can share a maximum. */
        for (size_t o = 0; o < out_plane; o++) dxp[ap[o]] += dyp[o];
    }
}

void th_avgpool_forward(int n, int c, int h, int w, int k, int stride, const float *x, float *y)
{
    const int oh = th_pool_out_len(h, k, stride, 0), ow = th_pool_out_len(w, k, stride, 0);
    const size_t planes = (size_t)n * c, in_plane = (size_t)h * w, out_plane = (size_t)oh * ow;
    const float scale = 1.0f / (float)(k * k);
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * in_plane;
        float *yp = y + pl * out_plane;
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
                float sum = 0.0f;
                for (int i = 0; i < k; i++) {
                    const float *row = xp + (size_t)(oy * stride + i) * w + ox * stride;
                    for (int j = 0; j < k; j++) sum += row[j];
                }
                yp[oy * ow + ox] = sum * scale;
            }
        }
    }
}

void th_avgpool_backward(int n, int c, int h, int w, int k, int stride, const float *dy, float *dx)
{
    const int oh = th_pool_out_len(h, k, stride, 0), ow = th_pool_out_len(w, k, stride, 0);
    const size_t planes = (size_t)n * c, in_plane = (size_t)h * w, out_plane = (size_t)oh * ow;
    const float scale = 1.0f / (float)(k * k);
    memset(dx, 0, planes * in_plane * sizeof *dx);
    for (size_t pl = 0; pl < planes; pl++) {
        const float *dyp = dy + pl * out_plane;
        float *dxp = dx + pl * in_plane;
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
                float g = dyp[oy * ow + ox] * scale;
                for (int i = 0; i < k; i++) {
                    float *row = dxp + (size_t)(oy * stride + i) * w + ox * stride;
                    for (int j = 0; j < k; j++) row[j] += g;
                }
            }
        }
    }
}

/* y [N, C] = mean of each H*W plane; the double sum keeps a 256x256 plane's
 * mean accurate to float precision. */
void th_gap_forward(int n, int c, int hw, const float *x, float *y)
{
    const size_t planes = (size_t)n * c;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * hw;
        double sum = 0.0;
        for (int i = 0; i < hw; i++) sum += xp[i];
        y[pl] = (float)(sum / hw);
    }
}

void th_gap_backward(int n, int c, int hw, const float *dy, float *dx)
{
    const size_t planes = (size_t)n * c;
    for (size_t pl = 0; pl < planes; pl++) {
        float g = dy[pl] / (float)hw;
        float *dxp = dx + pl * hw;
        for (int i = 0; i < hw; i++) dxp[i] = g;
    }
}

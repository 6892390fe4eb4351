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

void th_maxpool_forward(int n, int c, int h, int w, int k, int stride, int pad,
                        const float *x, float *y, int32_t *argmax)
{
    const int oh = th_pool_out_len(h, k, stride, pad), ow = th_pool_out_len(w, k, stride, pad);
    const size_t planes = (size_t)n * c, in_plane = (size_t)h * w, out_plane = (size_t)oh * ow;
    if (k == 2 && stride == 2 && pad == 0) {
        maxpool2_forward(planes, h, w, x, y, argmax);
        return;
    }
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * in_plane;
        float *yp = y + pl * out_plane;
        int32_t *ap = argmax + pl * out_plane;
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
                /* The window clipped to the plane: padding never wins. */
                int iy0 = oy * stride - pad, ix0 = ox * stride - pad;
                int i0 = iy0 < 0 ? -iy0 : 0, j0 = ix0 < 0 ? -ix0 : 0;
                int i1 = iy0 + k > h ? h - iy0 : k, j1 = ix0 + k > w ? w - ix0 : k;
                int32_t best_i = (iy0 + i0) * w + ix0 + j0;
                float best = xp[best_i];
                for (int i = i0; i < i1; i++) {
                    const float *row = xp + (size_t)(iy0 + i) * w;
                    for (int j = j0; j < j1; j++) {
                        /* Strict > keeps the first maximum, as PyTorch does. */
                        if (row[ix0 + j] > best) {
                            best = row[ix0 + j];
                            best_i = (iy0 + i) * w + ix0 + j;
                        }
                    }
                }
                yp[oy * ow + ox] = best;
                ap[oy * ow + ox] = best_i;
            }
        }
    }
}

void th_maxpool_backward(int n, int c, int h, int w, int k, int stride, int pad,
                         const float *dy, const int32_t *argmax, float *dx)
{
    const int oh = th_pool_out_len(h, k, stride, pad), ow = th_pool_out_len(w, k, stride, pad);
    const size_t planes = (size_t)n * c, in_plane = (size_t)h * w, out_plane = (size_t)oh * ow;
    if (k == 2 && stride == 2 && pad == 0) {
        maxpool2_backward(planes, h, w, dy, argmax, dx);
        return;
    }
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

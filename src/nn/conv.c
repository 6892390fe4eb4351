/* conv.c - 2-D convolution as im2col + one GEMM per pass (see thorax/conv.h).
 *
 * The whole batch is unrolled into one column matrix col [C*KH*KW, N*OH*OW]
 * so that each pass is a single large sgemm: OpenBLAS is fastest on big,
 * square-ish problems, and a per-image GEMM would be K x (OH*OW) with K as
 * small as 16. The price is a reorder between the GEMM's [K, N*P] layout and
 * NCHW, which is where the bias add (forward) and the bias gradient
 * (backward) are folded in, so no extra pass over the activations is made.
 *
 * Notation: P = OH*OW output pixels per image, NP = N*P, CKK = C*KH*KW.
 */
#include "thorax/conv.h"

#include <cblas.h>
#include <string.h>

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
    return 0;
}

size_t th_conv_col_floats(const th_conv_dims *d)
{
    return (size_t)d->c * d->kh * d->kw * d->n * d->oh * d->ow;
}

size_t th_conv_tmp_floats(const th_conv_dims *d)
{
    return (size_t)d->k * d->n * d->oh * d->ow;
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

/* Row r = (ci*KH + ki)*KW + kj of the column matrix holds, for every output
 * pixel (oy, ox), the input value x[ci, oy*s - pad + ki, ox*s - pad + kj]. */
void th_im2col(const th_conv_dims *d, const float *x, float *col, size_t ldcol, size_t col0)
{
    const int s = d->stride, oh = d->oh, ow = d->ow;
    const size_t plane = (size_t)d->h * d->w;
    for (int ci = 0; ci < d->c; ci++) {
        const float *xc = x + ci * plane;
        for (int ki = 0; ki < d->kh; ki++) {
            int y_lo, y_hi;
            valid_range(d->h, oh, s, d->pad, ki, &y_lo, &y_hi);
            for (int kj = 0; kj < d->kw; kj++) {
                int x_lo, x_hi;
                valid_range(d->w, ow, s, d->pad, kj, &x_lo, &x_hi);
                int rows_hi = x_lo < x_hi ? y_hi : y_lo;  /* no column in range: all padding */
                size_t r = ((size_t)ci * d->kh + ki) * d->kw + kj;
                float *dst = col + r * ldcol + col0;

                memset(dst, 0, (size_t)y_lo * ow * sizeof *dst);
                for (int oy = y_lo; oy < rows_hi; oy++) {
                    float *drow = dst + (size_t)oy * ow;
                    const float *src = xc + (size_t)(oy * s - d->pad + ki) * d->w + (x_lo * s - d->pad + kj);
                    int len = x_hi - x_lo;
                    memset(drow, 0, (size_t)x_lo * sizeof *drow);
                    if (s == 1) {
                        memcpy(drow + x_lo, src, (size_t)len * sizeof *drow);
                    } else {
                        for (int i = 0; i < len; i++) drow[x_lo + i] = src[(size_t)i * s];
                    }
                    memset(drow + x_hi, 0, (size_t)(ow - x_hi) * sizeof *drow);
                }
                memset(dst + (size_t)rows_hi * ow, 0, (size_t)(oh - rows_hi) * ow * sizeof *dst);
            }
        }
    }
}

/* Same traversal as th_im2col with the copy reversed into an accumulation:
 * an input pixel covered by several receptive fields receives the sum. */
void th_col2im(const th_conv_dims *d, const float *col, size_t ldcol, size_t col0, float *dx)
{
    const int s = d->stride, ow = d->ow;
    const size_t plane = (size_t)d->h * d->w;
    for (int ci = 0; ci < d->c; ci++) {
        float *dxc = dx + ci * plane;
        for (int ki = 0; ki < d->kh; ki++) {
            int y_lo, y_hi;
            valid_range(d->h, d->oh, s, d->pad, ki, &y_lo, &y_hi);
            for (int kj = 0; kj < d->kw; kj++) {
                int x_lo, x_hi;
                valid_range(d->w, ow, s, d->pad, kj, &x_lo, &x_hi);
                if (x_lo == x_hi) continue;
                size_t r = ((size_t)ci * d->kh + ki) * d->kw + kj;
                const float *src = col + r * ldcol + col0;

                for (int oy = y_lo; oy < y_hi; oy++) {
                    const float *srow = src + (size_t)oy * ow + x_lo;
                    float *drow = dxc + (size_t)(oy * s - d->pad + ki) * d->w + (x_lo * s - d->pad + kj);
                    int len = x_hi - x_lo;
                    for (int i = 0; i < len; i++) drow[(size_t)i * s] += srow[i];
                }
            }
        }
    }
}

/* col [CKK, NP] <- every image of x [N, C, H, W]. */
static void im2col_batch(const th_conv_dims *d, const float *x, float *col)
{
    const size_t p = (size_t)d->oh * d->ow, np = (size_t)d->n * p;
    const size_t chw = (size_t)d->c * d->h * d->w;
    for (int n = 0; n < d->n; n++) th_im2col(d, x + n * chw, col, np, n * p);
}

void th_conv_forward(const th_conv_dims *d, const float *x, const float *w, const float *b,
                     float *y, float *col, float *tmp)
{
    const size_t p = (size_t)d->oh * d->ow, np = (size_t)d->n * p;
    const int ckk = d->c * d->kh * d->kw;

    im2col_batch(d, x, col);

    /* tmp [K, NP] = w [K, CKK] * col [CKK, NP] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->k, (int)np, ckk,
                1.0f, w, ckk, col, (int)np, 0.0f, tmp, (int)np);

    /* y [N, K, P] <- tmp [K, N*P] + b[k] */
    for (int n = 0; n < d->n; n++) {
        for (int k = 0; k < d->k; k++) {
            const float *t = tmp + k * np + n * p;
            float *yk = y + ((size_t)n * d->k + k) * p;
            float bk = b ? b[k] : 0.0f;
            for (size_t i = 0; i < p; i++) yk[i] = t[i] + bk;
        }
    }
}

void th_conv_backward(const th_conv_dims *d, const float *x, const float *w, const float *dy,
                      float *dx, float *dw, float *db, float *col, float *tmp)
{
    const size_t p = (size_t)d->oh * d->ow, np = (size_t)d->n * p;
    const int ckk = d->c * d->kh * d->kw;

    /* The scratch col was overwritten by later layers since our forward. */
    im2col_batch(d, x, col);

    /* tmp [K, N*P] <- dy [N, K, P]; db[k] is the sum of row k. */
    for (int k = 0; k < d->k; k++) {
        double sum = 0.0;
        for (int n = 0; n < d->n; n++) {
            const float *g = dy + ((size_t)n * d->k + k) * p;
            float *t = tmp + k * np + n * p;
            for (size_t i = 0; i < p; i++) {
                t[i] = g[i];
                sum += g[i];
            }
        }
        if (db) db[k] = (float)sum;
    }

    /* dw [K, CKK] = tmp [K, NP] * col^T [NP, CKK] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d->k, ckk, (int)np,
                1.0f, tmp, (int)np, col, (int)np, 0.0f, dw, ckk);

    if (!dx) return;

    /* col [CKK, NP] = w^T [CKK, K] * tmp [K, NP]; col has served dw, so it is
     * reused for the column gradient. */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, (int)np, d->k,
                1.0f, w, ckk, tmp, (int)np, 0.0f, col, (int)np);

    const size_t chw = (size_t)d->c * d->h * d->w;
    memset(dx, 0, (size_t)d->n * chw * sizeof *dx);
    for (int n = 0; n < d->n; n++) th_col2im(d, col, np, n * p, dx + n * chw);
}

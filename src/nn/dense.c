/* dense.c - fully connected layer as GEMMs (see src/nn/dense.h).
 *
 *   forward:  y [N, O] = x [N, I] * w^T [I, O] + b
 *   backward: dw [O, I] = dy^T [O, N] * x [N, I]
 *             dx [N, I] = dy [N, O] * w [O, I]
 *             db [O]    = column sums of dy
 *
 * The weight keeps PyTorch's [out, in] layout (fc.weight) so checkpoints map
 * one to one; the transposes are left to the BLAS.
 */
#include "dense.h"

#include <cblas.h>
#include <stddef.h>

void th_dense_forward(int n, int in, int out, const float *x, const float *w, const float *b, float *y)
{
    /* Start y from the bias rows and let the GEMM accumulate onto them. */
    for (int i = 0; i < n; i++) {
        float *yi = y + (size_t)i * out;
        for (int o = 0; o < out; o++) yi[o] = b ? b[o] : 0.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in,
                1.0f, x, in, w, in, 1.0f, y, out);
}

void th_dense_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                       float *dx, float *dw, float *db)
{
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n,
                    1.0f, dy, out, x, in, 0.0f, dw, in);

    if (db) {
        for (int o = 0; o < out; o++) {
            double sum = 0.0;
            for (int i = 0; i < n; i++) sum += dy[(size_t)i * out + o];
            db[o] = (float)sum;
        }
    }

    if (dx) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out,
                    1.0f, dy, out, w, in, 0.0f, dx, in);
    }
}

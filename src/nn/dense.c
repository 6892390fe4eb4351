/* dense.c - fully connected layer as GEMMs (see src/nn/dense.h).
 *
 *   forward:  y [N, O] = x [N, I] * w^T [I, O] + b
 *   backward: dw [O, I] = dy^T [O, N] * x [N, I]
 *             dx [N, I] = dy [N, O] * w [O, I]
 *             db [O]    = column sums of dy
 *
 * The weight keeps PyTorch's [out, in] layout (fc.weight) so checkpoints map
 * one to one; the transposes are left to the GEMM (src/nn/gemm.h).
 */
#include "dense.h"

#include "gemm.h"

/* The bf16 copies in scratch: x [N, I], then w [O, I], then dy [N, O]. */
size_t th_dense_scratch_floats(int n, int in, int out, th_precision p)
{
    if (p != TH_PRECISION_BF16) return 0;
    return th_bf16_floats((size_t)n * in + (size_t)out * in + (size_t)n * out);
}

void th_dense_forward_p(th_precision p, int n, int in, int out, const float *x, const float *w, const float *b,
                        float *y, float *scratch)
{
    th_bf16 *xb = (th_bf16 *)scratch, *wb = xb ? xb + (size_t)n * in : NULL;
    /* Start y from the bias rows and let the GEMM accumulate onto them. */
    for (int i = 0; i < n; i++) {
        float *yi = y + (size_t)i * out;
        for (int o = 0; o < out; o++) yi[o] = b ? b[o] : 0.0f;
    }
    int ldx = in, ldw = in;
    const void *x_op = th_gemm_operand(p, x, &ldx, n, in, xb);
    const void *w_op = th_gemm_operand(p, w, &ldw, out, in, wb);
    th_gemm(p, 0, 1, n, out, in, x_op, ldx, w_op, ldw, 1.0f, y, out);
}

void th_dense_backward_p(th_precision p, int n, int in, int out, const float *x, const float *w, const float *dy,
                         float *dx, float *dw, float *db, float *scratch)
{
    th_bf16 *xb = (th_bf16 *)scratch, *wb = xb ? xb + (size_t)n * in : NULL, *dyb = wb ? wb + (size_t)out * in : NULL;
    int ldy = out;
    const void *dy_op = th_gemm_operand(p, dy, &ldy, n, out, dyb);
    if (dw) {
        int ldx = in;
        const void *x_op = th_gemm_operand(p, x, &ldx, n, in, xb);
        th_gemm(p, 1, 0, out, in, n, dy_op, ldy, x_op, ldx, 0.0f, dw, in);
    }

    if (db) {
        for (int o = 0; o < out; o++) {
            double sum = 0.0;
            for (int i = 0; i < n; i++) sum += dy[(size_t)i * out + o];
            db[o] = (float)sum;
        }
    }

    if (dx) {
        int ldw = in;
        const void *w_op = th_gemm_operand(p, w, &ldw, out, in, wb);
        th_gemm(p, 0, 0, n, in, out, dy_op, ldy, w_op, ldw, 0.0f, dx, in);
    }
}

void th_dense_forward(int n, int in, int out, const float *x, const float *w, const float *b, float *y)
{
    th_dense_forward_p(TH_PRECISION_FP32, n, in, out, x, w, b, y, NULL);
}

void th_dense_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                       float *dx, float *dw, float *db)
{
    th_dense_backward_p(TH_PRECISION_FP32, n, in, out, x, w, dy, dx, dw, db, NULL);
}

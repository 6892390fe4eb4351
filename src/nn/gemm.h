/* gemm.h - the one GEMM entry point of the layer kernels, fp32 or bf16
 * (private to src/nn).
 *
 *   C [m, n] = op(A) [m, k] * op(B) [k, n] + beta * C      row-major, C fp32
 *
 * TH_PRECISION_FP32: A and B are float, OpenBLAS sgemm (bit-identical to
 * calling cblas_sgemm directly). TH_PRECISION_BF16: A and B are bfloat16
 * (th_gemm_operand converts them), products summed in fp32 by oneDNN's
 * matmul primitive (its AVX512_BF16 brgemm kernels: about twice sgemm on
 * the convolutions' shapes, README Benchmarks). op(X) is X or X^T (ta, tb);
 * lda, ldb, ldc are the row strides of A, B, C as stored.
 *
 * Both are single-threaded on the calling thread, which may be one of an
 * OpenMP team each running its own GEMMs (the layers split images across
 * threads). The bf16 path keeps, per thread, one oneDNN primitive per
 * distinct call (shape, strides, beta) made on first use, with its
 * scratchpad: the first step of a run creates them, later ones only run
 * them and never allocate.
 */
#ifndef THORAX_NN_GEMM_H
#define THORAX_NN_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "thorax/spec.h"

typedef uint16_t th_bf16;

/* dst [rows, cols] (row stride ldd) = src [rows, cols] (row stride lds)
 * rounded to bf16, to nearest even (AVX512_BF16 vcvtne2ps2bf16 where the
 * CPU has it). */
void th_bf16_convert(th_bf16 *dst, size_t ldd, const float *src, size_t lds, size_t rows, size_t cols);

/* The operand th_gemm reads for src [rows, cols] with row stride *ld: src
 * itself for fp32; for bf16 its copy converted into scratch (room for
 * rows * cols), and *ld becomes cols. */
const void *th_gemm_operand(th_precision p, const float *src, int *ld, int rows, int cols, th_bf16 *scratch);

void th_gemm(th_precision p, int ta, int tb, int m, int n, int k, const void *a, int lda, const void *b, int ldb,
             float beta, float *c, int ldc);

/* bf16 elements of scratch, in floats rounded up to whole cache lines (the
 * kernels' workspace is counted in floats). */
static inline size_t th_bf16_floats(size_t elems) { return (elems + 31) / 32 * 16; }

#endif

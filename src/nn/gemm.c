/* gemm.c - fp32 and bf16 GEMMs behind one call (see src/nn/gemm.h). */
#include "gemm.h"

#include <cblas.h>
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "thorax/nn.h"

int th_nn_bf16_supported(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    return __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

const char *th_nn_cpu_simd(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512bf16")) return "AVX-512 with BF16";
    if (__builtin_cpu_supports("avx512f")) return "AVX-512 without BF16";
    if (__builtin_cpu_supports("avx2")) return "AVX2, no AVX-512";
    return "neither AVX2 nor AVX-512";
#else
    return "no x86-64 vector extensions";
#endif
}

/* Round to nearest even on the bit pattern (NaN stays NaN: its quiet bit is
 * in the kept half). */
static th_bf16 bf16_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (th_bf16)((u >> 16) | 0x40u);
    return (th_bf16)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

#if defined(__x86_64__) && defined(__GNUC__)
/* One row, 32 floats per vcvtne2ps2bf16 (same rounding as bf16_of), the
 * rest 16 at a time with a masked tail (im2col's rows of 7x7 images are 49
 * long). */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void convert_row_avx512(th_bf16 *dst,
                                                                                            const float *src,
                                                                                            size_t n)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
        _mm512_storeu_si512((void *)(dst + i), (__m512i)v);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i));
        _mm256_mask_storeu_epi16((void *)(dst + i), m, (__m256i)v);
    }
}
#endif

void th_bf16_convert(th_bf16 *dst, size_t ldd, const float *src, size_t lds, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) {
#if defined(__x86_64__) && defined(__GNUC__)
        if (th_nn_bf16_supported()) {
            convert_row_avx512(dst + r * ldd, src + r * lds, cols);
            continue;
        }
#endif
        for (size_t i = 0; i < cols; i++) dst[r * ldd + i] = bf16_of(src[r * lds + i]);
    }
}

const void *th_gemm_operand(th_precision p, const float *src, int *ld, int rows, int cols, th_bf16 *scratch)
{
    if (p == TH_PRECISION_FP32) return src;
    th_bf16_convert(scratch, (size_t)cols, src, (size_t)*ld, (size_t)rows, (size_t)cols);
    *ld = cols;
    return scratch;
}

/* ---- the bf16 path: oneDNN matmul primitives, one per distinct call ---- */

typedef struct gemm_key {
    int ta, tb, m, n, k, lda, ldb, ldc, accumulate;
} gemm_key;

typedef struct gemm_prim {
    gemm_key key;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c, scratch;
    void *scratch_buf;
} gemm_prim;

/* Per thread: a training step of ResNet-18 at batch 16 makes 40 distinct
 * calls, DenseNet-121's 237 (forward, dW and dX, each for a full and a last
 * block of rows, or a group of images and a thread's last, shorter group);
 * beyond the table's size the oldest entry is replaced, which would make
 * (allocate, JIT-compile) primitives in every step, hence the margin. */
enum { CACHE_SIZE = 1024 };
static _Thread_local gemm_prim cache[CACHE_SIZE];
static _Thread_local int cache_used, cache_next;
static _Thread_local dnnl_stream_t stream;   /* this thread's, made with its first primitive */
static dnnl_engine_t engine;

static void fail(const char *what, dnnl_status_t s)
{
    char msg[160];
    snprintf(msg, sizeof msg, "oneDNN bf16 matmul: %s failed with status %d", what, (int)s);
    th_assert_fail(__FILE__, __LINE__, msg);
}

#define DNNL_OK(call)                               \
    do {                                            \
        dnnl_status_t s_ = (call);                  \
        if (s_ != dnnl_success) fail(#call, s_);    \
    } while (0)

/* A stored row-major matrix with row stride ld, seen as [rows, cols], or
 * as its transpose when t (stored [cols, rows]). */
static dnnl_memory_desc_t matrix(int rows, int cols, int t, int ld, dnnl_data_type_t dt)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {rows, cols}, strides = {t ? 1 : ld, t ? ld : 1};
    DNNL_OK(dnnl_memory_desc_init_by_strides(&md, 2, dims, dt, strides));
    return md;
}

static void prim_destroy(gemm_prim *g)
{
    dnnl_primitive_destroy(g->prim);
    dnnl_memory_destroy(g->a);
    dnnl_memory_destroy(g->b);
    dnnl_memory_destroy(g->c);
    dnnl_memory_destroy(g->scratch);
    th_free_aligned(g->scratch_buf);
}

static void prim_create(gemm_prim *g, const gemm_key *key)
{
#pragma omp critical(thorax_gemm_engine)
    if (!engine) DNNL_OK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    dnnl_memory_desc_t amd = matrix(key->m, key->k, key->ta, key->lda, dnnl_bf16);
    dnnl_memory_desc_t bmd = matrix(key->k, key->n, key->tb, key->ldb, dnnl_bf16);
    dnnl_memory_desc_t cmd = matrix(key->m, key->n, 0, key->ldc, dnnl_f32);
    dnnl_matmul_desc_t desc;
    DNNL_OK(dnnl_matmul_desc_init(&desc, &amd, &bmd, NULL, &cmd));
    dnnl_primitive_attr_t attr;
    DNNL_OK(dnnl_primitive_attr_create(&attr));
    /* Its scratchpad is ours, made here, so that running it never allocates. */
    DNNL_OK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    if (key->accumulate) {
        dnnl_post_ops_t po;
        DNNL_OK(dnnl_post_ops_create(&po));
        DNNL_OK(dnnl_post_ops_append_sum(po, 1.0f));
        DNNL_OK(dnnl_primitive_attr_set_post_ops(attr, po));
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd;
    DNNL_OK(dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL));
    dnnl_primitive_attr_destroy(attr);
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t bytes = dnnl_memory_desc_get_size(smd);
    g->scratch_buf = bytes ? th_alloc_aligned(bytes, "oneDNN scratchpad") : NULL;
    if (bytes && !g->scratch_buf) fail("scratchpad allocation", dnnl_out_of_memory);
    DNNL_OK(dnnl_memory_create(&g->scratch, smd, engine, g->scratch_buf));
    DNNL_OK(dnnl_primitive_create(&g->prim, pd));
    dnnl_primitive_desc_destroy(pd);
    DNNL_OK(dnnl_memory_create(&g->a, &amd, engine, DNNL_MEMORY_NONE));
    DNNL_OK(dnnl_memory_create(&g->b, &bmd, engine, DNNL_MEMORY_NONE));
    DNNL_OK(dnnl_memory_create(&g->c, &cmd, engine, DNNL_MEMORY_NONE));
    g->key = *key;
}

static gemm_prim *prim_get(const gemm_key *key)
{
    for (int i = 0; i < cache_used; i++)
        if (memcmp(&cache[i].key, key, sizeof *key) == 0) return &cache[i];
    gemm_prim *g;
    if (cache_used < CACHE_SIZE) {
        g = &cache[cache_used++];
    } else {
        g = &cache[cache_next];
        cache_next = (cache_next + 1) % CACHE_SIZE;
        prim_destroy(g);
    }
    prim_create(g, key);
    return g;
}

static void gemm_bf16(int ta, int tb, int m, int n, int k, const th_bf16 *a, int lda, const th_bf16 *b, int ldb,
                      float beta, float *c, int ldc)
{
    TH_ASSERT(beta == 0.0f || beta == 1.0f);
    gemm_key key = {ta, tb, m, n, k, lda, ldb, ldc, beta != 0.0f};
#ifdef _OPENMP
    /* oneDNN's OpenMP runtime takes its team size from this thread's
     * setting, both when it makes a primitive and when it runs one: 1, as
     * the caller's thread is the one core this GEMM may use. */
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    gemm_prim *g = prim_get(&key);
    DNNL_OK(dnnl_memory_set_data_handle(g->a, (void *)a));
    DNNL_OK(dnnl_memory_set_data_handle(g->b, (void *)b));
    DNNL_OK(dnnl_memory_set_data_handle(g->c, c));
    if (!stream) DNNL_OK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, g->a}, {DNNL_ARG_WEIGHTS, g->b}, {DNNL_ARG_DST, g->c},
                              {DNNL_ARG_SCRATCHPAD, g->scratch}};
    DNNL_OK(dnnl_primitive_execute(g->prim, stream, 4, args));
    DNNL_OK(dnnl_stream_wait(stream));
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
}

void th_gemm(th_precision p, int ta, int tb, int m, int n, int k, const void *a, int lda, const void *b, int ldb,
             float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0) return;
    if (p == TH_PRECISION_FP32) {
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a,
                    lda, b, ldb, beta, c, ldc);
        return;
    }
    if (k <= 0) {
        /* oneDNN refuses an empty product; C = beta * C. */
        for (int i = 0; i < m && beta == 0.0f; i++) memset(c + (size_t)i * ldc, 0, (size_t)n * sizeof *c);
        return;
    }
    gemm_bf16(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

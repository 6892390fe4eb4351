/* gemm_bench.c - the GEMMs of Thorax's convolutions, in fp32 and bf16, per
 * library: OpenBLAS sgemm, oneDNN's matmul primitive with bf16 inputs and
 * f32 output, libxsmm's bf16 GEMM; and the cost of converting an im2col
 * block to bf16 (AVX512_BF16 vcvtne2ps2bf16).
 *
 *   gemm_bench [threads] [seconds per case]
 *
 * Shapes: ResNet-18 at 224x224, one image's im2col GEMMs per stage
 * (K = out channels, CKK = C*3*3, P = output pixels of the image):
 *   fwd   y   [K, P]   = w [K, CKK] * col [CKK, P]
 *   dW    dw  [K, CKK] += dy [K, P] * col^T [P, CKK]
 *   dX    dcol [CKK, P] = w^T [CKK, K] * dy [K, P]
 * With `threads` > 1 every OpenMP thread runs its own GEMMs on its own
 * buffers, as the layers do (one image per thread, single-threaded
 * library), and the GFLOP/s are the team's total.
 *
 * A benchmark tool, not a test: it prints, and it lives outside the modules.
 */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#ifdef THORAX_BENCH_XSMM
#include <libxsmm.h>
#endif

typedef struct shape {
    int k, ckk, p;
} shape;

static const shape shapes[] = {{64, 576, 3136}, {128, 1152, 784}, {256, 2304, 196}, {512, 4608, 49}};
enum { OP_FWD, OP_DW, OP_DX, OP_COUNT };
static const char *const op_names[] = {"fwd", "dW", "dX"};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void fill(float *x, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
}

/* n floats to bf16, round to nearest even, 32 at a time with vcvtne2ps2bf16. */
__attribute__((target("avx512f,avx512bf16"))) static void to_bf16(uint16_t *dst, const float *src, size_t n)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
        _mm512_storeu_si512((void *)(dst + i), (__m512i)v);
    }
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, src + i, 4);
        dst[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
}

/* ---- oneDNN ---- */

static dnnl_engine_t eng;

static void check(dnnl_status_t s, const char *what)
{
    if (s != dnnl_success) {
        fprintf(stderr, "oneDNN: %s failed (%d)\n", what, (int)s);
        exit(1);
    }
}

/* A row-major [rows, cols] matrix, transposed when t (stored [cols, rows]). */
static dnnl_memory_desc_t md2(int rows, int cols, int t, dnnl_data_type_t dt)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {rows, cols}, strides = {t ? 1 : cols, t ? rows : 1};
    check(dnnl_memory_desc_init_by_strides(&md, 2, dims, dt, strides), "memory desc");
    return md;
}

typedef struct dnnl_case {
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c, scratch;
    void *scratch_buf;
    const char *impl;
} dnnl_case;

/* C [m, n] (f32) = op(A) [m, k] * op(B) [k, n] (bf16) + beta C. */
static void dnnl_make(dnnl_case *dc, int m, int n, int k, int ta, int tb, float beta, void *a, void *b, float *c)
{
    dnnl_memory_desc_t amd = md2(m, k, ta, dnnl_bf16), bmd = md2(k, n, tb, dnnl_bf16), cmd = md2(m, n, 0, dnnl_f32);
    dnnl_matmul_desc_t desc;
    check(dnnl_matmul_desc_init(&desc, &amd, &bmd, NULL, &cmd), "matmul desc");
    dnnl_primitive_attr_t attr;
    check(dnnl_primitive_attr_create(&attr), "attr");
    check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode");
    if (beta != 0.0f) {
        dnnl_post_ops_t po;
        check(dnnl_post_ops_create(&po), "post ops");
        check(dnnl_post_ops_append_sum(po, beta), "sum");
        check(dnnl_primitive_attr_set_post_ops(attr, po), "set post ops");
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd;
    check(dnnl_primitive_desc_create(&pd, &desc, attr, eng, NULL), "primitive desc");
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    dc->impl = impl;
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t sbytes = dnnl_memory_desc_get_size(smd);
    dc->scratch_buf = sbytes ? aligned_alloc(64, (sbytes + 63) / 64 * 64) : NULL;
    check(dnnl_memory_create(&dc->scratch, smd, eng, dc->scratch_buf), "scratch");
    check(dnnl_primitive_create(&dc->prim, pd), "primitive");
    check(dnnl_memory_create(&dc->a, &amd, eng, a), "mem a");
    check(dnnl_memory_create(&dc->b, &bmd, eng, b), "mem b");
    check(dnnl_memory_create(&dc->c, &cmd, eng, c), "mem c");
    dnnl_primitive_attr_destroy(attr);
}

static void dnnl_run(dnnl_case *dc, dnnl_stream_t st)
{
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, dc->a}, {DNNL_ARG_WEIGHTS, dc->b}, {DNNL_ARG_DST, dc->c},
                              {DNNL_ARG_SCRATCHPAD, dc->scratch}};
    check(dnnl_primitive_execute(dc->prim, st, 4, args), "execute");
    check(dnnl_stream_wait(st), "wait");
}

/* ---- one case ---- */

enum { LIB_OPENBLAS, LIB_DNNL, LIB_XSMM, LIB_CVT, LIB_COUNT };
static const char *const lib_names[] = {"OpenBLAS sgemm fp32", "oneDNN matmul bf16", "libxsmm bsgemm bf16",
                                        "fp32->bf16 of col"};

/* The GEMM's dimensions: C [m, n] = op(A) [m, kk] op(B) [kk, n]. */
static void op_dims(const shape *s, int op, int *m, int *n, int *kk, int *ta, int *tb)
{
    switch (op) {
    case OP_FWD: *m = s->k, *n = s->p, *kk = s->ckk, *ta = 0, *tb = 0; break;
    case OP_DW: *m = s->k, *n = s->ckk, *kk = s->p, *ta = 0, *tb = 1; break;
    default: *m = s->ckk, *n = s->p, *kk = s->k, *ta = 1, *tb = 0; break;
    }
}

/* Seconds per call of one thread's case, run for `secs`. */
static double run_case(const shape *s, int op, int lib, double secs, const char **impl)
{
    int m, n, kk, ta, tb;
    op_dims(s, op, &m, &n, &kk, &ta, &tb);
    const size_t na = (size_t)m * kk, nb = (size_t)kk * n, nc = (size_t)m * n;
    float *a = aligned_alloc(64, na * 4 + 64), *b = aligned_alloc(64, nb * 4 + 64), *c = aligned_alloc(64, nc * 4 + 64);
    uint16_t *a16 = aligned_alloc(64, na * 2 + 64), *b16 = aligned_alloc(64, nb * 2 + 64);
    fill(a, na, 1), fill(b, nb, 2), fill(c, nc, 3);
    to_bf16(a16, a, na), to_bf16(b16, b, nb);
    const float beta = op == OP_DW ? 1.0f : 0.0f, one = 1.0f;
    const int lda = ta ? m : kk, ldb = tb ? kk : n, ldc = n;
    dnnl_case dc = {0};
    dnnl_stream_t st = NULL;
    if (lib == LIB_DNNL) {
        dnnl_make(&dc, m, n, kk, ta, tb, beta, a16, b16, c);
        check(dnnl_stream_create(&st, eng, dnnl_stream_default_flags), "stream");
        *impl = dc.impl;
    }
#ifdef THORAX_BENCH_XSMM
    /* the library's column-major view: C^T [n, m] = op(B)^T op(A)^T */
    const libxsmm_blasint xm = n, xn = m, xk = kk, xlda = ldb, xldb = lda, xldc = ldc;
    const char tA = tb ? 'T' : 'N', tB = ta ? 'T' : 'N';
#endif
    long calls = 0;
    double t0 = now(), t = t0;
    while (t - t0 < secs || calls < 3) {
        switch (lib) {
        case LIB_OPENBLAS:
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, kk, 1.0f,
                        a, lda, b, ldb, beta, c, ldc);
            break;
        case LIB_DNNL: dnnl_run(&dc, st); break;
#ifdef THORAX_BENCH_XSMM
        case LIB_XSMM:
            libxsmm_bsgemm(&tA, &tB, &xm, &xn, &xk, &one, (const libxsmm_bfloat16 *)b16, &xlda,
                           (const libxsmm_bfloat16 *)a16, &xldb, &beta, c, &xldc);
            break;
#endif
        default: to_bf16(b16, b, nb); break; /* the column block, [CKK, P] */
        }
        calls++;
        t = now();
    }
    if (lib == LIB_DNNL) {
        dnnl_stream_destroy(st);
        dnnl_primitive_destroy(dc.prim);
        dnnl_memory_destroy(dc.a), dnnl_memory_destroy(dc.b), dnnl_memory_destroy(dc.c);
        dnnl_memory_destroy(dc.scratch);
        free(dc.scratch_buf);
    }
    free(a), free(b), free(c), free(a16), free(b16);
    return (t - t0) / (double)calls;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    double secs = argc > 2 ? atof(argv[2]) : 0.5;
    if (threads < 1) threads = 1;
    if (!__builtin_cpu_supports("avx512bf16")) {
        fprintf(stderr, "gemm_bench: this CPU has no AVX512_BF16\n");
        return 1;
    }
    openblas_set_num_threads(1);
    omp_set_max_active_levels(1); /* the libraries' own OpenMP regions run on the calling thread */
    check(dnnl_engine_create(&eng, dnnl_cpu, 0), "engine");
#ifdef THORAX_BENCH_XSMM
    libxsmm_init();
#endif
    printf("threads=%d (each its own GEMMs; GFLOP/s are the team's total)\n", threads);
    printf("%-6s %-22s %-22s %10s %10s   %s\n", "op", "shape MxNxK", "library", "ms/call", "GFLOP/s", "note");
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        for (int op = 0; op < OP_COUNT; op++) {
            for (int lib = 0; lib < LIB_COUNT; lib++) {
                /* libxsmm 1.17's bsgemm on these sizes: 1-2 GFLOP/s without
                 * transposes (a generic loop above its small-matrix limit),
                 * and a crash with them; its fwd row says enough. */
                if ((lib == LIB_CVT || lib == LIB_XSMM) && op != OP_FWD) continue;
#ifndef THORAX_BENCH_XSMM
                if (lib == LIB_XSMM) continue;
#endif
                double per_thread[64] = {0};
                const char *impl = "";
#pragma omp parallel num_threads(threads)
                {
                    const char *my_impl = "";
                    double t = run_case(&shapes[si], op, lib, secs, &my_impl);
                    per_thread[omp_get_thread_num() % 64] = t;
                    if (omp_get_thread_num() == 0) impl = my_impl;
                }
                double sec = 0;
                for (int t = 0; t < threads && t < 64; t++) sec = per_thread[t] > sec ? per_thread[t] : sec;
                int m, n, kk, ta, tb;
                op_dims(&shapes[si], op, &m, &n, &kk, &ta, &tb);
                char dims[64];
                snprintf(dims, sizeof dims, "%dx%dx%d", m, n, kk);
                if (lib == LIB_CVT) {
                    double gb = (double)kk * n * 6 * threads / sec / 1e9;
                    printf("%-6s %-22s %-22s %10.3f %10s   %.1f GB/s moved\n", op_names[op], dims, lib_names[lib],
                           sec * 1e3, "-", gb);
                } else {
                    double gf = 2.0 * m * n * kk * threads / sec / 1e9;
                    printf("%-6s %-22s %-22s %10.3f %10.1f   %s\n", op_names[op], dims, lib_names[lib], sec * 1e3, gf,
                           impl ? impl : "");
                }
                fflush(stdout);
            }
        }
    }
#ifdef THORAX_BENCH_XSMM
    libxsmm_finalize();
#endif
    dnnl_engine_destroy(eng);
    return 0;
}

/* simd.h - one loop body, built for the vector units of the CPU at hand
 * (private to src/nn).
 *
 * Debian builds for baseline x86-64 (SSE2, no FMA), but a cluster node has
 * AVX2 or AVX-512 with FMA, and a compute-bound loop runs 4-8x faster with
 * them. TH_SIMD_DISPATCH(name, (params), (args)) defines `static void
 * name(params)` that calls `name_body(args)` compiled for AVX-512 + FMA, for
 * AVX2 + FMA or for the baseline, whichever the CPU's feature bits allow (a
 * cached lookup, cheap enough per call). name_body must be static inline
 * always_inline so that each variant gets its own copy.
 *
 * The bodies use v16, GCC's vector extension for 16 floats: one AVX-512
 * register, two AVX2 ones or four SSE ones, so one body serves all three.
 */
#ifndef THORAX_NN_SIMD_H
#define THORAX_NN_SIMD_H

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));  /* for unaligned loads and stores */
typedef int v16i __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));  /* one AVX2 register, two SSE ones */
typedef int v8i __attribute__((vector_size(32)));

/* The first (LO) or last (HI) four elements of a and of b, interleaved:
 * a0 b0 a1 b1 ...; and the even (EVENS) or odd (ODDS) elements of a then b,
 * a0 a2 a4 a6 b0 b2 b4 b6 (GCC and clang spell vector shuffles
 * differently). */
#if defined(__clang__)
#define TH_INTERLEAVE8_LO(a, b) __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11)
#define TH_INTERLEAVE8_HI(a, b) __builtin_shufflevector(a, b, 4, 12, 5, 13, 6, 14, 7, 15)
#define TH_EVENS8(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14)
#define TH_ODDS8(a, b) __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15)
#else
#define TH_INTERLEAVE8_LO(a, b) __builtin_shuffle(a, b, (v8i){0, 8, 1, 9, 2, 10, 3, 11})
#define TH_INTERLEAVE8_HI(a, b) __builtin_shuffle(a, b, (v8i){4, 12, 5, 13, 6, 14, 7, 15})
#define TH_EVENS8(a, b) __builtin_shuffle(a, b, (v8i){0, 2, 4, 6, 8, 10, 12, 14})
#define TH_ODDS8(a, b) __builtin_shuffle(a, b, (v8i){1, 3, 5, 7, 9, 11, 13, 15})
#endif

#define TH_INLINE static inline __attribute__((always_inline))

#if defined(__x86_64__) && defined(__GNUC__)
#define TH_SIMD_DISPATCH(name, params, args)                                      \
    __attribute__((target("avx512f,fma"))) static void name##_avx512 params     \
    {                                                                             \
        name##_body args;                                                         \
    }                                                                             \
    __attribute__((target("avx2,fma"))) static void name##_avx2 params           \
    {                                                                             \
        name##_body args;                                                         \
    }                                                                             \
    static void name params                                                       \
    {                                                                             \
        if (__builtin_cpu_supports("fma") && __builtin_cpu_supports("avx512f"))  \
            name##_avx512 args;                                                   \
        else if (__builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2")) \
            name##_avx2 args;                                                     \
        else                                                                      \
            name##_body args;                                                     \
    }
#else
#define TH_SIMD_DISPATCH(name, params, args) \
    static void name params                  \
    {                                        \
        name##_body args;                    \
    }
#endif

#endif

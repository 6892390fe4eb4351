/* rng.c - xoshiro256** seeded through splitmix64 (see thorax/util.h). */
#include "thorax/util.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void th_rng_seed(th_rng *r, uint64_t seed, uint64_t stream)
{
    /* Mix the stream in through its own splitmix round so (seed, stream) and
     * (seed + 1, stream - 1) do not collide. */
    uint64_t x = seed;
    uint64_t y = stream ^ 0x5851f42d4c957f2dULL;
    uint64_t mix = splitmix64(&x) ^ splitmix64(&y);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&mix);
}

uint64_t th_rng_u64(th_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double th_rng_uniform(th_rng *r) { return (double)(th_rng_u64(r) >> 11) * 0x1.0p-53; }

double th_rng_range(th_rng *r, double lo, double hi) { return lo + (hi - lo) * th_rng_uniform(r); }

double th_rng_normal(th_rng *r)
{
    double u1 = th_rng_uniform(r), u2 = th_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint32_t th_rng_below(th_rng *r, uint32_t n)
{
    /* Lemire's multiply-and-reject: unbiased without a division per draw. */
    uint64_t m = (uint64_t)(uint32_t)(th_rng_u64(r) >> 32) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)(uint32_t)(th_rng_u64(r) >> 32) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

void th_rng_shuffle(th_rng *r, int *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)th_rng_below(r, (uint32_t)i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

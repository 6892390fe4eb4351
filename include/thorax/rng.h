/* rng.h - the one random number generator of Thorax (xoshiro256**).
 *
 * Every source of randomness (initialisation, shuffles, dropout, phantom
 * anatomy) owns an explicit th_rng seeded from the run's seed and a stream
 * number, so results depend only on (seed, stream), never on call order
 * elsewhere, and the state can be checkpointed as four words.
 */
#ifndef THORAX_RNG_H
#define THORAX_RNG_H

#include <stdint.h>

typedef struct th_rng {
    uint64_t s[4];
} th_rng;

/* Seeds from (seed, stream) through splitmix64, so nearby seeds and streams
 * give unrelated sequences. */
void th_rng_seed(th_rng *r, uint64_t seed, uint64_t stream);
uint64_t th_rng_u64(th_rng *r);
/* Uniform in [0, 1). */
double th_rng_uniform(th_rng *r);
/* Uniform in [lo, hi). */
double th_rng_range(th_rng *r, double lo, double hi);
/* Standard normal (Box-Muller, no cached second value: the state alone
 * determines the sequence). */
double th_rng_normal(th_rng *r);
/* Uniform integer in [0, n), without modulo bias. n > 0. */
uint32_t th_rng_below(th_rng *r, uint32_t n);
/* Fisher-Yates shuffle of a[0..n). */
void th_rng_shuffle(th_rng *r, int *a, int n);

#endif

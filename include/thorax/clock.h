/* clock.h - wall-clock seconds for timing and progress.
 *
 * One clock for the whole library (step times, images/s, ETA, benchmarks):
 * monotonic, so a clock adjustment during a long run never gives a negative
 * step time, and independent of MPI, so modules that do no communication
 * can time themselves.
 */
#ifndef THORAX_CLOCK_H
#define THORAX_CLOCK_H

/* Seconds since an arbitrary fixed point (CLOCK_MONOTONIC). */
double th_now(void);

#endif

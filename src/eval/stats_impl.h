/* stats_impl.h - what the bootstrap (bootstrap.c) and the paired comparison
 * (compare.c) share (internal to src/eval): cases ranked by score with their
 * indices kept, which th_scores_rank drops.
 */
#ifndef THORAX_STATS_IMPL_H
#define THORAX_STATS_IMPL_H

#include "thorax/util.h"

/* order[n] receives the case indices 0..n-1 sorted by decreasing
 * score[i * stride] (ties by index, so the order is reproducible). Returns -1
 * naming the case for a NaN score. */
int stats_rank_desc(int n, const float *score, int stride, int *order, th_err *err);

#endif

/* eval_impl.h - what files of src/eval share (internal to src/eval): cases
 * ranked by score with their indices kept, which th_scores_rank drops (the
 * bootstrap, the paired comparison and the calibration bins), the name of
 * an external file's evaluation directory (thorax eval --data and thorax
 * compare --data), and columns of predictions.csv by name.
 */
#ifndef THORAX_EVAL_IMPL_H
#define THORAX_EVAL_IMPL_H

#include "thorax/util.h"
#include "thorax/data.h"

/* order[n] receives the case indices 0..n-1 sorted by decreasing (or, with
 * descending 0, increasing) score[i * stride], ties by increasing index
 * either way, so the order is reproducible. Returns -1 naming the case for a
 * NaN score. */
int stats_rank(int n, const float *score, int stride, int descending, int *order, th_err *err);

/* The directory under eval/ of an external dataset file (thorax eval
 * --data, thorax compare --data): "data-<stem>-<hash>", the stem being its
 * base name without ".h5" made safe as a file name (th_safe_name) and the
 * hash the first 8 hex digits of the SHA-256 of its absolute path (as
 * given when it cannot be resolved). The prefix keeps it from ever being a
 * split's directory (val, test), the safe stem keeps it inside eval/, and
 * the hash keeps two files of one name (a/test.h5, b/test.h5) apart. */
int eval_data_dir_name(const char *path, char *out, size_t cap, th_err *err);

/* The index of the header field named name, or -1 (predictions.csv of
 * thorax cam's top-k and of thorax compare). */
int csv_column(const th_csv *csv, const char *name);

#endif

/* util.h - what every module stands on: errors, files, clocks, random numbers.
 *
 *   th_err err;
 *   if (th_write_file_atomic("run/config.yaml", text, len, &err))   // temp + fsync + rename
 *       return th_err_prefix(&err, "writing the run: ");            // the caller adds context
 *   th_rng r;
 *   th_rng_seed(&r, seed, stream);                                  // deterministic streams
 *
 * Library functions that can fail return 0 on success and -1 on failure
 * with one sentence in a caller-owned th_err naming the culprit; only
 * src/cli prints and exits. Needs libc alone.
 */
#ifndef THORAX_UTIL_H
#define THORAX_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------- */
/* How library code reports failure.
 *
 * Library functions that can fail return 0 on success and -1 on failure, and
 * fill a caller-owned th_err with one human sentence that names the culprit:
 * the file, the YAML key and line, the image, the parameter. Only src/cli
 * prints and exits; nothing in libthorax writes to stderr, with one
 * exception: TH_ASSERT.
 *
 * TH_ASSERT(cond) is for programmer errors, never for input: a violated
 * precondition that only a bug in the caller can cause (a batch larger than
 * the model was sized for, a layer index out of range). It prints
 * "file:line: assertion failed: cond" to stderr and aborts, in every build
 * (it does not follow NDEBUG), so a bug stops where it is instead of
 * writing past a buffer. Keep the condition cheap. Anything a user's
 * config, data or command line can cause is a th_err error instead.
 */
typedef struct th_err {
    char msg[1024];
} th_err;

/* Formats the message into err (if err is not NULL) and returns -1, so that
 * failing paths read `return th_errf(err, "...", ...);`. */
int th_errf(th_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends context ("reading data/x.h5: ") to a message already set by a
 * callee, so that errors carry their whole path. Returns -1. */
int th_err_prefix(th_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What a failed TH_ASSERT calls. */
_Noreturn void th_assert_fail(const char *file, int line, const char *cond);

#define TH_ASSERT(cond) ((cond) ? (void)0 : th_assert_fail(__FILE__, __LINE__, #cond))

/* ------------------------------------------------------------------------- */
/* Small file-system helpers: directories and atomic writes.
 *
 * Every result file of Thorax is written to `<path>.tmp` and renamed into
 * place, so a killed job never leaves a half-written file behind.
 */
/* mkdir -p. */
int th_mkdirs(const char *path, th_err *err);

/* The temporary name every writer of path builds it under before the
 * rename: "<path>.<pid>.tmp". The pid keeps two processes writing the same
 * file (two jobs on one run directory) from writing into one temporary
 * file; the .tmp suffix lets a test find any left behind. Fails, naming
 * path, if it does not fit in cap. */
int th_tmp_path(const char *path, char *out, size_t cap, th_err *err);

/* Writes len bytes to path atomically (th_tmp_path, fsync, rename). */
int th_write_file_atomic(const char *path, const void *data, size_t len, th_err *err);

/* A set of results written together (an evaluation's files, a CAM run's
 * maps and overlays) goes through a staging directory: written there, and
 * moved into place only once every file is written, so a failure midway
 * leaves no partial set that looks complete, and the previous set whole.
 *
 *   char stage[4096];
 *   th_stage_path(dir, stage, sizeof stage, err);  // dir/../.<name of dir>.tmp
 *   th_stage_begin(stage, err);                    // fresh: a killed run's is removed
 *   ... write the files into stage ...
 *   ok ? th_stage_commit(stage, dir, err) : th_stage_discard(stage);
 *
 * The name starts with a dot, so listings (th_dir_each) skip a stage that
 * a killed job left. th_stage_path takes an optional suffix (a label) so
 * that runs writing different sets into one dir do not share a stage. */
int th_stage_path(const char *dir, const char *suffix, char *stage, size_t cap, th_err *err);
int th_stage_begin(const char *stage, th_err *err);
/* Moves every entry of stage into dir (created if missing), replacing files
 * of the same name and merging subdirectories, then removes stage. Only
 * renames: a crash can cut it short between two files, not within one. */
int th_stage_commit(const char *stage, const char *dir, th_err *err);
/* Removes stage and everything in it (links are removed, never followed). */
void th_stage_discard(const char *stage);

/* The output guard every command's writer goes through before it does any
 * work. Refuses, with an error naming both, to write out when it or its
 * temporary name is one of the n files inputs[]: the same file by device
 * and inode, however spelt (./x, a link). An output that does not exist yet
 * is no input; so is an input that cannot be stat'ed (reading it reports
 * that). */
int th_output_not_input(const char *out, int n, const char *const *inputs, th_err *err);

/* dir/name into out, for a name that comes from data or a config (a run
 * name, a label, an image's stem): refused, naming what and name, when name
 * is empty, ".", "..", or holds a '/', so that the path never escapes dir.
 * what says where the name came from ("the run name"). */
int th_child_path(char *out, size_t cap, const char *dir, const char *name, const char *what, th_err *err);

/* A directory's lock: an exclusive flock on dir/.lock (created, holding
 * "pid host"), so that two processes never write one run directory at once.
 * Held until th_dir_unlock or the process ends (a killed job frees it).
 * When another process holds it, fails naming the holder's pid and host; on a
 * file system without locks it succeeds with unsupported set. */
typedef struct th_dir_lock {
    int fd;             /* -1: not held */
    int unsupported;    /* dir's file system has no flock: taken, but it protects nothing */
} th_dir_lock;
int th_dir_lock_take(th_dir_lock *l, const char *dir, th_err *err);
void th_dir_unlock(th_dir_lock *l);

/* Reads a whole file into a malloc'd, NUL-terminated buffer. */
char *th_read_file(const char *path, size_t *len, th_err *err);

/* Calls fn(ctx, path, name, st, err) for each entry of dir except the
 * hidden ones (a name starting with '.': ".", "..", .DS_Store, .git), in
 * readdir order, path being dir/name and st its stat (links followed).
 * Stops at the first non-zero return of fn and returns it; returns -1 with
 * err naming the culprit when dir cannot be opened, a path does not fit or
 * an entry cannot be read. */
struct stat;
typedef int (*th_dir_fn)(void *ctx, const char *path, const char *name, const struct stat *st, th_err *err);
int th_dir_each(const char *dir, th_dir_fn fn, void *ctx, th_err *err);

/* A name (a label, a CSV column) as a file-name or column-name part: every
 * byte outside [A-Za-z0-9_.-] becomes '_' ("Pleural Thickening" ->
 * "Pleural_Thickening"), and "" becomes "_". Returns 0, or -1 if it does not
 * fit in cap. */
int th_safe_name(const char *s, char *out, size_t cap);

/* th_safe_name of each of s[n] into out[n], made distinct: one that
 * collides with an earlier one gets "_<k>" appended until free. Fails,
 * naming the index, if one does not fit. */
#define TH_SAFE_NAME_MAX 256
int th_safe_names(int n, const char *const *s, char (*out)[TH_SAFE_NAME_MAX], th_err *err);

/* SHA-256 (FIPS 180-4), streamed:
 *   th_sha256 s; th_sha256_init(&s); th_sha256_update(&s, p, n) ...; th_sha256_final(&s, hex);
 * hex receives 64 lowercase hex digits and a NUL. */
typedef struct th_sha256 {
    uint32_t h[8];
    uint64_t bytes;
    uint8_t buf[64];
    size_t fill;
} th_sha256;
void th_sha256_init(th_sha256 *s);
void th_sha256_update(th_sha256 *s, const void *data, size_t len);
void th_sha256_final(th_sha256 *s, char hex[65]);

/* The build's version: `git describe --always --dirty` of the source tree
 * when CMake configured it, "unknown" when it was not a git checkout. */
const char *th_version(void);

/* A growable text buffer for building CSV and YAML output. */
typedef struct th_strbuf {
    char *data;
    size_t len, cap;
    int failed;     /* an allocation failed; data holds what fit */
} th_strbuf;

void th_strbuf_printf(th_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void th_strbuf_free(th_strbuf *b);

/* JSON text into b. A number as the shortest decimal that reads back to v
 * (as a float when as_float), null for NaN and infinities; a string quoted
 * and escaped, invalid UTF-8 replaced by U+FFFD. */
void th_json_number(th_strbuf *b, double v, int as_float);
/* The shortest %g rendering of v that parses back to v (to the float nearest
 * v when as_float), for JSON and CSV; non-finite values are the caller's. */
void th_shortest_g(double v, int as_float, char *out, size_t cap);
void th_json_string(th_strbuf *b, const char *s);

/* s as one CSV field after prefix (RFC 4180): quoted, with '"' doubled,
 * when s holds a comma, quote, CR or LF. The one CSV quoting of
 * every file Thorax writes (split.csv, predictions.csv, reports). */
void th_csv_field(th_strbuf *b, const char *prefix, const char *s);

/* ------------------------------------------------------------------------- */
/* Wall-clock seconds for timing and progress.
 *
 * One clock for the whole library (step times, images/s, ETA, benchmarks):
 * monotonic, so a clock adjustment during a long run never gives a negative
 * step time, and independent of MPI, so modules that do no communication
 * can time themselves.
 */
/* Seconds since an arbitrary fixed point (CLOCK_MONOTONIC). */
double th_now(void);

/* ------------------------------------------------------------------------- */
/* The one random number generator of Thorax (xoshiro256**).
 *
 * Every source of randomness (initialisation, shuffles, dropout, phantom
 * anatomy) owns an explicit th_rng seeded from the run's seed and a stream
 * number, so results depend only on (seed, stream), never on call order
 * elsewhere, and the state can be checkpointed as four words.
 */
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

/* ------------------------------------------------------------------------- */
/* The library's large aligned allocations and its one
 * out-of-memory hook.
 *
 * th_alloc_aligned is what the model's activation arena and the kernels'
 * workspace allocate with: zeroed memory on a 64-byte boundary (a cache line
 * and a full AVX-512 register), so the SIMD kernels can rely on aligned rows.
 * When an allocation fails it tells the out-of-memory handler, as Redis'
 * zmalloc does, and returns NULL; the caller then reports the failure
 * through th_err as usual. The default handler does nothing: the library
 * never aborts on a failed allocation. A host program may set its own, to
 * log the request or to drop caches before it retries. */
#define TH_ALIGN 64

/* Told of every failed th_alloc_aligned: the bytes asked for and what they
 * were for ("model activations"). It may not allocate through
 * th_alloc_aligned itself. */
typedef void (*th_oom_handler)(size_t bytes, const char *what);

/* Sets the handler; NULL restores the default, which does nothing. The one
 * piece of global state of the library: set it once, before any thread
 * allocates. */
void th_set_oom_handler(th_oom_handler fn);

/* `bytes` zeroed bytes starting on a TH_ALIGN boundary, or NULL after
 * telling the handler. bytes == 0 gives a valid, empty block. Free with
 * th_free_aligned. */
void *th_alloc_aligned(size_t bytes, const char *what);
void th_free_aligned(void *p);

/* n rounded up to a multiple of TH_ALIGN (n <= SIZE_MAX - TH_ALIGN). */
static inline size_t th_align_up(size_t n)
{
    return (n + TH_ALIGN - 1) / TH_ALIGN * TH_ALIGN;
}

/* A label value that is neither 0 nor 1: the label is not known for that image
 * (a blank or uncertain CSV cell, see `thorax ingest --uncertain`). In /labels
 * of a dataset file and in every uint8 label array [N, L] passed to the
 * losses and metrics; those use only the known entries. */
#define TH_LABEL_UNKNOWN 255

#endif

/* error.h - how library code reports failure.
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
#ifndef THORAX_ERROR_H
#define THORAX_ERROR_H

#include <stddef.h>

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

#endif

/* error.h - how library code reports failure.
 *
 * Library functions that can fail return 0 on success and -1 on failure, and
 * fill a caller-owned th_err with one human sentence that names the culprit:
 * the file, the YAML key and line, the image, the parameter. Only src/cli
 * prints and exits; nothing in libthorax writes to stderr.
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

#endif

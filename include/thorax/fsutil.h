/* fsutil.h - small file-system helpers: directories and atomic writes.
 *
 * Every result file of Thorax is written to `<path>.tmp` and renamed into
 * place, so a killed job never leaves a half-written file behind.
 */
#ifndef THORAX_FSUTIL_H
#define THORAX_FSUTIL_H

#include <stddef.h>
#include "thorax/error.h"

/* mkdir -p. */
int th_mkdirs(const char *path, th_err *err);

/* Writes len bytes to path atomically (temp file, fsync, rename). */
int th_write_file_atomic(const char *path, const void *data, size_t len, th_err *err);

/* Reads a whole file into a malloc'd, NUL-terminated buffer. */
char *th_read_file(const char *path, size_t *len, th_err *err);

/* A growable text buffer for building CSV and YAML output. */
typedef struct th_strbuf {
    char *data;
    size_t len, cap;
    int failed;     /* an allocation failed; data holds what fit */
} th_strbuf;

void th_strbuf_printf(th_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void th_strbuf_free(th_strbuf *b);

#endif

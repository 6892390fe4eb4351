/* error.c - formatting of library error messages, and TH_ASSERT (see
 * thorax/util.h). */
#include "thorax/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int th_errf(th_err *err, const char *fmt, ...)
{
    if (!err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int th_err_prefix(th_err *err, const char *fmt, ...)
{
    if (!err) return -1;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Shift the old message right and put the prefix in front, cutting the
     * end of the old message if the two do not fit. */
    size_t plen = strlen(prefix), cap = sizeof err->msg - 1;
    if (plen > cap) plen = cap;
    size_t keep = strnlen(err->msg, cap);
    if (plen + keep > cap) keep = cap - plen;
    memmove(err->msg + plen, err->msg, keep);
    memcpy(err->msg, prefix, plen);
    err->msg[plen + keep] = '\0';
    return -1;
}

/* The library's one write to stderr (thorax/util.h): a bug was caught. */
void th_assert_fail(const char *file, int line, const char *cond)
{
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, cond);
    fflush(stderr);
    abort();
}

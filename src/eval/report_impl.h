/* report_impl.h - the text writers of report.c that the other result files
 * of src/eval (compare.json, thorax predict's CSV and JSON) share (internal to src/eval).
 */
#ifndef THORAX_REPORT_IMPL_H
#define THORAX_REPORT_IMPL_H

#include <stddef.h>
#include "thorax/util.h"

/* The shortest decimal that reads back to v (as a float when as_float);
 * null for NaN and infinities. */
void json_number(th_strbuf *b, double v, int as_float);
/* [lo, hi], or null when either end is not finite. */
void json_interval(th_strbuf *b, double lo, double hi);
/* th_json_string (thorax/util.h), under the name the writers here use. */
void json_string(th_strbuf *b, const char *s);
/* A CSV field (RFC 4180): quoted, with quotes doubled, when it holds a
 * separator, a quote or a line break; prefix is prepended inside the field. */
void csv_field(th_strbuf *b, const char *prefix, const char *s);
/* Writes b's text to path atomically and frees b. */
int write_buffer(const char *path, th_strbuf *b, th_err *err);
/* Formats a path into out, failing rather than truncating. */
int make_path(char *out, size_t cap, th_err *err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif

/* report_impl.h - the text writers of report.c that the other result files
 * of src/eval (compare.json, thorax predict's CSV and JSON) share (internal to src/eval).
 */
#ifndef THORAX_REPORT_IMPL_H
#define THORAX_REPORT_IMPL_H

#include <stddef.h>
#include "thorax/util.h"

/* The JSON writers of thorax/util.h under their short names here. */
static inline void json_number(th_strbuf *b, double v, int as_float) { th_json_number(b, v, as_float); }
static inline void json_string(th_strbuf *b, const char *s) { th_json_string(b, s); }
/* [lo, hi], or null when either end is not finite. */
void json_interval(th_strbuf *b, double lo, double hi);
/* Writes b's text to path atomically and frees b. */
int write_buffer(const char *path, th_strbuf *b, th_err *err);
/* Formats a path into out, failing rather than truncating. */
int make_path(char *out, size_t cap, th_err *err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif

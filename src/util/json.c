/* json.c - JSON text: numbers and strings, for the result files of src/eval
 * and the JSON log lines of the CLI (one writer, so every JSON thorax writes
 * escapes alike). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "thorax/util.h"

void th_shortest_g(double v, int as_float, char *out, size_t cap)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        double back = strtod(out, NULL);
        if (as_float ? (float)back == (float)v : back == v) return;
    }
}

/* A JSON number, or null where JSON has none (NaN, infinities). */
void th_json_number(th_strbuf *b, double v, int as_float)
{
    if (!isfinite(v)) {
        th_strbuf_printf(b, "null");
        return;
    }
    char num[40];
    th_shortest_g(v, as_float, num, sizeof num);
    th_strbuf_printf(b, "%s", num);
}

/* Length of the valid UTF-8 sequence at s, or 0 if the bytes there are not
 * one (then the writer substitutes U+FFFD, keeping the JSON valid). */
static int utf8_len(const unsigned char *s)
{
    int n = s[0] < 0x80 ? 1 : (s[0] >> 5) == 0x6 ? 2 : (s[0] >> 4) == 0xe ? 3 : (s[0] >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || (n == 2 && s[0] < 0xc2)) return 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return n;
}

void th_json_string(th_strbuf *b, const char *s)
{
    th_strbuf_printf(b, "\"");
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        unsigned char c = *u;
        if (c == '"' || c == '\\') {
            th_strbuf_printf(b, "\\%c", c);
            u++;
        } else if (c < 0x20) {
            /* Control characters have no literal form in JSON strings. */
            if (c == '\n')
                th_strbuf_printf(b, "\\n");
            else if (c == '\t')
                th_strbuf_printf(b, "\\t");
            else
                th_strbuf_printf(b, "\\u%04x", c);
            u++;
        } else {
            int n = utf8_len(u);
            if (n == 0) {
                th_strbuf_printf(b, "\\ufffd");
                u++;
            } else {
                th_strbuf_printf(b, "%.*s", n, (const char *)u);
                u += n;
            }
        }
    }
    th_strbuf_printf(b, "\"");
}

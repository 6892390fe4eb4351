/* csv.c - an RFC 4180 CSV reader with a header row (see thorax/data.h).
 *
 * The file is read whole and parsed in place: a field's unquoted text is
 * never longer than its source (quotes and "" escapes only shrink), and the
 * separator after it leaves room for the terminating NUL, so the text buffer
 * can hold every field without a second copy. Rows remember where their
 * fields start as offsets while the offset array grows; pointers are made
 * only at the end, when nothing moves any more.
 */
#include "thorax/data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "thorax/util.h"

typedef struct {
    int line, n_fields;
    size_t first;       /* index of its first field in parser.offs */
} row_span;

typedef struct {
    const char *path;
    char *text;
    size_t len, pos, out;   /* text[pos] is read next; text[out] is written next (out <= pos) */
    int line;
    size_t *offs;           /* start of every field in text */
    size_t n_offs, cap_offs;
    row_span *rows;         /* every row, the header first */
    size_t n_rows, cap_rows;
    th_err *err;
} parser;

static int grow(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need) n *= 2;
    void *bigger = realloc(*buf, n * elem);
    if (!bigger) return -1;
    *buf = bigger;
    *cap = n;
    return 0;
}

static int out_of_memory(parser *p) { return th_errf(p->err, "%s:%d: out of memory", p->path, p->line); }

/* Parses one field starting at p->pos; leaves p->pos on the separator, line
 * end or end of text after it, and p->out after the field's text. */
static int parse_field(parser *p, int col)
{
    size_t start = p->out;
    int quoted = p->pos < p->len && p->text[p->pos] == '"';
    int quote_line = p->line;
    if (quoted) p->pos++;
    for (;;) {
        if (p->pos >= p->len) {
            if (quoted)
                return th_errf(p->err, "%s:%d: the quoted field %d is never closed", p->path, quote_line, col + 1);
            return 0;
        }
        char c = p->text[p->pos];
        if (c == '\0') return th_errf(p->err, "%s:%d: NUL byte (is this a text file?)", p->path, p->line);
        if (quoted && c == '"') {
            if (p->pos + 1 < p->len && p->text[p->pos + 1] == '"') {
                p->pos++;   /* "" is one quote */
            } else {
                p->pos++;
                if (p->pos < p->len && !strchr(",\r\n", p->text[p->pos]))
                    return th_errf(p->err, "%s:%d: text after the closing quote of field %d", p->path, p->line,
                                   col + 1);
                return 0;
            }
        } else if (!quoted && (c == ',' || c == '\r' || c == '\n')) {
            return 0;
        } else if (c == '\n') {
            p->line++;      /* a line break inside quotes */
        }
        if (p->out - start >= TH_CSV_MAX_FIELD)
            return th_errf(p->err, "%s:%d: field %d is longer than %d bytes", p->path, p->line, col + 1,
                           TH_CSV_MAX_FIELD);
        p->text[p->out++] = p->text[p->pos++];
    }
}

/* Parses the row starting at p->pos (not an empty line) and consumes its line end. */
static int parse_row(parser *p)
{
    row_span r = {p->line, 0, p->n_offs};
    for (;;) {
        if (r.n_fields == TH_CSV_MAX_COLS)
            return th_errf(p->err, "%s:%d: more than %d fields", p->path, r.line, TH_CSV_MAX_COLS);
        if (grow((void **)&p->offs, &p->cap_offs, p->n_offs + 1, sizeof *p->offs)) return out_of_memory(p);
        p->offs[p->n_offs++] = p->out;
        if (parse_field(p, r.n_fields)) return -1;
        r.n_fields++;
        /* Look at the separator before the NUL goes in: out may equal pos. */
        char sep = p->pos < p->len ? p->text[p->pos] : '\0';
        p->text[p->out++] = '\0';
        if (!sep) break;
        p->pos++;
        if (sep == ',') continue;
        if (sep == '\r' && p->pos < p->len && p->text[p->pos] == '\n') p->pos++;
        p->line++;
        break;
    }
    if (p->n_rows > TH_CSV_MAX_ROWS)
        return th_errf(p->err, "%s:%d: more than %d rows", p->path, r.line, TH_CSV_MAX_ROWS);
    if (grow((void **)&p->rows, &p->cap_rows, p->n_rows + 1, sizeof *p->rows)) return out_of_memory(p);
    p->rows[p->n_rows++] = r;
    return 0;
}

/* Turns the row spans into th_csv rows with field pointers. */
static int finish(parser *p, th_csv *csv)
{
    csv->fields = malloc((p->n_offs ? p->n_offs : 1) * sizeof *csv->fields);
    csv->rows = malloc((p->n_rows ? p->n_rows : 1) * sizeof *csv->rows);
    if (!csv->fields || !csv->rows) return th_errf(p->err, "%s: out of memory", p->path);
    for (size_t i = 0; i < p->n_offs; i++) csv->fields[i] = p->text + p->offs[i];
    for (size_t i = 0; i < p->n_rows; i++) {
        th_csv_row *row = i == 0 ? &csv->header : &csv->rows[i - 1];
        row->line = p->rows[i].line;
        row->n_fields = p->rows[i].n_fields;
        row->fields = csv->fields + p->rows[i].first;
    }
    csv->n_rows = (int)p->n_rows - 1;
    return 0;
}

static int too_big(const char *path, th_err *err)
{
    return th_errf(err, "%s: larger than %ld bytes, the limit of a CSV file", path, (long)TH_CSV_MAX_BYTES);
}

int th_csv_parse(th_csv *csv, const char *path, char *text, size_t len, th_err *err)
{
    memset(csv, 0, sizeof *csv);
    snprintf(csv->path, sizeof csv->path, "%s", path);
    csv->text = text;
    if (len > (size_t)TH_CSV_MAX_BYTES) {
        th_csv_free(csv);
        return too_big(path, err);
    }
    parser p = {.path = path, .text = text, .len = len, .line = 1, .err = err};
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) p.pos = p.out = 3;
    int rc = 0;
    while (rc == 0 && p.pos < p.len) {
        char c = text[p.pos];
        if (c == '\n' || c == '\r') {
            p.pos += c == '\r' && p.pos + 1 < p.len && text[p.pos + 1] == '\n' ? 2 : 1;
            p.line++;
            continue;
        }
        rc = parse_row(&p);
    }
    if (rc == 0 && p.n_rows == 0) rc = th_errf(err, "%s: no header row (the file is empty)", path);
    if (rc == 0) rc = finish(&p, csv);
    free(p.offs);
    free(p.rows);
    if (rc) th_csv_free(csv);
    return rc;
}

int th_csv_read(th_csv *csv, const char *path, th_err *err)
{
    memset(csv, 0, sizeof *csv);
    struct stat st;
    if (stat(path, &st)) return th_errf(err, "cannot open %s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return th_errf(err, "%s is a directory, not a CSV file", path);
    /* Before reading: a wrong multi-gigabyte file is refused at once. */
    if (st.st_size > TH_CSV_MAX_BYTES) return too_big(path, err);
    size_t len;
    char *text = th_read_file(path, &len, err);
    if (!text) return -1;
    return th_csv_parse(csv, path, text, len, err);
}

void th_csv_free(th_csv *csv)
{
    free(csv->text);
    free(csv->fields);
    free(csv->rows);
    memset(csv, 0, sizeof *csv);
}

/* csv.h - reading a CSV file with a header row (RFC 4180).
 *
 * Label files come from spreadsheets, pandas and hand edits, so the reader
 * takes what those write: fields in double quotes with "" for a quote, commas
 * and line breaks inside quotes, CRLF or LF line ends, a UTF-8 byte-order
 * mark. It keeps every row as it is: a row with too few or too many fields is
 * returned with its own count, because what to do with it is the caller's
 * business (ingest can skip it and say so).
 *
 * Limits, each an error naming file:line rather than a silent cut or an
 * overflow: TH_CSV_MAX_BYTES per file, TH_CSV_MAX_FIELD bytes per field,
 * TH_CSV_MAX_COLS fields per row, TH_CSV_MAX_ROWS rows. A quote that is never
 * closed, text after a closing quote, and a NUL byte are errors too. A quote
 * inside an unquoted field is kept as text, as Python's csv module does.
 * Empty lines are skipped.
 */
#ifndef THORAX_CSV_H
#define THORAX_CSV_H

#include "thorax/error.h"

#define TH_CSV_MAX_BYTES (1L << 30)
#define TH_CSV_MAX_FIELD 4096
#define TH_CSV_MAX_COLS 1024
#define TH_CSV_MAX_ROWS 10000000

typedef struct th_csv_row {
    int line;           /* 1-based line of the file where the row starts */
    int n_fields;
    char **fields;      /* [n_fields], NUL-terminated, quotes removed */
} th_csv_row;

typedef struct th_csv {
    char path[1024];
    th_csv_row header;  /* the first non-empty row */
    th_csv_row *rows;   /* the data rows after it */
    int n_rows;
    char *text;         /* storage of every field */
    char **fields;      /* storage of every row's field pointers */
} th_csv;

/* Reads and parses the whole file. A file without a header row is an error.
 * On failure csv is left empty (th_csv_free is still safe). */
int th_csv_read(th_csv *csv, const char *path, th_err *err);

/* Parses text[0..len) as if read from path (which only names it in errors).
 * Takes ownership of text, a malloc'd buffer of len + 1 bytes, even on failure. */
int th_csv_parse(th_csv *csv, const char *path, char *text, size_t len, th_err *err);

void th_csv_free(th_csv *csv);

#endif

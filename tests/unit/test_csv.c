/* test_csv.c - the CSV reader (thorax/data.h).
 *
 * What spreadsheets and pandas write must read back field for field: quotes,
 * "" escapes, commas and line breaks inside quotes, CRLF, a byte-order mark,
 * empty fields and lines, a missing final newline; ragged rows come back as
 * they are, with the line they start on. Then every limit and malformation
 * is an error that names file:line, and a field of exactly the limit fits.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "thorax/data.h"

/* Parses a copy of text as "t.csv". */
static int parse(th_csv *csv, const char *text, th_err *err)
{
    size_t n = strlen(text);
    char *buf = malloc(n + 1);
    memcpy(buf, text, n + 1);
    return th_csv_parse(csv, "t.csv", buf, n, err);
}

static int row_is(const th_csv_row *r, int line, int n, const char *const *want)
{
    if (r->line != line || r->n_fields != n) {
        fprintf(stderr, "  row at line %d with %d fields, expected line %d with %d\n", r->line, r->n_fields, line, n);
        return 0;
    }
    for (int k = 0; k < n; k++)
        if (strcmp(r->fields[k], want[k])) {
            fprintf(stderr, "  line %d field %d is '%s', expected '%s'\n", line, k, r->fields[k], want[k]);
            return 0;
        }
    return 1;
}

static void test_plain(void)
{
    th_csv csv;
    th_err err;
    CHECK(parse(&csv, "image,patient_id,A\na.png,P1,0\nb.png,P2,1\n", &err) == 0);
    CHECK(row_is(&csv.header, 1, 3, (const char *[]){"image", "patient_id", "A"}));
    CHECK(csv.n_rows == 2);
    CHECK(row_is(&csv.rows[0], 2, 3, (const char *[]){"a.png", "P1", "0"}));
    CHECK(row_is(&csv.rows[1], 3, 3, (const char *[]){"b.png", "P2", "1"}));
    th_csv_free(&csv);
}

static void test_quotes(void)
{
    th_csv csv;
    th_err err;
    const char *text = "name,note\n"
                       "\"a,b.png\",\"he said \"\"hi\"\"\"\n"
                       "\"two\nlines\",\"\"\n"
                       "c\"d,plain\n";
    CHECK(parse(&csv, text, &err) == 0);
    CHECK(csv.n_rows == 3);
    CHECK(row_is(&csv.rows[0], 2, 2, (const char *[]){"a,b.png", "he said \"hi\""}));
    CHECK(row_is(&csv.rows[1], 3, 2, (const char *[]){"two\nlines", ""}));
    /* The line break inside quotes counts: the next row starts on line 5. */
    CHECK(row_is(&csv.rows[2], 5, 2, (const char *[]){"c\"d", "plain"}));
    th_csv_free(&csv);
}

static void test_line_ends_bom_empty(void)
{
    th_csv csv;
    th_err err;
    /* BOM, CRLF, empty lines (skipped but counted), empty fields, no final newline. */
    CHECK(parse(&csv, "\xEF\xBB\xBFimage,x,y\r\n\r\na.png,,\r\n\n,b,\"\"\r\nlast,1,2", &err) == 0);
    CHECK(row_is(&csv.header, 1, 3, (const char *[]){"image", "x", "y"}));
    CHECK(csv.n_rows == 3);
    CHECK(row_is(&csv.rows[0], 3, 3, (const char *[]){"a.png", "", ""}));
    CHECK(row_is(&csv.rows[1], 5, 3, (const char *[]){"", "b", ""}));
    CHECK(row_is(&csv.rows[2], 6, 3, (const char *[]){"last", "1", "2"}));
    th_csv_free(&csv);

    /* A quoted field at the very end, and a lone CR as a line end. */
    CHECK(parse(&csv, "h\r\"q\"", &err) == 0);
    CHECK(csv.n_rows == 1 && row_is(&csv.rows[0], 2, 1, (const char *[]){"q"}));
    th_csv_free(&csv);
}

static void test_ragged(void)
{
    th_csv csv;
    th_err err;
    CHECK(parse(&csv, "a,b,c\n1,2\n1,2,3,4\n", &err) == 0);
    CHECK(csv.n_rows == 2);
    CHECK(row_is(&csv.rows[0], 2, 2, (const char *[]){"1", "2"}));
    CHECK(row_is(&csv.rows[1], 3, 4, (const char *[]){"1", "2", "3", "4"}));
    th_csv_free(&csv);
}

/* text[0..len) must fail with an error containing w1 and w2 (if not NULL). */
static void expect_error_n(const char *text, size_t len, const char *w1, const char *w2)
{
    th_csv csv;
    th_err err = {{0}};
    char *buf = malloc(len + 1);
    memcpy(buf, text, len);
    buf[len] = '\0';
    int rc = th_csv_parse(&csv, "t.csv", buf, len, &err);
    CHECK(rc == -1);
    CHECK(strstr(err.msg, w1) != NULL);
    CHECK(!w2 || strstr(err.msg, w2) != NULL);
    if (rc == -1 && (!strstr(err.msg, w1) || (w2 && !strstr(err.msg, w2)))) fprintf(stderr, "  got: %s\n", err.msg);
    CHECK(csv.rows == NULL && csv.text == NULL && csv.n_rows == 0);
    th_csv_free(&csv);
}

static void expect_error(const char *text, const char *w1, const char *w2)
{
    expect_error_n(text, strlen(text), w1, w2);
}

static void test_errors(void)
{
    expect_error("a,b\n1,\"open\n2,3\n", "t.csv:2", "never closed");
    expect_error("a,b\n1,2\n\"x\"y,3\n", "t.csv:3", "after the closing quote");
    expect_error_n("a,b\n1,2\0,3\n", 11, "t.csv:2", "NUL");
    expect_error("", "t.csv", "no header");
    expect_error("\n\r\n\n", "t.csv", "no header");

    /* A field of exactly the limit fits; one byte more is an error. */
    size_t max = TH_CSV_MAX_FIELD;
    char *big = malloc(max + 16);
    memcpy(big, "h\n", 2);
    memset(big + 2, 'x', max);
    big[2 + max] = '\0';
    th_csv csv;
    th_err err;
    CHECK(parse(&csv, big, &err) == 0);
    CHECK(csv.n_rows == 1 && strlen(csv.rows[0].fields[0]) == max);
    th_csv_free(&csv);
    memcpy(big + 2 + max, "x\n", 3);
    expect_error(big, "t.csv:2", "longer than");
    free(big);

    /* Columns: the limit fits, one more is an error. */
    size_t n = 2 * (TH_CSV_MAX_COLS + 1) + 1;
    char *wide = malloc(n + 1);
    for (int k = 0; k <= TH_CSV_MAX_COLS; k++) memcpy(wide + 2 * k, "x,", 2);
    wide[2 * TH_CSV_MAX_COLS - 1] = '\n';
    wide[2 * TH_CSV_MAX_COLS] = '\0';
    CHECK(parse(&csv, wide, &err) == 0);
    CHECK(csv.header.n_fields == TH_CSV_MAX_COLS);
    th_csv_free(&csv);
    for (int k = 0; k <= TH_CSV_MAX_COLS; k++) memcpy(wide + 2 * k, "x,", 2);
    wide[2 * TH_CSV_MAX_COLS + 1] = '\n';
    expect_error_n(wide, 2 * TH_CSV_MAX_COLS + 2, "t.csv:1", "more than");
    free(wide);
}

/* TH_CSV_MAX_BYTES: a file one byte over is refused before it is read (a
 * sparse file: nothing is written). Just under is the field and column
 * limits' business, above; a gigabyte is too much for a unit test. */
static void test_size_limit(void)
{
    char path[] = "/tmp/thorax-csv-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && ftruncate(fd, TH_CSV_MAX_BYTES + 1) == 0);
    close(fd);
    th_csv csv;
    th_err err;
    CHECK(th_csv_read(&csv, path, &err) == -1);
    CHECK(strstr(err.msg, path) && strstr(err.msg, "larger than 1073741824 bytes, the limit of a CSV file"));
    CHECK(csv.text == NULL && csv.n_rows == 0);
    unlink(path);
}

static void test_files(void)
{
    th_csv csv;
    th_err err;
    CHECK(th_csv_read(&csv, "/nonexistent/labels.csv", &err) == -1);
    CHECK(strstr(err.msg, "/nonexistent/labels.csv") != NULL);
    CHECK(th_csv_read(&csv, "/tmp", &err) == -1);
    CHECK(strstr(err.msg, "directory") != NULL);

    char path[] = "/tmp/thorax-csv-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *text = "image,label\r\nx.png,1\r\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    CHECK(th_csv_read(&csv, path, &err) == 0);
    CHECK(!strcmp(csv.path, path));
    CHECK(csv.n_rows == 1 && row_is(&csv.rows[0], 2, 2, (const char *[]){"x.png", "1"}));
    th_csv_free(&csv);
    unlink(path);
}

int main(void)
{
    test_plain();
    test_quotes();
    test_line_ends_bom_empty();
    test_ragged();
    test_errors();
    test_files();
    test_size_limit();
    return th_test_summary("csv");
}

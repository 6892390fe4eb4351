/* fuzz_csv.c - libFuzzer target: the CSV reader, and ingest's reading of a
 * label CSV (layouts, columns, labels, findings, splits, patient IDs).
 *
 * Input: the CSV file's bytes. th_csv_parse reads them from memory and its
 * result is checked against what thorax/data.h promises of the CSV reader (fields within the limits,
 * rows in line order). Then th_ingest_run reads the same bytes from a file,
 * with and without skip_bad: the images it names do not exist, so it stops
 * at the image pass at the latest, having run every CSV check; it must fail
 * with a message, never crash and never write a dataset.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "thorax/data.h"

static void check(int ok, const char *what)
{
    if (ok) return;
    fprintf(stderr, "th_csv_parse broke its promise: %s\n", what);
    abort();
}

static void check_row(const th_csv_row *r, int prev_line)
{
    check(r->n_fields >= 1 && r->n_fields <= TH_CSV_MAX_COLS, "a row has 1 to TH_CSV_MAX_COLS fields");
    check(r->line > prev_line, "rows come in line order");
    for (int k = 0; k < r->n_fields; k++) check(strlen(r->fields[k]) <= TH_CSV_MAX_FIELD, "a field fits the limit");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    th_csv csv;
    th_err err;
    if (th_csv_parse(&csv, "fuzz.csv", text, size, &err) == 0) {
        check_row(&csv.header, 0);
        for (int i = 0; i < csv.n_rows; i++) check_row(&csv.rows[i], i ? csv.rows[i - 1].line : csv.header.line);
    } else {
        check(err.msg[0] != '\0', "a failure has a message");
    }
    th_csv_free(&csv);

    char csv_path[64], out_path[64];
    snprintf(csv_path, sizeof csv_path, "/tmp/thorax-fuzz-csv-%d.csv", (int)getpid());
    snprintf(out_path, sizeof out_path, "/tmp/thorax-fuzz-csv-%d.h5", (int)getpid());
    FILE *f = fopen(csv_path, "wb");
    if (!f) abort();
    fwrite(data, 1, size, f);
    fclose(f);
    for (int skip_bad = 0; skip_bad <= 1; skip_bad++) {
        th_ingest_opts o = {.csv_path = csv_path, .images_dir = "/nonexistent-thorax-fuzz", .out_path = out_path,
                            .size = 8, .skip_bad = skip_bad};
        th_ingest_summary sum;
        check(th_ingest_run(&o, &sum, NULL, NULL, &err) == -1, "ingest without images fails");
        check(err.msg[0] != '\0', "an ingest failure has a message");
        check(access(out_path, F_OK) != 0, "a failed ingest leaves no dataset");
    }
    unlink(csv_path);
    return 0;
}

/* fuzz_lesions.c - libFuzzer target: the lesion files of ingest, NIH boxes
 * and SIIM run-length codes (th_lesions_load, th_lesions_draw).
 *
 * Input: one byte choosing the reader ('b' boxes, anything else RLE), then
 * the file's bytes. When the file loads, the masks of the images its rows
 * name are drawn at a scaled size (20x12 original, 8x6 stored): every draw
 * must fail with a message or give 0/1 masks and a count of labels drawn in
 * [0, L]. Never a crash, never a read or write outside the masks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "thorax/data.h"

#define OW 20
#define OH 12
#define W 8
#define H 6

static void check(int ok, const char *what)
{
    if (ok) return;
    fprintf(stderr, "th_lesions broke its promise: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const char *const labels[] = {"Pneumothorax", "Infiltration", "Nodule"};
    enum { L = 3 };
    int boxes = data[0] == 'b';
    char path[64];
    snprintf(path, sizeof path, "/tmp/thorax-fuzz-lesions-%d.csv", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(data + 1, 1, size - 1, f);
    fclose(f);

    th_lesions *l;
    th_err err;
    if (th_lesions_load(&l, boxes ? path : NULL, NULL, boxes ? NULL : path, L, labels, &err)) {
        check(err.msg[0] != '\0', "a failed load has a message");
        unlink(path);
        return 0;
    }
    th_csv csv;
    if (th_csv_read(&csv, path, &err) == 0) {
        uint8_t masks[L * H * W], positive[L] = {1, 1, 1};
        for (int i = 0; i < csv.n_rows && i < 16; i++) {
            int rc = th_lesions_draw(l, csv.rows[i].fields[0], OW, OH, positive, H, W, masks, &err);
            check(rc >= -1 && rc <= L, "a draw returns -1 or a label count");
            if (rc < 0) check(err.msg[0] != '\0', "a failed draw has a message");
            for (int j = 0; rc >= 0 && j < L * H * W; j++) check(masks[j] <= 1, "masks are 0/1");
        }
    }
    th_csv_free(&csv);
    th_lesions_free(l);
    unlink(path);
    return 0;
}

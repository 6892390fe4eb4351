/* fuzz_dicom.c - libFuzzer target: ingest's DICOM path (src/data/dicom.h)
 * and resizing.
 *
 * Input: a DICOM file's bytes, written to a scratch file: ingest reads DICOM
 * from files only (see dicom.cc). th_dicom_read_info and th_dicom_read parse
 * it through DCMTK, decompress (RLE, JPEG, JPEG-LS) and window it, with the
 * first window and with min-max. A failure must carry a message and no
 * pixels; a decoded image must be within TH_IMAGE_MAX_SIDE, of the size the
 * header check gave, the same with both windows. It is then resized as
 * ingest would.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "dicom.h"
#include "thorax/data.h"

static void check(int ok, const char *what)
{
    if (ok) return;
    fprintf(stderr, "DICOM path broke its promise: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/thorax-fuzz-dicom-%d.dcm", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(data, 1, size, f);
    fclose(f);

    th_dicom_info info;
    th_image img, mm;
    th_err err;
    int rc_info = th_dicom_read_info(path, &info, &err);
    check(rc_info == 0 || err.msg[0] != '\0', "a header failure has a message");
    int rc = th_dicom_read(path, 0, &img, &err);
    check(rc == 0 || (err.msg[0] != '\0' && !img.px), "a failure has a message and no pixels");
    int rc_mm = th_dicom_read(path, TH_INGEST_DICOM_WINDOW_NONE, &mm, &err);
    check(rc_mm == 0 || (err.msg[0] != '\0' && !mm.px), "a min-max failure has a message and no pixels");
    unlink(path);
    if (rc == 0) {
        check(img.w >= 1 && img.h >= 1 && img.w <= TH_IMAGE_MAX_SIDE && img.h <= TH_IMAGE_MAX_SIDE,
              "a decoded image is within the limit");
        check(rc_info == 0 && info.w == img.w && info.h == img.h, "the header check agrees with the decoder");
        check(rc_mm == 0 && mm.w == img.w && mm.h == img.h, "min-max decodes what the first window decodes");
        uint8_t *dst = malloc((size_t)(img.w / 2 + 1) * (size_t)(img.h * 2));
        if (dst) {
            check(th_image_resize(img.px, img.w, img.h, dst, img.w / 2 + 1, img.h * 2, &err) == 0,
                  "a decoded image resizes");
            free(dst);
        }
    }
    th_image_free(&img);
    th_image_free(&mm);
    return 0;
}

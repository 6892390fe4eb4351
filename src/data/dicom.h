/* dicom.h - DICOM images for ingest: a C interface over DCMTK (dicom.cc).
 *
 *     if (th_dicom_is_dicom(path)) {
 *         th_dicom_info info;                 // size and tags, no pixels read
 *         th_dicom_read_info(path, &info, err);
 *         th_image img;                       // 8-bit grey, as a PNG gives
 *         th_dicom_read(path, window, &img, err);
 *     }
 *
 * The pixel pipeline (PS3.3 C.11), each pixel in double precision:
 *   1. the stored value: BitsStored bits at HighBit of an 8- or 16-bit
 *      sample, sign-extended when PixelRepresentation is 1;
 *   2. the modality LUT: x = stored * RescaleSlope + RescaleIntercept
 *      (1 and 0 when absent);
 *   3. the VOI: window `window` of WindowCenter/WindowWidth (0 the first)
 *      with the file's VOILUTFunction (LINEAR, LINEAR_EXACT or SIGMOID;
 *      C.11.2.1.2-3) onto 0..255, or, with TH_INGEST_DICOM_WINDOW_NONE or
 *      when the file has no window, min-max: (x - min) / (max - min) * 255
 *      over the image (0 for a constant image);
 *   4. MONOCHROME1 inverted (255 - y), so that bone is bright as in
 *      MONOCHROME2; then rounded to nearest.
 * LINEAR (the default function) is, with c the centre and w the width:
 *   y = 0 for x <= c - 0.5 - (w - 1) / 2, 255 for x > c - 0.5 + (w - 1) / 2,
 *   else ((x - (c - 0.5)) / (w - 1) + 0.5) * 255.
 *
 * Refused, each with an error naming the file: not DICOM or cut short, no
 * PixelData (a report or presentation state), more than one frame, more
 * than one sample per pixel or another photometric interpretation than
 * MONOCHROME1/2 (RGB, YBR: colour, as ultrasound), other than 8 or 16 bits
 * allocated, a Modality LUT Sequence, a window that is not there, pixel data
 * shorter than Rows x Columns, a compressed transfer syntax DCMTK has no
 * decoder for. Decoders registered: JPEG baseline, extended and lossless
 * (dcmjpeg), JPEG-LS (dcmjpls) and RLE lossless (dcmdata); JPEG 2000 is not
 * among them.
 */
#ifndef THORAX_DATA_DICOM_H
#define THORAX_DATA_DICOM_H

#include <stddef.h>

#ifdef __cplusplus
/* C11's _Noreturn (thorax/util.h) is spelled [[noreturn]] in C++. */
#define _Noreturn [[noreturn]]
extern "C" {
#endif

#include "thorax/data.h"
#include "thorax/util.h"

/* The tags ingest keeps as /meta/<name>, in this order. */
#define TH_DICOM_N_META 4
extern const char *const th_dicom_meta_names[TH_DICOM_N_META];  /* PatientSex, PatientAge, ViewPosition, Manufacturer */

#define TH_DICOM_MAX_TAG 80

typedef struct th_dicom_info {
    int w, h;                                       /* Columns, Rows */
    char patient_id[TH_DICOM_MAX_TAG];              /* PatientID (0010,0020), "" when absent */
    char meta[TH_DICOM_N_META][TH_DICOM_MAX_TAG];   /* as th_dicom_meta_names, "" when absent */
} th_dicom_info;

/* 1 when the file has the DICOM magic ("DICM" after the 128-byte preamble)
 * or a .dcm name (any case: files written without a preamble), else 0. */
int th_dicom_is_dicom(const char *path);

/* Size and tags, checking everything the pipeline refuses except what only
 * the pixel data shows (its length, its compression). */
int th_dicom_read_info(const char *path, th_dicom_info *info, th_err *err);

/* The image as 8-bit grey (img->depth is the bits stored). window: 0 the
 * file's first window, k its (k+1)-th, TH_INGEST_DICOM_WINDOW_NONE min-max.
 * On failure img is left empty. */
int th_dicom_read(const char *path, int window, th_image *img, th_err *err);

#ifdef __cplusplus
}
#endif

#endif

/* dicom.cc - DICOM images through DCMTK (see dicom.h for the pipeline).
 *
 * DCMTK parses the file, decompresses encapsulated pixel data and reads the
 * tags; the arithmetic from stored values to 8-bit grey is done here, in
 * double precision, so that it is the formula of dicom.h exactly (DCMTK's
 * renderer rounds its intermediate values to integers). Nothing of C++
 * crosses the interface: every entry point catches whatever DCMTK or the
 * allocator throws and returns it as a th_err naming the file.
 */
#include "dicom.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const th_dicom_meta_names[TH_DICOM_N_META] = {"PatientSex", "PatientAge", "ViewPosition", "Manufacturer"};

namespace {

const DcmTagKey META_TAGS[TH_DICOM_N_META] = {DCM_PatientSex, DCM_PatientAge, DCM_ViewPosition, DCM_Manufacturer};

/* DCMTK's codecs live in its global registry, and its logger writes to
 * stderr unless told not to (library code never prints): both set up once,
 * by the first file read (C++ runs a local static's initialiser once, even
 * across threads). */
struct dcmtk_setup {
    dcmtk_setup()
    {
        OFLog::configure(OFLogger::OFF_LOG_LEVEL);
        DJDecoderRegistration::registerCodecs();
        DJLSDecoderRegistration::registerCodecs();
        DcmRLEDecoderRegistration::registerCodecs();
    }
};

void setup_dcmtk()
{
    static dcmtk_setup once;
    (void)once;
}

/* A string tag, "" when absent; backslash-separated values stay as they are. */
void get_string(DcmDataset *ds, const DcmTagKey &key, char *out, size_t n)
{
    OFString s;
    out[0] = '\0';
    if (ds->findAndGetOFStringArray(key, s).good()) snprintf(out, n, "%s", s.c_str());
}

long get_long(DcmDataset *ds, const DcmTagKey &key, long dflt)
{
    OFString s;
    if (ds->findAndGetOFString(key, s).bad() || s.empty()) return dflt;
    return strtol(s.c_str(), NULL, 10);
}

/* What the pipeline needs from the header. */
struct header {
    int rows, cols, bits_allocated, bits_stored, high_bit, is_signed, mono1;
    double slope, intercept;
};

/* The header, checked against everything dicom.h refuses before the pixels. */
int read_header(DcmDataset *ds, const char *name, header *h, th_err *err)
{
    Uint16 v = 0;
    OFString photo;
    if (!ds->tagExists(DCM_PixelData))
        return th_errf(err, "%s: no pixel data (a DICOM object without an image, e.g. a report or presentation state)",
                       name);
    long frames = get_long(ds, DCM_NumberOfFrames, 1);
    if (frames != 1)
        return th_errf(err, "%s: a multi-frame object (%ld frames); ingest takes single images", name, frames);
    long spp = get_long(ds, DCM_SamplesPerPixel, 1);
    ds->findAndGetOFString(DCM_PhotometricInterpretation, photo);
    if (spp != 1 || (photo != "MONOCHROME1" && photo != "MONOCHROME2"))
        return th_errf(err, "%s: photometric interpretation %s with %ld samples per pixel: a colour image (e.g. "
                       "ultrasound), not a MONOCHROME1/2 radiograph", name, photo.empty() ? "(none)" : photo.c_str(),
                       spp);
    h->mono1 = photo == "MONOCHROME1";
    if (ds->findAndGetUint16(DCM_Rows, v).bad() || v == 0) return th_errf(err, "%s: no Rows (0028,0010)", name);
    h->rows = v;
    if (ds->findAndGetUint16(DCM_Columns, v).bad() || v == 0)
        return th_errf(err, "%s: no Columns (0028,0011)", name);
    h->cols = v;
    if (h->rows > TH_IMAGE_MAX_SIDE || h->cols > TH_IMAGE_MAX_SIDE)
        return th_errf(err, "%s: %dx%d pixels is larger than the limit of %d pixels a side", name, h->cols, h->rows,
                       TH_IMAGE_MAX_SIDE);
    if (ds->findAndGetUint16(DCM_BitsAllocated, v).bad() || (v != 8 && v != 16))
        return th_errf(err, "%s: %d bits allocated per pixel; ingest takes 8 or 16", name, (int)v);
    h->bits_allocated = v;
    h->bits_stored = ds->findAndGetUint16(DCM_BitsStored, v).good() ? v : h->bits_allocated;
    h->high_bit = ds->findAndGetUint16(DCM_HighBit, v).good() ? v : h->bits_stored - 1;
    if (h->bits_stored < 1 || h->bits_stored > h->bits_allocated || h->high_bit < h->bits_stored - 1 ||
        h->high_bit >= h->bits_allocated)
        return th_errf(err, "%s: %d bits stored with high bit %d do not fit in %d bits allocated", name,
                       h->bits_stored, h->high_bit, h->bits_allocated);
    h->is_signed = ds->findAndGetUint16(DCM_PixelRepresentation, v).good() && v == 1;
    if (ds->tagExists(DCM_ModalityLUTSequence))
        return th_errf(err, "%s: a Modality LUT Sequence (0028,3000), which ingest does not apply", name);
    Float64 f;
    h->slope = ds->findAndGetFloat64(DCM_RescaleSlope, f).good() ? f : 1.0;
    h->intercept = ds->findAndGetFloat64(DCM_RescaleIntercept, f).good() ? f : 0.0;
    return 0;
}

void fill_info(DcmDataset *ds, const header &h, th_dicom_info *info)
{
    info->w = h.cols;
    info->h = h.rows;
    get_string(ds, DCM_PatientID, info->patient_id, sizeof info->patient_id);
    for (int k = 0; k < TH_DICOM_N_META; k++) get_string(ds, META_TAGS[k], info->meta[k], sizeof info->meta[k]);
}

/* The stored value of sample s, as an integer. */
inline long stored_value(unsigned raw, const header &h)
{
    unsigned v = (raw >> (h.high_bit + 1 - h.bits_stored)) & ((1u << h.bits_stored) - 1u);
    if (h.is_signed && (v >> (h.bits_stored - 1))) return (long)v - (1L << h.bits_stored);
    return (long)v;
}

enum voi_fn { VOI_LINEAR, VOI_LINEAR_EXACT, VOI_SIGMOID, VOI_MINMAX };

/* x (after the modality LUT) onto [0, 255], unrounded. */
inline double apply_voi(double x, voi_fn fn, double c, double w)
{
    switch (fn) {
    case VOI_LINEAR:
        if (x <= c - 0.5 - (w - 1) / 2) return 0;
        if (x > c - 0.5 + (w - 1) / 2) return 255;
        return ((x - (c - 0.5)) / (w - 1) + 0.5) * 255;
    case VOI_LINEAR_EXACT:
        if (x <= c - w / 2) return 0;
        if (x > c + w / 2) return 255;
        return ((x - c) / w + 0.5) * 255;
    case VOI_SIGMOID: return 255 / (1 + exp(-4 * (x - c) / w));
    default: return w > 0 ? (x - c) / w * 255 : 0;     /* min-max: c the minimum, w the range */
    }
}

/* The window to apply: fn, c and w. */
int choose_window(DcmDataset *ds, const char *name, int window, voi_fn *fn, double *c, double *w, th_err *err)
{
    DcmElement *centres = NULL, *widths = NULL;
    unsigned long n = 0;
    if (ds->findAndGetElement(DCM_WindowCenter, centres).good() &&
        ds->findAndGetElement(DCM_WindowWidth, widths).good())
        n = centres->getVM() < widths->getVM() ? centres->getVM() : widths->getVM();
    if (window == TH_INGEST_DICOM_WINDOW_NONE || (n == 0 && window == 0)) {
        *fn = VOI_MINMAX;
        return 0;
    }
    if ((unsigned long)window >= n)
        return th_errf(err, "%s: no window %d (the file has %lu window%s): pick another with --window, or "
                       "--window none", name, window + 1, n, n == 1 ? "" : "s");
    Float64 fc = 0, fw = 0;
    ds->findAndGetFloat64(DCM_WindowCenter, fc, window);
    ds->findAndGetFloat64(DCM_WindowWidth, fw, window);
    OFString f;
    ds->findAndGetOFString(DCM_VOILUTFunction, f);
    *fn = f == "SIGMOID" ? VOI_SIGMOID : f == "LINEAR_EXACT" ? VOI_LINEAR_EXACT : VOI_LINEAR;
    if (f != "" && f != "LINEAR" && f != "SIGMOID" && f != "LINEAR_EXACT")
        return th_errf(err, "%s: unknown VOI LUT function '%s'", name, f.c_str());
    if (fw < (*fn == VOI_LINEAR ? 1 : 1e-12) || !isfinite(fw) || !isfinite(fc))
        return th_errf(err, "%s: window %d has width %g (centre %g): not a window", name, window + 1, fw, fc);
    *c = fc;
    *w = fw;
    return 0;
}

/* The pixels of a loaded file into img. Files only, never a buffer: DCMTK
 * leaves a file's long elements on disk until asked for, and checks their
 * length against the file's, where from memory it would allocate whatever
 * length a damaged header declares (fuzz_dicom found 3.4 GB). */
int render(DcmFileFormat &ff, const char *name, int window, th_image *img, th_err *err)
{
    DcmDataset *ds = ff.getDataset();
    header h;
    if (read_header(ds, name, &h, err)) return -1;
    voi_fn fn = VOI_MINMAX;
    double c = 0, w = 0;
    if (choose_window(ds, name, window, &fn, &c, &w, err)) return -1;

    DcmXfer xfer(ds->getOriginalXfer());
    if (xfer.isEncapsulated()) {
        OFCondition cond = ds->chooseRepresentation(EXS_LittleEndianExplicit, NULL);
        if (cond.bad() || !ds->canWriteXfer(EXS_LittleEndianExplicit))
            return th_errf(err, "%s: cannot decompress the pixel data (%s): %s", name, xfer.getXferName(),
                           cond.bad() ? cond.text() : "no decoder for this transfer syntax");
    }
    DcmElement *pd = NULL;
    if (ds->findAndGetElement(DCM_PixelData, pd).bad() || !pd)
        return th_errf(err, "%s: no pixel data", name);
    size_t n = (size_t)h.rows * (size_t)h.cols, need = n * (size_t)(h.bits_allocated / 8);
    const Uint8 *bytes = NULL;
    Uint8 *b8 = NULL;
    Uint16 *b16 = NULL;
    OFCondition cond = pd->getUint8Array(b8);
    if (cond.bad() || !b8) cond = pd->getUint16Array(b16);
    bytes = b8 ? b8 : (const Uint8 *)b16;
    if (cond.bad() || !bytes)
        return th_errf(err, "%s: unreadable pixel data: %s", name, cond.bad() ? cond.text() : "empty");
    if ((size_t)pd->getLength() < need)
        return th_errf(err, "%s: the pixel data holds %lu bytes, %dx%d pixels of %d bits need %zu (truncated?)", name,
                       (unsigned long)pd->getLength(), h.cols, h.rows, h.bits_allocated, need);

    /* x after the modality LUT, then min-max needs its range first. */
    double *x = (double *)malloc(n * sizeof *x);
    uint8_t *px = (uint8_t *)malloc(n);
    if (!x || !px) {
        free(x);
        free(px);
        return th_errf(err, "%s: out of memory for %dx%d pixels", name, h.cols, h.rows);
    }
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        /* DCMTK keeps OW data in the host's byte order. */
        unsigned raw = h.bits_allocated == 8 ? bytes[i] : ((const Uint16 *)(const void *)bytes)[i];
        x[i] = (double)stored_value(raw, h) * h.slope + h.intercept;
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    if (fn == VOI_MINMAX) {
        c = lo;
        w = hi - lo;
    }
    for (size_t i = 0; i < n; i++) {
        double y = apply_voi(x[i], fn, c, w);
        if (h.mono1) y = 255 - y;
        y = floor(y + 0.5);
        px[i] = (uint8_t)(y < 0 ? 0 : y > 255 ? 255 : y);
    }
    free(x);
    img->w = h.cols;
    img->h = h.rows;
    img->px = px;
    img->depth = h.bits_stored;
    img->channels = 1;
    return 0;
}

int load_file(DcmFileFormat &ff, const char *path, Uint32 max_read, th_err *err)
{
    /* DCMTK would call a missing file "not readable DICOM" too. */
    FILE *fp = fopen(path, "rb");
    if (!fp) return th_errf(err, "cannot open %s: %s", path, strerror(errno));
    fclose(fp);
    setup_dcmtk();
    OFCondition cond = ff.loadFile(path, EXS_Unknown, EGL_noChange, max_read, ERM_autoDetect);
    if (cond.bad()) return th_errf(err, "%s: not a readable DICOM file (truncated or damaged): %s", path, cond.text());
    return 0;
}

} // namespace

extern "C" int th_dicom_is_dicom(const char *path)
{
    size_t n = strlen(path);
    if (n >= 4 && !strcasecmp(path + n - 4, ".dcm")) return 1;
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    char b[132];
    int is = fread(b, 1, sizeof b, fp) == sizeof b && !memcmp(b + 128, "DICM", 4);
    fclose(fp);
    return is;
}

extern "C" int th_dicom_read_info(const char *path, th_dicom_info *info, th_err *err)
{
    memset(info, 0, sizeof *info);
    try {
        /* Elements longer than 4 KiB (the pixel data) are left on disk. */
        DcmFileFormat ff;
        header h;
        if (load_file(ff, path, 4096, err) || read_header(ff.getDataset(), path, &h, err)) return -1;
        fill_info(ff.getDataset(), h, info);
        return 0;
    } catch (...) {
        return th_errf(err, "%s: DICOM reading failed (out of memory?)", path);
    }
}

extern "C" int th_dicom_read(const char *path, int window, th_image *img, th_err *err)
{
    memset(img, 0, sizeof *img);
    try {
        DcmFileFormat ff;
        if (load_file(ff, path, DCM_MaxReadLength, err)) return -1;
        /* The pixel data is read in full here, so a file cut short fails now. */
        OFCondition cond = ff.loadAllDataIntoMemory();
        if (cond.bad()) return th_errf(err, "%s: the file ends early or is damaged: %s", path, cond.text());
        return render(ff, path, window, img, err);
    } catch (...) {
        th_image_free(img);
        return th_errf(err, "%s: DICOM decoding failed (out of memory?)", path);
    }
}

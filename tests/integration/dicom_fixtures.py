"""DICOM test inputs made from real PNG radiographs, and the pixels thorax
ingest must decode them to (test_ingest_dicom.sh).

    dicom_fixtures.py make PNG_DIR OUT_DIR     writes OUT_DIR/*.dcm, labels CSVs
    dicom_fixtures.py check OUT_DIR F.h5 WIN   checks F.h5's pixels against the
                                               expected ones for --window WIN
    dicom_fixtures.py source PNG_DIR K         the K-th source PNG's path
    dicom_fixtures.py png F.h5 NAME PNG INV    image NAME of F.h5 against a PNG
                                               (INV 1: against 255 - PNG)

The expected value of each pixel is computed here from the source PNG with
the pipeline of src/data/dicom.h: stored value -> RescaleSlope/Intercept ->
the linear VOI function of DICOM PS3.3 C.11.2.1.2.1 (or min-max) -> 255 - y
for MONOCHROME1 -> rounded to nearest. Every fixture is lossless, so the
check is exact: every pixel equal.
"""
import csv
import os
import sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from PIL import Image

DX = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation


def dx(pixels, bits_stored, photometric="MONOCHROME2", signed=False, patient="P1", **tags):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.SOPClassUID = DX
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.PatientID = patient
    ds.PatientSex = "F"
    ds.PatientAge = "042Y"
    ds.ViewPosition = "PA"
    ds.Manufacturer = "Thorax Test"
    ds.Rows, ds.Columns = pixels.shape[-2:] if pixels.ndim == 2 or tags.get("NumberOfFrames") else pixels.shape[:2]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if pixels.dtype.itemsize == 1 else 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.PixelData = pixels.tobytes()
    return ds


def save(ds, path):
    ds.save_as(path, write_like_original=False)


def window_linear(x, c, w):
    """PS3.3 C.11.2.1.2.1, onto 0..255, unrounded."""
    y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255
    y = np.where(x <= c - 0.5 - (w - 1) / 2, 0.0, y)
    return np.where(x > c - 0.5 + (w - 1) / 2, 255.0, y)


def expected(ds, window):
    """8-bit grey of ds after --window `window` ("1", "2", ..., or "none")."""
    a = ds.pixel_array.astype(np.float64)  # pydicom masks BitsStored and sign-extends
    x = a * float(getattr(ds, "RescaleSlope", 1)) + float(getattr(ds, "RescaleIntercept", 0))
    centres = ds.get("WindowCenter")
    if window == "none" or centres is None:
        lo, hi = x.min(), x.max()
        y = (x - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(x)
    else:
        k = int(window) - 1
        c = float(ds["WindowCenter"].value[k] if ds["WindowCenter"].VM > 1 else centres)
        w = float(ds["WindowWidth"].value[k] if ds["WindowWidth"].VM > 1 else ds.WindowWidth)
        y = window_linear(x, c, w)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        y = 255 - y
    return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)


def make(png_dir, out):
    names = sorted(os.listdir(png_dir))[:6]
    src = [np.asarray(Image.open(os.path.join(png_dir, n)).convert("L")) for n in names]
    rng = np.random.default_rng(17)
    rows = []  # image, source png, patient (for the CSV with a patient column)

    # 8-bit MONOCHROME2, window 128/256: y = x, the PNG itself.
    save(dx(src[0], 8, patient="P1", WindowCenter=128, WindowWidth=256), f"{out}/mono2_8.dcm")
    # 12 bits in 16, rescaled, two windows; the low 4 bits carry detail the PNG lacks.
    s12 = src[1].astype(np.uint16) * 16 + rng.integers(0, 16, src[1].shape, dtype=np.uint16)
    save(dx(s12, 12, patient="P2", RescaleSlope="0.5", RescaleIntercept="-100",
            WindowCenter=["900", "400.5"], WindowWidth=["1400", "301"]), f"{out}/ct12.dcm")
    # MONOCHROME1 (bright = low values), 8 bits: stored 255 - png comes out as the PNG.
    save(dx((255 - src[2]).astype(np.uint8), 8, "MONOCHROME1", patient="P3", WindowCenter=128,
            WindowWidth=256), f"{out}/mono1.dcm")
    # Signed 12-bit stored values (-2048..2047) with high bits that must be masked off.
    sv = src[3].astype(np.int16) * 16 - 2048
    raw = (sv.astype(np.uint16) & 0x0FFF) | 0xF000 * (sv < 0)
    save(dx(raw.astype(np.uint16), 12, signed=True, patient="P4", WindowCenter=0, WindowWidth=4096),
         f"{out}/signed12.dcm")
    # No window: min-max.
    save(dx(src[4].astype(np.uint16) * 3 + 1000, 14, patient="P5"), f"{out}/nowindow.dcm")
    for name, png, pid in [("mono2_8.dcm", 0, "P1"), ("ct12.dcm", 1, "P2"), ("mono1.dcm", 2, "P3"),
                           ("signed12.dcm", 3, "P4"), ("nowindow.dcm", 4, "P5")]:
        rows.append((name, pid))

    # Bad objects.
    good = pydicom.dcmread(f"{out}/mono2_8.dcm")
    data = open(f"{out}/mono2_8.dcm", "rb").read()
    open(f"{out}/truncated.dcm", "wb").write(data[: len(data) - len(data) // 3])
    nopix = pydicom.dcmread(f"{out}/mono2_8.dcm")
    del nopix.PixelData
    save(nopix, f"{out}/nopixel.dcm")
    rgb = dx(np.stack([src[5]] * 3, -1), 8, "RGB", patient="P6")
    rgb.SamplesPerPixel = 3
    rgb.PlanarConfiguration = 0
    rgb.Rows, rgb.Columns = src[5].shape
    save(rgb, f"{out}/rgb.dcm")
    multi = dx(np.stack([src[5], src[5]]), 8, patient="P6", NumberOfFrames=2)
    multi.Rows, multi.Columns = src[5].shape
    save(multi, f"{out}/multiframe.dcm")
    del good

    with open(f"{out}/labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "Effusion"])
        for i, (name, _) in enumerate(rows):
            w.writerow([name, i % 2])
    with open(f"{out}/ct12.csv", "w", newline="") as f:
        f.write("image,Effusion\nct12.dcm,1\n")
    with open(f"{out}/compressed.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "patient_id", "Effusion"])
        for kind in ("rle", "jpegls", "jpegll", "implicit", "bigend"):
            for i, (name, pid) in enumerate(rows):
                w.writerow([f"{kind}/{name}", pid, i % 2])
    for bad in ("truncated", "nopixel", "rgb", "multiframe"):
        with open(f"{out}/bad_{bad}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image", "patient_id", "Effusion"])
            w.writerow(["mono2_8.dcm", "P1", 0])
            w.writerow([f"{bad}.dcm", "P9", 1])


def check(out, h5, window):
    import h5py

    f = h5py.File(h5, "r")
    names = [n.decode() for n in f["image_name"][:]]
    images = f["images"][:]
    bad = 0
    for i, name in enumerate(names):
        # Compressed copies (rle/x.dcm, ...) are lossless: the original x.dcm says what
        # they hold; --dicom-dir rows may name x without .dcm.
        base = os.path.basename(name)
        ds = pydicom.dcmread(os.path.join(out, base if base.endswith(".dcm") else base + ".dcm"))
        want = expected(ds, window)
        got = images[i].reshape(want.shape)
        diff = int(np.count_nonzero(got != want))
        if diff:
            bad += 1
            print(f"{name}: {diff} of {want.size} pixels differ (max |diff| "
                  f"{int(np.abs(got.astype(int) - want.astype(int)).max())})")
    print(f"checked {len(names)} images, window {window}: {bad} differ")
    return 1 if bad else 0


def check_png(h5, name, png, invert):
    """Image `name` of h5 against a PNG (inverted: 255 - PNG), every pixel."""
    import h5py

    f = h5py.File(h5, "r")
    names = [n.decode() for n in f["image_name"][:]]
    want = np.asarray(Image.open(png).convert("L"))
    if invert == "1":
        want = 255 - want
    got = f["images"][names.index(name)].reshape(want.shape)
    diff = int(np.count_nonzero(got != want))
    print(f"{name} against {os.path.basename(png)}: {diff} pixels differ")
    return 1 if diff else 0


def source_png(png_dir, k):
    print(os.path.join(png_dir, sorted(os.listdir(png_dir))[k]))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "source":
        source_png(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "png":
        sys.exit(check_png(*sys.argv[2:6]))
    else:
        sys.exit(check(sys.argv[2], sys.argv[3], sys.argv[4]))

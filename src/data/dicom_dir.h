/* dicom_dir.h - the DICOM files of a directory tree, found by name: ingest's
 * --dicom-dir.
 *
 *     th_dicom_dir d;
 *     th_dicom_dir_open(&d, "rsna/", err);     // walks the tree once
 *     th_dicom_dir_file *f = th_dicom_dir_find(&d, "0004cfab-14fd.dcm");
 *     ... f->path, f->used ...
 *     th_dicom_dir_free(&d);
 *
 * A file is DICOM by th_dicom_is_dicom (the DICM magic, or a .dcm name);
 * hidden files and directories are skipped. Its key is its base name without
 * a .dcm extension (any case), which is how the public collections name
 * their files (RSNA Pneumonia: patientId.dcm; SIIM-ACR: SOPInstanceUID.dcm,
 * nested by study and series), and a CSV's name is looked up the same way:
 * `a/b/X.dcm`, `X.dcm` and `X` all find X.dcm anywhere in the tree. Two files
 * with one key, or a tree without DICOM files, are errors.
 */
#ifndef THORAX_DATA_DICOM_DIR_H
#define THORAX_DATA_DICOM_DIR_H

#include <stddef.h>

#include "thorax/util.h"

typedef struct th_dicom_dir_file {
    char key[256];
    char *path;         /* malloc'd, under the root */
    int used;           /* for the caller: named by a CSV row */
} th_dicom_dir_file;

typedef struct th_dicom_dir {
    const char *root;
    th_dicom_dir_file *files;   /* [n], by key */
    int n, cap;
} th_dicom_dir;

int th_dicom_dir_open(th_dicom_dir *d, const char *root, th_err *err);

/* The file a CSV name stands for, or NULL. */
th_dicom_dir_file *th_dicom_dir_find(const th_dicom_dir *d, const char *name);

void th_dicom_dir_free(th_dicom_dir *d);

/* A name's key: its base name without a .dcm extension, cut to n - 1 bytes. */
void th_dicom_dir_key(const char *name, char *out, size_t n);

#endif

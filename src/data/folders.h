/* folders.h - the class-folder layout of `thorax ingest --format folders`
 * (internal to src/data): folders.c lists the folder tree as the label CSV
 * that ingest.c then reads like any other.
 */
#ifndef THORAX_FOLDERS_H
#define THORAX_FOLDERS_H

#include <stddef.h>
#include "thorax/util.h"

/* The CSV of the images under dir (see th_ingest_opts for the layout):
 * `image,<label>...[,split]`, one row per image in byte order of its path
 * relative to dir, labels in byte order of their folder names. *text is
 * malloc'd, len + 1 bytes with a NUL. Errors name the folder or file that
 * breaks the layout. */
int th_ingest_folders_csv(const char *dir, char **text, size_t *len, th_err *err);

/* ingest.c's reading of a split name (train, val, valid, validation, test,
 * any case; 0/1/2): TH_SPLIT_*, or -1. */
int th_ingest_split_of(const char *s);

#endif

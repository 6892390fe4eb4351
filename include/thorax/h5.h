/* h5.h - the HDF5 steps that Thorax's files share: the dataset file, the
 * checkpoints, cam/maps.h5.
 *
 * Part of data, the module that owns HDF5; train (checkpoints) and eval
 * (CAM maps) build on it. Each helper does one step the same way everywhere,
 * so that a string is always variable-length UTF-8, a row is always one
 * hyperslab of the leading dimension, and a file always takes its name only
 * once it is complete on disk. Creation properties are HDF5's defaults unless
 * asked otherwise, so files written through here are those written before.
 *
 * Functions return 0 (or a valid identifier) on success and -1 on failure;
 * HDF5 says no more than "failed", so those that can name a cause take a
 * th_err, and the others leave the message (naming the file and the dataset)
 * to the caller. Identifiers returned are the caller's to close.
 */
#ifndef THORAX_H5_H
#define THORAX_H5_H

#include <hdf5.h>
#include <stddef.h>
#include "thorax/error.h"

/* Switches off HDF5's printing of its error stack: library code never
 * prints, and our messages name the file and the dataset instead. */
void th_h5_quiet(void);

/* The string type of every string Thorax writes: variable-length UTF-8 (as
 * h5py writes str). */
hid_t th_h5_utf8(void);

/* Creates dataset name [dims[0], ..., dims[rank - 1]] of type under loc.
 * chunk [rank] or NULL (contiguous); shuffle and deflate (a gzip level, 0 for
 * none) apply to chunked datasets, in that order. */
hid_t th_h5_create(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims, const hsize_t *chunk,
                   int shuffle, int deflate);

/* Creates a contiguous dataset name [dims] of file_type and writes all of
 * data (mem_type) into it. */
int th_h5_write_all(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, int rank, const hsize_t *dims,
                    const void *data);

/* Reads the whole dataset name under loc into out (mem_type). */
int th_h5_read_all(hid_t loc, const char *name, hid_t mem_type, void *out);

/* Writes row i of dataset d [n, ...] (rank 1 to 4) from data laid out as one
 * row [...]. */
int th_h5_write_row(hid_t d, hid_t mem_type, hsize_t i, const void *data);

/* Reads rows [first, first + count) of dataset d [n, ...] (rank 1 to 4) into
 * out [count, ...]. */
int th_h5_read_rows(hid_t d, hid_t mem_type, hsize_t first, hsize_t count, void *out);

/* The shape of dataset d into dims [max_rank]: returns its rank, or -1 if it
 * cannot be read or has more than max_rank dimensions. */
int th_h5_dims(hid_t d, int max_rank, hsize_t *dims);

/* Writes s [n] as UTF-8 strings: dataset name of loc, or (is_attr) its
 * attribute name. */
int th_h5_write_strings(hid_t loc, const char *name, int is_attr, size_t n, const char *const *s);

/* A scalar attribute of obj: value (mem_type) stored as file_type. */
int th_h5_write_attr(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, const void *value);
int th_h5_write_attr_string(hid_t obj, const char *name, const char *value);

/* Reads attribute name of obj into value (mem_type); -1 also when absent. */
int th_h5_read_attr(hid_t obj, const char *name, hid_t mem_type, void *value);

/* --- Files that appear whole ---------------------------------------------
 * A file is written as tmp_path (path + ".tmp") and takes path's name only
 * when complete: a killed writer never leaves a half file under the real
 * name. */

/* Creates (truncating) tmp_path with the default driver. Fails naming the
 * system's reason (HDF5 would only say "unable to create file"), leaving no
 * file of its own behind. */
hid_t th_h5_create_tmp(const char *tmp_path, th_err *err);

/* Flushes and closes file (always: file is closed on return), syncs
 * tmp_path to disk and renames it onto path, so that a crash after the
 * rename cannot leave a complete-looking but empty file. On failure tmp_path
 * is left for the caller to remove. */
int th_h5_commit(hid_t file, const char *tmp_path, const char *path, th_err *err);

#endif

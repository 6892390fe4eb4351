/* inputs.h - reading fuzz inputs, shared by the replay driver and fuzz_seeds.
 *
 * The repository commits no binary files, so a binary input (a crash that
 * became a regression, the dataset generator's choice bytes) is committed as
 * `NAME.hex`: hex digits, whitespace ignored, `#` to the end of the line a
 * comment. Any other file is the input byte for byte.
 */
#ifndef THORAX_FUZZ_INPUTS_H
#define THORAX_FUZZ_INPUTS_H

#include <stddef.h>
#include <stdint.h>

/* Reads path (decoding a .hex file) into a malloc'd buffer. Returns 0, or -1
 * with a message on stderr. */
int fuzz_read_input(const char *path, uint8_t **data, size_t *len);

/* Calls fn on every input named: a file, or every regular file of a
 * directory in name order. Returns the number of inputs, or -1. */
int fuzz_each_input(const char *path, void (*fn)(const char *path, const uint8_t *data, size_t len, void *ctx),
                    void *ctx);

#endif

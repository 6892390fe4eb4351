/* arena.h - many buffers carved from one aligned allocation (private to
 * src/nn).
 *
 * The owner walks its buffers twice, in the same order, calling
 * th_arena_take for each: the first walk (th_arena_begin(a, NULL)) only
 * sums their sizes and hands out NULL; th_arena_alloc then makes one block
 * of that total; the second walk (th_arena_begin(a, block)) hands out each
 * buffer's place in it. Every buffer starts on a TH_ALIGN (64-byte)
 * boundary, so the SIMD kernels see aligned rows, and a failed allocation
 * can state the real total and its largest parts. */
#ifndef THORAX_NN_ARENA_H
#define THORAX_NN_ARENA_H

#include <stddef.h>

#include "thorax/util.h"

#define TH_ARENA_LARGEST 3

typedef struct th_arena_part {
    size_t bytes;
    const char *owner, *what;   /* "conv1", "y"; owner NULL for the model's own ("grad_a") */
} th_arena_part;

typedef struct th_arena {
    char *base;                 /* NULL during the sizing walk */
    size_t used;                /* bytes taken so far, each buffer rounded up to TH_ALIGN;
                                 * SIZE_MAX once the sum has overflowed */
    th_arena_part largest[TH_ARENA_LARGEST]; /* the sizing walk's largest buffers, largest first */
} th_arena;

/* Starts a walk: sizing (base NULL) or carving (base from th_arena_alloc). */
void th_arena_begin(th_arena *a, char *base);

/* The next buffer, count elements of elem bytes, zeroed when the block is
 * fresh: NULL while sizing, and NULL for count 0 (nothing is taken). A
 * count of SIZE_MAX stands for one that overflowed. owner and what must
 * outlive the arena's walks (a layer's name, a literal). */
void *th_arena_take(th_arena *a, size_t count, size_t elem, const char *owner, const char *what);

/* After the sizing walk: one zeroed block of a->used bytes (th_free_aligned),
 * or NULL with err saying "out of memory for <what>: <total> for <images>
 * images, <per image>; largest <buffer> <size>, ...". The out-of-memory
 * handler (thorax/util.h) is told first. */
char *th_arena_alloc(const th_arena *a, const char *what, int images, th_err *err);

#endif

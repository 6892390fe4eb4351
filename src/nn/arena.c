/* arena.c - many buffers carved from one aligned allocation (see arena.h). */
#include "arena.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "thorax/util.h"

void th_arena_begin(th_arena *a, char *base)
{
    memset(a, 0, sizeof *a);
    a->base = base;
}

/* Remembers a buffer among the largest of the sizing walk (insertion into
 * a list of TH_ARENA_LARGEST, largest first; ties keep the earlier). */
static void note_largest(th_arena *a, size_t bytes, const char *owner, const char *what)
{
    int k = TH_ARENA_LARGEST;
    while (k > 0 && a->largest[k - 1].bytes < bytes) k--;
    if (k == TH_ARENA_LARGEST) return;
    memmove(&a->largest[k + 1], &a->largest[k], sizeof a->largest[0] * (size_t)(TH_ARENA_LARGEST - 1 - k));
    a->largest[k] = (th_arena_part){bytes, owner, what};
}

void *th_arena_take(th_arena *a, size_t count, size_t elem, const char *owner, const char *what)
{
    if (count == 0) return NULL;
    /* Sizes saturate at SIZE_MAX: an impossible batch is reported, not wrapped round. */
    size_t bytes = count <= (SIZE_MAX - TH_ALIGN) / elem ? th_align_up(count * elem) : SIZE_MAX;
    size_t at = a->used;
    a->used = bytes <= SIZE_MAX - at ? at + bytes : SIZE_MAX;
    if (!a->base) {
        note_largest(a, bytes, owner, what);
        return NULL;
    }
    return a->base + at;
}

/* "2.48 GB": decimal units, three significant digits or so. */
static void format_bytes(char *buf, size_t n, size_t bytes)
{
    static const char *unit[] = {"bytes", "kB", "MB", "GB", "TB", "PB", "EB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1000 && u < 6) v /= 1000, u++;
    if (u == 0) snprintf(buf, n, "%zu bytes", bytes);
    else snprintf(buf, n, "%.*f %s", v < 10 ? 2 : v < 100 ? 1 : 0, v, unit[u]);
}

char *th_arena_alloc(const th_arena *a, const char *what, int images, th_err *err)
{
    char *block = th_alloc_aligned(a->used, what);
    if (block) return block;
    char total[64], per[32], parts[512] = "";
    if (a->used == SIZE_MAX) snprintf(total, sizeof total, "more than %zu bytes", (size_t)SIZE_MAX);
    else {
        char h[32];
        format_bytes(h, sizeof h, a->used);
        snprintf(total, sizeof total, "%s (%zu bytes)", h, a->used);
    }
    format_bytes(per, sizeof per, a->used / (size_t)(images > 0 ? images : 1));
    for (int k = 0; k < TH_ARENA_LARGEST && a->largest[k].bytes; k++) {
        const th_arena_part *p = &a->largest[k];
        char sz[32];
        format_bytes(sz, sizeof sz, p->bytes);
        size_t len = strlen(parts);
        snprintf(parts + len, sizeof parts - len, "%s%s%s%s %s", k ? ", " : "", p->owner ? p->owner : "",
                 p->owner ? "." : "", p->what, sz);
    }
    th_errf(err, "out of memory for %s: %s for %d images, %s per image; largest %s", what, total, images, per, parts);
    return NULL;
}

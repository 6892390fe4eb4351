/* shard.c - one rank's share of a split, read into memory (see thorax/data.h). */
#include "thorax/data.h"

#include <stdlib.h>
#include <string.h>

int th_shard_load(th_shard *s, th_dataset *ds, const uint8_t *split, const int *owner, int which, int rank,
                  const int *label_col, int n_labels, int images, th_err *err)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < ds->n; i++) s->n += split[i] == which && owner[i] == rank;
    size_t hw = (size_t)ds->h * ds->w;
    /* One extra element each so that an empty shard still has valid buffers. */
    s->rows = malloc(sizeof *s->rows * (size_t)(s->n + 1));
    s->img = images ? malloc(hw * (size_t)(s->n + 1)) : NULL;
    s->y = malloc((size_t)n_labels * (size_t)(s->n + 1));
    if (!s->rows || (images && !s->img) || !s->y) {
        int n = s->n;
        th_shard_free(s);
        return th_errf(err, "out of memory for %d images of %dx%d", n, ds->h, ds->w);
    }
    for (int i = 0, k = 0; i < ds->n; i++)
        if (split[i] == which && owner[i] == rank) s->rows[k++] = i;
    for (int k = 0; k < s->n; k++)
        for (int l = 0; l < n_labels; l++)
            s->y[(size_t)k * n_labels + l] = ds->labels[(size_t)s->rows[k] * ds->n_labels + label_col[l]];
    if (images && th_dataset_read_images(ds, s->rows, s->n, s->img, err)) {
        th_shard_free(s);
        return -1;
    }
    return 0;
}

void th_shard_free(th_shard *s)
{
    free(s->rows);
    free(s->img);
    free(s->y);
    memset(s, 0, sizeof *s);
}

int th_shard_gather_order(int n, const uint8_t *split, const int *owner, int which, int n_ranks, int *order)
{
    int k = 0;
    for (int r = 0; r < n_ranks; r++)
        for (int i = 0; i < n; i++)
            if (split[i] == which && owner[i] == r) order[k++] = i;
    return k;
}

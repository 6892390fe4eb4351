/* fingerprint.c - what a dataset file holds, in a few digests (see
 * thorax/data.h): its index (image names, patient IDs, labels) and every
 * pixel, so that a run can tell whether the file at its data.path is still
 * the one it trained on, and eval --data which images it trained on.
 *
 * Cost, measured: hashing bounds it at about 120 MB/s per rank (util's
 * SHA-256 on one core; reading the file is faster), so 1518 phantom images
 * of 256x256 (100 MB) take 0.83 s on one rank, 0.63 s on two sharing two
 * busy cores. Hence Kermany at 224x224 (5856 images, 294 MB) about 2.5 s on
 * one rank, NIH ChestX-ray14 at 256x256 (112120 images, 7.3 GB) about 60 s
 * on one rank and 6 s on ten: once per session (start, resume, eval, cam),
 * less than one epoch, which reads the same bytes and does far more with
 * them. Hence every pixel, not a sample: a sample would miss one replaced
 * image.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thorax/data.h"
#include "thorax/dist.h"
#include "thorax/util.h"

static void sha_strings(int n, char *const *s, char hex[65])
{
    th_sha256 h;
    th_sha256_init(&h);
    for (int i = 0; i < n; i++) th_sha256_update(&h, s[i], strlen(s[i]) + 1);
    th_sha256_final(&h, hex);
}

static void hex_to_raw(const char *hex, uint8_t raw[TH_IMAGE_DIGEST])
{
    for (int k = 0; k < TH_IMAGE_DIGEST; k++) {
        int v = 0;
        for (int j = 0; j < 2; j++) {
            char c = hex[2 * k + j];
            v = v * 16 + (c <= '9' ? c - '0' : c - 'a' + 10);
        }
        raw[k] = (uint8_t)v;
    }
}

void th_image_digest(const uint8_t *px, size_t n, uint8_t out[TH_IMAGE_DIGEST])
{
    th_sha256 h;
    char hex[65];
    th_sha256_init(&h);
    th_sha256_update(&h, px, n);
    th_sha256_final(&h, hex);
    hex_to_raw(hex, out);
}

/* This rank's rows [lo, hi): the digest of each image's pixels [H, W] into
 * out [hi - lo, TH_IMAGE_DIGEST], read in blocks of BLOCK images. */
static int hash_rows(th_dataset *ds, int lo, int hi, uint8_t *out, th_err *err)
{
    enum { BLOCK = 64 };
    size_t hw = (size_t)ds->h * (size_t)ds->w;
    int idx[BLOCK];
    uint8_t *px = hi > lo ? malloc(hw * BLOCK) : NULL;
    if (hi > lo && !px) return th_errf(err, "%s: out of memory hashing its images", ds->path);
    int rc = 0;
    for (int first = lo; !rc && first < hi; first += BLOCK) {
        int count = hi - first < BLOCK ? hi - first : BLOCK;
        for (int j = 0; j < count; j++) idx[j] = first + j;
        rc = th_dataset_read_images(ds, idx, count, px, err);
        for (int j = 0; !rc && j < count; j++) {
            th_image_digest(px + (size_t)j * hw, hw, out + (size_t)(first - lo + j) * TH_IMAGE_DIGEST);
        }
    }
    free(px);
    return rc;
}

int th_dataset_fingerprint(th_dataset *ds, th_comm comm, th_data_fingerprint *fp, uint8_t *image_digest,
                           th_err *err)
{
    int rank = th_dist_rank(comm), size = th_dist_size(comm), n = ds->n;
    memset(fp, 0, sizeof *fp);
    fp->images = n;
    sha_strings(n, ds->image_name, fp->names);
    sha_strings(n, ds->patient_id, fp->patients);
    th_sha256 h;
    th_sha256_init(&h);
    for (int k = 0; k < ds->n_labels; k++) th_sha256_update(&h, ds->label_names[k], strlen(ds->label_names[k]) + 1);
    th_sha256_update(&h, ds->labels, (size_t)n * (size_t)ds->n_labels);
    th_sha256_final(&h, fp->labels);

    /* Rank k hashes the contiguous rows [k * per, (k + 1) * per), so the
     * gather (rank order) puts the digests in row order. */
    int per = (n + size - 1) / size;
    if ((long)per * TH_IMAGE_DIGEST > INT_MAX)
        return th_errf(err, "%s: %d images are too many to fingerprint on %d ranks", ds->path, n, size);
    int lo = rank * per < n ? rank * per : n, hi = lo + per < n ? lo + per : n;
    uint8_t *mine = calloc((size_t)per + 1, TH_IMAGE_DIGEST);
    uint8_t *all = rank == 0 ? malloc((size_t)size * (size_t)(per + 1) * TH_IMAGE_DIGEST) : NULL;
    int rc = mine && (rank != 0 || all) ? 0 : th_errf(err, "%s: out of memory hashing its images", ds->path);
    if (!rc) rc = hash_rows(ds, lo, hi, mine, err);
    if (!th_dist_agree(comm, rc, err)) rc = th_dist_gather_bytes(comm, 0, mine, per * TH_IMAGE_DIGEST, all, err);
    else rc = -1;
    if (!rc && rank == 0) {
        th_sha256_init(&h);
        th_sha256_update(&h, all, (size_t)n * TH_IMAGE_DIGEST);
        th_sha256_final(&h, fp->pixels);
        if (image_digest) memcpy(image_digest, all, (size_t)n * TH_IMAGE_DIGEST);
    }
    free(mine);
    free(all);
    if (!rc) rc = th_dist_bcast(comm, 0, fp->pixels, sizeof fp->pixels, err);
    return rc;
}

void th_fingerprint_text(const th_data_fingerprint *fp, char *out, size_t cap)
{
    snprintf(out, cap, "images=%ld names=%s patients=%s labels=%s pixels=%s", fp->images, fp->names, fp->patients,
             fp->labels, fp->pixels);
}

int th_fingerprint_parse(const char *text, th_data_fingerprint *fp)
{
    memset(fp, 0, sizeof *fp);
    int used = 0;
    if (sscanf(text, "images=%ld names=%64[0-9a-f] patients=%64[0-9a-f] labels=%64[0-9a-f] pixels=%64[0-9a-f]%n",
               &fp->images, fp->names, fp->patients, fp->labels, fp->pixels, &used) != 5 ||
        text[used] != '\0')
        return -1;
    return strlen(fp->names) == 64 && strlen(fp->patients) == 64 && strlen(fp->labels) == 64 &&
                   strlen(fp->pixels) == 64
               ? 0
               : -1;
}

int th_fingerprint_match(const th_data_fingerprint *was, const th_data_fingerprint *now, const char *path,
                         th_err *err)
{
    if (was->images != now->images)
        return th_errf(err, "%s has changed since the run trained on it: it holds %ld images, the run's file held %ld",
                       path, now->images, was->images);
    char what[256];
    size_t used = 0;
    const char *part[4] = {"image names", "patient IDs", "labels", "pixels"};
    int differs[4] = {strcmp(was->names, now->names), strcmp(was->patients, now->patients),
                      strcmp(was->labels, now->labels), strcmp(was->pixels, now->pixels)};
    for (int k = 0; k < 4; k++)
        if (differs[k])
            used += (size_t)snprintf(what + used, sizeof what - used, "%s%s", used ? ", " : "", part[k]);
    if (!used) return 0;
    return th_errf(err, "%s has changed since the run trained on it: %ld images as before, but their %s differ", path,
                   now->images, what);
}

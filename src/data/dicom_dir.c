/* dicom_dir.c - the DICOM files of a directory tree, found by name (see
 * dicom_dir.h).
 */
#include "dicom_dir.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "dicom.h"

/* Collections nest their files (patient/study/series/); deeper is a loop. */
#define MAX_DEPTH 32

void th_dicom_dir_key(const char *name, char *out, size_t n)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    size_t len = strlen(base);
    if (len > 4 && !strcasecmp(base + len - 4, ".dcm")) len -= 4;
    if (len + 1 > n) len = n - 1;
    memcpy(out, base, len);
    out[len] = '\0';
}

static int add_file(th_dicom_dir *d, const char *path, th_err *err)
{
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 256;
        th_dicom_dir_file *f = realloc(d->files, sizeof *f * (size_t)cap);
        if (!f) return th_errf(err, "%s: out of memory listing DICOM files", d->root);
        d->files = f;
        d->cap = cap;
    }
    th_dicom_dir_file *f = &d->files[d->n];
    f->path = strdup(path);
    if (!f->path) return th_errf(err, "%s: out of memory listing DICOM files", d->root);
    th_dicom_dir_key(path, f->key, sizeof f->key);
    f->used = 0;
    d->n++;
    return 0;
}

static int walk(th_dicom_dir *d, const char *dir, int depth, th_err *err);

typedef struct walker {
    th_dicom_dir *d;
    int depth;
} walker;

static int walk_entry(void *ctx, const char *path, const char *name, const struct stat *st, th_err *err)
{
    (void)name;
    walker *w = ctx;
    if (S_ISDIR(st->st_mode)) return walk(w->d, path, w->depth + 1, err);
    return S_ISREG(st->st_mode) && th_dicom_is_dicom(path) ? add_file(w->d, path, err) : 0;
}

static int walk(th_dicom_dir *d, const char *dir, int depth, th_err *err)
{
    if (depth > MAX_DEPTH) return th_errf(err, "%s: directories nested deeper than %d (a loop?)", dir, MAX_DEPTH);
    walker w = {d, depth};
    return th_dir_each(dir, walk_entry, &w, err);
}

static int cmp_key(const void *a, const void *b)
{
    const th_dicom_dir_file *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->path, y->path);
}

int th_dicom_dir_open(th_dicom_dir *d, const char *root, th_err *err)
{
    memset(d, 0, sizeof *d);
    d->root = root;
    if (walk(d, root, 0, err)) {
        th_dicom_dir_free(d);
        return -1;
    }
    qsort(d->files, (size_t)d->n, sizeof *d->files, cmp_key);
    for (int i = 1; i < d->n; i++)
        if (!strcmp(d->files[i].key, d->files[i - 1].key)) {
            int rc = th_errf(err, "%s: two DICOM files named %s: %s and %s (the CSV names files by name alone)",
                             root, d->files[i].key, d->files[i - 1].path, d->files[i].path);
            th_dicom_dir_free(d);
            return rc;
        }
    if (d->n == 0) {
        th_errf(err, "%s: no DICOM files (the DICM magic, or a .dcm name) in this tree", root);
        th_dicom_dir_free(d);
        return -1;
    }
    return 0;
}

th_dicom_dir_file *th_dicom_dir_find(const th_dicom_dir *d, const char *name)
{
    th_dicom_dir_file key;
    th_dicom_dir_key(name, key.key, sizeof key.key);
    key.path = "";
    int lo = 0, hi = d->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(d->files[mid].key, key.key) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < d->n && !strcmp(d->files[lo].key, key.key) ? &d->files[lo] : NULL;
}

void th_dicom_dir_free(th_dicom_dir *d)
{
    for (int i = 0; i < d->n; i++) free(d->files[i].path);
    free(d->files);
    memset(d, 0, sizeof *d);
}

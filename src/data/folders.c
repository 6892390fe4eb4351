/* folders.c - the class-folder layout into a label CSV (see folders.h and
 * th_ingest_opts in thorax/data.h).
 *
 *   DIR/[train|val|test/]CLASS/image
 *
 * Every class folder name but a normal one is a label; an image is positive
 * for its folder's label and negative for the others, and an image of a
 * normal folder (NORMAL, No Finding, any case, `_` for the space) is
 * negative for all. The split level is there when every top-level folder is
 * a split name. The tree is listed once, as the CSV ingest already reads, so
 * labels, patients from names, bad images and --skip-bad work as they do
 * for a CSV.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "folders.h"
#include "thorax/data.h"

typedef struct {
    char **v;
    int n, cap;
} name_list;

static void list_free(name_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int list_add(name_list *l, const char *s)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, sizeof *v * (size_t)cap);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s))) return -1;
    l->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int list_find(const name_list *l, const char *s)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], s)) return i;
    return -1;
}

static int is_normal(const char *name)
{
    return !strcasecmp(name, "normal") || !strcasecmp(name, "no finding") || !strcasecmp(name, "no_finding");
}

typedef struct listing {
    name_list *dirs, *files;
    const char *expect;
} listing;

static int list_entry(void *ctx, const char *path, const char *name, const struct stat *st, th_err *err)
{
    listing *l = ctx;
    name_list *into = S_ISDIR(st->st_mode) ? l->dirs : l->files;
    if (!into) return th_errf(err, "%s: a %s where %s", path, S_ISDIR(st->st_mode) ? "folder" : "file", l->expect);
    return list_add(into, name) ? th_errf(err, "out of memory listing %s", path) : 0;
}

/* The entries of path, hidden ones (.DS_Store, .git) left out, sorted:
 * folders into dirs, other files into files (either may be NULL, and then
 * such an entry is an error saying what belongs there). */
static int list_dir(const char *path, name_list *dirs, name_list *files, const char *expect, th_err *err)
{
    listing l = {dirs, files, expect};
    int rc = th_dir_each(path, list_entry, &l, err);
    if (dirs) qsort(dirs->v, (size_t)dirs->n, sizeof *dirs->v, cmp_str);
    if (files) qsort(files->v, (size_t)files->n, sizeof *files->v, cmp_str);
    return rc;
}

/* a/b into buf (just the other when one is ""), or an error when it does not fit. */
static int join(char *buf, size_t n, const char *a, const char *b, th_err *err)
{
    int w = snprintf(buf, n, "%s%s%s", a, *a && *b ? "/" : "", b);
    return w < 0 || (size_t)w >= n ? th_errf(err, "%s/%s: path too long", a, b) : 0;
}

#define LAYOUT "(the layout is DIR/[train|val|test/]CLASS/image)"

/* The splits (top-level folders, or "" for none) and the class folders
 * under them; the labels are the class names that are not normal. */
static int read_tree(const char *dir, name_list *splits, name_list *labels, th_err *err)
{
    name_list top = {0};
    if (list_dir(dir, &top, NULL, "class or split folders are expected " LAYOUT, err)) return -1;
    int n_split = 0, rc = 0;
    for (int i = 0; i < top.n; i++) n_split += th_ingest_split_of(top.v[i]) >= 0;
    if (top.n == 0) rc = th_errf(err, "%s: no class folders " LAYOUT, dir);
    for (int i = 0; rc == 0 && n_split > 0 && i < top.n; i++)
        if (th_ingest_split_of(top.v[i]) < 0)
            rc = th_errf(err, "%s/%s: a class folder beside the split folders %s", dir, top.v[i], LAYOUT);
    if (rc == 0 && n_split == 0) {
        rc = list_add(splits, "") ? th_errf(err, "out of memory listing %s", dir) : 0;
        for (int i = 0; rc == 0 && i < top.n; i++)
            if (!is_normal(top.v[i]) && list_add(labels, top.v[i])) rc = th_errf(err, "out of memory listing %s", dir);
    }
    for (int i = 0; rc == 0 && n_split > 0 && i < top.n; i++) {
        char path[4096];
        name_list classes = {0};
        rc = join(path, sizeof path, dir, top.v[i], err);
        if (rc == 0) rc = list_dir(path, &classes, NULL, "class folders are expected " LAYOUT, err);
        if (rc == 0 && list_add(splits, top.v[i])) rc = th_errf(err, "out of memory listing %s", dir);
        for (int k = 0; rc == 0 && k < classes.n; k++)
            if (!is_normal(classes.v[k]) && list_find(labels, classes.v[k]) < 0 && list_add(labels, classes.v[k]))
                rc = th_errf(err, "out of memory listing %s", dir);
        list_free(&classes);
    }
    list_free(&top);
    if (rc == 0 && labels->n == 0) rc = th_errf(err, "%s: only normal folders, so no label " LAYOUT, dir);
    if (rc == 0) qsort(labels->v, (size_t)labels->n, sizeof *labels->v, cmp_str);
    return rc;
}

/* Every image of one split folder (dir/split, or dir without splits). */
static int add_split(const char *dir, const char *split, const name_list *labels, th_strbuf *b, int *n_images,
                     th_err *err)
{
    char path[4096];
    name_list classes = {0};
    int rc = join(path, sizeof path, dir, split, err);
    if (rc == 0) rc = list_dir(path, &classes, NULL, "class folders are expected " LAYOUT, err);
    for (int c = 0; rc == 0 && c < classes.n; c++) {
        char cpath[4096];
        name_list files = {0};
        char sub[4096];
        rc = join(cpath, sizeof cpath, path, classes.v[c], err);
        if (rc == 0) rc = join(sub, sizeof sub, split, classes.v[c], err);
        if (rc == 0) rc = list_dir(cpath, NULL, &files, "only images are expected " LAYOUT, err);
        int label = list_find(labels, classes.v[c]);
        for (int f = 0; rc == 0 && f < files.n; f++) {
            char rel[4096];
            if ((rc = join(rel, sizeof rel, sub, files.v[f], err))) break;
            th_csv_field(b, "", rel);
            for (int k = 0; k < labels->n; k++) th_strbuf_printf(b, ",%d", k == label);
            if (*split) th_strbuf_printf(b, ",%s", split);
            th_strbuf_printf(b, "\n");
            ++*n_images;
        }
        list_free(&files);
    }
    list_free(&classes);
    return rc;
}

int th_ingest_folders_csv(const char *dir, char **text, size_t *len, th_err *err)
{
    name_list splits = {0}, labels = {0};
    th_strbuf b = {0};
    int n_images = 0, rc = read_tree(dir, &splits, &labels, err);
    if (rc == 0) {
        th_strbuf_printf(&b, "image");
        for (int k = 0; k < labels.n; k++) {
            th_strbuf_printf(&b, ",");
            th_csv_field(&b, "", labels.v[k]);
        }
        th_strbuf_printf(&b, "%s\n", splits.v[0][0] ? ",split" : "");
    }
    for (int s = 0; rc == 0 && s < splits.n; s++) rc = add_split(dir, splits.v[s], &labels, &b, &n_images, err);
    if (rc == 0 && b.failed) rc = th_errf(err, "out of memory listing %s", dir);
    if (rc == 0 && n_images == 0) rc = th_errf(err, "%s: no images in the class folders " LAYOUT, dir);
    list_free(&splits);
    list_free(&labels);
    if (rc) {
        th_strbuf_free(&b);
        return rc;
    }
    *text = b.data;
    *len = b.len;
    return 0;
}

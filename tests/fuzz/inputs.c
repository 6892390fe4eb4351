/* inputs.c - see inputs.h. Test tooling: it may print. */
#include "inputs.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "thorax/util.h"

static int is_hex_name(const char *path)
{
    size_t n = strlen(path);
    return n > 4 && !strcmp(path + n - 4, ".hex");
}

static int hex_value(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int fuzz_read_input(const char *path, uint8_t **data, size_t *len)
{
    th_err err;
    size_t n;
    char *text = th_read_file(path, &n, &err);
    if (!text) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    if (!is_hex_name(path)) {
        *data = (uint8_t *)text;
        *len = n;
        return 0;
    }
    /* In place: the bytes never outrun the digits that spell them. */
    size_t out = 0;
    int hi = -1;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)text[i];
        if (c == '#') {
            while (i < n && text[i] != '\n') i++;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        int v = hex_value(c);
        if (v < 0) {
            fprintf(stderr, "%s: '%c' is not a hex digit\n", path, c);
            free(text);
            return -1;
        }
        if (hi < 0) {
            hi = v;
        } else {
            text[out++] = (char)(hi << 4 | v);
            hi = -1;
        }
    }
    if (hi >= 0) {
        fprintf(stderr, "%s: an odd number of hex digits\n", path);
        free(text);
        return -1;
    }
    *data = (uint8_t *)text;
    *len = out;
    return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int run_one(const char *path, void (*fn)(const char *, const uint8_t *, size_t, void *), void *ctx)
{
    uint8_t *data;
    size_t len;
    if (fuzz_read_input(path, &data, &len)) return -1;
    fn(path, data, len, ctx);
    free(data);
    return 1;
}

int fuzz_each_input(const char *path, void (*fn)(const char *, const uint8_t *, size_t, void *), void *ctx)
{
    struct stat st;
    if (stat(path, &st)) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) return run_one(path, fn, ctx);
    DIR *d = opendir(path);
    if (!d) {
        perror(path);
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **bigger = realloc(names, cap * sizeof *names);
            if (!bigger) break;
            names = bigger;
        }
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        if (!(names[n] = malloc(len))) break;
        snprintf(names[n++], len, "%s/%s", path, e->d_name);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, by_name);
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat fst;
        if (count >= 0 && !stat(names[i], &fst) && S_ISREG(fst.st_mode)) {
            int r = run_one(names[i], fn, ctx);
            count = r < 0 ? -1 : count + r;
        }
        free(names[i]);
    }
    free(names);
    return count;
}

/* fsutil.c - directories, atomic file writes, text buffers (see thorax/util.h). */
#include "thorax/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int th_dir_each(const char *dir, th_dir_fn fn, void *ctx, th_err *err)
{
    DIR *d = opendir(dir);
    if (!d) return th_errf(err, "cannot open the directory %s: %s", dir, strerror(errno));
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        struct stat st;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            rc = th_errf(err, "%s/%s: path too long", dir, e->d_name);
        else if (stat(path, &st)) rc = th_errf(err, "cannot read %s: %s", path, strerror(errno));
        else rc = fn(ctx, path, e->d_name, &st, err);
    }
    closedir(d);
    return rc;
}

/* ---- Staging directories (th_stage_*) ---------------------------------------- */

int th_stage_path(const char *dir, const char *suffix, char *stage, size_t cap, th_err *err)
{
    const char *slash = strrchr(dir, '/');
    int head = slash ? (int)(slash - dir + 1) : 0;
    const char *name = dir + head;
    if (!*name) return th_errf(err, "%s: no directory name to stage", dir);
    if (snprintf(stage, cap, "%.*s.%s%s%s.tmp", head, dir, name, suffix && *suffix ? "_" : "", suffix ? suffix : "") >=
        (int)cap)
        return th_errf(err, "path too long: %s", dir);
    return 0;
}

/* Removes path: a directory with what it holds (lstat: a link is removed,
 * not followed), or a file. */
static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st)) return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    DIR *d = opendir(path);
    if (d) {
        for (struct dirent *e; (e = readdir(d));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[4096];
            if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) < (int)sizeof sub) remove_tree(sub);
        }
        closedir(d);
    }
    rmdir(path);
}

void th_stage_discard(const char *stage) { remove_tree(stage); }

int th_stage_begin(const char *stage, th_err *err)
{
    remove_tree(stage);
    return th_mkdirs(stage, err);
}

/* Moves the entries of from into to, subdirectories merged. */
static int move_entries(const char *from, const char *to, th_err *err)
{
    if (th_mkdirs(to, err)) return -1;
    DIR *d = opendir(from);
    if (!d) return th_errf(err, "cannot open the directory %s: %s", from, strerror(errno));
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char src[4096], dst[4096];
        struct stat s, t;
        if (snprintf(src, sizeof src, "%s/%s", from, e->d_name) >= (int)sizeof src ||
            snprintf(dst, sizeof dst, "%s/%s", to, e->d_name) >= (int)sizeof dst)
            rc = th_errf(err, "%s/%s: path too long", to, e->d_name);
        else if (lstat(src, &s)) rc = th_errf(err, "cannot read %s: %s", src, strerror(errno));
        else if (S_ISDIR(s.st_mode) && !lstat(dst, &t) && S_ISDIR(t.st_mode)) rc = move_entries(src, dst, err);
        else if (rename(src, dst)) rc = th_errf(err, "cannot move %s to %s: %s", src, dst, strerror(errno));
    }
    closedir(d);
    return rc;
}

int th_stage_commit(const char *stage, const char *dir, th_err *err)
{
    int rc = move_entries(stage, dir, err);
    remove_tree(stage);
    return rc;
}

int th_mkdirs(const char *path, th_err *err)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return th_errf(err, "path too long: %s", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0777) && errno != EEXIST)
            return th_errf(err, "cannot create directory %s: %s", buf, strerror(errno));
        struct stat st;
        if (stat(buf, &st) || !S_ISDIR(st.st_mode)) return th_errf(err, "%s exists and is not a directory", buf);
        *p = c;
        if (!c) break;
    }
    return 0;
}

int th_tmp_path(const char *path, char *out, size_t cap, th_err *err)
{
    if (snprintf(out, cap, "%s.%ld.tmp", path, (long)getpid()) >= (int)cap)
        return th_errf(err, "path too long: %s", path);
    return 0;
}

int th_write_file_atomic(const char *path, const void *data, size_t len, th_err *err)
{
    char tmp[4096];
    if (th_tmp_path(path, tmp, sizeof tmp, err)) return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) return th_errf(err, "cannot create %s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return th_errf(err, "cannot write %s: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) || close(fd)) {
        int e = errno;
        unlink(tmp);
        return th_errf(err, "cannot write %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        return th_errf(err, "cannot rename %s to %s: %s", tmp, path, strerror(e));
    }
    return 0;
}

int th_output_not_input(const char *out, int n, const char *const *inputs, th_err *err)
{
    char tmp[4096];
    if (th_tmp_path(out, tmp, sizeof tmp, err)) return -1;
    struct stat o[2];
    int has[2] = {!stat(out, &o[0]), !stat(tmp, &o[1])};
    for (int i = 0; (has[0] || has[1]) && i < n; i++) {
        struct stat st;
        if (stat(inputs[i], &st)) continue;
        for (int j = 0; j < 2; j++)
            if (has[j] && o[j].st_dev == st.st_dev && o[j].st_ino == st.st_ino)
                return j ? th_errf(err, "refusing to write %s: its temporary file %s is the input %s", out, tmp,
                                   inputs[i])
                         : th_errf(err, "refusing to write %s: it is the input %s", out, inputs[i]);
    }
    return 0;
}

int th_child_path(char *out, size_t cap, const char *dir, const char *name, const char *what, th_err *err)
{
    if (!*name || !strcmp(name, ".") || !strcmp(name, "..") || strchr(name, '/'))
        return th_errf(err, "%s '%s' cannot name a file or directory inside %s (empty, '.', '..' or with a '/')",
                       what, name, dir);
    if (snprintf(out, cap, "%s/%s", dir, name) >= (int)cap) return th_errf(err, "path too long: %s/%s", dir, name);
    return 0;
}

int th_dir_lock_take(th_dir_lock *l, const char *dir, th_err *err)
{
    l->fd = -1;
    l->unsupported = 0;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/.lock", dir) >= (int)sizeof path) return th_errf(err, "path too long: %s", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return th_errf(err, "cannot create the lock %s: %s", path, strerror(errno));
    int refused = flock(fd, LOCK_EX | LOCK_NB), e = errno;
    /* A file system without locks (Lustre mounted without -o flock, some
     * NFS setups) must not stop every run: the caller is told instead. */
    int unsupported = refused && (e == ENOLCK || e == ENOSYS || e == EOPNOTSUPP || e == EINVAL);
    if (refused && !unsupported) {
        /* The holder wrote "pid host" once it had the lock; a holder that
         * has only just taken it may not have yet. */
        char who[256] = {0};
        ssize_t got = pread(fd, who, sizeof who - 1, 0);
        close(fd);
        if (e != EWOULDBLOCK) return th_errf(err, "cannot lock %s: %s", path, strerror(e));
        who[got > 0 ? got : 0] = '\0';
        who[strcspn(who, "\n")] = '\0';
        char host[200] = "?";
        long pid = 0;
        if (sscanf(who, "%ld %199s", &pid, host) < 1) pid = 0;
        if (pid > 0)
            return th_errf(err, "%s is in use by another thorax process (pid %ld on host %s, holding %s); wait for it "
                                "to finish, or choose another run directory",
                           dir, pid, host, path);
        return th_errf(err, "%s is in use by another thorax process (holding %s); wait for it to finish, or choose "
                            "another run directory",
                       dir, path);
    }
    char host[200] = "unknown", line[256];
    if (gethostname(host, sizeof host)) snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    int n = snprintf(line, sizeof line, "%ld %s\n", (long)getpid(), host);
    if (ftruncate(fd, 0) || pwrite(fd, line, (size_t)n, 0) != n) {
        e = errno;
        close(fd);
        return th_errf(err, "cannot write the lock %s: %s", path, strerror(e));
    }
    l->fd = fd;
    l->unsupported = unsupported;
    return 0;
}

void th_dir_unlock(th_dir_lock *l)
{
    if (l->fd >= 0) close(l->fd);
    l->fd = -1;
}

char *th_read_file(const char *path, size_t *len, th_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        th_errf(err, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        th_errf(err, "cannot read %s", path);
        return NULL;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

void th_strbuf_printf(th_strbuf *b, const char *fmt, ...)
{
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int need = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (need < 0) {
            b->failed = 1;
            return;
        }
        if (b->data && b->len + (size_t)need < b->cap) {
            b->len += (size_t)need;
            return;
        }
        size_t cap = b->cap ? b->cap : 256;
        while (cap <= b->len + (size_t)need) cap *= 2;
        char *bigger = realloc(b->data, cap);
        if (!bigger) {
            b->failed = 1;
            return;
        }
        b->data = bigger;
        b->cap = cap;
    }
}

void th_strbuf_free(th_strbuf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void th_csv_field(th_strbuf *b, const char *prefix, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        th_strbuf_printf(b, "%s%s", prefix, s);
        return;
    }
    th_strbuf_printf(b, "\"%s", prefix);
    for (; *s; s++) th_strbuf_printf(b, *s == '"' ? "\"\"" : "%c", *s);
    th_strbuf_printf(b, "\"");
}

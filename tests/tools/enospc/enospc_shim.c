/* enospc_shim.c - an LD_PRELOAD library that fakes a full disk, for
 * test_disk_full.sh where no small file system can be mounted (no
 * CAP_SYS_ADMIN, e.g. in an unprivileged container).
 *
 *   LD_PRELOAD=libenospc_shim.so THORAX_ENOSPC_DIR=DIR THORAX_ENOSPC_BYTES=N prog
 * Files under DIR may receive N bytes in all through write, pwrite and
 * pwrite64; past that a write gets what is left, then -1 with errno ENOSPC,
 * as a disk that fills up gives. Other files, and the process without both
 * variables set, are untouched.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int ready;
static long long left = -1; /* bytes DIR may still take; -1: no limit */
static char dir[PATH_MAX];
static size_t dir_len;

static void setup(void)
{
    const char *d = getenv("THORAX_ENOSPC_DIR"), *n = getenv("THORAX_ENOSPC_BYTES");
    if (d && n && realpath(d, dir)) {
        dir_len = strlen(dir);
        left = atoll(n);
    }
    ready = 1;
}

static int under_dir(int fd)
{
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0) return 0;
    target[n] = '\0';
    return !strncmp(target, dir, dir_len) && target[dir_len] == '/';
}

/* How many of count bytes the "disk" takes; -1 (ENOSPC) when it is full. */
static ssize_t room(int fd, size_t count)
{
    if (!ready) setup();
    if (left < 0 || count == 0 || !under_dir(fd)) return (ssize_t)count;
    if (left == 0) {
        errno = ENOSPC;
        return -1;
    }
    size_t k = count < (unsigned long long)left ? count : (size_t)left;
    left -= (long long)k;
    return (ssize_t)k;
}

ssize_t write(int fd, const void *buf, size_t count)
{
    static ssize_t (*real)(int, const void *, size_t);
    if (!real) real = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    ssize_t k = room(fd, count);
    return k < 0 ? -1 : real(fd, buf, (size_t)k);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset)
{
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    ssize_t k = room(fd, count);
    return k < 0 ? -1 : real(fd, buf, (size_t)k, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset)
{
    static ssize_t (*real)(int, const void *, size_t, off64_t);
    if (!real) real = (ssize_t(*)(int, const void *, size_t, off64_t))dlsym(RTLD_NEXT, "pwrite64");
    ssize_t k = room(fd, count);
    return k < 0 ? -1 : real(fd, buf, (size_t)k, offset);
}

/* test_util_names.c - SHA-256 and safe names (thorax/util.h).
 *
 * SHA-256 against the FIPS 180-4 examples ("", "abc", the two-block message,
 * a million 'a' fed in uneven pieces: every padding branch and the block
 * boundary); th_safe_name(s) against names worked by hand; th_dir_each
 * skips hidden entries, stats the rest, stops at fn's first non-zero return
 * and names a directory it cannot open.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "thorax/util.h"

static int sha_is(const void *data, size_t len, const char *want)
{
    th_sha256 s;
    char hex[65];
    th_sha256_init(&s);
    th_sha256_update(&s, data, len);
    th_sha256_final(&s, hex);
    if (strcmp(hex, want)) fprintf(stderr, "  sha256 of %zu bytes: %s, expected %s\n", len, hex, want);
    return !strcmp(hex, want);
}

static void test_sha256(void)
{
    CHECK(sha_is("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    CHECK(sha_is("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CHECK(sha_is(two, strlen(two), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    /* 55 and 56 bytes: the last length that pads within the block, the first that needs another. */
    char a[1000];
    memset(a, 'a', sizeof a);
    CHECK(sha_is(a, 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"));
    CHECK(sha_is(a, 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"));
    th_sha256 s;
    char hex[65];
    th_sha256_init(&s);
    for (size_t done = 0, piece = 1; done < 1000000; piece = piece % 997 + 1) {
        size_t take = piece < 1000000 - done ? piece : 1000000 - done;
        th_sha256_update(&s, a, take);
        done += take;
    }
    th_sha256_final(&s, hex);
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
}

static void test_safe_names(void)
{
    char out[TH_SAFE_NAME_MAX];
    CHECK(th_safe_name("Pleural Thickening", out, sizeof out) == 0 && !strcmp(out, "Pleural_Thickening"));
    CHECK(th_safe_name("", out, sizeof out) == 0 && !strcmp(out, "_"));
    CHECK(th_safe_name("a/b.c-d", out, 4) == -1);
    const char *names[3] = {"View Position", "View/Position", "Age"};
    char safe[3][TH_SAFE_NAME_MAX];
    th_err err;
    CHECK(th_safe_names(3, names, safe, &err) == 0);
    CHECK(!strcmp(safe[0], "View_Position") && !strcmp(safe[1], "View_Position_1") && !strcmp(safe[2], "Age"));
}

typedef struct seen {
    int files, dirs, stop_at;
} seen;

static int count_entry(void *ctx, const char *path, const char *name, const struct stat *st, th_err *err)
{
    seen *s = ctx;
    CHECK(name[0] != '.' && strstr(path, name) != NULL);
    if (S_ISDIR(st->st_mode)) s->dirs++;
    else s->files++;
    if (s->stop_at && s->files + s->dirs == s->stop_at) return th_errf(err, "stopped at %s", name);
    return 0;
}

static void test_dir_each(void)
{
    char dir[] = "/tmp/thorax-dir-XXXXXX", path[128];
    if (!CHECK(mkdtemp(dir) != NULL)) return;
    const char *files[] = {"a.png", "b.dcm", ".DS_Store"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "w");
        if (f) fclose(f);
    }
    snprintf(path, sizeof path, "%s/sub", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/.git", dir);
    mkdir(path, 0700);
    th_err err = {{0}};
    seen s = {0};
    CHECK(th_dir_each(dir, count_entry, &s, &err) == 0);
    CHECK(s.files == 2 && s.dirs == 1);
    seen once = {.stop_at = 1};
    CHECK(th_dir_each(dir, count_entry, &once, &err) == -1 && strstr(err.msg, "stopped at"));
    CHECK(once.files + once.dirs == 1);
    snprintf(path, sizeof path, "%s/missing", dir);
    CHECK(th_dir_each(path, count_entry, &s, &err) == -1 && strstr(err.msg, "cannot open the directory") &&
          strstr(err.msg, "missing"));
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/sub", dir);
    rmdir(path);
    snprintf(path, sizeof path, "%s/.git", dir);
    rmdir(path);
    rmdir(dir);
}

int main(void)
{
    test_sha256();
    test_safe_names();
    test_dir_each();
    return th_test_summary("util_names");
}

/* test_util_files.c - the output guard of thorax/util.h. th_output_not_input:
 * an output is refused when it, or the temporary name th_write_file_atomic
 * would use, is one of the inputs however spelt (another path, a symbolic
 * link); an output that does not exist yet, or another file, is allowed; the
 * error names the output and the input. th_tmp_path carries the pid;
 * th_child_path refuses names that leave their directory; th_dir_lock_take
 * refuses a second holder, naming the first's pid and host; th_csv_field
 * quotes as RFC 4180 says.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "thorax/util.h"

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f) fclose(f);
}

int main(void)
{
    char dir[] = "/tmp/thorax-out-XXXXXX", a[128], b[128], other[128], link[128], dotted[160], fresh[128];
    if (!CHECK(mkdtemp(dir) != NULL)) return th_test_summary("util_files");
    snprintf(a, sizeof a, "%s/a.png", dir);
    snprintf(b, sizeof b, "%s/b.png.%ld.tmp", dir, (long)getpid());
    snprintf(other, sizeof other, "%s/out.csv", dir);
    snprintf(link, sizeof link, "%s/link.csv", dir);
    snprintf(dotted, sizeof dotted, "%s/./a.png", dir);
    snprintf(fresh, sizeof fresh, "%s/new.csv", dir);
    touch(a);
    touch(b);
    touch(other);
    CHECK(symlink("a.png", link) == 0);
    const char *inputs[2] = {a, b};
    th_err err = {{0}};
    CHECK(th_output_not_input(fresh, 2, inputs, &err) == 0);
    CHECK(th_output_not_input(other, 2, inputs, &err) == 0);
    CHECK(th_output_not_input(other, 0, NULL, &err) == 0);
    CHECK(th_output_not_input(dotted, 2, inputs, &err) == -1);
    CHECK(strstr(err.msg, dotted) && strstr(err.msg, a) && strstr(err.msg, "refusing"));
    CHECK(th_output_not_input(link, 2, inputs, &err) == -1);
    /* b.png.<pid>.tmp is this process's temporary file of b.png. */
    snprintf(fresh, sizeof fresh, "%s/b.png", dir);
    CHECK(th_output_not_input(fresh, 2, inputs, &err) == -1);
    CHECK(strstr(err.msg, "temporary") && strstr(err.msg, b));
    /* An input that does not exist is no file an output can be. */
    const char *missing[1] = {"/nonexistent/x.png"};
    CHECK(th_output_not_input(other, 1, missing, &err) == 0);

    char tmp[200];
    CHECK(th_tmp_path("x/y.csv", tmp, sizeof tmp, &err) == 0);
    char want[64];
    snprintf(want, sizeof want, "x/y.csv.%ld.tmp", (long)getpid());
    CHECK(strcmp(tmp, want) == 0);
    CHECK(th_tmp_path("x/y.csv", tmp, 8, &err) == -1);

    char child[256];
    CHECK(th_child_path(child, sizeof child, "runs", "a b:c#d", "the run name", &err) == 0);
    CHECK(strcmp(child, "runs/a b:c#d") == 0);
    const char *escaping[] = {"", ".", "..", "../x", "a/b"};
    for (int i = 0; i < 5; i++) {
        CHECK(th_child_path(child, sizeof child, "runs", escaping[i], "the run name", &err) == -1);
        CHECK(strstr(err.msg, "the run name") && strstr(err.msg, "runs"));
    }

    /* The lock is per open file: a second taker, even in this process, is
     * refused and told the holder's pid and host; freed, it can be taken. */
    th_dir_lock l1, l2;
    CHECK(th_dir_lock_take(&l1, dir, &err) == 0);
    CHECK(th_dir_lock_take(&l2, dir, &err) == -1 && l2.fd == -1);
    char host[256] = "";
    gethostname(host, sizeof host);
    snprintf(want, sizeof want, "pid %ld on host ", (long)getpid());
    CHECK(strstr(err.msg, want) && strstr(err.msg, host) && strstr(err.msg, dir));
    th_dir_unlock(&l1);
    CHECK(th_dir_lock_take(&l2, dir, &err) == 0);
    th_dir_unlock(&l2);
    th_dir_unlock(&l2);
    CHECK(th_dir_lock_take(&l1, "/nonexistent/dir", &err) == -1 && strstr(err.msg, "/nonexistent/dir/.lock"));

    th_strbuf sb = {0};
    th_csv_field(&sb, "p_", "plain");
    th_strbuf_printf(&sb, ",");
    th_csv_field(&sb, "", "a,b \"c\"");
    th_strbuf_printf(&sb, ",");
    th_csv_field(&sb, "", "two\nlines");
    CHECK(sb.data && strcmp(sb.data, "p_plain,\"a,b \"\"c\"\"\",\"two\nlines\"") == 0);
    th_strbuf_free(&sb);

    char lockfile[160];
    snprintf(lockfile, sizeof lockfile, "%s/.lock", dir);
    unlink(lockfile);
    unlink(link);
    unlink(a);
    unlink(b);
    unlink(other);
    rmdir(dir);
    return th_test_summary("util_files");
}

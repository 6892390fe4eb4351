/* test_util_files.c - the output guard of thorax/util.h. th_output_not_input:
 * an output is refused when it, or the temporary name th_write_file_atomic
 * would use, is one of the inputs however spelt (another path, a symbolic
 * link); an output that does not exist yet, or another file, is allowed; the
 * error names the output and the input. th_tmp_path carries the pid;
 * th_child_path refuses names that leave their directory; th_dir_lock_take
 * refuses a second holder, naming the first's pid and host; th_csv_field
 * quotes as RFC 4180 says. th_stage_*: a stage's files
 * replace those of the same name in the final directory, subdirectories
 * merge, other files stay; a discarded stage goes with what it holds, a
 * link's target untouched.
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

static void put(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* The file's first line, or "" if it cannot be read. */
static const char *get(const char *dir, const char *name)
{
    static char line[64];
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    line[0] = '\0';
    if (f) {
        if (!fgets(line, sizeof line, f)) line[0] = '\0';
        fclose(f);
    }
    return line;
}

static void test_stage(const char *top)
{
    char res[256], stage[300], sub[300], stage_sub[320], outside[300], link[340];
    th_err err = {{0}};
    snprintf(res, sizeof res, "%s/res", top);
    CHECK(th_stage_path(res, NULL, stage, sizeof stage, &err) == 0);
    snprintf(sub, sizeof sub, "%s/.res.tmp", top);
    CHECK(strcmp(stage, sub) == 0);
    CHECK(th_stage_path(res, "Effusion", stage, sizeof stage, &err) == 0);
    snprintf(sub, sizeof sub, "%s/.res_Effusion.tmp", top);
    CHECK(strcmp(stage, sub) == 0);
    CHECK(th_stage_path(res, NULL, stage, sizeof stage, &err) == 0);

    /* The previous set: a.txt, keep.txt and sub/x. */
    snprintf(sub, sizeof sub, "%s/sub", res);
    CHECK(th_mkdirs(sub, &err) == 0);
    put(res, "a.txt", "old");
    put(res, "keep.txt", "kept");
    put(sub, "x", "old");
    /* A stage a killed run left is cleared by the next. */
    CHECK(th_mkdirs(stage, &err) == 0);
    put(stage, "stale.txt", "stale");
    CHECK(th_stage_begin(stage, &err) == 0);
    CHECK(strcmp(get(stage, "stale.txt"), "") == 0);
    snprintf(stage_sub, sizeof stage_sub, "%s/sub", stage);
    CHECK(th_mkdirs(stage_sub, &err) == 0);
    put(stage, "a.txt", "new");
    put(stage_sub, "x", "new");
    put(stage_sub, "y", "new");
    /* Nothing of the new set shows before the commit. */
    CHECK(strcmp(get(res, "a.txt"), "old") == 0);
    CHECK(th_stage_commit(stage, res, &err) == 0);
    CHECK(strcmp(get(res, "a.txt"), "new") == 0);
    CHECK(strcmp(get(res, "keep.txt"), "kept") == 0);
    CHECK(strcmp(get(sub, "x"), "new") == 0);
    CHECK(strcmp(get(sub, "y"), "new") == 0);
    CHECK(access(stage, F_OK) != 0);

    /* Discarded: the stage and its files go, a link's target stays. */
    snprintf(outside, sizeof outside, "%s/outside.txt", top);
    put(top, "outside.txt", "mine");
    CHECK(th_stage_begin(stage, &err) == 0);
    put(stage, "a.txt", "newer");
    snprintf(link, sizeof link, "%s/link", stage);
    CHECK(symlink(outside, link) == 0);
    th_stage_discard(stage);
    CHECK(access(stage, F_OK) != 0);
    CHECK(strcmp(get(top, "outside.txt"), "mine") == 0);
    CHECK(strcmp(get(res, "a.txt"), "new") == 0);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/res' '%s'", top, outside);
    CHECK(system(cmd) == 0);
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
    test_stage(dir);
    rmdir(dir);
    return th_test_summary("util_files");
}

/* test_util_files.c - th_output_not_input (thorax/util.h): an output is
 * refused when it, or the temporary name th_write_file_atomic would use, is
 * one of the inputs however spelt (another path, a symbolic link); an output
 * that does not exist yet, or another file, is allowed; the error names the
 * output and the input.
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
    snprintf(b, sizeof b, "%s/b.png.tmp", dir);
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
    /* b.png.tmp is the temporary file of b.png. */
    snprintf(fresh, sizeof fresh, "%s/b.png", dir);
    CHECK(th_output_not_input(fresh, 2, inputs, &err) == -1);
    CHECK(strstr(err.msg, "temporary") && strstr(err.msg, b));
    /* An input that does not exist is no file an output can be. */
    const char *missing[1] = {"/nonexistent/x.png"};
    CHECK(th_output_not_input(other, 1, missing, &err) == 0);
    unlink(link);
    unlink(a);
    unlink(b);
    unlink(other);
    rmdir(dir);
    return th_test_summary("util_files");
}

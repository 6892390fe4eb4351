/* runlock.c - the run directory's lock for the commands that write one
 * (train, eval, cam), see cli.h. */
#include "cli.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "thorax/dist.h"
#include "thorax/util.h"

/* The first directory of dir's path that does not exist (what th_mkdirs
 * would create first) into made, or "" when dir exists. */
static void first_missing(const char *dir, char *made, size_t cap)
{
    struct stat st;
    made[0] = '\0';
    if (stat(dir, &st) == 0 || snprintf(made, cap, "%s", dir) >= (int)cap) {
        made[0] = '\0';
        return;
    }
    for (char *slash = made + 1; (slash = strchr(slash, '/')); slash++) {
        *slash = '\0';
        int exists = stat(made, &st) == 0;
        *slash = '/';
        if (!exists) {
            *slash = '\0';
            return;
        }
    }
}

int cli_lock_run(cli_run_lock *l, const char *dir, int make, th_err *err)
{
    l->lock.fd = -1;
    l->made[0] = '\0';
    snprintf(l->dir, sizeof l->dir, "%s", dir);
    int rc = 0;
    struct stat st;
    /* A run directory that is not there has nothing to protect: the command
     * reports it missing in its own words. */
    if (th_dist_rank(th_comm_world()) == 0 && (make || stat(dir, &st) == 0)) {
        if (make) first_missing(dir, l->made, sizeof l->made);
        rc = (make && th_mkdirs(dir, err)) || th_dir_lock_take(&l->lock, dir, err) ? -1 : 0;
        if (!rc && l->lock.unsupported)
            cli_error("warning: the file system of %s has no file locks: nothing stops a second job from writing "
                      "this run at the same time",
                      dir);
    }
    return th_dist_agree(th_comm_world(), rc, err);
}

/* Whether dir holds nothing but its .lock. */
static int only_lock(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int other = 0;
    for (struct dirent *e; !other && (e = readdir(d));)
        other = strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, ".lock");
    closedir(d);
    return !other;
}

void cli_unlock_run(cli_run_lock *l, int failed)
{
    /* A run that failed before writing anything leaves no trace: the
     * directories made for its lock go again (rmdir stops at any that holds
     * something). */
    if (failed && l->lock.fd >= 0 && l->made[0] && only_lock(l->dir)) {
        char path[sizeof l->dir + 8];
        snprintf(path, sizeof path, "%s/.lock", l->dir);
        unlink(path);
        for (size_t n = strlen(l->dir); rmdir(l->dir) == 0 && strlen(l->dir) > strlen(l->made);) {
            while (n > 0 && l->dir[n - 1] != '/') n--;
            while (n > 0 && l->dir[n - 1] == '/') n--;
            l->dir[n] = '\0';
        }
    }
    th_dir_unlock(&l->lock);
}

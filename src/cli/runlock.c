/* runlock.c - the run directory's lock for the commands that write one
 * (train, eval, cam), see cli.h. */
#include "cli.h"

#include <sys/stat.h>

#include "thorax/dist.h"
#include "thorax/util.h"

int cli_lock_run(th_dir_lock *l, const char *dir, int make, th_err *err)
{
    l->fd = -1;
    int rc = 0;
    struct stat st;
    /* A run directory that is not there has nothing to protect: the command
     * reports it missing in its own words. */
    if (th_dist_rank(th_comm_world()) == 0 && (make || stat(dir, &st) == 0))
        rc = (make && th_mkdirs(dir, err)) || th_dir_lock_take(l, dir, err) ? -1 : 0;
    return th_dist_agree(th_comm_world(), rc, err);
}

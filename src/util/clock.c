/* clock.c - the library's one clock (see thorax/util.h). */
#include "thorax/util.h"

#include <time.h>

double th_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

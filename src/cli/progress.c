/* progress.c - the progress line of a long serial command (ingest, phantom)
 * on stderr: rewritten in place on a terminal at most ten times a second, a
 * plain line per quarter of the work in a log file. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static double seconds_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + 1e-9 * (double)(now.tv_nsec - t0->tv_nsec);
}

void cli_progress_start(cli_progress *p, const char *what)
{
    *p = (cli_progress){.what = what, .tty = isatty(STDERR_FILENO), .next_pct = 25};
    clock_gettime(CLOCK_MONOTONIC, &p->t0);
}

void cli_progress_update(void *ctx, int done, int total)
{
    cli_progress *p = ctx;
    if (total <= 0) return;
    int pct = (int)(100.0 * done / total);
    double elapsed = seconds_since(&p->t0);
    if (done < total && (p->tty ? elapsed - p->last < 0.1 : pct < p->next_pct)) return;
    p->last = elapsed;
    double rate = elapsed > 0 ? done / elapsed : 0;
    char eta[32];
    cli_format_duration(rate > 0 ? (total - done) / rate : 0, eta, sizeof eta);
    fprintf(stderr, "%s%s: %d/%d images (%d%%), %.0f img/s, ETA %s%s", p->tty ? "\r" : "", p->what, done, total, pct,
            rate, eta, p->tty ? (done == total ? "   \n" : "   ") : "\n");
    fflush(stderr);
    p->next_pct = (pct / 25 + 1) * 25;
    p->shown = done < total;
}

void cli_progress_abort(cli_progress *p)
{
    if (p->tty && p->shown) fputc('\n', stderr);
}

double cli_progress_seconds(const cli_progress *p) { return seconds_since(&p->t0); }

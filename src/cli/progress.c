/* progress.c - the progress line of a long command (ingest, phantom, the
 * evaluation phase): rewritten in place on a terminal at most ten times a
 * second, else a log line (log.c) per quarter of the work, and at least one
 * every ten seconds. */
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
    /* A JSON log is lines, never a rewritten one. */
    *p = (cli_progress){.what = what,
                        .f = stderr,
                        .tty = isatty(STDERR_FILENO) && cli_log_get_format() == CLI_LOG_PLAIN,
                        .next_pct = 25};
    clock_gettime(CLOCK_MONOTONIC, &p->t0);
}

void cli_progress_update(void *ctx, int done, int total)
{
    cli_progress *p = ctx;
    if (total <= 0) return;
    int pct = (int)(100.0 * done / total);
    double elapsed = seconds_since(&p->t0);
    if (done < total && (p->tty ? elapsed - p->last < 0.1 : pct < p->next_pct && elapsed - p->last < 10.0)) return;
    p->last = elapsed;
    double rate = elapsed > 0 ? done / elapsed : 0, eta_s = rate > 0 ? (total - done) / rate : 0;
    char eta[32];
    cli_format_duration(eta_s, eta, sizeof eta);
    if (p->tty) {
        fprintf(p->f, "\r%s: %d/%d images (%d%%), %.0f img/s, ETA %s%s", p->what, done, total, pct, rate, eta,
                done == total ? "   \n" : "   ");
        fflush(p->f);
    } else {
        cli_field fields[] = {{"done", done}, {"total", total}, {"img_per_s", rate}, {"eta_s", eta_s}};
        cli_log_at(p->f, "progress", fields, 4, "%s: %d/%d images (%d%%), %.0f img/s, ETA %s", p->what, done, total,
                   pct, rate, eta);
    }
    if (pct >= p->next_pct) p->next_pct = (pct / 25 + 1) * 25;
    p->shown = p->tty && done < total;
}

void cli_progress_abort(cli_progress *p)
{
    if (p->shown) fputc('\n', p->f);
}

double cli_progress_seconds(const cli_progress *p) { return seconds_since(&p->t0); }

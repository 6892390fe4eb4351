/* cli.h - the thorax subcommands. Only src/cli prints and exits.
 *
 * Each command takes its own argv (argv[0] is the command name), prints its
 * own --help, and returns the process exit status:
 *   0 success, 1 runtime failure (I/O, numerical), 2 usage or config error,
 *   75 stopped by a signal after writing a checkpoint to resume from.
 */
#ifndef THORAX_CLI_H
#define THORAX_CLI_H

#include <stdio.h>
#include <time.h>

/* 75 is EX_TEMPFAIL of sysexits.h: "try again later", which is what a
 * preempted run with a checkpoint is. */
enum { TH_EXIT_OK = 0, TH_EXIT_FAIL = 1, TH_EXIT_USAGE = 2, TH_EXIT_PREEMPTED = 75 };

int cmd_ingest(int argc, char **argv);
int cmd_phantom(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_cam(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_split(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_lrfind(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_config(int argc, char **argv);

struct th_eval_result;
/* The one-line summary of an evaluation. */
void cli_print_eval(const struct th_eval_result *r);

/* "thorax: <msg>" on stderr. Before MPI_Init only the launcher's rank 0
 * speaks (a usage error is the same on every rank); once MPI is up the
 * caller chooses (rank 0 prints the agreed error). */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* True if argv has -h or --help. */
int cli_wants_help(int argc, char **argv);

/* The --set options of commands that read a config. */
#define CLI_MAX_SETS 64
typedef struct {
    const char *v[CLI_MAX_SETS];
    int n;
} cli_sets;

/* If argv[*i] is `--set key=value` or `--set=key=value`, records it, advances
 * *i past it and returns 1; returns 0 for any other argument and -1 (after
 * printing why) for a malformed or excess --set. */
int cli_take_set(int argc, char **argv, int *i, cli_sets *sets);

/* The progress line of a long serial command on stderr. */
typedef struct cli_progress {
    const char *what;           /* "ingest", "phantom" */
    struct timespec t0;
    double last;
    int tty, next_pct, shown;
} cli_progress;

void cli_progress_start(cli_progress *p, const char *what);
/* A progress callback (ctx is the cli_progress). */
void cli_progress_update(void *ctx, int done, int total);
/* Ends a progress line left open on a terminal, before an error message. */
void cli_progress_abort(cli_progress *p);
double cli_progress_seconds(const cli_progress *p);

/* Parses a whole non-negative integer or a finite double; returns -1 on junk. */
int cli_parse_int(const char *s, long lo, long hi, long *out);
int cli_parse_double(const char *s, double *out);

/* Formats seconds as "1h02m", "3m05s" or "42s". */
void cli_format_duration(double seconds, char *buf, size_t n);

#endif

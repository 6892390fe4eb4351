/* cli.h - the thorax subcommands. Only src/cli prints and exits.
 *
 * Each command takes its own argv (argv[0] is the command name), prints its
 * own --help, and returns the process exit status:
 *   0 success, 1 runtime failure (I/O, numerical), 2 usage or config error,
 *   75 stopped by a signal after writing a checkpoint to resume from.
 */
#ifndef THORAX_CLI_H
#define THORAX_CLI_H

#include <stdarg.h>
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

#include "thorax/util.h"
/* Collective: rank 0 takes dir's lock (th_dir_lock_take, making dir first
 * when make), held by a writer of a run directory (train, eval, cam) from
 * before its first decision to its end, so that a second job on the same
 * run is refused (naming the holder's pid and host) instead of mixing its
 * files with the first's. Every rank returns the agreed result. */
typedef struct cli_run_lock {
    th_dir_lock lock;
    char dir[4096];
    char made[4096];   /* rank 0: the first directory cli_lock_run made, or "" */
} cli_run_lock;
int cli_lock_run(cli_run_lock *l, const char *dir, int make, th_err *err);
/* Frees the lock; when failed, also removes what cli_lock_run made if the
 * run left nothing else in it, so a failed job leaves no empty run behind. */
void cli_unlock_run(cli_run_lock *l, int failed);

/* "thorax: <msg>" on stderr. Before MPI_Init only the launcher's rank 0
 * speaks (a usage error is the same on every rank); once MPI is up the
 * caller chooses (rank 0 prints the agreed error). */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- Options: one parser for every command (opts.c) ----------------------
 *
 *   static const cli_opt opts[] = {{OPT_SPLIT, "split", "a value"}, {OPT_PATIENT, "patient", NULL}, {0}};
 *   cli_parser p;
 *   cli_parser_init(&p, "eval", argc, argv, opts);
 *   for (int id; (id = cli_next(&p, &v)) != CLI_END;)
 *       switch (id) { case CLI_HELP: ...; case CLI_BAD: return TH_EXIT_USAGE; case CLI_ARG: operand v; ... }
 *
 * --name value and --name=value are alike, `--` ends the options, a missing
 * value, a value given to a flag and an unknown option (with a did-you-mean)
 * are errors said by the parser (CLI_BAD), -h/--help anywhere is CLI_HELP
 * first, and --log-format is taken by the parser for every command. */
typedef struct cli_opt {
    int id;            /* what cli_next returns for it, > 0 */
    const char *name;  /* without the dashes: "checkpoint" */
    const char *needs; /* NULL for a flag; else what its value is, for "--NAME needs <needs>" */
} cli_opt;

enum { CLI_END = 0, CLI_ARG = -1, CLI_HELP = -2, CLI_BAD = -3, CLI_LOG_FORMAT = -4 };

typedef struct cli_parser {
    const char *cmd;           /* "eval", for messages */
    int argc;
    char **argv;
    const cli_opt *opts;       /* ended by an entry whose name is NULL */
    int i, operands_only, help;
} cli_parser;

void cli_parser_init(cli_parser *p, const char *cmd, int argc, char **argv, const cli_opt *opts);
/* The next option's id with *value its value (NULL for a flag), CLI_ARG with
 * *value an operand, CLI_HELP, CLI_BAD after saying why, or CLI_END. */
int cli_next(cli_parser *p, const char **value);

/* The --set options of commands that read a config. */
#define CLI_MAX_SETS 64
typedef struct {
    const char *v[CLI_MAX_SETS];
    int n;
} cli_sets;

/* Records one --set value; -1 (after saying why) when it is not key=value
 * or one too many. */
int cli_sets_add(cli_sets *sets, const char *value);

/* ---- Log lines (log.c) ----------------------------------------------------
 * Progress and information lines of the commands, each prefixed with the UTC
 * time and the rank ("2026-12-07T23:10:04Z rank0 ...") or, with
 * --log-format json, one JSON object per line: time, level, rank, msg and
 * the line's fields (epoch, step, loss, img_per_s, eta_s ...). Results meant
 * to be read as tables or RESULT lines are printed as they are. */
typedef enum { CLI_LOG_PLAIN, CLI_LOG_JSON } cli_log_format;
/* "plain" or "json"; -1 for anything else. */
int cli_log_set_format(const char *name);
cli_log_format cli_log_get_format(void);

typedef struct {
    const char *key;
    double value;   /* NaN is written as null */
} cli_field;

/* level: "info", "progress", "warning". */
void cli_log_at(FILE *f, const char *level, const cli_field *fields, int n_fields, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void cli_vlog_at(FILE *f, const char *level, const cli_field *fields, int n_fields, const char *fmt, va_list ap);
/* An info line on stdout. */
void cli_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The progress line of a long command, on stderr unless f is set after
 * cli_progress_start (set tty to 0 under mpirun, whose ranks may get a pty). */
typedef struct cli_progress {
    const char *what;           /* "ingest", "phantom" */
    FILE *f;
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

/* log.c - the log lines of the commands (cli.h): progress and information,
 * stamped with the UTC time and the rank, as plain text or one JSON object
 * per line.
 *
 *   plain  2026-12-07T23:10:04Z rank0 epoch 1/3  step 4/10  loss 0.6931 ...
 *   json   {"time":"2026-12-07T23:10:04Z","level":"info","rank":0,
 *           "msg":"epoch 1/3 ...","epoch":1,"step":4,"loss":0.6931,...}
 *
 * The format is the process's one setting of the CLI: --log-format (before
 * or after the command) or THORAX_LOG_FORMAT, plain when neither says.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "thorax/dist.h"
#include "thorax/util.h"

static cli_log_format log_format = CLI_LOG_PLAIN;

int cli_log_set_format(const char *name)
{
    if (!strcmp(name, "plain")) log_format = CLI_LOG_PLAIN;
    else if (!strcmp(name, "json")) log_format = CLI_LOG_JSON;
    else return -1;
    return 0;
}

cli_log_format cli_log_get_format(void) { return log_format; }

/* Before MPI starts, the launcher's rank (0 outside mpirun). */
static int my_rank(void)
{
    if (th_dist_started()) return th_dist_rank(th_comm_world());
    int r = th_dist_launcher_rank();
    return r > 0 ? r : 0;
}

static void timestamp(char *buf, size_t n)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void cli_vlog_at(FILE *f, const char *level, const cli_field *fields, int n_fields, const char *fmt, va_list ap)
{
    char msg[2048], when[32];
    vsnprintf(msg, sizeof msg, fmt, ap);
    timestamp(when, sizeof when);
    if (log_format == CLI_LOG_PLAIN) {
        fprintf(f, "%s rank%d %s\n", when, my_rank(), msg);
    } else {
        th_strbuf b = {0};
        th_strbuf_printf(&b, "{\"time\":\"%s\",\"level\":", when);
        th_json_string(&b, level);
        th_strbuf_printf(&b, ",\"rank\":%d,\"msg\":", my_rank());
        th_json_string(&b, msg);
        for (int i = 0; i < n_fields; i++) {
            th_strbuf_printf(&b, ",");
            th_json_string(&b, fields[i].key);
            th_strbuf_printf(&b, ":");
            th_json_number(&b, fields[i].value, 0);
        }
        th_strbuf_printf(&b, "}");
        /* A line that could not be built whole is still one JSON object. */
        if (b.failed) fprintf(f, "{\"time\":\"%s\",\"level\":\"error\",\"msg\":\"out of memory\"}\n", when);
        else fprintf(f, "%s\n", b.data);
        th_strbuf_free(&b);
    }
    fflush(f);
}

void cli_log_at(FILE *f, const char *level, const cli_field *fields, int n_fields, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_vlog_at(f, level, fields, n_fields, fmt, ap);
    va_end(ap);
}

void cli_log(const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_vlog_at(stdout, level, NULL, 0, fmt, ap);
    va_end(ap);
}

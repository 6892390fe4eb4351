/* opts.c - the one option parser of the commands (cli.h): a table of long
 * options, read like getopt_long but with thorax's messages.
 *
 * Rules, the same for every command:
 *   --name value and --name=value are one thing;
 *   a flag given a value (--patient=1) is an error;
 *   a missing value names the option ("--checkpoint needs a value");
 *   `--` ends the options: every later argument is an operand, even
 *   `--weird.yaml`;
 *   an unknown option is called unknown, with the nearest known one when it
 *   looks like a typo of it;
 *   -h/--help anywhere before `--` asks for the command's help, before any
 *   other argument is judged;
 *   --log-format plain|json is known to every command.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "thorax/config.h"

enum { MAX_OPTS = 64 };

static int is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

/* The option named by the part of arg after "--" up to '=' (or its end). */
static const cli_opt *find(const cli_opt *opts, const char *name, size_t len)
{
    for (const cli_opt *o = opts; o->name; o++)
        if (strlen(o->name) == len && !strncmp(o->name, name, len)) return o;
    return NULL;
}

static const cli_opt global_opts[] = {{CLI_LOG_FORMAT, "log-format", "plain or json"}, {0, NULL, NULL}};

/* A command's option or a global one. */
static const cli_opt *lookup(const cli_parser *p, const char *name, size_t len)
{
    const cli_opt *o = find(p->opts, name, len);
    return o ? o : find(global_opts, name, len);
}

void cli_parser_init(cli_parser *p, const char *cmd, int argc, char **argv, const cli_opt *opts)
{
    *p = (cli_parser){.cmd = cmd, .argc = argc, .argv = argv, .opts = opts, .i = 1};
    /* Help wins over every other argument, as `cmd --bogus --help` asks for
     * help, not an error; a value of an option is not a request for it. */
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
        const char *a = argv[i];
        if (is_help(a)) {
            p->help = 1;
            return;
        }
        if (!strncmp(a, "--", 2) && !strchr(a, '=')) {
            const cli_opt *o = lookup(p, a + 2, strlen(a + 2));
            if (o && o->needs) i++;
        }
    }
}

/* "unknown option '--chekpoint' (did you mean '--checkpoint'?)". */
static int unknown(const cli_parser *p, const char *arg)
{
    const char *words[MAX_OPTS + 3];
    int n = 0;
    for (const cli_opt *o = p->opts; o->name && n < MAX_OPTS; o++) words[n++] = o->name;
    words[n++] = global_opts[0].name;
    words[n++] = "help";
    words[n] = NULL;
    char name[128];
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    snprintf(name, sizeof name, "%.*s", (int)len, arg);
    const char *near = !strncmp(name, "--", 2) ? th_config_nearest(name + 2, words) : NULL;
    if (near)
        cli_error("%s: unknown option '%s' (did you mean '--%s'?)", p->cmd, name, near);
    else
        cli_error("%s: unknown option '%s' (see thorax %s --help)", p->cmd, name, p->cmd);
    return CLI_BAD;
}

int cli_next(cli_parser *p, const char **value)
{
    *value = NULL;
    if (p->help) {
        p->help = 0;
        p->i = p->argc;
        return CLI_HELP;
    }
    while (p->i < p->argc) {
        const char *a = p->argv[p->i++];
        if (!p->operands_only && !strcmp(a, "--")) {
            p->operands_only = 1;
            continue;
        }
        /* A lone "-" is an operand (by convention, standard input). */
        if (p->operands_only || a[0] != '-' || !a[1]) {
            *value = a;
            return CLI_ARG;
        }
        if (a[1] != '-') return unknown(p, a);
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        const cli_opt *o = lookup(p, a + 2, len);
        if (!o) return unknown(p, a);
        if (!o->needs) {
            if (eq) {
                cli_error("%s: --%s takes no value, got '%s'", p->cmd, o->name, a);
                return CLI_BAD;
            }
            return o->id;
        }
        if (eq) {
            *value = eq + 1;
        } else if (p->i < p->argc) {
            *value = p->argv[p->i++];
        } else {
            cli_error("%s: --%s needs %s", p->cmd, o->name, o->needs);
            return CLI_BAD;
        }
        if (o->id == CLI_LOG_FORMAT) {
            if (cli_log_set_format(*value)) {
                cli_error("%s: --log-format '%s': expected plain or json", p->cmd, *value);
                return CLI_BAD;
            }
            continue;
        }
        return o->id;
    }
    return CLI_END;
}

int cli_sets_add(cli_sets *sets, const char *value)
{
    if (!strchr(value, '=')) {
        cli_error("--set %s: expected key=value", value);
        return -1;
    }
    if (sets->n == CLI_MAX_SETS) {
        cli_error("at most %d --set options", CLI_MAX_SETS);
        return -1;
    }
    sets->v[sets->n++] = value;
    return 0;
}

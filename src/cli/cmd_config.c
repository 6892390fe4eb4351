/* cmd_config.c - `thorax config`: the configuration's documentation, from
 * the schema's own tables (thorax/config.h): every default as commented
 * YAML, one key explained, or the Markdown reference of docs/configuration.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "thorax/config.h"

static void config_usage(FILE *f)
{
    fprintf(f,
            "usage: thorax config --defaults | --explain KEY | --reference\n"
            "\n"
            "Documents the experiment file's keys, from the tables the reader checks\n"
            "configs against (so it cannot drift from what is accepted):\n"
            "\n"
            "  --defaults      every key at its default, as YAML with each key's doc as a\n"
            "                  comment; data.path, model.input and model.layers have no\n"
            "                  default and get placeholders. A starting point:\n"
            "                    thorax config --defaults > configs/mine.yaml\n"
            "  --explain KEY   one key: what it does, its type, default and range or\n"
            "                  choices; KEY is dotted (train.optimizer.lr), a layer's key\n"
            "                  model.layers[].k; a mapping (train.schedule) lists its keys\n"
            "  --reference     the Markdown reference of every key, grouped by mapping\n"
            "                  (docs/configuration.md is this output)\n"
            "  --log-format F  plain or json log lines (see thorax --help)\n"
            "  -h, --help      this help\n"
            "\n"
            "Exits 2 for an unknown KEY, with the nearest key it knows.\n");
}

enum { OPT_DEFAULTS = 1, OPT_REFERENCE, OPT_EXPLAIN };

static const cli_opt config_opts[] = {{OPT_DEFAULTS, "defaults", NULL},
                                      {OPT_REFERENCE, "reference", NULL},
                                      {OPT_EXPLAIN, "explain", "one KEY, e.g. train.optimizer.lr"},
                                      {0, NULL, NULL}};

int cmd_config(int argc, char **argv)
{
    int mode = 0, modes = 0;
    const char *key = NULL, *v;
    cli_parser p;
    cli_parser_init(&p, "config", argc, argv, config_opts);
    for (int id; (id = cli_next(&p, &v)) != CLI_END;) {
        switch (id) {
        case CLI_HELP: config_usage(stdout); return TH_EXIT_OK;
        case CLI_BAD: return TH_EXIT_USAGE;
        case CLI_ARG:
            cli_error("config: unexpected argument '%s' (see thorax config --help)", v);
            return TH_EXIT_USAGE;
        default:
            mode = id;
            modes++;
            if (id == OPT_EXPLAIN) key = v;
            break;
        }
    }
    if (modes != 1) {
        if (modes > 1) cli_error("config: give one of --defaults, --explain KEY and --reference");
        config_usage(stderr);
        return TH_EXIT_USAGE;
    }
    th_err err = {{0}};
    char *text = NULL;
    if (mode == OPT_DEFAULTS) {
        text = th_config_defaults_yaml(&err);
    } else if (mode == OPT_REFERENCE) {
        text = th_config_reference(&err);
    } else {
        text = th_config_explain(key, &err);
        if (!text) {
            cli_error("config --explain: %s", err.msg);
            return TH_EXIT_USAGE;
        }
    }
    if (!text) {
        cli_error("config: %s", err.msg);
        return TH_EXIT_FAIL;
    }
    fputs(text, stdout);
    free(text);
    if (fflush(stdout) || ferror(stdout)) {
        cli_error("config: cannot write the output");
        return TH_EXIT_FAIL;
    }
    return TH_EXIT_OK;
}

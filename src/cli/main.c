/* main.c - `thorax <command> ...`: dispatch to the subcommands. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <math.h>
#include <mpi.h>

#include "cli.h"
#include "thorax/dist.h"
#include "thorax/nn.h"
#include "thorax/config.h"
#include "thorax/util.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"ingest", cmd_ingest, "convert a label CSV and PNG images into a dataset file"},
    {"phantom", cmd_phantom, "write a synthetic chest-radiograph dataset with known findings and masks"},
    {"split", cmd_split, "print the patient-level split report of a config's dataset"},
    {"train", cmd_train, "train a network (under mpirun for several ranks)"},
    {"eval", cmd_eval, "evaluate a run: predictions, ROC/AUC with CIs, plots (under mpirun)"},
    {"cam", cmd_cam, "class activation maps of chosen images of a run, PNG overlays (under mpirun)"},
    {"predict", cmd_predict, "probabilities (and heat maps) for new images: PNG, JPEG, DICOM files, directories, globs; CSV/JSON"},
    {"export", cmd_export, "a run as an ONNX model or a PyTorch module, with predict's input and output"},
    {"compare", cmd_compare, "two runs' AUCs on the same images: DeLong's paired test, paired patient bootstrap"},
    {"bench", cmd_bench, "images/s of training and inference steps on random data (under mpirun)"},
    {"config", cmd_config, "document the experiment file's keys: defaults, one key explained, the reference"},
    {"lr-find", cmd_lrfind, "the learning-rate range test: loss against a growing rate, a suggested rate (under mpirun)"},
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: thorax <command> [options]\n"
            "\n"
            "Distributed training and evaluation of CNNs on chest X-rays.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\n'thorax <command> --help' (or 'thorax help <command>') describes each command.\n"
            "'thorax --version' prints the version and the build's git revision.\n"
            "\n"
            "options of every command (before or after it):\n"
            "  --log-format plain|json  progress and information lines as text stamped\n"
            "                           '2026-12-07T23:10:04Z rank0 ...' (plain, the default)\n"
            "                           or one JSON object per line: time, level, rank, msg\n"
            "                           and the line's numbers (epoch, step, loss, img_per_s,\n"
            "                           eta_s ...); the environment's THORAX_LOG_FORMAT sets\n"
            "                           it too, the option wins\n"
            "  -h, --help               the command's help\n"
            "Options take their value as --opt value or --opt=value; -- ends the options\n"
            "(thorax train -- --odd-name.yaml).\n");
}

void cli_error(const char *fmt, ...)
{
    if (!th_dist_started() && th_dist_launcher_rank() > 0) return;
    va_list ap;
    va_start(ap, fmt);
    if (cli_log_get_format() == CLI_LOG_JSON) {
        /* Even the errors parse as JSON in a JSON log. */
        char msg[2048];
        vsnprintf(msg, sizeof msg, fmt, ap);
        cli_log_at(stderr, "error", NULL, 0, "thorax: %s", msg);
    } else {
        fputs("thorax: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    }
    va_end(ap);
}

int cli_parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

void cli_format_duration(double s, char *buf, size_t n)
{
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

/* --log-format before the command: taken out of argv (THORAX_LOG_FORMAT
 * first, so that the option wins). Returns -1 after saying why. */
static int take_log_format(int *argc, char **argv)
{
    const char *env = getenv("THORAX_LOG_FORMAT");
    if (env && *env && cli_log_set_format(env)) {
        cli_error("THORAX_LOG_FORMAT='%s': expected plain or json", env);
        return -1;
    }
    while (*argc > 1 && !strncmp(argv[1], "--log-format", 12) && (argv[1][12] == '=' || !argv[1][12])) {
        int eq = argv[1][12] == '=';
        if (!eq && *argc < 3) {
            cli_error("--log-format needs a value (plain or json)");
            return -1;
        }
        const char *v = eq ? argv[1] + 13 : argv[2];
        if (cli_log_set_format(v)) {
            cli_error("--log-format '%s': expected plain or json", v);
            return -1;
        }
        int used = eq ? 1 : 2;
        memmove(argv + 1, argv + 1 + used, sizeof *argv * (size_t)(*argc - used));
        *argc -= used;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (take_log_format(&argc, argv)) return TH_EXIT_USAGE;
    if (argc < 2) {
        usage(stderr);
        return TH_EXIT_USAGE;
    }
    /* 'thorax help CMD' is 'thorax CMD --help'. */
    char *help_argv[4] = {argv[0], NULL, "--help", NULL};
    if (!strcmp(argv[1], "help") && argc > 2) {
        help_argv[1] = argv[2];
        argc = 3;
        argv = help_argv;
    } else if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return TH_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("thorax 0.1.0 (%s)\n", th_version());
        return TH_EXIT_OK;
    }
    enum { N_COMMANDS = sizeof commands / sizeof commands[0] };
    const char *names[N_COMMANDS + 1];
    for (size_t i = 0; i < N_COMMANDS; i++) {
        names[i] = commands[i].name;
        if (!strcmp(argv[1], commands[i].name)) {
            th_workspace_serial_blas();
            return commands[i].run(argc - 1, argv + 1);
        }
    }
    names[N_COMMANDS] = NULL;
    const char *near = th_config_nearest(argv[1], names);
    if (near) cli_error("unknown command '%s' (did you mean '%s'?)", argv[1], near);
    else cli_error("unknown command '%s'", argv[1]);
    usage(stderr);
    return TH_EXIT_USAGE;
}

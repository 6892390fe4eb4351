/* cmd_export.c - `thorax export RUN_DIR --format onnx|torch --out F`: a
 * trained run as a model ONNX Runtime or PyTorch runs, computing what
 * `thorax predict` computes. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "thorax/eval.h"

static void export_usage(FILE *f)
{
    fprintf(f,
            "usage: thorax export RUN_DIR --format onnx|torch [--checkpoint best|last] --out F\n"
            "\n"
            "Writes the run's network as a model that computes what `thorax predict` prints,\n"
            "for the same images, without Thorax:\n"
            "  input   'image', float32 [N, 1, H, W] (N any): pixel / 255 of the image read\n"
            "          as predict reads it (luminance, resized to the model's H x W)\n"
            "  inside  the run's normalisation (the training set's mean and std from the\n"
            "          checkpoint, or per image, as the config says), batch-norm on its\n"
            "          running statistics, dropout off, the sigmoid (softmax for a\n"
            "          softmax_ce loss) and, when predict applies them (eval.calibrate:\n"
            "          temperature, val evaluated), val's temperatures\n"
            "  output  'prob', float32 [N, L], the labels in the run's order\n"
            "\n"
            "formats:\n"
            "  onnx   F, one ONNX file (opset 13) for ONNX Runtime and other runtimes; the\n"
            "         labels, Thorax version, run, checkpoint, epoch, step and normalisation\n"
            "         are in its metadata_props (keys thorax.*)\n"
            "  torch  F.py, a self-contained torch.nn.Module (load() returns it in eval\n"
            "         mode), and F.bin beside it, the weights as raw float32 that F.py reads\n"
            "         with numpy (a trailing .py of F is dropped)\n"
            "\n"
            "Files are written under a temporary name and renamed; an F that is an input\n"
            "of the run (config.yaml, a checkpoint, the dataset file) is refused.\n"
            "docs/export.md has examples with onnxruntime (Python, Node) and PyTorch.\n"
            "\n"
            "options:\n"
            "  --format onnx|torch     what to write (required)\n"
            "  --checkpoint best|last  which checkpoint of RUN_DIR (default best)\n"
            "  --out F                 where (required)\n"
            "  --log-format F          plain or json log lines (see thorax --help)\n"
            "  -h, --help              this help\n");
}

enum { OPT_FORMAT = 1, OPT_CHECKPOINT, OPT_OUT };

static const cli_opt export_opts[] = {{OPT_FORMAT, "format", "a value (onnx or torch)"},
                                      {OPT_CHECKPOINT, "checkpoint", "a value (best or last)"},
                                      {OPT_OUT, "out", "a value (the output file)"},
                                      {0, NULL, NULL}};

int cmd_export(int argc, char **argv)
{
    th_export_opts o = {0};
    const char *format = NULL, *v;
    cli_parser p;
    cli_parser_init(&p, "export", argc, argv, export_opts);
    for (int id; (id = cli_next(&p, &v)) != CLI_END;) {
        switch (id) {
        case CLI_HELP: export_usage(stdout); return TH_EXIT_OK;
        case CLI_BAD: return TH_EXIT_USAGE;
        case OPT_FORMAT: format = v; break;
        case OPT_CHECKPOINT: o.checkpoint = v; break;
        case OPT_OUT: o.out = v; break;
        case CLI_ARG:
            if (o.run_dir) {
                cli_error("export: one run directory, got '%s' and '%s'", o.run_dir, v);
                return TH_EXIT_USAGE;
            }
            o.run_dir = v;
            break;
        }
    }
    if (!o.run_dir || !format || !o.out) {
        export_usage(stderr);
        return TH_EXIT_USAGE;
    }
    if (th_export_format_parse(format, &o.format)) {
        cli_error("export: --format must be onnx or torch, got '%s'", format);
        return TH_EXIT_USAGE;
    }
    if (o.checkpoint && strcmp(o.checkpoint, "best") && strcmp(o.checkpoint, "last")) {
        cli_error("export: --checkpoint must be best or last, got '%s'", o.checkpoint);
        return TH_EXIT_USAGE;
    }
    th_err err = {{0}};
    th_export_result r;
    if (th_export_run(&o, &r, &err)) {
        cli_error("%s", err.msg);
        return TH_EXIT_FAIL;
    }
    printf("export: %s checkpoint (epoch %d, step %ld), %d layers, %zu weights ->", o.checkpoint ? o.checkpoint : "best",
           r.epoch, r.step, r.n_layers, r.n_params);
    for (int k = 0; k < r.n_files; k++) printf(" %s", r.files[k]);
    printf("\n");
    return TH_EXIT_OK;
}

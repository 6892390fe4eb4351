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
            "  -h, --help              this help\n");
}

int cmd_export(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        export_usage(stdout);
        return TH_EXIT_OK;
    }
    th_export_opts o = {0};
    const char *format = NULL;
    for (int i = 1; i < argc; i++) {
        const char **value = NULL;
        if (!strcmp(argv[i], "--format")) value = &format;
        else if (!strcmp(argv[i], "--checkpoint")) value = &o.checkpoint;
        else if (!strcmp(argv[i], "--out")) value = &o.out;
        else if (argv[i][0] == '-') {
            cli_error("export: unknown option '%s' (see thorax export --help)", argv[i]);
            return TH_EXIT_USAGE;
        } else if (!o.run_dir) o.run_dir = argv[i];
        else {
            cli_error("export: one run directory, got '%s' and '%s'", o.run_dir, argv[i]);
            return TH_EXIT_USAGE;
        }
        if (value) {
            if (i + 1 >= argc) {
                cli_error("export: %s needs a value", argv[i]);
                return TH_EXIT_USAGE;
            }
            *value = argv[++i];
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

/* export_inputs.c - the inputs and outputs of an exported model, as
 * `thorax predict` makes them (tests/integration/test_export.sh).
 *
 *   export_inputs RUN_DIR best|last IMAGES.bin PROBS.txt IMAGE.png ...
 * reads each image as predict does (th_predictor_load_image) and writes
 *   IMAGES.bin  float32 [N, 1, H, W] little-endian: pixel / 255, the
 *               exported model's `image`
 *   PROBS.txt   one line per image, the L probabilities predict computes
 *               (th_input_make, th_model_forward, th_predictor_probs) to 9
 *               significant digits, where predict prints 4 decimals.
 * Exits 1 on any error.
 */
#include <stdio.h>
#include <stdlib.h>

#include "thorax/data.h"
#include "thorax/eval.h"
#include "thorax/nn.h"

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: export_inputs RUN_DIR best|last IMAGES.bin PROBS.txt IMAGE.png ...\n");
        return 2;
    }
    th_err err = {{0}};
    th_predictor t;
    if (th_predictor_open(&t, argv[1], argv[2], 1, &err)) {
        fprintf(stderr, "export_inputs: %s\n", err.msg);
        th_predictor_close(&t);
        return 1;
    }
    int H = t.cfg->model.h, W = t.cfg->model.w, L = t.cfg->data.n_labels, rc = 0;
    FILE *images = fopen(argv[3], "wb"), *probs = fopen(argv[4], "w");
    uint8_t *img = malloc((size_t)H * W);
    float *v = malloc(sizeof(float) * (size_t)H * W), *x = malloc(sizeof(float) * (size_t)H * W), p[TH_MAX_LABELS];
    if (!images || !probs || !img || !v || !x) {
        fprintf(stderr, "export_inputs: cannot open %s or %s, or out of memory\n", argv[3], argv[4]);
        rc = 1;
    }
    for (int i = 5; i < argc && !rc; i++) {
        char warn[512];
        if (th_predictor_load_image(&t, argv[i], img, warn, sizeof warn, &err)) {
            fprintf(stderr, "export_inputs: %s\n", err.msg);
            rc = 1;
            break;
        }
        for (int k = 0; k < H * W; k++) v[k] = img[k] / 255.0f;
        th_input_make(&t.input, img, NULL, NULL, 1, -1, x);
        th_predictor_probs(&t, th_model_forward(&t.model, x, 1, 0), p);
        if (fwrite(v, sizeof(float), (size_t)H * W, images) != (size_t)H * W) rc = 1;
        for (int k = 0; k < L; k++) fprintf(probs, "%s%.9g", k ? " " : "", p[k]);
        fprintf(probs, "\n");
    }
    if ((images && fclose(images)) || (probs && fclose(probs))) rc = 1;
    free(img);
    free(v);
    free(x);
    th_predictor_close(&t);
    return rc;
}

/* test_bf16.c - the bf16 GEMM path (runtime.precision: bf16) against naive
 * loops in double: the convolution's forward and backward (dW, dX) on odd
 * shapes, strides, 1x1 and fused pool, on 1-3 threads; the dense layer; and a
 * whole small network's logits against its own fp32 logits.
 *
 * The bound. bf16 keeps 8 significant bits, so rounding an fp32 input to it
 * has a relative error |d| <= u = 2^-9 (round to nearest), uniform over
 * [-u, u] for inputs that fill their mantissa. A product of two rounded
 * inputs is off by (d1 + d2) of its value: zero-mean, standard deviation
 * u * sqrt(2/3) ~ 0.41 * 2^-8. Summed in fp32 over the K terms t_i of an
 * output (fp32's own rounding, ~K * 2^-24, is far below), the errors add
 * as a random walk: standard deviation 0.41 * 2^-8 * S with
 * S = sqrt(sum_i t_i^2), i.e. ~ sqrt(K) * 2^-8 * the typical term. Each
 * output must be within 4 * 2^-8 * S of the exact sum (about 10 standard
 * deviations: the fixed seeds will not fail it by chance, while a wrong
 * operand, a missed block or a stale conversion is off by ~S). Outputs that
 * go through two bf16 GEMMs (dX of a layer fed by a network's earlier
 * layer) are compared with the fp32 path on a network-level bound below.
 * Skipped (exit 0, with a note) on a CPU without AVX512_BF16. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "dense.h"
#include "gemm.h"
#include "testutil.h"
#include "thorax/nn.h"

#define BOUND (4.0 / 256.0)

/* |got - exact| <= BOUND * S for every output, S = sqrt(sum of squared terms). */
static void check_bound(const float *got, const double *exact, const double *sq, size_t n, const char *what)
{
    size_t bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double s = sqrt(sq[i]), err = fabs(got[i] - exact[i]);
        double ratio = s > 0 ? err / s : err;
        if (ratio > worst) worst = ratio;
        if (err > BOUND * s + 1e-30) bad++;
    }
    if (!CHECK(bad == 0)) printf("  %s: %zu of %zu outputs beyond the bound, worst |err|/S = %.4g\n", what, bad, n, worst);
}

static float xat(const th_conv_dims *d, const float *x, int n, int c, int iy, int ix)
{
    if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w) return 0.0f;
    return x[(((size_t)n * d->c + c) * d->h + iy) * d->w + ix];
}

/* Naive forward y, and backward dw, dx from dy, each with its sum of squared terms. */
static void naive(const th_conv_dims *d, const float *x, const float *w, const float *dy, double *y, double *ysq,
                  double *dw, double *dwsq, double *dx, double *dxsq)
{
    const size_t nw = (size_t)d->k * d->c * d->kh * d->kw, nx = (size_t)d->n * d->c * d->h * d->w;
    memset(dw, 0, nw * sizeof *dw), memset(dwsq, 0, nw * sizeof *dwsq);
    memset(dx, 0, nx * sizeof *dx), memset(dxsq, 0, nx * sizeof *dxsq);
    for (int n = 0; n < d->n; n++)
        for (int k = 0; k < d->k; k++)
            for (int oy = 0; oy < d->oh; oy++)
                for (int ox = 0; ox < d->ow; ox++) {
                    size_t o = (((size_t)n * d->k + k) * d->oh + oy) * d->ow + ox;
                    double sum = 0, sq = 0;
                    for (int c = 0; c < d->c; c++)
                        for (int i = 0; i < d->kh; i++)
                            for (int j = 0; j < d->kw; j++) {
                                int iy = oy * d->stride - d->pad + i, ix = ox * d->stride - d->pad + j;
                                size_t wi = (((size_t)k * d->c + c) * d->kh + i) * d->kw + j;
                                double xv = xat(d, x, n, c, iy, ix), t = (double)w[wi] * xv;
                                sum += t, sq += t * t;
                                double g = (double)dy[o] * xv;
                                dw[wi] += g, dwsq[wi] += g * g;
                                if (iy >= 0 && iy < d->h && ix >= 0 && ix < d->w) {
                                    size_t xi = (((size_t)n * d->c + c) * d->h + iy) * d->w + ix;
                                    double h = (double)w[wi] * dy[o];
                                    dx[xi] += h, dxsq[xi] += h * h;
                                }
                            }
                    y[o] = sum, ysq[o] = sq;
                }
}

static void check_conv(int n, int c, int h, int w, int k, int ks, int stride, int pad)
{
    th_conv_dims d;
    if (!CHECK(th_conv_dims_init(&d, n, c, h, w, k, ks, ks, stride, pad) == 0)) return;
    d.precision = TH_PRECISION_BF16;
    const size_t nx = (size_t)n * c * h * w, nw = (size_t)k * c * ks * ks, ny = (size_t)n * k * d.oh * d.ow;
    float *x = malloc(nx * 4), *wt = malloc(nw * 4), *dy = malloc(ny * 4), *dy2 = malloc(ny * 4);
    float *y = malloc(ny * 4), *dx = malloc(nx * 4), *dw = malloc(nw * 4), *db = malloc((size_t)k * 4);
    double *ry = malloc(ny * 8), *rysq = malloc(ny * 8), *rdw = malloc(nw * 8), *rdwsq = malloc(nw * 8);
    double *rdx = malloc(nx * 8), *rdxsq = malloc(nx * 8);
    th_test_fill(x, nx, -1, 1, 11);
    th_test_fill(wt, nw, -1, 1, 12);
    th_test_fill(dy, ny, -1, 1, 13);
    naive(&d, x, wt, dy, ry, rysq, rdw, rdwsq, rdx, rdxsq);
    th_workspace ws = {0};
    th_err err;
    for (int threads = 1; threads <= 3; threads++) {
        CHECK(th_workspace_reserve(&ws, threads, th_conv_workspace_floats(&d), &err) == 0);
        memset(ws.buf, 0xff, ws.capacity * sizeof *ws.buf);
        th_conv_forward(&d, x, wt, NULL, y, 0, &ws);
        check_bound(y, ry, rysq, ny, "conv forward");
        memcpy(dy2, dy, ny * 4);
        th_conv_backward(&d, x, wt, dy2, NULL, dx, dw, db, &ws);
        check_bound(dw, rdw, rdwsq, nw, "conv dW");
        check_bound(dx, rdx, rdxsq, nx, "conv dX");
    }
    th_workspace_free(&ws);
    free(x), free(wt), free(dy), free(dy2), free(y), free(dx), free(dw), free(db);
    free(ry), free(rysq), free(rdw), free(rdwsq), free(rdx), free(rdxsq);
}

/* conv -> ReLU -> 2x2 pool in bf16 against the fp32 fused path on the
 * conv's exact output: the pooled value is one conv output (or 0). */
static void check_pool(void)
{
    th_conv_dims d;
    th_conv_dims_init(&d, 3, 5, 11, 9, 7, 3, 3, 1, 1);
    d.precision = TH_PRECISION_BF16;
    const size_t nx = (size_t)3 * 5 * 11 * 9, nw = (size_t)7 * 5 * 9, ny = (size_t)3 * 7 * d.oh * d.ow;
    const size_t np = (size_t)3 * 7 * (d.oh / 2) * (d.ow / 2);
    float *x = malloc(nx * 4), *wt = malloc(nw * 4), *dy = calloc(ny, 4), *py = malloc(np * 4);
    int32_t *am = malloc(np * 4);
    double *ry = malloc(ny * 8), *rysq = malloc(ny * 8), *t1 = malloc(nw * 8), *t2 = malloc(nw * 8);
    double *t3 = malloc(nx * 8), *t4 = malloc(nx * 8), *rp = malloc(np * 8), *rpsq = malloc(np * 8);
    th_test_fill(x, nx, -1, 1, 21);
    th_test_fill(wt, nw, -1, 1, 22);
    naive(&d, x, wt, dy, ry, rysq, t1, t2, t3, t4);
    th_workspace ws = {0};
    th_err err;
    CHECK(th_workspace_reserve(&ws, 2, th_conv_workspace_floats(&d), &err) == 0);
    th_conv_forward_pool(&d, x, wt, NULL, py, am, &ws);
    /* Compare each pooled value with the exact conv output its argmax names. */
    for (size_t i = 0; i < np; i++) {
        size_t plane = (size_t)d.oh * d.ow, img_k = i / ((size_t)(d.oh / 2) * (d.ow / 2));
        size_t o = img_k * plane + (size_t)am[i];
        rp[i] = ry[o] > 0 ? ry[o] : 0, rpsq[i] = rysq[o];
    }
    check_bound(py, rp, rpsq, np, "conv+relu+pool forward");
    th_workspace_free(&ws);
    free(x), free(wt), free(dy), free(py), free(am), free(ry), free(rysq), free(t1), free(t2), free(t3), free(t4);
    free(rp), free(rpsq);
}

static void check_dense(int n, int in, int out)
{
    const size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *dy = malloc(ny * 4), *y = malloc(ny * 4);
    float *dx = malloc(nx * 4), *dw = malloc(nw * 4);
    float *scratch = malloc(th_dense_scratch_floats(n, in, out, TH_PRECISION_BF16) * 4);
    double *r = malloc((nx + nw + ny) * 8), *rsq = malloc((nx + nw + ny) * 8);
    th_test_fill(x, nx, -1, 1, 31);
    th_test_fill(w, nw, -1, 1, 32);
    th_test_fill(dy, ny, -1, 1, 33);
    th_dense_forward_p(TH_PRECISION_BF16, n, in, out, x, w, NULL, y, scratch);
    th_dense_backward_p(TH_PRECISION_BF16, n, in, out, x, w, dy, dx, dw, NULL, scratch);
    double *ry = r, *rdw = r + ny, *rdx = r + ny + nw, *ysq = rsq, *dwsq = rsq + ny, *dxsq = rsq + ny + nw;
    memset(r, 0, (nx + nw + ny) * 8), memset(rsq, 0, (nx + nw + ny) * 8);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++)
            for (int j = 0; j < in; j++) {
                double t = (double)x[(size_t)i * in + j] * w[(size_t)o * in + j];
                ry[(size_t)i * out + o] += t, ysq[(size_t)i * out + o] += t * t;
                double g = (double)dy[(size_t)i * out + o] * x[(size_t)i * in + j];
                rdw[(size_t)o * in + j] += g, dwsq[(size_t)o * in + j] += g * g;
                double h = (double)dy[(size_t)i * out + o] * w[(size_t)o * in + j];
                rdx[(size_t)i * in + j] += h, dxsq[(size_t)i * in + j] += h * h;
            }
    check_bound(y, ry, ysq, ny, "dense forward");
    check_bound(dw, rdw, dwsq, nw, "dense dW");
    check_bound(dx, rdx, dxsq, nx, "dense dX");
    free(x), free(w), free(dy), free(y), free(dx), free(dw), free(scratch), free(r), free(rsq);
}

/* A small ResNet-like network in eval mode, bf16 against fp32. Each layer's
 * bf16 error (above: ~0.41 * 2^-8 relative to the root-sum-square of its
 * terms, at most that of its output's scale when the terms do not cancel)
 * propagates through the layers after it; with 5 GEMM layers and
 * batch-norm renormalising in between, the logits should stay within a few
 * per cent of their spread. Bound: max |z_bf16 - z_fp32| <= 0.05 * max |z_fp32|
 * (0.05 ~ 5 layers x 4 x 2^-8 x a growth of ~2.5 per layer through the
 * weights' norms), and the same logits rank the same way in most images. */
static void check_network(void)
{
    th_model_spec s = {.c = 1, .h = 20, .w = 20};
    th_layer_spec *l = s.layers;
    l[s.n_layers++] = th_test_layer(TH_LAYER_CONV, 16, 3, 1, 1);
    l[s.n_layers++] = th_test_layer(TH_LAYER_RELU, 0, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_MAXPOOL, 0, 2, 2, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_CONV, 24, 3, 1, 1);
    l[s.n_layers++] = th_test_layer(TH_LAYER_BATCHNORM, 0, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_RELU, 0, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_RESBLOCK, 32, 0, 2, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_GAP, 0, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_DENSE, 4, 0, 0, 0);
    enum { NB = 5, NL = 4 };
    th_model a, b;
    th_err err;
    if (!CHECK(th_model_create(&a, &s, NL, NB, &err) == 0) || !CHECK(th_model_create(&b, &s, NL, NB, &err) == 0)) {
        printf("  %s\n", err.msg);
        return;
    }
    th_model_init_params(&a, 7);
    th_model_init_params(&b, 7);
    CHECK(th_model_set_threads(&b, 2, &err) == 0);
    CHECK(th_model_set_precision(&b, TH_PRECISION_BF16, &err) == 0);
    float x[NB * 400];
    th_test_fill(x, NB * 400, 0, 1, 41);
    const float *za = th_model_forward(&a, x, NB, 0), *zb = th_model_forward(&b, x, NB, 0);
    double zmax = 0, diff = 0;
    for (int i = 0; i < NB * NL; i++) {
        zmax = fmax(zmax, fabs(za[i]));
        diff = fmax(diff, fabs(za[i] - zb[i]));
    }
    CHECK(diff > 0); /* the bf16 path did run: its rounding shows */
    if (!CHECK(diff <= 0.05 * zmax)) printf("  network logits: max diff %.4g, max |z| %.4g\n", diff, zmax);
    /* Back to fp32: bit-identical to the model that never left it (eval
     * mode: the running statistics are still the same). */
    CHECK(th_model_set_precision(&b, TH_PRECISION_FP32, &err) == 0);
    za = th_model_forward(&a, x, NB, 0);
    zb = th_model_forward(&b, x, NB, 0);
    CHECK(memcmp(za, zb, sizeof(float) * NB * NL) == 0);
    CHECK(th_model_set_precision(&b, TH_PRECISION_BF16, &err) == 0);
    /* Backward runs (all GEMMs in bf16) and gives gradients near fp32's. */
    float dz[NB * NL];
    for (int i = 0; i < NB * NL; i++) dz[i] = (float)((i % 3) - 1);
    th_model_forward(&a, x, NB, 1);
    th_model_backward(&a, x, dz, NB);
    th_model_forward(&b, x, NB, 1);
    th_model_backward(&b, x, dz, NB);
    double gnorm = 0, gdiff = 0;
    for (size_t i = 0; i < a.n_params; i++) {
        gnorm += (double)a.grads[i] * a.grads[i];
        gdiff += (double)(a.grads[i] - b.grads[i]) * (a.grads[i] - b.grads[i]);
    }
    /* Relative norm of the gradient difference: same reasoning, one more
     * pass of GEMMs (dX then dW), so twice the forward's allowance. */
    if (!CHECK(sqrt(gdiff) <= 0.1 * sqrt(gnorm)))
        printf("  network gradients: |diff| %.4g, |grad| %.4g\n", sqrt(gdiff), sqrt(gnorm));
    th_model_free(&a);
    th_model_free(&b);
}

/* th_bf16_convert against rounding to nearest even worked on the bits, for
 * row lengths covering its 32-wide blocks, 16-wide blocks and masked tails,
 * with a row stride; halfway cases included. */
static void check_convert(void)
{
    enum { ROWS = 2, MAXN = 71, LD = 80 };
    float src[ROWS * MAXN];
    for (int i = 0; i < ROWS * MAXN; i++) {
        uint32_t u = 0x3f800000u + (uint32_t)i * 0x00008000u + (i % 3 == 0 ? 0u : (uint32_t)i * 37u);
        if (i % 2) u |= 0x80000000u;
        memcpy(&src[i], &u, sizeof u);
    }
    for (int n = 1; n <= MAXN; n++) {
        uint16_t got[ROWS * LD];
        memset(got, 0xee, sizeof got);
        th_bf16_convert(got, LD, src, MAXN, ROWS, (size_t)n);
        int bad = 0;
        for (int r = 0; r < ROWS; r++)
            for (int i = 0; i < LD; i++) {
                uint32_t u;
                memcpy(&u, &src[r * MAXN + i < ROWS * MAXN ? r * MAXN + i : 0], sizeof u);
                uint16_t want = i < n ? (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16) : 0xeeee;
                bad += got[r * LD + i] != want;
            }
        if (!CHECK(bad == 0)) fprintf(stderr, "  bf16 convert of rows of %d: %d elements wrong\n", n, bad);
    }
}

int main(void)
{
    if (!th_nn_bf16_supported()) {
        printf("test_bf16: this CPU has no AVX512_BF16; skipped\n");
        th_model m = {0};
        th_err err;
        CHECK(th_model_set_precision(&m, TH_PRECISION_BF16, &err) == -1);
        return th_test_summary("test_bf16");
    }
    check_convert();
    check_conv(2, 3, 9, 7, 5, 3, 1, 1);    /* odd sizes; 27 taps: direct path, fp32 */
    check_conv(3, 7, 11, 13, 9, 3, 1, 1);  /* GEMM path, several blocks */
    check_conv(2, 5, 10, 9, 6, 3, 2, 1);   /* stride 2 */
    check_conv(3, 33, 7, 5, 17, 1, 1, 0);  /* 1x1: no columns */
    check_conv(1, 64, 8, 8, 40, 3, 1, 1);  /* K = 576, as ResNet-18's layer1 */
    check_conv(4, 17, 6, 6, 11, 5, 1, 2);  /* 5x5, padded */
    check_pool();
    check_dense(5, 37, 9);
    check_dense(1, 512, 14);
    check_network();
    return th_test_summary("test_bf16");
}

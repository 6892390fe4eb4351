/* test_layers_grad.c - every layer's backward pass against central finite
 * differences.
 *
 * For a layer y = f(x; params) the scalar objective is L = sum(r .* y) with a
 * fixed random r, so dL/dy = r is what backward receives, and each analytical
 * gradient (inputs, weights, biases) is compared element by element with
 * (L(v + eps) - L(v - eps)) / 2eps. The forward passes run in float, so the
 * comparison is relative with an absolute floor. Losses are checked the same
 * way with L = the loss itself. Batch norm's evaluation mode and running
 * statistics are checked against hand computations.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "activation.h"
#include "batchnorm.h"
#include "conv.h"
#include "dense.h"
#include "thorax/nn.h"
#include "pool.h"
#include "thorax/util.h"

#define FD_RTOL 1e-2
#define FD_FLOOR 1e-2

typedef double (*objective_fn)(void *ctx);

static float *filled(size_t n, float lo, float hi, unsigned long seed)
{
    float *a = malloc(n * sizeof *a);
    th_test_fill(a, n, lo, hi, seed);
    return a;
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Compares analytic[i] with the central difference of obj in param[i], for
 * every i, and reports the worst element. */
static void check_fd(const char *what, objective_fn obj, void *ctx, float *param, size_t n,
                     const float *analytic, float eps)
{
    double worst = 0.0, worst_num = 0.0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        float v = param[i], up = v + eps, down = v - eps;
        param[i] = up;
        double lp = obj(ctx);
        param[i] = down;
        double lm = obj(ctx);
        param[i] = v;
        double num = (lp - lm) / ((double)up - (double)down);
        double scale = fmax(fmax(fabs(num), fabs(analytic[i])), FD_FLOOR);
        double err = fabs(num - analytic[i]) / scale;
        if (err > worst) {
            worst = err;
            worst_num = num;
            worst_i = i;
        }
    }
    if (!CHECK(worst <= FD_RTOL))
        fprintf(stderr, "  %s: worst relative error %.3g at [%zu]: analytic %.6g, numeric %.6g\n", what, worst,
                worst_i, analytic[worst_i], worst_num);
}

/* ---- convolution ---------------------------------------------------------- */

struct conv_case {
    th_conv_dims d;
    float *x, *w, *b, *y, *r;
    th_workspace ws;
};

static double conv_obj(void *p)
{
    struct conv_case *c = p;
    th_conv_forward(&c->d, c->x, c->w, c->b, c->y, 0, &c->ws);
    return dot(c->r, c->y, (size_t)c->d.n * c->d.k * c->d.oh * c->d.ow);
}

/* Gradients against finite differences on `threads` threads with the
 * columns made `block_rows` output rows at a time; then the fused ReLU's
 * backward against the same backward fed the masked gradient by hand. */
static void test_conv(int n, int ch, int h, int w, int k, int ks, int stride, int pad, int threads, int block_rows)
{
    struct conv_case c = {0};
    th_err err;
    th_conv_dims_init(&c.d, n, ch, h, w, k, ks, ks, stride, pad);
    if (block_rows > 0 && block_rows < c.d.oh) c.d.block_rows = block_rows;
    CHECK(th_workspace_reserve(&c.ws, threads, th_conv_workspace_floats(&c.d), &err) == 0);
    size_t nx = (size_t)n * ch * h * w, nw = (size_t)k * ch * ks * ks, ny = (size_t)n * k * c.d.oh * c.d.ow;
    c.x = filled(nx, -1, 1, 101);
    c.w = filled(nw, -1, 1, 102);
    c.b = filled(k, -1, 1, 103);
    c.r = filled(ny, -1, 1, 104);
    c.y = malloc(ny * sizeof *c.y);
    float *dx = malloc(nx * sizeof *dx), *dw = malloc(nw * sizeof *dw), *db = malloc(k * sizeof *db);

    /* Poison dx, dw and db: backward must overwrite them, not accumulate. */
    for (size_t i = 0; i < nx; i++) dx[i] = 1e6f;
    for (size_t i = 0; i < nw; i++) dw[i] = 1e6f;
    for (int i = 0; i < k; i++) db[i] = 1e6f;
    th_conv_backward(&c.d, c.x, c.w, c.r, NULL, dx, dw, db, &c.ws);
    char name[96];
    snprintf(name, sizeof name, "conv s=%d p=%d k=%d t=%d dx", stride, pad, ks, threads);
    check_fd(name, conv_obj, &c, c.x, nx, dx, 1e-2f);
    snprintf(name, sizeof name, "conv s=%d p=%d k=%d t=%d dw", stride, pad, ks, threads);
    check_fd(name, conv_obj, &c, c.w, nw, dw, 1e-2f);
    snprintf(name, sizeof name, "conv s=%d p=%d k=%d t=%d db", stride, pad, ks, threads);
    check_fd(name, conv_obj, &c, c.b, k, db, 1e-2f);

    /* The first layer passes dx = NULL, a bias-free layer db = NULL: dw must not change. */
    float *dw2 = malloc(nw * sizeof *dw2);
    th_conv_backward(&c.d, c.x, c.w, c.r, NULL, NULL, dw2, NULL, &c.ws);
    CHECK(memcmp(dw, dw2, nw * sizeof *dw) == 0);

    /* Fused ReLU: backward masks dy in place by relu_y > 0. */
    float *dy = malloc(ny * sizeof *dy), *masked = malloc(ny * sizeof *masked);
    float *dx2 = malloc(nx * sizeof *dx2), *db2 = malloc(k * sizeof *db2);
    th_conv_forward(&c.d, c.x, c.w, c.b, c.y, 1, &c.ws);
    for (size_t i = 0; i < ny; i++) {
        dy[i] = c.r[i];
        masked[i] = c.y[i] > 0 ? c.r[i] : 0.0f;
    }
    th_conv_backward(&c.d, c.x, c.w, dy, c.y, dx, dw, db, &c.ws);
    th_conv_backward(&c.d, c.x, c.w, masked, NULL, dx2, dw2, db2, &c.ws);
    CHECK(memcmp(dy, masked, ny * sizeof *dy) == 0);
    CHECK(memcmp(dx, dx2, nx * sizeof *dx) == 0);
    CHECK(memcmp(dw, dw2, nw * sizeof *dw) == 0);
    CHECK(memcmp(db, db2, k * sizeof *db) == 0);

    th_workspace_free(&c.ws);
    free(c.x), free(c.w), free(c.b), free(c.r), free(c.y);
    free(dx), free(dw), free(db), free(dw2), free(dy), free(masked), free(dx2), free(db2);
}

/* conv -> ReLU -> 2x2 max-pool in one pass against the three layers one by
 * one: the same pooled output and argmax, the same gradients;
 * block_rows > 0 sets the GEMM path's blocks of output rows. */
static void test_conv_pool(int n, int ch, int h, int w, int k, int ks, int threads, int block_rows)
{
    th_conv_dims d;
    th_err err;
    th_workspace ws = {0};
    CHECK(th_conv_dims_init(&d, n, ch, h, w, k, ks, ks, 1, ks / 2) == 0);
    if (block_rows > 0) d.block_rows = block_rows;
    /* The fused backward works in blocks of rows, never in groups of images:
     * the unfused one in the same blocks rounds alike (test_conv checks groups). */
    d.group = 1;
    CHECK(th_workspace_reserve(&ws, threads, th_conv_workspace_floats(&d), &err) == 0);
    int ph = d.oh / 2, pw = d.ow / 2;
    size_t nx = (size_t)n * ch * h * w, nw = (size_t)k * ch * ks * ks, ny = (size_t)n * k * d.oh * d.ow;
    size_t np = (size_t)n * k * ph * pw;
    float *x = filled(nx, -1, 1, 301), *wt = filled(nw, -1, 1, 302), *b = filled(k, -0.2f, 0.2f, 303);
    float *pdy = filled(np, -1, 1, 304), *y = malloc(ny * sizeof *y), *dy = malloc(ny * sizeof *dy);
    float *py = malloc(np * sizeof *py), *py2 = malloc(np * sizeof *py2);
    int32_t *am = malloc(np * sizeof *am), *am2 = malloc(np * sizeof *am2);
    float *dx = malloc(nx * sizeof *dx), *dx2 = malloc(nx * sizeof *dx2);
    float *dw = malloc(nw * sizeof *dw), *dw2 = malloc(nw * sizeof *dw2), *db = malloc(k * sizeof *db),
          *db2 = malloc(k * sizeof *db2);

    th_conv_forward(&d, x, wt, b, y, 1, &ws);
    th_maxpool_forward(n, k, d.oh, d.ow, 2, 2, 0, y, py, am);
    th_maxpool_backward(n, k, d.oh, d.ow, 2, 2, 0, pdy, am, dy);
    th_conv_backward(&d, x, wt, dy, y, dx, dw, db, &ws);

    th_conv_forward_pool(&d, x, wt, b, py2, am2, &ws);
    th_conv_backward_pool(&d, x, wt, pdy, py2, am2, dx2, dw2, db2, &ws);
    /* The direct path computes each output the same way in both; the GEMM
     * path's products have other widths, which OpenBLAS may round otherwise. */
    if (ch * ks * ks <= 32) CHECK(memcmp(py, py2, np * sizeof *py) == 0);
    else CHECK(th_test_max_rel(py, py2, np, 1e-3) < 1e-5);
    CHECK(memcmp(am, am2, np * sizeof *am) == 0);
    CHECK(th_test_max_rel(dx, dx2, nx, 1e-3) < 1e-5);
    CHECK(th_test_max_rel(dw, dw2, nw, 1e-3) < 1e-5);
    CHECK(th_test_max_rel(db, db2, k, 1e-3) < 1e-5);
    th_workspace_free(&ws);
    free(x), free(wt), free(b), free(pdy), free(y), free(dy), free(py), free(py2), free(am), free(am2);
    free(dx), free(dx2), free(dw), free(dw2), free(db), free(db2);
}

/* ---- pooling -------------------------------------------------------------- */

enum pool_kind { POOL_MAX, POOL_AVG, POOL_GAP };

struct pool_case {
    enum pool_kind kind;
    int n, c, h, w, k, stride;
    float *x, *y, *r;
    int32_t *argmax;
    size_t ny;
};

static double pool_obj(void *p)
{
    struct pool_case *c = p;
    switch (c->kind) {
    case POOL_MAX: th_maxpool_forward(c->n, c->c, c->h, c->w, c->k, c->stride, 0, c->x, c->y, c->argmax); break;
    case POOL_AVG: th_avgpool_forward(c->n, c->c, c->h, c->w, c->k, c->stride, c->x, c->y); break;
    case POOL_GAP: th_gap_forward(c->n, c->c, c->h * c->w, c->x, c->y); break;
    }
    return dot(c->r, c->y, c->ny);
}

static void test_pool(enum pool_kind kind, int k, int stride)
{
    /* Max-pool 37 wide: the 2x2 backward's blocks of 8 windows, its tail and
     * an odd column. (The averages stay small: their gradients shrink with
     * the plane and finite differences lose them in float noise.) */
    struct pool_case c = {.kind = kind, .n = 2, .c = 3, .h = 7, .w = kind == POOL_MAX ? 37 : 5, .k = k, .stride = stride};
    int oh = th_pool_out_len(c.h, k, stride, 0), ow = th_pool_out_len(c.w, k, stride, 0);
    size_t nx = (size_t)c.n * c.c * c.h * c.w;
    c.ny = kind == POOL_GAP ? (size_t)c.n * c.c : (size_t)c.n * c.c * oh * ow;

    /* Distinct values 0.05 apart in a random order: a perturbation of 0.01
     * never changes which element of a window is the maximum. */
    int *perm = malloc(nx * sizeof *perm);
    for (size_t i = 0; i < nx; i++) perm[i] = (int)i;
    th_rng rng;
    th_rng_seed(&rng, 5, 0);
    th_rng_shuffle(&rng, perm, (int)nx);
    c.x = malloc(nx * sizeof *c.x);
    for (size_t i = 0; i < nx; i++) c.x[i] = 0.05f * (float)perm[i] - 2.0f;
    c.y = malloc(c.ny * sizeof *c.y);
    c.r = filled(c.ny, -1, 1, 201);
    c.argmax = malloc(c.ny * sizeof *c.argmax);
    float *dx = malloc(nx * sizeof *dx);
    for (size_t i = 0; i < nx; i++) dx[i] = 1e6f;

    pool_obj(&c);
    const char *name = "gap dx";
    switch (kind) {
    case POOL_MAX:
        th_maxpool_backward(c.n, c.c, c.h, c.w, k, stride, 0, c.r, c.argmax, dx);
        name = k > stride ? "maxpool (overlapping) dx" : "maxpool dx";
        break;
    case POOL_AVG:
        th_avgpool_backward(c.n, c.c, c.h, c.w, k, stride, c.r, dx);
        name = k > stride ? "avgpool (overlapping) dx" : "avgpool dx";
        break;
    case POOL_GAP: th_gap_backward(c.n, c.c, c.h * c.w, c.r, dx); break;
    }
    check_fd(name, pool_obj, &c, c.x, nx, dx, 1e-2f);
    free(perm), free(c.x), free(c.y), free(c.r), free(c.argmax), free(dx);
}

static void test_pool_values(void)
{
    /* One 4x5 plane, 2x2 windows, stride 2: a 2x2 output; the last column is
     * not covered (floor) and gets no gradient. */
    const float x[20] = {1, 5, 2, 0, 9,
                         3, 4, 8, 1, 9,
                         0, 0, 7, 7, 9,
                         6, 2, 1, 3, 9};
    float y[4], dx[20];
    int32_t arg[4];
    CHECK(th_pool_out_len(5, 2, 2, 0) == 2 && th_pool_out_len(1, 2, 2, 0) == 0);
    th_maxpool_forward(1, 1, 4, 5, 2, 2, 0, x, y, arg);
    CHECK(y[0] == 5 && y[1] == 8 && y[2] == 6 && y[3] == 7);
    CHECK(arg[0] == 1 && arg[1] == 7 && arg[2] == 15 && arg[3] == 12);
    const float dy[4] = {1, 2, 3, 4};
    th_maxpool_backward(1, 1, 4, 5, 2, 2, 0, dy, arg, dx);
    CHECK(dx[1] == 1 && dx[7] == 2 && dx[15] == 3 && dx[12] == 4 && dx[4] == 0 && dx[0] == 0);
    /* The same plane read as 5 rows of 4: the odd last row gets zeros over
     * whatever dx held; a tie keeps the first maximum, as PyTorch does. */
    const float tie[20] = {2, 2, 0, 0,
                           2, 2, 0, 1,
                           0, 0, 0, 0,
                           0, 0, 0, 0,
                           9, 9, 9, 9};
    for (int i = 0; i < 20; i++) dx[i] = 1e6f;
    th_maxpool_forward(1, 1, 5, 4, 2, 2, 0, tie, y, arg);
    CHECK(arg[0] == 0 && arg[1] == 7 && arg[2] == 8 && y[1] == 1);
    th_maxpool_backward(1, 1, 5, 4, 2, 2, 0, dy, arg, dx);
    CHECK(dx[0] == 1 && dx[1] == 0 && dx[7] == 2 && dx[8] == 3 && dx[16] == 0 && dx[19] == 0);
    th_avgpool_forward(1, 1, 4, 5, 2, 2, x, y);
    CHECK_NEAR(y[0], 13.0 / 4, 1e-6);
    CHECK_NEAR(y[3], 18.0 / 4, 1e-6);
    th_gap_forward(1, 1, 20, x, y);
    CHECK_NEAR(y[0], 86.0 / 20, 1e-6);
}

/* ---- ReLU and dropout ----------------------------------------------------- */

struct elem_case {
    size_t n;
    float *x, *y, *r;
    uint8_t *mask;
    float p;          /* dropout probability; < 0 selects ReLU */
    uint64_t seed;
};

static double elem_obj(void *p)
{
    struct elem_case *c = p;
    if (c->p < 0) {
        th_relu_forward(c->n, c->x, c->y);
    } else {
        /* The same stream for every evaluation: the mask is fixed. */
        th_rng rng;
        th_rng_seed(&rng, c->seed, 3);
        th_dropout_forward(c->n, c->p, &rng, c->x, c->y, c->mask);
    }
    return dot(c->r, c->y, c->n);
}

static void test_relu(void)
{
    struct elem_case c = {.n = 200, .p = -1};
    /* |x| in [0.1, 1] with a random sign keeps every input 0.1 away from the kink. */
    c.x = filled(c.n, 0.1f, 1.0f, 301);
    float *sign = filled(c.n, -1, 1, 302);
    for (size_t i = 0; i < c.n; i++) c.x[i] *= sign[i] < 0 ? -1.0f : 1.0f;
    c.y = malloc(c.n * sizeof *c.y);
    c.r = filled(c.n, -1, 1, 303);
    float *dx = malloc(c.n * sizeof *dx);
    elem_obj(&c);
    th_relu_backward(c.n, c.y, c.r, dx);
    check_fd("relu dx", elem_obj, &c, c.x, c.n, dx, 1e-2f);
    free(c.x), free(sign), free(c.y), free(c.r), free(dx);
}

static void test_dropout(void)
{
    struct elem_case c = {.n = 4000, .p = 0.3f, .seed = 17};
    c.x = filled(c.n, -1, 1, 311);
    c.y = malloc(c.n * sizeof *c.y);
    c.r = filled(c.n, -1, 1, 312);
    c.mask = malloc(c.n);
    float *dx = malloc(c.n * sizeof *dx);
    elem_obj(&c);
    th_dropout_backward(c.n, c.p, c.mask, c.r, dx);
    check_fd("dropout dx", elem_obj, &c, c.x, c.n, dx, 1e-2f);

    elem_obj(&c); /* check_fd leaves y from a perturbed input */
    size_t kept = 0;
    int scaled_ok = 1;
    for (size_t i = 0; i < c.n; i++) {
        kept += c.mask[i];
        float want = c.mask[i] ? c.x[i] / 0.7f : 0.0f;
        if (fabsf(c.y[i] - want) > 1e-6f) scaled_ok = 0;
    }
    CHECK(scaled_ok);
    CHECK_NEAR((double)kept / c.n, 0.7, 0.03);

    /* p = 0 is the identity with every element kept. */
    th_rng rng;
    th_rng_seed(&rng, 1, 1);
    th_dropout_forward(c.n, 0.0f, &rng, c.x, c.y, c.mask);
    int identity = 1;
    for (size_t i = 0; i < c.n; i++) identity &= c.mask[i] == 1 && c.y[i] == c.x[i];
    CHECK(identity);
    free(c.x), free(c.y), free(c.r), free(c.mask), free(dx);
}

/* ---- batch normalisation -------------------------------------------------- */

struct bn_case {
    int n, c, hw;
    float *x, *gamma, *beta, *y, *xhat, *mean, *invstd, *rmean, *rvar, *r;
};

static double bn_obj(void *p)
{
    struct bn_case *b = p;
    th_batchnorm_forward_train(1, b->n, b->c, b->hw, b->x, b->gamma, b->beta, b->y, b->xhat, b->mean, b->invstd,
                               b->rmean, b->rvar, 0.1f, 1e-5f);
    return dot(b->r, b->y, (size_t)b->n * b->c * b->hw);
}

static void test_batchnorm(void)
{
    struct bn_case b = {.n = 3, .c = 2, .hw = 5};
    size_t nx = (size_t)b.n * b.c * b.hw;
    b.x = filled(nx, -1, 2, 401);
    b.gamma = filled(b.c, 0.5f, 1.5f, 402);
    b.beta = filled(b.c, -0.5f, 0.5f, 403);
    b.r = filled(nx, -1, 1, 404);
    b.y = malloc(nx * sizeof *b.y);
    b.xhat = malloc(nx * sizeof *b.xhat);
    b.mean = malloc(b.c * sizeof *b.mean);
    b.invstd = malloc(b.c * sizeof *b.invstd);
    b.rmean = malloc(b.c * sizeof *b.rmean);
    b.rvar = malloc(b.c * sizeof *b.rvar);
    for (int ch = 0; ch < b.c; ch++) b.rmean[ch] = 0.5f, b.rvar[ch] = 2.0f;

    /* Running statistics after one step, by hand: mean and unbiased
     * variance over the 15 values of each channel. */
    bn_obj(&b);
    const int m = b.n * b.hw;
    for (int ch = 0; ch < b.c; ch++) {
        double s = 0, ss = 0;
        for (int i = 0; i < b.n; i++)
            for (int j = 0; j < b.hw; j++) s += b.x[(i * b.c + ch) * b.hw + j];
        double mu = s / m;
        for (int i = 0; i < b.n; i++)
            for (int j = 0; j < b.hw; j++) {
                double dv = b.x[(i * b.c + ch) * b.hw + j] - mu;
                ss += dv * dv;
            }
        CHECK_NEAR(b.mean[ch], mu, 1e-6);
        CHECK_REL(b.invstd[ch], 1.0 / sqrt(ss / m + 1e-5), 1e-6, 1.0);
        CHECK_NEAR(b.rmean[ch], 0.9 * 0.5 + 0.1 * mu, 1e-6);
        CHECK_NEAR(b.rvar[ch], 0.9 * 2.0 + 0.1 * ss / (m - 1), 1e-6);
        double y0 = b.gamma[ch] * (b.x[ch * b.hw] - mu) / sqrt(ss / m + 1e-5) + b.beta[ch];
        CHECK_NEAR(b.y[ch * b.hw], y0, 1e-5);
    }

    float *dx = malloc(nx * sizeof *dx), *dgamma = malloc(b.c * sizeof *dgamma), *dbeta = malloc(b.c * sizeof *dbeta);
    th_batchnorm_backward(1, b.n, b.c, b.hw, b.r, b.xhat, b.gamma, b.invstd, dx, dgamma, dbeta);
    check_fd("batchnorm dx", bn_obj, &b, b.x, nx, dx, 1e-2f);
    check_fd("batchnorm dgamma", bn_obj, &b, b.gamma, b.c, dgamma, 1e-2f);
    check_fd("batchnorm dbeta", bn_obj, &b, b.beta, b.c, dbeta, 1e-2f);

    /* Evaluation mode uses the running statistics, not the batch's. */
    const float rm[2] = {0.25f, -1.0f}, rv[2] = {4.0f, 0.5f};
    th_batchnorm_forward_eval(1, b.n, b.c, b.hw, b.x, b.gamma, b.beta, rm, rv, 1e-5f, b.y);
    double worst = 0;
    for (int i = 0; i < b.n; i++)
        for (int ch = 0; ch < b.c; ch++)
            for (int j = 0; j < b.hw; j++) {
                size_t at = ((size_t)i * b.c + ch) * b.hw + j;
                double want = b.gamma[ch] * (b.x[at] - rm[ch]) / sqrt(rv[ch] + 1e-5) + b.beta[ch];
                worst = fmax(worst, fabs(b.y[at] - want));
            }
    CHECK(worst < 1e-5);

    free(b.x), free(b.gamma), free(b.beta), free(b.r), free(b.y), free(b.xhat), free(b.mean), free(b.invstd);
    free(b.rmean), free(b.rvar), free(dx), free(dgamma), free(dbeta);
}

/* ---- dense ---------------------------------------------------------------- */

struct dense_case {
    int n, in, out;
    float *x, *w, *b, *y, *r;
};

static double dense_obj(void *p)
{
    struct dense_case *c = p;
    th_dense_forward(c->n, c->in, c->out, c->x, c->w, c->b, c->y);
    return dot(c->r, c->y, (size_t)c->n * c->out);
}

static void test_dense(void)
{
    struct dense_case c = {.n = 3, .in = 7, .out = 4};
    size_t nx = (size_t)c.n * c.in, nw = (size_t)c.out * c.in, ny = (size_t)c.n * c.out;
    c.x = filled(nx, -1, 1, 501);
    c.w = filled(nw, -1, 1, 502);
    c.b = filled(c.out, -1, 1, 503);
    c.r = filled(ny, -1, 1, 504);
    c.y = malloc(ny * sizeof *c.y);
    float *dx = malloc(nx * sizeof *dx), *dw = malloc(nw * sizeof *dw), *db = malloc(c.out * sizeof *db);
    th_dense_backward(c.n, c.in, c.out, c.x, c.w, c.r, dx, dw, db);
    check_fd("dense dx", dense_obj, &c, c.x, nx, dx, 1e-2f);
    check_fd("dense dw", dense_obj, &c, c.w, nw, dw, 1e-2f);
    check_fd("dense db", dense_obj, &c, c.b, c.out, db, 1e-2f);
    free(c.x), free(c.w), free(c.b), free(c.r), free(c.y), free(dx), free(dw), free(db);
}

/* ---- losses --------------------------------------------------------------- */

struct loss_case {
    int n, l;
    float *z, *w_pos, *w_neg;
    uint8_t *y;
};

static double wbce_obj(void *p)
{
    struct loss_case *c = p;
    return th_wbce_logits(c->n, c->l, c->z, c->y, c->w_pos, c->w_neg, NULL);
}

static double softmax_obj(void *p)
{
    struct loss_case *c = p;
    return th_softmax_ce(c->n, c->l, c->z, c->y, NULL);
}

static void test_losses(void)
{
    struct loss_case c = {.n = 4, .l = 5};
    size_t nz = (size_t)c.n * c.l;
    c.z = filled(nz, -3, 3, 601);
    c.w_pos = filled(c.l, 0.1f, 0.9f, 602);
    c.w_neg = filled(c.l, 0.1f, 0.9f, 603);
    c.y = malloc(nz);
    float *coin = filled(nz, 0, 1, 604), *dz = malloc(nz * sizeof *dz);
    for (size_t i = 0; i < nz; i++) c.y[i] = coin[i] < 0.4f;

    th_wbce_logits(c.n, c.l, c.z, c.y, c.w_pos, c.w_neg, dz);
    check_fd("weighted bce dz", wbce_obj, &c, c.z, nz, dz, 1e-3f);

    /* One-hot rows: image i has class (2*i + 1) mod L. */
    memset(c.y, 0, nz);
    for (int i = 0; i < c.n; i++) c.y[i * c.l + (2 * i + 1) % c.l] = 1;
    th_softmax_ce(c.n, c.l, c.z, c.y, dz);
    check_fd("softmax ce dz", softmax_obj, &c, c.z, nz, dz, 1e-3f);

    free(c.z), free(c.w_pos), free(c.w_neg), free(c.y), free(coin), free(dz);
}

int main(void)
{
    test_conv(2, 3, 7, 6, 4, 3, 1, 1, 1, 0);
    test_conv(2, 3, 7, 6, 4, 3, 1, 0, 2, 1);
    test_conv(2, 3, 7, 6, 4, 3, 2, 0, 1, 2);
    test_conv(3, 3, 7, 6, 4, 3, 2, 1, 2, 0);
    test_conv(1, 2, 9, 8, 3, 5, 2, 2, 1, 1);
    test_conv(3, 4, 5, 6, 3, 1, 1, 0, 2, 2);  /* few taps: the direct loop */
    test_conv(2, 1, 4, 40, 5, 3, 1, 1, 2, 0); /* ... with its vector blocks */
    test_conv_pool(3, 1, 9, 70, 6, 3, 2, 0);  /* direct: odd rows, vector blocks and tails */
    test_conv_pool(2, 2, 8, 8, 3, 3, 1, 0);
    test_conv_pool(3, 5, 9, 7, 6, 3, 2, 0);   /* GEMM: odd rows and columns */
    test_conv_pool(2, 5, 11, 8, 4, 3, 1, 1);  /* ... blocks of 1 row: pairs */
    test_conv_pool(2, 5, 12, 6, 4, 3, 2, 5);  /* ... odd blocks, even rows */
    test_conv_pool(2, 40, 7, 6, 3, 1, 2, 3);  /* pointwise, odd rows */
    test_conv(3, 40, 5, 6, 3, 1, 1, 0, 2, 2); /* pointwise GEMM: no columns */
    test_pool(POOL_MAX, 2, 2);
    test_pool(POOL_MAX, 3, 2);
    test_pool(POOL_AVG, 2, 2);
    test_pool(POOL_AVG, 3, 2);
    test_pool(POOL_GAP, 0, 0);
    test_pool_values();
    test_relu();
    test_dropout();
    test_batchnorm();
    test_dense();
    test_losses();
    return th_test_summary("test_layers_grad");
}

/* test_arena.c - the model's activation arena (model_alloc.c, arena.c) and
 * the utilities it stands on: th_alloc_aligned and its out-of-memory hook,
 * TH_ASSERT.
 *
 * The arena's buffers are recounted here from the layers' shapes, not from
 * the code that carves them: every buffer a layer should have is there, 64-
 * byte aligned, inside the block and apart from every other, and the block's
 * size is exactly their sum. */
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "thorax/util.h"
#include "thorax/nn.h"

enum { N = 3, C = 1, H = 16, W = 16, LABELS = 2 };

/* A tiny chain: conv+ReLU+2x2 pool (fused into one pass), batch-norm,
 * conv+ReLU (fused, sharing one buffer), dropout, gap, dense. */
static th_model_spec tiny_spec(void)
{
    th_model_spec s = {.c = C, .h = H, .w = W};
    th_layer_spec *l = s.layers;
    l[s.n_layers++] = th_test_layer(TH_LAYER_CONV, 4, 3, 1, 1);
    l[s.n_layers++] = th_test_layer(TH_LAYER_RELU, 0, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_MAXPOOL, 0, 2, 2, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_BATCHNORM, 0, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_CONV, 6, 3, 1, 1);
    l[s.n_layers++] = th_test_layer(TH_LAYER_RELU, 0, 0, 0, 0);
    l[s.n_layers] = th_test_layer(TH_LAYER_DROPOUT, 0, 0, 0, 0);
    l[s.n_layers++].p = 0.25f;
    l[s.n_layers++] = th_test_layer(TH_LAYER_GAP, 0, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_DENSE, TH_OUT_LABELS, 0, 0, 0);
    return s;
}

/* ResNet-like: a stem (conv, bn, relu, 3x3/2 max-pool), an identity and a
 * strided residual block, a dense block and a transition, gap, dense: the
 * shortcuts and concatenations give outputs with gradients of their own. */
static th_model_spec resnet_spec(void)
{
    th_model_spec s = {.c = C, .h = H, .w = W};
    th_layer_spec *l = s.layers;
    l[s.n_layers++] = th_test_layer(TH_LAYER_CONV, 4, 3, 1, 1);
    l[s.n_layers++] = th_test_layer(TH_LAYER_BATCHNORM, 0, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_RELU, 0, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_MAXPOOL, 0, 3, 2, 1);   /* 4 x 8 x 8 */
    l[s.n_layers++] = th_test_layer(TH_LAYER_RESBLOCK, 4, 0, 1, 0);  /* identity shortcut */
    l[s.n_layers++] = th_test_layer(TH_LAYER_RESBLOCK, 8, 0, 2, 0);  /* 8 x 4 x 4, 1x1 shortcut */
    l[s.n_layers] = th_test_layer(TH_LAYER_DENSEBLOCK, 0, 0, 0, 0);  /* 8 + 2 x 3 = 14 maps */
    l[s.n_layers].layers = 2, l[s.n_layers].growth = 3, l[s.n_layers++].bn_size = 2;
    l[s.n_layers++] = th_test_layer(TH_LAYER_TRANSITION, 6, 0, 0, 0); /* 6 x 2 x 2 */
    l[s.n_layers++] = th_test_layer(TH_LAYER_GAP, 0, 0, 0, 0);
    l[s.n_layers++] = th_test_layer(TH_LAYER_DENSE, TH_OUT_LABELS, 0, 0, 0);
    return s;
}

typedef struct buf {
    const char *p;
    size_t bytes;
} buf;

/* Adds a buffer the model should have (p must be set) of n elements of
 * elem bytes; returns 0 if it is missing. */
static int expect(buf *b, int *nb, const void *p, size_t n, size_t elem)
{
    if (!p) return 0;
    b[(*nb)++] = (buf){p, n * elem};
    return 1;
}

static int by_address(const void *a, const void *b)
{
    const char *x = ((const buf *)a)->p, *y = ((const buf *)b)->p;
    return x < y ? -1 : x > y;
}

/* Recounts m's activation buffers from its layers' shapes and checks the
 * arena holds exactly them. */
static void check_arena(const th_model *m, const char *what)
{
    const size_t nb = (size_t)m->max_batch;
    buf *b = calloc((size_t)m->n_layers * 8 + 4, sizeof *b);
    int n = 0, missing = 0;
    size_t largest = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const th_layer *L = &m->layers[i];
        size_t out = nb * L->out_c * L->out_h * L->out_w, in = nb * L->in_c * L->in_h * L->in_w;
        if (out > largest) largest = out;
        if (in > largest) largest = in;
        int pooled = (L->fused & TH_FUSED_POOL) && L->spec.type != TH_LAYER_MAXPOOL;
        if (pooled) CHECK(L->y == NULL);
        else if ((L->fused & (TH_FUSED_RELU | TH_FUSED_ADDRELU)) && L->spec.type == TH_LAYER_RELU)
            CHECK(L->y == m->layers[i - 1].y);  /* in place */
        else if ((L->fused & TH_FUSED_BNRELU) && L->spec.type == TH_LAYER_BATCHNORM) CHECK(L->y == NULL);  /* the ReLU's only */
        else missing += !expect(b, &n, L->y, out, sizeof(float));
        if (L->dy_own) expect(b, &n, L->dy_own, out, sizeof(float));
        switch (L->spec.type) {
        case TH_LAYER_MAXPOOL: missing += !expect(b, &n, L->argmax, out, sizeof(int32_t)); break;
        case TH_LAYER_DROPOUT: missing += !expect(b, &n, L->mask, out, 1); break;
        case TH_LAYER_BATCHNORM:
            /* A batch-norm fused with its ReLU recomputes xhat in backward. */
            if (L->fused & TH_FUSED_BNRELU) CHECK(L->xhat == NULL);
            else missing += !expect(b, &n, L->xhat, in, sizeof(float));
            missing += !expect(b, &n, L->mean, (size_t)L->in_c, sizeof(float));
            missing += !expect(b, &n, L->invstd, (size_t)L->in_c, sizeof(float));
            missing += !expect(b, &n, L->frozen_dstat, 2 * (size_t)L->in_c, sizeof(float));
            break;
        default: CHECK(!L->argmax && !L->mask && !L->xhat && !L->mean && !L->invstd && !L->frozen_dstat);
        }
    }
    if (m->grad_in) expect(b, &n, m->grad_in, nb * C * H * W, sizeof(float));
    missing += !expect(b, &n, m->grad_a, largest, sizeof(float));
    missing += !expect(b, &n, m->grad_b, largest, sizeof(float));
    missing += !expect(b, &n, m->gsrc, (size_t)m->n_layers + 1, sizeof(float *));
    if (!CHECK(missing == 0)) fprintf(stderr, "    %s: %d buffers missing\n", what, missing);

    size_t sum = 0;
    int misaligned = 0, outside = 0, overlaps = 0;
    const char *lo = m->act_arena, *hi = lo + m->act_bytes;
    for (int k = 0; k < n; k++) {
        sum += th_align_up(b[k].bytes);
        misaligned += (uintptr_t)b[k].p % 64 != 0;
        outside += b[k].p < lo || b[k].p + b[k].bytes > hi;
    }
    /* Pairwise apart: sorted by start, each ends before the next begins. */
    qsort(b, (size_t)n, sizeof *b, by_address);
    for (int k = 0; k + 1 < n; k++) overlaps += b[k].p + b[k].bytes > b[k + 1].p;
    if (!CHECK(sum == m->act_bytes))
        fprintf(stderr, "    %s: buffers sum to %zu bytes, arena has %zu\n", what, sum, m->act_bytes);
    if (!CHECK(misaligned == 0 && outside == 0 && overlaps == 0))
        fprintf(stderr, "    %s: %d misaligned, %d outside, %d overlapping of %d\n", what, misaligned, outside, overlaps, n);
    free(b);
}

/* Both nets, and the tiny one again after th_model_keep_output re-carves
 * its arena with room for the outputs that fusion had saved. */
static void test_layout(void)
{
    th_model_spec specs[2] = {tiny_spec(), resnet_spec()};
    for (int k = 0; k < 2; k++) {
        th_model m;
        th_err err;
        if (!CHECK(th_model_create(&m, &specs[k], LABELS, N, &err) == 0)) {
            fprintf(stderr, "    %s\n", err.msg);
            continue;
        }
        check_arena(&m, k ? "resnet" : "tiny");
        if (k == 0) {
            /* One group fused with its pool, one without: both get their outputs back. */
            CHECK(m.layers[0].fused == (TH_FUSED_RELU | TH_FUSED_POOL) && m.layers[4].fused == TH_FUSED_RELU);
            size_t before = m.act_bytes;
            CHECK(th_model_keep_output(&m, 0, &err) == 0 && th_model_keep_output(&m, 4, &err) == 0);
            CHECK(!m.layers[0].fused && !m.layers[4].fused && m.layers[0].y && m.layers[4].y != m.layers[5].y);
            /* conv1's [N, 4, 16, 16] and relu1's, and conv2's own [N, 6, 8, 8]. */
            CHECK(m.act_bytes == before + 2 * th_align_up(N * 4 * H * W * 4) + th_align_up(N * 6 * 8 * 8 * 4));
            check_arena(&m, "tiny, outputs kept");
        } else {
            /* The residual blocks' inputs gather their gradients in buffers of their own. */
            int own = 0;
            for (int i = 0; i < m.n_layers; i++) own += m.layers[i].dy_own != NULL;
            CHECK(own >= 2);
        }
        th_model_free(&m);
    }
}

static int oom_calls;
static size_t oom_bytes;
static const char *oom_what;

static void count_oom(size_t bytes, const char *what)
{
    oom_calls++;
    oom_bytes = bytes;
    oom_what = what;
}

/* A batch no machine has room for: more bytes of activations than a 64-bit
 * address space maps (2^47), so the allocation fails whatever the kernel's
 * overcommit policy. The error states the total, in bytes and per image,
 * and names the largest buffer; the handler hears of it once, with that
 * total; the model is left empty. */
static void test_out_of_memory(void)
{
    th_model_spec s = {.c = 1, .h = 128, .w = 128};
    s.layers[s.n_layers++] = th_test_layer(TH_LAYER_CONV, 8, 3, 1, 1);
    s.layers[s.n_layers++] = th_test_layer(TH_LAYER_RELU, 0, 0, 0, 0);
    s.layers[s.n_layers++] = th_test_layer(TH_LAYER_GAP, 0, 0, 0, 0);
    s.layers[s.n_layers++] = th_test_layer(TH_LAYER_DENSE, TH_OUT_LABELS, 0, 0, 0);
    th_model m;
    th_err err;
    th_set_oom_handler(count_oom);
    CHECK(th_model_create(&m, &s, LABELS, INT_MAX, &err) == -1);
    CHECK(strstr(err.msg, "out of memory") != NULL);
    if (!CHECK(oom_calls == 1)) fprintf(stderr, "    the handler was called %d times\n", oom_calls);
    CHECK(oom_bytes > (size_t)1 << 47);
    CHECK(oom_what && strstr(oom_what, "activations"));
    char total[48];
    snprintf(total, sizeof total, "(%zu bytes)", oom_bytes);
    CHECK(strstr(err.msg, total) != NULL);
    CHECK(strstr(err.msg, "2147483647 images") && strstr(err.msg, "per image") && strstr(err.msg, "conv1.y"));
    CHECK(m.act_arena == NULL && m.layers == NULL && m.params == NULL);
    fprintf(stderr, "  (expected) %s\n", err.msg);

    /* The default handler does nothing: the error alone reports it. */
    th_set_oom_handler(NULL);
    CHECK(th_model_create(&m, &s, LABELS, INT_MAX, &err) == -1 && oom_calls == 1);
    CHECK(strstr(err.msg, "out of memory") != NULL);
}

static void test_alloc_aligned(void)
{
    size_t sizes[] = {0, 1, 63, 64, 65, 4096, 1000003};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        unsigned char *p = th_alloc_aligned(sizes[k], "test");
        CHECK(p != NULL && (uintptr_t)p % TH_ALIGN == 0);
        int zero = 1;
        for (size_t i = 0; p && i < sizes[k]; i++) zero &= p[i] == 0;
        CHECK(zero);
        if (p && sizes[k]) memset(p, 0xff, sizes[k]);
        th_free_aligned(p);
    }
    th_free_aligned(NULL);
    CHECK(th_align_up(0) == 0 && th_align_up(1) == 64 && th_align_up(64) == 64 && th_align_up(65) == 128);
}

/* A batch larger than the model was sized for is a bug in the caller:
 * TH_ASSERT stops it (in a child) with the file, line and condition. */
static void test_assert(void)
{
    int fds[2];
    if (!CHECK(pipe(fds) == 0)) return;
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        th_model_spec s = tiny_spec();
        th_model m;
        th_err err;
        if (th_model_create(&m, &s, LABELS, 1, &err)) _exit(3);
        static float x[2 * C * H * W];
        th_model_forward(&m, x, 2, 0);
        _exit(0);
    }
    close(fds[1]);
    char out[512] = "";
    size_t len = 0;
    ssize_t r;
    while (len + 1 < sizeof out && (r = read(fds[0], out + len, sizeof out - 1 - len)) > 0) len += (size_t)r;
    out[len] = '\0';
    close(fds[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    if (!CHECK(strstr(out, "model.c:") && strstr(out, "assertion failed: n >= 0 && n <= m->max_batch")))
        fprintf(stderr, "    child said: %s\n", out);
}

int main(void)
{
    test_alloc_aligned();
    test_layout();
    test_out_of_memory();
    test_assert();
    return th_test_summary("test_arena");
}

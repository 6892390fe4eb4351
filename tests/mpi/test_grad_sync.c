/* test_grad_sync.c - the bucketed, overlapped gradient allreduce
 * (th_grad_sync) gives th_dist_allreduce_mean's result, with uneven shares
 * and a rank that holds no image (whose backward reports every layer's zero
 * gradient at once), for buckets of one layer, of several, of the whole model, and for
 * the blocking path; and it really starts buckets during backward. Two
 * models: a small one, and one whose gradients are large enough for Open
 * MPI's blocking allreduce to pick another algorithm than for small buffers.
 *
 * Bit for bit on 2 and 4 ranks. Why not always: Open MPI's non-blocking
 * allreduce (coll/libnbc) sums an MPI_IN_PLACE buffer with a binomial tree,
 * whatever its size, so every bucket size gives the same bits; the blocking
 * one (coll/tuned) picks its algorithm by message size, and algorithms
 * associate the ranks' terms differently. Two terms commute exactly; on 4
 * ranks tuned's choices (4 B to 32 MB probed, Open MPI 4.1) all sum
 * (r0 + r1) + (r2 + r3) as the binomial tree does; on 3 or 5 ranks they do
 * not, and the two paths may differ in the last bits: there the test asks
 * for the rounding bound of a reassociated sum instead. Run under mpirun. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grad_batch.h"
#include "testutil.h"
#include "thorax/dist.h"
#include "thorax/train.h"
#include "thorax/nn.h"

static int rank, size;

/* conv-bn-relu-pool, a strided conv, GAP, a hidden dense layer of `hidden`
 * units, and the output layer: six parameter ranges of very different sizes. */
static th_model_spec spec(int hidden)
{
    th_model_spec s = {.c = 1, .h = H, .w = W};
    th_layer_spec conv = {.type = TH_LAYER_CONV, .k = 3, .stride = 1, .pad = 1, .bias = 1};
    th_layer_spec *l = s.layers;
    l[s.n_layers] = conv, l[s.n_layers++].out = 4;
    l[s.n_layers++] = (th_layer_spec){.type = TH_LAYER_BATCHNORM, .momentum = 0.1f, .eps = 1e-5f};
    l[s.n_layers++] = (th_layer_spec){.type = TH_LAYER_RELU};
    l[s.n_layers++] = (th_layer_spec){.type = TH_LAYER_MAXPOOL, .k = 2, .stride = 2};
    l[s.n_layers] = conv, l[s.n_layers].stride = 2, l[s.n_layers++].out = 32;
    l[s.n_layers++] = (th_layer_spec){.type = TH_LAYER_RELU};
    l[s.n_layers++] = (th_layer_spec){.type = TH_LAYER_GAP};
    l[s.n_layers++] = (th_layer_spec){.type = TH_LAYER_DENSE, .out = hidden, .bias = 1};
    l[s.n_layers++] = (th_layer_spec){.type = TH_LAYER_RELU};
    l[s.n_layers++] = (th_layer_spec){.type = TH_LAYER_DENSE, .out = TH_OUT_LABELS, .bias = 1};
    return s;
}

/* Wraps the sync's hook to see how far it got after each layer reported. */
typedef struct probe {
    th_grad_sync *sync;
    int calls;
    int started_after_first;    /* buckets in flight after the first (top) layer reported */
} probe;

static void probe_ready(void *ctx, size_t offset, size_t count)
{
    probe *p = ctx;
    th_grad_sync_ready(p->sync, offset, count);
    if (p->calls++ == 0) p->started_after_first = p->sync->started;
}

/* Same buckets on every rank: the precondition of matching collectives. */
static int same_on_all_ranks(const th_grad_sync *s)
{
    unsigned long h = 0;
    for (int b = 0; b < s->n_buckets; b++) h = (h * 31 + s->lo[b] % 1000003) * 31 + s->hi[b] % 1000003;
    long mine[2] = {s->n_buckets, (long)(h % 1000000007)}, lo[2], hi[2];
    MPI_Allreduce(mine, lo, 2, MPI_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(mine, hi, 2, MPI_LONG, MPI_MAX, MPI_COMM_WORLD);
    return lo[0] == hi[0] && lo[1] == hi[1];
}

/* How many gradients differ from want, and the largest difference in units
 * of the last place (floats of one sign compare as integers). */
static size_t differences(const float *got, const float *want, size_t n, long *max_ulp)
{
    size_t bad = 0;
    *max_ulp = 0;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&got[i], &want[i], sizeof(float)) == 0) continue;
        bad++;
        int32_t a, b;
        memcpy(&a, &got[i], 4);
        memcpy(&b, &want[i], 4);
        long d = labs((long)a - (long)b);
        if (d > *max_ulp) *max_ulp = d;
    }
    return bad;
}

/* Gradients that differ from want by more than reassociating the sum of
 * size terms can: size * FLT_EPSILON * (the mean of the terms' magnitudes). */
static size_t beyond_rounding(const float *got, const float *want, const float *abs_mean, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += fabsf(got[i] - want[i]) > size * FLT_EPSILON * abs_mean[i];
    return bad;
}

static void test_bucket_floats(void)
{
    CHECK(th_grad_sync_bucket_floats(0) == 0);
    CHECK(th_grad_sync_bucket_floats(-1) == 0);
    CHECK(th_grad_sync_bucket_floats(0.5) == 131072);
    CHECK(th_grad_sync_bucket_floats(25) == 25u << 18);
    CHECK(th_grad_sync_bucket_floats(1e-12) == 1); /* never rounds to the blocking path */
    CHECK(th_grad_sync_bucket_floats(1e30) == SIZE_MAX);
}

/* One model: every bucket size against the blocking reference. */
static void test_model(int hidden, const float *x, const uint8_t *y, const int *counts)
{
    int first = 0;
    for (int r = 0; r < rank; r++) first += counts[r];
    int n = counts[rank];
    th_model m;
    th_err err = {{0}};
    th_model_spec s = spec(hidden);
    CHECK(th_model_create(&m, &s, L, TOTAL, &err) == 0);
    th_model_init_params(&m, 77);
    size_t np = m.n_params;
    float dz[TOTAL * L];
    float *local = malloc(sizeof(float) * np), *want = malloc(sizeof(float) * np);
    float *abs_mean = malloc(sizeof(float) * np), *bucketed = malloc(sizeof(float) * np);
    int have_bucketed = 0;
    int bitwise = size == 2 || size == 4;

    /* This rank's own gradient, twice: backward is deterministic, so a hooked
     * backward reduces exactly these numbers. */
    grad_batch_local(&m, x, y, first, n, dz);
    memcpy(local, m.grads, sizeof(float) * np);
    grad_batch_local(&m, x, y, first, n, dz);
    CHECK(memcmp(local, m.grads, sizeof(float) * np) == 0);
    memcpy(want, local, sizeof(float) * np);
    CHECK(th_dist_allreduce_mean(MPI_COMM_WORLD, want, np, TOTAL, &err) == 0);
    for (size_t i = 0; i < np; i++) abs_mean[i] = fabsf(local[i]);
    CHECK(th_dist_allreduce_mean(MPI_COMM_WORLD, abs_mean, np, TOTAL, &err) == 0);

    int layers_with_params = 0;
    for (int i = 0; i < m.n_layers; i++) layers_with_params += m.layers[i].w_off != SIZE_MAX;
    /* One float: every layer its own bucket; a few hundred: several layers
     * per bucket; SIZE_MAX: one bucket, started by the last layer; 0: the
     * blocking path. */
    const size_t buckets[] = {1, 300, 5000, SIZE_MAX, 0};
    for (size_t k = 0; k < sizeof buckets / sizeof buckets[0]; k++) {
        th_grad_sync sync;
        CHECK(th_model_grad_sync_init(&sync, MPI_COMM_WORLD, &m, buckets[k], &err) == 0);
        CHECK(same_on_all_ranks(&sync));
        if (buckets[k] == 1) CHECK(sync.n_buckets == layers_with_params);
        if (buckets[k] == SIZE_MAX) CHECK(sync.n_buckets == 1);
        if (buckets[k] == 0) CHECK(sync.n_buckets == 0);
        for (int b = 0; b < sync.n_buckets; b++) CHECK(sync.hi[b] > sync.lo[b] && (b == 0 || sync.hi[b] == sync.lo[b - 1]));
        probe p = {.sync = &sync};
        th_model_set_grads_hook(&m, probe_ready, &p);
        /* Two steps on one sync: finish readies it for the next. */
        for (int step = 0; step < 2; step++) {
            p.calls = 0;
            grad_batch_local(&m, x, y, first, n, dz);
            CHECK(th_grad_sync_finish(&sync, TOTAL, &err) == 0);
            long ulp;
            size_t bad = differences(m.grads, want, np, &ulp);
            if (bad && rank == 0 && (bitwise || step == 0))
                printf("rank %d: hidden %d, bucket %zu floats (%d buckets): %zu of %zu gradients differ from "
                       "th_dist_allreduce_mean, by up to %ld ulp%s\n",
                       rank, hidden, buckets[k], sync.n_buckets, bad, np, ulp,
                       bitwise ? "" : " (allowed on this many ranks, within rounding)");
            CHECK(bitwise ? bad == 0 : beyond_rounding(m.grads, want, abs_mean, np) == 0);
            /* Any bucket size gives the same bits as any other. */
            if (buckets[k] > 0 && have_bucketed) CHECK(memcmp(m.grads, bucketed, sizeof(float) * np) == 0);
            if (buckets[k] > 0 && !have_bucketed) memcpy(bucketed, m.grads, sizeof(float) * np), have_bucketed = 1;
            /* Every bucket began during backward; with a bucket per layer, a
             * rank with images began the top one as soon as the top layer
             * reported, before the layers below it ran. */
            CHECK(sync.started_early == sync.n_buckets);
            if (n > 0 && buckets[k] == 1) CHECK(p.started_after_first == 1);
            /* A rank with no image reports every layer's zero gradient at once. */
            if (n == 0) CHECK(p.calls == layers_with_params);
        }
        if (buckets[k] == 1) CHECK(sync.started_early > 1);

        /* A range that does not extend the final region downwards from the
         * top (here the bottom half, reported first) starts nothing; the
         * top half then starts only the buckets wholly inside it; the sums
         * stay right. */
        th_model_set_grads_hook(&m, NULL, NULL);
        memcpy(m.grads, local, sizeof(float) * np);
        size_t half = np / 2;
        int above = 0;
        for (int b = 0; b < sync.n_buckets; b++) above += sync.lo[b] >= half;
        th_grad_sync_ready(&sync, 0, half);
        CHECK(sync.started == 0);
        th_grad_sync_ready(&sync, half, np - half);
        CHECK(sync.started == above);
        CHECK(th_grad_sync_finish(&sync, TOTAL, &err) == 0);
        CHECK(sync.started_early == above);
        long ulp;
        CHECK(differences(m.grads, buckets[k] > 0 ? bucketed : want, np, &ulp) == 0);
        th_grad_sync_free(&sync);
    }
    if (rank == 0)
        printf("ranks %d, %zu parameters (%.1f KiB): bucketed sums equal th_dist_allreduce_mean's%s\n", size, np,
               np * 4 / 1024.0, bitwise ? " bit for bit" : " within rounding");
    free(local);
    free(want);
    free(abs_mean);
    free(bucketed);
    th_model_free(&m);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    /* The same global batch on every rank. */
    float *x = malloc(sizeof(float) * TOTAL * H * W);
    uint8_t y[TOTAL * L];
    grad_batch_make(x, y);

    int counts[64];
    grad_batch_shares(size, counts);
    CHECK(size > 2 ? counts[size - 1] == 0 : counts[size - 1] > 0);

    test_bucket_floats();
    test_model(16, x, y, counts);
    test_model(4096, x, y, counts);

    free(x);
    int failed = th_test_failed, any;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    int rc = rank == 0 ? th_test_summary("test_grad_sync") : (any ? 1 : 0);
    if (rank == 0 && any && !th_test_failed) rc = 1;
    MPI_Finalize();
    return rc;
}

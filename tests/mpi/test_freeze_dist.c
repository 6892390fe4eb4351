/* test_freeze_dist.c - frozen layers across ranks:
 *  - the bucketed gradient sync of a model with frozen layers (at the
 *    bottom, and in the middle, which leaves a gap between two trainable
 *    segments) sums exactly the trainable gradients: bit for bit what a
 *    blocking allreduce of those ranges gives (on 2 and 4 ranks; within
 *    rounding on others, see test_grad_sync.c), for every bucket size, with
 *    the frozen ranges never touched, and carrying exactly the trainable
 *    count of floats per step;
 *  - training steps with a frozen layer in the middle, the batch split
 *    unevenly across the ranks (one rank with no image on 4), end where one
 *    rank training on the whole batch ends: the frozen parameters
 *    bit-identical to their start on every rank, the others equal to 1e-5
 *    and the same bits on every rank. Run under mpirun. */
#include <float.h>
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

/* with_bn: c1 bn1 r1 p1 c2 r2 gap fc1 r3 fc; without, no batch-norm (whose
 * batch statistics differ between a split and a whole batch). */
static th_model_spec spec(int with_bn)
{
    th_model_spec s = {.c = 1, .h = H, .w = W};
    th_layer_spec *l = s.layers;
#define ADD(...) (l[s.n_layers++] = (th_layer_spec){__VA_ARGS__})
    ADD(.type = TH_LAYER_CONV, .name = "c1", .out = 4, .k = 3, .stride = 1, .pad = 1, .bias = 1);
    if (with_bn) ADD(.type = TH_LAYER_BATCHNORM, .name = "bn1", .momentum = 0.1f, .eps = 1e-5f);
    ADD(.type = TH_LAYER_RELU, .name = "r1");
    ADD(.type = TH_LAYER_MAXPOOL, .name = "p1", .k = 2, .stride = 2);
    ADD(.type = TH_LAYER_CONV, .name = "c2", .out = 8, .k = 3, .stride = 2, .pad = 1, .bias = 1);
    ADD(.type = TH_LAYER_RELU, .name = "r2");
    ADD(.type = TH_LAYER_GAP, .name = "gap");
    ADD(.type = TH_LAYER_DENSE, .name = "fc1", .out = 64, .bias = 1);
    ADD(.type = TH_LAYER_RELU, .name = "r3");
    ADD(.type = TH_LAYER_DENSE, .name = "fc", .out = TH_OUT_LABELS, .bias = 1);
#undef ADD
    return s;
}

/* Freezes the layers whose names are in the NULL-terminated list. */
static void freeze(th_model *m, const char *const *names)
{
    for (int i = 0; i < m->n_layers; i++)
        for (const char *const *n = names; *n; n++)
            if (!strcmp(m->layers[i].name, *n)) th_model_freeze(m, i, 1);
}

static int frozen_at(const th_model *m, size_t k)
{
    for (int t = 0; t < m->n_tensors; t++) {
        const th_tensor_info *ti = &m->tensors[t];
        if (ti->trainable && k >= ti->offset && k < ti->offset + ti->count) return m->layers[ti->layer].frozen;
    }
    return 0;
}

static void test_sync(const float *x, const uint8_t *y, const int *counts, const char *const *frozen)
{
    int first = 0, n = counts[rank];
    for (int r = 0; r < rank; r++) first += counts[r];
    th_model m;
    th_err err = {{0}};
    th_model_spec s = spec(1);
    CHECK(th_model_create(&m, &s, L, TOTAL, &err) == 0);
    th_model_init_params(&m, 77);
    freeze(&m, frozen);
    size_t np = m.n_params, n_frozen = 0;
    unsigned char *is_frozen = malloc(np);
    for (size_t k = 0; k < np; k++) n_frozen += is_frozen[k] = (unsigned char)frozen_at(&m, k);
    CHECK(n_frozen > 0);
    const float sentinel = 7.25f;
    float dz[TOTAL * L];
    float *want = malloc(sizeof(float) * np), *bucketed = malloc(sizeof(float) * np);
    int have_bucketed = 0, bitwise = size == 2 || size == 4;

    /* The reference: this rank's gradient, then a blocking allreduce of each
     * trainable tensor alone (elementwise sums: the same bits as any
     * grouping of them into one call). */
    for (size_t k = 0; k < np; k++) m.grads[k] = sentinel;
    grad_batch_local(&m, x, y, first, n, dz);
    memcpy(want, m.grads, sizeof(float) * np);
    for (int t = 0; t < m.n_tensors; t++) {
        const th_tensor_info *ti = &m.tensors[t];
        if (ti->trainable && !m.layers[ti->layer].frozen)
            CHECK(th_dist_allreduce_mean(MPI_COMM_WORLD, want + ti->offset, ti->count, TOTAL, &err) == 0);
    }
    int untouched = 1;
    for (size_t k = 0; k < np; k++) untouched &= !is_frozen[k] || want[k] == sentinel;
    CHECK(untouched);

    const size_t buckets[] = {1, 300, SIZE_MAX, 0};
    for (size_t b = 0; b < sizeof buckets / sizeof buckets[0]; b++) {
        th_grad_sync sync;
        CHECK(th_model_grad_sync_init(&sync, MPI_COMM_WORLD, &m, buckets[b], &err) == 0);
        CHECK(sync.n_sync == np - n_frozen);
        th_model_set_grads_hook(&m, th_grad_sync_ready, &sync);
        for (int step = 0; step < 2; step++) {
            for (size_t k = 0; k < np; k++) m.grads[k] = sentinel;
            grad_batch_local(&m, x, y, first, n, dz);
            CHECK(th_grad_sync_finish(&sync, TOTAL, &err) == 0);
            size_t bad = 0;
            for (size_t k = 0; k < np; k++) {
                int same = memcmp(&m.grads[k], &want[k], sizeof(float)) == 0;
                int close = fabsf(m.grads[k] - want[k]) <= size * FLT_EPSILON * (fabsf(want[k]) + 1e-3f);
                bad += is_frozen[k] ? m.grads[k] != sentinel : !(bitwise ? same : close);
            }
            if (bad && rank == 0)
                printf("frozen %s: bucket %zu floats: %zu of %zu gradients differ\n", frozen[0], buckets[b], bad, np);
            CHECK(bad == 0);
            if (buckets[b] > 0 && have_bucketed) CHECK(memcmp(m.grads, bucketed, sizeof(float) * np) == 0);
            if (buckets[b] > 0 && !have_bucketed) memcpy(bucketed, m.grads, sizeof(float) * np), have_bucketed = 1;
            /* Every bucket began during backward, frozen gaps and all. */
            CHECK(sync.started_early == sync.n_buckets);
            CHECK(sync.floats_reduced == (unsigned long long)(step + 1) * (np - n_frozen));
        }
        th_model_set_grads_hook(&m, NULL, NULL);
        th_grad_sync_free(&sync);
    }
    if (rank == 0)
        printf("ranks %d, frozen %s...: %zu of %zu gradients travel, the sums equal a blocking allreduce's%s\n", size,
               frozen[0], np - n_frozen, np, bitwise ? " bit for bit" : " within rounding");
    free(is_frozen);
    free(want);
    free(bucketed);
    th_model_free(&m);
}

/* Steps of SGD (momentum, weight decay) with c2 frozen, split across the
 * ranks and on the whole batch, from the same start. */
static void test_training(const float *x, const uint8_t *y, const int *counts)
{
    enum { STEPS = 4 };
    static const char *const frozen[] = {"c2", NULL};
    int first = 0, n = counts[rank];
    for (int r = 0; r < rank; r++) first += counts[r];
    th_model m, ref;
    th_err err = {{0}};
    th_model_spec s = spec(0);
    CHECK(th_model_create(&m, &s, L, TOTAL, &err) == 0);
    CHECK(th_model_create(&ref, &s, L, TOTAL, &err) == 0);
    th_model_init_params(&m, 31);
    th_model_init_params(&ref, 31);
    freeze(&m, frozen);
    freeze(&ref, frozen);
    size_t np = m.n_params;
    float *start = malloc(sizeof(float) * np);
    memcpy(start, m.params, sizeof(float) * np);

    /* Groups: the runs of trainable tensors. */
    size_t off[32], cnt[32];
    int ng = 0;
    for (int t = 0; t < m.n_tensors; t++) {
        const th_tensor_info *ti = &m.tensors[t];
        if (!ti->trainable || m.layers[ti->layer].frozen) continue;
        if (ng > 0 && off[ng - 1] + cnt[ng - 1] == ti->offset) {
            cnt[ng - 1] += ti->count;
        } else {
            off[ng] = ti->offset;
            cnt[ng++] = ti->count;
        }
    }
    th_optim_config oc = {.type = TH_OPTIM_SGD, .lr = 0.05f, .momentum = 0.9f, .nesterov = 1, .weight_decay = 0.01f};
    th_optim o, oref;
    CHECK(th_optim_init(&o, &oc, np, &err) == 0 && th_optim_set_groups(&o, ng, off, cnt, &err) == 0);
    CHECK(th_optim_init(&oref, &oc, np, &err) == 0 && th_optim_set_groups(&oref, ng, off, cnt, &err) == 0);
    th_grad_sync sync;
    CHECK(th_model_grad_sync_init(&sync, MPI_COMM_WORLD, &m, 300, &err) == 0);
    th_model_set_grads_hook(&m, th_grad_sync_ready, &sync);
    float dz[TOTAL * L];
    for (int step = 0; step < STEPS; step++) {
        grad_batch_local(&m, x, y, first, n, dz);
        CHECK(th_grad_sync_finish(&sync, TOTAL, &err) == 0);
        th_optim_step(&o, m.params, m.grads, 0.05f);
        grad_batch_local(&ref, x, y, 0, TOTAL, dz);
        for (size_t k = 0; k < np; k++) ref.grads[k] /= TOTAL;
        th_optim_step(&oref, ref.params, ref.grads, 0.05f);
    }
    const th_layer *c2 = NULL;
    for (int i = 0; i < m.n_layers; i++)
        if (!strcmp(m.layers[i].name, "c2")) c2 = &m.layers[i];
    size_t lo = c2->w_off, hi = c2->b_off + (size_t)c2->out_c;
    CHECK(memcmp(m.params + lo, start + lo, (hi - lo) * sizeof(float)) == 0);
    CHECK(memcmp(ref.params + lo, start + lo, (hi - lo) * sizeof(float)) == 0);
    CHECK(memcmp(m.params, start, lo * sizeof(float)) != 0);
    double diff = 0, norm = 0, moved = 0;
    for (size_t k = 0; k < np; k++) {
        diff += ((double)m.params[k] - ref.params[k]) * ((double)m.params[k] - ref.params[k]);
        norm += (double)ref.params[k] * ref.params[k];
        moved += ((double)ref.params[k] - start[k]) * ((double)ref.params[k] - start[k]);
    }
    double rel = sqrt(diff / norm), rel_moved = sqrt(diff / moved);
    if (rank == 0)
        printf("ranks %d, %d steps with c2 frozen: parameters differ from one rank's by %.3g relative (%.3g of the "
               "distance trained)\n",
               size, STEPS, rel, rel_moved);
    CHECK(rel < 1e-5 && rel_moved < 1e-3);
    float *p0 = malloc(sizeof(float) * np);
    memcpy(p0, m.params, sizeof(float) * np);
    MPI_Bcast(p0, (int)np, MPI_FLOAT, 0, MPI_COMM_WORLD);
    CHECK(memcmp(p0, m.params, sizeof(float) * np) == 0);
    free(p0);
    free(start);
    th_grad_sync_free(&sync);
    th_optim_free(&o);
    th_optim_free(&oref);
    th_model_free(&m);
    th_model_free(&ref);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    float *x = malloc(sizeof(float) * TOTAL * H * W);
    uint8_t y[TOTAL * L];
    grad_batch_make(x, y);
    int counts[64];
    grad_batch_shares(size, counts);

    static const char *const bottom[] = {"c1", "bn1", NULL}, *const middle[] = {"c2", NULL},
                             *const top_and_middle[] = {"fc", "c2", NULL};
    test_sync(x, y, counts, bottom);
    test_sync(x, y, counts, middle);
    test_sync(x, y, counts, top_and_middle);
    test_training(x, y, counts);

    free(x);
    int failed = th_test_failed, any;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    int rc = rank == 0 ? th_test_summary("test_freeze_dist") : (any ? 1 : 0);
    if (rank == 0 && any && !th_test_failed) rc = 1;
    MPI_Finalize();
    return rc;
}

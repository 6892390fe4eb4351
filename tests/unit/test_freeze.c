/* test_freeze.c - fine-tuning without MPI:
 *  - optimiser groups: parameters outside every group stay bit-identical
 *    through SGD (momentum, weight decay) and Adam steps, hold no state, and
 *    a group updates exactly as an optimiser of its own range would; a new
 *    group starts from zero state with its own step count, an old one keeps
 *    both;
 *  - a model with frozen layers: their parameters and gradient ranges are
 *    untouched by training steps while the others change, and the gradient
 *    sync covers exactly the trainable ranges, in buckets inside them;
 *  - checkpoints: optimiser state only for the tensors that have some, a
 *    late group's step count, a round trip, and a refusal to load state
 *    written with other layers frozen;
 *  - model.init (th_checkpoint_init_params): copies, reports the tensors the
 *    file lacks, and refuses a missing or truncated file, a shape mismatch
 *    and a tensor the model lacks, naming them, without touching the model;
 *  - the config keys model.init, train.freeze and train.unfreeze: matching,
 *    errors with their key and a suggestion, and the resolved YAML's round
 *    trip. (The multi-rank side is tests/mpi/test_freeze_dist.c.) */
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "thorax/train.h"
#include "thorax/config.h"
#include "thorax/dist.h"
#include "thorax/nn.h"

enum { L = 3, H = 8, W = 8, N = 4 };

/* ---- Optimiser groups ----------------------------------------------------- */

static void fill_grads(float *g, size_t n, int step)
{
    for (size_t i = 0; i < n; i++) g[i] = 0.1f * sinf((float)(i * 7 + 3 * step) + 0.5f);
}

/* Groups {[0,3), [6,10)} of 10: [3,6) never moves, and each group moves as
 * an optimiser over its own range alone. */
static void test_groups(th_optim_type type)
{
    th_optim_config cfg = {.type = type, .lr = 0.1f, .momentum = 0.9f, .nesterov = 1, .weight_decay = 0.01f,
                           .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    enum { P = 10 };
    float p[P], g[P], a[3], b[4], p0[P];
    for (int i = 0; i < P; i++) p[i] = p0[i] = 0.3f * (float)i - 1.0f;
    memcpy(a, p, sizeof a);
    memcpy(b, p + 6, sizeof b);
    th_optim o, oa, ob;
    th_err err;
    CHECK(th_optim_init(&o, &cfg, P, &err) == 0);
    CHECK(th_optim_init(&oa, &cfg, 3, &err) == 0);
    CHECK(th_optim_init(&ob, &cfg, 4, &err) == 0);
    size_t off[] = {0, 6}, cnt[] = {3, 4};
    CHECK(th_optim_set_groups(&o, 2, off, cnt, &err) == 0);
    CHECK(o.n_groups == 2 && o.n_state == 7);
    CHECK(th_optim_find(&o, 3, 3) == NULL && th_optim_find(&o, 2, 2) == NULL);
    CHECK(th_optim_find(&o, 7, 2) == &o.groups[1]);
    for (int step = 0; step < 4; step++) {
        fill_grads(g, P, step);
        th_optim_step(&o, p, g, 0.1f);
        th_optim_step(&oa, a, g, 0.1f);
        th_optim_step(&ob, b, g + 6, 0.1f);
    }
    CHECK(memcmp(p + 3, p0 + 3, 3 * sizeof(float)) == 0);
    CHECK(memcmp(p, a, sizeof a) == 0);
    CHECK(memcmp(p + 6, b, sizeof b) == 0);
    CHECK(p[0] != p0[0] && p[9] != p0[9]);
    CHECK(o.t == 4 && o.groups[0].t == 4 && o.groups[1].t == 4);

    /* Thaw [3,6) as a group of its own: the others keep their state and
     * step counts (their next step still matches the lone optimisers), the
     * new one starts at zero, at t = 0. */
    size_t off2[] = {0, 3, 6}, cnt2[] = {3, 3, 4};
    CHECK(th_optim_set_groups(&o, 3, off2, cnt2, &err) == 0);
    CHECK(o.n_state == 10 && o.groups[0].t == 4 && o.groups[1].t == 0 && o.groups[2].t == 4);
    for (int k = 0; k < 3; k++) CHECK(o.m[o.groups[1].state + (size_t)k] == 0.0f);
    fill_grads(g, P, 9);
    float before = p[4];
    th_optim_step(&o, p, g, 0.1f);
    th_optim_step(&oa, a, g, 0.1f);
    th_optim_step(&ob, b, g + 6, 0.1f);
    CHECK(memcmp(p, a, sizeof a) == 0);
    CHECK(memcmp(p + 6, b, sizeof b) == 0);
    CHECK(o.groups[1].t == 1 && o.t == 5);
    if (type == TH_OPTIM_ADAM) {
        /* Bias-corrected from its own step 1: a first Adam step of about lr,
         * not the ~3 lr a correction at the run's step 5 would give. */
        CHECK_NEAR(fabsf(p[4] - before), 0.1, 2e-3);
    } else {
        /* A momentum buffer from zero: the first step is the plain gradient's. */
        float gg = g[4] + 0.01f * before;
        CHECK_NEAR(p[4], before - 0.1f * (gg + 0.9f * gg), 1e-6);
    }

    /* Bad groups are refused, leaving the optimiser as it was. */
    size_t bad_off[] = {0, 2}, bad_cnt[] = {3, 2};
    CHECK(th_optim_set_groups(&o, 2, bad_off, bad_cnt, &err) == -1 && strstr(err.msg, "overlaps") != NULL);
    CHECK(o.n_groups == 3);
    /* Everything frozen: no state at all, and a step changes nothing. */
    CHECK(th_optim_set_groups(&o, 0, NULL, NULL, &err) == 0);
    CHECK(o.n_state == 0 && o.m == NULL && o.v == NULL);
    memcpy(p0, p, sizeof p);
    th_optim_step(&o, p, g, 0.1f);
    CHECK(memcmp(p, p0, sizeof p) == 0);
    th_optim_free(&o);
    th_optim_free(&oa);
    th_optim_free(&ob);
}

/* ---- A model with frozen layers ------------------------------------------- */

/* c1 bn1 relu pool c2 relu gap fc, every layer named (names do not shift
 * when a test adds one). extra: a batch-norm "extra" after c1. */
static th_model_spec spec_of(int extra, int fc_out)
{
    th_model_spec s = {.c = 1, .h = H, .w = W};
    th_layer_spec *l = s.layers;
#define ADD(...) (l[s.n_layers++] = (th_layer_spec){__VA_ARGS__})
    ADD(.type = TH_LAYER_CONV, .name = "c1", .out = 4, .k = 3, .stride = 1, .pad = 1, .bias = 1);
    if (extra) ADD(.type = TH_LAYER_BATCHNORM, .name = "extra", .momentum = 0.1f, .eps = 1e-5f);
    ADD(.type = TH_LAYER_BATCHNORM, .name = "bn1", .momentum = 0.1f, .eps = 1e-5f);
    ADD(.type = TH_LAYER_RELU, .name = "r1");
    ADD(.type = TH_LAYER_MAXPOOL, .name = "p1", .k = 2, .stride = 2);
    ADD(.type = TH_LAYER_CONV, .name = "c2", .out = 6, .k = 3, .stride = 1, .pad = 1, .bias = 1);
    ADD(.type = TH_LAYER_RELU, .name = "r2");
    ADD(.type = TH_LAYER_GAP, .name = "gap");
    ADD(.type = TH_LAYER_DENSE, .name = "fc", .out = fc_out, .bias = 1);
#undef ADD
    return s;
}

static int layer_named(const th_model *m, const char *name)
{
    for (int i = 0; i < m->n_layers; i++)
        if (!strcmp(m->layers[i].name, name)) return i;
    return -1;
}

/* The optimiser groups of m's layers not frozen: runs of adjacent tensors. */
static int trainable_groups(const th_model *m, size_t *off, size_t *cnt)
{
    int n = 0;
    for (int t = 0; t < m->n_tensors; t++) {
        const th_tensor_info *ti = &m->tensors[t];
        if (!ti->trainable || m->layers[ti->layer].frozen) continue;
        if (n > 0 && off[n - 1] + cnt[n - 1] == ti->offset) {
            cnt[n - 1] += ti->count;
        } else {
            off[n] = ti->offset;
            cnt[n++] = ti->count;
        }
    }
    return n;
}

static void batch(float *x, uint8_t *y)
{
    th_test_fill(x, (size_t)N * H * W, -1, 1, 5);
    for (int i = 0; i < N * L; i++) y[i] = (uint8_t)((i * 7 + 2) % 3 == 0);
}

/* Frozen c2 (in the middle): its weight and bias stay bit-identical through
 * training steps and its gradient range is never written, while c1, bn1 and
 * fc train; the sync covers c1+bn1 and fc, not c2. */
static void test_frozen_model(void)
{
    th_model m;
    th_err err;
    th_model_spec s = spec_of(0, L);
    CHECK(th_model_create(&m, &s, L, N, &err) == 0);
    th_model_init_params(&m, 3);
    int c2 = layer_named(&m, "c2"), fc = layer_named(&m, "fc");
    CHECK(c2 >= 0 && fc >= 0);
    th_model_freeze(&m, c2, 1);
    const th_layer *F = &m.layers[c2];
    size_t c2_lo = F->w_off, c2_hi = F->b_off + (size_t)F->out_c;
    float *before = malloc(sizeof(float) * m.n_params);
    memcpy(before, m.params, sizeof(float) * m.n_params);
    for (size_t k = c2_lo; k < c2_hi; k++) m.grads[k] = 1234.5f;

    size_t off[16], cnt[16];
    int ng = trainable_groups(&m, off, cnt);
    CHECK(ng == 2);
    th_optim_config oc = {.type = TH_OPTIM_SGD, .lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.05f};
    th_optim o;
    CHECK(th_optim_init(&o, &oc, m.n_params, &err) == 0);
    CHECK(th_optim_set_groups(&o, ng, off, cnt, &err) == 0);
    CHECK(o.n_state == m.n_params - (c2_hi - c2_lo));
    for (int t = 0; t < m.n_tensors; t++) {
        const th_tensor_info *ti = &m.tensors[t];
        if (ti->trainable) CHECK((th_optim_find(&o, ti->offset, ti->count) == NULL) == (ti->layer == c2));
    }

    float x[N * H * W], dz[N * L];
    uint8_t y[N * L];
    batch(x, y);
    static const float w_pos[L] = {0.6f, 0.5f, 0.7f}, w_neg[L] = {0.4f, 0.5f, 0.3f};
    for (int step = 0; step < 3; step++) {
        const float *z = th_model_forward(&m, x, N, 1);
        th_wbce_logits(N, L, z, y, w_pos, w_neg, dz);
        th_model_backward(&m, x, dz, N);
        th_optim_step(&o, m.params, m.grads, 0.1f);
    }
    CHECK(memcmp(m.params + c2_lo, before + c2_lo, (c2_hi - c2_lo) * sizeof(float)) == 0);
    int grads_kept = 1;
    for (size_t k = c2_lo; k < c2_hi; k++) grads_kept &= m.grads[k] == 1234.5f;
    CHECK(grads_kept);
    CHECK(memcmp(m.params, before, c2_lo * sizeof(float)) != 0);
    CHECK(memcmp(m.params + c2_hi, before + c2_hi, (m.n_params - c2_hi) * sizeof(float)) != 0);

    /* The sync: two segments, c2 left out, every bucket inside one. Not
     * collective, so no MPI_Init is needed to form it. */
    const size_t buckets[] = {1, 40, SIZE_MAX, 0};
    for (size_t k = 0; k < sizeof buckets / sizeof buckets[0]; k++) {
        th_grad_sync sync;
        CHECK(th_model_grad_sync_init(&sync, MPI_COMM_WORLD, &m, buckets[k], &err) == 0);
        CHECK(sync.n_segs == 2);
        CHECK(sync.seg_hi[0] == m.n_params && sync.seg_lo[0] == c2_hi);
        CHECK(sync.seg_hi[1] == c2_lo && sync.seg_lo[1] == 0);
        CHECK(sync.n_sync == m.n_params - (c2_hi - c2_lo));
        CHECK(sync.ready_lo == m.n_params);
        size_t covered = 0;
        for (int b = 0; b < sync.n_buckets; b++) {
            int inside = 0;
            for (int j = 0; j < sync.n_segs; j++)
                inside |= sync.lo[b] >= sync.seg_lo[j] && sync.hi[b] <= sync.seg_hi[j];
            CHECK(inside && sync.lo[b] < sync.hi[b]);
            covered += sync.hi[b] - sync.lo[b];
        }
        CHECK(sync.n_buckets == 0 || covered == sync.n_sync);
        /* Per layer: fc and bn1 and c1 (c2 frozen). */
        if (buckets[k] == 1) CHECK(sync.n_buckets == 3);
        /* One bucket per segment at most: a bucket never spans the gap. */
        if (buckets[k] == SIZE_MAX) CHECK(sync.n_buckets == 2);
        th_grad_sync_free(&sync);
    }
    /* Nothing frozen: one segment, the whole buffer, as before freezing existed. */
    th_model_freeze(&m, c2, 0);
    th_grad_sync sync;
    CHECK(th_model_grad_sync_init(&sync, MPI_COMM_WORLD, &m, 1, &err) == 0);
    CHECK(sync.n_segs == 1 && sync.seg_lo[0] == 0 && sync.seg_hi[0] == m.n_params && sync.n_sync == m.n_params);
    CHECK(sync.n_buckets == 4);
    th_grad_sync_free(&sync);

    th_optim_free(&o);
    free(before);
    th_model_free(&m);
}

/* ---- Checkpoints ---------------------------------------------------------- */

static char tmpdir[64];

static int has_dataset(const char *path, const char *name)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    int yes = f >= 0 && H5Lexists(f, name, H5P_DEFAULT) > 0;
    if (f >= 0) H5Fclose(f);
    return yes;
}

/* Adam with fc frozen then thawed late (a group with its own step count):
 * the file holds no state for frozen tensors, the round trip restores state
 * and step counts, and groups of another freezing are refused. */
static void test_checkpoint_groups(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/groups.h5", tmpdir);
    th_model m;
    th_err err;
    th_model_spec s = spec_of(0, L);
    CHECK(th_model_create(&m, &s, L, N, &err) == 0);
    th_model_init_params(&m, 4);
    int c1 = layer_named(&m, "c1");
    th_model_freeze(&m, c1, 1);
    size_t off[16], cnt[16];
    th_optim_config oc = {.type = TH_OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    th_optim o;
    CHECK(th_optim_init(&o, &oc, m.n_params, &err) == 0);
    int ng = trainable_groups(&m, off, cnt);
    CHECK(th_optim_set_groups(&o, ng, off, cnt, &err) == 0);
    for (int step = 0; step < 3; step++) {
        fill_grads(m.grads, m.n_params, step);
        th_optim_step(&o, m.params, m.grads, 0.01f);
    }
    th_train_state st = {.epoch = 1, .step = 3, .lr = 0.01f, .best_score = 0.5};
    CHECK(th_checkpoint_save(path, &m, &o, &st, "name: groups\n", &err) == 0);
    CHECK(has_dataset(path, "/optimizer/bn1.weight.m") && has_dataset(path, "/optimizer/fc.bias.v"));
    CHECK(!has_dataset(path, "/optimizer/c1.weight.m") && !has_dataset(path, "/optimizer/c1.bias.v"));
    CHECK(has_dataset(path, "/params/c1.weight"));

    /* Thaw c1 as its own group, two more steps, save again. */
    size_t off2[] = {m.tensors[0].offset, off[0]}, cnt2[] = {off[0], cnt[0]};
    CHECK(ng == 1 && off[0] == m.tensors[0].count + m.tensors[1].count);
    CHECK(th_optim_set_groups(&o, 2, off2, cnt2, &err) == 0);
    for (int step = 3; step < 5; step++) {
        fill_grads(m.grads, m.n_params, step);
        th_optim_step(&o, m.params, m.grads, 0.01f);
    }
    CHECK(o.t == 5 && o.groups[0].t == 2 && o.groups[1].t == 5);
    CHECK(th_checkpoint_save(path, &m, &o, &st, "name: groups\n", &err) == 0);

    th_model m2;
    th_optim o2;
    CHECK(th_model_create(&m2, &s, L, N, &err) == 0);
    CHECK(th_optim_init(&o2, &oc, m2.n_params, &err) == 0);
    CHECK(th_optim_set_groups(&o2, 2, off2, cnt2, &err) == 0);
    th_train_state st2 = {0};
    CHECK(th_checkpoint_load(path, &m2, &o2, &st2, &err) == 0);
    CHECK(o2.t == 5 && o2.groups[0].t == 2 && o2.groups[1].t == 5);
    CHECK(o2.n_state == o.n_state && memcmp(o2.m, o.m, sizeof(float) * o.n_state) == 0 &&
          memcmp(o2.v, o.v, sizeof(float) * o.n_state) == 0);
    CHECK(memcmp(m2.params, m.params, sizeof(float) * m.n_params) == 0);
    /* One group over everything would need a single step count: refused. */
    th_optim o3;
    CHECK(th_optim_init(&o3, &oc, m2.n_params, &err) == 0);
    CHECK(th_checkpoint_load_optim(path, &m2, &o3, &err) == -1 && strstr(err.msg, "step count") != NULL);
    /* Fewer tensors than the file has state for: written with fewer frozen. */
    CHECK(th_optim_set_groups(&o3, ng, off, cnt, &err) == 0);
    CHECK(th_checkpoint_load_optim(path, &m2, &o3, &err) == -1 && strstr(err.msg, "train.freeze") != NULL);
    th_optim_free(&o3);
    /* More: the file of the frozen stage lacks c1's state. */
    th_optim_set_groups(&o, ng, off, cnt, &err);
    CHECK(th_checkpoint_save(path, &m, &o, &st, "name: groups\n", &err) == 0);
    CHECK(th_checkpoint_load_optim(path, &m2, &o2, &err) == -1 && strstr(err.msg, "c1.weight") != NULL &&
          strstr(err.msg, "train.freeze") != NULL);

    th_optim_free(&o);
    th_optim_free(&o2);
    th_model_free(&m);
    th_model_free(&m2);
}

/* ---- model.init ------------------------------------------------------------ */

/* The checkpoint of a model of spec s (seed 9) at path. */
static void save_model(const char *path, th_model_spec s, int labels)
{
    th_model m;
    th_err err;
    CHECK(th_model_create(&m, &s, labels, 1, &err) == 0);
    th_model_init_params(&m, 9);
    for (size_t k = 0; k < m.n_buffers; k++) m.buffers[k] = 0.25f + 0.01f * (float)k;
    CHECK(th_checkpoint_save(path, &m, NULL, NULL, NULL, &err) == 0);
    th_model_free(&m);
}

/* init from path into a fresh model of spec s must fail naming every word,
 * and leave the model as initialised. */
static void expect_init_fails(const char *path, th_model_spec s, int labels, ...)
{
    th_model m;
    th_err err = {{0}};
    th_init_report r;
    CHECK(th_model_create(&m, &s, labels, 1, &err) == 0);
    th_model_init_params(&m, 1);
    float *p0 = malloc(sizeof(float) * m.n_params), *b0 = malloc(sizeof(float) * (m.n_buffers + 1));
    memcpy(p0, m.params, sizeof(float) * m.n_params);
    memcpy(b0, m.buffers, sizeof(float) * m.n_buffers);
    CHECK(th_checkpoint_init_params(path, &m, &r, &err) == -1);
    va_list ap;
    va_start(ap, labels);
    for (const char *w; (w = va_arg(ap, const char *));)
        if (!CHECK(strstr(err.msg, w) != NULL)) fprintf(stderr, "  message: %s\n  lacks: %s\n", err.msg, w);
    va_end(ap);
    CHECK(memcmp(p0, m.params, sizeof(float) * m.n_params) == 0);
    CHECK(memcmp(b0, m.buffers, sizeof(float) * m.n_buffers) == 0);
    free(p0);
    free(b0);
    th_model_free(&m);
}

static void test_init(void)
{
    char a[128], big[128], missing[128], cut[128];
    snprintf(a, sizeof a, "%s/a.h5", tmpdir);
    snprintf(big, sizeof big, "%s/big.h5", tmpdir);
    snprintf(missing, sizeof missing, "%s/none.h5", tmpdir);
    snprintf(cut, sizeof cut, "%s/cut.h5", tmpdir);
    save_model(a, spec_of(0, L), L);
    save_model(big, spec_of(1, L), L);

    /* The same architecture: every tensor, parameters and buffers. */
    th_model ref, m;
    th_err err;
    th_model_spec s = spec_of(0, L);
    CHECK(th_model_create(&ref, &s, L, 1, &err) == 0);
    CHECK(th_checkpoint_load(a, &ref, NULL, NULL, &err) == 0);
    CHECK(th_model_create(&m, &s, L, 1, &err) == 0);
    th_model_init_params(&m, 1);
    th_init_report r;
    CHECK(th_checkpoint_init_params(a, &m, &r, &err) == 0);
    CHECK(r.loaded == m.n_tensors && r.fresh == 0 && r.fresh_names[0] == '\0');
    CHECK(memcmp(m.params, ref.params, sizeof(float) * m.n_params) == 0);
    CHECK(memcmp(m.buffers, ref.buffers, sizeof(float) * m.n_buffers) == 0);
    th_model_free(&m);

    /* A model with a layer the file lacks: it keeps its initialisation and is
     * reported; everything else comes from the file. */
    th_model_spec sx = spec_of(1, L);
    CHECK(th_model_create(&m, &sx, L, 1, &err) == 0);
    th_model_init_params(&m, 1);
    int ex = th_model_find_tensor(&m, "extra.weight"), fcw = th_model_find_tensor(&m, "fc.weight");
    float gamma = th_model_tensor_data(&m, ex)[0];
    CHECK(th_checkpoint_init_params(a, &m, &r, &err) == 0);
    CHECK(r.loaded == ref.n_tensors && r.fresh == 4);
    CHECK(!strcmp(r.fresh_names, "extra.weight, extra.bias, extra.running_mean, extra.running_var"));
    CHECK(th_model_tensor_data(&m, ex)[0] == gamma);
    CHECK(memcmp(th_model_tensor_data(&m, fcw), th_model_tensor_data(&ref, th_model_find_tensor(&ref, "fc.weight")),
                 sizeof(float) * m.tensors[fcw].count) == 0);
    th_model_free(&m);
    th_model_free(&ref);

    /* Another head: the shape mismatch names the tensor and both shapes. */
    expect_init_fails(a, spec_of(0, 1), 1, "fc.weight has shape [3, 6] in the file, [1, 6] in the model", a, NULL);
    /* A tensor the model lacks: another architecture. */
    expect_init_fails(big, spec_of(0, L), L, big, "4 tensors the model does not have", "extra.weight", NULL);
    expect_init_fails(missing, spec_of(0, L), L, missing, "no such readable file", NULL);
    /* A truncated file fails its checksum walk. */
    FILE *in = fopen(a, "rb"), *out = fopen(cut, "wb");
    char buf[3000];
    size_t got = in ? fread(buf, 1, sizeof buf, in) : 0;
    if (out) fwrite(buf, 1, got, out);
    if (in) fclose(in);
    if (out) fclose(out);
    expect_init_fails(cut, spec_of(0, L), L, cut, NULL);
}

/* ---- Config ---------------------------------------------------------------- */

#define CFG                                                                \
    "data: {path: d.h5}\n"                                                 \
    "model:\n"                                                             \
    "  input: [1, 16, 16]\n"                                               \
    "  layers:\n"                                                          \
    "    - {type: conv, name: stem.conv, out: 4, k: 3, pad: 1}\n"          \
    "    - {type: batchnorm, name: stem.bn}\n"                             \
    "    - {type: relu}\n"                                                 \
    "    - {type: conv, name: layer1, out: 4, k: 3, pad: 1}\n"             \
    "    - {type: conv, name: layer10, out: 4, k: 3, pad: 1}\n"            \
    "    - {type: gap}\n"                                                  \
    "    - {type: dense, out: labels}\n"                                   \
    "train:\n"                                                             \
    "  epochs: 5\n"

static void expect_cfg_error(int line, const char *yaml, const char *set, ...)
{
    static th_config cfg;
    th_err err = {{0}};
    const char *sets[] = {set};
    th_test_check(th_run_config_load_string(&cfg, yaml, "t.yaml", sets, set ? 1 : 0, &err) == -1, __FILE__, line,
                  "loading fails");
    va_list ap;
    va_start(ap, set);
    for (const char *w; (w = va_arg(ap, const char *));)
        if (!th_test_check(strstr(err.msg, w) != NULL, __FILE__, line, "message has the text"))
            fprintf(stderr, "    wanted \"%s\" in \"%s\"\n", w, err.msg);
    va_end(ap);
}
#define CFG_ERROR(yaml, set, ...) expect_cfg_error(__LINE__, (yaml), (set), __VA_ARGS__, (const char *)NULL)

static void test_config(void)
{
    CHECK(th_config_freeze_matches("layer1", "layer1"));
    CHECK(th_config_freeze_matches("layer1", "layer1.0.conv1"));
    CHECK(th_config_freeze_matches("layer1.0", "layer1.0.conv1"));
    CHECK(!th_config_freeze_matches("layer1", "layer10"));
    CHECK(!th_config_freeze_matches("layer1", "layer1x.conv"));
    CHECK(!th_config_freeze_matches("layer1.0.conv1", "layer1"));
    CHECK(!th_config_freeze_matches("", "layer1"));

    static th_config cfg, back;
    th_err err = {{0}};
    /* Defaults: nothing frozen, no init. */
    CHECK(th_run_config_load_string(&cfg, CFG, "t.yaml", NULL, 0, &err) == 0);
    CHECK(cfg.model_init[0] == '\0' && cfg.train.n_freeze == 0 && cfg.train.unfreeze.epoch == 0);

    const char *sets[] = {"model.init=runs/a/checkpoints/best.h5", "train.freeze=[stem, layer1]",
                          "train.unfreeze={epoch: 2, lr: 1.0e-4}"};
    CHECK(th_run_config_load_string(&cfg, CFG, "t.yaml", sets, 3, &err) == 0);
    CHECK(!strcmp(cfg.model_init, "runs/a/checkpoints/best.h5"));
    CHECK(cfg.train.n_freeze == 2 && !strcmp(cfg.train.freeze[1], "layer1"));
    CHECK(cfg.train.unfreeze.epoch == 2 && cfg.train.unfreeze.lr == 1.0e-4f);
    CHECK(th_config_freezes(&cfg, "stem.conv") && th_config_freezes(&cfg, "stem.bn"));
    CHECK(th_config_freezes(&cfg, "layer1") && !th_config_freezes(&cfg, "layer10") && !th_config_freezes(&cfg, "fc"));
    /* The resolved YAML says it all and reads back the same. */
    char *yaml = th_config_to_yaml(&cfg);
    CHECK(yaml && strstr(yaml, "  init: runs/a/checkpoints/best.h5\n") && strstr(yaml, "  freeze: [stem, layer1]\n") &&
          strstr(yaml, "  unfreeze: {epoch: 2, lr: 0.0001}\n"));
    CHECK(th_run_config_load_string(&back, yaml, "resolved.yaml", NULL, 0, &err) == 0);
    char *again = th_config_to_yaml(&back);
    CHECK(again && yaml && !strcmp(yaml, again));
    free(again);
    static const char *const fixed[] = {"seed", "data", "model", "train.freeze", "train.unfreeze", NULL};
    CHECK(th_config_compare(&cfg, &back, fixed, &err) == 0);
    back.train.unfreeze.epoch = 3;
    CHECK(th_config_compare(&cfg, &back, fixed, &err) == -1 && strstr(err.msg, "train.unfreeze: was") != NULL);
    back = cfg;
    back.train.n_freeze = 1;
    CHECK(th_config_compare(&cfg, &back, fixed, &err) == -1 && strstr(err.msg, "train.freeze: was [stem, layer1]"));
    snprintf(back.model_init, sizeof back.model_init, "other.h5");
    back.train.n_freeze = 2;
    CHECK(th_config_compare(&cfg, &back, fixed, &err) == -1 && strstr(err.msg, "model.init: was") != NULL);
    free(yaml);
    /* Without: null, and the same round trip. */
    CHECK(th_run_config_load_string(&cfg, CFG, "t.yaml", NULL, 0, &err) == 0);
    yaml = th_config_to_yaml(&cfg);
    CHECK(yaml && strstr(yaml, "  init: null") && strstr(yaml, "  freeze: []\n") && strstr(yaml, "  unfreeze: null\n"));
    CHECK(th_run_config_load_string(&back, yaml, "resolved.yaml", NULL, 0, &err) == 0);
    again = th_config_to_yaml(&back);
    CHECK(again && yaml && !strcmp(yaml, again));
    free(again);
    free(yaml);
    /* A single name is a list of one; unfreeze's lr defaults to the optimiser's. */
    const char *one[] = {"train.freeze=stem.conv", "train.unfreeze.epoch=1"};
    CHECK(th_run_config_load_string(&cfg, CFG, "t.yaml", one, 2, &err) == 0);
    CHECK(cfg.train.n_freeze == 1 && cfg.train.unfreeze.lr == cfg.train.optimizer.lr);

    /* Errors name the key, and the culprit. */
    CFG_ERROR(CFG, "train.freeze=[stem, layr1]", "train.freeze[1]", "'layr1' matches no layer",
              "did you mean 'layer1'");
    CFG_ERROR(CFG "  freeze: [stem, zzzzzzzz]\n", NULL, "t.yaml:14", "train.freeze[1]", "'zzzzzzzz'",
              "its layers: stem, relu1, layer1, layer10, gap, fc");
    CFG_ERROR(CFG, "train.freeze=[stem, layer1, layer10, fc]", "train.freeze", "nothing would train");
    CFG_ERROR(CFG, "train.freeze=[stem, stem]", "train.freeze[1]", "listed twice");
    CFG_ERROR(CFG, "train.freeze={stem: 1}", "train.freeze", "must be a list of layer names");
    CFG_ERROR(CFG, "train.unfreeze={epoch: 2}", "train.unfreeze", "needs train.freeze");
    CFG_ERROR(CFG "  freeze: [stem]\n  unfreeze: {epoch: 5}\n", NULL, "t.yaml:15", "train.unfreeze.epoch",
              "must be below train.epochs (5)");
    CFG_ERROR(CFG "  freeze: [stem]\n  unfreeze: 2\n", NULL, "train.unfreeze", "must be a mapping");
    CFG_ERROR(CFG "  freeze: [stem]\n  unfreeze: {lr: 0.1}\n", NULL, "train.unfreeze.epoch", "is required");
    CFG_ERROR(CFG "  freeze: [stem]\n  unfreeze: {epoch: 1, lr: -1}\n", NULL, "train.unfreeze.lr", "must be > 0");
    CFG_ERROR(CFG "  freeze: [stem]\n  unfreeze: {epcoh: 1}\n", NULL, "train.unfreeze.epcoh", "did you mean 'epoch'");
    CFG_ERROR(CFG "  frezee: [stem]\n", NULL, "train.frezee", "did you mean 'freeze'");
    CFG_ERROR(CFG, "train.unfreez.epoch=1", "unknown key 'unfreez'", "did you mean 'unfreeze'");
    CFG_ERROR(CFG, "model.innit=a.h5", "unknown key 'innit'", "did you mean 'init'");
    CFG_ERROR(CFG, "model.init=[a.h5]", "model.init", "must be a string");
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/thorax-freeze-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    test_groups(TH_OPTIM_SGD);
    test_groups(TH_OPTIM_ADAM);
    test_frozen_model();
    test_checkpoint_groups();
    test_init();
    test_config();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return th_test_summary("test_freeze");
}

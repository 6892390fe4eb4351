/* test_split_props.c - properties of the stratified patient split on many
 * generated index tables: random patients with 1-50 images, labels from
 * common to rare, labels correlated within a patient (as findings are). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "thorax/util.h"
#include "thorax/data.h"

enum { L = 5, TRIALS = 120 };
static const double prevalence[L] = {0.30, 0.10, 0.04, 0.01, 0.003};

typedef struct {
    int n, patients;
    char **id;
    uint8_t *y; /* [n, L] */
} table;

static table make_table(uint64_t seed)
{
    th_rng r;
    th_rng_seed(&r, seed, 1);
    table t = {.patients = 20 + (int)th_rng_below(&r, 280)};
    int cap = t.patients * 50;
    t.id = malloc(sizeof(char *) * (size_t)cap);
    t.y = calloc((size_t)cap * L, 1);
    for (int p = 0; p < t.patients; p++) {
        int images = 1 + (int)th_rng_below(&r, 50);
        int has[L];
        for (int l = 0; l < L; l++) has[l] = th_rng_uniform(&r) < prevalence[l] * 2;
        for (int k = 0; k < images; k++) {
            char buf[32];
            snprintf(buf, sizeof buf, "pat%05d", (p * 7919) % 100003); /* IDs not in row order */
            t.id[t.n] = strdup(buf);
            for (int l = 0; l < L; l++) t.y[(size_t)t.n * L + l] = has[l] && th_rng_uniform(&r) < 0.5;
            t.n++;
        }
    }
    /* Shuffle rows so that a patient's images are not contiguous. */
    for (int i = t.n - 1; i > 0; i--) {
        int j = (int)th_rng_below(&r, (uint32_t)i + 1);
        char *c = t.id[i];
        t.id[i] = t.id[j];
        t.id[j] = c;
        for (int l = 0; l < L; l++) {
            uint8_t v = t.y[(size_t)i * L + l];
            t.y[(size_t)i * L + l] = t.y[(size_t)j * L + l];
            t.y[(size_t)j * L + l] = v;
        }
    }
    return t;
}

static void free_table(table *t)
{
    for (int i = 0; i < t->n; i++) free(t->id[i]);
    free(t->id);
    free(t->y);
}

/* Mean over labels with >= 20 positive images of |share of positives in
 * split s - fraction of s|, over the three splits. */
static double imbalance(const table *t, const uint8_t *split, const double f[3])
{
    double dev = 0;
    int used = 0;
    for (int l = 0; l < L; l++) {
        double pos[3] = {0, 0, 0}, total = 0;
        for (int i = 0; i < t->n; i++)
            if (t->y[(size_t)i * L + l]) pos[split[i]]++, total++;
        if (total < 20) continue;
        for (int s = 0; s < 3; s++) dev += fabs(pos[s] / total - f[s]);
        used++;
    }
    return used ? dev / (3 * used) : 0;
}

int main(void)
{
    const double f[3] = {0.7, 0.15, 0.15};
    double dev_strat = 0, dev_random = 0;
    int compared = 0;
    for (int trial = 0; trial < TRIALS; trial++) {
        table t = make_table(1000 + (uint64_t)trial);
        const char *const *ids = (const char *const *)t.id;
        uint8_t *a = malloc((size_t)t.n), *b = malloc((size_t)t.n), *plain = malloc((size_t)t.n);
        th_err err;
        CHECK(th_split_by_patient(t.n, ids, t.y, L, f[0], f[1], 42 + trial, a, &err) == 0);

        /* No patient in two splits; every image in exactly one split. */
        CHECK(th_split_count_leaks(t.n, ids, a, NULL, NULL) == 0);
        int ok = 1;
        for (int i = 0; i < t.n; i++) ok &= a[i] <= TH_SPLIT_TEST;
        CHECK(ok);

        /* Patient counts within one patient of the target fractions. */
        int *patient_of = malloc(sizeof(int) * (size_t)t.n);
        int P = th_patients_group(t.n, ids, patient_of);
        CHECK(P == t.patients);
        int count[3] = {0, 0, 0};
        uint8_t *seen = calloc((size_t)P, 1);
        for (int i = 0; i < t.n; i++)
            if (!seen[patient_of[i]]) seen[patient_of[i]] = 1, count[a[i]]++;
        for (int s = 0; s < 3; s++)
            if (!CHECK(fabs(count[s] - f[s] * P) <= 1.0 + 1e-9))
                fprintf(stderr, "  trial %d: split %d has %d of %d patients\n", trial, s, count[s], P);

        /* Deterministic for a seed. */
        CHECK(th_split_by_patient(t.n, ids, t.y, L, f[0], f[1], 42 + trial, b, &err) == 0);
        CHECK(memcmp(a, b, (size_t)t.n) == 0);

        CHECK(th_split_by_patient(t.n, ids, NULL, 0, f[0], f[1], 42 + trial, plain, &err) == 0);
        dev_strat += imbalance(&t, a, f);
        dev_random += imbalance(&t, plain, f);
        compared++;
        free(seen);
        free(patient_of);
        free(a);
        free(b);
        free(plain);
        free_table(&t);
    }
    /* Stratification keeps label prevalence markedly closer to the fractions
     * than a plain random split of the same patients. */
    dev_strat /= compared;
    dev_random /= compared;
    printf("mean |positive share - fraction|: stratified %.4f, random %.4f\n", dev_strat, dev_random);
    CHECK(dev_strat < 0.6 * dev_random);
    return th_test_summary("test_split_props");
}

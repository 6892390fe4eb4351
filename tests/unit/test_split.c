/* test_split.c - patient-level splits and shards (thorax/data.h).
 *
 * Synthetic patients with 1-6 images each in shuffled row order: the split
 * must never put a patient on both sides, must hit the fractions to within a
 * patient, must depend only on (seed, set of IDs), and the shards must keep
 * patients whole and balance the ranks. When the real NIH sample is present,
 * its leaky predefined split is a known case: exactly 30 leaking patients.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "thorax/util.h"
#include "thorax/data.h"

#define N_PATIENTS 300

typedef struct {
    int n;
    char **id;        /* [n] patient ID per row */
    int *patient;     /* [n] the generating patient number, for checks */
} cohort;

/* 300 patients with 1..6 images each (about 1000 rows), rows shuffled. */
static cohort make_cohort(uint64_t seed)
{
    th_rng r;
    th_rng_seed(&r, seed, 1);
    int counts[N_PATIENTS], n = 0;
    for (int p = 0; p < N_PATIENTS; p++) n += counts[p] = 1 + (int)th_rng_below(&r, 6);
    cohort c = {n, malloc((size_t)n * sizeof(char *)), malloc((size_t)n * sizeof(int))};
    int *order = malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) order[i] = i;
    th_rng_shuffle(&r, order, n);
    int row = 0;
    for (int p = 0; p < N_PATIENTS; p++)
        for (int k = 0; k < counts[p]; k++, row++) {
            c.id[order[row]] = malloc(16);
            snprintf(c.id[order[row]], 16, "PT%07d", p * 7919 % 100003);
            c.patient[order[row]] = p;
        }
    free(order);
    return c;
}

static void free_cohort(cohort *c)
{
    for (int i = 0; i < c->n; i++) free(c->id[i]);
    free(c->id);
    free(c->patient);
}

static void count_patients_per_split(const cohort *c, const uint8_t *split, int out[3])
{
    int seen[N_PATIENTS];
    memset(seen, 0, sizeof seen);
    out[0] = out[1] = out[2] = 0;
    for (int i = 0; i < c->n; i++)
        if (!seen[c->patient[i]]++) out[split[i]]++;
}

static void test_group(void)
{
    const char *ids[] = {"b", "a", "c", "a", "b", "a"};
    int of[6];
    CHECK(th_patients_group(6, ids, of) == 3);
    /* Numbered in sorted order of the IDs: a=0, b=1, c=2. */
    CHECK(of[0] == 1 && of[1] == 0 && of[2] == 2 && of[3] == 0 && of[4] == 1 && of[5] == 0);
    CHECK(th_patients_group(0, ids, of) == 0);
}

static void test_split_properties(void)
{
    cohort c = make_cohort(11);
    const char *const *ids = (const char *const *)c.id;
    uint8_t *a = malloc((size_t)c.n), *b = malloc((size_t)c.n), *other = malloc((size_t)c.n);
    th_err err;

    CHECK(th_split_by_patient(c.n, ids, NULL, 0, 0.7, 0.1, 42, a, &err) == 0);
    int first = 0;
    CHECK(th_split_count_leaks(c.n, ids, a, NULL, &first) == 0);
    CHECK(first == -1);
    int per[3];
    count_patients_per_split(&c, a, per);
    CHECK(per[0] + per[1] + per[2] == N_PATIENTS);
    CHECK_NEAR(per[0], 0.7 * N_PATIENTS, 1);
    CHECK_NEAR(per[1], 0.1 * N_PATIENTS, 1);
    CHECK_NEAR(per[2], 0.2 * N_PATIENTS, 1);

    /* Deterministic for a seed, different for another. */
    CHECK(th_split_by_patient(c.n, ids, NULL, 0, 0.7, 0.1, 42, b, &err) == 0);
    CHECK(memcmp(a, b, (size_t)c.n) == 0);
    CHECK(th_split_by_patient(c.n, ids, NULL, 0, 0.7, 0.1, 43, other, &err) == 0);
    CHECK(memcmp(a, other, (size_t)c.n) != 0);

    /* Same patients, rows in another order: same split per patient. */
    cohort d = make_cohort(11);
    th_rng r;
    th_rng_seed(&r, 5, 5);
    for (int i = c.n - 1; i > 0; i--) {
        int j = (int)th_rng_below(&r, (uint32_t)i + 1);
        char *t = d.id[i];
        d.id[i] = d.id[j];
        d.id[j] = t;
        int tp = d.patient[i];
        d.patient[i] = d.patient[j];
        d.patient[j] = tp;
    }
    uint8_t *perm = malloc((size_t)d.n);
    CHECK(th_split_by_patient(d.n, (const char *const *)d.id, NULL, 0, 0.7, 0.1, 42, perm, &err) == 0);
    uint8_t by_patient[N_PATIENTS];
    for (int i = 0; i < c.n; i++) by_patient[c.patient[i]] = a[i];
    int same = 1;
    for (int i = 0; i < d.n; i++) same &= perm[i] == by_patient[d.patient[i]];
    CHECK(same);

    /* A planted leak: move one image of a train patient to test. */
    memcpy(b, a, (size_t)c.n);
    int victim = -1;
    for (int i = 0; i < c.n && victim < 0; i++) {
        if (b[i] != TH_SPLIT_TRAIN) continue;
        for (int j = 0; j < c.n; j++)
            if (j != i && c.patient[j] == c.patient[i]) {
                victim = j;
                break;
            }
    }
    CHECK(victim >= 0);
    b[victim] = TH_SPLIT_TEST;
    int leak_row = -2;
    CHECK(th_split_count_leaks(c.n, ids, b, NULL, &leak_row) == 1);
    CHECK(leak_row >= 0 && c.patient[leak_row] == c.patient[victim]);

    /* Every split with a positive fraction gets a patient, even when tiny. */
    const char *three[] = {"x", "y", "z"};
    uint8_t s3[3];
    CHECK(th_split_by_patient(3, three, NULL, 0, 0.98, 0.01, 1, s3, &err) == 0);
    CHECK(s3[0] != s3[1] && s3[1] != s3[2] && s3[0] != s3[2]);
    /* ... and a split with fraction 0 stays empty. */
    CHECK(th_split_by_patient(c.n, ids, NULL, 0, 0.8, 0.2, 1, b, &err) == 0);
    count_patients_per_split(&c, b, per);
    CHECK(per[2] == 0 && per[0] == 240 && per[1] == 60);

    /* Errors. */
    CHECK(th_split_by_patient(c.n, ids, NULL, 0, -0.1, 0.5, 1, b, &err) == -1);
    CHECK(strstr(err.msg, "non-negative") != NULL);
    CHECK(th_split_by_patient(c.n, ids, NULL, 0, 0.8, 0.3, 1, b, &err) == -1);
    CHECK(strstr(err.msg, "exceed 1") != NULL);
    CHECK(th_split_by_patient(0, ids, NULL, 0, 0.7, 0.1, 1, b, &err) == -1);

    free(perm);
    free_cohort(&d);
    free(other);
    free(b);
    free(a);
    free_cohort(&c);
}

static void test_shard(void)
{
    cohort c = make_cohort(23);
    const char *const *ids = (const char *const *)c.id;
    uint8_t *split = malloc((size_t)c.n);
    int *rank_of = malloc((size_t)c.n * sizeof(int)), *again = malloc((size_t)c.n * sizeof(int));
    th_err err;
    CHECK(th_split_by_patient(c.n, ids, NULL, 0, 0.7, 0.15, 7, split, &err) == 0);
    for (int ranks = 1; ranks <= 7; ranks += 3) {
        CHECK(th_shard_by_patient(c.n, ids, split, TH_SPLIT_TRAIN, ranks, rank_of, &err) == 0);
        int rank_of_patient[N_PATIENTS], size[N_PATIENTS] = {0}, whole = 1, assigned = 1;
        long load[8] = {0};
        for (int p = 0; p < N_PATIENTS; p++) rank_of_patient[p] = -2;
        for (int i = 0; i < c.n; i++) {
            int p = c.patient[i];
            if (split[i] != TH_SPLIT_TRAIN) {
                assigned &= rank_of[i] == -1;
                continue;
            }
            assigned &= rank_of[i] >= 0 && rank_of[i] < ranks;
            if (rank_of_patient[p] == -2) rank_of_patient[p] = rank_of[i];
            whole &= rank_of_patient[p] == rank_of[i];
            size[p]++;
            if (rank_of[i] >= 0 && rank_of[i] < ranks) load[rank_of[i]]++;
        }
        CHECK(whole);
        CHECK(assigned);
        long lo = load[0], hi = load[0], total = 0, train = 0;
        int largest = 0;
        for (int r = 0; r < ranks; r++) {
            if (load[r] < lo) lo = load[r];
            if (load[r] > hi) hi = load[r];
            total += load[r];
        }
        for (int i = 0; i < c.n; i++) train += split[i] == TH_SPLIT_TRAIN;
        for (int p = 0; p < N_PATIENTS; p++)
            if (size[p] > largest) largest = size[p];
        CHECK(total == train);
        CHECK(hi - lo <= largest);
        CHECK(th_shard_by_patient(c.n, ids, split, TH_SPLIT_TRAIN, ranks, again, &err) == 0);
        CHECK(memcmp(rank_of, again, (size_t)c.n * sizeof(int)) == 0);
    }
    CHECK(th_shard_by_patient(c.n, ids, split, TH_SPLIT_TRAIN, 0, rank_of, &err) == -1);
    free(again);
    free(rank_of);
    free(split);
    free_cohort(&c);
}

/* The NIH sample: labels.csv with columns image,patient_id,<14 labels>,split. */
static void test_nih_sample(void)
{
    const char *path = "/work/shared/data/nih14_kcr1000/labels.csv";
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("test_split: %s not found, skipping the NIH leakage case\n", path);
        return;
    }
    char line[1024];
    int n = 0, cap = 1024;
    char **ids = malloc((size_t)cap * sizeof(char *));
    uint8_t *split = malloc((size_t)cap);
    int header = 1, bad = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (header) {
            header = 0;
            continue;
        }
        char *first = strchr(line, ','), *last = strrchr(line, ',');
        if (!first || !last || first == last) {
            bad++;
            continue;
        }
        char *second = strchr(first + 1, ',');
        if (n == cap) {
            cap *= 2;
            ids = realloc(ids, (size_t)cap * sizeof(char *));
            split = realloc(split, (size_t)cap);
        }
        ids[n] = strndup(first + 1, (size_t)(second - first - 1));
        const char *s = last + 1;
        split[n] = !strcmp(s, "train") ? TH_SPLIT_TRAIN : !strcmp(s, "val") ? TH_SPLIT_VAL : TH_SPLIT_TEST;
        bad += strcmp(s, "train") && strcmp(s, "val") && strcmp(s, "test");
        n++;
    }
    fclose(f);
    CHECK(bad == 0);
    CHECK(n == 1000);
    int *of = malloc((size_t)n * sizeof(int));
    CHECK(th_patients_group(n, (const char *const *)ids, of) == 264);
    int first = -1;
    CHECK(th_split_count_leaks(n, (const char *const *)ids, split, NULL, &first) == 30);
    CHECK(first >= 0);
    th_err err;
    uint8_t *ours = malloc((size_t)n);
    CHECK(th_split_by_patient(n, (const char *const *)ids, NULL, 0, 0.7, 0.1, 42, ours, &err) == 0);
    CHECK(th_split_count_leaks(n, (const char *const *)ids, ours, NULL, NULL) == 0);
    free(ours);
    free(of);
    for (int i = 0; i < n; i++) free(ids[i]);
    free(ids);
    free(split);
}

int main(void)
{
    test_group();
    test_split_properties();
    test_shard();
    test_nih_sample();
    CHECK(!strcmp(th_split_name(TH_SPLIT_VAL), "val"));
    return th_test_summary("test_split");
}

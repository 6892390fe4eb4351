/* split.c - patient-level train/val/test splits and rank shards by patient
 * (see thorax/data.h).
 *
 * Everything here works on patients, never on images, because images of one
 * patient are correlated: an image in train and its sibling in test inflate
 * the test AUC. Patients are numbered in sorted order of their ID strings, so
 * every result depends on the set of IDs and the seed only, not on the order
 * of the rows in the file.
 */
#include "thorax/data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "thorax/util.h"

/* The shuffle's own stream, so the split does not move when other users of
 * the run seed draw more or fewer numbers. */
#define SPLIT_STREAM 0x5011700000000001ULL

/* A fraction at or below this is treated as zero, so that 1 - 0.8 - 0.2
 * (a few 1e-17) does not ask for a test patient. */
#define FRACTION_EPS 1e-6

const char *th_split_name(int s)
{
    switch (s) {
    case TH_SPLIT_TRAIN: return "train";
    case TH_SPLIT_VAL: return "val";
    case TH_SPLIT_TEST: return "test";
    case TH_SPLIT_NONE: return "none";
    default: return "invalid";
    }
}

typedef struct {
    const char *id;
    int row;
} id_row;

static int cmp_id_row(const void *a, const void *b)
{
    const id_row *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    if (c) return c;
    return (x->row > y->row) - (x->row < y->row);
}

int th_patients_group(int n, const char *const *patient_id, int *patient_of)
{
    if (n <= 0) return 0;
    id_row *order = malloc((size_t)n * sizeof *order);
    if (!order) return -1;
    for (int i = 0; i < n; i++) order[i] = (id_row){patient_id[i] ? patient_id[i] : "", i};
    qsort(order, (size_t)n, sizeof *order, cmp_id_row);
    int p = -1;
    for (int i = 0; i < n; i++) {
        if (i == 0 || strcmp(order[i].id, order[i - 1].id)) p++;
        patient_of[order[i].row] = p;
    }
    free(order);
    return p + 1;
}

/* Patients per split from the fractions: rounded, then adjusted so that the
 * counts add up to P and (for P >= 3) no split with a positive fraction is
 * left empty, taking a patient from the largest split each time. */
static void split_sizes(int P, const double f[3], int count[3])
{
    count[0] = (int)lround(f[0] * P);
    count[1] = (int)lround(f[1] * P);
    if (count[0] > P) count[0] = P;
    if (count[1] > P - count[0]) count[1] = P - count[0];
    count[2] = P - count[0] - count[1];
    if (f[2] <= FRACTION_EPS && count[2] > 0) {
        /* Rounding left patients over for an empty test split: give them to train. */
        count[0] += count[2];
        count[2] = 0;
    }
    if (P < 3) return;
    for (int s = 0; s < 3; s++) {
        if (f[s] <= FRACTION_EPS || count[s] > 0) continue;
        int largest = 0;
        for (int t = 1; t < 3; t++)
            if (count[t] > count[largest]) largest = t;
        count[largest]--;
        count[s]++;
    }
}

/* Iterative stratification (Sechidis, Tsoumakas and Vlahavas, 2011) over
 * patients: the rarest label's patients are placed first, each into the split
 * that still lacks the most of that label's positive images, so every split
 * keeps each label's prevalence as close as whole patients allow. Patient
 * counts per split stay exactly as `count` says; patients without any
 * finding fill the remaining places in shuffled order. */
typedef struct {
    int P, L;
    const int *count;       /* [3] patients wanted per split */
    int taken[3];           /* patients placed per split */
    double *want;           /* [3][L] positive images still wanted per split and label */
    const int *pos;         /* [P][L] positive images per patient and label */
    uint8_t *split_of;      /* [P], TH_SPLIT_NONE until placed */
} stratify;

static void place(stratify *st, int p, int s)
{
    st->split_of[p] = (uint8_t)s;
    st->taken[s]++;
    for (int l = 0; l < st->L; l++) st->want[s * st->L + l] -= st->pos[(size_t)p * st->L + l];
}

/* The split with room that lacks the most of label l; ties to the split with
 * the most room left, then the lower split. l < 0: room only. */
static int neediest(const stratify *st, int l)
{
    int best = -1;
    for (int s = 0; s < 3; s++) {
        if (st->taken[s] >= st->count[s]) continue;
        if (best < 0) {
            best = s;
            continue;
        }
        double ws = l >= 0 ? st->want[s * st->L + l] : 0, wb = l >= 0 ? st->want[best * st->L + l] : 0;
        int rs = st->count[s] - st->taken[s], rb = st->count[best] - st->taken[best];
        if (ws > wb + 1e-9 || (ws > wb - 1e-9 && rs > rb)) best = s;
    }
    return best;
}

static void stratify_patients(stratify *st, const int *perm, const double f[3])
{
    int P = st->P, L = st->L;
    for (int l = 0; l < L; l++) {
        double total = 0;
        for (int p = 0; p < P; p++) total += st->pos[(size_t)p * L + l];
        for (int s = 0; s < 3; s++) st->want[s * L + l] = f[s] * total;
    }
    for (;;) {
        /* The label with the fewest positive patients still unplaced. */
        int rarest = -1;
        long fewest = 0;
        for (int l = 0; l < L; l++) {
            long left = 0;
            for (int p = 0; p < P; p++) left += st->split_of[p] == TH_SPLIT_NONE && st->pos[(size_t)p * L + l] > 0;
            if (left > 0 && (rarest < 0 || left < fewest)) rarest = l, fewest = left;
        }
        if (rarest < 0) break;
        for (int k = 0; k < P; k++) {
            int p = perm[k];
            if (st->split_of[p] != TH_SPLIT_NONE || st->pos[(size_t)p * L + rarest] == 0) continue;
            place(st, p, neediest(st, rarest));
        }
    }
    for (int k = 0; k < P; k++)
        if (st->split_of[perm[k]] == TH_SPLIT_NONE) place(st, perm[k], neediest(st, -1));
}

int th_split_by_patient(int n, const char *const *patient_id, const uint8_t *labels, int n_labels, double f_train,
                        double f_val, uint64_t seed, uint8_t *split, th_err *err)
{
    if (n <= 0) return th_errf(err, "no images to split");
    if (!isfinite(f_train) || !isfinite(f_val) || f_train < 0 || f_val < 0)
        return th_errf(err, "split fractions must be non-negative (train %g, val %g)", f_train, f_val);
    double f_test = 1.0 - f_train - f_val;
    if (f_test < -FRACTION_EPS)
        return th_errf(err, "split fractions train %g + val %g exceed 1", f_train, f_val);
    double f[3] = {f_train, f_val, f_test < 0 ? 0 : f_test};
    int L = labels ? n_labels : 0;

    int *patient_of = malloc((size_t)n * sizeof *patient_of);
    int P = patient_of ? th_patients_group(n, patient_id, patient_of) : -1;
    int *perm = P > 0 ? malloc((size_t)P * sizeof *perm) : NULL;
    uint8_t *split_of = P > 0 ? malloc((size_t)P) : NULL;
    int *pos = P > 0 ? calloc((size_t)P * (size_t)(L ? L : 1), sizeof *pos) : NULL;
    double *want = malloc(3 * sizeof *want * (size_t)(L ? L : 1));
    if (!perm || !split_of || !pos || !want) {
        free(want);
        free(pos);
        free(split_of);
        free(perm);
        free(patient_of);
        return th_errf(err, "out of memory splitting %d images", n);
    }
    for (int p = 0; p < P; p++) perm[p] = p;
    th_rng rng;
    th_rng_seed(&rng, seed, SPLIT_STREAM);
    th_rng_shuffle(&rng, perm, P);
    for (int i = 0; i < n; i++)
        for (int l = 0; l < L; l++) pos[(size_t)patient_of[i] * L + l] += labels[(size_t)i * L + l] == 1;

    int count[3];
    split_sizes(P, f, count);
    memset(split_of, TH_SPLIT_NONE, (size_t)P);
    stratify st = {.P = P, .L = L, .count = count, .want = want, .pos = pos, .split_of = split_of};
    stratify_patients(&st, perm, f);
    for (int i = 0; i < n; i++) split[i] = split_of[patient_of[i]];

    free(want);
    free(pos);
    free(split_of);
    free(perm);
    free(patient_of);
    return 0;
}

/* Rows whose split is TH_SPLIT_NONE belong to no split and cannot leak. */
int th_split_count_leaks(int n, const char *const *patient_id, const uint8_t *split, uint8_t *leaky,
                         int *first_leak)
{
    if (first_leak) *first_leak = -1;
    if (n <= 0) return 0;
    int *patient_of = malloc((size_t)n * sizeof *patient_of);
    int P = patient_of ? th_patients_group(n, patient_id, patient_of) : -1;
    uint8_t *seen = P > 0 ? malloc((size_t)P) : NULL;
    uint8_t *leaked = P > 0 ? calloc((size_t)P, 1) : NULL;
    int leaks = -1;
    if (seen && leaked) {
        memset(seen, TH_SPLIT_NONE, (size_t)P);
        leaks = 0;
        /* In row order, so that first_leak is the earliest row at which a
         * patient is seen in a second split. */
        for (int i = 0; i < n; i++) {
            int p = patient_of[i];
            if (split[i] == TH_SPLIT_NONE) continue;
            if (seen[p] == TH_SPLIT_NONE) seen[p] = split[i];
            else if (seen[p] != split[i] && !leaked[p]) {
                leaked[p] = 1;
                if (leaks++ == 0 && first_leak) *first_leak = i;
            }
        }
        for (int i = 0; leaky && i < n; i++) leaky[i] = leaked[patient_of[i]];
    }
    free(leaked);
    free(seen);
    free(patient_of);
    return leaks;
}

typedef struct {
    int images, patient;
} patient_load;

/* Larger patients first; equal sizes in patient order, for determinism. */
static int cmp_load(const void *a, const void *b)
{
    const patient_load *x = a, *y = b;
    if (x->images != y->images) return x->images > y->images ? -1 : 1;
    return (x->patient > y->patient) - (x->patient < y->patient);
}

/* A NULL split means every image is in `which`. */
int th_shard_by_patient(int n, const char *const *patient_id, const uint8_t *split, int which, int n_ranks,
                        int *rank_of, th_err *err)
{
    if (n_ranks < 1) return th_errf(err, "cannot shard over %d ranks", n_ranks);
    if (n <= 0) return 0;
    int *patient_of = malloc((size_t)n * sizeof *patient_of);
    int P = patient_of ? th_patients_group(n, patient_id, patient_of) : -1;
    patient_load *load = P > 0 ? calloc((size_t)P, sizeof *load) : NULL;
    int *rank_of_patient = P > 0 ? malloc((size_t)P * sizeof *rank_of_patient) : NULL;
    long long *rank_load = calloc((size_t)n_ranks, sizeof *rank_load);
    if (!load || !rank_of_patient || !rank_load) {
        free(rank_load);
        free(rank_of_patient);
        free(load);
        free(patient_of);
        return th_errf(err, "out of memory sharding %d images over %d ranks", n, n_ranks);
    }
    for (int p = 0; p < P; p++) load[p].patient = p;
    for (int i = 0; i < n; i++)
        if (!split || split[i] == which) load[patient_of[i]].images++;
    qsort(load, (size_t)P, sizeof *load, cmp_load);

    /* Longest-processing-time greedy: each patient, largest first, goes to
     * the least loaded rank (the lowest such rank on ties). */
    for (int k = 0; k < P && load[k].images > 0; k++) {
        int best = 0;
        for (int r = 1; r < n_ranks; r++)
            if (rank_load[r] < rank_load[best]) best = r;
        rank_of_patient[load[k].patient] = best;
        rank_load[best] += load[k].images;
    }
    for (int i = 0; i < n; i++) rank_of[i] = !split || split[i] == which ? rank_of_patient[patient_of[i]] : -1;

    free(rank_load);
    free(rank_of_patient);
    free(load);
    free(patient_of);
    return 0;
}

int th_split_count(const th_dataset *ds, const int *label_col, int n_labels, const uint8_t *split,
                   th_split_tally *t, th_err *err)
{
    memset(t, 0, sizeof *t);
    int *patient_of = malloc(sizeof(int) * (size_t)(ds->n > 0 ? ds->n : 1));
    int n_pat = patient_of ? th_patients_group(ds->n, (const char *const *)ds->patient_id, patient_of) : -1;
    /* seen[p] has bit s set once patient p was counted in split s. */
    uint8_t *seen = n_pat >= 0 ? calloc((size_t)n_pat + 1, 1) : NULL;
    t->pos = calloc((size_t)(n_labels > 0 ? n_labels : 1) * 3, sizeof *t->pos);
    int rc = 0;
    if (!seen || !t->pos) {
        rc = th_errf(err, "out of memory counting the split of %d images", ds->n);
        th_split_tally_free(t);
    }
    for (int i = 0; !rc && i < ds->n; i++) {
        int s = split[i];
        if (s > TH_SPLIT_TEST) continue;
        t->images[s]++;
        for (int k = 0; k < n_labels; k++)
            t->pos[(size_t)s * n_labels + k] += ds->labels[(size_t)i * ds->n_labels + label_col[k]] == 1;
        if (!(seen[patient_of[i]] & (1u << s))) {
            seen[patient_of[i]] |= (uint8_t)(1u << s);
            t->patients[s]++;
        }
    }
    free(patient_of);
    free(seen);
    return rc;
}

void th_split_tally_free(th_split_tally *t)
{
    free(t->pos);
    t->pos = NULL;
}

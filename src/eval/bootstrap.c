/* bootstrap.c - the patient-clustered bootstrap of the AUC and DeLong's
 * placement values per case (see thorax/eval.h).
 *
 * Each label's cases are sorted once by decreasing score and cut into groups
 * of tied scores. A resample is then only a weight per cluster (how many
 * times it was drawn), and its AUC one sweep over the groups: with P the
 * weight of positives above a group and p, q the group's positive and
 * negative weight, the group adds q * (P + p/2) to the count of
 * (positive, negative) pairs ranked right, ties counting one half. Twice
 * that count is an integer, kept in int64_t, so the statistic is exact and
 * does not depend on summation order.
 */
#include "thorax/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval_impl.h"

typedef struct ranked {
    float s;
    int i;
} ranked;

static int by_score_desc(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static int by_score_asc(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

int stats_rank(int n, const float *score, int stride, int descending, int *order, th_err *err)
{
    ranked *r = malloc(sizeof *r * (size_t)(n > 0 ? n : 1));
    if (!r) return th_errf(err, "out of memory ranking %d scores", n);
    for (int i = 0; i < n; i++) {
        r[i] = (ranked){score[(size_t)i * stride], i};
        if (isnan(r[i].s)) {
            free(r);
            return th_errf(err, "case %d has a NaN score", i);
        }
    }
    qsort(r, (size_t)n, sizeof *r, descending ? by_score_desc : by_score_asc);
    for (int i = 0; i < n; i++) order[i] = r[i].i;
    free(r);
    return 0;
}

int th_auc_placements(int n, const float *score, const uint8_t *y, int stride, double *v, th_err *err)
{
    int *order = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    if (!order) return th_errf(err, "out of memory for %d placement values", n);
    if (stats_rank(n, score, stride, 1, order, err)) {
        free(order);
        return -1;
    }
    long n_pos = 0, n_neg = 0;
    for (int i = 0; i < n; i++) {
        uint8_t c = y[(size_t)i * stride];
        n_pos += c == 1;
        n_neg += c == 0;
    }
    if (n_pos == 0 || n_neg == 0) {
        free(order);
        return th_errf(err, "placement values need both classes (%ld positive, %ld negative cases)", n_pos, n_neg);
    }
    long pos_above = 0, neg_above = 0;
    for (int i = 0; i < n;) {
        float s = score[(size_t)order[i] * stride];
        long dpos = 0, dneg = 0;
        int j = i;
        for (; j < n && score[(size_t)order[j] * stride] == s; j++) {
            uint8_t c = y[(size_t)order[j] * stride];
            dpos += c == 1;
            dneg += c == 0;
        }
        long neg_below = n_neg - neg_above - dneg;
        double v10 = ((double)neg_below + 0.5 * (double)dneg) / (double)n_neg;
        double v01 = ((double)pos_above + 0.5 * (double)dpos) / (double)n_pos;
        for (; i < j; i++) {
            uint8_t c = y[(size_t)order[i] * stride];
            v[order[i]] = c == 1 ? v10 : c == 0 ? v01 : NAN;
        }
        pos_above += dpos;
        neg_above += dneg;
    }
    free(order);
    return 0;
}

/* One label's cases in decreasing score: the cluster and class of each, and
 * the end of each group of tied scores. */
typedef struct sorted_label {
    int *cluster;       /* [n] */
    uint8_t *y;         /* [n] */
    int *group_end;     /* [n_groups] */
    int n_groups;
} sorted_label;

static void sorted_free(sorted_label *s)
{
    free(s->cluster);
    free(s->y);
    free(s->group_end);
}

static int sorted_make(int n, const float *score, const uint8_t *y, int stride, const int *cluster_of,
                       int *order, sorted_label *s, th_err *err)
{
    size_t cap = (size_t)(n > 0 ? n : 1);
    s->cluster = malloc(sizeof(int) * cap);
    s->y = malloc(cap);
    s->group_end = malloc(sizeof(int) * cap);
    s->n_groups = 0;
    if (!s->cluster || !s->y || !s->group_end) return th_errf(err, "out of memory sorting %d cases", n);
    if (stats_rank(n, score, stride, 1, order, err)) return -1;
    for (int j = 0; j < n; j++) {
        int i = order[j];
        s->cluster[j] = cluster_of[i];
        /* 2: unknown, in no class. */
        s->y[j] = y[(size_t)i * stride] == TH_LABEL_UNKNOWN ? 2 : y[(size_t)i * stride] != 0;
        if (j + 1 == n || score[(size_t)order[j + 1] * stride] != score[(size_t)i * stride])
            s->group_end[s->n_groups++] = j + 1;
    }
    return 0;
}

/* The AUC with case weights count[cluster]; NaN when a class has no weight. */
static double weighted_auc(const sorted_label *s, const int *count)
{
    int64_t pos_above = 0, neg = 0, twice_right = 0;
    for (int g = 0, j = 0; g < s->n_groups; g++) {
        int64_t p = 0, q = 0;
        for (; j < s->group_end[g]; j++) {
            int64_t w = count[s->cluster[j]];
            if (s->y[j] == 1) p += w;
            else if (s->y[j] == 0) q += w;
        }
        twice_right += q * (2 * pos_above + p);
        pos_above += p;
        neg += q;
    }
    if (pos_above == 0 || neg == 0) return NAN;
    return (double)twice_right / (2.0 * (double)pos_above * (double)neg);
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile q of sorted v[m] (m > 0), linear between order statistics. */
static double quantile_sorted(const double *v, int m, double q)
{
    double h = (double)(m - 1) * q;
    int lo = (int)floor(h);
    if (lo >= m - 1) return v[m - 1];
    return v[lo] + (h - (double)lo) * (v[lo + 1] - v[lo]);
}

int th_auc_bootstrap(int n, int l, const float *p, const float *p2, const uint8_t *y, const int *cluster_of,
                     int n_clusters, int resamples, uint64_t seed, th_auc_boot *out, double *samples, th_err *err)
{
    if (resamples < 0) return th_errf(err, "bootstrap: negative number of resamples (%d)", resamples);
    if (n < 0 || l < 0 || n_clusters < 0) return th_errf(err, "bootstrap: negative size");
    for (int i = 0; i < n; i++)
        if (cluster_of[i] < 0 || cluster_of[i] >= n_clusters)
            return th_errf(err, "bootstrap: case %d belongs to patient %d, outside [0, %d)", i, cluster_of[i],
                           n_clusters);
    int models = p2 ? 2 : 1, rc = -1;
    sorted_label *sl = calloc((size_t)(l * models) + 1, sizeof *sl);
    int *order = malloc(sizeof(int) * (size_t)(n + 1));
    int *count = calloc((size_t)n_clusters + 1, sizeof *count);
    double *stat = samples ? samples : malloc(sizeof(double) * ((size_t)resamples * l + 1));
    double *used = malloc(sizeof(double) * ((size_t)resamples + 1));
    if (!sl || !order || !count || !stat || !used) {
        th_errf(err, "out of memory for a bootstrap of %d resamples of %d labels", resamples, l);
        goto done;
    }
    for (int k = 0; k < l; k++)
        for (int m = 0; m < models; m++)
            if (sorted_make(n, (m ? p2 : p) + k, y + k, l, cluster_of, order, &sl[k * models + m], err)) {
                th_err_prefix(err, "bootstrap of label %d: ", k);
                goto done;
            }
    th_rng rng;
    th_rng_seed(&rng, seed, TH_BOOTSTRAP_STREAM);
    for (int b = 0; b < resamples; b++) {
        memset(count, 0, sizeof(int) * (size_t)n_clusters);
        for (int c = 0; c < n_clusters; c++) count[th_rng_below(&rng, (uint32_t)n_clusters)]++;
        for (int k = 0; k < l; k++) {
            double a = weighted_auc(&sl[k * models], count);
            if (p2 && !isnan(a)) a -= weighted_auc(&sl[k * models + 1], count);
            stat[(size_t)b * l + k] = a;
        }
    }
    for (int k = 0; k < l; k++) {
        int m = 0;
        for (int b = 0; b < resamples; b++) {
            double a = stat[(size_t)b * l + k];
            if (!isnan(a)) used[m++] = a;
        }
        out[k] = (th_auc_boot){.lo = NAN, .hi = NAN, .used = m, .skipped = resamples - m};
        if (m == 0) continue;
        qsort(used, (size_t)m, sizeof *used, by_value);
        out[k].lo = quantile_sorted(used, m, 0.025);
        out[k].hi = quantile_sorted(used, m, 0.975);
    }
    rc = 0;
done:
    for (int k = 0; sl && k < l * models; k++) sorted_free(&sl[k]);
    free(sl);
    free(order);
    free(count);
    if (!samples) free(stat);
    free(used);
    return rc;
}

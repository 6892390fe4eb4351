/* plan.c - which images a run uses, and how: its labels and its split
 * (see thorax/train.h). Rank 0 of training, evaluation, `thorax split` and
 * `thorax cam` all call these, so they agree on every image. */
#include "thorax/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thorax/data.h"

/* One label limit from the file to the run: th_plan_labels takes every label
 * of a file when the config names none. */
_Static_assert(TH_DATASET_MAX_LABELS == TH_MAX_LABELS, "a run must be able to train on every label of a file");

void th_plan_input(const th_config *cfg, th_input_params *p)
{
    const struct th_augment_config *a = &cfg->data.augment;
    th_input_norm norm = TH_INPUT_NORM_TRAINSET;
    /* No default: a mode added to the config and not here fails -Wswitch. */
    switch (cfg->data.normalize) {
    case TH_NORM_TRAINSET: norm = TH_INPUT_NORM_TRAINSET; break;
    case TH_NORM_PER_IMAGE: norm = TH_INPUT_NORM_PER_IMAGE; break;
    case TH_NORM_NONE: norm = TH_INPUT_NORM_NONE; break;
    }
    *p = (th_input_params){
        .normalize = norm,
        .seed = cfg->seed,
        .augment = {.hflip = a->hflip, .rotate_deg = a->rotate_deg, .shift = a->shift, .scale_lo = a->scale_lo,
                    .scale_hi = a->scale_hi, .brightness = a->brightness, .contrast = a->contrast},
    };
}

int th_plan_labels(const th_config *cfg, const th_dataset *ds, int *label_col, int *n_labels, th_err *err)
{
    if (cfg->data.n_labels == 0) {
        if (ds->n_labels > TH_MAX_LABELS)
            return th_errf(err, "%s has %d labels; at most %d are supported", ds->path, ds->n_labels, TH_MAX_LABELS);
        *n_labels = ds->n_labels;
        for (int k = 0; k < ds->n_labels; k++) label_col[k] = k;
        return 0;
    }
    *n_labels = cfg->data.n_labels;
    for (int k = 0; k < cfg->data.n_labels; k++) {
        int col = th_dataset_label_index(ds, cfg->data.labels[k]);
        if (col < 0) {
            char have[512] = "";
            size_t used = 0;
            for (int j = 0; j < ds->n_labels && used < sizeof have - 64; j++)
                used += (size_t)snprintf(have + used, sizeof have - used, "%s%s", j ? ", " : "", ds->label_names[j]);
            return th_errf(err, "data.labels: '%s' is not a label of %s (it has: %s)", cfg->data.labels[k], ds->path,
                           have);
        }
        label_col[k] = col;
    }
    return 0;
}

/* A few IDs of the leaking patients, for the message: "00000013, 00000032, ...". */
static void name_leakers(const th_dataset *ds, const uint8_t *leaky, char *out, size_t cap)
{
    int named = 0;
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < ds->n && named < 5; i++) {
        if (!leaky[i]) continue;
        int dup = 0;
        for (int j = 0; j < i && !dup; j++) dup = leaky[j] && !strcmp(ds->patient_id[j], ds->patient_id[i]);
        if (dup) continue;
        used += (size_t)snprintf(out + used, cap - used, "%s%s", named ? ", " : "", ds->patient_id[i]);
        if (used >= cap) break;
        named++;
    }
}

static int predefined_split(const th_config *cfg, const th_dataset *ds, uint8_t *split, int *dropped, th_err *err)
{
    int n = ds->n;
    if (!ds->split) return th_errf(err, "data.split is 'predefined' but %s has no /split dataset", ds->path);
    memcpy(split, ds->split, (size_t)n);
    uint8_t *leaky = malloc((size_t)n);
    if (!leaky) return th_errf(err, "out of memory checking the split of %d images", n);
    int leaks = th_split_count_leaks(n, (const char *const *)ds->patient_id, split, leaky, NULL);
    int images = 0, rc = 0;
    for (int i = 0; i < n; i++) images += leaky[i];
    if (leaks > 0 && cfg->data.on_leak == TH_ON_LEAK_ERROR) {
        char names[256];
        name_leakers(ds, leaky, names, sizeof names);
        rc = th_errf(err,
                     "the predefined split of %s puts %d patients (%d images) in more than one split (%s%s); "
                     "split by patient instead (data.split: {train: 0.7, val: 0.15, test: 0.15}) or set "
                     "data.on_leak: drop_from_eval",
                     ds->path, leaks, images, names, leaks > 5 ? ", ..." : "");
    } else if (leaks > 0) {
        /* Keep their training images; evaluation must not see a patient the
         * network trained on. */
        for (int i = 0; i < n; i++)
            if (leaky[i] && split[i] != TH_SPLIT_TRAIN) {
                split[i] = TH_SPLIT_NONE;
                ++*dropped;
            }
    }
    free(leaky);
    return rc;
}

static int patient_split(const th_config *cfg, const th_dataset *ds, const int *label_col, int n_labels,
                         uint8_t *split, int *dropped, th_err *err)
{
    if (cfg->data.split_mode == TH_SPLIT_MODE_PREDEFINED) return predefined_split(cfg, ds, split, dropped, err);
    /* Stratify on the run's labels only: the file's other labels do not matter here. */
    uint8_t *y = malloc((size_t)ds->n * (size_t)(n_labels ? n_labels : 1));
    if (!y) return th_errf(err, "out of memory splitting %d images", ds->n);
    for (int i = 0; i < ds->n; i++)
        for (int k = 0; k < n_labels; k++) y[(size_t)i * n_labels + k] = ds->labels[(size_t)i * ds->n_labels + label_col[k]];
    int rc = th_split_by_patient(ds->n, (const char *const *)ds->patient_id, y, n_labels, cfg->data.train,
                                 cfg->data.val, cfg->seed, split, err);
    free(y);
    return rc;
}


int th_plan_batch(const th_config *cfg, long images)
{
    long b = cfg->train.batch_per_rank;
    if (b > images) b = images;
    return b < 1 ? 1 : (int)b;
}

int th_plan_check_input(const th_config *cfg, const th_dataset *ds, th_err *err)
{
    const th_model_spec *m = &cfg->model;
    if (m->c != 1)
        return th_errf(err, "model.input: X-rays are read as 1 channel, so the input must be [1, H, W], got [%d, %d, %d]",
                       m->c, m->h, m->w);
    if (m->h != ds->h || m->w != ds->w)
        return th_errf(err, "model.input is [1, %d, %d] but %s holds %dx%d images, not %dx%d (ingest at --size %d, or "
                            "change model.input)",
                       m->h, m->w, ds->path, ds->h, ds->w, m->h, m->w, m->h);
    return 0;
}

int th_plan_check(const th_config *cfg, const th_dataset *ds, int *label_col, int *n_labels, th_err *err)
{
    if (th_plan_labels(cfg, ds, label_col, n_labels, err)) return -1;
    if (th_plan_check_input(cfg, ds, err)) return -1;
    return th_model_spec_check(&cfg->model, *n_labels, err);
}

int th_plan_pin_match(const char *recorded, const char *recorded_in, const th_dataset *ds,
                      const th_data_fingerprint *now, th_err *err)
{
    if (!recorded || !recorded[0]) return 0;
    th_data_fingerprint was;
    if (th_fingerprint_parse(recorded, &was))
        return th_errf(err, "%s: damaged data_fingerprint '%.80s'", recorded_in, recorded);
    if (th_fingerprint_match(&was, now, ds->path, err)) return th_err_prefix(err, "%s: ", recorded_in);
    return 0;
}

int th_plan_pin(th_dataset *ds, const char *recorded, const char *recorded_in, th_comm comm,
                th_data_fingerprint *now, th_err *err)
{
    if (th_dataset_fingerprint(ds, comm, now, NULL, err)) return -1;
    return th_plan_pin_match(recorded, recorded_in, ds, now, err);
}
/* Each group's earliest split (train < val < test) into first[n_groups], and
 * whether it has images in two splits into cross[n_groups]; images outside
 * every split (TH_SPLIT_NONE) do not count. */
static void group_splits(const th_dups *d, const uint8_t *split, uint8_t *first, uint8_t *cross)
{
    memset(first, TH_SPLIT_NONE, (size_t)d->n_groups);
    memset(cross, 0, (size_t)d->n_groups);
    for (int i = 0; i < d->n; i++) {
        int g = d->group[i];
        if (g < 0 || split[i] == TH_SPLIT_NONE) continue;
        if (first[g] != TH_SPLIT_NONE && first[g] != split[i]) cross[g] = 1;
        if (split[i] < first[g]) first[g] = split[i];
    }
}

/* "a.png (train) = b.png (val)" for up to `groups` crossing groups. */
static void name_groups(const th_dataset *ds, const th_plan_dups *p, int groups, char *out, size_t cap)
{
    size_t used = 0;
    int named = 0;
    out[0] = '\0';
    for (int g = 0; g < p->found.n_groups && named < groups && used < cap; g++) {
        if (!p->cross[g]) continue;
        int members = 0;
        used += (size_t)snprintf(out + used, cap - used, "%s", named ? "; " : "");
        for (int i = 0; i < ds->n && used < cap; i++) {
            if (p->found.group[i] != g || p->split_before[i] == TH_SPLIT_NONE) continue;
            const char *sep = members++ == 0 ? "" : p->found.exact[g] ? " = " : " ~ ";
            used += (size_t)snprintf(out + used, cap - used, "%s%s (%s)", sep, ds->image_name[i],
                                     th_split_name(p->split_before[i]));
        }
        named++;
    }
}

static int apply_duplicates(const th_config *cfg, const th_dataset *ds, uint8_t *split, th_plan_dups *p, th_err *err)
{
    int n = ds->n, G;
    if (th_dups_find(ds, cfg->data.duplicate_bits, &p->found, err)) return -1;
    G = p->found.n_groups;
    p->split_before = malloc((size_t)n + 1);
    p->first = malloc((size_t)G + 1);
    p->cross = malloc((size_t)G + 1);
    if (!p->split_before || !p->first || !p->cross) return th_errf(err, "out of memory grouping duplicate images");
    memcpy(p->split_before, split, (size_t)n);
    group_splits(&p->found, split, p->first, p->cross);
    for (int g = 0; g < G; g++) p->n_cross += p->cross[g];
    for (int i = 0; i < n; i++) {
        int g = p->found.group[i];
        p->cross_images += g >= 0 && p->cross[g] && split[i] != TH_SPLIT_NONE;
    }
    if (p->n_cross == 0 || cfg->data.on_duplicate == TH_ON_DUP_KEEP) return 0;
    if (cfg->data.on_duplicate == TH_ON_DUP_REFUSE) {
        char names[512];
        name_groups(ds, p, 3, names, sizeof names);
        return th_errf(err,
                       "%s: %d groups of identical or nearly identical images (%d images) are in more than one "
                       "split (%s%s): the same picture would be trained on and evaluated; set data.on_duplicate: "
                       "drop to keep each in its earliest split only, or keep (thorax split lists them)",
                       ds->path, p->n_cross, p->cross_images, names, p->n_cross > 3 ? "; ..." : "");
    }
    /* drop: a picture stays where it is first seen (train, then val, then
     * test), so training keeps every image it had and evaluation loses the
     * copies of pictures it trained on. */
    for (int i = 0; i < n; i++) {
        int g = p->found.group[i];
        if (g < 0 || !p->cross[g] || split[i] == TH_SPLIT_NONE || split[i] == p->first[g]) continue;
        split[i] = TH_SPLIT_NONE;
        p->dropped++;
    }
    return 0;
}

int th_plan_split_dups(const th_config *cfg, const th_dataset *ds, const int *label_col, int n_labels,
                       uint8_t *split, int *dropped, th_plan_dups *dups, th_err *err)
{
    int unused;
    if (!dropped) dropped = &unused;
    *dropped = 0;
    if (dups) memset(dups, 0, sizeof *dups);
    if (patient_split(cfg, ds, label_col, n_labels, split, dropped, err)) return -1;
    /* keep changes nothing: hash only when someone asks for the groups. */
    if (!dups && cfg->data.on_duplicate == TH_ON_DUP_KEEP) return 0;
    th_plan_dups local;
    th_plan_dups *p = dups ? dups : &local;
    if (!dups) memset(p, 0, sizeof *p);
    int rc = apply_duplicates(cfg, ds, split, p, err);
    if (!dups) th_plan_dups_free(p);
    return rc;
}

int th_plan_split(const th_config *cfg, const th_dataset *ds, const int *label_col, int n_labels, uint8_t *split,
                  int *dropped, th_err *err)
{
    return th_plan_split_dups(cfg, ds, label_col, n_labels, split, dropped, NULL, err);
}

void th_plan_dups_free(th_plan_dups *p)
{
    th_dups_free(&p->found);
    free(p->split_before);
    free(p->first);
    free(p->cross);
    memset(p, 0, sizeof *p);
}

int th_plan_dups_csv(const th_dataset *ds, const th_plan_dups *p, const uint8_t *split, th_strbuf *b)
{
    int G = p->found.n_groups, n = p->found.n;
    /* Rows by group, then by image: a counting sort, one pass over the images. */
    int *start = calloc((size_t)G + 1, sizeof *start), *order = malloc(sizeof *order * ((size_t)n + 1));
    if (!start || !order) {
        free(start);
        free(order);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (p->found.group[i] >= 0) start[p->found.group[i] + 1]++;
    for (int g = 0; g < G; g++) start[g + 1] += start[g];
    for (int i = 0; i < n; i++)
        if (p->found.group[i] >= 0) order[start[p->found.group[i]]++] = i;
    th_strbuf_printf(b, "group,kind,across_splits,image,patient_id,split,kept,phash\n");
    for (int k = 0; k < (G ? start[G - 1] : 0); k++) {
        int i = order[k], g = p->found.group[i];
        th_strbuf_printf(b, "%d,%s,%d,", g + 1, p->found.exact[g] ? "identical" : "near", p->cross[g]);
        th_csv_field(b, "", ds->image_name[i]);
        th_strbuf_printf(b, ",");
        th_csv_field(b, "", ds->patient_id[i]);
        th_strbuf_printf(b, ",%s,%d,%016llx\n", th_split_name(p->split_before[i]), split[i] != TH_SPLIT_NONE,
                         (unsigned long long)p->found.phash[i]);
    }
    free(start);
    free(order);
    return b->failed ? -1 : 0;
}


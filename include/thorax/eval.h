/* eval.h - evaluation as papers report it: predictions gathered over the
 * ranks, ROC curves and AUCs with DeLong intervals, operating points,
 * class activation maps (CAM, Grad-CAM, saliency) and their scores against
 * lesion masks, reports. May use train; train never uses it.
 *
 *   th_eval_opts o = {.run_dir = dir, .split = "test", .checkpoint = "best"};
 *   th_eval_result r;
 *   th_eval_run(&o, comm, &r, &err);    // collective: writes dir/eval/test/
 */
#ifndef THORAX_EVAL_H
#define THORAX_EVAL_H

#include <stddef.h>
#include <stdint.h>
#include "thorax/util.h"
#include "thorax/nn.h"
#include "thorax/dist.h"
#include "thorax/data.h"
#include "thorax/config.h"
#include "thorax/train.h"

/* ------------------------------------------------------------------------- */
/* ROC analysis of predicted scores against 0/1 labels.
 *
 * Everything here is exact: scores are sorted once (O(n log n)) and swept in
 * groups of tied scores, with no binning. The conventions are those of
 * scikit-learn, so that numbers can be checked against a notebook:
 *
 *   - a case is called positive when its score is >= the threshold;
 *   - the ROC curve has one point per distinct score plus (0,0) at the
 *     threshold +inf (roc_curve with drop_intermediate=False); a group of tied
 *     scores is one diagonal step, never a staircase in some arbitrary order;
 *   - AUC is the Mann-Whitney statistic (the probability that a random
 *     positive scores above a random negative, ties counting one half), which
 *     equals the trapezoidal area under that curve (roc_auc_score);
 *   - average precision is sum_k (R_k - R_{k-1}) P_k over the distinct
 *     thresholds (average_precision_score, no interpolation).
 *
 * The 95% confidence interval of the AUC is DeLong's: the variance from the
 * structural components (placement values) of DeLong, DeLong and
 * Clarke-Pearson (1988), computed with midranks as in Sun and Xu (2014), and
 * the normal (Wald) interval AUC +- 1.96 SE clipped to [0, 1], as in those
 * papers and in pROC's ci.auc(method = "delong"). With a perfect separation
 * the variance is 0 and the interval collapses onto the AUC; with fewer than
 * two cases in a class it is not estimable (NaN).
 *
 * A label whose cases are all of one class has no ROC curve: its metrics are
 * undefined (NaN, with a reason) and never count as 0.5 in a macro mean.
 */
/* th_auc and th_auc_macro: the plain AUC, training's, which this extends. */

/* z of the two-sided 95% normal interval. */
#define TH_AUC_CI_Z 1.959963984540054

/* AUC and DeLong's variance of it. *auc is NaN when one class is absent,
 * *var is NaN when either class has fewer than two cases (var may be NULL).
 * Returns -1 only for a NaN score or an allocation failure. */
int th_auc_delong(int n, const float *score, const uint8_t *y, int stride, double *auc, double *var, th_err *err);

/* An ROC curve: n points in order of decreasing threshold, from (0,0) at
 * threshold[0] = +inf to (1,1) at the lowest score. n = 0 (and NULL arrays)
 * when one class is absent. */
typedef struct th_roc {
    int n;
    double *threshold, *fpr, *tpr;
    long n_pos, n_neg;
} th_roc;

/* Fills *roc (free with th_roc_free). Returns -1 for a NaN score or an
 * allocation failure. */
int th_roc_curve(int n, const float *score, const uint8_t *y, int stride, th_roc *roc, th_err *err);
void th_roc_free(th_roc *roc);

/* Operating points and calibration (eval.threshold, eval.calibrate).
 *
 * An operating point is a threshold t: a case is called positive when its
 * score is >= t, as in the ROC sweep. Each label's t is chosen on the
 * validation split by the rule of eval.threshold (config.h) and applied,
 * never re-fitted, to test and external data; the counts and rates at it
 * carry 95% intervals:
 *   - sensitivity tp/(tp+fn), specificity tn/(tn+fp), ppv tp/(tp+fp),
 *     npv tn/(tn+fn), accuracy (tp+tn)/n: Wilson score intervals;
 *   - F1 = 2tp/(2tp+fp+fn) = 2J/(1+J) with J = tp/(tp+fp+fn), a proportion
 *     of the tp+fp+fn cases (tn does not enter F1): the Wilson interval of J
 *     mapped through the increasing 2J/(1+J).
 * A rate with a zero denominator is NaN, its interval too.
 *
 * Calibration: the expected calibration error over TH_ECE_BINS equal-mass
 * bins (scores sorted increasingly, ties by case order; bin b holds the
 * sorted cases floor(b n/B) .. floor((b+1) n/B) - 1, so bin sizes differ by
 * at most one and a bin is empty only when n < B): ECE = sum over the bins
 * of n_b/n |mean p_b - mean y_b|; and the Brier score mean (p - y)^2.
 * Temperature scaling replaces p by sigmoid(logit(p)/T), with p clamped to
 * [1e-7, 1 - 1e-7] first; T minimises the negative log-likelihood of the
 * fitting set. It is monotone, so the ranking (and the AUC) is unchanged.
 */
typedef struct th_confusion {
    long tp, fp, tn, fn;
} th_confusion;

/* A proportion and its 95% interval (all NaN when undefined). */
typedef struct th_rate {
    double value, lo, hi;
} th_rate;

typedef struct th_operating_point {
    double threshold;           /* NaN: none could be chosen (then everything else is NaN/0) */
    th_confusion c;
    th_rate sensitivity, specificity, ppv, npv, accuracy, f1;
} th_operating_point;

/* The Wilson score interval of k successes out of n at normal quantile z
 * (TH_AUC_CI_Z for 95%): 8/10 gives [0.4902, 0.9433]. NaN for n = 0. */
void th_wilson_interval(long k, long n, double z, double *lo, double *hi);

/* Counts and rates of scores p[i * stride] >= threshold against y[i * stride]. */
void th_operating_point_at(int n, const float *p, const uint8_t *y, int stride, double threshold,
                           th_operating_point *op);

/* The threshold chosen by rule (value: its S or T) among the distinct scores:
 *   youden         ties: the highest of the scores with the largest J
 *                  (the same point as th_label_metrics' threshold);
 *   sensitivity@S  the highest score with tp/n_pos >= S;
 *   specificity@S  the lowest score with tn/n_neg >= S; when even the
 *                  highest score has less, the float just above it (nothing
 *                  is called positive);
 *   fixed:T        T.
 * Rates are compared with a tolerance of 1e-12 so that 9/10 meets 0.9.
 * *threshold is NaN when the rule needs both classes and one is absent.
 * Returns -1 for a NaN score or an allocation failure. */
int th_threshold_choose(int n, const float *p, const uint8_t *y, int stride, th_threshold_rule rule, double value,
                        double *threshold, th_err *err);

#define TH_ECE_BINS 15
/* ECE over `bins` equal-mass bins and the Brier score (NaN when n = 0).
 * bin_p, bin_y [bins] (may be NULL) receive each bin's mean score and mean
 * truth, NaN for an empty bin. Returns -1 for an allocation failure. */
int th_calibration_error(int n, const float *p, const uint8_t *y, int stride, int bins, double *ece, double *brier,
                         double *bin_p, double *bin_y, th_err *err);

/* The temperature minimising the NLL of sigmoid(logit(p)/T) against y:
 * golden-section search over log(1/T) in [log 0.01, log 100] (the NLL is
 * convex in 1/T, so the search is exact to ~1e-12 and deterministic). 1 when
 * a class is absent. */
double th_temperature_fit(int n, const float *p, const uint8_t *y, int stride);

/* sigmoid(logit(p)/T), p clamped as above. */
float th_temperature_apply(float p, double t);
/* ------------------------------------------------------------------------- */
/* The patient-clustered bootstrap of the AUC.
 *
 * DeLong's variance treats every image as an independent case, but a patient
 * gives several images whose scores and labels go together, so the interval
 * is too narrow. The bootstrap resamples the unit that is independent, the
 * patient: a resample draws n_clusters patients with replacement and keeps
 * all the images of each (a patient drawn twice counts twice). When every
 * case is its own cluster (patient-level evaluation) this is the ordinary
 * bootstrap.
 *
 * Resample b (0-based) is draws b*n_clusters .. (b+1)*n_clusters - 1 of
 * th_rng_below(n_clusters) from one th_rng seeded with (seed,
 * TH_BOOTSTRAP_STREAM); every label is computed on the same resamples. Its
 * AUC is the Mann-Whitney statistic with each case weighted by how many
 * times its cluster was drawn, swept over scores sorted once, O(n) per
 * resample and label. A resample in which a label lacks a class is skipped
 * for that label and counted. The 95% interval is the 2.5 and 97.5
 * percentiles of the used resamples, interpolated linearly between order
 * statistics (numpy's default percentile, R's type 7). Rank 0 computes it on
 * the gathered predictions, so it is the same on any number of ranks.
 */
#define TH_BOOTSTRAP_STREAM 0xB0075000000ULL

/* The bootstrap of one label's statistic. */
typedef struct th_auc_boot {
    double lo, hi;      /* percentile 95% interval; NaN when no resample was used */
    int used, skipped;  /* resamples with both classes, and without (used + skipped = resamples) */
} th_auc_boot;

/* Bootstraps the AUC of each of the l labels of p [n, l] against y [n, l],
 * clustered by cluster_of[n] in [0, n_clusters), into out[l]. With p2 [n, l]
 * (else NULL) the statistic is the paired difference AUC(p) - AUC(p2) on the
 * same resamples. samples [resamples, l] (may be NULL) receives every
 * resample's statistic, NaN where skipped. Returns -1 for a NaN score, a
 * cluster out of range, resamples < 0 or an allocation failure. */
int th_auc_bootstrap(int n, int l, const float *p, const float *p2, const uint8_t *y, const int *cluster_of,
                     int n_clusters, int resamples, uint64_t seed, th_auc_boot *out, double *samples, th_err *err);

/* DeLong's placement values (structural components) of the cases of one
 * label into v[n] (not strided): for a positive, V10, the share of the
 * negatives scoring below it; for a negative, V01, the share of the positives
 * scoring above it; ties count one half. The AUC is the mean of V10 over the
 * positives and of V01 over the negatives. Both classes must be present.
 * A case whose label is unknown (TH_LABEL_UNKNOWN) takes no part: its v is
 * NaN. Returns -1 for a NaN score, a single class or an allocation failure. */
int th_auc_placements(int n, const float *score, const uint8_t *y, int stride, double *v, th_err *err);

/* Everything reported for one label. When defined is 0 every double is NaN
 * and reason says why ("no positive images", "no negative images", "no
 * images"); otherwise reason is NULL. auc_lo/auc_hi are NaN (and auc_var is
 * NaN) when a class has a single case. The threshold is Youden's: the score
 * maximising sensitivity + specificity - 1 (ties: the highest such score),
 * with the sensitivity and specificity of calling scores >= it positive. */
typedef struct th_label_metrics {
    double auc, auc_lo, auc_hi, auc_var;
    long n_pos, n_neg;
    long n_unknown;             /* images left out of every metric: the label is TH_LABEL_UNKNOWN */
    double threshold, sensitivity, specificity;
    double ap;
    int defined;
    const char *reason;
    /* Calibration of the scores evaluated: ECE (TH_ECE_BINS equal-mass
     * bins) and Brier score, NaN without cases. */
    double ece, brier;
    /* Filled by th_metrics_apply: the operating point applied (has_op),
     * the rule that chose it and where; threshold, sensitivity and
     * specificity above are then the op's. */
    int has_op;
    th_operating_point op;
    const char *op_rule, *op_chosen_on;
    /* With temperature scaling: T, and ECE and Brier of the raw scores
     * (NaN when not calibrated). */
    double temperature, ece_raw, brier_raw;
    /* The patient bootstrap of the AUC when one was asked for
     * (th_report_info.bootstrap > 0); all zero otherwise. */
    th_auc_boot boot;
} th_label_metrics;

/* Unweighted means over the defined labels (NaN when there are none). */
typedef struct th_metrics_macro {
    double auc, ap, sensitivity, specificity;
    int n_defined;
} th_metrics_macro;

/* Metrics of p [n, l] against y [n, l] for each of the l labels into out[l],
 * and their macro means into *macro (may be NULL). Returns -1 for a NaN
 * probability (naming image and label index) or an allocation failure. */
int th_metrics_compute(int n, int l, const float *p, const uint8_t *y, th_label_metrics *out, th_metrics_macro *macro,
                       th_err *err);

/* Applies threshold[k] (chosen elsewhere by `rule`, on `chosen_on`) to each
 * label of p [n, l] against y: fills m[k].op and makes m[k]'s threshold,
 * sensitivity and specificity the op's, and macro's sensitivity and
 * specificity their means over the defined labels with a value. */
void th_metrics_apply(int n, int l, const float *p, const uint8_t *y, const double *threshold, const char *rule,
                      const char *chosen_on, th_label_metrics *m, th_metrics_macro *macro);

/* Patient-level scores and labels from image-level ones: patient_of[n] in
 * [0, n_patients) (as from th_patients_group); p_out [n_patients, l] is the
 * maximum over the patient's images (a NaN image score makes it NaN) and
 * y_out [n_patients, l] is 1 when any image is positive. Fails if a patient
 * index is out of range or a patient has no image. */
int th_metrics_by_patient(int n, int l, const float *p, const uint8_t *y, const int *patient_of, int n_patients,
                          float *p_out, uint8_t *y_out, th_err *err);

/* ------------------------------------------------------------------------- */
/* The result files of an evaluation (DESIGN.md, "Run directory"):
 *
 *   predictions.csv    image,patient_id,y_<label>...,p_<label>...
 *   metrics.json       per label: auc, auc_ci, n_pos, n_neg, threshold,
 *                      sensitivity, specificity, average_precision,
 *                      auc_ci_delong, ci_method (and bootstrap_used,
 *                      bootstrap_skipped); a macro mean over the labels
 *                      where they are defined. auc_ci is the patient
 *                      bootstrap's when d->bootstrap > 0, else DeLong's.
 *   metrics.md         the same per label, as a Markdown table (model card)
 *   roc_<label>.csv    threshold,fpr,tpr (the first threshold is inf)
 *   roc.png            one curve per label, AUC and CI in the legend
 *   calibration.png    reliability diagram per label
 *
 * Every file is written atomically (path.tmp, then rename). These run on
 * rank 0 after the predictions are gathered.
 */
/* The gathered predictions of one split: n cases, l labels. */
/* What an external file (eval --data) shares with the run's training split:
 * patients by ID, images by the digest of their pixels (identical images,
 * whatever their names). */
typedef struct th_overlap {
    long patients, images;
} th_overlap;

typedef struct th_eval_data {
    int n, l;
    const char *const *label;      /* [l] label names */
    const char *const *image;      /* [n] image names */
    const char *const *patient_id; /* [n] */
    const float *p;                /* [n, l] predicted probabilities */
    const uint8_t *y;              /* [n, l] 0/1 truth */
    /* [n, l] the model's probabilities before temperature scaling, when p
     * is calibrated (predictions.csv's p_raw_<label>); NULL otherwise. */
    const float *p_raw;
    int bootstrap;                 /* patient-bootstrap resamples of the AUC CI; 0: DeLong's CI */
    uint64_t bootstrap_seed;
    /* External data (eval --data): its patients and images that are also in
     * the run's training split, for metrics.json's overlap_with_training;
     * NULL for a split of the run's own file. */
    const th_overlap *overlap;
} th_eval_data;

/* Flags of th_report_write_eval. */
enum {
    /* Also evaluate per patient (a patient's score is the maximum over their
     * images, their label positive if any image is) into <dir>/patient/. */
    TH_REPORT_PATIENT = 1 << 0,
};

/* Computes the metrics of d and writes the four kinds of file into dir
 * (created if missing); split names the data in titles and metrics.json (may
 * be NULL). With TH_REPORT_PATIENT, dir/patient/ receives the same files at
 * patient level (predictions.csv there is patient_id,n_images,y_...,p_...).
 * The image-level macro means go to *macro when it is not NULL. */
int th_report_write_eval(const char *dir, const char *split, const th_eval_data *d, int flags,
                         th_metrics_macro *macro, th_err *err);

/* What an evaluation applies rather than fits on its own data: each label's
 * operating point chosen on val (image and patient level) and, when
 * calibrated, the temperature that made d->p from d->p_raw. */
typedef struct th_eval_applied {
    const char *rule;                  /* eval.threshold as written */
    const char *chosen_on;             /* "val" */
    const double *threshold;           /* [l] image level (NaN: none) */
    const double *threshold_patient;   /* [l] patient level */
    const double *temperature;         /* [l], or NULL: not calibrated */
} th_eval_applied;

/* th_report_write_eval with the operating points (and calibration) of ap;
 * ap NULL chooses Youden's threshold on d itself (chosen_on = split) and
 * calibrates nothing. Also writes calibration.png (reliability diagram). */
int th_report_write_eval_applied(const char *dir, const char *split, const th_eval_data *d, int flags,
                                 const th_eval_applied *ap, th_metrics_macro *macro, th_err *err);

/* eval/val/thresholds.json: the operating points chosen on val, which
 * evaluations of test and external data apply. Valid for one checkpoint
 * (name, epoch and step), rule and calibration. */
typedef struct th_thresholds {
    char checkpoint[16];               /* "best" or "last" */
    int epoch;
    long step;
    char rule[32];                     /* eval.threshold */
    char calibrate[16];                /* eval.calibrate */
    int l;
    char label[TH_MAX_LABELS][TH_LABEL_MAX];
    double threshold[TH_MAX_LABELS], threshold_patient[TH_MAX_LABELS];
    double temperature[TH_MAX_LABELS]; /* 1 when not calibrated */
} th_thresholds;

int th_thresholds_write(const char *path, const th_thresholds *t, th_err *err);
/* Reads a file th_thresholds_write wrote (null numbers read as NaN). */
int th_thresholds_read(const char *path, th_thresholds *t, th_err *err);
/* 1 when run_dir/eval/val/thresholds.json exists and was made with this
 * checkpoint ("best" or "last", at st's epoch and step) and cfg's
 * eval.threshold and eval.calibrate, with *t filled from it; else 0. */
int th_thresholds_current(const char *run_dir, const char *checkpoint, const th_train_state *st,
                          const th_config *cfg, th_thresholds *t);

/* ---- the single writers, for callers that assemble their own ------------ */

/* What metrics.json says about the data the metrics come from. */
typedef struct th_report_info {
    const th_overlap *overlap; /* NULL: no overlap_with_training written */
    const char *level; /* "image" or "patient" */
    const char *split; /* NULL: not written */
    long n_images;
    long n_patients;   /* < 0: not written */
    int bootstrap;     /* resamples behind m[].boot; 0: the CIs are DeLong's */
    uint64_t bootstrap_seed;
} th_report_info;

/* Probabilities with %.6f; names are CSV-quoted when they need it. */
int th_report_write_predictions(const char *path, const th_eval_data *d, th_err *err);

/* m[l] and macro as from th_metrics_compute. An undefined label has null
 * metrics and a "reason"; NaN is always written as null. */
int th_report_write_metrics_json(const char *path, const th_report_info *info, int l, const char *const *label,
                                 const th_label_metrics *m, const th_metrics_macro *macro, th_err *err);

/* The same per-label table in Markdown (metrics.md, which the model card
 * includes): a line with the level, counts and macro AUC, then one row per
 * label of AUC, DeLong CI, n_pos, n_neg, Youden threshold, sensitivity,
 * specificity and AP, 4 decimals ("-" where undefined). */
int th_report_write_metrics_md(const char *path, const th_report_info *info, int l, const char *const *label,
                               const th_label_metrics *m, const th_metrics_macro *macro, th_err *err);
/* Just the table, appended to b; first_head heads the name column. */
void th_report_metrics_table(th_strbuf *b, const char *first_head, int l, const char *const *label,
                             const th_label_metrics *m);

/* Subgroups: the cases of d grouped by value[n] (the /meta/<column> string
 * of each case), in byte order of the values; per group and label the AUC,
 * its DeLong 95% CI and n_pos/n_neg into dir/by_<column>.json
 *   {"column", "split", "level", "ci_method", "ci_level",
 *    "groups": {"<value>": {"n_images", "macro_auc",
 *                           "labels": {"<label>": {"auc", "auc_ci", "n_pos", "n_neg"}}}}}
 * and the metrics.md tables of each group into dir/by_<column>.md, whose
 * path goes to md_path (<column> made safe as label file names). The
 * tables' operating points are ap's (val's choice) applied to each group;
 * with ap NULL, Youden's fitted on the group itself. */
int th_report_write_by(const char *dir, const char *column, const char *split, const th_eval_data *d,
                       const char *const *value, const th_eval_applied *ap, char *md_path, size_t md_cap,
                       th_err *err);

/* An undefined curve (roc->n == 0) is written as the header alone. */
int th_report_write_roc_csv(const char *path, const th_roc *roc, th_err *err);

/* roc[l] and m[l] per label; undefined labels are left out of the plot. */
/* The reliability diagram: per label the mean truth against the mean score
 * of each of TH_ECE_BINS equal-mass bins, and the diagonal. */
int th_report_write_calibration_png(const char *path, const char *title, int n, int l, const char *const *label,
                                    const float *p, const uint8_t *y, const th_label_metrics *m, th_err *err);

int th_report_write_roc_png(const char *path, const char *title, int l, const char *const *label, const th_roc *roc,
                            const th_label_metrics *m, th_err *err);

/* A label as a file-name part: every byte outside [A-Za-z0-9_.-] becomes '_'
 * ("Pleural Thickening" -> "Pleural_Thickening"), and "" becomes "_".
 * Returns 0, or -1 if it does not fit in cap. */
int th_report_label_filename(const char *label, char *out, size_t cap);

/* ------------------------------------------------------------------------- */
/* `thorax compare`: two runs on the same images (DESIGN.md, "compare.json").
 *
 * Reads RUN_A/eval/<split>/predictions.csv and RUN_B's (written by thorax
 * eval; a missing file is an error saying so), pairs the images by name and
 * compares the labels both files have, by name. Per label, on the paired
 * images:
 *   - the AUC of each run and the difference A - B;
 *   - DeLong's paired test: from the placement values of both runs on the
 *     same cases, Var(A - B) = Var(A) + Var(B) - 2 Cov(A, B) with
 *     Cov = S10_AB / m + S01_AB / n (DeLong et al. 1988; Sun and Xu 2014),
 *     z = (A - B) / SE, two-sided p = erfc(|z| / sqrt 2), and the Wald 95%
 *     interval of the difference (not clipped). z and p are NaN when the
 *     variance is 0 (identical rankings);
 *   - the paired patient bootstrap of the difference (th_auc_bootstrap with
 *     both runs' scores: the same resampled patients for both), patients as
 *     in RUN_A's file.
 * A label without both classes among the paired images is reported with
 * NaN statistics and a reason. The truth of an image must agree between the
 * two files, and so must its patient.
 */
typedef struct th_compare_opts {
    const char *run_a, *run_b;
    const char *split;      /* "val" or "test" (default "test") */
    const char *data;       /* else: the predictions of thorax eval --data F.h5, eval/<F>/ */
    const char *out_dir;    /* NULL: RUN_A/compare/<RUN_B's name>_<split or F>/ */
    int bootstrap;          /* resamples of patients; 0: no bootstrap */
    uint64_t seed;
} th_compare_opts;

typedef struct th_compare_label {
    char label[TH_LABEL_MAX];
    long n_pos, n_neg;
    double auc_a, auc_b, diff;
    double se, z, p, lo, hi;    /* DeLong's paired test and the 95% CI of diff */
    th_auc_boot boot;           /* the paired bootstrap of diff */
    const char *reason;         /* NULL, or why the statistics are NaN */
} th_compare_label;

typedef struct th_compare_result {
    char pred_a[2100], pred_b[2100];    /* the predictions files read */
    char out_path[2100];                /* compare.json */
    int n_a, n_b;                       /* images in each file */
    int n_matched, n_patients;          /* images in both, and their patients */
    int n_labels;
    th_compare_label label[TH_MAX_LABELS];
    char note[512];                     /* labels of one run only; "" if none */
} th_compare_result;

/* Serial (no MPI). Writes compare.json atomically and fills *res. */
int th_compare_run(const th_compare_opts *opts, th_compare_result *res, th_err *err);

/* ------------------------------------------------------------------------- */
/* Class activation maps: where in the X-ray the network looks.
 *
 * Three attribution maps for one image and one label c, each at the
 * resolution of the layer it is read from ("feature" resolution) and
 * upsampled bilinearly to the image:
 *
 *   CAM       (Zhou et al. 2016) needs a network ending in gap -> dense,
 *             or gap -> dropout -> dense (any layer that is the identity at
 *             evaluation between them, dropout or flatten of the pooled vector):
 *             m_c(x,y) = sum_k w[c,k] f_k(x,y), f = the layer feeding gap and
 *             w the dense weights. No ReLU and no bias: the map is signed and
 *             its spatial mean plus bias[c] is the logit.
 *   Grad-CAM  (Selvaraju et al. 2017) works at any spatial layer A:
 *             alpha_k = mean over (x,y) of d z_c / d A_k(x,y) (z_c the logit,
 *             as in the paper, not the probability), map = ReLU(sum_k alpha_k A_k).
 *             At the layer feeding gap -> dense it equals ReLU(CAM) / (fh*fw).
 *   Saliency  (Simonyan et al. 2014): max over channels of |d z_c / d x|,
 *             already at image resolution (the feature map is the image map).
 *
 * Also: the pointing game and mask-overlap scores against lesion masks, the
 * overlay PNGs' file names and the writer of cam/maps.h5 (see DESIGN.md, "Run
 * directory"). The overlays themselves are drawn by thorax/render.h.
 */
typedef enum th_cam_method {
    TH_CAM_CAM = 0,
    TH_CAM_GRADCAM,
    TH_CAM_SALIENCY,
    TH_CAM_METHOD_COUNT
} th_cam_method;

/* "cam", "gradcam", "saliency": the names in maps.h5 and PNG file names. */
const char *th_cam_method_name(th_cam_method method);
/* Returns -1 for an unknown name. */
int th_cam_method_parse(const char *s, th_cam_method *method);

/* The layer Grad-CAM reads. name NULL or "" picks the default: the layer
 * feeding the network's first gap layer (the rectified feature maps the
 * Grad-CAM paper uses, where Grad-CAM and CAM agree: a ResNet's last block,
 * a conv-bn-relu chain's last ReLU). Without a gap: the output of the last
 * conv block, i.e. the last conv layer extended over the batch-norm, ReLU
 * and dropout layers right after it; without a conv layer, the last layer
 * with a spatial output before the first gap or dense layer. A named layer
 * (m->layers[i].name, e.g. "conv5", "relu4" or a block, "layer4.1") must
 * come before any gap or dense layer. Returns the index or -1 with err
 * naming the layer. */
int th_cam_layer_index(const th_model *m, const char *name, th_err *err);

/* The layer a method reads, ready to be read: for gradcam the layer named
 * name (NULL or "": th_cam_layer_index's default) with its output kept apart
 * from a fused group (th_model_keep_output: a conv fused with its ReLU
 * overwrites its own output, a fused pool never stores the ReLU's), into
 * *layer; for cam and saliency *layer = -1 and a named layer is an error.
 * One entry for thorax cam and thorax predict --cam. */
int th_cam_layer_prepare(th_model *m, th_cam_method method, const char *name, int *layer, th_err *err);

/* The layer CAM weighs: the one feeding gap in a network ending in
 * gap -> dense (identity-at-evaluation layers such as dropout allowed
 * between gap and dense); -1 for another head. */
int th_cam_feature_layer(const th_model *m);

/* Feature-resolution shape of a method's map: CAM reads the layer feeding
 * gap (layer is ignored), Grad-CAM reads `layer`, saliency is at the image
 * size. Fails, naming the reason, when the model cannot give that map (CAM
 * without a gap -> dense head, a layer out of range). */
int th_cam_feature_shape(const th_model *m, th_cam_method method, int layer, int *fh, int *fw, th_err *err);

/* One map for image x [C, H, W] (the model's input shape, normalised as for
 * training) and label index `label`. Runs the model in eval mode on a batch
 * of one; uses its activations, grad_a/grad_b and grads (overwritten).
 *   map_feat [fh, fw]  the raw map at feature resolution (required; fh, fw
 *                      as th_cam_feature_shape gives them, also returned)
 *   map_img  [H, W]    the same map upsampled bilinearly (may be NULL)
 *   prob               the label's probability (may be NULL): sigmoid of
 *                      the logit, or its softmax over labels when `softmax`
 *                      is set (models trained with softmax cross-entropy).
 * Grad-CAM and saliency allocate one n_labels vector per call (the one-hot
 * output gradient); CAM allocates nothing. Returns 0 or -1. */
int th_cam_compute(th_model *m, const float *x, int label, th_cam_method method, int layer, int softmax,
                   float *map_feat, int *fh, int *fw, float *map_img, float *prob, th_err *err);

/* Scores against a lesion mask [H, W] (nonzero = lesion), the map at image
 * resolution. Both return -1 when the mask is empty: there is nothing to
 * point at, and callers should leave such images out of the mean. */

/* Pointing game: 1 if the map's maximum (the first one in raster order) lies
 * in the mask, else 0. A constant map points nowhere and scores 0. */
int th_cam_pointing_hit(const float *map, const uint8_t *mask, int h, int w);

/* The mask grown by `radius` pixels: out[i] = 1 where a mask pixel lies
 * within Euclidean distance radius (a disc), else 0. The pointing game on a
 * map upsampled from a coarse layer scores a near miss of a small lesion as a
 * miss; a few pixels of tolerance is the usual remedy. out [H, W] must not
 * alias mask; radius 0 copies the mask as 0/1. */
void th_cam_mask_dilate(const uint8_t *mask, int h, int w, int radius, uint8_t *out);

/* Share of the positive map mass inside the mask: sum over the mask of
 * max(m, 0) / sum of max(m, 0), in [0, 1]; 0 when the map has no positive mass. */
double th_cam_mask_energy(const float *map, const uint8_t *mask, int h, int w);

/* IoU between the mask and the map's top (1 - quantile) share of pixels (e.g.
 * quantile 0.9: the brightest 10%; ties at the threshold all count). quantile
 * in [0, 1); -1 for an empty mask or an out-of-range quantile. */
double th_cam_iou_at(const float *map, const uint8_t *mask, int h, int w, double quantile);

/* The IoU of the map thresholded at the lesion's own area: the map's
 * brightest pixels, as many as the mask has (th_cam_iou_at with quantile
 * 1 - area / (h w)), against the mask; for a box, the map's box-sized
 * region against the box. -1 for an empty mask or one covering the image. */
double th_cam_iou_lesion(const float *map, const uint8_t *mask, int h, int w);

/* An overlay's file name: "<image>__<label>__<method>_<outcome>.png"
 * (outcome "TP", "FP", "FN", "TN" or "unknown" at the operating point), or
 * "<image>__<label>__<method>.png" when outcome is NULL (thorax predict, which
 * knows no truth), with the image name's extension dropped and any '/' made
 * '_', and the label made safe (th_safe_name): the one naming of thorax cam's
 * and thorax predict --cam's overlays. Returns -1 with err if it does not
 * fit in size bytes. */
int th_cam_png_name(char *buf, size_t size, const char *image_name, const char *label, th_cam_method method,
                    const char *outcome, th_err *err);

/* The outcome of probability p against threshold t for truth y (1, 0, or
 * < 0 unknown): "TP", "FP", "FN", "TN" or "unknown". p >= t is positive, as
 * everywhere an operating point is applied. */
const char *th_cam_outcome(double p, double t, int y);

/* Writer of the maps file, cam/<checkpoint>/<method>/maps.h5 (serial HDF5; written as <path>.tmp and renamed on
 * close, so a killed job leaves no half-written file):
 *   /maps/<method>          float32 [M, H, W]     at image resolution
 *   /maps_feature/<method>  float32 [M, fh, fw]   at the method's feature resolution
 *   /index                  int64 [M]             row in the dataset file
 *   /image_name, /label     strings [M]
 *   /prob                   float32 [M]           the label's probability
 * A row is one (image, label) pair; every method must be put for every row
 * before close accepts the file. */
#define TH_CAM_MAX_METHODS TH_CAM_METHOD_COUNT
typedef struct th_cam_writer {
    char path[4096], tmp_path[4100];
    int64_t file, index, image_name, label, prob;   /* HDF5 ids; -1 when not open */
    int64_t maps[TH_CAM_MAX_METHODS], feats[TH_CAM_MAX_METHODS];
    int m, h, w, n_methods;
    th_cam_method methods[TH_CAM_MAX_METHODS];
    int fh[TH_CAM_MAX_METHODS], fw[TH_CAM_MAX_METHODS];
    uint8_t *done;                                  /* [M, n_methods]: maps put so far */
} th_cam_writer;

/* Creates <path>.tmp for m_rows rows of h x w maps, one method each of
 * methods[n_methods] with its feature shape fh[k] x fw[k]. */
int th_cam_writer_open(th_cam_writer *wr, const char *path, int m_rows, int h, int w, int n_methods,
                       const th_cam_method *methods, const int *fh, const int *fw, th_err *err);
/* Writes row i's map of one method (map_img [H, W], map_feat [fh, fw]) and
 * the row's description (the same for every method of the row). */
int th_cam_writer_put(th_cam_writer *wr, int i, th_cam_method method, const float *map_img, const float *map_feat,
                      int64_t index, const char *image_name, const char *label, float prob, th_err *err);
/* An extra per-row dataset /name [M], written whole, for what a caller knows
 * about its rows beyond the maps (e.g. the selection kind, the truth, a
 * pointing-game hit). values: int8_t [M], float [M], or const char *[M]. */
typedef enum th_cam_column_type { TH_CAM_COLUMN_INT8 = 0, TH_CAM_COLUMN_FLOAT32, TH_CAM_COLUMN_STRING } th_cam_column_type;
int th_cam_writer_column(th_cam_writer *wr, const char *name, th_cam_column_type type, const void *values,
                         th_err *err);
/* Checks that every map was put, closes and renames into place. On failure
 * the temporary file is removed. */
int th_cam_writer_close(th_cam_writer *wr, th_err *err);
/* Closes and removes the temporary file (after an error elsewhere). */
void th_cam_writer_abort(th_cam_writer *wr);

/* ------------------------------------------------------------------------- */
/* The evaluation phase: every rank predicts its share of a
 * split's patients, rank 0 gathers the predictions in dataset order and
 * writes predictions.csv, metrics.json, roc_<label>.csv and roc.png.
 *
 * The same code runs at the end of `thorax train` and as `thorax eval`. A
 * split's images are dealt to ranks by whole patients; the gather neither
 * pads nor repeats a sample, so the numbers do not depend on the number of
 * ranks.
 */
/* A predictor: a trained run opened for inference, with its resolved
 * config, a checkpoint's parameters, and the input transform of training
 * (normalisation from the checkpoint, no augmentation). Not collective:
 * each rank opens its own. */
typedef struct th_predictor {
    th_config *cfg;
    char ckpt[2048];
    th_model model;
    th_train_state st;
    th_input input;
    /* Val's operating points and temperatures for this checkpoint
     * (eval/val/thresholds.json), when thorax eval has chosen them. */
    int has_op;
    th_thresholds op;
} th_predictor;

/* checkpoint: "best" (default when NULL) or "last". max_batch: images per
 * forward (<= 0: the config's batch_per_rank). */
int th_predictor_open(th_predictor *t, const char *run_dir, const char *checkpoint, int max_batch, th_err *err);
/* Sizes the model for max_batch images per forward, keeping its parameters:
 * the evaluation opens the predictor for one image and sizes it with
 * th_plan_batch once it knows the ranks' shares, as training does. */
int th_predictor_set_batch(th_predictor *t, int max_batch, th_err *err);
void th_predictor_close(th_predictor *t);
/* (Re)reads val's operating points into t->op and t->has_op, e.g. after an
 * evaluation made them while t was open. */
void th_predictor_read_op(th_predictor *t, const char *run_dir, const char *checkpoint);

/* The probabilities of one image from its logits [L], calibrated with val's
 * temperatures when the run calibrates (eval.calibrate: temperature) and has
 * chosen them; raw otherwise. */
void th_predictor_probs(const th_predictor *t, const float *logits, float *p);

/* Reads an image as ingest prepares training images (PNG, JPEG or DICOM,
 * th_image_read_any with DICOM's first window; luminance, resized to the
 * model's input with the same resampling) into img [H, W]. warn receives ""
 * or a sentence on how the image differs from the training data: another
 * size, 16-bit or colour samples, or intensity statistics far from the
 * training set's (mean more than 1.5 training standard deviations away, or
 * a contrast below 0.3x or above 2.5x the training set's). */
int th_predictor_load_image(const th_predictor *t, const char *path, uint8_t *img, char *warn, size_t warn_cap,
                            th_err *err);

/* `thorax predict`'s results as CSV or JSON text (the CLI writes them to a
 * file atomically or to stdout). Rows are the images that loaded, in order. */
typedef struct th_predict_table {
    int n, l;
    const char *const *image;   /* [n] the paths as given */
    const char *const *warning; /* [n] "" or th_predictor_load_image's warning */
    const float *p;             /* [n, l] probabilities (th_predictor_probs) */
    const th_predictor *t;      /* labels, checkpoint, and val's operating points when t->has_op */
    int n_skipped;              /* images that did not load (--skip-bad) */
    const char *const *skipped; /* [n_skipped] their paths */
    const char *const *error;   /* [n_skipped] why each did not load */
} th_predict_table;

/* Header `image,p_<label>...`, then `pred_<label>...` (1 when p is at or
 * above the label's operating point) when t->has_op; one row per image,
 * probabilities with 6 decimals, fields quoted as RFC 4180 wants. */
void th_predict_csv(th_strbuf *b, const th_predict_table *r);

/* One object: checkpoint, labels, operating_points (label -> threshold, or
 * null), calibrated, images (each image, p and pred by label, warnings) and
 * skipped (image, error). Probabilities are the shortest decimals that read
 * back to the same float. */
void th_predict_json(th_strbuf *b, const th_predict_table *r);

typedef struct th_eval_opts {
    const char *run_dir;        /* the training run: config.yaml and checkpoints/ */
    const char *split;          /* "val" or "test" (default: the config's eval.split) */
    const char *checkpoint;     /* "best" (default) or "last" */
    const char *data;           /* another dataset file: evaluate all its images (external validation) */
    int patient_level;          /* also evaluate per patient (max over their images) */
    const char *by;             /* also per value of /meta/<by> (th_report_write_by); NULL: not */
    th_stop_poll stop;          /* polled between prediction batches; zero: never */
    /* Called on each rank as it predicts its share of the images: done of
     * total (this rank's), after each batch and once at 0. May be NULL. */
    void (*on_progress)(void *ctx, int done, int total);
    void *progress_ctx;
} th_eval_opts;

typedef struct th_eval_result {
    char out_dir[2048];         /* where the files went */
    int n_images, n_patients;
    int n_labels, n_defined;    /* labels evaluated, and those with both classes */
    double macro_auc;           /* NaN when no label is defined */
    char note[512];             /* e.g. labels missing from an external file; "" if none */
    char by_md[2200];           /* with opts->by: the by_<column>.md written; else "" */
    int external;               /* opts->data: overlap below was measured */
    th_overlap overlap;         /* opts->data's patients and images in the run's training split */
} th_eval_result;

/* Collective over comm. The result is filled on every rank. Returns 0, -1,
 * or TH_TRAIN_STOPPED when opts->stop asked the ranks to stop during
 * prediction (nothing of this evaluation written). */
int th_eval_run(const th_eval_opts *opts, th_comm comm, th_eval_result *res, th_err *err);

/* ------------------------------------------------------------------------- */
/* MODEL_CARD.md beside config.yaml in a run directory: what was trained on
 * what, and how well it did. Sections: Data (file name, size in bytes, the
 * SHA-256 of its index, th_dataset_index_sha256), Split (patients, images and
 * positives per label per split, the leakage check), Network (config name,
 * layers, parameter count), Training (epochs, time and ranks from
 * metrics.csv, the best epoch from best.h5), Evaluation (every
 * eval/<name>/metrics.md, as th_report_write_metrics_md wrote it from the
 * metrics eval computed), Known limits (a fixed paragraph, and labels with
 * fewer than 10 positives in val or test), and the Thorax version.
 *
 * Reads the run directory and the dataset file only, so that it can be
 * rewritten after any evaluation. Rank 0 alone (not collective); written
 * atomically. */
int th_model_card_write(const char *run_dir, th_err *err);

/* ------------------------------------------------------------------------- */
/* `thorax cam`: class activation maps of chosen images of a
 * trained run, as heat-map overlays and one maps file per checkpoint,
 * method and label choice, so that runs with another method or checkpoint
 * keep each other's files: RUN_DIR/cam/<checkpoint>/<method>/ holds
 * maps.h5 (every label of the run) or maps_<label>.h5 (opts->label), the
 * pointing game's pointing.csv (pointing_<label>.csv) and the overlays
 * <image>__<label>__<method>_<outcome>.png (th_cam_png_name).
 *
 * Which (image, label) pairs get a map, decided on rank 0:
 *   named  opts->images, a comma-separated list of image names of the
 *          dataset file (any split), each with every label of the run (or
 *          only opts->label); an unknown name is an error naming it.
 *   top-k  per label, the split's predictions (eval/<split>/predictions.csv,
 *          made first with th_eval_run when missing) ranked by probability:
 *            TP  the K positives with the highest p,
 *            FP  the K negatives with the highest p,
 *            FN  the K positives with the lowest p, among those not taken as TP.
 *          Ranking, not an operating point: no threshold is involved, so a
 *          "TP" of a label with few confident positives may have p < 0.5.
 *          Ties go to the lower dataset row.
 *
 * Every map's outcome at the run's operating point names its PNG and is
 * written to maps.h5's /outcome: TP, FP, FN or TN from the probability (as
 * in predictions.csv: calibrated when the run calibrates) against val's
 * threshold for the label (eval/val/thresholds.json, when it was made for
 * this checkpoint: th_thresholds_current), else against 0.5; "unknown" where
 * the file does not know the truth. The caption says which threshold.
 *
 * The selected images are dealt to ranks by whole patients
 * (th_shard_by_patient over the selected rows, balanced by image count), so
 * every rank computes the maps of its own images: it reads them with
 * parallel HDF5, runs the model in eval mode on a batch of one per map
 * (normalised as in training, never augmented), writes their PNG overlays
 * and sends the maps to rank 0, which writes the maps file. A map depends only
 * on the image, the label and the checkpoint: the files are the same on any
 * number of ranks.
 *
 * When the dataset file has lesion masks (phantom data), every map is also
 * scored against the label's mask dilated by opts->dilate pixels: the
 * pointing game (is the map's maximum in the mask?) and the share of the
 * map's positive mass inside the mask; per label over the TP items (named
 * mode: the images positive for the label) they go to pointing.csv
 * (label,n,hits,rate,mean_energy,mean_iou; the IoU of the map's
 * lesion-sized brightest region with the undilated mask) and to the result.
 */
/* Why an (image, label) pair was chosen. */
typedef enum th_explain_kind { TH_EXPLAIN_NAMED = 0, TH_EXPLAIN_TP, TH_EXPLAIN_FP, TH_EXPLAIN_FN } th_explain_kind;

/* "named", "TP", "FP", "FN": the /kind column of maps.h5 and the captions. */
const char *th_explain_kind_name(th_explain_kind kind);

typedef struct th_explain_opts {
    const char *run_dir;        /* the training run: config.yaml and checkpoints/ */
    const char *method;         /* "cam", "gradcam" or "saliency" (NULL: the config's eval.cam.method) */
    const char *layer;          /* Grad-CAM's layer, e.g. "conv3" (NULL: the last conv block) */
    const char *images;         /* "a.png,b.png": named mode (NULL: top-k) */
    int top_k;                  /* K of top-k mode (< 0: the config's eval.cam.top_k) */
    const char *split;          /* "val" or "test", top-k mode (NULL: the config's eval.split) */
    const char *checkpoint;     /* "best" (default) or "last" */
    const char *label;          /* only this label (NULL: every label of the run) */
    int dilate;                 /* pixels of tolerance around lesion masks (>= 0) */
    /* Called on rank 0 after each of its images (all its labels mapped),
     * with the number done and rank 0's total; NULL: none. The other ranks
     * map about as many images at the same time. */
    void (*progress)(void *ctx, int done, int total);
    void *progress_ctx;
} th_explain_opts;

/* The pointing game of one label. */
typedef struct th_explain_score {
    char label[TH_LABEL_MAX];
    int n, hits;                /* scored maps (non-empty mask) and those whose maximum is in the mask */
    double rate;                /* hits / n; NaN when n is 0 */
    double mean_energy;         /* mean share of positive map mass in the mask; NaN when n is 0 */
    double mean_iou;            /* mean th_cam_iou_lesion (against the undilated mask); NaN when n is 0 */
} th_explain_score;

typedef struct th_explain_result {
    char out_dir[2048];         /* RUN_DIR/cam/<checkpoint>/<method> */
    char maps[2400];            /* out_dir/maps.h5 or out_dir/maps_<label>.h5 */
    char pointing[2400];        /* out_dir/pointing.csv or pointing_<label>.csv (with masks) */
    char threshold_source[96];  /* what the outcomes were decided against */
    char method[16];            /* the method used */
    char layer[64];             /* the layer read ("input" for saliency) */
    char split[16];             /* top-k: the split ranked; named: "" */
    char predictions[2100];     /* top-k: the predictions file ranked; named: "" */
    int ran_eval;               /* the predictions were missing and were made first */
    int h, w, fh, fw;           /* map shape at image and at feature resolution */
    int n_maps, n_images;       /* rows of maps.h5, and distinct images among them */
    int has_masks;              /* the pointing game was played (score[] is filled) */
    int n_scores;
    th_explain_score score[TH_MAX_LABELS];
} th_explain_result;

/* Collective over comm. The result is filled on every rank; on failure
 * every rank returns -1 with the same message (the lowest failing rank's). */
int th_explain_run(const th_explain_opts *opts, th_comm comm, th_explain_result *res, th_err *err);

/* ------------------------------------------------------------------------- */
/* `thorax export`: a trained run as a model other tools run, with the
 * contract of `thorax predict` (docs/export.md):
 *   input   `image`, float32 [N, 1, H, W]: pixel / 255 of images read as
 *           predict reads them (luminance, resized to the model's H x W);
 *   inside  the run's normalisation (training-set mean and std from the
 *           checkpoint, per image, or none), the network in eval form
 *           (batch-norm on running statistics, dropout the identity), the
 *           loss's link (sigmoid, or softmax for softmax-CE) and, when
 *           predict applies them, val's temperatures;
 *   output  `prob`, float32 [N, L], L = the run's labels in config order.
 *
 * ONNX (opset 13): one file, the labels, Thorax version, run name,
 * checkpoint, epoch, step and normalisation in metadata_props (keys
 * "thorax.*"). PyTorch: OUT.py, a self-contained torch.nn.Module, and
 * OUT.bin beside it, the tensors as raw little-endian float32 whose names,
 * shapes and offsets the .py lists (it reads them with numpy).
 *
 * Every file is written as <path>.tmp and renamed; an output that is an
 * input of the run (its config, a checkpoint, its dataset file) is refused.
 */
typedef enum th_export_format { TH_EXPORT_ONNX = 0, TH_EXPORT_TORCH } th_export_format;

typedef struct th_export_opts {
    const char *run_dir;        /* the training run: config.yaml and checkpoints/ */
    const char *checkpoint;     /* "best" (default) or "last" */
    th_export_format format;
    const char *out;            /* ONNX: the file; torch: OUT.py and OUT.bin (a trailing ".py" is dropped) */
} th_export_opts;

typedef struct th_export_result {
    char files[2][4200];        /* what was written: the model, then (torch) the weights */
    int n_files;
    int epoch;                  /* the checkpoint's epochs completed and optimiser steps */
    long step;
    int n_layers;               /* layers of the expanded network */
    size_t n_params;            /* floats written (parameters and batch-norm statistics) */
} th_export_result;

/* "onnx" or "torch" -> *f; -1 for anything else. */
int th_export_format_parse(const char *s, th_export_format *f);

/* Not collective. Fails naming the culprit (a missing checkpoint, an
 * output that is an input of the run, a file that cannot be written). */
int th_export_run(const th_export_opts *opts, th_export_result *res, th_err *err);

#endif

/* report.h - the result files of an evaluation (DESIGN.md, "Run directory"):
 *
 *   predictions.csv    image,patient_id,y_<label>...,p_<label>...
 *   metrics.json       per label: auc, auc_ci, n_pos, n_neg, threshold,
 *                      sensitivity, specificity, average_precision; a macro
 *                      mean over the labels where they are defined
 *   roc_<label>.csv    threshold,fpr,tpr (the first threshold is inf)
 *   roc.png            one curve per label, AUC and CI in the legend
 *
 * Every file is written atomically (path.tmp, then rename). These run on
 * rank 0 after the predictions are gathered.
 */
#ifndef THORAX_REPORT_H
#define THORAX_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include "thorax/error.h"
#include "thorax/roc.h"

/* The gathered predictions of one split: n cases, l labels. */
typedef struct th_eval_data {
    int n, l;
    const char *const *label;      /* [l] label names */
    const char *const *image;      /* [n] image names */
    const char *const *patient_id; /* [n] */
    const float *p;                /* [n, l] predicted probabilities */
    const uint8_t *y;              /* [n, l] 0/1 truth */
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

/* ---- the single writers, for callers that assemble their own ------------ */

/* What metrics.json says about the data the metrics come from. */
typedef struct th_report_info {
    const char *level; /* "image" or "patient" */
    const char *split; /* NULL: not written */
    long n_images;
    long n_patients;   /* < 0: not written */
} th_report_info;

/* Probabilities with %.6f; names are CSV-quoted when they need it. */
int th_report_write_predictions(const char *path, const th_eval_data *d, th_err *err);

/* m[l] and macro as from th_metrics_compute. An undefined label has null
 * metrics and a "reason"; NaN is always written as null. */
int th_report_write_metrics_json(const char *path, const th_report_info *info, int l, const char *const *label,
                                 const th_label_metrics *m, const th_metrics_macro *macro, th_err *err);

/* An undefined curve (roc->n == 0) is written as the header alone. */
int th_report_write_roc_csv(const char *path, const th_roc *roc, th_err *err);

/* roc[l] and m[l] per label; undefined labels are left out of the plot. */
int th_report_write_roc_png(const char *path, const char *title, int l, const char *const *label, const th_roc *roc,
                            const th_label_metrics *m, th_err *err);

/* A label as a file-name part: every byte outside [A-Za-z0-9_.-] becomes '_'
 * ("Pleural Thickening" -> "Pleural_Thickening"), and "" becomes "_".
 * Returns 0, or -1 if it does not fit in cap. */
int th_report_label_filename(const char *label, char *out, size_t cap);

#endif

/* explain_impl.h - what the files of `thorax cam` share (internal to
 * src/eval): explain.c runs the collective job, explain_select.c chooses on
 * rank 0 which (image, label) pairs get a map.
 */
#ifndef THORAX_EXPLAIN_IMPL_H
#define THORAX_EXPLAIN_IMPL_H

#include <stdint.h>
#include "thorax/eval.h"
#include "thorax/data.h"

/* An item, one (image, label) pair to map, is IT_INTS ints so that the list
 * is broadcast as one int array: the dataset row, the run's label index,
 * the th_explain_kind and the rank that computes it. */
enum { IT_ROW = 0, IT_LABEL, IT_KIND, IT_OWNER, IT_INTS };

typedef struct explain {
    const th_explain_opts *opts;
    th_comm comm;
    int rank, size;
    th_predictor run;
    th_config *cfg;             /* run.cfg */
    th_cam_method method;
    int layer;                  /* the layer Grad-CAM reads; -1 for saliency */
    char layer_name[64];        /* the layer the maps are read at ("input" for saliency) */
    const char *checkpoint;     /* "best" or "last" */
    int top_k, which;           /* top-k mode: K and the split ranked */
    th_dataset ds;
    int ds_open;
    int n_labels;               /* the run's labels: model output k is column label_col[k] of the file */
    int label_col[TH_MAX_LABELS];
    int only_label;             /* -1, or the one run label to map */
    uint8_t *split;             /* [N], rank 0 */
    int n_items, cap_items;
    int *items;                 /* [n_items, IT_INTS] */
    int hw, fhw, width;         /* map sizes; floats per gathered row */
    int n_mine;
    float *mine;                /* [n_mine, width]: this rank's maps, in item order */
    /* Where every rank writes its overlays and rank 0 the maps and scores,
     * moved into out_dir once all are written (th_stage_*); staged: rank 0
     * has made it and not yet moved or removed it. */
    char stage[2200];
    int staged;
} explain;

/* Is run label k one to map (--label)? */
static inline int wanted_label(const explain *e, int k) { return e->only_label < 0 || e->only_label == k; }

/* The file's truth for image row and run label k: 1, 0, or -1 where the
 * file does not know it (TH_LABEL_UNKNOWN), which is neither a positive nor
 * a negative to rank or score. */
static inline int truth(const explain *e, int row, int k)
{
    uint8_t y = e->ds.labels[(size_t)row * e->ds.n_labels + e->label_col[k]];
    return y == TH_LABEL_UNKNOWN ? -1 : y != 0;
}

/* Rank 0, after the split and the labels are known: fills e->items (owners
 * still 0) from --images, or from the split's predictions in top-k mode.
 * Fails naming an unknown image, a stale predictions file or an empty choice. */
int explain_select(explain *e, const th_explain_result *res, th_err *err);

#endif

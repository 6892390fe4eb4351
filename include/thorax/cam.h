/* cam.h - class activation maps: where in the X-ray the network looks.
 *
 * Three attribution maps for one image and one label c, each at the
 * resolution of the layer it is read from ("feature" resolution) and
 * upsampled bilinearly to the image:
 *
 *   CAM       (Zhou et al. 2016) needs a network ending in gap -> dense:
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
 * directory"). The overlays themselves are drawn by thorax/overlay.h.
 */
#ifndef THORAX_CAM_H
#define THORAX_CAM_H

#include <stddef.h>
#include <stdint.h>
#include "thorax/error.h"
#include "thorax/model.h"

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

/* The layer CAM weighs: the one feeding gap in a network ending in
 * gap -> dense; -1 for another head. */
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

/* Bilinear resampling src [sh, sw] -> dst [dh, dw] with half-pixel centres
 * (PyTorch's interpolate(mode="bilinear", align_corners=False)): dst pixel
 * centre (i + 0.5) maps to source (i + 0.5) * sh/dh - 0.5, clamped to the
 * border. A constant map stays constant. */
void th_cam_upsample(const float *src, int sh, int sw, float *dst, int dh, int dw);

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

/* The overlay's file name under cam/: "<image>__<label>__<method>.png", with
 * the image name's extension dropped and any '/' made '_'. Returns -1 with
 * err if it does not fit in size bytes. */
int th_cam_png_name(char *buf, size_t size, const char *image_name, const char *label, th_cam_method method,
                    th_err *err);

/* Writer of cam/maps.h5 (serial HDF5; written as <path>.tmp and renamed on
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

#endif

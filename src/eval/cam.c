/* cam.c - CAM, Grad-CAM and gradient saliency, their scores against lesion
 * masks and the cam/maps.h5 writer (see thorax/cam.h).
 *
 * The maps reuse the model's own buffers: the forward pass keeps every
 * layer's activations and th_model_grad_at leaves the activation gradient in
 * the model's ping-pong buffers, so one map costs a forward and (for
 * Grad-CAM and saliency) a partial backward, with no copies.
 */
#include "thorax/cam.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const method_names[TH_CAM_METHOD_COUNT] = {"cam", "gradcam", "saliency"};

const char *th_cam_method_name(th_cam_method method)
{
    return method >= 0 && method < TH_CAM_METHOD_COUNT ? method_names[method] : "unknown";
}

int th_cam_method_parse(const char *s, th_cam_method *method)
{
    for (int k = 0; k < TH_CAM_METHOD_COUNT; k++)
        if (!strcmp(s, method_names[k])) {
            *method = (th_cam_method)k;
            return 0;
        }
    return -1;
}

/* Index of the first gap or dense layer: layers before it have a spatial
 * output [C, H, W]; from there on an image is a flat feature vector. */
static int spatial_end(const th_model *m)
{
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].spec.type == TH_LAYER_GAP || m->layers[i].spec.type == TH_LAYER_DENSE) return i;
    return m->n_layers;
}

int th_cam_layer_index(const th_model *m, const char *name, th_err *err)
{
    int end = spatial_end(m);
    if (name && name[0]) {
        for (int i = 0; i < m->n_layers; i++) {
            if (strcmp(m->layers[i].name, name)) continue;
            if (i >= end)
                return th_errf(err, "CAM layer '%s' (model.layers[%d], %s) comes after the network's first %s layer; "
                               "Grad-CAM needs a layer with a spatial output",
                               name, i, th_layer_type_name(m->layers[i].spec.type),
                               th_layer_type_name(m->layers[end].spec.type));
            return i;
        }
        return th_errf(err, "CAM layer '%s': the model has no layer of that name (conv layers are named conv1, conv2, ...)",
                       name);
    }
    /* What the classifier head pools: the layer feeding gap (in a ResNet,
     * the last block's output; in a chain, the last conv's rectified maps). */
    if (end < m->n_layers && m->layers[end].spec.type == TH_LAYER_GAP && m->layers[end].in[0] >= 0)
        return m->layers[end].in[0];
    int conv = -1;
    for (int i = 0; i < end; i++)
        if (m->layers[i].spec.type == TH_LAYER_CONV) conv = i;
    if (conv >= 0) {
        /* Extend over the conv block's own normalisation and activation: the
         * rectified maps are what the classifier head sees. */
        int i = conv;
        while (i + 1 < end) {
            th_layer_type t = m->layers[i + 1].spec.type;
            if (t != TH_LAYER_BATCHNORM && t != TH_LAYER_RELU && t != TH_LAYER_DROPOUT) break;
            i++;
        }
        return i;
    }
    for (int i = end - 1; i >= 0; i--)
        if (m->layers[i].out_h * m->layers[i].out_w > 1) return i;
    return th_errf(err, "CAM: the model has no layer with a spatial output before its first gap or dense layer");
}

/* The gap layer of a network ending in (a spatial layer ->) gap -> dense,
 * or -1. */
static int cam_gap_layer(const th_model *m)
{
    const th_layer *fc = &m->layers[m->n_layers - 1];
    if (fc->spec.type != TH_LAYER_DENSE || fc->in[0] < 0) return -1;
    int g = fc->in[0];
    if (m->layers[g].spec.type != TH_LAYER_GAP || m->layers[g].in[0] < 0) return -1;
    return g;
}

int th_cam_feature_layer(const th_model *m)
{
    int g = cam_gap_layer(m);
    return g < 0 ? -1 : m->layers[g].in[0];
}

int th_cam_feature_shape(const th_model *m, th_cam_method method, int layer, int *fh, int *fw, th_err *err)
{
    switch (method) {
    case TH_CAM_CAM: {
        int g = cam_gap_layer(m);
        if (g < 0) {
            int n = m->n_layers;
            return th_errf(err, "CAM needs a network ending in gap -> dense; this one ends in %s -> %s (use gradcam)",
                           n > 1 ? th_layer_type_name(m->layers[n - 2].spec.type) : "input",
                           th_layer_type_name(m->layers[n - 1].spec.type));
        }
        *fh = m->layers[m->layers[g].in[0]].out_h;
        *fw = m->layers[m->layers[g].in[0]].out_w;
        return 0;
    }
    case TH_CAM_GRADCAM:
        if (layer < 0 || layer >= spatial_end(m))
            return th_errf(err, "Grad-CAM layer %d is not a spatial layer of this model (0 to %d)", layer,
                           spatial_end(m) - 1);
        *fh = m->layers[layer].out_h;
        *fw = m->layers[layer].out_w;
        return 0;
    case TH_CAM_SALIENCY:
        *fh = m->spec.h;
        *fw = m->spec.w;
        return 0;
    default: return th_errf(err, "unknown CAM method %d", (int)method);
    }
}

/* m_c = sum_k w[c,k] A_k over the layer feeding gap; A [K, P], map [P]. */
static void cam_map(const th_model *m, int label, float *map, int p)
{
    const th_layer *feat = &m->layers[th_cam_feature_layer(m)], *fc = &m->layers[m->n_layers - 1];
    int k_count = feat->out_c;
    const float *a = feat->y;
    const float *w = m->params + fc->w_off + (size_t)label * fc->in_c;
    memset(map, 0, (size_t)p * sizeof *map);
    for (int k = 0; k < k_count; k++)
        for (int j = 0; j < p; j++) map[j] += w[k] * a[(size_t)k * p + j];
}

/* ReLU(sum_k alpha_k A_k), alpha_k = spatial mean of the gradient g [K, P]. */
static void gradcam_map(const th_layer *L, const float *g, float *map, int p)
{
    memset(map, 0, (size_t)p * sizeof *map);
    for (int k = 0; k < L->out_c; k++) {
        const float *gk = g + (size_t)k * p, *ak = L->y + (size_t)k * p;
        double sum = 0.0;
        for (int j = 0; j < p; j++) sum += gk[j];
        float alpha = (float)(sum / p);
        for (int j = 0; j < p; j++) map[j] += alpha * ak[j];
    }
    for (int j = 0; j < p; j++) map[j] = map[j] > 0.0f ? map[j] : 0.0f;
}

/* max over channels of |g|, g [C, P]. */
static void saliency_map(int c, const float *g, float *map, int p)
{
    for (int j = 0; j < p; j++) {
        float best = 0.0f;
        for (int ch = 0; ch < c; ch++) best = fmaxf(best, fabsf(g[(size_t)ch * p + j]));
        map[j] = best;
    }
}

static float label_prob(const float *z, int n_labels, int label, int softmax)
{
    if (!softmax) return 1.0f / (1.0f + expf(-z[label]));
    float zmax = z[0];
    for (int l = 1; l < n_labels; l++) zmax = fmaxf(zmax, z[l]);
    double sum = 0.0;
    for (int l = 0; l < n_labels; l++) sum += exp((double)(z[l] - zmax));
    return (float)(exp((double)(z[label] - zmax)) / sum);
}

int th_cam_compute(th_model *m, const float *x, int label, th_cam_method method, int layer, int softmax,
                   float *map_feat, int *fh, int *fw, float *map_img, float *prob, th_err *err)
{
    if (label < 0 || label >= m->n_labels)
        return th_errf(err, "CAM: label index %d out of range (the model has %d labels)", label, m->n_labels);
    if (th_cam_feature_shape(m, method, layer, fh, fw, err)) return -1;
    int p = *fh * *fw;
    const float *z = th_model_forward(m, x, 1, 0);
    if (prob) *prob = label_prob(z, m->n_labels, label, softmax);

    if (method == TH_CAM_CAM) {
        cam_map(m, label, map_feat, p);
    } else {
        /* The gradient of the logit z_c alone: a one-hot output gradient. */
        float *dz = calloc((size_t)m->n_labels, sizeof *dz);
        if (!dz) return th_errf(err, "CAM: out of memory");
        dz[label] = 1.0f;
        if (method == TH_CAM_GRADCAM) {
            const float *g = th_model_grad_at(m, x, dz, 1, layer);
            gradcam_map(&m->layers[layer], g, map_feat, p);
        } else {
            const float *g = th_model_grad_at(m, x, dz, 1, -1);
            saliency_map(m->spec.c, g, map_feat, p);
        }
        free(dz);
    }
    if (map_img) th_cam_upsample(map_feat, *fh, *fw, map_img, m->spec.h, m->spec.w);
    return 0;
}

/* Source coordinate of destination pixel i along one axis: the lower
 * neighbour, the upper one (the same at the border) and the weight of the
 * upper one. */
static void source_axis(int i, int src_len, int dst_len, int *lo, int *hi, float *frac)
{
    float s = ((float)i + 0.5f) * (float)src_len / (float)dst_len - 0.5f;
    if (s < 0.0f) s = 0.0f;
    int a = (int)s;
    if (a > src_len - 1) a = src_len - 1;
    *lo = a;
    *hi = a + 1 < src_len ? a + 1 : a;
    *frac = *hi > a ? s - (float)a : 0.0f;
}

void th_cam_upsample(const float *src, int sh, int sw, float *dst, int dh, int dw)
{
    for (int i = 0; i < dh; i++) {
        int y0, y1;
        float fy;
        source_axis(i, sh, dh, &y0, &y1, &fy);
        const float *r0 = src + (size_t)y0 * sw, *r1 = src + (size_t)y1 * sw;
        for (int j = 0; j < dw; j++) {
            int x0, x1;
            float fx;
            source_axis(j, sw, dw, &x0, &x1, &fx);
            float top = r0[x0] + fx * (r0[x1] - r0[x0]);
            float bottom = r1[x0] + fx * (r1[x1] - r1[x0]);
            dst[(size_t)i * dw + j] = top + fy * (bottom - top);
        }
    }
}

static size_t mask_count(const uint8_t *mask, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += mask[i] != 0;
    return c;
}

int th_cam_pointing_hit(const float *map, const uint8_t *mask, int h, int w)
{
    size_t n = (size_t)h * w;
    if (n == 0 || mask_count(mask, n) == 0) return -1;
    size_t best = 0;
    float lo = map[0];
    for (size_t i = 1; i < n; i++) {
        if (map[i] > map[best]) best = i;
        if (map[i] < lo) lo = map[i];
    }
    if (!(map[best] > lo)) return 0;
    return mask[best] != 0;
}

void th_cam_mask_dilate(const uint8_t *mask, int h, int w, int radius, uint8_t *out)
{
    int r = radius > 0 ? radius : 0;
    memset(out, 0, (size_t)h * w);
    /* Stamp a disc around every mask pixel: lesion masks are small, so this
     * costs (mask pixels) x r^2 rather than (all pixels) x r^2. */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            if (!mask[(size_t)y * w + x]) continue;
            int y0 = y - r > 0 ? y - r : 0, y1 = y + r < h - 1 ? y + r : h - 1;
            for (int yy = y0; yy <= y1; yy++) {
                int dy = yy - y;
                int x0 = x - r > 0 ? x - r : 0, x1 = x + r < w - 1 ? x + r : w - 1;
                for (int xx = x0; xx <= x1; xx++)
                    if ((xx - x) * (xx - x) + dy * dy <= r * r) out[(size_t)yy * w + xx] = 1;
            }
        }
}

double th_cam_mask_energy(const float *map, const uint8_t *mask, int h, int w)
{
    size_t n = (size_t)h * w;
    if (n == 0 || mask_count(mask, n) == 0) return -1.0;
    double total = 0.0, inside = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!(map[i] > 0.0f)) continue;
        total += map[i];
        if (mask[i]) inside += map[i];
    }
    return total > 0.0 ? inside / total : 0.0;
}

/* An unsigned key with the order of the floats, so a threshold can be found
 * by bisection over 32 bits, exactly and without sorting a copy. */
static uint32_t order_key(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

static size_t count_at_least(const float *map, size_t n, uint32_t key)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += order_key(map[i]) >= key;
    return c;
}

double th_cam_iou_at(const float *map, const uint8_t *mask, int h, int w, double quantile)
{
    size_t n = (size_t)h * w;
    if (n == 0 || !(quantile >= 0.0 && quantile < 1.0) || mask_count(mask, n) == 0) return -1.0;
    size_t k = (size_t)ceil((1.0 - quantile) * (double)n - 1e-9);
    if (k < 1) k = 1;
    /* The largest key t with at least k pixels at or above it. */
    uint64_t lo = 0, hi = (uint64_t)1 << 32;
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (count_at_least(map, n, (uint32_t)mid) >= k) lo = mid;
        else hi = mid;
    }
    size_t inter = 0, uni = 0;
    for (size_t i = 0; i < n; i++) {
        int in_map = order_key(map[i]) >= (uint32_t)lo, in_mask = mask[i] != 0;
        inter += in_map && in_mask;
        uni += in_map || in_mask;
    }
    return (double)inter / (double)uni;
}

int th_cam_png_name(char *buf, size_t size, const char *image_name, const char *label, th_cam_method method,
                    th_err *err)
{
    /* The stem: up to the last '.' of the last path component, if any. */
    const char *base = strrchr(image_name, '/');
    base = base ? base + 1 : image_name;
    const char *dot = strrchr(base, '.');
    int stem = (int)(dot && dot > base ? (size_t)(dot - image_name) : strlen(image_name));
    int len = snprintf(buf, size, "%.*s__%s__%s.png", stem, image_name, label, th_cam_method_name(method));
    if (len < 0 || (size_t)len >= size)
        return th_errf(err, "CAM file name for image '%s', label '%s' is too long", image_name, label);
    for (int i = 0; i < stem; i++)
        if (buf[i] == '/') buf[i] = '_';
    return 0;
}

/* ---- cam/maps.h5 ---------------------------------------------------------- */

static hid_t string_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

/* A dataset [rows, h, w] (rank 3) or [rows] (rank 1), chunked by row so
 * that writing one row touches one chunk. */
static hid_t create_rows(hid_t loc, const char *name, hid_t type, int rank, int rows, int h, int w)
{
    hsize_t dims[3] = {(hsize_t)rows, (hsize_t)h, (hsize_t)w};
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (rank == 3) {
        hsize_t chunk[3] = {1, (hsize_t)h, (hsize_t)w};
        H5Pset_chunk(dcpl, 3, chunk);
        /* Grad-CAM and saliency maps are mostly zero or smooth: cheap wins. */
        if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) {
            H5Pset_shuffle(dcpl);
            H5Pset_deflate(dcpl, 1);
        }
    }
    hid_t d = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(space);
    return d;
}

/* Writes row i of a dataset made by create_rows. */
static int write_row(hid_t d, hid_t mem_type, int rank, int i, int h, int w, const void *data)
{
    hsize_t start[3] = {(hsize_t)i, 0, 0}, count[3] = {1, (hsize_t)h, (hsize_t)w};
    hid_t fspace = H5Dget_space(d);
    hid_t mspace = H5Screate_simple(rank, count, NULL);
    herr_t rc = H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
    if (rc >= 0) rc = H5Dwrite(d, mem_type, mspace, fspace, H5P_DEFAULT, data);
    H5Sclose(mspace);
    H5Sclose(fspace);
    return rc < 0 ? -1 : 0;
}

static void close_ids(th_cam_writer *wr)
{
    for (int k = 0; k < TH_CAM_MAX_METHODS; k++) {
        if (wr->maps[k] >= 0) H5Dclose(wr->maps[k]);
        if (wr->feats[k] >= 0) H5Dclose(wr->feats[k]);
        wr->maps[k] = wr->feats[k] = -1;
    }
    int64_t *ids[] = {&wr->index, &wr->image_name, &wr->label, &wr->prob};
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        if (*ids[k] >= 0) H5Dclose(*ids[k]);
        *ids[k] = -1;
    }
}

void th_cam_writer_abort(th_cam_writer *wr)
{
    close_ids(wr);
    if (wr->file >= 0) H5Fclose(wr->file);
    wr->file = -1;
    if (wr->tmp_path[0]) unlink(wr->tmp_path);
    wr->tmp_path[0] = '\0';
    free(wr->done);
    wr->done = NULL;
}

int th_cam_writer_open(th_cam_writer *wr, const char *path, int m_rows, int h, int w, int n_methods,
                       const th_cam_method *methods, const int *fh, const int *fw, th_err *err)
{
    memset(wr, 0, sizeof *wr);
    wr->file = wr->index = wr->image_name = wr->label = wr->prob = -1;
    for (int k = 0; k < TH_CAM_MAX_METHODS; k++) wr->maps[k] = wr->feats[k] = -1;
    if (m_rows < 1 || h < 1 || w < 1) return th_errf(err, "%s: cannot write %d maps of %dx%d", path, m_rows, h, w);
    if (n_methods < 1 || n_methods > TH_CAM_MAX_METHODS)
        return th_errf(err, "%s: %d methods (1 to %d)", path, n_methods, TH_CAM_MAX_METHODS);
    for (int k = 0; k < n_methods; k++) {
        if (methods[k] < 0 || methods[k] >= TH_CAM_METHOD_COUNT)
            return th_errf(err, "%s: unknown CAM method %d", path, (int)methods[k]);
        if (fh[k] < 1 || fw[k] < 1)
            return th_errf(err, "%s: %s feature maps of %dx%d", path, th_cam_method_name(methods[k]), fh[k], fw[k]);
        for (int j = 0; j < k; j++)
            if (methods[j] == methods[k])
                return th_errf(err, "%s: method %s given twice", path, th_cam_method_name(methods[k]));
        wr->methods[k] = methods[k];
        wr->fh[k] = fh[k];
        wr->fw[k] = fw[k];
    }
    if (snprintf(wr->path, sizeof wr->path, "%s", path) >= (int)sizeof wr->path ||
        snprintf(wr->tmp_path, sizeof wr->tmp_path, "%s.tmp", path) >= (int)sizeof wr->tmp_path) {
        wr->tmp_path[0] = '\0';
        return th_errf(err, "CAM maps path too long: %s", path);
    }
    wr->m = m_rows;
    wr->h = h;
    wr->w = w;
    wr->n_methods = n_methods;
    wr->done = calloc((size_t)m_rows * n_methods, 1);
    if (!wr->done) {
        wr->tmp_path[0] = '\0';
        return th_errf(err, "%s: out of memory for %d rows", path, m_rows);
    }

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    wr->file = H5Fcreate(wr->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (wr->file < 0) {
        wr->tmp_path[0] = '\0';
        th_cam_writer_abort(wr);
        return th_errf(err, "cannot create %s.tmp (is the directory writable?)", path);
    }
    hid_t maps = H5Gcreate2(wr->file, "maps", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t feats = H5Gcreate2(wr->file, "maps_feature", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int ok = maps >= 0 && feats >= 0;
    for (int k = 0; k < n_methods && ok; k++) {
        const char *name = th_cam_method_name(methods[k]);
        wr->maps[k] = create_rows(maps, name, H5T_IEEE_F32LE, 3, m_rows, h, w);
        wr->feats[k] = create_rows(feats, name, H5T_IEEE_F32LE, 3, m_rows, fh[k], fw[k]);
        ok = wr->maps[k] >= 0 && wr->feats[k] >= 0;
    }
    if (maps >= 0) H5Gclose(maps);
    if (feats >= 0) H5Gclose(feats);
    hid_t str = string_type();
    if (ok) {
        wr->index = create_rows(wr->file, "index", H5T_STD_I64LE, 1, m_rows, 1, 1);
        wr->image_name = create_rows(wr->file, "image_name", str, 1, m_rows, 1, 1);
        wr->label = create_rows(wr->file, "label", str, 1, m_rows, 1, 1);
        wr->prob = create_rows(wr->file, "prob", H5T_IEEE_F32LE, 1, m_rows, 1, 1);
        ok = wr->index >= 0 && wr->image_name >= 0 && wr->label >= 0 && wr->prob >= 0;
    }
    H5Tclose(str);
    if (!ok) {
        th_cam_writer_abort(wr);
        return th_errf(err, "%s.tmp: cannot create the map datasets (disk full?)", path);
    }
    return 0;
}

int th_cam_writer_put(th_cam_writer *wr, int i, th_cam_method method, const float *map_img, const float *map_feat,
                      int64_t index, const char *image_name, const char *label, float prob, th_err *err)
{
    if (i < 0 || i >= wr->m) return th_errf(err, "%s: row %d out of range (%d rows)", wr->tmp_path, i, wr->m);
    int k = 0;
    while (k < wr->n_methods && wr->methods[k] != method) k++;
    if (k == wr->n_methods)
        return th_errf(err, "%s: method %s was not declared when the file was opened", wr->tmp_path,
                       th_cam_method_name(method));
    hid_t str = string_type();
    long long idx = index;
    int rc = write_row(wr->maps[k], H5T_NATIVE_FLOAT, 3, i, wr->h, wr->w, map_img);
    rc |= write_row(wr->feats[k], H5T_NATIVE_FLOAT, 3, i, wr->fh[k], wr->fw[k], map_feat);
    rc |= write_row(wr->index, H5T_NATIVE_LLONG, 1, i, 1, 1, &idx);
    rc |= write_row(wr->image_name, str, 1, i, 1, 1, &image_name);
    rc |= write_row(wr->label, str, 1, i, 1, 1, &label);
    rc |= write_row(wr->prob, H5T_NATIVE_FLOAT, 1, i, 1, 1, &prob);
    H5Tclose(str);
    if (rc) return th_errf(err, "%s: cannot write row %d (%s, %s) (disk full?)", wr->tmp_path, i, image_name, label);
    wr->done[(size_t)i * wr->n_methods + k] = 1;
    return 0;
}

int th_cam_writer_column(th_cam_writer *wr, const char *name, th_cam_column_type type, const void *values,
                         th_err *err)
{
    if (wr->file < 0) return th_errf(err, "%s: column %s written to a closed file", wr->path, name);
    hid_t file_type, mem_type, str = -1;
    switch (type) {
    case TH_CAM_COLUMN_INT8: file_type = H5T_STD_I8LE; mem_type = H5T_NATIVE_INT8; break;
    case TH_CAM_COLUMN_FLOAT32: file_type = H5T_IEEE_F32LE; mem_type = H5T_NATIVE_FLOAT; break;
    case TH_CAM_COLUMN_STRING: file_type = mem_type = str = string_type(); break;
    default: return th_errf(err, "%s: column %s has unknown type %d", wr->path, name, (int)type);
    }
    hid_t d = create_rows(wr->file, name, file_type, 1, wr->m, 1, 1);
    herr_t rc = d < 0 ? -1 : H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values);
    if (d >= 0) H5Dclose(d);
    if (str >= 0) H5Tclose(str);
    if (rc < 0) return th_errf(err, "%s: cannot write column /%s (a name taken, or disk full?)", wr->tmp_path, name);
    return 0;
}

int th_cam_writer_close(th_cam_writer *wr, th_err *err)
{
    for (int i = 0; i < wr->m; i++)
        for (int k = 0; k < wr->n_methods; k++) {
            if (wr->done[(size_t)i * wr->n_methods + k]) continue;
            th_errf(err, "%s: row %d has no %s map; the file is left out", wr->path, i,
                    th_cam_method_name(wr->methods[k]));
            th_cam_writer_abort(wr);
            return -1;
        }
    close_ids(wr);
    int rc = H5Fflush(wr->file, H5F_SCOPE_GLOBAL) < 0 ? -1 : 0;
    if (H5Fclose(wr->file) < 0) rc = -1;
    wr->file = -1;
    if (rc) {
        th_errf(err, "writing %s failed (disk full?)", wr->tmp_path);
        th_cam_writer_abort(wr);
        return -1;
    }
    if (rename(wr->tmp_path, wr->path)) {
        th_errf(err, "cannot rename %s to %s: %s", wr->tmp_path, wr->path, strerror(errno));
        th_cam_writer_abort(wr);
        return -1;
    }
    wr->tmp_path[0] = '\0';
    free(wr->done);
    wr->done = NULL;
    return 0;
}

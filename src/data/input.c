/* input.c - augmentation and normalisation of network inputs (see thorax/data.h). */
#include "thorax/data.h"

#include <math.h>
#include <stddef.h>

void th_input_init(th_input *in, const th_input_params *p, int h, int w, float mean, float std)
{
    const th_augment_params *a = &p->augment;
    *in = (th_input){
        .h = h,
        .w = w,
        .normalize = p->normalize,
        .mean = mean,
        .std = std,
        .seed = p->seed,
        .augment = *a,
    };
    in->augment_on = a->hflip || a->rotate_deg > 0 || a->shift > 0 || a->scale_lo != 1 || a->scale_hi != 1 ||
                     a->brightness > 0 || a->contrast > 0;
}

/* Normalises one image of pixel values in [0, 255] in place. */
static void normalize(const th_input *in, float *v)
{
    int hw = in->h * in->w;
    switch (in->normalize) {
    case TH_INPUT_NORM_TRAINSET: {
        float mean = 255.0f * in->mean, inv = 1.0f / (255.0f * in->std);
        for (int p = 0; p < hw; p++) v[p] = (v[p] - mean) * inv;
        break;
    }
    case TH_INPUT_NORM_PER_IMAGE: {
        double sum = 0, sum2 = 0;
        for (int p = 0; p < hw; p++) {
            sum += v[p];
            sum2 += (double)v[p] * v[p];
        }
        double m = sum / hw, var = sum2 / hw - m * m;
        float istd = (float)(1.0 / sqrt(var > 1e-6 ? var : 1e-6));
        for (int p = 0; p < hw; p++) v[p] = (v[p] - (float)m) * istd;
        break;
    }
    case TH_INPUT_NORM_NONE:
        for (int p = 0; p < hw; p++) v[p] *= 1.0f / 255.0f;
        break;
    }
}

void th_input_make(const th_input *in, const uint8_t *img, const int *rows, const int *dataset_row, int n, int epoch,
                   float *x)
{
    int hw = in->h * in->w;
    for (int j = 0; j < n; j++) {
        int k = rows ? rows[j] : j;
        const uint8_t *src = img + (size_t)k * hw;
        float *dst = x + (size_t)j * hw;
        if (epoch >= 0 && in->augment_on) {
            th_augment t;
            th_augment_draw(&in->augment, in->seed, epoch, dataset_row[k], &t);
            th_augment_apply(&t, src, in->h, in->w, dst);
        } else {
            for (int p = 0; p < hw; p++) dst[p] = src[p];
        }
        normalize(in, dst);
    }
}

/* phantom.c - synthetic frontal chest radiographs with known findings and
 * lesion masks: the built-in demo dataset (see thorax/data.h).
 *
 * The picture is built as a "density" map (0 air .. ~1 bone over soft
 * tissue) in anatomy coordinates (u to the image right, v down, in units of
 * the image side, origin at the centre), then tone-mapped to 8 bits. Every
 * structure is an analytic shape evaluated per pixel through the inverse of
 * the study's pose, except the vascular tree, whose segments are mapped
 * forward and rasterised. The patient's right is the image left, as on a PA
 * film: the heart bulges to the image right.
 *
 * Randomness comes from explicit generators seeded by (seed, patient) for
 * the anatomy and (seed, patient, study) for the study, so a study is a pure
 * function of (opts, patient, study), and a patient's studies share their
 * anatomy. Every per-study number is drawn whether or not it is used, so
 * that switching the marker or a finding on changes only that.
 */
#include "thorax/data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thorax/util.h"

const char *const th_phantom_labels[TH_PHANTOM_N_LABELS] = {"Pneumothorax", "Cardiomegaly", "Effusion", "Nodule"};

enum { F_PTX, F_CARDIO, F_EFFUSION, F_NODULE };

/* Independent random streams per purpose; the low bits carry the patient
 * (and study) so that no two (patient, study) pairs share a stream. */
#define STREAM_PATIENT (1ULL << 60)
#define STREAM_VESSELS (2ULL << 60)
#define STREAM_STUDY (3ULL << 60)
#define STREAM_NODULE (4ULL << 60)
#define STREAM_NOISE (5ULL << 60)
#define STUDY_BITS 16

#define MAX_SIZE 1024
#define MIN_SIZE 16
#define MAX_STUDIES 1000
#define MAX_IMAGES (1 << 28)
#define MAX_SEGMENTS 2048
#define N_RIBS 10
#define LUT_SIZE 1024
#define DENS_LO (-0.25)
#define DENS_HI 1.75
#define KNEE 0.62

static const double PI = 3.14159265358979323846;

/* ------------------------------------------------------------------------
 * Geometry.
 */

/* One lung, in its own lateral coordinate q = side * u (growing away from
 * the midline): a rounded apex, a lateral wall, a straight medial border and
 * a diaphragm dome below, v = dome_top + dome_k * ((q - dome_q) / width)^2. */
typedef struct {
    double side;          /* -1 image left (patient's right), +1 image right */
    double q_in, width;   /* medial border and lung width */
    double top, height;   /* apex level and apex-to-costophrenic-angle height */
    double dome_top, dome_q, dome_k;
    double hilum_v;
    /* Bulges of the mediastinal contour into this lung (amplitude, level):
     * on the left the aortic knob and the pulmonary trunk. */
    double knob, knob_v, trunk, trunk_v;
} lung_shape;

typedef struct {
    double u0, v0, u1, v1, r, dens;
} vessel;

typedef struct {
    int studies;
    double body_hw, waist_hw, neck_hw, shoulder_v, shoulder_drop;
    lung_shape lung[2];
    double thorax_hw;                    /* half the inner thoracic width at the bases */
    double ctr, heart_b, heart_tilt, heart_shift; /* this patient's normal cardiothoracic ratio */
    double soft, air, bone;              /* densities of soft tissue, lung air, bone */
    double rib_top, rib_spacing, rib_curve, rib_tilt, rib_wobble, arib_top;
    double clav_v, spine_hw;
    double breast, bubble;               /* breast shadows and gastric bubble strength */
    int n_vessels;
    vessel vessels[MAX_SEGMENTS];
} anatomy;

typedef struct {
    double cu, cv, cos_a, sin_a, scale;  /* pose: image = centre + scale * R(angle) anatomy */
    double gain, offset, gamma, noise, breath;
    uint8_t label[TH_PHANTOM_N_LABELS];
    int ptx_side;
    double ptx_collapse;
    int eff_side;
    double eff_height, eff_rise;
    double ctr;
    double nod_u, nod_v, nod_r;
    int marker, marker_right;
    uint64_t noise_stream;
} study;

static inline double sq(double x) { return x * x; }
static inline double clamp01(double x) { return x < 0 ? 0 : x > 1 ? 1 : x; }

static inline double vlen(double x, double y) { return sqrt(x * x + y * y); }

/* floor() for the per-pixel loop: a truncating conversion, corrected for
 * negative numbers, is much cheaper than the libm call without SSE4.1. */
static inline double fast_floor(double x)
{
    double i = (double)(long long)x;
    return i > x ? i - 1 : i;
}

/* A smooth periodic wave through the values of cos(2 pi turns) at every
 * quarter turn: plenty for rib wobble and vertebrae, and far cheaper than
 * cos in the per-pixel loop. */
static inline double wave(double turns)
{
    double f = turns - fast_floor(turns);
    double t = 1 - fabs(2 * f - 1);
    return 1 - 2 * t * t * (3 - 2 * t);
}

/* A bump of height 1 at x = 0 falling to 0 at |x| >= 1. */
static inline double bump(double x) { return x <= -1 || x >= 1 ? 0 : sq(1 - x * x); }

/* 0 for x <= -1, 1 for x >= 1, smooth between: membership from a signed
 * distance divided by the half-width of the edge. */
static inline double smooth(double x)
{
    if (x <= -1) return 0;
    if (x >= 1) return 1;
    double t = 0.5 * (x + 1);
    return t * t * (3 - 2 * t);
}

static double lung_dome(const lung_shape *L, double q)
{
    return L->dome_top + L->dome_k * sq((q - L->dome_q) / L->width);
}

/* Signed pseudo-distance to the lung outline, positive inside. Horizontal
 * distances to the medial and lateral borders, vertical to the dome. The
 * borders meet at the apex with vertical tangents, which rounds it. */
static double lung_dist(const lung_shape *L, double u, double v)
{
    double q = L->side * u;
    double t = (v - L->top) / L->height;
    double q_apex = L->q_in + 0.32 * L->width;
    if (t <= 0) return -vlen(q - q_apex, v - L->top);
    /* The lateral wall keeps widening toward the costophrenic angle. */
    double out = t < 0.62 ? 0.32 + 0.68 * sqrt(1 - sq(1 - t / 0.62)) : 1.0 + 0.12 * (t - 0.62);
    double in = t < 0.22 ? 0.32 - 0.32 * sqrt(1 - sq(1 - t / 0.22)) : 0.0;
    double bulge = L->knob * bump((v - L->knob_v) / 0.04) + L->trunk * bump((v - L->trunk_v) / 0.035);
    double d_in = q - (L->q_in + L->width * in + bulge);
    double d_out = L->q_in + L->width * out - q;
    double d_dome = lung_dome(L, q) - v;
    double d = d_in < d_out ? d_in : d_out;
    return d < d_dome ? d : d_dome;
}

/* The lung collapsed toward a point low and medial: a pneumothorax leaves
 * gas between this outline and the chest wall, widest at the apex. */
static double collapsed_dist(const lung_shape *L, double collapse, double u, double v)
{
    double qa = L->q_in + 0.2 * L->width, va = L->dome_top;
    double fx = 1 + 0.55 * (collapse - 1), fy = collapse;
    double q = qa + (L->side * u - qa) * fx, w = va + (v - va) * fy;
    return lung_dist(L, L->side * q, w) / fy;
}

/* The heart: an ellipse whose long axis runs from the base (up, near the
 * midline) down to the apex (image right), sized so that its horizontal
 * extent is ctr times the thoracic width, and resting on the diaphragm. */
typedef struct {
    double u, v, a, b, c, s; /* centre, semi-axes, cos and sin of the tilt */
} heart_shape;

static heart_shape heart_geometry(const anatomy *A, double ctr)
{
    heart_shape H;
    double width = ctr * 2 * A->thorax_hw;
    double dome = 0.5 * (A->lung[0].dome_top + A->lung[1].dome_top);
    H.c = cos(A->heart_tilt);
    H.s = sin(A->heart_tilt);
    /* An enlarged heart grows in height too, not just in width. */
    H.b = A->heart_b * pow(ctr / A->ctr, 0.8);
    double a2 = (0.25 * width * width - sq(H.b * H.s)) / sq(H.c);
    H.a = sqrt(a2 > sq(H.b) ? a2 : sq(H.b));
    H.u = 0.2 * width + A->heart_shift;
    H.v = dome + 0.05 - sqrt(sq(H.a * H.s) + sq(H.b * H.c));
    return H;
}

/* Signed pseudo-distance to the heart outline, positive inside. */
static double heart_dist(const heart_shape *H, double u, double v)
{
    double x = u - H->u, y = v - H->v;
    double along = H->c * x + H->s * y, across = -H->s * x + H->c * y;
    return (1 - sqrt(sq(along / H->a) + sq(across / H->b))) * H->b;
}

/* ------------------------------------------------------------------------
 * Per-patient anatomy.
 */

static void rng_patient(th_rng *r, const th_phantom_opts *o, int patient, uint64_t stream)
{
    th_rng_seed(r, o->seed, stream | (uint64_t)(uint32_t)patient);
}

static int draw_studies(const th_phantom_opts *o, th_rng *r)
{
    return o->studies_min + (int)th_rng_below(r, (uint32_t)(o->studies_max - o->studies_min + 1));
}

/* Grows one branch of the vascular tree: each vessel forks in two, thinner,
 * fainter and shorter, until it leaves the lung or gets too fine to see. */
static void grow_vessel(anatomy *A, th_rng *r, const lung_shape *L, double u, double v, double angle, double len,
                        double rad, double dens, int depth)
{
    if (depth > 4) return;
    /* Two slightly bent pieces per branch: real vessels are not spokes. */
    for (int piece = 0; piece < 2; piece++) {
        if (A->n_vessels >= MAX_SEGMENTS) return;
        angle += th_rng_range(r, -0.2, 0.2);
        double u1 = u + 0.5 * len * cos(angle), v1 = v + 0.5 * len * sin(angle);
        A->vessels[A->n_vessels++] = (vessel){u, v, u1, v1, rad, dens};
        u = u1;
        v = v1;
    }
    if (lung_dist(L, u, v) < 0.015) return;
    double spread = th_rng_range(r, 0.25, 0.5);
    double tilt = th_rng_range(r, -0.12, 0.12);
    for (int k = -1; k <= 1; k += 2)
        grow_vessel(A, r, L, u, v, angle + tilt + k * spread * th_rng_range(r, 0.7, 1.3),
                    len * th_rng_range(r, 0.72, 0.88), rad * 0.74, dens * 0.84, depth + 1);
}

static void grow_vessels(anatomy *A, th_rng *r)
{
    /* Directions from the hilum, measured from the lateral axis: up to the
     * apex, out to the wall, down to the base. */
    static const double fan[] = {-1.4, -0.95, -0.5, -0.05, 0.4, 0.85, 1.25};
    A->n_vessels = 0;
    for (int s = 0; s < 2; s++) {
        const lung_shape *L = &A->lung[s];
        double hu = L->side * (L->q_in + 0.035 * L->width / 0.3), hv = L->hilum_v;
        for (size_t k = 0; k < sizeof fan / sizeof fan[0]; k++) {
            double a = fan[k] + th_rng_range(r, -0.15, 0.15);
            double angle = L->side > 0 ? a : PI - a;
            grow_vessel(A, r, L, hu, hv, angle, th_rng_range(r, 0.06, 0.085), 0.006, th_rng_range(r, 0.13, 0.17), 0);
        }
    }
}

static void make_anatomy(const th_phantom_opts *o, int patient, anatomy *A)
{
    th_rng r;
    rng_patient(&r, o, patient, STREAM_PATIENT);
    A->studies = draw_studies(o, &r);

    A->body_hw = th_rng_range(&r, 0.47, 0.53);
    A->waist_hw = A->body_hw - th_rng_range(&r, 0.02, 0.05);
    A->neck_hw = th_rng_range(&r, 0.085, 0.11);
    A->shoulder_v = th_rng_range(&r, -0.45, -0.39);
    A->shoulder_drop = th_rng_range(&r, 0.1, 0.16);

    double q_in = th_rng_range(&r, 0.045, 0.06);
    double width = th_rng_range(&r, 0.27, 0.32);
    double top = th_rng_range(&r, -0.37, -0.32);
    double dome = th_rng_range(&r, 0.16, 0.23);
    double dome_k = th_rng_range(&r, 0.12, 0.18);
    for (int s = 0; s < 2; s++) {
        lung_shape *L = &A->lung[s];
        L->side = s == 0 ? -1 : 1;
        L->q_in = q_in * th_rng_range(&r, 0.92, 1.08);
        L->width = width * th_rng_range(&r, 0.96, 1.04);
        L->top = top + th_rng_range(&r, -0.01, 0.01);
        /* The left hemidiaphragm sits a little lower than the right. */
        L->dome_top = dome + (s == 1 ? th_rng_range(&r, 0.01, 0.03) : 0);
        L->dome_q = L->q_in + th_rng_range(&r, 0.38, 0.5) * L->width;
        L->dome_k = dome_k;
        L->height = lung_dome(L, L->q_in + 1.05 * L->width) - L->top;
        L->hilum_v = s == 0 ? th_rng_range(&r, -0.03, 0.0) : th_rng_range(&r, -0.05, -0.02);
        L->knob = s == 1 ? th_rng_range(&r, 0.02, 0.035) : 0;
        L->knob_v = th_rng_range(&r, -0.15, -0.11);
        L->trunk = s == 1 ? th_rng_range(&r, 0.012, 0.022) : th_rng_range(&r, 0.005, 0.012);
        L->trunk_v = L->hilum_v + th_rng_range(&r, -0.02, 0.0);
    }
    A->thorax_hw = 0.5 * (A->lung[0].q_in + A->lung[0].width + A->lung[1].q_in + A->lung[1].width);
    A->ctr = th_rng_range(&r, 0.40, 0.50);
    A->heart_b = th_rng_range(&r, 0.1, 0.12);
    A->heart_tilt = th_rng_range(&r, 0.3, 0.45);
    A->heart_shift = th_rng_range(&r, -0.01, 0.01);

    A->soft = th_rng_range(&r, 0.78, 0.84);
    A->air = th_rng_range(&r, 0.48, 0.55);
    A->bone = th_rng_range(&r, 0.09, 0.12);

    A->rib_spacing = th_rng_range(&r, 0.05, 0.058);
    A->rib_top = top - 0.02 + th_rng_range(&r, 0, 1) * A->rib_spacing;
    A->rib_curve = th_rng_range(&r, 1.2, 1.6);
    A->rib_tilt = th_rng_range(&r, 0.08, 0.18);
    A->rib_wobble = th_rng_uniform(&r);
    A->arib_top = top + th_rng_range(&r, 0, 1) * A->rib_spacing;
    A->clav_v = top + th_rng_range(&r, 0.06, 0.09);
    A->spine_hw = th_rng_range(&r, 0.03, 0.038);
    A->breast = th_rng_uniform(&r) < 0.5 ? th_rng_range(&r, 0.02, 0.06) : 0;
    A->bubble = th_rng_uniform(&r) < 0.7 ? th_rng_range(&r, 0.08, 0.2) : 0;

    th_rng rv;
    rng_patient(&rv, o, patient, STREAM_VESSELS);
    grow_vessels(A, &rv);
}

/* ------------------------------------------------------------------------
 * Per-study pose, exposure and findings.
 */

/* A nodule centre inside lung tissue, away from the heart and the edges. */
static void place_nodule(const anatomy *A, const study *st, th_rng *r, double *nu, double *nv)
{
    heart_shape H = heart_geometry(A, st->ctr);
    for (int attempt = 0; attempt < 64; attempt++) {
        const lung_shape *L = &A->lung[th_rng_below(r, 2)];
        double v = L->top + L->height * th_rng_range(r, 0.15, 0.8);
        double u = L->side * (L->q_in + L->width * th_rng_range(r, 0.2, 0.85));
        if (heart_dist(&H, u, v) < -0.03 && lung_dist(L, u, v) > 0.05) {
            *nu = u;
            *nv = v;
            return;
        }
    }
    *nu = A->lung[0].side * (A->lung[0].q_in + 0.55 * A->lung[0].width);
    *nv = A->lung[0].top + 0.4 * A->lung[0].height;
}

static void make_study(const th_phantom_opts *o, const anatomy *A, int patient, int study_no, study *st)
{
    th_rng r;
    th_rng_seed(&r, o->seed, STREAM_STUDY | ((uint64_t)(uint32_t)patient << STUDY_BITS) | (uint64_t)(uint32_t)study_no);
    double angle = th_rng_range(&r, -0.07, 0.07);
    st->cos_a = cos(angle);
    st->sin_a = sin(angle);
    st->scale = th_rng_range(&r, 0.93, 1.04);
    st->cu = th_rng_range(&r, -0.03, 0.03);
    st->cv = th_rng_range(&r, -0.03, 0.03);
    st->gain = th_rng_range(&r, 0.92, 1.1);
    st->offset = th_rng_range(&r, -0.05, 0.03);
    st->gamma = th_rng_range(&r, 0.85, 1.2);
    st->noise = th_rng_range(&r, 0.008, 0.022);
    st->breath = th_rng_range(&r, -0.015, 0.015);

    for (int k = 0; k < TH_PHANTOM_N_LABELS; k++) st->label[k] = th_rng_uniform(&r) < o->prevalence;
    st->ptx_side = (int)th_rng_below(&r, 2);
    st->ptx_collapse = th_rng_range(&r, 1.12, 1.4);
    st->eff_side = (int)th_rng_below(&r, 2);
    st->eff_height = th_rng_range(&r, 0.12, 0.24);
    st->eff_rise = th_rng_range(&r, 0.1, 0.18);
    double big_ctr = th_rng_range(&r, 0.56, 0.66);
    st->ctr = st->label[F_CARDIO] ? big_ctr : A->ctr;
    st->nod_r = th_rng_range(&r, 0.025, 0.04);

    double marker_draw = th_rng_uniform(&r);
    st->marker_right = th_rng_below(&r, 2);
    st->marker = 0;
    if (o->marker_label >= 0 && o->marker_label < TH_PHANTOM_N_LABELS)
        st->marker = st->label[o->marker_label] ? marker_draw < o->marker_rate : marker_draw < 0.05;

    /* Rejection sampling draws a variable count: its own stream keeps the
     * numbers above fixed. */
    uint64_t id = ((uint64_t)(uint32_t)patient << STUDY_BITS) | (uint64_t)(uint32_t)study_no;
    th_rng rn;
    th_rng_seed(&rn, o->seed, STREAM_NODULE | id);
    place_nodule(A, st, &rn, &st->nod_u, &st->nod_v);
    st->noise_stream = STREAM_NOISE | id;
}

/* ------------------------------------------------------------------------
 * Rendering.
 */

/* Posterior ribs: bright bands that leave the spine nearly level and curve
 * down toward the lateral chest wall, with brighter cortical edges; the
 * fainter anterior ribs run the other way, down toward the midline. */
static double ribs(const anatomy *A, double q, double v, double px)
{
    double d = 0;
    if (q > A->spine_hw * 0.7 && q < A->thorax_hw + 0.05) {
        double z = v - A->rib_top - A->rib_curve * q * q + A->rib_tilt * q;
        if (z > -0.03) {
            /* Spacing widens toward the bases. */
            double phase = (z - 0.25 * z * z) / A->rib_spacing;
            phase += 0.07 * wave(0.37 * phase + A->rib_wobble);
            int k = (int)fast_floor(phase);
            if (k >= -1 && k < N_RIBS) {
                /* Rib k, and the upper edge of rib k + 1 blurring into this period. */
                double f = phase - k, w = 0.46, e = px / A->rib_spacing, m = 0;
                if (k >= 0) m += smooth(f / e) * smooth((w - f) / e);
                if (k + 1 < N_RIBS) m += smooth((f - 1) / e) * smooth((w - f + 1) / e);
                double cortex = sq(2 * clamp01(f / w) - 1);
                double fade = smooth((q - A->spine_hw) / 0.02) * smooth((A->thorax_hw + 0.04 - q) / 0.03);
                d += A->bone * m * (0.55 + 0.45 * cortex) * fade;
            }
        }
    }
    if (q > 0.12 && q < A->thorax_hw + 0.02) {
        double z = v - A->arib_top + 0.55 * (q - A->thorax_hw);
        double phase = z / (A->rib_spacing * 1.25);
        int k = (int)fast_floor(phase);
        if (k >= 0 && k < 6) {
            double f = phase - k, w = 0.32, e = px / (A->rib_spacing * 1.25);
            double m = smooth(f / e) * smooth((w - f) / e);
            d += 0.35 * A->bone * m * smooth((q - 0.14) / 0.03);
        }
    }
    return d;
}

/* Clavicle: a bony bar from the sternal notch up and out to the shoulder. */
static double clavicle(const anatomy *A, double q, double v, double px)
{
    if (q < 0.02 || q > 0.36 || fabs(v - A->clav_v) > 0.06) return 0;
    double t = (q - 0.03) / 0.3;
    double centre = A->clav_v - 0.06 * t * t + 0.012 * wave(t - 0.25);
    double half = 0.013 + 0.006 * (1 - t);
    double dv = fabs(v - centre);
    double m = smooth((half - dv) / px) * smooth((q - 0.035) / 0.01) * smooth((0.35 - q) / 0.01);
    double cortex = sq(clamp01(dv / half));
    return 1.5 * A->bone * m * (0.65 + 0.35 * cortex);
}

/* The chest is barrel-shaped: widest a little below the armpits. */
static double body_half_width(const anatomy *A, double v)
{
    return A->body_hw + (A->waist_hw - A->body_hw) * clamp01(v / 0.5) - 0.12 * sq(v + 0.1);
}

static double body_dist(const anatomy *A, double u, double v)
{
    double au = fabs(u);
    double hw = body_half_width(A, v);
    double s = clamp01((au - A->neck_hw) / (hw - A->neck_hw));
    double d_top = v - (A->shoulder_v + A->shoulder_drop * s * sqrt(s));
    double d_neck = A->neck_hw - au;
    double upper = d_top > d_neck ? d_top : d_neck;
    double side = hw - au;
    return side < upper ? side : upper;
}

static void draw_vessel(float *canvas, int S, double x0, double y0, double x1, double y1, double r, double dens)
{
    /* Vessels thinner than a pixel are spread over one, with their
     * brightness scaled down to keep what they would add. */
    double rr = r < 0.6 ? 0.6 : r, k = dens * r / rr;
    if (k < 0.01) return; /* below the noise */
    int xa = (int)floor(fmin(x0, x1) - rr - 1), xb = (int)ceil(fmax(x0, x1) + rr + 1);
    int ya = (int)floor(fmin(y0, y1) - rr - 1), yb = (int)ceil(fmax(y0, y1) + rr + 1);
    if (xa < 0) xa = 0;
    if (ya < 0) ya = 0;
    if (xb > S) xb = S;
    if (yb > S) yb = S;
    double dx = x1 - x0, dy = y1 - y0, l2 = dx * dx + dy * dy;
    for (int y = ya; y < yb; y++)
        for (int x = xa; x < xb; x++) {
            double cx = x + 0.5 - x0, cy = y + 0.5 - y0;
            double t = l2 > 0 ? clamp01((cx * dx + cy * dy) / l2) : 0;
            double d = vlen(cx - t * dx, cy - t * dy);
            double val = k * clamp01(rr + 0.5 - d);
            if (val > canvas[(size_t)y * S + x]) canvas[(size_t)y * S + x] = (float)val;
        }
}

/* A 5x7 "R" for the shortcut marker, one row per byte, bit 4 leftmost. */
static const uint8_t GLYPH_R[7] = {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11};

static void draw_marker(float *D, int S, int right)
{
    int m = (int)lround(0.08 * S);
    if (m < 3) m = 3;
    int margin = (int)lround(0.04 * S);
    int x0 = right ? S - margin - m : margin, y0 = margin;
    for (int y = 0; y < m; y++)
        for (int x = 0; x < m; x++) {
            int gx = (x * 7 / m) - 1, gy = y * 9 / m - 1;
            int ink = m >= 7 && gx >= 0 && gx < 5 && gy >= 0 && gy < 7 && (GLYPH_R[gy] >> (4 - gx)) & 1;
            D[(size_t)(y0 + y) * S + x0 + x] = ink ? 0.3f : 1.05f;
        }
}

/* [1 2 1] / 4 in both directions, `passes` times; tmp is scratch [S*S]. */
static void blur(float *D, float *tmp, int S, int passes)
{
    for (int p = 0; p < passes; p++) {
        for (int y = 0; y < S; y++) {
            const float *row = D + (size_t)y * S;
            float *out = tmp + (size_t)y * S;
            for (int x = 0; x < S; x++) {
                float l = row[x > 0 ? x - 1 : x], r = row[x < S - 1 ? x + 1 : x];
                out[x] = 0.25f * (l + 2 * row[x] + r);
            }
        }
        for (int y = 0; y < S; y++) {
            const float *up = tmp + (size_t)(y > 0 ? y - 1 : y) * S, *mid = tmp + (size_t)y * S;
            const float *down = tmp + (size_t)(y < S - 1 ? y + 1 : y) * S;
            float *out = D + (size_t)y * S;
            for (int x = 0; x < S; x++) out[x] = 0.25f * (up[x] + 2 * mid[x] + down[x]);
        }
    }
}

/* Roughly standard normal from one 64-bit draw: the sum of four 16-bit
 * uniforms, rescaled. Plenty for image noise and much cheaper than logs. */
static inline float fast_normal(th_rng *r)
{
    uint64_t x = th_rng_u64(r);
    double s = (double)(x & 0xffff) + (double)((x >> 16) & 0xffff) + (double)((x >> 32) & 0xffff) + (double)(x >> 48);
    return (float)((s / 65535.0 - 2.0) * 1.7320508075688772);
}

void th_phantom_defaults(th_phantom_opts *o)
{
    o->patients = 400;
    o->size = 128;
    o->seed = 1;
    o->studies_min = 1;
    o->studies_max = 4;
    o->prevalence = 0.15f;
    o->marker_label = -1;
    o->marker_rate = 0.9f;
}

static int opts_valid(const th_phantom_opts *o, th_err *err)
{
    if (o->patients < 1 || o->patients > 10000000)
        return th_errf(err, "phantom: patients must be in [1, 10000000], not %d", o->patients);
    if (o->size < MIN_SIZE || o->size > MAX_SIZE)
        return th_errf(err, "phantom: size must be in [%d, %d], not %d", MIN_SIZE, MAX_SIZE, o->size);
    if (o->studies_min < 1 || o->studies_max < o->studies_min || o->studies_max > MAX_STUDIES)
        return th_errf(err, "phantom: studies per patient %d-%d must satisfy 1 <= min <= max <= %d", o->studies_min,
                       o->studies_max, MAX_STUDIES);
    if ((long long)o->patients * o->studies_max > MAX_IMAGES)
        return th_errf(err, "phantom: %d patients with up to %d studies is too many images", o->patients,
                       o->studies_max);
    if (!(o->prevalence >= 0 && o->prevalence <= 1))
        return th_errf(err, "phantom: prevalence must be in [0, 1], not %g", o->prevalence);
    if (o->marker_label < -1 || o->marker_label >= TH_PHANTOM_N_LABELS)
        return th_errf(err, "phantom: marker label %d is not -1 (none) or a label index 0-%d", o->marker_label,
                       TH_PHANTOM_N_LABELS - 1);
    if (!(o->marker_rate >= 0 && o->marker_rate <= 1))
        return th_errf(err, "phantom: marker rate must be in [0, 1], not %g", o->marker_rate);
    return 0;
}

/* Returns -1 when the options are invalid (th_phantom_write says why). */
int th_phantom_count(const th_phantom_opts *o)
{
    if (opts_valid(o, NULL)) return -1;
    int total = 0;
    for (int p = 0; p < o->patients; p++) {
        th_rng r;
        rng_patient(&r, o, p, STREAM_PATIENT);
        total += draw_studies(o, &r);
    }
    return total;
}

/* The whole picture of one study into img (and masks when not NULL).
 * Returns -1, leaving the outputs untouched, when the two float canvases
 * cannot be allocated. */
static int render(const th_phantom_opts *o, const anatomy *A, const study *st, uint8_t *img, uint8_t *masks)
{
    const int S = o->size;
    const size_t npix = (size_t)S * S;
    float *D = malloc(npix * sizeof *D), *V = calloc(npix, sizeof *V);
    if (!D || !V) {
        free(D);
        free(V);
        return -1;
    }

    /* Vessels: mapped forward to pixels (pose is a similarity) and drawn. */
    for (int i = 0; i < A->n_vessels; i++) {
        const vessel *s = &A->vessels[i];
        double x0 = S * (0.5 + st->cu + st->scale * (st->cos_a * s->u0 - st->sin_a * s->v0));
        double y0 = S * (0.5 + st->cv + st->scale * (st->sin_a * s->u0 + st->cos_a * s->v0));
        double x1 = S * (0.5 + st->cu + st->scale * (st->cos_a * s->u1 - st->sin_a * s->v1));
        double y1 = S * (0.5 + st->cv + st->scale * (st->sin_a * s->u1 + st->cos_a * s->v1));
        draw_vessel(V, S, x0, y0, x1, y1, s->r * S * st->scale, s->dens);
    }

    lung_shape lungs[2] = {A->lung[0], A->lung[1]};
    for (int s = 0; s < 2; s++) {
        lungs[s].dome_top += st->breath;
        lungs[s].height += st->breath;
    }
    heart_shape H = heart_geometry(A, st->ctr);
    H.v += st->breath;
    const double px = 1.0 / (S * st->scale); /* one pixel in anatomy units */
    const double e = 0.8 * px;
    const int ptx = st->label[F_PTX], eff = st->label[F_EFFUSION], nod = st->label[F_NODULE];
    const lung_shape *ptx_lung = &lungs[st->ptx_side], *eff_lung = &lungs[st->eff_side];
    /* Fluid surface: level medially, climbing the lateral wall (meniscus). */
    double eff_level = lung_dome(eff_lung, eff_lung->q_in + eff_lung->width) - st->eff_height + st->eff_rise;
    double nod_edge = fmax(e, 0.3 * st->nod_r);
    /* At least the pixel under the centre, so tiny images keep a mask. */
    double nod_mask_r = fmax(st->nod_r, 0.71 * px);
    /* Where each finding is strongest: a finding thinner than the pixel
     * grid still marks that one pixel, so a positive label always has a
     * non-empty mask, even at 16 pixels. */
    double best[TH_PHANTOM_N_LABELS] = {0};
    size_t best_at[TH_PHANTOM_N_LABELS] = {0};
    if (masks) memset(masks, 0, TH_PHANTOM_N_LABELS * npix);

    for (int y = 0; y < S; y++) {
        double Y = (y + 0.5) / S - 0.5 - st->cv;
        for (int x = 0; x < S; x++) {
            size_t i = (size_t)y * S + x;
            double X = (x + 0.5) / S - 0.5 - st->cu;
            double u = (st->cos_a * X + st->sin_a * Y) / st->scale;
            double v = (-st->sin_a * X + st->cos_a * Y) / st->scale;
            double q = fabs(u);

            /* Soft tissue, thicker toward the midline like a cylinder. */
            double body = smooth(body_dist(A, u, v) / (2.5 * px));
            if (body <= 0) { /* air around the patient: nothing else to draw */
                D[i] = 0;
                continue;
            }
            double neck = smooth((A->shoulder_v + 0.01 - v) / 0.03);
            double hw = (1 - neck) * body_half_width(A, v) + neck * 1.15 * A->neck_hw;
            double thick = sqrt(fmax(0, 1 - sq(u / hw)));
            double d = A->soft * body * (0.1 + 0.9 * thick * sqrt(thick));

            /* Heart, above the diaphragm only (below it merges with the abdomen). */
            const lung_shape *L = &lungs[u < 0 ? 0 : 1];
            double heart = smooth(heart_dist(&H, u, v) / e) * smooth((lung_dome(L, L->side * u) + 0.01 - v) / e);

            /* Lung of this side: air, less where the heart or fluid take
             * its place; a pneumothorax adds gas and a pleural line. */
            double ld = lung_dist(L, u, v);
            double lung = smooth(ld / e);
            double tissue = lung * (1 - heart);
            double fluid = 0, gas = 0, pleura = 0, collapsed = 0;
            if (eff && L == eff_lung && lung > 0) {
                double qn = clamp01((q - L->q_in) / L->width);
                /* Fluid layers: densest low, fading into a hazy meniscus. */
                fluid = lung * smooth((v - (eff_level - st->eff_rise * qn * qn * qn)) / fmax(2.5 * e, 0.025));
                tissue *= 1 - fluid;
            }
            if (ptx && L == ptx_lung && lung > 0) {
                double cd = collapsed_dist(L, st->ptx_collapse, u, v);
                /* Apical and lateral only: no gas along the mediastinum. */
                double upper = smooth((L->dome_top - 0.08 - v) / 0.06) * smooth((q - L->q_in - 0.12 * L->width) / 0.02);
                gas = lung * (1 - smooth(cd / e)) * upper * (1 - heart);
                pleura = bump(cd / (1.2 * px)) * lung * upper * (1 - heart);
                collapsed = lung * (1 - gas) * upper * (1 - heart);
            }
            double depth = 0.6 + 0.4 * clamp01(ld / 0.06);
            d -= A->air * tissue * depth;
            d -= 0.14 * gas;
            d += 0.16 * pleura + 0.03 * fluid + 0.05 * collapsed;
            d += V[i] * tissue * (1 - gas);
            d += 0.08 * bump(vlen(u - L->side * (L->q_in + 0.04), v - L->hilum_v) / 0.06) * lung;

            /* Trachea: an air column down the neck to the carina. */
            d -= 0.09 * smooth((0.012 - fabs(u - 0.004)) / e) * smooth((-0.09 - v) / 0.02) * body;

            /* Bones. */
            if (q < A->spine_hw + e)
                d += 0.55 * A->bone * smooth((A->spine_hw - q) / e) * (0.85 + 0.15 * wave(v / 0.048)) * body;
            /* Bone shows best against lung: over the heart and abdomen,
             * scatter and film latitude hide most of it. */
            d += (ribs(A, q, v, px) * (0.3 + 0.7 * tissue) + clavicle(A, q, v, px)) * body;

            /* Breast shadows over the lower lateral lungs; gas in the stomach
             * under the left hemidiaphragm. */
            if (A->breast > 0) d += A->breast * smooth((0.16 - vlen((q - 0.24) / 1.3, v - 0.22)) / 0.04) * body;
            if (A->bubble > 0 && u > 0)
                d -= A->bubble * smooth((1 - vlen((u - 0.16) / 0.045, (v - L->dome_top - 0.05) / 0.028)) / 0.3) * body;

            double nodule = 0;
            if (nod) {
                double dn = vlen(u - st->nod_u, v - st->nod_v);
                d += 0.36 * smooth((st->nod_r - dn) / nod_edge) * (0.75 + 0.25 * clamp01(1 - sq(dn / st->nod_r)));
                nodule = dn <= nod_mask_r ? 1 : 0.5 * nod_mask_r / dn;
            }
            if (masks) {
                /* Membership of each finding, in th_phantom_labels order. */
                const double member[TH_PHANTOM_N_LABELS] = {gas, heart, fluid, nodule};
                for (int k = 0; k < TH_PHANTOM_N_LABELS; k++) {
                    if (!st->label[k]) continue;
                    if (member[k] >= 0.5) masks[k * npix + i] = 1;
                    if (member[k] > best[k]) {
                        best[k] = member[k];
                        best_at[k] = i;
                    }
                }
            }
            D[i] = (float)d;
        }
    }

    for (int k = 0; masks && k < TH_PHANTOM_N_LABELS; k++)
        if (st->label[k]) masks[k * npix + best_at[k]] = 1;
    if (st->marker) draw_marker(D, S, st->marker_right);

    th_rng noise;
    th_rng_seed(&noise, o->seed, st->noise_stream);
    for (size_t i = 0; i < npix; i++) D[i] += (float)st->noise * fast_normal(&noise);
    blur(D, V, S, 1 + S / 256);

    /* Tone curve as a table over density [DENS_LO, DENS_HI): linear in the
     * lungs, with a shoulder that compresses the dense mediastinum and
     * abdomen (as film and scatter do, so that ribs fade over the heart),
     * then the study's exposure and gamma. */
    uint8_t lut[LUT_SIZE];
    for (int k = 0; k < LUT_SIZE; k++) {
        double dens = DENS_LO + (DENS_HI - DENS_LO) * k / (LUT_SIZE - 1);
        double t = dens < KNEE ? dens : KNEE + (1 - KNEE) * (1 - exp(-(dens - KNEE) / (1 - KNEE)));
        lut[k] = (uint8_t)lround(255.0 * pow(clamp01(st->offset + st->gain * t), st->gamma));
    }
    for (size_t i = 0; i < npix; i++) {
        double k = (D[i] - DENS_LO) / (DENS_HI - DENS_LO) * (LUT_SIZE - 1);
        img[i] = lut[k <= 0 ? 0 : k >= LUT_SIZE - 1 ? LUT_SIZE - 1 : (int)(k + 0.5)];
    }
    free(D);
    free(V);
    return 0;
}

/* With invalid options, or without memory, only the labels are written
 * (as zeros): this function has no error channel, and th_phantom_write
 * reports both conditions. */
void th_phantom_render(const th_phantom_opts *o, int patient, int study_no, uint8_t *img, uint8_t *labels,
                       uint8_t *masks)
{
    memset(labels, 0, TH_PHANTOM_N_LABELS);
    if (opts_valid(o, NULL)) return;
    anatomy *A = malloc(sizeof *A);
    if (!A) return;
    study st;
    make_anatomy(o, patient, A);
    make_study(o, A, patient, study_no, &st);
    if (render(o, A, &st, img, masks) == 0) memcpy(labels, st.label, TH_PHANTOM_N_LABELS);
    free(A);
}

int th_phantom_write(const th_phantom_opts *o, const char *path, th_phantom_progress_fn progress, void *ctx,
                     th_err *err)
{
    if (opts_valid(o, err)) return -1;
    int total = th_phantom_count(o);
    const size_t npix = (size_t)o->size * o->size;
    th_dataset_writer wr;
    if (th_dataset_writer_create(&wr, path, total, o->size, o->size, TH_PHANTOM_N_LABELS, th_phantom_labels, 1, 0, err))
        return -1;
    uint8_t *img = malloc(npix), *masks = malloc(TH_PHANTOM_N_LABELS * npix);
    anatomy *A = malloc(sizeof *A);
    /* A synthetic /meta/View Position for subgroup evaluation: fixed by
     * patient and study (no random draw, so the images are unchanged). */
    const char **view = malloc(sizeof *view * (size_t)(total > 0 ? total : 1));
    if (!img || !masks || !A || !view) {
        free(view);
        free(A);
        free(masks);
        free(img);
        th_dataset_writer_abort(&wr);
        return th_errf(err, "%s: out of memory for %dx%d phantom images", path, o->size, o->size);
    }
    int row = 0, step = total / 20 > 0 ? total / 20 : 1, rc = 0;
    for (int p = 0; rc == 0 && p < o->patients; p++) {
        make_anatomy(o, p, A);
        for (int s = 0; rc == 0 && s < A->studies; s++) {
            study st;
            make_study(o, A, p, s, &st);
            char pid[32], name[48];
            snprintf(pid, sizeof pid, "P%05d", p);
            snprintf(name, sizeof name, "P%05d_%03d.png", p, s);
            if (render(o, A, &st, img, masks))
                rc = th_errf(err, "%s: out of memory rendering image %s", path, name);
            else
                rc = th_dataset_writer_put(&wr, row, img, st.label, pid, name, masks, 0, err);
            view[row++] = (p + s) % 3 == 0 ? "AP" : "PA";
            if (rc == 0 && progress && (row % step == 0 || row == total)) progress(ctx, row, total);
        }
    }
    if (rc == 0) rc = th_dataset_writer_meta(&wr, "View Position", view, err);
    free(view);
    free(A);
    free(masks);
    free(img);
    if (rc) {
        th_dataset_writer_abort(&wr);
        return -1;
    }
    return th_dataset_writer_finish(&wr, err);
}

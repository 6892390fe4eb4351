/* test_lrfind.c - the learning-rate range test's arithmetic on curves worked
 * by hand: the exponential rates, the bias-corrected moving average, the
 * divergence stop, and the two suggestions and the choice between them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "thorax/train.h"

static void test_rates(void)
{
    th_lrfind_opts o;
    th_lrfind_defaults(&o);
    o.steps = 9;
    o.start_lr = 1e-6;
    o.end_lr = 1e2;
    CHECK_REL(th_lrfind_lr(&o, 0), 1e-6, 1e-12, 0);
    CHECK_REL(th_lrfind_lr(&o, 8), 1e2, 1e-12, 0);
    CHECK_REL(th_lrfind_lr(&o, 4), 1e-2, 1e-12, 0); /* halfway in log */
    CHECK_REL(th_lrfind_lr(&o, 1), 1e-5, 1e-12, 0); /* one decade a step */
    th_err err;
    CHECK(th_lrfind_check(&o, &err) == 0);
    o.end_lr = 1e-7;
    CHECK(th_lrfind_check(&o, &err) == -1 && strstr(err.msg, "--end-lr"));
    o.end_lr = 10;
    o.steps = 2;
    CHECK(th_lrfind_check(&o, &err) == -1 && strstr(err.msg, "--steps"));
}

static void test_smoothing(void)
{
    th_lrfind_smoother s;
    int stop;
    /* By hand, beta 0.98: avg1 = 0.02, /(1-0.98) = 1; avg2 = 0.98*0.02 + 0.02*2
     * = 0.0596, /(1-0.9604) = 1.50505... */
    th_lrfind_smoother_init(&s, 0.98, 4);
    CHECK_NEAR(th_lrfind_smooth(&s, 1.0, &stop), 1.0, 1e-12);
    CHECK(!stop);
    CHECK_NEAR(th_lrfind_smooth(&s, 2.0, &stop), 0.0596 / 0.0396, 1e-12);
    CHECK(!stop);
    /* A constant loss stays itself: the bias correction undoes the zero start. */
    th_lrfind_smoother_init(&s, 0.98, 4);
    for (int i = 0; i < 50; i++) CHECK_NEAR(th_lrfind_smooth(&s, 0.7, &stop), 0.7, 1e-12);

    /* Divergence, beta 0 (no smoothing): best 0.5, so 1.9 goes on, 2.1 stops. */
    th_lrfind_smoother_init(&s, 0, 4);
    th_lrfind_smooth(&s, 1.0, &stop);
    CHECK(!stop);
    th_lrfind_smooth(&s, 0.5, &stop);
    CHECK(!stop);
    th_lrfind_smooth(&s, 1.9, &stop);
    CHECK(!stop);
    th_lrfind_smooth(&s, 2.1, &stop);
    CHECK(stop);
    /* A NaN loss stops at once. */
    th_lrfind_smoother_init(&s, 0.98, 4);
    th_lrfind_smooth(&s, 1.0, &stop);
    th_lrfind_smooth(&s, NAN, &stop);
    CHECK(stop);
}

/* 61 rates, 10 per decade from 1e-6 to 1; log10(lr) of point i is -6 + i/10. */
static void rates61(th_lrfind_result *r)
{
    th_lrfind_opts o;
    th_lrfind_defaults(&o);
    o.steps = 61;
    o.start_lr = 1e-6;
    o.end_lr = 1;
    for (int i = 0; i < 61; i++) r->lr[i] = th_lrfind_lr(&o, i);
    r->n = 61;
}

/* Falls by 1 around log10 lr = -2.5 (steepest there: the slope of tanh is
 * largest at 0), then rises quadratically past 0.1: minimum at lr 0.1. */
static double valley(double x)
{
    return 1 - 0.5 * tanh(2 * (x + 2.5)) + (x > -1 ? 2 * (x + 1) * (x + 1) : 0);
}

static void test_suggest_clean(void)
{
    th_lrfind_result r;
    th_err err;
    CHECK(th_lrfind_result_init(&r, 61, &err) == 0);
    rates61(&r);
    for (int i = 0; i < 61; i++) r.smoothed[i] = r.loss[i] = valley(-6 + i / 10.0);
    CHECK(th_lrfind_suggest(&r, &err) == 0);
    CHECK(r.steep_idx == 35);
    CHECK_REL(r.steep_lr, pow(10, -2.5), 1e-9, 0);
    /* Central difference at the centre: (valley(-2.4) - valley(-2.6)) / 0.2. */
    CHECK_NEAR(r.steep_slope, (valley(-2.4) - valley(-2.6)) / 0.2, 1e-9);
    CHECK(r.min_idx == 50);
    CHECK_REL(r.min_tenth_lr, 0.01, 1e-9, 0);
    CHECK(r.rule == TH_LRFIND_STEEPEST);
    CHECK_REL(r.suggested, r.steep_lr, 1e-12, 0);

    /* Through the smoother with a blow-up to 100 from point 45. The average
     * lags (worked out: smoothed 1.2114 at point 44, the best; 4.4762 at 45,
     * still under 4 x 1.2114 = 4.8457; 7.5924 at 46): the test stops at 46,
     * and the suggestion comes from the points before it. */
    th_lrfind_smoother s;
    th_lrfind_smoother_init(&s, 0.98, 4);
    int stop = 0, i;
    for (i = 0; i < 61 && !stop; i++) {
        r.loss[i] = i < 45 ? valley(-6 + i / 10.0) : 100;
        r.smoothed[i] = th_lrfind_smooth(&s, r.loss[i], &stop);
    }
    if (!CHECK(stop && i == 47)) fprintf(stderr, "stopped %d after %d points\n", stop, i);
    r.n = i;
    r.diverged = 1;
    CHECK(th_lrfind_suggest(&r, &err) == 0);
    CHECK(r.min_idx == 44);       /* the last point before the blow-up */
    CHECK(r.steep_idx < 45 && r.steep_idx > 30); /* not in the blow-up (point 45 is the last kept) */
    CHECK(r.rule == TH_LRFIND_STEEPEST);
    /* The average lags the losses: its steepest point comes later. */
    CHECK(r.steep_idx >= 35);
    th_lrfind_result_free(&r);
}

static void test_suggest_fallbacks(void)
{
    th_lrfind_result r;
    th_err err;
    CHECK(th_lrfind_result_init(&r, 61, &err) == 0);
    rates61(&r);
    /* Never falls: no steepest descent, min/10 (the minimum at the first settled point). */
    for (int i = 0; i < 61; i++) r.smoothed[i] = 1 + 0.01 * i;
    CHECK(th_lrfind_suggest(&r, &err) == 0);
    CHECK(r.rule == TH_LRFIND_MIN_TENTH && r.steep_slope >= 0);
    CHECK(r.min_idx == 6); /* 61 / 10 points left out */
    CHECK_REL(r.suggested, r.lr[6] / 10, 1e-12, 0);
    CHECK(strstr(r.why, "never falls") != NULL);

    /* A dip on the flat start 4 decades below the minimum: noise, min/10. */
    for (int i = 0; i < 61; i++) {
        double x = -6 + i / 10.0;
        r.smoothed[i] = 1 - 0.3 * (x > -3 ? (x + 3) / 2 : 0) + (i == 11 ? -0.2 : 0);
        if (x > -1) r.smoothed[i] += 2 * (x + 1) * (x + 1);
    }
    /* The dip (0.8) is above the true minimum (0.7 at lr 0.1); its slope, -1
     * per decade, beats the descent's -0.15. */
    CHECK(th_lrfind_suggest(&r, &err) == 0);
    CHECK(r.min_idx == 50 && r.steep_idx == 10);
    CHECK(r.rule == TH_LRFIND_MIN_TENTH);
    CHECK_REL(r.suggested, 0.01, 1e-9, 0);
    CHECK(strstr(r.why, "decades below") != NULL);

    /* Too few points once the divergent one and the first tenth are out. */
    r.n = 3;
    r.diverged = 1;
    CHECK(th_lrfind_suggest(&r, &err) == -1);
    CHECK(strstr(err.msg, "--steps") != NULL);
    th_lrfind_result_free(&r);
}

static void test_write(void)
{
    th_lrfind_result r;
    th_err err;
    CHECK(th_lrfind_result_init(&r, 61, &err) == 0);
    rates61(&r);
    for (int i = 0; i < 61; i++) r.smoothed[i] = r.loss[i] = valley(-6 + i / 10.0);
    CHECK(th_lrfind_suggest(&r, &err) == 0);
    char dir[] = "/tmp/thorax-lrfind-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char sub[64], path[128];
    snprintf(sub, sizeof sub, "%s/a/lr_find", dir);
    CHECK(th_lrfind_write(&r, sub, "test", &err) == 0);
    snprintf(path, sizeof path, "%s/lr_find.csv", sub);
    FILE *f = fopen(path, "r");
    char line[128] = "";
    int rows = 0;
    if (CHECK(f != NULL)) {
        CHECK(fgets(line, sizeof line, f) && !strcmp(line, "step,lr,loss,smoothed\n"));
        while (fgets(line, sizeof line, f)) rows++;
        fclose(f);
    }
    CHECK(rows == 61);
    unlink(path);
    snprintf(path, sizeof path, "%s/lr_find.png", sub);
    CHECK(access(path, F_OK) == 0);
    unlink(path);
    rmdir(sub);
    snprintf(path, sizeof path, "%s/a", dir);
    rmdir(path);
    rmdir(dir);
    th_lrfind_result_free(&r);
}

int main(void)
{
    test_rates();
    test_smoothing();
    test_suggest_clean();
    test_suggest_fallbacks();
    test_write();
    return th_test_summary("test_lrfind");
}

/* test_schedule.c - learning-rate schedules, best tracking and early stopping
 * against values worked by hand. */
#include <math.h>
#include <string.h>

#include "testutil.h"
#include "schedule.h"

static th_config base_config(th_schedule_type type)
{
    th_config c;
    memset(&c, 0, sizeof c);
    c.train.epochs = 3;
    c.train.optimizer.lr = 0.1f;
    c.train.schedule.type = type;
    return c;
}

static void test_step_and_cosine(void)
{
    th_config c = base_config(TH_SCHED_STEP);
    c.train.epochs = 10;
    c.train.schedule.factor = 0.1f;
    c.train.schedule.step_epochs = 2;
    /* 5 steps per epoch: epochs 0-1 at 0.1, 2-3 at 0.01, 4-5 at 0.001. */
    CHECK_NEAR(th_schedule_lr(&c, 0, 5, 9), 0.1, 1e-7);
    CHECK_NEAR(th_schedule_lr(&c, 9, 5, 9), 0.1, 1e-7);
    CHECK_NEAR(th_schedule_lr(&c, 10, 5, 9), 0.01, 1e-8);
    CHECK_NEAR(th_schedule_lr(&c, 20, 5, 9), 0.001, 1e-9);

    c = base_config(TH_SCHED_COSINE);
    c.train.schedule.warmup_epochs = 1;
    c.train.schedule.min_lr = 0.02f;
    /* 5 steps per epoch, 3 epochs: warm-up over steps 0-4 (lr * (s+1)/5),
     * then a half cosine from 0.1 at step 5 to 0.02 at step 15. */
    CHECK_NEAR(th_schedule_lr(&c, 0, 5, 9), 0.02, 1e-7);
    CHECK_NEAR(th_schedule_lr(&c, 4, 5, 9), 0.1, 1e-7);
    CHECK_NEAR(th_schedule_lr(&c, 5, 5, 9), 0.1, 1e-7);
    CHECK_NEAR(th_schedule_lr(&c, 10, 5, 9), 0.06, 1e-7); /* t = 1/2: the midpoint */
    CHECK_NEAR(th_schedule_lr(&c, 15, 5, 9), 0.02, 1e-7);

    /* Constant and plateau keep the current rate. */
    c = base_config(TH_SCHED_CONSTANT);
    CHECK_NEAR(th_schedule_lr(&c, 123, 5, 0.07f), 0.07, 1e-8);
    c = base_config(TH_SCHED_PLATEAU);
    CHECK_NEAR(th_schedule_lr(&c, 123, 5, 0.07f), 0.07, 1e-8);
}

static void test_plateau_and_early_stop(void)
{
    th_config c = base_config(TH_SCHED_PLATEAU);
    c.train.epochs = 20;
    c.train.schedule.factor = 0.5f;
    c.train.schedule.patience = 2;
    c.train.schedule.min_lr = 0.03f;
    c.train.early_stop_patience = 5;
    th_train_state st = {.lr = 0.1f, .best_score = -INFINITY};
    /* AUC per epoch: gains at 1, 2; then no gain. The plateau halves the rate
     * after 3 epochs without gain (more than patience 2), again after 3 more
     * but not below min_lr; early stopping after 5 without gain. */
    const double auc[] = {0.7, 0.8, 0.79, NAN, 0.8, 0.78, 0.77, 0.76};
    const float want_lr[] = {0.1f, 0.1f, 0.1f, 0.1f, 0.05f, 0.05f, 0.05f, 0.03f};
    const int want_best[] = {1, 1, 0, 0, 0, 0, 0, 0};
    const int want_stop[] = {0, 0, 0, 0, 0, 0, 1, 1};
    for (int e = 0; e < 8; e++) {
        int best, stop;
        st.epoch = e + 1;
        th_schedule_after_epoch(&c, &st, auc[e], &best, &stop);
        CHECK(best == want_best[e]);
        CHECK_NEAR(st.lr, want_lr[e], 1e-7);
        CHECK(stop == want_stop[e]);
    }
    CHECK(st.best_epoch == 2);
    CHECK_NEAR(st.best_score, 0.8, 1e-12);

    /* No early stop after the last epoch. */
    th_train_state last = {.lr = 0.1f, .best_score = 0.9, .bad_epochs = 10, .epoch = 20};
    int best, stop;
    th_schedule_after_epoch(&c, &last, 0.5, &best, &stop);
    CHECK(!stop);
}

int main(void)
{
    test_step_and_cosine();
    test_plateau_and_early_stop();
    return th_test_summary("test_schedule");
}

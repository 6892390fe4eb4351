/* test_roc.c - AUC against values worked by hand. */
#include <math.h>

#include "testutil.h"
#include "thorax/eval.h"

int main(void)
{
    /* Positives {0.35, 0.8}, negatives {0.1, 0.4}: pairs won 3 of 4. */
    float s1[] = {0.1f, 0.4f, 0.35f, 0.8f};
    uint8_t y1[] = {0, 0, 1, 1};
    CHECK_NEAR(th_auc(4, s1, y1, 1), 0.75, 1e-12);

    /* Ties count one half: pos {0.5, 0.9} vs neg {0.2, 0.5} -> (1 + 0.5 + 1 + 1) / 4. */
    float s2[] = {0.2f, 0.5f, 0.5f, 0.9f};
    uint8_t y2[] = {0, 1, 0, 1};
    CHECK_NEAR(th_auc(4, s2, y2, 1), 0.875, 1e-12);

    /* All scores equal: 0.5. Perfect and reversed rankings: 1 and 0. */
    float s3[] = {0.3f, 0.3f, 0.3f, 0.3f, 0.3f};
    uint8_t y3[] = {1, 0, 1, 0, 0};
    CHECK_NEAR(th_auc(5, s3, y3, 1), 0.5, 1e-12);
    float s4[] = {0.9f, 0.1f, 0.8f, 0.2f, 0.3f};
    CHECK_NEAR(th_auc(5, s4, y3, 1), 1.0, 1e-12);
    float s5[] = {0.1f, 0.9f, 0.2f, 0.8f, 0.7f};
    CHECK_NEAR(th_auc(5, s5, y3, 1), 0.0, 1e-12);

    /* One class only: undefined, not 0.5. */
    uint8_t all_pos[] = {1, 1, 1, 1};
    CHECK(isnan(th_auc(4, s1, all_pos, 1)));

    /* Strided access and the macro mean over the defined labels:
     * label 0 = case 1 (0.75), label 1 = one class (NaN), label 2 = case 2 (0.875). */
    float p[4 * 3];
    uint8_t y[4 * 3];
    for (int i = 0; i < 4; i++) {
        p[i * 3 + 0] = s1[i], y[i * 3 + 0] = y1[i];
        p[i * 3 + 1] = s1[i], y[i * 3 + 1] = 0;
        p[i * 3 + 2] = s2[i], y[i * 3 + 2] = y2[i];
    }
    double auc[3];
    int defined = 0;
    double macro = th_auc_macro(4, 3, p, y, auc, &defined);
    CHECK_NEAR(auc[0], 0.75, 1e-12);
    CHECK(isnan(auc[1]));
    CHECK_NEAR(auc[2], 0.875, 1e-12);
    CHECK(defined == 2);
    CHECK_NEAR(macro, (0.75 + 0.875) / 2, 1e-12);

    /* Larger case against the O(n^2) pair count. */
    enum { M = 500 };
    float s[M];
    uint8_t yy[M];
    th_test_fill(s, M, 0, 1, 3);
    for (int i = 0; i < M; i++) {
        s[i] = roundf(s[i] * 20) / 20; /* many ties */
        yy[i] = (uint8_t)((i * 7) % 3 == 0);
    }
    double won = 0, pairs = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < M; j++)
            if (yy[i] && !yy[j]) {
                pairs++;
                won += s[i] > s[j] ? 1 : s[i] == s[j] ? 0.5 : 0;
            }
    CHECK_NEAR(th_auc(M, s, yy, 1), won / pairs, 1e-12);
    return th_test_summary("test_roc");
}

/* test_lesions.c - lesion boxes and SIIM run-length codes drawn at a stored
 * size (th_lesions_draw), against values worked by hand:
 *   - a box on a 10x10 original stored at 4x4 (scale 2.5): the stored pixel
 *     centres map back to 1.25, 3.75, 6.25 and 8.75, so the box x 0-5,
 *     y 0-2.5 covers columns 0-1 of row 0 only; a box from 7 past the edge
 *     covers the last pixel (centre 8.75) only, clipped;
 *     `Infiltrate` is Infiltration; unknown labels are ignored;
 *   - SIIM's `1 2 1 1` on a 3-wide, 2-high image marks pixels 1, 2 and 4
 *     counted column-major: (row 1, col 0), (row 0, col 1), (row 0, col 2);
 *     `-1` marks nothing; a run past the last pixel is an error naming the
 *     file and line; a code that is not pairs fails at load.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "thorax/data.h"

static char dir[] = "/tmp/thorax-lesions-XXXXXX";

static const char *write_text(const char *name, const char *text)
{
    static char path[4][4096];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    FILE *f = fopen(path[k], "w");
    if (!f || fputs(text, f) < 0 || fclose(f)) {
        perror(path[k]);
        exit(1);
    }
    return path[k];
}

static const char *const labels[] = {"Nodule", "Infiltration", "Pneumothorax"};
static const uint8_t positive[3] = {1, 1, 1};

static void test_boxes(void)
{
    const char *p = write_text("boxes.csv", "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
                                            "dir/a.png,Nodule,0,0,5,2.5,,,\n"
                                            "a.png,Infiltrate,7,7,100,100,,,\n"
                                            "a.png,Hernia,0,0,10,10,,,\n"
                                            "b.png,Nodule,0,0,10,10,,,\n");
    th_lesions *l;
    th_err err;
    CHECK(th_lesions_load(&l, p, NULL, NULL, 3, labels, &err) == 0);
    uint8_t m[3 * 16];
    CHECK(th_lesions_draw(l, "a.png", 10, 10, positive, 4, 4, m, &err) == 2);
    static const uint8_t nodule[16] = {1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t infiltration[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    CHECK(!memcmp(m, nodule, 16));
    CHECK(!memcmp(m + 16, infiltration, 16));
    for (int i = 32; i < 48; i++) CHECK(m[i] == 0);
    CHECK(th_lesions_draw(l, "other/c.jpg", 10, 10, positive, 4, 4, m, &err) == 0);
    th_lesions_free(l);

    p = write_text("bad.csv", "Image Index,Finding Label,x,y,w,h\na.png,Nodule,1,1,0,3\n");
    CHECK(th_lesions_load(&l, p, NULL, NULL, 3, labels, &err) == -1);
    CHECK(strstr(err.msg, "bad.csv:2: image a.png: box w '0' is not a positive number") != NULL);
}

static void test_rle(void)
{
    const char *p = write_text("rle.csv", "ImageId, EncodedPixels\nx, 1 2 1 1\ny, -1\nz, 4 3\n");
    th_lesions *l;
    th_err err;
    CHECK(th_lesions_load(&l, NULL, NULL, p, 3, labels, &err) == 0);
    uint8_t m[3 * 6];
    CHECK(th_lesions_draw(l, "x.png", 3, 2, positive, 2, 3, m, &err) == 1);
    static const uint8_t want[6] = {0, 1, 1, 1, 0, 0};
    CHECK(!memcmp(m + 12, want, 6));
    for (int i = 0; i < 12; i++) CHECK(m[i] == 0);
    CHECK(th_lesions_draw(l, "y.png", 3, 2, positive, 2, 3, m, &err) == 0);
    CHECK(th_lesions_draw(l, "z.png", 3, 2, positive, 2, 3, m, &err) == -1);
    CHECK(strstr(err.msg, "rle.csv:4: image z: a run ends past pixel 6") != NULL);
    th_lesions_free(l);

    p = write_text("odd.csv", "ImageId,EncodedPixels\nx,1 2 3\n");
    CHECK(th_lesions_load(&l, NULL, NULL, p, 3, labels, &err) == -1);
    CHECK(strstr(err.msg, "odd.csv:2: image x: EncodedPixels") != NULL);
    CHECK(th_lesions_load(&l, NULL, NULL, p, 2, labels, &err) == -1);
    CHECK(strstr(err.msg, "Pneumothorax, which is not among the labels kept") != NULL);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_boxes();
    test_rle();
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return th_test_summary("lesions");
}

/* prefetch.c - a double-buffered batch producer on one worker thread
 * (see src/train/prefetch.h). */
#include "prefetch.h"

#include <stdlib.h>
#include <string.h>

static void *worker(void *arg)
{
    th_prefetch *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->requested < 0) pthread_cond_wait(&p->cv, &p->mu);
        if (p->quit) break;
        int step = p->requested, slot = step % 2;
        pthread_mutex_unlock(&p->mu);
        int n = p->fill(p->ctx, step, p->x[slot], p->y[slot]);
        pthread_mutex_lock(&p->mu);
        p->n[slot] = n;
        p->ready = step;
        p->requested = -1;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int th_prefetch_start(th_prefetch *p, size_t x_floats, size_t y_bytes, th_prefetch_fill fill, void *ctx, th_err *err)
{
    memset(p, 0, sizeof *p);
    p->fill = fill;
    p->ctx = ctx;
    p->requested = p->ready = -1;
    for (int k = 0; k < 2; k++) {
        p->x[k] = malloc(sizeof(float) * (x_floats ? x_floats : 1));
        p->y[k] = malloc(y_bytes ? y_bytes : 1);
        if (!p->x[k] || !p->y[k]) {
            th_prefetch_stop(p);
            return th_errf(err, "out of memory for two batches of %zu floats", x_floats);
        }
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->thread, NULL, worker, p)) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        th_prefetch_stop(p);
        return th_errf(err, "cannot start the data prefetch thread");
    }
    p->started = 1;
    return 0;
}

void th_prefetch_request(th_prefetch *p, int step)
{
    pthread_mutex_lock(&p->mu);
    p->requested = step;
    /* Step numbers repeat every epoch: forget the last one so a wait for the
     * same number cannot return last epoch's batch. */
    p->ready = -1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int th_prefetch_wait(th_prefetch *p, int step, float **x, uint8_t **y)
{
    pthread_mutex_lock(&p->mu);
    while (p->ready != step) pthread_cond_wait(&p->cv, &p->mu);
    int slot = step % 2, n = p->n[slot];
    pthread_mutex_unlock(&p->mu);
    *x = p->x[slot];
    *y = p->y[slot];
    return n;
}

void th_prefetch_stop(th_prefetch *p)
{
    if (p->started) {
        pthread_mutex_lock(&p->mu);
        p->quit = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        p->started = 0;
    }
    for (int k = 0; k < 2; k++) {
        free(p->x[k]);
        free(p->y[k]);
        p->x[k] = NULL;
        p->y[k] = NULL;
    }
}

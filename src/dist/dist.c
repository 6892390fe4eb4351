/* dist.c - gradient averaging (blocking, or bucketed and overlapped with
 * backward), gathers and error agreement over MPI (see thorax/dist.h). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "thorax/dist.h"

#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sums to means: one rounding of 1/total, then one multiply per gradient.
 * Both averaging paths go through here so that they agree to the bit. */
static void divide_sums(float *grads, size_t n, long total)
{
    if (total <= 0) return;
    float scale = 1.0f / (float)total;
    for (size_t i = 0; i < n; i++) grads[i] *= scale;
}

/* ---- The hang watchdog (th_dist_watch) -------------------------------------
 *
 * A watched communicator carries its watch as an MPI attribute, so that every
 * collective here finds it from the comm it is given. Its collectives are
 * started non-blocking and waited for in a test loop that sleeps between
 * tests (backing off to 2 ms: no core burnt while a rank is late). Past the
 * timeout, the waiting rank asks every other rank, on a duplicate of comm,
 * whether it is there: a rank waiting in one of these loops answers at once;
 * one stopped, hung outside MPI or on a lost node does not. The watch's
 * callback gets the silent ranks' names. */
enum { TAG_PING = 1, TAG_PONG = 2, PING_GRACE_S = 3 };

typedef struct dist_watch {
    MPI_Comm ping;              /* a duplicate of the watched comm: pings never match its collectives */
    double timeout_s;
    th_dist_hang_fn on_hang;
    void *ctx;
    int seq;                    /* hang checks so far: a late answer to an old one is dropped */
    int *pong;                  /* [size]: the answer to each rank, alive while its send is in flight */
} dist_watch;

/* MPI attribute keys are process-wide by MPI's design; the watch itself
 * hangs on the communicator it watches. The key is freed with the last watch. */
static int watch_key = MPI_KEYVAL_INVALID, n_watched;

static dist_watch *watch_of(MPI_Comm comm)
{
    if (watch_key == MPI_KEYVAL_INVALID) return NULL;
    dist_watch *w = NULL;
    int found = 0;
    MPI_Comm_get_attr(comm, watch_key, &w, &found);
    return found ? w : NULL;
}

static void sleep_us(long us)
{
    struct timespec t = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&t, NULL);
}

/* Answers every ping that has arrived: the asking rank waits for this rank. */
static void answer_pings(dist_watch *w)
{
    for (;;) {
        int there = 0, seq;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_PING, w->ping, &there, &st);
        if (!there) return;
        MPI_Recv(&seq, 1, MPI_INT, st.MPI_SOURCE, TAG_PING, w->ping, MPI_STATUS_IGNORE);
        MPI_Request r;
        w->pong[st.MPI_SOURCE] = seq;
        MPI_Isend(&w->pong[st.MPI_SOURCE], 1, MPI_INT, st.MPI_SOURCE, TAG_PONG, w->ping, &r);
        MPI_Request_free(&r);
    }
}

/* The collective (reqs [n]) has waited past the timeout: pings every other
 * rank and waits up to PING_GRACE_S for the answers, still testing reqs and
 * answering pings. Returns 1 if the collective completed meanwhile; else
 * hands the callback the silent ranks and does not return. */
static int hang_check(dist_watch *w, int n, MPI_Request *reqs, const char *what, double waited)
{
    int rank, size;
    MPI_Comm_rank(w->ping, &rank);
    MPI_Comm_size(w->ping, &size);
    char *answered = calloc((size_t)size, 1);
    if (!answered) MPI_Abort(w->ping, 1);
    answered[rank] = 1;
    int seq = ++w->seq, missing = size - 1, done = 0;
    for (int r = 0; r < size; r++) {
        if (r == rank) continue;
        MPI_Request q;
        MPI_Isend(&w->seq, 1, MPI_INT, r, TAG_PING, w->ping, &q);
        MPI_Request_free(&q);
    }
    double t0 = MPI_Wtime();
    while (missing > 0 && MPI_Wtime() - t0 < PING_GRACE_S) {
        MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE);
        if (done) {
            free(answered);
            return 1;
        }
        answer_pings(w);
        int there = 0, got;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_PONG, w->ping, &there, &st);
        if (!there) {
            sleep_us(1000);
            continue;
        }
        MPI_Recv(&got, 1, MPI_INT, st.MPI_SOURCE, TAG_PONG, w->ping, MPI_STATUS_IGNORE);
        if (got == seq && !answered[st.MPI_SOURCE]) {
            answered[st.MPI_SOURCE] = 1;
            missing--;
        }
    }
    MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE);
    if (done) {
        free(answered);
        return 1;
    }
    /* The lowest rank that answered speaks; every waiting rank gets here. */
    char msg[sizeof ((th_err *)0)->msg], list[512] = "";
    size_t used = 0;
    int first_alive = -1, n_silent = 0;
    for (int r = 0; r < size; r++) {
        if (answered[r]) {
            if (first_alive < 0) first_alive = r;
            continue;
        }
        n_silent++;
        if (used < sizeof list - 16)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%d", n_silent > 1 ? ", " : "", r);
    }
    free(answered);
    if (n_silent)
        snprintf(msg, sizeof msg,
                 "rank%s %s silent: the %s has waited %.0f s for %s (runtime.hang_timeout %.0f s): stopped, hung or "
                 "on a lost node; ending the job (--resume auto continues from the last checkpoint)",
                 n_silent > 1 ? "s" : "", list, what, waited, n_silent > 1 ? "them" : "it", w->timeout_s);
    else
        snprintf(msg, sizeof msg,
                 "the %s has waited %.0f s (runtime.hang_timeout %.0f s) although every rank answers: the ranks wait "
                 "in different collectives; ending the job",
                 what, waited, w->timeout_s);
    w->on_hang(w->ctx, msg, rank == first_alive);
    /* The callback is to end the job; if it returns, end it here. */
    MPI_Abort(w->ping, 1);
    return 0;
}

/* Waits for reqs [n], collectives started on comm: MPI_Waitall, or with a
 * watch on comm, the watched loop. what names the collective in a message. */
static int dist_wait(MPI_Comm comm, int n, MPI_Request *reqs, const char *what)
{
    dist_watch *w = watch_of(comm);
    if (!w) return MPI_Waitall(n, reqs, MPI_STATUSES_IGNORE);
    double t0 = MPI_Wtime();
    long pause = 1;
    for (;;) {
        int done = 0;
        int rc = MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS || done) return rc;
        answer_pings(w);
        double waited = MPI_Wtime() - t0;
        if (waited > w->timeout_s && hang_check(w, n, reqs, what, waited)) return MPI_SUCCESS;
        sleep_us(pause);
        if (pause < 2000) pause *= 2;
    }
}

/* The collectives of this file, started non-blocking and waited for by
 * dist_wait (watched or not). */
static int dist_allreduce(MPI_Comm comm, const void *in, void *out, int n, MPI_Datatype t, MPI_Op op,
                          const char *what)
{
    MPI_Request r;
    int rc = MPI_Iallreduce(in, out, n, t, op, comm, &r);
    return rc == MPI_SUCCESS ? dist_wait(comm, 1, &r, what) : rc;
}

static int dist_bcast(MPI_Comm comm, void *buf, int n, MPI_Datatype t, int root, const char *what)
{
    MPI_Request r;
    int rc = MPI_Ibcast(buf, n, t, root, comm, &r);
    return rc == MPI_SUCCESS ? dist_wait(comm, 1, &r, what) : rc;
}

static int dist_gather(MPI_Comm comm, const void *in, int n, MPI_Datatype t, void *out, int root, const char *what)
{
    MPI_Request r;
    int rc = MPI_Igather(in, n, t, out, n, t, root, comm, &r);
    return rc == MPI_SUCCESS ? dist_wait(comm, 1, &r, what) : rc;
}

static int watch_delete(MPI_Comm comm, int key, void *value, void *extra)
{
    (void)comm, (void)key, (void)extra;
    dist_watch *w = value;
    MPI_Comm_free(&w->ping);
    free(w->pong);
    free(w);
    return MPI_SUCCESS;
}

int th_dist_watch(th_comm comm, double timeout_s, th_dist_hang_fn on_hang, void *ctx, th_err *err)
{
    if (!(timeout_s > 0)) return 0;
    if (!on_hang) return th_errf(err, "a hang watch needs a callback");
    dist_watch *w = calloc(1, sizeof *w);
    int *pong = calloc((size_t)th_dist_size(comm), sizeof *pong);
    int ok = w && pong;
    /* Collective: every rank duplicates, even one that could not allocate. */
    MPI_Comm ping = MPI_COMM_NULL;
    MPI_Comm_dup(comm, &ping);
    if (th_dist_agree(comm, ok ? 0 : th_errf(err, "out of memory for the hang watch"), err)) {
        free(w);
        free(pong);
        MPI_Comm_free(&ping);
        return -1;
    }
    th_dist_unwatch(comm);
    if (watch_key == MPI_KEYVAL_INVALID &&
        MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, watch_delete, &watch_key, NULL) != MPI_SUCCESS) {
        free(w);
        free(pong);
        MPI_Comm_free(&ping);
        return th_errf(err, "cannot set up the hang watch (MPI_Comm_create_keyval failed)");
    }
    *w = (dist_watch){.ping = ping, .timeout_s = timeout_s, .on_hang = on_hang, .ctx = ctx, .pong = pong};
    MPI_Comm_set_attr(comm, watch_key, w);
    n_watched++;
    return 0;
}

void th_dist_unwatch(th_comm comm)
{
    if (!watch_of(comm)) return;
    MPI_Comm_delete_attr(comm, watch_key);
    /* The key outlives no watch: Open MPI would keep it to the end. */
    if (--n_watched == 0) MPI_Comm_free_keyval(&watch_key);
}

int th_dist_allreduce_mean(th_comm comm, float *grads, size_t n, long total, th_err *err)
{
    /* MPI counts are ints: move very large buffers in pieces. */
    for (size_t off = 0; off < n;) {
        size_t chunk = n - off < (size_t)INT_MAX ? n - off : (size_t)INT_MAX;
        MPI_Request r;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, grads + off, (int)chunk, MPI_FLOAT, MPI_SUM, comm, &r);
        if (rc == MPI_SUCCESS) rc = dist_wait(comm, 1, &r, "gradient allreduce");
        if (rc != MPI_SUCCESS) return th_errf(err, "MPI_Allreduce of %zu gradients failed (code %d)", n, rc);
        off += chunk;
    }
    divide_sums(grads, n, total);
    return 0;
}

/* ---- Bucketed gradient averaging (th_grad_sync) ---------------------------- */

size_t th_grad_sync_bucket_floats(double bucket_mb)
{
    if (!(bucket_mb > 0)) return 0;
    double floats = ceil(bucket_mb * (double)(1 << 20) / sizeof(float));
    /* Anything at least as large as the model is one bucket: saturate. */
    return floats < (double)SIZE_MAX ? (size_t)floats : SIZE_MAX;
}

static int cmp_desc(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x < y) - (x > y);
}

static int cmp_span_desc(const void *a, const void *b)
{
    size_t x = ((const th_span *)a)->off, y = ((const th_span *)b)->off;
    return (x < y) - (x > y);
}

/* The cuts inside (0, n), plus 0, decreasing and distinct, into starts;
 * returns how many. These are the only places a bucket may end without
 * splitting a range the hook reports whole. */
static int bucket_starts(const size_t *cuts, int n_cuts, size_t n, size_t *starts)
{
    int k = 0;
    starts[k++] = 0;
    for (int i = 0; i < n_cuts; i++)
        if (cuts[i] > 0 && cuts[i] < n) starts[k++] = cuts[i];
    qsort(starts, (size_t)k, sizeof *starts, cmp_desc);
    int d = 0;
    for (int i = 0; i < k; i++)
        if (d == 0 || starts[i] != starts[d - 1]) starts[d++] = starts[i];
    return d;
}

/* The segments the sync carries: the non-empty spans, sorted from the top
 * down and runs of adjacent ones merged, into lo/hi (each [n_spans]).
 * Returns how many. */
static int span_segments(th_span *spans, int n_spans, size_t *lo, size_t *hi)
{
    qsort(spans, (size_t)n_spans, sizeof *spans, cmp_span_desc);
    int k = 0;
    for (int i = 0; i < n_spans; i++) {
        const th_span *t = &spans[i];
        if (t->count == 0) continue;
        if (k > 0 && lo[k - 1] == t->off + t->count) {
            lo[k - 1] = t->off;
        } else {
            lo[k] = t->off;
            hi[k++] = t->off + t->count;
        }
    }
    return k;
}

/* Ends the bucket [at, *top) at index *nb (only counted when lo is NULL). */
static void close_bucket(size_t at, size_t *top, size_t *lo, size_t *hi, int *nb)
{
    if (lo) lo[*nb] = at, hi[*nb] = *top;
    ++*nb;
    *top = at;
}

/* Cuts segment [seg_lo, seg_hi) into buckets from the top, at layer starts
 * (decreasing, ending with 0; those outside the segment are skipped): a
 * bucket closes at the first start where it holds bucket_floats, and at
 * seg_lo; one that would pass INT_MAX closes at the start before, and a layer
 * that alone passes INT_MAX is cut into INT_MAX pieces. Appends buckets from
 * index nb into lo/hi (with lo NULL, only counts). Returns the new count. */
static int cut_buckets(size_t seg_lo, size_t seg_hi, const size_t *starts, int n_starts, size_t bucket_floats,
                       size_t *lo, size_t *hi, int nb)
{
    const size_t max = (size_t)INT_MAX;
    size_t top = seg_hi, prev = seg_hi;
    for (int i = 0; i < n_starts && seg_hi > seg_lo; i++) {
        size_t c = starts[i];
        if (c >= seg_hi) continue;
        if (c < seg_lo) c = seg_lo;
        if (top - c > max && prev < top) close_bucket(prev, &top, lo, hi, &nb);
        while (top - c > max) close_bucket(top - max, &top, lo, hi, &nb);
        if (top - c >= bucket_floats || c == seg_lo) close_bucket(c, &top, lo, hi, &nb);
        prev = c;
        if (c == seg_lo) break;
    }
    return nb;
}

/* Between steps: nothing final, nothing started. Above the top segment is
 * frozen, so final from the start. */
static void grad_sync_rearm(th_grad_sync *s)
{
    s->ready_lo = s->n_segs > 0 ? s->seg_hi[0] : s->n;
    s->seg_at = 0;
    s->started = 0;
    s->mpi_rc = MPI_SUCCESS;
    s->failed_bucket = -1;
}

int th_grad_sync_init(th_grad_sync *s, th_comm comm, float *grads, size_t n, const th_span *spans, int n_spans,
                      const size_t *cuts, int n_cuts, size_t bucket_floats, th_err *err)
{
    memset(s, 0, sizeof *s);
    s->comm = comm;
    s->grads = grads;
    s->n = n;
    s->bucket_floats = bucket_floats;
    size_t cap = (size_t)(n_spans > 0 ? n_spans : 1);
    s->seg_lo = malloc(sizeof *s->seg_lo * cap);
    s->seg_hi = malloc(sizeof *s->seg_hi * cap);
    th_span *sorted = malloc(sizeof *sorted * cap);
    if (!s->seg_lo || !s->seg_hi || !sorted) {
        free(sorted);
        th_grad_sync_free(s);
        return th_errf(err, "out of memory for %d gradient segments", n_spans);
    }
    if (n_spans > 0) memcpy(sorted, spans, sizeof *sorted * (size_t)n_spans);
    s->n_segs = n ? span_segments(sorted, n_spans, s->seg_lo, s->seg_hi) : 0;
    free(sorted);
    for (int k = 0; k < s->n_segs; k++) s->n_sync += s->seg_hi[k] - s->seg_lo[k];
    grad_sync_rearm(s);
    if (bucket_floats == 0 || s->n_sync == 0) return 0;
    size_t *starts = malloc(sizeof *starts * ((size_t)(n_cuts > 0 ? n_cuts : 0) + 1));
    if (!starts) {
        th_grad_sync_free(s);
        return th_errf(err, "out of memory for the gradient buckets of %d ranges", n_cuts);
    }
    int n_starts = bucket_starts(cuts, n_cuts, n, starts), nb = 0;
    for (int k = 0; k < s->n_segs; k++)
        nb = cut_buckets(s->seg_lo[k], s->seg_hi[k], starts, n_starts, bucket_floats, NULL, NULL, nb);
    s->lo = malloc(sizeof *s->lo * (size_t)nb);
    s->hi = malloc(sizeof *s->hi * (size_t)nb);
    s->req = malloc(sizeof *s->req * (size_t)nb);
    if (!s->lo || !s->hi || !s->req) {
        free(starts);
        th_grad_sync_free(s);
        return th_errf(err, "out of memory for %d gradient buckets", nb);
    }
    for (int k = 0; k < s->n_segs; k++)
        s->n_buckets = cut_buckets(s->seg_lo[k], s->seg_hi[k], starts, n_starts, bucket_floats, s->lo, s->hi,
                                   s->n_buckets);
    free(starts);
    for (int b = 0; b < nb; b++) s->req[b] = MPI_REQUEST_NULL;
    return 0;
}

int th_grad_sync_finite(const th_grad_sync *s)
{
    /* Summing propagates any NaN or Inf, and costs one pass. */
    float sum = 0;
    for (int j = 0; j < s->n_segs; j++)
        for (size_t k = s->seg_lo[j]; k < s->seg_hi[j]; k++) sum += s->grads[k] * 0.0f;
    return isfinite(sum);
}

static void start_bucket(th_grad_sync *s, int b)
{
    size_t lo = s->lo[b], count = s->hi[b] - lo;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, s->grads + lo, (int)count, MPI_FLOAT, MPI_SUM, s->comm, &s->req[b]);
    if (rc != MPI_SUCCESS) {
        s->req[b] = MPI_REQUEST_NULL;
        if (s->mpi_rc == MPI_SUCCESS) {
            s->mpi_rc = rc;
            s->failed_bucket = b;
        }
        return;
    }
    s->floats_reduced += count;
}

void th_grad_sync_ready(void *ctx, size_t offset, size_t count)
{
    th_grad_sync *s = ctx;
    if (s->n_buckets == 0) return;
    /* Only a range that extends the final region downwards proves everything
     * above its start final; anything else waits for finish. Reaching the
     * bottom of a segment reaches the top of the next one: the frozen range
     * between is final, as nobody writes it. */
    if (offset + count == s->ready_lo) {
        s->ready_lo = offset;
        while (s->seg_at + 1 < s->n_segs && s->ready_lo == s->seg_lo[s->seg_at]) s->ready_lo = s->seg_hi[++s->seg_at];
    }
    while (s->started < s->n_buckets && s->lo[s->started] >= s->ready_lo) start_bucket(s, s->started++);
    if (s->started > 0) {
        int done;
        MPI_Testall(s->started, s->req, &done, MPI_STATUSES_IGNORE);
    }
}

int th_grad_sync_finish(th_grad_sync *s, long total, th_err *err)
{
    if (s->n_buckets == 0) {
        s->started_early = 0;
        for (int k = 0; k < s->n_segs; k++) {
            size_t lo = s->seg_lo[k], count = s->seg_hi[k] - lo;
            if (th_dist_allreduce_mean(s->comm, s->grads + lo, count, total, err)) return -1;
            s->floats_reduced += count;
        }
        return 0;
    }
    s->started_early = s->started;
    while (s->started < s->n_buckets) start_bucket(s, s->started++);
    int rc = dist_wait(s->comm, s->n_buckets, s->req, "gradient allreduce");
    int start_rc = s->mpi_rc, b = s->failed_bucket;
    grad_sync_rearm(s);
    if (start_rc != MPI_SUCCESS)
        return th_errf(err, "MPI_Iallreduce of gradients [%zu, %zu) (bucket %d of %d) failed (code %d)", s->lo[b],
                       s->hi[b], b + 1, s->n_buckets, start_rc);
    if (rc != MPI_SUCCESS)
        return th_errf(err, "MPI_Waitall on %d gradient buckets (%zu gradients) failed (code %d)", s->n_buckets,
                       s->n_sync, rc);
    for (int k = 0; k < s->n_segs; k++) divide_sums(s->grads + s->seg_lo[k], s->seg_hi[k] - s->seg_lo[k], total);
    return 0;
}

void th_grad_sync_free(th_grad_sync *s)
{
    free(s->seg_lo);
    free(s->seg_hi);
    free(s->lo);
    free(s->hi);
    free(s->req);
    s->seg_lo = s->seg_hi = s->lo = s->hi = NULL;
    s->req = NULL;
    s->n_segs = 0;
    s->n_buckets = 0;
}

int th_dist_gather_rows(th_comm comm, int root, const float *rows, int my_rows, int width, float *out,
                        th_err *err)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int my_count = my_rows * width;
    int *counts = NULL, *displs = NULL;
    if (rank == root) {
        counts = malloc(sizeof *counts * (size_t)size);
        displs = malloc(sizeof *displs * (size_t)size);
    }
    int ok = rank != root || (counts && displs);
    /* Every rank must take part in the gather even if root failed to allocate,
     * so the failure is agreed on rather than left to hang. */
    if (th_dist_agree(comm, ok ? 0 : th_errf(err, "out of memory gathering %d-wide rows", width), err)) {
        free(counts);
        free(displs);
        return -1;
    }
    dist_gather(comm, &my_count, 1, MPI_INT, counts, root, "gather of row counts");
    if (rank == root) {
        int off = 0;
        for (int r = 0; r < size; r++) {
            displs[r] = off;
            off += counts[r];
        }
    }
    MPI_Request r;
    int rc = MPI_Igatherv(rows, my_count, MPI_FLOAT, out, counts, displs, MPI_FLOAT, root, comm, &r);
    if (rc == MPI_SUCCESS) rc = dist_wait(comm, 1, &r, "gather of predictions");
    free(counts);
    free(displs);
    if (rc != MPI_SUCCESS) return th_errf(err, "MPI_Gatherv of predictions failed (code %d)", rc);
    return 0;
}

int th_dist_gather_bytes(th_comm comm, int root, const void *mine, int bytes, void *out, th_err *err)
{
    int rc = dist_gather(comm, mine, bytes, MPI_BYTE, out, root, "gather of records");
    if (rc != MPI_SUCCESS) return th_errf(err, "MPI_Gather of %d-byte records failed (code %d)", bytes, rc);
    return 0;
}

int th_dist_agree(th_comm comm, int status, th_err *err)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    /* The lowest failing rank, or size if none failed. */
    int mine = status ? rank : size, first;
    dist_allreduce(comm, &mine, &first, 1, MPI_INT, MPI_MIN, "agreement on errors");
    if (first == size) return 0;
    char msg[sizeof err->msg];
    if (rank == first) {
        if (first == 0) snprintf(msg, sizeof msg, "%s", err ? err->msg : "failed");
        else snprintf(msg, sizeof msg, "rank %d: %.1000s", first, err ? err->msg : "failed");
    }
    dist_bcast(comm, msg, (int)sizeof msg, MPI_CHAR, first, "broadcast of an error");
    if (err) memcpy(err->msg, msg, sizeof msg);
    return -1;
}

int th_dist_min_cpus(th_comm comm)
{
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    dist_allreduce(comm, MPI_IN_PLACE, &n, 1, MPI_INT, MPI_MIN, "CPU count");
    return n;
}

/* ---- Small collectives ------------------------------------------------------ */

th_comm th_comm_world(void) { return MPI_COMM_WORLD; }

int th_dist_started(void)
{
    int up = 0;
    MPI_Initialized(&up);
    return up;
}

int th_dist_launcher_rank(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", NULL};
    for (int i = 0; vars[i]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v);
    }
    return 0;
}
th_comm th_comm_self(void) { return MPI_COMM_SELF; }

int th_dist_rank(th_comm comm)
{
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    return rank;
}

int th_dist_size(th_comm comm)
{
    int size = 1;
    MPI_Comm_size(comm, &size);
    return size;
}

int th_dist_bcast(th_comm comm, int root, void *buf, size_t bytes, th_err *err)
{
    for (size_t off = 0; off < bytes;) {
        size_t piece = bytes - off < (size_t)INT_MAX ? bytes - off : (size_t)INT_MAX;
        int rc = dist_bcast(comm, (char *)buf + off, (int)piece, MPI_BYTE, root, "broadcast");
        if (rc != MPI_SUCCESS) return th_errf(err, "MPI_Bcast of %zu bytes from rank %d failed (code %d)", bytes, root, rc);
        off += piece;
    }
    return 0;
}

void th_dist_sum(th_comm comm, double *x, int n)
{
    dist_allreduce(comm, MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, "allreduce (sum)");
}
void th_dist_max(th_comm comm, double *x, int n)
{
    dist_allreduce(comm, MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_MAX, "allreduce (max)");
}

int th_dist_any(th_comm comm, int flag)
{
    int any = flag != 0;
    dist_allreduce(comm, MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, "allreduce (flags)");
    return any;
}

void th_dist_barrier(th_comm comm)
{
    MPI_Request r;
    if (MPI_Ibarrier(comm, &r) == MPI_SUCCESS) dist_wait(comm, 1, &r, "barrier");
}

int th_dist_node_size(th_comm comm)
{
    MPI_Comm node;
    int local = 1;
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, th_dist_rank(comm), MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &local);
    MPI_Comm_free(&node);
    return local;
}

double th_dist_node0_sum(th_comm comm, double v)
{
    /* Split by node with the global rank as key, so global rank 0 is its
     * node's local root and tells its node-mates that they share its node. */
    int rank = th_dist_rank(comm), on_node0 = rank == 0;
    MPI_Comm local, node0;
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &local);
    MPI_Bcast(&on_node0, 1, MPI_INT, 0, local);
    MPI_Comm_free(&local);
    MPI_Comm_split(comm, on_node0 ? 0 : MPI_UNDEFINED, rank, &node0);
    double sum = v;
    if (node0 != MPI_COMM_NULL) {
        MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_DOUBLE, MPI_SUM, node0);
        MPI_Comm_free(&node0);
    }
    MPI_Bcast(&sum, 1, MPI_DOUBLE, 0, comm);
    return sum;
}

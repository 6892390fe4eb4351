/* provenance.c - run.json, where and how each session of a run ran (see
 * run.h): one entry per start or resume, so that a run requeued across
 * nodes, ranks or builds says which of them made which epochs.
 *
 *   {
 *     "run": "<name>",
 *     "sessions": [
 *       {"started": "2026-01-31T12:00:00Z", "version": "<git describe>",
 *        "args": ["train", "x.yaml", "--resume", "auto"], "cwd": "/home/u/thorax",
 *        "ranks": 2, "threads_per_rank": 4, "hosts": ["n01", "n02"],
 *        "resumed_at": null or {"epoch": <epochs done>, "step": <global step>},
 *        "data_fingerprint": "images=N names=<sha256> ... pixels=<sha256>"},
 *       ...
 *     ]
 *   }
 *
 * A resumed session appends its entry to the file's list; the file is
 * rewritten whole, atomically, each time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "run.h"
#include "thorax/util.h"

/* A host name as every rank sends it: fixed size for the byte gather. */
enum { HOST_MAX = 256 };

/* What closes the list of sessions in the file this writes: a new session
 * goes in before it. */
static const char LIST_END[] = "\n  ]\n}\n";

/* Rank 0: one session's object, indented as a list entry. */
static void session_json(const run *r, const char *hosts, const char *started, th_strbuf *b)
{
    const th_train_opts *o = r->opts;
    char cwd[4096];
    th_strbuf_printf(b, "    {\n      \"started\": ");
    th_json_string(b, started);
    th_strbuf_printf(b, ",\n      \"version\": ");
    th_json_string(b, th_version());
    th_strbuf_printf(b, ",\n      \"args\": [");
    for (int i = 0; i < o->argc; i++) {
        th_strbuf_printf(b, i ? ", " : "");
        th_json_string(b, o->argv[i]);
    }
    th_strbuf_printf(b, "],\n      \"cwd\": ");
    if (getcwd(cwd, sizeof cwd)) th_json_string(b, cwd);
    else th_strbuf_printf(b, "null");
    th_strbuf_printf(b, ",\n      \"ranks\": %d,\n      \"threads_per_rank\": %d,\n      \"hosts\": [", r->size,
                     r->cfg->runtime.threads_per_rank);
    for (int k = 0; k < r->size; k++) {
        th_strbuf_printf(b, k ? ", " : "");
        th_json_string(b, hosts + (size_t)k * HOST_MAX);
    }
    th_strbuf_printf(b, "],\n      \"resumed_at\": ");
    if (o->resume_from) th_strbuf_printf(b, "{\"epoch\": %d, \"step\": %ld}", r->st.epoch, r->st.step);
    else th_strbuf_printf(b, "null");
    /* The data this session trained on (th_fingerprint_text): one per
     * session, since a resume refuses any other. */
    th_strbuf_printf(b, ",\n      \"data_fingerprint\": ");
    th_json_string(b, r->st.data_fingerprint);
    th_strbuf_printf(b, "\n    }");
}

/* Rank 0: run.json with this session appended to the sessions the file
 * lists (a new list when there is no file yet). */
static int append_session(const run *r, const char *hosts, const char *started, th_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/run.json", r->dir);
    size_t len = 0;
    char *old = access(path, F_OK) == 0 ? th_read_file(path, &len, err) : NULL;
    if (!old && access(path, F_OK) == 0) return -1;
    size_t end = sizeof LIST_END - 1;
    if (old && (len < end || strcmp(old + len - end, LIST_END) || !strstr(old, "\"sessions\": [\n"))) {
        free(old);
        return th_errf(err, "%s is not a run.json as thorax writes it (a list of sessions); move it away to start a "
                            "new one", path);
    }
    th_strbuf b = {0};
    if (old) {
        th_strbuf_printf(&b, "%.*s,\n", (int)(len - end), old);
    } else {
        th_strbuf_printf(&b, "{\n  \"run\": ");
        th_json_string(&b, r->cfg->name);
        th_strbuf_printf(&b, ",\n  \"sessions\": [\n");
    }
    session_json(r, hosts, started, &b);
    th_strbuf_printf(&b, "%s", LIST_END);
    int rc = b.failed ? th_errf(err, "out of memory writing %s", path) : th_write_file_atomic(path, b.data, b.len, err);
    th_strbuf_free(&b);
    free(old);
    return rc;
}

int run_write_provenance(run *r, time_t started, th_err *err)
{
    char mine[HOST_MAX];
    memset(mine, 0, sizeof mine);
    if (gethostname(mine, sizeof mine - 1)) snprintf(mine, sizeof mine, "unknown");
    char *hosts = r->rank == 0 ? calloc((size_t)r->size, HOST_MAX) : NULL;
    int rc = th_dist_agree(r->comm, r->rank == 0 && !hosts ? th_errf(err, "out of memory gathering host names") : 0, err);
    if (!rc) rc = th_dist_gather_bytes(r->comm, 0, mine, HOST_MAX, hosts, err);
    if (!rc) {
        char when[32];
        struct tm utc;
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&started, &utc));
        int local = r->rank == 0 ? append_session(r, hosts, when, err) : 0;
        rc = th_dist_agree(r->comm, local, err);
    }
    free(hosts);
    return rc;
}

/*
 * core/streams.c - es_log_streams: the backend's own listing when it has
 * one (SQLite's table of stream versions), else every partition of the
 * type read through es_log_read_partition, so that only accepted events
 * count (Kafka).
 */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/log_backend.h"

/* Events per es_log_read_partition call. */
#define BATCH 1024

typedef struct entry {
    char *id;
    int64_t version;
    int32_t partition;
} entry;

/* The streams met so far. Sorted and made unique in place whenever it has
 * doubled since the last time, so it holds at most about twice as many
 * entries as there are streams (no hash map needed: the result is sorted
 * anyway). */
typedef struct collect {
    entry *e;
    size_t n, cap, compacted;
    int32_t partition;
    int oom;
} collect;

static int by_id(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    /* The newest version first, so that compact keeps it. */
    return c ? c : (x->version < y->version) - (x->version > y->version);
}

static void compact(collect *c)
{
    size_t w = 0;
    if (c->n == 0)
        return;
    qsort(c->e, c->n, sizeof *c->e, by_id);
    for (size_t r = 1; r < c->n; r++) {
        if (strcmp(c->e[r].id, c->e[w].id) == 0) {
            es__free(c->e[r].id);
            continue;
        }
        c->e[++w] = c->e[r];
    }
    c->n = w + 1;
    c->compacted = c->n;
}

static int on_event(const es_event *ev, void *user_data)
{
    collect *c = user_data;
    if (c->n > 0 && strcmp(c->e[c->n - 1].id, ev->stream_id) == 0) {
        c->e[c->n - 1].version = ev->version; /* the same stream again */
        return 0;
    }
    if (c->n >= 2 * c->compacted + 64)
        compact(c);
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        if (es__grow((void **)&c->e, c->cap * sizeof *c->e, cap * sizeof *c->e)) {
            c->oom = 1;
            return 1;
        }
        c->cap = cap;
    }
    if ((c->e[c->n].id = es__strdup(ev->stream_id)) == NULL) {
        c->oom = 1;
        return 1;
    }
    c->e[c->n].version = ev->version;
    c->e[c->n].partition = c->partition;
    c->n++;
    return 0;
}

static int scan(es_log *log, const char *type, es_stream_cb cb, void *user_data)
{
    collect c;
    int32_t parts = 0;
    int rc;

    memset(&c, 0, sizeof c);
    if ((rc = es_log_partition_count(log, &parts, type)) != 0)
        return rc;
    for (c.partition = 0; c.partition < parts; c.partition++) {
        int64_t offset = 0, next = 0;
        for (;;) {
            rc = es_log_read_partition(log, &next, type, c.partition, offset,
                                       BATCH, on_event, &c);
            if (c.oom) {
                rc = es__fail(&log->h, ES_ENOMEM, "listing the streams of %s: "
                              "out of memory", type);
                goto done;
            }
            if (rc != 0)
                goto done;
            if (next == offset)
                break;
            offset = next;
        }
    }
    compact(&c);
    for (size_t i = 0; i < c.n; i++) {
        es_stream_info info = { c.e[i].id, c.e[i].version, c.e[i].partition };
        if (cb(&info, user_data) != 0) {
            rc = es__fail(&log->h, ES_EUSER, "listing the streams of %s: the "
                          "callback stopped at %s", type, info.stream_id);
            goto done;
        }
    }
    rc = 0;
done:
    for (size_t i = 0; i < c.n; i++)
        es__free(c.e[i].id);
    es__free(c.e);
    return rc;
}

int es_log_streams(es_log *log, const char *aggregate_type, es_stream_cb cb,
                   void *user_data)
{
    es_error err;
    if (log == NULL)
        return ES_EINVAL;
    es__clear(&log->h);
    if (log->self == NULL)
        return es__fail(&log->h, ES_EINVAL, "%s: the log is not open", log->uri);
    if (cb == NULL || aggregate_type == NULL)
        return es__fail(&log->h, ES_EINVAL, "listing streams: no %s given",
                        cb ? "aggregate type" : "callback");
    if (es__check_name("aggregate type", aggregate_type, ES_NAME_MAX, 0, &err) != 0)
        return es__fail(&log->h, ES_EINVAL, "listing the streams of %s: %s",
                        aggregate_type, err.text);
    if (log->backend->streams)
        return log->backend->streams(log, log->self, aggregate_type, cb, user_data);
    return scan(log, aggregate_type, cb, user_data);
}

/*
 * core/log.c - the log handle: argument checks, completing the events of a
 * commit, and dispatch to the backend (core/log_backend.h).
 */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "esfold/time.h"
#include "log_backend.h"

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Whether a parameter name holds a secret's word, read as the parsers read
 * it: %-decoded ("pass%77ord" is "password"). */
static int secret_name(const char *raw, size_t len)
{
    static const char *const words[] = {"password", "secret", "token"};
    char name[256];
    size_t n = 0;
    for (size_t i = 0; i < len && n < sizeof name; i++) {
        if (raw[i] == '%' && i + 2 < len && hex_digit(raw[i + 1]) >= 0 &&
            hex_digit(raw[i + 2]) >= 0) {
            name[n++] = (char)(hex_digit(raw[i + 1]) * 16 + hex_digit(raw[i + 2]));
            i += 2;
        } else {
            name[n++] = raw[i];
        }
    }
    if (len > sizeof name)
        return 1; /* too long to read: hide it */
    for (size_t w = 0; w < sizeof words / sizeof *words; w++) {
        size_t k = strlen(words[w]);
        for (size_t i = 0; i + k <= n; i++)
            if (strncasecmp(name + i, words[w], k) == 0)
                return 1;
    }
    return 0;
}

char *es__uri_redact(const char *uri)
{
    es__buf b = {0};
    const char *p = uri, *q, *at, *scheme_end;
    if (uri == NULL)
        return NULL;
    q = strchr(uri, '?');
    scheme_end = strstr(uri, "://");
    /* user:password@host */
    at = scheme_end ? strchr(scheme_end + 3, '@') : NULL;
    if (at && (q == NULL || at < q)) {
        const char *colon = memchr(scheme_end + 3, ':', (size_t)(at - scheme_end - 3));
        if (colon) {
            es__buf_add(&b, uri, (size_t)(colon + 1 - uri));
            es__buf_adds(&b, "***");
            p = at;
        }
    }
    if (q == NULL && scheme_end == NULL && strchr(uri, '=')) {
        /* A libpq keyword/value string: "host=db password=x". */
        while (*p) {
            size_t word = strcspn(p, " \t"), sp = strspn(p + word, " \t");
            const char *eq = memchr(p, '=', word);
            if (eq && secret_name(p, (size_t)(eq - p))) {
                es__buf_add(&b, p, (size_t)(eq + 1 - p));
                es__buf_adds(&b, "***");
            } else {
                es__buf_add(&b, p, word);
            }
            es__buf_add(&b, p + word, sp);
            p += word + sp;
        }
    } else if (q == NULL) {
        es__buf_adds(&b, p);
    } else {
        es__buf_add(&b, p, (size_t)(q - p));
        while (*q) {
            const char *amp = strchr(q + 1, '&'), *end = amp ? amp : q + strlen(q);
            const char *eq = memchr(q + 1, '=', (size_t)(end - q - 1));
            if (eq && secret_name(q + 1, (size_t)(eq - q - 1))) {
                es__buf_add(&b, q, (size_t)(eq + 1 - q));
                es__buf_adds(&b, "***");
            } else {
                es__buf_add(&b, q, (size_t)(end - q));
            }
            q = end;
        }
    }
    if (b.oom || b.data == NULL) {
        es__buf_free(&b);
        return NULL;
    }
    return b.data;
}

void es__redact_message(es__handle *h, const char *raw, const char *shown)
{
    char out[ES__ERRMSG_MAX];
    size_t o = 0, rl = strlen(raw), sl = strlen(shown);
    const char *m = h->errmsg, *hit;
    if (rl == 0 || strcmp(raw, shown) == 0)
        return;
    while ((hit = strstr(m, raw)) != NULL && o < sizeof out - 1) {
        size_t n = (size_t)(hit - m);
        if (o + n + sl >= sizeof out)
            break;
        memcpy(out + o, m, n);
        memcpy(out + o + n, shown, sl);
        o += n + sl;
        m = hit + rl;
    }
    snprintf(out + o, sizeof out - o, "%s", m);
    memcpy(h->errmsg, out, sizeof out);
}

int es__log_open_backend(es_log **out, const es__log_backend *backend,
                         const char *uri)
{
    es_log *log;
    int rc;
    if (out == NULL)
        return ES_EINVAL;
    *out = NULL;
    log = es__calloc(1, sizeof *log);
    if (log == NULL)
        return ES_ENOMEM;
    es__handle_init(&log->h);
    log->backend = backend;
    /* The URI shown in messages and by es_log_uri() carries no secrets. */
    if ((log->uri = es__uri_redact(uri)) == NULL) {
        es__free(log);
        return ES_ENOMEM;
    }
    *out = log;
    rc = backend->open(log, &log->self, uri);
    if (rc != 0) {
        log->self = NULL;
        es__redact_message(&log->h, uri, log->uri);
    }
    return rc;
}

void es_log_close(es_log *log)
{
    if (log == NULL)
        return;
    if (log->self)
        log->backend->close(log->self);
    es__free(log->uri);
    es__free(log);
}

const char *es_log_uri(const es_log *log)
{
    return log ? log->uri : NULL;
}

#define CHECK_OPEN(log) \
    do { \
        if ((log) == NULL) \
            return ES_EINVAL; \
        es__clear(&(log)->h); \
        if ((log)->self == NULL) \
            return es__fail(&(log)->h, ES_EINVAL, "%s: the log is not open", \
                            (log)->uri); \
    } while (0)

/* Names must be valid UTF-8 to be appended; reads take any, so that logs
 * written before that rule still read. */
static int check_names(es_log *log, const char *what, const char *type,
                       const char *stream_id)
{
    int appending = strcmp(what, "appending to") == 0;
    es_error err;
    if (type == NULL || (stream_id == NULL && appending))
        return es__fail(&log->h, ES_EINVAL, "%s: no %s given", what,
                        type == NULL ? "aggregate type" : "stream id");
    if ((stream_id && es__check_name("stream id", stream_id, ES_STREAM_ID_MAX,
                                     appending, &err) != 0) ||
        es__check_name("aggregate type", type, ES_NAME_MAX, appending, &err) != 0)
        return es__fail(&log->h, ES_EINVAL, "%s %s/%s: %s", what, type,
                        stream_id ? stream_id : "", err.text);
    return 0;
}

typedef struct size_count {
    size_t n, limit;
} size_count;

static int count_bytes(const char *data, size_t size, void *user_data)
{
    size_count *c = user_data;
    c->n += size;
    return c->n > c->limit ? -1 : 0; /* stop as soon as it is too big */
}

/* Whether the payload and metadata of ev fit in ES_EVENT_MAX_BYTES. */
static int check_size(es_log *log, const char *type, const char *stream,
                      const es_event *ev, size_t i, size_t n)
{
    size_count c = {0, ES_EVENT_MAX_BYTES};
    if (json_dump_callback(ev->payload, count_bytes, &c, JSON_COMPACT) != 0 &&
        c.n <= c.limit)
        return es__fail(&log->h, ES_EINVAL, "appending to %s/%s: event %zu of "
                        "%zu: the payload cannot be encoded as JSON", type,
                        stream, i + 1, n);
    if (c.n <= c.limit && ev->meta &&
        json_dump_callback(ev->meta, count_bytes, &c, JSON_COMPACT) != 0 &&
        c.n <= c.limit)
        return es__fail(&log->h, ES_EINVAL, "appending to %s/%s: event %zu of "
                        "%zu: the metadata cannot be encoded as JSON", type,
                        stream, i + 1, n);
    if (c.n > c.limit)
        return es__fail(&log->h, ES_EINVAL, "appending to %s/%s: event %zu of "
                        "%zu (%s) is larger than %d bytes of JSON (payload and "
                        "metadata; ES_EVENT_MAX_BYTES, the same on every log)",
                        type, stream, i + 1, n, ev->type, ES_EVENT_MAX_BYTES);
    return 0;
}

static int cmp_idx(const void *a, const void *b, void *arg)
{
    const es_event *evs = arg;
    return strcmp(evs[*(const size_t *)a].id, evs[*(const size_t *)b].id);
}

/* Two events of one commit with the same id: sorting an index keeps a
 * large commit O(n log n). */
static int check_unique_ids(es_log *log, const char *type, const char *stream,
                            const es_event *evs, size_t n)
{
    size_t *idx;
    int rc = 0;
    if (n < 2)
        return 0;
    if ((idx = es__calloc(n, sizeof *idx)) == NULL)
        return es__fail(&log->h, ES_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    qsort_r(idx, n, sizeof *idx, cmp_idx, (void *)evs);
    for (size_t i = 1; i < n; i++)
        if (strcmp(evs[idx[i - 1]].id, evs[idx[i]].id) == 0) {
            size_t a = idx[i - 1] < idx[i] ? idx[i - 1] : idx[i];
            size_t b = idx[i - 1] < idx[i] ? idx[i] : idx[i - 1];
            rc = es__fail(&log->h, ES_EINVAL,
                          "appending to %s/%s: events %zu and %zu have the "
                          "same id %s", type, stream, a + 1, b + 1, evs[a].id);
            break;
        }
    es__free(idx);
    return rc;
}

int es_log_append(es_log *log, es_append_result *out,
                  const char *aggregate_type, const char *stream_id,
                  int64_t expected, const es_event *events, size_t n)
{
    es_event *full = NULL;
    char (*ids)[ES_UUID_BUFSZ] = NULL;
    char commit_id[ES_UUID_BUFSZ];
    es_append_result local;
    int64_t now;
    int rc;
    size_t i;

    CHECK_OPEN(log);
    if ((rc = check_names(log, "appending to", aggregate_type, stream_id)))
        return rc;
    if (events == NULL || n == 0)
        return es__fail(&log->h, ES_EINVAL,
                        "appending to %s/%s: a commit needs at least one event",
                        aggregate_type, stream_id);
    if (n > ES_COMMIT_MAX_EVENTS)
        return es__fail(&log->h, ES_EINVAL,
                        "appending to %s/%s: a commit of %zu events: a commit "
                        "has at most %d (ES_COMMIT_MAX_EVENTS, the same on every "
                        "log); split it into several appends",
                        aggregate_type, stream_id, n, ES_COMMIT_MAX_EVENTS);
    if (expected < ES_EXPECT_ANY)
        return es__fail(&log->h, ES_EINVAL,
                        "appending to %s/%s: expected version %lld is invalid "
                        "(use a version, 0 for no stream, or ES_EXPECT_ANY)",
                        aggregate_type, stream_id, (long long)expected);
    if (out == NULL)
        out = &local;
    memset(out, 0, sizeof *out);

    full = es__calloc(n, sizeof *full);
    ids = es__calloc(n, sizeof *ids);
    if (full == NULL || ids == NULL) {
        rc = es__fail(&log->h, ES_ENOMEM, "out of memory");
        goto done;
    }
    now = es_time_now_us();
    if ((rc = es_uuid_v7(commit_id)) != 0) {
        rc = es__fail(&log->h, rc, "appending to %s/%s: no random bytes for ids",
                      aggregate_type, stream_id);
        goto done;
    }
    for (i = 0; i < n; i++) {
        es_error err;
        full[i] = events[i];
        full[i].aggregate_type = aggregate_type;
        full[i].stream_id = stream_id;
        full[i].version = 0;
        full[i].position.partition = 0;
        full[i].position.offset = -1;
        if (full[i].schema == 0)
            full[i].schema = 1;
        if (full[i].occurred_us == 0)
            full[i].occurred_us = now;
        if (full[i].meta && json_is_null(full[i].meta))
            full[i].meta = NULL;
        if (full[i].id == NULL) {
            if ((rc = es_uuid_v7(ids[i])) != 0) {
                rc = es__fail(&log->h, rc, "no random bytes for event ids");
                goto done;
            }
            full[i].id = ids[i];
        }
        /* A commit id ties the events of one append together for readers
         * that apply the acceptance rule; the first event's id is unique
         * already, but an explicit one keeps retries recognisable. */
        full[i].commit_id = commit_id;
        full[i].commit_size = (int32_t)n;
        full[i].commit_index = (int32_t)i;
        if ((rc = es_event_validate(&full[i], 0, &err)) != 0) {
            rc = es__fail(&log->h, rc, "appending to %s/%s: event %zu of %zu: %s",
                          aggregate_type, stream_id, i + 1, n, err.text);
            goto done;
        }
        if ((rc = check_size(log, aggregate_type, stream_id, &full[i], i, n)))
            goto done;
    }
    if ((rc = check_unique_ids(log, aggregate_type, stream_id, full, n)) != 0)
        goto done;
    log->conflict_actual = -1;
    rc = log->backend->append(log, log->self, out, aggregate_type, stream_id,
                              expected, full, n);
    if (rc == 0)
        out->actual_version = out->first_version - 1;
    else if (rc == ES_ECONFLICT) {
        memset(out, 0, sizeof *out);
        out->actual_version = log->conflict_actual;
    }
done:
    es__free(full);
    es__free(ids);
    return rc;
}

/* ---- The rules of an append, one copy for every backend ------------------ */

int es__conflict_fail(es__handle *h, const char *what, const char *agg,
                      const char *sid, int64_t expected, int64_t actual)
{
    if (expected == ES_EXPECT_NO_STREAM)
        return es__fail(h, ES_ECONFLICT,
                        "%s %s/%s: version conflict: expected no stream, "
                        "stream is at %lld",
                        what, agg, sid, (long long)actual);
    if (actual == 0)
        return es__fail(h, ES_ECONFLICT,
                        "%s %s/%s: version conflict: expected %lld, stream "
                        "does not exist",
                        what, agg, sid, (long long)expected);
    return es__fail(h, ES_ECONFLICT,
                    "%s %s/%s: version conflict: expected %lld, stream is at "
                    "%lld",
                    what, agg, sid, (long long)expected, (long long)actual);
}

int es__append_conflict(es_log *log, const char *agg, const char *sid,
                        int64_t expected, int64_t actual)
{
    log->conflict_actual = actual;
    return es__conflict_fail(&log->h, "appending to", agg, sid, expected, actual);
}

int es__append_id_taken(es_log *log, const char *agg, const char *sid,
                        size_t i, const char *id, const es__id_place *where)
{
    return es__fail(&log->h, ES_EINVAL,
                    "appending to %s/%s: event %zu's id %s is already in the "
                    "log, in %s/%s at version %lld",
                    agg, sid, i + 1, id, where->agg_type, where->stream_id,
                    (long long)where->version);
}

static int same_stream(const es__id_place *p, const char *agg, const char *sid)
{
    return strcmp(p->agg_type, agg) == 0 && strcmp(p->stream_id, sid) == 0;
}

int es__append_check_ids(es_log *log, es_append_result *out, const char *agg,
                         const char *sid, const es_event *evs, size_t n,
                         int all_ids, es__id_lookup_fn lookup, void *ctx,
                         int *dup)
{
    es__id_place first, row;
    int rc, found;
    size_t i;

    *dup = 0;
    if ((rc = lookup(ctx, evs[0].id, &first, &found)) != 0)
        return rc;
    if (!found) {
        for (i = 1; all_ids && i < n; i++) {
            if ((rc = lookup(ctx, evs[i].id, &row, &found)) != 0)
                return rc;
            if (found)
                return es__append_id_taken(log, agg, sid, i, evs[i].id, &row);
        }
        return 0;
    }
    if (!same_stream(&first, agg, sid))
        return es__append_id_taken(log, agg, sid, 0, evs[0].id, &first);
    if (first.commit_size != (int32_t)n || first.commit_index > 0)
        return es__fail(&log->h, ES_EINVAL,
                        "appending to %s/%s: event 1's id %s is already in this "
                        "stream at version %lld, written by a commit of %lld "
                        "events, and this commit has %zu: a retry must repeat "
                        "the whole commit",
                        agg, sid, evs[0].id, (long long)first.version,
                        (long long)first.commit_size, n);
    row = first;
    for (i = 1; i < n; i++) {
        if ((rc = lookup(ctx, evs[i].id, &row, &found)) != 0)
            return rc;
        if (!found)
            return es__fail(&log->h, ES_EINVAL,
                            "appending to %s/%s: event 1's id %s is already in "
                            "this stream at version %lld but event %zu's id %s "
                            "is not: a retry must repeat the whole commit",
                            agg, sid, evs[0].id, (long long)first.version,
                            i + 1, evs[i].id);
        if (!same_stream(&row, agg, sid) ||
            row.version != first.version + (int64_t)i ||
            (row.commit_id[0] && first.commit_id[0] &&
             strcmp(row.commit_id, first.commit_id) != 0))
            return es__fail(&log->h, ES_EINVAL,
                            "appending to %s/%s: event %zu's id %s is in %s/%s "
                            "at version %lld, not where a retry of the commit "
                            "at version %lld puts it",
                            agg, sid, i + 1, evs[i].id, row.agg_type,
                            row.stream_id, (long long)row.version,
                            (long long)first.version);
    }
    out->first_version = first.version;
    out->version = first.version + (int64_t)n - 1;
    out->first = first.position;
    out->last = row.position;
    out->duplicate = 1;
    *dup = 1;
    return 0;
}

int es__log_find_id(es_log *log, es__id_place *out, int *found,
                    const char *aggregate_type, const char *stream_id,
                    const char *id)
{
    int rc;
    CHECK_OPEN(log);
    *found = 0;
    if ((rc = check_names(log, "looking up an event id in", aggregate_type,
                          stream_id)))
        return rc;
    if (log->backend->find_id == NULL)
        return es__fail(&log->h, ES_EINVAL, "%s: the %s log cannot look up "
                        "event ids (idempotent commands need it)", log->uri,
                        log->backend->name);
    memset(out, 0, sizeof *out);
    out->commit_index = -1;
    return log->backend->find_id(log, log->self, aggregate_type, stream_id, id,
                                 out, found);
}

int es_log_read_stream(es_log *log, const char *aggregate_type,
                       const char *stream_id, const es_read_options *opts,
                       es_event_cb cb, void *user_data)
{
    es_read_options o = ES_READ_OPTIONS_INIT;
    int rc;
    CHECK_OPEN(log);
    if ((rc = check_names(log, "reading", aggregate_type, stream_id)))
        return rc;
    if (stream_id == NULL || cb == NULL)
        return es__fail(&log->h, ES_EINVAL, "reading: no stream id or callback");
    if (opts) {
        if (opts->version != ES_READ_OPTIONS_VERSION)
            return es__fail(&log->h, ES_EINVAL,
                            "reading %s/%s: unknown es_read_options version %u",
                            aggregate_type, stream_id, opts->version);
        o = *opts;
    }
    if (o.from_version < 1)
        o.from_version = 1;
    if (o.to.kind != ES_RANGE_END && o.to.kind != ES_RANGE_VERSION &&
        o.to.kind != ES_RANGE_TIME)
        return es__fail(&log->h, ES_EINVAL, "reading %s/%s: unknown range kind %d",
                        aggregate_type, stream_id, (int)o.to.kind);
    return log->backend->read_stream(log, log->self, aggregate_type, stream_id,
                                     &o, cb, user_data);
}

/* es_log_read_partition_seeded, and with lean its lean form
 * (es__log_read_partition_lean) where the backend has one. */
static int read_partition(es_log *log, int64_t *next_offset,
                          const char *aggregate_type, int32_t partition,
                          int64_t from_offset, size_t max_events, int lean,
                          es_seed_fn seed, void *seed_data, es_event_cb cb,
                          void *user_data)
{
    int64_t local;
    int rc;
    CHECK_OPEN(log);
    if ((rc = check_names(log, "reading", aggregate_type, NULL)))
        return rc;
    if (cb == NULL || partition < 0 || from_offset < 0)
        return es__fail(&log->h, ES_EINVAL,
                        "reading %s partition %d from offset %lld: bad argument",
                        aggregate_type, (int)partition, (long long)from_offset);
    if (next_offset == NULL)
        next_offset = &local;
    *next_offset = from_offset;
    /* A backend whose every stored event is accepted needs no seeds. */
    if (log->backend->read_partition_seeded)
        return log->backend->read_partition_seeded(
            log, log->self, next_offset, aggregate_type, partition, from_offset,
            max_events, seed, seed_data, cb, user_data);
    return (lean && log->backend->read_partition_lean
                ? log->backend->read_partition_lean
                : log->backend->read_partition)(log, log->self, next_offset,
                                                aggregate_type, partition,
                                                from_offset, max_events, cb,
                                                user_data);
}

int es_log_read_partition_seeded(es_log *log, int64_t *next_offset,
                                 const char *aggregate_type, int32_t partition,
                                 int64_t from_offset, size_t max_events,
                                 es_seed_fn seed, void *seed_data,
                                 es_event_cb cb, void *user_data)
{
    return read_partition(log, next_offset, aggregate_type, partition,
                          from_offset, max_events, 0, seed, seed_data, cb,
                          user_data);
}

int es__log_read_partition_lean(es_log *log, int64_t *next_offset,
                                const char *aggregate_type, int32_t partition,
                                int64_t from_offset, size_t max_events,
                                es_seed_fn seed, void *seed_data,
                                es_event_cb cb, void *user_data)
{
    return read_partition(log, next_offset, aggregate_type, partition,
                          from_offset, max_events, 1, seed, seed_data, cb,
                          user_data);
}

int es__log_needs_seeds(const es_log *log)
{
    return log && log->backend && log->backend->read_partition_seeded != NULL;
}

int es_log_read_partition(es_log *log, int64_t *next_offset,
                          const char *aggregate_type, int32_t partition,
                          int64_t from_offset, size_t max_events,
                          es_event_cb cb, void *user_data)
{
    return es_log_read_partition_seeded(log, next_offset, aggregate_type,
                                        partition, from_offset, max_events, NULL,
                                        NULL, cb, user_data);
}

/* es_log_scan_partition on a backend without scan_partition: every event
 * read_partition delivers is accepted. */
typedef struct scan_all {
    es_verdict_cb cb;
    void *user_data;
} scan_all;

static int scan_all_cb(const es_event *ev, void *user_data)
{
    scan_all *s = user_data;
    return s->cb(ev, ES_VERDICT_ACCEPTED, "", s->user_data);
}

int es_log_scan_partition(es_log *log, int64_t *next_offset,
                          const char *aggregate_type, int32_t partition,
                          int64_t from_offset, size_t max_events,
                          es_verdict_cb cb, void *user_data)
{
    int64_t local;
    scan_all s;
    int rc;
    CHECK_OPEN(log);
    if ((rc = check_names(log, "scanning", aggregate_type, NULL)))
        return rc;
    if (cb == NULL || partition < 0 || from_offset < 0)
        return es__fail(&log->h, ES_EINVAL,
                        "scanning %s partition %d from offset %lld: bad argument",
                        aggregate_type, (int)partition, (long long)from_offset);
    if (next_offset == NULL)
        next_offset = &local;
    *next_offset = from_offset;
    if (log->backend->scan_partition)
        return log->backend->scan_partition(log, log->self, next_offset,
                                            aggregate_type, partition,
                                            from_offset, max_events, cb,
                                            user_data);
    s.cb = cb;
    s.user_data = user_data;
    return log->backend->read_partition(log, log->self, next_offset,
                                        aggregate_type, partition, from_offset,
                                        max_events, scan_all_cb, &s);
}

int es_log_partition_count(es_log *log, int32_t *out, const char *aggregate_type)
{
    int rc;
    CHECK_OPEN(log);
    if (out == NULL)
        return es__fail(&log->h, ES_EINVAL, "no output");
    if ((rc = check_names(log, "counting partitions of", aggregate_type, NULL)))
        return rc;
    return log->backend->partition_count(log, log->self, out, aggregate_type);
}

int es_log_head(es_log *log, int64_t *out, const char *aggregate_type,
                int32_t partition)
{
    int rc;
    CHECK_OPEN(log);
    if (out == NULL || partition < 0)
        return es__fail(&log->h, ES_EINVAL, "head: bad argument");
    if ((rc = check_names(log, "reading the head of", aggregate_type, NULL)))
        return rc;
    return log->backend->head(log, log->self, out, aggregate_type, partition);
}

int es_log_types(es_log *log, es_name_cb cb, void *user_data)
{
    CHECK_OPEN(log);
    if (cb == NULL)
        return es__fail(&log->h, ES_EINVAL, "listing types: no callback");
    return log->backend->types(log, log->self, cb, user_data);
}

int es_log_check(es_log *log, es_check_cb cb, void *user_data)
{
    CHECK_OPEN(log);
    if (cb == NULL)
        return es__fail(&log->h, ES_EINVAL, "checking: no callback");
    if (log->backend->check == NULL)
        return 0;
    return log->backend->check(log, log->self, cb, user_data);
}

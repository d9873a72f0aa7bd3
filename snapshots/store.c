/*
 * snapshots/store.c - snapshots as values (checksum, verify, make, copy)
 * and the store handle: argument checks and dispatch to the backend
 * (snapshots/store_backend.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esfold/time.h"
#include "store_backend.h"

/* ---- The checksum: CRC-32C (Castagnoli, as Kafka's record batches) ---------- */

static const uint32_t crc32c_nibble[16] = {
    0x00000000, 0x105ec76f, 0x20bd8ede, 0x30e349b1, 0x417b1dbc, 0x5125dad3,
    0x61c69362, 0x7198540d, 0x82f63b78, 0x92a8fc17, 0xa24bb5a6, 0xb21572c9,
    0xc38d26c4, 0xd3d3e1ab, 0xe330a81a, 0xf36e6f75
};

static uint32_t crc32c_add(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len--) {
        crc ^= *p++;
        crc = (crc >> 4) ^ crc32c_nibble[crc & 15];
        crc = (crc >> 4) ^ crc32c_nibble[crc & 15];
    }
    return crc;
}

static uint32_t crc32c_str(uint32_t crc, const char *s)
{
    return crc32c_add(crc32c_add(crc, s, strlen(s)), "\n", 1);
}

static uint32_t crc32c_i64(uint32_t crc, int64_t v)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld\n", (long long)v);
    return crc32c_add(crc, buf, (size_t)n);
}

int es_snapshot_checksum(char out[ES_SNAPSHOT_CHECKSUM_BUFSZ],
                         const es_snapshot *snap)
{
    uint32_t crc = 0xffffffffu;

    if (out == NULL || snap == NULL || snap->aggregate_type == NULL ||
        snap->stream_id == NULL || snap->event_id == NULL || snap->state == NULL)
        return ES_EINVAL;
    /* Every field, one a line, in a fixed order; the state (the only one
     * that may hold newlines) last. See docs/snapshots.md. */
    crc = crc32c_str(crc, "esfold-snapshot/1");
    crc = crc32c_str(crc, snap->aggregate_type);
    crc = crc32c_str(crc, snap->stream_id);
    crc = crc32c_i64(crc, snap->version);
    crc = crc32c_i64(crc, snap->position.partition);
    crc = crc32c_i64(crc, snap->position.offset);
    crc = crc32c_str(crc, snap->event_id);
    crc = crc32c_i64(crc, snap->time_us);
    crc = crc32c_i64(crc, snap->horizon_us);
    crc = crc32c_i64(crc, snap->state_schema);
    crc = crc32c_i64(crc, snap->taken_us);
    crc = crc32c_add(crc, snap->state, strlen(snap->state));
    snprintf(out, ES_SNAPSHOT_CHECKSUM_BUFSZ, "crc32c:%08x",
             (unsigned)(crc ^ 0xffffffffu));
    return 0;
}

/* ---- Checks ------------------------------------------------------------------ */

/* A name or id: non-empty, at most max bytes, no control characters. */
static int check_name(const char *what, const char *s, size_t max, es_error *err)
{
    size_t n;
    if (s == NULL || *s == '\0')
        return es__err(err, ES_EINVAL, "no %s", what);
    n = strlen(s);
    if (n > max)
        return es__err(err, ES_EINVAL, "%s is %zu bytes long, at most %zu "
                       "are allowed", what, n, max);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return es__err(err, ES_EINVAL, "%s has a control character at "
                           "byte %zu", what, i);
    return 0;
}

/* The fields of snap, without the checksum. */
static int check_fields(const es_snapshot *snap, es_error *err)
{
    int rc;
    if ((rc = check_name("aggregate type", snap->aggregate_type, ES_NAME_MAX, err)) ||
        (rc = check_name("stream id", snap->stream_id, ES_STREAM_ID_MAX, err)) ||
        (rc = check_name("event id", snap->event_id, ES_NAME_MAX, err)))
        return rc;
    if (snap->version < 1)
        return es__err(err, ES_EINVAL, "version %lld (a snapshot folds at "
                       "least one event)", (long long)snap->version);
    if (snap->state_schema < 1)
        return es__err(err, ES_EINVAL, "state schema %d", (int)snap->state_schema);
    if (snap->state == NULL || snap->state[0] == '\0')
        return es__err(err, ES_EINVAL, "no state");
    if (snap->state_size > strlen(snap->state))
        return es__err(err, ES_EINVAL, "the state holds %zu bytes, %zu after "
                       "the NUL that ends its text", snap->state_size,
                       snap->state_size - strlen(snap->state));
    if (snap->state_size && snap->state_size < strlen(snap->state))
        return es__err(err, ES_EINVAL, "state_size is %zu but the state is %zu "
                       "bytes (set state_size to 0 when changing the state)",
                       snap->state_size, strlen(snap->state));
    if (snap->horizon_us < snap->time_us)
        return es__err(err, ES_EINVAL, "horizon %lld is before the last event's "
                       "time %lld", (long long)snap->horizon_us,
                       (long long)snap->time_us);
    return 0;
}

int es_snapshot_verify(const es_snapshot *snap, es_error *err)
{
    char sum[ES_SNAPSHOT_CHECKSUM_BUFSZ];
    es_error local;

    if (err == NULL)
        err = &local;
    if (snap == NULL)
        return es__err(err, ES_EINVAL, "no snapshot");
    if (snap->checksum == NULL || snap->checksum[0] == '\0')
        return es__err(err, ES_ECORRUPT, "no checksum (not a snapshot esfold "
                       "saved, or a damaged one)");
    if (check_fields(snap, err) != 0)
        return ES_ECORRUPT;
    es_snapshot_checksum(sum, snap);
    if (strcmp(sum, snap->checksum) != 0)
        return es__err(err, ES_ECORRUPT, "checksum mismatch: stored %.40s, "
                       "computed %s", snap->checksum, sum);
    return 0;
}

/* ---- Values -------------------------------------------------------------------- */

void es_snapshot_free(es_snapshot *snap)
{
    es__free(snap);
}

es_snapshot *es__snapshot_dup(const es_snapshot *s)
{
    const char *strs[6];
    const char **fields[6];
    size_t len[6], total = sizeof *s;
    es_snapshot *d;
    char *p;

    strs[0] = s->aggregate_type;
    strs[1] = s->stream_id;
    strs[2] = s->event_id;
    strs[3] = s->state;
    strs[4] = s->checksum;
    strs[5] = NULL;
    for (int i = 0; i < 5; i++) {
        len[i] = strs[i] ? strlen(strs[i]) + 1 : 0;
        total += len[i];
    }
    if ((d = es__malloc(total)) == NULL)
        return NULL;
    *d = *s;
    fields[0] = &d->aggregate_type;
    fields[1] = &d->stream_id;
    fields[2] = &d->event_id;
    fields[3] = &d->state;
    fields[4] = &d->checksum;
    p = (char *)(d + 1);
    for (int i = 0; i < 5; i++) {
        if (strs[i] == NULL) {
            *fields[i] = NULL;
            continue;
        }
        memcpy(p, strs[i], len[i]);
        *fields[i] = p;
        p += len[i];
    }
    return d;
}

int es_snapshot_make(es_snapshot **out, const es_aggregate *agg,
                     const char *last_event_id, int64_t horizon_us,
                     es_error *err)
{
    const es_aggregate_type *type;
    es_snapshot s;
    json_t *state;
    char *text;
    int rc;

    if (out == NULL)
        return es__err(err, ES_EINVAL, "no output");
    *out = NULL;
    if (agg == NULL)
        return es__err(err, ES_EINVAL, "no aggregate");
    type = es_aggregate_type_of(agg);
    if (type->encode == NULL)
        return es__err(err, ES_EINVAL, "%s has no encode function", type->name);
    memset(&s, 0, sizeof s);
    s.aggregate_type = type->name;
    s.stream_id = es_aggregate_stream_id(agg);
    s.version = es_aggregate_version(agg);
    s.position = es_aggregate_position(agg);
    s.event_id = last_event_id;
    s.time_us = es_aggregate_time_us(agg);
    s.horizon_us = horizon_us < s.time_us ? s.time_us : horizon_us;
    s.state_schema = type->state_schema;
    s.taken_us = es_time_now_us();
    if (s.version < 1)
        return es__err(err, ES_EINVAL, "%s/%s has no events to snapshot",
                       type->name, s.stream_id);
    if ((state = type->encode(es_aggregate_state(agg))) == NULL)
        return es__err(err, ES_EINVAL, "%s/%s: encode failed at version %lld",
                       type->name, s.stream_id, (long long)s.version);
    /* Sorted and compact: the same state is the same text. */
    text = json_dumps(state, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(state);
    if (text == NULL)
        return es__err(err, ES_ENOMEM, "%s/%s: encoding the state as JSON "
                       "failed", type->name, s.stream_id);
    s.state = text;
    if ((rc = check_fields(&s, err)) != 0) {
        es__free(text); /* jansson allocates through esfold's hook */
        return rc;
    }
    s.checksum = NULL;
    *out = es__snapshot_dup(&s);
    es__free(text);
    return *out ? 0 : es__err(err, ES_ENOMEM, "out of memory");
}

/* ---- The store handle --------------------------------------------------------- */

int es__snapshot_store_open_backend(es_snapshot_store **out,
                                    const es__snapshot_backend *backend,
                                    const char *uri)
{
    es_snapshot_store *s;
    int rc;

    if (out == NULL)
        return ES_EINVAL;
    *out = NULL;
    if ((s = es__calloc(1, sizeof *s)) == NULL)
        return ES_ENOMEM;
    es__handle_init(&s->h);
    s->backend = backend;
    /* Only the redacted URI is kept: for messages and es_snapshot_store_uri. */
    if ((s->name = es__uri_redact(uri)) == NULL) {
        es__free(s);
        return ES_ENOMEM;
    }
    *out = s;
    rc = backend->open(s, &s->self, uri);
    if (rc != 0) {
        s->self = NULL;
        es__redact_message(&s->h, uri, s->name);
    }
    return rc;
}

int es_snapshot_default_uri(char **out, const char *log_uri)
{
    const char *env = getenv("ESFOLD_SNAPSHOTS");
    if (out == NULL)
        return ES_EINVAL;
    *out = NULL;
    if (env && *env)
        *out = es__strdup(env);
    else if (log_uri == NULL)
        return ES_EINVAL;
    else if (strncmp(log_uri, "sqlite:", 7) == 0)
        *out = es__strndup(log_uri, strcspn(log_uri, "?"));
    else if (strncmp(log_uri, "kafka://", 8) == 0)
        *out = es__strdup(log_uri);
    else
        return ES_ENOTFOUND;
    return *out ? 0 : ES_ENOMEM;
}

void es_snapshot_store_close(es_snapshot_store *store)
{
    if (store == NULL)
        return;
    if (store->self)
        store->backend->close(store->self);
    es__free(store->name);
    es__free(store);
}

const char *es_snapshot_store_uri(const es_snapshot_store *store)
{
    return store ? store->name : NULL;
}

const char *es__snapshot_store_name(const es_snapshot_store *store)
{
    return store ? store->name : "";
}

#define CHECK_OPEN(s) \
    do { \
        if ((s) == NULL) \
            return ES_EINVAL; \
        es__clear(&(s)->h); \
        if ((s)->self == NULL) \
            return es__fail(&(s)->h, ES_EINVAL, "%s: the snapshot store is " \
                            "not open", (s)->name); \
    } while (0)

int es_snapshot_save(es_snapshot_store *store, const es_snapshot *snap)
{
    char sum[ES_SNAPSHOT_CHECKSUM_BUFSZ];
    es_snapshot s;
    es_error err;
    int rc;

    CHECK_OPEN(store);
    if (snap == NULL)
        return es__fail(&store->h, ES_EINVAL, "%s: saving: no snapshot",
                        store->name);
    s = *snap;
    if (s.taken_us == 0)
        s.taken_us = es_time_now_us();
    if ((rc = check_fields(&s, &err)) != 0)
        return es__fail(&store->h, rc, "%s: saving a snapshot of %s/%s: %s",
                        store->name, s.aggregate_type ? s.aggregate_type : "?",
                        s.stream_id ? s.stream_id : "?", err.text);
    if (s.checksum == NULL) {
        es_snapshot_checksum(sum, &s);
        s.checksum = sum;
    }
    return store->backend->save(store, store->self, &s);
}

static int bounds(es_snapshot_store *store, const char *type,
                  const char *stream_id, es_range bound, int64_t *max_version,
                  int64_t *max_horizon)
{
    es_error err;
    int rc;
    if ((rc = check_name("aggregate type", type, ES_NAME_MAX, &err)) != 0 ||
        (rc = check_name("stream id", stream_id, ES_STREAM_ID_MAX, &err)) != 0)
        return es__fail(&store->h, rc, "%s: %s", store->name, err.text);
    *max_version = INT64_MAX;
    *max_horizon = INT64_MAX;
    switch (bound.kind) {
    case ES_RANGE_END:
        return 0;
    case ES_RANGE_VERSION:
        *max_version = bound.version;
        return 0;
    case ES_RANGE_TIME:
        *max_horizon = bound.time_us;
        return 0;
    }
    return es__fail(&store->h, ES_EINVAL, "%s: unknown range kind %d",
                    store->name, (int)bound.kind);
}

int es_snapshot_list(es_snapshot_store *store, const char *aggregate_type,
                     const char *stream_id, es_range bound, es_snapshot_cb cb,
                     void *user_data)
{
    int64_t max_version, max_horizon;
    int rc;

    CHECK_OPEN(store);
    if (cb == NULL)
        return es__fail(&store->h, ES_EINVAL, "%s: listing: no callback",
                        store->name);
    if ((rc = bounds(store, aggregate_type, stream_id, bound, &max_version,
                     &max_horizon)) != 0)
        return rc;
    return store->backend->list(store, store->self, aggregate_type, stream_id,
                                max_version, max_horizon, 0, cb, user_data);
}

static int keep_first(const es_snapshot *snap, void *user_data)
{
    es_snapshot **out = user_data;
    *out = es__snapshot_dup(snap);
    return 1;
}

int es_snapshot_load(es_snapshot_store *store, es_snapshot **out,
                     const char *aggregate_type, const char *stream_id,
                     es_range bound)
{
    int64_t max_version, max_horizon;
    es_snapshot *found = NULL;
    int rc;

    CHECK_OPEN(store);
    if (out == NULL)
        return es__fail(&store->h, ES_EINVAL, "%s: loading: no output",
                        store->name);
    *out = NULL;
    if ((rc = bounds(store, aggregate_type, stream_id, bound, &max_version,
                     &max_horizon)) != 0)
        return rc;
    rc = store->backend->list(store, store->self, aggregate_type, stream_id,
                              max_version, max_horizon, 1, keep_first, &found);
    if (rc == ES_EUSER && found == NULL)
        return es__fail(&store->h, ES_ENOMEM, "out of memory");
    if (rc == ES_EUSER) {
        *out = found;
        return 0;
    }
    if (rc != 0)
        return rc;
    return es__fail(&store->h, ES_ENOTFOUND, "%s: no snapshot of %s/%s at or "
                    "below the bound", store->name, aggregate_type, stream_id);
}

int es_snapshot_prune(es_snapshot_store *store, int64_t *removed,
                      const char *aggregate_type, const char *stream_id,
                      int64_t keep)
{
    int64_t local;
    es_error err;
    int rc;

    CHECK_OPEN(store);
    if (removed == NULL)
        removed = &local;
    *removed = 0;
    if (keep < 0)
        return es__fail(&store->h, ES_EINVAL, "%s: pruning: keep %lld is "
                        "negative", store->name, (long long)keep);
    if (stream_id && aggregate_type == NULL)
        return es__fail(&store->h, ES_EINVAL, "%s: pruning stream %s: which "
                        "aggregate type?", store->name, stream_id);
    if ((aggregate_type &&
         (rc = check_name("aggregate type", aggregate_type, ES_NAME_MAX, &err))) ||
        (stream_id &&
         (rc = check_name("stream id", stream_id, ES_STREAM_ID_MAX, &err))))
        return es__fail(&store->h, rc, "%s: pruning: %s", store->name, err.text);
    return store->backend->prune(store, store->self, removed, aggregate_type,
                                 stream_id, keep);
}

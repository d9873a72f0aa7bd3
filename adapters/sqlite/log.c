/*
 * adapters/sqlite/log.c - the event log in a SQLite file.
 *
 * Tables (schema component "log", see log_migrations):
 *   es_events      one row per event; its log position (agg_type,
 *                  partition_no, log_offset) is the key, and a unique index
 *                  on (agg_type, stream_id, version) serves stream reads
 *   es_streams     the current version of every stream: the conflict check
 *                  is one key lookup
 *   es_partitions  the next offset of every (agg_type, partition_no) that
 *                  has events; also the list of aggregate types
 * es_meta "log.partitions" holds the partition count, fixed when the file
 * is created. Offsets are dense from 0 per (agg_type, partition).
 *
 * Every append is one BEGIN IMMEDIATE transaction: it takes the write lock
 * before reading the stream's version, so the check and the insert see the
 * same state even with other handles or processes on the file (they wait up
 * to ES__SQLITE_BUSY_TIMEOUT_MS for the lock).
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "esfold/partition.h"
#include "sqlite.h"

#define DEFAULT_PARTITIONS 4
#define MAX_PARTITIONS 100000
#define PARTITIONS_KEY "log.partitions"

/* Version i + 1 of the log's tables is log_migrations[i]. Append only. */
static const char *const log_migrations[] = {
    "CREATE TABLE es_events ("
    " agg_type       TEXT    NOT NULL,"
    " partition_no   INTEGER NOT NULL,"
    " log_offset     INTEGER NOT NULL,"
    " stream_id      TEXT    NOT NULL,"
    " version        INTEGER NOT NULL,"
    " event_type     TEXT    NOT NULL,"
    " occurred_us    INTEGER NOT NULL,"
    " payload_schema INTEGER NOT NULL,"
    " event_id       TEXT    NOT NULL UNIQUE,"
    " correlation_id TEXT,"
    " causation_id   TEXT,"
    " payload        TEXT    NOT NULL,"
    " meta           TEXT,"
    " commit_id      TEXT    NOT NULL,"
    " commit_size    INTEGER NOT NULL,"
    " PRIMARY KEY (agg_type, partition_no, log_offset));"
    "CREATE UNIQUE INDEX es_events_stream"
    " ON es_events (agg_type, stream_id, version);"
    "CREATE TABLE es_streams ("
    " agg_type  TEXT    NOT NULL,"
    " stream_id TEXT    NOT NULL,"
    " version   INTEGER NOT NULL,"
    " PRIMARY KEY (agg_type, stream_id)) WITHOUT ROWID;"
    "CREATE TABLE es_partitions ("
    " agg_type     TEXT    NOT NULL,"
    " partition_no INTEGER NOT NULL,"
    " next_offset  INTEGER NOT NULL,"
    " PRIMARY KEY (agg_type, partition_no)) WITHOUT ROWID;",
};

/* The columns every read delivers, in the order row_to_event expects. */
#define EVENT_COLUMNS \
    "stream_id, version, event_type, occurred_us, payload_schema, event_id, " \
    "correlation_id, causation_id, payload, meta, commit_id, commit_size, " \
    "partition_no, log_offset"

enum {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_FIND_ID,
    S_STREAM_VERSION,
    S_HEAD,
    S_INSERT,
    S_SET_STREAM,
    S_SET_HEAD,
    S_READ_STREAM,
    S_READ_PARTITION,
    S_READ_PARTITION_LEAN,
    S_TYPES,
    S_STREAMS,
    S__COUNT
};

static const char *const stmt_sql[S__COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_FIND_ID] = "SELECT agg_type, stream_id, version, commit_id, commit_size,"
                  " partition_no, log_offset FROM es_events WHERE event_id = ?1",
    [S_STREAM_VERSION] = "SELECT version FROM es_streams"
                         " WHERE agg_type = ?1 AND stream_id = ?2",
    [S_HEAD] = "SELECT next_offset FROM es_partitions"
               " WHERE agg_type = ?1 AND partition_no = ?2",
    [S_INSERT] = "INSERT INTO es_events (agg_type, partition_no, log_offset,"
                 " stream_id, version, event_type, occurred_us, payload_schema,"
                 " event_id, correlation_id, causation_id, payload, meta,"
                 " commit_id, commit_size)"
                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
                 " ?13, ?14, ?15)",
    [S_SET_STREAM] = "INSERT INTO es_streams (agg_type, stream_id, version)"
                     " VALUES (?1, ?2, ?3) ON CONFLICT (agg_type, stream_id)"
                     " DO UPDATE SET version = excluded.version",
    [S_SET_HEAD] = "INSERT INTO es_partitions (agg_type, partition_no,"
                   " next_offset) VALUES (?1, ?2, ?3)"
                   " ON CONFLICT (agg_type, partition_no)"
                   " DO UPDATE SET next_offset = excluded.next_offset",
    [S_READ_STREAM] = "SELECT " EVENT_COLUMNS " FROM es_events"
                      " WHERE agg_type = ?1 AND stream_id = ?2"
                      " AND version >= ?3 AND version <= ?4 ORDER BY version",
    /* The same columns, the text fields a lean reader does not use
     * (es__log_read_partition_lean) as NULL: not read, not copied. */
    [S_READ_PARTITION_LEAN] = "SELECT stream_id, version, event_type,"
                              " occurred_us, payload_schema, NULL, NULL, NULL,"
                              " payload, NULL, NULL, commit_size,"
                              " partition_no, log_offset FROM es_events"
                              " WHERE agg_type = ?1 AND partition_no = ?2"
                              " AND log_offset >= ?3 ORDER BY log_offset LIMIT ?4",
    [S_READ_PARTITION] = "SELECT " EVENT_COLUMNS " FROM es_events"
                         " WHERE agg_type = ?1 AND partition_no = ?2"
                         " AND log_offset >= ?3 ORDER BY log_offset LIMIT ?4",
    [S_TYPES] = "SELECT DISTINCT agg_type FROM es_partitions ORDER BY agg_type",
    [S_STREAMS] = "SELECT stream_id, version FROM es_streams WHERE agg_type = ?1"
                  " AND version > 0 ORDER BY stream_id",
};

typedef struct sqlite_log {
    sqlite3 *db;
    char *ctx; /* "sqlite:PATH": how messages name this log */
    int32_t partitions;
    /* Prepared once at open, reset after each use. in_use marks a read
     * statement stepping while user callbacks run: a callback that reads
     * through the same handle gets a statement of its own. */
    sqlite3_stmt *st[S__COUNT];
    int in_use[S__COUNT];
    /* Reused encoding buffers of the append path. */
    es__buf payload, meta;
} sqlite_log;

/* ---- small helpers ------------------------------------------------------- */

static int acquire(es_log *log, sqlite_log *s, int which, sqlite3_stmt **out)
{
    int rc;
    if (!s->in_use[which]) {
        s->in_use[which] = 1;
        *out = s->st[which];
        return 0;
    }
    rc = sqlite3_prepare_v2(s->db, stmt_sql[which], -1, out, NULL);
    if (rc != SQLITE_OK)
        return es__sqlite_fail(&log->h, s->db, rc, "%s: preparing a read",
                               s->ctx);
    return 0;
}

static void release(sqlite_log *s, int which, sqlite3_stmt *st)
{
    if (st == NULL)
        return;
    if (st == s->st[which]) {
        sqlite3_reset(st);
        s->in_use[which] = 0;
    } else {
        sqlite3_finalize(st);
    }
}

/* Steps a statement that returns no rows (BEGIN, COMMIT, an INSERT). */
static int run(sqlite_log *s, int which)
{
    int rc = sqlite3_step(s->st[which]);
    sqlite3_reset(s->st[which]);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Binds a string borrowed for the statement's run; NULL binds NULL. */
static int bind_str(sqlite3_stmt *st, int i, const char *v)
{
    return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC)
             : sqlite3_bind_null(st, i);
}

static void copy_col(char *dst, size_t size, sqlite3_stmt *st, int col)
{
    const char *v = (const char *)sqlite3_column_text(st, col);
    snprintf(dst, size, "%s", v ? v : "");
}

/* ---- append -------------------------------------------------------------- */

static int find_id(es_log *log, sqlite_log *s, const char *id,
                   es__id_place *row, int *found)
{
    sqlite3_stmt *st = s->st[S_FIND_ID];
    int rc;

    *found = 0;
    bind_str(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        copy_col(row->agg_type, sizeof row->agg_type, st, 0);
        copy_col(row->stream_id, sizeof row->stream_id, st, 1);
        row->version = sqlite3_column_int64(st, 2);
        copy_col(row->commit_id, sizeof row->commit_id, st, 3);
        row->commit_size = (int32_t)sqlite3_column_int64(st, 4);
        row->commit_index = -1;
        row->position.partition = (int32_t)sqlite3_column_int64(st, 5);
        row->position.offset = sqlite3_column_int64(st, 6);
        *found = 1;
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = 0;
    } else {
        rc = es__sqlite_fail(&log->h, s->db, rc, "%s: looking up event id %s",
                             s->ctx, id);
    }
    sqlite3_reset(st);
    return rc;
}

typedef struct lookup_ctx {
    es_log *log;
    sqlite_log *s;
} lookup_ctx;

static int lookup_id(void *ctx, const char *id, es__id_place *out, int *found)
{
    lookup_ctx *c = ctx;
    return find_id(c->log, c->s, id, out, found);
}

static int sqlite_find_id(es_log *log, void *self, const char *agg,
                          const char *sid, const char *id, es__id_place *out,
                          int *found)
{
    return find_id(log, self, id, out, found);
}

/*
 * One integer from S_STREAM_VERSION (key2 a stream id) or S_HEAD (key2 NULL,
 * key2_int a partition); absent = 0. Returns SQLITE_OK or SQLite's code,
 * with its message still on the connection for the caller to report.
 */
static int lookup_i64(sqlite_log *s, int which, const char *key1,
                      const char *key2, int64_t key2_int, int64_t *out)
{
    sqlite3_stmt *st = s->st[which];
    int rc;

    *out = 0;
    bind_str(st, 1, key1);
    if (key2)
        bind_str(st, 2, key2);
    else
        sqlite3_bind_int64(st, 2, key2_int);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    return rc;
}

static int dump_to_buf(const char *data, size_t size, void *user_data)
{
    es__buf *b = user_data;
    es__buf_add(b, data, size);
    return b->oom ? -1 : 0;
}

/* Encodes json (an object) into b, replacing its content. */
static int encode(es_log *log, es__buf *b, const json_t *json, const char *agg,
                  const char *sid, size_t i, const char *field)
{
    b->len = 0;
    b->oom = 0;
    if (json_dump_callback(json, dump_to_buf, b, JSON_COMPACT) != 0 ||
        b->data == NULL)
        return b->oom ? es__fail(&log->h, ES_ENOMEM, "out of memory")
                      : es__fail(&log->h, ES_EINVAL,
                                 "appending to %s/%s: event %zu: the %s cannot "
                                 "be encoded as a JSON object",
                                 agg, sid, i + 1, field);
    return 0;
}

static int insert_event(es_log *log, sqlite_log *s, const char *agg,
                        const char *sid, int32_t part, int64_t offset,
                        int64_t version, const es_event *ev, size_t i)
{
    sqlite3_stmt *st = s->st[S_INSERT];
    int rc, step;

    if ((rc = encode(log, &s->payload, ev->payload, agg, sid, i, "payload")))
        return rc;
    if (ev->meta && (rc = encode(log, &s->meta, ev->meta, agg, sid, i, "meta")))
        return rc;
    bind_str(st, 1, agg);
    sqlite3_bind_int64(st, 2, part);
    sqlite3_bind_int64(st, 3, offset);
    bind_str(st, 4, sid);
    sqlite3_bind_int64(st, 5, version);
    bind_str(st, 6, ev->type);
    sqlite3_bind_int64(st, 7, ev->occurred_us);
    sqlite3_bind_int64(st, 8, ev->schema);
    bind_str(st, 9, ev->id);
    bind_str(st, 10, ev->correlation_id);
    bind_str(st, 11, ev->causation_id);
    sqlite3_bind_text64(st, 12, s->payload.data, s->payload.len, SQLITE_STATIC,
                        SQLITE_UTF8);
    if (ev->meta)
        sqlite3_bind_text64(st, 13, s->meta.data, s->meta.len, SQLITE_STATIC,
                            SQLITE_UTF8);
    else
        sqlite3_bind_null(st, 13);
    bind_str(st, 14, ev->commit_id);
    sqlite3_bind_int64(st, 15, ev->commit_size);
    step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        sqlite3_reset(st);
        return 0;
    }
    /* Keep SQLite's words before the next call replaces them. */
    rc = es__sqlite_fail(&log->h, s->db, step,
                         "%s: appending to %s/%s: inserting event %zu (version "
                         "%lld)",
                         s->ctx, agg, sid, i + 1, (long long)version);
    sqlite3_reset(st);
    if ((step & 0xff) == SQLITE_CONSTRAINT) {
        /* Most likely a reused event id: say where it lives. Anything else
         * means es_streams/es_partitions disagree with es_events. */
        es__id_place row;
        int found;
        if (find_id(log, s, ev->id, &row, &found) == 0 && found)
            return es__append_id_taken(log, agg, sid, i, ev->id, &row);
        rc = ES_ECORRUPT;
    }
    return rc;
}

static int sqlite_append(es_log *log, void *self, es_append_result *out,
                         const char *agg, const char *sid, int64_t expected,
                         const es_event *evs, size_t n)
{
    sqlite_log *s = self;
    int32_t part = es_partition_for(sid, strlen(sid), s->partitions);
    int64_t cur, head;
    lookup_ctx lc = {log, s};
    int rc, dup;
    size_t i;

    if ((rc = run(s, S_BEGIN)) != SQLITE_OK)
        return es__sqlite_fail(&log->h, s->db, rc,
                               "%s: appending to %s/%s: taking the write lock",
                               s->ctx, agg, sid);

    /* Idempotency first: a retry of a commit that succeeded must not turn
     * into a version conflict. */
    if ((rc = es__append_check_ids(log, out, agg, sid, evs, n, 0, lookup_id,
                                   &lc, &dup)) != 0 || dup)
        goto done; /* nothing to write either way */

    if ((rc = lookup_i64(s, S_STREAM_VERSION, agg, sid, 0, &cur)) != SQLITE_OK) {
        rc = es__sqlite_fail(&log->h, s->db, rc,
                             "%s: appending to %s/%s: reading its version",
                             s->ctx, agg, sid);
        goto done;
    }
    if (expected != ES_EXPECT_ANY && expected != cur) {
        rc = es__append_conflict(log, agg, sid, expected, cur);
        goto done;
    }

    if ((rc = lookup_i64(s, S_HEAD, agg, NULL, part, &head)) != SQLITE_OK) {
        rc = es__sqlite_fail(&log->h, s->db, rc,
                             "%s: appending to %s/%s: reading the head of "
                             "partition %d",
                             s->ctx, agg, sid, (int)part);
        goto done;
    }
    for (i = 0; i < n; i++)
        if ((rc = insert_event(log, s, agg, sid, part, head + (int64_t)i,
                               cur + 1 + (int64_t)i, &evs[i], i)) != 0)
            goto done;

    bind_str(s->st[S_SET_STREAM], 1, agg);
    bind_str(s->st[S_SET_STREAM], 2, sid);
    sqlite3_bind_int64(s->st[S_SET_STREAM], 3, cur + (int64_t)n);
    bind_str(s->st[S_SET_HEAD], 1, agg);
    sqlite3_bind_int64(s->st[S_SET_HEAD], 2, part);
    sqlite3_bind_int64(s->st[S_SET_HEAD], 3, head + (int64_t)n);
    if ((rc = run(s, S_SET_STREAM)) != SQLITE_OK ||
        (rc = run(s, S_SET_HEAD)) != SQLITE_OK ||
        (rc = run(s, S_COMMIT)) != SQLITE_OK) {
        rc = es__sqlite_fail(&log->h, s->db, rc, "%s: appending to %s/%s",
                             s->ctx, agg, sid);
        goto done;
    }
    out->first_version = cur + 1;
    out->version = cur + (int64_t)n;
    out->first.partition = part;
    out->first.offset = head;
    out->last.partition = part;
    out->last.offset = head + (int64_t)n - 1;
    out->duplicate = 0;
done:
    /* SQLite may have rolled back by itself (I/O error, out of memory). */
    if (!sqlite3_get_autocommit(s->db))
        run(s, S_ROLLBACK);
    return rc;
}

/* ---- reads --------------------------------------------------------------- */

/* Parses a stored JSON object column; NULL column -> *out NULL. */
static int parse_json(es_log *log, sqlite_log *s, sqlite3_stmt *st, int col,
                      int optional, const char *agg, const es_event *ev,
                      const char *field, json_t **out)
{
    const char *text = (const char *)sqlite3_column_text(st, col);
    json_error_t jerr;

    *out = NULL;
    if (text == NULL) {
        if (optional)
            return 0;
        return es__fail(&log->h, ES_ECORRUPT,
                        "%s: reading %s/%s: event %s at version %lld: the %s "
                        "is NULL",
                        s->ctx, agg, ev->stream_id, ev->type,
                        (long long)ev->version, field);
    }
    *out = json_loadb(text, (size_t)sqlite3_column_bytes(st, col), 0, &jerr);
    if (*out == NULL)
        return es__fail(&log->h, ES_ECORRUPT,
                        "%s: reading %s/%s: event %s at version %lld: the %s is "
                        "not valid JSON: %s (line %d, column %d)",
                        s->ctx, agg, ev->stream_id, ev->type,
                        (long long)ev->version, field, jerr.text, jerr.line,
                        jerr.column);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return es__fail(&log->h, ES_ECORRUPT,
                        "%s: reading %s/%s: event %s at version %lld: the %s is "
                        "not a JSON object",
                        s->ctx, agg, ev->stream_id, ev->type,
                        (long long)ev->version, field);
    }
    return 0;
}

/*
 * Fills ev from a row of EVENT_COLUMNS. Strings point into the row (valid
 * until the statement steps again); ev->payload and ev->meta are new
 * references the caller drops (also on failure: they are NULL then).
 */
static int row_to_event(es_log *log, sqlite_log *s, sqlite3_stmt *st,
                        const char *agg, int lean, es_event *ev)
{
    int rc;

    memset(ev, 0, sizeof *ev);
    ev->aggregate_type = agg;
    ev->stream_id = (const char *)sqlite3_column_text(st, 0);
    ev->version = sqlite3_column_int64(st, 1);
    ev->type = (const char *)sqlite3_column_text(st, 2);
    ev->occurred_us = sqlite3_column_int64(st, 3);
    ev->schema = (int32_t)sqlite3_column_int64(st, 4);
    ev->id = (const char *)sqlite3_column_text(st, 5);
    ev->correlation_id = (const char *)sqlite3_column_text(st, 6);
    ev->causation_id = (const char *)sqlite3_column_text(st, 7);
    ev->commit_id = (const char *)sqlite3_column_text(st, 10);
    ev->commit_size = (int32_t)sqlite3_column_int64(st, 11);
    ev->position.partition = (int32_t)sqlite3_column_int64(st, 12);
    ev->position.offset = sqlite3_column_int64(st, 13);
    /* NOT NULL columns; a NULL here means the file was edited by hand, and
     * callbacks rely on these being strings. */
    if (!ev->stream_id || !ev->type || (!lean && (!ev->id || !ev->commit_id)))
        return es__fail(&log->h, ES_ECORRUPT,
                        "%s: reading %s: the event at partition %d offset %lld "
                        "has a NULL stream id, type, id or commit id",
                        s->ctx, agg, (int)ev->position.partition,
                        (long long)ev->position.offset);
    if ((rc = parse_json(log, s, st, 8, 0, agg, ev, "payload", &ev->payload)))
        return rc;
    if ((rc = parse_json(log, s, st, 9, 1, agg, ev, "meta", &ev->meta))) {
        json_decref(ev->payload);
        ev->payload = NULL;
        return rc;
    }
    return 0;
}

static int sqlite_read_stream(es_log *log, void *self, const char *agg,
                              const char *sid, const es_read_options *o,
                              es_event_cb cb, void *user_data)
{
    sqlite_log *s = self;
    sqlite3_stmt *st = NULL;
    int64_t expect = o->from_version < 1 ? 1 : o->from_version;
    int rc, stop;

    if ((rc = acquire(log, s, S_READ_STREAM, &st)) != 0)
        return rc;
    bind_str(st, 1, agg);
    bind_str(st, 2, sid);
    sqlite3_bind_int64(st, 3, expect);
    sqlite3_bind_int64(st, 4,
                       o->to.kind == ES_RANGE_VERSION ? o->to.version : INT64_MAX);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        es_event ev;
        int64_t version = sqlite3_column_int64(st, 1);
        /* Versions are dense from 1: a gap is damage, a missing start a
         * truncated stream, and folding past either would be wrong. */
        if (version != expect) {
            rc = es__fail(&log->h, expect == 1 ? ES_ETRUNCATED : ES_ECORRUPT,
                          "%s: reading %s/%s: expected version %lld, found %lld",
                          s->ctx, agg, sid, (long long)expect,
                          (long long)version);
            goto done;
        }
        if ((rc = row_to_event(log, s, st, agg, 0, &ev)) != 0)
            goto done;
        /* As of T is a prefix in version order: the first later event ends
         * it, even if a later one has an earlier time. */
        if (o->to.kind == ES_RANGE_TIME && ev.occurred_us > o->to.time_us) {
            json_decref(ev.payload);
            json_decref(ev.meta);
            rc = SQLITE_DONE;
            break;
        }
        stop = cb(&ev, user_data);
        json_decref(ev.payload);
        json_decref(ev.meta);
        if (stop) {
            rc = es__fail(&log->h, ES_EUSER,
                          "reading %s/%s: the callback stopped at version %lld",
                          agg, sid, (long long)expect);
            goto done;
        }
        expect++;
    }
    if (rc != SQLITE_DONE) {
        rc = es__sqlite_fail(&log->h, s->db, rc, "%s: reading %s/%s", s->ctx,
                             agg, sid);
        goto done;
    }
    rc = 0;
done:
    release(s, S_READ_STREAM, st);
    return rc;
}

static int check_partition(es_log *log, sqlite_log *s, const char *what,
                           const char *agg, int32_t partition)
{
    if (partition < 0 || partition >= s->partitions)
        return es__fail(&log->h, ES_EINVAL,
                        "%s: %s %s partition %d: the log has %d partitions "
                        "(0 to %d)",
                        s->ctx, what, agg, (int)partition, (int)s->partitions,
                        (int)s->partitions - 1);
    return 0;
}

/* On ES_EUSER, *next_offset is the offset of the event the callback
 * refused, so that resuming from it delivers that event again. */
static int read_partition(es_log *log, void *self, int64_t *next_offset,
                          const char *agg, int32_t partition,
                          int64_t from_offset, size_t max_events, int lean,
                          es_event_cb cb, void *user_data)
{
    const int which = lean ? S_READ_PARTITION_LEAN : S_READ_PARTITION;
    sqlite_log *s = self;
    sqlite3_stmt *st = NULL;
    int64_t expect = from_offset;
    int rc, stop;

    *next_offset = from_offset;
    if ((rc = check_partition(log, s, "reading", agg, partition)) != 0)
        return rc;
    if ((rc = acquire(log, s, which, &st)) != 0)
        return rc;
    bind_str(st, 1, agg);
    sqlite3_bind_int64(st, 2, partition);
    sqlite3_bind_int64(st, 3, from_offset);
    sqlite3_bind_int64(st, 4,
                       max_events == 0 || max_events > INT64_MAX
                           ? -1 /* no limit */
                           : (int64_t)max_events);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        es_event ev;
        int64_t offset = sqlite3_column_int64(st, 13);
        if (offset != expect) {
            rc = es__fail(&log->h, ES_ECORRUPT,
                          "%s: reading %s partition %d: expected offset %lld, "
                          "found %lld",
                          s->ctx, agg, (int)partition, (long long)expect,
                          (long long)offset);
            goto done;
        }
        if ((rc = row_to_event(log, s, st, agg, lean, &ev)) != 0)
            goto done;
        stop = cb(&ev, user_data);
        json_decref(ev.payload);
        json_decref(ev.meta);
        if (stop) {
            rc = es__fail(&log->h, ES_EUSER,
                          "reading %s partition %d: the callback stopped at "
                          "offset %lld",
                          agg, (int)partition, (long long)expect);
            goto done;
        }
        *next_offset = ++expect;
    }
    if (rc != SQLITE_DONE) {
        rc = es__sqlite_fail(&log->h, s->db, rc, "%s: reading %s partition %d",
                             s->ctx, agg, (int)partition);
        goto done;
    }
    rc = 0;
done:
    release(s, which, st);
    return rc;
}

static int sqlite_read_partition(es_log *log, void *self, int64_t *next_offset,
                                 const char *agg, int32_t partition,
                                 int64_t from_offset, size_t max_events,
                                 es_event_cb cb, void *user_data)
{
    return read_partition(log, self, next_offset, agg, partition, from_offset,
                          max_events, 0, cb, user_data);
}

static int sqlite_read_partition_lean(es_log *log, void *self,
                                      int64_t *next_offset, const char *agg,
                                      int32_t partition, int64_t from_offset,
                                      size_t max_events, es_event_cb cb,
                                      void *user_data)
{
    return read_partition(log, self, next_offset, agg, partition, from_offset,
                          max_events, 1, cb, user_data);
}

/* Every aggregate type has the log's partition count, events or not. */
static int sqlite_partition_count(es_log *log, void *self, int32_t *out,
                                  const char *agg)
{
    *out = ((sqlite_log *)self)->partitions;
    return 0;
}

static int sqlite_head(es_log *log, void *self, int64_t *out, const char *agg,
                       int32_t partition)
{
    sqlite_log *s = self;
    int rc;

    *out = 0;
    if ((rc = check_partition(log, s, "reading the head of", agg, partition)))
        return rc;
    if ((rc = lookup_i64(s, S_HEAD, agg, NULL, partition, out)) != SQLITE_OK)
        return es__sqlite_fail(&log->h, s->db, rc,
                               "%s: reading the head of %s partition %d",
                               s->ctx, agg, (int)partition);
    return 0;
}

static int sqlite_types(es_log *log, void *self, es_name_cb cb, void *user_data)
{
    sqlite_log *s = self;
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = acquire(log, s, S_TYPES, &st)) != 0)
        return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (name && cb(name, user_data) != 0) {
            rc = es__fail(&log->h, ES_EUSER,
                          "listing aggregate types: the callback stopped at %s",
                          name);
            goto done;
        }
    }
    if (rc != SQLITE_DONE) {
        rc = es__sqlite_fail(&log->h, s->db, rc,
                             "%s: listing aggregate types", s->ctx);
        goto done;
    }
    rc = 0;
done:
    release(s, S_TYPES, st);
    return rc;
}

static int sqlite_streams(es_log *log, void *self, const char *agg,
                          es_stream_cb cb, void *user_data)
{
    sqlite_log *s = self;
    sqlite3_stmt *st = NULL;
    es_stream_info info;
    int rc;

    if ((rc = acquire(log, s, S_STREAMS, &st)) != 0)
        return rc;
    bind_str(st, 1, agg);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        info.stream_id = (const char *)sqlite3_column_text(st, 0);
        if (info.stream_id == NULL)
            continue;
        info.version = sqlite3_column_int64(st, 1);
        info.partition = es_partition_for(info.stream_id, strlen(info.stream_id),
                                          s->partitions);
        if (cb(&info, user_data) != 0) {
            rc = es__fail(&log->h, ES_EUSER,
                          "listing the streams of %s: the callback stopped at %s",
                          agg, info.stream_id);
            goto done;
        }
    }
    if (rc != SQLITE_DONE) {
        rc = es__sqlite_fail(&log->h, s->db, rc, "%s: listing the streams of %s",
                             s->ctx, agg);
        goto done;
    }
    rc = 0;
done:
    release(s, S_STREAMS, st);
    return rc;
}

/* ---- check --------------------------------------------------------------- */

/* The cross-checks of es_log_check: each row is one disagreement, as
 * (what, agg_type, stream or partition, in es_events, in the table). */
static const char *const check_sql[] = {
    "SELECT 'streams', agg_type, stream_id, v, sv FROM ("
    " SELECT e.agg_type, e.stream_id, max(e.version) AS v,"
    "  (SELECT s.version FROM es_streams s WHERE s.agg_type = e.agg_type"
    "   AND s.stream_id = e.stream_id) AS sv"
    " FROM es_events e GROUP BY e.agg_type, e.stream_id) WHERE sv IS NOT v"
    " UNION ALL"
    " SELECT 'streams', agg_type, stream_id, NULL, version FROM es_streams s"
    " WHERE NOT EXISTS (SELECT 1 FROM es_events e WHERE e.agg_type = s.agg_type"
    " AND e.stream_id = s.stream_id) LIMIT 100",
    "SELECT 'partitions', agg_type, partition_no, n, pn FROM ("
    " SELECT e.agg_type, e.partition_no, max(e.log_offset) + 1 AS n,"
    "  (SELECT p.next_offset FROM es_partitions p WHERE p.agg_type = e.agg_type"
    "   AND p.partition_no = e.partition_no) AS pn"
    " FROM es_events e GROUP BY e.agg_type, e.partition_no) WHERE pn IS NOT n"
    " UNION ALL"
    " SELECT 'partitions', agg_type, partition_no, NULL, next_offset"
    " FROM es_partitions p WHERE NOT EXISTS (SELECT 1 FROM es_events e"
    " WHERE e.agg_type = p.agg_type AND e.partition_no = p.partition_no)"
    " LIMIT 100",
};

static int report(es_log *log, es_check_cb cb, void *user_data,
                  const char *kind, const char *message)
{
    if (cb(kind, message, user_data) != 0)
        return es__fail(&log->h, ES_EUSER, "checking: the callback stopped");
    return 0;
}

static int sqlite_check(es_log *log, void *self, es_check_cb cb, void *user_data)
{
    sqlite_log *s = self;
    sqlite3_stmt *st = NULL;
    char msg[1024];
    int rc, step = SQLITE_DONE;
    size_t q;

    /* SQLite's own check of every page and index (the first 100 faults). */
    rc = sqlite3_prepare_v2(s->db, "PRAGMA integrity_check(100)", -1, &st, NULL);
    while (rc == SQLITE_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *line = (const char *)sqlite3_column_text(st, 0);
        if (line && strcmp(line, "ok") == 0)
            continue;
        snprintf(msg, sizeof msg, "%s: the file is damaged: %s", s->ctx,
                 line ? line : "?");
        if ((rc = report(log, cb, user_data, "integrity", msg)) != 0)
            goto done;
    }
    if (rc == SQLITE_OK && step != SQLITE_DONE) {
        /* Damage so deep that the check cannot run is damage too. */
        snprintf(msg, sizeof msg, "%s: the file is damaged: the integrity "
                 "check fails: %s", s->ctx, sqlite3_errmsg(s->db));
        if ((rc = report(log, cb, user_data, "integrity", msg)) != 0)
            goto done;
    } else if (rc != SQLITE_OK) {
        rc = es__sqlite_fail(&log->h, s->db, rc, "%s: checking the file",
                             s->ctx);
        goto done;
    }
    sqlite3_finalize(st);
    st = NULL;

    for (q = 0; q < sizeof check_sql / sizeof *check_sql; q++) {
        rc = sqlite3_prepare_v2(s->db, check_sql[q], -1, &st, NULL);
        if (rc != SQLITE_OK) {
            snprintf(msg, sizeof msg, "%s: cannot cross-check the tables: %s",
                     s->ctx, sqlite3_errmsg(s->db));
            rc = report(log, cb, user_data, q ? "partitions" : "streams", msg);
            goto done;
        }
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            const char *kind = (const char *)sqlite3_column_text(st, 0);
            const char *agg = (const char *)sqlite3_column_text(st, 1);
            const char *key = (const char *)sqlite3_column_text(st, 2);
            int has_events = sqlite3_column_type(st, 3) != SQLITE_NULL;
            int has_row = sqlite3_column_type(st, 4) != SQLITE_NULL;
            long long ev = sqlite3_column_int64(st, 3);
            long long tb = sqlite3_column_int64(st, 4);
            if (q == 0 && !has_row)
                snprintf(msg, sizeof msg, "%s: %s/%s has events up to version "
                         "%lld but no row in es_streams", s->ctx, agg, key, ev);
            else if (q == 0 && !has_events)
                snprintf(msg, sizeof msg, "%s: es_streams says %s/%s is at "
                         "version %lld, but it has no events", s->ctx, agg, key,
                         tb);
            else if (q == 0)
                snprintf(msg, sizeof msg, "%s: es_streams says %s/%s is at "
                         "version %lld, its events go up to version %lld "
                         "(appends to it fail or leave a gap)",
                         s->ctx, agg, key, tb, ev);
            else if (!has_row)
                snprintf(msg, sizeof msg, "%s: %s partition %s has events up to "
                         "offset %lld but no row in es_partitions", s->ctx, agg,
                         key, ev - 1);
            else if (!has_events)
                snprintf(msg, sizeof msg, "%s: es_partitions says the next "
                         "offset of %s partition %s is %lld, but it has no "
                         "events", s->ctx, agg, key, tb);
            else
                snprintf(msg, sizeof msg, "%s: es_partitions says the next "
                         "offset of %s partition %s is %lld, its events end at "
                         "offset %lld (appends to it fail or leave a gap)",
                         s->ctx, agg, key, tb, ev - 1);
            if ((rc = report(log, cb, user_data, kind, msg)) != 0)
                goto done;
        }
        if (step != SQLITE_DONE) {
            snprintf(msg, sizeof msg, "%s: cannot cross-check the tables: %s",
                     s->ctx, sqlite3_errmsg(s->db));
            if ((rc = report(log, cb, user_data, q ? "partitions" : "streams",
                             msg)) != 0)
                goto done;
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    rc = 0;
done:
    sqlite3_finalize(st);
    return rc;
}

/* ---- open / close -------------------------------------------------------- */

static void sqlite_close(void *self)
{
    sqlite_log *s = self;
    int i;
    if (s == NULL)
        return;
    for (i = 0; i < S__COUNT; i++)
        sqlite3_finalize(s->st[i]);
    es__sqlite_close(s->db);
    es__buf_free(&s->payload);
    es__buf_free(&s->meta);
    es__free(s->ctx);
    es__free(s);
}

/*
 * The partition count is stored when the log is created and fixed after:
 * moving a stream to another partition would break every checkpoint.
 */
static int settle_partitions(es_log *log, sqlite_log *s, int64_t wanted)
{
    int64_t stored = 0;
    int found, rc, in_tx = 0;

    if ((rc = es__sqlite_meta_get_i64(s->db, &log->h, PARTITIONS_KEY, &stored,
                                      &found)) != 0)
        goto done;
    if (!found && sqlite3_db_readonly(s->db, "main") == 1) {
        rc = es__fail(&log->h, ES_ECORRUPT, "%s: es_meta has no %s (opened "
                      "read-only: nothing is written)", s->ctx, PARTITIONS_KEY);
        goto done;
    }
    if (!found) {
        if ((rc = es__sqlite_exec(s->db, &log->h, "storing the partition count",
                                  "BEGIN IMMEDIATE")) != 0)
            goto done;
        in_tx = 1;
        /* A handle that opened the new file at the same time may have won. */
        if ((rc = es__sqlite_meta_get_i64(s->db, &log->h, PARTITIONS_KEY,
                                          &stored, &found)) != 0)
            goto done;
        if (!found) {
            stored = wanted ? wanted : DEFAULT_PARTITIONS;
            if ((rc = es__sqlite_meta_set_i64(s->db, &log->h, PARTITIONS_KEY,
                                              stored)) != 0)
                goto done;
        }
        if ((rc = es__sqlite_exec(s->db, &log->h, "storing the partition count",
                                  "COMMIT")) != 0)
            goto done;
        in_tx = 0;
    }
    if (stored < 1 || stored > MAX_PARTITIONS) {
        rc = es__fail(&log->h, ES_ECORRUPT,
                      "%s: es_meta says the log has %lld partitions (expected "
                      "1 to %d)",
                      s->ctx, (long long)stored, MAX_PARTITIONS);
        goto done;
    }
    if (wanted && wanted != stored) {
        rc = es__fail(&log->h, ES_EINVAL,
                      "%s: the URI asks for %lld partitions but the log has "
                      "%lld (the count is fixed when the log is created)",
                      s->ctx, (long long)wanted, (long long)stored);
        goto done;
    }
    s->partitions = (int32_t)stored;
done:
    if (in_tx)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int sqlite_open(es_log *log, void **self, const char *uri)
{
    static const char *const known[] = {"partitions", "mode", NULL};
    es__sqlite_uri u;
    sqlite_log *s = NULL;
    const char *p;
    int64_t wanted = 0;
    int rc, i, ro;

    *self = NULL;
    if ((rc = es__sqlite_uri_parse(&u, uri, known, &log->h)) != 0)
        return rc;
    if ((p = es__sqlite_uri_param(&u, "partitions")) != NULL &&
        (es__parse_i64(&wanted, p) != 0 || wanted < 1 ||
         wanted > MAX_PARTITIONS)) {
        rc = es__fail(&log->h, ES_EINVAL,
                      "%s: partitions must be a whole number from 1 to %d, "
                      "not '%s'",
                      uri, MAX_PARTITIONS, p);
        goto done;
    }
    if ((s = es__calloc(1, sizeof *s)) == NULL ||
        (s->ctx = es__sprintf("sqlite:%s", u.path)) == NULL) {
        rc = es__fail(&log->h, ES_ENOMEM, "%s: out of memory", uri);
        goto done;
    }
    if ((ro = es__sqlite_uri_read_only(&u, &log->h)) < 0) {
        rc = ro;
        goto done;
    }
    if ((rc = es__sqlite_open_mode(&s->db, u.path, ro, &log->h)) != 0)
        goto done;
    if ((rc = es__sqlite_migrate(s->db, &log->h, "log", log_migrations,
                                 sizeof log_migrations /
                                     sizeof log_migrations[0])) != 0)
        goto done;
    if ((rc = settle_partitions(log, s, wanted)) != 0)
        goto done;
    for (i = 0; i < S__COUNT; i++) {
        int src = sqlite3_prepare_v3(s->db, stmt_sql[i], -1,
                                     SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
        if (src != SQLITE_OK) {
            rc = es__sqlite_fail(&log->h, s->db, src, "%s: preparing statements",
                                 s->ctx);
            goto done;
        }
    }
    *self = s;
    s = NULL;
done:
    sqlite_close(s);
    es__sqlite_uri_free(&u);
    return rc;
}

const es__log_backend es__sqlite_log_backend = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .append = sqlite_append,
    .read_stream = sqlite_read_stream,
    .read_partition = sqlite_read_partition,
    .read_partition_lean = sqlite_read_partition_lean,
    .partition_count = sqlite_partition_count,
    .head = sqlite_head,
    .types = sqlite_types,
    .streams = sqlite_streams,
    .check = sqlite_check,
    .find_id = sqlite_find_id,
};

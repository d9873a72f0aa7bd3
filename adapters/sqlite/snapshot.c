/*
 * adapters/sqlite/snapshot.c - the snapshot store in a SQLite file.
 *
 * One table, es_snapshots (schema component "snapshots"), keyed by
 * (agg_type, stream_id, version). The file may be the log's own: the
 * tables of each component are migrated separately (adapters/sqlite/
 * sqlite.h), and this store uses a connection of its own, so that taking a
 * snapshot never runs inside a log transaction.
 *
 * The state is kept as TEXT exactly as given: the checksum covers its bytes.
 */
#include <stdio.h>
#include <string.h>

#include "snapshots/store_backend.h"
#include "sqlite.h"

/* Version i + 1 of the store's tables is migrations[i]. Append only. */
static const char *const migrations[] = {
    "CREATE TABLE es_snapshots ("
    " agg_type     TEXT    NOT NULL,"
    " stream_id    TEXT    NOT NULL,"
    " version      INTEGER NOT NULL,"
    " partition_no INTEGER NOT NULL,"
    " log_offset   INTEGER NOT NULL,"
    " event_id     TEXT    NOT NULL,"
    " time_us      INTEGER NOT NULL,"
    " horizon_us   INTEGER NOT NULL,"
    " state_schema INTEGER NOT NULL,"
    " state        TEXT    NOT NULL,"
    " checksum     TEXT    NOT NULL,"
    " taken_us     INTEGER NOT NULL,"
    " PRIMARY KEY (agg_type, stream_id, version)) WITHOUT ROWID;",
};

#define COLUMNS \
    "agg_type, stream_id, version, partition_no, log_offset, event_id, " \
    "time_us, horizon_us, state_schema, state, checksum, taken_us"

enum { S_SAVE, S_LIST, S_PRUNE, S__COUNT };

static const char *const stmt_sql[S__COUNT] = {
    [S_SAVE] = "INSERT INTO es_snapshots (" COLUMNS ")"
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
               " ON CONFLICT (agg_type, stream_id, version) DO UPDATE SET"
               " partition_no = excluded.partition_no,"
               " log_offset = excluded.log_offset,"
               " event_id = excluded.event_id, time_us = excluded.time_us,"
               " horizon_us = excluded.horizon_us,"
               " state_schema = excluded.state_schema, state = excluded.state,"
               " checksum = excluded.checksum, taken_us = excluded.taken_us",
    [S_LIST] = "SELECT " COLUMNS " FROM es_snapshots"
               " WHERE agg_type = ?1 AND stream_id = ?2 AND ("
               /* a row with a version or horizon that is not a number is
                * listed (and found corrupt), not silently left out */
               " typeof(version) != 'integer' OR typeof(horizon_us) != 'integer'"
               " OR (version <= ?3 AND horizon_us <= ?4))"
               " ORDER BY typeof(version) = 'integer' DESC, version DESC"
               " LIMIT ?5",
    /* The newest `keep` of each stream stay; row values and window
     * functions need SQLite 3.25. */
    [S_PRUNE] = "DELETE FROM es_snapshots"
                " WHERE (agg_type, stream_id, version) IN ("
                "  SELECT agg_type, stream_id, version FROM ("
                "   SELECT agg_type, stream_id, version, row_number() OVER ("
                "    PARTITION BY agg_type, stream_id ORDER BY version DESC) AS rn"
                "   FROM es_snapshots"
                "   WHERE (?1 IS NULL OR agg_type = ?1)"
                "   AND (?2 IS NULL OR stream_id = ?2))"
                "  WHERE rn > ?3)",
};

typedef struct sqlite_snapshots {
    sqlite3 *db;
    char *ctx; /* "sqlite:PATH" for messages */
    sqlite3_stmt *st[S__COUNT];
    int listing; /* S_LIST is stepping while a callback runs */
} sqlite_snapshots;

static void sq_close(void *self)
{
    sqlite_snapshots *s = self;
    if (s == NULL)
        return;
    for (int i = 0; i < S__COUNT; i++)
        sqlite3_finalize(s->st[i]);
    es__sqlite_close(s->db);
    es__free(s->ctx);
    es__free(s);
}

static int sq_open(es_snapshot_store *store, void **self, const char *uri)
{
    static const char *const known[] = { "mode", NULL };
    es__sqlite_uri u;
    sqlite_snapshots *s = NULL;
    int rc, ro;

    *self = NULL;
    if ((rc = es__sqlite_uri_parse(&u, uri, known, &store->h)) != 0)
        return rc;
    if ((s = es__calloc(1, sizeof *s)) == NULL ||
        (s->ctx = es__sprintf("sqlite:%s", u.path)) == NULL) {
        rc = es__fail(&store->h, ES_ENOMEM, "%s: out of memory", uri);
        goto done;
    }
    if ((ro = es__sqlite_uri_read_only(&u, &store->h)) < 0) {
        rc = ro;
        goto done;
    }
    if ((rc = es__sqlite_open_mode(&s->db, u.path, ro, &store->h)) != 0)
        goto done;
    if ((rc = es__sqlite_migrate(s->db, &store->h, "snapshots", migrations,
                                 sizeof migrations / sizeof *migrations)) != 0)
        goto done;
    for (int i = 0; i < S__COUNT; i++) {
        int src = sqlite3_prepare_v3(s->db, stmt_sql[i], -1,
                                     SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
        if (src != SQLITE_OK) {
            rc = es__sqlite_fail(&store->h, s->db, src, "%s: preparing the "
                                 "snapshot statements", s->ctx);
            goto done;
        }
    }
    *self = s;
    s = NULL;
done:
    sq_close(s);
    es__sqlite_uri_free(&u);
    return rc;
}

static int sq_save(es_snapshot_store *store, void *self, const es_snapshot *snap)
{
    sqlite_snapshots *s = self;
    sqlite3_stmt *st = s->st[S_SAVE];
    int rc = SQLITE_OK;

    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 1, snap->aggregate_type, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, snap->stream_id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, snap->version);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 4, snap->position.partition);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 5, snap->position.offset);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 6, snap->event_id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 7, snap->time_us);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 8, snap->horizon_us);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 9, snap->state_schema);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 10, snap->state, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 11, snap->checksum, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 12, snap->taken_us);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        rc = es__sqlite_fail(&store->h, s->db, rc, "%s: saving the snapshot of "
                             "%s/%s at version %lld", s->ctx,
                             snap->aggregate_type, snap->stream_id,
                             (long long)snap->version);
    else
        rc = 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    return t ? t : "";
}

static int sq_list(es_snapshot_store *store, void *self, const char *type,
                   const char *stream_id, int64_t max_version,
                   int64_t max_horizon, size_t limit, es_snapshot_cb cb,
                   void *user_data)
{
    sqlite_snapshots *s = self;
    sqlite3_stmt *st = s->st[S_LIST];
    int rc = SQLITE_OK, own = 0;

    /* A callback that lists through the same store gets a statement of its
     * own. */
    if (s->listing) {
        rc = sqlite3_prepare_v2(s->db, stmt_sql[S_LIST], -1, &st, NULL);
        if (rc != SQLITE_OK)
            return es__sqlite_fail(&store->h, s->db, rc, "%s: listing "
                                   "snapshots", s->ctx);
        own = 1;
    } else {
        s->listing = 1;
    }
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, stream_id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, max_version);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 4, max_horizon);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 5, limit ? (sqlite3_int64)limit : -1);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        es_snapshot snap;
        memset(&snap, 0, sizeof snap);
        snap.aggregate_type = col_text(st, 0);
        snap.stream_id = col_text(st, 1);
        snap.version = sqlite3_column_int64(st, 2);
        snap.position.partition = (int32_t)sqlite3_column_int64(st, 3);
        snap.position.offset = sqlite3_column_int64(st, 4);
        snap.event_id = col_text(st, 5);
        snap.time_us = sqlite3_column_int64(st, 6);
        snap.horizon_us = sqlite3_column_int64(st, 7);
        snap.state_schema = (int32_t)sqlite3_column_int64(st, 8);
        snap.state = col_text(st, 9);
        /* All the bytes stored: a BLOB may hold more after a NUL. */
        snap.state_size = (size_t)sqlite3_column_bytes(st, 9);
        snap.checksum = col_text(st, 10);
        snap.taken_us = sqlite3_column_int64(st, 11);
        if (cb(&snap, user_data) != 0) {
            rc = ES_EUSER;
            goto done;
        }
        rc = SQLITE_OK;
    }
    if (rc == SQLITE_DONE)
        rc = 0;
    else
        rc = es__sqlite_fail(&store->h, s->db, rc, "%s: listing the snapshots "
                             "of %s/%s", s->ctx, type, stream_id);
done:
    if (own) {
        sqlite3_finalize(st);
    } else {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        s->listing = 0;
    }
    return rc;
}

static int sq_prune(es_snapshot_store *store, void *self, int64_t *removed,
                    const char *type, const char *stream_id, int64_t keep)
{
    sqlite_snapshots *s = self;
    sqlite3_stmt *st = s->st[S_PRUNE];
    int rc = SQLITE_OK;

    if (rc == SQLITE_OK)
        rc = type ? sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC)
                  : sqlite3_bind_null(st, 1);
    if (rc == SQLITE_OK)
        rc = stream_id ? sqlite3_bind_text(st, 2, stream_id, -1, SQLITE_STATIC)
                       : sqlite3_bind_null(st, 2);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, keep);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        rc = es__sqlite_fail(&store->h, s->db, rc, "%s: pruning snapshots",
                             s->ctx);
    } else {
        *removed = sqlite3_changes64(s->db);
        rc = 0;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

const es__snapshot_backend es__sqlite_snapshot_backend = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .save = sq_save,
    .list = sq_list,
    .prune = sq_prune,
};

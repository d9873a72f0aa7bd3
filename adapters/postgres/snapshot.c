/*
 * adapters/postgres/snapshot.c - the snapshot store in PostgreSQL (libpq).
 *
 * One table, es_snapshots, in the connection's schema (set search_path in
 * the URI's options to choose another), created on first use under an
 * advisory lock so that two processes starting at once do not race.
 *
 * The connection is made lazily and remade when it breaks: opening a store
 * on an unreachable server succeeds, every operation then fails with ES_EIO
 * (a repository reports it as a warning and folds from origin), and the
 * first operation after the server is back reconnects. Each operation is
 * idempotent (an upsert, a select, a delete), so one that met a broken
 * connection is retried once on a new one. connect_timeout defaults to 5
 * seconds so that a dead host does not stall a command for long; the URI
 * may say otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pg.h"
#include "snapshots/store_backend.h"

static const char *const create_sql[] = {
    "SET client_min_messages = warning",
    "BEGIN",
    "SELECT pg_advisory_xact_lock(hashtext('esfold.es_snapshots'))",
    "CREATE TABLE IF NOT EXISTS es_snapshots ("
    " agg_type     text    NOT NULL,"
    " stream_id    text    NOT NULL,"
    " version      bigint  NOT NULL,"
    " partition_no integer NOT NULL,"
    " log_offset   bigint  NOT NULL,"
    " event_id     text    NOT NULL,"
    " time_us      bigint  NOT NULL,"
    " horizon_us   bigint  NOT NULL,"
    " state_schema integer NOT NULL,"
    " state        text    NOT NULL,"
    " checksum     text    NOT NULL,"
    " taken_us     bigint  NOT NULL,"
    " PRIMARY KEY (agg_type, stream_id, version))",
    "COMMIT",
};

#define COLUMNS \
    "agg_type, stream_id, version, partition_no, log_offset, event_id, " \
    "time_us, horizon_us, state_schema, state, checksum, taken_us"

static const char save_sql[] =
    "INSERT INTO es_snapshots (" COLUMNS ")"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    " ON CONFLICT (agg_type, stream_id, version) DO UPDATE SET"
    " partition_no = excluded.partition_no, log_offset = excluded.log_offset,"
    " event_id = excluded.event_id, time_us = excluded.time_us,"
    " horizon_us = excluded.horizon_us, state_schema = excluded.state_schema,"
    " state = excluded.state, checksum = excluded.checksum,"
    " taken_us = excluded.taken_us";

static const char list_sql[] =
    "SELECT " COLUMNS " FROM es_snapshots"
    " WHERE agg_type = $1 AND stream_id = $2 AND version <= $3::bigint"
    " AND horizon_us <= $4::bigint ORDER BY version DESC LIMIT $5::bigint";

static const char prune_sql[] =
    "DELETE FROM es_snapshots WHERE (agg_type, stream_id, version) IN ("
    " SELECT agg_type, stream_id, version FROM ("
    "  SELECT agg_type, stream_id, version, row_number() OVER ("
    "   PARTITION BY agg_type, stream_id ORDER BY version DESC) AS rn"
    "  FROM es_snapshots"
    "  WHERE ($1::text IS NULL OR agg_type = $1::text)"
    "  AND ($2::text IS NULL OR stream_id = $2::text)) AS ranked"
    " WHERE rn > $3::bigint)";

typedef struct pg_snapshots {
    char *uri;
    PGconn *conn;
    int ready; /* the table exists (checked on this connection) */
} pg_snapshots;

static void pg_close(void *self)
{
    pg_snapshots *p = self;
    if (p == NULL)
        return;
    if (p->conn)
        PQfinish(p->conn);
    es__free(p->uri);
    es__free(p);
}

static int pg_open(es_snapshot_store *store, void **self, const char *uri)
{
    pg_snapshots *p;

    *self = NULL;
    /* Only the syntax here: the connection is made on first use. */
    if (es__pg_check_uri(uri, es__snapshot_store_name(store), &store->h) != 0)
        return ES_EINVAL;
    if ((p = es__calloc(1, sizeof *p)) == NULL ||
        (p->uri = es__strdup(uri)) == NULL) {
        es__free(p);
        return es__fail(&store->h, ES_ENOMEM, "out of memory");
    }
    *self = p;
    return 0;
}

static int exec_simple(es_snapshot_store *store, pg_snapshots *p,
                       const char *sql)
{
    PGresult *res = PQexec(p->conn, sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    char msg[512];
    int rc = 0;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = es__fail(&store->h, ES_EIO, "%s: creating the es_snapshots table: "
                      "%s", es__snapshot_store_name(store),
                      es__pg_message(msg, sizeof msg,
                                 res ? PQresultErrorMessage(res)
                                     : PQerrorMessage(p->conn)));
    PQclear(res);
    return rc;
}

/* A working connection with the table in place. */
static int ensure(es_snapshot_store *store, pg_snapshots *p)
{
    int rc;

    if (p->conn && PQstatus(p->conn) == CONNECTION_OK && p->ready)
        return 0;
    if (p->conn == NULL || PQstatus(p->conn) != CONNECTION_OK) {
        if (p->conn)
            PQfinish(p->conn);
        p->ready = 0;
        if ((rc = es__pg_connect(&p->conn, p->uri,
                                 es__snapshot_store_name(store), &store->h)) != 0)
            return rc;
    }
    for (size_t i = 0; i < sizeof create_sql / sizeof *create_sql; i++) {
        if ((rc = exec_simple(store, p, create_sql[i])) != 0) {
            if (PQtransactionStatus(p->conn) != PQTRANS_IDLE) {
                PGresult *res = PQexec(p->conn, "ROLLBACK");
                PQclear(res);
            }
            return rc;
        }
    }
    p->ready = 1;
    return 0;
}

/*
 * Runs sql with text parameters; *out gets a result of status want. A
 * connection found broken is remade and the statement run once more.
 */
static int run(es_snapshot_store *store, pg_snapshots *p, PGresult **out,
               const char *what, const char *sql, int nparams,
               const char *const *params, ExecStatusType want)
{
    char msg[512];
    int rc;

    *out = NULL;
    for (int attempt = 0;; attempt++) {
        PGresult *res;
        if ((rc = ensure(store, p)) != 0)
            return rc;
        res = PQexecParams(p->conn, sql, nparams, NULL, params, NULL, NULL, 0);
        if (res && PQresultStatus(res) == want) {
            *out = res;
            return 0;
        }
        if (attempt == 0 && PQstatus(p->conn) != CONNECTION_OK) {
            PQclear(res);
            continue;
        }
        rc = es__fail(&store->h, ES_EIO, "%s: %s: %s",
                      es__snapshot_store_name(store), what,
                      es__pg_message(msg, sizeof msg,
                                 res ? PQresultErrorMessage(res)
                                     : PQerrorMessage(p->conn)));
        PQclear(res);
        return rc;
    }
}

static int pg_save(es_snapshot_store *store, void *self, const es_snapshot *snap)
{
    pg_snapshots *p = self;
    char num[8][24], what[ES_NAME_MAX + ES_STREAM_ID_MAX + 64];
    const char *params[12];
    PGresult *res;
    int rc;

    snprintf(num[0], sizeof num[0], "%lld", (long long)snap->version);
    snprintf(num[1], sizeof num[1], "%d", (int)snap->position.partition);
    snprintf(num[2], sizeof num[2], "%lld", (long long)snap->position.offset);
    snprintf(num[3], sizeof num[3], "%lld", (long long)snap->time_us);
    snprintf(num[4], sizeof num[4], "%lld", (long long)snap->horizon_us);
    snprintf(num[5], sizeof num[5], "%d", (int)snap->state_schema);
    snprintf(num[6], sizeof num[6], "%lld", (long long)snap->taken_us);
    params[0] = snap->aggregate_type;
    params[1] = snap->stream_id;
    params[2] = num[0];
    params[3] = num[1];
    params[4] = num[2];
    params[5] = snap->event_id;
    params[6] = num[3];
    params[7] = num[4];
    params[8] = num[5];
    params[9] = snap->state;
    params[10] = snap->checksum;
    params[11] = num[6];
    snprintf(what, sizeof what, "saving the snapshot of %s/%s at version %lld",
             snap->aggregate_type, snap->stream_id, (long long)snap->version);
    rc = run(store, p, &res, what, save_sql, 12, params, PGRES_COMMAND_OK);
    PQclear(res);
    return rc;
}

static int64_t get_i64(const PGresult *res, int row, int col)
{
    int64_t v = 0;
    if (es__parse_i64(&v, PQgetvalue(res, row, col)) != 0)
        return 0; /* caught by es_snapshot_verify */
    return v;
}

static int pg_list(es_snapshot_store *store, void *self, const char *type,
                   const char *stream_id, int64_t max_version,
                   int64_t max_horizon, size_t limit, es_snapshot_cb cb,
                   void *user_data)
{
    pg_snapshots *p = self;
    char num[3][24], what[ES_NAME_MAX + ES_STREAM_ID_MAX + 64];
    const char *params[5];
    PGresult *res;
    int rc, rows;

    snprintf(num[0], sizeof num[0], "%lld", (long long)max_version);
    snprintf(num[1], sizeof num[1], "%lld", (long long)max_horizon);
    snprintf(num[2], sizeof num[2], "%lld",
             limit ? (long long)limit : (long long)INT64_MAX);
    params[0] = type;
    params[1] = stream_id;
    params[2] = num[0];
    params[3] = num[1];
    params[4] = num[2];
    snprintf(what, sizeof what, "listing the snapshots of %s/%s", type,
             stream_id);
    if ((rc = run(store, p, &res, what, list_sql, 5, params,
                  PGRES_TUPLES_OK)) != 0)
        return rc;
    rows = PQntuples(res);
    for (int i = 0; i < rows; i++) {
        es_snapshot snap;
        memset(&snap, 0, sizeof snap);
        snap.aggregate_type = PQgetvalue(res, i, 0);
        snap.stream_id = PQgetvalue(res, i, 1);
        snap.version = get_i64(res, i, 2);
        snap.position.partition = (int32_t)get_i64(res, i, 3);
        snap.position.offset = get_i64(res, i, 4);
        snap.event_id = PQgetvalue(res, i, 5);
        snap.time_us = get_i64(res, i, 6);
        snap.horizon_us = get_i64(res, i, 7);
        snap.state_schema = (int32_t)get_i64(res, i, 8);
        snap.state = PQgetvalue(res, i, 9);
        snap.checksum = PQgetvalue(res, i, 10);
        snap.taken_us = get_i64(res, i, 11);
        if (cb(&snap, user_data) != 0) {
            rc = ES_EUSER;
            break;
        }
    }
    PQclear(res);
    return rc;
}

static int pg_prune(es_snapshot_store *store, void *self, int64_t *removed,
                    const char *type, const char *stream_id, int64_t keep)
{
    pg_snapshots *p = self;
    char num[24];
    const char *params[3];
    PGresult *res;
    int rc;

    snprintf(num, sizeof num, "%lld", (long long)keep);
    params[0] = type;
    params[1] = stream_id;
    params[2] = num;
    if ((rc = run(store, p, &res, "pruning snapshots", prune_sql, 3, params,
                  PGRES_COMMAND_OK)) != 0)
        return rc;
    *removed = atoll(PQcmdTuples(res));
    PQclear(res);
    return 0;
}

const es__snapshot_backend es__pg_snapshot_backend = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .save = pg_save,
    .list = pg_list,
    .prune = pg_prune,
};

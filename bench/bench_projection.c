/*
 * bench/bench_projection.c - projection workers into PostgreSQL and SQLite
 * beside what the targets themselves can do with the same final rows
 * (docs/benchmarks.md).
 *
 * The log: N events (default 1,000,000; --events or ESFOLD_BENCH_EVENTS)
 * on N/10 bank accounts (Deposited, every fourth a Withdrawn), round robin,
 * written straight into a SQLite log file by batched INSERTs (the
 * backend's tables, one transaction per 10,000 events): loading is not
 * what is measured. The projection is the JSON-file kind (SQL handlers):
 *   INSERT INTO balances VALUES ($stream_id, $data.amount)
 *     ON CONFLICT (id) DO UPDATE SET balance = balances.balance + excluded.balance
 * (0 - $data.amount for a Withdrawn), folding the N events into N/10 rows.
 *
 *   pg       es_projection_worker_run --until-caught-up into a fresh
 *            PostgreSQL database (the throwaway server of tests/pg_harness.c)
 *            beside: the same statements sent by a plain libpq program in
 *            pipeline mode (one transaction per 1,000), `psql \copy` of the
 *            final rows from a file, and COPY (PQputCopyData) into a staging
 *            table + one INSERT .. ON CONFLICT merge.
 *   sqlite   the same into a fresh SQLite target file beside the same
 *            statements through raw SQLite (one transaction per 1,000) and
 *            a raw batched INSERT of the final rows (one transaction).
 *   latency  append-to-visible: a worker runs in another thread, a second
 *            thread appends a steady 1,000 events/s, and one more event is
 *            appended every 5 ms and waited for until the checkpoint of its
 *            partition passes it, in turn: by es_projection_wait (a
 *            connection per call), by polling the checkpoint row on an open
 *            connection, and by an es_projection_waiter opened once.
 *   kafka    the pg worker from a Kafka log (`esfold broker`, librdkafka's
 *            mock cluster, as tests/kafka_harness.c starts it) holding the
 *            first K events (ESFOLD_BENCH_KAFKA_EVENTS, default 80,000) of
 *            the same kind on K/10 accounts, one record each, in the same
 *            partitions and order as a SQLite log of them: beside the
 *            libpq pipeline over those K events and the same worker from
 *            that SQLite log (the difference: the Kafka reader and the
 *            resume rows, docs/projections.md).
 *   memory   RSS at start and end, the peak while loading, and the
 *            worker's own peak during its runs into each target.
 *   keyed    the same events as a keyed fold (projections/keyed.c, no SQL:
 *            "add"/"sub" of $data.amount into {"balance": ...} per
 *            $stream_id) into PostgreSQL and SQLite, in a group of its own
 *            interleaved with its limits: first the fair one, a plain
 *            program that reads the same events from the same log file as
 *            the pipeline limit does (SELECT .. ORDER BY partition_no,
 *            log_offset, json_loadb of each payload), folds them into a
 *            plain hash map and writes the final rows (COPY + one merge;
 *            SQLite: one batched INSERT), timed as a whole; then the
 *            final rows alone (COPY + merge, psql \copy; raw INSERT), which
 *            read no events. Its batch_size is KEYED_BATCH events
 *            (ESFOLD_BENCH_KEYED_BATCH): the worker reads that many at a
 *            time and folds up to 16 reads in one transaction, which
 *            writes each key once.
 *            ESFOLD_BENCH_ONLY=pg,sqlite,keyed runs these groups alone.
 *
 * There is no rebuild in the projection API yet: that row of the issue is
 * skipped (the table says so).
 *
 * usage: bench_projection [--events N] [--reps N] [--json]
 */
#include <errno.h>
#include <glob.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <sqlite3.h>

#include "esfold/esfold.h"
#include "esfold/projection.h"
#include "samples/bank/account.h"
#include "tests/kafka_harness.h"
#include "tests/pg_harness.h"

#include "benchutil.h"

#define DEFAULT_EVENTS 1000000
#define DEFAULT_REPS 1
#define MIN_EVENTS 100
#define PARTITIONS 4
#define LOAD_COMMIT 10000    /* events per transaction loading the log */
#define LIMIT_TXN 1000       /* statements per transaction of the limits */
#define LAT_SAMPLES 900      /* append-to-visible samples per target */
#define LAT_PERIOD_US 5000   /* one append every 5 ms */
#define PROJ_NAME "bench_balances"
/* Events per read of the keyed fold: 16 reads of 16,000 cover a
 * partition's 250,000 events at 1,000,000 (each key written once), with
 * a read's events, not the partition's, in memory. */
#define KEYED_BATCH 16000
#define KAFKA_EVENTS 80000   /* events of the Kafka log row (at most N): the
                                broker keeps about 5 MiB a partition */
#define KAFKA_FLUSH 50000    /* records produced between flushes */
#define PRAGMAS "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON"
#define BUSY_TIMEOUT_MS 10000

#define TABLE_DDL \
    "CREATE TABLE IF NOT EXISTS balances (id TEXT PRIMARY KEY," \
    " balance BIGINT NOT NULL)"
#define UPSERT_TAIL \
    " ON CONFLICT (id) DO UPDATE SET balance = balances.balance + excluded.balance"
#define DEPOSIT_SQL "INSERT INTO balances (id, balance) VALUES ($1, $2)" UPSERT_TAIL
#define WITHDRAW_SQL \
    "INSERT INTO balances (id, balance) VALUES ($1, 0 - $2)" UPSERT_TAIL

static const char projection_json[] =
    "{\"name\": \"" PROJ_NAME "\", \"version\": 1, \"follows\": [\"account\"],"
    " \"setup\": [\"" TABLE_DDL "\"],"
    " \"on\": {"
    "  \"Deposited\": [\"INSERT INTO balances (id, balance) VALUES ($stream_id,"
    " $data.amount)" UPSERT_TAIL "\"],"
    "  \"Withdrawn\": [\"INSERT INTO balances (id, balance) VALUES ($stream_id,"
    " 0 - $data.amount)" UPSERT_TAIL "\"]}}";

static const char keyed_json[] =
    "{\"name\": \"bench_keyed\", \"version\": 1, \"follows\": [\"account\"],"
    " \"keyed\": {\"table\": \"kv_balances\", \"key\": \"$stream_id\","
    "  \"on\": {\"Deposited\": {\"add\": {\"balance\": \"$data.amount\"}},"
    "          \"Withdrawn\": {\"sub\": {\"balance\": \"$data.amount\"}}}}}";
#define PG_KEYED_ROWS \
    "SELECT key, (doc::jsonb->>'balance')::bigint FROM kv_balances"
#define SQ_KEYED_ROWS \
    "SELECT key, json_extract(doc, '$.balance') FROM kv_balances"
#define ROWS_SQL "SELECT id, balance FROM balances"

/* ---- The data ------------------------------------------------------------- */

typedef struct data {
    long long events;
    long long accounts;
    int64_t *balance;   /* the reference fold: [account] */
    char log_path[4200];
    char log_uri[4300];
    char rows_path[4200]; /* the final rows as COPY text */
} data;

static int64_t amount_of(long long k)
{
    return 100 + (k * 7919) % 10000;
}

static void account_id(char *out, size_t size, long long a)
{
    snprintf(out, size, "acct-%07lld", a);
}

static int is_withdrawal(long long version)
{
    return version % 4 == 0;
}

static int sq_fail(sqlite3 *db, const char *what)
{
    fprintf(stderr, "bench_projection: %s: %s\n", what,
            db ? sqlite3_errmsg(db) : "out of memory");
    return 1;
}

static int sq_open(sqlite3 **out, const char *path)
{
    if (sqlite3_open_v2(path, out,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        return sq_fail(*out, path);
    sqlite3_busy_timeout(*out, BUSY_TIMEOUT_MS);
    if (sqlite3_exec(*out, "PRAGMA journal_mode = WAL; " PRAGMAS, NULL, NULL,
                     NULL) != SQLITE_OK)
        return sq_fail(*out, "pragmas");
    return 0;
}

static int sq_exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0
                                                                : sq_fail(db, sql);
}

/*
 * The log: es_log_open makes the file and its tables, then the events go
 * in by raw batched INSERTs into the backend's es_events, es_streams and
 * es_partitions (adapters/sqlite/log.c), as the backend would have written
 * them for one-event commits.
 */
static int load_log(data *d)
{
    static const char ins_sql[] =
        "INSERT INTO es_events (agg_type, partition_no, log_offset, stream_id,"
        " version, event_type, occurred_us, payload_schema, event_id,"
        " correlation_id, causation_id, payload, meta, commit_id, commit_size)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, NULL, NULL, ?9, NULL, ?8, 1)";
    es_log *log = NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL, *str = NULL, *head = NULL;
    int64_t next[PARTITIONS] = {0};
    int32_t *part = NULL;
    int64_t t0 = (int64_t)time(NULL) * 1000000;
    bu_progress prog;
    int rc = 1;

    if (es_log_open(&log, d->log_uri) != 0) {
        fprintf(stderr, "bench_projection: %s\n", es_errmsg(log));
        es_log_close(log);
        return 1;
    }
    es_log_close(log);
    if ((part = malloc((size_t)d->accounts * sizeof *part)) == NULL)
        return 1;
    for (long long a = 0; a < d->accounts; a++) {
        char id[32];
        account_id(id, sizeof id, a);
        part[a] = es_partition_for(id, strlen(id), PARTITIONS);
        d->balance[a] = 0;
    }
    if (sq_open(&db, d->log_path) != 0)
        goto done;
    if (sqlite3_prepare_v2(db, ins_sql, -1, &ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT INTO es_streams VALUES (?1, ?2, ?3)", -1,
                           &str, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT INTO es_partitions VALUES (?1, ?2, ?3)",
                           -1, &head, NULL) != SQLITE_OK) {
        sq_fail(db, "preparing the load");
        goto done;
    }
    bu_progress_begin(&prog, (uint64_t)d->events, "loading %lld events",
                      d->events);
    for (long long k = 0; k < d->events; k++) {
        long long a = k % d->accounts, version = k / d->accounts + 1;
        char id[32], eid[40], payload[48];
        int w = is_withdrawal(version);
        int64_t amt = amount_of(k);
        if (k % LOAD_COMMIT == 0) {
            if ((k > 0 && sq_exec(db, "COMMIT") != 0) || bu_interrupted() ||
                sq_exec(db, "BEGIN") != 0)
                goto done_prog;
            bu_progress_update(&prog, (uint64_t)k);
        }
        account_id(id, sizeof id, a);
        /* UUID-shaped, unique, increasing like UUIDv7s. */
        snprintf(eid, sizeof eid, "%08llx-0000-7000-8000-%012llx",
                 (unsigned long long)(t0 / 1000000), (unsigned long long)k);
        snprintf(payload, sizeof payload, "{\"amount\":%lld}", (long long)amt);
        d->balance[a] += w ? -amt : amt;
        sqlite3_bind_text(ins, 1, bank_account_type.name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 2, part[a]);
        sqlite3_bind_int64(ins, 3, next[part[a]]++);
        sqlite3_bind_text(ins, 4, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(ins, 5, version);
        sqlite3_bind_text(ins, 6, w ? "Withdrawn" : "Deposited", -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 7, t0 + k);
        sqlite3_bind_text(ins, 8, eid, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 9, payload, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(ins) != SQLITE_DONE) {
            sq_fail(db, "loading the log");
            goto done_prog;
        }
        sqlite3_reset(ins);
    }
    for (long long a = 0; a < d->accounts; a++) {
        char id[32];
        account_id(id, sizeof id, a);
        sqlite3_bind_text(str, 1, bank_account_type.name, -1, SQLITE_STATIC);
        sqlite3_bind_text(str, 2, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(str, 3, (d->events - a + d->accounts - 1) / d->accounts);
        if (sqlite3_step(str) != SQLITE_DONE) {
            sq_fail(db, "loading es_streams");
            goto done_prog;
        }
        sqlite3_reset(str);
    }
    for (int p = 0; p < PARTITIONS; p++) {
        sqlite3_bind_text(head, 1, bank_account_type.name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(head, 2, p);
        sqlite3_bind_int64(head, 3, next[p]);
        if (sqlite3_step(head) != SQLITE_DONE) {
            sq_fail(db, "loading es_partitions");
            goto done_prog;
        }
        sqlite3_reset(head);
    }
    if (sq_exec(db, "COMMIT") != 0)
        goto done_prog;
    rc = 0;
done_prog:
    bu_progress_end(&prog);
done:
    sqlite3_finalize(ins);
    sqlite3_finalize(str);
    sqlite3_finalize(head);
    if (db && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    free(part);
    return rc;
}

/* The final rows as COPY text, for psql \copy. */
static int write_rows(const data *d)
{
    FILE *f = fopen(d->rows_path, "w");
    if (f == NULL) {
        fprintf(stderr, "bench_projection: %s: %s\n", d->rows_path,
                strerror(errno));
        return 1;
    }
    for (long long a = 0; a < d->accounts; a++)
        fprintf(f, "acct-%07lld\t%lld\n", a, (long long)d->balance[a]);
    return fclose(f) == 0 ? 0 : 1;
}

/* ---- Checking the rows ------------------------------------------------------ */

/* Looks id up ("acct-0000042" -> 42), or -1. */
static long long account_of(const data *d, const char *id)
{
    char *end;
    long long a;
    if (strncmp(id, "acct-", 5) != 0)
        return -1;
    a = strtoll(id + 5, &end, 10);
    return *end == '\0' && a >= 0 && a < d->accounts ? a : -1;
}

static int check_row(const data *d, const char *who, const char *id,
                     long long balance, long long *seen)
{
    long long a = account_of(d, id);
    if (a < 0 || d->balance[a] != balance) {
        fprintf(stderr, "bench_projection: %s: row %s has balance %lld "
                        "(expected %lld)\n",
                who, id, balance, a < 0 ? 0LL : (long long)d->balance[a]);
        return 1;
    }
    (*seen)++;
    return 0;
}

static int rows_count_fail(const data *d, const char *who, long long seen)
{
    if (seen == d->accounts)
        return 0;
    fprintf(stderr, "bench_projection: %s: %lld rows (expected %lld)\n", who,
            seen, d->accounts);
    return 1;
}

static int pg_check(const data *d, PGconn *c, const char *who, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    long long seen = 0;
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "bench_projection: %s: %s", who, PQerrorMessage(c));
        PQclear(r);
        return 1;
    }
    for (int i = 0; i < PQntuples(r) && rc == 0; i++)
        rc = check_row(d, who, PQgetvalue(r, i, 0),
                       atoll(PQgetvalue(r, i, 1)), &seen);
    PQclear(r);
    return rc ? rc : rows_count_fail(d, who, seen);
}

static int sq_check(const data *d, const char *path, const char *who,
                    const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long seen = 0;
    int rc = 1, s;
    if (sq_open(&db, path) != 0 ||
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        sq_fail(db, who);
        goto done;
    }
    rc = 0;
    while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW)
        rc = check_row(d, who, (const char *)sqlite3_column_text(st, 0),
                       sqlite3_column_int64(st, 1), &seen);
    if (rc == 0)
        rc = rows_count_fail(d, who, seen);
done:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

/* ---- PostgreSQL helpers ----------------------------------------------------- */

static int pg_ok(PGconn *c, PGresult *r, const char *what)
{
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "bench_projection: %s: %s", what, PQerrorMessage(c));
    PQclear(r);
    return ok ? 0 : 1;
}

static int pg_exec(PGconn *c, const char *sql)
{
    return pg_ok(c, PQexec(c, sql), sql);
}

static PGconn *pg_connect(const char *url)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench_projection: %s: %s", url, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    return c;
}

typedef struct pg_ctx {
    const data *d;
    const char *server;  /* the harness's URL (database postgres) */
    PGconn *admin;
    char url[512];       /* of the current run's database */
    int run;
    const es_projection *proj;
    es_log *log;
    const char *psql;
    const es_projection *keyed;
} pg_ctx;

/* A fresh database for the next run: dbname bench_N, its URL in c->url. */
static int pg_fresh_db(pg_ctx *c)
{
    char sql[128];
    const char *q = strchr(c->server, '?');
    const char *slash = strrchr(c->server, '/');
    c->run++;
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS bench_%d", c->run - 1);
    if (c->run > 1 && pg_exec(c->admin, sql) != 0)
        return 1;
    snprintf(sql, sizeof sql, "CREATE DATABASE bench_%d", c->run);
    if (pg_exec(c->admin, sql) != 0)
        return 1;
    snprintf(c->url, sizeof c->url, "%.*s/bench_%d%s",
             (int)(slash - c->server), c->server, c->run, q ? q : "");
    return 0;
}

/* ---- esfold: the worker ----------------------------------------------------- */

typedef struct progress_ctx {
    bu_progress prog;
} progress_ctx;

static int on_progress(const es_projection_step *total, void *ud)
{
    progress_ctx *p = ud;
    bu_progress_update(&p->prog, (uint64_t)(total->applied + total->skipped));
    return bu_interrupted() ? 1 : 0;
}

/* Peak RSS of the worker runs (KiB): reset just before each open, read
 * right after its run, before the rows are checked; and the RSS at the
 * reset. The largest of the runs into each target. */
static long worker_peak_kib, worker_before_kib;

/* Runs the worker until caught up; the open (setup) is not timed. */
static int run_worker(const data *d, es_log *log, const es_projection *proj,
                      const char *target, const char *what, double *seconds)
{
    es_projection_worker_options wo = ES_PROJECTION_WORKER_OPTIONS_INIT;
    const char *batch = getenv("ESFOLD_BENCH_KEYED_BATCH");
    es_projection_worker *w = NULL;
    es_projection_step total;
    progress_ctx pc;
    double t0;
    int rc;

    if (bu_peak_rss_reset()) {
        long now = bu_peak_rss_kib();
        if (now > worker_before_kib)
            worker_before_kib = now;
    }
    /* A keyed fold writes each key once per batch: it gains from larger
     * transactions (16 reads of KEYED_BATCH events each). */
    if (proj->name && strcmp(proj->name, "bench_keyed") == 0)
        wo.batch_size = batch && atoll(batch) > 0 ? (size_t)atoll(batch)
                                                  : KEYED_BATCH;
    if ((rc = es_projection_worker_open(&w, log, proj, target, &wo)) != 0) {
        fprintf(stderr, "bench_projection: %s: %s\n", what,
                w ? es_errmsg(w) : "out of memory");
        es_projection_worker_close(w);
        return 1;
    }
    bu_progress_begin(&pc.prog, (uint64_t)d->events, "%s", what);
    t0 = bu_now();
    rc = es_projection_worker_run(w, NULL, 1, &total, on_progress, &pc);
    *seconds = bu_now() - t0;
    if (bu_peak_rss_kib() > worker_peak_kib)
        worker_peak_kib = bu_peak_rss_kib();
    bu_progress_end(&pc.prog);
    if (rc != 0)
        fprintf(stderr, "bench_projection: %s: %s\n", what, es_errmsg(w));
    else if (total.applied != d->events || total.dead_lettered != 0) {
        fprintf(stderr, "bench_projection: %s: applied %lld, dead-lettered "
                        "%lld (expected %lld, 0)\n",
                what, (long long)total.applied, (long long)total.dead_lettered,
                d->events);
        rc = 1;
    }
    es_projection_worker_close(w);
    return rc ? 1 : 0;
}

/* A full rebuild (esfold/rebuild.h) of proj on a target whose live tables
 * are complete: build from origin under shadow names, compare, swap. */
static int run_rebuild(const data *d, es_log *log, const es_projection *proj,
                       const char *target, const char *what, double *seconds)
{
    es_rebuild_options ro = ES_REBUILD_OPTIONS_INIT;
    es_rebuild_progress prog;
    es_error err;
    double t0 = bu_now();
    int rc;
    bu_status("%s", what);
    rc = es_projection_rebuild(&prog, log, proj, target, &ro, &err);
    *seconds = bu_now() - t0;
    bu_status(NULL);
    if (rc != 0) {
        fprintf(stderr, "bench_projection: %s: %s\n", what, err.text);
        return 1;
    }
    if (prog.done != d->events) {
        fprintf(stderr, "bench_projection: %s: rebuilt %lld events of %lld\n", what,
                (long long)prog.done, d->events);
        return 1;
    }
    return 0;
}

static int pg_esfold(void *vctx, double *seconds)
{
    pg_ctx *c = vctx;
    PGconn *conn;
    int rc;
    if (pg_fresh_db(c) != 0)
        return 1;
    if (run_worker(c->d, c->log, c->proj, c->url, "esfold -> PostgreSQL",
                   seconds) != 0)
        return 1;
    if ((conn = pg_connect(c->url)) == NULL)
        return 1;
    rc = pg_check(c->d, conn, "esfold -> PostgreSQL", ROWS_SQL);
    PQfinish(conn);
    return rc;
}

static int pg_keyed(void *vctx, double *seconds)
{
    pg_ctx *c = vctx;
    PGconn *conn;
    int rc;
    if (pg_fresh_db(c) != 0)
        return 1;
    if (run_worker(c->d, c->log, c->keyed, c->url, "keyed fold -> PostgreSQL",
                   seconds) != 0)
        return 1;
    if ((conn = pg_connect(c->url)) == NULL)
        return 1;
    rc = pg_check(c->d, conn, "keyed fold -> PostgreSQL", PG_KEYED_ROWS);
    PQfinish(conn);
    return rc;
}

/* ---- The log as a plain program reads it ------------------------------------ */

typedef struct log_reader {
    sqlite3 *db;
    sqlite3_stmt *st;
} log_reader;

/* Every event in (partition, offset) order: what a reader of this file
 * must do at least. Each row: stream_id, event_type, payload. */
static int reader_open(log_reader *r, const data *d)
{
    memset(r, 0, sizeof *r);
    if (sq_open(&r->db, d->log_path) != 0)
        return 1;
    if (sqlite3_prepare_v2(r->db,
                           "SELECT stream_id, event_type, payload FROM es_events"
                           " WHERE agg_type = ?1 ORDER BY partition_no,"
                           " log_offset",
                           -1, &r->st, NULL) != SQLITE_OK)
        return sq_fail(r->db, "preparing the read of the log");
    sqlite3_bind_text(r->st, 1, bank_account_type.name, -1, SQLITE_STATIC);
    return 0;
}

static void reader_close(log_reader *r)
{
    sqlite3_finalize(r->st);
    sqlite3_close(r->db);
}

/* The next event: 1 (and its fields), 0 at the end, -1 on an error. */
static int reader_next(log_reader *r, const char **id, int *withdraw,
                       int64_t *amount)
{
    json_error_t jerr;
    json_t *p;
    int s = sqlite3_step(r->st);
    if (s == SQLITE_DONE)
        return 0;
    if (s != SQLITE_ROW)
        return sq_fail(r->db, "reading the log") ? -1 : -1;
    p = json_loadb((const char *)sqlite3_column_text(r->st, 2),
                   (size_t)sqlite3_column_bytes(r->st, 2), 0, &jerr);
    if (p == NULL) {
        fprintf(stderr, "bench_projection: payload: %s\n", jerr.text);
        return -1;
    }
    *amount = json_integer_value(json_object_get(p, "amount"));
    json_decref(p);
    *id = (const char *)sqlite3_column_text(r->st, 0);
    *withdraw = strcmp((const char *)sqlite3_column_text(r->st, 1),
                       "Withdrawn") == 0;
    return 1;
}

/* ---- The fair limits' fold: a plain hash map ------------------------------- */

/* Account id -> balance, open addressing (FNV-1a, linear probing), sized
 * for the accounts up front: what a plain program folding the log into
 * the final rows would write. */
typedef struct bal_map {
    char (*key)[32]; /* "" : empty */
    int64_t *val;
    size_t cap;
    size_t *order;   /* bal_sort: the used slots in key order */
    size_t n;
} bal_map;

static int bal_open(bal_map *m, long long accounts)
{
    for (m->cap = 64; m->cap < (size_t)accounts * 2; m->cap *= 2)
        ;
    m->key = calloc(m->cap, sizeof *m->key);
    m->val = calloc(m->cap, sizeof *m->val);
    return m->key && m->val ? 0 : 1;
}

static void bal_close(bal_map *m)
{
    free(m->key);
    free(m->val);
    free(m->order);
}

static const bal_map *sorting;

static int by_key(const void *a, const void *b)
{
    return strcmp(sorting->key[*(const size_t *)a], sorting->key[*(const size_t *)b]);
}

/* The rows in key order, as a plain program would write them (a B-tree
 * filled in order). */
static int bal_sort(bal_map *m)
{
    if ((m->order = malloc(m->cap * sizeof *m->order)) == NULL)
        return 1;
    m->n = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->key[i][0])
            m->order[m->n++] = i;
    sorting = m;
    qsort(m->order, m->n, sizeof *m->order, by_key);
    return 0;
}

static void bal_add(bal_map *m, const char *id, int64_t delta)
{
    uint64_t h = 1469598103934665603u;
    size_t i;
    for (const char *s = id; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    for (i = (size_t)h & (m->cap - 1); m->key[i][0]; i = (i + 1) & (m->cap - 1))
        if (strcmp(m->key[i], id) == 0) {
            m->val[i] += delta;
            return;
        }
    snprintf(m->key[i], sizeof m->key[i], "%s", id);
    m->val[i] = delta;
}

/* The reference balances in a map (outside any timed section). */
static int bal_of_data(bal_map *m, const data *d)
{
    if (bal_open(m, d->accounts) != 0)
        return 1;
    for (long long a = 0; a < d->accounts; a++) {
        char id[32];
        account_id(id, sizeof id, a);
        bal_add(m, id, d->balance[a]);
    }
    return bal_sort(m);
}

/* Every event of the log read as the limits read it (reader_next), folded
 * into m: what the keyed fold does before it writes. */
static int bal_of_log(bal_map *m, const data *d)
{
    log_reader rd;
    long long n = 0;
    int got;
    if (bal_open(m, d->accounts) != 0 || reader_open(&rd, d) != 0)
        return 1;
    for (;;) {
        const char *id;
        int64_t a;
        int w;
        if ((got = reader_next(&rd, &id, &w, &a)) <= 0)
            break;
        bal_add(m, id, w ? -a : a);
        n++;
    }
    reader_close(&rd);
    if (got < 0 || n != d->events) {
        fprintf(stderr, "bench_projection: raw read: %lld events\n", n);
        return 1;
    }
    return bal_sort(m);
}

/* ---- PostgreSQL limits ------------------------------------------------------ */

static int pg_limit_table(pg_ctx *c, PGconn **out)
{
    if (pg_fresh_db(c) != 0 || (*out = pg_connect(c->url)) == NULL)
        return 1;
    return pg_exec(*out, TABLE_DDL);
}

/* Reads the results of n statements and a Sync; 0 or 1. */
static int pipeline_drain(PGconn *conn, int n)
{
    int rc = 0;
    for (int i = 0; i < n; i++) {
        PGresult *r = PQgetResult(conn);
        if (r == NULL)
            return 1;
        if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == 0) {
            fprintf(stderr, "bench_projection: pipeline: %s",
                    PQresultErrorMessage(r));
            rc = 1;
        }
        PQclear(r);
        while ((r = PQgetResult(conn)) != NULL) /* the NULL after each */
            PQclear(r);
    }
    for (;;) {
        PGresult *r = PQgetResult(conn);
        ExecStatusType st;
        if (r == NULL)
            return 1;
        st = PQresultStatus(r);
        PQclear(r);
        if (st == PGRES_PIPELINE_SYNC)
            return rc;
    }
}

/* The same statements as the handlers, prepared once, in pipeline mode:
 * BEGIN, 1,000 executes, COMMIT, one Sync, then the results. */
static int pg_pipeline(void *vctx, double *seconds)
{
    pg_ctx *c = vctx;
    static const Oid types[2] = {25 /* text */, 20 /* int8 */};
    PGconn *conn = NULL;
    log_reader rd;
    double t0;
    int rc = 1, n = 0, more = 1;

    memset(&rd, 0, sizeof rd);
    if (pg_limit_table(c, &conn) != 0 || reader_open(&rd, c->d) != 0)
        goto done;
    if (pg_ok(conn, PQprepare(conn, "dep", DEPOSIT_SQL, 2, types), "prepare") ||
        pg_ok(conn, PQprepare(conn, "wd", WITHDRAW_SQL, 2, types), "prepare"))
        goto done;
    t0 = bu_now();
    if (!PQenterPipelineMode(conn))
        goto done;
    while (more) {
        int k = 0;
        if (bu_interrupted())
            goto done;
        PQsendQueryParams(conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
        while (k < LIMIT_TXN) {
            const char *id, *vals[2];
            char amt[24];
            int64_t a;
            int w, got = reader_next(&rd, &id, &w, &a);
            if (got < 0)
                goto done;
            if (got == 0) {
                more = 0;
                break;
            }
            snprintf(amt, sizeof amt, "%lld", (long long)a);
            vals[0] = id;
            vals[1] = amt;
            if (!PQsendQueryPrepared(conn, w ? "wd" : "dep", 2, vals, NULL, NULL,
                                     0)) {
                fprintf(stderr, "bench_projection: %s", PQerrorMessage(conn));
                goto done;
            }
            k++;
            n++;
        }
        PQsendQueryParams(conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
        if (!PQpipelineSync(conn) || pipeline_drain(conn, k + 2) != 0)
            goto done;
    }
    PQexitPipelineMode(conn);
    *seconds = bu_now() - t0;
    if (n != c->d->events) {
        fprintf(stderr, "bench_projection: pipeline: %d events read\n", n);
        goto done;
    }
    rc = pg_check(c->d, conn, "libpq pipeline", ROWS_SQL);
done:
    reader_close(&rd);
    PQfinish(conn);
    return rc;
}

/* psql \copy of the final rows from a file (client side), psql started,
 * connected and done inside the timed section. */
static int pg_psql_copy(void *vctx, double *seconds)
{
    pg_ctx *c = vctx;
    PGconn *conn = NULL;
    char cmd[6000];
    double t0;
    int rc = 1, st;

    if (pg_limit_table(c, &conn) != 0)
        goto done;
    snprintf(cmd, sizeof cmd, "'%s' -X -q -v ON_ERROR_STOP=1 -d '%s' -c "
             "\"\\copy balances FROM '%s'\"", c->psql, c->url, c->d->rows_path);
    t0 = bu_now();
    st = system(cmd);
    *seconds = bu_now() - t0;
    if (st != 0) {
        fprintf(stderr, "bench_projection: %s failed (%d)\n", cmd, st);
        goto done;
    }
    rc = pg_check(c->d, conn, "psql \\copy", ROWS_SQL);
done:
    PQfinish(conn);
    return rc;
}

/* The rows of m by COPY (PQputCopyData) into a temporary staging table,
 * then one merge, in one transaction. */
static int copy_merge_rows(PGconn *conn, const bal_map *m)
{
    char *buf = NULL;
    size_t cap = 1 << 16, len = 0;
    int rc = 1;
    PGresult *r;

    if ((buf = malloc(cap)) == NULL)
        goto done;
    if (pg_exec(conn, "BEGIN") ||
        pg_exec(conn, "CREATE TEMP TABLE staging (id TEXT, balance BIGINT)"
                      " ON COMMIT DROP"))
        goto done;
    r = PQexec(conn, "COPY staging FROM STDIN");
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        pg_ok(conn, r, "COPY");
        goto done;
    }
    PQclear(r);
    for (size_t i = 0; i < m->n; i++) {
        size_t k = m->order[i];
        len += (size_t)snprintf(buf + len, cap - len, "%s\t%lld\n", m->key[k],
                                (long long)m->val[k]);
        if (cap - len < 64 || i + 1 == m->n) {
            if (PQputCopyData(conn, buf, (int)len) != 1)
                goto done;
            len = 0;
        }
    }
    if (PQputCopyEnd(conn, NULL) != 1 ||
        pg_ok(conn, PQgetResult(conn), "COPY end") ||
        pg_exec(conn, "INSERT INTO balances SELECT id, balance FROM staging"
                      UPSERT_TAIL) ||
        pg_exec(conn, "COMMIT"))
        goto done;
    rc = 0;
done:
    free(buf);
    return rc;
}

/* copy_merge_rows of the rows bal_fn makes (inside the timed section
 * when it reads the log). */
static int pg_rows_limit(pg_ctx *c, int (*bal_fn)(bal_map *, const data *),
                         const char *who, double *seconds)
{
    PGconn *conn = NULL;
    bal_map m = {NULL, NULL, 0, NULL, 0};
    double t0;
    int rc = 1, timed_fill = bal_fn == bal_of_log;

    if (pg_limit_table(c, &conn) != 0 || (!timed_fill && bal_fn(&m, c->d) != 0))
        goto done;
    t0 = bu_now();
    if ((timed_fill && bal_fn(&m, c->d) != 0) || copy_merge_rows(conn, &m) != 0)
        goto done;
    *seconds = bu_now() - t0;
    rc = pg_check(c->d, conn, who, ROWS_SQL);
done:
    bal_close(&m);
    PQfinish(conn);
    return rc;
}

/* COPY (PQputCopyData) of the final rows into a temporary staging table,
 * then one merge. */
static int pg_copy_merge(void *vctx, double *seconds)
{
    return pg_rows_limit(vctx, bal_of_data, "COPY + merge", seconds);
}

/* The keyed fold's fair limit: the events read from the log file as the
 * pipeline limit reads them, folded into a plain hash map, then the COPY
 * + merge above; timed as a whole. */
static int pg_read_copy_merge(void *vctx, double *seconds)
{
    return pg_rows_limit(vctx, bal_of_log, "raw read + COPY + merge", seconds);
}

/* ---- SQLite: esfold and the limits ------------------------------------------ */

typedef struct sq_ctx {
    const data *d;
    char dir[4096];
    char path[4200];
    int run;
    const es_projection *proj;
    es_log *log;
    const es_projection *keyed;
} sq_ctx;

static void sq_fresh(sq_ctx *c, const char *what)
{
    if (c->path[0])
        bu_sqlite_files_remove(c->path);
    snprintf(c->path, sizeof c->path, "%s/%s-%d.db", c->dir, what, c->run++);
}

static int sq_esfold(void *vctx, double *seconds)
{
    sq_ctx *c = vctx;
    char uri[4300];
    sq_fresh(c, "target");
    snprintf(uri, sizeof uri, "sqlite:%s", c->path);
    if (run_worker(c->d, c->log, c->proj, uri, "esfold -> SQLite", seconds) != 0)
        return 1;
    return sq_check(c->d, c->path, "esfold -> SQLite", ROWS_SQL);
}

static int sq_keyed(void *vctx, double *seconds)
{
    sq_ctx *c = vctx;
    char uri[4300];
    sq_fresh(c, "keyed");
    snprintf(uri, sizeof uri, "sqlite:%s", c->path);
    if (run_worker(c->d, c->log, c->keyed, uri, "keyed fold -> SQLite",
                   seconds) != 0)
        return 1;
    return sq_check(c->d, c->path, "keyed fold -> SQLite", SQ_KEYED_ROWS);
}

/* The handlers' statements through raw SQLite, 1,000 per transaction. */
static int sq_statements(void *vctx, double *seconds)
{
    sq_ctx *c = vctx;
    sqlite3 *db = NULL;
    sqlite3_stmt *dep = NULL, *wd = NULL;
    log_reader rd;
    long long n = 0;
    double t0;
    int rc = 1, got = 1;

    memset(&rd, 0, sizeof rd);
    sq_fresh(c, "statements");
    if (sq_open(&db, c->path) != 0 || sq_exec(db, TABLE_DDL) != 0 ||
        reader_open(&rd, c->d) != 0)
        goto done;
    if (sqlite3_prepare_v2(db, DEPOSIT_SQL, -1, &dep, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, WITHDRAW_SQL, -1, &wd, NULL) != SQLITE_OK) {
        sq_fail(db, "prepare");
        goto done;
    }
    t0 = bu_now();
    while (got > 0) {
        if (bu_interrupted() || sq_exec(db, "BEGIN") != 0)
            goto done;
        for (int k = 0; k < LIMIT_TXN; k++) {
            const char *id;
            int64_t a;
            int w;
            sqlite3_stmt *st;
            if ((got = reader_next(&rd, &id, &w, &a)) <= 0)
                break;
            st = w ? wd : dep;
            sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, a);
            if (sqlite3_step(st) != SQLITE_DONE) {
                sq_fail(db, "upsert");
                goto done;
            }
            sqlite3_reset(st);
            n++;
        }
        if (got < 0 || sq_exec(db, "COMMIT") != 0)
            goto done;
    }
    *seconds = bu_now() - t0;
    if (n != c->d->events) {
        fprintf(stderr, "bench_projection: raw statements: %lld events\n", n);
        goto done;
    }
    rc = 0;
done:
    sqlite3_finalize(dep);
    sqlite3_finalize(wd);
    reader_close(&rd);
    if (db && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    return rc == 0 ? sq_check(c->d, c->path, "raw statements", ROWS_SQL) : rc;
}

/* The rows of m by a raw batched INSERT into the fresh file c->path: one
 * transaction, prepared; *seconds from t0 to its commit. bal_fn fills m
 * (inside the timed section when it reads the log). */
static int insert_rows(sq_ctx *c, int (*bal_fn)(bal_map *, const data *),
                       const char *who, double *seconds)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL;
    bal_map m = {NULL, NULL, 0, NULL, 0};
    double t0 = 0;
    int rc = 1, timed_fill = bal_fn == bal_of_log;

    if (sq_open(&db, c->path) != 0 || sq_exec(db, TABLE_DDL) != 0)
        goto done;
    if (sqlite3_prepare_v2(db, "INSERT INTO balances (id, balance) VALUES (?1, ?2)",
                           -1, &ins, NULL) != SQLITE_OK) {
        sq_fail(db, "prepare");
        goto done;
    }
    if (!timed_fill && bal_fn(&m, c->d) != 0)
        goto done;
    t0 = bu_now();
    if ((timed_fill && bal_fn(&m, c->d) != 0) || sq_exec(db, "BEGIN") != 0)
        goto done;
    for (size_t i = 0; i < m.n; i++) {
        sqlite3_bind_text(ins, 1, m.key[m.order[i]], -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 2, m.val[m.order[i]]);
        if (sqlite3_step(ins) != SQLITE_DONE) {
            sq_fail(db, "insert");
            goto done;
        }
        sqlite3_reset(ins);
    }
    if (sq_exec(db, "COMMIT") != 0)
        goto done;
    *seconds = bu_now() - t0;
    rc = 0;
done:
    bal_close(&m);
    sqlite3_finalize(ins);
    if (db && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    return rc == 0 ? sq_check(c->d, c->path, who, ROWS_SQL) : rc;
}

/* A raw batched INSERT of the final rows: one transaction, prepared. */
static int sq_insert_rows(void *vctx, double *seconds)
{
    sq_ctx *c = vctx;
    sq_fresh(c, "rows");
    return insert_rows(c, bal_of_data, "raw insert", seconds);
}

/* The keyed fold's fair limit on SQLite: the raw read and fold of every
 * event (bal_of_log), then the same INSERT; timed as a whole. */
static int sq_read_insert_rows(void *vctx, double *seconds)
{
    sq_ctx *c = vctx;
    sq_fresh(c, "readrows");
    return insert_rows(c, bal_of_log, "raw read + insert", seconds);
}

/* ---- Measuring -------------------------------------------------------------- */

/*
 * esfold and its limits, interleaved: reps rounds of esfold, limit 1,
 * limit 2, ... (no warm-up round: a run of esfold over 1,000,000 events
 * takes tens of seconds, and every run starts on a fresh target anyway;
 * the log file is warm from loading). Returns 0, or the first failure.
 */
#define MAX_LIMITS 3
static int measure_group(const char *what, int reps, bu_run_fn esfold,
                         void *ectx, bu_run_fn *limits, void *lctx, int nlim,
                         bu_samples *es, bu_samples *lim)
{
    memset(es, 0, sizeof *es);
    for (int l = 0; l < nlim; l++)
        memset(&lim[l], 0, sizeof lim[l]);
    for (int r = 0; r < reps; r++) {
        double s;
        bu_status("%s: run %d of %d", what, r + 1, reps);
        if (esfold(ectx, &s) != 0)
            return 1;
        es->s[es->n++] = s;
        for (int l = 0; l < nlim; l++) {
            if (bu_interrupted() || limits[l](lctx, &s) != 0)
                return 1;
            lim[l].s[lim[l].n++] = s;
        }
    }
    bu_status(NULL);
    return 0;
}

/* ---- The same events on a Kafka log ----------------------------------------- */

/* The events of d's SQLite log produced to topic on the local broker, one
 * record each, in the same partitions and order (so at the same offsets),
 * with the es-* headers of an esfold commit of one event (docs/kafka.md,
 * "Wire format"); flushed. */
static int copy_to_kafka(const data *d, const char *topic)
{
    rd_kafka_t *rk = es_test_kafka_producer(NULL);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char parts[16];
    long long n = 0;
    int rc = 1, s;

    snprintf(parts, sizeof parts, "%d", PARTITIONS);
    if (sq_open(&db, d->log_path) != 0)
        goto done;
    if (sqlite3_prepare_v2(db, "SELECT partition_no, stream_id, version,"
                           " event_type, occurred_us, event_id, payload"
                           " FROM es_events WHERE agg_type = ?1"
                           " ORDER BY partition_no, log_offset", -1, &st,
                           NULL) != SQLITE_OK) {
        sq_fail(db, "preparing the copy to Kafka");
        goto done;
    }
    sqlite3_bind_text(st, 1, bank_account_type.name, -1, SQLITE_STATIC);
    bu_status("producing %lld events to Kafka", d->events);
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        char version[24], us[24];
        snprintf(version, sizeof version, "%lld", sqlite3_column_int64(st, 2));
        snprintf(us, sizeof us, "%lld", sqlite3_column_int64(st, 4));
        es_test_kafka_send(rk, topic, (int32_t)sqlite3_column_int(st, 0),
                           (const char *)sqlite3_column_text(st, 1),
                           (const char *)sqlite3_column_text(st, 6),
                           (size_t)sqlite3_column_bytes(st, 6),
                           "es-type", (const char *)sqlite3_column_text(st, 3),
                           "es-version", version, "es-schema", "1",
                           "es-id", (const char *)sqlite3_column_text(st, 5),
                           "es-time-us", us, "es-partitions", parts,
                           (const char *)NULL);
        if (++n % KAFKA_FLUSH == 0 && rd_kafka_flush(rk, 60000) != 0)
            break;
    }
    if (s != SQLITE_DONE && s != SQLITE_ROW) {
        sq_fail(db, "reading the log for Kafka");
        goto done;
    }
    if (rd_kafka_flush(rk, 60000) != 0 || n != d->events) {
        fprintf(stderr, "bench_projection: produced %lld of %lld events to %s\n",
                n, d->events, topic);
        goto done;
    }
    rc = 0;
done:
    bu_status(NULL);
    sqlite3_finalize(st);
    sqlite3_close(db);
    rd_kafka_destroy(rk);
    return rc;
}

/* The worker from the Kafka log and from the SQLite log of the same
 * events, and the libpq pipeline over them, into c->pg (whose d is theirs). */
typedef struct kafka_ctx {
    pg_ctx *pg;
    es_log *kafka, *sqlite;
} kafka_ctx;

static int kafka_esfold(void *vctx, double *seconds)
{
    kafka_ctx *k = vctx;
    k->pg->log = k->kafka;
    return pg_esfold(k->pg, seconds);
}

static int kafka_pipeline(void *vctx, double *seconds)
{
    return pg_pipeline(((kafka_ctx *)vctx)->pg, seconds);
}

static int kafka_sqlite_esfold(void *vctx, double *seconds)
{
    kafka_ctx *k = vctx;
    k->pg->log = k->sqlite;
    return pg_esfold(k->pg, seconds);
}

/* ---- Append-to-visible latency ---------------------------------------------- */

typedef struct lat_worker {
    es_projection_worker *w;
    volatile int stop;
    int rc;
} lat_worker;

static void *lat_thread(void *arg)
{
    lat_worker *lw = arg;
    lw->rc = es_projection_worker_run(lw->w, &lw->stop, 0, NULL, NULL, NULL);
    return NULL;
}

static void sleep_until(double t)
{
    double now = bu_now();
    if (t > now) {
        struct timespec ts;
        double d = t - now;
        ts.tv_sec = (time_t)d;
        ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
        nanosleep(&ts, NULL);
    }
}

/* The steady background load: LOAD_COMMIT_EVENTS events in one commit
 * every LOAD_PERIOD_US, to other accounts than the probes'. */
#define LOAD_COMMIT_EVENTS 10
#define LOAD_PERIOD_US 10000
typedef struct lat_load {
    es_log *log;
    volatile int stop;
    long long appended;
    int rc;
} lat_load;

static void *load_thread(void *arg)
{
    lat_load *l = arg;
    es_event evs[LOAD_COMMIT_EVENTS];
    double next = bu_now();
    long long k = 0;

    memset(evs, 0, sizeof evs);
    while (!l->stop) {
        char id[32];
        es_append_result res;
        sleep_until(next);
        next += LOAD_PERIOD_US / 1e6;
        account_id(id, sizeof id, 1000 + k % 1000);
        for (int i = 0; i < LOAD_COMMIT_EVENTS; i++) {
            evs[i].type = "Deposited";
            evs[i].payload = json_pack("{s:I}", "amount",
                                       (json_int_t)amount_of(k * 10 + i));
        }
        l->rc = es_log_append(l->log, &res, bank_account_type.name, id,
                              ES_EXPECT_ANY, evs, LOAD_COMMIT_EVENTS);
        for (int i = 0; i < LOAD_COMMIT_EVENTS; i++)
            json_decref(evs[i].payload);
        if (l->rc != 0) {
            fprintf(stderr, "bench_projection: load append: %s\n",
                    es_errmsg(l->log));
            break;
        }
        l->appended += LOAD_COMMIT_EVENTS;
        k++;
    }
    return NULL;
}

/* Polls the checkpoint row itself on a connection kept open. */
typedef struct poller {
    PGconn *pg;
    sqlite3 *sq;
    sqlite3_stmt *st;
} poller;

#define CKPT_SQL                                                          \
    "SELECT next_offset FROM es_proj_checkpoints WHERE projection = $1" \
    " AND agg_type = $2 AND partition_no = $3"

static int poller_open(poller *p, const char *target)
{
    memset(p, 0, sizeof *p);
    if (strncmp(target, "sqlite:", 7) == 0) {
        if (sq_open(&p->sq, target + 7) != 0)
            return 1;
        if (sqlite3_prepare_v2(p->sq, CKPT_SQL, -1, &p->st, NULL) != SQLITE_OK)
            return sq_fail(p->sq, "preparing the checkpoint poll");
        return 0;
    }
    return (p->pg = pg_connect(target)) == NULL;
}

static void poller_close(poller *p)
{
    sqlite3_finalize(p->st);
    sqlite3_close(p->sq);
    if (p->pg)
        PQfinish(p->pg);
}

/* 1 when the checkpoint of pos's partition is past pos, 0 not yet, -1. */
static int poller_visible(poller *p, es_position pos)
{
    long long next = -1;
    if (p->sq) {
        int s;
        sqlite3_bind_text(p->st, 1, PROJ_NAME, -1, SQLITE_STATIC);
        sqlite3_bind_text(p->st, 2, bank_account_type.name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(p->st, 3, pos.partition);
        if ((s = sqlite3_step(p->st)) == SQLITE_ROW)
            next = sqlite3_column_int64(p->st, 0);
        sqlite3_reset(p->st);
        if (s != SQLITE_ROW && s != SQLITE_DONE)
            return sq_fail(p->sq, "polling the checkpoint") ? -1 : -1;
    } else {
        char part[16];
        const char *vals[3] = {PROJ_NAME, bank_account_type.name, part};
        PGresult *r;
        snprintf(part, sizeof part, "%d", (int)pos.partition);
        r = PQexecParams(p->pg, CKPT_SQL, 3, NULL, vals, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            fprintf(stderr, "bench_projection: polling: %s",
                    PQerrorMessage(p->pg));
            PQclear(r);
            return -1;
        }
        if (PQntuples(r) == 1)
            next = atoll(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    return next > pos.offset;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Latencies in ms: p50 and p99 of the waited and the polled samples. */
typedef struct lat_figures {
    double wait_p50, wait_p99, poll_p50, poll_p99, waiter_p50, waiter_p99;
    double load_events_per_s;
} lat_figures;

static void percentiles(double *v, int n, double *p50, double *p99)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    *p50 = v[n / 2];
    *p99 = v[(n * 99) / 100];
}

/*
 * A fresh SQLite log with a worker (its own log handle) running in another
 * thread into target, and a steady load (load_thread) appending beside it.
 * Every LAT_PERIOD_US one more event goes in through es_log_append and is
 * waited for until the checkpoint of its partition passes it, in turn: by
 * es_projection_wait (the API in one call: it opens its own target
 * connection and polls 1 ms, 2 ms, 4 ms ...), by polling the checkpoint
 * row every 0.2 ms on a connection kept open, and by an
 * es_projection_waiter opened once (the API on a kept connection, polls
 * 1 ms, 2 ms, 4 ms up to max_poll_ms 4).
 */
static int measure_latency(const char *dir, const char *tag, const char *target,
                           const es_projection *proj, lat_figures *out)
{
    char path[4200], uri[4300];
    es_log *alog = NULL, *wlog = NULL;
    lat_worker lw;
    lat_load ld;
    poller pl;
    pthread_t th, lth;
    int started = 0, lstarted = 0, rc = 1, nw = 0, np = 0, nk = 0;
    double *lw_ms = calloc(LAT_SAMPLES, sizeof(double));
    double *lp_ms = calloc(LAT_SAMPLES, sizeof(double));
    double *lk_ms = calloc(LAT_SAMPLES, sizeof(double));
    es_projection_waiter *waiter = NULL;
    es_projection_waiter_options wo = ES_PROJECTION_WAITER_OPTIONS_INIT;
    double next, t_load = 0;
    es_event ev;

    memset(&lw, 0, sizeof lw);
    memset(&ld, 0, sizeof ld);
    memset(&pl, 0, sizeof pl);
    snprintf(path, sizeof path, "%s/latency-%s.db", dir, tag);
    snprintf(uri, sizeof uri, "sqlite:%s?partitions=%d", path, PARTITIONS);
    if (lw_ms == NULL || lp_ms == NULL || lk_ms == NULL ||
        es_log_open(&alog, uri) != 0 ||
        es_log_open(&wlog, uri) != 0 || es_log_open(&ld.log, uri) != 0) {
        fprintf(stderr, "bench_projection: latency log: %s\n",
                alog ? es_errmsg(alog) : "out of memory");
        goto done;
    }
    if (es_projection_worker_open(&lw.w, wlog, proj, target, NULL) != 0) {
        fprintf(stderr, "bench_projection: latency worker: %s\n",
                lw.w ? es_errmsg(lw.w) : "out of memory");
        goto done;
    }
    if (poller_open(&pl, target) != 0)
        goto done;
    wo.max_poll_ms = 4;
    if (es_projection_waiter_open(&waiter, target, &wo) != 0) {
        fprintf(stderr, "bench_projection: latency waiter: %s\n",
                waiter ? es_errmsg(waiter) : "out of memory");
        goto done;
    }
    if (pthread_create(&th, NULL, lat_thread, &lw) != 0)
        goto done;
    started = 1;
    if (pthread_create(&lth, NULL, load_thread, &ld) != 0)
        goto done;
    lstarted = 1;
    t_load = bu_now();
    memset(&ev, 0, sizeof ev);
    ev.type = "Deposited";
    next = bu_now() + 0.1; /* the load under way first */
    for (int i = 0; i < LAT_SAMPLES; i++) {
        char id[32];
        es_append_result res;
        es_error err;
        double t0;
        if (bu_interrupted() || ld.rc != 0)
            goto done;
        if (i % 50 == 0)
            bu_status("latency into %s: %d of %d", tag, i, LAT_SAMPLES);
        sleep_until(next);
        next += LAT_PERIOD_US / 1e6;
        account_id(id, sizeof id, i % 1000);
        ev.payload = json_pack("{s:I}", "amount", (json_int_t)amount_of(i));
        t0 = bu_now();
        if (es_log_append(alog, &res, bank_account_type.name, id, ES_EXPECT_ANY,
                          &ev, 1) != 0) {
            fprintf(stderr, "bench_projection: latency append: %s\n",
                    es_errmsg(alog));
            json_decref(ev.payload);
            goto done;
        }
        json_decref(ev.payload);
        if (i % 3 == 2) {
            if (es_projection_waiter_wait(waiter, PROJ_NAME, bank_account_type.name,
                                          res.last, 10000) != 0) {
                fprintf(stderr, "bench_projection: latency waiter: %s\n",
                        es_errmsg(waiter));
                goto done;
            }
            lk_ms[nk++] = (bu_now() - t0) * 1000.0;
        } else if (i % 3 == 0) {
            if (es_projection_wait(target, PROJ_NAME, bank_account_type.name,
                                   res.last, 10000, &err) != 0) {
                fprintf(stderr, "bench_projection: latency wait: %s\n",
                        err.text);
                goto done;
            }
            lw_ms[nw++] = (bu_now() - t0) * 1000.0;
        } else {
            int v;
            while ((v = poller_visible(&pl, res.last)) == 0) {
                if (bu_now() - t0 > 10.0) {
                    fprintf(stderr, "bench_projection: latency: not visible "
                                    "after 10 s\n");
                    goto done;
                }
                sleep_until(bu_now() + 0.0002);
            }
            if (v < 0)
                goto done;
            lp_ms[np++] = (bu_now() - t0) * 1000.0;
        }
    }
    percentiles(lw_ms, nw, &out->wait_p50, &out->wait_p99);
    percentiles(lp_ms, np, &out->poll_p50, &out->poll_p99);
    percentiles(lk_ms, nk, &out->waiter_p50, &out->waiter_p99);
    rc = 0;
done:
    bu_status(NULL);
    if (lstarted) {
        ld.stop = 1;
        pthread_join(lth, NULL);
        out->load_events_per_s = (double)ld.appended / (bu_now() - t_load);
        if (ld.rc != 0)
            rc = 1;
    }
    if (started) {
        lw.stop = 1;
        pthread_join(th, NULL);
        if (lw.rc != 0 && rc == 0) {
            fprintf(stderr, "bench_projection: latency worker: %s\n",
                    es_errmsg(lw.w));
            rc = 1;
        }
    }
    poller_close(&pl);
    es_projection_waiter_close(waiter);
    es_projection_worker_close(lw.w);
    es_log_close(ld.log);
    es_log_close(wlog);
    es_log_close(alog);
    bu_sqlite_files_remove(path);
    free(lw_ms);
    free(lp_ms);
    free(lk_ms);
    return rc;
}

/* Adds the facts of one target's latency run. */
static void lat_facts(bu_report *rep, const char *key, const char *label,
                      const lat_figures *f)
{
    static const char *const what[6] = {"wait_p50", "wait_p99", "poll_p50",
                                        "poll_p99", "waiter_p50", "waiter_p99"};
    static const char *const says[6] = {
        "es_projection_wait p50", "es_projection_wait p99",
        "polled checkpoint p50", "polled checkpoint p99",
        "es_projection_waiter_wait p50", "es_projection_waiter_wait p99"};
    const double v[6] = {f->wait_p50, f->wait_p99, f->poll_p50, f->poll_p99,
                         f->waiter_p50, f->waiter_p99};
    char k[48], l[80];
    for (int i = 0; i < 6; i++) {
        snprintf(k, sizeof k, "%s_visible_%s_ms", key, what[i]);
        snprintf(l, sizeof l, "append->visible %s, %s", label, says[i]);
        bu_report_fact(rep, k, l, v[i], "ms", 2);
    }
}

/* ---- main ------------------------------------------------------------------- */

static int find_psql(char *out, size_t size)
{
    const char *env = getenv("ESFOLD_PG_BIN");
    glob_t g;
    if (env && *env) {
        snprintf(out, size, "%s/psql", env);
        return 0;
    }
    if (glob("/usr/lib/postgresql/*/bin/psql", 0, NULL, &g) == 0) {
        snprintf(out, size, "%s", g.gl_pathv[g.gl_pathc - 1]);
        globfree(&g);
        return 0;
    }
    snprintf(out, size, "psql");
    return 0;
}

/* ESFOLD_BENCH_ONLY=pg,kafka,sqlite,latency: which parts run (default
 * all); with keyed in the list (pg,keyed) only the keyed-fold groups of pg
 * and sqlite run. */
static int part_wanted(const char *part)
{
    const char *only = getenv("ESFOLD_BENCH_ONLY");
    size_t n = strlen(part);
    if (only == NULL || *only == '\0')
        return 1;
    for (const char *p = only; (p = strstr(p, part)) != NULL; p += n)
        if ((p == only || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return 1;
    return 0;
}

/* The resident set size now (VmRSS), in KiB, or -1. */
static long rss_now_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static void fact_rss(bu_report *rep, const char *key, const char *label)
{
    bu_report_fact(rep, key, label, (double)rss_now_kib() / 1024.0, "MiB", 1);
}

/* The worker's own memory in the runs into one target, then reset. */
static void fact_worker_rss(bu_report *rep, const char *key, const char *target)
{
    char k[48], l[64];
    snprintf(k, sizeof k, "%s_rss_before_worker_mib", key);
    snprintf(l, sizeof l, "RSS before a worker run into %s", target);
    bu_report_fact(rep, k, l, (double)worker_before_kib / 1024.0, "MiB", 1);
    snprintf(k, sizeof k, "%s_worker_peak_rss_mib", key);
    snprintf(l, sizeof l, "peak RSS during a worker run into %s", target);
    bu_report_fact(rep, k, l, (double)worker_peak_kib / 1024.0, "MiB", 1);
    worker_before_kib = worker_peak_kib = 0;
}

int main(int argc, char **argv)
{
    bu_options o = {DEFAULT_EVENTS, DEFAULT_REPS, 0};
    char dir[4096] = "", backend[64], psql[512], name[64], lat_target[4200];
    const char *env = getenv("ESFOLD_BENCH_EVENTS");
    es_projection *proj = NULL, *keyed = NULL;
    es_log *log = NULL;
    es_error err;
    data d;
    pg_ctx pg;
    sq_ctx sq;
    bu_report rep;
    bu_samples es, kes, lim[MAX_LIMITS];
    bu_run_fn pg_limits[] = {pg_pipeline, pg_psql_copy, pg_copy_merge};
    bu_run_fn sq_limits[] = {sq_statements, sq_insert_rows};
    /* The keyed fold's own limits, interleaved with its runs. */
    bu_run_fn pg_klimits[] = {pg_read_copy_merge, pg_copy_merge, pg_psql_copy};
    bu_run_fn sq_klimits[] = {sq_read_insert_rows, sq_insert_rows};
    const char *only = getenv("ESFOLD_BENCH_ONLY");
    int keyed_only = only && *only && part_wanted("keyed");
    lat_figures lat;
    int rc, sig;

    memset(&d, 0, sizeof d);
    memset(&pg, 0, sizeof pg);
    memset(&sq, 0, sizeof sq);
    if (env && *env && (o.events = atoll(env)) < MIN_EVENTS) {
        fprintf(stderr, "bench_projection: ESFOLD_BENCH_EVENTS=%s: at least %d\n",
                env, MIN_EVENTS);
        return 2;
    }
    if ((rc = bu_options_parse(&o, argc, argv, MIN_EVENTS,
                               "  N events on N/10 accounts; also "
                               "ESFOLD_BENCH_EVENTS=N\n")) != 0)
        return rc == 1 ? 0 : 2;
    bu_signals_install();
    rc = 1;
    d.events = o.events;
    d.accounts = o.events / 10;
    if (bu_tmpdir_make(dir, sizeof dir, "projection") != 0)
        goto done;
    if ((d.balance = calloc((size_t)d.accounts, sizeof *d.balance)) == NULL)
        goto done;
    snprintf(d.log_path, sizeof d.log_path, "%s/log.db", dir);
    snprintf(d.log_uri, sizeof d.log_uri, "sqlite:%s?partitions=%d", d.log_path,
             PARTITIONS);
    snprintf(d.rows_path, sizeof d.rows_path, "%s/rows.tsv", dir);

    bu_status("starting PostgreSQL");
    pg.server = es_test_pg_url();
    bu_status(NULL);
    if (pg.server == NULL) {
        fprintf(stderr, "bench_projection: no PostgreSQL: %s\n", es_test_pg_why());
        goto done;
    }
    if ((pg.admin = pg_connect(pg.server)) == NULL)
        goto done;
    snprintf(backend, sizeof backend, "PostgreSQL %d, SQLite %s",
             PQserverVersion(pg.admin) / 10000, sqlite3_libversion());
    bu_report_init(&rep, "projection", backend, dir);
    rep.no_warmup = 1;
    bu_report_param(&rep, "events", o.events);
    bu_report_param(&rep, "rows", d.accounts);
    bu_report_param(&rep, "reps", o.reps);
    fact_rss(&rep, "rss_start_mib", "RSS at start");

    if (load_log(&d) != 0 || write_rows(&d) != 0)
        goto done;
    if (es_projection_load_json(&proj, projection_json, "bench", &err) != 0 ||
        es_projection_load_json(&keyed, keyed_json, "bench keyed", &err) != 0) {
        fprintf(stderr, "bench_projection: %s\n", err.text);
        goto done;
    }
    if (es_log_open(&log, d.log_uri) != 0) {
        fprintf(stderr, "bench_projection: %s\n", es_errmsg(log));
        goto done;
    }
    bu_report_fact(&rep, "rss_load_peak_mib", "peak RSS loading the log",
                   (double)bu_peak_rss_kib() / 1024.0, "MiB", 1);

    /* PostgreSQL */
    if (!part_wanted("pg"))
        goto kafka;
    find_psql(psql, sizeof psql);
    pg.d = &d;
    pg.proj = proj;
    pg.log = log;
    pg.psql = psql;
    pg.keyed = keyed;
    if (keyed_only)
        goto pg_keyed_group;
    if (measure_group("PostgreSQL", o.reps, pg_esfold, &pg, pg_limits, &pg, 3,
                      &es, lim) != 0)
        goto done;
    snprintf(name, sizeof name, "SQL handler -> PostgreSQL");
    bu_report_row(&rep, "pg_sql_pipeline", name,
                  "same statements, libpq pipeline, 1000/txn", &es, &lim[0],
                  "events_per_s", "ev/s", (double)d.events);
    bu_report_row(&rep, "pg_sql_psql_copy", name, "psql \\copy of final rows",
                  &es, &lim[1], "events_per_s", "ev/s", (double)d.events);
    bu_report_row(&rep, "pg_sql_copy_merge", name,
                  "PQputCopyData staging + 1 merge", &es, &lim[2],
                  "events_per_s", "ev/s", (double)d.events);
    /* The keyed fold beside its limits, measured again in its own group
     * (interleaved with its runs): first the fair one, which reads the
     * same events. */
pg_keyed_group:
    if (measure_group("PostgreSQL keyed", o.reps, pg_keyed, &pg, pg_klimits,
                      &pg, 3, &kes, lim) != 0)
        goto done;
    snprintf(name, sizeof name, "keyed fold -> PostgreSQL");
    bu_report_row(&rep, "pg_keyed_read_copy_merge", name,
                  "raw read of the events + COPY + merge", &kes, &lim[0],
                  "events_per_s", "ev/s", (double)d.events);
    bu_report_row(&rep, "pg_keyed_copy_merge", name,
                  "PQputCopyData staging + 1 merge", &kes, &lim[1],
                  "events_per_s", "ev/s", (double)d.events);
    bu_report_row(&rep, "pg_keyed_psql_copy", name, "psql \\copy of final rows",
                  &kes, &lim[2], "events_per_s", "ev/s", (double)d.events);
    fact_worker_rss(&rep, "pg", "PostgreSQL");
    if (keyed_only)
        goto sqlite;
    {
        /* A full rebuild beside the live run from origin into the same
         * target (its shadow tables, the comparison and the swap are the
         * difference). */
        bu_samples live = {0}, reb = {0};
        double t;
        PGconn *conn;
        if (pg_esfold(&pg, &t) != 0)
            goto done;
        live.s[live.n++] = t;
        if (run_rebuild(&d, log, proj, pg.url, "full rebuild -> PostgreSQL", &t) != 0)
            goto done;
        reb.s[reb.n++] = t;
        if ((conn = pg_connect(pg.url)) == NULL)
            goto done;
        if (pg_check(&d, conn, "full rebuild -> PostgreSQL", ROWS_SQL) != 0) {
            PQfinish(conn);
            goto done;
        }
        PQfinish(conn);
        bu_report_row(&rep, "pg_rebuild", "full rebuild -> PostgreSQL",
                      "the live worker from origin, same target", &reb, &live,
                      "events_per_s", "ev/s", (double)d.events);
    }

kafka:
    if (!part_wanted("kafka"))
        goto sqlite;
    {
        const char *kenv = getenv("ESFOLD_BENCH_KAFKA_EVENTS");
        const char *kuri;
        char topic[300];
        kafka_ctx kc = {&pg, NULL, NULL};
        bu_run_fn klimits[] = {kafka_pipeline, kafka_sqlite_esfold};
        bu_samples kl[2];
        data kd = d;
        int krc = 1;

        kd.events = kenv && atoll(kenv) >= MIN_EVENTS ? atoll(kenv) : KAFKA_EVENTS;
        if (kd.events > d.events)
            kd.events = d.events;
        kd.accounts = kd.events / 10;
        snprintf(kd.log_path, sizeof kd.log_path, "%s/log-kafka.db", dir);
        snprintf(kd.log_uri, sizeof kd.log_uri, "sqlite:%s?partitions=%d",
                 kd.log_path, PARTITIONS);
        if ((kd.balance = calloc((size_t)kd.accounts, sizeof *kd.balance)) == NULL)
            goto done;
        bu_status("starting the Kafka broker");
        kuri = es_test_kafka_uri(NULL);
        bu_status(NULL);
        snprintf(topic, sizeof topic, "%s%s", strstr(kuri, "prefix=") + 7,
                 bank_account_type.name);
        if (load_log(&kd) != 0 || copy_to_kafka(&kd, topic) != 0)
            goto kafka_done;
        if (es_log_open(&kc.kafka, kuri) != 0 ||
            es_log_open(&kc.sqlite, kd.log_uri) != 0) {
            fprintf(stderr, "bench_projection: %s\n",
                    kc.sqlite ? es_errmsg(kc.sqlite) : es_errmsg(kc.kafka));
            goto kafka_done;
        }
        pg.d = &kd;
        pg.proj = proj;
        if (measure_group("Kafka log", o.reps, kafka_esfold, &kc, klimits, &kc,
                          2, &es, kl) != 0)
            goto kafka_done;
        snprintf(name, sizeof name, "SQL handler, Kafka log -> PostgreSQL");
        bu_report_row(&rep, "pg_sql_kafka_pipeline", name,
                      "libpq pipeline, same events from SQLite", &es, &kl[0],
                      "events_per_s", "ev/s", (double)kd.events);
        bu_report_row(&rep, "pg_sql_kafka_sqlite", name,
                      "the worker from a SQLite log", &es, &kl[1],
                      "events_per_s", "ev/s", (double)kd.events);
        krc = 0;
    kafka_done:
        pg.d = &d;
        pg.log = log;
        es_log_close(kc.kafka);
        es_log_close(kc.sqlite);
        bu_sqlite_files_remove(kd.log_path);
        free(kd.balance);
        if (krc != 0)
            goto done;
    }

sqlite:
    if (!part_wanted("sqlite"))
        goto latency;
    sq.d = &d;
    sq.proj = proj;
    sq.log = log;
    sq.keyed = keyed;
    snprintf(sq.dir, sizeof sq.dir, "%s", dir);
    if (keyed_only)
        goto sq_keyed_group;
    if (measure_group("SQLite", o.reps, sq_esfold, &sq, sq_limits, &sq, 2, &es,
                      lim) != 0)
        goto done;
    snprintf(name, sizeof name, "SQL handler -> SQLite");
    bu_report_row(&rep, "sq_sql_statements", name,
                  "same statements, raw SQLite, 1000/txn", &es, &lim[0],
                  "events_per_s", "ev/s", (double)d.events);
    bu_report_row(&rep, "sq_sql_insert", name,
                  "raw INSERT of final rows, 1 txn", &es, &lim[1],
                  "events_per_s", "ev/s", (double)d.events);
sq_keyed_group:
    if (measure_group("SQLite keyed", o.reps, sq_keyed, &sq, sq_klimits, &sq, 2,
                      &kes, lim) != 0)
        goto done;
    snprintf(name, sizeof name, "keyed fold -> SQLite");
    bu_report_row(&rep, "sq_keyed_read_insert", name,
                  "raw read of the events + INSERT of final rows", &kes,
                  &lim[0], "events_per_s", "ev/s", (double)d.events);
    bu_report_row(&rep, "sq_keyed_insert", name,
                  "raw INSERT of final rows, 1 txn", &kes, &lim[1],
                  "events_per_s", "ev/s", (double)d.events);
    if (keyed_only)
        goto sq_done;
    {
        bu_samples live = {0}, reb = {0};
        double t;
        char uri[4300];
        if (sq_esfold(&sq, &t) != 0)
            goto done;
        live.s[live.n++] = t;
        snprintf(uri, sizeof uri, "sqlite:%s", sq.path);
        if (run_rebuild(&d, log, proj, uri, "full rebuild -> SQLite", &t) != 0 ||
            sq_check(&d, sq.path, "full rebuild -> SQLite", ROWS_SQL) != 0)
            goto done;
        reb.s[reb.n++] = t;
        bu_report_row(&rep, "sq_rebuild", "full rebuild -> SQLite",
                      "the live worker from origin, same target", &reb, &live,
                      "events_per_s", "ev/s", (double)d.events);
    }
sq_done:
    if (sq.path[0])
        bu_sqlite_files_remove(sq.path);
    fact_worker_rss(&rep, "sq", "SQLite");

latency:
    if (!part_wanted("latency"))
        goto report;
    /* Latency: a fresh database for the PostgreSQL target. */
    if (pg_fresh_db(&pg) != 0 ||
        measure_latency(dir, "postgresql", pg.url, proj, &lat) != 0)
        goto done;
    lat_facts(&rep, "pg", "PostgreSQL", &lat);
    snprintf(lat_target, sizeof lat_target, "sqlite:%s/latency-target.db", dir);
    if (measure_latency(dir, "sqlite", lat_target, proj, &lat) != 0)
        goto done;
    lat_facts(&rep, "sq", "SQLite", &lat);
    bu_report_fact(&rep, "latency_load_events_per_s",
                   "steady load during the latency runs", lat.load_events_per_s,
                   "ev/s", 0);
report:
    fact_rss(&rep, "rss_end_mib", "RSS at end");

    if (o.json) {
        if (bu_report_print_json(&rep) != 0)
            goto done;
    } else {
        bu_report_print(&rep);
    }
    rc = 0;
done:
    if (rc != 0 && bu_interrupted())
        fprintf(stderr, "bench_projection: interrupted\n");
    es_log_close(log);
    es_projection_free(proj);
    es_projection_free(keyed);
    if (pg.admin)
        PQfinish(pg.admin);
    free(d.balance);
    bu_tmpdir_remove(dir);
    /* Not bu_reraise(): dying of the signal would skip the harness's
     * atexit, which stops the throwaway server and removes its files. */
    sig = bu_interrupted();
    return sig ? 128 + sig : rc;
}

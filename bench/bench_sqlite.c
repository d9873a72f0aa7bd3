/*
 * bench/bench_sqlite.c - esfold on SQLite beside what SQLite itself can do
 * with the same rows (docs/benchmarks.md).
 *
 *   fold     es_repo_load of one bank account stream (1 AccountOpened, then
 *            Deposited events) beside a raw SELECT of the payload column
 *            in version order, through the same index of the same file,
 *            plus json_loadb of each payload.
 *   append   es_log_append in commits of 1 and of 100 events with exact
 *            expected versions into a fresh file, beside plain prepared
 *            INSERTs of the same rows into a table made from the same DDL,
 *            in transactions of the same size, with the same PRAGMAs.
 *
 * usage: bench_sqlite [--events N] [--reps N] [--json]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sqlite3.h>

#include "esfold/esfold.h"
#include "samples/bank/account.h"

#include "benchutil.h"

#define DEFAULT_EVENTS 100000
#define DEFAULT_REPS 3
#define MIN_EVENTS 100
#define PARTITIONS 4
#define LOAD_COMMIT 1000 /* events per commit while loading the fold stream */
#define STREAM "acct-1"
/* The same as es__sqlite_open (adapters/sqlite/schema.c). */
#define BUSY_TIMEOUT_MS 10000
#define PRAGMAS "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON"

/* A deterministic amount in cents for the deposit at `version`. */
static int64_t amount_of(int64_t version)
{
    return 100 + (version * 7919) % 10000;
}

/* ---- Raw SQLite, opened the way the backend opens its files ------------- */

static int raw_fail(sqlite3 *db, const char *what)
{
    fprintf(stderr, "bench_sqlite: %s: %s\n", what,
            db ? sqlite3_errmsg(db) : "out of memory");
    return 1;
}

static int raw_open(sqlite3 **out, const char *path)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                 SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        raw_fail(db, path);
        sqlite3_close(db);
        return 1;
    }
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    if (sqlite3_exec(db, "PRAGMA journal_mode = WAL; " PRAGMAS, NULL, NULL,
                     NULL) != SQLITE_OK) {
        raw_fail(db, "setting pragmas");
        sqlite3_close(db);
        return 1;
    }
    *out = db;
    return 0;
}

/*
 * The DDL of es_events and its indexes as the backend made them in the
 * file at db, so that the raw INSERT limit writes into an identical table
 * (and follows the backend when its schema changes). *out is malloc'd.
 */
static int events_ddl(char **out, sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    size_t len = 0;
    char *ddl = NULL;
    int rc;

    *out = NULL;
    /* 'table' sorts after 'index': the table first. */
    rc = sqlite3_prepare_v2(db,
                            "SELECT sql FROM sqlite_master WHERE tbl_name = "
                            "'es_events' AND sql IS NOT NULL ORDER BY type DESC",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return raw_fail(db, "reading the schema of es_events");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *sql = (const char *)sqlite3_column_text(st, 0);
        size_t n = strlen(sql);
        char *grown = realloc(ddl, len + n + 3);
        if (grown == NULL) {
            rc = SQLITE_NOMEM;
            break;
        }
        ddl = grown;
        memcpy(ddl + len, sql, n);
        memcpy(ddl + len + n, ";\n", 3);
        len += n + 2;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE || ddl == NULL) {
        free(ddl);
        fprintf(stderr, "bench_sqlite: no es_events table in the log file\n");
        return 1;
    }
    *out = ddl;
    return 0;
}

/* ---- Loading the fold stream ------------------------------------------- */

/* Appends 1 AccountOpened and events - 1 Deposited to STREAM, in commits
 * of LOAD_COMMIT with exact expected versions; *balance is their sum. */
static int load_stream(es_log *log, long long events, int64_t *balance)
{
    es_event *evs = calloc(LOAD_COMMIT, sizeof *evs);
    bu_progress prog;
    int64_t version = 0;
    int rc = 1;

    *balance = 0;
    if (evs == NULL)
        return 1;
    bu_progress_begin(&prog, (uint64_t)events, "loading %lld events", events);
    while (version < events) {
        size_t n = 0, i;
        es_append_result res;
        int erc;

        if (bu_interrupted())
            goto done;
        for (; n < LOAD_COMMIT && version + (int64_t)n < events; n++) {
            int64_t v = version + (int64_t)n + 1;
            memset(&evs[n], 0, sizeof evs[n]);
            if (v == 1) {
                evs[n].type = "AccountOpened";
                evs[n].payload = json_pack("{s:s, s:s}", "owner", "Ada",
                                           "currency", "EUR");
            } else {
                evs[n].type = "Deposited";
                evs[n].payload = json_pack("{s:I}", "amount",
                                           (json_int_t)amount_of(v));
                *balance += amount_of(v);
            }
        }
        erc = es_log_append(log, &res, bank_account_type.name, STREAM,
                            version == 0 ? ES_EXPECT_NO_STREAM : version, evs, n);
        for (i = 0; i < n; i++)
            json_decref(evs[i].payload);
        if (erc != 0) {
            bu_progress_end(&prog);
            fprintf(stderr, "bench_sqlite: loading: %s\n", es_errmsg(log));
            goto done;
        }
        version = res.version;
        bu_progress_update(&prog, (uint64_t)version);
    }
    rc = 0;
done:
    bu_progress_end(&prog);
    free(evs);
    return rc;
}

/* ---- fold: esfold ------------------------------------------------------- */

typedef struct fold_ctx {
    es_repo *repo;
    long long events;
    int64_t balance; /* what the stream sums to */
} fold_ctx;

static int fold_esfold(void *vctx, double *seconds)
{
    fold_ctx *c = vctx;
    es_aggregate *agg = NULL;
    const bank_account *a;
    double t0 = bu_now();
    int rc = es_repo_load(c->repo, &agg, &bank_account_type, STREAM,
                          ES_RANGE_ALL);

    *seconds = bu_now() - t0;
    if (rc != 0) {
        fprintf(stderr, "bench_sqlite: fold: %s\n", es_errmsg(c->repo));
        return 1;
    }
    a = es_aggregate_state(agg);
    if (es_aggregate_version(agg) != c->events || a->balance != c->balance ||
        a->transactions != c->events - 1 || !a->opened) {
        fprintf(stderr,
                "bench_sqlite: fold: wrong state: version %lld, balance %lld, "
                "%lld transactions (expected %lld, %lld, %lld)\n",
                (long long)es_aggregate_version(agg), (long long)a->balance,
                (long long)a->transactions, c->events, (long long)c->balance,
                c->events - 1);
        rc = 1;
    }
    es_aggregate_free(agg);
    return rc;
}

/* ---- fold: the limit --------------------------------------------------- */

typedef struct raw_fold_ctx {
    sqlite3 *db;
    sqlite3_stmt *st;
    long long events;
    int64_t balance;
} raw_fold_ctx;

/* The payloads of the stream in version order: what any reader of this
 * file has to do at least, before its own apply. */
#define RAW_FOLD_SQL \
    "SELECT payload FROM es_events WHERE agg_type = ?1 AND stream_id = ?2 " \
    "ORDER BY version"

static int raw_fold_open(raw_fold_ctx *c, const char *path)
{
    sqlite3_stmt *plan = NULL;
    int uses_index = 0;

    if (raw_open(&c->db, path) != 0)
        return 1;
    if (sqlite3_prepare_v3(c->db, RAW_FOLD_SQL, -1, SQLITE_PREPARE_PERSISTENT,
                           &c->st, NULL) != SQLITE_OK)
        return raw_fail(c->db, "preparing the raw read");
    /* The limit must read through the index the backend reads through. */
    if (sqlite3_prepare_v2(c->db, "EXPLAIN QUERY PLAN " RAW_FOLD_SQL, -1, &plan,
                           NULL) != SQLITE_OK)
        return raw_fail(c->db, "explaining the raw read");
    sqlite3_bind_text(plan, 1, bank_account_type.name, -1, SQLITE_STATIC);
    sqlite3_bind_text(plan, 2, STREAM, -1, SQLITE_STATIC);
    while (sqlite3_step(plan) == SQLITE_ROW) {
        const char *detail = (const char *)sqlite3_column_text(plan, 3);
        if (detail && strstr(detail, "es_events_stream"))
            uses_index = 1;
    }
    sqlite3_finalize(plan);
    if (!uses_index) {
        fprintf(stderr, "bench_sqlite: the raw read does not use the index "
                        "es_events_stream: the limit would not be comparable\n");
        return 1;
    }
    return 0;
}

static void raw_fold_close(raw_fold_ctx *c)
{
    sqlite3_finalize(c->st);
    sqlite3_close(c->db);
}

static int fold_limit(void *vctx, double *seconds)
{
    raw_fold_ctx *c = vctx;
    long long n = 0;
    int64_t sum = 0;
    double t0 = bu_now();
    int rc;

    sqlite3_bind_text(c->st, 1, bank_account_type.name, -1, SQLITE_STATIC);
    sqlite3_bind_text(c->st, 2, STREAM, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(c->st)) == SQLITE_ROW) {
        json_error_t jerr;
        json_t *p = json_loadb((const char *)sqlite3_column_text(c->st, 0),
                               (size_t)sqlite3_column_bytes(c->st, 0), 0, &jerr);
        if (p == NULL) {
            sqlite3_reset(c->st);
            fprintf(stderr, "bench_sqlite: raw read: %s\n", jerr.text);
            return 1;
        }
        /* Summing costs next to nothing and proves the same rows were read. */
        sum += json_integer_value(json_object_get(p, "amount"));
        json_decref(p);
        n++;
    }
    sqlite3_reset(c->st);
    *seconds = bu_now() - t0;
    if (rc != SQLITE_DONE)
        return raw_fail(c->db, "raw read");
    if (n != c->events || sum != c->balance) {
        fprintf(stderr, "bench_sqlite: raw read: %lld rows summing to %lld "
                        "(expected %lld, %lld)\n",
                n, (long long)sum, c->events, (long long)c->balance);
        return 1;
    }
    return 0;
}

/* ---- append: esfold and the limit -------------------------------------- */

typedef struct append_ctx {
    const char *dir;
    const char *ddl;     /* es_events as the backend makes it */
    size_t commit_size;  /* events per commit */
    long long commits;   /* per run */
    json_t **payloads;   /* commit_size Deposited payloads, reused */
    int run;             /* numbers the fresh files */
} append_ctx;

static int append_esfold(void *vctx, double *seconds)
{
    append_ctx *c = vctx;
    char path[4096], uri[4200];
    es_log *log = NULL;
    es_event *evs;
    int64_t version = 0;
    double t0;
    long long i;
    size_t j;
    int rc = 1;

    snprintf(path, sizeof path, "%s/append-esfold-%d.db", c->dir, c->run++);
    snprintf(uri, sizeof uri, "sqlite:%s?partitions=%d", path, PARTITIONS);
    if ((evs = calloc(c->commit_size, sizeof *evs)) == NULL)
        return 1;
    for (j = 0; j < c->commit_size; j++) {
        evs[j].type = "Deposited";
        evs[j].payload = c->payloads[j];
    }
    if (es_log_open(&log, uri) != 0) {
        fprintf(stderr, "bench_sqlite: %s\n", es_errmsg(log));
        goto done;
    }
    t0 = bu_now();
    for (i = 0; i < c->commits; i++) {
        es_append_result res;
        if ((i & 255) == 0 && bu_interrupted())
            goto done;
        if (es_log_append(log, &res, bank_account_type.name, STREAM,
                          version == 0 ? ES_EXPECT_NO_STREAM : version, evs,
                          c->commit_size) != 0) {
            fprintf(stderr, "bench_sqlite: append: %s\n", es_errmsg(log));
            goto done;
        }
        version = res.version;
    }
    *seconds = bu_now() - t0;
    if (version != c->commits * (long long)c->commit_size) {
        fprintf(stderr, "bench_sqlite: append: the stream is at version %lld, "
                        "expected %lld\n",
                (long long)version, c->commits * (long long)c->commit_size);
        goto done;
    }
    rc = 0;
done:
    es_log_close(log);
    bu_sqlite_files_remove(path);
    free(evs);
    return rc;
}

/* The backend's INSERT (adapters/sqlite/log.c), column for column. */
#define RAW_INSERT_SQL \
    "INSERT INTO es_events (agg_type, partition_no, log_offset, stream_id," \
    " version, event_type, occurred_us, payload_schema, event_id," \
    " correlation_id, causation_id, payload, meta, commit_id, commit_size)" \
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"

static int64_t realtime_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A unique id of UUID length (36), increasing like UUIDv7s: the index on
 * event_id sees the same key sizes and insertion order. */
static void seq_id(char out[ES_UUID_BUFSZ], unsigned long long hi,
                   unsigned long long seq)
{
    snprintf(out, ES_UUID_BUFSZ, "%08llx-%04llx-7000-8000-%012llx",
             hi & 0xffffffffULL, (seq >> 48) & 0xffffULL,
             seq & 0xffffffffffffULL);
}

static int append_limit(void *vctx, double *seconds)
{
    append_ctx *c = vctx;
    char path[4096], commit_id[ES_UUID_BUFSZ], event_id[ES_UUID_BUFSZ];
    char payload[256];
    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL, *begin = NULL, *commit = NULL;
    int32_t part = es_partition_for(STREAM, strlen(STREAM), PARTITIONS);
    unsigned long long hi = (unsigned long long)time(NULL), seq = 0;
    int64_t offset = 0, version = 0;
    double t0;
    long long i;
    size_t j;
    int rc = 1;

    snprintf(path, sizeof path, "%s/append-limit-%d.db", c->dir, c->run++);
    if (raw_open(&db, path) != 0)
        goto done;
    if (sqlite3_exec(db, c->ddl, NULL, NULL, NULL) != SQLITE_OK) {
        raw_fail(db, "creating es_events");
        goto done;
    }
    if (sqlite3_prepare_v3(db, RAW_INSERT_SQL, -1, SQLITE_PREPARE_PERSISTENT,
                           &ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(db, "BEGIN IMMEDIATE", -1, SQLITE_PREPARE_PERSISTENT,
                           &begin, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(db, "COMMIT", -1, SQLITE_PREPARE_PERSISTENT, &commit,
                           NULL) != SQLITE_OK) {
        raw_fail(db, "preparing the raw insert");
        goto done;
    }
    t0 = bu_now();
    for (i = 0; i < c->commits; i++) {
        int64_t now = realtime_us();
        if ((i & 255) == 0 && bu_interrupted())
            goto done;
        seq_id(commit_id, hi, seq++);
        if (sqlite3_step(begin) != SQLITE_DONE) {
            raw_fail(db, "BEGIN");
            goto done;
        }
        sqlite3_reset(begin);
        for (j = 0; j < c->commit_size; j++) {
            size_t len = json_dumpb(c->payloads[j], payload, sizeof payload,
                                    JSON_COMPACT);
            if (len == 0 || len > sizeof payload) {
                fprintf(stderr, "bench_sqlite: raw insert: payload too long\n");
                goto done;
            }
            seq_id(event_id, hi, seq++);
            sqlite3_bind_text(ins, 1, bank_account_type.name, -1, SQLITE_STATIC);
            sqlite3_bind_int64(ins, 2, part);
            sqlite3_bind_int64(ins, 3, offset++);
            sqlite3_bind_text(ins, 4, STREAM, -1, SQLITE_STATIC);
            sqlite3_bind_int64(ins, 5, ++version);
            sqlite3_bind_text(ins, 6, "Deposited", -1, SQLITE_STATIC);
            sqlite3_bind_int64(ins, 7, now);
            sqlite3_bind_int64(ins, 8, 1);
            sqlite3_bind_text(ins, 9, event_id, -1, SQLITE_STATIC);
            sqlite3_bind_null(ins, 10);
            sqlite3_bind_null(ins, 11);
            sqlite3_bind_text(ins, 12, payload, (int)len, SQLITE_STATIC);
            sqlite3_bind_null(ins, 13);
            sqlite3_bind_text(ins, 14, commit_id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(ins, 15, (sqlite3_int64)c->commit_size);
            if (sqlite3_step(ins) != SQLITE_DONE) {
                raw_fail(db, "raw insert");
                goto done;
            }
            sqlite3_reset(ins);
        }
        if (sqlite3_step(commit) != SQLITE_DONE) {
            raw_fail(db, "COMMIT");
            goto done;
        }
        sqlite3_reset(commit);
    }
    *seconds = bu_now() - t0;
    rc = 0;
done:
    sqlite3_finalize(ins);
    sqlite3_finalize(begin);
    sqlite3_finalize(commit);
    if (db && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    bu_sqlite_files_remove(path);
    return rc;
}

static int measure_append(bu_report *rep, const bu_options *o, const char *dir,
                          const char *ddl, size_t commit_size, long long events)
{
    append_ctx c;
    bu_samples es, lim;
    char key[48], name[64], what[64], desc[96];
    bu_row *row;
    size_t j;
    int rc = 1;

    memset(&c, 0, sizeof c);
    c.dir = dir;
    c.ddl = ddl;
    c.commit_size = commit_size;
    c.commits = events / (long long)commit_size;
    if ((c.payloads = calloc(commit_size, sizeof *c.payloads)) == NULL)
        return 1;
    for (j = 0; j < commit_size; j++)
        if ((c.payloads[j] = json_pack("{s:I}", "amount",
                                       (json_int_t)amount_of((int64_t)j + 2))) ==
            NULL)
            goto done;
    snprintf(what, sizeof what, "append, commits of %zu", commit_size);
    if ((rc = bu_measure_pair(what, o->reps, append_esfold, &c, append_limit, &c,
                              &es, &lim)) != 0)
        goto done;
    snprintf(key, sizeof key, "append_%zu", commit_size);
    snprintf(name, sizeof name, "append, commits of %zu", commit_size);
    snprintf(desc, sizeof desc, "raw INSERT, %zu per transaction", commit_size);
    row = bu_report_row(rep, key, name, desc, &es, &lim, "events_per_s", "ev/s",
                        (double)c.commits * (double)commit_size);
    bu_row_metric(row, "commits_per_s", "commits/s", (double)c.commits);
    rc = 0;
done:
    for (j = 0; j < commit_size; j++)
        json_decref(c.payloads[j]);
    free(c.payloads);
    return rc;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
    bu_options o = {DEFAULT_EVENTS, DEFAULT_REPS, 0};
    char dir[4096] = "", path[4096 + 16], uri[4200 + 16], backend[32];
    char name[64];
    es_log *log = NULL;
    es_repo *repo = NULL;
    raw_fold_ctx raw;
    fold_ctx fold;
    bu_report rep;
    bu_samples es, lim;
    char *ddl = NULL;
    int64_t balance;
    long long append1;
    long before, peak, proc_peak;
    int rc, reset;

    memset(&raw, 0, sizeof raw);
    if ((rc = bu_options_parse(&o, argc, argv, MIN_EVENTS,
                               "  commits of 1 append events/10 events per run, "
                               "commits of 100 append events\n")) != 0)
        return rc == 1 ? 0 : 2;
    bu_signals_install();
    rc = 1;
    if (bu_tmpdir_make(dir, sizeof dir, "sqlite") != 0)
        goto done;
    snprintf(backend, sizeof backend, "SQLite %s", sqlite3_libversion());
    bu_report_init(&rep, "sqlite", backend, dir);
    bu_report_param(&rep, "events", o.events);
    bu_report_param(&rep, "reps", o.reps);

    /* fold: one stream of o.events events, loaded through esfold. */
    snprintf(path, sizeof path, "%s/fold.db", dir);
    snprintf(uri, sizeof uri, "sqlite:%s?partitions=%d", path, PARTITIONS);
    if (es_log_open(&log, uri) != 0) {
        fprintf(stderr, "bench_sqlite: %s\n", es_errmsg(log));
        goto done;
    }
    if (es_repo_new(&repo, log, NULL) != 0) {
        fprintf(stderr, "bench_sqlite: out of memory\n");
        goto done;
    }
    if (load_stream(log, o.events, &balance) != 0)
        goto done;
    if (raw_fold_open(&raw, path) != 0 || events_ddl(&ddl, raw.db) != 0)
        goto done;
    fold.repo = repo;
    fold.events = raw.events = o.events;
    fold.balance = raw.balance = balance;
    snprintf(name, sizeof name, "fold 1 stream x %lld events", o.events);
    if (bu_measure_pair("fold", o.reps, fold_esfold, &fold, fold_limit, &raw,
                        &es, &lim) != 0)
        goto done;
    bu_report_row(&rep, "fold", name, "raw SELECT + json_loads", &es, &lim,
                  "events_per_s", "ev/s", (double)o.events);

    /* Memory: the process's peak so far (loading and every fold above),
     * then one more fold alone, the peak reset before it. */
    proc_peak = bu_peak_rss_kib();
    reset = bu_peak_rss_reset();
    before = bu_peak_rss_kib(); /* after the reset: the RSS now */
    if (fold_esfold(&fold, &(double){0}) != 0)
        goto done;
    peak = bu_peak_rss_kib();
    bu_report_fact(&rep, "process_peak_rss_mib",
                   "peak RSS of loading + all folds", (double)proc_peak / 1024.0,
                   "MiB", 1);
    if (reset)
        bu_report_fact(&rep, "rss_before_fold_mib", "RSS before one more fold",
                       (double)before / 1024.0, "MiB", 1);
    bu_report_fact(&rep, "fold_peak_rss_mib",
                   reset ? "peak RSS during that fold"
                         : "peak RSS (whole process)",
                   (double)peak / 1024.0, "MiB", 1);
    raw_fold_close(&raw);
    memset(&raw, 0, sizeof raw);
    es_repo_free(repo);
    repo = NULL;
    es_log_close(log); /* the last close checkpoints the WAL into the file */
    log = NULL;
    bu_report_fact(&rep, "fold_file_mib", "fold file size",
                   (double)bu_file_size(path) / (1024.0 * 1024.0), "MiB", 1);
    bu_sqlite_files_remove(path);

    /* append: commits of 1 write events/10 (at least 10), commits of 100
     * write events rounded down to whole commits. */
    append1 = o.events / 10 < 10 ? 10 : o.events / 10;
    if (measure_append(&rep, &o, dir, ddl, 1, append1) != 0 ||
        measure_append(&rep, &o, dir, ddl, 100, o.events) != 0)
        goto done;

    if (o.json) {
        if (bu_report_print_json(&rep) != 0)
            goto done;
    } else {
        bu_report_print(&rep);
    }
    rc = 0;
done:
    if (rc != 0 && bu_interrupted())
        fprintf(stderr, "bench_sqlite: interrupted\n");
    raw_fold_close(&raw);
    es_repo_free(repo);
    es_log_close(log);
    free(ddl);
    bu_tmpdir_remove(dir);
    bu_reraise();
    return rc;
}

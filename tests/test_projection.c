/*
 * tests/test_projection.c - projection workers: exactly once into SQLite
 * and PostgreSQL, across SIGKILLs, with two workers on one partition, dead
 * letters, JSON-file projections, read-your-writes.
 *
 * The handlers are NOT idempotent (balance = balance + amount, an INSERT
 * without ON CONFLICT for AccountOpened), so an event applied twice shows
 * in the rows or as a failure. The expected rows come from a reference
 * fold of the log with the bank sample's aggregate (es_repo_load), and the
 * rows are read straight from the target with sqlite3 / libpq, not through
 * esfold.
 *
 * The PostgreSQL cases run against the server of tests/pg_harness.c (one
 * database per case) and are skipped when there is none.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "harness.h"
#include "pg_harness.h"
#include "esfold/projection.h"
#include "samples/bank/account.h"

/* ---- The projection under test ------------------------------------------ */

/* Set to make the Deposited handler fail on one stream (dead letters). */
typedef struct balances_ctl {
    const char *fail_stream;
    int calls_on_failing; /* how often the failing stream was tried */
} balances_ctl;

static balances_ctl ctl;

static int on_opened(es_sql *sql, const es_event *ev, void *ud)
{
    const char *owner = json_string_value(json_object_get(ev->payload, "owner"));
    es_sql_value p[] = {ES_SQL_STR(ev->stream_id), ES_SQL_STR(owner)};
    (void)ud;
    /* No ON CONFLICT: a second apply fails (and shows). */
    return es_sql_exec(sql, "INSERT INTO balances (id, owner, balance, txns)"
                       " VALUES ($1, $2, 0, 0)", p, 2);
}

static int on_moved(es_sql *sql, const es_event *ev, int64_t sign)
{
    json_int_t amount = json_integer_value(json_object_get(ev->payload, "amount"));
    es_sql_value p[] = {ES_SQL_STR(ev->stream_id), ES_SQL_I64(sign * amount)};
    if (ctl.fail_stream && strcmp(ev->stream_id, ctl.fail_stream) == 0) {
        ctl.calls_on_failing++;
        return es_sql_fail(sql, "refusing %s of %s", ev->type, ev->stream_id);
    }
    return es_sql_exec(sql, "UPDATE balances SET balance = balance + $2,"
                       " txns = txns + 1 WHERE id = $1", p, 2);
}

static int on_deposited(es_sql *sql, const es_event *ev, void *ud)
{
    (void)ud;
    return on_moved(sql, ev, 1);
}

static int on_withdrawn(es_sql *sql, const es_event *ev, void *ud)
{
    (void)ud;
    return on_moved(sql, ev, -1);
}

static const char *const follows[] = {"account", NULL};
static const char *const setup_sql[] = {
    "CREATE TABLE balances (id TEXT PRIMARY KEY, owner TEXT NOT NULL,"
    " balance BIGINT NOT NULL, txns BIGINT NOT NULL)",
    NULL};
static const es_projection_handler handlers[] = {
    {"AccountOpened", on_opened},
    {"Deposited", on_deposited},
    {"Withdrawn", on_withdrawn},
    {NULL, NULL}};

static const es_projection balances = {
    ES_PROJECTION_VERSION, "balances", 1, follows, setup_sql, handlers, NULL};

/* ---- Logs and the reference fold ---------------------------------------- */

static void append1(es_log *log, const char *id, const char *type,
                    json_t *payload)
{
    es_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    ev.payload = payload;
    if (es_log_append(log, NULL, "account", id, ES_EXPECT_ANY, &ev, 1) != 0)
        fail_msg("append: %s", es_errmsg(log));
    json_decref(payload);
}

/* accounts streams acct-0..; events in all, in random order of streams. */
static void fill_log(es_log *log, int accounts, int events, unsigned seed)
{
    char id[32];
    srand(seed);
    for (int a = 0; a < accounts; a++) {
        snprintf(id, sizeof id, "acct-%03d", a);
        append1(log, id, "AccountOpened",
                json_pack("{s:s, s:s}", "owner", a % 2 ? "O'Brien" : "Ada",
                          "currency", "EUR"));
    }
    for (int i = accounts; i < events; i++) {
        int a = rand() % accounts;
        snprintf(id, sizeof id, "acct-%03d", a);
        append1(log, id, rand() % 3 ? "Deposited" : "Withdrawn",
                json_pack("{s:I}", "amount", (json_int_t)(1 + rand() % 1000)));
    }
}

/* "id|owner|balance|txns\n" per account, sorted by id: from the log. */
static char *reference_rows(es_log *log, int accounts)
{
    es_repo *repo;
    char **rows = calloc((size_t)accounts, sizeof *rows), *out;
    size_t len = 0;
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    for (int a = 0; a < accounts; a++) {
        char id[32];
        es_aggregate *agg = NULL;
        const bank_account *acc;
        snprintf(id, sizeof id, "acct-%03d", a);
        if (es_repo_load(repo, &agg, &bank_account_type, id, ES_RANGE_ALL) != 0)
            fail_msg("load %s: %s", id, es_errmsg(repo));
        acc = es_aggregate_state(agg);
        rows[a] = malloc(200);
        snprintf(rows[a], 200, "%s|%s|%lld|%lld\n", id, acc->owner,
                 (long long)acc->balance, (long long)acc->transactions);
        len += strlen(rows[a]);
        es_aggregate_free(agg);
    }
    es_repo_free(repo);
    /* Sort like the targets' ORDER BY id (byte order). */
    for (int i = 1; i < accounts; i++)
        for (int j = i; j > 0 && strcmp(rows[j - 1], rows[j]) > 0; j--) {
            char *x = rows[j];
            rows[j] = rows[j - 1];
            rows[j - 1] = x;
        }
    out = calloc(1, len + 1);
    for (int a = 0; a < accounts; a++) {
        strcat(out, rows[a]);
        free(rows[a]);
    }
    free(rows);
    return out;
}

static const char rows_sql[] =
    "SELECT id, owner, balance, txns FROM balances ORDER BY id";

/* The same rows, read from a SQLite target file. */
static char *sqlite_rows(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    size_t cap = 1 << 16, len = 0;
    char *out = calloc(1, cap);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const char *v = (const char *)sqlite3_column_text(st, c);
            size_t n = strlen(v ? v : "") + 2;
            if (len + n + 1 > cap)
                out = realloc(out, cap *= 2);
            len += (size_t)sprintf(out + len, "%s%s", v ? v : "",
                                   c + 1 < sqlite3_column_count(st) ? "|" : "\n");
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

static char *pg_rows(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    PGresult *r;
    size_t cap = 1 << 16, len = 0;
    char *out = calloc(1, cap);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    for (int i = 0; i < PQntuples(r); i++)
        for (int k = 0; k < PQnfields(r); k++) {
            size_t n = strlen(PQgetvalue(r, i, k)) + 2;
            if (len + n + 1 > cap)
                out = realloc(out, cap *= 2);
            len += (size_t)sprintf(out + len, "%s%s", PQgetvalue(r, i, k),
                                   k + 1 < PQnfields(r) ? "|" : "\n");
        }
    PQclear(r);
    PQfinish(c);
    return out;
}

/* A fresh database on the test server; its URL (static storage per call
 * index is enough: the tests keep at most two). */
static const char *pg_fresh_db(void)
{
    static char urls[8][300];
    static int n;
    const char *base = es_test_pg_url();
    char sql[128], *slash;
    PGconn *c;
    PGresult *r;
    char *u;
    if (base == NULL)
        return NULL;
    u = urls[n++ % 8];
    snprintf(sql, sizeof sql, "CREATE DATABASE proj_%ld_%d", (long)getpid(), n);
    c = PQconnectdb(base);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    snprintf(u, 300, "%s", base);
    slash = strrchr(u, '/');
    snprintf(slash + 1, 300 - (size_t)(slash + 1 - u), "proj_%ld_%d",
             (long)getpid(), n);
    return u;
}

static es_projection_worker *open_worker(es_log *log, const es_projection *p,
                                         const char *target,
                                         const es_projection_worker_options *o)
{
    es_projection_worker *w = NULL;
    int rc = es_projection_worker_open(&w, log, p, target, o);
    if (rc != 0)
        fail_msg("worker open: %s (%s)", es_errmsg(w), es_strerror(rc));
    return w;
}

static es_projection_step run_caught_up(es_projection_worker *w)
{
    es_projection_step total;
    int rc = es_projection_worker_run(w, NULL, 1, &total, NULL, NULL);
    if (rc != 0)
        fail_msg("run: %s (%s)", es_errmsg(w), es_strerror(rc));
    return total;
}

static void assert_rows(const char *got, const char *want)
{
    if (strcmp(got, want) != 0)
        fail_msg("read model differs from the reference fold:\n--- got\n%s"
                 "--- want\n%s", got, want);
}

/* ---- Exactly once, restarts ------------------------------------------- */

static void crash_free_run(const char *target, const char *path_or_url, int pg)
{
    es_log *log = es_test_open_fresh_log();
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection_worker *w;
    es_projection_step st;
    char *want, *got;

    fill_log(log, 25, 700, 7);
    o.batch_size = 50;
    w = open_worker(log, &balances, target, &o);
    st = run_caught_up(w);
    assert_int_equal(st.applied, 700);
    es_projection_worker_close(w);
    /* A restart applies nothing again. */
    w = open_worker(log, &balances, target, &o);
    st = run_caught_up(w);
    assert_int_equal(st.applied, 0);
    assert_int_equal(st.batches, 0);
    es_projection_worker_close(w);
    want = reference_rows(log, 25);
    got = pg ? pg_rows(path_or_url, rows_sql) : sqlite_rows(path_or_url, rows_sql);
    assert_rows(got, want);
    free(want);
    free(got);
    es_log_close(log);
}

static void test_sqlite_target(void **state)
{
    const char *path = es_test_path("target");
    char uri[600];
    (void)state;
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    crash_free_run(uri, path, 0);
}

static void test_postgres_target(void **state)
{
    const char *url = pg_fresh_db();
    (void)state;
    if (url == NULL) {
        print_message("no PostgreSQL: %s\n", es_test_pg_why());
        skip();
    }
    crash_free_run(url, url, 1);
}

/* ---- Two workers on the same partitions --------------------------------- */

static void test_two_workers_fenced(void **state)
{
    const char *path = es_test_path("fence");
    char uri[600], *want, *got;
    es_log *log = es_test_open_fresh_log();
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection_worker *a, *b;
    es_projection_step sa = {0}, sb = {0};
    int rc;
    (void)state;

    snprintf(uri, sizeof uri, "sqlite:%s", path);
    fill_log(log, 10, 200, 3);
    o.batch_size = 1000;
    /* Both read the checkpoints (at 0) before either applies anything. */
    a = open_worker(log, &balances, uri, &o);
    b = open_worker(log, &balances, uri, &o);
    assert_int_equal(es_projection_worker_step(a, &sa), 0);
    assert_int_equal(sa.applied, 200);
    rc = es_projection_worker_step(b, &sb);
    assert_int_equal(rc, ES_ECONFLICT);
    assert_contains(es_errmsg(b), "the checkpoint moved from 0 to");
    assert_int_equal(sb.applied, 0);
    assert_int_equal(sb.batches, 0);
    /* b now knows the new checkpoints: nothing left to do. */
    sb = (es_projection_step){0};
    assert_int_equal(es_projection_worker_step(b, &sb), 0);
    assert_int_equal(sb.batches, 0);
    assert_int_equal(sb.caught_up, 1);
    es_projection_worker_close(a);
    es_projection_worker_close(b);
    want = reference_rows(log, 10);
    got = sqlite_rows(path, rows_sql);
    assert_rows(got, want);
    free(want);
    free(got);
    es_log_close(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqlite_target),
        cmocka_unit_test(test_postgres_target),
        cmocka_unit_test(test_two_workers_fenced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

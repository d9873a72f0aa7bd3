/*
 * tests/test_keyed.c - keyed-fold projections (projections/keyed.c): a
 * JSON document per key folded from events, with no SQL, into SQLite and
 * PostgreSQL.
 *
 * The expected documents come from a reference fold computed here while
 * the log is written (not from anything esfold reads back), and the rows
 * are read straight from the target with sqlite3 / libpq. "add" and
 * "count" are not idempotent, so an event folded twice shows, including
 * after workers are killed with SIGKILL and restarted (from the SQLite log
 * and from the Kafka log, with a zombie writer's stale records).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "esfold/rebuild.h"
#include "harness.h"
#include "kafka_harness.h"
#include "pg_harness.h"
#include "target_harness.h"
#include "esfold/projection.h"

/* Per account (the stream) and per owner (a key that is not the stream). */
static const char by_account_json[] =
    "{\"name\": \"by_account\", \"version\": 1, \"follows\": [\"account\"],"
    " \"keyed\": {\"table\": \"account_docs\", \"key\": \"$stream_id\","
    "  \"on\": {\"AccountOpened\": {\"set\": {\"owner\": \"$data.owner\","
    "                                         \"opened_at\": \"$version\"}},"
    "          \"Deposited\": {\"add\": {\"balance\": \"$data.amount\"},"
    "                          \"max\": {\"largest\": \"$data.amount\"},"
    "                          \"count\": [\"deposits\"]},"
    "          \"Withdrawn\": {\"add\": {\"withdrawn\": \"$data.amount\"},"
    "                          \"min\": {\"smallest_out\": \"$data.amount\"},"
    "                          \"count\": [\"withdrawals\"]}}}}";

static const char by_owner_json[] =
    "{\"name\": \"by_owner\", \"version\": 1, \"follows\": [\"account\"],"
    " \"keyed\": {\"table\": \"owner_docs\", \"key\": \"$data.owner\","
    "  \"on\": {\"AccountOpened\": {\"count\": [\"accounts\"]},"
    "          \"Deposited\": {\"add\": {\"total_in\": \"$data.amount\","
    "                                   \"net\": \"$data.amount\"},"
    "                          \"count\": [\"events\"]},"
    "          \"Withdrawn\": {\"add\": {\"total_out\": \"$data.amount\"},"
    "                          \"sub\": {\"net\": \"$data.amount\"},"
    "                          \"count\": [\"events\"]}}}}";

/* ---- the reference fold ------------------------------------------------- */

typedef struct reference {
    json_t *account, *owner;         /* key -> document */
    json_t *account_n, *owner_n;     /* key -> events folded */
} reference;

static void ref_init(reference *r)
{
    r->account = json_object();
    r->owner = json_object();
    r->account_n = json_object();
    r->owner_n = json_object();
}

static void ref_free(reference *r)
{
    json_decref(r->account);
    json_decref(r->owner);
    json_decref(r->account_n);
    json_decref(r->owner_n);
}

static json_t *doc_of(json_t *docs, json_t *counts, const char *key)
{
    json_t *d = json_object_get(docs, key);
    json_t *n = json_object_get(counts, key);
    if (d == NULL) {
        json_object_set_new(docs, key, json_object());
        d = json_object_get(docs, key);
    }
    json_object_set_new(counts, key,
                        json_integer(n ? json_integer_value(n) + 1 : 1));
    return d;
}

static void bump(json_t *d, const char *member, json_int_t by)
{
    json_t *v = json_object_get(d, member);
    json_object_set_new(d, member, json_integer((v ? json_integer_value(v) : 0) + by));
}

static void extreme(json_t *d, const char *member, json_int_t x, int max)
{
    json_t *v = json_object_get(d, member);
    if (v == NULL || (max ? x > json_integer_value(v) : x < json_integer_value(v)))
        json_object_set_new(d, member, json_integer(x));
}

static int64_t versions[100];

static void append_ev(es_log *log, reference *r, int a, const char *type,
                      json_int_t amount)
{
    char id[32], owner[32];
    es_event ev;
    json_t *d;
    snprintf(id, sizeof id, "acct-%03d", a);
    snprintf(owner, sizeof owner, "owner-%d", a % 7);
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    ev.payload = strcmp(type, "AccountOpened") == 0
                     ? json_pack("{s:s}", "owner", owner)
                     : json_pack("{s:s, s:I}", "owner", owner, "amount", amount);
    if (es_log_append(log, NULL, "account", id, ES_EXPECT_ANY, &ev, 1) != 0)
        fail_msg("append: %s", es_errmsg(log));
    json_decref(ev.payload);
    versions[a]++;
    if (r == NULL)
        return;
    d = doc_of(r->account, r->account_n, id);
    if (strcmp(type, "AccountOpened") == 0) {
        json_object_set_new(d, "owner", json_string(owner));
        json_object_set_new(d, "opened_at", json_integer(versions[a]));
    } else if (strcmp(type, "Deposited") == 0) {
        bump(d, "balance", amount);
        extreme(d, "largest", amount, 1);
        bump(d, "deposits", 1);
    } else {
        bump(d, "withdrawn", amount);
        extreme(d, "smallest_out", amount, 0);
        bump(d, "withdrawals", 1);
    }
    d = doc_of(r->owner, r->owner_n, owner);
    if (strcmp(type, "AccountOpened") == 0) {
        bump(d, "accounts", 1);
    } else {
        bump(d, strcmp(type, "Deposited") == 0 ? "total_in" : "total_out", amount);
        bump(d, "net", strcmp(type, "Deposited") == 0 ? amount : -amount);
        bump(d, "events", 1);
    }
}

static void fill(es_log *log, reference *r, int accounts, int events,
                 unsigned seed)
{
    srand(seed);
    memset(versions, 0, sizeof versions);
    for (int a = 0; a < accounts; a++)
        append_ev(log, r, a, "AccountOpened", 0);
    for (int i = accounts; i < events; i++)
        append_ev(log, r, rand() % accounts, rand() % 3 ? "Deposited" : "Withdrawn",
                  1 + rand() % 1000);
}

/* ---- reading the target ------------------------------------------------- */

/* key -> [doc, version] of table, straight from the target. */
static json_t *target_docs(const char *path_or_url, int pg, const char *table)
{
    json_t *out = json_object();
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT key, doc, version FROM %s", table);
    if (pg) {
        PGconn *c = PQconnectdb(path_or_url);
        PGresult *res;
        assert_int_equal(PQstatus(c), CONNECTION_OK);
        res = PQexec(c, sql);
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            fail_msg("%s: %s", sql, PQerrorMessage(c));
        for (int i = 0; i < PQntuples(res); i++)
            json_object_set_new(out, PQgetvalue(res, i, 0),
                                json_pack("[o, I]",
                                          json_loads(PQgetvalue(res, i, 1), 0, NULL),
                                          (json_int_t)atoll(PQgetvalue(res, i, 2))));
        PQclear(res);
        PQfinish(c);
    } else {
        sqlite3 *db;
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_open_v2(path_or_url, &db, SQLITE_OPEN_READONLY,
                                         NULL), SQLITE_OK);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
            fail_msg("%s: %s", sql, sqlite3_errmsg(db));
        while (sqlite3_step(st) == SQLITE_ROW)
            json_object_set_new(out, (const char *)sqlite3_column_text(st, 0),
                                json_pack("[o, I]",
                                          json_loads((const char *)
                                                     sqlite3_column_text(st, 1), 0, NULL),
                                          (json_int_t)sqlite3_column_int64(st, 2)));
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    return out;
}

static void assert_docs(const char *path_or_url, int pg, const char *table,
                        json_t *docs, json_t *counts)
{
    json_t *got = target_docs(path_or_url, pg, table), *want = json_object();
    const char *key;
    json_t *d;
    json_object_foreach(docs, key, d)
        json_object_set_new(want, key,
                            json_pack("[O, O]", d, json_object_get(counts, key)));
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_SORT_KEYS), *w = json_dumps(want, JSON_SORT_KEYS);
        fail_msg("%s differs from the reference fold:\n--- got\n%s\n--- want\n%s",
                 table, g, w);
    }
    json_decref(got);
    json_decref(want);
}

/* ---- targets -------------------------------------------------------------- */


static es_projection *load(const char *text)
{
    es_projection *p = NULL;
    es_error err;
    if (es_projection_load_json(&p, text, "test", &err) != 0)
        fail_msg("load: %s", err.text);
    return p;
}

static es_projection_step run(es_log *log, const es_projection *p,
                              const char *target, size_t batch)
{
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection_worker *w = NULL;
    es_projection_step st;
    int rc;
    o.batch_size = batch;
    o.backoff_ms = -1;
    if ((rc = es_projection_worker_open(&w, log, p, target, &o)) != 0)
        fail_msg("open: %s", es_errmsg(w));
    if ((rc = es_projection_worker_run(w, NULL, 1, &st, NULL, NULL)) != 0)
        fail_msg("run: %s", es_errmsg(w));
    es_projection_worker_close(w);
    return st;
}

/* ---- the fold equals the reference ---------------------------------------- */

static void fold_case(const char *target, const char *path_or_url, int pg)
{
    es_log *log = es_test_open_fresh_log();
    es_projection *acc = load(by_account_json), *own = load(by_owner_json);
    reference r;
    es_projection_step st;

    ref_init(&r);
    fill(log, &r, 30, 1500, 3);
    st = run(log, acc, target, 100);
    assert_int_equal(st.applied, 1500);
    st = run(log, own, target, 1000);
    assert_int_equal(st.applied, 1500);
    assert_docs(path_or_url, pg, "account_docs", r.account, r.account_n);
    assert_docs(path_or_url, pg, "owner_docs", r.owner, r.owner_n);
    /* More events on top of documents that exist; a restart folds only
     * those. */
    for (int i = 0; i < 300; i++)
        append_ev(log, &r, rand() % 30, i % 2 ? "Deposited" : "Withdrawn",
                  1 + rand() % 50);
    assert_int_equal(run(log, acc, target, 7).applied, 300);
    assert_int_equal(run(log, own, target, 1000).applied, 300);
    assert_int_equal(run(log, own, target, 1000).applied, 0);
    assert_docs(path_or_url, pg, "account_docs", r.account, r.account_n);
    assert_docs(path_or_url, pg, "owner_docs", r.owner, r.owner_n);
    ref_free(&r);
    es_projection_free(acc);
    es_projection_free(own);
    es_log_close(log);
}

/* A rebuild of a keyed projection (the fold reads its documents through
 * the rebuild's shadow names) ends equal to the reference; the live table
 * was damaged first, so the swap shows. */
static void rebuild_case(const char *target, const char *path_or_url, int pg)
{
    es_log *log = es_test_open_fresh_log();
    es_projection *acc = load(by_account_json);
    es_rebuild_options o = ES_REBUILD_OPTIONS_INIT;
    es_rebuild_progress prog;
    es_error err;
    reference r;

    ref_init(&r);
    fill(log, &r, 20, 600, 3);
    assert_int_equal(run(log, acc, target, 100).applied, 600);
    {
        /* damage the live documents behind the worker's back */
        if (pg) {
            PGconn *c = PQconnectdb(path_or_url);
            PGresult *res = PQexec(c, "UPDATE account_docs SET doc = '{}'");
            assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
            PQclear(res);
            PQfinish(c);
        } else {
            sqlite3 *db = NULL;
            assert_int_equal(sqlite3_open(path_or_url, &db), SQLITE_OK);
            assert_int_equal(sqlite3_exec(db, "UPDATE account_docs SET doc = '{}'",
                                          NULL, NULL, NULL), SQLITE_OK);
            sqlite3_close(db);
        }
    }
    o.batch_size = 50;
    if (es_projection_rebuild(&prog, log, acc, target, &o, &err) != 0)
        fail_msg("rebuild: %s", err.text);
    assert_docs(path_or_url, pg, "account_docs", r.account, r.account_n);
    ref_free(&r);
    es_projection_free(acc);
    es_log_close(log);
}

static void test_rebuild_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(rebuild_case, "rebuild");
}

static void test_rebuild_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(rebuild_case, "keyed");
}

static void test_fold_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(fold_case, "fold");
}

static void test_fold_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(fold_case, "keyed");
}

/* ---- an event that does not fold is dead-lettered ------------------------ */

static void bad_event_case(const char *target, const char *path_or_url, int pg)
{
    es_log *log = es_test_open_fresh_log();
    es_projection *acc = load(by_account_json);
    reference r;
    es_projection_step st;
    es_event ev;

    ref_init(&r);
    fill(log, &r, 10, 200, 5);
    /* acct-003's amount is text: its stream stops there, others go on. */
    memset(&ev, 0, sizeof ev);
    ev.type = "Deposited";
    ev.payload = json_pack("{s:s, s:s}", "owner", "owner-3", "amount", "lots");
    assert_int_equal(es_log_append(log, NULL, "account", "acct-003",
                                   ES_EXPECT_ANY, &ev, 1), 0);
    json_decref(ev.payload);
    {
        reference skip;
        ref_init(&skip); /* what acct-003 gets from here on is not folded */
        for (int i = 0; i < 50; i++)
            append_ev(log, i % 10 == 3 ? &skip : &r, i % 10, "Deposited", 5);
        ref_free(&skip);
    }
    st = run(log, acc, target, 100);
    assert_int_equal(st.dead_lettered, 1 + 5);
    assert_docs(path_or_url, pg, "account_docs", r.account, r.account_n);
    ref_free(&r);
    es_projection_free(acc);
    es_log_close(log);
}

static void test_bad_event_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(bad_event_case, "bad");
}

static void test_bad_event_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(bad_event_case, "keyed");
}

/* ---- SIGKILLed workers: no double fold ------------------------------------ */

static void crash_child(const char *log_uri, const char *target)
{
    es_log *log = NULL;
    es_projection *p = load(by_owner_json);
    es_projection_worker *w = NULL;
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    int rc;
    o.batch_size = 20;
    if (es_log_open(&log, log_uri) != 0)
        _exit(3);
    rc = es_projection_worker_open(&w, log, p, target, &o);
    if (rc == 0)
        rc = es_projection_worker_run(w, NULL, 1, NULL, NULL, NULL);
    if (rc != 0)
        fprintf(stderr, "crash child: %s\n", es_errmsg(w));
    es_projection_worker_close(w);
    es_log_close(log);
    _exit(rc == 0 ? 0 : 4);
}

/* Stale deposits of 1,000,000 to owner-0 that a zombie writer outside
 * esfold leaves on the Kafka log for acct-000..019: rejected by every
 * reader, never in the reference, so one folded shows. */
static void zombies(es_log *log, const char *log_uri, int first)
{
    es_test_kafka_foreign_records(log, log_uri, "account", "acct-%03d", first, 20,
                                  20, 2, "Deposited",
                                  "{\"owner\":\"owner-0\",\"amount\":1000000}");
}

/* From the log at log_uri; on the Kafka log (kafka 1) with zombie records
 * before the first kill and halfway. */
static void crash_case_on(const char *log_uri, int kafka, const char *target,
                          const char *path_or_url, int pg)
{
    es_projection *p = load(by_owner_json);
    es_log *log = NULL;
    reference r;
    int kills = 0, rounds = 0;

    assert_int_equal(es_log_open(&log, log_uri), 0);
    ref_init(&r);
    fill(log, &r, 20, 1500, 9);
    if (kafka)
        zombies(log, log_uri, 0);
    run(log, p, target, 20); /* the target made, and a first fold */
    srand(777);
    while (kills < 8 && rounds < 100) {
        pid_t kid;
        int status;
        rounds++;
        for (int i = 0; i < 150; i++)
            append_ev(log, &r, rand() % 20, "Deposited", 1 + rand() % 50);
        if (kafka && rounds == 4)
            zombies(log, log_uri, 20);
        if ((kid = fork()) == 0)
            crash_child(log_uri, target);
        assert_true(kid > 0);
        usleep((useconds_t)(500 + rand() % (kafka ? 60000 : pg ? 20000 : 5000)));
        kill(kid, SIGKILL);
        assert_int_equal(waitpid(kid, &status, 0), kid);
        if (WIFSIGNALED(status))
            kills++;
        else if (WEXITSTATUS(status) != 0)
            fail_msg("a worker failed (exit %d)", WEXITSTATUS(status));
    }
    print_message("keyed crash test (%.6s log): %d kills in %d rounds\n", log_uri,
                  kills, rounds);
    assert_true(kills >= 8);
    if (kafka)
        assert_int_equal(es_test_count_verdict(log, "account", ES_VERDICT_STALE),
                         rounds >= 4 ? 40 : 20);
    run(log, p, target, 20);
    assert_docs(path_or_url, pg, "owner_docs", r.owner, r.owner_n);
    ref_free(&r);
    es_projection_free(p);
    es_log_close(log);
}

static void crash_case(const char *target, const char *path_or_url, int pg)
{
    crash_case_on(es_test_fresh_log_uri(), 0, target, path_or_url, pg);
}

static void crash_case_kafka(const char *target, const char *path_or_url, int pg)
{
    crash_case_on(es_test_kafka_uri(NULL), 1, target, path_or_url, pg);
}

static void test_crash_kafka_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(crash_case_kafka, "crashk");
}

static void test_crash_kafka_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(crash_case_kafka, "keyed");
}

static void test_crash_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(crash_case, "crash");
}

static void test_crash_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(crash_case, "keyed");
}

/* ---- a stored document that is not JSON stops the worker ------------------ */

static void test_corrupt_document(void **state)
{
    const char *path = es_test_path("corrupt");
    char uri[600], sql[200];
    es_log *log = es_test_open_fresh_log();
    es_projection *p = load(by_owner_json);
    es_projection_worker *w = NULL;
    sqlite3 *db;
    int rc;
    (void)state;
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    fill(log, NULL, 7, 50, 1);
    run(log, p, uri, 100);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(sql, sizeof sql, "UPDATE owner_docs SET doc = 'nope' WHERE key = 'owner-2'");
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    append_ev(log, NULL, 2, "Deposited", 5);
    assert_int_equal(es_projection_worker_open(&w, log, p, uri, NULL), 0);
    rc = es_projection_worker_run(w, NULL, 1, NULL, NULL, NULL);
    assert_int_equal(rc, ES_ECORRUPT);
    assert_contains(es_errmsg(w), "key owner-2: the stored document is not a "
                                  "JSON object");
    es_projection_worker_close(w);
    es_projection_free(p);
    es_log_close(log);
}

/* ---- definitions that are refused ----------------------------------------- */

static void refused(const char *text, const char *needle)
{
    es_projection *p = NULL;
    es_error err;
    assert_int_equal(es_projection_load_json(&p, text, "f.json", &err), ES_EINVAL);
    assert_null(p);
    assert_contains(err.text, needle);
}

static void test_load_errors(void **state)
{
    (void)state;
    refused("{\"name\": \"k\", \"follows\": [\"a\"], \"keyed\": {\"table\": "
            "\"t; DROP\", \"key\": \"$stream_id\", \"on\": {\"E\": {}}}}",
            "plain SQL name");
    refused("{\"name\": \"k\", \"follows\": [\"a\"], \"keyed\": {\"table\": "
            "\"t\", \"key\": \"stream_id\", \"on\": {\"E\": {}}}}",
            "\"keyed\".\"key\": must be an event field");
    refused("{\"name\": \"k\", \"follows\": [\"a\"], \"keyed\": {\"table\": "
            "\"t\", \"key\": \"$nope\", \"on\": {\"E\": {}}}}",
            "unknown field $nope");
    refused("{\"name\": \"k\", \"follows\": [\"a\"], \"keyed\": {\"table\": "
            "\"t\", \"key\": \"$stream_id\", \"on\": {\"E\": {\"mul\": {}}}}}",
            "unknown operation");
    refused("{\"name\": \"k\", \"follows\": [\"a\"], \"keyed\": {\"table\": "
            "\"t\", \"key\": \"$stream_id\", \"on\": {\"E\": {\"count\": \"n\"}}}}",
            "array of member names");
    refused("{\"name\": \"k\", \"follows\": [\"a\"], \"on\": {\"E\": []}, "
            "\"keyed\": {\"table\": \"t\", \"key\": \"$stream_id\", \"on\": "
            "{\"E\": {}}}}", "no \"setup\" or \"on\" beside it");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold_sqlite),
        cmocka_unit_test(test_fold_postgres),
        cmocka_unit_test(test_bad_event_sqlite),
        cmocka_unit_test(test_bad_event_postgres),
        cmocka_unit_test(test_crash_sqlite),
        cmocka_unit_test(test_crash_postgres),
        cmocka_unit_test(test_crash_kafka_sqlite),
        cmocka_unit_test(test_crash_kafka_postgres),
        cmocka_unit_test(test_corrupt_document),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_rebuild_sqlite),
        cmocka_unit_test(test_rebuild_postgres),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

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
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "esfold/cli.h"
#include "esfold/rebuild.h"
#include "harness.h"
#include "kafka_harness.h"
#include "projections/target_backend.h" /* the document cache, below the worker */
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

/* Nested member paths, a segment named by the event ({$stream_id}), a
 * nested source ($data.detail.amount) and "delete" of a member. */
static const char nested_json[] =
    "{\"name\": \"nested\", \"version\": 1, \"follows\": [\"account\"],"
    " \"keyed\": {\"table\": \"nested_docs\", \"key\": \"$data.owner\","
    "  \"on\": {\"AccountOpened\": {\"count\": [\"stats.accounts\"],"
    "                             \"set\": {\"last.opened\": \"$stream_id\"}},"
    "          \"Deposited\": {\"add\": {\"totals.in\": \"$data.detail.amount\","
    "                   \"by_account.{$stream_id}.net\": \"$data.amount\"},"
    "                          \"count\": [\"stats.deposits\"],"
    "                          \"max\": {\"stats.largest.in\": \"$data.amount\"}},"
    "          \"Withdrawn\": {\"sub\": {\"by_account.{$stream_id}.net\": \"$data.amount\"},"
    "                          \"add\": {\"totals.out\": \"$data.detail.amount\"},"
    "                          \"count\": [\"stats.withdrawals\"],"
    "                          \"delete\": [\"last.opened\"]}}}}";

/* ---- the same folds in C (es_projection_keyed) ---------------------------- */

static void c_bump(json_t *doc, const char *member, json_int_t by)
{
    json_t *v = json_object_get(doc, member);
    json_object_set_new(doc, member, json_integer((v ? json_integer_value(v) : 0) + by));
}

/* by_account_json's operations, written by hand. */
static int c_account_fold(json_t *doc, const es_event *ev, char *why,
                          size_t why_size, void *user_data)
{
    json_t *amount = json_object_get(ev->payload, "amount"), *v;
    int *calls = user_data;
    (*calls)++;
    if (strcmp(ev->type, "AccountOpened") == 0) {
        json_object_set(doc, "owner", json_object_get(ev->payload, "owner"));
        json_object_set_new(doc, "opened_at", json_integer(ev->version));
        return 0;
    }
    if (!json_is_integer(amount)) {
        snprintf(why, why_size, "%s of %s: amount is not an integer", ev->type,
                 ev->stream_id);
        return -1;
    }
    if (strcmp(ev->type, "Deposited") == 0) {
        c_bump(doc, "balance", json_integer_value(amount));
        c_bump(doc, "deposits", 1);
        v = json_object_get(doc, "largest");
        if (v == NULL || json_integer_value(amount) > json_integer_value(v))
            json_object_set(doc, "largest", amount);
    } else {
        c_bump(doc, "withdrawn", json_integer_value(amount));
        c_bump(doc, "withdrawals", 1);
        v = json_object_get(doc, "smallest_out");
        if (v == NULL || json_integer_value(amount) < json_integer_value(v))
            json_object_set(doc, "smallest_out", amount);
    }
    return 0;
}

/* by_owner_json's, with the key from a key function. */
static int c_owner_key(char *out, size_t out_size, const es_event *ev,
                       void *user_data)
{
    const char *owner = json_string_value(json_object_get(ev->payload, "owner"));
    (void)user_data;
    if (owner == NULL)
        return -1;
    snprintf(out, out_size, "%s", owner);
    return 0;
}

static int c_owner_fold(json_t *doc, const es_event *ev, char *why,
                        size_t why_size, void *user_data)
{
    json_int_t amount = json_integer_value(json_object_get(ev->payload, "amount"));
    (void)why;
    (void)why_size;
    (void)user_data;
    if (strcmp(ev->type, "AccountOpened") == 0) {
        c_bump(doc, "accounts", 1);
        return 0;
    }
    c_bump(doc, strcmp(ev->type, "Deposited") == 0 ? "total_in" : "total_out",
           amount);
    c_bump(doc, "net", strcmp(ev->type, "Deposited") == 0 ? amount : -amount);
    c_bump(doc, "events", 1);
    return 0;
}

static int c_calls;
static const char *const account_types[] = {"account", NULL};
static const char *const money_types[] = {"AccountOpened", "Deposited",
                                          "Withdrawn", NULL};

static es_projection *c_projection(const char *name)
{
    es_keyed_projection d = ES_KEYED_PROJECTION_INIT;
    es_projection *p = NULL;
    es_error err;
    d.name = name;
    d.follows = account_types;
    if (strcmp(name, "by_account") == 0) {
        d.table = "account_docs";
        d.key = "$stream_id";
        d.on = money_types;
        d.fold = c_account_fold;
        d.user_data = &c_calls;
    } else {
        d.table = "owner_docs";
        d.key_fn = c_owner_key; /* and on NULL: every type */
        d.fold = c_owner_fold;
    }
    if (es_projection_keyed(&p, &d, &err) != 0)
        fail_msg("es_projection_keyed: %s", err.text);
    return p;
}

/* The cases below run on either kind: the JSON file or its C twin. */
static int use_c;

/* ---- the reference fold ------------------------------------------------- */

typedef struct reference {
    json_t *account, *owner, *nested; /* key -> document */
    json_t *account_n, *owner_n, *nested_n; /* key -> events folded */
} reference;

static void ref_init(reference *r)
{
    r->account = json_object();
    r->owner = json_object();
    r->nested = json_object();
    r->account_n = json_object();
    r->owner_n = json_object();
    r->nested_n = json_object();
}

static void ref_free(reference *r)
{
    json_decref(r->account);
    json_decref(r->owner);
    json_decref(r->nested);
    json_decref(r->account_n);
    json_decref(r->owner_n);
    json_decref(r->nested_n);
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

/* d.a.b... made on the way (a NULL-ended list of member names). */
static json_t *at_path(json_t *d, const char *const *names)
{
    for (; names[1]; names++) {
        json_t *c = json_object_get(d, names[0]);
        if (c == NULL) {
            json_object_set_new(d, names[0], json_object());
            c = json_object_get(d, names[0]);
        }
        d = c;
    }
    return d;
}

static void bump_at(json_t *d, json_int_t by, const char *a, const char *b,
                    const char *c)
{
    const char *names[] = {a, b, c, NULL};
    size_t n = c ? 3 : b ? 2 : 1;
    bump(at_path(d, names), names[n - 1], by);
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
                     : json_pack("{s:s, s:I, s:{s:I}}", "owner", owner,
                                 "amount", amount, "detail", "amount", amount);
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
    /* nested_json, by owner */
    d = doc_of(r->nested, r->nested_n, owner);
    if (strcmp(type, "AccountOpened") == 0) {
        bump_at(d, 1, "stats", "accounts", NULL);
        json_object_set_new(at_path(d, (const char *const[]){"last", "opened", NULL}),
                            "opened", json_string(id));
    } else if (strcmp(type, "Deposited") == 0) {
        json_t *largest;
        bump_at(d, amount, "totals", "in", NULL);
        bump_at(d, amount, "by_account", id, "net");
        bump_at(d, 1, "stats", "deposits", NULL);
        largest = json_object_get(at_path(d, (const char *const[]){"stats", "largest", "in", NULL}), "in");
        if (largest == NULL || amount > json_integer_value(largest))
            json_object_set_new(at_path(d, (const char *const[]){"stats", "largest", "in", NULL}),
                                "in", json_integer(amount));
    } else {
        bump_at(d, -amount, "by_account", id, "net");
        bump_at(d, amount, "totals", "out", NULL);
        bump_at(d, 1, "stats", "withdrawals", NULL);
        json_object_del(json_object_get(d, "last"), "opened");
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

/* The first column of the first row of sql, as an integer. */
static long long target_i64(const char *path_or_url, int pg, const char *sql)
{
    long long v = -1;
    if (pg) {
        PGconn *c = PQconnectdb(path_or_url);
        PGresult *res;
        assert_int_equal(PQstatus(c), CONNECTION_OK);
        res = PQexec(c, sql);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
            fail_msg("%s: %s", sql, PQerrorMessage(c));
        v = atoll(PQgetvalue(res, 0, 0));
        PQclear(res);
        PQfinish(c);
    } else {
        sqlite3 *db;
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_open_v2(path_or_url, &db, SQLITE_OPEN_READONLY,
                                         NULL), SQLITE_OK);
        sqlite3_busy_timeout(db, 10000);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_ROW)
            fail_msg("%s: %s", sql, sqlite3_errmsg(db));
        v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    return v;
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
    if (use_c && (text == by_account_json || text == by_owner_json))
        return c_projection(text == by_account_json ? "by_account" : "by_owner");
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
    c_calls = 0;
    st = run(log, acc, target, 100);
    assert_int_equal(st.applied, 1500);
    if (use_c) /* the C function folded them (on the batch path: once each) */
        assert_int_equal(c_calls, 1500);
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

/* The errors of the failed dead letters, one a line. */
typedef struct dl_text {
    int failed;
    char error[2000];
} dl_text;

static int first_failed(const es_projection_dead_letter *dl, void *ud)
{
    dl_text *t = ud;
    size_t n = strlen(t->error);
    if (strcmp(dl->status, "failed") == 0 && ++t->failed)
        snprintf(t->error + n, sizeof t->error - n, "%s\n", dl->error);
    return 0;
}

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
    {
        dl_text dl = {0, ""};
        es_error err;
        if (es_projection_dead_letters(target, "by_account", first_failed, &dl,
                                       &err) != 0)
            fail_msg("dead letters: %s", err.text);
        assert_int_equal(dl.failed, 1);
        assert_contains(dl.error, use_c
            ? "keyed fold account_docs, Deposited event, key acct-003: "
              "Deposited of acct-003: amount is not an integer"
            : "keyed fold account_docs (test), Deposited event, key "
              "acct-003: add balance: the event's value is not a number");
    }
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

/* A worker process: runs the owner fold until caught up, then exits 0. */
static void worker_child(const char *log_uri, const char *target, size_t batch)
{
    es_log *log = NULL;
    es_projection *p = load(by_owner_json);
    es_projection_worker *w = NULL;
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    int rc;
    o.batch_size = batch;
    o.backoff_ms = -1;
    if (es_log_open(&log, log_uri) != 0)
        _exit(3);
    rc = es_projection_worker_open(&w, log, p, target, &o);
    if (rc == 0)
        rc = es_projection_worker_run(w, NULL, 1, NULL, NULL, NULL);
    if (rc != 0)
        fprintf(stderr, "worker child: %s\n", es_errmsg(w));
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
            worker_child(log_uri, target, 20);
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

/* ---- two workers folding into the same keys ------------------------------ */

/*
 * The owner is not the stream: events of one key lie in every partition.
 * Two worker processes step over the 8 partitions (no sharing: the
 * checkpoint CAS keeps each batch exactly once), one batch of each per
 * step. The second starts when the first has committed a batch, so that
 * one folds partition p while the other folds partition q into the same
 * owners (started together, the second would only trail the first,
 * waiting on the same checkpoint row). A worker that read a
 * document, then wrote it over the other's commit, would lose the other's
 * events: the documents (and their event counts) would differ from the
 * reference fold.
 */
static void concurrent_case(const char *target, const char *path_or_url, int pg)
{
    char log_uri[600];
    es_projection *p = load(by_owner_json);
    es_log *log = NULL;
    static const char ckpt_sql[] = "SELECT COALESCE(SUM(next_offset), 0) FROM "
                                   "es_proj_checkpoints WHERE projection = "
                                   "'by_owner'";
    reference r;
    pid_t kids[2];
    long long start;

    snprintf(log_uri, sizeof log_uri, "sqlite:%s.db?partitions=8",
             es_test_path("concurrent"));
    assert_int_equal(es_log_open(&log, log_uri), 0);
    ref_init(&r);
    fill(log, &r, 40, 200, 5);
    run(log, p, target, 50); /* the table made, every owner has a row */
    for (int i = 0; i < 4000; i++)
        append_ev(log, &r, rand() % 40, rand() % 3 ? "Deposited" : "Withdrawn",
                  1 + rand() % 100);
    start = target_i64(path_or_url, pg, ckpt_sql);
    for (int k = 0; k < 2; k++) {
        if ((kids[k] = fork()) == 0)
            worker_child(log_uri, target, 10);
        assert_true(kids[k] > 0);
        /* the first has committed a batch (of 10 events or more) */
        while (k == 0 && target_i64(path_or_url, pg, ckpt_sql) < start + 40 &&
               waitpid(kids[0], NULL, WNOHANG) == 0)
            usleep(500);
    }
    for (int k = 0; k < 2; k++) {
        int status;
        assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(run(log, p, target, 50).applied, 0);
    assert_docs(path_or_url, pg, "owner_docs", r.owner, r.owner_n);
    ref_free(&r);
    es_projection_free(p);
    es_log_close(log);
}

static void test_concurrent_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(concurrent_case, "concurrent");
}

static void test_concurrent_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(concurrent_case, "keyed");
}

/* ---- the document cache --------------------------------------------------- */

/* One batch of Deposited events (acct-K, amount) through es__keyed_apply
 * in its own transaction; the code es__keyed_apply returned. */
static int cache_batch(es__target *t, const es__keyed *k, es__keyed_cache *c,
                       const int *accts, size_t n, json_int_t amount)
{
    es_event evs[16];
    const es_event *ptr[16];
    char ids[16][32];
    int rc;
    assert_true(n <= 16);
    memset(evs, 0, sizeof evs);
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "acct-%d", accts[i]);
        evs[i].aggregate_type = "account";
        evs[i].stream_id = ids[i];
        evs[i].type = "Deposited";
        evs[i].payload = json_pack("{s:s, s:I}", "owner", "o", "amount", amount);
        ptr[i] = &evs[i];
    }
    assert_int_equal(es__target_begin(t), 0);
    rc = es__keyed_apply(t, k, c, ptr, n);
    if (rc == 0)
        assert_int_equal(es__target_commit(t), 0);
    else
        es__target_rollback(t);
    for (size_t i = 0; i < n; i++)
        json_decref(evs[i].payload);
    return rc;
}

/* The cache keeps at most its cap between batches, evicting what the last
 * batch did not use; a document changed behind it makes the batch fail
 * with ES_ECONFLICT and empties it, and the batch done again folds onto
 * the document as it is now. */
static void test_cache(void **state)
{
    const char *path = es_test_path("cache");
    char uri[600];
    es_projection *p = load(by_account_json);
    const es__keyed *k = es__keyed_of(p);
    es__keyed_cache *c = NULL;
    es__target *t = NULL;
    static const int first[] = {0, 1, 2, 3, 4, 5, 0}, second[] = {6, 7};
    static const int third[] = {6};
    sqlite3 *db;
    json_t *docs;
    (void)state;
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    assert_non_null(k);
    assert_int_equal(es__target_open(&t, uri), 0);
    assert_int_equal(es__target_exec0(t, es__keyed_setup(k)[0]), 0);
    assert_int_equal(es__keyed_cache_new(&c, k, 4), 0);
    /* every key of a batch stays until the next batch, even past the cap */
    assert_int_equal(cache_batch(t, k, c, first, 7, 10), 0);
    assert_int_equal(es__keyed_cache_size(c), 6);
    /* then what the next batch did not use goes, down to 3/4 of the cap */
    assert_int_equal(cache_batch(t, k, c, second, 2, 10), 0);
    assert_int_equal(es__keyed_cache_size(c), 3);
    /* acct-6 is cached at version 1; another writer moves it on */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE account_docs SET doc = "
                                      "'{\"balance\": 1000}', version = 2 "
                                      "WHERE key = 'acct-6'", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(cache_batch(t, k, c, third, 1, 5), ES_ECONFLICT);
    assert_contains(es_errmsg(t), "changed by another worker");
    assert_int_equal(es__keyed_cache_size(c), 0);
    assert_int_equal(cache_batch(t, k, c, third, 1, 5), 0);
    docs = target_docs(path, 0, "account_docs");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(
                         json_object_get(docs, "acct-6"), 0), "balance")), 1005);
    assert_int_equal(json_integer_value(json_array_get(
                         json_object_get(docs, "acct-6"), 1)), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(
                         json_object_get(docs, "acct-0"), 0), "balance")), 20);
    assert_int_equal(json_object_size(docs), 8);
    json_decref(docs);
    es__keyed_cache_free(c);
    es__target_close(t);
    es_projection_free(p);
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

/* "set" stores the event's own value in the document (shared, not
 * copied); a later "add" to that member in the same batch must make a new
 * number, not change the shared one in place: the event is still in the
 * batch, and a redo (here: a later event that does not fold sends the
 * batch the careful way) folds it again. An add that leaves 64-bit
 * integers is refused, not wrapped. */
static const char shared_json[] =
    "{\"name\": \"shared\", \"follows\": [\"account\"], \"keyed\":"
    " {\"table\": \"shared_docs\", \"key\": \"$stream_id\", \"on\": {"
    " \"AccountOpened\": {\"set\": {\"m\": \"$data.start\"}},"
    " \"Deposited\": {\"add\": {\"m\": \"$data.amount\"}}}}}";

static void test_shared_value_not_changed_in_place(void **state)
{
    const char *path = es_test_path("shared");
    char uri[600];
    es_log *log = es_test_open_fresh_log();
    es_projection *p = load(shared_json);
    es_projection_step st;
    json_t *docs;
    (void)state;
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    {
        es_event ev[3];
        memset(ev, 0, sizeof ev);
        ev[0].type = "AccountOpened";
        ev[0].payload = json_pack("{s:i}", "start", 5);
        ev[1].type = "Deposited";
        ev[1].payload = json_pack("{s:i}", "amount", 1);
        ev[2].type = "Deposited"; /* does not fold: overflows */
        ev[2].payload = json_pack("{s:I}", "amount", (json_int_t)LLONG_MAX);
        assert_int_equal(es_log_append(log, NULL, "account", "a-1",
                                       ES_EXPECT_ANY, ev, 3), 0);
        for (int i = 0; i < 3; i++)
            json_decref(ev[i].payload);
    }
    st = run(log, p, uri, 100);
    assert_int_equal(st.dead_lettered, 1);
    docs = target_docs(path, 0, "shared_docs");
    /* 5 + 1 = 6 (7 if the first fold had changed the event's 5 in place) */
    assert_int_equal(json_integer_value(json_object_get(json_array_get(
                         json_object_get(docs, "a-1"), 0), "m")), 6);
    json_decref(docs);
    {
        es_error err;
        dl_text t = {0};
        assert_int_equal(es_projection_dead_letters(uri, "shared", first_failed,
                                                    &t, &err), 0);
        assert_contains(t.error, "add m: the result leaves 64-bit integers");
    }
    es_projection_free(p);
    es_log_close(log);
}

/* A fold that names the event id or the metadata gets them: its worker
 * reads the log whole, where one that does not reads it lean (without
 * those fields: es__keyed_lean). */
static const char ids_json[] =
    "{\"name\": \"ids\", \"follows\": [\"account\"], \"keyed\":"
    " {\"table\": \"id_docs\", \"key\": \"$stream_id\", \"on\": {"
    " \"*\": {\"set\": {\"last_id\": \"$event_id\", \"tag\": \"$meta.tag\"}}}}}";

static int last_event(const es_event *ev, void *ud)
{
    char *id = ud;
    snprintf(id, 64, "%s", ev->id);
    return 0;
}

static void test_event_id_and_meta_read(void **state)
{
    const char *path = es_test_path("ids");
    char uri[600], id[64] = "";
    es_log *log = es_test_open_fresh_log();
    es_projection *p = load(ids_json), *lean = load(by_account_json);
    json_t *docs, *doc;
    es_event ev;
    es_read_options ro = ES_READ_OPTIONS_INIT;
    (void)state;
    assert_int_equal(es__keyed_lean(es__keyed_of(p)), 0);
    assert_int_equal(es__keyed_lean(es__keyed_of(lean)), 1);
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    memset(&ev, 0, sizeof ev);
    ev.type = "AccountOpened";
    ev.payload = json_pack("{s:s}", "owner", "Ada");
    ev.meta = json_pack("{s:s}", "tag", "t-1");
    assert_int_equal(es_log_append(log, NULL, "account", "a-1", ES_EXPECT_ANY,
                                   &ev, 1), 0);
    json_decref(ev.payload);
    json_decref(ev.meta);
    assert_int_equal(es_log_read_stream(log, "account", "a-1", &ro, last_event,
                                        id), 0);
    run(log, p, uri, 100);
    docs = target_docs(path, 0, "id_docs");
    doc = json_array_get(json_object_get(docs, "a-1"), 0);
    assert_string_equal(json_string_value(json_object_get(doc, "last_id")), id);
    assert_string_equal(json_string_value(json_object_get(doc, "tag")), "t-1");
    json_decref(docs);
    es_projection_free(p);
    es_projection_free(lean);
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
    refused("{\"name\": \"k\", \"follows\": [\"a\"], \"keyed\": {\"table\": "
            "\"t\", \"key\": \"$stream_id\", \"on\": {\"E\": {\"count\": "
            "[\"stats..n\"]}}}}", "f.json: \"keyed\".\"on\".\"E\".\"count\": "
            "member \"stats..n\" has an empty segment");
    refused("{\"name\": \"k\", \"follows\": [\"a\"], \"keyed\": {\"table\": "
            "\"t\", \"key\": \"$stream_id\", \"on\": {\"E\": {\"add\": "
            "{\"by.{$data.c}x\": \"$data.n\"}}}}}", "a segment in braces must "
            "be a whole segment");
    refused("{\"name\": \"k\", \"follows\": [\"a\"], \"keyed\": {\"table\": "
            "\"t\", \"key\": \"$stream_id\", \"on\": {\"E\": {\"add\": "
            "{\"by.{$nope}\": \"$data.n\"}}}}}", "unknown field $nope");
    refused("{\"name\": \"k\", \"follows\": [\"a\"], \"keyed\": {\"table\": "
            "\"t\", \"key\": \"$stream_id\", \"on\": {\"E\": {\"add\": "
            "{\"stats\": \"$data.n\"}}, \"F\": {\"count\": [\"stats.n\"]}}}}",
            "f.json: \"keyed\".\"on\".\"E\".\"add\" makes \"stats\" a number, "
            "but \"keyed\".\"on\".\"F\".\"count\" needs it to be an object "
            "(\"stats.n\")");
    refused("{\"name\": \"k\", \"follows\": [\"a\"], \"keyed\": {\"table\": "
            "\"t\", \"key\": \"$stream_id\", \"on\": {\"E\": {\"delete\": "
            "\"x\"}}}}", "must be true, false or an array of member names");
}


/* ---- the C kind ------------------------------------------------------------ */

/* As setup and teardown: the cases of the JSON kind run again on the C
 * twins of its projections (main). */
static int kind_c(void **state)
{
    (void)state;
    use_c = 1;
    return 0;
}

static int kind_json(void **state)
{
    (void)state;
    use_c = 0;
    return 0;
}

/* ES_KEYED_DELETE removes the row; the key's next event starts it again. */
static int count_or_close(json_t *doc, const es_event *ev, char *why,
                          size_t why_size, void *user_data)
{
    (void)why;
    (void)why_size;
    (void)user_data;
    if (strcmp(ev->type, "AccountClosed") == 0)
        return ES_KEYED_DELETE;
    c_bump(doc, "events", 1);
    return 0;
}

static void test_c_delete(void **state)
{
    const char *path = es_test_path("cdelete");
    char uri[600];
    es_keyed_projection d = ES_KEYED_PROJECTION_INIT;
    es_projection *p = NULL;
    es_log *log = es_test_open_fresh_log();
    es_event ev;
    es_error err;
    json_t *got;
    (void)state;
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    d.name = "closing";
    d.follows = account_types;
    d.table = "closing_docs";
    d.key = "$stream_id";
    d.fold = count_or_close;
    assert_int_equal(es_projection_keyed(&p, &d, &err), 0);
    fill(log, NULL, 3, 30, 2);
    memset(&ev, 0, sizeof ev);
    ev.type = "AccountClosed";
    ev.payload = json_object();
    assert_int_equal(es_log_append(log, NULL, "account", "acct-001",
                                   ES_EXPECT_ANY, &ev, 1), 0);
    assert_int_equal(run(log, p, uri, 100).applied, 31);
    got = target_docs(path, 0, "closing_docs");
    assert_int_equal(json_object_size(got), 2);
    assert_null(json_object_get(got, "acct-001"));
    json_decref(got);
    /* after the delete, acct-001 starts again from {} at version 1 */
    append_ev(log, NULL, 1, "Deposited", 3);
    assert_int_equal(es_log_append(log, NULL, "account", "acct-001",
                                   ES_EXPECT_ANY, &ev, 1), 0);
    append_ev(log, NULL, 1, "Deposited", 3);
    assert_int_equal(run(log, p, uri, 1).applied, 3); /* one event a batch */
    got = target_docs(path, 0, "closing_docs");
    {
        json_t *want = json_pack("[{s:i}, i]", "events", 1, 1);
        assert_true(json_equal(json_object_get(got, "acct-001"), want));
        json_decref(want);
    }
    json_decref(got);
    json_decref(ev.payload);
    es_projection_free(p);
    es_log_close(log);
}

static void test_c_definition_errors(void **state)
{
    es_keyed_projection d = ES_KEYED_PROJECTION_INIT;
    es_projection *p = NULL;
    es_error err;
    (void)state;
    d.name = "c";
    d.follows = account_types;
    d.table = "c_docs";
    d.key = "$stream_id";
    assert_int_equal(es_projection_keyed(&p, &d, &err), ES_EINVAL);
    assert_contains(err.text, "a fold function is required");
    d.fold = count_or_close;
    d.key_fn = c_owner_key;
    assert_int_equal(es_projection_keyed(&p, &d, &err), ES_EINVAL);
    assert_contains(err.text, "not both");
    d.key_fn = NULL;
    d.key = "$data..x";
    assert_int_equal(es_projection_keyed(&p, &d, &err), ES_EINVAL);
    assert_contains(err.text, "es_keyed_projection.key: $data..x has an empty member");
    d.key = "$stream_id";
    d.table = "es_proj_x";
    assert_int_equal(es_projection_keyed(&p, &d, &err), ES_EINVAL);
    assert_contains(err.text, "es_keyed_projection.table must be a plain SQL name");
    d.table = "c_docs";
    d.name = "bad name!";
    assert_int_equal(es_projection_keyed(&p, &d, &err), ES_EINVAL);
    assert_null(p);
    d.name = "c";
    d.struct_version = 99;
    assert_int_equal(es_projection_keyed(&p, &d, &err), ES_EINVAL);
    assert_contains(err.text, "version 99");
}

/* Through es_cli_main: `project run` and `project rebuild` of a C keyed
 * projection compiled into the program (es_app.projections). */
static const es_projection *cli_projections[2];

static int run_cli(int argc, char **argv, void *ud)
{
    es_app app = ES_APP_INIT;
    (void)ud;
    app.name = "bank";
    app.projections = cli_projections;
    return es_cli_main(argc, argv, &app);
}

static void test_c_cli(void **state)
{
    const char *log_uri = es_test_fresh_log_uri();
    const char *out, *err;
    char target[600];
    es_log *log = NULL;
    es_projection *p;
    reference r;
    (void)state;
    use_c = 1;
    p = load(by_account_json);
    use_c = 0;
    cli_projections[0] = p;
    assert_int_equal(es_log_open(&log, log_uri), 0);
    ref_init(&r);
    fill(log, &r, 8, 200, 6);
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "project", "list",
                                 NULL), 0);
    assert_contains(out, "by_account  version 1  follows account");
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "project", "run",
                                 "by_account", "--until-caught-up", NULL), 0);
    assert_contains(out, "by_account: 200 applied");
    /* the default target: next to the log (sqlite:X.db -> X.projections.db) */
    snprintf(target, sizeof target, "%.*s.projections.db",
             (int)(strlen(log_uri) - 7 - 3), log_uri + 7);
    assert_docs(target, 0, "account_docs", r.account, r.account_n);
    append_ev(log, &r, 2, "Deposited", 7);
    assert_int_equal(es_test_cli(run_cli, &out, &err, log_uri, "project",
                                 "rebuild", "by_account", NULL), 0);
    assert_docs(target, 0, "account_docs", r.account, r.account_n);
    ref_free(&r);
    es_projection_free(p);
    es_log_close(log);
}

/* ---- nested member paths ----------------------------------------------------- */

static void nested_case(const char *target, const char *path_or_url, int pg)
{
    es_log *log = es_test_open_fresh_log();
    es_projection *p = load(nested_json);
    reference r;

    ref_init(&r);
    fill(log, &r, 12, 600, 4);
    assert_int_equal(run(log, p, target, 50).applied, 600);
    for (int i = 0; i < 100; i++)
        append_ev(log, &r, rand() % 12, i % 3 ? "Deposited" : "Withdrawn",
                  1 + rand() % 50);
    assert_int_equal(run(log, p, target, 1000).applied, 100);
    assert_docs(path_or_url, pg, "nested_docs", r.nested, r.nested_n);
    ref_free(&r);
    es_projection_free(p);
    es_log_close(log);
}

static void test_nested_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(nested_case, "nested");
}

static void test_nested_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(nested_case, "keyed");
}

/* A member on the way that the document holds as a number: the event is
 * dead-lettered with the file, the event type, the member and the path. */
static void test_nested_not_an_object(void **state)
{
    const char *path = es_test_path("crossing");
    char uri[600];
    es_projection *p = NULL;
    es_log *log = es_test_open_fresh_log();
    es_projection_step st;
    es_error err;
    dl_text dl = {0, ""};
    (void)state;
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    assert_int_equal(es_projection_load_json(&p,
        "{\"name\": \"crossing\", \"follows\": [\"account\"], \"keyed\": "
        "{\"table\": \"crossing_docs\", \"key\": \"$stream_id\", \"on\": "
        "{\"AccountOpened\": {\"set\": {\"stats\": \"$version\"}},"
        " \"Deposited\": {\"count\": [\"stats.deposits.n\"]},"
        " \"Withdrawn\": {\"add\": {\"by.{$data.currency}\": \"$data.amount\"}}}}}",
        "crossing.json", &err), 0);
    append_ev(log, NULL, 1, "AccountOpened", 0);
    append_ev(log, NULL, 1, "Deposited", 5);
    append_ev(log, NULL, 2, "Deposited", 5);
    append_ev(log, NULL, 3, "Withdrawn", 5); /* it has no currency */
    st = run(log, p, uri, 100);
    assert_int_equal(st.dead_lettered, 2);
    if (es_projection_dead_letters(uri, "crossing", first_failed, &dl, &err) != 0)
        fail_msg("dead letters: %s", err.text);
    assert_int_equal(dl.failed, 2);
    assert_contains(dl.error, "keyed fold crossing_docs (crossing.json), "
                              "Withdrawn event, key acct-003: add "
                              "by.{$data.currency}: the event's $data.currency "
                              "is absent");
    assert_contains(dl.error, "keyed fold crossing_docs (crossing.json), "
                              "Deposited event, key acct-001: count "
                              "stats.deposits.n: \"stats\" in the document is "
                              "a number, not an object");
    {
        json_t *got = target_docs(path, 0, "crossing_docs");
        json_t *want = json_pack("{s:[{s:i}, i], s:[{s:{s:{s:i}}}, i]}",
                                 "acct-001", "stats", 1, 1,
                                 "acct-002", "stats", "deposits", "n", 1, 1);
        assert_true(json_equal(got, want));
        json_decref(got);
        json_decref(want);
    }
    es_projection_free(p);
    es_log_close(log);
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
        cmocka_unit_test(test_concurrent_sqlite),
        cmocka_unit_test(test_concurrent_postgres),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_shared_value_not_changed_in_place),
        cmocka_unit_test(test_event_id_and_meta_read),
        cmocka_unit_test(test_crash_kafka_sqlite),
        cmocka_unit_test(test_crash_kafka_postgres),
        cmocka_unit_test(test_corrupt_document),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_rebuild_sqlite),
        cmocka_unit_test(test_rebuild_postgres),
        cmocka_unit_test(test_nested_sqlite),
        cmocka_unit_test(test_nested_postgres),
        cmocka_unit_test(test_nested_not_an_object),
        {"test_c_fold_sqlite", test_fold_sqlite, kind_c, kind_json, NULL},
        {"test_c_fold_postgres", test_fold_postgres, kind_c, kind_json, NULL},
        {"test_c_bad_event_sqlite", test_bad_event_sqlite, kind_c, kind_json, NULL},
        {"test_c_bad_event_postgres", test_bad_event_postgres, kind_c, kind_json,
         NULL},
        {"test_c_rebuild_sqlite", test_rebuild_sqlite, kind_c, kind_json, NULL},
        {"test_c_rebuild_postgres", test_rebuild_postgres, kind_c, kind_json,
         NULL},
        cmocka_unit_test(test_c_delete),
        cmocka_unit_test(test_c_definition_errors),
        cmocka_unit_test(test_c_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

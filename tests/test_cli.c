/*
 * tests/test_cli.c - the esfold command, driven through es_cli_main with
 * the bank sample's account type compiled in, on a fresh log per test.
 *
 * Commits are fed to `append` by pointing stdin at a file. Tests that
 * damage the SQLite file by hand (verify) skip on other backends.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <sqlite3.h>

#include "cli/cli.h"
#include "esfold/esfold.h"
#include "harness.h"
#include "samples/bank/account.h"
#include "samples/minimal/counter.h"

/* ---- helpers ------------------------------------------------------------- */

static const es_aggregate_type *const bank_types[] = { &bank_account_type, NULL };

static const es_app bank_app = {
    ES_APP_VERSION, "bank", bank_types, NULL, NULL, NULL, NULL, NULL
};

static int cli_fn(int argc, char **argv, void *user_data)
{
    return es_cli_main(argc, argv, user_data);
}

/* The output of the last run. */
static const char *out, *err;

/* Points stdin at a file holding text (NULL: an empty one). */
static void set_stdin(const char *text)
{
    const char *path = es_test_path("stdin");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    if (text)
        fputs(text, f);
    assert_int_equal(fclose(f), 0);
    assert_non_null(freopen(path, "r", stdin));
}

/*
 * Runs `PROG --log uri ARGS...` (ARGS ended by NULL) with app, stdin set to
 * `input`; returns the exit status, with out/err set.
 */
static int run_app(const es_app *app, const char *uri, const char *input, ...)
{
    char *argv[64];
    int argc = 0, status;
    va_list ap;

    argv[argc++] = "esfold";
    if (uri) {
        argv[argc++] = "--log";
        argv[argc++] = (char *)uri;
    }
    va_start(ap, input);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
        assert_true(argc < 63);
        argv[argc++] = (char *)a;
    }
    va_end(ap);
    argv[argc] = NULL;
    set_stdin(input);
    status = es_test_capture(cli_fn, argc, argv, (void *)app, &out, &err);
    assert_non_null(freopen("/dev/null", "r", stdin));
    return status;
}

#define run(uri, input, ...) run_app(&bank_app, (uri), (input), __VA_ARGS__, NULL)

/* How many times needle occurs in haystack. */
static int count_of(const char *haystack, const char *needle)
{
    int n = 0;
    for (const char *p = haystack; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (j == NULL)
        print_error("not JSON (%s, line %d): %s\n", jerr.text, jerr.line, text);
    assert_non_null(j);
    return j;
}

static json_int_t int_at(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static const char *str_at(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

/* An account opened at 10:00, 2500 deposited at 10:05 (correlation id
 * req-1), 1000 withdrawn at 10:10 on 2026-03-01. */
#define ACCT_EVENTS \
    "{\"type\":\"AccountOpened\",\"data\":{\"owner\":\"Ada\",\"currency\":\"EUR\"}," \
    "\"occurred_at\":\"2026-03-01T10:00:00Z\"}\n" \
    "{\"type\":\"Deposited\",\"data\":{\"amount\":2500},\"correlation_id\":\"req-1\"," \
    "\"occurred_at\":\"2026-03-01T10:05:00Z\"}\n" \
    "{\"type\":\"Withdrawn\",\"data\":{\"amount\":1000}," \
    "\"occurred_at\":\"2026-03-01T10:10:00Z\"}\n"

/* A fresh log with acct-1 holding ACCT_EVENTS. */
static const char *log_with_account(void)
{
    const char *uri = es_test_fresh_log_uri();
    assert_int_equal(run(uri, ACCT_EVENTS, "append", "account", "acct-1",
                         "--expect", "0"), 0);
    return uri;
}

/* The file behind a sqlite: URI, or NULL (the test skips) for others. */
static const char *sqlite_path(const char *uri)
{
    if (strncmp(uri, "sqlite:", 7) != 0)
        return NULL;
    return uri + 7;
}

static void exec_sql(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        print_error("%s: %s\n", sql, msg);
        fail();
    }
    sqlite3_close(db);
}

/* Rebuilds es_events without its constraints, so that a test can make the
 * duplicates that the log itself never writes. */
static void drop_event_constraints(const char *path)
{
    exec_sql(path, "ALTER TABLE es_events RENAME TO es_events_old;"
                   "CREATE TABLE es_events AS SELECT * FROM es_events_old;"
                   "DROP TABLE es_events_old;");
}

/* ---- append + history ---------------------------------------------------- */

static void test_append_then_history(void **state)
{
    const char *uri = es_test_fresh_log_uri();
    (void)state;
    assert_int_equal(run(uri, ACCT_EVENTS, "append", "account", "acct-1",
                         "--expect", "0"), 0);
    assert_contains(out, "appended 3 events to account/acct-1: version 1..3");

    assert_int_equal(run(uri, NULL, "history", "account", "acct-1"), 0);
    assert_string_equal(err, "");
    assert_contains(out, "v1  2026-03-01T10:00:00Z  AccountOpened  (schema 1)  id ");
    assert_contains(out, "    data  {\"owner\":\"Ada\",\"currency\":\"EUR\"}\n");
    assert_contains(out, "v2  2026-03-01T10:05:00Z  Deposited  (schema 1)");
    assert_contains(out, "    data  {\"amount\":2500}\n");
    assert_contains(out, "correlation req-1");
    assert_contains(out, "v3  2026-03-01T10:10:00Z  Withdrawn");
    /* The state after each event, in order. */
    {
        const char *b0 = strstr(out, "\"balance\":0,");
        const char *b1 = strstr(out, "\"balance\":2500,");
        const char *b2 = strstr(out, "\"balance\":1500,");
        assert_non_null(b0);
        assert_non_null(b1);
        assert_non_null(b2);
        assert_true(b0 < b1 && b1 < b2);
    }
    assert_int_equal(count_of(out, "    state {"), 3);
    assert_contains(out, "-- account/acct-1 at version 3 (3 events)");
}

static void test_history_json(void **state)
{
    const char *uri = log_with_account();
    static const char *const types[] = { "AccountOpened", "Deposited", "Withdrawn" };
    static const json_int_t balances[] = { 0, 2500, 1500 };
    json_t *doc, *events;
    (void)state;

    assert_int_equal(run(uri, NULL, "history", "account", "acct-1", "--json"), 0);
    doc = parse(out);
    assert_string_equal(str_at(doc, "aggregate_type"), "account");
    assert_string_equal(str_at(doc, "stream_id"), "acct-1");
    assert_int_equal(int_at(doc, "version"), 3);
    assert_string_equal(str_at(json_object_get(doc, "to"), "kind"), "end");
    events = json_object_get(doc, "events");
    assert_int_equal(json_array_size(events), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *ev = json_array_get(events, i);
        assert_int_equal(int_at(ev, "version"), (json_int_t)i + 1);
        assert_string_equal(str_at(ev, "type"), types[i]);
        assert_int_equal(int_at(ev, "schema"), 1);
        assert_int_equal(strlen(str_at(ev, "id")), ES_ID_LEN);
        assert_non_null(json_object_get(ev, "position"));
        assert_int_equal(int_at(json_object_get(ev, "state"), "balance"),
                         balances[i]);
    }
    assert_string_equal(str_at(json_object_get(json_array_get(events, 0), "data"),
                               "owner"), "Ada");
    assert_int_equal(int_at(json_object_get(json_array_get(events, 1), "data"),
                            "amount"), 2500);
    assert_string_equal(str_at(json_array_get(events, 1), "correlation_id"), "req-1");
    assert_string_equal(str_at(json_array_get(events, 2), "occurred_at"),
                        "2026-03-01T10:10:00Z");
    assert_int_equal(int_at(json_object_get(doc, "state"), "balance"), 1500);
    assert_int_equal(int_at(json_object_get(doc, "state"), "transactions"), 2);
    json_decref(doc);
}

static void test_history_to_version(void **state)
{
    const char *uri = log_with_account();
    json_t *doc, *events;
    (void)state;

    assert_int_equal(run(uri, NULL, "history", "account", "acct-1",
                         "--to-version", "2", "--json"), 0);
    doc = parse(out);
    events = json_object_get(doc, "events");
    assert_int_equal(json_array_size(events), 2);
    assert_int_equal(int_at(doc, "version"), 2);
    assert_int_equal(int_at(json_object_get(doc, "to"), "version"), 2);
    assert_int_equal(int_at(json_object_get(json_array_get(events, 1), "state"),
                            "balance"), 2500);
    json_decref(doc);

    assert_int_equal(run(uri, NULL, "history", "account", "acct-1",
                         "--to-version=2"), 0);
    assert_contains(out, "Deposited");
    assert_null(strstr(out, "Withdrawn"));
    assert_contains(out, "-- account/acct-1 at version 2 (2 events, up to version 2)");

    /* Past the end is the whole stream. */
    assert_int_equal(run(uri, NULL, "history", "account", "acct-1",
                         "--to-version", "99"), 0);
    assert_contains(out, "Withdrawn");
}

static void test_history_as_of(void **state)
{
    const char *uri = log_with_account();
    json_t *doc, *events;
    (void)state;

    /* Between the deposit (10:05) and the withdrawal (10:10). */
    assert_int_equal(run(uri, NULL, "history", "account", "acct-1", "--as-of",
                         "2026-03-01T10:07:00Z", "--json"), 0);
    doc = parse(out);
    events = json_object_get(doc, "events");
    assert_int_equal(json_array_size(events), 2);
    assert_string_equal(str_at(json_object_get(doc, "to"), "kind"), "as_of");
    assert_string_equal(str_at(json_object_get(doc, "to"), "as_of"),
                        "2026-03-01T10:07:00Z");
    assert_int_equal(int_at(json_object_get(doc, "state"), "balance"), 2500);
    json_decref(doc);

    /* The same instant with an offset; an event exactly at the bound is in. */
    assert_int_equal(run(uri, NULL, "history", "account", "acct-1", "--as-of",
                         "2026-03-01T11:07:00+01:00"), 0);
    assert_contains(out, "Deposited");
    assert_null(strstr(out, "Withdrawn"));
    assert_contains(out, "as of 2026-03-01T10:07:00Z");
    assert_int_equal(run(uri, NULL, "history", "account", "acct-1", "--as-of",
                         "2026-03-01T10:10:00Z"), 0);
    assert_contains(out, "Withdrawn");
}

static void test_history_as_of_before_first_event(void **state)
{
    const char *uri = log_with_account();
    (void)state;
    assert_int_equal(run(uri, NULL, "history", "account", "acct-1", "--as-of",
                         "2026-02-01"), 1);
    assert_string_equal(out, "");
    assert_contains(err, "bank: no events in account/acct-1 as of "
                         "2026-02-01T00:00:00Z (its first event is at "
                         "2026-03-01T10:00:00Z)");
}

static void test_history_unknown_stream(void **state)
{
    const char *uri = log_with_account();
    json_t *doc, *e;
    (void)state;
    assert_int_equal(run(uri, NULL, "history", "account", "xyz"), 1);
    assert_string_equal(out, "");
    assert_contains(err, "bank: no events in account/xyz");
    assert_int_equal(run(uri, NULL, "history", "account", "xyz", "--json"), 1);
    assert_contains(err, "no events in account/xyz");
    /* The JSON contract: one object on stdout, also on failure. */
    doc = parse(out);
    assert_int_equal(int_at(doc, "format"), 1);
    e = json_object_get(doc, "error");
    assert_string_equal(str_at(e, "code"), "not_found");
    assert_string_equal(str_at(e, "message"), "no events in account/xyz");
    json_decref(doc);
}

/* Deposited/1 -> Deposited/2: the amount is kept, a note added. */
static json_t *deposited_v2(json_t *payload, void *user_data)
{
    (void)user_data;
    json_object_set_new(payload, "note", json_string("upcast"));
    return payload;
}

static int upcasting_setup(es_repo *repo, void *user_data)
{
    (void)user_data;
    return es_upcasters_add(es_repo_upcasters(repo), "Deposited", 1, NULL, 2,
                            deposited_v2, NULL);
}

/* history shows the schema the log holds beside the one apply saw. */
static void test_history_stored_schema(void **state)
{
    const char *uri = log_with_account();
    es_app app = ES_APP_INIT;
    json_t *doc, *events;
    (void)state;
    app.name = "bank";
    app.types = bank_types;
    app.setup = upcasting_setup;
    assert_int_equal(run_app(&app, uri, NULL, "history", "account", "acct-1", NULL), 0);
    assert_contains(out, "AccountOpened  (schema 1)  id");
    assert_contains(out, "Deposited  (schema 2, stored 1)  id");
    assert_contains(out, "\"note\":\"upcast\"");
    assert_int_equal(run_app(&app, uri, NULL, "history", "account", "acct-1",
                             "--json", NULL), 0);
    doc = parse(out);
    events = json_object_get(doc, "events");
    assert_int_equal(json_array_size(events), 3);
    assert_int_equal(int_at(json_array_get(events, 1), "schema"), 2);
    assert_int_equal(int_at(json_array_get(events, 1), "stored_schema"), 1);
    assert_int_equal(int_at(json_array_get(events, 0), "stored_schema"), 1);
    json_decref(doc);
    /* Read as stored (no type compiled in): both are the log's. */
    assert_int_equal(run_app(NULL, uri, NULL, "history", "account", "acct-1",
                             "--json", NULL), 0);
    doc = parse(out);
    events = json_object_get(doc, "events");
    assert_int_equal(int_at(json_array_get(events, 1), "schema"), 1);
    assert_int_equal(int_at(json_array_get(events, 1), "stored_schema"), 1);
    assert_true(json_is_null(json_object_get(json_array_get(events, 1), "state")));
    assert_true(json_is_null(json_object_get(doc, "state")));
    assert_true(json_is_null(json_object_get(doc, "error")));
    assert_int_equal(int_at(doc, "event_count"), 3);
    json_decref(doc);
}

static void test_history_bad_arguments(void **state)
{
    const char *uri = log_with_account();
    (void)state;
    assert_int_equal(run(uri, NULL, "history", "account", "acct-1", "--as-of",
                         "2026-13-01"), 2);
    assert_contains(err, "--as-of '2026-13-01': ");
    assert_contains(err, "month"); /* the parser's own words */
    assert_int_equal(run(uri, NULL, "history", "account", "acct-1",
                         "--to-version", "0"), 2);
    assert_contains(err, "--to-version '0'");
    assert_int_equal(run(uri, NULL, "history", "account", "acct-1",
                         "--to-version", "2", "--as-of", "2026-03-01"), 2);
    assert_contains(err, "cannot be combined");
    assert_int_equal(run(uri, NULL, "history", "account"), 2);
    assert_contains(err, "missing arguments");
    assert_int_equal(run(uri, NULL, "history", "account", "a", "b"), 2);
    assert_contains(err, "unexpected argument 'b'");
    assert_int_equal(run(uri, NULL, "history", "account", "a", "--frob"), 2);
    assert_contains(err, "unknown option '--frob'");
    assert_int_equal(run(uri, NULL, "history", "account", "a", "--json",
                         "--json"), 2);
    assert_contains(err, "--json is given twice");
}

static void test_history_type_not_compiled_in(void **state)
{
    const char *uri = log_with_account();
    (void)state;
    assert_int_equal(run_app(NULL, uri, NULL, "history", "account", "acct-1",
                             NULL), 0);
    assert_int_equal(count_of(out, "(state not shown: aggregate type 'account' "
                                   "is not compiled into this program)"), 1);
    assert_int_equal(count_of(out, "    data  "), 3);
    assert_null(strstr(out, "state {"));
    assert_contains(out, "-- account/acct-1 at version 3 (3 events)");
}

/* ---- append -------------------------------------------------------------- */

static void test_append_expect_is_checked(void **state)
{
    const char *uri = es_test_fresh_log_uri();
    (void)state;
    assert_int_equal(run(uri, ACCT_EVENTS, "append", "account", "a"), 2);
    assert_contains(err, "--expect is required");
    assert_int_equal(run(uri, ACCT_EVENTS, "append", "account", "a", "--expect",
                         "x"), 2);
    assert_contains(err, "bank append: --expect 'x' is not a version, 0 or 'any'");
    assert_int_equal(run(uri, ACCT_EVENTS, "append", "account", "a", "--expect",
                         "-1"), 2);
    assert_contains(err, "--expect '-1'");
    assert_int_equal(run(uri, ACCT_EVENTS, "append", "account", "a", "--expect",
                         "2x"), 2);
    assert_int_equal(run(uri, ACCT_EVENTS, "append", "account", "a", "--expect"), 2);
    assert_contains(err, "--expect needs a value");
    /* None of it wrote anything. */
    assert_int_equal(run(uri, NULL, "history", "account", "a"), 1);
}

static void test_append_conflict(void **state)
{
    const char *uri = log_with_account();
    const char *dep = "{\"type\":\"Deposited\",\"data\":{\"amount\":1}}\n";
    (void)state;
    assert_int_equal(run(uri, dep, "append", "account", "acct-1", "--expect", "2"), 1);
    assert_contains(err, "bank: ");
    assert_contains(err, "version conflict: expected 2, stream is at 3");
    assert_int_equal(run(uri, dep, "append", "account", "acct-1", "--expect", "0"), 1);
    assert_contains(err, "version conflict");
    /* As data: the error object carries both versions. */
    assert_int_equal(run(uri, dep, "append", "account", "acct-1", "--expect", "2",
                         "--json"), 1);
    {
        json_t *doc = parse(out), *e = json_object_get(doc, "error");
        assert_int_equal(int_at(doc, "format"), 1);
        assert_string_equal(str_at(e, "code"), "conflict");
        assert_contains(str_at(e, "message"), "expected 2, stream is at 3");
        assert_int_equal(int_at(e, "expected"), 2);
        assert_int_equal(int_at(e, "actual"), 3);
        json_decref(doc);
    }
    assert_int_equal(run(uri, NULL, "history", "account", "acct-1", "--json"), 0);
    {
        json_t *doc = parse(out);
        assert_int_equal(int_at(doc, "version"), 3);
        json_decref(doc);
    }
    assert_int_equal(run(uri, dep, "append", "account", "acct-1", "--expect", "3"), 0);
    assert_contains(out, "appended 1 event to account/acct-1: version 4\n");
    assert_int_equal(run(uri, dep, "append", "account", "acct-1", "--expect",
                         "any"), 0);
    assert_contains(out, "version 5\n");
}

static void test_append_malformed_lines_append_nothing(void **state)
{
    const char *uri = es_test_fresh_log_uri();
    (void)state;
    assert_int_equal(
        run(uri,
            "{\"type\":\"AccountOpened\",\"data\":{\"owner\":\"Ada\"}}\n"   /* 1 ok */
            "\n"                                                           /* 2 blank */
            "{\"type\":\"Deposited\",\"data\":{\"amount\":1}\n"            /* 3 */
            "{\"type\":\"Deposited\",\"data\":{},\"amout\":5}\n"           /* 4 */
            "{\"data\":{\"amount\":1}}\n"                                  /* 5 */
            "{\"type\":\"Deposited\",\"data\":[1]}\n"                      /* 6 */
            "{\"type\":\"Deposited\",\"data\":{},\"occurred_at\":\"soon\"}\n" /* 7 */
            "[1,2]\n"                                                      /* 8 */
            "   \t\n"                                                      /* 9 blank */
            "{\"type\":\"Deposited\",\"data\":{\"amount\":2}}\n",          /* 10 ok */
            "append", "account", "acct-9", "--expect", "0"),
        1);
    assert_string_equal(out, "");
    assert_contains(err, "bank: line 3: not JSON: ");
    assert_contains(err, "bank: line 4: unknown key \"amout\"");
    assert_contains(err, "bank: line 5: no \"type\"");
    assert_contains(err, "bank: line 6: \"data\" is not a JSON object");
    assert_contains(err, "bank: line 7: \"occurred_at\": ");
    assert_contains(err, "bank: line 8: not a JSON object");
    assert_null(strstr(err, "line 1:"));
    assert_null(strstr(err, "line 2:"));
    assert_null(strstr(err, "line 10:"));
    assert_contains(err, "nothing appended: 6 bad lines in the input");

    assert_int_equal(run(uri, NULL, "history", "account", "acct-9"), 1);
    assert_contains(err, "no events in account/acct-9");
}

static void test_append_refuses_event_types_the_type_does_not_handle(void **state)
{
    const char *uri = es_test_fresh_log_uri();
    const char *typo = "{\"type\":\"AccountOpened\",\"data\":{\"owner\":\"Ada\"}}\n"
                       "{\"type\":\"Deposted\",\"data\":{\"amount\":1}}\n";
    (void)state;
    assert_int_equal(run(uri, typo, "append", "account", "a", "--expect", "0"), 1);
    assert_contains(err, "line 2: event type \"Deposted\" is not handled by "
                         "aggregate type 'account'");
    assert_int_equal(run(uri, NULL, "history", "account", "a"), 1);
    /* Without the type compiled in there is nothing to check against. */
    assert_int_equal(run_app(NULL, uri, typo, "append", "account", "a",
                             "--expect", "0", NULL), 0);
    assert_contains(out, "appended 2 events to account/a: version 1..2");
}

static void test_append_folds_before_writing(void **state)
{
    const char *uri = log_with_account();
    const char *zero = "{\"type\":\"Deposited\",\"data\":{\"amount\":5}}\n"
                       "{\"type\":\"Deposited\",\"data\":{\"amount\":0}}\n";
    json_t *doc, *events;
    (void)state;

    /* The account's apply refuses an amount of 0: the stream would no
     * longer load, so nothing is written. */
    assert_int_equal(run(uri, zero, "append", "account", "acct-1", "--expect",
                         "3"), 1);
    assert_contains(err, "bank: line 2: aggregate type 'account' cannot fold "
                         "this event: ");
    assert_contains(err, "nothing appended");
    assert_int_equal(run(uri, NULL, "history", "account", "acct-1"), 0);
    assert_contains(out, "at version 3 (3 events)");

    /* --unchecked writes it; history then shows every event and fails. */
    assert_int_equal(run(uri, zero, "append", "account", "acct-1", "--expect",
                         "3", "--unchecked"), 0);
    assert_contains(out, "version 4..5");
    assert_int_equal(run(uri, NULL, "history", "account", "acct-1"), 1);
    assert_int_equal(count_of(out, "    state {"), 4);
    assert_contains(out, "(state not shown from version 5 on: the fold failed)\n"
                         "v5  ");
    assert_contains(out, "    data  {\"amount\":0}");
    assert_contains(err, "Deposited");
    assert_int_equal(run(uri, NULL, "history", "account", "acct-1", "--json"), 1);
    doc = parse(out);
    events = json_object_get(doc, "events");
    assert_int_equal(json_array_size(events), 5);
    assert_true(json_is_object(json_object_get(json_array_get(events, 3), "state")));
    assert_true(json_is_null(json_object_get(json_array_get(events, 4), "state")));
    assert_true(json_is_null(json_object_get(doc, "state")));
    assert_string_equal(str_at(json_object_get(doc, "error"), "code"), "invalid");
    assert_contains(str_at(json_object_get(doc, "error"), "message"), "Deposited");
    json_decref(doc);
}

static void test_append_json_and_retry(void **state)
{
    const char *uri = es_test_fresh_log_uri();
    const char *input =
        "{\"type\":\"AccountOpened\",\"data\":{\"owner\":\"Ada\",\"currency\":\"EUR\"},"
        "\"id\":\"11111111-1111-7111-8111-111111111111\",\"schema\":1,"
        "\"causation_id\":\"cmd-1\",\"meta\":{\"user\":\"ops\"}}\n"
        "{\"type\":\"Deposited\",\"data\":{\"amount\":7},"
        "\"id\":\"11111111-1111-7111-8111-111111111112\"}\n";
    json_t *doc;
    (void)state;

    assert_int_equal(run(uri, input, "append", "account", "a", "--expect", "0",
                         "--json"), 0);
    doc = parse(out);
    assert_int_equal(int_at(doc, "event_count"), 2);
    assert_int_equal(int_at(doc, "first_version"), 1);
    assert_int_equal(int_at(doc, "version"), 2);
    assert_true(json_is_false(json_object_get(doc, "duplicate")));
    {
        json_t *pos = json_object_get(doc, "positions");
        json_t *first = json_object_get(pos, "first");
        json_t *last = json_object_get(pos, "last");
        if (sqlite_path(uri)) /* 4 partitions by default */
            assert_int_equal(int_at(first, "partition"), es_partition_for("a", 1, 4));
        assert_int_equal(int_at(last, "partition"), int_at(first, "partition"));
        assert_int_equal(int_at(last, "offset"), int_at(first, "offset") + 1);
    }
    json_decref(doc);

    /* The same ids again: a retry, nothing written. */
    assert_int_equal(run(uri, input, "append", "account", "a", "--expect", "any"), 0);
    assert_contains(out, "nothing appended: these events are already in "
                         "account/a: version 1..2");
    assert_int_equal(run(uri, input, "append", "account", "a", "--expect", "any",
                         "--json"), 0);
    doc = parse(out);
    assert_true(json_is_true(json_object_get(doc, "duplicate")));
    json_decref(doc);

    /* The optional fields made it into the log. */
    assert_int_equal(run(uri, NULL, "history", "account", "a", "--json"), 0);
    doc = parse(out);
    {
        json_t *ev = json_array_get(json_object_get(doc, "events"), 0);
        assert_string_equal(str_at(ev, "id"), "11111111-1111-7111-8111-111111111111");
        assert_string_equal(str_at(ev, "causation_id"), "cmd-1");
        assert_string_equal(str_at(json_object_get(ev, "meta"), "user"), "ops");
    }
    assert_int_equal(json_array_size(json_object_get(doc, "events")), 2);
    json_decref(doc);
    assert_int_equal(run(uri, NULL, "history", "account", "a"), 0);
    assert_contains(out, "    meta  {\"user\":\"ops\"}");
    assert_contains(out, "causation cmd-1");
}

static void test_append_empty_input(void **state)
{
    const char *uri = es_test_fresh_log_uri();
    (void)state;
    assert_int_equal(run(uri, "\n\n", "append", "account", "a", "--expect", "0"), 1);
    assert_contains(err, "nothing appended: no events on standard input");
}

/* ---- verify -------------------------------------------------------------- */

static const char *log_with_streams(void)
{
    const char *uri = log_with_account();
    assert_int_equal(run(uri, "{\"type\":\"AccountOpened\",\"data\":{\"owner\":\"Bo\"}}\n",
                         "append", "account", "acct-2", "--expect", "0"), 0);
    assert_int_equal(run(uri, "{\"type\":\"AccountOpened\",\"data\":{\"owner\":\"Cy\"}}\n"
                              "{\"type\":\"Deposited\",\"data\":{\"amount\":5}}\n",
                         "append", "account", "acct-3", "--expect", "0"), 0);
    return uri;
}

/* ---- streams --------------------------------------------------------------- */

static void test_streams(void **state)
{
    const char *uri = log_with_streams();
    json_t *doc, *list, *first;
    (void)state;
    assert_int_equal(run(uri, NULL, "streams", "account"), 0);
    assert_contains(out, "acct-1  version 3  p");
    assert_contains(out, "\nacct-2  version 1  p");
    assert_contains(out, "\nacct-3  version 2  p");
    assert_contains(out, "-- account: 3 streams\n");
    assert_true(strstr(out, "acct-1") < strstr(out, "acct-2"));
    assert_int_equal(run(uri, NULL, "streams", "account", "--json"), 0);
    doc = parse(out);
    assert_int_equal(int_at(doc, "format"), 1);
    assert_string_equal(str_at(doc, "aggregate_type"), "account");
    assert_int_equal(int_at(doc, "stream_count"), 3);
    list = json_object_get(doc, "streams");
    assert_int_equal(json_array_size(list), 3);
    first = json_array_get(list, 0);
    assert_string_equal(str_at(first, "stream_id"), "acct-1");
    assert_int_equal(int_at(first, "version"), 3);
    assert_int_equal(int_at(first, "partition"),
                     es_partition_for("acct-1", 6, (int32_t)4));
    json_decref(doc);
    /* A type without events: nothing, and a hint. */
    assert_int_equal(run(uri, NULL, "streams", "acount"), 0);
    assert_contains(out, "-- acount: 0 streams (no events of this type in the log)");
    assert_int_equal(run(uri, NULL, "streams", "acount", "--json"), 0);
    doc = parse(out);
    assert_int_equal(int_at(doc, "stream_count"), 0);
    assert_int_equal(json_array_size(json_object_get(doc, "streams")), 0);
    json_decref(doc);
}

/* With --json, a failure is one JSON object on stdout too. */
static void test_json_errors(void **state)
{
    char missing[4096];
    json_t *doc, *e;
    (void)state;
    snprintf(missing, sizeof missing, "sqlite:%s", es_test_path("none.db"));
    assert_int_equal(run(missing, NULL, "streams", "account", "--json"), 1);
    doc = parse(out);
    assert_int_equal(int_at(doc, "format"), 1);
    e = json_object_get(doc, "error");
    assert_string_equal(str_at(e, "code"), "not_found");
    assert_contains(str_at(e, "message"), "no such log file");
    assert_contains(err, "no such log file"); /* and on stderr, for people */
    json_decref(doc);
    assert_int_equal(run(missing, NULL, "streams", "--json"), 2);
    doc = parse(out);
    e = json_object_get(doc, "error");
    assert_string_equal(str_at(e, "code"), "usage");
    assert_contains(str_at(e, "message"), "missing arguments");
    json_decref(doc);
    /* Without --json, stdout stays empty. */
    assert_int_equal(run(missing, NULL, "streams", "account"), 1);
    assert_string_equal(out, "");
}

static void test_verify_clean(void **state)
{
    const char *uri = log_with_streams();
    json_t *doc;
    (void)state;
    assert_int_equal(run(uri, NULL, "verify"), 0);
    assert_contains(out, "verify: OK: 1 type, 4 partitions, 3 streams, 6 events\n");
    assert_int_equal(run(uri, NULL, "verify", "account", "--json"), 0);
    doc = parse(out);
    assert_true(json_is_true(json_object_get(doc, "ok")));
    assert_int_equal(int_at(doc, "event_count"), 6);
    assert_int_equal(int_at(doc, "stream_count"), 3);
    assert_int_equal(json_array_size(json_object_get(doc, "problems")), 0);
    assert_int_equal(json_array_size(json_object_get(doc, "rejected")), 0);
    json_decref(doc);
}

/* With the type compiled in, verify folds every stream: one that does not
 * load is a problem, which --structure alone does not see. */
static void test_verify_folds_streams(void **state)
{
    const char *uri = log_with_streams();
    json_t *doc, *p, *t;
    (void)state;
    assert_int_equal(run(uri, "{\"type\":\"Frobbed\",\"data\":{}}\n", "append",
                         "account", "acct-2", "--expect", "1", "--unchecked"), 0);
    assert_int_equal(run(uri, NULL, "verify"), 1);
    assert_contains(out, "  account/acct-2 v2: does not load: ");
    assert_contains(out, "Frobbed");
    assert_contains(out, "account: 4 partitions, 3 streams, 7 events, 3 folded, 1 problem\n");
    assert_contains(out, "verify: FAILED: 1 problem; ");
    assert_int_equal(run(uri, NULL, "verify", "--json"), 1);
    doc = parse(out);
    assert_int_equal(int_at(doc, "format"), 1);
    assert_false(json_is_true(json_object_get(doc, "ok")));
    assert_int_equal(int_at(doc, "folded_count"), 3);
    p = json_array_get(json_object_get(doc, "problems"), 0);
    assert_string_equal(str_at(p, "kind"), "fold_failed");
    assert_string_equal(str_at(p, "stream_id"), "acct-2");
    assert_int_equal(int_at(p, "version"), 2);
    assert_contains(str_at(p, "message"), "Frobbed");
    t = json_array_get(json_object_get(doc, "by_type"), 0);
    assert_int_equal(int_at(t, "folded_count"), 3);
    json_decref(doc);
    /* The structure alone is sound. */
    assert_int_equal(run(uri, NULL, "verify", "--structure"), 0);
    assert_contains(out, "verify: OK: 1 type, 4 partitions, 3 streams, 7 events\n");
    assert_false(strstr(out, "folded"));
    /* Without the type compiled in, nothing is folded: null in JSON. */
    assert_int_equal(run_app(NULL, uri, NULL, "verify", "--json", NULL), 0);
    doc = parse(out);
    assert_true(json_is_null(json_object_get(doc, "folded_count")));
    t = json_array_get(json_object_get(doc, "by_type"), 0);
    assert_true(json_is_null(json_object_get(t, "folded_count")));
    json_decref(doc);
}

static void test_verify_names_a_type_without_events(void **state)
{
    const char *uri = log_with_streams();
    (void)state;
    assert_int_equal(run(uri, NULL, "verify", "acount"), 1);
    assert_contains(out, "acount: no events of this aggregate type in the log");
    assert_contains(out, "verify: FAILED: 1 problem; 0 types");
}

static void test_verify_malformed_payload(void **state)
{
    const char *uri = log_with_streams();
    const char *path = sqlite_path(uri);
    json_t *doc, *problems;
    int malformed = 0;
    (void)state;
    if (path == NULL)
        skip();
    exec_sql(path, "UPDATE es_events SET payload = 'not json' "
                   "WHERE stream_id = 'acct-1' AND version = 2");
    assert_int_equal(run(uri, NULL, "verify"), 1);
    assert_contains(out, "@1: malformed record: ");
    assert_contains(out, "account/acct-1");
    assert_contains(out, "version 2");
    /* The rest of the partition is still read: v3 is checked (and shows the
     * hole the bad record leaves). */
    assert_contains(out, "version 2 is missing");
    /* ... and, the account type being compiled in, acct-1 does not load. */
    assert_contains(out, "account/acct-1 v2: does not load: ");
    assert_contains(out, "verify: FAILED: 3 problems; 1 type, 4 partitions, "
                         "3 streams, 5 events");
    assert_int_equal(run(uri, NULL, "verify", "--structure"), 1);
    assert_contains(out, "verify: FAILED: 2 problems; 1 type, 4 partitions, "
                         "3 streams, 5 events");

    assert_int_equal(run(uri, NULL, "verify", "--json"), 1);
    doc = parse(out);
    assert_true(json_is_false(json_object_get(doc, "ok")));
    problems = json_object_get(doc, "problems");
    for (size_t i = 0; i < json_array_size(problems); i++) {
        json_t *p = json_array_get(problems, i);
        if (strcmp(str_at(p, "kind"), "malformed") != 0)
            continue;
        malformed++;
        /* acct-1 was written first: version 2 is offset 1 of its partition. */
        assert_int_equal(int_at(json_object_get(p, "position"), "offset"), 1);
        assert_int_equal(int_at(json_object_get(p, "position"), "partition"),
                         es_partition_for("acct-1", 6, 4));
    }
    assert_int_equal(malformed, 1);
    json_decref(doc);

    /* history of that stream fails with the log's message. */
    assert_int_equal(run(uri, NULL, "history", "account", "acct-1"), 1);
    assert_contains(err, "not valid JSON");
}

static void test_verify_deleted_row(void **state)
{
    const char *uri = log_with_streams();
    const char *path = sqlite_path(uri);
    json_t *doc, *p = NULL, *problems;
    (void)state;
    if (path == NULL)
        skip();
    exec_sql(path, "DELETE FROM es_events WHERE stream_id = 'acct-1' AND version = 2");
    assert_int_equal(run(uri, NULL, "verify"), 1);
    assert_contains(out, "account/acct-1 v3 p");
    assert_contains(out, ": version 2 is missing");

    assert_int_equal(run(uri, NULL, "verify", "--json"), 1);
    doc = parse(out);
    problems = json_object_get(doc, "problems");
    for (size_t i = 0; i < json_array_size(problems); i++)
        if (strcmp(str_at(json_array_get(problems, i), "kind"), "version_gap") == 0)
            p = json_array_get(problems, i);
    assert_non_null(p);
    assert_string_equal(str_at(p, "stream_id"), "acct-1");
    assert_int_equal(int_at(p, "version"), 3);
    assert_non_null(json_object_get(json_object_get(p, "position"), "offset"));
    json_decref(doc);
}

static void test_verify_bad_start_and_duplicate_version(void **state)
{
    const char *uri = log_with_streams();
    const char *path = sqlite_path(uri);
    (void)state;
    if (path == NULL)
        skip();
    drop_event_constraints(path);
    exec_sql(path, "UPDATE es_events SET version = 2 WHERE stream_id = 'acct-2';"
                   "UPDATE es_events SET version = 1 WHERE stream_id = 'acct-3';");
    assert_int_equal(run(uri, NULL, "verify"), 1);
    assert_contains(out, "account/acct-2 v2 p");
    assert_contains(out, "the stream starts at version 2 (expected 1)");
    assert_contains(out, "account/acct-3 v1 p");
    assert_contains(out, "version 1 appears twice (also at p");
}

static void test_verify_duplicate_event_id(void **state)
{
    const char *uri = log_with_streams();
    const char *path = sqlite_path(uri);
    (void)state;
    if (path == NULL)
        skip();
    drop_event_constraints(path);
    exec_sql(path, "UPDATE es_events SET event_id = "
                   "'22222222-2222-7222-8222-222222222222' "
                   "WHERE (stream_id = 'acct-1' AND version = 1) "
                   "OR stream_id = 'acct-2'");
    assert_int_equal(run(uri, NULL, "verify"), 1);
    assert_contains(out, "duplicate event id 22222222-2222-7222-8222-222222222222: "
                         "2 times: ");
    assert_contains(out, "account/acct-1 v1 p");
    assert_contains(out, "account/acct-2 v1 p");
    assert_contains(out, "verify: FAILED: 1 problem;");
}

static void test_verify_partition_mismatch(void **state)
{
    const char *uri = log_with_streams();
    const char *path = sqlite_path(uri);
    char sql[512];
    int32_t p, q;
    (void)state;
    if (path == NULL)
        skip();
    /* Move acct-2's only event to the end of another partition. */
    p = es_partition_for("acct-2", 6, 4);
    q = (p + 1) % 4;
    snprintf(sql, sizeof sql,
             "UPDATE es_events SET partition_no = %d, log_offset = "
             "(SELECT next_offset FROM es_partitions WHERE partition_no = %d) "
             "WHERE stream_id = 'acct-2';"
             "UPDATE es_partitions SET next_offset = next_offset + 1 "
             "WHERE partition_no = %d",
             (int)q, (int)q, (int)q);
    exec_sql(path, "INSERT OR IGNORE INTO es_partitions SELECT 'account', "
                   "value, 0 FROM (SELECT 0 AS value UNION SELECT 1 UNION "
                   "SELECT 2 UNION SELECT 3)");
    exec_sql(path, sql);
    assert_int_equal(run(uri, NULL, "verify"), 1);
    assert_contains(out, "account/acct-2 v1 p");
    snprintf(sql, sizeof sql, "in partition %d, but its stream id hashes to "
             "partition %d of 4", (int)q, (int)p);
    assert_contains(out, sql);
}

/* Writes a record to the topic of `account` behind a kafka: URI the way a
 * foreign producer would (kcat, a Java client), bypassing esfold's
 * append. */
static void kafka_produce_raw(const char *uri, const char *key, int32_t partition,
                              const char *version, const char *id)
{
    char brokers[256], topic[256], errstr[512];
    const char *b = uri + strlen("kafka://"), *q = strchr(b, '?');
    const char *p = strstr(uri, "prefix=");
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    size_t plen;

    assert_non_null(q);
    assert_non_null(p);
    snprintf(brokers, sizeof brokers, "%.*s", (int)(q - b), b);
    p += strlen("prefix=");
    plen = strcspn(p, "&");
    snprintf(topic, sizeof topic, "%.*saccount", (int)plen, p);
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr,
                                       sizeof errstr), RD_KAFKA_CONF_OK);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    assert_non_null(rk);
    assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                       RD_KAFKA_V_PARTITION(partition),
                                       RD_KAFKA_V_KEY(key, strlen(key)),
                                       RD_KAFKA_V_VALUE("{\"amount\":5}", 12),
                                       RD_KAFKA_V_HEADER("es-type", "Deposited", -1),
                                       RD_KAFKA_V_HEADER("es-version", version, -1),
                                       RD_KAFKA_V_HEADER("es-id", id, -1),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
}

static void test_verify_lists_rejected_events(void **state)
{
    const char *uri = log_with_account();
    es_log *log = NULL;
    int32_t nparts = 0;
    json_t *doc, *rej;
    (void)state;
    if (strncmp(uri, "kafka://", 8) != 0)
        skip(); /* the SQLite log accepts every event it stores */
    assert_int_equal(es_log_open(&log, uri), 0);
    assert_int_equal(es_log_partition_count(log, &nparts, "account"), 0);
    es_log_close(log);
    /* Version 2 again: a racing writer that lost. */
    kafka_produce_raw(uri, "acct-1", es_partition_for("acct-1", 6, nparts), "2",
                      "44444444-4444-7444-8444-444444444444");

    assert_int_equal(run(uri, NULL, "verify"), 0);
    assert_contains(out, "rejected (stale): account/acct-1 v2 p");
    assert_contains(out, "verify: OK: 1 type, ");
    assert_contains(out, "3 events (and 1 rejected event, skipped by every "
                         "reader)");
    assert_int_equal(run(uri, NULL, "verify", "--json"), 0);
    doc = parse(out);
    assert_int_equal(int_at(doc, "rejected_count"), 1);
    rej = json_array_get(json_object_get(doc, "rejected"), 0);
    assert_non_null(rej);
    assert_string_equal(str_at(rej, "verdict"), "stale");
    assert_string_equal(str_at(rej, "id"), "44444444-4444-7444-8444-444444444444");
    assert_int_equal(int_at(rej, "version"), 2);
    json_decref(doc);
    /* Readers skip it: the history is unchanged. */
    assert_int_equal(run(uri, NULL, "history", "account", "acct-1"), 0);
    assert_contains(out, "at version 3 (3 events)");
}

static void test_verify_missing_log_file(void **state)
{
    const char *uri = es_test_fresh_log_uri();
    (void)state;
    if (sqlite_path(uri) == NULL)
        skip();
    assert_int_equal(run(uri, NULL, "verify"), 1);
    assert_contains(err, "no such log file");
    assert_int_equal(run(uri, NULL, "history", "account", "a"), 1);
    assert_contains(err, "no such log file");
}

/* librdkafka's own lines ("%3|...|FAIL|...") go through esfold's
 * diagnostics: not on stderr before esfold's message, shown with
 * --verbose. No broker listens on port 1: the connection is refused at
 * once, long before the 1 s the open waits. */
static void test_kafka_lines_only_with_verbose(void **state)
{
    const char *uri = "kafka://127.0.0.1:1?prefix=x.&timeout_ms=1000";
    (void)state;
    assert_int_equal(run(uri, NULL, "verify"), 1);
    assert_contains(err, "cannot reach the brokers 127.0.0.1:1");
    assert_null(strstr(err, "%3|"));
    assert_null(strstr(err, "FAIL"));
    assert_int_equal(run(uri, NULL, "--verbose", "verify"), 1);
    assert_contains(err, "bank: kafka (level 3): ");
    assert_contains(err, "FAIL");
    assert_contains(err, "cannot reach the brokers 127.0.0.1:1");
    assert_null(strstr(err, "%3|"));
}

/* A missing folder and a directory are named as such. */
static void test_unopenable_sqlite_paths_are_explained(void **state)
{
    char uri[1024];
    (void)state;
    snprintf(uri, sizeof uri, "sqlite:%s/missing/x.db", es_test_tmpdir());
    assert_int_equal(run(uri, "{\"type\":\"AccountOpened\",\"data\":"
                              "{\"owner\":\"A\",\"currency\":\"EUR\"}}\n",
                         "append", "account", "a-1", "--expect", "0"), 1);
    assert_contains(err, "cannot open: the folder ");
    assert_contains(err, "/missing does not exist");
    snprintf(uri, sizeof uri, "sqlite:%s", es_test_tmpdir());
    assert_int_equal(run(uri, "{\"type\":\"AccountOpened\",\"data\":"
                              "{\"owner\":\"A\",\"currency\":\"EUR\"}}\n",
                         "append", "account", "a-1", "--expect", "0"), 1);
    assert_contains(err, "cannot open: it is a directory, not a file");
    assert_int_equal(run(uri, NULL, "verify"), 1);
    assert_contains(err, "it is a directory, not a file");
}

/* ---- help, version, usage ------------------------------------------------ */

static void test_help(void **state)
{
    static const char *const commands[] = { "history", "append", "verify" };
    char usage[64];
    (void)state;
    assert_int_equal(run(NULL, NULL, "--help"), 0);
    assert_contains(out, "Usage: bank [--log URI] [--snapshots URI] COMMAND");
    assert_contains(out, "Aggregate types compiled in: account");
    for (size_t i = 0; i < 3; i++) {
        snprintf(usage, sizeof usage, "\n  %s ", commands[i]);
        assert_contains(out, usage);
    }
    for (size_t i = 0; i < 3; i++) {
        snprintf(usage, sizeof usage, "Usage: bank [--log URI] %s ", commands[i]);
        assert_int_equal(run(NULL, NULL, commands[i], "--help"), 0);
        assert_contains(out, usage);
        assert_contains(out, "--help");
        assert_string_equal(err, "");
        assert_int_equal(run(NULL, NULL, "help", commands[i]), 0);
        assert_contains(out, usage);
    }
    assert_int_equal(run(NULL, NULL, "history", "--help"), 0);
    assert_contains(out, "--as-of TIME");
    assert_int_equal(run(NULL, NULL, "--version"), 0);
    assert_contains(out, "bank (esfold " ESFOLD_VERSION ")");
    assert_int_equal(run_app(NULL, NULL, NULL, "--version", NULL), 0);
    assert_string_equal(out, "esfold " ESFOLD_VERSION "\n");
}

/* Every command's --help lists every option it takes, with its argument,
 * and the main --help names every command. */
static void test_help_lists_every_option(void **state)
{
    static const es__cli_command *const commands[] = {
        &es__cli_history, &es__cli_append, &es__cli_verify, &es__cli_streams,
        &es__cli_broker, &es__cli_topics, &es__cli_snapshot, NULL
    };
    char want[160];
    (void)state;
    assert_int_equal(run(NULL, NULL, "--help"), 0);
    for (size_t i = 0; commands[i]; i++) {
        snprintf(want, sizeof want, "\n  %s ", commands[i]->name);
        assert_contains(out, want);
    }
    assert_contains(out, "--snapshots URI");
    assert_contains(out, "--verbose");
    for (size_t i = 0; commands[i]; i++) {
        assert_int_equal(run(NULL, NULL, commands[i]->name, "--help"), 0);
        for (const es__cli_opt *o = commands[i]->opts; o && o->name; o++) {
            snprintf(want, sizeof want, "--%s%s%s ", o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
            assert_contains(out, want);
        }
        assert_contains(out, "--log URI");
        assert_contains(out, "--help");
    }
}

static void test_version(void **state)
{
    int major = -1, minor = -1, patch = -1;
    char text[32];
    (void)state;
    assert_string_equal(es_version(&major, &minor, &patch), ES_VERSION_STRING);
    assert_int_equal(major, ES_VERSION_MAJOR);
    assert_int_equal(minor, ES_VERSION_MINOR);
    assert_int_equal(patch, ES_VERSION_PATCH);
    snprintf(text, sizeof text, "%d.%d.%d", major, minor, patch);
    assert_string_equal(es_version(NULL, NULL, NULL), text);
    assert_int_equal(ES_VERSION_NUMBER, (major << 16) | (minor << 8) | patch);
}

/* ---- a program's own commands (es_app.commands) -------------------------- */

static void test_minimal_sample(void **state)
{
    const char *uri = es_test_fresh_log_uri();
    (void)state;
    assert_int_equal(run_app(&counter_app, NULL, NULL, "--help", NULL), 0);
    assert_contains(out, "Commands of minimal:\n  add ");
    assert_contains(out, "add N (> 0) to counter ID");
    assert_contains(out, "\nOperations on the event log:\n");
    assert_contains(out, "\n  history ");
    assert_int_equal(run_app(&counter_app, NULL, NULL, "add", "--help", NULL), 0);
    assert_contains(out, "Usage: minimal [--log URI] add ID N");
    assert_int_equal(run_app(&counter_app, uri, NULL, "add", "c1", "5", NULL), 0);
    assert_string_equal(out, "counter c1: 5 (version 1)\n");
    assert_int_equal(run_app(&counter_app, uri, NULL, "add", "c1", "2", NULL), 0);
    assert_string_equal(out, "counter c1: 7 (version 2)\n");
    assert_int_equal(run_app(&counter_app, uri, NULL, "add", "c1", "-3", NULL), 1);
    assert_contains(err, "a counter only goes up: -3 is not > 0");
    assert_int_equal(run_app(&counter_app, uri, NULL, "add", "c1", NULL), 2);
    assert_contains(err, "minimal add: missing arguments: expected ID N");
    assert_int_equal(run_app(&counter_app, uri, NULL, "add", "c1", "x", NULL), 2);
    assert_contains(err, "N 'x' is not a number");
    assert_int_equal(run_app(&counter_app, uri, NULL, "add", "c1", "1", "2", NULL), 2);
    assert_int_equal(run_app(&counter_app, uri, NULL, "add", "c1", "1", "--bogus",
                             NULL), 2);
    assert_contains(err, "unknown option '--bogus'");
    /* The operations commands fold with the type compiled in. */
    assert_int_equal(run_app(&counter_app, uri, NULL, "history", "counter", "c1",
                             NULL), 0);
    assert_contains(out, "state {\"total\":7}");
    assert_contains(out, "at version 2 (2 events)");
}

/* What the last run of probe_run was given. */
static struct {
    int calls, argc;
    char arg0[64], note[64];
    int flag, has_log, has_repo, has_snapshots, user_data_ok;
    char snapshots_uri[256];
} probe;

static int probe_run(const es_app_call *call)
{
    probe.calls++;
    probe.argc = call->argc;
    snprintf(probe.arg0, sizeof probe.arg0, "%s", call->argc ? call->argv[0] : "");
    snprintf(probe.note, sizeof probe.note, "%s",
             call->values[0] ? call->values[0] : "(none)");
    probe.flag = call->values[1] != NULL;
    probe.has_log = call->log != NULL;
    probe.has_repo = call->repo != NULL;
    probe.has_snapshots = call->snapshots != NULL;
    probe.user_data_ok = call->user_data == &probe;
    snprintf(probe.snapshots_uri, sizeof probe.snapshots_uri, "%s",
             call->snapshots_uri ? call->snapshots_uri : "(none)");
    return call->values[1] ? 1 : 0; /* --fail: the command fails */
}

static const es_app_option probe_opts[] = {
    { "note", "TEXT", "a value" },
    { "fail", NULL, "a flag: the command fails" },
    { NULL, NULL, NULL }
};

static const es_app_command probe_commands[] = {
    { "probe", "[ARG...]", "records what it gets", "It only records.\n",
      probe_opts, 0, -1, 0, probe_run },
    { "peek", "ARG", "the same, reading only", NULL, probe_opts, 1, 1,
      ES_APP_READ_ONLY, probe_run },
    { NULL, NULL, NULL, NULL, NULL, 0, 0, 0, NULL }
};

static const es_snapshot_policy probe_policy = ES_SNAPSHOT_POLICY_INIT;

static void test_app_commands(void **state)
{
    const char *uri = log_with_account();
    char missing[4096], bad_store[4200];
    es_app app = ES_APP_INIT;
    (void)state;
    app.name = "probe";
    app.types = bank_types;
    app.commands = probe_commands;
    app.user_data = &probe;

    memset(&probe, 0, sizeof probe);
    assert_int_equal(run_app(&app, uri, NULL, "probe", "a", "--note", "hi", "b",
                             NULL), 0);
    assert_int_equal(probe.calls, 1);
    assert_int_equal(probe.argc, 2);
    assert_string_equal(probe.arg0, "a");
    assert_string_equal(probe.note, "hi");
    assert_false(probe.flag);
    assert_true(probe.has_log && probe.has_repo && probe.user_data_ok);
    assert_false(probe.has_snapshots); /* app.snapshots is NULL */
    assert_int_equal(run_app(&app, uri, NULL, "probe", "--fail", NULL), 1);
    assert_true(probe.flag);
    assert_string_equal(probe.note, "(none)");
    assert_int_equal(run_app(&app, uri, NULL, "probe", "--note", NULL), 2);
    assert_contains(err, "--note needs a value (TEXT)");
    assert_int_equal(probe.calls, 2);
    /* help lists every option, and the command's own text */
    assert_int_equal(run_app(&app, NULL, NULL, "help", "probe", NULL), 0);
    assert_contains(out, "Usage: probe [--log URI] probe [ARG...]");
    assert_contains(out, "It only records.");
    assert_contains(out, "--note TEXT");
    assert_contains(out, "--fail ");

    /* A reading command does not create a log where none is. */
    snprintf(missing, sizeof missing, "sqlite:%s", es_test_path("none.db"));
    assert_int_equal(run_app(&app, missing, NULL, "peek", "x", NULL), 1);
    assert_contains(err, "no such log file");
    assert_int_equal(probe.calls, 2);

    /* With a policy, a store is attached: the log's own file by default;
     * one given with --snapshots must open. */
    app.snapshots = &probe_policy;
    if (strncmp(uri, "sqlite:", 7) == 0) {
        assert_int_equal(run_app(&app, uri, NULL, "peek", "x", NULL), 0);
        assert_true(probe.has_snapshots);
        assert_string_equal(probe.snapshots_uri, "(none)");
    }
    snprintf(bad_store, sizeof bad_store, "sqlite:%s/no/such/dir/s.db",
             es_test_tmpdir());
    {
        char *argv[] = { "probe", "--log", (char *)uri, "--snapshots", bad_store,
                         "probe", NULL };
        probe.calls = 0;
        assert_int_equal(es_test_capture(cli_fn, 6, argv, &app, &out, &err), 1);
        assert_contains(err, "probe: error: cannot open the snapshot store");
        assert_int_equal(probe.calls, 0);
    }

    /* A table entry without run is refused, not called. */
    {
        static const es_app_command broken[] = {
            { "nothing", "", "no run", NULL, NULL, 0, 0, 0, NULL },
            { NULL, NULL, NULL, NULL, NULL, 0, 0, 0, NULL }
        };
        es_app b = app;
        b.commands = broken;
        assert_int_equal(run_app(&b, uri, NULL, "nothing", NULL), 1);
        assert_contains(err, "command 'nothing' of the program is not valid: "
                             "it has no run function");
    }

    /* A program built against version 1 of es_app has no command table. */
    {
        es_app v1 = { .version = 1, .name = "old", .types = bank_types,
                      .commands = probe_commands };
        assert_int_equal(run_app(&v1, uri, NULL, "probe", NULL), 2);
        assert_contains(err, "unknown command 'probe'");
        v1.version = 3;
        assert_int_equal(run_app(&v1, uri, NULL, "verify", NULL), 1);
        assert_contains(err, "es_app version 3 is not supported");
    }
}

static void test_usage_errors(void **state)
{
    (void)state;
    assert_int_equal(run(NULL, NULL, "frobnicate"), 2);
    assert_contains(err, "bank: unknown command 'frobnicate'");
    assert_int_equal(run_app(&bank_app, NULL, NULL, NULL), 2);
    assert_contains(err, "no command given");
    assert_int_equal(run(NULL, NULL, "--bogus", "verify"), 2);
    assert_contains(err, "unknown option '--bogus'");
    assert_int_equal(run(NULL, NULL, "--log"), 2);
    assert_contains(err, "--log needs a URI");
    assert_int_equal(run(NULL, NULL, "help", "nope"), 2);
    assert_contains(err, "unknown command 'nope'");
}

static void test_log_from_environment_and_bad_uri(void **state)
{
    const char *uri = log_with_account();
    (void)state;
    setenv("ESFOLD_LOG", uri, 1);
    assert_int_equal(run(NULL, NULL, "history", "account", "acct-1"), 0);
    assert_contains(out, "at version 3");
    unsetenv("ESFOLD_LOG");
    assert_int_equal(run("nosuch:thing", NULL, "history", "account", "acct-1"), 1);
    assert_contains(err, "bank: ");
    assert_contains(err, "nosuch:thing");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_then_history),
        cmocka_unit_test(test_history_json),
        cmocka_unit_test(test_history_to_version),
        cmocka_unit_test(test_history_as_of),
        cmocka_unit_test(test_history_as_of_before_first_event),
        cmocka_unit_test(test_history_unknown_stream),
        cmocka_unit_test(test_history_stored_schema),
        cmocka_unit_test(test_history_bad_arguments),
        cmocka_unit_test(test_history_type_not_compiled_in),
        cmocka_unit_test(test_append_expect_is_checked),
        cmocka_unit_test(test_append_conflict),
        cmocka_unit_test(test_append_malformed_lines_append_nothing),
        cmocka_unit_test(test_append_refuses_event_types_the_type_does_not_handle),
        cmocka_unit_test(test_append_folds_before_writing),
        cmocka_unit_test(test_append_json_and_retry),
        cmocka_unit_test(test_append_empty_input),
        cmocka_unit_test(test_streams),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_verify_clean),
        cmocka_unit_test(test_verify_folds_streams),
        cmocka_unit_test(test_verify_names_a_type_without_events),
        cmocka_unit_test(test_verify_malformed_payload),
        cmocka_unit_test(test_verify_deleted_row),
        cmocka_unit_test(test_verify_bad_start_and_duplicate_version),
        cmocka_unit_test(test_verify_duplicate_event_id),
        cmocka_unit_test(test_verify_partition_mismatch),
        cmocka_unit_test(test_verify_lists_rejected_events),
        cmocka_unit_test(test_verify_missing_log_file),
        cmocka_unit_test(test_kafka_lines_only_with_verbose),
        cmocka_unit_test(test_unopenable_sqlite_paths_are_explained),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_help_lists_every_option),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_minimal_sample),
        cmocka_unit_test(test_app_commands),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_log_from_environment_and_bad_uri),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * tests/test_log.c - the event log, through its public API.
 *
 * One suite for every backend: each test gets a fresh log from the harness
 * (a new SQLite file, or with $ESFOLD_TEST_LOG_URI_BASE a fresh topic
 * prefix on that Kafka cluster). Tests that reach into the SQLite file
 * itself (corruption, schema versions) skip on other backends.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "esfold/esfold.h"
#include "harness.h"

#define T0 INT64_C(1772359200000000) /* 2026-03-01T10:00:00Z */
#define SEC INT64_C(1000000)

/* ---- helpers ------------------------------------------------------------- */

/* Deep copies of the events a read delivered. */
typedef struct seen {
    es_event *ev[256];
    size_t n;
    size_t stop_after; /* return non-zero after this many (0: never) */
} seen;

static int collect(const es_event *ev, void *user_data)
{
    seen *s = user_data;
    assert_true(s->n < sizeof s->ev / sizeof s->ev[0]);
    assert_int_equal(es_event_copy(&s->ev[s->n], ev), 0);
    s->n++;
    return s->stop_after && s->n == s->stop_after;
}

static void seen_clear(seen *s)
{
    for (size_t i = 0; i < s->n; i++)
        es_event_free(s->ev[i]);
    memset(s, 0, sizeof *s);
}

static json_t *obj(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    assert_non_null(j);
    return j;
}

/* Appends n events of `type` with payloads {"n": k} for k = 1..n. */
static int append_n(es_log *log, es_append_result *res, const char *agg,
                    const char *sid, int64_t expected, const char *type,
                    size_t n)
{
    es_event evs[16];
    es_append_result local;
    int rc;
    assert_true(n <= 16);
    memset(evs, 0, sizeof evs);
    for (size_t i = 0; i < n; i++) {
        evs[i].type = type;
        evs[i].payload = json_pack("{s:I}", "n", (json_int_t)(i + 1));
    }
    rc = es_log_append(log, res ? res : &local, agg, sid, expected, evs, n);
    for (size_t i = 0; i < n; i++)
        json_decref(evs[i].payload);
    return rc;
}

static size_t read_all(es_log *log, seen *s, const char *agg, const char *sid,
                       const es_read_options *opts)
{
    seen_clear(s);
    assert_int_equal(es_log_read_stream(log, agg, sid, opts, collect, s), 0);
    return s->n;
}

static int is_sqlite(const char *uri)
{
    return strncmp(uri, "sqlite:", 7) == 0;
}

/* The file path of a sqlite: URI (without a query). */
static const char *sqlite_path(const char *uri)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s", uri + 7);
    path[strcspn(path, "?")] = '\0';
    return path;
}

/* Runs SQL on the file behind the log's back. */
static void raw_sql(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    char *err = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        print_error("%s: %s\n", sql, err);
        fail();
    }
    sqlite3_close(db);
}

/* uri with one more query parameter. The string lives until exit. */
static const char *with_param(const char *uri, const char *param)
{
    static char bufs[8][1024];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s%s%s", uri, strchr(uri, '?') ? "&" : "?",
             param);
    return b;
}

static int64_t head_of(es_log *log, const char *agg, int32_t partition)
{
    int64_t h = -1;
    assert_int_equal(es_log_head(log, &h, agg, partition), 0);
    return h;
}

static int32_t partition_of(es_log *log, const char *agg, const char *sid)
{
    int32_t count = 0;
    assert_int_equal(es_log_partition_count(log, &count, agg), 0);
    assert_true(count > 0);
    return es_partition_for(sid, strlen(sid), count);
}

/* ---- append and read back ------------------------------------------------ */

static void test_round_trip_every_field(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_append_result res;
    seen s = {0};
    int32_t part = partition_of(log, "account", "acct-1");
    int64_t before = es_time_now_us(), after;
    es_event evs[2];

    memset(evs, 0, sizeof evs);
    evs[0].type = "Opened";
    evs[0].id = "0190f3a0-0000-7000-8000-000000000001";
    evs[0].occurred_us = T0 + 1;
    evs[0].schema = 3;
    evs[0].correlation_id = "corr-1";
    evs[0].causation_id = "cause-1";
    evs[0].payload = obj("{\"owner\": \"Zoë\", \"limit\": 2.5, \"tags\": [1, null],"
                         " \"big\": 9007199254740993}");
    evs[0].meta = obj("{\"user\": \"u1\"}");
    /* The second relies on every default. */
    evs[1].type = "Deposited";
    evs[1].payload = obj("{}");

    assert_int_equal(es_log_append(log, &res, "account", "acct-1",
                                   ES_EXPECT_NO_STREAM, evs, 2),
                     0);
    after = es_time_now_us();
    assert_int_equal(res.first_version, 1);
    assert_int_equal(res.version, 2);
    assert_int_equal(res.duplicate, 0);
    assert_int_equal(res.first.partition, part);
    assert_int_equal(res.last.partition, part);
    assert_int_equal(res.first.offset, 0);
    assert_int_equal(res.last.offset, 1);

    assert_int_equal(read_all(log, &s, "account", "acct-1", NULL), 2);
    es_event *a = s.ev[0], *b = s.ev[1];
    assert_string_equal(a->aggregate_type, "account");
    assert_string_equal(a->stream_id, "acct-1");
    assert_string_equal(a->type, "Opened");
    assert_int_equal(a->version, 1);
    assert_int_equal(a->occurred_us, T0 + 1);
    assert_int_equal(a->schema, 3);
    assert_string_equal(a->id, "0190f3a0-0000-7000-8000-000000000001");
    assert_string_equal(a->correlation_id, "corr-1");
    assert_string_equal(a->causation_id, "cause-1");
    assert_true(json_equal(a->payload, evs[0].payload));
    assert_true(json_equal(a->meta, evs[0].meta));
    assert_int_equal(a->position.partition, part);
    assert_int_equal(a->position.offset, 0);
    assert_non_null(a->commit_id);
    assert_int_equal(a->commit_size, 2);

    assert_string_equal(b->type, "Deposited");
    assert_int_equal(b->version, 2);
    assert_true(b->occurred_us >= before && b->occurred_us <= after);
    assert_int_equal(b->schema, 1);
    assert_non_null(b->id);
    assert_int_equal(strlen(b->id), ES_ID_LEN);
    assert_string_not_equal(b->id, a->id);
    assert_null(b->correlation_id);
    assert_null(b->causation_id);
    assert_true(json_is_object(b->payload) && json_object_size(b->payload) == 0);
    assert_null(b->meta);
    assert_int_equal(b->position.offset, 1);
    assert_string_equal(b->commit_id, a->commit_id);
    assert_int_equal(b->commit_size, 2);

    /* A second commit gets its own commit id and continues the offsets. */
    assert_int_equal(append_n(log, &res, "account", "acct-1", 2, "Deposited", 1), 0);
    assert_int_equal(res.first.offset, 2);
    assert_int_equal(read_all(log, &s, "account", "acct-1", NULL), 3);
    assert_string_not_equal(s.ev[2]->commit_id, s.ev[0]->commit_id);
    assert_int_equal(s.ev[2]->commit_size, 1);

    seen_clear(&s);
    json_decref(evs[0].payload);
    json_decref(evs[0].meta);
    json_decref(evs[1].payload);
    es_log_close(log);
}

static void test_expected_versions(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_append_result res;
    seen s = {0};

    /* NO_STREAM: only on a stream that does not exist. */
    assert_int_equal(append_n(log, &res, "account", "acct-42",
                              ES_EXPECT_NO_STREAM, "Opened", 1), 0);
    assert_int_equal(res.version, 1);
    assert_int_equal(res.actual_version, 0);
    assert_int_equal(append_n(log, &res, "account", "acct-42",
                              ES_EXPECT_NO_STREAM, "Opened", 1), ES_ECONFLICT);
    assert_string_equal(es_errmsg(log),
                        "appending to account/acct-42: version conflict: "
                        "expected no stream, stream is at 1");
    /* The conflict as data: where the stream is, nothing else. */
    assert_int_equal(res.actual_version, 1);
    assert_int_equal(res.version, 0);
    assert_int_equal(res.duplicate, 0);

    /* Exact. */
    assert_int_equal(append_n(log, &res, "account", "acct-42", 1, "Deposited", 5), 0);
    assert_int_equal(res.first_version, 2);
    assert_int_equal(res.version, 6);
    assert_int_equal(append_n(log, &res, "account", "acct-42", 6, "Deposited", 1), 0);
    assert_int_equal(res.version, 7);
    assert_int_equal(res.actual_version, 6);
    assert_int_equal(append_n(log, &res, "account", "acct-42", 6, "Deposited", 1),
                     ES_ECONFLICT);
    assert_string_equal(es_errmsg(log),
                        "appending to account/acct-42: version conflict: "
                        "expected 6, stream is at 7");
    assert_int_equal(res.actual_version, 7);
    assert_int_equal(append_n(log, &res, "account", "acct-42", 8, "Deposited", 1),
                     ES_ECONFLICT);
    assert_contains(es_errmsg(log), "expected 8, stream is at 7");
    assert_int_equal(res.actual_version, 7);
    /* An exact version on a stream that does not exist conflicts too. */
    assert_int_equal(append_n(log, &res, "account", "acct-new", 3, "Deposited", 1),
                     ES_ECONFLICT);
    assert_string_equal(es_errmsg(log), "appending to account/acct-new: version "
                                        "conflict: expected 3, stream does not exist");
    assert_int_equal(res.actual_version, 0);
    assert_int_equal(read_all(log, &s, "account", "acct-new", NULL), 0);

    /* ANY: whatever the version. */
    assert_int_equal(append_n(log, &res, "account", "acct-42", ES_EXPECT_ANY,
                              "Deposited", 2), 0);
    assert_int_equal(res.first_version, 8);
    assert_int_equal(res.version, 9);
    assert_int_equal(append_n(log, &res, "account", "acct-any", ES_EXPECT_ANY,
                              "Opened", 1), 0);
    assert_int_equal(res.version, 1);

    /* The conflicts wrote nothing. */
    assert_int_equal(read_all(log, &s, "account", "acct-42", NULL), 9);
    for (size_t i = 0; i < s.n; i++)
        assert_int_equal(s.ev[i]->version, (int64_t)i + 1);
    /* The same stream id under another aggregate type is another stream. */
    assert_int_equal(append_n(log, &res, "order", "acct-42", ES_EXPECT_NO_STREAM,
                              "Placed", 1), 0);
    assert_int_equal(res.version, 1);

    seen_clear(&s);
    es_log_close(log);
}

static void test_commit_is_atomic(void **state)
{
    es_log *log = es_test_open_fresh_log();
    int32_t part = partition_of(log, "account", "acct-1");
    int64_t head0 = head_of(log, "account", part);
    es_append_result res;
    es_event evs[3];
    seen s = {0};

    /* The third event is malformed: nothing of the commit counts. */
    memset(evs, 0, sizeof evs);
    for (int i = 0; i < 3; i++) {
        evs[i].type = "Deposited";
        evs[i].payload = json_pack("{s:i}", "amount", i + 1);
    }
    json_decref(evs[2].payload);
    evs[2].payload = obj("[1, 2]");
    assert_int_equal(es_log_append(log, &res, "account", "acct-1",
                                   ES_EXPECT_NO_STREAM, evs, 3),
                     ES_EINVAL);
    assert_contains(es_errmsg(log), "event 3");
    assert_int_equal(read_all(log, &s, "account", "acct-1", NULL), 0);
    assert_int_equal(head_of(log, "account", part), head0);

    /* A failure found by the store half way through the commit (event 2
     * reuses an id that is already in another stream) rolls back event 1. */
    json_decref(evs[2].payload);
    evs[2].payload = json_pack("{s:i}", "amount", 3);
    evs[0].id = "0190f3a0-0000-7000-8000-00000000a001";
    evs[1].id = "0190f3a0-0000-7000-8000-00000000a002";
    assert_int_equal(es_log_append(log, &res, "account", "acct-other",
                                   ES_EXPECT_NO_STREAM, &evs[1], 1),
                     0);
    int32_t other = res.first.partition;
    int64_t other_head = head_of(log, "account", other);
    head0 = head_of(log, "account", part);
    assert_int_equal(es_log_append(log, &res, "account", "acct-1",
                                   ES_EXPECT_NO_STREAM, evs, 3),
                     ES_EINVAL);
    assert_contains(es_errmsg(log), "0190f3a0-0000-7000-8000-00000000a002");
    assert_contains(es_errmsg(log), "account/acct-other");
    assert_int_equal(read_all(log, &s, "account", "acct-1", NULL), 0);
    assert_int_equal(head_of(log, "account", part), head0);
    assert_int_equal(head_of(log, "account", other), other_head);

    /* The stream is still absent: NO_STREAM succeeds and starts at 1. */
    evs[1].id = NULL;
    assert_int_equal(es_log_append(log, &res, "account", "acct-1",
                                   ES_EXPECT_NO_STREAM, evs, 3),
                     0);
    assert_int_equal(res.first_version, 1);
    assert_int_equal(res.version, 3);
    assert_int_equal(read_all(log, &s, "account", "acct-1", NULL), 3);

    for (int i = 0; i < 3; i++)
        json_decref(evs[i].payload);
    seen_clear(&s);
    es_log_close(log);
}

static void test_idempotent_retry(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_append_result first, again;
    es_event evs[3];
    seen s = {0};
    int32_t part = partition_of(log, "account", "acct-1");

    memset(evs, 0, sizeof evs);
    for (int i = 0; i < 3; i++) {
        evs[i].type = "Deposited";
        evs[i].payload = json_pack("{s:i}", "amount", i + 1);
    }
    evs[0].id = "0190f3a0-0000-7000-8000-00000000b001";
    evs[1].id = "0190f3a0-0000-7000-8000-00000000b002";
    evs[2].id = "0190f3a0-0000-7000-8000-00000000b003";

    assert_int_equal(append_n(log, NULL, "account", "acct-1", ES_EXPECT_NO_STREAM,
                              "Opened", 1), 0);
    assert_int_equal(es_log_append(log, &first, "account", "acct-1", 1, evs, 2), 0);
    assert_int_equal(first.duplicate, 0);
    assert_int_equal(append_n(log, NULL, "account", "acct-1", 3, "Deposited", 1), 0);
    int64_t head = head_of(log, "account", part);

    /* The retry's expected version is stale by now: still a duplicate. */
    assert_int_equal(es_log_append(log, &again, "account", "acct-1", 1, evs, 2), 0);
    assert_int_equal(again.duplicate, 1);
    assert_int_equal(again.first_version, first.first_version);
    assert_int_equal(again.version, first.version);
    assert_int_equal(again.first.partition, first.first.partition);
    assert_int_equal(again.first.offset, first.first.offset);
    assert_int_equal(again.last.partition, first.last.partition);
    assert_int_equal(again.last.offset, first.last.offset);
    assert_int_equal(again.first_version, 2);
    assert_int_equal(again.version, 3);
    assert_int_equal(again.actual_version, 1);
    assert_int_equal(head_of(log, "account", part), head);
    assert_int_equal(read_all(log, &s, "account", "acct-1", NULL), 4);

    /* Part of the commit, or more than it, is not a retry. */
    assert_int_equal(es_log_append(log, &again, "account", "acct-1", 4, evs, 1),
                     ES_EINVAL);
    assert_contains(es_errmsg(log), "0190f3a0-0000-7000-8000-00000000b001");
    assert_int_equal(es_log_append(log, &again, "account", "acct-1", 4, evs, 3),
                     ES_EINVAL);
    assert_contains(es_errmsg(log), "0190f3a0-0000-7000-8000-00000000b00");
    /* An id of this stream reused as a later event of a new commit. */
    assert_int_equal(es_log_append(log, &again, "account", "acct-1", 4, &evs[1], 2),
                     ES_EINVAL);
    /* ... and in another stream: the message says where the id lives. */
    assert_int_equal(es_log_append(log, &again, "account", "acct-2",
                                   ES_EXPECT_ANY, evs, 2),
                     ES_EINVAL);
    assert_contains(es_errmsg(log), "0190f3a0-0000-7000-8000-00000000b001");
    assert_contains(es_errmsg(log), "account/acct-1");
    assert_contains(es_errmsg(log), "version 2");
    assert_int_equal(read_all(log, &s, "account", "acct-2", NULL), 0);
    assert_int_equal(read_all(log, &s, "account", "acct-1", NULL), 4);
    assert_int_equal(head_of(log, "account", part), head);

    /* The same ids in another order are not the commit that was written:
     * not a duplicate, and nothing is appended. */
    {
        es_event swapped[2];
        swapped[0] = evs[1];
        swapped[1] = evs[0];
        assert_int_equal(es_log_append(log, &again, "account", "acct-1",
                                       ES_EXPECT_ANY, swapped, 2),
                         ES_EINVAL);
        assert_int_equal(read_all(log, &s, "account", "acct-1", NULL), 4);
        assert_int_equal(head_of(log, "account", part), head);
    }

    for (int i = 0; i < 3; i++)
        json_decref(evs[i].payload);
    seen_clear(&s);
    es_log_close(log);
}

/* An as-of read that stops at an event carrying metadata releases it (the
 * leak shows under SANITIZE=1 or VALGRIND=1). */
static void test_as_of_stop_releases_metadata(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_event evs[3];
    es_read_options ro = ES_READ_OPTIONS_INIT;
    seen s = {0};

    memset(evs, 0, sizeof evs);
    for (int i = 0; i < 3; i++) {
        evs[i].type = "Noted";
        evs[i].occurred_us = T0 + (i + 1) * SEC;
        evs[i].payload = json_pack("{s:i}", "n", i);
        evs[i].meta = json_pack("{s:s,s:i}", "by", "auditor", "seq", i);
    }
    assert_int_equal(es_log_append(log, NULL, "note", "n-1", 0, evs, 3), 0);
    ro.to = ES_RANGE_AS_OF(T0 + 2 * SEC);
    assert_int_equal(read_all(log, &s, "note", "n-1", &ro), 2);
    assert_non_null(s.ev[1]->meta);
    for (int i = 0; i < 3; i++) {
        json_decref(evs[i].payload);
        json_decref(evs[i].meta);
    }
    seen_clear(&s);
    es_log_close(log);
}

/* ---- the size limit ------------------------------------------------------- */

/* {"s":"xxx..."} of exactly `bytes` bytes of compact JSON. */
static json_t *payload_of_size(size_t bytes)
{
    size_t n = bytes - 8; /* {"s":""} */
    char *text = malloc(n + 1);
    json_t *j;
    assert_non_null(text);
    memset(text, 'x', n);
    text[n] = '\0';
    j = json_pack("{s:s}", "s", text);
    free(text);
    assert_non_null(j);
    return j;
}

/* One limit, ES_EVENT_MAX_BYTES, on every log, checked before writing. */
static void test_event_size_limit(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_event ev[2];
    seen s = {0};

    memset(ev, 0, sizeof ev);
    ev[0].type = "Big";
    ev[0].payload = payload_of_size(ES_EVENT_MAX_BYTES);
    ev[1].type = "Small";
    ev[1].payload = obj("{}");
    assert_int_equal(es_log_append(log, NULL, "blob", "b-1", 0, ev, 1), 0);
    assert_int_equal(read_all(log, &s, "blob", "b-1", NULL), 1);
    assert_int_equal(json_string_length(json_object_get(s.ev[0]->payload, "s")),
                     ES_EVENT_MAX_BYTES - 8);
    json_decref(ev[0].payload);

    /* One byte more, with metadata, in a commit of two: nothing written. */
    ev[0].payload = payload_of_size(ES_EVENT_MAX_BYTES - 1);
    ev[0].meta = obj("{}"); /* 2 bytes */
    assert_int_equal(es_log_append(log, NULL, "blob", "b-1", 1, ev, 2), ES_EINVAL);
    assert_contains(es_errmsg(log), "event 1 of 2 (Big) is larger than");
    assert_contains(es_errmsg(log), "ES_EVENT_MAX_BYTES");
    assert_int_equal(read_all(log, &s, "blob", "b-1", NULL), 1);

    json_decref(ev[0].payload);
    json_decref(ev[0].meta);
    json_decref(ev[1].payload);
    seen_clear(&s);
    es_log_close(log);
}

/* ---- read bounds --------------------------------------------------------- */

/* acct-1: 5 events at T0 + 1s .. T0 + 5s. */
static void five_events(es_log *log)
{
    es_event evs[5];
    memset(evs, 0, sizeof evs);
    for (int i = 0; i < 5; i++) {
        evs[i].type = "Deposited";
        evs[i].occurred_us = T0 + (i + 1) * SEC;
        evs[i].payload = json_pack("{s:i}", "amount", i + 1);
    }
    assert_int_equal(es_log_append(log, NULL, "account", "acct-1",
                                   ES_EXPECT_NO_STREAM, evs, 5),
                     0);
    for (int i = 0; i < 5; i++)
        json_decref(evs[i].payload);
}

static void assert_versions(const seen *s, int64_t from, int64_t to)
{
    assert_int_equal(s->n, (size_t)(to - from + 1));
    for (size_t i = 0; i < s->n; i++)
        assert_int_equal(s->ev[i]->version, from + (int64_t)i);
}

static void test_read_bounds(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_read_options o = ES_READ_OPTIONS_INIT;
    seen s = {0};

    five_events(log);
    read_all(log, &s, "account", "acct-1", &o);
    assert_versions(&s, 1, 5);

    o.from_version = 3;
    read_all(log, &s, "account", "acct-1", &o);
    assert_versions(&s, 3, 5);
    o.from_version = 6;
    assert_int_equal(read_all(log, &s, "account", "acct-1", &o), 0);

    o.from_version = 1;
    o.to = ES_RANGE_TO_VERSION(2);
    read_all(log, &s, "account", "acct-1", &o);
    assert_versions(&s, 1, 2);
    o.from_version = 2;
    o.to = ES_RANGE_TO_VERSION(4);
    read_all(log, &s, "account", "acct-1", &o);
    assert_versions(&s, 2, 4);
    o.to = ES_RANGE_TO_VERSION(99);
    read_all(log, &s, "account", "acct-1", &o);
    assert_versions(&s, 2, 5);

    /* As of a time between two events, exactly at one, before the first,
     * after the last. */
    o.from_version = 1;
    o.to = ES_RANGE_AS_OF(T0 + 3 * SEC + SEC / 2);
    read_all(log, &s, "account", "acct-1", &o);
    assert_versions(&s, 1, 3);
    o.to = ES_RANGE_AS_OF(T0 + 3 * SEC);
    read_all(log, &s, "account", "acct-1", &o);
    assert_versions(&s, 1, 3);
    o.to = ES_RANGE_AS_OF(T0 + SEC - 1);
    assert_int_equal(read_all(log, &s, "account", "acct-1", &o), 0);
    o.to = ES_RANGE_AS_OF(T0 + 3600 * SEC);
    read_all(log, &s, "account", "acct-1", &o);
    assert_versions(&s, 1, 5);
    o.from_version = 4;
    o.to = ES_RANGE_AS_OF(T0 + 4 * SEC);
    read_all(log, &s, "account", "acct-1", &o);
    assert_versions(&s, 4, 4);

    /* A stream that does not exist delivers nothing, successfully. */
    assert_int_equal(read_all(log, &s, "account", "nobody", NULL), 0);
    assert_int_equal(read_all(log, &s, "order", "acct-1", NULL), 0);

    /* A callback that stops the read. */
    seen_clear(&s);
    s.stop_after = 2;
    assert_int_equal(es_log_read_stream(log, "account", "acct-1", NULL, collect, &s),
                     ES_EUSER);
    assert_int_equal(s.n, 2);
    assert_contains(es_errmsg(log), "account/acct-1");

    seen_clear(&s);
    es_log_close(log);
}

static void test_as_of_is_a_prefix(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_read_options o = ES_READ_OPTIONS_INIT;
    es_event evs[3];
    seen s = {0};

    /* A clock that went backwards: as of T stops at the first later event,
     * in version order, and never picks events out of the middle. */
    memset(evs, 0, sizeof evs);
    int64_t times[3] = {T0 + SEC, T0 + 3 * SEC, T0 + 2 * SEC};
    for (int i = 0; i < 3; i++) {
        evs[i].type = "Deposited";
        evs[i].occurred_us = times[i];
        evs[i].payload = obj("{}");
    }
    assert_int_equal(es_log_append(log, NULL, "account", "acct-1",
                                   ES_EXPECT_NO_STREAM, evs, 3),
                     0);
    o.to = ES_RANGE_AS_OF(T0 + 2 * SEC + SEC / 2);
    read_all(log, &s, "account", "acct-1", &o);
    assert_versions(&s, 1, 1);
    o.to = ES_RANGE_AS_OF(T0 + 3 * SEC);
    read_all(log, &s, "account", "acct-1", &o);
    assert_versions(&s, 1, 3);

    for (int i = 0; i < 3; i++)
        json_decref(evs[i].payload);
    seen_clear(&s);
    es_log_close(log);
}

/* ---- partitions ---------------------------------------------------------- */

static void test_partition_assignment_and_head(void **state)
{
    es_log *log = es_test_open_fresh_log();
    int32_t count = 0;
    int64_t expect_head[64] = {0};
    es_append_result res;
    char sid[32];

    assert_int_equal(es_log_partition_count(log, &count, "account"), 0);
    assert_true(count >= 1 && count <= 64);
    /* A type with no events has the count too. */
    int32_t count2 = 0;
    assert_int_equal(es_log_partition_count(log, &count2, "never-written"), 0);
    assert_int_equal(count2, count);
    for (int32_t p = 0; p < count; p++)
        assert_int_equal(head_of(log, "account", p), 0);

    for (int i = 0; i < 40; i++) {
        size_t n = (size_t)(i % 3) + 1;
        snprintf(sid, sizeof sid, "acct-%d", i);
        int32_t p = es_partition_for(sid, strlen(sid), count);
        assert_int_equal(append_n(log, &res, "account", sid, ES_EXPECT_NO_STREAM,
                                  "Deposited", n), 0);
        assert_int_equal(res.first.partition, p);
        assert_int_equal(res.last.partition, p);
        /* Offsets are dense per partition, from 0. */
        assert_int_equal(res.first.offset, expect_head[p]);
        assert_int_equal(res.last.offset, expect_head[p] + (int64_t)n - 1);
        expect_head[p] += (int64_t)n;
    }
    for (int32_t p = 0; p < count; p++)
        assert_int_equal(head_of(log, "account", p), expect_head[p]);
    /* Heads are per aggregate type. */
    for (int32_t p = 0; p < count; p++)
        assert_int_equal(head_of(log, "order", p), 0);
    es_log_close(log);
}

static void test_read_partition(void **state)
{
    es_log *log = es_test_open_fresh_log();
    int32_t count = 0;
    char sids[3][32];
    int found = 0;
    seen s = {0};
    int64_t next = -1;

    assert_int_equal(es_log_partition_count(log, &count, "account"), 0);
    /* Three streams that share a partition, interleaved. */
    int32_t p = es_partition_for("acct-0", 6, count);
    for (int i = 0; found < 3; i++) {
        char sid[32];
        snprintf(sid, sizeof sid, "acct-%d", i);
        if (es_partition_for(sid, strlen(sid), count) == p)
            snprintf(sids[found++], sizeof sids[0], "%s", sid);
    }
    for (int round = 0; round < 2; round++)
        for (int k = 0; k < 3; k++)
            assert_int_equal(append_n(log, NULL, "account", sids[k],
                                      round == 0 ? ES_EXPECT_NO_STREAM : 1,
                                      round == 0 ? "Opened" : "Deposited", 1),
                             0);

    assert_int_equal(es_log_read_partition(log, &next, "account", p, 0, 0,
                                           collect, &s), 0);
    assert_int_equal(s.n, 6);
    assert_int_equal(next, 6);
    for (size_t i = 0; i < s.n; i++) {
        assert_int_equal(s.ev[i]->position.partition, p);
        assert_int_equal(s.ev[i]->position.offset, (int64_t)i);
        assert_string_equal(s.ev[i]->aggregate_type, "account");
        assert_string_equal(s.ev[i]->stream_id, sids[i % 3]);
        assert_int_equal(s.ev[i]->version, (int64_t)(i / 3) + 1);
        assert_true(json_is_object(s.ev[i]->payload));
    }

    /* In batches, resuming from next_offset. */
    seen_clear(&s);
    assert_int_equal(es_log_read_partition(log, &next, "account", p, 1, 2,
                                           collect, &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.ev[0]->position.offset, 1);
    assert_int_equal(s.ev[1]->position.offset, 2);
    assert_int_equal(next, 3);
    seen_clear(&s);
    assert_int_equal(es_log_read_partition(log, &next, "account", p, next, 100,
                                           collect, &s), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.ev[0]->position.offset, 3);
    assert_int_equal(next, 6);
    /* At the head: nothing, and next_offset stays. */
    seen_clear(&s);
    assert_int_equal(es_log_read_partition(log, &next, "account", p, 6, 0,
                                           collect, &s), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(next, 6);
    /* Another partition of the same type has none of these. */
    seen_clear(&s);
    assert_int_equal(es_log_read_partition(log, &next, "account",
                                           (p + 1) % count, 0, 0, collect, &s),
                     0);
    for (size_t i = 0; i < s.n; i++)
        for (int k = 0; k < 3; k++)
            assert_string_not_equal(s.ev[i]->stream_id, sids[k]);
    /* A partition the log does not have. */
    assert_int_equal(es_log_read_partition(log, &next, "account", count, 0, 0,
                                           collect, &s),
                     ES_EINVAL);
    assert_contains(es_errmsg(log), "partition");
    /* A callback that stops. */
    seen_clear(&s);
    s.stop_after = 1;
    assert_int_equal(es_log_read_partition(log, &next, "account", p, 0, 0,
                                           collect, &s),
                     ES_EUSER);
    assert_int_equal(s.n, 1);

    seen_clear(&s);
    es_log_close(log);
}

static int collect_name(const char *name, void *user_data)
{
    char *names = user_data;
    strcat(names, name);
    strcat(names, ";");
    return 0;
}

static int stop_name(const char *name, void *user_data)
{
    return 1;
}

static void test_types(void **state)
{
    es_log *log = es_test_open_fresh_log();
    char names[256] = "";

    assert_int_equal(es_log_types(log, collect_name, names), 0);
    assert_string_equal(names, "");
    assert_int_equal(append_n(log, NULL, "order", "o-1", ES_EXPECT_ANY, "Placed", 1), 0);
    assert_int_equal(append_n(log, NULL, "account", "a-1", ES_EXPECT_ANY, "Opened", 1), 0);
    assert_int_equal(append_n(log, NULL, "account", "a-2", ES_EXPECT_ANY, "Opened", 2), 0);
    assert_int_equal(es_log_types(log, collect_name, names), 0);
    /* Each type once; the order is not part of the contract. */
    assert_true(strcmp(names, "account;order;") == 0 ||
                strcmp(names, "order;account;") == 0);
    assert_int_equal(es_log_types(log, stop_name, NULL), ES_EUSER);
    es_log_close(log);
}

/* "id@version/partition;" for each stream listed. */
static int collect_stream(const es_stream_info *info, void *user_data)
{
    char *text = user_data;
    size_t used = strlen(text);
    snprintf(text + used, 512 - used, "%s@%lld/%d;", info->stream_id,
             (long long)info->version, (int)info->partition);
    return 0;
}

static int stop_stream(const es_stream_info *info, void *user_data)
{
    return 1;
}

static void test_streams(void **state)
{
    es_log *log = es_test_open_fresh_log();
    char text[512] = "", want[512];
    int32_t parts = 0;

    assert_int_equal(es_log_streams(log, "account", collect_stream, text), 0);
    assert_string_equal(text, "");
    assert_int_equal(append_n(log, NULL, "account", "a-2", ES_EXPECT_ANY, "Opened", 1), 0);
    assert_int_equal(append_n(log, NULL, "account", "b-1", ES_EXPECT_ANY, "Opened", 2), 0);
    assert_int_equal(append_n(log, NULL, "account", "a-10", ES_EXPECT_ANY, "Opened", 1), 0);
    assert_int_equal(append_n(log, NULL, "account", "a-2", ES_EXPECT_ANY, "Opened", 2), 0);
    assert_int_equal(append_n(log, NULL, "order", "o-1", ES_EXPECT_ANY, "Placed", 1), 0);
    assert_int_equal(es_log_partition_count(log, &parts, "account"), 0);
    /* Byte order of ids, the version of each, its partition. */
    snprintf(want, sizeof want, "a-10@1/%d;a-2@3/%d;b-1@2/%d;",
             (int)es_partition_for("a-10", 4, parts),
             (int)es_partition_for("a-2", 3, parts),
             (int)es_partition_for("b-1", 3, parts));
    assert_int_equal(es_log_streams(log, "account", collect_stream, text), 0);
    assert_string_equal(text, want);
    text[0] = '\0';
    assert_int_equal(es_log_streams(log, "order", collect_stream, text), 0);
    snprintf(want, sizeof want, "o-1@1/%d;", (int)es_partition_for("o-1", 3, parts));
    assert_string_equal(text, want);
    assert_int_equal(es_log_streams(log, "account", stop_stream, NULL), ES_EUSER);
    assert_contains(es_errmsg(log), "the callback stopped at a-10");
    assert_int_equal(es_log_streams(log, NULL, collect_stream, text), ES_EINVAL);
    assert_int_equal(es_log_streams(log, "account", NULL, NULL), ES_EINVAL);
    es_log_close(log);
}

/* ---- handles and files --------------------------------------------------- */

static void test_two_handles(void **state)
{
    const char *uri = es_test_fresh_log_uri();
    es_log *a = NULL, *b = NULL;
    seen s = {0};
    es_append_result res;

    assert_int_equal(es_log_open(&a, uri), 0);
    assert_int_equal(es_log_open(&b, uri), 0);
    assert_int_equal(append_n(a, NULL, "account", "acct-1", ES_EXPECT_NO_STREAM,
                              "Opened", 1), 0);
    /* b sees a's write... */
    assert_int_equal(read_all(b, &s, "account", "acct-1", NULL), 1);
    assert_string_equal(s.ev[0]->type, "Opened");
    assert_int_equal(append_n(b, &res, "account", "acct-1", 1, "Deposited", 1), 0);
    assert_int_equal(res.version, 2);
    assert_int_equal(res.first.offset, 1);
    /* ...and a's stale expected version conflicts. */
    assert_int_equal(append_n(a, NULL, "account", "acct-1", 1, "Deposited", 1),
                     ES_ECONFLICT);
    assert_string_equal(es_errmsg(a), "appending to account/acct-1: version "
                                      "conflict: expected 1, stream is at 2");
    assert_int_equal(append_n(a, NULL, "account", "acct-1", ES_EXPECT_NO_STREAM,
                              "Opened", 1), ES_ECONFLICT);
    assert_int_equal(read_all(a, &s, "account", "acct-1", NULL), 2);
    assert_int_equal(head_of(a, "account", res.first.partition), 2);

    seen_clear(&s);
    es_log_close(a);
    es_log_close(b);
}

static void test_reopen(void **state)
{
    const char *uri = es_test_fresh_log_uri();
    es_log *log = NULL;
    es_append_result res;
    seen s = {0};

    assert_int_equal(es_log_open(&log, uri), 0);
    assert_string_equal(es_log_uri(log), uri);
    assert_int_equal(append_n(log, NULL, "account", "acct-1", ES_EXPECT_NO_STREAM,
                              "Opened", 2), 0);
    es_log_close(log);

    log = NULL;
    assert_int_equal(es_log_open(&log, uri), 0);
    assert_int_equal(read_all(log, &s, "account", "acct-1", NULL), 2);
    assert_string_equal(s.ev[1]->type, "Opened");
    assert_int_equal(json_integer_value(json_object_get(s.ev[1]->payload, "n")), 2);
    assert_int_equal(append_n(log, &res, "account", "acct-1", 2, "Deposited", 1), 0);
    assert_int_equal(res.version, 3);
    assert_int_equal(res.first.offset, 2);
    seen_clear(&s);
    es_log_close(log);
}

static void test_partition_count_is_fixed(void **state)
{
    const char *base = es_test_fresh_log_uri();
    es_log *log = NULL;
    int32_t count = 0;

    /* 3 and 4: the Kafka mock broker creates topics with 4 partitions. */
    assert_int_equal(es_log_open(&log, with_param(base, "partitions=4")), 0);
    assert_int_equal(es_log_partition_count(log, &count, "account"), 0);
    assert_int_equal(count, 4);
    assert_int_equal(append_n(log, NULL, "account", "acct-1", ES_EXPECT_ANY,
                              "Opened", 1), 0);
    es_log_close(log);

    /* A different count later is refused, naming both numbers. */
    log = NULL;
    assert_int_equal(es_log_open(&log, with_param(base, "partitions=3")), ES_EINVAL);
    assert_non_null(log);
    assert_contains(es_errmsg(log), "4");
    assert_contains(es_errmsg(log), "3");
    assert_contains(es_errmsg(log), "partitions");
    es_log_close(log);

    /* Without the parameter, the stored count. */
    log = NULL;
    assert_int_equal(es_log_open(&log, base), 0);
    assert_int_equal(es_log_partition_count(log, &count, "account"), 0);
    assert_int_equal(count, 4);
    es_log_close(log);
}

static void test_bad_uris(void **state)
{
    es_log *log = NULL;

    assert_int_equal(es_log_open(&log, "mysql://localhost/x"), ES_EINVAL);
    assert_non_null(log);
    assert_string_equal(es_errmsg(log),
                        "unknown log URI scheme in 'mysql://localhost/x': "
                        "expected sqlite:PATH or kafka://HOST:PORT");
    /* A handle whose open failed refuses everything else. */
    assert_int_equal(append_n(log, NULL, "account", "a", ES_EXPECT_ANY, "X", 1),
                     ES_EINVAL);
    es_log_close(log);

    log = NULL;
    assert_int_equal(es_log_open(&log, "sqlite:"), ES_EINVAL);
    assert_contains(es_errmsg(log), "no file name");
    es_log_close(log);

    const char *path = es_test_path("bad");
    char uri[1024];
    snprintf(uri, sizeof uri, "sqlite:%s.db?partitions=0", path);
    log = NULL;
    assert_int_equal(es_log_open(&log, uri), ES_EINVAL);
    assert_contains(es_errmsg(log), "partitions");
    assert_contains(es_errmsg(log), "'0'");
    es_log_close(log);
    snprintf(uri, sizeof uri, "sqlite:%s.db?partitons=4", path);
    log = NULL;
    assert_int_equal(es_log_open(&log, uri), ES_EINVAL);
    assert_contains(es_errmsg(log), "unknown parameter 'partitons'");
    es_log_close(log);

    snprintf(uri, sizeof uri, "sqlite:%s/no/such/dir/x.db", es_test_tmpdir());
    log = NULL;
    assert_int_equal(es_log_open(&log, uri), ES_EIO);
    assert_contains(es_errmsg(log), "/no/such/dir/x.db");
    assert_contains(es_errmsg(log), "/no/such/dir does not exist");
    es_log_close(log);

    assert_int_equal(es_log_open(NULL, "sqlite::memory:"), ES_EINVAL);
}

static void test_default_uri_from_environment(void **state)
{
    const char *uri = es_test_fresh_log_uri();
    es_log *log = NULL;

    setenv("ESFOLD_LOG", uri, 1);
    assert_int_equal(es_log_open(&log, NULL), 0);
    unsetenv("ESFOLD_LOG");
    assert_string_equal(es_log_uri(log), uri);
    es_log_close(log);
}

static void test_memory_log_is_private(void **state)
{
    es_log *a = NULL, *b = NULL;
    seen s = {0};
    int32_t count = 0;

    assert_int_equal(es_log_open(&a, "sqlite::memory:"), 0);
    assert_int_equal(es_log_open(&b, "sqlite::memory:"), 0);
    assert_int_equal(append_n(a, NULL, "account", "acct-1", ES_EXPECT_NO_STREAM,
                              "Opened", 3), 0);
    assert_int_equal(read_all(a, &s, "account", "acct-1", NULL), 3);
    assert_int_equal(read_all(b, &s, "account", "acct-1", NULL), 0);
    assert_int_equal(es_log_partition_count(b, &count, "account"), 0);
    assert_int_equal(count, 4);
    seen_clear(&s);
    es_log_close(a);
    es_log_close(b);
}

/* A read callback that reads the same stream again and appends to another
 * through the same handle, as a process manager might. */
static int nested_read(const es_event *ev, void *user_data)
{
    es_log *log = user_data;
    seen inner = {0};
    int rc = es_log_read_stream(log, ev->aggregate_type, ev->stream_id, NULL,
                                collect, &inner);
    size_t n = inner.n;
    seen_clear(&inner);
    if (rc == 0)
        rc = append_n(log, NULL, "audit", ev->stream_id, ev->version - 1,
                      "Seen", 1);
    return rc != 0 || n != 3;
}

static void test_read_inside_a_read(void **state)
{
    es_log *log = es_test_open_fresh_log();
    assert_int_equal(append_n(log, NULL, "account", "acct-1", ES_EXPECT_NO_STREAM,
                              "Opened", 3), 0);
    assert_int_equal(es_log_read_stream(log, "account", "acct-1", NULL,
                                        nested_read, log),
                     0);
    seen s = {0};
    assert_int_equal(read_all(log, &s, "audit", "acct-1", NULL), 3);
    seen_clear(&s);
    es_log_close(log);
}

/* ---- two processes writing one stream ------------------------------------ */

static int note_version(const es_event *ev, void *user_data)
{
    *(int64_t *)user_data = ev->version;
    return 0;
}

/*
 * A writer process: n appends of one event to acct-1, each with the exact
 * version it last saw, re-reading and retrying on a conflict (what
 * es_repo_execute does). Exit status 0 when all n went in.
 */
static int writer(const char *uri, const char *who, int n, int start_fd)
{
    es_log *log = NULL;
    es_read_options o = ES_READ_OPTIONS_INIT;
    int64_t known = 0;
    int done = 0, attempts = 0, rc;
    char c;

    if (es_log_open(&log, uri) != 0)
        return 2;
    /* Start together: the parent closes the pipe when all are ready. */
    if (read(start_fd, &c, 1) != 0)
        return 3;
    while (done < n && attempts++ < 100 * n) {
        /* "after": the version this decision was based on. */
        json_t *p = json_pack("{s:s,s:i,s:I}", "writer", who, "k", done,
                              "after", (json_int_t)known);
        es_event ev = {.type = "Deposited", .payload = p};
        rc = es_log_append(log, NULL, "account", "acct-1",
                           known ? known : ES_EXPECT_NO_STREAM, &ev, 1);
        json_decref(p);
        if (rc == 0) {
            done++;
            known++;
        } else if (rc == ES_ECONFLICT) {
            o.from_version = known + 1;
            if (es_log_read_stream(log, "account", "acct-1", &o, note_version,
                                   &known) != 0)
                break;
        } else {
            fprintf(stderr, "writer %s: %s\n", who, es_errmsg(log));
            break;
        }
    }
    es_log_close(log);
    return done == n ? 0 : 1;
}

static void test_concurrent_writers(void **state)
{
    const char *uri = es_test_fresh_log_uri();
    const char *who[3] = {"a", "b", "c"};
    pid_t pids[3];
    int status, per_writer[3] = {0, 0, 0}, start[2];
    es_log *log = NULL;
    seen s = {0};
    const int n = 80;

    /* Create the log first so that the writers race on appends only, and
     * close it: a child must not inherit an open SQLite connection. */
    assert_int_equal(es_log_open(&log, uri), 0);
    es_log_close(log);
    log = NULL;
    assert_int_equal(pipe(start), 0);
    for (int i = 0; i < 3; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(start[1]);
            _exit(writer(uri, who[i], n, start[0]));
        }
    }
    close(start[0]);
    close(start[1]);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(es_log_open(&log, uri), 0);
    /* Every write went in exactly once, versions dense, and each event was
     * decided on the state right before it: no append slipped past a
     * stale expected version. */
    assert_int_equal(read_all(log, &s, "account", "acct-1", NULL), 3 * (size_t)n);
    for (size_t i = 0; i < s.n; i++) {
        const char *w = json_string_value(json_object_get(s.ev[i]->payload, "writer"));
        int k = (int)json_integer_value(json_object_get(s.ev[i]->payload, "k"));
        assert_int_equal(s.ev[i]->version, (int64_t)i + 1);
        /* Dense on SQLite; on Kafka the records the acceptance rule
         * rejected (the losers of races) keep their offsets. */
        assert_true(i == 0 || s.ev[i]->position.offset > s.ev[i - 1]->position.offset);
        assert_int_equal(json_integer_value(json_object_get(s.ev[i]->payload,
                                                            "after")),
                         (int64_t)i);
        assert_non_null(w);
        /* Each writer's events arrive in its own order. */
        assert_true(w[0] >= 'a' && w[0] <= 'c');
        assert_int_equal(k, per_writer[w[0] - 'a']++);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(per_writer[i], n);
    seen_clear(&s);
    es_log_close(log);
}

/* ---- SQLite files: damage, foreign files, schema versions ---------------- */

#define SQLITE_ONLY(uri) \
    do { \
        if (!is_sqlite(uri)) \
            skip(); \
    } while (0)

static void test_corrupt_payload_is_reported(void **state)
{
    const char *uri = es_test_fresh_log_uri();
    es_log *log = NULL;
    seen s = {0};
    SQLITE_ONLY(uri);

    assert_int_equal(es_log_open(&log, uri), 0);
    assert_int_equal(append_n(log, NULL, "account", "acct-7", ES_EXPECT_NO_STREAM,
                              "Deposited", 3), 0);
    raw_sql(sqlite_path(uri), "UPDATE es_events SET payload = 'not json' "
                              "WHERE stream_id = 'acct-7' AND version = 2");
    seen_clear(&s);
    assert_int_equal(es_log_read_stream(log, "account", "acct-7", NULL, collect, &s),
                     ES_ECORRUPT);
    assert_int_equal(s.n, 1); /* never skipped: the read stops there */
    assert_contains(es_errmsg(log), "account/acct-7");
    assert_contains(es_errmsg(log), "version 2");
    assert_contains(es_errmsg(log), "Deposited");
    assert_contains(es_errmsg(log), "not valid JSON");
    assert_contains(es_errmsg(log), "'[' or '{' expected"); /* jansson's words */

    /* Valid JSON that is not an object is corrupt too; so is a bad meta. */
    raw_sql(sqlite_path(uri), "UPDATE es_events SET payload = '[1]' "
                              "WHERE stream_id = 'acct-7' AND version = 2");
    seen_clear(&s);
    assert_int_equal(es_log_read_stream(log, "account", "acct-7", NULL, collect, &s),
                     ES_ECORRUPT);
    assert_contains(es_errmsg(log), "not a JSON object");
    raw_sql(sqlite_path(uri), "UPDATE es_events SET payload = '{}', meta = '{' "
                              "WHERE stream_id = 'acct-7' AND version = 2");
    seen_clear(&s);
    assert_int_equal(es_log_read_stream(log, "account", "acct-7", NULL, collect, &s),
                     ES_ECORRUPT);
    assert_contains(es_errmsg(log), "meta");
    /* The partition reader reports it the same way. */
    seen_clear(&s);
    assert_int_equal(es_log_read_partition(log, NULL, "account",
                                           partition_of(log, "account", "acct-7"),
                                           0, 0, collect, &s),
                     ES_ECORRUPT);
    assert_contains(es_errmsg(log), "version 2");

    /* A stream that lost its beginning is truncated, not folded. */
    raw_sql(sqlite_path(uri), "DELETE FROM es_events WHERE stream_id = 'acct-7' "
                              "AND version = 1");
    seen_clear(&s);
    assert_int_equal(es_log_read_stream(log, "account", "acct-7", NULL, collect, &s),
                     ES_ETRUNCATED);
    assert_int_equal(s.n, 0);
    seen_clear(&s);
    es_log_close(log);
}

static void test_newer_schema_is_refused(void **state)
{
    const char *uri = es_test_fresh_log_uri();
    es_log *log = NULL;
    SQLITE_ONLY(uri);

    assert_int_equal(es_log_open(&log, uri), 0);
    es_log_close(log);
    raw_sql(sqlite_path(uri), "UPDATE es_meta SET value = '99' "
                              "WHERE key = 'schema.log'");
    log = NULL;
    assert_int_equal(es_log_open(&log, uri), ES_ECORRUPT);
    assert_non_null(log);
    assert_contains(es_errmsg(log), "version 99");
    assert_contains(es_errmsg(log), "newer");
    es_log_close(log);

    raw_sql(sqlite_path(uri), "UPDATE es_meta SET value = 'x1' "
                              "WHERE key = 'schema.log'");
    log = NULL;
    assert_int_equal(es_log_open(&log, uri), ES_ECORRUPT);
    assert_contains(es_errmsg(log), "'x1' is not an integer");
    es_log_close(log);
}

static void test_foreign_files_are_refused(void **state)
{
    const char *path = es_test_path("foreign");
    char uri[1024];
    es_log *log = NULL;
    FILE *f;

    /* Not a SQLite database at all. */
    f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 200; i++)
        fputs("this is a text file, not a database\n", f);
    fclose(f);
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    assert_int_equal(es_log_open(&log, uri), ES_ECORRUPT);
    assert_contains(es_errmsg(log), "not a SQLite database");
    assert_contains(es_errmsg(log), path);
    es_log_close(log);

    /* Someone else's SQLite database: refused, and left as it was. */
    path = es_test_path("other-app");
    raw_sql(path, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)");
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    log = NULL;
    assert_int_equal(es_log_open(&log, uri), ES_ECORRUPT);
    assert_contains(es_errmsg(log), "not an esfold database");
    es_log_close(log);
    {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT count(*) FROM sqlite_master",
                                            -1, &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 1);
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_field),
        cmocka_unit_test(test_expected_versions),
        cmocka_unit_test(test_commit_is_atomic),
        cmocka_unit_test(test_idempotent_retry),
        cmocka_unit_test(test_event_size_limit),
        cmocka_unit_test(test_as_of_stop_releases_metadata),
        cmocka_unit_test(test_read_bounds),
        cmocka_unit_test(test_as_of_is_a_prefix),
        cmocka_unit_test(test_partition_assignment_and_head),
        cmocka_unit_test(test_read_partition),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_streams),
        cmocka_unit_test(test_two_handles),
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_partition_count_is_fixed),
        cmocka_unit_test(test_bad_uris),
        cmocka_unit_test(test_default_uri_from_environment),
        cmocka_unit_test(test_memory_log_is_private),
        cmocka_unit_test(test_read_inside_a_read),
        cmocka_unit_test(test_concurrent_writers),
        cmocka_unit_test(test_corrupt_payload_is_reported),
        cmocka_unit_test(test_newer_schema_is_refused),
        cmocka_unit_test(test_foreign_files_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

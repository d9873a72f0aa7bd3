/*
 * tests/test_kafka.c - the Kafka log against a real Kafka protocol peer:
 * librdkafka's mock cluster in its own process (`esfold broker`, started by
 * tests/kafka_harness.c), or in this process where a test injects faults.
 *
 * What users rely on: the wire format that kcat sees and writes, exactly
 * one winner per race, zombies and aborted transactions rejected by every
 * reader, a truncated log reported as such, and faults that neither lose
 * nor duplicate accepted events.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "harness.h"
#include "kafka_harness.h"
#include "samples/bank/account.h"

/* ---- helpers --------------------------------------------------------------- */

static es_log *open_log(const char *uri)
{
    es_log *log = NULL;
    int rc = es_log_open(&log, uri);
    if (rc != 0)
        fprintf(stderr, "opening %s: %s\n", uri, es_errmsg(log));
    assert_int_equal(rc, 0);
    return log;
}

/* The topic prefix of a URI made by es_test_kafka_uri. */
static const char *topic_of(const char *uri, const char *type)
{
    static char buf[256];
    const char *p = strstr(uri, "prefix=") + 7;
    size_t n = strcspn(p, "&");
    snprintf(buf, sizeof buf, "%.*s%s", (int)n, p, type);
    return buf;
}

static int32_t partition_of(es_log *log, const char *type, const char *sid)
{
    int32_t count = 0;
    assert_int_equal(es_log_partition_count(log, &count, type), 0);
    return es_partition_for(sid, strlen(sid), count);
}

static int append1(es_log *log, es_append_result *res, const char *sid,
                   int64_t expected, const char *type, const char *payload)
{
    json_t *p = json_loads(payload, 0, NULL);
    es_event ev = {.type = type, .payload = p};
    int rc = es_log_append(log, res, "account", sid, expected, &ev, 1);
    json_decref(p);
    return rc;
}

typedef struct seen {
    es_event *ev[256];
    size_t n;
} seen;

static int collect(const es_event *ev, void *user_data)
{
    seen *s = user_data;
    assert_true(s->n < 256);
    assert_int_equal(es_event_copy(&s->ev[s->n++], ev), 0);
    return 0;
}

static void seen_clear(seen *s)
{
    for (size_t i = 0; i < s->n; i++)
        es_event_free(s->ev[i]);
    s->n = 0;
}

static int read_all(es_log *log, seen *s, const char *sid)
{
    seen_clear(s);
    return es_log_read_stream(log, "account", sid, NULL, collect, s);
}

/* Verdicts of a partition scan, as "verdict:offset " in a string. */
typedef struct verdicts {
    char text[4096];
    size_t len;
    char why[1024];
} verdicts;

static int note_verdict(const es_event *ev, es_verdict v, const char *why, void *ud)
{
    verdicts *vs = ud;
    vs->len += (size_t)snprintf(vs->text + vs->len, sizeof vs->text - vs->len,
                                "%s:%lld ", es_verdict_name(v),
                                (long long)ev->position.offset);
    if (v != ES_VERDICT_ACCEPTED && vs->why[0] == '\0')
        snprintf(vs->why, sizeof vs->why, "%s", why);
    return 0;
}

static const char *scan(es_log *log, int32_t partition, verdicts *vs)
{
    memset(vs, 0, sizeof *vs);
    assert_int_equal(es_log_scan_partition(log, NULL, "account", partition, 0, 0,
                                           note_verdict, vs), 0);
    return vs->text;
}

/* Runs a shell command, returns its stdout (static buffer). */
static const char *run(const char *cmd)
{
    static char out[16384];
    FILE *f = popen(cmd, "r");
    size_t n;
    assert_non_null(f);
    n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    assert_int_equal(pclose(f), 0);
    return out;
}

/* ---- the wire format --------------------------------------------------------- */

static void test_kcat_reads_what_esfold_writes(void **state)
{
    const char *uri = es_test_kafka_uri(NULL);
    es_log *log = open_log(uri);
    es_append_result res;
    es_event evs[2];
    char cmd[1024];
    const char *out;
    int32_t p = partition_of(log, "account", "acct-1");

    memset(evs, 0, sizeof evs);
    evs[0].type = "AccountOpened";
    evs[0].occurred_us = 1772359200000001; /* 2026-03-01T10:00:00.000001Z */
    evs[0].correlation_id = "corr-1";
    evs[0].payload = json_pack("{s:s,s:s}", "owner", "Ada", "currency", "EUR");
    evs[0].meta = json_pack("{s:s}", "user", "u1");
    evs[1].type = "Deposited";
    evs[1].occurred_us = 1772359200000002;
    evs[1].payload = json_pack("{s:i}", "amount", 2500);
    assert_int_equal(es_log_append(log, &res, "account", "acct-1",
                                   ES_EXPECT_NO_STREAM, evs, 2), 0);
    assert_int_equal(res.first.partition, p);
    assert_int_equal(res.first.offset, 0);
    assert_int_equal(res.last.offset, 1);

    snprintf(cmd, sizeof cmd,
             "kcat -b %s -C -t %s -p %d -o beginning -e -q "
             "-f 'p=%%p o=%%o k=%%k ts=%%T h=%%h v=%%s\\n'",
             es_test_kafka_brokers(), topic_of(uri, "account"), (int)p);
    out = run(cmd);
    assert_contains(out, "o=0 k=acct-1 ts=1772359200000 h=es-type=AccountOpened,"
                         "es-version=1,es-schema=1,es-id=");
    assert_contains(out, ",es-correlation=corr-1,es-meta={\"user\":\"u1\"},"
                         "es-time-us=1772359200000001,es-commit=");
    assert_contains(out, ",es-commit-size=2,es-commit-index=0,es-partitions=4 "
                         "v={\"owner\":\"Ada\",\"currency\":\"EUR\"}");
    assert_contains(out, ",es-commit-size=2,es-commit-index=1,es-partitions=4 "
                         "v={\"amount\":2500}");
    assert_contains(out, "o=1 k=acct-1 ts=1772359200000 h=es-type=Deposited,"
                         "es-version=2,");
    assert_contains(out, "v={\"amount\":2500}");
    json_decref(evs[0].payload);
    json_decref(evs[0].meta);
    json_decref(evs[1].payload);
    es_log_close(log);
}

static void test_esfold_folds_what_kcat_writes(void **state)
{
    const char *uri = es_test_kafka_uri(NULL);
    es_log *log = open_log(uri);
    es_repo *repo = NULL;
    es_aggregate *agg = NULL;
    const bank_account *acct;
    char cmd[2048];
    seen s = {0};
    verdicts vs;
    int32_t p;

    /* The topic exists with esfold's partitioning once esfold wrote to it. */
    assert_int_equal(append1(log, NULL, "acct-0", 0, "AccountOpened",
                             "{\"owner\": \"Bo\"}"), 0);
    /* kcat places the key with the Java client's partitioner (murmur2), as
     * esfold does; the third record has no esfold headers at all. */
    snprintf(cmd, sizeof cmd,
             "printf '%%s\\n' '{\"owner\":\"Kim\",\"currency\":\"SEK\"}' | "
             "kcat -b %1$s -P -t %2$s -X partitioner=murmur2_random -k acct-9 "
             "-H es-type=AccountOpened -H es-version=1 -H es-id=kcat-1 && "
             "printf '%%s\\n' '{\"amount\":700}' | "
             "kcat -b %1$s -P -t %2$s -X partitioner=murmur2_random -k acct-9 "
             "-H es-type=Deposited -H es-version=2 && "
             "printf '%%s\\n' '{\"amount\":1}' | "
             "kcat -b %1$s -P -t %2$s -X partitioner=murmur2_random -k acct-9",
             es_test_kafka_brokers(), topic_of(uri, "account"));
    run(cmd);

    assert_int_equal(read_all(log, &s, "acct-9"), 0);
    assert_int_equal(s.n, 2);
    p = partition_of(log, "account", "acct-9");
    assert_int_equal(s.ev[0]->position.partition, p);
    assert_string_equal(s.ev[0]->id, "kcat-1");
    assert_string_equal(s.ev[1]->type, "Deposited");
    assert_int_equal(s.ev[1]->version, 2);
    assert_int_equal(s.ev[1]->commit_size, 1);
    /* Without es-time-us the Kafka timestamp (ms) is the time. */
    assert_true(s.ev[1]->occurred_us > 0 && s.ev[1]->occurred_us % 1000 == 0);

    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    assert_int_equal(es_repo_load(repo, &agg, &bank_account_type, "acct-9",
                                  ES_RANGE_ALL), 0);
    acct = es_aggregate_state(agg);
    assert_string_equal(acct->owner, "Kim");
    assert_int_equal(acct->balance, 700);
    assert_int_equal(es_aggregate_version(agg), 2);

    /* The header-less record is listed, not folded. */
    scan(log, p, &vs);
    assert_contains(vs.text, "malformed:");
    assert_contains(vs.why, "no es-type header");
    /* esfold goes on from there. */
    assert_int_equal(append1(log, NULL, "acct-9", 2, "Deposited", "{\"amount\": 5}"), 0);
    es_aggregate_free(agg);
    es_repo_free(repo);
    seen_clear(&s);
    es_log_close(log);
}

/* ---- races, zombies, aborted transactions ------------------------------------ */

#define ROUNDS 12

/* A writer process: appends "Deposited by who" to every stream r<i> from
 * version 1, and reports a char per round on fd: 'w' won, 'c' conflict. */
static int race_writer(const char *uri, const char *who, int start_fd, int fd)
{
    es_log *log = NULL;
    char c, sid[32], payload[64];
    if (es_log_open(&log, uri) != 0)
        return 2;
    if (read(start_fd, &c, 1) != 0)
        return 3;
    for (int i = 0; i < ROUNDS; i++) {
        int rc;
        snprintf(sid, sizeof sid, "r%d", i);
        snprintf(payload, sizeof payload, "{\"amount\": 1, \"by\": \"%s\"}", who);
        rc = append1(log, NULL, sid, 1, "Deposited", payload);
        if (rc == ES_ECONFLICT &&
            strstr(es_errmsg(log), "version conflict: expected 1, stream is at 2") == NULL)
            return 4;
        c = rc == 0 ? 'w' : rc == ES_ECONFLICT ? 'c' : 'e';
        if (c == 'e')
            fprintf(stderr, "writer %s: %s\n", who, es_errmsg(log));
        if (write(fd, &c, 1) != 1)
            return 5;
    }
    es_log_close(log);
    return 0;
}

static void test_race_has_one_winner(void **state)
{
    const char *uri = es_test_kafka_uri(NULL);
    es_log *log = open_log(uri);
    int start[2], res[2][2], status;
    pid_t pids[2];
    char got[2][ROUNDS + 1];
    seen s = {0};
    char sid[32];

    for (int i = 0; i < ROUNDS; i++) {
        snprintf(sid, sizeof sid, "r%d", i);
        assert_int_equal(append1(log, NULL, sid, 0, "AccountOpened",
                                 "{\"owner\": \"Race\"}"), 0);
    }
    assert_int_equal(pipe(start), 0);
    for (int w = 0; w < 2; w++) {
        assert_int_equal(pipe(res[w]), 0);
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0) {
            close(start[1]);
            close(res[w][0]);
            _exit(race_writer(uri, w ? "b" : "a", start[0], res[w][1]));
        }
        close(res[w][1]);
    }
    close(start[0]);
    close(start[1]); /* go */
    for (int w = 0; w < 2; w++) {
        size_t n = 0;
        ssize_t r;
        while (n < ROUNDS && (r = read(res[w][0], got[w] + n, ROUNDS - n)) > 0)
            n += (size_t)r;
        got[w][n] = '\0';
        close(res[w][0]);
        assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(n, ROUNDS);
    }
    /* Exactly one winner per stream, and a third reader agrees with it. */
    es_log_close(log);
    log = open_log(uri);
    for (int i = 0; i < ROUNDS; i++) {
        const char *by;
        assert_true((got[0][i] == 'w') != (got[1][i] == 'w'));
        assert_true(got[0][i] == 'c' || got[1][i] == 'c');
        snprintf(sid, sizeof sid, "r%d", i);
        assert_int_equal(read_all(log, &s, sid), 0);
        assert_int_equal(s.n, 2);
        by = json_string_value(json_object_get(s.ev[1]->payload, "by"));
        assert_non_null(by);
        assert_string_equal(by, got[0][i] == 'w' ? "a" : "b");
    }
    seen_clear(&s);
    es_log_close(log);
}

static void test_zombie_is_rejected_everywhere(void **state)
{
    const char *uri = es_test_kafka_uri(NULL);
    es_log *log = open_log(uri), *other;
    rd_kafka_t *rk;
    seen s = {0};
    verdicts vs;
    int32_t p;

    assert_int_equal(append1(log, NULL, "z", 0, "AccountOpened", "{\"owner\":\"Z\"}"), 0);
    assert_int_equal(append1(log, NULL, "z", 1, "Deposited", "{\"amount\":10}"), 0);
    assert_int_equal(append1(log, NULL, "z", 2, "Deposited", "{\"amount\":20}"), 0);
    p = partition_of(log, "account", "z");
    /* A writer that decided on version 1 long ago writes version 2 now. */
    rk = es_test_kafka_producer(NULL);
    es_test_kafka_send(rk, topic_of(uri, "account"), p, "z", "{\"amount\":999}", 14,
             "es-type", "Deposited", "es-version", "2", "es-id", "zombie-1",
             "es-commit", "zombie-c", "es-commit-size", "1", (char *)NULL);
    assert_int_equal(rd_kafka_flush(rk, 10000), 0);
    rd_kafka_destroy(rk);

    /* Every reader: this handle, a new one, the partition scan. */
    other = open_log(uri);
    assert_int_equal(read_all(log, &s, "z"), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(read_all(other, &s, "z"), 0);
    assert_int_equal(s.n, 3);
    for (size_t i = 0; i < s.n; i++)
        assert_string_not_equal(s.ev[i]->id, "zombie-1");
    assert_string_equal(scan(other, p, &vs), "accepted:0 accepted:1 accepted:2 stale:3 ");
    assert_contains(vs.why, "stream z is at version 3, the event has version 2");
    /* Writers go on from the accepted version. */
    assert_int_equal(append1(other, NULL, "z", 2, "Deposited", "{\"amount\":1}"),
                     ES_ECONFLICT);
    assert_string_equal(es_errmsg(other), "appending to account/z: version "
                                          "conflict: expected 2, stream is at 3");
    assert_int_equal(append1(other, NULL, "z", 3, "Deposited", "{\"amount\":1}"), 0);
    assert_int_equal(read_all(log, &s, "z"), 0);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.ev[3]->version, 4);
    seen_clear(&s);
    es_log_close(other);
    es_log_close(log);
}

static void test_aborted_transaction_is_rejected(void **state)
{
    const char *uri = es_test_kafka_uri(NULL);
    es_log *log = open_log(uri);
    rd_kafka_t *rk;
    seen s = {0};
    verdicts vs;
    int32_t p;
    const char *topic;

    assert_int_equal(append1(log, NULL, "t", 0, "AccountOpened", "{\"owner\":\"T\"}"), 0);
    p = partition_of(log, "account", "t");
    topic = topic_of(uri, "account");
    /* A commit of 3 events torn by an abort after 2: the mock broker keeps
     * aborted records visible to every reader. */
    rk = es_test_kafka_producer("test-aborter");
    assert_null(rd_kafka_begin_transaction(rk));
    es_test_kafka_send(rk, topic, p, "t", "{\"amount\":1}", 12, "es-type", "Deposited",
             "es-version", "2", "es-id", "ab-1", "es-commit", "ab",
             "es-commit-size", "3", (char *)NULL);
    es_test_kafka_send(rk, topic, p, "t", "{\"amount\":2}", 12, "es-type", "Deposited",
             "es-version", "3", "es-id", "ab-2", "es-commit", "ab",
             "es-commit-size", "3", (char *)NULL);
    assert_int_equal(rd_kafka_flush(rk, 10000), 0);
    assert_null(rd_kafka_abort_transaction(rk, 10000));
    rd_kafka_destroy(rk);

    assert_int_equal(read_all(log, &s, "t"), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(scan(log, p, &vs), "accepted:0 incomplete:1 incomplete:2 ");
    assert_contains(vs.why, "has 2 of its 3 events at the end of the log");
    /* The next commit of the stream settles it: interleaved, for good. */
    assert_int_equal(append1(log, NULL, "t", 1, "Deposited", "{\"amount\":5}"), 0);
    assert_string_equal(scan(log, p, &vs),
                        "accepted:0 interleaved:1 interleaved:2 accepted:3 ");
    assert_int_equal(read_all(log, &s, "t"), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(json_integer_value(json_object_get(s.ev[1]->payload, "amount")), 5);
    seen_clear(&s);
    es_log_close(log);
}

/* ---- truncation -------------------------------------------------------------- */

static int count_cb(const es_event *ev, void *user_data)
{
    (void)ev;
    ++*(int *)user_data;
    return 0;
}

static void test_truncated_partition_is_reported(void **state)
{
    const char *uri = es_test_kafka_uri(NULL);
    es_log *log = open_log(uri), *fresh;
    rd_kafka_t *rk;
    char *big;
    const size_t size = 200 * 1024;
    int32_t p;
    int n = 0;
    int64_t next;

    if (!es_test_kafka_is_mock())
        skip(); /* a real cluster keeps its data */
    assert_int_equal(append1(log, NULL, "old", 0, "AccountOpened", "{\"owner\":\"O\"}"), 0);
    assert_int_equal(append1(log, NULL, "old", 1, "Deposited", "{\"amount\":1}"), 0);
    p = partition_of(log, "account", "old");
    /* The mock keeps about 5 MiB per partition: 6 MiB more drop the start. */
    big = malloc(size);
    assert_non_null(big);
    memset(big, 'x', size);
    rk = es_test_kafka_producer(NULL);
    for (int i = 0; i < 30; i++)
        es_test_kafka_send(rk, topic_of(uri, "account"), p, "filler", big, size, (char *)NULL);
    assert_int_equal(rd_kafka_flush(rk, 20000), 0);
    rd_kafka_destroy(rk);
    free(big);

    fresh = open_log(uri);
    assert_int_equal(es_log_read_stream(fresh, "account", "old", NULL, count_cb, &n),
                     ES_ETRUNCATED);
    assert_contains(es_errmsg(fresh), topic_of(uri, "account"));
    assert_contains(es_errmsg(fresh), "begins at offset");
    assert_contains(es_errmsg(fresh), "the log lost its beginning");
    assert_int_equal(n, 0);
    assert_int_equal(append1(fresh, NULL, "old", 2, "Deposited", "{\"amount\":1}"),
                     ES_ETRUNCATED);
    assert_int_equal(es_log_read_partition(fresh, &next, "account", p, 0, 0,
                                           count_cb, &n), ES_ETRUNCATED);
    es_log_close(fresh);
    es_log_close(log);
}

/* ---- faults (the mock in this process, for its error injection) --------------- */

/* Kafka protocol ApiKeys (librdkafka keeps their names internal). */
enum { API_PRODUCE = 0, API_END_TXN = 26 };


static void test_faults_lose_and_duplicate_nothing(void **state)
{
    char err[256], uri[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    es_log *log, *reader;
    es_append_result res;
    seen s = {0};
    json_t *pay = json_pack("{s:i}", "amount", 3);
    es_event ev = {.type = "Deposited", .id = "0190f3a0-0000-7000-8000-0000000fa017",
                   .payload = pay};
    int rc;

    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(rk);
    mc = rd_kafka_mock_cluster_new(rk, 1);
    assert_non_null(mc);
    snprintf(uri, sizeof uri, "kafka://%s?prefix=f.&timeout_ms=1500&kafka.log_level=0",
             rd_kafka_mock_cluster_bootstraps(mc));
    log = open_log(uri);
    assert_int_equal(append1(log, NULL, "f", 0, "AccountOpened", "{\"owner\":\"F\"}"), 0);

    /* Retriable produce errors: the idempotent producer retries, once in
     * the log. */
    rd_kafka_mock_push_request_errors(mc, API_PRODUCE, 3,
                                      RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
    assert_int_equal(append1(log, &res, "f", 1, "Deposited", "{\"amount\":1}"), 0);
    assert_int_equal(res.version, 2);

    /* The broker goes away: the append fails within the URI's timeout
     * with a message, and readers do too. */
    rd_kafka_mock_broker_set_down(mc, 1);
    rc = es_log_append(log, &res, "account", "f", 2, &ev, 1);
    assert_int_equal(rc, ES_EIO);
    assert_contains(es_errmsg(log), "kafka");
    rd_kafka_mock_broker_set_up(mc, 1);

    /* Back up: retrying the same event id is safe, whatever became of
     * the first try. */
    rc = es_log_append(log, &res, "account", "f", 2, &ev, 1);
    if (rc != 0)
        fprintf(stderr, "retry: %s\n", es_errmsg(log));
    assert_int_equal(rc, 0);
    assert_int_equal(res.version, 3);

    reader = open_log(uri);
    assert_int_equal(read_all(reader, &s, "f"), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.ev[2]->id, ev.id);
    for (size_t i = 0; i < s.n; i++)
        assert_int_equal(s.ev[i]->version, (int64_t)i + 1);

    seen_clear(&s);
    json_decref(pay);
    es_log_close(reader);
    es_log_close(log);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
}

/* A fresh in-process mock (for its error injection) and a log on it. */
static rd_kafka_mock_cluster_t *mock_new(rd_kafka_t **rk, char *uri, size_t size,
                                         const char *extra)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_mock_cluster_t *mc;
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(*rk);
    mc = rd_kafka_mock_cluster_new(*rk, 1);
    assert_non_null(mc);
    snprintf(uri, size, "kafka://%s?prefix=f.&kafka.log_level=0%s%s",
             rd_kafka_mock_cluster_bootstraps(mc), extra ? "&" : "",
             extra ? extra : "");
    return mc;
}

/* n Deposited events with ids <prefix>-1 .. <prefix>-n. */
static es_event *deposits(size_t n, const char *prefix, char ids[][48])
{
    es_event *evs = calloc(n, sizeof *evs);
    assert_non_null(evs);
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], 48, "%s-%zu", prefix, i + 1);
        evs[i].type = "Deposited";
        evs[i].id = ids[i];
        evs[i].payload = json_pack("{s:i}", "amount", (int)i + 1);
    }
    return evs;
}

static void deposits_free(es_event *evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(evs[i].payload);
    free(evs);
}

/*
 * A commit of 3 events whose transaction commit (EndTxn) fails: the writer
 * aborts the transaction and reads the partition back. The mock keeps
 * aborted records visible, so the whole commit is in the log and counts
 * for every reader: the writer must say so (not "failed"), a retry with
 * the same ids is a duplicate, and the handle's next transaction works
 * (the failed one was not left open).
 */
static void failed_commit_on(es_log *log, rd_kafka_mock_cluster_t *mc,
                             const char *uri, const char *sid,
                             rd_kafka_resp_err_t end_txn_err)
{
    char ids[3][48], ids2[2][48], next[32];
    es_log *reader;
    es_event *evs = deposits(3, sid, ids), *more;
    es_append_result res;
    seen s = {0};
    int rc;

    snprintf(next, sizeof next, "%s-next", sid);
    more = deposits(2, next, ids2);
    assert_int_equal(append1(log, NULL, sid, 0, "AccountOpened", "{\"owner\":\"T\"}"), 0);
    if (end_txn_err == RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS) {
        /* Retried by librdkafka until commit_transaction times out, again
         * and again; the abort then fails the same way. */
        rd_kafka_resp_err_t errs[400];
        for (size_t i = 0; i < 400; i++)
            errs[i] = end_txn_err;
        rd_kafka_mock_push_request_errors_array(mc, API_END_TXN, 400, errs);
    } else {
        rd_kafka_mock_push_request_errors(mc, API_END_TXN, 1, end_txn_err);
    }
    rc = es_log_append(log, &res, "account", sid, 1, evs, 3);
    rd_kafka_mock_clear_request_errors(mc, API_END_TXN);
    if (rc != 0)
        fprintf(stderr, "%s: %s\n", rd_kafka_err2name(end_txn_err), es_errmsg(log));
    assert_int_equal(rc, 0);
    assert_int_equal(res.first_version, 2);
    assert_int_equal(res.version, 4);
    assert_int_equal(res.duplicate, 0);
    assert_int_equal(res.last.offset - res.first.offset, 2);

    reader = open_log(uri);
    assert_int_equal(read_all(reader, &s, sid), 0);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.ev[1]->id, ids[0]);
    assert_string_equal(s.ev[3]->id, ids[2]);
    assert_int_equal(s.ev[1]->position.offset, res.first.offset);
    /* The retry is a no-op, from this handle and from another. */
    assert_int_equal(es_log_append(log, &res, "account", sid, 1, evs, 3), 0);
    assert_int_equal(res.duplicate, 1);
    assert_int_equal(es_log_append(reader, &res, "account", sid, 1, evs, 3), 0);
    assert_int_equal(res.duplicate, 1);
    assert_int_equal(res.version, 4);
    /* Not left open: the next transaction of the handle commits. */
    assert_int_equal(es_log_append(log, &res, "account", sid, 4, more, 2), 0);
    assert_int_equal(res.version, 6);
    assert_int_equal(read_all(reader, &s, sid), 0);
    assert_int_equal(s.n, 6);
    assert_string_equal(s.ev[5]->id, ids2[1]);

    seen_clear(&s);
    deposits_free(evs, 3);
    deposits_free(more, 2);
    es_log_close(reader);
}

/*
 * A commit of 3 events whose transaction commit (EndTxn) fails: the writer
 * aborts the transaction (an abortable error) or drops the producer (a
 * fatal one), and reads the partition back. The mock keeps aborted records
 * visible, so the whole commit is in the log and counts for every reader:
 * the writer must say so (not "failed"), a retry with the same ids is a
 * duplicate, and the handle's next transaction works (the failed one was
 * not left open).
 */
static void test_failed_transaction_commit(void **state)
{
    char uri[512];
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc = mock_new(&rk, uri, sizeof uri, "timeout_ms=1500");
    es_log *log = open_log(uri);

    failed_commit_on(log, mc, uri, "fatal", RD_KAFKA_RESP_ERR_INVALID_TXN_STATE);
    failed_commit_on(log, mc, uri, "abortable", RD_KAFKA_RESP_ERR_INVALID_MSG);
    failed_commit_on(log, mc, uri, "retriable",
                     RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS);
    es_log_close(log);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
}

/* Decides a deposit, and makes the broker slow to answer (beyond the
 * URI's timeout) before the append: its outcome cannot be learnt. */
typedef struct slow_decide {
    rd_kafka_mock_cluster_t *mc;
    int calls;
} slow_decide;

static int decide_then_slow(const void *state, int64_t version,
                            const void *command, es_emitter *em, void *user_data)
{
    slow_decide *sd = user_data;
    (void)state;
    (void)version;
    (void)command;
    sd->calls++;
    rd_kafka_mock_broker_set_rtt(sd->mc, 1, 3000);
    return es_emit_new(em, "Deposited", json_pack("{s:i}", "amount", 1));
}

/*
 * An append whose outcome is unknown (every reply of the broker comes after
 * the timeout) is ES_EUNKNOWN, with the stream and the ids in the message,
 * and es_repo_execute returns it as it is: one decision, never a second.
 */
static void test_unknown_outcome_is_not_decided_again(void **state)
{
    char uri[512];
    rd_kafka_t *rk;
    /* owner=1: an append goes straight to producing (no offsets request
     * first), so the slowness falls on the produce. */
    rd_kafka_mock_cluster_t *mc = mock_new(&rk, uri, sizeof uri,
                                           "timeout_ms=800&owner=1");
    es_log *log = open_log(uri), *reader;
    es_repo *repo = NULL;
    es_execute_result out;
    slow_decide sd = {mc, 0};
    int rc, n = 0;

    assert_int_equal(append1(log, NULL, "u", 0, "AccountOpened", "{\"owner\":\"U\"}"), 0);
    assert_int_equal(append1(log, NULL, "u", 1, "Deposited", "{\"amount\":5}"), 0);
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    rc = es_repo_execute(repo, &out, &bank_account_type, "u", decide_then_slow,
                         NULL, &sd, NULL);
    rd_kafka_mock_broker_set_rtt(mc, 1, 0);
    assert_int_equal(rc, ES_EUNKNOWN);
    assert_int_equal(sd.calls, 1);
    assert_int_equal(out.attempts, 1);
    assert_contains(es_errmsg(repo), "appending to account/u: outcome unknown: "
                                     "the commit of 1 event (ids ");
    assert_contains(es_errmsg(repo), "may or may not have been written");
    assert_contains(es_errmsg(repo), "duplicate");
    assert_string_equal(es_strerror(rc),
                        "outcome unknown (may or may not have been written)");
    /* Whatever became of it, every reader agrees: 2 or 3 events. */
    reader = open_log(uri);
    assert_int_equal(es_log_read_stream(reader, "account", "u", NULL, count_cb, &n), 0);
    assert_true(n == 2 || n == 3);
    es_repo_free(repo);
    es_log_close(reader);
    es_log_close(log);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
}

/* Runs cmd with stdin from `input`; its stdout in out, its exit status. */
static int run_status(const char *cmd, const char *input, char *out, size_t size)
{
    char full[2048];
    FILE *f;
    size_t n;
    int st;
    snprintf(full, sizeof full, "printf '%%s\\n' '%s' | %s", input, cmd);
    f = popen(full, "r");
    assert_non_null(f);
    n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    st = pclose(f);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/*
 * `esfold append` when the produce is answered (with an error) only after
 * the timeout: the record was in flight, so it may be in the log; it is
 * not there when read back, and may still arrive: exit status 3, the
 * outcome named unknown with every id (--json), never "failed". The same
 * line with that id again settles it: one event, counted once.
 */
static void test_cli_reports_unknown_outcome(void **state)
{
    char uri[512], cmd[1024], out[4096], line[256];
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc = mock_new(&rk, uri, sizeof uri, "timeout_ms=800");
    es_log *log = open_log(uri);
    json_t *doc, *ids, *err;
    const char *id;
    seen s = {0};
    int st;

    assert_int_equal(append1(log, NULL, "cli-u", 0, "AccountOpened", "{\"owner\":\"C\"}"), 0);
    assert_int_equal(rd_kafka_mock_broker_push_request_error_rtts(
                         mc, 1, API_PRODUCE, 1,
                         RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, 3000), 0);
    snprintf(cmd, sizeof cmd, "%s --log '%s' append account cli-u --expect 1 "
             "--unchecked --json 2>/dev/null", es_test_esfold_path(), uri);
    st = run_status(cmd, "{\"type\": \"Deposited\", \"data\": {\"amount\": 7}}",
                    out, sizeof out);
    assert_int_equal(st, 3);
    doc = json_loads(out, 0, NULL);
    assert_non_null(doc);
    /* The JSON contract: one document, the outcome in its error object. */
    assert_int_equal(json_integer_value(json_object_get(doc, "format")), 1);
    err = json_object_get(doc, "error");
    assert_non_null(err);
    assert_string_equal(json_string_value(json_object_get(err, "code")), "unknown");
    assert_string_equal(json_string_value(json_object_get(err, "outcome")), "unknown");
    assert_string_equal(json_string_value(json_object_get(err, "stream_id")), "cli-u");
    ids = json_object_get(err, "ids");
    assert_int_equal(json_array_size(ids), 1);
    id = json_string_value(json_array_get(ids, 0));
    assert_non_null(id);
    assert_contains(json_string_value(json_object_get(err, "message")), id);
    assert_contains(json_string_value(json_object_get(err, "message")),
                    "may or may not have been written");

    /* The retry with the id: appended once, whatever the first try did. */
    snprintf(line, sizeof line,
             "{\"type\": \"Deposited\", \"id\": \"%s\", \"data\": {\"amount\": 7}}", id);
    snprintf(cmd, sizeof cmd, "%s --log '%s' append account cli-u --expect 1 "
             "--unchecked", es_test_esfold_path(), uri);
    assert_int_equal(run_status(cmd, line, out, sizeof out), 0);
    assert_int_equal(read_all(log, &s, "cli-u"), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.ev[1]->id, id);
    seen_clear(&s);
    json_decref(doc);
    es_log_close(log);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
}

/* ---- a broker process that is frozen and killed ------------------------------ */

/* Starts `esfold broker` of its own; *addr gets its address, *banner what it
 * said on stderr up to its "Stop with" line. */
static pid_t broker_start(char *addr, size_t addr_size, char *banner,
                          size_t banner_size)
{
    int out[2], err[2];
    pid_t pid;
    size_t len = 0;
    FILE *f;
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(err), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(out[0]);
        close(err[0]);
        execl(es_test_esfold_path(), "esfold", "broker", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    f = fdopen(out[0], "r");
    assert_non_null(fgets(addr, (int)addr_size, f));
    addr[strcspn(addr, "\n")] = '\0';
    fclose(f);
    f = fdopen(err[0], "r");
    banner[0] = '\0';
    while (len < banner_size - 1 && fgets(banner + len, (int)(banner_size - len), f)) {
        len += strlen(banner + len);
        if (strstr(banner, "Stop with"))
            break;
    }
    fclose(f); /* the broker's later lines go nowhere (EPIPE is ignored) */
    return pid;
}

static void broker_stop(pid_t pid)
{
    int status;
    kill(pid, SIGCONT);
    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &status, 0), pid);
}

/* `esfold broker` turns Nagle off for the connections the mock accepts. */
static void test_broker_sets_nodelay(void **state)
{
    char addr[256], banner[4096];
    pid_t pid = broker_start(addr, sizeof addr, banner, sizeof banner);
    assert_contains(banner, "TCP_NODELAY: set on 1 listening socket(s), and an "
                            "accepted connection has it");
    broker_stop(pid);
}

#define FREEZE_T_MS 1000
#define FREEZE_EVENTS 50
/* Far above the documented bound (docs/kafka.md: 13 x timeout_ms): this
 * checks that a call returns, not how fast. */
#define FREEZE_ALARM_S 60

/* Commit `round` of the freeze test, with ids made from the round so that
 * the parent can retry it with the same ids: FREEZE_EVENTS events in a
 * transaction, or (odd rounds) one event, which the idempotent producer
 * sends at once. */
#define FREEZE_N(round) ((round) % 2 ? 1 : FREEZE_EVENTS)
static es_event *freeze_commit(int round, char ids[][48])
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "frz-%d", round);
    return deposits(FREEZE_N(round), prefix, ids);
}

/* The appending child: commits to stream "fz" until told to stop (fd
 * `stop` readable), each append under an alarm; reports "round rc\n". */
static int freeze_writer(const char *uri, int stop, int fd)
{
    es_log *log = NULL;
    char ids[FREEZE_EVENTS][48], line[64];
    if (es_log_open(&log, uri) != 0)
        return 2;
    for (int round = 0;; round++) {
        struct pollfd pfd = {.fd = stop, .events = POLLIN};
        es_event *evs = freeze_commit(round, ids);
        int rc;
        if (poll(&pfd, 1, 0) != 0) {
            deposits_free(evs, FREEZE_N(round));
            break;
        }
        alarm(FREEZE_ALARM_S); /* a hang kills the child: the test fails */
        rc = es_log_append(log, NULL, "account", "fz", ES_EXPECT_ANY, evs,
                           FREEZE_N(round));
        alarm(0);
        deposits_free(evs, FREEZE_N(round));
        if (rc != 0 && rc != ES_EUNKNOWN && rc != ES_EIO) {
            fprintf(stderr, "freeze writer: %d %s\n", rc, es_errmsg(log));
            return 3;
        }
        if (rc == ES_EUNKNOWN &&
            (strstr(es_errmsg(log), "frz-") == NULL ||
             strstr(es_errmsg(log), "may or may not have been written") == NULL))
            return 4;
        snprintf(line, sizeof line, "%d %d\n", round, rc);
        if (write(fd, line, strlen(line)) != (ssize_t)strlen(line))
            return 5;
    }
    es_log_close(log);
    return 0;
}

/* Reads one "round rc" line of the writer; 0 at its end. */
static int freeze_result(FILE *f, int *round, int *rc)
{
    return fscanf(f, "%d %d\n", round, rc) == 2;
}

typedef struct id_count {
    const char *id;
    int n;
} id_count;

static int count_id(const es_event *ev, void *user_data)
{
    id_count *c = user_data;
    c->n += strcmp(ev->id, c->id) == 0;
    return 0;
}

/* How many times a reader counts the event with this id in stream fz. */
static int ids_counted(es_log *log, const char *id)
{
    id_count c = {id, 0};
    assert_int_equal(es_log_read_stream(log, "account", "fz", NULL, count_id, &c), 0);
    return c.n;
}

/*
 * The broker is frozen (SIGSTOP) under a writer, resumed (SIGCONT), then
 * killed (SIGKILL): every append returns (under an alarm far above the
 * bound) with success, ES_EUNKNOWN or a definite ES_EIO; afterwards every
 * success counts, no definite failure counts, and a retry of an unknown
 * commit with the same ids makes it count exactly once.
 */
static void test_frozen_and_killed_broker(void **state)
{
    char addr[256], banner[4096], uri[512], ids[FREEZE_EVENTS][48];
    pid_t broker = broker_start(addr, sizeof addr, banner, sizeof banner), writer;
    int stop[2], res[2], status, round, rc, outcome[256], n = 0, unknown = 0;
    FILE *f;
    es_log *log;

    /* owner=1: the writer goes straight to producing once it knows the
     * partition, so the freeze catches commits in flight. */
    snprintf(uri, sizeof uri,
             "kafka://%s?prefix=frz.&owner=1&timeout_ms=%d&kafka.log_level=0",
             addr, FREEZE_T_MS);
    assert_int_equal(pipe(stop), 0);
    assert_int_equal(pipe(res), 0);
    writer = fork();
    assert_true(writer >= 0);
    if (writer == 0) {
        close(stop[1]);
        close(res[0]);
        _exit(freeze_writer(uri, stop[0], res[1]));
    }
    close(stop[0]);
    close(res[1]);
    f = fdopen(res[0], "r");

    /* Running, frozen for four of its appends, running again. */
    for (int phase = 0; phase < 3; phase++) {
        if (phase == 1)
            kill(broker, SIGSTOP);
        if (phase == 2)
            kill(broker, SIGCONT);
        for (int k = 0; k < 4; k++) {
            assert_true(freeze_result(f, &round, &rc));
            assert_int_equal(round, n);
            assert_true(n < 256);
            outcome[n++] = rc;
        }
    }
    assert_int_equal(write(stop[1], "x", 1), 1);
    while (freeze_result(f, &round, &rc)) {
        assert_true(n < 256);
        outcome[n++] = rc;
    }
    fclose(f);
    close(stop[1]);
    assert_int_equal(waitpid(writer, &status, 0), writer);
    assert_true(WIFEXITED(status)); /* not killed by its alarm */
    assert_int_equal(WEXITSTATUS(status), 0);

    /* A fresh reader: successes count, definite failures do not; unknown
     * ones are settled by a retry with the same ids. */
    log = open_log(uri);
    for (int r = 0; r < n; r++) {
        es_event *evs = freeze_commit(r, ids);
        es_append_result ar;
        if (outcome[r] == 0)
            assert_int_equal(ids_counted(log, ids[0]), 1);
        if (outcome[r] == ES_EIO)
            assert_int_equal(ids_counted(log, ids[0]), 0);
        if (outcome[r] == ES_EUNKNOWN) {
            unknown++;
            assert_int_equal(es_log_append(log, &ar, "account", "fz",
                                           ES_EXPECT_ANY, evs, FREEZE_N(r)), 0);
            assert_int_equal(es_log_append(log, &ar, "account", "fz",
                                           ES_EXPECT_ANY, evs, FREEZE_N(r)), 0);
            assert_int_equal(ar.duplicate, 1);
            assert_int_equal(ids_counted(log, ids[0]), 1);
            assert_int_equal(ids_counted(log, ids[FREEZE_N(r) - 1]), 1);
        }
        deposits_free(evs, FREEZE_N(r));
    }
    fprintf(stderr, "frozen broker: %d appends, %d with an unknown outcome\n", n,
            unknown);

    /* Killed under a writer (a handle of its own: librdkafka's do not
     * survive fork): its appends return, and say that they cannot tell or
     * that nothing was written. */
    assert_int_equal(pipe(stop), 0);
    assert_int_equal(pipe(res), 0);
    writer = fork();
    assert_true(writer >= 0);
    if (writer == 0) {
        es_log *w = NULL;
        char c;
        int bad = 0;
        close(stop[1]);
        close(res[0]);
        if (es_log_open(&w, uri) != 0 || append1(w, NULL, "fk", ES_EXPECT_ANY,
                                                 "Deposited", "{\"amount\":1}") != 0)
            _exit(2);
        if (write(res[1], "r", 1) != 1 || read(stop[0], &c, 1) != 1)
            _exit(3);
        for (int r = 0; r < 3; r++) {
            es_event *evs = freeze_commit(r, ids);
            alarm(FREEZE_ALARM_S);
            rc = es_log_append(w, NULL, "account", "fk", ES_EXPECT_ANY, evs,
                               FREEZE_N(r));
            alarm(0);
            deposits_free(evs, FREEZE_N(r));
            bad += rc != ES_EUNKNOWN && rc != ES_EIO;
        }
        _exit(bad ? 4 : 0);
    }
    close(stop[0]);
    close(res[1]);
    {
        char c;
        assert_int_equal(read(res[0], &c, 1), 1);
    }
    kill(broker, SIGKILL);
    assert_int_equal(waitpid(broker, &status, 0), broker);
    assert_int_equal(write(stop[1], "k", 1), 1);
    assert_int_equal(waitpid(writer, &status, 0), writer);
    assert_true(WIFEXITED(status)); /* not killed by its alarm */
    assert_int_equal(WEXITSTATUS(status), 0);
    close(stop[1]);
    close(res[0]);
    es_log_close(log);
}

/* ---- the shared log suite, on Kafka ------------------------------------------- */

/* Runs another test program of this build against the local broker. */
/* query: "" or "?name=value" added to the base URI. */
static void run_suite_on_kafka_with(const char *program, const char *query)
{
    char cmd[2048];
    const char *out = es_test_path("suite_on_kafka.out");
    snprintf(cmd, sizeof cmd,
             "ESFOLD_TEST_LOG_URI_BASE='kafka://%s%s' $(dirname %s)/tests/%s "
             "> %s 2>&1",
             es_test_kafka_brokers(), query, es_test_esfold_path(), program, out);
    if (system(cmd) != 0) {
        snprintf(cmd, sizeof cmd, "grep -A1 -e '  ERROR  ' %s >&2", out);
        if (system(cmd) != 0)
            fprintf(stderr, "(no failure lines in %s)\n", out);
        fail_msg("tests/%s against kafka://%s%s failed", program,
                 es_test_kafka_brokers(), query);
    }
}

static void run_suite_on_kafka(const char *program)
{
    run_suite_on_kafka_with(program, "");
}

static void test_shared_log_suite(void **state)
{
    run_suite_on_kafka("test_log");
}

/* The repository on Kafka: loads (from snapshots too), execute, conflicts,
 * and loads under allocation failures. */
static void test_repo_suite(void **state)
{
    run_suite_on_kafka("test_repo");
}

/* The single-writer processor on Kafka: as every handle, and as the owner
 * of its partitions (owner=1: appends trust the handle's view). */
static void test_processor_suite(void **state)
{
    run_suite_on_kafka("test_processor");
    run_suite_on_kafka_with("test_processor", "?owner=1");
}

/* The command line on Kafka: history, append, and verify listing the
 * events the acceptance rule rejected. */
static void test_cli_suite(void **state)
{
    run_suite_on_kafka("test_cli");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kcat_reads_what_esfold_writes),
        cmocka_unit_test(test_esfold_folds_what_kcat_writes),
        cmocka_unit_test(test_race_has_one_winner),
        cmocka_unit_test(test_zombie_is_rejected_everywhere),
        cmocka_unit_test(test_aborted_transaction_is_rejected),
        cmocka_unit_test(test_truncated_partition_is_reported),
        cmocka_unit_test(test_faults_lose_and_duplicate_nothing),
        cmocka_unit_test(test_failed_transaction_commit),
        cmocka_unit_test(test_unknown_outcome_is_not_decided_again),
        cmocka_unit_test(test_cli_reports_unknown_outcome),
        cmocka_unit_test(test_broker_sets_nodelay),
        cmocka_unit_test(test_frozen_and_killed_broker),
        cmocka_unit_test(test_shared_log_suite),
        cmocka_unit_test(test_repo_suite),
        cmocka_unit_test(test_cli_suite),
        cmocka_unit_test(test_processor_suite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * tests/test_agreement.c - every Kafka reader and every writer agree on
 * which events count, whatever else is in the topic (issue: "Kafka: every
 * reader and every writer agree").
 *
 * Topics are shared with Java, Go and ksqlDB producers, kcat, old esfolds
 * and buggy services. The records they write here come from a plain
 * librdkafka producer (the same client those tools are built on), with
 * forged and copied es- headers, wrong partitions, values that are not
 * JSON objects, tombstones, commits that never complete and duplicates of
 * genuine records.
 *
 * First the regressions, one per way the promise broke; then the property
 * test: racing esfold writer processes and a foreign producer interleave
 * at random, and afterwards a fold from origin, a fold seeded at every
 * snapshot position, every partition reader (from the beginning and
 * resumed at checkpoints with seeds), verify, and the writers'
 * confirmations must all agree.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <sqlite3.h>

#include "harness.h"
#include "kafka_harness.h"

#define TYPE "account"

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

static const char *topic_of(const char *uri)
{
    static char buf[256];
    const char *p = strstr(uri, "prefix=") + 7;
    size_t n = strcspn(p, "&");
    snprintf(buf, sizeof buf, "%.*s%s", (int)n, p, TYPE);
    return buf;
}

static int32_t partitions(es_log *log)
{
    int32_t n = 0;
    assert_int_equal(es_log_partition_count(log, &n, TYPE), 0);
    return n;
}

static int32_t partition_of(es_log *log, const char *sid)
{
    return es_partition_for(sid, strlen(sid), partitions(log));
}

/* Appends one event with an id of its own choosing (NULL: a new one). */
static int append1(es_log *log, es_append_result *res, const char *sid,
                   int64_t expected, const char *id, const char *payload)
{
    json_t *p = json_loads(payload, 0, NULL);
    es_event ev = {.type = "Deposited", .payload = p, .id = id};
    int rc = es_log_append(log, res, TYPE, sid, expected, &ev, 1);
    json_decref(p);
    return rc;
}

/* A producer outside esfold. */
static rd_kafka_t *foreign_producer(void)
{
    return es_test_kafka_producer(NULL);
}

/* Produces one record (value NULL: a tombstone) with headers (name,
 * value, ..., NULL) and waits for it. */
static void foreign_send(rd_kafka_t *rk, const char *topic, int32_t p,
                         const char *key, const char *value, ...)
{
    va_list ap;
    va_start(ap, value);
    es_test_kafka_sendv(rk, topic, p, key, value, value ? strlen(value) : 0, ap);
    va_end(ap);
    assert_int_equal(rd_kafka_flush(rk, 10000), 0);
}

/* What a reader counted: "stream:version@offset " for each accepted event. */
typedef struct tally {
    char *text;
    size_t len, cap;
    int64_t n;
} tally;

static void tally_add(tally *t, const es_event *ev)
{
    char buf[512];
    int k = snprintf(buf, sizeof buf, "%s:%lld@%d/%lld=%s ", ev->stream_id,
                     (long long)ev->version, (int)ev->position.partition,
                     (long long)ev->position.offset, ev->id);
    if (t->len + (size_t)k + 1 > t->cap) {
        t->cap = (t->cap + (size_t)k + 1) * 2;
        t->text = realloc(t->text, t->cap);
        assert_non_null(t->text);
    }
    memcpy(t->text + t->len, buf, (size_t)k + 1);
    t->len += (size_t)k;
    t->n++;
}

static void tally_free(tally *t)
{
    free(t->text);
    memset(t, 0, sizeof *t);
}

static const char *tally_text(const tally *t)
{
    return t->text ? t->text : "";
}

static int tally_cb(const es_event *ev, void *ud)
{
    tally_add(ud, ev);
    return 0;
}

static int read_stream(es_log *log, tally *t, const char *sid)
{
    tally_free(t);
    return es_log_read_stream(log, TYPE, sid, NULL, tally_cb, t);
}

/* Verdicts of a scan: the first rejected one's reason. */
typedef struct verdicts {
    int accepted, rejected;
    char why[1024];
    int64_t why_offset;
} verdicts;

static int note_verdict(const es_event *ev, es_verdict v, const char *why, void *ud)
{
    verdicts *vs = ud;
    if (v == ES_VERDICT_ACCEPTED) {
        vs->accepted++;
    } else {
        if (vs->rejected++ == 0) {
            snprintf(vs->why, sizeof vs->why, "%s: %s", es_verdict_name(v), why);
            vs->why_offset = ev->position.offset;
        }
    }
    return 0;
}

static void scan(es_log *log, int32_t p, verdicts *vs)
{
    memset(vs, 0, sizeof *vs);
    assert_int_equal(es_log_scan_partition(log, NULL, TYPE, p, 0, 0, note_verdict, vs),
                     0);
}

static void genuine(es_log *log, const char *sid, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(append1(log, NULL, sid, i, NULL, "{\"amount\": 1}"), 0);
}

/* ---- 1. a load from a snapshot agrees with a load from origin ---------------- */

typedef struct pos_at {
    int64_t version;
    es_position pos;
    char commit[64];
} pos_at;

static int last_pos(const es_event *ev, void *ud)
{
    pos_at *p = ud;
    p->version = ev->version;
    p->pos = ev->position;
    snprintf(p->commit, sizeof p->commit, "%s", ev->commit_id ? ev->commit_id : "");
    return 0;
}

static void test_seeded_load_agrees_with_origin(void **state)
{
    const char *uri = es_test_kafka_uri(NULL);
    es_log *log = open_log(uri);
    rd_kafka_t *rk = foreign_producer();
    json_t *a = json_pack("{s:i}", "amount", 1), *b = json_pack("{s:i}", "amount", 2);
    es_event two[2] = {{.type = "Deposited", .payload = a},
                       {.type = "Deposited", .payload = b}};
    es_read_options from_snap = ES_READ_OPTIONS_INIT;
    pos_at snap = {0};
    tally origin = {0}, seeded = {0};
    char pcount[16];
    (void)state;

    /* v1 and v2 in one commit; the snapshot is at v2. */
    assert_int_equal(es_log_append(log, NULL, TYPE, "s1", 0, two, 2), 0);
    assert_int_equal(es_log_read_stream(log, TYPE, "s1", NULL, last_pos, &snap), 0);
    assert_int_equal(snap.version, 2);
    /* A foreign record copying the snapshot's commit id, version 3, and the
     * size of that commit (once counted by a seeded reader). */
    snprintf(pcount, sizeof pcount, "%d", (int)partitions(log));
    foreign_send(rk, topic_of(uri), snap.pos.partition, "s1", "{\"amount\": 1000}",
                 "es-type", "Withdrawn", "es-version", "3", "es-id", "forged-3",
                 "es-commit", snap.commit, "es-commit-size", "2", (char *)NULL);
    /* The writer's genuine v3 is accepted, as every reader will see it. */
    assert_int_equal(append1(log, NULL, "s1", 2, "genuine-3", "{\"amount\": 3}"), 0);

    assert_int_equal(read_stream(log, &origin, "s1"), 0);
    from_snap.from_version = 3;
    from_snap.start = snap.pos;
    assert_int_equal(es_log_read_stream(log, TYPE, "s1", &from_snap, tally_cb, &seeded),
                     0);
    assert_int_equal(origin.n, 3);
    assert_contains(tally_text(&origin), "=genuine-3");
    assert_null(strstr(tally_text(&origin), "forged-3"));
    assert_int_equal(seeded.n, 1);
    assert_contains(tally_text(&origin), tally_text(&seeded));
    /* A reader seeded at from_version's own event (a repository checking
     * its snapshot's event is still there) agrees too. */
    tally_free(&seeded);
    from_snap.from_version = 2;
    assert_int_equal(es_log_read_stream(log, TYPE, "s1", &from_snap, tally_cb, &seeded),
                     0);
    assert_int_equal(seeded.n, 2);
    assert_contains(tally_text(&origin), tally_text(&seeded));

    tally_free(&origin);
    tally_free(&seeded);
    json_decref(a);
    json_decref(b);
    rd_kafka_destroy(rk);
    es_log_close(log);
}

/* ---- 2. the writer and the readers judge a record alike ------------------------ */

static void test_bad_value_is_rejected_by_all(void **state)
{
    const char *uri = es_test_kafka_uri(NULL);
    es_log *log = open_log(uri), *other;
    rd_kafka_t *rk = foreign_producer();
    es_append_result res;
    tally t = {0};
    verdicts vs;
    int32_t p;
    (void)state;

    genuine(log, "s2", 2);
    p = partition_of(log, "s2");
    /* Valid es- headers, a value that is not a JSON object, then a
     * tombstone: not events, for anyone. */
    foreign_send(rk, topic_of(uri), p, "s2", "not json", "es-type", "Deposited",
                 "es-version", "3", (char *)NULL);
    foreign_send(rk, topic_of(uri), p, "s2", "[1, 2]", "es-type", "Deposited",
                 "es-version", "3", (char *)NULL);
    foreign_send(rk, topic_of(uri), p, "s2", NULL, "es-type", "Deposited",
                 "es-version", "3", (char *)NULL);
    other = open_log(uri); /* a writer that has not read the partition */
    assert_int_equal(append1(other, &res, "s2", 2, NULL, "{\"amount\": 1}"), 0);
    assert_int_equal(res.version, 3);
    assert_int_equal(append1(log, &res, "s2", 3, NULL, "{\"amount\": 1}"), 0);
    assert_int_equal(res.version, 4);
    assert_int_equal(read_stream(log, &t, "s2"), 0);
    assert_int_equal(t.n, 4);
    scan(log, p, &vs);
    assert_int_equal(vs.accepted, 4);
    assert_int_equal(vs.rejected, 3);
    assert_contains(vs.why, "malformed: the value (payload) is not a JSON object");
    tally_free(&t);
    rd_kafka_destroy(rk);
    es_log_close(other);
    es_log_close(log);
}

/* ---- 3. truncation judged from accepted events, never a rejected record ------- */

static void test_gap_record_does_not_break_a_stream(void **state)
{
    const char *uri = es_test_kafka_uri(NULL);
    es_log *log = open_log(uri);
    rd_kafka_t *rk = foreign_producer();
    tally t = {0};
    verdicts vs;
    int32_t p;
    char pcount[16];
    (void)state;

    genuine(log, "other", 1); /* the topic exists */
    p = partition_of(log, "s3");
    snprintf(pcount, sizeof pcount, "%d", (int)partitions(log));
    /* A stream whose first stored record has version 2: v1 is missing
     * while the partition still starts at 0 (a compacted topic). */
    foreign_send(rk, topic_of(uri), p, "s3", "{}", "es-type", "Deposited",
                 "es-version", "2", "es-partitions", pcount, (char *)NULL);
    assert_int_equal(read_stream(log, &t, "s3"), ES_ETRUNCATED);
    assert_contains(es_errmsg(log), "reading account/s3: no event of the stream "
                                    "counts: its first record in kafka topic");
    assert_contains(es_errmsg(log), "has version 2, and versions 1 to 1 are not "
                                    "in the log");
    assert_int_equal(t.n, 0);
    /* The writer's rule says the stream has no event: v1, v2 are accepted,
     * and the stream loads from then on, the forged record rejected. */
    assert_int_equal(append1(log, NULL, "s3", 0, NULL, "{\"amount\": 1}"), 0);
    assert_int_equal(append1(log, NULL, "s3", 1, NULL, "{\"amount\": 1}"), 0);
    assert_int_equal(read_stream(log, &t, "s3"), 0);
    assert_int_equal(t.n, 2);
    scan(log, p, &vs);
    assert_contains(vs.why, "gap: stream s3 is at version 0, the event has version 2");
    tally_free(&t);
    rd_kafka_destroy(rk);
    es_log_close(log);
}

/* A partition that lost exactly its first record. The mock drops its
 * oldest record batches past 5 MiB: fillers no larger than the first
 * batch drop exactly that one when the partition first goes over. */
static void test_lost_first_record_is_truncation(void **state)
{
    const char *uri = es_test_kafka_uri(NULL);
    es_log *log = open_log(uri), *fresh;
    rd_kafka_t *rk;
    tally t = {0};
    char *big;
    int64_t lo = 0, hi = 0, next;
    int32_t p;
    const size_t first = 200 * 1024, filler = 100 * 1024;
    (void)state;

    if (!es_test_kafka_is_mock())
        skip();
    big = malloc(first + 64);
    assert_non_null(big);
    memset(big, 'x', first);
    big[0] = '{';
    memcpy(big + 1, "\"pad\":\"", 7);
    memcpy(big + first - 2, "\"}", 3);
    assert_int_equal(append1(log, NULL, "s4", 0, NULL, big), 0);
    genuine(log, "s4b", 0);
    p = partition_of(log, "s4");
    rk = foreign_producer();
    memset(big, 'y', filler);
    big[filler] = '\0';
    for (int i = 0; i < 200 && lo == 0; i++) {
        foreign_send(rk, topic_of(uri), p, "filler", big, (char *)NULL);
        assert_int_equal(rd_kafka_query_watermark_offsets(rk, topic_of(uri), p, &lo,
                                                          &hi, 10000), 0);
    }
    assert_int_equal(lo, 1);
    rd_kafka_destroy(rk);
    free(big);

    fresh = open_log(uri);
    assert_int_equal(read_stream(fresh, &t, "s4"), ES_ETRUNCATED);
    assert_contains(es_errmsg(fresh), "begins at offset 1, not 0: the log lost its "
                                      "beginning (offsets 0 to 0 were deleted)");
    assert_int_equal(append1(fresh, NULL, "s4", 1, NULL, "{}"), ES_ETRUNCATED);
    assert_int_equal(es_log_read_partition(fresh, &next, TYPE, p, 0, 0, tally_cb, &t),
                     ES_ETRUNCATED);
    tally_free(&t);
    es_log_close(fresh);
    es_log_close(log);
}

/* ---- 4. partitions: the key decides, and a changed count is refused ---------- */

static void test_wrong_partition_is_rejected(void **state)
{
    const char *uri = es_test_kafka_uri(NULL);
    es_log *log = open_log(uri);
    rd_kafka_t *rk = foreign_producer();
    tally t = {0}, part = {0};
    verdicts vs;
    int32_t p, wrong;
    int64_t next;
    (void)state;

    genuine(log, "s5", 1);
    p = partition_of(log, "s5");
    wrong = (p + 1) % partitions(log);
    /* What kcat's default partitioner (not murmur2) can do: a record of
     * s5 in another partition, with valid headers. */
    foreign_send(rk, topic_of(uri), wrong, "s5", "{\"amount\": 9}", "es-type",
                 "Deposited", "es-version", "1", "es-id", "elsewhere", (char *)NULL);
    assert_int_equal(es_log_read_partition(log, &next, TYPE, wrong, 0, 0, tally_cb,
                                           &part), 0);
    assert_int_equal(part.n, 0);
    scan(log, wrong, &vs);
    assert_int_equal(vs.rejected, 1);
    assert_contains(vs.why, "malformed: the record is in partition");
    assert_contains(vs.why, "but its key belongs in partition");
    assert_int_equal(read_stream(log, &t, "s5"), 0);
    assert_int_equal(t.n, 1);
    tally_free(&t);
    tally_free(&part);
    rd_kafka_destroy(rk);
    es_log_close(log);
}

static void test_changed_partition_count_is_refused(void **state)
{
    const char *uri = es_test_kafka_uri(NULL);
    es_log *log = open_log(uri);
    rd_kafka_t *rk = foreign_producer();
    tally t = {0};
    int32_t n, old = 0, p;
    int64_t next;
    const char *sid = NULL;
    char buf[128];
    static const char *keys[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"};
    (void)state;

    genuine(log, "s6", 1);
    n = partitions(log);
    /* A record written when the topic had fewer partitions, where that
     * count put its key (and the current count does not). */
    for (old = n - 1; old >= 1 && sid == NULL; old--)
        for (size_t i = 0; i < 8; i++) {
            p = es_partition_for(keys[i], 2, old);
            if (p != es_partition_for(keys[i], 2, n)) {
                sid = keys[i];
                break;
            }
        }
    assert_non_null(sid);
    old++;
    snprintf(buf, sizeof buf, "%d", (int)old);
    p = es_partition_for(sid, 2, old);
    foreign_send(rk, topic_of(uri), p, sid, "{}", "es-type", "Deposited", "es-version",
                 "1", "es-partitions", buf, (char *)NULL);
    assert_int_equal(es_log_read_partition(log, &next, TYPE, p, 0, 0, tally_cb, &t),
                     ES_EINVAL);
    snprintf(buf, sizeof buf, "had %d partitions, and it has %d now", (int)old, (int)n);
    assert_contains(es_errmsg(log), buf);
    assert_contains(es_errmsg(log), "the partition count of an event topic changed");
    tally_free(&t);
    rd_kafka_destroy(rk);
    es_log_close(log);
}

/* ---- 5. a commit that never completes stalls nobody ------------------------- */

typedef struct verdicts_all {
    int *found;
} verdicts_all;

static int find_incomplete(const es_event *ev, es_verdict v, const char *why, void *ud)
{
    verdicts_all *va = ud;
    if (v == ES_VERDICT_INCOMPLETE) {
        assert_string_equal(ev->commit_id, "torn");
        assert_non_null(strstr(why, "commit torn of "));
        assert_non_null(strstr(why, "had 1 of its 5 events when offset"));
        assert_non_null(strstr(why, "a commit must complete within 20000 offsets"));
        ++*va->found;
    }
    return 0;
}

static void test_commit_that_never_completes(void **state)
{
    const char *uri = es_test_kafka_uri(NULL);
    es_log *log = open_log(uri), *fresh;
    rd_kafka_t *rk = foreign_producer();
    tally t = {0};
    verdicts vs;
    int32_t p;
    int64_t next = 0;
    char pcount[16], torn[32] = "torn";
    (void)state;

    genuine(log, "s7", 1);
    p = partition_of(log, "s7");
    snprintf(pcount, sizeof pcount, "%d", (int)partitions(log));
    /* More events than a commit may have: rejected at once. */
    foreign_send(rk, topic_of(uri), p, "s7", "{}", "es-type", "Deposited",
                 "es-version", "2", "es-commit", "huge", "es-commit-size", "1000000",
                 (char *)NULL);
    /* A commit of 5 of another stream of the partition that stops after its
     * first event: decided incomplete ES_COMMIT_WINDOW offsets later, the
     * same for every reader. */
    for (int i = 0; i < 1000 && es_partition_for(torn, strlen(torn),
                                                 partitions(log)) != p; i++)
        snprintf(torn, sizeof torn, "torn-%d", i);
    foreign_send(rk, topic_of(uri), p, torn, "{}", "es-type", "Deposited",
                 "es-version", "1", "es-commit", "torn", "es-commit-size", "5",
                 "es-commit-index", "0", "es-partitions", pcount, (char *)NULL);
    /* Behind it s7 goes on: its event waits for the commit's verdict in a
     * partition reader (offset order), not in a fold of s7. */
    fresh = open_log(uri);
    assert_int_equal(append1(fresh, NULL, "s7", 1, NULL, "{\"amount\": 2}"), 0);
    assert_int_equal(read_stream(log, &t, "s7"), 0);
    assert_int_equal(t.n, 2);
    tally_free(&t);
    assert_int_equal(es_log_read_partition(log, &next, TYPE, p, 0, 0, tally_cb, &t),
                     0);
    assert_int_equal(t.n, 1); /* s7 v1; v2 waits behind the open commit */
    tally_free(&t);
    /* Then the window's worth of other records. */
    for (int i = 0; i < ES_COMMIT_WINDOW; i++)
        assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic_of(uri)),
                                           RD_KAFKA_V_PARTITION(p),
                                           RD_KAFKA_V_KEY("noise", 5),
                                           RD_KAFKA_V_VALUE("{}", 2),
                                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                           RD_KAFKA_V_END),
                         0);
    assert_int_equal(rd_kafka_flush(rk, 30000), 0);
    /* A follower that was waiting, and a new one, both pass it now, in
     * bounded steps. */
    for (int i = 0; i < 100; i++) {
        int64_t before = next;
        assert_int_equal(es_log_read_partition(log, &next, TYPE, p, next, 512,
                                               tally_cb, &t), 0);
        if (next == before)
            break;
    }
    assert_int_equal(t.n, 1);
    assert_contains(tally_text(&t), "s7:2@");
    tally_free(&t);
    assert_int_equal(es_log_read_partition(fresh, &next, TYPE, p, 0, 0, tally_cb, &t),
                     0);
    assert_int_equal(t.n, 2);
    tally_free(&t);
    {
        /* verify names the commit and the bound */
        int found = 0;
        verdicts_all va = {&found};
        assert_int_equal(es_log_scan_partition(log, NULL, TYPE, p, 0, 0, find_incomplete,
                                               &va), 0);
        assert_int_equal(found, 1);
    }
    scan(log, p, &vs);
    assert_contains(vs.why, "malformed: event kafka:");
    assert_contains(vs.why, "says its commit huge has 1000000 events, more than a "
                            "commit may have (10000)");
    rd_kafka_destroy(rk);
    es_log_close(fresh);
    es_log_close(log);
}

/* ---- the same commit from two handles at once ------------------------------ */

static void test_same_commit_twice_at_once(void **state)
{
    const char *uri = es_test_kafka_uri(NULL);
    int fds[2][2];
    pid_t pid[2];
    es_append_result got[2];
    (void)state;

    {
        es_log *log = open_log(uri);
        genuine(log, "s8", 1);
        es_log_close(log);
    }
    for (int w = 0; w < 2; w++) {
        assert_int_equal(pipe(fds[w]), 0);
        pid[w] = fork();
        assert_true(pid[w] >= 0);
        if (pid[w] == 0) {
            es_log *log = NULL;
            es_append_result res;
            int rc;
            close(fds[w][0]);
            if (es_log_open(&log, uri) != 0)
                _exit(2);
            rc = append1(log, &res, "s8", 1, "same-id-1", "{\"amount\": 5}");
            if (rc != 0) {
                fprintf(stderr, "writer %d: %s\n", w, es_errmsg(log));
                _exit(3);
            }
            if (write(fds[w][1], &res, sizeof res) != (ssize_t)sizeof res)
                _exit(4);
            es_log_close(log);
            _exit(0);
        }
        close(fds[w][1]);
    }
    for (int w = 0; w < 2; w++) {
        int status;
        assert_int_equal(read(fds[w][0], &got[w], sizeof got[w]),
                         (ssize_t)sizeof got[w]);
        close(fds[w][0]);
        assert_int_equal(waitpid(pid[w], &status, 0), pid[w]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    /* Exactly one wrote it; the other was told where the winner's is. */
    assert_int_equal(got[0].duplicate + got[1].duplicate, 1);
    assert_int_equal(got[0].version, 2);
    assert_int_equal(got[1].version, 2);
    assert_int_equal(got[0].first.offset, got[1].first.offset);
    assert_int_equal(got[0].first.partition, got[1].first.partition);
}

/* ---- a projection resumes where it stopped, never from origin -------------- */

/* The worker in a new process resumes a partition whose beginning is gone
 * (a read from origin would be ES_ETRUNCATED): the acceptance rule's state
 * at the checkpoint comes from the target's es_proj_resume, and the stream
 * goes on from its version there. */
static void test_projection_resumes_without_rescan(void **state)
{
    const char *uri = es_test_kafka_uri(NULL);
    const char *target = es_test_path("resume-target.db");
    char turi[1024], *big;
    es_log *log = open_log(uri), *fresh;
    es_projection *proj = NULL;
    es_projection_worker *w = NULL;
    es_projection_step total;
    es_error err;
    rd_kafka_t *rk;
    int64_t lo = 0, hi = 0, n = -1;
    int32_t p;
    const size_t first = 200 * 1024, filler = 100 * 1024;
    sqlite3 *db;
    sqlite3_stmt *st;
    (void)state;

    if (!es_test_kafka_is_mock())
        skip();
    snprintf(turi, sizeof turi, "sqlite:%s", target);
    assert_int_equal(es_projection_load_json(
                         &proj,
                         "{\"name\": \"counts\", \"version\": 1,"
                         " \"follows\": [\"account\"],"
                         " \"setup\": [\"CREATE TABLE IF NOT EXISTS counts (id TEXT"
                         " PRIMARY KEY, n BIGINT NOT NULL, last BIGINT NOT NULL)\"],"
                         " \"on\": {\"*\": [\"INSERT INTO counts VALUES ($stream_id, 1,"
                         " $version) ON CONFLICT (id) DO UPDATE SET n = counts.n + 1,"
                         " last = excluded.last\"]}}",
                         "counts.json", &err),
                     0);
    /* A first event big enough that the mock's 5 MiB cap drops it alone. */
    big = malloc(first + 64);
    assert_non_null(big);
    memset(big, 'x', first);
    memcpy(big, "{\"pad\":\"", 8);
    memcpy(big + first - 2, "\"}", 3);
    assert_int_equal(append1(log, NULL, "r1", 0, NULL, big), 0);
    assert_int_equal(append1(log, NULL, "r1", 1, NULL, "{}"), 0);
    assert_int_equal(append1(log, NULL, "r1", 2, NULL, "{}"), 0);
    p = partition_of(log, "r1");
    assert_int_equal(es_projection_worker_open(&w, log, proj, turi, NULL), 0);
    memset(&total, 0, sizeof total);
    assert_int_equal(es_projection_worker_run(w, NULL, 1, &total, NULL, NULL), 0);
    assert_int_equal(total.applied, 3);
    es_projection_worker_close(w);
    w = NULL;

    rk = foreign_producer();
    memset(big, 'y', filler);
    big[filler] = '\0';
    for (int i = 0; i < 200 && lo == 0; i++) {
        foreign_send(rk, topic_of(uri), p, "filler", big, (char *)NULL);
        assert_int_equal(rd_kafka_query_watermark_offsets(rk, topic_of(uri), p, &lo,
                                                          &hi, 10000), 0);
    }
    assert_int_equal(lo, 1);
    rd_kafka_destroy(rk);
    free(big);
    assert_int_equal(append1(log, NULL, "r1", 3, NULL, "{}"), 0);

    /* A fresh handle, as a restarted process has. */
    fresh = open_log(uri);
    assert_int_equal(es_projection_worker_open(&w, fresh, proj, turi, NULL), 0);
    memset(&total, 0, sizeof total);
    if (es_projection_worker_run(w, NULL, 1, &total, NULL, NULL) != 0)
        fail_msg("resuming: %s", es_errmsg(w));
    assert_int_equal(total.applied, 1);
    es_projection_worker_close(w);

    assert_int_equal(sqlite3_open(target, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT n, last FROM counts WHERE id = 'r1'",
                                        -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_int64(st, 0);
    assert_int_equal(n, 4);
    assert_int_equal(sqlite3_column_int64(st, 1), 4);
    sqlite3_finalize(st);
    sqlite3_close(db);
    es_projection_free(proj);
    es_log_close(fresh);
    es_log_close(log);
}

/* ---- the property test -------------------------------------------------------- */

#define WRITERS 3
#define COMMITS 40
#define STREAMS 5
#define FOREIGN 120

static const char *const sids[STREAMS] = {"p0", "p1", "p2", "p3", "p4"};

/* One writer process: random commits of 1-3 events with its own ids on
 * shared streams, exact or ANY expected versions from what it last saw.
 * Writes one line per commit to `out`: "ok <id0> <n> <sid> <first_version>
 * <partition> <offset>", "conflict <id0> <n> <sid>", "unknown <id0> <n>
 * <sid>" or "error <id0> <n> <sid> <code>". */
static int writer_proc(const char *uri, int w, unsigned seed, const char *out)
{
    es_log *log = NULL;
    FILE *f = fopen(out, "w");
    int64_t seen[STREAMS] = {0};
    if (f == NULL || es_log_open(&log, uri) != 0)
        return 2;
    srand(seed);
    for (int c = 0; c < COMMITS; c++) {
        int s = rand() % STREAMS, n = 1 + rand() % 3, rc;
        int64_t expected = rand() % 4 == 0 ? ES_EXPECT_ANY : seen[s];
        char ids[3][64];
        es_event evs[3];
        json_t *pl[3];
        es_append_result res;
        memset(evs, 0, sizeof evs);
        for (int i = 0; i < n; i++) {
            snprintf(ids[i], sizeof ids[i], "w%d-c%d-e%d", w, c, i);
            pl[i] = json_pack("{s:i,s:i,s:i}", "w", w, "c", c, "i", i);
            evs[i].type = "Deposited";
            evs[i].payload = pl[i];
            evs[i].id = ids[i];
        }
        rc = es_log_append(log, &res, TYPE, sids[s], expected, evs, (size_t)n);
        for (int i = 0; i < n; i++)
            json_decref(pl[i]);
        if (rc == 0) {
            fprintf(f, "ok %s %d %s %lld %d %lld\n", ids[0], n, sids[s],
                    (long long)res.first_version, (int)res.first.partition,
                    (long long)res.first.offset);
            seen[s] = res.version;
        } else {
            fprintf(f, "%s %s %d %s %d\n",
                    rc == ES_ECONFLICT  ? "conflict"
                    : rc == ES_EUNKNOWN ? "unknown"
                                        : "error",
                    ids[0], n, sids[s], rc);
            if (rc != ES_ECONFLICT)
                fprintf(stderr, "writer %d: %s\n", w, es_errmsg(log));
            /* Where the stream stands now, as a retrying client asks. */
            {
                tally t = {0};
                if (es_log_read_stream(log, TYPE, sids[s], NULL, tally_cb, &t) == 0)
                    seen[s] = t.n;
                tally_free(&t);
            }
        }
        fflush(f);
    }
    fclose(f);
    es_log_close(log);
    return 0;
}

/* Records a foreign producer copies: what a consumer saw so far. */
typedef struct copied {
    char key[64];
    char value[256];
    int has_value;
    int32_t partition;
    int nh;
    char hname[12][32];
    char hval[12][128];
} copied;

static int fetch_some(rd_kafka_t *c, const char *topic, int32_t parts, copied *out,
                      int max)
{
    int n = 0;
    for (int32_t p = 0; p < parts && n < max; p++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(c, topic, NULL);
        rd_kafka_message_t *msgs[64];
        ssize_t got;
        if (rkt == NULL)
            continue;
        if (rd_kafka_consume_start(rkt, p, RD_KAFKA_OFFSET_BEGINNING) != 0) {
            rd_kafka_topic_destroy(rkt);
            continue;
        }
        got = rd_kafka_consume_batch(rkt, p, 500, msgs, 64);
        for (ssize_t i = 0; i < got; i++) {
            rd_kafka_message_t *m = msgs[i];
            rd_kafka_headers_t *hs = NULL;
            if (!m->err && m->key && n < max) {
                copied *cp = &out[n++];
                const char *name;
                const void *v;
                size_t sz;
                memset(cp, 0, sizeof *cp);
                snprintf(cp->key, sizeof cp->key, "%.*s", (int)m->key_len,
                         (const char *)m->key);
                cp->has_value = m->payload != NULL;
                snprintf(cp->value, sizeof cp->value, "%.*s", (int)m->len,
                         m->payload ? (const char *)m->payload : "");
                cp->partition = m->partition;
                if (rd_kafka_message_headers(m, &hs) == 0)
                    for (size_t h = 0; cp->nh < 12 &&
                                       rd_kafka_header_get_all(hs, h, &name, &v, &sz) == 0;
                         h++) {
                        snprintf(cp->hname[cp->nh], 32, "%s", name);
                        snprintf(cp->hval[cp->nh], 128, "%.*s", (int)sz,
                                 v ? (const char *)v : "");
                        cp->nh++;
                    }
            }
            rd_kafka_message_destroy(m);
        }
        rd_kafka_consume_stop(rkt, p);
        rd_kafka_topic_destroy(rkt);
    }
    return n;
}

static void set_header(copied *cp, const char *name, const char *value)
{
    for (int i = 0; i < cp->nh; i++)
        if (strcmp(cp->hname[i], name) == 0) {
            if (value == NULL) {
                memmove(&cp->hname[i], &cp->hname[i + 1], (size_t)(cp->nh - i - 1) * 32);
                memmove(&cp->hval[i], &cp->hval[i + 1], (size_t)(cp->nh - i - 1) * 128);
                cp->nh--;
            } else {
                snprintf(cp->hval[i], 128, "%s", value);
            }
            return;
        }
    if (value && cp->nh < 12) {
        snprintf(cp->hname[cp->nh], 32, "%s", name);
        snprintf(cp->hval[cp->nh], 128, "%s", value);
        cp->nh++;
    }
}

static void send_copied(rd_kafka_t *rk, const char *topic, const copied *cp)
{
    rd_kafka_headers_t *hs = rd_kafka_headers_new(12);
    for (int i = 0; i < cp->nh; i++)
        rd_kafka_header_add(hs, cp->hname[i], -1, cp->hval[i], -1);
    assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                       RD_KAFKA_V_PARTITION(cp->partition),
                                       RD_KAFKA_V_KEY(cp->key, strlen(cp->key)),
                                       RD_KAFKA_V_VALUE((void *)(cp->has_value ? cp->value
                                                                               : NULL),
                                                        cp->has_value ? strlen(cp->value)
                                                                      : 0),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_HEADERS(hs), RD_KAFKA_V_END),
                     0);
}

/* The foreign producer: copies of genuine records, changed at random. */
static int foreign_proc(const char *uri, unsigned seed, int32_t parts)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk = foreign_producer(), *c;
    copied *pool = calloc(256, sizeof *pool);
    int npool = 0;
    char buf[32];
    srand(seed);
    rd_kafka_conf_set(conf, "bootstrap.servers", es_test_kafka_brokers(), err, sizeof err);
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (c == NULL || pool == NULL)
        return 2;
    for (int i = 0; i < FOREIGN; i++) {
        copied cp;
        int kind = rand() % 11;
        if (i % 20 == 0)
            npool = fetch_some(c, topic_of(uri), parts, pool, 256);
        if (npool == 0) {
            usleep(2000);
            continue;
        }
        cp = pool[rand() % npool];
        switch (kind) {
        case 0: /* an exact duplicate of a genuine record */
            break;
        case 1: /* the wrong partition */
            cp.partition = (cp.partition + 1 + rand() % (parts - 1)) % parts;
            break;
        case 2: /* a value that is not a JSON object */
            snprintf(cp.value, sizeof cp.value, "%s", rand() % 2 ? "not json" : "[1]");
            break;
        case 3: /* a tombstone */
            cp.has_value = 0;
            break;
        case 4: /* the next version, forged, in the copied commit */
        case 5: {
            long v = 0;
            for (int h = 0; h < cp.nh; h++)
                if (strcmp(cp.hname[h], "es-version") == 0)
                    v = atol(cp.hval[h]);
            snprintf(buf, sizeof buf, "%ld", v + 1 + rand() % 2);
            set_header(&cp, "es-version", buf);
            snprintf(buf, sizeof buf, "forged-%d", i);
            set_header(&cp, "es-id", buf);
            if (kind == 5)
                set_header(&cp, "es-commit-index", NULL); /* as 0.1.0 wrote */
            break;
        }
        case 6: /* a commit that never completes */
            snprintf(buf, sizeof buf, "never-%d", i);
            set_header(&cp, "es-commit", buf);
            set_header(&cp, "es-commit-size", rand() % 2 ? "1000000" : "3");
            set_header(&cp, "es-commit-index", "0");
            snprintf(buf, sizeof buf, "forged-%d", i);
            set_header(&cp, "es-id", buf);
            break;
        case 7: /* a commit index out of order */
            set_header(&cp, "es-commit-index", rand() % 2 ? "2" : "-1");
            snprintf(buf, sizeof buf, "forged-%d", i);
            set_header(&cp, "es-id", buf);
            break;
        case 8: /* no esfold headers at all (kcat) */
            cp.nh = 0;
            break;
        case 9: /* another stream's key, same headers */
            snprintf(cp.key, sizeof cp.key, "%s", sids[rand() % STREAMS]);
            cp.partition = es_partition_for(cp.key, strlen(cp.key), parts);
            break;
        default: /* a lone event with a version of its own choosing */
            snprintf(buf, sizeof buf, "%d", 1 + rand() % 6);
            set_header(&cp, "es-version", buf);
            set_header(&cp, "es-commit", NULL);
            set_header(&cp, "es-commit-size", NULL);
            set_header(&cp, "es-commit-index", NULL);
            snprintf(buf, sizeof buf, "forged-%d", i);
            set_header(&cp, "es-id", buf);
            break;
        }
        send_copied(rk, topic_of(uri), &cp);
        if (rand() % 4 == 0)
            rd_kafka_flush(rk, 10000);
        usleep((useconds_t)(rand() % 3000));
    }
    rd_kafka_flush(rk, 10000);
    rd_kafka_destroy(rk);
    rd_kafka_destroy(c);
    free(pool);
    return 0;
}

/* The state of each stream at a checkpoint: its last event's version
 * and commit, as a projection keeps them. */
typedef struct seeds {
    char sid[16][32];
    int64_t v[16];
    char commit[16][64];
    int32_t size[16], index[16];
    int n, calls;
} seeds;

static int seed_slot(seeds *s, const char *sid)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->sid[i], sid) == 0)
            return i;
    assert_true(s->n < 16);
    memset(&s->commit[s->n], 0, sizeof s->commit[0]);
    snprintf(s->sid[s->n], sizeof s->sid[0], "%s", sid);
    s->v[s->n] = s->size[s->n] = s->index[s->n] = 0;
    return s->n++;
}

static int seed_from(es_stream_seed *out, const char *sid, void *ud)
{
    seeds *s = ud;
    int i = seed_slot(s, sid);
    s->calls++;
    out->version = s->v[i];
    out->commit_id = s->commit[i][0] ? s->commit[i] : NULL;
    out->commit_size = s->size[i];
    out->commit_index = s->index[i];
    return 0;
}

static int count_version(const es_event *ev, void *ud)
{
    seeds *s = ud;
    int i = seed_slot(s, ev->stream_id);
    s->v[i] = ev->version;
    snprintf(s->commit[i], sizeof s->commit[0], "%s", ev->commit_id ? ev->commit_id : "");
    s->size[i] = ev->commit_size;
    s->index[i] = ev->commit_index;
    return 0;
}

static void check_partition_readers(const char *uri, int32_t p, const tally *expect,
                                    unsigned seed)
{
    es_log *log = open_log(uri);
    tally whole = {0};
    int64_t next = 0, ck = 0;
    verdicts vs;
    srand(seed);
    /* From the beginning, in batches of random sizes. */
    for (;;) {
        int64_t before = next;
        assert_int_equal(es_log_read_partition(log, &next, TYPE, p, next,
                                               (size_t)(1 + rand() % 7), tally_cb,
                                               &whole), 0);
        if (next == before)
            break;
    }
    assert_string_equal(tally_text(&whole), tally_text(expect));
    /* verify counts the same events. */
    scan(log, p, &vs);
    assert_int_equal(vs.accepted, whole.n);
    es_log_close(log);

    /* Resumed at checkpoints in fresh handles, seeded with the versions at
     * each checkpoint: exactly what remains. */
    for (int round = 0; round < 4; round++) {
        es_log *first = open_log(uri), *resumed;
        seeds at;
        tally head = {0}, rest = {0};
        size_t take = (size_t)(rand() % (whole.n + 1));
        memset(&at, 0, sizeof at);
        ck = 0;
        if (take)
            assert_int_equal(es_log_read_partition(first, &ck, TYPE, p, 0, take,
                                                   tally_cb, &head), 0);
        /* The versions each stream had there. */
        {
            es_log *v = open_log(uri);
            int64_t n2;
            if (take)
                assert_int_equal(es_log_read_partition(v, &n2, TYPE, p, 0, take,
                                                       count_version, &at), 0);
            es_log_close(v);
        }
        resumed = open_log(uri);
        assert_int_equal(es_log_read_partition_seeded(resumed, &next, TYPE, p, ck, 0,
                                                      seed_from, &at, tally_cb, &rest),
                         0);
        {
            size_t hl = head.len;
            assert_true(strncmp(tally_text(expect), tally_text(&head), hl) == 0);
            assert_string_equal(tally_text(expect) + hl, tally_text(&rest));
        }
        tally_free(&head);
        tally_free(&rest);
        es_log_close(first);
        es_log_close(resumed);
    }
    tally_free(&whole);
}

/* Every accepted event, by partition, from the folds of every stream. */
static void check_folds(es_log *log)
{
    for (int s = 0; s < STREAMS; s++) {
        tally origin = {0};
        const char *p;
        assert_int_equal(read_stream(log, &origin, sids[s]), 0);
        /* Seeded at every snapshot position (each accepted event): the
         * rest of the stream, the same as from origin. */
        p = tally_text(&origin);
        for (int64_t v = 1; v <= origin.n; v++) {
            tally seeded = {0}, self = {0};
            es_read_options o = ES_READ_OPTIONS_INIT;
            const char *at = p, *after;
            long long off;
            int part_at;
            /* p: "sid:v@part/off=id " entries in version order */
            for (int64_t k = 1; k < v; k++)
                at = strchr(at, ' ') + 1;
            after = strchr(at, ' ') + 1;
            assert_int_equal(sscanf(strchr(at, '@') + 1, "%d/%lld", &part_at, &off), 2);
            o.start.partition = part_at;
            o.start.offset = off;
            o.from_version = v + 1;
            assert_int_equal(es_log_read_stream(log, TYPE, sids[s], &o, tally_cb,
                                                &seeded), 0);
            assert_string_equal(tally_text(&seeded), after);
            o.from_version = v;
            assert_int_equal(es_log_read_stream(log, TYPE, sids[s], &o, tally_cb,
                                                &self), 0);
            assert_string_equal(tally_text(&self), at);
            tally_free(&seeded);
            tally_free(&self);
        }
        tally_free(&origin);
    }
}

/* The accepted events of every stream, sorted by offset below. */typedef struct all_events {
    es_event *ev[4096];
    size_t n;
} all_events;

static int keep_event(const es_event *ev, void *ud)
{
    all_events *a = ud;
    assert_true(a->n < 4096);
    assert_int_equal(es_event_copy(&a->ev[a->n++], ev), 0);
    return 0;
}

static int by_offset(const void *x, const void *y)
{
    const es_event *a = *(es_event *const *)x, *b = *(es_event *const *)y;
    return a->position.offset < b->position.offset ? -1
           : a->position.offset > b->position.offset ? 1
                                                     : 0;
}

static const es_event *find_id(const all_events *a, const char *id)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->ev[i]->id, id) == 0)
            return a->ev[i];
    return NULL;
}

static void test_property_every_reader_agrees(void **state)
{
    const char *uri = es_test_kafka_uri(NULL);
    es_log *log = open_log(uri);
    unsigned seed = (unsigned)(getenv("ESFOLD_PROPERTY_SEED")
                                   ? strtoul(getenv("ESFOLD_PROPERTY_SEED"), NULL, 10)
                                   : (unsigned)getpid() * 2654435761u);
    pid_t pids[WRITERS + 1];
    char outs[WRITERS][512];
    int32_t parts;
    all_events all = {{0}, 0};
    int oks = 0, conflicts = 0, unknowns = 0;
    (void)state;

    fprintf(stderr, "property test seed %u (ESFOLD_PROPERTY_SEED=%u reruns it)\n",
            seed, seed);
    genuine(log, "p-start", 1); /* the topic exists */
    parts = partitions(log);
    for (int w = 0; w < WRITERS; w++) {
        snprintf(outs[w], sizeof outs[w], "%s", es_test_path("writer.out"));
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0)
            _exit(writer_proc(uri, w, seed + (unsigned)w * 7919u, outs[w]));
    }
    pids[WRITERS] = fork();
    assert_true(pids[WRITERS] >= 0);
    if (pids[WRITERS] == 0)
        _exit(foreign_proc(uri, seed ^ 0x5bd1e995u, parts));
    for (int w = 0; w <= WRITERS; w++) {
        int status;
        assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }

    /* A commit opened by a forged record and never completed holds its
     * partition's readers back at the head (they wait: there may be more
     * to come), while folds of other streams go on. One more event of
     * every stream settles any such commit, as the stream's next commit
     * does in life. */
    for (int s = 0; s < STREAMS; s++)
        assert_int_equal(append1(log, NULL, sids[s], ES_EXPECT_ANY, NULL, "{}"), 0);
    assert_int_equal(append1(log, NULL, "p-start", ES_EXPECT_ANY, NULL, "{}"), 0);

    /* The folds from origin and seeded at every snapshot position. */
    check_folds(log);
    for (int s = 0; s < STREAMS; s++)
        assert_int_equal(es_log_read_stream(log, TYPE, sids[s], NULL, keep_event, &all),
                         0);
    assert_int_equal(es_log_read_stream(log, TYPE, "p-start", NULL, keep_event, &all),
                     0);
    qsort(all.ev, all.n, sizeof *all.ev, by_offset);

    /* Every partition reader and verify count exactly those. */
    for (int32_t p = 0; p < parts; p++) {
        tally expect = {0};
        for (size_t i = 0; i < all.n; i++)
            if (all.ev[i]->position.partition == p)
                tally_add(&expect, all.ev[i]);
        check_partition_readers(uri, p, &expect, seed + (unsigned)p);
        tally_free(&expect);
    }

    /* The writers' confirmations: "appended" is counted by all, with its
     * versions and position; "conflict" by none; "unknown" one way. */
    for (int w = 0; w < WRITERS; w++) {
        FILE *f = fopen(outs[w], "r");
        char line[512], what[16], id0[64], sid[32];
        int n;
        assert_non_null(f);
        while (fgets(line, sizeof line, f)) {
            long long fv = 0, off = 0;
            int part = 0;
            const es_event *e;
            assert_true(sscanf(line, "%15s %63s %d %31s %lld %d %lld", what, id0, &n,
                               sid, &fv, &part, &off) >= 4);
            e = find_id(&all, id0);
            if (strcmp(what, "ok") == 0) {
                oks++;
                assert_non_null(e);
                assert_string_equal(e->stream_id, sid);
                assert_int_equal(e->version, fv);
                assert_int_equal(e->position.partition, part);
                assert_int_equal(e->position.offset, off);
                for (int i = 1; i < n; i++) {
                    char idi[80];
                    const es_event *ei;
                    snprintf(idi, sizeof idi, "%.*s%d", (int)(strlen(id0) - 1), id0, i);
                    ei = find_id(&all, idi);
                    assert_non_null(ei);
                    assert_int_equal(ei->version, fv + i);
                }
            } else if (strcmp(what, "conflict") == 0) {
                conflicts++;
                assert_null(e);
            } else if (strcmp(what, "unknown") == 0) {
                /* Settled one way for every reader: all of it or none. */
                int have = 0;
                for (int i = 0; i < n; i++) {
                    char idi[80];
                    snprintf(idi, sizeof idi, "%.*s%d", (int)(strlen(id0) - 1), id0, i);
                    have += find_id(&all, idi) != NULL;
                }
                assert_true(have == 0 || have == n);
                unknowns++;
            } else {
                /* The broker is healthy here: nothing else may fail. */
                fprintf(stderr, "writer %d: %s", w, line);
                assert_string_equal(what, "conflict");
            }
        }
        fclose(f);
    }
    fprintf(stderr, "property test: %d appended, %d conflicts, %d unknown, %zu "
                    "events counted by every reader\n",
            oks, conflicts, unknowns, all.n);
    assert_true(oks > 0);
    for (size_t i = 0; i < all.n; i++)
        es_event_free(all.ev[i]);
    es_log_close(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seeded_load_agrees_with_origin),
        cmocka_unit_test(test_bad_value_is_rejected_by_all),
        cmocka_unit_test(test_gap_record_does_not_break_a_stream),
        cmocka_unit_test(test_lost_first_record_is_truncation),
        cmocka_unit_test(test_wrong_partition_is_rejected),
        cmocka_unit_test(test_changed_partition_count_is_refused),
        cmocka_unit_test(test_commit_that_never_completes),
        cmocka_unit_test(test_same_commit_twice_at_once),
        cmocka_unit_test(test_projection_resumes_without_rescan),
        cmocka_unit_test(test_property_every_reader_agrees),
    };
    return cmocka_run_group_tests_name("agreement", tests, NULL, NULL);
}

/*
 * tests/test_event.c - core/event.c and core/uuid.c: heap events (new, copy,
 * free, set_str), the envelope rules of es_event_validate, and UUIDv7 ids.
 */
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static void test_new(void **state)
{
    json_t *payload = json_pack("{s:i}", "amount", 5);
    es_event *ev = NULL;
    (void)state;
    assert_int_equal(es_event_new(&ev, "Deposited", payload), 0);
    assert_non_null(ev);
    assert_string_equal(ev->type, "Deposited");
    assert_true(ev->payload == payload); /* referenced, not copied */
    assert_int_equal(payload->refcount, 2);
    assert_int_equal(ev->schema, 1);
    assert_int_equal(ev->version, 0);
    assert_true(ev->position.offset == -1);
    assert_null(ev->stream_id);
    assert_null(ev->aggregate_type);
    assert_null(ev->id);
    assert_null(ev->meta);
    assert_null(ev->commit_id);
    es_event_free(ev);
    assert_int_equal(payload->refcount, 1);

    /* the type is a copy: the caller's buffer may change */
    {
        char type[16] = "Opened";
        assert_int_equal(es_event_new(&ev, type, payload), 0);
        strcpy(type, "Changed");
        assert_string_equal(ev->type, "Opened");
        es_event_free(ev);
    }
    /* no type and no payload are allowed (validate judges them) */
    assert_int_equal(es_event_new(&ev, NULL, NULL), 0);
    assert_null(ev->type);
    assert_null(ev->payload);
    es_event_free(ev);
    assert_int_equal(es_event_new(NULL, "X", payload), ES_EINVAL);
    json_decref(payload);
    es_event_free(NULL);
}

static void test_copy(void **state)
{
    json_t *payload = json_pack("{s:s}", "owner", "Ada");
    json_t *meta = json_pack("{s:s}", "ip", "10.0.0.1");
    es_event src = {
        .aggregate_type = "account",
        .stream_id = "acct-42",
        .type = "AccountOpened",
        .version = 3,
        .occurred_us = 1772359200000001,
        .schema = 2,
        .id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        .correlation_id = "corr-1",
        .causation_id = "cause-1",
        .payload = payload,
        .meta = meta,
        .position = {3, 17},
        .commit_id = "commit-1",
        .commit_size = 2,
    };
    es_event *ev = NULL, *ev2 = NULL;
    (void)state;
    assert_int_equal(es_event_copy(&ev, &src), 0);
#define SAME_STR(f) \
    do { \
        assert_string_equal(ev->f, src.f); \
        assert_true(ev->f != src.f); \
    } while (0)
    SAME_STR(aggregate_type);
    SAME_STR(stream_id);
    SAME_STR(type);
    SAME_STR(id);
    SAME_STR(correlation_id);
    SAME_STR(causation_id);
    SAME_STR(commit_id);
#undef SAME_STR
    assert_true(ev->version == 3);
    assert_true(ev->occurred_us == 1772359200000001);
    assert_int_equal(ev->schema, 2);
    assert_int_equal(ev->position.partition, 3);
    assert_true(ev->position.offset == 17);
    assert_int_equal(ev->commit_size, 2);
    assert_true(ev->payload == payload && ev->meta == meta);
    assert_int_equal(payload->refcount, 2);
    assert_int_equal(meta->refcount, 2);

    /* a copy of a copy, then free in any order */
    assert_int_equal(es_event_copy(&ev2, ev), 0);
    es_event_free(ev);
    assert_string_equal(ev2->stream_id, "acct-42");
    assert_int_equal(payload->refcount, 2);
    es_event_free(ev2);
    assert_int_equal(payload->refcount, 1);
    assert_int_equal(meta->refcount, 1);

    /* NULL fields stay NULL */
    {
        es_event bare = {.type = "X"};
        assert_int_equal(es_event_copy(&ev, &bare), 0);
        assert_null(ev->stream_id);
        assert_null(ev->payload);
        assert_null(ev->commit_id);
        es_event_free(ev);
    }
    assert_int_equal(es_event_copy(NULL, &src), ES_EINVAL);
    ev = (es_event *)&src; /* must be reset to NULL on failure */
    assert_int_equal(es_event_copy(&ev, NULL), ES_EINVAL);
    json_decref(payload);
    json_decref(meta);
}

static void test_set_str(void **state)
{
    es_event *ev = NULL;
    char value[16] = "corr-1";
    (void)state;
    assert_int_equal(es_event_new(&ev, "X", NULL), 0);
    assert_int_equal(es_event_set_str(ev, &ev->correlation_id, value), 0);
    strcpy(value, "changed");
    assert_string_equal(ev->correlation_id, "corr-1");
    assert_int_equal(es_event_set_str(ev, &ev->correlation_id, "corr-2"), 0);
    assert_string_equal(ev->correlation_id, "corr-2");
    assert_int_equal(es_event_set_str(ev, &ev->type, "Y"), 0);
    assert_string_equal(ev->type, "Y");
    assert_int_equal(es_event_set_str(ev, &ev->stream_id, "s"), 0);
    assert_int_equal(es_event_set_str(ev, &ev->aggregate_type, "account"), 0);
    assert_int_equal(es_event_set_str(ev, &ev->id, "some-id"), 0);
    assert_int_equal(es_event_set_str(ev, &ev->causation_id, "c"), 0);
    assert_int_equal(es_event_set_str(ev, &ev->commit_id, "k"), 0);
    /* NULL clears */
    assert_int_equal(es_event_set_str(ev, &ev->correlation_id, NULL), 0);
    assert_null(ev->correlation_id);
    assert_int_equal(es_event_set_str(NULL, &ev->type, "Z"), ES_EINVAL);
    assert_int_equal(es_event_set_str(ev, NULL, "Z"), ES_EINVAL);
    assert_string_equal(ev->type, "Y");
    es_event_free(ev); /* frees every string set above (ASan checks) */
}

/* validate fails with ES_EINVAL and err.text containing needle */
static void invalid(const es_event *ev, int require_version, const char *needle)
{
    es_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(es_event_validate(ev, require_version, &err), ES_EINVAL);
    assert_contains(err.text, needle);
}

static void valid(const es_event *ev, int require_version)
{
    es_error err;
    memset(&err, 0, sizeof err);
    if (es_event_validate(ev, require_version, &err) != 0)
        print_error("unexpectedly invalid: %s\n", err.text);
    assert_int_equal(es_event_validate(ev, require_version, &err), 0);
}

static void test_validate(void **state)
{
    json_t *obj = json_object(), *arr = json_array(), *null = json_null();
    char s255[256], s256[257];
    es_event ev;
    (void)state;
    memset(s255, 'x', 255);
    s255[255] = '\0';
    memset(s256, 'x', 256);
    s256[256] = '\0';

#define RESET() \
    do { \
        memset(&ev, 0, sizeof ev); \
        ev.aggregate_type = "account"; \
        ev.stream_id = "acct-42"; \
        ev.type = "Deposited"; \
        ev.version = 1; \
        ev.schema = 1; \
        ev.payload = obj; \
    } while (0)

    RESET();
    valid(&ev, 1);
    invalid(NULL, 0, "no event");
    assert_int_equal(es_event_validate(NULL, 0, NULL), ES_EINVAL);

    /* stream id */
    RESET(); ev.stream_id = "";
    invalid(&ev, 0, "stream id is empty");
    RESET(); ev.stream_id = s256;
    invalid(&ev, 0, "stream id is 256 bytes long, the limit is 255");
    RESET(); ev.stream_id = s255;
    valid(&ev, 1);
    RESET(); ev.stream_id = "acct\n42";
    invalid(&ev, 0, "stream id contains a control character at byte 4");
    RESET(); ev.stream_id = "\tacct";
    invalid(&ev, 0, "stream id contains a control character at byte 0");
    RESET(); ev.stream_id = "acct\x7f";
    invalid(&ev, 0, "stream id contains a control character at byte 4");
    RESET(); ev.stream_id = "konto-\xc3\xbc \xe2\x82\xac"; /* UTF-8 is fine */
    valid(&ev, 1);
    RESET(); ev.stream_id = NULL; /* on input the log assigns it */
    valid(&ev, 0);

    /* aggregate type */
    RESET(); ev.aggregate_type = "";
    invalid(&ev, 0, "aggregate type is empty");
    RESET(); ev.aggregate_type = s256;
    invalid(&ev, 0, "aggregate type is 256 bytes long");
    RESET(); ev.aggregate_type = "bank\raccount";
    invalid(&ev, 0, "aggregate type contains a control character at byte 4");

    /* event type: required */
    RESET(); ev.type = NULL;
    invalid(&ev, 0, "event type is empty");
    RESET(); ev.type = "";
    invalid(&ev, 0, "event type is empty");
    RESET(); ev.type = s256;
    invalid(&ev, 0, "event type is 256 bytes long, the limit is 255");
    RESET(); ev.type = s255;
    valid(&ev, 1);
    RESET(); ev.type = "Depo\x01sited";
    invalid(&ev, 0, "event type contains a control character at byte 4");

    /* event id */
    RESET(); ev.id = "";
    invalid(&ev, 0, "event id is empty");
    RESET(); ev.id = s256;
    invalid(&ev, 0, "event id is 256 bytes long");
    RESET(); ev.id = "id\n";
    invalid(&ev, 0, "event id contains a control character at byte 2");

    /* version: only when required */
    RESET(); ev.version = 0;
    invalid(&ev, 1, "version is 0, versions start at 1");
    valid(&ev, 0);
    RESET(); ev.version = -5;
    invalid(&ev, 1, "version is -5");

    /* schema */
    RESET(); ev.schema = -1;
    invalid(&ev, 0, "schema is -1, schemas start at 1");
    RESET(); ev.schema = 0;
    invalid(&ev, 1, "schema is 0");
    valid(&ev, 0); /* 0 on input means 1 */

    /* payload */
    RESET(); ev.payload = NULL;
    invalid(&ev, 0, "event 'Deposited' has no payload");
    RESET(); ev.payload = arr;
    invalid(&ev, 0, "payload of event 'Deposited' is not a JSON object");
    RESET(); ev.payload = null;
    invalid(&ev, 0, "payload of event 'Deposited' is not a JSON object");

    /* meta */
    RESET(); ev.meta = arr;
    invalid(&ev, 0, "metadata of event 'Deposited' is not a JSON object");
    RESET(); ev.meta = obj;
    valid(&ev, 1);
    RESET(); ev.meta = null; /* JSON null is no metadata */
    valid(&ev, 1);
#undef RESET

    json_decref(obj);
    json_decref(arr);
    json_decref(null);
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* The layout of RFC 9562: 8-4-4-4-12 lower-case hex, version 7, variant
 * 10xx, and the first 48 bits the Unix time in milliseconds. */
static void check_uuid_format(const char *id, int64_t now_ms)
{
    unsigned long long ms = 0;
    assert_int_equal(strlen(id), ES_ID_LEN);
    for (int i = 0; i < ES_ID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(id[i], '-');
        else
            assert_true(is_hex(id[i]));
    }
    assert_int_equal(id[14], '7');            /* version nibble */
    assert_non_null(strchr("89ab", id[19]));  /* variant 10xx */
    for (int i = 0; i < 13; i++)
        if (id[i] != '-')
            ms = ms * 16 + (unsigned long long)(id[i] <= '9' ? id[i] - '0' : id[i] - 'a' + 10);
    /* within a minute of now (the counter may borrow a few ms ahead) */
    assert_true((int64_t)ms > now_ms - 60000 && (int64_t)ms < now_ms + 60000);
}

static void test_uuid_v7(void **state)
{
    enum { N = 10000 };
    static char ids[N][ES_UUID_BUFSZ];
    int64_t now_ms = es_time_now_us() / 1000;
    (void)state;
    for (int i = 0; i < N; i++) {
        assert_int_equal(es_uuid_v7(ids[i]), 0);
        check_uuid_format(ids[i], now_ms);
        /* strictly increasing, so all unique */
        if (i > 0 && strcmp(ids[i - 1], ids[i]) >= 0)
            print_error("id %d %s is not after %s\n", i, ids[i], ids[i - 1]);
        if (i > 0)
            assert_true(strcmp(ids[i - 1], ids[i]) < 0);
    }
    /* the random part differs (74 random bits: a repeat means no randomness) */
    assert_string_not_equal(ids[0] + 24, ids[1] + 24);
}

typedef struct uuid_batch {
    char (*ids)[ES_UUID_BUFSZ];
    int n;
    int failed;
} uuid_batch;

static void *make_ids(void *arg)
{
    uuid_batch *b = arg;
    for (int i = 0; i < b->n; i++) {
        if (es_uuid_v7(b->ids[i]) != 0 || (i > 0 && strcmp(b->ids[i - 1], b->ids[i]) >= 0))
            b->failed = 1;
    }
    return NULL;
}

static int cmp_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Threads share the counter: ids stay unique and each thread's increase. */
static void test_uuid_v7_threads(void **state)
{
    enum { T = 4, N = 5000 };
    static char ids[T * N][ES_UUID_BUFSZ];
    pthread_t th[T];
    uuid_batch b[T];
    (void)state;
    for (int t = 0; t < T; t++) {
        b[t].ids = ids + t * N;
        b[t].n = N;
        b[t].failed = 0;
        assert_int_equal(pthread_create(&th[t], NULL, make_ids, &b[t]), 0);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        assert_false(b[t].failed);
    }
    qsort(ids, T * N, ES_UUID_BUFSZ, cmp_ids);
    for (int i = 1; i < T * N; i++)
        assert_true(strcmp(ids[i - 1], ids[i]) < 0);
}

/* A forked child makes other ids than its parent, although it starts with
 * the parent's clock state (and any random bytes the parent held). */
static void test_uuid_v7_fork(void **state)
{
    enum { N = 200 };
    static char mine[N][ES_UUID_BUFSZ], theirs[N][ES_UUID_BUFSZ];
    char warm[ES_UUID_BUFSZ];
    int fds[2], status;
    pid_t pid;
    (void)state;
    assert_int_equal(es_uuid_v7(warm), 0); /* the parent has state to share */
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        for (int i = 0; i < N; i++) {
            if (es_uuid_v7(mine[i]) != 0 ||
                write(fds[1], mine[i], ES_UUID_BUFSZ) != ES_UUID_BUFSZ)
                _exit(1);
        }
        _exit(0);
    }
    close(fds[1]);
    for (int i = 0; i < N; i++)
        assert_int_equal(es_uuid_v7(mine[i]), 0);
    for (int i = 0; i < N; i++) {
        size_t got = 0;
        while (got < ES_UUID_BUFSZ) {
            ssize_t r = read(fds[0], theirs[i] + got, ES_UUID_BUFSZ - got);
            assert_true(r > 0);
            got += (size_t)r;
        }
    }
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    for (int i = 0; i < N; i++) {
        check_uuid_format(theirs[i], es_time_now_us() / 1000);
        /* not even the random part (the last 48 bits) repeats: a child
         * that reused its parent's random bytes would make ids that differ
         * only where the millisecond differs */
        for (int j = 0; j < N; j++)
            assert_string_not_equal(mine[i] + 24, theirs[j] + 24);
    }
}

/* es_free and the allocator hook: NULL is harmless, and NULL restores. */
static size_t counted;
static void *counting_malloc(size_t n)
{
    counted++;
    return malloc(n);
}

static void test_allocator(void **state)
{
    es_event *ev = NULL;
    json_t *p;
    (void)state;
    es_free(NULL);
    es_set_allocator(counting_malloc, free);
    p = json_object(); /* jansson goes through the hook too */
    assert_int_equal(es_event_new(&ev, "X", p), 0);
    assert_true(counted >= 3); /* the object, the event, its type */
    es_event_free(ev);
    json_decref(p);
    es_set_allocator(NULL, NULL);
    counted = 0;
    assert_int_equal(es_event_new(&ev, "X", NULL), 0);
    es_event_free(ev);
    assert_int_equal(counted, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_set_str),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_uuid_v7),
        cmocka_unit_test(test_uuid_v7_threads),
        cmocka_unit_test(test_uuid_v7_fork),
        cmocka_unit_test(test_allocator),
    };
    return cmocka_run_group_tests_name("event", tests, NULL, NULL);
}

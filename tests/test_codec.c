/*
 * tests/test_codec.c - core/codec.c: the JSON form of the event envelope.
 * A full envelope survives encode + decode field for field; every malformed
 * input is ES_EINVAL with a message that names the field.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static void str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        assert_true(a == b);
    else
        assert_string_equal(a, b);
}

/* Every field of the envelope is equal. */
static void assert_same_event(const es_event *a, const es_event *b)
{
    str_eq(a->aggregate_type, b->aggregate_type);
    str_eq(a->stream_id, b->stream_id);
    str_eq(a->type, b->type);
    assert_true(a->version == b->version);
    assert_true(a->occurred_us == b->occurred_us);
    assert_int_equal(a->schema, b->schema);
    str_eq(a->id, b->id);
    str_eq(a->correlation_id, b->correlation_id);
    str_eq(a->causation_id, b->causation_id);
    assert_true(json_equal(a->payload, b->payload));
    if (a->meta == NULL || b->meta == NULL)
        assert_true(a->meta == b->meta);
    else
        assert_true(json_equal(a->meta, b->meta));
    assert_int_equal(a->position.partition, b->position.partition);
    assert_true(a->position.offset == b->position.offset);
    str_eq(a->commit_id, b->commit_id);
    assert_int_equal(a->commit_size, b->commit_size);
    if (a->commit_id)
        assert_int_equal(a->commit_index, b->commit_index);
}

static es_event *decode_ok(const char *text)
{
    es_event *ev = NULL;
    es_error err;
    memset(&err, 0, sizeof err);
    if (es_event_decode(&ev, text, strlen(text), &err) != 0)
        print_error("decoding %s: %s\n", text, err.text);
    assert_non_null(ev);
    return ev;
}

/* Decoding text fails with ES_EINVAL and a message containing needle. */
static void decode_bad(const char *text, const char *needle)
{
    es_event *ev = (es_event *)&ev; /* must come back NULL */
    es_error err;
    memset(&err, 0, sizeof err);
    if (es_event_decode(&ev, text, strlen(text), &err) != ES_EINVAL)
        print_error("decoding %s: expected ES_EINVAL\n", text);
    assert_null(ev);
    assert_contains(err.text, needle);
}

static void test_round_trip_full(void **state)
{
    json_t *payload = json_pack("{s:s,s:I,s:[i,i],s:{s:b},s:f,s:n}", "owner",
                                "Ada \xc3\xa9\xe2\x82\xac", "amount",
                                (json_int_t)9007199254740993, "list", 1, 2,
                                "nested", "ok", 1, "rate", 0.25, "nothing");
    json_t *meta = json_pack("{s:s,s:i}", "ip", "10.0.0.1", "attempt", 2);
    es_event ev = {
        .aggregate_type = "account",
        .stream_id = "acct-42 \"quoted\" \\ /",
        .type = "AccountOpened",
        .version = 3,
        .occurred_us = INT64_C(1772359200000001),
        .schema = 7,
        .id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        .correlation_id = "corr-1",
        .causation_id = "cause-1",
        .payload = payload,
        .meta = meta,
        .position = {5, INT64_C(123456789012)},
        .commit_id = "0190a1b2-c3d4-7e5f-8a9b-000000000001",
        .commit_size = 3,
        .commit_index = 2,
    };
    char *text = NULL, *text2 = NULL;
    es_event *back = NULL;
    es_error err;
    (void)state;

    assert_int_equal(es_event_encode(&text, &ev), 0);
    assert_non_null(text);
    /* the documented shape, in order, compact */
    assert_contains(text, "{\"aggregate_type\":\"account\",\"stream_id\":");
    assert_contains(text, "\"version\":3,\"occurred_at\":\"2026-03-01T10:00:00.000001Z\","
                          "\"occurred_us\":1772359200000001,\"schema\":7,");
    assert_contains(text, "\"position\":{\"partition\":5,\"offset\":123456789012}");
    assert_contains(text, "\"commit\":{\"id\":\"0190a1b2-c3d4-7e5f-8a9b-000000000001\",\"size\":3,"
                          "\"index\":2}");
    assert_null(strchr(text, '\n'));

    assert_int_equal(es_event_decode(&back, text, strlen(text), &err), 0);
    assert_same_event(&ev, back);
    /* the decoded event owns its data: the text can go */
    assert_true(back->payload != payload);
    es_free(text);
    assert_string_equal(json_string_value(json_object_get(back->payload, "owner")),
                        "Ada \xc3\xa9\xe2\x82\xac");
    /* and encodes to the same text again */
    assert_int_equal(es_event_encode(&text, back), 0);
    assert_int_equal(es_event_encode(&text2, &ev), 0);
    assert_string_equal(text, text2);
    es_free(text);
    es_free(text2);
    es_event_free(back);

    /* through json_t as well */
    {
        json_t *j = es_event_to_json(&ev);
        assert_non_null(j);
        assert_int_equal(es_event_from_json(&back, j, &err), 0);
        assert_same_event(&ev, back);
        json_decref(j);
        es_event_free(back);
    }
    json_decref(payload);
    json_decref(meta);
}

static void test_round_trip_sparse(void **state)
{
    json_t *payload = json_object();
    /* optional fields absent: nulls in JSON, NULL again after decoding */
    es_event ev = {
        .stream_id = "s", .type = "T", .version = 1, .schema = 1,
        .id = "id-1", .payload = payload, .position = {0, -1},
        .occurred_us = -1, /* before 1970 */
    };
    char *text = NULL;
    es_event *back = NULL;
    es_error err;
    (void)state;
    assert_int_equal(es_event_encode(&text, &ev), 0);
    assert_contains(text, "\"aggregate_type\":null");
    assert_contains(text, "\"correlation_id\":null,\"causation_id\":null");
    assert_contains(text, "\"meta\":null");
    assert_contains(text, "\"occurred_at\":\"1969-12-31T23:59:59.999999Z\"");
    assert_null(strstr(text, "\"commit\""));
    /* an event not in the log yet (offset -1) has no position */
    assert_contains(text, "\"position\":null");
    assert_int_equal(es_event_decode(&back, text, strlen(text), &err), 0);
    assert_same_event(&ev, back);
    es_event_free(back);
    es_free(text);

    ev.position.offset = 0;
    assert_int_equal(es_event_encode(&text, &ev), 0);
    assert_contains(text, "\"position\":{\"partition\":0,\"offset\":0}");
    assert_int_equal(es_event_decode(&back, text, strlen(text), &err), 0);
    assert_same_event(&ev, back);
    es_free(text);
    es_event_free(back);
    json_decref(payload);
}

static void test_decode_minimal(void **state)
{
    es_event *ev;
    (void)state;
    ev = decode_ok("{\"stream_id\":\"s\",\"type\":\"T\",\"id\":\"i\",\"version\":1,\"data\":{}}");
    assert_string_equal(ev->stream_id, "s");
    assert_null(ev->aggregate_type);
    assert_int_equal(ev->schema, 1); /* default */
    assert_true(ev->occurred_us == 0);
    assert_true(ev->position.offset == -1); /* no position */
    assert_null(ev->meta);
    assert_null(ev->commit_id);
    assert_int_equal(ev->commit_size, 0);
    es_event_free(ev);

    /* occurred_at alone, with an offset */
    ev = decode_ok("{\"stream_id\":\"s\",\"type\":\"T\",\"id\":\"i\",\"version\":2,"
                   "\"occurred_at\":\"2026-03-01T11:00:00.5+01:00\",\"data\":{},"
                   "\"meta\":null,\"position\":null,\"commit\":null}");
    assert_true(ev->occurred_us == INT64_C(1772359200500000));
    es_event_free(ev);
    /* a null occurred_us next to occurred_at counts as absent */
    ev = decode_ok("{\"stream_id\":\"s\",\"type\":\"T\",\"id\":\"i\",\"version\":2,"
                   "\"occurred_at\":\"2026-03-01T10:00:00Z\",\"occurred_us\":null,"
                   "\"data\":{}}");
    assert_true(ev->occurred_us == INT64_C(1772359200000000));
    es_event_free(ev);
    /* both, agreeing */
    ev = decode_ok("{\"stream_id\":\"s\",\"type\":\"T\",\"id\":\"i\",\"version\":2,"
                   "\"occurred_at\":\"2026-03-01T10:00:00Z\","
                   "\"occurred_us\":1772359200000000,\"data\":{}}");
    assert_true(ev->occurred_us == INT64_C(1772359200000000));
    es_event_free(ev);
    /* occurred_us alone */
    ev = decode_ok("{\"stream_id\":\"s\",\"type\":\"T\",\"id\":\"i\",\"version\":2,"
                   "\"occurred_us\":-5,\"data\":{}}");
    assert_true(ev->occurred_us == -5);
    es_event_free(ev);
    /* unknown members are ignored (newer writers may add some) */
    ev = decode_ok("{\"stream_id\":\"s\",\"type\":\"T\",\"id\":\"i\",\"version\":1,"
                   "\"data\":{\"a\":1},\"future\":[1,2,3]}");
    assert_int_equal(json_integer_value(json_object_get(ev->payload, "a")), 1);
    es_event_free(ev);
}

/* Only len bytes are read: the text need not be NUL-terminated. */
static void test_decode_len(void **state)
{
    static const char text[] =
        "{\"stream_id\":\"s\",\"type\":\"T\",\"id\":\"i\",\"version\":1,\"data\":{}}GARBAGE";
    char *copy = malloc(sizeof text - 8);
    es_event *ev = NULL;
    es_error err;
    (void)state;
    assert_non_null(copy);
    memcpy(copy, text, sizeof text - 8); /* no NUL: ASan catches an overread */
    assert_int_equal(es_event_decode(&ev, copy, sizeof text - 8, &err), 0);
    assert_string_equal(ev->type, "T");
    es_event_free(ev);
    assert_int_equal(es_event_decode(&ev, text, sizeof text - 1, &err), ES_EINVAL);
    assert_contains(err.text, "not JSON");
    free(copy);
}

#define HEAD "\"stream_id\":\"s\",\"type\":\"T\",\"id\":\"i\""
#define FULL "{" HEAD ",\"version\":1,\"data\":{}"

static void test_malformed(void **state)
{
    char longid[400];
    es_event *ev = NULL;
    es_error err;
    (void)state;

    /* not JSON, with where */
    decode_bad("{\"stream_id\": ", "not JSON: ");
    decode_bad("{\"stream_id\": ", "at line 1, column");
    decode_bad("{\"stream_id\":\"s\",\n\"type\":}", "at line 2, column");
    decode_bad("", "not JSON");
    decode_bad("{" HEAD ",\"version\":1,\"data\":{}} trailing", "not JSON");
    decode_bad("{\"stream_id\":\"a\\u0000b\"}", "not JSON");
    /* duplicate keys are not JSON we accept, and the key is named */
    decode_bad(FULL ",\"type\":\"U\"}", "duplicate object key near '\"type\"'");
    decode_bad(FULL ",\"version\":2}", "duplicate object key near '\"version\"'");

    /* an occurred_us the encoder could not write as an occurred_at that
     * decodes (found by tests/fuzz/fuzz_codec) */
    decode_bad(FULL ",\"occurred_us\":253402300800000000}",
               "\"occurred_us\" is 253402300800000000, outside the years 0000 to 9999");
    decode_bad(FULL ",\"occurred_us\":-62167219200000001}",
               "outside the years 0000 to 9999");
    decode_bad(FULL ",\"occurred_us\":9223372036854775807}",
               "outside the years 0000 to 9999");

    /* JSON, but not an object */
    decode_bad("[1,2]", "event is not a JSON object");
    decode_bad("42", "event is not a JSON object");
    decode_bad("\"event\"", "event is not a JSON object");
    decode_bad("null", "event is not a JSON object");

    /* required members */
    decode_bad("{\"type\":\"T\",\"id\":\"i\",\"version\":1,\"data\":{}}",
               "event has no \"stream_id\"");
    decode_bad("{\"stream_id\":null,\"type\":\"T\",\"id\":\"i\",\"version\":1,\"data\":{}}",
               "event has no \"stream_id\"");
    decode_bad("{\"stream_id\":\"s\",\"id\":\"i\",\"version\":1,\"data\":{}}",
               "event has no \"type\"");
    decode_bad("{\"stream_id\":\"s\",\"type\":\"T\",\"version\":1,\"data\":{}}",
               "event has no \"id\"");
    decode_bad("{" HEAD ",\"data\":{}}", "event has no \"version\"");
    decode_bad("{" HEAD ",\"version\":1}", "event has no \"data\"");

    /* wrongly typed */
    decode_bad("{\"stream_id\":42,\"type\":\"T\",\"id\":\"i\",\"version\":1,\"data\":{}}",
               "\"stream_id\" is not a string");
    decode_bad("{\"stream_id\":\"s\",\"type\":[],\"id\":\"i\",\"version\":1,\"data\":{}}",
               "\"type\" is not a string");
    decode_bad("{\"stream_id\":\"s\",\"type\":\"T\",\"id\":1,\"version\":1,\"data\":{}}",
               "\"id\" is not a string");
    decode_bad("{" HEAD ",\"version\":\"1\",\"data\":{}}", "\"version\" is not an integer");
    decode_bad("{" HEAD ",\"version\":1.0,\"data\":{}}", "\"version\" is not an integer");
    decode_bad("{" HEAD ",\"version\":true,\"data\":{}}", "\"version\" is not an integer");
    decode_bad(FULL ",\"aggregate_type\":7}", "\"aggregate_type\" is not a string");
    decode_bad(FULL ",\"correlation_id\":{}}", "\"correlation_id\" is not a string");
    decode_bad(FULL ",\"causation_id\":false}", "\"causation_id\" is not a string");
    decode_bad(FULL ",\"schema\":\"2\"}", "\"schema\" is not an integer");
    decode_bad(FULL ",\"occurred_us\":\"now\"}", "\"occurred_us\" is not an integer");
    decode_bad(FULL ",\"occurred_at\":1772359200}", "\"occurred_at\" is not a string");
    decode_bad(FULL ",\"position\":3}", "\"position\" is not an object");
    decode_bad(FULL ",\"position\":{\"partition\":\"0\",\"offset\":1}}",
               "\"partition\" is not an integer");
    decode_bad(FULL ",\"position\":{\"partition\":0}}", "event has no \"offset\"");
    decode_bad(FULL ",\"position\":{\"partition\":-1,\"offset\":1}}",
               "\"position\" is out of range");
    decode_bad(FULL ",\"position\":{\"partition\":0,\"offset\":-1}}",
               "\"position\" is out of range");
    decode_bad(FULL ",\"position\":{\"partition\":4294967296,\"offset\":1}}",
               "\"position\" is out of range");
    decode_bad(FULL ",\"commit\":\"c\"}", "\"commit\" is not an object");
    decode_bad(FULL ",\"commit\":{\"size\":2}}", "event has no \"id\"");
    decode_bad(FULL ",\"commit\":{\"id\":\"c\",\"size\":0}}", "\"commit\".\"size\" is out of range");
    decode_bad(FULL ",\"commit\":{\"id\":\"c\"}}", "event has no \"size\"");

    /* stream id: empty, over-long, control characters */
    decode_bad("{\"stream_id\":\"\",\"type\":\"T\",\"id\":\"i\",\"version\":1,\"data\":{}}",
               "stream id is empty");
    memset(longid, 'x', 256);
    {
        char *text = malloc(1024);
        assert_non_null(text);
        snprintf(text, 1024, "{\"stream_id\":\"%.256s\",\"type\":\"T\",\"id\":\"i\","
                             "\"version\":1,\"data\":{}}", longid);
        decode_bad(text, "stream id is 256 bytes long, the limit is 255");
        /* 255 is fine */
        snprintf(text, 1024, "{\"stream_id\":\"%.255s\",\"type\":\"T\",\"id\":\"i\","
                             "\"version\":1,\"data\":{}}", longid);
        ev = decode_ok(text);
        assert_int_equal(strlen(ev->stream_id), 255);
        es_event_free(ev);
        free(text);
    }
    decode_bad("{\"stream_id\":\"a\\nb\",\"type\":\"T\",\"id\":\"i\",\"version\":1,\"data\":{}}",
               "stream id contains a control character at byte 1");
    decode_bad("{\"stream_id\":\"s\",\"type\":\"\",\"id\":\"i\",\"version\":1,\"data\":{}}",
               "event type is empty");
    decode_bad("{\"stream_id\":\"s\",\"type\":\"T\",\"id\":\"\",\"version\":1,\"data\":{}}",
               "event id is empty");

    /* out of range numbers */
    decode_bad("{" HEAD ",\"version\":0,\"data\":{}}", "\"version\" is 0, versions start at 1");
    decode_bad("{" HEAD ",\"version\":-3,\"data\":{}}", "\"version\" is -3");
    decode_bad(FULL ",\"schema\":0}", "\"schema\" is 0, expected 1..2147483647");
    decode_bad(FULL ",\"schema\":2147483648}", "\"schema\" is 2147483648");

    /* data and meta */
    decode_bad("{" HEAD ",\"version\":1,\"data\":[]}", "\"data\" is not a JSON object");
    decode_bad("{" HEAD ",\"version\":1,\"data\":null}", "\"data\" is not a JSON object");
    decode_bad("{" HEAD ",\"version\":1,\"data\":\"{}\"}", "\"data\" is not a JSON object");
    decode_bad(FULL ",\"meta\":[]}", "\"meta\" is not a JSON object");
    decode_bad(FULL ",\"meta\":\"x\"}", "\"meta\" is not a JSON object");

    /* times */
    decode_bad(FULL ",\"occurred_at\":\"2026-13-01T00:00:00Z\"}",
               "\"occurred_at\": invalid time '2026-13-01T00:00:00Z': bad month at character 6");
    decode_bad(FULL ",\"occurred_at\":\"yesterday\"}", "\"occurred_at\": invalid time");
    /* a bad occurred_at is not hidden by a good occurred_us */
    decode_bad(FULL ",\"occurred_at\":\"2026-02-30\",\"occurred_us\":1}",
               "\"occurred_at\": invalid time '2026-02-30': bad day");
    /* and they must not disagree */
    decode_bad(FULL ",\"occurred_at\":\"2026-03-01T10:00:00Z\",\"occurred_us\":1}",
               "\"occurred_at\" (2026-03-01T10:00:00Z) and \"occurred_us\" (1) disagree");

    /* arguments */
    assert_int_equal(es_event_decode(NULL, "{}", 2, &err), ES_EINVAL);
    assert_int_equal(es_event_decode(&ev, NULL, 0, &err), ES_EINVAL);
    assert_contains(err.text, "no input");
    assert_int_equal(es_event_decode(&ev, "{}", 2, NULL), ES_EINVAL); /* NULL err ok */
    assert_int_equal(es_event_from_json(&ev, NULL, &err), ES_EINVAL);
    assert_contains(err.text, "event is not a JSON object");
    assert_int_equal(es_event_from_json(NULL, NULL, &err), ES_EINVAL);
    assert_null(es_event_to_json(NULL));
    {
        char *text = (char *)"x";
        es_event e = {.type = "T"};
        assert_int_equal(es_event_encode(NULL, &e), ES_EINVAL);
        assert_int_equal(es_event_encode(&text, NULL), ES_EINVAL);
    }
}

/* Extreme but valid numbers survive. */
static void test_extremes(void **state)
{
    json_t *payload = json_object();
    es_event ev = {
        .aggregate_type = "a", .stream_id = "s", .type = "T",
        .version = INT64_MAX, .occurred_us = INT64_C(253402300799999999),
        .schema = INT32_MAX, .id = "i", .payload = payload,
        .position = {INT32_MAX, INT64_MAX}, .commit_id = "c",
        .commit_size = INT32_MAX,
    };
    char *text = NULL;
    es_event *back = NULL;
    es_error err;
    (void)state;
    assert_int_equal(es_event_encode(&text, &ev), 0);
    assert_contains(text, "\"occurred_at\":\"9999-12-31T23:59:59.999999Z\"");
    assert_int_equal(es_event_decode(&back, text, strlen(text), &err), 0);
    assert_same_event(&ev, back);
    es_free(text);
    es_event_free(back);
    /* and the first microsecond of year 0 */
    ev.occurred_us = INT64_C(-62167219200000000);
    assert_int_equal(es_event_encode(&text, &ev), 0);
    assert_contains(text, "\"occurred_at\":\"0000-01-01T00:00:00Z\"");
    assert_int_equal(es_event_decode(&back, text, strlen(text), &err), 0);
    assert_same_event(&ev, back);
    es_free(text);
    es_event_free(back);
    json_decref(payload);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_full),
        cmocka_unit_test(test_round_trip_sparse),
        cmocka_unit_test(test_decode_minimal),
        cmocka_unit_test(test_decode_len),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_extremes),
    };
    return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}

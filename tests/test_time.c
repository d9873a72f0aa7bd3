/*
 * tests/test_time.c - core/time.c: ISO 8601 parsing and formatting of UTC
 * microsecond timestamps.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* 2026-03-01T00:00:00Z in seconds since the epoch (date -u -d 2026-03-01 +%s). */
#define MAR1_2026 INT64_C(1772323200)
#define US INT64_C(1000000)

static int64_t parse_ok(const char *text)
{
    es_error err;
    int64_t us = 0;
    int rc;
    memset(&err, 0, sizeof err);
    rc = es_time_parse(&us, text, &err);
    if (rc != 0)
        print_error("parsing '%s': %s\n", text, err.text);
    assert_int_equal(rc, 0);
    return us;
}

/* Parsing fails with ES_EINVAL and a message containing `needle`. */
static void parse_bad(const char *text, const char *needle)
{
    es_error err;
    int64_t us = 12345;
    memset(&err, 0, sizeof err);
    assert_int_equal(es_time_parse(&us, text, &err), ES_EINVAL);
    assert_contains(err.text, needle);
    assert_true(us == 12345); /* untouched on failure */
}

static const char *fmt(int64_t us)
{
    static char buf[ES_TIME_BUFSZ];
    int n = es_time_format(buf, sizeof buf, us);
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(buf));
    return buf;
}

static void test_parse_utc(void **state)
{
    (void)state;
    assert_true(parse_ok("2026-03-01T00:00:00Z") == MAR1_2026 * US);
    assert_true(parse_ok("2026-03-01T10:00:00Z") == (MAR1_2026 + 36000) * US);
    /* the example of event.h */
    assert_true(parse_ok("2026-03-01T10:00:00.000001Z") == INT64_C(1772359200000001));
    assert_true(parse_ok("1970-01-01T00:00:00Z") == 0);
    assert_true(parse_ok("1970-01-01T00:00:01Z") == US);
    /* lower-case t and z, a space for T, no seconds, no zone (UTC) */
    assert_true(parse_ok("2026-03-01t10:00:00z") == (MAR1_2026 + 36000) * US);
    assert_true(parse_ok("2026-03-01 10:00:00Z") == (MAR1_2026 + 36000) * US);
    assert_true(parse_ok("2026-03-01T10:00Z") == (MAR1_2026 + 36000) * US);
    assert_true(parse_ok("2026-03-01T10:00:00") == (MAR1_2026 + 36000) * US);
    /* a leap second folds into the second before */
    assert_true(parse_ok("2016-12-31T23:59:60Z") == parse_ok("2016-12-31T23:59:59Z"));
}

static void test_date_only(void **state)
{
    (void)state;
    assert_true(parse_ok("2026-03-01") == MAR1_2026 * US);
    assert_true(parse_ok("1970-01-01") == 0);
    assert_true(parse_ok("2000-01-01") == INT64_C(946684800) * US);
}

static void test_fractions(void **state)
{
    static const struct {
        const char *text;
        int64_t frac;
    } cases[] = {
        {"2026-03-01T00:00:00.1Z", 100000},
        {"2026-03-01T00:00:00.12Z", 120000},
        {"2026-03-01T00:00:00.123Z", 123000},
        {"2026-03-01T00:00:00.1234Z", 123400},
        {"2026-03-01T00:00:00.12345Z", 123450},
        {"2026-03-01T00:00:00.123456Z", 123456},
        /* past 6 digits: truncated, never rounded */
        {"2026-03-01T00:00:00.1234567Z", 123456},
        {"2026-03-01T00:00:00.12345678Z", 123456},
        {"2026-03-01T00:00:00.123456789Z", 123456},
        {"2026-03-01T00:00:00.999999999Z", 999999},
        {"2026-03-01T00:00:00.000001Z", 1},
        {"2026-03-01T00:00:00.0000009Z", 0},
        {"2026-03-01T00:00:00.25Z", 250000},
        {"2026-03-01T00:00:00,5Z", 500000}, /* ISO 8601 allows a comma */
        {"2026-03-01T00:00:00.5+01:00", 500000},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int64_t base = MAR1_2026 * US;
        if (strstr(cases[i].text, "+01:00"))
            base -= 3600 * US;
        assert_true(parse_ok(cases[i].text) == base + cases[i].frac);
    }
}

static void test_offsets(void **state)
{
    int64_t ten = (MAR1_2026 + 36000) * US;
    (void)state;
    assert_true(parse_ok("2026-03-01T11:00:00+01:00") == ten);
    assert_true(parse_ok("2026-03-01T11:00:00+0100") == ten);
    assert_true(parse_ok("2026-03-01T10:00:00+00:00") == ten);
    assert_true(parse_ok("2026-03-01T10:00:00-00:00") == ten);
    assert_true(parse_ok("2026-03-01T04:30:00-05:30") == ten);
    assert_true(parse_ok("2026-03-01T15:45:00+05:45") == ten);
    /* an offset that crosses midnight and a month boundary */
    assert_true(parse_ok("2026-03-01T00:30:00+01:00") ==
                parse_ok("2026-02-28T23:30:00Z"));
    assert_true(parse_ok("2025-12-31T23:00:00-02:00") ==
                parse_ok("2026-01-01T01:00:00Z"));
    assert_string_equal(fmt(parse_ok("2026-03-01T11:00:00.5+01:00")),
                        "2026-03-01T10:00:00.500000Z");
}

static void test_leap_years(void **state)
{
    (void)state;
    assert_true(parse_ok("2024-02-29") == parse_ok("2024-02-28") + 86400 * US);
    assert_true(parse_ok("2024-03-01") == parse_ok("2024-02-29") + 86400 * US);
    assert_true(parse_ok("2000-02-29T12:00:00Z") > 0); /* divisible by 400 */
    parse_bad("2023-02-29", "bad day at character 9");
    parse_bad("1900-02-29", "bad day"); /* divisible by 100, not by 400 */
    parse_bad("2100-02-29", "bad day");
    parse_bad("2026-04-31", "bad day");
    parse_bad("2026-01-32", "bad day");
    parse_bad("2026-01-00", "bad day");
    assert_string_equal(fmt(parse_ok("2024-02-29T23:59:59Z")), "2024-02-29T23:59:59Z");
    assert_string_equal(fmt(parse_ok("2024-02-29T23:59:59Z") + US), "2024-03-01T00:00:00Z");
    assert_string_equal(fmt(parse_ok("2023-02-28T23:59:59Z") + US), "2023-03-01T00:00:00Z");
}

static void test_errors_name_the_character(void **state)
{
    (void)state;
    parse_bad("2026-13-01", "bad month at character 6");
    parse_bad("2026-00-01", "bad month at character 6");
    parse_bad("2026-1x-01", "bad month at character 6");
    parse_bad("2026-13-01", "invalid time '2026-13-01'");
    parse_bad("2026-13-01", "expected ISO 8601");
    parse_bad("", "bad year at character 1");
    parse_bad("20x6-03-01", "bad year at character 1");
    parse_bad("2026/03/01", "expected '-' at character 5");
    parse_bad("2026-03/01", "expected '-' at character 8");
    parse_bad("2026-03", "expected '-' at character 8");
    parse_bad("2026-03-32", "bad day at character 9");
    parse_bad("2026-03-01T24:00:00Z", "bad hour at character 12");
    parse_bad("2026-03-01T", "bad hour at character 12");
    parse_bad("2026-03-01T10-00:00Z", "expected ':' at character 14");
    parse_bad("2026-03-01T10:60:00Z", "bad minute at character 15");
    parse_bad("2026-03-01T10:00:61Z", "bad second at character 18");
    parse_bad("2026-03-01T10:00:00.Z", "expected fraction digits at character 21");
    parse_bad("2026-03-01T10:00:00+24:00", "bad offset hours at character 21");
    parse_bad("2026-03-01T10:00:00+01:60", "bad offset minutes at character 24");
    parse_bad("2026-03-01T10:00:00+01", "bad offset minutes at character 23");
    parse_bad("2026-03-01T10:00:00Q", "unexpected text at character 20");
    parse_bad("2026-03-01T10:00:00Zjunk", "unexpected text at character 21");
    parse_bad("2026-03-01x", "unexpected text at character 11");
    parse_bad(" 2026-03-01", "bad year at character 1");
    /* an offset that carries the time out of the years 0000..9999, which
     * es_time_format could not write back (found by tests/fuzz/fuzz_time) */
    parse_bad("0000-01-01T00:00:00+00:01", "outside the years 0000 to 9999");
    parse_bad("9999-12-31T23:59:59-00:01", "outside the years 0000 to 9999");
    assert_string_equal(fmt(parse_ok("0000-01-01T00:01:00+00:01")),
                        "0000-01-01T00:00:00Z");
    assert_string_equal(fmt(parse_ok("9999-12-31T23:58:59.999999-00:01")),
                        "9999-12-31T23:59:59.999999Z");

    /* NULL arguments, and a NULL error buffer is allowed */
    {
        es_error err;
        int64_t us;
        assert_int_equal(es_time_parse(NULL, "2026-03-01", &err), ES_EINVAL);
        assert_int_equal(es_time_parse(&us, NULL, &err), ES_EINVAL);
        assert_contains(err.text, "no time given");
        assert_int_equal(es_time_parse(&us, "nope", NULL), ES_EINVAL);
    }
}

static void test_format(void **state)
{
    char small[8];
    char exact[sizeof "2026-03-01T10:00:00Z"];
    (void)state;
    assert_string_equal(fmt(0), "1970-01-01T00:00:00Z");
    assert_string_equal(fmt(1), "1970-01-01T00:00:00.000001Z");
    assert_string_equal(fmt(INT64_C(1772359200000001)), "2026-03-01T10:00:00.000001Z");
    assert_string_equal(fmt((MAR1_2026 + 36000) * US + 250000),
                        "2026-03-01T10:00:00.250000Z");
    /* too small a buffer is -1; exactly large enough works */
    assert_int_equal(es_time_format(small, sizeof small, 0), -1);
    assert_int_equal(es_time_format(exact, sizeof exact, (MAR1_2026 + 36000) * US),
                     (int)sizeof exact - 1);
    assert_string_equal(exact, "2026-03-01T10:00:00Z");
    assert_int_equal(es_time_format(exact, sizeof exact - 1, (MAR1_2026 + 36000) * US), -1);
}

static void test_before_1970(void **state)
{
    (void)state;
    assert_string_equal(fmt(-1), "1969-12-31T23:59:59.999999Z");
    assert_string_equal(fmt(-US), "1969-12-31T23:59:59Z");
    assert_string_equal(fmt(-US - 1), "1969-12-31T23:59:58.999999Z");
    assert_string_equal(fmt(-86400 * US), "1969-12-31T00:00:00Z");
    assert_string_equal(fmt(-86400 * US - 1), "1969-12-30T23:59:59.999999Z");
    assert_string_equal(fmt(INT64_C(-2208988800) * US), "1900-01-01T00:00:00Z");
    assert_string_equal(fmt(INT64_C(-62135596800) * US), "0001-01-01T00:00:00Z");
    assert_true(parse_ok("1969-12-31T23:59:59.999999Z") == -1);
    assert_true(parse_ok("1900-01-01") == INT64_C(-2208988800) * US);
    assert_true(parse_ok("0001-01-01T00:00:00Z") == INT64_C(-62135596800) * US);
    assert_true(parse_ok("1969-07-20T20:17:40Z") == INT64_C(-14182940) * US);
    /* the extremes format without overflow */
    {
        char buf[ES_TIME_BUFSZ];
        assert_true(es_time_format(buf, sizeof buf, INT64_MIN) > 0);
        assert_true(es_time_format(buf, sizeof buf, INT64_MAX) > 0);
    }
}

static void test_round_trips(void **state)
{
    static const char *texts[] = {
        "1970-01-01T00:00:00Z",
        "1969-12-31T23:59:59.999999Z",
        "0001-01-01T00:00:00Z",
        "1600-02-29T12:34:56.000100Z",
        "1899-12-31T23:59:59Z",
        "2000-02-29T00:00:00.000001Z",
        "2024-02-29T13:14:15.161718Z",
        "2026-03-01T10:00:00Z",
        "2038-01-19T03:14:08Z",
        "9999-12-31T23:59:59.999999Z",
    };
    (void)state;
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        assert_string_equal(fmt(parse_ok(texts[i])), texts[i]);

    /* format then parse gives the same microsecond, across 0001..9999 */
    srand(42);
    for (int i = 0; i < 20000; i++) {
        int64_t lo = INT64_C(-62135596800) * US, hi = INT64_C(253402300799) * US;
        uint64_t r = ((uint64_t)rand() << 42) ^ ((uint64_t)rand() << 21) ^ (uint64_t)rand();
        int64_t us = lo + (int64_t)(r % (uint64_t)(hi - lo));
        if (i < 2000)
            us = (int64_t)(r % (200 * 86400 * US)) - 100 * 86400 * US; /* near 1970 */
        assert_true(parse_ok(fmt(us)) == us);
    }
}

static void test_now(void **state)
{
    int64_t a, b;
    (void)state;
    a = es_time_now_us();
    b = es_time_now_us();
    assert_true(a > parse_ok("2020-01-01"));
    assert_true(a < parse_ok("2200-01-01"));
    assert_true(b >= a - 1000000); /* realtime; allow a small step back */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_utc),
        cmocka_unit_test(test_date_only),
        cmocka_unit_test(test_fractions),
        cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_leap_years),
        cmocka_unit_test(test_errors_name_the_character),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_before_1970),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_now),
    };
    return cmocka_run_group_tests_name("time", tests, NULL, NULL);
}

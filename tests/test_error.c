/*
 * tests/test_error.c - core/error.c: error codes, their descriptions, and
 * the message every handle carries.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "core/internal.h"

static void test_strerror_every_code(void **state)
{
    static const struct {
        int code;
        const char *text;
    } cases[] = {
        {ES_OK, "success"},
        {ES_EINVAL, "invalid argument or malformed input"},
        {ES_ENOMEM, "out of memory"},
        {ES_EIO, "input/output error"},
        {ES_ENOTFOUND, "not found"},
        {ES_ECONFLICT, "version conflict"},
        {ES_ETRUNCATED, "log truncated"},
        {ES_ECORRUPT, "corrupt data"},
        {ES_EREFUSED, "command refused"},
        {ES_EUSER, "stopped by callback"},
        {ES_EUNHANDLED, "unhandled event type"},
        {ES_EUNSUPPORTED, "not supported by this backend"},
        {ES_ETIMEDOUT, "timed out"},
        {ES_EUNKNOWN, "outcome unknown (may or may not have been written)"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_string_equal(es_strerror(cases[i].code), cases[i].text);
        /* every code has its own text */
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(es_strerror(cases[i].code),
                                    es_strerror(cases[j].code));
    }
    /* the codes are the documented values (they are ABI) */
    assert_int_equal(ES_EINVAL, -1);
    assert_int_equal(ES_EUNSUPPORTED, -11);
    assert_int_equal(ES_ETIMEDOUT, -12);
    assert_int_equal(ES_EUNKNOWN, -13);
    /* anything else is "unknown", never NULL */
    assert_string_equal(es_strerror(1), "unknown error");
    assert_string_equal(es_strerror(-14), "unknown error");
    assert_string_equal(es_strerror(-1000000), "unknown error");
    assert_string_equal(es_strerror(INT32_MIN), "unknown error");
}

static void test_errmsg_without_handle(void **state)
{
    struct {
        uint32_t not_magic;
        char text[64];
    } stray = {12345, "some bytes that are not an esfold handle"};
    (void)state;
    assert_string_equal(es_errmsg(NULL),
                        "no handle (the call failed before one could be made)");
    assert_string_equal(es_errmsg(&stray), "not an esfold handle");
}

static void test_handle_messages(void **state)
{
    es__handle h;
    char longfmt[3000];
    (void)state;
    es__handle_init(&h);
    assert_string_equal(es_errmsg(&h), "");
    assert_int_equal(es__fail(&h, ES_EIO, "reading %s: %d", "x", 42), ES_EIO);
    assert_string_equal(es_errmsg(&h), "reading x: 42");
    /* a new message may quote the old one (formatted into a copy first) */
    assert_int_equal(es__fail(&h, ES_ECONFLICT, "retrying: %s", es_errmsg(&h)),
                     ES_ECONFLICT);
    assert_string_equal(es_errmsg(&h), "retrying: reading x: 42");
    es__clear(&h);
    assert_string_equal(es_errmsg(&h), "");
    /* an over-long message is cut, and still a string */
    memset(longfmt, 'a', sizeof longfmt - 1);
    longfmt[sizeof longfmt - 1] = '\0';
    es__fail(&h, ES_EINVAL, "%s", longfmt);
    assert_int_equal(strlen(es_errmsg(&h)), ES__ERRMSG_MAX - 1);
}

static void test_error_buffers(void **state)
{
    es_error err;
    char longtext[2000];
    (void)state;
    memset(&err, 0, sizeof err);
    assert_int_equal(es__err(&err, ES_ECORRUPT, "event %d: %s", 7, "bad"), ES_ECORRUPT);
    assert_string_equal(err.text, "event 7: bad");
    assert_int_equal(es__err(&err, ES_EINVAL, "again: %s", err.text), ES_EINVAL);
    assert_string_equal(err.text, "again: event 7: bad");
    /* a NULL buffer is allowed: the code still comes back */
    assert_int_equal(es__err(NULL, ES_EIO, "nobody reads this"), ES_EIO);
    memset(longtext, 'b', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = '\0';
    es__err(&err, ES_EINVAL, "%s", longtext);
    assert_int_equal(strlen(err.text), sizeof err.text - 1);
}

/* Folds anything: only the version matters here. */
static const es_aggregate_type lenient_type = {
    .name = "account",
    .state_size = sizeof(int),
    .ignore_unknown = 1,
};

/* A call that fails leaves its reason on the handle; the next one that
 * succeeds clears it. */
static void test_message_of_a_failing_call(void **state)
{
    es_log *log = NULL;
    es_repo *repo = NULL;
    es_aggregate *agg = NULL;
    (void)state;

    /* an unknown scheme: the handle is made so that it can say why */
    assert_int_equal(es_log_open(&log, "nosuch://place"), ES_EINVAL);
    assert_non_null(log);
    assert_contains(es_errmsg(log), "unknown log URI scheme in 'nosuch://place'");
    /* every later call on it is refused, with a message */
    {
        int32_t n;
        assert_int_equal(es_log_partition_count(log, &n, "account"), ES_EINVAL);
        assert_contains(es_errmsg(log), "the log is not open");
    }
    es_log_close(log);
    log = NULL;

    /* a path that cannot be opened */
    assert_true(es_log_open(&log, "sqlite:/nonexistent-dir/sub/x.db") != 0);
    assert_non_null(log);
    assert_contains(es_errmsg(log), "/nonexistent-dir/sub/x.db");
    es_log_close(log);
    log = NULL;

    /* a good log: a failing call sets the message, a good one clears it */
    log = es_test_open_fresh_log();
    assert_string_equal(es_errmsg(log), "");
    {
        json_t *p = json_object();
        es_event ev = {.type = "Deposited", .payload = p};
        assert_int_equal(es_log_append(log, NULL, "account", "", ES_EXPECT_ANY, &ev, 1),
                         ES_EINVAL);
        assert_contains(es_errmsg(log), "stream id is empty");
        assert_int_equal(es_log_append(log, NULL, "account", "a1", ES_EXPECT_ANY, &ev, 1), 0);
        assert_string_equal(es_errmsg(log), "");
        assert_int_equal(es_log_append(log, NULL, "account", "a1", 5, &ev, 1), ES_ECONFLICT);
        assert_contains(es_errmsg(log), "account/a1");
        json_decref(p);
    }

    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    assert_string_equal(es_errmsg(repo), "");
    assert_int_equal(es_repo_load(repo, &agg, NULL, "a1", ES_RANGE_ALL), ES_EINVAL);
    assert_null(agg);
    assert_contains(es_errmsg(repo), "no aggregate type or stream id");
    assert_int_equal(es_repo_load(repo, &agg, &lenient_type, "a1",
                                  ES_RANGE_ALL), 0);
    assert_string_equal(es_errmsg(repo), "");
    assert_int_equal(es_aggregate_version(agg), 1);
    es_aggregate_free(agg);
    es_repo_free(repo);
    es_log_close(log);
}

/* Secrets in a URI never reach a message or es_log_uri(). */
static void test_messages_hide_secrets(void **state)
{
    es_log *log = NULL;
    char *r;
    (void)state;
    assert_int_not_equal(es_log_open(&log, "sqlite:/nonexistent-dir/x.db?"
                                            "kafka.sasl.password=hunter2"), 0);
    assert_non_null(log);
    assert_null(strstr(es_errmsg(log), "hunter2"));
    assert_null(strstr(es_log_uri(log), "hunter2"));
    assert_contains(es_log_uri(log), "kafka.sasl.password=***");
    es_log_close(log);

    r = es__uri_redact("postgresql://bob:pw@db.example/x?sslmode=require&password=p"
                       "&oauth.token=t&client_secret=s");
    assert_string_equal(r, "postgresql://bob:***@db.example/x?sslmode=require"
                           "&password=***&oauth.token=***&client_secret=***");
    es_free(r);
    r = es__uri_redact("kafka://h:9092,h2:9092?prefix=bank.&partitions=8");
    assert_string_equal(r, "kafka://h:9092,h2:9092?prefix=bank.&partitions=8");
    es_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror_every_code),
        cmocka_unit_test(test_errmsg_without_handle),
        cmocka_unit_test(test_handle_messages),
        cmocka_unit_test(test_error_buffers),
        cmocka_unit_test(test_message_of_a_failing_call),
        cmocka_unit_test(test_messages_hide_secrets),
    };
    return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}

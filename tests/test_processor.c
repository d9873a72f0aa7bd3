/*
 * tests/test_processor.c - the single-writer processor (esfold/processor.h)
 * on the bank account: the same final states as es_repo_execute, a foreign
 * write detected (conflict, reload, right state), refusals append nothing,
 * ownership enforced.
 *
 * Runs on SQLite; tests/test_kafka.c runs it again on the local Kafka
 * broker through $ESFOLD_TEST_LOG_URI_BASE (with and without owner=1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "samples/bank/account.h"

#define STREAMS 5
#define COMMANDS 60

static bank_command command_at(int i)
{
    bank_command c = {BANK_DEPOSIT, NULL, NULL, 100 + i};
    if (i < STREAMS) {
        c.kind = BANK_OPEN;
        c.owner = "Ada";
    } else if (i % 7 == 0) {
        c.kind = BANK_WITHDRAW;
        c.amount = 50 + i; /* some of them refused: not enough money */
    }
    return c;
}

static void sid_of(char *buf, size_t size, int i)
{
    snprintf(buf, size, "acct-%d", i % STREAMS);
}

static const bank_account *state_of(es_repo *repo, es_aggregate **agg,
                                    const char *sid)
{
    es_aggregate_free(*agg);
    *agg = NULL;
    assert_int_equal(es_repo_load(repo, agg, &bank_account_type, sid,
                                  ES_RANGE_ALL), 0);
    return es_aggregate_state(*agg);
}

/* N commands on M streams: the processor gives what es_repo_execute gives,
 * refusal for refusal, and its hot states equal fresh loads. */
static void test_same_states_as_repo(void **state)
{
    es_log *a = es_test_open_fresh_log(), *b = es_test_open_fresh_log();
    es_repo *ra = NULL, *rb = NULL;
    es_processor *p = NULL;
    es_aggregate *x = NULL, *y = NULL;
    es_processor_stats st;
    char sid[32];

    assert_int_equal(es_repo_new(&ra, a, NULL), 0);
    assert_int_equal(es_repo_new(&rb, b, NULL), 0);
    assert_int_equal(es_processor_new(&p, ra, &bank_account_type, NULL, 0), 0);
    for (int i = 0; i < COMMANDS; i++) {
        bank_command c = command_at(i);
        es_execute_result r1, r2;
        int rc1, rc2;
        sid_of(sid, sizeof sid, i);
        rc1 = es_processor_execute(p, &r1, sid, bank_decide, &c, NULL, NULL);
        rc2 = es_repo_execute(rb, &r2, &bank_account_type, sid, bank_decide, &c,
                              NULL, NULL);
        assert_int_equal(rc1, rc2);
        assert_int_equal(r1.version, r2.version);
        assert_int_equal(r1.events, r2.events);
        if (rc1 == ES_EREFUSED)
            assert_contains(es_errmsg(p), "command refused");
    }
    for (int s = 0; s < STREAMS; s++) {
        const bank_account *sa, *sb, *hot;
        sid_of(sid, sizeof sid, s);
        sa = state_of(ra, &x, sid);
        sb = state_of(rb, &y, sid);
        assert_int_equal(es_aggregate_version(x), es_aggregate_version(y));
        assert_int_equal(sa->balance, sb->balance);
        assert_int_equal(sa->transactions, sb->transactions);
        assert_string_equal(sa->owner, sb->owner);
        assert_non_null(es_processor_peek(p, sid));
        hot = es_aggregate_state(es_processor_peek(p, sid));
        assert_int_equal(es_aggregate_version(es_processor_peek(p, sid)),
                         es_aggregate_version(x));
        assert_int_equal(hot->balance, sa->balance);
        assert_int_equal(hot->transactions, sa->transactions);
    }
    es_processor_stats_get(p, &st);
    assert_int_equal(st.streams, STREAMS);
    assert_int_equal(st.loads, STREAMS); /* each stream loaded once */
    assert_int_equal(st.conflicts, 0);
    assert_int_equal(st.hits, COMMANDS - STREAMS);

    es_aggregate_free(x);
    es_aggregate_free(y);
    es_processor_free(p);
    es_repo_free(ra);
    es_repo_free(rb);
    es_log_close(a);
    es_log_close(b);
}

/* Someone else writes to an owned stream: the next command conflicts,
 * reloads and decides on the right state. */
static void test_foreign_write_is_detected(void **state)
{
    const char *uri = es_test_fresh_log_uri();
    es_log *a = NULL, *b = NULL;
    es_repo *ra = NULL, *rb = NULL;
    es_processor *p = NULL;
    es_aggregate *x = NULL;
    es_execute_result r;
    es_processor_stats st;
    bank_command open = {BANK_OPEN, "Ada", NULL, 0};
    bank_command dep = {BANK_DEPOSIT, NULL, NULL, 1000};
    bank_command wd = {BANK_WITHDRAW, NULL, NULL, 3500};
    const bank_account *s;

    assert_int_equal(es_log_open(&a, uri), 0);
    assert_int_equal(es_log_open(&b, uri), 0);
    assert_int_equal(es_repo_new(&ra, a, NULL), 0);
    assert_int_equal(es_repo_new(&rb, b, NULL), 0);
    assert_int_equal(es_processor_new(&p, ra, &bank_account_type, NULL, 0), 0);
    assert_int_equal(es_processor_execute(p, &r, "acct-1", bank_decide, &open,
                                          NULL, NULL), 0);
    assert_int_equal(es_processor_execute(p, &r, "acct-1", bank_decide, &dep,
                                          NULL, NULL), 0);
    assert_int_equal(r.version, 2);
    /* A foreign writer: the hot state (balance 1000) is now stale. */
    assert_int_equal(es_repo_execute(rb, NULL, &bank_account_type, "acct-1",
                                     bank_decide, &dep, NULL, NULL), 0);
    /* The processor appends at version 3 on its stale state: the append
     * conflicts, it reloads (balance 2000) and decides again. */
    assert_int_equal(es_processor_execute(p, &r, "acct-1", bank_decide, &dep,
                                          NULL, NULL), 0);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(r.version, 4);
    es_processor_stats_get(p, &st);
    assert_int_equal(st.conflicts, 1);
    assert_int_equal(st.loads, 2);
    s = state_of(ra, &x, "acct-1");
    assert_int_equal(es_aggregate_version(x), 4);
    assert_int_equal(s->balance, 3000);
    s = es_aggregate_state(es_processor_peek(p, "acct-1"));
    assert_int_equal(s->balance, 3000);
    assert_int_equal(es_aggregate_version(es_processor_peek(p, "acct-1")), 4);

    /* The limit of the fast path: a refusal appends nothing, so a refusal
     * decided on a stale hot state is not detected. After another foreign
     * deposit (balance 4000, hot 3000) withdrawing 3500 is refused; once
     * evicted (reloaded) it goes through. */
    assert_int_equal(es_repo_execute(rb, NULL, &bank_account_type, "acct-1",
                                     bank_decide, &dep, NULL, NULL), 0);
    assert_int_equal(es_processor_execute(p, &r, "acct-1", bank_decide, &wd,
                                          NULL, NULL), ES_EREFUSED);
    es_processor_evict(p, "acct-1");
    assert_int_equal(es_processor_execute(p, &r, "acct-1", bank_decide, &wd,
                                          NULL, NULL), 0);
    assert_int_equal(r.version, 6);
    s = es_aggregate_state(es_processor_peek(p, "acct-1"));
    assert_int_equal(s->balance, 500);

    es_aggregate_free(x);
    es_processor_free(p);
    es_repo_free(ra);
    es_repo_free(rb);
    es_log_close(a);
    es_log_close(b);
}

static void count_accepted(es_log *log, const char *sid, int64_t *n)
{
    es_aggregate *x = NULL;
    es_repo *r = NULL;
    assert_int_equal(es_repo_new(&r, log, NULL), 0);
    assert_int_equal(es_repo_load(r, &x, &bank_account_type, sid, ES_RANGE_ALL), 0);
    *n = es_aggregate_version(x);
    es_aggregate_free(x);
    es_repo_free(r);
}

/* A refused command appends nothing and keeps the hot state. */
static void test_refused_appends_nothing(void **state)
{
    es_log *a = es_test_open_fresh_log();
    es_repo *ra = NULL;
    es_processor *p = NULL;
    es_execute_result r;
    bank_command open = {BANK_OPEN, "Ada", NULL, 0};
    bank_command wd = {BANK_WITHDRAW, NULL, NULL, 1};
    int64_t n = -1, head_before = -1, head_after = -1;
    int32_t part;

    assert_int_equal(es_repo_new(&ra, a, NULL), 0);
    assert_int_equal(es_processor_new(&p, ra, &bank_account_type, NULL, 0), 0);
    /* Withdrawing from an account that does not exist: refused. */
    assert_int_equal(es_processor_execute(p, &r, "acct-9", bank_decide, &wd,
                                          NULL, NULL), ES_EREFUSED);
    assert_int_equal(es_processor_execute(p, &r, "acct-9", bank_decide, &open,
                                          NULL, NULL), 0);
    assert_int_equal(es_log_partition_count(a, &part, "account"), 0);
    part = es_partition_for("acct-9", 6, part);
    assert_int_equal(es_log_head(a, &head_before, "account", part), 0);
    assert_int_equal(es_processor_execute(p, &r, "acct-9", bank_decide, &wd,
                                          NULL, NULL), ES_EREFUSED);
    assert_contains(es_errmsg(p), "acct-9");
    assert_int_equal(r.events, 0);
    assert_int_equal(es_log_head(a, &head_after, "account", part), 0);
    assert_int_equal(head_after, head_before);
    count_accepted(a, "acct-9", &n);
    assert_int_equal(n, 1);
    assert_int_equal(es_aggregate_version(es_processor_peek(p, "acct-9")), 1);

    es_processor_free(p);
    es_repo_free(ra);
    es_log_close(a);
}

/* Static ownership: a stream of a partition the processor does not own
 * is refused before anything is read or written. */
static void test_ownership(void **state)
{
    es_log *a = es_test_open_fresh_log();
    es_repo *ra = NULL;
    es_processor *p = NULL;
    bank_command open = {BANK_OPEN, "Ada", NULL, 0};
    int32_t count = 0, mine;
    char other[32] = "";

    assert_int_equal(es_repo_new(&ra, a, NULL), 0);
    assert_int_equal(es_log_partition_count(a, &count, "account"), 0);
    assert_true(count > 1);
    mine = es_partition_for("acct-1", 6, count);
    for (int i = 2; other[0] == '\0'; i++) {
        char sid[32];
        snprintf(sid, sizeof sid, "acct-%d", i);
        if (es_partition_for(sid, strlen(sid), count) != mine)
            memcpy(other, sid, sizeof sid);
    }
    assert_int_equal(es_processor_new(&p, ra, &bank_account_type, NULL, 1),
                     ES_EINVAL);
    assert_int_equal(es_processor_new(&p, ra, &bank_account_type, &mine, 1), 0);
    assert_int_equal(es_processor_execute(p, NULL, "acct-1", bank_decide, &open,
                                          NULL, NULL), 0);
    assert_int_equal(es_processor_execute(p, NULL, other, bank_decide, &open,
                                          NULL, NULL), ES_EINVAL);
    assert_contains(es_errmsg(p), "not owned");
    assert_null(es_processor_peek(p, other));
    es_processor_evict(p, "acct-1");
    assert_null(es_processor_peek(p, "acct-1"));
    /* Evicted: reloaded, and the account exists already. */
    assert_int_equal(es_processor_execute(p, NULL, "acct-1", bank_decide, &open,
                                          NULL, NULL), ES_EREFUSED);

    es_processor_free(p);
    es_repo_free(ra);
    es_log_close(a);
}


/* Two handles on one log, a repository on each. */
typedef struct two {
    es_log *a, *b;
    es_repo *ra, *rb;
} two;

static void two_open(two *t)
{
    const char *uri = es_test_fresh_log_uri();
    memset(t, 0, sizeof *t);
    assert_int_equal(es_log_open(&t->a, uri), 0);
    assert_int_equal(es_log_open(&t->b, uri), 0);
    assert_int_equal(es_repo_new(&t->ra, t->a, NULL), 0);
    assert_int_equal(es_repo_new(&t->rb, t->b, NULL), 0);
}

static void two_close(two *t)
{
    es_repo_free(t->ra);
    es_repo_free(t->rb);
    es_log_close(t->a);
    es_log_close(t->b);
}

/* es_processor_open: options checked with a message on the handle, and
 * max_attempts honoured. */
static void test_options(void **state)
{
    two t;
    es_repo *ra, *rb;
    es_processor *p = NULL;
    es_processor_options o = ES_PROCESSOR_OPTIONS_INIT;
    es_execute_result r;
    bank_command open = {BANK_OPEN, "Ada", NULL, 0};
    bank_command dep = {BANK_DEPOSIT, NULL, NULL, 1000};
    int32_t parts[2] = {0, 1};

    two_open(&t);
    ra = t.ra;
    rb = t.rb;
    o.version = 7;
    assert_int_equal(es_processor_open(&p, ra, &bank_account_type, &o), ES_EINVAL);
    assert_non_null(p);
    assert_contains(es_errmsg(p), "unknown es_processor_options version 7");
    assert_int_equal(es_processor_execute(p, &r, "acct-1", bank_decide, &open, NULL,
                                          NULL), ES_EINVAL);
    es_processor_free(p);
    o = (es_processor_options)ES_PROCESSOR_OPTIONS_INIT;
    o.npartitions = 2;
    assert_int_equal(es_processor_open(&p, ra, &bank_account_type, &o), ES_EINVAL);
    assert_contains(es_errmsg(p), "partitions and npartitions disagree");
    es_processor_free(p);
    o.partitions = parts;
    o.max_attempts = -1;
    assert_int_equal(es_processor_open(&p, ra, &bank_account_type, &o), ES_EINVAL);
    assert_contains(es_errmsg(p), "max_attempts is -1");
    es_processor_free(p);
    assert_int_equal(es_processor_open(&p, NULL, &bank_account_type, NULL), ES_EINVAL);
    assert_contains(es_errmsg(p), "no repository");
    es_processor_free(p);
    assert_int_equal(es_processor_open(NULL, ra, &bank_account_type, NULL), ES_EINVAL);

    /* max_attempts 1: a foreign write is a conflict, not a retry */
    o = (es_processor_options)ES_PROCESSOR_OPTIONS_INIT;
    o.max_attempts = 1;
    assert_int_equal(es_processor_open(&p, ra, &bank_account_type, &o), 0);
    assert_int_equal(es_processor_execute(p, &r, "acct-1", bank_decide, &open, NULL,
                                          NULL), 0);
    assert_int_equal(es_repo_execute(rb, NULL, &bank_account_type, "acct-1",
                                     bank_decide, &dep, NULL, NULL), 0);
    assert_int_equal(es_processor_execute(p, &r, "acct-1", bank_decide, &dep, NULL,
                                          NULL), ES_ECONFLICT);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.actual_version, 2);
    assert_contains(es_errmsg(p), "still conflicting after 1 attempts");
    /* reloaded: the next one goes through */
    assert_int_equal(es_processor_execute(p, &r, "acct-1", bank_decide, &dep, NULL,
                                          NULL), 0);
    assert_int_equal(r.version, 3);
    es_processor_free(p);
    two_close(&t);
}

/* Command ids and expected versions, as es_repo_execute takes them. */
static void test_command_id_and_expected_version(void **state)
{
    two t;
    es_repo *ra, *rb;
    es_processor *p = NULL;
    es_aggregate *x = NULL;
    es_execute_result r, first;
    es_execute_options xo = ES_EXECUTE_OPTIONS_INIT;
    bank_command open = {BANK_OPEN, "Ada", NULL, 0};
    bank_command dep = {BANK_DEPOSIT, NULL, NULL, 1000};
    const bank_account *s;

    two_open(&t);
    ra = t.ra;
    rb = t.rb;
    assert_int_equal(es_processor_open(&p, ra, &bank_account_type, NULL), 0);
    assert_int_equal(es_processor_execute(p, &r, "acct-1", bank_decide, &open, NULL,
                                          NULL), 0);
    xo.command_id = "dep-1";
    assert_int_equal(es_processor_execute(p, &first, "acct-1", bank_decide, &dep, NULL,
                                          &xo), 0);
    assert_int_equal(first.duplicate, 0);
    assert_int_equal(es_processor_execute(p, &r, "acct-1", bank_decide, &dep, NULL,
                                          &xo), 0);
    assert_int_equal(r.duplicate, 1);
    assert_int_equal(r.version, 2);
    assert_int_equal(r.last.offset, first.last.offset);
    s = es_aggregate_state(es_processor_peek(p, "acct-1"));
    assert_int_equal(s->balance, 1000);
    /* the same command through another handle's repository: one deposit */
    assert_int_equal(es_repo_execute(rb, &r, &bank_account_type, "acct-1", bank_decide,
                                     &dep, NULL, &xo), 0);
    assert_int_equal(r.duplicate, 1);
    /* a command executed elsewhere first: the hot copy is dropped */
    xo.command_id = "dep-2";
    assert_int_equal(es_repo_execute(rb, &r, &bank_account_type, "acct-1", bank_decide,
                                     &dep, NULL, &xo), 0);
    assert_int_equal(r.duplicate, 0);
    assert_int_equal(es_processor_execute(p, &r, "acct-1", bank_decide, &dep, NULL,
                                          &xo), 0);
    assert_int_equal(r.duplicate, 1);
    assert_int_equal(r.version, 3);
    assert_null(es_processor_peek(p, "acct-1"));
    s = state_of(ra, &x, "acct-1");
    assert_int_equal(s->balance, 2000);

    /* If-Match on a hot state made stale by a foreign write: the log's
     * version counts */
    xo = (es_execute_options)ES_EXECUTE_OPTIONS_INIT;
    assert_int_equal(es_processor_execute(p, &r, "acct-1", bank_decide, &dep, NULL,
                                          NULL), 0);
    assert_int_equal(es_repo_execute(rb, &r, &bank_account_type, "acct-1", bank_decide,
                                     &dep, NULL, NULL), 0);
    assert_int_equal(r.version, 5);
    xo.expected_version = 5;
    assert_int_equal(es_processor_execute(p, &r, "acct-1", bank_decide, &dep, NULL,
                                          &xo), 0);
    assert_int_equal(r.version, 6);
    assert_int_equal(es_processor_execute(p, &r, "acct-1", bank_decide, &dep, NULL,
                                          &xo), ES_ECONFLICT);
    assert_int_equal(r.actual_version, 6);
    assert_string_equal(es_errmsg(p), "executing on account/acct-1: version "
                                      "conflict: expected 5, stream is at 6");
    s = state_of(ra, &x, "acct-1");
    assert_int_equal(s->balance, 5000);

    es_aggregate_free(x);
    es_processor_free(p);
    two_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_states_as_repo),
        cmocka_unit_test(test_foreign_write_is_detected),
        cmocka_unit_test(test_refused_appends_nothing),
        cmocka_unit_test(test_ownership),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_command_id_and_expected_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

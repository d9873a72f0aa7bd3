/*
 * tests/test_repo.c - core/repo.c: loading aggregates (to the end, to a
 * version, as of a time), executing commands (refusals, nothing to do,
 * conflicts and the retry), the options stamped on events, and allocation
 * failures injected everywhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "samples/bank/account.h"

/* ---- A small counter aggregate ------------------------------------------ */

typedef struct counter {
    int64_t total;
    int adds;
} counter;

static int apply_added(void *state, const es_event *ev)
{
    counter *c = state;
    json_t *n = json_object_get(ev->payload, "n");
    if (!json_is_integer(n))
        return ES_EINVAL;
    c->total += json_integer_value(n);
    c->adds++;
    return 0;
}

static const es_handler counter_handlers[] = {
    {"Added", apply_added},
    {NULL, NULL},
};

static const es_aggregate_type counter_type = {
    .name = "counter",
    .state_size = sizeof(counter),
    .handlers = counter_handlers,
};

typedef enum { CMD_ADD, CMD_ADD_MANY, CMD_NOTHING, CMD_REFUSE, CMD_REFUSE_BARE,
               CMD_EMIT_REFUSE_RETURN_0,
               CMD_FAIL, CMD_FAIL_POSITIVE, CMD_BAD_PAYLOAD } cmd_kind;

typedef struct cmd {
    cmd_kind kind;
    int n;
} cmd;

typedef struct decide_log {
    int calls;
    int64_t versions[8];
    int64_t totals[8];
} decide_log;

static int counter_decide(const void *state, int64_t version, const void *command,
                          es_emitter *em, void *user_data)
{
    const counter *c = state;
    const cmd *k = command;
    decide_log *dl = user_data;
    if (dl) {
        if (dl->calls < 8) {
            dl->versions[dl->calls] = version;
            dl->totals[dl->calls] = c->total;
        }
        dl->calls++;
    }
    switch (k->kind) {
    case CMD_ADD:
        return es_emit_new(em, "Added", json_pack("{s:i}", "n", k->n));
    case CMD_ADD_MANY:
        for (int i = 1; i <= k->n; i++) {
            int rc = es_emit_new(em, "Added", json_pack("{s:i}", "n", i));
            if (rc != 0)
                return rc;
        }
        return 0;
    case CMD_NOTHING:
        return 0;
    case CMD_REFUSE:
        return es_refuse(em, "the total %lld is too %s", (long long)c->total, "small");
    case CMD_REFUSE_BARE:
        return ES_EREFUSED;
    case CMD_EMIT_REFUSE_RETURN_0: {
        /* emits, then refuses, and forgets to return what es_refuse said */
        int rc = es_emit_new(em, "Added", json_pack("{s:i}", "n", 1));
        if (rc != 0)
            return rc;
        (void)es_refuse(em, "changed my mind");
        return 0;
    }
    case CMD_FAIL:
        return ES_EIO;
    case CMD_FAIL_POSITIVE:
        return 7;
    case CMD_BAD_PAYLOAD:
        return es_emit_new(em, "Added", json_array()); /* stolen, even when refused */
    }
    return ES_EINVAL;
}

/* Appends one Added {"n": n} at time t (0 = now). */
static void add_event(es_log *log, const char *id, int n, int64_t t)
{
    json_t *p = json_pack("{s:i}", "n", n);
    es_event ev;
    int rc;
    memset(&ev, 0, sizeof ev);
    ev.type = "Added";
    ev.payload = p;
    ev.occurred_us = t;
    rc = es_log_append(log, NULL, "counter", id, ES_EXPECT_ANY, &ev, 1);
    if (rc != 0)
        print_error("append: %s\n", es_errmsg(log));
    assert_int_equal(rc, 0);
    json_decref(p);
}

static int64_t stream_version(es_repo *repo, const char *id)
{
    es_aggregate *agg = NULL;
    int64_t v;
    int rc = es_repo_load(repo, &agg, &counter_type, id, ES_RANGE_ALL);
    if (rc != 0)
        print_error("load: %s\n", es_errmsg(repo));
    assert_int_equal(rc, 0);
    v = es_aggregate_version(agg);
    es_aggregate_free(agg);
    return v;
}

static const counter *load_counter(es_repo *repo, es_aggregate **agg, const char *id,
                                   es_range range)
{
    int rc = es_repo_load(repo, agg, &counter_type, id, range);
    if (rc != 0)
        print_error("load: %s\n", es_errmsg(repo));
    assert_int_equal(rc, 0);
    assert_non_null(*agg);
    return es_aggregate_state(*agg);
}

#define T0 INT64_C(1772359200000000) /* 2026-03-01T10:00:00Z */
#define MIN60 INT64_C(3600000000)

/* ---- Loading ------------------------------------------------------------- */

static void test_load_ranges(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_repo *repo = NULL;
    es_aggregate *agg = NULL;
    const counter *c;
    (void)state;
    /* 10:00 +1, 11:00 +10, 12:00 +100; and noise in other streams */
    add_event(log, "c1", 1, T0);
    add_event(log, "c2", 1000, T0 + 1);
    add_event(log, "c1", 10, T0 + MIN60);
    add_event(log, "c1", 100, T0 + 2 * MIN60);
    add_event(log, "c2", 1000, T0 + 3 * MIN60);
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    assert_true(es_repo_log(repo) == log);
    assert_non_null(es_repo_upcasters(repo));

    /* to the end */
    c = load_counter(repo, &agg, "c1", ES_RANGE_ALL);
    assert_true(c->total == 111);
    assert_int_equal(c->adds, 3);
    assert_true(es_aggregate_version(agg) == 3);
    assert_true(es_aggregate_folded(agg) == 3);
    assert_true(es_aggregate_time_us(agg) == T0 + 2 * MIN60);
    assert_string_equal(es_aggregate_stream_id(agg), "c1");
    assert_true(es_aggregate_position(agg).offset >= 0);
    {
        int32_t parts = 0;
        assert_int_equal(es_log_partition_count(log, &parts, "counter"), 0);
        assert_int_equal(es_aggregate_position(agg).partition,
                         es_partition_for("c1", 2, parts));
    }
    es_aggregate_free(agg);

    /* to a version */
    c = load_counter(repo, &agg, "c1", ES_RANGE_TO_VERSION(2));
    assert_true(c->total == 11);
    assert_true(es_aggregate_version(agg) == 2);
    assert_true(es_aggregate_time_us(agg) == T0 + MIN60);
    es_aggregate_free(agg);
    c = load_counter(repo, &agg, "c1", ES_RANGE_TO_VERSION(1));
    assert_true(c->total == 1);
    es_aggregate_free(agg);
    c = load_counter(repo, &agg, "c1", ES_RANGE_TO_VERSION(99)); /* past the end */
    assert_true(c->total == 111);
    assert_true(es_aggregate_version(agg) == 3);
    es_aggregate_free(agg);

    /* as of a time: the last event at or before it */
    c = load_counter(repo, &agg, "c1", ES_RANGE_AS_OF(T0 + MIN60)); /* exactly */
    assert_true(c->total == 11);
    assert_true(es_aggregate_version(agg) == 2);
    es_aggregate_free(agg);
    c = load_counter(repo, &agg, "c1", ES_RANGE_AS_OF(T0 + MIN60 + MIN60 / 2)); /* between */
    assert_true(c->total == 11);
    assert_true(es_aggregate_version(agg) == 2);
    es_aggregate_free(agg);
    c = load_counter(repo, &agg, "c1", ES_RANGE_AS_OF(T0 + MIN60 - 1)); /* just before */
    assert_true(c->total == 1);
    es_aggregate_free(agg);
    c = load_counter(repo, &agg, "c1", ES_RANGE_AS_OF(T0 - 1)); /* before the first */
    assert_true(c->total == 0);
    assert_true(es_aggregate_version(agg) == 0);
    assert_true(es_aggregate_folded(agg) == 0);
    es_aggregate_free(agg);
    c = load_counter(repo, &agg, "c1", ES_RANGE_AS_OF(INT64_MAX));
    assert_true(es_aggregate_version(agg) == 3);
    es_aggregate_free(agg);

    /* a stream that does not exist: version 0, not an error */
    c = load_counter(repo, &agg, "nobody", ES_RANGE_ALL);
    assert_true(es_aggregate_version(agg) == 0);
    assert_true(c->total == 0 && c->adds == 0);
    assert_string_equal(es_errmsg(repo), "");
    es_aggregate_free(agg);
    /* the other stream was not mixed in */
    c = load_counter(repo, &agg, "c2", ES_RANGE_ALL);
    assert_true(c->total == 2000);
    es_aggregate_free(agg);

    /* bad arguments */
    agg = (es_aggregate *)&agg;
    assert_int_equal(es_repo_load(repo, &agg, NULL, "c1", ES_RANGE_ALL), ES_EINVAL);
    assert_null(agg);
    assert_contains(es_errmsg(repo), "no aggregate type or stream id");
    assert_int_equal(es_repo_load(repo, &agg, &counter_type, NULL, ES_RANGE_ALL), ES_EINVAL);
    assert_int_equal(es_repo_load(repo, NULL, &counter_type, "c1", ES_RANGE_ALL), ES_EINVAL);
    assert_contains(es_errmsg(repo), "no output");
    assert_int_equal(es_repo_load(NULL, &agg, &counter_type, "c1", ES_RANGE_ALL), ES_EINVAL);
    assert_int_equal(es_repo_load(repo, &agg, &counter_type, "c1",
                                  (es_range){(es_range_kind)7, 0, 0}), ES_EINVAL);
    assert_null(agg);

    es_repo_free(repo);
    es_log_close(log);
}

/* The fold fails on an event its type cannot apply, naming it. */
static void test_load_errors(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_repo *repo = NULL;
    es_aggregate *agg = NULL;
    json_t *p = json_object();
    es_event ev = {.type = "Renamed", .payload = p};
    (void)state;
    add_event(log, "c1", 1, 0);
    assert_int_equal(es_log_append(log, NULL, "counter", "c1", 1, &ev, 1), 0);
    ev.type = "Added"; /* without "n": apply refuses it */
    assert_int_equal(es_log_append(log, NULL, "counter", "c3", ES_EXPECT_ANY, &ev, 1), 0);
    json_decref(p);
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    assert_int_equal(es_repo_load(repo, &agg, &counter_type, "c1", ES_RANGE_ALL),
                     ES_EUNHANDLED);
    assert_null(agg);
    assert_contains(es_errmsg(repo), "counter/c1");
    assert_contains(es_errmsg(repo), "version 2: no apply for event type 'Renamed'");
    assert_int_equal(es_repo_load(repo, &agg, &counter_type, "c3", ES_RANGE_ALL), ES_EINVAL);
    assert_contains(es_errmsg(repo), "apply of 'Added' failed");
    /* up to the good part it loads */
    assert_int_equal(es_repo_load(repo, &agg, &counter_type, "c1", ES_RANGE_TO_VERSION(1)), 0);
    es_aggregate_free(agg);
    es_repo_free(repo);
    es_log_close(log);
}

typedef struct trail {
    int n;
    int stop_at;
    int64_t totals[8];
    int64_t versions[8];
} trail;

static int on_event(const es_event *ev, const void *state, void *user_data)
{
    trail *t = user_data;
    if (t->n < 8) {
        t->totals[t->n] = ((const counter *)state)->total;
        t->versions[t->n] = ev->version;
    }
    t->n++;
    return t->n == t->stop_at;
}

static void test_replay_audit_trail(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_repo *repo = NULL;
    es_aggregate *agg = NULL;
    trail t;
    (void)state;
    add_event(log, "c1", 1, T0);
    add_event(log, "c1", 2, T0 + 1);
    add_event(log, "c1", 4, T0 + 2);
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);

    memset(&t, 0, sizeof t);
    assert_int_equal(es_repo_replay(repo, &agg, &counter_type, "c1", ES_RANGE_ALL,
                                    on_event, &t), 0);
    assert_int_equal(t.n, 3);
    assert_true(t.totals[0] == 1 && t.totals[1] == 3 && t.totals[2] == 7);
    assert_true(t.versions[0] == 1 && t.versions[2] == 3);
    assert_true(((const counter *)es_aggregate_state(agg))->total == 7);
    es_aggregate_free(agg);

    /* as of a time, without the aggregate */
    memset(&t, 0, sizeof t);
    assert_int_equal(es_repo_replay(repo, NULL, &counter_type, "c1", ES_RANGE_AS_OF(T0 + 1),
                                    on_event, &t), 0);
    assert_int_equal(t.n, 2);

    /* the callback stops it */
    memset(&t, 0, sizeof t);
    t.stop_at = 2;
    agg = (es_aggregate *)&agg;
    assert_int_equal(es_repo_replay(repo, &agg, &counter_type, "c1", ES_RANGE_ALL,
                                    on_event, &t), ES_EUSER);
    assert_null(agg);
    assert_int_equal(t.n, 2);
    assert_contains(es_errmsg(repo), "stopped by the callback at version 2");
    es_repo_free(repo);
    es_log_close(log);
}

/* ---- Executing ------------------------------------------------------------ */

static void test_repo_new_arguments(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_repo *repo = (es_repo *)&repo;
    es_repo_options o = ES_REPO_OPTIONS_INIT;
    (void)state;
    assert_int_equal(es_repo_new(&repo, NULL, NULL), ES_EINVAL);
    assert_null(repo);
    assert_int_equal(es_repo_new(NULL, log, NULL), ES_EINVAL);
    o.max_attempts = 0;
    assert_int_equal(es_repo_new(&repo, log, &o), ES_EINVAL);
    o.max_attempts = 1;
    o.version = 99;
    assert_int_equal(es_repo_new(&repo, log, &o), ES_EINVAL);
    o.version = ES_REPO_OPTIONS_VERSION;
    assert_int_equal(es_repo_new(&repo, log, &o), 0);
    es_repo_free(repo);
    es_repo_free(NULL);
    assert_null(es_repo_log(NULL));
    assert_null(es_repo_upcasters(NULL));
    es_log_close(log);
}

static void test_execute_bank(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_repo *repo = NULL;
    es_aggregate *agg = NULL;
    es_execute_result r;
    const bank_account *a;
    bank_command open = {BANK_OPEN, "Ada", "EUR", 0};
    bank_command dep = {BANK_DEPOSIT, NULL, NULL, 2500};
    bank_command wd = {BANK_WITHDRAW, NULL, NULL, 3000};
    (void)state;
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);

    assert_int_equal(es_repo_execute(repo, &r, &bank_account_type, "acct-42", bank_decide,
                                     &open, NULL, NULL), 0);
    assert_true(r.version == 1);
    assert_int_equal(r.events, 1);
    assert_int_equal(r.attempts, 1);
    assert_true(r.last.offset >= 0);
    assert_int_equal(bank_execute(repo, "acct-42", &dep), 0);

    /* refused: the reason in the message, and nothing appended */
    memset(&r, 0xff, sizeof r);
    assert_int_equal(es_repo_execute(repo, &r, &bank_account_type, "acct-42", bank_decide,
                                     &wd, NULL, NULL), ES_EREFUSED);
    assert_contains(es_errmsg(repo), "account/acct-42: command refused: insufficient funds: "
                                     "balance 25.00 EUR, withdrawal 30.00 EUR");
    assert_int_equal(r.events, 0);
    assert_int_equal(es_repo_load(repo, &agg, &bank_account_type, "acct-42", ES_RANGE_ALL), 0);
    assert_true(es_aggregate_version(agg) == 2);
    a = es_aggregate_state(agg);
    assert_true(a->balance == 2500);
    assert_string_equal(a->owner, "Ada");
    es_aggregate_free(agg);
    /* opening twice is refused too */
    assert_int_equal(bank_execute(repo, "acct-42", &open), ES_EREFUSED);
    assert_contains(es_errmsg(repo), "already open");

    wd.amount = 2500;
    assert_int_equal(bank_execute(repo, "acct-42", &wd), 0);
    assert_int_equal(es_repo_load(repo, &agg, &bank_account_type, "acct-42", ES_RANGE_ALL), 0);
    a = es_aggregate_state(agg);
    assert_true(a->balance == 0);
    assert_true(a->transactions == 2);
    assert_true(es_aggregate_version(agg) == 3);
    es_aggregate_free(agg);
    /* an account that does not exist */
    assert_int_equal(bank_execute(repo, "acct-0", &dep), ES_EREFUSED);
    assert_contains(es_errmsg(repo), "no such account");
    es_repo_free(repo);
    es_log_close(log);
}

typedef struct seen_event {
    int n;
    char correlation[8][64];
    char causation[8][64];
    char ids[8][ES_UUID_BUFSZ];
    json_t *meta[8];
    int64_t occurred[8];
} seen_event;

static int collect(const es_event *ev, void *user_data)
{
    seen_event *s = user_data;
    if (s->n < 8) {
        snprintf(s->correlation[s->n], 64, "%s", ev->correlation_id ? ev->correlation_id : "(null)");
        snprintf(s->causation[s->n], 64, "%s", ev->causation_id ? ev->causation_id : "(null)");
        snprintf(s->ids[s->n], ES_UUID_BUFSZ, "%s", ev->id ? ev->id : "");
        s->meta[s->n] = json_incref(ev->meta);
        s->occurred[s->n] = ev->occurred_us;
    }
    s->n++;
    return 0;
}

static void test_execute_outcomes(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_repo *repo = NULL;
    es_aggregate *agg = NULL;
    es_execute_result r;
    decide_log dl;
    cmd k;
    (void)state;
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);

    /* a new stream: decide sees version 0 */
    memset(&dl, 0, sizeof dl);
    k = (cmd){CMD_ADD, 5};
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c1", counter_decide, &k,
                                     &dl, NULL), 0);
    assert_int_equal(dl.calls, 1);
    assert_true(dl.versions[0] == 0);
    assert_true(r.version == 1 && r.events == 1 && r.attempts == 1);

    /* nothing to do: 0 events, nothing appended, still success */
    k = (cmd){CMD_NOTHING, 0};
    memset(&r, 0xff, sizeof r);
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c1", counter_decide, &k,
                                     NULL, NULL), 0);
    assert_int_equal(r.events, 0);
    assert_true(r.version == 1);
    assert_int_equal(r.attempts, 1);
    assert_true(stream_version(repo, "c1") == 1);
    /* nothing to do on a stream that does not exist does not create it */
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c-none", counter_decide, &k,
                                     NULL, NULL), 0);
    assert_true(r.version == 0 && r.events == 0);
    {
        seen_event none;
        memset(&none, 0, sizeof none);
        assert_int_equal(es_log_read_stream(log, "counter", "c-none", NULL, collect, &none), 0);
        assert_int_equal(none.n, 0);
    }

    /* es_refuse counts even when decide then returns 0: nothing appended */
    k = (cmd){CMD_EMIT_REFUSE_RETURN_0, 0};
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c1", counter_decide, &k,
                                     NULL, NULL), ES_EREFUSED);
    assert_contains(es_errmsg(repo), "changed my mind");
    assert_true(stream_version(repo, "c1") == 1);

    /* several events in one commit */
    k = (cmd){CMD_ADD_MANY, 6}; /* 1+2+..+6 = 21; more than the emitter's first block */
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c1", counter_decide, &k,
                                     NULL, NULL), 0);
    assert_true(r.version == 7);
    assert_int_equal(r.events, 6);
    assert_true(((const counter *)load_counter(repo, &agg, "c1", ES_RANGE_ALL))->total == 26);
    es_aggregate_free(agg);

    /* refused with a reason, and without one */
    k = (cmd){CMD_REFUSE, 0};
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c1", counter_decide, &k,
                                     NULL, NULL), ES_EREFUSED);
    assert_string_equal(es_errmsg(repo), "counter/c1: command refused: the total 26 is too small");
    k = (cmd){CMD_REFUSE_BARE, 0};
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c1", counter_decide, &k,
                                     NULL, NULL), ES_EREFUSED);
    assert_contains(es_errmsg(repo), "command refused: no reason given");
    /* decide errors */
    k = (cmd){CMD_FAIL, 0};
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c1", counter_decide, &k,
                                     NULL, NULL), ES_EIO);
    assert_contains(es_errmsg(repo), "counter/c1: decide failed: input/output error");
    k = (cmd){CMD_FAIL_POSITIVE, 0};
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c1", counter_decide, &k,
                                     NULL, NULL), ES_EUSER);
    k = (cmd){CMD_BAD_PAYLOAD, 0};
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c1", counter_decide, &k,
                                     NULL, NULL), ES_EINVAL);
    assert_contains(es_errmsg(repo), "decide failed");
    /* none of them appended anything */
    assert_true(stream_version(repo, "c1") == 7);

    /* bad arguments */
    k = (cmd){CMD_ADD, 1};
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c1", NULL, &k, NULL, NULL),
                     ES_EINVAL);
    assert_contains(es_errmsg(repo), "no aggregate type, stream id or decide function");
    assert_int_equal(es_repo_execute(repo, &r, NULL, "c1", counter_decide, &k, NULL, NULL),
                     ES_EINVAL);
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, NULL, counter_decide, &k,
                                     NULL, NULL), ES_EINVAL);
    assert_int_equal(es_repo_execute(NULL, &r, &counter_type, "c1", counter_decide, &k,
                                     NULL, NULL), ES_EINVAL);
    {
        es_execute_options o = ES_EXECUTE_OPTIONS_INIT;
        o.version = 42;
        assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c1", counter_decide, &k,
                                         NULL, &o), ES_EINVAL);
        assert_contains(es_errmsg(repo), "unknown es_execute_options version 42");
    }
    /* a bad stream id is the log's complaint, passed on */
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, "", counter_decide, &k,
                                     NULL, NULL), ES_EINVAL);
    assert_contains(es_errmsg(repo), "stream id is empty");
    /* out may be NULL */
    assert_int_equal(es_repo_execute(repo, NULL, &counter_type, "c1", counter_decide, &k,
                                     NULL, NULL), 0);
    assert_true(stream_version(repo, "c1") == 8);
    assert_string_equal(es_errmsg(repo), "");
    es_repo_free(repo);
    es_log_close(log);
}

/* es_emit_new steals the payload even when it refuses it (ASan: no leak). */
static int decide_emit_errors(const void *state, int64_t version, const void *command,
                              es_emitter *em, void *user_data)
{
    (void)state;
    (void)version;
    (void)command;
    (void)user_data;
    assert_int_equal(es_emit_new(em, NULL, json_object()), ES_EINVAL);
    assert_int_equal(es_emit_new(em, "", json_object()), ES_EINVAL);
    assert_int_equal(es_emit_new(em, "Added", json_string("x")), ES_EINVAL);
    assert_int_equal(es_emit_new(em, "Added", NULL), ES_EINVAL);
    assert_int_equal(es_emit_new(NULL, "Added", json_object()), ES_EINVAL);
    assert_int_equal(es_refuse(NULL, "x"), ES_EREFUSED);
    return es_emit_new(em, "Added", json_pack("{s:i}", "n", 1));
}

static void test_emitter_arguments(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_repo *repo = NULL;
    es_execute_result r;
    (void)state;
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c1", decide_emit_errors, NULL,
                                     NULL, NULL), 0);
    assert_int_equal(r.events, 1);
    es_repo_free(repo);
    es_log_close(log);
}

static void test_execute_options_stamped(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_repo *repo = NULL;
    es_execute_options o = ES_EXECUTE_OPTIONS_INIT;
    json_t *meta = json_pack("{s:s,s:i}", "user", "ada", "attempt", 1);
    seen_event s;
    cmd k = {CMD_ADD_MANY, 3};
    char corr[] = "corr-123", cause[] = "cause-456";
    int64_t before = es_time_now_us(), after;
    (void)state;
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    o.correlation_id = corr;
    o.causation_id = cause;
    o.meta = meta;
    assert_int_equal(es_repo_execute(repo, NULL, &counter_type, "c1", counter_decide, &k,
                                     NULL, &o), 0);
    after = es_time_now_us();
    assert_int_equal(meta->refcount, 1); /* borrowed, not kept */
    /* without options: nothing stamped */
    k = (cmd){CMD_ADD, 1};
    assert_int_equal(es_repo_execute(repo, NULL, &counter_type, "c1", counter_decide, &k,
                                     NULL, NULL), 0);

    memset(&s, 0, sizeof s);
    assert_int_equal(es_log_read_stream(log, "counter", "c1", NULL, collect, &s), 0);
    assert_int_equal(s.n, 4);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(s.correlation[i], "corr-123");
        assert_string_equal(s.causation[i], "cause-456");
        assert_non_null(s.meta[i]);
        assert_true(json_equal(s.meta[i], meta));
        /* ids: UUIDv7, distinct, increasing; time: now */
        assert_int_equal(strlen(s.ids[i]), ES_ID_LEN);
        assert_int_equal(s.ids[i][14], '7');
        if (i > 0)
            assert_true(strcmp(s.ids[i - 1], s.ids[i]) < 0);
        assert_true(s.occurred[i] >= before && s.occurred[i] <= after);
    }
    assert_string_equal(s.correlation[3], "(null)");
    assert_string_equal(s.causation[3], "(null)");
    assert_null(s.meta[3]);
    assert_true(strcmp(s.ids[2], s.ids[3]) < 0);
    for (int i = 0; i < 4; i++)
        json_decref(s.meta[i]);
    json_decref(meta);
    es_repo_free(repo);
    es_log_close(log);
}

/* ---- Conflicts: two handles on one SQLite file -------------------------- */

typedef struct racer {
    es_repo *other;      /* the concurrent writer's repository */
    int interfere;       /* how many of the first decides append through it */
    int calls;
    int64_t versions[8];
    int64_t totals[8];
    int other_rc;
} racer;

/* Decides +1; on its first `interfere` calls, first lets the other writer
 * add 100 to the same stream (between this load and this append). */
static int racing_decide(const void *state, int64_t version, const void *command,
                         es_emitter *em, void *user_data)
{
    racer *r = user_data;
    const counter *c = state;
    (void)command;
    if (r->calls < 8) {
        r->versions[r->calls] = version;
        r->totals[r->calls] = c->total;
    }
    if (r->calls++ < r->interfere) {
        cmd k = {CMD_ADD, 100};
        r->other_rc = es_repo_execute(r->other, NULL, &counter_type, "c1", counter_decide,
                                      &k, NULL, NULL);
        if (r->other_rc != 0)
            print_error("the other writer: %s\n", es_errmsg(r->other));
    }
    return es_emit_new(em, "Added", json_pack("{s:i}", "n", 1));
}

typedef struct two {
    es_log *log1, *log2;
    es_repo *repo1, *repo2;
} two;

static void open_two(two *t, int max_attempts)
{
    const char *uri = es_test_fresh_log_uri();
    es_repo_options o = ES_REPO_OPTIONS_INIT;
    o.max_attempts = max_attempts;
    assert_int_equal(es_log_open(&t->log1, uri), 0);
    assert_int_equal(es_log_open(&t->log2, uri), 0);
    assert_int_equal(es_repo_new(&t->repo1, t->log1, &o), 0);
    assert_int_equal(es_repo_new(&t->repo2, t->log2, NULL), 0);
}

static void close_two(two *t)
{
    es_repo_free(t->repo1);
    es_repo_free(t->repo2);
    es_log_close(t->log1);
    es_log_close(t->log2);
}

static void test_conflict_retry(void **state)
{
    two t;
    racer r;
    es_execute_result res;
    es_aggregate *agg = NULL;
    const counter *c;
    (void)state;
    open_two(&t, 5);
    add_event(t.log1, "c1", 1, 0);
    add_event(t.log1, "c1", 1, 0);

    memset(&r, 0, sizeof r);
    r.other = t.repo2;
    r.interfere = 1;
    assert_int_equal(es_repo_execute(t.repo1, &res, &counter_type, "c1", racing_decide, NULL,
                                     &r, NULL), 0);
    assert_int_equal(r.other_rc, 0);
    assert_int_equal(res.attempts, 2);
    assert_int_equal(r.calls, 2);
    /* the second decide saw the other writer's event */
    assert_true(r.versions[0] == 2 && r.totals[0] == 2);
    assert_true(r.versions[1] == 3 && r.totals[1] == 102);
    assert_true(res.version == 4);
    assert_int_equal(res.events, 1);
    /* both writes are in the log, through either handle */
    c = load_counter(t.repo2, &agg, "c1", ES_RANGE_ALL);
    assert_true(c->total == 103);
    assert_true(es_aggregate_version(agg) == 4);
    es_aggregate_free(agg);
    c = load_counter(t.repo1, &agg, "c1", ES_RANGE_ALL);
    assert_true(c->total == 103);
    es_aggregate_free(agg);
    close_two(&t);
}

/* The race on a stream's very first event: both expect no stream. */
static void test_conflict_on_new_stream(void **state)
{
    two t;
    racer r;
    es_execute_result res;
    es_aggregate *agg = NULL;
    (void)state;
    open_two(&t, 5);
    memset(&r, 0, sizeof r);
    r.other = t.repo2;
    r.interfere = 1;
    assert_int_equal(es_repo_execute(t.repo1, &res, &counter_type, "c1", racing_decide, NULL,
                                     &r, NULL), 0);
    assert_int_equal(res.attempts, 2);
    assert_true(r.versions[0] == 0 && r.versions[1] == 1);
    assert_true(load_counter(t.repo1, &agg, "c1", ES_RANGE_ALL)->total == 101);
    es_aggregate_free(agg);
    close_two(&t);
}

static void test_conflict_gives_up(void **state)
{
    two t;
    racer r;
    es_execute_result res;
    (void)state;

    /* one attempt: the conflict comes back, naming both versions */
    open_two(&t, 1);
    add_event(t.log1, "c1", 1, 0);
    add_event(t.log1, "c1", 1, 0);
    add_event(t.log1, "c1", 1, 0);
    memset(&r, 0, sizeof r);
    r.other = t.repo2;
    r.interfere = 1;
    assert_int_equal(es_repo_execute(t.repo1, &res, &counter_type, "c1", racing_decide, NULL,
                                     &r, NULL), ES_ECONFLICT);
    assert_int_equal(res.attempts, 1);
    assert_int_equal(res.events, 0);
    assert_int_equal(r.calls, 1);
    assert_contains(es_errmsg(t.repo1), "counter/c1");
    assert_contains(es_errmsg(t.repo1), "still conflicting after 1 attempts");
    assert_contains(es_errmsg(t.repo1), "expected 3, stream is at 4");
    /* only the other writer's event went in */
    assert_true(stream_version(t.repo1, "c1") == 4);
    close_two(&t);

    /* an interfering writer on every attempt exhausts them all */
    open_two(&t, 3);
    memset(&r, 0, sizeof r);
    r.other = t.repo2;
    r.interfere = 100;
    assert_int_equal(es_repo_execute(t.repo1, &res, &counter_type, "c1", racing_decide, NULL,
                                     &r, NULL), ES_ECONFLICT);
    assert_int_equal(res.attempts, 3);
    assert_int_equal(r.calls, 3);
    assert_contains(es_errmsg(t.repo1), "still conflicting after 3 attempts");
    assert_contains(es_errmsg(t.repo1), "expected 2, stream is at 3");
    assert_true(stream_version(t.repo2, "c1") == 3);
    close_two(&t);
}

/* ---- Allocation failures ------------------------------------------------- */

static long alloc_calls, fail_at;
static int fail_all_after;

static void *failing_malloc(size_t n)
{
    alloc_calls++;
    if (alloc_calls == fail_at || (fail_all_after && alloc_calls > fail_at))
        return NULL;
    return malloc(n);
}

static void inject(long n, int persistent)
{
    alloc_calls = 0;
    fail_at = n;
    fail_all_after = persistent;
    es_set_allocator(failing_malloc, free);
}

static void restore(void)
{
    es_set_allocator(NULL, NULL);
}

/*
 * Runs op with the Nth allocation failing, N = 1, 2, ... until op succeeds;
 * every failing run must return an error (and leak nothing: ASan).
 * Returns how many failing runs there were.
 */
static long chaos(int (*op)(void *), void *arg, int persistent, long first, long limit)
{
    long n;
    for (n = first; n <= limit; n++) {
        int rc;
        inject(n, persistent);
        rc = op(arg);
        restore();
        if (rc == 0)
            break;
        assert_true(rc < 0);
    }
    assert_true(n <= limit); /* it did succeed eventually */
    return n - first;
}

static const char *full_envelope =
    "{\"aggregate_type\":\"account\",\"stream_id\":\"acct-42\",\"type\":\"Deposited\","
    "\"version\":3,\"occurred_at\":\"2026-03-01T10:00:00.000001Z\","
    "\"occurred_us\":1772359200000001,\"schema\":2,"
    "\"id\":\"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\",\"correlation_id\":\"c\","
    "\"causation_id\":\"d\",\"data\":{\"amount\":2500,\"tags\":[\"a\",\"b\"],"
    "\"nested\":{\"x\":1.5}},\"meta\":{\"ip\":\"10.0.0.1\"},"
    "\"position\":{\"partition\":1,\"offset\":17},\"commit\":{\"id\":\"k\",\"size\":2}}";

static int op_decode(void *arg)
{
    es_event *ev = NULL;
    es_error err;
    int rc = es_event_decode(&ev, full_envelope, strlen(full_envelope), &err);
    (void)arg;
    if (rc == 0) {
        assert_non_null(ev);
        assert_string_equal(ev->causation_id, "d");
    } else {
        assert_null(ev);
    }
    es_event_free(ev);
    return rc;
}

static int op_encode(void *arg)
{
    es_event *ev = arg;
    char *text = NULL;
    int rc = es_event_encode(&text, ev);
    if (rc == 0)
        assert_contains(text, "\"stream_id\":\"acct-42\"");
    else
        assert_null(text);
    es_free(text);
    return rc;
}

/*
 * How many allocations jansson's parser makes for text. jansson 2.14 does not
 * survive every allocation failure inside json_loadb: lex_save() drops the
 * result of strbuffer_append_byte(), and the lexer then reads past its
 * buffer (akheron/jansson issue #362, fixes proposed in PRs #735 and #747).
 * es_event_decode parses first, so its own allocations are the ones after
 * these; the decode chaos starts there.
 */
static long parser_allocations(const char *text)
{
    json_error_t jerr;
    json_t *j;
    inject(0, 0); /* count, never fail */
    j = json_loadb(text, strlen(text), JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    restore();
    assert_non_null(j);
    json_decref(j);
    return alloc_calls;
}

static void test_alloc_failures_codec(void **state)
{
    es_event *ev = NULL;
    es_error err;
    long failures, parser = parser_allocations(full_envelope);
    (void)state;
    assert_true(parser > 10);
    failures = chaos(op_decode, NULL, 0, parser + 1, 10000);
    assert_true(failures > 5); /* it did allocate, and failures were injected */
    chaos(op_decode, NULL, 1, parser + 1, 10000);
    assert_int_equal(es_event_decode(&ev, full_envelope, strlen(full_envelope), &err), 0);
    failures = chaos(op_encode, ev, 0, 1, 10000);
    assert_true(failures > 3);
    chaos(op_encode, ev, 1, 1, 10000);
    es_event_free(ev);
}

typedef struct load_arg {
    es_repo *repo;
    int64_t expect_total;
} load_arg;

static int op_load(void *arg)
{
    load_arg *a = arg;
    es_aggregate *agg = NULL;
    int rc = es_repo_load(a->repo, &agg, &counter_type, "c1", ES_RANGE_ALL);
    if (rc == 0) {
        assert_true(((const counter *)es_aggregate_state(agg))->total == a->expect_total);
        assert_true(es_aggregate_version(agg) == 3);
    } else {
        assert_null(agg);
        assert_true(es_errmsg(a->repo)[0] != '\0');
    }
    es_aggregate_free(agg);
    return rc;
}

static int op_execute(void *arg)
{
    load_arg *a = arg;
    cmd k = {CMD_ADD_MANY, 2};
    es_execute_options o = ES_EXECUTE_OPTIONS_INIT;
    int rc;
    o.correlation_id = "corr";
    rc = es_repo_execute(a->repo, NULL, &counter_type, "c1", counter_decide, &k, NULL, &o);
    if (rc != 0)
        assert_true(es_errmsg(a->repo)[0] != '\0');
    return rc;
}

/* A command with an id whose decide uses es_emit_with (strings copied). */
static int emit_with_decide(const void *state, int64_t version, const void *command,
                            es_emitter *em, void *user_data)
{
    es_emit_options eo = ES_EMIT_OPTIONS_INIT;
    (void)state;
    (void)version;
    (void)command;
    (void)user_data;
    eo.correlation_id = "corr-w";
    eo.causation_id = "cause-w";
    eo.schema = 2;
    for (int i = 0; i < 2; i++) {
        int rc = es_emit_with(em, "Added", json_pack("{s:i}", "n", 1), &eo);
        if (rc)
            return rc;
    }
    return 0;
}

static int op_execute_command_id(void *arg)
{
    load_arg *a = arg;
    es_execute_options o = ES_EXECUTE_OPTIONS_INIT;
    es_execute_result r;
    int rc;
    o.command_id = "chaos-1";
    rc = es_repo_execute(a->repo, &r, &counter_type, "c7", emit_with_decide, NULL, NULL, &o);
    if (rc != 0)
        assert_true(es_errmsg(a->repo)[0] != '\0');
    else
        assert_true(r.version == 2);
    return rc;
}

static int op_new_repo(void *arg)
{
    es_repo *repo = NULL;
    int rc = es_repo_new(&repo, arg, NULL);
    if (rc != 0)
        assert_null(repo);
    es_repo_free(repo);
    return rc;
}

static void test_alloc_failures_repo(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_repo *repo = NULL;
    json_t *p = json_pack("{s:i}", "n", 1);
    es_event ev = {.type = "Added", .payload = p};
    load_arg a;
    long failures;
    (void)state;
    add_event(log, "c1", 1, 0);
    add_event(log, "c1", 2, 0);
    add_event(log, "c1", 4, 0);
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    a.repo = repo;
    a.expect_total = 7;
    failures = chaos(op_load, &a, 0, 1, 100000);
    assert_true(failures > 3);
    chaos(op_load, &a, 1, 1, 100000);

    /* the repository itself */
    chaos(op_new_repo, log, 0, 1, 1000);

    /* On Kafka each failed append below makes a new producer (and, for
     * transactions, a coordinator round): minutes for thousands of
     * allocation points. The loads above run there (they found a record
     * rejected for want of memory); the appends' all-or-none is the
     * SQLite log's part. */
    if (getenv("ESFOLD_TEST_LOG_URI_BASE")) {
        json_decref(p);
        es_repo_free(repo);
        es_log_close(log);
        return;
    }

    /* execute: a failing run appends nothing (the commit is all or none),
     * the run that succeeds appends exactly its two events */
    {
        long n;
        for (n = 1; n < 100000; n++) {
            int rc;
            int64_t v;
            inject(n, 0);
            rc = op_execute(&a);
            restore();
            v = stream_version(repo, "c1");
            if (rc == 0) {
                assert_true(v == 5);
                break;
            }
            assert_true(rc < 0);
            if (v != 3)
                print_error("allocation %ld failed: execute returned %d (%s) but the "
                            "stream is at %lld\n", n, rc, es_errmsg(repo), (long long)v);
            assert_true(v == 3);
        }
        assert_true(n > 3 && n < 100000);
    }

    /* a log append on its own */
    {
        long n;
        for (n = 1; n < 100000; n++) {
            int rc;
            inject(n, 0);
            rc = es_log_append(log, NULL, "counter", "c9", ES_EXPECT_ANY, &ev, 1);
            restore();
            if (rc == 0)
                break;
            assert_true(rc < 0);
            assert_true(stream_version(repo, "c9") == 0);
        }
        assert_true(stream_version(repo, "c9") == 1);
    }

    /* es_emit_with and a command id: a failing run appends nothing, a
     * retry after the success appends nothing either */
    {
        long n;
        for (n = 1; n < 100000; n++) {
            int rc;
            inject(n, 0);
            rc = op_execute_command_id(&a);
            restore();
            if (rc == 0)
                break;
            assert_true(rc < 0);
            assert_true(stream_version(repo, "c7") == 0);
        }
        assert_true(n > 3 && n < 100000);
        assert_true(stream_version(repo, "c7") == 2);
        chaos(op_execute_command_id, &a, 0, 1, 100000);
        assert_true(stream_version(repo, "c7") == 2);
    }
    json_decref(p);
    es_repo_free(repo);
    es_log_close(log);
}


/* ---- The API of issue 10: schemas, conflicts as data, command ids ------- */

/* A cart whose ItemAdded moved to schema 2 (a price); schema 1 events are
 * upcast with price 0. */
typedef struct cart {
    int items;
    int64_t cents;
} cart;

static int upcasts; /* how many times the 1->2 upcaster ran */

static json_t *item_added_1_to_2(json_t *payload, void *user_data)
{
    (void)user_data;
    upcasts++;
    json_object_set_new(payload, "price", json_integer(0));
    return payload;
}

static int apply_item_added(void *state, const es_event *ev)
{
    cart *c = state;
    json_t *price = json_object_get(ev->payload, "price");
    if (ev->schema < 2)
        return es_apply_fail(ev, "schema %d, apply knows 2 and later", (int)ev->schema);
    if (!json_is_integer(price))
        return es_apply_fail(ev, "no price in item %s",
                             json_string_value(json_object_get(ev->payload, "sku")));
    c->items++;
    c->cents += json_integer_value(price);
    return 0;
}

static int apply_item_removed(void *state, const es_event *ev)
{
    cart *c = state;
    const char *sku = json_string_value(json_object_get(ev->payload, "sku"));
    if (c->items == 0)
        return es_apply_fail(ev, "no item '%s' in the cart", sku ? sku : "?");
    c->items--;
    return 0;
}

static const es_handler cart_handlers[] = {
    {"ItemAdded", apply_item_added},
    {"ItemRemoved", apply_item_removed},
    {NULL, NULL},
};

static const es_event_schema cart_schemas[] = {
    {"ItemAdded", 2},
    {NULL, 0},
};

static const es_aggregate_type cart_type = {
    .name = "cart",
    .state_size = sizeof(cart),
    .handlers = cart_handlers,
    .schemas = cart_schemas,
};

typedef struct add_item {
    const char *sku;
    int price;
    const es_emit_options *opts; /* NULL: es_emit_new */
    int calls;
} add_item;

static int cart_decide(const void *state, int64_t version, const void *command,
                       es_emitter *em, void *user_data)
{
    add_item *k = (add_item *)command;
    json_t *p = json_pack("{s:s,s:i}", "sku", k->sku, "price", k->price);
    (void)state;
    (void)version;
    (void)user_data;
    k->calls++;
    return k->opts ? es_emit_with(em, "ItemAdded", p, k->opts)
                   : es_emit_new(em, "ItemAdded", p);
}

typedef struct stored {
    int n;
    int32_t schema[8];
    char ids[8][ES_UUID_BUFSZ];
    char corr[8][64], cause[8][64];
    int64_t occurred[8];
    json_t *meta[8];
    es_position pos[8];
} stored;

static int collect_stored(const es_event *ev, void *user_data)
{
    stored *s = user_data;
    if (s->n < 8) {
        s->schema[s->n] = ev->schema;
        snprintf(s->ids[s->n], ES_UUID_BUFSZ, "%s", ev->id);
        snprintf(s->corr[s->n], 64, "%s", ev->correlation_id ? ev->correlation_id : "(null)");
        snprintf(s->cause[s->n], 64, "%s", ev->causation_id ? ev->causation_id : "(null)");
        s->occurred[s->n] = ev->occurred_us;
        s->meta[s->n] = json_incref(ev->meta);
        s->pos[s->n] = ev->position;
    }
    s->n++;
    return 0;
}

static void stored_free(stored *s)
{
    for (int i = 0; i < s->n && i < 8; i++)
        json_decref(s->meta[i]);
}

static void test_emit_schema_round_trip(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_repo *repo = NULL;
    es_aggregate *agg = NULL;
    es_execute_result r;
    es_event old = {.type = "ItemAdded"};
    add_item k = {"sku-1", 250, NULL, 0};
    stored s;
    const cart *c;
    (void)state;
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    assert_int_equal(es_upcasters_add(es_repo_upcasters(repo), "ItemAdded", 1, NULL, 2,
                                      item_added_1_to_2, NULL), 0);
    assert_int_equal(es_aggregate_type_schema(&cart_type, "ItemAdded"), 2);
    assert_int_equal(es_aggregate_type_schema(&cart_type, "ItemRemoved"), 1);
    assert_int_equal(es_aggregate_type_schema(&counter_type, "Added"), 1);
    /* a schema 1 event written before the change */
    old.payload = json_pack("{s:s}", "sku", "old");
    assert_int_equal(es_log_append(log, NULL, "cart", "c1", ES_EXPECT_NO_STREAM, &old, 1), 0);
    json_decref(old.payload);
    /* decide writes schema 2, labelled 2 */
    assert_int_equal(es_repo_execute(repo, &r, &cart_type, "c1", cart_decide, &k, NULL,
                                     NULL), 0);
    assert_true(r.version == 2);
    memset(&s, 0, sizeof s);
    assert_int_equal(es_log_read_stream(log, "cart", "c1", NULL, collect_stored, &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.schema[0], 1);
    assert_int_equal(s.schema[1], 2);
    stored_free(&s);
    /* the upcaster only sees the old event: the new price survives */
    upcasts = 0;
    assert_int_equal(es_repo_load(repo, &agg, &cart_type, "c1", ES_RANGE_ALL), 0);
    c = es_aggregate_state(agg);
    assert_int_equal(c->items, 2);
    assert_true(c->cents == 250);
    assert_int_equal(upcasts, 1);
    es_aggregate_free(agg);
    es_repo_free(repo);
    es_log_close(log);
}

static void test_emit_with_options(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_repo *repo = NULL;
    es_execute_result r;
    es_emit_options eo = ES_EMIT_OPTIONS_INIT;
    es_execute_options xo = ES_EXECUTE_OPTIONS_INIT;
    json_t *meta = json_pack("{s:s}", "by", "emit");
    json_t *xmeta = json_pack("{s:s}", "by", "execute");
    add_item k = {"sku-2", 100, &eo, 0};
    char id[] = "0190aaaa-0000-7000-8000-000000000001";
    stored s;
    (void)state;
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    eo.schema = 3;
    eo.id = id;
    eo.occurred_us = 1772359200000001; /* 2026-03-01T10:00:00.000001Z */
    eo.meta = meta;
    eo.correlation_id = "corr-e";
    eo.causation_id = "cause-e";
    xo.correlation_id = "corr-x";
    xo.meta = xmeta;
    assert_int_equal(es_repo_execute(repo, &r, &cart_type, "c2", cart_decide, &k, NULL,
                                     &xo), 0);
    assert_int_equal(meta->refcount, 1);
    /* what es_emit_with left at its default comes from execute's options */
    eo = (es_emit_options)ES_EMIT_OPTIONS_INIT;
    eo.causation_id = "cause-2";
    assert_int_equal(es_repo_execute(repo, &r, &cart_type, "c2", cart_decide, &k, NULL,
                                     &xo), 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(es_log_read_stream(log, "cart", "c2", NULL, collect_stored, &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.schema[0], 3);
    assert_string_equal(s.ids[0], id);
    assert_true(s.occurred[0] == 1772359200000001);
    assert_true(json_equal(s.meta[0], meta));
    assert_string_equal(s.corr[0], "corr-e");
    assert_string_equal(s.cause[0], "cause-e");
    assert_int_equal(s.schema[1], 2); /* the type's current schema */
    assert_true(strcmp(s.ids[1], id) != 0);
    assert_true(s.occurred[1] > 1772359200000001);
    assert_true(json_equal(s.meta[1], xmeta));
    assert_string_equal(s.corr[1], "corr-x");
    assert_string_equal(s.cause[1], "cause-2");
    stored_free(&s);
    /* bad options: nothing emitted, the payload still freed (ASan) */
    eo = (es_emit_options)ES_EMIT_OPTIONS_INIT;
    eo.schema = -1;
    assert_int_equal(es_repo_execute(repo, &r, &cart_type, "c2", cart_decide, &k, NULL,
                                     NULL), ES_EINVAL);
    eo.schema = 0;
    eo.version = 9;
    assert_int_equal(es_repo_execute(repo, &r, &cart_type, "c2", cart_decide, &k, NULL,
                                     NULL), ES_EINVAL);
    json_decref(meta);
    json_decref(xmeta);
    es_repo_free(repo);
    es_log_close(log);
}

static void test_apply_says_why(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_repo *repo = NULL;
    es_aggregate *agg = NULL;
    es_event ev = {.type = "ItemRemoved"};
    (void)state;
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    ev.payload = json_pack("{s:s}", "sku", "sku-9");
    assert_int_equal(es_log_append(log, NULL, "cart", "c3", ES_EXPECT_ANY, &ev, 1), 0);
    json_decref(ev.payload);
    assert_int_equal(es_repo_load(repo, &agg, &cart_type, "c3", ES_RANGE_ALL), ES_EINVAL);
    assert_null(agg);
    assert_contains(es_errmsg(repo), "cart/c3 version 1: apply of 'ItemRemoved' failed: "
                                     "no item 'sku-9' in the cart");
    /* an apply that returns a bare code says which code, never an earlier
     * apply's reason */
    ev.type = "Added";
    ev.payload = json_pack("{s:s}", "n", "not a number");
    assert_int_equal(es_log_append(log, NULL, "counter", "c3", ES_EXPECT_ANY, &ev, 1), 0);
    json_decref(ev.payload);
    assert_int_equal(es_repo_load(repo, &agg, &counter_type, "c3", ES_RANGE_ALL),
                     ES_EINVAL);
    assert_string_equal(es_errmsg(repo), "loading counter/c3: counter/c3 version 1: "
                                         "apply of 'Added' failed: invalid argument or malformed input");
    /* a reason given outside apply is not kept for the next apply */
    es_apply_fail(&ev, "stale");
    assert_int_equal(es_repo_load(repo, &agg, &counter_type, "c3", ES_RANGE_ALL),
                     ES_EINVAL);
    assert_contains(es_errmsg(repo), "failed: invalid argument");
    es_repo_free(repo);
    es_log_close(log);
}

static void test_execute_expected_version(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_repo *repo = NULL;
    es_execute_result r;
    es_execute_options o = ES_EXECUTE_OPTIONS_INIT;
    decide_log dl;
    cmd k = {CMD_ADD, 1};
    (void)state;
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    /* If-None-Match: the stream must not exist */
    o.expected_version = ES_EXPECT_NO_STREAM;
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c1", counter_decide, &k,
                                     NULL, &o), 0);
    assert_true(r.version == 1 && r.actual_version == 0);
    memset(&dl, 0, sizeof dl);
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c1", counter_decide, &k,
                                     &dl, &o), ES_ECONFLICT);
    assert_true(r.actual_version == 1);
    assert_int_equal(dl.calls, 0); /* not decided */
    assert_string_equal(es_errmsg(repo), "executing on counter/c1: version conflict: "
                                         "expected no stream, stream is at 1");
    /* If-Match */
    o.expected_version = 1;
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c1", counter_decide, &k,
                                     &dl, &o), 0);
    assert_true(r.version == 2 && r.actual_version == 1);
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c1", counter_decide, &k,
                                     &dl, &o), ES_ECONFLICT);
    assert_true(r.actual_version == 2);
    assert_int_equal(r.attempts, 1);
    assert_string_equal(es_errmsg(repo), "executing on counter/c1: version conflict: "
                                         "expected 1, stream is at 2");
    o.expected_version = 7;
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c9", counter_decide, &k,
                                     &dl, &o), ES_ECONFLICT);
    assert_true(r.actual_version == 0);
    assert_contains(es_errmsg(repo), "expected 7, stream does not exist");
    assert_int_equal(dl.calls, 1);
    o.expected_version = -2;
    assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c1", counter_decide, &k,
                                     &dl, &o), ES_EINVAL);
    /* version 1 options are still taken */
    {
        es_execute_options v1 = ES_EXECUTE_OPTIONS_INIT;
        v1.version = 1;
        v1.correlation_id = "v1";
        assert_int_equal(es_repo_execute(repo, &r, &counter_type, "c1", counter_decide, &k,
                                         NULL, &v1), 0);
        assert_true(r.version == 3);
    }
    es_repo_free(repo);
    es_log_close(log);
}

static void test_conflict_as_data_after_a_race(void **state)
{
    two t;
    racer r;
    es_execute_result res;
    es_execute_options o = ES_EXECUTE_OPTIONS_INIT;
    (void)state;
    open_two(&t, 5);
    add_event(t.log1, "c1", 1, 0);
    /* the stream is at 1 when decided, at 2 when appended: If-Match fails
     * without a retry and says where the stream is */
    memset(&r, 0, sizeof r);
    r.other = t.repo2;
    r.interfere = 1;
    o.expected_version = 1;
    assert_int_equal(es_repo_execute(t.repo1, &res, &counter_type, "c1", racing_decide,
                                     NULL, &r, &o), ES_ECONFLICT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(res.attempts, 1);
    assert_true(res.actual_version == 2);
    assert_contains(es_errmsg(t.repo1), "version conflict: expected 1, stream is at 2");
    /* without an expected version the retries end with the actual one */
    {
        es_repo_options ro = ES_REPO_OPTIONS_INIT;
        es_repo *one = NULL;
        ro.max_attempts = 1;
        assert_int_equal(es_repo_new(&one, t.log1, &ro), 0);
        memset(&r, 0, sizeof r);
        r.other = t.repo2;
        r.interfere = 1;
        assert_int_equal(es_repo_execute(one, &res, &counter_type, "c1", racing_decide,
                                         NULL, &r, NULL), ES_ECONFLICT);
        assert_true(res.actual_version == 3);
        assert_contains(es_errmsg(one), "still conflicting after 1 attempts");
        es_repo_free(one);
    }
    close_two(&t);
}

static void test_command_id_idempotent(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_repo *repo = NULL;
    es_execute_result r1, r2;
    es_execute_options o = ES_EXECUTE_OPTIONS_INIT;
    decide_log dl;
    cmd k = {CMD_ADD_MANY, 3};
    stored s;
    char want[ES_UUID_BUFSZ];
    (void)state;
    /* the derivation is UUIDv5 (SHA-1): checked against Python's uuid.uuid5 */
    assert_int_equal(es_command_event_id(want, "counter", "c1", "cmd-1", 0), 0);
    assert_string_equal(want, "dbbc1b72-c46f-5b23-af1f-ee45efafa049");
    {
        char sid[201], cid[101], got[ES_UUID_BUFSZ];
        memset(sid, 'x', 200);
        sid[200] = '\0';
        memset(cid, 'k', 100);
        cid[100] = '\0';
        assert_int_equal(es_command_event_id(got, "cart", sid, cid, 12), 0);
        assert_string_equal(got, "de962095-745a-5eb1-b854-dd0d95388086");
        assert_int_equal(es_command_event_id(got, "cart", sid, "", 0), ES_EINVAL);
    }

    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    add_event(log, "c1", 5, 0);
    o.command_id = "cmd-1";
    memset(&dl, 0, sizeof dl);
    assert_int_equal(es_repo_execute(repo, &r1, &counter_type, "c1", counter_decide, &k,
                                     &dl, &o), 0);
    assert_int_equal(dl.calls, 1);
    assert_int_equal(r1.duplicate, 0);
    assert_true(r1.version == 4 && r1.events == 3);
    /* retried (a timeout on the client): the first outcome, nothing new */
    assert_int_equal(es_repo_execute(repo, &r2, &counter_type, "c1", counter_decide, &k,
                                     &dl, &o), 0);
    assert_int_equal(dl.calls, 1);
    assert_int_equal(r2.duplicate, 1);
    assert_true(r2.version == 4 && r2.events == 3);
    assert_true(r2.last.partition == r1.last.partition && r2.last.offset == r1.last.offset);
    assert_true(r2.actual_version == 1);
    memset(&s, 0, sizeof s);
    assert_int_equal(es_log_read_stream(log, "counter", "c1", NULL, collect_stored, &s), 0);
    assert_int_equal(s.n, 4);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(es_command_event_id(want, "counter", "c1", "cmd-1", (size_t)i), 0);
        assert_string_equal(s.ids[1 + i], want);
        assert_int_equal(s.ids[1 + i][14], '5');
    }
    stored_free(&s);
    /* another command id is another command; the same id on another
     * stream too */
    o.command_id = "cmd-2";
    k = (cmd){CMD_ADD, 1};
    assert_int_equal(es_repo_execute(repo, &r2, &counter_type, "c1", counter_decide, &k,
                                     &dl, &o), 0);
    assert_true(r2.version == 5 && r2.duplicate == 0);
    o.command_id = "cmd-1";
    assert_int_equal(es_repo_execute(repo, &r2, &counter_type, "c2", counter_decide, &k,
                                     &dl, &o), 0);
    assert_true(r2.version == 1 && r2.duplicate == 0);
    /* a refused command is decided again */
    o.command_id = "cmd-3";
    k = (cmd){CMD_REFUSE, 0};
    assert_int_equal(es_repo_execute(repo, &r2, &counter_type, "c1", counter_decide, &k,
                                     &dl, &o), ES_EREFUSED);
    k = (cmd){CMD_ADD, 2};
    assert_int_equal(es_repo_execute(repo, &r2, &counter_type, "c1", counter_decide, &k,
                                     &dl, &o), 0);
    assert_true(r2.version == 6 && r2.duplicate == 0);
    o.command_id = "";
    assert_int_equal(es_repo_execute(repo, &r2, &counter_type, "c1", counter_decide, &k,
                                     &dl, &o), ES_EINVAL);
    es_repo_free(repo);
    es_log_close(log);
}

/* Two executions of one command racing: the second's load comes before
 * the first's append, so only the log can tell; one commit either way. */
typedef struct same_cmd {
    es_repo *other;
    const es_execute_options *opts;
    int calls, other_rc;
    es_execute_result other_res;
} same_cmd;

static int same_cmd_decide(const void *state, int64_t version, const void *command,
                           es_emitter *em, void *user_data)
{
    same_cmd *c = user_data;
    (void)state;
    (void)version;
    (void)command;
    if (c->calls++ == 0) {
        cmd k = {CMD_ADD_MANY, 2};
        c->other_rc = es_repo_execute(c->other, &c->other_res, &counter_type, "c1",
                                      counter_decide, &k, NULL, c->opts);
    }
    for (int i = 1; i <= 2; i++) {
        int rc = es_emit_new(em, "Added", json_pack("{s:i}", "n", i));
        if (rc)
            return rc;
    }
    return 0;
}

static void test_command_id_race(void **state)
{
    two t;
    same_cmd c;
    es_execute_result res;
    es_execute_options o = ES_EXECUTE_OPTIONS_INIT;
    es_aggregate *agg = NULL;
    const counter *ct;
    (void)state;
    open_two(&t, 5);
    o.command_id = "pay-77";
    memset(&c, 0, sizeof c);
    c.other = t.repo2;
    c.opts = &o;
    assert_int_equal(es_repo_execute(t.repo1, &res, &counter_type, "c1", same_cmd_decide,
                                     NULL, &c, &o), 0);
    assert_int_equal(c.other_rc, 0);
    assert_int_equal(c.other_res.duplicate, 0);
    assert_int_equal(res.duplicate, 1);
    assert_true(res.version == 2 && res.events == 2);
    ct = load_counter(t.repo1, &agg, "c1", ES_RANGE_ALL);
    assert_true(ct->total == 3 && es_aggregate_version(agg) == 2);
    es_aggregate_free(agg);
    close_two(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_ranges),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_replay_audit_trail),
        cmocka_unit_test(test_repo_new_arguments),
        cmocka_unit_test(test_execute_bank),
        cmocka_unit_test(test_execute_outcomes),
        cmocka_unit_test(test_emitter_arguments),
        cmocka_unit_test(test_execute_options_stamped),
        cmocka_unit_test(test_conflict_retry),
        cmocka_unit_test(test_conflict_on_new_stream),
        cmocka_unit_test(test_conflict_gives_up),
        cmocka_unit_test(test_alloc_failures_codec),
        cmocka_unit_test(test_alloc_failures_repo),
        cmocka_unit_test(test_emit_schema_round_trip),
        cmocka_unit_test(test_emit_with_options),
        cmocka_unit_test(test_apply_says_why),
        cmocka_unit_test(test_execute_expected_version),
        cmocka_unit_test(test_conflict_as_data_after_a_race),
        cmocka_unit_test(test_command_id_idempotent),
        cmocka_unit_test(test_command_id_race),
    };
    return cmocka_run_group_tests_name("repo", tests, NULL, NULL);
}

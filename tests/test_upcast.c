/*
 * tests/test_upcast.c - core/upcast.c: chains of payload upcasters, on
 * their own and through es_repo_load on a real log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static int calls;

/* Deposited/1 {"amt": N} -> Deposited/2 {"amount_cents": N} (in place) */
static json_t *v1_to_v2(json_t *payload, void *user_data)
{
    json_t *amt = json_object_get(payload, "amt");
    (void)user_data;
    calls++;
    if (!json_is_integer(amt)) {
        json_decref(payload);
        return NULL;
    }
    json_object_set(payload, "amount_cents", amt);
    json_object_del(payload, "amt");
    return payload;
}

/* Deposited/2 -> MoneyDeposited/3 {"amount": N, "currency": user_data}
 * (a new value; the old one is released) */
static json_t *v2_to_v3(json_t *payload, void *user_data)
{
    json_t *out = json_pack("{s:O,s:s}", "amount",
                            json_object_get(payload, "amount_cents"),
                            "currency", (const char *)user_data);
    calls++;
    json_decref(payload);
    return out;
}

static json_t *fail_step(json_t *payload, void *user_data)
{
    (void)user_data;
    json_decref(payload);
    return NULL;
}

static json_t *to_array(json_t *payload, void *user_data)
{
    (void)user_data;
    json_decref(payload);
    return json_array();
}

static json_t *mark(json_t *payload, void *user_data)
{
    json_object_set_new(payload, (const char *)user_data, json_true());
    return payload;
}

static es_event *heap_event(const char *type, int32_t schema, json_t *payload_new)
{
    es_event *ev = NULL;
    assert_int_equal(es_event_new(&ev, type, payload_new), 0);
    json_decref(payload_new); /* the event holds its own reference */
    ev->schema = schema;
    assert_int_equal(es_event_set_str(ev, &ev->aggregate_type, "account"), 0);
    assert_int_equal(es_event_set_str(ev, &ev->stream_id, "acct-1"), 0);
    ev->version = 4;
    return ev;
}

static es_upcasters *deposit_chain(void)
{
    es_upcasters *u = NULL;
    assert_int_equal(es_upcasters_new(&u), 0);
    assert_int_equal(es_upcasters_add(u, "Deposited", 1, NULL, 2, v1_to_v2, NULL), 0);
    assert_int_equal(es_upcasters_add(u, "Deposited", 2, "MoneyDeposited", 3, v2_to_v3,
                                      (void *)"EUR"), 0);
    return u;
}

static void test_chain(void **state)
{
    es_upcasters *u = deposit_chain();
    es_event *ev;
    es_error err;
    json_t *expect = json_pack("{s:i,s:s}", "amount", 250, "currency", "EUR");
    (void)state;

    /* 1 -> 2 -> 3, with the rename on the way */
    calls = 0;
    ev = heap_event("Deposited", 1, json_pack("{s:i}", "amt", 250));
    assert_int_equal(es_upcasters_apply(u, ev, &err), 0);
    assert_string_equal(ev->type, "MoneyDeposited");
    assert_int_equal(ev->schema, 3);
    assert_true(json_equal(ev->payload, expect));
    assert_int_equal(calls, 2);
    /* the rest of the envelope is untouched */
    assert_string_equal(ev->stream_id, "acct-1");
    assert_true(ev->version == 4);
    es_event_free(ev);

    /* from the middle of the chain */
    calls = 0;
    ev = heap_event("Deposited", 2, json_pack("{s:i}", "amount_cents", 250));
    assert_int_equal(es_upcasters_apply(u, ev, &err), 0);
    assert_string_equal(ev->type, "MoneyDeposited");
    assert_int_equal(ev->schema, 3);
    assert_true(json_equal(ev->payload, expect));
    assert_int_equal(calls, 1);
    es_event_free(ev);

    /* already at the newest schema: untouched, not even copied */
    {
        json_t *p = json_pack("{s:i,s:s}", "amount", 1, "currency", "USD");
        calls = 0;
        ev = heap_event("MoneyDeposited", 3, json_incref(p));
        assert_int_equal(es_upcasters_apply(u, ev, &err), 0);
        assert_true(ev->payload == p);
        assert_string_equal(ev->type, "MoneyDeposited");
        assert_int_equal(ev->schema, 3);
        assert_int_equal(calls, 0);
        es_event_free(ev);
        /* a type without upcasters, and a schema nobody upcasts */
        ev = heap_event("Withdrawn", 1, json_incref(p));
        assert_int_equal(es_upcasters_apply(u, ev, &err), 0);
        assert_true(ev->payload == p);
        es_event_free(ev);
        ev = heap_event("Deposited", 7, json_incref(p));
        assert_int_equal(es_upcasters_apply(u, ev, &err), 0);
        assert_true(ev->payload == p && ev->schema == 7);
        assert_int_equal(calls, 0);
        es_event_free(ev);
        json_decref(p);
    }

    /* the upcaster works on a copy: a payload shared elsewhere stays as it was */
    {
        json_t *shared = json_pack("{s:i}", "amt", 9);
        json_t *before = json_deep_copy(shared);
        ev = heap_event("Deposited", 1, json_incref(shared));
        assert_int_equal(es_upcasters_apply(u, ev, &err), 0);
        assert_true(json_equal(shared, before));
        assert_true(ev->payload != shared);
        es_event_free(ev);
        json_decref(shared);
        json_decref(before);
    }

    assert_true(es_upcasters_match(u, "Deposited", 1));
    assert_true(es_upcasters_match(u, "Deposited", 2));
    assert_false(es_upcasters_match(u, "Deposited", 3));
    assert_false(es_upcasters_match(u, "MoneyDeposited", 3));
    assert_false(es_upcasters_match(u, NULL, 1));
    assert_false(es_upcasters_match(NULL, "Deposited", 1));
    json_decref(expect);
    es_upcasters_free(u);
}

/* A renamed type continues along its own chain; schemas may skip. */
static void test_chain_across_types(void **state)
{
    es_upcasters *u = NULL;
    es_event *ev;
    es_error err;
    (void)state;
    assert_int_equal(es_upcasters_new(&u), 0);
    assert_int_equal(es_upcasters_add(u, "A", 1, "B", 2, mark, (void *)"a1"), 0);
    assert_int_equal(es_upcasters_add(u, "B", 2, NULL, 5, mark, (void *)"b2"), 0);
    assert_int_equal(es_upcasters_add(u, "B", 5, "C", 6, mark, (void *)"b5"), 0);
    /* more than the first allocation holds */
    for (int i = 10; i < 40; i++) {
        char name[16];
        snprintf(name, sizeof name, "T%d", i);
        assert_int_equal(es_upcasters_add(u, name, 1, NULL, 2, mark, (void *)"t"), 0);
    }
    ev = heap_event("A", 1, json_object());
    assert_int_equal(es_upcasters_apply(u, ev, &err), 0);
    assert_string_equal(ev->type, "C");
    assert_int_equal(ev->schema, 6);
    assert_true(json_is_true(json_object_get(ev->payload, "a1")));
    assert_true(json_is_true(json_object_get(ev->payload, "b2")));
    assert_true(json_is_true(json_object_get(ev->payload, "b5")));
    es_event_free(ev);
    ev = heap_event("T39", 1, json_object());
    assert_int_equal(es_upcasters_apply(u, ev, &err), 0);
    assert_int_equal(ev->schema, 2);
    es_event_free(ev);
    es_upcasters_free(u);
}

static void test_registration_rules(void **state)
{
    es_upcasters *u = NULL;
    (void)state;
    assert_int_equal(es_upcasters_new(&u), 0);
    assert_int_equal(es_upcasters_add(u, "Deposited", 1, NULL, 2, v1_to_v2, NULL), 0);
    /* the same (type, from_schema) twice, whatever the target */
    assert_int_equal(es_upcasters_add(u, "Deposited", 1, NULL, 2, v1_to_v2, NULL), ES_EINVAL);
    assert_int_equal(es_upcasters_add(u, "Deposited", 1, "Other", 3, v2_to_v3, NULL), ES_EINVAL);
    /* the same from_schema of another type is fine */
    assert_int_equal(es_upcasters_add(u, "Withdrawn", 1, NULL, 2, v1_to_v2, NULL), 0);
    /* to_schema must be greater, so chains end */
    assert_int_equal(es_upcasters_add(u, "X", 2, NULL, 2, v1_to_v2, NULL), ES_EINVAL);
    assert_int_equal(es_upcasters_add(u, "X", 3, NULL, 2, v1_to_v2, NULL), ES_EINVAL);
    assert_int_equal(es_upcasters_add(u, "X", 3, "Y", 1, v1_to_v2, NULL), ES_EINVAL);
    /* schemas start at 1 */
    assert_int_equal(es_upcasters_add(u, "X", 0, NULL, 1, v1_to_v2, NULL), ES_EINVAL);
    assert_int_equal(es_upcasters_add(u, "X", -1, NULL, 1, v1_to_v2, NULL), ES_EINVAL);
    /* missing pieces */
    assert_int_equal(es_upcasters_add(u, NULL, 1, NULL, 2, v1_to_v2, NULL), ES_EINVAL);
    assert_int_equal(es_upcasters_add(u, "", 1, NULL, 2, v1_to_v2, NULL), ES_EINVAL);
    assert_int_equal(es_upcasters_add(u, "X", 1, "", 2, v1_to_v2, NULL), ES_EINVAL);
    assert_int_equal(es_upcasters_add(u, "X", 1, NULL, 2, NULL, NULL), ES_EINVAL);
    assert_int_equal(es_upcasters_add(NULL, "X", 1, NULL, 2, v1_to_v2, NULL), ES_EINVAL);
    /* nothing of the refused ones was registered */
    assert_false(es_upcasters_match(u, "X", 1));
    assert_false(es_upcasters_match(u, "X", 3));
    assert_int_equal(es_upcasters_new(NULL), ES_EINVAL);
    es_upcasters_free(u);
    es_upcasters_free(NULL);
}

static void test_failing_step(void **state)
{
    es_upcasters *u = NULL;
    es_event *ev;
    es_error err;
    (void)state;
    assert_int_equal(es_upcasters_new(&u), 0);
    assert_int_equal(es_upcasters_add(u, "Deposited", 1, NULL, 2, v1_to_v2, NULL), 0);
    assert_int_equal(es_upcasters_add(u, "Deposited", 2, "MoneyDeposited", 3, fail_step,
                                      NULL), 0);
    assert_int_equal(es_upcasters_add(u, "Odd", 1, NULL, 2, to_array, NULL), 0);

    /* the second step fails: the message names the event and the step */
    ev = heap_event("Deposited", 1, json_pack("{s:i}", "amt", 1));
    memset(&err, 0, sizeof err);
    assert_int_equal(es_upcasters_apply(u, ev, &err), ES_EINVAL);
    assert_string_equal(err.text, "account/acct-1 version 4: upcaster Deposited/2 -> "
                                  "MoneyDeposited/3 failed");
    es_event_free(ev);

    /* the first step refuses a payload it cannot read */
    ev = heap_event("Deposited", 1, json_pack("{s:s}", "amt", "lots"));
    assert_int_equal(es_upcasters_apply(u, ev, &err), ES_EINVAL);
    assert_contains(err.text, "upcaster Deposited/1 -> Deposited/2 failed");
    es_event_free(ev);

    /* a result that is not an object */
    ev = heap_event("Odd", 1, json_object());
    assert_int_equal(es_upcasters_apply(u, ev, &err), ES_EINVAL);
    assert_contains(err.text, "upcaster Odd/1 -> Odd/2 returned a non-object");
    es_event_free(ev);

    /* arguments */
    assert_int_equal(es_upcasters_apply(u, NULL, &err), ES_EINVAL);
    ev = heap_event("Deposited", 1, json_object());
    assert_int_equal(es_event_set_str(ev, &ev->type, NULL), 0);
    assert_int_equal(es_upcasters_apply(u, ev, &err), ES_EINVAL);
    es_event_free(ev);
    /* a NULL registry upcasts nothing */
    ev = heap_event("Deposited", 1, json_pack("{s:i}", "amt", 1));
    assert_int_equal(es_upcasters_apply(NULL, ev, &err), 0);
    assert_int_equal(ev->schema, 1);
    es_event_free(ev);
    es_upcasters_free(u);
}

/* ---- Through the repository, on a real log ------------------------------ */

typedef struct wallet {
    int64_t cents;
    char currency[4];
    int deposits;
} wallet;

/* Only understands MoneyDeposited of schema 3. */
static int apply_money_deposited(void *state, const es_event *ev)
{
    wallet *w = state;
    json_t *amount = json_object_get(ev->payload, "amount");
    const char *cur = json_string_value(json_object_get(ev->payload, "currency"));
    if (ev->schema != 3 || !json_is_integer(amount) || cur == NULL || strlen(cur) != 3)
        return ES_EINVAL;
    w->cents += json_integer_value(amount);
    memcpy(w->currency, cur, 4);
    w->deposits++;
    return 0;
}

static const es_handler wallet_handlers[] = {
    {"MoneyDeposited", apply_money_deposited},
    {NULL, NULL},
};

static const es_aggregate_type wallet_type = {
    .name = "wallet",
    .state_size = sizeof(wallet),
    .handlers = wallet_handlers,
};

static void append_one(es_log *log, const char *id, const char *type, int32_t schema,
                       json_t *payload_new)
{
    es_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    ev.schema = schema;
    ev.payload = payload_new;
    if (es_log_append(log, NULL, "wallet", id, ES_EXPECT_ANY, &ev, 1) != 0)
        print_error("append: %s\n", es_errmsg(log));
    json_decref(payload_new);
}

typedef struct seen {
    int n;
    char types[4][32];
    int schemas[4];
    int64_t cents[4];
} seen;

static int on_replay(const es_event *ev, const void *state, void *user_data)
{
    seen *s = user_data;
    if (s->n < 4) {
        snprintf(s->types[s->n], sizeof s->types[0], "%s", ev->type);
        s->schemas[s->n] = ev->schema;
        s->cents[s->n] = ((const wallet *)state)->cents;
    }
    s->n++;
    return 0;
}

static int count_raw(const es_event *ev, void *user_data)
{
    int *schema1 = user_data;
    if (strcmp(ev->type, "Deposited") == 0 && ev->schema == 1)
        (*schema1)++;
    return 0;
}

static void test_through_repo_load(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_repo *repo = NULL;
    es_aggregate *agg = NULL;
    const wallet *w;
    seen s;
    int raw = 0;
    (void)state;

    /* history written by three generations of the code */
    append_one(log, "w1", "Deposited", 1, json_pack("{s:i}", "amt", 100));
    append_one(log, "w1", "Deposited", 2, json_pack("{s:i}", "amount_cents", 20));
    append_one(log, "w1", "MoneyDeposited", 3,
               json_pack("{s:i,s:s}", "amount", 3, "currency", "EUR"));

    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    /* without upcasters the old events cannot be folded */
    assert_int_equal(es_repo_load(repo, &agg, &wallet_type, "w1", ES_RANGE_ALL),
                     ES_EUNHANDLED);
    assert_null(agg);
    assert_contains(es_errmsg(repo), "no apply for event type 'Deposited' (schema 1)");

    assert_int_equal(es_upcasters_add(es_repo_upcasters(repo), "Deposited", 1, NULL, 2,
                                      v1_to_v2, NULL), 0);
    assert_int_equal(es_upcasters_add(es_repo_upcasters(repo), "Deposited", 2,
                                      "MoneyDeposited", 3, v2_to_v3, (void *)"EUR"), 0);
    assert_int_equal(es_repo_load(repo, &agg, &wallet_type, "w1", ES_RANGE_ALL), 0);
    w = es_aggregate_state(agg);
    assert_true(w->cents == 123);
    assert_string_equal(w->currency, "EUR");
    assert_int_equal(w->deposits, 3);
    assert_true(es_aggregate_version(agg) == 3);
    es_aggregate_free(agg);

    /* to a version: only the first, upcast */
    assert_int_equal(es_repo_load(repo, &agg, &wallet_type, "w1", ES_RANGE_TO_VERSION(1)), 0);
    assert_true(((const wallet *)es_aggregate_state(agg))->cents == 100);
    es_aggregate_free(agg);

    /* the audit trail shows the upcast events */
    memset(&s, 0, sizeof s);
    assert_int_equal(es_repo_replay(repo, NULL, &wallet_type, "w1", ES_RANGE_ALL,
                                    on_replay, &s), 0);
    assert_int_equal(s.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(s.types[i], "MoneyDeposited");
        assert_int_equal(s.schemas[i], 3);
    }
    assert_true(s.cents[0] == 100 && s.cents[1] == 120 && s.cents[2] == 123);

    /* the log still holds what was written */
    assert_int_equal(es_log_read_stream(log, "wallet", "w1", NULL, count_raw, &raw), 0);
    assert_int_equal(raw, 1);

    es_repo_free(repo);
    es_log_close(log);
}

static void test_failing_upcaster_through_repo(void **state)
{
    es_log *log = es_test_open_fresh_log();
    es_repo *repo = NULL;
    es_aggregate *agg = NULL;
    (void)state;
    append_one(log, "w2", "MoneyDeposited", 3,
               json_pack("{s:i,s:s}", "amount", 3, "currency", "EUR"));
    append_one(log, "w2", "Deposited", 1, json_pack("{s:s}", "amt", "not a number"));
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    assert_int_equal(es_upcasters_add(es_repo_upcasters(repo), "Deposited", 1, NULL, 2,
                                      v1_to_v2, NULL), 0);
    assert_int_equal(es_upcasters_add(es_repo_upcasters(repo), "Deposited", 2,
                                      "MoneyDeposited", 3, v2_to_v3, (void *)"EUR"), 0);
    assert_int_equal(es_repo_load(repo, &agg, &wallet_type, "w2", ES_RANGE_ALL), ES_EINVAL);
    assert_null(agg);
    assert_contains(es_errmsg(repo), "w2");
    assert_contains(es_errmsg(repo), "version 2: upcaster Deposited/1 -> Deposited/2 failed");
    /* up to the good event it loads */
    assert_int_equal(es_repo_load(repo, &agg, &wallet_type, "w2", ES_RANGE_TO_VERSION(1)), 0);
    assert_true(es_aggregate_version(agg) == 1);
    es_aggregate_free(agg);
    es_repo_free(repo);
    es_log_close(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain),
        cmocka_unit_test(test_chain_across_types),
        cmocka_unit_test(test_registration_rules),
        cmocka_unit_test(test_failing_step),
        cmocka_unit_test(test_through_repo_load),
        cmocka_unit_test(test_failing_upcaster_through_repo),
    };
    return cmocka_run_group_tests_name("upcast", tests, NULL, NULL);
}

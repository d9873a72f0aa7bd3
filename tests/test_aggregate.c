/*
 * tests/test_aggregate.c - core/aggregate.c: an aggregate instance and how
 * one event folds into it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* A counter whose state owns heap memory, so that release matters. */
typedef struct counter {
    int64_t total;
    int inits;
    int fallbacks;
    char *last; /* heap: the last event type applied (freed by release) */
} counter;

static int releases;

static void counter_init(void *state)
{
    counter *c = state;
    c->total = 100; /* not zero: proves init ran instead of zero-filling */
    c->inits++;
}

static void counter_release(void *state)
{
    counter *c = state;
    free(c->last);
    c->last = NULL;
    releases++;
}

static void remember(counter *c, const char *type)
{
    free(c->last);
    c->last = strdup(type);
}

static int apply_added(void *state, const es_event *ev)
{
    counter *c = state;
    json_t *n = json_object_get(ev->payload, "n");
    if (!json_is_integer(n))
        return ES_EINVAL;
    c->total += json_integer_value(n);
    remember(c, ev->type);
    return 0;
}

static int apply_reset(void *state, const es_event *ev)
{
    counter *c = state;
    c->total = 0;
    remember(c, ev->type);
    return 0;
}

static int apply_positive_error(void *state, const es_event *ev)
{
    (void)state;
    (void)ev;
    return 5; /* not an ES_E* code: becomes ES_EINVAL */
}

static int apply_corrupt(void *state, const es_event *ev)
{
    (void)state;
    (void)ev;
    return ES_ECORRUPT;
}

static int apply_fallback(void *state, const es_event *ev)
{
    counter *c = state;
    c->fallbacks++;
    remember(c, ev->type);
    return 0;
}

static const es_handler handlers[] = {
    {"Added", apply_added},
    {"Reset", apply_reset},
    {"Broken", apply_positive_error},
    {"Corrupt", apply_corrupt},
    {NULL, NULL},
};

static const es_aggregate_type counter_type = {
    .name = "counter",
    .state_size = sizeof(counter),
    .init = counter_init,
    .handlers = handlers,
    .release = counter_release,
};

static const es_aggregate_type lenient_type = {
    .name = "counter",
    .state_size = sizeof(counter),
    .init = counter_init,
    .handlers = handlers,
    .ignore_unknown = 1,
    .release = counter_release,
};

static const es_aggregate_type fallback_type = {
    .name = "counter",
    .state_size = sizeof(counter),
    .handlers = handlers,
    .apply = apply_fallback,
    .release = counter_release,
};

/* An event of type at version, with {"n": n}, at time t, offset off. */
static es_event make(const char *type, int64_t version, int n, int64_t t,
                     int64_t off, json_t **hold)
{
    es_event ev;
    memset(&ev, 0, sizeof ev);
    *hold = json_pack("{s:i}", "n", n);
    ev.aggregate_type = "counter";
    ev.stream_id = "c1";
    ev.type = type;
    ev.version = version;
    ev.schema = 1;
    ev.occurred_us = t;
    ev.payload = *hold;
    ev.position.partition = 2;
    ev.position.offset = off;
    return ev;
}

static int fold(es_aggregate *agg, const char *type, int64_t version, int n,
                es_error *err)
{
    json_t *p;
    es_event ev = make(type, version, n, 1000 * version, 10 + version, &p);
    int rc = es_aggregate_apply(agg, &ev, err);
    json_decref(p);
    return rc;
}

static void test_new_and_accessors(void **state)
{
    es_aggregate *agg = NULL;
    const counter *c;
    es_position pos;
    char id[8] = "c1";
    (void)state;
    assert_int_equal(es_aggregate_new(&agg, &counter_type, id), 0);
    strcpy(id, "zz"); /* the stream id was copied */
    assert_string_equal(es_aggregate_stream_id(agg), "c1");
    assert_true(es_aggregate_type_of(agg) == &counter_type);
    assert_true(es_aggregate_version(agg) == 0);
    assert_true(es_aggregate_time_us(agg) == 0);
    assert_true(es_aggregate_folded(agg) == 0);
    pos = es_aggregate_position(agg);
    assert_int_equal(pos.partition, 0);
    assert_true(pos.offset == -1);
    c = es_aggregate_state(agg);
    assert_non_null(c);
    assert_true(es_aggregate_state_mut(agg) == (void *)c);
    assert_true(c->total == 100);
    assert_int_equal(c->inits, 1);
    es_aggregate_free(agg);

    /* no init: zero-filled */
    assert_int_equal(es_aggregate_new(&agg, &fallback_type, "c2"), 0);
    c = es_aggregate_state(agg);
    assert_true(c->total == 0 && c->inits == 0 && c->last == NULL);
    es_aggregate_free(agg);

    /* a state of size 0 is allowed */
    {
        static const es_aggregate_type empty = {.name = "empty", .ignore_unknown = 1};
        assert_int_equal(es_aggregate_new(&agg, &empty, "e"), 0);
        assert_non_null(es_aggregate_state(agg));
        assert_int_equal(fold(agg, "Anything", 1, 0, NULL), 0);
        es_aggregate_free(agg);
    }

    /* bad arguments; *out is NULL after a failure */
    {
        static const es_aggregate_type noname = {.state_size = 4};
        agg = (es_aggregate *)&agg;
        assert_int_equal(es_aggregate_new(&agg, NULL, "c"), ES_EINVAL);
        assert_null(agg);
        assert_int_equal(es_aggregate_new(&agg, &counter_type, NULL), ES_EINVAL);
        assert_int_equal(es_aggregate_new(&agg, &noname, "c"), ES_EINVAL);
        assert_int_equal(es_aggregate_new(NULL, &counter_type, "c"), ES_EINVAL);
    }
    /* NULL-safe accessors */
    assert_null(es_aggregate_type_of(NULL));
    assert_null(es_aggregate_stream_id(NULL));
    assert_null(es_aggregate_state(NULL));
    assert_null(es_aggregate_state_mut(NULL));
    assert_true(es_aggregate_version(NULL) == 0);
    assert_true(es_aggregate_time_us(NULL) == 0);
    assert_true(es_aggregate_folded(NULL) == 0);
    assert_true(es_aggregate_position(NULL).offset == -1);
    es_aggregate_free(NULL);
    es_aggregate_set_origin(NULL, 1, 1, pos);
}

static void test_fold_in_order(void **state)
{
    es_aggregate *agg = NULL;
    const counter *c;
    es_error err;
    (void)state;
    assert_int_equal(es_aggregate_new(&agg, &counter_type, "c1"), 0);
    assert_int_equal(fold(agg, "Added", 1, 5, &err), 0);
    assert_int_equal(fold(agg, "Added", 2, 7, &err), 0);
    c = es_aggregate_state(agg);
    assert_true(c->total == 112);
    assert_string_equal(c->last, "Added");
    assert_true(es_aggregate_version(agg) == 2);
    assert_true(es_aggregate_time_us(agg) == 2000);
    assert_int_equal(es_aggregate_position(agg).partition, 2);
    assert_true(es_aggregate_position(agg).offset == 12);
    assert_true(es_aggregate_folded(agg) == 2);
    assert_int_equal(fold(agg, "Reset", 3, 0, &err), 0);
    assert_true(c->total == 0);
    assert_string_equal(c->last, "Reset");
    assert_true(es_aggregate_version(agg) == 3);
    es_aggregate_free(agg);
}

static void test_version_checks(void **state)
{
    es_aggregate *agg = NULL;
    const counter *c;
    es_error err;
    (void)state;
    assert_int_equal(es_aggregate_new(&agg, &counter_type, "c1"), 0);
    c = es_aggregate_state(agg);

    /* the first event must be version 1 */
    memset(&err, 0, sizeof err);
    assert_int_equal(fold(agg, "Added", 2, 5, &err), ES_ECORRUPT);
    assert_string_equal(err.text, "counter/c1: event Added has version 2, expected 1");
    assert_true(es_aggregate_version(agg) == 0);

    assert_int_equal(fold(agg, "Added", 1, 5, &err), 0);
    /* a gap */
    assert_int_equal(fold(agg, "Added", 3, 5, &err), ES_ECORRUPT);
    assert_string_equal(err.text, "counter/c1: event Added has version 3, expected 2");
    /* a repeat */
    assert_int_equal(fold(agg, "Added", 1, 5, &err), ES_ECORRUPT);
    assert_contains(err.text, "has version 1, expected 2");
    /* going back */
    assert_int_equal(fold(agg, "Added", 0, 5, &err), ES_ECORRUPT);
    /* nothing changed by the refused events */
    assert_true(c->total == 105);
    assert_true(es_aggregate_version(agg) == 1);
    assert_true(es_aggregate_folded(agg) == 1);
    assert_true(es_aggregate_time_us(agg) == 1000);
    /* and it goes on from where it was */
    assert_int_equal(fold(agg, "Added", 2, 1, &err), 0);
    assert_true(c->total == 106);
    /* a NULL error buffer is fine */
    assert_int_equal(fold(agg, "Added", 9, 1, NULL), ES_ECORRUPT);
    assert_int_equal(es_aggregate_apply(NULL, NULL, &err), ES_EINVAL);
    assert_contains(err.text, "no aggregate or event");
    es_aggregate_free(agg);
}

static void test_unknown_types(void **state)
{
    es_aggregate *agg = NULL;
    es_error err;
    const counter *c;
    json_t *p;
    es_event ev;
    (void)state;

    /* strict: ES_EUNHANDLED naming stream, version, type and schema */
    assert_int_equal(es_aggregate_new(&agg, &counter_type, "c1"), 0);
    assert_int_equal(fold(agg, "Added", 1, 1, &err), 0);
    ev = make("Renamed", 2, 0, 5, 5, &p);
    ev.schema = 3;
    assert_int_equal(es_aggregate_apply(agg, &ev, &err), ES_EUNHANDLED);
    json_decref(p);
    assert_string_equal(err.text, "counter/c1 version 2: no apply for event type "
                                  "'Renamed' (schema 3)");
    assert_true(es_aggregate_version(agg) == 1);
    es_aggregate_free(agg);

    /* ignore_unknown: skipped, but the version still advances */
    assert_int_equal(es_aggregate_new(&agg, &lenient_type, "c1"), 0);
    c = es_aggregate_state(agg);
    assert_int_equal(fold(agg, "Added", 1, 1, &err), 0);
    assert_int_equal(fold(agg, "Renamed", 2, 50, &err), 0);
    assert_int_equal(fold(agg, "Added", 3, 1, &err), 0);
    assert_true(c->total == 102);
    assert_true(es_aggregate_version(agg) == 3);
    assert_true(es_aggregate_folded(agg) == 3);
    assert_true(es_aggregate_time_us(agg) == 3000);
    /* the version rule holds for unknown types too */
    assert_int_equal(fold(agg, "Renamed", 5, 0, &err), ES_ECORRUPT);
    es_aggregate_free(agg);
}

static void test_fallback_apply(void **state)
{
    es_aggregate *agg = NULL;
    es_error err;
    const counter *c;
    (void)state;
    assert_int_equal(es_aggregate_new(&agg, &fallback_type, "c1"), 0);
    c = es_aggregate_state(agg);
    /* a handled type goes to its handler, not the fallback */
    assert_int_equal(fold(agg, "Added", 1, 4, &err), 0);
    assert_true(c->total == 4);
    assert_int_equal(c->fallbacks, 0);
    /* anything else to the fallback */
    assert_int_equal(fold(agg, "Other", 2, 4, &err), 0);
    assert_int_equal(fold(agg, "Again", 3, 4, &err), 0);
    assert_int_equal(c->fallbacks, 2);
    assert_string_equal(c->last, "Again");
    assert_true(c->total == 4);
    assert_true(es_aggregate_version(agg) == 3);
    es_aggregate_free(agg);

    assert_true(es_aggregate_type_find(&fallback_type, "Added") == apply_added);
    assert_true(es_aggregate_type_find(&fallback_type, "Nope") == apply_fallback);
    assert_null(es_aggregate_type_find(&counter_type, "Nope"));
    assert_null(es_aggregate_type_find(&counter_type, NULL));
    assert_null(es_aggregate_type_find(NULL, "Added"));
    {
        static const es_aggregate_type only_apply = {.name = "x", .apply = apply_fallback};
        assert_true(es_aggregate_type_find(&only_apply, "Added") == apply_fallback);
    }
}

static void test_apply_errors(void **state)
{
    es_aggregate *agg = NULL;
    es_error err;
    json_t *p;
    es_event ev;
    (void)state;
    assert_int_equal(es_aggregate_new(&agg, &counter_type, "c1"), 0);
    assert_int_equal(fold(agg, "Added", 1, 1, &err), 0);

    /* a negative code comes back as is */
    assert_int_equal(fold(agg, "Corrupt", 2, 0, &err), ES_ECORRUPT);
    assert_string_equal(err.text, "counter/c1 version 2: apply of 'Corrupt' failed: "
                                  "corrupt data");
    /* anything else non-zero is ES_EINVAL */
    assert_int_equal(fold(agg, "Broken", 2, 0, &err), ES_EINVAL);
    assert_contains(err.text, "apply of 'Broken' failed: invalid argument");
    /* the apply's own check: a payload without "n" */
    ev = make("Added", 2, 0, 1, 1, &p);
    json_object_del(p, "n");
    assert_int_equal(es_aggregate_apply(agg, &ev, &err), ES_EINVAL);
    assert_contains(err.text, "counter/c1 version 2: apply of 'Added' failed");
    json_decref(p);
    /* a failed apply does not advance the aggregate */
    assert_true(es_aggregate_version(agg) == 1);
    assert_true(es_aggregate_folded(agg) == 1);
    assert_int_equal(fold(agg, "Added", 2, 1, &err), 0);
    es_aggregate_free(agg);
}

static void test_release_on_free(void **state)
{
    es_aggregate *a = NULL, *b = NULL;
    (void)state;
    releases = 0;
    assert_int_equal(es_aggregate_new(&a, &counter_type, "a"), 0);
    assert_int_equal(es_aggregate_new(&b, &lenient_type, "b"), 0);
    assert_int_equal(fold(a, "Added", 1, 1, NULL), 0); /* heap in the state */
    assert_int_equal(releases, 0);
    es_aggregate_free(a);
    assert_int_equal(releases, 1);
    es_aggregate_free(b); /* released even with nothing folded */
    assert_int_equal(releases, 2);
    /* a type without release just frees */
    assert_int_equal(es_aggregate_new(&a, &(es_aggregate_type){.name = "n", .state_size = 8}, "a"), 0);
    es_aggregate_free(a);
    assert_int_equal(releases, 2);
}

static void test_set_origin(void **state)
{
    es_aggregate *agg = NULL;
    es_position pos = {3, 99};
    const counter *c;
    (void)state;
    assert_int_equal(es_aggregate_new(&agg, &counter_type, "c1"), 0);
    c = es_aggregate_state(agg);
    ((counter *)es_aggregate_state_mut(agg))->total = 40; /* restored state */
    es_aggregate_set_origin(agg, 7, 7000, pos);
    assert_true(es_aggregate_version(agg) == 7);
    assert_true(es_aggregate_time_us(agg) == 7000);
    assert_true(es_aggregate_position(agg).offset == 99);
    assert_int_equal(es_aggregate_position(agg).partition, 3);
    /* the fold continues at 8 */
    assert_int_equal(fold(agg, "Added", 7, 1, NULL), ES_ECORRUPT);
    assert_int_equal(fold(agg, "Added", 8, 2, NULL), 0);
    assert_true(c->total == 42);
    assert_true(es_aggregate_folded(agg) == 1);
    es_aggregate_free(agg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_and_accessors),
        cmocka_unit_test(test_fold_in_order),
        cmocka_unit_test(test_version_checks),
        cmocka_unit_test(test_unknown_types),
        cmocka_unit_test(test_fallback_apply),
        cmocka_unit_test(test_apply_errors),
        cmocka_unit_test(test_release_on_free),
        cmocka_unit_test(test_set_origin),
    };
    return cmocka_run_group_tests_name("aggregate", tests, NULL, NULL);
}

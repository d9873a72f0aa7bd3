/*
 * tests/test_jsonfile.c - the named parameters of JSON-file projections
 * (projections/jsonfile.c): every one binds the value of the event it
 * names, on both targets.
 *
 * A property test: random events (stream ids and strings with quotes,
 * semicolons, backslashes and non-ASCII text, every JSON type in the
 * payload and the metadata, nested members, array indexes, members that
 * are missing, optional correlation and causation ids, schemas, times with
 * and without fractions) are appended to a SQLite log; a projection that
 * records every parameter of every event in one row is run by a real
 * worker into a fresh SQLite file and a fresh PostgreSQL database; each
 * row is then compared, column by column, with the event as the log reads
 * it back (es_log_read_partition), formatted here independently of the
 * projection code. A member written without its ? is required: the
 * events that lack it are dead-lettered with a message naming it, and
 * their streams wait behind them. ESFOLD_PROPERTY_SEED reruns a seed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "esfold/projection.h"
#include "esfold/status.h"
#include "esfold/time.h"
#include "harness.h"
#include "target_harness.h"

#define EVENTS 300

static const char projection_json[] =
    "{\"name\": \"seen\", \"version\": 1, \"follows\": [\"thing\"],"
    " \"setup\": [\"CREATE TABLE IF NOT EXISTS seen (stream_id TEXT NOT NULL,"
    " version BIGINT NOT NULL, type TEXT NOT NULL, occurred_at TEXT NOT NULL,"
    " occurred_us BIGINT NOT NULL, event_id TEXT NOT NULL, pos BIGINT NOT NULL,"
    " part BIGINT NOT NULL, agg TEXT NOT NULL, corr TEXT, caus TEXT,"
    " sch BIGINT NOT NULL, s TEXT, i BIGINT, r DOUBLE PRECISION, b BOOLEAN,"
    " obj TEXT, deep TEXT, second TEXT, missing TEXT, mtag TEXT, mdeep BIGINT,"
    " PRIMARY KEY (stream_id, version))\"],"
    " \"on\": {\"*\": [\"INSERT INTO seen VALUES ($stream_id, $version, $type,"
    " $occurred_at, $occurred_us, $event_id, $position, $partition,"
    " $aggregate_type, $correlation_id, $causation_id, $schema, $data.s?,"
    " $data.i?, $data.r?, $data.b?, CAST($data.obj? AS TEXT), $data.nest.deep?,"
    " $data.arr.1?, $data.nope.x?, $meta.tag?, $meta.n.deep?)\"]}}";

/* The same member without the ?: required. */
static const char strict_json[] =
    "{\"name\": \"strict\", \"version\": 1, \"follows\": [\"thing\"],"
    " \"setup\": [\"CREATE TABLE IF NOT EXISTS strict (stream_id TEXT NOT NULL,"
    " version BIGINT NOT NULL, s TEXT, PRIMARY KEY (stream_id, version))\"],"
    " \"on\": {\"*\": [\"INSERT INTO strict VALUES ($stream_id, $version,"
    " $data.s)\"]}}";

static unsigned seed_state, seed0;

static unsigned rnd(unsigned n)
{
    seed_state = seed_state * 1103515245u + 12345u;
    return (seed_state >> 8) % n;
}

/* A string that SQL would choke on if it were spliced, not bound; with a
 * tab unless it is for a stream id (which refuses control characters). */
static void nasty(char *buf, size_t size, const char *prefix)
{
    int ctl = prefix[0] != '\0';
    static const char *const bits[] = {
        "'", "''", "\"", ";", "--", "\\", "$1", "$data.s", "é", "日本",
        " ", "x", "DROP TABLE seen", "%s", "\t",
    };
    size_t len = (size_t)snprintf(buf, size, "%s", prefix);
    for (unsigned k = 0, n = 1 + rnd(5); k < n && len + 20 < size; k++) {
        const char *b = bits[rnd(sizeof bits / sizeof bits[0])];
        len += (size_t)snprintf(buf + len, size - len, "%s",
                                b[0] == '\t' && !ctl ? "_" : b);
    }
}

/* A value for a TEXT column: a string, an integer, null, or an object or
 * array (bound as JSON text). Reals and booleans have their own typed
 * columns, since the targets print them differently in text. */
static json_t *random_value(void)
{
    char s[128];
    switch (rnd(5)) {
    case 0: nasty(s, sizeof s, "v"); return json_string(s);
    case 1: return json_integer((json_int_t)rnd(2000000) - 1000000);
    case 2: return json_null();
    case 3: return json_pack("[i, s, {s:n}]", (int)rnd(10), "q'\"", "zz");
    default: return json_pack("{s:i, s:[i, s], s:s}", "k", (int)rnd(100), "l",
                              (int)rnd(10), "z", "a", "b");
    }
}

/* Sets member name of o to a random value, or leaves it out. */
static void maybe_set(json_t *o, const char *name, json_t *(*make)(void))
{
    if (rnd(5) != 0)
        json_object_set_new(o, name, make());
}

static json_t *a_string(void)
{
    char s[128];
    nasty(s, sizeof s, "s");
    return json_string(s);
}

static json_t *an_int(void) { return json_integer((json_int_t)rnd(1u << 30) - (1 << 29)); }
static json_t *a_real(void) { return json_real((double)rnd(1u << 20) / 1024.0 - 300.25 /* a multiple of 1/1024 */); }
static json_t *a_bool(void) { return json_boolean(rnd(2)); }
static json_t *an_object(void) { return json_pack("{s:o}", "x", random_value()); }

static void append_events(es_log *log)
{
    for (int k = 0; k < EVENTS; k++) {
        char sid[128], corr[64], caus[64], type[32];
        es_event ev;
        es_append_result ar;
        json_t *payload = json_object(), *meta = NULL;
        int rc;

        snprintf(sid, sizeof sid, "t-%u", rnd(40));
        if (rnd(3) == 0)
            nasty(sid + strlen(sid), sizeof sid - strlen(sid), "");
        snprintf(type, sizeof type, "Thing%u", rnd(3));
        maybe_set(payload, "s", a_string);
        maybe_set(payload, "i", an_int);
        maybe_set(payload, "r", a_real);
        maybe_set(payload, "b", a_bool);
        maybe_set(payload, "obj", an_object);
        if (rnd(4) != 0)
            json_object_set_new(payload, "nest", json_pack("{s:o}", "deep",
                                                           random_value()));
        if (rnd(4) != 0)
            json_object_set_new(payload, "arr", json_pack("[i, s, i]", 1,
                                                          "second", 3));
        if (rnd(2)) {
            char tag[64];
            nasty(tag, sizeof tag, "m");
            meta = json_pack("{s:s, s:{s:i}}", "tag", tag, "n", "deep",
                             (int)rnd(1000));
        }
        memset(&ev, 0, sizeof ev);
        ev.type = type;
        ev.payload = payload;
        ev.meta = meta;
        ev.schema = (int32_t)(1 + rnd(3));
        /* whole seconds or with microseconds, since 2020 */
        ev.occurred_us = (INT64_C(1577836800) + (int64_t)rnd(1u << 28)) * 1000000 +
                         (rnd(2) ? (int64_t)rnd(1000000) : 0);
        if (rnd(2)) {
            snprintf(corr, sizeof corr, "corr-%u", rnd(1000));
            ev.correlation_id = corr;
        }
        if (rnd(2)) {
            snprintf(caus, sizeof caus, "caus-%u", rnd(1000));
            ev.causation_id = caus;
        }
        rc = es_log_append(log, &ar, "thing", sid, ES_EXPECT_ANY, &ev, 1);
        if (rc != 0)
            fail_msg("append %s: %s (%s)", sid, es_errmsg(log), es_strerror(rc));
        json_decref(payload);
        json_decref(meta);
    }
}

/* ---- the reference: what each column must hold ------------------------- */

typedef struct expect {
    int pg;
    char *text;
    size_t len, cap;
} expect;

static void add(expect *x, const char *v, int last)
{
    size_t n = strlen(v) + 2;
    while (x->len + n + 1 > x->cap)
        x->text = realloc(x->text, x->cap = x->cap ? 2 * x->cap : 1 << 16);
    x->len += (size_t)sprintf(x->text + x->len, "%s%s", v, last ? "\n" : "|");
}

static void add_i64(expect *x, int64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%lld", (long long)v);
    add(x, b, 0);
}

/* A payload or metadata member as the target shows it (SQL NULL: NULL). */
static void add_json(expect *x, const json_t *v, int last)
{
    char b[64];
    char *text;
    if (v == NULL || json_is_null(v)) {
        add(x, "NULL", last);
        return;
    }
    switch (json_typeof(v)) {
    case JSON_STRING: add(x, json_string_value(v), last); return;
    case JSON_INTEGER:
        snprintf(b, sizeof b, "%lld", (long long)json_integer_value(v));
        add(x, b, last);
        return;
    case JSON_REAL: /* as the query gives it: times 1024 */
        snprintf(b, sizeof b, "%lld", (long long)(json_real_value(v) * 1024));
        add(x, b, last);
        return;
    case JSON_TRUE: add(x, x->pg ? "t" : "1", last); return;
    case JSON_FALSE: add(x, x->pg ? "f" : "0", last); return;
    default:
        /* objects and arrays: bound as compact JSON text, keys sorted */
        text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
        add(x, text, last);
        free(text);
        return;
    }
}

static int expect_event(const es_event *ev, void *user_data)
{
    expect *x = user_data;
    char when[ES_TIME_BUFSZ];
    const json_t *p = ev->payload;
    const json_t *nest = json_object_get(p, "nest");

    add(x, ev->stream_id, 0);
    add_i64(x, ev->version);
    add(x, ev->type, 0);
    assert_true(es_time_format(when, sizeof when, ev->occurred_us) > 0);
    add(x, when, 0);
    add_i64(x, ev->occurred_us);
    add(x, ev->id, 0);
    add_i64(x, ev->position.offset);
    add_i64(x, ev->position.partition);
    add(x, ev->aggregate_type, 0);
    add(x, ev->correlation_id ? ev->correlation_id : "NULL", 0);
    add(x, ev->causation_id ? ev->causation_id : "NULL", 0);
    add_i64(x, ev->schema);
    add_json(x, json_object_get(p, "s"), 0);
    add_json(x, json_object_get(p, "i"), 0);
    add_json(x, json_object_get(p, "r"), 0);
    add_json(x, json_object_get(p, "b"), 0);
    add_json(x, json_object_get(p, "obj"), 0);
    add_json(x, json_object_get(nest, "deep"), 0);
    add_json(x, json_array_get(json_object_get(p, "arr"), 1), 0);
    add(x, "NULL", 0); /* $data.nope.x: never there */
    add_json(x, json_object_get(ev->meta, "tag"), 0);
    add_json(x, json_object_get(json_object_get(ev->meta, "n"), "deep"), 1);
    return 0;
}

/* The rows in (partition, offset) order, the order the log reads them.
 * Reals are multiples of 1/1024 here, so r * 1024 is an exact integer on
 * both targets, whatever their float formatting. */
#define QUERY(cast_r)                                                         \
    "SELECT stream_id, version, type, occurred_at, occurred_us, event_id,"    \
    " pos, part, agg, corr, caus, sch, s, i, " cast_r ", b, obj, deep,"       \
    " second, missing, mtag, mdeep FROM seen ORDER BY part, pos"
static const char sqlite_query[] = QUERY("CAST(r * 1024 AS INTEGER)");
static const char pg_query[] = QUERY("CAST(r * 1024 AS BIGINT)");

/* What the strict projection must do with each event: apply it, or
 * dead-letter it because it has no s (failed) or because an earlier
 * event of its stream was (waiting). */
typedef struct strict_count {
    int64_t applied, failed, waiting, listed;
    char blocked[64][128];
} strict_count;

static int is_blocked(strict_count *c, const char *sid, int add)
{
    size_t i;
    for (i = 0; i < 64 && c->blocked[i][0]; i++)
        if (strcmp(c->blocked[i], sid) == 0)
            return 1;
    if (add) {
        assert_true(i < 64);
        snprintf(c->blocked[i], sizeof c->blocked[i], "%s", sid);
    }
    return 0;
}

static int count_strict(const es_event *ev, void *user_data)
{
    strict_count *c = user_data;
    if (is_blocked(c, ev->stream_id, 0))
        c->waiting++;
    else if (json_object_get(ev->payload, "s") == NULL) {
        c->failed++;
        is_blocked(c, ev->stream_id, 1);
    } else
        c->applied++;
    return 0;
}

static int check_dead_letter(const es_projection_dead_letter *dl, void *user_data)
{
    strict_count *c = user_data;
    c->listed++;
    assert_true(is_blocked(c, dl->stream_id, 0));
    if (strcmp(dl->status, "failed") == 0)
        assert_contains(dl->error, "strict.json: \"on\".\"*\"[0]: the "
                        "event has no $data.s");
    else
        assert_string_equal(dl->status, "waiting");
    return 0;
}

static void params_case(const char *target, const char *path_or_url, int pg)
{
    es_log *log;
    es_projection *p = NULL;
    es_projection_worker *w = NULL;
    es_projection_step total;
    es_error err;
    expect x = {pg, NULL, 0, 0};
    int32_t parts;
    char *got;
    int rc;

    assert_int_equal(es_log_open(&log, es_test_fresh_log_uri()), 0);
    append_events(log);
    if (es_projection_load_json(&p, projection_json, "seen.json", &err) != 0)
        fail_msg("load: %s", err.text);
    if ((rc = es_projection_worker_open(&w, log, p, target, NULL)) != 0 ||
        (rc = es_projection_worker_run(w, NULL, 1, &total, NULL, NULL)) != 0)
        fail_msg("worker: %s (%s)", es_errmsg(w), es_strerror(rc));
    assert_int_equal(total.applied, EVENTS);
    assert_int_equal(total.dead_lettered, 0);
    es_projection_worker_close(w);

    assert_int_equal(es_log_partition_count(log, &parts, "thing"), 0);
    for (int32_t q = 0; q < parts; q++) {
        int64_t next;
        assert_int_equal(es_log_read_partition(log, &next, "thing", q, 0, 0,
                                               expect_event, &x), 0);
    }
    got = es_test_target_rows(path_or_url, pg, pg ? pg_query : sqlite_query);
    if (strcmp(got, x.text) != 0) {
        /* the first line that differs */
        const char *a = got, *b = x.text;
        while (*a && *a == *b) a++, b++;
        while (a > got && a[-1] != '\n') a--, b--;
        fail_msg("row differs from the event (seed %u):\n  got  %.*s\n  want %.*s",
                 seed0, (int)strcspn(a, "\n"), a, (int)strcspn(b, "\n"), b);
    }
    free(got);
    free(x.text);
    es_projection_free(p);

    /* $data.s required: an event without s is dead-lettered ("failed",
     * naming the member), and the later events of its stream wait. */
    if (es_projection_load_json(&p, strict_json, "strict.json", &err) != 0)
        fail_msg("load: %s", err.text);
    {
        es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
        strict_count c = {0, 0, 0, 0, {{0}}};
        o.backoff_ms = -1;
        o.max_attempts = 1;
        if ((rc = es_projection_worker_open(&w, log, p, target, &o)) != 0 ||
            (rc = es_projection_worker_run(w, NULL, 1, &total, NULL, NULL)) != 0)
            fail_msg("worker: %s (%s)", es_errmsg(w), es_strerror(rc));
        es_projection_worker_close(w);
        for (int32_t q = 0; q < parts; q++) {
            int64_t next;
            assert_int_equal(es_log_read_partition(log, &next, "thing", q, 0, 0,
                                                   count_strict, &c), 0);
        }
        assert_true(c.failed > 0 && c.applied > 0);
        assert_int_equal(total.applied, c.applied);
        assert_int_equal(total.dead_lettered, c.failed + c.waiting);
        assert_int_equal(es_projection_dead_letters(target, "strict",
                                                    check_dead_letter, &c, &err), 0);
        assert_int_equal(c.listed, c.failed + c.waiting);
        got = es_test_target_rows(path_or_url, pg, "SELECT count(*) FROM strict");
        assert_int_equal(atoll(got), c.applied);
        free(got);
    }
    {
        /* status names the event of the last error, then the error */
        json_t *st = NULL, *pr;
        size_t k;
        const char *last = NULL;
        assert_int_equal(es_projection_status(&st, log, target, &err), 0);
        json_array_foreach(json_object_get(st, "projections"), k, pr)
            if (strcmp(json_string_value(json_object_get(pr, "name")), "strict") == 0)
                last = json_string_value(json_object_get(pr, "last_error"));
        assert_non_null(last);
        assert_true(strncmp(last, "Thing", 5) == 0);
        assert_contains(last, " thing/t-");
        assert_contains(last, ": strict.json: \"on\".\"*\"[0]: the event has no $data.s");
        json_decref(st);
    }
    es_projection_free(p);
    es_log_close(log);
}

static void pick_seed(void)
{
    const char *s = getenv("ESFOLD_PROPERTY_SEED");
    seed0 = seed_state = s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)time(NULL);
    print_message("test_jsonfile: seed %u (ESFOLD_PROPERTY_SEED=%u reruns it)\n",
                  seed_state, seed_state);
}

static void test_every_parameter_binds_its_value_sqlite(void **state)
{
    (void)state;
    pick_seed();
    es_test_on_sqlite(params_case, "params.db");
}

static void test_every_parameter_binds_its_value_postgres(void **state)
{
    (void)state;
    pick_seed();
    es_test_on_postgres(params_case, "params");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_parameter_binds_its_value_sqlite),
        cmocka_unit_test(test_every_parameter_binds_its_value_postgres),
    };
    return cmocka_run_group_tests_name("jsonfile", tests, NULL, NULL);
}

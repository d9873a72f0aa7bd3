/*
 * tests/test_auction.c - the auction sample's aggregate
 * (samples/auction/auction.c): the state after folds, every refusal of
 * auction_decide with its message, the events it emits, the state's JSON
 * and its decoder, and auction_execute on a SQLite log (events stamped
 * with the command's time, "who led at 10:00" as of a time, nothing
 * written for a refusal, the history command with the type compiled in),
 * and the SQL of the sample's projection files on SQLite (applied by the
 * test, event by event, in two orders of partitions), then through the
 * projection worker into a SQLite file and into PostgreSQL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "harness.h"
#include "target_harness.h"
#include "samples/auction/auction.h"

#ifndef AUCTION_PROJECTIONS_DIR
#define AUCTION_PROJECTIONS_DIR "samples/auction/projections"
#endif

/* 2026-03-01 at HH:MM UTC, in microseconds. */
static int64_t at(const char *hhmm)
{
    char text[32];
    int64_t us = 0;
    es_error err;
    snprintf(text, sizeof text, "2026-03-01T%s:00Z", hhmm);
    assert_int_equal(es_time_parse(&us, text, &err), 0);
    return us;
}

/* ---- Folding ------------------------------------------------------------- */

/* An aggregate being folded by hand, event by event. */
typedef struct fold {
    es_aggregate *agg;
    int64_t version;
} fold;

static void fold_start(fold *f)
{
    f->version = 0;
    assert_int_equal(es_aggregate_new(&f->agg, &auction_type, "A"), 0);
}

/* Folds one event (payload as JSON text) at hhmm; returns apply's code. */
static int fold_event(fold *f, const char *type, const char *hhmm,
                      const char *payload)
{
    es_event ev;
    es_error err;
    json_error_t jerr;
    int rc;

    memset(&ev, 0, sizeof ev);
    ev.aggregate_type = "auction";
    ev.stream_id = "A";
    ev.type = type;
    ev.version = f->version + 1;
    ev.occurred_us = at(hhmm);
    ev.schema = 1;
    ev.id = "00000000-0000-7000-8000-000000000000";
    ev.payload = json_loads(payload, 0, &jerr);
    assert_non_null(ev.payload);
    rc = es_aggregate_apply(f->agg, &ev, &err);
    json_decref(ev.payload);
    if (rc == 0)
        f->version++;
    return rc;
}

static const auction *fold_state(const fold *f)
{
    return es_aggregate_state(f->agg);
}

#define OPENED_A \
    "{\"item\":\"Brass telescope\",\"seller\":\"Sam\",\"start_price\":5000," \
    "\"increment\":500,\"closes_at\":\"2026-03-01T11:00:00Z\"}"

/* A opened at 09:00 by Sam, bids by Ada (50.00) and Grace (55.00). */
static void fold_two_bids(fold *f)
{
    fold_start(f);
    assert_int_equal(fold_event(f, "AuctionOpened", "09:00", OPENED_A), 0);
    assert_int_equal(fold_event(f, "BidPlaced", "09:10",
                                "{\"bidder\":\"Ada\",\"amount\":5000,\"outbid\":null}"), 0);
    assert_int_equal(fold_event(f, "BidPlaced", "09:30",
                                "{\"bidder\":\"Grace\",\"amount\":5500,\"outbid\":\"Ada\"}"), 0);
}

static void test_fold_open_and_bids(void **state)
{
    fold f;
    const auction *a;
    (void)state;

    fold_two_bids(&f);
    a = fold_state(&f);
    assert_true(a->opened);
    assert_false(a->closed);
    assert_string_equal(a->item, "Brass telescope");
    assert_string_equal(a->seller, "Sam");
    assert_int_equal(a->start_price, 5000);
    assert_int_equal(a->increment, 500);
    assert_int_equal(a->opened_at, at("09:00"));
    assert_int_equal(a->closes_at, at("11:00"));
    assert_int_equal(a->bids, 2);
    assert_int_equal(a->high_bid, 5500);
    assert_string_equal(a->leader, "Grace");
    assert_string_equal(a->winner, "");
    assert_int_equal(a->last_event_at, at("09:30"));
    assert_int_equal(es_aggregate_version(f.agg), 3);
    es_aggregate_free(f.agg);
}

static void test_fold_close_with_and_without_winner(void **state)
{
    fold f;
    (void)state;

    fold_two_bids(&f);
    assert_int_equal(fold_event(&f, "AuctionClosed", "11:00",
                                "{\"winner\":\"Grace\",\"amount\":5500}"), 0);
    assert_true(fold_state(&f)->closed);
    assert_string_equal(fold_state(&f)->winner, "Grace");
    assert_int_equal(fold_state(&f)->last_event_at, at("11:00"));
    es_aggregate_free(f.agg);

    fold_start(&f);
    assert_int_equal(fold_event(&f, "AuctionOpened", "09:00", OPENED_A), 0);
    assert_int_equal(fold_event(&f, "AuctionClosed", "11:00",
                                "{\"winner\":null,\"amount\":null}"), 0);
    assert_true(fold_state(&f)->closed);
    assert_string_equal(fold_state(&f)->winner, "");
    assert_int_equal(fold_state(&f)->bids, 0);
    es_aggregate_free(f.agg);
}

/* The log only promises JSON objects: apply refuses what it cannot read. */
static void test_fold_rejects_malformed_payloads(void **state)
{
    static const struct { const char *type, *payload; } bad[] = {
        { "AuctionOpened", "{\"item\":\"x\",\"seller\":\"Sam\",\"start_price\":5000,"
                           "\"increment\":500}" },                   /* no closes_at */
        { "AuctionOpened", "{\"item\":\"x\",\"seller\":\"\",\"start_price\":5000,"
                           "\"increment\":500,\"closes_at\":\"2026-03-01\"}" },
        { "AuctionOpened", "{\"item\":\"x\",\"seller\":\"Sam\",\"start_price\":0,"
                           "\"increment\":500,\"closes_at\":\"2026-03-01\"}" },
        { "AuctionOpened", "{\"item\":\"x\",\"seller\":\"Sam\",\"start_price\":5000,"
                           "\"increment\":500,\"closes_at\":\"noon\"}" },
        { "BidPlaced", "{\"bidder\":\"Ada\",\"amount\":\"60.00\"}" },
        { "BidPlaced", "{\"amount\":6000}" },
        { "AuctionClosed", "{\"winner\":42}" },
        { "AuctionRenamed", "{}" },
    };
    (void)state;

    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        fold f;
        int rc, want = strcmp(bad[i].type, "AuctionRenamed") == 0
                           ? ES_EUNHANDLED : ES_EINVAL;
        fold_start(&f);
        if (strcmp(bad[i].type, "AuctionOpened") != 0)
            assert_int_equal(fold_event(&f, "AuctionOpened", "09:00", OPENED_A), 0);
        rc = fold_event(&f, bad[i].type, "09:30", bad[i].payload);
        if (rc != want)
            print_error("event %zu (%s %s): %d\n", i, bad[i].type,
                        bad[i].payload, rc);
        assert_int_equal(rc, want);
        es_aggregate_free(f.agg);
    }
}

/* ---- Deciding ------------------------------------------------------------ */

static auction_command bid(const char *hhmm, const char *bidder, int64_t amount)
{
    auction_command c = { .kind = AUCTION_BID, .at = at(hhmm), .bidder = bidder,
                          .amount = amount };
    return c;
}

static auction_command close_at(const char *hhmm)
{
    auction_command c = { .kind = AUCTION_CLOSE, .at = at(hhmm) };
    return c;
}

static auction_command open_a(const char *hhmm, const char *closes)
{
    auction_command c = { .kind = AUCTION_OPEN, .at = at(hhmm),
                          .item = "Brass telescope", .seller = "Sam",
                          .start_price = 5000, .increment = 500,
                          .closes_at = at(closes) };
    return c;
}

/* Asserts that cmd is refused on a with exactly `reason`. */
static void assert_refused(const auction *a, auction_command cmd,
                           const char *reason)
{
    auction_decision d;
    assert_int_equal(auction_decide(&d, a, &cmd), ES_EREFUSED);
    assert_null(d.type);
    assert_null(d.payload);
    assert_string_equal(d.reason, reason);
}

/* Asserts that cmd on a emits type with exactly the payload `json`. */
static void assert_emits(const auction *a, auction_command cmd,
                         const char *type, const char *json)
{
    auction_decision d;
    char *text;
    assert_int_equal(auction_decide(&d, a, &cmd), 0);
    assert_string_equal(d.type, type);
    text = json_dumps(d.payload, JSON_COMPACT);
    assert_non_null(text);
    assert_string_equal(text, json);
    free(text);
    json_decref(d.payload);
}

static void test_decide_open(void **state)
{
    auction empty;
    auction_command c;
    fold f;
    (void)state;

    memset(&empty, 0, sizeof empty);
    assert_emits(&empty, open_a("09:00", "11:00"), "AuctionOpened", OPENED_A);
    assert_refused(&empty, open_a("11:00", "11:00"),
                   "the closing time 2026-03-01T11:00:00Z is not after the opening");
    c = open_a("09:00", "11:00");
    c.seller = "";
    assert_refused(&empty, c, "a seller name of 1 to 63 bytes is required");
    c = open_a("09:00", "11:00");
    c.item = NULL;
    assert_refused(&empty, c, "an item description of 1 to 127 bytes is required");
    c = open_a("09:00", "11:00");
    c.increment = 0;
    assert_refused(&empty, c, "the start price and the increment must be positive");
    c = open_a("09:00", "11:00");
    c.at = 0;
    assert_refused(&empty, c, "the command has no time");
    c = open_a("09:00", "11:00");
    c.seller = "S\xff";
    assert_refused(&empty, c, "the item and the seller must be valid UTF-8");

    fold_two_bids(&f);
    assert_refused(fold_state(&f), open_a("09:40", "12:00"),
                   "the auction is already open (Brass telescope, sold by Sam)");
    es_aggregate_free(f.agg);
}

static void test_decide_bids(void **state)
{
    auction empty;
    fold f;
    (void)state;

    memset(&empty, 0, sizeof empty);
    assert_refused(&empty, bid("09:10", "Ada", 5000),
                   "no such auction: open it first");

    fold_start(&f);
    assert_int_equal(fold_event(&f, "AuctionOpened", "09:00", OPENED_A), 0);
    assert_refused(fold_state(&f), bid("09:10", "Ada", 4999),
                   "the first bid must be at least the start price 50.00, not 49.99");
    assert_emits(fold_state(&f), bid("09:10", "Ada", 5000), "BidPlaced",
                 "{\"bidder\":\"Ada\",\"amount\":5000,\"outbid\":null}");
    es_aggregate_free(f.agg);

    fold_two_bids(&f); /* Grace leads with 55.00; the increment is 5.00 */
    assert_refused(fold_state(&f), bid("09:40", "Ada", 5999),
                   "a bid must beat the highest (55.00 by Grace) by 5.00: at least "
                   "60.00, not 59.99");
    assert_emits(fold_state(&f), bid("09:40", "Ada", 6000), "BidPlaced",
                 "{\"bidder\":\"Ada\",\"amount\":6000,\"outbid\":\"Grace\"}");
    assert_refused(fold_state(&f), bid("09:40", "Sam", 9000),
                   "Sam is the seller and cannot bid");
    assert_refused(fold_state(&f), bid("09:40", "Grace", 9000),
                   "Grace already leads with 55.00");
    assert_refused(fold_state(&f), bid("09:40", "", 9000),
                   "a bidder name of 1 to 63 bytes is required");
    /* Open for bids until the closing time, not at it. */
    assert_emits(fold_state(&f), bid("10:59", "Ada", 6000), "BidPlaced",
                 "{\"bidder\":\"Ada\",\"amount\":6000,\"outbid\":\"Grace\"}");
    assert_refused(fold_state(&f), bid("11:00", "Ada", 6000),
                   "bidding closed at 2026-03-01T11:00:00Z");
    /* Time only goes forward in an auction. */
    assert_refused(fold_state(&f), bid("09:20", "Ada", 6000),
                   "the auction's last event is at 2026-03-01T09:30:00Z: a command "
                   "cannot be dated before it");

    assert_int_equal(fold_event(&f, "AuctionClosed", "11:00",
                                "{\"winner\":\"Grace\",\"amount\":5500}"), 0);
    assert_refused(fold_state(&f), bid("10:00", "Ada", 6000),
                   "the auction is closed");
    es_aggregate_free(f.agg);
}

static void test_decide_close(void **state)
{
    auction empty;
    fold f;
    (void)state;

    memset(&empty, 0, sizeof empty);
    assert_refused(&empty, close_at("11:00"), "no such auction: open it first");

    fold_two_bids(&f);
    assert_refused(fold_state(&f), close_at("10:59"),
                   "the auction closes at 2026-03-01T11:00:00Z, not before");
    assert_refused(fold_state(&f), close_at("09:20"),
                   "the auction's last event is at 2026-03-01T09:30:00Z: a command "
                   "cannot be dated before it");
    assert_emits(fold_state(&f), close_at("11:00"), "AuctionClosed",
                 "{\"winner\":\"Grace\",\"amount\":5500}");
    assert_emits(fold_state(&f), close_at("12:00"), "AuctionClosed",
                 "{\"winner\":\"Grace\",\"amount\":5500}");
    assert_int_equal(fold_event(&f, "AuctionClosed", "11:00",
                                "{\"winner\":\"Grace\",\"amount\":5500}"), 0);
    assert_refused(fold_state(&f), close_at("11:30"),
                   "the auction is already closed");
    es_aggregate_free(f.agg);

    fold_start(&f);
    assert_int_equal(fold_event(&f, "AuctionOpened", "09:00", OPENED_A), 0);
    assert_emits(fold_state(&f), close_at("11:00"), "AuctionClosed",
                 "{\"winner\":null,\"amount\":null}");
    es_aggregate_free(f.agg);
}

/* ---- The state as JSON ---------------------------------------------------- */

static void test_encode_decode(void **state)
{
    fold f;
    auction back;
    json_t *j, *k;
    (void)state;

    fold_two_bids(&f);
    j = auction_type.encode(fold_state(&f));
    assert_non_null(j);
    memset(&back, 0, sizeof back);
    assert_int_equal(auction_type.decode(&back, j), 0);
    assert_memory_equal(&back, fold_state(&f), sizeof back);

    /* Unknown keys, and states that no fold can give, are refused. */
    k = json_deep_copy(j);
    json_object_set_new(k, "reserve", json_integer(1));
    assert_int_equal(auction_type.decode(&back, k), ES_EINVAL);
    json_decref(k);
    k = json_deep_copy(j);
    json_object_set_new(k, "leader", json_null()); /* bids without a leader */
    assert_int_equal(auction_type.decode(&back, k), ES_EINVAL);
    json_decref(k);
    k = json_deep_copy(j);
    json_object_set_new(k, "closes_at", json_string("soon"));
    assert_int_equal(auction_type.decode(&back, k), ES_EINVAL);
    json_decref(k);
    json_decref(j);
    es_aggregate_free(f.agg);
}

static void test_money(void **state)
{
    char buf[32];
    int64_t c = -1;
    (void)state;

    assert_string_equal(auction_money(buf, 8500), "85.00");
    assert_string_equal(auction_money(buf, 5), "0.05");
    assert_int_equal(auction_parse_money(&c, "57"), 0);
    assert_int_equal(c, 5700);
    assert_int_equal(auction_parse_money(&c, "57.5"), 0);
    assert_int_equal(c, 5750);
    assert_int_equal(auction_parse_money(&c, "0.05"), 0);
    assert_int_equal(c, 5);
    assert_int_equal(auction_parse_money(&c, "5.005"), ES_EINVAL);
    assert_int_equal(auction_parse_money(&c, "-5"), ES_EINVAL);
    assert_int_equal(auction_parse_money(&c, ".5"), ES_EINVAL);
    assert_int_equal(auction_parse_money(&c, "99999999999999999999"), ES_EINVAL);
}

/* ---- Executing on a log --------------------------------------------------- */

typedef struct times_ctx {
    int n;
    int64_t times[16];
} times_ctx;

static int collect_time(const es_event *ev, void *user_data)
{
    times_ctx *t = user_data;
    if (t->n < 16)
        t->times[t->n] = ev->occurred_us;
    t->n++;
    return 0;
}

/* Runs cmd on id and asserts its code, and the version after it. */
static void exec(es_repo *repo, const char *id, auction_command cmd, int want,
                 int64_t want_version)
{
    char msg[512];
    int64_t v = -1;
    int rc = auction_execute(&v, repo, id, &cmd, msg, sizeof msg);
    if (rc != want)
        print_error("auction/%s: %d (%s), expected %d\n", id, rc, msg, want);
    assert_int_equal(rc, want);
    if (rc == 0)
        assert_int_equal(v, want_version);
}

static void test_execute_on_a_log(void **state)
{
    const char *uri = es_test_fresh_log_uri();
    es_log *log;
    es_repo *repo;
    es_aggregate *agg;
    const auction *a;
    times_ctx t = { 0 };
    char msg[512];
    auction_command c;
    (void)state;

    assert_int_equal(es_log_open(&log, uri), 0);
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);

    exec(repo, "A", open_a("09:00", "11:00"), 0, 1);
    exec(repo, "A", bid("09:10", "Ada", 5000), 0, 2);
    exec(repo, "A", bid("09:30", "Grace", 5500), 0, 3);
    c = bid("09:40", "Ada", 5700);
    assert_int_equal(auction_execute(NULL, repo, "A", &c, msg, sizeof msg),
                     ES_EREFUSED);
    assert_string_equal(msg, "auction/A: command refused: a bid must beat the "
                        "highest (55.00 by Grace) by 5.00: at least 60.00, not 57.00");
    exec(repo, "A", bid("09:45", "Sam", 7000), ES_EREFUSED, 0);
    exec(repo, "A", bid("09:50", "Ada", 6000), 0, 4);
    exec(repo, "A", bid("10:15", "Grace", 8000), 0, 5);
    exec(repo, "A", close_at("10:30"), ES_EREFUSED, 0);
    exec(repo, "A", close_at("11:00"), 0, 6);

    /* Each event carries its command's time; refusals wrote nothing. */
    assert_int_equal(es_log_read_stream(log, "auction", "A", NULL, collect_time,
                                        &t), 0);
    assert_int_equal(t.n, 6);
    assert_int_equal(t.times[0], at("09:00"));
    assert_int_equal(t.times[3], at("09:50"));
    assert_int_equal(t.times[5], at("11:00"));

    /* Who led A at 10:00? Ada, with 60.00. */
    assert_int_equal(es_repo_load(repo, &agg, &auction_type, "A",
                                  ES_RANGE_AS_OF(at("10:00"))), 0);
    a = es_aggregate_state(agg);
    assert_int_equal(es_aggregate_version(agg), 4);
    assert_string_equal(a->leader, "Ada");
    assert_int_equal(a->high_bid, 6000);
    assert_false(a->closed);
    es_aggregate_free(agg);

    assert_int_equal(es_repo_load(repo, &agg, &auction_type, "A", ES_RANGE_ALL), 0);
    a = es_aggregate_state(agg);
    assert_true(a->closed);
    assert_string_equal(a->winner, "Grace");
    assert_int_equal(a->high_bid, 8000);
    es_aggregate_free(agg);

    /* A command on an auction that does not exist appends nothing. */
    exec(repo, "Z", bid("09:10", "Ada", 5000), ES_EREFUSED, 0);
    t.n = 0;
    assert_int_equal(es_log_read_stream(log, "auction", "Z", NULL, collect_time,
                                        &t), 0);
    assert_int_equal(t.n, 0);

    es_repo_free(repo);
    es_log_close(log);
}

static const es_aggregate_type *const auction_types[] = { &auction_type, NULL };

static int cli_fn(int argc, char **argv, void *user_data)
{
    return es_cli_main(argc, argv, user_data);
}

/* The program's operations tool: history --as-of with the states. */
static void test_history_as_of(void **state)
{
    const char *uri = es_test_fresh_log_uri();
    es_app app = ES_APP_INIT;
    es_log *log;
    es_repo *repo;
    const char *out, *err;
    char *argv[] = { "auction", "--log", (char *)uri, "history", "auction", "A",
                     "--as-of", "2026-03-01T10:00:00Z", NULL };
    (void)state;

    assert_int_equal(es_log_open(&log, uri), 0);
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    exec(repo, "A", open_a("09:00", "11:00"), 0, 1);
    exec(repo, "A", bid("09:50", "Ada", 6000), 0, 2);
    exec(repo, "A", bid("10:15", "Grace", 8000), 0, 3);
    es_repo_free(repo);
    es_log_close(log);

    app.name = "auction";
    app.types = auction_types;
    assert_int_equal(es_test_capture(cli_fn, 8, argv, &app, &out, &err), 0);
    assert_contains(out, "v2  2026-03-01T09:50:00Z  BidPlaced");
    assert_contains(out, "\"high_bid\":6000,\"leader\":\"Ada\"");
    assert_contains(out, "-- auction/A at version 2 (2 events, as of "
                         "2026-03-01T10:00:00Z)");
    assert_null(strstr(out, "Grace"));
}

/* ---- The projection files, on SQLite ------------------------------------ */

/*
 * The JSON projections (leaderboard.json and bidders.json in samples/auction/projections/) are run by
 * `esfold project run --file F`. This test checks that their SQL is valid
 * and builds the rows the README promises: each statement is prepared with
 * its named parameters ($stream_id, $version, $type, $occurred_at,
 * $event_id, $data.a.b, $meta.x) as positional ones, bound from the event
 * (strings as text, integers as int64, null or absent as NULL), the way
 * the projection format binds them. It is a check of two files, not a
 * projection runner: no checkpoints, no batches.
 */
typedef struct projection_run {
    sqlite3 *db;
    json_t *projections[2];
    size_t n;
} projection_run;

/* The value the parameter `name` (without the $) takes for ev: a new
 * reference, json_null() when the event has no such member. */
static json_t *parameter_value(const es_event *ev, const char *name)
{
    char buf[ES_TIME_BUFSZ];
    json_t *v = NULL;
    if (strcmp(name, "stream_id") == 0)
        return json_string(ev->stream_id);
    if (strcmp(name, "type") == 0)
        return json_string(ev->type);
    if (strcmp(name, "event_id") == 0)
        return json_string(ev->id);
    if (strcmp(name, "version") == 0)
        return json_integer(ev->version);
    if (strcmp(name, "occurred_at") == 0) {
        es_time_format(buf, sizeof buf, ev->occurred_us);
        return json_string(buf);
    }
    if (strncmp(name, "data.", 5) == 0 || strncmp(name, "meta.", 5) == 0) {
        char path[128], *key, *save = NULL;
        v = name[0] == 'd' ? ev->payload : ev->meta;
        snprintf(path, sizeof path, "%s", name + 5);
        for (key = strtok_r(path, ".", &save); key && v;
             key = strtok_r(NULL, ".", &save))
            v = json_object_get(v, key);
        return v ? json_incref(v) : json_null();
    }
    fail_msg("unknown parameter $%s", name);
    return NULL;
}

/* Runs one statement of a projection for ev. */
static void run_statement(sqlite3 *db, const char *sql, const es_event *ev)
{
    char rewritten[4096], names[16][64];
    size_t o = 0, n = 0;
    sqlite3_stmt *st = NULL;
    int quoted = 0, rc;

    for (const char *p = sql; *p; p++) {
        assert_true(o + 8 < sizeof rewritten);
        if (*p == '\'')
            quoted = !quoted;
        if (!quoted && *p == '$') {
            size_t len = strspn(p + 1, "abcdefghijklmnopqrstuvwxyz"
                                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.");
            assert_true(len > 0 && len < sizeof names[0] && n < 16);
            memcpy(names[n], p + 1, len);
            names[n][len] = '\0';
            o += (size_t)snprintf(rewritten + o, sizeof rewritten - o, "?%zu",
                                  ++n);
            p += len;
            continue;
        }
        rewritten[o++] = *p;
    }
    rewritten[o] = '\0';
    if (sqlite3_prepare_v2(db, rewritten, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    for (size_t i = 0; i < n; i++) {
        json_t *v = parameter_value(ev, names[i]);
        int c = (int)i + 1;
        if (json_is_string(v))
            rc = sqlite3_bind_text(st, c, json_string_value(v), -1,
                                   SQLITE_TRANSIENT);
        else if (json_is_integer(v))
            rc = sqlite3_bind_int64(st, c, json_integer_value(v));
        else if (json_is_null(v))
            rc = sqlite3_bind_null(st, c);
        else
            rc = SQLITE_MISMATCH; /* the auction's events have no others */
        json_decref(v);
        assert_int_equal(rc, SQLITE_OK);
    }
    if ((rc = sqlite3_step(st)) != SQLITE_DONE)
        fail_msg("%s (%s v%lld): %s", sql, ev->type, (long long)ev->version,
                 sqlite3_errmsg(db));
    sqlite3_finalize(st);
}

static int project_event(const es_event *ev, void *user_data)
{
    projection_run *r = user_data;
    for (size_t i = 0; i < r->n; i++) {
        json_t *stmts = json_object_get(json_object_get(r->projections[i], "on"),
                                        ev->type);
        size_t k;
        json_t *sql;
        json_array_foreach(stmts, k, sql)
            run_statement(r->db, json_string_value(sql), ev);
    }
    return 0;
}

/* Loads a projection file and checks its shape. */
static json_t *load_projection(const char *file)
{
    char path[4096];
    json_error_t jerr;
    json_t *p, *stmts, *sql;
    const char *type;
    size_t i;

    snprintf(path, sizeof path, "%s/%s", AUCTION_PROJECTIONS_DIR, file);
    if ((p = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
        fail_msg("%s: line %d: %s", path, jerr.line, jerr.text);
    assert_true(json_is_string(json_object_get(p, "name")));
    assert_true(json_is_integer(json_object_get(p, "version")));
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(p, "follows"), 0)), "auction");
    assert_true(json_array_size(json_object_get(p, "setup")) > 0);
    json_object_foreach(json_object_get(p, "on"), type, stmts) {
        /* Only event types the auction has. */
        assert_non_null(es_aggregate_type_find(&auction_type, type));
        json_array_foreach(stmts, i, sql)
            assert_true(json_is_string(sql));
    }
    return p;
}

/* Runs both projections over the log's partitions in the given order
 * into a new in-memory database. */
static sqlite3 *project(es_log *log, const int32_t *order, size_t n)
{
    projection_run r = { NULL, { NULL, NULL }, 0 };
    json_t *sql;
    size_t i;

    r.projections[r.n++] = load_projection("leaderboard.json");
    r.projections[r.n++] = load_projection("bidders.json");
    assert_int_equal(sqlite3_open(":memory:", &r.db), SQLITE_OK);
    for (size_t p = 0; p < r.n; p++)
        json_array_foreach(json_object_get(r.projections[p], "setup"), i, sql)
            if (sqlite3_exec(r.db, json_string_value(sql), NULL, NULL, NULL) !=
                SQLITE_OK)
                fail_msg("%s: %s", json_string_value(sql), sqlite3_errmsg(r.db));
    for (i = 0; i < n; i++) {
        int64_t next;
        assert_int_equal(es_log_read_partition(log, &next, "auction", order[i],
                                               0, 0, project_event, &r), 0);
    }
    for (size_t p = 0; p < r.n; p++)
        json_decref(r.projections[p]);
    return r.db;
}

static int add_row(void *user_data, int ncols, char **values, char **names)
{
    char *text = user_data;
    size_t len = strlen(text);
    (void)names;
    for (int i = 0; i < ncols; i++)
        len += (size_t)snprintf(text + len, 2048 - len, "%s%s", i ? "|" : "",
                                values[i] ? values[i] : "NULL");
    snprintf(text + len, 2048 - len, "\n");
    return 0;
}

/* The rows of a query, one line each, columns separated by |. */
static const char *rows(sqlite3 *db, const char *query)
{
    static char text[2048];
    text[0] = '\0';
    if (sqlite3_exec(db, query, add_row, text, NULL) != SQLITE_OK)
        fail_msg("%s: %s", query, sqlite3_errmsg(db));
    return text;
}

/* The demo's auctions: A (Sam's), B (Ada's), C (Lin's, no bids). */
static void demo_auctions(es_repo *repo)
{
    auction_command c;
    exec(repo, "A", open_a("09:00", "11:00"), 0, 1);
    c = open_a("09:00", "11:30");
    c.item = "Oak writing desk";
    c.seller = "Ada";
    c.start_price = 10000;
    c.increment = 1000;
    exec(repo, "B", c, 0, 1);
    c = open_a("09:05", "10:30");
    c.item = "Signed first edition";
    c.seller = "Lin";
    c.start_price = 2000;
    c.increment = 200;
    exec(repo, "C", c, 0, 1);
    exec(repo, "A", bid("09:10", "Ada", 5000), 0, 2);
    exec(repo, "B", bid("09:20", "Grace", 10000), 0, 2);
    exec(repo, "A", bid("09:30", "Grace", 5500), 0, 3);
    exec(repo, "A", bid("09:40", "Ada", 5700), ES_EREFUSED, 0);
    exec(repo, "A", bid("09:50", "Ada", 6000), 0, 4);
    exec(repo, "A", bid("10:15", "Grace", 8000), 0, 5);
    exec(repo, "B", bid("10:20", "Lin", 11000), 0, 3);
    exec(repo, "A", bid("10:40", "Ada", 8500), 0, 6);
    exec(repo, "C", close_at("10:30"), 0, 2);
    exec(repo, "A", close_at("11:05"), 0, 7);
}

/* What the projections hold after demo_auctions. B is still open: Lin
 * leads it. */
static const char leaderboard_sql[] =
    "SELECT auction_id, status, bids, high_bid, leader, next_bid, winner,"
    " updated_at, version FROM auction_leaderboard ORDER BY auction_id";
static const char leaderboard_rows[] =
    "A|sold|5|8500|Ada|9000|Ada|2026-03-01T11:05:00Z|7\n"
    "B|open|2|11000|Lin|12000|NULL|2026-03-01T10:20:00Z|3\n"
    "C|unsold|0|NULL|NULL|2000|NULL|2026-03-01T10:30:00Z|2\n";
static const char bidders_sql[] = "SELECT * FROM auction_bidders ORDER BY bidder";
/* bidder|bids|auctions|leads|won|spent|highest_bid */
static const char bidders_rows[] = "Ada|3|1|0|1|8500|8500\n"
                                   "Grace|3|2|0|0|0|10000\n"
                                   "Lin|1|1|1|0|0|11000\n";
static const char bidder_auctions_sql[] =
    "SELECT * FROM auction_bidder_auctions ORDER BY bidder, auction_id";
static const char bidder_auctions_rows[] = "Ada|A|3|8500|won\n"
                                           "Grace|A|2|8000|lost\n"
                                           "Grace|B|1|10000|open\n"
                                           "Lin|B|1|11000|open\n";

static void test_projection_files(void **state)
{
    static const int32_t forward[] = { 0, 1, 2, 3 }, backward[] = { 3, 2, 1, 0 };
    es_log *log;
    es_repo *repo;
    sqlite3 *db, *db2;
    int32_t partitions;
    (void)state;

    assert_int_equal(es_log_open(&log, es_test_fresh_log_uri()), 0);
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    assert_int_equal(es_log_partition_count(log, &partitions, "auction"), 0);
    assert_int_equal(partitions, 4);
    demo_auctions(repo);

    db = project(log, forward, 4);
    assert_string_equal(rows(db, leaderboard_sql), leaderboard_rows);
    assert_string_equal(rows(db, bidders_sql), bidders_rows);
    assert_string_equal(rows(db, bidder_auctions_sql), bidder_auctions_rows);

    /* Keyed by bidder, not by stream: a worker may apply the partitions in
     * any interleaving; the per-bidder rows do not depend on it. */
    db2 = project(log, backward, 4);
    assert_string_equal(rows(db2, bidders_sql), bidders_rows);
    sqlite3_close(db2);
    sqlite3_close(db);
    es_repo_free(repo);
    es_log_close(log);
}

/* The sample's projection files as the esfold command runs them
 * (es_projection_load_file, a worker each, until caught up), into a
 * SQLite file and into PostgreSQL: the same rows on both. */
static void projection_files_case(const char *target, const char *path_or_url,
                                  int pg)
{
    static const char *const files[] = {"leaderboard.json", "bidders.json"};
    es_log *log;
    es_repo *repo;
    char *got;
    (void)pg;

    assert_int_equal(es_log_open(&log, es_test_fresh_log_uri()), 0);
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    demo_auctions(repo);
    for (size_t i = 0; i < 2; i++) {
        char path[4096];
        es_projection *p = NULL;
        es_projection_worker *w = NULL;
        es_error err;
        int rc;
        snprintf(path, sizeof path, "%s/%s", AUCTION_PROJECTIONS_DIR, files[i]);
        if (es_projection_load_file(&p, path, &err) != 0)
            fail_msg("%s", err.text);
        if ((rc = es_projection_worker_open(&w, log, p, target, NULL)) == 0)
            rc = es_projection_worker_run(w, NULL, 1, NULL, NULL, NULL);
        if (rc != 0)
            fail_msg("%s: %s", files[i], es_errmsg(w));
        es_projection_worker_close(w);
        es_projection_free(p);
    }
    got = es_test_target_rows(path_or_url, pg, leaderboard_sql);
    assert_string_equal(got, leaderboard_rows);
    free(got);
    got = es_test_target_rows(path_or_url, pg, bidders_sql);
    assert_string_equal(got, bidders_rows);
    free(got);
    got = es_test_target_rows(path_or_url, pg, bidder_auctions_sql);
    assert_string_equal(got, bidder_auctions_rows);
    free(got);
    es_repo_free(repo);
    es_log_close(log);
}

static void test_projection_files_worker_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(projection_files_case, "auction");
}

static void test_projection_files_worker_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(projection_files_case, "auction");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold_open_and_bids),
        cmocka_unit_test(test_fold_close_with_and_without_winner),
        cmocka_unit_test(test_fold_rejects_malformed_payloads),
        cmocka_unit_test(test_decide_open),
        cmocka_unit_test(test_decide_bids),
        cmocka_unit_test(test_decide_close),
        cmocka_unit_test(test_encode_decode),
        cmocka_unit_test(test_money),
        cmocka_unit_test(test_execute_on_a_log),
        cmocka_unit_test(test_history_as_of),
        cmocka_unit_test(test_projection_files),
        cmocka_unit_test(test_projection_files_worker_sqlite),
        cmocka_unit_test(test_projection_files_worker_postgres),
    };
    return cmocka_run_group_tests_name("auction", tests, NULL, NULL);
}

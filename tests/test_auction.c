/*
 * tests/test_auction.c - the auction sample's aggregate
 * (samples/auction/auction.c): the state after folds, every refusal of
 * auction_decide with its message, the events it emits, the state's JSON
 * and its decoder, and auction_execute on a SQLite log (events stamped
 * with the command's time, "who led at 10:00" as of a time, nothing
 * written for a refusal, the history command with the type compiled in),
 * and the SQL of the sample's projection files on SQLite.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esfold/projection.h"
#include "esfold/rebuild.h"
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
 * The JSON projections (leaderboard.json and bidders.json in
 * samples/auction/projections/) as `esfold project run --file F` runs
 * them: loaded by es_projection_load_file and applied by a real worker
 * into a fresh SQLite file and a fresh PostgreSQL database, so that the
 * rows the sample's README promises are checked on both targets, and the
 * bounded rebuild of its "who led A at 10:00" too.
 */
static es_projection *load_projection(const char *file)
{
    char path[4096];
    es_projection *p = NULL;
    es_error err;
    snprintf(path, sizeof path, "%s/%s", AUCTION_PROJECTIONS_DIR, file);
    if (es_projection_load_file(&p, path, &err) != 0)
        fail_msg("%s: %s", path, err.text);
    return p;
}

/* Runs both projections over the log into target until caught up, with
 * batches of batch_size events per partition (1: the worker takes one
 * event of each partition in turn, so partitions interleave event by
 * event; 0: the default, each partition's events in one batch here). */
static void project(es_log *log, const char *target, size_t batch_size)
{
    static const char *const files[] = {"leaderboard.json", "bidders.json"};
    for (size_t i = 0; i < 2; i++) {
        es_projection *p = load_projection(files[i]);
        es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
        es_projection_worker *w = NULL;
        es_projection_step total;
        int rc;
        o.batch_size = batch_size;
        if ((rc = es_projection_worker_open(&w, log, p, target, &o)) != 0 ||
            (rc = es_projection_worker_run(w, NULL, 1, &total, NULL, NULL)) != 0)
            fail_msg("%s into %s: %s (%s)", files[i], target, es_errmsg(w),
                     es_strerror(rc));
        assert_int_equal(total.dead_lettered, 0);
        es_projection_worker_close(w);
        es_projection_free(p);
    }
}

/* The leaderboard as of 10:00, by a bounded rebuild into target. */
static void rebuild_as_of_ten(es_log *log, const char *target)
{
    es_projection *p = load_projection("leaderboard.json");
    es_rebuild_options o = ES_REBUILD_OPTIONS_INIT;
    es_error err;
    o.as_of_us = at("10:00");
    if (es_projection_rebuild(NULL, log, p, target, &o, &err) != 0)
        fail_msg("rebuild --as-of 10:00 into %s: %s", target, err.text);
    es_projection_free(p);
}

/* The log of the demo's story: A (Sam's), B (Ada's), C (Lin's, no bids). */
static es_log *demo_log(void)
{
    es_log *log;
    es_repo *repo;
    int32_t partitions;
    auction_command c;

    assert_int_equal(es_log_open(&log, es_test_fresh_log_uri()), 0);
    assert_int_equal(es_repo_new(&repo, log, NULL), 0);
    assert_int_equal(es_log_partition_count(log, &partitions, "auction"), 0);
    assert_int_equal(partitions, 4);
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
    es_repo_free(repo);
    return log;
}

static void projection_case(const char *target, const char *path_or_url, int pg)
{
    es_log *log = demo_log();
    char *bidders, *got;
    const char *other;
    char other_uri[600];

    project(log, target, 0);
    /* B is still open: Lin leads it. */
    got = es_test_target_rows(path_or_url, pg,
                              "SELECT auction_id, status, bids, high_bid, "
                              "leader, next_bid, winner, updated_at, version "
                              "FROM auction_leaderboard ORDER BY auction_id");
    assert_string_equal(got, "A|sold|5|8500|Ada|9000|Ada|2026-03-01T11:05:00Z|7\n"
                             "B|open|2|11000|Lin|12000|NULL|2026-03-01T10:20:00Z|3\n"
                             "C|unsold|0|NULL|NULL|2000|NULL|2026-03-01T10:30:00Z|2\n");
    free(got);
    /* bidder|bids|auctions|leads|won|spent|highest_bid */
    bidders = es_test_target_rows(path_or_url, pg, "SELECT * FROM "
                                  "auction_bidders ORDER BY bidder");
    assert_string_equal(bidders, "Ada|3|1|0|1|8500|8500\n"
                                 "Grace|3|2|0|0|0|10000\n"
                                 "Lin|1|1|1|0|0|11000\n");
    got = es_test_target_rows(path_or_url, pg, "SELECT * FROM "
                              "auction_bidder_auctions ORDER BY bidder, "
                              "auction_id");
    assert_string_equal(got, "Ada|A|3|8500|won\n"
                             "Grace|A|2|8000|lost\n"
                             "Grace|B|1|10000|open\n"
                             "Lin|B|1|11000|open\n");
    free(got);

    /* Who led A at 10:00, from the read model (the README's query). */
    rebuild_as_of_ten(log, target);
    got = es_test_target_rows(path_or_url, pg,
                              "SELECT auction_id, status, bids, high_bid, "
                              "leader FROM "
                              "auction_leaderboard__asof_20260301t100000z "
                              "ORDER BY auction_id");
    assert_string_equal(got, "A|open|3|6000|Ada\n"
                             "B|open|1|10000|Grace\n"
                             "C|open|0|NULL|NULL\n");
    free(got);

    /* Keyed by bidder, not by stream: the per-bidder rows do not depend on
     * how the worker interleaves the partitions. One event per partition
     * in turn, into another target, gives the same rows. */
    if (pg) {
        other = es_test_pg_fresh_db_or_fail("auction2");
        snprintf(other_uri, sizeof other_uri, "%s", other);
    } else {
        other = es_test_path("auction-interleaved.db");
        snprintf(other_uri, sizeof other_uri, "sqlite:%s", other);
    }
    project(log, other_uri, 1);
    got = es_test_target_rows(other, pg, "SELECT * FROM auction_bidders "
                              "ORDER BY bidder");
    assert_string_equal(got, bidders);
    free(got);
    free(bidders);
    es_log_close(log);
}

static void test_projection_files_sqlite(void **state)
{
    (void)state;
    es_test_on_sqlite(projection_case, "auction-read.db");
}

static void test_projection_files_postgres(void **state)
{
    (void)state;
    es_test_on_postgres(projection_case, "auction");
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
        cmocka_unit_test(test_projection_files_sqlite),
        cmocka_unit_test(test_projection_files_postgres),
    };
    return cmocka_run_group_tests_name("auction", tests, NULL, NULL);
}

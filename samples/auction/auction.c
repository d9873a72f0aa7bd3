/*
 * samples/auction/auction.c - the auction aggregate: how events fold into
 * an auction (the apply functions), the state as JSON (the audit trail and
 * snapshots), how commands become events (auction_decide), and running a
 * command whose time is its own (auction_execute).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "auction.h"

/* ---- Money --------------------------------------------------------------- */

const char *auction_money(char buf[32], int64_t cents)
{
    uint64_t abs = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    snprintf(buf, 32, "%s%" PRIu64 ".%02u", cents < 0 ? "-" : "", abs / 100,
             (unsigned)(abs % 100));
    return buf;
}

int auction_parse_money(int64_t *out, const char *text)
{
    int64_t units = 0, cents = 0;
    const char *p = text;

    if (p == NULL || !(*p >= '0' && *p <= '9'))
        return ES_EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (units > (INT64_MAX / 100 - 99) / 10)
            return ES_EINVAL;
        units = units * 10 + (*p - '0');
    }
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return ES_EINVAL;
        cents = (*p++ - '0') * 10;
        if (*p >= '0' && *p <= '9')
            cents += *p++ - '0';
    }
    if (*p != '\0')
        return ES_EINVAL;
    *out = units * 100 + cents;
    return 0;
}

/* ---- Folding: one apply function per event type ------------------------ */

/* 1 when s is a non-empty string shorter than size bytes. */
static int fits(const char *s, size_t size)
{
    return s && s[0] != '\0' && strlen(s) < size;
}

/* Copies payload member key, a string that fits buf, into buf. */
static int get_name(const es_event *ev, const char *key, char *buf, size_t size)
{
    const char *s = json_string_value(json_object_get(ev->payload, key));
    if (!fits(s, size))
        return ES_EINVAL;
    snprintf(buf, size, "%s", s);
    return 0;
}

/* Reads payload member key as a positive integer of cents. */
static int get_cents(const es_event *ev, const char *key, int64_t *out)
{
    json_t *v = json_object_get(ev->payload, key);
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return ES_EINVAL;
    *out = json_integer_value(v);
    return 0;
}

static int apply_opened(void *state, const es_event *ev)
{
    auction *a = state;
    const char *closes = json_string_value(json_object_get(ev->payload, "closes_at"));
    es_error err;

    if (get_name(ev, "item", a->item, sizeof a->item) ||
        get_name(ev, "seller", a->seller, sizeof a->seller) ||
        get_cents(ev, "start_price", &a->start_price) ||
        get_cents(ev, "increment", &a->increment) || closes == NULL ||
        es_time_parse(&a->closes_at, closes, &err) != 0)
        return ES_EINVAL;
    a->opened = 1;
    a->opened_at = a->last_event_at = ev->occurred_us;
    return 0;
}

static int apply_bid(void *state, const es_event *ev)
{
    auction *a = state;
    int64_t amount;

    /* The bid is a fact: auction_decide judged it. apply only refuses what
     * it cannot represent. */
    if (get_cents(ev, "amount", &amount) ||
        get_name(ev, "bidder", a->leader, sizeof a->leader))
        return ES_EINVAL;
    a->high_bid = amount;
    a->bids++;
    a->last_event_at = ev->occurred_us;
    return 0;
}

static int apply_closed(void *state, const es_event *ev)
{
    auction *a = state;
    json_t *winner = json_object_get(ev->payload, "winner");

    if (winner == NULL || json_is_null(winner))
        a->winner[0] = '\0';
    else if (get_name(ev, "winner", a->winner, sizeof a->winner))
        return ES_EINVAL;
    a->closed = 1;
    a->last_event_at = ev->occurred_us;
    return 0;
}

/* Each apply also dates the state (last_event_at): auction_decide refuses
 * a command dated before the auction's last event. */
static const es_handler auction_handlers[] = {
    { "AuctionOpened", apply_opened },
    { "BidPlaced", apply_bid },
    { "AuctionClosed", apply_closed },
    { NULL, NULL }
};

/* ---- The state as JSON (state_schema 1) --------------------------------- */

static json_t *time_json(int64_t us)
{
    char buf[ES_TIME_BUFSZ];
    if (us == 0)
        return json_null();
    es_time_format(buf, sizeof buf, us);
    return json_string(buf);
}

static json_t *name_json(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

static json_t *auction_encode(const void *state)
{
    const auction *a = state;
    return json_pack("{s:b, s:b, s:s, s:s, s:I, s:I, s:o, s:o, s:I, s:I, s:o, "
                     "s:o, s:o}",
                     "opened", a->opened, "closed", a->closed,
                     "item", a->item, "seller", a->seller,
                     "start_price", (json_int_t)a->start_price,
                     "increment", (json_int_t)a->increment,
                     "opened_at", time_json(a->opened_at),
                     "closes_at", time_json(a->closes_at),
                     "bids", (json_int_t)a->bids,
                     "high_bid", (json_int_t)a->high_bid,
                     "leader", name_json(a->leader),
                     "winner", name_json(a->winner),
                     "last_event_at", time_json(a->last_event_at));
}

/* Reads an encoded time (null: 0) into *out. */
static int decode_time(const json_t *v, int64_t *out)
{
    es_error err;
    if (json_is_null(v)) {
        *out = 0;
        return 0;
    }
    if (!json_is_string(v))
        return ES_EINVAL;
    return es_time_parse(out, json_string_value(v), &err) ? ES_EINVAL : 0;
}

/* Reads an encoded name (null: "") into buf. */
static int decode_name(const json_t *v, char *buf, size_t size)
{
    if (json_is_null(v)) {
        buf[0] = '\0';
        return 0;
    }
    if (!fits(json_string_value(v), size))
        return ES_EINVAL;
    snprintf(buf, size, "%s", json_string_value(v));
    return 0;
}

static int auction_decode(void *state, const json_t *json)
{
    auction tmp;
    const char *item, *seller;
    json_t *opened_at, *closes_at, *leader, *winner, *last;
    json_int_t start_price, increment, bids, high_bid;

    memset(&tmp, 0, sizeof tmp);
    if (json_unpack((json_t *)json, "{s:b, s:b, s:s, s:s, s:I, s:I, s:o, s:o, "
                    "s:I, s:I, s:o, s:o, s:o !}",
                    "opened", &tmp.opened, "closed", &tmp.closed,
                    "item", &item, "seller", &seller,
                    "start_price", &start_price, "increment", &increment,
                    "opened_at", &opened_at, "closes_at", &closes_at,
                    "bids", &bids, "high_bid", &high_bid,
                    "leader", &leader, "winner", &winner,
                    "last_event_at", &last) != 0)
        return ES_EINVAL;
    if (decode_time(opened_at, &tmp.opened_at) ||
        decode_time(closes_at, &tmp.closes_at) ||
        decode_time(last, &tmp.last_event_at) ||
        decode_name(leader, tmp.leader, sizeof tmp.leader) ||
        decode_name(winner, tmp.winner, sizeof tmp.winner))
        return ES_EINVAL;
    if (tmp.opened) {
        if (!fits(item, sizeof tmp.item) || !fits(seller, sizeof tmp.seller) ||
            start_price <= 0 || increment <= 0)
            return ES_EINVAL;
    } else if (tmp.closed || item[0] || seller[0] || bids || high_bid) {
        return ES_EINVAL; /* an auction that never opened has nothing */
    }
    if (bids < 0 || high_bid < 0 || (bids > 0) != (high_bid > 0) ||
        (bids > 0) != (tmp.leader[0] != '\0'))
        return ES_EINVAL;
    snprintf(tmp.item, sizeof tmp.item, "%s", item);
    snprintf(tmp.seller, sizeof tmp.seller, "%s", seller);
    tmp.start_price = start_price;
    tmp.increment = increment;
    tmp.bids = bids;
    tmp.high_bid = high_bid;
    memcpy(state, &tmp, sizeof tmp);
    return 0;
}

const es_aggregate_type auction_type = {
    .name = "auction",
    .state_size = sizeof(auction),
    .handlers = auction_handlers,
    .state_schema = 1,
    .encode = auction_encode,
    .decode = auction_decode,
};

/* ---- Deciding: commands, invariants, refusals --------------------------- */

static int refuse(auction_decision *out, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static int refuse(auction_decision *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof out->reason, fmt, ap);
    va_end(ap);
    return ES_EREFUSED;
}

static int emit(auction_decision *out, const char *type, json_t *payload)
{
    if (payload == NULL)
        return ES_ENOMEM;
    out->type = type;
    out->payload = payload;
    return 0;
}

/* Time only goes forward in an auction: "as of T" folds a stream up to its
 * first event later than T, so its events must be in time order. */
static int check_order(auction_decision *out, const auction *a,
                       const auction_command *cmd)
{
    char when[ES_TIME_BUFSZ];
    if (cmd->at >= a->last_event_at)
        return 0;
    es_time_format(when, sizeof when, a->last_event_at);
    return refuse(out, "the auction's last event is at %s: a command cannot "
                  "be dated before it", when);
}

static int decide_open(auction_decision *out, const auction *a,
                       const auction_command *cmd)
{
    char when[ES_TIME_BUFSZ];
    json_t *item, *seller;

    if (a->opened)
        return refuse(out, "the auction is already open (%s, sold by %s)",
                      a->item, a->seller);
    if (!fits(cmd->item, sizeof a->item))
        return refuse(out, "an item description of 1 to %zu bytes is required",
                      sizeof a->item - 1);
    if (!fits(cmd->seller, sizeof a->seller))
        return refuse(out, "a seller name of 1 to %zu bytes is required",
                      sizeof a->seller - 1);
    if (cmd->start_price <= 0 || cmd->increment <= 0)
        return refuse(out, "the start price and the increment must be positive");
    if (cmd->closes_at <= cmd->at) {
        es_time_format(when, sizeof when, cmd->closes_at);
        return refuse(out, "the closing time %s is not after the opening", when);
    }
    item = json_string(cmd->item);
    seller = json_string(cmd->seller);
    if (item == NULL || seller == NULL) {
        json_decref(item);
        json_decref(seller);
        return refuse(out, "the item and the seller must be valid UTF-8");
    }
    return emit(out, "AuctionOpened",
                json_pack("{s:o, s:o, s:I, s:I, s:o}", "item", item,
                          "seller", seller,
                          "start_price", (json_int_t)cmd->start_price,
                          "increment", (json_int_t)cmd->increment,
                          "closes_at", time_json(cmd->closes_at)));
}

static int decide_bid(auction_decision *out, const auction *a,
                      const auction_command *cmd)
{
    char m1[32], m2[32], m3[32], m4[32], when[ES_TIME_BUFSZ];
    int64_t least;
    json_t *bidder;

    if (a->closed)
        return refuse(out, "the auction is closed");
    if (check_order(out, a, cmd))
        return ES_EREFUSED;
    if (cmd->at >= a->closes_at) {
        es_time_format(when, sizeof when, a->closes_at);
        return refuse(out, "bidding closed at %s", when);
    }
    if (!fits(cmd->bidder, sizeof a->leader))
        return refuse(out, "a bidder name of 1 to %zu bytes is required",
                      sizeof a->leader - 1);
    if (strcmp(cmd->bidder, a->seller) == 0)
        return refuse(out, "%s is the seller and cannot bid", cmd->bidder);
    if (strcmp(cmd->bidder, a->leader) == 0)
        return refuse(out, "%s already leads with %s", cmd->bidder,
                      auction_money(m1, a->high_bid));
    if (a->bids == 0 && cmd->amount < a->start_price)
        return refuse(out, "the first bid must be at least the start price %s, "
                      "not %s", auction_money(m1, a->start_price),
                      auction_money(m2, cmd->amount));
    least = a->high_bid + a->increment;
    if (a->bids > 0 && (a->high_bid > INT64_MAX - a->increment ||
                        cmd->amount < least))
        return refuse(out, "a bid must beat the highest (%s by %s) by %s: at "
                      "least %s, not %s", auction_money(m1, a->high_bid),
                      a->leader, auction_money(m2, a->increment),
                      auction_money(m3, least), auction_money(m4, cmd->amount));
    if ((bidder = json_string(cmd->bidder)) == NULL)
        return refuse(out, "the bidder name is not valid UTF-8");
    return emit(out, "BidPlaced",
                json_pack("{s:o, s:I, s:o}", "bidder", bidder,
                          "amount", (json_int_t)cmd->amount,
                          "outbid", name_json(a->leader)));
}

static int decide_close(auction_decision *out, const auction *a,
                        const auction_command *cmd)
{
    char when[ES_TIME_BUFSZ];

    if (a->closed)
        return refuse(out, "the auction is already closed");
    if (check_order(out, a, cmd))
        return ES_EREFUSED;
    if (cmd->at < a->closes_at) {
        es_time_format(when, sizeof when, a->closes_at);
        return refuse(out, "the auction closes at %s, not before", when);
    }
    if (a->bids == 0)
        return emit(out, "AuctionClosed",
                    json_pack("{s:n, s:n}", "winner", "amount"));
    return emit(out, "AuctionClosed",
                json_pack("{s:s, s:I}", "winner", a->leader,
                          "amount", (json_int_t)a->high_bid));
}

int auction_decide(auction_decision *out, const auction *a,
                   const auction_command *cmd)
{
    if (out == NULL || a == NULL || cmd == NULL)
        return ES_EINVAL;
    memset(out, 0, sizeof *out);
    if (cmd->at <= 0)
        return refuse(out, "the command has no time");
    if (cmd->kind == AUCTION_OPEN)
        return decide_open(out, a, cmd);
    if (!a->opened)
        return refuse(out, "no such auction: open it first");
    switch (cmd->kind) {
    case AUCTION_BID:
        return decide_bid(out, a, cmd);
    case AUCTION_CLOSE:
        return decide_close(out, a, cmd);
    default:
        return ES_EINVAL; /* not an auction_command_kind */
    }
}

/* ---- Executing a command at its own time -------------------------------- */

/*
 * es_repo_execute stamps its events with the time of the append. An
 * auction's commands carry their own time instead (the time the auctioneer
 * took the bid decides whether it was before the closing), so this is its
 * loop, on the same public calls: load, decide, append with the loaded
 * version as the expected version, again on a conflict.
 */
#define AUCTION_EXECUTE_ATTEMPTS 5

int auction_execute(int64_t *version_out, es_repo *repo, const char *id,
                    const auction_command *cmd, char *msg, size_t msg_size)
{
    es_aggregate *agg = NULL;
    auction_decision d = { NULL, NULL, "" };
    es_append_result ar;
    int64_t version;
    int attempt, rc = ES_ECONFLICT;

    msg[0] = '\0';
    for (attempt = 1; attempt <= AUCTION_EXECUTE_ATTEMPTS; attempt++) {
        if ((rc = es_repo_load(repo, &agg, &auction_type, id, ES_RANGE_ALL)) != 0) {
            snprintf(msg, msg_size, "%s", es_errmsg(repo));
            goto done;
        }
        version = es_aggregate_version(agg);
        rc = auction_decide(&d, es_aggregate_state(agg), cmd);
        if (rc == ES_EREFUSED) {
            snprintf(msg, msg_size, "auction/%s: command refused: %s", id,
                     d.reason);
            goto done;
        }
        if (rc != 0) {
            snprintf(msg, msg_size, "auction/%s: %s", id, es_strerror(rc));
            goto done;
        }
        {
            es_event ev = { .type = d.type, .payload = d.payload,
                            .occurred_us = cmd->at };
            rc = es_log_append(es_repo_log(repo), &ar, auction_type.name, id,
                               version == 0 ? ES_EXPECT_NO_STREAM : version,
                               &ev, 1);
        }
        json_decref(d.payload);
        d.payload = NULL;
        es_aggregate_free(agg);
        agg = NULL;
        if (rc == 0) {
            if (version_out)
                *version_out = ar.version;
            goto done;
        }
        snprintf(msg, msg_size, "%s", es_errmsg(es_repo_log(repo)));
        if (rc != ES_ECONFLICT)
            goto done;
    }
done:
    json_decref(d.payload);
    es_aggregate_free(agg);
    return rc;
}

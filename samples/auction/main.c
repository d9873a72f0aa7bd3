/*
 * samples/auction/main.c - the `auction` program: a scripted demo of the
 * auction aggregate and single commands on auctions, in the command table
 * of es_cli_main (esfold/cli.h), which also gives it every esfold
 * operations command (history, verify, snapshot, ...) with the auction
 * type compiled in: the program is its own operations tool.
 *
 *   auction [--log URI] demo
 *   auction [--log URI] open ID ITEM SELLER START INCREMENT CLOSES_AT [--at TIME]
 *   auction [--log URI] bid ID BIDDER AMOUNT [--at TIME]
 *   auction [--log URI] close ID [--at TIME]
 *   auction [--log URI] show ID [--as-of TIME | --to-version N]
 *   auction [--log URI] history auction ID     (and every esfold command)
 *   auction --help
 *
 * Exit status: 0 success, 1 the command failed or was refused, 2 usage.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auction.h"

static const es_aggregate_type *const auction_types[] = { &auction_type, NULL };

/* What every command gets from es_cli_main: the log and the repository. */
typedef const es_app_call house;

/* Loads auction id within range; prints the error when that fails. */
static int load(house *h, es_aggregate **out, const char *id, es_range range)
{
    int rc = es_repo_load(h->repo, out, &auction_type, id, range);
    if (rc != 0)
        fprintf(stderr, "auction: %s\n", es_errmsg(h->repo));
    return rc;
}

/* "open until 2026-03-01T11:00:00Z, highest 60.00 by Ada (3 bids), next bid
 * at least 65.00", "closed: won by Ada for 85.00 (5 bids)", ... */
static void describe(FILE *f, const auction *a)
{
    char when[ES_TIME_BUFSZ], m1[32], m2[32];
    const char *s = a->bids == 1 ? "" : "s";

    if (!a->opened) {
        fprintf(f, "not opened");
        return;
    }
    if (a->closed) {
        if (a->winner[0])
            fprintf(f, "closed: won by %s for %s (%" PRId64 " bid%s)", a->winner,
                    auction_money(m1, a->high_bid), a->bids, s);
        else
            fprintf(f, "closed without a bid: no winner");
        return;
    }
    es_time_format(when, sizeof when, a->closes_at);
    if (a->bids == 0)
        fprintf(f, "open until %s, no bids, first bid at least %s", when,
                auction_money(m1, a->start_price));
    else
        fprintf(f, "open until %s, highest %s by %s (%" PRId64 " bid%s), next "
                "bid at least %s", when, auction_money(m1, a->high_bid),
                a->leader, a->bids, s,
                auction_money(m2, a->high_bid + a->increment));
}

/*
 * Runs cmd on auction id and prints the outcome: the new version and
 * state, or the refusal, indented (the demo) or not (a single command).
 * Returns the command's code.
 */
static int run(house *h, const char *id, const auction_command *cmd,
               const char *indent)
{
    es_aggregate *agg = NULL;
    char msg[512];
    int64_t version;
    int rc = auction_execute(&version, h->repo, id, cmd, msg, sizeof msg);

    if (rc == ES_EREFUSED) {
        if (*indent)
            printf("%srefused: %s\n", indent, msg);
        else
            fprintf(stderr, "auction: refused: %s\n", msg);
        return rc;
    }
    if (rc != 0) {
        fprintf(stderr, "auction: %s\n", msg);
        return rc;
    }
    if ((rc = load(h, &agg, id, ES_RANGE_TO_VERSION(version))) != 0)
        return rc;
    printf("%s%s v%" PRId64 ": ", indent, id, es_aggregate_version(agg));
    describe(stdout, es_aggregate_state(agg));
    printf("\n");
    es_aggregate_free(agg);
    return 0;
}

/* ---- show ---------------------------------------------------------------- */

static int show(house *h, const char *id, es_range range, const char *bound)
{
    es_aggregate *agg = NULL;
    const auction *a;
    char when[ES_TIME_BUFSZ], m[32];

    if (load(h, &agg, id, range) != 0)
        return 1;
    a = es_aggregate_state(agg);
    if (es_aggregate_version(agg) == 0) {
        es_aggregate_free(agg);
        if (bound == NULL) {
            fprintf(stderr, "auction: no auction %s: it has no events\n", id);
            return 1;
        }
        printf("auction %s %s: no events yet\n", id, bound);
        return 0;
    }
    es_time_format(when, sizeof when, es_aggregate_time_us(agg));
    printf("auction %s%s%s: version %" PRId64 ", last event at %s\n", id,
           bound ? " " : "", bound ? bound : "", es_aggregate_version(agg), when);
    printf("  item          %s\n"
           "  seller        %s\n", a->item, a->seller);
    printf("  start price   %s\n", auction_money(m, a->start_price));
    printf("  increment     %s\n", auction_money(m, a->increment));
    es_time_format(when, sizeof when, a->closes_at);
    printf("  closes at     %s\n", when);
    printf("  bids          %" PRId64 "\n", a->bids);
    if (a->bids)
        printf("  highest bid   %s by %s\n", auction_money(m, a->high_bid),
               a->leader);
    printf("  status        ");
    describe(stdout, a);
    printf("\n");
    es_aggregate_free(agg);
    return 0;
}

/* ---- Single commands ------------------------------------------------------ */

static int parse_time(int64_t *out, const char *what, const char *text)
{
    es_error err;
    if (es_time_parse(out, text, &err) == 0)
        return 0;
    fprintf(stderr, "auction: %s %s: %s\n", what, text, err.text);
    return 2;
}

static int parse_money(int64_t *out, const char *what, const char *text)
{
    if (auction_parse_money(out, text) == 0)
        return 0;
    fprintf(stderr, "auction: %s '%s' is not an amount like 50.00\n", what, text);
    return 2;
}

/* ---- The demo ------------------------------------------------------------- */

/* The demo's day: every command happens at an explicit time on it, so that
 * its log, and "as of 10:00", are the same on every run. */
#define DAY "2026-03-01T"

static int64_t at(const char *hhmm)
{
    char text[32];
    int64_t us = 0;
    es_error err;
    snprintf(text, sizeof text, DAY "%s:00Z", hhmm);
    if (es_time_parse(&us, text, &err) != 0)
        abort(); /* the demo's own times are well formed */
    return us;
}

typedef struct demo_step {
    const char *id;
    auction_command cmd;
    const char *hhmm;   /* cmd.at */
    const char *closes; /* cmd.closes_at (AUCTION_OPEN) */
    int refused;        /* 1: the story expects a refusal */
} demo_step;

/* Runs steps in order; each prints its outcome. The exit status. */
static int demo_steps(house *h, const demo_step *steps, size_t n)
{
    char m[32], when[ES_TIME_BUFSZ];

    for (size_t i = 0; i < n; i++) {
        auction_command cmd = steps[i].cmd;
        const char *hhmm = steps[i].hhmm;
        int rc;

        cmd.at = at(hhmm);
        if (cmd.kind == AUCTION_OPEN)
            cmd.closes_at = at(steps[i].closes);
        switch (cmd.kind) {
        case AUCTION_OPEN:
            es_time_format(when, sizeof when, cmd.closes_at);
            printf("  > %s  %s opens %s: %s, from %s", hhmm, cmd.seller,
                   steps[i].id, cmd.item, auction_money(m, cmd.start_price));
            printf(" by %s, until %s\n", auction_money(m, cmd.increment), when);
            break;
        case AUCTION_BID:
            printf("  > %s  %s bids %s on %s\n", hhmm, cmd.bidder,
                   auction_money(m, cmd.amount), steps[i].id);
            break;
        case AUCTION_CLOSE:
            printf("  > %s  close %s\n", hhmm, steps[i].id);
            break;
        }
        rc = run(h, steps[i].id, &cmd, "      ");
        if (rc != (steps[i].refused ? ES_EREFUSED : 0)) {
            fprintf(stderr, "auction: the demo expected %s\n",
                    steps[i].refused ? "a refusal" : "success");
            return 1;
        }
    }
    return 0;
}

#define OPEN(ID, HHMM, ITEM, SELLER, START, INC, CLOSES) \
    { ID, { .kind = AUCTION_OPEN, .item = ITEM, .seller = SELLER, \
            .start_price = START, .increment = INC }, HHMM, CLOSES, 0 }
#define BID(ID, HHMM, BIDDER, AMOUNT, REFUSED) \
    { ID, { .kind = AUCTION_BID, .bidder = BIDDER, .amount = AMOUNT }, HHMM, NULL, REFUSED }
#define CLOSE(ID, HHMM, REFUSED) \
    { ID, { .kind = AUCTION_CLOSE }, HHMM, NULL, REFUSED }

static int demo(house *h)
{
    const char *prog = h->user_data; /* argv[0], to print runnable lines */
    const char *log_arg = h->log_uri;
    static const demo_step opening[] = {
        OPEN("A", "09:00", "Brass telescope", "Sam", 5000, 500, "11:00"),
        OPEN("B", "09:00", "Oak writing desk", "Ada", 10000, 1000, "11:30"),
        OPEN("C", "09:05", "Signed first edition", "Lin", 2000, 200, "10:30"),
    };
    static const demo_step bidding[] = {
        BID("A", "09:10", "Ada", 5000, 0),
        BID("B", "09:20", "Grace", 10000, 0),
        BID("A", "09:30", "Grace", 5500, 0),
        BID("A", "09:40", "Ada", 5700, 1),  /* beats 55.00 by less than 5.00 */
        BID("A", "09:45", "Sam", 7000, 1),  /* Sam sells A */
        BID("A", "09:50", "Ada", 6000, 0),
        BID("B", "09:55", "Ada", 12000, 1), /* Ada sells B */
        BID("A", "10:15", "Grace", 8000, 0),
        BID("B", "10:20", "Lin", 11000, 0),
        BID("A", "10:40", "Ada", 8500, 0),
    };
    static const demo_step closing[] = {
        CLOSE("C", "10:30", 0),
        BID("A", "11:02", "Grace", 9500, 1), /* after A's closing time */
        CLOSE("A", "11:05", 0),
        CLOSE("B", "11:10", 1), /* B closes at 11:30 */
        CLOSE("B", "11:30", 0),
    };
    es_aggregate *agg = NULL;
    const char *log_opt = " --log ";
    int64_t v;

    if (load(h, &agg, "A", ES_RANGE_ALL) != 0)
        return 1;
    v = es_aggregate_version(agg);
    es_aggregate_free(agg);
    agg = NULL;
    if (v != 0) {
        fprintf(stderr, "auction: %s already has an auction A: the demo needs a "
                "fresh log (remove the file, or pass --log sqlite:OTHER.db)\n",
                es_log_uri(h->log));
        return 1;
    }

    printf("esfold auction demo, log %s\n\n"
           "Each auction is a stream of events. Every command below carries the\n"
           "time it happens on " DAY "..Z (the auctioneer's clock), and its\n"
           "event is stamped with that time, so the story is the same on every\n"
           "run and \"as of 10:00\" means what the room saw at 10:00.\n\n",
           es_log_uri(h->log));

    printf("== 1. Three auctions open ==\n");
    if (demo_steps(h, opening, sizeof opening / sizeof *opening))
        return 1;

    printf("\n== 2. Bids: the first at least the start price, each later one\n"
           "   beating the highest by the increment; a seller cannot bid ==\n");
    if (demo_steps(h, bidding, sizeof bidding / sizeof *bidding))
        return 1;
    printf("  Nothing was written for the refused bids: a refused command appends\n"
           "  no event.\n");

    printf("\n== 3. Closing: bidding ends at the closing time; the auction is\n"
           "   closed at or after it, and the highest bidder wins ==\n");
    if (demo_steps(h, closing, sizeof closing / sizeof *closing))
        return 1;

    printf("\n== 4. Who led auction A at 10:00? ==\n"
           "  Loading as of 10:00 folds A's events up to the first one later "
           "than 10:00:\n");
    if (load(h, &agg, "A", ES_RANGE_AS_OF(at("10:00"))) != 0)
        return 1;
    printf("    A as of 10:00 (version %" PRId64 "): ", es_aggregate_version(agg));
    describe(stdout, es_aggregate_state(agg));
    printf("\n");
    es_aggregate_free(agg);

    printf("\n== 5. The same from the command line ==\n"
           "  This program is also the operations tool of its own log:\n"
           "    %s%s%s history auction A --as-of " DAY "10:00:00Z\n"
           "    %s%s%s show A --as-of " DAY "10:00:00Z\n"
           "    %s%s%s show A\n"
           "    %s%s%s verify\n",
           prog, log_opt, log_arg ? log_arg : "", prog, log_opt,
           log_arg ? log_arg : "", prog, log_opt, log_arg ? log_arg : "", prog,
           log_opt, log_arg ? log_arg : "");
    if (strstr(es_log_uri(h->log), ":memory:"))
        printf("  (not on this log: a sqlite::memory: log lives only as long as "
               "the process that made it)\n");
    return 0;
}

/* ---- The command table ------------------------------------------------------ */

enum { OPT_AT };
static const es_app_option at_opts[] = {
    { "at", "TIME", "when the command happens (ISO 8601; default: now)" },
    { NULL, NULL, NULL }
};

/* The command of call, at --at (now by default); 0 or the exit status. */
static int command_at(auction_command *cmd, const es_app_call *call,
                      auction_command_kind kind)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->kind = kind;
    cmd->at = es_time_now_us();
    return call->values[OPT_AT] ? parse_time(&cmd->at, "--at", call->values[OPT_AT])
                                : 0;
}

static int open_run(const es_app_call *call)
{
    auction_command cmd;
    int rc;
    if ((rc = command_at(&cmd, call, AUCTION_OPEN)) != 0)
        return rc;
    cmd.item = call->argv[1];
    cmd.seller = call->argv[2];
    if ((rc = parse_money(&cmd.start_price, "START", call->argv[3])) ||
        (rc = parse_money(&cmd.increment, "INCREMENT", call->argv[4])) ||
        (rc = parse_time(&cmd.closes_at, "CLOSES_AT", call->argv[5])))
        return rc;
    return run(call, call->argv[0], &cmd, "") ? 1 : 0;
}

static int bid_run(const es_app_call *call)
{
    auction_command cmd;
    int rc;
    if ((rc = command_at(&cmd, call, AUCTION_BID)) != 0)
        return rc;
    cmd.bidder = call->argv[1];
    if ((rc = parse_money(&cmd.amount, "AMOUNT", call->argv[2])) != 0)
        return rc;
    return run(call, call->argv[0], &cmd, "") ? 1 : 0;
}

static int close_run(const es_app_call *call)
{
    auction_command cmd;
    int rc;
    if ((rc = command_at(&cmd, call, AUCTION_CLOSE)) != 0)
        return rc;
    return run(call, call->argv[0], &cmd, "") ? 1 : 0;
}

enum { SHOW_AS_OF, SHOW_TO_VERSION };
static const es_app_option show_opts[] = {
    { "as-of", "TIME", "the auction as of an ISO 8601 time" },
    { "to-version", "N", "the auction after version N" },
    { NULL, NULL, NULL }
};

static int show_run(const es_app_call *call)
{
    const char *as_of = call->values[SHOW_AS_OF], *to = call->values[SHOW_TO_VERSION];
    es_range range = ES_RANGE_ALL;
    char bound[64] = "";

    if (as_of && to) {
        fprintf(stderr, "auction show: give --as-of or --to-version, not both\n");
        return 2;
    }
    if (as_of) {
        if (parse_time(&range.time_us, "--as-of", as_of) != 0)
            return 2;
        range.kind = ES_RANGE_TIME;
        snprintf(bound, sizeof bound, "as of %s", as_of);
    } else if (to) {
        char *end;
        long long n = strtoll(to, &end, 10);
        if (*to == '\0' || *end != '\0' || n < 0) {
            fprintf(stderr, "auction: --to-version %s: not a version number\n", to);
            return 2;
        }
        range = ES_RANGE_TO_VERSION((int64_t)n);
        snprintf(bound, sizeof bound, "up to version %lld", n);
    }
    return show(call, call->argv[0], range, bound[0] ? bound : NULL);
}

static int demo_run(const es_app_call *call)
{
    return demo(call) ? 1 : 0;
}

/* TIME is ISO 8601, like 2026-03-01T10:00:00Z; amounts are like 50.00. */
static const es_app_command auction_commands[] = {
    { "demo", "", "run the scripted demo (needs a fresh log)", NULL, NULL,
      0, 0, 0, demo_run },
    { "open", "ID ITEM SELLER START INCREMENT CLOSES_AT [--at TIME]",
      "open auction ID for bids until CLOSES_AT (amounts like 50.00)", NULL,
      at_opts, 6, 6, 0, open_run },
    { "bid", "ID BIDDER AMOUNT [--at TIME]",
      "bid AMOUNT: at least START, then the highest bid + INCREMENT", NULL,
      at_opts, 3, 3, 0, bid_run },
    { "close", "ID [--at TIME]",
      "close at or after CLOSES_AT: the highest bidder wins", NULL, at_opts,
      1, 1, 0, close_run },
    { "show", "ID [--as-of TIME | --to-version N]",
      "the auction now, as of a time, or after version N", NULL, show_opts,
      1, 1, ES_APP_READ_ONLY, show_run },
    { NULL, NULL, NULL, NULL, NULL, 0, 0, 0, NULL }
};

int main(int argc, char **argv)
{
    es_app app = ES_APP_INIT;
    app.name = "auction";
    app.types = auction_types;
    app.commands = auction_commands;
    app.user_data = argc > 0 ? argv[0] : "auction";
    return es_cli_main(argc, argv, &app);
}

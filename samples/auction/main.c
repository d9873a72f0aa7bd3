/*
 * samples/auction/main.c - the `auction` program: a scripted demo of the
 * auction aggregate, single commands on auctions, and, for every other
 * command, the esfold operations commands (history, verify, snapshot, ...)
 * with the auction type compiled in: the program is its own operations
 * tool.
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
#include <unistd.h>

#include "auction.h"

static const es_aggregate_type *const auction_types[] = { &auction_type, NULL };

static void usage(FILE *f)
{
    fprintf(f,
        "usage: auction [--log URI] COMMAND [ARGS]\n"
        "\n"
        "Auction commands (TIME is ISO 8601, like 2026-03-01T10:00:00Z; --at\n"
        "is when the command happens, now by default):\n"
        "  demo                              run the scripted demo (needs a fresh log)\n"
        "  open ID ITEM SELLER START INCREMENT CLOSES_AT [--at TIME]\n"
        "                                    open auction ID for bids until CLOSES_AT;\n"
        "                                    amounts like 50.00\n"
        "  bid ID BIDDER AMOUNT [--at TIME]  bid AMOUNT: at least START, then the\n"
        "                                    highest bid + INCREMENT\n"
        "  close ID [--at TIME]              close at or after CLOSES_AT: the\n"
        "                                    highest bidder wins\n"
        "  show ID [--as-of TIME | --to-version N]\n"
        "                                    the auction now, as of a time, or after\n"
        "                                    version N\n"
        "\n"
        "Every other command is an esfold operations command, run with the\n"
        "auction type compiled in, e.g.:\n"
        "  history auction ID [--as-of TIME] every event and the state after it\n"
        "  verify                            check the log\n"
        "\n"
        "The log is --log URI, else $ESFOLD_LOG, else " ES_LOG_DEFAULT_URI ".\n");
}

/* ---- The log and the repository ------------------------------------------ */

typedef struct house {
    es_log *log;
    es_repo *repo;
} house;

static int house_open(house *h, const char *uri)
{
    int rc;
    memset(h, 0, sizeof *h);
    if ((rc = es_log_open(&h->log, uri)) != 0) {
        fprintf(stderr, "auction: cannot open the log: %s\n",
                h->log ? es_errmsg(h->log) : es_strerror(rc));
        es_log_close(h->log);
        h->log = NULL;
        return rc;
    }
    if ((rc = es_repo_new(&h->repo, h->log, NULL)) != 0) {
        fprintf(stderr, "auction: %s\n", es_strerror(rc));
        es_log_close(h->log);
        h->log = NULL;
    }
    return rc;
}

static void house_close(house *h)
{
    es_repo_free(h->repo);
    es_log_close(h->log);
}

/*
 * Reading commands must not create a log where an operator mistyped a
 * path: 1 when uri is not a sqlite: file, or the file exists.
 */
static int log_exists(const char *uri)
{
    const char *env = getenv("ESFOLD_LOG");
    char path[4096];
    size_t len;

    if (uri == NULL)
        uri = env && *env ? env : ES_LOG_DEFAULT_URI;
    if (strncmp(uri, "sqlite:", 7) != 0 || strncmp(uri, "sqlite::memory:", 15) == 0)
        return 1;
    len = strcspn(uri + 7, "?");
    if (len >= sizeof path)
        return 1; /* let es_log_open say what is wrong */
    memcpy(path, uri + 7, len);
    path[len] = '\0';
    if (access(path, F_OK) == 0)
        return 1;
    fprintf(stderr, "auction: there is no log at %s (no file %s)\n", uri, path);
    return 0;
}

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

/* Parses `show ID [--as-of TIME | --to-version N]`; the exit status. */
static int show_main(house *h, int argc, char **argv)
{
    es_range range = ES_RANGE_ALL;
    char bound[64] = "";
    es_error err;

    if (argc == 2) {
        /* just the id */
    } else if (argc == 4 && strcmp(argv[2], "--as-of") == 0) {
        if (es_time_parse(&range.time_us, argv[3], &err) != 0) {
            fprintf(stderr, "auction: --as-of %s: %s\n", argv[3], err.text);
            return 2;
        }
        range.kind = ES_RANGE_TIME;
        snprintf(bound, sizeof bound, "as of %s", argv[3]);
    } else if (argc == 4 && strcmp(argv[2], "--to-version") == 0) {
        char *end;
        long long n = strtoll(argv[3], &end, 10);
        if (*argv[3] == '\0' || *end != '\0' || n < 0) {
            fprintf(stderr, "auction: --to-version %s: not a version number\n",
                    argv[3]);
            return 2;
        }
        range = ES_RANGE_TO_VERSION((int64_t)n);
        snprintf(bound, sizeof bound, "up to version %lld", n);
    } else {
        fprintf(stderr, "usage: auction show ID [--as-of TIME | --to-version N]\n");
        return 2;
    }
    return show(h, argv[1], range, bound[0] ? bound : NULL);
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

/*
 * argv starts at the command: {"bid", "A", "Ada", "60.00", "--at", T}.
 * Returns the exit status.
 */
static int auction_main(house *h, int argc, char **argv)
{
    auction_command cmd;
    const char *name = argv[0];
    int rc = 0;

    if (strcmp(name, "show") == 0)
        return show_main(h, argc, argv);
    memset(&cmd, 0, sizeof cmd);
    cmd.at = es_time_now_us();
    if (argc >= 4 && strcmp(argv[argc - 2], "--at") == 0) {
        if ((rc = parse_time(&cmd.at, "--at", argv[argc - 1])) != 0)
            return rc;
        argc -= 2;
    }
    if (strcmp(name, "open") == 0 && argc == 7) {
        cmd.kind = AUCTION_OPEN;
        cmd.item = argv[2];
        cmd.seller = argv[3];
        if ((rc = parse_money(&cmd.start_price, "START", argv[4])) ||
            (rc = parse_money(&cmd.increment, "INCREMENT", argv[5])) ||
            (rc = parse_time(&cmd.closes_at, "CLOSES_AT", argv[6])))
            return rc;
    } else if (strcmp(name, "bid") == 0 && argc == 4) {
        cmd.kind = AUCTION_BID;
        cmd.bidder = argv[2];
        if ((rc = parse_money(&cmd.amount, "AMOUNT", argv[3])) != 0)
            return rc;
    } else if (strcmp(name, "close") == 0 && argc == 2) {
        cmd.kind = AUCTION_CLOSE;
    } else {
        usage(stderr);
        return 2;
    }
    return run(h, argv[1], &cmd, "") ? 1 : 0;
}

static int is_auction_command(const char *name)
{
    static const char *const names[] = { "open", "bid", "close", "show", NULL };
    for (const char *const *n = names; *n; n++)
        if (strcmp(*n, name) == 0)
            return 1;
    return 0;
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

static int demo(house *h, const char *prog, const char *log_arg)
{
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
    const char *log_opt = log_arg ? " --log " : "";
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

/* ---- main ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    const char *uri = NULL;
    es_app app = ES_APP_INIT;
    house h;
    int i = 1, status;

    app.name = "auction";
    app.types = auction_types;

    if (i < argc && strcmp(argv[i], "--log") == 0) {
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        uri = argv[i + 1];
        i += 2;
    } else if (i < argc && strncmp(argv[i], "--log=", 6) == 0) {
        uri = argv[i++] + 6;
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    if ((strcmp(argv[i], "help") == 0 || strcmp(argv[i], "--help") == 0 ||
         strcmp(argv[i], "-h") == 0) && i + 1 == argc) {
        char *help_argv[] = { argv[0], "--help", NULL };
        usage(stdout);
        printf("\n---- the operations commands (es_cli_main) ----\n\n");
        return es_cli_main(2, help_argv, &app);
    }

    if (strcmp(argv[i], "demo") == 0 || is_auction_command(argv[i])) {
        if (strcmp(argv[i], "demo") == 0 && argc - i != 1) {
            usage(stderr);
            return 2;
        }
        if (strcmp(argv[i], "show") == 0 && !log_exists(uri))
            return 1;
        if (house_open(&h, uri) != 0)
            return 1;
        if (strcmp(argv[i], "demo") == 0)
            status = demo(&h, argv[0], uri) ? 1 : 0;
        else
            status = auction_main(&h, argc - i, argv + i);
        house_close(&h);
        return status;
    }

    /* Everything else is an esfold operations command, in the form
     * es_cli_main documents: PROG [--log URI] COMMAND ... */
    {
        char **args = calloc((size_t)argc + 2, sizeof *args);
        int n = 0;
        if (args == NULL) {
            fprintf(stderr, "auction: out of memory\n");
            return 1;
        }
        args[n++] = argv[0];
        if (uri) {
            args[n++] = "--log";
            args[n++] = (char *)uri;
        }
        for (; i < argc; i++)
            args[n++] = argv[i];
        args[n] = NULL;
        status = es_cli_main(n, args, &app);
        free(args);
        return status;
    }
}

/*
 * samples/auction/auction.h - an auction aggregate: items open for bids
 * until a closing time.
 *
 * Events (aggregate type "auction", payload schema 1; amounts in cents):
 *   AuctionOpened {"item": "Brass telescope", "seller": "Sam",
 *                  "start_price": 5000, "increment": 500,
 *                  "closes_at": "2026-03-01T11:00:00Z"}
 *   BidPlaced     {"bidder": "Ada", "amount": 6000, "outbid": "Grace"}
 *                 (outbid: the leader before this bid, null for the first)
 *   AuctionClosed {"winner": "Ada", "amount": 8500}
 *                 (winner and amount null: closed without a bid)
 * Each event's occurred-at is the time of the command that made it (the
 * `at` of auction_command), so that "as of 10:00" means what the auction
 * room saw at 10:00.
 *
 * Invariants checked by auction_decide: an auction opens once, with a
 * seller, a positive start price and increment, and a closing time after
 * its opening; a bid needs an open auction before its closing time; the
 * first bid is at least the start price and every later one beats the
 * highest by at least the increment; the seller cannot bid and the leader
 * cannot outbid themselves; closing happens at or after the closing time,
 * once, and picks the highest bidder (or no winner); no command is dated
 * before the auction's last event.
 */
#ifndef ESFOLD_SAMPLES_AUCTION_AUCTION_H
#define ESFOLD_SAMPLES_AUCTION_AUCTION_H

#include <stddef.h>
#include <stdint.h>

#include "esfold/esfold.h"

#define AUCTION_NAME_MAX 64  /* bytes in a seller or bidder name, with NUL */
#define AUCTION_ITEM_MAX 128 /* bytes in an item description, with NUL */

typedef struct auction {
    int opened;
    int closed;
    char item[AUCTION_ITEM_MAX];
    char seller[AUCTION_NAME_MAX];
    int64_t start_price;          /* cents: the lowest first bid */
    int64_t increment;            /* cents: how much a bid beats the highest by */
    int64_t opened_at;            /* UTC microseconds */
    int64_t closes_at;            /* UTC microseconds */
    int64_t bids;                 /* accepted bids */
    int64_t high_bid;             /* cents; 0: no bid yet */
    char leader[AUCTION_NAME_MAX]; /* who placed high_bid; "" none */
    char winner[AUCTION_NAME_MAX]; /* once closed; "" no winner */
    int64_t last_event_at;        /* occurred-at of the last event folded */
} auction;

extern const es_aggregate_type auction_type;

typedef enum auction_command_kind {
    AUCTION_OPEN, AUCTION_BID, AUCTION_CLOSE
} auction_command_kind;

/* A command for auction_decide. */
typedef struct auction_command {
    auction_command_kind kind;
    int64_t at;              /* when it happens (UTC us): the event's time */
    const char *item;        /* AUCTION_OPEN */
    const char *seller;      /* AUCTION_OPEN */
    int64_t start_price;     /* AUCTION_OPEN: cents, > 0 */
    int64_t increment;       /* AUCTION_OPEN: cents, > 0 */
    int64_t closes_at;       /* AUCTION_OPEN: UTC us, after `at` */
    const char *bidder;      /* AUCTION_BID */
    int64_t amount;          /* AUCTION_BID: cents */
} auction_command;

/* What a command decides: one event, or a refusal. */
typedef struct auction_decision {
    const char *type;   /* the event type (static); NULL when refused */
    json_t *payload;    /* the event's payload (owned: json_decref) */
    char reason[256];   /* why the command was refused */
} auction_decision;

/*
 * Decides what cmd does to auction `a` (zero-filled: not opened yet).
 * Returns 0 with out->type and out->payload set, ES_EREFUSED with
 * out->reason set, or ES_EINVAL / ES_ENOMEM. Has no side effects.
 */
int auction_decide(auction_decision *out, const auction *a,
                   const auction_command *cmd);

/*
 * Runs cmd on auction `id`: loads it through repo, decides, and appends the
 * event with cmd->at as its occurred-at time and the loaded version as the
 * expected version; on ES_ECONFLICT loads and decides again (5 attempts).
 * *version_out (may be NULL) is the auction's version after the command.
 * Returns 0, ES_EREFUSED, ES_ECONFLICT, or a load or append error; the
 * message ("auction/A: command refused: ...") is written to msg.
 */
int auction_execute(int64_t *version_out, es_repo *repo, const char *id,
                    const auction_command *cmd, char *msg, size_t msg_size);

/* "12.50" for 1250 cents into buf; returns buf. */
const char *auction_money(char buf[32], int64_t cents);

/* Parses "12", "12.5" or "12.50" into cents; 0 or ES_EINVAL. */
int auction_parse_money(int64_t *out, const char *text);

#endif

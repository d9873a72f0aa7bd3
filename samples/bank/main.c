/*
 * samples/bank/main.c - the `bank` program: a scripted demo of the account
 * aggregate and single commands on accounts, in the command table of
 * es_cli_main (esfold/cli.h), which also gives it every esfold operations
 * command (history, verify, snapshot, ...) with the account type compiled
 * in: the program is its own operations tool.
 *
 *   bank [--log URI] [--snapshots URI] demo
 *   bank ... open ID OWNER [CURRENCY] | deposit ID AMOUNT | withdraw ID AMOUNT
 *   bank ... close ID | show ID [--as-of TIME | --to-version N]
 *   bank ... history account ID     (and every other esfold command)
 *   bank ... project run accounts   (the read model account_summary)
 *   bank --help
 *
 * es_cli_main parses the options, opens the log and the repository, and
 * attaches the snapshot store (--snapshots URI, else $ESFOLD_SNAPSHOTS,
 * else the log's own file or cluster) with the policy of bank_policy.
 *
 * Exit status: 0 success, 1 the command failed or was refused, 2 usage.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"

static const es_aggregate_type *const bank_types[] = { &bank_account_type, NULL };

/* ---- Money: cents in, "25.00" out --------------------------------------- */

static const char *money(char buf[32], int64_t cents)
{
    uint64_t abs = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    snprintf(buf, 32, "%s%" PRIu64 ".%02u", cents < 0 ? "-" : "", abs / 100,
             (unsigned)(abs % 100));
    return buf;
}

/* Parses "25", "25.5" or "25.00" into cents; 0 or -1. */
static int parse_amount(int64_t *out, const char *s)
{
    int64_t units = 0, cents = 0;
    int digits = 0;
    const char *p = s;

    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        if (units > (INT64_MAX / 100 - 99) / 10)
            return -1;
        units = units * 10 + (*p - '0');
    }
    if (digits == 0)
        return -1;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return -1;
        cents = (*p++ - '0') * 10;
        if (*p >= '0' && *p <= '9')
            cents += *p++ - '0';
    }
    if (*p != '\0')
        return -1;
    *out = units * 100 + cents;
    return 0;
}

/*
 * The repository snapshots an account every 100 events: a load then folds
 * at most about 100 events after the newest snapshot, instead of the whole
 * history. Small, so that the demo shows it; a real bank would choose a
 * larger number (docs/snapshots.md has the figures).
 */
#define BANK_SNAPSHOT_EVERY 100

static const es_snapshot_policy bank_policy = {
    ES_SNAPSHOT_POLICY_VERSION, BANK_SNAPSHOT_EVERY, 0
};

/* What every command gets from es_cli_main: the log, the repository, the
 * snapshot store (NULL: none, loads fold from origin). */
typedef const es_app_call bank;

/* "open, owner Ada, balance 25.00 EUR, 1 transaction" */
static void describe(FILE *f, const bank_account *a)
{
    char m[32];
    if (!a->opened) {
        fprintf(f, "not opened");
        return;
    }
    fprintf(f, "%s, owner %s, balance %s %s, %" PRId64 " transaction%s",
            a->closed ? "closed" : "open", a->owner, money(m, a->balance),
            a->currency, a->transactions, a->transactions == 1 ? "" : "s");
}

/* Loads account id within range; prints the error and returns non-zero
 * when that fails. */
static int load(bank *b, es_aggregate **out, const char *id, es_range range)
{
    int rc = es_repo_load(b->repo, out, &bank_account_type, id, range);
    if (rc != 0)
        fprintf(stderr, "bank: %s\n", es_errmsg(b->repo));
    return rc;
}

/* ---- The demo ------------------------------------------------------------ */

/*
 * Runs one command in the demo and prints what happened: the new version
 * and state, or the refusal. Returns the command's code.
 */
static int step(bank *b, const char *id, const bank_command *cmd,
                const char *what)
{
    es_aggregate *agg = NULL;
    int rc;

    printf("  > %s\n", what);
    rc = bank_execute(b->repo, id, cmd);
    if (rc == ES_EREFUSED) {
        printf("    refused: %s\n", es_errmsg(b->repo));
        return rc;
    }
    if (rc != 0) {
        printf("    failed\n");
        fprintf(stderr, "bank: %s\n", es_errmsg(b->repo));
        return rc;
    }
    if ((rc = load(b, &agg, id, ES_RANGE_ALL)) != 0)
        return rc;
    printf("    %s is at version %" PRId64 ": ", id, es_aggregate_version(agg));
    describe(stdout, es_aggregate_state(agg));
    printf("\n");
    es_aggregate_free(agg);
    return 0;
}

static int deposit(bank *b, const char *id, int64_t cents)
{
    char what[80], m[32];
    bank_command cmd = { .kind = BANK_DEPOSIT, .amount = cents };
    snprintf(what, sizeof what, "deposit %s EUR into %s", money(m, cents), id);
    return step(b, id, &cmd, what);
}

static int withdraw(bank *b, const char *id, int64_t cents)
{
    char what[80], m[32];
    bank_command cmd = { .kind = BANK_WITHDRAW, .amount = cents };
    snprintf(what, sizeof what, "withdraw %s EUR from %s", money(m, cents), id);
    return step(b, id, &cmd, what);
}

/*
 * A transfer is two commands on two streams. Each append is atomic; the
 * pair is not. When the deposit fails after the withdrawal succeeded, a
 * compensating deposit gives the money back.
 */
static int transfer(bank *b, const char *from, const char *to, int64_t cents)
{
    int rc;
    if ((rc = withdraw(b, from, cents)) != 0)
        return rc; /* nothing moved */
    if ((rc = deposit(b, to, cents)) != 0) {
        printf("  the deposit failed: compensating\n");
        deposit(b, from, cents);
    }
    return rc;
}

typedef struct history_ctx {
    int events;
} history_ctx;

/* es_replay_cb: one event and the state after it. */
static int print_event(const es_event *ev, const void *state, void *user_data)
{
    history_ctx *h = user_data;
    char when[ES_TIME_BUFSZ];

    es_time_format(when, sizeof when, ev->occurred_us);
    printf("  v%-2" PRId64 " %s  %-14s ", ev->version, when, ev->type);
    json_dumpf(ev->payload, stdout, JSON_COMPACT);
    printf("\n        state after it: ");
    describe(stdout, state);
    printf("\n");
    h->events++;
    return 0;
}

/* Prints the state of account id within range, for the demo. */
static int demo_show(bank *b, const char *id, es_range range, const char *verb)
{
    es_aggregate *agg = NULL;
    int rc;
    if ((rc = load(b, &agg, id, range)) != 0)
        return rc;
    printf("  %s %s version %" PRId64 ": ", id, verb, es_aggregate_version(agg));
    describe(stdout, es_aggregate_state(agg));
    printf("\n");
    es_aggregate_free(agg);
    return 0;
}

typedef struct snap_list_ctx {
    char text[256];
    int count;
} snap_list_ctx;

/* es_snapshot_cb: "version 200 (checksum ok), version 100 (...)". */
static int list_snapshot(const es_snapshot *snap, void *user_data)
{
    snap_list_ctx *c = user_data;
    size_t used = strlen(c->text);
    es_error err;

    snprintf(c->text + used, sizeof c->text - used, "%sversion %" PRId64 " (%s)",
             c->count ? ", " : "", snap->version,
             es_snapshot_verify(snap, &err) == 0 ? "checksum ok" : "damaged");
    c->count++;
    return 0;
}

/* The encoded state of agg: compact JSON with sorted keys (free it). */
static char *encoded_state(const es_aggregate *agg)
{
    json_t *j = bank_account_type.encode(es_aggregate_state(agg));
    char *text = j ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    json_decref(j);
    return text;
}

/*
 * The demo's section on snapshots: enough deposits into acct-3 for the
 * policy to take snapshots, the snapshots in the store, a load that starts
 * from the newest one, and the proof that it gives the full replay's state.
 */
static int demo_snapshots(bank *b)
{
    const bank_command open3 = { .kind = BANK_OPEN, .owner = "Lin" };
    const bank_command dep = { .kind = BANK_DEPOSIT, .amount = 100 };
    es_aggregate *agg = NULL, *full = NULL;
    snap_list_ctx snaps = { "", 0 };
    char *loaded_text = NULL, *full_text = NULL;
    int64_t version, folded;
    int i, rc, status = 1;

    printf("  The repository snapshots an account every %d events (in %s),\n"
           "  so that a load folds only the events after the newest snapshot.\n",
           BANK_SNAPSHOT_EVERY,
           b->snapshots ? es_snapshot_store_uri(b->snapshots) : "no store");
    if (b->snapshots == NULL) {
        printf("  No snapshot store is attached on this log: skipped.\n");
        return 0;
    }
    if (step(b, "acct-3", &open3, "open acct-3 for Lin (EUR)"))
        return 1;
    printf("  > 250 deposits of 1.00 EUR into acct-3\n");
    for (i = 0; i < 250; i++)
        if ((rc = bank_execute(b->repo, "acct-3", &dep)) != 0) {
            fprintf(stderr, "bank: %s\n", es_errmsg(b->repo));
            return 1;
        }
    if (load(b, &agg, "acct-3", ES_RANGE_ALL) != 0)
        return 1;
    printf("    acct-3 is at version %" PRId64 ": ", es_aggregate_version(agg));
    describe(stdout, es_aggregate_state(agg));
    printf("\n");
    es_aggregate_free(agg);
    agg = NULL;

    if (es_snapshot_list(b->snapshots, bank_account_type.name, "acct-3",
                         ES_RANGE_ALL, list_snapshot, &snaps) != 0) {
        fprintf(stderr, "bank: %s\n", es_errmsg(b->snapshots));
        return 1;
    }
    printf("  Snapshots of acct-3 in the store, newest first: %s\n",
           snaps.count ? snaps.text : "none");

    /* A process that starts now (a restart, a new instance) loads acct-3
     * like this: from the newest usable snapshot, then the tail. */
    if (load(b, &agg, "acct-3", ES_RANGE_ALL) != 0)
        goto out;
    version = es_aggregate_version(agg);
    folded = es_aggregate_folded(agg);
    if (folded < version)
        printf("  Loading acct-3: version %" PRId64 ", folded %" PRId64
               " events from the snapshot at version %" PRId64 "\n",
               version, folded, version - folded);
    else
        printf("  Loading acct-3: version %" PRId64 ", folded all %" PRId64
               " events: no snapshot served\n", version, folded);

    /* The audit trail always folds from origin: the reference. */
    if (es_repo_replay(b->repo, &full, &bank_account_type, "acct-3",
                       ES_RANGE_ALL, NULL, NULL) != 0) {
        fprintf(stderr, "bank: %s\n", es_errmsg(b->repo));
        goto out;
    }
    loaded_text = encoded_state(agg);
    full_text = encoded_state(full);
    if (loaded_text == NULL || full_text == NULL) {
        fprintf(stderr, "bank: cannot encode the state of acct-3\n");
        goto out;
    }
    if (es_aggregate_version(full) != version ||
        strcmp(loaded_text, full_text) != 0) {
        printf("  NOT the state of a full replay (%" PRId64 " events): %s\n",
               es_aggregate_version(full), full_text);
        goto out;
    }
    printf("  A full replay folds all %" PRId64 " events; same state as a full "
           "replay:\n    %s\n", es_aggregate_folded(full), loaded_text);
    status = 0;
out:
    free(loaded_text);
    free(full_text);
    es_aggregate_free(agg);
    es_aggregate_free(full);
    return status;
}

static int demo(bank *b)
{
    const char *prog = b->user_data; /* argv[0], to print runnable lines */
    const bank_command open1 = { .kind = BANK_OPEN, .owner = "Ada" };
    const bank_command open2 = { .kind = BANK_OPEN, .owner = "Grace" };
    const bank_command close1 = { .kind = BANK_CLOSE };
    es_aggregate *agg = NULL;
    history_ctx hist = { 0 };
    char t_text[ES_TIME_BUFSZ], cmdline[8192];
    int64_t t, v_before;
    int rc;

    /* The demo's story needs fresh accounts. */
    if ((rc = load(b, &agg, "acct-1", ES_RANGE_ALL)) != 0)
        return 1;
    v_before = es_aggregate_version(agg);
    es_aggregate_free(agg);
    agg = NULL;
    if (v_before != 0) {
        fprintf(stderr, "bank: %s already has an account acct-1: the demo needs a "
                "fresh log (remove the file, or pass --log sqlite:OTHER.db)\n",
                es_log_uri(b->log));
        return 1;
    }

    printf("esfold bank demo, log %s\n\n"
           "Each change to an account is an event appended to the log. The\n"
           "account's state is never stored: it is folded from its events.\n\n",
           es_log_uri(b->log));

    printf("== 1. Two accounts are opened ==\n");
    if (step(b, "acct-1", &open1, "open acct-1 for Ada (EUR)") ||
        step(b, "acct-2", &open2, "open acct-2 for Grace (EUR)"))
        return 1;

    printf("\n== 2. Money is deposited ==\n");
    if (deposit(b, "acct-1", 10000) || deposit(b, "acct-2", 2000) ||
        deposit(b, "acct-1", 5000))
        return 1;
    /* T is the time of acct-1's last event; the clock is then made to pass
     * it (a microsecond at most), so every later event is later than T. */
    if ((rc = load(b, &agg, "acct-1", ES_RANGE_ALL)) != 0)
        return 1;
    t = es_aggregate_time_us(agg);
    es_aggregate_free(agg);
    agg = NULL;
    while (es_time_now_us() <= t)
        ;
    es_time_format(t_text, sizeof t_text, t);
    printf("  Remember this moment: T = %s, the time of acct-1's last event.\n",
           t_text);

    printf("\n== 3. 30.00 EUR move from acct-1 to acct-2 ==\n"
           "  A transfer is two commands on two accounts: a withdrawal, then a\n"
           "  deposit. Each is atomic on its own; the pair is not. Were the deposit\n"
           "  refused, this program would give the money back with a compensating\n"
           "  deposit into acct-1.\n");
    if (transfer(b, "acct-1", "acct-2", 3000))
        return 1;

    printf("\n== 4. A withdrawal that would overdraw is refused ==\n");
    if (withdraw(b, "acct-2", 8000) != ES_EREFUSED)
        return 1;
    printf("  Nothing was written: a refused command appends no event.\n");
    if (demo_show(b, "acct-2", ES_RANGE_ALL, "is still at"))
        return 1;
    printf("  Closing an account that still holds money is refused too:\n");
    if (step(b, "acct-1", &close1, "close acct-1") != ES_EREFUSED)
        return 1;

    printf("\n== 5. The history of acct-1: each event and the state after it ==\n");
    if (es_repo_replay(b->repo, NULL, &bank_account_type, "acct-1", ES_RANGE_ALL,
                       print_event, &hist) != 0) {
        fprintf(stderr, "bank: %s\n", es_errmsg(b->repo));
        return 1;
    }

    printf("\n== 6. acct-1 as it was at T, before the transfer ==\n"
           "  Loading as of T folds the events up to the first one later than T.\n");
    if (demo_show(b, "acct-1", ES_RANGE_AS_OF(t), "was at"))
        return 1;

    printf("\n== 7. acct-1 after its first two events (version 2) ==\n");
    if (demo_show(b, "acct-1", ES_RANGE_TO_VERSION(2), "was at"))
        return 1;

    printf("\n== 8. Recovery from a snapshot ==\n");
    if (demo_snapshots(b))
        return 1;

    snprintf(cmdline, sizeof cmdline, "%s --log %s%s%s", prog, b->log_uri,
             b->snapshots_uri ? " --snapshots " : "",
             b->snapshots_uri ? b->snapshots_uri : "");
    printf("\n== 9. The same from the command line ==\n"
           "  This program is also the operations tool of its own log:\n"
           "    %s show acct-1 --as-of %s\n"
           "    %s show acct-1 --to-version 2\n"
           "    %s history account acct-1\n"
           "    %s snapshot list account acct-3\n"
           "    %s verify\n",
           cmdline, t_text, cmdline, cmdline, cmdline, cmdline);
    if (strstr(es_log_uri(b->log), ":memory:"))
        printf("  (not on this log: a sqlite::memory: log lives only as long as "
               "the process that made it)\n");
    return 0;
}

/* ---- Single commands ---------------------------------------------------- */

/* Runs cmd on id and prints the outcome; the exit status. */
static int command(bank *b, const char *id, const bank_command *cmd)
{
    es_aggregate *agg = NULL;
    int rc = bank_execute(b->repo, id, cmd);
    if (rc == ES_EREFUSED) {
        fprintf(stderr, "bank: refused: %s\n", es_errmsg(b->repo));
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "bank: %s\n", es_errmsg(b->repo));
        return 1;
    }
    if (load(b, &agg, id, ES_RANGE_ALL) != 0)
        return 1;
    printf("%s v%" PRId64 ": ", id, es_aggregate_version(agg));
    describe(stdout, es_aggregate_state(agg));
    printf("\n");
    es_aggregate_free(agg);
    return 0;
}

static int show(bank *b, const char *id, es_range range, const char *bound)
{
    es_aggregate *agg = NULL;
    const bank_account *a;
    char when[ES_TIME_BUFSZ], m[32];

    if (load(b, &agg, id, range) != 0)
        return 1;
    a = es_aggregate_state(agg);
    if (es_aggregate_version(agg) == 0) {
        es_aggregate_free(agg);
        if (bound == NULL) {
            fprintf(stderr, "bank: no account %s: it has no events\n", id);
            return 1;
        }
        printf("account %s %s: no events yet\n", id, bound);
        return 0;
    }
    es_time_format(when, sizeof when, es_aggregate_time_us(agg));
    printf("account %s%s%s: version %" PRId64 ", last event at %s\n", id,
           bound ? " " : "", bound ? bound : "", es_aggregate_version(agg), when);
    printf("  owner         %s\n"
           "  currency      %s\n"
           "  balance       %s %s\n"
           "  status        %s\n"
           "  transactions  %" PRId64 "\n",
           a->owner, a->currency, money(m, a->balance), a->currency,
           a->closed ? "closed" : "open", a->transactions);
    es_aggregate_free(agg);
    return 0;
}

/* ---- The command table ---------------------------------------------------- */

static int demo_run(const es_app_call *call)
{
    return demo(call) ? 1 : 0;
}

static int open_run(const es_app_call *call)
{
    bank_command cmd = { .kind = BANK_OPEN, .owner = call->argv[1],
                         .currency = call->argc == 3 ? call->argv[2] : NULL };
    return command(call, call->argv[0], &cmd);
}

/* deposit and withdraw: ID AMOUNT. */
static int money_run(const es_app_call *call, bank_command_kind kind)
{
    bank_command cmd = { .kind = kind };
    if (parse_amount(&cmd.amount, call->argv[1]) != 0) {
        fprintf(stderr, "%s: AMOUNT '%s' is not like 25.00\n", call->prog,
                call->argv[1]);
        return 2;
    }
    return command(call, call->argv[0], &cmd);
}

static int deposit_run(const es_app_call *call)
{
    return money_run(call, BANK_DEPOSIT);
}

static int withdraw_run(const es_app_call *call)
{
    return money_run(call, BANK_WITHDRAW);
}

static int close_run(const es_app_call *call)
{
    bank_command cmd = { .kind = BANK_CLOSE };
    return command(call, call->argv[0], &cmd);
}

enum { SHOW_AS_OF, SHOW_TO_VERSION };
static const es_app_option show_opts[] = {
    { "as-of", "TIME", "the state as of an ISO 8601 time" },
    { "to-version", "N", "the state after version N" },
    { NULL, NULL, NULL }
};

static int show_run(const es_app_call *call)
{
    const char *as_of = call->values[SHOW_AS_OF], *to = call->values[SHOW_TO_VERSION];
    es_range range = ES_RANGE_ALL;
    char bound[64] = "", *end;
    es_error err;

    if (as_of && to) {
        fprintf(stderr, "%s show: give --as-of or --to-version, not both\n",
                call->prog);
        return 2;
    }
    if (as_of) {
        if (es_time_parse(&range.time_us, as_of, &err) != 0) {
            fprintf(stderr, "%s: --as-of %s: %s\n", call->prog, as_of, err.text);
            return 2;
        }
        range.kind = ES_RANGE_TIME;
        snprintf(bound, sizeof bound, "as of %s", as_of);
    } else if (to) {
        int64_t n = strtoll(to, &end, 10);
        if (*to == '\0' || *end != '\0' || n < 0) {
            fprintf(stderr, "%s: --to-version %s: not a version number\n",
                    call->prog, to);
            return 2;
        }
        range = ES_RANGE_TO_VERSION(n);
        snprintf(bound, sizeof bound, "up to version %" PRId64, n);
    }
    return show(call, call->argv[0], range, bound[0] ? bound : NULL);
}

/* ---- A read model: one JSON document per account -------------------------- */

/*
 * `bank project run accounts` keeps the table account_summary (key, doc,
 * version) with a document per account, folded by this function from the
 * account's events: a keyed fold (esfold/projection.h,
 * es_projection_keyed) with no SQL. Query it with
 *   SELECT key, json_extract(doc, '$.balance') FROM account_summary
 * in the projections file next to the log (bank.projections.db).
 */
static int fold_account(json_t *doc, const es_event *ev, char *why,
                        size_t why_size, void *user_data)
{
    json_t *amount = json_object_get(ev->payload, "amount");
    json_int_t balance = json_integer_value(json_object_get(doc, "balance"));
    int out = strcmp(ev->type, "Withdrawn") == 0;
    (void)user_data;
    if (strcmp(ev->type, "AccountOpened") == 0) {
        json_object_set(doc, "owner", json_object_get(ev->payload, "owner"));
        json_object_set(doc, "currency", json_object_get(ev->payload, "currency"));
        json_object_set_new(doc, "balance", json_integer(0));
        json_object_set_new(doc, "status", json_string("open"));
        return 0;
    }
    if (strcmp(ev->type, "AccountClosed") == 0)
        return json_object_set_new(doc, "status", json_string("closed"));
    if (!json_is_integer(amount)) { /* dead-lettered with this text */
        snprintf(why, why_size, "%s without an integer amount", ev->type);
        return -1;
    }
    json_object_set_new(doc, "balance", json_integer(balance + (out ? -1 : 1) *
                                                     json_integer_value(amount)));
    json_object_set_new(doc, out ? "withdrawals" : "deposits",
        json_integer(json_integer_value(json_object_get(doc, out ? "withdrawals"
                                                                 : "deposits")) + 1));
    return 0;
}

static const char *const account_types[] = { "account", NULL };
static const char *const account_events[] = { "AccountOpened", "Deposited",
                                              "Withdrawn", "AccountClosed", NULL };

static es_projection *accounts_projection(void)
{
    es_keyed_projection def = ES_KEYED_PROJECTION_INIT;
    es_projection *p = NULL;
    es_error err;
    def.name = "accounts";
    def.follows = account_types;
    def.table = "account_summary";
    def.key = "$stream_id";
    def.on = account_events;
    def.fold = fold_account;
    if (es_projection_keyed(&p, &def, &err) != 0)
        fprintf(stderr, "bank: the accounts projection: %s\n", err.text);
    return p;
}

static const es_app_command bank_commands[] = {
    { "demo", "", "run the scripted demo (needs a fresh log)", NULL, NULL,
      0, 0, 0, demo_run },
    { "open", "ID OWNER [CURRENCY]", "open an account (currency EUR by default)",
      NULL, NULL, 2, 3, 0, open_run },
    { "deposit", "ID AMOUNT", "deposit AMOUNT, like 25.00", NULL, NULL, 2, 2, 0,
      deposit_run },
    { "withdraw", "ID AMOUNT", "withdraw AMOUNT; never overdraws", NULL, NULL,
      2, 2, 0, withdraw_run },
    { "close", "ID", "close an account with a zero balance", NULL, NULL, 1, 1, 0,
      close_run },
    { "show", "ID [--as-of TIME | --to-version N]",
      "the state now, as of a time, or after version N", NULL, show_opts, 1, 1,
      ES_APP_READ_ONLY, show_run },
    { NULL, NULL, NULL, NULL, NULL, 0, 0, 0, NULL }
};

int main(int argc, char **argv)
{
    es_app app = ES_APP_INIT;
    es_projection *accounts = accounts_projection();
    const es_projection *projections[] = { accounts, NULL };
    int status;
    if (accounts == NULL)
        return 1;
    app.name = "bank";
    app.types = bank_types;
    app.commands = bank_commands;
    app.snapshots = &bank_policy;
    app.projections = projections;
    app.user_data = argc > 0 ? argv[0] : "bank";
    status = es_cli_main(argc, argv, &app);
    es_projection_free(accounts);
    return status;
}

/*
 * samples/bank/main.c - the `bank` program: a scripted demo of the account
 * aggregate, single commands on accounts, and, for every other command,
 * the esfold operations commands (history, verify, ...) with the account
 * type compiled in: the program is its own operations tool.
 *
 *   bank [OPTIONS] demo
 *   bank [OPTIONS] open ID OWNER [CURRENCY]
 *   bank [OPTIONS] deposit ID AMOUNT
 *   bank [OPTIONS] withdraw ID AMOUNT
 *   bank [OPTIONS] close ID
 *   bank [OPTIONS] show ID [--as-of TIME | --to-version N]
 *   bank [OPTIONS] history account ID     (and every other esfold command)
 *   bank --help
 *
 * OPTIONS: --log URI (the log) and --snapshots URI (the snapshot store the
 * program attaches to its repository; see bank_attach_snapshots).
 *
 * Exit status: 0 success, 1 the command failed or was refused, 2 usage.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "account.h"

static const es_aggregate_type *const bank_types[] = { &bank_account_type, NULL };

static void usage(FILE *f)
{
    fprintf(f,
        "usage: bank [--log URI] [--snapshots URI] COMMAND [ARGS]\n"
        "\n"
        "Account commands:\n"
        "  demo                              run the scripted demo (needs a fresh log)\n"
        "  open ID OWNER [CURRENCY]          open an account (currency EUR by default)\n"
        "  deposit ID AMOUNT                 deposit AMOUNT, like 25.00\n"
        "  withdraw ID AMOUNT                withdraw AMOUNT; never overdraws\n"
        "  close ID                          close an account with a zero balance\n"
        "  show ID [--as-of TIME | --to-version N]\n"
        "                                    the state now, as of an ISO 8601 time,\n"
        "                                    or after version N\n"
        "\n"
        "Every other command is an esfold operations command, run with the\n"
        "account type compiled in, e.g.:\n"
        "  history account ID                every event and the state after it\n"
        "  verify                            check the log\n"
        "\n"
        "The log is --log URI, else $ESFOLD_LOG, else " ES_LOG_DEFAULT_URI ".\n"
        "The snapshot store is --snapshots URI, else $ESFOLD_SNAPSHOTS, else the\n"
        "log's own file (sqlite:) or cluster and topic prefix (kafka://).\n");
}

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

/* ---- A log, a repository and a snapshot store ---------------------------- */

/*
 * The repository snapshots an account every 100 events: a load then folds
 * at most about 100 events after the newest snapshot, instead of the whole
 * history. Small, so that the demo shows it; a real bank would choose a
 * larger number (docs/snapshots.md has the figures).
 */
#define BANK_SNAPSHOT_EVERY 100

typedef struct bank {
    es_log *log;
    es_repo *repo;
    es_snapshot_store *snapshots; /* NULL: none, loads fold from origin */
} bank;

/* The log's URI as es_log_open chooses it: uri, $ESFOLD_LOG, the default. */
static const char *log_uri_of(const char *uri)
{
    const char *env = getenv("ESFOLD_LOG");
    if (uri)
        return uri;
    return env && *env ? env : ES_LOG_DEFAULT_URI;
}

/* Snapshots skipped or not saved never change a result, but are never
 * silent either. */
static void on_warning(int code, const char *message, void *user_data)
{
    (void)code;
    (void)user_data;
    fprintf(stderr, "bank: warning: %s\n", message);
}

/*
 * Attaches the snapshot store to the repository. A store given with
 * --snapshots or $ESFOLD_SNAPSHOTS must open; the default one (the log's
 * file or cluster) is an optimisation, so when it cannot be opened the
 * program says so and goes on with full folds.
 */
static int bank_attach_snapshots(bank *b, const char *log_uri,
                                 const char *snap_opt)
{
    es_snapshot_policy policy = ES_SNAPSHOT_POLICY_INIT;
    const char *env = getenv("ESFOLD_SNAPSHOTS");
    int explicit = snap_opt != NULL || (env && *env);
    char *uri = NULL;
    int rc;

    es_repo_set_warning_cb(b->repo, on_warning, NULL);
    if (snap_opt)
        rc = (uri = strdup(snap_opt)) ? 0 : ES_ENOMEM;
    else
        rc = es_snapshot_default_uri(&uri, log_uri);
    if (rc == ES_ENOTFOUND)
        return 0; /* no default store for this kind of log: full folds */
    if (rc != 0) {
        fprintf(stderr, "bank: %s\n", es_strerror(rc));
        return rc;
    }
    rc = es_snapshot_store_open(&b->snapshots, uri);
    if (snap_opt)
        free(uri);
    else
        es_free(uri);
    if (rc == 0) {
        policy.every = BANK_SNAPSHOT_EVERY;
        rc = es_repo_add_snapshots(b->repo, &bank_account_type, b->snapshots,
                                   &policy);
        if (rc == 0)
            return 0;
        fprintf(stderr, "bank: %s: %s\n", explicit ? "error" : "warning",
                es_errmsg(b->repo));
    } else {
        fprintf(stderr, "bank: %s: cannot open the snapshot store: %s%s\n",
                explicit ? "error" : "warning",
                b->snapshots ? es_errmsg(b->snapshots) : es_strerror(rc),
                explicit ? "" : " (loads fold every event)");
    }
    es_snapshot_store_close(b->snapshots);
    b->snapshots = NULL;
    return explicit ? rc : 0;
}

static int bank_open(bank *b, const char *uri, const char *snap_opt)
{
    int rc;
    memset(b, 0, sizeof *b);
    if ((rc = es_log_open(&b->log, uri)) != 0) {
        fprintf(stderr, "bank: cannot open the log: %s\n",
                b->log ? es_errmsg(b->log) : es_strerror(rc));
        es_log_close(b->log);
        b->log = NULL;
        return rc;
    }
    if ((rc = es_repo_new(&b->repo, b->log, NULL)) != 0) {
        fprintf(stderr, "bank: %s\n", es_strerror(rc));
        es_log_close(b->log);
        b->log = NULL;
        return rc;
    }
    if ((rc = bank_attach_snapshots(b, log_uri_of(uri), snap_opt)) != 0) {
        es_repo_free(b->repo);
        es_log_close(b->log);
        memset(b, 0, sizeof *b);
        return rc;
    }
    return 0;
}

/*
 * Reading commands must not create a log where an operator mistyped a
 * path: 1 when uri is not a sqlite: file, or the file exists.
 */
static int log_exists(const char *uri)
{
    char path[4096];
    size_t len;

    uri = log_uri_of(uri);
    if (strncmp(uri, "sqlite:", 7) != 0 || strncmp(uri, "sqlite::memory:", 15) == 0)
        return 1;
    len = strcspn(uri + 7, "?");
    if (len >= sizeof path)
        return 1; /* let es_log_open say what is wrong */
    memcpy(path, uri + 7, len);
    path[len] = '\0';
    if (access(path, F_OK) == 0)
        return 1;
    fprintf(stderr, "bank: there is no log at %s (no file %s)\n", uri, path);
    return 0;
}

static void bank_close(bank *b)
{
    es_repo_free(b->repo); /* before the store it borrows */
    es_snapshot_store_close(b->snapshots);
    es_log_close(b->log);
}

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

static int demo(bank *b, const char *prog, const char *log_arg,
                const char *snap_arg)
{
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

    snprintf(cmdline, sizeof cmdline, "%s%s%s%s%s", prog,
             log_arg ? " --log " : "", log_arg ? log_arg : "",
             snap_arg ? " --snapshots " : "", snap_arg ? snap_arg : "");
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

/* Parses `show ID [--as-of TIME | --to-version N]`; the exit status. */
static int show_main(bank *b, int argc, char **argv)
{
    es_range range = ES_RANGE_ALL;
    char bound[64] = "";
    es_error err;
    int64_t n;

    if (argc == 2) {
        /* just the id */
    } else if (argc == 4 && strcmp(argv[2], "--as-of") == 0) {
        if (es_time_parse(&range.time_us, argv[3], &err) != 0) {
            fprintf(stderr, "bank: --as-of %s: %s\n", argv[3], err.text);
            return 2;
        }
        range.kind = ES_RANGE_TIME;
        snprintf(bound, sizeof bound, "as of %s", argv[3]);
    } else if (argc == 4 && strcmp(argv[2], "--to-version") == 0) {
        char *end;
        n = strtoll(argv[3], &end, 10);
        if (*argv[3] == '\0' || *end != '\0' || n < 0) {
            fprintf(stderr, "bank: --to-version %s: not a version number\n",
                    argv[3]);
            return 2;
        }
        range = ES_RANGE_TO_VERSION(n);
        snprintf(bound, sizeof bound, "up to version %" PRId64, n);
    } else {
        fprintf(stderr, "usage: bank show ID [--as-of TIME | --to-version N]\n");
        return 2;
    }
    return show(b, argv[1], range, bound[0] ? bound : NULL);
}

/*
 * argv here starts at the command: {"deposit", "acct-1", "25.00"}.
 * Returns the exit status.
 */
static int account_main(bank *b, int argc, char **argv)
{
    bank_command cmd;
    const char *name = argv[0];

    memset(&cmd, 0, sizeof cmd);
    if (strcmp(name, "show") == 0)
        return show_main(b, argc, argv);
    if (strcmp(name, "open") == 0 && (argc == 3 || argc == 4)) {
        cmd.kind = BANK_OPEN;
        cmd.owner = argv[2];
        cmd.currency = argc == 4 ? argv[3] : NULL;
    } else if ((strcmp(name, "deposit") == 0 || strcmp(name, "withdraw") == 0) &&
               argc == 3) {
        cmd.kind = name[0] == 'd' ? BANK_DEPOSIT : BANK_WITHDRAW;
        if (parse_amount(&cmd.amount, argv[2]) != 0) {
            fprintf(stderr, "bank: %s: AMOUNT '%s' is not like 25.00\n", name,
                    argv[2]);
            return 2;
        }
    } else if (strcmp(name, "close") == 0 && argc == 2) {
        cmd.kind = BANK_CLOSE;
    } else {
        usage(stderr);
        return 2;
    }
    return command(b, argv[1], &cmd);
}

static int is_account_command(const char *name)
{
    static const char *const names[] = {
        "open", "deposit", "withdraw", "close", "show", NULL
    };
    for (const char *const *n = names; *n; n++)
        if (strcmp(*n, name) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *uri = NULL, *snap_uri = NULL;
    es_app app = ES_APP_INIT;
    bank b;
    int i = 1, status;

    app.name = "bank";
    app.types = bank_types;

    /* --log URI and --snapshots URI, in either order, before the command. */
    while (i < argc) {
        const char **dst = NULL;
        size_t n = 0;
        if (strncmp(argv[i], "--log", 5) == 0)
            dst = &uri, n = 5;
        else if (strncmp(argv[i], "--snapshots", 11) == 0)
            dst = &snap_uri, n = 11;
        if (dst && argv[i][n] == '\0') {
            if (i + 1 >= argc) {
                usage(stderr);
                return 2;
            }
            *dst = argv[i + 1];
            i += 2;
        } else if (dst && argv[i][n] == '=') {
            *dst = argv[i] + n + 1;
            i++;
        } else {
            break;
        }
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

    if (strcmp(argv[i], "demo") == 0 || is_account_command(argv[i])) {
        if (strcmp(argv[i], "demo") == 0 && argc - i != 1) {
            usage(stderr);
            return 2;
        }
        if (strcmp(argv[i], "show") == 0 && !log_exists(uri))
            return 1;
        if (bank_open(&b, uri, snap_uri) != 0)
            return 1;
        if (strcmp(argv[i], "demo") == 0)
            status = demo(&b, argv[0], uri, snap_uri) ? 1 : 0;
        else
            status = account_main(&b, argc - i, argv + i);
        bank_close(&b);
        return status;
    }

    /* Everything else is an esfold operations command. Pass it on in the
     * form es_cli_main documents: PROG [--log URI] COMMAND ... The
     * `snapshot` command takes its store from $ESFOLD_SNAPSHOTS. */
    if (snap_uri && setenv("ESFOLD_SNAPSHOTS", snap_uri, 1) != 0) {
        fprintf(stderr, "bank: out of memory\n");
        return 1;
    }
    {
        char **args = calloc((size_t)argc + 2, sizeof *args);
        int n = 0;
        if (args == NULL) {
            fprintf(stderr, "bank: out of memory\n");
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

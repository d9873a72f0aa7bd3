/*
 * samples/bank/account.c - the bank account aggregate: how events fold into
 * a bank_account (the apply functions), how the state is encoded for
 * snapshots and the audit trail, and how commands become events
 * (bank_decide).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "account.h"

/* ---- Folding: one apply function per event type ------------------------ */

/*
 * Reads payload member `key` as a positive integer amount of cents. The
 * log only promises a JSON object, so apply functions check what they read:
 * a malformed event makes the fold fail with ES_EINVAL (naming the event)
 * instead of folding nonsense.
 */
static int get_amount(const es_event *ev, int64_t *out)
{
    json_t *v = json_object_get(ev->payload, "amount");
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return ES_EINVAL;
    *out = json_integer_value(v);
    return 0;
}

/* 1 when s is three upper-case ASCII letters, an ISO 4217 code. */
static int is_currency(const char *s)
{
    return s && strlen(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' &&
           s[1] >= 'A' && s[1] <= 'Z' && s[2] >= 'A' && s[2] <= 'Z';
}

/* 1 when s fits bank_account.owner and is not empty. */
static int is_owner(const char *s)
{
    return s && s[0] != '\0' && strlen(s) < sizeof(((bank_account *)0)->owner);
}

static void account_init(void *state)
{
    memset(state, 0, sizeof(bank_account));
}

static int apply_opened(void *state, const es_event *ev)
{
    bank_account *a = state;
    const char *owner = json_string_value(json_object_get(ev->payload, "owner"));
    json_t *cur = json_object_get(ev->payload, "currency");
    /* Like the command, an event without a currency means EUR. */
    const char *currency = cur ? json_string_value(cur) : "EUR";

    if (!is_owner(owner) || !is_currency(currency))
        return ES_EINVAL;
    a->opened = 1;
    snprintf(a->owner, sizeof a->owner, "%s", owner);
    snprintf(a->currency, sizeof a->currency, "%s", currency);
    return 0;
}

static int apply_deposited(void *state, const es_event *ev)
{
    bank_account *a = state;
    int64_t amount;

    if (get_amount(ev, &amount) != 0 || a->balance > INT64_MAX - amount)
        return ES_EINVAL;
    a->balance += amount;
    a->transactions++;
    return 0;
}

static int apply_withdrawn(void *state, const es_event *ev)
{
    bank_account *a = state;
    int64_t amount;

    /* A withdrawal is a fact once it is in the log: apply does not judge
     * it (bank_decide did), it only refuses what cannot be represented. */
    if (get_amount(ev, &amount) != 0 || a->balance < INT64_MIN + amount)
        return ES_EINVAL;
    a->balance -= amount;
    a->transactions++;
    return 0;
}

static int apply_closed(void *state, const es_event *ev)
{
    bank_account *a = state;
    (void)ev;
    a->closed = 1;
    return 0;
}

static const es_handler account_handlers[] = {
    { "AccountOpened", apply_opened },
    { "Deposited", apply_deposited },
    { "Withdrawn", apply_withdrawn },
    { "AccountClosed", apply_closed },
    { NULL, NULL }
};

/* ---- The state as JSON (state_schema 1) --------------------------------- */

static json_t *account_encode(const void *state)
{
    const bank_account *a = state;
    return json_pack("{s:b, s:b, s:s, s:s, s:I, s:I}",
                     "opened", a->opened, "closed", a->closed,
                     "owner", a->owner, "currency", a->currency,
                     "balance", (json_int_t)a->balance,
                     "transactions", (json_int_t)a->transactions);
}

static int account_decode(void *state, const json_t *json)
{
    bank_account tmp;
    int opened, closed;
    const char *owner, *currency;
    json_int_t balance, transactions;

    /* "!": any key this schema does not know is an error, not ignored. */
    if (json_unpack((json_t *)json, "{s:b, s:b, s:s, s:s, s:I, s:I !}",
                    "opened", &opened, "closed", &closed,
                    "owner", &owner, "currency", &currency,
                    "balance", &balance, "transactions", &transactions) != 0)
        return ES_EINVAL;
    if (opened) {
        if (!is_owner(owner) || !is_currency(currency))
            return ES_EINVAL;
    } else if (closed || owner[0] || currency[0] || balance || transactions) {
        return ES_EINVAL; /* an account that never opened has nothing */
    }
    if (transactions < 0)
        return ES_EINVAL;
    memset(&tmp, 0, sizeof tmp);
    tmp.opened = opened;
    tmp.closed = closed;
    snprintf(tmp.owner, sizeof tmp.owner, "%s", owner);
    snprintf(tmp.currency, sizeof tmp.currency, "%s", currency);
    tmp.balance = balance;
    tmp.transactions = transactions;
    memcpy(state, &tmp, sizeof tmp);
    return 0;
}

const es_aggregate_type bank_account_type = {
    .name = "account",
    .state_size = sizeof(bank_account),
    .init = account_init,
    .handlers = account_handlers,
    .state_schema = 1,
    .encode = account_encode,
    .decode = account_decode,
};

/* ---- Deciding: commands, invariants, refusals --------------------------- */

/* "25.00" for 2500 cents (and "-0.50" for -50). */
static const char *money(char buf[32], int64_t cents)
{
    uint64_t abs = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    snprintf(buf, 32, "%s%" PRIu64 ".%02u", cents < 0 ? "-" : "", abs / 100,
             (unsigned)(abs % 100));
    return buf;
}

static int decide_open(const bank_account *a, const bank_command *cmd,
                       es_emitter *em)
{
    const char *currency = cmd->currency ? cmd->currency : "EUR";
    json_t *owner;

    if (a->opened)
        return es_refuse(em, "the account is already open (owner %s, %s)",
                         a->owner, a->currency);
    if (!is_owner(cmd->owner))
        return es_refuse(em, "an owner name of 1 to %zu bytes is required",
                         sizeof a->owner - 1);
    if (!is_currency(currency))
        return es_refuse(em, "currency '%s' is not a three-letter code like EUR",
                         currency);
    /* json_string checks that the name is UTF-8. */
    if ((owner = json_string(cmd->owner)) == NULL)
        return es_refuse(em, "the owner name is not valid UTF-8");
    return es_emit_new(em, "AccountOpened",
                       json_pack("{s:o, s:s}", "owner", owner,
                                 "currency", currency));
}

/* What deposits and withdrawals both require. */
static int check_movement(const bank_account *a, const char *what,
                          int64_t amount, es_emitter *em)
{
    char m[32];
    if (!a->opened)
        return es_refuse(em, "no such account: open it first");
    if (a->closed)
        return es_refuse(em, "the account is closed");
    if (amount <= 0)
        return es_refuse(em, "a %s must be a positive amount, not %s %s", what,
                         money(m, amount), a->currency);
    return 0;
}

int bank_decide(const void *state, int64_t version, const void *command,
                es_emitter *em, void *user_data)
{
    const bank_account *a = state;
    const bank_command *cmd = command;
    char m1[32], m2[32];
    int rc;

    (void)version;
    (void)user_data;
    if (a == NULL || cmd == NULL)
        return ES_EINVAL;
    switch (cmd->kind) {
    case BANK_OPEN:
        return decide_open(a, cmd, em);
    case BANK_DEPOSIT:
        if ((rc = check_movement(a, "deposit", cmd->amount, em)) != 0)
            return rc;
        if (a->balance > INT64_MAX - cmd->amount)
            return es_refuse(em, "a deposit of %s %s would overflow the balance",
                             money(m1, cmd->amount), a->currency);
        return es_emit_new(em, "Deposited",
                           json_pack("{s:I}", "amount", (json_int_t)cmd->amount));
    case BANK_WITHDRAW:
        if ((rc = check_movement(a, "withdrawal", cmd->amount, em)) != 0)
            return rc;
        if (cmd->amount > a->balance)
            return es_refuse(em, "insufficient funds: balance %s %s, "
                             "withdrawal %s %s", money(m1, a->balance),
                             a->currency, money(m2, cmd->amount), a->currency);
        return es_emit_new(em, "Withdrawn",
                           json_pack("{s:I}", "amount", (json_int_t)cmd->amount));
    case BANK_CLOSE:
        if (!a->opened)
            return es_refuse(em, "no such account: open it first");
        if (a->closed)
            return es_refuse(em, "the account is already closed");
        if (a->balance != 0)
            return es_refuse(em, "the balance is %s %s: only an empty account "
                             "closes", money(m1, a->balance), a->currency);
        return es_emit_new(em, "AccountClosed", json_object());
    }
    return ES_EINVAL; /* not a bank_command_kind */
}

int bank_execute(es_repo *repo, const char *id, const bank_command *cmd)
{
    return es_repo_execute(repo, NULL, &bank_account_type, id, bank_decide, cmd,
                           NULL, NULL);
}

/*
 * samples/bank/account.h - a bank account aggregate.
 *
 * Events (aggregate type "account", payload schema 1):
 *   AccountOpened  {"owner": "Ada", "currency": "EUR"}
 *   Deposited      {"amount": 2500}            amounts in cents, > 0
 *   Withdrawn      {"amount": 1000}
 *   AccountClosed  {}
 * Invariants checked by the decide functions: an account is opened once;
 * deposits and withdrawals need an open account and a positive amount; a
 * withdrawal never overdraws; only an account with a zero balance closes.
 */
#ifndef ESFOLD_SAMPLES_BANK_ACCOUNT_H
#define ESFOLD_SAMPLES_BANK_ACCOUNT_H

#include <stdint.h>

#include "esfold/esfold.h"

typedef struct bank_account {
    int opened;
    int closed;
    char owner[64];
    char currency[4];
    int64_t balance;      /* cents */
    int64_t transactions; /* deposits + withdrawals */
} bank_account;

extern const es_aggregate_type bank_account_type;

/* A command for bank_decide. */
typedef enum bank_command_kind {
    BANK_OPEN, BANK_DEPOSIT, BANK_WITHDRAW, BANK_CLOSE
} bank_command_kind;

typedef struct bank_command {
    bank_command_kind kind;
    const char *owner;    /* BANK_OPEN */
    const char *currency; /* BANK_OPEN; NULL = "EUR" */
    int64_t amount;       /* BANK_DEPOSIT, BANK_WITHDRAW: cents */
} bank_command;

/* The decide function of the account: an es_decide_fn. */
int bank_decide(const void *state, int64_t version, const void *command,
                es_emitter *em, void *user_data);

/* Runs one command on account `id` through repo; 0 or an ES_E* code. */
int bank_execute(es_repo *repo, const char *id, const bank_command *cmd);

#endif

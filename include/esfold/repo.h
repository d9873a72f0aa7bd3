/*
 * esfold/repo.h - the repository: load aggregates, execute commands.
 *
 * A repository sits on a log (borrowed: the log must outlive it) and holds
 * the upcasters every read goes through. Loading folds a stream, to its end,
 * to a version, or as of a time. Executing a command loads the aggregate,
 * asks the user's decide function which events the command produces (or why
 * it is refused), and appends them with the loaded version as the expected
 * version; on a conflict it loads again and decides again, a bounded number
 * of times.
 *
 * Threads: one thread at a time per repository.
 */
#ifndef ESFOLD_REPO_H
#define ESFOLD_REPO_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "aggregate.h"
#include "error.h"
#include "event.h"
#include "log.h"
#include "upcast.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_repo es_repo;

typedef struct es_repo_options {
    unsigned version;     /* ES_REPO_OPTIONS_VERSION */
    int max_attempts;     /* decide+append attempts on conflict (>= 1) */
} es_repo_options;

#define ES_REPO_OPTIONS_VERSION 1
#define ES_REPO_OPTIONS_INIT { ES_REPO_OPTIONS_VERSION, 5 }

/* opts may be NULL for the defaults. */
int es_repo_new(es_repo **out, es_log *log, const es_repo_options *opts);
void es_repo_free(es_repo *repo); /* accepts NULL */

/* The log (borrowed) and the upcaster registry (borrowed, owned by repo). */
es_log *es_repo_log(es_repo *repo);
es_upcasters *es_repo_upcasters(es_repo *repo);

/*
 * The registry of state upcasters (borrowed, owned by repo): the same
 * es_upcasters, keyed by aggregate type name and state schema instead of
 * event type and payload schema. A snapshot whose state schema is older
 * than its type's state_schema is run through the chain before decode();
 * without a chain that reaches the current schema it is skipped. Example:
 *     es_upcasters_add(es_repo_state_upcasters(repo), "account", 1, NULL, 2,
 *                      account_state_1_to_2, NULL);
 * Encoded states must be JSON objects to be upcast.
 */
es_upcasters *es_repo_state_upcasters(es_repo *repo);

/*
 * Warnings: what went wrong without changing a result. A snapshot that was
 * skipped (corrupt, another schema, ahead of the log, its store
 * unreachable) or could not be saved is a warning: the load still gives the
 * state a full replay gives, and the execute still succeeds.
 *
 * The callback is called on the thread of the repository call, with an
 * ES_E* code saying what kind of problem it was and a message (borrowed for
 * the call) naming the stream, the snapshot and the reason. It must not
 * call back into the repository. fn NULL turns it off.
 */
typedef void (*es_warning_fn)(int code, const char *message, void *user_data);
void es_repo_set_warning_cb(es_repo *repo, es_warning_fn fn, void *user_data);

/*
 * The warnings of the last es_repo_load/replay/execute/snapshot call on
 * repo, one per line, "" when there were none. Borrowed, valid until the
 * next call on repo. Never NULL.
 */
const char *es_repo_warnings(const es_repo *repo);

/*
 * Folds type's stream `stream_id` within range. *out belongs to the caller
 * (es_aggregate_free). A stream with no events gives an aggregate at
 * version 0, not an error. Returns 0, ES_EUNHANDLED, ES_ETRUNCATED,
 * ES_ECORRUPT, ES_EIO; es_errmsg(repo) names the stream and event.
 *
 * When snapshots are attached to type (esfold/snapshot.h) the fold starts
 * from the newest usable snapshot at or below range, and
 * es_aggregate_folded(*out) counts only the events folded after it. The
 * result is the same as es_repo_replay's in every case.
 */
int es_repo_load(es_repo *repo, es_aggregate **out,
                 const es_aggregate_type *type, const char *stream_id,
                 es_range range);

/*
 * Like es_repo_load, calling cb after each event with the (upcast) event
 * and the state after it: the audit trail. *out may be NULL when the final
 * aggregate is not wanted. A non-zero return of cb stops with ES_EUSER.
 * A replay always folds from origin and ignores snapshots: it is the full
 * replay that audits (and tests) compare loads with.
 */
typedef int (*es_replay_cb)(const es_event *ev, const void *state,
                            void *user_data);
int es_repo_replay(es_repo *repo, es_aggregate **out,
                   const es_aggregate_type *type, const char *stream_id,
                   es_range range, es_replay_cb cb, void *user_data);

/* Collects the events a decide function produces. */
typedef struct es_emitter es_emitter;

/*
 * Emits an event of event_type with payload (a JSON object; the reference is
 * stolen, as with json_object_set_new, also on failure), at the event
 * type's current schema (es_aggregate_type.schemas; 1 when not listed).
 * The same as es_emit_with(em, event_type, payload, NULL).
 */
int es_emit_new(es_emitter *em, const char *event_type, json_t *payload);

/* What an emitted event carries beyond its type and payload. Zero/NULL
 * fields take the default. */
typedef struct es_emit_options {
    unsigned version;           /* ES_EMIT_OPTIONS_VERSION */
    int32_t schema;             /* payload schema; 0: the type's current one
                                   (es_aggregate_type_schema) */
    const char *id;             /* event id (copied); NULL: derived from the
                                   command id when execute has one
                                   (es_command_event_id), else a new UUIDv7 */
    int64_t occurred_us;        /* UTC microseconds; 0: now */
    json_t *meta;               /* a JSON object (borrowed: a reference is
                                   taken); NULL: es_execute_options.meta */
    const char *correlation_id; /* copied; NULL: es_execute_options' */
    const char *causation_id;   /* copied; NULL: es_execute_options' */
} es_emit_options;

#define ES_EMIT_OPTIONS_VERSION 1
#define ES_EMIT_OPTIONS_INIT { ES_EMIT_OPTIONS_VERSION, 0, NULL, 0, NULL, NULL, NULL }

/*
 * Emits an event of event_type with payload (stolen, also on failure) and
 * what opts says (NULL: the defaults, as es_emit_new). The schema stamped
 * is the one given: the upcasters (esfold/upcast.h) only ever see events
 * stored at an older schema. Returns 0, ES_EINVAL (no type, payload not
 * an object, schema < 0, meta not an object, an unknown opts version;
 * nothing is emitted), ES_ENOMEM (the command then fails).
 */
int es_emit_with(es_emitter *em, const char *event_type, json_t *payload,
                 const es_emit_options *opts);

/*
 * Refuses the command: the reason (printf format) becomes es_errmsg(repo)
 * and es_repo_execute returns ES_EREFUSED. Returns ES_EREFUSED so that a
 * decide function can `return es_refuse(em, "...")`.
 */
int es_refuse(es_emitter *em, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/*
 * Decides what a command does to an aggregate in `state` at `version`
 * (0: the stream does not exist yet). Emits zero or more events, or
 * refuses. Must not have side effects: it may run more than once.
 * Returns 0, or a negative code (es_refuse's ES_EREFUSED, or an error).
 */
typedef int (*es_decide_fn)(const void *state, int64_t version,
                            const void *command, es_emitter *em,
                            void *user_data);

typedef struct es_execute_result {
    int64_t version;  /* the stream's version after the command */
    size_t events;    /* how many events were appended (0: nothing to do) */
    int attempts;     /* decide+append rounds it took */
    es_position last; /* position of the last event appended */
    /* On ES_ECONFLICT: the version the stream was at (0: no stream), the
     * conflict as data (an HTTP 412 with the current version). Otherwise
     * the version the command was decided at. */
    int64_t actual_version;
    int duplicate;    /* 1: the command id's events were in the log already
                         (a retried command): nothing was decided or
                         written; version, events and last describe the
                         first execution */
    /* Fields are only ever added at the end. */
} es_execute_result;

/* Options of one command execution. */
typedef struct es_execute_options {
    unsigned version;           /* ES_EXECUTE_OPTIONS_VERSION */
    const char *correlation_id; /* stamped on every event; may be NULL */
    const char *causation_id;   /* stamped on every event; may be NULL */
    json_t *meta;               /* metadata for every event (borrowed); NULL */
    /* Since version 2: */
    int64_t expected_version;   /* ES_EXPECT_ANY: none. Else the version the
                                   stream must be at (an If-Match; 0: it must
                                   not exist): another version is
                                   ES_ECONFLICT without deciding, and a
                                   conflict is not retried */
    const char *command_id;     /* NULL: none. Else the command's unique id
                                   (an idempotency key): its events' ids are
                                   es_command_event_id(type, stream, id, i),
                                   and a command whose events are in the
                                   log already is not executed again */
} es_execute_options;

#define ES_EXECUTE_OPTIONS_VERSION 2
#define ES_EXECUTE_OPTIONS_INIT \
    { ES_EXECUTE_OPTIONS_VERSION, NULL, NULL, NULL, ES_EXPECT_ANY, NULL }

/*
 * Loads, decides, appends; on ES_ECONFLICT loads and decides again, up to
 * max_attempts. out and opts may be NULL (opts of version 1 are taken as
 * they were). Returns 0, ES_EREFUSED (the reason in es_errmsg(repo)),
 * ES_ECONFLICT (still conflicting after every attempt, or the stream is
 * not at opts->expected_version; out->actual_version says where it is),
 * or a load/append error. ES_EUNKNOWN (the log could not tell whether the
 * commit was written; the message names its ids) is returned as it is,
 * never decided again: the first try may count, and a second decision
 * would write its effect twice. Retry with the same command_id, or load
 * the stream to see.
 *
 * Idempotent commands: with opts->command_id the log is first asked for
 * the id of the command's event 0. When it is there (a client retried a
 * command that succeeded, after a timeout) nothing is decided or written
 * and the result is the first execution's, with out->duplicate = 1. Two
 * executions of one command racing each other give one commit too: the
 * loser's append is the log's duplicate. Only appended outcomes are
 * remembered: a command that was refused, or emitted nothing, is decided
 * again. A command id names one command on one stream: reusing it for
 * another command of that stream makes that command a no-op.
 *
 * The events get their ids (the command's, es_emit_with's, else UUIDv7)
 * and occurred-at time (now, unless es_emit_with gave one) here. With
 * snapshots attached to type, the load starts from a snapshot and, after
 * the append, the policy may save one of the new state; a snapshot that
 * cannot be saved is a warning (es_repo_warnings), never an error.
 */
int es_repo_execute(es_repo *repo, es_execute_result *out,
                    const es_aggregate_type *type, const char *stream_id,
                    es_decide_fn decide, const void *command, void *user_data,
                    const es_execute_options *opts);

#ifdef __cplusplus
}
#endif
#endif

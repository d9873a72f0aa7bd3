/*
 * esfold/projection.h - projections: read-model tables kept consistent with
 * the log, exactly once, in PostgreSQL or SQLite.
 *
 * A projection is a name, a version, the aggregate types it follows, a
 * setup (SQL statements that create its tables) and handlers per event
 * type. A handler applies one event through es_sql_exec(): SQL with
 * $1..$n parameters and typed binds, the same text on PostgreSQL and on
 * SQLite (`INSERT .. ON CONFLICT (..) DO UPDATE SET ..` works on both).
 * Handlers never see a connection, a transaction or a checkpoint: the
 * worker owns those.
 *
 * A worker (es_projection_worker) reads each partition of each followed
 * type in batches and applies a batch in ONE target transaction, which
 * also moves the partition's checkpoint with a compare-and-set on the
 * previous position and records each touched stream's last accepted
 * version (what a partition reader needs to resume there). Killed
 * anywhere and restarted, every accepted event is applied exactly once.
 * Two workers on the same partition cannot both apply a batch: the loser's
 * transaction rolls back and it reports ES_ECONFLICT.
 *
 * The worker's own tables live in the target under the prefix es_proj_
 * (docs/projections.md): es_proj_projections, es_proj_checkpoints,
 * es_proj_resume, es_proj_heartbeats, es_proj_deadletters, es_proj_leases
 * (with es_projection_worker_options.share). Rows written by handlers carry
 * nothing extra.
 *
 * Targets by URI: sqlite:PATH (a file, WAL) and postgresql://... (libpq;
 * also postgres://). A projection can also be a JSON file
 * (es_projection_load_file), or a keyed fold, one JSON document per key
 * folded by a C function, with no SQL (es_projection_keyed).
 *
 * Threads: a worker is used by one thread at a time. A projection
 * definition is read only and may be shared.
 */
#ifndef ESFOLD_PROJECTION_H
#define ESFOLD_PROJECTION_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"
#include "event.h"
#include "log.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- The SQL interface handlers use ---------------------------------- */

/* What a handler writes through: owned by the worker, valid during the
 * handler call only. */
typedef struct es_sql es_sql;

typedef enum es_sql_type {
    ES_SQL_NULL = 0,
    ES_SQL_TEXT,   /* .text, UTF-8 */
    ES_SQL_INT64,  /* .i64 */
    ES_SQL_DOUBLE, /* .f64 */
    ES_SQL_BOOL,   /* .b: 0 or 1 (SQLite stores 0/1, PostgreSQL a boolean) */
    ES_SQL_JSON    /* .json, sent as its compact text (jsonb/json/text on
                      PostgreSQL, TEXT on SQLite) */
} es_sql_type;

typedef struct es_sql_value {
    es_sql_type type;
    union {
        const char *text;
        int64_t i64;
        double f64;
        int b;
        const json_t *json;
    } v;
} es_sql_value;

/* Value literals: es_sql_value p[] = { ES_SQL_STR(id), ES_SQL_I64(n) }; */
/* Functions rather than compound literals, so that the macros are valid C
 * and C++ alike (and usable in array initializers inside functions). */
static inline es_sql_value es_sql_null_(void)
{
    es_sql_value v;
    v.type = ES_SQL_NULL;
    v.v.i64 = 0;
    return v;
}
static inline es_sql_value es_sql_text_(const char *s)
{
    es_sql_value v;
    v.type = ES_SQL_TEXT;
    v.v.text = s;
    return v;
}
static inline es_sql_value es_sql_i64_(int64_t n)
{
    es_sql_value v;
    v.type = ES_SQL_INT64;
    v.v.i64 = n;
    return v;
}
static inline es_sql_value es_sql_f64_(double d)
{
    es_sql_value v;
    v.type = ES_SQL_DOUBLE;
    v.v.f64 = d;
    return v;
}
static inline es_sql_value es_sql_bool_(int b)
{
    es_sql_value v;
    v.type = ES_SQL_BOOL;
    v.v.b = b ? 1 : 0;
    return v;
}
static inline es_sql_value es_sql_json_(const json_t *j)
{
    es_sql_value v;
    v.type = ES_SQL_JSON;
    v.v.json = j;
    return v;
}

#define ES_SQL_NULLV es_sql_null_()
#define ES_SQL_STR(s) es_sql_text_(s)
#define ES_SQL_I64(n) es_sql_i64_(n)
#define ES_SQL_F64(d) es_sql_f64_(d)
#define ES_SQL_BOOLV(x) es_sql_bool_(x)
#define ES_SQL_JSONV(j) es_sql_json_(j)

/*
 * Runs one statement (no result rows) with params[0..n) bound to $1..$n.
 * A parameter is always bound, never spliced into the text. On PostgreSQL
 * the statement may be sent in a pipeline and its failure then shows when
 * the batch is flushed: the worker retries the batch event by event to
 * find the failing one, so a handler must not rely on reading its writes
 * back (there is no query call) or on a return value of 0 meaning the
 * statement succeeded. Returns 0 or an ES_E* code (ES_EIO: the target
 * refused the statement; its message is in es_sql_errmsg()).
 */
int es_sql_exec(es_sql *sql, const char *statement, const es_sql_value *params,
                size_t n);

/* A handler's own failure: sets the message (printf format) and returns
 * ES_EUSER, so that `return es_sql_fail(sql, "no amount");` reads well. */
int es_sql_fail(es_sql *sql, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The message of the last failed call on sql (borrowed, until the next). */
const char *es_sql_errmsg(const es_sql *sql);

/* ---- Projection definitions ----------------------------------------- */

/*
 * Applies ev (borrowed for the call). user_data is the projection's.
 * Returns 0, or non-zero for a failure (retried, then dead-lettered or
 * stopping the worker, per es_projection_worker_options.on_failure).
 */
typedef int (*es_projection_handler_fn)(es_sql *sql, const es_event *ev,
                                        void *user_data);

typedef struct es_projection_handler {
    const char *event_type;      /* "Deposited"; "*": every type that has
                                    no handler of its own */
    es_projection_handler_fn fn;
} es_projection_handler;

#define ES_PROJECTION_VERSION 1

typedef struct es_projection {
    unsigned struct_version;       /* ES_PROJECTION_VERSION */
    const char *name;              /* [A-Za-z0-9_.-], at most 100 bytes */
    int32_t version;               /* >= 1; the schema of its tables */
    const char *const *follows;    /* aggregate types, NULL-terminated */
    const char *const *setup;      /* SQL creating its tables, NULL-terminated;
                                      run once per target and version */
    const es_projection_handler *handlers; /* ended by {NULL, NULL} */
    void *user_data;               /* handed to every handler */
} es_projection;

/*
 * A projection from a JSON file:
 *   {"name": "balances", "version": 1, "follows": ["account"],
 *    "setup": ["CREATE TABLE IF NOT EXISTS balances (id TEXT PRIMARY KEY,
 *               balance BIGINT NOT NULL)"],
 *    "on": {"Deposited": ["INSERT INTO balances VALUES ($stream_id,
 *           $data.amount) ON CONFLICT (id) DO UPDATE SET balance =
 *           balances.balance + excluded.balance"]}}
 * A statement names event fields as parameters: $stream_id, $version,
 * $type, $occurred_at (ISO 8601 text), $occurred_us, $event_id,
 * $position (the offset), $partition, $aggregate_type, $data (the whole
 * payload as JSON), $data.a.b and $meta.x (a member path: a JSON string
 * binds as text, an integer as int64, a real as double, true/false as
 * bool, null as NULL, an object or array as JSON; an absent member fails
 * the event with a message naming it, unless written $data.a.b? or
 * $meta.x?, which bind NULL for it). Each name is
 * rewritten to a positional bind ($1..$n) when the file is loaded; a value
 * is never spliced into the SQL. "on" may have the key "*" for every type.
 * A keyed fold has "keyed" instead of "setup" and "on" (no SQL at all):
 *   "keyed": {"table": "owner_totals", "key": "$data.owner",
 *             "on": {"Deposited": {"add": {"balance": "$data.amount"},
 *                                  "count": ["deposits"]}}}
 * one JSON document per key in T (key, doc, version), folded with set,
 * add, sub, max, min, count and delete (docs/projections.md, "Keyed
 * folds"); the worker reads and writes a batch's documents at once. A
 * member is a dotted path, "stats.deposits", whose objects are made on
 * the way; a segment "{$data.currency}" is named by the event (a string
 * or an integer):  "add": {"by_currency.{$data.currency}": "$data.amount"}.
 * "delete": true removes the document, "delete": ["m.n"] members of it.
 * *out belongs to the caller (es_projection_free). Returns 0, ES_EINVAL
 * (err says which member, which statement, which name), ES_EIO (the file
 * cannot be read), ES_ENOMEM.
 */
int es_projection_load_file(es_projection **out, const char *path,
                            es_error *err);
/* The same from JSON text (path only names it in messages). */
int es_projection_load_json(es_projection **out, const char *text,
                            const char *path, es_error *err);
/* Frees a projection made by es_projection_load_* or es_projection_keyed.
 * Accepts NULL. */
void es_projection_free(es_projection *p);

/* ---- Keyed folds in C --------------------------------------------------- */

/* What a fold function returns to delete its key's document. */
#define ES_KEYED_DELETE 1

/*
 * Folds ev (borrowed) into doc, the current document of ev's key: a JSON
 * object, {} for a key without one. doc is borrowed for the call: change
 * it in place (json_object_set_new(doc, "balance", json_integer(..)),
 * nested objects included) and keep no reference to it afterwards.
 * Returns 0: doc is stored, its version one more; ES_KEYED_DELETE: the
 * key's row is removed (a later event starts it again from {}); any other
 * value: the event does not fold. Then write why into why[0..why_size)
 * (NUL-terminated; "" gives "the fold function failed (RC)"): whatever
 * the call did to doc is dropped, the event is retried and dead-lettered
 * with that text like any handler failure ("keyed fold T, Deposited
 * event, key K: <why>"), and later events of its stream wait behind it
 * (or the worker stops, per on_failure).
 * Called on the worker's thread in log order per key. The worker may call
 * it again for an event of a batch it redoes event by event (after a
 * failure), on a document read back from the target: the result must
 * depend on doc and ev only.
 */
typedef int (*es_keyed_fold_fn)(json_t *doc, const es_event *ev, char *why,
                                size_t why_size, void *user_data);

/*
 * Writes the key of ev (borrowed) into out[0..out_size), non-empty and
 * NUL-terminated (out_size is at least ES_STREAM_ID_MAX + 1). Returns 0,
 * or non-zero: ev has no key and is dead-lettered ("keyed fold T: the key
 * function gave no key"). Same thread and rule as es_keyed_fold_fn.
 */
typedef int (*es_keyed_key_fn)(char *out, size_t out_size, const es_event *ev,
                               void *user_data);

#define ES_KEYED_PROJECTION_VERSION 1

/* A keyed fold compiled into a program (docs/projections.md, "Keyed folds
 * in C"): the table, the key and a fold function instead of SQL. */
typedef struct es_keyed_projection {
    unsigned struct_version;      /* ES_KEYED_PROJECTION_VERSION */
    const char *name;             /* as es_projection.name */
    int32_t version;              /* >= 1 */
    const char *const *follows;   /* aggregate types, NULL-terminated */
    const char *table;            /* T (key, doc, version), created by the
                                     worker; [A-Za-z_][A-Za-z0-9_]*, at most
                                     60 bytes, not es_proj_... */
    const char *key;              /* an event field of the JSON-file form:
                                     "$stream_id", "$data.owner", ...; or
                                     NULL and key_fn */
    es_keyed_key_fn key_fn;       /* the key when key is NULL */
    const char *const *on;        /* the event types folded, NULL-terminated
                                     (others are skipped); NULL: every type
                                     of the followed aggregates */
    es_keyed_fold_fn fold;        /* required */
    void *user_data;              /* handed to fold and key_fn */
} es_keyed_projection;

#define ES_KEYED_PROJECTION_INIT \
    { ES_KEYED_PROJECTION_VERSION, NULL, 1, NULL, NULL, NULL, NULL, NULL, \
      NULL, NULL }

/*
 * A projection from def (borrowed; everything is copied but user_data,
 * which must outlive the projection): a keyed fold with the same table,
 * batch path (one read and one write-back of a batch's documents, COPY
 * and one merge on PostgreSQL), errors, dead letters and rebuilds as the
 * "keyed" JSON form. Put it in es_app.projections or hand it to
 * es_projection_worker_open / es_projection_rebuild. *out belongs to the
 * caller (es_projection_free). Returns 0, ES_EINVAL (err says which
 * member), ES_ENOMEM.
 */
int es_projection_keyed(es_projection **out, const es_keyed_projection *def,
                        es_error *err);

/* ---- Workers ---------------------------------------------------------- */

typedef struct es_projection_worker es_projection_worker;

/* What a handler failure that outlasts its retries does. */
typedef enum es_projection_on_failure {
    ES_PROJECTION_DEAD_LETTER = 0, /* dead-letter the event; later events of
                                      its stream wait behind it */
    ES_PROJECTION_STOP = 1         /* roll back the batch and fail */
} es_projection_on_failure;

/* How the workers of one projection share its partitions
 * (docs/projections.md, "Scale-out"). */
typedef enum es_projection_share {
    ES_PROJECTION_SHARE_NONE = 0,  /* every worker steps over every
                                      partition; the checkpoint CAS keeps
                                      overlapping workers exactly once */
    ES_PROJECTION_SHARE_AUTO = 1,  /* a consumer group on a log that has
                                      them (Kafka: group
                                      "esfold-projection-<name>", for
                                      assignment only), else the lease */
    ES_PROJECTION_SHARE_LEASE = 2  /* one lease per projection in the
                                      target (es_proj_leases): its holder
                                      does all the work, another takes over
                                      when it is not renewed in time */
} es_projection_share;

typedef struct es_projection_worker_options {
    unsigned version;            /* ES_PROJECTION_WORKER_OPTIONS_VERSION */
    size_t batch_size;           /* events per batch and partition (0: 1000;
                                    a keyed fold: events read at a time,
                                    0: 10,000, up to 16 reads a batch) */
    int max_attempts;            /* tries of a failing handler (<= 0: 3) */
    int backoff_ms;              /* first wait between tries, doubled
                                    (< 0: none; 0: 10 ms) */
    es_projection_on_failure on_failure;
    const char *worker_id;       /* in the heartbeat row (NULL: host:pid) */
    int pipeline;                /* PostgreSQL: 1 (default) sends a batch's
                                    statements in pipeline mode; 0 one by
                                    one */
    /* since version 2 */
    es_projection_share share;   /* default ES_PROJECTION_SHARE_NONE */
    int lease_ms;                /* the lease's duration, renewed each step
                                    (SHARE_LEASE); on Kafka the group's
                                    session.timeout.ms (0: 10000) */
} es_projection_worker_options;

/* Version 1 (without share and lease_ms) is still accepted. */
#define ES_PROJECTION_WORKER_OPTIONS_VERSION 2
#define ES_PROJECTION_WORKER_OPTIONS_INIT \
    { ES_PROJECTION_WORKER_OPTIONS_VERSION, 0, 0, 0, ES_PROJECTION_DEAD_LETTER, \
      NULL, 1, ES_PROJECTION_SHARE_NONE, 0 }

/*
 * A worker of proj (borrowed: it must outlive the worker) reading log
 * (borrowed) into the target at target_uri (NULL: $ESFOLD_TARGET). Opening
 * connects, creates the es_proj_ tables when missing, and runs proj's
 * setup when the target does not have this projection yet (in one
 * transaction with its es_proj_projections row). A target that holds
 * another version of the projection is ES_ECONFLICT (rebuild it: the
 * message says how).
 * opts may be NULL. On failure *out is still set when a handle could be
 * made (es_errmsg tells why); close it either way.
 * Returns 0, ES_EINVAL, ES_EIO, ES_ECONFLICT, ES_ENOMEM.
 */
int es_projection_worker_open(es_projection_worker **out, es_log *log,
                              const es_projection *proj, const char *target_uri,
                              const es_projection_worker_options *opts);
void es_projection_worker_close(es_projection_worker *w); /* accepts NULL */

/* What a step did. */
typedef struct es_projection_step {
    int64_t applied;      /* events handed to handlers and committed */
    int64_t skipped;      /* events with no handler (checkpoint moved) */
    int64_t dead_lettered;/* events put in es_proj_deadletters */
    int64_t retried;      /* dead letters applied by a retry */
    int64_t batches;      /* transactions committed */
    int caught_up;        /* 1: every partition this worker owns was at
                             its head, and it owns some (a worker waiting
                             for a lease or an assignment is not) */
} es_projection_step;

/*
 * One pass: a batch of each partition of each followed type that the
 * worker owns (and the dead letters marked for retry), each in its own
 * transaction, and the heartbeat. Before each partition the worker renews
 * its lease or serves its consumer group (a revocation comes between
 * batches, never inside one); a partition newly owned goes on from the
 * checkpoint in the target. Adds to *out (may be NULL). Returns 0; ES_ECONFLICT when
 * another worker moved a checkpoint first (nothing of that batch is
 * applied; the next step goes on from the new checkpoint); ES_EUSER /
 * ES_EIO when a handler failed and on_failure is ES_PROJECTION_STOP, or
 * the target failed (message: projection, event type, stream, version and
 * the target's words); a log read error.
 */
int es_projection_worker_step(es_projection_worker *w, es_projection_step *out);

/*
 * Sharing (es_projection_worker_options.share): 1 when the worker owns
 * (aggregate_type, partition) now, as of its last step (with SHARE_NONE:
 * every partition of a followed type).
 */
int es_projection_worker_owns(const es_projection_worker *w,
                              const char *aggregate_type, int32_t partition);
/* Why the worker owns nothing now ("waiting for the lease held by X until
 * T", "waiting for a partition assignment in group G"), or NULL when it
 * owns some. Borrowed until the next step. */
const char *es_projection_worker_waiting(const es_projection_worker *w);

/*
 * Steps until *stop becomes non-zero (checked between batches: set it from
 * a signal handler), or, with until_caught_up, until a step finds every
 * partition at its head. Between steps that found nothing it sleeps
 * (1 ms, doubling to 100 ms). ES_ECONFLICT from a step is not an error
 * here (the run goes on from the checkpoint it found), nor is ES_EIO (a
 * lost connection: the run waits, 50 ms doubling to 5 s, and steps again,
 * reconnecting; es_errmsg(w) says what failed). progress, when
 * not NULL, is called after each step with the totals so far; non-zero
 * stops the run (ES_EUSER).
 */
typedef int (*es_projection_progress_cb)(const es_projection_step *total,
                                         void *user_data);
int es_projection_worker_run(es_projection_worker *w, volatile int *stop,
                             int until_caught_up, es_projection_step *total,
                             es_projection_progress_cb progress,
                             void *user_data);

/* ---- Dead letters ----------------------------------------------------- */

/*
 * A dead letter: an event a handler failed on (status "failed", with the
 * error and the attempts), or one parked behind such an event of its
 * stream ("waiting"). "retry" marks a failed one an operator retried (the
 * worker applies it and the waiting ones behind it, in version order, at
 * its next batch of that partition, and deletes them); "skipped" one an
 * operator skipped (kept for the record; the waiting ones go on).
 */
typedef struct es_projection_dead_letter {
    const char *aggregate_type;
    const char *stream_id;
    int64_t version;
    es_position position;
    const char *event_type;
    const char *status;   /* "failed", "waiting", "retry", "skipped" */
    int64_t attempts;
    const char *error;
    const char *event;    /* the event as JSON text (esfold/event.h) */
    int64_t updated_us;
} es_projection_dead_letter;

/* Called per dead letter (borrowed for the call); non-zero stops. */
typedef int (*es_projection_dead_letter_cb)(const es_projection_dead_letter *dl,
                                            void *user_data);

/*
 * Lists the dead letters of projection `name` in the target (NULL URI:
 * $ESFOLD_TARGET), by type, stream and version. Returns 0, ES_EUSER,
 * ES_EINVAL, ES_EIO (err says why).
 */
int es_projection_dead_letters(const char *target_uri, const char *name,
                               es_projection_dead_letter_cb cb, void *user_data,
                               es_error *err);

/*
 * Marks the failed dead letters of `name` (of stream_id only, when not
 * NULL) for retry (es_projection_dead_letters_retry) or as skipped
 * (es_projection_dead_letters_skip: the event is never applied, the events
 * waiting behind it are). *count (may be NULL) gets how many were marked.
 * A running worker picks them up at its next batch of their partition.
 */
int es_projection_dead_letters_retry(const char *target_uri, const char *name,
                                     const char *stream_id, int64_t *count,
                                     es_error *err);
int es_projection_dead_letters_skip(const char *target_uri, const char *name,
                                    const char *stream_id, int64_t *count,
                                    es_error *err);

/* ---- Targets ---------------------------------------------------------- */

/* The target of a log that is not a SQLite file, when none is given. */
#define ES_PROJECTION_DEFAULT_TARGET "sqlite:./esfold-projections.db"

/*
 * The target a program uses for the log at log_uri when it was given
 * none: $ESFOLD_TARGET when set, else for a log sqlite:DIR/NAME.db the
 * file next to it, sqlite:DIR/NAME.projections.db (a file of its own, so
 * that the worker's write transactions never hold the log's writers),
 * else ES_PROJECTION_DEFAULT_TARGET. *out is freed with es_free().
 * Returns 0, ES_EINVAL, ES_ENOMEM.
 */
int es_projection_default_target(char **out, const char *log_uri);

/* ---- Read your writes ------------------------------------------------- */

/*
 * A waiter: one target connection kept open for the waits of a program
 * that appends and then queries (a request handler), so that a wait costs
 * a query per poll and no connection. Used by one thread at a time; open
 * one per thread. A wait whose connection broke (ES_EIO) closes it; the
 * next wait connects again.
 */
typedef struct es_projection_waiter es_projection_waiter;

typedef struct es_projection_waiter_options {
    unsigned version;  /* ES_PROJECTION_WAITER_OPTIONS_VERSION */
    int max_poll_ms;   /* the longest sleep between two polls: they start
                          at 1 ms and double up to it (<= 0: 50) */
} es_projection_waiter_options;

#define ES_PROJECTION_WAITER_OPTIONS_VERSION 1
#define ES_PROJECTION_WAITER_OPTIONS_INIT \
    { ES_PROJECTION_WAITER_OPTIONS_VERSION, 0 }

/*
 * Opens a waiter on the target at target_uri (NULL: $ESFOLD_TARGET),
 * connecting at once. opts may be NULL. *out belongs to the caller
 * (es_projection_waiter_close); on failure it is still set when a handle
 * could be made (es_errmsg says why): close it either way.
 * Returns 0, ES_EINVAL, ES_EIO, ES_ENOMEM.
 */
int es_projection_waiter_open(es_projection_waiter **out, const char *target_uri,
                              const es_projection_waiter_options *opts);
void es_projection_waiter_close(es_projection_waiter *wt); /* accepts NULL */

/*
 * Waits until projection `name` has applied the event at pos of
 * aggregate_type (its checkpoint for pos.partition is past pos.offset, the
 * position an append returned; a dead-lettered event counts as passed),
 * for at most timeout_ms (< 0: forever; 0: one look), polling.
 * Returns 0; ES_ETIMEDOUT (es_errmsg says where the checkpoint got to:
 * "projection balances has not applied account p1@41 after 200 ms
 * (checkpoint 12)"; a projection the target does not have is at 0);
 * ES_EINVAL; ES_EIO (the target failed, or no worker ever made the es_proj_
 * tables there; es_errmsg says what it said).
 */
int es_projection_waiter_wait(es_projection_waiter *wt, const char *name,
                              const char *aggregate_type, es_position pos,
                              int timeout_ms);

/*
 * The same in one call: opens a waiter, waits, closes it (a connection per
 * call: a program that waits often keeps a waiter instead). err gets the
 * message. Returns what es_projection_waiter_open / _wait return.
 */
int es_projection_wait(const char *target_uri, const char *name,
                       const char *aggregate_type, es_position pos,
                       int timeout_ms, es_error *err);

#ifdef __cplusplus
}
#endif
#endif

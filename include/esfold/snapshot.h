/*
 * esfold/snapshot.h - snapshots: the folded state of a stream at a version,
 * kept so that loading costs the tail of the stream, not its history.
 *
 * A snapshot holds the aggregate type, the stream id, the version it was
 * folded to, the log position and the id of the event at that version, the
 * occurred-at time of that event, the latest occurred-at among all the
 * folded events (its horizon), the state schema, the encoded state (JSON
 * text from the type's encode()) and a checksum (CRC-32C) over all of it.
 *
 * Stores are chosen by URI at run time:
 *   sqlite:PATH              a table in a SQLite file (may be the log's file)
 *   sqlite::memory:          a private in-memory store (tests)
 *   postgresql://...         a table in PostgreSQL (a libpq URI; also
 *                            postgres://), created on first use
 *   kafka://host:port?prefix=P   a compacted topic P<type>.snapshots per
 *                            aggregate type, key = stream id (the log's URI
 *                            works); compaction keeps each stream's newest
 *
 * With a repository: es_repo_add_snapshots() attaches a store and a policy
 * to an aggregate type. From then on es_repo_load() and es_repo_execute()
 * start from the newest usable snapshot at or below the bound and fold the
 * rest, and the policy takes new snapshots. es_repo_replay() (the audit
 * trail, the full replay) always folds from origin.
 *
 * A snapshot is never trusted: a bad checksum, another state schema (without
 * a state upcaster that reaches the current one), a state decode() refuses,
 * or a snapshot the log does not contain (its event id is not the event at
 * its version: the log was restored from an older backup or rewritten) is
 * skipped, reported through the repository's warnings (es_repo_warnings),
 * and the load folds from an older snapshot or from origin. The state is
 * always the one a full replay gives.
 *
 * Threads: a store handle is used by one thread at a time, and so is a
 * repository with the stores attached to it.
 */
#ifndef ESFOLD_SNAPSHOT_H
#define ESFOLD_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "aggregate.h"
#include "error.h"
#include "event.h"
#include "log.h"
#include "repo.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "crc32c:" and 8 hex digits, with the NUL. */
#define ES_SNAPSHOT_CHECKSUM_BUFSZ 16

typedef struct es_snapshot {
    const char *aggregate_type; /* "account" */
    const char *stream_id;      /* "acct-42" */
    int64_t version;            /* the state folds events 1..version (>= 1) */
    es_position position;       /* log position of the event at version */
    const char *event_id;       /* id of the event at version */
    int64_t time_us;            /* occurred-at of the event at version */
    int64_t horizon_us;         /* latest occurred-at among events
                                   1..version (>= time_us; INT64_MAX:
                                   unknown, never used for an as-of load) */
    int32_t state_schema;       /* the type's state_schema when taken */
    const char *state;          /* the encoded state: JSON text */
    const char *checksum;       /* "crc32c:xxxxxxxx"; see es_snapshot_save */
    int64_t taken_us;           /* when it was taken (0 on input = now) */
    size_t state_size;          /* set by stores: the bytes the store holds
                                   for state (0: not known, and on input).
                                   Any other value than strlen(state)
                                   (bytes hidden after a NUL) makes the
                                   snapshot corrupt: what is checked is
                                   what is stored. Set it to 0 when you
                                   change state. */
} es_snapshot;

/* Frees a snapshot esfold returned through **out. Accepts NULL. */
void es_snapshot_free(es_snapshot *snap);

/*
 * The checksum of snap (every field but checksum itself) into out.
 * Returns 0, or ES_EINVAL when a string field is NULL.
 */
int es_snapshot_checksum(char out[ES_SNAPSHOT_CHECKSUM_BUFSZ],
                         const es_snapshot *snap);

/*
 * Checks that snap is whole: names, version >= 1, a state, and a checksum
 * that matches. Returns 0 or ES_ECORRUPT with err->text saying what is
 * wrong ("checksum mismatch: stored crc32c:..., computed crc32c:...").
 */
int es_snapshot_verify(const es_snapshot *snap, es_error *err);

/*
 * Makes a snapshot of agg, which folded events 1..version of its stream
 * (version >= 1), the last of them with id last_event_id. horizon_us is the
 * latest occurred-at among the folded events; pass INT64_MAX when it is
 * not known (the snapshot is then not used by as-of-time loads). The state
 * is encoded with the type's encode() (compact, sorted keys). *out belongs
 * to the caller (es_snapshot_free). Returns 0, ES_EINVAL (version 0, no
 * encoder, encode() failed: err says which), ES_ENOMEM.
 * This is how a program that keeps aggregates in memory (a processor that
 * owns its partitions) snapshots them; repositories do it themselves.
 */
int es_snapshot_make(es_snapshot **out, const es_aggregate *agg,
                     const char *last_event_id, int64_t horizon_us,
                     es_error *err);

/* ---- Stores --------------------------------------------------------------- */

typedef struct es_snapshot_store es_snapshot_store;

/*
 * Opens the store at uri (NULL: $ESFOLD_SNAPSHOTS). On failure *out is still
 * set when a handle could be made, so that es_errmsg(*out) tells why; close
 * it either way. A PostgreSQL store connects lazily: opening it never
 * fails for an unreachable server (the first operation does, and later
 * ones reconnect). Returns 0, ES_EINVAL (bad or missing URI), ES_EIO,
 * ES_ECORRUPT, ES_ENOMEM.
 */
int es_snapshot_store_open(es_snapshot_store **out, const char *uri);

/*
 * The snapshot store a program uses for the log at log_uri when it was
 * given none: $ESFOLD_SNAPSHOTS when set, else the log's own SQLite file
 * (without the log's parameters; sqlite::memory: stays a private in-memory
 * store), else the log's Kafka cluster and prefix (topics
 * <prefix><type>.snapshots). *out is freed with es_free(). Returns 0,
 * ES_ENOTFOUND (no default for this kind of log), ES_EINVAL, ES_ENOMEM.
 */
int es_snapshot_default_uri(char **out, const char *log_uri);

/* Closes the store. Accepts NULL. */
void es_snapshot_store_close(es_snapshot_store *store);

/* The URI the store was opened with, passwords, secrets and tokens shown as
 * *** as es_log_uri shows them (borrowed, lives as long as store). */
const char *es_snapshot_store_uri(const es_snapshot_store *store);

/*
 * Stores snap (borrowed), replacing a snapshot of the same type, stream and
 * version. snap->checksum NULL: computed here; otherwise stored as given
 * (copying snapshots between stores keeps their checksums, and a wrong one
 * is caught on load). taken_us 0 = now. Returns 0, ES_EINVAL, ES_EIO.
 */
int es_snapshot_save(es_snapshot_store *store, const es_snapshot *snap);

/*
 * Called for each snapshot listed, newest (highest version) first; snap is
 * borrowed for the call. Return 0 to go on, non-zero to stop (the listing
 * then returns ES_EUSER).
 */
typedef int (*es_snapshot_cb)(const es_snapshot *snap, void *user_data);

/*
 * Lists the snapshots of one stream that are at or below bound, newest
 * first: ES_RANGE_ALL for all of them, ES_RANGE_TO_VERSION(n) for versions
 * <= n, ES_RANGE_AS_OF(t) for those whose horizon is <= t (every event they
 * folded happened at or before t). Snapshots are listed as stored: check
 * them with es_snapshot_verify. Returns 0, ES_EUSER, ES_EINVAL, ES_EIO.
 */
int es_snapshot_list(es_snapshot_store *store, const char *aggregate_type,
                     const char *stream_id, es_range bound,
                     es_snapshot_cb cb, void *user_data);

/*
 * The newest snapshot of a stream at or below bound, as stored (not
 * verified). *out belongs to the caller (es_snapshot_free). Returns 0,
 * ES_ENOTFOUND (none), ES_EINVAL, ES_EIO.
 */
int es_snapshot_load(es_snapshot_store *store, es_snapshot **out,
                     const char *aggregate_type, const char *stream_id,
                     es_range bound);

/*
 * Deletes all but the newest `keep` (>= 0) snapshots of every stream of
 * aggregate_type (NULL: of every type) or of the one stream stream_id (NULL:
 * every stream; a stream id needs a type). *removed (may be NULL) gets how
 * many were deleted. On Kafka, compaction keeps the newest of each stream
 * and keep >= 1 removes nothing here; keep 0 writes tombstones. Returns 0,
 * ES_EINVAL, ES_EIO.
 */
int es_snapshot_prune(es_snapshot_store *store, int64_t *removed,
                      const char *aggregate_type, const char *stream_id,
                      int64_t keep);

/* ---- Policies ------------------------------------------------------------- */

/*
 * When a repository takes snapshots of an aggregate type by itself. Both
 * rules may be on; both 0 ("none") means loads use snapshots but only
 * es_repo_snapshot() (and `esfold snapshot take`) makes them.
 */
typedef struct es_snapshot_policy {
    unsigned version;    /* ES_SNAPSHOT_POLICY_VERSION */
    int64_t every;       /* > 0: whenever a stream reaches or passes a
                            multiple of `every` since its newest snapshot
                            (seen after an execute's append, or by a load
                            to the end) */
    int64_t folded_over; /* > 0: after a load to the end that folded more
                            than this many events */
} es_snapshot_policy;

#define ES_SNAPSHOT_POLICY_VERSION 1
#define ES_SNAPSHOT_POLICY_INIT { ES_SNAPSHOT_POLICY_VERSION, 0, 0 }

/*
 * 1 when policy wants a snapshot of a stream now at `version`, whose newest
 * snapshot is at base_version (0: none), after `folded` events were folded
 * by a load (0 after an append). 0 otherwise, or for a NULL policy.
 */
int es_snapshot_policy_due(const es_snapshot_policy *policy,
                           int64_t base_version, int64_t version,
                           int64_t folded);

/* ---- With a repository ---------------------------------------------------- */

/*
 * Attaches store (borrowed: it must outlive repo, or be detached first by
 * attaching NULL) to aggregate type `type` (borrowed, usually static) in
 * repo, with policy (copied; NULL: ES_SNAPSHOT_POLICY_INIT). Attaching
 * again replaces the earlier store and policy of that type. The type must
 * have encode, decode and state_schema >= 1. Returns 0, ES_EINVAL (with
 * es_errmsg(repo) saying why), ES_ENOMEM.
 *
 * Loads of that type then use snapshots; every snapshot that is skipped and
 * every snapshot that could not be saved is reported through
 * es_repo_warnings(repo) and the repository's warning callback. A failed
 * save never fails the load or execute that took it.
 */
int es_repo_add_snapshots(es_repo *repo, const es_aggregate_type *type,
                          es_snapshot_store *store,
                          const es_snapshot_policy *policy);

/*
 * Loads type's stream stream_id to its end (from its newest usable snapshot)
 * and saves a snapshot of it now, whatever the policy. The type must have a
 * store attached. *out (may be NULL) gets the snapshot saved (es_snapshot_
 * free). Returns 0; ES_ENOTFOUND when the stream has no events; ES_EINVAL
 * (no store attached); a load error; or the store's error (ES_EIO) with
 * es_errmsg(repo) saying why.
 */
int es_repo_snapshot(es_repo *repo, es_snapshot **out,
                     const es_aggregate_type *type, const char *stream_id);

#ifdef __cplusplus
}
#endif
#endif

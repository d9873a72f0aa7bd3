/*
 * core/log_backend.h - the interface a log backend implements.
 *
 * core/log.c checks arguments, validates and completes the events of an
 * append (ids, times, schema), and applies the acceptance rule; a backend
 * only stores and reads. Each backend lives in adapters/<name>/log.c and
 * exports one `const es__log_backend`. The URI scheme picks it
 * (adapters/log_open.c).
 *
 * Every function gets the es_log handle it belongs to, to set messages on
 * with es__fail(&log->h, ...). `self` is the backend's own state made by
 * open.
 */
#ifndef ESFOLD_CORE_LOG_BACKEND_H
#define ESFOLD_CORE_LOG_BACKEND_H

#include "esfold/log.h"
#include "internal.h"

struct es_log {
    es__handle h;
    char *uri;
    const struct es__log_backend *backend;
    void *self;
    int64_t conflict_actual; /* es__append_conflict's, for es_log_append */
};

/* Where an event id is in the log, as a backend's lookup finds it. */
typedef struct es__id_place {
    char agg_type[ES_NAME_MAX + 1];
    char stream_id[ES_STREAM_ID_MAX + 1];
    char commit_id[ES_NAME_MAX + 1]; /* "" when the backend does not know */
    int64_t version;
    int32_t commit_size;
    int32_t commit_index;            /* -1 when not known */
    es_position position;
} es__id_place;

/* Looks up an event id for the rules below: 0 with *found 0 or 1 (and *out
 * filled), or a code with the log's message set. */
typedef int (*es__id_lookup_fn)(void *ctx, const char *id, es__id_place *out,
                                int *found);

/*
 * The rules every backend's append obeys, written once so that every log
 * rejects the same inputs with the same words (CONVENTIONS: one copy of
 * each rule).
 *
 * es__append_conflict: the version conflict. Sets the message ("appending
 * to T/S: version conflict: expected 6, stream is at 7") and the actual
 * version es_log_append hands back (es_append_result.actual_version), and
 * returns ES_ECONFLICT.
 *
 * es__append_check_ids: the retry of a commit. When the commit's first id
 * is in the log, it is either a retry of that whole earlier commit (same
 * stream, the same ids in the same order at consecutive versions, nothing
 * more or less): *dup = 1 and out describes the earlier append; or ids are
 * reused: ES_EINVAL naming the id and where it lives. all_ids: also look
 * up the other ids when the first is new (a backend without a unique
 * index to refuse them at insert time). Returns 0 (with *dup 0: the ids
 * are new), ES_EINVAL, or lookup's error.
 *
 * es__append_id_taken: the message of event i's id being in the log at
 * `where` already; returns ES_EINVAL.
 */
int es__append_conflict(es_log *log, const char *agg, const char *sid,
                        int64_t expected, int64_t actual);
int es__append_check_ids(es_log *log, es_append_result *out, const char *agg,
                         const char *sid, const es_event *evs, size_t n,
                         int all_ids, es__id_lookup_fn lookup, void *ctx,
                         int *dup);
int es__append_id_taken(es_log *log, const char *agg, const char *sid,
                        size_t i, const char *id, const es__id_place *where);

/*
 * Where event id is in aggregate_type's log, looked up in the partition
 * of stream_id (where the events of a command on stream_id are): 0 with
 * *found 0 or 1, or a code with es_errmsg(log) set. ES_EINVAL on a
 * backend without find_id. For idempotent commands (core/repo.c).
 */
int es__log_find_id(es_log *log, es__id_place *out, int *found,
                    const char *aggregate_type, const char *stream_id,
                    const char *id);

typedef struct es__log_backend {
    const char *name; /* "sqlite", "kafka" */

    /* Opens the backend at uri (the whole URI, scheme included). On
     * failure sets log's message and returns a code; *self is then
     * ignored. */
    int (*open)(es_log *log, void **self, const char *uri);
    void (*close)(void *self);

    /*
     * Appends events[0..n) (complete: ids, types, schema, times, payload,
     * commit id and size set; version, aggregate_type, stream_id and
     * position not) to the stream with the expected-version rule and
     * idempotency of es_log_append. Fills out.
     */
    int (*append)(es_log *log, void *self, es_append_result *out,
                  const char *aggregate_type, const char *stream_id,
                  int64_t expected, const es_event *events, size_t n);

    /* Reads a stream in version order; opts is complete (never NULL).
     * Delivers only accepted events. */
    int (*read_stream)(es_log *log, void *self, const char *aggregate_type,
                       const char *stream_id, const es_read_options *opts,
                       es_event_cb cb, void *user_data);

    /* Reads a partition from an offset; see es_log_read_partition. */
    int (*read_partition)(es_log *log, void *self, int64_t *next_offset,
                          const char *aggregate_type, int32_t partition,
                          int64_t from_offset, size_t max_events,
                          es_event_cb cb, void *user_data);

    /* Optional (NULL: read_partition serves): read_partition without the
     * envelope's text fields a reader did not ask for: the event id, the
     * correlation and causation ids, the commit id and the metadata are
     * NULL (es__log_read_partition_lean). Only for a backend whose every
     * stored event is accepted by construction (no read_partition_seeded),
     * since judging a record needs them. */
    int (*read_partition_lean)(es_log *log, void *self, int64_t *next_offset,
                               const char *aggregate_type, int32_t partition,
                               int64_t from_offset, size_t max_events,
                               es_event_cb cb, void *user_data);

    /* Optional (NULL: read_partition serves, every stored event being
     * accepted by construction): see es_log_read_partition_seeded. */
    int (*read_partition_seeded)(es_log *log, void *self, int64_t *next_offset,
                                 const char *aggregate_type, int32_t partition,
                                 int64_t from_offset, size_t max_events,
                                 es_seed_fn seed, void *seed_data,
                                 es_event_cb cb, void *user_data);

    int (*partition_count)(es_log *log, void *self, int32_t *out,
                           const char *aggregate_type);
    int (*head)(es_log *log, void *self, int64_t *out,
                const char *aggregate_type, int32_t partition);
    int (*types)(es_log *log, void *self, es_name_cb cb, void *user_data);
    /* Optional (NULL: core/streams.c reads every partition): the streams
     * of a type, in byte order of ids; see es_log_streams. */
    int (*streams)(es_log *log, void *self, const char *aggregate_type,
                   es_stream_cb cb, void *user_data);

    /* Optional (NULL: every stored event is accepted by construction, and
     * core/log.c serves es_log_scan_partition from read_partition): reads
     * a partition delivering every record with its verdict; see
     * es_log_scan_partition. */
    int (*scan_partition)(es_log *log, void *self, int64_t *next_offset,
                          const char *aggregate_type, int32_t partition,
                          int64_t from_offset, size_t max_events,
                          es_verdict_cb cb, void *user_data);

    /* Optional (NULL: nothing to check): es_log_check. */
    int (*check)(es_log *log, void *self, es_check_cb cb, void *user_data);

    /* Where an event id is, in the partition of stream_id; see
     * es__log_find_id. Required for idempotent commands. */
    int (*find_id)(es_log *log, void *self, const char *aggregate_type,
                   const char *stream_id, const char *id, es__id_place *out,
                   int *found);
    /*
     * Optional, all four or none (NULL: the log has no consumer groups;
     * projection workers share by a lease in their target). group_open
     * joins the consumer group group_id as a member subscribed to the
     * aggregate types types[] (NULL-terminated), for partition assignment
     * only: it never fetches or commits offsets. session_ms: how long a
     * silent member keeps its partitions. *out is for the other three.
     * group_poll serves the group's protocol (rebalances) without waiting;
     * *changed = 1 when the assignment changed since the last poll.
     * group_owns: 1 when (agg, partition) is assigned to this member now.
     * group_close leaves the group (its partitions go to the others).
     */
    int (*group_open)(es_log *log, void *self, void **out, const char *group_id,
                      const char *const *types, int session_ms);
    int (*group_poll)(es_log *log, void *group, int *changed);
    int (*group_owns)(void *group, const char *agg, int32_t partition);
    void (*group_close)(void *group);
} es__log_backend;

/* Opens a log on an explicit backend (adapters/log_open.c picks it). */
int es__log_open_backend(es_log **out, const es__log_backend *backend,
                         const char *uri);

#endif

/*
 * esfold/log.h - the event log: append commits, read streams and partitions.
 *
 * A log holds streams of events grouped by aggregate type (a Kafka topic, or
 * a category in the SQLite file). Each aggregate type has a fixed number of
 * partitions; a stream lives in partition murmur2(stream_id) % count.
 *
 * The backend is chosen by URI at run time:
 *   sqlite:PATH              a SQLite file (created on first use)
 *   sqlite::memory:          a private in-memory log
 *   sqlite:PATH?partitions=N partition count for a new file (default 4)
 *   sqlite:PATH?mode=ro      read-only: the file must be an esfold log,
 *                            nothing in it is created or changed
 *   kafka://host:port[,host:port]?prefix=bank.&partitions=N&kafka.NAME=VALUE
 *
 * Threads: a handle is used by one thread at a time. Two handles (in one
 * process or several) may share one log; optimistic concurrency keeps them
 * correct.
 */
#ifndef ESFOLD_LOG_H
#define ESFOLD_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "accept.h"
#include "error.h"
#include "event.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_log es_log;

/* The URI used when none is given: $ESFOLD_LOG, else this. */
#define ES_LOG_DEFAULT_URI "sqlite:./esfold.db"

/* Expected versions for an append (any other value >= 1 is exact). */
#define ES_EXPECT_ANY (-1)
#define ES_EXPECT_NO_STREAM 0

/*
 * Opens the log at uri (NULL: $ESFOLD_LOG, else ES_LOG_DEFAULT_URI).
 * On failure *out is still set when a handle could be made, so that
 * es_errmsg(*out) tells why; close it with es_log_close() either way.
 * Returns 0, ES_EINVAL (bad URI), ES_EIO, ES_ECORRUPT (not an esfold log,
 * or a newer schema), ES_ENOMEM.
 */
int es_log_open(es_log **out, const char *uri);

/* Closes the log. Accepts NULL. */
void es_log_close(es_log *log);

/* The URI the log was opened with, passwords, secrets and tokens shown as
 * *** (borrowed, lives as long as the log). */
const char *es_log_uri(const es_log *log);

/* What an append did. */
typedef struct es_append_result {
    int64_t first_version; /* version of the commit's first event */
    int64_t version;       /* the stream's version after the commit */
    es_position first;     /* log position of the first event */
    es_position last;      /* log position of the last event */
    int duplicate;         /* 1: these event ids were already in the log;
                              nothing was written, the fields above describe
                              the earlier append */
    int64_t actual_version; /* the stream's version the append found: on
                               ES_ECONFLICT the version it is at (0: no
                               stream), the conflict as data; on success
                               first_version - 1 (a duplicate: the stream's
                               version before the earlier append) */
    /* Fields are only ever added at the end. */
} es_append_result;

/*
 * Appends a commit of 1 to ES_COMMIT_MAX_EVENTS events (esfold/accept.h;
 * the same bound on every log) to one stream, atomically: all of them
 * count, or none. `expected` is ES_EXPECT_ANY, ES_EXPECT_NO_STREAM (0: the
 * stream must not exist) or the exact current version of the stream.
 *
 * From each input event esfold uses type, payload, meta, schema (0 = 1),
 * id (NULL = a new UUIDv7), occurred_us (0 = now), correlation_id and
 * causation_id; aggregate_type, stream_id, version and position are
 * assigned. The events are borrowed.
 *
 * Appending event ids that are already in the stream (a retry of a commit
 * that succeeded) writes nothing and reports the earlier append with
 * out->duplicate = 1. Ids that are in the log elsewhere are ES_EINVAL.
 *
 * Returns 0; ES_ECONFLICT ("appending to account/acct-42: version conflict:
 * expected 6, stream is at 7", the same words on every log, and
 * out->actual_version 7: only that field is set on a conflict); ES_EINVAL
 * for a malformed event (naming its index and field); ES_EIO (nothing of
 * the commit counts); ES_EUNKNOWN (Kafka: the outcome could not be learnt
 * in time; the commit may or may not count: append the same events, same
 * ids, again to settle it).
 */
int es_log_append(es_log *log, es_append_result *out,
                  const char *aggregate_type, const char *stream_id,
                  int64_t expected, const es_event *events, size_t n);

/* Where a read stops. */
typedef enum es_range_kind {
    ES_RANGE_END = 0,     /* the end of the stream */
    ES_RANGE_VERSION = 1, /* after version `version` */
    ES_RANGE_TIME = 2     /* before the first event with occurred_us > time_us */
} es_range_kind;

typedef struct es_range {
    es_range_kind kind;
    int64_t version;
    int64_t time_us;
} es_range;

/* A range of the given kind; ES_RANGE_ALL, ES_RANGE_TO_VERSION(v) and
 * ES_RANGE_AS_OF(t) are its usual forms. A function rather than a compound
 * literal, so that the macros are valid C and C++ alike. */
static inline es_range es_range_make(es_range_kind kind, int64_t version,
                                     int64_t time_us)
{
    es_range r;
    r.kind = kind;
    r.version = version;
    r.time_us = time_us;
    return r;
}

#define ES_RANGE_ALL es_range_make(ES_RANGE_END, 0, 0)
#define ES_RANGE_TO_VERSION(v) es_range_make(ES_RANGE_VERSION, (v), 0)
#define ES_RANGE_AS_OF(t) es_range_make(ES_RANGE_TIME, 0, (t))

/*
 * Called for each event read. ev is borrowed for the duration of the call.
 * Return 0 to go on; anything else stops the read, which then returns
 * ES_EUSER.
 */
typedef int (*es_event_cb)(const es_event *ev, void *user_data);

/* Options of a stream read. */
typedef struct es_read_options {
    unsigned version;      /* ES_READ_OPTIONS_VERSION */
    int64_t from_version;  /* first version delivered (<= 1: from origin) */
    es_range to;           /* where to stop */
    es_position start;     /* a position at or before from_version's event
                              (from a snapshot): a scanning backend (Kafka)
                              starts there; offset -1 = unknown */
} es_read_options;

#define ES_READ_OPTIONS_VERSION 1
#define ES_READ_OPTIONS_INIT \
    { ES_READ_OPTIONS_VERSION, 1, {ES_RANGE_END, 0, 0}, {0, -1} }

/*
 * Reads one stream in version order, within opts (NULL: all of it), calling
 * cb for each event. Only accepted events are delivered. A stream that does
 * not exist delivers nothing and returns 0 (check the count in cb).
 * Returns 0, ES_EUSER, ES_ETRUNCATED (the log lost the stream's beginning),
 * ES_ECORRUPT (a stored event is malformed), ES_EIO.
 */
int es_log_read_stream(es_log *log, const char *aggregate_type,
                       const char *stream_id, const es_read_options *opts,
                       es_event_cb cb, void *user_data);

/*
 * Reads one partition of an aggregate type in offset order from
 * from_offset, at most max_events (0 = no limit) events, calling cb for
 * each. *next_offset is set to the offset after the last event read
 * (from_offset when none were). This is how projections follow the log.
 * When cb stops the read (ES_EUSER), *next_offset is the offset of the
 * event it refused, so that resuming there delivers that event again.
 * A partition >= the type's partition count is ES_EINVAL.
 */
int es_log_read_partition(es_log *log, int64_t *next_offset,
                          const char *aggregate_type, int32_t partition,
                          int64_t from_offset, size_t max_events,
                          es_event_cb cb, void *user_data);

/*
 * es_log_read_partition for a reader that resumes at a checkpoint
 * (from_offset, a next_offset it was given earlier) in a new process,
 * without reading the partition from its beginning: seed (esfold/accept.h)
 * gives the state each stream had at from_offset: the version and commit
 * of its last event delivered before it (a projection keeps them beside
 * its checkpoint). seed NULL, or from_offset 0: as
 * es_log_read_partition (on Kafka, a handle that has not read the
 * partition before reads it from its beginning up to from_offset, to know
 * where each stream stands). The handle keeps following from where the
 * read stopped, calling seed (it must stay valid for the call only) for
 * streams it has not met; the same seed must be given on each later call.
 * seed stopping (non-zero) is ES_EUSER. On a log whose every stored event
 * is accepted (SQLite) seed is not called.
 */
int es_log_read_partition_seeded(es_log *log, int64_t *next_offset,
                                 const char *aggregate_type, int32_t partition,
                                 int64_t from_offset, size_t max_events,
                                 es_seed_fn seed, void *seed_data,
                                 es_event_cb cb, void *user_data);

/*
 * Reads one partition like es_log_read_partition, but delivers every record
 * with the acceptance rule's verdict (esfold/accept.h), rejected ones too:
 * what `esfold verify` lists. The verdicts are those of a reader that
 * started at the partition's beginning. max_events counts records; when
 * the read reaches the head, commits still open there are delivered as
 * ES_VERDICT_INCOMPLETE (*next_offset then stays at the first of them, so
 * a later scan sees them again). On a backend where every stored event is
 * accepted by construction (SQLite) every verdict is ES_VERDICT_ACCEPTED.
 * Returns 0, ES_EUSER, ES_ETRUNCATED, ES_EIO.
 */
int es_log_scan_partition(es_log *log, int64_t *next_offset,
                          const char *aggregate_type, int32_t partition,
                          int64_t from_offset, size_t max_events,
                          es_verdict_cb cb, void *user_data);

/* The number of partitions of an aggregate type. */
int es_log_partition_count(es_log *log, int32_t *out,
                           const char *aggregate_type);

/* The offset the next event written to the partition will get. */
int es_log_head(es_log *log, int64_t *out, const char *aggregate_type,
                int32_t partition);

/* Calls cb with the name of every aggregate type that has events. */
typedef int (*es_name_cb)(const char *name, void *user_data);
int es_log_types(es_log *log, es_name_cb cb, void *user_data);

/* One stream of an aggregate type, as es_log_streams lists it. */
typedef struct es_stream_info {
    const char *stream_id; /* borrowed for the call */
    int64_t version;       /* of its last accepted event (>= 1) */
    int32_t partition;     /* the partition that holds it */
} es_stream_info;

typedef int (*es_stream_cb)(const es_stream_info *info, void *user_data);

/*
 * Calls cb for every stream of aggregate_type that has accepted events, in
 * byte order of stream ids. On SQLite it reads the table of stream
 * versions (cheap); on Kafka it reads every partition of the type from its
 * beginning, as es_log_read_partition (a full scan: an operator's call,
 * not a hot path; it keeps the ids in memory). A type without events
 * lists nothing. cb returning non-zero stops (ES_EUSER). Returns 0,
 * ES_EUSER, ES_EINVAL, ES_ETRUNCATED, ES_EIO, ES_ENOMEM.
 */
int es_log_streams(es_log *log, const char *aggregate_type, es_stream_cb cb,
                   void *user_data);

/*
 * Checks the storage under the log, beyond what reads see: on SQLite the
 * file's own integrity (PRAGMA integrity_check: pages, indexes) and that
 * es_streams and es_partitions agree with es_events (the conflict check
 * and the offsets of appends rely on them). Calls cb once per problem
 * found, with a kind ("integrity", "streams", "partitions") and a message
 * (borrowed, for the call); a non-zero return stops (ES_EUSER). Reads the
 * whole file. A backend with nothing to check (Kafka) finds no problem.
 * Returns 0 whether or not problems were found, or ES_EIO / ES_ECORRUPT
 * when the check itself could not run (the message says why).
 */
typedef int (*es_check_cb)(const char *kind, const char *message,
                           void *user_data);
int es_log_check(es_log *log, es_check_cb cb, void *user_data);

#ifdef __cplusplus
}
#endif
#endif

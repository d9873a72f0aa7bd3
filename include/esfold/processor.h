/*
 * esfold/processor.h - the single-writer fast path: a command processor
 * that owns partitions and keeps their aggregates hot.
 *
 * A processor sits on a repository (borrowed: it must outlive the
 * processor) and one aggregate type. It owns a set of that type's
 * partitions (static ownership: given at creation; no consumer-group
 * assignment) and is meant to be their only writer. It keeps the current
 * state and version of every stream it has touched in memory: a command is
 * decided on the hot state, appended with the hot version as the exact
 * expected version, and on success the emitted events are folded into the
 * hot state without reading anything back. On Kafka the append of a writer
 * whose view of the partition is current is confirmed by its own delivery
 * offsets (docs/kafka.md).
 *
 * Ownership is an assumption that is checked, never trusted: every append
 * carries the exact expected version, so when someone else wrote to a
 * stream the append fails with ES_ECONFLICT (the acceptance rule decides it
 * on Kafka); the processor then drops the hot copy, reloads the stream
 * from the log and decides again, as es_repo_execute does, up to 5 times
 * (the max_attempts of ES_REPO_OPTIONS_INIT).
 *
 * A refusal appends nothing, so it is decided on the hot state alone: a
 * refusal on a state made stale by a foreign writer is not detected
 * (es_processor_evict forces a reload). On Kafka, open the log with
 * owner=1 for the fast path (docs/kafka.md).
 *
 * Memory: one aggregate per stream touched, until es_processor_evict.
 * Snapshots attached to the type are used by the first load of a stream;
 * the processor does not save snapshots after its appends.
 *
 * Threads: one thread at a time per processor (and its repository).
 */
#ifndef ESFOLD_PROCESSOR_H
#define ESFOLD_PROCESSOR_H

#include <stddef.h>
#include <stdint.h>

#include "aggregate.h"
#include "error.h"
#include "repo.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct es_processor es_processor;

/* How a processor runs. */
typedef struct es_processor_options {
    unsigned version;          /* ES_PROCESSOR_OPTIONS_VERSION */
    const int32_t *partitions; /* the partitions it owns (copied); NULL: all */
    size_t npartitions;        /* how many; 0 with partitions NULL */
    int max_attempts;          /* decide+append rounds on a conflict (>= 1);
                                  0: the repository's (es_repo_options) */
} es_processor_options;

#define ES_PROCESSOR_OPTIONS_VERSION 1
#define ES_PROCESSOR_OPTIONS_INIT { ES_PROCESSOR_OPTIONS_VERSION, NULL, 0, 0 }

/*
 * A processor of type's streams on repo's log, as opts says (NULL: the
 * defaults: all partitions, the repository's max_attempts). A command for
 * a stream outside its partitions is ES_EINVAL. On failure *out is still
 * set when a handle could be made, so that es_errmsg(*out) tells why
 * (like es_log_open); free it with es_processor_free() either way.
 * Returns 0, ES_EINVAL (bad options, naming which), ES_ENOMEM.
 */
int es_processor_open(es_processor **out, es_repo *repo,
                      const es_aggregate_type *type,
                      const es_processor_options *opts);

/*
 * es_processor_open with partitions[0..n) and the other options at their
 * defaults; on failure *out is NULL. Kept for programs written before
 * es_processor_open.
 */
int es_processor_new(es_processor **out, es_repo *repo,
                     const es_aggregate_type *type, const int32_t *partitions,
                     size_t n);
void es_processor_free(es_processor *p); /* accepts NULL */

/*
 * Executes a command like es_repo_execute (same decide contract, same
 * result and options), on the hot state of stream_id (loaded on first
 * use). An expected version that differs from the hot version reloads
 * the stream once before it is a conflict (the hot copy may be stale). A
 * command id is looked up in the log first, as es_repo_execute does (on
 * Kafka a watermark query, even on an owner=1 handle); a duplicate found
 * there that the hot state lacks drops the hot copy. Returns 0, ES_EREFUSED (reason in es_errmsg(p); nothing appended),
 * ES_ECONFLICT (still conflicting after every attempt), ES_EINVAL (a
 * stream this processor does not own), or a load/append error (the hot
 * copy is then dropped: the next command reloads). ES_EUNKNOWN is returned
 * as it is, never decided again (see es_repo_execute).
 */
int es_processor_execute(es_processor *p, es_execute_result *out,
                         const char *stream_id, es_decide_fn decide,
                         const void *command, void *user_data,
                         const es_execute_options *opts);

/* The hot aggregate of stream_id (borrowed, valid until the next call on
 * p), or NULL when it is not in memory. */
const es_aggregate *es_processor_peek(es_processor *p, const char *stream_id);

/* Drops stream_id's hot copy (the next command reloads it). */
void es_processor_evict(es_processor *p, const char *stream_id);

/* What the processor did so far. */
typedef struct es_processor_stats {
    uint64_t streams;   /* hot aggregates in memory */
    uint64_t loads;     /* streams loaded from the log (first use, reload) */
    uint64_t hits;      /* commands decided on a hot state */
    uint64_t conflicts; /* appends that found a foreign write */
} es_processor_stats;

void es_processor_stats_get(const es_processor *p, es_processor_stats *out);

#ifdef __cplusplus
}
#endif
#endif

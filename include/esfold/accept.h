/*
 * esfold/accept.h - the acceptance rule: which events of a log count.
 *
 * Kafka has no conditional append, so two writers can both append version 7
 * of a stream, a zombie can append from stale state, a producer retry can
 * write a commit twice, and a transaction aborted on a broker that does not
 * hide aborted records stays visible. esfold makes per-stream optimistic
 * concurrency exact with a deterministic rule that every reader applies in
 * log order, the same way:
 *
 *   An event of stream S with version v counts (is accepted) only if v is
 *   S's current version + 1 and its whole commit (es-commit id,
 *   es-commit-size events with consecutive versions and indexes 0, 1, ...
 *   in es-commit-index) arrives before any other event of S. Everything
 *   else is rejected, with a reason.
 *
 * Two bounds make every reader decide every commit, the same way:
 *   - a commit has at most ES_COMMIT_MAX_EVENTS events (a record that says
 *     more is rejected), and
 *   - a commit whose first event is at offset o must have its last event
 *     before offset o + ES_COMMIT_WINDOW of its partition; when an event
 *     at or past that offset is fed, the commit is decided
 *     ES_VERDICT_INCOMPLETE (never buffered for ever).
 *
 * An event without a commit id (written by kcat or another foreign
 * producer) is a commit of its own (size 1). An event whose commit index
 * is not known (commit_index -1: written by esfold 0.1.0) takes the next
 * index of its open commit, or 0.
 *
 * An es_acceptor applies the rule to the events of one partition (one log
 * order), fed in that order. It buffers an open commit until its last event
 * arrives, then decides all of its events at once. es_acceptor_next() hands
 * the decided events back in the order they were fed: an event behind an
 * undecided commit waits for it, so that a reader's position (the offset
 * after the last event it took) never skips an undecided event.
 *
 * Threads: an acceptor is used by one thread at a time.
 */
#ifndef ESFOLD_ACCEPT_H
#define ESFOLD_ACCEPT_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "event.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the rule said about one event. */
typedef enum es_verdict {
    ES_VERDICT_ACCEPTED = 0,
    /* v <= the stream's current version: the version was taken already
     * (a racing writer that lost, a zombie writing from stale state, a
     * retry that duplicated a commit). */
    ES_VERDICT_STALE = 1,
    /* v > current + 1: events are missing before it (a log that lost its
     * beginning, or a writer that skipped versions). */
    ES_VERDICT_GAP = 2,
    /* Its commit did not arrive whole before another event of the stream
     * (interleaved with a racing commit, a torn or aborted transaction). */
    ES_VERDICT_INTERLEAVED = 3,
    /* Its commit was still open when the input ended (es_acceptor_finish):
     * a transaction aborted or torn at the end of the log, or a commit
     * still being written. */
    ES_VERDICT_INCOMPLETE = 4,
    /* Not an esfold event: no key, no es-type or es-version header, a
     * payload that is not a JSON object (fed with es_acceptor_feed_malformed). */
    ES_VERDICT_MALFORMED = 5
} es_verdict;

/* The bounds of a commit (see above); the same for every log: es_log_append
 * refuses a larger commit on every backend. */
#define ES_COMMIT_MAX_EVENTS 10000
#define ES_COMMIT_WINDOW 20000

/* "accepted", "stale", "gap", "interleaved", "incomplete", "malformed". */
const char *es_verdict_name(es_verdict verdict);

/*
 * Called with an event and the rule's verdict (es_log_scan_partition).
 * ev and why are borrowed for the duration of the call; why is "" for
 * accepted events and says what was wrong otherwise ("stream
 * account/acct-1 is at version 7, the event has version 7"). Return 0 to
 * go on; anything else stops with ES_EUSER.
 */
typedef int (*es_verdict_cb)(const es_event *ev, es_verdict verdict,
                             const char *why, void *user_data);

typedef struct es_acceptor es_acceptor;

/* Flags of es_acceptor_new. */
enum {
    /* Keep no events: only stream versions (and ids with TRACK_IDS).
     * es_acceptor_next() then never returns anything. For writers that
     * only need to know where each stream stands. */
    ES_ACCEPTOR_STATE_ONLY = 1,
    /* Remember the id of every accepted event (es_acceptor_find_id), for
     * idempotent appends. Costs about 100 bytes per accepted event. */
    ES_ACCEPTOR_TRACK_IDS = 2
};

/* A new acceptor that knows no streams (every stream at version 0). */
int es_acceptor_new(es_acceptor **out, unsigned flags);

/* Frees acc and every event it still holds. Accepts NULL. */
void es_acceptor_free(es_acceptor *acc);

/*
 * Starts stream_id at `version` (from a snapshot or a projection's stored
 * version) before any of its events is fed. `at` is the event at
 * `version` as read from the log (its commit id, size, index and position)
 * when the seed may be in the middle of a commit: that commit was
 * accepted, so its following events (indexes after at's) must come next
 * and are accepted when they do; NULL when the seed is at a commit
 * boundary. Returns 0, ES_EINVAL (the stream has been fed already,
 * version < 0, or `at` is inside a commit but its index is not known: a
 * 0.1.0 record, read such a stream from origin), ES_ENOMEM.
 */
int es_acceptor_seed(es_acceptor *acc, const char *stream_id, int64_t version,
                     const es_event *at);

/*
 * Where a reader that resumes inside a partition (a projection at its
 * checkpoint) learns each stream's state there: the version of the
 * stream's last accepted event before the resume point (0: none) and, as
 * read from that event, its commit (commit_id NULL or commit_size <= 1: a
 * commit of one). A checkpoint can fall inside an accepted commit whose
 * events interleave with other streams' records: the commit's place tells
 * the reader that the rest of it comes next. Keep all four from the last
 * event delivered for each stream.
 */
typedef struct es_stream_seed {
    int64_t version;
    const char *commit_id; /* borrowed for the call */
    int32_t commit_size;
    int32_t commit_index;
} es_stream_seed;

/*
 * Called once per stream, when its first record after the resume point
 * is fed, unless the stream was seeded; out is zeroed before the call.
 * Non-zero stops the feed with ES_EUSER; a seed that is not consistent
 * (an index outside its commit, a commit of 0.1.0 records without one)
 * is ES_EINVAL.
 */
typedef int (*es_seed_fn)(es_stream_seed *out, const char *stream_id,
                          void *user_data);

/* Sets the seed function of acc (NULL: streams start at version 0). */
void es_acceptor_set_seed_fn(es_acceptor *acc, es_seed_fn fn, void *user_data);

/*
 * Feeds the next event of the partition, taking ownership of ev (a heap
 * event: es_event_new, es_event_copy, es_event_decode), also on failure.
 * ev needs stream_id, version, id and position; commit_id NULL or
 * commit_size <= 1 make it a commit of one. Returns 0, ES_ENOMEM, ES_EUSER
 * (the seed function refused), ES_EINVAL (it gave an inconsistent seed).
 */
int es_acceptor_feed_new(es_acceptor *acc, es_event *ev);

/*
 * Feeds a record that is not an esfold event where it stands in the log,
 * so that it is reported (ES_VERDICT_MALFORMED, with why) in order. Takes
 * ownership of ev (whatever could be decoded; at least the position).
 */
int es_acceptor_feed_malformed_new(es_acceptor *acc, es_event *ev,
                                   const char *why);

/*
 * Takes the next decided event, in feed order. Returns 1 and sets *ev (and
 * *verdict, *why when not NULL), or 0 when the next event is undecided or
 * there is none. *ev and *why are owned by acc and valid until the next
 * call on acc.
 */
int es_acceptor_next(es_acceptor *acc, const es_event **ev, es_verdict *verdict,
                     const char **why);

/*
 * The input has ended: every open commit is decided ES_VERDICT_INCOMPLETE.
 * For readers that see the whole log (esfold verify); a follower that
 * will read more must not call it.
 */
int es_acceptor_finish(es_acceptor *acc);

/* Stream stream_id's current (accepted) version; 0 when it has none. */
int64_t es_acceptor_version(const es_acceptor *acc, const char *stream_id);

/* Where an accepted event is (ES_ACCEPTOR_TRACK_IDS). */
typedef struct es_accepted_id {
    const char *stream_id; /* borrowed from acc, lives as long as it */
    int64_t version;
    es_position position;
    int32_t commit_size;  /* events in its commit */
    int32_t commit_index; /* its place in the commit from 0; -1: unknown
                             (a commit the acceptor was seeded inside) */
} es_accepted_id;

/* Looks up an accepted event id. Returns 1 and fills *out, or 0. */
int es_acceptor_find_id(const es_acceptor *acc, const char *id,
                        es_accepted_id *out);

/* How many events were decided each way (rejected: all but accepted),
 * and how many wait in open commits. */
typedef struct es_acceptor_stats {
    uint64_t accepted;
    uint64_t rejected;
    uint64_t pending;
} es_acceptor_stats;

void es_acceptor_get_stats(const es_acceptor *acc, es_acceptor_stats *out);

#ifdef __cplusplus
}
#endif
#endif

/*
 * core/execute.h - the parts of executing a command that the repository
 * (core/repo.c) and the processor (core/processor.c) share: the emitter a
 * decide function fills, deciding, stamping and appending what it emitted,
 * and folding an appended or read event the way a load does.
 * Internal: not installed, not API.
 */
#ifndef ESFOLD_CORE_EXECUTE_H
#define ESFOLD_CORE_EXECUTE_H

#include "esfold/repo.h"
#include "internal.h"

/* What es_emit_with gave an event beyond type and payload (owned). */
typedef struct es__emitted {
    char *id, *correlation_id, *causation_id;
    json_t *meta;
} es__emitted;

struct es_emitter {
    const es_aggregate_type *type; /* whose current schemas es_emit_new stamps */
    es_event *events; /* type and payload owned; the rest borrowed */
    es__emitted *given; /* [cap]: what es_emit_with gave each event */
    size_t n, cap;
    char *refusal;
    int oom;
    char (*ids)[ES_UUID_BUFSZ]; /* the ids es__emitter_append gave */
    size_t ids_cap;
};

/* Frees what the emitter collected and makes it empty (arrays kept). */
void es__emitter_reset(es_emitter *em);
/* Frees everything, arrays too. */
void es__emitter_free(es_emitter *em);

/*
 * Empties em and runs decide on (state, version). Returns 0 (em->n events,
 * possibly none), ES_EREFUSED, ES_ENOMEM or decide's error, with h's
 * message naming type/stream_id.
 */
int es__emitter_decide(es_emitter *em, es__handle *h, const es_aggregate_type *type,
                       const char *stream_id, es_decide_fn decide,
                       const void *state, int64_t version,
                       const void *command, void *user_data);

/*
 * Stamps em's events with their ids (es_emit_with's, else the command's
 * from opts->command_id, else new ones), the time now (unless given) and
 * opts (correlation, causation, meta unless given; opts may be NULL), and
 * appends them to the stream expecting `version`. The ids are given here rather than by the log so that the
 * state after the append can be folded without reading the events back;
 * they live until em is reset. Returns 0 or the append's code, with h's
 * message set from the log.
 */
int es__emitter_append(es_emitter *em, es__handle *h, es_log *log,
                       es_append_result *ar, const char *type,
                       const char *stream_id, int64_t version,
                       const es_execute_options *opts);

/*
 * The options of an execute as version 2 (a version 1 struct is copied
 * as far as it goes, the rest defaulted). 0, or ES_EINVAL with h's
 * message set for an unknown version.
 */
int es__execute_options(es__handle *h, es_execute_options *out,
                        const es_execute_options *opts);

/*
 * A retried command: when opts has a command id whose event 0 is in the
 * log already, fills out as the first execution's outcome (duplicate) and
 * sets *found. 0, or a lookup error with h's message set.
 */
int es__command_done(es__handle *h, es_log *log, es_execute_result *out,
                     const char *type, const char *stream_id,
                     const es_execute_options *opts, int *found);

/* The repository's max_attempts (es_repo_options). */
int es__repo_max_attempts(const es_repo *repo);

/* The i-th appended event as a read of the log would deliver it. */
void es__emitter_appended(const es_emitter *em, size_t i, const char *type,
                          const char *stream_id, const es_append_result *ar,
                          es_event *out);

/*
 * Folds ev into agg as a load does: through repo's upcasters when one
 * applies (*upcast is then the upcast copy, freed by the caller with
 * es_event_free; else NULL), then apply. 0, or a code with err set.
 */
int es__repo_fold_event(es_repo *repo, es_aggregate *agg, const es_event *ev,
                        es_event **upcast, es_error *err);

#endif

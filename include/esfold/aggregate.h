/*
 * esfold/aggregate.h - aggregate types: a state struct and how events fold
 * into it.
 *
 * An aggregate type is a static description the user writes once:
 *
 *     static const es_handler account_handlers[] = {
 *         { "AccountOpened", apply_opened },
 *         { "Deposited",     apply_deposited },
 *         { NULL, NULL }
 *     };
 *     static const es_event_schema account_schemas[] = {
 *         { "Deposited", 2 },  (Deposited's payload is at schema 2)
 *         { NULL, 0 }
 *     };
 *     const es_aggregate_type account_type = {
 *         .name = "account", .state_size = sizeof(account),
 *         .handlers = account_handlers,
 *         .state_schema = 1, .encode = account_encode, .decode = account_decode,
 *         .schemas = account_schemas,
 *     };
 *
 * Folding is init(state) (or zero-filling when init is NULL), then the
 * apply for each event in version order. apply must be deterministic and
 * must not fail on an event it accepted before.
 */
#ifndef ESFOLD_AGGREGATE_H
#define ESFOLD_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"
#include "event.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Applies one event to state. Returns 0, or a negative ES_E* code (the
 * fold stops and reports the event). To say why, return
 * es_apply_fail(ev, "...") instead of a bare code. */
typedef int (*es_apply_fn)(void *state, const es_event *ev);

/*
 * Called by an apply function that rejects ev (the event it was given):
 * the reason (printf format) goes into the fold's message, which names the
 * aggregate type, stream, version and event type:
 *     "cart/c-1 version 3: apply of 'ItemRemoved' failed: no item 'sku-9'
 *      in the cart"
 * Returns ES_EINVAL, so that apply can `return es_apply_fail(ev, ...)`.
 * The reason is kept per thread for the apply call in progress on that
 * thread: call it only from inside apply, with the ev apply was given.
 */
int es_apply_fail(const es_event *ev, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

typedef struct es_handler {
    const char *event_type;
    es_apply_fn apply;
} es_handler;

/*
 * The current payload schema of an event type: the one its apply handles.
 * es_emit_new stamps it on the events decide emits, so a type whose
 * ItemAdded moved to schema 2 writes schema 2; events stored with an
 * older schema reach apply through the upcasters (esfold/upcast.h).
 */
typedef struct es_event_schema {
    const char *event_type;
    int32_t schema; /* >= 1 */
} es_event_schema;

typedef struct es_aggregate_type {
    const char *name;           /* aggregate type = topic / category name */
    size_t state_size;          /* bytes of the state struct */
    void (*init)(void *state);  /* NULL: the state starts zero-filled */
    const es_handler *handlers; /* one per event type, ended by {NULL,NULL} */
    es_apply_fn apply;          /* for types not in handlers; may be NULL */
    int ignore_unknown;         /* 1: skip event types nobody handles;
                                   0: they are ES_EUNHANDLED */
    void (*release)(void *state); /* frees what the state points to; may be NULL */
    int32_t state_schema;       /* version of the encoded state (snapshots) */
    /* The state as a JSON value (new reference), for snapshots and the
     * audit trail. NULL when the type has no encoder. */
    json_t *(*encode)(const void *state);
    /* The inverse of encode, into an init()ed state; 0 or ES_EINVAL. */
    int (*decode)(void *state, const json_t *json);
    /* Current payload schemas, ended by {NULL, 0}; event types not listed
     * (or schemas NULL) are at schema 1. */
    const es_event_schema *schemas;
} es_aggregate_type;

/* A folded aggregate instance (opaque). */
typedef struct es_aggregate es_aggregate;

/*
 * An empty instance of type for stream_id, at version 0 with its state
 * init()ed. Used by the repository; public for programs that fold events
 * they hold themselves.
 */
int es_aggregate_new(es_aggregate **out, const es_aggregate_type *type,
                     const char *stream_id);

/*
 * Folds one event into agg: checks that ev->version is agg's version + 1,
 * finds the apply for ev->type, calls it, and advances version, time and
 * position. Returns 0, ES_EUNHANDLED, ES_ECORRUPT (out of order), or what
 * apply returned; err->text says which event and why.
 */
int es_aggregate_apply(es_aggregate *agg, const es_event *ev, es_error *err);

/* Frees agg (release()ing its state). Accepts NULL. */
void es_aggregate_free(es_aggregate *agg);

/* Accessors; the state pointer is borrowed and lives as long as agg. */
const es_aggregate_type *es_aggregate_type_of(const es_aggregate *agg);
const char *es_aggregate_stream_id(const es_aggregate *agg);
const void *es_aggregate_state(const es_aggregate *agg);
void *es_aggregate_state_mut(es_aggregate *agg);
int64_t es_aggregate_version(const es_aggregate *agg);   /* 0: no events */
int64_t es_aggregate_time_us(const es_aggregate *agg);   /* of the last event */
es_position es_aggregate_position(const es_aggregate *agg);
/* How many events the load that produced agg folded. */
int64_t es_aggregate_folded(const es_aggregate *agg);

/* Sets version/time/position after restoring state from elsewhere (a
 * snapshot). */
void es_aggregate_set_origin(es_aggregate *agg, int64_t version,
                             int64_t time_us, es_position position);

/* Finds the apply function for an event type; NULL when there is none. */
es_apply_fn es_aggregate_type_find(const es_aggregate_type *type,
                                   const char *event_type);

/* The current payload schema of event_type: its entry in type->schemas,
 * 1 when it has none. */
int32_t es_aggregate_type_schema(const es_aggregate_type *type,
                                 const char *event_type);

#ifdef __cplusplus
}
#endif
#endif

/*
 * esfold/event.h - the event envelope, its JSON codec, and event ids.
 *
 * An event is a fact about one stream (one aggregate instance): its type
 * name, its version (1-based position in the stream), when it happened, the
 * schema version of its payload, a unique id, the correlation and causation
 * ids that tie it to the command and the event that caused it, a JSON object
 * payload, optional JSON object metadata, and where it sits in the log.
 *
 * The struct is public so that a commit can be written as an array literal:
 *
 *     es_event evs[] = {
 *         { .type = "Deposited", .payload = amount_json },
 *     };
 *
 * Ownership: an es_event handed to esfold as input is borrowed (its strings
 * and JSON are copied or referenced if kept). An es_event handed to a
 * callback is borrowed for the duration of the callback. An es_event
 * returned through `**out` belongs to the caller: es_event_free().
 */
#ifndef ESFOLD_EVENT_H
#define ESFOLD_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ES_ID_LEN 36          /* a UUID in text form, without the NUL */
#define ES_STREAM_ID_MAX 255  /* bytes in a stream id */
#define ES_NAME_MAX 255       /* bytes in a type or aggregate type name */
/* The largest event es_log_append takes, on every log: bytes of its payload
 * and metadata as compact JSON. Kafka's default record limit (1 MB, with
 * the envelope) is the tightest; larger events are ES_EINVAL before
 * anything is written. */
#define ES_EVENT_MAX_BYTES (768 * 1024)

/* A place in the log: a partition and an offset in it (both from 0). */
typedef struct es_position {
    int32_t partition;
    int64_t offset;
} es_position;

typedef struct es_event {
    const char *aggregate_type; /* "account": the category / Kafka topic */
    const char *stream_id;      /* the aggregate id, the Kafka key */
    const char *type;           /* "Deposited" */
    int64_t version;            /* 1-based position in the stream */
    int64_t occurred_us;        /* UTC microseconds; 0 on input = now */
    int32_t schema;             /* payload schema version; 0 on input = 1 */
    const char *id;             /* unique; NULL on input = a new UUIDv7 */
    const char *correlation_id; /* optional */
    const char *causation_id;   /* optional */
    json_t *payload;            /* a JSON object, required */
    json_t *meta;               /* a JSON object or NULL */
    es_position position;       /* set by the log */
    const char *commit_id;      /* the commit the event was written in */
    int32_t commit_size;        /* how many events that commit has */
    int32_t commit_index;       /* its place in that commit, from 0; -1: not
                                   known (a Kafka record written by esfold
                                   0.1.0, or an event not read from Kafka) */
} es_event;

/*
 * A new heap event of `type` with `payload` (borrowed: a reference is
 * taken). Every other field is zero/NULL. Free with es_event_free().
 */
int es_event_new(es_event **out, const char *type, json_t *payload);

/* A deep copy (strings duplicated, JSON referenced) of ev. */
int es_event_copy(es_event **out, const es_event *ev);

/* Frees an event made by es_event_new/copy/decode or returned by esfold.
 * Accepts NULL. */
void es_event_free(es_event *ev);

/* Replace one string field of a heap event (copied). field is one of the
 * `const char *` members of the struct, e.g. &ev->correlation_id. */
int es_event_set_str(es_event *ev, const char **field, const char *value);

/*
 * Checks the envelope rules: non-empty stream id and type of at most
 * ES_STREAM_ID_MAX / ES_NAME_MAX bytes without NUL or control characters,
 * version >= 1 (when require_version), schema >= 1, payload a JSON object,
 * meta NULL or an object. Returns 0 or ES_EINVAL with err->text saying
 * which field is wrong and why.
 */
int es_event_validate(const es_event *ev, int require_version, es_error *err);

/*
 * The JSON codec of the envelope:
 *   {"aggregate_type": "account", "stream_id": "acct-42", "type": "Deposited",
 *    "version": 3, "occurred_at": "2026-03-01T10:00:00.000001Z",
 *    "occurred_us": 1772359200000001, "schema": 1,
 *    "id": "0190...", "correlation_id": null, "causation_id": null,
 *    "data": {...}, "meta": null,
 *    "position": {"partition": 0, "offset": 17},
 *    "commit": {"id": "...", "size": 2, "index": 0}}   ("index" when known)
 * The decoder requires stream_id, type, version, id and data, accepts
 * occurred_at (ISO 8601) or occurred_us, and fails with ES_EINVAL and a
 * message naming the field for anything missing, wrongly typed or out of
 * range (not JSON, empty or over-long stream id, version 0, data not an
 * object, ...).
 */
json_t *es_event_to_json(const es_event *ev); /* new reference; NULL on ENOMEM */
int es_event_from_json(es_event **out, const json_t *json, es_error *err);
/* Text forms of the same. es_event_encode's *out is freed with es_free(). */
int es_event_encode(char **out, const es_event *ev);
int es_event_decode(es_event **out, const char *text, size_t len, es_error *err);

/*
 * A UUID version 7 (RFC 9562: 48-bit Unix milliseconds, then random bits
 * from the OS, getrandom(2)) in lower-case text form into out (37 bytes with
 * the NUL). Ids made by one process are strictly increasing.
 */
#define ES_UUID_BUFSZ (ES_ID_LEN + 1)
int es_uuid_v7(char out[ES_UUID_BUFSZ]);

/*
 * The id es_repo_execute gives event `index` (from 0) of a command with a
 * command id (es_execute_options.command_id): a name-based UUID version 5
 * (RFC 9562 section 5.5: SHA-1, version and variant bits set) in esfold's
 * own namespace 3c6e1f0a-945b-4d2e-8f17-62c0d53a9b41, of the name
 *     aggregate_type NUL stream_id NUL command_id NUL index-in-decimal
 * so that the same command on the same stream always gives the same ids,
 * in any process and language, and a retried command is recognised by the
 * log as a duplicate. Returns 0, or ES_EINVAL (a NULL or empty argument).
 */
int es_command_event_id(char out[ES_UUID_BUFSZ], const char *aggregate_type,
                        const char *stream_id, const char *command_id,
                        size_t index);

/* Frees memory esfold returned as `char *` or `void *`. Accepts NULL. */
void es_free(void *ptr);

/*
 * The allocator esfold uses (and hands to jansson when set through
 * here). Call before any other esfold call; NULL restores libc's. Used by
 * the tests to inject allocation failures.
 */
void es_set_allocator(void *(*malloc_fn)(size_t), void (*free_fn)(void *));

#ifdef __cplusplus
}
#endif
#endif

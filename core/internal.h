/*
 * core/internal.h - what esfold's own files share and users never see.
 */
#ifndef ESFOLD_CORE_INTERNAL_H
#define ESFOLD_CORE_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "esfold/error.h"
#include "esfold/event.h"
#include "esfold/log.h"

/*
 * Every opaque handle starts with this, so that es_errmsg() works on any of
 * them. The magic tells a handle from a stray pointer.
 */
#define ES__MAGIC 0x65736664u /* "esfd" */
#define ES__ERRMSG_MAX 1024

typedef struct es__handle {
    uint32_t magic;
    char errmsg[ES__ERRMSG_MAX];
} es__handle;

void es__handle_init(es__handle *h);
/* Sets the handle's message (printf format) and returns code, so that
 * `return es__fail(&log->h, ES_EIO, "...", ...)` reads naturally. */
int es__fail(es__handle *h, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
int es__vfail(es__handle *h, int code, const char *fmt, va_list ap);
void es__clear(es__handle *h);
/* The same for es_error buffers. */
int es__err(es_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* 1 when a reader resuming inside a partition of log needs each stream's
 * state there (es_log_read_partition_seeded: the Kafka log); 0 when every
 * stored event is accepted by construction (SQLite). */
struct es_log;
int es__log_needs_seeds(const struct es_log *log);

/* es_log_read_partition_seeded for a reader that uses only the stream id,
 * version, type, time, schema, payload, position and commit size: on a
 * backend that can (SQLite), the event id, correlation and causation ids,
 * commit id and metadata are not read (NULL); elsewhere the full read.
 * (A keyed fold that names no other field: the log read is most of its
 * time.) */
int es__log_read_partition_lean(es_log *log, int64_t *next_offset,
                                const char *aggregate_type, int32_t partition,
                                int64_t from_offset, size_t max_events,
                                es_seed_fn seed, void *seed_data,
                                es_event_cb cb, void *user_data);

/* json_loadb of buf (no flags) that tells a failure for want of memory
 * (*oom 1) from bytes that are not JSON (NULL, *oom 0). */
json_t *es__json_loadb(const char *buf, size_t len, int *oom);

/*
 * The version-conflict message of every log and of execute's expected
 * version, in one place: "<what> T/S: version conflict: expected 6, stream
 * is at 7" ("expected no stream", "stream does not exist"). Returns
 * ES_ECONFLICT.
 */
int es__conflict_fail(es__handle *h, const char *what, const char *agg,
                      const char *sid, int64_t expected, int64_t actual);

/* Sleeps ms milliseconds (nothing when ms <= 0). */
void es__sleep_ms(int ms);
/* The next wait of a backoff: first when ms is 0, else ms doubled, at
 * most max. */
int es__backoff_ms(int ms, int first, int max);

/* Allocation through the hook of es_set_allocator(). */
void *es__malloc(size_t n);
void *es__calloc(size_t n, size_t size);
/* Grows *p (of old_size bytes) to new_size bytes; 0 or ES_ENOMEM. */
int es__grow(void **p, size_t old_size, size_t new_size);
void es__free(void *p);
char *es__strdup(const char *s);
char *es__strndup(const char *s, size_t n);
char *es__sprintf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* A flat copy of an event: es__event_flat_size(src) bytes at mem (aligned
 * for es_event) hold the es_event and its strings; the JSON is referenced.
 * Release with es__event_flat_release (the memory stays the caller's).
 * For batches kept in an arena (projections/worker.c). */
size_t es__event_flat_size(const es_event *src);
es_event *es__event_copy_flat(void *mem, const es_event *src);
void es__event_flat_release(es_event *ev);

/* A growable byte buffer, always NUL-terminated. */
typedef struct es__buf {
    char *data;
    size_t len;
    size_t cap;
    int oom; /* set when an append failed for lack of memory */
} es__buf;
void es__buf_add(es__buf *b, const void *data, size_t len);
void es__buf_adds(es__buf *b, const char *s);
void es__buf_printf(es__buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void es__buf_free(es__buf *b);

/*
 * A copy of uri fit for messages: the password of a user:password@ part and
 * the value of every query parameter whose name holds "password", "secret"
 * or "token" become "***". NULL on ENOMEM.
 */
char *es__uri_redact(const char *uri);

/* Passes a line to the es_set_diagnostic_fn callback, if any (any thread). */
void es__diagnostic(const char *source, int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Replaces every occurrence of `raw` (a URI as given) in h's message by
 * `shown` (its es__uri_redact form): what every handle that keeps a URI
 * does when its open fails. */
void es__redact_message(es__handle *h, const char *raw, const char *shown);

/*
 * Reads string member key of JSON object o into *out (borrowed from o).
 * Absent or null gives NULL, or with required the error 'event has no
 * "key"'; a non-string or one holding a NUL is ES_EINVAL naming key.
 */
int es__json_get_str(const json_t *o, const char *key, int required,
                     const char **out, es_error *err);

/* A name or id: non-empty, at most max bytes, no control characters, and
 * with utf8 valid UTF-8 (what es_event_validate asks of names; reads skip
 * it, so that names stored before the rule still read). */
int es__check_name(const char *what, const char *s, size_t max, int utf8,
                   es_error *err);

/* The length of the longest valid UTF-8 prefix of s[0..n): n when all of
 * it is valid (no overlong forms, surrogates or code points past
 * U+10FFFF). */
size_t es__utf8_valid_prefix(const char *s, size_t n);

/*
 * A JSON string holding s, where each byte that is not valid UTF-8 is
 * written as the text \xHH (so that names stored before esfold refused
 * them still print); NULL only when s is NULL or out of memory.
 */
json_t *es__json_str(const char *s);

/* Parses a decimal int64 in full ("12", "-3"); 0 or ES_EINVAL. */
int es__parse_i64(int64_t *out, const char *s);

#endif

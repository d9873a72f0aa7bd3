/*
 * esfold/error.h - error codes and messages.
 *
 * Every esfold function that can fail returns an int: 0 (ES_OK) or one of
 * the negative codes below. The detailed message, with the words of the
 * library underneath (SQLite, librdkafka, libpq, jansson) and the context
 * (which stream, which version, which line), lives on the handle the call
 * was made on and is read with es_errmsg().
 */
#ifndef ESFOLD_ERROR_H
#define ESFOLD_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum {
    ES_OK = 0,
    ES_EINVAL = -1,      /* a bad argument or malformed input */
    ES_ENOMEM = -2,      /* out of memory */
    ES_EIO = -3,         /* the storage or the network failed */
    ES_ENOTFOUND = -4,   /* no such stream, type, snapshot, ... */
    ES_ECONFLICT = -5,   /* expected version did not match the stream */
    ES_ETRUNCATED = -6,  /* the log lost its beginning */
    ES_ECORRUPT = -7,    /* stored data is malformed */
    ES_EREFUSED = -8,    /* a decide function refused a command */
    ES_EUSER = -9,       /* a user callback returned non-zero */
    ES_EUNHANDLED = -10, /* an event type the aggregate has no apply for */
    ES_EUNSUPPORTED = -11, /* the backend cannot do this */
    ES_ETIMEDOUT = -12,  /* a wait ran out of time */
    /* An append whose outcome could not be learnt in time (the broker
     * froze, died or lost the connection after some of the commit may have
     * reached it): the commit may or may not be in the log. The message
     * names the stream and the commit's event ids; es_log_append again with
     * the same events (the same ids) is safe: it writes nothing and says
     * duplicate = 1 when the first try was written. Never re-decide on it:
     * the events of the first try may count. */
    ES_EUNKNOWN = -13
};

/* A static description of an error code ("version conflict"). Never NULL. */
const char *es_strerror(int code);

/*
 * The message of the last failed call on `handle` (an es_log, es_repo,
 * es_snapshot_store, ... : any esfold handle). The string is owned by the
 * handle and valid until the next call on it. Returns "" when the last call
 * succeeded and a fixed text when handle is NULL.
 */
const char *es_errmsg(const void *handle);

/*
 * What the libraries under esfold say on their own, outside any call's
 * result: librdkafka's log lines ("FAIL", "ERROR": a broker down, a retry).
 * source is "kafka", level a syslog level (3 error .. 7 debug), message
 * one line (borrowed, for the call). By default they are dropped: every
 * failure also reaches the caller through its handle's es_errmsg. The
 * esfold command shows them with --verbose.
 *
 * Process-wide; fn (NULL: drop) may be called from librdkafka's threads,
 * at any time until it is replaced, and must be thread-safe.
 */
typedef void (*es_diagnostic_fn)(const char *source, int level,
                                 const char *message, void *user_data);
void es_set_diagnostic_fn(es_diagnostic_fn fn, void *user_data);

/*
 * A message buffer for calls that have no handle (codecs, parsers), in the
 * spirit of jansson's json_error_t. Filled on failure only.
 */
typedef struct es_error {
    char text[512];
} es_error;

#ifdef __cplusplus
}
#endif
#endif

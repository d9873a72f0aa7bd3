/*
 * projections/target_backend.h - the interface a projection target (the
 * database read models are written to) implements, and what the files of
 * projections/ share.
 *
 * projections/target.c wraps a backend in an es__target (a handle with a
 * message). The worker (projections/worker.c) owns transactions and
 * checkpoints; a backend only runs statements. Each backend lives in
 * adapters/<name>/target.c and exports one `const es__target_backend`;
 * the URI scheme picks it (adapters/target_open.c).
 *
 * Statements use $1..$n parameters on every backend.
 *
 * Internal: not installed, not API.
 */
#ifndef ESFOLD_PROJECTIONS_TARGET_BACKEND_H
#define ESFOLD_PROJECTIONS_TARGET_BACKEND_H

#include "core/internal.h"
#include "esfold/projection.h"

#define ES__TARGET_BACKEND_VERSION 1

typedef struct es__target es__target;

/* A result row: ncols values as text (NULL for SQL NULL), borrowed for the
 * call. Non-zero stops the query (ES_EUSER). */
typedef int (*es__row_cb)(int ncols, const char *const *values, void *ud);

typedef struct es__target_backend {
    int version;      /* ES__TARGET_BACKEND_VERSION */
    const char *name; /* "sqlite", "postgresql" */

    /* Opens (connects). On failure sets t's message; *self is ignored. */
    int (*open)(es__target *t, void **self, const char *uri);
    void (*close)(void *self);

    /* BEGIN (SQLite: BEGIN IMMEDIATE, taking the write lock), COMMIT,
     * ROLLBACK (never fails; safe when no transaction is open). */
    int (*begin)(es__target *t, void *self);
    int (*commit)(es__target *t, void *self);
    void (*rollback)(es__target *t, void *self);

    /* Serializes setups of the es_proj_ tables across processes inside a
     * transaction (PostgreSQL: an advisory lock); NULL when begin does. */
    int (*setup_lock)(es__target *t, void *self);

    /*
     * Runs statement with params bound to $1..$n. *changes (may be NULL)
     * gets the rows it changed (a SELECT: the rows it returned). In
     * pipeline mode (between pipeline_begin and pipeline_sync) the
     * statement may only be queued: *changes must then stay valid until
     * pipeline_sync, which fills it; tag names the statement for the
     * failure report of pipeline_sync. begin, called after
     * pipeline_begin, may be queued too.
     */
    int (*exec)(es__target *t, void *self, const char *statement,
                const es_sql_value *params, size_t n, int64_t *changes,
                int tag);

    /* Runs a query and calls cb for each row. Not in pipeline mode. */
    int (*query)(es__target *t, void *self, const char *statement,
                 const es_sql_value *params, size_t n, es__row_cb cb,
                 void *ud);

    /* Pipeline mode; both NULL when the backend has none (the worker then
     * runs statements one by one). pipeline_sync sends what is queued,
     * reads every result and leaves pipeline mode; on the first failed
     * statement it sets t's message and *failed_tag to its tag. */
    int (*pipeline_begin)(es__target *t, void *self);
    int (*pipeline_sync)(es__target *t, void *self, int *failed_tag);

    /* COPY ... FROM STDIN of data (text format rows) inside the open
     * transaction; NULL when the backend has none (keyed folds then upsert
     * row by row). */
    int (*copy_in)(es__target *t, void *self, const char *copy_sql,
                   const char *data, size_t len);

    /* In pipeline mode: sends what is queued without waiting for its
     * results (pipeline_sync still reads them); NULL when there is nothing
     * to gain. */
    int (*pipeline_flush)(es__target *t, void *self);
} es__target_backend;

struct es__target {
    es__handle h;
    char *name; /* the URI without a password, for messages */
    const es__target_backend *backend;
    void *self;
    int in_pipeline;
};

/* ---- projections/target.c ---------------------------------------------- */

/* Opens the target at uri on backend (adapters/target_open.c picks it).
 * *out is set whenever a handle could be made. */
int es__target_open_backend(es__target **out, const es__target_backend *b,
                            const char *uri);
/* Picks the backend by scheme: sqlite:PATH, postgresql://, postgres://. */
int es__target_open(es__target **out, const char *uri);
void es__target_close(es__target *t);

int es__target_begin(es__target *t);
int es__target_commit(es__target *t);
void es__target_rollback(es__target *t);
int es__target_exec(es__target *t, const char *statement,
                    const es_sql_value *params, size_t n, int64_t *changes,
                    int tag);
/* v as compact JSON text (sorted keys) in a string freed with es__free,
 * or NULL when out of memory. */
char *es__json_text(const json_t *v);

/* A statement without parameters. */
int es__target_exec0(es__target *t, const char *statement);
int es__target_query(es__target *t, const char *statement,
                     const es_sql_value *params, size_t n, es__row_cb cb,
                     void *ud);
/* A row callback (es__row_cb) keeping the first column of a row as an
 * int64: found 1 when it was one. */
typedef struct es__i64_row {
    int64_t v;
    int found;
} es__i64_row;
int es__target_i64_row(int ncols, const char *const *vals, void *ud);

/* Enters pipeline mode when the backend has one; 1 when it did. */
int es__target_pipeline_begin(es__target *t);
int es__target_pipeline_sync(es__target *t, int *failed_tag);
/* 0 when what is queued went to the target, which works on it while the
 * caller does something else before es__target_pipeline_sync; -1 when
 * not in pipeline mode or the backend cannot. */
int es__target_pipeline_flush(es__target *t);

/* ---- The es_sql handed to handlers (projections/worker.c) --------------- */

struct es_sql {
    es__handle h;
    es__target *t;
    int tag;        /* the statement tag (the event's index in its batch) */
    int failed;     /* a statement failed (its message is in h) */
};

/* ---- projections/source.c: the one place that reads the log ------------- */

/* seed_fn gives what stream_id was at the checkpoint (es_proj_resume; all
 * zero when the projection has no row for it): esfold/accept.h. lean: the
 * reader uses only the stream id, version, type, time, schema, payload and
 * position (es__log_read_partition_lean: the other text fields may be
 * NULL). */
int es__proj_source_read(es_log *log, int64_t *next_offset,
                         const char *aggregate_type, int32_t partition,
                         int64_t from_offset, size_t max_events, int lean,
                         es_seed_fn seed_fn, void *seed_data,
                         es_event_cb cb, void *user_data);

/* ---- projections/keyed.c: keyed folds ----------------------------------- */

typedef struct es__keyed es__keyed;
/* 1 when the fold reads no event field but the stream id, version, type,
 * times, position and payload (not the event id, not the metadata, no C
 * function), so that its worker may read the log lean. */
int es__keyed_lean(const es__keyed *k);

/* Parses the "keyed" member of a JSON projection into *out, with the
 * handlers (one per event type, ended by {NULL, NULL}) and the setup
 * (NULL-terminated) it generates, owned by *out. */
int es__keyed_load(es__keyed **out, const json_t *keyed, const char *path,
                   es_error *err);
/* The same from a C definition (es_projection_keyed); def is copied, but
 * its user_data and functions are used as they are. */
int es__keyed_new(es__keyed **out, const es_keyed_projection *def,
                  es_error *err);
void es__keyed_free(es__keyed *k);
const es_projection_handler *es__keyed_handlers(const es__keyed *k);
const char *const *es__keyed_setup(const es__keyed *k);
/* The keyed fold of p, or NULL when p is not one. */
const es__keyed *es__keyed_of(const es_projection *p);
/*
 * The documents a worker keeps across its batches, so that a batch reads
 * only the keys it does not hold (projections/keyed.c tells why that is
 * safe). At most ES__KEYED_CACHE_MAX documents stay between batches (a
 * fold with a "delete" operation keeps none); those the last batch did
 * not use are evicted first. One per worker; not thread-safe.
 */
#define ES__KEYED_CACHE_MAX 100000
typedef struct es__keyed_cache es__keyed_cache;
/* Keeps at most max documents between batches (the worker:
 * ES__KEYED_CACHE_MAX). 0 or ES_ENOMEM. */
int es__keyed_cache_new(es__keyed_cache **out, const es__keyed *k, size_t max);
/* Forgets every document: after a batch that did not commit, or whose
 * documents were written by another path (the careful one). */
void es__keyed_cache_reset(es__keyed_cache *c);
void es__keyed_cache_free(es__keyed_cache *c); /* accepts NULL */
size_t es__keyed_cache_size(const es__keyed_cache *c);
/* Folds evs[0..n) (all with a handler, none blocked) into their keys'
 * documents with one read (of the keys cache does not hold; cache may be
 * NULL) and one write-back, inside the batch's transaction. The cache's
 * entries change in place: reset it unless the batch commits. Returns 0; ES_EUSER when an event does not fold (the worker
 * then redoes the batch event by event); ES_ECONFLICT when another
 * worker changed one of the documents after this batch read it (the write
 * is a compare-and-set on the version column: the worker rolls back and
 * redoes the batch); ES_EIO / ES_ENOMEM (t's message is set). */
int es__keyed_apply(es__target *t, const es__keyed *k, es__keyed_cache *cache,
                    const es_event *const *evs, size_t n);
/* es__keyed_apply in steps, for a batch read in chunks (the worker's
 * keyed path): begin, fold each chunk (its events may be freed after),
 * then write every document the batch changed. Same return codes; a
 * failure resets the cache. */
void es__keyed_begin(es__keyed_cache *c);
int es__keyed_fold(es__target *t, const es__keyed *k, es__keyed_cache *c,
                   const es_event *const *evs, size_t n);
int es__keyed_write(es__target *t, const es__keyed *k, es__keyed_cache *c);
/* The chunks of batch_size events a keyed fold's transaction folds at
 * most (the worker's keyed path), and its default batch_size. */
#define ES__KEYED_TXN_CHUNKS 16
#define ES__KEYED_BATCH_DEFAULT 10000

/* ---- Names -------------------------------------------------------------- */

/* The prefix of the worker's own tables in the target. */
#define ES__PROJ_PREFIX "es_proj_"

/* A partition's checkpoint ($1 projection, $2 type, $3 partition): the
 * worker's and the waiters' (projections/wait.c) one query of it. */
#define ES__PROJ_CKPT_GET_SQL \
    "SELECT next_offset FROM " ES__PROJ_PREFIX "checkpoints" \
    " WHERE projection = $1 AND agg_type = $2 AND partition_no = $3"

/* 1 when s ("#...") ends the name of a rebuild's own worker
 * (projections/rebuild.c). */
int es__proj_internal_suffix(const char *s);

/* The handler of p for events of type (its own, else "*"), or NULL. */
es_projection_handler_fn es__projection_handler(const es_projection *p,
                                                const char *type);

/* Checks a projection definition; 0 or ES_EINVAL with err set. */
int es__projection_check(const es_projection *p, es_error *err);

#endif

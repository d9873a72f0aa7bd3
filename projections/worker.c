/*
 * projections/worker.c - the projection worker: batches, checkpoints with
 * a compare-and-set, resume versions, dead letters, the heartbeat.
 *
 * A batch of one partition is applied in one target transaction:
 *   1. dead letters whose stream no longer has a 'failed' row (retried or
 *      skipped by an operator, or waiting behind one) are applied first,
 *      in version order, and deleted;
 *   2. the streams that still have dead letters are loaded: their new
 *      events are parked behind them as 'waiting';
 *      when the partition had none after its last batch, 1 and 2 are one
 *      check instead (a row of them, LIMIT 1), queued with the rest: if it
 *      finds one after all (a rebuild's swap, another worker), the batch
 *      is rolled back and done again the full way;
 *   3. the checkpoint row moves from the position this worker read from to
 *      the one after the batch (UPDATE .. WHERE next_offset = previous):
 *      no row changed means another worker got there first, and the whole
 *      transaction rolls back (ES_ECONFLICT);
 *   4. each event goes to its handler;
 *   5. es_proj_resume gets the last version (and commit place) of every
 *      stream touched: what a seeded partition read resumes from.
 * The fast path runs handlers without savepoints (pipelined on
 * PostgreSQL). When a handler or one of its statements fails, the batch is
 * rolled back and done again "carefully": a savepoint per event, so that a
 * failing event is retried and then dead-lettered alone.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "esfold/time.h"
#include "projections/assign.h"
#include "projections/target_backend.h"

#define P ES__PROJ_PREFIX

static const char *const meta_sql[] = {
    "CREATE TABLE IF NOT EXISTS " P "projections ("
    " name TEXT NOT NULL PRIMARY KEY, version BIGINT NOT NULL,"
    " created_us BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS " P "checkpoints ("
    " projection TEXT NOT NULL, agg_type TEXT NOT NULL,"
    " partition_no BIGINT NOT NULL, next_offset BIGINT NOT NULL,"
    " updated_us BIGINT NOT NULL,"
    " PRIMARY KEY (projection, agg_type, partition_no))",
    "CREATE TABLE IF NOT EXISTS " P "resume ("
    " projection TEXT NOT NULL, agg_type TEXT NOT NULL,"
    " partition_no BIGINT NOT NULL, stream_id TEXT NOT NULL,"
    " version BIGINT NOT NULL, commit_id TEXT,"
    " commit_size BIGINT NOT NULL, commit_index BIGINT NOT NULL,"
    " PRIMARY KEY (projection, agg_type, partition_no, stream_id))",
    "CREATE TABLE IF NOT EXISTS " P "heartbeats ("
    " projection TEXT NOT NULL, worker TEXT NOT NULL,"
    " pid BIGINT NOT NULL, state TEXT NOT NULL, batches BIGINT NOT NULL,"
    " updated_us BIGINT NOT NULL, PRIMARY KEY (projection, worker))",
    "CREATE TABLE IF NOT EXISTS " P "deadletters ("
    " projection TEXT NOT NULL, agg_type TEXT NOT NULL,"
    " stream_id TEXT NOT NULL, version BIGINT NOT NULL,"
    " partition_no BIGINT NOT NULL, log_offset BIGINT NOT NULL,"
    " event_type TEXT NOT NULL, status TEXT NOT NULL,"
    " attempts BIGINT NOT NULL, error TEXT NOT NULL, event TEXT NOT NULL,"
    " created_us BIGINT NOT NULL, updated_us BIGINT NOT NULL,"
    " PRIMARY KEY (projection, agg_type, stream_id, version))",
};

static const char cas_sql[] =
    "UPDATE " P "checkpoints SET next_offset = $4, updated_us = $5"
    " WHERE projection = $1 AND agg_type = $2 AND partition_no = $3"
    " AND next_offset = $6";
static const char ckpt_init_sql[] =
    "INSERT INTO " P "checkpoints (projection, agg_type, partition_no,"
    " next_offset, updated_us) VALUES ($1, $2, $3, 0, $4)"
    " ON CONFLICT (projection, agg_type, partition_no) DO NOTHING";
static const char ckpt_get_sql[] = ES__PROJ_CKPT_GET_SQL;
/* PostgreSQL: a keyed fold's batch locks its checkpoint row first. */
static const char ckpt_lock_sql[] = ES__PROJ_CKPT_GET_SQL " FOR UPDATE";
/* Every stream of a batch in one statement: $4 is a JSON object of
 * {"STREAM": {"v": version, "c": commit id, "n": commit size, "i": commit
 * index}}; json_each is the same on both targets (PostgreSQL's for json,
 * SQLite's JSON1), and SQLite needs the WHERE to read ON CONFLICT as the
 * upsert's. */
static const char resume_rows_sql[] =
    "INSERT INTO " P "resume (projection, agg_type, partition_no, stream_id,"
    " version, commit_id, commit_size, commit_index)"
    " SELECT $1, $2, $3, key, CAST(value ->> 'v' AS BIGINT), value ->> 'c',"
    " CAST(value ->> 'n' AS BIGINT), CAST(value ->> 'i' AS BIGINT)"
    " FROM json_each($4) WHERE true"
    " ON CONFLICT (projection, agg_type, partition_no, stream_id)"
    " DO UPDATE SET version = excluded.version, commit_id = excluded.commit_id,"
    " commit_size = excluded.commit_size, commit_index = excluded.commit_index";
static const char resume_get_sql[] =
    "SELECT version, commit_id, commit_size, commit_index FROM " P "resume"
    " WHERE projection = $1 AND agg_type = $2 AND partition_no = $3"
    " AND stream_id = $4";
static const char heartbeat_sql[] =
    "INSERT INTO " P "heartbeats (projection, worker, pid, state, batches,"
    " updated_us) VALUES ($1, $2, $3, $4, $5, $6)"
    " ON CONFLICT (projection, worker) DO UPDATE SET pid = excluded.pid,"
    " state = excluded.state, batches = excluded.batches,"
    " updated_us = excluded.updated_us";
static const char dl_insert_sql[] =
    "INSERT INTO " P "deadletters (projection, agg_type, stream_id, version,"
    " partition_no, log_offset, event_type, status, attempts, error, event,"
    " created_us, updated_us)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)"
    " ON CONFLICT (projection, agg_type, stream_id, version) DO UPDATE SET"
    " status = excluded.status, attempts = excluded.attempts,"
    " error = excluded.error, updated_us = excluded.updated_us";
/* Dead letters of streams without a 'failed' one: to apply now. */
#define DL_PENDING_WHERE \
    " FROM " P "deadletters d WHERE d.projection = $1 AND d.agg_type = $2" \
    " AND d.partition_no = $3 AND d.status IN ('retry', 'waiting')" \
    " AND NOT EXISTS (SELECT 1 FROM " P "deadletters f" \
    " WHERE f.projection = d.projection AND f.agg_type = d.agg_type" \
    " AND f.stream_id = d.stream_id AND f.status = 'failed')"
static const char dl_pending_count_sql[] = "SELECT count(*)" DL_PENDING_WHERE;
static const char dl_pending_sql[] =
    "SELECT d.stream_id, d.version, d.event, d.attempts" DL_PENDING_WHERE
    " ORDER BY d.stream_id, d.version";
static const char dl_delete_sql[] =
    "DELETE FROM " P "deadletters WHERE projection = $1 AND agg_type = $2"
    " AND stream_id = $3 AND version = $4";
static const char dl_any_sql[] =
    "SELECT 1 FROM " P "deadletters WHERE projection = $1 AND agg_type = $2"
    " AND partition_no = $3 AND status IN ('failed', 'retry', 'waiting')"
    " LIMIT 1";
static const char dl_blocked_sql[] =
    "SELECT DISTINCT stream_id FROM " P "deadletters WHERE projection = $1"
    " AND agg_type = $2 AND partition_no = $3"
    " AND status IN ('failed', 'retry', 'waiting')";

typedef struct part {
    const char *agg_type; /* borrowed from the projection */
    int32_t partition;
    int64_t next;         /* the checkpoint as this worker knows it */
    int dl_none;          /* no dead letters after its last batch here */
} part;

/* The memory of a batch's events (es__event_copy_flat): blocks reused
 * from one batch to the next, so that collecting an event is one bump of
 * a pointer and a copy, not an allocation per string. */
typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    _Alignas(max_align_t) unsigned char data[];
} arena_block;

/* Streams with dead letters in the partition being applied. */
typedef struct strset {
    char **v;
    size_t n, cap;
} strset;

struct es_projection_worker {
    es__handle h;
    es_log *log;
    const es_projection *proj;
    es__target *t;
    es_projection_worker_options o;
    char worker_id[160];
    part *parts;
    size_t nparts;
    es_event **batch;    /* in the arena */
    size_t nbatch, capbatch;
    arena_block *arena, *cur;
    /* The next batch, read ahead while the target works on this one, in
     * an arena of its own (swap_ahead exchanges the two). */
    es_event **ahead;
    size_t nahead, capahead;
    arena_block *ahead_arena, *ahead_cur;
    const part *ahead_pt; /* its partition; NULL: none */
    int64_t ahead_from, ahead_next;
    const part *next_pt;  /* the partition the worker serves next */
    strset blocked;
    es_sql sql;
    int64_t batches;
    int64_t last_beat_us;
    es__assign *assign; /* which partitions it owns (projections/assign.c) */
    es__keyed_cache *kcache; /* a keyed fold's documents across batches */
};

/* ---- small helpers ------------------------------------------------------ */

static int strset_has(const strset *s, const char *x)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], x) == 0)
            return 1;
    return 0;
}

static int strset_add(strset *s, const char *x)
{
    if (strset_has(s, x))
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        if (es__grow((void **)&s->v, s->cap * sizeof *s->v,
                     cap * sizeof *s->v) != 0)
            return ES_ENOMEM;
        s->cap = cap;
    }
    if ((s->v[s->n] = es__strdup(x)) == NULL)
        return ES_ENOMEM;
    s->n++;
    return 0;
}

static void strset_clear(strset *s)
{
    for (size_t i = 0; i < s->n; i++)
        es__free(s->v[i]);
    s->n = 0;
}

static void clear_batch(es_projection_worker *w)
{
    for (size_t i = 0; i < w->nbatch; i++)
        es__event_flat_release(w->batch[i]);
    w->nbatch = 0;
    for (arena_block *b = w->arena; b; b = b->next)
        b->used = 0;
    w->cur = w->arena;
}

/* The batch and the one read ahead change places, with their arenas. */
static void swap_ahead(es_projection_worker *w)
{
    es_event **b = w->batch;
    size_t n = w->nbatch, cap = w->capbatch;
    arena_block *arena = w->arena, *cur = w->cur;
    w->batch = w->ahead;
    w->nbatch = w->nahead;
    w->capbatch = w->capahead;
    w->arena = w->ahead_arena;
    w->cur = w->ahead_cur;
    w->ahead = b;
    w->nahead = n;
    w->capahead = cap;
    w->ahead_arena = arena;
    w->ahead_cur = cur;
}

static void drop_ahead(es_projection_worker *w)
{
    swap_ahead(w);
    clear_batch(w);
    swap_ahead(w);
    w->ahead_pt = NULL;
}

static void free_arena(arena_block *b)
{
    while (b) {
        arena_block *next = b->next;
        es__free(b);
        b = next;
    }
}

#define ARENA_BLOCK (256 * 1024)

/* n bytes for an event of the batch, or NULL. */
static void *arena_alloc(es_projection_worker *w, size_t n)
{
    const size_t align = _Alignof(max_align_t);
    arena_block *b;
    void *p;
    n = (n + align - 1) / align * align;
    while (w->cur && w->cur->cap - w->cur->used < n && w->cur->next)
        w->cur = w->cur->next;
    if (w->cur == NULL || w->cur->cap - w->cur->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        if ((b = es__malloc(sizeof *b + cap)) == NULL)
            return NULL;
        b->used = 0;
        b->cap = cap;
        /* after cur: the blocks before it are full, those after it free */
        b->next = w->cur ? w->cur->next : NULL;
        if (w->cur)
            w->cur->next = b;
        else
            w->arena = b;
        w->cur = b;
    }
    p = w->cur->data + w->cur->used;
    w->cur->used += n;
    return p;
}

/* The target's message, copied onto the worker. */
static int target_fail(es_projection_worker *w, int rc, const char *what)
{
    return es__fail(&w->h, rc, "projection %s: %s: %s", w->proj->name, what,
                    es_errmsg(w->t));
}

static es_projection_handler_fn find_handler(const es_projection *p,
                                             const char *type)
{
    es_projection_handler_fn any = NULL;
    for (const es_projection_handler *h = p->handlers; h && h->event_type; h++) {
        if (strcmp(h->event_type, type) == 0)
            return h->fn;
        if (strcmp(h->event_type, "*") == 0)
            any = h->fn;
    }
    return any;
}

es_projection_handler_fn es__projection_handler(const es_projection *p,
                                                const char *type)
{
    return find_handler(p, type);
}

/* "account/acct-7 v3 Deposited (p0@17)" */
static void event_context(char *buf, size_t size, const es_event *ev)
{
    snprintf(buf, size, "%s/%s v%lld %s (p%d@%lld)", ev->aggregate_type,
             ev->stream_id, (long long)ev->version, ev->type,
             (int)ev->position.partition, (long long)ev->position.offset);
}

/* ---- the SQL interface -------------------------------------------------- */

int es_sql_exec(es_sql *sql, const char *statement, const es_sql_value *params,
                size_t n)
{
    int rc;
    if (sql == NULL || statement == NULL || (n > 0 && params == NULL))
        return ES_EINVAL;
    rc = es__target_exec(sql->t, statement, params, n, NULL, sql->tag);
    if (rc != 0) {
        sql->failed = 1;
        es__fail(&sql->h, rc, "%s", es_errmsg(sql->t));
    }
    return rc;
}

int es_sql_fail(es_sql *sql, const char *fmt, ...)
{
    va_list ap;
    if (sql == NULL)
        return ES_EUSER;
    va_start(ap, fmt);
    es__vfail(&sql->h, ES_EUSER, fmt, ap);
    va_end(ap);
    sql->failed = 1;
    return ES_EUSER;
}

const char *es_sql_errmsg(const es_sql *sql)
{
    return sql ? sql->h.errmsg : "no es_sql";
}

/* ---- definitions -------------------------------------------------------- */

int es__projection_check(const es_projection *p, es_error *err)
{
    size_t n;
    if (p == NULL)
        return es__err(err, ES_EINVAL, "no projection");
    if (p->struct_version != ES_PROJECTION_VERSION)
        return es__err(err, ES_EINVAL, "es_projection struct_version %u is not "
                       "supported (expected %u)", p->struct_version,
                       (unsigned)ES_PROJECTION_VERSION);
    if (p->name == NULL || (n = strlen(p->name)) == 0 || n > 100)
        return es__err(err, ES_EINVAL, "a projection needs a name of 1 to 100 "
                       "bytes");
    for (const char *c = p->name; *c; c++)
        if (*c == '#' && c > p->name && es__proj_internal_suffix(c))
            break; /* "NAME#rebuild", "NAME#asof-...": projections/rebuild.c */
        else if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
              (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' || *c == '.'))
            return es__err(err, ES_EINVAL, "projection name '%s': only letters, "
                           "digits, '_', '-' and '.'", p->name);
    if (p->version < 1)
        return es__err(err, ES_EINVAL, "projection %s: version must be >= 1",
                       p->name);
    if (p->follows == NULL || p->follows[0] == NULL)
        return es__err(err, ES_EINVAL, "projection %s follows no aggregate type",
                       p->name);
    return 0;
}

/* ---- opening ------------------------------------------------------------ */

static int read_checkpoint(es_projection_worker *w, part *pt)
{
    es_sql_value q[] = {ES_SQL_STR(w->proj->name), ES_SQL_STR(pt->agg_type),
                        ES_SQL_I64(pt->partition)};
    es__i64_row r = {0, 0};
    int rc = es__target_query(w->t, ckpt_get_sql, q, 3, es__target_i64_row, &r);
    if (rc != 0)
        return target_fail(w, rc, "reading a checkpoint");
    if (!r.found)
        return es__fail(&w->h, ES_ECORRUPT, "projection %s: no checkpoint row "
                        "for %s partition %d", w->proj->name, pt->agg_type,
                        (int)pt->partition);
    pt->next = r.v;
    pt->dl_none = 0; /* someone else may have moved it */
    return 0;
}

/* Creates the es_proj_ tables, runs the projection's setup when the target
 * does not have it, in one transaction. */
static int setup(es_projection_worker *w)
{
    const es_projection *p = w->proj;
    es_sql_value q[] = {ES_SQL_STR(p->name), ES_SQL_I64(p->version),
                        ES_SQL_I64(es_time_now_us())};
    es__i64_row r = {0, 0};
    int rc;

    if ((rc = es__target_begin(w->t)) != 0)
        return target_fail(w, rc, "setting up");
    if (w->t->backend->setup_lock &&
        (rc = w->t->backend->setup_lock(w->t, w->t->self)) != 0)
        goto fail;
    for (size_t i = 0; i < sizeof meta_sql / sizeof *meta_sql; i++)
        if ((rc = es__target_exec0(w->t, meta_sql[i])) != 0)
            goto fail;
    if ((rc = es__target_query(w->t, "SELECT version FROM " P "projections "
                               "WHERE name = $1", q, 1, es__target_i64_row, &r)) != 0)
        goto fail;
    if (r.found && r.v != p->version) {
        es__target_rollback(w->t);
        return es__fail(&w->h, ES_ECONFLICT, "projection %s: the target %s has "
                        "version %lld of it, this is version %d: rebuild it "
                        "(`esfold project rebuild %s --target %s`, or --file "
                        "F for a projection file), then run it",
                        p->name, w->t->name, (long long)r.v, (int)p->version,
                        p->name, w->t->name);
    }
    if (!r.found) {
        for (size_t i = 0; p->setup && p->setup[i]; i++)
            if ((rc = es__target_exec0(w->t, p->setup[i])) != 0) {
                es__fail(&w->h, rc, "projection %s: setup statement %zu: %s",
                         p->name, i + 1, es_errmsg(w->t));
                es__target_rollback(w->t);
                return rc;
            }
        if ((rc = es__target_exec(w->t, "INSERT INTO " P "projections (name, "
                                  "version, created_us) VALUES ($1, $2, $3)",
                                  q, 3, NULL, -1)) != 0)
            goto fail;
    }
    for (size_t i = 0; i < w->nparts; i++) {
        es_sql_value c[] = {ES_SQL_STR(p->name), ES_SQL_STR(w->parts[i].agg_type),
                            ES_SQL_I64(w->parts[i].partition),
                            ES_SQL_I64(es_time_now_us())};
        if ((rc = es__target_exec(w->t, ckpt_init_sql, c, 4, NULL, -1)) != 0)
            goto fail;
    }
    if ((rc = es__target_commit(w->t)) != 0)
        goto fail;
    for (size_t i = 0; i < w->nparts; i++)
        if ((rc = read_checkpoint(w, &w->parts[i])) != 0)
            return rc;
    return 0;
fail:
    target_fail(w, rc, "setting up");
    es__target_rollback(w->t);
    return rc;
}

static int heartbeat(es_projection_worker *w, const char *state, int force)
{
    int64_t now = es_time_now_us();
    es_sql_value q[] = {ES_SQL_STR(w->proj->name), ES_SQL_STR(w->worker_id),
                        ES_SQL_I64((int64_t)getpid()), ES_SQL_STR(state),
                        ES_SQL_I64(w->batches), ES_SQL_I64(now)};
    int rc;
    if (!force && now - w->last_beat_us < 1000000)
        return 0;
    if ((rc = es__target_exec(w->t, heartbeat_sql, q, 6, NULL, -1)) != 0)
        return target_fail(w, rc, "writing the heartbeat");
    w->last_beat_us = now;
    return 0;
}

int es_projection_worker_open(es_projection_worker **out, es_log *log,
                              const es_projection *proj, const char *target_uri,
                              const es_projection_worker_options *opts)
{
    es_projection_worker *w;
    es_error err;
    size_t nparts = 0;
    char host[64];
    int rc;

    if (out == NULL)
        return ES_EINVAL;
    *out = NULL;
    if ((w = es__calloc(1, sizeof *w)) == NULL)
        return ES_ENOMEM;
    es__handle_init(&w->h);
    es__handle_init(&w->sql.h);
    *out = w;
    w->log = log;
    w->proj = proj;
    if (log == NULL)
        return es__fail(&w->h, ES_EINVAL, "no log");
    if (es__projection_check(proj, &err) != 0)
        return es__fail(&w->h, ES_EINVAL, "%s", err.text);
    if (opts && opts->version != ES_PROJECTION_WORKER_OPTIONS_VERSION &&
        opts->version != 1)
        return es__fail(&w->h, ES_EINVAL, "es_projection_worker_options "
                        "version %u is not supported", opts->version);
    {
        es_projection_worker_options d = ES_PROJECTION_WORKER_OPTIONS_INIT;
        w->o = d;
    }
    if (opts) /* version 1 ends before share */
        memcpy(&w->o, opts, opts->version == 1
                                ? offsetof(es_projection_worker_options, share)
                                : sizeof w->o);
    if (w->o.batch_size == 0) /* a keyed fold holds a chunk at a time */
        w->o.batch_size = es__keyed_of(proj) ? ES__KEYED_BATCH_DEFAULT : 1000;
    if (w->o.max_attempts <= 0)
        w->o.max_attempts = 3;
    if (w->o.backoff_ms == 0)
        w->o.backoff_ms = 10;
    if (w->o.worker_id) {
        snprintf(w->worker_id, sizeof w->worker_id, "%s", w->o.worker_id);
    } else {
        if (gethostname(host, sizeof host) != 0)
            snprintf(host, sizeof host, "localhost");
        host[sizeof host - 1] = '\0';
        snprintf(w->worker_id, sizeof w->worker_id, "%s:%ld", host,
                 (long)getpid());
    }
    w->o.worker_id = NULL;
    if (target_uri == NULL)
        target_uri = getenv("ESFOLD_TARGET");
    if (target_uri == NULL)
        target_uri = "";
    rc = es__target_open(&w->t, target_uri);
    if (w->t == NULL)
        return es__fail(&w->h, rc, "out of memory");
    if (rc != 0)
        return es__fail(&w->h, rc, "%s", es_errmsg(w->t));
    w->sql.t = w->t;

    /* The partitions of every followed type. */
    for (size_t i = 0; proj->follows[i]; i++) {
        int32_t n;
        if ((rc = es_log_partition_count(log, &n, proj->follows[i])) != 0)
            return es__fail(&w->h, rc, "projection %s: %s: %s", proj->name,
                            proj->follows[i], es_errmsg(log));
        if (es__grow((void **)&w->parts, nparts * sizeof *w->parts,
                     (nparts + (size_t)n) * sizeof *w->parts) != 0)
            return es__fail(&w->h, ES_ENOMEM, "out of memory");
        for (int32_t k = 0; k < n; k++) {
            w->parts[nparts].agg_type = proj->follows[i];
            w->parts[nparts].partition = k;
            w->parts[nparts].next = 0;
            w->parts[nparts].dl_none = 0;
            nparts++;
        }
    }
    w->nparts = nparts;
    if (es__keyed_of(proj) &&
        es__keyed_cache_new(&w->kcache, es__keyed_of(proj),
                            ES__KEYED_CACHE_MAX) != 0)
        return es__fail(&w->h, ES_ENOMEM, "out of memory");
    if ((rc = setup(w)) != 0)
        return rc;
    if ((rc = es__assign_open(&w->assign, &w->h, log, w->t, proj, w->worker_id,
                              w->o.share, w->o.lease_ms)) != 0)
        return rc;
    return heartbeat(w, "running", 1);
}

void es_projection_worker_close(es_projection_worker *w)
{
    if (w == NULL)
        return;
    if (w->t && w->t->self && w->proj && w->proj->name)
        (void)heartbeat(w, "stopped", 1);
    es__assign_close(w->assign);
    es__keyed_cache_free(w->kcache);
    drop_ahead(w);
    clear_batch(w);
    es__free(w->batch);
    es__free(w->ahead);
    free_arena(w->arena);
    free_arena(w->ahead_arena);
    strset_clear(&w->blocked);
    es__free(w->blocked.v);
    es__free(w->parts);
    es__target_close(w->t);
    es__free(w);
}

/* ---- a batch ------------------------------------------------------------ */

static int collect(const es_event *ev, void *ud)
{
    es_projection_worker *w = ud;
    if (w->nbatch == w->capbatch) {
        size_t cap = w->capbatch ? w->capbatch * 2 : 256;
        if (es__grow((void **)&w->batch, w->capbatch * sizeof *w->batch,
                     cap * sizeof *w->batch) != 0)
            return 1;
        w->capbatch = cap;
    }
    {
        void *mem = arena_alloc(w, es__event_flat_size(ev));
        if (mem == NULL)
            return 1;
        w->batch[w->nbatch++] = es__event_copy_flat(mem, ev);
    }
    return 0;
}

typedef struct seed_ctx {
    es_projection_worker *w;
    const part *pt;
    /* the row read: version, commit id, size and index */
    int found;
    es_stream_seed seed;
    char commit[ES_NAME_MAX + 1];
} seed_ctx;

static int get_seed_row(int ncols, const char *const *vals, void *ud)
{
    seed_ctx *s = ud;
    int64_t size = 1, index = 0;
    if (ncols < 4 || vals[0] == NULL || es__parse_i64(&s->seed.version, vals[0]) != 0)
        return 0;
    s->found = 1;
    s->seed.commit_id = NULL;
    if (vals[1] && strlen(vals[1]) < sizeof s->commit) {
        snprintf(s->commit, sizeof s->commit, "%s", vals[1]);
        s->seed.commit_id = s->commit;
    }
    if (vals[2] && es__parse_i64(&size, vals[2]) == 0 && vals[3] &&
        es__parse_i64(&index, vals[3]) == 0 && size >= 1 && size <= INT32_MAX &&
        index >= -1 && index < size) {
        s->seed.commit_size = (int32_t)size;
        s->seed.commit_index = (int32_t)index;
    }
    return 0;
}

/* What the log's reader asks when it resumes a partition at the
 * checkpoint: the stream's last applied event's version and commit place
 * (esfold/accept.h), kept in es_proj_resume beside the checkpoint. */
static int seed(es_stream_seed *out, const char *stream_id, void *ud)
{
    seed_ctx *s = ud;
    es_sql_value q[] = {ES_SQL_STR(s->w->proj->name), ES_SQL_STR(s->pt->agg_type),
                        ES_SQL_I64(s->pt->partition), ES_SQL_STR(stream_id)};
    int rc;
    s->found = 0;
    memset(&s->seed, 0, sizeof s->seed);
    rc = es__target_query(s->w->t, resume_get_sql, q, 4, get_seed_row, s);
    if (rc == 0 && s->found)
        *out = s->seed;
    return rc;
}

/* A dead letter row for ev. */
static int dead_letter(es_projection_worker *w, const es_event *ev,
                       const char *status, int64_t attempts, const char *error)
{
    json_t *j = es_event_to_json(ev);
    char *text = j ? es__json_text(j) : NULL;
    int rc;
    json_decref(j);
    if (text == NULL)
        return es__fail(&w->h, ES_ENOMEM, "out of memory");
    {
        es_sql_value q[] = {
            ES_SQL_STR(w->proj->name), ES_SQL_STR(ev->aggregate_type),
            ES_SQL_STR(ev->stream_id), ES_SQL_I64(ev->version),
            ES_SQL_I64(ev->position.partition), ES_SQL_I64(ev->position.offset),
            ES_SQL_STR(ev->type), ES_SQL_STR(status), ES_SQL_I64(attempts),
            ES_SQL_STR(error), ES_SQL_STR(text), ES_SQL_I64(es_time_now_us())};
        rc = es__target_exec(w->t, dl_insert_sql, q, 12, NULL, -1);
    }
    es__free(text);
    if (rc != 0)
        return target_fail(w, rc, "writing a dead letter");
    return 0;
}

enum { APPLIED = 0, DEAD = 1 };

/*
 * Applies ev carefully: a savepoint, up to max_attempts tries. Returns
 * APPLIED, DEAD (dead-lettered; *why has the reason), or a negative code
 * (the worker's message is set) when the batch must stop.
 */
static int apply_careful(es_projection_worker *w, es_projection_handler_fn fn,
                         const es_event *ev, int64_t prior_attempts)
{
    char ctx[ES_STREAM_ID_MAX + 2 * ES_NAME_MAX + 64];
    int backoff = w->o.backoff_ms;
    int attempts, rc;

    event_context(ctx, sizeof ctx, ev);
    for (attempts = 1;; attempts++) {
        if ((rc = es__target_exec0(w->t, "SAVEPOINT es_proj_event")) != 0)
            return target_fail(w, rc, "a savepoint");
        w->sql.failed = 0;
        es__clear(&w->sql.h);
        rc = fn(&w->sql, ev, w->proj->user_data);
        if (rc == 0 && !w->sql.failed) {
            if ((rc = es__target_exec0(w->t, "RELEASE SAVEPOINT es_proj_event")) != 0)
                return target_fail(w, rc, "releasing a savepoint");
            return APPLIED;
        }
        if (w->sql.h.errmsg[0] == '\0')
            es__fail(&w->sql.h, ES_EUSER, "the handler returned %d", rc);
        if ((rc = es__target_exec0(w->t, "ROLLBACK TO SAVEPOINT es_proj_event")) != 0 ||
            (rc = es__target_exec0(w->t, "RELEASE SAVEPOINT es_proj_event")) != 0)
            return es__fail(&w->h, ES_EIO, "projection %s: %s: %s (and then: %s)",
                            w->proj->name, ctx, w->sql.h.errmsg,
                            es_errmsg(w->t));
        if (attempts >= w->o.max_attempts)
            break;
        es__sleep_ms(backoff);
        if (backoff > 0 && backoff < 10000)
            backoff *= 2;
    }
    es__fail(&w->h, ES_EUSER, "projection %s: %s: %s", w->proj->name, ctx,
             w->sql.h.errmsg);
    if (w->o.on_failure == ES_PROJECTION_STOP)
        return ES_EUSER;
    if ((rc = dead_letter(w, ev, "failed", prior_attempts + attempts,
                          w->sql.h.errmsg)) != 0)
        return rc;
    if (strset_add(&w->blocked, ev->stream_id) != 0)
        return es__fail(&w->h, ES_ENOMEM, "out of memory");
    return DEAD;
}

/* Pending dead letters of the partition, read before they are applied. */
typedef struct dl_row {
    char *stream_id;
    int64_t version, attempts;
    es_event *ev;
} dl_row;

typedef struct dl_rows {
    dl_row *v;
    size_t n, cap;
    int oom;
} dl_rows;

static int get_dl_row(int ncols, const char *const *vals, void *ud)
{
    dl_rows *r = ud;
    dl_row *row;
    json_t *j;
    if (ncols < 4 || !vals[0] || !vals[1] || !vals[2] || !vals[3])
        return 0;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        if (es__grow((void **)&r->v, r->cap * sizeof *r->v,
                     cap * sizeof *r->v) != 0) {
            r->oom = 1;
            return 1;
        }
        r->cap = cap;
    }
    row = &r->v[r->n];
    memset(row, 0, sizeof *row);
    if ((row->stream_id = es__strdup(vals[0])) == NULL) {
        r->oom = 1;
        return 1;
    }
    es__parse_i64(&row->version, vals[1]);
    es__parse_i64(&row->attempts, vals[3]);
    if ((j = json_loads(vals[2], 0, NULL)) != NULL) {
        es_error err;
        (void)es_event_from_json(&row->ev, j, &err);
        json_decref(j);
    }
    r->n++;
    return 0;
}

static void dl_rows_free(dl_rows *r)
{
    for (size_t i = 0; i < r->n; i++) {
        es__free(r->v[i].stream_id);
        es_event_free(r->v[i].ev);
    }
    es__free(r->v);
}

static int get_blocked_row(int ncols, const char *const *vals, void *ud)
{
    return ncols >= 1 && vals[0] ? strset_add(ud, vals[0]) != 0 : 0;
}

/* Step 1 and 2 of a batch (inside its transaction). */
static int apply_dead_letters(es_projection_worker *w, const part *pt,
                              es_projection_step *st)
{
    es_sql_value q[] = {ES_SQL_STR(w->proj->name), ES_SQL_STR(pt->agg_type),
                        ES_SQL_I64(pt->partition)};
    dl_rows rows = {NULL, 0, 0, 0};
    const char *stuck = NULL; /* a stream that failed again here */
    int rc;

    strset_clear(&w->blocked);
    rc = es__target_query(w->t, dl_pending_sql, q, 3, get_dl_row, &rows);
    if (rows.oom)
        rc = es__fail(&w->h, ES_ENOMEM, "out of memory");
    else if (rc != 0)
        rc = target_fail(w, rc, "reading dead letters");
    for (size_t i = 0; rc == 0 && i < rows.n; i++) {
        dl_row *r = &rows.v[i];
        es_projection_handler_fn fn;
        if (stuck && strcmp(stuck, r->stream_id) == 0)
            continue; /* stays 'waiting' behind the one that failed */
        stuck = NULL;
        if (r->ev == NULL) {
            rc = es__fail(&w->h, ES_ECORRUPT, "projection %s: the dead letter "
                          "of %s/%s v%lld holds no readable event",
                          w->proj->name, pt->agg_type, r->stream_id,
                          (long long)r->version);
            break;
        }
        fn = find_handler(w->proj, r->ev->type);
        rc = fn ? apply_careful(w, fn, r->ev, r->attempts) : APPLIED;
        if (rc == DEAD) {
            stuck = r->stream_id;
            rc = 0;
            continue;
        }
        if (rc < 0)
            break;
        {
            es_sql_value d[] = {ES_SQL_STR(w->proj->name),
                                ES_SQL_STR(pt->agg_type),
                                ES_SQL_STR(r->stream_id), ES_SQL_I64(r->version)};
            if ((rc = es__target_exec(w->t, dl_delete_sql, d, 4, NULL, -1)) != 0)
                rc = target_fail(w, rc, "deleting a dead letter");
        }
        st->retried++;
    }
    dl_rows_free(&rows);
    if (rc != 0)
        return rc;
    strset_clear(&w->blocked);
    if ((rc = es__target_query(w->t, dl_blocked_sql, q, 3, get_blocked_row,
                               &w->blocked)) != 0)
        return rc == ES_EUSER ? es__fail(&w->h, ES_ENOMEM, "out of memory")
                              : target_fail(w, rc, "reading dead letters");
    return 0;
}

static int by_stream_then_version(const void *a, const void *b)
{
    const es_event *x = *(es_event *const *)a, *y = *(es_event *const *)b;
    int c = strcmp(x->stream_id, y->stream_id);
    if (c != 0)
        return c;
    return x->version < y->version ? -1 : x->version > y->version;
}

/* Step 5: the last version of each stream of the batch, in one statement
 * (one upsert per stream and batch halved the rate from a Kafka log). */
static int write_resume(es_projection_worker *w, const part *pt)
{
    es_event **sorted;
    json_t *rows = NULL;
    int rc = 0;
    /* A log whose every stored event is accepted (SQLite) needs no seeds:
     * no resume rows at all. */
    if (w->nbatch == 0 || !es__log_needs_seeds(w->log))
        return 0;
    if ((sorted = es__malloc(w->nbatch * sizeof *sorted)) == NULL ||
        (rows = json_object()) == NULL) {
        rc = es__fail(&w->h, ES_ENOMEM, "out of memory");
        goto done;
    }
    memcpy(sorted, w->batch, w->nbatch * sizeof *sorted);
    qsort(sorted, w->nbatch, sizeof *sorted, by_stream_then_version);
    for (size_t i = 0; i < w->nbatch && rc == 0; i++) {
        const es_event *last = sorted[i];
        json_t *row;
        if (i + 1 < w->nbatch &&
            strcmp(last->stream_id, sorted[i + 1]->stream_id) == 0)
            continue;
        /* Stream ids are UTF-8: readers reject records whose are not. */
        row = json_pack("{s:I, s:s?, s:I, s:I}", "v", (json_int_t)last->version,
                        "c", last->commit_id,
                        "n", (json_int_t)(last->commit_size > 0 ? last->commit_size : 1),
                        "i", (json_int_t)last->commit_index);
        if (row == NULL || json_object_set_new(rows, last->stream_id, row) != 0)
            rc = es__fail(&w->h, ES_ENOMEM, "out of memory");
    }
    if (rc == 0 && json_object_size(rows) > 0) {
        es_sql_value q[] = {ES_SQL_STR(w->proj->name), ES_SQL_STR(pt->agg_type),
                            ES_SQL_I64(pt->partition), ES_SQL_JSONV(rows)};
        if ((rc = es__target_exec(w->t, resume_rows_sql, q, 4, NULL, -1)) != 0)
            rc = target_fail(w, rc, "writing resume versions");
    }
done:
    json_decref(rows);
    es__free(sorted);
    return rc;
}

/* An event of a stream that has a dead letter: parked behind it
 * (bookkeeping, no handler runs, so no savepoint). */
static int park(es_projection_worker *w, const es_event *ev,
                es_projection_step *mine)
{
    int rc = dead_letter(w, ev, "waiting", 0, "waiting behind an earlier "
                         "dead letter of its stream");
    if (rc == 0)
        mine->dead_lettered++;
    return rc;
}

/* Another worker moved pt's checkpoint: the batch rolls back. */
static int lost_checkpoint(es_projection_worker *w, part *pt)
{
    int64_t was = pt->next;
    int rc;
    es__target_rollback(w->t);
    if ((rc = read_checkpoint(w, pt)) != 0)
        return rc;
    return es__fail(&w->h, ES_ECONFLICT, "projection %s: %s partition %d: "
                    "the checkpoint moved from %lld to %lld under this "
                    "worker (another worker applied it): batch rolled back",
                    w->proj->name, pt->agg_type, (int)pt->partition,
                    (long long)was, (long long)pt->next);
}

/* The end of a batch whose checkpoint update changed cas_changes rows:
 * the commit, and its counts (mine) into st. 0, or a code (rolled back). */
static int finish_batch(es_projection_worker *w, part *pt, int64_t cas_changes,
                        int64_t next_after, es_projection_step *st,
                        const es_projection_step *mine)
{
    int rc;
    if (cas_changes != 1)
        return lost_checkpoint(w, pt);
    if ((rc = es__target_commit(w->t)) != 0) {
        target_fail(w, rc, "committing a batch");
        es__target_rollback(w->t);
        (void)read_checkpoint(w, pt); /* did it commit? the target knows */
        return rc;
    }
    pt->next = next_after;
    w->batches++;
    st->applied += mine->applied;
    st->skipped += mine->skipped;
    st->dead_lettered += mine->dead_lettered;
    st->retried += mine->retried;
    st->batches += 1;
    return 0;
}

/*
 * While the target works on the batch of pt (flushed, not yet read back):
 * the next partition's batch from the log, as step_partition would read
 * it, kept when it has events. Only from a log that needs no seeds (a
 * seed is a query, and the connection is busy). step_partition takes it
 * when it is still the batch to apply (same partition and offset: the
 * log's events at an offset do not change); it saves the worker's read of
 * the log from the time the target waits for it (12% of a run into
 * PostgreSQL).
 */
static void read_ahead(es_projection_worker *w, const part *pt,
                       int64_t next_after)
{
    const part *np = w->next_pt;
    int64_t from, next;
    int rc;

    drop_ahead(w);
    if (np == NULL || es__log_needs_seeds(w->log))
        return;
    from = next = np == pt ? next_after : np->next;
    swap_ahead(w);
    rc = es__proj_source_read(w->log, &next, np->agg_type, np->partition, from,
                              w->o.batch_size, 0, NULL, NULL, collect, w);
    if (rc != 0 || w->nbatch == 0)
        clear_batch(w); /* read again in its turn (and failed there) */
    else
        w->ahead_pt = np;
    swap_ahead(w);
    w->ahead_from = from;
    w->ahead_next = next;
}

#define REDO_CAREFULLY 1
#define REDO_KEYED 2 /* a keyed fold's compare-and-set missed: read again */
#define REDO_FULL 3  /* the partition has dead letters after all */
#define KEYED_TRIES 20

/*
 * The transaction of one batch (w->batch, read from pt->next up to
 * next_after). careful: a savepoint per event. Returns 0 (committed),
 * REDO_CAREFULLY (rolled back: a handler failed on the fast path),
 * REDO_KEYED (rolled back: another worker wrote a document of a keyed
 * fold after this one read it; not a lost checkpoint), REDO_FULL (rolled
 * back: the partition has dead letters after all), or a negative code
 * (rolled back; message set).
 */
static int apply_batch(es_projection_worker *w, part *pt, int64_t next_after,
                       int careful, es_projection_step *st)
{
    es_projection_step mine = {0, 0, 0, 0, 0, 0};
    const es__keyed *keyed = careful ? NULL : es__keyed_of(w->proj);
    const es_event **kevs = NULL; /* a keyed fold's events (fast path) */
    size_t nkevs = 0;
    int64_t cas_changes = -1, dl_seen = 0;
    int quick = !careful && pt->dl_none; /* steps 1 and 2 as one check */
    int pipelined = 0, failed_tag = -1, rc;
    es_sql_value cas[] = {ES_SQL_STR(w->proj->name), ES_SQL_STR(pt->agg_type),
                          ES_SQL_I64(pt->partition), ES_SQL_I64(next_after),
                          ES_SQL_I64(es_time_now_us()), ES_SQL_I64(pt->next)};

    if (quick) { /* BEGIN and the check queued with the batch */
        es_sql_value q[] = {ES_SQL_STR(w->proj->name), ES_SQL_STR(pt->agg_type),
                            ES_SQL_I64(pt->partition)};
        if (w->o.pipeline && !keyed)
            pipelined = es__target_pipeline_begin(w->t);
        if ((rc = es__target_begin(w->t)) != 0) {
            target_fail(w, rc, "beginning a batch");
            goto fail;
        }
        strset_clear(&w->blocked);
        if ((rc = es__target_exec(w->t, dl_any_sql, q, 3, &dl_seen, -1)) != 0) {
            target_fail(w, rc, "checking for dead letters");
            goto fail;
        }
    } else {
        if ((rc = es__target_begin(w->t)) != 0)
            return target_fail(w, rc, "beginning a batch");
        if ((rc = apply_dead_letters(w, pt, &mine)) != 0)
            goto fail;
        if (!careful && w->o.pipeline && !keyed)
            pipelined = es__target_pipeline_begin(w->t);
    }
    if (keyed && (kevs = es__malloc((w->nbatch + 1) * sizeof *kevs)) == NULL) {
        rc = es__fail(&w->h, ES_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = es__target_exec(w->t, cas_sql, cas, 6, &cas_changes, -1)) != 0) {
        target_fail(w, rc, "moving the checkpoint");
        goto fail;
    }
    for (size_t i = 0; i < w->nbatch; i++) {
        const es_event *ev = w->batch[i];
        es_projection_handler_fn fn = find_handler(w->proj, ev->type);
        if (fn == NULL) {
            mine.skipped++;
            continue;
        }
        if (strset_has(&w->blocked, ev->stream_id)) {
            if ((rc = park(w, ev, &mine)) != 0)
                goto fail;
            continue;
        }
        if (careful) {
            rc = apply_careful(w, fn, ev, 0);
            if (rc < 0)
                goto fail;
            if (rc == DEAD)
                mine.dead_lettered++;
            else
                mine.applied++;
            continue;
        }
        mine.applied++;
        if (keyed) { /* folded below, the whole batch at once */
            kevs[nkevs++] = ev;
            continue;
        }
        w->sql.tag = (int)i;
        w->sql.failed = 0;
        if (fn(&w->sql, ev, w->proj->user_data) != 0 || w->sql.failed)
            goto redo;
    }
    if (keyed && (rc = es__keyed_apply(w->t, keyed, w->kcache, kevs, nkevs)) != 0) {
        if (rc == ES_EUSER)
            goto redo;
        if (rc == ES_ECONFLICT && cas_changes == 1) {
            es__free(kevs);
            es__target_rollback(w->t);
            target_fail(w, rc, "folding a batch");
            return REDO_KEYED;
        }
        if (rc != ES_ECONFLICT) {
            target_fail(w, rc, "folding a batch");
            goto fail;
        }
        /* and the checkpoint moved too: that is reported below */
    }
    es__free(kevs);
    kevs = NULL;
    if ((rc = write_resume(w, pt)) != 0)
        goto fail;
    if (pipelined && es__target_pipeline_flush(w->t) == 0)
        read_ahead(w, pt, next_after);
    if (pipelined && (rc = es__target_pipeline_sync(w->t, &failed_tag)) != 0) {
        if (failed_tag >= 0)
            goto redo;
        target_fail(w, rc, "applying a batch");
        goto fail;
    }
    if (dl_seen > 0) { /* handlers ran as if there were none: undo */
        es__target_rollback(w->t);
        pt->dl_none = 0;
        return REDO_FULL;
    }
    if ((rc = finish_batch(w, pt, cas_changes, next_after, st, &mine)) == 0)
        pt->dl_none = w->blocked.n == 0;
    return rc;
redo:
    es__free(kevs);
    es__target_rollback(w->t);
    return REDO_CAREFULLY;
fail:
    es__free(kevs);
    es__target_rollback(w->t);
    return rc;
}

/* apply_batch, and the keyed fold's cache kept only when the fast path
 * committed (it holds what committed, and nothing else wrote those keys). */
static int apply_batch_keyed(es_projection_worker *w, part *pt,
                             int64_t next_after, int careful,
                             es_projection_step *st)
{
    int rc = apply_batch(w, pt, next_after, careful, st);
    if (rc != 0 || careful)
        es__keyed_cache_reset(w->kcache);
    return rc;
}

/* The next events of pt into w->batch: at most batch_size, from *next
 * (moved past what was read, rejected records included). lean: a keyed
 * fold that reads no event id and no metadata (es__keyed_lean) has them
 * left out where the log can (es__log_read_partition_lean). */
static int read_chunk(es_projection_worker *w, const part *pt, int64_t *next,
                      int lean)
{
    seed_ctx sc = {w, pt, 0, {0, NULL, 0, 0}, ""};
    int rc;
    clear_batch(w);
    rc = es__proj_source_read(w->log, next, pt->agg_type, pt->partition, *next,
                              w->o.batch_size, lean, seed, &sc, collect, w);
    if (rc == ES_EUSER)
        return es__fail(&w->h, ES_ENOMEM, "out of memory");
    if (rc != 0)
        return es__fail(&w->h, rc, "projection %s: reading %s partition %d: %s",
                        w->proj->name, pt->agg_type, (int)pt->partition,
                        es_errmsg(w->log));
    return 0;
}

/*
 * A keyed fold's batch (its fast path when the partition has no pending
 * dead letters): the events are read in chunks of batch_size, each folded
 * into the worker's documents and freed, up to the partition's head or
 * ES__KEYED_TXN_CHUNKS chunks; then every document the batch changed is
 * written once and the checkpoint moves, in one transaction. A key is
 * written once per transaction, so a long one writes less, and memory
 * holds a chunk of events and the documents, not the batch. The checkpoint
 * row is locked first (PostgreSQL: FOR UPDATE; SQLite: BEGIN IMMEDIATE
 * took the write lock), as apply_batch and a rebuild's swap take it, since
 * its new value is known only at the end. Returns 0, REDO_CAREFULLY (an
 * event does not fold: the caller goes the ordinary way, which redoes the
 * batch event by event), REDO_KEYED, or a negative code; *idle as
 * step_partition.
 */
static int keyed_stream(es_projection_worker *w, part *pt, es_projection_step *st,
                        int *idle)
{
    const es__keyed *keyed = es__keyed_of(w->proj);
    const int lean = es__keyed_lean(keyed);
    es_projection_step mine = {0, 0, 0, 0, 0, 0};
    const es_event **kevs = NULL;
    int64_t next_after = pt->next, from, cas_changes = -1;
    int chunks = 0;
    int pg = strcmp(w->t->backend->name, "postgresql") == 0, rc;
    es_sql_value q[] = {ES_SQL_STR(w->proj->name), ES_SQL_STR(pt->agg_type),
                        ES_SQL_I64(pt->partition)};
    es__i64_row r = {0, 0};

    if ((rc = read_chunk(w, pt, &next_after, lean)) != 0)
        return rc;
    if (w->nbatch == 0 && next_after == pt->next) {
        *idle = 1;
        return 0;
    }
    if ((kevs = es__malloc((w->o.batch_size + 1) * sizeof *kevs)) == NULL) {
        rc = es__fail(&w->h, ES_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = es__target_begin(w->t)) != 0) {
        rc = target_fail(w, rc, "beginning a batch");
        goto out;
    }
    if ((rc = apply_dead_letters(w, pt, &mine)) != 0)
        goto fail;
    if (lean && w->blocked.n > 0) {
        /* dead letters appeared since they were counted: parked events
         * are stored whole, so the ordinary way reads them whole */
        es__target_rollback(w->t);
        rc = REDO_CAREFULLY;
        goto out;
    }
    if ((rc = es__target_query(w->t, pg ? ckpt_lock_sql : ckpt_get_sql, q, 3,
                               es__target_i64_row, &r)) != 0) {
        target_fail(w, rc, "locking the checkpoint");
        goto fail;
    }
    if (!r.found || r.v != pt->next) {
        rc = lost_checkpoint(w, pt);
        goto out;
    }
    es__keyed_begin(w->kcache);
    for (;;) {
        size_t n = 0;
        for (size_t i = 0; i < w->nbatch; i++) {
            const es_event *ev = w->batch[i];
            if (find_handler(w->proj, ev->type) == NULL) {
                mine.skipped++;
            } else if (strset_has(&w->blocked, ev->stream_id)) {
                if ((rc = park(w, ev, &mine)) != 0)
                    goto fail;
            } else {
                kevs[n++] = ev;
                mine.applied++;
            }
        }
        if ((rc = es__keyed_fold(w->t, keyed, w->kcache, kevs, n)) != 0) {
            if (rc == ES_EUSER) {
                es__target_rollback(w->t);
                rc = REDO_CAREFULLY;
                goto out;
            }
            target_fail(w, rc, "folding a batch");
            goto fail;
        }
        if ((rc = write_resume(w, pt)) != 0)
            goto fail;
        if (++chunks >= ES__KEYED_TXN_CHUNKS)
            break;
        from = next_after;
        if ((rc = read_chunk(w, pt, &next_after, lean)) != 0)
            goto fail;
        if (w->nbatch == 0 && next_after == from)
            break;
    }
    if ((rc = es__keyed_write(w->t, keyed, w->kcache)) != 0) {
        target_fail(w, rc, "folding a batch");
        if (rc != ES_ECONFLICT)
            goto fail;
        es__target_rollback(w->t);
        rc = REDO_KEYED;
        goto out;
    }
    {
        es_sql_value cas[] = {ES_SQL_STR(w->proj->name), ES_SQL_STR(pt->agg_type),
                              ES_SQL_I64(pt->partition), ES_SQL_I64(next_after),
                              ES_SQL_I64(es_time_now_us()), ES_SQL_I64(pt->next)};
        if ((rc = es__target_exec(w->t, cas_sql, cas, 6, &cas_changes, -1)) != 0) {
            target_fail(w, rc, "moving the checkpoint");
            goto fail;
        }
    }
    rc = finish_batch(w, pt, cas_changes, next_after, st, &mine);
    goto out;
fail:
    es__target_rollback(w->t);
out:
    if (rc != 0)
        es__keyed_cache_reset(w->kcache);
    es__free(kevs);
    clear_batch(w);
    return rc;
}

static int pending_dead_letters(es_projection_worker *w, const part *pt,
                                int64_t *out)
{
    es_sql_value q[] = {ES_SQL_STR(w->proj->name), ES_SQL_STR(pt->agg_type),
                        ES_SQL_I64(pt->partition)};
    es__i64_row r = {0, 0};
    int rc = es__target_query(w->t, dl_pending_count_sql, q, 3, es__target_i64_row, &r);
    if (rc != 0)
        return target_fail(w, rc, "counting dead letters");
    *out = r.v;
    return 0;
}

/* One batch of one partition; *idle = 1 when there was nothing to do. */
static int step_partition(es_projection_worker *w, part *pt,
                          es_projection_step *st, int *idle)
{
    int64_t next_after = pt->next, pending = 0;
    int rc;

    *idle = 0;
    if (w->kcache) { /* a keyed fold: its own batches when it can */
        if ((rc = pending_dead_letters(w, pt, &pending)) != 0)
            return rc;
        if (pending == 0) {
            rc = keyed_stream(w, pt, st, idle);
            for (int i = 0; rc == REDO_KEYED && i < KEYED_TRIES; i++)
                rc = keyed_stream(w, pt, st, idle);
            if (rc != REDO_CAREFULLY && rc != REDO_KEYED)
                return rc;
        }
    }
    if (w->ahead_pt == pt && w->ahead_from == pt->next) { /* read already */
        clear_batch(w);
        swap_ahead(w);
        next_after = w->ahead_next;
        w->ahead_pt = NULL;
        rc = 0;
    } else {
        drop_ahead(w);
        rc = read_chunk(w, pt, &next_after, 0);
    }
    /* Dead letters to apply: counted when the batch is empty or the
     * partition had some (else the batch checks in its transaction). */
    if (rc == 0 && (w->nbatch == 0 || !pt->dl_none))
        rc = pending_dead_letters(w, pt, &pending);
    /* Rejected records alone still move the checkpoint past them. */
    if (rc == 0 && w->nbatch == 0 && pending == 0 && next_after == pt->next) {
        *idle = 1;
        return 0;
    }
    if (rc == 0) {
        rc = apply_batch_keyed(w, pt, next_after, pending > 0, st);
        if (rc == REDO_FULL && (rc = pending_dead_letters(w, pt, &pending)) == 0)
            rc = apply_batch_keyed(w, pt, next_after, pending > 0, st);
        /* Another worker folded into the same keys (a keyed fold whose key
         * is not the stream): the batch is redone from a fresh read. */
        for (int i = 0; rc == REDO_KEYED && i < KEYED_TRIES; i++)
            rc = apply_batch_keyed(w, pt, next_after, pending > 0, st);
        if (rc == REDO_KEYED) /* the careful path retries key by key */
            rc = REDO_CAREFULLY;
        if (rc == REDO_CAREFULLY)
            rc = apply_batch_keyed(w, pt, next_after, 1, st);
        if (rc > 0) /* cannot happen: careful never redoes */
            rc = es__fail(&w->h, ES_EIO, "projection %s: a batch failed twice",
                          w->proj->name);
    }
    clear_batch(w);
    return rc;
}

/* Serves the assignment before a partition: *mine = 1 when the worker owns
 * pt now. Partitions it has just been given go on from their checkpoints
 * (another worker may have moved them). */
static int owned(es_projection_worker *w, const part *pt, int *mine)
{
    int changed = 0, rc;
    if ((rc = es__assign_poll(w->assign, &changed)) != 0)
        return rc;
    for (size_t i = 0; changed && i < w->nparts; i++)
        if (es__assign_owns(w->assign, w->parts[i].agg_type,
                            w->parts[i].partition) &&
            (rc = read_checkpoint(w, &w->parts[i])) != 0)
            return rc;
    *mine = es__assign_owns(w->assign, pt->agg_type, pt->partition);
    return 0;
}

int es_projection_worker_owns(const es_projection_worker *w,
                              const char *aggregate_type, int32_t partition)
{
    for (size_t i = 0; w && aggregate_type && i < w->nparts; i++)
        if (w->parts[i].partition == partition &&
            strcmp(w->parts[i].agg_type, aggregate_type) == 0)
            return es__assign_owns(w->assign, aggregate_type, partition);
    return 0;
}

const char *es_projection_worker_waiting(const es_projection_worker *w)
{
    for (size_t i = 0; w && i < w->nparts; i++)
        if (es__assign_owns(w->assign, w->parts[i].agg_type,
                            w->parts[i].partition))
            return NULL;
    return w ? es__assign_waiting(w->assign) : NULL;
}

int es_projection_worker_step(es_projection_worker *w, es_projection_step *out)
{
    es_projection_step st = {0, 0, 0, 0, 0, 1};
    int rc = 0, conflict = 0, nowned = 0;

    if (w == NULL || w->t == NULL || w->t->self == NULL || w->nparts == 0 ||
        w->parts == NULL)
        return w ? es__fail(&w->h, ES_EINVAL, "the worker is not open") : ES_EINVAL;
    es__clear(&w->h);
    for (size_t i = 0; i < w->nparts; i++) {
        int idle, mine = 0;
        if ((rc = owned(w, &w->parts[i], &mine)) != 0)
            break;
        if (!mine)
            continue;
        nowned++;
        w->next_pt = &w->parts[(i + 1) % w->nparts];
        rc = step_partition(w, &w->parts[i], &st, &idle);
        if (rc == ES_ECONFLICT) {
            conflict = 1;
            st.caught_up = 0;
            rc = 0;
            continue;
        }
        if (rc != 0)
            break;
        if (!idle) /* there may be more behind this batch */
            st.caught_up = 0;
    }
    if (nowned == 0) /* waiting for a lease or an assignment */
        st.caught_up = 0;
    if (out) {
        out->applied += st.applied;
        out->skipped += st.skipped;
        out->dead_lettered += st.dead_lettered;
        out->retried += st.retried;
        out->batches += st.batches;
        out->caught_up = rc == 0 ? st.caught_up : 0;
    }
    if (rc == 0) {
        const char *waiting = es_projection_worker_waiting(w);
        rc = heartbeat(w, waiting ? waiting : "running", 0);
    }
    if (rc == 0 && conflict)
        rc = ES_ECONFLICT; /* the message says which partition */
    return rc;
}

int es_projection_worker_run(es_projection_worker *w, volatile int *stop,
                             int until_caught_up, es_projection_step *total,
                             es_projection_progress_cb progress,
                             void *user_data)
{
    es_projection_step sum = {0, 0, 0, 0, 0, 0};
    int idle_ms = 0, io_ms = 0, rc = 0;

    if (w == NULL)
        return ES_EINVAL;
    while (stop == NULL || !*stop) {
        es_projection_step st = {0, 0, 0, 0, 0, 0};
        rc = es_projection_worker_step(w, &st);
        if (rc == ES_ECONFLICT)
            rc = 0;
        if (rc == ES_EIO) {
            /* A lost connection (or log): the next step reconnects and
             * goes on from the checkpoint in the target. */
            io_ms = es__backoff_ms(io_ms, 50, 5000);
            es__sleep_ms(io_ms);
            continue;
        }
        io_ms = 0;
        if (rc != 0)
            break;
        sum.applied += st.applied;
        sum.skipped += st.skipped;
        sum.dead_lettered += st.dead_lettered;
        sum.retried += st.retried;
        sum.batches += st.batches;
        sum.caught_up = st.caught_up;
        if (progress && progress(&sum, user_data) != 0) {
            rc = es__fail(&w->h, ES_EUSER, "stopped by the progress callback");
            break;
        }
        if (st.caught_up && until_caught_up)
            break;
        if (st.batches == 0) {
            idle_ms = es__backoff_ms(idle_ms, 1, 100);
            es__sleep_ms(idle_ms);
        } else {
            idle_ms = 0;
        }
    }
    if (total)
        *total = sum;
    return rc;
}

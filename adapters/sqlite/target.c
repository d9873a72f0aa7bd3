/*
 * adapters/sqlite/target.c - the projection target in a SQLite file.
 *
 * The file is opened the esfold way (WAL, busy timeout, es_meta: see
 * sqlite.h), so it may be the log's own file, though a file of its own
 * keeps the worker's write lock away from the log's writers. A
 * transaction is BEGIN IMMEDIATE: it takes the write lock at once, which
 * serializes the workers of one file (the checkpoint compare-and-set
 * then never waits inside a transaction).
 *
 * Statements use $1..$n, which SQLite reads as named parameters "$1",
 * "$2", ...: each is bound by name, so a statement may use them in any
 * order and more than once. Prepared statements are cached by their text.
 */
#include <stdio.h>
#include <string.h>

#include "projections/target_backend.h"
#include "sqlite.h"

#define CACHE_SIZE 64

typedef struct cached {
    char *sql;
    sqlite3_stmt *st;
    int max_param; /* the highest $k the statement names */
} cached;

typedef struct sqlite_target {
    sqlite3 *db;
    char *ctx; /* "sqlite:PATH" for messages */
    cached cache[CACHE_SIZE];
    size_t ncached, next_evict;
} sqlite_target;

static void st_close(void *self)
{
    sqlite_target *s = self;
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->ncached; i++) {
        sqlite3_finalize(s->cache[i].st);
        es__free(s->cache[i].sql);
    }
    es__sqlite_close(s->db);
    es__free(s->ctx);
    es__free(s);
}

static const char *const target_steps[] = {
    /* 0 -> 1: the es_proj_ tables, made by the worker itself */
    "SELECT 1",
};

static int st_open(es__target *t, void **self, const char *uri)
{
    static const char *const known[] = {NULL};
    es__sqlite_uri u;
    sqlite_target *s = NULL;
    int rc;

    *self = NULL;
    if ((rc = es__sqlite_uri_parse(&u, uri, known, &t->h)) != 0)
        return rc;
    if ((s = es__calloc(1, sizeof *s)) == NULL ||
        (s->ctx = es__sprintf("sqlite:%s", u.path)) == NULL) {
        rc = es__fail(&t->h, ES_ENOMEM, "%s: out of memory", t->name);
        goto done;
    }
    if ((rc = es__sqlite_open(&s->db, u.path, &t->h)) != 0)
        goto done;
    /* Mark the file as esfold's (schema.projections in es_meta), as the log
     * and the snapshot store do theirs, so that opening it again tells it
     * from someone else's database. Its tables are made by
     * projections/worker.c, the same SQL on every target. */
    if ((rc = es__sqlite_migrate(s->db, &t->h, "projections", target_steps,
                                 sizeof target_steps / sizeof *target_steps)) != 0)
        goto done;
    *self = s;
    s = NULL;
done:
    st_close(s);
    es__sqlite_uri_free(&u);
    return rc;
}

/* The prepared statement for sql, from the cache or new. */
static int prepare(es__target *t, sqlite_target *s, const char *sql,
                   cached **out)
{
    sqlite3_stmt *st = NULL;
    cached *c;
    char *copy;
    int src, maxp = 0;

    for (size_t i = 0; i < s->ncached; i++)
        if (strcmp(s->cache[i].sql, sql) == 0) {
            *out = &s->cache[i];
            return 0;
        }
    src = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
                             NULL);
    if (src != SQLITE_OK)
        return es__sqlite_fail(&t->h, s->db, src, "%s: %s", s->ctx, sql);
    for (int i = 1; i <= sqlite3_bind_parameter_count(st); i++) {
        const char *name = sqlite3_bind_parameter_name(st, i);
        int64_t k;
        if (name == NULL || name[0] != '$' || es__parse_i64(&k, name + 1) != 0 ||
            k < 1 || k > 100000) {
            sqlite3_finalize(st);
            return es__fail(&t->h, ES_EINVAL, "%s: %s: parameter %s: "
                            "statements name parameters $1..$n", s->ctx, sql,
                            name ? name : "?");
        }
        if (k > maxp)
            maxp = (int)k;
    }
    if ((copy = es__strdup(sql)) == NULL) {
        sqlite3_finalize(st);
        return es__fail(&t->h, ES_ENOMEM, "out of memory");
    }
    if (s->ncached < CACHE_SIZE) {
        c = &s->cache[s->ncached++];
    } else {
        c = &s->cache[s->next_evict];
        s->next_evict = (s->next_evict + 1) % CACHE_SIZE;
        sqlite3_finalize(c->st);
        es__free(c->sql);
    }
    c->st = st;
    c->sql = copy;
    c->max_param = maxp;
    *out = c;
    return 0;
}

static int bind(es__target *t, sqlite_target *s, cached *c,
                const es_sql_value *p, size_t n)
{
    sqlite3_stmt *st = c->st;
    char name[24];
    int src = SQLITE_OK;

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if ((size_t)c->max_param > n)
        return es__fail(&t->h, ES_EINVAL, "%s: %s: names $%d but %zu "
                        "parameter(s) were given", s->ctx, c->sql,
                        c->max_param, n);
    for (size_t i = 0; i < n && src == SQLITE_OK; i++) {
        int idx;
        snprintf(name, sizeof name, "$%zu", i + 1);
        if ((idx = sqlite3_bind_parameter_index(st, name)) == 0)
            continue;
        switch (p[i].type) {
        case ES_SQL_NULL:
            src = sqlite3_bind_null(st, idx);
            break;
        case ES_SQL_TEXT:
            src = p[i].v.text ? sqlite3_bind_text(st, idx, p[i].v.text, -1,
                                                  SQLITE_TRANSIENT)
                              : sqlite3_bind_null(st, idx);
            break;
        case ES_SQL_INT64:
            src = sqlite3_bind_int64(st, idx, p[i].v.i64);
            break;
        case ES_SQL_DOUBLE:
            src = sqlite3_bind_double(st, idx, p[i].v.f64);
            break;
        case ES_SQL_BOOL:
            src = sqlite3_bind_int(st, idx, p[i].v.b ? 1 : 0);
            break;
        case ES_SQL_JSON: {
            char *text;
            if (p[i].v.json == NULL) {
                src = sqlite3_bind_null(st, idx);
                break;
            }
            if ((text = es__json_text(p[i].v.json)) == NULL)
                return es__fail(&t->h, ES_ENOMEM, "out of memory");
            src = sqlite3_bind_text(st, idx, text, -1, SQLITE_TRANSIENT);
            es__free(text);
            break;
        }
        default:
            return es__fail(&t->h, ES_EINVAL, "%s: parameter $%zu has an "
                            "unknown type %d", s->ctx, i + 1, (int)p[i].type);
        }
    }
    if (src != SQLITE_OK)
        return es__sqlite_fail(&t->h, s->db, src, "%s: binding the parameters "
                               "of %s", s->ctx, c->sql);
    return 0;
}

static int st_exec(es__target *t, void *self, const char *sql,
                   const es_sql_value *p, size_t n, int64_t *changes, int tag)
{
    sqlite_target *s = self;
    cached *c;
    int64_t rows = 0;
    int rc, src;

    (void)tag;
    if ((rc = prepare(t, s, sql, &c)) != 0 || (rc = bind(t, s, c, p, n)) != 0)
        return rc;
    while ((src = sqlite3_step(c->st)) == SQLITE_ROW)
        rows++;
    if (src != SQLITE_DONE) {
        rc = es__sqlite_fail(&t->h, s->db, src, "%s", s->ctx);
        sqlite3_reset(c->st);
        return rc;
    }
    if (changes) /* a query: the rows it returned (PQcmdTuples agrees) */
        *changes = sqlite3_stmt_readonly(c->st) ? rows : sqlite3_changes64(s->db);
    sqlite3_reset(c->st);
    return 0;
}

static int st_query(es__target *t, void *self, const char *sql,
                    const es_sql_value *p, size_t n, es__row_cb cb, void *ud)
{
    sqlite_target *s = self;
    const char *vals[32];
    cached *c;
    int rc, src;

    if ((rc = prepare(t, s, sql, &c)) != 0 || (rc = bind(t, s, c, p, n)) != 0)
        return rc;
    while ((src = sqlite3_step(c->st)) == SQLITE_ROW) {
        int nc = sqlite3_column_count(c->st);
        if (nc > 32)
            nc = 32;
        for (int i = 0; i < nc; i++)
            vals[i] = (const char *)sqlite3_column_text(c->st, i);
        if (cb(nc, vals, ud) != 0) {
            sqlite3_reset(c->st);
            return ES_EUSER;
        }
    }
    if (src != SQLITE_DONE) {
        rc = es__sqlite_fail(&t->h, s->db, src, "%s", s->ctx);
        sqlite3_reset(c->st);
        return rc;
    }
    sqlite3_reset(c->st);
    return 0;
}

static int st_begin(es__target *t, void *self)
{
    sqlite_target *s = self;
    return es__sqlite_exec(s->db, &t->h, "beginning a transaction",
                           "BEGIN IMMEDIATE");
}

static int st_commit(es__target *t, void *self)
{
    sqlite_target *s = self;
    return es__sqlite_exec(s->db, &t->h, "committing", "COMMIT");
}

static void st_rollback(es__target *t, void *self)
{
    sqlite_target *s = self;
    (void)t;
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

const es__target_backend es__sqlite_target_backend = {
    .version = ES__TARGET_BACKEND_VERSION,
    .name = "sqlite",
    .open = st_open,
    .close = st_close,
    .begin = st_begin,
    .commit = st_commit,
    .rollback = st_rollback,
    .setup_lock = NULL,
    .exec = st_exec,
    .query = st_query,
    .pipeline_begin = NULL,
    .pipeline_sync = NULL,
};

/*
 * projections/rebuild.c - rebuilds under shadow names and the swap; builds
 * as of a time (esfold/rebuild.h, docs/projections.md "Rebuilds").
 *
 * A rebuild is an ordinary worker (projections/worker.c) of a derived
 * projection: its name is "NAME#rebuild" (or "NAME#asof-STAMP"), so its
 * checkpoints, resume versions, dead letters and heartbeat are rows of
 * their own in the es_proj_ tables; its setup is the projection's with
 * the table names rewritten to the shadow names; its handlers are one
 * trampoline that hands the original handler an es_sql whose target
 * rewrites each statement the same way (cached per statement text) before
 * passing it on. Everything the worker guarantees (one transaction per
 * batch, compare-and-set checkpoints, resume after a kill) holds for the
 * shadow tables unchanged.
 *
 * Why rewriting rather than a schema (PostgreSQL) or an attached database
 * (SQLite): a swap across SQLite databases is a copy, not a rename, and a
 * search_path trick would need handler SQL to never qualify names; renames
 * inside one schema are the only swap that is atomic on both targets.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "esfold/rebuild.h"
#include "esfold/time.h"
#include "projections/target_backend.h"

#define P ES__PROJ_PREFIX

/* ---- SQL tokens: identifiers outside literals and comments ------------- */

typedef struct tok {
    const char *s; /* the identifier (inside the quotes when quoted) */
    size_t n;
    int quoted;
    size_t start, end; /* the token in the statement, quotes included */
} tok;

/* The next identifier token from *pos; 0 when there is none. */
static int next_ident(const char *sql, size_t *pos, tok *t)
{
    size_t i = *pos;
    while (sql[i]) {
        char c = sql[i];
        if (c == '\'') {
            for (i++; sql[i]; i++)
                if (sql[i] == '\'') {
                    if (sql[i + 1] == '\'')
                        i++;
                    else
                        break;
                }
            if (sql[i])
                i++;
        } else if (c == '-' && sql[i + 1] == '-') {
            while (sql[i] && sql[i] != '\n')
                i++;
        } else if (c == '/' && sql[i + 1] == '*') {
            const char *e = strstr(sql + i + 2, "*/");
            i = e ? (size_t)(e - sql) + 2 : strlen(sql);
        } else if (c == '$' && isdigit((unsigned char)sql[i + 1])) {
            for (i++; isdigit((unsigned char)sql[i]); i++)
                ;
        } else if (c == '"') {
            size_t b = i + 1, e = b;
            while (sql[e] && sql[e] != '"')
                e++;
            t->s = sql + b;
            t->n = e - b;
            t->quoted = 1;
            t->start = i;
            t->end = sql[e] ? e + 1 : e;
            *pos = t->end;
            return 1;
        } else if (isalpha((unsigned char)c) || c == '_') {
            size_t b = i;
            while (isalnum((unsigned char)sql[i]) || sql[i] == '_' || sql[i] == '$')
                i++;
            t->s = sql + b;
            t->n = i - b;
            t->quoted = 0;
            t->start = b;
            t->end = i;
            *pos = i;
            return 1;
        } else if (isdigit((unsigned char)c)) {
            while (isalnum((unsigned char)sql[i]) || sql[i] == '.')
                i++;
        } else {
            i++;
        }
    }
    *pos = i;
    return 0;
}

static int tok_is(const tok *t, const char *word)
{
    return !t->quoted && strlen(word) == t->n && strncasecmp(t->s, word, t->n) == 0;
}

/* The identifier as the database knows it: unquoted ones folded to lower
 * case (PostgreSQL's rule; SQLite compares without case anyway). */
static char *tok_name(const tok *t)
{
    char *s = es__strndup(t->s, t->n);
    if (s && !t->quoted)
        for (char *c = s; *c; c++)
            *c = (char)tolower((unsigned char)*c);
    return s;
}

/* ---- the rebuild's state ------------------------------------------------ */

typedef struct rw_entry {
    char *from, *to;
} rw_entry;

typedef struct names {
    char **v;
    size_t n, cap;
} names;

typedef struct rb {
    const es_projection *orig;
    es_projection derived;
    char ns[160];
    char suffix[48];
    names tables;        /* the setup's tables (folded names) */
    names indexes;       /* the setup's indexes */
    int *index_stmt;     /* setup statement creating indexes.v[i] */
    char **setup_rw;     /* the derived setup, NULL-terminated */
    es_projection_handler handlers[2];
    rw_entry *cache;     /* rewritten handler statements */
    size_t ncache, capcache;
    es__target wrap;     /* what the original handlers write through */
    es__target *real;
    int64_t as_of_us;
    json_t *cut;         /* as of: {"type\x1fstream": true} cut at the time */
    int oom;
} rb;

static int names_add(names *s, const char *x)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], x) == 0)
            return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        if (es__grow((void **)&s->v, s->cap * sizeof *s->v, cap * sizeof *s->v))
            return ES_ENOMEM;
        s->cap = cap;
    }
    if ((s->v[s->n] = es__strdup(x)) == NULL)
        return ES_ENOMEM;
    s->n++;
    return 0;
}

static int names_has(const names *s, const char *x, size_t n, int fold)
{
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->v[i]) == n &&
            (fold ? strncasecmp(s->v[i], x, n) : strncmp(s->v[i], x, n)) == 0)
            return 1;
    return 0;
}

static void names_free(names *s)
{
    for (size_t i = 0; i < s->n; i++)
        es__free(s->v[i]);
    es__free(s->v);
    memset(s, 0, sizeof *s);
}

/* Reads CREATE TABLE / CREATE [UNIQUE] INDEX [IF NOT EXISTS] NAME. */
static int parse_setup(rb *r, es_error *err)
{
    const char *const *setup = r->orig->setup;
    for (size_t k = 0; setup && setup[k]; k++) {
        tok t[6];
        size_t pos = 0, nt = 0, i = 1;
        int index = 0;
        char *name;
        while (nt < 6 && next_ident(setup[k], &pos, &t[nt]))
            nt++;
        if (nt < 3 || !tok_is(&t[0], "create"))
            continue;
        while (i < nt && (tok_is(&t[i], "temp") || tok_is(&t[i], "temporary") ||
                          tok_is(&t[i], "unique") || tok_is(&t[i], "unlogged")))
            i++;
        if (i < nt && tok_is(&t[i], "index"))
            index = 1;
        else if (!(i < nt && tok_is(&t[i], "table")))
            continue;
        i++;
        if (i + 2 < nt && tok_is(&t[i], "if") && tok_is(&t[i + 1], "not") &&
            tok_is(&t[i + 2], "exists"))
            i += 3;
        if (i >= nt)
            continue;
        if ((name = tok_name(&t[i])) == NULL)
            return es__err(err, ES_ENOMEM, "out of memory");
        if (strlen(name) + strlen(r->suffix) > 63) {
            es__err(err, ES_EINVAL, "projection %s: the name %s%s is longer than "
                    "63 bytes (PostgreSQL's limit)", r->orig->name, name,
                    r->suffix);
            es__free(name);
            return ES_EINVAL;
        }
        if (names_add(index ? &r->indexes : &r->tables, name) != 0) {
            es__free(name);
            return es__err(err, ES_ENOMEM, "out of memory");
        }
        es__free(name);
        if (index) {
            if (es__grow((void **)&r->index_stmt, (r->indexes.n - 1) * sizeof(int),
                         r->indexes.n * sizeof(int)) != 0)
                return es__err(err, ES_ENOMEM, "out of memory");
            r->index_stmt[r->indexes.n - 1] = (int)k;
        }
    }
    if (r->tables.n == 0)
        return es__err(err, ES_EINVAL, "projection %s: its setup creates no table "
                       "(CREATE TABLE name ...): nothing to rebuild",
                       r->orig->name);
    return 0;
}

/* sql with every table and index name of the setup given the suffix. */
static char *rewrite(const rb *r, const char *sql)
{
    es__buf b = {NULL, 0, 0, 0};
    size_t pos = 0, done = 0;
    tok t;
    while (next_ident(sql, &pos, &t)) {
        if (!names_has(&r->tables, t.s, t.n, !t.quoted) &&
            !names_has(&r->indexes, t.s, t.n, !t.quoted))
            continue;
        es__buf_add(&b, sql + done, t.start - done);
        es__buf_adds(&b, "\"");
        for (size_t i = 0; i < t.n; i++) {
            char c = t.quoted ? t.s[i] : (char)tolower((unsigned char)t.s[i]);
            es__buf_add(&b, &c, 1);
        }
        es__buf_adds(&b, r->suffix);
        es__buf_adds(&b, "\"");
        done = t.end;
    }
    es__buf_adds(&b, sql + done);
    if (b.oom) {
        es__buf_free(&b);
        return NULL;
    }
    return b.data ? b.data : es__strdup("");
}

#define REWRITE_CACHE_MAX 256

/* The rewritten statement: cached by text (handlers mostly use a few
 * constant statements); NULL on ENOMEM or, past REWRITE_CACHE_MAX
 * statements, with *own set: the caller frees it. */
static const char *rewrite_cached(rb *r, const char *sql, char **own)
{
    char *to;
    *own = NULL;
    for (size_t i = 0; i < r->ncache; i++)
        if (strcmp(r->cache[i].from, sql) == 0)
            return r->cache[i].to;
    if (r->ncache >= REWRITE_CACHE_MAX)
        return *own = rewrite(r, sql);
    if (r->ncache == r->capcache) {
        size_t cap = r->capcache ? r->capcache * 2 : 16;
        if (es__grow((void **)&r->cache, r->capcache * sizeof *r->cache,
                     cap * sizeof *r->cache) != 0)
            return NULL;
        r->capcache = cap;
    }
    if ((to = rewrite(r, sql)) == NULL)
        return NULL;
    if ((r->cache[r->ncache].from = es__strdup(sql)) == NULL) {
        es__free(to);
        return NULL;
    }
    r->cache[r->ncache++].to = to;
    return to;
}

/* ---- the target the original handlers write through ------------------- */

static int rw_exec(es__target *t, void *self, const char *statement,
                   const es_sql_value *params, size_t n, int64_t *changes,
                   int tag)
{
    rb *r = self;
    char *own;
    const char *sql = rewrite_cached(r, statement, &own);
    int rc;
    if (sql == NULL)
        return es__fail(&t->h, ES_ENOMEM, "out of memory");
    /* Backends copy the text before they return (pipelined or not). */
    if ((rc = es__target_exec(r->real, sql, params, n, changes, tag)) != 0)
        es__fail(&t->h, rc, "%s", es_errmsg(r->real));
    es__free(own);
    return rc;
}

/* Handlers that read (a keyed fold reads a key's document) read the
 * shadow tables too. */
static int rw_query(es__target *t, void *self, const char *statement,
                    const es_sql_value *params, size_t n, es__row_cb cb, void *ud)
{
    rb *r = self;
    char *own;
    const char *sql = rewrite_cached(r, statement, &own);
    int rc;
    if (sql == NULL)
        return es__fail(&t->h, ES_ENOMEM, "out of memory");
    if ((rc = es__target_query(r->real, sql, params, n, cb, ud)) != 0)
        es__fail(&t->h, rc, "%s", es_errmsg(r->real));
    es__free(own);
    return rc;
}

static const es__target_backend rw_backend = {
    ES__TARGET_BACKEND_VERSION, "rebuild", NULL, NULL, NULL, NULL, NULL, NULL,
    rw_exec, rw_query, NULL, NULL, NULL, NULL};

static const char cut_insert_sql[] =
    "INSERT INTO " P "asof_cuts (projection, agg_type, stream_id)"
    " VALUES ($1, $2, $3) ON CONFLICT (projection, agg_type, stream_id)"
    " DO NOTHING";

/* As of: 1 when ev is at or after its stream's first event later than
 * the time (recorded in es_proj_asof_cuts, in the batch's transaction). */
static int asof_cut(rb *r, es__target *real, const es_event *ev, int *cut)
{
    char key[ES_STREAM_ID_MAX + ES_NAME_MAX + 2];
    snprintf(key, sizeof key, "%s\x1f%s", ev->aggregate_type, ev->stream_id);
    *cut = json_object_get(r->cut, key) != NULL;
    if (*cut || ev->occurred_us <= r->as_of_us)
        return 0;
    *cut = 1;
    if (json_object_set_new(r->cut, key, json_true()) != 0)
        return ES_ENOMEM;
    {
        es_sql_value q[] = {ES_SQL_STR(r->ns), ES_SQL_STR(ev->aggregate_type),
                            ES_SQL_STR(ev->stream_id)};
        return es__target_exec(real, cut_insert_sql, q, 3, NULL, -1);
    }
}

static int trampoline(es_sql *sql, const es_event *ev, void *ud)
{
    rb *r = ud;
    es_projection_handler_fn fn = es__projection_handler(r->orig, ev->type);
    es__target *real = sql->t;
    int rc, cut = 0;

    if (r->as_of_us) {
        if ((rc = asof_cut(r, real, ev, &cut)) != 0)
            return es_sql_fail(sql, "recording the as-of cut: %s",
                               rc == ES_ENOMEM ? "out of memory"
                                               : es_errmsg(real));
        if (cut)
            return 0;
    }
    if (fn == NULL)
        return 0;
    r->real = real;
    r->wrap.in_pipeline = real->in_pipeline;
    sql->t = &r->wrap;
    rc = fn(sql, ev, r->orig->user_data);
    sql->t = real;
    return rc;
}

/* ---- the target side ----------------------------------------------------- */

static int tfail(es_error *err, es__target *t, int rc, const char *what)
{
    return es__err(err, rc, "%s: %s", what, es_errmsg(t));
}

static int is_pg(const es__target *t)
{
    return strcmp(t->backend->name, "postgresql") == 0;
}

/* Drops the shadow tables of suffix (a rebuild started over). */
static int drop_shadows(es__target *t, const rb *r, const char *suffix)
{
    for (size_t i = 0; i < r->tables.n; i++) {
        char *sql = es__sprintf("DROP TABLE IF EXISTS \"%s%s\"", r->tables.v[i],
                                suffix);
        int rc = sql ? es__target_exec0(t, sql) : ES_ENOMEM;
        es__free(sql);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static const char *const forget_sql[] = {
    "DELETE FROM " P "checkpoints WHERE projection = $1",
    "DELETE FROM " P "resume WHERE projection = $1",
    "DELETE FROM " P "deadletters WHERE projection = $1",
    "DELETE FROM " P "heartbeats WHERE projection = $1",
    "DELETE FROM " P "asof_cuts WHERE projection = $1",
    "DELETE FROM " P "projections WHERE name = $1",
};

static const char cuts_table_sql[] =
    "CREATE TABLE IF NOT EXISTS " P "asof_cuts (projection TEXT NOT NULL,"
    " agg_type TEXT NOT NULL, stream_id TEXT NOT NULL,"
    " PRIMARY KEY (projection, agg_type, stream_id))";

static int get_cut(int ncols, const char *const *vals, void *ud)
{
    rb *r = ud;
    char key[ES_STREAM_ID_MAX + ES_NAME_MAX + 2];
    if (ncols < 2 || !vals[0] || !vals[1])
        return 0;
    snprintf(key, sizeof key, "%s\x1f%s", vals[0], vals[1]);
    if (json_object_set_new(r->cut, key, json_true()) != 0) {
        r->oom = 1;
        return 1;
    }
    return 0;
}

/*
 * Before the worker opens: the es_proj_ tables exist; a rebuild state of
 * another version, or shadow tables without a state, are dropped (so that
 * a setup with IF NOT EXISTS never builds on leftovers); as of, the cut
 * streams are loaded.
 */
static int prepare(es__target *t, rb *r, es_error *err)
{
    es_sql_value q[] = {ES_SQL_STR(r->ns)};
    es__i64_row have = {0, 0};
    int rc;

    if ((rc = es__target_exec0(t, cuts_table_sql)) != 0)
        return tfail(err, t, rc, "creating " P "asof_cuts");
    rc = es__target_query(t, "SELECT version FROM " P "projections WHERE name = $1",
                          q, 1, es__target_i64_row, &have);
    if (rc != 0 && strstr(es_errmsg(t), P "projections") == NULL)
        return tfail(err, t, rc, "reading " P "projections");
    if (rc == 0 && have.found && have.v == r->orig->version) {
        if (r->as_of_us) {
            rc = es__target_query(t, "SELECT agg_type, stream_id FROM " P
                                  "asof_cuts WHERE projection = $1", q, 1,
                                  get_cut, r);
            if (r->oom)
                return es__err(err, ES_ENOMEM, "out of memory");
            if (rc != 0)
                return tfail(err, t, rc, "reading " P "asof_cuts");
        }
        return 0; /* resumes */
    }
    if ((rc = es__target_begin(t)) != 0)
        return tfail(err, t, rc, "beginning");
    if (have.found) {
        char old[48];
        if (r->as_of_us)
            snprintf(old, sizeof old, "%s", r->suffix);
        else
            snprintf(old, sizeof old, "__v%lld_rebuild", (long long)have.v);
        if ((rc = drop_shadows(t, r, old)) != 0)
            goto fail;
    }
    if ((rc = drop_shadows(t, r, r->suffix)) != 0)
        goto fail;
    for (size_t i = 0; rc == 0 && have.found && i < sizeof forget_sql /
                                                     sizeof *forget_sql; i++)
        rc = es__target_exec(t, forget_sql[i], q, 1, NULL, -1);
    if (rc != 0)
        goto fail;
    if ((rc = es__target_commit(t)) != 0)
        goto fail;
    return 0;
fail:
    tfail(err, t, rc, "clearing an old rebuild");
    es__target_rollback(t);
    return rc;
}

/* ---- checksums ------------------------------------------------------------ */

typedef struct sum_ctx {
    int64_t rows;
    uint64_t sum;
} sum_ctx;

static int sum_row(int ncols, const char *const *vals, void *ud)
{
    sum_ctx *s = ud;
    uint64_t h = 1469598103934665603ull;
    for (int c = 0; c < ncols; c++) {
        const unsigned char *v = (const unsigned char *)(vals[c] ? vals[c] : "");
        h ^= vals[c] ? 0x1fu : 0x1eu; /* separator, or NULL */
        h *= 1099511628211ull;
        for (; *v; v++) {
            h ^= *v;
            h *= 1099511628211ull;
        }
    }
    /* A multiset hash: the sum of mixed row hashes, independent of the
     * order rows come in. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    s->sum += h;
    s->rows++;
    return 0;
}

/* rows and checksum of table; *rows = -1 when it does not exist. */
static int checksum(es__target *t, const char *table, int64_t *rows, char *hex)
{
    sum_ctx s = {0, 0};
    char *sql = es__sprintf("SELECT * FROM \"%s\"", table);
    int rc;
    if (sql == NULL)
        return ES_ENOMEM;
    rc = es__target_query(t, sql, NULL, 0, sum_row, &s);
    es__free(sql);
    if (rc != 0) {
        *rows = -1;
        snprintf(hex, 17, "-");
        return 0;
    }
    *rows = s.rows;
    snprintf(hex, 17, "%016llx", (unsigned long long)s.sum);
    return 0;
}

/* ---- the swap ------------------------------------------------------------- */

/* The live name's bookkeeping becomes the rebuild's ($1 the live name,
 * $2 the rebuild's). */
static const char *const handover_sql[] = {
    "DELETE FROM " P "checkpoints WHERE projection = $1",
    "UPDATE " P "checkpoints SET projection = $1 WHERE projection = $2",
    "DELETE FROM " P "resume WHERE projection = $1",
    "UPDATE " P "resume SET projection = $1 WHERE projection = $2",
    "DELETE FROM " P "deadletters WHERE projection = $1",
    "UPDATE " P "deadletters SET projection = $1 WHERE projection = $2",
};
/* Then ($1 the live name, $2 its new version, $3 now; $1 the rebuild's). */
static const char version_sql[] =
    "INSERT INTO " P "projections (name, version, created_us)"
    " VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET"
    " version = excluded.version";
static const char *const forget_rebuild_sql[] = {
    "DELETE FROM " P "heartbeats WHERE projection = $1",
    "DELETE FROM " P "projections WHERE name = $1",
};

typedef struct grant_rows {
    names v; /* "privilege\x1fgrantee" */
    int oom;
} grant_rows;

static int get_grant(int ncols, const char *const *vals, void *ud)
{
    grant_rows *g = ud;
    char buf[300];
    if (ncols < 2 || !vals[0] || !vals[1])
        return 0;
    snprintf(buf, sizeof buf, "%s\x1f%s", vals[0], vals[1]);
    if (names_add(&g->v, buf) != 0) {
        g->oom = 1;
        return 1;
    }
    return 0;
}

static int get_name(int ncols, const char *const *vals, void *ud)
{
    grant_rows *g = ud;
    if (ncols >= 1 && vals[0] && names_add(&g->v, vals[0]) != 0) {
        g->oom = 1;
        return 1;
    }
    return 0;
}

static int exec_fmt(es__target *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int exec_fmt(es__target *t, const char *fmt, ...)
{
    va_list ap;
    char sql[512]; /* names are at most 63 bytes */
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return es__target_exec0(t, sql);
}

/* PostgreSQL: grants of the live table onto the shadow, then the drop and
 * the rename; the shadow's index names lose the suffix. */
static int swap_pg_table(es__target *t, const rb *r, const char *table)
{
    es_sql_value q[] = {ES_SQL_STR(table)};
    grant_rows g;
    char shadow[128];
    int rc;

    snprintf(shadow, sizeof shadow, "%s%s", table, r->suffix);
    memset(&g, 0, sizeof g);
    rc = es__target_query(t, "SELECT privilege_type, grantee FROM"
                          " information_schema.role_table_grants WHERE"
                          " table_schema = current_schema() AND table_name = $1"
                          " AND grantee <> current_user", q, 1, get_grant, &g);
    for (size_t i = 0; rc == 0 && i < g.v.n; i++) {
        char *sep = strchr(g.v.v[i], '\x1f');
        *sep = '\0';
        if (strcmp(sep + 1, "PUBLIC") == 0)
            rc = exec_fmt(t, "GRANT %s ON \"%s\" TO PUBLIC", g.v.v[i], shadow);
        else
            rc = exec_fmt(t, "GRANT %s ON \"%s\" TO \"%s\"", g.v.v[i], shadow,
                          sep + 1);
    }
    names_free(&g.v);
    if (rc == 0)
        rc = exec_fmt(t, "DROP TABLE IF EXISTS \"%s\"", table);
    if (rc == 0)
        rc = exec_fmt(t, "ALTER TABLE \"%s\" RENAME TO \"%s\"", shadow, table);
    if (rc != 0)
        return rc;
    memset(&g, 0, sizeof g);
    rc = es__target_query(t, "SELECT indexname FROM pg_indexes WHERE"
                          " schemaname = current_schema() AND tablename = $1",
                          q, 1, get_name, &g);
    for (size_t i = 0; rc == 0 && i < g.v.n; i++) {
        char plain[128], *at = strstr(g.v.v[i], r->suffix);
        if (at == NULL)
            continue;
        snprintf(plain, sizeof plain, "%.*s%s", (int)(at - g.v.v[i]), g.v.v[i],
                 at + strlen(r->suffix));
        rc = exec_fmt(t, "ALTER INDEX \"%s\" RENAME TO \"%s\"", g.v.v[i], plain);
    }
    names_free(&g.v);
    return g.oom ? ES_ENOMEM : rc;
}

/* SQLite: the drop and the rename (legacy_alter_table keeps views and
 * triggers naming the table as they are); the setup's indexes made again
 * under their own names. */
static int swap_sqlite_table(es__target *t, const rb *r, size_t k)
{
    const char *table = r->tables.v[k];
    int rc = exec_fmt(t, "DROP TABLE IF EXISTS \"%s\"", table);
    if (rc == 0)
        rc = exec_fmt(t, "ALTER TABLE \"%s%s\" RENAME TO \"%s\"", table,
                      r->suffix, table);
    return rc;
}

static int swap_once(es__target *t, const rb *r, int lock_timeout_ms)
{
    es_sql_value q[] = {ES_SQL_STR(r->orig->name), ES_SQL_STR(r->ns)};
    es_sql_value v[] = {ES_SQL_STR(r->orig->name), ES_SQL_I64(r->orig->version),
                        ES_SQL_I64(es_time_now_us())};
    int pg = is_pg(t), rc;

    if (!pg && (rc = es__target_exec0(t, "PRAGMA legacy_alter_table = ON")) != 0)
        return rc;
    if ((rc = es__target_begin(t)) != 0)
        goto done;
    if (pg) {
        if ((rc = exec_fmt(t, "SET LOCAL lock_timeout = '%dms'",
                           lock_timeout_ms)) != 0)
            goto fail;
        /* The checkpoint rows first, in the order a live batch takes them
         * (its compare-and-set comes before its handlers' writes). */
        if ((rc = es__target_exec(t, "SELECT 1 FROM " P "checkpoints WHERE"
                                  " projection = $1 FOR UPDATE", q, 1, NULL,
                                  -1)) != 0)
            goto fail;
    }
    for (size_t i = 0; i < r->tables.n; i++) {
        rc = pg ? swap_pg_table(t, r, r->tables.v[i]) : swap_sqlite_table(t, r, i);
        if (rc != 0)
            goto fail;
    }
    for (size_t i = 0; !pg && i < r->indexes.n; i++) {
        if ((rc = exec_fmt(t, "DROP INDEX IF EXISTS \"%s%s\"", r->indexes.v[i],
                           r->suffix)) != 0 ||
            (rc = es__target_exec0(t, r->orig->setup[r->index_stmt[i]])) != 0)
            goto fail;
    }
    for (size_t i = 0; i < sizeof handover_sql / sizeof *handover_sql; i++)
        if ((rc = es__target_exec(t, handover_sql[i], q,
                                  strstr(handover_sql[i], "$2") ? 2 : 1, NULL,
                                  -1)) != 0)
            goto fail;
    if ((rc = es__target_exec(t, version_sql, v, 3, NULL, -1)) != 0)
        goto fail;
    for (size_t i = 0; i < sizeof forget_rebuild_sql / sizeof *forget_rebuild_sql; i++)
        if ((rc = es__target_exec(t, forget_rebuild_sql[i], q + 1, 1, NULL, -1)) != 0)
            goto fail;
    rc = es__target_commit(t);
    if (rc == 0)
        goto done;
fail:
    es__target_rollback(t);
done:
    if (!pg)
        (void)es__target_exec0(t, "PRAGMA legacy_alter_table = OFF");
    return rc;
}

/* ---- progress --------------------------------------------------------------- */

typedef struct run_ctx {
    rb *r;
    es_log *log;
    es__target *t;
    const es_rebuild_options *o;
    es_rebuild_progress p;
    int64_t began_us, last_us;
    int rc;
    es_error *err;
} run_ctx;

typedef struct off_sum {
    int64_t sum;
} off_sum;

static int add_offset(int ncols, const char *const *vals, void *ud)
{
    int64_t v;
    if (ncols >= 1 && vals[0] && es__parse_i64(&v, vals[0]) == 0)
        ((off_sum *)ud)->sum += v;
    return 0;
}

/* Where the rebuild's checkpoints and the log's heads are. */
static int measure(run_ctx *c)
{
    es_sql_value q[] = {ES_SQL_STR(c->r->ns)};
    off_sum s = {0};
    int64_t total = 0;
    int rc = es__target_query(c->t, "SELECT next_offset FROM " P "checkpoints"
                              " WHERE projection = $1", q, 1, add_offset, &s);
    if (rc != 0)
        return tfail(c->err, c->t, rc, "reading the rebuild's checkpoints");
    for (size_t i = 0; c->r->orig->follows[i]; i++) {
        int32_t n;
        const char *type = c->r->orig->follows[i];
        if ((rc = es_log_partition_count(c->log, &n, type)) != 0)
            return es__err(c->err, rc, "%s: %s", type, es_errmsg(c->log));
        for (int32_t k = 0; k < n; k++) {
            int64_t head;
            if ((rc = es_log_head(c->log, &head, type, k)) != 0)
                return es__err(c->err, rc, "%s: %s", type, es_errmsg(c->log));
            total += head;
        }
    }
    c->p.done = s.sum;
    c->p.total = total;
    c->p.elapsed_us = es_time_now_us() - c->began_us;
    return 0;
}

static int report(run_ctx *c, const char *phase)
{
    c->p.phase = phase;
    if ((c->rc = measure(c)) != 0)
        return 1;
    c->last_us = es_time_now_us();
    if (c->o->progress && c->o->progress(&c->p, c->o->progress_data) != 0) {
        c->rc = es__err(c->err, ES_EUSER, "projection %s: rebuild stopped by its "
                        "progress callback (it resumes when started again)",
                        c->r->orig->name);
        return 1;
    }
    return 0;
}

static int on_step(const es_projection_step *total, void *ud)
{
    run_ctx *c = ud;
    c->p.applied = total->applied;
    if (es_time_now_us() - c->last_us < 200000 && !total->caught_up)
        return 0;
    return report(c, "build");
}

int es__proj_internal_suffix(const char *s)
{
    return strcmp(s, "#rebuild") == 0 || strncmp(s, "#asof-", 6) == 0;
}

/* ---- the call ------------------------------------------------------------- */

void es_rebuild_asof_suffix(char *buf, size_t size, int64_t as_of_us)
{
    time_t s = (time_t)(as_of_us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    /* Lower case: PostgreSQL folds the unquoted names readers type. */
    snprintf(buf, size, "__asof_%04d%02d%02dt%02d%02d%02dz", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void rb_free(rb *r)
{
    names_free(&r->tables);
    names_free(&r->indexes);
    json_decref(r->cut);
    es__free(r->index_stmt);
    for (size_t i = 0; r->setup_rw && r->setup_rw[i]; i++)
        es__free(r->setup_rw[i]);
    es__free(r->setup_rw);
    for (size_t i = 0; i < r->ncache; i++) {
        es__free(r->cache[i].from);
        es__free(r->cache[i].to);
    }
    es__free(r->cache);
}

static int rb_init(rb *r, const es_projection *proj, int64_t as_of_us,
                   es_error *err)
{
    size_t n = 0;
    int rc;

    memset(r, 0, sizeof *r);
    r->orig = proj;
    r->as_of_us = as_of_us;
    if ((r->cut = json_object()) == NULL)
        return es__err(err, ES_ENOMEM, "out of memory");
    if (as_of_us) {
        es_rebuild_asof_suffix(r->suffix, sizeof r->suffix, as_of_us);
        snprintf(r->ns, sizeof r->ns, "%s#asof-%s", proj->name, r->suffix + 7);
    } else {
        snprintf(r->suffix, sizeof r->suffix, "__v%d_rebuild", (int)proj->version);
        snprintf(r->ns, sizeof r->ns, "%s#rebuild", proj->name);
    }
    if ((rc = parse_setup(r, err)) != 0)
        return rc;
    while (proj->setup && proj->setup[n])
        n++;
    if ((r->setup_rw = es__calloc(n + 1, sizeof *r->setup_rw)) == NULL)
        return es__err(err, ES_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        if ((r->setup_rw[i] = rewrite(r, proj->setup[i])) == NULL)
            return es__err(err, ES_ENOMEM, "out of memory");
    /* One trampoline for every type: as of, it must see events without a
     * handler too (they cut their stream as well). */
    r->handlers[0].event_type = "*";
    r->handlers[0].fn = trampoline;
    r->derived = *proj;
    r->derived.name = r->ns;
    r->derived.setup = (const char *const *)r->setup_rw;
    r->derived.handlers = r->handlers;
    r->derived.user_data = r;
    es__handle_init(&r->wrap.h);
    r->wrap.name = (char *)"rebuild";
    r->wrap.backend = &rw_backend;
    r->wrap.self = r;
    return 0;
}

int es_projection_rebuild(es_rebuild_progress *out, es_log *log,
                          const es_projection *proj, const char *target_uri,
                          const es_rebuild_options *opts, es_error *err)
{
    es_rebuild_options o = ES_REBUILD_OPTIONS_INIT;
    es_projection_worker_options wo = ES_PROJECTION_WORKER_OPTIONS_INIT;
    es_projection_worker *w = NULL;
    es_projection_step total;
    es__target *t = NULL;
    run_ctx c;
    rb r;
    int rc;

    memset(&c, 0, sizeof c);
    memset(&r, 0, sizeof r);
    if (log == NULL || es__projection_check(proj, err) != 0)
        return log ? ES_EINVAL : es__err(err, ES_EINVAL, "no log");
    if (opts) {
        if (opts->version != ES_REBUILD_OPTIONS_VERSION)
            return es__err(err, ES_EINVAL, "es_rebuild_options version %u is not "
                           "supported", opts->version);
        o = *opts;
    }
    if (o.lock_timeout_ms <= 0)
        o.lock_timeout_ms = 2000;
    if (o.swap_attempts <= 0)
        o.swap_attempts = 5;
    if (target_uri == NULL)
        target_uri = getenv("ESFOLD_TARGET");
    if (target_uri == NULL)
        target_uri = "";
    if ((rc = rb_init(&r, proj, o.as_of_us, err)) != 0)
        goto done;
    if ((rc = es__target_open(&t, target_uri)) != 0) {
        rc = t ? tfail(err, t, rc, "opening the target")
               : es__err(err, rc, "out of memory");
        goto done;
    }
    if ((rc = prepare(&t[0], &r, err)) != 0)
        goto done;
    c.r = &r;
    c.log = log;
    c.t = t;
    c.o = &o;
    c.err = err;
    c.began_us = es_time_now_us();
    wo.batch_size = o.batch_size;
    wo.worker_id = NULL;
    if ((rc = es_projection_worker_open(&w, log, &r.derived, target_uri, &wo)) != 0) {
        rc = es__err(err, rc, "%s", w ? es_errmsg(w) : "out of memory");
        goto done;
    }
    if ((rc = measure(&c)) != 0)
        goto done;
    c.p.start = c.p.done;
    if (report(&c, "build") != 0) {
        rc = c.rc;
        goto done;
    }
    rc = es_projection_worker_run(w, o.stop, 1, &total, on_step, &c);
    if (rc == ES_EUSER && c.rc != 0) {
        rc = c.rc;
        goto done;
    }
    if (rc != 0) {
        rc = es__err(err, rc, "%s", es_errmsg(w));
        goto done;
    }
    if (o.stop && *o.stop) {
        rc = es__err(err, ES_EUSER, "projection %s: rebuild stopped (it resumes "
                     "when started again)", proj->name);
        goto done;
    }
    c.p.applied = total.applied;
    es_projection_worker_close(w); /* its last heartbeat before the swap */
    w = NULL;
    if (o.as_of_us == 0) {
        es_rebuild_table *tabs = es__calloc(r.tables.n, sizeof *tabs);
        char (*shadow)[128] = es__calloc(r.tables.n, sizeof *shadow);
        int declined = 0;
        if (tabs == NULL || shadow == NULL) {
            es__free(tabs);
            es__free(shadow);
            rc = es__err(err, ES_ENOMEM, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < r.tables.n; i++) {
            snprintf(shadow[i], sizeof shadow[i], "%s%s", r.tables.v[i], r.suffix);
            tabs[i].table = r.tables.v[i];
            tabs[i].shadow = shadow[i];
            (void)checksum(t, tabs[i].table, &tabs[i].old_rows, tabs[i].old_sum);
            (void)checksum(t, tabs[i].shadow, &tabs[i].new_rows, tabs[i].new_sum);
        }
        if (o.compare)
            declined = o.compare(tabs, r.tables.n, o.compare_data) != 0;
        es__free(tabs);
        es__free(shadow);
        if (declined) {
            rc = es__err(err, ES_EUSER, "projection %s: swap declined; the rebuilt "
                         "tables stay (suffix %s)", proj->name, r.suffix);
            goto done;
        }
        if (report(&c, "swap") != 0) {
            rc = c.rc;
            goto done;
        }
        for (int a = 1;; a++) {
            if ((rc = swap_once(t, &r, o.lock_timeout_ms)) == 0)
                break;
            if (a >= o.swap_attempts) {
                rc = tfail(err, t, rc, "swapping in the rebuilt tables");
                goto done;
            }
            es__sleep_ms(50 * a);
        }
    }
    c.p.phase = "done";
    c.p.elapsed_us = es_time_now_us() - c.began_us;
    if (o.as_of_us)
        (void)measure(&c); /* after a swap the checkpoints have the live name */
    if (o.progress)
        (void)o.progress(&c.p, o.progress_data);
    rc = 0;
done:
    if (out)
        *out = c.p;
    es_projection_worker_close(w);
    es__target_close(t);
    rb_free(&r);
    return rc;
}

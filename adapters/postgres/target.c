/*
 * adapters/postgres/target.c - the projection target in PostgreSQL (libpq).
 *
 * Parameters are sent as text with a type: int64 as int8, double as
 * float8, bool as bool, text and JSON as "unknown" so that the server
 * gives them the type their place in the statement wants (text, jsonb,
 * timestamptz, ...). A batch's statements go in pipeline mode (libpq 14
 * and later), each statement prepared once per connection (by its text
 * and parameter types, up to MAX_PREPARED of them): queued, BEGIN among
 * them, with a Sync every SYNC_EVERY statements, and their results read a
 * group behind (the server works on one group while the client queues
 * the next, and the results in flight stay bounded) and at the end. A
 * failed statement aborts the rest of the transaction; pipeline_sync
 * reports the first failure with its tag.
 *
 * A broken connection is remade at the next begin (the worker retries the
 * batch from its checkpoint).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"
#include "projections/target_backend.h"

/* A Sync every 1,000 statements, whose results are read only after the
 * next Sync has been sent: the client never waits for a group the server
 * has just been given (waiting for each Sync cost 7% of the rate at 256
 * statements a group, and a whole round trip in the middle of each 1,000
 * event batch at 1,000). The results of 1,000 statements are about 50 KB
 * (BindComplete, CommandComplete); libpq reads what arrives while it
 * cannot write, so neither side blocks on the other. */
#define SYNC_EVERY 1000
#define MAX_PARAMS 64
#define MAX_PREPARED 64

typedef struct pending {
    int64_t *changes;
    int tag;
    int prepare; /* >= 0: the Parse of prepared[prepare] */
} pending;

/* A statement prepared on the connection (pipeline mode only), by its
 * text and parameter types: the batch's statements are parsed once. */
typedef struct prepared {
    char *sql;
    char name[24]; /* es_proj_K */
    Oid types[MAX_PARAMS];
    size_t n;
    int ready; /* its Parse was sent (and did not fail) on this connection */
} prepared;

typedef struct pg_target {
    char *uri;
    PGconn *conn;
    pending *q;             /* statements whose results are not read */
    size_t nq, capq;
    size_t syncs[2];        /* q positions after which a Sync was sent */
    size_t nsyncs;
    int failed;             /* a queued statement failed */
    int failed_tag;
    char failmsg[ES__ERRMSG_MAX];
    prepared prep[MAX_PREPARED];
    size_t nprep;
} pg_target;

static void pt_close(void *self)
{
    pg_target *p = self;
    if (p == NULL)
        return;
    if (p->conn)
        PQfinish(p->conn);
    for (size_t i = 0; i < p->nprep; i++)
        es__free(p->prep[i].sql);
    es__free(p->q);
    es__free(p->uri);
    es__free(p);
}

static int ensure(es__target *t, pg_target *p)
{
    PGresult *res;
    if (p->conn && PQstatus(p->conn) == CONNECTION_OK)
        return 0;
    if (p->conn)
        PQfinish(p->conn);
    p->conn = NULL;
    for (size_t i = 0; i < p->nprep; i++)
        p->prep[i].ready = 0; /* a new connection has none */
    if (es__pg_connect(&p->conn, p->uri, t->name, &t->h) != 0)
        return ES_EIO;
    res = PQexec(p->conn, "SET client_min_messages = warning");
    PQclear(res);
    return 0;
}

static int pt_open(es__target *t, void **self, const char *uri)
{
    pg_target *p;
    int rc;

    *self = NULL;
    if (es__pg_check_uri(uri, t->name, &t->h) != 0)
        return ES_EINVAL;
    if ((p = es__calloc(1, sizeof *p)) == NULL ||
        (p->uri = es__strdup(uri)) == NULL) {
        es__free(p);
        return es__fail(&t->h, ES_ENOMEM, "out of memory");
    }
    if ((rc = ensure(t, p)) != 0) {
        pt_close(p);
        return rc;
    }
    *self = p;
    return 0;
}

/* The text and type of each parameter; texts of numbers in bufs, JSON in
 * heap strings freed by free_params. */
typedef struct params {
    const char *values[MAX_PARAMS];
    Oid types[MAX_PARAMS];
    char bufs[MAX_PARAMS][32];
    char *heap[MAX_PARAMS];
} params;

static void free_params(params *pp, size_t n)
{
    for (size_t i = 0; i < n && i < MAX_PARAMS; i++)
        es__free(pp->heap[i]);
}

/* The decimal text of v into buf (at least 21 bytes); snprintf was a
 * tenth of the client's time per statement. */
static const char *i64_text(char *buf, int64_t v)
{
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    char *p = buf + 21;
    *--p = '\0';
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return p;
}

static int make_params(es__target *t, params *pp, const es_sql_value *v,
                       size_t n)
{
    if (n > MAX_PARAMS) {
        memset(pp->heap, 0, sizeof pp->heap);
        return es__fail(&t->h, ES_EINVAL, "%s: %zu parameters (at most %d)",
                        t->name, n, MAX_PARAMS);
    }
    for (size_t i = 0; i < n; i++)
        pp->heap[i] = NULL; /* free_params frees n of them */
    for (size_t i = 0; i < n; i++) {
        pp->types[i] = 0;
        pp->values[i] = NULL;
        switch (v[i].type) {
        case ES_SQL_NULL:
            break;
        case ES_SQL_TEXT:
            pp->values[i] = v[i].v.text;
            break;
        case ES_SQL_INT64:
            pp->values[i] = i64_text(pp->bufs[i], v[i].v.i64);
            pp->types[i] = 20; /* int8 */
            break;
        case ES_SQL_DOUBLE:
            snprintf(pp->bufs[i], sizeof pp->bufs[i], "%.17g", v[i].v.f64);
            pp->values[i] = pp->bufs[i];
            pp->types[i] = 701; /* float8 */
            break;
        case ES_SQL_BOOL:
            pp->values[i] = v[i].v.b ? "true" : "false";
            pp->types[i] = 16; /* bool */
            break;
        case ES_SQL_JSON:
            if (v[i].v.json == NULL)
                break;
            if ((pp->heap[i] = es__json_text(v[i].v.json)) == NULL) {
                free_params(pp, n);
                return es__fail(&t->h, ES_ENOMEM, "out of memory");
            }
            pp->values[i] = pp->heap[i];
            break;
        default:
            free_params(pp, n);
            return es__fail(&t->h, ES_EINVAL, "%s: parameter $%zu has an "
                            "unknown type %d", t->name, i + 1, (int)v[i].type);
        }
    }
    return 0;
}

static int result_fail(es__target *t, pg_target *p, PGresult *res,
                       const char *sql)
{
    char msg[512];
    return es__fail(&t->h, ES_EIO, "%s: %s%s%s", t->name,
                    es__pg_message(msg, sizeof msg,
                                   res ? PQresultErrorMessage(res)
                                       : PQerrorMessage(p->conn)),
                    sql ? " in: " : "", sql ? sql : "");
}

/* The cache slot of (sql, types), made when there is room; -1: none (the
 * statement is then sent unprepared). */
static int find_prepared(pg_target *p, const char *sql, const Oid *types,
                         size_t n)
{
    prepared *pr;
    for (size_t i = 0; i < p->nprep; i++) {
        pr = &p->prep[i];
        if (pr->n == n && memcmp(pr->types, types, n * sizeof *types) == 0 &&
            strcmp(pr->sql, sql) == 0)
            return (int)i;
    }
    if (p->nprep == MAX_PREPARED)
        return -1;
    pr = &p->prep[p->nprep];
    if ((pr->sql = es__strdup(sql)) == NULL)
        return -1;
    memcpy(pr->types, types, n * sizeof *types);
    pr->n = n;
    snprintf(pr->name, sizeof pr->name, "es_proj_%d", (int)p->nprep);
    pr->ready = 0;
    return (int)p->nprep++;
}

/* Reads the results of the oldest group of statements (q[0 .. syncs[0]])
 * and the Sync after it; the later ones move to the front of q. */
static int drain_group(es__target *t, pg_target *p)
{
    PGresult *res;
    char msg[512];
    size_t end = p->syncs[0];

    for (size_t i = 0; i < end; i++) {
        ExecStatusType st;
        if ((res = PQgetResult(p->conn)) == NULL) {
            p->nq = p->nsyncs = 0;
            return es__fail(&t->h, ES_EIO, "%s: pipeline: %s", t->name,
                            es__pg_message(msg, sizeof msg,
                                           PQerrorMessage(p->conn)));
        }
        st = PQresultStatus(res);
        if (p->q[i].prepare >= 0 && st != PGRES_COMMAND_OK)
            p->prep[p->q[i].prepare].ready = 0; /* not made: parse again */
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            if (p->q[i].changes)
                *p->q[i].changes = atoll(PQcmdTuples(res));
        } else if (st != PGRES_PIPELINE_ABORTED && !p->failed) {
            p->failed = 1;
            p->failed_tag = p->q[i].tag;
            snprintf(p->failmsg, sizeof p->failmsg, "%s: %s", t->name,
                     es__pg_message(msg, sizeof msg, PQresultErrorMessage(res)));
        }
        PQclear(res);
        while ((res = PQgetResult(p->conn)) != NULL)
            PQclear(res);
    }
    while ((res = PQgetResult(p->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        PQclear(res);
        if (st == PGRES_PIPELINE_SYNC)
            break;
    }
    memmove(p->q, p->q + end, (p->nq - end) * sizeof *p->q);
    p->nq -= end;
    if (--p->nsyncs > 0)
        p->syncs[0] = p->syncs[1] - end;
    return 0;
}

/* Sends a Sync after what is queued (unless one was just sent); with
 * wait, reads every result, else only those of the group before (if any). */
static int sync_groups(es__target *t, pg_target *p, int wait)
{
    int rc = 0;
    if (p->nsyncs == 0 || p->syncs[p->nsyncs - 1] != p->nq) {
        if (!PQpipelineSync(p->conn))
            return result_fail(t, p, NULL, NULL);
        p->syncs[p->nsyncs++] = p->nq;
    }
    while (rc == 0 && p->nsyncs > (wait ? 0u : 1u))
        rc = drain_group(t, p);
    return rc;
}

/* Queues sql (no parameters, unprepared) in the pipeline. */
static int queue_simple(es__target *t, pg_target *p, const char *sql, int tag)
{
    if (p->nq + 1 > p->capq) {
        size_t cap = p->capq ? p->capq * 2 : 64;
        if (es__grow((void **)&p->q, p->capq * sizeof *p->q,
                     cap * sizeof *p->q) != 0)
            return es__fail(&t->h, ES_ENOMEM, "out of memory");
        p->capq = cap;
    }
    if (!PQsendQueryParams(p->conn, sql, 0, NULL, NULL, NULL, NULL, 0))
        return result_fail(t, p, NULL, sql);
    p->q[p->nq].changes = NULL;
    p->q[p->nq].tag = tag;
    p->q[p->nq].prepare = -1;
    p->nq++;
    return 0;
}

static int pt_exec(es__target *t, void *self, const char *sql,
                   const es_sql_value *v, size_t n, int64_t *changes, int tag)
{
    pg_target *p = self;
    params pp;
    PGresult *res;
    int rc;

    if ((rc = make_params(t, &pp, v, n)) != 0)
        return rc;
    if (t->in_pipeline) {
        int k, sent;
        /* Room for a Parse and an Execute. */
        if (p->nq + 2 > p->capq) {
            size_t cap = p->capq ? p->capq * 2 : 64;
            if (es__grow((void **)&p->q, p->capq * sizeof *p->q,
                         cap * sizeof *p->q) != 0) {
                free_params(&pp, n);
                return es__fail(&t->h, ES_ENOMEM, "out of memory");
            }
            p->capq = cap;
        }
        k = find_prepared(p, sql, pp.types, n);
        if (k >= 0 && !p->prep[k].ready) {
            if (!PQsendPrepare(p->conn, p->prep[k].name, sql, (int)n, pp.types)) {
                free_params(&pp, n);
                return result_fail(t, p, NULL, sql);
            }
            p->prep[k].ready = 1;
            p->q[p->nq].changes = NULL;
            p->q[p->nq].tag = tag;
            p->q[p->nq].prepare = k;
            p->nq++;
        }
        if (k >= 0) {
            sent = PQsendQueryPrepared(p->conn, p->prep[k].name, (int)n,
                                       pp.values, NULL, NULL, 0);
        } else {
            sent = PQsendQueryParams(p->conn, sql, (int)n, pp.types, pp.values,
                                     NULL, NULL, 0);
        }
        free_params(&pp, n);
        if (!sent)
            return result_fail(t, p, NULL, sql);
        p->q[p->nq].changes = changes;
        p->q[p->nq].tag = tag;
        p->q[p->nq].prepare = -1;
        p->nq++;
        if (p->nq - (p->nsyncs ? p->syncs[p->nsyncs - 1] : 0) >= SYNC_EVERY)
            return sync_groups(t, p, 0);
        return 0;
    }
    if ((rc = ensure(t, p)) != 0) {
        free_params(&pp, n);
        return rc;
    }
    res = PQexecParams(p->conn, sql, (int)n, pp.types, pp.values, NULL, NULL, 0);
    free_params(&pp, n);
    if (res == NULL || (PQresultStatus(res) != PGRES_COMMAND_OK &&
                        PQresultStatus(res) != PGRES_TUPLES_OK)) {
        rc = result_fail(t, p, res, NULL);
        PQclear(res);
        return rc;
    }
    if (changes)
        *changes = atoll(PQcmdTuples(res));
    PQclear(res);
    return 0;
}

static int pt_query(es__target *t, void *self, const char *sql,
                    const es_sql_value *v, size_t n, es__row_cb cb, void *ud)
{
    pg_target *p = self;
    const char *vals[32];
    params pp;
    PGresult *res;
    int rc = 0;

    if ((rc = ensure(t, p)) != 0 || (rc = make_params(t, &pp, v, n)) != 0)
        return rc;
    res = PQexecParams(p->conn, sql, (int)n, pp.types, pp.values, NULL, NULL, 0);
    free_params(&pp, n);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = result_fail(t, p, res, sql);
        PQclear(res);
        return rc;
    }
    for (int r = 0; r < PQntuples(res) && rc == 0; r++) {
        int nc = PQnfields(res) > 32 ? 32 : PQnfields(res);
        for (int c = 0; c < nc; c++)
            vals[c] = PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c);
        if (cb(nc, vals, ud) != 0)
            rc = ES_EUSER;
    }
    PQclear(res);
    return rc;
}

static int simple(es__target *t, pg_target *p, const char *sql)
{
    PGresult *res = PQexec(p->conn, sql);
    int rc = 0;
    if (res == NULL || (PQresultStatus(res) != PGRES_COMMAND_OK &&
                        PQresultStatus(res) != PGRES_TUPLES_OK))
        rc = result_fail(t, p, res, sql);
    PQclear(res);
    return rc;
}

static int pt_begin(es__target *t, void *self)
{
    pg_target *p = self;
    int rc;
    if (t->in_pipeline) /* no round trip of its own */
        return queue_simple(t, p, "BEGIN", -1);
    if ((rc = ensure(t, p)) != 0)
        return rc;
    return simple(t, p, "BEGIN");
}

static int pt_commit(es__target *t, void *self)
{
    return simple(t, self, "COMMIT");
}

static void pt_rollback(es__target *t, void *self)
{
    pg_target *p = self;
    (void)t;
    if (p->conn && PQstatus(p->conn) == CONNECTION_OK &&
        PQtransactionStatus(p->conn) != PQTRANS_IDLE) {
        PGresult *res = PQexec(p->conn, "ROLLBACK");
        PQclear(res);
    }
}

static int pt_setup_lock(es__target *t, void *self)
{
    return simple(t, self, "SELECT pg_advisory_xact_lock(hashtext('esfold.es_proj_'))") ;
}

static int pt_pipeline_begin(es__target *t, void *self)
{
    pg_target *p = self;
    int rc;
    if ((rc = ensure(t, p)) != 0)
        return rc;
    p->nq = 0;
    p->nsyncs = 0;
    p->failed = 0;
    p->failed_tag = -1;
    return PQenterPipelineMode(p->conn) ? 0 : ES_EUNSUPPORTED;
}

static int pt_pipeline_sync(es__target *t, void *self, int *failed_tag)
{
    pg_target *p = self;
    int rc = 0;

    rc = sync_groups(t, p, 1);
    p->nq = p->nsyncs = 0;
    if (!PQexitPipelineMode(p->conn) && rc == 0)
        rc = result_fail(t, p, NULL, NULL);
    if (rc == 0 && p->failed) {
        *failed_tag = p->failed_tag;
        rc = es__fail(&t->h, ES_EIO, "%s", p->failmsg);
    }
    p->failed = 0;
    return rc;
}

static int pt_pipeline_flush(es__target *t, void *self)
{
    return sync_groups(t, self, 0);
}

static int pt_copy_in(es__target *t, void *self, const char *copy_sql,
                      const char *data, size_t len)
{
    pg_target *p = self;
    PGresult *res = PQexec(p->conn, copy_sql);
    int rc = 0;
    if (res == NULL || PQresultStatus(res) != PGRES_COPY_IN) {
        rc = result_fail(t, p, res, copy_sql);
        PQclear(res);
        return rc;
    }
    PQclear(res);
    while (len > 0 && rc == 0) {
        int n = len > (1u << 20) ? (1 << 20) : (int)len;
        if (PQputCopyData(p->conn, data, n) != 1)
            rc = result_fail(t, p, NULL, copy_sql);
        data += n;
        len -= (size_t)n;
    }
    if (PQputCopyEnd(p->conn, rc ? "aborted" : NULL) != 1 && rc == 0)
        rc = result_fail(t, p, NULL, copy_sql);
    while ((res = PQgetResult(p->conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0)
            rc = result_fail(t, p, res, copy_sql);
        PQclear(res);
    }
    return rc;
}

const es__target_backend es__pg_target_backend = {
    .version = ES__TARGET_BACKEND_VERSION,
    .name = "postgresql",
    .open = pt_open,
    .close = pt_close,
    .begin = pt_begin,
    .commit = pt_commit,
    .rollback = pt_rollback,
    .setup_lock = pt_setup_lock,
    .exec = pt_exec,
    .query = pt_query,
    .pipeline_begin = pt_pipeline_begin,
    .pipeline_sync = pt_pipeline_sync,
    .copy_in = pt_copy_in,
    .pipeline_flush = pt_pipeline_flush,
};

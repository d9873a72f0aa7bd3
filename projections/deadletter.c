/*
 * projections/deadletter.c - what an operator does with dead letters:
 * list them, retry or skip the failed ones. The worker applies what is no
 * longer blocked (projections/worker.c); these calls only change the
 * status, in the target, so they work while a worker runs.
 */
#include <stdlib.h>
#include <string.h>

#include "projections/target_backend.h"

static int open_target(es__target **t, const char *uri, es_error *err)
{
    int rc;
    if (uri == NULL)
        uri = getenv("ESFOLD_TARGET");
    rc = es__target_open(t, uri ? uri : "");
    if (rc != 0)
        es__err(err, rc, "%s", *t ? es_errmsg(*t) : "out of memory");
    return rc;
}

typedef struct list_ctx {
    es_projection_dead_letter_cb cb;
    void *ud;
} list_ctx;

static int list_row(int ncols, const char *const *v, void *ud)
{
    list_ctx *c = ud;
    es_projection_dead_letter dl;
    int64_t part = 0;
    if (ncols < 11)
        return 0;
    memset(&dl, 0, sizeof dl);
    dl.aggregate_type = v[0];
    dl.stream_id = v[1];
    es__parse_i64(&dl.version, v[2] ? v[2] : "0");
    es__parse_i64(&part, v[3] ? v[3] : "0");
    dl.position.partition = (int32_t)part;
    es__parse_i64(&dl.position.offset, v[4] ? v[4] : "0");
    dl.event_type = v[5];
    dl.status = v[6];
    es__parse_i64(&dl.attempts, v[7] ? v[7] : "0");
    dl.error = v[8];
    dl.event = v[9];
    es__parse_i64(&dl.updated_us, v[10] ? v[10] : "0");
    return c->cb(&dl, c->ud);
}

int es_projection_dead_letters(const char *target_uri, const char *name,
                               es_projection_dead_letter_cb cb, void *user_data,
                               es_error *err)
{
    es__target *t = NULL;
    list_ctx c = {cb, user_data};
    es_sql_value q[] = {ES_SQL_STR(name)};
    int rc;

    if (name == NULL || cb == NULL)
        return es__err(err, ES_EINVAL, "a projection name and a callback are "
                       "needed");
    if ((rc = open_target(&t, target_uri, err)) != 0)
        goto done;
    rc = es__target_query(t, "SELECT agg_type, stream_id, version, "
                          "partition_no, log_offset, event_type, status, "
                          "attempts, error, event, updated_us FROM "
                          ES__PROJ_PREFIX "deadletters WHERE projection = $1 "
                          "ORDER BY agg_type, stream_id, version",
                          q, 1, list_row, &c);
    if (rc != 0 && rc != ES_EUSER)
        es__err(err, rc, "%s", es_errmsg(t));
done:
    es__target_close(t);
    return rc;
}

static int mark(const char *target_uri, const char *name, const char *stream_id,
                const char *status, int64_t *count, es_error *err)
{
    es__target *t = NULL;
    es_sql_value q[] = {ES_SQL_STR(status), ES_SQL_STR(name),
                        stream_id ? ES_SQL_STR(stream_id) : ES_SQL_NULLV};
    int64_t n = 0;
    int rc;

    if (count)
        *count = 0;
    if (name == NULL)
        return es__err(err, ES_EINVAL, "a projection name is needed");
    if ((rc = open_target(&t, target_uri, err)) != 0)
        goto done;
    /* stream_id is compared only when given: two statements keep the
     * parameter typed the same way on both targets. */
    rc = es__target_exec(t, stream_id
                         ? "UPDATE " ES__PROJ_PREFIX "deadletters SET status = $1"
                           " WHERE projection = $2 AND stream_id = $3"
                           " AND status = 'failed'"
                         : "UPDATE " ES__PROJ_PREFIX "deadletters SET status = $1"
                           " WHERE projection = $2 AND status = 'failed'",
                         q, stream_id ? 3 : 2, &n, -1);
    if (rc != 0)
        es__err(err, rc, "%s", es_errmsg(t));
    else if (count)
        *count = n;
done:
    es__target_close(t);
    return rc;
}

int es_projection_dead_letters_retry(const char *target_uri, const char *name,
                                     const char *stream_id, int64_t *count,
                                     es_error *err)
{
    return mark(target_uri, name, stream_id, "retry", count, err);
}

int es_projection_dead_letters_skip(const char *target_uri, const char *name,
                                    const char *stream_id, int64_t *count,
                                    es_error *err)
{
    return mark(target_uri, name, stream_id, "skipped", count, err);
}

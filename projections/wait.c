/*
 * projections/wait.c - read your writes: a waiter polls a projection's
 * checkpoint on a connection it keeps (es_projection_waiter), and
 * es_projection_wait does the same in one call.
 */
#include <stdlib.h>
#include <string.h>

#include "esfold/time.h"
#include "projections/target_backend.h"

struct es_projection_waiter {
    es__handle h;
    char *uri;         /* as given (with its password: reconnecting) */
    es__target *t;     /* NULL after a failure: the next wait reconnects */
    int max_poll_ms;
};

/* Connects wt->t when it is not; 0 or the target's code (message on wt). */
static int waiter_connect(es_projection_waiter *wt)
{
    int rc;
    if (wt->t)
        return 0;
    if ((rc = es__target_open(&wt->t, wt->uri)) != 0) {
        es__fail(&wt->h, rc, "%s", wt->t ? es_errmsg(wt->t) : "out of memory");
        es__target_close(wt->t);
        wt->t = NULL;
    }
    return rc;
}

int es_projection_waiter_open(es_projection_waiter **out, const char *target_uri,
                              const es_projection_waiter_options *opts)
{
    es_projection_waiter *wt;

    if (out == NULL)
        return ES_EINVAL;
    *out = NULL;
    if ((wt = es__calloc(1, sizeof *wt)) == NULL)
        return ES_ENOMEM;
    es__handle_init(&wt->h);
    *out = wt;
    if (opts && opts->version != ES_PROJECTION_WAITER_OPTIONS_VERSION)
        return es__fail(&wt->h, ES_EINVAL, "es_projection_waiter_open: options "
                        "version %u, expected %u", opts->version,
                        (unsigned)ES_PROJECTION_WAITER_OPTIONS_VERSION);
    wt->max_poll_ms = opts && opts->max_poll_ms > 0 ? opts->max_poll_ms : 50;
    if (target_uri == NULL)
        target_uri = getenv("ESFOLD_TARGET");
    if ((wt->uri = es__strdup(target_uri ? target_uri : "")) == NULL)
        return es__fail(&wt->h, ES_ENOMEM, "out of memory");
    return waiter_connect(wt);
}

void es_projection_waiter_close(es_projection_waiter *wt)
{
    if (wt == NULL)
        return;
    es__target_close(wt->t);
    es__free(wt->uri);
    es__free(wt);
}

int es_projection_waiter_wait(es_projection_waiter *wt, const char *name,
                              const char *aggregate_type, es_position pos,
                              int timeout_ms)
{
    int64_t start = es_time_now_us();
    int poll_ms = 1, rc;

    if (wt == NULL)
        return ES_EINVAL;
    if (name == NULL || aggregate_type == NULL || pos.offset < 0)
        return es__fail(&wt->h, ES_EINVAL, "es_projection_waiter_wait: a name, "
                        "a type and a position are needed");
    if ((rc = waiter_connect(wt)) != 0)
        return rc;
    for (;;) {
        es_sql_value q[] = {ES_SQL_STR(name), ES_SQL_STR(aggregate_type),
                            ES_SQL_I64(pos.partition)};
        es__i64_row r = {0, 0};
        if ((rc = es__target_query(wt->t, ES__PROJ_CKPT_GET_SQL, q, 3,
                                   es__target_i64_row, &r)) != 0) {
            es__fail(&wt->h, rc, "waiting for projection %s: %s", name,
                     es_errmsg(wt->t));
            es__target_close(wt->t); /* reconnect at the next wait */
            wt->t = NULL;
            return rc;
        }
        if (r.found && r.v > pos.offset)
            return 0;
        if (timeout_ms >= 0 &&
            es_time_now_us() - start >= (int64_t)timeout_ms * 1000)
            return es__fail(&wt->h, ES_ETIMEDOUT, "projection %s has not applied "
                            "%s p%d@%lld after %d ms (checkpoint %lld)", name,
                            aggregate_type, (int)pos.partition,
                            (long long)pos.offset, timeout_ms,
                            (long long)(r.found ? r.v : 0));
        es__sleep_ms(poll_ms);
        poll_ms = es__backoff_ms(poll_ms, 1, wt->max_poll_ms);
    }
}

int es_projection_wait(const char *target_uri, const char *name,
                       const char *aggregate_type, es_position pos,
                       int timeout_ms, es_error *err)
{
    es_projection_waiter *wt = NULL;
    int rc;

    if (name == NULL || aggregate_type == NULL || pos.offset < 0)
        return es__err(err, ES_EINVAL, "es_projection_wait: a name, a type and "
                       "a position are needed");
    rc = es_projection_waiter_open(&wt, target_uri, NULL);
    if (rc == 0)
        rc = es_projection_waiter_wait(wt, name, aggregate_type, pos, timeout_ms);
    if (rc != 0)
        es__err(err, rc, "%s", wt ? es_errmsg(wt) : "out of memory");
    es_projection_waiter_close(wt);
    return rc;
}

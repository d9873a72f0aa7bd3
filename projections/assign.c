/*
 * projections/assign.c - which partitions a projection worker owns: all of
 * them, those a consumer group of the log assigns it, or all of them while
 * it holds the projection's lease in the target (projections/assign.h).
 *
 * The lease is one row of es_proj_leases per projection: (owner,
 * expires_us). A worker takes it, or renews it, with one statement that is
 * its own compare-and-set:
 *
 *   INSERT .. ON CONFLICT (projection) DO UPDATE SET owner = me, expires =
 *   now + lease WHERE owner = me OR expires <= now
 *
 * One changed row: it holds the lease until now + lease. None: another
 * holds it (its owner and expiry are read for the "waiting" message). A
 * holder renews once a third of the lease has passed; one that waits tries
 * again at the expiry it saw, or sooner (every quarter lease, at most a
 * second), to notice a holder that gave the lease up on close, which sets
 * its expiry to 0.
 */
#include <stdio.h>
#include <string.h>

#include "esfold/time.h"
#include "core/log_backend.h"
#include "projections/assign.h"

#define P ES__PROJ_PREFIX

enum { BY_ALL, BY_GROUP, BY_LEASE };

struct es__assign {
    es__handle *h;
    es_log *log;
    es__target *t;
    const es_projection *proj;
    int by;
    /* the group */
    void *group;
    /* the lease */
    char owner[200];
    int64_t lease_us;
    int held;
    int64_t held_until_us, renewed_us, next_try_us;
    char waiting[400];
};

static const char lease_table_sql[] =
    "CREATE TABLE IF NOT EXISTS " P "leases ("
    " projection TEXT NOT NULL PRIMARY KEY, owner TEXT NOT NULL,"
    " expires_us BIGINT NOT NULL, updated_us BIGINT NOT NULL)";
static const char lease_take_sql[] =
    "INSERT INTO " P "leases (projection, owner, expires_us, updated_us)"
    " VALUES ($1, $2, $3, $4) ON CONFLICT (projection) DO UPDATE SET"
    " owner = excluded.owner, expires_us = excluded.expires_us,"
    " updated_us = excluded.updated_us"
    " WHERE " P "leases.owner = excluded.owner"
    " OR " P "leases.expires_us <= excluded.updated_us";
static const char lease_get_sql[] =
    "SELECT owner, expires_us FROM " P "leases WHERE projection = $1";
static const char lease_release_sql[] =
    "UPDATE " P "leases SET expires_us = 0, updated_us = $3"
    " WHERE projection = $1 AND owner = $2";

static int target_fail(es__assign *a, int rc, const char *what)
{
    return es__fail(a->h, rc, "projection %s: %s: %s", a->proj->name, what,
                    es_errmsg(a->t));
}

/* The table, created once per target like the other es_proj_ tables. */
static int lease_setup(es__assign *a)
{
    int rc;
    if ((rc = es__target_begin(a->t)) != 0)
        return target_fail(a, rc, "creating the lease table");
    if (a->t->backend->setup_lock &&
        (rc = a->t->backend->setup_lock(a->t, a->t->self)) != 0)
        goto fail;
    if ((rc = es__target_exec0(a->t, lease_table_sql)) != 0)
        goto fail;
    if ((rc = es__target_commit(a->t)) != 0)
        goto fail;
    return 0;
fail:
    target_fail(a, rc, "creating the lease table");
    es__target_rollback(a->t);
    return rc;
}

int es__assign_open(es__assign **out, es__handle *h, es_log *log, es__target *t,
                    const es_projection *proj, const char *worker,
                    es_projection_share share, int lease_ms)
{
    es__assign *a;
    char uuid[ES_UUID_BUFSZ];
    int rc;

    *out = NULL;
    if ((a = es__calloc(1, sizeof *a)) == NULL)
        return es__fail(h, ES_ENOMEM, "out of memory");
    a->h = h;
    a->log = log;
    a->t = t;
    a->proj = proj;
    a->lease_us = (int64_t)(lease_ms > 0 ? lease_ms : 10000) * 1000;
    if (share == ES_PROJECTION_SHARE_NONE) {
        a->by = BY_ALL;
    } else if (share == ES_PROJECTION_SHARE_AUTO && log->backend->group_open) {
        char group[160];
        a->by = BY_GROUP;
        snprintf(group, sizeof group, "esfold-projection-%s", proj->name);
        if ((rc = log->backend->group_open(log, log->self, &a->group, group,
                                           proj->follows,
                                           (int)(a->lease_us / 1000))) != 0) {
            es__fail(h, rc, "projection %s: joining the consumer group %s: %s",
                     proj->name, group, es_errmsg(log));
            es__free(a);
            return rc;
        }
        snprintf(a->waiting, sizeof a->waiting, "waiting for a partition "
                 "assignment in the consumer group %s", group);
    } else if (share == ES_PROJECTION_SHARE_AUTO ||
               share == ES_PROJECTION_SHARE_LEASE) {
        a->by = BY_LEASE;
        /* Unique per worker handle, even with one worker id in two. */
        if ((rc = es_uuid_v7(uuid)) != 0) {
            es__free(a);
            return es__fail(h, rc, "no random bytes");
        }
        snprintf(a->owner, sizeof a->owner, "%s~%s", worker, uuid + 28);
        if ((rc = lease_setup(a)) != 0) {
            es__free(a);
            return rc;
        }
        snprintf(a->waiting, sizeof a->waiting, "waiting for the lease");
    } else {
        es__free(a);
        return es__fail(h, ES_EINVAL, "projection %s: unknown share mode %d",
                        proj->name, (int)share);
    }
    *out = a;
    return 0;
}

typedef struct lease_row {
    char owner[200];
    int64_t expires_us;
    int found;
} lease_row;

static int get_lease_row(int ncols, const char *const *vals, void *ud)
{
    lease_row *r = ud;
    if (ncols >= 2 && vals[0] && vals[1] &&
        es__parse_i64(&r->expires_us, vals[1]) == 0) {
        snprintf(r->owner, sizeof r->owner, "%s", vals[0]);
        r->found = 1;
    }
    return 0;
}

/* One short transaction (its begin also remakes a broken connection). */
static int lease_poll(es__assign *a, int *changed)
{
    int64_t now = es_time_now_us(), changes = 0;
    int rc, was = a->held;
    lease_row r = {"", 0, 0};
    es_sql_value q[] = {ES_SQL_STR(a->proj->name), ES_SQL_STR(a->owner),
                        ES_SQL_I64(now + a->lease_us), ES_SQL_I64(now)};

    if (a->held ? now - a->renewed_us < a->lease_us / 3 : now < a->next_try_us)
        return 0;
    if ((rc = es__target_begin(a->t)) != 0)
        return target_fail(a, rc, "taking the lease");
    if ((rc = es__target_exec(a->t, lease_take_sql, q, 4, &changes, -1)) != 0 ||
        (changes != 1 &&
         (rc = es__target_query(a->t, lease_get_sql, q, 1, get_lease_row,
                                &r)) != 0) ||
        (rc = es__target_commit(a->t)) != 0) {
        target_fail(a, rc, "taking the lease");
        es__target_rollback(a->t);
        a->held = 0; /* not known: the next poll asks again */
        a->next_try_us = 0;
        if (was)
            *changed = 1;
        return rc;
    }
    a->held = changes == 1;
    if (a->held) {
        a->renewed_us = now;
        a->held_until_us = now + a->lease_us;
    } else {
        char until[64] = "?";
        if (r.found)
            (void)es_time_format(until, sizeof until, r.expires_us);
        snprintf(a->waiting, sizeof a->waiting, "waiting for the lease held by "
                 "%s until %s", r.found ? r.owner : "?", until);
        a->next_try_us = now + (a->lease_us / 4 < 1000000 ? a->lease_us / 4
                                                          : 1000000);
        if (r.found && r.expires_us > now && r.expires_us < a->next_try_us)
            a->next_try_us = r.expires_us;
    }
    if (a->held != was)
        *changed = 1;
    return 0;
}

int es__assign_poll(es__assign *a, int *changed)
{
    *changed = 0;
    if (a == NULL || a->by == BY_ALL)
        return 0;
    if (a->by == BY_LEASE)
        return lease_poll(a, changed);
    {
        int rc = a->log->backend->group_poll(a->log, a->group, changed);
        if (rc != 0)
            return es__fail(a->h, rc, "projection %s: the consumer group: %s",
                            a->proj->name, es_errmsg(a->log));
    }
    return 0;
}

int es__assign_owns(const es__assign *a, const char *agg, int32_t partition)
{
    if (a == NULL || a->by == BY_ALL)
        return 1;
    if (a->by == BY_LEASE)
        return a->held && es_time_now_us() < a->held_until_us;
    return a->log->backend->group_owns(a->group, agg, partition);
}

const char *es__assign_waiting(const es__assign *a)
{
    return a == NULL || a->by == BY_ALL ? NULL : a->waiting;
}

void es__assign_close(es__assign *a)
{
    if (a == NULL)
        return;
    if (a->by == BY_GROUP && a->group)
        a->log->backend->group_close(a->group);
    if (a->by == BY_LEASE && a->held && a->t && a->t->self) {
        es_sql_value q[] = {ES_SQL_STR(a->proj->name), ES_SQL_STR(a->owner),
                            ES_SQL_I64(es_time_now_us())};
        (void)es__target_exec(a->t, lease_release_sql, q, 3, NULL, -1);
    }
    es__free(a);
}

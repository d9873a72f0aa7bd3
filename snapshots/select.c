/*
 * snapshots/select.c - the newest usable snapshot of a stream: checked,
 * upcast when its state schema is older, decoded into a fresh aggregate.
 *
 * Usable means: whole (checksum), of the type's current state schema (or
 * upcast to it by the repository's state upcasters), and accepted by the
 * type's decode(). Anything else is skipped with a warning and the next
 * older snapshot is tried. Whether the log still holds the snapshot's last
 * event is checked by the repository (core/repo.c) when it folds the tail.
 */
#include <stdio.h>
#include <string.h>

#include "store_backend.h"

/* Snapshots looked at per restore before giving up (folding from origin). */
#define MAX_CANDIDATES 8

typedef struct select_ctx {
    es_repo *repo;
    es_snapshot_store *store;
    const es_aggregate_type *type;
    const char *stream_id;
    es__repo_start *start;
    int found;
} select_ctx;

static void skip(select_ctx *c, const es_snapshot *snap, int code,
                 const char *why)
{
    es__repo_warn(c->repo, code, "%s/%s: snapshot at version %lld in %s "
                  "skipped: %s", c->type->name, c->stream_id,
                  (long long)snap->version, es__snapshot_store_name(c->store),
                  why);
}

/* Brings state (a new reference, stolen) from schema `from` to the type's
 * current schema with the repository's state upcasters. */
static int upcast_state(select_ctx *c, json_t **state, int32_t from,
                        char *why, size_t whysize)
{
    es_upcasters *u = es_repo_state_upcasters(c->repo);
    es_event *ev = NULL;
    es_error err;
    int rc;

    if (from > c->type->state_schema || !es_upcasters_match(u, c->type->name, from)) {
        snprintf(why, whysize, "its state schema is %d, %s is at schema %d%s",
                 (int)from, c->type->name, (int)c->type->state_schema,
                 from > c->type->state_schema ? " (taken by a newer program?)"
                                              : " and no state upcaster applies");
        return ES_EINVAL;
    }
    if (!json_is_object(*state)) {
        snprintf(why, whysize, "its state (schema %d) is not a JSON object, "
                 "so it cannot be upcast", (int)from);
        return ES_EINVAL;
    }
    if ((rc = es_event_new(&ev, c->type->name, *state)) != 0) {
        snprintf(why, whysize, "out of memory");
        return rc;
    }
    ev->aggregate_type = NULL;
    ev->schema = from;
    if ((rc = es_upcasters_apply(u, ev, &err)) != 0) {
        snprintf(why, whysize, "upcasting its state from schema %d failed: %s",
                 (int)from, err.text);
        es_event_free(ev);
        return rc;
    }
    if (ev->schema != c->type->state_schema || strcmp(ev->type, c->type->name) != 0) {
        snprintf(why, whysize, "its state upcasts from schema %d to %s/%d, "
                 "not to %s/%d", (int)from, ev->type, (int)ev->schema,
                 c->type->name, (int)c->type->state_schema);
        es_event_free(ev);
        return ES_EINVAL;
    }
    json_decref(*state);
    *state = json_incref(ev->payload);
    es_event_free(ev);
    return 0;
}

static int try_one(const es_snapshot *snap, void *user_data)
{
    select_ctx *c = user_data;
    es_aggregate *agg = NULL;
    json_t *state = NULL;
    json_error_t jerr;
    es_error err;
    char why[600];
    int rc;

    if ((rc = es_snapshot_verify(snap, &err)) != 0) {
        skip(c, snap, rc, err.text);
        return 0;
    }
    if (strcmp(snap->aggregate_type, c->type->name) != 0 ||
        strcmp(snap->stream_id, c->stream_id) != 0) {
        snprintf(why, sizeof why, "it is a snapshot of %s/%s",
                 snap->aggregate_type, snap->stream_id);
        skip(c, snap, ES_ECORRUPT, why);
        return 0;
    }
    if ((state = json_loads(snap->state, JSON_DECODE_ANY, &jerr)) == NULL) {
        snprintf(why, sizeof why, "its state is not JSON: %s (line %d)",
                 jerr.text, jerr.line);
        skip(c, snap, ES_ECORRUPT, why);
        return 0;
    }
    if (snap->state_schema != c->type->state_schema &&
        (rc = upcast_state(c, &state, snap->state_schema, why, sizeof why)) != 0) {
        skip(c, snap, rc, why);
        goto next;
    }
    if ((rc = es_aggregate_new(&agg, c->type, c->stream_id)) != 0) {
        skip(c, snap, rc, "out of memory");
        goto next;
    }
    if ((rc = c->type->decode(es_aggregate_state_mut(agg), state)) != 0) {
        snprintf(why, sizeof why, "%s's decode refused its state (%s)",
                 c->type->name, es_strerror(rc < 0 ? rc : ES_EINVAL));
        skip(c, snap, ES_ECORRUPT, why);
        goto next;
    }
    es_aggregate_set_origin(agg, snap->version, snap->time_us, snap->position);
    c->start->agg = agg;
    c->start->version = snap->version;
    c->start->position = snap->position;
    c->start->horizon_us = snap->horizon_us;
    snprintf(c->start->event_id, sizeof c->start->event_id, "%s", snap->event_id);
    snprintf(c->start->what, sizeof c->start->what,
             "snapshot at version %lld in %s", (long long)snap->version,
             es__snapshot_store_name(c->store));
    c->found = 1;
    json_decref(state);
    return 1;
next:
    es_aggregate_free(agg);
    json_decref(state);
    return 0;
}

int es__snapshot_select(es_repo *repo, es_snapshot_store *store,
                        const es_aggregate_type *type, const char *stream_id,
                        es_range range, int64_t max_version,
                        es__repo_start *start)
{
    int64_t max_horizon = INT64_MAX;
    select_ctx c;
    int rc;

    if (range.kind == ES_RANGE_VERSION && range.version < max_version)
        max_version = range.version;
    if (range.kind == ES_RANGE_TIME)
        max_horizon = range.time_us;
    if (max_version < 1 || store == NULL || store->self == NULL)
        return 0;
    memset(&c, 0, sizeof c);
    c.repo = repo;
    c.store = store;
    c.type = type;
    c.stream_id = stream_id;
    c.start = start;
    es__clear(&store->h);
    rc = store->backend->list(store, store->self, type->name, stream_id,
                              max_version, max_horizon, MAX_CANDIDATES, try_one,
                              &c);
    if (rc != 0 && rc != ES_EUSER)
        es__repo_warn(repo, rc, "%s/%s: snapshots not used: %s", type->name,
                      stream_id, es_errmsg(store));
    return c.found;
}

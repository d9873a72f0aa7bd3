/*
 * snapshots/policy.c - when a repository takes a snapshot, and taking it
 * without ever failing the load or execute that asked for it.
 */
#include <string.h>

#include "store_backend.h"

int es_snapshot_policy_due(const es_snapshot_policy *policy,
                           int64_t base_version, int64_t version,
                           int64_t folded)
{
    if (policy == NULL || version < 1 || version <= base_version)
        return 0;
    if (base_version < 0)
        base_version = 0;
    /* Reaching or passing a multiple of `every` since the newest snapshot:
     * a commit of many events that jumps over the multiple still counts. */
    if (policy->every > 0 && version / policy->every > base_version / policy->every)
        return 1;
    if (policy->folded_over > 0 && folded > policy->folded_over)
        return 1;
    return 0;
}

int es__snapshot_take(es_repo *repo, es_snapshot_store *store,
                      const es_aggregate *agg, const es__fold_info *info,
                      es_snapshot **out)
{
    const es_aggregate_type *type = es_aggregate_type_of(agg);
    es_snapshot *snap = NULL;
    es_error err;
    int rc;

    if (out)
        *out = NULL;
    if ((rc = es_snapshot_make(&snap, agg, info->last_event_id,
                               info->horizon_us, &err)) != 0)
        return es__fail(es__repo_handle(repo), rc, "%s/%s: no snapshot: %s",
                        type->name, es_aggregate_stream_id(agg), err.text);
    if ((rc = es_snapshot_save(store, snap)) != 0) {
        es__fail(es__repo_handle(repo), rc, "%s/%s: saving the snapshot at "
                 "version %lld failed: %s", type->name,
                 es_aggregate_stream_id(agg), (long long)snap->version,
                 es_errmsg(store));
        es_snapshot_free(snap);
        return rc;
    }
    if (out)
        *out = snap;
    else
        es_snapshot_free(snap);
    return 0;
}

int64_t es__snapshot_policy_run(es_repo *repo, es_snapshot_store *store,
                                const es_snapshot_policy *policy,
                                const es_aggregate *agg,
                                const es__fold_info *info)
{
    int64_t version = es_aggregate_version(agg);
    int64_t folded = info->appended ? 0 : es_aggregate_folded(agg);
    es__handle *h = es__repo_handle(repo);
    char saved[ES__ERRMSG_MAX];
    int rc;

    if (!es_snapshot_policy_due(policy, info->base_version, version, folded))
        return info->base_version;
    /* The load or execute succeeded: its message must stay empty. */
    memcpy(saved, h->errmsg, sizeof saved);
    rc = es__snapshot_take(repo, store, agg, info, NULL);
    if (rc != 0)
        es__repo_warn(repo, rc, "%s", h->errmsg);
    memcpy(h->errmsg, saved, sizeof saved);
    return rc == 0 ? version : info->base_version;
}

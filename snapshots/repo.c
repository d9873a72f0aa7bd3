/*
 * snapshots/repo.c - snapshots in a repository: attaching a store and a
 * policy to an aggregate type, and taking a snapshot on demand.
 *
 * The repository (core) knows nothing of stores: it calls the hooks of
 * core/repo_hooks.h, which this file implements with snapshots/select.c
 * (restore) and snapshots/policy.c (after a load or an append).
 */
#include <string.h>

#include "store_backend.h"

typedef struct snap_ctx {
    es_snapshot_store *store; /* borrowed */
    es_snapshot_policy policy;
} snap_ctx;

static int restore_hook(void *ctx, es_repo *repo, const es_aggregate_type *type,
                        const char *stream_id, es_range range,
                        int64_t max_version, es__repo_start *start)
{
    snap_ctx *c = ctx;
    return es__snapshot_select(repo, c->store, type, stream_id, range,
                               max_version, start);
}

static int64_t loaded_hook(void *ctx, es_repo *repo, const es_aggregate *agg,
                           const es__fold_info *info)
{
    snap_ctx *c = ctx;
    return es__snapshot_policy_run(repo, c->store, &c->policy, agg, info);
}

static void free_hook(void *ctx)
{
    es__free(ctx);
}

static const es__repo_hooks snapshot_hooks = {
    restore_hook, loaded_hook, free_hook
};

int es_repo_add_snapshots(es_repo *repo, const es_aggregate_type *type,
                          es_snapshot_store *store,
                          const es_snapshot_policy *policy)
{
    es__handle *h;
    snap_ctx *c;
    int rc;

    if (repo == NULL)
        return ES_EINVAL;
    es__repo_begin(repo);
    h = es__repo_handle(repo);
    if (type == NULL || type->name == NULL)
        return es__fail(h, ES_EINVAL, "adding snapshots: no aggregate type");
    if (store == NULL)
        return es__repo_set_hooks(repo, type->name, NULL, NULL);
    if (type->encode == NULL || type->decode == NULL || type->state_schema < 1)
        return es__fail(h, ES_EINVAL, "adding snapshots to %s: the type needs "
                        "encode, decode and a state_schema >= 1", type->name);
    if (policy && (policy->version != ES_SNAPSHOT_POLICY_VERSION ||
                   policy->every < 0 || policy->folded_over < 0))
        return es__fail(h, ES_EINVAL, "adding snapshots to %s: bad policy "
                        "(version %u, every %lld, folded_over %lld)", type->name,
                        policy->version, (long long)policy->every,
                        (long long)policy->folded_over);
    if ((c = es__calloc(1, sizeof *c)) == NULL)
        return es__fail(h, ES_ENOMEM, "out of memory");
    c->store = store;
    if (policy) {
        c->policy = *policy;
    } else {
        es_snapshot_policy none = ES_SNAPSHOT_POLICY_INIT;
        c->policy = none;
    }
    if ((rc = es__repo_set_hooks(repo, type->name, &snapshot_hooks, c)) != 0)
        return es__fail(h, rc, "out of memory");
    return 0;
}

int es_repo_snapshot(es_repo *repo, es_snapshot **out,
                     const es_aggregate_type *type, const char *stream_id)
{
    es_aggregate *agg = NULL;
    es__fold_info info;
    snap_ctx *c;
    es__handle *h;
    int rc;

    if (out)
        *out = NULL;
    if (repo == NULL)
        return ES_EINVAL;
    es__repo_begin(repo);
    h = es__repo_handle(repo);
    if (type == NULL || type->name == NULL || stream_id == NULL)
        return es__fail(h, ES_EINVAL, "snapshot: no aggregate type or stream id");
    if ((c = es__repo_hooks_ctx(repo, type->name, &snapshot_hooks)) == NULL)
        return es__fail(h, ES_EINVAL, "snapshot of %s/%s: no snapshot store is "
                        "attached to %s (es_repo_add_snapshots)", type->name,
                        stream_id, type->name);
    if ((rc = es__repo_load_info(repo, &agg, type, stream_id, ES_RANGE_ALL, 0,
                                 &info)) != 0)
        return rc;
    if (es_aggregate_version(agg) == 0)
        rc = es__fail(h, ES_ENOTFOUND, "snapshot of %s/%s: the stream has no "
                      "events", type->name, stream_id);
    else
        rc = es__snapshot_take(repo, c->store, agg, &info, out);
    es_aggregate_free(agg);
    return rc;
}

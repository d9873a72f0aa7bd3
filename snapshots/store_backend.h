/*
 * snapshots/store_backend.h - the interface a snapshot store implements,
 * and what the files of snapshots/ share.
 *
 * snapshots/store.c checks arguments, completes a snapshot (checksum, time
 * taken) and dispatches to the backend; a backend only stores and lists.
 * Each backend lives in adapters/<name>/snapshot.c and exports one
 * `const es__snapshot_backend`; the URI scheme picks it
 * (adapters/snapshot_open.c).
 *
 * Every function gets the store handle, to set messages on with
 * es__fail(&store->h, ...). `self` is the backend's own state made by open.
 *
 * Internal: not installed, not API.
 */
#ifndef ESFOLD_SNAPSHOTS_STORE_BACKEND_H
#define ESFOLD_SNAPSHOTS_STORE_BACKEND_H

#include "core/internal.h"
#include "core/repo_hooks.h"
#include "esfold/snapshot.h"

struct es_snapshot_store {
    es__handle h;
    char *name; /* the URI without secrets (es__uri_redact); no raw copy is
                   kept */
    const struct es__snapshot_backend *backend;
    void *self;
};

typedef struct es__snapshot_backend {
    const char *name; /* "sqlite", "postgresql" */

    /* Opens the backend at uri (the whole URI, scheme included). On failure
     * sets store's message and returns a code; *self is then ignored. */
    int (*open)(es_snapshot_store *store, void **self, const char *uri);
    void (*close)(void *self);

    /* Stores snap (complete: names checked, checksum and taken_us set),
     * replacing the one of the same type, stream and version. */
    int (*save)(es_snapshot_store *store, void *self, const es_snapshot *snap);

    /*
     * Calls cb with the snapshots of one stream whose version is <=
     * max_version and horizon_us <= max_horizon, newest first, at most
     * limit of them (0: all). The snapshot is borrowed for the call; the
     * fields are what is stored (NULL columns become ""). cb non-zero stops
     * the listing with ES_EUSER.
     */
    int (*list)(es_snapshot_store *store, void *self, const char *aggregate_type,
                const char *stream_id, int64_t max_version, int64_t max_horizon,
                size_t limit, es_snapshot_cb cb, void *user_data);

    /* See es_snapshot_prune (arguments checked; type/stream may be NULL). */
    int (*prune)(es_snapshot_store *store, void *self, int64_t *removed,
                 const char *aggregate_type, const char *stream_id,
                 int64_t keep);
} es__snapshot_backend;

/* Opens a store on an explicit backend (adapters/snapshot_open.c picks
 * it). *out is set whenever a handle could be made. */
int es__snapshot_store_open_backend(es_snapshot_store **out,
                                    const es__snapshot_backend *backend,
                                    const char *uri);

/* The store's name for messages: its URI without a password. */
const char *es__snapshot_store_name(const es_snapshot_store *store);

/* A heap copy of snap in one block (es_snapshot_free), or NULL. */
es_snapshot *es__snapshot_dup(const es_snapshot *snap);

/* ---- Used by snapshots/repo.c ------------------------------------------- */

/* The restore hook: the newest usable snapshot of the stream in store (see
 * core/repo_hooks.h). */
int es__snapshot_select(es_repo *repo, es_snapshot_store *store,
                        const es_aggregate_type *type, const char *stream_id,
                        es_range range, int64_t max_version,
                        es__repo_start *start);

/* The loaded hook: takes a snapshot when policy says so; returns the newest
 * snapshot's version afterwards. */
int64_t es__snapshot_policy_run(es_repo *repo, es_snapshot_store *store,
                                const es_snapshot_policy *policy,
                                const es_aggregate *agg,
                                const es__fold_info *info);

/* Makes and saves a snapshot of agg; on failure sets repo's message. */
int es__snapshot_take(es_repo *repo, es_snapshot_store *store,
                      const es_aggregate *agg, const es__fold_info *info,
                      es_snapshot **out);

#endif

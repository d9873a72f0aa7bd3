/*
 * core/repo_hooks.h - how a source of starting states plugs into the
 * repository.
 *
 * Loading from a snapshot is the repository's behaviour (es_repo_load and
 * es_repo_execute must use it), but core must not depend on snapshots/. So
 * core defines what it needs from any source of "the state of this stream
 * at some version", and snapshots/repo.c implements it with a store, a
 * policy and the selection of snapshots. Core itself checks what it can
 * check without knowing where the state came from: that the log still holds
 * the event the state was folded to (by id), and that the tail folds; on any
 * failure it reports a warning and tries an older starting point, then
 * origin.
 *
 * Internal: not installed, not API.
 */
#ifndef ESFOLD_CORE_REPO_HOOKS_H
#define ESFOLD_CORE_REPO_HOOKS_H

#include "esfold/repo.h"
#include "internal.h"

/* A starting point a source restored. */
typedef struct es__repo_start {
    es_aggregate *agg;        /* state decoded, origin set; the repository
                                 owns it once restore returns 1 */
    int64_t version;          /* es_aggregate_version(agg), >= 1 */
    es_position position;     /* of the event at version */
    char event_id[ES_NAME_MAX + 1]; /* id of the event at version */
    int64_t horizon_us;       /* latest occurred-at of events 1..version */
    char what[160];           /* "snapshot at version 7 in sqlite:/x.db",
                                 for messages */
} es__repo_start;

/* What a fold ended with, besides the aggregate. */
typedef struct es__fold_info {
    char last_event_id[ES_NAME_MAX + 1]; /* "" at version 0 */
    int64_t horizon_us;       /* INT64_MIN at version 0 */
    int64_t base_version;     /* the starting point's version (0: origin) */
    int64_t appended;         /* > 0: events execute appended and folded
                                 after the load; 0: a load */
} es__fold_info;

typedef struct es__repo_hooks {
    /*
     * Restores type's stream at its newest usable starting point within
     * range and at or below max_version: fills *start and returns 1, or
     * returns 0 when there is none. Never fails: what it skips it reports
     * with es__repo_warn.
     */
    int (*restore)(void *ctx, es_repo *repo, const es_aggregate_type *type,
                   const char *stream_id, es_range range, int64_t max_version,
                   es__repo_start *start);
    /*
     * Called after a load to the end (info->appended == 0) and after an
     * execute appended events (folded into agg). May save a snapshot.
     * Returns the version of the newest snapshot of the stream afterwards
     * (info->base_version when it saved none). Never fails: warnings only.
     */
    int64_t (*loaded)(void *ctx, es_repo *repo, const es_aggregate *agg,
                      const es__fold_info *info);
    /* Frees ctx when the hooks are replaced or the repository freed. */
    void (*free)(void *ctx);
} es__repo_hooks;

/* Attaches hooks (static) with ctx (owned from now on, also on failure) to
 * aggregate type type_name; hooks NULL detaches. Replaces earlier ones.
 * 0 or ES_ENOMEM. */
int es__repo_set_hooks(es_repo *repo, const char *type_name,
                       const es__repo_hooks *hooks, void *ctx);

/* The ctx attached to type_name when the attached hooks are `hooks`, else
 * NULL. */
void *es__repo_hooks_ctx(es_repo *repo, const char *type_name,
                         const es__repo_hooks *hooks);

/* Starts a public call: clears the message and the warnings. */
void es__repo_begin(es_repo *repo);

/* The repository's handle, to set its message. */
es__handle *es__repo_handle(es_repo *repo);

/* Adds a warning (one line) and calls the warning callback. */
void es__repo_warn(es_repo *repo, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/*
 * es_repo_load without es__repo_begin, choosing whether the hooks' loaded()
 * runs (the policy), and telling what the fold ended with (info may be
 * NULL).
 */
int es__repo_load_info(es_repo *repo, es_aggregate **out,
                       const es_aggregate_type *type, const char *stream_id,
                       es_range range, int run_policy, es__fold_info *info);

#endif

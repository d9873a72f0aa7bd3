/*
 * core/repo.c - the repository: fold streams (from origin, or from a
 * starting point a source such as the snapshots module restores), execute
 * commands with optimistic concurrency and bounded retries.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "execute.h"
#include "repo_hooks.h"
#include "esfold/repo.h"
#include "esfold/time.h"

/* Starting points tried before folding from origin. */
#define MAX_START_ATTEMPTS 3
/* Warnings kept per call (the callback sees them all). */
#define MAX_WARNINGS 32

typedef struct hook_entry {
    char *type_name;
    const es__repo_hooks *hooks;
    void *ctx;
} hook_entry;

struct es_repo {
    es__handle h;
    es_log *log;
    es_upcasters *upcasters;
    es_upcasters *state_upcasters;
    es_repo_options opts;
    hook_entry *hooks;
    size_t nhooks, caphooks;
    es_warning_fn warn_fn;
    void *warn_ud;
    es__buf warnings;
    int nwarnings;
};

int es_repo_new(es_repo **out, es_log *log, const es_repo_options *opts)
{
    es_repo *repo;
    es_repo_options defaults = ES_REPO_OPTIONS_INIT;
    if (out == NULL)
        return ES_EINVAL;
    *out = NULL;
    if (log == NULL)
        return ES_EINVAL;
    if (opts && (opts->version != ES_REPO_OPTIONS_VERSION || opts->max_attempts < 1))
        return ES_EINVAL;
    repo = es__calloc(1, sizeof *repo);
    if (repo == NULL)
        return ES_ENOMEM;
    es__handle_init(&repo->h);
    repo->log = log;
    repo->opts = opts ? *opts : defaults;
    if (es_upcasters_new(&repo->upcasters) != 0 ||
        es_upcasters_new(&repo->state_upcasters) != 0) {
        es_upcasters_free(repo->upcasters);
        es__free(repo);
        return ES_ENOMEM;
    }
    *out = repo;
    return 0;
}

void es_repo_free(es_repo *repo)
{
    if (repo == NULL)
        return;
    for (size_t i = 0; i < repo->nhooks; i++) {
        if (repo->hooks[i].hooks->free)
            repo->hooks[i].hooks->free(repo->hooks[i].ctx);
        es__free(repo->hooks[i].type_name);
    }
    es__free(repo->hooks);
    es__buf_free(&repo->warnings);
    es_upcasters_free(repo->upcasters);
    es_upcasters_free(repo->state_upcasters);
    es__free(repo);
}

int es__repo_max_attempts(const es_repo *repo)
{
    return repo->opts.max_attempts;
}

es_log *es_repo_log(es_repo *repo)
{
    return repo ? repo->log : NULL;
}

es_upcasters *es_repo_upcasters(es_repo *repo)
{
    return repo ? repo->upcasters : NULL;
}

es_upcasters *es_repo_state_upcasters(es_repo *repo)
{
    return repo ? repo->state_upcasters : NULL;
}

/* ---- Warnings -------------------------------------------------------------- */

void es_repo_set_warning_cb(es_repo *repo, es_warning_fn fn, void *user_data)
{
    if (repo == NULL)
        return;
    repo->warn_fn = fn;
    repo->warn_ud = user_data;
}

const char *es_repo_warnings(const es_repo *repo)
{
    return repo && repo->warnings.data ? repo->warnings.data : "";
}

void es__repo_begin(es_repo *repo)
{
    es__clear(&repo->h);
    repo->warnings.len = 0;
    repo->warnings.oom = 0;
    if (repo->warnings.data)
        repo->warnings.data[0] = '\0';
    repo->nwarnings = 0;
}

es__handle *es__repo_handle(es_repo *repo)
{
    return &repo->h;
}

void es__repo_warn(es_repo *repo, int code, const char *fmt, ...)
{
    char msg[ES__ERRMSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (repo->nwarnings < MAX_WARNINGS) {
        if (repo->warnings.len)
            es__buf_adds(&repo->warnings, "\n");
        es__buf_adds(&repo->warnings, msg);
    }
    repo->nwarnings++;
    if (repo->warn_fn)
        repo->warn_fn(code, msg, repo->warn_ud);
}

/* ---- Hooks ----------------------------------------------------------------- */

static hook_entry *find_hooks(es_repo *repo, const char *type_name)
{
    for (size_t i = 0; i < repo->nhooks; i++)
        if (strcmp(repo->hooks[i].type_name, type_name) == 0)
            return &repo->hooks[i];
    return NULL;
}

void *es__repo_hooks_ctx(es_repo *repo, const char *type_name,
                         const es__repo_hooks *hooks)
{
    hook_entry *e = find_hooks(repo, type_name);
    return e && e->hooks == hooks ? e->ctx : NULL;
}

int es__repo_set_hooks(es_repo *repo, const char *type_name,
                       const es__repo_hooks *hooks, void *ctx)
{
    hook_entry *e = find_hooks(repo, type_name);

    if (e) {
        if (e->hooks->free)
            e->hooks->free(e->ctx);
        if (hooks == NULL) {
            es__free(e->type_name);
            *e = repo->hooks[--repo->nhooks];
            return 0;
        }
        e->hooks = hooks;
        e->ctx = ctx;
        return 0;
    }
    if (hooks == NULL)
        return 0;
    if (repo->nhooks == repo->caphooks) {
        size_t cap = repo->caphooks ? repo->caphooks * 2 : 4;
        if (es__grow((void **)&repo->hooks, repo->nhooks * sizeof *repo->hooks,
                     cap * sizeof *repo->hooks) != 0)
            goto oom;
        repo->caphooks = cap;
    }
    e = &repo->hooks[repo->nhooks];
    if ((e->type_name = es__strdup(type_name)) == NULL)
        goto oom;
    e->hooks = hooks;
    e->ctx = ctx;
    repo->nhooks++;
    return 0;
oom:
    if (hooks->free)
        hooks->free(ctx);
    return ES_ENOMEM;
}

/* ---- Folding ---------------------------------------------------------------- */

enum { ANCHOR_NONE, ANCHOR_WAITING, ANCHOR_SEEN, ANCHOR_MISMATCH };

typedef struct fold_ctx {
    es_repo *repo;
    es_aggregate *agg;
    es_replay_cb cb;
    void *user_data;
    int rc;
    es_error err;
    /* A fold from a starting point first checks that the log still holds
     * the event the state was folded to. */
    int anchor;
    int64_t anchor_version;
    const char *anchor_id;
    int64_t seen_version;           /* what the log had instead */
    char seen_id[ES_NAME_MAX + 1];
    char last_id[ES_NAME_MAX + 1];  /* id of the last event folded */
    int64_t horizon;                /* latest occurred-at folded */
} fold_ctx;

int es__repo_fold_event(es_repo *repo, es_aggregate *agg, const es_event *ev,
                        es_event **upcast, es_error *err)
{
    es_event *up = NULL;
    int rc;

    *upcast = NULL;
    if (es_upcasters_match(repo->upcasters, ev->type, ev->schema)) {
        if ((rc = es_event_copy(&up, ev)) != 0)
            return es__err(err, rc, "out of memory");
        if ((rc = es_upcasters_apply(repo->upcasters, up, err)) != 0) {
            es_event_free(up);
            return rc;
        }
    }
    if ((rc = es_aggregate_apply(agg, up ? up : ev, err)) != 0) {
        es_event_free(up);
        return rc;
    }
    *upcast = up;
    return 0;
}

static int fold_one(const es_event *ev, void *user_data)
{
    fold_ctx *c = user_data;
    es_event *up = NULL;
    const es_event *use = ev;
    int rc;

    if (c->anchor == ANCHOR_WAITING) {
        if (ev->version != c->anchor_version || ev->id == NULL ||
            strcmp(ev->id, c->anchor_id) != 0) {
            c->anchor = ANCHOR_MISMATCH;
            c->seen_version = ev->version;
            snprintf(c->seen_id, sizeof c->seen_id, "%s", ev->id ? ev->id : "");
            return 1;
        }
        c->anchor = ANCHOR_SEEN;
        return 0; /* already in the restored state */
    }
    if ((rc = es__repo_fold_event(c->repo, c->agg, ev, &up, &c->err)) != 0) {
        c->rc = rc;
        return 1;
    }
    if (up)
        use = up;
    snprintf(c->last_id, sizeof c->last_id, "%s", ev->id ? ev->id : "");
    if (ev->occurred_us > c->horizon)
        c->horizon = ev->occurred_us;
    if (c->cb && c->cb(use, es_aggregate_state(c->agg), c->user_data) != 0) {
        c->rc = es__err(&c->err, ES_EUSER, "%s/%s: stopped by the callback at "
                        "version %lld", c->agg ? es_aggregate_type_of(c->agg)->name : "",
                        ev->stream_id, (long long)ev->version);
        es_event_free(up);
        return 1;
    }
    es_event_free(up);
    return 0;
}

/*
 * Folds type's stream into c->agg within range: from origin (start NULL),
 * or from start, whose event the log must deliver first and unchanged.
 * Returns 0, or a code with repo's message set.
 */
static int fold_stream(es_repo *repo, fold_ctx *c, const es_aggregate_type *type,
                       const char *stream_id, es_range range,
                       const es__repo_start *start)
{
    es_read_options ro = ES_READ_OPTIONS_INIT;
    int rc;

    ro.to = range;
    c->horizon = INT64_MIN;
    c->last_id[0] = '\0';
    if (start) {
        ro.from_version = start->version;
        ro.start = start->position;
        c->anchor = ANCHOR_WAITING;
        c->anchor_version = start->version;
        c->anchor_id = start->event_id;
        c->horizon = start->horizon_us;
        snprintf(c->last_id, sizeof c->last_id, "%s", start->event_id);
    }
    rc = es_log_read_stream(repo->log, type->name, stream_id, &ro, fold_one, c);
    if (rc == ES_EUSER && c->anchor == ANCHOR_MISMATCH)
        return es__fail(&repo->h, ES_ECORRUPT,
                        "it does not match the log: it was folded to event %s, "
                        "but the log's event at version %lld is %s (was the "
                        "log restored from an older backup, or rewritten?)",
                        start->event_id, (long long)c->seen_version, c->seen_id);
    if (rc == ES_EUSER && c->rc != 0)
        return es__fail(&repo->h, c->rc, "loading %s/%s: %s", type->name,
                        stream_id, c->err.text);
    if (rc != 0)
        return es__fail(&repo->h, rc, "%s", es_errmsg(repo->log));
    if (start && c->anchor != ANCHOR_SEEN)
        return es__fail(&repo->h, ES_ECORRUPT,
                        "it is ahead of the log: the log has no event at "
                        "version %lld of %s/%s (was the log restored from an "
                        "older backup?)",
                        (long long)start->version, type->name, stream_id);
    return 0;
}

static int load(es_repo *repo, es_aggregate **out, const es_aggregate_type *type,
                const char *stream_id, es_range range, int use_hooks,
                int run_policy, es_replay_cb cb, void *user_data,
                es__fold_info *info)
{
    hook_entry *hooks = NULL;
    int64_t max_version = INT64_MAX;
    fold_ctx c;
    int rc, attempt;

    if (out)
        *out = NULL;
    if (type == NULL || type->name == NULL || stream_id == NULL)
        return es__fail(&repo->h, ES_EINVAL, "load: no aggregate type or stream id");
    if (range.kind == ES_RANGE_VERSION && range.version < max_version)
        max_version = range.version;
    if (use_hooks)
        hooks = find_hooks(repo, type->name);
    memset(info, 0, sizeof *info);

    for (attempt = 0; hooks && attempt < MAX_START_ATTEMPTS && max_version >= 1;
         attempt++) {
        es__repo_start st;
        memset(&st, 0, sizeof st);
        if (hooks->hooks->restore(hooks->ctx, repo, type, stream_id, range,
                                  max_version, &st) != 1)
            break;
        memset(&c, 0, sizeof c);
        c.repo = repo;
        c.agg = st.agg;
        if (st.version < 1 || st.version > max_version)
            rc = es__fail(&repo->h, ES_EINVAL, "its version %lld is out of "
                          "bounds", (long long)st.version);
        else
            rc = fold_stream(repo, &c, type, stream_id, range, &st);
        if (rc == 0) {
            info->base_version = st.version;
            goto loaded;
        }
        es__repo_warn(repo, rc, "%s/%s: %s skipped: %s", type->name, stream_id,
                      st.what[0] ? st.what : "starting point", es_errmsg(repo));
        es__clear(&repo->h);
        es_aggregate_free(c.agg);
        max_version = st.version - 1;
    }

    memset(&c, 0, sizeof c);
    c.repo = repo;
    c.cb = cb;
    c.user_data = user_data;
    if ((rc = es_aggregate_new(&c.agg, type, stream_id)) != 0)
        return es__fail(&repo->h, rc, "loading %s/%s: %s", type->name,
                        stream_id, es_strerror(rc));
    if ((rc = fold_stream(repo, &c, type, stream_id, range, NULL)) != 0) {
        es_aggregate_free(c.agg);
        return rc;
    }
loaded:
    snprintf(info->last_event_id, sizeof info->last_event_id, "%s", c.last_id);
    info->horizon_us = c.horizon;
    if (run_policy && hooks && range.kind == ES_RANGE_END && hooks->hooks->loaded)
        info->base_version = hooks->hooks->loaded(hooks->ctx, repo, c.agg, info);
    if (out)
        *out = c.agg;
    else
        es_aggregate_free(c.agg);
    return 0;
}

int es__repo_load_info(es_repo *repo, es_aggregate **out,
                       const es_aggregate_type *type, const char *stream_id,
                       es_range range, int run_policy, es__fold_info *info)
{
    es__fold_info local;
    return load(repo, out, type, stream_id, range, 1, run_policy, NULL, NULL,
                info ? info : &local);
}

int es_repo_replay(es_repo *repo, es_aggregate **out,
                   const es_aggregate_type *type, const char *stream_id,
                   es_range range, es_replay_cb cb, void *user_data)
{
    es__fold_info info;
    if (out)
        *out = NULL;
    if (repo == NULL)
        return ES_EINVAL;
    es__repo_begin(repo);
    return load(repo, out, type, stream_id, range, 0, 0, cb, user_data, &info);
}

int es_repo_load(es_repo *repo, es_aggregate **out,
                 const es_aggregate_type *type, const char *stream_id,
                 es_range range)
{
    es__fold_info info;
    if (repo == NULL)
        return ES_EINVAL;
    es__repo_begin(repo);
    if (out == NULL)
        return es__fail(&repo->h, ES_EINVAL, "load: no output");
    return load(repo, out, type, stream_id, range, 1, 1, NULL, NULL, &info);
}

/*
 * After an append: folds the events execute just appended into agg (the
 * state the log now has, as apply is deterministic) and lets the hooks
 * decide on a snapshot. Never fails: a problem is a warning.
 */
static void after_append(es_repo *repo, hook_entry *hooks, es_aggregate *agg,
                         es__fold_info *info, const es_aggregate_type *type,
                         const char *stream_id, const es_append_result *ar,
                         const es_emitter *em)
{
    fold_ctx c;

    memset(&c, 0, sizeof c);
    c.repo = repo;
    c.agg = agg;
    c.horizon = info->horizon_us;
    for (size_t i = 0; i < em->n; i++) {
        es_event ev;
        es__emitter_appended(em, i, type->name, stream_id, ar, &ev);
        if (fold_one(&ev, &c) != 0) {
            es__repo_warn(repo, c.rc, "%s/%s: no snapshot after the append: "
                          "folding the appended events failed: %s",
                          type->name, stream_id, c.err.text);
            return;
        }
    }
    snprintf(info->last_event_id, sizeof info->last_event_id, "%s", c.last_id);
    info->horizon_us = c.horizon;
    info->appended = (int64_t)em->n;
    hooks->hooks->loaded(hooks->ctx, repo, agg, info);
}

int es_repo_execute(es_repo *repo, es_execute_result *out,
                    const es_aggregate_type *type, const char *stream_id,
                    es_decide_fn decide, const void *command, void *user_data,
                    const es_execute_options *opts)
{
    es_execute_result local;
    es_execute_options o;
    es_emitter em;
    es_aggregate *agg = NULL;
    hook_entry *hooks;
    int rc = 0, attempt, done_before, max_attempts;

    if (repo == NULL)
        return ES_EINVAL;
    es__repo_begin(repo);
    if (type == NULL || type->name == NULL || stream_id == NULL || decide == NULL)
        return es__fail(&repo->h, ES_EINVAL,
                        "execute: no aggregate type, stream id or decide function");
    if ((rc = es__execute_options(&repo->h, &o, opts)) != 0)
        return rc;
    if (out == NULL)
        out = &local;
    memset(out, 0, sizeof *out);
    memset(&em, 0, sizeof em);
    hooks = find_hooks(repo, type->name);
    /* An If-Match is not retried: a reload cannot bring the stream back. */
    max_attempts = o.expected_version == ES_EXPECT_ANY ? repo->opts.max_attempts : 1;
    if ((rc = es__command_done(&repo->h, repo->log, out, type->name, stream_id,
                               &o, &done_before)) != 0 || done_before)
        return rc;

    for (attempt = 1; attempt <= max_attempts; attempt++) {
        es_append_result ar;
        es__fold_info info;
        int64_t version;

        out->attempts = attempt;
        es_aggregate_free(agg);
        agg = NULL;
        if ((rc = load(repo, &agg, type, stream_id, ES_RANGE_ALL, 1, 1, NULL,
                       NULL, &info)) != 0)
            goto done;
        version = es_aggregate_version(agg);
        out->version = version;
        out->actual_version = version;
        if (o.expected_version != ES_EXPECT_ANY && o.expected_version != version) {
            rc = es__conflict_fail(&repo->h, "executing on", type->name,
                                   stream_id, o.expected_version, version);
            goto done;
        }
        if ((rc = es__emitter_decide(&em, &repo->h, type, stream_id,
                                     decide, es_aggregate_state(agg), version,
                                     command, user_data)) != 0)
            goto done;
        if (em.n == 0)
            goto done; /* nothing to do is a valid answer */
        rc = es__emitter_append(&em, &repo->h, repo->log, &ar, type->name,
                                stream_id, version, &o);
        if (rc == 0) {
            out->version = ar.version;
            out->events = em.n;
            out->last = ar.last;
            out->duplicate = ar.duplicate;
            if (ar.duplicate)
                out->actual_version = ar.actual_version;
            if (hooks && hooks->hooks->loaded && !ar.duplicate &&
                ar.first_version == version + 1)
                after_append(repo, hooks, agg, &info, type, stream_id, &ar, &em);
            goto done;
        }
        /* Anything but a conflict is the answer. ES_EUNKNOWN above all:
         * the commit may count, and deciding again could write it twice. */
        if (rc != ES_ECONFLICT)
            goto done;
        out->actual_version = ar.actual_version;
    }
    if (o.expected_version == ES_EXPECT_ANY)
        rc = es__fail(&repo->h, ES_ECONFLICT, "%s/%s: still conflicting after %d "
                      "attempts: %s", type->name, stream_id, max_attempts,
                      es_errmsg(repo->log));
done:
    es__emitter_free(&em);
    es_aggregate_free(agg);
    return rc;
}

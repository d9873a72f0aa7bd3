/*
 * core/repo.c - the repository: fold streams (from origin, or from a
 * starting point a source such as the snapshots module restores), execute
 * commands with optimistic concurrency and bounded retries.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "emitter.h"
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
    if (es_upcasters_match(c->repo->upcasters, ev->type, ev->schema)) {
        if ((rc = es_event_copy(&up, ev)) != 0) {
            c->rc = es__err(&c->err, rc, "out of memory");
            return 1;
        }
        if ((rc = es_upcasters_apply(c->repo->upcasters, up, &c->err)) != 0) {
            c->rc = rc;
            es_event_free(up);
            return 1;
        }
        use = up;
    }
    if ((rc = es_aggregate_apply(c->agg, use, &c->err)) != 0) {
        c->rc = rc;
        es_event_free(up);
        return 1;
    }
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

int es_emit_new(es_emitter *em, const char *event_type, json_t *payload)
{
    es_event *ev;
    if (em == NULL || event_type == NULL || *event_type == '\0' ||
        !json_is_object(payload)) {
        json_decref(payload);
        return ES_EINVAL;
    }
    if (em->n == em->cap) {
        size_t cap = em->cap ? em->cap * 2 : 4;
        if (es__grow((void **)&em->events, em->n * sizeof *em->events,
                     cap * sizeof *em->events)) {
            json_decref(payload);
            em->oom = 1;
            return ES_ENOMEM;
        }
        em->cap = cap;
    }
    ev = &em->events[em->n];
    memset(ev, 0, sizeof *ev);
    if ((ev->type = es__strdup(event_type)) == NULL) {
        json_decref(payload);
        em->oom = 1;
        return ES_ENOMEM;
    }
    ev->payload = payload;
    ev->schema = 1;
    em->n++;
    return 0;
}

int es_refuse(es_emitter *em, const char *fmt, ...)
{
    char buf[ES__ERRMSG_MAX];
    va_list ap;
    if (em == NULL)
        return ES_EREFUSED;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt ? fmt : "refused", ap);
    va_end(ap);
    es__free(em->refusal);
    em->refusal = es__strdup(buf);
    if (em->refusal == NULL)
        em->oom = 1;
    return ES_EREFUSED;
}

void es__emitter_reset(es_emitter *em)
{
    for (size_t i = 0; i < em->n; i++) {
        es__free((void *)em->events[i].type);
        json_decref(em->events[i].payload);
    }
    em->n = 0;
    es__free(em->refusal);
    em->refusal = NULL;
    em->oom = 0;
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
        es_event ev = em->events[i];
        ev.aggregate_type = type->name;
        ev.stream_id = stream_id;
        ev.version = ar->first_version + (int64_t)i;
        ev.position = i + 1 == em->n ? ar->last : ar->first;
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
    es_emitter em;
    es_aggregate *agg = NULL;
    char (*ids)[ES_UUID_BUFSZ] = NULL;
    hook_entry *hooks;
    int rc = 0, attempt;

    if (repo == NULL)
        return ES_EINVAL;
    es__repo_begin(repo);
    if (type == NULL || type->name == NULL || stream_id == NULL || decide == NULL)
        return es__fail(&repo->h, ES_EINVAL,
                        "execute: no aggregate type, stream id or decide function");
    if (opts && opts->version != ES_EXECUTE_OPTIONS_VERSION)
        return es__fail(&repo->h, ES_EINVAL,
                        "execute: unknown es_execute_options version %u",
                        opts->version);
    if (out == NULL)
        out = &local;
    memset(out, 0, sizeof *out);
    memset(&em, 0, sizeof em);
    hooks = find_hooks(repo, type->name);

    for (attempt = 1; attempt <= repo->opts.max_attempts; attempt++) {
        es_append_result ar;
        es__fold_info info;
        int64_t version, now;

        out->attempts = attempt;
        es_aggregate_free(agg);
        agg = NULL;
        es__emitter_reset(&em);
        if ((rc = load(repo, &agg, type, stream_id, ES_RANGE_ALL, 1, 1, NULL,
                       NULL, &info)) != 0)
            goto done;
        version = es_aggregate_version(agg);
        out->version = version;
        rc = decide(es_aggregate_state(agg), version, command, &em, user_data);
        if (em.oom) {
            rc = es__fail(&repo->h, ES_ENOMEM, "out of memory");
            goto done;
        }
        if (rc == ES_EREFUSED || em.refusal) {
            rc = es__fail(&repo->h, ES_EREFUSED, "%s/%s: command refused: %s",
                          type->name, stream_id,
                          em.refusal ? em.refusal : "no reason given");
            goto done;
        }
        if (rc != 0) {
            rc = es__fail(&repo->h, rc < 0 ? rc : ES_EUSER,
                          "%s/%s: decide failed: %s", type->name, stream_id,
                          es_strerror(rc < 0 ? rc : ES_EUSER));
            goto done;
        }
        if (em.n == 0)
            goto done; /* nothing to do is a valid answer */
        /* Ids and time are given here rather than by the log, so that the
         * state after the append can be folded (and snapshotted) without
         * reading the events back. */
        es__free(ids);
        if ((ids = es__calloc(em.n, sizeof *ids)) == NULL) {
            rc = es__fail(&repo->h, ES_ENOMEM, "out of memory");
            goto done;
        }
        now = es_time_now_us();
        for (size_t i = 0; i < em.n; i++) {
            if ((rc = es_uuid_v7(ids[i])) != 0) {
                rc = es__fail(&repo->h, rc, "%s/%s: no random bytes for event ids",
                              type->name, stream_id);
                goto done;
            }
            em.events[i].id = ids[i];
            em.events[i].occurred_us = now;
            if (opts) {
                em.events[i].correlation_id = opts->correlation_id;
                em.events[i].causation_id = opts->causation_id;
                em.events[i].meta = opts->meta;
            }
        }
        rc = es_log_append(repo->log, &ar, type->name, stream_id,
                           version == 0 ? ES_EXPECT_NO_STREAM : version,
                           em.events, em.n);
        if (rc == 0) {
            out->version = ar.version;
            out->events = em.n;
            out->last = ar.last;
            if (hooks && hooks->hooks->loaded && !ar.duplicate &&
                ar.first_version == version + 1)
                after_append(repo, hooks, agg, &info, type, stream_id, &ar, &em);
        }
        for (size_t i = 0; i < em.n; i++) {
            em.events[i].id = NULL;
            em.events[i].correlation_id = NULL;
            em.events[i].causation_id = NULL;
            em.events[i].meta = NULL;
        }
        if (rc == 0)
            goto done;
        es__fail(&repo->h, rc, "%s", es_errmsg(repo->log));
        if (rc != ES_ECONFLICT)
            goto done;
    }
    rc = es__fail(&repo->h, ES_ECONFLICT, "%s/%s: still conflicting after %d "
                  "attempts: %s", type->name, stream_id, repo->opts.max_attempts,
                  es_errmsg(repo->log));
done:
    es__emitter_reset(&em);
    es__free(em.events);
    es__free(ids);
    es_aggregate_free(agg);
    return rc;
}

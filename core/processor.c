/*
 * core/processor.c - the single-writer fast path (esfold/processor.h):
 * hot aggregates per stream, decide on them, append with the exact
 * expected version, fold what was appended, reload on a conflict.
 *
 * Generic over es_log: it only uses the repository and the log's public
 * calls. The speed on Kafka comes from the log's writer, which confirms a
 * commit from its delivery offsets when its view of the partition is
 * current (adapters/kafka/writer.c), and from never loading a hot stream.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "execute.h"
#include "map.h"
#include "esfold/partition.h"
#include "esfold/processor.h"
#include "esfold/time.h"

typedef struct hot {
    char *stream_id; /* the map's key */
    es_aggregate *agg;
} hot;

struct es_processor {
    es__handle h;
    es_repo *repo;
    const es_aggregate_type *type;
    int32_t *owned; /* NULL: all */
    size_t nowned;
    int max_attempts;
    int32_t count;  /* the type's partitions; 0 until known */
    es__map hot;    /* stream id -> hot */
    es_processor_stats stats;
};

static void hot_free(hot *e)
{
    if (e == NULL)
        return;
    es_aggregate_free(e->agg);
    es__free(e->stream_id);
    es__free(e);
}

static void drop(es_processor *p, const char *sid)
{
    hot *e = es__map_remove(&p->hot, sid);
    if (e == NULL)
        return;
    hot_free(e);
    p->stats.streams--;
}

int es_processor_open(es_processor **out, es_repo *repo,
                      const es_aggregate_type *type,
                      const es_processor_options *opts)
{
    es_processor_options o = ES_PROCESSOR_OPTIONS_INIT;
    es_processor *p;
    if (out == NULL)
        return ES_EINVAL;
    *out = NULL;
    if ((p = es__calloc(1, sizeof *p)) == NULL)
        return ES_ENOMEM;
    es__handle_init(&p->h);
    *out = p;
    if (opts) {
        if (opts->version != ES_PROCESSOR_OPTIONS_VERSION)
            return es__fail(&p->h, ES_EINVAL, "processor: unknown "
                            "es_processor_options version %u", opts->version);
        o = *opts;
    }
    if (repo == NULL || type == NULL || type->name == NULL)
        return es__fail(&p->h, ES_EINVAL,
                        "processor: no repository or aggregate type");
    if ((o.partitions == NULL) != (o.npartitions == 0))
        return es__fail(&p->h, ES_EINVAL, "processor of %s: partitions and "
                        "npartitions disagree (NULL and 0 for all of them)",
                        type->name);
    if (o.max_attempts < 0)
        return es__fail(&p->h, ES_EINVAL, "processor of %s: max_attempts is "
                        "%d (0: the repository's)", type->name, o.max_attempts);
    for (size_t i = 0; i < o.npartitions; i++)
        if (o.partitions[i] < 0)
            return es__fail(&p->h, ES_EINVAL, "processor of %s: partition %d "
                            "is negative", type->name, (int)o.partitions[i]);
    p->repo = repo;
    p->type = type;
    p->max_attempts = o.max_attempts ? o.max_attempts : es__repo_max_attempts(repo);
    if (o.npartitions > 0) {
        if ((p->owned = es__calloc(o.npartitions, sizeof *p->owned)) == NULL)
            return es__fail(&p->h, ES_ENOMEM, "out of memory");
        memcpy(p->owned, o.partitions, o.npartitions * sizeof *o.partitions);
    }
    p->nowned = o.npartitions;
    return 0;
}

int es_processor_new(es_processor **out, es_repo *repo,
                     const es_aggregate_type *type, const int32_t *partitions,
                     size_t n)
{
    es_processor_options o = ES_PROCESSOR_OPTIONS_INIT;
    int rc;
    o.partitions = partitions;
    o.npartitions = n;
    if ((rc = es_processor_open(out, repo, type, &o)) != 0 && out) {
        es_processor_free(*out);
        *out = NULL;
    }
    return rc;
}

void es_processor_free(es_processor *p)
{
    const char *key;
    void *e;
    if (p == NULL)
        return;
    for (size_t i = 0; es__map_next(&p->hot, &i, &key, &e);)
        hot_free(e);
    es__map_free(&p->hot);
    es__free(p->owned);
    es__free(p);
}

static int check_owned(es_processor *p, const char *sid)
{
    int32_t part;
    int rc;
    if (p->owned == NULL)
        return 0;
    if (p->count <= 0) {
        es_log *log = es_repo_log(p->repo);
        if ((rc = es_log_partition_count(log, &p->count, p->type->name)) != 0)
            return es__fail(&p->h, rc, "%s/%s: %s", p->type->name, sid,
                            es_errmsg(log));
    }
    part = es_partition_for(sid, strlen(sid), p->count);
    for (size_t i = 0; i < p->nowned; i++)
        if (p->owned[i] == part)
            return 0;
    return es__fail(&p->h, ES_EINVAL,
                    "%s/%s: partition %d of %d is not owned by this processor",
                    p->type->name, sid, (int)part, (int)p->count);
}

/* The hot aggregate of sid, loaded when absent. */
static int get_hot(es_processor *p, const char *sid, hot **out)
{
    hot *e = es__map_get(&p->hot, sid);
    es_aggregate *agg = NULL;
    int rc;
    if (e) {
        *out = e;
        p->stats.hits++;
        return 0;
    }
    if ((rc = es_repo_load(p->repo, &agg, p->type, sid, ES_RANGE_ALL)) != 0)
        return es__fail(&p->h, rc, "%s", es_errmsg(p->repo));
    p->stats.loads++;
    if ((e = es__map_add_entry(&p->hot, sid, sizeof *e,
                               offsetof(hot, stream_id))) == NULL) {
        es_aggregate_free(agg);
        return es__fail(&p->h, ES_ENOMEM, "out of memory");
    }
    e->agg = agg;
    p->stats.streams++;
    *out = e;
    return 0;
}

/* Folds the appended events into agg as a load would (upcast, apply). */
static int fold_appended(es_processor *p, es_aggregate *agg, const char *sid,
                         const es_append_result *ar, const es_emitter *em)
{
    es_error err;
    for (size_t i = 0; i < em->n; i++) {
        es_event ev, *up = NULL;
        int rc;
        es__emitter_appended(em, i, p->type->name, sid, ar, &ev);
        rc = es__repo_fold_event(p->repo, agg, &ev, &up, &err);
        es_event_free(up);
        if (rc)
            return 1;
    }
    return 0;
}

int es_processor_execute(es_processor *p, es_execute_result *out,
                         const char *stream_id, es_decide_fn decide,
                         const void *command, void *user_data,
                         const es_execute_options *opts)
{
    es_execute_result local;
    es_execute_options o;
    es_emitter em;
    es_log *log;
    const char *tname;
    int rc = 0, attempt, max_attempts, done_before;

    if (p == NULL)
        return ES_EINVAL;
    es__clear(&p->h);
    if (p->repo == NULL)
        return es__fail(&p->h, ES_EINVAL, "execute: the processor did not open");
    if (stream_id == NULL || *stream_id == '\0' || decide == NULL)
        return es__fail(&p->h, ES_EINVAL,
                        "execute: no stream id or decide function");
    if ((rc = es__execute_options(&p->h, &o, opts)) != 0)
        return rc;
    if ((rc = check_owned(p, stream_id)) != 0)
        return rc;
    if (out == NULL)
        out = &local;
    memset(out, 0, sizeof *out);
    memset(&em, 0, sizeof em);
    log = es_repo_log(p->repo);
    tname = p->type->name;
    max_attempts = o.expected_version == ES_EXPECT_ANY ? p->max_attempts : 1;
    if ((rc = es__command_done(&p->h, log, out, tname, stream_id, &o,
                               &done_before)) != 0)
        return rc;
    if (done_before) {
        hot *e = es__map_get(&p->hot, stream_id);
        if (e && es_aggregate_version(e->agg) < out->version)
            drop(p, stream_id); /* written by someone else: reload */
        return 0;
    }

    for (attempt = 1; attempt <= max_attempts; attempt++) {
        es_append_result ar;
        hot *e = NULL;
        int64_t version;
        uint64_t loads = p->stats.loads;

        out->attempts = attempt;
        if ((rc = get_hot(p, stream_id, &e)) != 0)
            goto done;
        version = es_aggregate_version(e->agg);
        out->version = version;
        out->actual_version = version;
        if (o.expected_version != ES_EXPECT_ANY && o.expected_version != version) {
            /* The hot version may be stale: only the log can say. */
            if (p->stats.loads == loads) { /* a hit: reload once */
                drop(p, stream_id);
                if ((rc = get_hot(p, stream_id, &e)) != 0)
                    goto done;
                version = es_aggregate_version(e->agg);
                out->version = out->actual_version = version;
            }
            if (o.expected_version != version) {
                rc = es__conflict_fail(&p->h, "executing on", tname, stream_id,
                                       o.expected_version, version);
                goto done;
            }
        }
        if ((rc = es__emitter_decide(&em, &p->h, p->type, stream_id, decide,
                                     es_aggregate_state(e->agg), version,
                                     command, user_data)) != 0)
            goto done;
        if (em.n == 0)
            goto done;
        rc = es__emitter_append(&em, &p->h, log, &ar, tname, stream_id, version,
                                &o);
        if (rc == 0) {
            out->version = ar.version;
            out->events = em.n;
            out->last = ar.last;
            out->duplicate = ar.duplicate;
            if (ar.duplicate)
                out->actual_version = ar.actual_version;
            /* The hot state follows the log without reading it back;
             * anything unexpected drops it (the next command reloads). */
            if (ar.duplicate || ar.first_version != version + 1 ||
                fold_appended(p, e->agg, stream_id, &ar, &em) != 0)
                drop(p, stream_id);
        } else {
            /* A conflict: someone else wrote, the hot copy is stale. Any
             * other failure may have written or not: reload either way. */
            drop(p, stream_id);
            if (rc == ES_ECONFLICT) {
                p->stats.conflicts++;
                out->actual_version = ar.actual_version;
            }
        }
        /* Never decided again after ES_EUNKNOWN: the commit may count. */
        if (rc != ES_ECONFLICT)
            goto done;
    }
    if (o.expected_version == ES_EXPECT_ANY)
        rc = es__fail(&p->h, ES_ECONFLICT, "%s/%s: still conflicting after %d "
                      "attempts: %s", tname, stream_id, max_attempts,
                      es_errmsg(log));
done:
    es__emitter_free(&em);
    return rc;
}

const es_aggregate *es_processor_peek(es_processor *p, const char *stream_id)
{
    hot *e;
    if (p == NULL || stream_id == NULL)
        return NULL;
    e = es__map_get(&p->hot, stream_id);
    return e ? e->agg : NULL;
}

void es_processor_evict(es_processor *p, const char *stream_id)
{
    if (p && stream_id)
        drop(p, stream_id);
}

void es_processor_stats_get(const es_processor *p, es_processor_stats *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof *out);
    if (p)
        *out = p->stats;
}

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
#include <stdio.h>
#include <string.h>

#include "execute.h"
#include "esfold/partition.h"
#include "esfold/processor.h"
#include "esfold/time.h"

typedef struct hot {
    char *stream_id;
    es_aggregate *agg;
    struct hot *next;
} hot;

struct es_processor {
    es__handle h;
    es_repo *repo;
    const es_aggregate_type *type;
    int32_t *owned; /* NULL: all */
    size_t nowned;
    int32_t count;  /* the type's partitions; 0 until known */
    hot **buckets;
    size_t nbuckets;
    es_processor_stats stats;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static hot **slot_of(es_processor *p, const char *sid)
{
    hot **hp = &p->buckets[hash(sid) & (p->nbuckets - 1)];
    while (*hp && strcmp((*hp)->stream_id, sid) != 0)
        hp = &(*hp)->next;
    return hp;
}

static void drop(es_processor *p, const char *sid)
{
    hot **hp = slot_of(p, sid), *e = *hp;
    if (e == NULL)
        return;
    *hp = e->next;
    es_aggregate_free(e->agg);
    es__free(e->stream_id);
    es__free(e);
    p->stats.streams--;
}

static int grow(es_processor *p)
{
    size_t n = p->nbuckets * 2;
    hot **b = es__calloc(n, sizeof *b);
    if (b == NULL)
        return ES_ENOMEM;
    for (size_t i = 0; i < p->nbuckets; i++) {
        hot *e = p->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            e->next = b[hash(e->stream_id) & (n - 1)];
            b[hash(e->stream_id) & (n - 1)] = e;
        }
    }
    es__free(p->buckets);
    p->buckets = b;
    p->nbuckets = n;
    return 0;
}

int es_processor_new(es_processor **out, es_repo *repo,
                     const es_aggregate_type *type, const int32_t *partitions,
                     size_t n)
{
    es_processor *p;
    if (out == NULL)
        return ES_EINVAL;
    *out = NULL;
    if (repo == NULL || type == NULL || type->name == NULL ||
        (partitions == NULL && n > 0) || (partitions != NULL && n == 0))
        return ES_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (partitions[i] < 0)
            return ES_EINVAL;
    if ((p = es__calloc(1, sizeof *p)) == NULL)
        return ES_ENOMEM;
    es__handle_init(&p->h);
    p->repo = repo;
    p->type = type;
    p->nbuckets = 256;
    if ((p->buckets = es__calloc(p->nbuckets, sizeof *p->buckets)) == NULL ||
        (n > 0 && (p->owned = es__calloc(n, sizeof *p->owned)) == NULL)) {
        es_processor_free(p);
        return ES_ENOMEM;
    }
    if (n > 0)
        memcpy(p->owned, partitions, n * sizeof *partitions);
    p->nowned = n;
    *out = p;
    return 0;
}

void es_processor_free(es_processor *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; p->buckets && i < p->nbuckets; i++) {
        hot *e = p->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            es_aggregate_free(e->agg);
            es__free(e->stream_id);
            es__free(e);
        }
    }
    es__free(p->buckets);
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
    hot **hp = slot_of(p, sid), *e;
    es_aggregate *agg = NULL;
    int rc;
    if (*hp) {
        *out = *hp;
        p->stats.hits++;
        return 0;
    }
    if ((rc = es_repo_load(p->repo, &agg, p->type, sid, ES_RANGE_ALL)) != 0)
        return es__fail(&p->h, rc, "%s", es_errmsg(p->repo));
    p->stats.loads++;
    if ((e = es__calloc(1, sizeof *e)) == NULL ||
        (e->stream_id = es__strdup(sid)) == NULL) {
        es__free(e);
        es_aggregate_free(agg);
        return es__fail(&p->h, ES_ENOMEM, "out of memory");
    }
    e->agg = agg;
    if (p->stats.streams + 1 > p->nbuckets && grow(p) == 0)
        hp = slot_of(p, sid);
    e->next = *hp;
    *hp = e;
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
    es_repo_options ropts = ES_REPO_OPTIONS_INIT;
    es_execute_result local;
    es_emitter em;
    es_log *log;
    const char *tname;
    int rc = 0, attempt, max_attempts;

    if (p == NULL)
        return ES_EINVAL;
    es__clear(&p->h);
    if (stream_id == NULL || *stream_id == '\0' || decide == NULL)
        return es__fail(&p->h, ES_EINVAL,
                        "execute: no stream id or decide function");
    if (opts && opts->version != ES_EXECUTE_OPTIONS_VERSION)
        return es__fail(&p->h, ES_EINVAL,
                        "execute: unknown es_execute_options version %u",
                        opts->version);
    if ((rc = check_owned(p, stream_id)) != 0)
        return rc;
    if (out == NULL)
        out = &local;
    memset(out, 0, sizeof *out);
    memset(&em, 0, sizeof em);
    log = es_repo_log(p->repo);
    tname = p->type->name;
    max_attempts = ropts.max_attempts; /* the repository's default */

    for (attempt = 1; attempt <= max_attempts; attempt++) {
        es_append_result ar;
        hot *e = NULL;
        int64_t version;

        out->attempts = attempt;
        if ((rc = get_hot(p, stream_id, &e)) != 0)
            goto done;
        version = es_aggregate_version(e->agg);
        out->version = version;
        if ((rc = es__emitter_decide(&em, &p->h, tname, stream_id, decide,
                                     es_aggregate_state(e->agg), version,
                                     command, user_data)) != 0)
            goto done;
        if (em.n == 0)
            goto done;
        rc = es__emitter_append(&em, &p->h, log, &ar, tname, stream_id, version,
                                opts);
        if (rc == 0) {
            out->version = ar.version;
            out->events = em.n;
            out->last = ar.last;
            /* The hot state follows the log without reading it back;
             * anything unexpected drops it (the next command reloads). */
            if (ar.duplicate || ar.first_version != version + 1 ||
                fold_appended(p, e->agg, stream_id, &ar, &em) != 0)
                drop(p, stream_id);
        } else {
            /* A conflict: someone else wrote, the hot copy is stale. Any
             * other failure may have written or not: reload either way. */
            drop(p, stream_id);
            if (rc == ES_ECONFLICT)
                p->stats.conflicts++;
        }
        /* Never decided again after ES_EUNKNOWN: the commit may count. */
        if (rc != ES_ECONFLICT)
            goto done;
    }
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
    e = *slot_of(p, stream_id);
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

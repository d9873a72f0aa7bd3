/*
 * adapters/kafka/writer.c - appends: the writer's view of a partition, expected versions, idempotent retries, and the confirmation that a commit won (klog.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "esfold/partition.h"
#include "klog.h"

#define ANY_ATTEMPTS 5 /* tries of an ES_EXPECT_ANY append that keeps losing */

part_cache *es__kcache_get(part_cache **list, topic_info *ti, int32_t partition)
{
    part_cache *pc;
    for (pc = *list; pc; pc = pc->next)
        if (pc->ti == ti && pc->partition == partition)
            return pc;
    return NULL;
}

int es__kcache_new(es_log *log, part_cache **list, topic_info *ti,
                     int32_t partition, unsigned flags, part_cache **out)
{
    part_cache *pc = es__calloc(1, sizeof *pc);
    if (pc == NULL || es_acceptor_new(&pc->acc, flags) != 0) {
        es__free(pc);
        return es__fail(&log->h, ES_ENOMEM, "out of memory");
    }
    pc->ti = ti;
    pc->partition = partition;
    pc->next = *list;
    *list = pc;
    *out = pc;
    return 0;
}

int es__ktruncated(es_log *log, topic_info *ti, int32_t partition, int64_t lo,
                     const char *what)
{
    return es__fail(&log->h, ES_ETRUNCATED,
                    "%s: kafka topic %s partition %d begins at offset %" PRId64
                    ", not 0: the log lost its beginning (offsets 0 to %" PRId64
                    " were deleted), so stream versions cannot be known",
                    what, ti->name, (int)partition, lo, lo - 1);
}

/* Brings the writer's view of (ti, partition) up to offset end (-1: the
 * partition's end now: one offsets request, two for a view that is new
 * and must check the partition still begins at 0). */
static int writer_catch_up(es_log *log, kafka_log *k, topic_info *ti,
                           int32_t partition, int64_t end, part_cache **out)
{
    part_cache *pc = es__kcache_get(&k->writers, ti, partition);
    int rc;
    if (pc == NULL) {
        int64_t lo, hi;
        if ((rc = es__ktopic_watermarks(log, k, ti, partition, &lo, &hi)) != 0)
            return rc;
        if (lo > 0)
            return es__ktruncated(log, ti, partition, lo, "appending");
        if ((rc = es__kcache_new(log, &k->writers, ti, partition,
                            ES_ACCEPTOR_STATE_ONLY | ES_ACCEPTOR_TRACK_IDS, &pc)))
            return rc;
        if (end < 0)
            end = hi;
    } else if (end < 0 &&
               (rc = es__ktopic_watermarks(log, k, ti, partition, NULL, &end)) != 0) {
        return rc;
    }
    *out = pc;
    rc = es__kscan(log, k, ti, partition, pc->fed, end, 0, es__kcache_feed, pc);
    if (rc == 0 && pc->fed < end)
        pc->fed = end; /* transaction markers at the end */
    return rc;
}

static int conflict(es_log *log, const char *agg, const char *sid,
                    int64_t expected, int64_t cur)
{
    return es__append_conflict(log, agg, sid, expected, cur); /* core/log.c */
}

/* Where an event id is, among the partitions of ti this handle has read. */
static int find_id(kafka_log *k, topic_info *ti, const char *id, es_accepted_id *out)
{
    part_cache *pc;
    for (pc = k->writers; pc; pc = pc->next)
        if (pc->ti == ti && es_acceptor_find_id(pc->acc, id, out))
            return 1;
    return 0;
}

typedef struct lookup_ctx {
    kafka_log *k;
    topic_info *ti;
    const char *agg;
} lookup_ctx;

static int lookup_id(void *ctx, const char *id, es__id_place *out, int *found)
{
    lookup_ctx *c = ctx;
    es_accepted_id where;
    *found = find_id(c->k, c->ti, id, &where);
    if (*found) {
        snprintf(out->agg_type, sizeof out->agg_type, "%s", c->agg);
        snprintf(out->stream_id, sizeof out->stream_id, "%s", where.stream_id);
        out->commit_id[0] = '\0';
        out->version = where.version;
        out->commit_size = where.commit_size;
        out->commit_index = where.commit_index;
        out->position = where.position;
    }
    return 0;
}

/* The commit's ids are known: a retry of a whole earlier commit of this
 * stream (a duplicate), or ids reused (ES_EINVAL): the rule of every log
 * (core/log.c). Every id is looked up, as no index refuses them later. */
static int check_ids(es_log *log, kafka_log *k, topic_info *ti,
                     es_append_result *out, const char *agg, const char *sid,
                     const es_event *evs, size_t n, int *dup)
{
    lookup_ctx c = {k, ti, agg};
    return es__append_check_ids(log, out, agg, sid, evs, n, 1, lookup_id, &c,
                                dup);
}

/* Where an event id is in the partition of sid, as a writer catching up
 * to the partition's end sees it (idempotent commands, core/repo.c). */
int es__kafka_find_id(es_log *log, void *self, const char *agg,
                      const char *sid, const char *id, es__id_place *out,
                      int *found)
{
    kafka_log *k = self;
    topic_info *ti;
    part_cache *pc;
    lookup_ctx c;
    int32_t p;
    int rc;

    *found = 0;
    if ((rc = es__ktopic_find(log, k, agg, &ti)) != 0)
        return rc;
    if (ti == NULL)
        return 0; /* no topic: no events */
    c.k = k;
    c.ti = ti;
    c.agg = agg;
    p = es_partition_for(sid, strlen(sid), ti->partitions);
    if ((rc = writer_catch_up(log, k, ti, p, -1, &pc)) != 0)
        return rc;
    return lookup_id(&c, id, out, found);
}

void es__kcache_free_all(part_cache *pc)
{
    while (pc) {
        part_cache *next = pc->next;
        es_acceptor_free(pc->acc);
        es__free(pc);
        pc = next;
    }
}

/*
 * ES_EUNKNOWN: the commit may or may not be in the log. The message names
 * the commit's ids, so that the caller can retry with the same ones (a
 * no-op, duplicate = 1, when the first try was written).
 */
static int unknown(es_log *log, const char *agg, const char *sid,
                   const es_event *events, size_t n, const char *failure,
                   const char *readback)
{
    char rb[ES__ERRMSG_MAX / 4];
    snprintf(rb, sizeof rb, "%s", readback); /* may be es_errmsg(log) */
    return es__fail(&log->h, ES_EUNKNOWN,
                    "appending to %s/%s: outcome unknown: the commit of %zu "
                    "event%s (ids %s .. %s) may or may not have been written. "
                    "Appending the same events again (the same ids) is safe: "
                    "if they were written, it writes nothing and says "
                    "duplicate. (%s; read back: %s)",
                    agg, sid, n, n == 1 ? "" : "s", events[0].id,
                    events[n - 1].id, failure, rb);
}

int es__kafka_append(es_log *log, void *self, es_append_result *out,
                        const char *agg, const char *sid, int64_t expected,
                        const es_event *events, size_t n)
{
    kafka_log *k = self;
    topic_info *ti;
    part_cache *pc;
    es_event *evs = NULL;
    dr_slot *slots = NULL;
    int32_t p;
    int rc, dup, attempt, maybe, fast;
    int64_t hi = 0, cur = 0;
    size_t i;

    if ((rc = es__ktopic_find(log, k, agg, &ti)) != 0)
        return rc;
    if (ti == NULL && (rc = es__ktopic_create(log, k, agg, &ti)) != 0)
        return rc;
    if ((rc = es__kproducer_ready(log, k)) != 0)
        return rc;
    if (ti->prkt == NULL &&
        (ti->prkt = rd_kafka_topic_new(k->producer, ti->name, NULL)) == NULL)
        return es__fail(&log->h, ES_EIO, "kafka: topic %s: %s", ti->name,
                        rd_kafka_err2str(rd_kafka_last_error()));
    if (k->single && ti->srkt == NULL &&
        (ti->srkt = rd_kafka_topic_new(k->single, ti->name, NULL)) == NULL)
        return es__fail(&log->h, ES_EIO, "kafka: topic %s: %s", ti->name,
                        rd_kafka_err2str(rd_kafka_last_error()));
    p = es_partition_for(sid, strlen(sid), ti->partitions);
    evs = es__calloc(n, sizeof *evs);
    slots = es__calloc(n, sizeof *slots);
    if (evs == NULL || slots == NULL) {
        rc = es__fail(&log->h, ES_ENOMEM, "out of memory");
        goto done;
    }

    /*
     * Fast (owner=1, the handle has read the partition before): write on
     * what it knows, without asking the broker where the partition ends
     * (a metadata and an offsets request). Confirming reads from what it
     * knew up to its own offsets anyway, so a stale view (someone else
     * wrote after all) costs a rejected record in the log and a second,
     * checked round (below), never a wrong answer. Without owner=1 a
     * conflict writes nothing.
     */
    fast = k->uri.owner && es__kcache_get(&k->writers, ti, p) != NULL;
    for (attempt = 1;; attempt++) {
        if (fast) {
            pc = es__kcache_get(&k->writers, ti, p);
        } else if ((rc = writer_catch_up(log, k, ti, p, -1, &pc)) != 0) {
            /* Where the stream stands, as every reader will see it. */
            goto done;
        }
        if ((rc = check_ids(log, k, ti, out, agg, sid, events, n, &dup)) != 0 || dup)
            goto done;
        cur = es_acceptor_version(pc->acc, sid);
        if (expected != ES_EXPECT_ANY && expected != cur) {
            if (fast) { /* maybe only behind: ask the broker */
                fast = 0;
                attempt--;
                continue;
            }
            rc = conflict(log, agg, sid, expected, cur);
            goto done;
        }
        for (i = 0; i < n; i++) {
            evs[i] = events[i];
            evs[i].aggregate_type = agg;
            evs[i].stream_id = sid;
            evs[i].version = cur + 1 + (int64_t)i;
        }
        rc = es__kproduce(log, k, ti, p, sid, evs, n, slots, &maybe);
        if (rc != 0 && !(maybe & ES__KMAYBE_WRITTEN))
            goto done; /* definite: nothing of it can be in the log */
        {
            /* Did it win? Read up to our own last offset; after a failure,
             * up to where the partition ends now. */
            int64_t last = -1;
            es_accepted_id where;
            int prc = rc;
            char failure[ES__ERRMSG_MAX / 2];
            snprintf(failure, sizeof failure, "%s", es_errmsg(log));
            for (i = 0; i < n; i++)
                if (slots[i].done && !slots[i].err && slots[i].offset > last)
                    last = slots[i].offset;
            if (prc == 0 && slots[0].offset == pc->fed &&
                slots[n - 1].offset == pc->fed + (int64_t)n - 1) {
                /* Nothing came between what we had read and our commit: the
                 * records there are ours, no need to read them back. */
                for (i = 0; i < n && rc == 0; i++) {
                    es_event *copy = NULL;
                    evs[i].position.partition = p;
                    evs[i].position.offset = slots[i].offset;
                    if ((rc = es_event_copy(&copy, &evs[i])) != 0 ||
                        (rc = es_acceptor_feed_new(pc->acc, copy)) != 0)
                        rc = es__fail(&log->h, ES_ENOMEM, "out of memory");
                }
                if (rc)
                    goto done;
                pc->fed = slots[n - 1].offset + 1;
            } else if (prc == 0) {
                if ((rc = writer_catch_up(log, k, ti, p, last + 1, &pc)) != 0)
                    goto done;
            } else if ((rc = es__ktopic_watermarks(log, k, ti, p, NULL, &hi)) != 0 ||
                       (rc = writer_catch_up(log, k, ti, p,
                                             hi > last + 1 ? hi : last + 1, &pc)) != 0) {
                rc = unknown(log, agg, sid, events, n, failure, es_errmsg(log));
                goto done;
            }
            if (es_acceptor_find_id(pc->acc, evs[0].id, &where) &&
                (prc != 0 ||
                 (where.position.offset == slots[0].offset && slots[0].done))) {
                /* Ours (or, after a failure, the same commit by anyone:
                 * the ids are its). */
                es_accepted_id end = where;
                find_id(k, ti, evs[n - 1].id, &end);
                out->first_version = where.version;
                out->version = where.version + (int64_t)n - 1;
                out->first = where.position;
                out->last = end.position;
                /* After a failure, another handle's copy of the commit can
                 * be the one that counts. */
                out->duplicate = prc != 0 && slots[0].done && !slots[0].err &&
                                 slots[0].offset != where.position.offset;
                es__clear(&log->h); /* a failed commit that counts anyway */
                rc = 0;
                goto done;
            }
            if (prc != 0) {
                if ((maybe & ES__KMAYBE_LATER) &&
                    es_acceptor_version(pc->acc, sid) < evs[0].version) {
                    /* Not there yet, and a record of it may still arrive
                     * and make it whole: no one can tell yet. */
                    rc = unknown(log, agg, sid, events, n, failure,
                                 "reading the partition back to its end found "
                                 "the commit incomplete or absent, and a "
                                 "record of it may still arrive");
                    goto done;
                }
                /* It failed part way, and what arrived does not count. */
                rc = es__fail(&log->h, ES_EIO,
                              "kafka: appending to %s/%s: the commit failed "
                              "part way (what arrived does not count, and no "
                              "more of it can arrive): %s",
                              agg, sid, failure);
                goto done;
            }
        }
        /* Lost to another writer between our read and our write: maybe to
         * the same commit (a retry racing its original, two handles with
         * the same ids), which is then ours, a duplicate. */
        if ((rc = check_ids(log, k, ti, out, agg, sid, events, n, &dup)) != 0 || dup)
            goto done;
        if (fast) {
            /* Our view was stale: check again from the broker's end, as a
             * first round (ids of a retry, the expected version). */
            fast = 0;
            attempt--;
            continue;
        }
        if (expected != ES_EXPECT_ANY || attempt == ANY_ATTEMPTS) {
            rc = conflict(log, agg, sid, expected == ES_EXPECT_ANY ? cur : expected,
                          es_acceptor_version(pc->acc, sid));
            goto done;
        }
    }
done:
    es__free(evs);
    es__free(slots);
    return rc;
}


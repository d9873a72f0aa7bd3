/*
 * adapters/kafka/reader.c - reads of the event log: a stream, a partition (followers that hand out accepted events), a scan with every verdict (klog.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "esfold/partition.h"
#include "klog.h"

/* ---- reading a stream ---------------------------------------------------- */

typedef struct stream_read {
    const char *agg;
    const char *sid;
    size_t sid_len;
    const es_read_options *opts;
    es_event_cb cb;
    void *user_data;
    es_acceptor *acc;
    topic_info *ti;
    int64_t start;
    int seeded, fed_any, done;
} stream_read;

/* Hands out what the acceptor decided; sets sr->done at the range's end. */
static int stream_drain(es_log *log, stream_read *sr)
{
    const es_event *ev;
    es_verdict v;
    const char *why;
    while (!sr->done && es_acceptor_next(sr->acc, &ev, &v, &why)) {
        if (v != ES_VERDICT_ACCEPTED)
            continue;
        if (ev->version < sr->opts->from_version)
            continue;
        if (sr->opts->to.kind == ES_RANGE_VERSION && ev->version > sr->opts->to.version) {
            sr->done = 1;
            break;
        }
        if (sr->opts->to.kind == ES_RANGE_TIME && ev->occurred_us > sr->opts->to.time_us) {
            sr->done = 1;
            break;
        }
        if (sr->cb(ev, sr->user_data) != 0)
            return es__fail(&log->h, ES_EUSER, "reading %s/%s: stopped by the "
                            "callback at version %lld", ev->aggregate_type,
                            sr->sid, (long long)ev->version);
        if (sr->opts->to.kind == ES_RANGE_VERSION && ev->version >= sr->opts->to.version)
            sr->done = 1;
    }
    return 0;
}

static int feed_stream(es_log *log, kafka_log *k, const rd_kafka_message_t *m,
                       void *ctx)
{
    stream_read *sr = ctx;
    es_event *ev = NULL;
    char why[256];
    int rc;
    (void)k;
    if (m->key_len != sr->sid_len || memcmp(m->key, sr->sid, sr->sid_len) != 0)
        return 0;
    rc = es__kafka_decode(&ev, m, sr->agg, 0, why, sizeof why);
    if (rc < 0) {
        es_event_free(ev);
        return es__fail(&log->h, ES_ENOMEM, "out of memory");
    }
    if (rc == 1) {
        /* A record that claims to be an event of the stream but cannot be
         * read is corrupt; one without esfold headers is foreign, and
         * rejected like every reader rejects it. */
        if (ev->type && ev->version >= 1) {
            rc = es__fail(&log->h, ES_ECORRUPT,
                          "reading %s/%s: kafka topic %s partition %d offset "
                          "%" PRId64 ": %s",
                          sr->ti->name, sr->sid, sr->ti->name,
                          (int)m->partition, m->offset, why);
            es_event_free(ev);
            return rc;
        }
        es_event_free(ev);
        return 0;
    }
    if (!sr->seeded) {
        /* A read from a snapshot's position: the stream is at
         * from_version - 1 there. If the record there is that very event,
         * its commit may go on after it (accepted, like it). */
        int64_t seed = sr->opts->from_version - 1;
        const char *commit = NULL;
        sr->seeded = 1;
        if (m->offset == sr->start && ev->version == seed) {
            commit = ev->commit_id;
            rc = es_acceptor_seed(sr->acc, sr->sid, seed, commit);
            es_event_free(ev);
            return rc ? es__fail(&log->h, rc, "out of memory") : 0;
        }
        /* The record there is from_version's event itself (a repository
         * checking that the log still holds its snapshot's event): it was
         * accepted, so its commit counts from it, wherever in the commit it
         * stands. (The reader compares its id.) */
        if (m->offset == sr->start && ev->version == seed + 1 && seed > 0) {
            if ((rc = es_acceptor_seed(sr->acc, sr->sid, seed, ev->commit_id)) != 0) {
                es_event_free(ev);
                return es__fail(&log->h, rc, "out of memory");
            }
            seed = 0; /* seeded */
        }
        if (seed > 0 && (rc = es_acceptor_seed(sr->acc, sr->sid, seed, NULL)) != 0) {
            es_event_free(ev);
            return es__fail(&log->h, rc, "out of memory");
        }
    }
    if (!sr->fed_any) {
        int64_t expect = es_acceptor_version(sr->acc, sr->sid) + 1;
        sr->fed_any = 1;
        if (ev->version > expect) {
            rc = es__fail(&log->h, ES_ETRUNCATED,
                          "reading %s/%s: the first event of the stream in "
                          "kafka topic %s partition %d (offset %" PRId64
                          ", read from offset %" PRId64 ") has version %lld, "
                          "not %lld: the log lost the stream's beginning",
                          ev->aggregate_type, sr->sid, sr->ti->name,
                          (int)m->partition, m->offset, sr->start,
                          (long long)ev->version, (long long)expect);
            es_event_free(ev);
            return rc;
        }
    }
    if ((rc = es_acceptor_feed_new(sr->acc, ev)) != 0)
        return es__fail(&log->h, rc, "out of memory");
    if ((rc = stream_drain(log, sr)) != 0)
        return rc;
    return sr->done ? 1 : 0;
}

int es__kafka_read_stream(es_log *log, void *self, const char *agg,
                             const char *sid, const es_read_options *opts,
                             es_event_cb cb, void *user_data)
{
    kafka_log *k = self;
    topic_info *ti;
    stream_read sr;
    int32_t p;
    int64_t lo, hi;
    int rc;

    if ((rc = es__ktopic_find(log, k, agg, &ti)) != 0 || ti == NULL)
        return rc;
    p = es_partition_for(sid, strlen(sid), ti->partitions);
    if ((rc = es__ktopic_watermarks(log, k, ti, p, &lo, &hi)) != 0)
        return rc;
    memset(&sr, 0, sizeof sr);
    sr.agg = agg;
    sr.sid = sid;
    sr.sid_len = strlen(sid);
    sr.opts = opts;
    sr.cb = cb;
    sr.user_data = user_data;
    sr.ti = ti;
    if (opts->start.offset >= 0 && opts->start.partition == p &&
        opts->from_version > 1) {
        sr.start = opts->start.offset;
        if (sr.start < lo)
            return es__fail(&log->h, ES_ETRUNCATED,
                            "reading %s/%s from offset %" PRId64 ": kafka topic "
                            "%s partition %d begins at offset %" PRId64
                            ": the log lost the events there",
                            agg, sid, sr.start, ti->name, (int)p, lo);
    } else {
        sr.start = 0;
        sr.seeded = 1;
        if (lo > 0) {
            char what[ES_NAME_MAX + ES_STREAM_ID_MAX + 16];
            snprintf(what, sizeof what, "reading %s/%s", agg, sid);
            return es__ktruncated(log, ti, p, lo, what);
        }
    }
    if (es_acceptor_new(&sr.acc, 0) != 0)
        return es__fail(&log->h, ES_ENOMEM, "out of memory");
    rc = es__kscan(log, k, ti, p, sr.start, hi, 0, feed_stream, &sr);
    if (rc == 1)
        rc = 0;
    es_acceptor_free(sr.acc);
    return rc;
}

/* ---- reading a partition ------------------------------------------------- */

static int feed_all(es_log *log, kafka_log *k, const rd_kafka_message_t *m,
                    void *ctx)
{
    part_cache *pc = ctx;
    es_event *ev = NULL;
    char why[256];
    int rc = es__kafka_decode(&ev, m, pc->ti->name + strlen(k->uri.prefix), 0, why,
                              sizeof why);
    pc->fed = m->offset + 1;
    if (rc < 0) {
        es_event_free(ev);
        return es__fail(&log->h, ES_ENOMEM, "out of memory");
    }
    rc = rc == 1 ? es_acceptor_feed_malformed_new(pc->acc, ev, why)
                 : es_acceptor_feed_new(pc->acc, ev);
    return rc ? es__fail(&log->h, rc, "out of memory") : 0;
}

/* Gives each decided record (offset >= from) to deliver, up to max. */
typedef int (*deliver_fn)(es_log *log, const es_event *ev, es_verdict v,
                          const char *why, void *ctx);

static int follow(es_log *log, kafka_log *k, part_cache *pc, int64_t from,
                  int64_t end, size_t max, int finish, int64_t *next,
                  deliver_fn deliver, void *ctx)
{
    size_t count = 0;
    int rc, finished = 0;
    int64_t incomplete = -1;

    for (;;) {
        const es_event *ev;
        es_verdict v;
        const char *why;
        while ((max == 0 || count < max) && es_acceptor_next(pc->acc, &ev, &v, &why)) {
            int64_t off = ev->position.offset;
            if (v == ES_VERDICT_INCOMPLETE && incomplete < 0)
                incomplete = off;
            if (incomplete < 0)
                pc->taken = off + 1;
            if (off < from)
                continue;
            if ((rc = deliver(log, ev, v, why, ctx)) < 0)
                return rc;
            count += (size_t)rc;
        }
        if (max && count >= max)
            break;
        if (pc->fed >= end) {
            if (!finish || finished)
                break;
            if (es_acceptor_finish(pc->acc) != 0)
                return es__fail(&log->h, ES_ENOMEM, "out of memory");
            finished = 1;
            continue;
        }
        if ((rc = es__kscan(log, k, pc->ti, pc->partition, pc->fed, end, ES__KBATCH,
                       feed_all, pc)) != 0)
            return rc;
        if (pc->fed < end && k->cur_next >= end)
            pc->fed = end; /* transaction markers at the end */
    }
    *next = pc->taken > from ? pc->taken : from;
    return 0;
}

typedef struct read_ctx {
    es_event_cb cb;
    es_verdict_cb vcb;
    void *user_data;
} read_ctx;

static int deliver_accepted(es_log *log, const es_event *ev, es_verdict v,
                            const char *why, void *ctx)
{
    read_ctx *rc = ctx;
    (void)why;
    if (v != ES_VERDICT_ACCEPTED)
        return 0;
    if (rc->cb(ev, rc->user_data) != 0)
        return es__fail(&log->h, ES_EUSER, "reading partition %d: stopped by the "
                        "callback at offset %" PRId64,
                        (int)ev->position.partition, ev->position.offset);
    return 1;
}

static int deliver_verdict(es_log *log, const es_event *ev, es_verdict v,
                           const char *why, void *ctx)
{
    read_ctx *rc = ctx;
    if (rc->vcb(ev, v, why, rc->user_data) != 0)
        return es__fail(&log->h, ES_EUSER, "scanning partition %d: stopped by "
                        "the callback at offset %" PRId64,
                        (int)ev->position.partition, ev->position.offset);
    return 1;
}

static int partition_args(es_log *log, kafka_log *k, const char *agg,
                          int32_t partition, topic_info **ti, int64_t *lo,
                          int64_t *hi)
{
    int rc;
    if ((rc = es__ktopic_find(log, k, agg, ti)) != 0 || *ti == NULL)
        return rc;
    if (partition >= (*ti)->partitions)
        return es__fail(&log->h, ES_EINVAL,
                        "reading %s: partition %d does not exist (topic %s has "
                        "%d partitions)",
                        agg, (int)partition, (*ti)->name, (int)(*ti)->partitions);
    return es__ktopic_watermarks(log, k, *ti, partition, lo, hi);
}

int es__kafka_read_partition(es_log *log, void *self, int64_t *next_offset,
                                const char *agg, int32_t partition,
                                int64_t from_offset, size_t max_events,
                                es_event_cb cb, void *user_data)
{
    kafka_log *k = self;
    topic_info *ti;
    part_cache *pc;
    read_ctx ctx = {cb, NULL, user_data};
    int64_t lo, hi;
    int rc;

    if ((rc = partition_args(log, k, agg, partition, &ti, &lo, &hi)) != 0 || ti == NULL)
        return rc;
    pc = es__kcache_get(&k->followers, ti, partition);
    if (pc && from_offset < pc->taken) {
        /* Going back: the rule's state must be rebuilt from the start. */
        es_acceptor_free(pc->acc);
        pc->acc = NULL;
        if (es_acceptor_new(&pc->acc, 0) != 0)
            return es__fail(&log->h, ES_ENOMEM, "out of memory");
        pc->fed = pc->taken = 0;
    }
    if (pc == NULL) {
        if (lo > 0)
            return es__ktruncated(log, ti, partition, lo, "reading a partition");
        if ((rc = es__kcache_new(log, &k->followers, ti, partition, 0, &pc)) != 0)
            return rc;
    }
    return follow(log, k, pc, from_offset, hi, max_events, 0, next_offset,
                  deliver_accepted, &ctx);
}

int es__kafka_scan_partition(es_log *log, void *self, int64_t *next_offset,
                                const char *agg, int32_t partition,
                                int64_t from_offset, size_t max_events,
                                es_verdict_cb cb, void *user_data)
{
    kafka_log *k = self;
    topic_info *ti;
    part_cache pc;
    read_ctx ctx = {NULL, cb, user_data};
    int64_t lo, hi;
    int rc;

    if ((rc = partition_args(log, k, agg, partition, &ti, &lo, &hi)) != 0 || ti == NULL)
        return rc;
    if (lo > 0)
        return es__ktruncated(log, ti, partition, lo, "scanning a partition");
    memset(&pc, 0, sizeof pc);
    pc.ti = ti;
    pc.partition = partition;
    if (es_acceptor_new(&pc.acc, 0) != 0)
        return es__fail(&log->h, ES_ENOMEM, "out of memory");
    rc = follow(log, k, &pc, from_offset, hi, max_events, 1, next_offset,
                deliver_verdict, &ctx);
    es_acceptor_free(pc.acc);
    return rc;
}


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
    int seeded;         /* from origin, or the seed is made */
    int from_origin;    /* no snapshot: the stream starts at version 0 */
    int restart;        /* the seed cannot be made: read from origin */
    int done;
    int64_t accepted;   /* accepted events of the stream seen */
    int64_t gap_offset; /* the first event rejected as a gap, -1: none */
    int64_t gap_version;
} stream_read;

/* Hands out what the acceptor decided; sets sr->done at the range's end. */
static int stream_drain(es_log *log, stream_read *sr)
{
    const es_event *ev;
    es_verdict v;
    const char *why;
    while (!sr->done && es_acceptor_next(sr->acc, &ev, &v, &why)) {
        if (v == ES_VERDICT_GAP && sr->gap_offset < 0) {
            sr->gap_offset = ev->position.offset;
            sr->gap_version = ev->version;
        }
        if (v != ES_VERDICT_ACCEPTED)
            continue;
        sr->accepted++;
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

/*
 * A read from a snapshot's position starts the rule at the snapshot's
 * version, from the first record of the stream there (ev): the snapshot's
 * own event (version from_version - 1) or, for a repository that checks
 * its snapshot's event is still there, from_version's event. Either is an
 * accepted event, and its commit index tells where its commit goes on.
 * Returns 0 and sets *feed when ev must be fed; sr->restart when the seed
 * cannot be known (a multi-event commit of esfold 0.1.0, which carries no
 * index): the read then starts over from origin.
 */
static int stream_seed(es_log *log, stream_read *sr, const es_event *ev, int *feed)
{
    int64_t seed = sr->opts->from_version - 1;
    int multi = ev->commit_id && ev->commit_size > 1;
    int rc = 0;
    *feed = 1;
    sr->seeded = 1;
    if (ev->position.offset == sr->start && ev->version == seed) {
        if (multi && ev->commit_index < 0) {
            sr->restart = 1;
            return 0;
        }
        *feed = 0;
        rc = es_acceptor_seed(sr->acc, sr->sid, seed, ev);
    } else if (ev->position.offset == sr->start && ev->version == seed + 1 &&
               multi && ev->commit_index != 0) {
        /* from_version's event inside its commit: seed at the one before
         * it, which is the commit's previous event. */
        es_event before = *ev;
        if (ev->commit_index < 0) {
            sr->restart = 1;
            return 0;
        }
        before.version = seed;
        before.commit_index = ev->commit_index - 1;
        rc = es_acceptor_seed(sr->acc, sr->sid, seed, &before);
    } else {
        rc = es_acceptor_seed(sr->acc, sr->sid, seed, NULL);
    }
    return rc ? es__fail(&log->h, rc, "out of memory") : 0;
}

static int feed_stream(es_log *log, kafka_log *k, const rd_kafka_message_t *m,
                       void *ctx)
{
    stream_read *sr = ctx;
    es_event *ev = NULL;
    char why[512];
    es__krecord r;
    int rc, feed = 1;
    (void)k;
    if (m->key_len != sr->sid_len || memcmp(m->key, sr->sid, sr->sid_len) != 0)
        return 0;
    es__krecord_of(&r, m);
    rc = es__kafka_decode(&ev, &r, sr->agg, sr->ti->partitions, why, sizeof why);
    if (rc == ES__KREC_REFUSE) {
        es_event_free(ev);
        return es__fail(&log->h, ES_EINVAL, "reading %s/%s: %s", sr->agg,
                        sr->sid, why);
    }
    if (rc < 0) {
        es_event_free(ev);
        return es__fail(&log->h, ES_ENOMEM, "out of memory");
    }
    if (rc == ES__KREC_REJECT) {
        /* Rejected by every reader: it changes nothing. */
        es_event_free(ev);
        return 0;
    }
    if (!sr->seeded && (rc = stream_seed(log, sr, ev, &feed)) != 0) {
        es_event_free(ev);
        return rc;
    }
    if (sr->restart) {
        es_event_free(ev);
        return 1;
    }
    if (!feed) {
        es_event_free(ev);
        return 0;
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
    char what[ES_NAME_MAX + ES_STREAM_ID_MAX + 16];

    if ((rc = es__ktopic_find(log, k, agg, &ti)) != 0 || ti == NULL)
        return rc;
    p = es_partition_for(sid, strlen(sid), ti->partitions);
    if ((rc = es__ktopic_watermarks(log, k, ti, p, &lo, &hi)) != 0)
        return rc;
    snprintf(what, sizeof what, "reading %s/%s", agg, sid);
    memset(&sr, 0, sizeof sr);
    sr.agg = agg;
    sr.sid = sid;
    sr.sid_len = strlen(sid);
    sr.opts = opts;
    sr.cb = cb;
    sr.user_data = user_data;
    sr.ti = ti;
    sr.gap_offset = -1;
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
        sr.from_origin = sr.seeded = 1;
        if (lo > 0)
            return es__ktruncated(log, ti, p, lo, what);
    }
    if (es_acceptor_new(&sr.acc, 0) != 0)
        return es__fail(&log->h, ES_ENOMEM, "out of memory");
    rc = es__kscan(log, k, ti, p, sr.start, hi, 0, feed_stream, &sr);
    if (rc == 1 && sr.restart) {
        /* The snapshot is inside a commit of esfold 0.1.0: from origin. */
        es_acceptor_free(sr.acc);
        sr.acc = NULL;
        if (lo > 0) {
            rc = es__ktruncated(log, ti, p, lo, what);
            goto done;
        }
        if (es_acceptor_new(&sr.acc, 0) != 0) {
            rc = es__fail(&log->h, ES_ENOMEM, "out of memory");
            goto done;
        }
        sr.start = 0;
        sr.restart = 0;
        sr.from_origin = sr.seeded = 1;
        rc = es__kscan(log, k, ti, p, 0, hi, 0, feed_stream, &sr);
    }
    if (rc == 1)
        rc = 0;
    if (rc == 0 && sr.from_origin && sr.accepted == 0 && sr.gap_offset >= 0)
        /* Judged from accepted events, never from a rejected record alone:
         * the stream has records and none of them counts, the first one
         * missing its predecessors. */
        rc = es__fail(&log->h, ES_ETRUNCATED,
                      "reading %s/%s: no event of the stream counts: its first "
                      "record in kafka topic %s partition %d (offset %" PRId64
                      ") has version %lld, and versions 1 to %lld are not in "
                      "the log (a compacted or truncated topic lost the "
                      "stream's beginning, or another producer wrote it)",
                      agg, sid, ti->name, (int)p, sr.gap_offset,
                      (long long)sr.gap_version, (long long)sr.gap_version - 1);
done:
    es_acceptor_free(sr.acc);
    return rc;
}

/* ---- reading a partition ------------------------------------------------- */

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
            /* Commits still open at the head (decided only because this
             * scan ends there) are not final: the position stays before
             * them. A commit decided incomplete by the window is final. */
            if (v == ES_VERDICT_INCOMPLETE && finished && incomplete < 0)
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
        if ((rc = es__kscan(log, k, pc->ti, pc->partition, pc->fed, end,
                            ES__KBATCH, es__kcache_feed, pc)) != 0)
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

/* (Re)starts the follower pc at offset `at`: from the beginning, or with
 * seed (a resume at a checkpoint). */
static int follower_reset(es_log *log, part_cache *pc, int64_t at, int resumed)
{
    es_acceptor_free(pc->acc);
    pc->acc = NULL;
    if (es_acceptor_new(&pc->acc, 0) != 0)
        return es__fail(&log->h, ES_ENOMEM, "out of memory");
    pc->fed = pc->taken = at;
    pc->resumed = resumed;
    return 0;
}

int es__kafka_read_partition_seeded(es_log *log, void *self, int64_t *next_offset,
                                    const char *agg, int32_t partition,
                                    int64_t from_offset, size_t max_events,
                                    es_seed_fn seed, void *seed_data,
                                    es_event_cb cb, void *user_data)
{
    kafka_log *k = self;
    topic_info *ti;
    part_cache *pc;
    read_ctx ctx = {cb, NULL, user_data};
    int64_t lo, hi;
    int rc;
    /* Resuming without a rescan: where a seeded follower starts. */
    int resume = seed != NULL && from_offset > 0;

    if ((rc = partition_args(log, k, agg, partition, &ti, &lo, &hi)) != 0 || ti == NULL)
        return rc;
    pc = es__kcache_get(&k->followers, ti, partition);
    if (pc == NULL) {
        if ((rc = es__kcache_new(log, &k->followers, ti, partition, 0, &pc)) != 0)
            return rc;
        pc->fed = pc->taken = 0;
        if (resume)
            pc->fed = pc->taken = from_offset, pc->resumed = 1;
    } else if (resume ? from_offset != pc->taken
                      : (from_offset < pc->taken || pc->resumed)) {
        /* Elsewhere than where the follower stands (or a resumed one read
         * without seeds): the rule's state is rebuilt. */
        if ((rc = follower_reset(log, pc, resume ? from_offset : 0, resume)) != 0)
            return rc;
    }
    if (lo > pc->fed) {
        char what[ES_NAME_MAX + 64];
        snprintf(what, sizeof what, "reading partition %d of %s from offset %" PRId64,
                 (int)partition, agg, pc->fed);
        return es__ktruncated(log, ti, partition, lo, what);
    }
    es_acceptor_set_seed_fn(pc->acc, pc->resumed ? seed : NULL, seed_data);
    rc = follow(log, k, pc, from_offset, hi, max_events, 0, next_offset,
                deliver_accepted, &ctx);
    es_acceptor_set_seed_fn(pc->acc, NULL, NULL);
    if (rc == ES_EUSER && pc->resumed)
        /* A stream's seed is unknown now: the next read starts over. */
        (void)follower_reset(log, pc, from_offset, 1);
    return rc;
}

int es__kafka_read_partition(es_log *log, void *self, int64_t *next_offset,
                             const char *agg, int32_t partition,
                             int64_t from_offset, size_t max_events,
                             es_event_cb cb, void *user_data)
{
    return es__kafka_read_partition_seeded(log, self, next_offset, agg, partition,
                                           from_offset, max_events, NULL, NULL,
                                           cb, user_data);
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

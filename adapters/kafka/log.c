/*
 * adapters/kafka/log.c - the event log on Apache Kafka (librdkafka).
 *
 * Kafka stores; the acceptance rule (core/accept.c) decides which events
 * count. Every read goes through an es_acceptor fed in offset order:
 *
 *   append          catch the partition up (a per-partition acceptor that
 *                   keeps only versions and ids, cached in the handle, so
 *                   that repeated appends read only what is new), check the
 *                   expected version and idempotency, produce the commit in
 *                   one producer transaction, then read the partition up to
 *                   our own offsets: the acceptor says whether we won.
 *   read_stream     scan the stream's partition from origin (or a
 *                   snapshot's position), filtered by key.
 *   read_partition  a follower per partition, cached in the handle, that
 *                   hands out accepted events in offset order.
 *   scan_partition  every record with its verdict (esfold verify).
 *
 * One consumer (the legacy per-partition API: no consumer group) does all
 * reading; it stays on the partition it read last, so that a writer or a
 * follower that goes on where it stopped costs no new fetch start.
 */
#include <inttypes.h>
#include <sys/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "esfold/partition.h"
#include "kafka.h"

#define BATCH 512
#define ANY_ATTEMPTS 5 /* tries of an ES_EXPECT_ANY append that keeps losing */

typedef struct topic_info {
    char *name;
    int32_t partitions;
    rd_kafka_topic_t *crkt; /* on the consumer */
    rd_kafka_topic_t *prkt; /* on the producer, made on first append */
    rd_kafka_topic_t *srkt; /* on the single-event producer */
    struct topic_info *next;
} topic_info;

/* What a handle knows of one partition: its acceptor and how far it read. */
typedef struct part_cache {
    topic_info *ti;
    int32_t partition;
    es_acceptor *acc;
    int64_t fed;   /* the next offset to feed */
    int64_t taken; /* (followers) the offset after the last event taken */
    struct part_cache *next;
} part_cache;

typedef struct dr_slot {
    int done;
    rd_kafka_resp_err_t err;
    int64_t offset;
    int32_t partition;
} dr_slot;

typedef struct kafka_log {
    es__kafka_uri uri;
    char txn_id[64];
    char timeout[16]; /* uri.timeout_ms as text, for the client settings */
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    rd_kafka_t *single; /* with transactions=1: the idempotent producer, no
                           transactional.id, of commits of one event */
    int txn_ready;
    int mock; /* librdkafka's mock cluster (esfold broker): no Admin API */
    topic_info *topics;
    part_cache *writers;   /* STATE_ONLY | TRACK_IDS acceptors */
    part_cache *followers; /* ordered acceptors for read_partition */
    /* The consumer's current fetch and what it has handed us. */
    topic_info *cur;
    int32_t cur_part;
    int64_t cur_next;
    rd_kafka_message_t *batch[BATCH];
    ssize_t bpos, bn;
} kafka_log;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the consumer's fetch ---------------------------------------------- */

static void fetch_stop(kafka_log *k)
{
    while (k->bpos < k->bn)
        rd_kafka_message_destroy(k->batch[k->bpos++]);
    k->bpos = k->bn = 0;
    if (k->cur)
        rd_kafka_consume_stop(k->cur->crkt, k->cur_part);
    k->cur = NULL;
}

/* Called with each record (not owned); non-zero stops the scan and is
 * returned. */
typedef int (*record_fn)(es_log *log, kafka_log *k, const rd_kafka_message_t *m,
                         void *ctx);

/*
 * Reads records of (ti, partition) with offsets in [from, end) in order,
 * calling fn. limit > 0 stops after that many records. A record at or past
 * end stays buffered for the next scan that goes on from there. Every wait
 * is bounded by the URI's timeout_ms without progress.
 */
static int scan(es_log *log, kafka_log *k, topic_info *ti, int32_t partition,
                int64_t from, int64_t end, size_t limit, record_fn fn, void *ctx)
{
    int64_t deadline = now_ms() + k->uri.timeout_ms;
    size_t seen = 0;
    int rc;

    if (from >= end)
        return 0;
    if (!(k->cur == ti && k->cur_part == partition && k->cur_next == from)) {
        fetch_stop(k);
        if (rd_kafka_consume_start(ti->crkt, partition, from) == -1)
            return es__fail(&log->h, ES_EIO,
                            "kafka: reading topic %s partition %d from offset "
                            "%" PRId64 ": %s",
                            ti->name, (int)partition, from,
                            rd_kafka_err2str(rd_kafka_last_error()));
        k->cur = ti;
        k->cur_part = partition;
        k->cur_next = from;
    }
    while (k->cur_next < end && (limit == 0 || seen < limit)) {
        rd_kafka_message_t *m;
        if (k->bpos == k->bn) {
            int64_t left = deadline - now_ms();
            ssize_t n;
            k->bpos = k->bn = 0;
            if (left <= 0) {
                int64_t lo = -1, hi = -1;
                rd_kafka_get_watermark_offsets(k->consumer, ti->name, partition,
                                               &lo, &hi);
                fetch_stop(k);
                return es__fail(&log->h, ES_EIO,
                                "kafka: reading topic %s partition %d: no "
                                "record at offset %" PRId64 " within %d ms "
                                "(waiting for offset %" PRId64 "; the broker "
                                "last said the partition ends at %" PRId64 ")",
                                ti->name, (int)partition, k->cur_next,
                                k->uri.timeout_ms, end - 1, hi);
            }
            /* What is there already, else wait for one: consume_batch
             * with a timeout would wait for a whole batch. */
            n = rd_kafka_consume_batch(ti->crkt, partition, 0, k->batch, BATCH);
            if (n == 0) {
                rd_kafka_message_t *one = rd_kafka_consume(
                    ti->crkt, partition, (int)(left < 100 ? left : 100));
                if (one) {
                    k->batch[0] = one;
                    n = 1;
                } else if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__TIMED_OUT) {
                    n = -1;
                }
            }
            if (n < 0) {
                rd_kafka_resp_err_t err = rd_kafka_last_error();
                fetch_stop(k);
                return es__fail(&log->h, ES_EIO,
                                "kafka: reading topic %s partition %d: %s",
                                ti->name, (int)partition, rd_kafka_err2str(err));
            }
            k->bn = n;
            continue;
        }
        m = k->batch[k->bpos];
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* The end, past any transaction markers that end the log. */
            if (m->offset > k->cur_next)
                k->cur_next = m->offset;
            k->bpos++;
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->err) {
            int code = m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
                               m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE
                           ? ES_ETRUNCATED
                           : ES_EIO;
            rc = es__fail(&log->h, code,
                          "kafka: reading topic %s partition %d at offset "
                          "%" PRId64 ": %s",
                          ti->name, (int)partition, k->cur_next,
                          rd_kafka_message_errstr(m));
            fetch_stop(k);
            return rc;
        }
        if (m->offset >= end)
            break;
        k->bpos++;
        if (m->offset < k->cur_next) { /* not ours: a duplicate delivery */
            rd_kafka_message_destroy(m);
            continue;
        }
        k->cur_next = m->offset + 1;
        seen++;
        rc = fn(log, k, m, ctx);
        rd_kafka_message_destroy(m);
        if (rc)
            return rc;
        deadline = now_ms() + k->uri.timeout_ms;
    }
    /* Caught up with nothing buffered: stop fetching. An idle fetch is a
     * request the broker holds for fetch.wait.max.ms, and the next
     * request on the connection (the offsets of the next read) would wait
     * behind it. */
    if (k->bpos == k->bn && k->cur_next >= end)
        fetch_stop(k);
    return 0;
}

/* ---- topics -------------------------------------------------------------- */

static int watermarks(es_log *log, kafka_log *k, topic_info *ti, int32_t partition,
                      int64_t *lo, int64_t *hi)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err;
    /* librdkafka 2.0.2's watermark query does not keep to its timeout
     * while the broker's connection goes up and down (it retries on every
     * state change): a metadata request, which does, checks the broker is
     * there first. */
    err = rd_kafka_metadata(k->consumer, 0, NULL, &md, k->uri.timeout_ms);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_metadata_destroy(md);
        err = rd_kafka_query_watermark_offsets(k->consumer, ti->name, partition,
                                               lo, hi, k->uri.timeout_ms);
    }
    if (err)
        return es__fail(&log->h, ES_EIO,
                        "kafka: reading the offsets of topic %s partition %d: %s",
                        ti->name, (int)partition, rd_kafka_err2str(err));
    return 0;
}

/*
 * The partition count of topic `name` from the cluster: 0 when it does not
 * exist. It asks for the list of all topics: librdkafka's mock broker
 * (Metadata v2 at most, before AllowAutoTopicCreation) creates every topic
 * a metadata request names.
 */
static int metadata_count(es_log *log, kafka_log *k, const char *name,
                          int32_t *out)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err;
    int i;
    *out = 0;
    err = rd_kafka_metadata(k->consumer, 1, NULL, &md, k->uri.timeout_ms);
    if (err)
        return es__fail(&log->h, ES_EIO, "kafka: metadata of topic %s: %s", name,
                        rd_kafka_err2str(err));
    for (i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, name) == 0 &&
            md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
            *out = md->topics[i].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return 0;
}

/* A URI with partitions=N only works with topics of N partitions. */
static int check_count(es_log *log, kafka_log *k, const char *topic, int32_t n)
{
    if (!k->uri.partitions_given || n == k->uri.partitions)
        return 0;
    return es__fail(&log->h, ES_EINVAL,
                    "kafka topic %s has %d partitions, the URI says "
                    "partitions=%d (a stream's partition depends on the count: "
                    "it cannot change; a broker without the Admin API, such "
                    "as `esfold broker`, makes topics with 4 partitions "
                    "unless started as `esfold broker --partitions %d %s`)",
                    topic, (int)n, (int)k->uri.partitions,
                    (int)k->uri.partitions, topic);
}

/* The topic of aggregate type agg, known to exist or not (partitions 0). */
static int topic_get(es_log *log, kafka_log *k, const char *agg, topic_info **out)
{
    topic_info *ti;
    char *name;
    *out = NULL;
    if ((name = es__sprintf("%s%s", k->uri.prefix, agg)) == NULL)
        return es__fail(&log->h, ES_ENOMEM, "out of memory");
    for (ti = k->topics; ti; ti = ti->next)
        if (strcmp(ti->name, name) == 0)
            break;
    if (ti == NULL) {
        if ((ti = es__calloc(1, sizeof *ti)) == NULL) {
            es__free(name);
            return es__fail(&log->h, ES_ENOMEM, "out of memory");
        }
        ti->name = name;
        name = NULL;
        ti->next = k->topics;
        k->topics = ti;
    }
    es__free(name);
    *out = ti;
    return 0;
}

/* The topic of aggregate type agg; *out NULL (and 0) when the topic does not
 * exist on the cluster yet. */
static int find_topic(es_log *log, kafka_log *k, const char *agg, topic_info **out)
{
    topic_info *ti;
    int rc;
    *out = NULL;
    if ((rc = topic_get(log, k, agg, &ti)) != 0)
        return rc;
    if (ti->partitions == 0 &&
        (rc = metadata_count(log, k, ti->name, &ti->partitions)) != 0)
        return rc;
    if (ti->partitions > 0) {
        if ((rc = check_count(log, k, ti->name, ti->partitions)) != 0)
            return rc;
        /* Made only now: a topic handle asks for the topic's metadata, and
         * the mock broker creates what it is asked about. */
        if (ti->crkt == NULL &&
            (ti->crkt = rd_kafka_topic_new(k->consumer, ti->name, NULL)) == NULL)
            return es__fail(&log->h, ES_EIO, "kafka: topic %s: %s", ti->name,
                            rd_kafka_err2str(rd_kafka_last_error()));
        *out = ti;
    }
    return 0;
}

static int producer_ready(es_log *log, kafka_log *k);

/*
 * Creates the topic of agg: with the Admin API where the cluster has it
 * (partitions, replication from the URI, retention.ms=-1: events are kept
 * forever), else (librdkafka's mock broker) by the broker's automatic
 * creation, which gives the mock's 4 partitions.
 */
static int create_topic(es_log *log, kafka_log *k, const char *agg, topic_info **out)
{
    topic_info *ti;
    rd_kafka_NewTopic_t *nt = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;
    char errstr[512] = "", admin_err[512] = "";
    int rc;
    int64_t deadline;

    *out = NULL;
    if ((rc = producer_ready(log, k)) != 0 || (rc = topic_get(log, k, agg, &ti)) != 0)
        return rc;

    nt = rd_kafka_NewTopic_new(ti->name, k->uri.partitions, k->uri.replication,
                               errstr, sizeof errstr);
    if (nt == NULL)
        return es__fail(&log->h, ES_EINVAL, "kafka: creating topic %s: %s",
                        ti->name, errstr);
    rd_kafka_NewTopic_set_config(nt, "retention.ms", "-1");
    q = rd_kafka_queue_new(k->producer);
    if (k->mock) {
        /* CreateTopics would wait for a controller that never comes. */
        snprintf(admin_err, sizeof admin_err, "%s", "the mock broker has no Admin API");
    } else {
        rd_kafka_CreateTopics(k->producer, &nt, 1, NULL, q);
        ev = rd_kafka_queue_poll(q, k->uri.timeout_ms + 1000);
        if (ev == NULL) {
            snprintf(admin_err, sizeof admin_err, "no answer within %d ms",
                     k->uri.timeout_ms);
        } else if (rd_kafka_event_error(ev)) {
            snprintf(admin_err, sizeof admin_err, "%s",
                     rd_kafka_event_error_string(ev));
        } else {
            const rd_kafka_CreateTopics_result_t *res =
                rd_kafka_event_CreateTopics_result(ev);
            size_t cnt = 0;
            const rd_kafka_topic_result_t **trs =
                rd_kafka_CreateTopics_result_topics(res, &cnt);
            if (cnt == 1 && rd_kafka_topic_result_error(trs[0]) &&
                rd_kafka_topic_result_error(trs[0]) !=
                    RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                snprintf(admin_err, sizeof admin_err, "%s",
                         rd_kafka_topic_result_error_string(trs[0]));
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);

    /* Without the Admin API (the mock), a metadata request from the
     * producer creates it. Either way, wait until the cluster shows it. */
    if (ti->prkt == NULL &&
        (ti->prkt = rd_kafka_topic_new(k->producer, ti->name, NULL)) == NULL)
        return es__fail(&log->h, ES_EIO, "kafka: topic %s: %s", ti->name,
                        rd_kafka_err2str(rd_kafka_last_error()));
    deadline = now_ms() + k->uri.timeout_ms;
    for (;;) {
        int32_t n = 0;
        if (admin_err[0]) {
            const struct rd_kafka_metadata *md = NULL;
            if (rd_kafka_metadata(k->producer, 0, ti->prkt, &md,
                                  k->uri.timeout_ms) == 0)
                rd_kafka_metadata_destroy(md);
        }
        if ((rc = metadata_count(log, k, ti->name, &n)) != 0)
            return rc;
        if (n > 0)
            return find_topic(log, k, agg, out);
        if (now_ms() > deadline)
            return es__fail(&log->h, ES_EIO,
                            "kafka: topic %s does not exist and could not be "
                            "created%s%s (create it with `esfold topics create`)",
                            ti->name, admin_err[0] ? ": " : "", admin_err);
        rd_kafka_poll(k->producer, 50);
    }
}

/* ---- open / close -------------------------------------------------------- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    dr_slot *slot = m->_private;
    (void)rk;
    (void)opaque;
    if (slot == NULL)
        return;
    slot->done = 1;
    slot->err = m->err;
    slot->offset = m->offset;
    slot->partition = m->partition;
}

static int producer_ready(es_log *log, kafka_log *k)
{
    char errstr[512];
    rd_kafka_conf_t *conf;
    rd_kafka_error_t *error;
    const char *extra[] = {
        "enable.idempotence", "true",
        "linger.ms", "0",
        /* Every wait bounded by the URI's timeout_ms. */
        "message.timeout.ms", k->timeout,
        "socket.timeout.ms", k->timeout,
        k->uri.transactions ? "transactional.id" : NULL, k->txn_id,
        NULL,
    };
    if (k->producer && (k->txn_ready || !k->uri.transactions) &&
        (k->single || !k->uri.transactions))
        return 0;
    if (k->uri.transactions && k->single == NULL) {
        /* Commits of one event need no transaction (a record is atomic),
         * only idempotence: their own producer, two round trips fewer. */
        extra[8] = NULL;
        if ((conf = es__kafka_conf(&k->uri, extra, errstr, sizeof errstr)) == NULL)
            return es__fail(&log->h, ES_EINVAL, "kafka: producer settings: %s",
                            errstr);
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        k->single = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
        if (k->single == NULL) {
            rd_kafka_conf_destroy(conf);
            return es__fail(&log->h, ES_EIO, "kafka: making a producer: %s", errstr);
        }
        extra[8] = "transactional.id";
    }
    if (k->producer == NULL) {
        if ((conf = es__kafka_conf(&k->uri, extra, errstr, sizeof errstr)) == NULL)
            return es__fail(&log->h, ES_EINVAL, "kafka: producer settings: %s",
                            errstr);
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        k->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
        if (k->producer == NULL) {
            rd_kafka_conf_destroy(conf);
            return es__fail(&log->h, ES_EIO, "kafka: making a producer: %s", errstr);
        }
    }
    if (k->uri.transactions && !k->txn_ready) {
        if ((error = rd_kafka_init_transactions(k->producer, k->uri.timeout_ms))) {
            int rc = es__fail(&log->h, ES_EIO,
                              "kafka: starting transactions (transactional.id "
                              "%s): %s",
                              k->txn_id, rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
            rd_kafka_destroy(k->producer);
            k->producer = NULL;
            return rc;
        }
        k->txn_ready = 1;
    }
    return 0;
}

static void free_caches(part_cache *pc)
{
    while (pc) {
        part_cache *next = pc->next;
        es_acceptor_free(pc->acc);
        es__free(pc);
        pc = next;
    }
}

static void kafka_close(void *self)
{
    kafka_log *k = self;
    topic_info *ti, *tnext;
    if (k == NULL)
        return;
    if (k->consumer)
        fetch_stop(k);
    free_caches(k->writers);
    free_caches(k->followers);
    for (ti = k->topics; ti; ti = tnext) {
        tnext = ti->next;
        if (ti->crkt)
            rd_kafka_topic_destroy(ti->crkt);
        if (ti->prkt)
            rd_kafka_topic_destroy(ti->prkt);
        if (ti->srkt)
            rd_kafka_topic_destroy(ti->srkt);
        es__free(ti->name);
        es__free(ti);
    }
    if (k->producer) {
        rd_kafka_flush(k->producer, k->uri.timeout_ms);
        rd_kafka_destroy(k->producer);
    }
    if (k->single) {
        rd_kafka_flush(k->single, k->uri.timeout_ms);
        rd_kafka_destroy(k->single);
    }
    if (k->consumer)
        rd_kafka_destroy(k->consumer);
    es__kafka_uri_free(&k->uri);
    es__free(k);
}

static int kafka_open(es_log *log, void **self, const char *uri)
{
    kafka_log *k;
    char errstr[512], group[64], uuid[ES_UUID_BUFSZ], timeout[16];
    rd_kafka_conf_t *conf;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err;
    int rc;
    const char *extra[] = {
        "enable.partition.eof", "true",
        "auto.offset.reset", "error",
        "enable.auto.commit", "false",
        "enable.auto.offset.store", "false",
        /* A load scans a partition to its end; the broker holds a fetch
         * that finds nothing for this long, and the next request waits
         * behind it: 10 ms made a load of a short stream take 13 ms. */
        "fetch.wait.max.ms", "1",
        "fetch.error.backoff.ms", "10",
        "isolation.level", "read_committed",
        "socket.timeout.ms", timeout,
        "group.id", group,
        NULL,
    };

    *self = NULL;
    if ((k = es__calloc(1, sizeof *k)) == NULL)
        return es__fail(&log->h, ES_ENOMEM, "out of memory");
    if ((rc = es__kafka_uri_parse(&k->uri, uri, &log->h)) != 0) {
        es__free(k);
        return rc;
    }
    if ((rc = es_uuid_v7(uuid)) != 0) {
        kafka_close(k);
        return es__fail(&log->h, rc, "%s: no random bytes", uri);
    }
    /* A transactional id of its own per handle: two handles are two
     * writers, kept apart by the acceptance rule, not by fencing. */
    snprintf(k->txn_id, sizeof k->txn_id, "esfold-%s", uuid);
    snprintf(group, sizeof group, "esfold-reader-%s", uuid);
    snprintf(k->timeout, sizeof k->timeout, "%d", k->uri.timeout_ms);
    memcpy(timeout, k->timeout, sizeof timeout);
    if ((conf = es__kafka_conf(&k->uri, extra, errstr, sizeof errstr)) == NULL) {
        kafka_close(k);
        return es__fail(&log->h, ES_EINVAL, "%s: %s", uri, errstr);
    }
    k->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (k->consumer == NULL) {
        rd_kafka_conf_destroy(conf);
        kafka_close(k);
        return es__fail(&log->h, ES_EIO, "%s: %s", uri, errstr);
    }
    /* Reach the cluster now, so that a wrong address fails here, and check
     * that the topics agree with an explicit partitions=N. */
    err = rd_kafka_metadata(k->consumer, k->uri.partitions_given, NULL, &md,
                            k->uri.timeout_ms);
    if (err) {
        rc = es__fail(&log->h, ES_EIO, "%s: cannot reach the brokers %s: %s", uri,
                      k->uri.brokers, rd_kafka_err2str(err));
        kafka_close(k);
        return rc;
    }
    for (int i = 0; i < md->topic_cnt; i++) {
        const char *name = md->topics[i].topic;
        size_t plen = strlen(k->uri.prefix), len = strlen(name);
        if (plen == 0 || strncmp(name, k->uri.prefix, plen) != 0 ||
            (len >= 10 && strcmp(name + len - 10, ".snapshots") == 0))
            continue;
        if ((rc = check_count(log, k, name, md->topics[i].partition_cnt)) != 0) {
            rd_kafka_metadata_destroy(md);
            kafka_close(k);
            return rc;
        }
    }
    rd_kafka_metadata_destroy(md);
    {
        /* librdkafka's mock cluster names itself so. */
        char *id = rd_kafka_clusterid(k->consumer, 0);
        k->mock = id && strncmp(id, "mockCluster", 11) == 0;
        if (id)
            rd_kafka_mem_free(k->consumer, id);
    }
    *self = k;
    return 0;
}

/* ---- the writer's view of a partition ------------------------------------ */

static part_cache *cache_get(part_cache **list, topic_info *ti, int32_t partition)
{
    part_cache *pc;
    for (pc = *list; pc; pc = pc->next)
        if (pc->ti == ti && pc->partition == partition)
            return pc;
    return NULL;
}

static int cache_new(es_log *log, part_cache **list, topic_info *ti,
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

static int truncated(es_log *log, topic_info *ti, int32_t partition, int64_t lo,
                     const char *what)
{
    return es__fail(&log->h, ES_ETRUNCATED,
                    "%s: kafka topic %s partition %d begins at offset %" PRId64
                    ", not 0: the log lost its beginning (offsets 0 to %" PRId64
                    " were deleted), so stream versions cannot be known",
                    what, ti->name, (int)partition, lo, lo - 1);
}

/* Feeds one record, headers only, to a writer's acceptor. */
static int feed_state(es_log *log, kafka_log *k, const rd_kafka_message_t *m,
                      void *ctx)
{
    part_cache *pc = ctx;
    es_event *ev = NULL;
    char why[256];
    int rc = es__kafka_decode(&ev, m, "", 1, why, sizeof why);
    (void)k;
    pc->fed = m->offset + 1;
    if (rc < 0) {
        es_event_free(ev);
        return es__fail(&log->h, ES_ENOMEM, "out of memory");
    }
    if (rc == 1)
        rc = es_acceptor_feed_malformed_new(pc->acc, ev, why);
    else
        rc = es_acceptor_feed_new(pc->acc, ev);
    return rc ? es__fail(&log->h, rc, "out of memory") : 0;
}

/* Brings the writer's view of (ti, partition) up to offset end. */
static int writer_catch_up(es_log *log, kafka_log *k, topic_info *ti,
                           int32_t partition, int64_t end, part_cache **out)
{
    part_cache *pc = cache_get(&k->writers, ti, partition);
    int rc;
    if (pc == NULL) {
        int64_t lo, hi;
        if ((rc = watermarks(log, k, ti, partition, &lo, &hi)) != 0)
            return rc;
        if (lo > 0)
            return truncated(log, ti, partition, lo, "appending");
        if ((rc = cache_new(log, &k->writers, ti, partition,
                            ES_ACCEPTOR_STATE_ONLY | ES_ACCEPTOR_TRACK_IDS, &pc)))
            return rc;
    }
    *out = pc;
    rc = scan(log, k, ti, partition, pc->fed, end, 0, feed_state, pc);
    if (rc == 0 && pc->fed < end)
        pc->fed = end; /* transaction markers at the end */
    return rc;
}

static int conflict(es_log *log, const char *agg, const char *sid,
                    int64_t expected, int64_t cur)
{
    if (expected == ES_EXPECT_NO_STREAM)
        return es__fail(&log->h, ES_ECONFLICT,
                        "appending to %s/%s: version conflict: expected no "
                        "stream, stream is at %lld",
                        agg, sid, (long long)cur);
    if (cur == 0)
        return es__fail(&log->h, ES_ECONFLICT,
                        "appending to %s/%s: version conflict: expected %lld, "
                        "stream does not exist",
                        agg, sid, (long long)expected);
    return es__fail(&log->h, ES_ECONFLICT,
                    "appending to %s/%s: version conflict: expected %lld, "
                    "stream is at %lld",
                    agg, sid, (long long)expected, (long long)cur);
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

/* The commit's ids are known: a retry of a whole earlier commit of this
 * stream (a duplicate), or ids reused (ES_EINVAL). As the SQLite log. */
static int check_ids(es_log *log, kafka_log *k, topic_info *ti,
                     es_append_result *out, const char *agg, const char *sid,
                     const es_event *evs, size_t n, int *dup)
{
    es_accepted_id first, row;
    size_t i;
    *dup = 0;
    if (!find_id(k, ti, evs[0].id, &first)) {
        for (i = 1; i < n; i++)
            if (find_id(k, ti, evs[i].id, &row))
                return es__fail(&log->h, ES_EINVAL,
                                "appending to %s/%s: event %zu's id %s is already "
                                "in the log, in %s/%s at version %lld",
                                agg, sid, i + 1, evs[i].id, agg, row.stream_id,
                                (long long)row.version);
        return 0;
    }
    if (strcmp(first.stream_id, sid) != 0)
        return es__fail(&log->h, ES_EINVAL,
                        "appending to %s/%s: event 1's id %s is already in the "
                        "log, in %s/%s at version %lld",
                        agg, sid, evs[0].id, agg, first.stream_id,
                        (long long)first.version);
    if (first.commit_size != (int32_t)n || first.commit_index > 0)
        return es__fail(&log->h, ES_EINVAL,
                        "appending to %s/%s: event 1's id %s is already in this "
                        "stream at version %lld, written by a commit of %lld "
                        "events, and this commit has %zu: a retry must repeat "
                        "the whole commit",
                        agg, sid, evs[0].id, (long long)first.version,
                        (long long)first.commit_size, n);
    row = first;
    for (i = 1; i < n; i++) {
        if (!find_id(k, ti, evs[i].id, &row))
            return es__fail(&log->h, ES_EINVAL,
                            "appending to %s/%s: event 1's id %s is already in "
                            "this stream at version %lld but event %zu's id %s "
                            "is not: a retry must repeat the whole commit",
                            agg, sid, evs[0].id, (long long)first.version, i + 1,
                            evs[i].id);
        if (strcmp(row.stream_id, sid) != 0 ||
            row.version != first.version + (int64_t)i)
            return es__fail(&log->h, ES_EINVAL,
                            "appending to %s/%s: event %zu's id %s is in %s/%s "
                            "at version %lld, not where a retry of the commit "
                            "at version %lld puts it",
                            agg, sid, i + 1, evs[i].id, agg, row.stream_id,
                            (long long)row.version, (long long)first.version);
    }
    out->first_version = first.version;
    out->version = first.version + (int64_t)n - 1;
    out->first = first.position;
    out->last = row.position;
    out->duplicate = 1;
    *dup = 1;
    return 0;
}

/*
 * Produces the commit (versions set) to partition p; slots get the
 * delivery reports. Returns 0 when every event was delivered (and the
 * transaction committed), else a code with the message set; *any_delivered
 * says whether some event may be in the log regardless.
 */
static int produce(es_log *log, kafka_log *k, topic_info *ti, int32_t p,
                   const char *sid, const es_event *evs, size_t n, dr_slot *slots,
                   int *any_delivered)
{
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t err;
    size_t i;
    int rc = 0;
    /* A commit of one event: one record, atomic by itself, through the
     * idempotent producer without a transaction (docs/kafka.md). */
    int txn = k->uri.transactions && n > 1;
    rd_kafka_t *rk = k->uri.transactions && n == 1 ? k->single : k->producer;
    rd_kafka_topic_t *rkt = rk == k->single ? ti->srkt : ti->prkt;

    *any_delivered = 0;
    memset(slots, 0, n * sizeof *slots);
    if (txn && (error = rd_kafka_begin_transaction(k->producer))) {
        rc = es__fail(&log->h, ES_EIO, "kafka: appending to %s/%s: %s", ti->name,
                      sid, rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        return rc;
    }
    for (i = 0; i < n && rc == 0; i++) {
        rd_kafka_headers_t *hs = es__kafka_headers(&evs[i]);
        char *value = json_dumps(evs[i].payload, JSON_COMPACT | JSON_PRESERVE_ORDER);
        int tries = 0;
        if (hs == NULL || value == NULL) {
            if (hs)
                rd_kafka_headers_destroy(hs);
            es__free(value);
            rc = es__fail(&log->h, ES_ENOMEM, "out of memory");
            break;
        }
        do {
            err = rd_kafka_producev(
                rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(p),
                RD_KAFKA_V_KEY(sid, strlen(sid)),
                RD_KAFKA_V_VALUE(value, strlen(value)),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_TIMESTAMP(evs[i].occurred_us / 1000),
                RD_KAFKA_V_HEADERS(hs), RD_KAFKA_V_OPAQUE(&slots[i]), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 10);
        } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && ++tries < 1000);
        es__free(value);
        if (err) {
            rd_kafka_headers_destroy(hs);
            rc = es__fail(&log->h, ES_EIO, "kafka: appending to %s/%s: event %zu: %s",
                          ti->name, sid, i + 1, rd_kafka_err2str(err));
        }
    }
    rd_kafka_flush(rk, k->uri.timeout_ms);
    for (i = 0; i < n && rc == 0; i++)
        if (!slots[i].done || slots[i].err)
            rc = es__fail(&log->h, ES_EIO,
                          "kafka: appending to %s/%s: event %zu of %zu was not "
                          "written: %s",
                          ti->name, sid, i + 1, n,
                          slots[i].done ? rd_kafka_err2str(slots[i].err)
                                        : "no delivery report in time");
    for (i = 0; i < n; i++)
        if (slots[i].done && !slots[i].err)
            *any_delivered = 1;
    if (!txn) {
        char fe[256];
        if (rk == k->single && rd_kafka_fatal_error(rk, fe, sizeof fe)) {
            /* The idempotent producer cannot go on: start over next time. */
            topic_info *t;
            for (t = k->topics; t; t = t->next)
                if (t->srkt) {
                    rd_kafka_topic_destroy(t->srkt);
                    t->srkt = NULL;
                }
            rd_kafka_destroy(k->single);
            k->single = NULL;
        }
        return rc;
    }
    if (rc == 0) {
        for (int tries = 0; tries < 3; tries++) {
            error = rd_kafka_commit_transaction(k->producer, k->uri.timeout_ms);
            if (error == NULL || !rd_kafka_error_is_retriable(error))
                break;
            rd_kafka_error_destroy(error);
            error = NULL;
        }
        if (error == NULL)
            return 0;
        rc = es__fail(&log->h, ES_EIO,
                      "kafka: appending to %s/%s: committing the transaction: %s",
                      ti->name, sid, rd_kafka_error_string(error));
    }
    /* Abort what is left. The mock broker does not hide aborted records, so
     * the caller checks with the acceptance rule what counts. */
    if (error == NULL || rd_kafka_error_txn_requires_abort(error)) {
        rd_kafka_error_t *e2 = rd_kafka_abort_transaction(k->producer, k->uri.timeout_ms);
        if (e2 && rd_kafka_error_is_fatal(e2))
            k->txn_ready = 0;
        if (e2)
            rd_kafka_error_destroy(e2);
    }
    if (error && rd_kafka_error_is_fatal(error))
        k->txn_ready = 0;
    if (error)
        rd_kafka_error_destroy(error);
    if (!k->txn_ready) { /* a fatal producer error: start over next time */
        topic_info *t;
        for (t = k->topics; t; t = t->next)
            if (t->prkt) {
                rd_kafka_topic_destroy(t->prkt);
                t->prkt = NULL;
            }
        rd_kafka_destroy(k->producer);
        k->producer = NULL;
    }
    return rc;
}

static int kafka_append(es_log *log, void *self, es_append_result *out,
                        const char *agg, const char *sid, int64_t expected,
                        const es_event *events, size_t n)
{
    kafka_log *k = self;
    topic_info *ti;
    part_cache *pc;
    es_event *evs = NULL;
    dr_slot *slots = NULL;
    int32_t p;
    int rc, dup, attempt, delivered, fast;
    int64_t lo, hi, cur = 0;
    size_t i;

    if ((rc = find_topic(log, k, agg, &ti)) != 0)
        return rc;
    if (ti == NULL && (rc = create_topic(log, k, agg, &ti)) != 0)
        return rc;
    if ((rc = producer_ready(log, k)) != 0)
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
    fast = k->uri.owner && cache_get(&k->writers, ti, p) != NULL;
    for (attempt = 1;; attempt++) {
        if (fast) {
            pc = cache_get(&k->writers, ti, p);
        } else if ((rc = watermarks(log, k, ti, p, &lo, &hi)) != 0 ||
                   (rc = writer_catch_up(log, k, ti, p, hi, &pc)) != 0) {
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
        rc = produce(log, k, ti, p, sid, evs, n, slots, &delivered);
        if (rc != 0 && !delivered)
            goto done;
        {
            /* Did it win? Read up to our own last offset. */
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
            } else if ((rc = writer_catch_up(log, k, ti, p, last + 1, &pc)) != 0) {
                goto done;
            }
            if (es_acceptor_find_id(pc->acc, evs[0].id, &where) &&
                where.position.offset == slots[0].offset && slots[0].done) {
                out->first_version = cur + 1;
                out->version = cur + (int64_t)n;
                out->first.partition = p;
                out->first.offset = slots[0].offset;
                out->last.partition = p;
                out->last.offset = slots[n - 1].offset;
                out->duplicate = 0;
                es__clear(&log->h); /* a failed commit that counts anyway */
                rc = 0;
                goto done;
            }
            if (prc != 0) {
                /* It failed part way, and what arrived does not count. */
                rc = es__fail(&log->h, prc,
                              "kafka: appending to %s/%s: the commit failed "
                              "part way (what arrived does not count): %s",
                              agg, sid, failure);
                goto done;
            }
        }
        /* Lost to another writer between our read and our write. */
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

static int kafka_read_stream(es_log *log, void *self, const char *agg,
                             const char *sid, const es_read_options *opts,
                             es_event_cb cb, void *user_data)
{
    kafka_log *k = self;
    topic_info *ti;
    stream_read sr;
    int32_t p;
    int64_t lo, hi;
    int rc;

    if ((rc = find_topic(log, k, agg, &ti)) != 0 || ti == NULL)
        return rc;
    p = es_partition_for(sid, strlen(sid), ti->partitions);
    if ((rc = watermarks(log, k, ti, p, &lo, &hi)) != 0)
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
            return truncated(log, ti, p, lo, what);
        }
    }
    if (es_acceptor_new(&sr.acc, 0) != 0)
        return es__fail(&log->h, ES_ENOMEM, "out of memory");
    rc = scan(log, k, ti, p, sr.start, hi, 0, feed_stream, &sr);
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
        if ((rc = scan(log, k, pc->ti, pc->partition, pc->fed, end, BATCH,
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
    if ((rc = find_topic(log, k, agg, ti)) != 0 || *ti == NULL)
        return rc;
    if (partition >= (*ti)->partitions)
        return es__fail(&log->h, ES_EINVAL,
                        "reading %s: partition %d does not exist (topic %s has "
                        "%d partitions)",
                        agg, (int)partition, (*ti)->name, (int)(*ti)->partitions);
    return watermarks(log, k, *ti, partition, lo, hi);
}

static int kafka_read_partition(es_log *log, void *self, int64_t *next_offset,
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
    pc = cache_get(&k->followers, ti, partition);
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
            return truncated(log, ti, partition, lo, "reading a partition");
        if ((rc = cache_new(log, &k->followers, ti, partition, 0, &pc)) != 0)
            return rc;
    }
    return follow(log, k, pc, from_offset, hi, max_events, 0, next_offset,
                  deliver_accepted, &ctx);
}

static int kafka_scan_partition(es_log *log, void *self, int64_t *next_offset,
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
        return truncated(log, ti, partition, lo, "scanning a partition");
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

/* ---- metadata ------------------------------------------------------------ */

static int kafka_partition_count(es_log *log, void *self, int32_t *out,
                                 const char *agg)
{
    kafka_log *k = self;
    topic_info *ti;
    int rc = find_topic(log, k, agg, &ti);
    if (rc == 0)
        *out = ti ? ti->partitions : k->uri.partitions;
    return rc;
}

static int kafka_head(es_log *log, void *self, int64_t *out, const char *agg,
                      int32_t partition)
{
    kafka_log *k = self;
    topic_info *ti;
    int64_t lo;
    int rc;
    *out = 0;
    if ((rc = find_topic(log, k, agg, &ti)) != 0 || ti == NULL)
        return rc;
    if (partition >= ti->partitions)
        return es__fail(&log->h, ES_EINVAL,
                        "head of %s: partition %d does not exist (topic %s has "
                        "%d partitions)",
                        agg, (int)partition, ti->name, (int)ti->partitions);
    return watermarks(log, k, ti, partition, &lo, out);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int kafka_types(es_log *log, void *self, es_name_cb cb, void *user_data)
{
    kafka_log *k = self;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err;
    const char **names = NULL;
    size_t plen = strlen(k->uri.prefix), n = 0;
    int rc = 0, i, j;

    err = rd_kafka_metadata(k->consumer, 1, NULL, &md, k->uri.timeout_ms);
    if (err)
        return es__fail(&log->h, ES_EIO, "kafka: listing topics: %s",
                        rd_kafka_err2str(err));
    if ((names = es__calloc((size_t)md->topic_cnt + 1, sizeof *names)) == NULL) {
        rd_kafka_metadata_destroy(md);
        return es__fail(&log->h, ES_ENOMEM, "out of memory");
    }
    for (i = 0; i < md->topic_cnt; i++) {
        const struct rd_kafka_metadata_topic *t = &md->topics[i];
        const char *name = t->topic;
        size_t len = strlen(name);
        int has = 0;
        if (t->err || strncmp(name, k->uri.prefix, plen) != 0 || len == plen ||
            name[0] == '_' ||
            (len >= 10 && strcmp(name + len - 10, ".snapshots") == 0))
            continue;
        for (j = 0; j < t->partition_cnt && !has; j++) {
            int64_t lo, hi;
            if (rd_kafka_query_watermark_offsets(k->consumer, name,
                                                 t->partitions[j].id, &lo, &hi,
                                                 k->uri.timeout_ms) == 0 &&
                hi > 0)
                has = 1;
        }
        if (has)
            names[n++] = name + plen;
    }
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t x = 0; x < n && rc == 0; x++)
        if (cb(names[x], user_data) != 0)
            rc = es__fail(&log->h, ES_EUSER, "listing types: stopped by the callback");
    es__free(names);
    rd_kafka_metadata_destroy(md);
    return rc;
}

const es__log_backend es__kafka_log_backend = {
    .name = "kafka",
    .open = kafka_open,
    .close = kafka_close,
    .append = kafka_append,
    .read_stream = kafka_read_stream,
    .read_partition = kafka_read_partition,
    .partition_count = kafka_partition_count,
    .head = kafka_head,
    .types = kafka_types,
    .scan_partition = kafka_scan_partition,
};

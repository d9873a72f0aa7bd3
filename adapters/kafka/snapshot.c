/*
 * adapters/kafka/snapshot.c - the snapshot store on Kafka: a compacted
 * topic <prefix><type>.snapshots per aggregate type, key = stream id,
 * value = the snapshot as one JSON object (docs/snapshots.md), timestamp =
 * when it was taken. A stream's snapshots go to the partition its key
 * hashes to (murmur2, as its events).
 *
 * Kafka has no index by key, so the store keeps what it read in memory: per
 * topic and partition the offset read up to, and per stream its newest
 * KEEP snapshots (a table built from the topic, as a Kafka Streams KTable
 * is). Every listing first reads the stream's partition from there to the
 * end. Compaction keeps the newest record of each key, so once it has run
 * a stream has one snapshot, its newest: a load bounded below it folds from
 * origin. prune --keep N >= 1 leaves that to compaction (nothing is
 * removed); --keep 0 writes tombstones.
 *
 * The URI is the log's: kafka://host:port[,host:port]?prefix=P&... (see
 * adapters/kafka/kafka.h); partitions= and replication= apply to the
 * snapshot topics it creates (with cleanup.policy=compact where the cluster
 * has the Admin API; librdkafka's mock broker creates them on first use).
 * The producer is idempotent, not transactional: a snapshot is one record,
 * and a save waits for its delivery report.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "esfold/partition.h"
#include "core/map.h"
#include "kafka.h"
#include "snapshots/store_backend.h"

#define SUFFIX ".snapshots"
#define KEEP 8     /* snapshots kept in memory per stream, newest */
#define BATCH 256

typedef struct entry {
    char *stream_id;        /* the key in ktopic.streams */
    es_snapshot *snaps[KEEP]; /* newest first */
    int n;
} entry;

typedef struct ktopic {
    char *type;
    char *name;
    int32_t partitions;     /* 0: not on the cluster (yet) */
    rd_kafka_topic_t *crkt; /* on the consumer */
    int64_t *next;          /* per partition: the next offset to read */
    es__map streams;        /* stream id -> entry */
    struct ktopic *next_topic;
} ktopic;

typedef struct kafka_snapshots {
    es__kafka_uri uri;
    rd_kafka_t *producer;
    rd_kafka_t *consumer;
    ktopic *topics;
    int mock; /* librdkafka's mock cluster; -1: not known yet */
} kafka_snapshots;

typedef struct dr_slot {
    int done;
    rd_kafka_resp_err_t err;
} dr_slot;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- The table of a topic ------------------------------------------------ */

static void entry_clear(entry *e)
{
    for (int i = 0; i < e->n; i++)
        es_snapshot_free(e->snaps[i]);
    e->n = 0;
}

static entry *entry_find(ktopic *t, const char *id)
{
    return es__map_get(&t->streams, id);
}

static entry *entry_get(ktopic *t, const char *id)
{
    entry *e = es__map_get(&t->streams, id);
    return e ? e : es__map_add_entry(&t->streams, id, sizeof *e,
                                     offsetof(entry, stream_id));
}

/* Keeps snap (owned) among e's newest, replacing the same version. */
static void entry_put(entry *e, es_snapshot *snap)
{
    int i, j;
    for (i = 0; i < e->n; i++) {
        if (e->snaps[i]->version == snap->version) {
            es_snapshot_free(e->snaps[i]);
            e->snaps[i] = snap;
            return;
        }
        if (e->snaps[i]->version < snap->version)
            break;
    }
    if (i == KEEP) {
        es_snapshot_free(snap); /* older than all we keep */
        return;
    }
    if (e->n == KEEP)
        es_snapshot_free(e->snaps[--e->n]);
    for (j = e->n; j > i; j--)
        e->snaps[j] = e->snaps[j - 1];
    e->snaps[i] = snap;
    e->n++;
}

static void topic_free(ktopic *t)
{
    void *v;
    for (size_t i = 0; es__map_next(&t->streams, &i, NULL, &v);) {
        entry *e = v;
        entry_clear(e);
        es__free(e->stream_id);
        es__free(e);
    }
    if (t->crkt)
        rd_kafka_topic_destroy(t->crkt);
    es__map_free(&t->streams);
    es__free(t->next);
    es__free(t->name);
    es__free(t->type);
    es__free(t);
}

/* ---- Records <-> snapshots ----------------------------------------------- */

static char *encode(const es_snapshot *s)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:{s:i, s:I}, s:s, s:I, s:I, s:i, "
                          "s:s, s:s, s:I}",
                          "aggregate_type", s->aggregate_type,
                          "stream_id", s->stream_id,
                          "version", (json_int_t)s->version,
                          "position", "partition", (int)s->position.partition,
                          "offset", (json_int_t)s->position.offset,
                          "event_id", s->event_id,
                          "time_us", (json_int_t)s->time_us,
                          "horizon_us", (json_int_t)s->horizon_us,
                          "state_schema", (int)s->state_schema,
                          "state", s->state, "checksum", s->checksum,
                          "taken_us", (json_int_t)s->taken_us);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

static const char *str_of(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static int64_t int_of(json_t *o, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(o, key));
}

/*
 * A record's snapshot (es_snapshot_free). A value that is not a snapshot
 * still becomes one, with what could be read and no checksum, so that
 * loads report it (es_snapshot_verify) instead of not seeing it. NULL when
 * out of memory.
 */
static es_snapshot *decode(const rd_kafka_message_t *m, const char *type,
                           const char *stream_id)
{
    json_t *o = json_loadb(m->payload, m->len, 0, NULL), *pos;
    es_snapshot s, *out;

    memset(&s, 0, sizeof s);
    s.aggregate_type = type;
    s.stream_id = stream_id;
    s.event_id = "";
    s.state = "";
    s.checksum = "";
    if (json_is_object(o)) {
        pos = json_object_get(o, "position");
        s.aggregate_type = str_of(o, "aggregate_type");
        s.stream_id = str_of(o, "stream_id");
        s.version = int_of(o, "version");
        s.position.partition = (int32_t)int_of(pos, "partition");
        s.position.offset = int_of(pos, "offset");
        s.event_id = str_of(o, "event_id");
        s.time_us = int_of(o, "time_us");
        s.horizon_us = int_of(o, "horizon_us");
        s.state_schema = (int32_t)int_of(o, "state_schema");
        s.state = str_of(o, "state");
        s.checksum = str_of(o, "checksum");
        s.taken_us = int_of(o, "taken_us");
    }
    out = es__snapshot_dup(&s);
    json_decref(o);
    return out;
}

/* ---- Topics ---------------------------------------------------------------- */

/* The partition count of topic name on the cluster, 0 when it does not
 * exist. Asks for every topic: naming one would make the mock create it. */
static int partition_count(es_snapshot_store *store, kafka_snapshots *k,
                           const char *name, int32_t *out)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err;
    *out = 0;
    err = rd_kafka_metadata(k->consumer, 1, NULL, &md, k->uri.timeout_ms);
    if (err)
        return es__fail(&store->h, ES_EIO, "%s: metadata: %s",
                        es__snapshot_store_name(store), rd_kafka_err2str(err));
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, name) == 0 &&
            md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
            *out = md->topics[i].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return 0;
}

/* The topic of type; (*out)->partitions 0 when it is not on the cluster. */
static int topic_of(es_snapshot_store *store, kafka_snapshots *k,
                    const char *type, ktopic **out)
{
    ktopic *t;
    int rc;

    *out = NULL;
    for (t = k->topics; t; t = t->next_topic)
        if (strcmp(t->type, type) == 0)
            break;
    if (t == NULL) {
        if ((t = es__calloc(1, sizeof *t)) == NULL ||
            (t->type = es__strdup(type)) == NULL ||
            (t->name = es__sprintf("%s%s" SUFFIX, k->uri.prefix, type)) == NULL) {
            if (t)
                topic_free(t);
            return es__fail(&store->h, ES_ENOMEM, "out of memory");
        }
        t->next_topic = k->topics;
        k->topics = t;
    }
    if (t->partitions == 0) {
        int32_t n;
        if ((rc = partition_count(store, k, t->name, &n)) != 0)
            return rc;
        if (n > 0) {
            if ((t->next = es__calloc((size_t)n, sizeof *t->next)) == NULL)
                return es__fail(&store->h, ES_ENOMEM, "out of memory");
            if ((t->crkt = rd_kafka_topic_new(k->consumer, t->name, NULL)) == NULL)
                return es__fail(&store->h, ES_EIO, "%s: topic %s: %s",
                                es__snapshot_store_name(store), t->name,
                                rd_kafka_err2str(rd_kafka_last_error()));
            t->partitions = n;
        }
    }
    *out = t;
    return 0;
}

/* Creates the compacted topic of t (Admin API where there is one, else the
 * broker's automatic creation) and waits until the cluster shows it. */
static int topic_create(es_snapshot_store *store, kafka_snapshots *k, ktopic *t)
{
    rd_kafka_NewTopic_t *nt;
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;
    rd_kafka_topic_t *prkt;
    char errstr[512];
    int64_t deadline;
    int rc;

    nt = rd_kafka_NewTopic_new(t->name, k->uri.partitions, k->uri.replication,
                               errstr, sizeof errstr);
    if (nt == NULL)
        return es__fail(&store->h, ES_EINVAL, "%s: creating topic %s: %s",
                        es__snapshot_store_name(store), t->name, errstr);
    if (k->mock < 0) {
        /* librdkafka's mock cluster names itself so; it has no Admin API
         * (a CreateTopics request would wait for a controller forever). */
        char *id = rd_kafka_clusterid(k->consumer, k->uri.timeout_ms);
        k->mock = id && strncmp(id, "mockCluster", 11) == 0;
        if (id)
            rd_kafka_mem_free(k->consumer, id);
    }
    if (!k->mock) {
        rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
        q = rd_kafka_queue_new(k->producer);
        rd_kafka_CreateTopics(k->producer, &nt, 1, NULL, q);
        /* Success, "exists" or a refusal: the wait below tells. */
        if ((ev = rd_kafka_queue_poll(q, k->uri.timeout_ms)) != NULL)
            rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
    }
    rd_kafka_NewTopic_destroy(nt);
    /* Naming the topic in a metadata request creates it on a broker that
     * auto-creates topics. */
    if ((prkt = rd_kafka_topic_new(k->producer, t->name, NULL)) != NULL) {
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(k->producer, 0, prkt, &md, k->uri.timeout_ms) == 0)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(prkt);
    }
    deadline = now_ms() + k->uri.timeout_ms;
    for (;;) {
        ktopic *again;
        if ((rc = topic_of(store, k, t->type, &again)) != 0)
            return rc;
        if (again->partitions > 0)
            return 0;
        if (now_ms() > deadline)
            return es__fail(&store->h, ES_EIO, "%s: topic %s does not exist and "
                            "could not be created (create it compacted with "
                            "`esfold topics create`)",
                            es__snapshot_store_name(store), t->name);
        rd_kafka_poll(k->producer, 50);
    }
}

/* ---- Reading a partition into the table ------------------------------------ */

static int take_record(es_snapshot_store *store, ktopic *t,
                       const rd_kafka_message_t *m)
{
    char id[ES_STREAM_ID_MAX + 1];
    es_snapshot *snap;
    entry *e;

    if (m->key == NULL || m->key_len == 0 || m->key_len > ES_STREAM_ID_MAX)
        return 0; /* not ours */
    memcpy(id, m->key, m->key_len);
    id[m->key_len] = '\0';
    if (m->payload == NULL) { /* a tombstone */
        if ((e = entry_find(t, id)) != NULL)
            entry_clear(e);
        return 0;
    }
    if ((e = entry_get(t, id)) == NULL || (snap = decode(m, t->type, id)) == NULL)
        return es__fail(&store->h, ES_ENOMEM, "out of memory");
    entry_put(e, snap);
    return 0;
}

/*
 * Reads partition p of t into the table up to its end: until the fetcher
 * says it reached the end (a partition EOF at or after our offset), which it
 * learns from a fetch made after this call began, so that every snapshot
 * saved before it (ours: a save waits for its acknowledgement) is seen. No
 * ListOffsets request: on librdkafka's mock broker it waits tens of
 * milliseconds after a write.
 */
static int catch_up(es_snapshot_store *store, kafka_snapshots *k, ktopic *t,
                    int32_t p)
{
    rd_kafka_message_t *msgs[BATCH];
    int64_t deadline;
    int rc = 0, at_end = 0;

    if (rd_kafka_consume_start(t->crkt, p, t->next[p]) == -1)
        return es__fail(&store->h, ES_EIO, "%s: reading %s partition %d: %s",
                        es__snapshot_store_name(store), t->name, (int)p,
                        rd_kafka_err2str(rd_kafka_last_error()));
    deadline = now_ms() + k->uri.timeout_ms;
    while (rc == 0 && !at_end) {
        /* What is there already, else wait for one: consume_batch with a
         * timeout would wait for a whole batch. */
        ssize_t n = rd_kafka_consume_batch(t->crkt, p, 0, msgs, BATCH);
        if (n == 0) {
            if ((msgs[0] = rd_kafka_consume(t->crkt, p, 100)) != NULL)
                n = 1;
            else if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__TIMED_OUT)
                n = -1;
        }
        if (n < 0) {
            rc = es__fail(&store->h, ES_EIO, "%s: reading %s partition %d: %s",
                          es__snapshot_store_name(store), t->name, (int)p,
                          rd_kafka_err2str(rd_kafka_last_error()));
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            if (rc == 0 && m->err == 0 && m->offset >= t->next[p]) {
                rc = take_record(store, t, m);
                t->next[p] = m->offset + 1;
                deadline = now_ms() + k->uri.timeout_ms;
            } else if (rc == 0 && m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (m->offset >= t->next[p]) { /* past any markers */
                    t->next[p] = m->offset;
                    at_end = 1;
                }
            } else if (rc == 0 && m->err) {
                rc = es__fail(&store->h, ES_EIO, "%s: reading %s partition %d: %s",
                              es__snapshot_store_name(store), t->name, (int)p,
                              rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
        }
        if (rc == 0 && !at_end && now_ms() > deadline)
            rc = es__fail(&store->h, ES_EIO, "%s: reading %s partition %d from "
                          "offset %" PRId64 ": no answer within %d ms",
                          es__snapshot_store_name(store), t->name, (int)p,
                          t->next[p], k->uri.timeout_ms);
    }
    /* Caught up: stop fetching. An idle fetch is a request the broker
     * holds for fetch.wait.max.ms, and the next request on the connection
     * would wait behind it. */
    rd_kafka_consume_stop(t->crkt, p);
    return rc;
}

/* ---- The backend ------------------------------------------------------------ */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    dr_slot *slot = m->_private;
    (void)rk;
    (void)opaque;
    if (slot) {
        slot->done = 1;
        slot->err = m->err;
    }
}

static void ks_close(void *self)
{
    kafka_snapshots *k = self;
    if (k == NULL)
        return;
    while (k->topics) {
        ktopic *t = k->topics;
        k->topics = t->next_topic;
        topic_free(t);
    }
    if (k->producer) {
        rd_kafka_flush(k->producer, k->uri.timeout_ms);
        rd_kafka_destroy(k->producer);
    }
    if (k->consumer)
        rd_kafka_destroy(k->consumer);
    es__kafka_uri_free(&k->uri);
    es__free(k);
}

static int ks_open(es_snapshot_store *store, void **self, const char *uri)
{
    const char *pextra[] = { "enable.idempotence", "true", "linger.ms", "0", NULL };
    const char *cextra[] = {
        "enable.partition.eof", "true", "enable.auto.commit", "false",
        "auto.offset.reset", "earliest", /* compacted away: the oldest kept */
        "enable.auto.offset.store", "false", "fetch.wait.max.ms", "1",
        "fetch.error.backoff.ms", "10",
        "group.id", "esfold-snapshots", NULL
    };
    kafka_snapshots *k;
    rd_kafka_conf_t *conf;
    char errstr[512];
    int rc;

    *self = NULL;
    if ((k = es__calloc(1, sizeof *k)) == NULL)
        return es__fail(&store->h, ES_ENOMEM, "out of memory");
    k->mock = -1;
    if ((rc = es__kafka_uri_parse(&k->uri, uri, &store->h)) != 0) {
        es__free(k);
        return rc;
    }
    if ((conf = es__kafka_conf(&k->uri, pextra, errstr, sizeof errstr)) == NULL) {
        rc = es__fail(&store->h, ES_EINVAL, "%s: producer settings: %s",
                      es__snapshot_store_name(store), errstr);
        goto fail;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    if ((k->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr,
                                    sizeof errstr)) == NULL) {
        rd_kafka_conf_destroy(conf);
        rc = es__fail(&store->h, ES_EIO, "%s: making a producer: %s",
                      es__snapshot_store_name(store), errstr);
        goto fail;
    }
    if ((conf = es__kafka_conf(&k->uri, cextra, errstr, sizeof errstr)) == NULL) {
        rc = es__fail(&store->h, ES_EINVAL, "%s: consumer settings: %s",
                      es__snapshot_store_name(store), errstr);
        goto fail;
    }
    if ((k->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr,
                                    sizeof errstr)) == NULL) {
        rd_kafka_conf_destroy(conf);
        rc = es__fail(&store->h, ES_EIO, "%s: making a consumer: %s",
                      es__snapshot_store_name(store), errstr);
        goto fail;
    }
    *self = k;
    return 0;
fail:
    ks_close(k);
    return rc;
}

static int ks_save(es_snapshot_store *store, void *self, const es_snapshot *snap)
{
    kafka_snapshots *k = self;
    dr_slot *slot;
    rd_kafka_resp_err_t err;
    ktopic *t;
    char *value;
    int64_t deadline;
    int rc;

    if ((rc = topic_of(store, k, snap->aggregate_type, &t)) != 0)
        return rc;
    if (t->partitions == 0 && (rc = topic_create(store, k, t)) != 0)
        return rc;
    if ((value = encode(snap)) == NULL)
        return es__fail(&store->h, ES_ENOMEM, "out of memory");
    /* On the heap: a record not delivered in time still has a report to
     * come, which must find its slot. */
    if ((slot = es__calloc(1, sizeof *slot)) == NULL) {
        es__free(value);
        return es__fail(&store->h, ES_ENOMEM, "out of memory");
    }
    err = rd_kafka_producev(
        k->producer, RD_KAFKA_V_TOPIC(t->name),
        RD_KAFKA_V_PARTITION(es_partition_for(snap->stream_id,
                                              strlen(snap->stream_id),
                                              t->partitions)),
        RD_KAFKA_V_KEY(snap->stream_id, strlen(snap->stream_id)),
        RD_KAFKA_V_VALUE(value, strlen(value)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_TIMESTAMP(snap->taken_us / 1000), RD_KAFKA_V_OPAQUE(slot),
        RD_KAFKA_V_END);
    es__free(value);
    if (err) {
        es__free(slot);
        return es__fail(&store->h, ES_EIO, "%s: saving the snapshot of %s/%s at "
                        "version %lld: %s", es__snapshot_store_name(store),
                        snap->aggregate_type, snap->stream_id,
                        (long long)snap->version, rd_kafka_err2str(err));
    }
    deadline = now_ms() + k->uri.timeout_ms;
    while (!slot->done && now_ms() < deadline)
        rd_kafka_poll(k->producer, 10);
    if (!slot->done) {
        /* Purged records are reported on the next polls. */
        rd_kafka_purge(k->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        deadline = now_ms() + 1000;
        while (!slot->done && now_ms() < deadline)
            rd_kafka_poll(k->producer, 10);
        rc = es__fail(&store->h, ES_EIO, "%s: saving the snapshot of %s/%s at "
                      "version %lld: not delivered within %d ms",
                      es__snapshot_store_name(store), snap->aggregate_type,
                      snap->stream_id, (long long)snap->version,
                      k->uri.timeout_ms);
        if (slot->done)
            es__free(slot); /* else leaked: its report may still come */
        return rc;
    }
    rc = 0;
    if (slot->err)
        rc = es__fail(&store->h, ES_EIO, "%s: saving the snapshot of %s/%s at "
                      "version %lld: %s", es__snapshot_store_name(store),
                      snap->aggregate_type, snap->stream_id,
                      (long long)snap->version, rd_kafka_err2str(slot->err));
    es__free(slot);
    return rc;
}

static int ks_list(es_snapshot_store *store, void *self, const char *type,
                   const char *stream_id, int64_t max_version,
                   int64_t max_horizon, size_t limit, es_snapshot_cb cb,
                   void *user_data)
{
    kafka_snapshots *k = self;
    es_snapshot *copy[KEEP];
    size_t listed = 0;
    int n = 0, rc;
    ktopic *t;
    entry *e;

    if ((rc = topic_of(store, k, type, &t)) != 0)
        return rc;
    if (t->partitions == 0)
        return 0;
    if ((rc = catch_up(store, k, t,
                       es_partition_for(stream_id, strlen(stream_id),
                                        t->partitions))) != 0)
        return rc;
    if ((e = entry_find(t, stream_id)) == NULL)
        return 0;
    /* Copies: a callback may list again, and change the table. */
    for (int i = 0; i < e->n; i++) {
        if (e->snaps[i]->version > max_version || e->snaps[i]->horizon_us > max_horizon)
            continue;
        if ((copy[n] = es__snapshot_dup(e->snaps[i])) == NULL) {
            rc = es__fail(&store->h, ES_ENOMEM, "out of memory");
            break;
        }
        n++;
    }
    for (int i = 0; rc == 0 && i < n && (limit == 0 || listed < limit); i++, listed++)
        if (cb(copy[i], user_data) != 0)
            rc = ES_EUSER;
    for (int i = 0; i < n; i++)
        es_snapshot_free(copy[i]);
    return rc;
}

/* Tombstones for every stream of t (or the one stream) that has snapshots. */
static int tombstones(es_snapshot_store *store, kafka_snapshots *k, ktopic *t,
                      const char *stream_id, int64_t *removed)
{
    int rc;
    for (int32_t p = 0; p < t->partitions; p++)
        if ((rc = catch_up(store, k, t, p)) != 0)
            return rc;
    void *v;
    for (size_t i = 0; es__map_next(&t->streams, &i, NULL, &v);) {
        entry *e = v;
        rd_kafka_resp_err_t err;
        if (e->n == 0 ||
            (stream_id && strcmp(stream_id, e->stream_id) != 0))
            continue;
        err = rd_kafka_producev(
            k->producer, RD_KAFKA_V_TOPIC(t->name),
            RD_KAFKA_V_PARTITION(es_partition_for(e->stream_id,
                                                  strlen(e->stream_id),
                                                  t->partitions)),
            RD_KAFKA_V_KEY(e->stream_id, strlen(e->stream_id)),
            RD_KAFKA_V_VALUE(NULL, 0), RD_KAFKA_V_END);
        if (err)
            return es__fail(&store->h, ES_EIO, "%s: pruning %s: %s",
                            es__snapshot_store_name(store), t->name,
                            rd_kafka_err2str(err));
        *removed += e->n;
    }
    if (rd_kafka_flush(k->producer, k->uri.timeout_ms) != 0)
        return es__fail(&store->h, ES_EIO, "%s: pruning %s: the tombstones were "
                        "not delivered within %d ms",
                        es__snapshot_store_name(store), t->name, k->uri.timeout_ms);
    return 0;
}

static int ks_prune(es_snapshot_store *store, void *self, int64_t *removed,
                    const char *type, const char *stream_id, int64_t keep)
{
    kafka_snapshots *k = self;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err;
    size_t plen = strlen(k->uri.prefix), slen = strlen(SUFFIX);
    ktopic *t;
    int rc = 0;

    /* Compaction keeps the newest of each stream: nothing to do here. */
    if (keep >= 1)
        return 0;
    if (type) {
        if ((rc = topic_of(store, k, type, &t)) != 0 || t->partitions == 0)
            return rc;
        return tombstones(store, k, t, stream_id, removed);
    }
    /* Every type: every <prefix>*.snapshots topic. */
    err = rd_kafka_metadata(k->consumer, 1, NULL, &md, k->uri.timeout_ms);
    if (err)
        return es__fail(&store->h, ES_EIO, "%s: metadata: %s",
                        es__snapshot_store_name(store), rd_kafka_err2str(err));
    for (int i = 0; rc == 0 && i < md->topic_cnt; i++) {
        const char *name = md->topics[i].topic;
        size_t len = strlen(name);
        char *tname;
        if (len <= plen + slen || strncmp(name, k->uri.prefix, plen) != 0 ||
            strcmp(name + len - slen, SUFFIX) != 0)
            continue;
        if ((tname = es__strndup(name + plen, len - plen - slen)) == NULL) {
            rc = es__fail(&store->h, ES_ENOMEM, "out of memory");
            break;
        }
        if ((rc = topic_of(store, k, tname, &t)) == 0 && t->partitions > 0)
            rc = tombstones(store, k, t, NULL, removed);
        es__free(tname);
    }
    rd_kafka_metadata_destroy(md);
    return rc;
}

const es__snapshot_backend es__kafka_snapshot_backend = {
    .name = "kafka",
    .open = ks_open,
    .close = ks_close,
    .save = ks_save,
    .list = ks_list,
    .prune = ks_prune,
};

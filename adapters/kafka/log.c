/*
 * adapters/kafka/log.c - the event log on Apache Kafka (librdkafka): open,
 * close, metadata and the backend table. The work is done by the pieces
 * klog.h lists: record.c judges every record the same way for every
 * reader and for the writer's confirmation; writer.c appends; reader.c
 * reads streams and partitions.
 *
 * One consumer (the legacy per-partition API: no consumer group) does all
 * reading; it stays on the partition it read last, so that a writer or a
 * follower that goes on where it stopped costs no new fetch start.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "klog.h"


static void kafka_close(void *self)
{
    kafka_log *k = self;
    topic_info *ti, *tnext;
    if (k == NULL)
        return;
    if (k->consumer)
        es__kfetch_stop(k);
    es__kcache_free_all(k->writers);
    es__kcache_free_all(k->followers);
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
    char errstr[512], group[64], uuid[ES_UUID_BUFSZ], timeout[16], backoff[16];
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
        /* Reconnect at least every timeout_ms / 4: librdkafka's default
         * backoff grows to 10 s, and a broker back after an outage would
         * stay unused for longer than a call may wait. */
        "reconnect.backoff.max.ms", backoff,
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
    snprintf(backoff, sizeof backoff, "%d",
             k->uri.timeout_ms / 4 > 100 ? k->uri.timeout_ms / 4 : 100);
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
        if ((rc = es__ktopic_check_count(log, k, name, md->topics[i].partition_cnt)) != 0) {
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

/* ---- metadata ------------------------------------------------------------ */

static int kafka_partition_count(es_log *log, void *self, int32_t *out,
                                 const char *agg)
{
    kafka_log *k = self;
    topic_info *ti;
    int rc = es__ktopic_find(log, k, agg, &ti);
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
    if ((rc = es__ktopic_find(log, k, agg, &ti)) != 0 || ti == NULL)
        return rc;
    if (partition >= ti->partitions)
        return es__fail(&log->h, ES_EINVAL,
                        "head of %s: partition %d does not exist (topic %s has "
                        "%d partitions)",
                        agg, (int)partition, ti->name, (int)ti->partitions);
    return es__ktopic_watermarks(log, k, ti, partition, &lo, out);
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
            int64_t hi;
            if (es__ktopic_offset(k, name, t->partitions[j].id,
                                  RD_KAFKA_OFFSET_END, &hi) == 0 &&
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
    .append = es__kafka_append,
    .read_stream = es__kafka_read_stream,
    .read_partition = es__kafka_read_partition,
    .read_partition_seeded = es__kafka_read_partition_seeded,
    .partition_count = kafka_partition_count,
    .head = kafka_head,
    .types = kafka_types,
    .scan_partition = es__kafka_scan_partition,
    .find_id = es__kafka_find_id,
    .group_open = es__kafka_group_open,
    .group_poll = es__kafka_group_poll,
    .group_owns = es__kafka_group_owns,
    .group_close = es__kafka_group_close,
};

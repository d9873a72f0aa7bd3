/*
 * adapters/kafka/group.c - consumer-group membership for projection
 * workers (core/log_backend.h: group_open, group_poll, group_owns,
 * group_close).
 *
 * A member is a consumer of its own (rd_kafka_subscribe on the topics of
 * the followed types) used only to learn which partitions the group gives
 * it: it never fetches (the partitions it is assigned are paused at once)
 * and never commits offsets (a projection's progress lives in its target).
 * The log's own consumer does the reading, as for every reader.
 *
 * Rebalances are eager (roundrobin): on a revocation the callback drops
 * every partition, on an assignment it takes the new list. The callback
 * only runs inside group_poll, which the worker calls between batches, so
 * a batch is never cut by a revocation: it has committed (or rolled back)
 * before the worker learns it lost the partition.
 *
 * session.timeout.ms is the worker's lease_ms (how long a member that died
 * keeps its partitions); max.poll.interval.ms stays generous (5 minutes),
 * since a member polls only between batches.
 */
#include <stdio.h>
#include <string.h>

#include "core/log_backend.h"
#include "klog.h"

typedef struct kgroup {
    es_log *log;
    kafka_log *k;
    rd_kafka_t *rk;
    rd_kafka_topic_partition_list_t *owned; /* NULL: none */
    int changed;
} kgroup;

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    kgroup *g = opaque;
    if (g->owned) {
        rd_kafka_topic_partition_list_destroy(g->owned);
        g->owned = NULL;
    }
    g->changed = 1;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        /* Paused at the end of the partition: the assignment is what we
         * want, not its records. */
        for (int i = 0; i < parts->cnt; i++)
            parts->elems[i].offset = RD_KAFKA_OFFSET_END;
        rd_kafka_assign(rk, parts);
        rd_kafka_pause_partitions(rk, parts);
        g->owned = rd_kafka_topic_partition_list_copy(parts);
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

void es__kafka_group_close(void *self)
{
    kgroup *g = self;
    if (g == NULL)
        return;
    if (g->rk) {
        rd_kafka_consumer_close(g->rk); /* leaves the group */
        rd_kafka_destroy(g->rk);
    }
    if (g->owned)
        rd_kafka_topic_partition_list_destroy(g->owned);
    es__free(g);
}

int es__kafka_group_open(es_log *log, void *self, void **out,
                         const char *group_id, const char *const *types,
                         int session_ms)
{
    kafka_log *k = self;
    kgroup *g;
    rd_kafka_conf_t *conf;
    rd_kafka_topic_partition_list_t *topics = NULL;
    rd_kafka_resp_err_t err;
    char errstr[512], session[16], beat[16];
    int rc = 0;
    const char *extra[] = {
        "group.id", group_id,
        "enable.auto.commit", "false",
        "enable.auto.offset.store", "false",
        "partition.assignment.strategy", "roundrobin",
        "session.timeout.ms", session,
        "heartbeat.interval.ms", beat,
        "max.poll.interval.ms", "300000",
        /* A followed topic made after the worker opened joins soon. */
        "topic.metadata.refresh.interval.ms", "5000",
        NULL,
    };

    *out = NULL;
    snprintf(session, sizeof session, "%d", session_ms);
    snprintf(beat, sizeof beat, "%d", session_ms / 3 > 0 ? session_ms / 3 : 1);
    if ((g = es__calloc(1, sizeof *g)) == NULL)
        return es__fail(&log->h, ES_ENOMEM, "out of memory");
    g->log = log;
    g->k = k;
    if ((conf = es__kafka_conf(&k->uri, extra, errstr, sizeof errstr)) == NULL) {
        rc = es__fail(&log->h, ES_EINVAL, "group %s: %s", group_id, errstr);
        goto done;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, g);
    if ((g->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr,
                              sizeof errstr)) == NULL) {
        rd_kafka_conf_destroy(conf);
        rc = es__fail(&log->h, ES_EIO, "group %s: %s", group_id, errstr);
        goto done;
    }
    topics = rd_kafka_topic_partition_list_new(4);
    for (size_t i = 0; types[i]; i++) {
        char name[512];
        snprintf(name, sizeof name, "%s%s", k->uri.prefix, types[i]);
        rd_kafka_topic_partition_list_add(topics, name, RD_KAFKA_PARTITION_UA);
    }
    if ((err = rd_kafka_subscribe(g->rk, topics)) != 0)
        rc = es__fail(&log->h, ES_EIO, "group %s: subscribing: %s", group_id,
                      rd_kafka_err2str(err));
done:
    if (topics)
        rd_kafka_topic_partition_list_destroy(topics);
    if (rc != 0) {
        es__kafka_group_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

int es__kafka_group_poll(es_log *log, void *self, int *changed)
{
    kgroup *g = self;
    rd_kafka_message_t *m;
    (void)log;
    /* Serves what is pending: the rebalance callback runs in here. A
     * record cannot come (every partition is paused); an error event
     * (a followed topic that does not exist yet) is not the worker's. */
    for (int i = 0; i < 16 && (m = rd_kafka_consumer_poll(g->rk, 0)) != NULL;
         i++)
        rd_kafka_message_destroy(m);
    *changed = g->changed;
    g->changed = 0;
    return 0;
}

int es__kafka_group_owns(void *self, const char *agg, int32_t partition)
{
    kgroup *g = self;
    size_t plen = strlen(g->k->uri.prefix);
    for (int i = 0; g->owned && i < g->owned->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &g->owned->elems[i];
        if (p->partition == partition &&
            strncmp(p->topic, g->k->uri.prefix, plen) == 0 &&
            strcmp(p->topic + plen, agg) == 0)
            return 1;
    }
    return 0;
}

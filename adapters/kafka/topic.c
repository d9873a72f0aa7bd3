/*
 * adapters/kafka/topic.c - topics of the event log: partition counts, watermarks, creation (klog.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "esfold/partition.h"
#include "klog.h"

/*
 * librdkafka 2.0.2's rd_kafka_query_watermark_offsets does not keep to its
 * timeout when the broker is gone: with the broker killed (connection
 * refused, reconnecting) or frozen (SIGSTOP), a query with a 3000 ms
 * timeout did not return in 300 s; the metadata request before it only
 * narrowed the window (a broker that dies between the two still hung the
 * query: the 72 s appends of issue 7). rd_kafka_offsets_for_times with the
 * special timestamps -2 (earliest) and -1 (latest) sends the same
 * ListOffsets request and does keep its timeout (3.0 s, every time, in
 * both cases). A list with the same partition twice gets one answer, so
 * each end is its own request.
 */
int es__ktopic_offset(kafka_log *k, const char *topic, int32_t partition,
                      int64_t which, int64_t *out)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_resp_err_t err;
    int64_t deadline = es__kafka_now_ms() + k->uri.timeout_ms, left;
    int try_ms = 100;
    if (l == NULL)
        return RD_KAFKA_RESP_ERR__NOENT;
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = which;
    /* Tries of 100, 200, 400 ms ... within timeout_ms: a request sent
     * while the connection was down waits out its whole timeout even when
     * the broker is back (a 1500 ms try answered 9 s after the broker came
     * back, tries of 100 ms within 0.5 s). */
    for (;;) {
        left = deadline - es__kafka_now_ms();
        l->elems[0].offset = which;
        err = rd_kafka_offsets_for_times(k->consumer, l,
                                         (int)(left < try_ms ? left : try_ms));
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            err = l->elems[0].err;
        if ((err != RD_KAFKA_RESP_ERR__TIMED_OUT &&
             err != RD_KAFKA_RESP_ERR__TRANSPORT) ||
            es__kafka_now_ms() >= deadline)
            break;
        try_ms *= 2;
    }
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && l->elems[0].offset < 0)
        err = RD_KAFKA_RESP_ERR__BAD_MSG; /* no offset in the answer */
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        *out = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return err;
}

int es__ktopic_watermarks(es_log *log, kafka_log *k, topic_info *ti, int32_t partition,
                      int64_t *lo, int64_t *hi)
{
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (lo)
        err = es__ktopic_offset(k, ti->name, partition, RD_KAFKA_OFFSET_BEGINNING, lo);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        err = es__ktopic_offset(k, ti->name, partition, RD_KAFKA_OFFSET_END, hi);
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
int es__ktopic_check_count(es_log *log, kafka_log *k, const char *topic, int32_t n)
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
int es__ktopic_find(es_log *log, kafka_log *k, const char *agg, topic_info **out)
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
        if ((rc = es__ktopic_check_count(log, k, ti->name, ti->partitions)) != 0)
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


/*
 * Creates the topic of agg: with the Admin API where the cluster has it
 * (partitions, replication from the URI, retention.ms=-1: events are kept
 * forever), else (librdkafka's mock broker) by the broker's automatic
 * creation, which gives the mock's 4 partitions.
 */
int es__ktopic_create(es_log *log, kafka_log *k, const char *agg, topic_info **out)
{
    topic_info *ti;
    rd_kafka_NewTopic_t *nt = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;
    char errstr[512] = "", admin_err[512] = "";
    int rc;
    int64_t deadline;

    *out = NULL;
    if ((rc = es__kproducer_ready(log, k)) != 0 || (rc = topic_get(log, k, agg, &ti)) != 0)
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
    deadline = es__kafka_now_ms() + k->uri.timeout_ms;
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
            return es__ktopic_find(log, k, agg, out);
        if (es__kafka_now_ms() > deadline)
            return es__fail(&log->h, ES_EIO,
                            "kafka: topic %s does not exist and could not be "
                            "created%s%s (create it with `esfold topics create`)",
                            ti->name, admin_err[0] ? ": " : "", admin_err);
        rd_kafka_poll(k->producer, 50);
    }
}


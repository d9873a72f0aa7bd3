/*
 * adapters/kafka/fetch.c - the consumer's fetch: the records of one partition in offset order, every wait bounded by the URI's timeout_ms (klog.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "esfold/partition.h"
#include "klog.h"

int64_t es__kafka_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void es__kfetch_stop(kafka_log *k)
{
    while (k->bpos < k->bn)
        rd_kafka_message_destroy(k->batch[k->bpos++]);
    k->bpos = k->bn = 0;
    if (k->cur)
        rd_kafka_consume_stop(k->cur->crkt, k->cur_part);
    k->cur = NULL;
}


/*
 * Reads records of (ti, partition) with offsets in [from, end) in order,
 * calling fn. limit > 0 stops after that many records. A record at or past
 * end stays buffered for the next scan that goes on from there. Every wait
 * is bounded by the URI's timeout_ms without progress.
 */
int es__kscan(es_log *log, kafka_log *k, topic_info *ti, int32_t partition,
                int64_t from, int64_t end, size_t limit, record_fn fn, void *ctx)
{
    int64_t deadline = es__kafka_now_ms() + k->uri.timeout_ms;
    size_t seen = 0;
    int rc;

    if (from >= end)
        return 0;
    if (!(k->cur == ti && k->cur_part == partition && k->cur_next == from)) {
        es__kfetch_stop(k);
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
            int64_t left = deadline - es__kafka_now_ms();
            ssize_t n;
            k->bpos = k->bn = 0;
            if (left <= 0) {
                int64_t lo = -1, hi = -1;
                rd_kafka_get_watermark_offsets(k->consumer, ti->name, partition,
                                               &lo, &hi);
                es__kfetch_stop(k);
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
            n = rd_kafka_consume_batch(ti->crkt, partition, 0, k->batch, ES__KBATCH);
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
                es__kfetch_stop(k);
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
            es__kfetch_stop(k);
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
        deadline = es__kafka_now_ms() + k->uri.timeout_ms;
    }
    /* Caught up with nothing buffered: stop fetching. An idle fetch is a
     * request the broker holds for fetch.wait.max.ms, and the next
     * request on the connection (the offsets of the next read) would wait
     * behind it. */
    if (k->bpos == k->bn && k->cur_next >= end)
        es__kfetch_stop(k);
    return 0;
}


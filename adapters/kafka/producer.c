/*
 * adapters/kafka/producer.c - the producers of the event log and the production of one commit (klog.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "esfold/partition.h"
#include "klog.h"

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

int es__kproducer_ready(es_log *log, kafka_log *k)
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


int es__kproduce(es_log *log, kafka_log *k, topic_info *ti, int32_t p,
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
        rd_kafka_headers_t *hs = es__kafka_headers(&evs[i], ti->partitions);
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


/*
 * adapters/kafka/producer.c - the producers of the event log and the
 * production of one commit (klog.h): every wait bounded by timeout_ms, a
 * transaction that did not commit always aborted, and what may have
 * reached the broker told apart from what cannot have (ES_EUNKNOWN vs
 * ES_EIO, settled by the writer).
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
    slot->status = rd_kafka_message_status(m);
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


/* Drops a producer and the topic handles made on it: the next append makes
 * a new one (and, transactional, init_transactions fences the old one). */
static void producer_reset(kafka_log *k, int single)
{
    topic_info *t;
    for (t = k->topics; t; t = t->next) {
        rd_kafka_topic_t **rkt = single ? &t->srkt : &t->prkt;
        if (*rkt) {
            rd_kafka_topic_destroy(*rkt);
            *rkt = NULL;
        }
    }
    if (single) {
        rd_kafka_destroy(k->single);
        k->single = NULL;
    } else {
        rd_kafka_destroy(k->producer);
        k->producer = NULL;
        k->txn_ready = 0;
    }
}

static int left_ms(int64_t deadline)
{
    int64_t left = deadline - es__kafka_now_ms();
    return left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/*
 * Every record without its delivery report yet is purged, so that nothing
 * queued is sent later behind the caller's back; the reports of the purged
 * ones say whether they may have reached the broker anyway (in flight).
 */
static void purge_rest(rd_kafka_t *rk, dr_slot *slots, size_t n)
{
    size_t i;
    for (i = 0; i < n && slots[i].done; i++)
        ;
    if (i == n)
        return;
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(rk, 0); /* the purged records' delivery reports */
}

int es__kproduce(es_log *log, kafka_log *k, topic_info *ti, int32_t p,
                 const char *sid, const es_event *evs, size_t n, dr_slot *slots,
                 int *maybe)
{
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    size_t i, handed = 0;
    int rc = 0, committed = 0, aborted = 0;
    const int T = k->uri.timeout_ms;
    const int64_t start = es__kafka_now_ms();
    char why[512] = "";
    /* A commit of one event: one record, atomic by itself, through the
     * idempotent producer without a transaction (docs/kafka.md). */
    int txn = k->uri.transactions && n > 1;
    rd_kafka_t *rk = k->uri.transactions && n == 1 ? k->single : k->producer;
    rd_kafka_topic_t *rkt = rk == k->single ? ti->srkt : ti->prkt;

    *maybe = 0;
    memset(slots, 0, n * sizeof *slots);
    if (txn && (error = rd_kafka_begin_transaction(k->producer))) {
        /* Nothing was handed to the broker: a definite failure. */
        rc = es__fail(&log->h, ES_EIO,
                      "kafka: appending to %s/%s: nothing written: starting "
                      "the transaction: %s",
                      ti->name, sid, rd_kafka_error_string(error));
        if (rd_kafka_error_is_fatal(error))
            producer_reset(k, 0);
        rd_kafka_error_destroy(error);
        return rc;
    }
    /* Handing the records over: QUEUE_FULL waits are bounded by T. */
    for (i = 0; i < n && err == 0; i++) {
        rd_kafka_headers_t *hs = es__kafka_headers(&evs[i], ti->partitions);
        char *value = json_dumps(evs[i].payload, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (hs == NULL || value == NULL) {
            if (hs)
                rd_kafka_headers_destroy(hs);
            es__free(value);
            rc = ES_ENOMEM;
            snprintf(why, sizeof why, "out of memory");
            break;
        }
        for (;;) {
            err = rd_kafka_producev(
                rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(p),
                RD_KAFKA_V_KEY(sid, strlen(sid)),
                RD_KAFKA_V_VALUE(value, strlen(value)),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_TIMESTAMP(evs[i].occurred_us / 1000),
                RD_KAFKA_V_HEADERS(hs), RD_KAFKA_V_OPAQUE(&slots[i]), RD_KAFKA_V_END);
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || left_ms(start + T) == 0)
                break;
            rd_kafka_poll(rk, left_ms(start + T) < 10 ? left_ms(start + T) : 10);
        }
        es__free(value);
        if (err) {
            rd_kafka_headers_destroy(hs);
            rc = ES_EIO;
            snprintf(why, sizeof why, "the producer refused event %zu of %zu: %s",
                     i + 1, n, rd_kafka_err2str(err));
        } else {
            handed++;
        }
    }
    /* The delivery reports: message.timeout.ms is T, so they come within
     * about T of the last record handed over. */
    if (handed > 0)
        rd_kafka_flush(rk, T);
    purge_rest(rk, slots, handed);
    for (i = 0; i < handed; i++) {
        if (slots[i].done && !slots[i].err) {
            *maybe |= ES__KMAYBE_WRITTEN;
        } else if (!slots[i].done ||
                   slots[i].status != RD_KAFKA_MSG_STATUS_NOT_PERSISTED) {
            /* In flight when it failed or was purged: it may be in the log,
             * or arrive there later. */
            *maybe |= ES__KMAYBE_WRITTEN | ES__KMAYBE_LATER;
        }
        if (rc == 0 && (!slots[i].done || slots[i].err)) {
            rc = ES_EIO;
            snprintf(why, sizeof why, "event %zu of %zu: %s", i + 1, n,
                     slots[i].done ? rd_kafka_err2str(slots[i].err)
                                   : "no delivery report in time");
        }
    }

    if (txn) {
        if (rc == 0) {
            /* Retriable failures are retried until 3 T from the start;
             * whatever does not commit is aborted below. */
            for (;;) {
                error = rd_kafka_commit_transaction(
                    k->producer, left_ms(start + 3 * (int64_t)T) > T
                                     ? T
                                     : left_ms(start + 3 * (int64_t)T));
                if (error == NULL) {
                    committed = 1;
                    break;
                }
                snprintf(why, sizeof why, "committing the transaction: %s",
                         rd_kafka_error_string(error));
                if (!rd_kafka_error_is_retriable(error) ||
                    left_ms(start + 3 * (int64_t)T) == 0 ||
                    rd_kafka_error_is_fatal(error))
                    break;
                rd_kafka_error_destroy(error);
                error = NULL;
            }
            if (!committed) {
                /* The broker may have committed it all the same. */
                rc = ES_EIO;
                *maybe |= ES__KMAYBE_WRITTEN | ES__KMAYBE_LATER;
            }
        }
        if (!committed && k->producer &&
            !(error && rd_kafka_error_is_fatal(error))) {
            /* Never leave a transaction open. */
            rd_kafka_error_t *e2 = rd_kafka_abort_transaction(k->producer, T);
            if (e2 == NULL) {
                aborted = 1;
            } else {
                size_t len = strlen(why);
                snprintf(why + len, sizeof why - len, "%saborting: %s",
                         len ? "; " : "", rd_kafka_error_string(e2));
                rd_kafka_error_destroy(e2);
            }
        }
        if (!committed && !aborted && k->producer)
            producer_reset(k, 0); /* fatal, or open for all we know */
        if (error)
            rd_kafka_error_destroy(error);
        /* An aborted transaction is over: nothing of it arrives later
         * (on a real broker nothing of it is read either). */
        if (aborted)
            *maybe &= ~ES__KMAYBE_LATER;
        if (committed)
            return 0;
    } else {
        char fe[256];
        if (rd_kafka_fatal_error(rk, fe, sizeof fe)) {
            /* The idempotent producer cannot go on: start over next time. */
            producer_reset(k, rk == k->single);
        }
        if (rc == 0)
            return 0;
    }
    if (rc == ES_ENOMEM && *maybe == 0)
        return es__fail(&log->h, ES_ENOMEM, "out of memory");
    if (*maybe == 0)
        return es__fail(&log->h, ES_EIO,
                        "kafka: appending to %s/%s: nothing written (no record "
                        "of the commit reached the broker): %s",
                        ti->name, sid, why);
    return es__fail(&log->h, ES_EUNKNOWN, "kafka: appending to %s/%s: %s%s",
                    ti->name, sid, why,
                    aborted ? " (the transaction was aborted)" : "");
}

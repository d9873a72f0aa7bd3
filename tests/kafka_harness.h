/*
 * tests/kafka_harness.h - a local Kafka cluster for the tests: the esfold
 * command's `broker` (librdkafka's mock cluster in its own process), or a
 * real cluster when $ESFOLD_KAFKA_BROKERS is set.
 */
#ifndef ESFOLD_TESTS_KAFKA_HARNESS_H
#define ESFOLD_TESTS_KAFKA_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

/*
 * The bootstrap address of the cluster: $ESFOLD_KAFKA_BROKERS, else that of
 * `<build>/esfold broker` started on first call (the esfold binary next to
 * the test's directory) and stopped at exit (or when the test process
 * dies). Aborts when the broker does not start within 10 s.
 */
const char *es_test_kafka_brokers(void);

/* 1 when the cluster is the local mock (not $ESFOLD_KAFKA_BROKERS). */
int es_test_kafka_is_mock(void);

/* "kafka://<brokers>?prefix=<fresh>." plus "&" extra when not NULL. The
 * string lives until exit. */
const char *es_test_kafka_uri(const char *extra);

/* The esfold binary the broker runs from (for running other commands). */
const char *es_test_esfold_path(void);

/*
 * A producer outside esfold (a foreign writer, a zombie) on the test
 * cluster: a plain librdkafka producer, transactional with txn_id (its
 * transactions initialised) or not (NULL). Aborts when it cannot be made.
 */
rd_kafka_t *es_test_kafka_producer(const char *txn_id);

/*
 * Produces one record to (topic, partition p) with key, value (NULL: a
 * tombstone) and headers given as name, value, ..., NULL; not flushed.
 * Aborts when librdkafka refuses it.
 */
void es_test_kafka_send(rd_kafka_t *rk, const char *topic, int32_t p,
                        const char *key, const char *value, size_t value_len, ...);
void es_test_kafka_sendv(rd_kafka_t *rk, const char *topic, int32_t p,
                         const char *key, const char *value, size_t value_len,
                         va_list headers);

/*
 * Records a writer outside esfold leaves in the Kafka log at log_uri (open
 * as log): n records of aggregate_type, record i for the stream
 * id_fmt % ((first + i) % streams) (a printf format of one int), each an
 * event_type with payload (any bytes, NUL-terminated; an esfold event's is
 * a JSON object) that claims version `version`, with its own event and
 * commit ids, in the stream's partition, stamped now. A version the
 * stream has already is what a zombie writes (stale: every reader rejects
 * it); the stream's next one is accepted. Flushed; aborts when it cannot
 * be written.
 */
struct es_log;
void es_test_kafka_foreign_records(struct es_log *log, const char *log_uri,
                                 const char *aggregate_type, const char *id_fmt,
                                 int first, int n, int streams, int64_t version,
                                 const char *event_type, const char *payload);

#endif

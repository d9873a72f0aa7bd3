/*
 * tests/kafka_harness.h - a local Kafka cluster for the tests: the esfold
 * command's `broker` (librdkafka's mock cluster in its own process), or a
 * real cluster when $ESFOLD_KAFKA_BROKERS is set.
 */
#ifndef ESFOLD_TESTS_KAFKA_HARNESS_H
#define ESFOLD_TESTS_KAFKA_HARNESS_H

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

#endif

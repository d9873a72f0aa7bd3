/*
 * adapters/kafka/kafka.h - what the Kafka adapter's files share: the URI,
 * the wire format (esfold events <-> Kafka records), and the client
 * configuration. Internal: not installed, not API.
 *
 * Wire format (docs/kafka.md): topic <prefix><aggregate type>, key = stream
 * id, value = payload JSON, timestamp = occurred-at in milliseconds, and the
 * headers below. es-time-us keeps the exact microseconds so that folds "as
 * of T" agree with SQLite to the microsecond.
 */
#ifndef ESFOLD_ADAPTERS_KAFKA_H
#define ESFOLD_ADAPTERS_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "core/log_backend.h"

#define ES__KH_TYPE "es-type"
#define ES__KH_VERSION "es-version"
#define ES__KH_SCHEMA "es-schema"
#define ES__KH_ID "es-id"
#define ES__KH_CORRELATION "es-correlation"
#define ES__KH_CAUSATION "es-causation"
#define ES__KH_META "es-meta"
#define ES__KH_COMMIT "es-commit"
#define ES__KH_COMMIT_SIZE "es-commit-size"
#define ES__KH_TIME_US "es-time-us"
#define ES__KH_COMMIT_INDEX "es-commit-index"
#define ES__KH_PARTITIONS "es-partitions"

/* ---- URIs -------------------------------------------------------------- */

#define ES__KAFKA_URI_MAX_CONF 32

/*
 * kafka://host:port[,host:port][?key=value&...] with keys
 *   prefix=P         topic prefix (default "")
 *   partitions=N     partitions of the topics esfold creates (default 4,
 *                    which is also what librdkafka's mock broker gives an
 *                    auto-created topic)
 *   replication=R    replication factor of created topics (default: the
 *                    broker's default)
 *   timeout_ms=T     bound of every wait on the cluster (default 10000)
 *   transactions=0|1 commits in producer transactions (default 1; a
 *                    commit of one event never needs one)
 *   owner=0|1        1: this handle is the single writer of the partitions
 *                    it appends to: an append trusts what the handle has
 *                    read and skips asking where the partition ends (a
 *                    stale view costs a rejected record; default 0)
 *   kafka.NAME=VALUE any librdkafka property, for producer and consumer
 * An empty host list ("kafka://?prefix=x.") takes $ESFOLD_KAFKA_BROKERS.
 * Values are %-decoded.
 */
typedef struct es__kafka_uri {
    char *brokers;
    char *prefix;
    int32_t partitions;
    int partitions_given; /* partitions= was in the URI: topics must agree */
    int32_t replication; /* -1: the broker's default */
    int timeout_ms;
    int transactions;
    int owner;
    size_t nconf;
    struct {
        char *name;
        char *value;
    } conf[ES__KAFKA_URI_MAX_CONF];
} es__kafka_uri;

/* Parses uri into *out (es__kafka_uri_free; nothing to free on failure).
 * Returns 0, ES_EINVAL or ES_ENOMEM with h's message set. */
int es__kafka_uri_parse(es__kafka_uri *out, const char *uri, es__handle *h);
void es__kafka_uri_free(es__kafka_uri *u);

/*
 * A client configuration for the URI: bootstrap servers, the kafka.*
 * properties, then `extra` (NULL-terminated name, value pairs; they win).
 * Returns NULL with errstr filled on a bad property.
 */
rd_kafka_conf_t *es__kafka_conf(const es__kafka_uri *u, const char *const *extra,
                                char *errstr, size_t errstr_size);

/* ---- records ----------------------------------------------------------- */

/*
 * The headers of event ev (complete, with version, commit and commit
 * index) written into a topic of `partitions` partitions, as a new list
 * for rd_kafka_producev(RD_KAFKA_V_HEADERS()). NULL on ENOMEM.
 */
rd_kafka_headers_t *es__kafka_headers(const es_event *ev, int32_t partitions);

/* What es__kafka_decode made of a record. */
enum {
    ES__KREC_EVENT = 0,  /* an esfold event: feed it to the rule */
    ES__KREC_REJECT = 1, /* not an esfold event (why says why): every
                            reader rejects it, in its place in the log */
    ES__KREC_REFUSE = 2  /* written for another partition count of the
                            topic, where that count puts its key: the
                            topic's count changed, and every reader refuses
                            the partition (why says so) */
};

/* A consumed record as the decoder sees it (borrowed from the message). */
typedef struct es__krecord {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *key;
    size_t key_len;
    const void *value; /* NULL: a tombstone */
    size_t len;
    rd_kafka_headers_t *headers; /* NULL: none */
    int64_t timestamp_ms;        /* -1: none */
} es__krecord;

/* The parts of message m, for es__kafka_decode. */
void es__krecord_of(es__krecord *r, const rd_kafka_message_t *m);

/*
 * The one judge of a consumed record of topic (aggregate type agg, with
 * `partitions` partitions): every reader (folds, partition readers,
 * scans, the writer's confirmation) calls it, so that all of them accept
 * the same records. An event needs a key that is a stream id and belongs
 * in the record's partition (murmur2 modulo the count, as the Java
 * client), es-type, a valid es-version, es-commit-size beside es-commit,
 * a valid es-commit-index when present, the header types of
 * docs/wire-format.md, and a value that is a JSON object.
 * Returns an ES__KREC_* with *out a heap event (es_event_free): for
 * REJECT, what could be decoded (at least the position); or ES_ENOMEM.
 */
int es__kafka_decode(es_event **out, const es__krecord *m, const char *agg,
                     int32_t partitions, char *why, size_t why_size);

#endif

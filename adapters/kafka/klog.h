/*
 * adapters/kafka/klog.h - what the pieces of the Kafka event log share
 * (internal). The log is split by what each piece does:
 *
 *   record.c    the one decoder and judge of a Kafka record (and the
 *               headers esfold writes); every reader and the writer's
 *               confirmation feed the acceptance rule through it
 *   fetch.c     the consumer's fetch: records of one partition in order,
 *               every wait bounded by timeout_ms
 *   topic.c     topics: partition counts, watermarks, creation
 *   producer.c  the producers and the production of one commit
 *   writer.c    appends: the writer's view of a partition, expected
 *               versions, idempotency, and the confirmation that a commit
 *               won
 *   reader.c    reads of a stream, of a partition (followers), scans
 *   group.c     consumer-group membership for projection workers
 *               (assignment only: no fetch, no offsets)
 *   log.c       open, close, metadata, the backend table
 */
#ifndef ESFOLD_ADAPTERS_KAFKA_KLOG_H
#define ESFOLD_ADAPTERS_KAFKA_KLOG_H

#include <sys/types.h>

#include "kafka.h"

#define ES__KBATCH 512

typedef struct topic_info {
    char *name;
    int32_t partitions;
    rd_kafka_topic_t *crkt; /* on the consumer */
    rd_kafka_topic_t *prkt; /* on the producer, made on first append */
    rd_kafka_topic_t *srkt; /* on the single-event producer */
    struct topic_info *next;
} topic_info;

/* What a handle knows of one partition: its acceptor and how far it read. */
typedef struct part_cache {
    topic_info *ti;
    int32_t partition;
    es_acceptor *acc;
    int64_t fed;   /* the next offset to feed */
    int64_t taken; /* (followers) the offset after the last event taken */
    int resumed;   /* (followers) started at `taken` > 0 with a seed
                      function, not from the partition's beginning */
    struct part_cache *next;
} part_cache;

typedef struct dr_slot {
    int done;
    rd_kafka_resp_err_t err;
    rd_kafka_msg_status_t status; /* persisted, possibly, not */
    int64_t offset;
    int32_t partition;
} dr_slot;

typedef struct kafka_log {
    es__kafka_uri uri;
    char txn_id[64];
    char timeout[16]; /* uri.timeout_ms as text, for the client settings */
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    rd_kafka_t *single; /* with transactions=1: the idempotent producer, no
                           transactional.id, of commits of one event */
    int txn_ready;
    int mock; /* librdkafka's mock cluster (esfold broker): no Admin API */
    topic_info *topics;
    part_cache *writers;   /* STATE_ONLY | TRACK_IDS acceptors */
    part_cache *followers; /* ordered acceptors for read_partition */
    /* The consumer's current fetch and what it has handed us. */
    topic_info *cur;
    int32_t cur_part;
    int64_t cur_next;
    rd_kafka_message_t *batch[ES__KBATCH];
    ssize_t bpos, bn;
} kafka_log;

/* The aggregate type of topic ti (its name without the URI's prefix). */
const char *es__ktopic_agg(const kafka_log *k, const topic_info *ti);

/*
 * Judges record m of (ti, its partition) with the one decoder
 * (es__kafka_decode) and feeds it to acc where it stands in the log: as an
 * event, or as a rejected record. Every reader of a partition and the
 * writer's confirmation feed through here. Returns 0; ES_EINVAL with the
 * message when the topic's partition count changed (ES__KREC_REFUSE);
 * ES_EUSER (acc's seed function stopped); ES_ENOMEM.
 */
int es__kafka_feed(es_log *log, kafka_log *k, es_acceptor *acc,
                   topic_info *ti, const rd_kafka_message_t *m);

/* A monotonic clock in milliseconds. */
int64_t es__kafka_now_ms(void);

/* ---- fetch.c ----------------------------------------------------------- */

/* Stops the consumer's current fetch and drops what it buffered. */
void es__kfetch_stop(kafka_log *k);

/* Called with each record (not owned); non-zero stops the scan and is
 * returned. */
typedef int (*record_fn)(es_log *log, kafka_log *k, const rd_kafka_message_t *m,
                         void *ctx);

/*
 * Reads records of (ti, partition) with offsets in [from, end) in order,
 * calling fn. limit > 0 stops after that many records. A record at or past
 * end stays buffered for the next scan that goes on from there. Every wait
 * is bounded by the URI's timeout_ms without progress.
 */
int es__kscan(es_log *log, kafka_log *k, topic_info *ti, int32_t partition,
              int64_t from, int64_t end, size_t limit, record_fn fn, void *ctx);

/* A record_fn feeding the part_cache ctx through es__kafka_feed and moving
 * its `fed` past the record (record.c). */
int es__kcache_feed(es_log *log, kafka_log *k, const rd_kafka_message_t *m,
                    void *ctx);

/* ---- topic.c ----------------------------------------------------------- */

/* The partition's low and high watermarks (lo may be NULL: only hi is
 * asked for, one request); each bounded by timeout_ms. */
int es__ktopic_watermarks(es_log *log, kafka_log *k, topic_info *ti,
                          int32_t partition, int64_t *lo, int64_t *hi);
/* One end (which: RD_KAFKA_OFFSET_BEGINNING or _END) of a partition,
 * within timeout_ms; a librdkafka error code. */
int es__ktopic_offset(kafka_log *k, const char *topic, int32_t partition,
                      int64_t which, int64_t *out);
/* A URI with partitions=N only works with topics of N partitions. */
int es__ktopic_check_count(es_log *log, kafka_log *k, const char *topic, int32_t n);
/* The topic of aggregate type agg; *out NULL (and 0) when the topic does
 * not exist on the cluster yet. */
int es__ktopic_find(es_log *log, kafka_log *k, const char *agg, topic_info **out);
/* Creates the topic of agg (docs/kafka.md: retention.ms=-1). */
int es__ktopic_create(es_log *log, kafka_log *k, const char *agg, topic_info **out);

/* ---- producer.c -------------------------------------------------------- */

/* The producers exist and transactions are initialised. */
int es__kproducer_ready(es_log *log, kafka_log *k);

/*
 * Produces the commit (versions set) to partition p; slots get the
 * delivery reports. Returns 0 when every event was delivered (and the
 * transaction committed). Else, with the message set: ES_EIO when nothing
 * can be in the log (*maybe 0), ES_EUNKNOWN when some of it may be:
 * *maybe has ES__KMAYBE_WRITTEN (read the partition back to learn what
 * counts) and ES__KMAYBE_LATER when a record may still arrive after that
 * (it was in flight when given up: the commit can still become whole).
 * Every wait is bounded (docs/kafka.md, "Time bounds"): 3 x timeout_ms
 * from the hand-over's start to the commit, and timeout_ms for an abort. A transaction that did not commit is aborted; a
 * producer whose transaction could not be aborted, or that had a fatal
 * error, is dropped and made again by the next append.
 */
#define ES__KMAYBE_WRITTEN 1
#define ES__KMAYBE_LATER 2
int es__kproduce(es_log *log, kafka_log *k, topic_info *ti, int32_t p,
                 const char *sid, const es_event *evs, size_t n, dr_slot *slots,
                 int *maybe);

/* ---- writer.c ---------------------------------------------------------- */

part_cache *es__kcache_get(part_cache **list, topic_info *ti, int32_t partition);
int es__kcache_new(es_log *log, part_cache **list, topic_info *ti,
                   int32_t partition, unsigned flags, part_cache **out);
void es__kcache_free_all(part_cache *pc);
/* ES_ETRUNCATED: the partition begins at lo > 0. */
int es__ktruncated(es_log *log, topic_info *ti, int32_t partition, int64_t lo,
                   const char *what);

int es__kafka_find_id(es_log *log, void *self, const char *agg,
                      const char *sid, const char *id, es__id_place *out,
                      int *found);
int es__kafka_append(es_log *log, void *self, es_append_result *out,
                     const char *agg, const char *sid, int64_t expected,
                     const es_event *events, size_t n);

/* ---- reader.c ---------------------------------------------------------- */

int es__kafka_read_stream(es_log *log, void *self, const char *agg,
                          const char *sid, const es_read_options *opts,
                          es_event_cb cb, void *user_data);
int es__kafka_read_partition(es_log *log, void *self, int64_t *next_offset,
                             const char *agg, int32_t partition,
                             int64_t from_offset, size_t max_events,
                             es_event_cb cb, void *user_data);
int es__kafka_read_partition_seeded(es_log *log, void *self, int64_t *next_offset,
                                    const char *agg, int32_t partition,
                                    int64_t from_offset, size_t max_events,
                                    es_seed_fn seed, void *seed_data,
                                    es_event_cb cb, void *user_data);
int es__kafka_scan_partition(es_log *log, void *self, int64_t *next_offset,
                             const char *agg, int32_t partition,
                             int64_t from_offset, size_t max_events,
                             es_verdict_cb cb, void *user_data);

/* ---- group.c ----------------------------------------------------------- */

int es__kafka_group_open(es_log *log, void *self, void **out,
                         const char *group_id, const char *const *types,
                         int session_ms);
int es__kafka_group_poll(es_log *log, void *group, int *changed);
int es__kafka_group_owns(void *group, const char *agg, int32_t partition);
void es__kafka_group_close(void *group);

#endif

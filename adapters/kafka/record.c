/*
 * adapters/kafka/record.c - esfold events as Kafka records and back
 * (the wire format of docs/kafka.md).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "esfold/partition.h"
#include "klog.h"

static int add(rd_kafka_headers_t *hs, const char *name, const char *value)
{
    return value == NULL ||
           rd_kafka_header_add(hs, name, -1, value, -1) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

static int add_i64(rd_kafka_headers_t *hs, const char *name, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return add(hs, name, buf);
}

rd_kafka_headers_t *es__kafka_headers(const es_event *ev, int32_t partitions)
{
    rd_kafka_headers_t *hs = rd_kafka_headers_new(10);
    char *meta = NULL;
    int ok;
    if (hs == NULL)
        return NULL;
    if (ev->meta && json_is_object(ev->meta) &&
        (meta = json_dumps(ev->meta, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL) {
        rd_kafka_headers_destroy(hs);
        return NULL;
    }
    ok = add(hs, ES__KH_TYPE, ev->type) && add_i64(hs, ES__KH_VERSION, ev->version) &&
         add_i64(hs, ES__KH_SCHEMA, ev->schema ? ev->schema : 1) &&
         add(hs, ES__KH_ID, ev->id) && add(hs, ES__KH_CORRELATION, ev->correlation_id) &&
         add(hs, ES__KH_CAUSATION, ev->causation_id) && add(hs, ES__KH_META, meta) &&
         add_i64(hs, ES__KH_TIME_US, ev->occurred_us);
    if (ok && ev->commit_id)
        ok = add(hs, ES__KH_COMMIT, ev->commit_id) &&
             add_i64(hs, ES__KH_COMMIT_SIZE, ev->commit_size) &&
             add_i64(hs, ES__KH_COMMIT_INDEX,
                     ev->commit_index >= 0 ? ev->commit_index : 0);
    if (ok)
        ok = add_i64(hs, ES__KH_PARTITIONS, partitions);
    es__free(meta); /* jansson allocates through the same hook */
    if (!ok) {
        rd_kafka_headers_destroy(hs);
        return NULL;
    }
    return hs;
}

/* A header's value, or NULL (with *size 0) when absent. */
static const char *hdr(rd_kafka_headers_t *hs, const char *name, size_t *size)
{
    const void *v = NULL;
    *size = 0;
    if (hs == NULL ||
        rd_kafka_header_get_last(hs, name, &v, size) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    return v ? v : "";
}

static int set_strn(es_event *ev, const char **field, const char *v, size_t n)
{
    char *copy;
    if (v == NULL)
        return 0;
    if (memchr(v, '\0', n))
        return 1; /* not a string: the caller rejects the record */
    if ((copy = es__strndup(v, n)) == NULL)
        return ES_ENOMEM;
    es__free((void *)*field);
    *field = copy;
    return 0;
}

/* A decimal header as int64; 0 when absent, -1 when not a number. */
static int hdr_i64(rd_kafka_headers_t *hs, const char *name, int64_t *out, int *present)
{
    size_t n;
    const char *v = hdr(hs, name, &n);
    char buf[32];
    *present = v != NULL;
    if (v == NULL)
        return 0;
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, v, n);
    buf[n] = '\0';
    return es__parse_i64(out, buf) == 0 ? 0 : -1;
}

static int bad(char *why, size_t why_size, const char *fmt, const char *what)
{
    snprintf(why, why_size, fmt, what);
    return 1;
}

/* A string header into *field: 0; 1 (why set) when it is not a string
 * (a NUL byte in it); ES_ENOMEM. */
static int take_str(es_event *ev, const char **field, const char *v, size_t n,
                    const char *name, char *why, size_t why_size)
{
    int rc = set_strn(ev, field, v, n);
    if (rc == 1)
        return bad(why, why_size, "the %s header has a NUL byte", name);
    return rc;
}

void es__krecord_of(es__krecord *r, const rd_kafka_message_t *m)
{
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    memset(r, 0, sizeof *r);
    r->topic = rd_kafka_topic_name(m->rkt);
    r->partition = m->partition;
    r->offset = m->offset;
    r->key = m->key;
    r->key_len = m->key_len;
    r->value = m->payload;
    r->len = m->len;
    if (rd_kafka_message_headers(m, &r->headers) != RD_KAFKA_RESP_ERR_NO_ERROR)
        r->headers = NULL;
    r->timestamp_ms = tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts;
}

int es__kafka_decode(es_event **out, const es__krecord *m, const char *agg,
                     int32_t partitions, char *why, size_t why_size)
{
    rd_kafka_headers_t *hs = m->headers;
    es_event *ev = NULL;
    const char *v;
    size_t n;
    int64_t num;
    int present, rc;
    int oom;

    *out = NULL;
    if (es_event_new(&ev, NULL, NULL) != 0)
        return ES_ENOMEM;
    *out = ev;
    ev->position.partition = m->partition;
    ev->position.offset = m->offset;
    if (set_strn(ev, &ev->aggregate_type, agg, strlen(agg)) != 0)
        return ES_ENOMEM;
    if (m->key == NULL || m->key_len == 0)
        return bad(why, why_size, "%s", "the record has no key (stream id)");
    if (memchr(m->key, '\0', m->key_len) || m->key_len > ES_STREAM_ID_MAX)
        return bad(why, why_size, "%s", "the key is not a valid stream id");
    if (set_strn(ev, &ev->stream_id, m->key, m->key_len) != 0)
        return ES_ENOMEM;

    if ((v = hdr(hs, ES__KH_TYPE, &n)) == NULL || n == 0)
        return bad(why, why_size, "no %s header", ES__KH_TYPE);
    if ((rc = take_str(ev, &ev->type, v, n, ES__KH_TYPE, why, why_size)) != 0)
        return rc;
    if (hdr_i64(hs, ES__KH_VERSION, &ev->version, &present) != 0 || !present ||
        ev->version < 1)
        return bad(why, why_size, "no valid %s header (a version from 1)",
                   ES__KH_VERSION);

    /* Its partition: where the Java client's partitioner puts its key, for
     * the count the writer says it used (es-partitions) and the topic's. */
    if (hdr_i64(hs, ES__KH_PARTITIONS, &num, &present) != 0 ||
        (present && (num < 1 || num > INT32_MAX)))
        return bad(why, why_size, "the %s header is not a count from 1",
                   ES__KH_PARTITIONS);
    if (present && num != partitions) {
        if (es_partition_for(m->key, m->key_len, (int32_t)num) == m->partition) {
            snprintf(why, why_size,
                     "kafka topic %s: the record at partition %d offset "
                     "%" PRId64 " was written when the topic had %" PRId64
                     " partitions, and it has %d now: the partition count of "
                     "an event topic changed, so streams are no longer where "
                     "their keys put them (restore the count, or copy the "
                     "events into a new topic)",
                     m->topic, (int)m->partition, m->offset,
                     num, (int)partitions);
            return ES__KREC_REFUSE;
        }
        snprintf(why, why_size,
                 "the record says it was written for %" PRId64 " partitions, "
                 "the topic has %d, and its key does not belong in partition "
                 "%d for either count",
                 num, (int)partitions, (int)m->partition);
        return ES__KREC_REJECT;
    }
    if (es_partition_for(m->key, m->key_len, partitions) != m->partition) {
        snprintf(why, why_size,
                 "the record is in partition %d, but its key belongs in "
                 "partition %d (murmur2 of the key modulo %d partitions, the "
                 "Java client's default partitioner): written with another "
                 "partitioner",
                 (int)m->partition,
                 (int)es_partition_for(m->key, m->key_len, partitions),
                 (int)partitions);
        return ES__KREC_REJECT;
    }

    if (hdr_i64(hs, ES__KH_SCHEMA, &num, &present) != 0 ||
        (present && (num < 1 || num > INT32_MAX)))
        return bad(why, why_size, "the %s header is not a number from 1",
                   ES__KH_SCHEMA);
    ev->schema = present ? (int32_t)num : 1;
    if ((v = hdr(hs, ES__KH_ID, &n)) != NULL && n > 0) {
        if ((rc = take_str(ev, &ev->id, v, n, ES__KH_ID, why, why_size)) != 0)
            return rc;
    } else {
        /* A foreign record without an id: its place in the log is one. */
        char id[64 + ES_NAME_MAX];
        snprintf(id, sizeof id, "kafka:%s/%d/%" PRId64, m->topic,
                 (int)m->partition, m->offset);
        if (set_strn(ev, &ev->id, id, strlen(id)) != 0)
            return ES_ENOMEM;
    }
    v = hdr(hs, ES__KH_CORRELATION, &n);
    if ((rc = take_str(ev, &ev->correlation_id, v, n, ES__KH_CORRELATION, why,
                       why_size)) != 0)
        return rc;
    v = hdr(hs, ES__KH_CAUSATION, &n);
    if ((rc = take_str(ev, &ev->causation_id, v, n, ES__KH_CAUSATION, why,
                       why_size)) != 0)
        return rc;
    if ((v = hdr(hs, ES__KH_COMMIT, &n)) != NULL && n > 0) {
        if ((rc = take_str(ev, &ev->commit_id, v, n, ES__KH_COMMIT, why, why_size)) != 0)
            return rc;
        if (hdr_i64(hs, ES__KH_COMMIT_SIZE, &num, &present) != 0 || !present ||
            num < 1 || num > INT32_MAX)
            return bad(why, why_size, "no valid %s header beside es-commit",
                       ES__KH_COMMIT_SIZE);
        ev->commit_size = (int32_t)num;
        if (hdr_i64(hs, ES__KH_COMMIT_INDEX, &num, &present) != 0 ||
            (present && (num < 0 || num >= ev->commit_size)))
            return bad(why, why_size,
                       "the %s header is not a number from 0 below es-commit-size",
                       ES__KH_COMMIT_INDEX);
        /* Absent: a record of esfold 0.1.0, placed by the rule. */
        ev->commit_index = present ? (int32_t)num : -1;
    } else {
        ev->commit_size = 1;
        ev->commit_index = 0;
    }
    if (hdr_i64(hs, ES__KH_TIME_US, &num, &present) != 0)
        return bad(why, why_size, "the %s header is not a number", ES__KH_TIME_US);
    if (present) {
        ev->occurred_us = num;
    } else {
        ev->occurred_us = m->timestamp_ms < 0 ? 0 : m->timestamp_ms * 1000;
    }
    if ((v = hdr(hs, ES__KH_META, &n)) != NULL) {
        ev->meta = es__json_loadb(v, n, &oom);
        if (oom)
            return ES_ENOMEM;
        if (ev->meta == NULL || !json_is_object(ev->meta))
            return bad(why, why_size, "the %s header is not a JSON object",
                       ES__KH_META);
    }
    if (m->value == NULL)
        return bad(why, why_size, "%s",
                   "the record has no value (a tombstone): an event's payload "
                   "is a JSON object");
    ev->payload = es__json_loadb(m->value, m->len, &oom);
    if (oom)
        return ES_ENOMEM; /* not the record's fault: never a rejection */
    if (ev->payload == NULL || !json_is_object(ev->payload))
        return bad(why, why_size, "%s", "the value (payload) is not a JSON object");
    {
        /* The rules of the envelope (names, lengths, control characters),
         * as the JSON codec and the SQLite log apply them. */
        es_error err;
        if (es_event_validate(ev, 1, &err) != 0)
            return bad(why, why_size, "%s", err.text);
    }
    return ES__KREC_EVENT;
}

const char *es__ktopic_agg(const kafka_log *k, const topic_info *ti)
{
    return ti->name + strlen(k->uri.prefix);
}

int es__kafka_feed(es_log *log, kafka_log *k, es_acceptor *acc,
                   topic_info *ti, const rd_kafka_message_t *m)
{
    es_event *ev = NULL;
    char why[512];
    es__krecord r;
    int rc;
    es__krecord_of(&r, m);
    rc = es__kafka_decode(&ev, &r, es__ktopic_agg(k, ti), ti->partitions, why,
                          sizeof why);
    switch (rc) {
    case ES__KREC_EVENT:
        rc = es_acceptor_feed_new(acc, ev);
        break;
    case ES__KREC_REJECT:
        rc = es_acceptor_feed_malformed_new(acc, ev, why);
        break;
    case ES__KREC_REFUSE:
        es_event_free(ev);
        return es__fail(&log->h, ES_EINVAL, "%s", why);
    default:
        es_event_free(ev);
        return es__fail(&log->h, ES_ENOMEM, "out of memory");
    }
    if (rc == ES_EUSER || rc == ES_EINVAL)
        return es__fail(&log->h, rc,
                        "kafka topic %s partition %d offset %" PRId64 ": %s",
                        ti->name, (int)m->partition, m->offset,
                        rc == ES_EUSER ? "the seed function stopped the read"
                                       : "the seed function gave a stream "
                                         "state that is not consistent (a "
                                         "commit index outside its commit)");
    return rc ? es__fail(&log->h, rc, "out of memory") : 0;
}

int es__kcache_feed(es_log *log, kafka_log *k, const rd_kafka_message_t *m,
                    void *ctx)
{
    part_cache *pc = ctx;
    pc->fed = m->offset + 1;
    return es__kafka_feed(log, k, pc->acc, pc->ti, m);
}

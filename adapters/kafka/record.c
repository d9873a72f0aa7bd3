/*
 * adapters/kafka/record.c - esfold events as Kafka records and back
 * (the wire format of docs/kafka.md).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kafka.h"

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

rd_kafka_headers_t *es__kafka_headers(const es_event *ev)
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
             add_i64(hs, ES__KH_COMMIT_SIZE, ev->commit_size);
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

int es__kafka_decode(es_event **out, const rd_kafka_message_t *m,
                     const char *agg, int headers_only, char *why,
                     size_t why_size)
{
    rd_kafka_headers_t *hs = NULL;
    es_event *ev = NULL;
    const char *v;
    size_t n;
    int64_t num;
    int present;
    rd_kafka_timestamp_type_t tstype;
    int64_t ts;

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
    if (rd_kafka_message_headers(m, &hs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        hs = NULL;

    if ((v = hdr(hs, ES__KH_TYPE, &n)) == NULL || n == 0)
        return bad(why, why_size, "no %s header", ES__KH_TYPE);
    if (set_strn(ev, &ev->type, v, n) != 0)
        return ES_ENOMEM;
    if (hdr_i64(hs, ES__KH_VERSION, &ev->version, &present) != 0 || !present ||
        ev->version < 1)
        return bad(why, why_size, "no valid %s header (a version from 1)",
                   ES__KH_VERSION);
    if (hdr_i64(hs, ES__KH_SCHEMA, &num, &present) != 0 ||
        (present && (num < 1 || num > INT32_MAX)))
        return bad(why, why_size, "the %s header is not a number from 1",
                   ES__KH_SCHEMA);
    ev->schema = present ? (int32_t)num : 1;
    if ((v = hdr(hs, ES__KH_ID, &n)) != NULL && n > 0) {
        if (set_strn(ev, &ev->id, v, n) != 0)
            return ES_ENOMEM;
    } else {
        /* A foreign record without an id: its place in the log is one. */
        char id[64 + ES_NAME_MAX];
        snprintf(id, sizeof id, "kafka:%s/%d/%" PRId64, rd_kafka_topic_name(m->rkt),
                 (int)m->partition, m->offset);
        if (set_strn(ev, &ev->id, id, strlen(id)) != 0)
            return ES_ENOMEM;
    }
    v = hdr(hs, ES__KH_CORRELATION, &n);
    if (set_strn(ev, &ev->correlation_id, v, n) != 0)
        return ES_ENOMEM;
    v = hdr(hs, ES__KH_CAUSATION, &n);
    if (set_strn(ev, &ev->causation_id, v, n) != 0)
        return ES_ENOMEM;
    if ((v = hdr(hs, ES__KH_COMMIT, &n)) != NULL && n > 0) {
        if (set_strn(ev, &ev->commit_id, v, n) != 0)
            return ES_ENOMEM;
        if (hdr_i64(hs, ES__KH_COMMIT_SIZE, &num, &present) != 0 || !present ||
            num < 1 || num > INT32_MAX)
            return bad(why, why_size, "no valid %s header beside es-commit",
                       ES__KH_COMMIT_SIZE);
        ev->commit_size = (int32_t)num;
    } else {
        ev->commit_size = 1;
    }
    if (hdr_i64(hs, ES__KH_TIME_US, &num, &present) != 0)
        return bad(why, why_size, "the %s header is not a number", ES__KH_TIME_US);
    if (present) {
        ev->occurred_us = num;
    } else {
        ts = rd_kafka_message_timestamp(m, &tstype);
        ev->occurred_us = tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? 0 : ts * 1000;
    }
    if ((v = hdr(hs, ES__KH_META, &n)) != NULL) {
        json_error_t jerr;
        ev->meta = json_loadb(v, n, 0, &jerr);
        if (ev->meta == NULL || !json_is_object(ev->meta))
            return bad(why, why_size, "the %s header is not a JSON object",
                       ES__KH_META);
    }
    if (!headers_only) {
        json_error_t jerr;
        if (m->payload == NULL)
            return bad(why, why_size, "%s", "the record has no value (payload)");
        ev->payload = json_loadb(m->payload, m->len, 0, &jerr);
        if (ev->payload == NULL || !json_is_object(ev->payload))
            return bad(why, why_size, "%s",
                       "the value (payload) is not a JSON object");
    }
    return 0;
}

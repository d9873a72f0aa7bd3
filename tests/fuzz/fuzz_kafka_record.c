/*
 * tests/fuzz/fuzz_kafka_record.c - the one judge of a Kafka record
 * (es__kafka_decode, adapters/kafka/record.c) on arbitrary records, and
 * the acceptance rule fed with what it makes of them.
 *
 * Input, one item per line (a line that fits none is ignored):
 *   P <partition> <count>   the record's partition and the topic's count
 *   K <key>                 the key (absent: none)
 *   V <value>               the value (absent: a tombstone)
 *   H <name>=<value>        a header, repeated as often as given
 *   T <ms>                  the record's timestamp
 *   O <offset>              its offset
 * A line "--" starts the next record of the same partition (the rule is
 * fed every record in order).
 *
 * Properties: the decoder never fails but for want of memory; an event it
 * makes is in the partition its key belongs in, with a version from 1, a
 * payload object and a commit index inside its commit; the headers esfold
 * writes for that event (es__kafka_headers), with the same key and value,
 * decode to the same event (what the writer writes, every reader reads);
 * the rule decides every record it is fed, once.
 */
#include <inttypes.h>
#include <string.h>

#include "adapters/kafka/kafka.h"
#include "esfold/esfold.h"
#include "fuzz.h"

#define MAX_RECORDS 16

typedef struct rec_in {
    int32_t partition, count;
    char *key, *value;
    int64_t ts, offset;
    rd_kafka_headers_t *hs;
} rec_in;

static void same(const char *what, const char *a, const char *b)
{
    if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
        fuzz_fail("re-encoding changed %s: '%s' became '%s'", what, a ? a : "(null)",
                  b ? b : "(null)");
}

static void check_event(const es_event *ev, const es__krecord *r, int32_t count)
{
    es__krecord again = *r;
    es_event *back = NULL;
    char why[512];
    int rc;
    if (es_partition_for(ev->stream_id, strlen(ev->stream_id), count) != r->partition)
        fuzz_fail("an event in the wrong partition was accepted");
    if (ev->version < 1 || !json_is_object(ev->payload))
        fuzz_fail("an event without a version or a payload object");
    if (ev->commit_index >= (ev->commit_size > 1 ? ev->commit_size : 1))
        fuzz_fail("an event outside its commit: index %d of %d",
                  (int)ev->commit_index, (int)ev->commit_size);
    again.headers = es__kafka_headers(ev, count);
    if (again.headers == NULL)
        return; /* out of memory */
    rc = es__kafka_decode(&back, &again, "t", count, why, sizeof why);
    if (rc == ES_ENOMEM) {
        es_event_free(back);
        rd_kafka_headers_destroy(again.headers);
        return;
    }
    if (rc != ES__KREC_EVENT)
        fuzz_fail("esfold's own headers for an event were not read back: %s", why);
    same("type", ev->type, back->type);
    same("id", ev->id, back->id);
    same("correlation", ev->correlation_id, back->correlation_id);
    same("causation", ev->causation_id, back->causation_id);
    same("commit", ev->commit_id, back->commit_id);
    if (ev->version != back->version || ev->schema != back->schema ||
        ev->occurred_us != back->occurred_us || ev->commit_size != back->commit_size ||
        (ev->commit_index >= 0 && ev->commit_index != back->commit_index) ||
        !json_equal(ev->payload, back->payload) ||
        (ev->meta != NULL) != (back->meta != NULL) ||
        (ev->meta && !json_equal(ev->meta, back->meta)))
        fuzz_fail("re-encoding changed the event");
    es_event_free(back);
    rd_kafka_headers_destroy(again.headers);
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d == NULL)
        abort();
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rec_in recs[MAX_RECORDS];
    int n = 1;
    const char *p = (const char *)data, *end = p + size;
    es_acceptor *acc = NULL;
    es_acceptor_stats st;
    uint64_t fed = 0, decided = 0;
    const es_event *out;

    memset(recs, 0, sizeof recs);
    recs[0].count = 4;
    recs[0].ts = -1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        rec_in *r = &recs[n - 1];
        if (len >= 2 && p[1] == ' ') {
            const char *v = p + 2;
            size_t vl = len - 2;
            char num[64];
            snprintf(num, sizeof num, "%.*s", (int)(vl < 63 ? vl : 63), v);
            switch (p[0]) {
            case 'P': {
                int a = 0, b = 4;
                if (sscanf(num, "%d %d", &a, &b) >= 1) {
                    r->count = b >= 1 && b <= 64 ? b : 4;
                    r->partition = a >= 0 ? a % r->count : 0;
                }
                break;
            }
            case 'K':
                free(r->key);
                r->key = dup_n(v, vl);
                break;
            case 'V':
                free(r->value);
                r->value = dup_n(v, vl);
                break;
            case 'T':
                r->ts = strtoll(num, NULL, 10);
                break;
            case 'O':
                r->offset = strtoll(num, NULL, 10);
                break;
            case 'H': {
                const char *eq = memchr(v, '=', vl);
                if (r->hs == NULL)
                    r->hs = rd_kafka_headers_new(8);
                if (eq)
                    rd_kafka_header_add(r->hs, v, (ssize_t)(eq - v), eq + 1,
                                        (ssize_t)(vl - (size_t)(eq - v) - 1));
                break;
            }
            }
        } else if (len == 2 && p[0] == '-' && p[1] == '-' && n < MAX_RECORDS) {
            recs[n].count = recs[n - 1].count;
            recs[n].partition = recs[n - 1].partition;
            recs[n].offset = recs[n - 1].offset + 1;
            recs[n].ts = -1;
            n++;
        }
        p += len + (nl ? 1 : 0);
    }

    if (es_acceptor_new(&acc, 0) != 0)
        abort();
    for (int i = 0; i < n; i++) {
        rec_in *in = &recs[i];
        es__krecord r;
        es_event *ev = NULL;
        char why[512];
        int rc;
        memset(&r, 0, sizeof r);
        r.topic = "fuzz.t";
        r.partition = in->partition;
        r.offset = in->offset;
        r.key = in->key;
        r.key_len = in->key ? strlen(in->key) : 0;
        r.value = in->value;
        r.len = in->value ? strlen(in->value) : 0;
        r.headers = in->hs;
        r.timestamp_ms = in->ts;
        rc = es__kafka_decode(&ev, &r, "t", in->count, why, sizeof why);
        if (rc == ES__KREC_EVENT) {
            check_event(ev, &r, in->count);
            rc = es_acceptor_feed_new(acc, ev);
            if (rc != 0 && rc != ES_ENOMEM)
                fuzz_fail("the rule refused an event: %d", rc);
            fed++;
        } else if (rc == ES__KREC_REJECT || rc == ES__KREC_REFUSE) {
            if (why[0] == '\0')
                fuzz_fail("a record was rejected without a reason");
            if (ev == NULL)
                fuzz_fail("a rejected record lost its place");
            if (es_acceptor_feed_malformed_new(acc, ev, why) == 0)
                fed++;
        } else {
            if (rc != ES_ENOMEM)
                fuzz_fail("the decoder returned %d", rc);
            es_event_free(ev);
        }
    }
    es_acceptor_finish(acc);
    while (es_acceptor_next(acc, &out, NULL, NULL))
        decided++;
    es_acceptor_get_stats(acc, &st);
    if (decided != fed || st.pending != 0 || st.accepted + st.rejected != fed)
        fuzz_fail("the rule decided %llu of %llu records", (unsigned long long)decided,
                  (unsigned long long)fed);
    es_acceptor_free(acc);
    for (int i = 0; i < n; i++) {
        free(recs[i].key);
        free(recs[i].value);
        if (recs[i].hs)
            rd_kafka_headers_destroy(recs[i].hs);
    }
    return 0;
}

/*
 * tests/fuzz/fuzz_codec.c - the JSON envelope codec (core/codec.c) on
 * arbitrary bytes.
 *
 * Properties: es_event_decode either fails with a message and *out NULL,
 * or gives an event that es_event_encode turns into text that decodes to
 * an equal envelope, field by field, and that encodes to the same text
 * again (the encoding is a fixed point).
 */
#include <string.h>

#include "esfold/esfold.h"
#include "fuzz.h"

static void same_str(const char *field, const char *a, const char *b)
{
    if (a == NULL && b == NULL)
        return;
    if (a == NULL || b == NULL || strcmp(a, b) != 0)
        fuzz_fail("round trip changed %s: '%s' became '%s'", field,
                  a ? a : "(null)", b ? b : "(null)");
}

static void same_json(const char *field, const json_t *a, const json_t *b)
{
    if (a == NULL && b == NULL)
        return;
    if (a == NULL || b == NULL || !json_equal(a, b))
        fuzz_fail("round trip changed %s", field);
}

static void same_int(const char *field, int64_t a, int64_t b)
{
    if (a != b)
        fuzz_fail("round trip changed %s: %lld became %lld", field,
                  (long long)a, (long long)b);
}

static void same_event(const es_event *a, const es_event *b)
{
    same_str("aggregate_type", a->aggregate_type, b->aggregate_type);
    same_str("stream_id", a->stream_id, b->stream_id);
    same_str("type", a->type, b->type);
    same_int("version", a->version, b->version);
    same_int("occurred_us", a->occurred_us, b->occurred_us);
    same_int("schema", a->schema, b->schema);
    same_str("id", a->id, b->id);
    same_str("correlation_id", a->correlation_id, b->correlation_id);
    same_str("causation_id", a->causation_id, b->causation_id);
    same_json("data", a->payload, b->payload);
    same_json("meta", a->meta, b->meta);
    same_int("position.partition", a->position.partition, b->position.partition);
    same_int("position.offset", a->position.offset, b->position.offset);
    same_str("commit.id", a->commit_id, b->commit_id);
    same_int("commit.size", a->commit_size, b->commit_size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    es_event *first = (es_event *)&first, *second = NULL;
    char *text = NULL, *again = NULL;
    es_error err;
    int rc;

    memset(&err, 0, sizeof err);
    rc = es_event_decode(&first, (const char *)data, size, &err);
    if (rc != 0) {
        if (rc != ES_EINVAL)
            fuzz_fail("decode failed with %d (%s), expected ES_EINVAL", rc,
                      es_strerror(rc));
        if (first != NULL)
            fuzz_fail("failed decode left *out set");
        if (err.text[0] == '\0' || memchr(err.text, '\0', sizeof err.text) == NULL)
            fuzz_fail("failed decode without a message");
        return 0;
    }
    if (first == NULL)
        fuzz_fail("decode succeeded without an event");
    if ((rc = es_event_validate(first, 1, &err)) != 0)
        fuzz_fail("decode gave an event that does not validate: %s", err.text);
    if ((rc = es_event_encode(&text, first)) != 0)
        fuzz_fail("encoding a decoded event failed: %s", es_strerror(rc));
    if ((rc = es_event_decode(&second, text, strlen(text), &err)) != 0)
        fuzz_fail("the encoding of a decoded event does not decode: %s\n"
                  "  encoding: %s", err.text, text);
    same_event(first, second);
    if ((rc = es_event_encode(&again, second)) != 0)
        fuzz_fail("encoding the re-decoded event failed: %s", es_strerror(rc));
    if (strcmp(text, again) != 0)
        fuzz_fail("encoding is not stable:\n  %s\n  %s", text, again);
    es_free(again);
    es_free(text);
    es_event_free(second);
    es_event_free(first);
    return 0;
}

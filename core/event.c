/*
 * core/event.c - heap events: make, copy, free, validate.
 */
#include <string.h>

#include "esfold/time.h"
#include "internal.h"

#define STR_FIELDS(ev) \
    X(aggregate_type) X(stream_id) X(type) X(id) X(correlation_id) \
    X(causation_id) X(commit_id)

int es_event_new(es_event **out, const char *type, json_t *payload)
{
    es_event *ev;
    if (out == NULL)
        return ES_EINVAL;
    *out = NULL;
    ev = es__calloc(1, sizeof *ev);
    if (ev == NULL)
        return ES_ENOMEM;
    ev->schema = 1;
    ev->position.offset = -1;
    ev->commit_index = -1;
    if (type && (ev->type = es__strdup(type)) == NULL) {
        es__free(ev);
        return ES_ENOMEM;
    }
    ev->payload = json_incref(payload);
    *out = ev;
    return 0;
}

int es_event_copy(es_event **out, const es_event *src)
{
    es_event *ev;
    if (out == NULL || src == NULL)
        return ES_EINVAL;
    *out = NULL;
    ev = es__calloc(1, sizeof *ev);
    if (ev == NULL)
        return ES_ENOMEM;
    *ev = *src;
#define X(f) ev->f = NULL;
    STR_FIELDS(ev)
#undef X
    ev->payload = json_incref(src->payload);
    ev->meta = json_incref(src->meta);
#define X(f) \
    if (src->f && (ev->f = es__strdup(src->f)) == NULL) \
        goto oom;
    STR_FIELDS(ev)
#undef X
    *out = ev;
    return 0;
oom:
    es_event_free(ev);
    return ES_ENOMEM;
}

size_t es__event_flat_size(const es_event *src)
{
    size_t n = sizeof *src;
#define X(f) \
    if (src->f) \
        n += strlen(src->f) + 1;
    STR_FIELDS(src)
#undef X
    return n;
}

es_event *es__event_copy_flat(void *mem, const es_event *src)
{
    es_event *ev = mem;
    char *p = (char *)(ev + 1);
    *ev = *src;
#define X(f) \
    if (src->f) { \
        size_t n = strlen(src->f) + 1; \
        ev->f = memcpy(p, src->f, n); \
        p += n; \
    }
    STR_FIELDS(src)
#undef X
    json_incref(ev->payload);
    json_incref(ev->meta);
    return ev;
}

void es__event_flat_release(es_event *ev)
{
    json_decref(ev->payload);
    json_decref(ev->meta);
}

void es_event_free(es_event *ev)
{
    if (ev == NULL)
        return;
#define X(f) es__free((void *)ev->f);
    STR_FIELDS(ev)
#undef X
    json_decref(ev->payload);
    json_decref(ev->meta);
    es__free(ev);
}

int es_event_set_str(es_event *ev, const char **field, const char *value)
{
    char *copy = NULL;
    if (ev == NULL || field == NULL)
        return ES_EINVAL;
    if (value && (copy = es__strdup(value)) == NULL)
        return ES_ENOMEM;
    es__free((void *)*field);
    *field = copy;
    return 0;
}

static int check_name(const char *what, const char *s, size_t max, es_error *err)
{
    return es__check_name(what, s, max, 1, err);
}

int es__check_name(const char *what, const char *s, size_t max, int utf8,
                   es_error *err)
{
    size_t n, ok;
    if (s == NULL || *s == '\0')
        return es__err(err, ES_EINVAL, "%s is empty", what);
    n = strlen(s);
    if (n > max)
        return es__err(err, ES_EINVAL, "%s is %zu bytes long, the limit is %zu",
                       what, n, max);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return es__err(err, ES_EINVAL,
                           "%s contains a control character at byte %zu", what, i);
    /* Names go into JSON (the CLI, Kafka headers, snapshots): UTF-8 only. */
    if (utf8 && (ok = es__utf8_valid_prefix(s, n)) != n)
        return es__err(err, ES_EINVAL,
                       "%s is not valid UTF-8 (byte %zu is 0x%02x)", what, ok,
                       (unsigned char)s[ok]);
    return 0;
}

int es_event_validate(const es_event *ev, int require_version, es_error *err)
{
    int rc;
    if (ev == NULL)
        return es__err(err, ES_EINVAL, "no event");
    if (ev->stream_id &&
        (rc = check_name("stream id", ev->stream_id, ES_STREAM_ID_MAX, err)))
        return rc;
    if (ev->aggregate_type &&
        (rc = check_name("aggregate type", ev->aggregate_type, ES_NAME_MAX, err)))
        return rc;
    if ((rc = check_name("event type", ev->type, ES_NAME_MAX, err)))
        return rc;
    if (ev->id && (rc = check_name("event id", ev->id, ES_NAME_MAX, err)))
        return rc;
    if (require_version && ev->version < 1)
        return es__err(err, ES_EINVAL, "version is %lld, versions start at 1",
                       (long long)ev->version);
    if (ev->schema < 0 || (require_version && ev->schema < 1))
        return es__err(err, ES_EINVAL, "schema is %d, schemas start at 1",
                       (int)ev->schema);
    if (ev->occurred_us < ES_TIME_MIN_US || ev->occurred_us > ES_TIME_MAX_US)
        return es__err(err, ES_EINVAL, "occurred_us of event '%s' is %lld, "
                       "outside the years 0000 to 9999", ev->type,
                       (long long)ev->occurred_us);
    if (ev->payload == NULL)
        return es__err(err, ES_EINVAL, "event '%s' has no payload", ev->type);
    if (!json_is_object(ev->payload))
        return es__err(err, ES_EINVAL,
                       "payload of event '%s' is not a JSON object", ev->type);
    if (ev->meta && !json_is_object(ev->meta) && !json_is_null(ev->meta))
        return es__err(err, ES_EINVAL,
                       "metadata of event '%s' is not a JSON object", ev->type);
    return 0;
}

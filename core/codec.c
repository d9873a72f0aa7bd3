/*
 * core/codec.c - the JSON form of the event envelope (docs/wire-format.md).
 */
#include <string.h>

#include "esfold/time.h"
#include "internal.h"

size_t es__utf8_valid_prefix(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        size_t len, k;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            len = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            len = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            len = 4, cp = c & 0x07;
        else
            return i;
        if (i + len > n)
            return i;
        for (k = 1; k < len; k++) {
            if ((u[i + k] & 0xc0) != 0x80)
                return i;
            cp = (cp << 6) | (u[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += len;
    }
    return n;
}

json_t *es__json_str(const char *s)
{
    es__buf b = {0};
    size_t n, i = 0, ok;
    json_t *j;
    if (s == NULL)
        return NULL;
    n = strlen(s);
    if (es__utf8_valid_prefix(s, n) == n)
        return json_stringn(s, n);
    while (i < n) {
        ok = es__utf8_valid_prefix(s + i, n - i);
        es__buf_add(&b, s + i, ok);
        i += ok;
        if (i < n)
            es__buf_printf(&b, "\\x%02x", (unsigned char)s[i++]);
    }
    j = b.oom ? NULL : json_stringn(b.data ? b.data : "", b.len);
    es__buf_free(&b);
    return j;
}

static json_t *str_or_null(const char *s)
{
    return s ? es__json_str(s) : json_null();
}

json_t *es_event_to_json(const es_event *ev)
{
    char when[ES_TIME_BUFSZ];
    json_t *o;
    if (ev == NULL)
        return NULL;
    es_time_format(when, sizeof when, ev->occurred_us);
    o = json_object();
    if (o == NULL)
        return NULL;
    if (json_object_set_new(o, "aggregate_type", str_or_null(ev->aggregate_type)) ||
        json_object_set_new(o, "stream_id", str_or_null(ev->stream_id)) ||
        json_object_set_new(o, "type", str_or_null(ev->type)) ||
        json_object_set_new(o, "version", json_integer(ev->version)) ||
        json_object_set_new(o, "occurred_at", json_string(when)) ||
        json_object_set_new(o, "occurred_us", json_integer(ev->occurred_us)) ||
        json_object_set_new(o, "schema", json_integer(ev->schema)) ||
        json_object_set_new(o, "id", str_or_null(ev->id)) ||
        json_object_set_new(o, "correlation_id", str_or_null(ev->correlation_id)) ||
        json_object_set_new(o, "causation_id", str_or_null(ev->causation_id)) ||
        json_object_set(o, "data", ev->payload ? ev->payload : json_null()) ||
        json_object_set(o, "meta", ev->meta ? ev->meta : json_null()) ||
        json_object_set_new(o, "position",
                            ev->position.offset < 0 ? json_null() :
                            json_pack("{s:i,s:I}", "partition",
                                      (int)ev->position.partition, "offset",
                                      (json_int_t)ev->position.offset)))
        goto oom;
    if (ev->commit_id &&
        json_object_set_new(o, "commit",
                            ev->commit_index >= 0
                                ? json_pack("{s:s,s:i,s:i}", "id", ev->commit_id,
                                            "size", (int)ev->commit_size, "index",
                                            (int)ev->commit_index)
                                : json_pack("{s:s,s:i}", "id", ev->commit_id,
                                            "size", (int)ev->commit_size)))
        goto oom;
    return o;
oom:
    json_decref(o);
    return NULL;
}

int es__json_get_str(const json_t *o, const char *key, int required,
                     const char **out, es_error *err)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        if (required)
            return es__err(err, ES_EINVAL, "event has no \"%s\"", key);
        return 0;
    }
    if (!json_is_string(v))
        return es__err(err, ES_EINVAL, "\"%s\" is not a string", key);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return es__err(err, ES_EINVAL, "\"%s\" contains a NUL character", key);
    *out = json_string_value(v);
    return 0;
}

static int get_int(const json_t *o, const char *key, int required,
                   int64_t *out, es_error *err)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v)) {
        if (required)
            return es__err(err, ES_EINVAL, "event has no \"%s\"", key);
        return 0;
    }
    if (!json_is_integer(v))
        return es__err(err, ES_EINVAL, "\"%s\" is not an integer", key);
    *out = json_integer_value(v);
    return 0;
}

int es_event_from_json(es_event **out, const json_t *json, es_error *err)
{
    es_event tmp;
    const json_t *pos, *commit, *data, *meta;
    const char *when = NULL;
    int64_t v;
    int rc;

    if (out == NULL)
        return es__err(err, ES_EINVAL, "no output");
    *out = NULL;
    memset(&tmp, 0, sizeof tmp);
    tmp.position.offset = -1;
    tmp.commit_index = -1;
    if (!json_is_object(json))
        return es__err(err, ES_EINVAL, "event is not a JSON object");
    if ((rc = es__json_get_str(json, "aggregate_type", 0, &tmp.aggregate_type, err)) ||
        (rc = es__json_get_str(json, "stream_id", 1, &tmp.stream_id, err)) ||
        (rc = es__json_get_str(json, "type", 1, &tmp.type, err)) ||
        (rc = es__json_get_str(json, "id", 1, &tmp.id, err)) ||
        (rc = es__json_get_str(json, "correlation_id", 0, &tmp.correlation_id, err)) ||
        (rc = es__json_get_str(json, "causation_id", 0, &tmp.causation_id, err)) ||
        (rc = get_int(json, "version", 1, &tmp.version, err)) ||
        (rc = es__json_get_str(json, "occurred_at", 0, &when, err)) ||
        (rc = get_int(json, "occurred_us", 0, &tmp.occurred_us, err)))
        return rc;
    if (tmp.version < 1)
        return es__err(err, ES_EINVAL, "\"version\" is %lld, versions start at 1",
                       (long long)tmp.version);
    /* Outside the years 0000..9999 (es_time_parse's range) the encoder
     * would write an occurred_at that does not decode. */
    if (tmp.occurred_us < ES_TIME_MIN_US || tmp.occurred_us > ES_TIME_MAX_US)
        return es__err(err, ES_EINVAL, "\"occurred_us\" is %lld, outside the "
                       "years 0000 to 9999", (long long)tmp.occurred_us);
    v = 1;
    if ((rc = get_int(json, "schema", 0, &v, err)))
        return rc;
    if (v < 1 || v > INT32_MAX)
        return es__err(err, ES_EINVAL, "\"schema\" is %lld, expected 1..%d",
                       (long long)v, INT32_MAX);
    tmp.schema = (int32_t)v;
    if (when) {
        /* occurred_at is checked even next to occurred_us: an edited
         * occurred_at must not be silently overruled by a stale
         * occurred_us (a JSON null occurred_us counts as absent). */
        const json_t *us = json_object_get(json, "occurred_us");
        es_error terr;
        int64_t at;
        if (es_time_parse(&at, when, &terr) != 0)
            return es__err(err, ES_EINVAL, "\"occurred_at\": %s", terr.text);
        if (us == NULL || json_is_null(us))
            tmp.occurred_us = at;
        else if (at != tmp.occurred_us)
            return es__err(err, ES_EINVAL,
                           "\"occurred_at\" (%s) and \"occurred_us\" (%lld) "
                           "disagree", when, (long long)tmp.occurred_us);
    }
    data = json_object_get(json, "data");
    if (data == NULL)
        return es__err(err, ES_EINVAL, "event has no \"data\"");
    if (!json_is_object(data))
        return es__err(err, ES_EINVAL, "\"data\" is not a JSON object");
    tmp.payload = (json_t *)data;
    meta = json_object_get(json, "meta");
    if (meta && !json_is_null(meta)) {
        if (!json_is_object(meta))
            return es__err(err, ES_EINVAL, "\"meta\" is not a JSON object");
        tmp.meta = (json_t *)meta;
    }
    pos = json_object_get(json, "position");
    if (pos && !json_is_null(pos)) {
        int64_t p = 0, off = -1;
        if (!json_is_object(pos))
            return es__err(err, ES_EINVAL, "\"position\" is not an object");
        if ((rc = get_int(pos, "partition", 1, &p, err)) ||
            (rc = get_int(pos, "offset", 1, &off, err)))
            return rc;
        if (p < 0 || p > INT32_MAX || off < 0)
            return es__err(err, ES_EINVAL, "\"position\" is out of range");
        tmp.position.partition = (int32_t)p;
        tmp.position.offset = off;
    }
    commit = json_object_get(json, "commit");
    if (commit && !json_is_null(commit)) {
        int64_t size = 0, index = -1;
        if (!json_is_object(commit))
            return es__err(err, ES_EINVAL, "\"commit\" is not an object");
        if ((rc = es__json_get_str(commit, "id", 1, &tmp.commit_id, err)) ||
            (rc = get_int(commit, "size", 1, &size, err)) ||
            (json_object_get(commit, "index") &&
             (rc = get_int(commit, "index", 1, &index, err))))
            return rc;
        if (size < 1 || size > INT32_MAX)
            return es__err(err, ES_EINVAL, "\"commit\".\"size\" is out of range");
        if (index < -1 || index >= size)
            return es__err(err, ES_EINVAL, "\"commit\".\"index\" is out of range");
        tmp.commit_size = (int32_t)size;
        tmp.commit_index = (int32_t)index;
    }
    if ((rc = es_event_validate(&tmp, 1, err)))
        return rc;
    if ((rc = es_event_copy(out, &tmp)))
        return es__err(err, rc, "out of memory");
    return 0;
}

int es_event_encode(char **out, const es_event *ev)
{
    json_t *j;
    char *s, *copy;
    if (out == NULL || ev == NULL)
        return ES_EINVAL;
    *out = NULL;
    if ((j = es_event_to_json(ev)) == NULL)
        return ES_ENOMEM;
    s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (s == NULL)
        return ES_ENOMEM;
    /* jansson allocated with the same hook; hand out our own copy anyway so
     * es_free is right whatever jansson's allocator is. */
    copy = es__strdup(s);
    {
        json_malloc_t jm;
        json_free_t jf;
        json_get_alloc_funcs(&jm, &jf);
        jf(s);
    }
    if (copy == NULL)
        return ES_ENOMEM;
    *out = copy;
    return 0;
}

int es_event_decode(es_event **out, const char *text, size_t len, es_error *err)
{
    json_error_t jerr;
    json_t *j;
    int rc;
    if (out == NULL || text == NULL)
        return es__err(err, ES_EINVAL, "no input");
    *out = NULL;
    /* DECODE_ANY: `42` is JSON, just not an event ("not a JSON object"). */
    j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (j == NULL)
        return es__err(err, ES_EINVAL, "not JSON: %s at line %d, column %d",
                       jerr.text, jerr.line, jerr.column);
    rc = es_event_from_json(out, j, err);
    json_decref(j);
    return rc;
}

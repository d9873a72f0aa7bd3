/*
 * core/upcast.c - chains of payload upcasters keyed by (type, schema).
 */
#include <string.h>

#include "internal.h"
#include "esfold/upcast.h"

typedef struct step {
    char *type;
    int32_t from_schema;
    char *to_type;
    int32_t to_schema;
    es_upcast_fn fn;
    void *user_data;
} step;

struct es_upcasters {
    step *steps;
    size_t n, cap;
};

int es_upcasters_new(es_upcasters **out)
{
    if (out == NULL)
        return ES_EINVAL;
    *out = es__calloc(1, sizeof **out);
    return *out ? 0 : ES_ENOMEM;
}

void es_upcasters_free(es_upcasters *u)
{
    if (u == NULL)
        return;
    for (size_t i = 0; i < u->n; i++) {
        es__free(u->steps[i].type);
        es__free(u->steps[i].to_type);
    }
    es__free(u->steps);
    es__free(u);
}

static const step *find(const es_upcasters *u, const char *type, int32_t schema)
{
    for (size_t i = 0; u && i < u->n; i++)
        if (u->steps[i].from_schema == schema && strcmp(u->steps[i].type, type) == 0)
            return &u->steps[i];
    return NULL;
}

int es_upcasters_add(es_upcasters *u, const char *type, int32_t from_schema,
                     const char *to_type, int32_t to_schema, es_upcast_fn fn,
                     void *user_data)
{
    step s;
    if (u == NULL || type == NULL || *type == '\0' || fn == NULL ||
        (to_type && *to_type == '\0') || from_schema < 1 ||
        to_schema <= from_schema)
        return ES_EINVAL;
    if (find(u, type, from_schema))
        return ES_EINVAL;
    if (u->n == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 8;
        if (es__grow((void **)&u->steps, u->n * sizeof *u->steps,
                     cap * sizeof *u->steps))
            return ES_ENOMEM;
        u->cap = cap;
    }
    s.type = es__strdup(type);
    s.to_type = es__strdup(to_type ? to_type : type);
    if (s.type == NULL || s.to_type == NULL) {
        es__free(s.type);
        es__free(s.to_type);
        return ES_ENOMEM;
    }
    s.from_schema = from_schema;
    s.to_schema = to_schema;
    s.fn = fn;
    s.user_data = user_data;
    u->steps[u->n++] = s;
    return 0;
}

int es_upcasters_match(const es_upcasters *u, const char *type, int32_t schema)
{
    return type && find(u, type, schema) != NULL;
}

int es_upcasters_apply(const es_upcasters *u, es_event *ev, es_error *err)
{
    const step *s;
    if (ev == NULL || ev->type == NULL)
        return es__err(err, ES_EINVAL, "no event or event type to upcast");
    /* Each step raises the schema, so the chain ends. */
    while ((s = find(u, ev->type, ev->schema)) != NULL) {
        json_t *copy, *res;
        if (!json_is_object(ev->payload))
            return es__err(err, ES_EINVAL, "%s/%s version %lld: the payload of "
                           "'%s' is not a JSON object", ev->aggregate_type ?
                           ev->aggregate_type : "?", ev->stream_id ?
                           ev->stream_id : "?", (long long)ev->version, ev->type);
        if ((copy = json_deep_copy(ev->payload)) == NULL)
            return es__err(err, ES_ENOMEM, "out of memory");
        res = s->fn(copy, s->user_data);
        if (res == NULL || !json_is_object(res)) {
            json_decref(res);
            return es__err(err, ES_EINVAL,
                           "%s/%s version %lld: upcaster %s/%d -> %s/%d %s",
                           ev->aggregate_type ? ev->aggregate_type : "?",
                           ev->stream_id ? ev->stream_id : "?",
                           (long long)ev->version, s->type, (int)s->from_schema,
                           s->to_type, (int)s->to_schema,
                           res == NULL ? "failed" : "returned a non-object");
        }
        if (strcmp(ev->type, s->to_type) != 0 &&
            es_event_set_str(ev, &ev->type, s->to_type) != 0) {
            json_decref(res);
            return es__err(err, ES_ENOMEM, "out of memory");
        }
        json_decref(ev->payload);
        ev->payload = res;
        ev->schema = s->to_schema;
    }
    return 0;
}

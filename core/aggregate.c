/*
 * core/aggregate.c - an aggregate instance and folding one event into it.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "esfold/aggregate.h"

/* The reason es_apply_fail gave for the apply call in progress on this
 * thread: kept with the event it names, so that a stale reason (an apply
 * of another fold, a call outside apply) is never reported. */
static _Thread_local const es_event *fail_ev;
static _Thread_local char fail_why[ES__ERRMSG_MAX / 2];

int es_apply_fail(const es_event *ev, const char *fmt, ...)
{
    va_list ap;
    fail_ev = ev;
    va_start(ap, fmt);
    vsnprintf(fail_why, sizeof fail_why, fmt ? fmt : "", ap);
    va_end(ap);
    return ES_EINVAL;
}

struct es_aggregate {
    const es_aggregate_type *type;
    char *stream_id;
    int64_t version;
    int64_t time_us;
    es_position position;
    int64_t folded;
    void *state;
};

int es_aggregate_new(es_aggregate **out, const es_aggregate_type *type,
                     const char *stream_id)
{
    es_aggregate *agg;
    if (out == NULL)
        return ES_EINVAL;
    *out = NULL;
    if (type == NULL || stream_id == NULL || type->name == NULL)
        return ES_EINVAL;
    agg = es__calloc(1, sizeof *agg);
    if (agg == NULL)
        return ES_ENOMEM;
    agg->type = type;
    agg->position.offset = -1;
    agg->stream_id = es__strdup(stream_id);
    agg->state = es__calloc(1, type->state_size ? type->state_size : 1);
    if (agg->stream_id == NULL || agg->state == NULL) {
        es__free(agg->stream_id);
        es__free(agg->state);
        es__free(agg);
        return ES_ENOMEM;
    }
    if (type->init)
        type->init(agg->state);
    *out = agg;
    return 0;
}

void es_aggregate_free(es_aggregate *agg)
{
    if (agg == NULL)
        return;
    if (agg->type->release)
        agg->type->release(agg->state);
    es__free(agg->state);
    es__free(agg->stream_id);
    es__free(agg);
}

es_apply_fn es_aggregate_type_find(const es_aggregate_type *type,
                                   const char *event_type)
{
    const es_handler *h;
    if (type == NULL || event_type == NULL)
        return NULL;
    for (h = type->handlers; h && h->event_type; h++)
        if (strcmp(h->event_type, event_type) == 0)
            return h->apply;
    return type->apply;
}

int32_t es_aggregate_type_schema(const es_aggregate_type *type,
                                 const char *event_type)
{
    const es_event_schema *s;
    if (type == NULL || event_type == NULL)
        return 1;
    for (s = type->schemas; s && s->event_type; s++)
        if (strcmp(s->event_type, event_type) == 0)
            return s->schema >= 1 ? s->schema : 1;
    return 1;
}

int es_aggregate_apply(es_aggregate *agg, const es_event *ev, es_error *err)
{
    es_apply_fn fn;
    int rc;
    if (agg == NULL || ev == NULL)
        return es__err(err, ES_EINVAL, "no aggregate or event");
    if (ev->version != agg->version + 1)
        return es__err(err, ES_ECORRUPT,
                       "%s/%s: event %s has version %lld, expected %lld",
                       agg->type->name, agg->stream_id, ev->type,
                       (long long)ev->version, (long long)agg->version + 1);
    fn = es_aggregate_type_find(agg->type, ev->type);
    if (fn == NULL) {
        if (!agg->type->ignore_unknown)
            return es__err(err, ES_EUNHANDLED,
                           "%s/%s version %lld: no apply for event type '%s' "
                           "(schema %d)", agg->type->name, agg->stream_id,
                           (long long)ev->version, ev->type, (int)ev->schema);
    } else {
        fail_ev = NULL;
        if ((rc = fn(agg->state, ev)) != 0) {
            int have = fail_ev == ev && fail_why[0];
            fail_ev = NULL;
            return es__err(err, rc < 0 ? rc : ES_EINVAL,
                           "%s/%s version %lld: apply of '%s' failed: %s",
                           agg->type->name, agg->stream_id,
                           (long long)ev->version, ev->type, have ? fail_why : es_strerror(rc < 0 ? rc : ES_EINVAL));
        }
    }
    agg->version = ev->version;
    agg->time_us = ev->occurred_us;
    agg->position = ev->position;
    agg->folded++;
    return 0;
}

const es_aggregate_type *es_aggregate_type_of(const es_aggregate *agg)
{
    return agg ? agg->type : NULL;
}

const char *es_aggregate_stream_id(const es_aggregate *agg)
{
    return agg ? agg->stream_id : NULL;
}

const void *es_aggregate_state(const es_aggregate *agg)
{
    return agg ? agg->state : NULL;
}

void *es_aggregate_state_mut(es_aggregate *agg)
{
    return agg ? agg->state : NULL;
}

int64_t es_aggregate_version(const es_aggregate *agg)
{
    return agg ? agg->version : 0;
}

int64_t es_aggregate_time_us(const es_aggregate *agg)
{
    return agg ? agg->time_us : 0;
}

es_position es_aggregate_position(const es_aggregate *agg)
{
    es_position none = {0, -1};
    return agg ? agg->position : none;
}

int64_t es_aggregate_folded(const es_aggregate *agg)
{
    return agg ? agg->folded : 0;
}

void es_aggregate_set_origin(es_aggregate *agg, int64_t version,
                             int64_t time_us, es_position position)
{
    if (agg == NULL)
        return;
    agg->version = version;
    agg->time_us = time_us;
    agg->position = position;
}

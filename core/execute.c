/*
 * core/execute.c - the emitter decide functions fill, and the steps of
 * executing a command that the repository and the processor share.
 */
#include <stdio.h>
#include <string.h>

#include "esfold/time.h"
#include "execute.h"
#include "log_backend.h"

int es_emit_with(es_emitter *em, const char *event_type, json_t *payload,
                 const es_emit_options *opts)
{
    es_event *ev;
    es__emitted *g;
    if (em == NULL || event_type == NULL || *event_type == '\0' ||
        !json_is_object(payload) ||
        (opts && (opts->version != ES_EMIT_OPTIONS_VERSION || opts->schema < 0 ||
                  (opts->meta && !json_is_object(opts->meta))))) {
        json_decref(payload);
        return ES_EINVAL;
    }
    if (em->n == em->cap) {
        size_t cap = em->cap ? em->cap * 2 : 4;
        if (es__grow((void **)&em->events, em->cap * sizeof *em->events,
                     cap * sizeof *em->events) ||
            es__grow((void **)&em->given, em->cap * sizeof *em->given,
                     cap * sizeof *em->given)) {
            json_decref(payload);
            em->oom = 1;
            return ES_ENOMEM;
        }
        em->cap = cap;
    }
    ev = &em->events[em->n];
    g = &em->given[em->n];
    memset(ev, 0, sizeof *ev);
    memset(g, 0, sizeof *g);
    if ((ev->type = es__strdup(event_type)) == NULL)
        goto oom;
    ev->payload = payload;
    em->n++; /* from here es__emitter_reset frees what is set */
    ev->schema = opts && opts->schema > 0 ? opts->schema
                                          : es_aggregate_type_schema(em->type, event_type);
    if (opts) {
        ev->occurred_us = opts->occurred_us;
        g->meta = json_incref(opts->meta);
        if ((opts->id && (g->id = es__strdup(opts->id)) == NULL) ||
            (opts->correlation_id &&
             (g->correlation_id = es__strdup(opts->correlation_id)) == NULL) ||
            (opts->causation_id &&
             (g->causation_id = es__strdup(opts->causation_id)) == NULL)) {
            em->oom = 1;
            return ES_ENOMEM;
        }
    }
    return 0;
oom:
    json_decref(payload);
    em->oom = 1;
    return ES_ENOMEM;
}

int es_emit_new(es_emitter *em, const char *event_type, json_t *payload)
{
    return es_emit_with(em, event_type, payload, NULL);
}

int es_refuse(es_emitter *em, const char *fmt, ...)
{
    char buf[ES__ERRMSG_MAX];
    va_list ap;
    if (em == NULL)
        return ES_EREFUSED;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt ? fmt : "refused", ap);
    va_end(ap);
    es__free(em->refusal);
    em->refusal = es__strdup(buf);
    if (em->refusal == NULL)
        em->oom = 1;
    return ES_EREFUSED;
}

void es__emitter_reset(es_emitter *em)
{
    for (size_t i = 0; i < em->n; i++) {
        es__free((void *)em->events[i].type);
        json_decref(em->events[i].payload);
        es__free(em->given[i].id);
        es__free(em->given[i].correlation_id);
        es__free(em->given[i].causation_id);
        json_decref(em->given[i].meta);
    }
    em->n = 0;
    es__free(em->refusal);
    em->refusal = NULL;
    em->oom = 0;
}

void es__emitter_free(es_emitter *em)
{
    es__emitter_reset(em);
    es__free(em->events);
    es__free(em->given);
    es__free(em->ids);
    em->events = NULL;
    em->given = NULL;
    em->ids = NULL;
    em->cap = em->ids_cap = 0;
}

int es__emitter_decide(es_emitter *em, es__handle *h,
                       const es_aggregate_type *atype, const char *stream_id,
                       es_decide_fn decide, const void *state, int64_t version,
                       const void *command, void *user_data)
{
    const char *type = atype->name;
    int rc;
    es__emitter_reset(em);
    em->type = atype;
    rc = decide(state, version, command, em, user_data);
    if (em->oom)
        return es__fail(h, ES_ENOMEM, "out of memory");
    if (rc == ES_EREFUSED || em->refusal)
        return es__fail(h, ES_EREFUSED, "%s/%s: command refused: %s", type,
                        stream_id, em->refusal ? em->refusal : "no reason given");
    if (rc != 0)
        return es__fail(h, rc < 0 ? rc : ES_EUSER, "%s/%s: decide failed: %s",
                        type, stream_id, es_strerror(rc < 0 ? rc : ES_EUSER));
    return 0;
}

int es__emitter_append(es_emitter *em, es__handle *h, es_log *log,
                       es_append_result *ar, const char *type,
                       const char *stream_id, int64_t version,
                       const es_execute_options *opts)
{
    int64_t now;
    int rc;
    if (em->n > em->ids_cap) {
        es__free(em->ids);
        em->ids_cap = 0;
        if ((em->ids = es__calloc(em->n, sizeof *em->ids)) == NULL)
            return es__fail(h, ES_ENOMEM, "out of memory");
        em->ids_cap = em->n;
    }
    now = es_time_now_us();
    for (size_t i = 0; i < em->n; i++) {
        es_event *ev = &em->events[i];
        const es__emitted *g = &em->given[i];
        if (g->id)
            ev->id = g->id;
        else if (opts && opts->command_id) {
            if ((rc = es_command_event_id(em->ids[i], type, stream_id,
                                          opts->command_id, i)) != 0)
                return es__fail(h, rc, "%s/%s: command id is empty", type,
                                stream_id);
            ev->id = em->ids[i];
        } else {
            if ((rc = es_uuid_v7(em->ids[i])) != 0)
                return es__fail(h, rc, "%s/%s: no random bytes for event ids",
                                type, stream_id);
            ev->id = em->ids[i];
        }
        if (ev->occurred_us == 0)
            ev->occurred_us = now;
        ev->correlation_id = g->correlation_id ? g->correlation_id
                           : opts ? opts->correlation_id : NULL;
        ev->causation_id = g->causation_id ? g->causation_id
                         : opts ? opts->causation_id : NULL;
        ev->meta = g->meta ? g->meta : opts ? opts->meta : NULL;
    }
    rc = es_log_append(log, ar, type, stream_id,
                       version == 0 ? ES_EXPECT_NO_STREAM : version, em->events,
                       em->n);
    if (rc != 0)
        es__fail(h, rc, "%s", es_errmsg(log));
    return rc;
}

int es__execute_options(es__handle *h, es_execute_options *out,
                        const es_execute_options *opts)
{
    es_execute_options defaults = ES_EXECUTE_OPTIONS_INIT;
    *out = defaults;
    if (opts == NULL)
        return 0;
    if (opts->version == 1) { /* correlation, causation, meta */
        out->correlation_id = opts->correlation_id;
        out->causation_id = opts->causation_id;
        out->meta = opts->meta;
        return 0;
    }
    if (opts->version != ES_EXECUTE_OPTIONS_VERSION)
        return es__fail(h, ES_EINVAL,
                        "execute: unknown es_execute_options version %u",
                        opts->version);
    *out = *opts;
    if (out->expected_version < ES_EXPECT_ANY)
        return es__fail(h, ES_EINVAL, "execute: expected version %lld is "
                        "invalid (use a version, 0 for no stream, or "
                        "ES_EXPECT_ANY)", (long long)out->expected_version);
    if (out->command_id && *out->command_id == '\0')
        return es__fail(h, ES_EINVAL, "execute: the command id is empty");
    return 0;
}

int es__command_done(es__handle *h, es_log *log, es_execute_result *out,
                     const char *type, const char *stream_id,
                     const es_execute_options *opts, int *found)
{
    char id[ES_UUID_BUFSZ];
    es__id_place first, last;
    int rc, got;

    *found = 0;
    if (opts->command_id == NULL)
        return 0;
    es_command_event_id(id, type, stream_id, opts->command_id, 0);
    if ((rc = es__log_find_id(log, &first, &got, type, stream_id, id)) != 0)
        return es__fail(h, rc, "%s", es_errmsg(log));
    if (!got)
        return 0;
    if (strcmp(first.agg_type, type) != 0 || strcmp(first.stream_id, stream_id) != 0)
        return es__fail(h, ES_EINVAL, "%s/%s: the events of command %s are in "
                        "%s/%s", type, stream_id, opts->command_id,
                        first.agg_type, first.stream_id);
    out->events = first.commit_size > 0 ? (size_t)first.commit_size : 1;
    out->version = first.version + (int64_t)out->events - 1;
    out->actual_version = first.version - 1;
    out->last = first.position;
    out->last.offset += (int64_t)out->events - 1;
    if (out->events > 1) {
        es_command_event_id(id, type, stream_id, opts->command_id,
                            out->events - 1);
        if ((rc = es__log_find_id(log, &last, &got, type, stream_id, id)) != 0)
            return es__fail(h, rc, "%s", es_errmsg(log));
        if (got)
            out->last = last.position;
    }
    out->duplicate = 1;
    *found = 1;
    return 0;
}

void es__emitter_appended(const es_emitter *em, size_t i, const char *type,
                          const char *stream_id, const es_append_result *ar,
                          es_event *out)
{
    *out = em->events[i];
    out->aggregate_type = type;
    out->stream_id = stream_id;
    out->version = ar->first_version + (int64_t)i;
    /* A commit lands in one partition; when its offsets are dense (always
     * on SQLite, on Kafka unless other records came between) event i is at
     * first + i. Otherwise only the ends are known. */
    if (i + 1 == em->n)
        out->position = ar->last;
    else {
        out->position = ar->first;
        if (ar->last.partition == ar->first.partition &&
            ar->last.offset - ar->first.offset == (int64_t)em->n - 1)
            out->position.offset += (int64_t)i;
    }
}


/*
 * core/execute.c - the emitter decide functions fill, and the steps of
 * executing a command that the repository and the processor share.
 */
#include <stdio.h>
#include <string.h>

#include "esfold/time.h"
#include "execute.h"

int es_emit_new(es_emitter *em, const char *event_type, json_t *payload)
{
    es_event *ev;
    if (em == NULL || event_type == NULL || *event_type == '\0' ||
        !json_is_object(payload)) {
        json_decref(payload);
        return ES_EINVAL;
    }
    if (em->n == em->cap) {
        size_t cap = em->cap ? em->cap * 2 : 4;
        if (es__grow((void **)&em->events, em->n * sizeof *em->events,
                     cap * sizeof *em->events)) {
            json_decref(payload);
            em->oom = 1;
            return ES_ENOMEM;
        }
        em->cap = cap;
    }
    ev = &em->events[em->n];
    memset(ev, 0, sizeof *ev);
    if ((ev->type = es__strdup(event_type)) == NULL) {
        json_decref(payload);
        em->oom = 1;
        return ES_ENOMEM;
    }
    ev->payload = payload;
    ev->schema = 1;
    em->n++;
    return 0;
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
    es__free(em->ids);
    em->events = NULL;
    em->ids = NULL;
    em->cap = em->ids_cap = 0;
}

int es__emitter_decide(es_emitter *em, es__handle *h, const char *type,
                       const char *stream_id, es_decide_fn decide,
                       const void *state, int64_t version,
                       const void *command, void *user_data)
{
    int rc;
    es__emitter_reset(em);
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
        if ((rc = es_uuid_v7(em->ids[i])) != 0)
            return es__fail(h, rc, "%s/%s: no random bytes for event ids", type,
                            stream_id);
        em->events[i].id = em->ids[i];
        em->events[i].occurred_us = now;
        if (opts) {
            em->events[i].correlation_id = opts->correlation_id;
            em->events[i].causation_id = opts->causation_id;
            em->events[i].meta = opts->meta;
        }
    }
    rc = es_log_append(log, ar, type, stream_id,
                       version == 0 ? ES_EXPECT_NO_STREAM : version, em->events,
                       em->n);
    if (rc != 0)
        es__fail(h, rc, "%s", es_errmsg(log));
    return rc;
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


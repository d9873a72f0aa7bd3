/*
 * projections/target.c - the target handle: a backend and a message.
 *
 * Arguments are checked by the callers (the worker); this file only
 * dispatches, so that every backend is driven the same way.
 */
#include <stdlib.h>
#include <string.h>

#include "projections/target_backend.h"

int es__target_open_backend(es__target **out, const es__target_backend *b,
                            const char *uri)
{
    es__target *t;
    int rc;

    *out = NULL;
    if ((t = es__calloc(1, sizeof *t)) == NULL)
        return ES_ENOMEM;
    es__handle_init(&t->h);
    t->backend = b;
    if ((t->name = es__uri_redact(uri)) == NULL) {
        es__free(t);
        return ES_ENOMEM;
    }
    *out = t;
    if (b->version != ES__TARGET_BACKEND_VERSION)
        return es__fail(&t->h, ES_EINVAL, "%s: target backend %s has version "
                        "%d, expected %d", t->name, b->name, b->version,
                        ES__TARGET_BACKEND_VERSION);
    if ((rc = b->open(t, &t->self, uri)) != 0)
        t->self = NULL;
    return rc;
}

void es__target_close(es__target *t)
{
    if (t == NULL)
        return;
    if (t->self)
        t->backend->close(t->self);
    es__free(t->name);
    es__free(t);
}

int es__target_begin(es__target *t)
{
    return t->backend->begin(t, t->self);
}

int es__target_commit(es__target *t)
{
    return t->backend->commit(t, t->self);
}

void es__target_rollback(es__target *t)
{
    if (t->in_pipeline) {
        int tag;
        (void)es__target_pipeline_sync(t, &tag);
    }
    t->backend->rollback(t, t->self);
}

int es__target_exec(es__target *t, const char *statement,
                    const es_sql_value *params, size_t n, int64_t *changes,
                    int tag)
{
    return t->backend->exec(t, t->self, statement, params, n, changes, tag);
}

int es__target_exec0(es__target *t, const char *statement)
{
    return es__target_exec(t, statement, NULL, 0, NULL, -1);
}

int es__target_query(es__target *t, const char *statement,
                     const es_sql_value *params, size_t n, es__row_cb cb,
                     void *ud)
{
    return t->backend->query(t, t->self, statement, params, n, cb, ud);
}

int es__target_pipeline_begin(es__target *t)
{
    if (t->backend->pipeline_begin == NULL)
        return 0;
    if (t->backend->pipeline_begin(t, t->self) != 0)
        return 0; /* one by one instead */
    t->in_pipeline = 1;
    return 1;
}

int es__target_pipeline_sync(es__target *t, int *failed_tag)
{
    *failed_tag = -1;
    if (!t->in_pipeline)
        return 0;
    t->in_pipeline = 0;
    return t->backend->pipeline_sync(t, t->self, failed_tag);
}

int es__target_pipeline_flush(es__target *t)
{
    if (!t->in_pipeline || t->backend->pipeline_flush == NULL)
        return -1;
    return t->backend->pipeline_flush(t, t->self) == 0 ? 0 : -1;
}

char *es__json_text(const json_t *v)
{
    size_t flags = JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY;
    size_t n = json_dumpb(v, NULL, 0, flags);
    char *text;
    if (n == 0 || (text = es__malloc(n + 1)) == NULL)
        return NULL;
    json_dumpb(v, text, n, flags);
    text[n] = '\0';
    return text;
}

int es_projection_default_target(char **out, const char *log_uri)
{
    const char *env = getenv("ESFOLD_TARGET");
    const char *path, *q;
    size_t n;

    if (out == NULL)
        return ES_EINVAL;
    *out = NULL;
    if (env && *env) {
        *out = es__strdup(env);
    } else if (log_uri && strncmp(log_uri, "sqlite:", 7) == 0 &&
               strncmp(log_uri + 7, ":memory:", 8) != 0 && log_uri[7] != '\0') {
        path = log_uri + 7;
        q = strchr(path, '?');
        n = q ? (size_t)(q - path) : strlen(path);
        if (n > 3 && memcmp(path + n - 3, ".db", 3) == 0)
            n -= 3;
        *out = es__sprintf("sqlite:%.*s.projections.db", (int)n, path);
    } else {
        *out = es__strdup(ES_PROJECTION_DEFAULT_TARGET);
    }
    return *out ? 0 : ES_ENOMEM;
}


int es__target_i64_row(int ncols, const char *const *vals, void *ud)
{
    es__i64_row *r = ud;
    if (ncols >= 1 && vals[0] && es__parse_i64(&r->v, vals[0]) == 0)
        r->found = 1;
    return 0;
}

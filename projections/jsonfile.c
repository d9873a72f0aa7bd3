/*
 * projections/jsonfile.c - projections written as a JSON file of SQL
 * statements per event type (esfold/projection.h, es_projection_load_file).
 *
 * Each statement names event fields as $name parameters. Loading rewrites
 * every name to a positional $k (the same name, the same k) and keeps what
 * each k stands for; applying an event binds those values. The scan skips
 * string literals ('...'), quoted identifiers ("...") and comments, so a
 * '$x' inside a literal stays text. Positional $1 and dollar quoting are
 * refused: a file names its parameters, and dollar quoting is PostgreSQL's
 * alone.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esfold/time.h"
#include "projections/target_backend.h"

typedef enum field {
    F_STREAM_ID, F_VERSION, F_TYPE, F_OCCURRED_AT, F_OCCURRED_US, F_EVENT_ID,
    F_POSITION, F_PARTITION, F_AGGREGATE_TYPE, F_CORRELATION_ID,
    F_CAUSATION_ID, F_SCHEMA, F_DATA, F_META
} field;

static const struct {
    const char *name;
    field f;
} fields[] = {
    {"stream_id", F_STREAM_ID}, {"version", F_VERSION}, {"type", F_TYPE},
    {"occurred_at", F_OCCURRED_AT}, {"occurred_us", F_OCCURRED_US},
    {"event_id", F_EVENT_ID}, {"position", F_POSITION},
    {"partition", F_PARTITION}, {"aggregate_type", F_AGGREGATE_TYPE},
    {"correlation_id", F_CORRELATION_ID}, {"causation_id", F_CAUSATION_ID},
    {"schema", F_SCHEMA}, {"data", F_DATA}, {"meta", F_META},
};

#define MAX_PARAMS 64
#define MAX_PATH 16

typedef struct param {
    char *name;              /* as written, without the $: "data.a.b" */
    field f;
    char *path[MAX_PATH];    /* for data./meta.: the members */
    size_t npath;
    int optional;            /* written $data.x?: NULL when x is absent */
} param;

typedef struct stmt {
    char *sql;               /* rewritten: $1..$n */
    char *where;             /* "FILE: "on"."TYPE"[K]", for messages */
    param params[MAX_PARAMS];
    size_t nparams;
} stmt;

typedef struct on_type {
    char *type;
    stmt *stmts;
    size_t n;
} on_type;

/* Also what es_projection_keyed makes (keyed set, on and setup NULL). */
typedef struct json_projection {
    es_projection p;         /* first: es_projection_free casts back */
    char *name;
    char **follows;
    char **setup;
    on_type *on;
    size_t non;
    es_projection_handler *handlers;
    es__keyed *keyed;        /* a keyed fold ("keyed" instead of "on") */
} json_projection;

static void free_stmt(stmt *s)
{
    es__free(s->sql);
    es__free(s->where);
    for (size_t i = 0; i < s->nparams; i++) {
        es__free(s->params[i].name);
        for (size_t k = 0; k < s->params[i].npath; k++)
            es__free(s->params[i].path[k]);
    }
}

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        es__free(v[i]);
    es__free(v);
}

void es_projection_free(es_projection *p)
{
    json_projection *j = (json_projection *)p;
    if (j == NULL)
        return;
    es__free(j->name);
    free_strv(j->follows);
    free_strv(j->setup);
    for (size_t i = 0; j->on && i < j->non; i++) {
        for (size_t k = 0; k < j->on[i].n; k++)
            free_stmt(&j->on[i].stmts[k]);
        es__free(j->on[i].stmts);
        es__free(j->on[i].type);
    }
    es__free(j->on);
    es__free(j->handlers);
    es__keyed_free(j->keyed);
    es__free(j);
}

/* ---- loading ------------------------------------------------------------ */

/* Parses the name after a $ (at *pp) into a param of s; its index. */
static int add_param(stmt *s, const char *name, size_t len, int optional,
                     const char *where, es_error *err, size_t *index)
{
    param *pa;
    const char *dot;
    size_t head;

    for (size_t i = 0; i < s->nparams; i++)
        if (strlen(s->params[i].name) == len &&
            memcmp(s->params[i].name, name, len) == 0 &&
            s->params[i].optional == optional) {
            *index = i;
            return 0;
        }
    if (s->nparams == MAX_PARAMS)
        return es__err(err, ES_EINVAL, "%s: more than %d parameters", where,
                       MAX_PARAMS);
    pa = &s->params[s->nparams++]; /* counted now: free_stmt frees a part */
    memset(pa, 0, sizeof *pa);
    dot = memchr(name, '.', len);
    head = dot ? (size_t)(dot - name) : len;
    {
        size_t i;
        for (i = 0; i < sizeof fields / sizeof *fields; i++)
            if (strlen(fields[i].name) == head &&
                memcmp(fields[i].name, name, head) == 0)
                break;
        if (i == sizeof fields / sizeof *fields ||
            (dot && fields[i].f != F_DATA && fields[i].f != F_META))
            return es__err(err, ES_EINVAL, "%s: unknown parameter $%.*s "
                           "(known: $stream_id, $version, $type, $occurred_at, "
                           "$occurred_us, $event_id, $position, $partition, "
                           "$aggregate_type, $correlation_id, $causation_id, "
                           "$schema, $data, $data.PATH, $meta, $meta.PATH)",
                           where, (int)len, name);
        pa->f = fields[i].f;
        if (optional && pa->f != F_DATA && pa->f != F_META)
            return es__err(err, ES_EINVAL, "%s: $%.*s?: only $data and $meta "
                           "members can be optional", where, (int)len, name);
        pa->optional = optional;
    }
    while (dot) {
        const char *start = dot + 1, *end = name + len;
        const char *next = memchr(start, '.', (size_t)(end - start));
        size_t n = (size_t)((next ? next : end) - start);
        if (n == 0)
            return es__err(err, ES_EINVAL, "%s: $%.*s has an empty member "
                           "name", where, (int)len, name);
        if (pa->npath == MAX_PATH)
            return es__err(err, ES_EINVAL, "%s: $%.*s is too deep", where,
                           (int)len, name);
        if ((pa->path[pa->npath++] = es__strndup(start, n)) == NULL)
            return es__err(err, ES_ENOMEM, "out of memory");
        dot = next;
    }
    if ((pa->name = es__strndup(name, len)) == NULL)
        return es__err(err, ES_ENOMEM, "out of memory");
    *index = s->nparams - 1;
    return 0;
}

/* Rewrites sql's $names into s. */
static int compile(stmt *s, const char *sql, const char *where, es_error *err)
{
    es__buf out = {NULL, 0, 0, 0};
    const char *c = sql;
    int rc = 0;

    memset(s, 0, sizeof *s);
    while (*c && rc == 0) {
        if (*c == '\'' || *c == '"') {
            const char q = *c;
            const char *e = c + 1;
            for (;;) {
                if (*e == '\0')
                    break;
                if (*e == q && e[1] == q) {
                    e += 2;
                    continue;
                }
                if (*e == q)
                    break;
                e++;
            }
            if (*e == '\0') {
                rc = es__err(err, ES_EINVAL, "%s: unterminated %s", where,
                             q == '\'' ? "string literal" : "quoted identifier");
                break;
            }
            es__buf_add(&out, c, (size_t)(e + 1 - c));
            c = e + 1;
        } else if (c[0] == '-' && c[1] == '-') {
            const char *e = strchr(c, '\n');
            size_t n = e ? (size_t)(e - c) : strlen(c);
            es__buf_add(&out, c, n);
            c += n;
        } else if (c[0] == '/' && c[1] == '*') {
            const char *e = strstr(c + 2, "*/");
            size_t n = e ? (size_t)(e + 2 - c) : strlen(c);
            es__buf_add(&out, c, n);
            c += n;
        } else if (*c == '$') {
            const char *n = c + 1;
            size_t len = 0, idx = 0;
            if (isdigit((unsigned char)*n)) {
                rc = es__err(err, ES_EINVAL, "%s: positional parameter $%c: "
                             "name an event field instead ($stream_id, "
                             "$data.amount, ...)", where, *n);
                break;
            }
            if (!(isalpha((unsigned char)*n) || *n == '_')) {
                rc = es__err(err, ES_EINVAL, "%s: a '$' that does not start a "
                             "parameter name (dollar quoting is not portable)",
                             where);
                break;
            }
            while (isalnum((unsigned char)n[len]) || n[len] == '_' ||
                   (n[len] == '.' && (isalnum((unsigned char)n[len + 1]) ||
                                      n[len + 1] == '_')))
                len++;
            if ((rc = add_param(s, n, len, n[len] == '?', where, err,
                                &idx)) != 0)
                break;
            es__buf_printf(&out, "$%zu", idx + 1);
            c = n + len + (n[len] == '?');
        } else {
            es__buf_add(&out, c, 1);
            c++;
        }
    }
    if (rc == 0 && out.oom)
        rc = es__err(err, ES_ENOMEM, "out of memory");
    if (rc == 0 && out.data == NULL)
        rc = es__err(err, ES_EINVAL, "%s: an empty statement", where);
    if (rc != 0) {
        es__buf_free(&out);
        free_stmt(s);
        memset(s, 0, sizeof *s);
        return rc;
    }
    if ((s->where = es__strdup(where)) == NULL) {
        es__buf_free(&out);
        free_stmt(s);
        memset(s, 0, sizeof *s);
        return es__err(err, ES_ENOMEM, "out of memory");
    }
    s->sql = out.data;
    return 0;
}

/* A NULL-terminated copy of an array of strings (member `key`). */
static int strv(char ***out, const json_t *a, const char *key, int required,
                const char *path, es_error *err)
{
    size_t n;
    *out = NULL;
    if (a == NULL && !required) {
        *out = es__calloc(1, sizeof **out);
        return *out ? 0 : es__err(err, ES_ENOMEM, "out of memory");
    }
    if (!json_is_array(a) || (required && json_array_size(a) == 0))
        return es__err(err, ES_EINVAL, "%s: \"%s\" must be a%s array of strings",
                       path, key, required ? " non-empty" : "n");
    n = json_array_size(a);
    if ((*out = es__calloc(n + 1, sizeof **out)) == NULL)
        return es__err(err, ES_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (s == NULL || *s == '\0')
            return es__err(err, ES_EINVAL, "%s: \"%s\"[%zu] must be a "
                           "non-empty string", path, key, i);
        if (((*out)[i] = es__strdup(s)) == NULL)
            return es__err(err, ES_ENOMEM, "out of memory");
    }
    return 0;
}

static int json_handler(es_sql *sql, const es_event *ev, void *user_data);

static int load(json_projection *j, const json_t *root, const char *path,
                es_error *err)
{
    const json_t *on, *stmts;
    const char *type, *name = json_string_value(json_object_get(root, "name"));
    json_t *version = json_object_get(root, "version");
    size_t i = 0;
    int rc;

    if (!json_is_object(root))
        return es__err(err, ES_EINVAL, "%s: not a JSON object", path);
    {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)root, key, v) {
            if (strcmp(key, "name") && strcmp(key, "version") &&
                strcmp(key, "follows") && strcmp(key, "setup") &&
                strcmp(key, "on") && strcmp(key, "keyed") &&
                strcmp(key, "description"))
                return es__err(err, ES_EINVAL, "%s: unknown member \"%s\" "
                               "(expected name, version, follows, setup, on "
                               "or keyed)",
                               path, key);
        }
    }
    if (name == NULL)
        return es__err(err, ES_EINVAL, "%s: \"name\" must be a string", path);
    if (version && (!json_is_integer(version) || json_integer_value(version) < 1 ||
                    json_integer_value(version) > INT32_MAX))
        return es__err(err, ES_EINVAL, "%s: \"version\" must be an integer >= 1",
                       path);
    if ((j->name = es__strdup(name)) == NULL)
        return es__err(err, ES_ENOMEM, "out of memory");
    if ((rc = strv(&j->follows, json_object_get(root, "follows"), "follows", 1,
                   path, err)) != 0 ||
        (rc = strv(&j->setup, json_object_get(root, "setup"), "setup", 0, path,
                   err)) != 0)
        return rc;
    if (json_object_get(root, "keyed")) {
        if (json_object_get(root, "on") || json_object_get(root, "setup"))
            return es__err(err, ES_EINVAL, "%s: \"keyed\" generates its own "
                           "setup and handlers: no \"setup\" or \"on\" beside "
                           "it", path);
        if ((rc = es__keyed_load(&j->keyed, json_object_get(root, "keyed"),
                                 path, err)) != 0)
            return rc;
        j->p.setup = es__keyed_setup(j->keyed);
        j->p.handlers = es__keyed_handlers(j->keyed);
        j->p.user_data = j->keyed;
        goto common;
    }
    on = json_object_get(root, "on");
    if (!json_is_object(on) || json_object_size(on) == 0)
        return es__err(err, ES_EINVAL, "%s: \"on\" must be an object of event "
                       "type -> [SQL statements]", path);
    j->non = json_object_size(on);
    if ((j->on = es__calloc(j->non, sizeof *j->on)) == NULL ||
        (j->handlers = es__calloc(j->non + 1, sizeof *j->handlers)) == NULL)
        return es__err(err, ES_ENOMEM, "out of memory");
    json_object_foreach((json_t *)on, type, stmts) {
        on_type *o = &j->on[i];
        json_t *one = NULL;
        if (json_is_string(stmts)) /* one statement without the brackets */
            stmts = one = json_pack("[O]", stmts);
        if (!json_is_array(stmts)) {
            json_decref(one);
            return es__err(err, ES_EINVAL, "%s: \"on\".\"%s\" must be an array "
                           "of SQL statements", path, type);
        }
        if ((o->type = es__strdup(type)) == NULL ||
            (json_array_size(stmts) &&
             (o->stmts = es__calloc(json_array_size(stmts), sizeof *o->stmts)) == NULL)) {
            json_decref(one);
            return es__err(err, ES_ENOMEM, "out of memory");
        }
        for (size_t k = 0; k < json_array_size(stmts); k++) {
            const char *text = json_string_value(json_array_get(stmts, k));
            char where[ES_NAME_MAX + 600];
            snprintf(where, sizeof where, "%s: \"on\".\"%s\"[%zu]", path, type, k);
            if (text == NULL) {
                json_decref(one);
                return es__err(err, ES_EINVAL, "%s: must be a string", where);
            }
            if ((rc = compile(&o->stmts[k], text, where, err)) != 0) {
                json_decref(one);
                return rc;
            }
            o->n++;
        }
        json_decref(one);
        j->handlers[i].event_type = o->type;
        j->handlers[i].fn = json_handler;
        i++;
    }
    j->p.setup = (const char *const *)j->setup;
    j->p.handlers = j->handlers;
    j->p.user_data = j;
common:
    j->p.struct_version = ES_PROJECTION_VERSION;
    j->p.name = j->name;
    j->p.version = version ? (int32_t)json_integer_value(version) : 1;
    j->p.follows = (const char *const *)j->follows;
    return es__projection_check(&j->p, err);
}

int es_projection_load_json(es_projection **out, const char *text,
                            const char *path, es_error *err)
{
    json_projection *j;
    json_error_t jerr;
    json_t *root;
    int rc;

    if (out == NULL || text == NULL)
        return es__err(err, ES_EINVAL, "no projection text");
    *out = NULL;
    if (path == NULL)
        path = "projection";
    if ((root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
        return es__err(err, ES_EINVAL, "%s:%d:%d: %s", path, jerr.line,
                       jerr.column, jerr.text);
    if ((j = es__calloc(1, sizeof *j)) == NULL) {
        json_decref(root);
        return es__err(err, ES_ENOMEM, "out of memory");
    }
    rc = load(j, root, path, err);
    json_decref(root);
    if (rc != 0) {
        es_projection_free(&j->p);
        return rc;
    }
    *out = &j->p;
    return 0;
}

int es_projection_keyed(es_projection **out, const es_keyed_projection *def,
                        es_error *err)
{
    json_projection *j;
    size_t n = 0;
    int rc;

    if (out == NULL || def == NULL)
        return es__err(err, ES_EINVAL, "no keyed projection");
    *out = NULL;
    if (def->struct_version != ES_KEYED_PROJECTION_VERSION)
        return es__err(err, ES_EINVAL, "es_keyed_projection version %u is not "
                       "supported", def->struct_version);
    if (def->name == NULL)
        return es__err(err, ES_EINVAL, "es_keyed_projection.name: required");
    if ((j = es__calloc(1, sizeof *j)) == NULL)
        return es__err(err, ES_ENOMEM, "out of memory");
    while (def->follows && def->follows[n])
        n++;
    if ((j->name = es__strdup(def->name)) == NULL ||
        (j->follows = es__calloc(n + 1, sizeof *j->follows)) == NULL) {
        rc = es__err(err, ES_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        if ((j->follows[i] = es__strdup(def->follows[i])) == NULL) {
            rc = es__err(err, ES_ENOMEM, "out of memory");
            goto done;
        }
    if ((rc = es__keyed_new(&j->keyed, def, err)) != 0)
        goto done;
    j->p.struct_version = ES_PROJECTION_VERSION;
    j->p.name = j->name;
    j->p.version = def->version;
    j->p.follows = (const char *const *)j->follows;
    j->p.setup = es__keyed_setup(j->keyed);
    j->p.handlers = es__keyed_handlers(j->keyed);
    j->p.user_data = j->keyed;
    rc = es__projection_check(&j->p, err);
done:
    if (rc != 0) {
        es_projection_free(&j->p);
        return rc;
    }
    *out = &j->p;
    return 0;
}

int es_projection_load_file(es_projection **out, const char *path,
                            es_error *err)
{
    es__buf b = {NULL, 0, 0, 0};
    char chunk[8192];
    size_t n;
    FILE *f;
    int rc;

    if (out == NULL || path == NULL)
        return es__err(err, ES_EINVAL, "no projection file");
    *out = NULL;
    if ((f = fopen(path, "rb")) == NULL)
        return es__err(err, ES_EIO, "%s: cannot open: %m", path);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        es__buf_add(&b, chunk, n);
    if (ferror(f)) {
        fclose(f);
        es__buf_free(&b);
        return es__err(err, ES_EIO, "%s: cannot read", path);
    }
    fclose(f);
    if (b.oom) {
        es__buf_free(&b);
        return es__err(err, ES_ENOMEM, "out of memory");
    }
    rc = es_projection_load_json(out, b.data ? b.data : "", path, err);
    es__buf_free(&b);
    return rc;
}

/* ---- applying ----------------------------------------------------------- */

static es_sql_value json_value(const json_t *v)
{
    if (v == NULL)
        return ES_SQL_NULLV;
    switch (json_typeof(v)) {
    case JSON_STRING: return ES_SQL_STR(json_string_value(v));
    case JSON_INTEGER: return ES_SQL_I64(json_integer_value(v));
    case JSON_REAL: return ES_SQL_F64(json_real_value(v));
    case JSON_TRUE: return ES_SQL_BOOLV(1);
    case JSON_FALSE: return ES_SQL_BOOLV(0);
    case JSON_OBJECT:
    case JSON_ARRAY: return ES_SQL_JSONV(v);
    default: return ES_SQL_NULLV;
    }
}

static const json_t *walk(const json_t *v, const param *pa)
{
    for (size_t k = 0; k < pa->npath && v; k++) {
        if (json_is_array(v)) {
            int64_t idx;
            if (es__parse_i64(&idx, pa->path[k]) != 0 || idx < 0)
                return NULL;
            v = json_array_get(v, (size_t)idx);
        } else {
            v = json_object_get(v, pa->path[k]);
        }
    }
    return v;
}

static es_sql_value optional_text(const char *s)
{
    return s ? ES_SQL_STR(s) : ES_SQL_NULLV;
}

static int json_handler(es_sql *sql, const es_event *ev, void *user_data)
{
    json_projection *j = user_data;
    char when[ES_TIME_BUFSZ];
    es_sql_value v[MAX_PARAMS];
    const on_type *o = NULL;
    int rc;

    for (size_t i = 0; i < j->non; i++)
        if (strcmp(j->on[i].type, ev->type) == 0 ||
            (o == NULL && strcmp(j->on[i].type, "*") == 0))
            o = &j->on[i];
    if (o == NULL)
        return 0;
    when[0] = '\0'; /* formatted when a statement names it (10% of a
                      * worker's time into PostgreSQL when done always) */
    for (size_t k = 0; k < o->n; k++) {
        const stmt *s = &o->stmts[k];
        for (size_t i = 0; i < s->nparams; i++) {
            const param *pa = &s->params[i];
            switch (pa->f) {
            case F_STREAM_ID: v[i] = ES_SQL_STR(ev->stream_id); break;
            case F_VERSION: v[i] = ES_SQL_I64(ev->version); break;
            case F_TYPE: v[i] = ES_SQL_STR(ev->type); break;
            case F_OCCURRED_AT:
                if (when[0] == '\0' &&
                    es_time_format(when, sizeof when, ev->occurred_us) < 0) /* else its length */
                    when[0] = '\0';
                v[i] = ES_SQL_STR(when);
                break;
            case F_OCCURRED_US: v[i] = ES_SQL_I64(ev->occurred_us); break;
            case F_EVENT_ID: v[i] = optional_text(ev->id); break;
            case F_POSITION: v[i] = ES_SQL_I64(ev->position.offset); break;
            case F_PARTITION: v[i] = ES_SQL_I64(ev->position.partition); break;
            case F_AGGREGATE_TYPE: v[i] = ES_SQL_STR(ev->aggregate_type); break;
            case F_CORRELATION_ID: v[i] = optional_text(ev->correlation_id); break;
            case F_CAUSATION_ID: v[i] = optional_text(ev->causation_id); break;
            case F_SCHEMA: v[i] = ES_SQL_I64(ev->schema); break;
            case F_DATA:
            case F_META: {
                const json_t *root = pa->f == F_DATA ? ev->payload : ev->meta;
                const json_t *m = root ? walk(root, pa) : NULL;
                /* An absent member is an error unless written $x?: a
                 * misspelt name must not fill a read model with NULLs. */
                if (m == NULL && pa->npath > 0 && !pa->optional)
                    return es_sql_fail(sql, "%s: the event has no $%s (a JSON "
                                       "null is bound as NULL; write $%s? for "
                                       "a member that may be absent)",
                                       s->where, pa->name, pa->name);
                v[i] = json_value(m);
                break;
            }
            }
        }
        if ((rc = es_sql_exec(sql, s->sql, v, s->nparams)) != 0)
            return rc;
    }
    return 0;
}

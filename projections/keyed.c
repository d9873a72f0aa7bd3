/*
 * projections/keyed.c - keyed folds: a JSON document per key folded from
 * events (like a Kafka Streams KTable), declared in a JSON projection file
 * with no SQL (docs/projections.md, "Keyed folds"):
 *
 *   {"name": "owners", "version": 1, "follows": ["account"],
 *    "keyed": {"table": "owner_totals", "key": "$data.owner",
 *              "on": {"Deposited": {"add": {"balance": "$data.amount"},
 *                                   "count": ["deposits"]}}}}
 *
 * The table is T (key TEXT PRIMARY KEY, doc TEXT NOT NULL, version BIGINT
 * NOT NULL): doc the document as compact JSON text, version the number of
 * events folded into it. The worker's fast path hands a whole batch to
 * es__keyed_apply: the batch's keys are read in one query,
 * every event is folded in memory, and the changed documents go back in
 * one go (PostgreSQL: COPY into a temporary staging table and one
 * INSERT .. SELECT .. ON CONFLICT merge; SQLite: a prepared upsert per
 * key), all inside the batch's transaction with the checkpoint. An event
 * that does not fold makes the worker redo the batch event by event with
 * the same fold as a handler (keyed_handler), which dead-letters it.
 *
 * A member an operation targets is a dotted path ("stats.deposits"), made
 * of objects created on the way; a segment "{$data.currency}" takes its
 * name from the event. A keyed fold can also be compiled into a program
 * (es_projection_keyed, esfold/projection.h): its C callback replaces the
 * operations and runs on the same batch path.
 */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/map.h"
#include "projections/target_backend.h"

#define MAX_PATH 16
#define SEG_MAX 255 /* bytes in a member path segment taken from an event */

typedef enum kfield {
    K_STREAM_ID, K_VERSION, K_TYPE, K_OCCURRED_US, K_EVENT_ID, K_POSITION,
    K_PARTITION, K_AGGREGATE_TYPE, K_DATA, K_META
} kfield;

static const struct {
    const char *name;
    kfield f;
} kfields[] = {
    {"stream_id", K_STREAM_ID}, {"version", K_VERSION}, {"type", K_TYPE},
    {"occurred_us", K_OCCURRED_US}, {"event_id", K_EVENT_ID},
    {"position", K_POSITION}, {"partition", K_PARTITION},
    {"aggregate_type", K_AGGREGATE_TYPE}, {"data", K_DATA}, {"meta", K_META},
};

typedef struct fref {
    kfield f;
    char *path[MAX_PATH];
    size_t npath;
} fref;

typedef enum op_kind {
    OP_SET, OP_ADD, OP_SUB, OP_MAX, OP_MIN, OP_COUNT,
    OP_UNSET /* "delete": ["m", ...] */
} op_kind;

static const char *const op_names[] = {"set", "add", "sub", "max", "min",
                                        "count", "delete"};

/* A segment of a member path: a name, or ("{$data.currency}") the value of
 * an event field. */
typedef struct mseg {
    char *text;   /* as written: the name, or "{$data.currency}" */
    int dynamic;
    fref from;    /* dynamic only */
} mseg;

typedef struct kop {
    op_kind kind;
    char *member; /* the path as written, for messages */
    mseg seg[MAX_PATH];
    size_t nseg;
    fref src; /* not for OP_COUNT, OP_UNSET */
} kop;

typedef struct kon {
    char *type;   /* "*": every type without an entry of its own */
    kop *ops;
    size_t nops;
    int del;
    es_keyed_fold_fn cfold; /* the C kind: instead of ops and del */
    void *cud;
} kon;

struct es__keyed {
    char *table;
    char *path;              /* the file, in messages; NULL: the C kind */
    fref key;
    es_keyed_key_fn ckey;    /* the C kind's key function (else key) */
    void *cud;
    kon *on;
    size_t non;
    es_projection_handler *handlers;
    char *setup[2];
    char *get_one_sql, *read_pg_sql, *read_sq_sql, *update_sql, *insert_sql, *delete_sql, *stage_sql, *copy_sql,
        *merge_update_sql, *merge_insert_sql;
};

/* ---- loading ------------------------------------------------------------ */

static void fref_free(fref *r)
{
    for (size_t i = 0; i < r->npath; i++)
        es__free(r->path[i]);
    r->npath = 0;
}

/* "$data.a.b" into r. */
static int fref_parse_text(fref *r, const char *s, const char *where,
                           es_error *err)
{
    const char *dot;
    size_t head, i;
    memset(r, 0, sizeof *r);
    if (s == NULL || s[0] != '$')
        return es__err(err, ES_EINVAL, "%s: must be an event field such as "
                       "\"$stream_id\" or \"$data.amount\"", where);
    s++;
    dot = strchr(s, '.');
    head = dot ? (size_t)(dot - s) : strlen(s);
    for (i = 0; i < sizeof kfields / sizeof *kfields; i++)
        if (strlen(kfields[i].name) == head &&
            memcmp(kfields[i].name, s, head) == 0)
            break;
    if (i == sizeof kfields / sizeof *kfields ||
        (dot && kfields[i].f != K_DATA && kfields[i].f != K_META))
        return es__err(err, ES_EINVAL, "%s: unknown field $%s (known: "
                       "$stream_id, $version, $type, $occurred_us, $event_id, "
                       "$position, $partition, $aggregate_type, $data.PATH, "
                       "$meta.PATH)", where, s);
    r->f = kfields[i].f;
    while (dot) {
        const char *start = dot + 1, *next = strchr(start, '.');
        size_t n = next ? (size_t)(next - start) : strlen(start);
        if (n == 0 || r->npath == MAX_PATH)
            return es__err(err, ES_EINVAL, "%s: $%s has an empty member or "
                           "is too deep", where, s);
        if ((r->path[r->npath++] = es__strndup(start, n)) == NULL)
            return es__err(err, ES_ENOMEM, "out of memory");
        dot = next;
    }
    return 0;
}

static int fref_parse(fref *r, const json_t *v, const char *where,
                      es_error *err)
{
    return fref_parse_text(r, json_string_value(v), where, err);
}

/* The value of r in ev: a new reference, NULL when absent. */
static json_t *fref_value(const fref *r, const es_event *ev)
{
    const json_t *v;
    switch (r->f) {
    case K_STREAM_ID: return json_string(ev->stream_id);
    case K_VERSION: return json_integer(ev->version);
    case K_TYPE: return json_string(ev->type);
    case K_OCCURRED_US: return json_integer(ev->occurred_us);
    case K_EVENT_ID: return ev->id ? json_string(ev->id) : NULL;
    case K_POSITION: return json_integer(ev->position.offset);
    case K_PARTITION: return json_integer(ev->position.partition);
    case K_AGGREGATE_TYPE: return json_string(ev->aggregate_type);
    case K_DATA: v = ev->payload; break;
    default: v = ev->meta; break;
    }
    for (size_t k = 0; k < r->npath && v; k++) {
        if (json_is_array(v)) {
            int64_t idx;
            if (es__parse_i64(&idx, r->path[k]) != 0 || idx < 0)
                return NULL;
            v = json_array_get(v, (size_t)idx);
        } else {
            v = json_object_get(v, r->path[k]);
        }
    }
    return v ? json_incref((json_t *)v) : NULL;
}

static int ident_ok(const char *s)
{
    if (s == NULL || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                       *s == '_') || strlen(s) > 60)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

static void kop_free(kop *op)
{
    es__free(op->member);
    for (size_t i = 0; i < op->nseg; i++) {
        es__free(op->seg[i].text);
        fref_free(&op->seg[i].from);
    }
    fref_free(&op->src);
}

/* "stats.by_currency.{$data.currency}" into op's segments: names split at
 * dots, a segment in braces an event field (its own dots inside). */
static int mpath_parse(kop *op, const char *member, const char *where,
                       es_error *err)
{
    const char *s = member;
    for (;;) {
        mseg *g;
        const char *end;
        size_t n;
        if (op->nseg == MAX_PATH)
            return es__err(err, ES_EINVAL, "%s: member \"%s\" is deeper than "
                           "%d segments", where, member, MAX_PATH);
        g = &op->seg[op->nseg];
        if (*s == '{') {
            if ((end = strchr(s, '}')) == NULL || (end[1] && end[1] != '.'))
                return es__err(err, ES_EINVAL, "%s: member \"%s\": a segment "
                               "in braces must be a whole segment, "
                               "\"{$field}\"", where, member);
            n = (size_t)(end + 1 - s);
        } else {
            end = strchr(s, '.');
            n = end ? (size_t)(end - s) : strlen(s);
            end = s + n - 1;
        }
        if (n == 0)
            return es__err(err, ES_EINVAL, "%s: member \"%s\" has an empty "
                           "segment", where, member);
        if ((g->text = es__strndup(s, n)) == NULL)
            return es__err(err, ES_ENOMEM, "out of memory");
        op->nseg++;
        if (*s == '{') {
            int rc;
            g->dynamic = 1;
            g->text[n - 1] = '\0'; /* parse "$data.x" of "{$data.x}" */
            rc = fref_parse_text(&g->from, g->text + 1, where, err);
            g->text[n - 1] = '}';
            if (rc != 0)
                return rc;
        } else if (memchr(s, '}', n) || memchr(s, '{', n)) {
            return es__err(err, ES_EINVAL, "%s: member \"%s\": '{' and '}' "
                           "only enclose a whole segment, \"{$field}\"", where,
                           member);
        }
        if (end[1] == '\0')
            return 0;
        s = end + 2;
    }
}

static int add_op(kon *o, op_kind kind, const char *member, const json_t *src,
                  const char *where, es_error *err)
{
    kop *op = &o->ops[o->nops];
    int rc;
    memset(op, 0, sizeof *op);
    if (*member == '\0')
        return es__err(err, ES_EINVAL, "%s: an empty member name", where);
    if ((op->member = es__strdup(member)) == NULL)
        return es__err(err, ES_ENOMEM, "out of memory");
    op->kind = kind;
    o->nops++;
    if ((rc = mpath_parse(op, member, where, err)) != 0)
        return rc;
    return kind == OP_COUNT || kind == OP_UNSET
               ? 0 : fref_parse(&op->src, src, where, err);
}

static int load_on(kon *o, const char *type, const json_t *spec,
                   const char *path, es_error *err)
{
    size_t cap = 0;
    const char *key;
    json_t *v;
    char where[ES_NAME_MAX + 600];

    if ((o->type = es__strdup(type)) == NULL)
        return es__err(err, ES_ENOMEM, "out of memory");
    if (!json_is_object(spec))
        return es__err(err, ES_EINVAL, "%s: \"keyed\".\"on\".\"%s\" must be an "
                       "object of operations (set, add, sub, max, min, "
                       "count, delete)", path, type);
    json_object_foreach((json_t *)spec, key, v)
        cap += json_is_object(v) ? json_object_size(v)
               : json_is_array(v) ? json_array_size(v) : 0;
    if (cap && (o->ops = es__calloc(cap, sizeof *o->ops)) == NULL)
        return es__err(err, ES_ENOMEM, "out of memory");
    json_object_foreach((json_t *)spec, key, v) {
        size_t kind;
        int rc;
        snprintf(where, sizeof where, "%s: \"keyed\".\"on\".\"%s\".\"%s\"",
                 path, type, key);
        if (strcmp(key, "delete") == 0 && !json_is_array(v)) {
            if (!json_is_boolean(v))
                return es__err(err, ES_EINVAL, "%s: must be true, false or "
                               "an array of member names", where);
            o->del = json_is_true(v);
            continue;
        }
        for (kind = 0; kind < sizeof op_names / sizeof *op_names; kind++)
            if (strcmp(op_names[kind], key) == 0)
                break;
        if (kind == sizeof op_names / sizeof *op_names)
            return es__err(err, ES_EINVAL, "%s: unknown operation (expected "
                           "set, add, sub, max, min, count, delete)", where);
        if (kind == OP_COUNT || kind == OP_UNSET) {
            if (!json_is_array(v))
                return es__err(err, ES_EINVAL, "%s: must be an array of "
                               "member names", where);
            for (size_t i = 0; i < json_array_size(v); i++) {
                const char *m = json_string_value(json_array_get(v, i));
                if (m == NULL)
                    return es__err(err, ES_EINVAL, "%s[%zu]: must be a "
                                   "string", where, i);
                if ((rc = add_op(o, (op_kind)kind, m, NULL, where, err)) != 0)
                    return rc;
            }
            continue;
        }
        if (!json_is_object(v))
            return es__err(err, ES_EINVAL, "%s: must be an object of member "
                           "-> \"$field\"", where);
        {
            const char *m;
            json_t *src;
            json_object_foreach(v, m, src)
                if ((rc = add_op(o, (op_kind)kind, m, src, where, err)) != 0)
                    return rc;
        }
    }
    return 0;
}

static char *sqlf(const char *fmt, const char *table)
{
    es__buf b = {NULL, 0, 0, 0};
    es__buf_printf(&b, fmt, table, table, table);
    if (b.oom) {
        es__buf_free(&b);
        return NULL;
    }
    return b.data;
}

void es__keyed_free(es__keyed *k)
{
    if (k == NULL)
        return;
    for (size_t i = 0; k->on && i < k->non; i++) {
        for (size_t j = 0; j < k->on[i].nops; j++)
            kop_free(&k->on[i].ops[j]);
        es__free(k->on[i].ops);
        es__free(k->on[i].type);
    }
    es__free(k->on);
    fref_free(&k->key);
    es__free(k->handlers);
    es__free(k->setup[0]);
    es__free(k->get_one_sql);
    es__free(k->read_pg_sql);
    es__free(k->read_sq_sql);
    es__free(k->update_sql);
    es__free(k->insert_sql);
    es__free(k->delete_sql);
    es__free(k->stage_sql);
    es__free(k->copy_sql);
    es__free(k->merge_update_sql);
    es__free(k->merge_insert_sql);
    es__free(k->table);
    es__free(k->path);
    es__free(k);
}

static int keyed_handler(es_sql *sql, const es_event *ev, void *user_data);

static int table_ok(const char *table, const char *where, es_error *err)
{
    if (!ident_ok(table) || strncmp(table, ES__PROJ_PREFIX,
                                    strlen(ES__PROJ_PREFIX)) == 0)
        return es__err(err, ES_EINVAL, "%s must be a plain SQL name "
                       "([A-Za-z_][A-Za-z0-9_]*, at most 60 bytes, not "
                       "starting with " ES__PROJ_PREFIX ")", where);
    return 0;
}

/* The setup and the statements of k's table (k->table set). */
static int make_sql(es__keyed *k)
{
    const char *table = k->table;
    k->setup[0] = sqlf("CREATE TABLE IF NOT EXISTS %s (key TEXT NOT NULL "
                       "PRIMARY KEY, doc TEXT NOT NULL, version BIGINT NOT "
                       "NULL)", table);
    k->get_one_sql = sqlf("SELECT key, doc, version FROM %s WHERE key = $1",
                          table);
    k->read_pg_sql = sqlf("SELECT key, doc, version FROM %s WHERE key IN "
                          "(SELECT jsonb_array_elements_text($1::jsonb))",
                          table);
    k->read_sq_sql = sqlf("SELECT key, doc, version FROM %s WHERE key IN "
                          "(SELECT value FROM json_each($1))", table);
    /* Every write is a compare-and-set on the version read (write_docs):
     * $4 (and the staging table's "expected") is that version; a key that
     * had no row is inserted only if it still has none. */
    k->update_sql = sqlf("UPDATE %s SET doc = $2, version = $3 WHERE key = $1 "
                         "AND version = $4", table);
    k->insert_sql = sqlf("INSERT INTO %s (key, doc, version) VALUES ($1, $2, "
                         "$3) ON CONFLICT (key) DO NOTHING", table);
    k->delete_sql = sqlf("DELETE FROM %s WHERE key = $1 AND version = $2",
                         table);
    k->stage_sql = sqlf("CREATE TEMPORARY TABLE IF NOT EXISTS es_keyed_%s "
                        "(key TEXT, doc TEXT, version BIGINT, expected BIGINT) "
                        "ON COMMIT DELETE ROWS", table);
    k->copy_sql = sqlf("COPY es_keyed_%s (key, doc, version, expected) FROM "
                       "STDIN", table);
    k->merge_update_sql = sqlf("UPDATE %s AS t SET doc = s.doc, version = "
                               "s.version FROM es_keyed_%s AS s WHERE t.key = "
                               "s.key AND t.version = s.expected", table);
    k->merge_insert_sql = sqlf("INSERT INTO %s (key, doc, version) SELECT key, "
                               "doc, version FROM es_keyed_%s WHERE expected "
                               "IS NULL ON CONFLICT (key) DO NOTHING", table);
    if (!k->setup[0] || !k->get_one_sql || !k->read_pg_sql || !k->read_sq_sql || !k->update_sql || !k->insert_sql ||
        !k->delete_sql || !k->stage_sql || !k->copy_sql || !k->merge_update_sql ||
        !k->merge_insert_sql)
        return ES_ENOMEM;
    return 0;
}

static int seg_equal(const mseg *a, const mseg *b)
{
    return a->dynamic == b->dynamic && strcmp(a->text, b->text) == 0;
}

/* A member that an operation makes a number ("add": {"stats": ..}) cannot
 * also hold members ("count": ["stats.n"]): refused when the file is
 * loaded rather than at the first event that has both. */
static int check_paths(const es__keyed *k, const char *path, es_error *err)
{
    for (size_t i = 0; i < k->non; i++)
        for (size_t a = 0; a < k->on[i].nops; a++) {
            const kop *num = &k->on[i].ops[a];
            if (num->kind == OP_SET || num->kind == OP_UNSET)
                continue;
            for (size_t j = 0; j < k->non; j++)
                for (size_t b = 0; b < k->on[j].nops; b++) {
                    const kop *deep = &k->on[j].ops[b];
                    size_t g = 0;
                    if (deep->nseg <= num->nseg)
                        continue;
                    while (g < num->nseg && seg_equal(&num->seg[g], &deep->seg[g]))
                        g++;
                    if (g == num->nseg)
                        return es__err(err, ES_EINVAL, "%s: \"keyed\".\"on\"."
                                       "\"%s\".\"%s\" makes \"%s\" a number, "
                                       "but \"keyed\".\"on\".\"%s\".\"%s\" "
                                       "needs it to be an object (\"%s\")",
                                       path, k->on[i].type, op_names[num->kind],
                                       num->member, k->on[j].type,
                                       op_names[deep->kind], deep->member);
                }
        }
    return 0;
}

int es__keyed_load(es__keyed **out, const json_t *keyed, const char *path,
                   es_error *err)
{
    es__keyed *k;
    const json_t *on, *spec;
    const char *table, *type, *key;
    json_t *v;
    size_t i = 0;
    int rc;

    *out = NULL;
    if (!json_is_object(keyed))
        return es__err(err, ES_EINVAL, "%s: \"keyed\" must be an object with "
                       "table, key, on", path);
    json_object_foreach((json_t *)keyed, key, v)
        if (strcmp(key, "table") && strcmp(key, "key") && strcmp(key, "on"))
            return es__err(err, ES_EINVAL, "%s: \"keyed\": unknown member "
                           "\"%s\" (expected table, key, on)", path, key);
    table = json_string_value(json_object_get(keyed, "table"));
    {
        char where[ES_NAME_MAX + 100];
        snprintf(where, sizeof where, "%s: \"keyed\".\"table\"", path);
        if ((rc = table_ok(table, where, err)) != 0)
            return rc;
    }
    on = json_object_get(keyed, "on");
    if (!json_is_object(on) || json_object_size(on) == 0)
        return es__err(err, ES_EINVAL, "%s: \"keyed\".\"on\" must be an object "
                       "of event type -> operations", path);
    if ((k = es__calloc(1, sizeof *k)) == NULL)
        return es__err(err, ES_ENOMEM, "out of memory");
    *out = k;
    {
        char where[ES_NAME_MAX + 100];
        snprintf(where, sizeof where, "%s: \"keyed\".\"key\"", path);
        if ((rc = fref_parse(&k->key, json_object_get(keyed, "key"), where,
                             err)) != 0)
            return rc;
    }
    k->non = json_object_size(on);
    if ((k->table = es__strdup(table)) == NULL ||
        (k->path = es__strdup(path)) == NULL ||
        (k->on = es__calloc(k->non, sizeof *k->on)) == NULL ||
        (k->handlers = es__calloc(k->non + 1, sizeof *k->handlers)) == NULL)
        return es__err(err, ES_ENOMEM, "out of memory");
    json_object_foreach((json_t *)on, type, spec) {
        if ((rc = load_on(&k->on[i], type, spec, path, err)) != 0) {
            k->non = i + 1;
            return rc;
        }
        k->handlers[i].event_type = k->on[i].type;
        k->handlers[i].fn = keyed_handler;
        i++;
    }
    if ((rc = check_paths(k, path, err)) != 0)
        return rc;
    if (make_sql(k) != 0)
        return es__err(err, ES_ENOMEM, "out of memory");
    return 0;
}

int es__keyed_new(es__keyed **out, const es_keyed_projection *def,
                  es_error *err)
{
    es__keyed *k;
    size_t n = 0;
    int rc;

    *out = NULL;
    if ((rc = table_ok(def->table, "es_keyed_projection.table", err)) != 0)
        return rc;
    if (def->fold == NULL)
        return es__err(err, ES_EINVAL, "es_keyed_projection.fold: a fold "
                       "function is required");
    if ((def->key == NULL) == (def->key_fn == NULL))
        return es__err(err, ES_EINVAL, "es_keyed_projection: give key (an "
                       "event field such as \"$data.owner\") or key_fn, "
                       "not both");
    for (; def->on && def->on[n]; n++)
        if (def->on[n][0] == '\0')
            return es__err(err, ES_EINVAL, "es_keyed_projection.on[%zu]: an "
                           "empty event type", n);
    if ((k = es__calloc(1, sizeof *k)) == NULL)
        return es__err(err, ES_ENOMEM, "out of memory");
    *out = k;
    if (def->key && (rc = fref_parse_text(&k->key, def->key,
                                          "es_keyed_projection.key", err)) != 0)
        return rc;
    k->ckey = def->key_fn;
    k->cud = def->user_data;
    k->non = n ? n : 1; /* no list: one entry "*" */
    if ((k->table = es__strdup(def->table)) == NULL ||
        (k->on = es__calloc(k->non, sizeof *k->on)) == NULL ||
        (k->handlers = es__calloc(k->non + 1, sizeof *k->handlers)) == NULL)
        return es__err(err, ES_ENOMEM, "out of memory");
    for (size_t i = 0; i < k->non; i++) {
        if ((k->on[i].type = es__strdup(n ? def->on[i] : "*")) == NULL)
            return es__err(err, ES_ENOMEM, "out of memory");
        k->on[i].cfold = def->fold;
        k->on[i].cud = def->user_data;
        k->handlers[i].event_type = k->on[i].type;
        k->handlers[i].fn = keyed_handler;
    }
    if (make_sql(k) != 0)
        return es__err(err, ES_ENOMEM, "out of memory");
    return 0;
}

const es_projection_handler *es__keyed_handlers(const es__keyed *k)
{
    return k->handlers;
}

const char *const *es__keyed_setup(const es__keyed *k)
{
    return (const char *const *)k->setup;
}

static int fref_lean(const fref *r)
{
    return r->f != K_EVENT_ID && r->f != K_META;
}

int es__keyed_lean(const es__keyed *k)
{
    if (k == NULL || k->ckey || !fref_lean(&k->key))
        return 0;
    for (size_t i = 0; i < k->non; i++) {
        const kon *o = &k->on[i];
        if (o->cfold) /* a C function may read any field */
            return 0;
        for (size_t a = 0; a < o->nops; a++) {
            const kop *op = &o->ops[a];
            if (op->kind != OP_COUNT && op->kind != OP_UNSET &&
                !fref_lean(&op->src))
                return 0;
            for (size_t g = 0; g < op->nseg; g++)
                if (op->seg[g].dynamic && !fref_lean(&op->seg[g].from))
                    return 0;
        }
    }
    return 1;
}

const es__keyed *es__keyed_of(const es_projection *p)
{
    return p && p->handlers && p->handlers[0].fn == keyed_handler
               ? p->user_data : NULL;
}

/* ---- folding ------------------------------------------------------------ */

static const kon *find_on(const es__keyed *k, const char *type)
{
    const kon *any = NULL;
    for (size_t i = 0; i < k->non; i++) {
        if (strcmp(k->on[i].type, type) == 0)
            return &k->on[i];
        if (strcmp(k->on[i].type, "*") == 0)
            any = &k->on[i];
    }
    return any;
}

/* The key of ev as text in buf; 0 or ES_EUSER (msg says why). */
static int event_key(char *buf, size_t size, const es__keyed *k,
                     const es_event *ev, char *msg, size_t msize)
{
    json_t *v;
    int rc = 0;
    if (k->ckey) {
        buf[0] = '\0';
        if (k->ckey(buf, size, ev, k->cud) == 0 && buf[0] &&
            memchr(buf, '\0', size))
            return 0;
        snprintf(msg, msize, "keyed fold %s: the key function gave no key",
                 k->table);
        return ES_EUSER;
    }
    if (k->key.f == K_STREAM_ID && ev->stream_id[0] &&
        strlen(ev->stream_id) < size) { /* the common key, without a copy */
        strcpy(buf, ev->stream_id);
        return 0;
    }
    v = fref_value(&k->key, ev);
    if (json_is_string(v) && json_string_length(v) > 0 &&
        json_string_length(v) < size)
        snprintf(buf, size, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, size, "%lld", (long long)json_integer_value(v));
    else {
        snprintf(msg, msize, "keyed fold %s: the key is %s", k->table,
                 v == NULL ? "absent" : json_is_string(v) ? "empty or too long"
                                                          : "not a string or an integer");
        rc = ES_EUSER;
    }
    json_decref(v);
    return rc;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING: return "a string";
    case JSON_INTEGER: case JSON_REAL: return "a number";
    case JSON_ARRAY: return "an array";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/*
 * The object that holds op's last segment in doc (objects made on the way
 * when create; *parent NULL when one is absent and !create) and that
 * segment's name in *leaf (a segment of the definition, or buf). 0,
 * ES_EUSER (msg: a segment from the event that is not a name, a member on
 * the way that is not an object), ES_ENOMEM.
 */
static int resolve(json_t **parent, const char **leaf, char *buf, json_t *doc,
                   const kop *op, const es_event *ev, int create, char *msg,
                   size_t msize)
{
    char at[512] = ""; /* the path resolved so far, for messages */
    json_t *obj = doc;
    *parent = NULL;
    for (size_t i = 0; i < op->nseg; i++) {
        const mseg *g = &op->seg[i];
        const char *name = g->text;
        json_t *child;
        if (g->dynamic) {
            json_t *v = fref_value(&g->from, ev);
            if (json_is_string(v) && json_string_length(v) > 0 &&
                json_string_length(v) <= SEG_MAX)
                snprintf(buf, SEG_MAX + 1, "%s", json_string_value(v));
            else if (json_is_integer(v))
                snprintf(buf, SEG_MAX + 1, "%lld",
                         (long long)json_integer_value(v));
            else {
                snprintf(msg, msize, "%s %s: the event's %.*s is %s",
                         op_names[op->kind], op->member,
                         (int)strlen(g->text) - 2, g->text + 1,
                         v == NULL ? "absent" : json_is_string(v)
                             ? "empty or longer than 255 bytes"
                             : "not a string or an integer");
                json_decref(v);
                return ES_EUSER;
            }
            json_decref(v);
            name = buf;
        }
        if (i + 1 == op->nseg) {
            *parent = obj;
            *leaf = name;
            return 0;
        }
        snprintf(at + strlen(at), sizeof at - strlen(at), "%s%s", i ? "." : "",
                 name);
        if ((child = json_object_get(obj, name)) == NULL) {
            if (!create)
                return 0;
            if ((child = json_object()) == NULL ||
                json_object_set_new(obj, name, child) != 0)
                return ES_ENOMEM;
        } else if (!json_is_object(child)) {
            snprintf(msg, msize, "%s %s: \"%s\" in the document is %s, not an "
                     "object", op_names[op->kind], op->member, at,
                     json_kind(child));
            return ES_EUSER;
        }
        obj = child;
    }
    return 0;
}

/* Applies what o does for ev to doc; *del = 1 when the document is to be
 * deleted. 0, ES_EUSER (msg) or ES_ENOMEM. */
/* obj.leaf = v; cur (obj.leaf now, or NULL) is changed in place when it
 * is an integer nobody else holds (a document's own member, not one a
 * "set" or "max" shares with an event), saving an allocation, a free and
 * a hash update per event. 0 or ES_ENOMEM. */
static int set_integer(json_t *obj, const char *leaf, json_t *cur, json_int_t v)
{
    json_t *n;
    if (cur && json_is_integer(cur) && cur->refcount == 1)
        return json_integer_set(cur, v) == 0 ? 0 : ES_ENOMEM;
    if ((n = json_integer(v)) == NULL || json_object_set_new(obj, leaf, n) != 0)
        return ES_ENOMEM;
    return 0;
}

/* a + b (b negated when sub) into *out; -1 when it leaves int64. */
static int add_checked(json_int_t a, json_int_t b, int sub, json_int_t *out)
{
    if (sub) {
        if ((b < 0 && a > LLONG_MAX + b) ||
            (b > 0 && a < LLONG_MIN + b))
            return -1;
        *out = a - b;
        return 0;
    }
    if ((b > 0 && a > LLONG_MAX - b) ||
        (b < 0 && a < LLONG_MIN - b))
        return -1;
    *out = a + b;
    return 0;
}

static int fold(json_t *doc, const kon *o, const es_event *ev, int *del,
                char *msg, size_t msize)
{
    *del = o->del;
    if (o->cfold) {
        int rc;
        msg[0] = '\0';
        rc = o->cfold(doc, ev, msg, msize, o->cud);
        if (rc == ES_KEYED_DELETE) {
            *del = 1;
            return 0;
        }
        if (rc != 0) {
            if (msg[0] == '\0')
                snprintf(msg, msize, "the fold function failed (%d)", rc);
            return ES_EUSER;
        }
        return 0;
    }
    for (size_t i = 0; i < o->nops; i++) {
        const kop *op = &o->ops[i];
        char buf[SEG_MAX + 1];
        const char *leaf = NULL;
        json_t *obj, *cur, *val, *res = NULL;
        int rc = resolve(&obj, &leaf, buf, doc, op, ev, op->kind != OP_UNSET,
                         msg, msize);
        if (rc != 0)
            return rc;
        if (op->kind == OP_UNSET) {
            if (obj)
                json_object_del(obj, leaf);
            continue;
        }
        cur = json_object_get(obj, leaf);
        if (op->kind == OP_COUNT) {
            if (cur && !json_is_integer(cur)) {
                snprintf(msg, msize, "count %s: the document holds a "
                         "non-integer", op->member);
                return ES_EUSER;
            }
            {
                json_int_t n;
                if (add_checked(cur ? json_integer_value(cur) : 0, 1, 0, &n) != 0) {
                    snprintf(msg, msize, "count %s: the count leaves 64-bit "
                             "integers", op->member);
                    return ES_EUSER;
                }
                if (set_integer(obj, leaf, cur, n) != 0)
                    return ES_ENOMEM;
            }
            continue;
        }
        val = fref_value(&op->src, ev);
        if (op->kind == OP_SET) {
            json_object_set_new(obj, leaf, val ? val : json_null());
            continue;
        }
        if (!json_is_number(val) || (cur && !json_is_number(cur))) {
            snprintf(msg, msize, "%s %s: %s is not a number",
                     op_names[op->kind], op->member,
                     !json_is_number(val) ? "the event's value"
                                          : "the document's value");
            json_decref(val);
            return ES_EUSER;
        }
        if (op->kind == OP_ADD || op->kind == OP_SUB) {
            /* an absent member counts as 0; integers stay integers */
            int sub = op->kind == OP_SUB;
            if (json_is_integer(val) && (cur == NULL || json_is_integer(cur))) {
                json_int_t n;
                if (add_checked(cur ? json_integer_value(cur) : 0,
                                json_integer_value(val), sub, &n) != 0) {
                    snprintf(msg, msize, "%s %s: the result leaves 64-bit "
                             "integers", op_names[op->kind], op->member);
                    json_decref(val);
                    return ES_EUSER;
                }
                json_decref(val);
                if (set_integer(obj, leaf, cur, n) != 0)
                    return ES_ENOMEM;
                continue;
            }
            res = json_real((cur ? json_number_value(cur) : 0) +
                            (sub ? -json_number_value(val)
                                 : json_number_value(val)));
        } else if (cur == NULL) {
            res = json_incref(val);
        } else {
            double a = json_number_value(cur), b = json_number_value(val);
            res = json_incref((op->kind == OP_MAX ? b > a : b < a) ? val : cur);
        }
        json_decref(val);
        if (res == NULL)
            return ES_ENOMEM;
        json_object_set_new(obj, leaf, res);
    }
    return 0;
}

/* ---- one event (the careful path: a handler) ---------------------------- */

typedef struct one_row {
    json_t *doc;
    int64_t version;
    int found;
} one_row;

static int get_one(int ncols, const char *const *vals, void *ud)
{
    one_row *r = ud;
    if (ncols >= 3 && vals[1] && vals[2]) {
        json_decref(r->doc);
        r->doc = json_loads(vals[1], 0, NULL);
        es__parse_i64(&r->version, vals[2]);
        r->found = 1;
    }
    return 0;
}

/* Tries of keyed_handler when another worker keeps writing the key. */
#define CAS_TRIES 100

/* One event: read the key's row, fold, write it back with a
 * compare-and-set on the version read; when another worker wrote the row
 * in between (no row changed), read it again and redo. Each statement of a
 * PostgreSQL READ COMMITTED transaction sees what committed before it, so
 * the read after a miss sees the other worker's write (SQLite: the batch's
 * BEGIN IMMEDIATE holds the write lock, a miss cannot happen). */
static int keyed_handler(es_sql *sql, const es_event *ev, void *user_data)
{
    const es__keyed *k = user_data;
    const kon *o = find_on(k, ev->type);
    char key[ES_STREAM_ID_MAX + 64], msg[512];
    int rc = 0, del = 0;

    if (o == NULL)
        return 0;
    if (event_key(key, sizeof key, k, ev, msg, sizeof msg) != 0)
        return es_sql_fail(sql, "%s", msg);
    for (int tries = 0; tries < CAS_TRIES; tries++) {
        one_row r = {NULL, 0, 0};
        int64_t changes = -1;
        char *text = NULL;
        {
            es_sql_value q[] = {ES_SQL_STR(key)};
            if ((rc = es__target_query(sql->t, k->get_one_sql, q, 1, get_one, &r)) != 0) {
                json_decref(r.doc);
                return es_sql_fail(sql, "%s", es_errmsg(sql->t));
            }
        }
        if (r.found && !json_is_object(r.doc)) {
            json_decref(r.doc);
            return es_sql_fail(sql, "keyed fold %s, key %s: the stored document "
                               "is not a JSON object", k->table, key);
        }
        if (r.doc == NULL && (r.doc = json_object()) == NULL)
            return es_sql_fail(sql, "out of memory");
        if ((rc = fold(r.doc, o, ev, &del, msg, sizeof msg)) != 0) {
            json_decref(r.doc);
            return es_sql_fail(sql, "keyed fold %s%s%s%s, %s event, key %s: %s",
                               k->table, k->path ? " (" : "",
                               k->path ? k->path : "", k->path ? ")" : "",
                               ev->type, key,
                               rc == ES_ENOMEM ? "out of memory" : msg);
        }
        if (del) {
            es_sql_value q[] = {ES_SQL_STR(key), ES_SQL_I64(r.version)};
            json_decref(r.doc);
            if (!r.found)
                return 0;
            rc = es__target_exec(sql->t, k->delete_sql, q, 2, &changes, sql->tag);
        } else {
            text = es__json_text(r.doc);
            json_decref(r.doc);
            if (text == NULL)
                return es_sql_fail(sql, "out of memory");
            {
                es_sql_value q[] = {ES_SQL_STR(key), ES_SQL_STR(text),
                                    ES_SQL_I64(r.version + 1),
                                    ES_SQL_I64(r.version)};
                rc = es__target_exec(sql->t, r.found ? k->update_sql
                                                     : k->insert_sql,
                                     q, r.found ? 4 : 3, &changes, sql->tag);
            }
            es__free(text);
        }
        if (rc != 0)
            return es_sql_fail(sql, "%s", es_errmsg(sql->t));
        if (changes == 1)
            return 0;
    }
    return es_sql_fail(sql, "keyed fold %s, key %s: other workers changed the "
                       "document %d times in a row under this one", k->table,
                       key, CAS_TRIES);
}

/* ---- a batch (the fast path) -------------------------------------------- */

/*
 * The documents of a worker, kept across its batches (es__keyed_cache):
 * a batch reads only the keys it does not hold. That is safe because
 * every write is a compare-and-set on the version the entry holds
 * (write_docs): a document another worker (or the careful path, or an
 * operator) changed since makes the batch fail with ES_ECONFLICT, and the
 * worker drops the whole cache (es__keyed_cache_reset) and redoes the
 * batch from a fresh read. Entries are updated in place by the batch; a
 * batch that does not commit resets the cache too, so that what it holds
 * is always what committed. A fold with a "delete" operation (or a C
 * fold, which may return ES_KEYED_DELETE) keeps nothing between batches: a key deleted and folded again can come back to the
 * same version with another document, which the version would not show.
 */
typedef struct entry {
    char *key;
    json_t *doc;     /* NULL: no document (absent, or deleted) */
    int64_t version;
    int64_t read;    /* the version of the row in the table (found) */
    int found;       /* a row exists in the table */
    int unread;      /* not read from the table yet */
    int dirty;
    uint64_t batch;  /* the last batch that used it */
} entry;

struct es__keyed_cache {
    es__map map;     /* key -> entry */
    size_t max;      /* entries kept between batches */
    uint64_t batch;
    entry **pend;    /* the entries the current batch uses, to write back */
    size_t npend, cappend;
};

static void entry_free(entry *e)
{
    if (e == NULL)
        return;
    es__free(e->key);
    json_decref(e->doc);
    es__free(e);
}

int es__keyed_cache_new(es__keyed_cache **out, const es__keyed *k, size_t max)
{
    int del = 0;
    for (size_t i = 0; i < k->non; i++) /* a C fold may delete */
        del |= k->on[i].del || k->on[i].cfold != NULL;
    if ((*out = es__calloc(1, sizeof **out)) == NULL)
        return ES_ENOMEM;
    (*out)->max = del ? 0 : max;
    return 0;
}

void es__keyed_cache_reset(es__keyed_cache *c)
{
    const char *key;
    void *v;
    if (c == NULL)
        return;
    for (size_t i = 0; es__map_next(&c->map, &i, &key, &v);)
        entry_free(v);
    es__map_free(&c->map);
    c->npend = 0;
}

void es__keyed_cache_free(es__keyed_cache *c)
{
    es__keyed_cache_reset(c);
    if (c)
        es__free(c->pend);
    es__free(c);
}

size_t es__keyed_cache_size(const es__keyed_cache *c)
{
    return c ? c->map.len : 0;
}

/* Keeps at most c->max entries after a batch: those the batch did not use
 * go first (in no particular order). */
static void cache_trim(es__keyed_cache *c)
{
    entry **old;
    size_t n = 0, drop;
    const char *key;
    void *v;
    if (c->map.len <= c->max)
        return;
    if (c->max == 0 || (old = es__malloc(c->map.len * sizeof *old)) == NULL) {
        es__keyed_cache_reset(c);
        return;
    }
    for (size_t i = 0; es__map_next(&c->map, &i, &key, &v);)
        if (((entry *)v)->batch != c->batch)
            old[n++] = v;
    /* down to 3/4 of the cap, so that trimming is not every batch's work */
    drop = c->map.len - c->max + c->max / 4;
    for (size_t i = 0; i < n && i < drop; i++) {
        es__map_remove(&c->map, old[i]->key);
        entry_free(old[i]);
    }
    es__free(old);
}

static int get_many(int ncols, const char *const *vals, void *ud)
{
    entry *e;
    if (ncols < 3 || !vals[0] || !vals[1] || !vals[2] ||
        (e = es__map_get(ud, vals[0])) == NULL || !e->unread)
        return 0;
    json_decref(e->doc);
    e->doc = json_loads(vals[1], 0, NULL);
    es__parse_i64(&e->version, vals[2]);
    e->read = e->version;
    e->found = 1;
    return 0;
}

/* s as a JSON string. */
static void json_str(es__buf *b, const char *s)
{
    const char *run = s;
    es__buf_adds(b, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        es__buf_add(b, run, (size_t)(s - run));
        es__buf_printf(b, "\\u%04x", ch);
        run = s + 1;
    }
    es__buf_add(b, run, (size_t)(s - run));
    es__buf_adds(b, "\"");
}

/* Reads the documents of the unread keys of use[0..n): one query, the
 * keys bound as one JSON array (json_each on SQLite,
 * jsonb_array_elements_text on PostgreSQL), so that the statement has one
 * parameter whatever the batch's size. Inside the batch's transaction; on
 * SQLite it began with BEGIN IMMEDIATE (the write lock), so no other
 * writer can change a row between this read and write_docs; on
 * PostgreSQL (READ COMMITTED) one can, and the compare-and-set of
 * write_docs finds it. */
static int read_docs(es__target *t, const es__keyed *k, es__map *m,
                     entry *const *use, size_t n)
{
    es__buf b = {NULL, 0, 0, 0};
    size_t nread = 0;
    int rc = 0;
    es__buf_adds(&b, "[");
    for (size_t i = 0; i < n; i++) {
        if (!use[i]->unread)
            continue;
        if (nread++)
            es__buf_adds(&b, ",");
        json_str(&b, use[i]->key);
    }
    es__buf_adds(&b, "]");
    if (b.oom)
        rc = es__fail(&t->h, ES_ENOMEM, "out of memory");
    else if (nread > 0) {
        es_sql_value q[] = {ES_SQL_STR(b.data)};
        rc = es__target_query(t, strcmp(t->backend->name, "postgresql") == 0
                                     ? k->read_pg_sql : k->read_sq_sql,
                              q, 1, get_many, m);
    }
    es__buf_free(&b);
    for (size_t i = 0; rc == 0 && i < n; i++)
        use[i]->unread = 0;
    return rc;
}

/* s in COPY text format. */
static void copy_field(es__buf *b, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '\t' ? "\\t"
                        : *s == '\n' ? "\\n" : *s == '\r' ? "\\r" : NULL;
        if (esc) {
            es__buf_add(b, run, (size_t)(s - run));
            es__buf_adds(b, esc);
            run = s + 1;
        }
    }
    es__buf_add(b, run, (size_t)(s - run));
}

/*
 * Writes the dirty entries of m back, each a compare-and-set on the
 * version read: an update only where the row still has that version, an
 * insert only where there is still no row, a delete only of that version.
 * PostgreSQL: COPY into the staging table (with the version read as
 * "expected", NULL for a key that had no row), one UPDATE .. FROM and one
 * INSERT .. ON CONFLICT DO NOTHING. Under READ COMMITTED an update that
 * finds the row locked by another worker's transaction waits for it and
 * then checks the version again on the row that committed, so a lost
 * update shows as fewer rows changed than written: ES_ECONFLICT, and the
 * worker rolls the batch back and redoes it from a fresh read.
 */
static int write_docs(es__target *t, const es__keyed *k, entry *const *use,
                      size_t n)
{
    es__buf b = {NULL, 0, 0, 0};
    int use_copy = t->backend->copy_in != NULL, rc = 0;
    size_t ncopy = 0, nfound = 0, want = 0;
    int64_t done = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        entry *e = use[i];
        int64_t changes = -1;
        char *text;
        if (!e->dirty)
            continue;
        if (e->doc == NULL) { /* deleted */
            es_sql_value q[] = {ES_SQL_STR(e->key), ES_SQL_I64(e->read)};
            if (!e->found)
                continue;
            if ((rc = es__target_exec(t, k->delete_sql, q, 2, &changes, -1)) == 0) {
                want++;
                done += changes;
            }
            continue;
        }
        if ((text = es__json_text(e->doc)) == NULL) {
            rc = es__fail(&t->h, ES_ENOMEM, "out of memory");
            break;
        }
        want++;
        if (use_copy) {
            copy_field(&b, e->key);
            es__buf_adds(&b, "\t");
            copy_field(&b, text);
            if (e->found) {
                es__buf_printf(&b, "\t%lld\t%lld\n", (long long)e->version,
                               (long long)e->read);
                nfound++;
            } else
                es__buf_printf(&b, "\t%lld\t\\N\n", (long long)e->version);
            ncopy++;
        } else {
            es_sql_value q[] = {ES_SQL_STR(e->key), ES_SQL_STR(text),
                                ES_SQL_I64(e->version), ES_SQL_I64(e->read)};
            if ((rc = es__target_exec(t, e->found ? k->update_sql : k->insert_sql,
                                      q, e->found ? 4 : 3, &changes, -1)) == 0)
                done += changes;
        }
        es__free(text);
    }
    if (rc == 0 && b.oom)
        rc = es__fail(&t->h, ES_ENOMEM, "out of memory");
    if (rc == 0 && ncopy > 0) {
        /* Each merge only when it has rows (a fresh table has no updates,
         * a warm one few inserts). */
        int64_t updated = 0, inserted = 0;
        if ((rc = es__target_exec0(t, k->stage_sql)) == 0 &&
            (rc = t->backend->copy_in(t, t->self, k->copy_sql, b.data,
                                      b.len)) == 0 &&
            (nfound == 0 ||
             (rc = es__target_exec(t, k->merge_update_sql, NULL, 0, &updated,
                                   -1)) == 0) &&
            (nfound == ncopy ||
             (rc = es__target_exec(t, k->merge_insert_sql, NULL, 0, &inserted,
                                   -1)) == 0))
            done += updated + inserted;
    }
    es__buf_free(&b);
    if (rc == 0 && done != (int64_t)want)
        rc = es__fail(&t->h, ES_ECONFLICT, "keyed fold %s: %lld of %zu "
                      "documents were changed by another worker after this "
                      "one read them", k->table,
                      (long long)((int64_t)want - done), want);
    /* The entries now hold what the table will hold once the batch
     * commits (a batch that does not resets the cache). */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        entry *e = use[i];
        if (!e->dirty)
            continue;
        e->dirty = 0;
        e->found = e->doc != NULL;
        e->read = e->version;
    }
    return rc;
}

void es__keyed_begin(es__keyed_cache *c)
{
    c->batch++;
    c->npend = 0;
}

int es__keyed_fold(es__target *t, const es__keyed *k, es__keyed_cache *c,
                   const es_event *const *evs, size_t n)
{
    char key[ES_STREAM_ID_MAX + 64], msg[512];
    entry **at = NULL;
    size_t first = c->npend; /* this call's new entries start there */
    int rc = 0;

    if (n == 0)
        return 0;
    if ((at = es__calloc(n, sizeof *at)) == NULL ||
        (c->npend + n > c->cappend &&
         es__grow((void **)&c->pend, c->cappend * sizeof *c->pend,
                  (c->npend + n) * sizeof *c->pend) != 0)) {
        rc = es__fail(&t->h, ES_ENOMEM, "out of memory");
        goto done;
    }
    if (c->npend + n > c->cappend)
        c->cappend = c->npend + n;
    for (size_t i = 0; i < n; i++) {
        entry *e;
        if (event_key(key, sizeof key, k, evs[i], msg, sizeof msg) != 0) {
            rc = es__fail(&t->h, ES_EUSER, "%s", msg);
            goto done;
        }
        if ((e = es__map_get(&c->map, key)) == NULL) {
            if ((e = es__map_add_entry(&c->map, key, sizeof *e,
                                       offsetof(entry, key))) == NULL) {
                rc = es__fail(&t->h, ES_ENOMEM, "out of memory");
                goto done;
            }
            e->unread = 1;
        }
        if (e->batch != c->batch) {
            e->batch = c->batch;
            c->pend[c->npend++] = e;
        }
        at[i] = e;
    }
    if ((rc = read_docs(t, k, &c->map, c->pend + first, c->npend - first)) != 0)
        goto done;
    for (size_t i = 0; i < n; i++) {
        entry *e = at[i];
        const kon *o = find_on(k, evs[i]->type);
        int del;
        if (o == NULL)
            continue;
        if (e->found && !e->dirty && !json_is_object(e->doc)) {
            rc = es__fail(&t->h, ES_ECORRUPT, "keyed fold %s, key %s: the "
                          "stored document is not a JSON object", k->table,
                          e->key);
            goto done;
        }
        if (e->doc == NULL && (e->doc = json_object()) == NULL) {
            rc = es__fail(&t->h, ES_ENOMEM, "out of memory");
            goto done;
        }
        if ((rc = fold(e->doc, o, evs[i], &del, msg, sizeof msg)) != 0) {
            rc = es__fail(&t->h, rc, "keyed fold %s, key %s: %s", k->table,
                          e->key, msg);
            goto done;
        }
        e->version++;
        e->dirty = 1;
        if (del) {
            json_decref(e->doc);
            e->doc = NULL;
            e->version = 0;
        }
    }
done:
    if (rc != 0)
        es__keyed_cache_reset(c); /* entries were changed in place */
    es__free(at);
    return rc;
}

int es__keyed_write(es__target *t, const es__keyed *k, es__keyed_cache *c)
{
    int rc = write_docs(t, k, c->pend, c->npend);
    if (rc != 0)
        es__keyed_cache_reset(c);
    else
        cache_trim(c);
    c->npend = 0;
    return rc;
}

int es__keyed_apply(es__target *t, const es__keyed *k, es__keyed_cache *cache,
                    const es_event *const *evs, size_t n)
{
    es__keyed_cache *own = NULL;
    int rc;

    if (n == 0)
        return 0;
    if (cache == NULL && (rc = es__keyed_cache_new(&own, k, 0)) != 0)
        return es__fail(&t->h, rc, "out of memory");
    if (cache == NULL)
        cache = own;
    es__keyed_begin(cache);
    if ((rc = es__keyed_fold(t, k, cache, evs, n)) == 0)
        rc = es__keyed_write(t, k, cache);
    es__keyed_cache_free(own);
    return rc;
}

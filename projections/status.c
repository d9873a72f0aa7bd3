/*
 * projections/status.c - es_projection_status and its Prometheus text
 * (esfold/status.h). Reads the es_proj_ tables of the target and the
 * heads of the log; writes nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esfold/status.h"
#include "esfold/time.h"
#include "projections/target_backend.h"

#define P ES__PROJ_PREFIX

typedef struct st_ctx {
    json_t *projs;  /* name -> projection object */
    json_t *list;   /* the projections, in name order */
    int64_t now;
    int oom;
} st_ctx;

static int64_t num(const char *s)
{
    int64_t v = 0;
    if (s)
        (void)es__parse_i64(&v, s);
    return v;
}

static int set(json_t *o, const char *k, json_t *v, st_ctx *c)
{
    if (v == NULL || json_object_set_new(o, k, v) != 0) {
        c->oom = 1;
        return 1;
    }
    return 0;
}

static int get_projection(int n, const char *const *v, void *ud)
{
    st_ctx *c = ud;
    json_t *o;
    if (n < 2 || !v[0])
        return 0;
    o = json_pack("{s:s, s:I, s:i, s:n, s:n, s:[], s:[], s:n}", "name", v[0],
                  "version", (json_int_t)num(v[1]), "dead_letters", 0,
                  "last_error", "heartbeat_age_s", "workers", "partitions",
                  "rebuild");
    if (o == NULL || json_object_set(c->projs, v[0], o) != 0 ||
        json_array_append_new(c->list, o) != 0) {
        c->oom = 1;
        return 1;
    }
    return 0;
}

static json_t *proj_of(st_ctx *c, const char *name)
{
    return name ? json_object_get(c->projs, name) : NULL;
}

static int get_checkpoint(int n, const char *const *v, void *ud)
{
    st_ctx *c = ud;
    json_t *o = n >= 3 ? proj_of(c, v[0]) : NULL;
    if (o == NULL)
        return 0;
    if (json_array_append_new(json_object_get(o, "partitions"),
                              json_pack("{s:s, s:I, s:I, s:n, s:n, s:n}", "type",
                                        v[1] ? v[1] : "", "partition",
                                        (json_int_t)num(v[2]), "checkpoint",
                                        (json_int_t)num(v[3]), "head",
                                        "lag_events", "lag_seconds")) != 0) {
        c->oom = 1;
        return 1;
    }
    return 0;
}

static int get_dead_letters(int n, const char *const *v, void *ud)
{
    st_ctx *c = ud;
    json_t *o = n >= 2 ? proj_of(c, v[0]) : NULL;
    return o ? set(o, "dead_letters", json_integer(num(v[1])), c) : 0;
}

/* projection, error, event type, aggregate type, stream, version: the
 * error with the event it is about, "BidPlaced auction/A v2: ...". */
static int get_last_error(int n, const char *const *v, void *ud)
{
    st_ctx *c = ud;
    json_t *o = n >= 6 ? proj_of(c, v[0]) : NULL;
    if (o == NULL || !json_is_null(json_object_get(o, "last_error")))
        return 0; /* newest first: keep the first */
    {
        char text[2048];
        snprintf(text, sizeof text, "%s %s/%s v%s: %s", v[2] ? v[2] : "",
                 v[3] ? v[3] : "", v[4] ? v[4] : "", v[5] ? v[5] : "",
                 v[1] ? v[1] : "");
        return set(o, "last_error", es__json_str(text), c);
    }
}

static int get_heartbeat(int n, const char *const *v, void *ud)
{
    st_ctx *c = ud;
    json_t *o = n >= 5 ? proj_of(c, v[0]) : NULL, *age;
    double s;
    if (o == NULL)
        return 0;
    s = (double)(c->now - num(v[4])) / 1e6;
    if (json_array_append_new(json_object_get(o, "workers"),
                              json_pack("{s:s, s:s, s:I, s:f}", "worker",
                                        v[1] ? v[1] : "", "state",
                                        v[2] ? v[2] : "", "batches",
                                        (json_int_t)num(v[3]), "age_s", s)) != 0) {
        c->oom = 1;
        return 1;
    }
    age = json_object_get(o, "heartbeat_age_s");
    if (json_is_null(age) || json_real_value(age) > s)
        return set(o, "heartbeat_age_s", json_real(s), c);
    return 0;
}

typedef struct first_ev {
    int64_t occurred_us;
    int found;
} first_ev;

static int first_event(const es_event *ev, void *ud)
{
    first_ev *f = ud;
    f->occurred_us = ev->occurred_us;
    f->found = 1;
    return 1; /* one is enough */
}

/* Heads and lags of one projection's partitions; the sums for a rebuild. */
static int add_heads(es_log *log, json_t *o, int64_t now, int64_t *done,
                     int64_t *total, es_error *err)
{
    size_t i;
    json_t *pt;
    *done = *total = 0;
    json_array_foreach(json_object_get(o, "partitions"), i, pt) {
        const char *type = json_string_value(json_object_get(pt, "type"));
        int32_t part = (int32_t)json_integer_value(json_object_get(pt, "partition"));
        int64_t ckpt = json_integer_value(json_object_get(pt, "checkpoint"));
        int64_t head, next;
        first_ev f = {0, 0};
        double lag_s = 0;
        int rc;
        if (log == NULL)
            continue;
        if ((rc = es_log_head(log, &head, type, part)) != 0)
            return es__err(err, rc, "%s partition %d: %s", type, (int)part,
                           es_errmsg(log));
        if (head > ckpt) {
            rc = es_log_read_partition(log, &next, type, part, ckpt, 1,
                                       first_event, &f);
            if (rc != 0 && rc != ES_EUSER)
                return es__err(err, rc, "%s partition %d: %s", type, (int)part,
                               es_errmsg(log));
            if (f.found && now > f.occurred_us)
                lag_s = (double)(now - f.occurred_us) / 1e6;
        }
        if (json_object_set_new(pt, "head", json_integer(head)) != 0 ||
            json_object_set_new(pt, "lag_events",
                                json_integer(head > ckpt ? head - ckpt : 0)) != 0 ||
            json_object_set_new(pt, "lag_seconds", json_real(lag_s)) != 0)
            return es__err(err, ES_ENOMEM, "out of memory");
        *done += ckpt;
        *total += head;
    }
    return 0;
}

static int query(es__target *t, const char *sql, es__row_cb cb, st_ctx *c,
                 es_error *err)
{
    int rc = es__target_query(t, sql, NULL, 0, cb, c);
    if (c->oom)
        return es__err(err, ES_ENOMEM, "out of memory");
    if (rc != 0)
        return es__err(err, rc, "%s", es_errmsg(t));
    return 0;
}

int es_projection_status(json_t **out, es_log *log, const char *target_uri,
                         es_error *err)
{
    es__target *t = NULL;
    st_ctx c;
    size_t i;
    json_t *o;
    int rc;

    if (out == NULL)
        return es__err(err, ES_EINVAL, "es_projection_status: no out");
    *out = NULL;
    memset(&c, 0, sizeof c);
    c.now = es_time_now_us();
    c.projs = json_object();
    c.list = json_array();
    if (target_uri == NULL)
        target_uri = getenv("ESFOLD_TARGET");
    if (target_uri == NULL)
        target_uri = "";
    if (c.projs == NULL || c.list == NULL) {
        rc = es__err(err, ES_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = es__target_open(&t, target_uri)) != 0) {
        rc = es__err(err, rc, "%s", t ? es_errmsg(t) : "out of memory");
        goto done;
    }
    /* A target no worker has written to has no es_proj_ tables: nothing. */
    if (es__target_query(t, "SELECT name, version FROM " P "projections"
                         " ORDER BY name", NULL, 0, get_projection, &c) != 0 &&
        !c.oom) {
        rc = 0;
        goto report;
    }
    if (c.oom ||
        (rc = query(t, "SELECT projection, agg_type, partition_no, next_offset"
                    " FROM " P "checkpoints ORDER BY projection, agg_type,"
                    " partition_no", get_checkpoint, &c, err)) != 0 ||
        (rc = query(t, "SELECT projection, count(*) FROM " P "deadletters"
                    " WHERE status IN ('failed', 'waiting', 'retry')"
                    " GROUP BY projection", get_dead_letters, &c, err)) != 0 ||
        (rc = query(t, "SELECT projection, error, event_type, agg_type,"
                    " stream_id, version FROM " P "deadletters"
                    " WHERE status = 'failed' ORDER BY updated_us DESC",
                    get_last_error, &c, err)) != 0 ||
        (rc = query(t, "SELECT projection, worker, state, batches, updated_us"
                    " FROM " P "heartbeats ORDER BY projection, worker",
                    get_heartbeat, &c, err)) != 0) {
        if (c.oom)
            rc = es__err(err, ES_ENOMEM, "out of memory");
        goto done;
    }
    json_array_foreach(c.list, i, o) {
        int64_t done_sum, total;
        if ((rc = add_heads(log, o, c.now, &done_sum, &total, err)) != 0)
            goto done;
        (void)done_sum;
        (void)total;
    }
    /* A rebuild in progress: under its projection, with its progress. */
    for (i = 0; i < json_array_size(c.list);) {
        const char *name;
        const char *hash;
        json_t *base;
        int64_t done_sum, total;
        o = json_array_get(c.list, i);
        name = json_string_value(json_object_get(o, "name"));
        hash = strchr(name, '#');
        if (hash == NULL || strcmp(hash, "#rebuild") != 0) {
            i++;
            continue;
        }
        {
            char base_name[128];
            snprintf(base_name, sizeof base_name, "%.*s", (int)(hash - name), name);
            base = json_object_get(c.projs, base_name);
        }
        if (base == NULL) {
            i++;
            continue;
        }
        done_sum = total = 0;
        {
            size_t k;
            json_t *pt;
            json_array_foreach(json_object_get(o, "partitions"), k, pt) {
                done_sum += json_integer_value(json_object_get(pt, "checkpoint"));
                total += json_integer_value(json_object_get(pt, "head"));
            }
        }
        if (json_object_set_new(base, "rebuild",
                                json_pack("{s:s, s:O, s:I, s:I, s:f, s:O}",
                                          "name", name, "version",
                                          json_object_get(o, "version"), "done",
                                          (json_int_t)done_sum, "total",
                                          (json_int_t)total, "progress",
                                          total > 0 ? (double)done_sum /
                                                      (double)total : 1.0,
                                          "partitions",
                                          json_object_get(o, "partitions"))) != 0 ||
            json_array_remove(c.list, i) != 0) {
            rc = es__err(err, ES_ENOMEM, "out of memory");
            goto done;
        }
    }
report:
    {
        char *name = es__uri_redact(target_uri);
        *out = json_pack("{s:s, s:I, s:O}", "target", name ? name : "",
                         "now_us", (json_int_t)c.now, "projections", c.list);
        es__free(name);
    }
    rc = *out ? 0 : es__err(err, ES_ENOMEM, "out of memory");
done:
    json_decref(c.projs);
    json_decref(c.list);
    es__target_close(t);
    return rc;
}

/* ---- Prometheus ------------------------------------------------------------ */

/* A label value: backslash, double quote and newline escaped. */
static void label(es__buf *b, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '\\' || *s == '"')
            es__buf_printf(b, "\\%c", *s);
        else if (*s == '\n')
            es__buf_adds(b, "\\n");
        else
            es__buf_add(b, s, 1);
    }
}

typedef struct metric {
    const char *name, *help;
    int per_partition; /* else per projection */
    const char *key;   /* in the partition / projection object */
} metric;

static const metric metrics[] = {
    {"esfold_projection_checkpoint", "The next log offset the projection "
     "applies, per partition.", 1, "checkpoint"},
    {"esfold_projection_head", "The offset the next event of the partition "
     "gets.", 1, "head"},
    {"esfold_projection_lag_events", "Log offsets not applied yet "
     "(head - checkpoint).", 1, "lag_events"},
    {"esfold_projection_lag_seconds", "Age of the oldest event not applied "
     "yet (0: caught up).", 1, "lag_seconds"},
    {"esfold_projection_dead_letters", "Dead letters failed, waiting or "
     "marked for retry.", 0, "dead_letters"},
    {"esfold_projection_heartbeat_age_seconds", "Seconds since the freshest "
     "worker's heartbeat.", 0, "heartbeat_age_s"},
    {"esfold_projection_rebuild_progress", "Fraction of the log a rebuild in "
     "progress has applied.", 0, "rebuild"},
    {"esfold_projection_version", "The version of the projection's tables.",
     0, "version"},
};

static void value(es__buf *b, const json_t *v)
{
    if (json_is_integer(v))
        es__buf_printf(b, " %lld\n", (long long)json_integer_value(v));
    else
        es__buf_printf(b, " %.6g\n", json_number_value(v));
}

int es_projection_status_prometheus(char **out, const json_t *status)
{
    es__buf b = {NULL, 0, 0, 0};
    const json_t *list = json_object_get(status, "projections");

    if (out == NULL || !json_is_array(list))
        return ES_EINVAL;
    *out = NULL;
    for (size_t m = 0; m < sizeof metrics / sizeof *metrics; m++) {
        const metric *mt = &metrics[m];
        size_t i;
        json_t *o;
        es__buf_printf(&b, "# HELP %s %s\n# TYPE %s gauge\n", mt->name, mt->help,
                       mt->name);
        json_array_foreach(list, i, o) {
            const char *name = json_string_value(json_object_get(o, "name"));
            if (mt->per_partition) {
                size_t k;
                json_t *pt;
                json_array_foreach(json_object_get(o, "partitions"), k, pt) {
                    json_t *v = json_object_get(pt, mt->key);
                    if (!json_is_number(v))
                        continue;
                    es__buf_printf(&b, "%s{projection=\"", mt->name);
                    label(&b, name);
                    es__buf_adds(&b, "\",type=\"");
                    label(&b, json_string_value(json_object_get(pt, "type")));
                    es__buf_printf(&b, "\",partition=\"%lld\"}", (long long)
                                   json_integer_value(json_object_get(pt,
                                                                      "partition")));
                    value(&b, v);
                }
            } else {
                json_t *v = json_object_get(o, mt->key);
                if (json_is_object(v))
                    v = json_object_get(v, "progress");
                if (!json_is_number(v))
                    continue;
                es__buf_printf(&b, "%s{projection=\"", mt->name);
                label(&b, name);
                es__buf_adds(&b, "\"}");
                value(&b, v);
            }
        }
    }
    if (b.oom) {
        es__buf_free(&b);
        return ES_ENOMEM;
    }
    *out = b.data;
    return 0;
}

/*
 * cli/history.c - `history TYPE STREAM`: every event of a stream, and the
 * state after each one when the aggregate type is compiled in (the audit
 * trail: "what did account 42 look like on 1 March, and why").
 */
#include <string.h>

#include "cli/cli.h"
#include "core/internal.h"

enum { OPT_TO_VERSION, OPT_AS_OF, OPT_JSON };

static const es__cli_opt history_opts[] = {
    { "to-version", "N", "stop after version N" },
    { "as-of", "TIME", "stop at the last event that occurred at or before TIME "
                       "(ISO 8601)" },
    { "json", NULL, "print one JSON object (docs/cli.md, \"JSON output\")" },
    { NULL, NULL, NULL }
};

typedef struct history_ctx {
    es__cli *cli;
    const es_aggregate_type *type; /* compiled in with an encoder, or NULL */
    const char *note;              /* why no state is shown: printed once,
                                      before the next event */
    int json;
    json_t *events;                /* --json: the events array */
    json_t *state;                 /* --json: the state after the last one */
    int64_t count;
    int64_t version;
    int status;                    /* set when a callback failed */
    /* The payload schemas as stored, by version - 1 (read before a fold,
     * whose events carry the upcast schema); NULL: the events are read as
     * stored. */
    int32_t *stored;
    size_t cap;
} history_ctx;

static int on_stored(const es_event *ev, void *user_data)
{
    history_ctx *h = user_data;
    size_t cap = h->cap;
    if (ev->version < 1 || ev->version > INT32_MAX)
        return 0; /* the fold will say what is wrong */
    while ((int64_t)cap < ev->version)
        cap = cap ? 2 * cap : 64;
    if (cap != h->cap) {
        if (es__grow((void **)&h->stored, h->cap * sizeof *h->stored,
                     cap * sizeof *h->stored) != 0)
            return 1;
        memset(h->stored + h->cap, 0, (cap - h->cap) * sizeof *h->stored);
        h->cap = cap;
    }
    h->stored[ev->version - 1] = ev->schema;
    return 0;
}

/* The stored schemas of the stream's events within range, read before a
 * fold upcasts them. */
static int read_stored(history_ctx *h, es_log *log, const char *type,
                       const char *stream, es_range range)
{
    es_read_options ro = ES_READ_OPTIONS_INIT;
    int rc;
    ro.to = range;
    rc = es_log_read_stream(log, type, stream, &ro, on_stored, h);
    if (rc == ES_EUSER)
        return es__cli_fail(h->cli, "out of memory");
    if (rc != 0) {
        es__cli_fail(h->cli, "%s", es_errmsg(log));
        return es__cli_fail_code(h->cli, rc, NULL);
    }
    return ES__CLI_OK;
}

/* The schema ev had in the log: ev's own when it was read as stored. */
static int32_t stored_schema(const history_ctx *h, const es_event *ev)
{
    if (h->stored && ev->version >= 1 && (size_t)ev->version <= h->cap &&
        h->stored[ev->version - 1] > 0)
        return h->stored[ev->version - 1];
    return ev->schema;
}

static int on_event(history_ctx *h, const es_event *ev, const void *state)
{
    json_t *sj = NULL;
    int rc = ES__CLI_OK;

    if (h->type && state) {
        if ((sj = h->type->encode(state)) == NULL) {
            h->status = es__cli_fail(h->cli, "%s/%s: encoding the state after "
                                     "version %lld failed", ev->aggregate_type,
                                     ev->stream_id, (long long)ev->version);
            return 1;
        }
    }
    if (h->json) {
        json_t *o = es_event_to_json(ev);
        if (o == NULL ||
            json_object_set_new(o, "stored_schema",
                                json_integer(stored_schema(h, ev))) != 0 ||
            json_object_set(o, "state", sj ? sj : json_null()) != 0 ||
            json_array_append_new(h->events, o) != 0) {
            json_decref(sj);
            h->status = es__cli_fail(h->cli, "out of memory");
            return 1;
        }
        json_decref(h->state);
        h->state = sj;
        sj = NULL;
    } else {
        if (h->note) {
            printf("%s\n", h->note);
            h->note = NULL; /* once */
        }
        rc = es__cli_print_event(h->cli, stdout, ev, stored_schema(h, ev), sj);
    }
    json_decref(sj);
    if (rc != ES__CLI_OK) {
        h->status = rc;
        return 1;
    }
    h->count++;
    h->version = ev->version;
    return 0;
}

static int on_replay(const es_event *ev, const void *state, void *user_data)
{
    return on_event(user_data, ev, state);
}

static int on_read(const es_event *ev, void *user_data)
{
    return on_event(user_data, ev, NULL);
}

static int on_first(const es_event *ev, void *user_data)
{
    *(int64_t *)user_data = ev->occurred_us;
    return 1;
}

/* The "to" member of the JSON document and the footer's words. */
static json_t *range_json(es_range r)
{
    char when[ES_TIME_BUFSZ];
    switch (r.kind) {
    case ES_RANGE_VERSION:
        return json_pack("{s:s,s:I}", "kind", "version", "version",
                         (json_int_t)r.version);
    case ES_RANGE_TIME:
        es_time_format(when, sizeof when, r.time_us);
        return json_pack("{s:s,s:s,s:I}", "kind", "as_of", "as_of", when,
                         "as_of_us", (json_int_t)r.time_us);
    default:
        return json_pack("{s:s}", "kind", "end");
    }
}

static int no_events(es__cli *cli, es_log *log, const char *type,
                     const char *stream, es_range r)
{
    char when[ES_TIME_BUFSZ], first[ES_TIME_BUFSZ];
    es_read_options ro = ES_READ_OPTIONS_INIT;
    int64_t first_us = 0;
    int rc;

    if (r.kind != ES_RANGE_TIME) {
        es__cli_fail(cli, "no events in %s/%s", type, stream);
        return es__cli_fail_code(cli, ES_ENOTFOUND, NULL);
    }
    es_time_format(when, sizeof when, r.time_us);
    /* Say when the stream does begin: the auditor asked too early. */
    ro.to = ES_RANGE_TO_VERSION(1);
    rc = es_log_read_stream(log, type, stream, &ro, on_first, &first_us);
    if (rc == ES_EUSER && first_us != 0) {
        es_time_format(first, sizeof first, first_us);
        es__cli_fail(cli, "no events in %s/%s as of %s (its first event "
                     "is at %s)", type, stream, when, first);
    } else {
        es__cli_fail(cli, "no events in %s/%s as of %s", type, stream, when);
    }
    return es__cli_fail_code(cli, ES_ENOTFOUND, NULL);
}

static int history_run(es__cli *cli, int argc, char **argv)
{
    const char *v[ES__CLI_MAX_OPTS];
    char *args[ES__CLI_MAX_ARGS];
    const es_aggregate_type *type;
    const char *tname, *stream;
    history_ctx h;
    es_range range = ES_RANGE_ALL;
    es_repo *repo = NULL;
    es_log *log = NULL;
    json_t *doc = NULL;
    char note[ES_NAME_MAX + 128], fold_error[ES__ERRMSG_MAX] = "";
    int nargs, st, rc, fold_rc = 0;

    if ((st = es__cli_parse(cli, argc, argv, v, args, &nargs)) >= 0)
        return st;
    tname = args[0];
    stream = args[1];
    if (v[OPT_TO_VERSION] && v[OPT_AS_OF])
        return es__cli_usage(cli, "--to-version and --as-of cannot be combined");
    if (v[OPT_TO_VERSION]) {
        int64_t n;
        if (es__parse_i64(&n, v[OPT_TO_VERSION]) != 0 || n < 1)
            return es__cli_usage(cli, "--to-version '%s' is not a version "
                                 "(1 or more)", v[OPT_TO_VERSION]);
        range = ES_RANGE_TO_VERSION(n);
    }
    if (v[OPT_AS_OF]) {
        es_error err;
        int64_t t;
        if (es_time_parse(&t, v[OPT_AS_OF], &err) != 0)
            return es__cli_usage(cli, "--as-of '%s': %s", v[OPT_AS_OF], err.text);
        range = ES_RANGE_AS_OF(t);
    }

    memset(&h, 0, sizeof h);
    h.cli = cli;
    h.json = v[OPT_JSON] != NULL;
    type = es__cli_find_type(cli, tname);
    if (type && type->encode)
        h.type = type;
    if (h.json && (h.events = json_array()) == NULL)
        return es__cli_fail(cli, "out of memory");

    /* With the type: fold, the state after each event. Without it, or
     * from the event a fold failed on: the events as stored. */
    if (h.type) {
        if ((st = es__cli_repo(cli, 1, &repo)) != ES__CLI_OK)
            goto done;
        log = es_repo_log(repo);
        if ((st = read_stored(&h, log, tname, stream, range)) != ES__CLI_OK)
            goto done;
        rc = es_repo_replay(repo, NULL, h.type, stream, range, on_replay, &h);
        if (rc != 0 && h.status) {
            st = h.status;
            goto done;
        }
        if (rc != 0) {
            /* An auditor still wants to see every event, above all the one
             * the fold failed on: show the rest without state, then fail. */
            snprintf(fold_error, sizeof fold_error, "%s", es_errmsg(repo));
            fold_rc = rc;
            snprintf(note, sizeof note, "(state not shown from version %lld "
                     "on: the fold failed)", (long long)h.count + 1);
            h.type = NULL;
            json_decref(h.state); /* not the state after the last event */
            h.state = NULL;
        }
    } else {
        snprintf(note, sizeof note, "(state not shown: aggregate type '%s' %s)",
                 tname, type ? "has no encode function"
                             : "is not compiled into this program");
    }
    if (h.type == NULL) {
        es_read_options ro = ES_READ_OPTIONS_INIT;
        if (log == NULL && (st = es__cli_log(cli, 1, &log)) != ES__CLI_OK)
            goto done;
        h.note = note;
        ro.from_version = h.count + 1;
        ro.to = range;
        rc = es_log_read_stream(log, tname, stream, &ro, on_read, &h);
        if (rc != 0) {
            if (fold_error[0])
                es__cli_fail(cli, "%s", fold_error);
            if (h.status)
                st = h.status;
            else {
                es__cli_fail(cli, "%s", es_errmsg(log));
                st = es__cli_fail_code(cli, rc, NULL);
            }
            goto done;
        }
        if (h.json && h.count > 0 && !fold_error[0])
            fprintf(stderr, "%s\n", note);
    }
    if (h.count == 0) {
        st = no_events(cli, log, tname, stream, range);
        goto done;
    }

    if (h.json) {
        /* Every member always: absent values are null. */
        doc = es__cli_json_doc();
        if (doc == NULL ||
            json_object_set_new(doc, "aggregate_type", es__json_str(tname)) ||
            json_object_set_new(doc, "stream_id", es__json_str(stream)) ||
            json_object_set_new(doc, "to", range_json(range)) ||
            json_object_set(doc, "events", h.events) ||
            json_object_set_new(doc, "event_count", json_integer(h.count)) ||
            json_object_set_new(doc, "version", json_integer(h.version)) ||
            json_object_set(doc, "state", h.state ? h.state : json_null()) ||
            json_object_set_new(doc, "error",
                                fold_error[0]
                                    ? json_pack("{s:s,s:o}", "code",
                                                es__cli_error_name(fold_rc),
                                                "message", es__json_str(fold_error))
                                    : json_null())) {
            st = es__cli_fail(cli, "out of memory");
            goto done;
        }
        st = es__cli_print_json(cli, doc);
    } else {
        char when[ES_TIME_BUFSZ];
        printf("-- %s/%s at version %lld (%lld event%s", tname, stream,
               (long long)h.version, (long long)h.count, h.count == 1 ? "" : "s");
        if (range.kind == ES_RANGE_VERSION)
            printf(", up to version %lld", (long long)range.version);
        else if (range.kind == ES_RANGE_TIME) {
            es_time_format(when, sizeof when, range.time_us);
            printf(", as of %s", when);
        }
        printf(")\n");
        st = ES__CLI_OK;
    }
    if (fold_error[0] && st == ES__CLI_OK)
        st = es__cli_fail(cli, "%s", fold_error);
done:
    es__free(h.stored);
    json_decref(doc);
    json_decref(h.events);
    json_decref(h.state);
    return st;
}

const es__cli_command es__cli_history = {
    .name = "history",
    .summary = "print the events of a stream, with the state after each one",
    .synopsis = "TYPE STREAM [--to-version N | --as-of TIME] [--json]",
    .help =
        "Prints every event of stream STREAM of aggregate type TYPE in version\n"
        "order: version, time, event type, payload schema, event id, log\n"
        "position (pPARTITION@OFFSET), payload, metadata, correlation and\n"
        "causation ids. When TYPE is compiled into this program (and can encode\n"
        "its state), events are folded as a load would fold them (upcasters\n"
        "applied) and the state after each event is printed too; an event an\n"
        "upcaster changed shows both schemas, \"(schema 2, stored 1)\"\n"
        "(stored_schema in JSON).\n"
        "\n"
        "--to-version N stops after version N; --as-of TIME stops at the last\n"
        "event that occurred at or before TIME, e.g. 2026-03-01T10:00:00Z,\n"
        "2026-03-01T11:00:00+01:00 or 2026-03-01.\n"
        "\n"
        "A stream without events (within the range) is a failure (exit 1). So\n"
        "is an event the fold fails on: the events from there on are still\n"
        "printed, without state, and the error follows.\n",
    .opts = history_opts,
    .min_args = 2,
    .max_args = 2,
    .run = history_run,
};

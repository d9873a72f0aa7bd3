/*
 * cli/append.c - `append TYPE STREAM --expect V`: one commit, read as JSON
 * lines from stdin, appended atomically or not at all.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/internal.h"

enum { OPT_EXPECT, OPT_JSON, OPT_UNCHECKED };

static const es__cli_opt append_opts[] = {
    { "expect", "V", "the stream's version now: N, 0 (no stream yet) or any "
                     "(required)" },
    { "json", NULL, "print the result as one JSON object (docs/cli.md)" },
    { "unchecked", NULL, "do not fold the events onto the stream first (the "
                         "check of a type compiled in)" },
    { NULL, NULL, NULL }
};

/* Bad lines reported one by one before the rest are only counted. */
#define MAX_REPORTED 50

static const char *const known_keys[] = {
    "type", "data", "id", "schema", "correlation_id", "causation_id", "meta",
    "occurred_at", NULL
};

typedef struct input {
    es_event *events; /* strings and JSON borrowed from objs */
    json_t **objs;    /* one parsed line each, owned */
    int64_t *lines;   /* the line number of each */
    size_t n, cap;
    int64_t bad;      /* malformed lines */
} input;

static void input_free(input *in)
{
    for (size_t i = 0; i < in->n; i++)
        json_decref(in->objs[i]);
    es__free(in->events);
    es__free(in->objs);
    es__free(in->lines);
}

/* Lists the event types type handles, for the message about one it does
 * not. */
static void handled_types(const es_aggregate_type *type, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (const es_handler *h = type->handlers; h && h->event_type; h++) {
        int w = snprintf(buf + len, size - len, "%s%s", len ? ", " : "",
                         h->event_type);
        if (w < 0 || (size_t)w >= size - len)
            break;
        len += (size_t)w;
    }
}

/* Checks one parsed line and fills ev from it (borrowing from o). */
static int parse_event(const json_t *o, es_event *ev,
                       const char *tname, const char *stream, es_repo *repo,
                       const es_aggregate_type *type, es_error *err)
{
    const char *key, *when = NULL;
    json_t *v;
    int rc;

    if (!json_is_object(o))
        return es__err(err, ES_EINVAL, "not a JSON object (expected "
                       "{\"type\": \"...\", \"data\": {...}})");
    json_object_foreach((json_t *)o, key, v) {
        size_t k;
        for (k = 0; known_keys[k]; k++)
            if (strcmp(known_keys[k], key) == 0)
                break;
        if (known_keys[k] == NULL)
            return es__err(err, ES_EINVAL, "unknown key \"%s\" (an event has "
                           "\"type\" and \"data\", and may have \"id\", "
                           "\"schema\", \"correlation_id\", \"causation_id\", "
                           "\"meta\", \"occurred_at\")", key);
    }
    memset(ev, 0, sizeof *ev);
    ev->aggregate_type = tname;
    ev->stream_id = stream;
    if (json_object_get(o, "type") == NULL)
        return es__err(err, ES_EINVAL, "no \"type\"");
    if ((rc = es__json_get_str(o, "type", 0, &ev->type, err)) ||
        (rc = es__json_get_str(o, "id", 0, &ev->id, err)) ||
        (rc = es__json_get_str(o, "correlation_id", 0, &ev->correlation_id, err)) ||
        (rc = es__json_get_str(o, "causation_id", 0, &ev->causation_id, err)) ||
        (rc = es__json_get_str(o, "occurred_at", 0, &when, err)))
        return rc;
    if (ev->type == NULL)
        return es__err(err, ES_EINVAL, "\"type\" is null");
    if ((v = json_object_get(o, "data")) == NULL)
        return es__err(err, ES_EINVAL, "no \"data\"");
    if (!json_is_object(v))
        return es__err(err, ES_EINVAL, "\"data\" is not a JSON object");
    ev->payload = v;
    if ((v = json_object_get(o, "meta")) != NULL && !json_is_null(v)) {
        if (!json_is_object(v))
            return es__err(err, ES_EINVAL, "\"meta\" is not a JSON object");
        ev->meta = v;
    }
    ev->schema = 1;
    if ((v = json_object_get(o, "schema")) != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > INT32_MAX)
            return es__err(err, ES_EINVAL, "\"schema\" is not an integer "
                           "from 1 to %d", INT32_MAX);
        ev->schema = (int32_t)json_integer_value(v);
    }
    if (when) {
        es_error terr;
        if (es_time_parse(&ev->occurred_us, when, &terr) != 0)
            return es__err(err, ES_EINVAL, "\"occurred_at\": %s", terr.text);
        if (ev->occurred_us <= 0)
            return es__err(err, ES_EINVAL, "\"occurred_at\": %s is not after "
                           "1970-01-01T00:00:00Z", when);
    }
    if ((rc = es_event_validate(ev, 0, err)) != 0)
        return rc;
    /* A typo in an event type would make the stream unfoldable later:
     * refuse types the compiled-in aggregate cannot apply. */
    if (type && !type->ignore_unknown && type->apply == NULL &&
        es_aggregate_type_find(type, ev->type) == NULL &&
        !(repo && es_upcasters_match(es_repo_upcasters(repo), ev->type,
                                     ev->schema))) {
        char known[256];
        handled_types(type, known, sizeof known);
        return es__err(err, ES_EINVAL, "event type \"%s\" is not handled by "
                       "aggregate type '%s' (it handles %s)", ev->type,
                       type->name, known);
    }
    return 0;
}

static int add_event(input *in, json_t *obj, const es_event *ev, int64_t line)
{
    if (in->n == in->cap) {
        size_t cap = in->cap ? in->cap * 2 : 16;
        if (es__grow((void **)&in->events, in->n * sizeof *in->events,
                     cap * sizeof *in->events) != 0 ||
            es__grow((void **)&in->objs, in->n * sizeof *in->objs,
                     cap * sizeof *in->objs) != 0 ||
            es__grow((void **)&in->lines, in->n * sizeof *in->lines,
                     cap * sizeof *in->lines) != 0)
            return ES_ENOMEM;
        in->cap = cap;
    }
    in->events[in->n] = *ev;
    in->objs[in->n] = obj;
    in->lines[in->n] = line;
    in->n++;
    return 0;
}

static void bad_line(es__cli *cli, input *in, int64_t lineno, const char *what)
{
    if (in->bad++ < MAX_REPORTED)
        es__cli_fail(cli, "line %lld: %s", (long long)lineno, what);
}

/* Reads every line of stdin; a malformed one is reported and counted, so
 * that one run shows all of them. */
static int read_input(es__cli *cli, input *in, const char *tname,
                      const char *stream, es_repo *repo,
                      const es_aggregate_type *type)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t lineno = 0;
    int st = ES__CLI_OK;

    clearerr(stdin);
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        json_error_t jerr;
        es_error err;
        es_event ev;
        json_t *obj;
        ssize_t i;

        lineno++;
        /* Without the line end, jansson's column points into the line. */
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        for (i = 0; i < len && strchr(" \t\r\n\f\v", line[i]) && line[i]; i++)
            ;
        if (i == len)
            continue; /* blank */
        obj = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES, &jerr);
        if (obj == NULL) {
            char what[400];
            snprintf(what, sizeof what, "not JSON: %s (column %d)", jerr.text,
                     jerr.column);
            bad_line(cli, in, lineno, what);
            continue;
        }
        if (parse_event(obj, &ev, tname, stream, repo, type, &err) != 0) {
            bad_line(cli, in, lineno, err.text);
            json_decref(obj);
            continue;
        }
        if (add_event(in, obj, &ev, lineno) != 0) {
            json_decref(obj);
            st = es__cli_fail(cli, "out of memory");
            goto done;
        }
    }
    if (ferror(stdin))
        st = es__cli_fail(cli, "reading standard input: %s", strerror(errno));
done:
    free(line); /* getline's, from libc */
    return st;
}

/*
 * Folds the new events onto the stream as it is now, the way every later
 * load will: an event the aggregate cannot apply (a missing field, a state
 * it does not allow) would make the stream unloadable for good, since
 * events are never changed. When the stream is not at the expected
 * version the append fails with the conflict anyway, and when it does not
 * load now (already damaged) there is nothing to check against: both skip
 * the check.
 */
static int fold_check(es__cli *cli, es_repo *repo, const es_aggregate_type *type,
                      const char *stream, int64_t expect, const input *in)
{
    es_aggregate *agg = NULL;
    es_event *ev = NULL;
    int64_t now = es_time_now_us(), version;
    int st = ES__CLI_OK, rc;

    if (es_repo_load(repo, &agg, type, stream, ES_RANGE_ALL) != 0) {
        fprintf(stderr, "%s: warning: the new events are not checked: %s\n",
                cli->prog, es_errmsg(repo));
        return ES__CLI_OK;
    }
    version = es_aggregate_version(agg);
    if (expect != ES_EXPECT_ANY && expect != version)
        goto done;
    for (size_t i = 0; i < in->n; i++) {
        es_error err;
        if (es_event_copy(&ev, &in->events[i]) != 0) {
            st = es__cli_fail(cli, "out of memory");
            goto done;
        }
        ev->version = version + (int64_t)i + 1;
        if (ev->occurred_us == 0)
            ev->occurred_us = now;
        if ((rc = es_upcasters_apply(es_repo_upcasters(repo), ev, &err)) != 0 ||
            (rc = es_aggregate_apply(agg, ev, &err)) != 0) {
            es__cli_fail(cli, "line %lld: aggregate type '%s' cannot fold this "
                         "event: %s", (long long)in->lines[i], type->name,
                         err.text);
            st = es__cli_fail(cli, "nothing appended (--unchecked appends "
                              "anyway)");
            goto done;
        }
        es_event_free(ev);
        ev = NULL;
    }
done:
    es_event_free(ev);
    es_aggregate_free(agg);
    return st;
}

/*
 * The log could not tell whether the commit was written: exit status 3,
 * never "failed". The message names the ids; with --json the error object
 * lists them all (code "unknown"), so that a retry with the same ids (a
 * no-op if the first try was written) can be made from it.
 */
static int unknown_outcome(es__cli *cli, es_log *log, const char *tname,
                           const char *stream, const input *in)
{
    json_t *ids;
    es__cli_fail(cli, "%s", es_errmsg(log));
    fprintf(stderr,
            "%s: the outcome is unknown: the %zu event%s may or may not be in "
            "%s/%s. Append them again with the same ids (\"id\" on each line; "
            "ids %s .. %s): that writes nothing if they are there\n",
            cli->prog, in->n, in->n == 1 ? "" : "s", tname, stream,
            in->events[0].id, in->events[in->n - 1].id);
    if ((ids = json_array()) == NULL)
        return es__cli_fail(cli, "out of memory");
    for (size_t i = 0; i < in->n; i++)
        if (json_array_append_new(ids, json_string(in->events[i].id)) != 0) {
            json_decref(ids);
            return es__cli_fail(cli, "out of memory");
        }
    es__cli_fail_code(cli, ES_EUNKNOWN,
                      json_pack("{s:s,s:s,s:s,s:I,s:o}", "outcome", "unknown",
                                "aggregate_type", tname, "stream_id", stream,
                                "event_count", (json_int_t)in->n, "ids", ids));
    return ES__CLI_UNKNOWN;
}

static int last_version(const es_event *ev, void *user_data)
{
    *(int64_t *)user_data = ev->version;
    return 0;
}

/* A conflict as data: the error object gets the expected version (null
 * for any) and the stream's actual one (null when it cannot be read). */
static int conflict(es__cli *cli, es_log *log, const char *type,
                    const char *stream, int64_t expect)
{
    char msg[ES__ERRMSG_MAX];
    int64_t actual = 0;
    int rc;
    snprintf(msg, sizeof msg, "%s", es_errmsg(log));
    rc = es_log_read_stream(log, type, stream, NULL, last_version, &actual);
    es__cli_fail(cli, "%s", msg);
    return es__cli_fail_code(cli, ES_ECONFLICT,
                             json_pack("{s:o,s:o}", "expected",
                                       expect == ES_EXPECT_ANY ? json_null()
                                                               : json_integer(expect),
                                       "actual", rc == 0 ? json_integer(actual)
                                                         : json_null()));
}

static int append_run(es__cli *cli, int argc, char **argv)
{
    const char *v[ES__CLI_MAX_OPTS];
    char *args[ES__CLI_MAX_ARGS];
    const char *tname, *stream;
    const es_aggregate_type *type;
    es_append_result res;
    int64_t expect;
    es_repo *repo = NULL;
    es_log *log;
    input in;
    json_t *doc = NULL;
    char (*ids)[ES_UUID_BUFSZ] = NULL;
    int nargs, st, rc;

    memset(&in, 0, sizeof in);
    if ((st = es__cli_parse(cli, argc, argv, v, args, &nargs)) >= 0)
        return st;
    tname = args[0];
    stream = args[1];
    if (v[OPT_EXPECT] == NULL)
        return es__cli_usage(cli, "--expect is required: the stream's current "
                             "version, 0 for a new stream, or any");
    if (strcmp(v[OPT_EXPECT], "any") == 0)
        expect = ES_EXPECT_ANY;
    else if (es__parse_i64(&expect, v[OPT_EXPECT]) != 0 || expect < 0 ||
             v[OPT_EXPECT][0] < '0' || v[OPT_EXPECT][0] > '9')
        return es__cli_usage(cli, "--expect '%s' is not a version, 0 or 'any'",
                             v[OPT_EXPECT]);

    type = v[OPT_UNCHECKED] ? NULL : es__cli_find_type(cli, tname);
    if (type) {
        /* For the upcasters the program registers (old event types). */
        if ((st = es__cli_repo(cli, 0, &repo)) != ES__CLI_OK)
            return st;
    }
    if (isatty(STDIN_FILENO))
        fprintf(stderr, "%s: reading events from standard input, one JSON "
                "object a line; end with Ctrl-D\n", cli->prog);
    if ((st = read_input(cli, &in, tname, stream, repo, type)) != ES__CLI_OK)
        goto done;
    if (in.bad > 0) {
        if (in.bad > MAX_REPORTED)
            es__cli_fail(cli, "(and %lld more bad lines)",
                         (long long)(in.bad - MAX_REPORTED));
        st = es__cli_fail(cli, "nothing appended: %lld bad line%s in the input",
                          (long long)in.bad, in.bad == 1 ? "" : "s");
        goto done;
    }
    if (in.n == 0) {
        st = es__cli_fail(cli, "nothing appended: no events on standard input "
                          "(one JSON object a line: {\"type\": ..., \"data\": "
                          "{...}})");
        goto done;
    }
    if (type && (st = fold_check(cli, repo, type, stream, expect, &in)) != ES__CLI_OK)
        goto done;
    if ((st = es__cli_log(cli, 0, &log)) != ES__CLI_OK)
        goto done;
    /* Ids of its own for the events without one, so that an unknown
     * outcome can name them for a retry. */
    if ((ids = es__calloc(in.n, sizeof *ids)) == NULL) {
        st = es__cli_fail(cli, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < in.n; i++)
        if (in.events[i].id == NULL) {
            if (es_uuid_v7(ids[i]) != 0) {
                st = es__cli_fail(cli, "no random bytes for event ids");
                goto done;
            }
            in.events[i].id = ids[i];
        }
    rc = es_log_append(log, &res, tname, stream, expect, in.events, in.n);
    if (rc == ES_EUNKNOWN) {
        st = unknown_outcome(cli, log, tname, stream, &in);
        goto done;
    }
    if (rc == ES_ECONFLICT) {
        st = conflict(cli, log, tname, stream, expect);
        goto done;
    }
    if (rc != 0) {
        es__cli_fail(cli, "%s", es_errmsg(log));
        st = es__cli_fail_code(cli, rc, NULL);
        goto done;
    }
    if (v[OPT_JSON]) {
        json_t *body = json_pack("{s:o,s:o,s:I,s:I,s:I,s:{s:{s:i,s:I},s:{s:i,s:I}},s:b}",
                        "aggregate_type", es__json_str(tname), "stream_id",
                        es__json_str(stream),
                        "event_count", (json_int_t)in.n,
                        "first_version", (json_int_t)res.first_version,
                        "version", (json_int_t)res.version,
                        "positions",
                        "first", "partition", (int)res.first.partition,
                        "offset", (json_int_t)res.first.offset,
                        "last", "partition", (int)res.last.partition,
                        "offset", (json_int_t)res.last.offset,
                        "duplicate", res.duplicate);
        if (body && (doc = es__cli_json_doc()) != NULL)
            json_object_update(doc, body);
        json_decref(body);
        st = doc ? es__cli_print_json(cli, doc) : es__cli_fail(cli, "out of memory");
        goto done;
    }
    if (res.duplicate)
        printf("nothing appended: these events are already in %s/%s: version ",
               tname, stream);
    else
        printf("appended %zu event%s to %s/%s: version ", in.n,
               in.n == 1 ? "" : "s", tname, stream);
    if (res.first_version == res.version)
        printf("%lld\n", (long long)res.version);
    else
        printf("%lld..%lld\n", (long long)res.first_version,
               (long long)res.version);
    st = ES__CLI_OK;
done:
    json_decref(doc);
    input_free(&in);
    es__free(ids);
    return st;
}

const es__cli_command es__cli_append = {
    .name = "append",
    .summary = "append a commit of events, read as JSON lines from stdin",
    .synopsis = "TYPE STREAM --expect V [--json] < EVENTS",
    .help =
        "Reads one event a line from standard input and appends them all to\n"
        "stream STREAM of aggregate type TYPE as one commit: all of them or\n"
        "none. Each line is a JSON object:\n"
        "\n"
        "  {\"type\": \"Deposited\", \"data\": {\"amount\": 2500}}\n"
        "\n"
        "with optional \"id\" (default: a new UUIDv7), \"schema\" (default 1),\n"
        "\"correlation_id\", \"causation_id\", \"meta\" (an object) and\n"
        "\"occurred_at\" (ISO 8601; default: now). Blank lines are skipped. Any\n"
        "other key, or any malformed line, is reported with its line number and\n"
        "nothing is appended.\n"
        "\n"
        "When TYPE is compiled into this program, the events are checked: they\n"
        "are folded onto the stream's current state first, through the\n"
        "program's upcasters and the aggregate's apply functions, and an event\n"
        "type the aggregate does not handle, or an event its apply function\n"
        "rejects, is refused: it would make the stream unloadable for good.\n"
        "The check is apply's, not decide's: the aggregate's invariants (a\n"
        "balance that must not go negative, say) are not checked, since an\n"
        "appended event is a fact, not a command. --unchecked skips the check\n"
        "(verify then reports a stream that does not load).\n"
        "\n"
        "--expect is the stream's version before the commit (a conflict fails\n"
        "with the stream's actual version), 0 when the stream must not exist,\n"
        "or 'any'. Appending event ids that are already in the stream writes\n"
        "nothing and says so (a retry is harmless).\n"
        "\n"
        "Exit status 3: the outcome is unknown (the log could not tell in time\n"
        "whether the commit was written, e.g. the broker froze). The events may\n"
        "or may not be in the stream; the message (and --json, with \"outcome\":\n"
        "\"unknown\" and every id) names their ids: append them again with the\n"
        "same ids to settle it.\n",
    .opts = append_opts,
    .min_args = 2,
    .max_args = 2,
    .run = append_run,
};

/*
 * cli/snapshot.c - `snapshot take TYPE [STREAM]`, `snapshot list TYPE
 * STREAM`, `snapshot prune --keep N [TYPE [STREAM]]`.
 *
 * The store is --snapshots URI, else $ESFOLD_SNAPSHOTS, else the log's own
 * file when the log is SQLite, or the log's cluster and topic prefix
 * (topics <prefix><type>.snapshots) when it is Kafka. Taking needs the
 * aggregate type compiled in (its encode and decode); listing and pruning
 * do not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/internal.h"
#include "core/map.h"
#include "esfold/snapshot.h"

enum { OPT_SNAPSHOTS, OPT_KEEP, OPT_JSON };

static const es__cli_opt snapshot_opts[] = {
    { "snapshots", "URI", "the snapshot store (default: $ESFOLD_SNAPSHOTS, "
                          "else the log's sqlite: file or kafka:// cluster)" },
    { "keep", "N", "prune: how many of the newest snapshots of each stream "
                   "stay (required)" },
    { "json", NULL, "list: print one JSON object (docs/cli.md)" },
    { NULL, NULL, NULL }
};

/* Events per es_log_read_partition call when finding a type's streams. */
#define BATCH 1024

/* The store of --snapshots, $ESFOLD_SNAPSHOTS or the log's file. */
static int open_store(es__cli *cli, const char *opt, int read_only,
                      es_snapshot_store **out)
{
    char *uri = NULL;
    int rc;

    *out = NULL;
    if (opt == NULL)
        opt = cli->snapshots_uri; /* the global --snapshots, $ESFOLD_SNAPSHOTS */
    if (opt)
        uri = es__strdup(opt);
    else if ((rc = es_snapshot_default_uri(&uri, cli->log_uri)) == ES_ENOTFOUND)
        return es__cli_fail(cli, "no snapshot store: give --snapshots URI or "
                            "set ESFOLD_SNAPSHOTS");
    if (uri && read_only) {
        /* `list` never creates or changes a file. */
        char *ro = es__cli_read_only_uri(uri);
        es__free(uri);
        uri = ro;
    }
    if (uri == NULL)
        return es__cli_fail(cli, "out of memory");
    rc = es_snapshot_store_open(out, uri);
    if (rc != 0) {
        es__cli_fail(cli, "%s", *out ? es_errmsg(*out) : es_strerror(rc));
        es_snapshot_store_close(*out);
        *out = NULL;
    }
    es__free(uri);
    return rc == 0 ? ES__CLI_OK : ES__CLI_FAIL;
}

static void on_warning(int code, const char *message, void *user_data)
{
    es__cli *cli = user_data;
    (void)code;
    fprintf(stderr, "%s: warning: %s\n", cli->prog, message);
}

/* ---- take --------------------------------------------------------------- */

/* The distinct stream ids of a type, in the order first met. */
typedef struct id_list {
    char **ids;   /* in order */
    size_t n, cap;
    es__map seen; /* the same strings, to tell a new one (core/map.h) */
    int oom;
} id_list;

static void id_list_free(id_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        es__free(l->ids[i]);
    es__free(l->ids);
    es__map_free(&l->seen);
}

static int id_list_add(id_list *l, const char *id)
{
    if (es__map_get(&l->seen, id))
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        if (es__grow((void **)&l->ids, l->n * sizeof *l->ids, cap * sizeof *l->ids))
            return ES_ENOMEM;
        l->cap = cap;
    }
    if ((l->ids[l->n] = es__strdup(id)) == NULL)
        return ES_ENOMEM;
    if (es__map_put(&l->seen, l->ids[l->n], l->ids[l->n]) != 0) {
        es__free(l->ids[l->n]);
        return ES_ENOMEM;
    }
    l->n++;
    return 0;
}

static int collect_stream(const es_event *ev, void *user_data)
{
    id_list *l = user_data;
    if (id_list_add(l, ev->stream_id) != 0) {
        l->oom = 1;
        return 1;
    }
    return 0;
}

static int find_streams(es__cli *cli, es_log *log, const char *type, id_list *l)
{
    int32_t parts;
    int rc;

    if ((rc = es_log_partition_count(log, &parts, type)) != 0)
        return es__cli_fail(cli, "%s", es_errmsg(log));
    for (int32_t p = 0; p < parts; p++) {
        int64_t from = 0, next = 0;
        for (;;) {
            rc = es_log_read_partition(log, &next, type, p, from, BATCH,
                                       collect_stream, l);
            if (l->oom)
                return es__cli_fail(cli, "out of memory");
            if (rc != 0)
                return es__cli_fail(cli, "%s", es_errmsg(log));
            if (next == from)
                break;
            from = next;
        }
    }
    return ES__CLI_OK;
}

static int take_one(es__cli *cli, es_repo *repo, const es_aggregate_type *type,
                    const char *stream, int quiet_if_empty)
{
    char pos[64];
    es_snapshot *snap = NULL;
    int rc = es_repo_snapshot(repo, &snap, type, stream);
    if (rc == ES_ENOTFOUND && quiet_if_empty)
        return ES__CLI_OK;
    if (rc != 0)
        return es__cli_fail(cli, "%s", es_errmsg(repo));
    snprintf(pos, sizeof pos, "p%d@%lld", (int)snap->position.partition,
             (long long)snap->position.offset);
    printf("%s/%s: snapshot at version %lld (%s, %zu bytes of state)\n",
           type->name, stream, (long long)snap->version, pos,
           strlen(snap->state));
    es_snapshot_free(snap);
    return ES__CLI_OK;
}

static int take(es__cli *cli, es_snapshot_store *store, char **args, int nargs)
{
    const es_aggregate_type *type;
    es_repo *repo;
    id_list l;
    int st, failed = 0;

    if (nargs < 2 || nargs > 3)
        return es__cli_usage(cli, "snapshot take TYPE [STREAM]");
    if ((type = es__cli_find_type(cli, args[1])) == NULL)
        return es__cli_fail(cli, "aggregate type '%s' is not compiled into %s: "
                            "taking a snapshot folds the stream with its code",
                            args[1], cli->prog);
    if ((st = es__cli_repo(cli, 1, &repo)) != ES__CLI_OK)
        return st;
    es_repo_set_warning_cb(repo, on_warning, cli);
    if (es_repo_add_snapshots(repo, type, store, NULL) != 0)
        return es__cli_fail(cli, "%s", es_errmsg(repo));
    if (nargs == 3)
        return take_one(cli, repo, type, args[2], 0);

    memset(&l, 0, sizeof l);
    if ((st = find_streams(cli, es_repo_log(repo), type->name, &l)) != ES__CLI_OK) {
        id_list_free(&l);
        return st;
    }
    for (size_t i = 0; i < l.n; i++)
        if (take_one(cli, repo, type, l.ids[i], 1) != ES__CLI_OK)
            failed++;
    if (l.n == 0)
        printf("%s: no streams\n", type->name);
    else
        printf("%zu snapshot%s taken of %zu stream%s of %s\n", l.n - (size_t)failed,
               l.n - (size_t)failed == 1 ? "" : "s", l.n, l.n == 1 ? "" : "s",
               type->name);
    id_list_free(&l);
    return failed ? ES__CLI_FAIL : ES__CLI_OK;
}

/* ---- list --------------------------------------------------------------- */

typedef struct list_ctx {
    es__cli *cli;
    json_t *arr; /* --json */
    int64_t count, corrupt;
    int oom;
} list_ctx;

static int on_snapshot(const es_snapshot *snap, void *user_data)
{
    list_ctx *c = user_data;
    char when[ES_TIME_BUFSZ], taken[ES_TIME_BUFSZ], horizon[ES_TIME_BUFSZ];
    es_error err;
    int bad = es_snapshot_verify(snap, &err) != 0;

    c->count++;
    c->corrupt += bad;
    es_time_format(when, sizeof when, snap->time_us);
    es_time_format(taken, sizeof taken, snap->taken_us);
    if (snap->horizon_us == INT64_MAX)
        snprintf(horizon, sizeof horizon, "unknown");
    else
        es_time_format(horizon, sizeof horizon, snap->horizon_us);
    if (c->arr) {
        /* The state as JSON, not as an escaped string; null when it does
         * not parse (a damaged snapshot: "problem" says so). */
        json_t *state = json_loads(snap->state, JSON_DECODE_ANY, NULL);
        json_t *o = json_pack("{s:I, s:{s:i, s:I}, s:o, s:s, s:I, s:o, s:i, "
                              "s:s, s:I, s:o, s:o, s:b, s:o}",
                              "version", (json_int_t)snap->version,
                              "position", "partition", (int)snap->position.partition,
                              "offset", (json_int_t)snap->position.offset,
                              "event_id", es__json_str(snap->event_id),
                              "occurred_at", when,
                              "occurred_us", (json_int_t)snap->time_us,
                              "horizon_at", snap->horizon_us == INT64_MAX
                                                ? json_null() : json_string(horizon),
                              "state_schema", (int)snap->state_schema,
                              "taken_at", taken,
                              "state_bytes", (json_int_t)strlen(snap->state),
                              "state", state ? state : json_null(), "checksum",
                              es__json_str(snap->checksum), "ok", !bad,
                              "problem", bad ? es__json_str(err.text) : json_null());
        if (o == NULL || json_array_append_new(c->arr, o) != 0) {
            c->oom = 1;
            return 1;
        }
        return 0;
    }
    printf("v%lld  %s  schema %d  p%d@%lld  %zu bytes  %s  %s\n"
           "      event %s  horizon %s  taken %s\n",
           (long long)snap->version, when, (int)snap->state_schema,
           (int)snap->position.partition, (long long)snap->position.offset,
           strlen(snap->state), snap->checksum, bad ? "CORRUPT" : "ok",
           snap->event_id, horizon, taken);
    if (bad)
        printf("      %s\n", err.text);
    return 0;
}

static int list(es__cli *cli, es_snapshot_store *store, char **args, int nargs,
                int json)
{
    list_ctx c;
    int rc, st = ES__CLI_OK;

    if (nargs != 3)
        return es__cli_usage(cli, "snapshot list TYPE STREAM");
    memset(&c, 0, sizeof c);
    c.cli = cli;
    if (json && (c.arr = json_array()) == NULL)
        return es__cli_fail(cli, "out of memory");
    rc = es_snapshot_list(store, args[1], args[2], ES_RANGE_ALL, on_snapshot, &c);
    if (c.oom)
        st = es__cli_fail(cli, "out of memory");
    else if (rc != 0)
        st = es__cli_fail(cli, "%s", es_errmsg(store));
    else if (json) {
        json_t *body = json_pack("{s:o, s:o, s:o, s:O, s:I, s:I}", "store",
                                 es__json_str(es_snapshot_store_uri(store)),
                                 "aggregate_type", es__json_str(args[1]),
                                 "stream_id", es__json_str(args[2]),
                                 "snapshots", c.arr,
                                 "snapshot_count", (json_int_t)c.count,
                                 "corrupt_count", (json_int_t)c.corrupt);
        json_t *doc = body ? es__cli_json_doc() : NULL;
        if (doc)
            json_object_update(doc, body);
        json_decref(body);
        st = doc ? es__cli_print_json(cli, doc) : es__cli_fail(cli, "out of memory");
        json_decref(doc);
    } else if (c.count == 0) {
        printf("no snapshots of %s/%s\n", args[1], args[2]);
    } else {
        printf("%lld snapshot%s of %s/%s", (long long)c.count,
               c.count == 1 ? "" : "s", args[1], args[2]);
        if (c.corrupt)
            printf(", %lld corrupt (loads skip them)", (long long)c.corrupt);
        printf("\n");
    }
    json_decref(c.arr);
    return st;
}

/* ---- prune -------------------------------------------------------------- */

static int prune(es__cli *cli, es_snapshot_store *store, char **args, int nargs,
                 const char *keep_opt)
{
    int64_t keep, removed = 0;

    if (keep_opt == NULL)
        return es__cli_usage(cli, "snapshot prune needs --keep N");
    if (es__parse_i64(&keep, keep_opt) != 0 || keep < 0)
        return es__cli_usage(cli, "--keep '%s' is not a count (0 or more)",
                             keep_opt);
    if (es_snapshot_prune(store, &removed, nargs > 1 ? args[1] : NULL,
                          nargs > 2 ? args[2] : NULL, keep) != 0)
        return es__cli_fail(cli, "%s", es_errmsg(store));
    printf("removed %lld snapshot%s, kept the newest %lld of each stream%s%s%s%s\n",
           (long long)removed, removed == 1 ? "" : "s", (long long)keep,
           nargs > 1 ? " of " : "", nargs > 1 ? args[1] : "",
           nargs > 2 ? "/" : "", nargs > 2 ? args[2] : "");
    return ES__CLI_OK;
}

static int snapshot_run(es__cli *cli, int argc, char **argv)
{
    const char *v[ES__CLI_MAX_OPTS];
    char *args[ES__CLI_MAX_ARGS];
    es_snapshot_store *store = NULL;
    const char *sub;
    int nargs, st;

    if ((st = es__cli_parse(cli, argc, argv, v, args, &nargs)) >= 0)
        return st;
    sub = args[0];
    if (strcmp(sub, "take") != 0 && strcmp(sub, "list") != 0 &&
        strcmp(sub, "prune") != 0)
        return es__cli_usage(cli, "unknown snapshot command '%s' (take, list "
                             "or prune)", sub);
    if (v[OPT_KEEP] && strcmp(sub, "prune") != 0)
        return es__cli_usage(cli, "--keep is for snapshot prune");
    if (v[OPT_JSON] && strcmp(sub, "list") != 0)
        return es__cli_usage(cli, "--json is for snapshot list");
    if (strcmp(sub, "prune") == 0 && v[OPT_KEEP] == NULL)
        return es__cli_usage(cli, "snapshot prune needs --keep N");
    if ((st = open_store(cli, v[OPT_SNAPSHOTS], strcmp(sub, "list") == 0,
                         &store)) != ES__CLI_OK)
        return st;
    if (strcmp(sub, "take") == 0)
        st = take(cli, store, args, nargs);
    else if (strcmp(sub, "list") == 0)
        st = list(cli, store, args, nargs, v[OPT_JSON] != NULL);
    else
        st = prune(cli, store, args, nargs, v[OPT_KEEP]);
    /* The repository (freed by es_cli_main) holds the store borrowed:
     * detach it before closing. */
    if (cli->repo && strcmp(sub, "take") == 0 && nargs >= 2) {
        const es_aggregate_type *type = es__cli_find_type(cli, args[1]);
        if (type)
            es_repo_add_snapshots(cli->repo, type, NULL, NULL);
    }
    es_snapshot_store_close(store);
    return st;
}

const es__cli_command es__cli_snapshot = {
    .name = "snapshot",
    .summary = "take, list or prune the snapshots of streams",
    .synopsis = "take TYPE [STREAM] | list TYPE STREAM | prune --keep N [TYPE [STREAM]]",
    .help =
        "take TYPE [STREAM]   folds the stream (every stream of TYPE when no\n"
        "                     STREAM is given) from its newest usable snapshot\n"
        "                     and saves a snapshot of its state now. TYPE must\n"
        "                     be compiled into the program.\n"
        "list TYPE STREAM     the stream's snapshots, newest first, each checked\n"
        "                     (checksum): a CORRUPT one is skipped by loads.\n"
        "prune --keep N [TYPE [STREAM]]\n"
        "                     deletes all but the newest N snapshots of each\n"
        "                     stream (of TYPE, of TYPE/STREAM).\n"
        "\n"
        "Snapshots only make loads faster: a load never depends on one, and one\n"
        "that is corrupt, of another state schema or ahead of the log is skipped\n"
        "(and reported). Stores: sqlite:PATH, postgresql://... (libpq URI),\n"
        "kafka://HOST:PORT?prefix=P (compacted topics P<type>.snapshots: compaction\n"
        "keeps the newest of each stream, so prune --keep N >= 1 removes nothing\n"
        "there, --keep 0 writes tombstones).",
    .opts = snapshot_opts,
    .min_args = 1,
    .max_args = 3,
    .run = snapshot_run,
};

/*
 * cli/project.c - `project run NAME...|--file F`, `project list`, and
 * `deadletters list|retry|skip NAME`.
 *
 * Projections are the ones compiled into the program (es_app.projections)
 * and JSON files given with --file (esfold/projection.h). The target is
 * --target URI, else $ESFOLD_TARGET, else es_projection_default_target():
 * a SQLite file next to a SQLite log.
 *
 * `project run` runs every named projection in one process, one batch of
 * each in turn, until SIGINT or SIGTERM (it then stops after its current
 * batch) or, with --until-caught-up, until all are at the head of the log.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/internal.h"
#include "esfold/projection.h"

/* ---- shared ------------------------------------------------------------- */

enum { OPT_FILE, OPT_TARGET, OPT_UNTIL, OPT_JSON, OPT_BATCH, OPT_STREAM,
       OPT_STOP_ON_ERROR, OPT_SHARE, OPT_LEASE_MS };

static const es__cli_opt project_opts[] = {
    { "file", "F", "run: a projection in a JSON file (docs/projections.md)" },
    { "target", "URI", "where the read models are (default: $ESFOLD_TARGET, "
                       "else a sqlite file next to the log)" },
    { "until-caught-up", NULL, "run: stop once every partition is at its head" },
    { "json", NULL, "JSON lines instead of text" },
    { "batch", "N", "run: events per batch and partition (default 1000)" },
    { "stream", "ID", "deadletters retry/skip: only this stream" },
    { "stop-on-error", NULL, "run: a handler failure stops the run instead of "
                             "dead-lettering the event" },
    { "share", NULL, "run: share the work with the other workers of each "
                     "projection (Kafka: a consumer group; else a lease in "
                     "the target)" },
    { "lease-ms", "N", "run --share: the lease's duration, on Kafka the "
                       "group's session timeout (default 10000)" },
    { NULL, NULL, NULL }
};

static int target_uri(es__cli *cli, const char *opt, char **out)
{
    if (opt) {
        *out = es__strdup(opt);
    } else if (es_projection_default_target(out, cli->log_uri) != 0) {
        *out = NULL;
    }
    return *out ? ES__CLI_OK : es__cli_fail(cli, "out of memory");
}

static const es_projection *find_compiled(const es__cli *cli, const char *name)
{
    if (cli->app == NULL || cli->app->projections == NULL)
        return NULL;
    for (size_t i = 0; cli->app->projections[i]; i++)
        if (strcmp(cli->app->projections[i]->name, name) == 0)
            return cli->app->projections[i];
    return NULL;
}

/* ---- project run -------------------------------------------------------- */

typedef struct running {
    const es_projection *proj;
    es_projection_worker *w;
    es_projection_step total;
    int caught_up;
    int waiting; /* told that it waits for a lease or an assignment */
} running;

static void print_progress(const running *r, size_t n, int json, int final,
                           int64_t elapsed_us)
{
    if (json) {
        for (size_t i = 0; i < n; i++)
            printf("{\"format\":%d,\"projection\":\"%s\",\"applied\":%lld,"
                   "\"skipped\":%lld,"
                   "\"dead_lettered\":%lld,\"retried\":%lld,\"batches\":%lld,"
                   "\"caught_up\":%s%s}\n", ES__CLI_JSON_FORMAT, r[i].proj->name,
                   (long long)r[i].total.applied, (long long)r[i].total.skipped,
                   (long long)r[i].total.dead_lettered,
                   (long long)r[i].total.retried, (long long)r[i].total.batches,
                   r[i].caught_up ? "true" : "false",
                   final ? ",\"stopped\":true" : "");
        fflush(stdout);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        FILE *f = final ? stdout : stderr;
        double secs = elapsed_us > 0 ? (double)elapsed_us / 1e6 : 0;
        char rate[48] = "";
        if (!final && secs > 0)
            snprintf(rate, sizeof rate, ", %.0f events/s",
                     (double)(r[i].total.applied + r[i].total.skipped) / secs);
        fprintf(f, "%s%s: %lld applied, %lld skipped, %lld dead-lettered, "
                "%lld retried in %lld batches%s%s%s", final ? "" : "\r",
                r[i].proj->name, (long long)r[i].total.applied,
                (long long)r[i].total.skipped,
                (long long)r[i].total.dead_lettered,
                (long long)r[i].total.retried, (long long)r[i].total.batches,
                rate, r[i].caught_up ? " (caught up)" : "",
                final || n > 1 ? "\n" : "");
        fflush(f);
    }
}

static int run(es__cli *cli, const char **v, char **args, int nargs)
{
    es_projection_worker_options o = ES_PROJECTION_WORKER_OPTIONS_INIT;
    volatile int *stop_flag;
    es_projection *from_file = NULL;
    running r[ES__CLI_MAX_ARGS + 1];
    size_t n = 0;
    char *uri = NULL;
    es_log *log;
    es_error err;
    int st, json = v[OPT_JSON] != NULL, tty = isatty(2) && !json, idle_ms = 0;
    int io_ms = 0;
    int64_t last_print = 0, started = es_time_now_us();

    memset(r, 0, sizeof r);
    if (nargs == 0 && v[OPT_FILE] == NULL)
        return es__cli_usage(cli, "project run needs NAME... or --file F");
    if (v[OPT_BATCH]) {
        int64_t b;
        if (es__parse_i64(&b, v[OPT_BATCH]) != 0 || b < 1 || b > 1000000)
            return es__cli_usage(cli, "--batch needs a number from 1 to 1000000");
        o.batch_size = (size_t)b;
    }
    if (v[OPT_STOP_ON_ERROR])
        o.on_failure = ES_PROJECTION_STOP;
    if (v[OPT_SHARE])
        o.share = ES_PROJECTION_SHARE_AUTO;
    if (v[OPT_LEASE_MS]) {
        int64_t ms;
        if (!v[OPT_SHARE])
            return es__cli_usage(cli, "--lease-ms is for run --share");
        if (es__parse_i64(&ms, v[OPT_LEASE_MS]) != 0 || ms < 100 ||
            ms > 3600000)
            return es__cli_usage(cli, "--lease-ms needs a number from 100 to "
                                 "3600000");
        o.lease_ms = (int)ms;
    }
    for (int i = 0; i < nargs; i++) {
        if ((r[n].proj = find_compiled(cli, args[i])) == NULL)
            return es__cli_fail(cli, "no projection '%s' is compiled into %s "
                                "(see `%s project list`; a JSON file runs "
                                "with --file)", args[i], cli->prog, cli->prog);
        n++;
    }
    if (v[OPT_FILE]) {
        if (es_projection_load_file(&from_file, v[OPT_FILE], &err) != 0)
            return es__cli_fail(cli, "%s", err.text);
        r[n++].proj = from_file;
    }
    if ((st = es__cli_log(cli, 1, &log)) != ES__CLI_OK ||
        (st = target_uri(cli, v[OPT_TARGET], &uri)) != ES__CLI_OK)
        goto done;
    stop_flag = es__cli_stop_begin();
    for (size_t i = 0; i < n; i++) {
        int rc;
        /* A target that cannot be reached yet (a database still starting)
         * is waited for, as a lost one is while running; a run that is to
         * end once caught up fails at once instead. */
        while ((rc = es_projection_worker_open(&r[i].w, log, r[i].proj, uri,
                                               &o)) == ES_EIO &&
               !v[OPT_UNTIL] && !*stop_flag) {
            io_ms = es__backoff_ms(io_ms, 50, 5000);
            fprintf(stderr, "%s: %s (again in %d ms)\n", cli->prog,
                    r[i].w ? es_errmsg(r[i].w) : es_strerror(rc), io_ms);
            es_projection_worker_close(r[i].w);
            r[i].w = NULL;
            es__sleep_ms(io_ms);
        }
        if (rc != 0) {
            st = es__cli_fail(cli, "%s", r[i].w ? es_errmsg(r[i].w)
                                                : es_strerror(rc));
            es__cli_stop_end();
            goto done;
        }
    }
    io_ms = 0;
    st = ES__CLI_OK;
    while (!*stop_flag) {
        int all = 1, busy = 0;
        for (size_t i = 0; i < n && !*stop_flag; i++) {
            es_projection_step s = {0, 0, 0, 0, 0, 0};
            int rc = es_projection_worker_step(r[i].w, &s);
            if (rc == ES_ECONFLICT) {
                fprintf(stderr, "%s: %s\n", cli->prog, es_errmsg(r[i].w));
                rc = 0;
            }
            if (rc == ES_EIO) {
                /* Lost the target or the log: wait, reconnect, go on from
                 * the checkpoint. */
                io_ms = es__backoff_ms(io_ms, 50, 5000);
                fprintf(stderr, "%s: %s (again in %d ms)\n", cli->prog,
                        es_errmsg(r[i].w), io_ms);
                es__sleep_ms(io_ms);
                all = 0;
                continue;
            }
            if (rc != 0) {
                st = es__cli_fail(cli, "%s", es_errmsg(r[i].w));
                break;
            }
            io_ms = 0;
            {
                const char *waiting = es_projection_worker_waiting(r[i].w);
                if ((waiting != NULL) != r[i].waiting)
                    fprintf(stderr, "%s: %s: %s\n", cli->prog, r[i].proj->name,
                            waiting ? waiting : "owns its partitions now");
                r[i].waiting = waiting != NULL;
            }
            r[i].total.applied += s.applied;
            r[i].total.skipped += s.skipped;
            r[i].total.dead_lettered += s.dead_lettered;
            r[i].total.retried += s.retried;
            r[i].total.batches += s.batches;
            r[i].caught_up = s.caught_up;
            all &= s.caught_up;
            busy |= s.batches > 0;
        }
        if (st != ES__CLI_OK)
            break;
        if (busy || (json && last_print == 0)) {
            int64_t now = es_time_now_us();
            if ((tty || json) && now - last_print >= 200000) {
                print_progress(r, n, json, 0, now - started);
                last_print = now;
            }
        }
        if (all && v[OPT_UNTIL])
            break;
        if (!busy) {
            idle_ms = es__backoff_ms(idle_ms, 1, 100);
            es__sleep_ms(idle_ms);
        } else {
            idle_ms = 0;
        }
    }
    es__cli_stop_end();
    if (tty && last_print)
        fputc('\n', stderr);
    print_progress(r, n, json, 1, es_time_now_us() - started);
done:
    for (size_t i = 0; i < n; i++)
        es_projection_worker_close(r[i].w);
    es_projection_free(from_file);
    es__free(uri);
    return st;
}

/* ---- project list ------------------------------------------------------- */

static int list(es__cli *cli, const char **v)
{
    size_t n = 0;
    int json = v[OPT_JSON] != NULL;

    json_t *doc = json ? es__cli_json_doc() : NULL, *list = json ? json_array() : NULL;
    int st = ES__CLI_OK;

    if (json && (doc == NULL || list == NULL ||
                 json_object_set_new(doc, "projections", list) != 0)) {
        json_decref(doc);
        return es__cli_fail(cli, "out of memory");
    }
    if (cli->app && cli->app->projections)
        for (; cli->app->projections[n]; n++) {
            const es_projection *p = cli->app->projections[n];
            if (json) {
                json_t *follows = json_array(), *one;
                for (size_t k = 0; follows && p->follows[k]; k++)
                    json_array_append_new(follows, json_string(p->follows[k]));
                one = json_pack("{s:s,s:i,s:o*}", "name", p->name, "version",
                                (int)p->version, "follows", follows);
                if (one == NULL || json_array_append_new(list, one) != 0) {
                    json_decref(doc);
                    return es__cli_fail(cli, "out of memory");
                }
            } else {
                printf("%s  version %d  follows", p->name, (int)p->version);
                for (size_t k = 0; p->follows[k]; k++)
                    printf(" %s", p->follows[k]);
                printf("\n");
            }
        }
    if (json) {
        json_object_set_new(doc, "projection_count", json_integer((json_int_t)n));
        st = es__cli_print_json(cli, doc);
        json_decref(doc);
        return st;
    }
    if (n == 0)
        printf("No projections are compiled into %s (run a JSON file with "
               "`%s project run --file F`; `%s status --target URI` lists "
               "those a target holds).\n", cli->prog, cli->prog, cli->prog);
    return ES__CLI_OK;
}

static int project_main(es__cli *cli, int argc, char **argv)
{
    const char *v[ES__CLI_MAX_OPTS];
    char *args[ES__CLI_MAX_ARGS];
    int nargs, st;

    if (argc > 1 && strcmp(argv[1], "rebuild") == 0) /* cli/rebuild.c */
        return es__cli_project_rebuild(cli, argc - 1, argv + 1);
    if ((st = es__cli_parse(cli, argc, argv, v, args, &nargs)) >= 0)
        return st;
    if (v[OPT_STREAM])
        return es__cli_usage(cli, "--stream is for deadletters");
    if (strcmp(args[0], "run") == 0)
        return run(cli, v, args + 1, nargs - 1);
    if (strcmp(args[0], "list") == 0) {
        if (nargs > 1 || v[OPT_FILE] || v[OPT_UNTIL] || v[OPT_BATCH])
            return es__cli_usage(cli, "project list takes no arguments");
        return list(cli, v);
    }
    return es__cli_usage(cli, "unknown project command '%s' (run or list)",
                         args[0]);
}

const es__cli_command es__cli_project = {
    .name = "project",
    .summary = "run projections: read-model tables kept from the log",
    .synopsis = "run NAME...|--file F [--target URI] [--until-caught-up] "
                "[--share [--lease-ms N]] | list | rebuild NAME|--file F "
                "[--as-of TIME]",
    .help =
        "run NAME... | --file F   applies the log to the projections' tables in\n"
        "                     the target, batch by batch, each batch in one\n"
        "                     transaction with its checkpoint: killed anywhere\n"
        "                     and run again, every event is applied once. Runs\n"
        "                     until SIGINT/SIGTERM (then stops after the current\n"
        "                     batch), or with --until-caught-up until every\n"
        "                     partition is at its head. Progress on a terminal,\n"
        "                     JSON lines with --json. With --share the workers\n"
        "                     of a projection split its partitions (Kafka: a\n"
        "                     consumer group) or one holds a lease in the\n"
        "                     target and another takes over when it dies.\n"
        "list                 the projections compiled into the program.\n"
        "rebuild NAME | --file F   rebuilds its tables while the old ones serve\n"
        "                     (`project rebuild --help`).\n"
        "\n"
        "Targets: sqlite:PATH, postgresql://... (libpq URI). Without --target\n"
        "and $ESFOLD_TARGET, the target of a log sqlite:DIR/NAME.db is\n"
        "sqlite:DIR/NAME.projections.db (of any other log: " ES_PROJECTION_DEFAULT_TARGET ").\n"
        "The worker's own tables are named es_proj_* (docs/projections.md).",
    .opts = project_opts,
    .min_args = 1,
    .max_args = -1,
    .run = project_main,
};

/* ---- deadletters -------------------------------------------------------- */

typedef struct dl_print {
    int json;
    int64_t n;
    json_t *list; /* with --json: the dead letters, printed as one object */
} dl_print;

static int print_dl(const es_projection_dead_letter *dl, void *ud)
{
    dl_print *p = ud;
    char when[ES_TIME_BUFSZ];
    p->n++;
    if (es_time_format(when, sizeof when, dl->updated_us) < 0) /* else its length */
        when[0] = '\0';
    if (p->json) {
        json_t *j = json_pack("{s:s, s:s, s:I, s:{s:i, s:I}, s:s, s:s, s:I, "
                              "s:s, s:s, s:s}",
                              "aggregate_type", dl->aggregate_type,
                              "stream_id", dl->stream_id,
                              "version", (json_int_t)dl->version,
                              "position", "partition", (int)dl->position.partition,
                              "offset", (json_int_t)dl->position.offset,
                              "event_type", dl->event_type, "status", dl->status,
                              "attempts", (json_int_t)dl->attempts,
                              "error", dl->error, "updated_at", when,
                              "event", dl->event);
        if (j == NULL || json_array_append_new(p->list, j) != 0)
            return 1;
        return 0;
    }
    printf("%s/%s v%lld %s  %s  attempts %lld  p%d@%lld  %s\n    %s\n",
           dl->aggregate_type, dl->stream_id, (long long)dl->version,
           dl->event_type, dl->status, (long long)dl->attempts,
           (int)dl->position.partition, (long long)dl->position.offset, when,
           dl->error);
    return 0;
}

static int deadletters_main(es__cli *cli, int argc, char **argv)
{
    const char *v[ES__CLI_MAX_OPTS];
    char *args[ES__CLI_MAX_ARGS];
    char *uri = NULL;
    es_error err;
    int nargs, st, rc;
    int64_t count = 0;

    if ((st = es__cli_parse(cli, argc, argv, v, args, &nargs)) >= 0)
        return st;
    if (nargs != 2)
        return es__cli_usage(cli, "deadletters needs list|retry|skip and a "
                             "projection NAME");
    if (v[OPT_FILE] || v[OPT_UNTIL] || v[OPT_BATCH] || v[OPT_STOP_ON_ERROR])
        return es__cli_usage(cli, "deadletters takes --target, --stream and "
                             "--json only");
    if ((st = target_uri(cli, v[OPT_TARGET], &uri)) != ES__CLI_OK)
        return st;
    if (strcmp(args[0], "list") == 0) {
        dl_print p = {v[OPT_JSON] != NULL, 0, NULL};
        if (v[OPT_STREAM]) {
            es__free(uri);
            return es__cli_usage(cli, "--stream is for retry and skip");
        }
        if (p.json && (p.list = json_array()) == NULL) {
            es__free(uri);
            return es__cli_fail(cli, "out of memory");
        }
        rc = es_projection_dead_letters(uri, args[1], print_dl, &p, &err);
        if (rc == 0 && p.n == 0 && !p.json)
            printf("No dead letters for %s.\n", args[1]);
        st = rc == 0 ? ES__CLI_OK : es__cli_fail(cli, "%s", err.text);
        if (rc == 0 && p.json) {
            json_t *doc = es__cli_json_doc();
            if (doc == NULL ||
                json_object_set_new(doc, "projection", json_string(args[1])) != 0 ||
                json_object_set(doc, "dead_letters", p.list) != 0 ||
                json_object_set_new(doc, "dead_letter_count",
                                    json_integer((json_int_t)p.n)) != 0)
                st = es__cli_fail(cli, "out of memory");
            else
                st = es__cli_print_json(cli, doc);
            json_decref(doc);
        }
        json_decref(p.list);
    } else if (strcmp(args[0], "retry") == 0 || strcmp(args[0], "skip") == 0) {
        int retry = args[0][0] == 'r';
        rc = retry ? es_projection_dead_letters_retry(uri, args[1], v[OPT_STREAM],
                                                      &count, &err)
                   : es_projection_dead_letters_skip(uri, args[1], v[OPT_STREAM],
                                                     &count, &err);
        if (rc != 0) {
            st = es__cli_fail(cli, "%s", err.text);
        } else {
            if (v[OPT_JSON]) {
                json_t *doc = es__cli_json_doc();
                if (doc == NULL ||
                    json_object_set_new(doc, "projection", json_string(args[1])) ||
                    json_object_set_new(doc, retry ? "retried_count" : "skipped_count",
                                        json_integer((json_int_t)count)))
                    st = es__cli_fail(cli, "out of memory");
                else
                    st = es__cli_print_json(cli, doc);
                json_decref(doc);
                es__free(uri);
                return st;
            } else
                printf("%lld failed dead letter(s) of %s marked %s%s\n",
                       (long long)count, args[1], retry ? "for retry" : "skipped",
                       retry ? ": a running worker applies them at its next "
                               "batch (or run the projection)"
                             : ": the events waiting behind them go on");
            st = ES__CLI_OK;
        }
    } else {
        st = es__cli_usage(cli, "unknown deadletters command '%s' (list, retry "
                           "or skip)", args[0]);
    }
    es__free(uri);
    return st;
}

const es__cli_command es__cli_deadletters = {
    .name = "deadletters",
    .summary = "list, retry or skip a projection's dead letters",
    .synopsis = "list|retry|skip NAME [--stream ID] [--target URI] [--json]",
    .help =
        "list NAME    the events projection NAME could not apply (status failed,\n"
        "             with the error and the attempts) and the later events of\n"
        "             their streams parked behind them (status waiting).\n"
        "retry NAME   marks the failed ones for retry: the worker applies them,\n"
        "             then the waiting ones, in version order, at its next batch.\n"
        "skip NAME    marks the failed ones skipped (kept, never applied): the\n"
        "             waiting ones behind them are applied.",
    .opts = project_opts,
    .min_args = 1,
    .max_args = 2,
    .run = deadletters_main,
};

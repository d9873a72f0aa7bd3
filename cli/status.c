/*
 * cli/status.c - `status [--target URI] [--json|--prometheus]`: where the
 * projections of a target are (esfold/status.h).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/internal.h"
#include "esfold/status.h"

enum { OPT_TARGET, OPT_JSON, OPT_PROMETHEUS };

static const es__cli_opt status_opts[] = {
    { "target", "URI", "where the read models are (default: $ESFOLD_TARGET, "
                       "else a sqlite file next to the log)" },
    { "json", NULL, "the status as one JSON document" },
    { "prometheus", NULL, "the Prometheus text exposition format" },
    { NULL, NULL, NULL }
};

static void print_text(const json_t *st)
{
    size_t i, k;
    json_t *o, *pt;
    json_array_foreach(json_object_get(st, "projections"), i, o) {
        const json_t *hb = json_object_get(o, "heartbeat_age_s");
        const json_t *rb = json_object_get(o, "rebuild");
        const char *err = json_string_value(json_object_get(o, "last_error"));
        printf("%s  version %lld  dead letters %lld  heartbeat %s",
               json_string_value(json_object_get(o, "name")),
               (long long)json_integer_value(json_object_get(o, "version")),
               (long long)json_integer_value(json_object_get(o, "dead_letters")),
               json_is_number(hb) ? "" : "none");
        if (json_is_number(hb))
            printf("%.1fs ago", json_number_value(hb));
        printf("\n");
        if (err)
            printf("  last error: %s\n", err);
        json_array_foreach(json_object_get(o, "partitions"), k, pt)
            printf("  %s p%lld  checkpoint %lld  head %lld  lag %lld events"
                   " %.1fs\n", json_string_value(json_object_get(pt, "type")),
                   (long long)json_integer_value(json_object_get(pt, "partition")),
                   (long long)json_integer_value(json_object_get(pt, "checkpoint")),
                   (long long)json_integer_value(json_object_get(pt, "head")),
                   (long long)json_integer_value(json_object_get(pt, "lag_events")),
                   json_number_value(json_object_get(pt, "lag_seconds")));
        if (json_is_object(rb))
            printf("  rebuild to version %lld: %.1f%% (%lld of %lld)\n",
                   (long long)json_integer_value(json_object_get(rb, "version")),
                   100.0 * json_number_value(json_object_get(rb, "progress")),
                   (long long)json_integer_value(json_object_get(rb, "done")),
                   (long long)json_integer_value(json_object_get(rb, "total")));
    }
    if (json_array_size(json_object_get(st, "projections")) == 0)
        printf("No projections in %s.\n",
               json_string_value(json_object_get(st, "target")));
}

static int status_main(es__cli *cli, int argc, char **argv)
{
    const char *v[ES__CLI_MAX_OPTS];
    char *args[ES__CLI_MAX_ARGS];
    char *uri = NULL;
    json_t *st = NULL;
    es_log *log;
    es_error err;
    int nargs, s;

    if ((s = es__cli_parse(cli, argc, argv, v, args, &nargs)) >= 0)
        return s;
    if (v[OPT_JSON] && v[OPT_PROMETHEUS])
        return es__cli_usage(cli, "--json or --prometheus, not both");
    if ((s = es__cli_log(cli, 1, &log)) != ES__CLI_OK)
        return s;
    if (v[OPT_TARGET])
        uri = es__strdup(v[OPT_TARGET]);
    else if (es_projection_default_target(&uri, cli->log_uri) != 0)
        uri = NULL;
    if (uri == NULL)
        return es__cli_fail(cli, "out of memory");
    if (es_projection_status(&st, log, uri, &err) != 0) {
        s = es__cli_fail(cli, "%s", err.text);
    } else if (v[OPT_JSON]) {
        s = es__cli_print_json(cli, st);
    } else if (v[OPT_PROMETHEUS]) {
        char *text = NULL;
        if (es_projection_status_prometheus(&text, st) != 0) {
            s = es__cli_fail(cli, "out of memory");
        } else {
            fputs(text, stdout);
            es_free(text);
            s = ES__CLI_OK;
        }
    } else {
        print_text(st);
        s = ES__CLI_OK;
    }
    json_decref(st);
    es__free(uri);
    return es__cli_finish(cli, s);
}

const es__cli_command es__cli_status = {
    .name = "status",
    .summary = "where the projections are: checkpoints, lag, dead letters",
    .synopsis = "[--target URI] [--json|--prometheus]",
    .help =
        "Per projection and partition: the checkpoint, the log head, the lag in\n"
        "events and in seconds (the age of the oldest event not applied yet);\n"
        "dead letters, the last error, the age of the freshest heartbeat, and\n"
        "a rebuild in progress. --prometheus prints the Prometheus text format\n"
        "(esfold_projection_lag_events{projection,type,partition}, ...).",
    .opts = status_opts,
    .min_args = 0,
    .max_args = 0,
    .run = status_main,
};

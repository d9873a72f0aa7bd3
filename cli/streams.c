/*
 * cli/streams.c - `streams TYPE [--json]`: the streams of an aggregate
 * type, with the version and partition of each (es_log_streams).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

enum { OPT_JSON };

static const es__cli_opt streams_opts[] = {
    { "json", NULL, "one JSON object instead of text" },
    { NULL, NULL, NULL }
};

typedef struct listing {
    es__cli *cli;
    json_t *list; /* --json: the array; else NULL */
    int64_t count;
    int failed;
} listing;

static int on_stream(const es_stream_info *info, void *user_data)
{
    listing *l = user_data;
    l->count++;
    if (l->list == NULL) {
        printf("%s  version %lld  p%d\n", info->stream_id,
               (long long)info->version, (int)info->partition);
        return 0;
    }
    if (json_array_append_new(l->list, json_pack("{s:s, s:I, s:i}",
                                                 "stream_id", info->stream_id,
                                                 "version", (json_int_t)info->version,
                                                 "partition", (int)info->partition)) != 0) {
        l->failed = 1;
        return 1;
    }
    return 0;
}

static int streams_run(es__cli *cli, int argc, char **argv)
{
    const char *values[ES__CLI_MAX_OPTS];
    char *args[ES__CLI_MAX_ARGS];
    listing l = { cli, NULL, 0, 0 };
    json_t *doc = NULL;
    es_log *log;
    int st, nargs, rc;

    if ((st = es__cli_parse(cli, argc, argv, values, args, &nargs)) >= 0)
        return st;
    if ((st = es__cli_log(cli, 1, &log)) != ES__CLI_OK)
        return st;
    if (values[OPT_JSON] &&
        ((doc = es__cli_json_doc()) == NULL ||
         json_object_set_new(doc, "aggregate_type", json_string(args[0])) ||
         json_object_set_new(doc, "streams", l.list = json_array()) ||
         l.list == NULL))
        l.failed = 1;
    rc = l.failed ? ES_ENOMEM : es_log_streams(log, args[0], on_stream, &l);
    if (l.failed || rc == ES_ENOMEM) {
        json_decref(doc);
        es__cli_fail(cli, "out of memory");
        return es__cli_fail_code(cli, ES_ENOMEM, NULL);
    }
    if (rc != 0) {
        json_decref(doc);
        es__cli_fail(cli, "%s", es_errmsg(log));
        return es__cli_fail_code(cli, rc, NULL);
    }
    if (doc) {
        st = json_object_set_new(doc, "stream_count", json_integer(l.count)) == 0
                 ? es__cli_print_json(cli, doc)
                 : es__cli_fail(cli, "out of memory");
        json_decref(doc);
        return st;
    }
    printf("-- %s: %lld stream%s%s\n", args[0], (long long)l.count,
           l.count == 1 ? "" : "s",
           l.count ? "" : " (no events of this type in the log)");
    return ES__CLI_OK;
}

const es__cli_command es__cli_streams = {
    "streams",
    "list the streams of an aggregate type, with their versions",
    "TYPE [--json]",
    "Each stream of TYPE that has events, in byte order of ids, with the\n"
    "version of its last event and its partition; on Kafka only accepted\n"
    "events count. On SQLite it reads the table of stream versions; on\n"
    "Kafka it reads every partition of TYPE from its beginning.\n",
    streams_opts,
    1, 1,
    streams_run,
};

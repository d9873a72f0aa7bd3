/*
 * cli/topics.c - `topics create TYPE... [--partitions N] [--replication R]
 * [--min-insync M]`: event topics for a real Kafka cluster.
 *
 * The --log URI (kafka://...) gives the brokers and the topic prefix. Each
 * topic is made with the Admin API, with retention.ms=-1 (events are kept
 * forever: a log that loses its beginning can no longer be folded) and
 * min.insync.replicas. librdkafka's mock broker (`esfold broker`) has no
 * Admin API; the command says so and how to make topics there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "adapters/kafka/kafka.h"
#include "cli/cli.h"

enum { OPT_PARTITIONS, OPT_REPLICATION, OPT_MIN_INSYNC };

static const es__cli_opt topics_opts[] = {
    { "partitions", "N", "partitions of each topic (default: the URI's, else 4)" },
    { "replication", "R", "replication factor (default: the broker's)" },
    { "min-insync", "M", "min.insync.replicas (default: R - 1 when R >= 3)" },
    { NULL, NULL, NULL }
};

static int count(es__cli *cli, const char *name, const char *v, int64_t *out)
{
    if (v && (es__parse_i64(out, v) != 0 || *out < 1 || *out > 100000))
        return es__cli_usage(cli, "--%s %s: expected a positive number", name, v);
    return 0;
}

static int topics_run(es__cli *cli, int argc, char **argv)
{
    const char *values[ES__CLI_MAX_OPTS] = {0};
    char *args[ES__CLI_MAX_ARGS];
    int nargs = 0, st, i, failed = 0;
    int64_t partitions = 0, replication = -1, min_insync = 0;
    es__kafka_uri uri;
    es__handle h;
    char errstr[512], buf[32];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk = NULL;
    rd_kafka_NewTopic_t **nts = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;

    if ((st = es__cli_parse(cli, argc, argv, values, args, &nargs)) >= 0)
        return st;
    if (strcmp(args[0], "create") != 0)
        return es__cli_usage(cli, "unknown subcommand '%s' (known: create)", args[0]);
    if (nargs < 2)
        return es__cli_usage(cli, "create: name at least one aggregate type");
    if ((st = count(cli, "partitions", values[OPT_PARTITIONS], &partitions)) ||
        (st = count(cli, "replication", values[OPT_REPLICATION], &replication)) ||
        (st = count(cli, "min-insync", values[OPT_MIN_INSYNC], &min_insync)))
        return st;
    if (strncmp(cli->log_uri, "kafka://", 8) != 0)
        return es__cli_usage(cli, "topics are a Kafka thing: give --log kafka://...");
    es__handle_init(&h);
    if (es__kafka_uri_parse(&uri, cli->log_uri, &h) != 0)
        return es__cli_fail(cli, "%s", h.errmsg);
    if (partitions == 0)
        partitions = uri.partitions;
    if (replication < 0 && uri.replication > 0)
        replication = uri.replication;
    if (min_insync == 0 && replication >= 3)
        min_insync = replication - 1;

    if ((conf = es__kafka_conf(&uri, NULL, errstr, sizeof errstr)) == NULL ||
        (rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr)) == NULL) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        es__kafka_uri_free(&uri);
        return es__cli_fail(cli, "topics: %s", errstr);
    }
    {
        /* librdkafka's mock names its cluster so; asked to create topics it
         * would wait for a controller that never answers. */
        char *id = rd_kafka_clusterid(rk, uri.timeout_ms);
        int mock = id && strncmp(id, "mockCluster", 11) == 0;
        if (id)
            rd_kafka_mem_free(rk, id);
        if (mock) {
            failed = es__cli_fail(
                cli,
                "topics: %s is librdkafka's mock cluster (`esfold broker`), which "
                "has no Admin API. There topics are made on first use with 4 "
                "partitions, or at the broker's start with the count you want: "
                "esfold broker --partitions %lld %s%s ...",
                uri.brokers, (long long)partitions, uri.prefix, args[1]);
            goto done;
        }
    }
    nts = calloc((size_t)nargs, sizeof *nts);
    for (i = 1; i < nargs && nts; i++) {
        char *name = malloc(strlen(uri.prefix) + strlen(args[i]) + 1);
        if (name == NULL)
            break;
        sprintf(name, "%s%s", uri.prefix, args[i]);
        nts[i - 1] = rd_kafka_NewTopic_new(name, (int)partitions, (int)replication,
                                           errstr, sizeof errstr);
        free(name);
        if (nts[i - 1] == NULL) {
            failed = es__cli_fail(cli, "topics: %s: %s", args[i], errstr);
            goto done;
        }
        rd_kafka_NewTopic_set_config(nts[i - 1], "retention.ms", "-1");
        if (min_insync > 0) {
            snprintf(buf, sizeof buf, "%lld", (long long)min_insync);
            rd_kafka_NewTopic_set_config(nts[i - 1], "min.insync.replicas", buf);
        }
    }
    if (nts == NULL || i < nargs) {
        failed = es__cli_fail(cli, "topics: out of memory");
        goto done;
    }
    q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, nts, (size_t)nargs - 1, NULL, q);
    ev = rd_kafka_queue_poll(q, uri.timeout_ms + 5000);
    if (ev == NULL) {
        failed = es__cli_fail(cli, "topics: no answer from %s within %d ms",
                              uri.brokers, uri.timeout_ms + 5000);
    } else if (rd_kafka_event_error(ev)) {
        rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
        if (err == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE ||
            err == RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION)
            failed = es__cli_fail(
                cli,
                "topics: %s has no Admin API (%s). If it is the local broker "
                "(`esfold broker`, librdkafka's mock), topics are made when first "
                "used, with 4 partitions, or at its start with the partitions "
                "you want: esfold broker --partitions N %s%s ...",
                uri.brokers, rd_kafka_event_error_string(ev), uri.prefix, args[1]);
        else
            failed = es__cli_fail(cli, "topics: %s", rd_kafka_event_error_string(ev));
    } else {
        size_t cnt = 0, j;
        const rd_kafka_topic_result_t **trs = rd_kafka_CreateTopics_result_topics(
            rd_kafka_event_CreateTopics_result(ev), &cnt);
        for (j = 0; j < cnt; j++) {
            rd_kafka_resp_err_t err = rd_kafka_topic_result_error(trs[j]);
            if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
                printf("created %s: %lld partitions, retention.ms=-1%s%s\n",
                       rd_kafka_topic_result_name(trs[j]), (long long)partitions,
                       min_insync > 0 ? ", min.insync.replicas=" : "",
                       min_insync > 0 ? buf : "");
            else if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                printf("exists  %s\n", rd_kafka_topic_result_name(trs[j]));
            else
                failed = es__cli_fail(cli, "topics: %s: %s",
                                      rd_kafka_topic_result_name(trs[j]),
                                      rd_kafka_topic_result_error_string(trs[j]));
        }
    }
done:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (q)
        rd_kafka_queue_destroy(q);
    if (nts) {
        for (i = 0; i < nargs - 1; i++)
            if (nts[i])
                rd_kafka_NewTopic_destroy(nts[i]);
        free(nts);
    }
    rd_kafka_destroy(rk);
    es__kafka_uri_free(&uri);
    return es__cli_finish(cli, failed ? ES__CLI_FAIL : ES__CLI_OK);
}

const es__cli_command es__cli_topics = {
    .name = "topics",
    .summary = "create event topics on a Kafka cluster (Admin API)",
    .synopsis = "create TYPE... [--partitions N] [--replication R] [--min-insync M]",
    .help =
        "Creates the topic <prefix>TYPE for each aggregate TYPE on the cluster\n"
        "of --log kafka://HOST:PORT?prefix=P, with retention.ms=-1 (an event\n"
        "log must keep its beginning) and min.insync.replicas. The local broker\n"
        "(esfold broker) has no Admin API: there topics are made on first use\n"
        "with 4 partitions, or named when it starts.",
    .opts = topics_opts,
    .min_args = 1,
    .max_args = -1,
    .run = topics_run,
};

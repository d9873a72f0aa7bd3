/*
 * cli/broker.c - `broker [--brokers N] [--partitions P] [TOPIC...]`: a
 * local Kafka cluster for tests and demos.
 *
 * It runs librdkafka's mock cluster in this process, on loopback, prints
 * the bootstrap address as one line on stdout (so that a script can read
 * it: `addr=$(esfold broker & ...)`), warns on stderr about what the mock
 * is not, and runs until SIGINT or SIGTERM.
 *
 * The mock has no admin API: a topic is made by the first client that asks
 * for it, with the mock's fixed 4 partitions. TOPIC arguments are made at
 * start with P partitions instead.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "cli/cli.h"
#include "core/internal.h"

enum { OPT_BROKERS, OPT_PARTITIONS };

static const es__cli_opt broker_opts[] = {
    { "brokers", "N", "brokers in the cluster (default 1)" },
    { "partitions", "P", "partitions of the TOPICs made at start (default 4)" },
    { NULL, NULL, NULL }
};

static int parse_count(es__cli *cli, const char *what, const char *v, int64_t max,
                       int *out)
{
    int64_t n;
    if (v == NULL)
        return 0;
    if (es__parse_i64(&n, v) != 0 || n < 1 || n > max)
        return es__cli_usage(cli, "--%s %s: expected a number from 1 to %lld",
                             what, v, (long long)max);
    *out = (int)n;
    return 0;
}

static int broker_run(es__cli *cli, int argc, char **argv)
{
    const char *values[ES__CLI_MAX_OPTS] = {0};
    char *args[ES__CLI_MAX_ARGS];
    int nargs = 0, st, brokers = 1, partitions = 4, i, sig = 0;
    char errstr[512];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    sigset_t set;

    if ((st = es__cli_parse(cli, argc, argv, values, args, &nargs)) >= 0)
        return st;
    if ((st = parse_count(cli, "brokers", values[OPT_BROKERS], 16, &brokers)) ||
        (st = parse_count(cli, "partitions", values[OPT_PARTITIONS], 10000,
                          &partitions)))
        return st;

    /* Block the signals before librdkafka starts its threads, so that they
     * all inherit the mask and only sigwait() below takes them. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return es__cli_fail(cli, "broker: %s", errstr);
    }
    if ((mc = rd_kafka_mock_cluster_new(rk, brokers)) == NULL) {
        rd_kafka_destroy(rk);
        return es__cli_fail(cli, "broker: could not start librdkafka's mock cluster");
    }
    for (i = 0; i < nargs; i++) {
        rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(
            mc, args[i], partitions, brokers < 3 ? brokers : 3);
        if (err) {
            rd_kafka_mock_cluster_destroy(mc);
            rd_kafka_destroy(rk);
            return es__cli_fail(cli, "broker: creating topic %s: %s", args[i],
                                rd_kafka_err2str(err));
        }
    }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    fprintf(stderr,
            "%s broker: librdkafka %s mock cluster, %d broker(s), on %s\n"
            "  In memory only: everything is lost when it stops. Each partition "
            "keeps about\n"
            "  5 MiB or 100000 batches; older data is dropped like retention "
            "(readers then\n"
            "  get ES_ETRUNCATED). No admin API, no producer fencing, aborted "
            "transactions\n"
            "  stay visible (the acceptance rule rejects them). New topics get "
            "4 partitions%s.\n"
            "  Stop with Ctrl-C (SIGINT) or SIGTERM.\n",
            cli->prog, rd_kafka_version_str(), brokers,
            rd_kafka_mock_cluster_bootstraps(mc),
            nargs ? "; the named ones were made with --partitions" : "");
    fflush(stderr);

    while (sigwait(&set, &sig) == 0 && sig != SIGINT && sig != SIGTERM &&
           sig != SIGHUP)
        ;
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    fprintf(stderr, "%s broker: stopped (%s)\n", cli->prog,
            sig == SIGINT ? "SIGINT" : sig == SIGHUP ? "SIGHUP" : "SIGTERM");
    return ES__CLI_OK;
}

const es__cli_command es__cli_broker = {
    .name = "broker",
    .summary = "run a local Kafka cluster (librdkafka's mock) for tests and demos",
    .synopsis = "[--brokers N] [--partitions P] [TOPIC...]",
    .help =
        "Runs librdkafka's mock Kafka cluster in this process on loopback and\n"
        "prints its bootstrap address (host:port[,host:port]) as one line on\n"
        "stdout; use it as --log kafka://ADDRESS?prefix=P. Runs until SIGINT or\n"
        "SIGTERM.\n\n"
        "It is for tests and demos: in memory only, about 5 MiB or 100000\n"
        "batches per partition (older data is dropped), no admin API, no\n"
        "producer fencing, and aborted transactions stay visible. Topics are\n"
        "made when first used, with 4 partitions; each TOPIC argument is made\n"
        "at start with --partitions P partitions (the full topic name, prefix\n"
        "included: bank.account).",
    .opts = broker_opts,
    .min_args = 0,
    .max_args = -1,
    .run = broker_run,
};

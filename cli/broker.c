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
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

/* The TCP port of a socket, 0 when it is not an IPv4/IPv6 socket. */
static int sock_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

/* Whether port is one of the bootstrap list's "host:port[,host:port]". */
static int is_bootstrap_port(const char *bootstraps, int port)
{
    for (const char *p = bootstraps; p && *p;) {
        const char *colon = strchr(p, ':'), *comma = strchr(p, ',');
        if (colon && (!comma || colon < comma) && atoi(colon + 1) == port)
            return 1;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

/*
 * Calls fn on every socket of this process bound to a bootstrap port that
 * is listening (listening 1) or accepted (0). Returns how many.
 */
static int each_socket(const char *bootstraps, int listening, int (*fn)(int fd))
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name), acc = 0, type = 0;
        socklen_t len = sizeof acc;
        if (e->d_name[0] < '0' || e->d_name[0] > '9' || fd == dirfd(d))
            continue;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
            type != SOCK_STREAM)
            continue;
        len = sizeof acc;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) != 0 ||
            acc != listening || !is_bootstrap_port(bootstraps, sock_port(fd)))
            continue;
        n += fn(fd);
    }
    closedir(d);
    return n;
}

static int set_nodelay(int fd)
{
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0;
}

static int has_nodelay(int fd)
{
    int on = 0;
    socklen_t len = sizeof on;
    return getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0 && on;
}

static int is_socket(int fd)
{
    (void)fd;
    return 1;
}

/*
 * Connects to the first bootstrap address and waits (up to 2 s) for the
 * mock to accept: 1 when the accepted socket has TCP_NODELAY, 0 when not,
 * -1 when it could not tell.
 */
static int check_accepted_nodelay(const char *bootstraps)
{
    struct sockaddr_in sa;
    const char *colon = strchr(bootstraps, ':');
    int fd, rc = -1;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)(colon ? atoi(colon + 1) : 0));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        for (int i = 0; i < 200 && rc < 0; i++) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            int all = each_socket(bootstraps, 0, is_socket);
            if (all > 0)
                rc = each_socket(bootstraps, 0, has_nodelay) == all;
            else
                nanosleep(&ts, NULL);
        }
    }
    close(fd);
    return rc;
}

static int broker_run(es__cli *cli, int argc, char **argv)
{
    const char *values[ES__CLI_MAX_OPTS] = {0};
    char *args[ES__CLI_MAX_ARGS];
    int nargs = 0, st, brokers = 1, partitions = 4, i, sig = 0, nodelay,
        nodelay_checked;
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
    /* librdkafka 2.0.2's mock leaves Nagle on for the connections it
     * accepts: with two requests in flight a reply can wait ~40 ms for the
     * client's delayed ACK. Real brokers set TCP_NODELAY; on Linux an
     * accepted socket inherits it from the listening one. */
    nodelay = each_socket(rd_kafka_mock_cluster_bootstraps(mc), 1, set_nodelay);
    nodelay_checked = check_accepted_nodelay(rd_kafka_mock_cluster_bootstraps(mc));
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
            "  TCP_NODELAY: set on %d listening socket(s)%s.\n"
            "  Stop with Ctrl-C (SIGINT) or SIGTERM.\n",
            cli->prog, rd_kafka_version_str(), brokers,
            rd_kafka_mock_cluster_bootstraps(mc),
            nargs ? "; the named ones were made with --partitions" : "",
            nodelay,
            nodelay_checked == 1   ? ", and an accepted connection has it"
            : nodelay_checked == 0 ? ", BUT an accepted connection does not "
                                     "have it (replies may stall ~40 ms)"
                                   : " (not checked on an accepted connection)");
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
